//! Live time in `run`: while the logs are quiet the engine's clock follows the wall clock,
//! so findings close and their alerts reach the sinks while the daemon runs (no later
//! event, no shutdown needed); and history present at start is read in event-time order
//! whatever the files' modification times.

use crate::support::hospital::write_hospital_for_run;
use crate::support::process::{replay, stop_with_sigterm};
use crate::support::sorted_lines;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

fn start_run(config: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_phiwatch"))
        .args(["run", "--config"])
        .arg(config)
        .stderr(std::fs::File::create(config.with_file_name("run.log")).unwrap())
        .spawn()
        .unwrap()
}

/// Waits, while `run` keeps running, until its file sink holds exactly `want`.
fn wait_for_alerts(sink: &Path, want: &[String], secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let got = sorted_lines(sink);
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "after {secs} s run wrote {} alerts, replay {}; first difference: {:?}\nlog:\n{}",
            got.len(),
            want.len(),
            got.iter().zip(want).find(|(a, b)| a != b),
            std::fs::read_to_string(sink.with_file_name("run.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn quiet_logs_close_findings_while_run_runs() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_hospital_for_run(dir.path(), "");
    let want = {
        let out = dir.path().join("replay.ndjson");
        replay(&config, &out);
        sorted_lines(&out)
    };
    assert!(want.len() >= 10);
    let mut run = start_run(&config);
    // Sources go idle after one quiet second: every finding of this past history closes
    // then, although no later event arrives.
    wait_for_alerts(&dir.path().join("alerts.ndjson"), &want, 60);
    stop_with_sigterm(&mut run, Duration::from_secs(30));
    assert_eq!(sorted_lines(&dir.path().join("alerts.ndjson")), want);
}

#[test]
fn history_copied_in_just_before_start_is_read_in_event_time_order() {
    let dir = tempfile::tempdir().unwrap();
    let opts = phiwatch::simulate::SimOptions::checked(11, 300, 10).unwrap();
    phiwatch::simulate::simulate(&opts, dir.path()).unwrap();
    let config = dir.path().join("phiwatch.toml");
    let want = {
        let out = dir.path().join("replay.ndjson");
        replay(&config, &out);
        sorted_lines(&out)
    };
    assert!(!want.is_empty());
    // Modification times that lie: the last day's files look oldest, as after a copy in
    // the wrong order. The order must come from the content.
    let mut files: Vec<std::path::PathBuf> = Vec::new();
    for sub in ["fhir", "atna", "epic", "files"] {
        if let Ok(rd) = std::fs::read_dir(dir.path().join(sub)) {
            files.extend(rd.map(|e| e.unwrap().path()));
        }
    }
    files.sort();
    let now = std::time::SystemTime::now();
    for f in &files {
        let day: u64 = f
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.rsplit('-').next())
            .and_then(|d| d.parse().ok())
            .unwrap_or(0);
        let t = now - Duration::from_secs(day);
        std::fs::File::options()
            .write(true)
            .open(f)
            .unwrap()
            .set_modified(t)
            .unwrap();
    }
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("dir = \"state\"", "dir = \"state\"\nsnapshot_secs = 1"),
    )
    .unwrap();
    let sink = dir.path().join("alerts.ndjson");
    let _ = std::fs::remove_file(&sink);
    let mut run = start_run(&config);
    wait_for_alerts(&sink, &want, 240);
    stop_with_sigterm(&mut run, Duration::from_secs(30));
}

/// 2,000 staff each open their own chart once, in four batches of 500: before `run`
/// starts; during a run killed with SIGKILL halfway through the batch and restarted; after
/// a rename rotation; after a copytruncate. Every batch's alerts reach the file sink
/// within seconds, although nothing follows them in the log.
#[test]
fn two_thousand_own_chart_openings_are_reported_live_across_kill_and_rotations() {
    use std::io::Write;
    const STAFF: usize = 2000;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut staff = String::from(
        "user_id,given_name,family_name,role,department,address,postcode,hire_date,termination_date\n",
    );
    let mut patients = String::from(
        "patient_id,given_name,family_name,birth_date,address,postcode,deceased_date,vip,employee_user_id\n",
    );
    for i in 0..STAFF {
        staff.push_str(&format!(
            "u{i:05},Given{i},Family{i},nurse,Ward {},{i} Elm St,60601,2020-01-01,\n",
            i % 20
        ));
        patients.push_str(&format!(
            "MRN{i:07},Given{i},Family{i},1980-01-01,{i} Elm St,60601,,false,u{i:05}\n"
        ));
    }
    std::fs::write(d.join("staff.csv"), staff).unwrap();
    std::fs::write(d.join("patients.csv"), patients).unwrap();
    std::fs::create_dir_all(d.join("ehr")).unwrap();
    let log = d.join("ehr/audit.log");
    std::fs::write(&log, "").unwrap();
    let config = d.join("phiwatch.toml");
    std::fs::write(
        &config,
        r#"
[reference]
staff = "staff.csv"
patients = "patients.csv"
[engine]
idle_source_secs = 1
[[sources]]
name = "ehr"
type = "file"
paths = ["ehr/audit.log"]
format = "canonical"
[[sinks]]
type = "file"
path = "alerts.ndjson"
format = "json"
[state]
dir = "state"
snapshot_secs = 1
"#,
    )
    .unwrap();
    let line = |i: usize| {
        format!(
            r#"{{"ts":"2026-03-10T{:02}:{:02}:{:02}Z","user":"u{i:05}","action":"view","patient":"MRN{i:07}"}}"#,
            8 + i / 3600,
            (i / 60) % 60,
            i % 60
        )
    };
    let append = |from: usize, to: usize| {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&log)
            .unwrap();
        for i in from..to {
            writeln!(f, "{}", line(i)).unwrap();
        }
    };
    let sink = d.join("alerts.ndjson");
    let users = || -> (usize, usize) {
        let all: Vec<serde_json::Value> = std::fs::read_to_string(&sink)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let distinct: std::collections::BTreeSet<String> = all
            .iter()
            .filter(|a| a["detector"] == "self-access")
            .map(|a| a["user"].as_str().unwrap().to_string())
            .collect();
        (distinct.len(), all.len())
    };
    let wait_users = |n: usize, what: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while users().0 < n {
            assert!(
                Instant::now() < deadline,
                "{what}: {} of {n} users alerted after 30 s\n{}",
                users().0,
                std::fs::read_to_string(d.join("run.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };

    append(0, 500);
    let mut run = start_run(&config);
    wait_users(500, "written before the start");

    append(500, 750);
    std::thread::sleep(Duration::from_millis(700));
    run.kill().unwrap();
    run.wait().unwrap();
    append(750, 1000);
    let mut run = start_run(&config);
    wait_users(1000, "killed halfway and restarted");

    std::fs::rename(&log, d.join("ehr/audit.log.1")).unwrap();
    append(1000, 1500);
    wait_users(1500, "after a rename rotation");

    std::fs::copy(&log, d.join("ehr/audit.log.2")).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(1500, 2000);
    wait_users(2000, "after a copytruncate");

    stop_with_sigterm(&mut run, Duration::from_secs(30));
    let (distinct, total) = users();
    assert_eq!(distinct, STAFF);
    let repeats = total - distinct;
    eprintln!("2,000-user scenario: {distinct} users alerted, {repeats} repeated alerts");
    assert!(
        repeats * 50 <= STAFF,
        "{repeats} repeated alerts, more than 2% of {STAFF}"
    );
}
