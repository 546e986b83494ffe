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

/// Loads the reference data again for `run` and `engine`. On an error the data in service
/// stays: the error is logged (naming the file and line) and `None` returned.
pub(crate) fn reload_reference(
    rc: &crate::config::ReferenceConfig,
) -> Option<std::sync::Arc<crate::reference::Reference>> {
    match crate::reference::Reference::load(rc) {
        Ok(r) => {
            let (s, p, c) = r.rows();
            tracing::info!(staff = s, patients = p, care = c, "reference data reloaded");
            Some(std::sync::Arc::new(r))
        }
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "reference data reload failed; keeping the previous data");
            None
        }
    }
}

/// Creates a state folder (`[state] dir` or one below it), with an error that says what
/// to do about it.
pub(crate) fn create_state_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    use anyhow::Context;
    std::fs::create_dir_all(dir).with_context(|| {
        format!(
            "cannot create the state folder {}; set [state] dir to a writable folder",
            dir.display()
        )
    })
}

/// Takes the lock that makes one process the only writer of a state folder, held until the
/// returned file is dropped (the kernel releases it when the process dies, even by SIGKILL).
/// Two agents, or two `run`s, on one state folder would each rewrite the other's positions
/// and spool and lose or repeat events.
pub(crate) fn lock_state(dir: &std::path::Path, who: &str) -> anyhow::Result<std::fs::File> {
    use anyhow::Context;
    let path = dir.join(format!("{who}.lock"));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open the lock file {}", path.display()))?;
    // flock(2), not fcntl locks: it belongs to this open file, not to the process.
    use std::os::fd::AsRawFd;
    // SAFETY: flock only reads the descriptor, which `file` keeps open.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(file);
    }
    let e = std::io::Error::last_os_error();
    if e.kind() == std::io::ErrorKind::WouldBlock {
        anyhow::bail!(
            "another phiwatch {who} is running with the state folder {}; stop it, or give this one its own [state] dir",
            dir.display()
        );
    }
    Err(e).with_context(|| format!("cannot lock {}", path.display()))
}
