//! Pipelines: how sources, parsers, the engine and sinks are joined for each command.
//! `replay` reads files once in event-time order; `run` follows them as a daemon.

pub mod agent;
pub mod check;
pub mod engine_node;
pub mod follow;
pub mod lease;
pub mod lines;
pub mod replay;
pub mod run;

/// Loads the config of `agent` or `engine`: the checks every command makes plus the
/// `[kafka]` ones, all problems reported at once.
pub(crate) fn load_for_kafka(config: &std::path::Path) -> anyhow::Result<crate::config::Config> {
    let cfg = crate::config::Config::load(config)?;
    let problems: Vec<String> = cfg
        .validate()
        .into_iter()
        .chain(crate::kafka::validate(&cfg.kafka))
        .collect();
    if !problems.is_empty() {
        anyhow::bail!("{}: {}", config.display(), problems.join("; "));
    }
    Ok(cfg)
}
