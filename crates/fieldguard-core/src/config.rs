//! The parts of the configuration the decisions are built from: limits,
//! policies, redaction keys, routes and the field catalogue. The file as a
//! whole (listeners, upstream, identity, TLS, audit, admin, reload) is
//! composed from these and the serving parts' own types in the proxy crate.
//! Defaults are the safe choice: deny unmatched routes, bounded bodies.

use serde::{Deserialize, Deserializer};
use serde_saphyr::Spanned;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The sections of a configuration the decisions are built from, borrowed
/// from the whole file (composed in the proxy crate), and where it came
/// from: errors name `file`, relative paths resolve against `base_dir`.
#[derive(Debug, Clone, Copy)]
pub struct DecisionConfig<'a> {
    pub file: &'a Path,
    pub base_dir: &'a Path,
    pub limits: &'a LimitsConfig,
    pub policies: &'a PoliciesConfig,
    pub redaction: &'a RedactionConfig,
    pub unmatched: UnmatchedPolicy,
    pub shadow: bool,
    pub routes: &'a [RouteConfig],
    pub entities: &'a BTreeMap<String, EntityConfig>,
}

impl DecisionConfig<'_> {
    /// A path written in the config, relative to the config's folder.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        self.origin().resolve(path)
    }

    /// The file these sections came from.
    pub fn origin(&self) -> Origin<'_> {
        Origin {
            file: self.file,
            base_dir: self.base_dir,
        }
    }
}

/// Where a configuration came from: errors name `file`, and relative
/// paths resolve against `base_dir`. Each part (audit, TLS, …) loads its
/// own section given this, not the whole composed file, so no part depends
/// on the composition above it.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    pub file: &'a Path,
    pub base_dir: &'a Path,
}

impl Origin<'_> {
    /// A path written in the config, relative to the config's folder.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest request body buffered for inspection; larger gets 413.
    #[serde(default = "default_max_request_body")]
    pub max_request_body_bytes: usize,
    /// Largest response body buffered for redaction (after decompression);
    /// larger gets 502, because passing it unfiltered would leak.
    #[serde(default = "default_max_response_body")]
    pub max_response_body_bytes: usize,
    /// Deepest JSON nesting accepted in an inspected body.
    #[serde(default = "default_max_json_depth")]
    pub max_json_depth: usize,
    /// Time a client has to send a request's headers (and, on TLS, finish
    /// the handshake); on HTTP/1.1 it also bounds the wait for the next
    /// request on a kept-alive connection. Slow-loris defence.
    #[serde(default = "default_header_read_timeout_ms")]
    pub header_read_timeout_ms: u64,
    /// A connection with no request in flight and no traffic for this long
    /// is closed.
    #[serde(default = "default_idle_timeout_ms")]
    pub idle_timeout_ms: u64,
    /// Largest request head (HTTP/1.1) or header list (HTTP/2); larger gets 431.
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: usize,
    /// Most header fields in one request; more gets 431.
    #[serde(default = "default_max_headers")]
    pub max_headers: usize,
    /// Open client connections; further clients wait in the listen backlog.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Requests being processed at once; any beyond get 503 at once rather
    /// than queueing without bound.
    #[serde(default = "default_max_concurrent_requests")]
    pub max_concurrent_requests: usize,
    /// On SIGTERM/SIGINT: how long requests in flight may take to finish.
    #[serde(default = "default_shutdown_grace_ms")]
    pub shutdown_grace_ms: u64,
    /// Time to receive a request body, so a client trickling one cannot
    /// hold a request slot (and an upstream connection) open. An inspected
    /// body must arrive whole within it (else 408, nothing sent upstream);
    /// a streamed body may not stall for longer than this between two
    /// reads (else the upstream request is aborted and the client gets 408).
    #[serde(default = "default_request_body_timeout_ms")]
    pub request_body_timeout_ms: u64,
    /// An inspected response larger than this, on a route whose records
    /// are one list (`$.customers[*]`), is redacted and sent record by
    /// record instead of buffered: memory bounded by the largest record,
    /// not the body. `null`: every response is buffered.
    #[serde(default = "default_stream_responses_over_bytes")]
    pub stream_responses_over_bytes: Option<usize>,
    /// Largest record of a streamed list (and largest part of the body
    /// before or after the list) held at once; larger aborts the response.
    #[serde(default = "default_max_record_bytes")]
    pub max_record_bytes: usize,
    /// Largest streamed response (after gzip decoding); larger aborts it.
    #[serde(default = "default_max_streamed_response_bytes")]
    pub max_streamed_response_bytes: usize,
}

impl LimitsConfig {
    /// `request_body_timeout_ms` as a duration (at least 1 ms): the bound on
    /// a whole inspected body and on each stall of a streamed one.
    pub fn request_body_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.request_body_timeout_ms.max(1))
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_request_body_bytes: default_max_request_body(),
            max_response_body_bytes: default_max_response_body(),
            max_json_depth: default_max_json_depth(),
            header_read_timeout_ms: default_header_read_timeout_ms(),
            idle_timeout_ms: default_idle_timeout_ms(),
            max_header_bytes: default_max_header_bytes(),
            max_headers: default_max_headers(),
            max_connections: default_max_connections(),
            max_concurrent_requests: default_max_concurrent_requests(),
            shutdown_grace_ms: default_shutdown_grace_ms(),
            request_body_timeout_ms: default_request_body_timeout_ms(),
            stream_responses_over_bytes: default_stream_responses_over_bytes(),
            max_record_bytes: default_max_record_bytes(),
            max_streamed_response_bytes: default_max_streamed_response_bytes(),
        }
    }
}

fn default_stream_responses_over_bytes() -> Option<usize> {
    Some(1 << 20)
}
fn default_max_record_bytes() -> usize {
    1 << 20
}
fn default_max_streamed_response_bytes() -> usize {
    1 << 30
}

fn default_request_body_timeout_ms() -> u64 {
    30_000
}
fn default_max_request_body() -> usize {
    1024 * 1024
}
fn default_max_response_body() -> usize {
    16 * 1024 * 1024
}
fn default_max_json_depth() -> usize {
    64
}
fn default_header_read_timeout_ms() -> u64 {
    10_000
}
fn default_idle_timeout_ms() -> u64 {
    60_000
}
fn default_max_header_bytes() -> usize {
    32 * 1024
}
fn default_max_headers() -> usize {
    100
}
fn default_max_connections() -> usize {
    4096
}
fn default_max_concurrent_requests() -> usize {
    1024
}
fn default_shutdown_grace_ms() -> u64 {
    20_000
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoliciesConfig {
    /// Folder whose `*.cedar` files form the policy set.
    pub directory: PathBuf,
    /// The one Cedar schema (`.cedarschema`) every policy is validated against.
    pub schema: PathBuf,
    /// Policy files (names in `directory`) evaluated and audited beside the
    /// others but not enforced: how a new rule is tried on live traffic.
    #[serde(default)]
    pub shadow_files: Vec<String>,
    /// A whole candidate policy set decided beside the active one; only the
    /// active one is enforced, every disagreement is audited and counted.
    pub candidate: Option<CandidateConfig>,
    /// Ed25519 public keys (PEM files, e.g. from a Secret): when any is
    /// given, only a set signed by one of them is loaded (`fieldguard
    /// sign`). Several at once for rotation.
    #[serde(default)]
    pub verify_keys: Vec<PathBuf>,
    /// The detached signature of the set; default `fieldguard.sig` in
    /// `directory` (beside the policies, so it travels with them).
    pub signature_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CandidateConfig {
    pub directory: PathBuf,
    /// Defaults to the active set's schema.
    pub schema: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedactionConfig {
    /// Key for keyed-hash masks (HMAC-SHA256). Required when any field uses
    /// `kind: hash`.
    pub hash_key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnmatchedPolicy {
    #[default]
    Deny,
    Passthrough,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Upper-case HTTP method, or `*`.
    pub method: Spanned<String>,
    /// Path template, `{name}` for a parameter segment.
    pub path: Spanned<String>,
    /// Forward without identity, decision or inspection (public content only).
    #[serde(default)]
    pub passthrough: bool,
    /// Shadow mode for this route only (see the top-level `shadow`).
    #[serde(default)]
    pub shadow: bool,
    /// What happens to response members the configuration does not name
    /// (record fields outside the entity's catalogue, wrapper members not
    /// declared under `response.members`): removed unless an operator
    /// onboarding an API explicitly chooses `pass`. Either way each one is
    /// counted and named in the audit record.
    #[serde(default)]
    pub unknown_fields: UnknownFields,
    /// Answer an upstream 404 with the proxy's 403 `forbidden`, exactly as
    /// a record the caller may not read, so that walking ids (sequential
    /// order numbers) does not tell which exist. Routes with a `response:`
    /// section only.
    #[serde(default)]
    pub hide_missing: bool,
    /// Record what the upstream returns that the configuration does not
    /// name: member paths, JSON types and the kinds of personal data their
    /// values look like (counts only, never values), served by the admin
    /// listener's `/observed` for `fieldguard onboard observed`. Default:
    /// on where the route passes unknown fields or is in shadow mode.
    pub observe: Option<bool>,
    /// Detectors (`cn_resident_id`, `cn_mobile`, `email`, `payment_card`,
    /// `iban`, `ipv4`, `ipv6`, `date_of_birth`, or `all`) whose matches are
    /// masked in values the catalogue does not describe: members passed by
    /// `unknown_fields: pass` and fields marked `free_text`, even when the
    /// caller may read them in full. Each match is counted and named in the
    /// audit record by its detector. Empty (the default): no backstop.
    #[serde(default)]
    pub backstop: Backstop,
    /// Cedar action id of the request-level decision (required unless passthrough).
    pub action: Option<Spanned<String>>,
    pub resource: Option<ResourceConfig>,
    /// Records in the response body to redact field by field.
    pub response: Option<ResponseBodyConfig>,
    /// Fields in the request body to check before anything reaches the upstream.
    pub request: Option<RequestBodyConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceConfig {
    /// Cedar entity type of the request-level resource.
    #[serde(rename = "type")]
    pub entity_type: Spanned<String>,
    /// Literal entity id (for collections such as `CustomerDirectory::"all"`).
    pub id: Option<String>,
    /// Path parameter holding the entity id.
    pub id_param: Option<Spanned<String>>,
    /// Path parameter naming the owning principal (`resource.owner`).
    pub owner_param: Option<Spanned<String>>,
}

/// A `response:` section makes the route *inspected*: its body is filtered,
/// and its headers are allow-listed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseBodyConfig {
    #[serde(default)]
    pub records: Vec<RecordSelectorConfig>,
    /// Upstream response headers this route may pass on besides the
    /// standard representation and caching ones (`Content-Type`,
    /// `Cache-Control`, …; see `proxy::response_headers::STANDARD`). Any
    /// other header (`Set-Cookie`, a custom one echoing data) is dropped,
    /// counted and audited. Names are checked at load.
    #[serde(default)]
    pub headers: Vec<Spanned<String>>,
    /// How the route's answers may be cached: `private` (default: the
    /// upstream's narrowing directives under `Cache-Control: private`) or
    /// `no_store` (always `Cache-Control: no-store`). Either way shared
    /// caches never store a filtered answer (docs/security.md).
    #[serde(default)]
    pub cache: CacheMode,
    /// What happens to a catalogued value of another JSON kind than its
    /// field's `shape` (a `gender` string that arrives as an object):
    /// `remove` (default: the value goes, the rest of the answer is
    /// shown) or `refuse` (the whole answer is refused as an upstream
    /// shape error: 502, or an aborted stream). Either way it is counted
    /// in `fieldguard_misshapen_values_total` and named in the audit
    /// record.
    #[serde(default)]
    pub misshapen: MisshapenValues,
    /// The body around the records (wrappers, pagination): each member by
    /// its JSONPath from the root (`$.total`, `$.page.next`), classified
    /// like a field and decided by Cedar on the route's resource with
    /// `context.field.name` set to the path as written. A member of the
    /// body that is neither on a record path nor declared here is removed.
    #[serde(default)]
    pub members: BTreeMap<String, FieldConfig>,
}

/// How an inspected route's answers may be cached: `response.cache`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheMode {
    /// `Cache-Control: private` plus the upstream's allowed directives
    /// (`no-store`, `no-cache`, `max-age`, `must-revalidate`,
    /// `no-transform`).
    #[default]
    Private,
    /// Always `Cache-Control: no-store`, whatever the upstream says.
    NoStore,
}

/// A route's answer to catalogued values of the wrong kind:
/// `response.misshapen`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MisshapenValues {
    #[default]
    Remove,
    Refuse,
}

/// Response members the configuration does not name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownFields {
    /// Removed from the response (least privilege by construction).
    #[default]
    Remove,
    /// Passed through unfiltered, for onboarding an API whose catalogue is
    /// not complete yet (`validate` warns, `/policies` shows it).
    Pass,
}

impl UnknownFields {
    pub fn as_str(self) -> &'static str {
        match self {
            UnknownFields::Remove => "remove",
            UnknownFields::Pass => "pass",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordSelectorConfig {
    /// JSONPath of the records: `$` for one record, `$.customers[*]` for a list.
    pub path: Spanned<String>,
    /// Cedar entity type of each record; its catalogue entry lists the fields.
    pub entity: Spanned<String>,
    /// Extra or overriding attribute sources for this route.
    #[serde(default)]
    pub attributes: BTreeMap<String, AttributeConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestBodyConfig {
    /// Catalogue entity type whose fields the body carries.
    pub entity: Spanned<String>,
    /// Where the record is in the body (default `$`).
    #[serde(default = "default_root_path")]
    pub path: Spanned<String>,
    /// The fields this route may collect at all (minimal collection). A body
    /// field outside the list is refused. Absent: no collection limit.
    pub collect: Option<Vec<String>>,
}

fn default_root_path() -> Spanned<String> {
    Spanned::new(
        "$".to_string(),
        serde_saphyr::Location::UNKNOWN,
        serde_saphyr::Location::UNKNOWN,
    )
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntityConfig {
    /// Record field holding the entity id (used as the Cedar resource id).
    pub id_field: Option<String>,
    /// Record fields that become Cedar attributes of the record.
    #[serde(default)]
    pub attributes: BTreeMap<String, AttributeConfig>,
    /// Field path (dots for nesting) → how it is classified and masked.
    #[serde(default)]
    pub fields: BTreeMap<String, FieldConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributeConfig {
    /// Dot path inside the record, or `$.a.b` from the document root.
    pub field: String,
    #[serde(rename = "type")]
    pub kind: AttributeKind,
    /// For `type: entity`: the entity type of the reference (default `User`).
    pub entity_type: Option<String>,
    /// Used when the record lacks the field. Without a default a missing
    /// attribute makes the record unreadable (fail closed).
    pub default: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttributeKind {
    String,
    Bool,
    Long,
    Entity,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldConfig {
    pub category: Category,
    pub level: Level,
    /// Masked form, used when a policy allows `field:read_masked` but not
    /// `field:read`. Without one, such a field is removed. Only scalar
    /// values have a masked form: an object or array is shown in full or
    /// not at all.
    pub mask: Option<MaskConfig>,
    /// The field's JSON kind (default `scalar`: a string, number or
    /// boolean; see [`Shape`]). A write of another kind is refused; in a
    /// response a value of another kind is removed (or, on a route with
    /// `response.misshapen: refuse`, the answer is refused).
    #[serde(default)]
    pub shape: Shape,
    /// What an `array` or `object` field holds: for an array, what each
    /// element is (a kind, or the members of an object); for an object,
    /// its members (`{ city: string, street: string }`). A value that
    /// holds anything else (another key, another kind, a repeated key) is
    /// removed like a value of the wrong kind: the field is one value, and
    /// whoever may read it would otherwise read whatever an upstream put
    /// in it. Without `of`, `validate` warns.
    pub of: Option<Holds>,
    /// Free text (comments, messages, notes) that may hold personal data
    /// typed in by anyone: a route's `backstop` masks what its detectors
    /// find in it, even for callers who may read the field in full.
    #[serde(default)]
    pub free_text: bool,
}

/// A route's backstop detectors, as a set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backstop(pub crate::detect::DetectorSet);

impl<'de> Deserialize<'de> for Backstop {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let names = Vec::<String>::deserialize(d)?;
        let mut set = crate::detect::DetectorSet::EMPTY;
        for name in &names {
            if name == "all" {
                set = set.union(crate::detect::DetectorSet::all());
                continue;
            }
            match crate::detect::Detector::from_name(name) {
                Some(det) => set.insert(det),
                None => {
                    let known: Vec<&str> = crate::detect::Detector::ALL
                        .iter()
                        .map(|d| d.as_str())
                        .collect();
                    return Err(serde::de::Error::custom(format!(
                        "unknown backstop detector `{name}`; expected all or one of {}",
                        known.join(", ")
                    )));
                }
            }
        }
        Ok(Backstop(set))
    }
}

/// The JSON kind of a catalogued field's value: what a write must give
/// it and what a response may carry in it. A value of another kind is
/// refused in writes (`wrong_shape`) and removed from responses (counted
/// as misshapen), because a field the catalogue calls a string may be
/// shown to a role, and whatever an upstream puts in its place (an object
/// of personal data, a list) would be shown with it.
///
/// `null` is admitted for every kind in responses (it carries nothing)
/// and, as before, for the scalar kinds in writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// A string, number or boolean: the default, for catalogues written
    /// before kinds were precise.
    #[default]
    Scalar,
    String,
    Number,
    Boolean,
    /// An array (of anything: the field is one value).
    Array,
    /// An object (of anything: the field is one value).
    Object,
    /// Any JSON value: the one kind `validate` warns about, since it lets
    /// an upstream put anything in a field a role may read.
    Any,
}

/// What an `array` or `object` field holds (its `of`): a scalar kind, or
/// an object with at most these members, each described the same way.
/// `null` is admitted anywhere (it carries nothing).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Holds {
    Kind(Shape),
    Members(BTreeMap<String, Holds>),
}

/// The JSON type of one value, as the redactors see it (the byte redactor
/// from its first byte, the tree walk from the parsed value): what a
/// field's `shape` admits, and what observing routes report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JsonType {
    Null,
    Boolean,
    Number,
    String,
    Array,
    Object,
}

impl JsonType {
    pub const ALL: [JsonType; 6] = [
        JsonType::Null,
        JsonType::Boolean,
        JsonType::Number,
        JsonType::String,
        JsonType::Array,
        JsonType::Object,
    ];

    pub fn of(v: &serde_json::Value) -> Self {
        match v {
            serde_json::Value::Null => Self::Null,
            serde_json::Value::Bool(_) => Self::Boolean,
            serde_json::Value::Number(_) => Self::Number,
            serde_json::Value::String(_) => Self::String,
            serde_json::Value::Array(_) => Self::Array,
            serde_json::Value::Object(_) => Self::Object,
        }
    }

    /// The type of a well-formed JSON value from its first byte.
    pub fn of_first_byte(b: u8) -> Self {
        match b {
            b'n' => Self::Null,
            b't' | b'f' => Self::Boolean,
            b'"' => Self::String,
            b'[' => Self::Array,
            b'{' => Self::Object,
            _ => Self::Number,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Boolean => "boolean",
            Self::Number => "number",
            Self::String => "string",
            Self::Array => "array",
            Self::Object => "object",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// An object or array: one value with no masked form.
    pub fn is_container(self) -> bool {
        matches!(self, Self::Array | Self::Object)
    }
}

impl Shape {
    pub fn as_str(self) -> &'static str {
        match self {
            Shape::Scalar => "scalar",
            Shape::String => "string",
            Shape::Number => "number",
            Shape::Boolean => "boolean",
            Shape::Array => "array",
            Shape::Object => "object",
            Shape::Any => "any",
        }
    }

    /// A string, number or boolean kind: one with a masked form.
    pub fn is_scalar(self) -> bool {
        matches!(
            self,
            Shape::Scalar | Shape::String | Shape::Number | Shape::Boolean
        )
    }

    /// Whether a value of `kind` is this shape (null aside).
    fn admits(self, kind: JsonType) -> bool {
        match self {
            Shape::Any => true,
            Shape::Scalar => !kind.is_container(),
            Shape::String => kind == JsonType::String,
            Shape::Number => kind == JsonType::Number,
            Shape::Boolean => kind == JsonType::Boolean,
            Shape::Array => kind == JsonType::Array,
            Shape::Object => kind == JsonType::Object,
        }
    }

    /// Whether a write may give the field this value: its kind, or `null`
    /// for a scalar kind (an object or array field is written whole).
    pub fn accepts(self, v: &serde_json::Value) -> bool {
        let kind = JsonType::of(v);
        self.admits(kind)
            || (kind == JsonType::Null && !matches!(self, Shape::Array | Shape::Object))
    }

    /// Whether a response may carry a value of `kind` in the field: its
    /// kind, or `null` (which carries nothing).
    #[inline]
    pub fn shows(self, kind: JsonType) -> bool {
        kind == JsonType::Null || self.admits(kind)
    }
}

/// Data categories of the regulation (CDM-2.1 to CDM-2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Identity,
    AccountTransaction,
    Behavior,
    Interaction,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Identity => "identity",
            Category::AccountTransaction => "account_transaction",
            Category::Behavior => "behavior",
            Category::Interaction => "interaction",
        }
    }
}

/// Sensitivity level 1 (low) to 4 (highest), CDM-4.1.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Level(pub u8);

impl<'de> Deserialize<'de> for Level {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = i64::deserialize(d)?;
        if (1..=4).contains(&v) {
            Ok(Level(v as u8))
        } else {
            Err(serde::de::Error::custom(format!(
                "sensitivity level must be 1 to 4, got {v}"
            )))
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawMask")]
pub enum MaskConfig {
    /// Keep the first/last N characters, replace the rest.
    Partial {
        keep_first: usize,
        keep_last: usize,
        mask_char: char,
    },
    /// HMAC-SHA256 with the configured key: stable pseudonym, joinable.
    Hash,
    /// A date generalised to its year.
    Year,
    /// The value replaced by `null`.
    Null,
}

fn default_mask_char() -> char {
    '*'
}

/// A mask as written. `kind: null` is YAML's null, not the string "null",
/// so the kind is read as an optional string and a null kind means the
/// `null` mask (as documented), rather than a confusing type error.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMask {
    kind: Option<String>,
    keep_first: Option<usize>,
    keep_last: Option<usize>,
    mask_char: Option<char>,
}

/// Why a mask as written is refused (serde shows it at the mask's line).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MaskConfigError {
    #[error(
        "mask kind `{0}` takes no keep_first, keep_last or mask_char (those are for `partial`)"
    )]
    PartialKeys(String),
    #[error("unknown mask kind `{0}`; expected partial, hash, year or null")]
    UnknownKind(String),
}

impl TryFrom<RawMask> for MaskConfig {
    type Error = MaskConfigError;

    fn try_from(raw: RawMask) -> Result<Self, MaskConfigError> {
        let kind = raw.kind.as_deref().unwrap_or("null");
        let partial_keys =
            raw.keep_first.is_some() || raw.keep_last.is_some() || raw.mask_char.is_some();
        if kind != "partial" && partial_keys {
            return Err(MaskConfigError::PartialKeys(kind.to_string()));
        }
        Ok(match kind {
            "partial" => MaskConfig::Partial {
                keep_first: raw.keep_first.unwrap_or(0),
                keep_last: raw.keep_last.unwrap_or(0),
                mask_char: raw.mask_char.unwrap_or_else(default_mask_char),
            },
            "hash" => MaskConfig::Hash,
            "year" => MaskConfig::Year,
            "null" => MaskConfig::Null,
            other => {
                return Err(MaskConfigError::UnknownKind(other.to_string()));
            }
        })
    }
}

/// Line (1-based) of a spanned config value, when the parser knew it.
pub fn line_of<T>(v: &Spanned<T>) -> Option<usize> {
    let line = v.referenced.line() as usize;
    (line > 0).then_some(line)
}

/// Position of a spanned config value (line, column, and the bytes of its
/// text for a rendered snippet), when the parser knew it.
pub fn location_of<T>(v: &Spanned<T>) -> Option<crate::error::Location> {
    crate::error::Location::from_yaml(&v.referenced)
}
