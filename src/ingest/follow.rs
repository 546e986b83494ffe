//! A file source's thread: follows its files with a [`Tailer`], decodes each line (see
//! [`Decoder`]), and hands batches of events, rejected lines and the positions they reach
//! to whoever consumes them (the engine in `run`, the Kafka spool in `agent`). Positions
//! travel with the batch, so the consumer checkpoints exactly what it has made durable.

use super::{Item, Limits, Msg, Pool};
use crate::config::SourceConfig;
use crate::event::Event;
use crate::source::{Position, TailOptions, Tailer};
use chrono_tz::Tz;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A source thread: follows the files, decodes lines, hands batches to the consumer.
pub fn follow(
    s: SourceConfig,
    tz: Tz,
    limits: Limits,
    resume: Vec<Position>,
    tx: SyncSender<Msg>,
    stop: Arc<AtomicBool>,
    idle_after: Duration,
) {
    let mut decoder = match Pool::new(&s, tz, limits) {
        Ok(d) => d,
        Err(e) => {
            let _ = tx.send(Msg::Failed(s.name.clone(), format!("{e:#}")));
            return;
        }
    };
    let opts = TailOptions {
        header: decoder.wants_header(),
        order_by: Some(super::order_key(&s, tz, limits)),
        ..TailOptions::default()
    };
    let mut tailer = Tailer::new(s.paths.clone(), opts, &resume);
    // The positions reading starts at, before any line: the consumer checkpoints them at
    // once, so a file rotated away before its first periodic checkpoint is still known
    // (and found again by inode) at the next start.
    if tailer.poll(0).is_ok() {
        count_unrecovered(&mut tailer, &s.name);
        let start = Msg::Batch {
            source: s.name.clone(),
            items: Vec::new(),
            positions: tailer.positions(),
            lines: 0,
            bytes: 0,
        };
        if tx.send(start).is_err() {
            return;
        }
    }
    let mut quiet_since = Instant::now();
    let mut told_idle = false;
    while !stop.load(Ordering::SeqCst) {
        let lines = match tailer.poll(2000) {
            Ok(l) => l,
            Err(e) => {
                let _ = tx.send(Msg::Failed(s.name.clone(), e.to_string()));
                return;
            }
        };
        count_unrecovered(&mut tailer, &s.name);
        if lines.is_empty() {
            // Caught up. Quiet since our last line, or since the files were last written
            // when that is longer: a backlog finished long ago is idle once read, without
            // holding every finding back for `idle_after` more.
            let quiet = quiet_since
                .elapsed()
                .max(tailer.quiet_for().unwrap_or_default());
            if !told_idle && quiet >= idle_after {
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
        let line_count = lines.len() as u64;
        let byte_count: u64 = lines.iter().map(|l| l.end - l.offset).sum();
        decoder.decode(lines, &mut items);
        let msg = Msg::Batch {
            source: s.name.clone(),
            items,
            positions: tailer.positions(),
            lines: line_count,
            bytes: byte_count,
        };
        if tx.send(msg).is_err() {
            return;
        }
    }
}

/// Counts the files the tailer found truncated with no copy to recover from.
fn count_unrecovered(tailer: &mut Tailer, source: &str) {
    let n = tailer.take_unrecovered();
    if n > 0 {
        crate::metrics::get()
            .truncations_unrecovered
            .with_label_values(&[source])
            .inc_by(n);
    }
}

/// The running sources of a config: a thread per `file` source (see [`follow`]) and a
/// watcher per `fswatch` source, all sending to one channel. Dropping `watchers` stops the
/// watchers; the threads end once `stop` is set.
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
    stop: &Arc<AtomicBool>,
    watch_idle: bool,
) -> anyhow::Result<Started> {
    use crate::config::SourceType;
    let tz = cfg.timezone()?;
    let limits = Limits::from_config(cfg);
    let idle = Duration::from_secs(cfg.engine.idle_source_secs.max(1));
    let mut threads = Vec::new();
    for s in cfg.sources.iter().filter(|s| s.kind == SourceType::File) {
        let from = resume.get(&s.name).cloned().unwrap_or_default();
        let (s, tx, stop) = (s.clone(), tx.clone(), Arc::clone(stop));
        threads.push(
            std::thread::Builder::new()
                .name(format!("source-{}", s.name))
                .spawn(move || follow(s, tz, limits, from, tx, stop, idle))?,
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
