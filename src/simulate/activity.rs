//! Normal work: the accesses every shift produces, each tagged with why it happened.
//!
//! Clinicians open the charts of patients in their department's care (a handful assigned
//! to them, reopened many times, plus others on the unit); ancillary staff work on their
//! orders; registration checks patients in and verifies upcoming visits; HIM and billing
//! work on recently discharged patients; billing exports a weekly report. A few percent of
//! ancillary work has no care row (the consult was never written into care): legitimate,
//! and exactly what trips a naive "no care relationship" rule.

use super::care::{Care, CareRow, EncKind, LEAD_DAYS};
use super::clock::{self, HOUR, MINUTE, SECOND};
use super::hospital::{self as hosp, DeptKind, Hospital, Role, DEPTS};
use super::schedule::Shift;
use super::{Access, Aux, Kind, System, Why, World, NONE};
use crate::event::Media;
use chrono::{Datelike, Weekday};
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

struct Ctx<'a> {
    h: &'a Hospital,
    care: &'a Care,
    out: &'a mut Vec<Access>,
    aux: &'a mut Vec<Aux>,
    rng: &'a mut ChaCha8Rng,
    month_end: i64,
}

impl Ctx<'_> {
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        user: u32,
        ts: i64,
        patient: u32,
        kind: Kind,
        why: Why,
        records: u32,
        aux: u32,
    ) {
        if ts >= self.month_end || ts < self.care.month_start {
            return;
        }
        let st = &self.h.staff[user as usize];
        let sys = match kind {
            Kind::File(_) => System::Files,
            _ => DEPTS[st.dept].system,
        };
        self.out.push(Access {
            ts,
            user,
            patient,
            aux,
            records,
            host: st.host,
            kind,
            why,
            sys,
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn file(
        &mut self,
        user: u32,
        ts: i64,
        media: Media,
        path: String,
        bytes: u64,
        records: u32,
        why: Why,
    ) {
        self.aux.push(Aux::File { path, bytes });
        let aux = (self.aux.len() - 1) as u32;
        self.push(user, ts, NONE, Kind::File(media), why, records, aux);
    }

    /// Care rows naming the user that overlap the shift, without the user's own
    /// household (nobody is assigned their own family).
    fn own_rows(&self, user: u32, sh: &Shift) -> Vec<u32> {
        self.care.by_user[user as usize]
            .iter()
            .copied()
            .filter(|&r| self.fits(user, sh, r))
            .collect()
    }

    fn fits(&self, user: u32, sh: &Shift, r: u32) -> bool {
        let r = &self.care.rows[r as usize];
        r.start < sh.end
            && r.end > sh.start
            && self.h.patients[r.patient as usize].household
                != self.h.staff[user as usize].household
    }

    /// A random care row of the department overlapping the shift (same household
    /// excluded). Sampled from the per-day index rather than listed, so a shift costs
    /// the same however big the hospital is.
    fn sample_row(&mut self, user: u32, dept: usize, sh: &Shift) -> Option<u32> {
        let d0 = self
            .care
            .day_index(sh.start.max(self.care.month_start))
            .unwrap_or(0);
        let d1 = self
            .care
            .day_index((sh.end - 1).min(self.month_end - 1))
            .unwrap_or(d0);
        for _ in 0..30 {
            let d = self.rng.gen_range(d0..=d1);
            let Some(&r) = self.care.by_dept_day[dept][d].choose(self.rng) else {
                continue;
            };
            if self.fits(user, sh, r) {
                return Some(r);
            }
        }
        None
    }

    /// A time inside both the shift and the care row, if they overlap.
    fn time_in(&mut self, sh: &Shift, r: &CareRow) -> Option<i64> {
        let a = sh.start.max(r.start);
        let b = sh.end.min(r.end).min(self.month_end - 1);
        (a < b).then(|| self.rng.gen_range(a..b))
    }

    /// Follow-up clicks after opening a chart, kept inside the care row and the shift.
    fn follow_ups(
        &mut self,
        user: u32,
        ts: i64,
        limit: i64,
        patient: u32,
        why: Why,
        kinds: &[(Kind, f64)],
    ) {
        let mut t = ts;
        for &(k, p) in kinds {
            if self.rng.gen_bool(p) {
                t += self.rng.gen_range(5 * SECOND..4 * MINUTE);
                if t > limit {
                    return;
                }
                self.push(user, t, patient, k, why, 1, NONE);
            }
        }
    }

    fn opens(&mut self, lo: u32, hi: u32, sh: &Shift, nominal_hours: f64) -> u32 {
        let f = ((sh.end - sh.start) as f64 / HOUR as f64 / nominal_hours).clamp(0.4, 1.2);
        (self.rng.gen_range(lo..=hi) as f64 * f).round() as u32
    }

    fn clinical(&mut self, user: u32, sh: &Shift) {
        let st = &self.h.staff[user as usize];
        let (role, dept) = (st.role, st.dept);
        let own = self.own_rows(user, sh);
        let (n, k) = match role {
            Role::Nurse => (self.opens(20, 50, sh, 12.5), self.rng.gen_range(4..=7)),
            Role::Physician => (self.opens(15, 40, sh, 10.5), self.rng.gen_range(6..=14)),
            _ => (self.opens(20, 45, sh, 12.0), self.rng.gen_range(5..=10)),
        };
        let mut assigned: Vec<u32> = own;
        assigned.shuffle(self.rng);
        assigned.truncate(k);
        while assigned.len() < k {
            let Some(r) = self.sample_row(user, dept, sh) else {
                break;
            };
            assigned.push(r);
        }
        if assigned.is_empty() {
            return;
        }
        for _ in 0..n {
            let other = if self.rng.gen_bool(0.3) {
                self.sample_row(user, dept, sh)
            } else {
                None
            };
            let r = other.unwrap_or_else(|| *assigned.choose(self.rng).expect("non-empty"));
            let row = &self.care.rows[r as usize];
            let (p, limit) = (row.patient, sh.end.min(row.end));
            let Some(ts) = self.time_in(sh, row) else {
                continue;
            };
            if self.rng.gen_bool(0.05) {
                let back = self.rng.gen_range(10..60) * SECOND;
                self.push(user, ts - back, NONE, Kind::Search, Why::Lookup, 1, NONE);
            }
            self.push(user, ts, p, Kind::Open, Why::Care, 1, NONE);
            let note = if role == Role::Nurse { 0.12 } else { 0.08 };
            self.follow_ups(
                user,
                ts,
                limit,
                p,
                Why::Care,
                &[
                    (Kind::Results, 0.08),
                    (Kind::ProblemList, 0.03),
                    (Kind::Note, note),
                    (Kind::Update, 0.02),
                ],
            );
        }
    }

    fn ancillary(&mut self, user: u32, sh: &Shift) {
        let st = &self.h.staff[user as usize];
        let (role, dept) = (st.role, st.dept);
        let n = match role {
            Role::Pharmacist => self.opens(30, 60, sh, 8.5),
            Role::Physician => self.opens(20, 40, sh, 10.0),
            _ => self.opens(25, 50, sh, 8.5),
        };
        let follow = match dept {
            hosp::PHARMACY => Kind::Update,
            _ => Kind::Note,
        };
        for _ in 0..n {
            if self.rng.gen_bool(0.03) {
                self.unrecorded_consult(user, dept, sh, follow);
                continue;
            }
            if self.rng.gen_bool(0.02) {
                self.consult_outside_window(user, dept, sh, follow);
                continue;
            }
            let Some(r) = self.sample_row(user, dept, sh) else {
                continue;
            };
            let row = &self.care.rows[r as usize];
            let (p, limit) = (row.patient, sh.end.min(row.end));
            let Some(ts) = self.time_in(sh, row) else {
                continue;
            };
            self.push(user, ts, p, Kind::Open, Why::Care, 1, NONE);
            self.follow_ups(
                user,
                ts,
                limit,
                p,
                Why::Care,
                &[(Kind::Results, 0.1), (follow, 0.15)],
            );
        }
        // Routine removable media: image CDs/USB sticks for outside consults. No export.
        if dept == hosp::RADIOLOGY && role == Role::Technician && self.rng.gen_bool(0.15) {
            let ts = self.rng.gen_range(sh.start..sh.end);
            let n = self.rng.gen_range(100_000..999_999);
            let bytes = self.rng.gen_range(50_000_000..700_000_000);
            self.file(
                user,
                ts,
                Media::Removable,
                format!("E:\\DICOM\\ST{n}.iso"),
                bytes,
                1,
                Why::RoutineFile,
            );
        }
    }

    /// A consult the ordering unit never wrote into care: a patient in care elsewhere.
    fn unrecorded_consult(&mut self, user: u32, dept: usize, sh: &Shift, follow: Kind) {
        let Some(day) = self.care.day_index(sh.start.max(self.care.month_start)) else {
            return;
        };
        for _ in 0..6 {
            let other = self.rng.gen_range(0..hosp::RADIOLOGY);
            let Some(&r) = self.care.by_dept_day[other][day].choose(self.rng) else {
                continue;
            };
            let row = &self.care.rows[r as usize];
            let p = row.patient;
            if self.h.patients[p as usize].household == self.h.staff[user as usize].household {
                continue;
            }
            let Some(ts) = self.time_in(sh, row) else {
                continue;
            };
            if self.care.covered(p, dept, user, ts) {
                continue;
            }
            self.push(user, ts, p, Kind::Open, Why::UnrecordedConsult, 1, NONE);
            let t = ts + self.rng.gen_range(10 * SECOND..4 * MINUTE);
            // Only while the order is still unrecorded and the patient still in care.
            if self.rng.gen_bool(0.4)
                && t <= sh.end.min(row.end)
                && !self.care.covered(p, dept, user, t)
            {
                self.push(user, t, p, follow, Why::UnrecordedConsult, 1, NONE);
            }
            return;
        }
    }

    /// A consulting department back on a patient it was consulted for during the same
    /// stay, outside the window its care row records (a comparison read, a level
    /// rechecked the next day). Legitimate: the department was on this admission. Now
    /// and then the patient is a VIP or a member of staff, where the stricter
    /// explanations must still hold.
    fn consult_outside_window(&mut self, user: u32, dept: usize, sh: &Shift, follow: Kind) {
        let Some(day) = self.care.day_index(sh.start.max(self.care.month_start)) else {
            return;
        };
        let hi = sh.end.min(self.month_end - 1);
        if hi <= sh.start {
            return;
        }
        let special = self.rng.gen_bool(0.25);
        for _ in 0..8 {
            let d = day.saturating_sub(self.rng.gen_range(0..=3));
            let rows = &self.care.by_dept_day[dept][d];
            let r = if special {
                let vip: Vec<u32> = rows
                    .iter()
                    .copied()
                    .filter(|&r| {
                        let p = &self.h.patients[self.care.rows[r as usize].patient as usize];
                        p.vip || p.employee.is_some()
                    })
                    .collect();
                vip.choose(self.rng).copied()
            } else {
                rows.choose(self.rng).copied()
            };
            let Some(r) = r else { continue };
            let row = &self.care.rows[r as usize];
            let p = row.patient;
            if self.h.patients[p as usize].household == self.h.staff[user as usize].household
                || self.h.patients[p as usize].employee == Some(user)
            {
                continue;
            }
            let ts = self.rng.gen_range(sh.start..hi);
            if row.covers(ts) || self.care.covered(p, dept, user, ts) {
                continue;
            }
            let in_stay = self.care.by_patient[p as usize].iter().any(|&o| {
                let o = &self.care.rows[o as usize];
                o.dept != dept && o.dept != hosp::REGISTRATION && o.covers(ts)
            });
            if !in_stay {
                continue;
            }
            self.push(user, ts, p, Kind::Open, Why::ConsultOutsideWindow, 1, NONE);
            if self.rng.gen_bool(0.5) {
                let t = ts + self.rng.gen_range(10 * SECOND..4 * MINUTE);
                self.push(user, t, p, follow, Why::ConsultOutsideWindow, 1, NONE);
            }
            return;
        }
    }

    fn registration(&mut self, user: u32, sh: &Shift) {
        let n = self.opens(60, 120, sh, 8.5);
        for _ in 0..n {
            let Some(r) = self.sample_row(user, hosp::REGISTRATION, sh) else {
                continue;
            };
            let row = &self.care.rows[r as usize];
            let (p, limit) = (row.patient, sh.end.min(row.end));
            let Some(ts) = self.time_in(sh, row) else {
                continue;
            };
            if self.rng.gen_bool(0.4) {
                let k = self.rng.gen_range(1..=2);
                for j in 0..k {
                    let back = (k - j) as i64 * self.rng.gen_range(8..40) * SECOND;
                    self.push(user, ts - back, NONE, Kind::Search, Why::Lookup, 1, NONE);
                }
            }
            self.push(user, ts, p, Kind::Open, Why::Care, 1, NONE);
            self.follow_ups(
                user,
                ts,
                limit,
                p,
                Why::Care,
                &[(Kind::Demographics, 0.3), (Kind::Update, 0.08)],
            );
        }
    }

    /// Encounters (admissions and ED visits) that ended between `from` and `to` days
    /// before the shift's day.
    fn ended_pool(&self, sh: &Shift, from: i64, to: i64) -> Vec<u32> {
        let Some(day) = self.care.day_index(sh.start) else {
            return Vec::new();
        };
        let mut pool = Vec::new();
        for back in from..=to {
            let i = day as i64 + LEAD_DAYS - back;
            if i >= 0 && (i as usize) < self.care.ended_by_day.len() {
                pool.extend_from_slice(&self.care.ended_by_day[i as usize]);
            }
        }
        pool
    }

    fn back_office(&mut self, user: u32, sh: &Shift, him: bool) {
        let (pool, why, n) = if him {
            (
                self.ended_pool(sh, 1, 21),
                Why::HimRelease,
                self.opens(20, 40, sh, 8.5),
            )
        } else {
            (
                self.ended_pool(sh, 0, 30),
                Why::BillingFollowup,
                self.opens(15, 35, sh, 8.5),
            )
        };
        let hh = self.h.staff[user as usize].household;
        for _ in 0..n {
            let Some(&e) = pool.choose(self.rng) else {
                return;
            };
            let enc = &self.care.encounters[e as usize];
            let p = enc.patient;
            if self.h.patients[p as usize].household == hh {
                continue;
            }
            let lo = sh.start.max(enc.end + HOUR);
            if lo >= sh.end {
                continue;
            }
            let ts = self.rng.gen_range(lo..sh.end);
            self.push(user, ts, p, Kind::Open, why, 1, NONE);
            let limit = sh.end;
            self.follow_ups(user, ts, limit, p, why, &[(Kind::ChartReview, 0.5)]);
            if him && enc.kind != EncKind::Clinic && self.rng.gen_bool(0.3) {
                // Release of information: the requested records printed or sent as PDF.
                let kind = if self.rng.gen_bool(0.7) {
                    Kind::Print
                } else {
                    Kind::Export
                };
                let t = (ts + self.rng.gen_range(MINUTE..6 * MINUTE)).min(limit - 1);
                self.push(user, t, p, kind, why, 1, NONE);
            }
        }
        if self.rng.gen_bool(0.3) {
            self.office_file(user, sh);
        }
    }

    /// Documents saved to the department share: file activity without patient records.
    fn office_file(&mut self, user: u32, sh: &Shift) {
        let st = &self.h.staff[user as usize];
        let ts = self.rng.gen_range(sh.start..sh.end);
        let n: u32 = self.rng.gen_range(1000..9999);
        let path = format!(
            "\\\\fs01\\{}\\documents\\memo_{n}.docx",
            DEPTS[st.dept].code.to_lowercase()
        );
        let bytes = self.rng.gen_range(20_000..2_000_000);
        self.file(user, ts, Media::Network, path, bytes, 0, Why::RoutineFile);
    }

    fn it(&mut self, user: u32, sh: &Shift) {
        if self.rng.gen_bool(0.3) {
            let ts = self.rng.gen_range(sh.start..sh.end);
            let tool = [
                "drivers_x64.zip",
                "bios_update.bin",
                "imaging_tool.iso",
                "win11_patch.msu",
            ]
            .choose(self.rng)
            .expect("non-empty");
            let uid = &self.h.staff[user as usize].user_id;
            let path = format!("/media/{uid}/TOOLS/{tool}");
            let bytes = self.rng.gen_range(10_000_000..900_000_000);
            self.file(user, ts, Media::Removable, path, bytes, 0, Why::RoutineFile);
        }
        if self.rng.gen_bool(0.5) {
            self.office_file(user, sh);
        }
    }

    /// Billing's weekly report: hundreds of records exported on the same weekday each
    /// week, then saved to the billing share (network, never removable media).
    fn weekly_report(&mut self, user: u32, sh: &Shift, which: usize) {
        let ts = sh.start + self.rng.gen_range(30..100) * MINUTE;
        let records = self.rng.gen_range(300..=700);
        let date = clock::local_date(ts);
        let name = ["AR_aging", "denials_worklist", "payer_mix"][which % 3];
        let share = Share {
            path: format!("\\\\fs01\\billing\\reports\\{name}_{date}.xlsx"),
            bytes_per_record: 180..420,
            minutes_later: 2..12,
            why: Why::ReportCopy,
        };
        self.export_to_share(user, ts, records, Why::BillingReport, share);
    }

    /// Records' fortnightly release batch: a few hundred records exported every other
    /// week on the same weekday (a legitimate periodic bulk export), saved to the HIM
    /// share.
    fn fortnightly_release(&mut self, user: u32, sh: &Shift) {
        let ts = sh.start + self.rng.gen_range(60..240) * MINUTE;
        let records = self.rng.gen_range(200..=600);
        let date = clock::local_date(ts);
        let share = Share {
            path: format!("\\\\fs01\\him\\release\\batch_{date}.pdf"),
            bytes_per_record: 20_000..90_000,
            minutes_later: 2..12,
            why: Why::PeriodicExport,
        };
        self.export_to_share(user, ts, records, Why::PeriodicExport, share);
    }

    /// A revenue-cycle or quality analyst's period-end extract: the month's close on the
    /// first working day of a month, again at a month's end, and a larger one at a
    /// quarter's end (a legitimate bulk export on a monthly, not weekly, rhythm), saved to
    /// the finance share.
    fn period_end_extract(&mut self, user: u32, sh: &Shift, base: u32, quarter_end: bool) {
        let ts = sh.start + self.rng.gen_range(45..200) * MINUTE;
        let scale = if quarter_end {
            self.rng.gen_range(1.5..2.5)
        } else {
            self.rng.gen_range(0.8..1.2)
        };
        let records = (base as f64 * scale) as u32;
        let date = clock::local_date(ts);
        let name = if quarter_end {
            "quarter_close"
        } else {
            "month_close"
        };
        let share = Share {
            path: format!("\\\\fs01\\finance\\close\\{name}_{date}.xlsx"),
            bytes_per_record: 150..400,
            minutes_later: 3..15,
            why: Why::PeriodEndExport,
        };
        self.export_to_share(user, ts, records, Why::PeriodEndExport, share);
    }

    /// A legitimate bulk export at `ts`, then its file saved to a network share a few
    /// minutes later (never removable media): the periodic work that must not read as
    /// an exfiltration.
    fn export_to_share(&mut self, user: u32, ts: i64, records: u32, why: Why, share: Share) {
        self.push(user, ts, NONE, Kind::Export, why, records, NONE);
        let bytes = records as u64 * self.rng.gen_range(share.bytes_per_record);
        let t2 = ts + self.rng.gen_range(share.minutes_later) * MINUTE;
        self.file(
            user,
            t2,
            Media::Network,
            share.path,
            bytes,
            records,
            share.why,
        );
    }
}

/// Where a periodic export's file is saved, how large it is, how soon after the export,
/// and why (as labelled).
struct Share {
    path: String,
    bytes_per_record: std::ops::Range<u64>,
    minutes_later: std::ops::Range<i64>,
    why: Why,
}

/// Where a shift stands in the calendar for month-close work: the first shift of the
/// user's in the first five days of a month, or the last in its last five days (and
/// whether that month closes a quarter).
fn month_turn(list: &[Shift], sh: &Shift) -> Option<bool> {
    let d = clock::local_date(sh.start);
    let month_len = days_in_month(d);
    let same_month = |s: &Shift| {
        let x = clock::local_date(s.start);
        x.year() == d.year() && x.month() == d.month()
    };
    if d.day() <= 5
        && !list
            .iter()
            .any(|s| same_month(s) && clock::local_date(s.start) < d)
    {
        return Some(false);
    }
    if d.day() + 5 > month_len
        && !list
            .iter()
            .any(|s| same_month(s) && clock::local_date(s.start) > d)
    {
        return Some(d.month() % 3 == 0);
    }
    None
}

fn days_in_month(d: chrono::NaiveDate) -> u32 {
    let (y, m) = if d.month() == 12 {
        (d.year() + 1, 1)
    } else {
        (d.year(), d.month() + 1)
    };
    let first_next = chrono::NaiveDate::from_ymd_opt(y, m, 1).expect("valid date");
    (first_next - chrono::Duration::days(1)).day()
}

/// Generates every shift's work. `insiders` are left out of the billing-report rota so
/// that the weekly report stays an innocent look-alike.
pub fn generate(w: &mut World, shifts: &[Vec<Shift>], insiders: &[u32], rng: &mut ChaCha8Rng) {
    let World {
        h,
        care,
        accesses,
        aux,
        ..
    } = w;
    let mut ctx = Ctx {
        h,
        care,
        out: accesses,
        aux,
        rng,
        month_end: care.month_end,
    };
    // Billing reporters: one per 400 staff (at least one), each with a fixed weekday.
    let n_reporters = (h.staff.len() / 400).max(1);
    let reporters: Vec<u32> = h.by_dept[hosp::BILLING]
        .iter()
        .copied()
        .filter(|&i| h.staff[i as usize].termination.is_none() && !insiders.contains(&i))
        .take(n_reporters)
        .collect();
    let weekdays = [Weekday::Mon, Weekday::Thu, Weekday::Tue];
    // Records' release batch: one analyst per 800 staff, every other week on a fixed
    // weekday.
    let n_release = (h.staff.len() / 800).max(1);
    let releasers: Vec<u32> = h.by_dept[hosp::HIM]
        .iter()
        .copied()
        .filter(|&i| h.staff[i as usize].termination.is_none() && !insiders.contains(&i))
        .take(n_release)
        .collect();
    // The habit is older than the logs: its first batch falls in the first week.
    let release_phase: i64 = ctx.rng.gen_range(0..7);
    // Month-close analysts: one per 800 staff (at least one), in billing beside the
    // weekly reporters or in records beside the daily releases of information (whose
    // everyday one-record prints fill the history), each with the size of their usual
    // extract.
    let n_close = (h.staff.len() / 800).max(1);
    let close_dept = if ctx.rng.gen_bool(0.5) {
        hosp::BILLING
    } else {
        hosp::HIM
    };
    let closers: Vec<(u32, u32)> = h.by_dept[close_dept]
        .iter()
        .copied()
        .filter(|&i| {
            h.staff[i as usize].termination.is_none()
                && !insiders.contains(&i)
                && !reporters.contains(&i)
                && !releasers.contains(&i)
        })
        .take(n_close)
        .map(|i| (i, ctx.rng.gen_range(300..=800)))
        .collect();
    let month_start_day = clock::local_date(ctx.care.month_start);
    for (si, list) in shifts.iter().enumerate() {
        let user = si as u32;
        let st = &h.staff[si];
        for sh in list {
            match DEPTS[st.dept].kind {
                DeptKind::Ward { .. } | DeptKind::Emergency => ctx.clinical(user, sh),
                DeptKind::Ancillary => ctx.ancillary(user, sh),
                DeptKind::Registration => ctx.registration(user, sh),
                DeptKind::Him => {
                    ctx.back_office(user, sh, true);
                    if let Some(&(_, base)) = closers.iter().find(|c| c.0 == user) {
                        if let Some(quarter_end) = month_turn(list, sh) {
                            ctx.period_end_extract(user, sh, base, quarter_end);
                        }
                    }
                    if releasers.contains(&user) {
                        let d = (clock::local_date(sh.start) - month_start_day).num_days();
                        if d.rem_euclid(14) == release_phase
                            || (d.rem_euclid(14) == (release_phase + 1) % 14
                                && !worked_on(list, sh, -1))
                        {
                            ctx.fortnightly_release(user, sh);
                        }
                    }
                }
                DeptKind::Billing => {
                    ctx.back_office(user, sh, false);
                    if let Some(k) = reporters.iter().position(|&r| r == user) {
                        if clock::local_date(sh.start).weekday() == weekdays[k % 3] {
                            ctx.weekly_report(user, sh, k);
                        }
                    }
                    if let Some(&(_, base)) = closers.iter().find(|c| c.0 == user) {
                        if let Some(quarter_end) = month_turn(list, sh) {
                            ctx.period_end_extract(user, sh, base, quarter_end);
                        }
                    }
                }
                DeptKind::It => ctx.it(user, sh),
            }
            if st.role == Role::Physician && ctx.rng.gen_bool(0.1) {
                ctx.office_file(user, sh);
            }
        }
    }
}

/// True when the user had a shift starting `offset` days from this one's day.
fn worked_on(list: &[Shift], sh: &Shift, offset: i64) -> bool {
    let day = clock::local_date(sh.start) + chrono::Duration::days(offset);
    list.iter().any(|s| clock::local_date(s.start) == day)
}
