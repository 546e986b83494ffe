//! `kafka` sink: alerts to a topic (default `[kafka] alerts_topic`), keyed by user so one
//! user's alerts stay in order on one partition.
//!
//! Delivery: at least once. Each alert is produced and flushed until the broker
//! acknowledges it (`acks=all`, idempotent producer); a failure is returned to the queue
//! worker, which retries with backoff, so a broker outage delays alerts and loses none.

use super::{Keys, Sink};
use crate::alert::Alert;
use crate::config::Config;
use anyhow::{anyhow, Result};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct KafkaSinkConfig {
    pub topic: String,
    pub client: ClientConfig,
    pub timeout: Duration,
}

impl KafkaSinkConfig {
    /// Keys: `topic` (default `[kafka] alerts_topic`), `timeout_secs` (default 30);
    /// brokers, TLS and SASL come from `[kafka]`.
    pub fn from_keys(cfg: &Config, keys: &mut Keys) -> Result<KafkaSinkConfig> {
        let topic = keys
            .string("topic")?
            .unwrap_or_else(|| cfg.kafka.alerts_topic.clone());
        let timeout = Duration::from_secs(keys.u64("timeout_secs")?.unwrap_or(30).max(1));
        let mut client =
            crate::kafka::client_config(&cfg.kafka, &[("compression.type", "lz4".into())])?;
        client
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set(
                "message.timeout.ms",
                (timeout.as_millis() as u64).to_string(),
            );
        Ok(KafkaSinkConfig {
            topic,
            client,
            timeout,
        })
    }
}

pub struct KafkaSink {
    cfg: KafkaSinkConfig,
    producer: BaseProducer,
}

impl KafkaSink {
    pub fn new(cfg: KafkaSinkConfig) -> Result<KafkaSink> {
        let producer: BaseProducer = cfg
            .client
            .create()
            .map_err(|e| anyhow!("cannot create the Kafka producer: {e}"))?;
        Ok(KafkaSink { cfg, producer })
    }

    fn produce(&mut self, key: &str, line: &str) -> Result<()> {
        // Errors are counted by the sink's queue (`phiwatch_sink_errors_total`).
        self.producer
            .send(BaseRecord::to(&self.cfg.topic).key(key).payload(line))
            .map_err(|(e, _)| anyhow!("kafka produce to {}: {e}", self.cfg.topic))?;
        self.producer
            .flush(self.cfg.timeout)
            .map_err(|e| anyhow!("kafka did not acknowledge the alert: {e}"))
    }
}

impl Sink for KafkaSink {
    fn send(&mut self, line: &str) -> Result<()> {
        self.produce("", line)
    }

    fn send_alert(&mut self, alert: &Alert, line: &str) -> Result<()> {
        self.produce(&crate::event::key(&alert.user), line)
    }

    fn flush(&mut self) -> Result<()> {
        self.producer
            .flush(self.cfg.timeout)
            .map_err(|e| anyhow!("kafka flush: {e}"))
    }
}
