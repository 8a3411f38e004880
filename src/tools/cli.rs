//! How commands end: what they print goes to stdout, where a reader that
//! went away (`fieldguard matrix | head`) ends the command quietly instead
//! of a panic; why they failed goes to stderr, a config or policy error as
//! a diagnostic with the offending snippet underlined and its help.

use crate::logging::LogFormat;
use fieldguard_core::error::ConfigError;
use std::io::{IsTerminal, Write};

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A config, schema or policy file: rendered with its snippet.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Anything else, said in one line.
    #[error("{0}")]
    Message(String),
    /// stdout was closed by its reader: not a failure to report.
    #[error("stdout closed")]
    StdoutClosed,
}

impl From<String> for CliError {
    fn from(m: String) -> Self {
        Self::Message(m)
    }
}

impl From<&str> for CliError {
    fn from(m: &str) -> Self {
        Self::Message(m.to_string())
    }
}

/// Errors of the tools' own modules end a command with their one-line
/// message, as the strings they replaced did.
macro_rules! said_in_one_line {
    ($($t:ty),* $(,)?) => {$(
        impl From<$t> for CliError {
            fn from(e: $t) -> Self {
                Self::Message(e.to_string())
            }
        }
    )*};
}

said_in_one_line!(
    crate::onboard::draft::DraftError,
    crate::onboard::from_traffic::ObservedError,
    crate::policy_set::keys::KeyError,
    crate::tools::sign::SignError,
    crate::service::ServiceError,
    crate::demo::run::DemoError,
);

/// Writes `text` to stdout. A closed pipe is [`CliError::StdoutClosed`],
/// which ends the command with success and no message, as `head` expects
/// of the commands it reads.
pub fn print(text: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::BrokenPipe => CliError::StdoutClosed,
            _ => CliError::Message(format!("cannot write to stdout: {e}")),
        })
}

/// [`print`] with a newline.
pub fn println(text: &str) -> Result<(), CliError> {
    print(&format!("{text}\n"))
}

/// The text an operator reads for a config error: the diagnostic with the
/// file's snippet when its position and text are known (the text is read
/// again here: errors carry spans, not files), else its one-line form.
/// `color` for a terminal only.
pub fn render_config_error(e: &ConfigError, color: bool) -> String {
    let one_line = format!("fieldguard: {e}");
    let headline = format!("fieldguard: {}", e.headline());
    let Some(text) = e.span().and_then(|_| std::fs::read_to_string(&e.file).ok()) else {
        return one_line;
    };
    let theme = if color {
        miette::GraphicalTheme::unicode()
    } else {
        miette::GraphicalTheme::unicode_nocolor()
    };
    let report = miette::Report::new(Headline(e.clone()))
        .with_source_code(miette::NamedSource::new(e.file.display().to_string(), text));
    let mut rendered = String::new();
    match miette::GraphicalReportHandler::new_themed(theme)
        .with_width(100)
        .render_report(&mut rendered, report.as_ref())
    {
        // The one-line form first: `file:line: reason` is what scripts and
        // editors look for; the snippet and help follow.
        Ok(()) => format!("{headline}\n{rendered}"),
        Err(_) => one_line,
    }
}

/// A config or policy error that stops a command: in text, the
/// diagnostic with the file's snippet and help; in JSON, one object with
/// the one-line form and its position.
pub fn fatal_config(e: &ConfigError) {
    match crate::logging::format() {
        LogFormat::Text => eprintln!("{}", render_config_error(e, stderr_is_terminal())),
        LogFormat::Json => tracing::error!(
            target: crate::logging::NOTICE_TARGET,
            file = %e.file.display(),
            line = e.line,
            column = e.column(),
            help = e.help_text(),
            "{e}"
        ),
    }
}

/// Whether stderr is a terminal (colour only there).
pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// A config error as the report's headline: the reason alone (the one-line
/// form above it has the file and line; the help is printed below it).
#[derive(Debug)]
struct Headline(ConfigError);

impl std::fmt::Display for Headline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.message)
    }
}

impl std::error::Error for Headline {}

impl miette::Diagnostic for Headline {
    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        miette::Diagnostic::help(&self.0)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        miette::Diagnostic::labels(&self.0)
    }
}
