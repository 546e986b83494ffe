//! The auditd format on raw and ENRICHED samples: records grouped by event id even when
//! interleaved, hex names decoded, relative names joined with the cwd, the human behind
//! sudo (auid) attributed and mapped to a staff id, daemons and reads skipped.

use crate::support::fixture;
use phiwatch::config::SourceConfig;
use phiwatch::event::{Action, Event, Media};
use phiwatch::parse::{build, Reject};

fn source() -> SourceConfig {
    toml::from_str(
        "name = \"audit\"\ntype = \"file\"\nformat = \"auditd\"\nmedia = \"removable\"\n[uids]\n\"1001\" = \"u1042\"\n\"jsmith\" = \"u1042\"\n",
    )
    .unwrap()
}

/// Events and rejections of a fixture; the groups counted as ignored (not a staff
/// account's file change) are left out, and `ignored` says how many there were.
fn run_counting(file: &str) -> (Vec<Event>, Vec<Reject>, usize) {
    let text = fixture(&format!("auditd/{file}"));
    let mut p = build(&source(), chrono_tz::UTC).unwrap();
    let (mut ok, mut bad, mut ignored) = (Vec::new(), Vec::new(), 0);
    let mut take = |r: Result<Option<Event>, Reject>| match r {
        Ok(Some(e)) => ok.push(e),
        Ok(None) => {}
        Err(r) if r.ignored => ignored += 1,
        Err(r) => bad.push(r),
    };
    for line in text.lines() {
        take(p.parse(line));
    }
    for r in p.flush() {
        take(r.map(Some));
    }
    (ok, bad, ignored)
}

fn run(file: &str) -> (Vec<Event>, Vec<Reject>) {
    let (ok, bad, _) = run_counting(file);
    (ok, bad)
}

#[test]
fn raw_records_become_file_events_of_the_login_user() {
    let (events, rejects) = run("raw.log");
    assert_eq!(rejects.len(), 1, "{rejects:?}");
    assert_eq!(rejects[0].reason, "bad_field");
    // 501 (write under sudo, interleaved with 502), 503 (rename); 502 is a read-only
    // open and 504 a daemon: counted as ignored.
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(run_counting("raw.log").2, 2, "502 and 504 ignored");
    let w = &events[0];
    assert_eq!(w.action, Action::FileWrite);
    assert_eq!(w.user, "u1042", "auid 1001 mapped, not uid 0");
    assert_eq!(w.path.as_deref(), Some("/media/jsmith/USB/pat exprt.csv"));
    assert_eq!(w.media, Some(Media::Removable));
    assert_eq!(w.ts.timestamp_millis(), 1715694540123);
    let m = &events[1];
    assert_eq!(m.action, Action::FileMove);
    assert_eq!(m.path.as_deref(), Some("/media/jsmith/USB/b.csv"));
}

#[test]
fn enriched_records_use_the_translated_names() {
    let (events, rejects) = run("enriched.log");
    assert!(rejects.is_empty(), "{rejects:?}");
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].user, "u1042",
        "AUID=\"jsmith\" mapped through [sources.uids]"
    );
    assert_eq!(events[0].action, Action::FileWrite);
}

#[test]
fn garbage_never_panics() {
    let mut p = build(&source(), chrono_tz::UTC).unwrap();
    for line in [
        "type=",
        "type=SYSCALL msg=audit(",
        "type=SYSCALL msg=audit(1.2:3): auid=\"",
        "node= type=PATH",
        "type=PATH msg=audit(1.1:1): name=ZZ nametype=CREATE",
        "\u{1d}\u{1d}",
        "type=EOE msg=audit(1.1:1):",
    ] {
        let _ = p.parse(line);
    }
    let _ = p.flush();
}
