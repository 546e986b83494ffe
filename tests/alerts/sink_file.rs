//! File sink (rotation, flush/close, logrotate), the fan-out (a dead sink does not block
//! the others; overflow policies; retries) and config errors.

use crate::support::alert::{sample_n, send_samples};
use crate::support::{config, free_tcp_port, lines};
use anyhow::Result;
use phiwatch::alert::Alert;
use phiwatch::config::{AlertFormat, Config};
use phiwatch::format::Formatter;
use phiwatch::pseudonym::PatientPolicy;
use phiwatch::sink::{self, Overflow, Permanent, QueueOptions, Sink, SinkSet, SinkSpec};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

fn ids(path: &Path) -> Vec<String> {
    lines(path)
        .iter()
        .map(|l| {
            serde_json::from_str::<Alert>(l)
                .expect("whole JSON line")
                .id
        })
        .collect()
}

#[test]
fn rotates_by_size_and_keeps_max_files() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        r#"
[[sinks]]
type = "file"
path = "out/alerts.ndjson"
max_bytes = 2000
max_files = 2
fsync_secs = 0
"#,
    );
    let set = sink::build(&cfg).unwrap();
    send_samples(&set, 0..20);
    set.close().unwrap();
    let base = dir.path().join("out/alerts.ndjson");
    let f1 = dir.path().join("out/alerts.ndjson.1");
    let f2 = dir.path().join("out/alerts.ndjson.2");
    assert!(
        !dir.path().join("out/alerts.ndjson.3").exists(),
        "only 2 rotations kept"
    );
    for f in [&base, &f1, &f2] {
        let len = std::fs::metadata(f).unwrap().len();
        assert!(len > 0 && len <= 2000, "{} is {len} bytes", f.display());
    }
    // Oldest to newest, the kept files hold the last alerts in order, none missing.
    let mut kept = ids(&f2);
    kept.extend(ids(&f1));
    kept.extend(ids(&base));
    let want: Vec<String> = (20 - kept.len()..20)
        .map(|n| format!("pw-test-{n:04}"))
        .collect();
    assert_eq!(kept, want);
    assert!(kept.len() >= 6);
}

#[test]
fn flush_and_close_write_everything() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        r#"
[[sinks]]
type = "file"
path = "alerts.ndjson"
fsync_secs = 3600

[[sinks]]
type = "file"
path = "alerts.cef"
format = "cef"
patient_ids = "omitted"
"#,
    );
    let set = sink::build(&cfg).unwrap();
    send_samples(&set, 0..5);
    set.flush(Duration::from_secs(10)).unwrap();
    assert_eq!(ids(&dir.path().join("alerts.ndjson")).len(), 5);
    send_samples(&set, 5..8);
    let stats = set.stats();
    set.close().unwrap();
    assert_eq!(ids(&dir.path().join("alerts.ndjson")).len(), 8);
    let cef = lines(&dir.path().join("alerts.cef"));
    assert_eq!(cef.len(), 8);
    assert!(cef
        .iter()
        .all(|l| l.starts_with("CEF:0|") && !l.contains("MRN")));
    for s in stats {
        let snap = s.stats.snapshot();
        assert_eq!(
            (snap.sent, snap.queued, snap.errors),
            (8, 0, 0),
            "{}",
            s.name
        );
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("alerts.ndjson"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o007, 0, "not readable by others");
    }
}

/// An engine restarted after a crash may hand over again the alerts it wrote just before
/// (it records them as written only after the flush): the file sink does not repeat them.
#[test]
fn alerts_already_at_the_end_of_the_file_are_not_written_again() {
    let dir = tempfile::tempdir().unwrap();
    let toml = r#"
[[sinks]]
type = "file"
path = "alerts.ndjson"

[[sinks]]
type = "file"
path = "alerts.cef"
format = "cef"
"#;
    let alert = |n: u64| {
        let mut a = sample_n(n as usize);
        a.id = format!("pw-{n:024x}");
        a
    };
    let set = sink::build(&config(dir.path(), toml)).unwrap();
    for n in 0..5 {
        set.send(&alert(n));
    }
    set.close().unwrap();
    // The restart: 3 and 4 come again, then new ones.
    let set = sink::build(&config(dir.path(), toml)).unwrap();
    for n in 3..8 {
        set.send(&alert(n));
    }
    set.close().unwrap();
    let want: Vec<String> = (0..8).map(|n| alert(n).id).collect();
    assert_eq!(ids(&dir.path().join("alerts.ndjson")), want);
    let cef = lines(&dir.path().join("alerts.cef"));
    assert_eq!(cef.len(), 8, "{cef:#?}");
    // After another restart, a new alert is written as usual.
    let set = sink::build(&config(dir.path(), toml)).unwrap();
    set.send(&alert(8));
    set.close().unwrap();
    assert_eq!(ids(&dir.path().join("alerts.ndjson")).len(), 9);
}

#[test]
fn reopens_after_the_file_is_moved_away() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "[[sinks]]\ntype = \"file\"\npath = \"a.ndjson\"\n",
    );
    let set = sink::build(&cfg).unwrap();
    set.send(&sample_n(1));
    set.flush(Duration::from_secs(10)).unwrap();
    std::fs::rename(dir.path().join("a.ndjson"), dir.path().join("moved")).unwrap();
    set.send(&sample_n(2));
    set.close().unwrap();
    assert_eq!(ids(&dir.path().join("moved")), ["pw-test-0001"]);
    assert_eq!(ids(&dir.path().join("a.ndjson")), ["pw-test-0002"]);
}

#[test]
fn a_dead_syslog_sink_does_not_block_the_file_sink() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_tcp_port(); // closed again: connections are refused
    let cfg = config(
        dir.path(),
        &format!(
            r#"
[[sinks]]
name = "dead-siem"
type = "syslog"
address = "127.0.0.1:{port}"
protocol = "tcp"
format = "cef"
close_timeout_secs = 1

[[sinks]]
type = "file"
path = "alerts.ndjson"
"#
        ),
    );
    let set = sink::build(&cfg).unwrap();
    let start = Instant::now();
    send_samples(&set, 0..50);
    let file = dir.path().join("alerts.ndjson");
    while ids(&file).len() < 50 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "file sink stalled"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let stats = set.stats();
    let dead = stats.iter().find(|s| s.name == "dead-siem").unwrap();
    let snap = dead.stats.snapshot();
    assert_eq!(snap.sent, 0);
    assert!(snap.errors >= 1, "{snap:?}");
    assert!(
        snap.queued >= 48,
        "the dead sink keeps the alerts queued: {snap:?}"
    );
    // The default pseudonym key was created for the syslog sink.
    assert!(dir.path().join("state/pseudonym.key").exists());

    let closing = Instant::now();
    let err = set.close().unwrap_err().to_string();
    assert!(
        closing.elapsed() < Duration::from_secs(8),
        "close took {:?}",
        closing.elapsed()
    );
    assert!(
        err.contains("dead-siem") && err.contains("50 alerts not delivered"),
        "{err}"
    );
    let snap = dead.stats.snapshot();
    assert_eq!((snap.failed, snap.queued), (50, 0), "{snap:?}");
    assert_eq!(ids(&file).len(), 50);
}

/// A sink that waits for a go-ahead before each line.
struct Gate(Arc<Mutex<mpsc::Receiver<()>>>, Arc<AtomicUsize>);

impl Sink for Gate {
    fn send(&mut self, _line: &str) -> Result<()> {
        self.0.lock().unwrap().recv().ok();
        self.1.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
}

#[test]
fn overflow_drop_counts_and_block_never_drops() {
    for overflow in [Overflow::Drop, Overflow::Block] {
        let (go, rx) = mpsc::channel();
        let done = Arc::new(AtomicUsize::new(0));
        let mut set = SinkSet::new();
        set.add(
            "gate",
            "test",
            Box::new(Gate(Arc::new(Mutex::new(rx)), done.clone())),
            Formatter::new(AlertFormat::Json),
            PatientPolicy::Plain,
            QueueOptions {
                size: 3,
                overflow,
                close_timeout: Duration::from_secs(5),
            },
        );
        let stats = set.stats()[0].stats.clone();
        let opener = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            for _ in 0..100 {
                if go.send(()).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        send_samples(&set, 0..20);
        set.close().unwrap();
        opener.join().unwrap();
        let s = stats.snapshot();
        match overflow {
            Overflow::Drop => {
                assert!(s.dropped >= 15, "{s:?}");
                assert_eq!(s.sent + s.dropped, 20, "{s:?}");
            }
            Overflow::Block => assert_eq!((s.sent, s.dropped), (20, 0), "{s:?}"),
        }
        assert_eq!(done.load(Ordering::SeqCst) as u64, s.sent);
    }
}

/// Fails `n` times, then works; or always fails permanently.
struct Flaky {
    fail: usize,
    permanent: bool,
    got: Arc<Mutex<Vec<String>>>,
}

impl Sink for Flaky {
    fn send(&mut self, line: &str) -> Result<()> {
        if self.permanent {
            return Err(Permanent("HTTP 400".into()).into());
        }
        if self.fail > 0 {
            self.fail -= 1;
            anyhow::bail!("connection refused");
        }
        self.got.lock().unwrap().push(line.to_string());
        Ok(())
    }
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
}

#[test]
fn retries_keep_the_alert_and_permanent_errors_give_up() {
    let got = Arc::new(Mutex::new(Vec::new()));
    let mut set = SinkSet::new();
    set.add(
        "flaky",
        "test",
        Box::new(Flaky {
            fail: 2,
            permanent: false,
            got: got.clone(),
        }),
        Formatter::new(AlertFormat::Json),
        PatientPolicy::Plain,
        QueueOptions::default(),
    );
    set.add(
        "rejecting",
        "test",
        Box::new(Flaky {
            fail: 0,
            permanent: true,
            got: Arc::new(Mutex::new(Vec::new())),
        }),
        Formatter::new(AlertFormat::Json),
        PatientPolicy::Plain,
        QueueOptions::default(),
    );
    let stats = set.stats();
    set.send(&sample_n(1));
    set.send(&sample_n(2));
    set.flush(Duration::from_secs(10)).unwrap();
    set.close().unwrap();
    let got = got.lock().unwrap();
    assert_eq!(got.len(), 2);
    assert!(got[0].contains("pw-test-0001") && got[1].contains("pw-test-0002"));
    let s = stats[0].stats.snapshot();
    assert_eq!(
        (s.sent, s.errors, s.retries, s.failed),
        (2, 2, 2, 0),
        "{s:?}"
    );
    let s = stats[1].stats.snapshot();
    assert_eq!(
        (s.sent, s.errors, s.retries, s.failed),
        (0, 2, 0, 2),
        "{s:?}"
    );
}

#[test]
fn config_errors_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    // Unknown keys and wrong types are found when the config is read (with their line),
    // the rest when the sink is built.
    let err = |toml: &str| -> String {
        let mut cfg = match Config::from_toml(toml) {
            Ok(cfg) => cfg,
            Err(e) => return format!("{e:#}"),
        };
        cfg.resolve(dir.path());
        match sink::build(&cfg) {
            Ok(_) => panic!("accepted: {toml}"),
            Err(e) => format!("{e:#}"),
        }
    };
    let e = err("[[sinks]]\ntype = \"file\"\npath = \"a\"\nmax_byte = 5\n");
    assert!(
        e.contains("unknown key `max_byte`") && e.contains("max_bytes"),
        "{e}"
    );
    let e = err("[[sinks]]\ntype = \"kafka\"\ntopik = \"alerts\"\n");
    assert!(
        e.contains("unknown key `topik`") && e.contains("topic"),
        "{e}"
    );
    let e = err("[[sinks]]\ntype = \"file\"\n");
    assert!(e.contains("needs `path`"), "{e}");
    let e = err("[[sinks]]\ntype = \"file\"\npath = \"a\"\noverflow = \"spill\"\n");
    assert!(e.contains("\"block\"") && e.contains("#1"), "{e}");
    let e = err("[[sinks]]\ntype = \"syslog\"\naddress = \"127.0.0.1:1\"\nprotocol = \"sctp\"\n");
    assert!(e.contains("\"udp\", \"tcp\" or \"tls\""), "{e}");
    let e = err("[[sinks]]\ntype = \"syslog\"\naddress = \"127.0.0.1:1\"\nprotocol = \"tls\"\nca_file = \"nope.pem\"\n");
    assert!(e.contains("ca_file") && e.contains("nope.pem"), "{e}");
    let e = err("[[sinks]]\ntype = \"webhook\"\n");
    assert!(e.contains("needs `url`"), "{e}");
    let e = err("[[sinks]]\ntype = \"webhook\"\naddress = \"http://x\"\n");
    assert!(
        e.contains("`address` is not used by a webhook sink") && e.contains("`url`"),
        "{e}"
    );
    let e = err("[[sinks]]\ntype = \"stdout\"\npath = \"x\"\n");
    assert!(e.contains("`path` is not used by a stdout sink"), "{e}");
    let e = err("[[sinks]]\ntype = \"file\"\npath = \"a\"\nqueue_size = \"big\"\n");
    assert!(
        e.contains("queue_size") && e.contains("whole number"),
        "{e}"
    );

    let e = Config::from_toml(
        "[[sinks]]\ntype = \"kafka\"\nbogus = 1\n[[sinks]]\ntype = \"file\"\npath = \"x\"\n",
    )
    .unwrap_err();
    let e = format!("{e:#}");
    assert!(e.starts_with("line 3: unknown key `bogus`"), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
    let cfg = config(
        dir.path(),
        "[[sinks]]\ntype = \"kafka\"\noverflow = \"spill\"\n[[sinks]]\ntype = \"file\"\npath = \"x\"\n",
    );
    let problems = sink::check(&cfg);
    assert_eq!(problems.len(), 1, "{problems:?}");
}

#[test]
fn sink_set_can_be_shared_between_threads() {
    fn shared<T: Send + Sync>() {}
    shared::<SinkSet>();
}

#[test]
fn default_policies_and_default_sink() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        r#"
[[sinks]]
type = "file"
path = "a"
[[sinks]]
type = "syslog"
address = "127.0.0.1:514"
[[sinks]]
type = "webhook"
url = "http://127.0.0.1:9/x"
[[sinks]]
type = "syslog"
address = "127.0.0.1:514"
patient_ids = "omitted"
"#,
    );
    let names: Vec<&str> = cfg
        .sinks
        .iter()
        .enumerate()
        .map(|(i, s)| {
            SinkSpec::from_config(i, s, &cfg, false)
                .unwrap()
                .policy
                .name()
        })
        .collect();
    assert_eq!(
        names,
        ["plain", "pseudonymised", "pseudonymised", "omitted"]
    );
    assert!(
        !dir.path().join("state/pseudonym.key").exists(),
        "check creates nothing"
    );

    let set = sink::build(&config(dir.path(), "")).unwrap();
    let stats = set.stats();
    assert_eq!(stats.len(), 1);
    assert_eq!(
        (stats[0].name.as_str(), stats[0].kind),
        ("stdout", "stdout")
    );
    set.close().unwrap();
}
