//! Kafka: how events and alerts travel between hosts.
//!
//! - this file: the `[kafka]` table turned into a librdkafka client configuration, checked
//!   before use, and (with `phiwatch check --connect`) tried against the brokers;
//! - [`spool`] and [`producer`]: the agent's durable way to the events topic;
//! - [`consumer`]: the engine's per-partition state, handed over on rebalances;
//! - [`lease`]: which engine holds which partition, and what to do about orphans;
//! - [`wire`]: how events are encoded on `events_topic` (compact or JSON; engines read both).
//!
//! The `kafka` alert sink is a sink like the others (`sink::kafka`).
//!
//! Friendly keys cover what hospitals need (TLS with a CA and client certificate, SASL
//! PLAIN or SCRAM); `[kafka.properties]` passes any librdkafka property through and wins
//! over the friendly keys.

pub mod consumer;
pub mod lease;
pub mod producer;
pub mod spool;
pub mod stall;
pub mod wire;

use crate::config::KafkaConfig;
use anyhow::{anyhow, bail, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;
use std::time::Duration;

const MECHANISMS: [&str; 3] = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

/// Problems with the `[kafka]` table, each with what to do.
pub fn validate(k: &KafkaConfig) -> Vec<String> {
    let mut p = Vec::new();
    if k.brokers.trim().is_empty() {
        p.push("[kafka] brokers is empty; list host:port of at least one broker".into());
    }
    for (name, t) in [
        ("events_topic", &k.events_topic),
        ("alerts_topic", &k.alerts_topic),
    ] {
        if t.is_empty()
            || t.len() > 249
            || !t
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            p.push(format!(
                "[kafka] {name} = {t:?} is not a valid topic name (letters, digits, . _ -)"
            ));
        }
    }
    if k.spool_max_bytes < 1 << 20 {
        p.push(format!(
            "[kafka] spool_max_bytes = {} is too small; give the agent's spool at least 1 MiB (default 1 GiB)",
            k.spool_max_bytes
        ));
    }
    if !(6..=3600).contains(&k.session_timeout_secs) {
        p.push(format!(
            "[kafka] session_timeout_secs = {} is out of range; use 6 to 3600 (brokers refuse less than 6 by default; default 45)",
            k.session_timeout_secs
        ));
    }
    if let Some(m) = &k.sasl_mechanism {
        if !MECHANISMS.contains(&m.to_ascii_uppercase().as_str()) {
            p.push(format!(
                "[kafka] sasl_mechanism = {m:?}; use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"
            ));
        }
        if k.username.is_none() || k.password_file.is_none() {
            p.push("[kafka] SASL needs `username` and `password_file`".into());
        }
    }
    if k.cert_file.is_some() != k.key_file.is_some() {
        p.push("[kafka] cert_file and key_file go together (TLS client authentication)".into());
    }
    for (name, f) in [
        ("ca_file", &k.ca_file),
        ("cert_file", &k.cert_file),
        ("key_file", &k.key_file),
        ("password_file", &k.password_file),
    ] {
        if let Some(f) = f {
            if !f.is_file() {
                p.push(format!("[kafka] {name} = {} does not exist", f.display()));
            }
        }
    }
    p
}

/// What in `[kafka]` works but exposes a secret: SASL PLAIN without TLS (the password
/// crosses the network in clear) and a password file other users can read.
pub fn warnings(k: &KafkaConfig) -> Vec<String> {
    let mut w = Vec::new();
    let prop = |key: &str| k.properties.get(key).map(|v| v.to_ascii_lowercase());
    let mechanism = prop("sasl.mechanism")
        .or_else(|| k.sasl_mechanism.as_ref().map(|m| m.to_ascii_lowercase()));
    let tls = k.ca_file.is_some() || k.cert_file.is_some();
    let protocol = prop("security.protocol").unwrap_or_else(|| {
        match (tls, k.sasl_mechanism.is_some()) {
            (true, true) => "sasl_ssl",
            (false, true) => "sasl_plaintext",
            (true, false) => "ssl",
            (false, false) => "plaintext",
        }
        .to_string()
    });
    if mechanism.as_deref() == Some("plain") && protocol != "sasl_ssl" {
        w.push(format!(
            "[kafka] SASL PLAIN over {protocol}: the password crosses the network in clear; \
             set `ca_file` so phiwatch uses sasl_ssl, or use SCRAM-SHA-512"
        ));
    }
    #[cfg(unix)]
    if let Some(f) = &k.password_file {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(m) = std::fs::metadata(f) {
            if m.permissions().mode() & 0o004 != 0 {
                w.push(format!(
                    "[kafka] password_file {} is readable by every user (mode {:o}); \
                     `chmod 0640` it (owner root, group phiwatch)",
                    f.display(),
                    m.permissions().mode() & 0o777
                ));
            }
        }
    }
    w
}

/// The librdkafka configuration of `[kafka]` (see `config::KafkaConfig::client_config`).
pub fn client_config(k: &KafkaConfig, tuned: &[(&str, String)]) -> Result<ClientConfig> {
    k.client_config(tuned)
}

/// Connects, fetches metadata and checks that both topics exist.
pub fn check_connection(k: &KafkaConfig) -> Result<Vec<String>> {
    let consumer: BaseConsumer = client_config(k, &[])?
        .set("group.id", format!("{}-check", k.group))
        .create()
        .map_err(|e| anyhow!("cannot create a Kafka client: {e}"))?;
    let md = consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .map_err(|e| anyhow!("cannot reach the Kafka brokers {:?}: {e}; check [kafka] brokers, TLS and SASL settings", k.brokers))?;
    let mut ok = vec![format!(
        "kafka: connected to {} broker(s)",
        md.brokers().len()
    )];
    for t in [&k.events_topic, &k.alerts_topic] {
        match md.topics().iter().find(|x| x.name() == t.as_str()) {
            Some(topic) if topic.error().is_none() => ok.push(format!(
                "kafka: topic {t} has {} partition(s)",
                topic.partitions().len()
            )),
            _ => bail!(
                "kafka: topic {t} does not exist; create it (see deploy/kafka/create-topics.sh)"
            ),
        }
    }
    Ok(ok)
}

#[cfg(test)]
mod warning_tests {
    use super::*;

    #[test]
    fn sasl_plain_without_tls_and_a_world_readable_password_file_warn() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "secret\n").unwrap();
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut k = KafkaConfig {
            sasl_mechanism: Some("PLAIN".into()),
            username: Some("phiwatch".into()),
            password_file: Some(pw.clone()),
            ..KafkaConfig::default()
        };
        let w = warnings(&k);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("SASL PLAIN over sasl_plaintext"), "{w:?}");
        assert!(w[1].contains("readable by every user (mode 644)"), "{w:?}");
        assert!(!w.iter().any(|l| l.contains("secret\n")));
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o640)).unwrap();
        k.ca_file = Some(dir.path().join("ca.pem"));
        assert!(warnings(&k).is_empty(), "{:?}", warnings(&k));
        k.sasl_mechanism = Some("SCRAM-SHA-512".into());
        k.ca_file = None;
        assert!(warnings(&k).is_empty());
        // Set through properties too.
        k.properties.insert("sasl.mechanism".into(), "PLAIN".into());
        assert_eq!(warnings(&k).len(), 1);
    }
}
