//! The fan-out: one bounded queue and one thread per sink.
//!
//! [`SinkSet::send`] puts the alert (shared, not copied) on every sink's queue. Each
//! sink's thread renders it in the sink's format under the sink's patient policy and
//! hands the line to the sink. A failed attempt is retried with exponential backoff
//! (250 ms doubling to a cap of 30 s) for as long as it takes, without losing the alert
//! and without touching the other sinks; a [`Permanent`](super::Permanent) error is logged
//! and the alert counted as `failed`.
//!
//! When a queue is full, `overflow = "block"` (the default) makes `send` wait, so nothing
//! is ever dropped but a sink that stays dead long enough stalls the engine; `overflow =
//! "drop"` drops the alert for that sink only, counts it in `dropped` and logs an error
//! (at most one line per 10 s, with the count).
//!
//! [`SinkSet::close`] lets every sink deliver what is queued, flushes and joins. A sink
//! that still cannot deliver `close_timeout_secs` after close began gives up: what is
//! left is counted as `failed`, logged, and `close` returns an error saying how many.

use super::{kind_name, Sink, SinkSpec};
use crate::alert::Alert;
use crate::format::Formatter;
use crate::pseudonym::PatientPolicy;
use anyhow::{anyhow, bail, Result};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Condvar, Mutex};
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

enum Msg {
    Alert(Arc<Alert>),
    Flush(mpsc::Sender<()>),
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

struct Handle {
    info: SinkInfo,
    overflow: Overflow,
    tx: Option<SyncSender<Msg>>,
    thread: Option<JoinHandle<()>>,
    drop_log: Mutex<(Instant, u64)>,
}

/// Every running sink: fans each alert out to all of them. Closing happens on
/// [`SinkSet::close`] or, silently, when the set is dropped.
pub struct SinkSet {
    sinks: Vec<Handle>,
    shutdown: Arc<Shutdown>,
}

impl Default for SinkSet {
    fn default() -> Self {
        SinkSet::new()
    }
}

impl SinkSet {
    pub fn new() -> SinkSet {
        SinkSet {
            sinks: Vec::new(),
            shutdown: Arc::new(Shutdown::default()),
        }
    }

    /// Opens the sink of `spec` and starts its thread.
    pub fn start(&mut self, spec: SinkSpec) -> Result<()> {
        let sink = spec.open()?;
        self.add(
            &spec.name,
            kind_name(spec.kind),
            sink,
            spec.formatter,
            spec.policy,
            spec.queue,
        );
        Ok(())
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
        let (tx, rx) = mpsc::sync_channel(opts.size.max(1));
        let stats = Arc::new(SinkStats::default());
        let mut worker = Worker {
            name: name.to_string(),
            sink,
            formatter,
            policy,
            close_timeout: opts.close_timeout,
            stats: stats.clone(),
            shutdown: self.shutdown.clone(),
            giving_up: false,
        };
        let thread = std::thread::Builder::new()
            .name(format!("sink-{name}"))
            .spawn(move || worker.run(rx))
            .expect("spawn a sink thread");
        self.sinks.push(Handle {
            info: SinkInfo {
                name: name.to_string(),
                kind,
                stats,
            },
            overflow: opts.overflow,
            tx: Some(tx),
            thread: Some(thread),
            drop_log: Mutex::new((Instant::now() - DROP_LOG_EVERY, 0)),
        });
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

    /// Queues one alert for every sink.
    pub fn send(&self, alert: &Alert) {
        self.send_shared(Arc::new(alert.clone()));
    }

    /// Queues one alert for every sink without copying it.
    pub fn send_shared(&self, alert: Arc<Alert>) {
        for h in &self.sinks {
            let Some(tx) = &h.tx else { continue };
            let stats = &h.info.stats;
            stats.queued.fetch_add(1, Ordering::Relaxed);
            let result = match h.overflow {
                Overflow::Block => tx
                    .send(Msg::Alert(alert.clone()))
                    .map_err(|_| TrySendError::Disconnected(())),
                Overflow::Drop => tx.try_send(Msg::Alert(alert.clone())).map_err(|e| match e {
                    TrySendError::Full(_) => TrySendError::Full(()),
                    TrySendError::Disconnected(_) => TrySendError::Disconnected(()),
                }),
            };
            match result {
                Ok(()) => {}
                Err(TrySendError::Full(())) => {
                    stats.queued.fetch_sub(1, Ordering::Relaxed);
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
                }
                Err(TrySendError::Disconnected(())) => {
                    stats.queued.fetch_sub(1, Ordering::Relaxed);
                    stats.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(sink = %h.info.name, "sink thread has stopped; alert not delivered to it");
                }
            }
        }
    }

    /// Waits until every sink has handled what was queued before this call and flushed.
    /// Errors naming the sinks that did not finish within `timeout`.
    pub fn flush(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut waiting = Vec::new();
        for h in &self.sinks {
            let Some(tx) = &h.tx else { continue };
            let (done_tx, done_rx) = mpsc::channel();
            if tx.send(Msg::Flush(done_tx)).is_ok() {
                waiting.push((&h.info.name, done_rx));
            }
        }
        let mut late = Vec::new();
        for (name, rx) in waiting {
            let left = deadline.saturating_duration_since(Instant::now());
            if rx.recv_timeout(left).is_err() {
                late.push(name.as_str());
            }
        }
        if !late.is_empty() {
            bail!(
                "sinks not flushed within {:?}: {} (they are still retrying; see the log)",
                timeout,
                late.join(", ")
            );
        }
        Ok(())
    }

    /// Starts closing without waiting: workers stop backing off beyond their close
    /// timeout. Safe to call from another thread (e.g. a signal handler) while `send`
    /// is blocked on a full queue.
    pub fn begin_close(&self) {
        self.shutdown.begin();
    }

    /// Delivers what is queued (each sink for at most its `close_timeout_secs`), flushes
    /// and joins every sink thread. Errors when alerts were left undelivered.
    pub fn close(mut self) -> Result<()> {
        self.close_inner()
    }

    fn close_inner(&mut self) -> Result<()> {
        self.shutdown.begin();
        let before: Vec<u64> = self
            .sinks
            .iter()
            .map(|h| h.info.stats.failed.load(Ordering::Relaxed))
            .collect();
        for h in &mut self.sinks {
            h.tx = None;
        }
        let mut problems = Vec::new();
        for (h, failed_before) in self.sinks.iter_mut().zip(before) {
            if let Some(t) = h.thread.take() {
                if t.join().is_err() {
                    problems.push(format!("sink {:?} crashed", h.info.name));
                }
            }
            let s = h.info.stats.snapshot();
            if s.dropped > 0 {
                tracing::error!(sink = %h.info.name, dropped = s.dropped, "alerts were dropped for this sink while running (queue full)");
            }
            let lost = s.failed - failed_before;
            if lost > 0 {
                problems.push(format!(
                    "sink {:?}: {lost} alerts not delivered before close",
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
            if let Err(e) = self.close_inner() {
                tracing::error!(error = %e, "closing sinks");
            }
        }
    }
}

struct Worker {
    name: String,
    sink: Box<dyn Sink>,
    formatter: Formatter,
    policy: PatientPolicy,
    close_timeout: Duration,
    stats: Arc<SinkStats>,
    shutdown: Arc<Shutdown>,
    /// Set once the close timeout ran out: everything left is counted as failed.
    giving_up: bool,
}

impl Worker {
    fn run(&mut self, rx: Receiver<Msg>) {
        let mut abandoned = 0u64;
        loop {
            let msg = match rx.try_recv() {
                Ok(m) => m,
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {
                    self.idle();
                    match rx.recv_timeout(IDLE_TICK) {
                        Ok(m) => m,
                        Err(RecvTimeoutError::Timeout) => continue,
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
            };
            match msg {
                Msg::Alert(alert) => {
                    self.stats.queued.fetch_sub(1, Ordering::Relaxed);
                    if !self.deliver(&alert) {
                        abandoned += 1;
                    }
                }
                Msg::Flush(done) => {
                    self.flush();
                    let _ = done.send(());
                }
            }
        }
        if !self.giving_up {
            self.flush();
        }
        if abandoned > 0 && self.giving_up {
            tracing::error!(
                sink = %self.name,
                lost = abandoned,
                close_timeout_secs = self.close_timeout.as_secs(),
                "alerts still undelivered when the close timeout ran out are LOST for this sink"
            );
        }
    }

    fn idle(&mut self) {
        if let Err(e) = self.sink.idle() {
            self.stats.errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(sink = %self.name, error = %format!("{e:#}"), "sink housekeeping failed");
        }
    }

    fn flush(&mut self) {
        if let Err(e) = self.sink.flush() {
            self.stats.errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(sink = %self.name, error = %format!("{e:#}"), "sink flush failed");
        }
    }

    fn close_time_left(&self) -> Option<Duration> {
        let since = self.shutdown.since()?;
        Some((since + self.close_timeout).saturating_duration_since(Instant::now()))
    }

    /// Delivers one alert, retrying; false when it was given up.
    fn deliver(&mut self, alert: &Alert) -> bool {
        if self.giving_up {
            self.stats.failed.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let line = self.formatter.render(alert, &self.policy);
        let mut backoff = BACKOFF_START;
        let mut attempt = 1u32;
        loop {
            match self.sink.send_alert(alert, &line) {
                Ok(()) => {
                    self.stats.sent.fetch_add(1, Ordering::Relaxed);
                    if attempt > 1 {
                        tracing::info!(sink = %self.name, attempts = attempt, "sink delivered again after errors");
                    }
                    return true;
                }
                Err(e) => {
                    self.stats.errors.fetch_add(1, Ordering::Relaxed);
                    if e.downcast_ref::<super::Permanent>().is_some() {
                        self.stats.failed.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(sink = %self.name, alert_id = %alert.id, error = %format!("{e:#}"), "sink rejected an alert; not retrying it");
                        return false;
                    }
                    let mut wait = backoff;
                    if let Some(left) = self.close_time_left() {
                        if left.is_zero() {
                            self.giving_up = true;
                            self.stats.failed.fetch_add(1, Ordering::Relaxed);
                            tracing::error!(sink = %self.name, error = %format!("{e:#}"), "sink still failing when its close timeout ran out; giving up");
                            return false;
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
