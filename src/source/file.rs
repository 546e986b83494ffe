//! The file source: follows log files as they grow ([`Tailer`], for `run` and `agent`) or
//! reads one file once from start to end ([`read_once`], for `replay`). Both split lines
//! with the same code, so a line means the same thing in every mode; `crate::ingest`
//! turns those lines into events, again the same way for all.
//!
//! # Delivery guarantee
//!
//! **At least once, in order within each file.** Every complete line written to a
//! followed file is handed out, in file order, at least once, provided the caller
//! resumes from a checkpoint that covers only lines it has processed (see
//! [`Tailer::acked_positions`]) and the file still exists when we get to it. Lines after
//! the last checkpoint may be handed out again after a restart (including after a
//! `kill -9`); each [`TailLine`] carries its file id and byte range, so the caller can
//! drop repeats. A line is never handed out in pieces: a last line without its newline
//! waits for it (except in a file that left the globs and went quiet, see below, and in
//! [`read_once`], where the file is complete).
//!
//! Two ways to checkpoint only what was processed:
//! - poll, process the whole batch, then save [`Tailer::positions`]; or
//! - with [`TailOptions::explicit_acks`], [`Tailer::ack`] each line (or the last of a
//!   run of lines of one file) once processed, and save [`Tailer::acked_positions`].
//!   This suits a pipeline where processing finishes after the next poll.
//!
//! # How files are told apart
//!
//! By device + inode + a fingerprint of their first bytes ([`FileId`]). Device + inode
//! follow a file across renames; the fingerprint catches an inode reused by a new file
//! and a file truncated and rewritten in place. Two files with the same first bytes are
//! still two files (different inodes).
//!
//! # Rotation
//!
//! - **Rename** (`app.log` -> `app.log.1`, new `app.log`): the old file is kept open and
//!   read to its end even if its new name no longer matches the globs; it is closed once
//!   it has been read to its end *and* has not grown for [`TailOptions::rotated_quiet`]
//!   (writers often keep writing to the old file for a moment after the rename). A file
//!   that appears at a path another followed file just left waits until that file has
//!   been read to its end, so the old file's lines come first. If the old file's last
//!   line never gets its newline, it is handed out as it is when the file is closed.
//! - **Copytruncate** (size below what we read, or the first bytes changed): the file is
//!   read again from its start.
//! - **While stopped**: on restart a checkpointed file that no longer matches the globs
//!   is looked for by inode in the folder it was in, and its rest is read before the new
//!   file (vectordotdev/vector#22954). Several such files are read one after another, in
//!   the order of the checkpoint's positions (the order this reader had them), not side
//!   by side. A file is only found again if a checkpoint names it: callers should
//!   checkpoint [`Tailer::positions`] right after a first `poll(0)` (the files reading
//!   starts at, before any line) and whenever a file first appears in the positions.
//! - **Copytruncate while stopped**: a checkpointed file found shorter than its
//!   checkpoint or with other first bytes is read again from its start; before it, the
//!   lines written between the checkpoint and the copy are read from the copy, if it is
//!   next to the file: a file in the same folder, not followed, at least as long as the
//!   checkpoint's offset and with the checkpoint's fingerprint there (the newest such
//!   file). Without a copy those lines are lost; [`Tailer::take_unrecovered`] counts it
//!   and a warning says so.
//!
//! # Backlog
//!
//! Every file there at the first poll that no checkpoint names, whatever its age, and
//! every file found later (or checkpointed) that
//! nobody has written for [`BACKLOG_AFTER`] (yesterday's daily export, last week's rotated
//! logs, a history folder copied in) is history, and history is read in order: by the
//! time its content starts ([`TailOptions::order_by`], the file's first event as the
//! caller's parser reads it; the modification time stands in without one), each file to
//! its end before the next, and before any file still being written. Why: the engine
//! orders events by time per source, and a month of daily files read side by side would
//! hand it day 30 while day 1 is still coming, making everything in between late; and
//! modification times lie (a folder copied with `cp` has them all within a second, in
//! any order). Files being written are read side by side (round robin), so a busy one
//! cannot starve the others.
//!
//! # Lines
//!
//! Split on `\n`; a `\r` before it is dropped. Invalid UTF-8 is replaced (lossy). A line
//! longer than [`TailOptions::max_line_bytes`] (without its terminator) is handed out
//! once, as [`LineKind::Oversized`], with its text cut to the limit; its byte range still
//! covers the whole line. The caller should count it as rejected, not parse it. Memory
//! per file stays below `max_line_bytes` plus one 64 KiB read.
//!
//! # Limitations
//!
//! - A truncation followed, before the next poll, by a rewrite at least as long as what
//!   we had read *and* starting with the same `fingerprint_bytes` bytes (e.g. a CSV
//!   header longer than that) goes unnoticed; reading continues at the old offset.
//! - Copytruncate while stopped: recovered only from a copy kept in the same folder
//!   (not compressed), and only when the checkpoint's offset is above 0 (a checkpoint
//!   taken before the first line says nothing of the content). A file copytruncated and
//!   then renamed while stopped is followed up the same way, through its copy; without
//!   a copy it cannot be told from an inode reused by another file and is left alone.
//! - Copytruncate while running: lines written between our last read (at most one poll
//!   interval) and the copy are lost.
//! - A file created and rotated away while no checkpoint named it (the caller down, or
//!   between the file's creation and the caller's next checkpoint) is not found again.
//! - A file rotated while stopped into another folder (logrotate `olddir`) is not found.
//! - Every matched file stays open; there is no cap on open files.
//! - A file that exists under the globs only between two polls is never seen.
//! - A whole poll reads at most `max_lines` lines and, per file, 4 MiB: a poll that
//!   skips through a giant line may return nothing although more is to come.
//! - Unix only (device and inode numbers).

use super::{FileId, Position};
use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::{DirEntryExt, FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// A file not modified for this long when found is backlog, read in order (see the
/// module doc).
pub const BACKLOG_AFTER: Duration = Duration::from_secs(60);
use tracing::{debug, info, warn};

/// Bytes asked of the kernel per read.
const CHUNK: usize = 64 * 1024;

/// Reads per file per poll: bounds how long one poll can spend skipping a giant line.
const MAX_CHUNKS_PER_TURN: usize = 64;

/// What a handed-out line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LineKind {
    /// The first line of a file, with [`TailOptions::header`] set. Delivered before any
    /// data line of the file, again after every restart of the reader and after the file
    /// was truncated. A new `Header` for a file replaces the previous one.
    Header,
    /// An ordinary line.
    Data,
    /// A line longer than [`TailOptions::max_line_bytes`]: `text` holds only its first
    /// `max_line_bytes` bytes. Count it as rejected. (A first line that is oversized is
    /// handed out as this, not as `Header`.)
    Oversized,
}

/// One line of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailLine {
    /// Where the file was when the line was read (after a rename, possibly its old name).
    pub path: Arc<str>,
    /// The file, with the fingerprint at `end` (see [`FileId`]).
    pub id: FileId,
    /// Offset of the line's first byte.
    pub offset: u64,
    /// Offset of the byte after the line's newline (or after its last byte, for the last
    /// line of a finished file that had no newline).
    pub end: u64,
    pub kind: LineKind,
    /// The line without `\n` / `\r\n`, invalid UTF-8 replaced.
    pub text: String,
}

/// How files are followed and read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailOptions {
    /// Deliver the first line of each file as [`LineKind::Header`] before any data line,
    /// also when resuming in the middle of a file (it is re-read; the position does not
    /// move).
    pub header: bool,
    /// Longest line handed out in full, without its terminator. Default
    /// [`MAX_LINE_BYTES`](super::MAX_LINE_BYTES).
    pub max_line_bytes: usize,
    /// How many leading bytes the fingerprint covers. Default 256. Changing it between
    /// runs makes every checkpoint mismatch: files are read again from their start.
    pub fingerprint_bytes: usize,
    /// For a reader started without any checkpoint, begin the files that exist at its
    /// first poll at their end (after their last complete line) instead of their start.
    /// Files that appear later, and every file when a checkpoint was given, are read from
    /// their start: they were written after we last looked. Default false.
    pub start_at_end_for_new_files: bool,
    /// How long a file that left the globs (renamed away, deleted) must have been read to
    /// its end without growing before it is closed and forgotten. Default 5 s.
    pub rotated_quiet: Duration,
    /// When true the caller promises to [`Tailer::ack`] lines once processed:
    /// [`Tailer::acked_positions`] then covers only acknowledged lines, and a finished
    /// file stays followed until all its lines are acknowledged. When false every line
    /// counts as acknowledged when handed out. Default false.
    pub explicit_acks: bool,
    /// How history is put in order: the event time (epoch ms) a file starts at, as its
    /// reader's parser sees it. Without it (or when it cannot tell), the file's
    /// modification time stands in. Default none.
    pub order_by: Option<OrderKey>,
}

/// The time a file's content starts at (epoch ms), for reading history in event-time
/// order whatever the files' modification times say (a folder copied with `cp` has them
/// all within a second).
#[derive(Clone)]
pub struct OrderKey(pub Arc<StartsAt>);

/// A file's path to the event time its content starts at (epoch ms), if it can tell.
pub type StartsAt = dyn Fn(&Path) -> Option<i64> + Send + Sync;

impl std::fmt::Debug for OrderKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OrderKey(..)")
    }
}

impl PartialEq for OrderKey {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for OrderKey {}

impl Default for TailOptions {
    fn default() -> Self {
        TailOptions {
            header: false,
            max_line_bytes: super::MAX_LINE_BYTES,
            fingerprint_bytes: 256,
            start_at_end_for_new_files: false,
            rotated_quiet: Duration::from_secs(5),
            explicit_acks: false,
            order_by: None,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Line splitting, shared by `Tailer` and `read_once`.

/// A line cut out of the byte stream, before it is given a kind and an id.
#[derive(Debug, PartialEq, Eq)]
struct RawLine {
    offset: u64,
    end: u64,
    text: String,
    oversized: bool,
}

/// Splits a byte stream into lines, holding at most one incomplete line (or, for an
/// oversized line, its first `max` bytes) between reads.
#[derive(Debug)]
struct Splitter {
    /// Bytes read and not yet handed out: `buf[start..filled]`. Past `filled`, room that
    /// holds old bytes: zeroing a fresh 64 KiB for every read was 2.5% of a replay's
    /// instructions, so the room is zeroed once, when the buffer grows.
    buf: Vec<u8>,
    filled: usize,
    start: usize,
    /// `buf[start..scanned]` is known to hold no `\n`.
    scanned: usize,
    /// File offset of `buf[0]`.
    base: u64,
    max: usize,
    /// An oversized line being skipped to its newline: its offset and first `max` bytes.
    skipping: Option<(u64, Vec<u8>)>,
}

impl Splitter {
    fn new(base: u64, max: usize) -> Splitter {
        Splitter {
            buf: Vec::new(),
            filled: 0,
            start: 0,
            scanned: 0,
            base,
            max,
            skipping: None,
        }
    }

    /// Offset of the first byte not yet handed out: the read position for checkpoints.
    fn line_start(&self) -> u64 {
        match &self.skipping {
            Some((offset, _)) => *offset,
            None => self.base + self.start as u64,
        }
    }

    /// Offset after the last byte read.
    fn end(&self) -> u64 {
        self.base + self.filled as u64
    }

    /// Appends up to one chunk with `read`, which fills the slice it gets. Returns what
    /// `read` returned; the bytes are then [`Splitter::tail`]`(n)`.
    fn fill(&mut self, read: impl FnOnce(&mut [u8]) -> io::Result<usize>) -> io::Result<usize> {
        self.compact();
        let old = self.filled;
        if self.buf.len() < old + CHUNK {
            self.buf.resize(old + CHUNK, 0);
        }
        let result = read(&mut self.buf[old..old + CHUNK]);
        let n = *result.as_ref().unwrap_or(&0);
        self.filled = old + n.min(CHUNK);
        result
    }

    /// Gives back the read buffer's spare room: between polls a file holds only its
    /// unfinished line, not a whole chunk.
    fn release(&mut self) {
        self.compact();
        self.buf.truncate(self.filled);
        if self.buf.capacity() > self.filled + 4096 {
            self.buf.shrink_to(self.filled);
        }
    }

    fn compact(&mut self) {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.filled, 0);
            self.filled -= self.start;
            self.base += self.start as u64;
            self.scanned -= self.start;
            self.start = 0;
        }
    }

    /// The last `n` bytes read.
    fn tail(&self, n: usize) -> &[u8] {
        &self.buf[self.filled - n..self.filled]
    }

    /// The next complete line, if a newline has been read.
    fn next_line(&mut self) -> Option<RawLine> {
        let newline =
            memchr::memchr(b'\n', &self.buf[self.scanned..self.filled]).map(|i| self.scanned + i);
        match (newline, self.skipping.take()) {
            (Some(nl), Some((offset, kept))) => {
                self.start = nl + 1;
                self.scanned = nl + 1;
                Some(RawLine {
                    offset,
                    end: self.base + nl as u64 + 1,
                    text: lossy(&kept),
                    oversized: true,
                })
            }
            (None, Some(skipping)) => {
                self.skipping = Some(skipping);
                self.discard_all();
                None
            }
            (Some(nl), None) => {
                let line = self.cut(nl, nl + 1);
                Some(line)
            }
            (None, None) => {
                self.scanned = self.filled;
                // `max + 1`: the last byte may be the `\r` of a `\r\n`.
                if self.filled - self.start > self.max + 1 {
                    let kept = self.buf[self.start..self.start + self.max].to_vec();
                    self.skipping = Some((self.base + self.start as u64, kept));
                    self.discard_all();
                }
                None
            }
        }
    }

    /// Whatever is left as a last line: for a file known to be complete.
    fn finish(&mut self) -> Option<RawLine> {
        if let Some((offset, kept)) = self.skipping.take() {
            self.discard_all();
            return Some(RawLine {
                offset,
                end: self.base,
                text: lossy(&kept),
                oversized: true,
            });
        }
        if self.start == self.filled {
            return None;
        }
        let len = self.filled;
        Some(self.cut(len, len))
    }

    /// Hands out `buf[start..content_end]` as a line ending at `buf[line_end]`.
    fn cut(&mut self, content_end: usize, line_end: usize) -> RawLine {
        let mut content = &self.buf[self.start..content_end];
        if let [rest @ .., b'\r'] = content {
            content = rest;
        }
        let oversized = content.len() > self.max;
        if oversized {
            content = &content[..self.max];
        }
        let line = RawLine {
            offset: self.base + self.start as u64,
            end: self.base + line_end as u64,
            text: lossy(content),
            oversized,
        };
        self.start = line_end;
        self.scanned = line_end;
        line
    }

    fn discard_all(&mut self) {
        self.base += self.filled as u64;
        self.filled = 0;
        self.start = 0;
        self.scanned = 0;
    }
}

/// The line as text, invalid bytes replaced. Valid UTF-8 (nearly every line) takes
/// `from_utf8`'s fast path and one copy; `from_utf8_lossy` walked every line chunk by
/// chunk and was 6% of a replay's samples.
fn lossy(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// The first bytes of a file, up to `limit`, for fingerprints at any offset.
#[derive(Debug)]
struct Prefix {
    bytes: Vec<u8>,
    limit: usize,
    /// The fingerprint once `bytes` holds `limit` bytes.
    full: Option<u64>,
}

impl Prefix {
    fn new(limit: usize) -> Prefix {
        let mut p = Prefix {
            bytes: Vec::new(),
            limit,
            full: None,
        };
        p.settle();
        p
    }

    /// Reads the first `min(limit, upto)` bytes of `file`.
    fn read(file: &File, limit: usize, upto: u64) -> io::Result<Prefix> {
        let mut p = Prefix::new(limit);
        let want = clamp(limit, upto);
        p.bytes = vec![0; want];
        file.read_exact_at(&mut p.bytes, 0)?;
        p.settle();
        Ok(p)
    }

    /// Records bytes read at file offset `at`, if they continue what we hold.
    fn extend(&mut self, at: u64, data: &[u8]) {
        if self.full.is_some() || at != self.bytes.len() as u64 {
            return;
        }
        let take = (self.limit - self.bytes.len()).min(data.len());
        self.bytes.extend_from_slice(&data[..take]);
        self.settle();
    }

    fn settle(&mut self) {
        if self.bytes.len() >= self.limit {
            self.full = Some(FileId::fingerprint_of(&self.bytes[..self.limit]));
        }
    }

    /// The fingerprint at `offset`: of the first `min(limit, offset)` bytes. Callers only
    /// ask for offsets they have read up to, so the bytes are here.
    fn fingerprint_at(&self, offset: u64) -> u64 {
        let n = clamp(self.limit, offset).min(self.bytes.len());
        match self.full {
            Some(fp) if n == self.limit => fp,
            _ => FileId::fingerprint_of(&self.bytes[..n]),
        }
    }
}

fn clamp(limit: usize, offset: u64) -> usize {
    usize::try_from(offset).map_or(limit, |o| o.min(limit))
}

fn read_at_retry(file: &File, buf: &mut [u8], at: u64) -> io::Result<usize> {
    loop {
        match file.read_at(buf, at) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

fn id_of(meta: &fs::Metadata) -> (u64, u64) {
    (meta.dev(), meta.ino())
}

fn shown(path: &Path) -> Arc<str> {
    Arc::from(path.to_string_lossy().as_ref())
}

fn kind_of(raw: &RawLine, header_pending: bool) -> LineKind {
    if raw.oversized {
        LineKind::Oversized
    } else if header_pending && raw.offset == 0 {
        LineKind::Header
    } else {
        LineKind::Data
    }
}

// ---------------------------------------------------------------------------------------
// read_once

/// Reads `path` once from its first byte to its end, for `replay`. Same lines as the
/// [`Tailer`] would hand out, except that a last line without a newline is delivered
/// (the file is taken as complete). Stops after the first read error.
pub fn read_once(path: &Path, opts: &TailOptions) -> io::Result<ReadOnce> {
    let file = File::open(path)?;
    let (dev, ino) = id_of(&file.metadata()?);
    Ok(ReadOnce {
        file,
        path: shown(path),
        dev,
        ino,
        split: Splitter::new(0, opts.max_line_bytes),
        prefix: Prefix::new(opts.fingerprint_bytes),
        header_pending: opts.header,
        eof: false,
        failed: false,
    })
}

/// The iterator returned by [`read_once`].
#[derive(Debug)]
pub struct ReadOnce {
    file: File,
    path: Arc<str>,
    dev: u64,
    ino: u64,
    split: Splitter,
    prefix: Prefix,
    header_pending: bool,
    eof: bool,
    failed: bool,
}

impl ReadOnce {
    fn line(&mut self, raw: RawLine) -> TailLine {
        let kind = kind_of(&raw, self.header_pending);
        self.header_pending = false;
        TailLine {
            path: self.path.clone(),
            id: FileId {
                dev: self.dev,
                ino: self.ino,
                fingerprint: self.prefix.fingerprint_at(raw.end),
            },
            offset: raw.offset,
            end: raw.end,
            kind,
            text: raw.text,
        }
    }
}

impl Iterator for ReadOnce {
    type Item = io::Result<TailLine>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        loop {
            if let Some(raw) = self.split.next_line() {
                return Some(Ok(self.line(raw)));
            }
            if self.eof {
                let raw = self.split.finish()?;
                return Some(Ok(self.line(raw)));
            }
            let at = self.split.end();
            let file = &mut self.file;
            match self.split.fill(|buf| file.read(buf)) {
                Ok(0) => self.eof = true,
                Ok(n) => self.prefix.extend(at, self.split.tail(n)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Tailer

/// One file being followed.
#[derive(Debug)]
struct Followed {
    /// Unique within this tailer; orders and links files.
    key: u64,
    /// Where the file is now (as far as we know).
    path: PathBuf,
    /// The path the globs last matched it under: the path a newer file takes over after
    /// a rotation, possibly polls after this file left it.
    glob_path: PathBuf,
    shown: Arc<str>,
    file: File,
    dev: u64,
    ino: u64,
    prefix: Prefix,
    /// `split.line_start()` is the read position, `split.end()` how far we have read.
    split: Splitter,
    acked: u64,
    header_pending: bool,
    /// Seen under a glob in the latest poll.
    matched: bool,
    /// The file that was at this path before: it is read to its end first.
    after: Option<u64>,
    /// The last turn read to the end of the file and handed out every complete line.
    drained: bool,
    /// Backlog (there when reading started, or not written for `BACKLOG_AFTER` when
    /// found): when its content starts (see [`TailOptions::order_by`]) and its path, the
    /// order backlog is read in.
    backlog: Option<(i64, PathBuf)>,
    last_growth: Instant,
    /// The modification time at the latest look (`fstat` each turn): when the writer last
    /// wrote, which may be long before we read it (see [`Tailer::quiet_for`]).
    modified: Option<SystemTime>,
    /// Left the globs, went quiet, and its last partial line was handed out: nothing more
    /// is read; it waits for its acknowledgements.
    done: bool,
    /// An error was logged and not yet cleared by a good read.
    failing: bool,
}

impl Followed {
    fn position(&self, offset: u64) -> Position {
        Position {
            path: self.shown.to_string(),
            id: self.id_at(offset),
            offset,
        }
    }

    fn id_at(&self, offset: u64) -> FileId {
        FileId {
            dev: self.dev,
            ino: self.ino,
            fingerprint: self.prefix.fingerprint_at(offset),
        }
    }

    fn set_path(&mut self, path: PathBuf) {
        self.shown = shown(&path);
        self.path = path;
    }

    fn hand_out(&mut self, raw: RawLine, opts: &TailOptions) -> TailLine {
        let kind = kind_of(&raw, self.header_pending);
        self.header_pending = false;
        if !opts.explicit_acks {
            self.acked = raw.end;
        }
        TailLine {
            path: self.shown.clone(),
            id: self.id_at(raw.end),
            offset: raw.offset,
            end: raw.end,
            kind,
            text: raw.text,
        }
    }

    /// The header re-read from byte 0 while the position stays where it is.
    fn hand_out_header(&mut self, raw: RawLine) -> TailLine {
        self.header_pending = false;
        TailLine {
            path: self.shown.clone(),
            id: self.id_at(raw.end),
            offset: raw.offset,
            end: raw.end,
            kind: if raw.oversized {
                LineKind::Oversized
            } else {
                LineKind::Header
            },
            text: raw.text,
        }
    }

    /// Starts over from byte 0, as after a copytruncate.
    fn restart(&mut self, opts: &TailOptions, now: Instant) {
        self.split = Splitter::new(0, opts.max_line_bytes);
        self.prefix = Prefix::new(opts.fingerprint_bytes);
        self.acked = 0;
        self.header_pending = opts.header;
        self.drained = false;
        self.done = false;
        self.last_growth = now;
    }

    /// True when the bytes we fingerprinted are still there, unchanged.
    fn prefix_intact(&self) -> io::Result<bool> {
        if self.prefix.bytes.is_empty() {
            return Ok(true);
        }
        let mut now = vec![0; self.prefix.bytes.len()];
        match self.file.read_exact_at(&mut now, 0) {
            Ok(()) => Ok(now == self.prefix.bytes),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// What a resume position says about a file just opened.
enum Resume {
    /// No checkpoint names this inode.
    Unknown,
    /// A checkpoint names it and its first bytes match: continue there.
    At(Position),
    /// A checkpoint names the inode but the content differs (inode reused, or truncated
    /// while we were stopped): a file we have not read, from its start. Holds the
    /// checkpoint with the largest offset, to look for a copy of what was truncated.
    Stale(Position),
}

/// A file found by the globs and opened, not yet followed.
struct Opened {
    key: u64,
    path: PathBuf,
    file: File,
    id: (u64, u64),
    len: u64,
    resume: Resume,
}

/// What a poll turn decided about a file.
#[derive(PartialEq, Eq)]
enum Fate {
    Keep,
    Forget,
}

/// Follows the files matching a set of globs. Synchronous: the caller owns the thread
/// and calls [`Tailer::poll`] in a loop (sleeping when it returns nothing). See the module
/// doc for the guarantees.
#[derive(Debug)]
pub struct Tailer {
    globs: Vec<String>,
    glob_error: Option<String>,
    opts: TailOptions,
    /// In discovery order: older files first.
    files: Vec<Followed>,
    /// Resume positions not yet matched to a file, by (dev, ino).
    pending: HashMap<(u64, u64), Vec<Position>>,
    /// Where each file first comes in the resume positions: the order files were found
    /// in, which for files rotated one after another is the order of their content.
    resume_order: HashMap<(u64, u64), usize>,
    resumed_from_checkpoint: bool,
    first_poll: bool,
    next_key: u64,
    /// Where the next poll starts, so a busy file cannot starve the others.
    cursor: usize,
    /// Paths whose open failed, logged once.
    unreadable: HashSet<PathBuf>,
    /// Files truncated while stopped whose lost lines no copy held (see
    /// [`Tailer::take_unrecovered`]).
    unrecovered: u64,
}

impl Tailer {
    /// A tailer for `globs`, resuming from `resume` (positions from an earlier
    /// [`Tailer::acked_positions`]; matched by file id, not path). Does no I/O; an invalid
    /// glob is reported by every [`Tailer::poll`].
    pub fn new(globs: Vec<String>, opts: TailOptions, resume: &[Position]) -> Tailer {
        let glob_error = globs.iter().find_map(|g| {
            glob::Pattern::new(g)
                .err()
                .map(|e| format!("invalid glob {g:?}: {e}"))
        });
        let mut pending: HashMap<(u64, u64), Vec<Position>> = HashMap::new();
        let mut resume_order = HashMap::new();
        for (i, p) in resume.iter().enumerate() {
            resume_order.entry((p.id.dev, p.id.ino)).or_insert(i);
        }
        for p in resume {
            pending
                .entry((p.id.dev, p.id.ino))
                .or_default()
                .push(p.clone());
        }
        Tailer {
            globs,
            glob_error,
            opts,
            files: Vec::new(),
            pending,
            resume_order,
            resumed_from_checkpoint: !resume.is_empty(),
            first_poll: true,
            next_key: 0,
            cursor: 0,
            unreadable: HashSet::new(),
            unrecovered: 0,
        }
    }

    /// Discovers files (re-globs), notices rotation and truncation, and reads complete
    /// new lines from every followed file: at most `max_lines` in total, each file's
    /// lines in file order. An empty result means nothing new (for now). Errors only for
    /// an invalid glob; trouble with one file is logged and that file retried next poll.
    pub fn poll(&mut self, max_lines: usize) -> io::Result<Vec<TailLine>> {
        if let Some(e) = &self.glob_error {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, e.clone()));
        }
        let now = Instant::now();
        self.discover(now);
        self.first_poll = false;

        let mut out = Vec::new();
        let n = self.files.len();
        if n == 0 || max_lines == 0 {
            return Ok(out);
        }
        // Round robin from `cursor`, so a busy file cannot starve the others, except that
        // a file that took over another's path waits until that one has been read to its
        // end *in this poll*: its lines come first.
        let index: HashMap<u64, usize> = self
            .files
            .iter()
            .enumerate()
            .map(|(i, f)| (f.key, i))
            .collect();
        let order: Vec<usize> = (0..n).map(|k| (self.cursor + k) % n).collect();
        let mut budget = max_lines;
        let mut forget = vec![false; n];
        let mut serviced = vec![false; n];
        let mut settled = vec![false; n];
        // Backlog is read one file at a time, oldest first, before files being written.
        // A file that waits for the file it replaced (rotation) is not read before it,
        // whatever their order as history.
        let waits = |f: &Followed| {
            f.after
                .and_then(|k| index.get(&k))
                .is_some_and(|&p| !self.files[p].drained && !self.files[p].done)
        };
        let first_backlog = self
            .files
            .iter()
            .filter(|f| !f.drained && !f.failing && !f.done && !waits(f))
            .filter_map(|f| f.backlog.as_ref().map(|b| (b, f.key)))
            .min()
            .map(|(_, key)| key);
        if let Some(key) = first_backlog {
            // Its predecessor (read to its end, or it would not be first) is looked at in
            // the same poll, so the file after it may go on.
            let before = self
                .files
                .iter()
                .find(|f| f.key == key)
                .and_then(|f| f.after);
            for (i, f) in self.files.iter().enumerate() {
                settled[i] =
                    f.key != key && Some(f.key) != before && !(f.backlog.is_some() && f.drained);
            }
        }
        let mut progress = true;
        while progress && budget > 0 {
            progress = false;
            for &i in &order {
                if settled[i] || budget == 0 {
                    continue;
                }
                if let Some(&p) = self.files[i].after.and_then(|k| index.get(&k)) {
                    if !settled[p] {
                        continue; // its predecessor's turn first
                    }
                    if !serviced[p] || !self.files[p].drained {
                        settled[i] = true; // the predecessor still has lines: next poll
                        progress = true;
                        continue;
                    }
                }
                let fate = service(&mut self.files[i], &self.opts, &mut budget, &mut out, now);
                forget[i] = fate == Fate::Forget;
                serviced[i] = true;
                settled[i] = true;
                progress = true;
                if budget == 0 {
                    self.cursor = i + 1;
                }
            }
        }
        let mut i = 0;
        self.files.retain(|f| {
            let keep = !forget[i];
            i += 1;
            if !keep {
                info!(path = %f.shown, offset = f.split.line_start(), "finished a file that left the globs; closing it");
            }
            keep
        });
        Ok(out)
    }

    /// Read positions: for every followed file, the byte after the last line handed out.
    /// Checkpointing these may skip lines the caller has not finished processing; see
    /// [`Tailer::acked_positions`].
    pub fn positions(&self) -> Vec<Position> {
        let mut out: Vec<Position> = self
            .files
            .iter()
            .map(|f| f.position(f.split.line_start()))
            .collect();
        out.extend(self.unmatched_resume());
        out
    }

    /// Positions safe to checkpoint: for every followed file, the byte after the last
    /// acknowledged line ([`Tailer::ack`]). Without [`TailOptions::explicit_acks`] the
    /// same as [`Tailer::positions`]. Before the first poll, the resume positions.
    pub fn acked_positions(&self) -> Vec<Position> {
        let mut out: Vec<Position> = self.files.iter().map(|f| f.position(f.acked)).collect();
        out.extend(self.unmatched_resume());
        out
    }

    /// Marks the lines of file `id` up to `end` (a [`TailLine::end`]) as processed.
    /// Acknowledging a line acknowledges every earlier line of that file; acks that go
    /// backwards are ignored. Returns false when `id` names no followed file (forgotten,
    /// or truncated since the line was read), or `end` was never handed out.
    pub fn ack(&mut self, id: &FileId, end: u64) -> bool {
        let Some(f) = self
            .files
            .iter_mut()
            .find(|f| f.dev == id.dev && f.ino == id.ino)
        else {
            return false;
        };
        if end > f.split.line_start() || f.prefix.fingerprint_at(end) != id.fingerprint {
            return false;
        }
        f.acked = f.acked.max(end);
        true
    }

    /// How long nobody has written to any followed file, by the files' modification times
    /// at the latest poll. A file read to its end a moment ago may have been finished an
    /// hour before (a backlog, a folder copied in with its times kept): the writer has been
    /// quiet that long, however recently we caught up. None when no file is followed, or a
    /// file has no modification time or one in the future (a clock we cannot trust), so
    /// the caller falls back to timing the quiet itself.
    pub fn quiet_for(&self) -> Option<Duration> {
        let now = SystemTime::now();
        let mut quiet: Option<Duration> = None;
        for f in &self.files {
            let age = now.duration_since(f.modified?).ok()?;
            quiet = Some(quiet.map_or(age, |q| q.min(age)));
        }
        quiet
    }

    /// How many files are followed (open) now.
    pub fn file_count(&self) -> usize {
        self.files.len()
    }

    /// Before the first poll nothing is matched yet: report the resume positions as they
    /// are, so a checkpoint written then loses nothing. Afterwards, positions of files
    /// that were not found expire.
    fn unmatched_resume(&self) -> Vec<Position> {
        if !self.first_poll {
            return Vec::new();
        }
        self.pending.values().flatten().cloned().collect()
    }

    /// Re-globs; updates which followed files are still matched (and under what name);
    /// opens new files, resuming them from a checkpoint when one names them.
    fn discover(&mut self, now: Instant) {
        let mut found: Vec<((u64, u64), PathBuf)> = Vec::new();
        let mut seen = HashSet::new();
        for pattern in &self.globs {
            let Ok(paths) = glob::glob(pattern) else {
                continue;
            };
            for path in paths.flatten() {
                // A file under two names (hard link, symlink) is followed once.
                let Ok(meta) = fs::metadata(&path) else {
                    continue;
                };
                if meta.is_file() && seen.insert(id_of(&meta)) {
                    found.push((id_of(&meta), path));
                }
            }
        }

        // Where the globs last saw each file: a new file at one of these paths comes
        // after the file that left it (the newest one, if several did).
        let mut previous: HashMap<PathBuf, u64> = self
            .files
            .iter()
            .map(|f| (f.glob_path.clone(), f.key))
            .collect();

        let index: HashMap<(u64, u64), usize> = self
            .files
            .iter()
            .enumerate()
            .map(|(i, f)| ((f.dev, f.ino), i))
            .collect();
        let was_matched: Vec<bool> = self.files.iter().map(|f| f.matched).collect();
        for f in &mut self.files {
            f.matched = false;
        }
        let mut fresh = Vec::new();
        for (key, path) in found {
            match index.get(&key) {
                Some(&i) => {
                    let f = &mut self.files[i];
                    f.matched = true;
                    if f.path != path {
                        info!(from = %f.shown, to = %path.display(), "followed file was renamed");
                        f.set_path(path.clone());
                    }
                    f.glob_path = path;
                }
                None => fresh.push(path),
            }
        }
        for (f, was) in self.files.iter_mut().zip(was_matched) {
            if was && !f.matched {
                // Rotated away or deleted: look for its new name next to the old one.
                let dir = f.path.parent().unwrap_or(Path::new("."));
                match find_in_dir(dir, &HashSet::from([(f.dev, f.ino)])).pop() {
                    Some((_, new)) => {
                        info!(from = %f.shown, to = %new.display(), "followed file was rotated; reading it to its end");
                        f.set_path(new);
                    }
                    None => {
                        info!(path = %f.shown, "followed file is gone; reading it to its end")
                    }
                }
            }
        }

        // Open the new files first, so the resume positions they claim are settled
        // before looking elsewhere for the rest.
        let mut opened: Vec<Opened> = Vec::new();
        let mut unreadable = HashSet::new();
        for path in fresh {
            let file = match File::open(&path) {
                Ok(file) => file,
                Err(e) => {
                    if !self.unreadable.contains(&path) {
                        warn!(path = %path.display(), error = %e, "cannot open file; will retry");
                    }
                    unreadable.insert(path);
                    continue;
                }
            };
            let Ok(meta) = file.metadata() else { continue };
            let id = id_of(&meta);
            if self.files.iter().any(|f| (f.dev, f.ino) == id) || opened.iter().any(|o| o.id == id)
            {
                continue; // raced with a rename: already ours
            }
            let key = self.next_key;
            self.next_key += 1;
            let resume = self.take_resume(id, &file, meta.len());
            if let Resume::At(p) = &resume {
                let was = PathBuf::from(&p.path);
                if was != path {
                    previous.entry(was).or_insert(key);
                }
            }
            opened.push(Opened {
                key,
                path,
                file,
                id,
                len: meta.len(),
                resume,
            });
        }

        self.unreadable = unreadable;

        if self.first_poll {
            self.resume_rotated_while_stopped(now, &mut previous);
        }

        let opened_ids: HashSet<(u64, u64)> = opened.iter().map(|o| o.id).collect();
        for o in opened {
            let (start, how) = match &o.resume {
                Resume::At(p) => (p.offset, "resuming from checkpoint"),
                Resume::Stale(p) => {
                    if self.first_poll {
                        self.recover_truncated(&o, p, &opened_ids, now, &mut previous);
                    }
                    (
                        0,
                        "checkpoint does not match the content (inode reused, or truncated \
                         while stopped); reading from the start",
                    )
                }
                Resume::Unknown
                    if self.first_poll
                        && !self.resumed_from_checkpoint
                        && self.opts.start_at_end_for_new_files =>
                {
                    match last_line_end(&o.file, o.len, self.opts.max_line_bytes) {
                        Ok(end) => (end, "starting at the end"),
                        Err(_) => (0, "new file"),
                    }
                }
                Resume::Unknown => (0, "new file"),
            };
            let after = previous
                .get(&o.path)
                .copied()
                .filter(|&before| !self.waits_for(before, o.key));
            let glob_path = o.path.clone();
            // There at the start with nothing checkpointed: history, whatever its age.
            let history = self.first_poll && !matches!(o.resume, Resume::At(_));
            match self.follow(
                o.key, o.path, glob_path, o.file, o.id, start, true, after, history, now,
            ) {
                Ok(f) => {
                    info!(path = %f.shown, offset = start, "{how}");
                    self.files.push(f);
                }
                Err(e) => warn!(error = %e, "cannot read the start of a new file; will retry"),
            }
        }
    }

    /// True when `file` is `target` or waits, through its predecessors, for `target`.
    /// Path hints from a mixed-up checkpoint could otherwise make two files wait for each
    /// other forever.
    fn waits_for(&self, file: u64, target: u64) -> bool {
        let mut at = Some(file);
        let mut steps = 0;
        while let Some(k) = at {
            if k == target || steps > self.files.len() {
                return true;
            }
            steps += 1;
            at = self.files.iter().find(|f| f.key == k).and_then(|f| f.after);
        }
        false
    }

    /// First poll only: checkpointed files that no glob matches any more were probably
    /// rotated while we were stopped. Look for them by inode in the folder they were in,
    /// and read their rest (vectordotdev/vector#22954).
    ///
    /// One found with other content than its checkpoint was also truncated while stopped
    /// (copytruncate, then renamed by the next rotation, possibly across a restart that
    /// was killed before it checkpointed): when the copy of what was truncated is next to
    /// it, the copy's rest is read first, then the file from its start. Without such a
    /// copy the inode may have been reused by an unrelated file: left alone.
    fn resume_rotated_while_stopped(&mut self, now: Instant, previous: &mut HashMap<PathBuf, u64>) {
        let mut by_dir: HashMap<PathBuf, HashSet<(u64, u64)>> = HashMap::new();
        for (key, positions) in &self.pending {
            for p in positions {
                let dir = Path::new(&p.path).parent().unwrap_or(Path::new("."));
                by_dir.entry(dir.to_path_buf()).or_default().insert(*key);
            }
        }
        let mut dirs: Vec<_> = by_dir.into_iter().collect();
        dirs.sort_by(|a, b| a.0.cmp(&b.0));
        // (order in the checkpoint, copy first, path, file, id, start, checkpoint)
        let mut found = Vec::new();
        for (dir, wanted) in dirs {
            for (key, path) in find_in_dir(&dir, &wanted) {
                if !self.pending.contains_key(&key) {
                    continue;
                }
                let Ok(file) = File::open(&path) else {
                    continue;
                };
                let Ok(meta) = file.metadata() else { continue };
                if id_of(&meta) != key {
                    continue;
                }
                let order = self.resume_order.get(&key).copied().unwrap_or(usize::MAX);
                match self.take_resume(key, &file, meta.len()) {
                    Resume::At(p) => found.push((order, 1, path, file, key, p.offset, p)),
                    Resume::Stale(p) if p.offset > 0 => {
                        let here = path.parent().unwrap_or(Path::new(".")).to_path_buf();
                        let Some((copy, copy_file, copy_id)) =
                            self.find_copy(&p, &here, &HashSet::new())
                        else {
                            continue; // a reused inode, not ours
                        };
                        info!(path = %path.display(), was = %p.path, copy = %copy.display(), "file was truncated and renamed while stopped; reading the rest of its copy first");
                        found.push((order, 0, copy, copy_file, copy_id, p.offset, p.clone()));
                        found.push((order, 1, path, file, key, 0, p));
                    }
                    Resume::Stale(_) | Resume::Unknown => {}
                }
            }
        }
        // Several files rotated one after another are read one after another, in the
        // order they were found in (their content's order), not side by side: the
        // engine would take the newer file's events for late ones.
        found.sort_by_key(|f| (f.0, f.1));
        let mut before: Option<u64> = None;
        for (_, _, path, file, key, start, p) in found {
            let k = self.next_key;
            self.next_key += 1;
            let was = PathBuf::from(&p.path);
            match self.follow(k, path, was, file, key, start, false, before, false, now) {
                Ok(f) => {
                    info!(path = %f.shown, was = %p.path, offset = start, "resuming a file rotated while stopped");
                    previous.insert(PathBuf::from(&p.path), k);
                    self.files.push(f);
                    before = Some(k);
                }
                Err(e) => {
                    warn!(path = %p.path, error = %e, "cannot read a file rotated while stopped")
                }
            }
        }
        // A file that now holds a path one of them had waits for the last of them.
        if let Some(last) = before {
            for k in previous.values_mut() {
                if self.files.iter().any(|f| f.key == *k && !f.matched) {
                    *k = last;
                }
            }
        }
    }

    /// First poll only: a checkpointed file found truncated (copytruncate while we were
    /// stopped). Its lines after the checkpoint are in the copy, if the copy is still
    /// next to it: a file in the same folder, not followed, at least as long as the
    /// checkpoint's offset and with the checkpoint's fingerprint there. The copy is read
    /// from the checkpoint's offset to its end before the truncated file from its start.
    /// Without a copy those lines are lost: counted (see [`Tailer::take_unrecovered`])
    /// and logged.
    fn recover_truncated(
        &mut self,
        o: &Opened,
        p: &Position,
        opened: &HashSet<(u64, u64)>,
        now: Instant,
        previous: &mut HashMap<PathBuf, u64>,
    ) {
        if p.offset == 0 {
            return; // nothing was read of it
        }
        let here = o.path.parent().unwrap_or(Path::new("."));
        let best = self.find_copy(p, here, opened);
        let Some((path, file, id)) = best else {
            self.unrecovered += 1;
            warn!(path = %o.path.display(), checkpoint = p.offset, "file was truncated while stopped and no copy of it was found next to it: its lines after the checkpoint are lost");
            return;
        };
        let k = self.next_key;
        self.next_key += 1;
        let was = o.path.clone();
        // After the files rotated away before it, if any.
        let before = previous.get(&o.path).copied();
        match self.follow(k, path, was, file, id, p.offset, false, before, false, now) {
            Ok(f) => {
                info!(path = %f.shown, truncated = %o.path.display(), offset = p.offset, "file was truncated while stopped; reading the rest of its copy first");
                previous.insert(o.path.clone(), k);
                self.files.push(f);
            }
            Err(e) => {
                self.unrecovered += 1;
                warn!(path = %o.path.display(), error = %e, "cannot read the copy of a file truncated while stopped: its lines after the checkpoint are lost");
            }
        }
    }

    /// The copy of a file truncated while stopped: a file in the checkpoint's folder (or
    /// `here`, where the truncated file is now), not followed or checkpointed, at least as
    /// long as the checkpoint's offset and with the checkpoint's fingerprint there. The
    /// newest such file: an older one from an earlier copytruncate starts the same way
    /// only when the file starts with a long constant header.
    fn find_copy(
        &self,
        p: &Position,
        here: &Path,
        opened: &HashSet<(u64, u64)>,
    ) -> Option<(PathBuf, File, (u64, u64))> {
        let n = self.opts.fingerprint_bytes;
        let mut dirs = vec![Path::new(&p.path).parent().unwrap_or(Path::new("."))];
        if !dirs.contains(&here) {
            dirs.push(here);
        }
        let mut best: Option<(SystemTime, PathBuf, File, (u64, u64))> = None;
        for dir in dirs {
            let Ok(entries) = fs::read_dir(dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let Ok(meta) = entry.metadata() else { continue };
                let id = id_of(&meta);
                if !meta.is_file()
                    || meta.len() < p.offset
                    || opened.contains(&id)
                    || self.files.iter().any(|f| (f.dev, f.ino) == id)
                    || self.pending.contains_key(&id)
                    || id == (p.id.dev, p.id.ino)
                {
                    continue;
                }
                let Ok(file) = File::open(entry.path()) else {
                    continue;
                };
                let same = Prefix::read(&file, n, p.offset)
                    .is_ok_and(|prefix| prefix.fingerprint_at(p.offset) == p.id.fingerprint);
                let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                if same && best.as_ref().is_none_or(|b| modified > b.0) {
                    best = Some((modified, entry.path(), file, id));
                }
            }
        }
        best.map(|(_, path, file, id)| (path, file, id))
    }

    /// How many files were found truncated while stopped with no copy to recover their
    /// lines after the checkpoint from, since the last call.
    pub fn take_unrecovered(&mut self) -> u64 {
        std::mem::take(&mut self.unrecovered)
    }

    /// Matches an opened file against the resume positions naming its inode.
    fn take_resume(&mut self, key: (u64, u64), file: &File, len: u64) -> Resume {
        let Some(candidates) = self.pending.remove(&key) else {
            return Resume::Unknown;
        };
        let n = self.opts.fingerprint_bytes;
        let mut best: Option<Position> = None;
        let mut stale: Option<Position> = None;
        for p in candidates {
            if stale.as_ref().is_none_or(|s| p.offset > s.offset) {
                stale = Some(p.clone());
            }
            if p.offset > len {
                continue;
            }
            let matches = Prefix::read(file, n, p.offset)
                .map(|prefix| prefix.fingerprint_at(p.offset) == p.id.fingerprint)
                .unwrap_or(false);
            // Offsets only grow over a file's life: of two matching positions for the
            // same file (a mixed-up checkpoint), the larger one is the newer.
            if matches && best.as_ref().is_none_or(|b| p.offset > b.offset) {
                best = Some(p);
            }
        }
        match (best, stale) {
            (Some(p), _) => Resume::At(p),
            (None, Some(p)) => Resume::Stale(p),
            (None, None) => Resume::Unknown,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn follow(
        &self,
        key: u64,
        path: PathBuf,
        glob_path: PathBuf,
        file: File,
        (dev, ino): (u64, u64),
        start: u64,
        matched: bool,
        after: Option<u64>,
        history: bool,
        now: Instant,
    ) -> io::Result<Followed> {
        let prefix = Prefix::read(&file, self.opts.fingerprint_bytes, start)?;
        let modified = file.metadata()?.modified().ok();
        // Every file there at the first look and not checkpointed is history, whatever
        // its age: a folder of logs copied in just before the start is read in order too.
        let old = modified.is_some_and(|m| m.elapsed().is_ok_and(|age| age >= BACKLOG_AFTER));
        let backlog = (history || old).then(|| {
            let starts = self
                .opts
                .order_by
                .as_ref()
                .and_then(|k| (k.0)(&path))
                .or_else(|| {
                    modified
                        .and_then(|m| m.duration_since(SystemTime::UNIX_EPOCH).ok())
                        .map(|d| d.as_millis() as i64)
                })
                .unwrap_or(i64::MAX);
            (starts, path.clone())
        });
        Ok(Followed {
            key,
            shown: shown(&path),
            path,
            glob_path,
            file,
            dev,
            ino,
            prefix,
            split: Splitter::new(start, self.opts.max_line_bytes),
            acked: start,
            header_pending: self.opts.header,
            matched,
            after,
            drained: false,
            backlog,
            last_growth: now,
            modified,
            done: false,
            failing: false,
        })
    }
}

/// One poll turn for one file: notice truncation, deliver the header if owed, read new
/// lines within `budget`, and decide whether a file that left the globs is finished.
fn service(
    f: &mut Followed,
    opts: &TailOptions,
    budget: &mut usize,
    out: &mut Vec<TailLine>,
    now: Instant,
) -> Fate {
    match read_turn(f, opts, budget, out, now) {
        Ok(()) => {
            if f.failing {
                info!(path = %f.shown, "file readable again");
                f.failing = false;
            }
        }
        Err(e) => {
            if !f.matched {
                warn!(path = %f.shown, error = %e, "cannot read a file that left the globs; giving it up");
                return Fate::Forget;
            }
            if !f.failing {
                warn!(path = %f.shown, error = %e, "cannot read file; will retry");
                f.failing = true;
            }
            return Fate::Keep;
        }
    }
    if f.matched || !f.drained || now.duration_since(f.last_growth) < opts.rotated_quiet {
        return Fate::Keep;
    }
    if !f.done {
        if *budget == 0 {
            return Fate::Keep;
        }
        // Nobody will finish its last line now: hand it out as it is.
        if let Some(raw) = f.split.finish() {
            out.push(f.hand_out(raw, opts));
            *budget -= 1;
        }
        f.done = true;
    }
    if opts.explicit_acks && f.acked < f.split.line_start() {
        return Fate::Keep;
    }
    Fate::Forget
}

fn read_turn(
    f: &mut Followed,
    opts: &TailOptions,
    budget: &mut usize,
    out: &mut Vec<TailLine>,
    now: Instant,
) -> io::Result<()> {
    if f.done && !f.matched {
        return Ok(());
    }
    // fstat plus a read of at most `fingerprint_bytes`: cheap enough for every poll, and
    // it also catches a rewrite to exactly the old size (mtimes are too coarse for that).
    let meta = f.file.metadata()?;
    let len = meta.len();
    f.modified = meta.modified().ok();
    let read = f.split.end();
    if len < read || !f.prefix_intact()? {
        info!(path = %f.shown, "file was truncated or rewritten in place; reading it again from the start");
        f.restart(opts, now);
    }

    if f.header_pending && f.split.line_start() > 0 && *budget > 0 {
        match first_line(&f.file, opts.max_line_bytes)? {
            Some(raw) => {
                out.push(f.hand_out_header(raw));
                *budget -= 1;
            }
            None => return Ok(()), // no first line yet: truncated under us; next poll
        }
    }

    let mut chunks = 0;
    loop {
        while *budget > 0 {
            match f.split.next_line() {
                Some(raw) => {
                    out.push(f.hand_out(raw, opts));
                    *budget -= 1;
                }
                None => break,
            }
        }
        if *budget == 0 || chunks == MAX_CHUNKS_PER_TURN {
            f.drained = false;
            return Ok(());
        }
        // Read up to the size seen at the start of the turn: what is appended meanwhile
        // waits for the next poll, and an idle file costs no read at all.
        let at = f.split.end();
        let n = if at < len {
            let file = &f.file;
            f.split.fill(|buf| read_at_retry(file, buf, at))?
        } else {
            0
        };
        if n == 0 {
            f.drained = true;
            f.split.release();
            return Ok(());
        }
        chunks += 1;
        f.prefix.extend(at, f.split.tail(n));
        f.last_growth = now;
    }
}

/// The first line of `file`, read from byte 0 (`None` if it has no complete first line).
fn first_line(file: &File, max: usize) -> io::Result<Option<RawLine>> {
    let mut split = Splitter::new(0, max);
    loop {
        if let Some(raw) = split.next_line() {
            return Ok(Some(raw));
        }
        let at = split.end();
        if split.fill(|buf| read_at_retry(file, buf, at))? == 0 {
            return Ok(None);
        }
    }
}

/// Where the last complete line of a file of length `len` ends: the start for a reader
/// that skips existing content. Looks back at most `max + 2` bytes; past that the line
/// under way is oversized anyway, and starting inside it hands it out as oversized.
fn last_line_end(file: &File, len: u64, max: usize) -> io::Result<u64> {
    let limit = len.saturating_sub(max as u64 + 2);
    let mut buf = vec![0u8; CHUNK];
    let mut end = len;
    while end > limit {
        let start = end.saturating_sub(CHUNK as u64).max(limit);
        let n = (end - start) as usize;
        file.read_exact_at(&mut buf[..n], start)?;
        if let Some(i) = memchr::memrchr(b'\n', &buf[..n]) {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(limit)
}

/// Entries of `dir` whose (device, inode) is in `wanted`, without stat-ing the others.
fn find_in_dir(dir: &Path, wanted: &HashSet<(u64, u64)>) -> Vec<((u64, u64), PathBuf)> {
    let Ok(entries) = fs::read_dir(dir) else {
        debug!(dir = %dir.display(), "cannot list folder");
        return Vec::new();
    };
    let inodes: HashSet<u64> = wanted.iter().map(|(_, ino)| *ino).collect();
    let mut out = Vec::new();
    for entry in entries.flatten() {
        if !inodes.contains(&entry.ino()) {
            continue;
        }
        if let Ok(meta) = entry.metadata() {
            let key = id_of(&meta);
            if meta.is_file() && wanted.contains(&key) {
                out.push((key, entry.path()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_all(chunks: &[&[u8]], max: usize) -> (Vec<RawLine>, Option<RawLine>) {
        let mut s = Splitter::new(0, max);
        let mut lines = Vec::new();
        for c in chunks {
            s.fill(|buf| {
                buf[..c.len()].copy_from_slice(c);
                Ok(c.len())
            })
            .unwrap();
            while let Some(l) = s.next_line() {
                lines.push(l);
            }
        }
        (lines, s.finish())
    }

    fn raw(offset: u64, end: u64, text: &str, oversized: bool) -> RawLine {
        RawLine {
            offset,
            end,
            text: text.into(),
            oversized,
        }
    }

    #[test]
    fn splits_across_chunks_and_strips_crlf() {
        let (lines, rest) = split_all(&[b"ab", b"c\r\nde\n", b"\nf"], 10);
        assert_eq!(
            lines,
            vec![
                raw(0, 5, "abc", false),
                raw(5, 8, "de", false),
                raw(8, 9, "", false)
            ]
        );
        assert_eq!(rest, Some(raw(9, 10, "f", false)));
    }

    #[test]
    fn bytes_of_an_earlier_read_are_not_read_again() {
        // The second read lands where the first's bytes (and a newline) still lie.
        let (lines, rest) = split_all(&[b"abcdefgh\nab", b"c", b"d\n"], 20);
        assert_eq!(
            lines,
            vec![raw(0, 9, "abcdefgh", false), raw(9, 14, "abcd", false)]
        );
        assert_eq!(rest, None);
    }

    #[test]
    fn oversized_line_is_cut_and_skipped_to_its_newline() {
        let (lines, rest) = split_all(&[b"0123", b"456789", b"abc\nok\n"], 4);
        assert_eq!(
            lines,
            vec![raw(0, 14, "0123", true), raw(14, 17, "ok", false)]
        );
        assert_eq!(rest, None);
    }

    #[test]
    fn limit_applies_without_the_terminator() {
        let (lines, _) = split_all(&[b"abcd\r\n", b"abcde\n"], 4);
        assert_eq!(
            lines,
            vec![raw(0, 6, "abcd", false), raw(6, 12, "abcd", true)]
        );
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        let (lines, _) = split_all(&[b"a\xffb\n"], 10);
        assert_eq!(lines[0].text, "a\u{fffd}b");
    }

    #[test]
    fn unfinished_oversized_line_holds_its_position() {
        let mut s = Splitter::new(100, 3);
        s.fill(|b| {
            b[..8].copy_from_slice(b"x\nabcdef");
            Ok(8)
        })
        .unwrap();
        assert_eq!(s.next_line(), Some(raw(100, 102, "x", false)));
        assert_eq!(s.next_line(), None);
        assert_eq!(s.line_start(), 102);
        assert_eq!(s.end(), 108);
        assert_eq!(s.finish(), Some(raw(102, 108, "abc", true)));
    }

    #[test]
    fn prefix_fingerprint_depends_only_on_covered_bytes() {
        let mut p = Prefix::new(4);
        p.extend(0, b"ab");
        let short = p.fingerprint_at(2);
        p.extend(2, b"cdef");
        assert_eq!(p.fingerprint_at(2), short);
        assert_eq!(p.fingerprint_at(100), FileId::fingerprint_of(b"abcd"));
        assert_eq!(p.fingerprint_at(0), FileId::fingerprint_of(b""));
    }

    #[test]
    fn tailer_can_move_to_the_callers_thread() {
        fn send<T: Send>() {}
        send::<Tailer>();
        send::<ReadOnce>();
        send::<TailLine>();
    }

    /// Polls until `n` lines came (or 5 s passed); their texts.
    fn poll_texts(t: &mut Tailer, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut out = Vec::new();
        while out.len() < n && Instant::now() < deadline {
            let got = t.poll(100).unwrap();
            if got.is_empty() {
                std::thread::sleep(Duration::from_millis(20));
            }
            out.extend(got.into_iter().map(|l| l.text));
        }
        out
    }

    /// Truncates `path` in place (what copytruncate does after its copy).
    fn truncate(path: &Path) {
        fs::OpenOptions::new()
            .write(true)
            .open(path)
            .unwrap()
            .set_len(0)
            .unwrap();
    }

    fn append(path: &Path, text: &str) {
        use std::io::Write;
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    /// The positions taken before the first line (the start checkpoint `run` writes) name
    /// the file, so a file renamed away before any later checkpoint is found again by
    /// inode and read to its end before its successor.
    #[test]
    fn rename_before_the_first_checkpoint_is_found_from_the_start_positions() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("ehr.jsonl");
        append(&log, "a1\na2\n");
        let glob = vec![log.to_string_lossy().into_owned()];
        let mut t = Tailer::new(glob.clone(), TailOptions::default(), &[]);
        t.poll(0).unwrap();
        let start = t.positions();
        assert_eq!(start.len(), 1);
        assert_eq!(start[0].offset, 0);
        // Lines read but never checkpointed, then a rename rotation, then a crash.
        assert_eq!(poll_texts(&mut t, 2), ["a1", "a2"]);
        drop(t);
        append(&log, "a3\n");
        fs::rename(&log, dir.path().join("ehr.jsonl.1")).unwrap();
        append(&dir.path().join("ehr.jsonl.1"), "a4\n");
        append(&log, "b1\nb2\n");
        let mut t = Tailer::new(glob, TailOptions::default(), &start);
        assert_eq!(poll_texts(&mut t, 6), ["a1", "a2", "a3", "a4", "b1", "b2"]);
        assert_eq!(t.take_unrecovered(), 0);
    }

    /// Copytruncate while stopped: the lines after the checkpoint are read from the copy
    /// (same first bytes, at least as long as the checkpoint), then the truncated file
    /// from its start.
    #[test]
    fn copytruncate_while_stopped_recovers_the_rest_from_the_copy() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("ehr.jsonl");
        append(&log, "l1\nl2\nl3\n");
        let glob = vec![log.to_string_lossy().into_owned()];
        let mut t = Tailer::new(glob.clone(), TailOptions::default(), &[]);
        assert_eq!(poll_texts(&mut t, 3), ["l1", "l2", "l3"]);
        let checkpoint = t.positions();
        drop(t);
        append(&log, "l4\nl5\n");
        // An unrelated sibling and an older, shorter copy are not taken for the copy.
        fs::write(dir.path().join("other.log"), b"x1\nx2\nx3\nx4\nx5\nx6\n").unwrap();
        fs::write(dir.path().join("ehr.jsonl.2"), b"l1\nl2\n").unwrap();
        fs::copy(&log, dir.path().join("ehr.jsonl.1")).unwrap();
        truncate(&log);
        append(&log, "n1\nn2\n");
        let mut t = Tailer::new(glob.clone(), TailOptions::default(), &checkpoint);
        assert_eq!(poll_texts(&mut t, 4), ["l4", "l5", "n1", "n2"]);
        assert_eq!(t.take_unrecovered(), 0);

        // Without a copy, the loss is counted and the truncated file read from its start.
        let checkpoint = t.positions();
        drop(t);
        let mine: Vec<_> = checkpoint
            .into_iter()
            .filter(|p| p.path == log.to_string_lossy())
            .collect();
        append(&log, "n3\n");
        fs::remove_file(dir.path().join("ehr.jsonl.1")).unwrap();
        truncate(&log);
        append(&log, "m1\n");
        let mut t = Tailer::new(glob, TailOptions::default(), &mine);
        assert_eq!(poll_texts(&mut t, 1), ["m1"]);
        assert_eq!(t.take_unrecovered(), 1);
    }

    /// Copytruncate while stopped, a restart killed before it checkpointed, then a rename
    /// rotation while stopped: the checkpoint still names the truncated file's inode with
    /// its old content. Found under its new name with other content, it is recognised as
    /// truncated by its copy (now renamed too): the copy's rest first, then the truncated
    /// file from its start, then the new file.
    #[test]
    fn copytruncate_then_rename_while_stopped_reads_the_copy_the_file_and_its_successor() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("ehr.jsonl");
        let at = |n: &str| dir.path().join(n);
        append(&log, "l1\nl2\nl3\n");
        let glob = vec![log.to_string_lossy().into_owned()];
        let mut t = Tailer::new(glob.clone(), TailOptions::default(), &[]);
        assert_eq!(poll_texts(&mut t, 3), ["l1", "l2", "l3"]);
        let checkpoint = t.positions();
        drop(t);
        append(&log, "l4\nl5\n");
        fs::copy(&log, at("ehr.jsonl.1")).unwrap();
        truncate(&log);
        append(&log, "n1\nn2\n");
        // The rename rotation shifts every numbered file.
        fs::rename(at("ehr.jsonl.1"), at("ehr.jsonl.2")).unwrap();
        fs::rename(&log, at("ehr.jsonl.1")).unwrap();
        append(&log, "m1\n");
        let mut t = Tailer::new(glob, TailOptions::default(), &checkpoint);
        assert_eq!(poll_texts(&mut t, 5), ["l4", "l5", "n1", "n2", "m1"]);
        assert_eq!(t.take_unrecovered(), 0);
        // The next checkpoint names all three, so another restart goes on from them.
        let names: Vec<String> = t.positions().into_iter().map(|p| p.path).collect();
        assert_eq!(names.len(), 3, "{names:?}");
    }

    /// An inode of a checkpointed file reused by an unrelated file next to the log, with
    /// no copy of the checkpointed content anywhere, is left alone.
    #[test]
    fn a_reused_inode_without_a_copy_is_not_read_as_a_rotated_file() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("ehr.jsonl");
        append(&log, "l1\nl2\n");
        let glob = vec![log.to_string_lossy().into_owned()];
        let mut t = Tailer::new(glob.clone(), TailOptions::default(), &[]);
        assert_eq!(poll_texts(&mut t, 2), ["l1", "l2"]);
        let checkpoint = t.positions();
        drop(t);
        // Same inode, other content, renamed out of the globs; no copy of "l1\nl2\n".
        truncate(&log);
        append(&log, "zz\n");
        fs::rename(&log, dir.path().join("unrelated.txt")).unwrap();
        append(&log, "m1\n");
        let mut t = Tailer::new(glob, TailOptions::default(), &checkpoint);
        assert_eq!(poll_texts(&mut t, 2), ["m1"]);
    }

    #[test]
    fn last_line_end_finds_the_boundary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, b"one\ntwo\nthr").unwrap();
        let f = File::open(&path).unwrap();
        assert_eq!(last_line_end(&f, 11, 100).unwrap(), 8);
        assert_eq!(last_line_end(&f, 8, 100).unwrap(), 8);
        assert_eq!(last_line_end(&f, 3, 100).unwrap(), 0);
        assert_eq!(last_line_end(&f, 0, 100).unwrap(), 0);
    }
}
