//! `demo`: simulates a hospital into a temporary folder, replays it, prints the alerts and
//! the scorecard. The one command a new user runs first.

use crate::config::Config;
use crate::simulate::SimOptions;
use anyhow::{Context, Result};
use std::io::Write;
use std::path::Path;

pub fn main(seed: u64, staff: usize, days: u32, keep: Option<&Path>) -> Result<i32> {
    use std::io::IsTerminal;
    let started = std::time::Instant::now();
    let tmp;
    let dir = match keep {
        Some(d) => d.to_path_buf(),
        None => {
            tmp = tempfile::tempdir().context("cannot create a temporary folder")?;
            tmp.path().to_path_buf()
        }
    };
    let opts = SimOptions::checked(seed, staff, days)?;
    eprintln!(
        "Simulating {} staff over {} days (seed {}) into {} ...",
        opts.staff,
        opts.days,
        opts.seed,
        dir.display()
    );
    let summary = crate::simulate::simulate(&opts, &dir)?;
    eprintln!("{summary}");
    let cfg = Config::load(&dir.join("phiwatch.toml"))?;
    let mut alerts = Vec::new();
    let replayed = crate::replay::replay(&cfg, |a| {
        alerts.push(a.clone());
        Ok(())
    })?;
    eprint!("{}", replayed.render());
    let stdout = std::io::stdout();
    let color = stdout.is_terminal();
    let mut out = stdout.lock();
    writeln!(out)?;
    crate::report::print_alerts(&alerts, &mut out, color)?;
    let labels = crate::score::Labels::load(&dir.join("labels.json"))?;
    let card = crate::score::score(&labels, &alerts);
    writeln!(out)?;
    write!(out, "{card}")?;
    writeln!(
        out,
        "\ndemo finished in {:.1} s",
        started.elapsed().as_secs_f64()
    )?;
    Ok(0)
}
