//! A bounded, on-disk FIFO buffer ("spool") of events and marks.
//!
//! The agent turns audit-log lines into events and produces them to Kafka.
//! When Kafka is unreachable, the agent keeps reading its sources into this
//! spool instead of dropping events or stalling, and drains it in order once
//! Kafka is back. After each batch of events the agent appends a *mark*: the
//! source read positions (opaque JSON to the spool). The agent checkpoints a
//! mark's positions only once Kafka has acknowledged every event before it,
//! so a crash never loses an event (it may produce some twice).
//!
//! # Files
//!
//! The spool is a folder of segment files named `{segment:016}.spool` (the
//! segment number, zero-padded so that names sort in order). Segments are
//! numbered consecutively. Only the newest segment is written; a new one is
//! started when it grows past the segment size (8 MiB by default), so that
//! acknowledged data can be freed by deleting whole files rather than by
//! rewriting them.
//!
//! # Framing
//!
//! Each segment is a sequence of records, each framed as:
//!
//! ```text
//! [u32 LE body length][u32 LE crc32 of body][body]
//! ```
//!
//! and the body is one of:
//!
//! ```text
//! event: [u8 1][u16 LE key length][key bytes (UTF-8)][payload]
//! mark:  [u8 2][payload]
//! ```
//!
//! The CRC (computed with `crc32fast`) covers the whole body, so a torn or
//! bit-flipped record is detected rather than handed to Kafka. A body length
//! of zero or above [`MAX_BODY_LEN`] (64 MiB) is treated as corruption
//! without allocating it, because a damaged length field could otherwise ask
//! for up to 4 GiB.
//!
//! # Positions
//!
//! A [`Cursor`] names a byte offset within a segment. The cursor at the end
//! of segment N is equivalent to the start of segment N+1: readers step over
//! the boundary and [`Spool::release`] treats both the same way.
//!
//! # Crash recovery
//!
//! [`Spool::open`] never trusts what it finds. It checks every record from the
//! acknowledged cursor on; at the first torn or corrupt record (or a missing
//! segment) it cuts the spool there. It then also cuts every record after the
//! last intact mark: those events belong to a batch whose source positions
//! were never recorded, so the agent reads them again from its sources, and
//! keeping them would produce them twice.
//!
//! The spool assumes a single process uses the folder at a time.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::ops::Bound;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The largest record body accepted. Anything longer is corruption: no event
/// is that large, and refusing it keeps a damaged length field from making us
/// allocate gigabytes.
pub const MAX_BODY_LEN: u32 = 64 << 20;

/// The default size past which a new segment file is started. Large enough to
/// keep the number of files (and folder fsyncs) small, small enough that
/// releasing acknowledged data frees disk space promptly.
pub const DEFAULT_SEGMENT_BYTES: u64 = 8 << 20;

/// The length of the frame header: body length and CRC.
const HEADER_LEN: u64 = 8;
const TYPE_EVENT: u8 = 1;
const TYPE_MARK: u8 = 2;
const TYPE_BROADCAST: u8 = 3;
/// Buffer size for the writer and the reader. Events are small, so buffering
/// saves one system call per record.
const IO_BUFFER: usize = 64 << 10;

/// Where a record starts (or the end of one): segment number and byte offset in it.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Cursor {
    /// The segment number (the file `{segment:016}.spool`).
    pub segment: u64,
    /// The byte offset in that segment.
    pub offset: u64,
}

/// One record in the spool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// One event: the Kafka key and the JSON payload.
    Event {
        /// The Kafka message key (at most 65535 bytes).
        key: String,
        /// The message value.
        payload: Vec<u8>,
    },
    /// Opaque bytes (the agent's source positions as JSON) marking the end of a batch.
    Mark(Vec<u8>),
    /// A message for every partition of the topic (the agent's heartbeat): ordered after
    /// every event spooled before it, in each partition.
    Broadcast(Vec<u8>),
}

/// What [`Spool::open`] found and repaired.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// The payload of the last intact Mark at or after `acked` (None if there is none).
    ///
    /// The agent resumes reading its sources from these positions, since
    /// everything before them is either acknowledged or still in the spool.
    pub last_mark: Option<Vec<u8>>,
    /// Bytes cut off: a torn or corrupt tail, and any records after the last mark.
    pub truncated_bytes: u64,
    /// True when a record failed its CRC or length check (not just an incomplete batch).
    ///
    /// A record cut short by a crash (a torn write), a zero-filled tail, an
    /// undecodable body and a missing segment file all count as corrupt.
    pub corrupt: bool,
    /// Number of intact records kept after `acked` (events and marks).
    pub records: u64,
}

/// A bounded on-disk FIFO of [`Record`]s. See the module documentation.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    /// Segments that are no longer written, with their sizes.
    closed: BTreeMap<u64, u64>,
    /// The sum of the sizes in `closed`.
    closed_bytes: u64,
    /// The segment being written.
    write_seg: u64,
    /// The size of the write segment, including bytes still in `writer`'s buffer.
    write_off: u64,
    writer: BufWriter<File>,
    /// A segment file was created or deleted since the folder was last fsynced.
    dir_dirty: bool,
    /// A write, flush or fsync failed. After that we no longer know what is on
    /// disk (a failed fsync may have dropped dirty pages), so writing refuses
    /// to go on until the spool is reopened and checked.
    broken: bool,
    read: Cursor,
    reader: Option<SegmentReader>,
}

/// An open segment file for reading, kept between calls so that draining
/// does not reopen the file for every record.
#[derive(Debug)]
struct SegmentReader {
    segment: u64,
    /// The file position of `file`, to skip seeks (which drop the buffer).
    pos: u64,
    file: BufReader<File>,
}

/// The result of reading one frame.
enum Frame {
    /// An intact record and the number of bytes it took.
    Record(Record, u64),
    /// Nothing left to read.
    End,
    /// A torn or corrupt frame, and why.
    Bad(String),
}

impl Spool {
    /// Opens (creating the folder if needed) the spool in `dir`. Segments entirely before
    /// `acked` are deleted. Every record from `acked` on is read and checked; at the first
    /// record that is torn or fails its CRC, the spool is cut there and all later segments are
    /// deleted; records after the last intact Mark are also cut (an incomplete batch whose
    /// positions were never recorded, so they will be read again from the source). The read
    /// cursor starts at `acked`; writing continues at the end.
    ///
    /// A gap in the segment numbers after `acked` means a file was lost, and
    /// is treated like a corrupt record at the end of the segment before it.
    /// The repairs are fsynced before this returns, so a crash during
    /// recovery cannot bring the cut records back.
    pub fn open(dir: &Path, max_bytes: u64, acked: Cursor) -> io::Result<(Spool, Recovery)> {
        fs::create_dir_all(dir).map_err(|e| annotate(e, "cannot create spool folder", dir))?;
        let mut segments = list_segments(dir)?;
        let mut recovery = Recovery::default();
        let mut dir_dirty = false;

        // Everything before `acked` was delivered. A segment at `acked` that is
        // shorter than `acked` should not happen, but then all of it was
        // delivered too.
        let delivered: Vec<u64> = segments
            .iter()
            .filter(|&(&s, &len)| s < acked.segment || (s == acked.segment && len < acked.offset))
            .map(|(&s, _)| s)
            .collect();
        for s in delivered {
            remove_segment(dir, s)?;
            segments.remove(&s);
            dir_dirty = true;
        }

        let start = match segments.keys().next() {
            Some(&s) if s == acked.segment => acked,
            Some(&s) => Cursor {
                segment: s,
                offset: 0,
            },
            // Nothing left: start a fresh segment that sorts after `acked`.
            None if acked.offset > 0 => Cursor {
                segment: acked.segment + 1,
                offset: 0,
            },
            None => Cursor {
                segment: acked.segment,
                offset: 0,
            },
        };

        // Check every record from `start` on. `cut` ends up just after the
        // last intact mark (or at `start` when there is none).
        let mut cut = start;
        let mut count = 0u64;
        let mut previous: Option<u64> = None;
        'scan: for (&s, &len) in &segments {
            if previous.is_some_and(|p| p + 1 != s) {
                recovery.corrupt = true;
                break;
            }
            previous = Some(s);
            let path = segment_path(dir, s);
            let mut pos = if s == start.segment { start.offset } else { 0 };
            let file = File::open(&path).map_err(|e| annotate(e, "cannot open", &path))?;
            let mut reader = BufReader::with_capacity(IO_BUFFER, file);
            reader
                .seek(SeekFrom::Start(pos))
                .map_err(|e| annotate(e, "cannot seek in", &path))?;
            loop {
                let frame = read_frame(&mut reader, len - pos)
                    .map_err(|e| annotate(e, "cannot read", &path))?;
                match frame {
                    Frame::End => break,
                    Frame::Record(record, n) => {
                        pos += n;
                        count += 1;
                        if let Record::Mark(payload) = record {
                            recovery.last_mark = Some(payload);
                            recovery.records = count;
                            cut = Cursor {
                                segment: s,
                                offset: pos,
                            };
                        }
                    }
                    Frame::Bad(_) => {
                        recovery.corrupt = true;
                        break 'scan;
                    }
                }
            }
        }

        // Cut at `cut`. Later segments go first, newest first, so that a crash
        // in the middle never leaves a gap followed by records that would
        // look intact.
        let later: Vec<(u64, u64)> = segments
            .range((Bound::Excluded(cut.segment), Bound::Unbounded))
            .rev()
            .map(|(&s, &len)| (s, len))
            .collect();
        for (s, len) in later {
            remove_segment(dir, s)?;
            segments.remove(&s);
            recovery.truncated_bytes += len;
            dir_dirty = true;
        }
        let path = segment_path(dir, cut.segment);
        let file = match segments.remove(&cut.segment) {
            Some(len) => {
                let file = OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .map_err(|e| annotate(e, "cannot open", &path))?;
                if len > cut.offset {
                    recovery.truncated_bytes += len - cut.offset;
                    file.set_len(cut.offset)
                        .and_then(|()| file.sync_all())
                        .map_err(|e| annotate(e, "cannot truncate", &path))?;
                }
                file
            }
            None => {
                dir_dirty = true;
                create_segment(&path)?
            }
        };
        if dir_dirty {
            sync_dir(dir)?;
        }

        let closed_bytes = segments.values().sum();
        let spool = Spool {
            dir: dir.to_path_buf(),
            max_bytes,
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            closed: segments,
            closed_bytes,
            write_seg: cut.segment,
            write_off: cut.offset,
            writer: BufWriter::with_capacity(IO_BUFFER, file),
            dir_dirty: false,
            broken: false,
            read: acked,
            reader: None,
        };
        Ok((spool, recovery))
    }

    /// Sets the size past which a new segment file is started (at least 1).
    /// Meant for tests, which need several segments without writing megabytes.
    pub fn with_segment_bytes(mut self, segment_bytes: u64) -> Spool {
        self.segment_bytes = segment_bytes.max(1);
        self
    }

    /// The spool folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends a record (buffered). Starts a new segment file when the current one passes
    /// `segment_bytes` (default 8 MiB; settable with `with_segment_bytes` for tests).
    ///
    /// The record is durable only after [`Spool::sync`]. A key longer than
    /// 65535 bytes or a body above [`MAX_BODY_LEN`] is refused, because
    /// reopening would reject it as corrupt.
    pub fn append(&mut self, rec: &Record) -> io::Result<()> {
        self.check_usable()?;
        let frame = encode(rec)?;
        if self.write_off >= self.segment_bytes {
            self.roll(true)?;
        }
        if let Err(e) = self.writer.write_all(&frame) {
            self.broken = true;
            return Err(annotate(e, "cannot write", &self.write_path()));
        }
        self.write_off += frame.len() as u64;
        Ok(())
    }

    /// Flushes buffered writes and fdatasyncs the current segment (and the folder when a segment was created).
    ///
    /// Finished segments were fdatasynced when they were closed, so after
    /// this returns everything appended so far survives a crash.
    pub fn sync(&mut self) -> io::Result<()> {
        self.check_usable()?;
        self.flush_writer()?;
        if let Err(e) = self.writer.get_ref().sync_data() {
            self.broken = true;
            return Err(annotate(e, "cannot fdatasync", &self.write_path()));
        }
        if self.dir_dirty {
            sync_dir(&self.dir)?;
            self.dir_dirty = false;
        }
        Ok(())
    }

    /// Bytes held on disk from the oldest kept segment to the end (what bounds the spool).
    pub fn bytes(&self) -> u64 {
        self.closed_bytes + self.write_off
    }

    /// bytes() >= max_bytes: the agent stops reading its sources until the spool drains.
    pub fn is_full(&self) -> bool {
        self.bytes() >= self.max_bytes
    }

    /// The bound given to [`Spool::open`].
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Reads the record at the read cursor and advances it; None at the end of what was
    /// written (including buffered-but-unsynced records: reading must see appended records
    /// after sync(); it may flush the writer first). Returns the record and the cursor just after it.
    ///
    /// Records were checked by [`Spool::open`] or written by us, so a bad
    /// record here means the files changed under us: that is an
    /// `InvalidData` error naming the file and offset, not a silent skip.
    pub fn read_next(&mut self) -> io::Result<Option<(Record, Cursor)>> {
        let at = self.resolve(self.read);
        self.read = at;
        let end = if at.segment == self.write_seg {
            self.write_off
        } else if let Some(&len) = self.closed.get(&at.segment) {
            len
        } else {
            return Ok(None);
        };
        if at.offset >= end {
            return Ok(None);
        }
        if at.segment == self.write_seg && !self.writer.buffer().is_empty() {
            self.flush_writer()?;
        }
        // The file's name only when it is opened or named in an error: formatting it for
        // every record was a few percent of the agent's producing thread.
        let dir = &self.dir;
        let path = || segment_path(dir, at.segment);
        let reader = match &mut self.reader {
            Some(reader) if reader.segment == at.segment => reader,
            slot => {
                let file = File::open(path()).map_err(|e| annotate(e, "cannot open", &path()))?;
                slot.insert(SegmentReader {
                    segment: at.segment,
                    pos: 0,
                    file: BufReader::with_capacity(IO_BUFFER, file),
                })
            }
        };
        if reader.pos != at.offset {
            reader
                .file
                .seek(SeekFrom::Start(at.offset))
                .map_err(|e| annotate(e, "cannot seek in", &path()))?;
            reader.pos = at.offset;
        }
        let frame = match read_frame(&mut reader.file, end - at.offset) {
            Ok(frame) => frame,
            Err(e) => {
                self.reader = None;
                return Err(annotate(e, "cannot read", &path()));
            }
        };
        match frame {
            Frame::Record(record, n) => {
                reader.pos += n;
                self.read = Cursor {
                    segment: at.segment,
                    offset: at.offset + n,
                };
                Ok(Some((record, self.read)))
            }
            Frame::End => Ok(None),
            Frame::Bad(why) => {
                self.reader = None;
                Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "corrupt spool record in {} at offset {}: {why}",
                        path().display(),
                        at.offset
                    ),
                ))
            }
        }
    }

    /// The read cursor.
    pub fn read_cursor(&self) -> Cursor {
        self.read
    }

    /// Moves the read cursor back (to re-send after a failed delivery).
    ///
    /// The cursor should be one returned by [`Spool::read_next`] or given to
    /// [`Spool::open`]; a cursor in the middle of a record makes the next
    /// read fail its checks.
    pub fn rewind(&mut self, to: Cursor) {
        self.read = to;
    }

    /// Everything before `upto` is acknowledged: deletes segment files wholly before it and
    /// updates bytes(). Never deletes the segment being written.
    ///
    /// One exception keeps a small spool from deadlocking: when everything
    /// written is acknowledged and the spool is still full (`max_bytes` is
    /// at or below one segment), the write segment is finished, a new one is
    /// started, and the old one is deleted. Deletions are not fsynced: a
    /// segment that comes back after a crash is before the acknowledged
    /// cursor and is deleted again by [`Spool::open`].
    pub fn release(&mut self, upto: Cursor) -> io::Result<()> {
        let upto = self.resolve(upto);
        while let Some((&s, &len)) = self.closed.first_key_value() {
            if s >= upto.segment {
                break;
            }
            self.delete_closed(s, len)?;
        }
        if !self.broken
            && self.is_full()
            && self.closed.is_empty()
            && self.write_off > 0
            && upto >= self.write_end()
        {
            let old = self.write_seg;
            self.roll(false)?;
            self.delete_closed(old, self.closed[&old])?;
        }
        Ok(())
    }

    /// True when the read cursor is at the end of what was written.
    pub fn is_drained(&self) -> bool {
        self.resolve(self.read) >= self.write_end()
    }

    /// Moves `c` forward over segment ends and missing segments, so that the
    /// end of segment N and the start of N+1 compare the same.
    fn resolve(&self, mut c: Cursor) -> Cursor {
        while c.segment < self.write_seg {
            match self.closed.get(&c.segment) {
                Some(&len) if c.offset < len => break,
                _ => {
                    let next = self
                        .closed
                        .range((Bound::Excluded(c.segment), Bound::Unbounded))
                        .next()
                        .map_or(self.write_seg, |(&s, _)| s);
                    c = Cursor {
                        segment: next,
                        offset: 0,
                    };
                }
            }
        }
        c
    }

    fn write_end(&self) -> Cursor {
        Cursor {
            segment: self.write_seg,
            offset: self.write_off,
        }
    }

    fn write_path(&self) -> PathBuf {
        segment_path(&self.dir, self.write_seg)
    }

    fn check_usable(&self) -> io::Result<()> {
        if self.broken {
            return Err(io::Error::other(format!(
                "spool in {} failed an earlier write; reopen it to recover",
                self.dir.display()
            )));
        }
        Ok(())
    }

    fn flush_writer(&mut self) -> io::Result<()> {
        if let Err(e) = self.writer.flush() {
            self.broken = true;
            return Err(annotate(e, "cannot write", &self.write_path()));
        }
        Ok(())
    }

    /// Finishes the write segment and starts the next one. `sync_old` makes
    /// the finished segment durable first, so that [`Spool::sync`] only has
    /// to look at the current segment.
    fn roll(&mut self, sync_old: bool) -> io::Result<()> {
        self.flush_writer()?;
        // Written without a let chain so the module also builds in edition 2021.
        let synced = if sync_old {
            self.writer.get_ref().sync_data()
        } else {
            Ok(())
        };
        if let Err(e) = synced {
            self.broken = true;
            return Err(annotate(e, "cannot fdatasync", &self.write_path()));
        }
        let next = self.write_seg + 1;
        let file = create_segment(&segment_path(&self.dir, next))?;
        self.closed.insert(self.write_seg, self.write_off);
        self.closed_bytes += self.write_off;
        self.writer = BufWriter::with_capacity(IO_BUFFER, file);
        self.write_seg = next;
        self.write_off = 0;
        self.dir_dirty = true;
        Ok(())
    }

    fn delete_closed(&mut self, segment: u64, len: u64) -> io::Result<()> {
        remove_segment(&self.dir, segment)?;
        self.closed.remove(&segment);
        self.closed_bytes -= len;
        if self.reader.as_ref().is_some_and(|r| r.segment == segment) {
            self.reader = None;
        }
        Ok(())
    }
}

/// Builds the frame (header and body) for a record.
fn encode(rec: &Record) -> io::Result<Vec<u8>> {
    let header = HEADER_LEN as usize;
    let mut frame = vec![0u8; header];
    match rec {
        Record::Event { key, payload } => {
            let key_len = u16::try_from(key.len()).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("event key of {} bytes is above 65535", key.len()),
                )
            })?;
            frame.reserve(3 + key.len() + payload.len());
            frame.push(TYPE_EVENT);
            frame.extend_from_slice(&key_len.to_le_bytes());
            frame.extend_from_slice(key.as_bytes());
            frame.extend_from_slice(payload);
        }
        Record::Mark(payload) => {
            frame.reserve(1 + payload.len());
            frame.push(TYPE_MARK);
            frame.extend_from_slice(payload);
        }
        Record::Broadcast(payload) => {
            frame.reserve(1 + payload.len());
            frame.push(TYPE_BROADCAST);
            frame.extend_from_slice(payload);
        }
    }
    let body_len = frame.len() - header;
    if body_len > MAX_BODY_LEN as usize {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("spool record of {body_len} bytes is above {MAX_BODY_LEN}"),
        ));
    }
    let crc = crc32fast::hash(&frame[header..]);
    frame[0..4].copy_from_slice(&(body_len as u32).to_le_bytes());
    frame[4..8].copy_from_slice(&crc.to_le_bytes());
    Ok(frame)
}

/// Decodes a body whose CRC matched.
fn decode(mut body: Vec<u8>) -> Result<Record, String> {
    match body.first() {
        Some(&TYPE_EVENT) => {
            if body.len() < 3 {
                return Err(format!("event body of {} bytes is too short", body.len()));
            }
            let key_len = u16::from_le_bytes([body[1], body[2]]) as usize;
            if 3 + key_len > body.len() {
                return Err(format!(
                    "event key of {key_len} bytes overruns a body of {} bytes",
                    body.len()
                ));
            }
            let payload = body.split_off(3 + key_len);
            let key = String::from_utf8(body.split_off(3))
                .map_err(|_| "event key is not UTF-8".to_string())?;
            Ok(Record::Event { key, payload })
        }
        Some(&TYPE_MARK) => Ok(Record::Mark(body.split_off(1))),
        Some(&TYPE_BROADCAST) => Ok(Record::Broadcast(body.split_off(1))),
        Some(&t) => Err(format!("unknown record type {t}")),
        None => Err("empty body".to_string()),
    }
}

/// Reads one frame from `r`, which has `remaining` bytes left before the end
/// of what was written. Lengths are checked against `remaining` before the
/// body is allocated.
fn read_frame<R: Read>(r: &mut R, remaining: u64) -> io::Result<Frame> {
    if remaining == 0 {
        return Ok(Frame::End);
    }
    if remaining < HEADER_LEN {
        return Ok(Frame::Bad(format!(
            "torn header: {remaining} bytes left, {HEADER_LEN} needed"
        )));
    }
    let mut header = [0u8; HEADER_LEN as usize];
    r.read_exact(&mut header)?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len == 0 {
        return Ok(Frame::Bad("zero body length".to_string()));
    }
    if len > MAX_BODY_LEN {
        return Ok(Frame::Bad(format!(
            "body length {len} is above {MAX_BODY_LEN}"
        )));
    }
    if HEADER_LEN + u64::from(len) > remaining {
        return Ok(Frame::Bad(format!(
            "torn record: body length {len}, {} bytes left",
            remaining - HEADER_LEN
        )));
    }
    let mut body = vec![0u8; len as usize];
    r.read_exact(&mut body)?;
    let actual = crc32fast::hash(&body);
    if actual != crc {
        return Ok(Frame::Bad(format!(
            "crc mismatch: stored {crc:08x}, computed {actual:08x}"
        )));
    }
    Ok(match decode(body) {
        Ok(record) => Frame::Record(record, HEADER_LEN + u64::from(len)),
        Err(why) => Frame::Bad(why),
    })
}

fn segment_path(dir: &Path, segment: u64) -> PathBuf {
    dir.join(format!("{segment:016}.spool"))
}

/// Parses `{segment:016}.spool`. Other names are not ours and are left alone.
fn parse_segment_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".spool")?;
    if stem.len() != 16 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// The segment files in `dir` and their sizes.
fn list_segments(dir: &Path) -> io::Result<BTreeMap<u64, u64>> {
    let mut segments = BTreeMap::new();
    let entries = fs::read_dir(dir).map_err(|e| annotate(e, "cannot list spool folder", dir))?;
    for entry in entries {
        let entry = entry.map_err(|e| annotate(e, "cannot list spool folder", dir))?;
        let Some(segment) = entry.file_name().to_str().and_then(parse_segment_name) else {
            continue;
        };
        let path = entry.path();
        let meta = fs::metadata(&path).map_err(|e| annotate(e, "cannot stat", &path))?;
        if meta.is_file() {
            segments.insert(segment, meta.len());
        }
    }
    Ok(segments)
}

fn create_segment(path: &Path) -> io::Result<File> {
    crate::durable::private()
        .create_new(true)
        .append(true)
        .open(path)
        .map_err(|e| annotate(e, "cannot create", path))
}

/// Deletes a segment file; one that is already gone is fine.
fn remove_segment(dir: &Path, segment: u64) -> io::Result<()> {
    let path = segment_path(dir, segment);
    match fs::remove_file(&path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(annotate(e, "cannot delete", &path)),
        _ => Ok(()),
    }
}

/// Fsyncs the folder, which makes file creations and deletions durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    crate::durable::sync_dir(dir).map_err(|e| annotate(e, "cannot fsync folder", dir))
}

/// Adds what we were doing and the path to an I/O error, keeping its kind.
fn annotate(e: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(i: usize) -> Record {
        Record::Event {
            key: format!("host-{i}"),
            payload: format!("{{\"n\":{i}}}").into_bytes(),
        }
    }

    fn mark(i: usize) -> Record {
        Record::Mark(format!("{{\"pos\":{i}}}").into_bytes())
    }

    fn mark_payload(r: &Record) -> Vec<u8> {
        match r {
            Record::Mark(p) => p.clone(),
            Record::Event { .. } | Record::Broadcast(_) => panic!("not a mark: {r:?}"),
        }
    }

    /// Batches of `per` events followed by a mark.
    fn batches(n: usize, per: usize) -> Vec<Record> {
        let mut out = Vec::new();
        for b in 0..n {
            for e in 0..per {
                out.push(ev(b * per + e));
            }
            out.push(mark(b));
        }
        out
    }

    fn open(dir: &Path, acked: Cursor) -> (Spool, Recovery) {
        Spool::open(dir, u64::MAX, acked).unwrap()
    }

    fn append_all(s: &mut Spool, recs: &[Record]) {
        for r in recs {
            s.append(r).unwrap();
        }
        s.sync().unwrap();
    }

    fn read_all(s: &mut Spool) -> Vec<(Record, Cursor)> {
        let mut out = Vec::new();
        while let Some(item) = s.read_next().unwrap() {
            out.push(item);
        }
        out
    }

    fn records(items: &[(Record, Cursor)]) -> Vec<Record> {
        items.iter().map(|(r, _)| r.clone()).collect()
    }

    fn seg_files(dir: &Path) -> Vec<u64> {
        list_segments(dir).unwrap().into_keys().collect()
    }

    fn disk_bytes(dir: &Path) -> u64 {
        list_segments(dir).unwrap().values().sum()
    }

    fn frame_len(r: &Record) -> u64 {
        encode(r).unwrap().len() as u64
    }

    #[test]
    fn append_sync_read_in_order_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        let (s, _) = open(dir.path(), Cursor::default());
        let mut s = s.with_segment_bytes(64);
        let recs = batches(8, 4);
        append_all(&mut s, &recs);
        let files = seg_files(dir.path());
        assert!(files.len() >= 5, "expected several segments, got {files:?}");
        assert_eq!(files, (0..files.len() as u64).collect::<Vec<_>>());
        assert_eq!(s.bytes(), disk_bytes(dir.path()));

        let got = read_all(&mut s);
        assert_eq!(records(&got), recs);
        assert!(got.windows(2).all(|w| w[0].1 < w[1].1));
        assert!(s.is_drained());
        assert!(s.read_next().unwrap().is_none());
    }

    #[test]
    fn reading_sees_appends_before_sync() {
        let dir = tempfile::tempdir().unwrap();
        let (s, _) = open(dir.path(), Cursor::default());
        let mut s = s.with_segment_bytes(40);
        for i in 0..10 {
            assert!(s.is_drained());
            s.append(&ev(i)).unwrap();
            assert!(!s.is_drained());
            let (r, _) = s.read_next().unwrap().expect("buffered record is readable");
            assert_eq!(r, ev(i));
            assert!(s.read_next().unwrap().is_none());
        }
    }

    #[test]
    fn reopen_with_acked_keeps_unread_records_and_returns_last_mark() {
        let dir = tempfile::tempdir().unwrap();
        let recs = batches(6, 3);
        let acked;
        {
            let (s, _) = open(dir.path(), Cursor::default());
            let mut s = s.with_segment_bytes(64);
            append_all(&mut s, &recs);
            let got = read_all(&mut s);
            // Acknowledge through the third mark.
            acked = got[11].1;
            assert_eq!(got[11].0, mark(2));
        }
        let (mut s, rec) = open(dir.path(), acked);
        assert_eq!(rec.last_mark, Some(mark_payload(&mark(5))));
        assert_eq!(rec.records, 12);
        assert_eq!(rec.truncated_bytes, 0);
        assert!(!rec.corrupt);
        assert_eq!(s.read_cursor(), acked);
        assert!(seg_files(dir.path()).iter().all(|&n| n >= acked.segment));
        assert_eq!(records(&read_all(&mut s)), recs[12..]);
    }

    #[test]
    fn records_after_the_last_mark_are_cut_on_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let batch = batches(1, 3);
        let tail = [ev(100), ev(101), ev(102)];
        let mark_end;
        {
            let (mut s, _) = open(dir.path(), Cursor::default());
            append_all(&mut s, &batch);
            mark_end = s.bytes();
            append_all(&mut s, &tail);
        }
        let tail_bytes: u64 = tail.iter().map(frame_len).sum();
        let (mut s, rec) = open(dir.path(), Cursor::default());
        assert!(!rec.corrupt);
        assert_eq!(rec.truncated_bytes, tail_bytes);
        assert_eq!(rec.records, 4);
        assert_eq!(rec.last_mark, Some(mark_payload(&mark(0))));
        assert_eq!(s.bytes(), mark_end);
        assert_eq!(disk_bytes(dir.path()), mark_end);
        assert_eq!(records(&read_all(&mut s)), batch);

        // Writing goes on at the cut, and survives another reopen.
        let more = [ev(7), mark(7)];
        append_all(&mut s, &more);
        drop(s);
        let (mut s, rec) = open(dir.path(), Cursor::default());
        assert_eq!(
            rec,
            Recovery {
                last_mark: Some(mark_payload(&mark(7))),
                truncated_bytes: 0,
                corrupt: false,
                records: 6,
            }
        );
        let all: Vec<Record> = batch.iter().chain(&more).cloned().collect();
        assert_eq!(records(&read_all(&mut s)), all);
    }

    #[test]
    fn without_any_mark_everything_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (s, _) = open(dir.path(), Cursor::default());
            let mut s = s.with_segment_bytes(32);
            append_all(&mut s, &[ev(1), ev(2), ev(3), ev(4)]);
            assert!(seg_files(dir.path()).len() > 1);
        }
        let (mut s, rec) = open(dir.path(), Cursor::default());
        assert_eq!(rec.last_mark, None);
        assert_eq!(rec.records, 0);
        assert!(!rec.corrupt);
        assert!(rec.truncated_bytes > 0);
        assert_eq!(seg_files(dir.path()), vec![0]);
        assert_eq!(s.bytes(), 0);
        assert!(s.read_next().unwrap().is_none());
    }

    #[test]
    fn torn_tail_is_cut_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let recs = batches(2, 2);
        let first_mark_end;
        {
            let (mut s, _) = open(dir.path(), Cursor::default());
            append_all(&mut s, &recs);
            first_mark_end = read_all(&mut s)[2].1.offset;
        }
        let path = segment_path(dir.path(), 0);
        let len = fs::metadata(&path).unwrap().len();
        // Tear the last record (the second mark) in the middle.
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
        let (mut s, rec) = open(dir.path(), Cursor::default());
        assert!(rec.corrupt);
        assert_eq!(rec.truncated_bytes, len - 3 - first_mark_end);
        assert_eq!(rec.last_mark, Some(mark_payload(&mark(0))));
        assert_eq!(rec.records, 3);
        assert_eq!(fs::metadata(&path).unwrap().len(), first_mark_end);
        assert_eq!(records(&read_all(&mut s)), recs[..3]);
    }

    #[test]
    fn every_truncation_point_recovers_a_prefix_ending_in_a_mark() {
        let src = tempfile::tempdir().unwrap();
        let recs = vec![ev(0), mark(0), ev(1), ev(2), mark(1), mark(2), ev(3)];
        {
            let (mut s, _) = open(src.path(), Cursor::default());
            append_all(&mut s, &recs);
        }
        let full = fs::read(segment_path(src.path(), 0)).unwrap();
        let mut boundaries = vec![0u64];
        for r in &recs {
            boundaries.push(boundaries.last().unwrap() + frame_len(r));
        }
        for cut in 0..=full.len() {
            let dir = tempfile::tempdir().unwrap();
            fs::write(segment_path(dir.path(), 0), &full[..cut]).unwrap();
            let (mut s, rec) = open(dir.path(), Cursor::default());
            let got = records(&read_all(&mut s));
            assert_eq!(got, recs[..got.len()], "cut at {cut}");
            assert!(got.is_empty() || matches!(got.last(), Some(Record::Mark(_))));
            let expect_mark = got.iter().rev().find_map(|r| match r {
                Record::Mark(p) => Some(p.clone()),
                Record::Event { .. } | Record::Broadcast(_) => None,
            });
            assert_eq!(rec.last_mark, expect_mark, "cut at {cut}");
            assert_eq!(rec.records, got.len() as u64);
            assert_eq!(
                rec.corrupt,
                !boundaries.contains(&(cut as u64)),
                "cut at {cut}"
            );
            assert_eq!(rec.truncated_bytes, cut as u64 - s.bytes(), "cut at {cut}");
        }
    }

    /// Writes whole batches until there are three segments. Returns every
    /// record with the cursor where it starts and the one just after it.
    fn three_segments(dir: &Path) -> Vec<(Record, Cursor, Cursor)> {
        let (s, _) = open(dir, Cursor::default());
        let mut s = s.with_segment_bytes(150);
        let mut b = 0;
        while seg_files(dir).len() < 3 {
            for i in 0..2 {
                s.append(&ev(b * 2 + i)).unwrap();
            }
            s.append(&mark(b)).unwrap();
            s.sync().unwrap();
            b += 1;
            assert!(b < 100, "segments never rolled over");
        }
        assert_eq!(seg_files(dir), vec![0, 1, 2]);
        read_all(&mut s)
            .into_iter()
            .map(|(r, end)| {
                let start = Cursor {
                    segment: end.segment,
                    offset: end.offset - frame_len(&r),
                };
                (r, start, end)
            })
            .collect()
    }

    #[test]
    fn flipped_byte_cuts_there_and_deletes_later_segments() {
        for damaged in [0u64, 1] {
            let dir = tempfile::tempdir().unwrap();
            let all = three_segments(dir.path());
            let in_seg: Vec<usize> = (0..all.len())
                .filter(|&i| all[i].1.segment == damaged)
                .collect();
            let idx = in_seg[in_seg.len() / 2];
            assert!(idx > 0);
            let end = all[idx].2;
            let path = segment_path(dir.path(), damaged);
            let mut bytes = fs::read(&path).unwrap();
            // A payload byte: the record still decodes, so only the CRC can tell.
            bytes[end.offset as usize - 2] ^= 0x40;
            fs::write(&path, bytes).unwrap();

            let before = disk_bytes(dir.path());
            let (mut s, rec) = open(dir.path(), Cursor::default());
            let last_mark_idx = (0..idx)
                .rev()
                .find(|&i| matches!(all[i].0, Record::Mark(_)))
                .expect("a mark before the damage");
            assert!(rec.corrupt, "damaged segment {damaged}");
            assert_eq!(rec.last_mark, Some(mark_payload(&all[last_mark_idx].0)));
            assert_eq!(rec.records, last_mark_idx as u64 + 1);
            assert_eq!(rec.truncated_bytes, before - s.bytes());
            let kept_end = all[last_mark_idx].2;
            assert_eq!(
                seg_files(dir.path()),
                (0..=kept_end.segment).collect::<Vec<_>>()
            );
            assert!(kept_end.segment <= damaged);
            let expect: Vec<Record> = all[..=last_mark_idx].iter().map(|x| x.0.clone()).collect();
            assert_eq!(records(&read_all(&mut s)), expect);
        }
    }

    #[test]
    fn missing_middle_segment_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let all = three_segments(dir.path());
        fs::remove_file(segment_path(dir.path(), 1)).unwrap();
        let (mut s, rec) = open(dir.path(), Cursor::default());
        assert!(rec.corrupt);
        assert_eq!(seg_files(dir.path()), vec![0]);
        let kept: Vec<Record> = all
            .iter()
            .filter(|x| x.1.segment == 0)
            .map(|x| x.0.clone())
            .collect();
        let got = records(&read_all(&mut s));
        assert!(!got.is_empty());
        assert_eq!(got, kept[..got.len()]);
    }

    #[test]
    fn zero_filled_tail_is_corrupt_and_cut() {
        let dir = tempfile::tempdir().unwrap();
        let recs = batches(1, 2);
        {
            let (mut s, _) = open(dir.path(), Cursor::default());
            append_all(&mut s, &recs);
        }
        let path = segment_path(dir.path(), 0);
        let len = fs::metadata(&path).unwrap().len();
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(len + 4096).unwrap();
        let (mut s, rec) = open(dir.path(), Cursor::default());
        assert!(rec.corrupt);
        assert_eq!(rec.truncated_bytes, 4096);
        assert_eq!(records(&read_all(&mut s)), recs);
    }

    #[test]
    fn release_deletes_segment_files_and_reduces_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let (s, _) = open(dir.path(), Cursor::default());
        let mut s = s.with_segment_bytes(64);
        append_all(&mut s, &batches(8, 3));
        let got = read_all(&mut s);
        let files = seg_files(dir.path());
        let bytes = s.bytes();

        s.release(got[10].1).unwrap();
        let after = seg_files(dir.path());
        assert!(after.len() < files.len());
        assert!(after.iter().all(|&n| n >= got[10].1.segment));
        assert!(s.bytes() < bytes);
        assert_eq!(s.bytes(), disk_bytes(dir.path()));

        // Releasing everything keeps the segment being written.
        let last = got.last().unwrap().1;
        s.release(last).unwrap();
        assert_eq!(seg_files(dir.path()), vec![last.segment]);
        assert_eq!(s.bytes(), last.offset);
        assert_eq!(s.bytes(), disk_bytes(dir.path()));
        assert!(s.is_drained());
    }

    #[test]
    fn release_at_the_end_of_a_segment_deletes_it() {
        let dir = tempfile::tempdir().unwrap();
        let (s, _) = open(dir.path(), Cursor::default());
        let mut s = s.with_segment_bytes(64);
        append_all(&mut s, &batches(4, 3));
        let got = read_all(&mut s);
        // The last record of segment 0 ends exactly at the end of segment 0.
        let end0 = got
            .iter()
            .map(|x| x.1)
            .filter(|c| c.segment == 0)
            .max()
            .unwrap();
        assert_eq!(
            end0.offset,
            fs::metadata(segment_path(dir.path(), 0)).unwrap().len()
        );
        s.release(end0).unwrap();
        assert!(!seg_files(dir.path()).contains(&0));
        assert_eq!(s.bytes(), disk_bytes(dir.path()));
        // A cursor one byte before the end of a segment keeps it.
        let dir2 = tempfile::tempdir().unwrap();
        let (s2, _) = open(dir2.path(), Cursor::default());
        let mut s2 = s2.with_segment_bytes(64);
        append_all(&mut s2, &batches(4, 3));
        s2.release(Cursor {
            segment: 0,
            offset: end0.offset - 1,
        })
        .unwrap();
        assert!(seg_files(dir2.path()).contains(&0));
    }

    #[test]
    fn is_full_toggles_with_max_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let (s, _) = Spool::open(dir.path(), 200, Cursor::default()).unwrap();
        let mut s = s.with_segment_bytes(64);
        assert_eq!(s.max_bytes(), 200);
        assert!(!s.is_full());
        let mut i = 0;
        while !s.is_full() {
            s.append(&ev(i)).unwrap();
            i += 1;
            assert!(i < 100);
        }
        s.append(&mark(i)).unwrap();
        s.sync().unwrap();
        assert!(s.bytes() >= 200);
        let got = read_all(&mut s);
        s.release(got[2].1).unwrap();
        assert!(s.is_full() || s.bytes() < 200);
        s.release(got.last().unwrap().1).unwrap();
        assert!(!s.is_full());
        assert_eq!(s.bytes(), disk_bytes(dir.path()));
    }

    #[test]
    fn fully_acked_full_spool_with_one_segment_frees_it() {
        // max_bytes below one segment: the write segment alone fills the spool.
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = Spool::open(dir.path(), 100, Cursor::default()).unwrap();
        append_all(&mut s, &batches(3, 3));
        assert!(s.is_full());
        let got = read_all(&mut s);
        let last = got.last().unwrap().1;
        s.release(last).unwrap();
        assert!(!s.is_full());
        assert_eq!(s.bytes(), 0);
        assert_eq!(seg_files(dir.path()), vec![1]);
        assert!(s.is_drained());
        append_all(&mut s, &[ev(9), mark(9)]);
        drop(s);
        let (mut s, rec) = Spool::open(dir.path(), 100, last).unwrap();
        assert_eq!(rec.records, 2);
        assert_eq!(records(&read_all(&mut s)), vec![ev(9), mark(9)]);
    }

    #[test]
    fn rewind_rereads_the_same_records() {
        let dir = tempfile::tempdir().unwrap();
        let (s, _) = open(dir.path(), Cursor::default());
        let mut s = s.with_segment_bytes(48);
        let recs = batches(4, 2);
        append_all(&mut s, &recs);
        let first = read_all(&mut s);
        assert!(s.is_drained());
        s.rewind(first[2].1);
        assert!(!s.is_drained());
        assert_eq!(s.read_cursor(), first[2].1);
        assert_eq!(read_all(&mut s), first[3..]);
        s.rewind(Cursor::default());
        assert_eq!(read_all(&mut s), first);
    }

    #[test]
    fn huge_length_field_is_corrupt_without_allocating() {
        for len in [u32::MAX, MAX_BODY_LEN + 1, MAX_BODY_LEN, 0] {
            let dir = tempfile::tempdir().unwrap();
            let good = encode(&mark(1)).unwrap();
            let mut bytes = good.clone();
            bytes.extend_from_slice(&len.to_le_bytes());
            bytes.extend_from_slice(&[0xAB; 12]);
            fs::write(segment_path(dir.path(), 0), &bytes).unwrap();
            let (mut s, rec) = open(dir.path(), Cursor::default());
            assert!(rec.corrupt, "len {len}");
            assert_eq!(rec.truncated_bytes, 16, "len {len}");
            assert_eq!(rec.last_mark, Some(mark_payload(&mark(1))));
            assert_eq!(records(&read_all(&mut s)), vec![mark(1)]);
        }
    }

    #[test]
    fn corruption_after_open_is_an_error_on_read() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = open(dir.path(), Cursor::default());
        append_all(&mut s, &[ev(1), mark(1)]);
        let path = segment_path(dir.path(), 0);
        let mut bytes = fs::read(&path).unwrap();
        bytes[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        fs::write(&path, bytes).unwrap();
        let err = s.read_next().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn empty_folder_opens_with_default_recovery() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("a").join("spool");
        let (mut s, rec) = open(&sub, Cursor::default());
        assert_eq!(rec, Recovery::default());
        assert!(sub.is_dir());
        assert_eq!(s.bytes(), 0);
        assert!(s.is_drained());
        assert!(s.read_next().unwrap().is_none());
        drop(s);
        // Reopening the still-empty spool is just as clean.
        let (_, rec) = open(&sub, Cursor::default());
        assert_eq!(rec, Recovery::default());
    }

    #[test]
    fn foreign_files_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("notes.txt"), b"hello").unwrap();
        fs::write(dir.path().join("12.spool"), b"not ours").unwrap();
        let (mut s, rec) = open(dir.path(), Cursor::default());
        assert_eq!(rec, Recovery::default());
        append_all(&mut s, &[ev(1), mark(1)]);
        assert_eq!(records(&read_all(&mut s)), vec![ev(1), mark(1)]);
        assert!(dir.path().join("notes.txt").exists());
        assert!(dir.path().join("12.spool").exists());
    }

    #[test]
    fn oversized_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = open(dir.path(), Cursor::default());
        let rec = Record::Event {
            key: "k".repeat(70_000),
            payload: Vec::new(),
        };
        assert_eq!(
            s.append(&rec).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(s.bytes(), 0);
        s.append(&ev(1)).unwrap();
        assert_eq!(s.read_next().unwrap().unwrap().0, ev(1));
    }

    #[test]
    fn cursor_round_trips_through_json() {
        let c = Cursor {
            segment: 3,
            offset: 77,
        };
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(json, r#"{"segment":3,"offset":77}"#);
        assert_eq!(serde_json::from_str::<Cursor>(&json).unwrap(), c);
        assert_eq!(
            segment_path(Path::new("d"), 3),
            Path::new("d/0000000000000003.spool")
        );
        assert_eq!(parse_segment_name("0000000000000003.spool"), Some(3));
        assert_eq!(parse_segment_name("3.spool"), None);
    }
}
