//! phiwatch: insider-leak detection for hospital EHR audit logs.
//!
//! Data flows one way: source -> parse -> canonical event -> enrich -> detect -> alert ->
//! sink. Each module below is one of those stages and knows only the one before it.

pub mod alert;
pub mod cli;
pub mod config;
pub mod deadletter;
pub mod detect;
pub mod engine;
pub mod enrich;
pub mod event;
pub mod format;
pub mod kafka;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod parse;
pub mod phi;
pub mod pipeline;
pub mod pseudonym;
pub mod reference;
pub mod report;
pub mod score;
pub mod signals;
pub mod simulate;
pub mod sink;
pub mod source;
pub mod spool;
pub mod uid;
