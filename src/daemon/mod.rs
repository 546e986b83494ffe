//! What the three daemons (`run`, `agent`, `engine`) share, written once: their state
//! folder and its lock, snapshots, the emitted-alert log and delivery to sinks, reloads of
//! reference data and detectors, health and readiness, systemd notifications and signals.
//!
//! A daemon's loop is its own (each moves different things), but every turn of it calls
//! [`Daemon::alive`], and its start and end go through [`Daemon::start`],
//! [`Daemon::ready`] and [`Daemon::stop`], so health, `phiwatch_up`, readiness and the
//! systemd watchdog mean the same thing for all three.

pub mod emitted;
pub mod health;
pub mod notify;
pub mod partitions;
pub mod reload;
pub mod signals;
pub mod state;

use crate::config::Config;
use crate::metrics;
use crate::sink::SinkSet;
use anyhow::Result;
use health::Health;
use notify::Notifier;
use signals::Flags;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub use emitted::Emitted;
pub use reload::Reloader;

/// A running daemon's lifecycle: its state folder (created, and locked unless several
/// processes share it by design), the health endpoint, the systemd notifier and the
/// signal flags.
pub struct Daemon {
    pub flags: Arc<Flags>,
    /// The daemon's own state folder.
    pub dir: PathBuf,
    health: Arc<Health>,
    notifier: Notifier,
    _lock: Option<std::fs::File>,
}

impl Daemon {
    /// Creates `dir` and, with `lock`, takes it for `who` (a second `run` or `agent` on
    /// the same folder is refused); starts `/metrics` and health when `[metrics] listen`
    /// is set. The daemon is not ready until [`Daemon::ready`].
    pub fn start(
        cfg: &Config,
        who: &str,
        dir: &Path,
        lock: bool,
        flags: Arc<Flags>,
    ) -> Result<Daemon> {
        state::create_dir(dir)?;
        let lock = if lock {
            Some(state::lock(dir, who)?)
        } else {
            None
        };
        let health = health::start(cfg.metrics.listen.as_deref())?;
        Ok(Daemon {
            flags,
            dir: dir.to_path_buf(),
            health,
            notifier: Notifier::new(),
            _lock: lock,
        })
    }

    /// Sources, state and sinks are up: `phiwatch_up` 1, `/readyz` green, READY=1.
    pub fn ready(&self) {
        metrics::get().up.set(1);
        self.health.ready.store(true, Ordering::Relaxed);
        self.notifier.ready();
    }

    /// One turn of the daemon's loop: keeps `/healthz` green and pings the watchdog.
    /// Called from the loop itself, so a wedged loop stops both.
    pub fn alive(&mut self) {
        self.health.tick();
        self.notifier.alive();
    }

    /// True once SIGTERM or SIGINT arrived.
    pub fn stopping(&self) -> bool {
        self.flags.stopping()
    }

    /// True once per SIGHUP.
    pub fn take_reload(&self) -> bool {
        self.flags.take_reload()
    }

    /// The way out begins: STOPPING=1, `/readyz` red.
    pub fn stop(&self) {
        self.notifier.stopping();
        self.health.ready.store(false, Ordering::Relaxed);
    }

    /// The way out is done: `phiwatch_up` 0.
    pub fn stopped(&self) {
        metrics::get().up.set(0);
    }
}

/// Copies every sink's own counters into the exported metrics (sinks count for
/// themselves and know nothing of Prometheus).
pub fn record_sinks(sinks: &SinkSet) {
    let m = metrics::get();
    for sink in sinks.stats() {
        let s = sink.stats.snapshot();
        let name = sink.name.as_str();
        let up = |c: &prometheus::IntCounterVec, v: u64| {
            let c = c.with_label_values(&[name]);
            let cur = c.get();
            if v > cur {
                c.inc_by(v - cur);
            }
        };
        m.sink_queue_depth
            .with_label_values(&[name])
            .set(s.queued as i64);
        up(&m.sink_sent, s.sent);
        up(&m.sink_unconfirmed, s.unconfirmed);
        up(&m.sink_errors, s.errors);
        up(&m.sink_retries, s.retries);
        up(&m.sink_dropped, s.dropped);
        up(&m.sink_failed, s.failed);
    }
}
