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
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    Some(values[rank - 1])
}

/// Per-day values of a peer group: one value per active user and day.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct DayValues {
    days: VecDeque<(NaiveDate, Vec<u64>)>,
    /// Last answer of `usual_before`, dropped whenever a value is added.
    #[serde(skip)]
    cache: Option<(NaiveDate, Option<u64>)>,
}

impl DayValues {
    pub fn add(&mut self, day: NaiveDate, value: u64) {
        self.cache = None;
        match self.days.iter_mut().find(|(d, _)| *d == day) {
            Some((_, v)) => {
                if v.len() < PEER_VALUES_PER_DAY {
                    v.push(value)
                }
            }
            None => {
                let at = self.days.partition_point(|(d, _)| *d < day);
                self.days.insert(at, (day, vec![value]));
                while self.days.len() > HISTORY_DAYS {
                    self.days.pop_front();
                }
            }
        }
    }

    /// The q quantile of all user-days before `today`, if at least `min_values` exist.
    pub fn usual_before(&mut self, today: NaiveDate, q: f64, min_values: usize) -> Option<u64> {
        if let Some((d, v)) = self.cache {
            if d == today {
                return v;
            }
        }
        let v = self.compute(today, q, min_values);
        self.cache = Some((today, v));
        v
    }

    fn compute(&self, today: NaiveDate, q: f64, min_values: usize) -> Option<u64> {
        let mut all: Vec<u64> = self
            .days
            .iter()
            .filter(|(d, _)| *d < today)
            .flat_map(|(_, v)| v.iter().copied())
            .collect();
        if all.len() < min_values {
            return None;
        }
        quantile(&mut all, q)
    }

    pub fn approx_bytes(&self) -> usize {
        self.days.iter().map(|(_, v)| 32 + v.len() * 8).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles() {
        assert_eq!(quantile(&mut [5, 1, 3, 2, 4], 0.9), Some(5));
        assert_eq!(quantile(&mut [5, 1, 3, 2, 4], 0.5), Some(3));
        assert_eq!(quantile(&mut [], 0.5), None);
    }
}
