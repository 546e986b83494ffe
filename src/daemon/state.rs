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
pub fn save(path: &Path, snapshot: &impl Serialize) -> Result<()> {
    let bytes = serde_json::to_vec(snapshot)?;
    crate::durable::write_atomic(path, &bytes)
        .with_context(|| format!("cannot write the snapshot {}", path.display()))?;
    metrics::get()
        .snapshot_timestamp_seconds
        .set(metrics::now_secs());
    Ok(())
}

/// Exports the size of the engine state held (bytes, users).
pub fn record_size(bytes: usize, users: usize) {
    let m = metrics::get();
    m.state_bytes.set(bytes as i64);
    m.state_users.set(users as i64);
}
