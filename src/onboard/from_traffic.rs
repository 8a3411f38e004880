//! `fieldguard onboard observed`: the catalogue entries a configuration is
//! still missing, from what its observing routes saw in traffic (the
//! admin listener's `/observed`, or a saved copy), each with the kind of
//! personal data its values looked like and a proposed classification,
//! ready to paste or as a patch to the configuration file.

use super::propose::{self, FieldFacts, Proposal};
use crate::observed_store::{ObservedSnapshot, SNAPSHOT_VERSION};
use crate::runtime::Runtime;
use fieldguard_core::config::Shape;
use fieldguard_core::detect::Detector;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Why what traffic showed cannot be read or turned into entries.
#[derive(Debug, thiserror::Error)]
pub enum ObservedError {
    /// The admin URL did not parse, or the request or its body failed.
    #[error("{url}: {source}")]
    Fetch {
        url: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{url}: the admin listener is plain http://")]
    NotHttp { url: String },
    #[error("{url}: no answer within 10 s")]
    NoAnswer { url: String },
    #[error("{url}: the body did not arrive within 10 s")]
    BodyTimeout { url: String },
    #[error("{url}: {status} (is this fieldguard's admin listener, of a version with /observed?)")]
    Status {
        url: String,
        status: http::StatusCode,
    },
    /// A snapshot that does not parse, said of the URL it came from.
    #[error("{url}: {source}")]
    FromUrl {
        url: String,
        source: Box<ObservedError>,
    },
    /// A snapshot that does not parse, said of the file it came from.
    #[error("{}: {source}", path.display())]
    FromFile {
        path: PathBuf,
        source: Box<ObservedError>,
    },
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("not an /observed snapshot: {0}")]
    NotSnapshot(serde_json::Error),
    #[error("snapshot version {0} (this fieldguard reads {SNAPSHOT_VERSION})")]
    Version(u32),
    /// The configuration to compare with does not load.
    #[error("{0}")]
    Config(#[from] fieldguard_core::error::ConfigError),
    #[error("{}: `{entity}.fields` is not a block mapping; paste the entries instead", path.display())]
    NotBlockMapping { path: PathBuf, entity: String },
}

/// Reads `/observed` from the admin listener at `admin`.
pub async fn fetch(admin: &str) -> Result<ObservedSnapshot, ObservedError> {
    use http_body_util::{BodyExt, Empty};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    let url = format!("{}/observed", admin.trim_end_matches('/'));
    let fetch = |e: Box<dyn std::error::Error + Send + Sync>| ObservedError::Fetch {
        url: url.clone(),
        source: e,
    };
    let uri: http::Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| fetch(e.into()))?;
    if uri.scheme_str() != Some("http") {
        return Err(ObservedError::NotHttp { url });
    }
    let client: Client<_, Empty<bytes::Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let resp = tokio::time::timeout(std::time::Duration::from_secs(10), client.get(uri))
        .await
        .map_err(|_| ObservedError::NoAnswer { url: url.clone() })?
        .map_err(|e| fetch(e.into()))?;
    let status = resp.status();
    let body = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        http_body_util::Limited::new(resp.into_body(), 16 * 1024 * 1024).collect(),
    )
    .await
    .map_err(|_| ObservedError::BodyTimeout { url: url.clone() })?
    .map_err(fetch)?
    .to_bytes();
    if !status.is_success() {
        return Err(ObservedError::Status { url, status });
    }
    parse(&body).map_err(|e| ObservedError::FromUrl {
        url,
        source: Box::new(e),
    })
}

/// Reads a saved `/observed` response.
pub fn read_state(path: &Path) -> Result<ObservedSnapshot, ObservedError> {
    let bytes = std::fs::read(path).map_err(|source| ObservedError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&bytes).map_err(|e| ObservedError::FromFile {
        path: path.to_path_buf(),
        source: Box::new(e),
    })
}

fn parse(bytes: &[u8]) -> Result<ObservedSnapshot, ObservedError> {
    let s: ObservedSnapshot = serde_json::from_slice(bytes).map_err(ObservedError::NotSnapshot)?;
    if s.version != SNAPSHOT_VERSION {
        return Err(ObservedError::Version(s.version));
    }
    Ok(s)
}

/// A catalogue entry to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The entity (record fields), or the route (`GET /x`) for a wrapper
    /// member.
    pub owner: String,
    pub field: String,
    pub shape: Shape,
    /// Values seen, by JSON type.
    pub types: BTreeMap<String, u64>,
    pub count: u64,
    /// Values each detector matched.
    pub detected: BTreeMap<String, u64>,
    /// The detector behind the proposal, if one matched.
    pub kind: Option<Detector>,
    pub proposal: Proposal,
    pub routes: Vec<String>,
}

/// The missing entries.
#[derive(Debug, Clone, Default)]
pub struct Missing {
    /// Record fields, by entity then path.
    pub fields: Vec<Entry>,
    /// Wrapper members, by route then path.
    pub members: Vec<Entry>,
    /// Places that are data, not names (`?`): the parent must be
    /// catalogued as one value, or the member stays uncatalogued.
    pub unnamed_keys: Vec<String>,
    /// Values at places beyond the proxy's bound.
    pub overflow: u64,
    /// Observed places the configuration catalogues by now.
    pub already: usize,
}

/// What `snapshot` shows missing from `config` (all of it, without one).
pub fn missing(
    snapshot: &ObservedSnapshot,
    config: Option<&Path>,
) -> Result<Missing, ObservedError> {
    let rt = match config {
        Some(p) => Some(crate::config::load(p).and_then(Runtime::build)?),
        None => None,
    };
    let mut out = Missing {
        overflow: snapshot.overflow,
        ..Missing::default()
    };
    let mut grouped: BTreeMap<(bool, String, String), Entry> = BTreeMap::new();
    for e in &snapshot.entries {
        let wrapper = e.entity == fieldguard_core::catalogue::WRAPPER_SCOPE;
        // A key that is data (`?`): its parent is one value.
        let (field, shape_hint) = match e.field.find('?') {
            Some(at) => {
                let parent = e.field[..at].trim_end_matches(['.', '[']).to_string();
                if parent.is_empty() || parent == "$" {
                    let place = format!("{} {}", e.entity, e.field);
                    if !out.unnamed_keys.contains(&place) {
                        out.unnamed_keys.push(place);
                    }
                    continue;
                }
                (parent, Some(Shape::Object))
            }
            None => (e.field.clone(), None),
        };
        if let Some(rt) = &rt
            && catalogued(rt, wrapper, &e.route, &e.entity, &field)
        {
            out.already += 1;
            continue;
        }
        let owner = if wrapper {
            e.route.clone()
        } else {
            e.entity.clone()
        };
        let entry = grouped
            .entry((wrapper, owner.clone(), field.clone()))
            .or_insert_with(|| Entry {
                owner,
                field: field.clone(),
                shape: shape_hint.unwrap_or(Shape::Scalar),
                types: BTreeMap::new(),
                count: 0,
                detected: BTreeMap::new(),
                kind: None,
                proposal: propose::for_detector(Detector::Email),
                routes: Vec::new(),
            });
        *entry.types.entry(e.json_type.clone()).or_insert(0) += e.count;
        entry.count += e.count;
        for (d, n) in &e.detected {
            *entry.detected.entry(d.clone()).or_insert(0) += n;
        }
        if !entry.routes.contains(&e.route) {
            entry.routes.push(e.route.clone());
        }
    }
    for ((wrapper, _, _), mut entry) in grouped {
        finish(&mut entry);
        if wrapper {
            out.members.push(entry);
        } else {
            out.fields.push(entry);
        }
    }
    Ok(out)
}

/// Whether the configuration names this place by now (itself, or a
/// catalogued value it is inside).
fn catalogued(rt: &Runtime, wrapper: bool, route: &str, entity: &str, field: &str) -> bool {
    if wrapper {
        let Some((method, template)) = route.split_once(' ') else {
            return false;
        };
        return rt.decisions.catalogue.fields().iter().any(|f| {
            f.wrapper_of.is_some_and(|i| {
                rt.decisions
                    .routes
                    .iter()
                    .any(|r| r.position == i && r.method == method && r.template == template)
            }) && (field == f.path || field.starts_with(&format!("{}.", f.path)))
        });
    }
    let Some(e) = rt.decisions.catalogue.entity(entity) else {
        return false;
    };
    let mut node = &e.root;
    for key in field.split('.') {
        match node.child(key) {
            Some(n) if n.field.is_some() => return true,
            Some(n) => node = n,
            None => return false,
        }
    }
    false
}

/// The shape and proposal of a grouped entry.
fn finish(e: &mut Entry) {
    let scalars = ["string", "number", "boolean", "null"];
    let non_null: Vec<&String> = e.types.keys().filter(|t| *t != "null").collect();
    if e.shape == Shape::Scalar {
        e.shape = match non_null.as_slice() {
            [] => Shape::Scalar,
            [t] => match t.as_str() {
                "object" => Shape::Object,
                "array" => Shape::Array,
                "string" => Shape::String,
                "number" => Shape::Number,
                "boolean" => Shape::Boolean,
                _ => Shape::Any,
            },
            ts if ts.iter().all(|t| scalars.contains(&t.as_str())) => Shape::Scalar,
            _ => Shape::Any,
        };
    }
    let best = e
        .detected
        .iter()
        .filter_map(|(d, n)| Detector::from_name(d).map(|d| (d, *n)))
        .max_by_key(|(d, n)| (*n, std::cmp::Reverse(*d)));
    // A map keyed by data is one object, whatever its values are.
    let json_type = match e.shape {
        Shape::Object => "object",
        Shape::Array => "array",
        _ => non_null.first().map(|s| s.as_str()).unwrap_or("null"),
    };
    let entity = if e.owner.contains(' ') { "" } else { &e.owner };
    e.proposal = match best {
        Some((d, n)) => {
            e.kind = Some(d);
            let mut p = propose::for_detector(d);
            let _ = write!(p.why, " in {n} of {} values", e.count);
            p
        }
        None => {
            let mut p = propose::propose(&FieldFacts {
                path: e.field.trim_start_matches("$."),
                json_type,
                format: None,
                description: None,
                entity,
                scalar: e.shape.is_scalar(),
            });
            p.why = format!("no detector matched its values; {}", p.why);
            p
        }
    };
    if !e.shape.is_scalar() {
        e.proposal.mask = None;
    }
}

fn comment(e: &Entry) -> String {
    let types: Vec<String> = e.types.iter().map(|(t, n)| format!("{t} x{n}")).collect();
    format!(
        "{} on {}: proposed {}/{}: {}",
        types.join(", "),
        e.routes.join(", "),
        e.proposal.category.as_str(),
        e.proposal.level.0,
        e.proposal.why
    )
}

fn key(k: &str) -> String {
    if k.chars()
        .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
        && !k.is_empty()
    {
        k.to_string()
    } else {
        serde_json::to_string(k).unwrap_or_default()
    }
}

impl Missing {
    /// The entries as configuration text to paste.
    pub fn to_yaml(&self) -> String {
        let mut o = String::from(
            "# Catalogue entries missing from the configuration, from observed traffic\n\
             # (`fieldguard onboard observed`). Each is PROPOSED: review it, then add it\n\
             # under `entities` (and the members under their route's `response.members`).\n",
        );
        if self.fields.is_empty() && self.members.is_empty() {
            o.push_str("# Nothing missing: every observed member is catalogued.\n");
        }
        if !self.fields.is_empty() {
            o.push_str("entities:\n");
            let mut owner = "";
            for e in &self.fields {
                if e.owner != owner {
                    owner = &e.owner;
                    let _ = writeln!(o, "  {}:\n    fields:", key(owner));
                }
                let _ = writeln!(o, "      # {}", comment(e));
                let _ = writeln!(
                    o,
                    "      {}: {}",
                    key(&e.field),
                    e.proposal.flow(e.shape, None)
                );
            }
        }
        let mut owner = "";
        for e in &self.members {
            if e.owner != owner {
                owner = &e.owner;
                let _ = writeln!(o, "# route {owner}, under `response.members`:");
            }
            let _ = writeln!(o, "#   # {}", comment(e));
            let _ = writeln!(
                o,
                "#   {}: {}",
                key(&e.field),
                e.proposal.flow(e.shape, None)
            );
        }
        for u in &self.unnamed_keys {
            let _ = writeln!(
                o,
                "# {u}: keys that are data, not names (a map keyed by ids or phone numbers): catalogue the value holding them as one value (`shape: object`)"
            );
        }
        if self.overflow > 0 {
            let _ = writeln!(
                o,
                "# {} values were at places beyond the proxy's bound and are not listed",
                self.overflow
            );
        }
        o
    }

    /// A unified diff adding the record fields to the configuration file
    /// at `config` (wrapper members are listed as comments only).
    pub fn to_patch(&self, config: &Path) -> Result<String, ObservedError> {
        let text = std::fs::read_to_string(config).map_err(|source| ObservedError::Read {
            path: config.to_path_buf(),
            source,
        })?;
        let lines: Vec<&str> = text.lines().collect();
        let mut inserts: Vec<(usize, Vec<String>)> = Vec::new();
        let mut by_entity: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
        for e in &self.fields {
            by_entity.entry(&e.owner).or_default().push(e);
        }
        let entities_at = lines.iter().position(|l| l.trim_end() == "entities:");
        for (entity, entries) in by_entity {
            let body = |indent: usize| -> Vec<String> {
                entries
                    .iter()
                    .flat_map(|e| {
                        [
                            format!("{}# {}", " ".repeat(indent), comment(e)),
                            format!(
                                "{}{}: {}",
                                " ".repeat(indent),
                                key(&e.field),
                                e.proposal.flow(e.shape, None)
                            ),
                        ]
                    })
                    .collect()
            };
            let Some(ent_line) = entities_at else {
                let mut block = vec![
                    "entities:".to_string(),
                    format!("  {}:", key(entity)),
                    "    fields:".into(),
                ];
                block.extend(body(6));
                inserts.push((lines.len(), block));
                continue;
            };
            let block_end = block_end(&lines, ent_line, 0);
            let found = (ent_line + 1..block_end).find(|&i| {
                let l = lines[i];
                indent_of(l) > 0 && l.trim_end().trim_start() == format!("{}:", key(entity))
            });
            match found {
                None => {
                    let mut block = vec![format!("  {}:", key(entity)), "    fields:".into()];
                    block.extend(body(6));
                    inserts.push((block_end, block));
                }
                Some(at) => {
                    let ind = indent_of(lines[at]);
                    let end = block_end_indent(&lines, at, ind);
                    match (at + 1..end).find(|&i| lines[i].trim() == "fields:") {
                        Some(f) => {
                            let f_ind = indent_of(lines[f]);
                            let f_end = block_end_indent(&lines, f, f_ind);
                            let field_ind = (f + 1..f_end)
                                .map(|i| lines[i])
                                .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
                                .map(indent_of)
                                .unwrap_or(f_ind + 2);
                            inserts.push((f_end, body(field_ind)));
                        }
                        None if (at + 1..end)
                            .any(|i| lines[i].trim_start().starts_with("fields:")) =>
                        {
                            return Err(ObservedError::NotBlockMapping {
                                path: config.to_path_buf(),
                                entity: entity.to_string(),
                            });
                        }
                        None => {
                            let mut block = vec![format!("{}fields:", " ".repeat(ind + 2))];
                            block.extend(body(ind + 4));
                            inserts.push((end, block));
                        }
                    }
                }
            }
        }
        inserts.sort_by_key(|(at, _)| *at);
        let name = config.to_string_lossy().replace('\\', "/");
        Ok(unified(&name, &lines, &inserts))
    }
}

fn indent_of(l: &str) -> usize {
    l.len() - l.trim_start().len()
}

/// The line after the block of the key at `at` (lines indented more than
/// `indent`, blank lines and comments inside it), ending before trailing
/// blank lines.
fn block_end_indent(lines: &[&str], at: usize, indent: usize) -> usize {
    let mut end = at + 1;
    let mut i = at + 1;
    while i < lines.len() {
        let l = lines[i];
        if l.trim().is_empty() || (l.trim_start().starts_with('#') && indent_of(l) > indent) {
            i += 1;
            continue;
        }
        if indent_of(l) <= indent {
            break;
        }
        i += 1;
        end = i;
    }
    end
}

fn block_end(lines: &[&str], at: usize, indent: usize) -> usize {
    block_end_indent(lines, at, indent)
}

/// A unified diff of `lines` with `inserts` (position, lines) added.
fn unified(name: &str, lines: &[&str], inserts: &[(usize, Vec<String>)]) -> String {
    const CONTEXT: usize = 3;
    let mut out = format!("--- a/{name}\n+++ b/{name}\n");
    let mut added_before = 0usize;
    let mut i = 0;
    while i < inserts.len() {
        let start = inserts[i].0.saturating_sub(CONTEXT);
        let mut j = i;
        let mut end = (inserts[i].0 + CONTEXT).min(lines.len());
        while j + 1 < inserts.len() && inserts[j + 1].0.saturating_sub(CONTEXT) <= end {
            j += 1;
            end = (inserts[j].0 + CONTEXT).min(lines.len());
        }
        let added: usize = inserts[i..=j].iter().map(|(_, l)| l.len()).sum();
        let old_len = end - start;
        let old_start = if old_len == 0 { start } else { start + 1 };
        let new_start = if old_len + added == 0 {
            start + added_before
        } else {
            start + 1 + added_before
        };
        let _ = writeln!(
            out,
            "@@ -{old_start},{old_len} +{new_start},{} @@",
            old_len + added
        );
        let mut k = i;
        for (n, line) in lines.iter().enumerate().take(end).skip(start) {
            while k <= j && inserts[k].0 == n {
                for l in &inserts[k].1 {
                    let _ = writeln!(out, "+{l}");
                }
                k += 1;
            }
            let _ = writeln!(out, " {line}");
        }
        while k <= j {
            for l in &inserts[k].1 {
                let _ = writeln!(out, "+{l}");
            }
            k += 1;
        }
        added_before += added;
        i = j + 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insertions_become_hunks_with_context_and_shifted_new_lines() {
        let text: Vec<String> = (1..=20).map(|i| format!("l{i}")).collect();
        let lines: Vec<&str> = text.iter().map(String::as_str).collect();
        let diff = unified(
            "c.yaml",
            &lines,
            &[(5, vec!["A".into()]), (15, vec!["B".into(), "C".into()])],
        );
        let headers: Vec<&str> = diff.lines().filter(|l| l.starts_with("@@")).collect();
        assert_eq!(headers, ["@@ -3,6 +3,7 @@", "@@ -13,6 +14,8 @@"], "{diff}");
        assert!(diff.contains(" l5\n+A\n l6\n"), "{diff}");
        assert!(diff.contains(" l15\n+B\n+C\n l16\n"), "{diff}");
        // Close insertions share a hunk; one at the end has no context after.
        let merged = unified(
            "c.yaml",
            &lines,
            &[(5, vec!["A".into()]), (8, vec!["B".into()])],
        );
        assert_eq!(
            merged.lines().filter(|l| l.starts_with("@@")).count(),
            1,
            "{merged}"
        );
        let at_end = unified("c.yaml", &lines, &[(20, vec!["Z".into()])]);
        assert!(
            at_end.contains("@@ -18,3 +18,4 @@\n l18\n l19\n l20\n+Z\n"),
            "{at_end}"
        );
    }

    #[test]
    fn observations_are_grouped_and_proposed_from_the_commonest_kind() {
        let entry = |route: &str, field: &str, t: &str, n: u64, d: &[(&str, u64)]| {
            crate::observed_store::ObservedEntry {
                route: route.into(),
                entity: "Customer".into(),
                field: field.into(),
                json_type: t.into(),
                count: n,
                detected: d.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            }
        };
        let snapshot = ObservedSnapshot {
            version: SNAPSHOT_VERSION,
            entries: vec![
                entry(
                    "GET /a",
                    "contact",
                    "string",
                    10,
                    &[("email", 7), ("cn_mobile", 2)],
                ),
                entry("GET /b", "contact", "null", 3, &[]),
                entry("GET /a", "prefs.?", "boolean", 4, &[]),
                entry("GET /a", "?", "string", 1, &[]),
            ],
            overflow: 2,
        };
        let m = missing(&snapshot, None).unwrap();
        let names: Vec<&str> = m.fields.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(names, ["contact", "prefs"]);
        let contact = &m.fields[0];
        assert_eq!(contact.kind, Some(Detector::Email));
        assert_eq!(contact.count, 13);
        assert_eq!(contact.routes, ["GET /a", "GET /b"]);
        assert!(
            contact.proposal.why.contains("in 7 of 13 values"),
            "{}",
            contact.proposal.why
        );
        assert_eq!(m.fields[1].shape, Shape::Object);
        assert_eq!(m.unnamed_keys, ["Customer ?"]);
        let yaml = m.to_yaml();
        assert!(
            yaml.contains("prefs: { category: identity, level: 2, shape: object }"),
            "{yaml}"
        );
        assert!(yaml.contains("# 2 values were at places beyond"), "{yaml}");
    }
}
