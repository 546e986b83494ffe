//! The people: departments, staff, households and the patient directory.
//!
//! Staff live in the same town as the patients, in households of their own, so that the
//! relationships insiders abuse (relative, neighbour, coworker, self) exist naturally:
//! many staff are patients themselves (`employee_user_id`), and so are their relatives.

use super::clock::{self, DAY};
use super::names::*;
use super::System;
use chrono::{Datelike, Duration, NaiveDate};
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// What a department does decides whose charts its staff open and which log system
/// records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeptKind {
    /// Admits patients to a ward (and, with `clinic`, also sees outpatients on weekdays).
    Ward {
        clinic: bool,
    },
    Emergency,
    /// Radiology, laboratory, pharmacy: work on orders from other departments.
    Ancillary,
    Registration,
    Him,
    Billing,
    It,
}

pub struct Dept {
    pub name: &'static str,
    /// Short code used in workstation names.
    pub code: &'static str,
    pub kind: DeptKind,
    /// The log system its staff's chart accesses land in.
    pub system: System,
}

pub const ED: usize = 0;
pub const CARDIOLOGY: usize = 1;
pub const RADIOLOGY: usize = 7;
pub const LABORATORY: usize = 8;
pub const PHARMACY: usize = 9;
pub const REGISTRATION: usize = 10;
pub const HIM: usize = 11;
pub const BILLING: usize = 12;

pub const DEPTS: &[Dept] = &[
    dept("Emergency", "ED", DeptKind::Emergency, System::Fhir),
    dept(
        "Cardiology",
        "CARD",
        DeptKind::Ward { clinic: true },
        System::Fhir,
    ),
    dept(
        "Oncology",
        "ONC",
        DeptKind::Ward { clinic: true },
        System::Fhir,
    ),
    dept(
        "Med-Surg 4 North",
        "4N",
        DeptKind::Ward { clinic: false },
        System::Fhir,
    ),
    dept(
        "Med-Surg 5 South",
        "5S",
        DeptKind::Ward { clinic: false },
        System::Fhir,
    ),
    dept("ICU", "ICU", DeptKind::Ward { clinic: false }, System::Fhir),
    dept(
        "Pediatrics",
        "PEDS",
        DeptKind::Ward { clinic: true },
        System::Fhir,
    ),
    dept("Radiology", "RAD", DeptKind::Ancillary, System::Atna),
    dept("Laboratory", "LAB", DeptKind::Ancillary, System::Atna),
    dept("Pharmacy", "RX", DeptKind::Ancillary, System::Atna),
    dept("Registration", "REG", DeptKind::Registration, System::Epic),
    dept(
        "Health Information Management",
        "HIM",
        DeptKind::Him,
        System::Epic,
    ),
    dept("Billing", "BILL", DeptKind::Billing, System::Epic),
    dept("IT", "IT", DeptKind::It, System::Epic),
];

const fn dept(name: &'static str, code: &'static str, kind: DeptKind, system: System) -> Dept {
    Dept {
        name,
        code,
        kind,
        system,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Physician,
    Nurse,
    Resident,
    Technician,
    Pharmacist,
    RegistrationClerk,
    HimAnalyst,
    Billing,
    It,
}

impl Role {
    /// The role as the roster of a hospital with naming dialect `dialect` (0, 1 or 2)
    /// spells it: phiwatch must not depend on one hospital's job titles.
    pub fn roster_name(self, dialect: u8) -> &'static str {
        match (dialect % 3, self) {
            (0, r) => r.as_str(),
            (1, Role::Physician) => "Physician",
            (1, Role::Nurse) => "Registered Nurse",
            (1, Role::Resident) => "Resident Physician",
            (1, Role::Technician) => "Technologist",
            (1, Role::Pharmacist) => "Pharmacist",
            (1, Role::RegistrationClerk) => "Patient Access Representative",
            (1, Role::HimAnalyst) => "Release of Information Specialist",
            (1, Role::Billing) => "Patient Financial Services",
            (1, Role::It) => "IS Analyst",
            (_, Role::Physician) => "MD",
            (_, Role::Nurse) => "RN",
            (_, Role::Resident) => "HO",
            (_, Role::Technician) => "TECH",
            (_, Role::Pharmacist) => "PHARMD",
            (_, Role::RegistrationClerk) => "ADMREP",
            (_, Role::HimAnalyst) => "HIMCOD",
            (_, Role::Billing) => "PFSREP",
            (_, Role::It) => "ISADM",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Physician => "physician",
            Role::Nurse => "nurse",
            Role::Resident => "resident",
            Role::Technician => "technician",
            Role::Pharmacist => "pharmacist",
            Role::RegistrationClerk => "registration_clerk",
            Role::HimAnalyst => "him_analyst",
            Role::Billing => "billing",
            Role::It => "it",
        }
    }
}

/// When someone works. Day and office workers are never in the EHR at 3am on their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShiftKind {
    /// 12-hour day shifts (nurses) or long days (physicians, residents).
    Day,
    Evening,
    /// Night shifts: these staff open charts between midnight and dawn every night.
    Night,
    /// Weekdays 8 to 5.
    Office,
}

impl ShiftKind {
    pub fn is_daytime(self) -> bool {
        matches!(self, ShiftKind::Day | ShiftKind::Office)
    }
}

/// Staff mix per 1,000 staff: (department, role, share, shift kinds with weights).
/// (department, role, share per 1,000 staff, shift kinds with weights).
type MixRow = (usize, Role, u32, &'static [(ShiftKind, u32)]);

const MIX: &[MixRow] = &[
    (
        0,
        Role::Physician,
        18,
        &[(ShiftKind::Day, 65), (ShiftKind::Night, 35)],
    ),
    (
        0,
        Role::Resident,
        6,
        &[(ShiftKind::Day, 70), (ShiftKind::Night, 30)],
    ),
    (0, Role::Nurse, 55, NURSE),
    (1, Role::Physician, 18, &[(ShiftKind::Day, 1)]),
    (1, Role::Resident, 8, RESIDENT),
    (1, Role::Nurse, 50, NURSE),
    (2, Role::Physician, 15, &[(ShiftKind::Day, 1)]),
    (2, Role::Resident, 6, RESIDENT),
    (2, Role::Nurse, 45, NURSE),
    (3, Role::Physician, 10, &[(ShiftKind::Day, 1)]),
    (3, Role::Resident, 8, RESIDENT),
    (3, Role::Nurse, 55, NURSE),
    (4, Role::Physician, 10, &[(ShiftKind::Day, 1)]),
    (4, Role::Resident, 8, RESIDENT),
    (4, Role::Nurse, 55, NURSE),
    (
        5,
        Role::Physician,
        12,
        &[(ShiftKind::Day, 70), (ShiftKind::Night, 30)],
    ),
    (5, Role::Resident, 8, RESIDENT),
    (5, Role::Nurse, 65, NURSE),
    (6, Role::Physician, 12, &[(ShiftKind::Day, 1)]),
    (6, Role::Resident, 6, RESIDENT),
    (6, Role::Nurse, 45, NURSE),
    (
        7,
        Role::Physician,
        12,
        &[(ShiftKind::Day, 85), (ShiftKind::Night, 15)],
    ),
    (7, Role::Technician, 45, TECH),
    (8, Role::Technician, 55, TECH),
    (9, Role::Pharmacist, 35, TECH),
    (9, Role::Technician, 10, &[(ShiftKind::Day, 1)]),
    (
        10,
        Role::RegistrationClerk,
        36,
        &[
            (ShiftKind::Office, 50),
            (ShiftKind::Day, 25),
            (ShiftKind::Evening, 15),
            (ShiftKind::Night, 10),
        ],
    ),
    (11, Role::HimAnalyst, 25, &[(ShiftKind::Office, 1)]),
    (12, Role::Billing, 40, &[(ShiftKind::Office, 1)]),
    (
        13,
        Role::It,
        35,
        &[(ShiftKind::Office, 85), (ShiftKind::Night, 15)],
    ),
];
const NURSE: &[(ShiftKind, u32)] = &[(ShiftKind::Day, 65), (ShiftKind::Night, 35)];
const RESIDENT: &[(ShiftKind, u32)] = &[(ShiftKind::Day, 80), (ShiftKind::Night, 20)];
const TECH: &[(ShiftKind, u32)] = &[
    (ShiftKind::Day, 60),
    (ShiftKind::Evening, 25),
    (ShiftKind::Night, 15),
];

/// The smallest hospital that still has every department and role.
pub const MIN_STAFF: usize = MIX.len();

pub struct Staff {
    pub user_id: String,
    pub given: &'static str,
    pub family: &'static str,
    pub role: Role,
    pub dept: usize,
    pub shift: ShiftKind,
    pub household: u32,
    /// The staff member's own record in the patient directory, if they are a patient.
    pub patient: Option<u32>,
    pub hire: NaiveDate,
    pub termination: Option<NaiveDate>,
    /// Index of the workstation name in [`Hospital::hosts`].
    pub host: u32,
}

pub struct Street {
    pub name: String,
    pub postcode: String,
}

pub struct Household {
    pub street: u32,
    pub number: u32,
    /// Patient indexes of the members who are in the directory.
    pub members: Vec<u32>,
    /// Staff living here.
    pub staff: Vec<u32>,
}

pub struct Patient {
    pub id: String,
    pub given: &'static str,
    pub family: &'static str,
    pub birth: NaiveDate,
    pub household: u32,
    /// Epoch ms of death, if dead (before or during the simulated period).
    pub deceased: Option<i64>,
    pub vip: bool,
    pub employee: Option<u32>,
}

impl Patient {
    pub fn age_on(&self, d: NaiveDate) -> i32 {
        d.year() - self.birth.year()
    }
}

pub struct Hospital {
    pub staff: Vec<Staff>,
    pub patients: Vec<Patient>,
    pub households: Vec<Household>,
    pub streets: Vec<Street>,
    pub hosts: Vec<String>,
    /// Staff indexes per department.
    pub by_dept: Vec<Vec<u32>>,
}

impl Hospital {
    pub fn address(&self, household: u32) -> String {
        let h = &self.households[household as usize];
        format!("{} {}", h.number, self.streets[h.street as usize].name)
    }

    pub fn postcode(&self, household: u32) -> &str {
        &self.streets[self.households[household as usize].street as usize].postcode
    }

    pub fn intern_host(&mut self, name: String) -> u32 {
        self.hosts.push(name);
        (self.hosts.len() - 1) as u32
    }
}

/// Zipf-like weights (exponent ~0.9) over the surname list.
fn surname(rng: &mut ChaCha8Rng, cdf: &[f64]) -> &'static str {
    let x: f64 = rng.gen::<f64>() * cdf[cdf.len() - 1];
    let i = cdf.partition_point(|&c| c < x);
    SURNAMES[i.min(SURNAMES.len() - 1)]
}

fn given(rng: &mut ChaCha8Rng) -> &'static str {
    if rng.gen_bool(0.5) {
        GIVEN_FEMALE.choose(rng).expect("non-empty")
    } else {
        GIVEN_MALE.choose(rng).expect("non-empty")
    }
}

fn birth(rng: &mut ChaCha8Rng, start: NaiveDate, min_age: i64, max_age: i64) -> NaiveDate {
    let days = rng.gen_range(min_age * 365..=max_age * 365 + 364);
    start - Duration::days(days)
}

/// Splits `total` over the mix with at least one person per (department, role) row, by
/// largest remainder so the sum is exact.
fn allocate(total: usize) -> Vec<usize> {
    let n = MIX.len();
    let rest = total - n;
    let sum: u32 = MIX.iter().map(|m| m.2).sum();
    let mut counts: Vec<usize> = Vec::with_capacity(n);
    let mut rema: Vec<(u64, usize)> = Vec::with_capacity(n);
    for (i, m) in MIX.iter().enumerate() {
        let exact = rest as u64 * m.2 as u64;
        counts.push(1 + (exact / sum as u64) as usize);
        rema.push((exact % sum as u64, i));
    }
    let mut left = total - counts.iter().sum::<usize>();
    rema.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, i) in rema {
        if left == 0 {
            break;
        }
        counts[i] += 1;
        left -= 1;
    }
    counts
}

fn pick_weighted<T: Copy>(rng: &mut ChaCha8Rng, items: &[(T, u32)]) -> T {
    let total: u32 = items.iter().map(|i| i.1).sum();
    let mut x = rng.gen_range(0..total);
    for &(t, w) in items {
        if x < w {
            return t;
        }
        x -= w;
    }
    items[items.len() - 1].0
}

/// Household size: mean about 2.5, like US census households.
fn household_size(rng: &mut ChaCha8Rng) -> usize {
    pick_weighted(rng, &[(1, 28), (2, 34), (3, 15), (4, 13), (5, 6), (6, 4)])
}

pub fn build(rng: &mut ChaCha8Rng, staff_n: usize, start: NaiveDate, days: u32) -> Hospital {
    let cdf: Vec<f64> = (0..SURNAMES.len())
        .scan(0.0, |acc, i| {
            *acc += 1.0 / ((i + 1) as f64).powf(0.9);
            Some(*acc)
        })
        .collect();
    let patients_target = staff_n * 50;
    let households_target = patients_target * 2 / 5 + staff_n;

    // Streets: about 40 households each, over ~30 postcodes. A street name may recur in
    // another postcode (two Main Streets), which is why neighbours need the postcode too.
    let n_streets = (households_target / 40).max(8);
    let n_postcodes = (n_streets / 12).clamp(3, 60) as u32;
    let mut streets = Vec::with_capacity(n_streets);
    let mut used = std::collections::BTreeSet::new();
    while streets.len() < n_streets {
        let name = format!(
            "{} {}",
            STREETS.choose(rng).expect("streets"),
            STREET_SUFFIXES.choose(rng).expect("suffixes")
        );
        let postcode = format!("{:05}", POSTCODE_BASE + rng.gen_range(0..n_postcodes));
        if used.insert((name.clone(), postcode.clone())) {
            streets.push(Street { name, postcode });
        }
    }
    let mut next_number: Vec<u32> = (0..n_streets).map(|_| rng.gen_range(1..40)).collect();

    let mut households: Vec<Household> = Vec::with_capacity(households_target);
    let mut patients: Vec<Patient> = Vec::with_capacity(patients_target + staff_n);

    let new_household =
        |rng: &mut ChaCha8Rng, households: &mut Vec<Household>, next: &mut Vec<u32>| {
            let street = rng.gen_range(0..n_streets);
            let number = next[street];
            next[street] += rng.gen_range(2..14);
            households.push(Household {
                street: street as u32,
                number,
                members: Vec::new(),
                staff: Vec::new(),
            });
            (households.len() - 1) as u32
        };

    // Members of one household: an adult (the staff member, for staff households), maybe a
    // partner (15% with another surname), then children and sometimes a parent.
    let fill = |rng: &mut ChaCha8Rng,
                patients: &mut Vec<Patient>,
                households: &mut Vec<Household>,
                h: u32,
                size: usize,
                head: Option<(&'static str, &'static str, NaiveDate)>,
                in_directory: f64|
     -> Option<u32> {
        let fam = head.map(|x| x.1).unwrap_or_else(|| surname(rng, &cdf));
        let mut head_idx = None;
        for k in 0..size {
            let (g, f, b) = if k == 0 {
                head.unwrap_or_else(|| (given(rng), fam, birth(rng, start, 19, 92)))
            } else if k == 1 && size > 1 && rng.gen_bool(0.7) {
                let f = if rng.gen_bool(0.15) {
                    surname(rng, &cdf)
                } else {
                    fam
                };
                (given(rng), f, birth(rng, start, 20, 80))
            } else if k == size - 1 && size >= 3 && rng.gen_bool(0.15) {
                (given(rng), fam, birth(rng, start, 65, 95))
            } else {
                (given(rng), fam, birth(rng, start, 0, 17))
            };
            let is_head = k == 0 && head.is_some();
            let p = if is_head { 0.6 } else { in_directory };
            if !rng.gen_bool(p) {
                continue;
            }
            patients.push(Patient {
                id: String::new(),
                given: g,
                family: f,
                birth: b,
                household: h,
                deceased: None,
                vip: false,
                employee: None,
            });
            let idx = (patients.len() - 1) as u32;
            households[h as usize].members.push(idx);
            if is_head {
                head_idx = Some(idx);
            }
        }
        head_idx
    };

    // Staff households first.
    let counts = allocate(staff_n);
    let mut staff: Vec<Staff> = Vec::with_capacity(staff_n);
    let mut hosts: Vec<String> = Vec::new();
    let mut by_dept: Vec<Vec<u32>> = vec![Vec::new(); DEPTS.len()];
    for (mi, (d, role, _, shifts)) in MIX.iter().enumerate() {
        for k in 0..counts[mi] {
            let h = new_household(rng, &mut households, &mut next_number);
            let g = given(rng);
            let f = surname(rng, &cdf);
            let b = birth(rng, start, 23, 64);
            let size = household_size(rng);
            let me = fill(
                rng,
                &mut patients,
                &mut households,
                h,
                size,
                Some((g, f, b)),
                0.85,
            );
            let i = staff.len() as u32;
            households[h as usize].staff.push(i);
            let mut shift = pick_weighted(rng, shifts);
            // Every ward and the ED needs someone at night: the first nurse of each is.
            if *role == Role::Nurse && k < 2 {
                shift = if k == 0 {
                    ShiftKind::Night
                } else {
                    ShiftKind::Day
                };
            }
            let hire = start - Duration::days(rng.gen_range(30..9000));
            let ws = rng.gen_range(1..=(counts[mi] / 4).max(1) + 1);
            hosts.push(format!("WS-{}-{:02}", DEPTS[*d].code, ws));
            staff.push(Staff {
                user_id: String::new(),
                given: g,
                family: f,
                role: *role,
                dept: *d,
                shift,
                household: h,
                patient: me,
                hire,
                termination: None,
                host: (hosts.len() - 1) as u32,
            });
            by_dept[*d].push(i);
        }
    }
    // User ids are numbered in a shuffled order so that a department is not one id range.
    let mut nums: Vec<u32> = (0..staff_n as u32).collect();
    nums.shuffle(rng);
    for (s, n) in staff.iter_mut().zip(nums) {
        s.user_id = format!("u{}", 10001 + n);
    }
    // A few recent hires start during the month; a few accounts were closed before it.
    for s in staff.iter_mut() {
        let x: f64 = rng.gen();
        if x < 0.01 {
            s.hire = start + Duration::days(rng.gen_range(1..days.max(2) as i64));
        } else if x < 0.02 {
            s.termination = Some(start - Duration::days(rng.gen_range(1..60)));
        } else if x < 0.03 && days > 3 {
            // Ordinary turnover inside the month: the account goes quiet on its last day.
            s.termination = Some(start + Duration::days(rng.gen_range(2..days as i64)));
        }
    }
    for (si, s) in staff.iter().enumerate() {
        if let Some(p) = s.patient {
            patients[p as usize].employee = Some(si as u32);
        }
    }

    // The rest of the town.
    while patients.len() < patients_target + staff_n / 2 {
        let h = new_household(rng, &mut households, &mut next_number);
        let size = household_size(rng);
        fill(rng, &mut patients, &mut households, h, size, None, 1.0);
    }

    // Medical record numbers are handed out in registration order, not household order.
    let mut mrns: Vec<u32> = (0..patients.len() as u32).collect();
    mrns.shuffle(rng);
    for (p, n) in patients.iter_mut().zip(mrns) {
        p.id = format!("MRN{:07}", 1_000_001 + n);
    }
    // VIPs (~0.2%): adults who are not staff.
    let n_vip = (patients.len() / 500).max(2);
    let mut vips = 0;
    while vips < n_vip {
        let i = rng.gen_range(0..patients.len());
        let p = &mut patients[i];
        if p.employee.is_none() && !p.vip && p.age_on(start) >= 25 {
            p.vip = true;
            vips += 1;
        }
    }
    // Deaths before the month (about 1%): mostly old, some months ago, some years ago.
    let start_ms = clock::local_ms(start, 0);
    let n_dead = (patients.len() / 100).max(4);
    let mut dead = 0;
    while dead < n_dead {
        let i = rng.gen_range(0..patients.len());
        let p = &mut patients[i];
        if p.employee.is_none() && p.deceased.is_none() && !p.vip && p.age_on(start) >= 40 {
            let ago = if rng.gen_bool(0.6) {
                rng.gen_range(30..200)
            } else {
                rng.gen_range(200..1500)
            };
            p.deceased = Some(start_ms - ago * DAY + rng.gen_range(0..DAY));
            dead += 1;
        }
    }
    Hospital {
        staff,
        patients,
        households,
        streets,
        hosts,
        by_dept,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocation_is_exact() {
        for n in [MIN_STAFF, 120, 800, 3000] {
            assert_eq!(allocate(n).iter().sum::<usize>(), n);
        }
    }
}
