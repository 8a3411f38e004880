//! Decisions. One [`Engine`] per loaded policy set, shared by all requests.
//!
//! Per-field decisions on large lists are the hot path, so the engine
//! (1) evaluates only the policies that can apply to an action and a role set,
//! (2) learns from those policies which facts the answer can depend on, and
//! (3) caches answers keyed by exactly those facts. A list of 5,000 records
//! whose policies read only a consent flag costs a handful of evaluations.

use super::analysis::{self, Dependencies};
use super::entities::{self, RequestPrincipal};
use super::load::PolicyBundle;
use crate::catalogue::{AttrValue, AttributeSource, FieldSpec};
use cedar_policy::{
    ActionConstraint, Authorizer, Decision, Entities, Entity, EntityTypeName, EntityUid, PolicySet,
    PrincipalConstraint, Request,
};
use dashmap::DashMap;
use smallvec::SmallVec;
use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

/// Decisions fieldguard asks about records and their fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldAction {
    /// May the caller see this record at all?
    RecordRead,
    /// May the caller read the field in full?
    FieldRead,
    /// May the caller read the field's masked form?
    FieldReadMasked,
    /// May the caller write the field?
    FieldWrite,
}

impl FieldAction {
    pub const ALL: [FieldAction; 4] = [
        FieldAction::RecordRead,
        FieldAction::FieldRead,
        FieldAction::FieldReadMasked,
        FieldAction::FieldWrite,
    ];

    pub fn id(self) -> &'static str {
        match self {
            FieldAction::RecordRead => "record:read",
            FieldAction::FieldRead => "field:read",
            FieldAction::FieldReadMasked => "field:read_masked",
            FieldAction::FieldWrite => "field:write",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The resource of a record, field or write decision.
#[derive(Clone, Copy)]
pub struct ResourceRef<'a> {
    pub type_name: &'a EntityTypeName,
    /// Distinguishes resource types in cache keys: a catalogue entity's
    /// index, or a route's write-target key.
    pub type_key: u32,
    pub id: &'a str,
    /// Attribute sources and their values for this resource, aligned.
    pub sources: &'a [AttributeSource],
    pub values: &'a [AttrValue],
}

impl ResourceRef<'_> {
    /// The Cedar entity: `Type::"id"` with the attributes, no parents.
    fn entity(&self) -> Result<Entity, entities::InputError> {
        let uid = entities::uid(self.type_name, self.id);
        let attrs = self.sources.iter().zip(self.values).map(|(s, v)| {
            (
                s.name.clone(),
                entities::record_attr_expr(v, s.entity_type.as_ref()),
            )
        });
        entities::resource_entity(uid, attrs)
    }
}

/// Policies a decision rested on, as indexes into the deciding engine's
/// [`PolicyTable`]: a couple of integers, copied beside every cached answer
/// without allocating, so the audit trail can name the policy behind every
/// masked or removed field at no cost to the hot path.
pub type PolicyRefs = SmallVec<[u32; 2]>;

/// The ids of an engine's policies, indexed by [`PolicyRefs`] entries.
pub type PolicyTable = Arc<[Arc<str>]>;

/// A record or field answer with the policies that determined it (permits
/// when allowed; forbids, if any, when denied; none for Cedar's default
/// deny).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    pub policies: PolicyRefs,
}

/// The request-level answer.
#[derive(Debug, Clone)]
pub struct RequestDecision {
    pub allowed: bool,
    /// Ids of the policies that determined it (permits when allowed,
    /// forbids, if any, when denied; empty for default deny).
    pub policies: Vec<String>,
    /// Policies that failed to evaluate (they counted as not applying).
    pub errors: Vec<String>,
}

/// The policies that can apply to one action for one role set, and what
/// they read.
#[derive(Debug)]
struct Applicable {
    policies: PolicySet,
    deps: Dependencies,
    /// No permit can apply: the answer is deny without evaluating anything.
    no_permit: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct DecisionKey {
    who: Arc<str>,
    action: u8,
    resource_type: u32,
    field: u32,
    resource: Option<Box<str>>,
    attrs: SmallVec<[AttrKey; 2]>,
}

/// What a decision key holds of one resource attribute the policies read.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AttrKey {
    /// The resource has no such attribute.
    Absent,
    /// Its value: some policy reads it.
    Value(AttrValue),
    /// Whether it is the caller: the policies only test its presence or
    /// compare it with `principal` ([`Dependencies::valued_attrs`]).
    Caller(bool),
}

/// [`AttrKey`] borrowing the value, to compare without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrKeyRef<'a> {
    Absent,
    Value(&'a AttrValue),
    Caller(bool),
}

impl AttrKeyRef<'_> {
    pub fn owned(self) -> AttrKey {
        match self {
            AttrKeyRef::Absent => AttrKey::Absent,
            AttrKeyRef::Value(v) => AttrKey::Value(v.clone()),
            AttrKeyRef::Caller(b) => AttrKey::Caller(b),
        }
    }

    pub fn is(self, owned: &AttrKey) -> bool {
        match (self, owned) {
            (AttrKeyRef::Absent, AttrKey::Absent) => true,
            (AttrKeyRef::Value(a), AttrKey::Value(b)) => a == b,
            (AttrKeyRef::Caller(a), AttrKey::Caller(b)) => a == *b,
            _ => false,
        }
    }
}

/// Whether the attribute value `v` (read by `source`) is the caller `who`
/// as Cedar compares entities: an entity reference of the caller's type
/// (`User` when the source names none, as
/// [`entities::record_attr_expr`] builds it) and id. A string, number or
/// flag never equals an entity.
fn is_caller(v: &AttrValue, source: &AttributeSource, who: &EntityUid) -> bool {
    let AttrValue::Entity(id) = v else {
        return false;
    };
    if **id != *who.id().unescaped() {
        return false;
    }
    match &source.entity_type {
        Some(t) => t == who.type_name(),
        None => *who.type_name() == entities::type_name(analysis::PRINCIPAL_TYPE),
    }
}

/// The key part of the resource attribute `name` for policies with
/// dependencies `deps`, asked by `who`.
fn attr_key<'r>(
    deps: &Dependencies,
    name: &str,
    r: &ResourceRef<'r>,
    who: &EntityUid,
) -> AttrKeyRef<'r> {
    let Some(at) = r.sources.iter().position(|s| s.name == name) else {
        return AttrKeyRef::Absent;
    };
    let Some(v) = r.values.get(at) else {
        return AttrKeyRef::Absent;
    };
    if deps.valued_attrs.contains(name) {
        AttrKeyRef::Value(v)
    } else {
        AttrKeyRef::Caller(is_caller(v, &r.sources[at], who))
    }
}

/// The caches' hasher: foldhash, several times faster than SipHash on the
/// short keys hashed for every field of every record, and seeded per
/// process. Keys hold resource ids and attribute values from bodies, so
/// the seed keeps collisions unguessable, and the bounds below cap what a
/// collision could cost anyway.
type Hasher = foldhash::fast::RandomState;

/// Bound on cached decisions; past it the cache starts over (a new policy
/// set starts with an empty cache anyway).
const MAX_CACHED_DECISIONS: usize = 200_000;
/// Bound on cached (role set, action) analyses.
const MAX_CACHED_ANALYSES: usize = 4_096;

pub struct Engine {
    pub bundle: PolicyBundle,
    authorizer: Authorizer,
    /// Action entities from the schema, so `action in Action::"group"` works.
    base_entities: Entities,
    deps: Vec<(cedar_policy::Policy, Dependencies)>,
    analyses: DashMap<(String, String), Arc<Applicable>, Hasher>,
    decisions: DashMap<DecisionKey, Verdict, Hasher>,
    /// Every policy id, for [`PolicyRefs`].
    policy_table: PolicyTable,
    policy_index: std::collections::HashMap<String, u32>,
    /// Request-level decisions, keyed the same way (by what they depend on).
    routes: DashMap<RouteKey, Arc<RequestDecision>, Hasher>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RouteKey {
    who: Arc<str>,
    action: Box<str>,
    resource_type: u32,
    resource: Option<Box<str>>,
    attrs: SmallVec<[AttrKey; 2]>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("version", &self.bundle.version)
            .finish_non_exhaustive()
    }
}

/// Why a policy bundle cannot become an engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The schema's actions do not form entities (boxed: Cedar's error
    /// is large, and rare).
    #[error("schema actions: {0}")]
    SchemaActions(Box<cedar_policy::entities_errors::EntitiesError>),
}

impl Engine {
    pub fn new(bundle: PolicyBundle) -> Result<Self, EngineError> {
        let base_entities = bundle
            .schema
            .action_entities()
            .map_err(|e| EngineError::SchemaActions(Box::new(e)))?;
        let deps = bundle
            .policies
            .policies()
            .map(|p| (p.clone(), analysis::dependencies(p)))
            .collect();
        let mut ids: Vec<String> = bundle
            .policies
            .policies()
            .map(|p| p.id().to_string())
            .collect();
        ids.sort();
        let policy_index = ids
            .iter()
            .enumerate()
            .filter_map(|(i, id)| Some((id.clone(), u32::try_from(i).ok()?)))
            .collect();
        let policy_table: PolicyTable = ids.into_iter().map(Arc::from).collect();
        Ok(Self {
            bundle,
            authorizer: Authorizer::new(),
            base_entities,
            deps,
            analyses: DashMap::default(),
            decisions: DashMap::default(),
            routes: DashMap::default(),
            policy_table,
            policy_index,
        })
    }

    /// The ids [`PolicyRefs`] of this engine's verdicts index.
    pub fn policy_table(&self) -> PolicyTable {
        self.policy_table.clone()
    }

    /// `ids` as references into [`Self::policy_table`] (unknown ids, which
    /// a decision of this engine cannot produce, are skipped).
    pub fn policy_refs(&self, ids: &[String]) -> PolicyRefs {
        ids.iter()
            .filter_map(|id| self.policy_index.get(id).copied())
            .collect()
    }

    pub fn action_uid(&self, action: &str) -> EntityUid {
        entities::uid(&entities::type_name("Action"), action)
    }

    /// True when the schema declares this action (routes are checked
    /// against it at start-up).
    pub fn has_action(&self, action: &str) -> bool {
        self.base_entities
            .iter()
            .any(|e| e.uid() == self.action_uid(action))
    }

    /// True when the schema declares this entity type (route resources
    /// are checked against it at start-up).
    pub fn has_entity_type(&self, name: &cedar_policy::EntityTypeName) -> bool {
        self.bundle.schema.entity_types().any(|t| t == name)
    }

    /// The actions the schema declares, by name (for "did you mean").
    pub fn action_names(&self) -> Vec<String> {
        self.bundle
            .schema
            .actions()
            .map(|a| a.id().unescaped().to_string())
            .collect()
    }

    /// The entity types the schema declares, by name.
    pub fn entity_type_names(&self) -> Vec<String> {
        self.bundle
            .schema
            .entity_types()
            .map(ToString::to_string)
            .collect()
    }

    fn applicable(&self, roles_key: &str, roles: &HashSet<&str>, action: &str) -> Arc<Applicable> {
        let key = (roles_key.to_string(), action.to_string());
        if let Some(a) = self.analyses.get(&key) {
            return a.clone();
        }
        let action_uid = self.action_uid(action);
        let ancestors: HashSet<EntityUid> = self
            .base_entities
            .ancestors(&action_uid)
            .map(|it| it.cloned().collect())
            .unwrap_or_default();
        let mut policies = PolicySet::new();
        let mut deps = Dependencies::default();
        let mut no_permit = true;
        for (p, d) in &self.deps {
            let action_ok = match p.action_constraint() {
                ActionConstraint::Any => true,
                ActionConstraint::Eq(a) => a == action_uid,
                ActionConstraint::In(list) => list
                    .iter()
                    .any(|a| *a == action_uid || ancestors.contains(a)),
            };
            if !action_ok || !principal_may_apply(&p.principal_constraint(), roles) {
                continue;
            }
            if p.effect() == cedar_policy::Effect::Permit {
                no_permit = false;
            }
            deps.merge(d);
            // Ids are unique in the bundle, so adding cannot clash.
            if policies.add(p.clone()).is_err() {
                tracing::error!(policy = %p.id(), "policy could not be indexed");
            }
        }
        let applicable = Arc::new(Applicable {
            policies,
            deps,
            no_permit,
        });
        if self.analyses.len() < MAX_CACHED_ANALYSES {
            self.analyses.insert(key, applicable.clone());
        }
        applicable
    }

    fn evaluate(
        &self,
        who: &RequestPrincipal,
        action: &str,
        applicable: &Applicable,
        resource: Entity,
        context: cedar_policy::Context,
    ) -> RequestDecision {
        let resource_uid = resource.uid();
        let entities = match self
            .base_entities
            .clone()
            .add_entities([who.entity.clone(), resource], None)
        {
            Ok(e) => e,
            Err(e) => return deny_with_error(format!("entities: {e}")),
        };
        let request = match Request::new(
            who.uid.clone(),
            self.action_uid(action),
            resource_uid,
            context,
            None,
        ) {
            Ok(r) => r,
            Err(e) => return deny_with_error(format!("request: {e}")),
        };
        let response = self
            .authorizer
            .is_authorized(&request, &applicable.policies, &entities);
        let errors: Vec<String> = response
            .diagnostics()
            .errors()
            .map(|e| {
                crate::repeated_warn!(
                    crate::repeated::Kind::PolicyEvaluation,
                    "policy evaluation error on {action} (policy counts as not applying): {e}"
                );
                e.to_string()
            })
            .collect();
        RequestDecision {
            allowed: response.decision() == Decision::Allow,
            policies: response
                .diagnostics()
                .reason()
                .map(|id| id.to_string())
                .collect(),
            errors,
        }
    }

    /// The request-level decision for a route's resource, cached by exactly
    /// the facts the applicable policies read (as field decisions are):
    /// this runs on every request.
    pub fn decide_route(
        &self,
        who: &RequestPrincipal,
        action: &str,
        r: &ResourceRef<'_>,
    ) -> RequestDecision {
        let roles = who.role_set();
        let applicable = self.applicable(&who.roles_key, &roles, action);
        if applicable.no_permit {
            return RequestDecision {
                allowed: false,
                policies: Vec::new(),
                errors: Vec::new(),
            };
        }
        let deps = &applicable.deps;
        let key = RouteKey {
            who: Arc::from(if deps.principal {
                who.personal_key.as_str()
            } else {
                who.shared_key.as_str()
            }),
            action: action.into(),
            resource_type: r.type_key,
            resource: deps.resource_uid.then(|| r.id.into()),
            attrs: relevant_attrs(deps, r, &who.uid),
        };
        if let Some(hit) = self.routes.get(&key) {
            return (**hit).clone();
        }
        let decision = match (r.entity(), who.request_context()) {
            (Ok(resource), Ok(ctx)) => self.evaluate(who, action, &applicable, resource, ctx),
            (Err(e), _) | (_, Err(e)) => return deny_with_error(e.to_string()),
        };
        // Evaluation errors are logged once per distinct key, not per request.
        if self.routes.len() >= MAX_CACHED_DECISIONS {
            self.routes.clear();
        }
        self.routes.insert(key, Arc::new(decision.clone()));
        decision
    }

    /// Field and record decisions for one request.
    pub fn decider<'a>(&'a self, who: &'a RequestPrincipal) -> Decider<'a> {
        Decider {
            engine: self,
            who,
            roles: who.role_set(),
            per_action: Default::default(),
            memo: Default::default(),
            asked: [0; 4],
        }
    }

    fn cache_put(&self, key: DecisionKey, verdict: Verdict) {
        if self.decisions.len() >= MAX_CACHED_DECISIONS {
            self.decisions.clear();
        }
        self.decisions.insert(key, verdict);
    }
}

fn deny_with_error(e: String) -> RequestDecision {
    crate::repeated_warn!(
        crate::repeated::Kind::DecisionFailed,
        "decision failed closed: {e}"
    );
    RequestDecision {
        allowed: false,
        policies: Vec::new(),
        errors: vec![e],
    }
}

/// What the policies read of the record's attributes, in the order of
/// `deps.resource_attrs`.
fn relevant_attrs(
    deps: &Dependencies,
    r: &ResourceRef<'_>,
    who: &EntityUid,
) -> SmallVec<[AttrKey; 2]> {
    deps.resource_attrs
        .iter()
        .map(|name| attr_key(deps, name, r, who).owned())
        .collect()
}

/// Could a policy with this principal scope apply to a `User` with these
/// roles? Only clear impossibilities answer no.
fn principal_may_apply(c: &PrincipalConstraint, roles: &HashSet<&str>) -> bool {
    let role_type = analysis::ROLE_TYPE;
    let user_type = analysis::PRINCIPAL_TYPE;
    let in_ok = |e: &EntityUid| {
        e.type_name().to_string() != role_type || roles.contains(e.id().unescaped())
    };
    match c {
        PrincipalConstraint::Any => true,
        PrincipalConstraint::Eq(e) => e.type_name().to_string() != role_type,
        PrincipalConstraint::In(e) => in_ok(e),
        PrincipalConstraint::Is(t) => t.to_string() == user_type,
        PrincipalConstraint::IsIn(t, e) => t.to_string() == user_type && in_ok(e),
    }
}

/// What one caller's record and field decisions on one kind of record can
/// depend on ([`Decider::record_facts`]).
#[derive(Debug, Clone)]
pub struct RecordFacts {
    /// Some decision reads the record's id.
    pub uid: bool,
    attrs: SmallVec<[FactSource; 4]>,
    /// The caller's id, for [`AttrKey::Caller`].
    caller: Box<str>,
}

#[derive(Debug, Clone)]
struct FactSource {
    /// Position among the record's attribute sources (`None`: it has none
    /// of that name).
    at: Option<usize>,
    /// Some policy reads its value (else only whether it is the caller).
    valued: bool,
    /// An entity reference of this source can be the caller (its type is
    /// the caller's).
    caller_type: bool,
}

/// The facts of one record ([`RecordFacts::of`]), borrowing its values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts<'r> {
    pub id: Option<&'r str>,
    pub attrs: SmallVec<[AttrKeyRef<'r>; 4]>,
}

/// [`Facts`] kept beyond the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedFacts {
    id: Option<Box<str>>,
    attrs: SmallVec<[AttrKey; 4]>,
}

impl RecordFacts {
    /// The facts of the record `id` with these attribute `values` (aligned
    /// with the sources this was made for).
    pub fn of<'r>(&self, id: &'r str, values: &'r [AttrValue]) -> Facts<'r> {
        Facts {
            id: self.uid.then_some(id),
            attrs: self
                .attrs
                .iter()
                .map(|f| match f.at.and_then(|i| values.get(i)) {
                    None => AttrKeyRef::Absent,
                    Some(v) if f.valued => AttrKeyRef::Value(v),
                    Some(v) => AttrKeyRef::Caller(
                        f.caller_type && matches!(v, AttrValue::Entity(e) if **e == *self.caller),
                    ),
                })
                .collect(),
        }
    }
}

impl Facts<'_> {
    pub fn to_owned(&self) -> OwnedFacts {
        OwnedFacts {
            id: self.id.map(Box::from),
            attrs: self.attrs.iter().map(|a| a.owned()).collect(),
        }
    }

    pub fn is(&self, owned: &OwnedFacts) -> bool {
        self.id == owned.id.as_deref()
            && self.attrs.len() == owned.attrs.len()
            && self.attrs.iter().zip(&owned.attrs).all(|(a, b)| a.is(b))
    }
}

/// Per-request view of the engine for record and field decisions.
pub struct Decider<'a> {
    engine: &'a Engine,
    who: &'a RequestPrincipal,
    roles: HashSet<&'a str>,
    per_action: [Option<(Arc<Applicable>, Arc<str>)>; 4],
    /// This request's answers by action, then by field slot (0 for the
    /// record, 1 + field index for a field): see [`Decider::allowed`].
    memo: [Vec<MemoSlot>; 4],
    /// Slots (below 64) asked once already, by action: an answer is
    /// remembered from a slot's second question on, so a single record
    /// (every question asked once) pays no memo at all.
    asked: [u64; 4],
}

/// Answers to one (action, field) question in one request, one per
/// distinct resource type, id and attribute values (only the parts the
/// shared cache key would hold).
///
/// A plain `Vec` (24 bytes, no allocation while empty): slots are indexed
/// by catalogue field, and most of a catalogue's fields are never asked
/// about in a request, so inline storage would make every request write
/// (and grow by copying) kilobytes of empty slots.
type MemoSlot = Vec<MemoEntry>;

struct MemoEntry {
    type_key: u32,
    resource: Option<Box<str>>,
    attrs: SmallVec<[AttrKey; 2]>,
    verdict: Verdict,
}

/// Distinct answers a request remembers per (action, field). A list's
/// records mostly ask the same few questions (a consent flag is true or
/// false); questions that differ per record (ownership by record id) go to
/// the shared cache once the slot is full.
const MEMO_PER_SLOT: usize = 4;

impl MemoEntry {
    /// Whether this entry answers the question the shared cache would key
    /// as (`resource.type_key`, `resource_id`, values of `attr_names`).
    fn answers(
        &self,
        resource: &ResourceRef<'_>,
        resource_id: Option<&str>,
        deps: &Dependencies,
        who: &EntityUid,
    ) -> bool {
        self.type_key == resource.type_key
            && self.resource.as_deref() == resource_id
            && self.attrs.len() == deps.resource_attrs.len()
            && self
                .attrs
                .iter()
                .zip(&deps.resource_attrs)
                .all(|(v, name)| attr_key(deps, name, resource, who).is(v))
    }
}

impl Decider<'_> {
    fn prepared(&mut self, action: FieldAction) -> (Arc<Applicable>, Arc<str>) {
        if let Some(p) = &self.per_action[action.index()] {
            return p.clone();
        }
        let applicable = self
            .engine
            .applicable(&self.who.roles_key, &self.roles, action.id());
        let who: Arc<str> = if applicable.deps.principal {
            Arc::from(self.who.personal_key.as_str())
        } else {
            Arc::from(self.who.shared_key.as_str())
        };
        let p = (applicable, who);
        self.per_action[action.index()] = Some(p.clone());
        p
    }

    /// May the caller perform `action` on this record (and field)?
    pub fn allowed(
        &mut self,
        action: FieldAction,
        field: Option<&FieldSpec>,
        resource: &ResourceRef<'_>,
    ) -> bool {
        self.verdict(action, field, resource).allowed
    }

    /// The ids [`PolicyRefs`] of this decider's verdicts index.
    pub fn policy_table(&self) -> PolicyTable {
        self.engine.policy_table()
    }

    /// `ids` (of an explained decision) as [`PolicyRefs`].
    pub fn policy_refs(&self, ids: &[String]) -> PolicyRefs {
        self.engine.policy_refs(ids)
    }

    /// What this caller's record and field decisions (`record:read`,
    /// `field:read`, `field:read_masked`) on records whose attributes come
    /// from `sources` can depend on: the union of what the shared cache
    /// keys of those decisions hold besides the caller, the action and the
    /// field. Two records with equal [`Decider::facts`] get the same answer
    /// to every such question, so a redactor may decide a record's fields
    /// once per distinct facts (a record plan) instead of once per record.
    pub fn record_facts(&mut self, sources: &[AttributeSource]) -> RecordFacts {
        let mut uid = false;
        let mut names: BTreeSet<&str> = BTreeSet::new();
        let mut valued: BTreeSet<String> = BTreeSet::new();
        let mut prepared = Vec::new();
        for action in [
            FieldAction::RecordRead,
            FieldAction::FieldRead,
            FieldAction::FieldReadMasked,
        ] {
            prepared.push(self.prepared(action).0);
        }
        for applicable in &prepared {
            // Without a permit the answer is deny whatever the record.
            if applicable.no_permit {
                continue;
            }
            uid |= applicable.deps.resource_uid;
            names.extend(applicable.deps.resource_attrs.iter().map(String::as_str));
            valued.extend(applicable.deps.valued_attrs.iter().cloned());
        }
        let attrs = names
            .into_iter()
            .map(|name| {
                let at = sources.iter().position(|s| s.name == name);
                let caller_type = at.is_some_and(|i| {
                    let probe = AttrValue::Entity(self.who.uid.id().unescaped().into());
                    is_caller(&probe, &sources[i], &self.who.uid)
                });
                FactSource {
                    at,
                    valued: valued.contains(name),
                    caller_type,
                }
            })
            .collect();
        RecordFacts {
            uid,
            attrs,
            caller: self.who.uid.id().unescaped().into(),
        }
    }

    /// [`Self::allowed`] with the policies behind the answer.
    ///
    /// Asked once per record and field of a body, so answers come, in
    /// order, from this request's memo (no hashing: a list's records repeat
    /// a few questions), the shared cache, or Cedar. The memo compares
    /// exactly what the shared cache key holds (the caller part is fixed for
    /// a request and action), so both give the same answer.
    pub fn verdict(
        &mut self,
        action: FieldAction,
        field: Option<&FieldSpec>,
        resource: &ResourceRef<'_>,
    ) -> Verdict {
        let (applicable, who) = self.prepared(action);
        if applicable.no_permit {
            return Verdict::default();
        }
        let deps = &applicable.deps;
        let resource_id = deps.resource_uid.then_some(resource.id);
        let slot_index = field.map_or(0, |f| f.index as usize + 1);
        let remembered = self.memo[action.index()].get(slot_index).and_then(|slot| {
            slot.iter()
                .find(|e| e.answers(resource, resource_id, deps, &self.who.uid))
        });
        if let Some(hit) = remembered {
            return hit.verdict.clone();
        }
        let attrs = relevant_attrs(deps, resource, &self.who.uid);
        let key = DecisionKey {
            who,
            action: action as u8,
            resource_type: resource.type_key,
            field: field.map_or(u32::MAX, |f| f.index),
            resource: resource_id.map(Box::from),
            attrs,
        };
        // The guard is dropped at once: `cache_put` takes the shard's lock.
        let cached = self.engine.decisions.get(&key).map(|hit| hit.clone());
        let fresh = cached.is_none();
        let verdict = match cached {
            Some(verdict) => verdict,
            None => {
                let d = self.evaluate(action, &applicable, field, resource);
                Verdict {
                    allowed: d.allowed,
                    policies: self.engine.policy_refs(&d.policies),
                }
            }
        };
        let asked = &mut self.asked[action.index()];
        let bit = 1u64.checked_shl(slot_index as u32).unwrap_or(0);
        let again = *asked & bit != 0 || bit == 0;
        *asked |= bit;
        let memo = &mut self.memo[action.index()];
        if again && memo.len() <= slot_index {
            memo.resize_with((slot_index + 1).max(64), Vec::new);
        }
        if let Some(slot) = (memo.get_mut(slot_index)).filter(|s| again && s.len() < MEMO_PER_SLOT)
        {
            if slot.capacity() == 0 {
                slot.reserve_exact(MEMO_PER_SLOT);
            }
            slot.push(MemoEntry {
                type_key: key.resource_type,
                resource: key.resource.clone(),
                attrs: key.attrs.clone(),
                verdict: verdict.clone(),
            });
        }
        if fresh {
            self.engine.cache_put(key, verdict.clone());
        }
        verdict
    }

    /// The same question as [`Self::allowed`], uncached and with the
    /// determining policies: for explanations and policy tests.
    pub fn explain(
        &mut self,
        action: FieldAction,
        field: Option<&FieldSpec>,
        resource: &ResourceRef<'_>,
    ) -> RequestDecision {
        let (applicable, _) = self.prepared(action);
        self.evaluate(action, &applicable, field, resource)
    }

    fn evaluate(
        &self,
        action: FieldAction,
        applicable: &Applicable,
        field: Option<&FieldSpec>,
        r: &ResourceRef<'_>,
    ) -> RequestDecision {
        let resource = match r.entity() {
            Ok(r) => r,
            Err(e) => return deny_with_error(format!("record entity: {e}")),
        };
        let context = match field {
            Some(f) => self.who.field_context(f),
            None => self.who.record_context(),
        };
        match context {
            Ok(ctx) => self
                .engine
                .evaluate(self.who, action.id(), applicable, resource, ctx),
            Err(e) => deny_with_error(format!("context: {e}")),
        }
    }
}
