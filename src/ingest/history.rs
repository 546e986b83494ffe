//! History read once, in order, for `replay`: every file of every `file` source, each
//! read and decoded on a thread of its own (decoding is most of a replay's work, so files
//! decode in parallel), merged into the engine's total order (event time, source, file,
//! offset) through a heap that holds each file's next event. How far each decoder may run
//! ahead depends on where the merge is (see `Gate`): the files it reads and the next
//! file of each source decode ahead, later files wait with one batch, so memory stays
//! bounded however many files a history has.

use super::{Decoder, Item, Limits};
use crate::config::{Config, SourceType};
use crate::deadletter::DeadLetter;
use crate::engine;
use crate::event::Event;
use crate::source::{self, TailOptions};
use anyhow::{anyhow, bail, Context, Result};
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::Thread;

/// Lines decoded per batch. Every file of a month is open at once (120 for the simulated
/// hospital), so what waits is multiplied by the files. With 512 lines and two waiting,
/// decoded events in flight were about a third of a large month's peak RSS.
const BATCH: usize = 256;
/// Decoded batches that may wait for the merge in a file it has not reached yet (a later
/// day's file): one, so the files that wait cost little memory.
const WAITING: usize = 1;
/// Decoded batches that may wait in a file the merge is reading. A shallow queue there
/// left a core idle: when the merge waited for one file, the decoder of the other current
/// file was blocked on its own full queue. Eight took the month's replay from 1.45 to
/// 1.2 s; giving every file that depth took 50 MiB more, hence the depths by file.
const AHEAD: usize = 8;
/// Decoded batches that may wait in the file after the one the merge is reading, in the
/// same source (tomorrow's file while today's is read). A day's file decodes on one
/// thread, and the merge needs today's FHIR file faster than one core decodes it; the
/// next file decoding meanwhile on the other core took the month's replay from 1.27 to
/// 1.12 s (median of six) for 13 MiB more.
const NEXT_AHEAD: usize = 32;
/// Batches beyond [`WAITING`] that all files together may have waiting: the depths of
/// [`AHEAD`] and [`NEXT_AHEAD`] are lent from this pool. A history of dated files reads
/// two or three files of a source at a time and never runs short (the month's replay is
/// as fast as with no bound); a history of many files read at once (a source of one file
/// per host, all covering the same month) holds no more than this beyond one batch each,
/// as it did before files ran ahead.
const EXTRA: usize = 128;
/// A gate's limit once nobody takes from its file: its decoder goes on to its send,
/// which fails.
const CLOSED: usize = usize::MAX;

/// A batch of decoded lines and how many lines it covers, or a read error.
type BatchResult = Result<(Vec<Item>, u64), String>;

/// Expands a source's globs into a sorted, de-duplicated list of files.
pub fn expand(globs: &[String]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for g in globs {
        let paths = glob::glob(g).map_err(|e| anyhow!("bad glob {g:?}: {e}"))?;
        for p in paths.flatten() {
            if p.is_file() {
                files.push(p);
            }
        }
    }
    files.sort();
    files.dedup();
    Ok(files)
}

/// The [`EXTRA`] batches not lent out, and the decoders waiting for one. (Not
/// [`super::Pool`], the decoders of a followed source.)
struct Spare {
    free: AtomicUsize,
    waiters: Mutex<Vec<Thread>>,
}

impl Spare {
    fn new(batches: usize) -> Spare {
        Spare {
            free: AtomicUsize::new(batches),
            waiters: Mutex::new(Vec::new()),
        }
    }

    /// Takes one batch from the pool if any is left.
    fn try_take(&self) -> bool {
        self.free
            .fetch_update(AtomicOrdering::AcqRel, AtomicOrdering::Acquire, |f| {
                f.checked_sub(1)
            })
            .is_ok()
    }

    /// Asks to be woken when a batch is given back.
    fn wait_for_one(&self) {
        let mut waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        waiters.push(std::thread::current());
    }

    /// Gives `n` batches back and wakes every decoder waiting for one (each checks again).
    fn give(&self, n: usize) {
        if n == 0 {
            return;
        }
        self.free.fetch_add(n, AtomicOrdering::AcqRel);
        let waiters =
            std::mem::take(&mut *self.waiters.lock().unwrap_or_else(PoisonError::into_inner));
        for t in waiters {
            t.unpark();
        }
    }
}

/// How far a file's decoder may run ahead of the merge, shared by the two.
struct Gate {
    /// Batches sent and not yet taken.
    waiting: AtomicUsize,
    /// Batches that may wait: [`WAITING`] until the merge reads the file before it in its
    /// source ([`NEXT_AHEAD`]), then [`AHEAD`] once it reads this one (it has taken a
    /// batch after the first); [`CLOSED`] once nobody takes from it.
    limit: AtomicUsize,
    /// Of the batches waiting, those lent by the pool.
    lent: AtomicUsize,
    pool: Arc<Spare>,
}

impl Gate {
    fn new(pool: Arc<Spare>) -> Gate {
        Gate {
            waiting: AtomicUsize::new(0),
            limit: AtomicUsize::new(WAITING),
            lent: AtomicUsize::new(0),
            pool,
        }
    }

    /// Blocks the decoder until its file may have one more batch waiting: below
    /// [`WAITING`] at once, below its limit with a batch lent by the pool. The merge
    /// unparks it after each take or change of limit, the pool when a batch comes back;
    /// a wake with nothing changed loops back.
    fn wait_turn(&self) {
        loop {
            let limit = self.limit.load(AtomicOrdering::Acquire);
            let waiting = self.waiting.load(AtomicOrdering::Acquire);
            if limit == CLOSED || waiting < WAITING {
                return;
            }
            if waiting < limit {
                if self.borrow() {
                    return;
                }
                self.pool.wait_for_one();
                // A batch given back before the pool knew of this thread woke nobody.
                if self.borrow() {
                    return;
                }
            }
            std::thread::park();
        }
    }

    fn borrow(&self) -> bool {
        let lent = self.pool.try_take();
        if lent {
            self.lent.fetch_add(1, AtomicOrdering::AcqRel);
        }
        lent
    }

    /// The decoder sent a batch (after [`Gate::wait_turn`], but for the file's last).
    fn sent(&self) {
        self.waiting.fetch_add(1, AtomicOrdering::AcqRel);
    }

    /// The merge took a batch: one the pool lent to this file goes back to it.
    fn taken(&self) {
        self.waiting.fetch_sub(1, AtomicOrdering::AcqRel);
        let returned = self
            .lent
            .fetch_update(AtomicOrdering::AcqRel, AtomicOrdering::Acquire, |l| {
                l.checked_sub(1)
            })
            .is_ok();
        if returned {
            self.pool.give(1);
        }
    }

    /// Nobody takes from the file any more: its decoder may go on (its sends then fail)
    /// and what the pool lent it goes back.
    fn close(&self) {
        self.limit.store(CLOSED, AtomicOrdering::Release);
        self.pool.give(self.lent.swap(0, AtomicOrdering::AcqRel));
    }
}

/// A file's gate and its decoding thread, which wakes to look at the gate again whenever
/// the merge changes it.
#[derive(Clone)]
struct Decoding {
    gate: Arc<Gate>,
    thread: Thread,
}

impl Decoding {
    fn raise(&self, limit: usize) {
        self.gate.limit.store(limit, AtomicOrdering::Release);
        self.thread.unpark();
    }

    fn took(&self) {
        self.gate.taken();
        self.thread.unpark();
    }

    fn close(&self) {
        self.gate.close();
        self.thread.unpark();
    }
}

/// One input file: its decoding thread's output and what of it is not taken yet.
struct FileReader {
    source: Arc<str>,
    rx: Receiver<BatchResult>,
    decoding: Decoding,
    /// Batches taken so far.
    taken: u64,
    /// The same source's next file, which may decode further ahead once the merge reads
    /// this one.
    next: Option<Decoding>,
    /// The batch being taken, in order. The batch's own vector, not a queue it is copied
    /// into: an item is a few hundred bytes, and copying every event once more showed as
    /// `memmove` under the merge in profiles.
    pending: std::vec::IntoIter<Item>,
}

/// Starts the thread that reads `path` with the file source's splitter and decodes it.
fn spawn_decoder(
    path: PathBuf,
    mut decoder: Decoder,
    pool: Arc<Spare>,
) -> Result<(Receiver<BatchResult>, Decoding)> {
    let opts = TailOptions {
        header: decoder.wants_header(),
        ..TailOptions::default()
    };
    let lines = source::read_once(&path, &opts)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let shown: Arc<str> = Arc::from(path.to_string_lossy().as_ref());
    // The channel's own bound is the deepest; the gate holds the file to its limit.
    let (tx, rx) = sync_channel(NEXT_AHEAD.max(AHEAD));
    let gate = Arc::new(Gate::new(pool));
    let ours = gate.clone();
    let handle = std::thread::Builder::new()
        .name("replay-decode".into())
        .stack_size(512 * 1024)
        .spawn(move || {
            let mut batch = Vec::with_capacity(BATCH);
            let mut count = 0u64;
            for line in lines {
                let line = match line {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = tx.send(Err(format!("reading {shown}: {e}")));
                        return;
                    }
                };
                count += 1;
                decoder.decode(line, &mut batch);
                if batch.len() >= BATCH {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                    ours.wait_turn();
                    ours.sent();
                    if tx.send(Ok((full, count))).is_err() {
                        return;
                    }
                    count = 0;
                }
            }
            decoder.finish(&shown, &mut batch);
            ours.sent();
            let _ = tx.send(Ok((batch, count)));
        })?;
    let thread = handle.thread().clone();
    Ok((rx, Decoding { gate, thread }))
}

/// A decoder parked at its gate would wait forever once nobody takes from its file (a
/// replay that stops early): close the gate and wake it, so it goes on to its send, which
/// fails once the receiver is dropped, and the thread ends and closes its file.
impl Drop for FileReader {
    fn drop(&mut self) {
        self.decoding.close();
    }
}

impl FileReader {
    /// The next event of this file; rejected lines go to the dead letter on the way.
    fn next_event(&mut self, dl: &mut DeadLetter, counts: &mut Counts) -> Result<Option<Event>> {
        loop {
            match self.pending.next() {
                Some(Item::Event(e)) => return Ok(Some(e)),
                Some(Item::Ignored(kind)) => {
                    *counts
                        .ignored
                        .entry((self.source.to_string(), kind.to_string()))
                        .or_default() += 1;
                }
                Some(Item::Rejected {
                    file,
                    offset,
                    line,
                    reject,
                }) => dl.reject(&self.source, &file, offset, &line, &reject)?,
                None => match self.rx.recv() {
                    Ok(Ok((items, n))) => {
                        counts.lines += n;
                        self.pending = items.into_iter();
                        self.taken += 1;
                        if self.taken == 2 {
                            self.decoding.raise(AHEAD);
                            if let Some(next) = &self.next {
                                next.raise(NEXT_AHEAD);
                            }
                        }
                        self.decoding.took();
                    }
                    Ok(Err(e)) => bail!("{e}"),
                    Err(_) => return Ok(None),
                },
            }
        }
    }
}

/// A file's next event, with its time in milliseconds worked out once (see
/// [`engine::order_at`]). Boxed here, once, for the rest of its way: the merge heap
/// moves heads along a path of the heap on every event, and the engine's reorder buffer
/// holds events boxed too, so it takes this box as it is (an event is a few hundred bytes;
/// moving it whole was most of the merge's time).
struct Head {
    ts: i64,
    event: Box<Event>,
    reader: usize,
}

impl PartialEq for Head {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Head {}
impl PartialOrd for Head {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Head {
    fn cmp(&self, o: &Self) -> Ordering {
        engine::order_at(o.ts, &o.event, self.ts, &self.event).then(o.reader.cmp(&self.reader))
    }
}

/// What reading has seen besides events.
#[derive(Debug, Default)]
pub struct Counts {
    /// Lines read so far (blank lines and headers included).
    pub lines: u64,
    /// Well-formed records that are not a person's access to patient data, by (source,
    /// kind).
    pub ignored: std::collections::BTreeMap<(String, String), u64>,
}

/// Every file of a config's `file` sources, merged in the engine's total order.
pub struct History {
    readers: Vec<FileReader>,
    heap: BinaryHeap<Head>,
    pub counts: Counts,
}

impl History {
    /// Opens every file the `file` sources' globs match now and starts decoding them.
    /// Rejected lines of the first batches go to `dl` already.
    pub fn open(cfg: &Config, dl: &mut DeadLetter) -> Result<History> {
        if cfg.sources.iter().all(|s| s.kind != SourceType::File) {
            bail!("the config has no `type = \"file\"` source to replay");
        }
        let tz = cfg.timezone()?;
        let mut readers = Vec::new();
        let pool = Arc::new(Spare::new(EXTRA));
        for s in cfg.sources.iter().filter(|s| s.kind == SourceType::File) {
            for path in expand(&s.paths)? {
                let decoder = Decoder::new(s, tz, Limits::from_config(cfg))
                    .with_context(|| format!("source {:?}", s.name))?;
                let (rx, decoding) = spawn_decoder(path, decoder, pool.clone())
                    .with_context(|| format!("source {:?}", s.name))?;
                readers.push(FileReader {
                    source: Arc::from(s.name.as_str()),
                    rx,
                    decoding,
                    taken: 0,
                    next: None,
                    pending: Vec::new().into_iter(),
                });
            }
        }
        // Files of a source are in name order, which for rotated or dated logs is the
        // order the merge reaches them.
        for i in 1..readers.len() {
            if readers[i].source == readers[i - 1].source {
                readers[i - 1].next = Some(readers[i].decoding.clone());
            }
        }
        let mut h = History {
            readers,
            heap: BinaryHeap::new(),
            counts: Counts::default(),
        };
        for i in 0..h.readers.len() {
            if let Some(event) = h.readers[i].next_event(dl, &mut h.counts)? {
                h.heap.push(Head {
                    ts: event.ts.timestamp_millis(),
                    event: Box::new(event),
                    reader: i,
                });
            }
        }
        Ok(h)
    }

    /// Files being read.
    pub fn files(&self) -> usize {
        self.readers.len()
    }

    /// The next event in total order, or `None` at the end of every file.
    pub fn next_event(&mut self, dl: &mut DeadLetter) -> Result<Option<Box<Event>>> {
        let Some(Head { event, reader, .. }) = self.heap.pop() else {
            return Ok(None);
        };
        if let Some(next) = self.readers[reader].next_event(dl, &mut self.counts)? {
            self.heap.push(Head {
                ts: next.ts.timestamp_millis(),
                event: Box::new(next),
                reader,
            });
        }
        Ok(Some(event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::sync::mpsc::channel;
    use std::time::Duration;

    /// A file holds at its limit of waiting batches until a batch is taken or the merge
    /// raises the limit (reaching the file, or the one before it).
    #[test]
    fn a_gate_holds_a_file_to_its_limit_until_a_take_or_a_raise() {
        let gate = Arc::new(Gate::new(Arc::new(Spare::new(EXTRA))));
        gate.waiting.store(WAITING, AtomicOrdering::Release);
        let (done, passed) = channel();
        let theirs = gate.clone();
        let decoder = std::thread::spawn(move || {
            theirs.wait_turn();
            // As far ahead as a file the merge reads may be: waits for a take.
            theirs.waiting.store(AHEAD, AtomicOrdering::Release);
            done.send(()).unwrap();
            theirs.wait_turn();
            done.send(()).unwrap();
        });
        assert!(
            passed.recv_timeout(Duration::from_millis(100)).is_err(),
            "a file not reached, with a batch waiting, must not decode further"
        );
        gate.limit.store(AHEAD, AtomicOrdering::Release);
        decoder.thread().unpark();
        passed
            .recv_timeout(Duration::from_secs(10))
            .expect("reached: may go on");
        assert!(passed.recv_timeout(Duration::from_millis(100)).is_err());
        gate.waiting.fetch_sub(1, AtomicOrdering::AcqRel);
        decoder.thread().unpark();
        passed
            .recv_timeout(Duration::from_secs(10))
            .expect("a batch taken: may go on");
        decoder.join().unwrap();
    }

    /// Files of `dir` this process has open.
    fn open_in(dir: &Path) -> usize {
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter(|target| target.starts_with(dir))
            .count()
    }

    /// Writes `files` files of `lines` canonical events each under `dir`, all covering the
    /// same minutes, and a config with one source over them.
    fn same_minutes(dir: &Path, files: usize, lines: usize) -> Config {
        let mut text = String::new();
        for i in 0..lines {
            text.push_str(&format!(
                "{{\"ts\":\"2026-03-02T10:{:02}:{:02}Z\",\"user\":\"u1\",\"action\":\"view\",\"patient\":\"P{i}\"}}\n",
                i / 60 % 60,
                i % 60
            ));
        }
        for f in 0..files {
            std::fs::write(dir.join(format!("host{f:03}.jsonl")), &text).unwrap();
        }
        Config::from_toml(&format!(
            "[[sources]]\nname = \"e\"\ntype = \"file\"\nformat = \"canonical\"\npaths = [\"{}/*.jsonl\"]\n",
            dir.display()
        ))
        .unwrap()
    }

    /// Many files read at once (one per host, the same month) share the pool: together
    /// they hold at most [`EXTRA`] batches beyond one each, where each alone would run
    /// [`AHEAD`] batches ahead.
    #[test]
    fn files_read_at_once_share_one_pool_of_batches() {
        let dir = tempfile::tempdir().unwrap();
        let files = 40;
        let cfg = same_minutes(dir.path(), files, BATCH * (AHEAD + 4));
        let mut dl = DeadLetter::new(&dir.path().join("dead-letter.ndjson"));
        let mut history = History::open(&cfg, &mut dl).unwrap();
        // The files' events interleave, so this reaches every file.
        for _ in 0..BATCH * files * 3 / 2 {
            history.next_event(&mut dl).unwrap().unwrap();
        }
        std::thread::sleep(Duration::from_millis(500));
        let waiting: usize = history
            .readers
            .iter()
            .map(|r| r.decoding.gate.waiting.load(AtomicOrdering::Acquire))
            .sum();
        assert!(
            history.readers.iter().all(|r| r.taken >= 2),
            "every file is reached"
        );
        // A decoder may count a batch lent to it an instant before it sends it: one more
        // per file at most.
        assert!(
            waiting <= files * (WAITING + 1) + EXTRA,
            "{waiting} batches waiting in {files} files"
        );
        assert!(
            waiting > files * WAITING,
            "files read ahead: {waiting} waiting"
        );
    }

    /// A history dropped before its files are read (a replay stopping early) leaves no
    /// decoder parked at its gate: each thread ends and closes its file.
    #[test]
    fn dropping_a_history_early_ends_its_decoders() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = same_minutes(dir.path(), 3, BATCH * (NEXT_AHEAD + 4));
        let mut dl = DeadLetter::new(&dir.path().join("dead-letter.ndjson"));
        let mut history = History::open(&cfg, &mut dl).unwrap();
        // The merge reads the first file, so it and the next decode ahead, then park.
        for _ in 0..BATCH * 2 {
            history.next_event(&mut dl).unwrap().unwrap();
        }
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(open_in(dir.path()), 3, "each decoder holds its file open");
        drop(history);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while open_in(dir.path()) > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "a decoder is still parked with its file open"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
