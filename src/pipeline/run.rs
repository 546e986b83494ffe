//! `run`: the daemon. Placeholder until the file source lands.

use anyhow::Result;
use std::path::Path;

pub fn main(config: &Path) -> Result<i32> {
    anyhow::bail!("run is not available yet ({})", config.display())
}
