//! Standalone checkpoint files for a [`Tailer`](super::Tailer), for callers that keep no
//! other state store. Written with [`crate::durable`], so a crash leaves the old or the new
//! file, never a torn one.

use super::Position;
use crate::durable::{read_json, write_json, ReadError};
use serde::{Deserialize, Serialize};
use std::io;
use std::path::Path;

/// A standalone checkpoint file for one [`Tailer`](super::Tailer): where each followed
/// file was, for callers that keep no other state store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoints {
    /// Format version, for readers of older files. Currently 1.
    #[serde(default = "Checkpoints::version_one")]
    pub version: u32,
    pub positions: Vec<Position>,
}

impl Checkpoints {
    fn version_one() -> u32 {
        1
    }

    pub fn new(positions: Vec<Position>) -> Checkpoints {
        Checkpoints {
            version: 1,
            positions,
        }
    }

    /// Loads a checkpoint file; `Ok(None)` when there is none yet.
    pub fn load(path: &Path) -> Result<Option<Checkpoints>, ReadError> {
        read_json(path)
    }

    /// Saves atomically (see [`crate::durable::write_atomic`]).
    pub fn save(&self, path: &Path) -> io::Result<()> {
        write_json(path, self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn missing_is_none_and_corrupt_is_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cp.json");
        assert!(read_json::<Checkpoints>(&p).unwrap().is_none());
        fs::write(&p, b"{\"positions\": [").unwrap();
        assert!(matches!(
            read_json::<Checkpoints>(&p),
            Err(ReadError::Corrupt { .. })
        ));
        fs::write(&p, b"").unwrap();
        assert!(matches!(
            read_json::<Checkpoints>(&p),
            Err(ReadError::Corrupt { .. })
        ));
    }

    #[test]
    fn version_defaults_to_one() {
        let c: Checkpoints = serde_json::from_str(r#"{"positions": []}"#).unwrap();
        assert_eq!(c.version, 1);
    }
}
