//! The engine's consumer-group glue: the consumer itself, subscribed to `events_topic`,
//! and the rebalance callback that lets the holder of a partition save it before the
//! group gives it to another engine. What a partition holds is the holder's business
//! (`daemon::partitions`).

use crate::config::KafkaConfig;
use crate::metrics;
use anyhow::{anyhow, Result};
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::{Offset, TopicPartitionList};
use std::sync::{Arc, Mutex, MutexGuard};
use tracing::{error, info, warn};

/// Whoever holds the partitions this consumer is assigned.
pub trait Holder: Send + 'static {
    /// Partition `p` is taken away: save it for its next owner and forget it. Returns the
    /// offset to commit (the next one to apply), when there is one.
    fn give_up(&mut self, p: i32) -> Result<Option<i64>>;
}

/// The consumer context: hands partitions over on a rebalance.
pub struct Handover<H> {
    holder: Arc<Mutex<H>>,
    topic: String,
}

impl<H: Holder> ClientContext for Handover<H> {}

impl<H: Holder> ConsumerContext for Handover<H> {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let mut holder = lock(&self.holder);
            for e in tpl.elements() {
                match holder.give_up(e.partition()) {
                    Ok(Some(next)) => commit(consumer, &self.topic, e.partition(), next),
                    Ok(None) => {}
                    Err(err) => {
                        error!(partition = e.partition(), error = %format!("{err:#}"), "handing over a partition failed; the next owner re-applies from its last snapshot")
                    }
                }
            }
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let ps: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                info!(partitions = ?ps, "partitions assigned");
            }
            Rebalance::Revoke(tpl) => {
                let ps: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                info!(partitions = ?ps, "partitions revoked");
            }
            Rebalance::Error(e) => warn!(error = %e, "rebalance error"),
        }
    }
}

/// Locks the holder. A panic while holding the lock leaves state that is still
/// snapshot-consistent, so a poisoned lock is taken as it is.
pub fn lock<H>(holder: &Mutex<H>) -> MutexGuard<'_, H> {
    holder.lock().unwrap_or_else(|p| p.into_inner())
}

/// Commits `next` for partition `p`, after the snapshot that covers everything before it.
/// A failed commit is counted and logged, not fatal: the snapshot covers the events and a
/// later redelivery is dropped by offset. Asynchronous: a broker that is gone never holds
/// up the engine's loop or its stop (an offset not committed is only redelivered).
pub fn commit<C: ConsumerContext>(consumer: &BaseConsumer<C>, topic: &str, p: i32, next: i64) {
    let mut tpl = TopicPartitionList::new();
    if let Err(e) = tpl.add_partition_offset(topic, p, Offset::Offset(next)) {
        warn!(partition = p, error = %e, "cannot name the offset to commit");
        return;
    }
    if let Err(e) = consumer.commit(&tpl, CommitMode::Async) {
        metrics::get().kafka_consume_errors.inc();
        warn!(partition = p, error = %e, "offset commit failed; the snapshot still covers the events");
    }
}

/// Creates the consumer, a member of `[kafka] group` subscribed to `events_topic`, whose
/// rebalances hand partitions over through `holder`.
pub fn subscribe<H: Holder>(
    k: &KafkaConfig,
    holder: &Arc<Mutex<H>>,
) -> Result<BaseConsumer<Handover<H>>> {
    let tuned = [
        ("partition.assignment.strategy", "range,roundrobin".into()),
        (
            "session.timeout.ms",
            (k.session_timeout_secs * 1000).to_string(),
        ),
        // librdkafka waits up to 500 ms for data by default; a broker that holds every
        // fetch that long puts half a second on each alert (benches/kafka_latency.py).
        ("fetch.wait.max.ms", "100".into()),
    ];
    let consumer: BaseConsumer<Handover<H>> = super::client_config(k, &tuned)?
        .set("group.id", &k.group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .create_with_context(Handover {
            holder: Arc::clone(holder),
            topic: k.events_topic.clone(),
        })
        .map_err(|e| anyhow!("cannot create the Kafka consumer: {e}"))?;
    consumer
        .subscribe(&[&k.events_topic])
        .map_err(|e| anyhow!("cannot subscribe to {}: {e}", k.events_topic))?;
    Ok(consumer)
}
