//! Parsers: one input line in, one canonical event (or a reasoned rejection) out.
//!
//! Every parser obeys the same promise: no input, however malformed, panics. A line
//! either becomes an [`Event`], is skipped on purpose (a CSV header, a blank line), or is
//! rejected with a [`Reject`] whose `reason` is a short fixed label (safe as a metric
//! label: it never holds data from the line) and whose `detail` explains it to a human.
//! The raw line goes to the dead-letter file, not into logs, since it may hold patient data.
//!
//! One module per input format, plus the pieces they share: [`time`] (every timestamp
//! goes through [`time::parse_ts`]), `syslog` (the header in front of ATNA XML), `dicom`
//! (the DICOM code tables FHIR and ATNA both use) and `fields` (the field mapping and
//! action table csv, jsonl and canonical share).

use crate::config::{Format, SourceConfig};
use crate::event::Event;
use anyhow::Context;
use chrono_tz::Tz;

mod atna;
pub mod auditd;
mod canonical;
mod delimited;
mod dicom;
mod fhir;
mod fields;
mod jsonl;
mod jsontree;
mod swar;
mod syslog;
pub mod time;

/// Why a line was not turned into an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// Short fixed label, e.g. `bad_json`, `missing_user`, `bad_timestamp`.
    pub reason: &'static str,
    /// One sentence for the dead-letter file. Must not echo patient data from the line.
    pub detail: String,
    /// Well formed, but not a person's access to patient data (an application starting,
    /// the audit log being read): counted as ignored, by `reason` (one of
    /// [`ignored::ALL`]), never written to the dead-letter file, which keeps broken lines.
    pub ignored: bool,
}

impl Reject {
    pub fn new(reason: &'static str, detail: impl Into<String>) -> Reject {
        Reject {
            reason,
            detail: detail.into(),
            ignored: false,
        }
    }

    /// A well-formed record that is not a staff member's access to patient data.
    pub fn ignored(kind: &'static str, detail: impl Into<String>) -> Reject {
        Reject {
            reason: kind,
            detail: detail.into(),
            ignored: true,
        }
    }
}

/// The kinds of records counted as ignored (metric label values, so a closed set).
pub mod ignored {
    /// DICOM 110100 Application Activity: an application started or stopped.
    pub const APPLICATION_ACTIVITY: &str = "application_activity";
    /// DICOM 110101 Audit Log Used: someone read the audit trail itself.
    pub const AUDIT_LOG_USED: &str = "audit_log_used";
    /// DICOM 110108 Network Entry: a node joined or left the network.
    pub const NETWORK_ENTRY: &str = "network_entry";
    /// DICOM 110113 Security Alert other than an emergency override.
    pub const SECURITY_ALERT: &str = "security_alert";
    /// Any other well-formed audit record of a kind that names no patient access.
    pub const OTHER: &str = "other_audit_event";
    /// A system's own access that names no person: no agent is the requestor and every
    /// agent is a machine or a network end point (IHE BALP's business-to-business
    /// examples, where the access token identified only the client).
    pub const NO_PERSON: &str = "no_person";

    pub const ALL: [&str; 6] = [
        APPLICATION_ACTIVITY,
        AUDIT_LOG_USED,
        NETWORK_ENTRY,
        SECURITY_ALERT,
        OTHER,
        NO_PERSON,
    ];
}

impl std::fmt::Display for Reject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.reason, self.detail)
    }
}

/// The rejection labels. They are metric label values, so the set is closed: a parser
/// uses only these constants, and [`reason::ALL`] lets a metrics registry create every
/// series up front.
pub mod reason {
    /// The line is longer than [`super::MAX_LINE_BYTES`].
    pub const LINE_TOO_LONG: &str = "line_too_long";
    /// Not valid JSON (or nested deeper than the JSON parser allows).
    pub const BAD_JSON: &str = "bad_json";
    /// Valid JSON, but not a JSON object.
    pub const NOT_OBJECT: &str = "not_object";
    /// JSON, but not a FHIR AuditEvent.
    pub const NOT_AUDIT_EVENT: &str = "not_audit_event";
    /// No syslog header where an ATNA message needs one.
    pub const BAD_SYSLOG_HEADER: &str = "bad_syslog_header";
    /// The syslog message is not well-formed XML (or is truncated).
    pub const BAD_XML: &str = "bad_xml";
    /// Well-formed, but no `AuditMessage` (or no message at all after the header).
    pub const NOT_AUDIT_MESSAGE: &str = "not_audit_message";
    pub const MISSING_TIMESTAMP: &str = "missing_timestamp";
    pub const BAD_TIMESTAMP: &str = "bad_timestamp";
    pub const MISSING_USER: &str = "missing_user";
    pub const MISSING_ACTION: &str = "missing_action";
    pub const UNKNOWN_ACTION: &str = "unknown_action";
    /// A csv row with a different number of columns than the header.
    pub const COLUMN_COUNT: &str = "column_count";
    /// A csv quoted field that never closes (often a field with a line break in it).
    pub const BAD_QUOTING: &str = "bad_quoting";
    /// The csv header lacks a column the source's `fields` table names.
    pub const MISSING_COLUMN: &str = "missing_column";
    /// `records` or `bytes` is not a non-negative integer.
    pub const BAD_NUMBER: &str = "bad_number";
    /// `media` is not one of removable, network, cloud, local.
    pub const BAD_MEDIA: &str = "bad_media";
    /// `outcome` is neither a success nor a failure spelling.
    pub const BAD_OUTCOME: &str = "bad_outcome";
    /// A field holds a JSON object or array where a value was expected.
    pub const BAD_FIELD: &str = "bad_field";
    /// The event time is far outside the present (`[engine] max_event_age_days`,
    /// `max_event_ahead_secs`): a clock reset to 1900, a year 9999 placeholder.
    pub const IMPLAUSIBLE_TIME: &str = "implausible_time";
    /// `records` or `bytes` beyond anything a hospital system moves in one event.
    pub const ABSURD_COUNT: &str = "absurd_count";
    /// A user, patient or host id holding control characters (a NUL) or bytes that were
    /// not UTF-8: a garbled id would match no one and become a user of its own.
    pub const BAD_ID: &str = "bad_id";

    pub const ALL: [&str; 22] = [
        LINE_TOO_LONG,
        BAD_JSON,
        NOT_OBJECT,
        NOT_AUDIT_EVENT,
        BAD_SYSLOG_HEADER,
        BAD_XML,
        NOT_AUDIT_MESSAGE,
        MISSING_TIMESTAMP,
        BAD_TIMESTAMP,
        MISSING_USER,
        MISSING_ACTION,
        UNKNOWN_ACTION,
        COLUMN_COUNT,
        BAD_QUOTING,
        MISSING_COLUMN,
        BAD_NUMBER,
        BAD_MEDIA,
        BAD_OUTCOME,
        BAD_FIELD,
        IMPLAUSIBLE_TIME,
        ABSURD_COUNT,
        BAD_ID,
    ];
}

/// Longest line any parser looks at (the source's limit, so both agree).
pub use crate::source::MAX_LINE_BYTES;

/// Turns lines of one file into events. A parser instance serves one file, so parsers
/// with per-file state (a CSV header) keep it here.
pub trait Parser: Send {
    /// Parses one line, without its line terminator. `Ok(None)` means the line is
    /// skipped on purpose (blank line, header).
    fn parse(&mut self, line: &str) -> Result<Option<Event>, Reject>;

    /// True when the first line of each file is a header the parser must see before
    /// any other line, even when reading resumes in the middle of the file.
    fn wants_header(&self) -> bool {
        false
    }

    /// Events held back waiting for more lines (multi-record formats such as auditd),
    /// released at end of input or after a quiet period.
    fn flush(&mut self) -> Vec<Result<Event, Reject>> {
        Vec::new()
    }
}

/// Builds the parser for a source. `default_tz` is the engine's time zone, used when the
/// source names none and a timestamp carries no offset.
///
/// Fails (with a message naming the source and the fix) on a config the parser cannot
/// work with: no format, a format this build lacks, a bad time zone or delimiter, an
/// unknown canonical field in `[sources.fields]` or an unknown action in `[sources.actions]`.
pub fn build(source: &SourceConfig, default_tz: Tz) -> anyhow::Result<Box<dyn Parser>> {
    let format = source
        .format
        .ok_or_else(|| anyhow::anyhow!("source {:?} has no format", source.name))?;
    let tz = match &source.timezone {
        Some(name) => crate::config::parse_tz(name)
            .with_context(|| format!("source {:?}: timezone", source.name))?,
        None => default_tz,
    };
    let ctx = || format!("source {:?} (format {})", source.name, format.as_str());
    let parser: Box<dyn Parser> = match format {
        Format::FhirAudit => Box::new(fhir::FhirParser::new(source.name.clone(), tz)),
        Format::AtnaSyslog => Box::new(atna::AtnaParser::new(source.name.clone(), tz)),
        Format::Csv => Box::new(delimited::CsvParser::new(source, tz).with_context(ctx)?),
        Format::Jsonl => Box::new(jsonl::JsonlParser::new(source, tz).with_context(ctx)?),
        Format::Canonical => Box::new(canonical::CanonicalParser::new(source.name.clone(), tz)),
        Format::Auditd => Box::new(auditd::AuditdParser::new(source)),
    };
    Ok(parser)
}

/// The formats this build can parse.
pub fn supported(format: Format) -> bool {
    match format {
        Format::FhirAudit
        | Format::AtnaSyslog
        | Format::Csv
        | Format::Jsonl
        | Format::Canonical => true,
        Format::Auditd => true,
    }
}

/// The checks every parser makes before looking inside a line: the length cap, then
/// the line terminator and a UTF-8 byte-order mark (Windows exports start files with
/// one). `Ok(None)` for a blank line. Inner whitespace and tabs stay: a tab-delimited
/// row may begin or end with an empty field.
fn prepare(line: &str) -> Result<Option<&str>, Reject> {
    if line.len() > MAX_LINE_BYTES {
        return Err(Reject::new(
            reason::LINE_TOO_LONG,
            format!(
                "line is {} bytes, over the {} byte limit (a file without line breaks?)",
                line.len(),
                MAX_LINE_BYTES
            ),
        ));
    }
    let line = line.trim_end_matches(['\r', '\n']);
    let line = line.strip_prefix('\u{feff}').unwrap_or(line);
    if line.trim().is_empty() {
        Ok(None)
    } else {
        Ok(Some(line))
    }
}

/// An identifier as the event stores it: trimmed, `None` when nothing is left.
fn ident(s: &str) -> Option<String> {
    let t = crate::event::trim_id(s);
    (!t.is_empty()).then(|| t.to_string())
}

/// A value from the line that may go into a `detail` because it names a kind of thing
/// (an action name, a code), not a person: cut short, control characters replaced, so
/// a mis-mapped column cannot flood the dead-letter file.
fn quote_label(s: &str) -> String {
    const MAX: usize = 60;
    let mut out = String::with_capacity(s.len().min(MAX) + 2);
    out.push('"');
    for (i, c) in s.trim().chars().enumerate() {
        if i == MAX {
            out.push('…');
            break;
        }
        out.push(if c.is_control() { ' ' } else { c });
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SourceConfig;

    fn source(format: &str) -> SourceConfig {
        toml::from_str(&format!(
            "name = \"s\"\ntype = \"file\"\nformat = \"{format}\"\n"
        ))
        .unwrap()
    }

    #[test]
    fn every_supported_format_builds() {
        for f in [
            Format::FhirAudit,
            Format::AtnaSyslog,
            Format::Csv,
            Format::Jsonl,
            Format::Canonical,
        ] {
            assert!(supported(f));
            assert!(
                build(&source(f.as_str()), Tz::UTC).is_ok(),
                "{}",
                f.as_str()
            );
        }
    }

    #[test]
    fn auditd_builds() {
        assert!(supported(Format::Auditd));
        assert!(build(&source("auditd"), Tz::UTC).is_ok());
    }

    #[test]
    fn bad_timezone_is_a_build_error() {
        let mut s = source("jsonl");
        s.timezone = Some("Mars/Olympus".into());
        assert!(build(&s, Tz::UTC).is_err());
    }

    #[test]
    fn prepare_handles_blank_bom_and_long_lines() {
        assert_eq!(prepare("  \t \r"), Ok(None));
        assert_eq!(prepare("\u{feff}a,b\r"), Ok(Some("a,b")));
        assert_eq!(prepare("\ta\t"), Ok(Some("\ta\t")));
        let long = "x".repeat(MAX_LINE_BYTES + 1);
        assert_eq!(prepare(&long).unwrap_err().reason, reason::LINE_TOO_LONG);
    }

    #[test]
    fn reasons_are_snake_case_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for r in reason::ALL {
            assert!(
                r.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{r}"
            );
            assert!(seen.insert(r), "{r} twice");
        }
    }

    #[test]
    fn labels_are_cut_and_cleaned() {
        assert_eq!(quote_label(" view\n"), "\"view\"");
        assert!(quote_label(&"a".repeat(500)).chars().count() < 70);
    }
}
