//! Errors an operator sees at start-up or on reload: always a file, a line when
//! one is known, and a reason.

use std::fmt;
use std::path::{Path, PathBuf};

/// A configuration, schema, policy or key file that cannot be used.
///
/// Operators fix files, so every error names the file and, where the parser
/// reports a position, the 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

impl ConfigError {
    pub fn new(file: impl AsRef<Path>, line: Option<usize>, message: impl Into<String>) -> Self {
        Self {
            file: file.as_ref().to_path_buf(),
            line,
            message: message.into(),
        }
    }

    /// Error about a whole file (unreadable, missing), with no line.
    pub fn file(file: impl AsRef<Path>, message: impl Into<String>) -> Self {
        Self::new(file, None, message)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file.display(), line, self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// 1-based line number of a byte offset in `text` (offsets past the end map
/// to the last line).
pub fn line_of_offset(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}
