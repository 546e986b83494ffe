//! `simulate`: writes a synthetic hospital (reference CSVs, logs in several formats, a
//! config and the labels of its insiders).

use crate::simulate::SimOptions;
use anyhow::Result;
use std::path::Path;

pub fn main(out: &Path, seed: u64, staff: usize, days: u32) -> Result<i32> {
    let summary = crate::simulate::simulate(&SimOptions::checked(seed, staff, days)?, out)?;
    eprintln!("{summary}");
    Ok(0)
}
