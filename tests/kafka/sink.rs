//! The kafka alert sink and `check --connect` against a real broker (tansu): every alert
//! of a run reaches the alerts topic, keyed by user, with patient ids pseudonymised.

use crate::support::hospital::{engine_setting, write_hospital, EXPECTED};
use crate::support::process::{check, start_run_quiet};
use crate::support::tansu;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

#[test]
fn alerts_reach_the_topic_and_check_connect_sees_the_topics() {
    let Some(broker) = tansu::Broker::start() else {
        return;
    };
    broker.create_topic("phiwatch.events", 3);
    broker.create_topic("phiwatch.alerts", 1);
    let dir = tempfile::tempdir().unwrap();
    let config = write_hospital(dir.path());
    engine_setting(&config, "idle_source_secs = 1");
    let text = std::fs::read_to_string(&config).unwrap()
        + &format!(
            "\n[[sinks]]\ntype = \"kafka\"\n\n[kafka]\nbrokers = \"{}\"\n",
            broker.address()
        );
    std::fs::write(&config, text).unwrap();

    let (code, out) = check(&config, true);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("topic phiwatch.alerts"), "{out}");

    let mut run = start_run_quiet(&config);
    let want = EXPECTED.len();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.address())
        .set("group.id", "test-reader")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&["phiwatch.alerts"]).unwrap();
    let mut got: Vec<serde_json::Value> = Vec::new();
    let mut keys = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    while got.len() < want && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(500)) {
            keys.insert(String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned());
            got.push(serde_json::from_slice(m.payload().unwrap()).unwrap());
        }
    }
    run.signal("TERM");
    let _ = run.0.wait();
    assert_eq!(got.len(), want, "alerts on the topic: {got:#?}");
    let users: BTreeSet<String> = got
        .iter()
        .map(|a| a["user"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys, users, "messages are keyed by user");
    for a in &got {
        for p in a["patients"].as_array().unwrap() {
            assert!(
                p.as_str().unwrap().starts_with("pt-"),
                "patient id not pseudonymised: {a}"
            );
        }
    }

    // A topic that does not exist is a problem `check --connect` reports.
    let text = std::fs::read_to_string(&config).unwrap() + "alerts_topic = \"missing.topic\"\n";
    std::fs::write(&config, text).unwrap();
    let (code, out) = check(&config, true);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("missing.topic does not exist"), "{out}");
}
