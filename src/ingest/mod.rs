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

/// One line's outcome: an event, a well-formed record that is not a person's access to
/// patient data (counted as ignored, by kind), or a rejection for the dead-letter file.
pub enum Item {
    Event(Event),
    Ignored(&'static str),
    Rejected {
        file: Arc<str>,
        offset: u64,
        line: String,
        reject: Reject,
    },
}

/// Most records one event may name: no hospital system exports a billion records at once.
const MAX_RECORDS: u64 = 1_000_000_000;
/// Most bytes one file event may name (1 PiB).
const MAX_BYTES: u64 = 1 << 50;

/// What a well-formed event must also be to reach the engine: a time near the present,
/// counts a hospital could produce, ids without control characters or broken bytes. A
/// single line dated 1900 would otherwise start the learning period in 1900 (every
/// detector then alerts from the first real day), and a garbled id becomes a user of its
/// own. Such lines are counted rejections with their own reasons, like broken ones.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_age: chrono::Duration,
    pub max_ahead: chrono::Duration,
}

impl Limits {
    pub fn from_config(cfg: &crate::config::Config) -> Limits {
        Limits {
            max_age: chrono::Duration::days(cfg.engine.max_event_age_days.min(365_000) as i64),
            max_ahead: chrono::Duration::seconds(
                cfg.engine.max_event_ahead_secs.min(1 << 40) as i64
            ),
        }
    }

    /// Why `e` cannot be believed, if it cannot.
    fn check(&self, e: &Event, now: chrono::DateTime<chrono::Utc>) -> Option<Reject> {
        self.check_time(e, now).or_else(|| self.check_values(e))
    }

    /// Why `e`'s time cannot be believed at `now`, if it cannot.
    fn check_time(&self, e: &Event, now: chrono::DateTime<chrono::Utc>) -> Option<Reject> {
        if e.ts < now - self.max_age || e.ts > now + self.max_ahead {
            return Some(Reject::new(
                reason::IMPLAUSIBLE_TIME,
                format!(
                    "event time {} is more than {} days before or {} s after now; set [engine] max_event_age_days or max_event_ahead_secs if it is real",
                    e.ts.to_rfc3339(),
                    self.max_age.num_days(),
                    self.max_ahead.num_seconds()
                ),
            ));
        }
        None
    }

    /// Why `e`'s counts or ids cannot be believed, if they cannot.
    fn check_values(&self, e: &Event) -> Option<Reject> {
        if e.records > MAX_RECORDS || e.bytes.is_some_and(|b| b > MAX_BYTES) {
            return Some(Reject::new(
                reason::ABSURD_COUNT,
                format!(
                    "records {} or bytes {:?} beyond anything one event moves",
                    e.records, e.bytes
                ),
            ));
        }
        // Printable ASCII, nearly every id, holds neither: no need to decode characters.
        let garbled = |s: &str| {
            !s.bytes().all(|b| (0x20..0x7f).contains(&b))
                && s.chars().any(|c| c.is_control() || c == '\u{fffd}')
        };
        for (what, v) in [
            ("user", Some(e.user.as_str())),
            ("patient", e.patient.as_deref()),
            ("host", e.host.as_deref()),
        ] {
            if v.is_some_and(garbled) {
                return Some(Reject::new(
                    reason::BAD_ID,
                    format!("the {what} id holds a control character or bytes that are not UTF-8"),
                ));
            }
        }
        None
    }
}

/// Events whose times are checked against one reading of the clock.
const CLOCK_EVERY: u32 = 64;

/// How far behind the present a reading of the [`Clock`] may fall and still decide alone
/// that an event is recent enough.
const CLOCK_SLACK: chrono::Duration = chrono::Duration::days(1);

/// The present for [`Limits`]' time check, read once per [`CLOCK_EVERY`] events: reading
/// the clock for every event (`clock_gettime` and chrono's conversion) was about 1% of a
/// replay's CPU.
///
/// A reading falls behind the present by as long as its events took to decode, or the
/// decoder waited between them (a replay's decoder waits while the merge is on other
/// files; `tap` waits on its output). That cannot change a verdict: a reading behind the
/// present can only reject an event as too far ahead that the present accepts, and accept
/// one as recent enough that the present finds too old, so a rejection, and an event
/// within [`CLOCK_SLACK`] of the oldest time accepted, are checked again against a fresh
/// reading. (Unless a reading is more than `CLOCK_SLACK` old, which the batches of a
/// followed source prevent by reading the clock afresh for each, or the system clock is
/// set back between two readings, when the 64 events after the step are judged against
/// the time before it.)
#[derive(Debug, Clone, Copy)]
struct Clock {
    now: chrono::DateTime<chrono::Utc>,
    /// Events still to be checked against `now`; 0 when it must be read.
    left: u32,
    /// Event times from here on are recent enough whatever the present is (within the
    /// slack).
    sure_from: chrono::DateTime<chrono::Utc>,
}

impl Clock {
    fn unread() -> Clock {
        Clock {
            now: chrono::DateTime::UNIX_EPOCH,
            left: 0,
            sure_from: chrono::DateTime::<chrono::Utc>::MAX_UTC,
        }
    }

    fn read(limits: &Limits) -> Clock {
        Clock::at(chrono::Utc::now(), limits)
    }

    fn at(now: chrono::DateTime<chrono::Utc>, limits: &Limits) -> Clock {
        Clock {
            now,
            left: CLOCK_EVERY,
            sure_from: now
                .checked_sub_signed(limits.max_age)
                .and_then(|t| t.checked_add_signed(CLOCK_SLACK))
                .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC),
        }
    }
}

/// Turns the lines of one source's files into [`Item`]s, with a parser per file (parsers
/// keep per-file state such as a CSV header).
pub struct Decoder {
    source: SourceConfig,
    tz: Tz,
    limits: Limits,
    parsers: HashMap<(u64, u64), Box<dyn Parser>>,
    /// The last file id and its text: consecutive lines nearly always share it, and
    /// formatting it for every event showed in profiles.
    last_id: Option<(crate::source::FileId, Arc<str>)>,
    clock: Clock,
}

impl Decoder {
    /// Fails when the source's parser cannot be built from its settings.
    pub fn new(source: &SourceConfig, tz: Tz, limits: Limits) -> anyhow::Result<Decoder> {
        parse::build(source, tz)?;
        Ok(Decoder {
            source: source.clone(),
            tz,
            limits,
            parsers: HashMap::new(),
            last_id: None,
            clock: Clock::unread(),
        })
    }

    /// True when each line decodes on its own, whatever came before it in the file: then
    /// a batch's lines may be decoded by several decoders at once (see [`Pool`]). Not
    /// CSV (its header names the columns of later lines) nor auditd (records span lines).
    pub fn line_by_line(&self) -> bool {
        use crate::config::Format;
        matches!(
            self.source.format,
            Some(Format::FhirAudit | Format::AtnaSyslog | Format::Jsonl | Format::Canonical)
        )
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
                    Ok(Some(e)) => match self.check(&e) {
                        None => out.push(Item::Event(self.stamp(e, &line, line.offset))),
                        Some(reject) => out.push(Item::Rejected {
                            file: line.path,
                            offset: line.offset,
                            line: line.text,
                            reject,
                        }),
                    },
                    Ok(None) => {}
                    Err(reject) if reject.ignored => out.push(Item::Ignored(reject.reason)),
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
        let limits = self.limits;
        for parser in self.parsers.values_mut() {
            for r in parser.flush() {
                let r = r.and_then(|e| match limits.check(&e, chrono::Utc::now()) {
                    None => Ok(e),
                    Some(reject) => Err(reject),
                });
                out.push(match r {
                    Ok(mut e) => {
                        e.source = self.source.name.clone();
                        e.origin = Some(Provenance {
                            agent: String::new(),
                            file: path.clone(),
                            offset: u64::MAX,
                            file_id: Arc::from(""),
                        });
                        Item::Event(e)
                    }
                    Err(reject) if reject.ignored => Item::Ignored(reject.reason),
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

    /// [`Limits::check`] against the [`Clock`].
    fn check(&mut self, e: &Event) -> Option<Reject> {
        if self.clock.left == 0 {
            self.clock = Clock::read(&self.limits);
        }
        self.clock.left -= 1;
        let mut verdict = self.limits.check_time(e, self.clock.now);
        if (verdict.is_some() || e.ts < self.clock.sure_from) && self.clock.left < CLOCK_EVERY - 1 {
            // Decided again against the present: see `Clock`.
            self.clock = Clock::read(&self.limits);
            self.clock.left -= 1;
            verdict = self.limits.check_time(e, self.clock.now);
        }
        verdict.or_else(|| self.limits.check_values(e))
    }

    /// Makes the next event's check read the clock: a followed source's lines come in
    /// batches that may be hours apart.
    fn read_clock_again(&mut self) {
        self.clock.left = 0;
    }

    fn stamp(&mut self, mut e: Event, line: &TailLine, offset: u64) -> Event {
        if e.source != self.source.name {
            e.source.clone_from(&self.source.name);
        }
        let file_id = match &self.last_id {
            Some((id, text)) if *id == line.id => text.clone(),
            _ => {
                let text: Arc<str> = Arc::from(line.id.to_string());
                self.last_id = Some((line.id, text.clone()));
                text
            }
        };
        e.origin = Some(Provenance {
            agent: String::new(),
            file: line.path.clone(),
            offset,
            file_id,
        });
        e
    }
}

/// Smallest batch split across threads: below it (a live trickle) one thread decodes
/// alone, as the thread start would cost more than it saves.
const SPLIT_MIN_LINES: usize = 256;

/// Most threads one source decodes a batch on.
const MAX_DECODE_THREADS: usize = 4;

/// A source's decoders, one per core: a catching-up `run` or `agent` reads a source's
/// backlog in batches of thousands of lines, and one thread decoding them all was what
/// kept `run` at about half of `replay`'s rate (replay decodes each file on its own
/// thread). For formats that decode [`Decoder::line_by_line`], a batch is cut into
/// consecutive runs of lines, decoded at once on scoped threads, and the items put back
/// together in line order, so what comes out is exactly what one decoder gives.
pub struct Pool {
    decoders: Vec<Decoder>,
}

impl Pool {
    /// Fails when the source's parser cannot be built from its settings.
    pub fn new(source: &SourceConfig, tz: Tz, limits: Limits) -> anyhow::Result<Pool> {
        let first = Decoder::new(source, tz, limits)?;
        let n = if first.line_by_line() {
            std::thread::available_parallelism()
                .map_or(1, usize::from)
                .min(MAX_DECODE_THREADS)
        } else {
            1
        };
        let mut decoders = vec![first];
        for _ in 1..n {
            decoders.push(Decoder::new(source, tz, limits)?);
        }
        Ok(Pool { decoders })
    }

    pub fn wants_header(&self) -> bool {
        self.decoders[0].wants_header()
    }

    /// Decodes `lines` into `out`, in line order.
    pub fn decode(&mut self, lines: Vec<TailLine>, out: &mut Vec<Item>) {
        for d in &mut self.decoders {
            d.read_clock_again();
        }
        let n = self.decoders.len();
        if n == 1 || lines.len() < SPLIT_MIN_LINES {
            for l in lines {
                self.decoders[0].decode(l, out);
            }
            return;
        }
        let per = lines.len().div_ceil(n);
        let mut chunks: Vec<Vec<TailLine>> = Vec::with_capacity(n);
        let mut rest = lines.into_iter();
        for _ in 0..n {
            chunks.push(rest.by_ref().take(per).collect());
        }
        let (first_decoder, others) = self.decoders.split_first_mut().expect("n > 1");
        let mut chunks = chunks.into_iter();
        let first_chunk = chunks.next().unwrap_or_default();
        let parts: Vec<Vec<Item>> = std::thread::scope(|scope| {
            let handles: Vec<_> = others
                .iter_mut()
                .zip(chunks)
                .map(|(d, chunk)| {
                    scope.spawn(move || {
                        let mut items = Vec::with_capacity(chunk.len());
                        for l in chunk {
                            d.decode(l, &mut items);
                        }
                        items
                    })
                })
                .collect();
            for l in first_chunk {
                first_decoder.decode(l, out);
            }
            handles
                .into_iter()
                .map(|h| h.join().expect("a decoder thread panicked"))
                .collect()
        });
        for p in parts {
            out.extend(p);
        }
    }
}

/// Lines looked at for a file's first event before giving up on it.
const FIRST_EVENT_LINES: usize = 100;

/// How a source's history is put in order: by the time of each file's first event, read
/// with the source's own parser (see `source::TailOptions::order_by`).
pub fn order_key(source: &SourceConfig, tz: Tz, limits: Limits) -> OrderKey {
    let source = source.clone();
    OrderKey(Arc::new(move |path: &std::path::Path| {
        let mut decoder = Decoder::new(&source, tz, limits).ok()?;
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
                Item::Rejected { .. } | Item::Ignored(_) => None,
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
            Item::Ignored(kind) => m.events_ignored.with_label_values(&[source, kind]).inc(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{FileId, LineKind};

    fn source(format: &str) -> SourceConfig {
        toml::from_str(&format!(
            "name = \"s\"\ntype = \"file\"\nformat = \"{format}\"\n"
        ))
        .unwrap()
    }

    fn limits() -> Limits {
        Limits {
            max_age: chrono::Duration::days(365_000),
            max_ahead: chrono::Duration::days(365),
        }
    }

    /// Canonical lines, some broken, from two files interleaved as a poll hands them out.
    fn lines(n: usize) -> Vec<TailLine> {
        (0..n)
            .map(|i| {
                let text = match i % 7 {
                    0 => "{not json".to_string(),
                    3 => String::new(),
                    _ => format!(
                        r#"{{"ts":"2024-05-14T13:{:02}:{:02}Z","user":"u{}","action":"view","patient":"P{i}"}}"#,
                        (i / 60) % 60,
                        i % 60,
                        i % 13
                    ),
                };
                let file = i % 2;
                TailLine {
                    path: Arc::from(format!("/logs/{file}.jsonl")),
                    id: FileId {
                        dev: 1,
                        ino: file as u64,
                        fingerprint: 7,
                    },
                    offset: i as u64 * 100,
                    end: i as u64 * 100 + 99,
                    kind: LineKind::Data,
                    text,
                }
            })
            .collect()
    }

    fn describe(items: &[Item]) -> Vec<String> {
        items
            .iter()
            .map(|i| match i {
                Item::Event(e) => e.to_json_line(),
                Item::Ignored(k) => format!("ignored {k}"),
                Item::Rejected { offset, reject, .. } => {
                    format!("rejected {offset} {}", reject.reason)
                }
            })
            .collect()
    }

    #[test]
    fn a_pool_decodes_exactly_as_one_decoder() {
        let s = source("canonical");
        for n in [10, SPLIT_MIN_LINES, 2001] {
            let mut one = Decoder::new(&s, chrono_tz::UTC, limits()).unwrap();
            let mut expected = Vec::new();
            for l in lines(n) {
                one.decode(l, &mut expected);
            }
            let mut pool = Pool {
                decoders: (0..3)
                    .map(|_| Decoder::new(&s, chrono_tz::UTC, limits()).unwrap())
                    .collect(),
            };
            let mut got = Vec::new();
            pool.decode(lines(n), &mut got);
            assert_eq!(describe(&got), describe(&expected), "{n} lines");
        }
    }

    #[test]
    fn a_late_reading_of_the_clock_changes_no_verdict() {
        let limits = Limits {
            max_age: chrono::Duration::days(1),
            max_ahead: chrono::Duration::seconds(60),
        };
        let line = |ts: chrono::DateTime<chrono::Utc>| TailLine {
            path: Arc::from("/logs/a.jsonl"),
            id: FileId {
                dev: 1,
                ino: 1,
                fingerprint: 7,
            },
            offset: 0,
            end: 99,
            kind: LineKind::Data,
            text: format!(
                r#"{{"ts":"{}","user":"u1","action":"view"}}"#,
                crate::event::fmt_ts(&ts)
            ),
        };
        let verdict = |ts| {
            let mut d = Decoder::new(&source("canonical"), chrono_tz::UTC, limits).unwrap();
            let an_hour_ago = chrono::Utc::now() - chrono::Duration::hours(1);
            d.clock = Clock::at(an_hour_ago, &limits);
            d.clock.left = 10;
            let mut out = Vec::new();
            d.decode(line(ts), &mut out);
            describe(&out).join("")
        };
        let now = chrono::Utc::now();
        // Too far ahead of the late reading, not of the present.
        assert!(verdict(now).starts_with('{'), "{}", verdict(now));
        // Recent enough for the late reading, not for the present.
        let old = now - chrono::Duration::days(1) - chrono::Duration::minutes(30);
        assert_eq!(verdict(old), "rejected 0 implausible_time");
        // Either way for both.
        let ahead = now + chrono::Duration::hours(1);
        assert_eq!(verdict(ahead), "rejected 0 implausible_time");
    }

    #[test]
    fn only_line_by_line_formats_share_a_batch() {
        let pool = |f: &str| Pool::new(&source(f), chrono_tz::UTC, limits()).unwrap();
        let csv: SourceConfig = toml::from_str(
            "name = \"s\"\ntype = \"file\"\nformat = \"csv\"\n[fields]\nts = \"t\"\nuser = \"u\"\naction = \"a\"\n",
        )
        .unwrap();
        let csv = Pool::new(&csv, chrono_tz::UTC, limits()).unwrap();
        assert_eq!(csv.decoders.len(), 1, "a CSV header must reach every line");
        assert!(pool("fhir-audit").decoders[0].line_by_line());
        assert!(pool("canonical").decoders[0].line_by_line());
    }
}
