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
fn alerting_rules_pass_promtool_and_their_unit_tests() {
    // Every rule has a unit test in which it fires (threshold and message) and one at a
    // time it must not.
    let dir = Path::new(ROOT).join("deploy/prometheus");
    let rules: serde_json::Value =
        serde_norway::from_str(&std::fs::read_to_string(dir.join("phiwatch-rules.yml")).unwrap())
            .unwrap();
    let tests: serde_json::Value = serde_norway::from_str(
        &std::fs::read_to_string(dir.join("phiwatch-rules.test.yml")).unwrap(),
    )
    .unwrap();
    let mut names = Vec::new();
    for g in rules["groups"].as_array().unwrap() {
        for r in g["rules"].as_array().unwrap() {
            names.push(r["alert"].as_str().unwrap().to_string());
        }
    }
    assert!(names.len() >= 14, "{names:?}");
    for name in &names {
        let cases: Vec<&serde_json::Value> = tests["tests"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|t| t["alert_rule_test"].as_array().unwrap())
            .filter(|c| c["alertname"] == name.as_str())
            .collect();
        let fires = cases.iter().any(|c| {
            c["exp_alerts"].as_array().is_some_and(|a| {
                !a.is_empty()
                    && a.iter()
                        .all(|x| x["exp_annotations"]["summary"].is_string())
            })
        });
        assert!(
            fires,
            "{name}: no promtool case where it fires with its message"
        );
    }

    let Some(promtool) = promtool() else { return };
    let o = Command::new(&promtool)
        .args(["check", "rules"])
        .arg(dir.join("phiwatch-rules.yml"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    let o = Command::new(&promtool)
        .args(["test", "rules", "phiwatch-rules.test.yml"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "promtool test rules: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
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
    // Six idle connections (as in issue 17, where they held /healthz for 30 s) do not delay it.
    let idle: Vec<TcpStream> = (0..6)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    let asked = std::time::Instant::now();
    assert_eq!(get(port, "/healthz").0, 200);
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );
    drop(idle);
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

#[test]
fn under_the_journal_every_log_line_carries_its_syslog_priority() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    // A UDP syslog sink: phiwatch warns at start that UDP cannot confirm delivery.
    let config = write_hospital_for_run(
        dir.path(),
        "\n[[sinks]]\ntype = \"syslog\"\naddress = \"127.0.0.1:9\"\nprotocol = \"udp\"\nformat = \"cef\"\n",
    );
    let log = dir.path().join("journal.log");
    let file = std::fs::File::create(&log).unwrap();
    let m = file.metadata().unwrap();
    let stream = format!("{}:{}", m.dev(), m.ino());
    let child = phiwatch()
        .args(["run", "--config"])
        .arg(&config)
        .env("JOURNAL_STREAM", &stream)
        .stderr(file)
        .spawn()
        .unwrap();
    let run = Proc(child);
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_for("run started", Duration::from_secs(60), || {
        text().contains("phiwatch run started")
    });
    stop(run);
    let text = text();
    let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    for l in &lines {
        assert!(
            l.len() > 3 && l.starts_with('<') && l.as_bytes()[2] == b'>',
            "no priority prefix: {l}"
        );
    }
    assert!(lines.iter().any(|l| l.starts_with("<6>{")), "{text}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("<4>") && l.contains("UDP")),
        "{text}"
    );

    // The final error of a command that cannot start is an error-priority line.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[engine]\ntimezone = \"UTC\"\n").unwrap();
    let err_log = dir.path().join("err.log");
    let file = std::fs::File::create(&err_log).unwrap();
    let m = file.metadata().unwrap();
    let o = phiwatch()
        .args(["run", "--config"])
        .arg(&bad)
        .env("JOURNAL_STREAM", format!("{}:{}", m.dev(), m.ino()))
        .stderr(file)
        .status()
        .unwrap();
    assert_eq!(o.code(), Some(78));
    let err = std::fs::read_to_string(&err_log).unwrap();
    assert!(err.starts_with("<3>phiwatch: "), "{err}");
    // Not under the journal (JOURNAL_STREAM names another file): no prefix.
    let o = phiwatch()
        .args(["run", "--config"])
        .arg(&bad)
        .env("JOURNAL_STREAM", &stream)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).starts_with("phiwatch: "));
}

#[test]
fn grafana_dashboard_provisions_from_a_file() {
    // What Grafana's file provisioning needs: a plain dashboard model (no `__inputs` or
    // `${DS_...}` placeholders, which only the import dialog fills), a data source picked
    // by a `datasource` variable, an `instance` variable every query filters on, and a
    // provider file in the provisioning format pointing where the package installs it.
    let text =
        std::fs::read_to_string(Path::new(ROOT).join("deploy/grafana/phiwatch.json")).unwrap();
    assert!(
        !text.contains("__inputs") && !text.contains("${DS_"),
        "import-only placeholders"
    );
    let dash: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(
        dash["id"].is_null(),
        "provisioned dashboards carry no database id"
    );
    assert!(dash["uid"]
        .as_str()
        .is_some_and(|u| !u.is_empty() && u.len() <= 40));
    assert!(dash["title"].is_string());
    assert!(dash["schemaVersion"].as_u64().unwrap() >= 36);
    let vars = dash["templating"]["list"].as_array().unwrap();
    let var = |name: &str| {
        vars.iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no ${name} variable"))
    };
    assert_eq!(var("datasource")["type"], "datasource");
    assert_eq!(var("datasource")["query"], "prometheus");
    let inst = var("instance");
    assert_eq!(inst["type"], "query");
    assert_eq!(inst["datasource"]["uid"], "${datasource}");
    assert!(inst["definition"]
        .as_str()
        .unwrap()
        .contains("label_values(phiwatch_up"));
    let mut ids = BTreeSet::new();
    let mut titles = Vec::new();
    for p in dash["panels"].as_array().unwrap() {
        let title = p["title"].as_str().unwrap();
        titles.push(title.to_string());
        assert!(
            ids.insert(p["id"].as_u64().unwrap()),
            "panel id twice: {title}"
        );
        for k in ["x", "y", "w", "h"] {
            assert!(p["gridPos"][k].is_u64(), "{title}: gridPos.{k}");
        }
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{title}");
        assert_eq!(p["datasource"]["type"], "prometheus", "{title}");
        for t in p["targets"].as_array().unwrap() {
            assert_eq!(t["datasource"]["uid"], "${datasource}", "{title}");
            let expr = t["expr"].as_str().unwrap();
            // Every metric selector is filtered by the instance variable.
            let selectors = expr.matches("phiwatch_").count() + expr.matches("process_").count();
            assert_eq!(
                expr.matches("instance=~\"$instance\"").count(),
                selectors,
                "{title}: {expr}"
            );
        }
    }
    for want in [
        "phiwatch_sink_failed_total",
        "phiwatch_sink_dropped_total",
        "phiwatch_events_late_total",
        "phiwatch_sink_unconfirmed_total",
        "phiwatch_build_info",
    ] {
        assert!(text.contains(want), "no panel shows {want}");
    }
    assert!(titles.iter().any(|t| t.contains("lost")), "{titles:?}");
    assert!(titles.iter().any(|t| t.contains("Late")), "{titles:?}");

    let prov: serde_json::Value = serde_norway::from_str(
        &std::fs::read_to_string(
            Path::new(ROOT).join("deploy/grafana/provisioning/phiwatch-dashboards.yml"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(prov["apiVersion"], 1);
    let provider = &prov["providers"][0];
    assert_eq!(provider["type"], "file");
    assert!(provider["name"].is_string() && provider["folder"].is_string());
    let path = provider["options"]["path"].as_str().unwrap();
    // The package installs the dashboard exactly there.
    let manifest: toml::Value =
        toml::from_str(&std::fs::read_to_string(Path::new(ROOT).join("Cargo.toml")).unwrap())
            .unwrap();
    let installed = manifest["package"]["metadata"]["deb"]["assets"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| {
            a[0].as_str() == Some("deploy/grafana/phiwatch.json")
                && format!("/{}", a[1].as_str().unwrap().trim_end_matches('/')) == path
        });
    assert!(
        installed,
        "the provider reads {path}, where the .deb does not install the dashboard"
    );
    let ds: serde_json::Value = serde_norway::from_str(
        &std::fs::read_to_string(
            Path::new(ROOT).join("deploy/grafana/provisioning/phiwatch-datasource.example.yml"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(ds["apiVersion"], 1);
    assert_eq!(ds["datasources"][0]["type"], "prometheus");
}

#[test]
fn secrets_stay_out_of_the_log_and_patient_files_are_owner_only_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    // A webhook with credentials in its url, at a port nobody listens on: every attempt
    // fails and is logged.
    let port = free_tcp_port();
    let config = write_hospital_for_run(
        dir.path(),
        &format!(
            "\n[[sinks]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"http://alice:s3cret@127.0.0.1:{port}/in?token=t0k\"\n"
        ),
    );
    let log = dir.path().join("run.log");
    let child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "umask 000; exec '{}' run --config '{}' 2>'{}'",
            env!("CARGO_BIN_EXE_phiwatch"),
            config.display(),
            log.display()
        ))
        .spawn()
        .unwrap();
    let run = Proc(child);
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_for("webhook failures logged", Duration::from_secs(60), || {
        text().matches("webhook").count() >= 2
            && dir.path().join("state/run.snapshot.json").exists()
    });
    stop(run);
    let text = text();
    for secret in ["s3cret", "alice:", "t0k"] {
        assert!(!text.contains(secret), "{secret} in the log:\n{text}");
    }
    assert!(text.contains("http://***@127.0.0.1"), "{text}");
    // Everything under the state folder that holds patient ids is 0600.
    let mut checked = 0;
    for entry in walk(&dir.path().join("state")) {
        let name = entry.file_name().unwrap().to_string_lossy().to_string();
        if name.ends_with(".lock") || entry.is_dir() {
            continue;
        }
        let mode = std::fs::metadata(&entry).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "{} is {mode:o}", entry.display());
        checked += 1;
    }
    assert!(checked >= 2, "no state file checked");

    let out = dir.path().join("replayed.ndjson");
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "umask 000; exec '{}' replay --config '{}' --out '{}'",
            env!("CARGO_BIN_EXE_phiwatch"),
            config.display(),
            out.display()
        ))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

#[test]
fn man_pages_and_completions_come_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let o = phiwatch()
        .args(["package-assets", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let man = std::fs::read_to_string(dir.path().join("man/phiwatch.1")).unwrap();
    assert!(
        man.starts_with(".ie") || man.contains(".TH phiwatch 1"),
        "{man}"
    );
    for section in [
        ".SH EXIT STATUS",
        "78 (EX_CONFIG)",
        ".SH FILES",
        "journalctl",
    ] {
        assert!(man.contains(section), "phiwatch.1 lacks {section}");
    }
    assert!(
        !man.contains("package-assets"),
        "the hidden command is documented"
    );
    let bash = std::fs::read_to_string(dir.path().join("completions/phiwatch")).unwrap();
    for sub in [
        "run", "replay", "check", "agent", "engine", "simulate", "demo", "tap", "score",
    ] {
        assert!(
            dir.path().join(format!("man/phiwatch-{sub}.1")).is_file(),
            "no man page for {sub}"
        );
        assert!(bash.contains(sub), "bash completion lacks {sub}");
    }
    assert!(bash.contains("--config"));
    assert!(dir.path().join("completions/_phiwatch").is_file());
    assert!(dir.path().join("completions/phiwatch.fish").is_file());
}
