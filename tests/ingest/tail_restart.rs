//! Stopping and starting again from checkpoints: exactly the unread lines come out, also
//! after a crash, after rotation or truncation while stopped, and with headers.

use crate::support::tail::*;
use phiwatch::source::{Checkpoints, FileId, LineKind, Position, TailOptions, Tailer};
use std::fs;
use std::os::unix::fs::MetadataExt;

#[test]
fn restart_reads_exactly_the_unread_lines() {
    let d = Dir::new();
    let p = d.path("app.log");
    append(&p, &lines("l", 1..=3));
    let (got, pos) = read_and_stop(&d, "*.log", opts(), &[]);
    assert_eq!(got.len(), 3);

    append(&p, &lines("l", 4..=5));
    let mut t = Tailer::new(d.glob("*.log"), opts(), &pos);
    assert_eq!(texts(&drain(&mut t)), names("l", 4..=5));
}

#[test]
fn restart_in_front_of_a_partial_line() {
    let d = Dir::new();
    let p = d.path("app.log");
    append(&p, "a\nb");
    let (got, pos) = read_and_stop(&d, "*.log", opts(), &[]);
    assert_eq!(texts(&got), ["a"]);
    append(&p, "c\n");
    let mut t = Tailer::new(d.glob("*.log"), opts(), &pos);
    assert_eq!(texts(&drain(&mut t)), ["bc"]);
}

#[test]
fn crash_after_an_older_checkpoint_repeats_but_loses_nothing() {
    // kill -9: the checkpoint on disk is older than what was read.
    let d = Dir::new();
    let p = d.path("app.log");
    let cp = d.path("checkpoints.json");
    append(&p, &lines("l", 1..=2));
    let mut t = Tailer::new(d.glob("*.log"), opts(), &[]);
    drain(&mut t);
    Checkpoints::new(t.acked_positions()).save(&cp).unwrap();
    append(&p, &lines("l", 3..=4));
    drain(&mut t); // read, never checkpointed
    drop(t);

    append(&p, "l5\n");
    let resume = Checkpoints::load(&cp).unwrap().unwrap().positions;
    let mut t = Tailer::new(d.glob("*.log"), opts(), &resume);
    assert_eq!(texts(&drain(&mut t)), names("l", 3..=5));
}

#[test]
fn with_explicit_acks_only_processed_lines_are_checkpointed() {
    let d = Dir::new();
    let p = d.path("app.log");
    append(&p, &lines("l", 1..=5));
    let o = TailOptions {
        explicit_acks: true,
        ..opts()
    };
    let mut t = Tailer::new(d.glob("*.log"), o.clone(), &[]);
    let got = drain(&mut t);
    assert_eq!(t.acked_positions()[0].offset, 0, "nothing acknowledged yet");
    assert!(t.ack(&got[2].id, got[2].end));
    assert!(t.ack(&got[0].id, got[0].end), "going backwards is harmless");
    let acked = t.acked_positions();
    assert_eq!(acked[0].offset, got[2].end);
    assert_eq!(t.positions()[0].offset, got[4].end);
    drop(t);

    let mut t = Tailer::new(d.glob("*.log"), o, &acked);
    assert_eq!(texts(&drain(&mut t)), names("l", 4..=5));
}

#[test]
fn rotation_while_stopped_reads_the_rest_of_the_old_file_first() {
    // vectordotdev/vector#22954.
    let d = Dir::new();
    let live = d.path("app.log");
    let mut old = writer(&live);
    write(&mut old, &lines("o", 1..=2));
    let (got, pos) = read_and_stop(&d, "app.log", opts(), &[]);
    assert_eq!(got.len(), 2);

    // While we are down: more lines, rotation, the new file gets lines too.
    write(&mut old, &lines("o", 3..=4));
    fs::rename(&live, d.path("app.log.1")).unwrap();
    let mut new = writer(&live);
    write(&mut new, &lines("n", 1..=2));

    // Even a reader that skips existing files starts no checkpointed run at the end.
    let o = TailOptions {
        start_at_end_for_new_files: true,
        ..opts()
    };
    let mut t = Tailer::new(d.glob("app.log"), o, &pos);
    let got = drain(&mut t);
    let want = [names("o", 3..=4), names("n", 1..=2)].concat();
    assert_eq!(texts(&got), want);
    assert_eq!(&*got[0].path, d.path("app.log.1").to_str().unwrap());

    // The old file is still followed for late writes.
    write(&mut old, "o5\n");
    assert_eq!(texts(&t.poll(100).unwrap()), ["o5"]);
}

#[test]
fn rotation_while_stopped_with_a_small_budget_keeps_the_order() {
    let d = Dir::new();
    let live = d.path("app.log");
    append(&live, "o1\n");
    let (_, pos) = read_and_stop(&d, "app.log", opts(), &[]);
    append(&live, &lines("o", 2..=9));
    fs::rename(&live, d.path("app.log.1")).unwrap();
    append(&live, &lines("n", 1..=5));

    let mut t = Tailer::new(d.glob("app.log"), opts(), &pos);
    let all = texts(&drain_by(&mut t, 3));
    let want = [names("o", 2..=9), names("n", 1..=5)].concat();
    assert_eq!(all, want);
}

#[test]
fn rotation_while_running_then_restart_before_the_old_file_was_finished() {
    let d = Dir::new();
    let live = d.path("app.log");
    let mut old = writer(&live);
    write(&mut old, "o1\n");
    let mut t = Tailer::new(d.glob("app.log"), opts(), &[]);
    drain(&mut t);
    fs::rename(&live, d.path("app.log.1")).unwrap();
    append(&live, "n1\n");
    drain(&mut t);
    let pos = t.positions();
    assert_eq!(pos.len(), 2);
    drop(t);

    write(&mut old, "o2\n");
    append(&live, "n2\n");
    let mut t = Tailer::new(d.glob("app.log"), opts(), &pos);
    assert_eq!(texts(&drain(&mut t)), ["o2", "n2"]);
}

#[test]
fn header_is_delivered_again_on_resume() {
    let d = Dir::new();
    let p = d.path("r.csv");
    append(&p, "USER,PATIENT\nu1,p1\nu2,p2\n");
    let o = TailOptions {
        header: true,
        ..opts()
    };
    let (got, pos) = read_and_stop(&d, "*.csv", o.clone(), &[]);
    assert_eq!(got.len(), 3);

    append(&p, "u3,p3\n");
    let mut t = Tailer::new(d.glob("*.csv"), o.clone(), &pos);
    let got = drain(&mut t);
    assert_eq!(
        got.iter()
            .map(|l| (l.kind, l.text.as_str()))
            .collect::<Vec<_>>(),
        [
            (LineKind::Header, "USER,PATIENT"),
            (LineKind::Data, "u3,p3")
        ]
    );
    assert_eq!((got[0].offset, got[0].end), (0, 13));
    assert_eq!(t.positions()[0].offset, pos[0].offset + 6);

    // Also when nothing new has been written: the header still comes first, alone.
    let pos = t.positions();
    drop(t);
    let mut t = Tailer::new(d.glob("*.csv"), o, &pos);
    let got = drain(&mut t);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].kind, LineKind::Header);
    assert_eq!(t.positions(), pos, "re-reading the header moves nothing");
}

#[test]
fn truncated_while_stopped_is_read_from_the_start() {
    let d = Dir::new();
    let p = d.path("app.log");
    append(&p, &lines("old", 1..=5));
    let (_, pos) = read_and_stop(&d, "*.log", opts(), &[]);
    truncate(&p);
    append(&p, "new1\n");
    let mut t = Tailer::new(d.glob("*.log"), opts(), &pos);
    assert_eq!(texts(&drain(&mut t)), ["new1"]);
}

#[test]
fn rewritten_while_stopped_past_the_old_offset_is_read_from_the_start() {
    let d = Dir::new();
    let p = d.path("app.log");
    append(&p, "old1\n");
    let (_, pos) = read_and_stop(&d, "*.log", opts(), &[]);
    truncate(&p);
    append(&p, &lines("new", 1..=4));
    let mut t = Tailer::new(d.glob("*.log"), opts(), &pos);
    assert_eq!(texts(&drain(&mut t)), names("new", 1..=4));
}

#[test]
fn an_inode_reused_by_another_file_is_a_new_file() {
    // We cannot make the kernel reuse an inode on demand, so the checkpoint names the
    // inode of a file with other content: exactly what reuse after deletion looks like.
    let d = Dir::new();
    let p = d.path("app.log");
    append(&p, &lines("fresh", 1..=3));
    let meta = fs::metadata(&p).unwrap();
    let stale = Position {
        path: p.to_string_lossy().into_owned(),
        id: FileId {
            dev: meta.dev(),
            ino: meta.ino(),
            fingerprint: FileId::fingerprint_of(b"the deleted file\nhad th"),
        },
        offset: 23,
    };
    let o = TailOptions {
        start_at_end_for_new_files: true,
        ..opts()
    };
    let mut t = Tailer::new(d.glob("*.log"), o, &[stale]);
    assert_eq!(texts(&drain(&mut t)), names("fresh", 1..=3));
}

#[test]
fn a_reused_inode_outside_the_globs_is_left_alone() {
    let d = Dir::new();
    let other = d.path("unrelated.txt");
    append(&other, "not ours\n");
    let meta = fs::metadata(&other).unwrap();
    let stale = Position {
        path: d.path("app.log").to_string_lossy().into_owned(),
        id: FileId {
            dev: meta.dev(),
            ino: meta.ino(),
            fingerprint: FileId::fingerprint_of(b"x\n"),
        },
        offset: 2,
    };
    let mut t = Tailer::new(d.glob("*.log"), opts(), &[stale]);
    assert!(drain(&mut t).is_empty());
    assert_eq!(t.file_count(), 0);
}

#[test]
fn mixed_up_checkpoint_paths_do_not_matter() {
    // vectordotdev/vector#17240: positions are matched by file id, not by path.
    let d = Dir::new();
    append(&d.path("a.log"), &lines("a", 1..=2));
    append(&d.path("b.log"), &lines("b", 1..=4));
    let mut t = Tailer::new(d.glob("*.log"), opts(), &[]);
    drain(&mut t);
    let mut pos = t.positions();
    drop(t);
    let (pa, pb) = (pos[0].path.clone(), pos[1].path.clone());
    pos[0].path = pb;
    pos[1].path = pa;
    append(&d.path("a.log"), "a3\n");
    append(&d.path("b.log"), "b5\n");
    let mut t = Tailer::new(d.glob("*.log"), opts(), &pos);
    let mut got = texts(&drain(&mut t));
    got.sort();
    assert_eq!(got, ["a3", "b5"]);
}

#[test]
fn duplicate_positions_for_one_file_take_the_furthest() {
    let d = Dir::new();
    let p = d.path("app.log");
    append(&p, &lines("l", 1..=3));
    let mut t = Tailer::new(d.glob("*.log"), opts(), &[]);
    let got = drain(&mut t);
    let newest = t.positions()[0].clone();
    let mut older = newest.clone();
    older.offset = got[0].end;
    older.id.fingerprint = FileId::fingerprint_of(&fs::read(&p).unwrap()[..3]);
    drop(t);
    append(&p, "l4\n");
    let mut t = Tailer::new(d.glob("*.log"), opts(), &[older, newest]);
    assert_eq!(texts(&drain(&mut t)), ["l4"]);
}

#[test]
fn resume_of_a_short_file_that_grew_past_the_fingerprint_size() {
    let d = Dir::new();
    let p = d.path("s.log");
    append(&p, "a\n");
    let mut t = Tailer::new(d.glob("s.log"), opts(), &[]);
    drain(&mut t);
    let pos = t.positions();
    assert_eq!(pos[0].id.fingerprint, FileId::fingerprint_of(b"a\n"));
    drop(t);
    let long = "y".repeat(400);
    append(&p, &format!("{long}\nb\n"));
    let mut t = Tailer::new(d.glob("s.log"), opts(), &pos);
    assert_eq!(texts(&drain(&mut t)), [long.as_str(), "b"]);
}

#[test]
fn a_checkpoint_written_before_the_first_poll_keeps_the_resume_positions() {
    let d = Dir::new();
    let p = d.path("app.log");
    append(&p, "a\n");
    let mut t = Tailer::new(d.glob("*.log"), opts(), &[]);
    drain(&mut t);
    let pos = t.positions();
    let t = Tailer::new(d.glob("*.log"), opts(), &pos);
    assert_eq!(t.acked_positions(), pos);
    assert_eq!(t.positions(), pos);
}

#[test]
fn positions_of_vanished_files_expire() {
    let d = Dir::new();
    let p = d.path("app.log");
    append(&p, "a\n");
    let (_, pos) = read_and_stop(&d, "*.log", opts(), &[]);
    fs::remove_file(&p).unwrap();
    let mut t = Tailer::new(d.glob("*.log"), opts(), &pos);
    drain(&mut t);
    assert!(t.positions().is_empty());
    assert!(t.acked_positions().is_empty());
}

#[test]
fn a_file_created_while_stopped_is_read_from_its_start() {
    let d = Dir::new();
    append(&d.path("a.log"), "a1\n");
    let o = TailOptions {
        start_at_end_for_new_files: true,
        ..opts()
    };
    let mut t = Tailer::new(d.glob("*.log"), o.clone(), &[]);
    assert!(drain(&mut t).is_empty(), "first run starts at the end");
    let pos = t.positions();
    drop(t);
    append(&d.path("b.log"), "b1\n");
    let mut t = Tailer::new(d.glob("*.log"), o, &pos);
    assert_eq!(texts(&drain(&mut t)), ["b1"]);
}

#[test]
fn checkpoints_round_trip_through_a_file() {
    let d = Dir::new();
    append(&d.path("a.log"), "a1\n");
    append(&d.path("b.log"), "b1\nb2\n");
    let mut t = Tailer::new(d.glob("*.log"), opts(), &[]);
    drain(&mut t);
    let cp = d.path("state/cp.json");
    fs::create_dir_all(cp.parent().unwrap()).unwrap();
    let saved = Checkpoints::new(t.acked_positions());
    saved.save(&cp).unwrap();
    assert_eq!(Checkpoints::load(&cp).unwrap(), Some(saved));
}
