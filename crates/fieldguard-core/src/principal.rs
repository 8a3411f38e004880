//! The caller as the decisions see it. Who the caller is (a verified
//! token, a trusted gateway's headers, a client certificate) is found out
//! by the proxy; only the facts it establishes live here.

use std::collections::BTreeMap;

/// The caller as policy sees it. Only identity facts live here; whether the
/// caller may do something is decided later by the policy engine.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// JWT `sub` or the gateway subject header.
    pub id: String,
    /// Sorted and deduplicated so that policies and audit logs see one
    /// canonical form regardless of how the issuer ordered them.
    pub roles: Vec<String>,
    pub mfa: bool,
    /// Purpose of use: the token's claim (or the trusted gateway's
    /// header); a request header only where the operator opted in
    /// (`identity.jwt.purpose_fallback_header`), and never over a claim.
    pub purpose: Option<String>,
    /// Only the claims the operator listed in `attribute_claims`, so policies
    /// cannot come to depend on incidental token contents.
    pub attributes: BTreeMap<String, AttrValue>,
    pub source: IdentitySource,
}

impl Principal {
    /// The caller that could not be identified, as shadow mode decides it:
    /// no id, no roles, no MFA (policies grant it nothing but what they
    /// grant everyone).
    pub fn unidentified() -> Self {
        Self {
            id: String::new(),
            roles: Vec::new(),
            mfa: false,
            purpose: None,
            attributes: BTreeMap::new(),
            source: IdentitySource::Unidentified,
        }
    }
}

/// Attribute values restricted to what the policy language can compare.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    String(String),
    Long(i64),
    Bool(bool),
    /// Sorted and deduplicated.
    Set(Vec<String>),
}

/// Recorded in audit logs: a gateway assertion and a verified token carry
/// different assurance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentitySource {
    Jwt,
    Gateway,
    /// A verified TLS client certificate listed as a service principal.
    ClientCertificate,
    /// No identity at all: a caller that failed identification, decided
    /// only in shadow mode (which relays it), so that its request is
    /// decided, observed and audited on its route like any other.
    Unidentified,
}
