//! `json` is exactly the contract alert JSON.

use crate::support::alert::{sample, KEY};
use phiwatch::alert::Alert;
use phiwatch::config::AlertFormat;
use phiwatch::format;
use phiwatch::pseudonym::{pseudonymise, PatientPolicy, PseudonymKey};
use serde_json::Value;

#[test]
fn plain_json_is_the_contract_alert() {
    let a = sample();
    let line = format::render(&a, AlertFormat::Json, &PatientPolicy::Plain);
    assert!(!line.contains('\n'));
    let v: Value = serde_json::from_str(&line).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    let mut want = [
        "id",
        "ts",
        "detector",
        "severity",
        "score",
        "user",
        "patients",
        "summary",
        "reasons",
        "first_seen",
        "last_seen",
        "events",
    ];
    want.sort();
    let mut got = keys.clone();
    got.sort();
    assert_eq!(got, want);
    assert_eq!(v["ts"], "2024-05-14T13:49:00.123Z");
    assert_eq!(v["severity"], "high");
    assert!(v["score"].is_u64() && v["events"].is_u64());
    let back: Alert = serde_json::from_str(&line).unwrap();
    assert_eq!(back, a);
    // Same text as the alert's own serialisation, byte for byte.
    assert_eq!(line, a.to_json_line());
}

#[test]
fn pseudonymised_json_keeps_the_shape() {
    let key = PseudonymKey::new(KEY);
    let line = format::render(
        &sample(),
        AlertFormat::Json,
        &PatientPolicy::Pseudonymised(key.clone()),
    );
    let back: Alert = serde_json::from_str(&line).unwrap();
    assert_eq!(
        back.patients,
        [
            pseudonymise(&key, "MRN00012345"),
            pseudonymise(&key, "mrn-77")
        ]
    );
    assert!(!line.to_lowercase().contains("mrn"));
    let line = format::render(&sample(), AlertFormat::Json, &PatientPolicy::Omitted);
    let back: Alert = serde_json::from_str(&line).unwrap();
    assert!(back.patients.is_empty());
    assert!(!line.to_lowercase().contains("mrn"));
}
