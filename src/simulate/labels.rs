//! `labels.json`: the injected insiders and the hard negatives.
//!
//! Hard negatives are found from the simulator's own ground truth after generation, not
//! planned: every innocent access that looks like a scenario (a night nurse at 3am, a
//! coworker's chart opened by the ward treating them, the VIP's care team, a neighbour or
//! same-surname patient with care, billing's weekly bulk export, routine USB writes, ...)
//! is aggregated per (kind, user), so the scorecard can say which look-alikes fool a
//! detector.

use super::clock;
use super::hospital::{Role, ShiftKind, DEPTS};
use super::insiders::Plan;
use super::writers::Written;
use super::{Kind, Why, World, NONE};
use crate::event::Media;
use crate::score::{HardNegative, InsiderLabel, Labels, Metadata};
use chrono::Duration;
use std::collections::{BTreeMap, BTreeSet};

struct Agg {
    events: u64,
    first: i64,
    last: i64,
    patients: Vec<u32>,
}

pub fn build(w: &World, plan: &Plan, written: &Written) -> Labels {
    let h = &w.h;
    let insiders: Vec<InsiderLabel> = plan
        .scenarios
        .iter()
        // A scenario that found nobody to act on (no relative, no VIP free of the
        // user's care) did not happen: it is not labelled.
        .filter(|s| s.events > 0)
        .enumerate()
        .map(|(i, s)| {
            let st = &h.staff[s.user as usize];
            InsiderLabel {
                id: format!("ins-{:02}", i + 1),
                user: st.user_id.clone(),
                scenario: s.family.as_str().to_string(),
                variant: s.variant.clone(),
                role: st.role.roster_name(w.opts.dialect()).to_string(),
                department: DEPTS[st.dept].name.to_string(),
                source: DEPTS[st.dept].system.source_name().to_string(),
                start: clock::utc(s.first),
                end: clock::utc(s.last),
                patients: s
                    .patients
                    .iter()
                    .map(|&p| h.patients[p as usize].id.clone())
                    .collect(),
                events: s.events,
            }
        })
        .collect();
    let insider_users: BTreeSet<u32> = plan.scenarios.iter().map(|s| s.user).collect();

    let mut agg: BTreeMap<(&'static str, u32), Agg> = BTreeMap::new();
    let mut add = |kind: &'static str, user: u32, ts: i64, patient: u32| {
        let a = agg.entry((kind, user)).or_insert(Agg {
            events: 0,
            first: ts,
            last: ts,
            patients: Vec::new(),
        });
        a.events += 1;
        a.first = a.first.min(ts);
        a.last = a.last.max(ts);
        if patient != NONE && a.patients.len() < 5 && !a.patients.contains(&patient) {
            a.patients.push(patient);
        }
    };
    for a in &w.accesses {
        if matches!(a.why, Why::Insider(_)) || insider_users.contains(&a.user) {
            continue;
        }
        let st = &h.staff[a.user as usize];
        match a.why {
            Why::UnrecordedConsult => add("unrecorded_consult", a.user, a.ts, a.patient),
            Why::HimRelease => add("him_release", a.user, a.ts, a.patient),
            Why::BillingFollowup => add("billing_followup", a.user, a.ts, a.patient),
            Why::BillingReport | Why::ReportCopy => {
                add("billing_weekly_report", a.user, a.ts, a.patient)
            }
            Why::PeriodicExport => add("fortnightly_release_export", a.user, a.ts, a.patient),
            Why::PeriodEndExport => add("period_end_export", a.user, a.ts, a.patient),
            Why::ConsultOutsideWindow => {
                let p = &h.patients[a.patient as usize];
                if p.vip || p.employee.is_some() {
                    add(
                        "consult_outside_window_vip_or_staff",
                        a.user,
                        a.ts,
                        a.patient,
                    )
                } else {
                    add("consult_outside_window", a.user, a.ts, a.patient)
                }
            }
            Why::RoutineFile if a.kind == Kind::File(Media::Removable) => {
                add("routine_usb", a.user, a.ts, NONE)
            }
            Why::Lookup if st.role == Role::RegistrationClerk => {
                add("registration_searches", a.user, a.ts, NONE)
            }
            _ => {}
        }
        if st.shift == ShiftKind::Night
            && clock::local_hour(a.ts) < 5
            && a.kind.action().is_chart_access()
        {
            add("night_shift", a.user, a.ts, a.patient);
        }
        if a.patient == NONE {
            continue;
        }
        let p = &h.patients[a.patient as usize];
        if p.deceased.is_some_and(|d| d <= a.ts) {
            add("deceased_recent", a.user, a.ts, a.patient);
        }
        if a.why != Why::Care {
            continue;
        }
        if p.vip {
            add("vip_care_team", a.user, a.ts, a.patient);
        }
        if let Some(e) = p.employee {
            if e != a.user && h.staff[e as usize].dept == st.dept {
                add("coworker_care", a.user, a.ts, a.patient);
            }
        }
        if p.household != st.household {
            let (ph, sh) = (
                &h.households[p.household as usize],
                &h.households[st.household as usize],
            );
            if ph.street == sh.street {
                add("neighbour_with_care", a.user, a.ts, a.patient);
            } else if p.family == st.family {
                add("surname_match_with_care", a.user, a.ts, a.patient);
            }
        }
    }
    // Accounts closed during the month that stay quiet: the look-alike of `terminated`.
    for (i, st) in h.staff.iter().enumerate() {
        if insider_users.contains(&(i as u32)) {
            continue;
        }
        if let Some(t) = st.termination {
            if t > w.opts.start && t < w.opts.start + Duration::days(w.opts.days as i64) {
                let ts = clock::local_ms(t, 0);
                agg.insert(
                    ("terminated_quiet", i as u32),
                    Agg {
                        events: 0,
                        first: ts,
                        last: ts,
                        patients: Vec::new(),
                    },
                );
            }
        }
    }
    let hard_negatives = agg
        .into_iter()
        .map(|((kind, user), a)| HardNegative {
            kind: kind.to_string(),
            user: h.staff[user as usize].user_id.clone(),
            events: a.events,
            first: clock::utc(a.first),
            last: clock::utc(a.last),
            patients: a
                .patients
                .iter()
                .map(|&p| h.patients[p as usize].id.clone())
                .collect(),
        })
        .collect();

    let by_name = |m: &BTreeMap<super::System, u64>| -> BTreeMap<String, u64> {
        m.iter()
            .map(|(s, n)| (s.source_name().to_string(), *n))
            .collect()
    };
    Labels {
        metadata: Metadata {
            generator: format!("phiwatch simulate {}", env!("CARGO_PKG_VERSION")),
            seed: w.opts.seed,
            staff: w.opts.staff,
            days: w.opts.days,
            start: Some(w.opts.start),
            end: Some(w.opts.start + Duration::days(w.opts.days as i64 - 1)),
            timezone: clock::TZ_NAME.to_string(),
            learning_days: plan.learning_days,
            patients: h.patients.len(),
            care_rows: w.care.rows.len(),
            events: by_name(&written.events),
            malformed_lines: written.malformed.values().sum(),
            malformed_by_source: by_name(&written.malformed),
        },
        insiders,
        hard_negatives,
    }
}
