//! systemd integration (`Type=notify`): READY=1 once the pipeline runs, WATCHDOG=1 from
//! the engine loop itself (so a wedged loop stops the pings and systemd restarts the
//! service), STOPPING=1 on the way out. Outside systemd every call is a no-op.

use std::time::{Duration, Instant};

pub struct Notifier {
    interval: Option<Duration>,
    last: Instant,
}

impl Notifier {
    pub fn new() -> Notifier {
        Notifier {
            // Ping at half the watchdog interval, as systemd recommends.
            interval: sd_notify::watchdog_enabled().map(|d| d / 2),
            last: Instant::now(),
        }
    }

    pub fn ready(&self) {
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    }

    /// Called from every turn of the engine loop.
    pub fn alive(&mut self) {
        if let Some(i) = self.interval {
            if self.last.elapsed() >= i {
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
                self.last = Instant::now();
            }
        }
    }

    pub fn stopping(&self) {
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    }
}

impl Default for Notifier {
    fn default() -> Self {
        Notifier::new()
    }
}
