//! A daemon's state folder: created with a message that says what to do, locked so one
//! process is its only writer, and the snapshots written into it.
//!
//! A snapshot is one JSON file holding everything a daemon must have to resume exactly
//! where it was (engine state together with the input positions it covers), replaced
//! atomically (see [`crate::durable`]), so a crash at any instant leaves the previous
//! snapshot or the new one.

use crate::metrics;
use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Creates a state folder (`[state] dir` or one below it).
pub fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| {
        format!(
            "cannot create the state folder {}; set [state] dir to a writable folder",
            dir.display()
        )
    })
}

/// Takes the lock that makes one process the only writer of a state folder, held until the
/// returned file is dropped (the kernel releases it when the process dies, even by SIGKILL).
/// Two agents, or two `run`s, on one state folder would each rewrite the other's positions
/// and spool and lose or repeat events.
pub fn lock(dir: &Path, who: &str) -> Result<std::fs::File> {
    let path = dir.join(format!("{who}.lock"));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open the lock file {}", path.display()))?;
    // flock(2), not fcntl locks: it belongs to this open file, not to the process.
    use std::os::fd::AsRawFd;
    // SAFETY: flock only reads the descriptor, which `file` keeps open.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(file);
    }
    let e = std::io::Error::last_os_error();
    if e.kind() == std::io::ErrorKind::WouldBlock {
        anyhow::bail!(
            "another phiwatch {who} is running with the state folder {}; stop it, or give this one its own [state] dir",
            dir.display()
        );
    }
    Err(e).with_context(|| format!("cannot lock {}", path.display()))
}

/// A snapshot format: its version is written into the file, and a file of another version
/// is not loaded (the daemon starts that state from scratch and says so).
pub trait Snapshot: Serialize + DeserializeOwned {
    fn version(&self) -> u32;
}

/// Reads a snapshot. `Ok(None)` when there is none yet or it has another version (logged);
/// an error, saying how to start over, when it exists but cannot be read. `fresh` says what
/// starting from scratch means for this daemon.
pub fn load<T: Snapshot>(path: &Path, current: u32, fresh: &str) -> Result<Option<T>> {
    match crate::durable::read_json::<T>(path) {
        Ok(Some(s)) if s.version() == current => Ok(Some(s)),
        Ok(Some(s)) => {
            tracing::warn!(path = %path.display(), version = s.version(), expected = current, "the snapshot has another version; starting from scratch");
            Ok(None)
        }
        Ok(None) => Ok(None),
        Err(e) => anyhow::bail!(
            "the snapshot {} cannot be read ({e}); move it away to start from scratch ({fresh})",
            path.display()
        ),
    }
}

/// Writes a snapshot atomically and durably, and tells the metrics when.
///
/// The text is written into a buffer the size of the last snapshot (and a bit): grown by
/// doubling instead, a snapshot of tens of megabytes (`run`'s reorder buffer while it
/// catches up) was copied several times over and faulted in fresh pages each time.
pub fn save(path: &Path, snapshot: &impl Serialize) -> Result<()> {
    static LAST: AtomicUsize = AtomicUsize::new(0);
    let hint = LAST.load(Ordering::Relaxed);
    let mut bytes = Vec::with_capacity(hint + hint / 8 + 4096);
    serde_json::to_writer(&mut bytes, snapshot)?;
    LAST.store(bytes.len(), Ordering::Relaxed);
    crate::durable::write_atomic(path, &bytes)
        .with_context(|| format!("cannot write the snapshot {}", path.display()))?;
    metrics::get()
        .snapshot_timestamp_seconds
        .set(metrics::now_secs());
    Ok(())
}

/// When `run`'s snapshots are due: every `snapshot_secs`, or, when writing one takes
/// long, nine times as long as the last one took, so that snapshots take at most a tenth
/// of the thread's time. While `run` catches up, its reorder buffer holds the events of
/// the sources that are ahead (tens of megabytes of JSON on a month's files), and a
/// snapshot each second was half of the engine thread's time. Live, with a small buffer,
/// a snapshot takes milliseconds and the interval is `snapshot_secs`. (`engine` paces
/// each partition with one, also scaled by how much its reorder buffer has changed since
/// the last snapshot: `daemon::partitions::Pace`.)
#[derive(Debug)]
pub struct Pacer {
    every: Duration,
    last: Instant,
    took: Duration,
}

impl Pacer {
    pub fn new(every: Duration) -> Pacer {
        Pacer {
            every,
            last: Instant::now(),
            took: Duration::ZERO,
        }
    }

    /// True when the next snapshot is due.
    pub fn due(&self) -> bool {
        self.due_at_cost(1.0)
    }

    /// True when the next snapshot is due, expected to cost `cost` times what the last
    /// one took (`engine` scales by how its reorder buffer changed since, and by the
    /// partitions it writes one after the other: `daemon::partitions::Pace`).
    pub fn due_at_cost(&self, cost: f64) -> bool {
        let expected = self.took.mul_f64(cost);
        self.last.elapsed() >= self.every.max(expected.saturating_mul(9))
    }

    /// Time since the last snapshot ended.
    pub fn age(&self) -> Duration {
        self.last.elapsed()
    }

    /// Notes a snapshot that began at `started` and has just ended.
    pub fn done(&mut self, started: Instant) {
        self.last = Instant::now();
        self.took = self.last - started;
    }
}

/// Exports the size of the engine state held (bytes, users).
pub fn record_size(bytes: usize, users: usize) {
    let m = metrics::get();
    m.state_bytes.set(bytes as i64);
    m.state_users.set(users as i64);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A snapshot that took long pushes the next one back; a quick one does not.
    #[test]
    fn a_slow_snapshot_spaces_out_the_next() {
        let mut p = Pacer::new(Duration::from_millis(20));
        assert!(!p.due());
        std::thread::sleep(Duration::from_millis(25));
        assert!(p.due());
        p.done(Instant::now() - Duration::from_millis(100));
        std::thread::sleep(Duration::from_millis(25));
        assert!(!p.due(), "nine times 100 ms have not passed");
        p.done(Instant::now());
        std::thread::sleep(Duration::from_millis(25));
        assert!(p.due());
    }
}
