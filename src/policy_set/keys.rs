//! Ed25519 keys for policy set signatures, through aws-lc-rs: the crypto
//! library rustls and jsonwebtoken already build here (no second
//! implementation to audit or update), maintained by AWS with a FIPS
//! lineage. Private keys are PKCS#8 PEM (what `openssl genpkey -algorithm
//! ed25519` writes), public keys SubjectPublicKeyInfo PEM (`openssl pkey
//! -pubout`). A key is named by its id: the first 8 bytes (hex) of the
//! SHA-256 of its raw 32-byte public key.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{PrivatePkcs8KeyDer, SubjectPublicKeyInfoDer};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): the
/// algorithm id 1.3.101.112 and a 32-byte bit string follow.
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// A key that can sign.
pub struct SigningKey {
    pair: Ed25519KeyPair,
    pub id: String,
}

/// A key that verifies, and the file it came from (for messages).
#[derive(Debug, Clone)]
pub struct VerifyKey {
    raw: [u8; 32],
    pub id: String,
    pub file: PathBuf,
}

/// Why a key cannot be read, made or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{}: cannot read key: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{}: not a PKCS#8 PEM private key ({source}); make one with `fieldguard sign --generate-key`",
        path.display()
    )]
    NotPrivatePem {
        path: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error("{}: not an Ed25519 private key: {source}", path.display())]
    NotEd25519Private {
        path: PathBuf,
        source: aws_lc_rs::error::KeyRejected,
    },
    #[error(
        "{}: not a PEM public key ({source}); expected the `.pub` file `fieldguard sign --generate-key` writes",
        path.display()
    )]
    NotPublicPem {
        path: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error("{}: not an Ed25519 public key", path.display())]
    NotEd25519Public { path: PathBuf },
    #[error("cannot generate a key")]
    Generate,
    #[error("cannot encode the private key")]
    EncodePrivate,
    #[error("cannot encode the public key")]
    EncodePublic,
    /// A new key file (never overwritten: an existing one is an error).
    #[error("{}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The id of a raw public key.
pub fn key_id(raw: &[u8]) -> String {
    hex::encode(&Sha256::digest(raw)[..8])
}

fn read(path: &Path) -> Result<Vec<u8>, KeyError> {
    std::fs::read(path).map_err(|source| KeyError::Read {
        path: path.to_path_buf(),
        source,
    })
}

impl SigningKey {
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let bytes = read(path)?;
        let der = PrivatePkcs8KeyDer::from_pem_slice(&bytes).map_err(|source| {
            KeyError::NotPrivatePem {
                path: path.to_path_buf(),
                source,
            }
        })?;
        let pair = Ed25519KeyPair::from_pkcs8(der.secret_pkcs8_der()).map_err(|source| {
            KeyError::NotEd25519Private {
                path: path.to_path_buf(),
                source,
            }
        })?;
        let id = key_id(pair.public_key().as_ref());
        Ok(Self { pair, id })
    }

    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.pair.sign(message).as_ref().to_vec()
    }
}

impl VerifyKey {
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let bytes = read(path)?;
        let der = SubjectPublicKeyInfoDer::from_pem_slice(&bytes).map_err(|source| {
            KeyError::NotPublicPem {
                path: path.to_path_buf(),
                source,
            }
        })?;
        let raw = der
            .as_ref()
            .strip_prefix(&SPKI_PREFIX[..])
            .and_then(|r| <[u8; 32]>::try_from(r).ok())
            .ok_or_else(|| KeyError::NotEd25519Public {
                path: path.to_path_buf(),
            })?;
        Ok(Self {
            id: key_id(&raw),
            raw,
            file: path.to_path_buf(),
        })
    }

    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.raw)
            .verify(message, signature)
            .is_ok()
    }
}

/// A new key pair as PEM texts: (private PKCS#8, public SPKI), and its id.
pub fn generate() -> Result<(String, String, String), KeyError> {
    let pair = Ed25519KeyPair::generate().map_err(|_| KeyError::Generate)?;
    let pkcs8 = pair.to_pkcs8().map_err(|_| KeyError::EncodePrivate)?;
    let spki = pair
        .public_key()
        .as_der()
        .map_err(|_| KeyError::EncodePublic)?;
    Ok((
        pem("PRIVATE KEY", pkcs8.as_ref()),
        pem("PUBLIC KEY", spki.as_ref()),
        key_id(pair.public_key().as_ref()),
    ))
}

fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_sign_and_verify_and_ids_match() {
        let dir = tempfile::tempdir().unwrap();
        let (private, public, id) = generate().unwrap();
        std::fs::write(dir.path().join("k"), private).unwrap();
        std::fs::write(dir.path().join("k.pub"), public).unwrap();
        let s = SigningKey::load(&dir.path().join("k")).unwrap();
        let v = VerifyKey::load(&dir.path().join("k.pub")).unwrap();
        assert_eq!((s.id.as_str(), v.id.as_str()), (id.as_str(), id.as_str()));
        let sig = s.sign(b"message");
        assert!(v.verifies(b"message", &sig));
        assert!(!v.verifies(b"messagf", &sig));
    }
}
