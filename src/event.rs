//! The canonical event: what every parser produces and every later stage consumes.
//!
//! Its JSON form is fixed by the outside contract (`format = "canonical"`), so the serde
//! names here must not change. Identifiers are kept as the source spelled them (trimmed);
//! comparisons go through [`key`], which folds case, because hospitals mix `JSMITH` and
//! `jsmith` for the same account across systems.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// What the user did. The names are the contract's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    View,
    Search,
    Create,
    Update,
    Delete,
    Export,
    Print,
    Login,
    Logout,
    BreakGlass,
    FileWrite,
    FileDelete,
    FileMove,
}

impl Action {
    pub const ALL: [Action; 13] = [
        Action::View,
        Action::Search,
        Action::Create,
        Action::Update,
        Action::Delete,
        Action::Export,
        Action::Print,
        Action::Login,
        Action::Logout,
        Action::BreakGlass,
        Action::FileWrite,
        Action::FileDelete,
        Action::FileMove,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::View => "view",
            Action::Search => "search",
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::Export => "export",
            Action::Print => "print",
            Action::Login => "login",
            Action::Logout => "logout",
            Action::BreakGlass => "break_glass",
            Action::FileWrite => "file_write",
            Action::FileDelete => "file_delete",
            Action::FileMove => "file_move",
        }
    }

    /// Parses a canonical action name (case-insensitive, `-` accepted for `_`).
    pub fn parse(s: &str) -> Option<Action> {
        let s = s.trim().to_ascii_lowercase().replace('-', "_");
        Action::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// True for actions that touch a patient's chart in the EHR (not file events).
    pub fn is_chart_access(self) -> bool {
        matches!(
            self,
            Action::View
                | Action::Create
                | Action::Update
                | Action::Delete
                | Action::Export
                | Action::Print
                | Action::BreakGlass
        )
    }

    /// True for filesystem events produced by file agents.
    pub fn is_file(self) -> bool {
        matches!(
            self,
            Action::FileWrite | Action::FileDelete | Action::FileMove
        )
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a file event landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Media {
    Removable,
    Network,
    Cloud,
    Local,
}

impl Media {
    pub fn as_str(self) -> &'static str {
        match self {
            Media::Removable => "removable",
            Media::Network => "network",
            Media::Cloud => "cloud",
            Media::Local => "local",
        }
    }

    pub fn parse(s: &str) -> Option<Media> {
        match s.trim().to_ascii_lowercase().as_str() {
            "removable" => Some(Media::Removable),
            "network" => Some(Media::Network),
            "cloud" => Some(Media::Cloud),
            "local" => Some(Media::Local),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    #[default]
    Success,
    Failure,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        }
    }
}

/// Counts of PHI markers found in a file's first bytes. Counts only: the matched text
/// never leaves the sampler.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhiMarkers {
    /// Keyword hits (column headers such as MRN, DOB, diagnosis).
    #[serde(default)]
    pub keywords: u32,
    /// Pattern hits (MRN patterns, SSN-like numbers, dates of birth).
    #[serde(default)]
    pub patterns: u32,
    /// Estimated rows that carry a patient id.
    #[serde(default)]
    pub records: u64,
}

/// Where an event came from, so a duplicate re-read after a crash can be recognised.
///
/// `file` and `file_id` are shared with the reader and every other event of the file, not
/// copied for each event: their allocation and free were a good part of the allocator's
/// work per event. In JSON they are plain strings (serde's `rc` feature).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Provenance {
    /// Host the agent runs on.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub agent: String,
    /// File the line was read from.
    #[serde(default, skip_serializing_if = "str::is_empty")]
    pub file: Arc<str>,
    /// Byte offset of the line's first byte in that file.
    #[serde(default)]
    pub offset: u64,
    /// The file's identity when the line was read: device, inode and the fingerprint of
    /// its first bytes (see `source::FileId`). A path is reused by rotation and a file
    /// truncated in place starts its offsets again; this tells those apart.
    #[serde(default, skip_serializing_if = "str::is_empty")]
    pub file_id: Arc<str>,
}

/// One thing a staff account did, in the shape every format maps onto.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    #[serde(with = "rfc3339")]
    pub ts: DateTime<Utc>,
    pub user: String,
    pub action: Action,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<String>,
    #[serde(default = "one")]
    pub records: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<Media>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default)]
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
    /// Why the access happened, as the source coded it (e.g. v3-ActReason `TREAT`, or
    /// `BTG`/`ETREAT` for break-the-glass). Added to the contract's fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    /// PHI marker counts for file events (added to the contract's fields).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phi: Option<PhiMarkers>,
    /// Where the event was read (added to the contract's fields).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Provenance>,
}

fn one() -> u64 {
    1
}

/// `s` without surrounding whitespace, reusing its buffer when there is none (the usual
/// case: parsers trim ids already).
fn trimmed(s: String) -> String {
    if s.trim().len() == s.len() {
        s
    } else {
        s.trim().to_string()
    }
}

impl Event {
    /// A minimal event; parsers fill in the rest.
    pub fn new(ts: DateTime<Utc>, user: impl Into<String>, action: Action) -> Event {
        Event {
            ts,
            user: trimmed(user.into()),
            action,
            patient: None,
            records: 1,
            bytes: None,
            path: None,
            media: None,
            host: None,
            outcome: Outcome::Success,
            source: String::new(),
            purpose: None,
            phi: None,
            origin: None,
        }
    }

    /// The user's comparison key.
    pub fn user_key(&self) -> String {
        key(&self.user)
    }

    /// The patient's comparison key, if there is a patient.
    pub fn patient_key(&self) -> Option<String> {
        self.patient.as_deref().map(key)
    }

    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).expect("event serialises")
    }
}

/// The comparison form of an identifier: trimmed and lower-cased. The contract says
/// identifiers compare case-insensitively everywhere.
///
/// ```
/// assert_eq!(phiwatch::event::key(" JSMITH "), "jsmith");
/// assert_eq!(phiwatch::event::key("MRN00012345"), phiwatch::event::key("mrn00012345"));
/// ```
pub fn key(id: &str) -> String {
    key_cow(id).into_owned()
}

/// [`key`] borrowed from `id` when that is its comparison form already.
pub fn key_cow(id: &str) -> std::borrow::Cow<'_, str> {
    let t = trim_id(id);
    if t.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(t.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(t)
    }
}

/// `id.trim()`, without its search when `id` starts and ends with ASCII that is not
/// whitespace: parsers trim ids already, and `trim`'s Unicode search from both ends, for
/// every event's user and patient, was a few per cent of enrichment.
pub fn trim_id(id: &str) -> &str {
    let kept = |b: Option<&u8>| b.is_some_and(|&b| b.is_ascii() && !(b as char).is_whitespace());
    let bytes = id.as_bytes();
    if kept(bytes.first()) && kept(bytes.last()) {
        id
    } else {
        id.trim()
    }
}

/// RFC 3339 formatting with milliseconds and `Z`, the one way phiwatch writes times.
pub fn fmt_ts(ts: &DateTime<Utc>) -> String {
    ts.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub mod rfc3339 {
    //! serde helpers: timestamps as RFC 3339 strings.
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ts: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::fmt_ts(ts))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        DateTime::parse_from_rfc3339(s.trim())
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| serde::de::Error::custom(format!("`ts` is not RFC 3339: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_round_trip() {
        let line = r#"{"ts":"2024-05-14T13:49:00.123Z","user":"jsmith","action":"view","patient":"MRN1","host":"WS-1"}"#;
        let e: Event = serde_json::from_str(line).unwrap();
        assert_eq!(e.action, Action::View);
        assert_eq!(e.records, 1);
        assert_eq!(e.outcome, Outcome::Success);
        let back: Event = serde_json::from_str(&e.to_json_line()).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn keys_fold_case() {
        assert_eq!(key(" JSmith "), "jsmith");
        assert_eq!(Action::parse("Break-Glass"), Some(Action::BreakGlass));
    }
}

/// An agent's word on its sources, sent to every partition of the events topic between
/// the events: which sources are caught up and quiet (`idle`), which are still reading
/// (`active`), and the agent's wall clock. On the wire: `{"heartbeat": {...}}`, never a
/// canonical event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub agent: String,
    #[serde(default)]
    pub active: Vec<String>,
    #[serde(default)]
    pub idle: Vec<String>,
    /// The agent's wall clock when it was written (epoch ms).
    pub wall_ms: i64,
}

#[derive(Serialize, Deserialize)]
struct HeartbeatEnvelope<T> {
    heartbeat: T,
}

impl Heartbeat {
    const PREFIX: &'static [u8] = b"{\"heartbeat\":";

    pub fn to_json_line(&self) -> String {
        serde_json::to_string(&HeartbeatEnvelope { heartbeat: self }).expect("serialises")
    }

    /// The heartbeat in a message payload, or None when the payload is something else.
    pub fn from_payload(payload: &[u8]) -> Option<Heartbeat> {
        if !payload.starts_with(Self::PREFIX) {
            return None;
        }
        serde_json::from_slice::<HeartbeatEnvelope<Heartbeat>>(payload)
            .ok()
            .map(|e| e.heartbeat)
    }
}
