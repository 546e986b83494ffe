//! `kafka` sink: alerts to a topic (default `[kafka] alerts_topic`), keyed by user so one
//! user's alerts stay in order on one partition.
//!
//! Delivery: at least once. Each alert is produced and flushed until the broker
//! acknowledges it (`acks=all`, idempotent producer); a failure is returned to the queue
//! worker, which retries with backoff, so a broker outage delays alerts and loses none.

use super::PatientIds;
use super::{Sink, SinkKind, Target};
use crate::alert::Alert;
use crate::format::Formatter;
use anyhow::{anyhow, Result};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;
use serde::Deserialize;
use std::time::Duration;

/// The keys of a `kafka` sink: `topic` (default `[kafka] alerts_topic`), `timeout_secs`
/// (default 30); brokers, TLS and SASL come from `[kafka]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct KafkaSinkConfig {
    pub topic: Option<String>,
    pub timeout_secs: u64,
}

impl Default for KafkaSinkConfig {
    fn default() -> Self {
        KafkaSinkConfig {
            topic: None,
            timeout_secs: 30,
        }
    }
}

impl SinkKind for KafkaSinkConfig {
    const TYPE: &'static str = "kafka";
    const PATIENT_IDS: PatientIds = PatientIds::Pseudonymised;

    fn target(&self, ctx: &super::Context) -> Result<Box<dyn Target>> {
        Ok(Box::new(KafkaProducerConfig::new(self, ctx.cfg)?))
    }
}

/// What a [`KafkaSink`] produces with.
#[derive(Debug, Clone)]
pub struct KafkaProducerConfig {
    pub topic: String,
    pub client: ClientConfig,
    pub timeout: Duration,
}

impl KafkaProducerConfig {
    pub fn new(
        settings: &KafkaSinkConfig,
        env: &dyn super::SinkEnv,
    ) -> Result<KafkaProducerConfig> {
        let (mut client, alerts_topic) = env.kafka_client(&[("compression.type", "lz4".into())])?;
        let topic = settings.topic.clone().unwrap_or(alerts_topic);
        let timeout = Duration::from_secs(settings.timeout_secs.max(1));
        client
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set(
                "message.timeout.ms",
                (timeout.as_millis() as u64).to_string(),
            );
        Ok(KafkaProducerConfig {
            topic,
            client,
            timeout,
        })
    }
}

impl Target for KafkaProducerConfig {
    fn open(&self, _: &Formatter) -> Result<Box<dyn Sink>> {
        Ok(Box::new(KafkaSink::new(self.clone())?))
    }
}

pub struct KafkaSink {
    cfg: KafkaProducerConfig,
    producer: BaseProducer,
}

impl KafkaSink {
    pub fn new(cfg: KafkaProducerConfig) -> Result<KafkaSink> {
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
