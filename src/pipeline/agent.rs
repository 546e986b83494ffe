//! `agent`: the collecting half of `run`. The sources are followed and parsed as in
//! `run`, and every event is produced to `[kafka] events_topic`, keyed by the user's
//! comparison key so that one user's events stay on one partition and in order.
//!
//! Events go through a disk spool on their way to Kafka: each batch a source thread hands
//! over is appended (and fsynced) with a mark holding the source positions after it, and
//! a producer drains the spool in order. A mark's positions are checkpointed only once
//! Kafka has acknowledged every event before it (idempotent producer, `acks=all`), so a
//! crash of the agent or an outage of Kafka never loses an event.
//!
//! While Kafka is unreachable the sources keep reading into the spool; when it reaches
//! `[kafka] spool_max_bytes` reading pauses (backpressure, never a drop) and
//! `phiwatch_spool_full` says so. At start the spool is checked record by record (length
//! and CRC); a torn or damaged tail is cut back to the last intact mark, and the sources
//! resume from that mark's positions, so what was cut is read again from the logs.
//!
//! Delivery: at least once. After a crash the events between the last checkpoint and
//! the crash are produced again; the engine recognises them by their provenance (agent,
//! file identity, offset) and drops them.

use super::follow::{start_sources, take_batch, Msg, Started};
use super::run::merge_positions;
use crate::config::Config;
use crate::deadletter::DeadLetter;
use crate::metrics;
use crate::notify::Notifier;
use crate::signals::{self, Flags};
use crate::source::{self, Position};
use crate::spool::{Cursor, Record, Spool};
use anyhow::{anyhow, Context, Result};
use rdkafka::error::KafkaError;
use rdkafka::producer::{
    BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext, PurgeConfig,
};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::{error, info, warn};

type Positions = BTreeMap<String, Vec<Position>>;

/// What survives a restart: positions Kafka has everything before, and the spool
/// cursor just after the mark that carried them.
#[derive(Serialize, Deserialize, Default)]
struct Checkpoint {
    acked: Positions,
    cursor: Cursor,
}

/// Events handed to librdkafka and not yet acknowledged, by sequence number. A mark is
/// acknowledged when every event produced before it is.
#[derive(Default)]
struct Deliveries {
    outstanding: Mutex<BTreeSet<u64>>,
    failed: Mutex<Option<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = Box<u64>;

    fn delivery(&self, result: &DeliveryResult<'_>, seq: Box<u64>) {
        match result {
            Ok(_) => {
                self.outstanding
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&seq);
                metrics::get().kafka_events_produced.inc();
            }
            Err((e, _)) => {
                metrics::get().kafka_produce_errors.inc();
                let mut f = self.failed.lock().unwrap_or_else(|p| p.into_inner());
                if f.is_none() {
                    *f = Some(e.to_string());
                }
            }
        }
    }
}

impl Deliveries {
    /// The lowest sequence number not yet acknowledged, or `next` when all are.
    fn low_water(&self, next: u64) -> u64 {
        let o = self.outstanding.lock().unwrap_or_else(|p| p.into_inner());
        o.first().copied().unwrap_or(next)
    }
}

/// Most events handed to librdkafka at once; the rest wait in the spool.
const MAX_IN_FLIGHT: usize = 20_000;

pub fn main(config: &Path) -> Result<i32> {
    let cfg = super::load_for_kafka(config)?;
    run(&cfg, signals::install()?)?;
    Ok(0)
}

struct Agent {
    producer: BaseProducer<Deliveries>,
    spool: Spool,
    topic: String,
    /// Sequence number of the next event produced.
    seq: u64,
    /// Marks read from the spool whose events are not all acknowledged yet:
    /// (events produced before the mark, cursor after it, positions).
    marks: VecDeque<(u64, Cursor, Vec<u8>)>,
    checkpoint: Checkpoint,
    checkpoint_path: PathBuf,
    dirty: bool,
}

pub fn run(cfg: &Config, flags: Arc<Flags>) -> Result<()> {
    let dir = cfg.state.dir.join("agent");
    super::create_state_dir(&dir)?;
    let _lock = super::lock_state(&dir, "agent")?;
    let checkpoint_path = dir.join("positions.json");
    let checkpoint: Checkpoint = source::read_json(&checkpoint_path)
        .map_err(|e| {
            anyhow!(
                "{}: {e}; move it away to read every source again from its start",
                checkpoint_path.display()
            )
        })?
        .unwrap_or_default();
    let spool_dir = dir.join("spool");
    let (spool, recovery) =
        Spool::open(&spool_dir, cfg.kafka.spool_max_bytes, checkpoint.cursor)
            .with_context(|| format!("cannot open the spool {}", spool_dir.display()))?;
    let m = metrics::get();
    if recovery.corrupt || recovery.truncated_bytes > 0 {
        m.spool_recoveries.inc();
        warn!(
            spool = %spool_dir.display(),
            cut_bytes = recovery.truncated_bytes,
            damaged = recovery.corrupt,
            "the spool was cut back to its last intact batch; the lines after it are read again from the sources"
        );
    }
    // Sources resume after what the spool holds; without a spooled mark, after what
    // Kafka acknowledged.
    let mut read: Positions = match &recovery.last_mark {
        Some(bytes) => serde_json::from_slice(bytes).map_err(|e| {
            anyhow!(
                "a spool mark in {} is not valid ({e}); move the spool folder away",
                spool_dir.display()
            )
        })?,
        None => checkpoint.acked.clone(),
    };
    info!(
        spooled_records = recovery.records,
        spool_bytes = spool.bytes(),
        "spool opened"
    );
    m.spool_capacity_bytes.set(cfg.kafka.spool_max_bytes as i64);
    let tuned = [
        ("compression.type", "lz4".to_string()),
        ("linger.ms", "20".to_string()),
    ];
    let producer: BaseProducer<Deliveries> = crate::kafka::client_config(&cfg.kafka, &tuned)?
        .set("enable.idempotence", "true")
        .set("enable.gapless.guarantee", "true")
        .set("acks", "all")
        // Retry for ever: the spool, not librdkafka's timer, decides how long to wait.
        .set("message.timeout.ms", "0")
        .create_with_context(Deliveries::default())
        .map_err(|e| anyhow!("cannot create the Kafka producer: {e}"))?;
    let host = crate::uid::hostname();
    let (tx, rx) = sync_channel::<Msg>(4);
    let Started { threads, watchers } = start_sources(cfg, &read, tx, &flags, false)?;
    for s in &cfg.sources {
        m.register_source(&s.name);
    }
    let health = metrics::start_health(cfg.metrics.listen.as_deref())?;
    m.up.set(1);
    let mut notifier = Notifier::new();
    notifier.ready();
    health
        .ready
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let mut agent = Agent {
        producer,
        spool,
        topic: cfg.kafka.events_topic.clone(),
        seq: 0,
        marks: VecDeque::new(),
        checkpoint,
        checkpoint_path,
        dirty: false,
    };
    let mut dl = DeadLetter::new(&cfg.dead_letter_path());
    let mut last_save = Instant::now();
    let mut told_full = false;
    let mut open = true;
    info!(topic = %agent.topic, sources = threads.len() + watchers.len(), "phiwatch agent started");
    while !flags.stopping() {
        // Intake: from the sources into the spool, unless it is full.
        let full = agent.spool.is_full();
        m.spool_full.set(full as i64);
        if full {
            if !told_full {
                warn!(
                    bytes = agent.spool.bytes(),
                    "the spool is full: reading is paused until Kafka takes events again"
                );
                told_full = true;
            }
            std::thread::sleep(Duration::from_millis(50));
        } else {
            told_full = false;
            if open {
                open = intake(&rx, &mut agent.spool, &mut read, &mut dl, &host)?;
            } else {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        agent.pump()?;
        if last_save.elapsed() >= Duration::from_secs(1) {
            dl.flush()?;
            agent.save()?;
            last_save = Instant::now();
            m.spool_bytes.set(agent.spool.bytes() as i64);
        }
        health.tick();
        notifier.alive();
    }
    info!("stopping: sources first, then what the spool holds, for up to 10 s");
    notifier.stopping();
    drop(watchers);
    for h in threads {
        let _ = h.join();
    }
    // What the sources read before they stopped goes into the spool (it is durable).
    while let Ok(msg) = rx.try_recv() {
        spool_batch(msg, &mut agent.spool, &mut read, &mut dl, &host)?;
    }
    agent.spool.sync()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(agent.spool.is_drained() && agent.marks.is_empty()) && Instant::now() < deadline {
        agent.pump()?;
    }
    dl.flush()?;
    agent.save()?;
    m.up.set(0);
    info!(
        left_in_spool = agent.spool.bytes(),
        "phiwatch agent stopped"
    );
    Ok(())
}

/// Takes what the sources sent within 200 ms into the spool, synced. False once every
/// source has stopped.
fn intake(
    rx: &Receiver<Msg>,
    spool: &mut Spool,
    read: &mut Positions,
    dl: &mut DeadLetter,
    host: &str,
) -> Result<bool> {
    let msg = match rx.recv_timeout(Duration::from_millis(200)) {
        Ok(m) => m,
        Err(RecvTimeoutError::Timeout) => return Ok(true),
        Err(RecvTimeoutError::Disconnected) => return Ok(false),
    };
    spool_batch(msg, spool, read, dl, host)?;
    // More that is ready, up to the spool's limit, before one fsync for all.
    while !spool.is_full() {
        match rx.try_recv() {
            Ok(m) => spool_batch(m, spool, read, dl, host)?,
            Err(_) => break,
        }
    }
    spool.sync()?;
    Ok(true)
}

/// Appends a source batch to the spool: its events, then a mark with the positions.
fn spool_batch(
    msg: Msg,
    spool: &mut Spool,
    read: &mut Positions,
    dl: &mut DeadLetter,
    host: &str,
) -> Result<()> {
    match msg {
        Msg::Batch {
            source,
            items,
            positions,
            lines,
            bytes,
        } => {
            take_batch(&source, items, lines, bytes, dl, |mut e| {
                if let Some(o) = &mut e.origin {
                    o.agent = host.to_string();
                }
                spool.append(&Record::Event {
                    key: crate::event::key(&e.user),
                    payload: e.to_json_line().into_bytes(),
                })?;
                Ok(())
            })?;
            // Every batch ends with a mark, even a watcher's without positions: records
            // after the last mark are cut at start, and a watcher cannot read them again.
            if !positions.is_empty() {
                merge_positions(read.entry(source).or_default(), positions);
            }
            spool.append(&Record::Mark(serde_json::to_vec(read)?))?;
        }
        Msg::Idle(_) => {}
        Msg::Failed(source, why) => error!(source = %source, error = %why, "source stopped"),
    }
    Ok(())
}

impl Agent {
    /// Hands spooled events to librdkafka, serves delivery reports, and moves the
    /// checkpoint past every mark Kafka has everything before.
    fn pump(&mut self) -> Result<()> {
        let m = metrics::get();
        while self.producer.in_flight_count() < MAX_IN_FLIGHT as i32 {
            let before = self.spool.read_cursor();
            let Some((rec, after)) = self.spool.read_next()? else {
                break;
            };
            match rec {
                Record::Event { key, payload } => {
                    let seq = self.seq;
                    let record = BaseRecord::with_opaque_to(&self.topic, Box::new(seq))
                        .key(&key)
                        .payload(&payload);
                    match self.producer.send(record) {
                        Ok(()) => {
                            self.producer
                                .context()
                                .outstanding
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .insert(seq);
                            self.seq += 1;
                        }
                        Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                            self.spool.rewind(before);
                            break;
                        }
                        Err((e, _)) => {
                            m.kafka_produce_errors.inc();
                            warn!(error = %e, "cannot hand an event to the Kafka client; retrying");
                            self.spool.rewind(before);
                            break;
                        }
                    }
                }
                Record::Mark(positions) => self.marks.push_back((self.seq, after, positions)),
            }
        }
        self.producer
            .poll(Duration::from_millis(if self.marks.is_empty() {
                0
            } else {
                20
            }));
        let failed = self
            .producer
            .context()
            .failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(why) = failed {
            self.restart_from_checkpoint(&why);
            return Ok(());
        }
        let low = self.producer.context().low_water(self.seq);
        while self.marks.front().is_some_and(|(n, _, _)| *n <= low) {
            let (_, cursor, positions) = self.marks.pop_front().expect("checked above");
            self.checkpoint.acked = serde_json::from_slice(&positions)?;
            self.checkpoint.cursor = cursor;
            self.dirty = true;
        }
        Ok(())
    }

    /// A delivery failed for good: everything after the checkpoint is produced again
    /// (the engine drops what it already has).
    fn restart_from_checkpoint(&mut self, why: &str) {
        warn!(error = %why, "Kafka refused an event; producing again from the last checkpoint");
        self.producer
            .purge(PurgeConfig::default().queue().inflight());
        self.producer.poll(Duration::from_millis(100));
        self.producer
            .context()
            .outstanding
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        *self
            .producer
            .context()
            .failed
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = None;
        self.marks.clear();
        self.spool.rewind(self.checkpoint.cursor);
        std::thread::sleep(Duration::from_secs(1));
    }

    /// Writes the checkpoint, then lets the spool forget what it covers.
    fn save(&mut self) -> Result<()> {
        if !self.dirty {
            return Ok(());
        }
        source::write_json(&self.checkpoint_path, &self.checkpoint)
            .with_context(|| format!("cannot write {}", self.checkpoint_path.display()))?;
        self.dirty = false;
        self.spool.release(self.checkpoint.cursor)?;
        metrics::get()
            .snapshot_timestamp_seconds
            .set(metrics::now_secs());
        Ok(())
    }
}
