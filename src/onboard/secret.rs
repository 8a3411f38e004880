//! The keyed-hash secret a draft names (`redaction.hash_key_file`), made
//! by `onboard` so that the draft validates as written: 32 random bytes
//! from the operating system, base64, in a file only its owner can read.
//!
//! An existing key is never replaced (not even by `--force`): every
//! pseudonym the proxy has given out is derived from it, so a new key
//! would make yesterday's audit trail and exports unjoinable with today's.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Why a new key could not be made.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{}: cannot create: {source}", dir.display())]
    CreateDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: no randomness for a new key: {source}", path.display())]
    NoRandomness {
        path: PathBuf,
        source: getrandom::Error,
    },
    #[error("{}: cannot create the key file: {source}", path.display())]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: cannot write the key: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Random bytes in a new key (256 bits; the catalogue needs 16 or more).
const KEY_BYTES: usize = 32;

/// What [`ensure_key`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFile {
    Written,
    Kept,
}

/// Creates `path` (and its folder) holding a fresh random key, mode 0600,
/// unless a file is already there.
pub fn ensure_key(path: &Path) -> Result<KeyFile, KeyError> {
    if path.exists() {
        return Ok(KeyFile::Kept);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| KeyError::CreateDir {
            dir: dir.to_path_buf(),
            source,
        })?;
    }
    let path_buf = || path.to_path_buf();
    let mut key = [0u8; KEY_BYTES];
    getrandom::fill(&mut key).map_err(|source| KeyError::NoRandomness {
        path: path_buf(),
        source,
    })?;
    let mut file = open_private(path).map_err(|source| KeyError::Create {
        path: path_buf(),
        source,
    })?;
    file.write_all(format!("{}\n", STANDARD.encode(key)).as_bytes())
        .map_err(|source| KeyError::Write {
            path: path_buf(),
            source,
        })?;
    Ok(KeyFile::Written)
}

/// A new file only its owner may read and write (created so, never
/// widened then narrowed: no moment where others could open it).
#[cfg(unix)]
fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_written_once_private_and_random() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a/hash.key"), dir.path().join("b.key"));
        assert_eq!(ensure_key(&a).unwrap(), KeyFile::Written);
        assert_eq!(ensure_key(&b).unwrap(), KeyFile::Written);
        let first = std::fs::read_to_string(&a).unwrap();
        assert_eq!(STANDARD.decode(first.trim()).unwrap().len(), KEY_BYTES);
        assert_ne!(first, std::fs::read_to_string(&b).unwrap());
        assert_eq!(ensure_key(&a).unwrap(), KeyFile::Kept);
        assert_eq!(
            std::fs::read_to_string(&a).unwrap(),
            first,
            "never replaced"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&a).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
