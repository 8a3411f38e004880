//! `fieldguard matrix`: the least-privilege report. For every role (with and
//! without MFA, per purpose) and every catalogued field: read in full,
//! masked, removed or hidden with its record; and which routes a role may
//! call. Every cell is computed by asking the real policies, through the
//! real router, about synthetic records and requests.

use crate::runtime::Runtime;
use fieldguard_core::catalogue::{AttrValue, AttributeSource, EntityCatalogue, compile_attributes};
use fieldguard_core::config::AttributeKind;
use fieldguard_core::pipeline::{self, Routed};
use fieldguard_core::policy::{FieldAction, RequestPrincipal, ResourceRef, Verdict};
use fieldguard_core::routing;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// The principal id used for "own" records and requests.
const ME: &str = "matrix-user";
/// The owner of everybody else's records.
const OTHER: &str = "someone-else";

/// A caller variant: a role with or without MFA and a purpose.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Variant {
    pub role: String,
    pub mfa: bool,
    pub purpose: String,
}

impl Variant {
    fn label(&self) -> String {
        let mut s = self.role.clone();
        if self.mfa {
            s.push_str(" +MFA");
        }
        if !self.purpose.is_empty() {
            s.push_str(&format!(" purpose={}", self.purpose));
        }
        s
    }
}

/// One evaluated cell, before summarising: a field (or the record itself,
/// `field = "(record)"`) of an entity, for one record scenario.
#[derive(Debug, Clone, Serialize)]
pub struct FieldRow {
    pub role: String,
    pub mfa: bool,
    pub purpose: String,
    pub entity: String,
    pub field: String,
    /// e.g. `own`, `other`, `own,marketing_consent` (attributes true).
    pub scenario: String,
    /// `full`, `masked`, `removed`, or `hidden` (record not readable).
    pub outcome: &'static str,
    /// The outcome with the mask's kind (`masked (partial)`), for `diff`.
    #[serde(skip)]
    pub form: String,
    /// Ids of the policies behind the answers (for `diff`).
    #[serde(skip)]
    pub policies: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RouteRow {
    pub role: String,
    pub mfa: bool,
    pub purpose: String,
    pub route: String,
    /// `own` (path parameters name the caller) or `other`.
    pub scenario: &'static str,
    pub allowed: bool,
    /// Ids of the policies that determined it (for `diff`).
    #[serde(skip)]
    pub policies: Vec<String>,
}

/// May a caller write a field through a write route (for `diff`; the
/// matrix's own tables do not show writes).
#[derive(Debug, Clone)]
pub struct WriteRow {
    pub role: String,
    pub mfa: bool,
    pub purpose: String,
    pub route: String,
    /// `own` or `other`, as for routes.
    pub scenario: &'static str,
    /// `Entity.path`.
    pub field: String,
    pub allowed: bool,
    pub policies: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Matrix {
    pub variants: Vec<Variant>,
    pub fields: Vec<FieldRow>,
    pub routes: Vec<RouteRow>,
    #[serde(skip)]
    pub writes: Vec<WriteRow>,
}

/// Roles and purposes named anywhere in the policies.
fn roles_and_purposes(rt: &Runtime) -> (BTreeSet<String>, BTreeSet<String>) {
    fn walk(v: &Value, roles: &mut BTreeSet<String>, purposes: &mut BTreeSet<String>) {
        match v {
            Value::Object(m) => {
                if m.get("type").and_then(Value::as_str) == Some("Role")
                    && let Some(id) = m.get("id").and_then(Value::as_str)
                {
                    roles.insert(id.to_string());
                }
                for op in ["==", "!="] {
                    if let Some(cmp) = m.get(op) {
                        let is_purpose = |x: &Value| {
                            x.get(".").is_some_and(|d| {
                                d.get("attr").and_then(Value::as_str) == Some("purpose")
                                    && d.get("left")
                                        .and_then(|l| l.get("Var"))
                                        .and_then(Value::as_str)
                                        == Some("context")
                            })
                        };
                        for (a, b) in [("left", "right"), ("right", "left")] {
                            if cmp.get(a).is_some_and(is_purpose)
                                && let Some(p) = cmp
                                    .get(b)
                                    .and_then(|x| x.get("Value"))
                                    .and_then(Value::as_str)
                            {
                                purposes.insert(p.to_string());
                            }
                        }
                    }
                }
                m.values().for_each(|x| walk(x, roles, purposes));
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, roles, purposes)),
            _ => {}
        }
    }
    let (mut roles, mut purposes) = (BTreeSet::new(), BTreeSet::new());
    for p in rt.decisions.engine.bundle.policies.policies() {
        if let Ok(json) = p.to_json() {
            walk(&json, &mut roles, &mut purposes);
        }
    }
    (roles, purposes)
}

/// Every attribute source any route gives records of this entity.
fn attribute_sources(rt: &Runtime, entity: &EntityCatalogue) -> Vec<AttributeSource> {
    let cfg = &rt.config.config;
    let base = cfg
        .entities
        .get(&*entity.name)
        .map(|e| e.attributes.clone())
        .unwrap_or_default();
    let mut all = base.clone();
    for r in &cfg.routes {
        for sel in r.response.iter().flat_map(|x| &x.records) {
            if sel.entity.value == *entity.name {
                all.extend(sel.attributes.clone());
            }
        }
    }
    compile_attributes(&all).unwrap_or_default()
}

/// Principal attributes the matrix gives every caller: one per plain
/// `identity.jwt.attribute_claims` entry, with a value of its own, so that
/// record attributes compared with them (a partner's `carrier`) can be
/// the caller's or someone else's.
fn principal_attributes(rt: &Runtime) -> BTreeMap<String, String> {
    rt.config
        .config
        .identity
        .jwt
        .iter()
        .flat_map(|j| &j.attribute_claims)
        .filter(|c| !c.contains('.'))
        .map(|c| (c.clone(), format!("{ME}-{c}")))
        .collect()
}

/// Record scenarios: owner own/other × each bool attribute true/false ×
/// each string attribute named like a principal attribute (`same carrier`:
/// the caller's value, `other carrier`: another).
fn scenarios(
    sources: &[AttributeSource],
    principal_attrs: &BTreeMap<String, String>,
) -> Vec<(String, Vec<AttrValue>)> {
    let mut out: Vec<(Vec<String>, Vec<AttrValue>)> = vec![(Vec::new(), Vec::new())];
    for s in sources {
        let options: Vec<(Option<String>, AttrValue)> = match s.kind {
            AttributeKind::Entity => vec![
                (Some("own".into()), AttrValue::Entity(ME.into())),
                (Some("other".into()), AttrValue::Entity(OTHER.into())),
            ],
            AttributeKind::Bool => vec![
                (Some(s.name.clone()), AttrValue::Bool(true)),
                (Some(format!("no {}", s.name)), AttrValue::Bool(false)),
            ],
            AttributeKind::String => match principal_attrs.get(&s.name) {
                Some(mine) => vec![
                    (
                        Some(format!("same {}", s.name)),
                        AttrValue::Str(mine.as_str().into()),
                    ),
                    (
                        Some(format!("other {}", s.name)),
                        AttrValue::Str(format!("{OTHER}-{}", s.name).into()),
                    ),
                ],
                None => vec![(None, s.default.clone().unwrap_or(AttrValue::Str("".into())))],
            },
            AttributeKind::Long => vec![(None, s.default.clone().unwrap_or(AttrValue::Long(0)))],
        };
        out = out
            .into_iter()
            .flat_map(|(labels, values)| {
                options.iter().map(move |(l, v)| {
                    let mut labels = labels.clone();
                    labels.extend(l.clone());
                    let mut values = values.clone();
                    values.push(v.clone());
                    (labels, values)
                })
            })
            .collect();
    }
    out.into_iter().map(|(l, v)| (l.join(","), v)).collect()
}

/// The request action records of an entity are read under: the first GET
/// route returning them (policies may distinguish routes).
fn read_action(rt: &Runtime, entity: &str) -> String {
    rt.decisions
        .routes
        .iter()
        .find(|r| r.method == "GET" && r.selectors().iter().any(|s| &*s.entity.name == entity))
        .map(|r| r.action.clone())
        .unwrap_or_default()
}

/// Who the matrix asks about: the roles and purposes the policies name,
/// and the principal attributes callers carry.
#[derive(Debug, Clone, Default)]
pub struct Axes {
    pub roles: BTreeSet<String>,
    pub purposes: BTreeSet<String>,
    pub principal_attrs: BTreeMap<String, String>,
}

impl Axes {
    pub fn of(rt: &Runtime) -> Self {
        let (roles, purposes) = roles_and_purposes(rt);
        Self {
            roles,
            purposes,
            principal_attrs: principal_attributes(rt),
        }
    }

    /// Both sets of callers (`diff` asks both sides about the same ones).
    pub fn union(mut self, other: Axes) -> Self {
        self.roles.extend(other.roles);
        self.purposes.extend(other.purposes);
        self.principal_attrs.extend(other.principal_attrs);
        self
    }
}

pub fn compute(rt: &Runtime) -> Matrix {
    compute_on(rt, &Axes::of(rt))
}

/// The matrix of `rt` for the callers `axes` describes.
pub fn compute_on(rt: &Runtime, axes: &Axes) -> Matrix {
    let variants = variants(axes);
    let mut entities: Vec<_> = rt.decisions.catalogue.entities().cloned().collect();
    entities.sort_by(|a, b| a.name.cmp(&b.name));
    let mut m = Matrix {
        variants: Vec::new(),
        fields: Vec::new(),
        routes: Vec::new(),
        writes: Vec::new(),
    };
    for v in &variants {
        let mut principal =
            super::principal(ME, std::slice::from_ref(&v.role), v.mfa, Some(&v.purpose));
        principal.attributes = axes
            .principal_attrs
            .iter()
            .map(|(k, v)| (k.clone(), crate::identity::AttrValue::String(v.clone())))
            .collect();
        for entity in &entities {
            entity_rows(
                rt,
                v,
                &principal,
                entity,
                &axes.principal_attrs,
                &mut m.fields,
            );
        }
        route_rows(rt, v, &principal, &mut m);
    }
    m.variants = variants;
    m
}

/// Every caller the axes describe: each role, with and without MFA, with
/// no purpose and with each purpose.
fn variants(axes: &Axes) -> Vec<Variant> {
    let mut variants = Vec::new();
    for role in &axes.roles {
        for mfa in [false, true] {
            for purpose in std::iter::once(String::new()).chain(axes.purposes.iter().cloned()) {
                variants.push(Variant {
                    role: role.clone(),
                    mfa,
                    purpose,
                });
            }
        }
    }
    variants
}

/// What caller `v` sees of a record of `entity`, in each scenario of its
/// attributes: the record itself, then each field.
fn entity_rows(
    rt: &Runtime,
    v: &Variant,
    principal: &crate::identity::Principal,
    entity: &EntityCatalogue,
    principal_attrs: &BTreeMap<String, String>,
    fields: &mut Vec<FieldRow>,
) {
    let sources = attribute_sources(rt, entity);
    let Ok(who) = RequestPrincipal::new(principal, &read_action(rt, &entity.name)) else {
        return;
    };
    let mut decider = rt.decisions.engine.decider(&who);
    let table = decider.policy_table();
    let ids = |v: &Verdict| -> Vec<String> {
        v.policies
            .iter()
            .filter_map(|&i| table.get(i as usize).map(|s| s.to_string()))
            .collect()
    };
    let mut specs: Vec<_> = rt
        .decisions
        .catalogue
        .fields()
        .iter()
        .filter(|f| f.is_record_field() && f.entity == entity.name)
        .collect();
    specs.sort_by(|a, b| a.path.cmp(&b.path));
    for (scenario, values) in scenarios(&sources, principal_attrs) {
        let r = ResourceRef {
            type_name: &entity.type_name,
            type_key: u32::from(entity.index),
            id: "matrix-record",
            sources: &sources,
            values: &values,
        };
        let record = decider.verdict(FieldAction::RecordRead, None, &r);
        let visible = record.allowed;
        let row = |field: &str, outcome: &'static str, form: String, policies| FieldRow {
            role: v.role.clone(),
            mfa: v.mfa,
            purpose: v.purpose.clone(),
            entity: entity.name.to_string(),
            field: field.to_string(),
            scenario: scenario.clone(),
            outcome,
            form,
            policies,
        };
        let record_outcome = if visible { "visible" } else { "hidden" };
        fields.push(row(
            "(record)",
            record_outcome,
            record_outcome.into(),
            ids(&record),
        ));
        for spec in &specs {
            if !visible {
                fields.push(row(&spec.path, "hidden", "hidden".into(), ids(&record)));
                continue;
            }
            let (outcome, form, verdicts) = field_outcome(&mut decider, spec, &r);
            let policies = verdicts.iter().flat_map(&ids).collect();
            fields.push(row(&spec.path, outcome, form, policies));
        }
    }
}

/// How a readable record's field is shown: in full, masked or removed,
/// with the verdicts that decided it (full read, then masked read).
fn field_outcome(
    decider: &mut fieldguard_core::policy::Decider<'_>,
    spec: &fieldguard_core::catalogue::FieldSpec,
    r: &ResourceRef<'_>,
) -> (&'static str, String, Vec<Verdict>) {
    let full = decider.verdict(FieldAction::FieldRead, Some(spec), r);
    if full.allowed {
        return ("full", "full".to_string(), vec![full]);
    }
    let Some(kind) = spec.mask.as_ref().map(|m| m.kind()) else {
        return ("removed", "removed".into(), vec![full]);
    };
    let m = decider.verdict(FieldAction::FieldReadMasked, Some(spec), r);
    let (outcome, form) = if m.allowed {
        ("masked", format!("masked ({kind})"))
    } else {
        ("removed", "removed".into())
    };
    (outcome, form, vec![full, m])
}

/// Whether caller `v` may call each route, on its own resource and on
/// another's, and what allowed write routes let it write.
fn route_rows(rt: &Runtime, v: &Variant, principal: &crate::identity::Principal, m: &mut Matrix) {
    for route in rt.decisions.routes.iter() {
        for (scenario, param) in [("own", ME), ("other", OTHER)] {
            let path = fill_template(&route.template, param);
            let Ok(canonical) = routing::normalize(&path) else {
                continue;
            };
            let (allowed, policies) =
                match pipeline::route(&rt.decisions, &route.method, &canonical) {
                    Routed::Route(r) => {
                        match pipeline::evaluate(&rt.decisions.engine, &r, principal) {
                            Ok(d) => {
                                if d.decision.allowed {
                                    m.writes.extend(write_rows(rt, v, scenario, &d));
                                }
                                (d.decision.allowed, d.decision.policies)
                            }
                            Err(_) => (false, Vec::new()),
                        }
                    }
                    _ => (false, Vec::new()),
                };
            m.routes.push(RouteRow {
                role: v.role.clone(),
                mfa: v.mfa,
                purpose: v.purpose.clone(),
                route: format!("{} {}", route.method, route.template),
                scenario,
                allowed,
                policies,
            });
        }
    }
}

/// Each field an allowed write route may collect, and whether this caller
/// may write it (`field:write` on the request's resource).
fn write_rows(
    rt: &Runtime,
    v: &Variant,
    scenario: &'static str,
    d: &pipeline::Decided<'_>,
) -> Vec<WriteRow> {
    let Some(rules) = &d.route.request else {
        return Vec::new();
    };
    let collects = |path: &str| {
        rules.collect.as_ref().is_none_or(|c| {
            c.iter().any(|c| {
                c == path
                    || path
                        .strip_prefix(c.as_str())
                        .is_some_and(|r| r.starts_with('.'))
            })
        })
    };
    let target = d.target();
    let mut decider = d.engine.decider(&d.who);
    let table = decider.policy_table();
    rt.decisions
        .catalogue
        .fields()
        .iter()
        .filter(|f| f.is_record_field() && f.entity == rules.entity.name && collects(&f.path))
        .map(|f| {
            let verdict = decider.verdict(FieldAction::FieldWrite, Some(f), &target);
            WriteRow {
                role: v.role.clone(),
                mfa: v.mfa,
                purpose: v.purpose.clone(),
                route: format!("{} {}", d.route.method, d.route.template),
                scenario,
                field: format!("{}.{}", f.entity, f.path),
                allowed: verdict.allowed,
                policies: verdict
                    .policies
                    .iter()
                    .filter_map(|&i| table.get(i as usize).map(|s| s.to_string()))
                    .collect(),
            }
        })
        .collect()
}

fn fill_template(template: &str, value: &str) -> String {
    template
        .split('/')
        .map(|s| {
            if s.starts_with('{') && s.ends_with('}') {
                value
            } else {
                s
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Summarises one cell's outcomes across record scenarios:
/// `full` when all agree, else e.g. `full if own; else hidden`.
fn summarise(cells: &[(&str, &str)]) -> String {
    let distinct: BTreeSet<&str> = cells.iter().map(|(_, o)| *o).collect();
    if distinct.len() == 1 {
        return distinct.into_iter().next().unwrap_or("").to_string();
    }
    // Group scenarios by outcome, best outcome first.
    let rank = |o: &str| match o {
        "full" | "visible" => 0,
        "masked" => 1,
        "removed" => 2,
        _ => 3,
    };
    let mut groups: BTreeMap<(u8, &str), Vec<&str>> = BTreeMap::new();
    for (scenario, outcome) in cells {
        groups
            .entry((rank(outcome), outcome))
            .or_default()
            .push(scenario);
    }
    let n = groups.len();
    groups
        .into_iter()
        .enumerate()
        .map(|(i, ((_, outcome), scen))| {
            if i + 1 == n {
                format!("else {outcome}")
            } else {
                format!("{outcome} if {}", common_condition(&scen))
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The labels shared by every scenario of a group (`own`,
/// `marketing_consent`), or the scenarios themselves.
pub(crate) fn common_condition(scenarios: &[&str]) -> String {
    let sets: Vec<BTreeSet<&str>> = scenarios.iter().map(|s| s.split(',').collect()).collect();
    let common: BTreeSet<&str> = sets
        .iter()
        .skip(1)
        .fold(sets.first().cloned().unwrap_or_default(), |acc, s| {
            acc.intersection(s).copied().collect()
        });
    if common.is_empty() {
        scenarios.join(" or ")
    } else {
        common.into_iter().collect::<Vec<_>>().join(" and ")
    }
}

impl Matrix {
    fn cell(&self, v: &Variant, entity: &str, field: &str) -> String {
        let cells: Vec<(&str, &str)> = self
            .fields
            .iter()
            .filter(|r| {
                r.role == v.role
                    && r.mfa == v.mfa
                    && r.purpose == v.purpose
                    && r.entity == entity
                    && r.field == field
            })
            .map(|r| (r.scenario.as_str(), r.outcome))
            .collect();
        summarise(&cells)
    }

    fn route_cell(&self, v: &Variant, route: &str) -> String {
        let rows: Vec<&RouteRow> = self
            .routes
            .iter()
            .filter(|r| {
                r.role == v.role && r.mfa == v.mfa && r.purpose == v.purpose && r.route == route
            })
            .collect();
        match (
            rows.iter().any(|r| r.scenario == "own" && r.allowed),
            rows.iter().any(|r| r.scenario == "other" && r.allowed),
        ) {
            (true, true) => "allow".into(),
            (true, false) => "own only".into(),
            (false, true) => "others only".into(),
            (false, false) => "deny".into(),
        }
    }

    /// Variant columns worth showing: each role's base, plus MFA/purpose
    /// variants only where they change something.
    fn columns(&self) -> Vec<Variant> {
        let mut cols = Vec::new();
        let signature = |v: &Variant| -> Vec<String> {
            let mut s: Vec<String> = self
                .fields
                .iter()
                .filter(|r| r.role == v.role && r.mfa == v.mfa && r.purpose == v.purpose)
                .map(|r| format!("{}{}{}{}", r.entity, r.field, r.scenario, r.outcome))
                .collect();
            s.extend(
                self.routes
                    .iter()
                    .filter(|r| r.role == v.role && r.mfa == v.mfa && r.purpose == v.purpose)
                    .map(|r| format!("{}{}{}", r.route, r.scenario, r.allowed)),
            );
            s
        };
        let mut seen: BTreeMap<String, Vec<Vec<String>>> = BTreeMap::new();
        for v in &self.variants {
            let sig = signature(v);
            let known = seen.entry(v.role.clone()).or_default();
            if !known.contains(&sig) {
                known.push(sig);
                cols.push(v.clone());
            }
        }
        cols
    }

    pub fn to_markdown(&self) -> String {
        let cols = self.columns();
        let mut out = String::new();
        let header = |first: &str| {
            let mut h = format!("| {first} |");
            let mut sep = String::from("|---|");
            for c in &cols {
                h.push_str(&format!(" {} |", c.label()));
                sep.push_str("---|");
            }
            format!("{h}\n{sep}\n")
        };
        out.push_str("### Routes\n\n");
        out.push_str(&header("route"));
        let mut route_names: Vec<String> = self.routes.iter().map(|r| r.route.clone()).collect();
        route_names.dedup();
        let mut seen = BTreeSet::new();
        for r in route_names.into_iter().filter(|r| seen.insert(r.clone())) {
            out.push_str(&format!("| `{r}` |"));
            for c in &cols {
                out.push_str(&format!(" {} |", self.route_cell(c, &r)));
            }
            out.push('\n');
        }
        let mut entities: Vec<&str> = self.fields.iter().map(|r| r.entity.as_str()).collect();
        entities.dedup();
        let mut seen = BTreeSet::new();
        for e in entities.into_iter().filter(|e| seen.insert(*e)) {
            let _ = write!(out, "\n### {e}\n\n");
            out.push_str(&header("field"));
            let mut names: Vec<&str> = self
                .fields
                .iter()
                .filter(|r| r.entity == e)
                .map(|r| r.field.as_str())
                .collect();
            let mut seen_f = BTreeSet::new();
            names.retain(|f| seen_f.insert(*f));
            for f in names {
                out.push_str(&format!("| `{f}` |"));
                for c in &cols {
                    out.push_str(&format!(" {} |", self.cell(c, e, f)));
                }
                out.push('\n');
            }
        }
        out
    }

    pub fn to_csv(&self) -> String {
        let mut out =
            String::from("kind,role,mfa,purpose,entity_or_route,field,scenario,outcome\n");
        for r in &self.routes {
            let _ = writeln!(
                out,
                "route,{},{},{},\"{}\",,{},{}",
                r.role,
                r.mfa,
                r.purpose,
                r.route,
                r.scenario,
                if r.allowed { "allow" } else { "deny" }
            );
        }
        for r in &self.fields {
            let _ = writeln!(
                out,
                "field,{},{},{},{},{},\"{}\",{}",
                r.role, r.mfa, r.purpose, r.entity, r.field, r.scenario, r.outcome
            );
        }
        out
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}
