//! The subcommands, one file each, each only wiring: it loads what it needs, joins the
//! stages below and reports. What two of them share lives below them (`daemon`, `ingest`,
//! `replay`, `kafka`), never in a sibling: no file here imports another.

pub mod agent;
pub mod assets;
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

/// The exit code of a command that cannot start because its config is wrong (sysexits'
/// `EX_CONFIG`). The systemd units name it in `RestartPreventExitStatus=`, so a config
/// error stops the service instead of restarting it forever.
pub const EXIT_CONFIG: i32 = 78;

/// A config that cannot be used as it is: the commands exit with [`EXIT_CONFIG`].
#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// What `run`, `agent` and `check` say about a config without `[[sources]]`.
pub const NO_SOURCES: &str = "no [[sources]] are configured, so there is nothing to watch: \
    add at least one, e.g.\n  [[sources]]\n  name = \"ehr\"\n  type = \"file\"\n  \
    paths = [\"/var/log/ehr/*.ndjson\"]\n  format = \"fhir-audit\"\n\
    (see /usr/share/doc/phiwatch/examples/phiwatch.toml)";

/// Runs one subcommand; returns the process exit code (2 with the error on stderr,
/// [`EXIT_CONFIG`] when the config cannot be used).
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
        Command::PackageAssets { out } => assets::main(&out),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            crate::logging::stderr_line(tracing::Level::ERROR, &format!("phiwatch: {e:#}"));
            if e.downcast_ref::<ConfigError>().is_some() {
                EXIT_CONFIG
            } else {
                2
            }
        }
    }
}

/// Loads and checks a config the way every command does before it starts: every problem
/// at once, with the `[kafka]` ones for `agent` and `engine`.
/// A config that cannot be used fails with a [`ConfigError`].
pub fn load_config(path: &Path, kafka: bool) -> Result<Config> {
    let cfg = Config::load(path).map_err(|e| ConfigError(format!("{e:#}")))?;
    let mut problems = cfg.validate();
    if kafka {
        problems.extend(crate::kafka::validate(&cfg.kafka));
    }
    if !problems.is_empty() {
        return Err(ConfigError(format!("{}: {}", path.display(), problems.join("; "))).into());
    }
    let kafka_sink = cfg
        .sinks
        .iter()
        .any(|s| s.kind == crate::config::SinkType::Kafka);
    if kafka || kafka_sink {
        for w in crate::kafka::warnings(&cfg.kafka) {
            tracing::warn!("{w}");
        }
    }
    Ok(cfg)
}

/// [`load_config`] for a command that reads sources (`run`, `agent`): a config without
/// any is an error, not a daemon that starts and has nothing to do.
pub fn load_config_with_sources(path: &Path, kafka: bool) -> Result<Config> {
    let cfg = load_config(path, kafka)?;
    if cfg.sources.is_empty() {
        return Err(ConfigError(format!("{}: {NO_SOURCES}", path.display())).into());
    }
    Ok(cfg)
}
