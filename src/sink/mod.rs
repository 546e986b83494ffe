//! Alert sinks: where rendered alerts go.
//!
//! Every `[[sinks]]` entry becomes one [`Sink`] driven by its own thread through a bounded
//! queue (see [`queue`]), so a slow or dead SIEM does not hold up the other sinks until
//! its queue is full. [`SinkSet`] fans each alert out to all of them; each sink renders
//! it in its own `format` under its own patient policy ([`crate::pseudonym`]).
//!
//! | type | module | delivery |
//! |---|---|---|
//! | `stdout` | [`stdout`] | at most once (a failed write is not retried) |
//! | `file` | [`file`] | at least once up to the last fsync; lines are whole |
//! | `syslog` | [`syslog`] | `udp`: at most once; `tcp`/`tls`: at least once up to the receiver's socket (RFC 6587/5425 have no acknowledgements) |
//! | `webhook` | [`webhook`] | at least once: retried until a 2xx, given up on a 4xx |
//! | `kafka` | [`kafka`] | at least once: flushed until the broker acknowledges (acks=all, idempotent) |
//!
//! Keys every sink takes, besides the contract's `type`, `format` and `patient_ids`:
//!
//! | key | default | |
//! |---|---|---|
//! | `name` | `<type>-<n>` | shown in logs and metrics |
//! | `queue_size` | 10000 | alerts waiting for this sink |
//! | `overflow` | `block` | `block`: a full queue makes the engine wait (never drops); `drop`: the alert is dropped, counted and logged |
//! | `close_timeout_secs` | 10 | at shutdown, how long to keep trying to deliver what is queued; what is left is counted as `failed` and logged |
//! | `patient_ids` | `plain` for file/stdout, `pseudonymised` otherwise | `plain`, `pseudonymised`, `omitted` |
//! | `pseudonym_key_file` | `<state.dir>/pseudonym.key` (created if absent) | HMAC key of the pseudonyms |
//! | `leef_delimiter` | `^` | `^` or `tab` (format `leef` only) |

pub mod file;
pub mod kafka;
pub mod queue;
pub mod stdout;
pub mod syslog;
pub mod webhook;

use crate::alert::Alert;
use crate::config::{AlertFormat, Config, PatientIds, SinkConfig, SinkType};
use crate::format::{format_name, Formatter, LeefDelimiter};
use crate::pseudonym::{self, PatientPolicy};
use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use queue::{Overflow, QueueOptions, SinkSet, SinkStats, StatsSnapshot};

/// One destination of rendered alert lines. Implementations do one attempt per call and
/// return an error when it failed; the queue worker retries with exponential backoff
/// (capped at 30 s) unless the error is [`Permanent`].
pub trait Sink: Send {
    /// Delivers one rendered line (no trailing newline).
    fn send(&mut self, line: &str) -> Result<()>;

    /// Makes everything sent so far durable or delivered (fsync, socket flush).
    fn flush(&mut self) -> Result<()>;

    /// Like [`Sink::send`], with the alert the line was rendered from, for sinks whose
    /// framing depends on it (syslog PRI and MSGID). Defaults to `send`.
    fn send_alert(&mut self, _alert: &Alert, line: &str) -> Result<()> {
        self.send(line)
    }

    /// Called when the queue is empty and about every 200 ms while it stays empty: time
    /// for scheduled work such as a pending fsync.
    fn idle(&mut self) -> Result<()> {
        Ok(())
    }
}

/// An error that retrying cannot fix (an HTTP 4xx, an oversized datagram): the worker
/// logs it, counts the alert as `failed` and moves on.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Permanent(pub String);

/// Everything needed to start one sink, read from a `[[sinks]]` entry.
#[derive(Debug, Clone)]
pub struct SinkSpec {
    pub name: String,
    pub kind: SinkType,
    pub formatter: Formatter,
    pub policy: PatientPolicy,
    pub queue: QueueOptions,
    pub target: Target,
}

/// The sink-specific part of a [`SinkSpec`].
#[derive(Debug, Clone)]
pub enum Target {
    Stdout,
    File(file::FileConfig),
    Syslog(syslog::SyslogConfig),
    Webhook(webhook::WebhookConfig),
    Kafka(kafka::KafkaSinkConfig),
}

/// The config name of a sink type.
pub fn kind_name(kind: SinkType) -> &'static str {
    match kind {
        SinkType::Stdout => "stdout",
        SinkType::File => "file",
        SinkType::Syslog => "syslog",
        SinkType::Kafka => "kafka",
        SinkType::Webhook => "webhook",
    }
}

/// Builds and starts every `[[sinks]]` of the config; with none configured, one `stdout`
/// sink writing `json`. Reads (or creates) the pseudonym key and opens output files now,
/// so a wrong path fails at start; network sinks connect from their own thread.
pub fn build(cfg: &Config) -> Result<SinkSet> {
    let mut set = SinkSet::new();
    if cfg.sinks.is_empty() {
        let spec = SinkSpec {
            name: "stdout".into(),
            kind: SinkType::Stdout,
            formatter: Formatter::new(AlertFormat::Json),
            policy: PatientPolicy::Plain,
            queue: QueueOptions::default(),
            target: Target::Stdout,
        };
        set.start(spec)?;
        return Ok(set);
    }
    for (i, sc) in cfg.sinks.iter().enumerate() {
        let spec = SinkSpec::from_config(i, sc, cfg, true)?;
        set.start(spec)?;
    }
    Ok(set)
}

/// Checks every `[[sinks]]` entry without starting anything or creating files: one
/// message per problem, for `phiwatch check`.
pub fn check(cfg: &Config) -> Vec<String> {
    cfg.sinks
        .iter()
        .enumerate()
        .filter_map(|(i, sc)| {
            SinkSpec::from_config(i, sc, cfg, false)
                .err()
                .map(|e| format!("{e:#}"))
        })
        .collect()
}

impl SinkSpec {
    /// Reads entry `index` (0-based) of `[[sinks]]`. With `create_key`, a missing default
    /// pseudonym key is created; without, it is only checked when named explicitly.
    pub fn from_config(
        index: usize,
        sc: &SinkConfig,
        cfg: &Config,
        create_key: bool,
    ) -> Result<SinkSpec> {
        let kind = kind_name(sc.kind);
        let at = format!("[[sinks]] #{} (type = \"{kind}\")", index + 1);
        let mut keys = Keys::new(&at, &sc.extra, &cfg.base_dir);
        let name = keys
            .string("name")?
            .unwrap_or_else(|| format!("{kind}-{}", index + 1));
        let at = format!("[[sinks]] #{} ({name:?}, type = \"{kind}\")", index + 1);
        keys.at = at.clone();
        let unused = [
            ("path", sc.path.is_some() && sc.kind != SinkType::File),
            (
                "address",
                sc.address.is_some() && sc.kind != SinkType::Syslog,
            ),
            (
                "protocol",
                sc.protocol.is_some() && sc.kind != SinkType::Syslog,
            ),
        ];
        if let Some((key, _)) = unused.iter().find(|(_, set)| *set) {
            let hint = match sc.kind {
                SinkType::Webhook => "; a webhook sink takes `url`",
                _ => "",
            };
            bail!("{at}: `{key}` is not used by a {kind} sink; remove it{hint}");
        }

        let queue = QueueOptions {
            size: keys.u64("queue_size")?.unwrap_or(10_000).max(1) as usize,
            overflow: match keys.string("overflow")?.as_deref() {
                None | Some("block") => Overflow::Block,
                Some("drop") => Overflow::Drop,
                Some(other) => bail!(
                    "{at}: overflow = {other:?} is not known; use \"block\" (wait, never drop) or \"drop\""
                ),
            },
            close_timeout: Duration::from_secs(keys.u64("close_timeout_secs")?.unwrap_or(10)),
        };

        let mut formatter = Formatter::new(sc.format);
        if let Some(d) = keys.string("leef_delimiter")? {
            formatter.leef_delimiter = LeefDelimiter::parse(&d).with_context(|| {
                format!("{at}: leef_delimiter = {d:?} is not supported; use \"^\" or \"tab\"")
            })?;
            if sc.format != AlertFormat::Leef {
                tracing::warn!(sink = %name, format = format_name(sc.format), "leef_delimiter is ignored: the format is not leef");
            }
        }

        let wanted = sc.patient_ids.unwrap_or(match sc.kind {
            SinkType::File | SinkType::Stdout => PatientIds::Plain,
            SinkType::Syslog | SinkType::Kafka | SinkType::Webhook => PatientIds::Pseudonymised,
        });
        let key_file = keys.path("pseudonym_key_file")?;
        let policy = match wanted {
            PatientIds::Plain => PatientPolicy::Plain,
            PatientIds::Omitted => PatientPolicy::Omitted,
            PatientIds::Pseudonymised => {
                let key = match &key_file {
                    Some(p) => pseudonym::load_key(p),
                    None => {
                        let p = default_key_path(cfg);
                        if create_key {
                            pseudonym::load_or_create_key(&p)
                        } else if p.exists() {
                            pseudonym::load_key(&p)
                        } else {
                            // Created at start; nothing to check yet.
                            Ok(pseudonym::PseudonymKey::new(&[0; 32]))
                        }
                    }
                };
                PatientPolicy::Pseudonymised(key.with_context(|| format!("{at}: patient_ids"))?)
            }
        };

        let target = match sc.kind {
            SinkType::Stdout => Target::Stdout,
            SinkType::File => Target::File(file::FileConfig::from_keys(sc, &mut keys)?),
            SinkType::Syslog => Target::Syslog(syslog::SyslogConfig::from_keys(sc, &mut keys)?),
            SinkType::Webhook => Target::Webhook(webhook::WebhookConfig::from_keys(sc, &mut keys)?),
            SinkType::Kafka => Target::Kafka(kafka::KafkaSinkConfig::from_keys(cfg, &mut keys)?),
        };
        keys.finish(sc.kind)?;
        Ok(SinkSpec {
            name,
            kind: sc.kind,
            formatter,
            policy,
            queue,
            target,
        })
    }

    /// Opens the sink itself (files are opened here; network sinks connect lazily).
    pub fn open(&self) -> Result<Box<dyn Sink>> {
        Ok(match &self.target {
            Target::Stdout => Box::new(stdout::StdoutSink::new()),
            Target::File(c) => Box::new(file::FileSink::open(c.clone())?),
            Target::Syslog(c) => Box::new(syslog::SyslogSink::new(c.clone())?),
            Target::Webhook(c) => Box::new(webhook::WebhookSink::new(c.clone(), &self.formatter)?),
            Target::Kafka(c) => Box::new(kafka::KafkaSink::new(c.clone())?),
        })
    }
}

/// `<state.dir>/pseudonym.key`.
pub fn default_key_path(cfg: &Config) -> PathBuf {
    let dir = if cfg.state.dir.is_relative() && !cfg.base_dir.as_os_str().is_empty() {
        cfg.base_dir.join(&cfg.state.dir)
    } else {
        cfg.state.dir.clone()
    };
    dir.join("pseudonym.key")
}

/// The sink-specific keys of one `[[sinks]]` entry (`SinkConfig::extra`), read with
/// errors that say where and what to write; [`Keys::finish`] rejects unknown keys.
pub struct Keys<'a> {
    pub at: String,
    extra: &'a BTreeMap<String, toml::Value>,
    base_dir: &'a Path,
    used: BTreeSet<&'static str>,
}

impl<'a> Keys<'a> {
    pub fn new(at: &str, extra: &'a BTreeMap<String, toml::Value>, base_dir: &'a Path) -> Self {
        Keys {
            at: at.to_string(),
            extra,
            base_dir,
            used: BTreeSet::new(),
        }
    }

    fn get(&mut self, key: &'static str) -> Option<&'a toml::Value> {
        self.used.insert(key);
        self.extra.get(key)
    }

    pub fn string(&mut self, key: &'static str) -> Result<Option<String>> {
        match self.get(key) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => bail!(
                "{}: `{key}` must be a string in quotes, not {}",
                self.at,
                v.type_str()
            ),
        }
    }

    pub fn u64(&mut self, key: &'static str) -> Result<Option<u64>> {
        match self.get(key) {
            None => Ok(None),
            Some(toml::Value::Integer(n)) if *n >= 0 => Ok(Some(*n as u64)),
            Some(v) => bail!(
                "{}: `{key}` must be a whole number of at least 0, not {v}",
                self.at
            ),
        }
    }

    /// A path, made absolute against the config file's folder.
    pub fn path(&mut self, key: &'static str) -> Result<Option<PathBuf>> {
        Ok(self.string(key)?.map(|s| {
            let p = PathBuf::from(s);
            if p.is_relative() {
                self.base_dir.join(p)
            } else {
                p
            }
        }))
    }

    /// A table of strings, such as HTTP headers.
    pub fn string_table(&mut self, key: &'static str) -> Result<Vec<(String, String)>> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(toml::Value::Table(t)) => t
                .iter()
                .map(|(k, v)| match v {
                    toml::Value::String(s) => Ok((k.clone(), s.clone())),
                    other => bail!(
                        "{}: `{key}.{k}` must be a string in quotes, not {}",
                        self.at,
                        other.type_str()
                    ),
                })
                .collect(),
            Some(v) => bail!(
                "{}: `{key}` must be a table such as `{key} = {{ Authorization = \"Bearer ...\" }}`, not {}",
                self.at,
                v.type_str()
            ),
        }
    }

    /// Errors on any key that no reader asked for (a typo, or a key of another sink type).
    pub fn finish(&self, kind: SinkType) -> Result<()> {
        let unknown: Vec<&String> = self
            .extra
            .keys()
            .filter(|k| !self.used.contains(k.as_str()))
            .collect();
        if let Some(k) = unknown.first() {
            let known: Vec<&str> = ["type", "format", "patient_ids"]
                .into_iter()
                .chain(self.used.iter().copied())
                .chain(
                    match kind {
                        SinkType::File => &["path"][..],
                        SinkType::Syslog => &["address", "protocol"][..],
                        _ => &[][..],
                    }
                    .iter()
                    .copied(),
                )
                .collect();
            bail!(
                "{}: unknown key `{k}` for a {} sink; the keys it takes are: {}",
                self.at,
                kind_name(kind),
                known.join(", ")
            );
        }
        Ok(())
    }
}
