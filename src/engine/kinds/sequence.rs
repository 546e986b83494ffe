//! `kind: sequence`: a first step followed by a second: an export, then a file written
//! to removable, cloud or network media by the same user (or on the same workstation).
//! Either step alone is routine; together they are how records leave the hospital.

use super::common::patient;
use super::{Cx, DetectorKind};
use crate::detect::rule::Matcher;
use crate::engine::findings::Context;
use anyhow::{anyhow, bail, Context as _, Result};
use serde::{Deserialize, Serialize};

/// `params` of a sequence detector.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SequenceParams {
    /// Name of the selection in `detection` that is the first step.
    #[serde(default = "first_default")]
    pub first: String,
    /// Name of the selection that is the second step.
    #[serde(default = "then_default")]
    pub then: String,
    /// Seconds the second step may follow the first.
    pub window_secs: u64,
    /// Link steps by the same `user`, or also by the same `host` (a shared workstation
    /// where the copy runs under another account).
    #[serde(default = "same_default")]
    pub same: String,
    /// Records (in the export, or estimated in the file) from which the alert is critical.
    #[serde(default = "critical_default")]
    pub critical_records: u64,
}

fn first_default() -> String {
    "first".into()
}
fn then_default() -> String {
    "then".into()
}
fn same_default() -> String {
    "user_or_host".into()
}
fn critical_default() -> u64 {
    100
}

/// The steps are selections of the detector's `detection`, resolved to indexes at load
/// so that a misspelt name fails `check` rather than never matching.
#[derive(Debug, Clone)]
pub struct Sequence {
    pub params: SequenceParams,
    pub first: usize,
    pub then: usize,
}

/// A first step of a sequence, remembered until its window passes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Step {
    pub ms: i64,
    pub records: u64,
    pub user: String,
    pub action: String,
    pub patients: Vec<(String, String)>,
}

/// The user's latest first step. Steps by workstation are not per user; they are kept
/// in the engine state's `hosts`.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct LastStep {
    step: Option<Step>,
}

impl DetectorKind for Sequence {
    const NAME: &'static str = "sequence";
    type User = LastStep;

    fn compile(params: serde_norway::Value, matcher: &Matcher) -> Result<Sequence> {
        let params: SequenceParams =
            serde_norway::from_value(params).context("in `params` of a sequence detector")?;
        let first = matcher.selection_index(&params.first).ok_or_else(|| {
            anyhow!(
                "params.first names selection {:?}, which `detection` does not define",
                params.first
            )
        })?;
        let then = matcher.selection_index(&params.then).ok_or_else(|| {
            anyhow!(
                "params.then names selection {:?}, which `detection` does not define",
                params.then
            )
        })?;
        if !matches!(params.same.as_str(), "user" | "user_or_host") {
            bail!("params.same must be `user` or `user_or_host`");
        }
        Ok(Sequence {
            params,
            first,
            then,
        })
    }

    fn evaluate(&self, cx: Cx<'_>) -> Option<Context> {
        let p = &self.params;
        let (e, id, hosts) = (cx.e, cx.id, cx.hosts);
        let is_first = cx.matcher.selection_matches(self.first, e);
        let is_then = cx.matcher.selection_matches(self.then, e);
        let ms = e.event.ts.timestamp_millis();
        let window = p.window_secs as i64 * 1000;
        let st = cx.user.state::<Sequence>(id);
        if is_first {
            let step = Step {
                ms,
                records: e.event.records,
                user: e.user_display().to_string(),
                action: e.event.action.as_str().to_string(),
                patients: patient(e).into_iter().collect(),
            };
            if p.same == "user_or_host" {
                if let Some(h) = &e.event.host {
                    hosts.retain(|k, s| !k.starts_with(id) || ms - s.ms <= window);
                    hosts.insert(format!("{id}\u{1f}{}", crate::event::key(h)), step.clone());
                }
            }
            st.step = Some(step);
            return None;
        }
        if !is_then {
            return None;
        }
        let by_user = st
            .step
            .clone()
            .filter(|s| ms >= s.ms && ms - s.ms <= window);
        let by_host = || {
            let h = format!("{id}\u{1f}{}", crate::event::key(e.event.host.as_deref()?));
            hosts
                .get(&h)
                .cloned()
                .filter(|s| ms >= s.ms && ms - s.ms <= window)
        };
        let first = by_user.or_else(|| {
            if p.same == "user_or_host" {
                by_host()
            } else {
                None
            }
        })?;
        let mut c = Context::default();
        c.describe(e);
        c.first_seen = Some(first.ms);
        c.events = Some(2);
        c.patients = first.patients.clone();
        let phi = e.event.phi.as_ref();
        let records = first.records.max(phi.map_or(0, |m| m.records));
        c.values.insert("records", records.to_string());
        c.values
            .insert("minutes", ((ms - first.ms) / 60_000).to_string());
        c.values.insert(
            "action",
            if first.action == "print" {
                "printed"
            } else {
                "exported"
            }
            .to_string(),
        );
        if let Some(m) = e.event.media {
            c.values.insert("media", m.as_str().to_string());
        }
        if let Some(b) = e.event.bytes {
            c.values.insert("bytes", human_bytes(b));
        }
        if let Some(m) = phi.filter(|m| m.keywords + m.patterns > 0) {
            c.values.insert(
                "phi",
                format!(
                    "{} PHI keyword and {} pattern hits, about {} patient rows",
                    m.keywords, m.patterns, m.records
                ),
            );
        }
        if first.user != e.user_display() {
            c.values.insert("exporter", first.user.clone());
        }
        c.critical = records >= p.critical_records;
        Some(c)
    }
}

fn human_bytes(b: u64) -> String {
    if b >= 1 << 20 {
        format!("{:.1} MB", b as f64 / (1 << 20) as f64)
    } else if b >= 1 << 10 {
        format!("{:.1} KB", b as f64 / 1024.0)
    } else {
        format!("{b} bytes")
    }
}
