//! Care relationships: when a department (or a named user) had a reason to open a chart.
//!
//! The questions the engine asks for every event are "is this patient under the care of
//! this department, or of this user, at time t?" and "when did the patient's last care
//! episode end before t?". Intervals are kept per (patient, department) and per
//! (patient, user), sorted by start with a running maximum of ends, so each question is
//! one hash lookup and one binary search: O(log k) in the patient's episodes.
//!
//! A health system has ten million care rows, so nothing here is a map or a `Vec` per
//! patient: patients, departments and users are symbols ([`super::symbols`]), and every
//! patient's intervals are one range of a few flat arrays, found through an offset table
//! indexed by the patient's symbol. Times are 4-byte seconds ([`At`]); the index costs
//! about 45 bytes a row.

use super::csvload;
use super::symbols::{Hashed, Sym, Symbols};
use anyhow::{bail, Result};
use chrono::{DateTime, Utc};
use std::path::Path;

pub const COLUMNS: [&str; 5] = ["patient_id", "department", "user_id", "start", "end"];

// Positions in [`COLUMNS`], for [`csvload::Row`].
const PATIENT_ID: usize = 0;
const DEPARTMENT: usize = 1;
const USER_ID: usize = 2;
const START: usize = 3;
const END: usize = 4;

/// A care time: seconds since [`At::EPOCH`] in 32 bits, which reach from December 1931
/// to January 2068. Ten million rows hold five times as many times (starts, ends, running
/// reaches, episodes, per-department and per-user copies); at eight bytes each they were
/// a third of the index, and a reload holds two indexes at once.
///
/// Outside that range a time keeps its meaning for any event inside it: a start before
/// 1932 reads as "since always", an end after 2068 (`9999-12-31`, as some exports write
/// open-ended care) as ongoing, and an event's time is clamped the same way. Only a row
/// that starts after 2068 cannot be kept; it is rejected with its line.
type At = i32;

/// Conversions between a time in Unix seconds and [`At`].
mod at {
    use super::At;

    /// 2000-01-01T00:00:00Z in Unix seconds.
    pub const EPOCH: i64 = 946_684_800;
    /// The end of ongoing care, later than any stored or queried time.
    pub const ONGOING: At = At::MAX;

    fn clamp(secs: i64, max: At) -> At {
        secs.saturating_sub(EPOCH).clamp(At::MIN as i64, max as i64) as At
    }

    /// A row's start; `None` past the range (the row cannot be kept).
    pub fn start(secs: i64) -> Option<At> {
        (secs.saturating_sub(EPOCH) < ONGOING as i64).then(|| clamp(secs, ONGOING - 1))
    }

    /// A row's end: past the range, ongoing.
    pub fn end(secs: i64) -> At {
        clamp(secs, ONGOING)
    }

    /// An event's time: always before the end of ongoing care.
    pub fn query(secs: i64) -> At {
        clamp(secs, ONGOING - 1)
    }

    /// `a - b` in seconds, without overflow.
    pub fn diff(a: At, b: At) -> i64 {
        a as i64 - b as i64
    }

    /// A margin in seconds as an [`At`] span.
    pub const fn span(secs: i64) -> At {
        secs as At
    }
}

/// Intervals sorted by start; `reach[i]` is the latest end among the first i+1 intervals
/// ([`at::ONGOING`] for an ongoing one).
#[derive(Debug, Clone, Copy)]
struct Intervals<'a> {
    starts: &'a [At],
    reach: &'a [At],
}

impl Intervals<'_> {
    fn covers(&self, t: At) -> bool {
        let n = self.starts.partition_point(|&s| s <= t);
        n > 0 && self.reach[n - 1] >= t
    }

    /// True when some interval overlaps `[lo, hi]`.
    fn overlaps(&self, lo: At, hi: At) -> bool {
        let n = self.starts.partition_point(|&s| s <= hi);
        n > 0 && self.reach[n - 1] >= lo
    }

    /// True when some interval starts within `[lo, hi]`.
    fn overlaps_start(&self, lo: At, hi: At) -> bool {
        let n = self.starts.partition_point(|&s| s < lo);
        self.starts.get(n).is_some_and(|&s| s <= hi)
    }
}

/// Appends `pairs` (sorted by start, then end) as intervals: starts and running reach.
fn push_intervals(
    pairs: impl Iterator<Item = (At, At)>,
    starts: &mut Vec<At>,
    reach: &mut Vec<At>,
) {
    let mut m = At::MIN;
    for (s, e) in pairs {
        m = m.max(e);
        starts.push(s);
        reach.push(m);
    }
}

/// Every patient's intervals for each department (or each named user) of theirs.
#[derive(Debug, Default)]
struct Groups {
    /// Patient p's groups are `off[p]..off[p + 1]`.
    off: Vec<u32>,
    /// A group's department or user (symbol index), ascending within a patient.
    key: Vec<u32>,
    /// Group g's intervals are `first[g]..first[g + 1]` of `starts` and `reach`.
    first: Vec<u32>,
    starts: Vec<At>,
    reach: Vec<At>,
}

impl Groups {
    fn of(&self, patient: usize, key: Sym) -> Option<Intervals<'_>> {
        let (a, b) = (self.off[patient] as usize, self.off[patient + 1] as usize);
        let g = a + self.key[a..b].binary_search(&(key.index() as u32)).ok()?;
        let (s, e) = (self.first[g] as usize, self.first[g + 1] as usize);
        Some(Intervals {
            starts: &self.starts[s..e],
            reach: &self.reach[s..e],
        })
    }

    /// Adds one patient's rows: (key, start, end), sorted.
    fn push_patient(&mut self, rows: &[(u32, At, At)]) {
        for (i, &(k, _, _)) in rows.iter().enumerate() {
            if i == 0 || rows[i - 1].0 != k {
                self.key.push(k);
                self.first.push(self.starts.len() as u32);
                let group = rows[i..].iter().take_while(|r| r.0 == k);
                push_intervals(group.map(|r| (r.1, r.2)), &mut self.starts, &mut self.reach);
            }
        }
        self.off.push(self.key.len() as u32);
    }

    fn finish(&mut self) {
        self.first.push(self.starts.len() as u32);
        for v in [&mut self.off, &mut self.key, &mut self.first] {
            v.shrink_to_fit();
        }
        self.starts.shrink_to_fit();
        self.reach.shrink_to_fit();
    }
}

#[derive(Debug, Default)]
pub struct CareIndex {
    /// Patient ids, found by their folded key; a patient's symbol index is its position
    /// in the offset tables.
    patients: Symbols,
    departments: Symbols,
    users: Symbols,
    /// Patient p's rows (any department) are `all_off[p]..all_off[p + 1]` of `starts`,
    /// `reach` and `ends`, the first two sorted by start, `ends` sorted on its own.
    all_off: Vec<u32>,
    starts: Vec<At>,
    reach: Vec<At>,
    ends: Vec<At>,
    /// Patient p's episodes (overlapping care rows of any department merged into one
    /// stay: an admission with its consults, a visit with its pre-registration) are
    /// `episode_off[p]..episode_off[p + 1]`, disjoint and in order.
    episode_off: Vec<u32>,
    episodes: Vec<(At, At)>,
    by_dept: Groups,
    by_user: Groups,
    rows: usize,
    /// Rows set aside at load, each with its file, line and reason.
    pub rejected: Vec<String>,
}

/// What the care index says about one event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CareFacts {
    /// The user's department had the patient under care at the time.
    pub by_department: bool,
    /// The user was named on a care row covering the time.
    pub by_user: bool,
    /// The patient has any care episode covering the time, in any department.
    pub any_department: bool,
    /// Seconds since the patient's last episode (any department) ended, if one had.
    pub since_last_end: Option<i64>,
    /// The user's department had a care row in the same episode (the patient's stay,
    /// within [`ENCOUNTER_MARGIN`] of the event), though not covering the time itself.
    pub encounter_department: bool,
    /// The user was named on a care row in the same episode.
    pub encounter_user: bool,
    /// The user's department had a care row within [`NEAR_MARGIN`] of the time.
    pub near_department: bool,
    /// Seconds since the patient's last stay (an episode: overlapping rows merged) ended,
    /// if one ended before the time. Unlike `since_last_end`, a row ending inside a stay
    /// (registration done at admission) does not count.
    pub since_stay_end: Option<i64>,
    /// Seconds since the patient's last encounter ended: the last stay's end or, inside
    /// a stay, a handoff (a row ending as another begins within [`HANDOFF_MARGIN`]: the
    /// emergency visit handed to a ward). A registration row ending in the middle of a
    /// stay is no encounter's end.
    pub since_encounter_end: Option<i64>,
    /// Inside a stay, seconds since the latest handoff in it (an encounter of this stay,
    /// such as the emergency visit, ended and the patient moved on); `None` outside a stay
    /// or before any handoff. Back-office work on a sensitive chart while the patient is
    /// still admitted is explained by an encounter that has ended, not by an earlier stay.
    pub since_handoff: Option<i64>,
}

/// How close one row's start must be to another's end for the end to be a handoff
/// (an ADT transfer writes both at once).
pub const HANDOFF_MARGIN: i64 = 15 * 60;

/// How close to its own care row a department's access counts as part of that row's
/// work, for the charts where the whole stay is too loose an explanation.
pub const NEAR_MARGIN: i64 = 6 * 3600;

/// How far before an episode's first row and after its last one an access still belongs
/// to it: a consultant finishing a report the morning after discharge, a chart prepared
/// the evening before an admission.
pub const ENCOUNTER_MARGIN: i64 = 24 * 3600;

/// Merges sorted-by-start intervals into disjoint episodes, appended to `out`.
fn merge(iv: Intervals, out: &mut Vec<(At, At)>) {
    let first = out.len();
    for (i, &s) in iv.starts.iter().enumerate() {
        let e = iv.reach[i];
        match out[first..].last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
}

/// A care row as read, before the index is built.
struct Pending {
    start: At,
    end: At,
    patient: u32,
    dept: Option<Sym>,
    user: Option<Sym>,
}

impl CareIndex {
    pub fn load(path: &Path) -> Result<CareIndex> {
        let mut c = CareIndex {
            patients: Symbols::folding_case(),
            departments: Symbols::folding_case(),
            users: Symbols::folding_case(),
            ..CareIndex::default()
        };
        let rows = csvload::estimate_rows(path);
        let mut pending: Vec<Pending> = Vec::with_capacity(rows);
        // Patients have a few rows each.
        c.patients.reserve(rows / 2, rows / 2 * 12);
        let rejected = csvload::read(
            path,
            &COLUMNS,
            &["patient_id", "department", "start"],
            |row| {
                let patient = row.required(PATIENT_ID)?;
                let start = row.instant(START)?.ok_or_else(|| {
                    anyhow::anyhow!(
                        "{}:{}: column `start` is empty; every row needs it",
                        row.file.display(),
                        row.line
                    )
                })?;
                let end = row.instant(END)?;
                if end.is_some_and(|end| end < start) {
                    bail!(
                    "{}:{}: `end` is before `start`; swap them or leave `end` empty for ongoing care",
                    row.file.display(),
                    row.line
                );
                }
                let Some(start) = at::start(start) else {
                    bail!(
                        "{}:{}: `start` is after 2068, beyond the care times phiwatch keeps (1932 to 2068); check the column's format",
                        row.file.display(),
                        row.line
                    );
                };
                let end = end.map_or(at::ONGOING, at::end);
                if pending.len() >= u32::MAX as usize - 1 {
                    bail!(
                        "{}:{}: more than 4 billion care rows; split the file",
                        row.file.display(),
                        row.line
                    );
                }
                let dept = row
                    .get(DEPARTMENT)
                    .map(|d| c.departments.intern(d))
                    .transpose()?;
                let user = row.get(USER_ID).map(|u| c.users.intern(u)).transpose()?;
                pending.push(Pending {
                    start,
                    end,
                    patient: c.patients.intern(patient)?.0.index() as u32,
                    dept: dept.map(|d| d.0),
                    user: user.map(|u| u.0),
                });
                Ok(())
            },
        )?;
        c.rejected = rejected;
        c.rows = pending.len();
        c.patients.shrink_to_fit();
        c.build(pending);
        Ok(c)
    }

    /// The flat arrays from the rows, patient by patient.
    fn build(&mut self, mut pending: Vec<Pending>) {
        pending.sort_unstable_by_key(|r| (r.patient, r.start, r.end));
        let n = pending.len();
        let patients = self.patients.len();
        self.all_off = Vec::with_capacity(patients + 1);
        self.starts = Vec::with_capacity(n);
        self.reach = Vec::with_capacity(n);
        self.ends = Vec::with_capacity(n);
        self.episode_off = Vec::with_capacity(patients + 1);
        self.episodes = Vec::with_capacity(n);
        let with_user = pending.iter().filter(|r| r.user.is_some()).count();
        for (g, rows) in [(&mut self.by_dept, n), (&mut self.by_user, with_user)] {
            g.off = Vec::with_capacity(patients + 1);
            g.off.push(0);
            g.key = Vec::with_capacity(rows);
            g.first = Vec::with_capacity(rows + 1);
            g.starts = Vec::with_capacity(rows);
            g.reach = Vec::with_capacity(rows);
        }
        self.all_off.push(0);
        self.episode_off.push(0);
        let mut keyed: Vec<(u32, At, At)> = Vec::new();
        let mut rest = &pending[..];
        while let Some(first) = rest.first() {
            let len = rest
                .iter()
                .take_while(|r| r.patient == first.patient)
                .count();
            let (rows, next) = rest.split_at(len);
            rest = next;
            let a = self.starts.len();
            push_intervals(
                rows.iter().map(|r| (r.start, r.end)),
                &mut self.starts,
                &mut self.reach,
            );
            let all = Intervals {
                starts: &self.starts[a..],
                reach: &self.reach[a..],
            };
            merge(all, &mut self.episodes);
            self.ends.extend(rows.iter().map(|r| r.end));
            self.ends[a..].sort_unstable();
            self.all_off.push(self.starts.len() as u32);
            self.episode_off.push(self.episodes.len() as u32);
            for (groups, key) in [
                (
                    &mut self.by_dept,
                    (|r: &Pending| r.dept) as fn(&Pending) -> Option<Sym>,
                ),
                (&mut self.by_user, |r: &Pending| r.user),
            ] {
                keyed.clear();
                keyed.extend(
                    rows.iter()
                        .filter_map(|r| Some((key(r)?.index() as u32, r.start, r.end))),
                );
                keyed.sort_unstable();
                groups.push_patient(&keyed);
            }
        }
        drop(pending);
        self.episodes.shrink_to_fit();
        self.by_dept.finish();
        self.by_user.finish();
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Facts for `patient_key` opened by `user_key` of department `dept_key` at `t` (all
    /// three folded, as [`crate::event::key`] makes them).
    pub fn facts(
        &self,
        patient_key: &str,
        user_key: &str,
        dept_key: Option<&str>,
        t: DateTime<Utc>,
    ) -> CareFacts {
        self.facts_of(
            self.patient(self.patients.hashed(patient_key)),
            self.user(user_key),
            dept_key.and_then(|d| self.department(d)),
            t,
        )
    }

    /// A patient id with its hash, for [`CareIndex::patient`].
    pub fn hashed<'s>(&self, patient_key: &'s str) -> Hashed<'s> {
        self.patients.hashed(patient_key)
    }

    /// The patient's symbol here, for [`CareIndex::facts_of`].
    pub fn patient(&self, patient_key: Hashed) -> Option<Sym> {
        self.patients.get_hashed(patient_key)
    }

    /// A user's symbol here (named on care rows), for [`CareIndex::facts_of`].
    pub fn user(&self, user_key: &str) -> Option<Sym> {
        self.users.get(user_key)
    }

    /// A department's symbol here, for [`CareIndex::facts_of`].
    pub fn department(&self, dept_key: &str) -> Option<Sym> {
        self.departments.get(dept_key)
    }

    /// [`CareIndex::facts`] for a patient, user and department looked up already
    /// (enrichment looks the user's up once per load, see [`super::links`]).
    pub fn facts_of(
        &self,
        patient: Option<Sym>,
        user: Option<Sym>,
        dept: Option<Sym>,
        t: DateTime<Utc>,
    ) -> CareFacts {
        let t = at::query(t.timestamp());
        let Some(p) = patient.map(Sym::index) else {
            return CareFacts::default();
        };
        let (a, b) = (self.all_off[p] as usize, self.all_off[p + 1] as usize);
        let all = Intervals {
            starts: &self.starts[a..b],
            reach: &self.reach[a..b],
        };
        let ends = &self.ends[a..b];
        let episodes =
            &self.episodes[self.episode_off[p] as usize..self.episode_off[p + 1] as usize];
        let dept = dept.and_then(|d| self.by_dept.of(p, d));
        let user = user.and_then(|u| self.by_user.of(p, u));
        let by_department = dept.is_some_and(|iv| iv.covers(t));
        let by_user = user.is_some_and(|iv| iv.covers(t));
        // The episodes within the margin of t (at most a couple).
        let m = at::span(ENCOUNTER_MARGIN);
        let n = episodes.partition_point(|&(s, _)| s.saturating_sub(m) <= t);
        let near = || {
            episodes[..n]
                .iter()
                .rev()
                .take_while(move |&&(_, e)| e.saturating_add(m) >= t)
        };
        let in_episode =
            |iv: Option<Intervals>| iv.is_some_and(|iv| near().any(|&(s, e)| iv.overlaps(s, e)));
        let last_end = {
            let k = ends.partition_point(|&e| e <= t);
            (k > 0).then(|| ends[k - 1])
        };
        // Episodes are disjoint and in order, so the last one ended is the latest.
        let since_stay_end = {
            let k = episodes.partition_point(|&(_, e)| e <= t);
            (k > 0).then(|| at::diff(t, episodes[k - 1].1))
        };
        // Inside a stay: the latest handoff in it before t, else the stay before.
        let since_handoff =
            near()
                .find(|&&(s, e)| s <= t && t <= e)
                .and_then(|&(stay_start, _)| {
                    let k = ends.partition_point(|&e| e <= t);
                    ends[..k]
                        .iter()
                        .rev()
                        .take_while(|&&e| e >= stay_start)
                        .find(|&&e| {
                            let m = at::span(HANDOFF_MARGIN);
                            all.overlaps_start(e.saturating_sub(m), e.saturating_add(m))
                        })
                        .map(|&e| at::diff(t, e))
                });
        let in_stay = near().any(|&(s, e)| s <= t && t <= e);
        let since_encounter_end = if in_stay {
            since_handoff.or(since_stay_end)
        } else {
            since_stay_end
        };
        CareFacts {
            by_department,
            by_user,
            any_department: all.covers(t),
            since_last_end: last_end.map(|e| at::diff(t, e)),
            encounter_department: by_department || in_episode(dept),
            encounter_user: by_user || in_episode(user),
            since_stay_end,
            since_encounter_end,
            since_handoff,
            near_department: dept.is_some_and(|iv| {
                let m = at::span(NEAR_MARGIN);
                iv.overlaps(t.saturating_sub(m), t.saturating_add(m))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn bad_rows_are_set_aside_and_the_rest_loads() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "patient_id,department,user_id,start,end").unwrap();
        writeln!(f, "P1,Cardiology,,2024-05-01T00:00:00Z,").unwrap();
        writeln!(
            f,
            "P2,Cardiology,,2024-05-03T00:00:00Z,2024-05-01T00:00:00Z"
        )
        .unwrap();
        writeln!(f, "P3,Cardiology,,yesterday,").unwrap();
        writeln!(f, ",Cardiology,,2024-05-01T00:00:00Z,").unwrap();
        writeln!(f, "P4,Oncology,,2024-05-01T00:00:00Z,").unwrap();
        let c = CareIndex::load(f.path()).unwrap();
        assert_eq!(c.len(), 2, "the good rows load");
        assert_eq!(c.rejected.len(), 3, "{:?}", c.rejected);
        let at = |line: u64| format!("{}:{line}:", f.path().display());
        assert!(c.rejected[0].starts_with(&at(3)) && c.rejected[0].contains("before `start`"));
        assert!(c.rejected[1].starts_with(&at(4)) && c.rejected[1].contains("not a time"));
        assert!(c.rejected[2].starts_with(&at(5)) && c.rejected[2].contains("patient_id"));
    }

    #[test]
    fn covers_and_last_end() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "patient_id,department,user_id,start,end").unwrap();
        writeln!(
            f,
            "P1,Cardiology,,2024-05-01T00:00:00Z,2024-05-03T00:00:00Z"
        )
        .unwrap();
        writeln!(
            f,
            "P1,Radiology,u7,2024-05-02T10:00:00Z,2024-05-02T11:00:00Z"
        )
        .unwrap();
        writeln!(f, "p1,ICU,,2024-05-10T00:00:00Z,").unwrap();
        let c = CareIndex::load(f.path()).unwrap();
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let f1 = c.facts("p1", "u9", Some("cardiology"), t("2024-05-02T12:00:00Z"));
        assert!(f1.by_department && !f1.by_user && f1.any_department);
        let f2 = c.facts("p1", "u7", Some("radiology"), t("2024-05-02T10:30:00Z"));
        assert!(f2.by_department && f2.by_user);
        let f3 = c.facts("p1", "u9", Some("cardiology"), t("2024-05-05T00:00:00Z"));
        assert!(!f3.by_department && !f3.any_department);
        assert_eq!(f3.since_last_end, Some(2 * 86400));
        let f4 = c.facts("p1", "u9", Some("icu"), t("2025-01-01T00:00:00Z"));
        assert!(f4.by_department);
    }

    /// Care times are kept in 32 bits; outside 1932-2068 they keep their meaning for the
    /// events inside it, and a start that cannot be kept is a rejected row, not a panic.
    #[test]
    fn times_beyond_the_kept_range_keep_their_meaning() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "patient_id,department,user_id,start,end").unwrap();
        // Open-ended care written with a far-future end, as some exports do.
        writeln!(f, "P1,Oncology,,2024-05-01T00:00:00Z,9999-12-31").unwrap();
        // A relationship recorded as starting long ago.
        writeln!(f, "P2,Geriatrics,,1900-01-01,2024-05-01T00:00:00Z").unwrap();
        writeln!(f, "P3,Oncology,,2100-01-01,").unwrap();
        let c = CareIndex::load(f.path()).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c.rejected.len(), 1, "{:?}", c.rejected);
        assert!(c.rejected[0].contains("after 2068"), "{}", c.rejected[0]);
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        for when in [
            "2024-06-01T00:00:00Z",
            "2067-12-31T00:00:00Z",
            "2200-01-01T00:00:00Z",
        ] {
            let f1 = c.facts("p1", "u1", Some("oncology"), t(when));
            assert!(f1.by_department && f1.since_last_end.is_none(), "{when}");
        }
        let f2 = c.facts("p2", "u1", Some("geriatrics"), t("1990-01-01T00:00:00Z"));
        assert!(f2.by_department);
        let f3 = c.facts("p2", "u1", Some("geriatrics"), t("2024-05-03T00:00:00Z"));
        assert!(!f3.by_department);
        assert_eq!(f3.since_last_end, Some(2 * 86_400));
        assert_eq!(f3.since_stay_end, Some(2 * 86_400));
    }

    #[test]
    fn a_department_on_the_same_stay_explains_it_outside_its_row() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "patient_id,department,user_id,start,end").unwrap();
        // A week's admission in medicine; radiology consulted for 12 hours on day 2.
        writeln!(f, "P1,Medicine,,2024-05-01T00:00:00Z,2024-05-08T00:00:00Z").unwrap();
        writeln!(
            f,
            "P1,Radiology,u7,2024-05-02T10:00:00Z,2024-05-02T22:00:00Z"
        )
        .unwrap();
        // A clinic visit a month later, without radiology.
        writeln!(f, "P1,Clinic,,2024-06-10T08:00:00Z,2024-06-11T08:00:00Z").unwrap();
        let c = CareIndex::load(f.path()).unwrap();
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let day5 = c.facts("p1", "u8", Some("radiology"), t("2024-05-05T09:00:00Z"));
        assert!(!day5.by_department && day5.encounter_department && !day5.encounter_user);
        assert!(!day5.near_department);
        let evening = c.facts("p1", "u8", Some("radiology"), t("2024-05-03T03:00:00Z"));
        assert!(evening.near_department);
        let named = c.facts("p1", "u7", None, t("2024-05-05T09:00:00Z"));
        assert!(named.encounter_user);
        // The morning after discharge is within the margin; a week later is not.
        let after = c.facts("p1", "u8", Some("radiology"), t("2024-05-08T09:00:00Z"));
        assert!(after.encounter_department);
        let later = c.facts("p1", "u8", Some("radiology"), t("2024-05-15T09:00:00Z"));
        assert!(!later.encounter_department);
        // Inside the stay no stay has ended yet, though the radiology row has.
        assert_eq!(day5.since_stay_end, None);
        assert!(day5.since_last_end.is_some());
        assert_eq!(later.since_stay_end, Some(7 * 86_400 + 9 * 3600));
        // Another stay without the department does not count.
        let visit = c.facts("p1", "u8", Some("radiology"), t("2024-06-10T09:00:00Z"));
        assert!(!visit.encounter_department);
        // A consult row ending mid-stay is no encounter's end; the stay's end is.
        assert_eq!(day5.since_encounter_end, None);
        assert_eq!(later.since_encounter_end, later.since_stay_end);
        assert_eq!(day5.since_handoff, None);
        // Readmitted a month later: the earlier stay ended, but nothing of this one has.
        assert_eq!(visit.since_stay_end, Some((33 * 24 + 9) * 3600));
        assert_eq!(visit.since_handoff, None);
    }

    #[test]
    fn an_emergency_visit_handed_to_a_ward_is_an_encounter_that_ended() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "patient_id,department,user_id,start,end").unwrap();
        // Registration at check-in, the emergency visit, then admitted to cardiology.
        writeln!(
            f,
            "P1,Registration,,2024-05-01T10:00:00Z,2024-05-01T12:15:00Z"
        )
        .unwrap();
        writeln!(f, "P1,Emergency,,2024-05-01T10:15:00Z,2024-05-01T16:00:00Z").unwrap();
        writeln!(
            f,
            "P1,Cardiology,,2024-05-01T16:00:00Z,2024-05-06T10:00:00Z"
        )
        .unwrap();
        let c = CareIndex::load(f.path()).unwrap();
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        // In the emergency visit, after registration's row ended: nothing has ended.
        let ed = c.facts("p1", "b1", Some("billing"), t("2024-05-01T14:00:00Z"));
        assert_eq!(ed.since_encounter_end, None);
        // Two days into the admission: the emergency visit ended (a handoff).
        let ward = c.facts("p1", "b1", Some("billing"), t("2024-05-03T16:00:00Z"));
        assert_eq!(ward.since_stay_end, None);
        assert_eq!(ward.since_encounter_end, Some(2 * 86_400));
        assert_eq!(ed.since_handoff, None);
        assert_eq!(ward.since_handoff, Some(2 * 86_400));
        // After discharge the handoff is history: the stay's end is what counts.
        let home = c.facts("p1", "b1", Some("billing"), t("2024-05-09T10:00:00Z"));
        assert_eq!(home.since_handoff, None);
        assert_eq!(home.since_stay_end, Some(3 * 86_400));
    }
}
