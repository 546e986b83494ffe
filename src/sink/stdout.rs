//! `stdout`: one line per alert on standard output.
//!
//! Delivery: at most once. A failed write (a closed pipe) is not retried: the alert is
//! counted as `failed` and logged. Patient ids default to `plain`.

use super::PatientIds;
use super::{Permanent, Sink, SinkKind, Target};
use crate::format::Formatter;
use anyhow::Result;
use serde::Deserialize;
use std::io::Write;

/// A `stdout` sink takes no keys of its own.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct StdoutSinkConfig {}

impl SinkKind for StdoutSinkConfig {
    const TYPE: &'static str = "stdout";
    const PATIENT_IDS: PatientIds = PatientIds::Plain;

    fn target(&self, _: &super::Context) -> Result<Box<dyn Target>> {
        Ok(Box::new(StdoutTarget))
    }
}

/// Opens a [`StdoutSink`].
#[derive(Debug, Clone, Copy)]
pub struct StdoutTarget;

impl Target for StdoutTarget {
    fn open(&self, _: &Formatter) -> Result<Box<dyn Sink>> {
        Ok(Box::new(StdoutSink::new()))
    }
}

#[derive(Debug, Default)]
pub struct StdoutSink {
    buf: Vec<u8>,
}

impl StdoutSink {
    pub fn new() -> StdoutSink {
        StdoutSink::default()
    }
}

impl Sink for StdoutSink {
    fn send(&mut self, line: &str) -> Result<()> {
        self.buf.clear();
        self.buf.extend_from_slice(line.as_bytes());
        self.buf.push(b'\n');
        let mut out = std::io::stdout().lock();
        out.write_all(&self.buf)
            .and_then(|_| out.flush())
            .map_err(|e| Permanent(format!("cannot write to standard output: {e}")).into())
    }

    fn flush(&mut self) -> Result<()> {
        std::io::stdout().lock().flush()?;
        Ok(())
    }
}
