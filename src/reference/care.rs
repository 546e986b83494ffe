//! Care relationships: when a department (or a named user) had a reason to open a chart.
//!
//! The questions the engine asks for every event are "is this patient under the care of
//! this department, or of this user, at time t?" and "when did the patient's last care
//! episode end before t?". Intervals are kept per (patient, department) and per
//! (patient, user), sorted by start with a running maximum of ends, so each question is
//! one hash lookup and one binary search: O(log k) in the patient's episodes.

use super::csvload;
use crate::event::key;
use anyhow::{bail, Result};
use chrono::{DateTime, Utc};
use rustc_hash::FxHashMap;
use std::path::Path;

pub const COLUMNS: [&str; 5] = ["patient_id", "department", "user_id", "start", "end"];

/// Intervals sorted by start; `reach[i]` is the latest end among the first i+1 intervals
/// (i64::MAX for an ongoing one).
#[derive(Debug, Default, Clone)]
struct Intervals {
    starts: Vec<i64>,
    reach: Vec<i64>,
    ends: Vec<i64>,
}

impl Intervals {
    fn finish(pairs: &mut [(i64, i64)]) -> Intervals {
        pairs.sort_unstable();
        let mut reach = Vec::with_capacity(pairs.len());
        let mut m = i64::MIN;
        for &(_, e) in pairs.iter() {
            m = m.max(e);
            reach.push(m);
        }
        let mut ends: Vec<i64> = pairs.iter().map(|p| p.1).collect();
        ends.sort_unstable();
        Intervals {
            starts: pairs.iter().map(|p| p.0).collect(),
            reach,
            ends,
        }
    }

    fn covers(&self, t: i64) -> bool {
        let n = self.starts.partition_point(|&s| s <= t);
        n > 0 && self.reach[n - 1] >= t
    }

    /// True when some interval overlaps `[lo, hi]`.
    fn overlaps(&self, lo: i64, hi: i64) -> bool {
        let n = self.starts.partition_point(|&s| s <= hi);
        n > 0 && self.reach[n - 1] >= lo
    }

    /// True when some interval starts within `[lo, hi]`.
    fn overlaps_start(&self, lo: i64, hi: i64) -> bool {
        let n = self.starts.partition_point(|&s| s < lo);
        self.starts.get(n).is_some_and(|&s| s <= hi)
    }

    /// The latest end strictly before or at `t`.
    fn last_end_before(&self, t: i64) -> Option<i64> {
        let n = self.ends.partition_point(|&e| e <= t);
        (n > 0).then(|| self.ends[n - 1])
    }
}

/// One patient's episodes: all of them, and split by department and by named user.
#[derive(Debug, Default)]
struct PatientCare {
    all: Intervals,
    /// The patient's episodes: overlapping care rows of any department merged into one
    /// stay (an admission with its consults, a visit with its pre-registration).
    episodes: Vec<(i64, i64)>,
    by_dept: FxHashMap<String, Intervals>,
    by_user: FxHashMap<String, Intervals>,
}

#[derive(Debug, Default)]
pub struct CareIndex {
    by_patient: FxHashMap<String, PatientCare>,
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

/// Merges sorted-by-start intervals into disjoint episodes.
fn merge(iv: &Intervals) -> Vec<(i64, i64)> {
    let mut out: Vec<(i64, i64)> = Vec::new();
    for (i, &s) in iv.starts.iter().enumerate() {
        let e = iv.reach[i];
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

#[derive(Default)]
struct Pending {
    all: Vec<(i64, i64)>,
    by_dept: FxHashMap<String, Vec<(i64, i64)>>,
    by_user: FxHashMap<String, Vec<(i64, i64)>>,
}

impl CareIndex {
    pub fn load(path: &Path) -> Result<CareIndex> {
        let mut pending: FxHashMap<String, Pending> = FxHashMap::default();
        let mut rows = 0;
        let rejected = csvload::read(path, &["patient_id", "department", "start"], |row| {
            let p = key(row.required("patient_id")?);
            let start = row.instant("start")?.expect("required above").timestamp();
            let end = row.instant("end")?.map_or(i64::MAX, |t| t.timestamp());
            if end < start {
                bail!(
                    "{}:{}: `end` is before `start`; swap them or leave `end` empty for ongoing care",
                    row.file.display(),
                    row.line
                );
            }
            let entry = pending.entry(p).or_default();
            if let Some(d) = row.get("department") {
                entry.by_dept.entry(key(d)).or_default().push((start, end));
            }
            if let Some(u) = row.get("user_id") {
                entry.by_user.entry(key(u)).or_default().push((start, end));
            }
            entry.all.push((start, end));
            rows += 1;
            Ok(())
        })?;
        let fin = |m: FxHashMap<String, Vec<(i64, i64)>>| {
            m.into_iter()
                .map(|(k, mut v)| (k, Intervals::finish(&mut v)))
                .collect()
        };
        let by_patient = pending
            .into_iter()
            .map(|(k, mut p)| {
                let all = Intervals::finish(&mut p.all);
                let care = PatientCare {
                    episodes: merge(&all),
                    all,
                    by_dept: fin(p.by_dept),
                    by_user: fin(p.by_user),
                };
                (k, care)
            })
            .collect();
        Ok(CareIndex {
            by_patient,
            rows,
            rejected,
        })
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Facts for `patient_key` opened by `user_key` of department `dept_key` at `t`.
    pub fn facts(
        &self,
        patient_key: &str,
        user_key: &str,
        dept_key: Option<&str>,
        t: DateTime<Utc>,
    ) -> CareFacts {
        let t = t.timestamp();
        let Some(pc) = self.by_patient.get(patient_key) else {
            return CareFacts::default();
        };
        let dept = dept_key.and_then(|d| pc.by_dept.get(d));
        let user = pc.by_user.get(user_key);
        let by_department = dept.is_some_and(|iv| iv.covers(t));
        let by_user = user.is_some_and(|iv| iv.covers(t));
        // The episodes within the margin of t (at most a couple).
        let m = ENCOUNTER_MARGIN;
        let n = pc
            .episodes
            .partition_point(|&(s, _)| s.saturating_sub(m) <= t);
        let near: Vec<(i64, i64)> = pc.episodes[..n]
            .iter()
            .rev()
            .take_while(|&&(_, e)| e.saturating_add(m) >= t)
            .copied()
            .collect();
        let in_episode = |iv: Option<&Intervals>| {
            iv.is_some_and(|iv| near.iter().any(|&(s, e)| iv.overlaps(s, e)))
        };
        let since_stay_end = {
            let k = pc.episodes.partition_point(|&(_, e)| e <= t);
            pc.episodes[..k]
                .iter()
                .map(|&(_, e)| e)
                .max()
                .map(|e| t - e)
        };
        // Inside a stay: the latest handoff in it before t, else the stay before.
        let since_encounter_end = match near.iter().find(|&&(s, e)| s <= t && t <= e) {
            Some(&(stay_start, _)) => {
                let ends = &pc.all.ends;
                let k = ends.partition_point(|&e| e <= t);
                ends[..k]
                    .iter()
                    .rev()
                    .take_while(|&&e| e >= stay_start)
                    .find(|&&e| {
                        pc.all
                            .overlaps_start(e - HANDOFF_MARGIN, e + HANDOFF_MARGIN)
                    })
                    .map(|&e| t - e)
                    .or(since_stay_end)
            }
            None => since_stay_end,
        };
        CareFacts {
            by_department,
            by_user,
            any_department: pc.all.covers(t),
            since_last_end: pc.all.last_end_before(t).map(|e| t - e),
            encounter_department: by_department || in_episode(dept),
            encounter_user: by_user || in_episode(user),
            since_stay_end,
            since_encounter_end,
            near_department: dept.is_some_and(|iv| {
                iv.overlaps(t.saturating_sub(NEAR_MARGIN), t.saturating_add(NEAR_MARGIN))
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
    }
}
