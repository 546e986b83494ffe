//! Handing alerts to the sinks, and the emitted-alert log.
//!
//! Alerts are put on every sink's disk queue (never waiting for a sink, see
//! [`crate::sink::queue`]), the disk queues are fsynced, and only then are the alerts' ids
//! appended (and fsynced) to the log: an id in the log means "on every sink's disk queue",
//! and each sink records on its own what it delivered (`sinks/<sink>.acked`). After a
//! crash the engine re-applies the input after its last snapshot and produces the same
//! alerts with the same ids; the ids in the log are marked as emitted at start, so they
//! are not produced again, while each sink delivers from its disk queue what it had not
//! acknowledged. An alert produced again that a sink's disk queue holds already is not
//! queued for that sink a second time.

use crate::alert::Alert;
use crate::metrics;
use crate::sink::SinkSet;
use anyhow::{Context, Result};
use std::fs::File;
use std::io::{BufRead, Write};
use std::path::Path;

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
        let file = crate::durable::open_append_private(path)?;
        Ok((Emitted { file }, ids))
    }

    /// Puts `alerts` on the sinks' disk queues (without waiting for any sink), then records
    /// their ids. `alerts` is emptied.
    pub fn deliver(&mut self, sinks: &SinkSet, alerts: &mut Vec<Alert>) -> Result<()> {
        if alerts.is_empty() {
            return Ok(());
        }
        // What every sink acknowledged is in this log already: its disk queue can go.
        sinks.compact();
        let m = metrics::get();
        for a in alerts.iter() {
            m.alerts
                .with_label_values(&[&a.detector, a.severity.as_str()])
                .inc();
            sinks.send(a);
        }
        sinks.sync()?;
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
