//! Alert sinks: where rendered alerts go.
//!
//! Every `[[sinks]]` entry becomes one [`Sink`] driven by its own thread through its own
//! queue, kept on disk under the state folder (see [`queue`]): sending never waits for a
//! sink, a slow or dead SIEM holds up neither the engine nor the other sinks, and what it
//! has not acknowledged is delivered to it (and only to it) after a restart. [`SinkSet`] fans each alert out to all of them; each sink renders
//! it in its own `format` under its own patient policy ([`crate::pseudonym`]).
//!
//! | type | module | delivery (acknowledged when) |
//! |---|---|---|
//! | `stdout` | [`stdout`] | at most once (written) |
//! | `file` | [`file`] | at least once (written and fsynced); lines are whole |
//! | `syslog` | [`syslog`] | `udp`: at most once (sent); `tcp`/`tls`: at least once (written to the receiver's socket and flushed; RFC 6587/5425 have no acknowledgements) |
//! | `webhook` | [`webhook`] | at least once (a 2xx); given up on a 4xx |
//! | `kafka` | [`kafka`] | at least once (the broker's ack: acks=all, idempotent) |
//!
//! "At least once" holds across restarts: what a sink has not acknowledged waits in its
//! disk queue (see [`queue`]) and is delivered to it after the next start.
//!
//! Keys every sink takes, besides the contract's `type`, `format` and `patient_ids`:
//!
//! | key | default | |
//! |---|---|---|
//! | `name` | `<type>-<n>` | shown in logs and metrics |
//! | `queue_size` | 10000 | alerts held in memory for this sink |
//! | `overflow` | `block` | `block`: never drops (alerts beyond `queue_size` wait in the disk queue only and are read back in order; nothing waits for the sink); `drop`: beyond `queue_size`, the alert is dropped for this sink, counted and logged |
//! | `close_timeout_secs` | 10 | at shutdown, how long to keep trying to deliver what is queued; what is left is counted as `failed`, logged, and stays in the disk queue for the next start |
//! | `patient_ids` | `plain` for file/stdout, `pseudonymised` otherwise | `plain`, `pseudonymised`, `omitted` |
//! | `pseudonym_key_file` | `<state.dir>/pseudonym.key` (created if absent) | HMAC key of the pseudonyms |
//! | `leef_delimiter` | `^` | `^` or `tab` (format `leef` only) |
//!
//! These are the fields of [`SinkConfig`]; the keys of each type are a serde struct beside
//! its sink (`FileSinkConfig` in [`file`], ...) implementing [`SinkKind`]. Each entry is
//! read once, when the config file is parsed, and an unknown key is an error there, with
//! its line. Adding a sink is one file (its settings struct, a [`Target`] that opens it,
//! the [`Sink`]) plus one line in the `sink_types!` list below.

pub mod file;
pub mod kafka;
pub mod queue;
pub mod stdout;
pub mod syslog;
pub mod webhook;

use crate::alert::Alert;
use crate::format::AlertFormat;
use crate::format::{format_name, Formatter, LeefDelimiter};
use crate::pseudonym::{self, PatientPolicy};
use crate::table::{from_table, TableError};
use anyhow::{bail, Context as _, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use queue::{Overflow, QueueOptions, SinkSet, SinkStats, StatsSnapshot};

/// The settings of one sink type: the keys of its `[[sinks]]` entries besides those every
/// sink takes, as a serde struct (all keys optional: `Default` is an entry that sets
/// none). Listed in `sink_types!`.
pub trait SinkKind:
    DeserializeOwned + Default + Clone + fmt::Debug + Send + Sync + 'static
{
    /// Its `type = "..."`.
    const TYPE: &'static str;
    /// Its `patient_ids` when the entry sets none.
    const PATIENT_IDS: PatientIds;

    /// Checks the settings and makes what opens the sink, without opening anything.
    /// Messages start with `ctx.at`, which names the entry.
    fn target(&self, ctx: &Context) -> Result<Box<dyn Target>>;
}

/// A sink's checked settings: what [`SinkSpec::open`] opens.
pub trait Target: fmt::Debug + Send + Sync {
    /// Opens the sink (files are opened here; network sinks connect lazily).
    fn open(&self, formatter: &Formatter) -> Result<Box<dyn Sink>>;

    /// Files it writes, whose folders `phiwatch check` tests.
    fn files(&self) -> Vec<PathBuf> {
        Vec::new()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PatientIds {
    Plain,
    Pseudonymised,
    Omitted,
}

/// One `[[sinks]]` entry: the keys every sink takes (see `sink`'s module doc), and the
/// settings of its type, typed by the sink's own module.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct SinkConfig {
    /// Absent: `stdout`.
    #[serde(rename = "type", deserialize_with = "deserialize_type")]
    pub kind: SinkType,
    /// Shown in logs and metrics; default `<type>-<n>`.
    pub name: Option<String>,
    pub format: AlertFormat,
    /// Default: the sink type's ([`SinkKind::PATIENT_IDS`]).
    pub patient_ids: Option<PatientIds>,
    /// Alerts waiting for this sink (default 10000).
    pub queue_size: Option<u64>,
    /// `block` (default) or `drop`.
    pub overflow: Option<String>,
    /// Seconds `close` keeps trying to deliver (default 10).
    pub close_timeout_secs: Option<u64>,
    /// HMAC key of the pseudonyms; default `<state.dir>/pseudonym.key`.
    pub pseudonym_key_file: Option<PathBuf>,
    /// `^` (default) or `tab`, format `leef` only.
    pub leef_delimiter: Option<String>,
    /// The keys of its type; `None`: that type's defaults.
    #[serde(skip)]
    pub settings: Option<SinkSettings>,
}

impl SinkConfig {
    /// Reads one parsed `[[sinks]]` entry: the common keys, then its type's settings.
    /// Keys neither takes are passed over (the strict walk reports them).
    pub fn from_table(t: &toml::Table) -> std::result::Result<SinkConfig, TableError> {
        let mut sc: SinkConfig = from_table(t)?;
        sc.settings = Some(sc.kind.read(t)?);
        Ok(sc)
    }
}

/// `[[sinks]] #N ("name", type = "kind")`, as sink messages name an entry.
pub fn sink_label(index: usize, name: Option<&str>, kind: &str) -> String {
    match name {
        Some(n) => format!("[[sinks]] #{} ({n:?}, type = \"{kind}\")", index + 1),
        None => format!("[[sinks]] #{} (type = \"{kind}\")", index + 1),
    }
}

/// What [`SinkKind::target`] may need besides its settings.
pub struct Context<'a> {
    /// `[[sinks]] #N ("name", type = "kind")`, to start messages with.
    pub at: &'a str,
    pub cfg: &'a dyn SinkEnv,
}

impl Context<'_> {
    /// A path of the settings, made absolute against the config file's folder.
    pub fn path(&self, p: &Path) -> PathBuf {
        if p.is_relative() {
            self.cfg.base_dir().join(p)
        } else {
            p.to_path_buf()
        }
    }
}

/// What the sinks need from the rest of the configuration. The config implements it;
/// sinks never read the config file themselves (the config knows the sinks' settings,
/// not the other way round).
pub trait SinkEnv {
    /// The `[[sinks]]` entries.
    fn sinks(&self) -> &[SinkConfig];
    /// The config file's folder: relative paths in sink settings are relative to it.
    fn base_dir(&self) -> &Path;
    /// `[state] dir`, where disk queues and the default pseudonym key live.
    fn state_dir(&self) -> PathBuf;
    /// The `[kafka]` client (brokers, TLS, SASL) with `tuned` defaults under it, and
    /// `alerts_topic`, for `kafka` sinks.
    fn kafka_client(&self, tuned: &[(&str, String)]) -> Result<(rdkafka::ClientConfig, String)>;
}

/// The registry: one line per sink type, `Variant => module::SettingsStruct`; the first
/// is the type of an entry without `type`.
macro_rules! sink_types {
    ($first:ident => $first_ty:ty, $($variant:ident => $ty:ty,)*) => {
        /// A sink's `type`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub enum SinkType {
            #[default]
            $first,
            $($variant,)*
        }

        /// The typed settings of one `[[sinks]]` entry, by type.
        #[derive(Debug, Clone)]
        pub enum SinkSettings {
            $first($first_ty),
            $($variant($ty),)*
        }

        impl SinkType {
            pub const ALL: &'static [SinkType] = &[SinkType::$first, $(SinkType::$variant,)*];
            /// The `type` names, in [`SinkType::ALL`] order.
            pub const NAMES: &'static [&'static str] =
                &[<$first_ty as SinkKind>::TYPE, $(<$ty as SinkKind>::TYPE,)*];

            /// Its `type = "..."`.
            pub fn name(self) -> &'static str {
                match self {
                    SinkType::$first => <$first_ty as SinkKind>::TYPE,
                    $(SinkType::$variant => <$ty as SinkKind>::TYPE,)*
                }
            }

            /// The keys of its settings (besides those every sink takes).
            pub fn keys(self) -> &'static [&'static str] {
                match self {
                    SinkType::$first => crate::table::field_names::<$first_ty>(),
                    $(SinkType::$variant => crate::table::field_names::<$ty>(),)*
                }
            }

            /// `patient_ids` when the entry sets none.
            pub fn patient_ids(self) -> PatientIds {
                match self {
                    SinkType::$first => <$first_ty as SinkKind>::PATIENT_IDS,
                    $(SinkType::$variant => <$ty as SinkKind>::PATIENT_IDS,)*
                }
            }

            /// Reads its settings from a parsed `[[sinks]]` entry.
            pub fn read(self, t: &toml::Table) -> Result<SinkSettings, TableError> {
                Ok(match self {
                    SinkType::$first => SinkSettings::$first(from_table(t)?),
                    $(SinkType::$variant => SinkSettings::$variant(from_table(t)?),)*
                })
            }

            /// The settings of an entry that sets none of its keys.
            pub fn default_settings(self) -> SinkSettings {
                match self {
                    SinkType::$first => SinkSettings::$first(Default::default()),
                    $(SinkType::$variant => SinkSettings::$variant(Default::default()),)*
                }
            }
        }

        impl SinkSettings {
            pub fn kind(&self) -> SinkType {
                match self {
                    SinkSettings::$first(_) => SinkType::$first,
                    $(SinkSettings::$variant(_) => SinkType::$variant,)*
                }
            }

            fn target(&self, ctx: &Context) -> Result<Box<dyn Target>> {
                match self {
                    SinkSettings::$first(s) => s.target(ctx),
                    $(SinkSettings::$variant(s) => s.target(ctx),)*
                }
            }
        }
    };
}

sink_types! {
    Stdout => stdout::StdoutSinkConfig,
    File => file::FileSinkConfig,
    Syslog => syslog::SyslogSinkConfig,
    Kafka => kafka::KafkaSinkConfig,
    Webhook => webhook::WebhookSinkConfig,
}

impl SinkType {
    /// The type called `name` in a config.
    pub fn parse(name: &str) -> Option<SinkType> {
        SinkType::ALL.iter().copied().find(|k| k.name() == name)
    }
}

/// `type = "..."` of a `[[sinks]]` entry.
pub(crate) fn deserialize_type<'de, D: Deserializer<'de>>(d: D) -> Result<SinkType, D::Error> {
    let name = String::deserialize(d)?;
    SinkType::parse(&name).ok_or_else(|| serde::de::Error::unknown_variant(&name, SinkType::NAMES))
}

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

    /// Whether a successful [`Sink::send`] means the alert reached the receiver (or its
    /// socket). False for UDP syslog: a datagram handed to the network may be lost without
    /// anyone knowing, so those alerts are counted as `unconfirmed`, not `sent`.
    fn confirms_delivery(&self) -> bool {
        true
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
    /// The sink-specific part.
    pub target: Arc<dyn Target>,
}

/// The config name of a sink type.
pub fn kind_name(kind: SinkType) -> &'static str {
    kind.name()
}

/// Builds and starts every `[[sinks]]` of the config; with none configured, one `stdout`
/// sink writing `json`. Reads (or creates) the pseudonym key and opens output files now,
/// so a wrong path fails at start; network sinks connect from their own thread. Disk
/// queues and acknowledgements are in `<state.dir>/sinks`.
pub fn build(cfg: &dyn SinkEnv) -> Result<SinkSet> {
    build_in(cfg, &cfg.state_dir().join("sinks"))
}

/// Like [`build`], with the disk queues in `dir`.
pub fn build_in(cfg: &dyn SinkEnv, dir: &Path) -> Result<SinkSet> {
    let mut set = SinkSet::with_dir(dir)?;
    if cfg.sinks().is_empty() {
        let spec = SinkSpec {
            name: "stdout".into(),
            kind: SinkType::Stdout,
            formatter: Formatter::new(AlertFormat::Json),
            policy: PatientPolicy::Plain,
            queue: QueueOptions::default(),
            target: Arc::new(stdout::StdoutTarget),
        };
        set.start(spec)?;
        return Ok(set);
    }
    for (i, sc) in cfg.sinks().iter().enumerate() {
        let spec = SinkSpec::from_config(i, sc, cfg, true)?;
        set.start(spec)?;
    }
    Ok(set)
}

/// Checks every `[[sinks]]` entry without starting anything or creating files: one
/// message per problem, for `phiwatch check`.
pub fn check(cfg: &dyn SinkEnv) -> Vec<String> {
    cfg.sinks()
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
        cfg: &dyn SinkEnv,
        create_key: bool,
    ) -> Result<SinkSpec> {
        let kind = sc.kind.name();
        let name = sc
            .name
            .clone()
            .unwrap_or_else(|| format!("{kind}-{}", index + 1));
        let at = sink_label(index, Some(&name), kind);
        let ctx = Context { at: &at, cfg };

        let queue = QueueOptions {
            size: sc.queue_size.unwrap_or(10_000).max(1) as usize,
            overflow: match sc.overflow.as_deref() {
                None | Some("block") => Overflow::Block,
                Some("drop") => Overflow::Drop,
                Some(other) => bail!(
                    "{at}: overflow = {other:?} is not known; use \"block\" (never drop) or \"drop\""
                ),
            },
            close_timeout: Duration::from_secs(sc.close_timeout_secs.unwrap_or(10)),
        };

        let mut formatter = Formatter::new(sc.format);
        if let Some(d) = &sc.leef_delimiter {
            formatter.leef_delimiter = LeefDelimiter::parse(d).with_context(|| {
                format!("{at}: leef_delimiter = {d:?} is not supported; use \"^\" or \"tab\"")
            })?;
            if sc.format != AlertFormat::Leef {
                tracing::warn!(sink = %name, format = format_name(sc.format), "leef_delimiter is ignored: the format is not leef");
            }
        }

        let wanted = sc.patient_ids.unwrap_or(sc.kind.patient_ids());
        let key_file = sc.pseudonym_key_file.as_deref().map(|p| ctx.path(p));
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

        let defaults;
        let settings = match &sc.settings {
            Some(s) if s.kind() == sc.kind => s,
            Some(s) => bail!("{at}: the settings are those of a {} sink", s.kind().name()),
            None => {
                defaults = sc.kind.default_settings();
                &defaults
            }
        };
        let target = settings.target(&ctx)?;
        Ok(SinkSpec {
            name,
            kind: sc.kind,
            formatter,
            policy,
            queue,
            target: Arc::from(target),
        })
    }

    /// Opens the sink itself (files are opened here; network sinks connect lazily).
    pub fn open(&self) -> Result<Box<dyn Sink>> {
        self.target.open(&self.formatter)
    }
}

/// `<state.dir>/pseudonym.key`.
pub fn default_key_path(cfg: &dyn SinkEnv) -> PathBuf {
    cfg.state_dir().join("pseudonym.key")
}
