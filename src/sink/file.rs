//! `file`: appends one line per alert to `path`, rotating by date (the alert archive) or
//! by size.
//!
//! Delivery: at least once up to the last fsync. Each line goes out in one `write`; a
//! failed write is cut off again (the file is truncated back to its last whole line) and
//! retried, so the file only ever holds whole lines. The file is fsynced at most
//! `fsync_secs` after a write (`0`: after every alert), on flush and at close.
//!
//! | key | default | |
//! |---|---|---|
//! | `path` | required | relative to the config file's folder; parent folders are created |
//! | `rotate` | `daily`, or `size` when `max_files` is set | `daily`: the archive below; `size`: numbered files |
//! | `max_bytes` | 104857600 (100 MiB) | rotate before a line would make the file larger; `0`: never by size |
//! | `max_files` | 5 | `size` only: rotated files kept, `path.1` (newest) to `path.N`; `0`: keep none |
//! | `retention_days` | 2190 (six years, HIPAA's retention for audit records) | `daily` only: archives older are deleted; `0`: keep forever |
//! | `compress` | true | `daily` only: gzip each archive |
//! | `fsync_secs` | 1 | longest time between a write and its fsync |
//!
//! The archive (`rotate = "daily"`): when the UTC date changes (or the file would pass
//! `max_bytes`), `path` is renamed `path.YYYY-MM-DD.N` (its date, N from 1), a new `path`
//! is opened, and the renamed file is compressed to `path.YYYY-MM-DD.N.gz` (written to a
//! temporary name, fsynced, renamed, then the plain file removed) with its SHA-256 in
//! `path.YYYY-MM-DD.N.gz.sha256` (`sha256sum -c` format). A crash in between leaves the
//! plain file, compressed at the next start. Archives dated more than `retention_days`
//! ago are deleted at rotation and at start; nothing else deletes them (the package's
//! purge keeps `/var/log/phiwatch`).
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
use chrono::NaiveDate;
use serde::Deserialize;
use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How much of the end of the file is searched for alerts already written: far more
/// than the few alerts that can be in flight at a crash.
const DEDUPE_TAIL: u64 = 1 << 20;

/// How the file sink rotates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Rotate {
    /// Dated, compressed archives kept `retention_days`.
    Daily,
    /// Numbered files `path.1` .. `path.max_files`.
    Size,
}

/// HIPAA keeps audit documentation six years (45 CFR 164.316(b)(2)).
pub const DEFAULT_RETENTION_DAYS: u32 = 6 * 365;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileConfig {
    pub path: PathBuf,
    /// 0: never rotate by size.
    pub max_bytes: u64,
    pub max_files: u32,
    /// Zero: fsync after every alert.
    pub fsync_every: Duration,
    pub rotate: Rotate,
    /// `Daily`: archives older than this many days are deleted; 0 keeps them forever.
    pub retention_days: u32,
    /// `Daily`: gzip the archives.
    pub compress: bool,
}

impl FileConfig {
    /// Size rotation, as before there was an archive; the `[[sinks]]` entry defaults to
    /// `daily` (see the module doc).
    pub fn new(path: impl Into<PathBuf>) -> FileConfig {
        FileConfig {
            path: path.into(),
            max_bytes: 100 * 1024 * 1024,
            max_files: 5,
            fsync_every: Duration::from_secs(1),
            rotate: Rotate::Size,
            retention_days: DEFAULT_RETENTION_DAYS,
            compress: true,
        }
    }
}

/// The keys of a `file` sink, as written (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct FileSinkConfig {
    pub path: Option<PathBuf>,
    pub max_bytes: u64,
    /// Absent: 5 (and `rotate` defaults to `daily`).
    pub max_files: Option<u64>,
    pub fsync_secs: u64,
    pub rotate: Option<Rotate>,
    pub retention_days: u32,
    pub compress: bool,
}

impl Default for FileSinkConfig {
    fn default() -> Self {
        FileSinkConfig {
            path: None,
            max_bytes: 100 * 1024 * 1024,
            max_files: None,
            fsync_secs: 1,
            rotate: None,
            retention_days: DEFAULT_RETENTION_DAYS,
            compress: true,
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
        // An entry written for numbered rotation (it sets `max_files`) keeps it.
        c.rotate = self.rotate.unwrap_or(if self.max_files.is_some() {
            Rotate::Size
        } else {
            Rotate::Daily
        });
        c.retention_days = self.retention_days;
        c.compress = self.compress;
        let n = self.max_files.unwrap_or(5);
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
    /// `Daily`: the UTC date the open file's alerts belong to.
    day: NaiveDate,
}

fn today() -> NaiveDate {
    chrono::Utc::now().date_naive()
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
            day: today(),
        };
        s.reopen()?;
        if s.cfg.rotate == Rotate::Daily {
            // A file left from an earlier day belongs to that day.
            if let Some(f) = &s.file {
                if s.size > 0 {
                    if let Ok(m) = f.metadata().and_then(|m| m.modified()) {
                        s.day = chrono::DateTime::<chrono::Utc>::from(m).date_naive();
                    }
                }
            }
            archive::finish_pending(&s.cfg);
            archive::prune(&s.cfg, today());
        }
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
        if self.cfg.rotate == Rotate::Daily {
            return self.rotate_dated();
        }
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

impl FileSink {
    /// `path` -> `path.DAY.N`, a new `path`, then the archive compressed and old ones
    /// pruned (a failure there is logged; the alerts are safe in the plain file).
    fn rotate_dated(&mut self) -> Result<()> {
        self.sync()?;
        self.file = None;
        let path = self.cfg.path.clone();
        let to = archive::next_name(&path, self.day);
        std::fs::rename(&path, &to)
            .with_context(|| format!("cannot rotate {} to {}", path.display(), to.display()))?;
        crate::durable::sync_dir(
            path.parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new(".")),
        )
        .with_context(|| format!("cannot sync the folder of {}", path.display()))?;
        tracing::info!(path = %path.display(), archive = %to.display(), "rotated the alert file");
        self.reopen()?;
        self.day = today();
        if self.cfg.compress {
            if let Err(e) = archive::compress(&to) {
                tracing::warn!(archive = %to.display(), error = %format!("{e:#}"), "cannot compress the alert archive; it stays uncompressed and is tried again at the next start");
            }
        }
        archive::prune(&self.cfg, self.day);
        Ok(())
    }
}

/// The dated archive's files: names, compression with checksum, retention.
pub mod archive {
    use super::FileConfig;
    use anyhow::{Context, Result};
    use chrono::NaiveDate;
    use sha2::{Digest, Sha256};
    use std::io::{Read, Write};
    use std::path::{Path, PathBuf};

    /// An archive of `path`: its date, sequence number, and whether it is gzipped.
    #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
    pub struct Archive {
        pub day: NaiveDate,
        pub seq: u32,
        pub gz: bool,
        pub path: PathBuf,
    }

    /// Every archive of `path` (`path.YYYY-MM-DD.N` and `.gz`), oldest first.
    pub fn list(path: &Path) -> Vec<Archive> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let Some(base) = path.file_name().and_then(|n| n.to_str()) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let Ok(entries) = std::fs::read_dir(dir) else {
            return out;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(rest) = name.strip_prefix(base).and_then(|r| r.strip_prefix('.')) else {
                continue;
            };
            let (rest, gz) = match rest.strip_suffix(".gz") {
                Some(r) => (r, true),
                None => (rest, false),
            };
            let Some((day, seq)) = rest.rsplit_once('.') else {
                continue;
            };
            let (Ok(day), Ok(seq)) = (
                NaiveDate::parse_from_str(day, "%Y-%m-%d"),
                seq.parse::<u32>(),
            ) else {
                continue;
            };
            out.push(Archive {
                day,
                seq,
                gz,
                path: e.path(),
            });
        }
        out.sort();
        out
    }

    /// `path.DAY.N` with the first N not yet taken (plain or gzipped).
    pub fn next_name(path: &Path, day: NaiveDate) -> PathBuf {
        let taken: Vec<u32> = list(path)
            .iter()
            .filter(|a| a.day == day)
            .map(|a| a.seq)
            .collect();
        let seq = taken.iter().max().map_or(1, |m| m + 1);
        plain_name(path, day, seq)
    }

    fn plain_name(path: &Path, day: NaiveDate, seq: u32) -> PathBuf {
        let mut s = path.as_os_str().to_owned();
        s.push(format!(".{}.{seq}", day.format("%Y-%m-%d")));
        PathBuf::from(s)
    }

    fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
        let mut s = p.as_os_str().to_owned();
        s.push(suffix);
        PathBuf::from(s)
    }

    /// Gzips `plain` to `plain.gz` (via a temporary file, fsynced), writes its SHA-256
    /// next to it, and removes `plain`. Owner-only files, like the state.
    pub fn compress(plain: &Path) -> Result<PathBuf> {
        let gz = with_suffix(plain, ".gz");
        let tmp = with_suffix(plain, ".gz.tmp");
        let mut input = std::fs::File::open(plain)
            .with_context(|| format!("cannot read {}", plain.display()))?;
        let out = crate::durable::private()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::default());
        std::io::copy(&mut input, &mut enc)?;
        let out = enc.finish()?;
        out.sync_all()?;
        drop(out);
        let mut hasher = Sha256::new();
        let mut f = std::fs::File::open(&tmp)?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        std::fs::rename(&tmp, &gz)?;
        let name = gz
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let sum = with_suffix(&gz, ".sha256");
        let mut s = crate::durable::private()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&sum)?;
        writeln!(s, "{}  {name}", hex::encode(hasher.finalize()))?;
        s.sync_all()?;
        std::fs::remove_file(plain)?;
        if let Some(dir) = gz.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::durable::sync_dir(dir)?;
        }
        Ok(gz)
    }

    /// At start: compresses archives a crash left plain, removes half-written `.gz.tmp`.
    pub fn finish_pending(cfg: &FileConfig) {
        if !cfg.compress {
            return;
        }
        for a in list(&cfg.path) {
            let tmp = with_suffix(&a.path, ".gz.tmp");
            if tmp.exists() {
                let _ = std::fs::remove_file(&tmp);
            }
            if !a.gz {
                let gz = with_suffix(&a.path, ".gz");
                if gz.exists() {
                    // Compressed and renamed, but the plain file not yet removed.
                    if std::fs::remove_file(&a.path).is_ok() {
                        continue;
                    }
                }
                if let Err(e) = compress(&a.path) {
                    tracing::warn!(archive = %a.path.display(), error = %format!("{e:#}"), "cannot compress the alert archive");
                }
            }
        }
    }

    /// Deletes archives dated more than `retention_days` before `today` (0: none).
    pub fn prune(cfg: &FileConfig, today: NaiveDate) {
        if cfg.retention_days == 0 {
            return;
        }
        let Some(oldest) = today.checked_sub_days(chrono::Days::new(u64::from(cfg.retention_days)))
        else {
            return;
        };
        for a in list(&cfg.path) {
            if a.day < oldest {
                match std::fs::remove_file(&a.path) {
                    Ok(()) => {
                        let _ = std::fs::remove_file(with_suffix(&a.path, ".sha256"));
                        tracing::info!(archive = %a.path.display(), retention_days = cfg.retention_days, "deleted an alert archive past its retention");
                    }
                    Err(e) => {
                        tracing::warn!(archive = %a.path.display(), error = %e, "cannot delete an alert archive past its retention")
                    }
                }
            }
        }
    }

    /// The last `max` bytes of an archive's content (decompressed when gzipped).
    pub fn tail(a: &Archive, max: u64) -> Vec<u8> {
        let Ok(f) = std::fs::File::open(&a.path) else {
            return Vec::new();
        };
        let mut r: Box<dyn Read> = if a.gz {
            Box::new(flate2::read::GzDecoder::new(f))
        } else {
            Box::new(f)
        };
        let max = max as usize;
        let mut keep: Vec<u8> = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    keep.extend_from_slice(&buf[..n]);
                    if keep.len() > 2 * max.max(1) {
                        keep.drain(..keep.len() - max);
                    }
                }
            }
        }
        if keep.len() > max {
            keep.drain(..keep.len() - max);
        }
        keep
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
    if cfg.rotate == Rotate::Daily {
        budget = budget.saturating_sub(alert_ids_in_tail(&cfg.path, budget, &mut ids));
        for a in archive::list(&cfg.path).iter().rev() {
            if budget == 0 {
                break;
            }
            let tail = archive::tail(a, budget);
            budget = budget.saturating_sub(tail.len() as u64);
            ids_in(&tail, &mut ids);
        }
        return ids;
    }
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
    ids_in(&tail, ids);
    tail.len() as u64
}

/// Adds the alert ids in `tail` to `ids`.
fn ids_in(tail: &[u8], ids: &mut HashSet<String>) {
    let text = String::from_utf8_lossy(tail);
    let mut rest = text.as_ref();
    while let Some(i) = rest.find("pw-") {
        let cand = &rest[i + 3..];
        let hex = cand.bytes().take_while(|b| b.is_ascii_hexdigit()).count();
        if hex == 24 {
            ids.insert(format!("pw-{}", &cand[..24]));
        }
        rest = &cand[hex..];
    }
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
        if self.cfg.rotate == Rotate::Daily && self.day != today() {
            if self.size > 0 {
                self.rotate()?;
            } else {
                self.day = today();
            }
        }
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
    use sha2::Digest;

    fn alert_line(n: u32) -> (crate::alert::Alert, String) {
        let now = chrono::Utc::now();
        let a = crate::alert::Alert {
            id: format!("pw-{n:024x}"),
            ts: now,
            detector: "d".into(),
            severity: crate::alert::Severity::Low,
            score: 1,
            user: "u".into(),
            patients: Vec::new(),
            summary: String::new(),
            reasons: Vec::new(),
            first_seen: now,
            last_seen: now,
            events: 1,
            follows: None,
            case: None,
            case_alerts: None,
            risk: None,
        };
        let line = format!("{{\"id\":\"{}\"}}", a.id);
        (a, line)
    }

    fn daily(dir: &Path) -> FileConfig {
        let mut cfg = FileConfig::new(dir.join("alerts.ndjson"));
        cfg.rotate = Rotate::Daily;
        cfg
    }

    fn gunzip(p: &Path) -> String {
        let mut s = String::new();
        flate2::read::GzDecoder::new(File::open(p).unwrap())
            .read_to_string(&mut s)
            .unwrap();
        s
    }

    /// The day changes: the file becomes a dated, gzipped archive with its checksum, a new
    /// file takes the next alerts, and a restart still knows the archived ids.
    #[test]
    fn daily_rotation_archives_compresses_and_still_dedupes() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = daily(dir.path());
        let mut s = FileSink::open(cfg.clone()).unwrap();
        for n in 1..=2 {
            let (a, l) = alert_line(n);
            s.send_alert(&a, &l).unwrap();
        }
        let yesterday = today().pred_opt().unwrap();
        s.day = yesterday;
        let (a, l) = alert_line(3);
        s.send_alert(&a, &l).unwrap();
        s.flush().unwrap();
        drop(s);
        let name = format!("alerts.ndjson.{}.1.gz", yesterday.format("%Y-%m-%d"));
        let gz = dir.path().join(&name);
        assert!(
            gz.exists(),
            "{:?}",
            std::fs::read_dir(dir.path()).unwrap().collect::<Vec<_>>()
        );
        assert!(!dir.path().join(name.trim_end_matches(".gz")).exists());
        assert_eq!(
            gunzip(&gz),
            format!("{}\n{}\n", alert_line(1).1, alert_line(2).1)
        );
        let sum = std::fs::read_to_string(dir.path().join(format!("{name}.sha256"))).unwrap();
        let want = hex::encode(sha2::Sha256::digest(std::fs::read(&gz).unwrap()));
        assert_eq!(sum, format!("{want}  {name}\n"));
        assert_eq!(
            std::fs::read_to_string(&cfg.path).unwrap(),
            format!("{}\n", alert_line(3).1)
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&gz).unwrap().permissions().mode() & 0o077,
            0
        );
        // A restart: every id, archived or not, is known and not written again.
        let ids = alert_ids_written(&cfg);
        for n in 1..=3 {
            assert!(ids.contains(&alert_line(n).0.id), "{n}");
        }
        let mut s = FileSink::open(cfg.clone()).unwrap();
        let (a, l) = alert_line(1);
        s.send_alert(&a, &l).unwrap();
        drop(s);
        assert_eq!(
            std::fs::read_to_string(&cfg.path).unwrap().lines().count(),
            1
        );
    }

    /// Within a day, `max_bytes` still rotates: `.1`, `.2`, ... of the same date.
    #[test]
    fn daily_archives_also_rotate_by_size() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = daily(dir.path());
        cfg.max_bytes = 40;
        let mut s = FileSink::open(cfg.clone()).unwrap();
        for n in 1..=4 {
            let (a, l) = alert_line(n);
            s.send_alert(&a, &l).unwrap();
        }
        drop(s);
        let list = archive::list(&cfg.path);
        assert_eq!(
            list.iter().map(|a| (a.seq, a.gz)).collect::<Vec<_>>(),
            [(1, true), (2, true), (3, true)]
        );
        let mut all: Vec<String> = list.iter().map(|a| gunzip(&a.path)).collect();
        all.push(std::fs::read_to_string(&cfg.path).unwrap());
        assert_eq!(all.concat().lines().count(), 4);
    }

    /// Archives past `retention_days` go at start; younger ones and other files stay; a
    /// plain archive left by a crash is compressed.
    #[test]
    fn retention_prunes_old_archives_and_a_crash_leftover_is_compressed() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = daily(dir.path());
        let old = today() - chrono::Days::new(u64::from(DEFAULT_RETENTION_DAYS) + 1);
        let kept = today() - chrono::Days::new(u64::from(DEFAULT_RETENTION_DAYS) - 1);
        let name = |d: NaiveDate, ext: &str| {
            dir.path()
                .join(format!("alerts.ndjson.{}.1{ext}", d.format("%Y-%m-%d")))
        };
        std::fs::write(name(old, ".gz"), b"x").unwrap();
        std::fs::write(name(old, ".gz.sha256"), b"x").unwrap();
        std::fs::write(name(kept, ".gz"), b"x").unwrap();
        std::fs::write(
            name(today().pred_opt().unwrap(), ""),
            "{\"id\":\"pw-000000000000000000000009\"}\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"x").unwrap();
        let s = FileSink::open(cfg.clone()).unwrap();
        assert!(!name(old, ".gz").exists() && !name(old, ".gz.sha256").exists());
        assert!(name(kept, ".gz").exists());
        assert!(dir.path().join("notes.txt").exists());
        let yesterday = name(today().pred_opt().unwrap(), ".gz");
        assert!(gunzip(&yesterday).contains("pw-000000000000000000000009"));
        assert!(s.written_before.contains("pw-000000000000000000000009"));
        // retention_days = 0 keeps everything.
        let mut forever = cfg.clone();
        forever.retention_days = 0;
        std::fs::write(name(old, ".gz"), b"x").unwrap();
        archive::prune(&forever, today());
        assert!(name(old, ".gz").exists());
    }

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
