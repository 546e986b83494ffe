//! Replay: every `file` source read once, start to end, merged across all files in the
//! engine's total order (see [`crate::ingest::history`]), through the same engine as the
//! daemons. Nothing is followed and no checkpoint is written. `replay` and `demo` use it.

use crate::alert::Alert;
use crate::config::Config;
use crate::deadletter::{DeadLetter, RejectCounts};
use crate::engine::Engine;
use crate::ingest::history::History;
use anyhow::Result;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

/// What a replay did, for the summary on standard error.
#[derive(Debug, Default)]
pub struct Summary {
    pub files: usize,
    pub lines: u64,
    pub events: u64,
    pub rejected: RejectCounts,
    /// Well-formed records that are not a person's access to patient data, by (source,
    /// kind): counted, not dead-lettered.
    pub ignored: BTreeMap<(String, String), u64>,
    pub alerts: BTreeMap<String, u64>,
    pub seconds: f64,
    pub dead_letter: Option<PathBuf>,
    pub state_bytes: usize,
    pub users: usize,
    /// Peer groups learned as workflow-driven or consulting.
    pub workflow_groups: Vec<String>,
    /// Reference rows set aside at load (file, line, reason).
    pub reference_rejected: Vec<String>,
    pub consulting_groups: Vec<String>,
}

impl Summary {
    /// The summary as printed to standard error.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let rate = if self.seconds > 0.0 {
            self.events as f64 / self.seconds
        } else {
            0.0
        };
        s.push_str(&format!(
            "replay: {} files, {} lines, {} events in {:.2} s ({:.0} events/s)\n",
            self.files, self.lines, self.events, self.seconds, rate
        ));
        let total_rej: u64 = self.rejected.values().sum();
        s.push_str(&format!("rejected: {total_rej}"));
        if let Some(p) = &self.dead_letter {
            if total_rej > 0 {
                s.push_str(&format!(" (lines in {})", p.display()));
            }
        }
        s.push('\n');
        for ((src, reason), n) in &self.rejected {
            s.push_str(&format!("  {src}: {reason}: {n}\n"));
        }
        if !self.reference_rejected.is_empty() {
            s.push_str(&format!(
                "reference rows set aside: {}\n",
                self.reference_rejected.len()
            ));
            for why in &self.reference_rejected {
                s.push_str(&format!("  {why}\n"));
            }
        }
        let ignored: u64 = self.ignored.values().sum();
        if ignored > 0 {
            s.push_str(&format!(
                "ignored (well formed, not a person's access to patient data): {ignored}\n"
            ));
            for ((src, kind), n) in &self.ignored {
                s.push_str(&format!("  {src}: {kind}: {n}\n"));
            }
        }
        let total: u64 = self.alerts.values().sum();
        s.push_str(&format!("alerts: {total}\n"));
        for (d, n) in &self.alerts {
            s.push_str(&format!("  {d}: {n}\n"));
        }
        s.push_str(&format!(
            "state: {} users, about {} bytes\n",
            self.users, self.state_bytes
        ));
        if !self.workflow_groups.is_empty() {
            s.push_str(&format!(
                "peer groups that work outside care (workflow): {}\n",
                self.workflow_groups.join(", ")
            ));
        }
        if !self.consulting_groups.is_empty() {
            s.push_str(&format!(
                "peer groups that consult on other departments' patients: {}\n",
                self.consulting_groups.join(", ")
            ));
        }
        s
    }
}

/// Replays every file source of `cfg`, calling `emit` for each alert in order.
pub fn replay(cfg: &Config, mut emit: impl FnMut(&Alert) -> Result<()>) -> Result<Summary> {
    let started = Instant::now();
    let mut engine = Engine::from_config(cfg)?;
    engine.set_merged_input();
    let mut summary = Summary::default();
    let mut dl = DeadLetter::new(&cfg.dead_letter_path());
    summary.dead_letter = Some(dl.path().to_path_buf());
    for (_, rows) in engine.reference().rejected() {
        summary.reference_rejected.extend(rows.iter().cloned());
    }
    let mut history = History::open(cfg, &mut dl)?;
    summary.files = history.files();
    let mut alerts = Vec::new();
    while let Some(event) = history.next_event(&mut dl)? {
        summary.events += 1;
        engine.push_boxed(event, &mut alerts);
        for a in alerts.drain(..) {
            emit(&a)?;
        }
    }
    summary.lines = history.counts.lines;
    summary.ignored = std::mem::take(&mut history.counts.ignored);
    engine.flush(&mut alerts);
    for a in alerts.drain(..) {
        emit(&a)?;
    }
    dl.flush()?;
    summary.rejected = dl.counts.clone();
    summary.alerts = engine
        .counters
        .alerts
        .iter()
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    let (bytes, users) = engine.state_size();
    summary.state_bytes = bytes;
    summary.users = users;
    for (g, workflow, consulting, _, _) in engine.habits() {
        if workflow {
            summary.workflow_groups.push(g.clone());
        }
        if consulting {
            summary.consulting_groups.push(g);
        }
    }
    if std::env::var_os("PHIWATCH_DEBUG_HABITS").is_some() {
        for (g, w, c, out, elsewhere) in engine.habits() {
            eprintln!("habits {g}: workflow={w} consult={c} outside_care={out:.3} elsewhere={elsewhere:.3}");
        }
    }
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}
