//! Pipelines: how sources, parsers, the engine and sinks are joined for each command.
//! `replay` reads files once in event-time order; `run` follows them as a daemon.

pub mod agent;
pub mod check;
pub mod engine_node;
pub mod follow;
pub mod lines;
pub mod replay;
pub mod run;
