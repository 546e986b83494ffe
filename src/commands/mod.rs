//! The subcommands, one file each, each only wiring: it loads what it needs, joins the
//! stages below and reports. What two of them share lives below them (`daemon`, `ingest`,
//! `replay`, `kafka`), never in a sibling: no file here imports another.

pub mod agent;
pub mod cases;
pub mod check;
pub mod demo;
pub mod engine;
pub mod replay;
pub mod run;
pub mod score;
pub mod simulate;
pub mod tap;

use crate::cli::Command;
use crate::config::{self, Config};
use anyhow::Result;
use std::path::Path;

/// Runs one subcommand; returns the process exit code (2 with the error on stderr).
pub fn main(command: Command) -> i32 {
    let result = match command {
        Command::Run { config } => run::main(&config.unwrap_or_else(config::default_path)),
        Command::Replay { config, out } => replay::main(&config, out.as_deref()),
        Command::Check { config, connect } => {
            check::main(&config.unwrap_or_else(config::default_path), connect)
        }
        Command::Agent { config } => agent::main(&config),
        Command::Engine { config } => engine::main(&config),
        Command::Simulate {
            out,
            seed,
            staff,
            days,
        } => simulate::main(&out, seed, staff, days),
        Command::Demo {
            seed,
            staff,
            days,
            keep,
        } => demo::main(seed, staff, days, keep.as_deref()),
        Command::Tap {
            config,
            source,
            limit,
            rejects,
        } => tap::main(&config, source.as_deref(), limit, rejects),
        Command::Score {
            labels,
            alerts,
            json,
        } => score::main(&labels, &alerts, json),
        Command::Cases { alerts, json } => cases::main(&alerts, json),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("phiwatch: {e:#}");
            2
        }
    }
}

/// Loads and checks a config the way every command does before it starts: every problem
/// at once, with the `[kafka]` ones for `agent` and `engine`.
pub fn load_config(path: &Path, kafka: bool) -> Result<Config> {
    let cfg = Config::load(path)?;
    let mut problems = cfg.validate();
    if kafka {
        problems.extend(crate::kafka::validate(&cfg.kafka));
    }
    if !problems.is_empty() {
        anyhow::bail!("{}: {}", path.display(), problems.join("; "));
    }
    Ok(cfg)
}
