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

    /// How many of the user's past chart accesses fell within an hour of `hour` (local),
    /// and of how many in all; `None` while they have fewer than `min_history`.
    pub fn near_hour(&self, hour: u32, min_history: u64) -> Option<(u64, u64)> {
        let total: u64 = self.hours.iter().map(|&c| c as u64).sum();
        if total < min_history {
            return None;
        }
        let h = hour as usize % 24;
        let near: u64 = [(h + 23) % 24, h, (h + 1) % 24]
            .iter()
            .map(|&x| self.hours[x] as u64)
            .sum();
        Some((near, total))
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

/// Past chart accesses a user needs before their working hours tell a usual hour from a
/// rare one.
pub const HOURS_MIN_HISTORY: u64 = 150;
/// Share of past chart accesses within an hour of a time that makes it a usual hour.
pub const HOURS_RARE_SHARE: f64 = 0.02;

/// Whether `hour` (local) is within the user's usual working hours: at least
/// [`HOURS_RARE_SHARE`] of their past chart accesses fell within an hour of it. A user
/// whose history is too short is given the benefit of the doubt. A workflow habit
/// explains what looks like that work: a billing clerk's chart access at the desk in the
/// afternoon, not the same access at eleven at night.
pub fn usual_hour(user: &UserState, hour: u8) -> bool {
    user.near_hour(hour as u32, HOURS_MIN_HISTORY)
        .is_none_or(|(near, total)| near as f64 >= HOURS_RARE_SHARE * total as f64)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usual_hours_come_from_the_histogram_once_it_is_long_enough() {
        let mut u = UserState::default();
        // Too little history: every hour is given the benefit of the doubt.
        u.hours[15] = 100;
        assert!(usual_hour(&u, 23));
        // 200 accesses, all between 14:00 and 16:59.
        u.hours[14] = 50;
        u.hours[16] = 50;
        assert!(usual_hour(&u, 15) && usual_hour(&u, 17) && usual_hour(&u, 13));
        assert!(!usual_hour(&u, 23) && !usual_hour(&u, 11));
        // Five accesses near 23:00 out of 205 is over 2%: an hour the user does work.
        u.hours[23] = 5;
        assert!(usual_hour(&u, 22));
        assert_eq!(u.near_hour(0, 150), Some((5, 205)));
        assert_eq!(u.near_hour(0, 300), None);
    }
}
