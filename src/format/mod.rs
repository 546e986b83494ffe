//! Alert output formats for SIEMs: one line per alert, no trailing newline.
//!
//! | format | what | where it goes |
//! |---|---|---|
//! | `json` | the contract alert JSON, unchanged | anything; `phiwatch replay` output |
//! | `cef` | ArcSight CEF:0 | ArcSight, most SIEMs over syslog |
//! | `leef` | IBM QRadar LEEF:2.0 | QRadar |
//! | `ecs` | Elastic Common Schema alert document | Elasticsearch, Elastic Security |
//! | `ocsf` | OCSF 1.8.0 Detection Finding (class 2004) | Security Lake, Splunk, others |
//!
//! Every format first passes the alert through the sink's [`PatientPolicy`], so plain
//! patient ids only leave where the policy is `plain`. Staff and patient names and
//! addresses are never in alerts and no format adds them.
//!
//! Severity is mapped from the alert's severity word, never from the score, so that a
//! SIEM sees the same level the privacy officer sees:
//!
//! | alert | CEF / LEEF (0-10) | ECS `event.severity` | OCSF `severity_id` | syslog |
//! |---|---|---|---|---|
//! | low | 3 | 3 | 2 Low | 5 notice |
//! | medium | 5 | 5 | 3 Medium | 4 warning |
//! | high | 8 | 8 | 4 High | 3 err |
//! | critical | 10 | 10 | 5 Critical | 2 crit |
//!
//! The score (0-100) travels separately: CEF `cn1`, LEEF `score`, ECS
//! `event.risk_score`, OCSF `risk_score`.
//!
//! A follow-up alert (its finding was written at once, then grew) names the first alert's
//! id in `follows`: JSON `follows`, CEF `cs4` (`cs4Label=follows`), LEEF `follows`, ECS
//! `phiwatch.follows`, OCSF `finding_info.related_events[0].uid` and
//! `unmapped.phiwatch.follows`. Every format leaves it out when it is unset. Likewise the
//! user's case (`case`, `case_alerts`, `risk`): JSON as named, CEF `cs5`/`cn2`/`cn3`, LEEF
//! `case`/`caseAlerts`/`risk`, ECS `phiwatch.*`, OCSF `unmapped.phiwatch.*`.

pub mod cef;
pub mod ecs;
pub mod json;
pub mod leef;
pub mod ocsf;

use crate::alert::{Alert, Severity};
use crate::pseudonym::PatientPolicy;
use chrono::{DateTime, Utc};
use serde::Deserialize;

pub use leef::LeefDelimiter;

/// How an alert is written: the `format` key of a sink.
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

/// Vendor and product name in every format's header.
pub const VENDOR: &str = "phiwatch";
pub const PRODUCT: &str = "phiwatch";
/// The phiwatch version, as written in headers.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Renders one alert in `format` under `policy` with default options (LEEF delimiter `^`).
pub fn render(alert: &Alert, format: AlertFormat, policy: &PatientPolicy) -> String {
    Formatter::new(format).render(alert, policy)
}

/// A format with its options, as a sink holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Formatter {
    pub format: AlertFormat,
    /// Only used by `leef`.
    pub leef_delimiter: LeefDelimiter,
}

impl Formatter {
    pub fn new(format: AlertFormat) -> Formatter {
        Formatter {
            format,
            leef_delimiter: LeefDelimiter::default(),
        }
    }

    pub fn render(&self, alert: &Alert, policy: &PatientPolicy) -> String {
        let alert = policy.apply(alert);
        match self.format {
            AlertFormat::Json => json::render(&alert),
            AlertFormat::Cef => cef::render(&alert),
            AlertFormat::Leef => leef::render(&alert, self.leef_delimiter),
            AlertFormat::Ecs => ecs::render(&alert, policy),
            AlertFormat::Ocsf => ocsf::render(&alert, policy),
        }
    }

    /// HTTP content type of a rendered line.
    pub fn content_type(&self) -> &'static str {
        match self.format {
            AlertFormat::Json | AlertFormat::Ecs | AlertFormat::Ocsf => "application/json",
            AlertFormat::Cef | AlertFormat::Leef => "text/plain; charset=utf-8",
        }
    }
}

/// The config name of a format.
pub fn format_name(format: AlertFormat) -> &'static str {
    match format {
        AlertFormat::Json => "json",
        AlertFormat::Cef => "cef",
        AlertFormat::Leef => "leef",
        AlertFormat::Ecs => "ecs",
        AlertFormat::Ocsf => "ocsf",
    }
}

/// CEF and LEEF severity, 0-10 (see the table in the module doc).
pub fn severity_0_10(s: Severity) -> u8 {
    match s {
        Severity::Low => 3,
        Severity::Medium => 5,
        Severity::High => 8,
        Severity::Critical => 10,
    }
}

/// OCSF `severity_id` and its caption.
pub fn ocsf_severity(s: Severity) -> (u8, &'static str) {
    match s {
        Severity::Low => (2, "Low"),
        Severity::Medium => (3, "Medium"),
        Severity::High => (4, "High"),
        Severity::Critical => (5, "Critical"),
    }
}

/// Syslog severity (RFC 5424 table 2).
pub fn syslog_severity(s: Severity) -> u8 {
    match s {
        Severity::Low => 5,
        Severity::Medium => 4,
        Severity::High => 3,
        Severity::Critical => 2,
    }
}

/// Milliseconds since the Unix epoch.
pub fn epoch_ms(ts: &DateTime<Utc>) -> i64 {
    ts.timestamp_millis()
}

/// RFC 3339 in UTC with milliseconds, like the contract JSON.
pub fn rfc3339(ts: &DateTime<Utc>) -> String {
    crate::event::fmt_ts(ts)
}
