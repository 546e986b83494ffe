//! `run`: the daemon. One thread per file source follows its files and decodes lines
//! (`ingest::follow`); this thread applies events in event-time order, writes alerts to
//! the sinks, and snapshots the engine state together with the source positions.
//!
//! Delivery guarantee: at least once in, exactly once out. A line's position is
//! checkpointed only in the same atomic snapshot as the engine state that includes it,
//! so after a crash (even `kill -9`) every line after the snapshot is read again and
//! re-applied to the state as it was. Alerts that re-applying produces again carry the
//! same ids; ids are appended to `emitted.log` once every sink's disk queue holds them,
//! and that log is consulted at start, so no alert is produced twice; each sink delivers
//! from its disk queue what it had not acknowledged (see `sink::queue`). Nothing in this
//! loop waits for a sink, and SIGTERM ends it within 10 s whatever the sinks do.

use crate::alert::Alert;
use crate::config::{Config, SourceType};
use crate::daemon::reload::{record_detectors, record_reference, Reloader};
use crate::daemon::signals::Flags;
use crate::daemon::{self, state, Daemon, Emitted};
use crate::deadletter::DeadLetter;
use crate::engine::{Engine, State};
use crate::ingest::follow::{start_sources, Started};
use crate::ingest::{merge_positions, take_batch, Msg};
use crate::metrics;
use crate::source::Position;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::mpsc::{sync_channel, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{error, info};

/// The snapshot file: engine state and source positions, written atomically together.
#[derive(Serialize, Deserialize)]
struct Snapshot {
    version: u32,
    positions: BTreeMap<String, Vec<Position>>,
    engine: State,
}

impl state::Snapshot for Snapshot {
    fn version(&self) -> u32 {
        self.version
    }
}

const SNAPSHOT_VERSION: u32 = 1;

/// From SIGTERM to the end of `run`, at most: under systemd's and the tests' 10 s.
const STOP_BUDGET: Duration = Duration::from_secs(7);
/// Of which, at most, for the source threads to end.
const SOURCES_BUDGET: Duration = Duration::from_secs(3);

pub fn main(config: &Path) -> Result<i32> {
    let cfg = super::load_config_with_sources(config, false)?;
    run(&cfg, daemon::signals::install()?)?;
    Ok(0)
}

/// Runs until `flags.stop` is set.
pub fn run(cfg: &Config, flags: Arc<Flags>) -> Result<()> {
    let mut d = Daemon::start(cfg, "run", &cfg.state.dir, true, flags)?;
    let snapshot_path = cfg.state.dir.join("run.snapshot.json");
    let mut engine = Engine::from_config(cfg)?;
    let mut positions: BTreeMap<String, Vec<Position>> = BTreeMap::new();
    if let Some(s) = state::load::<Snapshot>(
        &snapshot_path,
        SNAPSHOT_VERSION,
        "files are then read again from their start",
    )? {
        info!(path = %snapshot_path.display(), "restoring engine state and positions");
        engine.restore(s.engine);
        positions = s.positions;
    }
    let (mut emitted, ids) = Emitted::open(&cfg.state.dir.join("emitted.log"))?;
    engine.mark_emitted(ids.iter().map(String::as_str));
    let (tx, rx) = sync_channel::<Msg>(64);
    for s in cfg.sources.iter().filter(|s| s.kind == SourceType::File) {
        engine.add_source(&s.name);
    }
    let Started { threads, watchers } = start_sources(cfg, &positions, tx, &d.flags.stop, true)?;
    let sinks = crate::sink::build(cfg)?;
    let m = metrics::get();
    for s in &cfg.sources {
        m.register_source(&s.name);
    }
    record_detectors(engine.detectors());
    daemon::record_sinks(&sinks);
    record_reference(engine.reference());
    let mut reloader = Reloader::new(cfg);
    let mut last_gauges = Instant::now();
    let mut dl = DeadLetter::new(&cfg.dead_letter_path());
    let mut alerts = Vec::new();
    let mut pacer = state::Pacer::new(Duration::from_secs(cfg.state.snapshot_secs.max(1)));
    let mut snapshot_now = false;
    info!(sources = threads.len(), "phiwatch run started");
    d.ready();
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(msg) => {
                // A file no snapshot names yet (the positions a source starts at, or a
                // file found later) is snapshotted at once: rotated away before the
                // periodic snapshot, it is then still found at the next start.
                snapshot_now |= names_new_file(&msg, &positions);
                on_message(msg, &mut engine, &mut dl, &mut positions, &mut alerts)?
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        // Quiet logs: event time follows the wall clock (see `Engine::advance_clock`).
        engine.advance_clock(chrono::Utc::now(), &mut alerts);
        emitted.deliver(&sinks, &mut alerts)?;
        d.alive();
        if last_gauges.elapsed() >= Duration::from_secs(1) {
            last_gauges = Instant::now();
            daemon::record_sinks(&sinks);
            m.reorder_buffer_events
                .set(engine.state().buffer.len() as i64);
            let age = pacer.age().as_secs_f64();
            for s in &cfg.sources {
                m.checkpoint_age_seconds
                    .with_label_values(&[&s.name])
                    .set(age);
            }
        }
        let reloaded = reloader.poll(d.take_reload(), engine.reference());
        if let Some(ds) = reloaded.detectors {
            engine.set_detectors(ds);
        }
        if let Some(r) = reloaded.reference {
            engine.set_reference(r);
        }
        if snapshot_now || pacer.due() {
            snapshot_now = false;
            let started = Instant::now();
            snapshot(&snapshot_path, &engine, &positions, &mut dl)?;
            pacer.done(started);
        }
        if d.stopping() {
            break;
        }
    }
    let stop_began = Instant::now();
    drop(watchers);
    info!("stopping: draining sources");
    d.stop();
    // A source thread may be blocked sending into the full channel: keep draining it
    // while they end, for a bounded time (a thread still stuck is left behind; what it
    // read is not in the snapshot and is read again at the next start).
    let sources_deadline = stop_began + SOURCES_BUDGET;
    let mut threads = threads;
    loop {
        while let Ok(msg) = rx.try_recv() {
            on_message(msg, &mut engine, &mut dl, &mut positions, &mut alerts)?;
        }
        threads.retain(|h| !h.is_finished());
        if threads.is_empty() || Instant::now() >= sources_deadline {
            break;
        }
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(msg) => on_message(msg, &mut engine, &mut dl, &mut positions, &mut alerts)?,
            Err(_) => continue,
        }
    }
    if !threads.is_empty() {
        tracing::warn!(
            threads = threads.len(),
            "source threads still busy at stop; left behind"
        );
    }
    // Open findings and the reorder buffer go into the snapshot as they are: the next
    // start continues them, so a stop in the middle of a finding splits nothing.
    emitted.deliver(&sinks, &mut alerts)?;
    snapshot(&snapshot_path, &engine, &positions, &mut dl)?;
    daemon::record_sinks(&sinks);
    d.stopped();
    // Whatever the sinks cannot deliver in time stays in their disk queues.
    let left = STOP_BUDGET.saturating_sub(stop_began.elapsed());
    if let Err(e) = sinks.close_within(left) {
        tracing::warn!(error = %format!("{e:#}"), "sinks closed with alerts still queued");
    }
    info!(events = engine.counters.events, "phiwatch run stopped");
    Ok(())
}

/// True when `msg` brings the position of a file that `positions` does not hold yet.
fn names_new_file(msg: &Msg, positions: &BTreeMap<String, Vec<Position>>) -> bool {
    let Msg::Batch {
        source,
        positions: new,
        ..
    } = msg
    else {
        return false;
    };
    let known = positions.get(source).map(Vec::as_slice).unwrap_or_default();
    new.iter()
        .any(|p| !known.iter().any(|q| q.id.same_file(&p.id)))
}

/// Handles one message from a source.
fn on_message(
    msg: Msg,
    engine: &mut Engine,
    dl: &mut DeadLetter,
    positions: &mut BTreeMap<String, Vec<Position>>,
    alerts: &mut Vec<Alert>,
) -> Result<()> {
    match msg {
        Msg::Batch {
            source,
            items,
            positions: pos,
            lines,
            bytes,
        } => {
            let late_before = engine.counters.late;
            take_batch(&source, items, lines, bytes, dl, |e| {
                engine.push(e, alerts);
                Ok(())
            })?;
            metrics::get()
                .events_late
                .with_label_values(&[&source])
                .inc_by(engine.counters.late - late_before);
            merge_positions(positions.entry(source).or_default(), pos);
        }
        Msg::Idle(source) => engine.set_idle(&source, true, alerts),
        Msg::Failed(source, why) => {
            error!(source = %source, error = %why, "source stopped");
            engine.set_idle(&source, true, alerts);
        }
    }
    Ok(())
}

fn snapshot(
    path: &Path,
    engine: &Engine,
    positions: &BTreeMap<String, Vec<Position>>,
    dl: &mut DeadLetter,
) -> Result<()> {
    // Rejected lines before the positions that cover them. Alerts need nothing here: they
    // are on the sinks' disk queues (fsynced) once handed over.
    dl.flush()?;
    #[derive(Serialize)]
    struct SnapshotRef<'a> {
        version: u32,
        positions: &'a BTreeMap<String, Vec<Position>>,
        engine: &'a State,
    }
    state::save(
        path,
        &SnapshotRef {
            version: SNAPSHOT_VERSION,
            positions,
            engine: engine.state(),
        },
    )?;
    let (bytes, users) = engine.state_size();
    state::record_size(bytes, users);
    Ok(())
}
