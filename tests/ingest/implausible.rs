//! Values no hospital log holds are counted rejections with their own reasons, and never
//! steer the engine: a line dated 1900 (which would start the learning period in 1900), a
//! year 9999 placeholder, an absurd record count and a NUL inside a user id, slipped into a
//! simulated hospital, leave its alerts exactly as they were.

use crate::support::process::replay;
use crate::support::sorted_lines;

#[test]
fn implausible_lines_are_rejected_and_leave_the_alerts_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let opts = phiwatch::simulate::SimOptions::checked(3, 300, 10).unwrap();
    phiwatch::simulate::simulate(&opts, dir.path()).unwrap();
    let config = dir.path().join("phiwatch.toml");
    let clean = dir.path().join("clean.ndjson");
    replay(&config, &clean);
    let want = sorted_lines(&clean);
    assert!(!want.is_empty());

    let mut first: Vec<_> = std::fs::read_dir(dir.path().join("files"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    first.sort();
    let file = &first[0];
    let text = std::fs::read_to_string(file).unwrap();
    let bad = [
        r#"{"ts":"1900-01-01T08:00:00Z","user":"u10001","action":"view","patient":"MRN0000001"}"#,
        r#"{"ts":"9999-12-31T08:00:00Z","user":"u10001","action":"view","patient":"MRN0000001"}"#,
        r#"{"ts":"2026-03-02T08:00:00Z","user":"u10001","action":"export","records":18446744073709551615}"#,
        r#"{"ts":"2026-03-02T08:00:01Z","user":"u10\u0000001","action":"view","patient":"MRN0000001"}"#,
    ];
    std::fs::write(file, format!("{}\n{text}", bad.join("\n"))).unwrap();
    let dirty = dir.path().join("dirty.ndjson");
    let summary = replay(&config, &dirty);
    assert_eq!(
        sorted_lines(&dirty),
        want,
        "alerts changed; summary:\n{summary}"
    );
    for (reason, n) in [("implausible_time", 2), ("absurd_count", 1), ("bad_id", 1)] {
        assert!(
            summary.contains(&format!("endpoint-files: {reason}: {n}")),
            "{reason} x{n} not in the summary:\n{summary}"
        );
    }
}
