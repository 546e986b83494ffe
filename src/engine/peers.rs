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

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Habits {
    pub accesses: u64,
    /// Without care by the user's department or the user.
    pub without_care: u64,
    /// Without own care, while another department had the patient under care.
    pub elsewhere: u64,
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

    /// Sets the enriched event's workflow and consult facts from the habits learned so
    /// far, then learns from the event.
    pub fn judge_and_learn(&mut self, e: &mut Enriched) {
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
        self.accesses += 1;
        if !own {
            self.without_care += 1;
            if care.any_department {
                self.elsewhere += 1;
            }
        }
    }
}
