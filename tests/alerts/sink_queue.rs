//! Each sink's disk queue and acknowledgements (`sink::queue`): what a sink had not
//! acknowledged is delivered to it, and only to it, after a restart; a torn frame at the
//! end of a queue (a crash mid-write) is cut off; an alert the engine produces again is
//! not queued twice; an acknowledged queue is emptied.

use crate::support::alert::sample_n;
use anyhow::Result;
use phiwatch::config::AlertFormat;
use phiwatch::format::Formatter;
use phiwatch::pseudonym::PatientPolicy;
use phiwatch::sink::{QueueOptions, Sink, SinkSet};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Keeps what it got; fails every attempt while `down`.
struct Siem {
    down: Arc<AtomicBool>,
    got: Arc<Mutex<Vec<String>>>,
}

impl Sink for Siem {
    fn send(&mut self, line: &str) -> Result<()> {
        if self.down.load(Ordering::SeqCst) {
            anyhow::bail!("connection refused");
        }
        self.got.lock().unwrap().push(line.to_string());
        Ok(())
    }
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
}

type Got = Arc<Mutex<Vec<String>>>;

fn set(dir: &std::path::Path, down: bool) -> (SinkSet, Got, Got) {
    let mut set = SinkSet::with_dir(dir).unwrap();
    let up_got = Arc::new(Mutex::new(Vec::new()));
    let siem_got = Arc::new(Mutex::new(Vec::new()));
    let opts = QueueOptions {
        close_timeout: Duration::from_secs(1),
        ..QueueOptions::default()
    };
    for (name, down, got) in [("up", false, &up_got), ("siem", down, &siem_got)] {
        set.add(
            name,
            "test",
            Box::new(Siem {
                down: Arc::new(AtomicBool::new(down)),
                got: got.clone(),
            }),
            Formatter::new(AlertFormat::Json),
            PatientPolicy::Plain,
            opts,
        );
    }
    (set, up_got, siem_got)
}

fn ids(got: &Mutex<Vec<String>>) -> Vec<String> {
    got.lock()
        .unwrap()
        .iter()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn a_sink_gets_after_a_restart_what_it_had_not_acknowledged_and_only_that() {
    let dir = tempfile::tempdir().unwrap();
    let (s, up, _) = set(dir.path(), true);
    let t = Instant::now();
    for n in 0..3 {
        s.send(&sample_n(n));
    }
    s.sync().unwrap();
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "sending waited for a sink"
    );
    crate::support::wait_for("the live sink", Duration::from_secs(10), || {
        ids(&up).len() == 3
    });
    let err = s
        .close_within(Duration::from_secs(3))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("siem") && err.contains("3 alerts not delivered"),
        "{err}"
    );
    // A crash mid-write left half a frame behind.
    std::fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join("siem.queue"))
        .unwrap()
        .write_all(&[200, 0, 0, 0, 1, 2])
        .unwrap();

    let (s, up, siem) = set(dir.path(), false);
    crate::support::wait_for("the SIEM's backlog", Duration::from_secs(10), || {
        ids(&siem).len() == 3
    });
    assert_eq!(ids(&siem), ["pw-test-0000", "pw-test-0001", "pw-test-0002"]);
    // The engine produces one of them again (a crash before emitted.log): not queued twice.
    s.send(&sample_n(1));
    s.send(&sample_n(3));
    s.sync().unwrap();
    s.flush(Duration::from_secs(10)).unwrap();
    assert_eq!(
        ids(&up),
        ["pw-test-0003"],
        "the live sink had the first three already"
    );
    assert_eq!(ids(&siem).len(), 4);
    s.compact();
    for f in ["up.queue", "up.acked", "siem.queue", "siem.acked"] {
        assert_eq!(
            std::fs::metadata(dir.path().join(f)).unwrap().len(),
            0,
            "{f} emptied"
        );
    }
    s.close().unwrap();
}

/// A sink with room for 2 alerts in memory: the rest waits on disk only and is read back
/// in order, while the process runs and after a restart.
#[test]
fn beyond_queue_size_alerts_wait_on_disk_and_come_back_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let want: Vec<String> = (0..20).map(|n| format!("pw-test-{n:04}")).collect();
    let small = |down: &Arc<AtomicBool>, got: &Got| {
        let mut set = SinkSet::with_dir(dir.path()).unwrap();
        set.add(
            "siem",
            "test",
            Box::new(Siem {
                down: down.clone(),
                got: got.clone(),
            }),
            Formatter::new(AlertFormat::Json),
            PatientPolicy::Plain,
            QueueOptions {
                size: 2,
                close_timeout: Duration::from_secs(1),
                ..QueueOptions::default()
            },
        );
        set
    };
    // While running: down, 20 alerts, then up.
    let down = Arc::new(AtomicBool::new(true));
    let got: Got = Arc::default();
    let s = small(&down, &got);
    for n in 0..20 {
        s.send(&sample_n(n));
    }
    s.sync().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    down.store(false, Ordering::SeqCst);
    s.flush(Duration::from_secs(20)).unwrap();
    assert_eq!(ids(&got), want);
    s.compact();
    s.close().unwrap();

    // Across a restart: down until closed, then a start with the SIEM back.
    let down = Arc::new(AtomicBool::new(true));
    let s = small(&down, &got);
    for n in 20..40 {
        s.send(&sample_n(n));
    }
    s.sync().unwrap();
    assert!(s.close_within(Duration::from_secs(3)).is_err());
    let got: Got = Arc::default();
    let s = small(&Arc::new(AtomicBool::new(false)), &got);
    s.flush(Duration::from_secs(20)).unwrap();
    let want: Vec<String> = (20..40).map(|n| format!("pw-test-{n:04}")).collect();
    assert_eq!(ids(&got), want);
    s.close().unwrap();
}
