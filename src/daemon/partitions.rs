//! The engine's partitions: one engine state per Kafka partition of `events_topic`, with
//! its snapshot, its emitted-alert log and its delivery. Events go through the same engine
//! as `run` and `replay`; alerts go to the sinks and to `alerts_topic` (see
//! [`with_alerts_topic`]). The consumer group itself is `kafka::consumer`.
//!
//! State is kept per partition. The agent partitions events by user (a message is one
//! event keyed by its user, or a batch of events of one partition's users: see
//! `kafka::wire`), so a partition holds whole users, and one engine per partition sees exactly their events, in order. When
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
//! crash. Alert ids are appended to the partition's emitted log once every sink's disk
//! queue holds them (never waiting for a sink: see `sink::queue`), and consulted when the
//! partition is loaded, so no alert is produced twice. The sinks' disk queues are in
//! `engine/sinks-<n>`, the first such folder no other engine holds (locked), so an engine
//! restarted on the same host delivers what its predecessor's sinks had not acknowledged.
//!
//! What per-partition state changes: peer-group statistics, working habits and
//! workstation-linked chains are learned from the users of one partition, not the whole
//! hospital (README, "What per-partition state means").

use super::{state, Emitted};
use crate::alert::Alert;
use crate::config::{Config, SinkConfig, SinkType, SourceType};
use crate::daemon::reload::Reloaded;
use crate::detect::Detector;
use crate::engine::{Engine, Settings, State};
use crate::event::Heartbeat;
use crate::kafka::consumer;
use crate::metrics;
use crate::reference::Reference;
use crate::sink::SinkSet;
use anyhow::Result;
use rdkafka::consumer::{BaseConsumer, ConsumerContext};
use rdkafka::message::BorrowedMessage;
use rdkafka::Message;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use tracing::{info, warn};

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

impl state::Snapshot for Snapshot {
    fn version(&self) -> u32 {
        self.version
    }
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
    emitted: Emitted,
    alerts: Vec<Alert>,
    dirty: bool,
    pace: Pace,
}

/// When a partition's periodic snapshot is due. Catching up on a backlog, a partition's
/// reorder buffer holds the events of the sources that are ahead (hundreds of thousands
/// on a month's files), and writing it as JSON every `snapshot_secs` was a quarter of
/// the engine thread (`benches/compare.sh`, fourth round). So, with `run`'s
/// [`state::Pacer`], a snapshot that took long spaces the next one out to nine times as
/// long times the partitions held (the engine writes them one after the other, so
/// together they keep to about a tenth of its time), scaled by how much the buffer has
/// grown or shrunk since: once it drains (the sources caught up, or went idle) the next
/// snapshot is due at the usual interval, so what tells a reader that events were
/// applied is not held back.
struct Pace {
    pacer: state::Pacer,
    /// Events in the reorder buffer when the last snapshot was written.
    buffered: usize,
}

impl Pace {
    fn new(every: std::time::Duration) -> Pace {
        Pace {
            pacer: state::Pacer::new(every),
            buffered: 0,
        }
    }

    /// True when a snapshot is due, `buffered` being the events in the reorder buffer now
    /// and `held` the partitions the engine holds.
    fn due(&self, buffered: usize, held: usize) -> bool {
        const BASE: f64 = 1024.0; // what a snapshot costs besides the buffer, in events
        let growth = (buffered as f64 + BASE) / (self.buffered as f64 + BASE);
        self.pacer.due_at_cost(growth * held.max(1) as f64)
    }

    fn done(&mut self, started: std::time::Instant, buffered: usize) {
        self.pacer.done(started);
        self.buffered = buffered;
    }
}

impl Part {
    /// An agent's heartbeat: its sources become known, those it says are idle stop
    /// holding event time back, and when every source of the partition is idle the clock
    /// follows the agent's wall clock (see `Engine::advance_clock`). Only the agent knows
    /// a source is quiet; gaps in arrival (a broker outage) decide nothing here.
    fn heard(&mut self, hb: Heartbeat) {
        for s in &hb.active {
            self.engine.add_source(s);
        }
        for s in &hb.idle {
            self.engine.set_idle(s, true, &mut self.alerts);
        }
        if let Some(wall) = chrono::DateTime::from_timestamp_millis(hb.wall_ms) {
            self.engine.advance_clock(wall, &mut self.alerts);
        }
    }
}

/// Everything that outlives a rebalance: the partitions held, and what they need to be
/// snapshotted and delivered (shared with the rebalance callback).
pub struct Parts {
    dir: PathBuf,
    topic: String,
    detectors: Vec<Detector>,
    reference: Arc<Reference>,
    settings: Settings,
    sources: Vec<(String, SourceType)>,
    sinks: SinkSet,
    held: BTreeMap<i32, Part>,
    /// `[state] snapshot_secs`: the interval of a partition's snapshots when they are quick.
    snapshot_every: std::time::Duration,
    /// A buffer for the per-file key of `Part::applied`, kept across messages.
    key: String,
    /// Metrics of each source seen, looked up once.
    counters: Vec<SourceCounters>,
    /// The lock of the sinks' disk-queue folder.
    _outbox: std::fs::File,
}

/// A source's event counters, and whether it is a file watcher (whose wall-clock events
/// never hold the watermark back).
struct SourceCounters {
    name: String,
    processed: prometheus::IntCounter,
    late: prometheus::IntCounter,
    watcher: bool,
}

/// The first `dir/sinks-<n>` no other engine holds, locked.
fn outbox(dir: &std::path::Path) -> Result<(PathBuf, std::fs::File)> {
    for n in 0..256 {
        let d = dir.join(format!("sinks-{n}"));
        state::create_dir(&d)?;
        if let Ok(lock) = state::lock(&d, "sinks") {
            return Ok((d, lock));
        }
    }
    anyhow::bail!("256 engines hold sink queues in {}", dir.display())
}

impl Parts {
    /// Nothing held yet: partitions are loaded from their snapshots in `dir` as messages
    /// of theirs arrive.
    pub fn new(cfg: &Config, dir: PathBuf) -> Result<Parts> {
        let (sink_dir, outbox) = outbox(&dir)?;
        Ok(Parts {
            dir,
            topic: cfg.kafka.events_topic.clone(),
            detectors: crate::detect::load_config(cfg, crate::engine::kinds::compile)?,
            reference: Arc::new(Reference::load(&cfg.reference)?),
            settings: Settings::from_config(cfg)?,
            snapshot_every: std::time::Duration::from_secs(cfg.state.snapshot_secs.max(1)),
            sources: cfg
                .sources
                .iter()
                .map(|s| (s.name.clone(), s.kind))
                .collect(),
            sinks: crate::sink::build_in(&with_alerts_topic(cfg), &sink_dir)?,
            held: BTreeMap::new(),
            key: String::new(),
            counters: Vec::new(),
            _outbox: outbox,
        })
    }

    pub fn detectors(&self) -> &[Detector] {
        &self.detectors
    }

    /// Closes the sinks, delivering what they hold (within each sink's close timeout).
    pub fn close(mut self) -> Result<()> {
        std::mem::take(&mut self.sinks).close()
    }

    /// Takes the sinks out, to close them on the way out (what they cannot deliver
    /// stays in their disk queues).
    pub fn take_sinks(&mut self) -> SinkSet {
        std::mem::take(&mut self.sinks)
    }

    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

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
        let (next, applied) = match state::load::<Snapshot>(
            &path,
            SNAPSHOT_VERSION,
            "the partition's state is then rebuilt from the topic",
        )? {
            Some(s) => {
                info!(partition = p, next = s.next, "partition state restored");
                engine.restore(s.engine);
                (s.next, s.applied)
            }
            None => (0, BTreeMap::new()),
        };
        let (emitted, ids) = Emitted::open(&self.emitted_path(p))?;
        engine.mark_emitted(ids.iter().map(String::as_str));
        // Sources are registered as agents name them (heartbeats) or their events arrive.
        Ok(Part {
            engine,
            next,
            applied,
            emitted,
            alerts: Vec::new(),
            dirty: false,
            pace: Pace::new(self.snapshot_every),
        })
    }

    /// The offset partition `p` applies next (its snapshot's, when not held yet).
    pub fn position(&mut self, p: i32) -> Result<i64> {
        Ok(self.part(p)?.next)
    }

    /// Applies one message (a heartbeat, one event or a batch of them), unless the
    /// partition's state holds it already. Returns the events it held.
    pub fn take(&mut self, msg: &BorrowedMessage<'_>) -> Result<u32> {
        let m = metrics::get();
        let p = msg.partition();
        self.part(p)?;
        let part = self.held.get_mut(&p).expect("loaded above");
        if msg.offset() < part.next {
            return Ok(0); // redelivered after a restart: in the snapshot already
        }
        // A batch is applied whole before anything else can look at the partition (the
        // lock is held), so a snapshot never holds half a message.
        part.next = msg.offset() + 1;
        part.dirty = true;
        let Some(payload) = msg.payload() else {
            m.events_rejected
                .with_label_values(&["kafka", "empty_message"])
                .inc();
            return Ok(0);
        };
        if let Some(hb) = Heartbeat::from_payload(payload) {
            part.heard(hb);
            return Ok(0);
        }
        let mut n = 0;
        for event in crate::kafka::wire::events(payload) {
            n += 1;
            match event {
                Ok(e) => self.apply_event(p, msg.offset(), e),
                Err(err) => {
                    warn!(partition = p, offset = msg.offset(), error = %err, "message is not a canonical event; skipped");
                    m.events_rejected
                        .with_label_values(&["kafka", "not_canonical_event"])
                        .inc();
                }
            }
        }
        Ok(n)
    }

    /// Applies one event of the message at `offset` of held partition `p`, unless it is
    /// an agent's re-send.
    fn apply_event(&mut self, p: i32, offset: i64, event: crate::event::Event) {
        let m = metrics::get();
        let part = self.held.get_mut(&p).expect("held by the caller");
        if let Some(o) = &event.origin {
            // Per file *generation*: the same inode truncated in place has a new fingerprint.
            // The key is built in a buffer kept across messages, and copied only for a
            // file not seen before.
            let k = &mut self.key;
            k.clear();
            for (i, s) in [o.agent.as_str(), event.source.as_str(), &o.file_id]
                .into_iter()
                .enumerate()
            {
                if i > 0 {
                    k.push('\u{1f}');
                }
                k.push_str(s);
            }
            match part.applied.get_mut(k.as_str()) {
                Some(a) if o.offset <= a.0 => {
                    m.events_duplicate.inc();
                    return; // an agent's re-send after its crash
                }
                Some(a) => *a = (o.offset, offset),
                None => {
                    part.applied.insert(k.clone(), (o.offset, offset));
                    if part.applied.len() > MAX_FILES_REMEMBERED {
                        forget_oldest(&mut part.applied);
                    }
                }
            }
        }
        // The source's counters, found once per source rather than once per message.
        let i = match self.counters.iter().position(|c| c.name == event.source) {
            Some(i) => i,
            None => {
                let watcher = self
                    .sources
                    .iter()
                    .any(|(n, k)| *k == SourceType::Fswatch && *n == event.source);
                self.counters.push(SourceCounters {
                    name: event.source.clone(),
                    processed: m.events_processed.with_label_values(&[&event.source]),
                    late: m.events_late.with_label_values(&[&event.source]),
                    watcher,
                });
                self.counters.len() - 1
            }
        };
        let c = &self.counters[i];
        c.processed.inc();
        let late_before = part.engine.counters.late;
        part.engine.push(event, &mut part.alerts);
        let late = part.engine.counters.late - late_before;
        if late > 0 {
            c.late.inc_by(late);
        }
        if c.watcher {
            let source = c.name.clone();
            // Wall-clock events: the watcher never holds the watermark back.
            part.engine.set_idle(&source, true, &mut part.alerts);
        }
    }

    /// Delivers every partition's alerts.
    pub fn tick(&mut self) -> Result<()> {
        for part in self.held.values_mut() {
            part.emitted.deliver(&self.sinks, &mut part.alerts)?;
        }
        Ok(())
    }

    /// Delivers and snapshots one partition; returns the offset to commit when a
    /// snapshot was written.
    fn save(&mut self, p: i32) -> Result<Option<i64>> {
        let path = self.snapshot_path(p);
        let Some(part) = self.held.get_mut(&p) else {
            return Ok(None);
        };
        part.emitted.deliver(&self.sinks, &mut part.alerts)?;
        if !part.dirty {
            return Ok(None);
        }
        let started = std::time::Instant::now();
        state::save(
            &path,
            &SnapshotRef {
                version: SNAPSHOT_VERSION,
                topic: &self.topic,
                partition: p,
                next: part.next,
                applied: &part.applied,
                engine: part.engine.state(),
            },
        )?;
        part.dirty = false;
        part.pace.done(started, part.engine.state().buffer.len());
        Ok(Some(part.next))
    }

    /// Delivers every partition's alerts, and snapshots and commits those whose snapshot
    /// is due (see [`Pace`]).
    pub fn save_due<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) -> Result<()> {
        self.save_some(consumer, true)
    }

    /// Delivers, snapshots and commits every partition held.
    pub fn save_all<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) -> Result<()> {
        self.save_some(consumer, false)
    }

    fn save_some<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        due_only: bool,
    ) -> Result<()> {
        let held: Vec<i32> = self.held.keys().copied().collect();
        for &p in &held {
            if due_only {
                let part = &mut self.held.get_mut(&p).expect("held");
                if !part.pace.due(part.engine.state().buffer.len(), held.len()) {
                    part.emitted.deliver(&self.sinks, &mut part.alerts)?;
                    continue;
                }
            }
            if let Some(next) = self.save(p)? {
                consumer::commit(consumer, &self.topic, p, next);
            }
        }
        metrics::get()
            .snapshot_timestamp_seconds
            .set(metrics::now_secs());
        let (bytes, users) = self
            .held
            .values()
            .map(|p| p.engine.state_size())
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
        state::record_size(bytes, users);
        Ok(())
    }

    /// End of service: saves every partition as it is. Open findings and buffered events
    /// are kept in the snapshot, not released early: the next start continues them, as
    /// after a crash, so a restart in the middle of a finding does not split it.
    pub fn finish<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) -> Result<()> {
        for part in self.held.values_mut() {
            part.dirty = true;
        }
        self.save_all(consumer)
    }

    /// The reference data in service.
    pub fn reference(&self) -> &Reference {
        &self.reference
    }

    /// Puts what a reload brought into service, in every partition held and for those
    /// loaded later.
    pub fn apply(&mut self, reloaded: Reloaded) {
        if let Some(r) = reloaded.reference {
            self.reference = r;
            for part in self.held.values_mut() {
                part.engine.set_reference(Arc::clone(&self.reference));
            }
        }
        if let Some(ds) = reloaded.detectors {
            for part in self.held.values_mut() {
                part.engine.set_detectors(ds.clone());
            }
            self.detectors = ds;
        }
    }
}

/// The engine's sinks: those configured, plus `[kafka] alerts_topic` unless a `kafka` sink
/// is configured already (it then says where alerts go on Kafka). Without `[[sinks]]`,
/// alerts also go to standard output, as in `run`.
pub fn with_alerts_topic(cfg: &Config) -> Config {
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

impl consumer::Holder for Parts {
    /// Saves a partition and forgets it: another engine takes it over from the snapshot.
    fn give_up(&mut self, p: i32) -> Result<Option<i64>> {
        if let Some(part) = self.held.get_mut(&p) {
            part.dirty = true; // always leave a snapshot behind for the next owner
        }
        let next = self.save(p)?;
        self.held.remove(&p);
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::Pace;
    use std::time::{Duration, Instant};

    /// A slow snapshot of a full buffer spaces the next one out; once the buffer has
    /// drained, the next is due at the usual interval again.
    #[test]
    fn a_slow_snapshot_of_a_full_buffer_spaces_the_next_out_until_it_drains() {
        let every = Duration::from_millis(10);
        let mut pace = Pace::new(every);
        let mut hourly = Pace::new(Duration::from_secs(60));
        let started = Instant::now() - Duration::from_millis(50);
        pace.done(started, 200_000);
        hourly.done(started, 200_000);
        std::thread::sleep(Duration::from_millis(20));
        assert!(!pace.due(200_000, 1), "450 ms not passed yet");
        assert!(pace.due(0, 1), "the buffer drained");
        assert!(!hourly.due(0, 1), "never before the interval");
        let mut quick = Pace::new(every);
        quick.done(Instant::now() - Duration::from_millis(1), 10);
        std::thread::sleep(Duration::from_millis(20));
        assert!(quick.due(10, 1));
        assert!(!quick.due(10, 3), "three partitions of 1 ms or more: 27 ms");
    }
}
