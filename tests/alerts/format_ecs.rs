//! ECS alert document: required fields and types.

use crate::support::alert::{follow_up, sample, FIRST_ID, KEY};
use phiwatch::config::AlertFormat;
use phiwatch::format;
use phiwatch::pseudonym::{pseudonymise, PatientPolicy, PseudonymKey};
use serde_json::Value;

fn doc(p: &PatientPolicy) -> (String, Value) {
    let line = format::render(&sample(), AlertFormat::Ecs, p);
    assert!(!line.contains('\n'));
    let v = serde_json::from_str(&line).unwrap();
    (line, v)
}

#[test]
fn required_fields_and_types() {
    let a = sample();
    let (_, v) = doc(&PatientPolicy::Plain);
    assert_eq!(v["@timestamp"], "2024-05-14T13:49:00.123Z");
    assert_eq!(v["ecs"]["version"], "8.11.0");
    assert_eq!(v["message"], a.summary.as_str());
    let e = &v["event"];
    assert_eq!(e["kind"], "alert");
    assert_eq!(e["category"], serde_json::json!(["intrusion_detection"]));
    assert_eq!(e["type"], serde_json::json!(["info"]));
    assert_eq!(e["severity"].as_u64(), Some(8));
    assert_eq!(e["risk_score"].as_f64(), Some(73.0));
    assert!(e["risk_score"].is_f64());
    assert_eq!(e["risk_score_norm"].as_f64(), Some(73.0));
    assert_eq!(e["id"], a.id.as_str());
    assert_eq!(e["start"], "2024-05-14T13:39:00.000Z");
    assert_eq!(e["end"], "2024-05-14T13:49:00.123Z");
    assert_eq!(v["rule"]["id"], "same-surname");
    assert_eq!(v["rule"]["name"], "same-surname");
    // "same-surname" is no detector phiwatch has: no description to give.
    assert!(v["rule"].get("description").is_none(), "{}", v["rule"]);
    assert_eq!(v["user"]["id"], "jsmith");
    assert_eq!(v["user"]["name"], "jsmith");
    assert_eq!(v["observer"]["vendor"], "phiwatch");
    assert_eq!(v["observer"]["product"], "phiwatch");
    assert_eq!(v["observer"]["version"], format::VERSION);
    assert_eq!(
        v["phiwatch"]["patients"],
        serde_json::json!(["MRN00012345", "mrn-77"])
    );
    assert_eq!(v["phiwatch"]["patient_ids"], "plain");
    // Nothing about patients under ECS names.
    assert!(v.get("patient").is_none() && v["user"].get("target").is_none());
}

#[test]
fn a_follow_up_carries_follows_in_the_phiwatch_namespace() {
    let line = format::render(&follow_up(), AlertFormat::Ecs, &PatientPolicy::Plain);
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["phiwatch"]["follows"], FIRST_ID);
    assert_eq!(v["event"]["id"], follow_up().id.as_str());
    let (_, v) = doc(&PatientPolicy::Plain);
    assert!(v["phiwatch"].get("follows").is_none());
}

#[test]
fn patient_policies() {
    let key = PseudonymKey::new(KEY);
    let (line, v) = doc(&PatientPolicy::Pseudonymised(key.clone()));
    assert_eq!(
        v["phiwatch"]["patients"],
        serde_json::json!([
            pseudonymise(&key, "MRN00012345"),
            pseudonymise(&key, "mrn-77")
        ])
    );
    assert_eq!(v["phiwatch"]["patient_ids"], "pseudonymised");
    assert!(!line.to_lowercase().contains("mrn"), "{line}");
    let (line, v) = doc(&PatientPolicy::Omitted);
    assert!(v["phiwatch"].get("patients").is_none());
    assert_eq!(v["phiwatch"]["patient_ids"], "omitted");
    assert!(!line.to_lowercase().contains("mrn"), "{line}");
}

#[test]
fn rule_description_is_the_detectors_description_not_the_summary() {
    let mut a = sample();
    a.detector = "family".into();
    let v: Value =
        serde_json::from_str(&format::render(&a, AlertFormat::Ecs, &PatientPolicy::Plain)).unwrap();
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/detectors/family.yml"))
            .unwrap();
    let spec: serde_json::Value = serde_norway::from_str(&text).unwrap();
    let want = spec["description"].as_str().unwrap().trim();
    assert_eq!(v["rule"]["description"], want);
    assert_ne!(v["rule"]["description"], v["message"]);
    assert_eq!(v["message"], a.summary.as_str());
}
