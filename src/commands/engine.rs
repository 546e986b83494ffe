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
use crate::metrics;
use anyhow::Result;
use rdkafka::consumer::Consumer;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::{info, warn};

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
    let every = Duration::from_secs(cfg.state.snapshot_secs.max(1));
    let mut last_snapshot = Instant::now();
    d.ready();
    info!(topic = %cfg.kafka.events_topic, group = %cfg.kafka.group, "phiwatch engine started");
    while !d.stopping() {
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
        let reloaded = reloader.poll(d.take_reload(), p.reference());
        p.apply(reloaded);
        drop(p);
        owners.tick(&consumer, &cfg.kafka.events_topic)?;
        d.alive();
    }
    d.stop();
    lock(&parts).finish(&consumer)?;
    // Leaving the group after the final snapshot: the partitions' next owner starts there.
    consumer.unsubscribe();
    drop(consumer);
    owners.remove();
    match Arc::try_unwrap(parts) {
        Ok(p) => p.into_inner().unwrap_or_else(|e| e.into_inner()).close()?,
        Err(_) => warn!("sinks not closed: the consumer still holds them"),
    }
    d.stopped();
    info!("phiwatch engine stopped");
    Ok(())
}
