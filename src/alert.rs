//! The alert: what a privacy officer reads. Field names are fixed by the outside contract.

use crate::event::rfc3339;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Severity> {
        match s.trim().to_ascii_lowercase().as_str() {
            "low" | "informational" => Some(Severity::Low),
            "medium" => Some(Severity::Medium),
            "high" => Some(Severity::High),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Unique, and stable across replays of the same input: see [`alert_id`].
    pub id: String,
    /// Event time of the event that completed the finding (for an alert written at once,
    /// the event that raised it).
    #[serde(with = "rfc3339")]
    pub ts: DateTime<Utc>,
    pub detector: String,
    pub severity: Severity,
    pub score: u8,
    pub user: String,
    pub patients: Vec<String>,
    pub summary: String,
    pub reasons: Vec<String>,
    #[serde(with = "rfc3339")]
    pub first_seen: DateTime<Utc>,
    #[serde(with = "rfc3339")]
    pub last_seen: DateTime<Utc>,
    pub events: u64,
    /// Set on a follow-up alert only: the `id` of the alert this finding already raised
    /// at once (`alert: immediate`). Absent from the JSON when unset, so every other
    /// alert serialises exactly as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follows: Option<String>,
    /// The user's case: their alerts over a rolling 30 days (see `engine::cases`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case: Option<String>,
    /// Alerts in the case so far, this one included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case_alerts: Option<u32>,
    /// The user's risk: alert scores summed, halving every 14 days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk: Option<u32>,
}

impl Alert {
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).expect("alert serialises")
    }
}

/// A stable alert id: a hash of what makes the finding itself (detector, user, the
/// window it belongs to, and the patients), never of wall-clock time or arrival order,
/// so that a replay or a restart produces the same id and duplicates can be dropped.
///
/// ```
/// use phiwatch::alert::alert_id;
/// let a = alert_id("family", "u1", "2024-05-14", &["p2".into(), "p1".into()]);
/// assert_eq!(a, alert_id("family", "u1", "2024-05-14", &["p1".into(), "p2".into()]));
/// assert!(a.starts_with("pw-"));
/// ```
pub fn alert_id(detector: &str, user_key: &str, window: &str, patient_keys: &[String]) -> String {
    let mut h = Sha256::new();
    for part in [detector, user_key, window] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    let mut sorted: Vec<&String> = patient_keys.iter().collect();
    sorted.sort();
    for p in sorted {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    let digest = h.finalize();
    format!("pw-{}", hex::encode(&digest[..12]))
}

/// The id of the one follow-up alert of a finding that alerted at once: a hash of the
/// first alert's id (itself stable across replays), in its own domain so it never equals
/// an [`alert_id`].
///
/// ```
/// use phiwatch::alert::{alert_id, follow_up_id};
/// let first = alert_id("export-then-copy", "u1", "2024-05-14", &[]);
/// let next = follow_up_id(&first);
/// assert!(next.starts_with("pw-") && next != first);
/// assert_eq!(next, follow_up_id(&first));
/// ```
pub fn follow_up_id(first_id: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"follow-up\0");
    h.update(first_id.as_bytes());
    let digest = h.finalize();
    format!("pw-{}", hex::encode(&digest[..12]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_ignores_patient_order() {
        let a = alert_id("family", "u1", "2024-05-14", &["p2".into(), "p1".into()]);
        let b = alert_id("family", "u1", "2024-05-14", &["p1".into(), "p2".into()]);
        assert_eq!(a, b);
        assert_ne!(a, alert_id("family", "u1", "2024-05-15", &["p1".into()]));
    }
}
