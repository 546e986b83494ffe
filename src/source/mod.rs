//! Sources: where input lines come from. `file` follows files as they grow (for `run`)
//! or reads them once (for `replay`); `fswatch` turns filesystem changes into events.
//!
//! The types shared by the file source and its checkpoints live here: a file's identity
//! ([`FileId`]) and how far into it we are ([`Position`]).

pub mod checkpoint;
pub mod file;
pub mod fswatch;

pub use checkpoint::Checkpoints;
pub use file::{read_once, LineKind, OrderKey, ReadOnce, TailLine, TailOptions, Tailer};

use serde::{Deserialize, Serialize};

/// Longest line handed out in full, without its terminator. Real ATNA messages reach tens
/// of KiB; a line of a megabyte is a framing error (a file without line breaks), and
/// refusing it before any parsing keeps one bad file from costing seconds of CPU.
pub const MAX_LINE_BYTES: usize = 1 << 20;
use sha2::{Digest, Sha256};

/// Which file a line or a checkpoint belongs to.
///
/// A path is not an identity: rotation gives a path a new file and a file a new path. So a
/// file is known by its device and inode, which stay put across renames, plus a
/// `fingerprint` of its first bytes, which tells a file apart from a later one that got
/// the same inode (the old one was deleted) or from itself after it was truncated and
/// rewritten in place.
///
/// The fingerprint of a file *at an offset* is the hash of its first
/// `min(fingerprint_bytes, offset)` bytes (see [`FileId::fingerprint_of`]). Tying it to an
/// offset, rather than to whatever the file held when it was hashed, makes every
/// [`Position`] self-checking: on restart the hash of the same bytes is recomputed and
/// compared, even for a file that was shorter than `fingerprint_bytes` when the position
/// was taken and has grown since. The price: while a file is shorter than
/// `fingerprint_bytes`, the ids of its successive lines differ in `fingerprint`. Key
/// per-file state by [`FileId::same_file`] (device and inode), not by the whole id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
    pub fingerprint: u64,
}

impl FileId {
    /// The fingerprint of `prefix`, the first bytes of a file: the first 8 bytes of its
    /// SHA-256, big-endian. Stable across builds and platforms, since it is persisted.
    pub fn fingerprint_of(prefix: &[u8]) -> u64 {
        let digest = Sha256::digest(prefix);
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_be_bytes(first)
    }

    /// True when both ids name the same inode on the same device: the same open file
    /// within one run, whatever its fingerprint was when each id was taken.
    pub fn same_file(&self, other: &FileId) -> bool {
        self.dev == other.dev && self.ino == other.ino
    }
}

impl std::fmt::Display for FileId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{:016x}", self.dev, self.ino, self.fingerprint)
    }
}

/// How far into a file reading (or processing) got: `offset` is the byte after the last
/// line handed out (or acknowledged), always at a line boundary. `path` is where the file
/// was last seen; it is a hint for finding the file again after a rename, never its
/// identity. `id.fingerprint` is the fingerprint at `offset` (see [`FileId`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub path: String,
    pub id: FileId,
    pub offset: u64,
}
