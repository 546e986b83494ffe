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
