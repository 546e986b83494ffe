//! The dead-letter file: every rejected input line, with where it came from and why, so
//! nothing is dropped silently. Rejections are also counted by source and reason. The
//! raw line may hold patient data, which is why it goes to this file (kept with the
//! daemon's state, readable only by its user) and never into logs or metric labels.

use crate::parse::Reject;
use anyhow::{Context, Result};
use chrono::Utc;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

#[derive(Serialize)]
struct Entry<'a> {
    at: String,
    source: &'a str,
    file: &'a str,
    offset: u64,
    reason: &'a str,
    detail: &'a str,
    line: &'a str,
}

/// Rejection counts by (source, reason).
pub type RejectCounts = BTreeMap<(String, String), u64>;

pub struct DeadLetter {
    path: PathBuf,
    out: Option<BufWriter<File>>,
    pub counts: RejectCounts,
}

impl DeadLetter {
    /// Opens lazily: no file is created until something is rejected.
    pub fn new(path: &Path) -> DeadLetter {
        DeadLetter {
            path: path.to_path_buf(),
            out: None,
            counts: RejectCounts::new(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn reject(
        &mut self,
        source: &str,
        file: &str,
        offset: u64,
        line: &str,
        r: &Reject,
    ) -> Result<()> {
        *self
            .counts
            .entry((source.to_string(), r.reason.to_string()))
            .or_default() += 1;
        if self.out.is_none() {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir).with_context(|| {
                    format!("cannot create the dead-letter folder {}", dir.display())
                })?;
            }
            let f = open_private(&self.path).with_context(|| {
                format!(
                    "cannot open the dead-letter file {}; set [dead_letter] path to a writable file",
                    self.path.display()
                )
            })?;
            self.out = Some(BufWriter::new(f));
        }
        let entry = Entry {
            at: crate::event::fmt_ts(&Utc::now()),
            source,
            file,
            offset,
            reason: r.reason,
            detail: &r.detail,
            line,
        };
        let w = self.out.as_mut().expect("opened above");
        serde_json::to_writer(&mut *w, &entry)?;
        w.write_all(b"\n")?;
        Ok(())
    }

    pub fn flush(&mut self) -> Result<()> {
        if let Some(w) = &mut self.out {
            w.flush()?;
            w.get_ref().sync_data()?;
        }
        Ok(())
    }

    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }
}

fn open_private(path: &Path) -> std::io::Result<File> {
    let mut o = OpenOptions::new();
    o.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
}
