//! Back-office work on a VIP's chart is judged at the encounter. Billing opening a VIP
//! after the stay ended, or while the VIP is on a ward after the emergency visit was handed
//! over (that visit has ended and is billed), is explained. Billing opening a VIP who was
//! readmitted, in the middle of the new stay with nothing of it ended, is not: the earlier
//! stay's end does not explain a look at the current one, and a workflow habit alone does
//! not explain a VIP's chart. Nor does the habit explain what does not look like it: the
//! same clerk opening the discharged VIP at eleven at night, hours they never work.

use crate::support::hospital::write_canonical_config;
use crate::support::process::replay;
use std::fmt::Write as _;
use std::path::Path;

const STAFF: &str = "\
user_id,given_name,family_name,role,department,address,postcode,hire_date,termination_date
b_ann,Ann,Ames,Billing Rep,Billing,1 Oak St,01001,2015-01-01,
b_bob,Bob,Bell,Billing Rep,Billing,2 Elm St,01002,2015-01-01,
b_cal,Cal,Cole,Billing Rep,Billing,3 Ash St,01003,2015-01-01,
";

/// Patients P100-P199 were in Cardiology in February; the three VIPs' care is written
/// out per case.
fn reference(dir: &Path) {
    let mut patients = String::from(
        "patient_id,given_name,family_name,birth_date,address,postcode,deceased_date,vip,employee_user_id\n",
    );
    let mut care = String::from("patient_id,department,user_id,start,end\n");
    for i in 100..200 {
        let _ = writeln!(
            patients,
            "P{i},Pat,Doe{i},1970-01-01,{i} River Rd,02000,,false,"
        );
        let _ = writeln!(
            care,
            "P{i},Cardiology,,2025-02-01T00:00:00Z,2025-02-10T00:00:00Z"
        );
    }
    for (v, name) in [("V1", "Rea"), ("V2", "Ward"), ("V3", "Home"), ("V4", "Old")] {
        let _ = writeln!(patients, "{v},Vip,{name},1960-01-01,9 Hill Rd,03000,,true,");
    }
    // Cal Cole's son at Cal's own address, and a Cole two doors down (a surname and a
    // street shared, a household not known).
    patients.push_str("H1,Dan,Cole,2008-01-01,3 Ash St,01003,,false,\n");
    patients.push_str("N1,Eve,Cole,1950-01-01,5 Ash St,01003,,false,\n");
    care.push_str(
        "\
V1,Medicine,,2025-02-01T00:00:00Z,2025-02-05T00:00:00Z
V1,Medicine,,2025-03-08T00:00:00Z,2025-03-15T00:00:00Z
V2,Emergency,,2025-03-07T10:00:00Z,2025-03-07T16:00:00Z
V2,Medicine,,2025-03-07T16:00:00Z,2025-03-14T00:00:00Z
V3,Medicine,,2025-02-25T00:00:00Z,2025-03-03T00:00:00Z
V4,Medicine,,2025-01-10T00:00:00Z,2025-01-20T00:00:00Z
H1,Medicine,,2025-02-25T00:00:00Z,2025-03-03T00:00:00Z
N1,Medicine,,2025-02-25T00:00:00Z,2025-03-03T00:00:00Z
",
    );
    std::fs::write(dir.join("staff.csv"), STAFF).unwrap();
    std::fs::write(dir.join("patients.csv"), patients).unwrap();
    std::fs::write(dir.join("care.csv"), care).unwrap();
}

/// Five afternoons of billing follow-up on February's stays (so billing is learned as a
/// group that works outside care, and each clerk's hours as 14:00-19:59), then each clerk
/// opens one VIP on the afternoon of 10 March, and one of them the discharged VIP again
/// late that evening.
fn events() -> String {
    let mut lines = Vec::new();
    let clerks = ["b_ann", "b_bob", "b_cal"];
    for day in 2..=6 {
        for (k, u) in clerks.iter().enumerate() {
            for i in 0..32 {
                let p = 100 + (i * 3 + k * 7 + day * 11) % 100;
                lines.push(format!(
                    "{{\"ts\":\"2025-03-{day:02}T{:02}:{:02}:00Z\",\"user\":\"{u}\",\"action\":\"view\",\"patient\":\"P{p}\",\"records\":1,\"host\":\"WS-B{k}\"}}",
                    14 + i / 6,
                    (i % 6) * 9 + k,
                ));
            }
        }
    }
    for (u, v, t) in [
        ("b_ann", "V1", "15:30"),
        ("b_bob", "V2", "15:30"),
        ("b_cal", "V3", "15:30"),
        ("b_bob", "V3", "23:10"),
    ] {
        lines.push(format!(
            "{{\"ts\":\"2025-03-10T{t}:00Z\",\"user\":\"{u}\",\"action\":\"view\",\"patient\":\"{v}\",\"records\":1,\"host\":\"WS-B9\"}}"
        ));
    }
    lines.sort();
    lines.join("\n") + "\n"
}

/// [`events`] with `extra` lines put in time order among them.
fn events_and(extra: &[&str]) -> String {
    let all = events();
    let mut lines: Vec<&str> = all.lines().chain(extra.iter().copied()).collect();
    lines.sort();
    lines.join("\n") + "\n"
}

/// Who each alert is about: its user and its first patient.
fn who(alerts: &[serde_json::Value]) -> Vec<(&str, &str)> {
    alerts
        .iter()
        .map(|a| {
            (
                a["user"].as_str().unwrap(),
                a["patients"][0].as_str().unwrap(),
            )
        })
        .collect()
}

/// The VIP alerts of a replay of `events` on the reference above.
fn vip_alerts(events: &str) -> Vec<serde_json::Value> {
    alerts_of(events, "vip-without-care")
}

/// The alerts of one detector in a replay of `events` on the reference above.
fn alerts_of(events: &str, detector: &str) -> Vec<serde_json::Value> {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    reference(d);
    std::fs::create_dir_all(d.join("events")).unwrap();
    std::fs::write(d.join("events/log.jsonl"), events).unwrap();
    let config = write_canonical_config(d, "timezone = \"UTC\"");
    let out = d.join("replay.ndjson");
    replay(&config, &out);
    std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|a| a["detector"] == detector)
        .collect()
}

#[test]
fn back_office_access_to_a_vip_is_explained_by_an_ended_encounter_not_an_earlier_stay() {
    let vip = vip_alerts(&events());
    let who = who(&vip);
    // The readmitted VIP, opened mid-stay with nothing of the new stay ended, and the
    // discharged VIP opened at an hour the clerk never works.
    assert_eq!(who, [("b_ann", "V1"), ("b_bob", "V3")], "{vip:#?}");
}

/// Billing's follow-ups come 20 to 24 days after the stays, so a VIP whose stay ended 49
/// days earlier is past the group's habit (the day by which 95% came, plus a quarter: 32
/// days) though within the 60 days any workflow access may reach: it alerts, and says why.
#[test]
fn back_office_access_to_a_vip_later_after_the_stay_than_the_group_works_alerts() {
    let late = "{\"ts\":\"2025-03-10T15:40:00Z\",\"user\":\"b_cal\",\"action\":\"view\",\"patient\":\"V4\",\"records\":1,\"host\":\"WS-B9\"}";
    let vip = vip_alerts(&events_and(&[late]));
    let v4: Vec<&serde_json::Value> = vip.iter().filter(|a| a["patients"][0] == "V4").collect();
    assert_eq!(v4.len(), 1, "{vip:#?}");
    assert_eq!(v4[0]["user"], "b_cal");
    let reasons = v4[0]["reasons"].to_string();
    assert!(
        reasons.contains("the patient's last care episode ended 49 days earlier, later than the user's peers usually work on a chart after a stay (within 32 days)"),
        "{reasons}"
    );
    // The other VIPs are judged as before.
    assert_eq!(vip.len(), 3, "{vip:#?}");
}

/// A household member's chart is not explained by the user's back-office habit: staff are
/// expected to hand their own family's records to a colleague. The same clerk's look at a
/// namesake two doors down after that patient's stay is explained as billing work, as
/// before: a shared surname and street is a weaker tie than a shared address.
#[test]
fn back_office_work_does_not_explain_a_household_members_chart() {
    let extra = [
        "{\"ts\":\"2025-03-10T15:35:00Z\",\"user\":\"b_cal\",\"action\":\"view\",\"patient\":\"H1\",\"records\":1,\"host\":\"WS-B9\"}",
        "{\"ts\":\"2025-03-10T15:45:00Z\",\"user\":\"b_cal\",\"action\":\"view\",\"patient\":\"N1\",\"records\":1,\"host\":\"WS-B9\"}",
    ];
    let family = alerts_of(&events_and(&extra), "family");
    assert_eq!(who(&family), [("b_cal", "H1")], "{family:#?}");
    let reasons = family[0]["reasons"].to_string();
    assert!(
        reasons.contains("the patient lives at the same street address and postcode as the user"),
        "{reasons}"
    );
}
