//! Reads a topic back from the beginning, for tests that check what reached Kafka.

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use std::time::{Duration, Instant};

/// A message as JSON values: a JSON message as it is, a compact event or each event of
/// a batch as its canonical JSON (agents write batches by default, see `kafka::wire`).
fn as_json(payload: &[u8]) -> Vec<serde_json::Value> {
    use phiwatch::kafka::wire::{events, BATCH_V1, COMPACT_V1};
    if matches!(payload.first(), Some(&COMPACT_V1 | &BATCH_V1)) {
        return events(payload)
            .map(|e| serde_json::to_value(e.unwrap()).unwrap())
            .collect();
    }
    vec![serde_json::from_slice(payload).unwrap()]
}

/// Every message of `topic` (its `partitions`) as JSON (see [`as_json`]), agents' heartbeats left out: waits
/// for at least `want`, then 2 s more so that a duplicate has its chance to show; gives up
/// after 30 s.
pub fn read_all(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    want: usize,
) -> Vec<serde_json::Value> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "phiwatch-test-reader")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut quiet_since = None;
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                for v in as_json(m.payload().unwrap()) {
                    if v.get("heartbeat").is_none() {
                        got.push(v);
                        quiet_since = None;
                    }
                }
            }
            Some(Err(e)) => panic!("consume error on {topic}: {e}"),
            None if got.len() >= want => {
                let t = *quiet_since.get_or_insert_with(Instant::now);
                if t.elapsed() > Duration::from_secs(2) {
                    break;
                }
            }
            None => {}
        }
    }
    got
}
