//! The layering the README's layout promises, checked so it stays true:
//! the core crate does no I/O (no tokio, hyper or proxy crate among its
//! dependencies, none named in its source), and no two modules of either
//! crate import each other, directly or round a loop.
//!
//! Imports are read from the source (`crate::a::b`, `super::x`), outside
//! comments and `#[cfg(test)]` modules: test code may reach across.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `dir`, by module path (`proxy::handler`;
/// `mod.rs`, `lib.rs` and `main.rs` name their folder or the crate root).
fn modules(dir: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(root).unwrap().with_extension("");
                let mut parts: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                if parts.last().is_some_and(|p| p == "mod") {
                    parts.pop();
                }
                // The library root is the crate itself; main.rs (the binary, a
                // crate of its own) keeps its name so it does not hide lib.rs.
                if parts == ["lib"] {
                    parts.clear();
                }
                out.insert(parts.join("::"), std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// The source without comment lines and without its test module.
fn production_code(src: &str) -> String {
    let cut = src.find("#[cfg(test)]\nmod tests").unwrap_or(src.len());
    src[..cut]
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Module paths written after `prefix` in `src` (`crate::`, `super::`),
/// grouped imports expanded: `use super::{handler, headers::X}` names
/// both `handler` and `headers::X`.
fn paths_after(src: &str, prefix: &str) -> Vec<String> {
    src.match_indices(prefix)
        .filter(|(i, _)| {
            // `crate::` alone, not `fieldguard_core::` or a longer word.
            src[..*i]
                .chars()
                .next_back()
                .is_none_or(|c| !c.is_alphanumeric() && c != '_')
        })
        .flat_map(|(i, _)| expand(&src[i + prefix.len()..]))
        .collect()
}

/// The paths at the start of `rest`: one (`a::b`), or a group's
/// (`{a, b::{c, d}}` gives `a`, `b::c`, `b::d`).
fn expand(rest: &str) -> Vec<String> {
    let end = rest
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(rest.len());
    let head = &rest[..end];
    if !rest[end..].starts_with('{') {
        return vec![head.trim_end_matches(':').to_string()];
    }
    // The group's items, split at its top-level commas.
    let (mut depth, mut start, mut out) = (0usize, end + 1, Vec::new());
    for (j, c) in rest.char_indices().skip(end) {
        match c {
            '{' => depth += 1,
            '}' | ',' if depth == 1 => {
                let item = rest[start..j].trim();
                let item = item
                    .strip_prefix("self")
                    .map_or(item, |r| r.trim_start_matches(':'));
                for p in expand(item) {
                    let joined = format!("{head}{p}");
                    out.push(joined.trim_end_matches(':').to_string());
                }
                start = j + 1;
                if c == '}' {
                    break;
                }
            }
            '}' => depth -= 1,
            _ => {}
        }
    }
    out
}

/// The longest known module a path names.
fn resolve(names: &BTreeSet<&str>, path: &[&str]) -> Option<String> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].join("::"))
        .find(|c| names.contains(c.as_str()))
}

/// Edges between modules; a module's own ancestors and descendants do not
/// count (a child may use its parent's items, a parent declares children).
fn import_graph(dir: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mods = modules(dir);
    let names: BTreeSet<&str> = mods.keys().map(String::as_str).collect();
    let mut graph = BTreeMap::new();
    for (name, src) in &mods {
        let code = production_code(src);
        let here: Vec<&str> = name.split("::").filter(|s| !s.is_empty()).collect();
        let mut deps = BTreeSet::new();
        let mut add = |target: Option<String>| {
            if let Some(t) = target {
                let related = t == *name
                    || name.starts_with(&format!("{t}::"))
                    || t.starts_with(&format!("{name}::"))
                    || t.is_empty();
                if !related {
                    deps.insert(t);
                }
            }
        };
        for p in paths_after(&code, "crate::") {
            add(resolve(&names, &p.split("::").collect::<Vec<_>>()));
        }
        // `super::` from `a::b::c` names `a::b`'s items (a file's parent).
        let parent = &here[..here.len().saturating_sub(1)];
        for p in paths_after(&code, "super::") {
            let mut path: Vec<&str> = parent.to_vec();
            path.extend(p.split("::").filter(|s| *s != "super"));
            add(resolve(&names, &path));
        }
        graph.insert(name.clone(), deps);
    }
    graph
}

/// A loop in the graph, if there is one (depth-first search).
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_string(), 1);
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            match state.get(next.as_str()).copied().unwrap_or(0) {
                1 => {
                    let from = stack.iter().position(|n| n == next).unwrap_or(0);
                    let mut cycle = stack[from..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(next, graph, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(node.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in graph.keys() {
        if state.get(node.as_str()).copied().unwrap_or(0) == 0 {
            let mut stack = Vec::new();
            if let Some(c) = visit(node, graph, &mut state, &mut stack) {
                return Some(c);
            }
        }
    }
    None
}

#[test]
fn no_import_cycle_between_modules_of_the_proxy_crate() {
    let graph = import_graph(&repo().join("src"));
    assert!(graph.len() > 50, "read {} modules", graph.len());
    // Control: imports are read (`use crate::exchange::…` in the handler,
    // `use super::…` in the proxy's admin handle).
    assert!(graph["proxy::handler"].contains("exchange"), "{graph:?}");
    assert!(
        graph["proxy::admin_handle"].contains("proxy::reload"),
        "{graph:?}"
    );
    // Grouped imports are read: `use super::{Proxy, ProxyBody, handler, …}`.
    assert!(
        graph["proxy::server"].contains("proxy::handler"),
        "{graph:?}"
    );
    if let Some(cycle) = find_cycle(&graph) {
        panic!("import cycle: {}", cycle.join(" -> "));
    }
}

#[test]
fn no_import_cycle_between_modules_of_the_core_crate() {
    let graph = import_graph(&repo().join("crates/fieldguard-core/src"));
    assert!(graph.len() > 20, "read {} modules", graph.len());
    if let Some(cycle) = find_cycle(&graph) {
        panic!("import cycle: {}", cycle.join(" -> "));
    }
}

#[test]
fn grouped_imports_are_expanded() {
    assert_eq!(expand("a::b;"), ["a::b"]);
    assert_eq!(
        expand("{handler, headers::X, b::{c, self}};"),
        ["handler", "headers::X", "b::c", "b"]
    );
}

#[test]
fn the_cycle_finder_finds_a_planted_cycle() {
    // Control: the check above must be able to fail.
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    graph.insert("a".into(), ["b".to_string()].into());
    graph.insert("b".into(), ["c".to_string()].into());
    graph.insert("c".into(), ["a".to_string()].into());
    assert_eq!(find_cycle(&graph).map(|c| c.len()), Some(4));
    graph.get_mut("c").unwrap().clear();
    assert_eq!(find_cycle(&graph), None);
}

#[test]
fn the_core_crate_does_no_io() {
    let core = repo().join("crates/fieldguard-core");
    let manifest = std::fs::read_to_string(core.join("Cargo.toml")).unwrap();
    let deps = manifest
        .split("[dependencies]")
        .nth(1)
        .and_then(|s| s.split("\n[").next())
        .unwrap_or("");
    for banned in [
        "tokio",
        "hyper",
        "fieldguard ",
        "fieldguard=",
        "rustls",
        "notify",
    ] {
        assert!(
            !deps
                .lines()
                .any(|l| l.trim_start().starts_with(banned.trim_end_matches('='))
                    && !l.trim_start().starts_with("fieldguard-")),
            "the core crate depends on {banned}"
        );
    }
    for (name, src) in modules(&core.join("src")) {
        let code = production_code(&src);
        for banned in ["tokio::", "hyper::", "fieldguard::", "std::net::TcpStream"] {
            assert!(!code.contains(banned), "core module {name} uses {banned}");
        }
    }
}

/// docs/architecture.md names files and folders for each step and each
/// kind of change: every one must exist, or the map misleads.
#[test]
fn the_architecture_document_names_files_that_exist() {
    let doc = std::fs::read_to_string(repo().join("docs/architecture.md")).unwrap();
    let mut named = 0;
    for (i, part) in doc.split('`').enumerate() {
        // Odd parts are inside backticks.
        let path = part
            .split(" (")
            .next()
            .unwrap_or(part)
            .split("::")
            .next()
            .unwrap_or(part);
        let looks_like_a_path = i % 2 == 1
            && path.contains('/')
            && !path.contains(' ')
            && (path.ends_with('/') || path.rsplit('/').next().is_some_and(|f| f.contains('.')));
        if looks_like_a_path {
            named += 1;
            // From the repository root, or (in the crates' table) from
            // the core crate's sources.
            let found = [repo(), repo().join("crates/fieldguard-core/src")]
                .iter()
                .any(|base| base.join(path).exists());
            assert!(
                found,
                "docs/architecture.md names `{path}`, which does not exist"
            );
        }
    }
    assert!(named > 40, "read {named} paths");
}

/// Modules compiled for tests only (`#[cfg(test)] mod name;` in their
/// parent): a property test may read the whole crate.
fn test_only(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (name, src) in modules(dir) {
        let mut lines = src.lines().peekable();
        while let Some(line) = lines.next() {
            if line.trim() == "#[cfg(test)]"
                && let Some(next) = lines.peek()
                && let Some(child) = next
                    .trim()
                    .strip_prefix("mod ")
                    .and_then(|r| r.strip_suffix(';'))
            {
                out.insert(if name.is_empty() {
                    child.to_string()
                } else {
                    format!("{name}::{child}")
                });
            }
        }
    }
    out
}

/// The import graph of the modules under `dir` (test-only modules left
/// out) merged into their top-level folders (`proxy::handler` into
/// `proxy`; a top-level file is a folder of its own).
fn folder_graph(dir: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let tests = test_only(dir);
    let top = |m: &str| m.split("::").next().unwrap_or(m).to_string();
    let mut folders: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, deps) in import_graph(dir) {
        if tests.contains(&module) {
            continue;
        }
        let from = top(&module);
        let entry = folders.entry(from.clone()).or_default();
        entry.extend(
            deps.iter()
                .filter(|d| !tests.contains(*d))
                .map(|d| top(d))
                .filter(|t| *t != from && !t.is_empty()),
        );
    }
    folders.remove("");
    folders
}

#[test]
fn no_import_cycle_between_folders_of_the_core_crate() {
    let dir = repo().join("crates/fieldguard-core/src");
    let tests = test_only(&dir);
    assert!(tests.contains("testing"), "{tests:?}");
    assert!(tests.contains("redact::proptests"), "{tests:?}");
    if let Some(cycle) = find_cycle(&folder_graph(&dir)) {
        panic!("import cycle between folders: {}", cycle.join(" -> "));
    }
}

/// Each subsystem (audit, budget, metrics, admin, the policy set) owns its
/// config section and reads no composed whole: only the composition root
/// (`config`, `runtime`, `service`, `main.rs`) imports them all.
#[test]
fn no_import_cycle_between_folders_of_the_proxy_crate() {
    let graph = folder_graph(&repo().join("src"));
    assert!(graph["config"].contains("audit"), "{graph:?}");
    if let Some(cycle) = find_cycle(&graph) {
        panic!("import cycle between folders: {}", cycle.join(" -> "));
    }
}

/// The authoring tools (the command line's policy tools, onboarding, the
/// demo) are never imported by the serving code: a sidecar does not
/// carry them into its request path.
#[test]
fn the_serving_code_never_imports_the_authoring_tools() {
    let authoring = ["tools", "onboard", "demo"];
    let graph = folder_graph(&repo().join("src"));
    for (folder, deps) in &graph {
        if authoring.contains(&folder.as_str()) {
            continue;
        }
        let used: Vec<&String> = deps
            .iter()
            .filter(|d| authoring.contains(&d.as_str()))
            .collect();
        assert!(
            used.is_empty(),
            "serving code in `{folder}` imports {used:?}"
        );
    }
    assert!(graph["tools"].contains("config"), "{graph:?}");
    // The offline tools answer as the proxy would (statuses from the
    // core's outcome type) without importing it.
    assert!(!graph["tools"].contains("proxy"), "{graph:?}");
    // The audit trail's readers are offline tools; the serving folder
    // `audit` holds only the writer.
    let modules = modules(&repo().join("src"));
    for reader in ["verify", "subject", "expand", "filter", "read"] {
        assert!(
            modules.contains_key(&format!("tools::audit::{reader}")),
            "{reader}"
        );
        assert!(
            !modules.contains_key(&format!("audit::{reader}")),
            "{reader}"
        );
    }
}

/// Whether the item on `lines[i]` is compiled in only with a Cargo feature
/// (`#[cfg(feature = ...)]` on the line above): not the default API.
fn feature_gated(lines: &[&str], i: usize) -> bool {
    i > 0 && lines[i - 1].trim_start().starts_with("#[cfg(feature")
}

/// The core's modules a user of the crate can name: the root, and every
/// module its parent declares `pub mod` without a feature gate. Items of
/// the others are public only through a `pub use`, which is listed.
fn public_modules(all: &BTreeMap<String, String>) -> BTreeSet<String> {
    let mut public = BTreeSet::from([String::new()]);
    // Parents come before their children in the map's order.
    for (module, src) in all {
        if !public.contains(module) {
            continue;
        }
        let code = production_code(src);
        let lines: Vec<&str> = code.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let Some(rest) = line.trim_start().strip_prefix("pub mod ") else {
                continue;
            };
            if feature_gated(&lines, i) {
                continue;
            }
            let name = rest.trim_end_matches(';').trim_end_matches(" {").trim();
            public.insert(if module.is_empty() {
                name.to_string()
            } else {
                format!("{module}::{name}")
            });
        }
    }
    public
}

/// The core's scanner and walks sit behind its pipeline (as cedar-policy
/// fronts cedar-policy-core): no user of the crate can call them, so the
/// pipeline's functions are the one way in and may change what is under
/// them freely.
#[test]
fn the_core_walks_are_private_behind_the_pipeline() {
    let dir = repo().join("crates/fieldguard-core/src");
    let public = public_modules(&modules(&dir));
    for walk in [
        "redact::bytes",
        "redact::tree",
        "redact::scan",
        "redact::list_stream",
        "redact::request",
        "redact::unnamed",
        "redact::json",
        "redact::record",
    ] {
        assert!(!public.contains(walk), "`{walk}` is public");
    }
    assert!(
        public.contains("pipeline") && public.contains("redact"),
        "{public:?}"
    );
}

/// The line between the crates shows at every use: the proxy crate
/// re-exports none of the core's modules (whole or by glob), so its code
/// says `fieldguard_core::redact`, not `crate::redact`. Single types a root
/// module hands on as part of its own API (`identity::Principal`) may be
/// re-exported by name.
#[test]
fn the_proxy_crate_does_not_re_export_the_core() {
    let core: BTreeSet<String> = modules(&repo().join("crates/fieldguard-core/src"))
        .into_keys()
        .filter_map(|m| m.rsplit("::").next().map(str::to_string))
        .filter(|m| !m.is_empty())
        .collect();
    for (module, src) in modules(&repo().join("src")) {
        let code = production_code(&src);
        for (at, _) in code.match_indices("pub use fieldguard_core::") {
            // The whole statement, a grouped one over several lines too.
            let statement = &code[at..at + code[at..].find(';').unwrap_or(code.len() - at)];
            let names = statement["pub use fieldguard_core::".len()..]
                .split(|c: char| "{},".contains(c) || c.is_whitespace())
                .filter(|t| !t.is_empty());
            for name in names {
                let last = name.rsplit("::").next().unwrap_or(name);
                assert!(
                    last != "*" && !core.contains(last),
                    "`{module}` re-exports the core's module `{name}` ({statement}): name it as `fieldguard_core::…` where it is used"
                );
            }
        }
    }
}

/// The core crate's public items, one per line (`redact::bytes::redact fn`):
/// what its public API is, read from the sources (test-only modules and
/// test sections left out; `pub(crate)` and `pub(super)` are not public).
fn core_public_items() -> Vec<String> {
    let dir = repo().join("crates/fieldguard-core/src");
    let tests = test_only(&dir);
    let kinds = [
        "fn", "struct", "enum", "trait", "type", "const", "static", "mod", "use",
    ];
    let all = modules(&dir);
    let public = public_modules(&all);
    let mut out = Vec::new();
    for (module, src) in all {
        if tests.contains(&module) || !public.contains(&module) {
            continue;
        }
        let code = production_code(&src);
        let lines: Vec<&str> = code.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let Some(rest) = line.trim_start().strip_prefix("pub ") else {
                continue;
            };
            let rest = rest
                .trim_start_matches("async ")
                .trim_start_matches("unsafe ");
            let Some((kind, tail)) = rest.split_once(' ') else {
                continue;
            };
            if !kinds.contains(&kind) {
                continue;
            }
            if kind == "mod" && feature_gated(&lines, i) {
                continue;
            }
            let name: String = if kind == "use" {
                // A grouped `pub use` may span lines: up to its `;`.
                let mut text = tail.to_string();
                let mut j = i + 1;
                while !text.ends_with(';') && j < lines.len() {
                    text.push_str(lines[j].trim());
                    j += 1;
                }
                text.trim_end_matches(';').replace(",}", "}")
            } else {
                tail.chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect()
            };
            let at = if module.is_empty() { "crate" } else { &module };
            out.push(format!("{at}::{name} {kind}"));
        }
    }
    out.sort();
    out
}

/// The core's public API does not grow (or shrink) unnoticed: it is
/// checked in as `crates/fieldguard-core/public-api.txt`. After a change
/// that means it, rewrite the list with `FIELDGUARD_BLESS=1 cargo test
/// --test layering` and let the review see the diff.
#[test]
fn the_core_public_api_is_the_checked_in_list() {
    let file = repo().join("crates/fieldguard-core/public-api.txt");
    let now = core_public_items().join("\n") + "\n";
    if std::env::var_os("FIELDGUARD_BLESS").is_some() {
        std::fs::write(&file, &now).unwrap();
    }
    let kept = std::fs::read_to_string(&file).unwrap_or_default();
    if kept != now {
        let kept_lines: BTreeSet<&str> = kept.lines().collect();
        let now_lines: BTreeSet<&str> = now.lines().collect();
        let added: Vec<&&str> = now_lines.difference(&kept_lines).collect();
        let removed: Vec<&&str> = kept_lines.difference(&now_lines).collect();
        panic!(
            "the core crate's public API changed: added {added:#?}, removed {removed:#?}; if that is meant, FIELDGUARD_BLESS=1 cargo test --test layering rewrites crates/fieldguard-core/public-api.txt"
        );
    }
    assert!(
        now.lines().count() > 100,
        "read {} items",
        now.lines().count()
    );
}
