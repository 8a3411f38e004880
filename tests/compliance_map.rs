//! docs/compliance.md, the clause-by-clause evidence map, kept honest: it
//! covers every clause of the regulation (docs/regulation/README.md), every
//! in-scope clause names at least one test, and everything it names exists:
//! test functions in their files, policy ids in `policies/`, metrics the
//! proxy exports, audit fields its records carry, alerts in the shipped
//! rules. Also the catalogue's data categories (CDM-2.1 to 2.4).

mod common;

use common::repo_path;
use std::collections::BTreeSet;

/// One `### CDM-…` section of the map.
#[derive(Debug)]
struct Clause {
    id: String,
    in_scope: bool,
    /// `- **Label:** text` lines, by label.
    items: Vec<(String, String)>,
}

impl Clause {
    fn item(&self, label: &str) -> Option<&str> {
        self.items
            .iter()
            .find(|(l, _)| l == label)
            .map(|(_, t)| t.as_str())
    }

    /// The backticked names of an item.
    fn names(&self, label: &str) -> Vec<String> {
        self.item(label)
            .map(|t| {
                t.split('`')
                    .skip(1)
                    .step_by(2)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn map() -> Vec<Clause> {
    let text = std::fs::read_to_string(repo_path("docs/compliance.md")).unwrap();
    let mut clauses: Vec<Clause> = Vec::new();
    for line in text.lines() {
        if let Some(heading) = line.strip_prefix("### ") {
            let id = heading.split_whitespace().next().unwrap().to_string();
            assert!(
                id.starts_with("CDM-"),
                "a section that is not a clause: {line}"
            );
            clauses.push(Clause {
                id,
                in_scope: !heading.ends_with("(out of scope)"),
                items: Vec::new(),
            });
        } else if let Some(item) = line.strip_prefix("- **")
            && let Some((label, rest)) = item.split_once(":**")
            && let Some(c) = clauses.last_mut()
        {
            c.items.push((label.to_string(), rest.trim().to_string()));
        }
    }
    clauses
}

/// The clause ids of the regulation's table (docs/regulation/README.md).
fn regulation_clauses() -> Vec<String> {
    let text = std::fs::read_to_string(repo_path("docs/regulation/README.md")).unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("| CDM-"))
        .map(|l| format!("CDM-{}", l.split_whitespace().next().unwrap()))
        .collect()
}

#[test]
fn the_evidence_map_is_honest() {
    let clauses = map();
    let ids: Vec<&str> = clauses.iter().map(|c| c.id.as_str()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), ids.len(), "a clause appears twice: {ids:?}");
    let regulation = regulation_clauses();
    assert!(regulation.len() >= 25, "{regulation:?}");
    let mut want = regulation.clone();
    want.sort();
    assert_eq!(sorted, want, "the map and the regulation's clauses differ");

    // The summary table agrees with the sections.
    let text = std::fs::read_to_string(repo_path("docs/compliance.md")).unwrap();
    for c in &clauses {
        let row = text
            .lines()
            .find(|l| l.starts_with(&format!("| {} |", c.id)))
            .unwrap_or_else(|| panic!("{} has no row in the summary table", c.id));
        let scope = row.split('|').nth(2).unwrap().trim();
        assert_eq!(scope == "yes", c.in_scope, "{}: summary says {scope}", c.id);
    }

    let policy_ids = policy_ids();
    let families = fieldguard::metrics::Metrics::new()
        .unwrap()
        .families()
        .to_vec();
    let record_fields = audit_record_fields();
    let alerts = std::fs::read_to_string(repo_path("examples/monitoring/alerts.yaml")).unwrap();
    let mut in_scope = 0;
    for c in &clauses {
        if !c.in_scope {
            assert!(
                c.item("Why").is_some(),
                "{}: out of scope without a reason",
                c.id
            );
            continue;
        }
        in_scope += 1;
        for label in ["Duty", "Control", "Policies", "Tests", "Evidence"] {
            assert!(c.item(label).is_some(), "{}: no {label}", c.id);
        }
        let tests = c.names("Tests");
        assert!(
            !tests.is_empty(),
            "{}: an in-scope clause without a test",
            c.id
        );
        for t in tests {
            let (file, function) = t
                .split_once("::")
                .unwrap_or_else(|| panic!("{}: `{t}` is not FILE::FUNCTION", c.id));
            let source = std::fs::read_to_string(repo_path(file))
                .unwrap_or_else(|e| panic!("{}: {file}: {e}", c.id));
            let defined = source.lines().any(|l| {
                let l = l.trim_start();
                l.starts_with(&format!("fn {function}("))
                    || l.starts_with(&format!("async fn {function}("))
            });
            assert!(defined, "{}: no fn {function} in {file}", c.id);
            let attribute = source
                .split(&format!("fn {function}("))
                .next()
                .and_then(|before| before.rsplit("\n\n").next())
                .unwrap_or_default();
            // A test itself, or a case a macro in the file runs as tests
            // (tests/role_table.rs runs each case against two deployments).
            let macro_case = source.contains(&format!("\n    {function},\n"));
            assert!(
                attribute.contains("#[test]") || attribute.contains("#[tokio::test") || macro_case,
                "{}: {function} in {file} is not a test",
                c.id
            );
        }
        for p in c.names("Policies") {
            assert!(policy_ids.contains(&p), "{}: no policy `{p}`", c.id);
        }
        for name in c.names("Evidence") {
            if name.starts_with("fieldguard_") {
                assert!(families.contains(&name), "{}: no metric `{name}`", c.id);
            } else if name.starts_with("Fieldguard") {
                assert!(
                    alerts.contains(&format!("alert: {name}\n")),
                    "{}: no alert `{name}`",
                    c.id
                );
            } else {
                for segment in name.split('.') {
                    assert!(
                        record_fields.contains(segment),
                        "{}: audit records have no field `{segment}` (in `{name}`)",
                        c.id
                    );
                }
            }
        }
    }
    assert_eq!(in_scope, 19, "in-scope clauses");
}

/// Every `@id("…")` in policies/*.cedar.
fn policy_ids() -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for e in std::fs::read_dir(repo_path("policies")).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "cedar") {
            let text = std::fs::read_to_string(&path).unwrap();
            for part in text.split("@id(\"").skip(1) {
                ids.insert(part.split('"').next().unwrap().to_string());
            }
        }
    }
    ids
}

/// Field names of the audit record's structs (`pub NAME:` in
/// src/audit/record.rs), plus the `hash` the chain adds.
fn audit_record_fields() -> BTreeSet<String> {
    let text = std::fs::read_to_string(repo_path("src/audit/record.rs")).unwrap();
    let mut fields: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("pub "))
        .filter_map(|l| l.split_once(':'))
        .map(|(name, _)| name.trim().to_string())
        .filter(|name| !name.contains(' ') && !name.contains('('))
        .collect();
    fields.insert("hash".into());
    fields
}

/// CDM-2.1 to 2.4: the reference catalogue puts each kind of data in the
/// category the regulation gives it (policies, audit records and metrics
/// all say `category`).
#[test]
fn the_catalogue_classifies_data_by_the_regulations_categories() {
    let rt = common::reference_runtime("127.0.0.1:9".parse().unwrap(), |_| {});
    let category = |entity: &str, field: &str| {
        rt.decisions
            .catalogue
            .fields()
            .iter()
            .find(|f| f.is_record_field() && &*f.entity == entity && f.path == field)
            .unwrap_or_else(|| panic!("{entity}.{field} is not catalogued"))
            .category
            .as_str()
    };
    // CDM-2.1 basic identity.
    for f in [
        "name",
        "gender",
        "birth_date",
        "phone",
        "email",
        "address.province",
        "address.city",
        "address.street",
        "address.postcode",
        "id_card_number",
    ] {
        assert_eq!(category("Customer", f), "identity", "Customer.{f}");
    }
    for f in ["shipping.recipient", "shipping.phone", "shipping.address"] {
        assert_eq!(category("Order", f), "identity", "Order.{f}");
    }
    // CDM-2.2 account and transaction: registration, logins, orders,
    // payment, logistics, purchases.
    for f in ["registered_at", "last_login.at", "last_login.ip"] {
        assert_eq!(
            category("Customer", f),
            "account_transaction",
            "Customer.{f}"
        );
    }
    for f in [
        "status",
        "items",
        "total",
        "payment.method",
        "payment.card_number",
        "logistics.carrier",
        "logistics.tracking_no",
        "created_at",
    ] {
        assert_eq!(category("Order", f), "account_transaction", "Order.{f}");
    }
    // CDM-2.3 behaviour and preference.
    for f in ["type", "target", "dwell_ms", "at"] {
        assert_eq!(
            category("BehaviorEvent", f),
            "behavior",
            "BehaviorEvent.{f}"
        );
    }
    // CDM-2.4 interaction and feedback.
    for f in ["channel", "subject", "messages", "satisfaction"] {
        assert_eq!(category("Ticket", f), "interaction", "Ticket.{f}");
    }
}
