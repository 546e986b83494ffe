//! OCSF Detection Finding (2004): required attributes and types.

use crate::support::alert::{follow_up, sample, FIRST_ID, KEY};
use phiwatch::alert::Severity;
use phiwatch::config::AlertFormat;
use phiwatch::format;
use phiwatch::pseudonym::{pseudonymise, PatientPolicy, PseudonymKey};
use serde_json::{json, Value};

fn doc(a: &phiwatch::alert::Alert, p: &PatientPolicy) -> (String, Value) {
    let line = format::render(a, AlertFormat::Ocsf, p);
    assert!(!line.contains('\n'));
    let v = serde_json::from_str(&line).unwrap();
    (line, v)
}

#[test]
fn required_attributes_and_types() {
    let a = sample();
    let (_, v) = doc(&a, &PatientPolicy::Plain);
    assert_eq!(v["class_uid"].as_u64(), Some(2004));
    assert_eq!(v["category_uid"].as_u64(), Some(2));
    assert_eq!(v["activity_id"].as_u64(), Some(1));
    assert_eq!(v["type_uid"].as_u64(), Some(200401));
    assert_eq!(v["severity_id"].as_u64(), Some(4));
    assert!(
        v["time"].is_i64() || v["time"].is_u64(),
        "time is an integer"
    );
    assert_eq!(v["time"].as_i64(), Some(1715694540123));
    assert_eq!(v["start_time"].as_i64(), Some(1715693940000));
    assert_eq!(v["end_time"].as_i64(), Some(1715694540123));
    assert_eq!(v["count"].as_u64(), Some(3));
    assert_eq!(v["risk_score"].as_u64(), Some(73));
    assert_eq!(v["message"], a.summary.as_str());
    assert_eq!(v["is_alert"], true);
    assert_eq!(v["status_id"].as_u64(), Some(1));
    let m = &v["metadata"];
    assert_eq!(m["version"], "1.8.0");
    assert_eq!(m["product"]["name"], "phiwatch");
    assert_eq!(m["product"]["vendor_name"], "phiwatch");
    assert_eq!(m["product"]["version"], format::VERSION);
    let f = &v["finding_info"];
    assert_eq!(f["uid"], a.id.as_str());
    assert_eq!(f["title"], a.summary.as_str());
    assert!(f["desc"].is_string());
    assert_eq!(f["analytic"]["type_id"].as_u64(), Some(1));
    assert_eq!(f["analytic"]["uid"], "same-surname");
    assert_eq!(f["analytic"]["name"], "same-surname");
    assert!(f["types"].is_array());
    assert_eq!(f["created_time"].as_i64(), Some(1715694540123));
    assert_eq!(
        v["evidences"],
        json!([{"actor": {"user": {"uid": "jsmith", "name": "jsmith"}}}])
    );
    assert_eq!(
        v["resources"],
        json!([
            {"uid": "MRN00012345", "type": "Patient Record", "role_id": 1},
            {"uid": "mrn-77", "type": "Patient Record", "role_id": 1}
        ])
    );
}

#[test]
fn a_follow_up_names_the_first_finding_in_related_events() {
    let a = follow_up();
    let (_, v) = doc(&a, &PatientPolicy::Omitted);
    assert_eq!(v["finding_info"]["uid"], a.id.as_str());
    assert_eq!(v["metadata"]["uid"], a.id.as_str());
    // A Related Event/Finding: `uid` (required) is the first alert's `metadata.uid`.
    assert_eq!(
        v["finding_info"]["related_events"],
        json!([{"uid": FIRST_ID, "type_uid": 200401, "type_name": "Detection Finding: Create"}])
    );
    assert_eq!(v["unmapped"]["phiwatch"]["follows"], FIRST_ID);
    let (_, v) = doc(&sample(), &PatientPolicy::Plain);
    assert!(v["finding_info"].get("related_events").is_none());
    assert!(v["unmapped"]["phiwatch"].get("follows").is_none());
}

#[test]
fn severity_ids() {
    for (s, id) in [
        (Severity::Low, 2),
        (Severity::Medium, 3),
        (Severity::High, 4),
        (Severity::Critical, 5),
    ] {
        let mut a = sample();
        a.severity = s;
        assert_eq!(
            doc(&a, &PatientPolicy::Plain).1["severity_id"].as_u64(),
            Some(id)
        );
    }
}

#[test]
fn patient_policies() {
    let key = PseudonymKey::new(KEY);
    let (line, v) = doc(&sample(), &PatientPolicy::Pseudonymised(key.clone()));
    assert_eq!(
        v["resources"][0]["uid"],
        pseudonymise(&key, "MRN00012345").as_str()
    );
    assert_eq!(
        v["resources"][1]["uid"],
        pseudonymise(&key, "mrn-77").as_str()
    );
    assert!(!line.to_lowercase().contains("mrn"), "{line}");
    let (line, v) = doc(&sample(), &PatientPolicy::Omitted);
    assert!(v.get("resources").is_none());
    assert!(!line.to_lowercase().contains("mrn"), "{line}");
}
