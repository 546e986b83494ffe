//! Encounters and the care rows they leave in `care.csv`.
//!
//! A care row is the reason a department (or one named clinician) may open a chart. Each
//! encounter writes the rows a real ADT/orders feed would: the treating department, often
//! a named attending, registration at check-in, and the ancillary departments (pharmacy,
//! laboratory, radiology) that got orders. Encounters start 30 days before the month so
//! that the first days have inpatients and recently discharged patients.

use super::clock::{self, DAY, HOUR, MINUTE};
use super::hospital::{self as hosp, DeptKind, Hospital, Role, DEPTS};
use chrono::{Duration, NaiveDate};
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Care rows whose end lies beyond the month are written with an empty end (ongoing).
pub const ONGOING: i64 = i64::MAX;

/// Days of encounters generated before the month starts.
pub const LEAD_DAYS: i64 = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncKind {
    Admission,
    Emergency,
    Clinic,
}

pub struct Encounter {
    pub patient: u32,
    pub kind: EncKind,
    pub end: i64,
}

pub struct CareRow {
    pub patient: u32,
    pub dept: usize,
    pub user: Option<u32>,
    pub start: i64,
    pub end: i64,
}

impl CareRow {
    pub fn covers(&self, ts: i64) -> bool {
        self.start <= ts && ts <= self.end
    }
}

pub struct Care {
    pub encounters: Vec<Encounter>,
    pub rows: Vec<CareRow>,
    /// Row indexes per patient.
    pub by_patient: Vec<Vec<u32>>,
    /// Row indexes per department per day of the month, for rows overlapping that day.
    pub by_dept_day: Vec<Vec<Vec<u32>>>,
    /// Row indexes naming each staff member.
    pub by_user: Vec<Vec<u32>>,
    /// Admission and ED encounter indexes by the day they ended (index = day + LEAD_DAYS).
    pub ended_by_day: Vec<Vec<u32>>,
    /// Admissions per staff member who is a patient (they don't work while admitted).
    pub staff_admitted: Vec<Vec<(i64, i64)>>,
    pub month_start: i64,
    pub month_end: i64,
}

impl Care {
    /// True when a care row names this department or this user at `ts`.
    pub fn covered(&self, patient: u32, dept: usize, user: u32, ts: i64) -> bool {
        self.by_patient[patient as usize].iter().any(|&r| {
            let r = &self.rows[r as usize];
            (r.dept == dept || r.user == Some(user)) && r.covers(ts)
        })
    }

    pub fn day_index(&self, ts: i64) -> Option<usize> {
        if ts < self.month_start || ts >= self.month_end {
            return None;
        }
        let d = clock::local_date(ts);
        let d0 = clock::local_date(self.month_start);
        Some((d - d0).num_days() as usize)
    }
}

struct Gen<'a> {
    h: &'a mut Hospital,
    rng: &'a mut ChaCha8Rng,
    care: Care,
    busy_until: Vec<i64>,
    physicians: Vec<Vec<u32>>,
    scale: f64,
}

impl Gen<'_> {
    fn row(&mut self, patient: u32, dept: usize, user: Option<u32>, start: i64, end: i64) {
        self.care.rows.push(CareRow {
            patient,
            dept,
            user,
            start,
            end,
        });
    }

    fn count(&mut self, per_day_800: f64, weekend: bool) -> usize {
        let mean = per_day_800 * self.scale * if weekend { 0.7 } else { 1.0 };
        let x = mean * self.rng.gen_range(0.8..1.2);
        let base = x.floor();
        base as usize + usize::from(self.rng.gen_bool(x - base))
    }

    /// A patient free at `start`, alive, of the right age for the department.
    fn pick_patient(&mut self, dept: usize, start: i64, date: NaiveDate) -> Option<u32> {
        let n = self.h.patients.len();
        for _ in 0..30 {
            let i = self.rng.gen_range(0..n);
            let p = &self.h.patients[i];
            if p.deceased.is_some() || self.busy_until[i] > start - 2 * HOUR {
                continue;
            }
            let child = p.age_on(date) < 18;
            let peds = dept == 6;
            if child != peds && !(dept == hosp::ED && self.rng.gen_bool(0.5)) {
                continue;
            }
            if dept == hosp::ED && child && !self.rng.gen_bool(0.3) {
                continue;
            }
            return Some(i as u32);
        }
        None
    }

    fn attending(&mut self, dept: usize) -> Option<u32> {
        self.physicians[dept].choose(self.rng).copied()
    }

    fn ancillary(&mut self, patient: u32, start: i64, end: i64, lab: f64, rad: f64, rx: f64) {
        if self.rng.gen_bool(lab) {
            self.row(patient, hosp::LABORATORY, None, start, end + 2 * HOUR);
        }
        if self.rng.gen_bool(rad) {
            let t = self.rng.gen_range(start..=end.max(start + HOUR));
            self.row(patient, hosp::RADIOLOGY, None, t, t + 12 * HOUR);
        }
        if self.rng.gen_bool(rx) {
            self.row(patient, hosp::PHARMACY, None, start, end);
        }
    }

    fn emergency(&mut self, patient: u32, start: i64, hours: i64) -> i64 {
        let end = start + hours * HOUR + self.rng.gen_range(0..HOUR);
        self.care.encounters.push(Encounter {
            patient,
            kind: EncKind::Emergency,
            end,
        });
        self.row(patient, hosp::ED, None, start, end);
        if self.rng.gen_bool(0.3) {
            let doc = self.attending(hosp::ED);
            self.row(patient, hosp::ED, doc, start, end);
        }
        self.row(
            patient,
            hosp::REGISTRATION,
            None,
            start - 15 * MINUTE,
            start + 2 * HOUR,
        );
        self.ancillary(patient, start, end, 0.6, 0.4, 0.3);
        self.busy_until[patient as usize] = end;
        end
    }

    fn admit(&mut self, patient: u32, dept: usize, start: i64, via_ed: bool) {
        let icu = dept == 5;
        let r: f64 = self.rng.gen();
        let hours = if icu {
            36 + (r * r * 140.0) as i64
        } else {
            20 + (r * r * 220.0) as i64
        };
        let end = start + hours * HOUR + self.rng.gen_range(0..HOUR);
        let old = self.h.patients[patient as usize].age_on(clock::local_date(start)) >= 50;
        let death_p = match dept {
            5 => 0.05,
            2 => 0.04,
            _ if old => 0.006,
            _ => 0.0,
        };
        if death_p > 0.0 && self.rng.gen_bool(death_p) {
            self.h.patients[patient as usize].deceased = Some(end);
        }
        self.care.encounters.push(Encounter {
            patient,
            kind: EncKind::Admission,
            end,
        });
        self.row(patient, dept, None, start, end);
        if self.rng.gen_bool(0.7) {
            let doc = self.attending(dept);
            self.row(patient, dept, doc, start, end);
        }
        if !via_ed {
            self.row(
                patient,
                hosp::REGISTRATION,
                None,
                start - 3 * DAY,
                start + HOUR,
            );
        }
        self.ancillary(patient, start, end, 0.9, 0.5, 0.95);
        if dept != hosp::CARDIOLOGY && self.rng.gen_bool(0.1) {
            let t = self.rng.gen_range(start..end);
            let doc = self.attending(hosp::CARDIOLOGY);
            self.row(patient, hosp::CARDIOLOGY, doc, t, t + 2 * DAY);
        }
        if let Some(s) = self.h.patients[patient as usize].employee {
            self.care.staff_admitted[s as usize].push((start - 4 * HOUR, end));
        }
        self.busy_until[patient as usize] = end;
    }

    fn clinic(&mut self, patient: u32, dept: usize, t: i64) {
        let doc = self.attending(dept);
        self.care.encounters.push(Encounter {
            patient,
            kind: EncKind::Clinic,
            end: t + HOUR,
        });
        // The visit row covers pre-charting the day before and notes finished after.
        self.row(patient, dept, doc, t - DAY, t + 2 * DAY);
        // Registration verifies insurance and pre-registers in the days before a visit.
        self.row(patient, hosp::REGISTRATION, None, t - 5 * DAY, t + HOUR);
        if self.rng.gen_bool(0.3) {
            self.row(patient, hosp::LABORATORY, None, t, t + DAY);
        }
        self.busy_until[patient as usize] = t + HOUR;
    }

    /// A time of day for an arrival: busier in the day than at night.
    fn arrival_secs(&mut self) -> i64 {
        const W: [u32; 24] = [
            2, 2, 1, 1, 1, 2, 3, 5, 7, 8, 8, 8, 8, 8, 7, 7, 7, 7, 6, 6, 5, 4, 3, 2,
        ];
        let total: u32 = W.iter().sum();
        let mut x = self.rng.gen_range(0..total);
        let mut hour = 0;
        for (i, w) in W.iter().enumerate() {
            if x < *w {
                hour = i;
                break;
            }
            x -= w;
        }
        hour as i64 * 3600 + self.rng.gen_range(0..3600)
    }
}

/// Admissions per day per ward for an 800-staff hospital.
fn admissions_per_day(dept: usize) -> f64 {
    match dept {
        1 => 7.0,
        2 => 5.0,
        3 | 4 => 9.0,
        5 => 4.0,
        6 => 4.0,
        _ => 0.0,
    }
}

fn clinic_per_day(dept: usize) -> f64 {
    match dept {
        1 => 40.0,
        2 => 35.0,
        6 => 30.0,
        _ => 0.0,
    }
}

pub fn build(h: &mut Hospital, rng: &mut ChaCha8Rng, start: NaiveDate, days: u32) -> Care {
    let n_staff = h.staff.len();
    let mut physicians = vec![Vec::new(); DEPTS.len()];
    for (i, s) in h.staff.iter().enumerate() {
        if s.role == Role::Physician && s.termination.is_none() {
            physicians[s.dept].push(i as u32);
        }
    }
    let month_start = clock::local_ms(start, 0);
    let month_end = clock::local_ms(start + Duration::days(days as i64), 0);
    let n_pat = h.patients.len();
    let scale = n_staff as f64 / 800.0;
    let mut g = Gen {
        h,
        rng,
        care: Care {
            encounters: Vec::new(),
            rows: Vec::new(),
            by_patient: Vec::new(),
            by_dept_day: Vec::new(),
            by_user: Vec::new(),
            ended_by_day: Vec::new(),
            staff_admitted: vec![Vec::new(); n_staff],
            month_start,
            month_end,
        },
        busy_until: vec![i64::MIN; n_pat],
        physicians,
        scale,
    };

    for d in -LEAD_DAYS..days as i64 {
        let date = start + Duration::days(d);
        let weekend = clock::is_weekend(date);
        for (dept, info) in DEPTS.iter().enumerate() {
            if let DeptKind::Ward { clinic } = info.kind {
                let n = g.count(admissions_per_day(dept), weekend);
                for _ in 0..n {
                    let secs = g.arrival_secs();
                    let t = clock::local_ms(date, secs);
                    let Some(p) = g.pick_patient(dept, t, date) else {
                        continue;
                    };
                    let via_ed = g.rng.gen_bool(0.35);
                    let t = if via_ed {
                        let hours = g.rng.gen_range(2..6);
                        g.emergency(p, t - hours * HOUR, hours)
                    } else {
                        t
                    };
                    g.admit(p, dept, t, via_ed);
                }
                if clinic && !weekend {
                    let n = g.count(clinic_per_day(dept), false);
                    for _ in 0..n {
                        let t = clock::local_ms(date, g.rng.gen_range(8 * 3600..17 * 3600));
                        if let Some(p) = g.pick_patient(dept, t, date) {
                            g.clinic(p, dept, t);
                        }
                    }
                }
            }
        }
        let n = g.count(130.0, false);
        for _ in 0..n {
            let secs = g.arrival_secs();
            let t = clock::local_ms(date, secs);
            if let Some(p) = g.pick_patient(hosp::ED, t, date) {
                let hours = g.rng.gen_range(2..8);
                g.emergency(p, t, hours);
            }
        }
        // Staff treated on their own ward, and a VIP admitted: the care teams' accesses
        // are the look-alikes a "coworker" or "VIP" rule must not fire on.
        if d >= 0 && d % 5 == 2 {
            let n_staff_adm = ((scale * 1.0).round() as usize).max(1);
            for _ in 0..n_staff_adm {
                let s = g.rng.gen_range(0..n_staff);
                let st = &g.h.staff[s];
                if let (Some(p), DeptKind::Ward { .. }) = (st.patient, DEPTS[st.dept].kind) {
                    let dept = st.dept;
                    let t = clock::local_ms(date, g.rng.gen_range(8 * 3600..20 * 3600));
                    if g.busy_until[p as usize] < t && g.h.patients[p as usize].deceased.is_none() {
                        g.admit(p, dept, t, false);
                    }
                }
            }
        }
        if d >= 0 && d % 7 == 3 {
            let vips: Vec<u32> = (0..n_pat as u32)
                .filter(|&i| g.h.patients[i as usize].vip)
                .collect();
            if let Some(&p) = vips.choose(g.rng) {
                let t = clock::local_ms(date, g.rng.gen_range(8 * 3600..20 * 3600));
                if g.busy_until[p as usize] < t && g.h.patients[p as usize].deceased.is_none() {
                    let dept = *[1usize, 2, 3, 4].choose(g.rng).expect("wards");
                    g.admit(p, dept, t, false);
                }
            }
        }
    }

    let mut care = g.care;
    care.by_patient = vec![Vec::new(); n_pat];
    care.by_user = vec![Vec::new(); n_staff];
    care.by_dept_day = vec![vec![Vec::new(); days as usize]; DEPTS.len()];
    let bounds: Vec<i64> = (0..=days as i64)
        .map(|d| clock::local_ms(start + Duration::days(d), 0))
        .collect();
    for (i, r) in care.rows.iter_mut().enumerate() {
        // care.csv has whole seconds: widen to them so the file covers what we cover.
        r.start -= r.start.rem_euclid(1000);
        r.end += (1000 - r.end.rem_euclid(1000)) % 1000;
        if r.end >= month_end {
            r.end = ONGOING;
        }
        care.by_patient[r.patient as usize].push(i as u32);
        if let Some(u) = r.user {
            care.by_user[u as usize].push(i as u32);
        }
        // Days d with bounds[d] <= r.end and r.start < bounds[d + 1].
        let first = bounds[1..].partition_point(|&de| de <= r.start);
        for (d, &ds) in bounds.iter().enumerate().take(days as usize).skip(first) {
            if ds > r.end {
                break;
            }
            care.by_dept_day[r.dept][d].push(i as u32);
        }
    }
    care.ended_by_day = vec![Vec::new(); (LEAD_DAYS + days as i64) as usize];
    for (i, e) in care.encounters.iter().enumerate() {
        if e.kind == EncKind::Clinic || e.end >= month_end {
            continue;
        }
        let d = (clock::local_date(e.end) - start).num_days() + LEAD_DAYS;
        if d >= 0 && (d as usize) < care.ended_by_day.len() {
            care.ended_by_day[d as usize].push(i as u32);
        }
    }
    care
}
