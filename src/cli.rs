//! The command line. Each subcommand is a thin function over the library; the names and
//! flags are fixed by the outside contract.

use crate::config::{self, Config};
use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Parser, Debug)]
#[command(
    name = "phiwatch",
    version,
    about = "Insider-leak detection for hospital EHR audit logs",
    long_about = "phiwatch reads EHR audit logs, joins them with the staff roster, the patient \
                  directory and care relationships, and writes explained alerts about staff who \
                  snoop in patient charts or export records in bulk."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// The daemon: every source, the engine and every sink in one process.
    Run {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Reads every file source once, in event-time order, and writes alerts as JSON lines.
    Replay {
        #[arg(long)]
        config: PathBuf,
        /// Alert output file (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Validates config, detectors and reference data without running.
    Check {
        #[arg(long)]
        config: Option<PathBuf>,
        /// Also connect to the Kafka brokers and check that the topics exist.
        #[arg(long)]
        connect: bool,
    },
    /// The collecting half of `run`: follows the sources and produces events to Kafka.
    Agent {
        #[arg(long)]
        config: PathBuf,
    },
    /// The detecting half of `run`: consumes events from Kafka and writes alerts.
    Engine {
        #[arg(long)]
        config: PathBuf,
    },
    /// Writes a synthetic hospital: reference CSVs, logs in several formats, a config and labels.
    Simulate {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 800)]
        staff: usize,
        #[arg(long, default_value_t = 30)]
        days: u32,
    },
    /// Simulates a hospital into a temporary folder, replays it, prints the alerts and the scorecard.
    Demo {
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 800)]
        staff: usize,
        #[arg(long, default_value_t = 30)]
        days: u32,
        /// Keep the simulated hospital in this folder instead of a temporary one.
        #[arg(long)]
        keep: Option<PathBuf>,
    },
    /// Scores alerts (JSON lines) against a simulator's labels.json.
    Score {
        #[arg(long)]
        labels: PathBuf,
        alerts: PathBuf,
        /// Print the scorecard as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Entry point used by `main`: returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    crate::logging::init();
    let result = match cli.command {
        Command::Run { config } => {
            crate::pipeline::run::main(&config.unwrap_or_else(config::default_path))
        }
        Command::Replay { config, out } => replay(&config, out.as_deref()),
        Command::Check { config, connect } => {
            check(&config.unwrap_or_else(config::default_path), connect)
        }
        Command::Agent { config } => crate::pipeline::agent::main(&config),
        Command::Engine { config } => crate::pipeline::engine_node::main(&config),
        Command::Simulate {
            out,
            seed,
            staff,
            days,
        } => simulate(&out, seed, staff, days),
        Command::Demo {
            seed,
            staff,
            days,
            keep,
        } => demo(seed, staff, days, keep.as_deref()),
        Command::Score {
            labels,
            alerts,
            json,
        } => score(&labels, &alerts, json),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("phiwatch: {e:#}");
            2
        }
    }
}

fn replay(config: &Path, out: Option<&Path>) -> Result<i32> {
    let cfg = Config::load(config)?;
    let problems = cfg.validate();
    if !problems.is_empty() {
        anyhow::bail!("{}: {}", config.display(), problems.join("; "));
    }
    let mut sink: Box<dyn Write> = match out {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let summary = crate::pipeline::replay::replay(&cfg, |a| {
        writeln!(sink, "{}", a.to_json_line())?;
        Ok(())
    })?;
    sink.flush()?;
    eprint!("{}", summary.render());
    Ok(0)
}

fn check(config: &Path, connect: bool) -> Result<i32> {
    let report = crate::pipeline::check::check(config, connect);
    for line in &report.ok {
        println!("ok: {line}");
    }
    for line in &report.warnings {
        println!("warning: {line}");
    }
    for line in &report.problems {
        println!("error: {line}");
    }
    if report.problems.is_empty() {
        println!("{}: no problems found", config.display());
        Ok(0)
    } else {
        println!("{}: {} problem(s)", config.display(), report.problems.len());
        Ok(1)
    }
}

fn sim_options(seed: u64, staff: usize, days: u32) -> Result<crate::simulate::SimOptions> {
    if staff < crate::simulate::MIN_STAFF {
        anyhow::bail!(
            "--staff {staff} is too small: a hospital needs at least {} staff",
            crate::simulate::MIN_STAFF
        );
    }
    if days == 0 {
        anyhow::bail!("--days must be at least 1");
    }
    Ok(crate::simulate::SimOptions {
        seed,
        staff,
        days,
        ..Default::default()
    })
}

fn simulate(out: &Path, seed: u64, staff: usize, days: u32) -> Result<i32> {
    let summary = crate::simulate::simulate(&sim_options(seed, staff, days)?, out)?;
    eprint!("{summary}");
    Ok(0)
}

fn read_alerts(path: &Path) -> Result<Vec<crate::alert::Alert>> {
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

fn score(labels: &Path, alerts: &Path, json: bool) -> Result<i32> {
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

fn demo(seed: u64, staff: usize, days: u32, keep: Option<&Path>) -> Result<i32> {
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
    let opts = sim_options(seed, staff, days)?;
    eprintln!(
        "Simulating {} staff over {} days (seed {}) into {} ...",
        opts.staff,
        opts.days,
        opts.seed,
        dir.display()
    );
    let summary = crate::simulate::simulate(&opts, &dir)?;
    eprint!("{summary}");
    let cfg = Config::load(&dir.join("phiwatch.toml"))?;
    let mut alerts = Vec::new();
    let replayed = crate::pipeline::replay::replay(&cfg, |a| {
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
