//! `json` is exactly the contract alert JSON.

use crate::support::alert::{follow_up, sample, FIRST_ID, KEY};
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
fn a_follow_up_names_the_first_alert_and_others_do_not() {
    let a = follow_up();
    let line = format::render(&a, AlertFormat::Json, &PatientPolicy::Plain);
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["follows"], FIRST_ID);
    assert_eq!(v.as_object().unwrap().len(), 13);
    // Last, after the contract fields, so the others keep their place.
    assert!(line.ends_with(&format!(",\"events\":5,\"follows\":\"{FIRST_ID}\"}}")));
    let back: Alert = serde_json::from_str(&line).unwrap();
    assert_eq!(back, a);
    // Not a patient id: every policy keeps it.
    let key = PseudonymKey::new(KEY);
    for p in [PatientPolicy::Pseudonymised(key), PatientPolicy::Omitted] {
        let v: Value = serde_json::from_str(&format::render(&a, AlertFormat::Json, &p)).unwrap();
        assert_eq!(v["follows"], FIRST_ID);
    }
    // Any other alert: no `follows` key at all, and the fixture reads back unchanged.
    let line = format::render(&sample(), AlertFormat::Json, &PatientPolicy::Plain);
    assert!(!line.contains("follows"), "{line}");
    assert_eq!(
        line,
        include_str!("../fixtures/format/alert.json").trim_end_matches('\n')
    );
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
