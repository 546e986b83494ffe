//! How an agent's events travel on `events_topic`, and how the engine reads them.
//!
//! Two encodings, chosen on the agent by `[kafka] event_encoding`:
//!
//! - `json`: the canonical event as one JSON text (`Event::to_json_line`), what every
//!   agent wrote before the compact encoding existed;
//! - `compact` (the default): a version byte, [`COMPACT_V1`], then the event's fields in
//!   a fixed order, lengths and numbers as LEB128 varints. Decoding it is a few bounds
//!   checks and copies, where JSON cost the engine a scan for escapes and a match on
//!   every field name; encoding it spares the agent a formatter.
//!
//! The engine needs no setting: it reads both, message by message, from the first byte.
//! A JSON text starts with `{` (or white space), never with [`COMPACT_V1`], so a topic may
//! hold both, as it does during a rolling upgrade or when an old agent's spool drains.
//! Engines older than the compact encoding skip compact messages (counted as
//! `not_canonical_event`): upgrade engines before agents, or keep agents on
//! `event_encoding = "json"` until every engine is upgraded.
//!
//! Both encodings carry exactly what the JSON contract carries, times in whole
//! milliseconds included, so an event reads back the same either way (see the tests) and
//! gives the same alerts.
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
//! A later version takes a new first byte; this decoder refuses bytes it does not know.

use crate::event::{Action, Event, Media, Outcome, PhiMarkers, Provenance};
use chrono::DateTime;
use serde::{Deserialize, Serialize};

/// First byte of a version-1 compact event. Not a byte a JSON text can start with.
pub const COMPACT_V1: u8 = 0xC1;

/// How the agent writes events (`[kafka] event_encoding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// The canonical JSON line, readable by every engine version.
    Json,
    /// The versioned binary form; engines from this version on read it.
    #[default]
    Compact,
}

const PATIENT: u8 = 1;
const BYTES: u8 = 1 << 1;
const PATH: u8 = 1 << 2;
const MEDIA: u8 = 1 << 3;
const HOST: u8 = 1 << 4;
const PURPOSE: u8 = 1 << 5;
const PHI: u8 = 1 << 6;
const ORIGIN: u8 = 1 << 7;

/// The message payload of one event in `encoding`.
pub fn encode(e: &Event, encoding: Encoding) -> Vec<u8> {
    match encoding {
        Encoding::Json => e.to_json_line().into_bytes(),
        Encoding::Compact => encode_compact(e),
    }
}

/// Reads an event message of either encoding.
pub fn decode(payload: &[u8]) -> Result<Event, String> {
    match payload.first() {
        Some(&COMPACT_V1) => decode_compact(&payload[1..]),
        _ => serde_json::from_slice(payload).map_err(|e| e.to_string()),
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
            file: r.string()?,
            offset: r.varint()?,
            file_id: r.string()?,
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
}
