//! The daemon's own logs: human-readable on a terminal, JSON lines otherwise (journald
//! and log shippers read those). Log lines carry counts, sources, files and reasons,
//! never patient identifiers or raw input lines.
//!
//! Under systemd, when standard error is the journal (`JOURNAL_STREAM` names the device
//! and inode of our stderr, see systemd.exec(5)), every line starts with its syslog
//! priority the way sd-daemon(3) describes (`<3>` error, `<4>` warning, `<6>` info, `<7>`
//! debug). journald strips the prefix and files the line at that priority, so
//! `journalctl -u phiwatch -p warning` shows the warnings and errors.

use std::io::{IsTerminal, Write};
use std::sync::OnceLock;
use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// Sets up logging once. The level comes from `PHIWATCH_LOG` (e.g. `debug`), default info.
pub fn init() {
    let filter = EnvFilter::try_from_env("PHIWATCH_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(Stderr);
    let _ = if std::io::stderr().is_terminal() {
        builder.try_init()
    } else {
        builder.json().flatten_event(true).try_init()
    };
}

/// Whether standard error is connected to the journal (checked once).
pub fn stderr_is_journal() -> bool {
    static JOURNAL: OnceLock<bool> = OnceLock::new();
    *JOURNAL.get_or_init(|| {
        std::env::var("JOURNAL_STREAM")
            .ok()
            .is_some_and(|v| journal_stream_matches(&v, 2))
    })
}

/// `JOURNAL_STREAM` is `DEVICE:INODE` of the stream journald gave the service; it applies
/// only while `fd` is still that stream (not when stderr was redirected since).
fn journal_stream_matches(value: &str, fd: i32) -> bool {
    let Some((dev, ino)) = value.split_once(':') else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.trim().parse::<u64>(), ino.trim().parse::<u64>()) else {
        return false;
    };
    // SAFETY: fstat on a file descriptor number fills `st`; an invalid fd returns -1.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return false;
    }
    st.st_dev as u64 == dev && st.st_ino as u64 == ino
}

/// The sd-daemon(3) priority prefix of a level.
pub fn priority_prefix(level: Level) -> &'static str {
    match level {
        Level::ERROR => "<3>",
        Level::WARN => "<4>",
        Level::INFO => "<6>",
        Level::DEBUG | Level::TRACE => "<7>",
    }
}

/// Writes `line` (one message, may lack the final newline) to standard error, with the
/// priority prefix when stderr is the journal. For the few messages written outside
/// tracing (a command's final error).
pub fn stderr_line(level: Level, line: &str) {
    let mut err = std::io::stderr().lock();
    let prefix = if stderr_is_journal() {
        priority_prefix(level)
    } else {
        ""
    };
    let _ = writeln!(err, "{prefix}{line}");
}

/// tracing's writer: standard error, one event a `write`, prefixed under the journal.
struct Stderr;

/// One event's bytes, written to stderr in one piece when dropped.
pub struct EventWriter {
    prefix: &'static str,
    buf: Vec<u8>,
}

impl Write for EventWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let mut err = std::io::stderr().lock();
        let mut out = Vec::with_capacity(self.prefix.len() + self.buf.len());
        // A multi-line event gets the prefix on every line: journald reads line by line.
        for line in self.buf.split_inclusive(|&c| c == b'\n') {
            out.extend_from_slice(self.prefix.as_bytes());
            out.extend_from_slice(line);
        }
        let _ = err.write_all(&out);
    }
}

impl<'a> MakeWriter<'a> for Stderr {
    type Writer = EventWriter;
    fn make_writer(&'a self) -> EventWriter {
        EventWriter {
            prefix: if stderr_is_journal() { "<6>" } else { "" },
            buf: Vec::new(),
        }
    }
    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> EventWriter {
        EventWriter {
            prefix: if stderr_is_journal() {
                priority_prefix(*meta.level())
            } else {
                ""
            },
            buf: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::io::AsRawFd;

    #[test]
    fn journal_stream_must_name_the_descriptor() {
        let f = tempfile::tempfile().unwrap();
        let m = f.metadata().unwrap();
        let fd = f.as_raw_fd();
        assert!(journal_stream_matches(
            &format!("{}:{}", m.dev(), m.ino()),
            fd
        ));
        assert!(!journal_stream_matches(
            &format!("{}:{}", m.dev(), m.ino() + 1),
            fd
        ));
        assert!(!journal_stream_matches("garbage", fd));
        assert!(!journal_stream_matches("1:2", -1));
    }

    #[test]
    fn levels_map_to_syslog_priorities() {
        assert_eq!(priority_prefix(Level::ERROR), "<3>");
        assert_eq!(priority_prefix(Level::WARN), "<4>");
        assert_eq!(priority_prefix(Level::INFO), "<6>");
        assert_eq!(priority_prefix(Level::DEBUG), "<7>");
    }
}
