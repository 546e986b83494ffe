//! A file source's thread: follows its files with a [`Tailer`], parses each line with a
//! parser per file, and hands batches of events, rejected lines and the positions they
//! reach to whoever consumes them (the engine in `run`, the Kafka producer in `agent`).
//! Positions travel with the batch, so the consumer checkpoints exactly what it has
//! made durable.

use crate::config::SourceConfig;
use crate::deadletter::DeadLetter;
use crate::event::{Event, Provenance};
use crate::metrics;
use crate::parse::{self, Parser, Reject};
use crate::signals::Flags;
use crate::source::{LineKind, Position, TailOptions, Tailer};
use chrono_tz::Tz;
use std::collections::HashMap;
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a source thread hands to the engine.
pub enum Msg {
    Batch {
        source: String,
        items: Vec<Item>,
        /// Where each file stands after this batch.
        positions: Vec<Position>,
        /// Lines and bytes read for this batch (headers and skipped lines included).
        lines: u64,
        bytes: u64,
    },
    Idle(String),
    Failed(String, String),
}

pub enum Item {
    Event(Event),
    Rejected {
        file: Arc<str>,
        offset: u64,
        line: String,
        reject: Reject,
    },
}

/// Takes one batch's items the way `run` and `agent` both do: each event goes to `take`,
/// each rejected line to the dead-letter file, and lines, bytes, events, rejections and
/// ingest lag to the metrics.
pub(crate) fn take_batch(
    source: &str,
    items: Vec<Item>,
    lines: u64,
    bytes: u64,
    dl: &mut DeadLetter,
    mut take: impl FnMut(Event) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let m = metrics::get();
    m.lines_read.with_label_values(&[source]).inc_by(lines);
    m.bytes_read.with_label_values(&[source]).inc_by(bytes);
    let mut events = 0u64;
    let mut latest = None;
    for item in items {
        match item {
            Item::Event(e) => {
                events += 1;
                latest = latest.max(Some(e.ts));
                take(e)?;
            }
            Item::Rejected {
                file,
                offset,
                line,
                reject,
            } => {
                m.events_rejected
                    .with_label_values(&[source, reject.reason])
                    .inc();
                dl.reject(source, &file, offset, &line, &reject)?;
            }
        }
    }
    m.events_processed
        .with_label_values(&[source])
        .inc_by(events);
    if let Some(ts) = latest {
        let lag = metrics::now_secs() - ts.timestamp_millis() as f64 / 1000.0;
        m.ingest_lag_seconds
            .with_label_values(&[source])
            .set(lag.max(0.0));
    }
    Ok(())
}

/// A source thread: follows the files, parses lines, hands batches to the engine.
pub fn follow(
    s: SourceConfig,
    tz: Tz,
    resume: Vec<Position>,
    tx: SyncSender<Msg>,
    flags: Arc<Flags>,
    idle_after: Duration,
) {
    let probe = match parse::build(&s, tz) {
        Ok(p) => p,
        Err(e) => {
            let _ = tx.send(Msg::Failed(s.name.clone(), format!("{e:#}")));
            return;
        }
    };
    let opts = TailOptions {
        header: probe.wants_header(),
        ..TailOptions::default()
    };
    let mut tailer = Tailer::new(s.paths.clone(), opts, &resume);
    let mut parsers: HashMap<(u64, u64), Box<dyn Parser>> = HashMap::new();
    let mut quiet_since = Instant::now();
    let mut told_idle = false;
    while !flags.stopping() {
        let lines = match tailer.poll(2000) {
            Ok(l) => l,
            Err(e) => {
                let _ = tx.send(Msg::Failed(s.name.clone(), e.to_string()));
                return;
            }
        };
        if lines.is_empty() {
            if !told_idle && quiet_since.elapsed() >= idle_after {
                told_idle = true;
                if tx.send(Msg::Idle(s.name.clone())).is_err() {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        quiet_since = Instant::now();
        told_idle = false;
        let mut items = Vec::with_capacity(lines.len());
        let mut ends: HashMap<(u64, u64), Position> = HashMap::new();
        let line_count = lines.len() as u64;
        let byte_count: u64 = lines.iter().map(|l| l.end - l.offset).sum();
        for l in lines {
            let fk = (l.id.dev, l.id.ino);
            // A header is re-delivered on resume without moving the position.
            if l.kind != LineKind::Header {
                ends.insert(
                    fk,
                    Position {
                        path: l.path.to_string(),
                        id: l.id,
                        offset: l.end,
                    },
                );
            }
            match l.kind {
                LineKind::Header => {
                    let mut p = match parse::build(&s, tz) {
                        Ok(p) => p,
                        Err(_) => continue,
                    };
                    if let Err(reject) = p.parse(&l.text) {
                        items.push(Item::Rejected {
                            file: l.path.clone(),
                            offset: l.offset,
                            line: l.text,
                            reject,
                        });
                    }
                    parsers.insert(fk, p);
                }
                LineKind::Oversized => items.push(Item::Rejected {
                    file: l.path.clone(),
                    offset: l.offset,
                    line: l.text.chars().take(1024).collect(),
                    reject: Reject::new("line_too_long", "line longer than the 1 MiB limit"),
                }),
                LineKind::Data => {
                    let p = parsers
                        .entry(fk)
                        .or_insert_with(|| parse::build(&s, tz).expect("built above"));
                    match p.parse(&l.text) {
                        Ok(Some(mut e)) => {
                            e.source = s.name.clone();
                            e.origin = Some(Provenance {
                                agent: String::new(),
                                file: l.path.to_string(),
                                offset: l.offset,
                                file_id: l.id.to_string(),
                            });
                            items.push(Item::Event(e));
                        }
                        Ok(None) => {}
                        Err(reject) => items.push(Item::Rejected {
                            file: l.path.clone(),
                            offset: l.offset,
                            line: l.text,
                            reject,
                        }),
                    }
                }
            }
        }
        let msg = Msg::Batch {
            source: s.name.clone(),
            items,
            positions: ends.into_values().collect(),
            lines: line_count,
            bytes: byte_count,
        };
        if tx.send(msg).is_err() {
            return;
        }
    }
}

/// The running sources of a config: a thread per `file` source (see [`follow`]) and a
/// watcher per `fswatch` source, all sending to one channel. Dropping `watchers` stops the
/// watchers; the threads end when `flags` asks them to.
pub struct Started {
    pub threads: Vec<std::thread::JoinHandle<()>>,
    pub watchers: Vec<crate::source::fswatch::FsWatch>,
}

/// Starts every source of `cfg`, file sources resuming from `resume` (by source name).
/// With `watch_idle`, each watcher batch is followed by [`Msg::Idle`]: its events carry
/// wall-clock time, so a consumer that orders by event time must not wait for it.
pub fn start_sources(
    cfg: &crate::config::Config,
    resume: &std::collections::BTreeMap<String, Vec<Position>>,
    tx: SyncSender<Msg>,
    flags: &Arc<Flags>,
    watch_idle: bool,
) -> anyhow::Result<Started> {
    use crate::config::SourceType;
    let tz = cfg.timezone()?;
    let idle = Duration::from_secs(cfg.engine.idle_source_secs.max(1));
    let mut threads = Vec::new();
    for s in cfg.sources.iter().filter(|s| s.kind == SourceType::File) {
        let from = resume.get(&s.name).cloned().unwrap_or_default();
        let (s, tx, flags) = (s.clone(), tx.clone(), Arc::clone(flags));
        threads.push(
            std::thread::Builder::new()
                .name(format!("source-{}", s.name))
                .spawn(move || follow(s, tz, from, tx, flags, idle))?,
        );
    }
    let mut watchers = Vec::new();
    for s in cfg.sources.iter().filter(|s| s.kind == SourceType::Fswatch) {
        let (tx, name) = (tx.clone(), s.name.clone());
        let emit = Box::new(move |events: Vec<Event>| {
            let n = events.len() as u64;
            let batch = Msg::Batch {
                source: name.clone(),
                items: events.into_iter().map(Item::Event).collect(),
                positions: Vec::new(),
                lines: n,
                bytes: 0,
            };
            tx.send(batch).is_ok() && (!watch_idle || tx.send(Msg::Idle(name.clone())).is_ok())
        });
        watchers.push(crate::source::fswatch::start(s, emit)?);
    }
    Ok(Started { threads, watchers })
}
