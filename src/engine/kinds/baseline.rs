//! `kind: baseline`: distinct patients, events or records per day (or rolling period)
//! against the user's own usual and the peer group's. Judging against both keeps a
//! naturally busy user quiet and still catches one who is busy only this month.

use super::common::{human, patient, peer_values, Daily};
use super::{Cx, DetectorKind};
use crate::detect::rule::Matcher;
use crate::engine::findings::Context;
use anyhow::{bail, Context as _, Result};
use chrono::Duration;
use serde::Deserialize;

/// `params` of a baseline detector.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineParams {
    /// `distinct_patients`, `events` or `records`.
    #[serde(default = "metric_default")]
    pub metric: String,
    /// Days summed into one value (1 = per day; 7 = rolling week).
    #[serde(default = "one")]
    pub period_days: u32,
    /// Never alert below this value.
    pub min: u64,
    /// Alert above this multiple of the user's own usual (90th percentile of past days).
    #[serde(default = "three")]
    pub user_factor: f64,
    /// ... and above this multiple of the peer group's usual (role + department).
    #[serde(default = "three")]
    pub peer_factor: f64,
    /// Days of the user's own history needed before their own usual counts.
    #[serde(default = "five")]
    pub min_history_days: u32,
}

fn metric_default() -> String {
    "distinct_patients".into()
}
fn one() -> u32 {
    1
}
fn three() -> f64 {
    3.0
}
fn five() -> u32 {
    5
}

/// What is counted; parsed once at load so evaluation does not compare strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    DistinctPatients,
    Events,
    Records,
}

#[derive(Debug, Clone)]
pub struct Baseline {
    pub params: BaselineParams,
    pub metric: Metric,
}

impl DetectorKind for Baseline {
    const NAME: &'static str = "baseline";
    type User = Daily;

    fn compile(params: serde_norway::Value, _matcher: &Matcher) -> Result<Baseline> {
        let params: BaselineParams =
            serde_norway::from_value(params).context("in `params` of a baseline detector")?;
        let metric = match params.metric.as_str() {
            "distinct_patients" => Metric::DistinctPatients,
            "events" => Metric::Events,
            "records" => Metric::Records,
            other => {
                bail!("params.metric {other:?}: use distinct_patients, events or records")
            }
        };
        if params.period_days == 0 || params.period_days > 28 {
            bail!("params.period_days must be 1 to 28");
        }
        Ok(Baseline { params, metric })
    }

    fn evaluate(&self, cx: Cx<'_>) -> Option<Context> {
        let p = &self.params;
        let e = cx.e;
        let st = cx.user.state::<Baseline>(cx.id);
        let today = e.local_day;
        // The peer group's values are looked up only when the day rolls over (the user's
        // first event of the day, or ever: the group's entry is made then, as before) and
        // when the user's own usual does not settle the event (below): building the key
        // and finding it for every event was a fifth of this kind's time.
        if st.day != Some(today) {
            let peer = cx.peer_group.map(|g| peer_values(cx.peers, cx.id, g));
            st.roll(today, peer, p.period_days.max(1));
        }
        let ts = e.event.ts.timestamp_millis();
        if st.events == 0 {
            st.first_ms = ts;
        }
        st.events += 1;
        match self.metric {
            Metric::DistinctPatients => {
                st.patients.add_of(e);
                st.value = st.patients.len() as u64;
            }
            Metric::Events => st.value += 1,
            Metric::Records => {
                st.value += e.event.records;
                st.patients.add_of(e);
            }
        }
        if !cx.learned {
            return None;
        }
        let period = p.period_days.max(1) as u64;
        let judged_from = *st.judged_from.get_or_insert(today);
        let from = (today - Duration::days(period as i64 - 1)).max(judged_from);
        let value = st.value + st.sum_since(from);
        if let Some(f) = st.fired {
            if f > today - Duration::days(period as i64) {
                // Already alerted in this period: extend the open finding only.
                let mut c = Context::default();
                c.describe(e);
                c.extend_only = true;
                c.events = Some(st.events);
                c.patients.extend(patient(e));
                c.values.insert("value", human(value));
                return Some(c);
            }
        }
        let user_usual = st.usual(p.min_history_days, today, period as u32);
        let mut threshold = p.min as f64;
        if let Some(u) = user_usual {
            threshold = threshold.max(u as f64 * p.user_factor);
        }
        // The threshold is the greatest of the three: the peers' usual can only raise it,
        // so a value at or below it already is judged without them.
        if (value as f64) <= threshold {
            return None;
        }
        let peer_usual = cx
            .peer_group
            .and_then(|g| peer_values(cx.peers, cx.id, g).usual_before(today, 0.9, 20));
        if let Some(u) = peer_usual {
            threshold = threshold.max(u as f64 * p.peer_factor);
        }
        if (value as f64) <= threshold {
            return None;
        }
        st.fired = Some(today);
        let mut c = Context::default();
        c.describe(e);
        c.events = Some(st.events);
        c.first_seen = Some(st.first_ms);
        c.patients = st.patients.sorted();
        c.values.insert("value", human(value));
        c.values
            .insert("threshold", format!("{}", threshold.ceil() as u64));
        c.values.insert(
            "period",
            if period == 1 {
                "today".into()
            } else {
                format!("over the last {period} days")
            },
        );
        if let Some(u) = user_usual {
            c.values.insert("usual", human(u));
        }
        if let Some(u) = peer_usual {
            c.values.insert("peer_usual", human(u));
        }
        Some(c)
    }

    fn approx_bytes(user: &Daily) -> usize {
        user.approx_bytes()
    }
}
