//! phiwatch: insider-leak detection for hospital EHR audit logs.
//!
//! Data flows one way: source -> parse -> canonical event -> enrich -> detect -> alert ->
//! sink. Each module below is one of those stages and knows only the one before it.

pub mod alert;
pub mod config;
pub mod event;
pub mod parse;
pub mod report;
pub mod score;
pub mod simulate;
pub mod source;
