//! phiwatch's integration tests in one binary, a module per behaviour:
//!
//! - `ingest`: tailing files, parsing every input format, auditd, fswatch, the PHI sampler;
//! - `detection`: the crafted hospital replayed, export-then-copy in `run`, scoring, the
//!   simulator;
//! - `alerts`: alert formats (JSON, CEF, LEEF, ECS, OCSF, pseudonyms) and sinks (file,
//!   syslog, webhook);
//! - `daemon`: the command line, `run` against `replay`, reloads, operations (metrics,
//!   promtool, systemd, packaging);
//! - `kafka`: agent and engine through a real broker, the kafka sink.
//!
//! Helpers are in `support`, test data in `tests/fixtures/`. Tests run on parallel
//! threads of this one process: what they would share is listed in `support::serial`.
//! The in-process Kafka fault tests are a binary of their own (`tests/kafka_mock.rs`).

mod support;

mod alerts;
mod daemon;
mod detection;
mod ingest;
mod kafka;
