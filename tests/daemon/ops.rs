//! Operations with the real programs: promtool on the alerting rules and on a scrape of a
//! running `phiwatch run`, counters that move as events flow, every Grafana query naming
//! an exported metric, systemd-analyze on the units, and one run delivering alerts to
//! rsyslog as CEF and to files as JSON, ECS and OCSF.
//!
//! promtool comes with Debian's `prometheus` package and rsyslogd with `rsyslog`; a missing
//! program fails the test with the install command (PHIWATCH_SKIP_PROMETHEUS=1 /
//! PHIWATCH_SKIP_RSYSLOG=1 skip them where they cannot be installed).

use crate::support::hospital::{write_hospital_for_run, EXPECTED};
use crate::support::process::{phiwatch, start_run_quiet, Proc};
use crate::support::rsyslog::Rsyslog;
use crate::support::{free_tcp_port, http_get, wait_for, ROOT};
use std::collections::BTreeSet;
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

fn promtool() -> Option<PathBuf> {
    if std::env::var("PHIWATCH_SKIP_PROMETHEUS").as_deref() == Ok("1") {
        eprintln!("PHIWATCH_SKIP_PROMETHEUS=1: skipping promtool checks");
        return None;
    }
    for p in ["/usr/bin/promtool", "/usr/local/bin/promtool"] {
        if Path::new(p).is_file() {
            return Some(PathBuf::from(p));
        }
    }
    panic!(
        "promtool is not installed: install it with `apt-get install -y prometheus` \
         (or set PHIWATCH_SKIP_PROMETHEUS=1)"
    );
}

/// `GET path` from the daemon, which must answer.
fn get(port: u16, path: &str) -> (u16, String) {
    http_get(port, path).unwrap_or_else(|| panic!("no answer to GET {path} on {port}"))
}

/// The value of a sample line `name{labels} value` whose name and labels contain all of `want`.
fn sample(scrape: &str, want: &[&str]) -> f64 {
    scrape
        .lines()
        .filter(|l| !l.starts_with('#') && want.iter().all(|w| l.contains(w)))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

fn stop(run: Proc) {
    run.stop(Duration::from_secs(30));
}

#[test]
fn alerting_rules_pass_promtool() {
    let Some(promtool) = promtool() else { return };
    let o = Command::new(promtool)
        .args(["check", "rules"])
        .arg(Path::new(ROOT).join("deploy/prometheus/phiwatch-rules.yml"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
}

#[test]
fn systemd_units_verify() {
    let Some(analyze) = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
    else {
        eprintln!("systemd-analyze is not available here: unit verification skipped");
        return;
    };
    // Point ExecStart at the binary under test, which is not installed in /usr/bin.
    let dir = tempfile::tempdir().unwrap();
    let mut units = Vec::new();
    for name in [
        "phiwatch.service",
        "phiwatch-agent.service",
        "phiwatch-engine.service",
    ] {
        let text =
            std::fs::read_to_string(Path::new(ROOT).join("deploy/systemd").join(name)).unwrap();
        for key in [
            "Type=notify",
            "WatchdogSec=",
            "ProtectSystem=strict",
            "NoNewPrivileges=yes",
            "User=phiwatch",
            "RestartPreventExitStatus=78",
            "LimitNOFILE=65536",
            "LimitCORE=0",
        ] {
            assert!(text.contains(key), "{name} lacks {key}");
        }
        // A failing ExecStartPre is restarted whatever RestartPreventExitStatus says.
        assert!(!text.contains("ExecStartPre="), "{name}");
        if name == "phiwatch-engine.service" {
            assert!(
                !text.contains("CAP_DAC_READ_SEARCH"),
                "{name} reads no audit log"
            );
            assert!(text.contains("CapabilityBoundingSet=\n"), "{name}");
        }
        let p = dir.path().join(name);
        std::fs::write(
            &p,
            text.replace("/usr/bin/phiwatch", env!("CARGO_BIN_EXE_phiwatch")),
        )
        .unwrap();
        units.push(p);
    }
    let o = Command::new(analyze)
        .arg("verify")
        .args(&units)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && err.trim().is_empty(),
        "systemd-analyze verify: {err}"
    );
}

#[test]
fn metrics_scrape_passes_promtool_moves_and_covers_the_dashboard() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_tcp_port();
    let config = write_hospital_for_run(
        dir.path(),
        &format!("\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    let daemon = start_run_quiet(&config);
    wait_for("/readyz", Duration::from_secs(30), || {
        TcpStream::connect(("127.0.0.1", port)).is_ok() && get(port, "/readyz").0 == 200
    });
    wait_for("all lines read", Duration::from_secs(60), || {
        sample(
            &get(port, "/metrics").1,
            &["phiwatch_lines_read_total", "source=\"canonical\""],
        ) > 0.0
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(get(port, "/healthz").0, 200);
    assert_eq!(get(port, "/nope").0, 404);
    let first = get(port, "/metrics").1;
    let read_before = sample(
        &first,
        &["phiwatch_lines_read_total", "source=\"canonical\""],
    );
    let processed_before = sample(
        &first,
        &["phiwatch_events_processed_total", "source=\"canonical\""],
    );
    assert!(
        sample(&first, &["phiwatch_alerts_total"]) >= 10.0,
        "{first}"
    );
    assert!(sample(&first, &["phiwatch_reference_rows", "table=\"staff\""]) == 9.0);
    // No patient or user identifiers in any label.
    for id in ["P001", "P004", "n_alice", "r_dave"] {
        assert!(!first.contains(id), "{id} appears in /metrics");
    }

    // Events flow: counters move.
    {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join("events/canonical.jsonl"))
            .unwrap();
        for i in 0..5 {
            writeln!(f, r#"{{"ts":"2024-03-14T16:0{i}:00Z","user":"n_ivy","action":"view","patient":"P110"}}"#).unwrap();
        }
        writeln!(f, "not json").unwrap();
    }
    wait_for("counters to move", Duration::from_secs(30), || {
        let m = get(port, "/metrics").1;
        sample(&m, &["phiwatch_lines_read_total", "source=\"canonical\""]) >= read_before + 6.0
            && sample(
                &m,
                &["phiwatch_events_processed_total", "source=\"canonical\""],
            ) >= processed_before + 5.0
            && sample(
                &m,
                &[
                    "phiwatch_events_rejected_total",
                    "source=\"canonical\"",
                    "reason=\"bad_json\"",
                ],
            ) >= 1.0
    });
    std::thread::sleep(Duration::from_millis(1500));
    let scrape = get(port, "/metrics").1;
    stop(daemon);

    // Every metric the dashboard queries is exported.
    let exported: BTreeSet<String> = scrape
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_string())
        .collect();
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(ROOT).join("deploy/grafana/phiwatch.json")).unwrap(),
    )
    .unwrap();
    let mut queried = BTreeSet::new();
    for panel in dash["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if word.starts_with("phiwatch_") || word.starts_with("process_") {
                    queried.insert(word.to_string());
                }
            }
        }
    }
    assert!(queried.len() >= 15, "{queried:?}");
    let missing: Vec<&String> = queried.iter().filter(|m| !exported.contains(*m)).collect();
    assert!(
        missing.is_empty(),
        "dashboard queries metrics phiwatch does not export: {missing:?}"
    );

    if let Some(promtool) = promtool() {
        let mut p = Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        p.stdin
            .take()
            .unwrap()
            .write_all(scrape.as_bytes())
            .unwrap();
        let o = p.wait_with_output().unwrap();
        assert!(
            o.status.success(),
            "promtool check metrics: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn one_run_delivers_cef_to_rsyslog_and_json_ecs_ocsf_to_files() {
    let Some(rs) = Rsyslog::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        r#"
[[sinks]]
type = "syslog"
address = "127.0.0.1:{port}"
protocol = "tcp"
format = "cef"

[[sinks]]
type = "file"
path = "alerts.ecs.ndjson"
format = "ecs"

[[sinks]]
type = "file"
path = "alerts.ocsf.ndjson"
format = "ocsf"
"#,
        port = rs.tcp_port
    );
    let config = write_hospital_for_run(dir.path(), &extra);
    let daemon = start_run_quiet(&config);
    let want = EXPECTED.len();
    let count = |f: &str| {
        std::fs::read_to_string(dir.path().join(f))
            .unwrap_or_default()
            .lines()
            .count()
    };
    wait_for("alerts in every sink", Duration::from_secs(90), || {
        count("alerts.ndjson") >= want
            && count("alerts.ecs.ndjson") >= want
            && count("alerts.ocsf.ndjson") >= want
            && rs
                .lines("tcp.log")
                .iter()
                .filter(|l| l.contains("CEF:0|"))
                .count()
                >= want
    });
    stop(daemon);

    let json: Vec<serde_json::Value> = std::fs::read_to_string(dir.path().join("alerts.ndjson"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids: BTreeSet<String> = json
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect();
    for line in std::fs::read_to_string(dir.path().join("alerts.ecs.ndjson"))
        .unwrap()
        .lines()
    {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["event"]["kind"], "alert");
        assert!(ids.contains(v["event"]["id"].as_str().unwrap()));
    }
    for line in std::fs::read_to_string(dir.path().join("alerts.ocsf.ndjson"))
        .unwrap()
        .lines()
    {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["class_uid"], 2004);
        assert!(ids.contains(v["finding_info"]["uid"].as_str().unwrap()));
    }
    let cef: Vec<String> = rs
        .lines("tcp.log")
        .into_iter()
        .filter(|l| l.contains("CEF:0|"))
        .collect();
    assert_eq!(cef.len(), json.len(), "one CEF message per alert");
    for line in &cef {
        let msg = &line[line.find("CEF:0|").unwrap()..];
        let header: Vec<&str> = msg.splitn(8, '|').collect();
        assert_eq!(header.len(), 8, "{msg}");
        assert_eq!(header[1], "phiwatch");
        let sev: u8 = header[6].parse().unwrap();
        assert!(sev <= 10);
        assert!(msg.contains("externalId="), "{msg}");
        let id = msg
            .split("externalId=")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap();
        assert!(ids.contains(id), "{id}");
        // Patient ids leave for the SIEM pseudonymised by default.
        for p in ["P001", "P004", "P005", "P006", "P007"] {
            assert!(!msg.contains(p), "{p} left in clear: {msg}");
        }
    }
}

#[test]
fn deb_assets_exist_and_the_packaged_config_checks() {
    let manifest: toml::Value =
        toml::from_str(&std::fs::read_to_string(Path::new(ROOT).join("Cargo.toml")).unwrap())
            .unwrap();
    let deb = &manifest["package"]["metadata"]["deb"];
    let assets = deb["assets"].as_array().unwrap();
    let mut installed = Vec::new();
    for a in assets {
        let src = a[0].as_str().unwrap();
        installed.push(a[1].as_str().unwrap().to_string());
        if src.starts_with("target/") {
            continue; // built by `cargo deb`
        }
        let matches = glob::glob(&format!("{ROOT}/{src}")).unwrap().count();
        assert!(matches > 0, "deb asset {src} does not exist");
    }
    for want in [
        "usr/bin/",
        "lib/systemd/system/",
        "etc/phiwatch/phiwatch.toml",
        "usr/share/phiwatch/detectors/",
    ] {
        assert!(
            installed.iter().any(|i| i == want),
            "the .deb installs nothing to {want}"
        );
    }
    for script in ["postinst", "prerm", "postrm"] {
        let p = Path::new(ROOT).join("deploy/debian").join(script);
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.starts_with("#!/bin/sh"), "{script}");
    }
    let postinst = std::fs::read_to_string(Path::new(ROOT).join("deploy/debian/postinst")).unwrap();
    assert!(
        postinst.contains("adduser --system"),
        "postinst must create the phiwatch user"
    );
    // The packaged config has no source yet: `check` says what to add, `run` refuses to
    // start with the config-error code the units do not restart on.
    let o = phiwatch()
        .args(["check", "--config"])
        .arg(Path::new(ROOT).join("deploy/phiwatch.toml"))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("no [[sources]] are configured"), "{out}");
    assert!(out.contains("format = \"fhir-audit\""), "{out}");
    assert!(!out.contains("no problems found"), "{out}");

    // The same config with one source (state and alerts moved to a temporary folder)
    // checks clean.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.ndjson"), "").unwrap();
    let text = std::fs::read_to_string(Path::new(ROOT).join("deploy/phiwatch.toml"))
        .unwrap()
        .replace("/var/log/phiwatch", &dir.path().display().to_string())
        .replace("/var/lib/phiwatch", &dir.path().display().to_string())
        .replace("127.0.0.1:9464", "127.0.0.1:0");
    let no_sources = dir.path().join("none.toml");
    std::fs::write(&no_sources, &text).unwrap();
    let started = std::time::Instant::now();
    let o = phiwatch()
        .args(["run", "--config"])
        .arg(&no_sources)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(78), "{err}");
    assert!(err.contains("no [[sources]] are configured"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let with_source = dir.path().join("one.toml");
    std::fs::write(
        &with_source,
        format!(
            "{text}\n[[sources]]\nname = \"ehr\"\ntype = \"file\"\npaths = [\"{}/*.ndjson\"]\nformat = \"canonical\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let o = phiwatch()
        .args(["check", "--config"])
        .arg(&with_source)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    // An engine-only config (events come from Kafka) may have no source.
    let engine = dir.path().join("engine.toml");
    std::fs::write(
        &engine,
        format!("{text}\n[kafka]\nbrokers = \"127.0.0.1:9092\"\n"),
    )
    .unwrap();
    let o = phiwatch()
        .args(["check", "--config"])
        .arg(&engine)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("warning:") && out.contains("phiwatch engine"),
        "{out}"
    );
}
