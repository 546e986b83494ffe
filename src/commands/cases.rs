//! `cases`: the open cases (a user's alerts over a rolling 30 days) of an alert file,
//! worst first.

use crate::alert::Alert;
use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

pub fn main(alerts: &Path, json: bool) -> Result<i32> {
    let text = std::fs::read_to_string(alerts)
        .with_context(|| format!("cannot read alerts from {}", alerts.display()))?;
    let list: Vec<Alert> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .with_context(|| format!("{}:{}: not an alert JSON line", alerts.display(), i + 1))
        })
        .collect::<Result<_>>()?;
    let cases = crate::engine::cases::open_cases(&list);
    let mut out = String::new();
    if json {
        for c in &cases {
            writeln!(out, "{}", serde_json::to_string(c)?)?;
        }
    } else if cases.is_empty() {
        writeln!(out, "No open cases.")?;
    } else {
        writeln!(
            out,
            "{:<21} {:<12} {:>6} {:<9} {:>5}  {:<17} {:<17} detectors",
            "case", "user", "alerts", "worst", "risk", "first", "last"
        )?;
    }
    for c in cases.iter().filter(|_| !json) {
        writeln!(
            out,
            "{:<21} {:<12} {:>6} {:<9} {:>5}  {:<17} {:<17} {}",
            c.case,
            c.user,
            c.alerts,
            c.worst.as_str(),
            c.risk,
            c.first.format("%Y-%m-%d %H:%M"),
            c.last.format("%Y-%m-%d %H:%M"),
            c.detectors.join(",")
        )?;
    }
    // A reader that stops early (`| head`) is not an error.
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
    Ok(0)
}
