//! Warnings `fieldguard validate` adds to the start-up checks: policies that
//! can never apply and catalogue fields no policy mentions. Warnings, not
//! errors: a blanket rule may cover an unmentioned field on purpose.

use crate::runtime::Runtime;
use cedar_policy::ActionConstraint;
use fieldguard_core::config::{Shape, UnknownFields};
use serde_json::Value;
use std::collections::BTreeSet;

/// Actions fieldguard itself asks about (not tied to a route).
const BUILT_IN_ACTIONS: [&str; 4] = [
    "record:read",
    "field:read",
    "field:read_masked",
    "field:write",
];

/// Every warning says what is wrong and what to do about it.
pub fn warnings(rt: &Runtime) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(h) = rt.identifier.purpose_fallback_header() {
        out.push(format!(
            "{}: identity.jwt.purpose_fallback_header is set: a caller whose token has no purpose claim names its own purpose in the `{h}` header (CDM-1.2.4 wants it from the identity provider); have the identity provider issue the `purpose` claim, then remove the setting",
            rt.config.file.display()
        ));
    }
    // Cedar's own validation warnings (an impossible policy, …), by @id.
    out.extend(rt.decisions.engine.bundle.warnings.iter().cloned());
    budget_store_warnings(rt, &mut out);
    route_warnings(rt, &mut out);
    let (literals, patterns) = policy_warnings(rt, &mut out);
    out.extend(level_4_without_mfa(rt));
    shape_warnings(rt, &mut out);
    unmentioned_field_warnings(rt, &literals, &patterns, &mut out);
    out
}

/// Routes that pass unknown members, or have a backstop with nothing to
/// scan.
fn route_warnings(rt: &Runtime, out: &mut Vec<String>) {
    for r in &rt.decisions.routes {
        if r.response
            .as_ref()
            .is_some_and(|p| p.unknown == UnknownFields::Pass)
        {
            out.push(format!(
                "{}: route {} {} has `unknown_fields: pass`: response members the catalogue does not name reach callers unfiltered (for onboarding only; see fieldguard_uncatalogued_fields_total, then remove the setting)",
                rt.config.file.display(),
                r.method,
                r.template
            ));
        }
        // A backstop scans free-text fields and passed unnamed members:
        // with neither, it was meant for something it cannot see.
        if let Some(plan) = r.response.as_deref()
            && !plan.backstop.is_empty()
            && plan.unknown != UnknownFields::Pass
        {
            let free_text = plan.selectors.iter().any(|s| {
                rt.decisions
                    .catalogue
                    .fields()
                    .iter()
                    .any(|f| f.free_text && f.is_record_field() && *f.entity == *s.entity.name)
            }) || rt
                .decisions
                .catalogue
                .fields()
                .iter()
                .any(|f| f.free_text && f.wrapper_of == Some(r.position));
            if !free_text {
                out.push(format!(
                    "{}: route {} {} has a `backstop` but no `free_text` field in its records or members and does not pass unknown fields: it has nothing to scan",
                    rt.config.file.display(),
                    r.method,
                    r.template
                ));
            }
        }
    }
}

/// Policies that can never apply (no route uses their actions) or name a
/// field no entity has. Returns the field names the policies mention:
/// literals and `like` patterns.
fn policy_warnings(rt: &Runtime, out: &mut Vec<String>) -> (BTreeSet<String>, Vec<String>) {
    let route_actions: BTreeSet<&str> = rt
        .decisions
        .routes
        .iter()
        .map(|r| r.action.as_str())
        .collect();
    let catalogue: BTreeSet<&str> = rt
        .decisions
        .catalogue
        .fields()
        .iter()
        .map(|f| f.path.as_str())
        .collect();
    let mut literals: BTreeSet<String> = BTreeSet::new();
    let mut patterns: Vec<String> = Vec::new();
    for p in rt.decisions.engine.bundle.policies.policies() {
        let id = p.id().to_string();
        let place = rt
            .decisions
            .engine
            .bundle
            .info
            .get(&id)
            .map(|i| format!("{}:{}", i.file.display(), i.line))
            .unwrap_or_default();
        let actions: Vec<String> = match p.action_constraint() {
            ActionConstraint::Any => Vec::new(),
            ActionConstraint::Eq(a) => vec![a.id().unescaped().to_string()],
            ActionConstraint::In(list) => list
                .iter()
                .map(|a| a.id().unescaped().to_string())
                .collect(),
        };
        if !actions.is_empty()
            && actions.iter().all(|a| {
                !BUILT_IN_ACTIONS.contains(&a.as_str()) && !route_actions.contains(a.as_str())
            })
        {
            out.push(format!(
                "{place}: policy `{id}` can never apply: no route uses action(s) {}; add a route with that action, or delete the policy",
                actions.join(", ")
            ));
        }
        let mut lits = BTreeSet::new();
        let mut pats = Vec::new();
        if let Ok(json) = p.to_json() {
            field_name_literals(&json, &mut lits, &mut pats);
        }
        for lit in lits.iter().filter(|l| !catalogue.contains(l.as_str())) {
            out.push(format!(
                "{place}: policy `{id}` names field `{lit}`, which no catalogue entity has; fix the name (a typo never matches), or catalogue the field under `entities:`"
            ));
        }
        literals.extend(lits);
        patterns.extend(pats);
    }
    (literals, patterns)
}

/// Catalogue fields and response members no policy mentions.
fn unmentioned_field_warnings(
    rt: &Runtime,
    literals: &BTreeSet<String>,
    patterns: &[String],
    out: &mut Vec<String>,
) {
    for f in rt.decisions.catalogue.fields() {
        let mentioned =
            literals.contains(&f.path) || patterns.iter().any(|p| like_matches(p, &f.path));
        if mentioned {
            continue;
        }
        let what = match f
            .wrapper_of
            .and_then(|i| rt.decisions.routes.iter().find(|r| r.position == i))
        {
            Some(r) => format!(
                "response member `{}` of route {} {}",
                f.path, r.method, r.template
            ),
            None => format!("catalogue field {}.{}", f.entity, f.path),
        };
        out.push(format!(
            "{}: {what} is mentioned by no policy (only blanket rules decide it); name it in the policies of the roles that need it, or remove it from the catalogue if none does",
            rt.config.file.display()
        ));
    }
}

/// Fields whose `shape` leaves a hole: `any` (or an object or array
/// without `of`) lets an upstream put any value (an object of personal
/// data) where a role may read the field; a mask on an object or array
/// field never applies (only scalars have a
/// masked form), so the role meant to see it masked sees nothing.
fn shape_warnings(rt: &Runtime, out: &mut Vec<String>) {
    let file = rt.config.file.display();
    for f in rt.decisions.catalogue.fields() {
        let what = match f.wrapper_of {
            Some(_) => format!("response member `{}`", f.path),
            None => format!("catalogue field {}.{}", f.entity, f.path),
        };
        match f.shape {
            Shape::Any => out.push(format!(
                "{file}: {what} has `shape: any`: an upstream may put any JSON value in it (an object of personal data, a list) and every caller who may read the field sees it whole; name its kind (string, number, boolean, object or array)"
            )),
            Shape::Object | Shape::Array if f.of.is_none() => out.push(format!(
                "{file}: {what} is an {} without `of`: an upstream may put anything inside it (an ID number in an order item) and every caller who may read the field sees it whole; name what it holds (`of: {{ sku: string, qty: number }}`)",
                f.shape.as_str()
            )),
            _ => {}
        }
        if matches!(f.shape, Shape::Object | Shape::Array) && f.mask.is_some() {
            out.push(format!(
                "{file}: {what} is an {} with a mask: only strings, numbers and booleans have a masked form, so callers allowed only the masked form see nothing; remove the mask, or catalogue the scalar fields inside it",
                f.shape.as_str()
            ));
        }
    }
}

/// Sensitivity level of the fields [`level_4_without_mfa`] guards.
const HIGHEST_LEVEL: u8 = 4;

/// CDM-4.1.2, CDM-4.2.2: every caller that would see a level-4 field of a
/// record that is not its own in full without MFA, found by evaluating the
/// real policies as the least-privilege matrix does (every role, purpose
/// and record scenario). A customer's own record is theirs to see.
fn level_4_without_mfa(rt: &Runtime) -> Vec<String> {
    let highest: BTreeSet<(String, String)> = rt
        .decisions
        .catalogue
        .fields()
        .iter()
        .filter(|f| f.is_record_field() && f.level.0 >= HIGHEST_LEVEL)
        .map(|f| (f.entity.to_string(), f.path.clone()))
        .collect();
    if highest.is_empty() {
        return Vec::new();
    }
    let matrix = super::matrix::compute(rt);
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for r in &matrix.fields {
        let own = r.scenario.split(',').any(|s| s == "own");
        if r.mfa
            || own
            || r.outcome != "full"
            || !highest.contains(&(r.entity.clone(), r.field.clone()))
            || !seen.insert((r.role.clone(), r.entity.clone(), r.field.clone()))
        {
            continue;
        }
        let purpose = if r.purpose.is_empty() {
            String::new()
        } else {
            format!(" --purpose {}", r.purpose)
        };
        out.push(format!(
            "{}: role `{}` sees level-{HIGHEST_LEVEL} field {}.{} of others' records in full without MFA (CDM-4.1.2; record scenario `{}`); require `context.mfa` in the policy that permits it (`fieldguard explain --role {}{purpose} ...` names it), or keep a forbid such as baseline-level-4-needs-mfa",
            rt.config.file.display(),
            r.role,
            r.entity,
            r.field,
            r.scenario,
            r.role,
        ));
    }
    out
}

/// `context.field.name`, as it appears in a policy's JSON form.
fn is_field_name(v: &Value) -> bool {
    let attr = |x: &Value, name: &str| {
        x.get(".")
            .filter(|d| d.get("attr").and_then(Value::as_str) == Some(name))
            .and_then(|d| d.get("left"))
            .cloned()
    };
    attr(v, "name")
        .and_then(|f| attr(&f, "field"))
        .and_then(|c| c.get("Var").and_then(Value::as_str).map(str::to_string))
        .as_deref()
        == Some("context")
}

/// String literals compared with `context.field.name` (`==`, a set's
/// `.contains`) and `like` patterns applied to it.
fn field_name_literals(v: &Value, lits: &mut BTreeSet<String>, pats: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(eq) = m.get("==") {
                for (a, b) in [("left", "right"), ("right", "left")] {
                    if eq.get(a).is_some_and(is_field_name)
                        && let Some(s) = eq
                            .get(b)
                            .and_then(|x| x.get("Value"))
                            .and_then(Value::as_str)
                    {
                        lits.insert(s.to_string());
                    }
                }
            }
            if let Some(c) = m.get("contains")
                && c.get("right").is_some_and(is_field_name)
                && let Some(items) = c
                    .get("left")
                    .and_then(|l| l.get("Set"))
                    .and_then(Value::as_array)
            {
                lits.extend(
                    items
                        .iter()
                        .filter_map(|i| i.get("Value").and_then(Value::as_str).map(str::to_string)),
                );
            }
            if let Some(like) = m.get("like")
                && like.get("left").is_some_and(is_field_name)
                && let Some(pattern) = like.get("pattern").and_then(Value::as_array)
            {
                let text: String = pattern
                    .iter()
                    .map(|p| match p {
                        Value::String(s) if s == "Wildcard" => "*".to_string(),
                        Value::Object(o) => o
                            .get("Literal")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                        _ => String::new(),
                    })
                    .collect();
                pats.push(text);
            }
            m.values().for_each(|x| field_name_literals(x, lits, pats));
        }
        Value::Array(a) => a.iter().for_each(|x| field_name_literals(x, lits, pats)),
        _ => {}
    }
}

/// Cedar `like` with `*` wildcards.
fn like_matches(pattern: &str, s: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == s;
    }
    let mut rest = s;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(pos) => rest = &rest[pos + part.len()..],
                None => return false,
            }
        }
    }
    true
}

/// A fleet's budgets: `replicas` without a shared store changes nothing,
/// and a limit smaller than `replicas` leaves each replica a share of 0
/// while the store is away (`on_store_error: local` then refuses all).
fn budget_store_warnings(rt: &Runtime, out: &mut Vec<String>) {
    let cfg = &rt.config.config.budgets;
    let file = rt.config.file.display();
    let shared = cfg.store.kind == crate::budget::config::StoreKind::Redis;
    if !shared && cfg.replicas > 1 && !rt.budgets.is_empty() {
        out.push(format!(
            "{file}: budgets.replicas is {} but budgets.store is `memory`: each replica counts alone, so a principal may be shown up to {} x each limit; set budgets.store.type: redis to count one total",
            cfg.replicas, cfg.replicas
        ));
    }
    if shared {
        for l in rt.budgets.limits() {
            if l.on_store_error == crate::budget::OnStoreError::Local
                && l.share(rt.budgets.replicas) == 0
            {
                out.push(format!(
                    "{file}: budget `{}`: limit {} divided by budgets.replicas ({}) is 0: while the store is away every request it counts is refused (raise the limit, or say on_store_error: refuse)",
                    l.id, l.limit, rt.budgets.replicas
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::like_matches;

    #[test]
    fn like_patterns() {
        assert!(like_matches("address.*", "address.city"));
        assert!(!like_matches("address.*", "addresses"));
        assert!(like_matches("*.card_number", "payment.card_number"));
        assert!(like_matches("a*b*c", "aXXbYYc"));
        assert!(!like_matches("a*b*c", "aXXbYY"));
    }
}
