//! The agent's way to Kafka: a disk spool drained by an idempotent producer.
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
//!
//! With `event_encoding = "batched"` (the default) the spool still holds one record per
//! event; the events read from it between two marks are gathered per partition into
//! batch messages (`kafka::wire`). The agent picks the partition itself, as librdkafka's
//! default partitioner does for the user's key ([`partition_of`]), so a user's events
//! land in the partition they always did, in order. Every batch is handed to librdkafka
//! before the mark after its events is taken, so a mark is still acknowledged only when
//! every event before it is.

use super::spool::{Cursor, Record, Spool};
use super::wire::{Batch, Encoding, COMPACT_V1};
use crate::config::Config;
use crate::deadletter::DeadLetter;
use crate::ingest::{merge_positions, take_batch, Msg};
use crate::metrics;
use crate::source::Position;
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
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tracing::{error, info, warn};

pub type Positions = BTreeMap<String, Vec<Position>>;

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

/// What a delivery report is about: a message's sequence number and its events.
pub struct Sent {
    seq: u64,
    events: u32,
}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = Box<Sent>;

    fn delivery(&self, result: &DeliveryResult<'_>, sent: Box<Sent>) {
        match result {
            Ok(_) => {
                self.outstanding
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&sent.seq);
                metrics::get()
                    .kafka_events_produced
                    .inc_by(u64::from(sent.events));
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

/// Most messages handed to librdkafka at once; the rest wait in the spool.
const MAX_IN_FLIGHT: usize = 20_000;

/// A batch message is sent once it holds this many events or bytes (or at the next mark).
/// Far under Kafka's default 1 MB message limit; large enough that the per-message costs
/// are spread over hundreds of events.
const BATCH_EVENTS: u32 = 1000;
const BATCH_BYTES: usize = 256 << 10;

/// The partition librdkafka's default partitioner (`consistent_random`) gives a non-empty
/// key: CRC-32 of the key, modulo the partition count. The batched encoding must put each
/// user where one-event messages keyed by user went (and still go, from other agents), or
/// a user's state would be split between partitions.
pub fn partition_of(key: &str, partitions: i32) -> i32 {
    (crc32fast::hash(key.as_bytes()) % partitions.max(1) as u32) as i32
}

/// Whether the agent may batch: only with librdkafka's default partitioner, which
/// [`partition_of`] reproduces (a `partitioner` set in `[kafka.properties]` keeps one
/// event per message, keyed, and lets librdkafka place it).
fn may_batch(cfg: &Config) -> bool {
    cfg.kafka.event_encoding == Encoding::Batched
        && cfg
            .kafka
            .properties
            .get("partitioner")
            .is_none_or(|p| p == "consistent_random")
}

/// The spool and the producer that drains it, with the checkpoint of what Kafka has.
pub struct SpoolProducer {
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
    /// This host's name, stamped on every event's provenance.
    host: String,
    /// How events are written (`[kafka] event_encoding`).
    encoding: Encoding,
    /// Batch messages being filled, by partition (empty unless batching).
    batches: BTreeMap<i32, Batch>,
    /// Events are produced in batch messages (see [`may_batch`]).
    batching: bool,
    /// Where the sources have read to (what the spool holds).
    read: Positions,
    /// The events topic's partition count and when it was learned.
    partitions: Option<(i32, Instant)>,
    /// Heartbeats: which sources are idle, which are not, and when the last one went out.
    beat: Heartbeats,
}

impl SpoolProducer {
    /// Opens the checkpoint and the spool in `dir` (cutting a damaged spool tail back)
    /// and creates the producer. The sources resume from [`SpoolProducer::read`].
    pub fn open(cfg: &Config, dir: &Path) -> Result<SpoolProducer> {
        let checkpoint_path = dir.join("positions.json");
        let checkpoint: Checkpoint = crate::durable::read_json(&checkpoint_path)
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
        let read: Positions = match &recovery.last_mark {
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
        let producer: BaseProducer<Deliveries> = super::client_config(&cfg.kafka, &tuned)?
            .set("enable.idempotence", "true")
            .set("enable.gapless.guarantee", "true")
            .set("acks", "all")
            // Retry for ever: the spool, not librdkafka's timer, decides how long to wait.
            .set("message.timeout.ms", "0")
            .create_with_context(Deliveries::default())
            .map_err(|e| anyhow!("cannot create the Kafka producer: {e}"))?;
        let mut out = SpoolProducer {
            producer,
            spool,
            topic: cfg.kafka.events_topic.clone(),
            seq: 0,
            marks: VecDeque::new(),
            checkpoint,
            checkpoint_path,
            dirty: false,
            host: crate::uid::hostname(),
            encoding: cfg.kafka.event_encoding,
            batches: BTreeMap::new(),
            batching: may_batch(cfg),
            read,
            partitions: None,
            beat: Heartbeats::new(cfg),
        };
        // Tells the engines which sources this agent reads before any event does.
        out.spool_heartbeat()?;
        out.spool.sync()?;
        Ok(out)
    }

    /// Where the sources have read to: they resume from here.
    pub fn read(&self) -> &Positions {
        &self.read
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    pub fn spool_is_full(&self) -> bool {
        self.spool.is_full()
    }

    pub fn spool_bytes(&self) -> u64 {
        self.spool.bytes()
    }

    /// True when everything spooled has been acknowledged by Kafka.
    pub fn drained(&self) -> bool {
        self.spool.is_drained() && self.marks.is_empty() && self.batches_empty()
    }

    fn batches_empty(&self) -> bool {
        self.batches.values().all(Batch::is_empty)
    }

    /// Takes what the sources sent within 200 ms into the spool, synced. False once every
    /// source has stopped.
    pub fn intake(&mut self, rx: &Receiver<Msg>, dl: &mut DeadLetter) -> Result<bool> {
        let msg = match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(m) => m,
            Err(RecvTimeoutError::Timeout) => return Ok(true),
            Err(RecvTimeoutError::Disconnected) => return Ok(false),
        };
        self.spool_batch(msg, dl)?;
        // More that is ready, up to the spool's limit, before one fsync for all.
        while !self.spool.is_full() {
            match rx.try_recv() {
                Ok(m) => self.spool_batch(m, dl)?,
                Err(_) => break,
            }
        }
        self.spool.sync()?;
        Ok(true)
    }

    /// At the way out: what the sources read before they stopped goes into the spool
    /// (it is durable), synced.
    pub fn intake_rest(&mut self, rx: &Receiver<Msg>, dl: &mut DeadLetter) -> Result<()> {
        while let Ok(msg) = rx.try_recv() {
            self.spool_batch(msg, dl)?;
        }
        self.spool.sync()?;
        Ok(())
    }

    /// Appends a source batch to the spool: its events, then a mark with the positions.
    fn spool_batch(&mut self, msg: Msg, dl: &mut DeadLetter) -> Result<()> {
        match msg {
            Msg::Batch {
                source,
                items,
                positions,
                lines,
                bytes,
            } => {
                let (spool, host, encoding) = (&mut self.spool, &self.host, self.encoding);
                take_batch(&source, items, lines, bytes, dl, |mut e| {
                    if let Some(o) = &mut e.origin {
                        o.agent = host.to_string();
                    }
                    spool.append(&Record::Event {
                        key: crate::event::key(&e.user),
                        payload: super::wire::encode(&e, encoding),
                    })?;
                    Ok(())
                })?;
                self.beat.idle.remove(&source);
                // Every batch ends with a mark, even a watcher's without positions: records
                // after the last mark are cut at start, and a watcher cannot read them again.
                if !positions.is_empty() {
                    merge_positions(self.read.entry(source).or_default(), positions);
                }
                self.spool
                    .append(&Record::Mark(serde_json::to_vec(&self.read)?))?;
            }
            Msg::Idle(source) => {
                self.beat.idle.insert(source);
                self.spool_heartbeat()?;
            }
            Msg::Failed(source, why) => {
                error!(source = %source, error = %why, "source stopped");
                self.beat.idle.insert(source);
                self.spool_heartbeat()?;
            }
        }
        Ok(())
    }

    /// While some sources are idle, a heartbeat every second, so the engines' clocks
    /// follow this host's while its logs are quiet.
    pub fn beat_if_due(&mut self) -> Result<()> {
        if self.beat.idle.is_empty()
            || self.beat.last.elapsed() < Heartbeats::EVERY
            || self.spool.is_full()
        {
            return Ok(());
        }
        self.spool_heartbeat()?;
        self.spool.sync()?;
        Ok(())
    }

    /// Appends a heartbeat for every partition, then a mark (so the spool can release it).
    fn spool_heartbeat(&mut self) -> Result<()> {
        let payload = self.beat.payload(&self.host);
        self.spool.append(&Record::Broadcast(payload))?;
        self.spool
            .append(&Record::Mark(serde_json::to_vec(&self.read)?))?;
        self.beat.last = Instant::now();
        Ok(())
    }
}

/// What the agent tells every partition about its sources. Only the agent knows that a
/// source is caught up and quiet; the engine never guesses it from gaps in arrival, so a
/// broker or network outage delays alerts but cannot reorder events.
struct Heartbeats {
    /// File sources, all active until their reader says they are idle.
    files: Vec<String>,
    /// Watchers: their events carry wall-clock time, so they never hold event time back.
    watchers: Vec<String>,
    idle: std::collections::BTreeSet<String>,
    last: Instant,
}

impl Heartbeats {
    const EVERY: Duration = Duration::from_secs(1);

    fn new(cfg: &Config) -> Heartbeats {
        use crate::config::SourceType;
        let names = |kind| {
            cfg.sources
                .iter()
                .filter(|s| s.kind == kind)
                .map(|s| s.name.clone())
                .collect()
        };
        Heartbeats {
            files: names(SourceType::File),
            watchers: names(SourceType::Fswatch),
            idle: Default::default(),
            last: Instant::now(),
        }
    }

    fn payload(&self, host: &str) -> Vec<u8> {
        let (idle, active): (Vec<&String>, Vec<&String>) =
            self.files.iter().partition(|s| self.idle.contains(*s));
        let idle: Vec<&String> = idle.into_iter().chain(&self.watchers).collect();
        crate::event::Heartbeat {
            agent: host.to_string(),
            active: active.into_iter().cloned().collect(),
            idle: idle.into_iter().cloned().collect(),
            wall_ms: crate::kafka::lease::now_ms() as i64,
        }
        .to_json_line()
        .into_bytes()
    }
}

impl SpoolProducer {
    /// Hands one message of `events` events to librdkafka, tracked for its delivery
    /// report. False when it must be tried again later (the client's queue is full, or it
    /// refused).
    fn send(
        &mut self,
        key: Option<&str>,
        partition: Option<i32>,
        payload: &[u8],
        events: u32,
    ) -> bool {
        let seq = self.seq;
        let mut record = BaseRecord::with_opaque_to(&self.topic, Box::new(Sent { seq, events }))
            .payload(payload);
        if let Some(k) = key {
            record = record.key(k);
        }
        if let Some(p) = partition {
            record = record.partition(p);
        }
        match self.producer.send(record) {
            Ok(()) => {
                self.producer
                    .context()
                    .outstanding
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(seq);
                self.seq += 1;
                true
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => false,
            Err((e, _)) => {
                metrics::get().kafka_produce_errors.inc();
                warn!(error = %e, "cannot hand an event to the Kafka client; retrying");
                false
            }
        }
    }

    /// The events topic's partition count, asked of the brokers once a minute at most
    /// (None while they cannot say).
    fn partitions(&mut self) -> Option<i32> {
        let fresh = self
            .partitions
            .is_some_and(|(_, at)| at.elapsed() < Duration::from_secs(60));
        if !fresh {
            match self
                .producer
                .client()
                .fetch_metadata(Some(&self.topic), Duration::from_secs(1))
            {
                Ok(md) => {
                    if let Some(t) = md.topics().iter().find(|t| t.name() == self.topic) {
                        if !t.partitions().is_empty() {
                            self.partitions = Some((t.partitions().len() as i32, Instant::now()));
                        }
                    }
                }
                Err(e) => {
                    if self.partitions.is_none() {
                        warn!(error = %e, "cannot learn the events topic's partitions; heartbeats wait");
                    }
                }
            }
        }
        self.partitions.map(|(n, _)| n)
    }

    /// Sends partition `p`'s batch, if it holds events. False when it must be tried
    /// again later (it stays as it is).
    fn send_batch(&mut self, p: i32) -> bool {
        let Some(mut b) = self.batches.remove(&p) else {
            return true;
        };
        let sent = b.is_empty() || {
            let events = b.len();
            self.send(None, Some(p), b.payload(), events)
        };
        if sent {
            b.clear();
        }
        self.batches.insert(p, b);
        sent
    }

    /// Sends every partition's batch. False when one must be tried again later.
    fn send_batches(&mut self) -> bool {
        let ps: Vec<i32> = self.batches.keys().copied().collect();
        let mut all = true;
        for p in ps {
            all &= self.send_batch(p);
        }
        all
    }

    /// Adds a compact event to its partition's batch (of `n` partitions), sending the
    /// batch first when full. False when the event must be read again later (a full batch
    /// could not be sent).
    fn batch(&mut self, key: &str, compact: &[u8], n: i32) -> bool {
        let p = partition_of(key, n);
        let full = self
            .batches
            .get(&p)
            .is_some_and(|b| b.len() >= BATCH_EVENTS || b.bytes() >= BATCH_BYTES);
        if full && !self.send_batch(p) {
            return false;
        }
        self.batches.entry(p).or_default().push(compact);
        true
    }

    /// Hands spooled events to librdkafka, serves delivery reports, and moves the
    /// checkpoint past every mark Kafka has everything before.
    pub fn pump(&mut self) -> Result<()> {
        // The partition count, asked for at the first event to batch.
        let mut partitions = None;
        while self.producer.in_flight_count() < MAX_IN_FLIGHT as i32 {
            let before = self.spool.read_cursor();
            let Some((rec, after)) = self.spool.read_next()? else {
                break;
            };
            // Whatever is not a compact event to batch goes after the batches before it:
            // a mark must follow its events, a heartbeat every event before it, and a
            // JSON event (an older spool) the same user's earlier events.
            let batched = self.batching
                && matches!(&rec, Record::Event { payload, .. } if payload.first() == Some(&COMPACT_V1));
            if !batched && !self.send_batches() {
                self.spool.rewind(before);
                break;
            }
            match rec {
                Record::Event { key, payload } if batched => {
                    let n = match partitions {
                        Some(n) => n,
                        None => match self.partitions() {
                            Some(n) => *partitions.insert(n),
                            None => {
                                self.spool.rewind(before);
                                break;
                            }
                        },
                    };
                    if !self.batch(&key, &payload, n) {
                        self.spool.rewind(before);
                        break;
                    }
                }
                Record::Event { key, payload } => {
                    if !self.send(Some(&key), None, &payload, 1) {
                        self.spool.rewind(before);
                        break;
                    }
                }
                Record::Broadcast(payload) => {
                    // Heartbeats go to every partition; one already sent to some of them
                    // and sent again after a rewind is harmless.
                    let Some(n) = self.partitions() else {
                        self.spool.rewind(before);
                        break;
                    };
                    if !(0..n).all(|p| self.send(None, Some(p), &payload, 0)) {
                        self.spool.rewind(before);
                        break;
                    }
                }
                Record::Mark(positions) => self.marks.push_back((self.seq, after, positions)),
            }
        }
        // What the spool holds is read: the batches go now, not at the next mark.
        self.send_batches();
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
        self.batches.clear();
        self.spool.rewind(self.checkpoint.cursor);
        std::thread::sleep(Duration::from_secs(1));
    }

    /// Writes the checkpoint, then lets the spool forget what it covers.
    pub fn save(&mut self) -> Result<()> {
        if !self.dirty {
            return Ok(());
        }
        crate::durable::write_json(&self.checkpoint_path, &self.checkpoint)
            .with_context(|| format!("cannot write {}", self.checkpoint_path.display()))?;
        self.dirty = false;
        self.spool.release(self.checkpoint.cursor)?;
        metrics::get()
            .snapshot_timestamp_seconds
            .set(metrics::now_secs());
        Ok(())
    }
}
