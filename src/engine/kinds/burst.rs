//! `kind: burst`: many matching events (searches) in a sliding window. Judged against
//! the user's own busiest past windows and the peer group's (role and department), so a
//! registrar who searches all day is not flagged for doing so today, even in their first
//! week. The same kind at several window lengths (ten minutes, an hour, a shift) catches a
//! burst, a steady trawl and one spread over a shift; the threshold scales with the usual,
//! never below `min_count`. The shipped horizons name one `episode`, so a burst over all
//! three is one alert (see `engine::findings`): each still fires once a day here.

use super::common::{human, patient, peer_values, Daily};
use super::{Cx, DetectorKind};
use crate::detect::rule::Matcher;
use crate::engine::findings::Context;
use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// `params` of a burst detector.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BurstParams {
    pub window_secs: u64,
    pub min_count: u64,
    /// Alert only above this multiple of the user's busiest past window (90th percentile of daily maxima).
    #[serde(default = "two")]
    pub user_factor: f64,
    /// ... and above this multiple of the peer group's busiest windows (same statistic
    /// over the peers' days); default: `user_factor`.
    #[serde(default)]
    pub peer_factor: Option<f64>,
}

fn two() -> f64 {
    2.0
}

#[derive(Debug, Clone)]
pub struct Burst {
    pub params: BurstParams,
}

/// The day's busiest window so far is the day's value in [`Daily`]; past days' maxima
/// are what "usual" means for this user.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Windows {
    #[serde(flatten)]
    days: Daily,
    /// Times (ms) of events in the sliding window.
    window: VecDeque<i64>,
}

impl DetectorKind for Burst {
    const NAME: &'static str = "burst";
    type User = Windows;

    fn compile(params: serde_norway::Value, _matcher: &Matcher) -> Result<Burst> {
        let params = serde_norway::from_value(params).context("in `params` of a burst detector")?;
        Ok(Burst { params })
    }

    fn evaluate(&self, cx: Cx<'_>) -> Option<Context> {
        let p = &self.params;
        let e = cx.e;
        let Windows { days: st, window } = cx.user.state::<Burst>(cx.id);
        let today = e.local_day;
        // The peer group's values only when needed, as in `baseline`: when the day rolls
        // over, and when the user's own usual does not settle the event (below).
        if st.day != Some(today) {
            let peer = cx.peer_group.map(|g| peer_values(cx.peers, cx.id, g));
            st.roll(today, peer, 1);
        }
        let ts = e.event.ts.timestamp_millis();
        window.push_back(ts);
        let from = ts - p.window_secs as i64 * 1000;
        while window.front().is_some_and(|&t| t < from) {
            window.pop_front();
        }
        // Bounded: a window never holds more than what alerts anyway, times the factor.
        while window.len() as u64 > (p.min_count * 20).max(1000) {
            window.pop_front();
        }
        let count = window.len() as u64;
        // The day's value is its busiest window.
        st.value = st.value.max(count);
        st.events += 1;
        if !cx.learned {
            return None;
        }
        if st.fired == Some(today) {
            // The finding reports the day's busiest window, not the latest one.
            let mut c = Context::default();
            c.describe(e);
            c.values.insert("value", human(st.value));
            c.values.insert("window", window_words(p.window_secs));
            c.events = Some(st.value);
            c.extend_only = true;
            c.patients.extend(patient(e));
            return Some(c);
        }
        let usual = st.usual(5, today, 1);
        let mut threshold = p.min_count as f64;
        if let Some(u) = usual {
            threshold = threshold.max(u as f64 * p.user_factor);
        }
        // The peers' usual can only raise the threshold.
        if (count as f64) < threshold {
            return None;
        }
        let peer_usual = cx
            .peer_group
            .and_then(|g| peer_values(cx.peers, cx.id, g).usual_before(today, 0.9, 20));
        if let Some(u) = peer_usual {
            threshold = threshold.max(u as f64 * p.peer_factor.unwrap_or(p.user_factor));
        }
        if (count as f64) < threshold {
            return None;
        }
        // The context is written only for an event that fires: most events are judged
        // and dropped, and describing each was a fifth of this kind's time.
        st.fired = Some(today);
        let mut c = Context::default();
        c.describe(e);
        c.values.insert("value", human(count));
        c.values.insert("window", window_words(p.window_secs));
        c.events = Some(count);
        if let Some(u) = usual {
            c.values.insert("usual", human(u));
        }
        if let Some(u) = peer_usual {
            c.values.insert("peer_usual", human(u));
        }
        c.values
            .insert("threshold", format!("{}", threshold.ceil() as u64));
        c.first_seen = window.front().copied();
        c.patients.extend(patient(e));
        Some(c)
    }

    fn approx_bytes(user: &Windows) -> usize {
        user.days.approx_bytes() + user.window.len() * 8
    }
}

/// A window's length as an alert says it: minutes up to an hour, whole hours beyond.
fn window_words(secs: u64) -> String {
    if secs >= 7200 && secs % 3600 == 0 {
        format!("{} hours", secs / 3600)
    } else {
        format!("{} minutes", secs.div_ceil(60))
    }
}
