//! Who works when. Shifts follow the role: 12-hour nursing shifts three days a week (day
//! or night), physicians on weekdays with some weekend call, 8-hour technician and
//! registration rotations around the clock, office hours for HIM, billing and IT.
//! Every ward has at least one night nurse every night, so chart access at 3am is normal
//! for some users and would be strange for others.

use super::care::Care;
use super::clock::{self, HOUR, MINUTE};
use super::hospital::{self as hosp, DeptKind, Hospital, Role, ShiftKind, DEPTS};
use chrono::{Duration, NaiveDate};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

#[derive(Debug, Clone, Copy)]
pub struct Shift {
    pub start: i64,
    pub end: i64,
}

/// A shift as local start time (seconds after midnight) and length (seconds).
fn shape(
    rng: &mut ChaCha8Rng,
    role: Role,
    dept: usize,
    kind: ShiftKind,
    weekend: bool,
) -> Option<(i64, i64)> {
    let h = 3600;
    let jitter = |rng: &mut ChaCha8Rng, m: i64| rng.gen_range(-m * 60..=m * 60);
    let p_work: f64;
    let (s, len) = match (role, kind) {
        (Role::Nurse, ShiftKind::Night) => {
            p_work = 3.0 / 7.0;
            (18 * h + 45 * 60, 12 * h + 30 * 60)
        }
        (Role::Nurse, _) => {
            p_work = 3.0 / 7.0;
            (6 * h + 45 * 60, 12 * h + 30 * 60)
        }
        (Role::Physician, k) if dept == hosp::ED || k == ShiftKind::Night => {
            p_work = 4.0 / 7.0;
            if k == ShiftKind::Night {
                (21 * h, 10 * h)
            } else {
                (7 * h + jitter(rng, 60), 10 * h)
            }
        }
        (Role::Physician, _) => {
            if weekend {
                p_work = 0.25;
                (8 * h, 6 * h)
            } else {
                p_work = 0.9;
                (7 * h + jitter(rng, 45), 10 * h + jitter(rng, 60) + 30 * 60)
            }
        }
        (Role::Resident, ShiftKind::Night) => {
            p_work = 5.0 / 7.0;
            (18 * h, 12 * h + 30 * 60)
        }
        (Role::Resident, _) => {
            p_work = 5.0 / 7.0;
            (6 * h, 12 * h)
        }
        (_, ShiftKind::Office) => {
            if weekend {
                return None;
            }
            p_work = 0.93;
            if role == Role::RegistrationClerk && rng.gen_bool(0.5) {
                (10 * h + jitter(rng, 20), 8 * h + 30 * 60)
            } else {
                (
                    7 * h + 45 * 60 + jitter(rng, 40),
                    8 * h + 30 * 60 + jitter(rng, 30),
                )
            }
        }
        (_, ShiftKind::Day) => {
            p_work = 5.0 / 7.0;
            (7 * h + jitter(rng, 10), 8 * h + 30 * 60)
        }
        (_, ShiftKind::Evening) => {
            p_work = 5.0 / 7.0;
            (15 * h + jitter(rng, 10), 8 * h + 30 * 60)
        }
        (_, ShiftKind::Night) => {
            p_work = 5.0 / 7.0;
            (23 * h + jitter(rng, 10), 8 * h + 30 * 60)
        }
    };
    rng.gen_bool(p_work).then_some((s, len))
}

fn active(h: &Hospital, s: usize, date: NaiveDate) -> bool {
    let st = &h.staff[s];
    st.hire <= date && st.termination.is_none_or(|t| date < t)
}

/// Shifts per staff member, in time order.
pub fn build(
    h: &Hospital,
    care: &Care,
    rng: &mut ChaCha8Rng,
    start: NaiveDate,
    days: u32,
) -> Vec<Vec<Shift>> {
    let mut shifts: Vec<Vec<Shift>> = vec![Vec::new(); h.staff.len()];
    let mut night_cover = vec![false; DEPTS.len()];
    for d in 0..days as i64 {
        let date = start + Duration::days(d);
        let weekend = clock::is_weekend(date);
        night_cover.iter_mut().for_each(|c| *c = false);
        for (i, st) in h.staff.iter().enumerate() {
            if !active(h, i, date) {
                continue;
            }
            if let Some((s, len)) = shape(rng, st.role, st.dept, st.shift, weekend) {
                let start_ms = clock::local_ms(date, s);
                let mut end_ms = clock::local_ms(date, s + len) + rng.gen_range(0..20) * MINUTE;
                // The termination date is the first day not worked: a night shift before
                // it ends at midnight.
                if let Some(t) = st.termination {
                    end_ms = end_ms.min(clock::local_ms(t, 0));
                }
                if admitted(care, i, start_ms, end_ms) {
                    continue;
                }
                if st.role == Role::Nurse && st.shift == ShiftKind::Night {
                    night_cover[st.dept] = true;
                }
                shifts[i].push(Shift {
                    start: start_ms,
                    end: end_ms,
                });
            }
        }
        // No ward without a night nurse: call in one of its night nurses.
        for dept in 0..DEPTS.len() {
            if night_cover[dept]
                || !matches!(
                    DEPTS[dept].kind,
                    DeptKind::Ward { .. } | DeptKind::Emergency
                )
            {
                continue;
            }
            let night: Vec<usize> = h.by_dept[dept]
                .iter()
                .map(|&i| i as usize)
                .filter(|&i| {
                    let s = &h.staff[i];
                    s.role == Role::Nurse && s.shift == ShiftKind::Night && active(h, i, date)
                })
                .filter(|&i| {
                    shifts[i]
                        .last()
                        .is_none_or(|l| l.end < clock::local_ms(date, 12 * 3600))
                })
                .collect();
            if night.is_empty() {
                continue;
            }
            let i = night[rng.gen_range(0..night.len())];
            let start_ms = clock::local_ms(date, 18 * 3600 + 45 * 60);
            let mut end_ms = start_ms + 12 * HOUR + 30 * MINUTE;
            if let Some(t) = h.staff[i].termination {
                end_ms = end_ms.min(clock::local_ms(t, 0));
            }
            shifts[i].push(Shift {
                start: start_ms,
                end: end_ms,
            });
        }
    }
    shifts
}

fn admitted(care: &Care, staff: usize, start: i64, end: i64) -> bool {
    care.staff_admitted[staff]
        .iter()
        .any(|&(a, b)| a < end && start < b)
}
