//! The Cedar entities and contexts fieldguard builds for a request: the
//! principal (`User::"<sub>"`, a member of `Role::"<role>"` for each role),
//! resources from route parameters or records, and contexts carrying MFA,
//! purpose and, for field actions, the field.

use super::analysis::{PRINCIPAL_TYPE, ROLE_TYPE};
use crate::catalogue::{AttrValue, FieldSpec};
use crate::principal::{self as identity, Principal};
use cedar_policy::{Context, Entity, EntityId, EntityTypeName, EntityUid, RestrictedExpression};
use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::OnceLock;

/// The caller as Cedar sees it, built once per request.
#[derive(Debug, Clone)]
pub struct RequestPrincipal {
    pub uid: EntityUid,
    pub entity: Entity,
    pub mfa: bool,
    /// Sorted roles joined by commas: the key of per-role-set analyses.
    pub roles_key: String,
    roles: Vec<String>,
    /// Empty when the caller stated no purpose of use.
    pub purpose: String,
    /// The route's request-level action, given to record and field
    /// decisions so policies can tell, say, a registration's echo from a read.
    pub request_action: String,
    /// Cache-key prefix for decisions that depend only on roles, MFA and
    /// purpose: shared by every caller with the same ones.
    pub shared_key: String,
    /// Cache-key prefix for decisions that also depend on who the caller is.
    pub personal_key: String,
}

pub(super) fn type_name(name: &str) -> EntityTypeName {
    // Parsing runs Cedar's grammar (microseconds); the model's own names
    // are asked for on every request, so they are parsed once.
    static USER: OnceLock<EntityTypeName> = OnceLock::new();
    static ROLE: OnceLock<EntityTypeName> = OnceLock::new();
    static ACTION: OnceLock<EntityTypeName> = OnceLock::new();
    let cell = match name {
        PRINCIPAL_TYPE => &USER,
        ROLE_TYPE => &ROLE,
        "Action" => &ACTION,
        _ => return parse_type_name(name),
    };
    cell.get_or_init(|| parse_type_name(name)).clone()
}

fn parse_type_name(name: &str) -> EntityTypeName {
    // The names are fixed identifiers of fieldguard's model.
    #[allow(
        clippy::expect_used,
        reason = "the names are fixed identifiers of fieldguard's model, not input"
    )]
    EntityTypeName::from_str(name).expect("static entity type name")
}

pub(super) fn uid(type_name: &EntityTypeName, id: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(type_name.clone(), EntityId::new(id))
}

/// A principal, resource or context Cedar will not take (an attribute
/// value it cannot represent, a duplicate key): the decision is then a
/// deny with this as its policy error.
/// Boxed: Cedar's errors are large and these travel on the hot path's
/// `Result`s, which are almost always `Ok`.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error(transparent)]
    Entity(Box<cedar_policy::EntityAttrEvaluationError>),
    #[error(transparent)]
    Context(Box<cedar_policy::ContextCreationError>),
    #[error(transparent)]
    Record(Box<cedar_policy::ExpressionConstructionError>),
}

impl From<cedar_policy::EntityAttrEvaluationError> for InputError {
    fn from(e: cedar_policy::EntityAttrEvaluationError) -> Self {
        Self::Entity(Box::new(e))
    }
}

impl From<cedar_policy::ContextCreationError> for InputError {
    fn from(e: cedar_policy::ContextCreationError) -> Self {
        Self::Context(Box::new(e))
    }
}

impl From<cedar_policy::ExpressionConstructionError> for InputError {
    fn from(e: cedar_policy::ExpressionConstructionError) -> Self {
        Self::Record(Box::new(e))
    }
}

impl RequestPrincipal {
    pub fn new(p: &Principal, request_action: &str) -> Result<Self, InputError> {
        let user_type = type_name(PRINCIPAL_TYPE);
        let role_type = type_name(ROLE_TYPE);
        let uid = uid(&user_type, &p.id);
        let parents: HashSet<EntityUid> =
            p.roles.iter().map(|r| self::uid(&role_type, r)).collect();
        let attrs: HashMap<String, RestrictedExpression> = p
            .attributes
            .iter()
            .map(|(k, v)| (k.clone(), attr_expr(v)))
            .collect();
        let entity = Entity::new(uid.clone(), attrs, parents)?;
        let purpose = p.purpose.clone().unwrap_or_default();
        // Roles are sorted by the identity layer; the separators cannot occur
        // in a role or purpose (both are validated token characters).
        let shared_key = format!(
            "{}\u{1f}{}\u{1f}{}\u{1f}{}",
            p.roles.join(","),
            p.mfa,
            purpose,
            request_action
        );
        let personal_key = format!("{shared_key}\u{1f}{}\u{1f}{:?}", p.id, p.attributes);
        Ok(Self {
            uid,
            entity,
            mfa: p.mfa,
            roles_key: p.roles.join(","),
            roles: p.roles.clone(),
            purpose,
            request_action: request_action.to_string(),
            shared_key,
            personal_key,
        })
    }

    pub fn role_set(&self) -> HashSet<&str> {
        self.roles.iter().map(String::as_str).collect()
    }

    /// Context of request-level decisions.
    pub fn request_context(&self) -> Result<Context, InputError> {
        Ok(Context::from_pairs(self.base_context())?)
    }

    /// Context of record-level decisions.
    pub fn record_context(&self) -> Result<Context, InputError> {
        let mut pairs = self.base_context().to_vec();
        pairs.push(self.request_action_pair());
        Ok(Context::from_pairs(pairs)?)
    }

    fn base_context(&self) -> [(String, RestrictedExpression); 2] {
        [
            ("mfa".to_string(), RestrictedExpression::new_bool(self.mfa)),
            (
                "purpose".to_string(),
                RestrictedExpression::new_string(self.purpose.clone()),
            ),
        ]
    }

    fn request_action_pair(&self) -> (String, RestrictedExpression) {
        (
            "request_action".to_string(),
            RestrictedExpression::new_string(self.request_action.clone()),
        )
    }

    /// Context of field decisions: the request context plus the field.
    pub fn field_context(&self, field: &FieldSpec) -> Result<Context, InputError> {
        let field_rec = RestrictedExpression::new_record([
            (
                "name".to_string(),
                RestrictedExpression::new_string(field.path.clone()),
            ),
            (
                "category".to_string(),
                RestrictedExpression::new_string(field.category.as_str().to_string()),
            ),
            (
                "level".to_string(),
                RestrictedExpression::new_long(i64::from(field.level.0)),
            ),
        ])?;
        let mut pairs = self.base_context().to_vec();
        pairs.push(self.request_action_pair());
        pairs.push(("field".to_string(), field_rec));
        Ok(Context::from_pairs(pairs)?)
    }
}

fn attr_expr(v: &identity::AttrValue) -> RestrictedExpression {
    match v {
        identity::AttrValue::String(s) => RestrictedExpression::new_string(s.clone()),
        identity::AttrValue::Long(n) => RestrictedExpression::new_long(*n),
        identity::AttrValue::Bool(b) => RestrictedExpression::new_bool(*b),
        identity::AttrValue::Set(items) => RestrictedExpression::new_set(
            items
                .iter()
                .map(|s| RestrictedExpression::new_string(s.clone())),
        ),
    }
}

/// Cedar form of a record attribute; entity references use `entity_type`.
pub(super) fn record_attr_expr(
    v: &AttrValue,
    entity_type: Option<&EntityTypeName>,
) -> RestrictedExpression {
    match v {
        AttrValue::Str(s) => RestrictedExpression::new_string(s.to_string()),
        AttrValue::Bool(b) => RestrictedExpression::new_bool(*b),
        AttrValue::Long(n) => RestrictedExpression::new_long(*n),
        AttrValue::Entity(id) => {
            let t = entity_type
                .cloned()
                .unwrap_or_else(|| type_name(PRINCIPAL_TYPE));
            RestrictedExpression::new_entity_uid(uid(&t, id))
        }
    }
}

/// A resource entity with the given attributes and no parents.
pub(super) fn resource_entity(
    uid: EntityUid,
    attrs: impl IntoIterator<Item = (String, RestrictedExpression)>,
) -> Result<Entity, InputError> {
    Ok(Entity::new(
        uid,
        attrs.into_iter().collect(),
        HashSet::new(),
    )?)
}
