//! Property tests of the allow-list for *any* catalogue, not only the
//! reference one: a random catalogue (leaves and containers, levels,
//! masks), a random route plan (where the records are, which wrapper
//! members it declares) and random bodies that drift from both (extra keys
//! everywhere, containers of other shapes, leaves holding objects). The
//! policies are fixed and simple, so an independent oracle knows what each
//! value may become: level 1-2 in full, level 3 masked (scalars with a
//! mask), level 4 never. Nothing outside the allow-list survives; nothing
//! the caller may read in full is lost; both redactors agree.

use super::BodyRules;
use super::report::FilterReport;
use super::tree::filter_response;
use crate::catalogue::{Catalogue, FieldNode};
use crate::config::{JsonType, Shape};
use crate::decisions::Decisions as Runtime;
use crate::policy::RequestPrincipal;
use crate::principal::{IdentitySource, Principal};
use crate::testing::Sections;
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

const SCHEMA: &str = r#"
entity Role;
entity User in [Role];
entity Rec;
entity Coll;
type RequestContext = { mfa: Bool, purpose: String };
type Field = { name: String, category: String, level: Long };
type RecordContext = { mfa: Bool, purpose: String, request_action: String };
type FieldContext = { mfa: Bool, purpose: String, request_action: String, field: Field };
action "list" appliesTo { principal: User, resource: Coll, context: RequestContext };
action "record:read" appliesTo { principal: User, resource: Rec, context: RecordContext };
action "field:read", "field:read_masked", "field:write"
  appliesTo { principal: User, resource: [Rec, Coll], context: FieldContext };
"#;

const POLICIES: &str = r#"
@id("list") permit (principal, action == Action::"list", resource);
@id("records") permit (principal, action == Action::"record:read", resource);
@id("full") permit (principal, action == Action::"field:read", resource) when { context.field.level <= 2 };
@id("masked") permit (principal, action == Action::"field:read_masked", resource) when { context.field.level == 3 };
"#;

/// A folder with the fixed schema and policies (config texts vary).
fn policy_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("fieldguard-allowlist-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("policies")).unwrap();
        std::fs::write(dir.join("schema.cedarschema"), SCHEMA).unwrap();
        std::fs::write(dir.join("policies/p.cedar"), POLICIES).unwrap();
        dir
    })
}

/// A catalogue tree: a leaf (level, mask) or a container of named children.
#[derive(Debug, Clone)]
enum Cat {
    Leaf {
        level: u8,
        mask: Option<&'static str>,
        free_text: bool,
        /// The field's `shape`: bodies give every field values of every
        /// kind, so most of them are the wrong kind for it.
        shape: &'static str,
    },
    Node(BTreeMap<String, Cat>),
}

fn catalogue_tree() -> impl Strategy<Value = BTreeMap<String, Cat>> {
    let leaf = (
        1u8..=4,
        prop::option::of(prop::sample::select(vec!["partial", "null"])),
        prop::bool::weighted(0.3),
        any_shape(),
    )
        .prop_map(|(level, mask, free_text, shape)| Cat::Leaf {
            level,
            mask,
            free_text,
            shape,
        });
    let tree = leaf.prop_recursive(2, 12, 3, |inner| {
        prop::collection::btree_map("[a-e]", inner, 1..4).prop_map(Cat::Node)
    });
    prop::collection::btree_map("[a-f]", tree, 1..6)
}

/// A field's `shape`, each kind equally likely.
fn any_shape() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "scalar", "string", "number", "boolean", "array", "object", "any",
    ])
}

fn field_lines(tree: &BTreeMap<String, Cat>, prefix: &str, out: &mut String) {
    for (key, cat) in tree {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match cat {
            Cat::Leaf {
                level,
                mask,
                free_text,
                shape,
            } => {
                let mask = match mask {
                    Some("partial") => ", mask: { kind: partial, keep_last: 2 }",
                    Some(_) => ", mask: { kind: null }",
                    None => "",
                };
                let free = if *free_text { ", free_text: true" } else { "" };
                out.push_str(&format!(
                    "      {path}: {{ category: identity, level: {level}, shape: {shape}{mask}{free} }}\n"
                ));
            }
            Cat::Node(children) => field_lines(children, &path, out),
        }
    }
}

/// Where a route's records are, and the wrapper members it may declare.
const SELECTORS: [&str; 3] = ["$.items[*]", "$.data.items[*]", "$.item"];
const MEMBERS: [&str; 4] = ["$.total", "$.page.next", "$.page.size", "$.meta"];

#[derive(Debug, Clone)]
struct Setup {
    tree: BTreeMap<String, Cat>,
    selector: &'static str,
    /// Declared members, their levels and shapes.
    members: Vec<(&'static str, u8, &'static str)>,
    /// `unknown_fields: pass` (else remove).
    pass: bool,
    /// `observe: true`.
    observe: bool,
    /// `backstop: [all]`.
    backstop: bool,
}

fn setup(pass: bool) -> impl Strategy<Value = Setup> {
    (
        catalogue_tree(),
        prop::sample::select(SELECTORS.to_vec()),
        prop::collection::vec(
            (prop::sample::select(MEMBERS.to_vec()), 1u8..=4, any_shape()),
            0..3,
        ),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(move |(tree, selector, mut members, observe, backstop)| {
            members.sort();
            members.dedup_by(|a, b| a.0 == b.0);
            Setup {
                tree,
                selector,
                members,
                pass,
                observe,
                backstop,
            }
        })
}

fn build(s: &Setup) -> Runtime {
    let dir = policy_dir();
    let mut fields = String::new();
    field_lines(&s.tree, "", &mut fields);
    let mut members = String::new();
    for (path, level, shape) in &s.members {
        members.push_str(&format!(
            "        {path}: {{ category: identity, level: {level}, shape: {shape}, mask: {{ kind: null }} }}\n"
        ));
    }
    let members = if members.is_empty() {
        String::new()
    } else {
        format!("      members:\n{members}")
    };
    let mut onboarding = format!("    observe: {}\n", s.observe);
    if s.pass {
        onboarding.push_str("    unknown_fields: pass\n");
    }
    if s.backstop {
        onboarding.push_str("    backstop: [all]\n");
    }
    let text = format!(
        r#"
listeners: [{{ address: "127.0.0.1:0" }}]
upstream: {{ url: "http://127.0.0.1:9" }}
identity: {{ gateway: {{ trusted_peers: ["127.0.0.1/32"] }} }}
policies: {{ directory: policies, schema: schema.cedarschema }}
routes:
  - method: GET
    path: /items
    action: list
    resource: {{ type: Coll, id: all }}
{onboarding}    response:
      records:
        - {{ path: "{selector}", entity: Rec }}
{members}entities:
  Rec:
    fields:
{fields}"#,
        selector = s.selector,
    );
    let file = dir.join("fieldguard.yaml");
    Sections::parse(&text, &file)
        .try_build()
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// Any JSON, small.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(Value::from),
        "[a-z0-9 ]{0,8}".prop_map(Value::String),
        // Personal data the detectors know, alone and in free text.
        prop::sample::select(vec![
            json!("110101199001010015"),
            json!("+86 139 0013 1001"),
            json!(13900131001u64),
            json!("li.na@example.org"),
            json!("card 4111 1111 1111 1111 on file"),
            json!("DE89 3704 0044 0532 0130 00"),
            json!("from 10.0.0.1 and 2001:db8::1"),
            json!("born 1990-01-31"),
            json!("身份证 110101199001010015\n\"quoted\""),
            json!(-13900131001i64),
            json!(13900131001.0),
            json!("tel １３９．００１３．１００１"),
            json!("110105-19491231-002x"),
        ]),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map(
                "[a-z]{1,3}|1[3-9][0-9]{9}|[a-z]{1,4}@mail\\.example\\.org",
                inner,
                0..3
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A record that follows `tree` loosely: catalogued keys (sometimes with
/// a value of another shape), and keys the catalogue does not name.
fn record_for(tree: &BTreeMap<String, Cat>, depth: u32) -> BoxedStrategy<Value> {
    let children: Vec<(String, BoxedStrategy<Option<Value>>)> = tree
        .iter()
        .map(|(k, cat)| {
            let v = match cat {
                Cat::Leaf { .. } => any_json().boxed(),
                Cat::Node(c) if depth > 0 => prop_oneof![
                    4 => record_for(c, depth - 1),
                    1 => prop::collection::vec(record_for(c, depth - 1), 0..3).prop_map(Value::Array),
                    1 => any_json(),
                ]
                .boxed(),
                Cat::Node(_) => any_json().boxed(),
            };
            (k.clone(), prop::option::weighted(0.8, v).boxed())
        })
        .collect();
    let (keys, values): (Vec<String>, Vec<_>) = children.into_iter().unzip();
    (
        values,
        prop::collection::btree_map("[g-z]{1,4}|1[0-9]{10}", any_json(), 0..3),
    )
        .prop_map(move |(vals, extra)| {
            let mut m: Map<String, Value> = extra.into_iter().collect();
            for (k, v) in keys.iter().zip(vals) {
                if let Some(v) = v {
                    m.insert(k.clone(), v);
                }
            }
            Value::Object(m)
        })
        .boxed()
}

fn body_for(s: &Setup) -> BoxedStrategy<Value> {
    let selector = s.selector;
    let members = s.members.clone();
    (
        prop::collection::vec(record_for(&s.tree, 2), 1..4),
        prop::collection::vec(any_json(), MEMBERS.len()),
        prop::collection::btree_map("[g-z]{1,4}|1[3-9][0-9]{9}", any_json(), 0..3),
        any::<bool>(),
    )
        .prop_map(move |(records, member_values, extra, page_is_object)| {
            let mut root: Map<String, Value> = extra.into_iter().collect();
            match selector {
                "$.items[*]" => {
                    root.insert("items".into(), Value::Array(records));
                }
                "$.data.items[*]" => {
                    root.insert("data".into(), json!({ "items": records, "x_extra": 1 }));
                }
                _ => {
                    root.insert("item".into(), records[0].clone());
                }
            }
            for ((path, _), value) in MEMBERS.iter().map(|m| (*m, ())).zip(member_values) {
                let declared = members.iter().any(|(p, _, _)| *p == path);
                // Undeclared members are sent too, sometimes.
                if !declared && value.is_null() {
                    continue;
                }
                match path.strip_prefix("$.page.") {
                    Some(key) => {
                        let page = root
                            .entry("page")
                            .or_insert_with(|| if page_is_object { json!({}) } else { json!(7) });
                        if let Some(p) = page.as_object_mut() {
                            p.insert(key.into(), value);
                        }
                    }
                    None => {
                        root.insert(path.trim_start_matches("$.").into(), value);
                    }
                }
            }
            Value::Object(root)
        })
        .boxed()
}

fn case(pass: bool) -> impl Strategy<Value = (Setup, Value)> {
    setup(pass).prop_flat_map(|s| {
        let body = body_for(&s);
        (Just(s), body)
    })
}

/// What the fixed policies allow a field of `level`: full, masked or
/// neither; nothing at all for a value of another kind than the field's
/// `shape` (`kind`: the original value's, before any backstop).
fn expect_leaf(
    orig: &Value,
    got: Option<&Value>,
    (level, shape, kind): (u8, Shape, JsonType),
    masked: Option<Value>,
    at: &str,
) -> Result<(), String> {
    if !shape.shows(kind) {
        return match got {
            None => Ok(()),
            Some(g) => Err(format!(
                "{at}: a {} in a `{}` field survived as {g}",
                kind.as_str(),
                shape.as_str()
            )),
        };
    }
    let scalar = !(orig.is_object() || orig.is_array());
    match (level, got) {
        (1 | 2, Some(g)) if g == orig => Ok(()),
        (1 | 2, _) => Err(format!("{at}: readable in full, got {got:?} for {orig}")),
        (3, Some(g)) if scalar && masked.as_ref() == Some(g) => Ok(()),
        (3, None) if !scalar || masked.is_none() => Ok(()),
        (_, None) => Ok(()),
        (_, Some(g)) => Err(format!("{at}: level {level} survived as {g} (was {orig})")),
    }
}

/// Checks a filtered record against its original by the catalogue node.
fn check_record(
    orig: &Value,
    out: &Value,
    node: &FieldNode,
    cat: &Catalogue,
    backstop: bool,
    at: &str,
) -> Result<(), String> {
    let (Value::Object(a), Value::Object(b)) = (orig, out) else {
        return Err(format!("{at}: not an object: {out}"));
    };
    for key in b.keys() {
        if node.child(key).is_none() {
            return Err(format!("{at}.{key}: uncatalogued key survived"));
        }
    }
    for (key, child) in &node.children {
        let Some(o) = a.get(key.as_ref()) else {
            if b.contains_key(key.as_ref()) {
                return Err(format!("{at}.{key}: appeared from nowhere"));
            }
            continue;
        };
        let got = b.get(key.as_ref());
        if let Some(field) = child.field {
            let spec = cat.field(field);
            let masked = spec.mask.as_ref().map(|m| m.apply(o));
            // In full, a free-text field goes through the backstop.
            let full = if spec.free_text && backstop {
                backstopped(o)
            } else {
                o.clone()
            };
            let facts = (spec.level.0, spec.shape, JsonType::of(o));
            expect_leaf(&full, got, facts, masked, &format!("{at}.{key}"))?;
            continue;
        }
        match (o, got) {
            (_, None) => {}
            (Value::Object(_), Some(g @ Value::Object(_))) => {
                check_record(o, g, child, cat, backstop, &format!("{at}.{key}"))?
            }
            (Value::Array(x), Some(Value::Array(y)))
                if x.len() == y.len() && x.iter().all(Value::is_object) =>
            {
                for (xo, yo) in x.iter().zip(y) {
                    check_record(xo, yo, child, cat, backstop, &format!("{at}.{key}[]"))?;
                }
            }
            (_, Some(g)) => return Err(format!("{at}.{key}: container survived as {g} (was {o})")),
        }
    }
    Ok(())
}

fn gateway_caller() -> Principal {
    Principal {
        id: "u".into(),
        roles: vec!["r".into()],
        mfa: false,
        purpose: None,
        attributes: BTreeMap::new(),
        source: IdentitySource::Gateway,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn nothing_outside_the_allow_list_survives_for_any_catalogue((s, body) in case(false)) {
        let rt = build(&s);
        let route = &rt.routes[0];
        let rp = RequestPrincipal::new(&gateway_caller(), &route.action).unwrap();
        let rules: BodyRules<'_> = route.body_rules("all", &[]).unwrap();
        let bytes = serde_json::to_vec(&body).unwrap();

        let mut tree = body.clone();
        let mut tree_report = FilterReport::default();
        let tree_result = filter_response(&mut tree, &rules, &mut rt.engine.decider(&rp), &rt.catalogue, &mut tree_report);
        let mut stream_report = FilterReport::default();
        let streamed = super::bytes::redact(&bytes, &rules, &mut rt.engine.decider(&rp), &rt.catalogue, &mut stream_report, 64);
        prop_assert!(tree_result.is_ok() && streamed.is_ok(), "{:?} {:?}\n{}", tree_result, streamed, body);
        let out: Value = serde_json::from_slice(&streamed.unwrap()).unwrap();
        prop_assert_eq!(&out, &tree, "stream and tree walk disagree on {}", body);
        prop_assert_eq!(&tree_report.unnamed, &stream_report.unnamed);
        prop_assert_eq!(&tree_report.misshapen, &stream_report.misshapen);
        prop_assert_eq!(&tree_report.disclosed, &stream_report.disclosed);
        for &(field, outcome) in tree_report.outcomes.keys() {
            prop_assert_eq!(
                tree_report.deciders(field, outcome),
                stream_report.deciders(field, outcome)
            );
        }
        prop_assert_eq!(&tree_report.observed, &stream_report.observed);
        prop_assert_eq!(tree_report.backstop, stream_report.backstop);
        prop_assert_eq!(tree_report.observed.is_empty(), !s.observe || tree_report.unnamed.is_empty());

        // The wrapper: only the record path and declared members.
        let top = out.as_object().unwrap();
        let root_key = s.selector.trim_start_matches("$.").split(['.', '[']).next().unwrap();
        for key in top.keys() {
            let declared = s.members.iter().any(|(p, _, _)| p.trim_start_matches("$.").split('.').next() == Some(key.as_str()));
            prop_assert!(key == root_key || declared, "undeclared `{}` survived: {}", key, out);
        }
        for (path, level, shape) in &s.members {
            let (orig, got) = match path.strip_prefix("$.page.") {
                Some(k) => (body.get("page").and_then(|p| p.get(k)), out.get("page").and_then(|p| p.get(k))),
                None => {
                    let k = path.trim_start_matches("$.");
                    (body.get(k), out.get(k))
                }
            };
            if let Some(o) = orig {
                let masked = (!(o.is_object() || o.is_array())).then_some(Value::Null);
                let shape: Shape = serde_json::from_value(Value::from(*shape)).unwrap();
                if let Err(e) = expect_leaf(o, got, (*level, shape, JsonType::of(o)), masked, path) {
                    prop_assert!(false, "{}\n{}", e, out);
                }
            }
        }
        if let Some(data) = out.get("data") {
            prop_assert_eq!(common_keys(data), vec!["items".to_string()], "{}", out);
        }

        // The records: all visible (record:read is always allowed), in order.
        let (orig_records, out_records) = match s.selector {
            "$.items[*]" => (body["items"].as_array().unwrap().clone(), out["items"].as_array().unwrap().clone()),
            "$.data.items[*]" => (body["data"]["items"].as_array().unwrap().clone(), out["data"]["items"].as_array().unwrap().clone()),
            _ => (vec![body["item"].clone()], vec![out["item"].clone()]),
        };
        prop_assert_eq!(orig_records.len(), out_records.len());
        let entity = &route.selectors()[0].entity;
        for (o, r) in orig_records.iter().zip(&out_records) {
            if let Err(e) = check_record(o, r, &entity.root, &rt.catalogue, s.backstop, "$") {
                prop_assert!(false, "{}\noriginal: {}\nfiltered: {}", e, o, r);
            }
        }
    }
}

fn common_keys(v: &Value) -> Vec<String> {
    v.as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// What the backstop makes of a value (every detector).
fn backstopped(v: &Value) -> Value {
    let mut v = v.clone();
    super::unnamed::backstop_value(
        &mut v,
        crate::detect::DetectorSet::all(),
        &mut Default::default(),
    );
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// With `unknown_fields: pass`, what the catalogue does not name is
    /// passed, backstopped when the route has a backstop, and observed
    /// alike by both redactors.
    #[test]
    fn passed_members_are_observed_and_backstopped_alike((s, body) in case(true)) {
        let rt = build(&s);
        let route = &rt.routes[0];
        let rp = RequestPrincipal::new(&gateway_caller(), &route.action).unwrap();
        let rules: BodyRules<'_> = route.body_rules("all", &[]).unwrap();
        let bytes = serde_json::to_vec(&body).unwrap();

        let mut tree = body.clone();
        let mut tree_report = FilterReport::default();
        let tree_result = filter_response(&mut tree, &rules, &mut rt.engine.decider(&rp), &rt.catalogue, &mut tree_report);
        let mut stream_report = FilterReport::default();
        let streamed = super::bytes::redact(&bytes, &rules, &mut rt.engine.decider(&rp), &rt.catalogue, &mut stream_report, 64);
        prop_assert!(tree_result.is_ok() && streamed.is_ok(), "{:?} {:?}\n{}", tree_result, streamed, body);
        let out: Value = serde_json::from_slice(&streamed.unwrap()).unwrap();
        prop_assert_eq!(&out, &tree, "stream and tree walk disagree on {}", body);
        prop_assert_eq!(&tree_report.unnamed, &stream_report.unnamed);
        prop_assert_eq!(&tree_report.observed, &stream_report.observed);
        prop_assert_eq!(tree_report.backstop, stream_report.backstop);
        if s.observe {
            prop_assert_eq!(tree_report.observed.is_empty(), tree_report.unnamed.is_empty());
        } else {
            prop_assert!(tree_report.observed.is_empty());
        }
        if !s.backstop {
            prop_assert!(tree_report.backstop.is_empty());
        }

        // Every top-level key of the body the plan does not name is
        // passed: as it was, or backstopped.
        let root_key = s.selector.trim_start_matches("$.").split(['.', '[']).next().unwrap();
        for (key, orig) in body.as_object().unwrap() {
            let declared = s.members.iter().any(|(p, _, _)| p.trim_start_matches("$.").split('.').next() == Some(key.as_str()));
            if key == root_key || declared {
                continue;
            }
            // A key holding personal data goes, value and all.
            let expected = if !s.backstop {
                Some(orig.clone())
            } else if crate::detect::detect(key, crate::detect::DetectorSet::all()).is_empty() {
                Some(backstopped(orig))
            } else {
                None
            };
            prop_assert_eq!(out.get(key), expected.as_ref(), "`{}` in {}", key, out);
        }
    }
}

/// A route that passes, observes and backstops, over records with a
/// free-text leaf `a` and a plain leaf `b`.
fn onboarding_route() -> Runtime {
    let mut tree = BTreeMap::new();
    let leaf = |free_text| Cat::Leaf {
        level: 1,
        mask: None,
        free_text,
        shape: "any",
    };
    tree.insert("a".to_string(), leaf(true));
    tree.insert("b".to_string(), leaf(false));
    build(&Setup {
        tree,
        selector: "$.items[*]",
        members: Vec::new(),
        pass: true,
        observe: true,
        backstop: true,
    })
}

/// Both redactors over `body`: their outputs and reports.
fn both(rt: &Runtime, body: &str) -> ((Value, FilterReport), (Value, FilterReport)) {
    let route = &rt.routes[0];
    let rp = RequestPrincipal::new(&gateway_caller(), &route.action).unwrap();
    let rules: BodyRules<'_> = route.body_rules("all", &[]).unwrap();
    let mut tree: Value = serde_json::from_str(body).unwrap();
    let mut tree_report = FilterReport::default();
    filter_response(
        &mut tree,
        &rules,
        &mut rt.engine.decider(&rp),
        &rt.catalogue,
        &mut tree_report,
    )
    .unwrap();
    let mut stream_report = FilterReport::default();
    let out = super::bytes::redact(
        body.as_bytes(),
        &rules,
        &mut rt.engine.decider(&rp),
        &rt.catalogue,
        &mut stream_report,
        64,
    )
    .unwrap();
    let out: Value = serde_json::from_slice(&out).unwrap();
    ((tree, tree_report), (out, stream_report))
}

/// Personal data used as object keys is removed with its member by the
/// backstop (in passed members, inside them, and in free text) and
/// counted; numbers in other notations are masked; the observed report
/// names the kinds keys hold. Both redactors alike.
#[test]
fn personal_data_in_keys_and_numbers_of_any_notation_is_backstopped_and_observed() {
    let rt = onboarding_route();
    let body = r#"{"items":[{"a":{"13900131001":{"n":1},"ok":13900131001.0,"k":"fine"},"b":13900131001,
        "wang.lei@mail.example.org":"x",
        "extra":{"11010519491231002x":true,"fine":-13900131001,"z":"１３９．００１３．１００１","ok":12.5}}],
        "13900131001":{"orders":3},"total":-110101199001010015,"page":{"１３９００１３１００１":1,"size":10}}"#;
    let ((tree, tree_report), (out, stream_report)) = both(&rt, body);
    let want = json!({
        "items": [{
            "a": {"ok": "*************", "k": "fine"},
            "b": 13900131001u64,
            "extra": {"fine": "************", "z": "*************", "ok": 12.5}
        }],
        "total": "*******************",
        "page": {"size": 10}
    });
    assert_eq!(out, want);
    assert_eq!(tree, want);
    assert_eq!(tree_report.backstop, stream_report.backstop);
    let counts: Vec<(&str, u32)> = stream_report
        .backstop
        .iter()
        .map(|(d, n)| (d.as_str(), n))
        .collect();
    assert_eq!(
        counts,
        [("cn_resident_id", 2), ("cn_mobile", 6), ("email", 1)]
    );
    assert_eq!(tree_report.observed, stream_report.observed);
    let observed: Vec<(String, Vec<&str>)> = stream_report
        .observed
        .sorted()
        .iter()
        .filter(|e| !e.detected.is_empty())
        .map(|e| {
            let kinds = e.detected.iter().map(|(d, _)| d.as_str()).collect();
            (format!("{}", e.path), kinds)
        })
        .collect();
    for (path, kind) in [
        ("?", "email"),
        ("extra.?", "cn_resident_id"),
        ("extra.fine", "cn_mobile"),
        ("extra.z", "cn_mobile"),
        ("$.?", "cn_mobile"),
        ("$.page.?", "cn_mobile"),
        ("$.total", "cn_resident_id"),
    ] {
        assert!(
            observed.iter().any(|(p, k)| p == path && k.contains(&kind)),
            "{path} {kind}: {observed:?}"
        );
    }
    // No key holding personal data is named in the reports.
    for e in stream_report.observed.sorted() {
        assert!(
            !e.path.contains("1390013") && !e.path.contains('@'),
            "{}",
            e.path
        );
    }

    // A number in a notation of its own is read by its exact value (the
    // tree walk sees the float serde_json parsed, the stream the text).
    let body = r#"{"items":[{"b":1}],"x":-1.3900131001e10,"y":1.10101199001010015E17,"w":1.5e3}"#;
    let (_, (out, report)) = both(&rt, body);
    assert_eq!(
        out,
        json!({"items":[{"b":1}],"x":"****************","y":"**********************","w":1.5e3})
    );
    assert_eq!(report.backstop.total(), 2);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Personal data written in any form and used as a key is removed
    /// with its member by both redactors, wherever the backstop looks (a
    /// passed member of the body or of a record, inside a free-text
    /// field), counted, observed by kind and never named in a report.
    #[test]
    fn personal_data_written_any_way_as_a_key_goes_with_its_member(
        key in crate::detect::proptests::written_personal_data(),
        inner in crate::detect::proptests::written_personal_data(),
    ) {
        let rt = onboarding_route();
        let mut record = Map::new();
        record.insert("b".into(), json!(1));
        record.insert(key.clone(), json!({"n": 1}));
        record.insert("a".into(), json!({ inner.clone(): 2, "ok": 1 }));
        let mut root = Map::new();
        root.insert("items".into(), json!([Value::Object(record)]));
        root.insert(key.clone(), json!(3));
        let text = serde_json::to_string(&Value::Object(root)).unwrap();
        let ((tree, tree_report), (out, stream_report)) = both(&rt, &text);
        prop_assert_eq!(&out, &tree);
        prop_assert_eq!(&out, &json!({"items": [{"b": 1, "a": {"ok": 1}}]}), "{}", text);
        prop_assert_eq!(tree_report.backstop, stream_report.backstop);
        prop_assert!(stream_report.backstop.total() >= 3, "{:?}", stream_report.backstop);
        prop_assert_eq!(&tree_report.observed, &stream_report.observed);
        let observed = stream_report.observed.sorted();
        prop_assert!(observed.iter().any(|e| !e.detected.is_empty()));
        for e in observed {
            prop_assert!(!e.path.contains(key.as_str()) && !e.path.contains(inner.as_str()), "{}", e.path);
        }
    }
}
