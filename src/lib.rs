//! phiwatch: insider-leak detection for hospital EHR audit logs.
//!
//! Data flows one way: source -> parse -> canonical event -> enrich -> detect -> alert ->
//! sink. Each module below is one of those stages and knows only the one before it.
//!
//! The top floor joins the stages: [`ingest`] turns a source's lines into canonical events
//! (one road for `replay`, `run` and `agent`), [`replay`] reads history once in order,
//! [`daemon`] is what the long-running commands share (state folder, snapshots, delivery,
//! reload, health, signals), [`kafka`] carries events and alerts between hosts, and
//! [`commands`] has one file per subcommand, each only wiring.

pub mod alert;
pub mod cli;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod deadletter;
pub mod detect;
pub mod durable;
pub mod engine;
pub mod enrich;
pub mod event;
pub mod format;
pub mod ingest;
pub mod kafka;
pub mod logging;
pub mod metrics;
pub mod parse;
pub mod phi;
pub mod pseudonym;
pub mod reference;
pub mod replay;
pub mod report;
pub mod score;
pub mod simulate;
pub mod sink;
pub mod source;
pub mod table;
pub mod uid;
