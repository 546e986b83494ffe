//! End to end in `run`: an EHR export followed by a copy into a watched USB folder is one
//! high-severity alert naming both steps; routine USB use with no export stays quiet.

use crate::support::process::start_run_quiet;
use crate::support::{json_lines, serial};
use std::io::Write;
use std::os::unix::fs::chown;
use std::time::Duration;

#[test]
fn export_then_copy_to_usb_is_one_alert_naming_both_steps() {
    // The `run` below watches the USB folder with inotify.
    let _inotify = serial::inotify();
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
