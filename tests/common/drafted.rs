//! The demo shop's deployment as `fieldguard onboard openapi` drafts it
//! from its OpenAPI document (examples/onboarding/demo-shop.openapi.yaml),
//! with the deployment's own sections (the demo's JWT settings and keys)
//! and the reference policies added: the real proxy with that
//! configuration, not edited, in front of the real shop. The review's
//! decisions are in the document as `x-fieldguard` (the orders' `carrier`
//! attribute, the shipping address as one value) and the deployment (the
//! `carrier` token claim, which the draft's `User` declares), as
//! docs/onboarding.md says.

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
