//! The proxy as the admin listener sees it: the narrow [`AdminHandle`].

use super::Proxy;
use super::reload::{ReloadError, Trigger};
use crate::admin::{AdminHandle, ReloadRefused, ReloadStatus};
use crate::observed_store::ObservedSnapshot;

impl AdminHandle for Proxy {
    fn policy_version(&self) -> String {
        Proxy::runtime(self).decisions.engine.bundle.version.clone()
    }

    fn policies(&self) -> serde_json::Value {
        Proxy::runtime(self).describe()
    }

    fn last_reload(&self) -> ReloadStatus {
        let last = Proxy::last_reload(self);
        ReloadStatus {
            at: last.at,
            error: last.error,
            attempts: last.attempts,
        }
    }

    fn reload(&self) -> Result<String, ReloadRefused> {
        Proxy::reload(self, Trigger::Admin).map_err(|e| ReloadRefused {
            reason: e.to_string(),
            config: match e {
                ReloadError::Invalid(c) => Some(c),
                ReloadError::NoSource | ReloadError::Poisoned => None,
            },
        })
    }

    fn metrics_text(&self) -> Vec<u8> {
        if let Some(audit) = &self.audit {
            self.metrics.audit.queue_depth.set(audit.depth() as i64);
        }
        self.metrics
            .collect_token_cache(Proxy::runtime(self).metrics_view());
        self.metrics.collect_budgets(self.budgets.memory());
        self.metrics.render()
    }

    fn audit_healthy(&self) -> Option<bool> {
        self.audit.as_ref().map(|a| a.healthy())
    }

    fn observed(&self) -> ObservedSnapshot {
        self.observed.snapshot()
    }
}
