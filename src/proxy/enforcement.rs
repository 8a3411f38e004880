//! Enforced or shadow mode, decided once per request. In shadow mode
//! (globally, or on the request's route) every refusal the proxy would
//! make is noted in the request's shadow report instead, and the request
//! goes on; enforced, the refusal is the proxy's answer. The phases of
//! [`super::handler`] hand each refusal to [`Enforcement::refuse`] rather
//! than each deciding between the two.

use super::errors::Stop;
use crate::exchange::Exchange;
use crate::runtime::Runtime;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Enforcement {
    Enforce,
    Shadow,
}

impl Enforcement {
    /// Shadow mode when the configuration says so, for everything or for
    /// the request's route (`route_shadow`).
    pub(super) fn of(rt: &Runtime, route_shadow: bool) -> Self {
        if rt.decisions.shadow_all || route_shadow {
            Enforcement::Shadow
        } else {
            Enforcement::Enforce
        }
    }

    pub(super) fn is_shadow(self) -> bool {
        self == Enforcement::Shadow
    }

    /// A refusal (with the policies behind it): enforced, the proxy's
    /// answer; in shadow mode, noted as what enforcement would have done
    /// (the first such refusal: enforcement stops there), and `Ok`.
    pub(super) fn refuse(
        self,
        ex: &mut Exchange,
        stop: impl Into<Stop>,
        policies: Vec<String>,
    ) -> Result<(), Stop> {
        let stop = stop.into();
        match self {
            Enforcement::Enforce => Err(stop),
            Enforcement::Shadow => {
                ex.would_deny(stop.refusal, policies);
                Ok(())
            }
        }
    }
}
