//! Header names as backends read them. A header the proxy strips or
//! refuses must be found in every spelling a backend folds to the same
//! name, or a client could slip it past under another spelling; identity
//! (trusted gateway headers) and the proxy (stripping, ambiguity checks)
//! share these rules, so they live here, beside the decisions.

use http::header::{HeaderMap, HeaderName};

/// True when a backend would read `a` and `b` as one header: names compared
/// without regard to ASCII case, with `_` and `-` equivalent. CGI, WSGI,
/// PHP and nginx (`underscores_in_headers`) turn `X-Fieldguard-Subject`
/// and `x_fieldguard_subject` into the same variable (`HTTP_X_FIELDGUARD_SUBJECT`),
/// so a header the proxy strips or refuses must be found in every such
/// spelling, not only in the one it was configured with.
pub fn same_after_folding(a: &str, b: &str) -> bool {
    let fold = |c: u8| match c {
        b'_' => b'-',
        c => c.to_ascii_lowercase(),
    };
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| fold(x) == fold(y))
}

/// True when `name` is one of `names` in some spelling a backend folds to
/// the same name ([`same_after_folding`]).
pub fn folds_to_any(name: &HeaderName, names: &[HeaderName]) -> bool {
    names
        .iter()
        .any(|n| same_after_folding(name.as_str(), n.as_str()))
}

/// Removes every header that folds to one of `names` (all their values).
pub fn strip_folded(headers: &mut HeaderMap, names: &[HeaderName]) {
    if names.is_empty() || !headers.keys().any(|k| folds_to_any(k, names)) {
        return;
    }
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|k| folds_to_any(k, names))
        .cloned()
        .collect();
    for name in doomed {
        headers.remove(name);
    }
}
