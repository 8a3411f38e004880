//! The listener's TLS: a [`rustls::ServerConfig`] built from the configured
//! files and swapped atomically when they change. Each handshake takes the
//! config current at that moment, so renewed certificates apply to new
//! connections while open ones carry on with what they negotiated.

use super::config::{ClientAuthMode, TlsConfig};
use super::error::TlsError;
use super::identity::CertIdentities;
use super::{VERSIONS, crl, pem, provider};
use crate::identity::Principal;
use arc_swap::ArcSwap;
use fieldguard_core::config::Origin;
use fieldguard_core::error::ConfigError;
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio_rustls::TlsAcceptor;

/// What the proxy knows about a TLS connection; put into every request's
/// extensions so the handler can tell `https` and the certificate caller.
#[derive(Debug, Clone)]
pub struct TlsConnection {
    /// The service principal the client certificate names, if any.
    pub principal: Option<Arc<Principal>>,
    /// Whether the client presented a (verified) certificate at all.
    pub client_certificate: bool,
}

/// Resolved paths of the files the TLS config is built from.
#[derive(Debug, Clone)]
struct Files {
    cert: PathBuf,
    key: PathBuf,
    client_auth: Option<ClientAuthFiles>,
}

/// `tls.client_auth`: the CA bundle, the mode and the revocation lists.
#[derive(Debug, Clone)]
struct ClientAuthFiles {
    ca: PathBuf,
    mode: ClientAuthMode,
    crls: Vec<PathBuf>,
}

impl Files {
    /// Every file the config is built from: a change to any, CRLs
    /// included, rebuilds it.
    fn all(&self) -> impl Iterator<Item = &PathBuf> {
        let auth = self.client_auth.iter();
        [&self.cert, &self.key]
            .into_iter()
            .chain(auth.clone().map(|a| &a.ca))
            .chain(auth.flat_map(|a| a.crls.iter()))
    }

    /// Digest of every file's bytes: changes whenever any content changes,
    /// whatever the file system's mtime granularity or a symlink swap (as
    /// Kubernetes does for mounted secrets).
    fn fingerprint(&self) -> Result<[u8; 32], TlsError> {
        let mut h = Sha256::new();
        for p in self.all() {
            let bytes = pem::read(p)?;
            h.update((bytes.len() as u64).to_le_bytes());
            h.update(&bytes);
        }
        Ok(h.finalize().into())
    }

    fn build(&self) -> Result<ServerConfig, TlsError> {
        let certs = pem::certs(&self.cert)?;
        let key = pem::key(&self.key)?;
        let builder = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(VERSIONS)
            .map_err(|e| TlsError::Versions(e.to_string()))?;
        let builder = match &self.client_auth {
            None => builder.with_no_client_auth(),
            Some(ClientAuthFiles { ca, mode, crls }) => {
                let roots = Arc::new(pem::roots(ca)?);
                let crls = crl::load(crls, &roots)?;
                let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider());
                let verifier = match mode {
                    ClientAuthMode::Required => verifier,
                    ClientAuthMode::Optional => verifier.allow_unauthenticated(),
                };
                // With CRLs: the whole chain is checked, and an unknown
                // (no CRL from the issuer) or stale (past nextUpdate)
                // status is refused, as OpenSSL-based proxies do.
                let verifier = if crls.is_empty() {
                    verifier
                } else {
                    verifier.with_crls(crls).enforce_revocation_expiration()
                };
                let verifier = verifier.build().map_err(|e| TlsError::Unusable {
                    path: ca.clone(),
                    what: "client CA",
                    reason: e.to_string(),
                })?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder
            .with_single_cert(certs, key)
            .map_err(|e| TlsError::Pair {
                cert: self.cert.clone(),
                key: self.key.clone(),
                reason: e.to_string(),
            })?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }
}

/// The listener's current TLS config and the client-certificate principals.
pub struct ServerTls {
    current: ArcSwap<ServerConfig>,
    files: Files,
    fingerprint: Mutex<[u8; 32]>,
    reload_interval: Duration,
    pub identities: CertIdentities,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Builds the TLS config from `tls:`; any unreadable or mismatched file
    /// is a start-up error naming the file.
    pub fn load(cfg: &TlsConfig, loaded: Origin<'_>) -> Result<Arc<Self>, ConfigError> {
        let err = |m: TlsError| ConfigError::file(loaded.file, format!("tls: {m}"));
        let files = Files {
            cert: loaded.resolve(&cfg.cert_file),
            key: loaded.resolve(&cfg.key_file),
            client_auth: cfg.client_auth.as_ref().map(|c| ClientAuthFiles {
                ca: loaded.resolve(&c.ca_file),
                mode: c.mode,
                crls: c.crl_files.iter().map(|p| loaded.resolve(p)).collect(),
            }),
        };
        let identities = match &cfg.client_auth {
            Some(c) => CertIdentities::new(&c.principals).map_err(err)?,
            None => CertIdentities::default(),
        };
        let fingerprint = files.fingerprint().map_err(err)?;
        let config = files.build().map_err(err)?;
        Ok(Arc::new(Self {
            current: ArcSwap::from_pointee(config),
            files,
            fingerprint: Mutex::new(fingerprint),
            reload_interval: Duration::from_millis(cfg.reload_interval_ms),
            identities,
        }))
    }

    /// An acceptor over the config current now.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.load_full())
    }

    /// Rebuilds the config if any file changed. `Ok(true)`: swapped in.
    /// On error the old config stays in use (a half-written renewal must
    /// not take the listener down) and the next check tries again.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let now = self.files.fingerprint()?;
        let mut last = self.fingerprint.lock().map_err(|_| TlsError::Poisoned)?;
        if *last == now {
            return Ok(false);
        }
        let config = self.files.build()?;
        self.current.store(Arc::new(config));
        *last = now;
        Ok(true)
    }

    /// Checks the files every `reload_interval_ms` until the listener's
    /// TLS state is dropped. Does nothing when the interval is 0.
    pub fn spawn_reloader(self: &Arc<Self>) {
        if self.reload_interval.is_zero() {
            return;
        }
        let weak: Weak<Self> = Arc::downgrade(self);
        let every = self.reload_interval;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(tls) = weak.upgrade() else { return };
                match tls.reload_if_changed() {
                    Ok(true) => tracing::info!("TLS certificate files changed: reloaded"),
                    Ok(false) => {}
                    Err(e) => {
                        tracing::error!("TLS reload failed, keeping the previous certificate: {e}")
                    }
                }
            }
        });
    }

    /// What requests on a finished handshake learn about it.
    pub fn connection_info(&self, conn: &rustls::ServerConnection) -> TlsConnection {
        let leaf = conn.peer_certificates().and_then(|c| c.first());
        TlsConnection {
            principal: leaf
                .and_then(|c| self.identities.principal(c.as_ref()))
                .map(Arc::new),
            client_certificate: leaf.is_some(),
        }
    }
}
