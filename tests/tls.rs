//! TLS on both sides of the proxy, over real sockets: termination with ALPN
//! (h2 and http/1.1), client certificates required and optional, a client
//! certificate as the caller's identity, certificate reload without
//! dropping connections, and TLS (with a client certificate) toward the
//! upstream, and revocation lists for client certificates. Every
//! certificate is generated here; no key is checked in.

mod common;

use bytes::Bytes;
use common::token;
use fieldguard::config;
use fieldguard::demo::{data::DEMO_CUSTOMERS, shop};
use fieldguard::proxy::Proxy;
use fieldguard::proxy::server::Server;
use fieldguard::runtime::Runtime;
use fieldguard::tls::{
    CertPrincipalConfig, ClientAuthConfig, ClientAuthMode, ServerTls, TlsConfig, UpstreamTlsConfig,
};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CertifiedIssuer, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason,
    RevokedCertParams, SanType, SerialNumber, date_time_ymd,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

const STEP: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------- PKI

/// A test certificate authority.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A leaf certificate with its key, as PEM.
struct Leaf {
    cert_pem: String,
    key_pem: String,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Self { issuer }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    fn der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    fn leaf(&self, sans: Vec<SanType>, usage: ExtendedKeyUsagePurpose) -> Leaf {
        self.leaf_with_serial(sans, usage, None)
    }

    fn leaf_with_serial(
        &self,
        sans: Vec<SanType>,
        usage: ExtendedKeyUsagePurpose,
        serial: Option<u64>,
    ) -> Leaf {
        let mut params = CertificateParams::default();
        params.serial_number = serial.map(SerialNumber::from);
        params.subject_alt_names = sans;
        params
            .distinguished_name
            .push(DnType::CommonName, "test leaf");
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// A server certificate for `localhost` and 127.0.0.1.
    fn server(&self) -> Leaf {
        self.leaf(
            vec![
                SanType::DnsName("localhost".try_into().unwrap()),
                SanType::IpAddress("127.0.0.1".parse().unwrap()),
            ],
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    fn client_spiffe(&self, id: &str) -> Leaf {
        self.leaf(
            vec![SanType::URI(id.try_into().unwrap())],
            ExtendedKeyUsagePurpose::ClientAuth,
        )
    }

    /// A client certificate with a known serial number (to revoke it).
    fn client_numbered(&self, serial: u64) -> Leaf {
        self.leaf_with_serial(
            vec![SanType::URI(
                "spiffe://shop.internal/unknown".try_into().unwrap(),
            )],
            ExtendedKeyUsagePurpose::ClientAuth,
            Some(serial),
        )
    }

    /// A PEM CRL signed by this CA revoking `serials`, issued in 2020 and
    /// valid until the start of `next_update_year`.
    fn crl(&self, serials: &[u64], next_update_year: i32) -> String {
        let params = CertificateRevocationListParams {
            this_update: date_time_ymd(2020, 1, 1),
            next_update: date_time_ymd(next_update_year, 1, 1),
            crl_number: SerialNumber::from(serials.len() as u64 + 1),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|s| RevokedCertParams {
                    serial_number: SerialNumber::from(*s),
                    revocation_time: date_time_ymd(2020, 6, 1),
                    reason_code: Some(RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        params.signed_by(&self.issuer).unwrap().pem().unwrap()
    }
}

impl Leaf {
    fn certs(&self) -> Vec<CertificateDer<'static>> {
        use rustls::pki_types::pem::PemObject;
        CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn key(&self) -> PrivateKeyDer<'static> {
        use rustls::pki_types::pem::PemObject;
        PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).unwrap()
    }

    fn write(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&cert, &self.cert_pem).unwrap();
        std::fs::write(&key, &self.key_pem).unwrap();
        (cert, key)
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

// ---------------------------------------------------------------- proxy

struct TlsProxy {
    addr: SocketAddr,
    server: Arc<Server>,
    tls: Arc<ServerTls>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        self.server.shutdown();
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn spawn_shop() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = shop::serve(l, shop::Shop::new(DEMO_CUSTOMERS)).await;
    });
    (addr, task)
}

/// The reference config with TLS on the listener, in front of `upstream`.
async fn start_proxy(
    tls: TlsConfig,
    upstream_url: String,
    upstream_tls: Option<UpstreamTlsConfig>,
    mut tasks: Vec<tokio::task::JoinHandle<()>>,
) -> TlsProxy {
    let mut loaded = config::load(&common::demo_config_path()).unwrap();
    loaded.config.upstream.url.value = upstream_url;
    loaded.config.upstream.tls = upstream_tls;
    loaded.config.tls = Some(tls.clone());
    let server_tls = ServerTls::load(&tls, loaded.origin()).unwrap();
    let runtime = Runtime::build(loaded).unwrap();
    let proxy = Arc::new(Proxy::new(runtime).unwrap());
    let server = Server::new(proxy, Some(server_tls.clone()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let s = server.clone();
    tasks.push(tokio::spawn(async move {
        let _ = s.serve(listener).await;
    }));
    TlsProxy {
        addr,
        server,
        tls: server_tls,
        tasks,
    }
}

fn tls_config(dir: &Path, server: &Leaf, client_auth: Option<ClientAuthConfig>) -> TlsConfig {
    let (cert_file, key_file) = server.write(dir, "server");
    TlsConfig {
        cert_file,
        key_file,
        reload_interval_ms: 0,
        client_auth,
    }
}

// ---------------------------------------------------------------- client

/// A client config trusting `ca`, presenting `client` if given, offering `alpn`.
fn client_config(ca: &Ca, client: Option<&Leaf>, alpn: &[&[u8]]) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der()).unwrap();
    let b = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut cfg = match client {
        Some(c) => b.with_client_auth_cert(c.certs(), c.key()).unwrap(),
        None => b.with_no_client_auth(),
    };
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    cfg
}

async fn connect(
    addr: SocketAddr,
    cfg: rustls::ClientConfig,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").unwrap();
    tokio::time::timeout(STEP, TlsConnector::from(Arc::new(cfg)).connect(name, tcp))
        .await
        .map_err(|_| std::io::Error::other("handshake timed out"))?
}

/// An HTTP/1.1 connection over an established TLS stream.
async fn h1(stream: TlsStream<TcpStream>) -> hyper::client::conn::http1::SendRequest<Empty<Bytes>> {
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

fn request(addr: SocketAddr, path: &str, bearer: Option<&str>) -> Request<Empty<Bytes>> {
    let mut b = Request::builder()
        .uri(format!("https://localhost:{}{path}", addr.port()))
        .header("host", format!("localhost:{}", addr.port()));
    if let Some(t) = bearer {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(Empty::new()).unwrap()
}

async fn send_h1(
    sender: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    req: Request<Empty<Bytes>>,
) -> Result<(StatusCode, Value), String> {
    let resp = tokio::time::timeout(STEP, sender.send_request(req))
        .await
        .map_err(|_| "timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    let json = serde_json::from_slice(&body).map_err(|e| format!("not JSON: {e}"))?;
    Ok((status, json))
}

/// Why the proxy ends a connection from a client presenting a refused
/// certificate: the TLS alert it sends (with TLS 1.3 the client learns of
/// it at its first read).
async fn refusal_alert(addr: SocketAddr, cfg: rustls::ClientConfig) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = match connect(addr, cfg).await {
        Ok(s) => s,
        Err(e) => return e.to_string(),
    };
    let _ = stream
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await;
    let mut buf = [0u8; 512];
    match tokio::time::timeout(STEP, stream.read(&mut buf)).await {
        Ok(Err(e)) => e.to_string(),
        other => format!("no TLS alert: {other:?}"),
    }
}

/// Connects, sends one GET over HTTP/1.1, reads the answer. `Err` if the
/// handshake or the exchange fails (a refused client certificate shows up
/// at either, depending on the TLS version).
async fn get(
    addr: SocketAddr,
    cfg: rustls::ClientConfig,
    path: &str,
    bearer: Option<&str>,
) -> Result<(StatusCode, Value), String> {
    let stream = connect(addr, cfg).await.map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    send_h1(&mut sender, request(addr, path, bearer)).await
}

fn agent_token() -> String {
    token("support_agent", "agent-7", false, None)
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn terminates_tls_for_http1_and_h2_chosen_by_alpn() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("server ca");
    let (shop_addr, shop_task) = spawn_shop().await;
    let p = start_proxy(
        tls_config(dir.path(), &ca.server(), None),
        format!("http://{shop_addr}"),
        None,
        vec![shop_task],
    )
    .await;
    let tok = agent_token();

    // http/1.1 by ALPN.
    let stream = connect(p.addr, client_config(&ca, None, &[b"http/1.1"]))
        .await
        .unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let mut sender = h1(stream).await;
    let (status, h1_body) = send_h1(
        &mut sender,
        request(p.addr, "/customers/c-1001", Some(&tok)),
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    assert_eq!(h1_body["id"], "c-1001");

    // h2 by ALPN: same answer.
    let stream = connect(p.addr, client_config(&ca, None, &[b"h2", b"http/1.1"]))
        .await
        .unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut h2, conn) = hyper::client::conn::http2::handshake::<_, _, Empty<Bytes>>(
        TokioExecutor::new(),
        TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let resp = tokio::time::timeout(
        STEP,
        h2.send_request(request(p.addr, "/customers/c-1001", Some(&tok))),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
    let body: Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body, h1_body);

    // A client that does not trust the proxy's CA does not get through.
    let other = Ca::new("other ca");
    assert!(
        get(
            p.addr,
            client_config(&other, None, &[]),
            "/customers/c-1001",
            Some(&tok)
        )
        .await
        .is_err()
    );

    // Plain HTTP on the TLS port gets no HTTP answer.
    let raw = common::wire::raw_get("GET", "/customers/c-1001", Some(&tok));
    let mut tcp = TcpStream::connect(p.addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tcp.write_all(&raw).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(STEP, tcp.read_to_end(&mut buf)).await;
    assert!(
        !buf.starts_with(b"HTTP/"),
        "{:?}",
        String::from_utf8_lossy(&buf)
    );
}

fn mtls(dir: &Path, client_ca: &Ca, mode: ClientAuthMode) -> ClientAuthConfig {
    ClientAuthConfig {
        ca_file: write(dir, "clients-ca.pem", &client_ca.pem()),
        mode,
        crl_files: vec![],
        principals: vec![
            CertPrincipalConfig {
                id: "spiffe://shop.internal/support-bot".into(),
                roles: vec!["support_agent".into()],
            },
            CertPrincipalConfig {
                id: "spiffe://shop.internal/no-roles".into(),
                roles: vec![],
            },
        ],
    }
}

#[tokio::test]
async fn required_client_certificate_refuses_clients_without_a_valid_one() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("server ca");
    let client_ca = Ca::new("client ca");
    let (shop_addr, shop_task) = spawn_shop().await;
    let p = start_proxy(
        tls_config(
            dir.path(),
            &ca.server(),
            Some(mtls(dir.path(), &client_ca, ClientAuthMode::Required)),
        ),
        format!("http://{shop_addr}"),
        None,
        vec![shop_task],
    )
    .await;
    let tok = agent_token();

    // No certificate: refused even with a valid token.
    let no_cert = get(
        p.addr,
        client_config(&ca, None, &[]),
        "/customers/c-1001",
        Some(&tok),
    )
    .await;
    assert!(no_cert.is_err(), "{no_cert:?}");

    // A certificate from a CA the proxy does not trust: refused.
    let stranger = Ca::new("stranger ca").client_spiffe("spiffe://shop.internal/support-bot");
    let bad = get(
        p.addr,
        client_config(&ca, Some(&stranger), &[]),
        "/customers/c-1001",
        Some(&tok),
    )
    .await;
    assert!(bad.is_err(), "{bad:?}");

    // A valid but unlisted certificate secures the channel only: the caller
    // still needs a token.
    let unlisted = client_ca.client_spiffe("spiffe://shop.internal/unknown");
    let (status, body) = get(
        p.addr,
        client_config(&ca, Some(&unlisted), &[]),
        "/customers/c-1001",
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 401);
    assert_eq!(body["error"], "unauthenticated");
    let (status, _) = get(
        p.addr,
        client_config(&ca, Some(&unlisted), &[]),
        "/customers/c-1001",
        Some(&tok),
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
}

#[tokio::test]
async fn listed_client_certificate_is_the_caller() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("server ca");
    let client_ca = Ca::new("client ca");
    let (shop_addr, shop_task) = spawn_shop().await;
    let p = start_proxy(
        tls_config(
            dir.path(),
            &ca.server(),
            Some(mtls(dir.path(), &client_ca, ClientAuthMode::Optional)),
        ),
        format!("http://{shop_addr}"),
        None,
        vec![shop_task],
    )
    .await;
    let bot = client_ca.client_spiffe("spiffe://shop.internal/support-bot");

    // The certificate alone authenticates, with the configured role: the
    // same view as a support agent's token.
    let (status, by_cert) = get(
        p.addr,
        client_config(&ca, Some(&bot), &[]),
        "/customers/c-1001",
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{by_cert}");
    let (_, by_token) = get(
        p.addr,
        client_config(&ca, None, &[]),
        "/customers/c-1001",
        Some(&agent_token()),
    )
    .await
    .unwrap();
    assert_eq!(by_cert, by_token);
    // Redacted like an agent's view: not the raw record.
    let raw = common::wire::raw(
        shop_addr,
        &common::wire::raw_get("GET", "/customers/c-1001", None),
    )
    .await
    .json();
    assert_eq!(raw["id"], "c-1001");
    assert_ne!(by_cert, raw);

    // The roles are the configured ones: a listed identity without roles
    // is authenticated but may read nothing.
    let nobody = client_ca.client_spiffe("spiffe://shop.internal/no-roles");
    let (status, body) = get(
        p.addr,
        client_config(&ca, Some(&nobody), &[]),
        "/customers/c-1001",
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 403, "{body}");

    // Optional mode: no certificate and no token is unauthenticated; a
    // token still works without a certificate (checked above).
    let (status, body) = get(
        p.addr,
        client_config(&ca, None, &[]),
        "/customers/c-1001",
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 401);
    assert_eq!(body["error"], "unauthenticated");
}

#[tokio::test]
async fn renewed_certificate_is_used_for_new_handshakes_without_dropping_connections() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("server ca");
    let (shop_addr, shop_task) = spawn_shop().await;
    let first = ca.server();
    let p = start_proxy(
        tls_config(dir.path(), &first, None),
        format!("http://{shop_addr}"),
        None,
        vec![shop_task],
    )
    .await;
    let tok = agent_token();
    let peer_leaf =
        |s: &TlsStream<TcpStream>| s.get_ref().1.peer_certificates().unwrap()[0].clone();

    let stream = connect(p.addr, client_config(&ca, None, &[]))
        .await
        .unwrap();
    assert_eq!(peer_leaf(&stream), first.certs()[0]);
    let mut old_conn = h1(stream).await;
    let (status, _) = send_h1(
        &mut old_conn,
        request(p.addr, "/customers/c-1001", Some(&tok)),
    )
    .await
    .unwrap();
    assert_eq!(status, 200);

    // A half-written renewal (key missing) keeps the old certificate.
    let second = ca.server();
    std::fs::write(dir.path().join("server.crt"), &second.cert_pem).unwrap();
    std::fs::write(dir.path().join("server.key"), "").unwrap();
    assert!(p.tls.reload_if_changed().is_err());
    let s = connect(p.addr, client_config(&ca, None, &[]))
        .await
        .unwrap();
    assert_eq!(peer_leaf(&s), first.certs()[0]);

    // The complete renewal is picked up.
    second.write(dir.path(), "server");
    assert!(p.tls.reload_if_changed().unwrap());
    assert!(!p.tls.reload_if_changed().unwrap(), "no change, no reload");
    let s = connect(p.addr, client_config(&ca, None, &[]))
        .await
        .unwrap();
    assert_eq!(peer_leaf(&s), second.certs()[0]);

    // The connection opened before the renewal still serves requests.
    let (status, _) = send_h1(
        &mut old_conn,
        request(p.addr, "/customers/c-1001", Some(&tok)),
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
}

#[tokio::test]
async fn reloader_task_polls_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("server ca");
    let (shop_addr, shop_task) = spawn_shop().await;
    let mut cfg = tls_config(dir.path(), &ca.server(), None);
    cfg.reload_interval_ms = 20;
    let p = start_proxy(cfg, format!("http://{shop_addr}"), None, vec![shop_task]).await;
    let renewed = ca.server();
    renewed.write(dir.path(), "server");
    let mut seen = false;
    for _ in 0..250 {
        let s = connect(p.addr, client_config(&ca, None, &[]))
            .await
            .unwrap();
        if s.get_ref().1.peer_certificates().unwrap()[0] == renewed.certs()[0] {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(seen, "the renewed certificate was never served");
}

/// The demo shop behind a TLS terminator that requires a client certificate
/// (a stand-in for an upstream with its own TLS).
async fn tls_shop(server: &Leaf, client_ca: &Ca) -> (SocketAddr, Vec<tokio::task::JoinHandle<()>>) {
    let (shop_addr, shop_task) = spawn_shop().await;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(client_ca.der()).unwrap();
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .unwrap();
    let cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(server.certs(), server.key())
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = l.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut plain) = TcpStream::connect(shop_addr).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    (addr, vec![shop_task, task])
}

#[tokio::test]
async fn upstream_over_tls_with_client_certificate_and_server_name() {
    let dir = tempfile::tempdir().unwrap();
    let front_ca = Ca::new("front ca");
    let upstream_ca = Ca::new("upstream ca");
    let proxy_client_ca = Ca::new("proxy client ca");
    let upstream_cert = upstream_ca.leaf(
        vec![SanType::DnsName("shop.internal".try_into().unwrap())],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let (up_addr, tasks) = tls_shop(&upstream_cert, &proxy_client_ca).await;
    let proxy_cert = proxy_client_ca.leaf(
        vec![SanType::DnsName("fieldguard.internal".try_into().unwrap())],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let (client_cert_file, client_key_file) = proxy_cert.write(dir.path(), "to-upstream");
    let upstream_tls = UpstreamTlsConfig {
        ca_file: write(dir.path(), "upstream-ca.pem", &upstream_ca.pem()),
        server_name: Some("shop.internal".into()),
        client_cert_file: Some(client_cert_file),
        client_key_file: Some(client_key_file),
    };
    let p = start_proxy(
        tls_config(dir.path(), &front_ca.server(), None),
        format!("https://127.0.0.1:{}", up_addr.port()),
        Some(upstream_tls.clone()),
        tasks,
    )
    .await;
    let (status, body) = get(
        p.addr,
        client_config(&front_ca, None, &[]),
        "/customers/c-1001",
        Some(&agent_token()),
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], "c-1001");

    // Trusting the wrong CA for the upstream: 502, nothing relayed.
    let wrong = UpstreamTlsConfig {
        ca_file: write(dir.path(), "wrong-ca.pem", &Ca::new("wrong").pem()),
        ..upstream_tls
    };
    let (up_addr, tasks) = tls_shop(&upstream_cert, &proxy_client_ca).await;
    let p2 = start_proxy(
        tls_config(dir.path(), &front_ca.server(), None),
        format!("https://127.0.0.1:{}", up_addr.port()),
        Some(wrong),
        tasks,
    )
    .await;
    let (status, body) = get(
        p2.addr,
        client_config(&front_ca, None, &[]),
        "/customers/c-1001",
        Some(&agent_token()),
    )
    .await
    .unwrap();
    assert_eq!(status, 502);
    assert_eq!(body["error"], "upstream_unavailable");
}

#[test]
fn https_upstream_without_tls_section_is_a_config_error() {
    let mut loaded = config::load(&common::demo_config_path()).unwrap();
    loaded.config.upstream.url.value = "https://127.0.0.1:9443".into();
    let err = Runtime::build(loaded).unwrap_err().to_string();
    assert!(err.contains("upstream.tls"), "{err}");
}

#[test]
fn unreadable_or_mismatched_certificate_files_are_start_up_errors() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("ca");
    let loaded = config::load(&common::demo_config_path()).unwrap();
    let a = ca.server();
    let b = ca.server();
    let (cert_file, _) = a.write(dir.path(), "a");
    let (_, key_file) = b.write(dir.path(), "b");
    let mismatched = TlsConfig {
        cert_file,
        key_file,
        reload_interval_ms: 0,
        client_auth: None,
    };
    let err = ServerTls::load(&mismatched, loaded.origin())
        .unwrap_err()
        .to_string();
    assert!(err.contains("do not form a usable pair"), "{err}");
    let missing = TlsConfig {
        cert_file: dir.path().join("nope.crt"),
        ..mismatched
    };
    let err = ServerTls::load(&missing, loaded.origin())
        .unwrap_err()
        .to_string();
    assert!(err.contains("nope.crt"), "{err}");
}

// ---------------------------------------------------------------- revocation

#[tokio::test]
async fn revoked_client_certificates_are_refused_and_revocation_lists_reload() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("server ca");
    let client_ca = Ca::new("client ca");
    let no_crl_ca = Ca::new("ca without a crl");
    let (shop_addr, shop_task) = spawn_shop().await;
    let crl_file = write(dir.path(), "clients.crl", &client_ca.crl(&[1002], 2100));
    let auth = ClientAuthConfig {
        // Two trusted CAs; only one publishes a revocation list.
        ca_file: write(
            dir.path(),
            "two-client-cas.pem",
            &format!("{}\n{}", client_ca.pem(), no_crl_ca.pem()),
        ),
        crl_files: vec![crl_file.clone()],
        ..mtls(dir.path(), &client_ca, ClientAuthMode::Required)
    };
    let p = start_proxy(
        tls_config(dir.path(), &ca.server(), Some(auth.clone())),
        format!("http://{shop_addr}"),
        None,
        vec![shop_task],
    )
    .await;
    let tok = agent_token();
    let good = client_ca.client_numbered(1001);
    let revoked = client_ca.client_numbered(1002);
    let call = |leaf: &Leaf| {
        let cfg = client_config(&ca, Some(leaf), &[]);
        let tok = tok.clone();
        async move { get(p.addr, cfg, "/customers/c-1001", Some(&tok)).await }
    };

    let (status, _) = call(&good).await.expect("a certificate not on the list");
    assert_eq!(status, 200);
    let refused = call(&revoked).await;
    assert!(refused.is_err(), "revoked: {refused:?}");
    let alert = refusal_alert(p.addr, client_config(&ca, Some(&revoked), &[])).await;
    assert!(alert.contains("CertificateRevoked"), "{alert}");
    // No CRL from the issuer: the status is unknown, and that is refused too.
    let unknown = no_crl_ca.client_numbered(1001);
    assert!(call(&unknown).await.is_err());
    let alert = refusal_alert(p.addr, client_config(&ca, Some(&unknown), &[])).await;
    assert!(alert.contains("UnknownCA"), "{alert}");
    // The control: the same bundle without revocation lists trusts it.
    let (shop2, shop2_task) = spawn_shop().await;
    let dir2 = tempfile::tempdir().unwrap();
    let without_crls = ClientAuthConfig {
        crl_files: vec![],
        ..auth.clone()
    };
    let p2 = start_proxy(
        tls_config(dir2.path(), &ca.server(), Some(without_crls)),
        format!("http://{shop2}"),
        None,
        vec![shop2_task],
    )
    .await;
    let cfg = client_config(&ca, Some(&unknown), &[]);
    assert_eq!(
        get(p2.addr, cfg, "/customers/c-1001", Some(&tok))
            .await
            .unwrap()
            .0,
        200
    );

    // A broken list on disk does not replace the working one.
    std::fs::write(&crl_file, "not a crl").unwrap();
    let err = p.tls.reload_if_changed().unwrap_err().to_string();
    assert!(err.contains("clients.crl"), "{err}");
    assert_eq!(call(&good).await.unwrap().0, 200);
    assert!(call(&revoked).await.is_err());

    // A new list revoking `good` as well is picked up with the reload.
    std::fs::write(&crl_file, client_ca.crl(&[1001, 1002], 2100)).unwrap();
    assert!(p.tls.reload_if_changed().unwrap());
    let now_refused = call(&good).await;
    assert!(
        now_refused.is_err(),
        "revoked after reload: {now_refused:?}"
    );
    let alert = refusal_alert(p.addr, client_config(&ca, Some(&good), &[])).await;
    assert!(alert.contains("CertificateRevoked"), "{alert}");
    let (status, _) = call(&client_ca.client_numbered(1003))
        .await
        .expect("still not on the list");
    assert_eq!(status, 200);
}

#[test]
fn bad_revocation_lists_are_start_up_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("server ca");
    let client_ca = Ca::new("client ca");
    let loaded = config::load(&common::demo_config_path()).unwrap();
    let cases = [
        ("garbage.crl", "not a crl".to_string(), "no PEM CRL"),
        ("certificate.crl", client_ca.pem(), "no PEM CRL"),
        (
            "corrupt.crl",
            "-----BEGIN X509 CRL-----\nMAMCAQA=\n-----END X509 CRL-----\n".into(),
            "unreadable CRL",
        ),
        ("expired.crl", client_ca.crl(&[7], 2021), "expired"),
    ];
    for (name, text, reason) in cases {
        let file = write(dir.path(), name, &text);
        let auth = ClientAuthConfig {
            crl_files: vec![file],
            ..mtls(dir.path(), &client_ca, ClientAuthMode::Required)
        };
        let err = ServerTls::load(
            &tls_config(dir.path(), &ca.server(), Some(auth)),
            loaded.origin(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains(name), "{name}: {err}");
        assert!(err.contains(reason), "{name}: {err}");
    }
    let auth = ClientAuthConfig {
        crl_files: vec![dir.path().join("missing.crl")],
        ..mtls(dir.path(), &client_ca, ClientAuthMode::Required)
    };
    let err = ServerTls::load(
        &tls_config(dir.path(), &ca.server(), Some(auth)),
        loaded.origin(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("missing.crl"), "{err}");
    // The control: a current list loads.
    let auth = ClientAuthConfig {
        crl_files: vec![write(dir.path(), "ok.crl", &client_ca.crl(&[7], 2100))],
        ..mtls(dir.path(), &client_ca, ClientAuthMode::Required)
    };
    assert!(
        ServerTls::load(
            &tls_config(dir.path(), &ca.server(), Some(auth)),
            loaded.origin()
        )
        .is_ok()
    );
}
