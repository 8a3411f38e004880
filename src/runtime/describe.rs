//! How a runtime describes its policy set: what the admin listener's
//! `/policies` shows (version, schema hash, signing key, files, policies
//! by id with their place, and each route's mode).

use super::Runtime;

impl Runtime {
    pub fn describe(&self) -> serde_json::Value {
        let b = &self.decisions.engine.bundle;
        let name = |p: &std::path::Path| {
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let list: Vec<serde_json::Value> = b
            .info
            .values()
            .map(|p| {
                serde_json::json!({
                    "id": p.id,
                    "effect": p.effect,
                    "file": name(&p.file),
                    "line": p.line,
                })
            })
            .collect();
        // Routes that let members the configuration does not name through
        // (`unknown_fields: pass`) or enforce nothing (shadow): what an
        // operator must not forget is still on.
        let routes: Vec<serde_json::Value> = self
            .decisions
            .routes
            .iter()
            .map(|r| {
                serde_json::json!({
                    "method": r.method,
                    "path": r.template,
                    "unknown_fields": r.response.as_ref().map(|p| p.unknown.as_str()),
                    "shadow": r.shadow || self.decisions.shadow_all,
                })
            })
            .collect();
        serde_json::json!({
            "routes": routes,
            "version": b.version,
            "schema_hash": b.schema_hash,
            "signed_by": self.signed_by,
            "loaded_at": fieldguard_core::time::rfc3339_millis(self.loaded_at),
            "files": b.files.iter().map(|f| name(f)).collect::<Vec<_>>(),
            "policies": list,
        })
    }
}
