//! The tests of one binary run on parallel threads of one process. Where they would share
//! something that exists once per process or per machine, they take one of these locks
//! for their whole length, so that such tests run one after the other.
//!
//! What is shared and how it is kept apart:
//! - the inotify queue limit (`fs.inotify.max_queued_events`, machine-wide): the overflow
//!   test lowers it while it creates its watcher, and every inotify instance made in that
//!   moment gets the tiny queue. Every test that makes one (an `fswatch` source, in this
//!   process or in a `phiwatch run` it starts) holds [`inotify`].
//! - the Prometheus registry (`phiwatch::metrics::get()`, one per process) and the
//!   sockets librdkafka's mock cluster accepts without close-on-exec (a child process
//!   started meanwhile would hold them open): daemons run inside the test process only
//!   in `tests/kafka_mock.rs`, a binary of its own whose tests start no child process
//!   and read no metrics. Everywhere else the daemons are child processes with their
//!   own registries.
//! - environment variables, the current folder and signal handlers: no test changes
//!   them; daemons get their settings from their config and signals go to child
//!   processes only.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Held by every test that creates an inotify instance (see the module's notes).
pub fn inotify() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    // A test that failed while holding the lock has released what it held.
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}
