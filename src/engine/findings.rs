//! Open findings: evidence gathered for one user and one detector until it goes quiet,
//! then written as one alert. This is what keeps the alert count low: ten charts of
//! relatives opened in one evening are one alert naming ten patients, not ten alerts.

use crate::alert::{alert_id, Alert};
use crate::detect::{template, Detector};
use crate::enrich::Enriched;
use crate::event::Action;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Most patients one alert lists; the count in the summary stays exact.
const MAX_PATIENTS: usize = 500;

/// What a detector hands over when an event is evidence.
#[derive(Debug, Default)]
pub struct Context {
    /// Template values (see `detect::template::NAMES`).
    pub values: BTreeMap<&'static str, String>,
    /// Patients this evidence adds: (comparison key, display spelling).
    pub patients: Vec<(String, String)>,
    /// Stateful detectors: evidence events so far in the window (else +1 per event).
    pub events: Option<u64>,
    /// Stateful detectors: when the window's evidence began (epoch milliseconds).
    pub first_seen: Option<i64>,
    /// Only extend an open finding; never open a new one (a stateful detector that has
    /// already alerted in this window).
    pub extend_only: bool,
    /// Raise the alert to critical (a sequence moving many records).
    pub critical: bool,
}

impl Context {
    /// The context of one event: who, what, and the care situation.
    pub fn for_event(e: &Enriched) -> Context {
        let mut c = Context::default();
        c.describe(e);
        if let (Some(k), Some(d)) = (&e.patient_key, e.patient_display()) {
            c.patients.push((k.clone(), d.to_string()));
        }
        c
    }

    /// Fills the values every template may use from one event.
    pub fn describe(&mut self, e: &Enriched) {
        let v = &mut self.values;
        v.insert("user", e.user_display().to_string());
        if let Some(s) = e.staff {
            if let Some(r) = &s.role {
                v.insert("role", r.clone());
            }
            if let Some(d) = &s.department {
                v.insert("department", d.clone());
            }
        }
        v.insert("action", verb(e.event.action).to_string());
        v.insert("records", e.event.records.to_string());
        if let Some(c) = care_sentence(e) {
            v.insert("care", c);
        }
        if let Some(d) = e.patient.and_then(|p| p.deceased_date) {
            let days = (e.local_day - d).num_days();
            if days >= 0 {
                v.insert("days_since_death", days.to_string());
            }
        }
        if let Some(t) = e.staff.and_then(|s| s.termination_date) {
            let days = (e.local_day - t).num_days();
            if days >= 0 {
                v.insert("days_since_termination", days.to_string());
            }
        }
    }
}

fn verb(a: Action) -> &'static str {
    match a {
        Action::View => "opened",
        Action::Search => "searched for",
        Action::Create => "created an entry in",
        Action::Update => "changed",
        Action::Delete => "deleted from",
        Action::Export => "exported",
        Action::Print => "printed",
        Action::BreakGlass => "broke the glass to open",
        Action::Login => "logged in to",
        Action::Logout => "logged out of",
        Action::FileWrite => "wrote a file to",
        Action::FileDelete => "deleted a file from",
        Action::FileMove => "moved a file to",
    }
}

/// "no care relationship in Cardiology at the time; the last care episode ended 12 days
/// earlier". Never names the patient.
fn care_sentence(e: &Enriched) -> Option<String> {
    e.patient_key.as_ref()?;
    if !e.care_loaded {
        return Some("care relationships are not loaded, so none could explain it".into());
    }
    let care = e.care.unwrap_or_default();
    if care.by_department || care.by_user {
        return Some(match e.staff.and_then(|s| s.department.as_deref()) {
            Some(d) if care.by_department => {
                format!("the patient was under the care of {d} at the time")
            }
            _ => "the user was named on the patient's care team at the time".into(),
        });
    }
    let mut s = match e.staff.and_then(|s| s.department.as_deref()) {
        Some(d) => format!("no care relationship in {d} or naming the user at the time"),
        None => "no care relationship naming the user at the time".into(),
    };
    if care.any_department {
        s.push_str(" (the patient was under another department's care)");
    } else if let Some(secs) = care.since_last_end {
        let days = secs / 86_400;
        if days == 0 {
            s.push_str(&format!(
                "; the patient's last care episode ended {} hours earlier",
                secs / 3600
            ));
        } else {
            s.push_str(&format!(
                "; the patient's last care episode ended {days} days earlier"
            ));
        }
    } else {
        s.push_str("; the patient has no care episode on record");
    }
    Some(s)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Finding {
    pub detector: String,
    pub user_key: String,
    pub window: NaiveDate,
    /// Milliseconds since the epoch.
    pub first: i64,
    pub last: i64,
    pub patients: BTreeMap<String, String>,
    pub events: u64,
    pub values: BTreeMap<String, String>,
    #[serde(default)]
    pub critical: bool,
}

/// Open findings and the ids of alerts already written.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Findings {
    /// key: "user\u{1f}detector".
    open: FxHashMap<String, Finding>,
    /// Alert ids written, with the window day, so a restart does not write one twice.
    emitted: FxHashMap<String, NaiveDate>,
    /// Last event time a full sweep for quiet findings ran at (once a minute).
    swept_at: i64,
    /// The earliest event time (ms) at which an open finding may have gone quiet; a sweep
    /// runs as soon as events pass it, so an alert is written when its gap is up, not up
    /// to a minute later. It may be early (a finding extended since): the sweep that finds
    /// nothing recomputes it. `None` (a snapshot from before it existed): minute sweeps.
    #[serde(default)]
    next_due: Option<i64>,
    /// Event time of the last sweep that `next_due` triggered.
    #[serde(default)]
    due_swept_at: i64,
    /// Window of the last alert per "user\u{1f}detector", for `suppress_days`.
    #[serde(default)]
    last_alert: FxHashMap<String, NaiveDate>,
}

impl Findings {
    pub fn approx_bytes(&self) -> usize {
        self.open.len() * 512 + self.emitted.len() * 48
    }

    /// Records an id written before a restart. Its window is unknown, so it is kept as
    /// if from today's window of the epoch: pruned with the oldest.
    pub fn mark_emitted(&mut self, id: &str) {
        self.emitted.entry(id.to_string()).or_insert(NaiveDate::MIN);
    }

    pub fn was_emitted(&self, id: &str) -> bool {
        self.emitted.contains_key(id)
    }

    /// Adds evidence; closes (writes) the open finding first if it is from another
    /// window or has been quiet longer than the detector's gap.
    pub fn update(
        &mut self,
        d: &Detector,
        e: &Enriched,
        ctx: Context,
        all: &[Detector],
        out: &mut Vec<Alert>,
    ) {
        let key = format!("{}\u{1f}{}", e.user_key, d.id);
        let ts = e.event.ts.timestamp_millis();
        if let Some(f) = self.open.get(&key) {
            if f.window != e.local_day || ts - f.last > d.gap_secs * 1000 {
                let f = self.open.remove(&key).expect("present");
                self.close(f, all, out);
            }
        }
        if ctx.extend_only && !self.open.contains_key(&key) {
            return;
        }
        if d.suppress_days > 0 && !self.open.contains_key(&key) {
            if let Some(last) = self.last_alert.get(&key) {
                if (e.local_day - *last).num_days() < d.suppress_days as i64 {
                    return;
                }
            }
        }
        let f = self.open.entry(key).or_insert_with(|| Finding {
            detector: d.id.clone(),
            user_key: e.user_key.clone(),
            window: e.local_day,
            first: ctx.first_seen.unwrap_or(ts),
            last: ts,
            patients: BTreeMap::new(),
            events: 0,
            values: BTreeMap::new(),
            critical: false,
        });
        f.critical |= ctx.critical;
        f.last = ts;
        let due = ts + d.gap_secs * 1000;
        self.next_due = Some(self.next_due.map_or(due, |n| n.min(due)));
        if let Some(fs) = ctx.first_seen {
            f.first = f.first.min(fs);
        }
        f.events = match ctx.events {
            Some(n) => n.max(f.events),
            None => f.events + 1,
        };
        for (k, v) in ctx.patients {
            if f.patients.len() < MAX_PATIENTS || f.patients.contains_key(&k) {
                f.patients.insert(k, v);
            }
        }
        for (k, v) in ctx.values {
            f.values.insert(k.to_string(), v);
        }
    }

    /// Writes findings that have been quiet longer than their detector's gap.
    pub fn close_quiet(&mut self, now: DateTime<Utc>, all: &[Detector], out: &mut Vec<Alert>) {
        let now = now.timestamp_millis();
        // At most one due sweep per second of event time: a finding extended again and
        // again must not make every event scan the open findings.
        let due = self.next_due.is_some_and(|d| now > d) && now - self.due_swept_at >= 1000;
        let periodic = now - self.swept_at >= 60_000;
        if !due && !periodic {
            return;
        }
        if due {
            self.due_swept_at = now;
        }
        let gap = |id: &str| all.iter().find(|d| d.id == id).map_or(1800, |d| d.gap_secs);
        let mut quiet: Vec<String> = self
            .open
            .iter()
            .filter(|(_, f)| now - f.last > gap(&f.detector) * 1000)
            .map(|(k, _)| k.clone())
            .collect();
        quiet.sort();
        for k in quiet {
            let f = self.open.remove(&k).expect("present");
            self.close(f, all, out);
        }
        self.next_due = self
            .open
            .values()
            .map(|f| f.last + gap(&f.detector) * 1000)
            .min();
        if !periodic {
            return;
        }
        self.swept_at = now;
        // Forget ids of alerts older than any window that could still produce them.
        if self.emitted.len() > 10_000 {
            let cutoff = Utc
                .timestamp_millis_opt(now)
                .single()
                .map(|t| t.date_naive() - chrono::Duration::days(40));
            if let Some(c) = cutoff {
                self.emitted.retain(|_, d| *d >= c);
            }
        }
    }

    /// Writes every open finding (end of input, shutdown).
    pub fn close_all(&mut self, all: &[Detector], out: &mut Vec<Alert>) {
        let mut keys: Vec<String> = self.open.keys().cloned().collect();
        keys.sort();
        for k in keys {
            let f = self.open.remove(&k).expect("present");
            self.close(f, all, out);
        }
    }

    fn close(&mut self, f: Finding, all: &[Detector], out: &mut Vec<Alert>) {
        let Some(d) = all.iter().find(|d| d.id == f.detector) else {
            return; // the detector was removed by a reload
        };
        let keys: Vec<String> = f.patients.keys().cloned().collect();
        let id = alert_id(&d.id, &f.user_key, &f.window.to_string(), &keys);
        if self.emitted.contains_key(&id) {
            return;
        }
        self.emitted.insert(id.clone(), f.window);
        if d.suppress_days > 0 {
            self.last_alert
                .insert(format!("{}\u{1f}{}", f.user_key, d.id), f.window);
        }
        let n = f.patients.len();
        let lookup = |name: &str| -> Option<String> {
            match name {
                "patients" => Some(n.to_string()),
                "patient_word" => Some(if n == 1 { "patient" } else { "patients" }.to_string()),
                "events" => Some(f.events.to_string()),
                other => f.values.get(other).cloned(),
            }
        };
        let summary = template::render(&d.summary, lookup).unwrap_or_else(|| {
            format!(
                "{}: {}",
                d.title,
                f.values.get("user").cloned().unwrap_or_default()
            )
        });
        let reasons: Vec<String> = d
            .reasons
            .iter()
            .filter_map(|t| template::render(t, lookup))
            .collect();
        let ts = |ms: i64| Utc.timestamp_millis_opt(ms).single().unwrap_or_default();
        out.push(Alert {
            id,
            ts: ts(f.last),
            detector: d.id.clone(),
            severity: if f.critical {
                crate::alert::Severity::Critical
            } else {
                d.severity
            },
            score: if f.critical { d.score.max(90) } else { d.score },
            user: f
                .values
                .get("user")
                .cloned()
                .unwrap_or_else(|| f.user_key.clone()),
            patients: f.patients.into_values().collect(),
            summary,
            reasons,
            first_seen: ts(f.first),
            last_seen: ts(f.last),
            events: f.events,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;
    use crate::reference::Reference;

    /// A finding is written as soon as events pass its gap, not at the next minute sweep.
    #[test]
    fn an_alert_is_written_when_its_gap_is_up() {
        let all = crate::detect::load(None).unwrap();
        let d = all.iter().find(|d| d.id == "vip-without-care").unwrap();
        let reference = Reference::default();
        let t0: DateTime<Utc> = "2026-03-03T16:00:00Z".parse().unwrap();
        let mut ev = Event::new(t0, "u1", Action::View);
        ev.patient = Some("p1".into());
        let e = Enriched::new(&ev, &reference, chrono_tz::UTC);
        let mut f = Findings::default();
        let mut out = Vec::new();
        f.update(d, &e, Context::for_event(&e), &all, &mut out);
        let gap = chrono::Duration::seconds(d.gap_secs);
        // A minute sweep runs just before the gap is up ...
        f.close_quiet(t0 + gap - chrono::Duration::seconds(10), &all, &mut out);
        assert!(out.is_empty());
        // ... and the next event after it, 12 s later, writes the alert.
        f.close_quiet(t0 + gap + chrono::Duration::seconds(2), &all, &mut out);
        assert_eq!(out.len(), 1, "written once the gap was up");
        assert_eq!(out[0].user, "u1");
        assert!(f.next_due.is_none(), "nothing left open");
    }
}
