//! The command line: only what the arguments are. The names and flags are fixed by the
//! outside contract; what each subcommand does is in `commands`, a file each.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

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
    /// Prints what phiwatch makes of a source's files, one JSON object a line: the canonical
    /// events (and with --rejects the rejected lines with their reasons), without running
    /// detectors. For onboarding a new feed.
    Tap {
        #[arg(long)]
        config: PathBuf,
        /// Only this source (default: every `file` source).
        #[arg(long)]
        source: Option<String>,
        /// Stop after this many objects.
        #[arg(long)]
        limit: Option<usize>,
        /// Also print rejected lines, with their reason and where they are.
        #[arg(long)]
        rejects: bool,
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
    /// Lists the open cases of an alert file (a user's alerts over 30 days), worst first.
    Cases {
        alerts: PathBuf,
        /// One JSON object per case instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Writes the man pages and shell completions generated from this command line into a
    /// folder (`man/`, `completions/`), for packaging. Hidden: not an operator's command.
    #[command(name = "package-assets", hide = true)]
    PackageAssets {
        #[arg(long)]
        out: PathBuf,
    },
}
