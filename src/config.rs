//! The TOML configuration. Key names are fixed by the outside contract; this module only
//! adds keys. Relative paths are resolved against the folder holding the config file, so
//! a config can be moved together with its data.

use anyhow::{bail, Context, Result};
use chrono_tz::Tz;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct Config {
    pub reference: ReferenceConfig,
    pub engine: EngineConfig,
    pub sources: Vec<SourceConfig>,
    pub sinks: Vec<SinkConfig>,
    pub state: StateConfig,
    pub metrics: MetricsConfig,
    pub kafka: KafkaConfig,
    pub dead_letter: DeadLetterConfig,
    /// Folder holding the config file; relative paths are resolved against it.
    #[serde(skip)]
    pub base_dir: PathBuf,
    /// The config file itself, for error messages.
    #[serde(skip)]
    pub file: PathBuf,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct ReferenceConfig {
    pub staff: Option<PathBuf>,
    pub patients: Option<PathBuf>,
    pub care: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct EngineConfig {
    /// IANA time zone: what "night" and "working hours" mean.
    pub timezone: String,
    /// Folder of detector files; absent means the shipped ones built into the binary.
    pub detectors: Option<PathBuf>,
    /// Days of history a baseline needs before its detector may alert.
    pub learning_days: u32,
    /// How far (seconds) events may arrive out of event-time order before the watermark
    /// passes them. Later events are still processed, in arrival order.
    pub allowed_lateness_secs: u64,
    /// Cap on the number of users whose state is kept; the least recently seen go first.
    pub max_users: usize,
    /// Seconds of wall-clock silence after which a source no longer holds back the watermark
    /// in `run`.
    pub idle_source_secs: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            timezone: "UTC".into(),
            detectors: None,
            learning_days: 7,
            allowed_lateness_secs: 300,
            max_users: 200_000,
            idle_source_secs: 5,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceType {
    File,
    Fswatch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    FhirAudit,
    AtnaSyslog,
    Csv,
    Jsonl,
    Canonical,
    Auditd,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::FhirAudit => "fhir-audit",
            Format::AtnaSyslog => "atna-syslog",
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
            Format::Canonical => "canonical",
            Format::Auditd => "auditd",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct SourceConfig {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: SourceType,
    #[serde(default)]
    pub paths: Vec<String>,
    #[serde(default)]
    pub format: Option<Format>,
    /// For timestamps that carry no offset; default: engine.timezone.
    #[serde(default)]
    pub timezone: Option<String>,
    /// csv: field delimiter, one character (default ",").
    #[serde(default)]
    pub delimiter: Option<String>,
    /// csv and jsonl: canonical field -> column (csv) or dotted path (jsonl).
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// csv and jsonl: value of the action field -> canonical action.
    #[serde(default)]
    pub actions: BTreeMap<String, String>,
    /// fswatch: media class of the watched folders.
    #[serde(default)]
    pub media: Option<String>,
    /// fswatch/auditd: file owner uid -> staff user id.
    #[serde(default)]
    pub uids: BTreeMap<String, String>,
    /// fswatch: quiet time after the last write before a file counts as written.
    #[serde(default)]
    pub debounce_ms: Option<u64>,
    /// fswatch: also rescan the folders this often (network filesystems send no events).
    #[serde(default)]
    pub rescan_secs: Option<u64>,
    /// fswatch: bytes read from each new file to count PHI markers (0 = off).
    #[serde(default)]
    pub phi_sample_bytes: Option<usize>,
    /// fswatch: PHI keywords (column headers) to count; default a built-in list.
    #[serde(default)]
    pub phi_keywords: Vec<String>,
    /// fswatch: regexes of the hospital's patient ids (MRNs); default `MRN` + digits.
    #[serde(default)]
    pub mrn_patterns: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum SinkType {
    #[default]
    Stdout,
    File,
    Syslog,
    Kafka,
    Webhook,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum AlertFormat {
    #[default]
    Json,
    Cef,
    Leef,
    Ecs,
    Ocsf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PatientIds {
    Plain,
    Pseudonymised,
    Omitted,
}

#[derive(Debug, Clone, Deserialize, Default)]
pub struct SinkConfig {
    #[serde(rename = "type", default)]
    pub kind: SinkType,
    #[serde(default)]
    pub path: Option<PathBuf>,
    #[serde(default)]
    pub format: AlertFormat,
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub protocol: Option<String>,
    #[serde(default)]
    pub patient_ids: Option<PatientIds>,
    /// Any further sink-specific keys (rotation size, TLS files, URL, ...).
    #[serde(flatten)]
    pub extra: BTreeMap<String, toml::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct StateConfig {
    /// Checkpoints, spool, engine snapshots.
    pub dir: PathBuf,
    /// Seconds between snapshots of engine state and source checkpoints in `run`.
    pub snapshot_secs: u64,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            dir: PathBuf::from("state"),
            snapshot_secs: 5,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct MetricsConfig {
    pub listen: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct KafkaConfig {
    pub brokers: String,
    pub events_topic: String,
    pub alerts_topic: String,
    pub group: String,
    pub properties: BTreeMap<String, String>,
    /// TLS: CA bundle to verify the brokers (sets security.protocol to ssl or sasl_ssl).
    pub ca_file: Option<PathBuf>,
    /// TLS client certificate and key, for brokers that authenticate clients by certificate.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// SASL: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
    pub sasl_mechanism: Option<String>,
    pub username: Option<String>,
    /// File holding the SASL password (kept out of the config file).
    pub password_file: Option<PathBuf>,
    /// Agent: most bytes its disk spool holds while Kafka is slow or away; reading
    /// pauses when it is full (default 1 GiB).
    pub spool_max_bytes: u64,
    /// Engine: a partition that no live engine has held for this long makes an engine
    /// leave and rejoin the group to force a fresh assignment (0 = never; default 60).
    /// See `pipeline::lease` for why a broker can leave a partition without an owner.
    pub orphan_rejoin_secs: u64,
    /// Engine: how long the group coordinator waits for a silent engine before giving its
    /// partitions to the others (librdkafka `session.timeout.ms`; default 45).
    pub session_timeout_secs: u64,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: "127.0.0.1:9092".into(),
            events_topic: "phiwatch.events".into(),
            alerts_topic: "phiwatch.alerts".into(),
            group: "phiwatch-engine".into(),
            properties: BTreeMap::new(),
            ca_file: None,
            cert_file: None,
            key_file: None,
            sasl_mechanism: None,
            username: None,
            password_file: None,
            spool_max_bytes: 1 << 30,
            orphan_rejoin_secs: 60,
            session_timeout_secs: 45,
        }
    }
}

/// Where rejected input lines go, each with its reason.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct DeadLetterConfig {
    /// Default: `<state.dir>/dead-letter.ndjson`.
    pub path: Option<PathBuf>,
}

impl Config {
    /// Reads and resolves a config file.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        let mut cfg = Config::from_toml(&text)
            .with_context(|| format!("config file {} is not valid", path.display()))?;
        let base = path
            .canonicalize()
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from("."));
        cfg.file = path.to_path_buf();
        cfg.resolve(&base);
        Ok(cfg)
    }

    pub fn from_toml(text: &str) -> Result<Config> {
        let cfg: Config = toml::from_str(text)?;
        Ok(cfg)
    }

    /// Makes every relative path absolute against `base`.
    pub fn resolve(&mut self, base: &Path) {
        let abs = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        self.base_dir = base.to_path_buf();
        for p in [
            &mut self.reference.staff,
            &mut self.reference.patients,
            &mut self.reference.care,
            &mut self.engine.detectors,
            &mut self.dead_letter.path,
            &mut self.kafka.ca_file,
            &mut self.kafka.cert_file,
            &mut self.kafka.key_file,
            &mut self.kafka.password_file,
        ]
        .into_iter()
        .flatten()
        {
            abs(p);
        }
        abs(&mut self.state.dir);
        for s in &mut self.sinks {
            if let Some(p) = &mut s.path {
                abs(p);
            }
        }
        for s in &mut self.sources {
            for g in &mut s.paths {
                if Path::new(g.as_str()).is_relative() {
                    *g = base.join(g.as_str()).to_string_lossy().into_owned();
                }
            }
        }
    }

    pub fn timezone(&self) -> Result<Tz> {
        parse_tz(&self.engine.timezone).context("engine.timezone")
    }

    pub fn dead_letter_path(&self) -> PathBuf {
        self.dead_letter
            .path
            .clone()
            .unwrap_or_else(|| self.state.dir.join("dead-letter.ndjson"))
    }

    /// Checks what can be checked without touching data: unique source names, known
    /// formats, time zones, csv fields. Returns every problem, not just the first.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Err(e) = self.timezone() {
            problems.push(format!(
                "{e:#}: use an IANA name such as \"America/Chicago\""
            ));
        }
        let mut names = std::collections::HashSet::new();
        for (i, s) in self.sources.iter().enumerate() {
            let at = format!("[[sources]] #{} ({:?})", i + 1, s.name);
            if s.name.trim().is_empty() {
                problems.push(format!(
                    "{at}: `name` is empty; give every source a unique name"
                ));
            }
            if !names.insert(s.name.clone()) {
                problems.push(format!(
                    "{at}: the name is used twice; source names must be unique"
                ));
            }
            if s.paths.is_empty() {
                problems.push(format!(
                    "{at}: `paths` is empty; list the globs or folders to read"
                ));
            }
            if s.kind == SourceType::File && s.format.is_none() {
                problems.push(format!(
                    "{at}: `format` is missing; use fhir-audit, atna-syslog, csv, jsonl, canonical or auditd"
                ));
            }
            if let Some(tz) = &s.timezone {
                if parse_tz(tz).is_err() {
                    problems.push(format!("{at}: timezone {tz:?} is not an IANA name"));
                }
            }
            if let Some(d) = &s.delimiter {
                if delimiter_byte(d).is_none() {
                    problems.push(format!(
                        "{at}: delimiter {d:?} must be one character (\"\\t\" for tab)"
                    ));
                }
            }
            if matches!(s.format, Some(Format::Csv) | Some(Format::Jsonl)) {
                for required in ["ts", "user", "action"] {
                    if !s.fields.contains_key(required) && !default_field_ok(s, required) {
                        problems.push(format!(
                            "{at}: [sources.fields] has no `{required}`; map it to the column that holds it"
                        ));
                    }
                }
            }
            for (raw, canonical) in &s.actions {
                if crate::event::Action::parse(canonical).is_none() {
                    problems.push(format!(
                        "{at}: [sources.actions] maps {raw:?} to unknown action {canonical:?}"
                    ));
                }
            }
            if let Some(m) = &s.media {
                if crate::event::Media::parse(m).is_none() {
                    problems.push(format!(
                        "{at}: media {m:?} is not one of removable, network, cloud, local"
                    ));
                }
            }
        }
        for (i, s) in self.sinks.iter().enumerate() {
            let at = format!("[[sinks]] #{}", i + 1);
            match s.kind {
                SinkType::File if s.path.is_none() => {
                    problems.push(format!("{at}: a file sink needs `path`"))
                }
                SinkType::Syslog if s.address.is_none() => {
                    problems.push(format!("{at}: a syslog sink needs `address` (host:port)"))
                }
                _ => {}
            }
        }
        problems
    }
}

/// Without a `fields` table, csv/jsonl sources read columns named like the canonical fields.
fn default_field_ok(s: &SourceConfig, _field: &str) -> bool {
    s.fields.is_empty()
}

pub fn parse_tz(name: &str) -> Result<Tz> {
    match name.parse::<Tz>() {
        Ok(tz) => Ok(tz),
        Err(_) => bail!("unknown time zone {name:?}"),
    }
}

/// The delimiter byte a config string stands for: one ASCII character, or `\t`/`tab`.
pub fn delimiter_byte(s: &str) -> Option<u8> {
    match s {
        "\\t" | "tab" | "\t" => Some(b'\t'),
        _ if s.len() == 1 && s.is_ascii() => Some(s.as_bytes()[0]),
        _ => None,
    }
}

/// Where `run` and `check` look for a config when none is given.
pub fn default_path() -> PathBuf {
    let local = PathBuf::from("config/phiwatch.toml");
    if local.exists() {
        local
    } else {
        PathBuf::from("/etc/phiwatch/phiwatch.toml")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_example_parses() {
        let text = r#"
[reference]
staff = "staff.csv"
patients = "patients.csv"
care = "care.csv"
[engine]
timezone = "America/Chicago"
detectors = "detectors"
[[sources]]
name = "inpatient"
type = "file"
paths = ["fhir/*.ndjson"]
format = "fhir-audit"
timezone = "UTC"
[[sources]]
name = "revenue-cycle"
type = "file"
paths = ["revenue/*.csv"]
format = "csv"
delimiter = "|"
[sources.fields]
ts = "ACCESS_TIME"
user = "USER_ID"
action = "METRIC_NAME"
[sources.actions]
"REPORT EXPORTED" = "export"
[[sources]]
name = "usb"
type = "fswatch"
paths = ["/media", "/run/media"]
media = "removable"
[sources.uids]
"1001" = "u1042"
[[sinks]]
type = "file"
path = "alerts.ndjson"
format = "json"
[[sinks]]
type = "syslog"
address = "siem.example:6514"
protocol = "tls"
format = "cef"
patient_ids = "pseudonymised"
[state]
dir = "/var/lib/phiwatch"
[metrics]
listen = "127.0.0.1:9464"
[kafka]
brokers = "127.0.0.1:9092"
events_topic = "phiwatch.events"
alerts_topic = "phiwatch.alerts"
group = "phiwatch-engine"
[kafka.properties]
"security.protocol" = "plaintext"
"#;
        let mut cfg = Config::from_toml(text).unwrap();
        cfg.resolve(Path::new("/etc/phiwatch"));
        assert_eq!(cfg.sources.len(), 3);
        assert_eq!(cfg.sources[1].format, Some(Format::Csv));
        assert_eq!(
            cfg.reference.staff.as_deref(),
            Some(Path::new("/etc/phiwatch/staff.csv"))
        );
        assert_eq!(cfg.state.dir, Path::new("/var/lib/phiwatch"));
        assert!(cfg.validate().is_empty(), "{:?}", cfg.validate());
    }
}
