//! `file`: appends one line per alert to `path`, rotating by size.
//!
//! Delivery: at least once up to the last fsync. Each line goes out in one `write`; a
//! failed write is cut off again (the file is truncated back to its last whole line) and
//! retried, so the file only ever holds whole lines. The file is fsynced at most
//! `fsync_secs` after a write (`0`: after every alert), on flush and at close.
//!
//! | key | default | |
//! |---|---|---|
//! | `path` | required | relative to the config file's folder; parent folders are created |
//! | `max_bytes` | 104857600 (100 MiB) | rotate before a line would make the file larger; `0`: never rotate |
//! | `max_files` | 5 | rotated files kept: `path.1` (newest) to `path.N`; `0`: keep none |
//! | `fsync_secs` | 1 | longest time between a write and its fsync |
//!
//! After a crash the engine may hand over again alerts it wrote just before (it records an
//! alert as written only after the sinks flushed it). So at start the sink reads the ids in
//! the last `DEDUPE_TAIL` bytes it wrote, across its own rotations (the end of `path`, then
//! of `path.1`, `path.2`, ... until that many bytes are read), and does not write those
//! alerts a second time: with a file sink, a crash at any moment duplicates no alert, even
//! one just after a rotation (with `max_files = 0` the rotated files, and their ids, are
//! gone).
//!
//! New files get mode 0640. When something else moves or deletes the file (logrotate),
//! the sink notices and opens a new one at `path`. Patient ids default to `plain`.

use super::PatientIds;
use super::{Sink, SinkKind, Target};
use crate::format::Formatter;
use anyhow::{Context, Result};
use serde::Deserialize;
use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How much of the end of the file is searched for alerts already written: far more
/// than the few alerts that can be in flight at a crash.
const DEDUPE_TAIL: u64 = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileConfig {
    pub path: PathBuf,
    /// 0: never rotate.
    pub max_bytes: u64,
    pub max_files: u32,
    /// Zero: fsync after every alert.
    pub fsync_every: Duration,
}

impl FileConfig {
    pub fn new(path: impl Into<PathBuf>) -> FileConfig {
        FileConfig {
            path: path.into(),
            max_bytes: 100 * 1024 * 1024,
            max_files: 5,
            fsync_every: Duration::from_secs(1),
        }
    }
}

/// The keys of a `file` sink, as written (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct FileSinkConfig {
    pub path: Option<PathBuf>,
    pub max_bytes: u64,
    pub max_files: u64,
    pub fsync_secs: u64,
}

impl Default for FileSinkConfig {
    fn default() -> Self {
        FileSinkConfig {
            path: None,
            max_bytes: 100 * 1024 * 1024,
            max_files: 5,
            fsync_secs: 1,
        }
    }
}

impl SinkKind for FileSinkConfig {
    const TYPE: &'static str = "file";
    const PATIENT_IDS: PatientIds = PatientIds::Plain;

    fn target(&self, ctx: &super::Context) -> Result<Box<dyn Target>> {
        let at = ctx.at;
        let Some(path) = &self.path else {
            anyhow::bail!("{at}: a file sink needs `path`, e.g. path = \"alerts.ndjson\"");
        };
        let mut c = FileConfig::new(ctx.path(path));
        c.max_bytes = self.max_bytes;
        let n = self.max_files;
        c.max_files = u32::try_from(n)
            .ok()
            .filter(|n| *n <= 1000)
            .with_context(|| format!("{at}: max_files = {n} is too many; use 0 to 1000"))?;
        c.fsync_every = Duration::from_secs(self.fsync_secs);
        Ok(Box::new(c))
    }
}

impl Target for FileConfig {
    fn open(&self, _: &Formatter) -> Result<Box<dyn Sink>> {
        Ok(Box::new(FileSink::open(self.clone())?))
    }

    fn files(&self) -> Vec<PathBuf> {
        vec![self.path.clone()]
    }
}

pub struct FileSink {
    cfg: FileConfig,
    file: Option<File>,
    /// Bytes in the open file.
    size: u64,
    /// (device, inode) of the open file, to notice it being moved away.
    id: (u64, u64),
    dirty: bool,
    last_sync: Instant,
    buf: Vec<u8>,
    /// Ids of alerts found at the end of the file when it was opened.
    written_before: HashSet<String>,
}

impl FileSink {
    /// Opens (creating) the file now, so a wrong path or permission fails at start.
    pub fn open(cfg: FileConfig) -> Result<FileSink> {
        let mut s = FileSink {
            cfg,
            file: None,
            size: 0,
            id: (0, 0),
            dirty: false,
            last_sync: Instant::now(),
            buf: Vec::with_capacity(1024),
            written_before: HashSet::new(),
        };
        s.reopen()?;
        s.written_before = alert_ids_written(&s.cfg);
        Ok(s)
    }

    pub fn path(&self) -> &Path {
        &self.cfg.path
    }

    fn reopen(&mut self) -> Result<()> {
        self.file = None;
        let path = &self.cfg.path;
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).with_context(|| {
                    format!(
                        "cannot create the folder {} of the alert file; create it or fix `path`",
                        dir.display()
                    )
                })?;
            }
        }
        let mut opts = OpenOptions::new();
        opts.append(true).create(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o640);
        }
        let f = opts.open(path).with_context(|| {
            format!(
                "cannot open the alert file {} for appending; check the folder's permissions or fix `path`",
                path.display()
            )
        })?;
        let meta = f.metadata()?;
        self.size = meta.len();
        self.id = file_id(&meta);
        self.file = Some(f);
        Ok(())
    }

    /// True when `path` no longer names the open file (moved, deleted, replaced).
    fn moved_away(&self) -> bool {
        match std::fs::metadata(&self.cfg.path) {
            Ok(m) => file_id(&m) != self.id,
            Err(_) => true,
        }
    }

    fn sync(&mut self) -> Result<()> {
        if let Some(f) = &self.file {
            if self.dirty {
                f.sync_data()
                    .with_context(|| format!("fsync of {} failed", self.cfg.path.display()))?;
            }
        }
        self.dirty = false;
        self.last_sync = Instant::now();
        Ok(())
    }

    fn rotate(&mut self) -> Result<()> {
        self.sync()?;
        self.file = None;
        let path = &self.cfg.path;
        let numbered = |i: u32| numbered(path, i);
        if self.cfg.max_files == 0 {
            std::fs::remove_file(path)
                .with_context(|| format!("cannot remove {} to rotate it", path.display()))?;
        } else {
            for i in (1..self.cfg.max_files).rev() {
                match std::fs::rename(numbered(i), numbered(i + 1)) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(e)
                            .with_context(|| format!("cannot rotate {}", numbered(i).display()))
                    }
                    _ => {}
                }
            }
            std::fs::rename(path, numbered(1))
                .with_context(|| format!("cannot rotate {}", path.display()))?;
        }
        tracing::info!(path = %path.display(), "rotated the alert file");
        self.reopen()
    }
}

/// `path.i`, the `i`th newest rotated file.
fn numbered(path: &Path, i: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{i}"));
    PathBuf::from(s)
}

/// The alert ids in the last `DEDUPE_TAIL` bytes written: the end of the file, then of the
/// rotated files from the newest, until that many bytes are read. A rotated file missing
/// (a crash in the middle of a rotation leaves a gap in the numbers) is skipped.
fn alert_ids_written(cfg: &FileConfig) -> HashSet<String> {
    let mut ids = HashSet::new();
    let mut budget = DEDUPE_TAIL;
    for i in 0..=cfg.max_files {
        if budget == 0 {
            break;
        }
        let path = if i == 0 {
            cfg.path.clone()
        } else {
            numbered(&cfg.path, i)
        };
        budget = budget.saturating_sub(alert_ids_in_tail(&path, budget, &mut ids));
    }
    ids
}

/// Adds the alert ids (`pw-` and 24 hex digits, in every output format) in the last `max`
/// bytes of the file to `ids`; returns how many bytes were read.
fn alert_ids_in_tail(path: &Path, max: u64, ids: &mut HashSet<String>) -> u64 {
    let mut tail = Vec::new();
    if let Ok(mut f) = File::open(path) {
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        if f.seek(SeekFrom::Start(len.saturating_sub(max))).is_ok() {
            let _ = f.take(max).read_to_end(&mut tail);
        }
    }
    let text = String::from_utf8_lossy(&tail);
    let mut rest = text.as_ref();
    while let Some(i) = rest.find("pw-") {
        let cand = &rest[i + 3..];
        let hex = cand.bytes().take_while(|b| b.is_ascii_hexdigit()).count();
        if hex == 24 {
            ids.insert(format!("pw-{}", &cand[..24]));
        }
        rest = &cand[hex..];
    }
    tail.len() as u64
}

fn file_id(m: &std::fs::Metadata) -> (u64, u64) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        (m.dev(), m.ino())
    }
    #[cfg(not(unix))]
    {
        let _ = m;
        (0, 0)
    }
}

impl Sink for FileSink {
    fn send_alert(&mut self, alert: &crate::alert::Alert, line: &str) -> Result<()> {
        if self.written_before.remove(&alert.id) {
            tracing::info!(id = %alert.id, path = %self.cfg.path.display(), "alert already in the file (written just before a restart); not written again");
            return Ok(());
        }
        self.send(line)
    }

    fn send(&mut self, line: &str) -> Result<()> {
        if self.file.is_none() || self.moved_away() {
            if self.file.is_some() {
                tracing::info!(path = %self.cfg.path.display(), "alert file was moved away; opening a new one");
                self.sync()?;
            }
            self.reopen()?;
        }
        let len = line.len() as u64 + 1;
        if self.cfg.max_bytes > 0 && self.size > 0 && self.size + len > self.cfg.max_bytes {
            self.rotate()?;
        }
        self.buf.clear();
        self.buf.extend_from_slice(line.as_bytes());
        self.buf.push(b'\n');
        let f = self.file.as_mut().expect("file is open");
        if let Err(e) = f.write_all(&self.buf) {
            // Cut off a partial line so that the retry writes a whole one.
            let _ = f.set_len(self.size);
            self.file = None;
            return Err(e).with_context(|| format!("cannot write to {}", self.cfg.path.display()));
        }
        self.size += len;
        self.dirty = true;
        if self.last_sync.elapsed() >= self.cfg.fsync_every {
            self.sync()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.sync()
    }

    fn idle(&mut self) -> Result<()> {
        if self.dirty && self.last_sync.elapsed() >= self.cfg.fsync_every {
            self.sync()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Alerts written just before the sink's own rotation are in `path.1`: a restart
    /// still knows them.
    #[test]
    fn ids_written_are_found_across_rotations() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = FileConfig::new(dir.path().join("alerts.ndjson"));
        cfg.max_files = 3;
        let id = |n: u32| format!("pw-{n:024x}");
        std::fs::write(&cfg.path, format!("{{\"id\":\"{}\"}}\n", id(3))).unwrap();
        std::fs::write(
            numbered(&cfg.path, 1),
            format!("{{\"id\":\"{}\"}}\n", id(2)),
        )
        .unwrap();
        // `.2` is missing (a crash in the middle of a rotation); `.3` is still read.
        std::fs::write(
            numbered(&cfg.path, 3),
            format!("{{\"id\":\"{}\"}}\n", id(1)),
        )
        .unwrap();
        let ids = alert_ids_written(&cfg);
        assert_eq!(ids, HashSet::from([id(1), id(2), id(3)]));
    }

    /// Only the last `DEDUPE_TAIL` bytes written count, across files.
    #[test]
    fn the_search_stops_after_dedupe_tail_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = FileConfig::new(dir.path().join("alerts.ndjson"));
        cfg.max_files = 2;
        let line = format!("{{\"id\":\"pw-{:024x}\"}}\n", 7);
        let big = "x".repeat(DEDUPE_TAIL as usize) + "\n";
        std::fs::write(&cfg.path, &big).unwrap();
        std::fs::write(numbered(&cfg.path, 1), &line).unwrap();
        assert!(alert_ids_written(&cfg).is_empty());
    }
}
