//! `run`: the daemon. One thread per file source follows its files and parses lines;
//! the engine thread (this one) applies events in event-time order, writes alerts to the
//! sinks, and snapshots its state together with the source positions.
//!
//! Delivery guarantee: at least once in, exactly once out. A line's position is
//! checkpointed only in the same atomic snapshot as the engine state that includes it,
//! so after a crash (even `kill -9`) every line after the snapshot is read again and
//! re-applied to the state as it was. Alerts that re-applying produces again carry the
//! same ids; ids are appended to `emitted.log` once the sinks have flushed them, and
//! that log is consulted at start, so no alert is written twice.

use super::follow::{start_sources, take_batch, Msg, Started};
use super::replay::build_engine;
use crate::alert::Alert;
use crate::config::{Config, SourceType};
use crate::deadletter::DeadLetter;
use crate::engine::{Engine, State};
use crate::metrics;
use crate::notify::Notifier;
use crate::signals::{self, Flags};
use crate::sink::SinkSet;
use crate::source::{self, Position};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::mpsc::{sync_channel, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{error, info, warn};

/// The snapshot file: engine state and source positions, written atomically together.
#[derive(Serialize, Deserialize)]
struct Snapshot {
    version: u32,
    positions: BTreeMap<String, Vec<Position>>,
    engine: State,
}

const SNAPSHOT_VERSION: u32 = 1;
const MAX_POSITIONS_PER_SOURCE: usize = 4096;

pub fn main(config: &Path) -> Result<i32> {
    let cfg = Config::load(config)?;
    let problems = cfg.validate();
    if !problems.is_empty() {
        anyhow::bail!("{}: {}", config.display(), problems.join("; "));
    }
    let flags = signals::install()?;
    run(&cfg, flags)?;
    Ok(0)
}

/// Runs until `flags.stop` is set.
pub fn run(cfg: &Config, flags: Arc<Flags>) -> Result<()> {
    super::create_state_dir(&cfg.state.dir)?;
    let _lock = super::lock_state(&cfg.state.dir, "run")?;
    let snapshot_path = cfg.state.dir.join("run.snapshot.json");
    let emitted_path = cfg.state.dir.join("emitted.log");
    let mut engine = build_engine(cfg)?;
    let mut positions: BTreeMap<String, Vec<Position>> = BTreeMap::new();
    match source::read_json::<Snapshot>(&snapshot_path) {
        Ok(Some(s)) if s.version == SNAPSHOT_VERSION => {
            info!(path = %snapshot_path.display(), "restoring engine state and positions");
            engine.restore(s.engine);
            positions = s.positions;
        }
        Ok(Some(_)) => warn!("snapshot has another version; starting from scratch"),
        Ok(None) => {}
        Err(e) => {
            anyhow::bail!(
                "the snapshot {} cannot be read ({e}); move it away to start from scratch (files are then read again from their start)",
                snapshot_path.display()
            )
        }
    }
    let emitted = load_emitted(&emitted_path)?;
    engine.mark_emitted(emitted.iter().map(String::as_str));
    let (tx, rx) = sync_channel::<Msg>(64);
    for s in cfg.sources.iter().filter(|s| s.kind == SourceType::File) {
        engine.add_source(&s.name);
    }
    let Started { threads, watchers } = start_sources(cfg, &positions, tx, &flags, true)?;
    let sinks = crate::sink::build(cfg)?;
    let m = metrics::get();
    let health = metrics::start_health(cfg.metrics.listen.as_deref())?;
    for s in &cfg.sources {
        m.register_source(&s.name);
    }
    for d in engine.detectors() {
        m.register_detector(&d.id, d.severity);
    }
    for sink in sinks.stats() {
        m.sink_stats(&sink.name, &sink.stats.snapshot());
    }
    record_reference(&engine);
    m.up.set(1);
    let mut notifier = Notifier::new();
    let mut last_gauges = Instant::now();
    let mut dl = DeadLetter::new(&cfg.dead_letter_path());
    let mut emitted_log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&emitted_path)
        .with_context(|| format!("cannot open {}", emitted_path.display()))?;
    let mut alerts = Vec::new();
    let mut last_snapshot = Instant::now();
    let mut last_ref_check = Instant::now();
    let mut reference_cfg = cfg.reference.clone();
    let every = Duration::from_secs(cfg.state.snapshot_secs.max(1));
    info!(sources = threads.len(), "phiwatch run started");
    health
        .ready
        .store(true, std::sync::atomic::Ordering::Relaxed);
    notifier.ready();
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(msg) => on_message(msg, &mut engine, &mut dl, &mut positions, &mut alerts)?,
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        deliver(&sinks, &mut alerts, &mut emitted_log)?;
        health.tick();
        notifier.alive();
        if last_gauges.elapsed() >= Duration::from_secs(1) {
            last_gauges = Instant::now();
            for sink in sinks.stats() {
                m.sink_stats(&sink.name, &sink.stats.snapshot());
            }
            m.reorder_buffer_events
                .set(engine.state().buffer.len() as i64);
            let age = last_snapshot.elapsed().as_secs_f64();
            for s in &cfg.sources {
                m.checkpoint_age_seconds
                    .with_label_values(&[&s.name])
                    .set(age);
            }
        }
        if flags.take_reload() {
            // The config file is read again for what can change live (detectors and
            // reference data); sources, sinks, state and metrics need a restart.
            let fresh = match Config::load(&cfg.file) {
                Ok(c) => c,
                Err(e) => {
                    error!(error = %format!("{e:#}"), "SIGHUP: the config file cannot be read; keeping the running configuration");
                    cfg.clone()
                }
            };
            info!("SIGHUP: reloading detectors and reference data (changes to sources, sinks, state or metrics take effect after a restart)");
            reload_detectors(&fresh, &mut engine);
            reload(&fresh, &mut engine, true);
            reference_cfg = fresh.reference.clone();
        } else if last_ref_check.elapsed() > Duration::from_secs(2) {
            last_ref_check = Instant::now();
            reload_reference(&reference_cfg, &mut engine, false);
        }
        if last_snapshot.elapsed() >= every {
            snapshot(&snapshot_path, &engine, &positions, &mut dl, &sinks)?;
            last_snapshot = Instant::now();
        }
        if flags.stopping() {
            break;
        }
    }
    drop(watchers);
    info!("stopping: draining sources");
    notifier.stopping();
    health
        .ready
        .store(false, std::sync::atomic::Ordering::Relaxed);
    for h in threads {
        let _ = h.join();
    }
    while let Ok(msg) = rx.try_recv() {
        on_message(msg, &mut engine, &mut dl, &mut positions, &mut alerts)?;
    }
    engine.flush(&mut alerts);
    deliver(&sinks, &mut alerts, &mut emitted_log)?;
    snapshot(&snapshot_path, &engine, &positions, &mut dl, &sinks)?;
    for sink in sinks.stats() {
        m.sink_stats(&sink.name, &sink.stats.snapshot());
    }
    m.up.set(0);
    sinks.close()?;
    info!(events = engine.counters.events, "phiwatch run stopped");
    Ok(())
}

/// Handles one message from a source thread.
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

/// Sends alerts to the sinks, waits until they are flushed, then records their ids.
pub(crate) fn deliver(
    sinks: &SinkSet,
    alerts: &mut Vec<Alert>,
    log: &mut std::fs::File,
) -> Result<()> {
    if alerts.is_empty() {
        return Ok(());
    }
    let m = metrics::get();
    for a in alerts.iter() {
        m.alerts
            .with_label_values(&[&a.detector, a.severity.as_str()])
            .inc();
        sinks.send(a);
    }
    if let Err(e) = sinks.flush(Duration::from_secs(30)) {
        warn!(error = %e, "sinks did not confirm delivery in time");
    }
    let mut buf = String::new();
    for a in alerts.drain(..) {
        buf.push_str(&a.id);
        buf.push('\n');
    }
    log.write_all(buf.as_bytes())?;
    log.sync_data()?;
    Ok(())
}

pub(crate) fn load_emitted(path: &Path) -> Result<Vec<String>> {
    match std::fs::File::open(path) {
        Ok(f) => Ok(std::io::BufReader::new(f)
            .lines()
            .map_while(|l| l.ok())
            .filter(|l| !l.trim().is_empty())
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

pub(crate) fn merge_positions(into: &mut Vec<Position>, new: Vec<Position>) {
    for p in new {
        match into.iter_mut().find(|q| q.id.same_file(&p.id)) {
            Some(q) => *q = p,
            None => into.push(p),
        }
    }
    if into.len() > MAX_POSITIONS_PER_SOURCE {
        let excess = into.len() - MAX_POSITIONS_PER_SOURCE;
        into.drain(..excess);
    }
}

fn snapshot(
    path: &Path,
    engine: &Engine,
    positions: &BTreeMap<String, Vec<Position>>,
    dl: &mut DeadLetter,
    sinks: &SinkSet,
) -> Result<()> {
    // Rejected lines and alerts before the positions that cover them.
    dl.flush()?;
    if let Err(e) = sinks.flush(Duration::from_secs(30)) {
        warn!(error = %e, "sinks did not confirm delivery before the snapshot");
    }
    #[derive(Serialize)]
    struct SnapshotRef<'a> {
        version: u32,
        positions: &'a BTreeMap<String, Vec<Position>>,
        engine: &'a State,
    }
    let bytes = serde_json::to_vec(&SnapshotRef {
        version: SNAPSHOT_VERSION,
        positions,
        engine: engine.state(),
    })?;
    source::write_atomic(path, &bytes)
        .with_context(|| format!("cannot write the snapshot {}", path.display()))?;
    let m = metrics::get();
    m.snapshot_timestamp_seconds.set(metrics::now_secs());
    let (state_bytes, users) = engine.state_size();
    m.state_bytes.set(state_bytes as i64);
    m.state_users.set(users as i64);
    Ok(())
}

fn record_reference(engine: &Engine) {
    let m = metrics::get();
    let (s, p, c) = engine.reference_rows();
    m.reference_rows.with_label_values(&["staff"]).set(s as i64);
    m.reference_rows
        .with_label_values(&["patients"])
        .set(p as i64);
    m.reference_rows.with_label_values(&["care"]).set(c as i64);
    m.reference_reload_timestamp_seconds
        .set(metrics::now_secs());
}

/// Re-reads the detector files; on any error the detectors in service stay.
fn reload_detectors(cfg: &Config, engine: &mut Engine) {
    match crate::detect::load(cfg.engine.detectors.as_deref()) {
        Ok(ds) => {
            info!(detectors = ds.len(), "detectors reloaded");
            engine.set_detectors(ds);
        }
        Err(errs) => error!(
            errors = %errs.join("; "),
            "detector reload failed; keeping the detectors in service"
        ),
    }
}

/// Re-reads reference data when a file changed (or always, when `force`); on any error
/// the data in service stays.
fn reload(cfg: &Config, engine: &mut Engine, force: bool) {
    reload_reference(&cfg.reference, engine, force)
}

fn reload_reference(rc: &crate::config::ReferenceConfig, engine: &mut Engine, force: bool) {
    if !force && !engine.reference_changed(rc) {
        return;
    }
    if let Some(r) = super::reload_reference(rc) {
        engine.set_reference(r);
    }
}
