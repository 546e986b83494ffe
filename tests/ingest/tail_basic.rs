//! Following one or more files that only grow: lines, partial lines, new files, limits.

use crate::support::tail::*;
use phiwatch::source::{read_once, FileId, LineKind, TailOptions, Tailer};
use std::collections::HashSet;

#[test]
fn appends_across_polls() {
    let d = Dir::new();
    let p = d.path("app.log");
    append(&p, "a\nbb\n");
    let mut t = Tailer::new(d.glob("*.log"), opts(), &[]);
    let got = t.poll(100).unwrap();
    assert_eq!(texts(&got), ["a", "bb"]);
    assert_eq!((got[0].offset, got[0].end), (0, 2));
    assert_eq!((got[1].offset, got[1].end), (2, 5));
    assert_eq!(got[0].kind, LineKind::Data);
    assert_eq!(&*got[0].path, p.to_str().unwrap());
    assert!(t.poll(100).unwrap().is_empty());

    append(&p, "ccc\n");
    let got = t.poll(100).unwrap();
    assert_eq!(texts(&got), ["ccc"]);
    assert_eq!((got[0].offset, got[0].end), (5, 9));
    let pos = t.positions();
    assert_eq!(pos.len(), 1);
    assert_eq!(pos[0].offset, 9);
    assert_eq!(pos[0].path, p.to_str().unwrap());
    assert_eq!(pos[0].id, got[0].id);
    assert_eq!(
        t.acked_positions(),
        pos,
        "without explicit acks, read = acked"
    );
}

#[test]
fn partial_last_line_waits_for_its_newline() {
    let d = Dir::new();
    let p = d.path("app.log");
    append(&p, "one\ntw");
    let mut t = Tailer::new(d.glob("app.log"), opts(), &[]);
    assert_eq!(texts(&t.poll(100).unwrap()), ["one"]);
    append(&p, "o");
    assert!(t.poll(100).unwrap().is_empty());
    assert_eq!(
        t.positions()[0].offset,
        4,
        "position stays before the partial line"
    );
    append(&p, "\nthree\n");
    let got = t.poll(100).unwrap();
    assert_eq!(texts(&got), ["two", "three"]);
    assert_eq!((got[0].offset, got[0].end), (4, 8));
}

#[test]
fn new_files_matching_the_glob_are_picked_up() {
    let d = Dir::new();
    let mut t = Tailer::new(d.glob("*.log"), opts(), &[]);
    assert!(t.poll(100).unwrap().is_empty());
    append(&d.path("a.log"), "a1\n");
    append(&d.path("other.txt"), "ignored\n");
    assert_eq!(texts(&t.poll(100).unwrap()), ["a1"]);
    append(&d.path("b.log"), "b1\n");
    append(&d.path("a.log"), "a2\n");
    let got = texts(&drain(&mut t));
    assert_eq!(
        got.iter().cloned().collect::<HashSet<_>>(),
        HashSet::from(["a2".to_string(), "b1".to_string()])
    );
    assert_eq!(t.file_count(), 2);
}

#[test]
fn crlf_is_stripped_and_lone_cr_kept() {
    let d = Dir::new();
    let p = d.path("w.log");
    append(&p, "win\r\nmid\rdle\r\n\r\n");
    let mut t = Tailer::new(d.glob("w.log"), opts(), &[]);
    assert_eq!(texts(&t.poll(100).unwrap()), ["win", "mid\rdle", ""]);
}

#[test]
fn crlf_split_across_polls() {
    let d = Dir::new();
    let p = d.path("w.log");
    append(&p, "abc\r");
    let mut t = Tailer::new(d.glob("w.log"), opts(), &[]);
    assert!(t.poll(100).unwrap().is_empty());
    append(&p, "\n");
    assert_eq!(texts(&t.poll(100).unwrap()), ["abc"]);
}

#[test]
fn invalid_utf8_is_replaced() {
    let d = Dir::new();
    let p = d.path("bin.log");
    append_bytes(&p, b"caf\xe9\nok\n");
    let mut t = Tailer::new(d.glob("bin.log"), opts(), &[]);
    assert_eq!(texts(&t.poll(100).unwrap()), ["caf\u{fffd}", "ok"]);
}

#[test]
fn huge_line_is_handed_out_once_as_oversized() {
    let d = Dir::new();
    let p = d.path("big.log");
    let o = TailOptions {
        max_line_bytes: 16,
        ..opts()
    };
    append(&p, "short\n");
    append(&p, &"x".repeat(40));
    let mut t = Tailer::new(d.glob("big.log"), o, &[]);
    assert_eq!(texts(&t.poll(100).unwrap()), ["short"]);
    // Still no newline: nothing, and the position stays at the line's start.
    append(&p, &"y".repeat(200_000));
    assert!(t.poll(100).unwrap().is_empty());
    assert_eq!(t.positions()[0].offset, 6);

    append(&p, "\nafter\n");
    let got = t.poll(100).unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].kind, LineKind::Oversized);
    assert_eq!(got[0].text, "x".repeat(16));
    assert_eq!((got[0].offset, got[0].end), (6, 6 + 40 + 200_000 + 1));
    assert_eq!(
        (got[1].kind, got[1].text.as_str()),
        (LineKind::Data, "after")
    );
}

#[test]
fn line_of_exactly_the_limit_is_not_oversized() {
    let d = Dir::new();
    let p = d.path("edge.log");
    append(&p, "abcd\r\nabcde\n");
    let o = TailOptions {
        max_line_bytes: 4,
        ..opts()
    };
    let mut t = Tailer::new(d.glob("edge.log"), o, &[]);
    let got = t.poll(100).unwrap();
    assert_eq!(got[0].kind, LineKind::Data);
    assert_eq!(got[1].kind, LineKind::Oversized);
    assert_eq!(got[1].text, "abcd");
}

#[test]
fn large_file_is_read_in_chunks_and_budget_respected() {
    let d = Dir::new();
    let p = d.path("many.log");
    append(&p, &lines("line-", 1..=20_000));
    let mut t = Tailer::new(d.glob("many.log"), opts(), &[]);
    let first = t.poll(7).unwrap();
    assert_eq!(texts(&first), names("line-", 1..=7));
    let mut all = first;
    all.extend(drain(&mut t));
    assert_eq!(texts(&all), names("line-", 1..=20_000));
    for w in all.windows(2) {
        assert_eq!(w[0].end, w[1].offset, "no gap, no overlap");
    }
}

#[test]
fn a_busy_file_does_not_starve_the_others() {
    let d = Dir::new();
    // Files there at the first poll are history, read one at a time in order; files
    // written while the tailer runs are live and read side by side.
    let mut t = Tailer::new(d.glob("*.log"), opts(), &[]);
    assert!(t.poll(4).unwrap().is_empty());
    append(&d.path("a.log"), &lines("a", 1..=10));
    append(&d.path("b.log"), &lines("b", 1..=10));
    let p1 = texts(&t.poll(4).unwrap());
    let p2 = texts(&t.poll(4).unwrap());
    let both: Vec<String> = p1.iter().chain(&p2).cloned().collect();
    assert!(both.iter().any(|l| l.starts_with('a')));
    assert!(both.iter().any(|l| l.starts_with('b')));
    let mut all = both;
    all.extend(texts(&drain(&mut t)));
    let a: Vec<_> = all.iter().filter(|l| l.starts_with('a')).cloned().collect();
    let b: Vec<_> = all.iter().filter(|l| l.starts_with('b')).cloned().collect();
    assert_eq!(a, names("a", 1..=10), "each file in order");
    assert_eq!(b, names("b", 1..=10));
}

/// Backlog (files nobody wrote for a while: a month of daily exports) is read one file at
/// a time, oldest modification first, and before a file still being written, so the lines
/// come in time order; only files being written share the polls.
#[test]
fn backlog_is_read_oldest_first_one_file_at_a_time() {
    let d = Dir::new();
    let day = std::time::Duration::from_secs(86_400);
    let now = std::time::SystemTime::now();
    // Names sort against the modification order: the times decide.
    for (name, days_ago) in [("a.log", 1), ("b.log", 3), ("c.log", 2)] {
        append(&d.path(name), &lines(name, 1..=10));
        std::fs::File::options()
            .append(true)
            .open(d.path(name))
            .unwrap()
            .set_modified(now - day * days_ago)
            .unwrap();
    }
    append(&d.path("live.log"), &lines("live.log", 1..=10));
    let mut t = Tailer::new(d.glob("*.log"), opts(), &[]);
    let mut all = Vec::new();
    for _ in 0..40 {
        all.extend(texts(&t.poll(4).unwrap()));
    }
    let want: Vec<String> = ["b.log", "c.log", "a.log", "live.log"]
        .iter()
        .flat_map(|n| names(n, 1..=10))
        .collect();
    assert_eq!(all, want);
}

/// How long the writer has been quiet comes from the files' modification times, not from
/// when we read them: a file finished a day ago and read just now has been quiet a day.
/// A write resets it; with no file, or a time in the future, there is no answer.
#[test]
fn quiet_for_follows_the_newest_modification_time() {
    let d = Dir::new();
    let day = std::time::Duration::from_secs(86_400);
    let set = |name: &str, t: std::time::SystemTime| {
        std::fs::File::options()
            .append(true)
            .open(d.path(name))
            .unwrap()
            .set_modified(t)
            .unwrap();
    };
    let mut t = Tailer::new(d.glob("*.log"), opts(), &[]);
    t.poll(100).unwrap();
    assert_eq!(t.quiet_for(), None, "no file followed");
    let now = std::time::SystemTime::now();
    for (name, days_ago) in [("a.log", 3), ("b.log", 1)] {
        append(&d.path(name), &lines(name, 1..=3));
        set(name, now - day * days_ago);
    }
    // Old files found later are backlog, read one at a time.
    let read: usize = (0..4).map(|_| t.poll(100).unwrap().len()).sum();
    assert_eq!(read, 6);
    let quiet = t.quiet_for().expect("both files have times");
    assert!(
        quiet >= day && quiet < day * 2,
        "the newer file counts: {quiet:?}"
    );
    append(&d.path("a.log"), &lines("a.log", 4..=4));
    assert_eq!(texts(&t.poll(100).unwrap()).len(), 1);
    assert!(t.quiet_for().unwrap() < std::time::Duration::from_secs(60));
    set("b.log", now + day);
    t.poll(100).unwrap();
    assert_eq!(t.quiet_for(), None, "a time in the future is not trusted");
}

#[test]
fn header_is_delivered_first() {
    let d = Dir::new();
    let p = d.path("r.csv");
    append(&p, "USER,PATIENT\nu1,p1\n");
    let o = TailOptions {
        header: true,
        ..opts()
    };
    let mut t = Tailer::new(d.glob("*.csv"), o, &[]);
    let got = t.poll(100).unwrap();
    assert_eq!(got[0].kind, LineKind::Header);
    assert_eq!(got[0].text, "USER,PATIENT");
    assert_eq!(got[1].kind, LineKind::Data);
    append(&p, "u2,p2\n");
    let got = t.poll(100).unwrap();
    assert_eq!(
        got.iter().map(|l| l.kind).collect::<Vec<_>>(),
        [LineKind::Data]
    );
}

#[test]
fn header_waits_for_its_own_newline() {
    let d = Dir::new();
    let p = d.path("r.csv");
    append(&p, "USER,PAT");
    let o = TailOptions {
        header: true,
        ..opts()
    };
    let mut t = Tailer::new(d.glob("*.csv"), o, &[]);
    assert!(t.poll(100).unwrap().is_empty());
    append(&p, "IENT\nu1,p1\n");
    let got = t.poll(100).unwrap();
    assert_eq!(
        (got[0].kind, got[0].text.as_str()),
        (LineKind::Header, "USER,PATIENT")
    );
    assert_eq!(data_texts(&got), ["u1,p1"]);
}

#[test]
fn files_with_the_same_first_bytes_are_told_apart_by_inode() {
    let d = Dir::new();
    let common = format!("{}\n", "same header and first rows ".repeat(20)); // > 256 bytes
    append(&d.path("a.log"), &format!("{common}a1\n"));
    append(&d.path("b.log"), &format!("{common}b1\n"));
    let mut t = Tailer::new(d.glob("*.log"), opts(), &[]);
    let got = drain(&mut t);
    assert_eq!(got.len(), 4);
    let pos = t.positions();
    assert_eq!(pos.len(), 2);
    assert_eq!(pos[0].id.fingerprint, pos[1].id.fingerprint, "a collision");
    assert_ne!(pos[0].id, pos[1].id, "yet two files");

    // Each resumes at its own offset.
    drop(t);
    append(&d.path("a.log"), "a2\n");
    append(&d.path("b.log"), "b2\nb3\n");
    let mut t = Tailer::new(d.glob("*.log"), opts(), &pos);
    let mut got = texts(&drain(&mut t));
    got.sort();
    assert_eq!(got, ["a2", "b2", "b3"]);
}

#[test]
fn a_short_files_fingerprint_settles_as_it_grows() {
    let d = Dir::new();
    let p = d.path("s.log");
    append(&p, "a\n");
    let mut t = Tailer::new(d.glob("s.log"), opts(), &[]);
    let first = t.poll(10).unwrap();
    assert_eq!(first[0].id.fingerprint, FileId::fingerprint_of(b"a\n"));
    let long = format!("{}\n", "z".repeat(300));
    append(&p, &long);
    append(&p, "b\n");
    let later = t.poll(10).unwrap();
    let bytes = std::fs::read(&p).unwrap();
    let full = FileId::fingerprint_of(&bytes[..256]);
    assert_eq!(later[0].id.fingerprint, full);
    assert_eq!(later[1].id.fingerprint, full);
    assert!(first[0].id.same_file(&later[0].id));
    // Acks of lines read while the file was short still count.
    let o = TailOptions {
        explicit_acks: true,
        ..opts()
    };
    let mut t = Tailer::new(d.glob("s.log"), o, &[]);
    let got = drain(&mut t);
    assert!(t.ack(&got[0].id, got[0].end));
    assert_eq!(t.acked_positions()[0].offset, 2);
    assert!(t.ack(&got[2].id, got[2].end));
    assert_eq!(t.acked_positions()[0].offset, bytes.len() as u64);
}

#[test]
fn start_at_end_skips_existing_content_only_on_a_first_run() {
    let d = Dir::new();
    let p = d.path("old.log");
    append(&p, "old1\nold2\npar");
    let o = TailOptions {
        start_at_end_for_new_files: true,
        ..opts()
    };
    let mut t = Tailer::new(d.glob("*.log"), o, &[]);
    assert!(t.poll(100).unwrap().is_empty());
    append(&p, "tial\nnew\n");
    assert_eq!(texts(&t.poll(100).unwrap()), ["partial", "new"]);
    // A file created later is new: read from its start.
    append(&d.path("later.log"), "l1\nl2\n");
    assert_eq!(texts(&t.poll(100).unwrap()), ["l1", "l2"]);
}

#[test]
fn invalid_glob_is_an_error() {
    let mut t = Tailer::new(vec!["/tmp/[".into()], opts(), &[]);
    assert_eq!(
        t.poll(10).unwrap_err().kind(),
        std::io::ErrorKind::InvalidInput
    );
}

#[test]
fn read_once_reads_everything_including_an_unterminated_last_line() {
    let d = Dir::new();
    let p = d.path("r.csv");
    append(&p, "H1,H2\r\nv1,v2\n");
    append(&p, &"x".repeat(50));
    append(&p, "\nlast");
    let o = TailOptions {
        header: true,
        max_line_bytes: 10,
        ..opts()
    };
    let got: Vec<_> = read_once(&p, &o)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        got.iter()
            .map(|l| (l.kind, l.text.as_str()))
            .collect::<Vec<_>>(),
        [
            (LineKind::Header, "H1,H2"),
            (LineKind::Data, "v1,v2"),
            (LineKind::Oversized, "xxxxxxxxxx"),
            (LineKind::Data, "last"),
        ]
    );
    assert_eq!(got[3].end, std::fs::metadata(&p).unwrap().len());
    for w in got.windows(2) {
        assert_eq!(w[0].end, w[1].offset);
    }
}

#[test]
fn read_once_and_tailer_agree() {
    let d = Dir::new();
    let p = d.path("same.log");
    let mut text = String::new();
    for i in 0..3000 {
        text.push_str(&format!("{i},{}\r\n", "é".repeat(i % 17)));
    }
    append(&p, &text);
    let once: Vec<_> = read_once(&p, &opts())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut t = Tailer::new(d.glob("same.log"), opts(), &[]);
    assert_eq!(drain(&mut t), once);
}

#[test]
fn read_once_missing_file_is_an_error() {
    let d = Dir::new();
    assert!(read_once(&d.path("nope"), &opts()).is_err());
}

#[test]
fn a_file_under_two_matching_names_is_followed_once() {
    let d = Dir::new();
    let p = d.path("a.log");
    append(&p, "once\n");
    std::fs::hard_link(&p, d.path("b.log")).unwrap();
    std::os::unix::fs::symlink(&p, d.path("c.log")).unwrap();
    let mut t = Tailer::new(d.glob("*.log"), opts(), &[]);
    assert_eq!(texts(&drain(&mut t)), ["once"]);
    assert_eq!(t.file_count(), 1);
}

#[test]
fn an_oversized_first_line_is_not_a_header() {
    let d = Dir::new();
    let p = d.path("r.csv");
    append(&p, &format!("{}\nrow\n", "H".repeat(50)));
    let o = TailOptions {
        header: true,
        max_line_bytes: 10,
        ..opts()
    };
    let mut t = Tailer::new(d.glob("r.csv"), o, &[]);
    let got = t.poll(10).unwrap();
    assert_eq!(
        got.iter().map(|l| l.kind).collect::<Vec<_>>(),
        [LineKind::Oversized, LineKind::Data]
    );
}
