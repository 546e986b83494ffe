//! What a peer group's work looks like: how often its members open charts outside any
//! care relationship of their own. Billing and release-of-information staff do so all
//! day for patients treated recently; radiology, laboratory and pharmacy open charts of
//! patients admitted elsewhere for consults nobody wrote into the care table. Learning
//! this from the data, rather than from a list of role names, lets the relationship
//! detectors tell a workflow access from a snoop in any hospital's naming.

use crate::enrich::Enriched;
use serde::{Deserialize, Serialize};

/// Accesses a group needs before its habits count.
const MIN_ACCESSES: u64 = 50;
/// Share of accesses without own care that makes a group workflow-driven.
const WORKFLOW_SHARE: f64 = 0.5;
/// Share of accesses to patients under another department's care that makes a group a
/// consulting service.
const CONSULT_SHARE: f64 = 0.02;
/// How recent the patient's care must be for a workflow access (seconds): claims,
/// denials and release requests run for weeks to months after discharge.
const WORKFLOW_RECENCY: i64 = 60 * 86_400;

/// Whole days after a stay's end tracked one by one; later accesses share the last count.
const AFTER_STAY_DAYS: usize = (WORKFLOW_RECENCY / 86_400) as usize;
/// Accesses after stays a group needs before its horizon counts.
const MIN_AFTER_STAY: u32 = 50;
/// The share of a group's accesses after stays its horizon covers, and the slack on top,
/// so the habit's own tail is not what alerts.
const HORIZON_SHARE: f64 = 0.95;
const HORIZON_SLACK: f64 = 1.25;

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Habits {
    pub accesses: u64,
    /// Without care by the user's department or the user.
    pub without_care: u64,
    /// Without own care, while another department had the patient under care.
    pub elsewhere: u64,
    /// Accesses without own care to patients out of care, by whole days since their last
    /// stay ended (the last count: `AFTER_STAY_DAYS` or more). Empty until the first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after_stay: Vec<u32>,
}

impl Habits {
    pub fn workflow_driven(&self) -> bool {
        self.accesses >= MIN_ACCESSES
            && self.without_care as f64 >= WORKFLOW_SHARE * self.accesses as f64
    }

    pub fn consulting(&self) -> bool {
        self.accesses >= MIN_ACCESSES
            && self.elsewhere as f64 >= CONSULT_SHARE * self.accesses as f64
    }

    /// How many days after a stay the group's work on a chart usually comes: the day by
    /// which 95% of its accesses after stays came, plus a quarter. Billing may chase a
    /// claim for a month, and coders may finish in three weeks; a records clerk opening a
    /// VIP's chart five weeks after the stay is not doing the group's usual work, while a
    /// group whose habit reaches past `WORKFLOW_RECENCY` keeps that limit. None until
    /// `MIN_AFTER_STAY` such accesses are seen.
    pub fn after_stay_horizon(&self) -> Option<u32> {
        let total: u32 = self.after_stay.iter().sum();
        if total < MIN_AFTER_STAY {
            return None;
        }
        let want = (HORIZON_SHARE * total as f64).ceil() as u32;
        let mut seen = 0;
        let day = self
            .after_stay
            .iter()
            .position(|&n| {
                seen += n;
                seen >= want
            })
            .unwrap_or(AFTER_STAY_DAYS);
        let days = ((day + 1) as f64 * HORIZON_SLACK).ceil() as u32;
        Some(days.min(AFTER_STAY_DAYS as u32))
    }

    /// Sets the enriched event's workflow and consult facts from the habits learned so
    /// far, then learns from the event.
    pub fn judge_and_learn(&mut self, e: &mut Enriched) {
        self.judge(e);
        self.learn(e);
    }

    /// Sets the enriched event's workflow and consult facts from the habits learned so
    /// far, learning nothing.
    pub fn judge(&self, e: &mut Enriched) {
        if !e.is_chart_access() {
            return;
        }
        let care = e.care.unwrap_or_default();
        let own = care.by_department || care.by_user;
        let recent =
            care.any_department || care.since_last_end.is_some_and(|s| s <= WORKFLOW_RECENCY);
        e.peer_workflow = self.workflow_driven();
        e.peer_consulting = self.consulting();
        e.workflow = !own && recent && e.peer_workflow;
        e.consult = !own && care.any_department && e.peer_consulting;
        if e.workflow && !care.any_department && care.since_stay_end.is_some() {
            e.peer_after_stay_days = self.after_stay_horizon();
        }
    }

    /// Counts the event into the group's habits.
    fn learn(&mut self, e: &Enriched) {
        if !e.is_chart_access() {
            return;
        }
        let care = e.care.unwrap_or_default();
        let own = care.by_department || care.by_user;
        self.accesses += 1;
        if !own {
            self.without_care += 1;
            if care.any_department {
                self.elsewhere += 1;
            } else if let Some(s) = care.since_stay_end {
                if self.after_stay.is_empty() {
                    self.after_stay = vec![0; AFTER_STAY_DAYS + 1];
                }
                let day = ((s.max(0) / 86_400) as usize).min(AFTER_STAY_DAYS);
                self.after_stay[day] += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(days: &[(usize, u32)]) -> Habits {
        let mut h = Habits {
            after_stay: vec![0; AFTER_STAY_DAYS + 1],
            ..Habits::default()
        };
        for &(d, n) in days {
            h.after_stay[d] = n;
        }
        h
    }

    #[test]
    fn horizon_is_the_95th_percentile_day_plus_a_quarter() {
        // 100 accesses spread evenly over days 0-19: 95% by day 18 (19 days), plus a quarter.
        let days: Vec<(usize, u32)> = (0..20).map(|d| (d, 5)).collect();
        assert_eq!(with(&days).after_stay_horizon(), Some(24));
    }

    #[test]
    fn no_horizon_before_enough_accesses_and_never_past_the_recency_limit() {
        assert_eq!(with(&[(3, 49)]).after_stay_horizon(), None);
        assert_eq!(with(&[(3, 50)]).after_stay_horizon(), Some(5));
        // A habit reaching past 60 days keeps the 60-day limit.
        assert_eq!(
            with(&[(10, 50), (AFTER_STAY_DAYS, 50)]).after_stay_horizon(),
            Some(AFTER_STAY_DAYS as u32)
        );
    }
}
