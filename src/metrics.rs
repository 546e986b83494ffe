//! Prometheus metrics: every series phiwatch exports, in one registry. The listener that
//! serves them is `daemon::health`. This module imports no other stage: the stages count
//! into it, and what a sink counts on its own is copied in by the daemon.
//!
//! Labels are source names, reject reasons, detector ids, severities, sink names and
//! reference table names: never a user or patient identifier, so a scrape can leave the
//! hospital's PHI boundary. Hot paths count per batch, not per event.

use prometheus::{
    Encoder, Gauge, GaugeVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// Every metric phiwatch exports.
pub struct Metrics {
    pub registry: Registry,
    pub lines_read: IntCounterVec,
    pub bytes_read: IntCounterVec,
    pub events_rejected: IntCounterVec,
    pub events_processed: IntCounterVec,
    pub events_late: IntCounterVec,
    pub events_duplicate: IntCounter,
    pub kafka_events_produced: IntCounter,
    pub spool_full: IntGauge,
    pub spool_recoveries: IntCounter,
    pub alerts: IntCounterVec,
    pub ingest_lag_seconds: GaugeVec,
    pub checkpoint_age_seconds: GaugeVec,
    pub truncations_unrecovered: IntCounterVec,
    pub snapshot_timestamp_seconds: Gauge,
    pub kafka_produce_errors: IntCounter,
    pub kafka_consume_errors: IntCounter,
    pub partitions_unowned: IntGauge,
    pub group_rejoins: IntCounter,
    pub fetch_stalls: IntCounter,
    pub spool_bytes: IntGauge,
    pub spool_capacity_bytes: IntGauge,
    pub sink_queue_depth: IntGaugeVec,
    pub sink_sent: IntCounterVec,
    pub sink_unconfirmed: IntCounterVec,
    pub sink_errors: IntCounterVec,
    pub sink_retries: IntCounterVec,
    pub sink_dropped: IntCounterVec,
    pub sink_failed: IntCounterVec,
    pub reference_rows: IntGaugeVec,
    pub events_ignored: IntCounterVec,
    pub reference_rows_rejected: IntGaugeVec,
    pub reference_reload_timestamp_seconds: Gauge,
    pub reference_reload_errors: IntCounter,
    pub detector_reload_errors: IntCounter,
    pub detectors: IntGauge,
    pub state_users: IntGauge,
    pub state_bytes: IntGauge,
    pub reorder_buffer_events: IntGauge,
    pub up: IntGauge,
    pub build_info: IntGaugeVec,
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(c.clone())).expect("registers once");
    c
}

fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    let c = GaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(c.clone())).expect("registers once");
    c
}

fn int_gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let c = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(c.clone())).expect("registers once");
    c
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric");
    r.register(Box::new(c.clone())).expect("registers once");
    c
}

fn gauge(r: &Registry, name: &str, help: &str) -> Gauge {
    let c = Gauge::new(name, help).expect("valid metric");
    r.register(Box::new(c.clone())).expect("registers once");
    c
}

fn int_gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let c = IntGauge::new(name, help).expect("valid metric");
    r.register(Box::new(c.clone())).expect("registers once");
    c
}

impl Metrics {
    fn new() -> Metrics {
        let r = Registry::new();
        #[cfg(target_os = "linux")]
        {
            let pc = prometheus::process_collector::ProcessCollector::for_self();
            let _ = r.register(Box::new(pc));
        }
        Metrics {
            lines_read: counter_vec(
                &r,
                "phiwatch_lines_read_total",
                "Input lines read, by source.",
                &["source"],
            ),
            bytes_read: counter_vec(
                &r,
                "phiwatch_bytes_read_total",
                "Input bytes read, by source.",
                &["source"],
            ),
            events_rejected: counter_vec(
                &r,
                "phiwatch_events_rejected_total",
                "Input lines rejected (written to the dead-letter file), by source and reason.",
                &["source", "reason"],
            ),
            events_processed: counter_vec(
                &r,
                "phiwatch_events_processed_total",
                "Events handed to the engine, by source.",
                &["source"],
            ),
            events_late: counter_vec(
                &r,
                "phiwatch_events_late_total",
                "Events that arrived after the watermark had passed their time, by source.",
                &["source"],
            ),
            events_duplicate: counter(
                &r,
                "phiwatch_events_duplicate_total",
                "Events the engine received again (redelivery, or an agent re-sending after a crash) and dropped.",
            ),
            kafka_events_produced: counter(
                &r,
                "phiwatch_kafka_events_produced_total",
                "Events the agent produced and Kafka acknowledged.",
            ),
            spool_full: int_gauge(
                &r,
                "phiwatch_spool_full",
                "1 while the agent's disk spool is full and reading is paused (backpressure).",
            ),
            spool_recoveries: counter(
                &r,
                "phiwatch_spool_recoveries_total",
                "Times the agent found its spool damaged at start and cut it back to the last intact batch.",
            ),
            alerts: counter_vec(
                &r,
                "phiwatch_alerts_total",
                "Alerts written, by detector and severity.",
                &["detector", "severity"],
            ),
            ingest_lag_seconds: gauge_vec(
                &r,
                "phiwatch_ingest_lag_seconds",
                "Wall clock minus the event time of the latest event read, by source.",
                &["source"],
            ),
            truncations_unrecovered: counter_vec(
                &r,
                "phiwatch_truncations_unrecovered_total",
                "Files found truncated (copytruncate) at a start with no copy of them next to them: their lines written after the last checkpoint are lost. By source.",
                &["source"],
            ),
            checkpoint_age_seconds: gauge_vec(
                &r,
                "phiwatch_checkpoint_age_seconds",
                "Seconds since the source's read position was last checkpointed.",
                &["source"],
            ),
            snapshot_timestamp_seconds: gauge(
                &r,
                "phiwatch_snapshot_timestamp_seconds",
                "When engine state and positions were last snapshotted (Unix time).",
            ),
            kafka_produce_errors: counter(
                &r,
                "phiwatch_kafka_produce_errors_total",
                "Kafka produce errors (agent).",
            ),
            kafka_consume_errors: counter(
                &r,
                "phiwatch_kafka_consume_errors_total",
                "Kafka consume errors (engine).",
            ),
            partitions_unowned: int_gauge(
                &r,
                "phiwatch_engine_partitions_unowned",
                "Partitions of the events topic that no live engine holds (engine leases); their events are not being read.",
            ),
            group_rejoins: counter(
                &r,
                "phiwatch_engine_group_rejoins_total",
                "Times this engine left and rejoined the consumer group: a partition had no owner for orphan_rejoin_secs, or one of its own stayed silent after its fetch was restarted.",
            ),
            fetch_stalls: counter(
                &r,
                "phiwatch_engine_fetch_stalls_total",
                "Times a partition assigned to this engine delivered nothing for 20 s while its others did (its fetch is then restarted; see kafka::stall).",
            ),
            spool_bytes: int_gauge(
                &r,
                "phiwatch_spool_bytes",
                "Bytes waiting in the agent's disk spool.",
            ),
            spool_capacity_bytes: int_gauge(
                &r,
                "phiwatch_spool_capacity_bytes",
                "Size limit of the agent's disk spool.",
            ),
            sink_queue_depth: int_gauge_vec(
                &r,
                "phiwatch_sink_queue_depth",
                "Alerts waiting for a sink.",
                &["sink"],
            ),
            sink_sent: counter_vec(
                &r,
                "phiwatch_sink_sent_total",
                "Alerts delivered (acknowledged, or written to a file or TCP/TLS socket), by sink.",
                &["sink"],
            ),
            sink_unconfirmed: counter_vec(
                &r,
                "phiwatch_sink_unconfirmed_total",
                "Alerts handed to a transport that cannot confirm delivery (UDP syslog), by sink; not counted as sent.",
                &["sink"],
            ),
            sink_errors: counter_vec(
                &r,
                "phiwatch_sink_errors_total",
                "Failed delivery attempts, by sink.",
                &["sink"],
            ),
            sink_retries: counter_vec(
                &r,
                "phiwatch_sink_retries_total",
                "Delivery retries, by sink.",
                &["sink"],
            ),
            sink_dropped: counter_vec(
                &r,
                "phiwatch_sink_dropped_total",
                "Alerts dropped on a full queue (overflow = \"drop\"), by sink.",
                &["sink"],
            ),
            sink_failed: counter_vec(
                &r,
                "phiwatch_sink_failed_total",
                "Alerts given up on (permanent error, or undelivered at shutdown), by sink.",
                &["sink"],
            ),
            events_ignored: counter_vec(
                &r,
                "phiwatch_events_ignored_total",
                "Well-formed records that are not a person's access to patient data (application activity, audit log use, ...), by source and kind; not in the dead-letter file.",
                &["source", "kind"],
            ),
            reference_rows_rejected: int_gauge_vec(
                &r,
                "phiwatch_reference_rows_rejected",
                "Rows of reference data set aside at the last load (bad rows), by table.",
                &["table"],
            ),
            reference_rows: int_gauge_vec(
                &r,
                "phiwatch_reference_rows",
                "Rows of reference data loaded, by table.",
                &["table"],
            ),
            reference_reload_timestamp_seconds: gauge(
                &r,
                "phiwatch_reference_reload_timestamp_seconds",
                "When reference data was last loaded (Unix time).",
            ),
            reference_reload_errors: counter(
                &r,
                "phiwatch_reference_reload_errors_total",
                "Reference data reloads that failed (the previous data stayed in service).",
            ),
            detectors: int_gauge(
                &r,
                "phiwatch_detectors",
                "Detectors in service (after start and after every reload).",
            ),
            detector_reload_errors: counter(
                &r,
                "phiwatch_detector_reload_errors_total",
                "Detector reloads (SIGHUP) that failed (the previous detectors stayed in service).",
            ),
            state_users: int_gauge(
                &r,
                "phiwatch_state_users",
                "Users whose state the engine keeps.",
            ),
            state_bytes: int_gauge(
                &r,
                "phiwatch_state_bytes",
                "Approximate bytes of engine state.",
            ),
            reorder_buffer_events: int_gauge(
                &r,
                "phiwatch_reorder_buffer_events",
                "Events waiting for the watermark.",
            ),
            up: int_gauge(&r, "phiwatch_up", "1 while the pipeline runs."),
            build_info: {
                let g = int_gauge_vec(
                    &r,
                    "phiwatch_build_info",
                    "Always 1; the labels say which phiwatch runs.",
                    &["version", "os", "arch"],
                );
                g.with_label_values(&[
                    env!("CARGO_PKG_VERSION"),
                    std::env::consts::OS,
                    std::env::consts::ARCH,
                ])
                .set(1);
                g
            },
            registry: r,
        }
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let enc = TextEncoder::new();
        let _ = enc.encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }

    /// Creates the series of a source up front, so dashboards show zeros, not gaps.
    pub fn register_source(&self, source: &str) {
        self.lines_read.with_label_values(&[source]);
        self.bytes_read.with_label_values(&[source]);
        self.events_processed.with_label_values(&[source]);
        self.events_late.with_label_values(&[source]);
        self.ingest_lag_seconds.with_label_values(&[source]);
        self.checkpoint_age_seconds.with_label_values(&[source]);
        self.truncations_unrecovered.with_label_values(&[source]);
        for reason in crate::parse::reason::ALL {
            self.events_rejected.with_label_values(&[source, reason]);
        }
        self.events_rejected
            .with_label_values(&[source, "line_too_long"]);
        for kind in crate::parse::ignored::ALL {
            self.events_ignored.with_label_values(&[source, kind]);
        }
    }

    /// Creates the alert series of a detector up front.
    pub fn register_detector(&self, id: &str, severity: crate::alert::Severity) {
        self.alerts.with_label_values(&[id, severity.as_str()]);
    }
}

/// The process-wide metrics.
pub fn get() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(Metrics::new)
}

/// Unix time now, in seconds.
pub fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
