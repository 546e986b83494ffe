//! End to end in `run`: an EHR export followed by a copy into a watched USB folder is one
//! high-severity alert naming both steps; routine USB use with no export stays quiet.
//!
//! Live, with the EHR log busy: an export of 850 records, then ten minutes later a CSV of
//! 850 patient rows copied to the USB folder by the same user, gives the chain alert naming
//! both steps within seconds of the copy, while the daemon runs. The EHR source never goes
//! quiet there, so event time lags the wall clock by the allowed lateness (5 min); the
//! alert comes from early firing (see `Engine::push`).

use crate::support::process::start_run_quiet;
use crate::support::{json_lines, serial};
use std::io::Write;
use std::os::unix::fs::chown;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[test]
fn export_then_copy_to_usb_is_one_alert_naming_both_steps() {
    // The `run` below watches the USB folder with inotify.
    let _inotify = serial::inotify();
    let (dir, usb, log, config) = exfil_setup();
    let run = start_run_quiet(&config);
    std::thread::sleep(Duration::from_millis(800));

    // Routine USB use: a technician copies a file, no export before it.
    let routine = usb.join("scan.dcm");
    std::fs::write(&routine, vec![0u8; 4096]).unwrap();
    chown(&routine, Some(4202), None).unwrap();

    // The export, as the EHR logs it, then the copy to the USB stick.
    let exported = chrono::Utc::now() - chrono::Duration::minutes(3);
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    writeln!(
        f,
        r#"{{"ts":"{}","user":"H_GINA","action":"export","records":900,"host":"WS-HIM-03"}}"#,
        exported.to_rfc3339()
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let copy = usb.join("patients.csv");
    let mut c = std::fs::File::create(&copy).unwrap();
    chown(&copy, Some(4201), None).unwrap();
    writeln!(c, "MRN,Patient Name,DOB,Diagnosis").unwrap();
    for i in 0..300 {
        writeln!(c, "MRN{:07},Doe {i},1970-01-01,I10", 1_000_000 + i).unwrap();
    }
    drop(c);
    std::thread::sleep(Duration::from_secs(3));
    run.stop(Duration::from_secs(30));
    let alerts = json_lines(&dir.path().join("alerts.ndjson"));
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let a = &alerts[0];
    assert_eq!(a["detector"], "export-then-copy");
    assert_eq!(a["user"], "h_gina");
    assert_eq!(a["severity"], "critical");
    let reasons = a["reasons"].to_string();
    assert!(
        reasons.contains("exported 900 patient records"),
        "{reasons}"
    );
    assert!(reasons.contains("removable media"), "{reasons}");
    assert!(reasons.contains("about 300 patient rows"), "{reasons}");
    assert!(
        !reasons.contains("patients.csv") && !reasons.contains("Doe"),
        "{reasons}"
    );
}

/// A folder with an EHR log (`ehr/audit.jsonl`, canonical) and a watched USB folder
/// (`media`, files of uid 4201 are h_gina's, 4202 t_tech's), and the config of `run`
/// over both with a file sink: (folder, usb, log, config).
pub fn exfil_setup() -> (
    tempfile::TempDir,
    std::path::PathBuf,
    std::path::PathBuf,
    std::path::PathBuf,
) {
    let dir = tempfile::tempdir().unwrap();
    let usb = dir.path().join("media");
    std::fs::create_dir_all(&usb).unwrap();
    std::fs::create_dir_all(dir.path().join("ehr")).unwrap();
    let log = dir.path().join("ehr/audit.jsonl");
    std::fs::write(&log, "").unwrap();
    let config = dir.path().join("phiwatch.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[engine]
idle_source_secs = 1
[[sources]]
name = "ehr"
type = "file"
paths = ["ehr/*.jsonl"]
format = "canonical"
[[sources]]
name = "usb"
type = "fswatch"
paths = [{usb:?}]
media = "removable"
debounce_ms = 200
[sources.uids]
"4201" = "h_gina"
"4202" = "t_tech"
[[sinks]]
type = "file"
path = "alerts.ndjson"
format = "json"
[state]
dir = "state"
snapshot_secs = 1
"#
        ),
    )
    .unwrap();
    (dir, usb, log, config)
}

#[test]
fn export_then_usb_copy_is_reported_within_seconds_on_a_busy_log() {
    let _inotify = serial::inotify();
    let (dir, usb, log, config) = exfil_setup();
    let mut child = Command::new(env!("CARGO_BIN_EXE_phiwatch"))
        .args(["run", "--config"])
        .arg(&config)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    // Background traffic: chart views stamped with the current time, 200 a second.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (log, stop) = (log.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..20 {
                    i += 1;
                    writeln!(
                        f,
                        r#"{{"ts":"{}","user":"n{:03}","action":"view","patient":"p{}"}}"#,
                        chrono::Utc::now().to_rfc3339(),
                        i % 50,
                        i % 997
                    )
                    .unwrap();
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    std::thread::sleep(Duration::from_secs(2));

    export_then_usb_copy_is_reported_within_10_s(dir.path(), &usb, &log);
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let _ = child.wait();
}

/// Writes an export of 850 records to `log` dated ten minutes ago, then copies a CSV of
/// 850 patient rows owned by h_gina into `usb`, and waits at most 10 s after the copy for
/// the chain alert in `dir`'s file sink naming both steps; returns it.
pub fn export_then_usb_copy_is_reported_within_10_s(
    dir: &std::path::Path,
    usb: &std::path::Path,
    log: &std::path::Path,
) -> serde_json::Value {
    let exported = chrono::Utc::now() - chrono::Duration::minutes(10);
    let mut f = std::fs::OpenOptions::new().append(true).open(log).unwrap();
    writeln!(
        f,
        r#"{{"ts":"{}","user":"H_GINA","action":"export","records":850,"host":"WS-HIM-03"}}"#,
        exported.to_rfc3339()
    )
    .unwrap();
    drop(f);
    std::thread::sleep(Duration::from_secs(2));
    let copy = usb.join("patients.csv");
    let mut c = std::fs::File::create(&copy).unwrap();
    chown(&copy, Some(4201), None).unwrap();
    writeln!(c, "MRN,Patient Name,DOB,Diagnosis").unwrap();
    for i in 0..850 {
        writeln!(c, "MRN{:07},Doe {i},1970-01-01,I10", 1_000_000 + i).unwrap();
    }
    drop(c);
    let copied = Instant::now();
    let sink = dir.join("alerts.ndjson");
    let chain = loop {
        let alerts = json_lines(&sink);
        if let Some(a) = alerts.iter().find(|a| a["detector"] == "export-then-copy") {
            break a.clone();
        }
        assert!(
            copied.elapsed() < Duration::from_secs(10),
            "no chain alert within 10 s of the copy; alerts: {alerts:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    eprintln!("chain alert {:?} after the copy", copied.elapsed());
    assert_eq!(chain["user"], "h_gina");
    let reasons = chain["reasons"].to_string();
    assert!(
        reasons.contains("exported 850 patient records"),
        "{reasons}"
    );
    assert!(reasons.contains("removable media"), "{reasons}");
    assert!(reasons.contains("about 850 patient rows"), "{reasons}");
    chain
}
