//! End to end: the crafted hospital replayed through every format gives exactly the
//! expected alerts, one per insider finding, and none for the innocent look-alikes.

mod common;

use std::process::Command;

fn phiwatch() -> Command {
    Command::new(env!("CARGO_BIN_EXE_phiwatch"))
}

#[test]
fn crafted_hospital_gives_exactly_the_expected_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::write_hospital(dir.path());
    let out = dir.path().join("replay.ndjson");
    let o = phiwatch()
        .args(["replay", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "replay failed: {stderr}");
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
    let want: Vec<(String, String)> = common::EXPECTED
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
    let o2 = phiwatch()
        .args(["replay", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(&out2)
        .output()
        .unwrap();
    assert!(o2.status.success());
    assert_eq!(text, std::fs::read_to_string(&out2).unwrap());
}
