//! `replay`: every `file` source read once, start to end, merged across all files in the
//! engine's total order (event time, source, file, offset), through the same engine as
//! `run`. Nothing is followed and no checkpoint is written.

use super::lines::FileLines;
use crate::alert::Alert;
use crate::config::{Config, SourceType};
use crate::deadletter::{DeadLetter, RejectCounts};
use crate::detect;
use crate::engine::{self, Engine, Settings};
use crate::event::{Event, Provenance};
use crate::parse::{self, Parser, Reject};
use crate::reference::Reference;
use anyhow::{anyhow, bail, Context, Result};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// What a replay did, for the summary on standard error.
#[derive(Debug, Default)]
pub struct Summary {
    pub files: usize,
    pub lines: u64,
    pub events: u64,
    pub rejected: RejectCounts,
    pub alerts: BTreeMap<String, u64>,
    pub seconds: f64,
    pub dead_letter: Option<PathBuf>,
    pub state_bytes: usize,
    pub users: usize,
    /// Peer groups learned as workflow-driven or consulting.
    pub workflow_groups: Vec<String>,
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

/// One input file being read: its parser and the next event it holds.
struct FileReader {
    source: Arc<str>,
    path: Arc<str>,
    lines: FileLines,
    parser: Box<dyn Parser>,
    flushed: bool,
    pending: std::collections::VecDeque<Event>,
}

impl FileReader {
    /// The next event of this file, sending rejects to the dead letter.
    fn next_event(&mut self, dl: &mut DeadLetter, summary: &mut Summary) -> Result<Option<Event>> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Ok(Some(e));
            }
            if self.flushed {
                return Ok(None);
            }
            let Some(line) = self.lines.next() else {
                for r in self.parser.flush() {
                    match r {
                        Ok(e) => self.pending.push_back(self.stamp(e, u64::MAX)),
                        Err(rej) => dl.reject(&self.source, &self.path, 0, "", &rej)?,
                    }
                }
                self.flushed = true;
                continue;
            };
            let line = line.with_context(|| format!("reading {}", self.path))?;
            summary.lines += 1;
            if line.oversized {
                let rej = Reject::new("line_too_long", "line longer than 1 MiB");
                dl.reject(
                    &self.source,
                    &self.path,
                    line.offset,
                    &line.text[..1024.min(line.text.len())],
                    &rej,
                )?;
                continue;
            }
            match self.parser.parse(&line.text) {
                Ok(Some(e)) => return Ok(Some(self.stamp(e, line.offset))),
                Ok(None) => {}
                Err(rej) => dl.reject(&self.source, &self.path, line.offset, &line.text, &rej)?,
            }
        }
    }

    fn stamp(&self, mut e: Event, offset: u64) -> Event {
        e.source = self.source.to_string();
        e.origin = Some(Provenance {
            agent: String::new(),
            file: self.path.to_string(),
            offset,
        });
        e
    }
}

struct Head {
    event: Event,
    reader: usize,
}

impl PartialEq for Head {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Head {}
impl PartialOrd for Head {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Head {
    fn cmp(&self, o: &Self) -> Ordering {
        engine::order(&o.event, &self.event).then(o.reader.cmp(&self.reader))
    }
}

/// Builds the engine a config describes: reference data, detectors, settings.
pub fn build_engine(cfg: &Config) -> Result<Engine> {
    let reference = Reference::load(&cfg.reference)?;
    let detectors = detect::load(cfg.engine.detectors.as_deref())
        .map_err(|errs| anyhow!("detectors are not valid:\n  {}", errs.join("\n  ")))?;
    Ok(Engine::new(
        detectors,
        Arc::new(reference),
        Settings::from_config(cfg)?,
    ))
}

/// Expands a source's globs into a sorted, de-duplicated list of files.
pub fn expand(globs: &[String]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for g in globs {
        let paths = glob::glob(g).map_err(|e| anyhow!("bad glob {g:?}: {e}"))?;
        for p in paths.flatten() {
            if p.is_file() {
                files.push(p);
            }
        }
    }
    files.sort();
    files.dedup();
    Ok(files)
}

/// Replays every file source of `cfg`, calling `emit` for each alert in order.
pub fn replay(cfg: &Config, mut emit: impl FnMut(&Alert) -> Result<()>) -> Result<Summary> {
    let started = Instant::now();
    let mut engine = build_engine(cfg)?;
    engine.set_merged_input();
    let tz = cfg.timezone()?;
    let mut summary = Summary::default();
    let mut dl = DeadLetter::new(&cfg.dead_letter_path());
    summary.dead_letter = Some(dl.path().to_path_buf());
    let mut readers = Vec::new();
    for s in &cfg.sources {
        if s.kind != SourceType::File {
            continue;
        }
        for path in expand(&s.paths)? {
            let parser = parse::build(s, tz).with_context(|| format!("source {:?}", s.name))?;
            let lines = FileLines::open(&path)
                .with_context(|| format!("cannot open {} (source {:?})", path.display(), s.name))?;
            readers.push(FileReader {
                source: Arc::from(s.name.as_str()),
                path: Arc::from(path.to_string_lossy().as_ref()),
                lines,
                parser,
                flushed: false,
                pending: Default::default(),
            });
        }
    }
    if cfg.sources.iter().all(|s| s.kind != SourceType::File) {
        bail!("the config has no `type = \"file\"` source to replay");
    }
    summary.files = readers.len();
    let mut heap = BinaryHeap::new();
    for (i, r) in readers.iter_mut().enumerate() {
        if let Some(event) = r.next_event(&mut dl, &mut summary)? {
            heap.push(Head { event, reader: i });
        }
    }
    let mut alerts = Vec::new();
    while let Some(Head { event, reader }) = heap.pop() {
        if let Some(next) = readers[reader].next_event(&mut dl, &mut summary)? {
            heap.push(Head {
                event: next,
                reader,
            });
        }
        summary.events += 1;
        engine.push(event, &mut alerts);
        for a in alerts.drain(..) {
            emit(&a)?;
        }
    }
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
