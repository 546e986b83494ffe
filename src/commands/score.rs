//! `score`: scores alerts (JSON lines) against a simulator's `labels.json`.

use crate::alert::Alert;
use anyhow::{Context, Result};
use std::path::Path;

pub fn main(labels: &Path, alerts: &Path, json: bool) -> Result<i32> {
    let labels = crate::score::Labels::load(labels)?;
    let alerts = read_alerts(alerts)?;
    let card = crate::score::score(&labels, &alerts);
    if json {
        println!("{}", serde_json::to_string_pretty(&card)?);
    } else {
        print!("{card}");
    }
    Ok(0)
}

fn read_alerts(path: &Path) -> Result<Vec<Alert>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read alerts from {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .with_context(|| format!("{}:{}: not an alert JSON line", path.display(), i + 1))
        })
        .collect()
}
