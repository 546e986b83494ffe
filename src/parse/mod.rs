//! Parsers: one input line in, one canonical event (or a reasoned rejection) out.
//!
//! Every parser obeys the same promise: no input, however malformed, panics. A line
//! either becomes an [`Event`], is skipped on purpose (a CSV header, a blank line), or is
//! rejected with a [`Reject`] whose `reason` is a short fixed label (safe as a metric
//! label: it never holds data from the line) and whose `detail` explains it to a human.
//! The raw line goes to the dead-letter file, not into logs, since it may hold patient data.

use crate::config::{Format, SourceConfig};
use crate::event::Event;
use chrono_tz::Tz;

/// Why a line was not turned into an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// Short fixed label, e.g. `bad_json`, `missing_user`, `bad_timestamp`.
    pub reason: &'static str,
    /// One sentence for the dead-letter file. Must not echo patient data from the line.
    pub detail: String,
}

impl Reject {
    pub fn new(reason: &'static str, detail: impl Into<String>) -> Reject {
        Reject {
            reason,
            detail: detail.into(),
        }
    }
}

impl std::fmt::Display for Reject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.reason, self.detail)
    }
}

/// Turns lines of one file into events. A parser instance serves one file, so parsers
/// with per-file state (a CSV header) keep it here.
pub trait Parser: Send {
    /// Parses one line, without its line terminator. `Ok(None)` means the line is
    /// skipped on purpose (blank line, header).
    fn parse(&mut self, line: &str) -> Result<Option<Event>, Reject>;

    /// True when the first line of each file is a header the parser must see before
    /// any other line, even when reading resumes in the middle of the file.
    fn wants_header(&self) -> bool {
        false
    }

    /// Events held back waiting for more lines (multi-record formats such as auditd),
    /// released at end of input or after a quiet period.
    fn flush(&mut self) -> Vec<Result<Event, Reject>> {
        Vec::new()
    }
}

/// Builds the parser for a source. `default_tz` is the engine's time zone, used when the
/// source names none and a timestamp carries no offset.
pub fn build(source: &SourceConfig, default_tz: Tz) -> anyhow::Result<Box<dyn Parser>> {
    let _ = (source, default_tz);
    let format = source
        .format
        .ok_or_else(|| anyhow::anyhow!("source {:?} has no format", source.name))?;
    anyhow::bail!("format {} is not implemented yet", format.as_str())
}

/// The formats this build can parse.
pub fn supported(format: Format) -> bool {
    let _ = format;
    false
}
