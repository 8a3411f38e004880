//! The process log on stderr: its format, and start-up notices.
//!
//! Why a module: in a pod, stderr goes to a log pipeline, not a terminal.
//! There, colour codes are noise inside every line, and one JSON object per
//! line is what collectors parse without a regex. So the format is chosen
//! by the operator (`--log-format`, or `FIELDGUARD_LOG_FORMAT` for
//! manifests), colours are used only when stderr really is a terminal, and
//! the few lines `fieldguard run` prints itself (addresses bound, shutting
//! down) go through the same format: a JSON log holds no plain-text line.

/// Per-request warnings logged once, then summarised (in the core crate:
/// the decisions log them too).
use std::io::IsTerminal;
use std::sync::OnceLock;

/// Environment variable naming the log format (`text` or `json`); the
/// `--log-format` option wins over it.
pub const FORMAT_ENV: &str = "FIELDGUARD_LOG_FORMAT";
/// Environment variable holding the log filter (`warn` by default).
pub const FILTER_ENV: &str = "FIELDGUARD_LOG";
/// Target of [`notice`] events: enabled at `info` whatever the filter's
/// default level, so the bound addresses are always logged.
pub(crate) const NOTICE_TARGET: &str = "fieldguard::notice";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines; coloured only on a terminal.
    Text,
    /// One JSON object per line (timestamp, level, target, fields).
    Json,
}

impl LogFormat {
    /// The format from `FIELDGUARD_LOG_FORMAT`: unset or empty means text;
    /// any other value than `text` or `json` is an error (a typo must not
    /// silently give an operator a format their pipeline cannot parse).
    pub fn from_env_value(value: Option<&str>) -> Result<Self, BadLogFormat> {
        match value.map(str::trim) {
            None | Some("") => Ok(Self::Text),
            Some(v) if v.eq_ignore_ascii_case("text") => Ok(Self::Text),
            Some(v) if v.eq_ignore_ascii_case("json") => Ok(Self::Json),
            Some(v) => Err(BadLogFormat(v.to_string())),
        }
    }
}

/// A `FIELDGUARD_LOG_FORMAT` that names no format (the value given).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{FORMAT_ENV}={0:?}: expected `text` or `json`")]
pub struct BadLogFormat(pub String);

static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// Installs the global subscriber writing to stderr in `format`, filtered
/// by `FIELDGUARD_LOG` (default `warn`). Call once, first thing.
pub fn init(format: LogFormat) {
    let _ = FORMAT.set(format);
    let filter = tracing_subscriber::EnvFilter::try_from_env(FILTER_ENV)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let filter = match format!("{NOTICE_TARGET}=info").parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().with_ansi(false).init(),
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}

/// The format [`init`] installed (text before it ran).
pub fn format() -> LogFormat {
    FORMAT.get().copied().unwrap_or(LogFormat::Text)
}

/// A line for the operator that is not a diagnostic (addresses bound,
/// shutting down): plain on stderr in text format, an `info` event in
/// JSON format so the log stays one object per line.
pub fn notice(message: std::fmt::Arguments<'_>) {
    match format() {
        LogFormat::Text => eprintln!("{message}"),
        LogFormat::Json => tracing::info!(target: NOTICE_TARGET, "{message}"),
    }
}

/// A command's final error: `fieldguard: …` on stderr in text format, an
/// `error` event in JSON format.
pub fn fatal(message: impl std::fmt::Display) {
    match format() {
        LogFormat::Text => eprintln!("fieldguard: {message}"),
        LogFormat::Json => tracing::error!(target: NOTICE_TARGET, "{message}"),
    }
}

/// Flushes due summaries of repeated warnings every second, for as long as
/// the runtime runs (a burst of warnings that stops is still told).
pub fn spawn_repeated_flusher() -> tokio::task::JoinHandle<()> {
    tokio::spawn(async {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            fieldguard_core::repeated::flush();
        }
    })
}

#[cfg(test)]
mod tests {
    use super::LogFormat;

    #[test]
    fn format_from_environment() {
        assert_eq!(LogFormat::from_env_value(None), Ok(LogFormat::Text));
        assert_eq!(LogFormat::from_env_value(Some(" ")), Ok(LogFormat::Text));
        assert_eq!(LogFormat::from_env_value(Some("json")), Ok(LogFormat::Json));
        assert_eq!(LogFormat::from_env_value(Some("JSON")), Ok(LogFormat::Json));
        assert_eq!(LogFormat::from_env_value(Some("text")), Ok(LogFormat::Text));
        for bad in ["yaml", "logfmt", "1"] {
            assert!(LogFormat::from_env_value(Some(bad)).is_err(), "{bad}");
        }
    }
}
