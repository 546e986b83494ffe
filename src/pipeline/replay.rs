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
use std::sync::mpsc::{sync_channel, Receiver};
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

/// What a file's parsing thread hands over.
enum Parsed {
    Event(Event),
    Rejected {
        offset: u64,
        line: String,
        reject: Reject,
    },
}

/// A batch of parsed lines and how many lines it covers, or a read error.
type BatchResult = Result<(Vec<Parsed>, u64), String>;

/// Lines parsed per batch; two batches per file may wait, which bounds memory.
const BATCH: usize = 512;

/// One input file: a thread reads and parses it (parsing is most of replay's work, so
/// files parse in parallel), and the merge takes its events in order from a small
/// bounded queue.
struct FileReader {
    source: Arc<str>,
    path: Arc<str>,
    rx: Receiver<BatchResult>,
    pending: std::collections::VecDeque<Parsed>,
}

fn spawn_parser(
    source: Arc<str>,
    path: Arc<str>,
    mut lines: FileLines,
    mut parser: Box<dyn Parser>,
) -> Result<Receiver<BatchResult>> {
    let (tx, rx) = sync_channel(2);
    let stamp = move |mut e: Event, offset: u64, source: &str, path: &str| {
        e.source = source.to_string();
        e.origin = Some(Provenance {
            agent: String::new(),
            file: path.to_string(),
            offset,
            ..Provenance::default()
        });
        e
    };
    std::thread::Builder::new()
        .name("replay-parse".into())
        .stack_size(512 * 1024)
        .spawn(move || {
            let mut batch = Vec::with_capacity(BATCH);
            let mut count = 0u64;
            loop {
                let Some(line) = lines.next() else {
                    for r in parser.flush() {
                        batch.push(match r {
                            Ok(e) => Parsed::Event(stamp(e, u64::MAX, &source, &path)),
                            Err(reject) => Parsed::Rejected {
                                offset: 0,
                                line: String::new(),
                                reject,
                            },
                        });
                    }
                    let _ = tx.send(Ok((batch, count)));
                    return;
                };
                let line = match line {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = tx.send(Err(format!("reading {path}: {e}")));
                        return;
                    }
                };
                count += 1;
                if line.oversized {
                    batch.push(Parsed::Rejected {
                        offset: line.offset,
                        line: truncate(&line.text, 1024).to_string(),
                        reject: Reject::new("line_too_long", "line longer than 1 MiB"),
                    });
                } else {
                    match parser.parse(&line.text) {
                        Ok(Some(e)) => {
                            batch.push(Parsed::Event(stamp(e, line.offset, &source, &path)))
                        }
                        Ok(None) => {}
                        Err(reject) => batch.push(Parsed::Rejected {
                            offset: line.offset,
                            line: line.text,
                            reject,
                        }),
                    }
                }
                if batch.len() >= BATCH {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                    if tx.send(Ok((full, count))).is_err() {
                        return;
                    }
                    count = 0;
                }
            }
        })?;
    Ok(rx)
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl FileReader {
    /// The next event of this file, sending rejects to the dead letter.
    fn next_event(&mut self, dl: &mut DeadLetter, summary: &mut Summary) -> Result<Option<Event>> {
        loop {
            match self.pending.pop_front() {
                Some(Parsed::Event(e)) => return Ok(Some(e)),
                Some(Parsed::Rejected {
                    offset,
                    line,
                    reject,
                }) => dl.reject(&self.source, &self.path, offset, &line, &reject)?,
                None => match self.rx.recv() {
                    Ok(Ok((items, lines))) => {
                        summary.lines += lines;
                        self.pending.extend(items);
                    }
                    Ok(Err(e)) => bail!("{e}"),
                    Err(_) => return Ok(None),
                },
            }
        }
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
            let source: Arc<str> = Arc::from(s.name.as_str());
            let path: Arc<str> = Arc::from(path.to_string_lossy().as_ref());
            let rx = spawn_parser(source.clone(), path.clone(), lines, parser)?;
            readers.push(FileReader {
                source,
                path,
                rx,
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
