//! Repeat offenders: one user's alerts over a rolling 30 days are one case.
//!
//! A privacy officer works people, not alerts: the third finding about the same account
//! in a month matters more than a first. Every alert the engine writes gets the user's
//! case id, the number of findings in the case so far, and the user's risk, a sum of
//! detector scores that halves every [`HALF_LIFE_DAYS`]. The second and later findings of
//! a case are raised one severity step.
//!
//! A finding joins its case when it **opens** (its first evidence), not when its alert is
//! written: events are applied in one total order in `replay`, `run`, after a restart and
//! through Kafka, but findings close at different moments in each (a quiet log closes on
//! the idle clock), so only the opening order gives every mode the same case fields. A
//! follow-up alert carries its finding's case unchanged.

use crate::alert::{Alert, Severity};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A case stays open while the user's alerts come less than this apart.
pub const CASE_DAYS: i64 = 30;
/// Days for a user's risk to halve.
pub const HALF_LIFE_DAYS: f64 = 14.0;

const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UserCase {
    pub id: String,
    /// Event time (ms) of the case's latest alert.
    pub last_ms: i64,
    pub alerts: u32,
    /// Decayed risk as of `last_ms`.
    pub risk: f64,
}

/// A finding's place in its user's case, fixed when the finding opened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseMark {
    pub id: String,
    /// Findings in the case up to and including this one.
    pub alerts: u32,
    /// The user's risk right after this finding opened.
    pub risk: u32,
}

impl CaseMark {
    /// Fills the alert's case fields; raises a later finding's alert one step.
    pub fn apply(&self, alert: &mut Alert) {
        alert.case = Some(self.id.clone());
        alert.case_alerts = Some(self.alerts);
        alert.risk = Some(self.risk);
        if self.alerts > 1 {
            alert.severity = raise(alert.severity);
            alert.reasons.push(format!(
                "alert {} in 30 days about this user (case {})",
                self.alerts, self.id
            ));
        }
    }
}

/// The open case per user key.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Cases(FxHashMap<String, UserCase>);

/// The case id of a case opened by alert `first_alert` of user `user_key`.
pub fn case_id(user_key: &str, first_alert: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"case\0");
    h.update(user_key.as_bytes());
    h.update([0u8]);
    h.update(first_alert.as_bytes());
    format!("case-{}", hex::encode(&h.finalize()[..8]))
}

/// One step up, critical stays critical.
pub fn raise(s: Severity) -> Severity {
    match s {
        Severity::Low => Severity::Medium,
        Severity::Medium => Severity::High,
        Severity::High | Severity::Critical => Severity::Critical,
    }
}

fn decayed(risk: f64, from_ms: i64, to_ms: i64) -> f64 {
    let days = (to_ms - from_ms).max(0) as f64 / DAY_MS as f64;
    risk * 0.5f64.powf(days / HALF_LIFE_DAYS)
}

impl Cases {
    /// A finding of `detector` (scoring `score`) opens for `user_key` with its first
    /// evidence at `first_ms`: its place in the user's case.
    pub fn open(&mut self, user_key: &str, detector: &str, first_ms: i64, score: u8) -> CaseMark {
        let c = self.0.entry(user_key.to_string()).or_default();
        if c.alerts == 0 || first_ms - c.last_ms >= CASE_DAYS * DAY_MS {
            *c = UserCase {
                id: case_id(user_key, &format!("{detector}\u{1f}{first_ms}")),
                last_ms: first_ms,
                alerts: 0,
                risk: 0.0,
            };
        }
        c.risk = decayed(c.risk, c.last_ms, first_ms) + score as f64;
        c.alerts += 1;
        c.last_ms = c.last_ms.max(first_ms);
        CaseMark {
            id: c.id.clone(),
            alerts: c.alerts,
            risk: c.risk.round().min(u32::MAX as f64) as u32,
        }
    }

    /// Files a written `alert` (of user `user_key`) into the user's case and fills its
    /// case fields, in the order alerts are given: for alert files written without case
    /// fields (`phiwatch cases` on them).
    pub fn file(&mut self, user_key: &str, alert: &mut Alert) {
        let now = alert.ts.timestamp_millis();
        let follow_up = alert.follows.is_some();
        let c = self.0.entry(user_key.to_string()).or_default();
        let open = c.alerts > 0 && now - c.last_ms < CASE_DAYS * DAY_MS;
        if !open && !follow_up {
            *c = UserCase {
                id: case_id(user_key, &alert.id),
                last_ms: now,
                alerts: 0,
                risk: 0.0,
            };
        }
        if c.id.is_empty() {
            // A follow-up whose first alert came before this engine kept cases.
            c.id = case_id(user_key, alert.follows.as_deref().unwrap_or(&alert.id));
        }
        let risk = decayed(c.risk, c.last_ms, now);
        if follow_up {
            c.alerts = c.alerts.max(1);
            c.risk = risk.max(alert.score as f64);
        } else {
            c.alerts += 1;
            c.risk = risk + alert.score as f64;
            if c.alerts > 1 {
                alert.severity = raise(alert.severity);
                alert.reasons.push(format!(
                    "alert {} in 30 days about this user (case {})",
                    c.alerts, c.id
                ));
            }
        }
        c.last_ms = c.last_ms.max(now);
        alert.case = Some(c.id.clone());
        alert.case_alerts = Some(c.alerts);
        alert.risk = Some(c.risk.round().min(u32::MAX as f64) as u32);
    }

    /// Forgets cases whose last alert is more than [`CASE_DAYS`] before `now_ms`.
    pub fn expire(&mut self, now_ms: i64) {
        self.0
            .retain(|_, c| now_ms - c.last_ms < CASE_DAYS * DAY_MS);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One case as `phiwatch cases` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaseSummary {
    pub case: String,
    pub user: String,
    pub alerts: usize,
    pub worst: Severity,
    /// The highest risk the user reached in the case.
    pub risk: u32,
    #[serde(with = "crate::event::rfc3339")]
    pub first: chrono::DateTime<chrono::Utc>,
    #[serde(with = "crate::event::rfc3339")]
    pub last: chrono::DateTime<chrono::Utc>,
    /// Detectors of the case's alerts, sorted.
    pub detectors: Vec<String>,
}

/// The cases still open at the end of an alert file (last alert less than 30 days before
/// the file's newest), worst first: highest severity, then risk, then most alerts.
/// Alerts written before cases existed are filed here the way the engine would.
pub fn open_cases(alerts: &[Alert]) -> Vec<CaseSummary> {
    let mut sorted: Vec<Alert> = alerts.to_vec();
    sorted.sort_by(|a, b| a.ts.cmp(&b.ts).then_with(|| a.id.cmp(&b.id)));
    let mut filed = Cases::default();
    for a in sorted.iter_mut().filter(|a| a.case.is_none()) {
        filed.file(&crate::event::key(&a.user), a);
    }
    let Some(newest) = sorted.iter().map(|a| a.ts).max() else {
        return Vec::new();
    };
    let mut by_case: std::collections::BTreeMap<String, CaseSummary> = Default::default();
    for a in &sorted {
        let id = a.case.clone().unwrap_or_default();
        let c = by_case.entry(id.clone()).or_insert_with(|| CaseSummary {
            case: id,
            user: a.user.clone(),
            alerts: 0,
            worst: a.severity,
            risk: 0,
            first: a.ts,
            last: a.ts,
            detectors: Vec::new(),
        });
        c.alerts += usize::from(a.follows.is_none());
        c.worst = c.worst.max(a.severity);
        // The engine files alerts as it writes them, not quite in time order (a finding
        // closes after its last evidence): the case's risk is the highest it reached.
        c.risk = c.risk.max(a.risk.unwrap_or(0));
        c.first = c.first.min(a.ts);
        c.last = c.last.max(a.ts);
        if !c.detectors.contains(&a.detector) {
            c.detectors.push(a.detector.clone());
        }
    }
    let mut out: Vec<CaseSummary> = by_case
        .into_values()
        .filter(|c| (newest - c.last).num_days() < CASE_DAYS)
        .map(|mut c| {
            c.detectors.sort();
            c.alerts = c.alerts.max(1);
            c
        })
        .collect();
    out.sort_by(|a, b| {
        b.worst
            .cmp(&a.worst)
            .then_with(|| b.risk.cmp(&a.risk))
            .then_with(|| b.alerts.cmp(&a.alerts))
            .then_with(|| a.case.cmp(&b.case))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Duration, Utc};

    fn alert(id: &str, ts: DateTime<Utc>, sev: Severity, score: u8) -> Alert {
        Alert {
            id: id.into(),
            ts,
            detector: "vip-without-care".into(),
            severity: sev,
            score,
            user: "u1".into(),
            patients: vec![],
            summary: String::new(),
            reasons: vec![],
            first_seen: ts,
            last_seen: ts,
            events: 1,
            follows: None,
            case: None,
            case_alerts: None,
            risk: None,
        }
    }

    #[test]
    fn alerts_within_30_days_are_one_case_and_later_ones_are_raised() {
        let t0: DateTime<Utc> = "2026-03-10T10:00:00Z".parse().unwrap();
        let mut cases = Cases::default();
        let mut a = alert("pw-a", t0, Severity::Medium, 60);
        cases.file("u1", &mut a);
        assert_eq!(a.case_alerts, Some(1));
        assert_eq!(a.severity, Severity::Medium);
        assert_eq!(a.risk, Some(60));
        let mut b = alert("pw-b", t0 + Duration::days(14), Severity::High, 80);
        cases.file("u1", &mut b);
        assert_eq!(b.case, a.case);
        assert_eq!(b.case_alerts, Some(2));
        assert_eq!(b.severity, Severity::Critical);
        // 60 halved over 14 days, plus 80.
        assert_eq!(b.risk, Some(110));
        assert!(b.reasons.iter().any(|r| r.contains("alert 2 in 30 days")));
        // A follow-up of b neither counts nor raises.
        let mut f = alert("pw-f", t0 + Duration::days(14), Severity::High, 80);
        f.follows = Some("pw-b".into());
        cases.file("u1", &mut f);
        assert_eq!((f.case_alerts, f.severity), (Some(2), Severity::High));
        // Forty quiet days later: a new case.
        let mut c = alert("pw-c", t0 + Duration::days(55), Severity::Medium, 60);
        cases.file("u1", &mut c);
        assert_ne!(c.case, a.case);
        assert_eq!(c.case_alerts, Some(1));
        // Another user has their own case.
        let mut o = alert("pw-o", t0, Severity::Low, 10);
        cases.file("u2", &mut o);
        assert_ne!(o.case, a.case);
        cases.expire((t0 + Duration::days(70)).timestamp_millis());
        assert_eq!(cases.len(), 1);
    }

    #[test]
    fn findings_join_their_case_when_they_open() {
        let t0: DateTime<Utc> = "2026-03-10T10:00:00Z".parse().unwrap();
        let ms = |d: i64| (t0 + Duration::days(d)).timestamp_millis();
        let mut cases = Cases::default();
        let first = cases.open("u1", "neighbour", ms(0), 60);
        let second = cases.open("u1", "search-burst", ms(14), 80);
        assert_eq!((first.alerts, second.alerts), (1, 2));
        assert_eq!(first.id, second.id);
        assert_eq!(second.risk, 110);
        // The same openings give the same case, whatever order alerts are written in.
        let mut again = Cases::default();
        assert_eq!(again.open("u1", "neighbour", ms(0), 60), first);
        let mut a = alert("pw-b", t0, Severity::Medium, 80);
        second.apply(&mut a);
        assert_eq!(a.severity, Severity::High);
        assert_eq!(a.case_alerts, Some(2));
        let later = cases.open("u1", "family", ms(50), 80);
        assert_ne!(later.id, first.id);
        assert_eq!(later.alerts, 1);
    }

    #[test]
    fn open_cases_worst_first() {
        let t0: DateTime<Utc> = "2026-03-10T10:00:00Z".parse().unwrap();
        let mut a1 = alert("pw-1", t0, Severity::Medium, 60);
        a1.user = "u1".into();
        let mut a2 = alert("pw-2", t0 + Duration::days(2), Severity::Medium, 60);
        a2.user = "U1".into();
        let mut b = alert("pw-3", t0 + Duration::days(3), Severity::High, 80);
        b.user = "u2".into();
        // An old case, closed by the end of the file.
        let mut old = alert("pw-0", t0 - Duration::days(60), Severity::Critical, 90);
        old.user = "u3".into();
        let cases = open_cases(&[b, a2, a1, old]);
        assert_eq!(cases.len(), 2);
        // u1's second alert is raised to high, and u1's risk (about 110) beats u2's 80.
        assert_eq!(cases[0].user.to_lowercase(), "u1");
        assert_eq!((cases[0].alerts, cases[0].worst), (2, Severity::High));
        assert_eq!(cases[1].user, "u2");
    }
}
