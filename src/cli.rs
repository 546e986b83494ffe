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
        Command::Check { config } => check(&config.unwrap_or_else(config::default_path)),
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

fn check(config: &Path) -> Result<i32> {
    let report = crate::pipeline::check::check(config);
    for line in &report.ok {
        println!("ok: {line}");
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
