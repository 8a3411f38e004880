//! Rotating the JWT signing key takes effect on reload although the proxy
//! caches verified tokens: the cache belongs to the runtime's verifier, and a
//! reload builds a new one (re-reading the key files) with an empty cache.
//! A token cached under the old key is refused right after the reload.

mod common;

use bytes::Bytes;
use common::{Reply, copy_dir, repo_path, token};
use fieldguard::config::{self, ListenerConfig};
use fieldguard::demo::{data::DEMO_CUSTOMERS, shop};
use fieldguard::identity::mint::{TokenRequest, mint_hs256};
use fieldguard::proxy::{self, Proxy};
use fieldguard::reload::Trigger;
use fieldguard::runtime::Runtime;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

const NEW_SECRET: &[u8] = b"rotated-test-secret-0123456789abcdef-rotated";

async fn get(client: &Client<HttpConnector, Full<Bytes>>, addr: SocketAddr, token: &str) -> Reply {
    let req = http::Request::builder()
        .uri(format!("http://{addr}/customers/c-1001"))
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .expect("answered in time")
        .expect("request sent");
    Reply::from_response(resp).await
}

#[tokio::test]
async fn a_token_cached_under_the_old_key_is_refused_after_a_reload() {
    // A copy of the reference deployment, so its secret can be rotated.
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&repo_path("policies"), &dir.path().join("policies"));
    copy_dir(&repo_path("examples"), &dir.path().join("examples"));
    let config_file = dir.path().join("examples/demo/fieldguard.yaml");
    let secret_file = dir.path().join("examples/demo/secrets/jwt-hs256.key");

    let shop_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let shop_addr = shop_listener.local_addr().unwrap();
    let shop_task = tokio::spawn(async move {
        let _ = shop::serve(shop_listener, shop::Shop::new(DEMO_CUSTOMERS)).await;
    });
    let adjust: fieldguard::reload::Adjust = Box::new(move |loaded: &mut config::LoadedConfig| {
        loaded.config.upstream.url.value = format!("http://{shop_addr}");
        loaded.config.listeners = vec![ListenerConfig {
            address: "127.0.0.1:0".parse().unwrap(),
        }];
        loaded.config.reload.watch = false;
    });
    let mut loaded = config::load(&config_file).unwrap();
    adjust(&mut loaded);
    let proxy = Arc::new(Proxy::new(Runtime::build(loaded).unwrap()).unwrap());
    proxy.set_reload_source(config_file, adjust);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let p = proxy.clone();
    let proxy_task = tokio::spawn(async move {
        let _ = proxy::serve(listener, p).await;
    });
    let client = Client::builder(TokioExecutor::new()).build(HttpConnector::new());

    // The old key's token is accepted, and the second request is a cache hit.
    let old_token = token("support_agent", "agent-7", false, None);
    for _ in 0..2 {
        let reply = get(&client, addr, &old_token).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }

    std::fs::write(&secret_file, NEW_SECRET).unwrap();
    let p = proxy.clone();
    tokio::task::spawn_blocking(move || p.reload(Trigger::Signal))
        .await
        .unwrap()
        .unwrap();

    let reply = get(&client, addr, &old_token).await;
    assert_eq!(reply.status, 401, "{}", reply.text());
    assert_eq!(reply.json()["message"], "invalid token signature");

    let new_token = mint_hs256(
        NEW_SECRET,
        &TokenRequest {
            sub: "agent-7".into(),
            roles: vec!["support_agent".into()],
            ttl_secs: 600,
            issuer: Some("fieldguard-demo".into()),
            audience: Some("demo-shop".into()),
            ..TokenRequest::default()
        },
    )
    .unwrap();
    let reply = get(&client, addr, &new_token).await;
    assert_eq!(reply.status, 200, "{}", reply.text());

    proxy_task.abort();
    shop_task.abort();
}
