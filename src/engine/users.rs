//! What the engine keeps per user, bounded in size: working-hour habits (an hour-of-day
//! histogram), and each stateful detector's state as its kind (`kinds/`) defines it.

use super::keyed::Keyed;
use super::kinds::{claim, Registered, Slot};
use crate::enrich::Enriched;
use chrono::{Duration, NaiveDate};
use serde::{Deserialize, Serialize};

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
    #[serde(with = "super::keyed")]
    pub detectors: Keyed<Slot>,
}

impl UserState {
    /// The state the detector `id`, of kind `K`, keeps for this user; created empty on
    /// first use.
    pub fn state<K: Registered>(&mut self, id: &str) -> &mut K::User {
        // One lookup; the id is copied only when the slot is new.
        let slot = self
            .detectors
            .entry_ref(id)
            .or_insert_with(|| K::put(Default::default()));
        claim::<K>(slot)
    }

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

/// Drops the least recently active users until `max` remain; returns how many went.
pub fn evict(users: &mut Keyed<UserState>, max: usize) -> u64 {
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
