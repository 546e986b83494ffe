//! When a detector's finding is written as an alert: the optional `alert` key of a
//! detector file.
//!
//! | value | the alert is written |
//! |---|---|
//! | `on-close` | when the finding closes (quiet for `gap_minutes`, or the day ends): one alert for the whole finding. Good for curiosity, where the count of charts matters more than the minute. |
//! | `immediate` | on the finding's first evidence. Evidence that arrives later in the same finding is written as **one** follow-up alert when the finding closes, only if there is something new (more events, more patients, or raised to critical); it names the first alert in `follows`. |
//! | absent | `on-close`, except that a `level: critical` detector, or a finding raised to critical while open (a sequence moving many records), alerts at once. |
//!
//! `on_close` is accepted as a spelling of `on-close`.

use super::Detector;
use anyhow::{bail, Result};

/// The `alert` key of a detector file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertWhen {
    /// One alert when the finding closes.
    OnClose,
    /// An alert on the first evidence, then at most one follow-up when it closes.
    Immediate,
}

impl AlertWhen {
    /// The value as written in a detector file.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertWhen::OnClose => "on-close",
            AlertWhen::Immediate => "immediate",
        }
    }
}

/// Parses the `alert` key; `None` when the file does not set it.
pub fn parse(value: Option<&str>) -> Result<Option<AlertWhen>> {
    let Some(v) = value else {
        return Ok(None);
    };
    Ok(Some(match v.trim() {
        "immediate" => AlertWhen::Immediate,
        "on-close" | "on_close" => AlertWhen::OnClose,
        other => bail!(
            "alert {other:?} is not known; use `alert: immediate` (alert on the first evidence) or `alert: on-close` (alert when the finding closes, the default)"
        ),
    }))
}

impl Detector {
    /// Whether a finding of this detector is written at once rather than when it closes;
    /// `critical` says whether the finding has been raised to critical.
    pub fn alerts_at_once(&self, critical: bool) -> bool {
        match self.alert {
            Some(AlertWhen::Immediate) => true,
            Some(AlertWhen::OnClose) => false,
            None => critical || self.severity == crate::alert::Severity::Critical,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detector(extra: &str, level: &str) -> Result<Detector> {
        let text = format!(
            "title: x\nlevel: {level}\nsummary: s\n{extra}detection:\n  sel:\n    action: export\n  condition: sel\n"
        );
        Detector::compile("x", &text, crate::engine::kinds::compile)
    }

    #[test]
    fn the_key_is_parsed_and_defaults_follow_the_level() {
        let d = detector("alert: immediate\n", "low").unwrap();
        assert_eq!(d.alert, Some(AlertWhen::Immediate));
        assert!(d.alerts_at_once(false));
        let d = detector("alert: on-close\n", "critical").unwrap();
        assert_eq!(d.alert, Some(AlertWhen::OnClose));
        assert!(!d.alerts_at_once(true), "an explicit on-close wins");
        assert_eq!(
            detector("alert: on_close\n", "high").unwrap().alert,
            Some(AlertWhen::OnClose)
        );
        let d = detector("", "high").unwrap();
        assert_eq!(d.alert, None);
        assert!(!d.alerts_at_once(false));
        assert!(d.alerts_at_once(true), "raised to critical while open");
        assert!(detector("", "critical").unwrap().alerts_at_once(false));
    }

    #[test]
    fn an_unknown_value_is_a_clear_error() {
        let e = detector("alert: later\n", "high").unwrap_err();
        let msg = format!("{e:#}");
        assert!(msg.contains("alert \"later\" is not known"), "{msg}");
        assert!(
            msg.contains("immediate") && msg.contains("on-close"),
            "{msg}"
        );
    }

    #[test]
    fn shipped_defaults() {
        let all = super::super::load(None, crate::engine::kinds::compile).unwrap();
        let immediate: Vec<&str> = all
            .iter()
            .filter(|d| d.alert == Some(AlertWhen::Immediate))
            .map(|d| d.id.as_str())
            .collect();
        assert_eq!(
            immediate,
            [
                "terminated-account",
                "bulk-export",
                "export-then-copy",
                "removable-bulk-copy"
            ]
        );
        // Everything else closes first; no shipped detector leaves it to the level.
        for d in &all {
            assert!(d.alert.is_some(), "{} sets `alert`", d.id);
            if d.severity == crate::alert::Severity::Critical {
                assert!(d.alerts_at_once(false), "{}", d.id);
            }
        }
    }
}
