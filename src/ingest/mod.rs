//! Ingest: from a source's lines to canonical events, one road for `replay`, `run` and
//! `agent`.
//!
//! Every file line, whether [`follow`]ed by a daemon or read once by [`history`] for
//! `replay`, goes through the same [`Decoder`]: the same splitter (the file source's),
//! the same line limit ([`crate::parse::MAX_LINE_BYTES`]), the same rejection reasons and
//! the same sample of an oversized line, so a line means the same thing in every command.

pub mod follow;
pub mod history;

use crate::config::SourceConfig;
use crate::deadletter::DeadLetter;
use crate::event::{Event, Provenance};
use crate::metrics;
use crate::parse::{self, reason, Parser, Reject};
use crate::source::{LineKind, OrderKey, Position, TailLine, TailOptions};
use chrono_tz::Tz;
use std::collections::HashMap;
use std::sync::Arc;

/// Bytes of an oversized line kept in the dead-letter file: enough to recognise it.
const OVERSIZED_SAMPLE: usize = 1024;

/// Most files whose positions a source remembers; the oldest are forgotten first.
const MAX_POSITIONS_PER_SOURCE: usize = 4096;

/// What a source hands to whoever consumes it (the engine in `run`, the spool in `agent`).
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
    /// The source has read everything there is and nothing new came for a while.
    Idle(String),
    Failed(String, String),
}

/// One line's outcome: an event, or a rejection bound for the dead-letter file.
pub enum Item {
    Event(Event),
    Rejected {
        file: Arc<str>,
        offset: u64,
        line: String,
        reject: Reject,
    },
}

/// Turns the lines of one source's files into [`Item`]s, with a parser per file (parsers
/// keep per-file state such as a CSV header).
pub struct Decoder {
    source: SourceConfig,
    tz: Tz,
    parsers: HashMap<(u64, u64), Box<dyn Parser>>,
}

impl Decoder {
    /// Fails when the source's parser cannot be built from its settings.
    pub fn new(source: &SourceConfig, tz: Tz) -> anyhow::Result<Decoder> {
        parse::build(source, tz)?;
        Ok(Decoder {
            source: source.clone(),
            tz,
            parsers: HashMap::new(),
        })
    }

    /// True when the source's files start with a header line its parser must see.
    pub fn wants_header(&self) -> bool {
        self.fresh_parser().wants_header()
    }

    fn fresh_parser(&self) -> Box<dyn Parser> {
        parse::build(&self.source, self.tz).expect("checked in Decoder::new")
    }

    /// Decodes one line into `out` (nothing for a blank line or a header).
    pub fn decode(&mut self, line: TailLine, out: &mut Vec<Item>) {
        let key = (line.id.dev, line.id.ino);
        match line.kind {
            LineKind::Header => {
                // A header starts a file's reading again: a fresh parser learns it.
                let mut p = self.fresh_parser();
                if let Err(reject) = p.parse(&line.text) {
                    out.push(Item::Rejected {
                        file: line.path,
                        offset: line.offset,
                        line: line.text,
                        reject,
                    });
                }
                self.parsers.insert(key, p);
            }
            LineKind::Oversized => {
                let sample = truncate(&line.text, OVERSIZED_SAMPLE).to_string();
                out.push(Item::Rejected {
                    file: line.path,
                    offset: line.offset,
                    line: sample,
                    reject: Reject::new(
                        reason::LINE_TOO_LONG,
                        format!(
                            "line is longer than the {} byte limit (a file without line breaks?)",
                            parse::MAX_LINE_BYTES
                        ),
                    ),
                });
            }
            LineKind::Data => {
                let parser = match self.parsers.get_mut(&key) {
                    Some(p) => p,
                    None => {
                        let p = self.fresh_parser();
                        self.parsers.entry(key).or_insert(p)
                    }
                };
                match parser.parse(&line.text) {
                    Ok(Some(e)) => out.push(Item::Event(self.stamp(e, &line, line.offset))),
                    Ok(None) => {}
                    Err(reject) => out.push(Item::Rejected {
                        file: line.path,
                        offset: line.offset,
                        line: line.text,
                        reject,
                    }),
                }
            }
        }
    }

    /// End of input (`replay`): what parsers still hold (multi-line records) comes out,
    /// ordered after every line of its file.
    pub fn finish(&mut self, path: &Arc<str>, out: &mut Vec<Item>) {
        for parser in self.parsers.values_mut() {
            for r in parser.flush() {
                out.push(match r {
                    Ok(mut e) => {
                        e.source = self.source.name.clone();
                        e.origin = Some(Provenance {
                            agent: String::new(),
                            file: path.to_string(),
                            offset: u64::MAX,
                            file_id: String::new(),
                        });
                        Item::Event(e)
                    }
                    Err(reject) => Item::Rejected {
                        file: path.clone(),
                        offset: 0,
                        line: String::new(),
                        reject,
                    },
                });
            }
        }
    }

    fn stamp(&self, mut e: Event, line: &TailLine, offset: u64) -> Event {
        e.source = self.source.name.clone();
        e.origin = Some(Provenance {
            agent: String::new(),
            file: line.path.to_string(),
            offset,
            file_id: line.id.to_string(),
        });
        e
    }
}

/// Lines looked at for a file's first event before giving up on it.
const FIRST_EVENT_LINES: usize = 100;

/// How a source's history is put in order: by the time of each file's first event, read
/// with the source's own parser (see `source::TailOptions::order_by`).
pub fn order_key(source: &SourceConfig, tz: Tz) -> OrderKey {
    let source = source.clone();
    OrderKey(Arc::new(move |path: &std::path::Path| {
        let mut decoder = Decoder::new(&source, tz).ok()?;
        let opts = TailOptions {
            header: decoder.wants_header(),
            ..TailOptions::default()
        };
        let mut items = Vec::new();
        for line in crate::source::read_once(path, &opts)
            .ok()?
            .take(FIRST_EVENT_LINES)
        {
            decoder.decode(line.ok()?, &mut items);
            if let Some(ts) = items.iter().find_map(|i| match i {
                Item::Event(e) => Some(e.ts.timestamp_millis()),
                Item::Rejected { .. } => None,
            }) {
                return Some(ts);
            }
        }
        None
    }))
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Takes one batch's items the way `run` and `agent` both do: each event goes to `take`,
/// each rejected line to the dead-letter file, and lines, bytes, events, rejections and
/// ingest lag to the metrics.
pub fn take_batch(
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

/// Merges a batch's positions into what a source has reached, one per file (by device
/// and inode), forgetting the oldest files beyond a bound. A batch's positions come in
/// the reader's order (files that came first, first) and go to the end in that order, so
/// the list stays in the order the reader last had: a restart reads files rotated while
/// stopped in that order (after a copytruncate, the copy before the truncated file).
pub fn merge_positions(into: &mut Vec<Position>, new: Vec<Position>) {
    for p in new {
        into.retain(|q| !q.id.same_file(&p.id));
        into.push(p);
    }
    if into.len() > MAX_POSITIONS_PER_SOURCE {
        let excess = into.len() - MAX_POSITIONS_PER_SOURCE;
        into.drain(..excess);
    }
}
