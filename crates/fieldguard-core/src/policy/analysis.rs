//! What a policy's decision can depend on, read from its JSON form once at
//! load time. The decision cache keys on exactly these facts, so a cached
//! answer is reused only where the policies could not tell the difference.
//! The analysis errs towards "depends": an unknown construct widens the key.

use cedar_policy::{Policy, PrincipalConstraint, ResourceConstraint};
use serde_json::Value;
use std::collections::BTreeSet;

/// The entity type principals have in fieldguard's model.
pub(super) const PRINCIPAL_TYPE: &str = "User";
/// The entity type of roles (a principal's parents).
pub(super) const ROLE_TYPE: &str = "Role";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Dependencies {
    /// Attributes of `resource` read by conditions.
    pub resource_attrs: BTreeSet<String>,
    /// Those of `resource_attrs` whose value matters. The others are read
    /// only by `resource has a` and `resource.a == principal` (or `!=`,
    /// either way round): only whether the record has the attribute and
    /// whether it is the caller can change an answer. Ownership rules are
    /// of this kind, so the records of a list, each with its own owner,
    /// share two answers (the caller's own, everyone else's) instead of
    /// asking one question per owner.
    pub valued_attrs: BTreeSet<String>,
    /// The resource's identity matters (`resource == …`, `resource in …`).
    pub resource_uid: bool,
    /// The principal's identity or attributes matter (beyond its roles).
    pub principal: bool,
}

impl Dependencies {
    pub(super) fn merge(&mut self, other: &Dependencies) {
        self.resource_attrs
            .extend(other.resource_attrs.iter().cloned());
        self.valued_attrs.extend(other.valued_attrs.iter().cloned());
        self.resource_uid |= other.resource_uid;
        self.principal |= other.principal;
    }
}

/// Reads a policy's dependencies. On any surprise (no JSON form) it says
/// everything matters.
pub(super) fn dependencies(policy: &Policy) -> Dependencies {
    let mut deps = Dependencies::default();
    match policy.principal_constraint() {
        PrincipalConstraint::Eq(e) | PrincipalConstraint::In(e)
            if e.type_name().to_string() != ROLE_TYPE =>
        {
            deps.principal = true
        }
        PrincipalConstraint::IsIn(_, e) if e.type_name().to_string() != ROLE_TYPE => {
            deps.principal = true
        }
        _ => {}
    }
    match policy.resource_constraint() {
        ResourceConstraint::Any | ResourceConstraint::Is(_) => {}
        _ => deps.resource_uid = true,
    }
    match policy.to_json() {
        Ok(json) => {
            if let Some(conds) = json.get("conditions") {
                scan(conds, &mut deps);
            }
        }
        Err(_) => {
            deps.resource_uid = true;
            deps.principal = true;
        }
    }
    deps
}

fn var_name(v: &Value) -> Option<&str> {
    v.get("Var").and_then(Value::as_str)
}

/// True for an entity literal of the role type, or a set of them.
fn is_role_literal(v: &Value) -> bool {
    let entity_type = |e: &Value| {
        e.get("Value")
            .and_then(|x| x.get("__entity"))
            .and_then(|x| x.get("type"))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    match v.get("Set").and_then(Value::as_array) {
        Some(items) => items
            .iter()
            .all(|i| entity_type(i).as_deref() == Some(ROLE_TYPE)),
        None => entity_type(v).as_deref() == Some(ROLE_TYPE),
    }
}

/// The attribute `a` of `resource.a`.
fn resource_attr(v: &Value) -> Option<&str> {
    let inner = v.get(".")?;
    if inner.get("left").and_then(var_name) != Some("resource") {
        return None;
    }
    inner.get("attr").and_then(Value::as_str)
}

fn scan(v: &Value, deps: &mut Dependencies) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| scan(i, deps)),
        Value::Object(map) => {
            // `resource.attr == principal` (or `!=`, either way round):
            // only whether the attribute is the caller.
            for op in ["==", "!="] {
                if let Some(inner) = map.get(op)
                    && let (Some(left), Some(right)) = (inner.get("left"), inner.get("right"))
                {
                    let compared = match (var_name(left), var_name(right)) {
                        (_, Some("principal")) => resource_attr(left),
                        (Some("principal"), _) => resource_attr(right),
                        _ => None,
                    };
                    if let Some(attr) = compared {
                        deps.resource_attrs.insert(attr.to_string());
                        deps.principal = true;
                        return;
                    }
                }
            }
            // `resource.attr` / `resource has attr`: only that attribute
            // (and only whether the record has it, for `has`).
            for op in [".", "has"] {
                if let Some(inner) = map.get(op)
                    && let (Some(left), Some(attr)) =
                        (inner.get("left"), inner.get("attr").and_then(Value::as_str))
                {
                    match var_name(left) {
                        Some("resource") => {
                            deps.resource_attrs.insert(attr.to_string());
                            if op == "." {
                                deps.valued_attrs.insert(attr.to_string());
                            }
                        }
                        Some("context") => {}
                        _ => scan(left, deps),
                    }
                    return;
                }
            }
            // `resource is T`: only the type, which every key holds.
            if let Some(inner) = map.get("is")
                && inner.get("left").and_then(var_name) == Some("resource")
            {
                if let Some(in_expr) = inner.get("in") {
                    deps.resource_uid = true;
                    scan(in_expr, deps);
                }
                return;
            }
            // `principal in Role::"x"`: only the roles, which every key holds.
            if let Some(inner) = map.get("in")
                && let (Some(left), Some(right)) = (inner.get("left"), inner.get("right"))
                && var_name(left) == Some("principal")
                && is_role_literal(right)
            {
                return;
            }
            match var_name(v) {
                Some("resource") => deps.resource_uid = true,
                Some("principal") => deps.principal = true,
                _ => map.values().for_each(|x| scan(x, deps)),
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn deps(src: &str) -> Dependencies {
        dependencies(&Policy::from_str(src).unwrap())
    }

    #[test]
    fn role_checks_and_field_context_depend_on_nothing_else() {
        let d = deps(
            r#"permit(principal in Role::"a", action, resource) when { principal in Role::"b" && context.field.level <= 2 };"#,
        );
        assert_eq!(d, Dependencies::default());
    }

    #[test]
    fn attribute_reads_are_listed() {
        let d = deps(
            r#"permit(principal, action, resource) when { resource has marketing_consent && resource.marketing_consent };"#,
        );
        assert_eq!(
            d.resource_attrs.into_iter().collect::<Vec<_>>(),
            vec!["marketing_consent".to_string()]
        );
        assert!(d.valued_attrs.contains("marketing_consent"));
        assert!(!d.principal && !d.resource_uid);
    }

    #[test]
    fn ownership_depends_on_principal_and_owner() {
        let d = deps(
            r#"permit(principal, action, resource) when { resource has owner && resource.owner == principal };"#,
        );
        assert!(d.principal);
        assert!(d.resource_attrs.contains("owner"));
        assert!(
            d.valued_attrs.is_empty(),
            "owner is only compared with the caller"
        );
        assert!(!d.resource_uid);
        let d = deps(
            r#"forbid(principal, action, resource) unless { principal == resource.owner || resource.owner != principal };"#,
        );
        assert!(d.principal && d.valued_attrs.is_empty());
        // Any other use of the value: the value matters.
        for cond in [
            r#"resource.owner == User::"c-1""#,
            r#"resource.owner.id == principal"#,
            r#"resource.owner == principal && resource.owner in principal"#,
            r#"resource.owner like "c-*""#,
        ] {
            let d = deps(&format!(
                "permit(principal, action, resource) when {{ {cond} }};"
            ));
            assert!(d.valued_attrs.contains("owner"), "{cond}");
        }
        let d = deps(r#"permit(principal, action, resource == Customer::"x");"#);
        assert!(d.resource_uid);
        let d = deps(r#"permit(principal, action, resource) when { resource in Customer::"x" };"#);
        assert!(d.resource_uid);
    }
}
