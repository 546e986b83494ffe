//! Open findings: evidence gathered for one user and one detector until it goes quiet,
//! then written as one alert. This is what keeps the alert count low: ten charts of
//! relatives opened in one evening are one alert naming ten patients, not ten alerts.
//!
//! A detector that alerts at once (`alert: immediate`, a critical level, or a finding
//! raised to critical; see [`Detector::alerts_at_once`]) writes its alert on the
//! finding's first evidence instead, and remembers it in the finding ([`Sent`]). The
//! finding stays open and keeps gathering; when it closes, one follow-up alert naming the
//! first in `follows` describes the whole finding, only if something is new since the
//! first (more events, more patients, or raised to critical).
//!
//! Detectors that name the same `episode` (the search-rate horizons: ten minutes, an
//! hour, a shift) write one alert per user for one episode ([`Episode`]): the first to
//! fire holds the finding; another whose window overlaps it the same day adds a reason
//! to it instead of an alert of its own, or, once that alert is written, was alerted on
//! already. The episode is part of the snapshotted state and follows event time only.

use crate::alert::{alert_id, follow_up_id, Alert};
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
            c.patients.push((k.to_string(), d.to_string()));
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
        if let Some(d) = e.patient.and_then(|p| p.deceased_date()) {
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
    if care.encounter_department || care.encounter_user {
        return Some(match e.staff.and_then(|s| s.department.as_deref()) {
            Some(d) if care.encounter_department => format!(
                "{d} cared for the patient during the same stay, though not at this hour"
            ),
            _ => "the user was on the patient's care team during the same stay, though not at this hour".into(),
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
        if !e.within_peer_horizon() {
            if let Some(h) = e.peer_after_stay_days {
                s.push_str(&format!(
                    ", later than the user's peers usually work on a chart after a stay (within {h} days)"
                ));
            }
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
    /// The alert already written at once for this finding, if one was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent: Option<Sent>,
    /// The finding's place in its user's case, fixed when it opened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case: Option<super::cases::CaseMark>,
    /// How many findings of this user and detector opened earlier in the same window:
    /// the second episode of a day gets an alert id of its own instead of the first's
    /// (which would make it look already written).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub nth: u32,
    /// Other detectors of the same episode group whose evidence joined this finding
    /// instead of opening their own (a fast burst is also over the hour's and the
    /// shift's usual): their template values, by detector id, for a reason each.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub also: BTreeMap<String, BTreeMap<String, String>>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Finding {
    /// The window part of the finding's alert id: the day, and for the second and later
    /// findings of a user and detector that day, their place (the first keeps the plain
    /// day, so ids written before this existed stay the same).
    fn id_window(&self) -> String {
        if self.nth == 0 {
            self.window.to_string()
        } else {
            format!("{}#{}", self.window, self.nth)
        }
    }
}

/// A user's latest episode in one episode group (detectors sharing `episode:`, such as
/// the search-rate horizons): the detector whose finding holds its alert, its day, and
/// the time of its last evidence while that finding was open.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Episode {
    host: String,
    window: NaiveDate,
    last: i64,
}

/// An alert written on a finding's first evidence, and how much it showed, so that the
/// finding's close knows whether anything is new.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    pub id: String,
    pub events: u64,
    pub patients: usize,
    pub critical: bool,
}

impl Sent {
    /// What the finding holds beyond this alert, in plain words; `None` when nothing.
    fn news(&self, f: &Finding) -> Option<String> {
        let mut parts = Vec::new();
        let more =
            |n: u64, one: &str, many: &str| format!("{n} more {}", if n == 1 { one } else { many });
        if f.events > self.events {
            parts.push(more(f.events - self.events, "event", "events"));
        }
        if f.patients.len() > self.patients {
            let n = (f.patients.len() - self.patients) as u64;
            parts.push(more(n, "patient", "patients"));
        }
        if f.critical && !self.critical {
            parts.push("raised to critical".to_string());
        }
        (!parts.is_empty()).then(|| parts.join(", "))
    }
}

/// Open findings and the ids of alerts already written.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
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
    /// Each user's open case (repeat offenders).
    #[serde(default)]
    cases: super::cases::Cases,
    /// Per "user\u{1f}detector": the window of its last finding and that finding's `nth`.
    #[serde(default)]
    opened: FxHashMap<String, (NaiveDate, u32)>,
    /// Per "user\u{1f}episode group": the user's latest episode in it.
    #[serde(default, skip_serializing_if = "FxHashMap::is_empty")]
    episodes: FxHashMap<String, Episode>,
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

    /// Records an alert written ahead of its finding (see `Engine::push`), with its
    /// window, so the finding does not write it again when its evidence is applied.
    pub fn mark_emitted_in(&mut self, id: &str, window: NaiveDate) {
        self.emitted.insert(id.to_string(), window);
    }

    /// The id of the alert the open finding of `user_key` and `detector` sent at once.
    pub fn sent_id(&self, user_key: &str, detector: &str) -> Option<&str> {
        self.open
            .get(&format!("{user_key}\u{1f}{detector}"))
            .and_then(|f| f.sent.as_ref())
            .map(|s| s.id.as_str())
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
        if let Some(g) = &d.episode {
            if !self.open.contains_key(&key) && self.join_episode(d, g, e, &ctx, ts) {
                return;
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
        let case = (!self.open.contains_key(&key)).then(|| {
            self.cases
                .open(&e.user_key, &d.id, ctx.first_seen.unwrap_or(ts), d.score)
        });
        let mut nth = 0;
        let opens = !self.open.contains_key(&key);
        if opens {
            if let Some((w, n)) = self.opened.get(&key) {
                if *w == e.local_day {
                    nth = n + 1;
                }
            }
            self.opened.insert(key.clone(), (e.local_day, nth));
        }
        let f = self.open.entry(key.clone()).or_insert_with(|| Finding {
            detector: d.id.clone(),
            user_key: e.user_key.to_string(),
            window: e.local_day,
            first: ctx.first_seen.unwrap_or(ts),
            last: ts,
            patients: BTreeMap::new(),
            events: 0,
            values: BTreeMap::new(),
            critical: false,
            sent: None,
            case,
            nth,
            also: BTreeMap::new(),
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
        let at_once = f.sent.is_none() && d.alerts_at_once(f.critical);
        if let Some(g) = &d.episode {
            let ek = format!("{}\u{1f}{g}", e.user_key);
            match self.episodes.get_mut(&ek) {
                Some(ep) if ep.host == d.id && ep.window == e.local_day => {
                    ep.last = ep.last.max(ts)
                }
                _ if opens => {
                    let ep = Episode {
                        host: d.id.clone(),
                        window: e.local_day,
                        last: ts,
                    };
                    self.episodes.insert(ek, ep);
                }
                _ => {}
            }
        }
        if at_once {
            self.alert_at_once(d, &key, all, out);
        }
    }

    /// Evidence of `d` (in episode group `g`) that would open a finding, taken into the
    /// user's episode in the group instead when it covers the same searches: the same
    /// day, and the evidence's window (`first_seen`) starting no later than the
    /// episode's last evidence. While the episode's finding is open the evidence joins
    /// it (its values kept for a reason of their own, its patients added); once that
    /// finding is written, the overlapping evidence was alerted on and is dropped. Later
    /// evidence of a detector that joined keeps its values up to date. True when taken.
    fn join_episode(
        &mut self,
        d: &Detector,
        g: &str,
        e: &Enriched,
        ctx: &Context,
        ts: i64,
    ) -> bool {
        let Some(ep) = self.episodes.get_mut(&format!("{}\u{1f}{g}", e.user_key)) else {
            return false;
        };
        if ep.window != e.local_day || ep.host == d.id {
            return false;
        }
        let host_key = format!("{}\u{1f}{}", e.user_key, ep.host);
        let host = self.open.get_mut(&host_key);
        let covered = if ctx.extend_only {
            host.as_ref().is_some_and(|h| h.also.contains_key(&d.id))
        } else {
            ctx.first_seen.unwrap_or(ts) <= ep.last
        };
        if !covered {
            return false;
        }
        if let Some(h) = host {
            ep.last = ep.last.max(ts);
            let values = h.also.entry(d.id.clone()).or_default();
            for (k, v) in &ctx.values {
                values.insert(k.to_string(), v.clone());
            }
            for (k, v) in &ctx.patients {
                if h.patients.len() < MAX_PATIENTS || h.patients.contains_key(k) {
                    h.patients.insert(k.clone(), v.clone());
                }
            }
        }
        true
    }

    /// Writes the open finding `key`'s alert now, on its first evidence, and remembers it
    /// in the finding. An id already written (a restart replaying events it had already
    /// alerted on) is remembered but not written again.
    fn alert_at_once(&mut self, d: &Detector, key: &str, all: &[Detector], out: &mut Vec<Alert>) {
        let Some(f) = self.open.get_mut(key) else {
            return;
        };
        let keys: Vec<String> = f.patients.keys().cloned().collect();
        let id = alert_id(&d.id, &f.user_key, &f.id_window(), &keys);
        f.sent = Some(Sent {
            id: id.clone(),
            events: f.events,
            patients: f.patients.len(),
            critical: f.critical,
        });
        if d.suppress_days > 0 {
            self.last_alert.insert(key.to_string(), f.window);
        }
        if self.emitted.contains_key(&id) {
            return;
        }
        self.emitted.insert(id.clone(), f.window);
        out.push(render(d, f, all, id, None));
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
        if self.cases.len() > 10_000 {
            self.cases.expire(now);
        }
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
        if self.opened.len() > 10_000 {
            let today = Utc
                .timestamp_millis_opt(now)
                .single()
                .map(|t| t.date_naive() - chrono::Duration::days(1));
            if let Some(c) = today {
                self.opened.retain(|_, (w, _)| *w >= c);
            }
        }
        if self.episodes.len() > 10_000 {
            let today = Utc
                .timestamp_millis_opt(now)
                .single()
                .map(|t| t.date_naive() - chrono::Duration::days(1));
            if let Some(c) = today {
                self.episodes.retain(|_, ep| ep.window >= c);
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
        let (id, follows) = match &f.sent {
            None => {
                let keys: Vec<String> = f.patients.keys().cloned().collect();
                let id = alert_id(&d.id, &f.user_key, &f.id_window(), &keys);
                (id, None)
            }
            // Written at once: one follow-up, only if the finding grew since.
            Some(sent) => match sent.news(&f) {
                Some(news) => (follow_up_id(&sent.id), Some((sent.id.clone(), news))),
                None => return,
            },
        };
        if self.emitted.contains_key(&id) {
            return;
        }
        self.emitted.insert(id.clone(), f.window);
        if d.suppress_days > 0 {
            self.last_alert
                .insert(format!("{}\u{1f}{}", f.user_key, d.id), f.window);
        }
        out.push(render(d, &f, all, id, follows));
    }
}

/// The alert of a finding as it stands: summary and reasons from the detector's
/// templates. A follow-up (`follows`: the first alert's id, and what is new since) ends
/// its reasons with a sentence naming the first alert.
fn render(
    d: &Detector,
    f: &Finding,
    all: &[Detector],
    id: String,
    follows: Option<(String, String)>,
) -> Alert {
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
    let mut reasons: Vec<String> = d
        .reasons
        .iter()
        .filter_map(|t| template::render(t, lookup))
        .collect();
    for (other, values) in &f.also {
        let Some(o) = all.iter().find(|o| o.id == *other) else {
            continue;
        };
        let parts: Vec<String> = o
            .reasons
            .iter()
            .filter_map(|t| template::render(t, |name| values.get(name).cloned()))
            .collect();
        if !parts.is_empty() {
            reasons.push(format!(
                "also {}: {}",
                lower_first(&o.title),
                parts.join("; ")
            ));
        }
    }
    if let Some((first, news)) = &follows {
        reasons.push(format!(
            "this follows alert {first}, written at the first evidence; since then: {news}"
        ));
    }
    let ts = |ms: i64| Utc.timestamp_millis_opt(ms).single().unwrap_or_default();
    let mut alert = Alert {
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
        patients: f.patients.values().cloned().collect(),
        summary,
        reasons,
        first_seen: ts(f.first),
        last_seen: ts(f.last),
        events: f.events,
        follows: follows.map(|(first, _)| first),
        case: None,
        case_alerts: None,
        risk: None,
    };
    if let Some(mark) = &f.case {
        mark.apply(&mut alert);
    }
    alert
}

/// "Sustained searching" -> "sustained searching", for a title inside a sentence.
fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
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
        let all = crate::detect::load(None, crate::engine::kinds::compile).unwrap();
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

    fn detector(extra: &str) -> Detector {
        let text = format!(
            "title: Test\nlevel: high\nscore: 70\n{extra}summary: \"{{user}} touched {{patients}} {{patient_word}} in {{events}} events\"\nreasons:\n  - \"{{action}} a chart\"\ndetection:\n  sel:\n    action: export\n  condition: sel\n"
        );
        Detector::compile("urgent", &text, crate::engine::kinds::compile).unwrap()
    }

    /// Feeds one export by u1 of `patient` at `t0 + min` minutes into `f`.
    fn feed(
        f: &mut Findings,
        d: &Detector,
        min: i64,
        patient: &str,
        mut ctx: impl FnMut(&Enriched) -> Context,
        out: &mut Vec<Alert>,
    ) {
        let reference = Reference::default();
        let t0: DateTime<Utc> = "2026-03-03T16:00:00Z".parse().unwrap();
        let t = t0 + chrono::Duration::minutes(min);
        let mut ev = Event::new(t, "u1", Action::Export);
        ev.patient = Some(patient.into());
        let e = Enriched::new(&ev, &reference, chrono_tz::UTC);
        let all = [d.clone()];
        f.close_quiet(t, &all, out);
        f.update(d, &e, ctx(&e), &all, out);
    }

    fn plain(e: &Enriched) -> Context {
        Context::for_event(e)
    }

    /// Detectors of one episode group (two search horizons) write one alert for
    /// overlapping evidence, through a snapshot; another detector is never held back.
    #[test]
    fn one_episode_of_a_group_is_one_alert() {
        let det = |id: &str, extra: &str| {
            let text = format!(
                "title: Test {id}\nlevel: medium\nscore: 55\n{extra}summary: \"{{user}} {id}\"\nreasons:\n  - \"{id} {{value}}\"\ndetection:\n  sel:\n    action: export\n  condition: sel\n"
            );
            Detector::compile(id, &text, crate::engine::kinds::compile).unwrap()
        };
        let all = [
            det("short", "episode: rate\n"),
            det("long", "episode: rate\n"),
            det("other", ""),
        ];
        let reference = Reference::default();
        let t0: DateTime<Utc> = "2026-03-03T16:00:00Z".parse().unwrap();
        // Evidence of detector `i` at `min` minutes whose window began at `from`.
        let feed = |f: &mut Findings, i: usize, min: i64, from: i64, out: &mut Vec<Alert>| {
            let t = t0 + chrono::Duration::minutes(min);
            let mut ev = Event::new(t, "u1", Action::Export);
            ev.patient = Some(format!("p{min}"));
            let e = Enriched::new(&ev, &reference, chrono_tz::UTC);
            let mut ctx = Context::for_event(&e);
            ctx.values.insert("value", format!("{min}"));
            ctx.first_seen = Some((t0 + chrono::Duration::minutes(from)).timestamp_millis());
            f.close_quiet(t, &all, out);
            f.update(&all[i], &e, ctx, &all, out);
        };
        let mut f = Findings::default();
        let mut out = Vec::new();
        feed(&mut f, 0, 0, -5, &mut out);
        let mut f: Findings = serde_json::from_str(&serde_json::to_string(&f).unwrap()).unwrap();
        // The longer horizon counts the same events: it joins the open finding.
        feed(&mut f, 1, 2, -60, &mut out);
        feed(&mut f, 2, 3, 3, &mut out);
        feed(&mut f, 0, 4, -5, &mut out);
        // Written after the gap; the longer horizon, firing again over the same window
        // later, was alerted on; a new burst after the quiet is a new episode.
        feed(&mut f, 1, 100, -60, &mut out);
        feed(&mut f, 0, 200, 195, &mut out);
        f.close_all(&all, &mut out);
        let got: Vec<(&str, usize)> = out
            .iter()
            .map(|a| (a.detector.as_str(), a.patients.len()))
            .collect();
        assert_eq!(got, [("other", 1), ("short", 3), ("short", 1)], "{out:#?}");
        let short = out.iter().find(|a| a.detector == "short").unwrap();
        assert_eq!(short.reasons, ["short 4", "also test long: long 2"]);
    }

    #[test]
    fn an_immediate_detector_alerts_on_its_first_evidence() {
        let d = detector("alert: immediate\n");
        let mut f = Findings::default();
        let mut out = Vec::new();
        feed(&mut f, &d, 0, "p1", plain, &mut out);
        assert_eq!(out.len(), 1, "written at once");
        let a = &out[0];
        assert_eq!(a.id, alert_id("urgent", "u1", "2026-03-03", &["p1".into()]));
        assert_eq!(a.follows, None);
        assert_eq!(a.events, 1);
        assert_eq!(a.patients, ["p1"]);
        assert_eq!(a.summary, "u1 touched 1 patient in 1 events");
        assert!(!a.to_json_line().contains("follows"));
        // The finding is still open, and nothing new came: its close writes nothing.
        assert_eq!(f.open.len(), 1);
        f.close_all(std::slice::from_ref(&d), &mut out);
        assert_eq!(out.len(), 1, "no follow-up without new evidence");
        assert!(f.open.is_empty());
    }

    /// Two episodes of the same user, detector and patient on one day (the second after
    /// the gap) are two alerts: the second gets an id of its own instead of the first's,
    /// which would have made it look written already. The first keeps the plain id, and a
    /// restored snapshot gives the second the same id again.
    #[test]
    fn a_second_episode_the_same_day_is_its_own_alert() {
        let d = detector("");
        let all = [d.clone()];
        let mut f = Findings::default();
        let mut out = Vec::new();
        feed(&mut f, &d, 0, "p1", plain, &mut out);
        let later = d.gap_secs / 60 + 60;
        feed(&mut f, &d, later, "p1", plain, &mut out);
        let snapshot = serde_json::to_string(&f).unwrap();
        f.close_all(&all, &mut out);
        assert_eq!(out.len(), 2, "{out:#?}");
        assert_eq!(
            out[0].id,
            alert_id("urgent", "u1", "2026-03-03", &["p1".into()])
        );
        assert_ne!(out[0].id, out[1].id);
        let mut again: Findings = serde_json::from_str(&snapshot).unwrap();
        let mut out2 = Vec::new();
        again.close_all(&all, &mut out2);
        assert_eq!(out2.len(), 1);
        assert_eq!(out2[0].id, out[1].id);
    }

    #[test]
    fn evidence_that_adds_nothing_gives_no_follow_up() {
        // A stateful detector hands over its own event count: the same 2 events, the
        // same patient, again and again (a second copy of the same export).
        let d = detector("alert: immediate\n");
        let two = |e: &Enriched| Context {
            events: Some(2),
            ..Context::for_event(e)
        };
        let mut f = Findings::default();
        let mut out = Vec::new();
        feed(&mut f, &d, 0, "p1", two, &mut out);
        feed(&mut f, &d, 5, "p1", two, &mut out);
        feed(&mut f, &d, 9, "p1", two, &mut out);
        f.close_all(std::slice::from_ref(&d), &mut out);
        assert_eq!(out.len(), 1, "{out:#?}");
    }

    #[test]
    fn later_evidence_is_one_follow_up_naming_the_first_alert() {
        let d = detector("alert: immediate\n");
        let all = [d.clone()];
        let mut f = Findings::default();
        let mut out = Vec::new();
        feed(&mut f, &d, 0, "p1", plain, &mut out);
        assert_eq!(out.len(), 1);
        let first = out[0].id.clone();
        // Three more events, one of them a new patient: nothing is written per event.
        feed(&mut f, &d, 4, "p1", plain, &mut out);
        feed(&mut f, &d, 8, "p2", plain, &mut out);
        feed(&mut f, &d, 12, "p1", plain, &mut out);
        assert_eq!(out.len(), 1, "no alert per event");
        // The finding goes quiet: one follow-up for the whole finding.
        let later: DateTime<Utc> = "2026-03-03T17:00:00Z".parse().unwrap();
        f.close_quiet(later, &all, &mut out);
        assert_eq!(out.len(), 2, "{out:#?}");
        let next = &out[1];
        assert_eq!(next.follows.as_deref(), Some(first.as_str()));
        assert_eq!(next.id, follow_up_id(&first));
        assert_ne!(next.id, first);
        assert_eq!(next.events, 4);
        assert_eq!(next.patients, ["p1", "p2"]);
        assert_eq!(next.summary, "u1 touched 2 patients in 4 events");
        assert_eq!(next.first_seen, out[0].first_seen);
        assert_eq!(next.ts, next.last_seen);
        let last = next.reasons.last().unwrap();
        assert!(last.contains(&first), "{last}");
        assert!(last.contains("3 more events, 1 more patient"), "{last}");
        assert!(next
            .to_json_line()
            .contains(&format!("\"follows\":\"{first}\"")));
        // Nothing is left to write.
        f.close_all(&all, &mut out);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn a_restored_snapshot_neither_repeats_nor_forgets() {
        let d = detector("alert: immediate\n");
        let all = [d.clone()];
        let mut f = Findings::default();
        let mut out = Vec::new();
        feed(&mut f, &d, 0, "p1", plain, &mut out);
        assert_eq!(out.len(), 1);
        let first = out[0].id.clone();
        // Snapshot, restart.
        let json = serde_json::to_string(&f).unwrap();
        assert!(json.contains("\"sent\""), "{json}");
        let mut f: Findings = serde_json::from_str(&json).unwrap();
        // More evidence after the restart: not alerted again at once ...
        feed(&mut f, &d, 3, "p2", plain, &mut out);
        assert_eq!(out.len(), 1, "the immediate alert is not repeated");
        // ... and the finding is not forgotten: its close writes the follow-up.
        let json = serde_json::to_string(&f).unwrap();
        let mut f: Findings = serde_json::from_str(&json).unwrap();
        f.close_all(&all, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].follows.as_deref(), Some(first.as_str()));
        assert_eq!(out[1].patients, ["p1", "p2"]);

        // A restart from a snapshot older than the alert replays its first event: the
        // id is known (read back from the sink), so it is not written twice, and the
        // finding still knows it was sent.
        let mut f = Findings::default();
        f.mark_emitted(&first);
        let mut again = Vec::new();
        feed(&mut f, &d, 0, "p1", plain, &mut again);
        assert!(again.is_empty(), "{again:#?}");
        feed(&mut f, &d, 2, "p1", plain, &mut again);
        f.close_all(&all, &mut again);
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].follows.as_deref(), Some(first.as_str()));
    }

    #[test]
    fn a_snapshot_from_before_immediate_alerts_still_loads() {
        let old = r#"{"open":{"u1\u001furgent":{"detector":"urgent","user_key":"u1","window":"2026-03-03","first":1772553600000,"last":1772553600000,"patients":{"p1":"p1"},"events":1,"values":{"user":"u1"}}},"emitted":{},"swept_at":0}"#;
        let mut f: Findings = serde_json::from_str(old).unwrap();
        assert_eq!(f.open.values().next().unwrap().sent, None);
        // An on-close finding serialises exactly as before: no `sent` key.
        let json = serde_json::to_string(&f).unwrap();
        assert!(!json.contains("sent"), "{json}");
        let d = detector("");
        let mut out = Vec::new();
        f.close_all(&[d], &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].follows, None);
    }

    #[test]
    fn on_close_is_the_default_and_a_raise_to_critical_alerts_at_once() {
        let d = detector("");
        let mut f = Findings::default();
        let mut out = Vec::new();
        feed(&mut f, &d, 0, "p1", plain, &mut out);
        assert!(out.is_empty(), "on-close: nothing until it closes");
        let critical = |e: &Enriched| Context {
            critical: true,
            ..Context::for_event(e)
        };
        feed(&mut f, &d, 1, "p1", critical, &mut out);
        assert_eq!(out.len(), 1, "raised to critical: written at once");
        assert_eq!(out[0].severity, crate::alert::Severity::Critical);
        assert_eq!(out[0].events, 2);
        f.close_all(std::slice::from_ref(&d), &mut out);
        assert_eq!(out.len(), 1);

        // An explicit on-close waits even for a critical finding.
        let d = detector("alert: on-close\n");
        let mut f = Findings::default();
        feed(&mut f, &d, 0, "p1", critical, &mut out);
        assert_eq!(out.len(), 1);
        f.close_all(std::slice::from_ref(&d), &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].follows, None);
    }
}
