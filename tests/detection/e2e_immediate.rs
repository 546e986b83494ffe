//! End to end in `replay`: an export followed by a copy to USB is written at once
//! (`alert: immediate` in the shipped `export-then-copy`), ahead of an on-close finding
//! whose evidence came earlier; a chain raised to critical after its first alert gives
//! exactly one follow-up naming it.

use crate::support::process;

use serde_json::Value;

const EVENTS: &[&str] = &[
    // A VIP chart opened without care: on-close, written once quiet for 30 minutes.
    r#"{"ts":"2024-03-04T10:00:00Z","user":"n_erin","action":"view","patient":"P004","host":"WS-ICU-1"}"#,
    // An export of 900 records, then a copy to a USB stick five minutes later.
    r#"{"ts":"2024-03-04T10:02:00Z","user":"h_gina","action":"export","records":900,"host":"WS-HIM-03"}"#,
    r#"{"ts":"2024-03-04T10:07:00Z","user":"h_gina","action":"file_write","media":"removable","bytes":120000,"path":"/media/usb/patients.csv","host":"WS-HIM-03"}"#,
    // A small export and copy (high), then a big one in the same finding (critical).
    r#"{"ts":"2024-03-04T10:05:00Z","user":"m_max","action":"export","records":50,"host":"WS-HIM-07"}"#,
    r#"{"ts":"2024-03-04T10:08:00Z","user":"m_max","action":"file_write","media":"cloud","bytes":9000,"path":"/home/m_max/Dropbox/a.csv","host":"WS-HIM-07"}"#,
    r#"{"ts":"2024-03-04T10:12:00Z","user":"m_max","action":"export","records":400,"host":"WS-HIM-07"}"#,
    r#"{"ts":"2024-03-04T10:15:00Z","user":"m_max","action":"file_write","media":"removable","bytes":80000,"path":"/media/usb/b.csv","host":"WS-HIM-07"}"#,
    // Routine work later on, which lets the quiet findings close: at 10:32 the VIP
    // finding has been quiet for 30 minutes, the chains (on close) would not yet be.
    r#"{"ts":"2024-03-04T10:32:00Z","user":"n_erin","action":"view","patient":"P100","host":"WS-ICU-1"}"#,
    r#"{"ts":"2024-03-04T10:40:00Z","user":"n_erin","action":"view","patient":"P100","host":"WS-ICU-1"}"#,
    r#"{"ts":"2024-03-04T11:30:00Z","user":"n_erin","action":"view","patient":"P100","host":"WS-ICU-1"}"#,
];

fn write_input(dir: &std::path::Path) -> std::path::PathBuf {
    let w = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    w(
        "staff.csv",
        "user_id,given_name,family_name,role,department,address,postcode,hire_date,termination_date\n\
         n_erin,Erin,Brown,nurse,ICU,9 Birch Ln,01104,2017-01-01,\n\
         h_gina,Gina,Taylor,him_analyst,Health Information,2 Fir Ter,01107,2016-01-01,\n\
         m_max,Max,Stone,him_analyst,Health Information,4 Elm Ter,01108,2016-01-01,\n",
    );
    w(
        "patients.csv",
        "patient_id,given_name,family_name,birth_date,address,postcode,deceased_date,vip,employee_user_id\n\
         P004,Famous,Person,1970-05-05,1 Hill Rd,01110,,true,\n\
         P100,Pat,Doe,1970-01-01,100 River Rd,02000,,false,\n",
    );
    w(
        "care.csv",
        "patient_id,department,user_id,start,end\n\
         P100,ICU,,2024-03-01T00:00:00Z,\n",
    );
    let mut events = EVENTS.to_vec();
    events.sort_by_key(|l| l[7..27].to_string());
    w("ehr/audit.jsonl", &(events.join("\n") + "\n"));
    w(
        "phiwatch.toml",
        r#"
[reference]
staff = "staff.csv"
patients = "patients.csv"
care = "care.csv"

[engine]
learning_days = 7

[[sources]]
name = "ehr"
type = "file"
paths = ["ehr/*.jsonl"]
format = "canonical"

[[sinks]]
type = "file"
path = "alerts.ndjson"
format = "json"

[state]
dir = "state"
"#,
    );
    dir.join("phiwatch.toml")
}

#[test]
fn an_exfiltration_chain_is_written_at_once_and_grows_into_one_follow_up() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_input(dir.path());
    let out = dir.path().join("replay.ndjson");
    let stderr = process::replay(&config, &out);
    let text = std::fs::read_to_string(&out).unwrap();
    let alerts: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let got: Vec<(&str, &str)> = alerts
        .iter()
        .map(|a| (a["detector"].as_str().unwrap(), a["user"].as_str().unwrap()))
        .collect();
    // In the order written: both chains at once, at their copy; the VIP finding, though
    // its evidence came first, when it has been quiet for 30 minutes; the follow-up when
    // the grown chain closes.
    assert_eq!(
        got,
        [
            ("export-then-copy", "h_gina"),
            ("export-then-copy", "m_max"),
            ("vip-without-care", "n_erin"),
            ("export-then-copy", "m_max"),
        ],
        "alerts:\n{text}\nsummary:\n{stderr}"
    );

    // The immediate chain alert: both steps as evidence, written at the copy.
    let gina = &alerts[0];
    assert_eq!(gina["severity"], "critical");
    assert_eq!(gina["ts"], "2024-03-04T10:07:00.000Z");
    assert_eq!(gina["first_seen"], "2024-03-04T10:02:00.000Z");
    assert_eq!(gina["last_seen"], "2024-03-04T10:07:00.000Z");
    assert_eq!(gina["events"], 2);
    assert!(gina.get("follows").is_none(), "{gina}");
    let reasons = gina["reasons"].to_string();
    assert!(
        reasons.contains("exported 900 patient records from the EHR"),
        "{reasons}"
    );
    assert!(
        reasons.contains("5 minutes later a file of 117.2 KB was written to removable media"),
        "{reasons}"
    );
    // Nothing came after it: no follow-up for h_gina.
    assert_eq!(
        alerts.iter().filter(|a| a["user"] == "h_gina").count(),
        1,
        "{text}"
    );

    // m_max: written at once as high, then raised to critical by the bigger export: one
    // follow-up naming the first alert, describing the whole finding.
    let first = &alerts[1];
    assert_eq!(first["severity"], "high");
    assert!(first.get("follows").is_none());
    let next = &alerts[3];
    assert_eq!(next["follows"], first["id"]);
    assert_ne!(next["id"], first["id"]);
    assert_eq!(next["severity"], "critical");
    assert_eq!(next["first_seen"], "2024-03-04T10:05:00.000Z");
    assert_eq!(next["last_seen"], "2024-03-04T10:15:00.000Z");
    let reasons = next["reasons"].to_string();
    assert!(
        reasons.contains("exported 400 patient records"),
        "{reasons}"
    );
    assert!(
        reasons.contains(&format!(
            "this follows alert {}",
            first["id"].as_str().unwrap()
        )),
        "{reasons}"
    );
    assert!(reasons.contains("raised to critical"), "{reasons}");

    // Ids are stable: a second replay writes the same bytes.
    let out2 = dir.path().join("replay2.ndjson");
    process::replay(&config, &out2);
    assert_eq!(text, std::fs::read_to_string(&out2).unwrap());
}
