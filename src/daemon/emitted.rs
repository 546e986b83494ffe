//! Delivery to the sinks and the emitted-alert log.
//!
//! Alerts are sent to every sink, the sinks are asked to flush, and only then are the
//! alerts' ids appended (and fsynced) to the log. After a crash the engine re-applies
//! the input after its last snapshot and produces the same alerts with the same ids; the
//! ids in the log are marked as emitted at start, so they are not written again.

use crate::alert::Alert;
use crate::metrics;
use crate::sink::SinkSet;
use anyhow::{Context, Result};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, Write};
use std::path::Path;
use std::time::Duration;

/// How long a delivery waits for the sinks to flush.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(30);

/// The ids of alerts delivered, appended to a file.
pub struct Emitted {
    file: File,
}

impl Emitted {
    /// Opens (or creates) the log at `path`; returns it with the ids it already holds.
    pub fn open(path: &Path) -> Result<(Emitted, Vec<String>)> {
        let ids = match File::open(path) {
            Ok(f) => std::io::BufReader::new(f)
                .lines()
                .map_while(|l| l.ok())
                .filter(|l| !l.trim().is_empty())
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        Ok((Emitted { file }, ids))
    }

    /// Sends `alerts` to the sinks, waits until they are flushed, then records their ids.
    /// `alerts` is emptied.
    pub fn deliver(&mut self, sinks: &SinkSet, alerts: &mut Vec<Alert>) -> Result<()> {
        if alerts.is_empty() {
            return Ok(());
        }
        let m = metrics::get();
        for a in alerts.iter() {
            m.alerts
                .with_label_values(&[&a.detector, a.severity.as_str()])
                .inc();
            sinks.send(a);
        }
        if let Err(e) = sinks.flush(FLUSH_TIMEOUT) {
            tracing::warn!(error = %e, "sinks did not confirm delivery in time");
        }
        let mut buf = String::new();
        for a in alerts.drain(..) {
            buf.push_str(&a.id);
            buf.push('\n');
        }
        self.file.write_all(buf.as_bytes())?;
        self.file.sync_data()?;
        Ok(())
    }
}

/// Waits for the sinks to flush before a snapshot, so the snapshot never covers input
/// whose alerts are still on their way.
pub fn flush_before_snapshot(sinks: &SinkSet) {
    if let Err(e) = sinks.flush(FLUSH_TIMEOUT) {
        tracing::warn!(error = %e, "sinks did not confirm delivery before the snapshot");
    }
}
