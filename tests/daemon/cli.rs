//! The command line as an operator meets it: `check` on good and broken setups, `demo`,
//! `simulate` determinism, `score`, `cases`.

use crate::support::hospital::{engine_setting, write_hospital};
use crate::support::process::{check, phiwatch, replay};

#[test]
fn check_accepts_a_good_setup_and_points_at_broken_files() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_hospital(dir.path());
    let (code, out) = check(&config, false);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("9 staff"), "{out}");

    // A bad date on line 3 of the roster, and a detector with a typo in a field name.
    let staff = dir.path().join("staff.csv");
    let text = std::fs::read_to_string(&staff).unwrap();
    let broken: Vec<String> = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i == 2 {
                l.replace("2019-01-01", "01/02/2019")
            } else {
                l.to_string()
            }
        })
        .collect();
    std::fs::write(&staff, broken.join("\n") + "\n").unwrap();
    let det = dir.path().join("detectors");
    std::fs::create_dir_all(&det).unwrap();
    std::fs::write(
        det.join("mine.yml"),
        "title: t\nlevel: high\nsummary: s\ndetection:\n  sel:\n    patient.vipp: true\n  condition: sel\n",
    )
    .unwrap();
    engine_setting(&config, "detectors = \"detectors\"");
    let (code, out) = check(&config, false);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("staff.csv:3"), "{out}");
    assert!(out.contains("YYYY-MM-DD"), "{out}");
    assert!(out.contains("mine.yml"), "{out}");
    assert!(out.contains("unknown field \"patient.vipp\""), "{out}");
}

#[test]
fn check_and_every_command_reject_a_misspelt_table_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_hospital(dir.path());
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("[reference]", "[refrence]")
        .replace("learning_days = 7", "learning_days = 7\ntimezon = \"UTC\"");
    std::fs::write(&config, &text).unwrap();
    let line_of = |what: &str| text.lines().position(|l| l.starts_with(what)).unwrap() + 1;
    let table = format!(
        "{}:{}: unknown table `[refrence]`; did you mean `[reference]`?",
        config.display(),
        line_of("[refrence]")
    );
    let key = format!(
        "{}:{}: unknown key `timezon` in [engine]; did you mean `timezone`?",
        config.display(),
        line_of("timezon =")
    );

    let (code, out) = check(&config, false);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains(&format!("error: {table}")), "{out}");
    assert!(out.contains(&format!("error: {key}")), "{out}");
    assert!(!out.contains("no problems found"), "{out}");

    // Every command reads the config the same way at start.
    let o = phiwatch()
        .arg("replay")
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains(&table) && err.contains(&key), "{err}");
}

#[test]
fn replay_without_a_config_fails_with_one_line() {
    let o = phiwatch()
        .args(["replay", "--config", "/nonexistent/phiwatch.toml"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("cannot read config file"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn demo_prints_alerts_and_a_scorecard() {
    let o = phiwatch()
        .args(["demo", "--staff", "120", "--days", "14", "--seed", "3"])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("SCORECARD"), "{out}");
    assert!(out.contains("insiders caught"), "{out}");
    // Plain text when not on a terminal.
    assert!(!out.contains("\x1b["), "ANSI colours outside a terminal");
}

#[test]
fn simulate_is_deterministic_and_score_reads_its_labels() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    for d in [&a, &b] {
        let o = phiwatch()
            .args([
                "simulate", "--staff", "60", "--days", "5", "--seed", "9", "--out",
            ])
            .arg(d.path())
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    for f in ["staff.csv", "care.csv", "labels.json", "phiwatch.toml"] {
        assert_eq!(
            std::fs::read(a.path().join(f)).unwrap(),
            std::fs::read(b.path().join(f)).unwrap(),
            "{f} differs between two runs with the same seed"
        );
    }
    let alerts = a.path().join("alerts.ndjson");
    replay(&a.path().join("phiwatch.toml"), &alerts);
    let o = phiwatch()
        .args(["score", "--json", "--labels"])
        .arg(a.path().join("labels.json"))
        .arg(&alerts)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let card: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(card.is_object());
}

#[test]
fn tap_prints_the_canonical_events_and_with_rejects_the_rejected_lines() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("ehr")).unwrap();
    std::fs::write(
        d.join("ehr/a.jsonl"),
        "{\"ts\":\"2026-03-02T08:00:00Z\",\"user\":\"U1\",\"action\":\"view\",\"patient\":\"P1\"}\n\
         {not json\n\
         {\"ts\":\"1900-01-01T08:00:00Z\",\"user\":\"u2\",\"action\":\"view\"}\n\
         {\"ts\":\"2026-03-02T08:01:00Z\",\"user\":\"u3\",\"action\":\"export\",\"records\":40}\n",
    )
    .unwrap();
    std::fs::write(
        d.join("phiwatch.toml"),
        "[[sources]]\nname = \"ehr\"\ntype = \"file\"\npaths = [\"ehr/*.jsonl\"]\nformat = \"canonical\"\n\
         [state]\ndir = \"state\"\n",
    )
    .unwrap();
    let tap = |extra: &[&str]| -> Vec<serde_json::Value> {
        let o = phiwatch()
            .args(["tap", "--config"])
            .arg(d.join("phiwatch.toml"))
            .args(extra)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let events = tap(&[]);
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0]["user"], "U1");
    assert_eq!(events[1]["action"], "export");
    assert!(events[1]["origin"]["offset"].as_u64().is_some());
    let all = tap(&["--rejects", "--source", "ehr"]);
    let reasons: Vec<&str> = all
        .iter()
        .filter_map(|v| v["rejected"]["reason"].as_str())
        .collect();
    assert_eq!(reasons, ["bad_json", "implausible_time"]);
    assert_eq!(all.len(), 4);
    assert_eq!(tap(&["--rejects", "--limit", "2"]).len(), 2);
    // Nothing is written where a daemon would write: no dead-letter file, no state.
    assert!(!d.join("state").exists());
}

#[test]
fn csv_presets_read_epic_clarity_and_openemr_exports_and_explicit_keys_win() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("epic")).unwrap();
    std::fs::create_dir_all(d.join("emr")).unwrap();
    std::fs::write(
        d.join("epic/a.txt"),
        "ACCESS_TIME|METRIC_NAME|WORKSTATION_ID|PAT_MRN_ID|USER_ID\n\
         2026-03-02 09:49:00|AN EXISTING PATIENT IS SELECTED FROM PATIENT LOOKUP|WS-4N-12|MRN00012345|E12345\n\
         2026-03-02 09:50:00|CHART PRINTED|WS-4N-12|MRN00012345|E12345\n",
    )
    .unwrap();
    std::fs::write(
        d.join("emr/log.csv"),
        "id,date,event,category,user,groupname,comments,user_notes,patient_id,success\n\
         90211,2026-03-02 09:49:00,view,view,jsmith,Default,,,12345,1\n\
         90212,2026-03-02 09:49:01,patient-record-update,Patient Demographics,jsmith,Default,U0VM,,12345,0\n",
    )
    .unwrap();
    std::fs::write(
        d.join("phiwatch.toml"),
        "[[sources]]\nname = \"epic\"\ntype = \"file\"\npaths = [\"epic/*.txt\"]\npreset = \"epic-clarity\"\n\
         [sources.actions]\n\"CHART PRINTED\" = \"print\"\n\
         [[sources]]\nname = \"emr\"\ntype = \"file\"\npaths = [\"emr/*.csv\"]\npreset = \"openemr-log\"\n\
         [state]\ndir = \"state\"\n",
    )
    .unwrap();
    let o = phiwatch()
        .args(["tap", "--rejects", "--config"])
        .arg(d.join("phiwatch.toml"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got: Vec<serde_json::Value> = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let brief: Vec<(String, String, String)> = got
        .iter()
        .map(|v| {
            (
                v["user"].as_str().unwrap_or("-").to_string(),
                v["action"].as_str().unwrap_or("-").to_string(),
                v["outcome"].as_str().unwrap_or("-").to_string(),
            )
        })
        .collect();
    let want = [
        ("E12345", "view", "success"),
        ("E12345", "print", "success"),
        ("jsmith", "view", "success"),
        ("jsmith", "update", "failure"),
    ];
    assert_eq!(
        brief,
        want.map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string())),
        "{got:#?}"
    );
    assert_eq!(got[0]["patient"], "MRN00012345");
    assert_eq!(got[0]["host"], "WS-4N-12");
}

/// `cases` on the crafted hospital's alerts: r_dave's neighbour snoop and search burst are
/// one case, listed with its alert count, and every alert carries the case fields.
#[test]
fn cases_groups_a_users_alerts_worst_first() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_hospital(dir.path());
    let out = dir.path().join("alerts.ndjson");
    replay(&config, &out);
    let text = std::fs::read_to_string(&out).unwrap();
    for l in text.lines() {
        let a: serde_json::Value = serde_json::from_str(l).unwrap();
        assert!(a["case"].as_str().unwrap().starts_with("case-"), "{a}");
        assert!(a["case_alerts"].as_u64().unwrap() >= 1, "{a}");
        assert!(a["risk"].as_u64().unwrap() >= 1, "{a}");
    }
    let o = phiwatch().arg("cases").arg(&out).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let table = String::from_utf8_lossy(&o.stdout);
    let dave = table
        .lines()
        .find(|l| l.contains("r_dave"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        dave.contains("neighbour") && dave.contains("search-burst"),
        "{dave}"
    );
    let o = phiwatch()
        .args(["cases", "--json"])
        .arg(&out)
        .output()
        .unwrap();
    let first: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&o.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(first["worst"], "critical", "{first}");
}
