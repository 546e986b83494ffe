//! `agent`: the collecting half of `run`. The sources are followed and decoded as in
//! `run`, and every event is produced to `[kafka] events_topic`, keyed by the user's
//! comparison key so that one user's events stay on one partition and in order. The way
//! to Kafka (spool, producer, checkpoint) and its guarantees are in `kafka::producer`.

use crate::config::Config;
use crate::daemon::signals::Flags;
use crate::daemon::{self, Daemon};
use crate::deadletter::DeadLetter;
use crate::ingest::follow::{start_sources, Started};
use crate::ingest::Msg;
use crate::kafka::producer::SpoolProducer;
use crate::metrics;
use anyhow::Result;
use std::path::Path;
use std::sync::mpsc::sync_channel;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{info, warn};

pub fn main(config: &Path) -> Result<i32> {
    let cfg = super::load_config_with_sources(config, true)?;
    run(&cfg, daemon::signals::install()?)?;
    Ok(0)
}

/// Runs until `flags.stop` is set.
pub fn run(cfg: &Config, flags: Arc<Flags>) -> Result<()> {
    let dir = cfg.state.dir.join("agent");
    let mut d = Daemon::start(cfg, "agent", &dir, true, flags)?;
    let mut out = SpoolProducer::open(cfg, &dir)?;
    let (tx, rx) = sync_channel::<Msg>(4);
    let Started { threads, watchers } = start_sources(cfg, out.read(), tx, &d.flags.stop, false)?;
    let m = metrics::get();
    for s in &cfg.sources {
        m.register_source(&s.name);
    }
    d.ready();
    let mut dl = DeadLetter::new(&cfg.dead_letter_path());
    let mut last_save = Instant::now();
    let mut told_full = false;
    let mut open = true;
    info!(topic = %out.topic(), sources = threads.len() + watchers.len(), "phiwatch agent started");
    while !d.stopping() {
        // Intake: from the sources into the spool, unless it is full.
        let full = out.spool_is_full();
        m.spool_full.set(full as i64);
        if full {
            if !told_full {
                warn!(
                    bytes = out.spool_bytes(),
                    "the spool is full: reading is paused until Kafka takes events again"
                );
                told_full = true;
            }
            std::thread::sleep(Duration::from_millis(50));
        } else {
            told_full = false;
            if open {
                open = out.intake(&rx, &mut dl)?;
            } else {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        out.beat_if_due()?;
        out.pump()?;
        if last_save.elapsed() >= Duration::from_secs(1) {
            dl.flush()?;
            out.save()?;
            last_save = Instant::now();
            m.spool_bytes.set(out.spool_bytes() as i64);
        }
        d.alive();
    }
    info!("stopping: sources first, then what the spool holds, all within 10 s");
    d.stop();
    let stop_began = Instant::now();
    drop(watchers);
    // A source thread may be blocked sending into the full channel: keep taking from it
    // while they end, for a bounded time (a thread still stuck is left behind; what it
    // read is not checkpointed and is read again at the next start).
    let mut threads = threads;
    loop {
        out.intake_rest(&rx, &mut dl)?;
        threads.retain(|h| !h.is_finished());
        if threads.is_empty() || stop_began.elapsed() >= Duration::from_secs(3) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if !threads.is_empty() {
        warn!(
            threads = threads.len(),
            "source threads still busy at stop; left behind"
        );
    }
    out.intake_rest(&rx, &mut dl)?;
    // What Kafka has not acknowledged by then stays in the spool for the next start;
    // the whole way out stays under 10 s.
    let deadline = stop_began + Duration::from_secs(6);
    while !out.drained() && Instant::now() < deadline {
        out.pump()?;
    }
    dl.flush()?;
    out.save()?;
    d.stopped();
    info!(left_in_spool = out.spool_bytes(), "phiwatch agent stopped");
    Ok(())
}
