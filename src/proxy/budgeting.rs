//! The bulk-read budgets at the two points of a request where they act:
//! before the upstream is asked (a used-up refusing budget refuses at
//! once) and after the response is filtered (what it discloses is counted,
//! or refused whole when it would take a refusing budget over its limit).
//! What they counted and flagged goes into the request's [`Exchange`].

use super::Proxy;
use super::errors::{Refusal, Stop};
use crate::budget::{Charge, Disclosure};
use crate::exchange::Exchange;
use crate::runtime::Runtime;
use fieldguard_core::redact::report::FilterReport;

/// Before the upstream: `enforce` is false on shadow routes.
pub(super) async fn precheck(
    proxy: &Proxy,
    rt: &Runtime,
    ex: &mut Exchange,
    enforce: bool,
) -> Result<(), Stop> {
    let Some(principal) = ex.principal.as_ref().filter(|_| !rt.budgets.is_empty()) else {
        return Ok(());
    };
    let charge = proxy
        .budgets
        .precheck(&rt.budgets, principal, enforce)
        .await;
    outcome(ex, charge)
}

/// After filtering: counts what `report` says the response disclosed.
/// `Err` (429) means the response must not be sent.
pub(super) async fn charge(
    proxy: &Proxy,
    rt: &Runtime,
    ex: &mut Exchange,
    report: &FilterReport,
    enforce: bool,
) -> Result<(), Stop> {
    if rt.budgets.is_empty() {
        return Ok(());
    }
    let disclosed = Disclosure::of(report, &rt.decisions.catalogue);
    charge_disclosure(proxy, rt, ex, &disclosed, enforce).await
}

/// Counts what a response (or a streamed response's next batch, before it
/// is sent) discloses; a later batch's charge is added to the earlier
/// ones'. `Err` means it must not be sent.
pub(super) async fn charge_disclosure(
    proxy: &Proxy,
    rt: &Runtime,
    ex: &mut Exchange,
    disclosed: &Disclosure,
    enforce: bool,
) -> Result<(), Stop> {
    let Some(principal) = ex.principal.as_ref().filter(|_| !rt.budgets.is_empty()) else {
        return Ok(());
    };
    let mut charge = proxy
        .budgets
        .charge(&rt.budgets, principal, disclosed, enforce)
        .await;
    if let Some(earlier) = ex.budget.take() {
        let later = std::mem::take(&mut charge.report);
        charge.report = earlier;
        charge.report.absorb(later);
    }
    outcome(ex, charge)
}

fn outcome(ex: &mut Exchange, charge: Charge) -> Result<(), Stop> {
    let report = &charge.report;
    if !report.flags.is_empty() || !report.counted.is_empty() || !report.store_fallback.is_empty() {
        ex.budget = Some(charge.report);
    }
    match charge.refused {
        Some(refused) => Err(Stop {
            refusal: if refused.store_unavailable {
                Refusal::BudgetStoreUnavailable
            } else {
                Refusal::BudgetExceeded
            },
            budget: Some(Box::new(refused)),
            ..Stop::from(Refusal::BudgetExceeded)
        }),
        None => Ok(()),
    }
}
