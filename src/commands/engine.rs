//! `engine`: the detecting half of `run`, a member of the `[kafka] group` consuming
//! `events_topic`. Per-partition state, handover on rebalance and the delivery guarantee
//! are in `kafka::consumer`; partition leases in `kafka::lease`.

use crate::config::Config;
use crate::daemon::partitions::Parts;
use crate::daemon::reload::{record_detectors, record_reference, Reloader};
use crate::daemon::signals::Flags;
use crate::daemon::{self, Daemon};
use crate::kafka::consumer::{self, lock};
use crate::kafka::lease::Owners;
use crate::kafka::stall::StallWatch;
use crate::metrics;
use anyhow::Result;
use rdkafka::consumer::Consumer;
use rdkafka::Message;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// From SIGTERM to the end of `engine`, at most: under systemd's and the tests' 10 s.
const STOP_BUDGET: Duration = Duration::from_secs(7);
/// Of which, at most, for the final snapshots.
const FINISH_BUDGET: Duration = Duration::from_secs(4);
/// Events (or messages, for those without events) applied one after the other, without
/// waiting, before the loop's housekeeping (alert delivery, snapshots, reloads, leases,
/// stall checks, watchdog) runs again. While catching up, doing it after every message
/// put half a dozen clock reads and as many checks on each event; a burst this long lasts
/// a few milliseconds (a batch message of up to 1,000 events ends its burst).
const BURST: u32 = 256;

pub fn main(config: &Path) -> Result<i32> {
    let cfg = super::load_config(config, true)?;
    run(&cfg, daemon::signals::install()?)?;
    Ok(0)
}

/// Runs until `flags.stop` is set.
pub fn run(cfg: &Config, flags: Arc<Flags>) -> Result<()> {
    let dir = cfg.state.dir.join("engine");
    // Engines of one group share this folder by design: no lock.
    let mut d = Daemon::start(cfg, "engine", &dir, false, flags)?;
    let parts = Parts::new(cfg, dir.clone())?;
    let m = metrics::get();
    record_detectors(parts.detectors());
    for s in &cfg.sources {
        m.register_source(&s.name);
    }
    record_reference(parts.reference());
    let parts = Arc::new(Mutex::new(parts));
    let consumer = consumer::subscribe(&cfg.kafka, &parts)?;
    let mut reloader = Reloader::new(cfg);
    let mut owners = Owners::new(cfg, &dir)?;
    let mut stalls = StallWatch::default();
    let every = Duration::from_secs(cfg.state.snapshot_secs.max(1));
    let mut last_snapshot = Instant::now();
    d.ready();
    info!(topic = %cfg.kafka.events_topic, group = %cfg.kafka.group, "phiwatch engine started");
    let mut burst = 0;
    let mut now = Instant::now();
    while !d.stopping() {
        // The lock is never held across poll(): rebalance callbacks run inside it. Within
        // a burst, poll only takes what librdkafka holds already.
        let wait = if burst > 0 {
            Duration::ZERO
        } else {
            Duration::from_millis(200)
        };
        match consumer.poll(wait) {
            Some(Ok(msg)) => {
                stalls.heard(msg.partition(), now);
                burst += lock(&parts).take(&msg)?.max(1);
                if burst < BURST {
                    continue;
                }
            }
            Some(Err(e)) => {
                m.kafka_consume_errors.inc();
                warn!(error = %e, "Kafka consume error; retrying");
            }
            None => {}
        }
        burst = 0;
        now = Instant::now();
        let mut p = lock(&parts);
        p.tick()?;
        if last_snapshot.elapsed() >= every {
            p.save_due(&consumer)?;
            last_snapshot = Instant::now();
        }
        let reloaded = reloader.poll(d.take_reload(), p.reference());
        p.apply(reloaded);
        drop(p);
        owners.tick(&consumer, &cfg.kafka.events_topic)?;
        stalls.tick(&consumer, &cfg.kafka.events_topic, |p| {
            lock(&parts).position(p)
        })?;
        d.alive();
    }
    d.stop();
    let stop_began = Instant::now();
    // The final snapshots, then leaving the group (the partitions' next owner starts at
    // the snapshots), on a thread of its own: a broker that is gone can hold up leaving
    // the group for long, and SIGTERM must end the engine within 10 s. Offsets not
    // committed then are only redelivered, and dropped by the snapshots.
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let leaving = Arc::clone(&parts);
    std::thread::Builder::new()
        .name("leave-group".into())
        .spawn(move || {
            let r = lock(&leaving).finish(&consumer);
            let _ = done_tx.send(r);
            consumer.unsubscribe();
            drop(consumer);
        })?;
    match done_rx.recv_timeout(FINISH_BUDGET) {
        Ok(r) => r?,
        Err(_) => warn!("the final snapshots did not finish in time; the next start applies again what they miss"),
    }
    owners.remove();
    // Sinks get what is left of the budget; what they cannot deliver stays queued on disk.
    let left = STOP_BUDGET.saturating_sub(stop_began.elapsed());
    let deadline = Instant::now() + left.min(Duration::from_secs(1));
    let sinks = loop {
        if let Ok(mut p) = parts.try_lock() {
            break Some(p.take_sinks());
        }
        if Instant::now() >= deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    match sinks {
        Some(s) => {
            let left = STOP_BUDGET.saturating_sub(stop_began.elapsed());
            if let Err(e) = s.close_within(left) {
                warn!(error = %format!("{e:#}"), "sinks closed with alerts still queued");
            }
        }
        None => warn!("sinks not closed: the final snapshot still holds them"),
    }
    d.stopped();
    info!("phiwatch engine stopped");
    Ok(())
}
