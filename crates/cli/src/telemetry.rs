//! Logs go to stderr, as text or JSON. `CHARTER_LOG` (or `RUST_LOG`) sets the
//! filter; the default is `info` for `serve` and `warn` otherwise.

use tracing_subscriber::EnvFilter;

use crate::args::{Command, LogFormat};
use crate::config::Settings;

/// Installs the global subscriber.
pub fn init(settings: &Settings, command: &Command) {
    let default = if matches!(command, Command::Serve(_)) { "info" } else { "warn" };
    let filter = std::env::var("CHARTER_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let _ = match settings.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
