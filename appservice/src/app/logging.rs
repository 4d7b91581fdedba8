//! Log output with `tracing`: text or JSON lines, filtered by the configured level or
//! `RUST_LOG`. Nothing at info level or above carries tokens, message bodies or names.

use tracing_subscriber::{fmt, EnvFilter};

use crate::app::config::LogFormat;
use crate::app::config::LoggingConfig;

/// Installs the global subscriber. Calling it twice is harmless.
pub fn init(cfg: &LoggingConfig) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cfg.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a person at a terminal, never into a log file or journal.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let _ = match cfg.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
