//! The kafka alert sink and `check --connect` against a real broker (tansu): every alert
//! of a run reaches the alerts topic, keyed by user, with patient ids pseudonymised.

mod common;
#[path = "support/tansu.rs"]
mod tansu;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message};
use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn phiwatch() -> Command {
    Command::new(env!("CARGO_BIN_EXE_phiwatch"))
}

#[test]
fn alerts_reach_the_topic_and_check_connect_sees_the_topics() {
    let Some(broker) = tansu::Broker::start() else {
        return;
    };
    broker.create_topic("phiwatch.events", 3);
    broker.create_topic("phiwatch.alerts", 1);
    let dir = tempfile::tempdir().unwrap();
    let config = common::write_hospital(dir.path());
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "learning_days = 7",
        "learning_days = 7\nidle_source_secs = 1",
    ) + &format!(
        "\n[[sinks]]\ntype = \"kafka\"\n\n[kafka]\nbrokers = \"{}\"\n",
        broker.address()
    );
    std::fs::write(&config, text).unwrap();

    let o = phiwatch()
        .args(["check", "--connect", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("topic phiwatch.alerts"), "{out}");

    let mut child = phiwatch()
        .args(["run", "--config"])
        .arg(&config)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let want = common::EXPECTED.len();
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
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let _ = child.wait();
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
    let o = phiwatch()
        .args(["check", "--connect", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("missing.topic does not exist"), "{out}");
}
