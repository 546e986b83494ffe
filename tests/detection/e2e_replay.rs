//! End to end: the crafted hospital replayed through every format gives exactly the
//! expected alerts, one per insider finding, and none for the innocent look-alikes.

use crate::support::hospital::{write_hospital, EXPECTED};
use crate::support::process::replay;

#[test]
fn crafted_hospital_gives_exactly_the_expected_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_hospital(dir.path());
    let out = dir.path().join("replay.ndjson");
    let stderr = replay(&config, &out);
    let text = std::fs::read_to_string(&out).unwrap();
    let alerts: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut got: Vec<(String, String)> = alerts
        .iter()
        .map(|a| {
            (
                a["detector"].as_str().unwrap().to_string(),
                a["user"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    got.sort();
    let want: Vec<(String, String)> = EXPECTED
        .iter()
        .map(|(d, u)| (d.to_string(), u.to_string()))
        .collect();
    assert_eq!(got, want, "alerts:\n{text}\nsummary:\n{stderr}");
    for a in &alerts {
        for f in ["id", "ts", "severity", "summary", "first_seen", "last_seen"] {
            assert!(a[f].is_string(), "{f} missing in {a}");
        }
        assert!(a["score"].as_u64().unwrap() <= 100);
        assert!(a["events"].as_u64().unwrap() >= 1);
        assert!(!a["reasons"].as_array().unwrap().is_empty(), "{a}");
        // Names and addresses never appear in alerts.
        for word in ["Nguyen", "Elm", "Famous", "Hill"] {
            assert!(!a.to_string().contains(word), "{word} leaked into {a}");
        }
    }
    // The family alert names the household member and explains the care situation.
    let fam = alerts.iter().find(|a| a["detector"] == "family").unwrap();
    assert_eq!(fam["patients"], serde_json::json!(["P001"]));
    let reasons = fam["reasons"].to_string();
    assert!(
        reasons.contains("no care relationship in Cardiology"),
        "{reasons}"
    );
    // The sweep names the 25 patients nobody treats.
    let sweep = alerts
        .iter()
        .find(|a| a["detector"] == "unexplained-access")
        .unwrap();
    assert_eq!(sweep["patients"].as_array().unwrap().len(), 25);
    // Replaying again gives byte-identical output (stable ids, stable order).
    let out2 = dir.path().join("replay2.ndjson");
    replay(&config, &out2);
    assert_eq!(text, std::fs::read_to_string(&out2).unwrap());
}
