//! Injected insiders: the labelled positives.
//!
//! Each scenario family is varied (role and so log format, time of day, workstation or
//! remote session, intensity) so that a detector cannot pass by matching one shape. All
//! are injected after the learning period, and every malicious event is an ordinary log
//! line in the user's own system (plus a canonical file event for the USB copy).

use super::care::Care;
use super::clock::{self, DAY, HOUR, MINUTE, SECOND};
use super::hospital::{Hospital, Role, DEPTS};
use super::schedule::Shift;
use super::{Access, Aux, Kind, SimOptions, System, Why, World, NONE};
use crate::event::Media;
use chrono::Duration;
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// A member of the user's own household.
    Household,
    Neighbour,
    Coworker,
    Vip,
    SelfAccess,
    Deceased,
    Terminated,
    CuriositySweep,
    AfterHoursSpree,
    SearchBurst,
    BulkExportUsb,
    SlowHoarding,
    /// Dozens of name searches at a steady pace over an hour or more, by a clinician who
    /// normally runs one or two a shift: no ten-minute window looks like a burst.
    SlowFishing,
    /// A registration, billing or records clerk opens a VIP's or a coworker's chart while
    /// the patient is in a stay elsewhere, straight from the worklist (no search first):
    /// the role's habit of working outside care must not explain it.
    WorkflowSnoop,
}

impl Family {
    pub const ALL: [Family; 14] = [
        Family::Household,
        Family::Neighbour,
        Family::Coworker,
        Family::Vip,
        Family::SelfAccess,
        Family::Deceased,
        Family::Terminated,
        Family::CuriositySweep,
        Family::AfterHoursSpree,
        Family::SearchBurst,
        Family::BulkExportUsb,
        Family::SlowHoarding,
        Family::SlowFishing,
        Family::WorkflowSnoop,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Family::Household => "family",
            Family::Neighbour => "neighbour",
            Family::Coworker => "coworker",
            Family::Vip => "vip",
            Family::SelfAccess => "self",
            Family::Deceased => "deceased",
            Family::Terminated => "terminated",
            Family::CuriositySweep => "curiosity_sweep",
            Family::AfterHoursSpree => "after_hours_spree",
            Family::SearchBurst => "search_burst",
            Family::BulkExportUsb => "bulk_export_usb",
            Family::SlowHoarding => "slow_hoarding",
            Family::SlowFishing => "slow_fishing",
            Family::WorkflowSnoop => "workflow_snoop",
        }
    }

    /// Days the scenario spans.
    fn duration(self, days_left: u32) -> u32 {
        match self {
            Family::SlowHoarding => days_left.clamp(1, 7),
            Family::CuriositySweep => days_left.clamp(1, 2),
            Family::Terminated => days_left.clamp(1, 3),
            _ => 1,
        }
    }

    fn systems(self) -> &'static [System] {
        // Rotated through per instance, so each family shows up in several formats.
        match self {
            Family::BulkExportUsb | Family::SlowHoarding => &[System::Fhir, System::Epic],
            Family::WorkflowSnoop => &[System::Epic],
            Family::SlowFishing => &[System::Fhir, System::Atna],
            _ => &[System::Fhir, System::Epic, System::Atna],
        }
    }
}

pub struct Scenario {
    pub family: Family,
    pub user: u32,
    /// First day (index into the month).
    pub day: u32,
    pub days: u32,
    pub variant: String,
    pub patients: Vec<u32>,
    pub first: i64,
    pub last: i64,
    pub events: u64,
}

pub struct Plan {
    pub scenarios: Vec<Scenario>,
    pub learning_days: u32,
}

/// Days at the start during which nothing is injected (detectors learn baselines).
pub fn learning_days(days: u32) -> u32 {
    if days > 12 {
        10
    } else {
        days * 2 / 3
    }
}

/// Per family: 1 below 500 staff, 2 from 500, one more per further 1,250.
fn per_family(staff: usize) -> usize {
    if staff < 500 {
        1
    } else {
        2 + (staff - 500) / 1250
    }
}

fn alive_at(h: &Hospital, p: u32, ts: i64) -> bool {
    h.patients[p as usize].deceased.is_none_or(|d| d > ts)
}

struct Relations {
    /// Household indexes per street.
    by_street: Vec<Vec<u32>>,
}

impl Relations {
    fn new(h: &Hospital) -> Relations {
        let mut by_street = vec![Vec::new(); h.streets.len()];
        for (i, hh) in h.households.iter().enumerate() {
            by_street[hh.street as usize].push(i as u32);
        }
        Relations { by_street }
    }

    fn household(&self, h: &Hospital, u: u32) -> Vec<u32> {
        let st = &h.staff[u as usize];
        h.households[st.household as usize]
            .members
            .iter()
            .copied()
            .filter(|&p| Some(p) != st.patient)
            .collect()
    }

    fn neighbours(&self, h: &Hospital, u: u32) -> Vec<u32> {
        let st = &h.staff[u as usize];
        let own = &h.households[st.household as usize];
        self.by_street[own.street as usize]
            .iter()
            .filter(|&&x| x != st.household && h.households[x as usize].number != own.number)
            .flat_map(|&x| h.households[x as usize].members.iter().copied())
            .collect()
    }

    fn coworkers(&self, h: &Hospital, u: u32) -> Vec<u32> {
        let st = &h.staff[u as usize];
        h.by_dept[st.dept]
            .iter()
            .filter(|&&o| o != u && h.staff[o as usize].household != st.household)
            .filter_map(|&o| h.staff[o as usize].patient)
            .collect()
    }
}

fn eligible(h: &Hospital, rel: &Relations, opts: &SimOptions, fam: Family, u: u32) -> bool {
    let st = &h.staff[u as usize];
    if st.hire > opts.start || st.termination.is_some() {
        return false;
    }
    if st.role == Role::It && !matches!(fam, Family::CuriositySweep | Family::AfterHoursSpree) {
        return false;
    }
    match fam {
        Family::AfterHoursSpree => st.shift.is_daytime(),
        Family::Household => !rel.household(h, u).is_empty(),
        Family::Neighbour => !rel.neighbours(h, u).is_empty(),
        Family::Coworker => !rel.coworkers(h, u).is_empty(),
        Family::SelfAccess => st.patient.is_some(),
        Family::SlowFishing => matches!(
            st.role,
            Role::Physician | Role::Nurse | Role::Resident | Role::Pharmacist | Role::Technician
        ),
        Family::WorkflowSnoop => matches!(
            st.role,
            Role::RegistrationClerk | Role::Billing | Role::HimAnalyst
        ),
        _ => true,
    }
}

/// Picks the insider accounts and days. Terminated insiders get their termination date
/// here, before shifts are drawn, so their normal work stops on it.
pub fn choose(h: &mut Hospital, _care: &Care, rng: &mut ChaCha8Rng, opts: &SimOptions) -> Plan {
    let learn = learning_days(opts.days);
    let rel = Relations::new(h);
    let mut order: Vec<u32> = (0..h.staff.len() as u32).collect();
    order.shuffle(rng);
    let mut used = vec![false; h.staff.len()];
    let mut scenarios = Vec::new();
    for (fi, &fam) in Family::ALL.iter().enumerate() {
        for i in 0..per_family(opts.staff) {
            let allowed = fam.systems();
            let pref = allowed[(fi + i) % allowed.len()];
            let sys_of = |u: u32| DEPTS[h.staff[u as usize].dept].system;
            let ok = |u: u32, want: Option<System>| {
                !used[u as usize]
                    && allowed.contains(&sys_of(u))
                    && want.is_none_or(|w| sys_of(u) == w)
                    && eligible(h, &rel, opts, fam, u)
            };
            let pick = order
                .iter()
                .copied()
                .find(|&u| ok(u, Some(pref)))
                .or_else(|| order.iter().copied().find(|&u| ok(u, None)));
            let Some(user) = pick else { continue };
            used[user as usize] = true;
            let left = opts.days - learn;
            let dur = fam.duration(left);
            let day = rng.gen_range(learn..=opts.days - dur);
            if fam == Family::Terminated {
                h.staff[user as usize].termination = Some(opts.start + Duration::days(day as i64));
            }
            scenarios.push(Scenario {
                family: fam,
                user,
                day,
                days: dur,
                variant: String::new(),
                patients: Vec::new(),
                first: i64::MAX,
                last: i64::MIN,
                events: 0,
            });
        }
    }
    Plan {
        scenarios,
        learning_days: learn,
    }
}

struct Inj<'a> {
    w: &'a mut World,
    rng: &'a mut ChaCha8Rng,
    idx: u16,
    user: u32,
    host: u32,
    out: Vec<Access>,
    patients: Vec<u32>,
}

impl Inj<'_> {
    fn emit(&mut self, ts: i64, patient: u32, kind: Kind, records: u32, aux: u32) {
        let st = &self.w.h.staff[self.user as usize];
        let sys = match kind {
            Kind::File(_) => System::Files,
            _ => DEPTS[st.dept].system,
        };
        if patient != NONE && !self.patients.contains(&patient) {
            self.patients.push(patient);
        }
        self.out.push(Access {
            ts,
            user: self.user,
            patient,
            aux,
            records,
            host: self.host,
            kind,
            why: Why::Insider(self.idx),
            sys,
        });
    }

    fn remote(&mut self) {
        let id = self.w.h.staff[self.user as usize].user_id.to_uppercase();
        self.host = self.w.h.intern_host(format!("VPN-{id}"));
    }

    fn uncovered(&self, p: u32, ts: i64) -> bool {
        let st = &self.w.h.staff[self.user as usize];
        !self.w.care.covered(p, st.dept, self.user, ts)
    }

    /// A random patient the user has no reason to open at `ts`: alive, not family, no
    /// care row for the user or their department.
    fn stranger(&mut self, ts: i64) -> u32 {
        let hh = self.w.h.staff[self.user as usize].household;
        loop {
            let p = self.rng.gen_range(0..self.w.h.patients.len()) as u32;
            let pat = &self.w.h.patients[p as usize];
            if pat.household != hh
                && !pat.vip
                && alive_at(&self.w.h, p, ts)
                && self.uncovered(p, ts)
            {
                return p;
            }
        }
    }

    /// Opens one chart and clicks through a few of its tabs.
    fn snoop(&mut self, ts: i64, p: u32, depth: usize) -> i64 {
        self.emit(ts, p, Kind::Open, 1, NONE);
        let mut t = ts;
        let tabs = [
            Kind::Demographics,
            Kind::ProblemList,
            Kind::Results,
            Kind::ChartReview,
        ];
        for k in tabs.choose_multiple(self.rng, depth) {
            t += self.rng.gen_range(10 * SECOND..3 * MINUTE);
            self.emit(t, p, *k, 1, NONE);
        }
        t
    }
}

fn day_ms(opts: &SimOptions, day: u32, secs: i64) -> i64 {
    clock::local_ms(opts.start + Duration::days(day as i64), secs)
}

/// A time inside the user's shift on `day` (or, without one, in the evening from home).
fn moment(inj: &mut Inj, shifts: &[Shift], day: u32, opts: &SimOptions) -> (i64, i64, bool) {
    let ds = day_ms(opts, day, 0);
    let de = day_ms(opts, day + 1, 0);
    if let Some(sh) = shifts.iter().find(|s| s.start >= ds && s.start < de) {
        let end = sh.end.min(inj.w.care.month_end - 1);
        if sh.start + 20 * MINUTE < end - 2 * HOUR {
            let t = inj.rng.gen_range(sh.start + 20 * MINUTE..end - 2 * HOUR);
            return (t, end, true);
        }
    }
    let t = day_ms(opts, day, 19 * 3600) + inj.rng.gen_range(0..2 * HOUR);
    (t, t + 3 * HOUR, false)
}

pub fn inject(w: &mut World, plan: &mut Plan, shifts: &[Vec<Shift>], rng: &mut ChaCha8Rng) {
    let rel = Relations::new(&w.h);
    let opts = w.opts.clone();
    for (si, sc) in plan.scenarios.iter_mut().enumerate() {
        let host = w.h.staff[sc.user as usize].host;
        let mut inj = Inj {
            w,
            rng,
            idx: si as u16,
            user: sc.user,
            host,
            out: Vec::new(),
            patients: Vec::new(),
        };
        let role = inj.w.h.staff[sc.user as usize].role.as_str();
        let my_shifts = &shifts[sc.user as usize];
        sc.variant = match sc.family {
            Family::Household
            | Family::Neighbour
            | Family::Coworker
            | Family::Vip
            | Family::SelfAccess
            | Family::Deceased => targeted(&mut inj, sc, &rel, my_shifts, &opts, role),
            Family::Terminated => terminated(&mut inj, sc, &opts, role),
            Family::CuriositySweep => sweep(&mut inj, sc, my_shifts, &opts, role),
            Family::AfterHoursSpree => after_hours(&mut inj, sc, &opts, role),
            Family::SearchBurst => search_burst(&mut inj, sc, my_shifts, &opts, role),
            Family::BulkExportUsb => bulk_export(&mut inj, sc, my_shifts, &opts, role),
            Family::SlowHoarding => hoarding(&mut inj, sc, my_shifts, &opts, role),
            Family::SlowFishing => slow_fishing(&mut inj, sc, my_shifts, &opts, role),
            Family::WorkflowSnoop => workflow_snoop(&mut inj, sc, &rel, my_shifts, &opts, role),
        };
        let Inj { out, patients, .. } = inj;
        sc.patients = patients;
        sc.events = out.len() as u64;
        sc.first = out.iter().map(|a| a.ts).min().unwrap_or(0);
        sc.last = out.iter().map(|a| a.ts).max().unwrap_or(0);
        w.accesses.extend(out);
    }
}

fn targeted(
    inj: &mut Inj,
    sc: &Scenario,
    rel: &Relations,
    shifts: &[Shift],
    opts: &SimOptions,
    role: &str,
) -> String {
    let u = sc.user;
    let home = inj.rng.gen_bool(0.3);
    // The relative, neighbour or coworker may be under the user's own care on the
    // chosen day; then look on the following days, so every labelled insider acts.
    let mut attempt = 0;
    let (t0, on_shift, mut pool) = loop {
        let day = (sc.day + attempt).min(opts.days.saturating_sub(1));
        let (t0, _, on_shift) = if home {
            let t = day_ms(opts, day, 20 * 3600) + inj.rng.gen_range(0..2 * HOUR);
            (t, t, false)
        } else {
            moment(inj, shifts, day, opts)
        };
        let h = &inj.w.h;
        let mut pool: Vec<u32> = match sc.family {
            Family::Household => rel.household(h, u),
            Family::Neighbour => rel.neighbours(h, u),
            Family::Coworker => rel.coworkers(h, u),
            Family::SelfAccess => h.staff[u as usize].patient.into_iter().collect(),
            Family::Vip => (0..h.patients.len() as u32)
                .filter(|&p| h.patients[p as usize].vip)
                .collect(),
            _ => (0..h.patients.len() as u32)
                .filter(|&p| {
                    h.patients[p as usize]
                        .deceased
                        .is_some_and(|d| d < t0 - 21 * DAY)
                })
                .collect(),
        };
        if sc.family != Family::Deceased {
            pool.retain(|&p| alive_at(&inj.w.h, p, t0));
        }
        pool.retain(|&p| inj.uncovered(p, t0));
        attempt += 1;
        if !pool.is_empty() || attempt >= 14 {
            break (t0, on_shift, pool);
        }
    };
    pool.shuffle(inj.rng);
    let max = match sc.family {
        Family::SelfAccess => 1,
        Family::Vip => 2,
        _ => 3,
    };
    let k = inj.rng.gen_range(1..=max).min(pool.len());
    if home || !on_shift {
        inj.remote();
    }
    let mut t = t0;
    for &p in pool.iter().take(k) {
        let depth = inj.rng.gen_range(1..=3);
        let end = inj.snoop(t, p, depth);
        if sc.family == Family::SelfAccess && inj.rng.gen_bool(0.4) {
            let t = end + inj.rng.gen_range(SECOND * 20..2 * MINUTE);
            inj.emit(t, p, Kind::Update, 1, NONE);
        }
        t = end + inj.rng.gen_range(5 * MINUTE..90 * MINUTE);
    }
    let place = if home || !on_shift {
        "from home (VPN) in the evening"
    } else {
        "during a shift"
    };
    let what = match sc.family {
        Family::Household => "household member(s)",
        Family::Neighbour => "neighbour(s) on the same street",
        Family::Coworker => "coworker(s) in the same department",
        Family::SelfAccess => "own chart",
        Family::Vip => "VIP patient(s)",
        _ => "patient(s) who died weeks ago",
    };
    format!("{role} opens {k} {what} {place}")
}

fn terminated(inj: &mut Inj, sc: &Scenario, opts: &SimOptions, role: &str) -> String {
    let remote = inj.rng.gen_bool(0.6);
    if remote {
        inj.remote();
    }
    let mut n_total = 0;
    for d in sc.day..sc.day + sc.days {
        let n = inj.rng.gen_range(2..=8);
        let base = if remote { 19 * 3600 } else { 8 * 3600 };
        for _ in 0..n {
            let t = day_ms(opts, d, base) + inj.rng.gen_range(0..4 * HOUR);
            let p = inj.stranger(t);
            let depth = inj.rng.gen_range(0..=2);
            inj.snoop(t, p, depth);
        }
        n_total += n;
    }
    let how = if remote {
        "over VPN in the evenings"
    } else {
        "from the old workstation"
    };
    format!("{role} account opens {n_total} charts on/after its termination date, {how}")
}

fn sweep(inj: &mut Inj, sc: &Scenario, shifts: &[Shift], opts: &SimOptions, role: &str) -> String {
    let n = inj.rng.gen_range(40..=150);
    let per_day = n / sc.days as usize;
    for d in sc.day..sc.day + sc.days {
        let (lo, hi, _) = moment(inj, shifts, d, opts);
        let hi = hi.max(lo + HOUR);
        for _ in 0..per_day {
            let t = inj.rng.gen_range(lo..hi);
            let p = inj.stranger(t);
            let depth = usize::from(inj.rng.gen_bool(0.4));
            inj.snoop(t, p, depth);
        }
    }
    format!(
        "{role} opens {} unrelated charts over {} day(s)",
        per_day * sc.days as usize,
        sc.days
    )
}

fn after_hours(inj: &mut Inj, sc: &Scenario, opts: &SimOptions, role: &str) -> String {
    let remote = inj.rng.gen_bool(0.5);
    if remote {
        inj.remote();
    }
    let n = inj.rng.gen_range(20..=60);
    let lo = day_ms(opts, sc.day, 2 * 3600);
    for _ in 0..n {
        let t = lo + inj.rng.gen_range(0..2 * HOUR);
        let p = inj.stranger(t);
        let depth = usize::from(inj.rng.gen_bool(0.3));
        inj.snoop(t, p, depth);
    }
    let how = if remote {
        "over VPN"
    } else {
        "at the workstation"
    };
    format!("day-shift {role} opens {n} charts between 2 and 4 am {how}")
}

fn search_burst(
    inj: &mut Inj,
    sc: &Scenario,
    shifts: &[Shift],
    opts: &SimOptions,
    role: &str,
) -> String {
    let (t0, _, _) = moment(inj, shifts, sc.day, opts);
    let n = inj.rng.gen_range(30..=80);
    let window = inj.rng.gen_range(3..=10) * MINUTE;
    let mut times: Vec<i64> = (0..n).map(|_| t0 + inj.rng.gen_range(0..window)).collect();
    times.sort_unstable();
    for t in times {
        inj.emit(t, NONE, Kind::Search, 1, NONE);
    }
    let k = inj.rng.gen_range(2..=6);
    for _ in 0..k {
        let t = t0 + window + inj.rng.gen_range(0..15 * MINUTE);
        let p = inj.stranger(t);
        inj.snoop(t, p, 0);
    }
    format!(
        "{role} runs {n} patient searches in {} minutes, opens {k}",
        window / MINUTE
    )
}

/// An export's patients: Epic reports carry only a record count, FHIR lists each patient.
fn export(inj: &mut Inj, t: i64, lo: u32, hi: u32, fhir_lo: u32, fhir_hi: u32) -> u32 {
    let sys = DEPTS[inj.w.h.staff[inj.user as usize].dept].system;
    if sys == System::Fhir {
        let r = inj.rng.gen_range(fhir_lo..=fhir_hi);
        let mut ps: Vec<u32> = Vec::with_capacity(r as usize);
        while ps.len() < r as usize {
            let p = inj.stranger(t);
            if !ps.contains(&p) {
                ps.push(p);
            }
        }
        let first = ps[0];
        for &p in &ps[1..] {
            if !inj.patients.contains(&p) {
                inj.patients.push(p);
            }
        }
        let aux = inj.w.push_aux(Aux::Patients(ps));
        inj.emit(t, first, Kind::Export, r, aux);
        r
    } else {
        let r = inj.rng.gen_range(lo..=hi);
        inj.emit(t, NONE, Kind::Export, r, NONE);
        r
    }
}

fn bulk_export(
    inj: &mut Inj,
    sc: &Scenario,
    shifts: &[Shift],
    opts: &SimOptions,
    role: &str,
) -> String {
    let (t0, _, _) = moment(inj, shifts, sc.day, opts);
    let r = export(inj, t0, 200, 5000, 120, 300);
    let t1 = t0 + inj.rng.gen_range(5..=55) * MINUTE;
    let uid = inj.w.h.staff[inj.user as usize].user_id.clone();
    let date = clock::local_date(t0);
    let path = if inj.rng.gen_bool(0.5) {
        format!("E:\\export\\patient_list_{date}.csv")
    } else {
        format!("/media/{uid}/SANDISK/census_{date}.xlsx")
    };
    let bytes = r as u64 * inj.rng.gen_range(250..900);
    let aux = inj.w.push_aux(Aux::File { path, bytes });
    inj.emit(t1, NONE, Kind::File(Media::Removable), r, aux);
    format!(
        "{role} exports {r} records and copies them to a USB drive {} min later",
        (t1 - t0) / MINUTE
    )
}

fn hoarding(
    inj: &mut Inj,
    sc: &Scenario,
    shifts: &[Shift],
    opts: &SimOptions,
    role: &str,
) -> String {
    let cloud = inj.rng.gen_bool(0.5);
    let uid = inj.w.h.staff[inj.user as usize].user_id.clone();
    let mut total = 0;
    for d in sc.day..sc.day + sc.days {
        let (t, _, _) = moment(inj, shifts, d, opts);
        // Always from the workstation, so the cloud copy lands on the same host.
        inj.host = inj.w.h.staff[inj.user as usize].host;
        let r = export(inj, t, 40, 150, 20, 60);
        total += r;
        if cloud {
            let t1 = t + inj.rng.gen_range(2..20) * MINUTE;
            let path = format!(
                "C:\\Users\\{uid}\\OneDrive\\Documents\\list_{}.csv",
                d - sc.day + 1
            );
            let bytes = r as u64 * inj.rng.gen_range(250..900);
            let aux = inj.w.push_aux(Aux::File { path, bytes });
            inj.emit(t1, NONE, Kind::File(Media::Cloud), r, aux);
        }
    }
    let sync = if cloud {
        ", each synced to a personal cloud folder"
    } else {
        ""
    };
    format!(
        "{role} exports {total} records in {} daily exports{sync}",
        sc.days
    )
}

fn slow_fishing(
    inj: &mut Inj,
    sc: &Scenario,
    shifts: &[Shift],
    opts: &SimOptions,
    role: &str,
) -> String {
    let (mut t0, end, on_shift) = moment(inj, shifts, sc.day, opts);
    // Now and then the fishing is spread over most of a shift instead, at a pace no
    // single hour shows (a dozen an hour at most).
    let shift_long = inj.rng.gen_bool(0.4);
    let (n, span) = if shift_long {
        if on_shift {
            // From early in the shift (`moment` leaves two hours before its end).
            let start = shifts
                .iter()
                .filter(|s| s.start <= t0 && t0 < s.end)
                .map(|s| s.start)
                .next()
                .unwrap_or(t0);
            t0 = start + inj.rng.gen_range(10..40) * MINUTE;
        }
        let room = (end - t0 - 20 * MINUTE).max(4 * HOUR);
        let span = (inj.rng.gen_range(300..=480) * MINUTE).min(room);
        let per_hour = inj.rng.gen_range(8.0..12.0);
        let n = ((span as f64 / HOUR as f64) * per_hour) as u32;
        (n.max(40), span)
    } else {
        (
            inj.rng.gen_range(30..=60),
            inj.rng.gen_range(60..=100) * MINUTE,
        )
    };
    let step = span / n as i64;
    let mut t = t0;
    let mut opened = 0;
    for i in 0..n {
        t += step + inj.rng.gen_range(-step / 3..=step / 3);
        inj.emit(t, NONE, Kind::Search, 1, NONE);
        // Now and then a hit is opened briefly.
        if i % 12 == 11 {
            let p = inj.stranger(t);
            let at = t + inj.rng.gen_range(5 * SECOND..40 * SECOND);
            inj.snoop(at, p, 0);
            opened += 1;
        }
    }
    if shift_long {
        return format!(
            "{role} runs {n} patient searches spread over {:.1} hours of a shift, opens {opened}",
            span as f64 / HOUR as f64
        );
    }
    format!(
        "{role} runs {n} patient searches at a steady pace over {} minutes, opens {opened}",
        span / MINUTE
    )
}

fn workflow_snoop(
    inj: &mut Inj,
    sc: &Scenario,
    rel: &Relations,
    shifts: &[Shift],
    opts: &SimOptions,
    role: &str,
) -> String {
    let u = sc.user;
    let vip_first = inj.rng.gen_bool(0.6);
    let mut attempt = 0;
    loop {
        let day = (sc.day + attempt).min(opts.days.saturating_sub(1));
        let (t0, _, _) = moment(inj, shifts, day, opts);
        let h = &inj.w.h;
        let vips: Vec<u32> = (0..h.patients.len() as u32)
            .filter(|&p| h.patients[p as usize].vip)
            .collect();
        let coworkers = rel.coworkers(h, u);
        // Hours away from anything the user's own department did on the stay: not the
        // clerk finishing the patient's registration.
        let dept = inj.w.h.staff[u as usize].dept;
        let in_stay = |inj: &Inj, p: u32| {
            alive_at(&inj.w.h, p, t0)
                && inj.w.care.by_patient[p as usize].iter().all(|&r| {
                    let r = &inj.w.care.rows[r as usize];
                    (r.dept != dept && r.user != Some(u))
                        || r.end.saturating_add(6 * HOUR) < t0
                        || r.start - 6 * HOUR > t0
                })
                && inj.w.care.by_patient[p as usize]
                    .iter()
                    .any(|&r| inj.w.care.rows[r as usize].covers(t0))
        };
        let (first, second) = if vip_first {
            (vips, coworkers)
        } else {
            (coworkers, vips)
        };
        let pick = |pool: &[u32], inj: &Inj| -> Vec<u32> {
            pool.iter().copied().filter(|&p| in_stay(inj, p)).collect()
        };
        let mut pool = pick(&first, inj);
        let mut vip = vip_first;
        if pool.is_empty() {
            pool = pick(&second, inj);
            vip = !vip_first;
        }
        attempt += 1;
        if pool.is_empty() && attempt < 14 {
            continue;
        }
        let Some(&p) = pool.choose(inj.rng) else {
            return format!("{role} found no VIP or coworker in a stay to open");
        };
        let depth = inj.rng.gen_range(1..=3);
        inj.snoop(t0, p, depth);
        let what = if vip { "a VIP" } else { "a coworker" };
        return format!(
            "{role} opens {what} in a stay elsewhere, from the worklist without a search"
        );
    }
}
