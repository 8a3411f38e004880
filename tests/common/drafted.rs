//! The demo shop's deployment as `fieldguard onboard openapi` drafts it
//! from its OpenAPI document (examples/onboarding/demo-shop.openapi.yaml),
//! with the deployment's own sections (the demo's JWT settings and keys)
//! and the reference policies added, as an operator would after review:
//! the real proxy with that configuration in front of the real shop. The
//! review also adds what no API document states: a logistics partner's
//! scope (the `carrier` token claim, and the `carrier` attribute of orders
//! that the reference policies compare with it, CDM-3.2.3).

use super::{Harness, repo_path};
use fieldguard::demo::{data::DEMO_CUSTOMERS, shop};
use fieldguard::onboard::draft::{DraftOptions, draft_openapi};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use tokio::net::TcpListener;

/// The deployment sections the draft is given (`--deployment`).
pub fn deployment_yaml() -> String {
    let secrets = repo_path("examples/demo/secrets");
    format!(
        "listeners:\n  - address: 127.0.0.1:0\n\
         upstream:\n  url: http://127.0.0.1:9000\n\
         identity:\n  jwt:\n    hs256_secret_file: {}\n    issuer: fieldguard-demo\n    audience: demo-shop\n    \
         roles_claim: roles\n    mfa_claim: amr\n    mfa_values: [mfa, otp, hwk]\n    purpose_claim: purpose\n\
         \x20   attribute_claims: [carrier]\n\
         redaction:\n  hash_key_file: {}\n",
        secrets.join("jwt-hs256.key").display(),
        secrets.join("hash.key").display()
    )
}

/// The folder holding the draft and the reference policies (made once
/// per test process).
pub fn draft_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let deployment = dir.join("deployment.yaml");
        std::fs::write(&deployment, deployment_yaml()).unwrap();
        let draft = draft_openapi(
            &repo_path("examples/onboarding/demo-shop.openapi.yaml"),
            &DraftOptions {
                deployment: Some(deployment),
                ..DraftOptions::default()
            },
        )
        .unwrap_or_else(|e| panic!("draft: {e}"));
        let out = dir.join("draft");
        draft.write(&out).unwrap();
        add_partner_scope(&out);
        // The reference policies (the draft's own baseline permits nothing).
        for e in std::fs::read_dir(repo_path("policies")).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "cedar") {
                std::fs::copy(&p, out.join("policies").join(p.file_name().unwrap())).unwrap();
            }
        }
        out
    })
}

/// The reviewer's addition for partners: orders get a `carrier` attribute
/// (from `logistics.carrier`), principals a `carrier` (from the token).
fn add_partner_scope(draft: &Path) {
    let edit = |file: &Path, from: &str, to: &str| {
        let text = std::fs::read_to_string(file).unwrap();
        assert_eq!(
            text.matches(from).count(),
            1,
            "{from:?} in {}",
            file.display()
        );
        std::fs::write(file, text.replacen(from, to, 1)).unwrap();
    };
    let config = draft.join("fieldguard.yaml");
    edit(
        &config,
        "  Order:\n    id_field: id\n    attributes:\n",
        "  Order:\n    id_field: id\n    attributes:\n      carrier: { field: logistics.carrier, type: string, default: \"\" }\n",
    );
    let schema = draft.join("policies/schema.cedarschema");
    edit(
        &schema,
        "entity User in [Role];",
        "entity User in [Role] = { carrier?: String };",
    );
    edit(
        &schema,
        "entity Order = { owner?: User, marketing_consent?: Bool };",
        "entity Order = { owner?: User, marketing_consent?: Bool, carrier?: String };",
    );
}

/// The shop and the proxy with the drafted configuration.
pub async fn start() -> Harness {
    let shop_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let shop_addr = shop_listener.local_addr().unwrap();
    let shop_task = tokio::spawn(async move {
        let _ = shop::serve(shop_listener, shop::Shop::new(DEMO_CUSTOMERS)).await;
    });
    super::start_config_in_front_of(
        &draft_dir().join("fieldguard.yaml"),
        shop_addr,
        vec![shop_task],
    )
    .await
}
