//! The reorder buffer and watermark. Events wait here until no source can still deliver
//! an earlier one (within the allowed lateness), then leave in total order.

use crate::event::Event;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::binary_heap::PeekMut;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};

/// Total order of events: event time, then source, file and offset, then arrival.
///
/// The event is boxed: a heap pop moves entries along a path of the heap, and moving a
/// pointer instead of a whole event (a few hundred bytes) took `memmove` out of the
/// engine thread's profile. The event time in milliseconds is kept beside it: turning a
/// `DateTime` into milliseconds takes a calendar computation, and `run`'s reorder buffer
/// (holding the sources that are ahead until the slowest catches up) compared events
/// often enough for that to be a tenth of its time. Serialised as before (`seq`,
/// `event`), so snapshots do not change.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(from = "QueuedRepr")]
pub struct Queued {
    #[serde(skip_serializing)]
    ts: i64,
    pub seq: u64,
    pub event: Box<Event>,
}

/// How a [`Queued`] is stored in a snapshot.
#[derive(Deserialize)]
struct QueuedRepr {
    seq: u64,
    event: Box<Event>,
}

impl From<QueuedRepr> for Queued {
    fn from(r: QueuedRepr) -> Queued {
        Queued::new(r.seq, r.event)
    }
}

impl Queued {
    fn new(seq: u64, event: Box<Event>) -> Queued {
        Queued {
            ts: event.ts.timestamp_millis(),
            seq,
            event,
        }
    }
}

/// What orders events after their time: source, file, offset.
fn tie_key(e: &Event) -> (&str, &str, u64) {
    let (file, offset) = e.origin.as_ref().map_or(("", 0), |o| (&*o.file, o.offset));
    (e.source.as_str(), file, offset)
}

/// Compares two events in the engine's total order.
pub fn order(a: &Event, b: &Event) -> Ordering {
    order_at(a.ts.timestamp_millis(), a, b.ts.timestamp_millis(), b)
}

/// [`order`] for events whose times in milliseconds are known already.
///
/// Inlined into the heaps that order events (here and `replay`'s merge of files), with
/// the comparison of names for events of the same millisecond kept apart: nearly every
/// comparison is settled by the times, and as one function the whole comparison saved
/// and restored registers for every call, about as much as it compared.
#[inline]
pub fn order_at(a_ts: i64, a: &Event, b_ts: i64, b: &Event) -> Ordering {
    match a_ts.cmp(&b_ts) {
        Ordering::Equal => tie_order(a, b),
        o => o,
    }
}

#[inline(never)]
fn tie_order(a: &Event, b: &Event) -> Ordering {
    tie_key(a).cmp(&tie_key(b))
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        // BinaryHeap is a max-heap: reverse so the earliest event is on top.
        order_at(other.ts, &other.event, self.ts, &self.event).then(other.seq.cmp(&self.seq))
    }
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct SourceClock {
    /// Latest event time seen from the source (epoch ms).
    pub max_ts: Option<i64>,
    pub idle: bool,
}

/// Events waiting, in two parts: a run in total order, and a heap for the rest.
///
/// Events nearly always arrive in order (`replay` merges its files in the engine's
/// order; a live source writes its lines in time order), and such an event only joins
/// the back of the run: one comparison, where a heap took a comparison per level to push
/// and two per level to pop, a few per cent of the engine's time. An event earlier than
/// the run's last goes to the heap; the next event out is the earlier of the two fronts.
/// Both give the same order, and in snapshots both are one list, as the heap was.
#[derive(Debug, Default)]
struct Waiting {
    run: VecDeque<Queued>,
    heap: BinaryHeap<Queued>,
}

impl Waiting {
    fn len(&self) -> usize {
        self.run.len() + self.heap.len()
    }

    fn is_empty(&self) -> bool {
        self.run.is_empty() && self.heap.is_empty()
    }

    fn push(&mut self, q: Queued) {
        // `Queued` orders the earliest greatest (for the max-heap).
        if self.run.back().is_none_or(|last| *last > q) {
            self.run.push_back(q);
        } else {
            self.heap.push(q);
        }
    }

    /// Takes the earliest event if it is at or before `wm` (event time, ms).
    fn pop_until(&mut self, wm: i64) -> Option<Queued> {
        let from_heap = match (self.run.front(), self.heap.peek()) {
            (Some(r), Some(h)) => h > r,
            (r, _) => r.is_none(),
        };
        if from_heap {
            let top = self.heap.peek_mut()?;
            (top.ts <= wm).then(|| PeekMut::pop(top))
        } else if self.run.front()?.ts <= wm {
            self.run.pop_front()
        } else {
            None
        }
    }
}

impl Serialize for Waiting {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.run.iter().chain(self.heap.iter()))
    }
}

impl<'de> Deserialize<'de> for Waiting {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Waiting, D::Error> {
        let mut all = Vec::<Queued>::deserialize(d)?;
        // Earliest first, so that the run takes them all.
        all.sort_unstable_by(|a, b| b.cmp(a));
        Ok(Waiting {
            run: all.into(),
            heap: BinaryHeap::new(),
        })
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ReorderBuffer {
    /// Named `heap` in snapshots, as when it was one.
    #[serde(rename = "heap")]
    waiting: Waiting,
    sources: BTreeMap<String, SourceClock>,
    seq: u64,
    /// Event time (ms) of the last event applied.
    applied_to: Option<i64>,
    /// Input is one stream already merged in event-time order (`replay`): the watermark
    /// follows the latest event seen, whatever source it came from.
    merged: bool,
    /// The latest event time (ms) of any source, kept as events arrive so that a merged
    /// input's watermark does not walk every source for every event. Not in snapshots:
    /// `None` until the first event after a restore, and then worked out from `sources`.
    #[serde(skip)]
    latest: Option<i64>,
}

impl ReorderBuffer {
    pub fn add_source(&mut self, name: &str) {
        self.sources.entry(name.to_string()).or_default();
    }

    pub fn set_merged(&mut self, merged: bool) {
        self.merged = merged;
    }

    pub fn is_merged(&self) -> bool {
        self.merged
    }

    pub fn set_idle(&mut self, name: &str, idle: bool) {
        self.sources.entry(name.to_string()).or_default().idle = idle;
    }

    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// True when every source known is idle (caught up and quiet): nothing earlier than
    /// what has arrived is on its way, so time may pass without events.
    pub fn all_idle(&self) -> bool {
        self.sources.values().all(|c| c.idle)
    }

    /// True when the source is known (registered or seen).
    pub fn knows(&self, name: &str) -> bool {
        self.sources.contains_key(name)
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    pub fn approx_bytes(&self) -> usize {
        self.waiting.len() * 320
    }

    /// True when the event is older than what was already applied: it will be applied
    /// out of order.
    pub fn is_late(&self, e: &Event) -> bool {
        self.applied_to.is_some_and(|t| e.ts.timestamp_millis() < t)
    }

    pub fn push(&mut self, event: Event) {
        self.push_boxed(Box::new(event));
    }

    /// [`ReorderBuffer::push`] for an event boxed already; returns whether it is late
    /// ([`ReorderBuffer::is_late`]). The event's time in milliseconds, a calendar
    /// computation, is worked out once here for that, its source's clock and its place
    /// in the order: asking `is_late` first and making the [`Queued`] worked it out three
    /// times per event.
    pub fn push_boxed(&mut self, event: Box<Event>) -> bool {
        let ts = event.ts.timestamp_millis();
        let late = self.applied_to.is_some_and(|t| ts < t);
        // Looked up before inserting: the source is nearly always known, and an entry()
        // call would copy its name for every event.
        let clock = match self.sources.get_mut(&event.source) {
            Some(c) => c,
            None => self.sources.entry(event.source.clone()).or_default(),
        };
        clock.max_ts = Some(clock.max_ts.map_or(ts, |m| m.max(ts)));
        clock.idle = false;
        let latest = self.latest.or_else(|| self.latest_of_sources());
        self.latest = Some(latest.map_or(ts, |m| m.max(ts)));
        self.seq += 1;
        self.waiting.push(Queued {
            ts,
            seq: self.seq,
            event,
        });
        late
    }

    fn latest_of_sources(&self) -> Option<i64> {
        self.sources.values().filter_map(|c| c.max_ts).max()
    }

    /// The slowest active source's latest event time, less the allowed lateness. Sources
    /// that have sent nothing yet hold it at the beginning of time unless idle.
    pub fn watermark(&self, lateness_secs: i64) -> i64 {
        if self.merged {
            let max = self.latest.or_else(|| self.latest_of_sources());
            return max.map_or(i64::MIN, |m| m.saturating_sub(lateness_secs * 1000));
        }
        let active: Vec<Option<i64>> = self
            .sources
            .values()
            .filter(|c| !c.idle)
            .map(|c| c.max_ts)
            .collect();
        if active.is_empty() {
            // Every source is quiet: nothing earlier is on its way, release all.
            return self
                .sources
                .values()
                .filter_map(|c| c.max_ts)
                .max()
                .unwrap_or(i64::MIN);
        }
        let min = if active.iter().any(Option::is_none) {
            None
        } else {
            active.into_iter().flatten().min()
        };
        min.map_or(i64::MIN, |m| m.saturating_sub(lateness_secs * 1000))
    }

    /// Pops the earliest event if it is at or before the watermark `wm`. Still boxed:
    /// moving it out would copy a few hundred bytes per event for nothing.
    pub fn pop_until(&mut self, wm: i64) -> Option<Box<Event>> {
        let q = self.waiting.pop_until(wm)?;
        self.applied_to = Some(self.applied_to.map_or(q.ts, |t| t.max(q.ts)));
        Some(q.event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Action;
    use chrono::DateTime;

    fn ev(ts: &str, source: &str) -> Event {
        let mut e = Event::new(ts.parse().unwrap(), "u1", Action::View);
        e.source = source.to_string();
        e
    }

    /// A snapshot's buffer reads back in the same order, and stores no field of its own.
    #[test]
    fn snapshot_round_trip_keeps_the_order() {
        let mut b = ReorderBuffer::default();
        for (ts, src) in [
            ("2024-05-14T10:00:02Z", "b"),
            ("2024-05-14T10:00:01Z", "b"),
            ("2024-05-14T10:00:01Z", "a"),
        ] {
            b.push(ev(ts, src));
        }
        let json = serde_json::to_string(&b).unwrap();
        assert!(!json.contains("\"ts\":1"), "{json}");
        let mut back: ReorderBuffer = serde_json::from_str(&json).unwrap();
        let mut got = Vec::new();
        while let Some(e) = back.pop_until(i64::MAX) {
            got.push(format!("{} {}", e.ts.timestamp(), e.source));
        }
        assert_eq!(got, ["1715680801 a", "1715680801 b", "1715680802 b"]);
    }

    /// Events in order, late ones among them, and ties: they leave in the total order
    /// (time, source, then arrival), whether they wait in the run or in the heap, and
    /// only those at or before the watermark.
    #[test]
    fn events_leave_in_total_order_however_they_arrive() {
        let mut b = ReorderBuffer::default();
        let mut want = Vec::new();
        for (i, s) in [0, 1, 1, 3, 2, 2, 5, 0, 4, 4, 6, 3].iter().enumerate() {
            let src = if i % 3 == 0 { "b" } else { "a" };
            b.push(ev(&format!("2024-05-14T10:00:0{s}Z"), src));
            want.push((*s, src.to_string(), i));
        }
        want.sort();
        let json = serde_json::to_string(&b).unwrap();
        let mut back: ReorderBuffer = serde_json::from_str(&json).unwrap();
        for buf in [&mut b, &mut back] {
            let wm = "2024-05-14T10:00:03Z"
                .parse::<DateTime<chrono::Utc>>()
                .unwrap()
                .timestamp_millis();
            let mut got = Vec::new();
            while let Some(e) = buf.pop_until(wm) {
                got.push((e.ts.timestamp() - 1715680800, e.source.clone()));
            }
            assert_eq!(buf.len(), 4);
            while let Some(e) = buf.pop_until(i64::MAX) {
                got.push((e.ts.timestamp() - 1715680800, e.source.clone()));
            }
            assert!(buf.is_empty());
            let want: Vec<(i64, String)> =
                want.iter().map(|(s, src, _)| (*s, src.clone())).collect();
            assert_eq!(got, want);
        }
    }
}
