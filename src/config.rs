//! The TOML configuration. Key names are fixed by the outside contract; this module only
//! adds keys. Relative paths are resolved against the folder holding the config file, so
//! a config can be moved together with its data.
//!
//! The whole file is typed and strict: [`Config::parse`] rejects an unknown key or table
//! anywhere, with its line and the nearest known name ([`strict`]), and a wrong type with
//! its line and what to write. Each `[[sinks]]` entry is read once into the keys every
//! sink takes ([`SinkConfig`]) and the typed settings of its type, which live beside the
//! sink (`FileSinkConfig` in `sink/file.rs`, ...). [`check`] adds what `phiwatch check`
//! tests on the machine (folders, globs), every finding with its line.

pub mod presets;
mod strict;

pub use crate::format::AlertFormat;
pub use crate::sink::{sink_label, PatientIds, SinkConfig, SinkSettings, SinkType};
pub use crate::table::{field_names, from_table, TableError};
pub use strict::{Finding, Level, Lines};

use anyhow::{anyhow, bail, Context, Result};
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
    /// `[[sinks]]`, each read by [`SinkConfig::from_table`] when the file is parsed.
    #[serde(skip)]
    pub sinks: Vec<SinkConfig>,
    /// `[[sinks]]` as parsed, before [`Config::parse`] reads them into `sinks`.
    #[serde(rename = "sinks")]
    raw_sinks: Vec<toml::Table>,
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
    /// The line of every key in the file, for messages.
    #[serde(skip)]
    pub lines: Lines,
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
    /// Events older than this many days (by the wall clock) are refused as implausible
    /// (`implausible_time`): a line dated 1900 must not steer the learning period.
    pub max_event_age_days: u64,
    /// Events more than this many seconds in the future are refused as implausible.
    pub max_event_ahead_secs: u64,
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
            max_event_age_days: 3650,
            max_event_ahead_secs: 86_400,
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
    /// A known export's columns and action names (`epic-clarity`, `openemr-log`): the same
    /// as writing `format`, `delimiter`, `fields` and `actions` by hand; explicit keys win.
    #[serde(default)]
    pub preset: Option<String>,
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
    /// csv and jsonl: values of the patient field that mean "no patient" (OpenEMR writes
    /// `0` for events that concern none); compared trimmed and case-insensitively.
    #[serde(default)]
    pub no_patient: Vec<String>,
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

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct StateConfig {
    /// Checkpoints, spool, engine snapshots.
    pub dir: PathBuf,
    /// Seconds between snapshots of engine state and source checkpoints in `run` (longer
    /// while a snapshot takes more than a ninth of that to write: see
    /// `daemon::state::Pacer`), and of partitions in `engine`.
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
    /// See `kafka::lease` for why a broker can leave a partition without an owner.
    pub orphan_rejoin_secs: u64,
    /// Engine: how long the group coordinator waits for a silent engine before giving its
    /// partitions to the others (librdkafka `session.timeout.ms`; default 45).
    pub session_timeout_secs: u64,
    /// Agent: how events are written to `events_topic`: `batched` (default: several
    /// compact events of one partition per message), `compact` (one per message) or
    /// `json`. Engines read all three; see `kafka::wire` for the upgrade order.
    pub event_encoding: crate::kafka::wire::Encoding,
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
            event_encoding: crate::kafka::wire::Encoding::default(),
        }
    }
}

impl KafkaConfig {
    /// The librdkafka configuration of `[kafka]`. `tuned` are a component's performance
    /// defaults, which `[kafka.properties]` may override; settings a delivery guarantee rests
    /// on (acks, idempotence, manual commits) the caller sets afterwards, so they cannot be.
    pub fn client_config(&self, tuned: &[(&str, String)]) -> Result<rdkafka::ClientConfig> {
        let k = self;
        let mut c = rdkafka::ClientConfig::new();
        for (key, value) in tuned {
            c.set(*key, value);
        }
        c.set("bootstrap.servers", &k.brokers);
        let tls = k.ca_file.is_some() || k.cert_file.is_some();
        let sasl = k.sasl_mechanism.is_some();
        let protocol = match (tls, sasl) {
            (false, false) => None,
            (true, false) => Some("ssl"),
            (false, true) => Some("sasl_plaintext"),
            (true, true) => Some("sasl_ssl"),
        };
        if let Some(p) = protocol {
            c.set("security.protocol", p);
        }
        if let Some(f) = &k.ca_file {
            c.set("ssl.ca.location", f.to_string_lossy());
        }
        if let Some(f) = &k.cert_file {
            c.set("ssl.certificate.location", f.to_string_lossy());
        }
        if let Some(f) = &k.key_file {
            c.set("ssl.key.location", f.to_string_lossy());
        }
        if let Some(m) = &k.sasl_mechanism {
            c.set("sasl.mechanism", m.to_ascii_uppercase());
            if let Some(u) = &k.username {
                c.set("sasl.username", u);
            }
            if let Some(f) = &k.password_file {
                let pw = std::fs::read_to_string(f)
                    .with_context(|| format!("[kafka] password_file {}", f.display()))?;
                c.set("sasl.password", pw.trim_end_matches(['\n', '\r']));
            }
        }
        for (key, value) in &k.properties {
            c.set(key, value);
        }
        Ok(c)
    }
}

impl crate::sink::SinkEnv for Config {
    fn sinks(&self) -> &[SinkConfig] {
        &self.sinks
    }

    fn base_dir(&self) -> &Path {
        &self.base_dir
    }

    fn state_dir(&self) -> PathBuf {
        if self.state.dir.is_relative() && !self.base_dir.as_os_str().is_empty() {
            self.base_dir.join(&self.state.dir)
        } else {
            self.state.dir.clone()
        }
    }

    fn kafka_client(&self, tuned: &[(&str, String)]) -> Result<(rdkafka::ClientConfig, String)> {
        Ok((
            self.kafka.client_config(tuned)?,
            self.kafka.alerts_topic.clone(),
        ))
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
    /// Reads, strictly checks and resolves a config file. The error lists every problem
    /// found while reading, one a line, as `FILE:LINE: what is wrong`.
    pub fn load(path: &Path) -> Result<Config> {
        Config::read(path).map_err(|findings| {
            anyhow!(findings
                .iter()
                .map(|f| f.render(path))
                .collect::<Vec<_>>()
                .join("\n"))
        })
    }

    /// Like [`Config::load`], with the problems as findings (for `check`).
    pub fn read(path: &Path) -> std::result::Result<Config, Vec<Finding>> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            vec![Finding::error(
                None,
                format!("cannot read config file: {e}"),
            )]
        })?;
        let mut cfg = Config::parse(&text)?;
        let base = path
            .canonicalize()
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from("."));
        cfg.file = path.to_path_buf();
        cfg.resolve(&base);
        Ok(cfg)
    }

    /// Parses config text strictly; the error lists every problem as `line N: ...`.
    pub fn from_toml(text: &str) -> Result<Config> {
        Config::parse(text).map_err(|findings| {
            anyhow!(findings
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"))
        })
    }

    /// Parses config text: syntax, then unknown keys and tables anywhere (all of them),
    /// then types (serde stops at the first), then each `[[sinks]]` entry. Every problem
    /// is a finding with its line.
    pub fn parse(text: &str) -> std::result::Result<Config, Vec<Finding>> {
        let doc = toml_edit::ImDocument::parse(text).map_err(|e| {
            vec![Finding::error(
                e.span().map(|s| strict::Walk::line_of(text, s.start)),
                e.message().trim().replace('\n', "; "),
            )]
        })?;
        let walk = strict::Walk::document(text, &doc);
        let mut findings = walk.findings.clone();
        let mut cfg = match toml::from_str::<Config>(text) {
            Ok(cfg) => Some(cfg),
            Err(e) => {
                let pos = e.span().map(|s| s.start);
                let message = strict::plain_type_error(e.message().trim());
                let message = match pos.and_then(|p| walk.key_at(p)) {
                    Some(key) => format!("{key}: {message}"),
                    None => message,
                };
                findings.push(Finding::error(
                    pos.map(|p| strict::Walk::line_of(text, p)),
                    message,
                ));
                None
            }
        };
        if let Some(cfg) = &mut cfg {
            for (i, s) in cfg.sources.iter_mut().enumerate() {
                if let Err(e) = presets::apply(s) {
                    let at = walk.lines.get(&format!("sources.{i}.preset"));
                    findings.push(Finding::error(
                        at,
                        format!("[[sources]] #{} ({:?}): {e}", i + 1, s.name),
                    ));
                }
            }
            for (i, t) in std::mem::take(&mut cfg.raw_sinks).iter().enumerate() {
                match SinkConfig::from_table(t) {
                    Ok(sc) => cfg.sinks.push(sc),
                    Err(e) => {
                        let entry = format!("sinks.{i}");
                        let line = match e.key() {
                            Some(k) => walk.lines.first(&[format!("{entry}.{k}"), entry]),
                            None => walk.lines.get(&entry),
                        };
                        let label = sink_label(
                            i,
                            t.get("name").and_then(|v| v.as_str()),
                            t.get("type").and_then(|v| v.as_str()).unwrap_or("stdout"),
                        );
                        findings.push(Finding::error(line, format!("{label}: {e}")));
                    }
                }
            }
        }
        match cfg {
            Some(mut cfg) if findings.is_empty() => {
                cfg.lines = walk.lines;
                Ok(cfg)
            }
            _ => {
                findings.sort_by_key(|f| f.line);
                findings.dedup();
                Err(findings)
            }
        }
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
    /// (Sinks are checked when they are built: [`crate::sink::check`].)
    pub fn validate(&self) -> Vec<String> {
        self.problems().into_iter().map(|f| f.message).collect()
    }

    /// [`Config::validate`] with the line of each problem.
    pub fn problems(&self) -> Vec<Finding> {
        let mut problems = Vec::new();
        let lines = &self.lines;
        if let Err(e) = self.timezone() {
            problems.push(Finding::error(
                lines.first(&["engine.timezone", "engine"]),
                format!("{e:#}: use an IANA name such as \"America/Chicago\""),
            ));
        }
        let mut names = std::collections::HashSet::new();
        for (i, s) in self.sources.iter().enumerate() {
            let at = format!("[[sources]] #{} ({:?})", i + 1, s.name);
            let entry = format!("sources.{i}");
            let line = |key: &str| lines.first(&[format!("{entry}.{key}"), entry.clone()]);
            let mut push = |line: Option<usize>, m: String| {
                problems.push(Finding::error(line, format!("{at}: {m}")))
            };
            if s.name.trim().is_empty() {
                push(
                    line("name"),
                    "`name` is empty; give every source a unique name".into(),
                );
            }
            if !names.insert(s.name.clone()) {
                push(
                    line("name"),
                    "the name is used twice; source names must be unique".into(),
                );
            }
            if s.paths.is_empty() {
                push(
                    line("paths"),
                    "`paths` is empty; list the globs or folders to read".into(),
                );
            }
            if s.kind == SourceType::File && s.format.is_none() {
                push(
                    line("format"),
                    "`format` is missing; use fhir-audit, atna-syslog, csv, jsonl, canonical or auditd".into(),
                );
            }
            if let Some(tz) = &s.timezone {
                if parse_tz(tz).is_err() {
                    push(
                        line("timezone"),
                        format!("timezone {tz:?} is not an IANA name"),
                    );
                }
            }
            if let Some(d) = &s.delimiter {
                if delimiter_byte(d).is_none() {
                    push(
                        line("delimiter"),
                        format!("delimiter {d:?} must be one character (\"\\t\" for tab)"),
                    );
                }
            }
            if matches!(s.format, Some(Format::Csv) | Some(Format::Jsonl)) {
                for required in ["ts", "user", "action"] {
                    if !s.fields.contains_key(required) && !default_field_ok(s, required) {
                        push(
                            line("fields"),
                            format!("[sources.fields] has no `{required}`; map it to the column that holds it"),
                        );
                    }
                }
            }
            for (raw, canonical) in &s.actions {
                if crate::event::Action::parse(canonical).is_none() {
                    push(
                        line(&format!("actions.{raw}")),
                        format!("[sources.actions] maps {raw:?} to unknown action {canonical:?}"),
                    );
                }
            }
            if let Some(m) = &s.media {
                if crate::event::Media::parse(m).is_none() {
                    push(
                        line("media"),
                        format!("media {m:?} is not one of removable, network, cloud, local"),
                    );
                }
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

    /// The findings of `text`, each as `line N: message`.
    fn findings(text: &str) -> Vec<String> {
        match Config::parse(text) {
            Ok(_) => Vec::new(),
            Err(f) => f.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn unknown_table_is_an_error_with_line_and_suggestion() {
        let f = findings("# hospital\n\n[refrence]\nstaff = \"staff.csv\"\n");
        assert_eq!(
            f,
            ["line 3: unknown table `[refrence]`; did you mean `[reference]`?"]
        );
        let f = findings("[engine]\n[[sink]]\ntype = \"stdout\"\n");
        assert_eq!(
            f,
            ["line 2: unknown table `[[sink]]`; did you mean `[[sinks]]`?"]
        );
        let f = findings("[nonsense]\n");
        assert!(
            f[0].starts_with("line 1: unknown table `[nonsense]`; the tables are [reference], [engine], [[sources]], [[sinks]]"),
            "{f:?}"
        );
    }

    #[test]
    fn unknown_key_is_an_error_with_line_and_suggestion() {
        let text = "[reference]\nstaff = \"s.csv\"\n\n[engine]\n# where we are\n\n\n\n\n\n\ntimezon = \"America/Chicago\"\n";
        assert_eq!(
            findings(text),
            ["line 12: unknown key `timezon` in [engine]; did you mean `timezone`?"]
        );
        assert_eq!(
            findings("[state]\ndir = \"s\"\nsnapshot_sec = 5\n"),
            ["line 3: unknown key `snapshot_sec` in [state]; did you mean `snapshot_secs`?"]
        );
        // A dotted key and an inline table are walked like tables.
        assert_eq!(
            findings("engine.timezon = \"UTC\"\nkafka = { brokerz = \"x\" }\n"),
            [
                "line 1: unknown key `timezon` in [engine]; did you mean `timezone`?",
                "line 2: unknown key `brokerz` in [kafka]; did you mean `brokers`?"
            ]
        );
        // A key written before any table header.
        assert_eq!(
            findings("timezone = \"UTC\"\n[engine]\n"),
            ["line 1: unknown key `timezone` at the top level; it belongs in a table: put it under [engine] or [[sources]]"]
        );
        // Every unknown key is reported, not just the first; free tables are not walked.
        let f = findings(
            "[metrics]\nlisten = \"x\"\nlisen = \"y\"\n[kafka.properties]\n\"any.thing\" = \"1\"\n[dead_letter]\npth = \"x\"\n",
        );
        assert_eq!(
            f,
            [
                "line 3: unknown key `lisen` in [metrics]; did you mean `listen`?",
                "line 7: unknown key `pth` in [dead_letter]; did you mean `path`?"
            ]
        );
    }

    #[test]
    fn unknown_keys_in_sources_and_sinks() {
        let text = r#"
[[sources]]
name = "ehr"
type = "file"
pathz = ["x"]
format = "csv"
[sources.fields]
anything = "goes here"

[[sinks]]
type = "file"
path = "a"
max_byte = 5

[[sinks]]
name = "siem"
type = "webhook"
url = "http://x"
address = "h:1"
"#;
        assert_eq!(
            findings(text),
            [
                "line 5: unknown key `pathz` in [[sources]] #1 (\"ehr\"); did you mean `paths`?",
                "line 13: unknown key `max_byte` in [[sinks]] #1 (type = \"file\"); did you mean `max_bytes`?",
                "line 19: [[sinks]] #2 (\"siem\", type = \"webhook\"): `address` is not used by a webhook sink (it is a key of syslog sinks); remove it. The keys a webhook sink takes: `type`, `name`, `format`, `patient_ids`, `queue_size`, `overflow`, `close_timeout_secs`, `pseudonym_key_file`, `leef_delimiter`, `url`, `headers`, `timeout_secs`, `ca_file`, `cert_file`, `key_file`"
            ]
        );
        let f = findings("[[sinks]]\ntype = \"kafka\"\ntopik = \"a\"\n");
        assert_eq!(
            f,
            ["line 3: unknown key `topik` in [[sinks]] #1 (type = \"kafka\"); did you mean `topic`?"]
        );
    }

    #[test]
    fn wrong_types_and_values_have_lines_and_plain_words() {
        assert_eq!(
            findings("[engine]\ntimezone = \"UTC\"\nmax_users = \"many\"\n"),
            ["line 3: `max_users` in [engine]: must be a whole number of at least 0, not \"many\""]
        );
        assert_eq!(
            findings("\n[[sinks]]\ntype = \"file\"\npath = \"a\"\nqueue_size = \"big\"\n"),
            ["line 5: [[sinks]] #1 (type = \"file\"): `queue_size` must be a whole number of at least 0, not \"big\""]
        );
        assert_eq!(
            findings("[[sinks]]\ntype = \"fil\"\npath = \"a\"\n"),
            ["line 2: [[sinks]] #1 (type = \"fil\"): `type` = \"fil\" is not known; did you mean \"file\"? (one of \"stdout\", \"file\", \"syslog\", \"kafka\", \"webhook\")"]
        );
        assert_eq!(
            findings("[[sinks]]\ntype = \"file\"\nformat = \"jsn\"\n"),
            ["line 3: [[sinks]] #1 (type = \"file\"): `format` = \"jsn\" is not known; did you mean \"json\"? (one of \"json\", \"cef\", \"leef\", \"ecs\", \"ocsf\")"]
        );
        assert_eq!(
            findings(
                "[[sources]]\nname = \"a\"\ntype = \"file\"\n\n[[sources]]\ntype = \"file\"\n"
            ),
            ["line 5: [[sources]] #2: missing field `name`"]
        );
        assert_eq!(
            findings("[[sources]]\nname = \"a\"\ntype = \"file\"\nformat = \"fhir\"\n"),
            ["line 4: `format` in [[sources]] #1 (\"a\"): \"fhir\" is not known; did you mean \"fhir-audit\"? (one of \"fhir-audit\", \"atna-syslog\", \"csv\", \"jsonl\", \"canonical\", \"auditd\")"]
        );
        let f = findings("[engine]\ntimezone = \n");
        assert_eq!(f.len(), 1);
        assert!(f[0].starts_with("line 2: "), "{f:?}");
    }

    #[test]
    fn sinks_are_typed_once_and_lines_are_kept() {
        let text = "[[sinks]]\ntype = \"file\"\npath = \"a.ndjson\"\nmax_files = 2\n\n[[sinks]]\ntype = \"syslog\"\naddress = \"h:1\"\nprotocol = \"udp\"\n";
        let cfg = Config::from_toml(text).unwrap();
        match &cfg.sinks[0].settings {
            Some(SinkSettings::File(f)) => {
                assert_eq!(f.path.as_deref(), Some(Path::new("a.ndjson")));
                assert_eq!((f.max_files, f.fsync_secs), (Some(2), 1));
            }
            other => panic!("{other:?}"),
        }
        match &cfg.sinks[1].settings {
            Some(SinkSettings::Syslog(s)) => assert_eq!(s.protocol.as_deref(), Some("udp")),
            other => panic!("{other:?}"),
        }
        assert_eq!(cfg.lines.get("sinks.1"), Some(6));
        assert_eq!(cfg.lines.get("sinks.1.address"), Some(8));
        assert!(Config::from_toml("").unwrap().sinks.is_empty());
    }

    #[test]
    fn load_names_the_file_on_every_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("phiwatch.toml");
        std::fs::write(&p, "[refrence]\n[engine]\ntimezon = \"UTC\"\n").unwrap();
        let e = format!("{:#}", Config::load(&p).unwrap_err());
        let d = p.display();
        assert_eq!(
            e,
            format!("{d}:1: unknown table `[refrence]`; did you mean `[reference]`?\n{d}:3: unknown key `timezon` in [engine]; did you mean `timezone`?")
        );
    }
}
