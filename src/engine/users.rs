//! Per-user state of the stateful detectors, bounded in size: fixed-length histories
//! (28 days), one day's distinct patients (capped), an hour-of-day histogram.

use super::findings::Context;
use super::stats::{quantile, DayValues, HISTORY_DAYS};
use crate::detect::{AfterHoursParams, BaselineParams, BurstParams, Metric, SequenceParams};
use crate::enrich::Enriched;
use chrono::{Duration, NaiveDate};
use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Distinct patients remembered per user, detector and day; beyond it the count stops
/// growing (the detectors have long fired by then).
const MAX_DAY_PATIENTS: usize = 2048;

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct UserState {
    /// Event time (s) of the user's last event, for eviction.
    pub last_active: i64,
    /// Local hour histogram of past chart accesses (habits).
    pub hours: [u32; 24],
    /// Accesses of the current shift-day, added to `hours` when it ends.
    pub hours_today: [u32; 24],
    pub hours_day: Option<NaiveDate>,
    /// State of each stateful detector, by detector id.
    pub detectors: FxHashMap<String, DetectorState>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct DetectorState {
    pub day: Option<NaiveDate>,
    /// Distinct patients of the day (comparison key -> display).
    pub patients: FxHashMap<String, String>,
    pub value: u64,
    pub events: u64,
    pub first_ms: i64,
    /// Past days' values, oldest first.
    pub history: VecDeque<(NaiveDate, u64)>,
    /// Window the detector last alerted in; it alerts at most once per window.
    pub fired: Option<NaiveDate>,
    /// Burst: times (ms) of events in the sliding window.
    pub window: VecDeque<i64>,
    pub set: FxHashSet<String>,
    /// Sequence: the latest first step (epoch ms, records, host).
    #[serde(default)]
    pub step: Option<Step>,
}

/// A first step of a sequence, remembered until its window passes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Step {
    pub ms: i64,
    pub records: u64,
    pub user: String,
    pub action: String,
    pub patients: Vec<(String, String)>,
}

impl DetectorState {
    /// Starts a new day, moving the finished one into history. The peer group gets the
    /// user's total over the `period` days ending with the finished day.
    fn roll(&mut self, today: NaiveDate, peers: Option<&mut DayValues>, period: u32) {
        if self.day == Some(today) {
            return;
        }
        if let Some(d) = self.day {
            self.history.push_back((d, self.value));
            while self.history.len() > HISTORY_DAYS {
                self.history.pop_front();
            }
            if let Some(p) = peers {
                p.add(d, self.sum_window(d, period));
            }
        }
        self.day = Some(today);
        self.value = 0;
        self.events = 0;
        self.patients.clear();
        self.set.clear();
    }

    /// Sum of history values in the `period` days ending with `end`.
    fn sum_window(&self, end: NaiveDate, period: u32) -> u64 {
        let from = end - Duration::days(period as i64 - 1);
        self.history
            .iter()
            .filter(|(d, _)| *d >= from && *d <= end)
            .map(|h| h.1)
            .sum()
    }

    /// The user's usual total over `period` days: the 90th percentile of their past
    /// rolling totals, counting only windows that ended before the current one began, so
    /// that what is happening now (a slow hoard) never becomes its own baseline.
    fn usual(&self, min_days: u32, today: NaiveDate, period: u32) -> Option<u64> {
        let cutoff = today - Duration::days(period as i64);
        let past: Vec<NaiveDate> = self
            .history
            .iter()
            .map(|h| h.0)
            .filter(|d| *d <= cutoff)
            .collect();
        if past.len() < min_days as usize {
            return None;
        }
        let mut sums: Vec<u64> = past.iter().map(|d| self.sum_window(*d, period)).collect();
        quantile(&mut sums, 0.9)
    }

    fn sum_since(&self, from: NaiveDate) -> u64 {
        self.history
            .iter()
            .filter(|(d, _)| *d >= from)
            .map(|h| h.1)
            .sum()
    }

    /// The day's distinct patients as (key, display), in key order.
    fn sorted_patients(&self) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = self
            .patients
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        v.sort();
        v
    }

    fn approx_bytes(&self) -> usize {
        96 + self.history.len() * 16
            + self
                .patients
                .iter()
                .map(|(k, v)| k.len() + v.len() + 48)
                .sum::<usize>()
            + self.window.len() * 8
            + self.set.iter().map(|k| k.len() + 32).sum::<usize>()
    }
}

impl UserState {
    pub fn approx_bytes(&self) -> usize {
        64 + 2 * 24 * 4
            + self
                .detectors
                .iter()
                .map(|(k, d)| k.len() + d.approx_bytes())
                .sum::<usize>()
    }
}

/// Learns the user's working hours from chart accesses. Called after the detectors ran,
/// so an event is judged against habits formed before it.
pub fn observe(user: &mut UserState, e: &Enriched) {
    if !e.is_chart_access() {
        return;
    }
    // A shift-day runs from 06:00 to 06:00, so a night shift is one unit.
    let shift_day = if e.hour < 6 {
        e.local_day - Duration::days(1)
    } else {
        e.local_day
    };
    if user.hours_day != Some(shift_day) {
        for h in 0..24 {
            user.hours[h] = user.hours[h].saturating_add(user.hours_today[h]);
        }
        user.hours_today = [0; 24];
        user.hours_day = Some(shift_day);
    }
    user.hours_today[e.hour as usize] += 1;
}

fn patient(e: &Enriched) -> Option<(String, String)> {
    Some((e.patient_key.clone()?, e.patient_display()?.to_string()))
}

fn human(n: u64) -> String {
    n.to_string()
}

/// Distinct patients / events / records per day (or rolling period) against the user's
/// own usual and the peer group's.
#[allow(clippy::too_many_arguments)]
pub fn baseline(
    user: &mut UserState,
    peers: &mut FxHashMap<String, DayValues>,
    peer_key: Option<String>,
    id: &str,
    p: &BaselineParams,
    metric: Metric,
    e: &Enriched,
    learned: bool,
) -> Option<Context> {
    let st = user.detectors.entry(id.to_string()).or_default();
    let today = e.local_day;
    let peer = peer_key.map(|k| peers.entry(k).or_default());
    let mut peer = peer;
    st.roll(today, peer.as_deref_mut(), p.period_days.max(1));
    let ts = e.event.ts.timestamp_millis();
    if st.events == 0 {
        st.first_ms = ts;
    }
    st.events += 1;
    let new_patient = patient(e);
    match metric {
        Metric::DistinctPatients => {
            if let Some((k, d)) = &new_patient {
                if st.patients.len() < MAX_DAY_PATIENTS && !st.patients.contains_key(k) {
                    st.patients.insert(k.clone(), d.clone());
                }
            }
            st.value = st.patients.len() as u64;
        }
        Metric::Events => st.value += 1,
        Metric::Records => {
            st.value += e.event.records;
            if let Some((k, d)) = &new_patient {
                if st.patients.len() < MAX_DAY_PATIENTS {
                    st.patients.entry(k.clone()).or_insert_with(|| d.clone());
                }
            }
        }
    }
    if !learned {
        return None;
    }
    let period = p.period_days.max(1) as u64;
    let from = today - Duration::days(period as i64 - 1);
    let value = st.value + st.sum_since(from);
    if let Some(f) = st.fired {
        if f > today - Duration::days(period as i64) {
            // Already alerted in this period: extend the open finding only.
            let mut c = Context::default();
            c.describe(e);
            c.extend_only = true;
            c.events = Some(st.events);
            c.patients.extend(new_patient);
            c.values.insert("value", human(value));
            return Some(c);
        }
    }
    let user_usual = st.usual(p.min_history_days, today, period as u32);
    let peer_usual = peer.and_then(|pv| pv.usual_before(today, 0.9, 20));
    let mut threshold = p.min as f64;
    if let Some(u) = user_usual {
        threshold = threshold.max(u as f64 * p.user_factor);
    }
    if let Some(u) = peer_usual {
        threshold = threshold.max(u as f64 * p.peer_factor);
    }
    if (value as f64) <= threshold {
        return None;
    }
    st.fired = Some(today);
    let mut c = Context::default();
    c.describe(e);
    c.events = Some(st.events);
    c.first_seen = Some(st.first_ms);
    c.patients = st.sorted_patients();
    c.values.insert("value", human(value));
    c.values
        .insert("threshold", format!("{}", threshold.ceil() as u64));
    c.values.insert(
        "period",
        if period == 1 {
            "today".into()
        } else {
            format!("over the last {period} days")
        },
    );
    if let Some(u) = user_usual {
        c.values.insert("usual", human(u));
    }
    if let Some(u) = peer_usual {
        c.values.insert("peer_usual", human(u));
    }
    Some(c)
}

/// Chart accesses at night, at hours the user rarely works.
pub fn after_hours(
    user: &mut UserState,
    id: &str,
    p: &AfterHoursParams,
    e: &Enriched,
    learned: bool,
) -> Option<Context> {
    let h = e.hour;
    let in_night = if p.night_start > p.night_end {
        h >= p.night_start || h < p.night_end
    } else {
        h >= p.night_start && h < p.night_end
    };
    if !in_night || !learned {
        return None;
    }
    let total: u64 = user.hours.iter().map(|&c| c as u64).sum();
    if total < p.min_history_events {
        return None;
    }
    let near: u64 = [(h + 23) % 24, h, (h + 1) % 24]
        .iter()
        .map(|&x| user.hours[x as usize] as u64)
        .sum();
    if (near as f64) >= p.rare_share * total as f64 {
        return None;
    }
    let night_of = if h < p.night_end {
        e.local_day - Duration::days(1)
    } else {
        e.local_day
    };
    let st = user.detectors.entry(id.to_string()).or_default();
    if st.day != Some(night_of) {
        st.day = Some(night_of);
        st.patients.clear();
        st.events = 0;
        st.first_ms = e.event.ts.timestamp_millis();
    }
    st.events += 1;
    let newp = patient(e);
    if let Some((k, d)) = &newp {
        if st.patients.len() < MAX_DAY_PATIENTS {
            st.patients.entry(k.clone()).or_insert_with(|| d.clone());
        }
    }
    let n = st.patients.len() as u64;
    let mut c = Context::default();
    c.describe(e);
    c.events = Some(st.events);
    c.first_seen = Some(st.first_ms);
    c.values.insert("value", human(n));
    c.values.insert(
        "hours",
        format!("{:02}:00-{:02}:00", p.night_start, p.night_end),
    );
    let share = 100.0 * near as f64 / total.max(1) as f64;
    c.values.insert("usual", format!("{share:.1}%"));
    if st.fired == Some(night_of) {
        c.extend_only = true;
        c.patients.extend(newp);
        return Some(c);
    }
    if n < p.min_patients {
        return None;
    }
    st.fired = Some(night_of);
    c.patients = st.sorted_patients();
    Some(c)
}

/// Many matching events (searches) in a short sliding window.
pub fn burst(
    user: &mut UserState,
    id: &str,
    p: &BurstParams,
    e: &Enriched,
    learned: bool,
) -> Option<Context> {
    let st = user.detectors.entry(id.to_string()).or_default();
    let today = e.local_day;
    st.roll(today, None, 1);
    let ts = e.event.ts.timestamp_millis();
    st.window.push_back(ts);
    let from = ts - p.window_secs as i64 * 1000;
    while st.window.front().is_some_and(|&t| t < from) {
        st.window.pop_front();
    }
    // Bounded: a window never holds more than what alerts anyway, times the factor.
    while st.window.len() as u64 > (p.min_count * 20).max(1000) {
        st.window.pop_front();
    }
    let count = st.window.len() as u64;
    // The day's value is its busiest window.
    st.value = st.value.max(count);
    st.events += 1;
    if !learned {
        return None;
    }
    let mut c = Context::default();
    c.describe(e);
    c.values.insert("value", human(count));
    c.values
        .insert("window", format!("{} minutes", p.window_secs.div_ceil(60)));
    c.events = Some(count);
    if st.fired == Some(today) {
        c.extend_only = true;
        c.patients.extend(patient(e));
        return Some(c);
    }
    let usual = st.usual(5, today, 1);
    let mut threshold = p.min_count as f64;
    if let Some(u) = usual {
        threshold = threshold.max(u as f64 * p.user_factor);
        c.values.insert("usual", human(u));
    }
    if (count as f64) < threshold {
        return None;
    }
    st.fired = Some(today);
    c.first_seen = st.window.front().copied();
    c.patients.extend(patient(e));
    Some(c)
}

/// A first step followed by a second: an export, then a file written to removable,
/// cloud or network media by the same user (or on the same workstation).
#[allow(clippy::too_many_arguments)]
pub fn sequence(
    user: &mut UserState,
    hosts: &mut FxHashMap<String, Step>,
    id: &str,
    p: &SequenceParams,
    is_first: bool,
    is_then: bool,
    e: &Enriched,
) -> Option<Context> {
    let ms = e.event.ts.timestamp_millis();
    let window = p.window_secs as i64 * 1000;
    let st = user.detectors.entry(id.to_string()).or_default();
    if is_first {
        let step = Step {
            ms,
            records: e.event.records,
            user: e.user_display().to_string(),
            action: e.event.action.as_str().to_string(),
            patients: patient(e).into_iter().collect(),
        };
        if p.same == "user_or_host" {
            if let Some(h) = &e.event.host {
                hosts.retain(|k, s| !k.starts_with(id) || ms - s.ms <= window);
                hosts.insert(format!("{id}\u{1f}{}", crate::event::key(h)), step.clone());
            }
        }
        st.step = Some(step);
        return None;
    }
    if !is_then {
        return None;
    }
    let by_user = st
        .step
        .clone()
        .filter(|s| ms >= s.ms && ms - s.ms <= window);
    let by_host = || {
        let h = format!("{id}\u{1f}{}", crate::event::key(e.event.host.as_deref()?));
        hosts
            .get(&h)
            .cloned()
            .filter(|s| ms >= s.ms && ms - s.ms <= window)
    };
    let first = by_user.or_else(|| {
        if p.same == "user_or_host" {
            by_host()
        } else {
            None
        }
    })?;
    let mut c = Context::default();
    c.describe(e);
    c.first_seen = Some(first.ms);
    c.events = Some(2);
    c.patients = first.patients.clone();
    let phi = e.event.phi.as_ref();
    let records = first.records.max(phi.map_or(0, |m| m.records));
    c.values.insert("records", records.to_string());
    c.values
        .insert("minutes", ((ms - first.ms) / 60_000).to_string());
    c.values.insert(
        "action",
        if first.action == "print" {
            "printed"
        } else {
            "exported"
        }
        .to_string(),
    );
    if let Some(m) = e.event.media {
        c.values.insert("media", m.as_str().to_string());
    }
    if let Some(b) = e.event.bytes {
        c.values.insert("bytes", human_bytes(b));
    }
    if let Some(m) = phi.filter(|m| m.keywords + m.patterns > 0) {
        c.values.insert(
            "phi",
            format!(
                "{} PHI keyword and {} pattern hits, about {} patient rows",
                m.keywords, m.patterns, m.records
            ),
        );
    }
    if first.user != e.user_display() {
        c.values.insert("exporter", first.user.clone());
    }
    c.critical = records >= p.critical_records;
    Some(c)
}

fn human_bytes(b: u64) -> String {
    if b >= 1 << 20 {
        format!("{:.1} MB", b as f64 / (1 << 20) as f64)
    } else if b >= 1 << 10 {
        format!("{:.1} KB", b as f64 / 1024.0)
    } else {
        format!("{b} bytes")
    }
}

/// Drops the least recently active users until `max` remain; returns how many went.
pub fn evict(users: &mut FxHashMap<String, UserState>, max: usize) -> u64 {
    let target = max - max / 100;
    if users.len() <= target {
        return 0;
    }
    let mut by_age: Vec<(i64, String)> = users
        .iter()
        .map(|(k, u)| (u.last_active, k.clone()))
        .collect();
    by_age.sort();
    let n = users.len() - target;
    for (_, k) in by_age.into_iter().take(n) {
        users.remove(&k);
    }
    n as u64
}
