//! `kind: after_hours`: chart accesses at night, at hours the user rarely works. Judged
//! against the user's own working hours (learned in `users::observe`), so night staff
//! working their shift stay quiet and a day worker browsing charts at 2 am does not.

use super::common::{human, patient, Patients};
use super::{Cx, DetectorKind};
use crate::detect::rule::Matcher;
use crate::engine::findings::Context;
use anyhow::{bail, Context as _, Result};
use chrono::{Duration, NaiveDate};
use serde::{Deserialize, Serialize};

/// `params` of an after_hours detector.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AfterHoursParams {
    /// Local hour the night starts (inclusive).
    #[serde(default = "twenty")]
    pub night_start: u8,
    /// Local hour the night ends (exclusive).
    #[serde(default = "six")]
    pub night_end: u8,
    /// An hour is unusual for a user when less than this share of their past accesses
    /// fell within an hour of it.
    #[serde(default = "rare")]
    pub rare_share: f64,
    /// Distinct patients opened at unusual hours in one night before alerting.
    pub min_patients: u64,
    /// Past accesses a user needs before their habits are trusted.
    #[serde(default = "hundred")]
    pub min_history_events: u64,
}

fn twenty() -> u8 {
    20
}
fn six() -> u8 {
    6
}
fn rare() -> f64 {
    0.02
}
fn hundred() -> u64 {
    100
}

#[derive(Debug, Clone)]
pub struct AfterHours {
    pub params: AfterHoursParams,
}

/// One user's night so far. A night spans midnight, so it is its own window rather than
/// a calendar day. Keys are those of older snapshots (`day` for the night).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Night {
    /// Local day the night began on.
    #[serde(rename = "day")]
    night: Option<NaiveDate>,
    /// Distinct patients opened at unusual hours this night.
    patients: Patients,
    events: u64,
    first_ms: i64,
    fired: Option<NaiveDate>,
}

impl DetectorKind for AfterHours {
    const NAME: &'static str = "after_hours";
    type User = Night;

    fn compile(params: serde_norway::Value, _matcher: &Matcher) -> Result<AfterHours> {
        let params: AfterHoursParams =
            serde_norway::from_value(params).context("in `params` of an after_hours detector")?;
        if params.night_start > 23 || params.night_end > 23 {
            bail!("params.night_start and night_end are hours 0-23");
        }
        Ok(AfterHours { params })
    }

    fn evaluate(&self, cx: Cx<'_>) -> Option<Context> {
        let p = &self.params;
        let e = cx.e;
        let h = e.hour;
        let in_night = if p.night_start > p.night_end {
            h >= p.night_start || h < p.night_end
        } else {
            h >= p.night_start && h < p.night_end
        };
        if !in_night || !cx.learned {
            return None;
        }
        let (near, total) = match cx.user.near_hour(h as u32, p.min_history_events) {
            Some((near, total)) if (near as f64) < p.rare_share * total as f64 => (near, total),
            _ => return None,
        };
        let night_of = if h < p.night_end {
            e.local_day - Duration::days(1)
        } else {
            e.local_day
        };
        // Taken only now: users who never work at unusual hours keep no state for it.
        let st = cx.user.state::<AfterHours>(cx.id);
        if st.night != Some(night_of) {
            st.night = Some(night_of);
            st.patients.clear();
            st.events = 0;
            st.first_ms = e.event.ts.timestamp_millis();
        }
        st.events += 1;
        st.patients.add_of(e);
        let n = st.patients.len() as u64;
        let mut c = Context::default();
        c.describe(e);
        c.events = Some(st.events);
        c.first_seen = Some(st.first_ms);
        c.values.insert("value", human(n));
        c.values.insert(
            "hours",
            format!("{:02}:00-{:02}:00", p.night_start, p.night_end),
        );
        let share = 100.0 * near as f64 / total.max(1) as f64;
        c.values.insert("usual", format!("{share:.1}%"));
        if st.fired == Some(night_of) {
            c.extend_only = true;
            c.patients.extend(patient(e));
            return Some(c);
        }
        if n < p.min_patients {
            return None;
        }
        st.fired = Some(night_of);
        c.patients = st.patients.sorted();
        Some(c)
    }

    fn approx_bytes(user: &Night) -> usize {
        96 + user.patients.approx_bytes()
    }
}
