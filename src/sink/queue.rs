//! The fan-out: one queue and one thread per sink, and each sink's disk queue.
//!
//! Design (issue 14, "delivery never stalls detection"): [`SinkSet::send`] never waits for
//! a sink. It appends the alert to every sink's *disk queue* (`<dir>/<sink>.queue`:
//! append-only frames of `u32` length, `u32` CRC-32 and the alert as JSON) and to the
//! sink's in-memory queue, and returns. [`SinkSet::sync`] fsyncs the disk queues; the
//! daemons call it before they record the alerts as handed over (`emitted.log`), so an
//! alert the engine will not produce again after a crash is on disk for every sink.
//!
//! Each sink's thread takes alerts from its queue, renders them in the sink's format
//! under the sink's patient policy, sends them, flushes the sink (file: written and
//! fsynced; syslog tcp/tls: written to the socket and flushed; webhook: a 2xx; kafka: the
//! broker's ack), and only then appends their ids (fsynced) to `<dir>/<sink>.acked`. At
//! start a sink reads its disk queue and its acknowledgements and delivers again, to
//! itself only, every alert it had not acknowledged; an alert the engine produces again
//! that a sink's disk queue already holds is not queued a second time for that sink. When
//! a sink has acknowledged everything, [`SinkSet::compact`] empties both files (the
//! daemons call it only after `emitted.log` holds those ids, so none of them comes again).
//!
//! A failed attempt is retried with exponential backoff (250 ms doubling to a cap of
//! 30 s) for as long as it takes, without touching the other sinks; a
//! [`Permanent`](super::Permanent) error is logged, counted as `failed` and acknowledged
//! (not retried after a restart either).
//!
//! Nothing makes the sending thread wait. `overflow = "block"` (the default) never drops:
//! at most `queue_size` alerts are held in memory; those beyond wait in the disk queue only
//! and the sink's thread reads them back, in order, as it catches up (a set without disk
//! queues holds them all in memory).
//! `overflow = "drop"` drops an alert for that sink once `queue_size` alerts wait for it,
//! counts it in `dropped` and logs an error (at most one line per 10 s, with the count).
//!
//! [`SinkSet::close`] lets every sink deliver what is queued for at most its
//! `close_timeout_secs` ([`SinkSet::close_within`]: at most the time given), then stops
//! waiting: what is left is counted as `failed`, logged, stays in the disk queue and is
//! delivered at the next start. A [`SinkSet::new`] set has no disk queues (tests): there,
//! what is left at close is lost.

use super::{kind_name, Sink, SinkSpec};
use crate::alert::Alert;
use crate::format::Formatter;
use crate::pseudonym::PatientPolicy;
use anyhow::{anyhow, bail, Context as _, Result};
use std::collections::{HashSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// First retry delay; doubled after each failed attempt.
pub const BACKOFF_START: Duration = Duration::from_millis(250);
/// Longest retry delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How often an idle worker calls [`Sink::idle`].
const IDLE_TICK: Duration = Duration::from_millis(200);
/// Least time between two "dropped" log lines of one sink.
const DROP_LOG_EVERY: Duration = Duration::from_secs(10);
/// Most alerts a sink sends before it flushes and acknowledges them.
const BATCH: usize = 256;

/// What a full queue does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// Wait for room: never drops.
    #[default]
    Block,
    /// Drop the alert for this sink, count and log it.
    Drop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueOptions {
    /// Alerts that may wait for this sink (`queue_size`).
    pub size: usize,
    pub overflow: Overflow,
    /// How long `close` keeps trying to deliver (`close_timeout_secs`).
    pub close_timeout: Duration,
}

impl Default for QueueOptions {
    fn default() -> Self {
        QueueOptions {
            size: 10_000,
            overflow: Overflow::Block,
            close_timeout: Duration::from_secs(10),
        }
    }
}

/// Live counters of one sink, shared with its thread; read them with [`SinkStats::snapshot`].
#[derive(Debug, Default)]
pub struct SinkStats {
    /// Alerts waiting in the queue now (a gauge).
    pub queued: AtomicU64,
    /// Alerts delivered.
    pub sent: AtomicU64,
    /// Alerts handed to a transport that cannot confirm delivery (UDP syslog): not `sent`.
    pub unconfirmed: AtomicU64,
    /// Failed attempts (each one, including those later retried successfully).
    pub errors: AtomicU64,
    /// Attempts after a failed one.
    pub retries: AtomicU64,
    /// Alerts dropped because the queue was full (`overflow = "drop"`).
    pub dropped: AtomicU64,
    /// Alerts given up on: a permanent error (HTTP 4xx, ...) or still undelivered when
    /// the close timeout ran out.
    pub failed: AtomicU64,
}

/// A copy of [`SinkStats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub queued: u64,
    pub sent: u64,
    pub unconfirmed: u64,
    pub errors: u64,
    pub retries: u64,
    pub dropped: u64,
    pub failed: u64,
}

impl SinkStats {
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            queued: self.queued.load(Ordering::Relaxed),
            sent: self.sent.load(Ordering::Relaxed),
            unconfirmed: self.unconfirmed.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }
}

/// One sink's name, type and counters, as [`SinkSet::stats`] lists them.
#[derive(Debug, Clone)]
pub struct SinkInfo {
    pub name: String,
    pub kind: &'static str,
    pub stats: Arc<SinkStats>,
}

/// Set once when closing starts; wakes workers sleeping in a backoff.
#[derive(Default)]
struct Shutdown {
    since: Mutex<Option<Instant>>,
    cv: Condvar,
}

impl Shutdown {
    fn begin(&self) {
        let mut g = self.since.lock().unwrap_or_else(|e| e.into_inner());
        if g.is_none() {
            *g = Some(Instant::now());
        }
        self.cv.notify_all();
    }

    fn since(&self) -> Option<Instant> {
        *self.since.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sleeps `d`, or less when closing begins meanwhile.
    fn sleep(&self, d: Duration) {
        let g = self.since.lock().unwrap_or_else(|e| e.into_inner());
        if g.is_some() {
            drop(g);
            std::thread::sleep(d);
            return;
        }
        let _ = self.cv.wait_timeout(g, d);
    }
}

/// One sink's queue, shared by the sending thread and the sink's thread.
#[derive(Default)]
struct Queue {
    inner: Mutex<Inner>,
    cv: Condvar,
}

#[derive(Default)]
struct Inner {
    /// Alerts not yet acknowledged nor taken by the worker.
    pending: VecDeque<Arc<Alert>>,
    /// Alerts the worker took and has not acknowledged yet.
    in_flight: usize,
    /// The disk queue, appended to by [`SinkSet::send`].
    journal: Option<File>,
    journal_path: Option<PathBuf>,
    acked_path: Option<PathBuf>,
    /// Ids the disk queue held at start: not queued again when the engine re-produces them.
    known: HashSet<String>,
    /// Ids acknowledged before the start: skipped when reading the disk queue back.
    acked_at_start: HashSet<String>,
    /// Length of the disk queue's whole frames.
    journal_len: u64,
    /// Where the alerts held on disk only begin (the in-memory queue was full).
    spill_from: Option<u64>,
    /// Most alerts held in memory when there is a disk queue (`queue_size`).
    size: usize,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One frame of a disk queue: length, CRC-32, the alert as JSON.
fn frame(alert: &Alert) -> Vec<u8> {
    let json = serde_json::to_vec(alert).expect("an alert serialises");
    let mut out = Vec::with_capacity(json.len() + 8);
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&json).to_le_bytes());
    out.extend_from_slice(&json);
    out
}

/// The alerts of a disk queue, and the length of its whole frames (a torn or corrupt tail,
/// from a crash mid-write, is cut off there).
fn read_journal(path: &Path) -> Result<(Vec<(Alert, u64)>, u64)> {
    let mut bytes = Vec::new();
    match File::open(path) {
        Ok(mut f) => {
            f.read_to_end(&mut bytes)
                .with_context(|| format!("cannot read {}", path.display()))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
    let mut alerts = Vec::new();
    let mut at = 0usize;
    while at + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes"));
        let Some(json) = bytes.get(at + 8..at + 8 + len) else {
            break;
        };
        if crc32fast::hash(json) != crc {
            break;
        }
        match serde_json::from_slice::<Alert>(json) {
            Ok(a) => alerts.push((a, at as u64)),
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "a disk-queue frame is not an alert; skipped")
            }
        }
        at += 8 + len;
    }
    if at < bytes.len() {
        tracing::warn!(path = %path.display(), kept = at, dropped_bytes = bytes.len() - at, "the disk queue ends in a torn frame (crash mid-write); cut off");
    }
    Ok((alerts, at as u64))
}

/// Reads back up to `max` alerts of the disk queue from `from` (frames before `end`),
/// leaving out those in `skip`; returns them with where reading stopped.
fn read_back(
    path: &Path,
    from: u64,
    end: u64,
    max: usize,
    skip: &HashSet<String>,
) -> Result<(Vec<Alert>, u64)> {
    use std::io::{Seek, SeekFrom};
    let mut f = std::io::BufReader::new(File::open(path)?);
    f.seek(SeekFrom::Start(from))?;
    let mut at = from;
    let mut out = Vec::new();
    while at < end && out.len() < max {
        let mut head = [0u8; 8];
        f.read_exact(&mut head)?;
        let len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes")) as usize;
        let mut json = vec![0u8; len];
        f.read_exact(&mut json)?;
        at += 8 + len as u64;
        if let Ok(a) = serde_json::from_slice::<Alert>(&json) {
            if !skip.contains(&a.id) {
                out.push(a);
            }
        }
    }
    Ok((out, at))
}

fn read_ids(path: &Path) -> Result<HashSet<String>> {
    match File::open(path) {
        Ok(f) => Ok(std::io::BufReader::new(f)
            .lines()
            .map_while(|l| l.ok())
            .filter(|l| !l.trim().is_empty())
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(HashSet::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn file_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

struct Handle {
    info: SinkInfo,
    overflow: Overflow,
    size: usize,
    queue: Arc<Queue>,
    thread: Option<JoinHandle<()>>,
    close_timeout: Duration,
    drop_log: Mutex<(Instant, u64)>,
}

/// Every running sink: fans each alert out to all of them. Closing happens on
/// [`SinkSet::close`] or, silently, when the set is dropped.
pub struct SinkSet {
    sinks: Vec<Handle>,
    shutdown: Arc<Shutdown>,
    /// Where the disk queues are; none: in memory only.
    dir: Option<PathBuf>,
}

impl Default for SinkSet {
    fn default() -> Self {
        SinkSet::new()
    }
}

impl SinkSet {
    /// Sinks with in-memory queues only: what is undelivered at close is lost.
    pub fn new() -> SinkSet {
        SinkSet {
            sinks: Vec::new(),
            shutdown: Arc::new(Shutdown::default()),
            dir: None,
        }
    }

    /// Sinks with their disk queues and acknowledgements in `dir` (created).
    pub fn with_dir(dir: &Path) -> Result<SinkSet> {
        std::fs::create_dir_all(dir).with_context(|| {
            format!(
                "cannot create the sinks' queue folder {}; set [state] dir to a writable folder",
                dir.display()
            )
        })?;
        let mut set = SinkSet::new();
        set.dir = Some(dir.to_path_buf());
        Ok(set)
    }

    /// Opens the sink of `spec` and starts its thread.
    pub fn start(&mut self, spec: SinkSpec) -> Result<()> {
        let sink = spec.open()?;
        self.add_sink(
            &spec.name,
            kind_name(spec.kind),
            sink,
            spec.formatter,
            spec.policy,
            spec.queue,
        )
    }

    /// Starts a thread for an already opened sink (any [`Sink`] implementation).
    pub fn add(
        &mut self,
        name: &str,
        kind: &'static str,
        sink: Box<dyn Sink>,
        formatter: Formatter,
        policy: PatientPolicy,
        opts: QueueOptions,
    ) {
        if let Err(e) = self.add_sink(name, kind, sink, formatter, policy, opts) {
            tracing::error!(sink = %name, error = %format!("{e:#}"), "sink not started");
        }
    }

    fn add_sink(
        &mut self,
        name: &str,
        kind: &'static str,
        sink: Box<dyn Sink>,
        formatter: Formatter,
        policy: PatientPolicy,
        opts: QueueOptions,
    ) -> Result<()> {
        let stats = Arc::new(SinkStats::default());
        let queue = Arc::new(Queue::default());
        let mut acked_file = None;
        if let Some(dir) = &self.dir {
            let journal_path = dir.join(format!("{}.queue", file_name(name)));
            let acked_path = dir.join(format!("{}.acked", file_name(name)));
            let (alerts, good) = read_journal(&journal_path)?;
            let acked = read_ids(&acked_path)?;
            let journal = crate::durable::open_append_private(&journal_path)?;
            if journal.metadata()?.len() > good {
                journal.set_len(good)?;
            }
            let mut g = queue.lock();
            g.size = opts.size.max(1);
            let mut waiting = 0u64;
            for (a, at) in alerts {
                if !acked.contains(&a.id) && g.known.insert(a.id.clone()) {
                    waiting += 1;
                    if g.spill_from.is_none() && g.pending.len() >= g.size {
                        g.spill_from = Some(at);
                    }
                    if g.spill_from.is_none() {
                        g.pending.push_back(Arc::new(a));
                    }
                } else {
                    g.known.insert(a.id.clone());
                }
            }
            if waiting > 0 {
                tracing::info!(sink = %name, alerts = waiting, "delivering again what this sink had not acknowledged");
            }
            stats.queued.store(waiting, Ordering::Relaxed);
            g.acked_at_start = acked;
            g.journal_len = good;
            g.journal = Some(journal);
            g.journal_path = Some(journal_path);
            g.acked_path = Some(acked_path.clone());
            drop(g);
            acked_file = Some(crate::durable::open_append_private(&acked_path)?);
        }
        let mut worker = Worker {
            name: name.to_string(),
            sink,
            formatter,
            policy,
            close_timeout: opts.close_timeout,
            stats: stats.clone(),
            shutdown: self.shutdown.clone(),
            queue: queue.clone(),
            acked: acked_file,
            giving_up: false,
        };
        let thread = std::thread::Builder::new()
            .name(format!("sink-{name}"))
            .spawn(move || worker.run())
            .expect("spawn a sink thread");
        self.sinks.push(Handle {
            info: SinkInfo {
                name: name.to_string(),
                kind,
                stats,
            },
            overflow: opts.overflow,
            size: opts.size.max(1),
            queue,
            thread: Some(thread),
            close_timeout: opts.close_timeout,
            drop_log: Mutex::new((Instant::now() - DROP_LOG_EVERY, 0)),
        });
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.sinks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sinks.is_empty()
    }

    /// Every sink's name, type and live counters.
    pub fn stats(&self) -> Vec<SinkInfo> {
        self.sinks.iter().map(|h| h.info.clone()).collect()
    }

    /// Queues one alert for every sink; never waits for a sink.
    pub fn send(&self, alert: &Alert) {
        self.send_shared(Arc::new(alert.clone()));
    }

    /// Queues one alert for every sink without copying it; never waits for a sink.
    pub fn send_shared(&self, alert: Arc<Alert>) {
        let mut bytes = None;
        for h in &self.sinks {
            let stats = &h.info.stats;
            let mut g = h.queue.lock();
            if g.known.contains(&alert.id) {
                continue; // in this sink's disk queue since before the restart
            }
            if h.overflow == Overflow::Drop && g.pending.len() + g.in_flight >= h.size {
                drop(g);
                let total = stats.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                let mut log = h.drop_log.lock().unwrap_or_else(|e| e.into_inner());
                log.1 += 1;
                if log.0.elapsed() >= DROP_LOG_EVERY {
                    tracing::error!(
                        sink = %h.info.name,
                        dropped = log.1,
                        dropped_total = total,
                        "sink queue is full: alerts DROPPED for this sink (overflow = \"drop\"); \
                         the SIEM behind it is down or too slow, or raise queue_size"
                    );
                    *log = (Instant::now(), 0);
                }
                continue;
            }
            // Beyond `queue_size` (or behind alerts already there), on disk only.
            let disk_only = g.spill_from.is_some() || g.pending.len() >= h.size;
            let mut on_disk = false;
            let len = g.journal_len;
            if let Some(j) = g.journal.as_mut() {
                let b = bytes.get_or_insert_with(|| frame(&alert));
                match j.write_all(b) {
                    Ok(()) => on_disk = true,
                    Err(e) => {
                        // Whole frames only: a frame cut short would end the queue there.
                        let _ = j.set_len(len);
                        tracing::error!(sink = %h.info.name, error = %e, "cannot append to the sink's disk queue; the alert is held in memory only");
                    }
                }
                if on_disk {
                    g.journal_len += b.len() as u64;
                }
            }
            if on_disk && disk_only {
                if g.spill_from.is_none() {
                    g.spill_from = Some(len);
                }
            } else {
                g.pending.push_back(alert.clone());
            }
            stats.queued.fetch_add(1, Ordering::Relaxed);
            drop(g);
            h.queue.cv.notify_one();
        }
    }

    /// Makes every disk queue durable (fsync): what was sent so far survives a crash.
    pub fn sync(&self) -> Result<()> {
        for h in &self.sinks {
            let file = {
                let g = h.queue.lock();
                match &g.journal {
                    Some(j) => j.try_clone()?,
                    None => continue,
                }
            };
            file.sync_data().with_context(|| {
                format!("cannot fsync the disk queue of sink {:?}", h.info.name)
            })?;
        }
        Ok(())
    }

    /// Empties the disk queue and acknowledgements of every sink that has acknowledged
    /// everything. Call only once whatever was sent is recorded as handed over (so the
    /// engine does not produce it again).
    pub fn compact(&self) {
        for h in &self.sinks {
            let mut g = h.queue.lock();
            if !g.pending.is_empty() || g.in_flight > 0 || g.spill_from.is_some() {
                continue;
            }
            if g.journal_len == 0 {
                continue;
            }
            g.journal_len = 0;
            let (Some(j), Some(acked)) = (&g.journal, &g.acked_path) else {
                continue;
            };
            let r = j.set_len(0).and_then(|()| {
                OpenOptions::new()
                    .write(true)
                    .open(acked)
                    .and_then(|f| f.set_len(0))
            });
            if let Err(e) = r {
                tracing::warn!(sink = %h.info.name, error = %e, "cannot empty the sink's disk queue");
            }
        }
    }

    /// Waits until every sink has delivered and acknowledged what was queued. Errors
    /// naming the sinks that did not finish within `timeout`.
    pub fn flush(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let late: Vec<&str> = self
                .sinks
                .iter()
                .filter(|h| {
                    let g = h.queue.lock();
                    !g.pending.is_empty() || g.in_flight > 0 || g.spill_from.is_some()
                })
                .map(|h| h.info.name.as_str())
                .collect();
            if late.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "sinks not flushed within {:?}: {} (they are still retrying; see the log)",
                    timeout,
                    late.join(", ")
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Starts closing without waiting: workers stop backing off beyond their close
    /// timeout. Safe to call from another thread (e.g. a signal handler).
    pub fn begin_close(&self) {
        self.shutdown.begin();
    }

    /// Delivers what is queued (each sink for at most its `close_timeout_secs`) and joins
    /// every sink thread. Errors when alerts were left undelivered.
    pub fn close(mut self) -> Result<()> {
        let longest = self
            .sinks
            .iter()
            .map(|h| h.close_timeout)
            .max()
            .unwrap_or_default();
        self.close_inner(longest + Duration::from_secs(2))
    }

    /// Like [`SinkSet::close`], but returns after `budget` at the latest: a sink still
    /// busy then (a send that hangs) is left behind, and what it holds stays in its disk
    /// queue for the next start.
    pub fn close_within(mut self, budget: Duration) -> Result<()> {
        self.close_inner(budget)
    }

    fn close_inner(&mut self, budget: Duration) -> Result<()> {
        self.shutdown.begin();
        let deadline = Instant::now() + budget;
        let before: Vec<u64> = self
            .sinks
            .iter()
            .map(|h| h.info.stats.failed.load(Ordering::Relaxed))
            .collect();
        for h in &self.sinks {
            h.queue.cv.notify_all();
        }
        let mut problems = Vec::new();
        for (h, failed_before) in self.sinks.iter_mut().zip(before) {
            if let Some(t) = h.thread.take() {
                while !t.is_finished() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(10));
                }
                if t.is_finished() {
                    if t.join().is_err() {
                        problems.push(format!("sink {:?} crashed", h.info.name));
                    }
                } else {
                    let left = h.info.stats.queued.load(Ordering::Relaxed);
                    h.info.stats.failed.fetch_add(left, Ordering::Relaxed);
                    tracing::error!(sink = %h.info.name, left, "sink still busy when closing ran out of time; left behind");
                }
            }
            let s = h.info.stats.snapshot();
            if s.dropped > 0 {
                tracing::error!(sink = %h.info.name, dropped = s.dropped, "alerts were dropped for this sink while running (queue full)");
            }
            let lost = s.failed - failed_before;
            if lost > 0 {
                let kept = if self.dir.is_some() {
                    " (kept in its disk queue for the next start)"
                } else {
                    ""
                };
                problems.push(format!(
                    "sink {:?}: {lost} alerts not delivered before close{kept}",
                    h.info.name
                ));
            }
        }
        self.sinks.clear();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(anyhow!("{}", problems.join("; ")))
        }
    }
}

impl Drop for SinkSet {
    fn drop(&mut self) {
        if !self.sinks.is_empty() {
            let longest = self
                .sinks
                .iter()
                .map(|h| h.close_timeout)
                .max()
                .unwrap_or_default();
            if let Err(e) = self.close_inner(longest + Duration::from_secs(2)) {
                tracing::error!(error = %e, "closing sinks");
            }
        }
    }
}

/// What became of one alert.
enum Outcome {
    Delivered,
    /// A permanent error: acknowledged, never retried.
    Rejected,
    /// The close timeout ran out.
    GaveUp,
}

struct Worker {
    name: String,
    sink: Box<dyn Sink>,
    formatter: Formatter,
    policy: PatientPolicy,
    close_timeout: Duration,
    stats: Arc<SinkStats>,
    shutdown: Arc<Shutdown>,
    queue: Arc<Queue>,
    /// `<sink>.acked`, when the set has disk queues.
    acked: Option<File>,
    /// Set once the close timeout ran out: everything left is counted as failed.
    giving_up: bool,
}

impl Worker {
    fn run(&mut self) {
        loop {
            let batch: Vec<Arc<Alert>> = {
                let mut g = self.queue.lock();
                if g.pending.is_empty() {
                    self.read_back(&mut g);
                }
                let n = g.pending.len().min(BATCH);
                g.in_flight += n;
                g.pending.drain(..n).collect()
            };
            if batch.is_empty() {
                if self.shutdown.since().is_some() {
                    break;
                }
                self.idle();
                let g = self.queue.lock();
                if g.pending.is_empty() {
                    let _ = self.queue.cv.wait_timeout(g, IDLE_TICK);
                }
                continue;
            }
            self.deliver_batch(batch);
            if self.giving_up {
                break;
            }
        }
        if self.giving_up {
            let left = {
                let mut g = self.queue.lock();
                g.pending.clear();
                g.in_flight = 0;
                g.spill_from = None;
                self.stats.queued.load(Ordering::Relaxed)
            };
            self.stats.failed.fetch_add(left, Ordering::Relaxed);
            self.stats.queued.fetch_sub(left, Ordering::Relaxed);
            tracing::error!(
                sink = %self.name,
                left,
                close_timeout_secs = self.close_timeout.as_secs(),
                "alerts still undelivered when the close timeout ran out stay in this sink's disk queue for the next start (without one, they are LOST)"
            );
        }
    }

    /// Takes into memory the next alerts held on disk only.
    fn read_back(&self, g: &mut Inner) {
        let (Some(from), Some(path)) = (g.spill_from, g.journal_path.clone()) else {
            return;
        };
        match read_back(&path, from, g.journal_len, g.size, &g.acked_at_start) {
            Ok((alerts, at)) => {
                g.pending.extend(alerts.into_iter().map(Arc::new));
                g.spill_from = (at < g.journal_len).then_some(at);
            }
            Err(e) => {
                tracing::error!(sink = %self.name, error = %e, "cannot read the sink's disk queue back; its alerts are delivered after a restart");
                g.spill_from = None;
            }
        }
    }

    fn idle(&mut self) {
        if let Err(e) = self.sink.idle() {
            self.stats.errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(sink = %self.name, error = %format!("{e:#}"), "sink housekeeping failed");
        }
    }

    /// Sends a batch, flushes, and acknowledges what was delivered. A failed flush puts
    /// the batch back to be sent again.
    fn deliver_batch(&mut self, batch: Vec<Arc<Alert>>) {
        let mut done = 0;
        for a in &batch {
            match self.deliver(a) {
                Outcome::Delivered | Outcome::Rejected => done += 1,
                Outcome::GaveUp => break,
            }
        }
        if let Err(e) = self.sink.flush() {
            self.stats.errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(sink = %self.name, error = %format!("{e:#}"), "sink flush failed; the batch will be sent again");
            if self.close_time_left().is_some_and(|l| l.is_zero()) {
                self.giving_up = true;
                return; // unacknowledged: counted in `run`
            }
            self.shutdown.sleep(BACKOFF_START);
            let mut g = self.queue.lock();
            g.in_flight -= batch.len();
            for a in batch.iter().rev() {
                g.pending.push_front(a.clone());
            }
            return;
        }
        self.acknowledge(&batch[..done]);
        let mut g = self.queue.lock();
        g.in_flight -= done;
        drop(g);
        self.stats.queued.fetch_sub(done as u64, Ordering::Relaxed);
    }

    /// Records the alerts as delivered to this sink (fsynced).
    fn acknowledge(&mut self, alerts: &[Arc<Alert>]) {
        let Some(f) = self.acked.as_mut() else {
            return;
        };
        if alerts.is_empty() {
            return;
        }
        let mut buf = String::new();
        for a in alerts {
            buf.push_str(&a.id);
            buf.push('\n');
        }
        if let Err(e) = f.write_all(buf.as_bytes()).and_then(|()| f.sync_data()) {
            self.stats.errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!(sink = %self.name, error = %e, "cannot record acknowledgements; these alerts may be delivered again after a restart");
        }
    }

    fn close_time_left(&self) -> Option<Duration> {
        let since = self.shutdown.since()?;
        Some((since + self.close_timeout).saturating_duration_since(Instant::now()))
    }

    /// Delivers one alert, retrying.
    fn deliver(&mut self, alert: &Alert) -> Outcome {
        let line = self.formatter.render(alert, &self.policy);
        let mut backoff = BACKOFF_START;
        let mut attempt = 1u32;
        loop {
            match self.sink.send_alert(alert, &line) {
                Ok(()) => {
                    if self.sink.confirms_delivery() {
                        self.stats.sent.fetch_add(1, Ordering::Relaxed);
                    } else {
                        self.stats.unconfirmed.fetch_add(1, Ordering::Relaxed);
                    }
                    if attempt > 1 {
                        tracing::info!(sink = %self.name, attempts = attempt, "sink delivered again after errors");
                    }
                    return Outcome::Delivered;
                }
                Err(e) => {
                    self.stats.errors.fetch_add(1, Ordering::Relaxed);
                    if e.downcast_ref::<super::Permanent>().is_some() {
                        self.stats.failed.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(sink = %self.name, alert_id = %alert.id, error = %format!("{e:#}"), "sink rejected an alert; not retrying it");
                        return Outcome::Rejected;
                    }
                    let mut wait = backoff;
                    if let Some(left) = self.close_time_left() {
                        if left.is_zero() {
                            self.giving_up = true;
                            tracing::error!(sink = %self.name, error = %format!("{e:#}"), "sink still failing when its close timeout ran out; giving up");
                            return Outcome::GaveUp;
                        }
                        wait = wait.min(left);
                    }
                    tracing::warn!(
                        sink = %self.name,
                        attempt,
                        retry_in_ms = wait.as_millis() as u64,
                        error = %format!("{e:#}"),
                        "sink failed; will retry the same alert"
                    );
                    self.shutdown.sleep(wait);
                    self.stats.retries.fetch_add(1, Ordering::Relaxed);
                    attempt += 1;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }
}
