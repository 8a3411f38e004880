//! Errors an operator sees at start-up or on reload: always a file, a line
//! and column when known, a reason, and help when there is something to
//! suggest ("did you mean", the names that would be accepted).
//!
//! A [`ConfigError`] is a `miette` diagnostic: the CLI renders it with the
//! offending snippet underlined (the span is kept, the text is read from the
//! file when rendering); logs and admin endpoints get its one-line form,
//! `file:line: reason (help: …)`.

use std::fmt;
use std::path::{Path, PathBuf};

/// A configuration, schema, policy or key file that cannot be used.
///
/// Operators fix files, so every error names the file and, where the parser
/// reports a position, the 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub message: String,
    /// Column, snippet and help, when known (boxed: errors travel in
    /// `Result`s on every config path, and most carry none of these).
    detail: Option<Box<Detail>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Detail {
    /// 1-based column (in characters) of the offending text.
    column: Option<usize>,
    /// Byte offset and length of the offending text in `file`: the snippet
    /// a rendered report underlines.
    span: Option<(usize, usize)>,
    /// What to do about it: the closest accepted name, or the accepted ones.
    help: Option<String>,
}

/// A position in a file, as the parsers report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub line: usize,
    pub column: Option<usize>,
    pub span: Option<(usize, usize)>,
}

impl Location {
    /// The position of byte `offset` (and `len` bytes) in `text`.
    pub fn of_offset(text: &str, offset: usize, len: usize) -> Self {
        let offset = offset.min(text.len());
        let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
        let column = text
            .get(line_start..offset)
            .map_or(1, |s| s.chars().count() + 1);
        Self {
            line: line_of_offset(text, offset),
            column: Some(column),
            span: Some((offset, len.min(text.len() - offset))),
        }
    }
}

impl Location {
    /// A position the YAML parser reported (line 0 means it did not know).
    pub fn from_yaml(l: &serde_saphyr::Location) -> Option<Self> {
        let line = usize::try_from(l.line()).ok().filter(|&n| n > 0)?;
        let column = usize::try_from(l.column()).ok().filter(|&c| c > 0);
        let span = l.span();
        let span = span
            .byte_offset()
            .zip(span.byte_len())
            .and_then(|(o, n)| Some((usize::try_from(o).ok()?, usize::try_from(n).ok()?)));
        Some(Self { line, column, span })
    }
}

impl ConfigError {
    pub fn new(file: impl AsRef<Path>, line: Option<usize>, message: impl Into<String>) -> Self {
        Self {
            file: file.as_ref().to_path_buf(),
            line,
            message: message.into(),
            detail: None,
        }
    }

    /// Error at a position (line, column and snippet when known).
    pub fn at(file: impl AsRef<Path>, at: Option<Location>, message: impl Into<String>) -> Self {
        let mut e = Self::new(file, at.map(|l| l.line), message);
        if let Some(l) = at {
            let d = e.detail_mut();
            d.column = l.column;
            d.span = l.span;
        }
        e
    }

    fn detail_mut(&mut self) -> &mut Detail {
        self.detail.get_or_insert_with(Box::default)
    }

    /// 1-based column of the offending text, when known.
    pub fn column(&self) -> Option<usize> {
        self.detail.as_ref().and_then(|d| d.column)
    }

    /// Byte offset and length of the offending text in the file.
    pub fn span(&self) -> Option<(usize, usize)> {
        self.detail.as_ref().and_then(|d| d.span)
    }

    /// What the operator may do about it.
    pub fn help_text(&self) -> Option<&str> {
        self.detail.as_ref().and_then(|d| d.help.as_deref())
    }

    /// Error about a whole file (unreadable, missing), with no line.
    pub fn file(file: impl AsRef<Path>, message: impl Into<String>) -> Self {
        Self::new(file, None, message)
    }

    /// The same error with help for the operator.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.detail_mut().help = Some(help.into());
        self
    }

    /// Help only when there is some.
    pub fn with_help_opt(self, help: Option<String>) -> Self {
        match help {
            Some(h) => self.with_help(h),
            None => self,
        }
    }
}

impl ConfigError {
    /// `file:line: reason`, without the help: the first line of a rendered
    /// report (the help follows the snippet there).
    pub fn headline(&self) -> String {
        match self.line {
            Some(line) => format!("{}:{}: {}", self.file.display(), line, self.message),
            None => format!("{}: {}", self.file.display(), self.message),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.headline())?;
        match self.help_text() {
            Some(help) => write!(f, " (help: {help})"),
            None => Ok(()),
        }
    }
}

impl std::error::Error for ConfigError {}

/// The diagnostic view: the reason as the headline (the file, line and
/// column are in the snippet's header), the help below it, the offending
/// text underlined. The source text is attached by whoever renders it.
impl miette::Diagnostic for ConfigError {
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help_text()
            .map(|h| Box::new(h) as Box<dyn fmt::Display + 'a>)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        let (offset, len) = self.span()?;
        Some(Box::new(std::iter::once(miette::LabeledSpan::new(
            Some("here".to_string()),
            offset,
            len,
        ))))
    }
}

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

/// The accepted name closest to `word`, when one is close enough to be a
/// typo of it: edit distance at most a third of the word (at least 1), or a
/// difference only in case, `-` or `_`.
pub fn closest<'a>(word: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let fold = |s: &str| s.to_ascii_lowercase().replace(['-', '_'], "");
    let max = (word.chars().count() / 3).max(1);
    known
        .into_iter()
        .filter(|k| *k != word)
        .map(|k| {
            let d = if fold(k) == fold(word) {
                0
            } else {
                strsim::damerau_levenshtein(word, k)
            };
            (d, k)
        })
        .filter(|(d, _)| *d <= max)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Help for a name that is not among `known`: "did you mean `x`?" when one
/// is close, and the accepted names (at most a dozen, then "…").
pub fn unknown_name_help<'a>(
    word: &str,
    known: impl IntoIterator<Item = &'a str> + Clone,
) -> String {
    let mut names: Vec<&str> = known.clone().into_iter().collect();
    names.sort_unstable();
    names.dedup();
    let list = if names.len() > 12 {
        format!("{}, …", names[..12].join(", "))
    } else {
        names.join(", ")
    };
    match closest(word, known) {
        Some(k) => format!("did you mean `{k}`? known: {list}"),
        None => format!("known: {list}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_finds_typos_not_strangers() {
        let keys = ["response", "request", "records", "members"];
        assert_eq!(closest("respones", keys), Some("response"));
        assert_eq!(closest("Custmer", ["Customer", "Order"]), Some("Customer"));
        assert_eq!(closest("customer_id", ["customer-id"]), Some("customer-id"));
        assert_eq!(closest("zzz", keys), None);
    }

    #[test]
    fn help_lists_the_known_names() {
        assert_eq!(
            unknown_name_help("Custmer", ["Order", "Customer"]),
            "did you mean `Customer`? known: Customer, Order"
        );
        assert_eq!(unknown_name_help("Basket", ["Order"]), "known: Order");
    }

    #[test]
    fn positions_count_characters_on_the_line() {
        let text = "a: 1\nbé: x\n";
        let l = Location::of_offset(text, text.find('x').unwrap(), 1);
        assert_eq!((l.line, l.column), (2, Some(5)));
        assert_eq!(l.span, Some((text.find('x').unwrap(), 1)));
    }
}
