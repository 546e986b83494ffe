//! The correlation engine: canonical events in, alerts out, on event time.
//!
//! Events may arrive out of order (several sources, several hosts). They wait in a
//! reorder buffer until the watermark (the slowest active source's latest event time,
//! less the allowed lateness) passes them, and are then applied in one total order:
//! (event time, source, file, offset). `replay` feeds events already in that order, so
//! `run` and `replay` see the same sequence and give the same alerts.
//!
//! Everything the engine knows (reorder buffer, baselines, open findings, ids of alerts
//! already written) is in [`State`], which serialises, so it can be snapshotted together
//! with source positions and restored after a restart.

pub mod cases;
mod findings;
mod keyed;
pub mod kinds;
pub mod order;
mod peers;
mod stats;
mod users;

use crate::alert::Alert;
use crate::detect::Detector;
use crate::enrich::{Enriched, Keys, LocalClock};
use crate::event::Event;
use crate::reference::Reference;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use findings::Findings;
use order::ReorderBuffer;
pub use order::{order, order_at};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use users::UserState;

/// Engine tuning that is not part of any detector.
#[derive(Debug, Clone)]
pub struct Settings {
    pub timezone: Tz,
    pub learning_days: u32,
    pub allowed_lateness_secs: i64,
    pub max_users: usize,
}

impl Settings {
    pub fn from_config(cfg: &crate::config::Config) -> anyhow::Result<Settings> {
        Ok(Settings {
            timezone: cfg.timezone()?,
            learning_days: cfg.engine.learning_days,
            allowed_lateness_secs: cfg.engine.allowed_lateness_secs as i64,
            max_users: cfg.engine.max_users.max(1),
        })
    }
}

/// What the engine has learned and holds; serialisable for snapshots.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct State {
    /// Local day of the first event ever applied: the learning period counts from here.
    pub first_day: Option<NaiveDate>,
    #[serde(with = "keyed")]
    pub users: keyed::Keyed<UserState>,
    /// Peer-group daily values per detector: key "detector\u{1f}group".
    #[serde(with = "keyed")]
    pub peers: keyed::Keyed<stats::DayValues>,
    pub findings: Findings,
    /// Working habits per peer group (role/department).
    #[serde(default, with = "keyed")]
    pub habits: keyed::Keyed<peers::Habits>,
    /// Sequence first steps by workstation: key "detector\u{1f}host".
    #[serde(default)]
    pub hosts: FxHashMap<String, kinds::sequence::Step>,
    pub buffer: ReorderBuffer,
    /// Events applied so far.
    pub applied: u64,
    /// The idle clock (epoch ms): how far event time has been let pass while every source
    /// was idle (see [`Engine::advance_clock`]).
    #[serde(default)]
    pub clock: Option<i64>,
}

/// Counters for the replay summary and metrics.
#[derive(Debug, Default, Clone)]
pub struct Counters {
    pub events: u64,
    pub late: u64,
    pub alerts: FxHashMap<String, u64>,
    pub evicted_users: u64,
}

pub struct Engine {
    detectors: Vec<Detector>,
    reference: Arc<Reference>,
    settings: Settings,
    state: State,
    pub counters: Counters,
    /// Local time of events in `settings.timezone`, with the zone's offset remembered
    /// from one event to the next.
    clock: LocalClock,
    /// Room for each event's folded ids (see [`Keys`]).
    keys: Keys,
    /// The day the learning period counts from (`State::first_day`) and the first day
    /// after it (see [`Engine::learned`]).
    learning_ends: Option<(NaiveDate, NaiveDate)>,
}

impl Engine {
    pub fn new(detectors: Vec<Detector>, reference: Arc<Reference>, settings: Settings) -> Engine {
        Engine {
            clock: LocalClock::new(settings.timezone),
            keys: Keys::default(),
            learning_ends: None,
            detectors,
            reference,
            settings,
            state: State::default(),
            counters: Counters::default(),
        }
    }

    /// The engine a config describes: its reference data, detectors and settings.
    pub fn from_config(cfg: &crate::config::Config) -> anyhow::Result<Engine> {
        let reference = Reference::load(&cfg.reference)?;
        Ok(Engine::new(
            crate::detect::load_config(cfg, kinds::compile)?,
            Arc::new(reference),
            Settings::from_config(cfg)?,
        ))
    }

    /// The reference data in service.
    pub fn reference(&self) -> &Reference {
        &self.reference
    }

    /// Swaps in reloaded reference data; learned state is kept.
    pub fn set_reference(&mut self, reference: Arc<Reference>) {
        self.reference = reference;
    }

    /// Remembers ids of alerts already written (read back from disk after a restart).
    pub fn mark_emitted<'a>(&mut self, ids: impl Iterator<Item = &'a str>) {
        for id in ids {
            self.state.findings.mark_emitted(id);
        }
    }

    /// Swaps in reloaded detectors; state of detectors that remain is kept (a detector
    /// whose kind changed starts afresh).
    pub fn set_detectors(&mut self, detectors: Vec<Detector>) {
        self.detectors = detectors;
    }

    pub fn detectors(&self) -> &[Detector] {
        &self.detectors
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    /// Takes over restored state. A snapshot does not say which kind wrote each
    /// detector's per-user state, so each is read as its detector's kind now; state of
    /// detectors no longer loaded is kept as read, in case they come back.
    pub fn restore(&mut self, mut state: State) {
        let by_id: FxHashMap<&str, &kinds::Kind> = self
            .detectors
            .iter()
            .map(|d| (d.id.as_str(), kinds::of(d)))
            .collect();
        for user in state.users.values_mut() {
            for (id, slot) in user.detectors.iter_mut() {
                if let Some(k) = by_id.get(id.as_str()) {
                    k.adopt(slot);
                }
            }
        }
        self.state = state;
    }

    /// Approximate bytes of state held, and users tracked.
    pub fn state_size(&self) -> (usize, usize) {
        let users: usize = self.state.users.values().map(UserState::approx_bytes).sum();
        let peers: usize = self.state.peers.values().map(|p| p.approx_bytes()).sum();
        (
            users + peers + self.state.findings.approx_bytes() + self.state.buffer.approx_bytes(),
            self.state.users.len(),
        )
    }

    /// Peer groups learned as workflow-driven and as consulting services, with their
    /// shares of accesses outside own care and to patients under other departments' care.
    pub fn habits(&self) -> Vec<(String, bool, bool, f64, f64)> {
        let mut v: Vec<_> = self
            .state
            .habits
            .iter()
            .map(|(g, h)| {
                let n = h.accesses.max(1) as f64;
                (
                    g.clone(),
                    h.workflow_driven(),
                    h.consulting(),
                    h.without_care as f64 / n,
                    h.elsewhere as f64 / n,
                )
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Registers a source, so the watermark waits for it.
    pub fn add_source(&mut self, name: &str) {
        self.state.buffer.add_source(name);
    }

    /// Marks a source idle (nothing new for a while) or active again; idle sources do
    /// not hold the watermark back.
    pub fn set_idle(&mut self, name: &str, idle: bool, out: &mut Vec<Alert>) {
        self.state.buffer.set_idle(name, idle);
        self.release(out);
    }

    /// True when every source is idle: caught up and quiet.
    pub fn all_idle(&self) -> bool {
        self.state.buffer.all_idle()
    }

    /// True when the source is registered or has been seen.
    pub fn knows_source(&self, name: &str) -> bool {
        self.state.buffer.knows(name)
    }

    /// Lets event time pass while the logs are quiet. When every source is idle (caught
    /// up, nothing new for a while), nothing earlier than what has arrived is on its way,
    /// so the engine's clock follows `now` (the wall clock of whoever knows the sources
    /// are quiet) less the allowed lateness, the usual stream-processing rule for idle
    /// inputs: buffered events are applied and findings whose gap is up close, in real
    /// time, and history far in the past closes as soon as it has been read. An event
    /// that arrives later with an older time is still applied (counted as late); it
    /// opens a new finding instead of joining a closed one. Nothing is dropped.
    pub fn advance_clock(&mut self, now: DateTime<Utc>, out: &mut Vec<Alert>) {
        if !self.state.buffer.all_idle() {
            return;
        }
        let to = now.timestamp_millis() - self.settings.allowed_lateness_secs * 1000;
        if self.state.clock.is_some_and(|c| c >= to) {
            return;
        }
        self.state.clock = Some(to);
        self.release(out);
        if let Some(t) = DateTime::from_timestamp_millis(to) {
            self.sweep(t, out);
        }
    }

    /// Accepts an event in arrival order (`run`). It is applied once the watermark passes it.
    pub fn push(&mut self, ev: Event, out: &mut Vec<Alert>) {
        self.push_boxed(Box::new(ev), out);
    }

    /// [`Engine::push`] for an event boxed already: the reorder buffer keeps it in its box.
    pub fn push_boxed(&mut self, ev: Box<Event>, out: &mut Vec<Alert>) {
        self.counters.events += 1;
        let early = self.may_fire_early(&ev).then(|| (*ev).clone());
        if self.state.buffer.push_boxed(ev) {
            self.counters.late += 1;
        }
        self.release(out);
        if let Some(ev) = early {
            let wm = self
                .state
                .buffer
                .watermark(self.settings.allowed_lateness_secs);
            if ev.ts.timestamp_millis() > wm {
                self.fire_early(&ev, out);
            }
        }
    }

    /// Live events only, outside `replay`, and only with detectors that alert at once.
    fn may_fire_early(&self, ev: &Event) -> bool {
        if self.state.buffer.is_merged() || !self.detectors.iter().any(|d| d.alerts_at_once(true)) {
            return false;
        }
        let horizon = Duration::seconds(2 * self.settings.allowed_lateness_secs + 60);
        ev.ts >= Utc::now() - horizon
    }

    /// Early firing. A live event waits in the reorder buffer for the allowed lateness
    /// (5 min by default) so that events are applied in event-time order; a detector that
    /// alerts at once (an export followed by a USB copy, a terminated account) cannot
    /// wait that long while other sources keep the watermark back. So such an event is
    /// also evaluated as soon as it arrives, on a copy of the state it touches, and the
    /// alert that evaluation gives is written now. When the event is applied in order,
    /// its finding computes the same alert id and does not write it again. If events
    /// still on their way change what the first evidence is (rare: an earlier event of
    /// the same user and detector within the lateness), the in-order alert follows too.
    fn fire_early(&mut self, ev: &Event, out: &mut Vec<Alert>) {
        let reference = Arc::clone(&self.reference);
        let mut keys = Keys::default();
        let mut e = Enriched::with_clock(ev, &reference, &mut self.clock, &mut keys);
        if let Some(user) = self.state.users.get(&*e.user_key) {
            e.usual_hours = users::usual_hour(user, e.hour);
        }
        let group = e.staff.map(|s| s.peer_group());
        if let Some(g) = group {
            match self.state.habits.get(g) {
                Some(h) => h.judge(&mut e),
                None => peers::Habits::default().judge(&mut e),
            }
        }
        let learned = self.learned(e.local_day);
        let candidates: Vec<&Detector> = self
            .detectors
            .iter()
            .filter(|d| d.alerts_at_once(true) && d.matcher.matches(&e))
            .collect();
        if candidates.is_empty() {
            return;
        }
        let mut user = self
            .state
            .users
            .get(&*e.user_key)
            .cloned()
            .unwrap_or_default();
        let mut peers = self.state.peers.clone();
        let mut hosts = self.state.hosts.clone();
        let mut findings = self.state.findings.clone();
        let mut scratch = Vec::new();
        let mut early = Vec::new();
        for d in candidates {
            let hit = kinds::of(d).evaluate(kinds::Cx {
                id: &d.id,
                e: &e,
                matcher: &d.matcher,
                learned,
                user: &mut user,
                peer_group: group,
                peers: &mut peers,
                hosts: &mut hosts,
            });
            let Some(ctx) = hit else { continue };
            findings.update(d, &e, ctx, &self.detectors, &mut scratch);
            let Some(id) = findings.sent_id(&e.user_key, &d.id) else {
                continue;
            };
            if self.state.findings.was_emitted(id) {
                continue;
            }
            if let Some(a) = scratch.iter().find(|a| a.id == id) {
                early.push(a.clone());
            }
        }
        for a in early {
            self.state.findings.mark_emitted_in(&a.id, e.local_day);
            self.count(std::slice::from_ref(&a));
            out.push(a);
        }
    }

    /// Tells the engine its input is one stream merged in event-time order (`replay`):
    /// events still wait for the allowed lateness, which absorbs small disorder within a
    /// file, but no longer for every source to speak.
    pub fn set_merged_input(&mut self) {
        self.state.buffer.set_merged(true);
    }

    /// Releases every buffered event and closes every open finding: end of input, or
    /// shutdown.
    pub fn flush(&mut self, out: &mut Vec<Alert>) {
        while let Some(ev) = self.state.buffer.pop_until(i64::MAX) {
            self.apply(&ev, out);
        }
        let before = out.len();
        self.state.findings.close_all(&self.detectors, out);
        let new: Vec<Alert> = out[before..].to_vec();
        self.count(&new);
    }

    fn release(&mut self, out: &mut Vec<Alert>) {
        let lateness = self.settings.allowed_lateness_secs;
        let wm = self.state.buffer.watermark(lateness);
        let mut last = None;
        while let Some(ev) = self.state.buffer.pop_until(wm) {
            self.apply(&ev, out);
            last = Some(ev.ts);
        }
        if let Some(ts) = last {
            self.sweep(ts, out);
        }
    }

    fn sweep(&mut self, now: DateTime<Utc>, out: &mut Vec<Alert>) {
        let before = out.len();
        self.state.findings.close_quiet(now, &self.detectors, out);
        let new: Vec<Alert> = out[before..].to_vec();
        self.count(&new);
    }

    fn count(&mut self, alerts: &[Alert]) {
        for a in alerts {
            *self.counters.alerts.entry(a.detector.clone()).or_default() += 1;
        }
    }

    /// Whether the learning period is over on `day`. Its end is worked out once per first
    /// day rather than for every event: adding days to a date is a calendar
    /// computation, about 1% of the engine's time.
    fn learned(&mut self, day: NaiveDate) -> bool {
        let Some(first) = self.state.first_day else {
            return false;
        };
        let ends = match self.learning_ends {
            Some((f, ends)) if f == first => ends,
            _ => {
                let ends = first + Duration::days(self.settings.learning_days as i64);
                self.learning_ends = Some((first, ends));
                ends
            }
        };
        day >= ends
    }

    /// Runs every detector on one event, in total order.
    fn apply(&mut self, ev: &Event, out: &mut Vec<Alert>) {
        let reference = Arc::clone(&self.reference);
        let mut keys = std::mem::take(&mut self.keys);
        let mut e = Enriched::with_clock(ev, &reference, &mut self.clock, &mut keys);
        if let Some(g) = e.staff.map(|s| s.peer_group()) {
            keyed::get_or_default(&mut self.state.habits, g).judge_and_learn(&mut e);
        }
        if self.state.first_day.is_none() {
            self.state.first_day = Some(e.local_day);
        }
        self.state.applied += 1;
        let learned = self.learned(e.local_day);
        let before = out.len();
        let user = keyed::get_or_default(&mut self.state.users, &e.user_key);
        user.last_active = ev.ts.timestamp();
        e.usual_hours = users::usual_hour(user, e.hour);
        let group = e.staff.map(|s| s.peer_group());
        for d in &self.detectors {
            if !d.matcher.matches(&e) {
                continue;
            }
            let hit = kinds::of(d).evaluate(kinds::Cx {
                id: &d.id,
                e: &e,
                matcher: &d.matcher,
                learned,
                user: &mut *user,
                peer_group: group,
                peers: &mut self.state.peers,
                hosts: &mut self.state.hosts,
            });
            if let Some(ctx) = hit {
                self.state.findings.update(d, &e, ctx, &self.detectors, out);
            }
        }
        users::observe(user, &e);
        drop(e);
        self.keys = keys;
        if self.state.users.len() > self.settings.max_users {
            self.counters.evicted_users +=
                users::evict(&mut self.state.users, self.settings.max_users);
        }
        if out.len() > before {
            let new: Vec<Alert> = out[before..].to_vec();
            self.count(&new);
        }
    }
}
