//! The `fswatch` source on real inotify, in temporary folders: chunked writes are one
//! event, moves in and deletes are seen, folders made after start are watched, the owner
//! is mapped to a staff account, PHI is counted, and a forced queue overflow is detected
//! and recovered by a rescan.
//!
//! Each test holds `serial::inotify()`: the overflow test lowers the machine's inotify
//! queue limit for a moment.

use crate::support::serial;
use phiwatch::config::SourceConfig;
use phiwatch::event::{Action, Event, Media};
use std::io::Write;
use std::os::unix::fs::chown;
use std::path::Path;
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

fn source(dir: &Path, extra: &str) -> SourceConfig {
    toml::from_str(&format!(
        "name = \"usb\"\ntype = \"fswatch\"\npaths = [{:?}]\nmedia = \"removable\"\ndebounce_ms = 300\n{extra}",
        dir.to_string_lossy()
    ))
    .unwrap()
}

fn watch(cfg: &SourceConfig) -> (phiwatch::source::fswatch::FsWatch, Receiver<Event>) {
    let (tx, rx) = channel();
    let w = phiwatch::source::fswatch::start(
        cfg,
        Box::new(move |evs| evs.into_iter().all(|e| tx.send(e).is_ok())),
    )
    .unwrap();
    (w, rx)
}

/// Events until `done` says enough, or the deadline.
fn collect(rx: &Receiver<Event>, secs: u64, mut done: impl FnMut(&[Event]) -> bool) -> Vec<Event> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut got = Vec::new();
    while Instant::now() < deadline && !done(&got) {
        if let Ok(e) = rx.recv_timeout(Duration::from_millis(50)) {
            got.push(e);
        }
    }
    got
}

#[test]
fn chunked_write_is_one_event_with_the_owner_mapped_within_a_second() {
    let _inotify = serial::inotify();
    let dir = tempfile::tempdir().unwrap();
    let cfg = source(dir.path(), "[uids]\n\"4242\" = \"u1042\"\n");
    let (_w, rx) = watch(&cfg);
    let p = dir.path().join("export.csv");
    {
        let mut f = std::fs::File::create(&p).unwrap();
        chown(&p, Some(4242), None).unwrap();
        writeln!(f, "MRN,Patient Name,DOB").unwrap();
        for i in 0..50 {
            writeln!(f, "MRN{:07},Doe {i},1970-01-01", 1_000_000 + i).unwrap();
            f.flush().unwrap();
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let written = Instant::now();
    let got = collect(&rx, 5, |g| !g.is_empty());
    let latency = written.elapsed();
    // Nothing more arrives for the same file: the chunks were one write.
    let more = collect(&rx, 1, |_| false);
    assert_eq!(got.len() + more.len(), 1, "{got:?} {more:?}");
    let e = &got[0];
    assert_eq!(e.action, Action::FileWrite);
    assert_eq!(e.user, "u1042");
    assert_eq!(e.media, Some(Media::Removable));
    assert_eq!(e.bytes, Some(std::fs::metadata(&p).unwrap().len()));
    assert_eq!(e.path.as_deref(), Some(p.to_str().unwrap()));
    let phi = e.phi.clone().unwrap();
    assert_eq!(phi.records, 50);
    assert!(phi.keywords >= 3 && phi.patterns >= 100, "{phi:?}");
    assert_eq!(e.records, 50);
    eprintln!("file event {} ms after the last write", latency.as_millis());
    assert!(latency < Duration::from_millis(1500), "took {latency:?}");
}

#[test]
fn moves_deletes_and_folders_made_after_start() {
    let _inotify = serial::inotify();
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let (_w, rx) = watch(&source(dir.path(), ""));
    // A USB stick mounted after start: a new folder, then a file in it.
    let stick = dir.path().join("STICK");
    std::fs::create_dir(&stick).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    std::fs::write(stick.join("notes.txt"), b"hello\n").unwrap();
    let got = collect(&rx, 5, |g| !g.is_empty());
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].path.as_deref().unwrap().ends_with("STICK/notes.txt"));

    // Moved in from outside the watched folder.
    let src = outside.path().join("report.pdf");
    std::fs::write(&src, b"%PDF-1.4 report").unwrap();
    std::fs::rename(&src, stick.join("report.pdf")).unwrap();
    let got = collect(&rx, 5, |g| !g.is_empty());
    assert_eq!(got[0].action, Action::FileMove, "{got:?}");

    std::fs::remove_file(stick.join("notes.txt")).unwrap();
    let got = collect(&rx, 5, |g| !g.is_empty());
    assert_eq!(got[0].action, Action::FileDelete, "{got:?}");
    assert!(got[0].path.as_deref().unwrap().ends_with("notes.txt"));
}

#[test]
fn queue_overflow_is_detected_and_a_rescan_finds_every_file() {
    let _inotify = serial::inotify();
    const KNOB: &str = "/proc/sys/fs/inotify/max_queued_events";
    let Ok(old) = std::fs::read_to_string(KNOB) else {
        eprintln!("{KNOB} is not readable: overflow test skipped");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // A tiny kernel queue for the watcher's inotify instance only: the limit is taken
    // when the instance is created, so it is restored right after.
    if std::fs::write(KNOB, "16").is_err() {
        eprintln!("cannot lower {KNOB} (not root?): overflow test skipped");
        return;
    }
    let started = watch(&source(dir.path(), ""));
    std::fs::write(KNOB, old.trim()).unwrap();
    let (w, rx) = started;
    let n = 2000;
    for i in 0..n {
        std::fs::write(dir.path().join(format!("f{i:05}.txt")), b"x").unwrap();
    }
    let got = collect(&rx, 30, |g| {
        let mut paths: Vec<&str> = g.iter().filter_map(|e| e.path.as_deref()).collect();
        paths.sort();
        paths.dedup();
        paths.len() >= n
    });
    let overflows = w.stats.overflows.load(std::sync::atomic::Ordering::Relaxed);
    let mut paths: Vec<&str> = got.iter().filter_map(|e| e.path.as_deref()).collect();
    paths.sort();
    paths.dedup();
    assert!(
        overflows >= 1,
        "the queue of 16 did not overflow with {n} files"
    );
    assert_eq!(paths.len(), n, "files lost after {overflows} overflow(s)");
}

#[test]
fn the_watch_limit_error_names_the_sysctl() {
    let _inotify = serial::inotify();
    let dir = tempfile::tempdir().unwrap();
    let cfg = source(&dir.path().join("missing-is-fine"), "");
    // A root that does not exist yet is not an error: it is looked for again later.
    assert!(phiwatch::source::fswatch::start(&cfg, Box::new(|_| true)).is_ok());
    let msg = phiwatch::source::fswatch::watch_error(
        notify::Error::new(notify::ErrorKind::MaxFilesWatch),
        Path::new("/media"),
    )
    .to_string();
    assert!(msg.contains("fs.inotify.max_user_watches"), "{msg}");
    assert!(msg.contains("sysctl -w"), "{msg}");
}
