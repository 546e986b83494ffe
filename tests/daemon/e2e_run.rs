//! `run` against `replay`: the same files give the same alerts, also when `run` is killed
//! with SIGKILL halfway and restarted (no line lost, no alert written twice).

use crate::support::hospital::{write_hospital_for_run, INPUTS};
use crate::support::process::{phiwatch, replay, start_logged, Proc};
use crate::support::sorted_lines;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn hospital(dir: &Path) -> PathBuf {
    write_hospital_for_run(dir, "")
}

fn replay_lines(config: &Path) -> Vec<String> {
    let out = config.with_file_name("replay.ndjson");
    replay(config, &out);
    sorted_lines(&out)
}

/// `run`, its log in a `run-*.log` of its own beside the config.
fn start(config: &Path) -> Proc {
    let log = config.with_file_name(format!(
        "run-{}.log",
        std::process::id() as u64 + rand_suffix()
    ));
    start_logged("run", config, &log)
}

/// Waits until the snapshot's positions reach the end of every input file of the
/// crafted hospital.
fn wait_caught_up(dir: &Path) {
    let inputs: Vec<PathBuf> = INPUTS.iter().map(|p| dir.join(p)).collect();
    wait_read(dir, &inputs);
}

/// Waits until the snapshot in `dir`/state holds the end of every one of `inputs`.
fn wait_read(dir: &Path, inputs: &[PathBuf]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if Instant::now() > deadline {
            let logs: Vec<String> = std::fs::read_dir(dir)
                .unwrap()
                .filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with("run-"))
                .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                .collect();
            panic!(
                "run did not catch up within 60 s; logs:\n{}",
                logs.join("\n---\n")
            );
        }
        if let Ok(text) = std::fs::read_to_string(dir.join("state/run.snapshot.json")) {
            let snap: serde_json::Value = serde_json::from_str(&text).unwrap();
            let done = inputs.iter().all(|f| {
                let size = std::fs::metadata(f).unwrap().len();
                let name = f.to_string_lossy();
                snap["positions"]
                    .as_object()
                    .unwrap()
                    .values()
                    .flat_map(|v| v.as_array().unwrap().iter())
                    .any(|p| {
                        p["path"].as_str() == Some(&name) && p["offset"].as_u64() == Some(size)
                    })
            });
            if done {
                // One more snapshot period so idle sources released everything.
                std::thread::sleep(Duration::from_millis(2500));
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn stop(run: Proc) {
    run.stop(Duration::from_secs(30));
}

/// A simulated week of history as hospitals keep it, one file a day per source, each last
/// written at the end of its day; `idle_secs` as the engine's `idle_source_secs`. Returns
/// the config, the daily files and replay's alerts (sorted) on them.
fn backlog_week(h: &Path, idle_secs: u64) -> (PathBuf, Vec<PathBuf>, Vec<String>) {
    let o = phiwatch()
        .args([
            "simulate", "--seed", "1", "--staff", "100", "--days", "8", "--out",
        ])
        .arg(h)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let config = h.join("phiwatch.toml");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replacen(
            "[engine]\n",
            &format!("[engine]\nidle_source_secs = {idle_secs}\n"),
            1,
        )
        .replacen("[state]\n", "[state]\nsnapshot_secs = 1\n", 1);
    std::fs::write(&config, text).unwrap();
    // Each daily file (fhir/2026-03-02.ndjson, ...) last written at the end of its day.
    let mut inputs = Vec::new();
    for source in ["fhir", "atna", "epic", "files"] {
        for e in std::fs::read_dir(h.join(source)).unwrap() {
            let path = e.unwrap().path();
            let day = path.file_name().unwrap().to_string_lossy()[..10].to_string();
            let end: chrono::DateTime<chrono::Utc> = format!("{day}T23:59:59Z").parse().unwrap();
            let at = std::time::UNIX_EPOCH + Duration::from_secs(end.timestamp() as u64);
            std::fs::File::options()
                .append(true)
                .open(&path)
                .unwrap()
                .set_modified(at)
                .unwrap();
            inputs.push(path);
        }
    }
    let want = replay_lines(&config);
    assert!(want.len() >= 10, "the simulated week gives alerts");
    (config, inputs, want)
}

/// History as hospitals keep it, one file a day per source, last written long ago: `run`
/// reads such backlog oldest first, so it gives replay's alerts (read side by side, day 8
/// came in while day 1 was still being read, and the alerts differed).
#[test]
fn run_on_a_backlog_of_daily_files_gives_the_same_alerts_as_replay() {
    let dir = tempfile::tempdir().unwrap();
    let h = dir.path().join("h");
    let (config, inputs, want) = backlog_week(&h, 1);
    let child = start(&config);
    wait_read(&h, &inputs);
    stop(child);
    assert_eq!(sorted_lines(&h.join("alerts.ndjson")), want);
}

/// Files last written days ago have been quiet for days, however recently they were read:
/// once read to their end the sources are idle and every finding closes, without waiting
/// `idle_source_secs` (an hour here) after the last line and without a shutdown.
#[test]
fn a_backlog_read_to_its_end_is_idle_at_once_by_its_files_times() {
    let dir = tempfile::tempdir().unwrap();
    let h = dir.path().join("h");
    let (config, _, want) = backlog_week(&h, 3600);
    let child = start(&config);
    let sink = h.join("alerts.ndjson");
    crate::support::wait_for("replay's alerts, live", Duration::from_secs(90), || {
        sink.exists() && sorted_lines(&sink) == want
    });
    stop(child);
    assert_eq!(sorted_lines(&sink), want);
}

#[test]
fn run_gives_the_same_alerts_as_replay() {
    let dir = tempfile::tempdir().unwrap();
    let config = hospital(dir.path());
    let want = replay_lines(&config);
    assert!(!want.is_empty());
    let child = start(&config);
    wait_caught_up(dir.path());
    stop(child);
    assert_eq!(sorted_lines(&dir.path().join("alerts.ndjson")), want);
}

#[test]
fn sigkill_and_restart_lose_nothing_and_duplicate_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = hospital(dir.path());
    let want = replay_lines(&config);
    // Hold back the second half of the main log, start, kill -9 once caught up.
    let log = dir.path().join("events/canonical.jsonl");
    let full = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = full.lines().collect();
    let half = lines.len() * 2 / 3;
    std::fs::write(&log, lines[..half].join("\n") + "\n").unwrap();
    let child = start(&config);
    wait_caught_up(dir.path());
    child.kill();
    let before = sorted_lines(&dir.path().join("alerts.ndjson"));
    // The rest of the log arrives while phiwatch is down, including a partial line.
    let rest = lines[half..].join("\n") + "\n";
    let (a, b) = rest.split_at(rest.len() / 2);
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        f.write_all(a.as_bytes()).unwrap();
        let child = start(&config);
        std::thread::sleep(Duration::from_millis(500));
        f.write_all(b.as_bytes()).unwrap();
        f.sync_all().unwrap();
        wait_caught_up(dir.path());
        stop(child);
    }
    let after = sorted_lines(&dir.path().join("alerts.ndjson"));
    assert!(after.len() >= before.len());
    assert_eq!(after, want, "alerts after restart differ from replay's");
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

#[test]
fn reference_data_reloads_on_sighup_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = hospital(dir.path());
    let child = start(&config);
    wait_caught_up(dir.path());
    // A new VIP patient, under Cardiology's care, appears in the reference data.
    let append = |f: &str, line: &str| {
        use std::io::Write;
        let mut h = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join(f))
            .unwrap();
        writeln!(h, "{line}").unwrap();
    };
    append(
        "patients.csv",
        "P999,New,Star,1990-01-01,1 Sky Rd,01199,,true,",
    );
    append("care.csv", "P999,Cardiology,,2024-03-01T00:00:00Z,");
    child.signal("HUP");
    std::thread::sleep(Duration::from_millis(1500));
    // The ICU nurse has no reason to open it; the Cardiology nurse has.
    append(
        "events/canonical.jsonl",
        r#"{"ts":"2024-03-14T16:00:00Z","user":"n_erin","action":"view","patient":"P999","host":"WS-1"}"#,
    );
    append(
        "events/canonical.jsonl",
        r#"{"ts":"2024-03-14T16:01:00Z","user":"n_ivy","action":"view","patient":"P999","host":"WS-1"}"#,
    );
    wait_caught_up(dir.path());
    stop(child);
    let alerts = sorted_lines(&dir.path().join("alerts.ndjson"));
    let vip: Vec<&String> = alerts.iter().filter(|l| l.contains("P999")).collect();
    assert_eq!(vip.len(), 1, "{vip:?}");
    assert!(vip[0].contains("\"user\":\"n_erin\"") && vip[0].contains("vip-without-care"));
}
