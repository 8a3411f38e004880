//! Method + path-template matcher over canonical paths.
//!
//! The router only accepts a [`CanonicalPath`], so every spelling of a path
//! that [`normalize`](super::normalize) accepts reaches the same route, and
//! parameters are handed out already decoded.
//!
//! Precedence, decided here because it defines which policy applies:
//!
//! 1. **Path first.** Segments are matched left to right; at each position a
//!    literal segment is tried before a `{param}`, and if the literal branch
//!    yields no usable route further down, matching backtracks into the
//!    parameter branch. So `/customers/search` beats `/customers/{id}`, and
//!    `/customers/{id}/orders` still matches `/customers/search/orders` when
//!    no `/customers/search/orders` route exists.
//! 2. **Then method, at the matched template.** An exact method beats a `HEAD`
//!    request falling back to `GET`, which beats `*`. A template with no
//!    route usable for the request method does not count as a match, and the
//!    search continues (like backtracking), mirroring how method-aware
//!    upstream routers (Spring, Express) pick a handler.
//!
//! Templates are strict: they must already be canonical (no `//`, trailing
//! `/`, `.` or `..`), since silently normalising configuration would hide
//! typos. Literal segments are percent-decoded with the same rules as request
//! paths, so `/caf%C3%A9` and `/café` are the same literal, and `%7B` is how
//! to write a literal `{`. There are no catch-all/wildcard parameters.
//!
//! Lookups walk a segment trie: no allocation beyond an inline `SmallVec`
//! for captured parameters (spills to the heap only past 8 parameters), and
//! each trie node is visited at most once per lookup, so backtracking cannot
//! go exponential.

use std::fmt;

use smallvec::SmallVec;

use super::path::{CanonicalPath, MAX_SEGMENTS, PathError, decode_segment};

/// Maps `(method, path template)` to a value, typically a route's policy.
pub struct Router<T> {
    root: Node<T>,
    len: usize,
}

/// A successful lookup: what the caller needs to decide and to log which
/// rule applied.
#[derive(Debug)]
pub struct Match<'a, T> {
    /// The value given to [`Router::insert`].
    pub value: &'a T,
    /// The template exactly as given to [`Router::insert`], so audit logs
    /// and policies can refer to routes by their configured name.
    pub template: &'a str,
    /// Decoded parameter values, by name.
    pub params: Params<'a>,
}

/// Captured `{name}` values; decoded, so policies compare meaning, not
/// spelling. Kept inline for the common small case to avoid allocating per
/// request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params<'a> {
    pairs: SmallVec<[(&'a str, &'a str); 4]>,
}

impl<'a> Params<'a> {
    /// Looks a parameter up by template name; names are unique per template.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.pairs.iter().find(|(n, _)| *n == name).map(|&(_, v)| v)
    }

    /// Yields `(name, decoded value)` in template order, so callers can
    /// build policy context without knowing the template.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a str)> + '_ {
        self.pairs.iter().copied()
    }

    /// Number of captured parameters.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// True for templates without parameters.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

/// Why a route could not be registered. These are configuration errors, so
/// they carry the offending template for the operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// Templates are matched against origin-form paths only.
    #[error("route template {template:?} does not start with '/'")]
    NotAbsolute { template: String },
    /// Empty segments (`//`, trailing `/`) or `.`/`..` segments: a request
    /// path can never contain them after normalisation, so the route would
    /// be dead or mean something other than it reads.
    #[error("route template {template:?} is not canonical (empty, '.' or '..' segment)")]
    NonCanonical { template: String },
    /// `{` or `}` inside a segment that is not exactly `{name}`; parameters
    /// are whole segments only.
    #[error("route template {template:?} has a parameter that is not a whole segment")]
    PartialParam { template: String },
    /// Names must match `[A-Za-z_][A-Za-z0-9_]*` so policies can refer to
    /// them unambiguously.
    #[error("route template {template:?} has invalid parameter name {name:?}")]
    InvalidParamName { template: String, name: String },
    /// Two parameters with one name would make [`Params::get`] ambiguous.
    #[error("route template {template:?} repeats parameter name {name:?}")]
    DuplicateParam { template: String, name: String },
    /// A literal segment that no normalised request path could contain.
    #[error("route template {template:?} has an invalid literal segment: {source}")]
    InvalidLiteral {
        template: String,
        #[source]
        source: PathError,
    },
    /// Deeper than any normalised path can be, so it could never match.
    #[error("route template {template:?} has more than {MAX_SEGMENTS} segments")]
    TooManySegments { template: String },
    /// Same method and same shape (parameter names ignored) as an existing
    /// route: which one applies would otherwise depend on insertion order.
    #[error("route {method} {template:?} duplicates existing route {method} {existing:?}")]
    DuplicateRoute {
        method: String,
        template: String,
        existing: String,
    },
    /// Methods must be upper-case tokens or `*`; a lower-case `get` would
    /// never match a real `GET` request and silently leave a rule dead.
    #[error("invalid route method {method:?}")]
    InvalidMethod { method: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum MethodKey {
    Any,
    Exact(Box<str>),
}

impl MethodKey {
    fn parse(method: &str) -> Result<Self, RouteError> {
        if method == "*" {
            return Ok(MethodKey::Any);
        }
        let valid = !method.is_empty()
            && method.bytes().all(|b| {
                b.is_ascii_uppercase() || b.is_ascii_digit() || b"!#$%&'+-.^_`|~".contains(&b)
            });
        if valid {
            Ok(MethodKey::Exact(method.into()))
        } else {
            Err(RouteError::InvalidMethod {
                method: method.to_owned(),
            })
        }
    }

    fn as_str(&self) -> &str {
        match self {
            MethodKey::Any => "*",
            MethodKey::Exact(m) => m,
        }
    }

    fn is_exact(&self, method: &str) -> bool {
        matches!(self, MethodKey::Exact(m) if &**m == method)
    }
}

struct Entry<T> {
    method: MethodKey,
    template: Box<str>,
    /// Parameter names in segment order, parallel to captured values.
    param_names: Box<[Box<str>]>,
    value: T,
}

struct Node<T> {
    /// Sorted by decoded literal for binary search.
    literals: Vec<(Box<str>, Node<T>)>,
    param: Option<Box<Node<T>>>,
    /// Routes ending at this node, at most one per method key.
    entries: Vec<Entry<T>>,
}

impl<T> Node<T> {
    fn new() -> Self {
        Node {
            literals: Vec::new(),
            param: None,
            entries: Vec::new(),
        }
    }

    fn literal(&self, segment: &str) -> Option<&Node<T>> {
        self.literals
            .binary_search_by(|(k, _)| (**k).cmp(segment))
            .ok()
            .and_then(|i| self.literals.get(i))
            .map(|(_, n)| n)
    }

    fn literal_mut_or_insert(&mut self, segment: &str) -> &mut Node<T> {
        let i = match self.literals.binary_search_by(|(k, _)| (**k).cmp(segment)) {
            Ok(i) => i,
            Err(i) => {
                self.literals.insert(i, (segment.into(), Node::new()));
                i
            }
        };
        &mut self.literals[i].1
    }

    fn select(&self, method: &str) -> Option<&Entry<T>> {
        let exact = |m: &str| self.entries.iter().find(|e| e.method.is_exact(m));
        exact(method)
            .or_else(|| if method == "HEAD" { exact("GET") } else { None })
            .or_else(|| self.entries.iter().find(|e| e.method == MethodKey::Any))
    }

    fn find<'a>(
        &'a self,
        segments: &'a [String],
        method: &str,
        captured: &mut SmallVec<[&'a str; 8]>,
    ) -> Option<&'a Entry<T>> {
        let Some((first, rest)) = segments.split_first() else {
            return self.select(method);
        };
        if let Some(entry) = self
            .literal(first)
            .and_then(|child| child.find(rest, method, captured))
        {
            return Some(entry);
        }
        if let Some(child) = &self.param {
            captured.push(first);
            if let Some(entry) = child.find(rest, method, captured) {
                return Some(entry);
            }
            captured.pop();
        }
        None
    }
}

enum TemplateSegment {
    Literal(String),
    Param(String),
}

fn parse_template(template: &str) -> Result<Vec<TemplateSegment>, RouteError> {
    let owned = || template.to_owned();
    let Some(rest) = template.strip_prefix('/') else {
        return Err(RouteError::NotAbsolute { template: owned() });
    };
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for raw in rest.split('/') {
        if out.len() >= MAX_SEGMENTS {
            return Err(RouteError::TooManySegments { template: owned() });
        }
        if raw.is_empty() {
            return Err(RouteError::NonCanonical { template: owned() });
        }
        if let Some(name) = raw.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
            if name.contains(['{', '}']) {
                return Err(RouteError::PartialParam { template: owned() });
            }
            if !is_valid_param_name(name) {
                return Err(RouteError::InvalidParamName {
                    template: owned(),
                    name: name.to_owned(),
                });
            }
            let duplicate = out
                .iter()
                .any(|s| matches!(s, TemplateSegment::Param(n) if n == name));
            if duplicate {
                return Err(RouteError::DuplicateParam {
                    template: owned(),
                    name: name.to_owned(),
                });
            }
            out.push(TemplateSegment::Param(name.to_owned()));
            continue;
        }
        if raw.contains(['{', '}']) {
            return Err(RouteError::PartialParam { template: owned() });
        }
        let literal = decode_segment(raw).map_err(|source| RouteError::InvalidLiteral {
            template: owned(),
            source,
        })?;
        if literal == "." || literal == ".." {
            return Err(RouteError::NonCanonical { template: owned() });
        }
        out.push(TemplateSegment::Literal(literal));
    }
    Ok(out)
}

fn is_valid_param_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl<T> Router<T> {
    /// An empty router; routes are added with [`Router::insert`].
    pub fn new() -> Self {
        Router {
            root: Node::new(),
            len: 0,
        }
    }

    /// Registers a route. `method` is an upper-case HTTP method token
    /// (`"GET"`, `"POST"`, ...) or `"*"` for any method; `template` is a
    /// canonical path where whole segments may be `{name}` parameters.
    ///
    /// Fails instead of overriding so that conflicting configuration is
    /// caught at load time; on error the router is unchanged.
    pub fn insert(&mut self, method: &str, template: &str, value: T) -> Result<(), RouteError> {
        let method_key = MethodKey::parse(method)?;
        let segments = parse_template(template)?;

        let mut node = &mut self.root;
        let mut param_names = Vec::new();
        for segment in segments {
            node = match segment {
                TemplateSegment::Literal(lit) => node.literal_mut_or_insert(&lit),
                TemplateSegment::Param(name) => {
                    param_names.push(name.into_boxed_str());
                    node.param.get_or_insert_with(|| Box::new(Node::new()))
                }
            };
        }
        if let Some(existing) = node.entries.iter().find(|e| e.method == method_key) {
            return Err(RouteError::DuplicateRoute {
                method: method_key.as_str().to_owned(),
                template: template.to_owned(),
                existing: existing.template.to_string(),
            });
        }
        node.entries.push(Entry {
            method: method_key,
            template: template.into(),
            param_names: param_names.into_boxed_slice(),
            value,
        });
        self.len += 1;
        Ok(())
    }

    /// Finds the route deciding this request (see the module docs for
    /// precedence). `method` is compared case-sensitively, as HTTP requires;
    /// a `HEAD` request falls back to the `GET` route, and the caller should
    /// then decide as for `GET`.
    pub fn at<'a>(&'a self, method: &str, path: &'a CanonicalPath) -> Option<Match<'a, T>> {
        let mut captured: SmallVec<[&'a str; 8]> = SmallVec::new();
        let entry = self.root.find(path.segments(), method, &mut captured)?;
        let pairs = entry
            .param_names
            .iter()
            .map(|n| &**n)
            .zip(captured)
            .collect();
        Some(Match {
            value: &entry.value,
            template: &entry.template,
            params: Params { pairs },
        })
    }

    /// Number of registered routes (each method/template pair counts once).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no route is registered, i.e. every lookup fails.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<T> Default for Router<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for Router<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn walk<T>(node: &Node<T>, list: &mut fmt::DebugList<'_, '_>) {
            for e in &node.entries {
                list.entry(&format_args!("{} {}", e.method.as_str(), e.template));
            }
            for (_, child) in &node.literals {
                walk(child, list);
            }
            if let Some(child) = &node.param {
                walk(child, list);
            }
        }
        let mut list = f.debug_list();
        walk(&self.root, &mut list);
        list.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::path::normalize;
    use proptest::prelude::*;
    use proptest::test_runner::RngSeed;

    fn p(raw: &str) -> CanonicalPath {
        match normalize(raw) {
            Ok(p) => p,
            Err(e) => panic!("{raw:?}: {e}"),
        }
    }

    /// `(template, value, params)` of a lookup, owned for compact assertions.
    type Hit = (String, &'static str, Vec<(String, String)>);

    fn hit(r: &Router<&'static str>, method: &str, path: &CanonicalPath) -> Option<Hit> {
        r.at(method, path).map(|m| {
            let params = m
                .params
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            (m.template.to_owned(), *m.value, params)
        })
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn demo() -> Router<&'static str> {
        let mut r = Router::new();
        r.insert("GET", "/", "root").unwrap();
        r.insert("GET", "/customers", "list").unwrap();
        r.insert("GET", "/customers/search", "search").unwrap();
        r.insert("GET", "/customers/{id}", "show").unwrap();
        r.insert("PUT", "/customers/{cid}", "update").unwrap();
        r.insert("GET", "/customers/{id}/orders", "orders").unwrap();
        r.insert("GET", "/customers/{id}/orders/{order_id}", "order")
            .unwrap();
        r.insert("*", "/health", "health").unwrap();
        r.insert("GET", "/health", "health-get").unwrap();
        r
    }

    #[test]
    fn basic_matching_and_params() {
        let r = demo();
        assert_eq!(r.len(), 9);
        assert!(!r.is_empty());
        let path = p("/customers/c-1001/orders/o-7");
        let m = r.at("GET", &path).unwrap();
        assert_eq!(*m.value, "order");
        assert_eq!(m.template, "/customers/{id}/orders/{order_id}");
        assert_eq!(m.params.get("id"), Some("c-1001"));
        assert_eq!(m.params.get("order_id"), Some("o-7"));
        assert_eq!(m.params.get("nope"), None);
        assert_eq!(m.params.len(), 2);
        assert_eq!(hit(&r, "GET", &p("/")).unwrap().1, "root");
        assert_eq!(hit(&r, "GET", &p("/customers")).unwrap().1, "list");
        assert!(hit(&r, "GET", &p("/customers/c-1001/invoices")).is_none());
        assert!(hit(&r, "GET", &p("/nothing")).is_none());
    }

    #[test]
    fn dodges_reach_the_same_route() {
        let r = demo();
        let want = hit(&r, "GET", &p("/customers/c-1001")).unwrap();
        assert_eq!(want.2, pairs(&[("id", "c-1001")]));
        for dodge in [
            "/customers/%63-1001",
            "//customers///c-1001",
            "/customers/./c-1001",
            "/customers/c-1001/",
            "/orders/../customers/c-1001",
            "/%63ustomers/c%2d1001",
            "/customers/x/%2e%2e/c-1001",
        ] {
            let path = p(dodge);
            assert_eq!(hit(&r, "GET", &path), Some(want.clone()), "{dodge}");
        }
    }

    #[test]
    fn params_are_decoded() {
        let r = demo();
        let path = p("/customers/caf%c3%a9%20x");
        assert_eq!(r.at("GET", &path).unwrap().params.get("id"), Some("café x"));
        // Double encoding stays literal in the parameter.
        let path = p("/customers/%252e%252e");
        assert_eq!(r.at("GET", &path).unwrap().params.get("id"), Some("%2e%2e"));
    }

    #[test]
    fn literal_beats_param() {
        let r = demo();
        assert_eq!(hit(&r, "GET", &p("/customers/search")).unwrap().1, "search");
        assert_eq!(hit(&r, "GET", &p("/customers/searc")).unwrap().1, "show");
    }

    #[test]
    fn backtracks_from_literal_into_param() {
        let r = demo();
        let got = hit(&r, "GET", &p("/customers/search/orders")).unwrap();
        assert_eq!(got.1, "orders");
        assert_eq!(got.2, pairs(&[("id", "search")]));
    }

    #[test]
    fn backtracks_across_several_levels() {
        let mut r = Router::new();
        r.insert("GET", "/a/b/c/d", "literal").unwrap();
        r.insert("GET", "/a/{x}/c/{y}/e", "params").unwrap();
        r.insert("GET", "/a/b/{z}/d/e/f", "deep").unwrap();
        let got = hit(&r, "GET", &p("/a/b/c/d/e")).unwrap();
        assert_eq!(got.1, "params");
        assert_eq!(got.2, pairs(&[("x", "b"), ("y", "d")]));
        assert_eq!(hit(&r, "GET", &p("/a/b/c/d")).unwrap().1, "literal");
        assert_eq!(hit(&r, "GET", &p("/a/b/c/d/e/f")).unwrap().1, "deep");
    }

    #[test]
    fn param_matches_exactly_one_segment() {
        let r = demo();
        assert!(hit(&r, "PUT", &p("/customers")).is_none());
        assert!(hit(&r, "PUT", &p("/customers/")).is_none());
        assert!(hit(&r, "PUT", &p("/customers//")).is_none());
        assert!(hit(&r, "PUT", &p("/customers/a/b")).is_none());
    }

    #[test]
    fn method_is_case_sensitive() {
        let r = demo();
        let path = p("/customers/c-1");
        assert!(r.at("get", &path).is_none());
        assert!(r.at("Get", &path).is_none());
        assert_eq!(hit(&r, "GET", &path).unwrap().1, "show");
        assert_eq!(hit(&r, "PUT", &path).unwrap().1, "update");
        assert_eq!(r.at("PUT", &path).unwrap().params.get("cid"), Some("c-1"));
        assert!(r.at("DELETE", &path).is_none());
    }

    #[test]
    fn exact_method_beats_any() {
        let r = demo();
        let path = p("/health");
        assert_eq!(hit(&r, "GET", &path).unwrap().1, "health-get");
        assert_eq!(hit(&r, "POST", &path).unwrap().1, "health");
        // `*` matches any request method string, even a non-standard one.
        assert_eq!(hit(&r, "get", &path).unwrap().1, "health");
    }

    #[test]
    fn head_falls_back_to_get() {
        let mut r = demo();
        assert_eq!(hit(&r, "HEAD", &p("/customers/c-1")).unwrap().1, "show");
        // GET beats `*` for HEAD requests ...
        assert_eq!(hit(&r, "HEAD", &p("/health")).unwrap().1, "health-get");
        // ... and an explicit HEAD route beats both.
        r.insert("HEAD", "/health", "health-head").unwrap();
        assert_eq!(hit(&r, "HEAD", &p("/health")).unwrap().1, "health-head");
        // Only HEAD falls back; OPTIONS does not become GET.
        assert!(hit(&r, "OPTIONS", &p("/customers/c-1")).is_none());
        // And only to GET, never to another method.
        let mut r = Router::new();
        r.insert("POST", "/x", "post").unwrap();
        assert!(hit(&r, "HEAD", &p("/x")).is_none());
    }

    #[test]
    fn method_aware_backtracking() {
        let mut r = Router::new();
        r.insert("POST", "/customers/search", "search").unwrap();
        r.insert("GET", "/customers/{id}", "show").unwrap();
        r.insert("*", "/customers/{id}/any", "any").unwrap();
        let got = hit(&r, "GET", &p("/customers/search")).unwrap();
        assert_eq!(got.1, "show");
        assert_eq!(got.2, pairs(&[("id", "search")]));
        assert_eq!(
            hit(&r, "POST", &p("/customers/search")).unwrap().1,
            "search"
        );
        // Path specificity is decided before method: a literal `*` route
        // beats a parameterised exact-method route.
        let mut r = Router::new();
        r.insert("*", "/customers/search", "any-search").unwrap();
        r.insert("GET", "/customers/{id}", "show").unwrap();
        assert_eq!(
            hit(&r, "GET", &p("/customers/search")).unwrap().1,
            "any-search"
        );
    }

    #[test]
    fn template_literals_are_decoded() {
        let mut r = Router::new();
        r.insert("GET", "/caf%C3%A9/{x}", "cafe").unwrap();
        r.insert("GET", "/%7Bid%7D", "brace").unwrap();
        assert_eq!(hit(&r, "GET", &p("/café/1")).unwrap().1, "cafe");
        assert_eq!(hit(&r, "GET", &p("/caf%c3%a9/1")).unwrap().1, "cafe");
        assert_eq!(hit(&r, "GET", &p("/%7bid%7d")).unwrap().1, "brace");
        assert_eq!(hit(&r, "GET", &p("/{id}")).unwrap().1, "brace");
        assert!(matches!(
            r.insert("GET", "/caf%c3%a9/{y}", "dup"),
            Err(RouteError::DuplicateRoute { .. })
        ));
        assert!(matches!(
            r.insert("GET", "/café/{y}", "dup"),
            Err(RouteError::DuplicateRoute { .. })
        ));
    }

    #[test]
    fn bad_templates_rejected() {
        let mut r: Router<()> = Router::new();
        type Check = fn(&RouteError) -> bool;
        let cases: &[(&str, Check)] = &[
            ("customers", |e| matches!(e, RouteError::NotAbsolute { .. })),
            ("", |e| matches!(e, RouteError::NotAbsolute { .. })),
            ("/customers//{id}", |e| {
                matches!(e, RouteError::NonCanonical { .. })
            }),
            ("/customers/", |e| {
                matches!(e, RouteError::NonCanonical { .. })
            }),
            ("//", |e| matches!(e, RouteError::NonCanonical { .. })),
            ("/a/./b", |e| matches!(e, RouteError::NonCanonical { .. })),
            ("/a/../b", |e| matches!(e, RouteError::NonCanonical { .. })),
            ("/a/%2e%2e", |e| {
                matches!(e, RouteError::NonCanonical { .. })
            }),
            ("/a-{id}", |e| matches!(e, RouteError::PartialParam { .. })),
            ("/{id}-x", |e| matches!(e, RouteError::PartialParam { .. })),
            ("/{a}{b}", |e| matches!(e, RouteError::PartialParam { .. })),
            ("/{{a}}", |e| matches!(e, RouteError::PartialParam { .. })),
            ("/{id", |e| matches!(e, RouteError::PartialParam { .. })),
            ("/id}", |e| matches!(e, RouteError::PartialParam { .. })),
            ("/{}", |e| matches!(e, RouteError::InvalidParamName { .. })),
            ("/{1a}", |e| {
                matches!(e, RouteError::InvalidParamName { .. })
            }),
            ("/{a-b}", |e| {
                matches!(e, RouteError::InvalidParamName { .. })
            }),
            ("/{a b}", |e| {
                matches!(e, RouteError::InvalidParamName { .. })
            }),
            ("/{é}", |e| {
                matches!(e, RouteError::InvalidParamName { .. })
            }),
            ("/{id}/x/{id}", |e| {
                matches!(e, RouteError::DuplicateParam { .. })
            }),
            ("/a%2Fb", |e| {
                matches!(
                    e,
                    RouteError::InvalidLiteral {
                        source: PathError::EncodedSlash,
                        ..
                    }
                )
            }),
            ("/a\\b", |e| {
                matches!(
                    e,
                    RouteError::InvalidLiteral {
                        source: PathError::Backslash,
                        ..
                    }
                )
            }),
            ("/a;b", |e| {
                matches!(
                    e,
                    RouteError::InvalidLiteral {
                        source: PathError::Semicolon,
                        ..
                    }
                )
            }),
            ("/a%zz", |e| {
                matches!(
                    e,
                    RouteError::InvalidLiteral {
                        source: PathError::InvalidPercentEncoding,
                        ..
                    }
                )
            }),
            ("/a%00", |e| {
                matches!(
                    e,
                    RouteError::InvalidLiteral {
                        source: PathError::ControlCharacter,
                        ..
                    }
                )
            }),
            ("/a%FF", |e| {
                matches!(
                    e,
                    RouteError::InvalidLiteral {
                        source: PathError::InvalidUtf8,
                        ..
                    }
                )
            }),
        ];
        for (template, check) in cases {
            match r.insert("GET", template, ()) {
                Err(e) => assert!(check(&e), "{template:?}: unexpected {e:?}"),
                Ok(()) => panic!("{template:?} accepted"),
            }
        }
        let deep = "/a".repeat(MAX_SEGMENTS + 1);
        assert!(matches!(
            r.insert("GET", &deep, ()),
            Err(RouteError::TooManySegments { .. })
        ));
        assert!(r.insert("GET", &"/a".repeat(MAX_SEGMENTS), ()).is_ok());
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn bad_methods_rejected() {
        let mut r: Router<()> = Router::new();
        for method in ["", "get", "Get", "G ET", "GET*", "**", "GÉT", "GET\n"] {
            assert!(
                matches!(
                    r.insert(method, "/x", ()),
                    Err(RouteError::InvalidMethod { .. })
                ),
                "{method:?}"
            );
        }
        for method in ["GET", "M-SEARCH", "PROPFIND", "*"] {
            assert!(r.insert(method, "/x", ()).is_ok(), "{method:?}");
        }
        assert!(!r.is_empty() && r.len() == 4);
    }

    #[test]
    fn duplicate_routes_rejected() {
        let mut r = Router::new();
        r.insert("GET", "/a/{x}", 1).unwrap();
        let e = r.insert("GET", "/a/{y}", 2).unwrap_err();
        assert_eq!(
            e,
            RouteError::DuplicateRoute {
                method: "GET".into(),
                template: "/a/{y}".into(),
                existing: "/a/{x}".into(),
            }
        );
        assert!(r.insert("POST", "/a/{y}", 3).is_ok());
        assert!(r.insert("*", "/a/{z}", 4).is_ok());
        assert!(r.insert("*", "/a/{w}", 5).is_err());
        assert!(r.insert("GET", "/a/b", 6).is_ok());
        assert_eq!(r.len(), 4);
        // Params reflect the names of the route that matched.
        let path = p("/a/v");
        assert_eq!(r.at("POST", &path).unwrap().params.get("y"), Some("v"));
        assert_eq!(r.at("GET", &path).unwrap().params.get("x"), Some("v"));
        assert_eq!(r.at("PATCH", &path).unwrap().params.get("z"), Some("v"));
    }

    #[test]
    fn empty_router() {
        let r: Router<u8> = Router::default();
        assert!(r.is_empty());
        assert_eq!(r.len(), 0);
        assert!(r.at("GET", &p("/")).is_none());
        assert_eq!(format!("{r:?}"), "[]");
        assert_eq!(format!("{:?}", demo()).matches("GET").count(), 7);
    }

    #[test]
    fn many_params_spill_correctly() {
        let mut r = Router::new();
        let template: String = (0..20).map(|i| format!("/{{p{i}}}")).collect();
        r.insert("GET", &template, "deep").unwrap();
        let raw: String = (0..20).map(|i| format!("/v{i}")).collect();
        let path = p(&raw);
        let m = r.at("GET", &path).unwrap();
        assert_eq!(m.params.len(), 20);
        assert_eq!(m.params.get("p13"), Some("v13"));
    }

    fn config() -> ProptestConfig {
        ProptestConfig {
            failure_persistence: None,
            rng_seed: RngSeed::Fixed(0x726f_7574_6572),
            ..ProptestConfig::with_cases(256)
        }
    }

    fn raw_path() -> impl Strategy<Value = String> {
        let piece = prop::sample::select(vec![
            "customers",
            "%63ustomers",
            "c-1001",
            "%63-1001",
            "orders",
            "%6Frders",
            "search",
            ".",
            "..",
            "%2e",
            "%2E%2E",
            "",
            "%252e",
            "é",
            "%C3%A9",
            "health",
            "o-7",
            "%2F",
        ]);
        prop::collection::vec(piece, 0..7).prop_map(|pieces| {
            let mut s = String::from("/");
            s.push_str(&pieces.join("/"));
            s
        })
    }

    proptest! {
        #![proptest_config(config())]

        /// Re-normalising the canonical string (what the upstream receives)
        /// must land on the same route with the same parameters.
        #[test]
        fn canonical_string_routes_identically(raw in raw_path(), method in prop::sample::select(vec!["GET", "HEAD", "PUT", "POST", "get"])) {
            let r = demo();
            if let Ok(path) = normalize(&raw) {
                let again = normalize(path.as_str());
                prop_assert_eq!(again.as_ref(), Ok(&path));
                if let Ok(again) = again {
                    prop_assert_eq!(hit(&r, method, &path), hit(&r, method, &again));
                }
            }
        }

        /// A route whose template is the canonical path itself, or one
        /// parameter per segment, matches and yields the decoded segments.
        #[test]
        fn canonical_path_as_template_matches(raw in raw_path()) {
            if let Ok(path) = normalize(&raw) {
                let mut r = Router::new();
                prop_assert!(r.insert("GET", path.as_str(), "literal").is_ok());
                let m = r.at("GET", &path);
                prop_assert_eq!(m.map(|m| (*m.value, m.params.len())), Some(("literal", 0)));

                let params: String = (0..path.segments().len()).map(|i| format!("/{{p{i}}}")).collect();
                let template = if params.is_empty() { String::from("/") } else { params };
                let mut r = Router::new();
                prop_assert!(r.insert("*", &template, "params").is_ok());
                let values: Vec<&str> = r
                    .at("PATCH", &path)
                    .map(|m| m.params.iter().map(|(_, v)| v).collect())
                    .unwrap_or_default();
                let expected: Vec<&str> = path.segments().iter().map(String::as_str).collect();
                prop_assert_eq!(values, expected);
            }
        }

        #[test]
        fn lookup_never_panics(raw in "/[a-z%0-9./]{0,40}", method in "[A-Za-z*]{0,6}") {
            let r = demo();
            if let Ok(path) = normalize(&raw) {
                let _ = r.at(&method, &path);
            }
        }
    }
}
