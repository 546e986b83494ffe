//! How an agent's events travel on `events_topic`, and how the engine reads them.
//!
//! Three encodings, chosen on the agent by `[kafka] event_encoding`:
//!
//! - `json`: the canonical event as one JSON text (`Event::to_json_line`), one event per
//!   message, what every agent wrote before the compact encoding existed;
//! - `compact`: one event per message, a version byte, [`COMPACT_V1`], then the event's
//!   fields in a fixed order, lengths and numbers as LEB128 varints. Decoding it is a few
//!   bounds checks and copies, where JSON cost the engine a scan for escapes and a match
//!   on every field name; encoding it spares the agent a formatter;
//! - `batched` (the default): several compact events of one partition in one message,
//!   [`BATCH_V1`] then a count and the events. Kafka's costs are per message (the
//!   producer's queueing and delivery report, the broker's record, the consumer's fetch
//!   queue): the month of `benches/compare.sh` went through Kafka as 665,316 messages, and
//!   the agent's producing thread was 15% of the pipeline's CPU samples (8% batched), its
//!   librdkafka thread 5% (1.7%), the engine's librdkafka thread 3% (1.1%).
//!
//! The engine needs no setting: it reads all three, message by message, from the first
//! byte. A JSON text starts with `{` (or white space), never with [`COMPACT_V1`] or
//! [`BATCH_V1`], so a topic may hold all of them, as it does during a rolling upgrade or
//! when an old agent's spool drains. Engines older than an encoding skip its messages
//! (counted as `not_canonical_event`): upgrade engines before agents, or keep agents on
//! an encoding every engine reads (`compact` from the engines of the second throughput
//! round on, `json` always) until every engine is upgraded.
//!
//! All carry exactly what the JSON contract carries, times in whole milliseconds
//! included, so an event reads back the same either way (see the tests) and gives the
//! same alerts.
//!
//! Compact layout, version 1 (`?` = present only when its flag bit is set):
//!
//! ```text
//! 0xC1  ts_ms:i64 LE  flags:u8  action:u8  outcome:u8  records:varint
//!       user:str  source:str  patient:str?  bytes:varint?  path:str?  media:u8?
//!       host:str?  purpose:str?  phi:(keywords, patterns, records: varint)?
//!       origin:(agent:str, file:str, offset:varint, file_id:str)?
//! str = length:varint, then that many bytes of UTF-8
//! ```
//!
//! Batch layout, version 1: events of users the agent puts in the same partition, in the
//! order it read them (the partition is the one librdkafka's default partitioner gives
//! the user's key, see `kafka::producer`, so a user's events stay in one partition and
//! in order, whichever encoding carried them):
//!
//! ```text
//! 0xC2  count:u32 LE  (length:varint  compact event, 0xC1 first)  x count
//! ```
//!
//! A batch is one Kafka message, so it is applied, snapshotted and committed as one: the
//! engine's snapshot holds the offset after the whole message, never half of it, and an
//! agent's re-sent events are still recognised one by one by their provenance.
//!
//! A later version takes a new first byte; this decoder refuses bytes it does not know.

use crate::event::{Action, Event, Media, Outcome, PhiMarkers, Provenance};
use chrono::DateTime;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// First byte of a version-1 compact event. Not a byte a JSON text can start with.
pub const COMPACT_V1: u8 = 0xC1;

/// First byte of a version-1 batch of compact events. Not a byte a JSON text can start with.
pub const BATCH_V1: u8 = 0xC2;

/// Bytes before a batch's first event: the version byte and the count.
const BATCH_HEADER: usize = 5;

/// How the agent writes events (`[kafka] event_encoding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// The canonical JSON line, readable by every engine version.
    Json,
    /// The versioned binary form, one event per message; engines from the second
    /// throughput round on read it.
    Compact,
    /// Compact events, several of one partition per message; engines from the fourth
    /// throughput round on read it.
    #[default]
    Batched,
}

const PATIENT: u8 = 1;
const BYTES: u8 = 1 << 1;
const PATH: u8 = 1 << 2;
const MEDIA: u8 = 1 << 3;
const HOST: u8 = 1 << 4;
const PURPOSE: u8 = 1 << 5;
const PHI: u8 = 1 << 6;
const ORIGIN: u8 = 1 << 7;

/// One event in `encoding`: a message payload, or (batched) what [`Batch::push`] takes.
/// The agent's spool holds events in this form; batches are made when producing.
pub fn encode(e: &Event, encoding: Encoding) -> Vec<u8> {
    match encoding {
        Encoding::Json => e.to_json_line().into_bytes(),
        Encoding::Compact | Encoding::Batched => encode_compact(e),
    }
}

/// Reads a one-event message, JSON or compact.
pub fn decode(payload: &[u8]) -> Result<Event, String> {
    match payload.first() {
        Some(&COMPACT_V1) => decode_compact(&payload[1..]),
        Some(&BATCH_V1) => Err("a batch of events, not one event".into()),
        _ => serde_json::from_slice(payload).map_err(|e| e.to_string()),
    }
}

/// The events of a message of any encoding, in order: one for JSON and compact messages,
/// each of a batch's. A damaged event of a batch is an error in its place, and the
/// events after it are still read; a batch whose framing is broken ends with an error
/// there (what follows cannot be found).
pub fn events(payload: &[u8]) -> Events<'_> {
    match payload.first() {
        Some(&BATCH_V1) => Events(match payload.get(1..BATCH_HEADER) {
            Some(n) => Inner::Batch {
                r: Reader {
                    b: &payload[BATCH_HEADER..],
                },
                left: u32::from_le_bytes(n.try_into().expect("4 bytes")),
            },
            None => Inner::One(Some(Err("event batch cut short in its count".into()))),
        }),
        _ => Events(Inner::One(Some(decode(payload)))),
    }
}

/// The events of one message (see [`events`]).
pub struct Events<'a>(Inner<'a>);

// Lives on the stack for one message; boxing the one event would cost an allocation
// per one-event message.
#[allow(clippy::large_enum_variant)]
enum Inner<'a> {
    One(Option<Result<Event, String>>),
    Batch { r: Reader<'a>, left: u32 },
}

impl Iterator for Events<'_> {
    type Item = Result<Event, String>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            Inner::One(e) => e.take(),
            Inner::Batch { r, left } => {
                if *left == 0 {
                    if r.b.is_empty() {
                        return None;
                    }
                    r.b = &[];
                    return Some(Err("event batch has bytes after its last event".into()));
                }
                *left -= 1;
                let one = r
                    .varint()
                    .and_then(|n| usize::try_from(n).map_err(|_| "event too long".to_string()))
                    .and_then(|n| r.take(n));
                match one {
                    Ok(bytes) => Some(decode_batched(bytes)),
                    Err(e) => {
                        *left = 0;
                        r.b = &[];
                        Some(Err(format!("event batch cut short: {e}")))
                    }
                }
            }
        }
    }
}

/// One event of a batch: a compact event, nothing else.
fn decode_batched(b: &[u8]) -> Result<Event, String> {
    match b.first() {
        Some(&COMPACT_V1) => decode_compact(&b[1..]),
        _ => Err("an event in a batch is not a compact event".into()),
    }
}

/// A batch message under construction: compact events appended one by one.
#[derive(Debug)]
pub struct Batch {
    buf: Vec<u8>,
    count: u32,
}

impl Default for Batch {
    fn default() -> Batch {
        let mut buf = Vec::with_capacity(16 << 10);
        buf.push(BATCH_V1);
        buf.extend_from_slice(&0u32.to_le_bytes());
        Batch { buf, count: 0 }
    }
}

impl Batch {
    /// Appends one compact event (as [`encode`] made it, [`COMPACT_V1`] first).
    pub fn push(&mut self, compact: &[u8]) {
        varint(&mut self.buf, compact.len() as u64);
        self.buf.extend_from_slice(compact);
        self.count += 1;
    }

    /// Events in the batch.
    pub fn len(&self) -> u32 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The message's size so far.
    pub fn bytes(&self) -> usize {
        self.buf.len()
    }

    /// The message payload.
    pub fn payload(&mut self) -> &[u8] {
        let n = self.count.to_le_bytes();
        self.buf[1..BATCH_HEADER].copy_from_slice(&n);
        &self.buf
    }

    /// Empties the batch, keeping its buffer.
    pub fn clear(&mut self) {
        self.buf.truncate(BATCH_HEADER);
        self.count = 0;
    }
}

fn encode_compact(e: &Event) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + e.user.len() + e.source.len());
    out.push(COMPACT_V1);
    out.extend_from_slice(&e.ts.timestamp_millis().to_le_bytes());
    let mut flags = 0;
    for (present, bit) in [
        (e.patient.is_some(), PATIENT),
        (e.bytes.is_some(), BYTES),
        (e.path.is_some(), PATH),
        (e.media.is_some(), MEDIA),
        (e.host.is_some(), HOST),
        (e.purpose.is_some(), PURPOSE),
        (e.phi.is_some(), PHI),
        (e.origin.is_some(), ORIGIN),
    ] {
        if present {
            flags |= bit;
        }
    }
    out.push(flags);
    out.push(action_code(e.action));
    out.push(match e.outcome {
        Outcome::Success => 0,
        Outcome::Failure => 1,
    });
    varint(&mut out, e.records);
    string(&mut out, &e.user);
    string(&mut out, &e.source);
    if let Some(p) = &e.patient {
        string(&mut out, p);
    }
    if let Some(b) = e.bytes {
        varint(&mut out, b);
    }
    if let Some(p) = &e.path {
        string(&mut out, p);
    }
    if let Some(m) = e.media {
        out.push(media_code(m));
    }
    if let Some(h) = &e.host {
        string(&mut out, h);
    }
    if let Some(p) = &e.purpose {
        string(&mut out, p);
    }
    if let Some(p) = &e.phi {
        varint(&mut out, p.keywords as u64);
        varint(&mut out, p.patterns as u64);
        varint(&mut out, p.records);
    }
    if let Some(o) = &e.origin {
        string(&mut out, &o.agent);
        string(&mut out, &o.file);
        varint(&mut out, o.offset);
        string(&mut out, &o.file_id);
    }
    out
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn string(out: &mut Vec<u8>, s: &str) {
    varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// Codes are positions in [`Action::ALL`], which only ever grows at its end.
fn action_code(a: Action) -> u8 {
    Action::ALL
        .iter()
        .position(|x| *x == a)
        .expect("every action is in ALL") as u8
}

const MEDIA_ALL: [Media; 4] = [Media::Removable, Media::Network, Media::Cloud, Media::Local];

fn media_code(m: Media) -> u8 {
    MEDIA_ALL
        .iter()
        .position(|x| *x == m)
        .expect("every medium is listed") as u8
}

/// A cursor over a compact message, every read bounds-checked.
struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.b.len() < n {
            return Err("compact event cut short".into());
        }
        let (head, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("compact event has a varint longer than 64 bits".into())
    }

    fn str(&mut self) -> Result<&'a str, String> {
        let n = usize::try_from(self.varint()?).map_err(|_| "string too long".to_string())?;
        std::str::from_utf8(self.take(n)?).map_err(|_| "compact event string is not UTF-8".into())
    }

    fn string(&mut self) -> Result<String, String> {
        self.str().map(str::to_string)
    }
}

fn decode_compact(b: &[u8]) -> Result<Event, String> {
    let mut r = Reader { b };
    let ms = i64::from_le_bytes(r.take(8)?.try_into().expect("8 bytes"));
    let ts = DateTime::from_timestamp_millis(ms).ok_or("compact event time out of range")?;
    let flags = r.byte()?;
    let action = *Action::ALL
        .get(r.byte()? as usize)
        .ok_or("compact event has an unknown action")?;
    let outcome = match r.byte()? {
        0 => Outcome::Success,
        1 => Outcome::Failure,
        _ => return Err("compact event has an unknown outcome".into()),
    };
    let records = r.varint()?;
    let user = r.string()?;
    let source = r.string()?;
    let has = |bit: u8| flags & bit != 0;
    let patient = has(PATIENT).then(|| r.string()).transpose()?;
    let bytes = has(BYTES).then(|| r.varint()).transpose()?;
    let path = has(PATH).then(|| r.string()).transpose()?;
    let media = if has(MEDIA) {
        Some(
            *MEDIA_ALL
                .get(r.byte()? as usize)
                .ok_or("compact event has an unknown medium")?,
        )
    } else {
        None
    };
    let host = has(HOST).then(|| r.string()).transpose()?;
    let purpose = has(PURPOSE).then(|| r.string()).transpose()?;
    let phi = if has(PHI) {
        let narrow = |v: u64| u32::try_from(v).map_err(|_| "PHI count out of range".to_string());
        Some(PhiMarkers {
            keywords: narrow(r.varint()?)?,
            patterns: narrow(r.varint()?)?,
            records: r.varint()?,
        })
    } else {
        None
    };
    let origin = if has(ORIGIN) {
        Some(Provenance {
            agent: r.string()?,
            file: Arc::from(r.str()?),
            offset: r.varint()?,
            file_id: Arc::from(r.str()?),
        })
    } else {
        None
    };
    if !r.b.is_empty() {
        return Err("compact event has bytes after its last field".into());
    }
    Ok(Event {
        ts,
        user,
        action,
        patient,
        records,
        bytes,
        path,
        media,
        host,
        outcome,
        source,
        purpose,
        phi,
        origin,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> Event {
        let mut e = Event::new(
            "2026-03-02T13:49:00.123456789Z".parse().unwrap(),
            "JSmith",
            Action::FileMove,
        );
        e.patient = Some("MRN00012345".into());
        e.records = 300;
        e.bytes = Some(1 << 40);
        e.path = Some("E:\\export\\ward 5 – list.csv".into());
        e.media = Some(Media::Local);
        e.host = Some("WS-1".into());
        e.outcome = Outcome::Failure;
        e.source = "files".into();
        e.purpose = Some("".into());
        e.phi = Some(PhiMarkers {
            keywords: 3,
            patterns: u32::MAX,
            records: 7,
        });
        e.origin = Some(Provenance {
            agent: "host-a".into(),
            file: "/var/log/x.log".into(),
            offset: u64::MAX,
            file_id: "1:2:abcd".into(),
        });
        e
    }

    /// Either encoding reads back as the JSON contract reads the event: times in whole
    /// milliseconds, every field else as it was.
    #[test]
    fn both_encodings_read_back_alike() {
        let minimal = Event::new(
            "1969-12-31T23:59:59.9996Z".parse().unwrap(),
            "u",
            Action::View,
        );
        for e in [full(), minimal] {
            let via_json: Event = serde_json::from_str(&e.to_json_line()).unwrap();
            assert_eq!(decode(&encode(&e, Encoding::Json)).unwrap(), via_json);
            let compact = encode(&e, Encoding::Compact);
            assert_eq!(compact[0], COMPACT_V1);
            assert_eq!(decode(&compact).unwrap(), via_json);
        }
    }

    /// A message an agent from before the compact encoding wrote is still read.
    #[test]
    fn an_old_agents_json_message_is_read() {
        let old = br#"{"ts":"2026-03-02T13:49:00.123Z","user":"jsmith","action":"view","patient":"MRN1","records":1,"host":"WS-1","outcome":"success","source":"ehr-fhir","origin":{"agent":"a","file":"f","offset":7,"file_id":"1:2:ab"}}"#;
        let e = decode(old).unwrap();
        assert_eq!(e.user, "jsmith");
        assert_eq!(e.origin.unwrap().offset, 7);
    }

    #[test]
    fn damaged_compact_messages_are_refused() {
        let good = encode(&full(), Encoding::Compact);
        for cut in 1..good.len() {
            assert!(decode(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = good.clone();
        longer.push(0);
        assert!(decode(&longer).is_err());
        let mut bad_action = good;
        bad_action[10] = 200;
        assert!(decode(&bad_action).is_err());
    }

    #[test]
    fn the_version_byte_never_starts_json() {
        assert!(serde_json::from_slice::<serde_json::Value>(&[COMPACT_V1]).is_err());
        assert_ne!(COMPACT_V1, b'{');
        assert!(!COMPACT_V1.is_ascii());
    }

    fn batch_of(events: &[Event]) -> Vec<u8> {
        let mut b = Batch::default();
        for e in events {
            b.push(&encode(e, Encoding::Batched));
        }
        assert_eq!(b.len() as usize, events.len());
        b.payload().to_vec()
    }

    fn minimal() -> Event {
        Event::new("2026-03-02T13:49:00Z".parse().unwrap(), "u", Action::View)
    }

    /// A batch reads back as its events, in order, each as the JSON contract reads it;
    /// one-event messages of either older encoding read as one event.
    #[test]
    fn a_batch_reads_back_as_its_events_in_order() {
        let events = [full(), minimal(), full()];
        let payload = batch_of(&events);
        assert_eq!(payload[0], BATCH_V1);
        let got: Vec<Event> = super::events(&payload).map(Result::unwrap).collect();
        let want: Vec<Event> = events
            .iter()
            .map(|e| serde_json::from_str(&e.to_json_line()).unwrap())
            .collect();
        assert_eq!(got, want);
        for enc in [Encoding::Json, Encoding::Compact] {
            let one: Vec<Event> = super::events(&encode(&full(), enc))
                .map(Result::unwrap)
                .collect();
            assert_eq!(one, want[..1]);
        }
        assert!(decode(&payload).is_err(), "a batch is not one event");
        // A batch that was emptied and refilled holds only the new events.
        let mut b = Batch::default();
        b.push(&encode(&full(), Encoding::Batched));
        b.clear();
        b.push(&encode(&minimal(), Encoding::Batched));
        let again: Vec<Event> = super::events(b.payload()).map(Result::unwrap).collect();
        assert_eq!(again, want[1..2]);
    }

    /// A damaged batch never reads as fewer events without saying so: a cut, a wrong
    /// count or trailing bytes end in an error, and a damaged event is an error in its
    /// place while the events after it are read.
    #[test]
    fn damaged_batches_say_so() {
        let events = [full(), minimal()];
        let good = batch_of(&events);
        for cut in 1..good.len() {
            let read: Vec<_> = super::events(&good[..cut]).collect();
            assert!(read.iter().any(Result::is_err), "cut at {cut}");
        }
        let mut longer = good.clone();
        longer.push(0);
        assert!(super::events(&longer).any(|r| r.is_err()));
        let mut more = good.clone();
        more[1] = 3; // says three events, holds two
        assert!(super::events(&more).any(|r| r.is_err()));
        // The first event's action byte (after version, count, length, 0xC1, time, flags).
        let mut bad_first = good;
        let len_bytes = 2; // the full event is over 127 bytes
        bad_first[BATCH_HEADER + len_bytes + 1 + 8 + 1] = 200;
        let read: Vec<_> = super::events(&bad_first).collect();
        assert_eq!(read.len(), 2);
        assert!(read[0].is_err());
        assert_eq!(
            read[1].as_ref().unwrap(),
            &serde_json::from_str::<Event>(&minimal().to_json_line()).unwrap()
        );
        // A batch may only hold compact events.
        let mut b = Batch::default();
        b.push(&encode(&minimal(), Encoding::Json));
        assert!(super::events(b.payload()).next().unwrap().is_err());
    }

    #[test]
    fn the_batch_byte_never_starts_json() {
        assert!(serde_json::from_slice::<serde_json::Value>(&[BATCH_V1]).is_err());
        assert!(!BATCH_V1.is_ascii());
        assert_ne!(BATCH_V1, COMPACT_V1);
    }

    #[test]
    fn batched_is_the_default_and_every_name_parses() {
        assert_eq!(Encoding::default(), Encoding::Batched);
        for (name, e) in [
            ("json", Encoding::Json),
            ("compact", Encoding::Compact),
            ("batched", Encoding::Batched),
        ] {
            let v: Encoding = serde_json::from_str(&format!("\"{name}\"")).unwrap();
            assert_eq!(v, e);
        }
    }
}
