//! One audit record per request, built from the request's [`Exchange`].
//!
//! A record holds names, ids and counts only: never field values, tokens,
//! header values or query strings. Field paths come from the catalogue (by
//! index), so even they cannot carry request data; refused write fields are
//! body keys and dropped response headers are names the upstream chose, so
//! both are capped in number and length.
//!
//! Struct fields are declared in bytewise-sorted order at every level, so
//! `serde_json::to_vec` of a record *is* its canonical form (see
//! [`super::chain`]); a unit test holds this.

use crate::exchange::Exchange;
use crate::identity::IdentitySource;
use fieldguard_core::decisions::Decisions;
use fieldguard_core::redact::Outcome;
use fieldguard_core::time::rfc3339_millis;
use serde::Serialize;
use std::collections::BTreeMap;

/// Version of the record format.
///
/// 2: request records refer to definition records (`def`) for what they
/// share, and omit `client_aborted` when the client did not leave.
///
/// 3: what every request of a kind has in common moves into the
/// definition too (a standard method, the statuses, each disclosed
/// entity's name and count, what the request counted against a budget it
/// took over); request lines carry neither `alg` nor `prev` (the previous
/// line is their link, see [`super::chain`]); hashes and ids are spelled
/// in base64url. A one-record read's line went from 541 to about 350
/// bytes (docs/audit-and-metrics.md).
///
/// 4: a chain is one writer run. It starts with a [`GenesisRecord`] that
/// names the chain (pod, host, process, start time, policy-set version) and
/// ends, on a clean shutdown, with a [`SealRecord`]; every line carries the
/// chain's 8-character tag in `c`, so the lines of many chains merged into
/// one stream (a log store) can be told apart, and a line without `prev`
/// links to the previous line *of its chain* (see [`super::chain`]). About
/// 15 bytes more per line than format 3.
pub const RECORD_VERSION: u32 = 4;
/// At most this many refused write fields are listed (the count is exact).
const MAX_REFUSED_FIELDS: usize = 32;
/// Refused field names longer than this are cut (they are client-chosen keys).
const MAX_FIELD_NAME: usize = 128;
/// At most this many dropped response-header names are listed (the count is
/// exact); the upstream chooses them.
const MAX_HEADER_NAMES: usize = 16;
/// Dropped header names longer than this are cut.
const MAX_HEADER_NAME: usize = 64;

/// One request's record, as the request's task builds it: what only this
/// request says, and what requests of the same kind share. The writer
/// writes `shared` once per file as a [`DefinitionRecord`] and `line`
/// refers to it by id; readers merge them back ([`super::expand`]).
#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub line: RequestLine,
    pub shared: Shared,
}

/// The line a request writes: the facts particular to it (who, from
/// where, which resource and records, timings, budget use) and the id of
/// the definition that holds the rest. Values a client chooses without
/// bound (resource ids, refused field names, an extension method) are
/// kept here, never in a definition: otherwise varying them would make
/// every request define something new, and the writer's memory of
/// definitions churn. Values from a small fixed set that requests of a
/// kind share (a standard method, the statuses) go into the definition.
///
/// No `alg` and no `prev`: the chain's key is named by the definitions
/// (and a verifier is told it), and the link is the hash of the line
/// before, which a definition always precedes in its file.
#[derive(Debug, Clone, Serialize)]
pub struct RequestLine {
    /// For each budget this request took (or would have taken) over its
    /// limit, in the order of the definition's `budget`: what the window
    /// held before it; absent when none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget: Option<Vec<BudgetUse>>,
    /// The chain's tag (set by the writer): which chain this line belongs
    /// to when lines of several are merged.
    pub c: String,
    /// The caller's IP address (the TCP peer).
    pub client: String,
    /// Absent when the answer was handed to the client's connection. Else
    /// the client had left, and this says how far the exchange had got when
    /// that was seen: `before_upstream` (nothing was sent upstream, and
    /// nothing will be), `during_upstream` (the upstream had the request;
    /// it still finished and its status is in `upstream_status`) or
    /// `after_upstream` (the upstream had answered). `status` is then the
    /// status of the answer nobody received.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_aborted: Option<&'static str>,
    /// Id of the definition record (earlier in the chain, and in the same
    /// file) that holds the rest of this record; set by the writer.
    pub def: String,
    pub latency_us: Latency,
    /// An extension method (one a client made up); a standard one is in
    /// the definition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Who: the principal's id (its roles, MFA, purpose and source are in
    /// the definition); absent when identification failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal: Option<PrincipalId>,
    /// Refused write fields, when there were any: their names are body
    /// keys the client chose. Absent when none was refused (the definition
    /// then holds the empty list).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused_fields: Option<RefusedFields>,
    pub request_id: String,
    /// The request-level resource's id (its type is in the definition).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<ResourceId>,
    /// A streamed response cut off after its head was sent (the client
    /// got an incomplete body, never a well-formed one): why
    /// (`unreadable_response`, `record_too_large`, `response_too_large`,
    /// `upstream_timeout`, `upstream_failed`, `budget_exceeded`,
    /// `budget_store_unavailable`,
    /// `client_stalled`, `client_gone`). Absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_aborted: Option<&'static str>,
    /// Which records the response disclosed, and what the backstop masked;
    /// absent when neither. For a streamed response: up to where it ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_body: Option<BodyFacts>,
    /// `true` when the response body was redacted and sent record by
    /// record (a long list); absent when it was buffered.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub response_streamed: bool,
    pub seq: u64,
    /// The same for what shadow mode would have shown, and the write
    /// fields it would have refused; absent when none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow: Option<ShadowFacts>,
    pub time: String,
    pub v: u32,
    /// The fields an allowed write carried upstream, as catalogue paths
    /// (names, never values); absent when the request wrote nothing.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub written: Vec<String>,
}

/// What requests of one kind share: route, method and action, the
/// decision and the policies behind it, the policy-set version, the
/// principal's roles and attributes, every field outcome with its deciding
/// policies, and the statuses. It is written once per file as a definition
/// and merged back into each record that refers to it. Counts are part of
/// it, so a 60-record and a 100-record page of the same list are two
/// definitions; so are statuses, but a response with another status
/// (an upstream 404, a refusal) has other outcomes anyway.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Shared {
    pub action: Option<String>,
    /// Bulk-read budgets the request took over their limit, as configured
    /// (what the request used is in its line); absent when none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget: Option<Vec<BudgetFlagRecord>>,
    /// The shared budget store could not answer for this request: what
    /// its budgets did instead (`local`: counted by this replica against
    /// its share of the limit; `refuse`: answered 503; `allow`: served
    /// uncounted); absent when the store answered (or none is shared).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget_store_fallback: Option<Vec<&'static str>>,
    /// `allow`, `deny` or `passthrough`.
    pub decision: &'static str,
    /// Why the caller could not be identified (401), else null.
    pub identity_error: Option<&'static str>,
    /// The request's method, when it is a standard one (else the line
    /// holds it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<&'static str>,
    /// Ids of the policies that determined the request-level decision.
    pub policies: Vec<String>,
    /// Policies that failed to evaluate (ids only; the error text can quote
    /// attribute values and is logged to the operator log instead).
    pub policy_errors: Vec<String>,
    /// Id of the key that signed the set that decided
    /// (`policies.verify_keys`); absent when signatures are not required.
    /// (Fields are in byte order: the struct serialises canonically.)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_signed_by: Option<String>,
    /// Version hash of the policy set that decided.
    pub policy_version: String,
    /// The principal's roles and attributes; null when identification
    /// failed.
    pub principal: Option<PrincipalShared>,
    /// The proxy's refusal code when it answered itself, else null.
    pub refusal: Option<&'static str>,
    /// `{"count": 0, "fields": []}` when no write field was refused (else
    /// the line holds them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused_fields: Option<RefusedFields>,
    pub resource: Option<ResourceType>,
    /// What response filtering did, when the response body was inspected.
    pub response_body: Option<BodyShared>,
    /// Upstream response headers an inspected route's allow-list dropped
    /// (names only), null when none was.
    pub response_headers_dropped: Option<DroppedHeaders>,
    /// Route template (never the raw path), null when no route matched.
    pub route: Option<String>,
    /// Shadow mode and observed policy sets: what was computed but not
    /// enforced (`would_deny`, `would_redact`) and every disagreement.
    pub shadow: Option<ShadowShared>,
    /// Status of the proxy's answer: sent to the client, unless the line's
    /// `client_aborted` says the client had left.
    pub status: u16,
    /// The upstream's status; null when nothing was forwarded or no answer
    /// came.
    pub upstream_status: Option<u16>,
}

/// A record of the chain that holds what the records referring to it
/// (`def`) share. Its id is derived from its content, so the same content
/// always gets the same id and a reader can check that the two match.
/// Fields in bytewise order, like [`RequestLine`]'s.
#[derive(Debug, Clone, Serialize)]
pub struct DefinitionRecord<'a> {
    pub alg: &'static str,
    /// The chain's tag.
    pub c: &'a str,
    /// The first 11 characters of SHA-256 over `shared`'s canonical JSON
    /// in base64url, 66 bits (all 43 if another content the writer
    /// remembers has those 11); see [`super::define::ID_LEN`].
    pub def: &'a str,
    /// Always [`DEFINITION_EVENT`].
    pub event: &'static str,
    /// The previous record's hash, spelled as `hash` is: a file's first
    /// line is always a definition (or a retention record), so each file
    /// names the record before it.
    pub prev: String,
    pub seq: u64,
    pub shared: &'a Shared,
    pub time: String,
    pub v: u32,
}

/// `event` of a [`DefinitionRecord`].
pub const DEFINITION_EVENT: &str = "definition";

/// A budget a request took over its limit, as configured (shared by every
/// request that took it over).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct BudgetFlagRecord {
    /// `alert`, `refuse` (answered 429) or `would_refuse` (shadow mode).
    pub action: &'static str,
    pub budget: String,
    /// What it counts: `records`, `fields`, `fields:identity:3+`.
    pub counts: String,
    /// The limit the count was held to: the budget's, or this replica's
    /// share of it (`limit / budgets.replicas`) while the shared store
    /// could not answer (`budget_store_fallback: [local]`).
    pub limit: u64,
    /// What the request disclosed (or would have) as the budget counts:
    /// set by the response's shape, like the outcome counts beside it.
    pub request: u64,
    pub role: String,
    /// `principal` or `role`.
    pub scope: &'static str,
    pub window_seconds: u64,
}

/// What a budget a request took over its limit held before it.
#[derive(Debug, Clone, Serialize)]
pub struct BudgetUse {
    /// Disclosed within the window before this request.
    pub used: u64,
}

/// A record of the chain that no request wrote: audit retention deleted
/// files. Written as soon as the deletion is done, so the chain itself says
/// which records went (`audit verify` accepts a chain that starts after
/// them only because a record like this says so). Fields in bytewise order,
/// like [`AuditRecord`]'s.
#[derive(Debug, Clone, Serialize)]
pub struct RetentionEvent<'a> {
    pub alg: &'static str,
    /// The chain's tag (of the chain writing this record).
    pub c: &'a str,
    /// Tags of the chains the first and last deleted records belonged to
    /// (null for a format 1-3 line, or where unreadable). A chain that
    /// continues in the files kept is the one of the last deleted record:
    /// `audit verify` accepts its later start because of this.
    pub deleted_c: [Option<String>; 2],
    pub deleted_files: u32,
    /// `seq` of the first and last deleted record (null where a deleted
    /// file could not be read).
    pub deleted_seq: [Option<u64>; 2],
    /// Always [`RETENTION_EVENT`]: what tells this record from a request's.
    pub event: &'static str,
    pub prev: String,
    pub seq: u64,
    pub time: String,
    pub v: u32,
}

/// `event` of a [`RetentionEvent`].
pub const RETENTION_EVENT: &str = "retention_deleted";

/// The first record of every chain (format 4): which writer run the chain
/// is. `chain` is the full id (`<pod or host>/<tag>`); every line of the
/// chain carries the tag alone in `c`. Fields in bytewise order.
#[derive(Debug, Clone, Serialize)]
pub struct GenesisRecord<'a> {
    pub alg: &'static str,
    pub c: &'a str,
    pub chain: &'a str,
    /// Always [`GENESIS_EVENT`].
    pub event: &'static str,
    /// The fieldguard version that wrote the chain.
    pub fieldguard: &'a str,
    /// The host name (in Kubernetes: the pod's name, unless overridden).
    pub host: &'a str,
    pub pid: u32,
    /// The pod (from the downward API: `FIELDGUARD_POD_NAME`,
    /// `FIELDGUARD_POD_UID`); null outside Kubernetes.
    pub pod: Option<PodRecord<'a>>,
    /// Version hash of the policy set loaded at start (each record names
    /// the version that decided it).
    pub policy_version: &'a str,
    /// Always the zero hash: a chain starts here.
    pub prev: String,
    /// What the file the writer continued held last: the run before it,
    /// so that a run deleted between two is noticeable. Absent when the
    /// file was new or empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<&'a serde_json::Value>,
    /// Always 0.
    pub seq: u64,
    /// When the writer started.
    pub time: String,
    pub v: u32,
}

/// The pod a chain's writer ran in.
#[derive(Debug, Clone, Serialize)]
pub struct PodRecord<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<&'a str>,
}

/// `event` of a [`GenesisRecord`].
pub const GENESIS_EVENT: &str = "genesis";

/// The last record of a chain whose writer stopped cleanly (format 4): a
/// chain without one was cut off (the process killed) or is still being
/// written. Fields in bytewise order.
#[derive(Debug, Clone, Serialize)]
pub struct SealRecord<'a> {
    pub alg: &'static str,
    pub c: &'a str,
    /// Request and event records of the chain before the seal (not the
    /// genesis, the definitions or the seal itself).
    pub count: u64,
    /// Always [`SEAL_EVENT`].
    pub event: &'static str,
    /// `seq` of the record before the seal.
    pub last_seq: u64,
    pub prev: String,
    /// Why the writer stopped: `shutdown` (SIGTERM, Ctrl-C), `error` (the
    /// process stopped serving because a listener failed), `closed` (the
    /// proxy let go of the audit trail).
    pub reason: &'a str,
    pub seq: u64,
    pub time: String,
    pub v: u32,
}

/// `event` of a [`SealRecord`].
pub const SEAL_EVENT: &str = "seal";

/// What shadow mode computed and did not enforce, as shared by requests
/// of one kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct ShadowShared {
    pub disagreements: Vec<DisagreementRecord>,
    /// `shadow`, `shadow_policies` or `candidate`.
    pub kind: &'static str,
    pub observed_version: Option<String>,
    pub would_deny: Option<WouldDenyRecord>,
    /// Upstream response headers the allow-list would have dropped (at most
    /// 16 names).
    pub would_drop_headers: Vec<String>,
    pub would_redact: Option<BodyShared>,
    /// `[]` when no write field would have been refused (else the line
    /// holds them: client-chosen names).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub would_refuse_fields: Option<Vec<String>>,
}

/// What shadow mode would have disclosed (and the backstop masked), and
/// the write fields it would have refused, for one request.
#[derive(Debug, Clone, Serialize)]
pub struct ShadowFacts {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub would_redact: Option<BodyFacts>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub would_refuse_fields: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct DroppedHeaders {
    pub count: usize,
    /// The first 16 names, each cut at 64 bytes.
    pub names: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct DisagreementRecord {
    pub enforced: String,
    pub observed: String,
    pub subject: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct WouldDenyRecord {
    pub policies: Vec<String>,
    pub reason: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    /// From the request's arrival to the response head.
    pub total: u64,
    /// Upstream round trip, when the request was forwarded.
    pub upstream: Option<u64>,
}

/// Who made the request (the rest of the principal is shared).
#[derive(Debug, Clone, Serialize)]
pub struct PrincipalId {
    pub id: String,
}

/// The principal's roles and attributes, shared by its requests.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct PrincipalShared {
    pub mfa: bool,
    pub purpose: Option<String>,
    pub roles: Vec<String>,
    /// `jwt`, `gateway` or `client_certificate`: how much the identity is worth.
    pub source: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct ResourceId {
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct ResourceType {
    #[serde(rename = "type")]
    pub type_name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
pub struct RefusedFields {
    pub count: usize,
    /// The first few refused fields, each `{field, reason}`.
    pub fields: Vec<RefusedField>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct RefusedField {
    pub field: String,
    /// `not_collected` or `not_permitted`.
    pub reason: &'static str,
}

/// What one response showed: per request, so never in a definition.
#[derive(Debug, Clone, Serialize)]
pub struct BodyFacts {
    /// Values the route's backstop masked, by detector (never the values);
    /// absent when none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backstop: Option<BackstopRecord>,
    /// Which records the caller received, by entity (ids in compact runs,
    /// bounded), in the order of the definition's `disclosed` (which names
    /// the entity and counts the records); absent when none was shown.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub disclosed: Vec<DisclosedRecord>,
}

/// What response filtering did, shared by responses of the same shape.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct BodyShared {
    /// Field outcomes per data category: `{"identity": {"full": 3, "masked": 1}}`.
    pub by_category: BTreeMap<&'static str, BTreeMap<&'static str, u32>>,
    /// For each entity the response disclosed records of: its name and
    /// how many (the line lists which, in the same order); absent when
    /// none was shown. Set by the response's shape, like the counts
    /// beside it, so it adds no kinds of its own.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub disclosed: Vec<DisclosedCount>,
    /// Catalogued containers whose value had another shape (removed);
    /// absent when none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub misshapen: Option<MemberNames>,
    /// Records the body held, and how many were hidden whole.
    pub records: u32,
    pub records_hidden: u32,
    /// Every masked or removed field, aggregated over the body's records.
    pub redacted: Vec<RedactedField>,
    /// Members the configuration does not name, so operators see what the
    /// catalogue is missing; absent when none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uncatalogued: Option<MemberNames>,
}

/// One entity a response disclosed records of, as requests of a kind
/// share it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct DisclosedCount {
    /// Records shown (exact, whatever the line's lists hold).
    pub count: u32,
    pub entity: String,
}

/// Which records of one entity a response disclosed (the entity and the
/// count are in the definition). `ids` holds record ids, and
/// `["first", "last"]` for a run of consecutive ids (`c-1001` to
/// `c-1060`); at most [`fieldguard_core::redact::disclosed::MAX_RUNS`] entries, the
/// rest counted in `omitted`.
#[derive(Debug, Clone, Serialize)]
pub struct DisclosedRecord {
    pub ids: Vec<serde_json::Value>,
    #[serde(skip_serializing_if = "is_zero")]
    pub omitted: u32,
    /// The customers the records are about (their `owner`), when that is
    /// not the record id itself (orders, events, tickets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subjects: Option<IdsRecord>,
}

/// A compact, bounded id list (see [`DisclosedRecord`]).
#[derive(Debug, Clone, Serialize)]
pub struct IdsRecord {
    pub ids: Vec<serde_json::Value>,
    #[serde(skip_serializing_if = "is_zero")]
    pub omitted: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// What a route's backstop masked: matches by detector.
#[derive(Debug, Clone, Serialize)]
pub struct BackstopRecord {
    pub count: u64,
    /// Matches by detector name (`cn_resident_id`, `email`, …).
    pub detectors: BTreeMap<&'static str, u32>,
}

/// Member names (never values) and how often they occurred.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct MemberNames {
    /// Occurrences in all (names beyond the listed ones included).
    pub count: u64,
    /// `passed` (the route passes unknown fields) or `removed` (in a
    /// shadow report: what enforcement would do).
    pub fate: &'static str,
    pub names: Vec<MemberName>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct MemberName {
    pub count: u32,
    /// The record's entity, or `(wrapper)` for the body around the records.
    pub entity: String,
    /// Dot path in the record (`address.id_card_number`), or JSONPath in
    /// the wrapper (`$.page`); keys that do not look like identifiers are
    /// written `?`.
    pub field: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct RedactedField {
    pub category: &'static str,
    pub count: u32,
    pub entity: String,
    /// Catalogue dot path (`payment.card_number`).
    pub field: String,
    /// `masked` or `removed`.
    pub outcome: &'static str,
    /// The policies that decided it: for `masked`, the permits of the
    /// masked form (and any forbid of the full value); for `removed`, the
    /// forbids. Empty: no policy allowed more (Cedar's default deny).
    pub policies: Vec<String>,
}

/// What a record reads besides its exchange: the policy set that decided
/// the request (its catalogue names the fields, its version is the
/// record's) and the key that signed that set.
#[derive(Clone, Copy)]
pub struct DecidedBy<'a> {
    pub decisions: &'a Decisions,
    pub signed_by: Option<&'a str>,
}

impl AuditRecord {
    /// The record of one finished request; `seq`, `prev`, `alg` and `def`
    /// are set by the writer when it chains the record.
    pub fn from_exchange(ex: &Exchange, rt: DecidedBy<'_>) -> Self {
        let decision = ex.decision.as_ref();
        let flags = ex.budget.as_ref().map(|b| &b.flags[..]).unwrap_or(&[]);
        let none_refused = ex.refused_fields.is_empty();
        let refused = refused_fields(&ex.refused_fields);
        let (body_shared, body_facts) = match &ex.filter {
            Some(f) => {
                let (shared, facts) = body_parts(f, rt);
                (Some(shared), facts)
            }
            None => (None, None),
        };
        let (shadow_shared, shadow_facts) = match &ex.shadow {
            Some(s) => {
                let (shared, facts) = shadow_parts(s, rt);
                (Some(shared), facts)
            }
            None => (None, None),
        };
        let method = standard_method(&ex.method);
        let line = RequestLine {
            c: String::new(),
            budget: (!flags.is_empty())
                .then(|| flags.iter().map(|f| BudgetUse { used: f.used }).collect()),
            client: ex.peer.ip().to_string(),
            client_aborted: ex.progress.aborted_at().map(|s| s.as_str()),
            def: String::new(),
            latency_us: Latency {
                total: micros(ex.started.elapsed()),
                upstream: ex.upstream_latency.map(micros),
            },
            method: method.is_none().then(|| ex.method.as_str().to_string()),
            principal: ex
                .principal
                .as_ref()
                .map(|p| PrincipalId { id: p.id.clone() }),
            refused_fields: refused,
            request_id: ex.request_id.clone(),
            resource: ex
                .resource
                .as_ref()
                .map(|(_, id)| ResourceId { id: id.clone() }),
            response_aborted: ex.response_aborted,
            response_body: body_facts,
            response_streamed: ex.response_streamed,
            seq: 0,
            shadow: shadow_facts,
            time: rfc3339_millis(ex.time),
            v: RECORD_VERSION,
            written: ex
                .written
                .iter()
                .filter_map(|f| rt.decisions.catalogue.fields().get(*f as usize))
                .map(|spec| spec.path.clone())
                .collect(),
        };
        let shared = Shared {
            action: ex.action.clone(),
            budget: budget_flags(flags),
            budget_store_fallback: ex
                .budget
                .as_ref()
                .filter(|b| !b.store_fallback.is_empty())
                .map(|b| b.store_fallback.iter().map(|f| f.as_str()).collect()),
            decision: ex.decision_label(),
            identity_error: ex.identity_error,
            method,
            policies: decision.map(|d| d.policies.clone()).unwrap_or_default(),
            policy_errors: decision
                .map(|d| d.errors.iter().map(|e| policy_error_summary(e)).collect())
                .unwrap_or_default(),
            policy_signed_by: rt.signed_by.map(str::to_string),
            policy_version: rt.decisions.engine.bundle.version.clone(),
            principal: ex.principal.as_ref().map(principal_shared),
            refusal: ex.refusal,
            refused_fields: none_refused.then(RefusedFields::default),
            resource: ex.resource.as_ref().map(|(t, _)| ResourceType {
                type_name: t.clone(),
            }),
            response_body: body_shared,
            response_headers_dropped: (!ex.dropped_headers.is_empty()).then(|| DroppedHeaders {
                count: ex.dropped_headers.len(),
                names: header_names(&ex.dropped_headers),
            }),
            route: ex.route.clone(),
            shadow: shadow_shared,
            status: ex.status,
            upstream_status: ex.upstream_status,
        };
        Self { line, shared }
    }
}

/// The refused request-body fields, when there are any (at most
/// [`MAX_REFUSED_FIELDS`] named).
fn refused_fields(fields: &[fieldguard_core::redact::Refusal]) -> Option<RefusedFields> {
    (!fields.is_empty()).then(|| RefusedFields {
        count: fields.len(),
        fields: fields
            .iter()
            .take(MAX_REFUSED_FIELDS)
            .map(|r| RefusedField {
                field: truncate(&r.field, MAX_FIELD_NAME),
                reason: r.reason.as_str(),
            })
            .collect(),
    })
}

/// What shadow mode would have done: the part records of a kind share,
/// and this record's own facts (if any).
fn shadow_parts(
    s: &crate::exchange::ShadowReport,
    rt: DecidedBy<'_>,
) -> (ShadowShared, Option<ShadowFacts>) {
    let (would_shared, would_facts) = match &s.would_redact {
        Some(f) => {
            let (shared, facts) = body_parts(f, rt);
            (Some(shared), facts)
        }
        None => (None, None),
    };
    let refuse: Vec<String> = s
        .would_refuse_fields
        .iter()
        .take(MAX_REFUSED_FIELDS)
        .map(|f| truncate(f, MAX_FIELD_NAME))
        .collect();
    let shared = ShadowShared {
        disagreements: s
            .disagreements
            .iter()
            .map(|d| DisagreementRecord {
                enforced: d.enforced.clone(),
                observed: d.observed.clone(),
                subject: truncate(&d.subject, MAX_FIELD_NAME),
            })
            .collect(),
        kind: s.kind,
        observed_version: s.observed_version.clone(),
        would_deny: s.would_deny.as_ref().map(|w| WouldDenyRecord {
            policies: w.policies.clone(),
            reason: w.reason,
        }),
        would_drop_headers: header_names(&s.would_drop_headers),
        would_redact: would_shared,
        would_refuse_fields: refuse.is_empty().then(Vec::new),
    };
    let facts = (would_facts.is_some() || !refuse.is_empty()).then_some(ShadowFacts {
        would_redact: would_facts,
        would_refuse_fields: refuse,
    });
    (shared, facts)
}

/// The budgets this request took over their limit.
fn budget_flags(flags: &[crate::budget::Flag]) -> Option<Vec<BudgetFlagRecord>> {
    (!flags.is_empty()).then(|| {
        flags
            .iter()
            .map(|f| BudgetFlagRecord {
                action: f.action.as_str(),
                budget: f.limit.id.to_string(),
                counts: f.limit.counts_label(),
                limit: f.applied_limit,
                request: f.request,
                role: f.limit.role.to_string(),
                scope: f.limit.scope.as_str(),
                window_seconds: f.limit.window_seconds,
            })
            .collect()
    })
}

/// Who the principal is, as records of a kind share it (its id is the
/// record's own).
fn principal_shared(p: &crate::identity::Principal) -> PrincipalShared {
    PrincipalShared {
        mfa: p.mfa,
        purpose: p.purpose.clone(),
        roles: p.roles.clone(),
        source: match p.source {
            IdentitySource::Jwt => "jwt",
            IdentitySource::Gateway => "gateway",
            IdentitySource::ClientCertificate => "client_certificate",
            IdentitySource::Unidentified => "none",
        },
    }
}

fn member_names(
    names: &fieldguard_core::redact::report::NameCounts,
    rt: DecidedBy<'_>,
    fate: &'static str,
) -> Option<MemberNames> {
    if names.is_empty() {
        return None;
    }
    Some(MemberNames {
        count: names.total(),
        fate,
        names: names
            .sorted()
            .into_iter()
            .map(|(scope, path, count)| MemberName {
                count,
                entity: rt.decisions.catalogue.scope_name(scope).to_string(),
                field: path.to_string(),
            })
            .collect(),
    })
}

/// A filter report's two parts: the outcomes (shared by responses of the
/// same shape) and, when the response showed records or the backstop
/// masked anything, what this response showed.
fn body_parts(
    f: &fieldguard_core::redact::report::FilterReport,
    rt: DecidedBy<'_>,
) -> (BodyShared, Option<BodyFacts>) {
    let fate = if f.unknown_passed {
        "passed"
    } else {
        "removed"
    };
    let mut by_category: BTreeMap<&'static str, BTreeMap<&'static str, u32>> = BTreeMap::new();
    let mut redacted = Vec::new();
    for (&(field, outcome), &count) in &f.outcomes {
        let Some(spec) = rt.decisions.catalogue.fields().get(field as usize) else {
            continue;
        };
        let category = spec.category.as_str();
        *by_category
            .entry(category)
            .or_default()
            .entry(outcome.as_str())
            .or_insert(0) += count;
        if outcome != Outcome::Full {
            redacted.push(RedactedField {
                category,
                count,
                entity: spec.entity.to_string(),
                field: spec.path.clone(),
                outcome: outcome.as_str(),
                policies: f.deciders(field, outcome),
            });
        }
    }
    // The outcome map is unordered; the record must not be.
    redacted
        .sort_by(|a, b| (&a.entity, &a.field, a.outcome).cmp(&(&b.entity, &b.field, b.outcome)));
    let (counts, lists) = disclosed(&f.disclosed, rt);
    let shared = BodyShared {
        by_category,
        disclosed: counts,
        misshapen: member_names(&f.misshapen, rt, "removed"),
        records: f.records,
        records_hidden: f.records_dropped,
        redacted,
        uncatalogued: member_names(&f.unnamed, rt, fate),
    };
    let facts = BodyFacts {
        backstop: (!f.backstop.is_empty()).then(|| BackstopRecord {
            count: f.backstop.total(),
            detectors: f.backstop.iter().map(|(d, n)| (d.as_str(), n)).collect(),
        }),
        disclosed: lists,
    };
    let shown = facts.backstop.is_some() || !facts.disclosed.is_empty();
    (shared, shown.then_some(facts))
}

fn id_runs(list: &fieldguard_core::redact::disclosed::IdList) -> Vec<serde_json::Value> {
    list.runs()
        .iter()
        .map(fieldguard_core::redact::disclosed::Run::to_json)
        .collect()
}

/// The disclosed records as the definition counts them and as the line
/// lists them: two lists of the same length and order, which a reader
/// merges element by element.
fn disclosed(
    d: &fieldguard_core::redact::disclosed::Disclosed,
    rt: DecidedBy<'_>,
) -> (Vec<DisclosedCount>, Vec<DisclosedRecord>) {
    d.entities()
        .into_iter()
        .map(|(scope, e)| {
            let count = DisclosedCount {
                count: e.count,
                entity: rt.decisions.catalogue.scope_name(scope).to_string(),
            };
            (count, disclosed_ids(e))
        })
        .unzip()
}

fn disclosed_ids(e: &fieldguard_core::redact::disclosed::EntityDisclosure) -> DisclosedRecord {
    DisclosedRecord {
        ids: id_runs(&e.ids),
        omitted: e.ids.omitted,
        subjects: (!e.subjects.is_empty()).then(|| IdsRecord {
            ids: id_runs(&e.subjects),
            omitted: e.subjects.omitted,
        }),
    }
}

/// The method as a definition holds it: one of the standard methods (a
/// fixed set, so it adds at most a few kinds), else `None` and the line
/// holds it (a client can make up any number of extension methods).
fn standard_method(m: &http::Method) -> Option<&'static str> {
    const STANDARD: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT",
    ];
    STANDARD.into_iter().find(|s| *s == m.as_str())
}

/// Header names for a record: the first few, each cut to a bounded length.
fn header_names(names: &[http::HeaderName]) -> Vec<String> {
    names
        .iter()
        .take(MAX_HEADER_NAMES)
        .map(|n| truncate(n.as_str(), MAX_HEADER_NAME))
        .collect()
}

fn micros(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// What an evaluation error may say in the audit trail: `policy:<id>` for a
/// policy that failed to evaluate, else the failing step (`request`,
/// `context`, `record entity`); Cedar's text can quote attribute values.
pub fn policy_error_summary(e: &str) -> String {
    if let Some(rest) = e.split_once("policy `").map(|(_, r)| r)
        && let Some((id, _)) = rest.split_once('`')
    {
        return format!("policy:{id}");
    }
    match e.split_once(':').map(|(step, _)| step.trim()) {
        Some(step @ ("request" | "context" | "record entity")) => format!("decision:{step}"),
        _ => "decision:other".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::chain;
    use serde_json::json;

    fn full_record() -> AuditRecord {
        let mut by_category = BTreeMap::new();
        by_category.insert("identity", BTreeMap::from([("full", 1), ("masked", 2)]));
        let body = BodyShared {
            by_category,
            disclosed: vec![DisclosedCount {
                count: 62,
                entity: "Order".into(),
            }],
            records: 2,
            records_hidden: 1,
            redacted: vec![RedactedField {
                category: "identity",
                count: 2,
                entity: "Customer".into(),
                field: "phone".into(),
                outcome: "masked",
                policies: vec!["support-contact-masked".into()],
            }],
            misshapen: None,
            uncatalogued: Some(MemberNames {
                count: 3,
                fate: "removed",
                names: vec![MemberName {
                    count: 3,
                    entity: "(wrapper)".into(),
                    field: "$.page".into(),
                }],
            }),
        };
        let facts = BodyFacts {
            backstop: Some(BackstopRecord {
                count: 2,
                detectors: BTreeMap::from([("email", 1), ("cn_resident_id", 1)]),
            }),
            disclosed: vec![DisclosedRecord {
                ids: vec![
                    serde_json::json!(["o-10011", "o-10012"]),
                    serde_json::json!("o-1"),
                ],
                omitted: 57,
                subjects: Some(IdsRecord {
                    ids: vec![serde_json::json!(["c-1001", "c-1060"])],
                    omitted: 0,
                }),
            }],
        };
        let line = RequestLine {
            c: String::new(),
            budget: Some(vec![BudgetUse { used: 270 }]),
            client: "127.0.0.1".into(),
            client_aborted: Some("during_upstream"),
            def: "0123456789abcdef".into(),
            latency_us: Latency {
                total: 10,
                upstream: Some(5),
            },
            method: Some("BREW".into()),
            principal: Some(PrincipalId { id: "u".into() }),
            refused_fields: Some(RefusedFields {
                count: 1,
                fields: vec![RefusedField {
                    field: "f\"\u{e9}".into(),
                    reason: "not_permitted",
                }],
            }),
            request_id: "rid".into(),
            resource: Some(ResourceId { id: "c-1".into() }),
            response_aborted: Some("record_too_large"),
            response_body: Some(facts.clone()),
            response_streamed: true,
            seq: 3,
            shadow: Some(ShadowFacts {
                would_redact: Some(facts),
                would_refuse_fields: vec!["x".into()],
            }),
            time: "2025-01-01T00:00:00.000Z".into(),
            v: RECORD_VERSION,
            written: vec!["consent.marketing".into(), "phone".into()],
        };
        let shared = Shared {
            action: Some("customer:read".into()),
            budget: Some(vec![BudgetFlagRecord {
                action: "refuse",
                budget: "support-records-day".into(),
                counts: "fields:identity:3+".into(),
                limit: 300,
                request: 60,
                role: "support_agent".into(),
                scope: "principal",
                window_seconds: 86400,
            }]),
            budget_store_fallback: None,
            decision: "allow",
            identity_error: Some("expired"),
            method: None,
            policies: vec!["p1".into()],
            policy_errors: vec!["policy:p2".into()],
            policy_signed_by: None,
            policy_version: "abc".into(),
            principal: Some(PrincipalShared {
                mfa: true,
                purpose: Some("x".into()),
                roles: vec!["r".into()],
                source: "jwt",
            }),
            refusal: Some("forbidden"),
            // The line lists them (from_exchange puts them in one place).
            refused_fields: None,
            resource: Some(ResourceType {
                type_name: "Customer".into(),
            }),
            response_body: Some(body.clone()),
            response_headers_dropped: Some(DroppedHeaders {
                count: 2,
                names: vec!["set-cookie".into(), "x-customer-email".into()],
            }),
            route: Some("/customers/{id}".into()),
            shadow: Some(ShadowShared {
                disagreements: vec![DisagreementRecord {
                    enforced: "allow".into(),
                    observed: "deny".into(),
                    subject: "request".into(),
                }],
                kind: "shadow",
                observed_version: None,
                would_deny: Some(WouldDenyRecord {
                    policies: vec![],
                    reason: "forbidden",
                }),
                would_drop_headers: vec!["set-cookie".into()],
                would_redact: Some(body),
                would_refuse_fields: None,
            }),
            status: 200,
            upstream_status: Some(200),
        };
        AuditRecord { line, shared }
    }

    fn assert_canonical(value: &impl Serialize) {
        let bytes = serde_json::to_vec(value).unwrap();
        let parsed: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            String::from_utf8(chain::canonical(&parsed)).unwrap(),
            String::from_utf8(bytes).unwrap()
        );
    }

    /// The structs' own serialisation must equal the verifier's canonical
    /// form, or every record would fail verification.
    #[test]
    fn struct_serialisation_is_canonical() {
        let r = full_record();
        assert_canonical(&r.line);
        assert_canonical(&r.shared);
        assert_canonical(&DefinitionRecord {
            alg: "sha256",
            c: "AAAAAAAAAAA",
            def: "0123456789abcdef",
            event: DEFINITION_EVENT,
            prev: chain::spell(chain::GENESIS),
            seq: 2,
            shared: &r.shared,
            time: "2025-01-01T00:00:00.000Z".into(),
            v: RECORD_VERSION,
        });
        // Sorted, as `sink::previous` hands it over (serde_json keeps
        // insertion order).
        let previous = chain::sorted(&json!({"c": "BBBBBBBBBBB", "seq": 9, "sealed": false}));
        assert_canonical(&GenesisRecord {
            alg: "sha256",
            c: "AAAAAAAAAAA",
            chain: "shop-0/AAAAAAAAAAA",
            event: GENESIS_EVENT,
            fieldguard: "0.1.0",
            host: "shop-0",
            pid: 7,
            pod: Some(PodRecord {
                name: Some("shop-0"),
                uid: Some("u-1"),
            }),
            policy_version: "abc",
            prev: chain::spell(chain::GENESIS),
            previous: Some(&previous),
            seq: 0,
            time: "2025-01-01T00:00:00.000Z".into(),
            v: RECORD_VERSION,
        });
        assert_canonical(&SealRecord {
            alg: "sha256",
            c: "AAAAAAAAAAA",
            count: 3,
            event: SEAL_EVENT,
            last_seq: 5,
            prev: chain::spell(chain::GENESIS),
            reason: "shutdown",
            seq: 6,
            time: "2025-01-01T00:00:00.000Z".into(),
            v: RECORD_VERSION,
        });
        assert_canonical(&RetentionEvent {
            alg: "sha256",
            c: "AAAAAAAAAAA",
            deleted_c: [Some("BBBBBBBBBBB".into()), None],
            deleted_files: 2,
            deleted_seq: [Some(0), Some(9)],
            event: RETENTION_EVENT,
            prev: chain::spell(chain::GENESIS),
            seq: 10,
            time: "2025-01-01T00:00:00.000Z".into(),
            v: RECORD_VERSION,
        });
    }

    /// A line and its definition never hold the same leaf, so merging
    /// them is unambiguous (a reader refuses a record where they do).
    #[test]
    fn line_and_shared_part_do_not_overlap() {
        let r = full_record();
        let mut line = serde_json::to_value(&r.line).unwrap();
        let shared = serde_json::to_value(&r.shared).unwrap();
        line.as_object_mut().unwrap().remove("def");
        crate::tools::audit::expand::merge(&mut line, &shared).unwrap();
        assert_eq!(line["principal"]["id"], "u");
        assert_eq!(line["principal"]["roles"][0], "r");
        assert_eq!(line["budget"][0]["used"], 270);
        assert_eq!(line["budget"][0]["limit"], 300);
        assert_eq!(line["response_body"]["disclosed"][0]["count"], 62);
        assert_eq!(line["response_body"]["disclosed"][0]["entity"], "Order");
        assert_eq!(line["response_body"]["disclosed"][0]["omitted"], 57);
        assert_eq!(line["budget"][0]["request"], 60);
        assert_eq!(
            (&line["method"], &line["status"]),
            (&json!("BREW"), &json!(200))
        );
        assert_eq!(line["response_body"]["records"], 2);
        assert_eq!(line["shadow"]["would_redact"]["records_hidden"], 1);
        assert_eq!(line["shadow"]["would_redact"]["backstop"]["count"], 2);
    }

    #[test]
    fn policy_errors_keep_ids_only() {
        assert_eq!(
            policy_error_summary(
                "error while evaluating policy `support-read`: type error: got \"4111111111111111\""
            ),
            "policy:support-read"
        );
        assert_eq!(
            policy_error_summary("context: bad value \"secret\""),
            "decision:context"
        );
        assert_eq!(policy_error_summary("boom secret"), "decision:other");
    }

    #[test]
    fn standard_methods_are_shared_and_made_up_ones_are_not() {
        assert_eq!(standard_method(&http::Method::PATCH), Some("PATCH"));
        let brew = http::Method::from_bytes(b"BREW").unwrap();
        assert_eq!(standard_method(&brew), None);
        let lower = http::Method::from_bytes(b"get").unwrap();
        assert_eq!(standard_method(&lower), None);
    }

    #[test]
    fn long_refused_field_names_are_cut_on_a_char_boundary() {
        let s = "é".repeat(100);
        let t = truncate(&s, 5);
        assert_eq!(t, "éé…");
    }
}
