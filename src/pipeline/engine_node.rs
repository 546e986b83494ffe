//! `engine`: the detecting half of `run`, a member of the `[kafka] group` consuming
//! `events_topic`. Events go through the same engine as `run` and `replay`; alerts go to
//! the sinks and to `alerts_topic` (see `with_alerts_topic`).
//!
//! State is kept per partition. The agent keys events by user, so a partition holds
//! whole users, and one engine per partition sees exactly their events, in order. When
//! several engines share the group, a rebalance moves partitions between them: the engine
//! that loses a partition delivers its pending alerts, writes the partition's snapshot and
//! commits its offset before giving it up; the engine that gains it loads that snapshot.
//! Snapshots live in `[state] dir`/engine, which engines sharing a group must share
//! (one host, or a shared volume).
//!
//! Delivery: exactly once in state and in alerts, on top of at-least-once transport.
//! A partition's snapshot holds its engine state, the next offset to apply, and the
//! highest (agent, file, offset) applied per input file. Offsets are committed to Kafka
//! only after the snapshot that covers them, so after a crash Kafka redelivers from a
//! point at or before the snapshot and whatever the snapshot already holds is dropped:
//! by offset, and by provenance for the duplicates an agent produced again after its own
//! crash. Alert ids are appended to the partition's emitted log once the sinks flushed
//! them, and consulted when the partition is loaded, so no alert is written twice.
//!
//! What per-partition state changes: peer-group statistics, working habits and
//! workstation-linked chains are learned from the users of one partition, not the whole
//! hospital. With one partition the engine gives exactly `replay`'s alerts.

use super::lease::{Leases, OrphanWatch};
use super::run::{deliver, load_emitted};
use crate::alert::Alert;
use crate::config::{Config, SinkConfig, SinkType, SourceType};
use crate::detect::{self, Detector};
use crate::engine::{Engine, Settings, State};
use crate::event::Event;
use crate::metrics;
use crate::notify::Notifier;
use crate::reference::Reference;
use crate::signals::{self, Flags};
use crate::sink::SinkSet;
use crate::source;
use anyhow::{anyhow, Context, Result};
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::BorrowedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tracing::{error, info, warn};

const SNAPSHOT_VERSION: u32 = 1;

/// Files whose high-water mark a partition remembers. Re-sends come only from the last
/// moments before an agent's crash, so files not written to for a long time can go.
const MAX_FILES_REMEMBERED: usize = 20_000;

/// Forgets the tenth of the remembered files that were last written longest ago.
fn forget_oldest(applied: &mut BTreeMap<String, (u64, i64)>) {
    let mut ages: Vec<i64> = applied.values().map(|a| a.1).collect();
    ages.sort_unstable();
    let cut = ages[ages.len() / 10];
    applied.retain(|_, a| a.1 > cut);
}

/// One partition's snapshot file.
#[derive(Serialize, Deserialize)]
struct Snapshot {
    version: u32,
    topic: String,
    partition: i32,
    /// Next offset to apply; anything below it is in `engine` already.
    next: i64,
    /// Per "agent\u{1f}source\u{1f}file id": the highest file offset applied, and the
    /// partition offset of the message that carried it (to forget the oldest files).
    applied: BTreeMap<String, (u64, i64)>,
    engine: State,
}

#[derive(Serialize)]
struct SnapshotRef<'a> {
    version: u32,
    topic: &'a str,
    partition: i32,
    next: i64,
    applied: &'a BTreeMap<String, (u64, i64)>,
    engine: &'a State,
}

/// One partition's share of the engine: the users Kafka puts there.
struct Part {
    engine: Engine,
    next: i64,
    applied: BTreeMap<String, (u64, i64)>,
    emitted: File,
    last_seen: BTreeMap<String, Instant>,
    since: Instant,
    alerts: Vec<Alert>,
    dirty: bool,
}

/// Everything that outlives a rebalance: the partitions held, and what they need to be
/// snapshotted and delivered (shared with the rebalance callback).
struct Parts {
    dir: PathBuf,
    topic: String,
    detectors: Vec<Detector>,
    reference: Arc<Reference>,
    settings: Settings,
    sources: Vec<(String, SourceType)>,
    idle_after: Duration,
    sinks: SinkSet,
    held: BTreeMap<i32, Part>,
}

/// The consumer context: hands partitions over on a rebalance.
struct Handover {
    parts: Arc<Mutex<Parts>>,
}

impl ClientContext for Handover {}

impl ConsumerContext for Handover {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let mut parts = lock(&self.parts);
            for e in tpl.elements() {
                if let Err(err) = parts.give_up(e.partition(), consumer) {
                    error!(partition = e.partition(), error = %format!("{err:#}"), "handing over a partition failed; the next owner re-applies from its last snapshot");
                }
            }
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let ps: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                info!(partitions = ?ps, "partitions assigned");
            }
            Rebalance::Revoke(tpl) => {
                let ps: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                info!(partitions = ?ps, "partitions revoked");
            }
            Rebalance::Error(e) => warn!(error = %e, "rebalance error"),
        }
    }
}

fn lock(parts: &Mutex<Parts>) -> MutexGuard<'_, Parts> {
    // A panic while holding the lock leaves state that is still snapshot-consistent.
    parts.lock().unwrap_or_else(|p| p.into_inner())
}

impl Parts {
    fn snapshot_path(&self, p: i32) -> PathBuf {
        self.dir.join(format!("{}-{p}.snapshot.json", self.topic))
    }

    fn emitted_path(&self, p: i32) -> PathBuf {
        self.dir.join(format!("{}-{p}.emitted.log", self.topic))
    }

    /// The partition's state, loaded from its snapshot the first time it is needed.
    fn part(&mut self, p: i32) -> Result<&mut Part> {
        if !self.held.contains_key(&p) {
            let part = self.load(p)?;
            self.held.insert(p, part);
        }
        Ok(self.held.get_mut(&p).expect("inserted above"))
    }

    fn load(&self, p: i32) -> Result<Part> {
        let mut engine = Engine::new(
            self.detectors.clone(),
            Arc::clone(&self.reference),
            self.settings.clone(),
        );
        let path = self.snapshot_path(p);
        let (next, applied) = match source::read_json::<Snapshot>(&path) {
            Ok(Some(s)) if s.version == SNAPSHOT_VERSION => {
                info!(partition = p, next = s.next, "partition state restored");
                engine.restore(s.engine);
                (s.next, s.applied)
            }
            Ok(Some(_)) => {
                warn!(partition = p, "snapshot has another version; the partition starts from scratch");
                (0, BTreeMap::new())
            }
            Ok(None) => (0, BTreeMap::new()),
            Err(e) => anyhow::bail!(
                "the snapshot {} cannot be read ({e}); move it away to rebuild the partition's state from the topic",
                path.display()
            ),
        };
        let emitted_path = self.emitted_path(p);
        let ids = load_emitted(&emitted_path)?;
        engine.mark_emitted(ids.iter().map(String::as_str));
        for (name, _) in &self.sources {
            engine.add_source(name);
        }
        let emitted = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&emitted_path)
            .with_context(|| format!("cannot open {}", emitted_path.display()))?;
        Ok(Part {
            engine,
            next,
            applied,
            emitted,
            last_seen: BTreeMap::new(),
            since: Instant::now(),
            alerts: Vec::new(),
            dirty: false,
        })
    }

    /// Applies one message, unless the partition's state holds it already.
    fn take(&mut self, msg: &BorrowedMessage<'_>) -> Result<()> {
        let m = metrics::get();
        let part = self.part(msg.partition())?;
        if msg.offset() < part.next {
            return Ok(()); // redelivered after a restart: in the snapshot already
        }
        part.next = msg.offset() + 1;
        part.dirty = true;
        let event = match msg.payload().map(serde_json::from_slice::<Event>) {
            Some(Ok(e)) => e,
            Some(Err(err)) => {
                warn!(partition = msg.partition(), offset = msg.offset(), error = %err, "message is not a canonical event; skipped");
                m.events_rejected
                    .with_label_values(&["kafka", "not_canonical_event"])
                    .inc();
                return Ok(());
            }
            None => {
                m.events_rejected
                    .with_label_values(&["kafka", "empty_message"])
                    .inc();
                return Ok(());
            }
        };
        if let Some(o) = &event.origin {
            // Per file *generation*: the same inode truncated in place has a new fingerprint.
            let k = format!("{}\u{1f}{}\u{1f}{}", o.agent, event.source, o.file_id);
            if part.applied.get(&k).is_some_and(|a| o.offset <= a.0) {
                m.events_duplicate.inc();
                return Ok(()); // an agent's re-send after its crash
            }
            part.applied.insert(k, (o.offset, msg.offset()));
            if part.applied.len() > MAX_FILES_REMEMBERED {
                forget_oldest(&mut part.applied);
            }
        }
        m.events_processed.with_label_values(&[&event.source]).inc();
        let source = event.source.clone();
        part.last_seen.insert(source.clone(), Instant::now());
        part.engine.push(event, &mut part.alerts);
        let watcher = self
            .sources
            .iter()
            .any(|(n, k)| *k == SourceType::Fswatch && *n == source);
        if watcher {
            // Wall-clock events: the watcher never holds the watermark back.
            let part = self.held.get_mut(&msg.partition()).expect("loaded above");
            part.engine.set_idle(&source, true, &mut part.alerts);
        }
        Ok(())
    }

    /// Releases what idle sources held back and delivers every partition's alerts.
    fn tick(&mut self) -> Result<()> {
        let idle_after = self.idle_after;
        for part in self.held.values_mut() {
            for (name, _) in &self.sources {
                let quiet = match part.last_seen.get(name) {
                    Some(t) => t.elapsed() >= idle_after,
                    None => part.since.elapsed() >= idle_after,
                };
                if quiet {
                    let before = part.engine.state().applied;
                    part.engine.set_idle(name, true, &mut part.alerts);
                    // Released events changed the state: the next snapshot must hold them.
                    part.dirty |= part.engine.state().applied != before;
                }
            }
            deliver(&self.sinks, &mut part.alerts, &mut part.emitted)?;
        }
        Ok(())
    }

    /// Delivers, snapshots and commits one partition.
    fn save(&mut self, p: i32, consumer: &impl Consumer<Handover>) -> Result<()> {
        let path = self.snapshot_path(p);
        let Some(part) = self.held.get_mut(&p) else {
            return Ok(());
        };
        deliver(&self.sinks, &mut part.alerts, &mut part.emitted)?;
        if !part.dirty {
            return Ok(());
        }
        let bytes = serde_json::to_vec(&SnapshotRef {
            version: SNAPSHOT_VERSION,
            topic: &self.topic,
            partition: p,
            next: part.next,
            applied: &part.applied,
            engine: part.engine.state(),
        })?;
        source::write_atomic(&path, &bytes)
            .with_context(|| format!("cannot write the snapshot {}", path.display()))?;
        part.dirty = false;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.topic, p, Offset::Offset(part.next))
            .map_err(|e| anyhow!("{e}"))?;
        if let Err(e) = consumer.commit(&tpl, CommitMode::Sync) {
            // The snapshot covers the events: a later redelivery is dropped by offset.
            metrics::get().kafka_consume_errors.inc();
            warn!(partition = p, error = %e, "offset commit failed; the snapshot still covers the events");
        }
        Ok(())
    }

    fn save_all(&mut self, consumer: &impl Consumer<Handover>) -> Result<()> {
        let held: Vec<i32> = self.held.keys().copied().collect();
        for p in held {
            self.save(p, consumer)?;
        }
        let m = metrics::get();
        m.snapshot_timestamp_seconds.set(metrics::now_secs());
        let (bytes, users) = self
            .held
            .values()
            .map(|p| p.engine.state_size())
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
        m.state_bytes.set(bytes as i64);
        m.state_users.set(users as i64);
        Ok(())
    }

    /// Saves a partition and forgets it: another engine takes it over from the snapshot.
    fn give_up(&mut self, p: i32, consumer: &impl Consumer<Handover>) -> Result<()> {
        if let Some(part) = self.held.get_mut(&p) {
            part.dirty = true; // always leave a snapshot behind for the next owner
        }
        self.save(p, consumer)?;
        self.held.remove(&p);
        Ok(())
    }

    /// End of service: releases every buffered event, closes open findings, saves.
    fn finish(&mut self, consumer: &impl Consumer<Handover>) -> Result<()> {
        for part in self.held.values_mut() {
            part.engine.flush(&mut part.alerts);
            part.dirty = true;
        }
        self.save_all(consumer)
    }

    fn reload_reference(&mut self, cfg: &crate::config::ReferenceConfig) {
        if !self.reference.changed(cfg) {
            return;
        }
        if let Some(r) = super::reload_reference(cfg) {
            self.reference = r;
            for part in self.held.values_mut() {
                part.engine.set_reference(Arc::clone(&self.reference));
            }
        }
    }
}

/// The engine's sinks: those configured, plus `[kafka] alerts_topic` unless a `kafka` sink
/// is configured already (it then says where alerts go on Kafka). Without `[[sinks]]`,
/// alerts also go to standard output, as in `run`.
fn with_alerts_topic(cfg: &Config) -> Config {
    let mut cfg = cfg.clone();
    if !cfg.sinks.iter().any(|s| s.kind == SinkType::Kafka) {
        if cfg.sinks.is_empty() {
            cfg.sinks.push(SinkConfig::default());
        }
        cfg.sinks.push(SinkConfig {
            kind: SinkType::Kafka,
            ..SinkConfig::default()
        });
    }
    cfg
}

/// This engine's lease and the watch for partitions nobody holds (see `lease`).
struct Owners {
    leases: Leases,
    watch: OrphanWatch,
    partitions: Option<i32>,
    last_write: Option<Instant>,
    last_look: Instant,
}

impl Owners {
    const WRITE_EVERY: Duration = Duration::from_secs(1);
    const LOOK_EVERY: Duration = Duration::from_secs(5);

    fn new(cfg: &Config, dir: &Path) -> Result<Owners> {
        let me = format!(
            "{}-{}-{}",
            crate::uid::hostname(),
            std::process::id(),
            super::lease::now_ms()
        );
        Ok(Owners {
            leases: Leases::new(&dir.join("leases"), me)?,
            watch: OrphanWatch::new(Duration::from_secs(cfg.kafka.orphan_rejoin_secs)),
            partitions: None,
            last_write: None,
            last_look: Instant::now(),
        })
    }

    /// Renews the lease every second; every few seconds, looks for unowned partitions and
    /// rejoins the group when this engine is the one to act.
    fn tick(&mut self, consumer: &BaseConsumer<Handover>, topic: &str) -> Result<()> {
        if self
            .last_write
            .is_some_and(|t| t.elapsed() < Self::WRITE_EVERY)
        {
            return Ok(());
        }
        self.last_write = Some(Instant::now());
        let held = match consumer.assignment() {
            Ok(tpl) => tpl.elements().iter().map(|e| e.partition()).collect(),
            Err(e) => {
                warn!(error = %e, "cannot read this engine's assignment; lease not renewed");
                return Ok(());
            }
        };
        if let Err(e) = self.leases.write(held) {
            warn!(error = %format!("{e:#}"), "lease not renewed; other engines may count these partitions as unowned");
        }
        if self.last_look.elapsed() < Self::LOOK_EVERY {
            return Ok(());
        }
        self.last_look = Instant::now();
        // The partition count, from the broker; the last known one while it does not answer.
        match consumer.fetch_metadata(Some(topic), Duration::from_secs(2)) {
            Ok(md) => {
                if let Some(t) = md.topics().iter().find(|t| t.name() == topic) {
                    if !t.partitions().is_empty() {
                        self.partitions = Some(t.partitions().len() as i32);
                    }
                }
            }
            Err(e) => {
                warn!(error = %e, "cannot fetch the topic's metadata; keeping the last partition count")
            }
        }
        let Some(partitions) = self.partitions else {
            return Ok(());
        };
        let look = self.watch.look(
            partitions,
            &self.leases.live(),
            self.leases.me(),
            Instant::now(),
        );
        metrics::get()
            .partitions_unowned
            .set(look.unowned.len() as i64);
        if let Some(orphans) = look.rejoin_for {
            warn!(partitions = ?orphans, "partitions have had no live engine for orphan_rejoin_secs; leaving and rejoining the consumer group to force a fresh assignment");
            metrics::get().group_rejoins.inc();
            consumer.unsubscribe();
            consumer
                .subscribe(&[topic])
                .map_err(|e| anyhow!("cannot subscribe to {topic} again: {e}"))?;
        }
        Ok(())
    }
}

pub fn main(config: &Path) -> Result<i32> {
    let cfg = super::load_for_kafka(config)?;
    run(&cfg, signals::install()?)?;
    Ok(0)
}

pub fn run(cfg: &Config, flags: Arc<Flags>) -> Result<()> {
    let dir = cfg.state.dir.join("engine");
    super::create_state_dir(&dir)?;
    let reference = Arc::new(Reference::load(&cfg.reference)?);
    let detectors = detect::load(cfg.engine.detectors.as_deref())
        .map_err(|errs| anyhow!("detectors are not valid:\n  {}", errs.join("\n  ")))?;
    let m = metrics::get();
    for d in &detectors {
        m.register_detector(&d.id, d.severity);
    }
    for s in &cfg.sources {
        m.register_source(&s.name);
    }
    let parts = Arc::new(Mutex::new(Parts {
        dir,
        topic: cfg.kafka.events_topic.clone(),
        detectors,
        reference,
        settings: Settings::from_config(cfg)?,
        sources: cfg
            .sources
            .iter()
            .map(|s| (s.name.clone(), s.kind))
            .collect(),
        idle_after: Duration::from_secs(cfg.engine.idle_source_secs.max(1)),
        sinks: crate::sink::build(&with_alerts_topic(cfg))?,
        held: BTreeMap::new(),
    }));
    let tuned = [
        ("partition.assignment.strategy", "range,roundrobin".into()),
        (
            "session.timeout.ms",
            (cfg.kafka.session_timeout_secs * 1000).to_string(),
        ),
        // librdkafka waits up to 500 ms for data by default; a broker that holds every
        // fetch that long puts half a second on each alert (benches/kafka_latency.py).
        ("fetch.wait.max.ms", "100".into()),
    ];
    let consumer: BaseConsumer<Handover> = crate::kafka::client_config(&cfg.kafka, &tuned)?
        .set("group.id", &cfg.kafka.group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .create_with_context(Handover {
            parts: Arc::clone(&parts),
        })
        .map_err(|e| anyhow!("cannot create the Kafka consumer: {e}"))?;
    consumer
        .subscribe(&[&cfg.kafka.events_topic])
        .map_err(|e| anyhow!("cannot subscribe to {}: {e}", cfg.kafka.events_topic))?;
    let health = metrics::start_health(cfg.metrics.listen.as_deref())?;
    m.up.set(1);
    let mut notifier = Notifier::new();
    notifier.ready();
    health
        .ready
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let every = Duration::from_secs(cfg.state.snapshot_secs.max(1));
    let mut last_snapshot = Instant::now();
    let mut last_ref_check = Instant::now();
    let mut owners = Owners::new(cfg, &lock(&parts).dir)?;
    info!(topic = %cfg.kafka.events_topic, group = %cfg.kafka.group, "phiwatch engine started");
    while !flags.stopping() {
        // The lock is never held across poll(): rebalance callbacks run inside it.
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(msg)) => lock(&parts).take(&msg)?,
            Some(Err(e)) => {
                m.kafka_consume_errors.inc();
                warn!(error = %e, "Kafka consume error; retrying");
            }
            None => {}
        }
        let mut p = lock(&parts);
        p.tick()?;
        if last_snapshot.elapsed() >= every {
            p.save_all(&consumer)?;
            last_snapshot = Instant::now();
        }
        if last_ref_check.elapsed() >= Duration::from_secs(2) {
            last_ref_check = Instant::now();
            p.reload_reference(&cfg.reference);
        }
        drop(p);
        owners.tick(&consumer, &cfg.kafka.events_topic)?;
        health.tick();
        notifier.alive();
        if flags.take_reload() {
            info!("SIGHUP: reloading reference data");
            lock(&parts).reload_reference(&cfg.reference);
        }
    }
    notifier.stopping();
    health
        .ready
        .store(false, std::sync::atomic::Ordering::Relaxed);
    lock(&parts).finish(&consumer)?;
    // Leaving the group after the final snapshot: the partitions' next owner starts there.
    consumer.unsubscribe();
    drop(consumer);
    owners.leases.remove();
    match Arc::try_unwrap(parts) {
        Ok(p) => p
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
            .sinks
            .close()?,
        Err(_) => warn!("sinks not closed: the consumer still holds them"),
    }
    m.up.set(0);
    info!("phiwatch engine stopped");
    Ok(())
}
