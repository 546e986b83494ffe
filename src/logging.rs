//! The daemon's own logs: human-readable on a terminal, JSON lines otherwise (journald
//! and log shippers read those). Log lines carry counts, sources, files and reasons,
//! never patient identifiers or raw input lines.

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// Sets up logging once. The level comes from `PHIWATCH_LOG` (e.g. `debug`), default info.
pub fn init() {
    let filter = EnvFilter::try_from_env("PHIWATCH_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if std::io::stderr().is_terminal() {
        builder.try_init()
    } else {
        builder.json().flatten_event(true).try_init()
    };
}
