//! Agent, engine and the kafka sink against a real broker (tansu) as child processes.
//! Faults injected in-process with librdkafka's mock cluster are in `tests/kafka_mock.rs`,
//! a binary of its own.

mod e2e;
mod sink;
