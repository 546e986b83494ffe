//! `stdout`: one line per alert on standard output.
//!
//! Delivery: at most once. A failed write (a closed pipe) is not retried: the alert is
//! counted as `failed` and logged. Patient ids default to `plain`.

use super::{Permanent, Sink};
use anyhow::Result;
use std::io::Write;

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
