use super::*;
use crate::identity::IdentitySource;
use std::sync::atomic::{AtomicU64, Ordering};

fn principal(id: &str, role: &str) -> Principal {
    Principal {
        id: id.into(),
        roles: vec![role.into()],
        mfa: false,
        purpose: None,
        attributes: Default::default(),
        source: IdentitySource::Jwt,
    }
}

fn budgets(yaml: &str) -> Budgets {
    let cfg: BudgetsConfig = serde_saphyr::from_str(yaml).unwrap();
    Budgets::compile(&cfg).unwrap()
}

/// A state whose clock the test moves.
fn state() -> (BudgetState, Arc<AtomicU64>) {
    let now = Arc::new(AtomicU64::new(0));
    let clock = now.clone();
    (
        BudgetState::new(Arc::new(move || clock.load(Ordering::SeqCst))),
        now,
    )
}

fn records(n: u64) -> Disclosure {
    Disclosure {
        records: n,
        full_fields: Vec::new(),
    }
}

const AGENTS: &str = "
mode: enforce
roles:
  support_agent:
    limits:
      - { id: hour-alert, count: records, window_seconds: 3600, limit: 100, on_exceed: alert }
      - { id: day-refuse, count: records, window_seconds: 86400, limit: 300, on_exceed: refuse }
";

#[test]
fn a_refusing_budget_refuses_what_would_take_it_over_and_counts_nothing() {
    let b = budgets(AGENTS);
    let (s, _) = state();
    let agent = principal("agent-7", "support_agent");
    for _ in 0..5 {
        let c = s.charge(&b, &agent, &records(60), true);
        assert!(c.refused.is_none());
    }
    // 300 used: another 60 would make 360.
    let c = s.charge(&b, &agent, &records(60), true);
    let refused = c.refused.unwrap();
    assert_eq!(refused.budget, "day-refuse");
    assert!(refused.retry_after_secs >= 1);
    let actions: Vec<&str> = c.report.flags.iter().map(|f| f.action.as_str()).collect();
    assert_eq!(actions, ["alert", "refuse"]);
    assert!(
        c.report.counted.is_empty(),
        "a refused response is not counted"
    );
    // Used up: refused before the upstream is even asked.
    assert_eq!(
        s.precheck(&b, &agent, true).refused.unwrap().budget,
        "day-refuse"
    );
    // Another agent has a budget of its own.
    let other = principal("agent-8", "support_agent");
    assert!(s.charge(&b, &other, &records(60), true).refused.is_none());
}

#[test]
fn the_window_slides() {
    let b = budgets(AGENTS);
    let (s, now) = state();
    let agent = principal("agent-7", "support_agent");
    for _ in 0..5 {
        s.charge(&b, &agent, &records(60), true);
    }
    assert!(s.charge(&b, &agent, &records(1), true).refused.is_some());
    // A day later the count has left the window.
    now.store(86_400_000, Ordering::SeqCst);
    assert!(s.precheck(&b, &agent, true).refused.is_none());
    assert!(s.charge(&b, &agent, &records(60), true).refused.is_none());
}

#[test]
fn shadow_mode_and_shadow_routes_only_flag() {
    let b = budgets(&AGENTS.replace("mode: enforce", "mode: shadow"));
    let (s, _) = state();
    let agent = principal("agent-7", "support_agent");
    for _ in 0..5 {
        s.charge(&b, &agent, &records(60), true);
    }
    let c = s.charge(&b, &agent, &records(60), true);
    assert!(c.refused.is_none());
    assert!(
        c.report
            .flags
            .iter()
            .any(|f| f.action == FlagAction::WouldRefuse)
    );
    assert_eq!(c.report.counted.len(), 2, "still counted");
    assert!(s.precheck(&b, &agent, true).refused.is_none());
    // Enforce mode, but a shadow route (enforce = false).
    let b = budgets(AGENTS);
    let (s, _) = state();
    for _ in 0..6 {
        assert!(s.charge(&b, &agent, &records(60), false).refused.is_none());
    }
}

#[test]
fn fields_are_counted_by_category_and_level_and_roles_apart() {
    let b = budgets(
        "
roles:
  support_agent:
    mode: shadow
    limits:
      - { id: contact, count: fields, category: identity, min_level: 3, window_seconds: 60, limit: 5, on_exceed: refuse }
  fulfillment:
    limits:
      - { id: team, count: records, scope: role, window_seconds: 60, limit: 3, on_exceed: refuse }
",
    );
    let (s, _) = state();
    let agent = principal("agent-7", "support_agent");
    let d = Disclosure {
        records: 1,
        full_fields: vec![
            (Category::Identity, Level(3), 4),
            (Category::Identity, Level(2), 10),
            (Category::AccountTransaction, Level(4), 10),
        ],
    };
    let c = s.charge(&b, &agent, &d, true);
    assert_eq!(c.report.counted, vec![(Arc::from("contact"), 4)]);
    let c = s.charge(&b, &agent, &d, true);
    assert_eq!(
        c.report.flags[0].action,
        FlagAction::WouldRefuse,
        "role mode: shadow"
    );
    // A role-scoped budget adds up every principal of the role.
    let (a, b2) = (
        principal("w-1", "fulfillment"),
        principal("w-2", "fulfillment"),
    );
    assert!(s.charge(&b, &a, &records(2), true).refused.is_none());
    assert_eq!(
        s.charge(&b, &b2, &records(2), true).refused.unwrap().budget,
        "team"
    );
}

#[test]
fn memory_is_bounded_and_the_bound_fails_towards_refusing() {
    let b = budgets(
        "
max_counters: 3
roles:
  partner:
    limits:
      - { id: p, count: records, window_seconds: 60, limit: 10, on_exceed: refuse }
",
    );
    let (s, now) = state();
    for i in 0..3 {
        s.charge(
            &b,
            &principal(&format!("p-{i}"), "partner"),
            &records(4),
            true,
        );
    }
    assert_eq!(s.len(), 3);
    // New principals share one overflow counter: it fills for all of them.
    for i in 3..5 {
        let c = s.charge(
            &b,
            &principal(&format!("p-{i}"), "partner"),
            &records(4),
            true,
        );
        assert!(c.refused.is_none());
    }
    let c = s.charge(&b, &principal("p-9", "partner"), &records(4), true);
    assert_eq!(c.refused.unwrap().budget, "p");
    assert_eq!(
        s.len(),
        3 + 1,
        "the bound, and one overflow counter per budget"
    );
    assert!(s.overflowed() >= 3);
    // Once windows empty, counters are swept and principals get their own.
    now.store(120_000, Ordering::SeqCst);
    let c = s.charge(&b, &principal("p-9", "partner"), &records(4), true);
    assert!(c.refused.is_none());
    assert!(s.len() <= 3 + 1);
}

#[test]
fn bad_budgets_are_refused() {
    for (yaml, why) in [
        ("max_counters: 0", "max_counters"),
        (
            "roles: { a: { limits: [ { id: x, count: records, window_seconds: 0, limit: 1, on_exceed: alert } ] } }",
            "window_seconds",
        ),
        (
            "roles: { a: { limits: [ { id: x, count: records, window_seconds: 1, limit: 0, on_exceed: alert } ] } }",
            "limit",
        ),
        (
            "roles: { a: { limits: [ { id: x, count: records, category: identity, window_seconds: 1, limit: 1, on_exceed: alert } ] } }",
            "count: fields",
        ),
        (
            "roles: { a: { limits: [ { id: x, count: records, window_seconds: 1, limit: 1, on_exceed: alert } ] }, b: { limits: [ { id: x, count: records, window_seconds: 1, limit: 1, on_exceed: alert } ] } }",
            "unique",
        ),
    ] {
        let cfg: BudgetsConfig = serde_saphyr::from_str(yaml).unwrap();
        let err = Budgets::compile(&cfg).unwrap_err().to_string();
        assert!(err.contains(why), "{yaml}: {err}");
    }
}
