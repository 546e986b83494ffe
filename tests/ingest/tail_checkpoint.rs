//! Checkpoint files: atomic replacement, no stray temporary files, clear errors.

use crate::support::tail::*;
use phiwatch::durable::{read_json, write_atomic, ReadError};
use phiwatch::source::Checkpoints;
use std::fs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[test]
fn write_atomic_replaces_the_content_and_leaves_no_temporary_file() {
    let d = Dir::new();
    let p = d.path("cp.json");
    write_atomic(&p, b"old").unwrap();
    write_atomic(&p, b"new content").unwrap();
    assert_eq!(fs::read(&p).unwrap(), b"new content");
    assert_eq!(ls(d.tmp.path()), ["cp.json"]);
}

#[test]
fn a_stray_temporary_file_from_a_crash_is_reused_not_read() {
    let d = Dir::new();
    let p = d.path("cp.json");
    write_atomic(&p, b"{\"positions\":[]}").unwrap();
    // A crash between writing the temporary file and renaming it.
    fs::write(d.path(".cp.json.tmp"), b"{\"positions\":[{\"torn").unwrap();
    assert_eq!(
        read_json::<Checkpoints>(&p).unwrap(),
        Some(Checkpoints::new(Vec::new()))
    );
    write_atomic(&p, b"{\"positions\":[], \"version\": 1}").unwrap();
    assert_eq!(ls(d.tmp.path()), ["cp.json"]);
}

#[test]
fn a_failed_write_keeps_the_old_content_and_cleans_up() {
    let d = Dir::new();
    let target = d.path("cp");
    fs::create_dir(&target).unwrap();
    fs::write(target.join("keep"), b"x").unwrap();
    // Renaming a file over a non-empty folder fails.
    assert!(write_atomic(&target, b"new").is_err());
    assert!(target.is_dir());
    assert_eq!(ls(d.tmp.path()), ["cp"]);
}

#[test]
fn readers_see_the_old_or_the_new_content_never_a_mix() {
    let d = Dir::new();
    let p = d.path("cp.json");
    let a = vec![b'a'; 200_000];
    let b = vec![b'b'; 100_000];
    write_atomic(&p, &a).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (p, a, b, stop) = (p.clone(), a.clone(), b.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut reads = 0;
            while !stop.load(Ordering::Relaxed) || reads == 0 {
                let got = fs::read(&p).unwrap();
                assert!(got == a || got == b, "torn read of {} bytes", got.len());
                reads += 1;
            }
        })
    };
    for i in 0..50 {
        write_atomic(&p, if i % 2 == 0 { &b } else { &a }).unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    assert_eq!(ls(d.tmp.path()), ["cp.json"]);
}

#[test]
fn missing_checkpoint_is_none_and_corrupt_is_a_clear_error() {
    let d = Dir::new();
    let p = d.path("cp.json");
    assert_eq!(Checkpoints::load(&p).unwrap(), None);
    fs::write(&p, b"{\"positions\": [{\"path\": 3}]}").unwrap();
    let e = Checkpoints::load(&p).unwrap_err();
    assert!(matches!(e, ReadError::Corrupt { .. }));
    assert!(e.to_string().contains("corrupt"), "{e}");
    assert!(e.to_string().contains("cp.json"), "{e}");
}
