//! Small statistics over bounded histories: what "usual" means for a user or a peer group.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Days of history kept per user and per peer group.
pub const HISTORY_DAYS: usize = 28;
/// Values kept per peer-group day (one per active user).
const PEER_VALUES_PER_DAY: usize = 512;

/// The `q` quantile (0..=1) by nearest rank; None for no values.
pub fn quantile(values: &mut [u64], q: f64) -> Option<u64> {
    values.sort_unstable();
    quantile_sorted(values, q)
}

/// [`quantile`] of values sorted already.
fn quantile_sorted(values: &[u64], q: f64) -> Option<u64> {
    if values.is_empty() {
        return None;
    }
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    Some(values[rank - 1])
}

/// Per-day values of a peer group: one value per active user and day.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct DayValues {
    days: VecDeque<(NaiveDate, Vec<u64>)>,
    /// Every value of the days before `today` of the last `usual_before`, sorted, and
    /// kept sorted as values of those days come in. Each member of the group adds their
    /// finished day as they roll into the next, while the others keep asking for the
    /// usual; gathering and sorting four weeks of values for each such question was a
    /// twentieth of the engine's time. Not in snapshots.
    #[serde(skip)]
    before: Option<Before>,
}

/// The values of the days before `today`, sorted.
#[derive(Debug, Clone)]
struct Before {
    today: NaiveDate,
    sorted: Vec<u64>,
}

impl DayValues {
    pub fn add(&mut self, day: NaiveDate, value: u64) {
        let added = match self.days.iter_mut().find(|(d, _)| *d == day) {
            Some((_, v)) => {
                let room = v.len() < PEER_VALUES_PER_DAY;
                if room {
                    v.push(value)
                }
                room
            }
            None => {
                let at = self.days.partition_point(|(d, _)| *d < day);
                self.days.insert(at, (day, vec![value]));
                if self.days.len() > HISTORY_DAYS {
                    // Days forgotten: their values leave the sorted ones too.
                    self.before = None;
                    while self.days.len() > HISTORY_DAYS {
                        self.days.pop_front();
                    }
                    return;
                }
                true
            }
        };
        if let Some(b) = &mut self.before {
            if added && day < b.today {
                let at = b.sorted.partition_point(|&x| x < value);
                b.sorted.insert(at, value);
            }
        }
    }

    /// The q quantile of all user-days before `today`, if at least `min_values` exist.
    pub fn usual_before(&mut self, today: NaiveDate, q: f64, min_values: usize) -> Option<u64> {
        if self.before.as_ref().is_none_or(|b| b.today != today) {
            let mut sorted: Vec<u64> = self
                .days
                .iter()
                .filter(|(d, _)| *d < today)
                .flat_map(|(_, v)| v.iter().copied())
                .collect();
            sorted.sort_unstable();
            self.before = Some(Before { today, sorted });
        }
        let sorted = &self.before.as_ref().expect("set above").sorted;
        if sorted.len() < min_values {
            return None;
        }
        quantile_sorted(sorted, q)
    }

    pub fn approx_bytes(&self) -> usize {
        self.days.iter().map(|(_, v)| 32 + v.len() * 8).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values coming in between questions are counted as a fresh computation would.
    #[test]
    fn the_usual_follows_values_added_after_it_was_asked() {
        let day = |d| NaiveDate::from_ymd_opt(2026, 3, d).unwrap();
        let mut kept = DayValues::default();
        let mut values = Vec::new();
        for i in 0..400u64 {
            let d = day(1 + (i % 31) as u32);
            let v = (i * 7919) % 101;
            kept.add(d, v);
            values.push((d, v));
            let today = day(1 + ((i / 3) % 31) as u32);
            let mut fresh = DayValues::default();
            for &(d, v) in &values {
                fresh.add(d, v);
            }
            assert_eq!(
                kept.usual_before(today, 0.9, 20),
                fresh.usual_before(today, 0.9, 20),
                "after {i}"
            );
        }
    }

    #[test]
    fn quantiles() {
        assert_eq!(quantile(&mut [5, 1, 3, 2, 4], 0.9), Some(5));
        assert_eq!(quantile(&mut [5, 1, 3, 2, 4], 0.5), Some(3));
        assert_eq!(quantile(&mut [], 0.5), None);
    }
}
