//! What several kinds share, kept in one place so that they count and word things alike:
//! a user's value per day with its bounded history, the distinct patients of a day, and
//! how a patient and a number are taken into an alert.

use crate::engine::keyed::{get_or_default, Keyed};
use crate::engine::stats::{quantile, DayValues, HISTORY_DAYS};
use crate::enrich::Enriched;
use chrono::{Datelike, Duration, NaiveDate};
use hashbrown::hash_map::EntryRef;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Distinct patients remembered per user, detector and day; beyond it the count stops
/// growing (the detectors have long fired by then).
const MAX_DAY_PATIENTS: usize = 2048;

/// Distinct patients of one day (comparison key -> display spelling), capped so that a
/// user opening thousands of charts cannot grow the state without bound. Held in a
/// [`Keyed`] map (written to snapshots as the same JSON map as before) for its
/// `entry_ref`: a patient new today is found missing and inserted with one hash and one
/// probe, where checking for it and then inserting it took two.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Patients(#[serde(with = "crate::engine::keyed")] Keyed<String>);

impl Patients {
    /// Adds the event's patient ([`patient_ref`]) unless already there or the cap is
    /// reached. Borrowed: most events name a patient already counted today, and those
    /// copy nothing; the display spelling (read from the directory) is looked at only
    /// for a patient new today.
    pub fn add_of(&mut self, e: &Enriched) {
        let Some(k) = e.patient_key.as_deref() else {
            return;
        };
        if self.0.len() >= MAX_DAY_PATIENTS {
            return;
        }
        if let EntryRef::Vacant(v) = self.0.entry_ref(k) {
            if let Some(d) = e.patient_display() {
                v.insert(d.to_string());
            }
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }

    /// As (key, display) in key order, so an alert lists them the same way every run.
    pub fn sorted(&self) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> =
            self.0.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        v.sort();
        v
    }

    pub fn approx_bytes(&self) -> usize {
        self.0.iter().map(|(k, v)| k.len() + v.len() + 48).sum()
    }
}

/// A user's value for the current day and for the days before it, for kinds that judge
/// today against the user's own past (and feed the peer group's). Field names are those
/// of snapshots written before the kinds had their own files, so such snapshots still
/// load; `serde(default)` lets one load into any kind's state.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Daily {
    pub day: Option<NaiveDate>,
    /// Distinct patients of the day.
    pub patients: Patients,
    pub value: u64,
    pub events: u64,
    pub first_ms: i64,
    /// Past days' values, oldest first.
    pub history: VecDeque<(NaiveDate, u64)>,
    /// Window the detector last alerted in; it alerts at most once per window.
    pub fired: Option<NaiveDate>,
    /// First day judged after the learning period: days before it are what taught the
    /// baseline, never part of a rolling total that is judged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub judged_from: Option<NaiveDate>,
    /// Past days at a turn of the month (its last and first days) with a value, kept for
    /// a year beyond `history`: month and quarter close come round once a month or once a
    /// quarter, so 28 days of history would forget them.
    #[serde(skip_serializing_if = "VecDeque::is_empty")]
    pub turns: VecDeque<(NaiveDate, u64)>,
    /// The last answer of [`Daily::usual`] and what it was asked. History changes only
    /// when a day rolls over, yet `usual` is asked on every event after the learning
    /// period, and computing it sums a window for every past day and sorts: it was a
    /// tenth of the engine's time. Not in snapshots.
    #[serde(skip)]
    usual_cache: Option<UsualCache>,
}

/// What [`Daily::usual`] answered, and for which question and history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct UsualCache {
    min_days: u32,
    today: NaiveDate,
    period: u32,
    history_len: usize,
    history_last: Option<(NaiveDate, u64)>,
    answer: Option<u64>,
}

/// Days at each end of a month that count as its turn (month-close work).
const TURN_DAYS: u32 = 5;
/// How long turn-of-the-month values are remembered.
const TURN_MEMORY_DAYS: i64 = 400;

/// The month boundary a day is the turn of, as the first day of the month that starts
/// there; None in the middle of a month.
pub fn month_turn(d: NaiveDate) -> Option<NaiveDate> {
    let first = d.with_day(1)?;
    if d.day() <= TURN_DAYS {
        return Some(first);
    }
    let next = first.checked_add_months(chrono::Months::new(1))?;
    ((next - d).num_days() <= TURN_DAYS as i64).then_some(next)
}

impl Daily {
    /// Starts a new day, moving the finished one into history. The peer group gets the
    /// user's total over the `period` days ending with the finished day.
    pub fn roll(&mut self, today: NaiveDate, peers: Option<&mut DayValues>, period: u32) {
        if self.day == Some(today) {
            return;
        }
        if let Some(d) = self.day {
            if self.value > 0 && month_turn(d).is_some() {
                self.turns.push_back((d, self.value));
                while self
                    .turns
                    .front()
                    .is_some_and(|t| (today - t.0).num_days() > TURN_MEMORY_DAYS)
                {
                    self.turns.pop_front();
                }
            }
            self.history.push_back((d, self.value));
            while self.history.len() > HISTORY_DAYS {
                self.history.pop_front();
            }
            if let Some(p) = peers {
                p.add(d, self.sum_window(d, period));
            }
        }
        self.usual_cache = None;
        self.day = Some(today);
        self.value = 0;
        self.events = 0;
        self.patients.clear();
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
    pub fn usual(&mut self, min_days: u32, today: NaiveDate, period: u32) -> Option<u64> {
        let asked = UsualCache {
            min_days,
            today,
            period,
            history_len: self.history.len(),
            history_last: self.history.back().copied(),
            answer: None,
        };
        if let Some(c) = self.usual_cache {
            if (UsualCache { answer: None, ..c }) == asked {
                return c.answer;
            }
        }
        let answer = self.compute_usual(min_days, today, period);
        self.usual_cache = Some(UsualCache { answer, ..asked });
        answer
    }

    fn compute_usual(&self, min_days: u32, today: NaiveDate, period: u32) -> Option<u64> {
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
        let p90 = quantile(&mut sums, 0.9);
        // A monthly rhythm: what the user did at an earlier turn of the month (month and
        // quarter close) is usual at this one, for a day and for a rolling period.
        // Two days of one turn are at most 9 days apart, of two turns at least 19: an
        // earlier turn is 10 days back or more (no date arithmetic per remembered day).
        let turn = month_turn(today).and_then(|_| {
            self.turns
                .iter()
                .filter(|(d, _)| (today - *d).num_days() >= TURN_DAYS as i64 * 2)
                .map(|t| t.1)
                .max()
        });
        if period != 1 {
            return p90.map(|u| u.max(turn.unwrap_or(0)));
        }
        // A weekly rhythm: what the user did on this weekday before (the billing report
        // run every Monday) is usual for this weekday, though a daily 90th percentile of
        // a once-a-week habit is zero. Periodic work slips by a day now and then (a
        // holiday, a day off), so the weekdays either side count too.
        let weekday = self
            .history
            .iter()
            .filter(|(d, _)| *d < today && matches!((today - *d).num_days() % 7, 0 | 1 | 6))
            .map(|h| h.1)
            .max();
        p90.max(weekday).max(turn)
    }

    pub fn sum_since(&self, from: NaiveDate) -> u64 {
        self.history
            .iter()
            .filter(|(d, _)| *d >= from)
            .map(|h| h.1)
            .sum()
    }

    pub fn approx_bytes(&self) -> usize {
        96 + (self.history.len() + self.turns.len()) * 16 + self.patients.approx_bytes()
    }
}

/// The event's patient as (comparison key, display spelling), when it names one.
pub fn patient(e: &Enriched) -> Option<(String, String)> {
    patient_ref(e).map(|(k, d)| (k.to_string(), d.to_string()))
}

/// [`patient`] borrowed from the event, for state that copies it only when new.
pub fn patient_ref<'e>(e: &'e Enriched) -> Option<(&'e str, &'e str)> {
    Some((e.patient_key.as_deref()?, e.patient_display()?))
}

/// The peer group's daily values of detector `id`, by "detector\u{1f}group", created
/// empty on first use. The key is built in a buffer kept per thread and looked up once,
/// copied only when new: this runs for every event of every baseline and burst detector,
/// and the group nearly always has values already (looking it up a second time, after a
/// check for it, was about 2% of the engine's time).
pub fn peer_values<'p>(
    peers: &'p mut Keyed<DayValues>,
    id: &str,
    group: &str,
) -> &'p mut DayValues {
    thread_local! {
        static KEY: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
    }
    KEY.with_borrow_mut(|k| {
        k.clear();
        k.push_str(id);
        k.push('\u{1f}');
        k.push_str(group);
        get_or_default(peers, k)
    })
}

/// How a count reads in an alert; one place, so every kind words numbers alike.
pub fn human(n: u64) -> String {
    n.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        // 2026-03-02 is a Monday.
        NaiveDate::from_ymd_opt(2026, 3, d).unwrap()
    }

    /// A weekly report is usual on its weekday (or a day either side: periodic work
    /// slips), though a daily 90th percentile of it is zero; it does not make the other
    /// weekdays' exports usual.
    #[test]
    fn a_weekly_habit_is_usual_on_its_weekday_give_or_take_a_day() {
        let mut st = Daily::default();
        for d in 2..=27 {
            let value = if d == 2 || d == 16 { 500 } else { 0 };
            st.history.push_back((day(d), value));
        }
        // Monday the 30th: the report's weekday.
        assert_eq!(st.usual(5, day(30), 1), Some(500));
        // Tuesday the 31st: a day late, as periodic work sometimes is.
        assert_eq!(st.usual(5, day(31), 1), Some(500));
        // Wednesday the 25th: nothing usual.
        assert_eq!(st.usual(5, day(25), 1), Some(0));
        // Rolling periods keep the plain statistic.
        assert_eq!(st.usual(5, day(30), 7), Some(500));
    }

    /// A month-close export is remembered beyond the 28 days of history and is usual at
    /// a later turn of the month, not in the middle of one.
    #[test]
    fn a_monthly_habit_is_usual_at_the_turn_of_the_month() {
        let mut st = Daily::default();
        let mut d = NaiveDate::from_ymd_opt(2026, 2, 2).unwrap();
        let end = NaiveDate::from_ymd_opt(2026, 3, 31).unwrap();
        while d < end {
            st.roll(d, None, 1);
            st.value = if d.day() == 2 && d.month() == 2 {
                600
            } else {
                3
            };
            d += Duration::days(1);
        }
        assert_eq!(month_turn(end), NaiveDate::from_ymd_opt(2026, 4, 1));
        assert_eq!(month_turn(day(2)), NaiveDate::from_ymd_opt(2026, 3, 1));
        assert_eq!(month_turn(day(17)), None);
        assert_eq!(st.usual(5, end, 1), Some(600), "the turn of March/April");
        assert_eq!(st.usual(5, day(17), 1), Some(3), "the middle of March");
    }
}
