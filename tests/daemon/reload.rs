//! Reloads while the daemons run, seen from outside through `/metrics`: reference data
//! edits are picked up and their row gauges follow, a bad edit counts one reload error
//! (not one every poll) and keeps the data in service, and SIGHUP reloads detectors,
//! in `run` and in `engine` alike.

use crate::support::hospital::{engine_setting, write_hospital_for_run};
use crate::support::process::{start_logged, Proc};
use crate::support::{free_tcp_port, http_get, tansu, ROOT};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The crafted hospital with its own copy of the shipped detectors and `/metrics` on `port`.
fn hospital(dir: &Path, port: u16, extra: &str) -> PathBuf {
    let detectors = dir.join("detectors");
    std::fs::create_dir_all(&detectors).unwrap();
    for e in std::fs::read_dir(Path::new(ROOT).join("detectors")).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, detectors.join(p.file_name().unwrap())).unwrap();
    }
    let config = write_hospital_for_run(
        dir,
        &format!("\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n{extra}"),
    );
    engine_setting(&config, "detectors = \"detectors\"");
    config
}

/// The value of one series on `/metrics`, or None while the listener is not up.
fn metric(port: u16, series: &str) -> Option<f64> {
    let (_, body) = http_get(port, "/metrics")?;
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Waits until `series` satisfies `ok`; panics with the log after `secs`.
fn wait_metric(port: u16, series: &str, ok: impl Fn(f64) -> bool, secs: u64, log: &Path) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = metric(port, series) {
            if ok(v) {
                return v;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{series} = {:?} after {secs} s\n{}",
            metric(port, series),
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The same checks for either daemon, which must already be up on `port`.
fn reloads_follow_the_files(child: &Proc, dir: &Path, port: u16, log: &Path) {
    let staff = r#"phiwatch_reference_rows{table="staff"}"#;
    let care = r#"phiwatch_reference_rows{table="care"}"#;
    let before = wait_metric(port, staff, |v| v > 0.0, 60, log);
    let care_rows = wait_metric(port, care, |v| v > 0.0, 5, log);

    // A new staff member: the gauge follows the file.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("staff.csv"))
        .unwrap();
    let header = std::fs::read_to_string(dir.join("staff.csv")).unwrap();
    // Dates and the like stay valid: copy the last row's tail, new id.
    let last = header.lines().last().unwrap();
    let tail: Vec<&str> = last.split(',').skip(1).collect();
    writeln!(f, "z_new,{}", tail.join(",")).unwrap();
    drop(f);
    wait_metric(port, staff, |v| v == before + 1.0, 20, log);

    // A care export with one bad row (its end before its start) and one broken line: the
    // good rows load, the bad ones are set aside and counted; no reload error.
    let errors = "phiwatch_reference_reload_errors_total";
    let rejected = r#"phiwatch_reference_rows_rejected{table="care"}"#;
    let care_path = dir.join("care.csv");
    let good_care = std::fs::read_to_string(&care_path).unwrap();
    std::fs::write(
        &care_path,
        format!(
            "{good_care}P002,Oncology,,2024-03-10T00:00:00Z,2024-03-01T00:00:00Z\n\
             P003,Cardiology,,not a time,\n"
        ),
    )
    .unwrap();
    wait_metric(port, rejected, |v| v == 2.0, 20, log);
    assert_eq!(
        metric(port, care),
        Some(care_rows),
        "the good rows stay in service"
    );
    assert_eq!(metric(port, errors), Some(0.0));

    // A care file that is not one (its header lacks the columns): one counted error, the
    // data in service stays, and the error is not repeated while the file stays as it is.
    std::fs::write(&care_path, "this,is,not,a,care,file\n1,2,3,4,5,6\n").unwrap();
    wait_metric(port, errors, |v| v == 1.0, 20, log);
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        metric(port, errors),
        Some(1.0),
        "the same bad file counted again"
    );
    assert_eq!(
        metric(port, care),
        Some(care_rows),
        "the good data left service"
    );

    // SIGHUP with a broken detector file: counted, the detectors in service stay.
    let detectors = "phiwatch_detectors";
    let n = wait_metric(port, detectors, |v| v > 0.0, 5, log);
    std::fs::write(dir.join("detectors/broken.yml"), "id: broken\nkind: [").unwrap();
    child.signal("HUP");
    wait_metric(
        port,
        "phiwatch_detector_reload_errors_total",
        |v| v == 1.0,
        20,
        log,
    );
    assert_eq!(metric(port, detectors), Some(n));

    // SIGHUP with one more valid detector: it is in service.
    std::fs::remove_file(dir.join("detectors/broken.yml")).unwrap();
    // A detector's id is its file name.
    let copy = std::fs::read_to_string(dir.join("detectors/self-access.yml")).unwrap();
    std::fs::write(dir.join("detectors/self-access-copy.yml"), copy).unwrap();
    child.signal("HUP");
    wait_metric(port, detectors, |v| v == n + 1.0, 20, log);
    wait_metric(
        port,
        r#"phiwatch_alerts_total{detector="self-access-copy",severity="high"}"#,
        |_| true,
        5,
        log,
    );
}

#[test]
fn run_reloads_reference_data_and_detectors() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_tcp_port();
    let config = hospital(dir.path(), port, "");
    let log = dir.path().join("run.log");
    let child = start_logged("run", &config, &log);
    reloads_follow_the_files(&child, dir.path(), port, &log);
    child.stop(Duration::from_secs(30));
}

#[test]
fn engine_reloads_reference_data_and_detectors() {
    let Some(broker) = tansu::Broker::start() else {
        return;
    };
    broker.create_topic("phiwatch.events", 1);
    broker.create_topic("phiwatch.alerts", 1);
    let dir = tempfile::tempdir().unwrap();
    let port = free_tcp_port();
    let config = hospital(
        dir.path(),
        port,
        &format!("\n[kafka]\nbrokers = \"{}\"\n", broker.address()),
    );
    let log = dir.path().join("engine.log");
    let child = start_logged("engine", &config, &log);
    reloads_follow_the_files(&child, dir.path(), port, &log);
    child.stop(Duration::from_secs(60));
}

/// The threads of process `pid` named `name` (Linux: /proc/PID/task/*/comm).
fn threads_named(pid: u32, name: &str) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|tasks| {
            tasks
                .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                .filter(|comm| comm.trim_end() == name)
                .count()
        })
        .unwrap_or(0)
}

/// A reference load held open: the care file is replaced by a FIFO, so the load that
/// notices the change blocks reading it for as long as the test likes. Meanwhile events
/// written to the source are read and processed with the data in service; once the FIFO
/// is fed the new data goes into service. No timing is asserted, only that processing
/// goes on while the load is provably under way (its thread is there and the data in
/// service is still the old one).
#[test]
fn run_keeps_processing_events_while_reference_data_loads() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_tcp_port();
    std::fs::write(
        d.join("staff.csv"),
        "user_id,given_name,family_name,role,department,address,postcode,hire_date,termination_date\n\
         n_alice,Alice,Nguyen,nurse,Cardiology,12 Elm St,01101,2019-01-01,\n",
    )
    .unwrap();
    std::fs::write(
        d.join("patients.csv"),
        "patient_id,given_name,family_name,birth_date,address,postcode,deceased_date,vip,employee_user_id\n\
         P1,Ann,Lee,1970-01-01,3 Oak Ave,01102,,false,\n",
    )
    .unwrap();
    let care = "patient_id,department,user_id,start,end\nP1,Cardiology,,2024-01-01T00:00:00Z,\n";
    std::fs::write(d.join("care.csv"), care).unwrap();
    std::fs::create_dir_all(d.join("events")).unwrap();
    let config = d.join("phiwatch.toml");
    std::fs::write(
        &config,
        format!(
            "[reference]\nstaff = \"staff.csv\"\npatients = \"patients.csv\"\ncare = \"care.csv\"\n\n\
             [[sources]]\nname = \"ehr\"\ntype = \"file\"\npaths = [\"events/*.jsonl\"]\nformat = \"canonical\"\n\n\
             [[sinks]]\ntype = \"file\"\npath = \"alerts.ndjson\"\nformat = \"json\"\n\n\
             [state]\ndir = \"state\"\n\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n"
        ),
    )
    .unwrap();
    let log = d.join("run.log");
    let child = start_logged("run", &config, &log);
    let processed = r#"phiwatch_events_processed_total{source="ehr"}"#;
    let loaded_at = "phiwatch_reference_reload_timestamp_seconds";
    let care_rows = r#"phiwatch_reference_rows{table="care"}"#;
    let first_load = wait_metric(port, loaded_at, |v| v > 0.0, 60, &log);
    wait_metric(port, care_rows, |v| v == 1.0, 5, &log);

    let events = d.join("events/ehr.jsonl");
    let append = |n: usize| {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&events)
            .unwrap();
        let ts = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ");
        for _ in 0..n {
            writeln!(
                f,
                r#"{{"ts":"{ts}","user":"n_alice","action":"view","patient":"P1"}}"#
            )
            .unwrap();
        }
    };
    append(3);
    wait_metric(port, processed, |v| v == 3.0, 30, &log);

    // The care file becomes a FIFO nobody writes to yet: the load that notices it blocks.
    std::fs::remove_file(d.join("care.csv")).unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(d.join("care.csv"))
        .status()
        .unwrap();
    assert!(status.success(), "mkfifo failed");
    crate::support::wait_for("the reload to start", Duration::from_secs(30), || {
        threads_named(child.id(), "reference-load") == 1
    });

    // While it is under way, events go on being processed with the data in service.
    for round in 1..=3 {
        append(2);
        wait_metric(port, processed, |v| v == 3.0 + 2.0 * round as f64, 30, &log);
        assert_eq!(
            threads_named(child.id(), "reference-load"),
            1,
            "the load is still under way"
        );
        assert_eq!(
            metric(port, loaded_at),
            Some(first_load),
            "the old data serves"
        );
    }

    // The FIFO is fed: the load finishes and its data goes into service. It makes way
    // for a plain file with the same rows first, so that no later look blocks on it.
    let fed = format!("{care}P2,ICU,,2024-01-01T00:00:00Z,\n");
    std::fs::rename(d.join("care.csv"), d.join("care.fifo")).unwrap();
    std::fs::write(d.join("care.csv"), &fed).unwrap();
    let mut fifo = std::fs::OpenOptions::new()
        .write(true)
        .open(d.join("care.fifo"))
        .unwrap();
    fifo.write_all(fed.as_bytes()).unwrap();
    drop(fifo);
    wait_metric(port, loaded_at, |v| v > first_load, 30, &log);
    wait_metric(port, care_rows, |v| v == 2.0, 30, &log);
    append(1);
    wait_metric(port, processed, |v| v == 10.0, 30, &log);
    child.stop(Duration::from_secs(30));
}
