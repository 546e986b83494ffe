//! `format = "csv"`, `"jsonl"` and `"canonical"` through the public API: an Epic-style
//! access-log export (pipe with CRLF and BOM, and tab), default column names, a nested
//! JSON application log, and the contract's canonical events.

use crate::support::parse::*;
use chrono_tz::Tz;
use phiwatch::event::{Action, Media, Outcome};
use phiwatch::parse::{build, reason};

/// The contract's revenue-cycle example, extended with this export's metric names.
fn epic(delimiter: &str) -> String {
    format!(
        r#"
name = "revenue-cycle"
type = "file"
paths = ["revenue/*.csv"]
format = "csv"
delimiter = "{delimiter}"
timezone = "America/Chicago"
[fields]
ts = "ACCESS_TIME"
user = "USER_ID"
patient = "PAT_MRN_ID"
action = "METRIC_NAME"
host = "WORKSTATION_ID"
records = "RECORD_COUNT"
[actions]
"AN EXISTING PATIENT IS SELECTED FROM PATIENT LOOKUP" = "view"
"PATIENT DEMOGRAPHICS FORM ACCESSED" = "view"
"THE PROBLEM LIST IS VIEWED" = "view"
"REPORT EXPORTED" = "export"
"BREAK THE GLASS ACCESS" = "break_glass"
"PEND A NOTE" = "update"
"#
    )
}

fn check_epic(text: &str, delimiter: &str) {
    let mut p = parser(&epic(delimiter));
    assert!(p.wants_header());
    let ev = parse_all(p.as_mut(), text);
    assert_eq!(ev.len(), 7);

    let e = &ev[0];
    assert_eq!(ts(e), "2024-05-14T14:49:00.000Z", "local CDT");
    assert_eq!(e.user, "E12345");
    assert_eq!(e.action, Action::View);
    assert_eq!(e.patient.as_deref(), Some("MRN00012345"));
    assert_eq!(e.host.as_deref(), Some("WS-4N-12"));
    assert_eq!(e.records, 1, "empty RECORD_COUNT is the default");
    assert_eq!(e.source, "revenue-cycle");

    assert_eq!(ts(&ev[1]), "2024-05-14T14:49:30.250Z");

    let e = &ev[2];
    assert_eq!(e.action, Action::Export);
    assert_eq!(e.records, 250);
    assert_eq!(e.patient, None);
    assert_eq!(ts(e), "2024-05-15T02:03:00.000Z", "US date, 21:03 CDT");

    assert_eq!(ev[3].action, Action::BreakGlass);
    assert_eq!(ev[3].user, "E22222");

    // 01:30 on 2024-11-03 happens twice in Chicago: the earlier (CDT) instant.
    assert_eq!(ts(&ev[4]), "2024-11-03T06:30:00.000Z");
    assert_eq!(
        ev[4].action,
        Action::View,
        "metric name matched trimmed, any case"
    );
    assert_eq!(ev[4].user, "e33333", "ids kept as written");

    assert_eq!(ev[5].action, Action::Print, "'Printed' is a synonym");

    // 02:30 on 2024-03-10 does not exist in Chicago: moved forward to 03:30 CDT.
    assert_eq!(ts(&ev[6]), "2024-03-10T08:30:00.000Z");
    assert_eq!(ev[6].action, Action::Update);
}

#[test]
fn epic_pipe_export_with_crlf_bom_and_quotes() {
    check_epic(&fixture("csv/epic_access.txt"), "|");
}

#[test]
fn epic_tab_export() {
    check_epic(&fixture("csv/epic_access.tsv"), "\\t");
}

#[test]
fn header_resumes_mid_file() {
    // The file source hands the header first, then continues from a checkpoint.
    let text = fixture("csv/epic_access.tsv");
    let all = lines(&text);
    let mut p = parser(&epic("\\t"));
    assert_eq!(p.parse(all[0]), Ok(None));
    let e = p.parse(all[5]).unwrap().unwrap();
    assert_eq!(e.user, "e33333");
}

const DEFAULT_COLUMNS: &str = r#"
name = "files"
type = "file"
format = "csv"
"#;

#[test]
fn default_column_names() {
    let mut p = parser(DEFAULT_COLUMNS);
    let ev = parse_all(p.as_mut(), &fixture("csv/default_columns.csv"));
    assert_eq!(ev.len(), 4, "blank line and repeated header skipped");
    assert_eq!(ev[0].outcome, Outcome::Success);
    let e = &ev[1];
    assert_eq!(e.action, Action::FileWrite);
    assert_eq!(e.path.as_deref(), Some("E:\\export\\list, ward 4.csv"));
    assert_eq!(e.bytes, Some(48213));
    assert_eq!(e.records, 120);
    assert_eq!(e.media, Some(Media::Removable));
    assert_eq!(ev[2].action, Action::Login);
    assert_eq!(ev[2].outcome, Outcome::Failure);
    assert_eq!(ts(&ev[2]), "2024-05-14T11:51:00.000Z");
    assert_eq!(ev[3].action, Action::Export, "'download' is a synonym");
    assert_eq!(ts(&ev[3]), "2024-05-14T13:52:00.000Z", "engine zone UTC");
    assert_eq!(ev[3].outcome, Outcome::Success, "1 is success");
}

#[test]
fn csv_malformed_lines_get_their_reason() {
    let mut p = parser(DEFAULT_COLUMNS);
    check_expectations(
        p.as_mut(),
        &fixture("csv/bad.csv"),
        &fixture("csv/bad.expect"),
    );
    check_line_too_long(p.as_mut());
}

#[test]
fn missing_configured_column_rejects_header_and_rows() {
    let mut p = parser(&epic("|").replace("WORKSTATION_ID", "WORKSTATION"));
    let text = fixture("csv/epic_access.txt");
    let all = lines(&text);
    let r = p.parse(all[0]).unwrap_err();
    assert_eq!(r.reason, reason::MISSING_COLUMN);
    assert!(r.detail.contains("WORKSTATION"), "{}", r.detail);
    assert_eq!(p.parse(all[1]).unwrap_err().reason, reason::MISSING_COLUMN);
}

#[test]
fn config_mistakes_fail_at_build() {
    for bad in [
        epic("||"),
        epic("|").replace("ts = \"ACCESS_TIME\"", "time = \"ACCESS_TIME\""),
        epic("|").replace("= \"update\"", "= \"scribble\""),
        epic("|").replace("ts = \"ACCESS_TIME\"\n", ""),
    ] {
        assert!(build(&source(&bad), Tz::UTC).is_err(), "{bad}");
    }
}

const APP: &str = r#"
name = "portal"
type = "file"
format = "jsonl"
timezone = "Europe/Berlin"
[fields]
ts = "time"
user = "actor.id"
host = "actor.ip"
patient = "patient.mrn"
action = "event.type"
records = "count"
outcome = "result"
[actions]
"chart.open" = "view"
"report.download" = "export"
"#;

#[test]
fn jsonl_dotted_paths() {
    let mut p = parser(APP);
    assert!(!p.wants_header());
    let ev = parse_all(p.as_mut(), &fixture("jsonl/app.jsonl"));
    assert_eq!(ev.len(), 4);
    let e = &ev[0];
    assert_eq!(ts(e), "2024-05-14T07:49:00.000Z", "CEST");
    assert_eq!((e.user.as_str(), e.action), ("jsmith", Action::View));
    assert_eq!(e.host.as_deref(), Some("10.0.0.7"));
    assert_eq!(e.patient.as_deref(), Some("MRN00012345"));
    let e = &ev[1];
    assert_eq!(ts(e), "2024-05-14T13:49:00.123Z", "epoch milliseconds");
    assert_eq!(e.user, "4711");
    assert_eq!(e.patient.as_deref(), Some("12345"));
    assert_eq!((e.action, e.records), (Action::Export, 250));
    assert_eq!(e.outcome, Outcome::Success);
    let e = &ev[2];
    assert_eq!(
        (e.user.as_str(), e.action, e.records),
        ("KDOE", Action::Search, 3)
    );
    assert_eq!(e.outcome, Outcome::Failure);
    assert_eq!(ev[3].patient, None, "null is absent");
    assert_eq!(ev[3].action, Action::Search, "'query' is a synonym");
}

#[test]
fn jsonl_malformed_lines_get_their_reason() {
    let mut p = parser(APP);
    check_expectations(
        p.as_mut(),
        &fixture("jsonl/bad.jsonl"),
        &fixture("jsonl/bad.expect"),
    );
    check_line_too_long(p.as_mut());
}

const CANONICAL: &str = r#"
name = "agents"
type = "file"
format = "canonical"
"#;

#[test]
fn canonical_events() {
    let mut p = parser(CANONICAL);
    let ev = parse_all(p.as_mut(), &fixture("canonical/events.ndjson"));
    assert_eq!(ev.len(), 5);
    for e in &ev {
        assert_eq!(e.source, "agents", "the configured name wins");
    }
    assert_eq!(ts(&ev[0]), "2024-05-14T13:49:00.123Z");
    assert_eq!(ev[1].records, 250);
    assert_eq!(ts(&ev[1]), "2024-05-15T02:03:11.000Z");
    let e = &ev[2];
    assert_eq!(e.user, "JSMITH");
    assert_eq!(e.media, Some(Media::Removable));
    assert_eq!(e.bytes, Some(48213));
    assert_eq!(e.phi.as_ref().map(|m| m.patterns), Some(120));
    assert_eq!(e.origin.as_ref().map(|o| o.offset), Some(42));
    assert_eq!(ev[3].action, Action::BreakGlass);
    assert_eq!(ev[3].patient.as_deref(), Some("99999"));
    assert_eq!(ev[3].outcome, Outcome::Failure);
    assert_eq!(ev[4].action, Action::Login);

    // What the parser produces serialises back to the same canonical event.
    for e in &ev {
        let again = p.parse(&e.to_json_line()).unwrap().unwrap();
        assert_eq!(&again, e);
    }
}

#[test]
fn canonical_malformed_lines_get_their_reason() {
    let mut p = parser(CANONICAL);
    check_expectations(
        p.as_mut(),
        &fixture("canonical/bad.ndjson"),
        &fixture("canonical/bad.expect"),
    );
    check_line_too_long(p.as_mut());
}

#[test]
fn damaged_lines_never_panic() {
    let csv = fixture("csv/epic_access.txt");
    let csv_lines = lines(&csv);
    let mut p = parser(&epic("|"));
    p.parse(csv_lines[0]).unwrap();
    survive_damage(p.as_mut(), &csv_lines[1..], 200);

    let app = fixture("jsonl/app.jsonl");
    survive_damage(parser(APP).as_mut(), &lines(&app), 200);

    let can = fixture("canonical/events.ndjson");
    survive_damage(parser(CANONICAL).as_mut(), &lines(&can), 200);
}

/// A parser for a source written with a `preset`, as the config loader builds it.
fn preset_parser(toml_text: &str) -> Box<dyn phiwatch::parse::Parser> {
    let mut s = source(toml_text);
    phiwatch::config::presets::apply(&mut s).expect("known preset");
    build(&s, Tz::UTC).expect("parser builds")
}

/// The Epic preset reads the break-the-glass reason into `purpose`, and a file without
/// that column still loads; the OpenEMR preset reads `patient_id` 0 (or empty) as no
/// patient, not as patient "0".
#[test]
fn presets_read_btg_reason_and_openemr_no_patient() {
    let mut p = preset_parser(
        "name = \"epic\"\ntype = \"file\"\npreset = \"epic-clarity\"\n[actions]\n\"BREAK THE GLASS ACCESS\" = \"break_glass\"\n",
    );
    let text = "ACCESS_TIME|METRIC_NAME|WORKSTATION_ID|PAT_MRN_ID|BTG_REASON|BTG_EXPLANATION|SYSTEM_LOGIN\n\
                2024-05-14T23:40:00|BREAK THE GLASS ACCESS|WS-ED-01|MRN00099999|Emergency|free text|KDOE\n\
                2024-05-14T23:41:00|THE PROBLEM LIST IS VIEWED|WS-ED-01|MRN00099999||free text|KDOE\n";
    let ev = parse_all(p.as_mut(), text);
    assert_eq!(ev.len(), 2);
    assert_eq!(ev[0].action, Action::BreakGlass);
    assert_eq!(ev[0].purpose.as_deref(), Some("Emergency"));
    assert_eq!(ev[1].action, Action::View);
    assert_eq!(ev[1].purpose, None, "an empty reason is no purpose");

    let mut p = preset_parser("name = \"epic\"\ntype = \"file\"\npreset = \"epic-clarity\"\n");
    let text = "ACCESS_TIME|METRIC_NAME|WORKSTATION_ID|PAT_MRN_ID|USER_ID\n\
                2024-05-14T09:49:00|THE PROBLEM LIST IS VIEWED|WS-1|MRN1|E1\n";
    let ev = parse_all(p.as_mut(), text);
    assert_eq!(ev.len(), 1, "no BTG_REASON column: optional");
    assert_eq!(ev[0].purpose, None);

    let mut p = preset_parser("name = \"emr\"\ntype = \"file\"\npreset = \"openemr-log\"\n");
    let text = "id,date,event,category,user,groupname,comments,user_notes,patient_id,success\n\
                1,2026-03-02 09:40:00,login,login,jsmith,Default,,,0,1\n\
                2,2026-03-02 09:49:00,view,view,jsmith,Default,,,12345,1\n\
                3,2026-03-02 09:50:00,logout,logout,jsmith,Default,,,,1\n\
                4,2026-03-02 09:51:00,view,view,jsmith,Default,,,0012,1\n";
    let ev = parse_all(p.as_mut(), text);
    assert_eq!(ev.len(), 4);
    assert_eq!(ev[0].action, Action::Login);
    assert_eq!(ev[0].patient, None, "patient_id 0 is no patient");
    assert_eq!(ev[1].patient.as_deref(), Some("12345"));
    assert_eq!(ev[2].patient, None);
    assert_eq!(
        ev[3].patient.as_deref(),
        Some("0012"),
        "only 0 itself means none"
    );

    // Written by hand, `no_patient` is the same.
    let mut p =
        parser("name = \"x\"\ntype = \"file\"\nformat = \"csv\"\nno_patient = [\"NONE\", \"-\"]\n");
    let text = "ts,user,action,patient\n2024-05-14T09:49:00Z,u1,view,none\n2024-05-14T09:49:00Z,u1,view,-\n2024-05-14T09:49:00Z,u1,view,p9\n";
    let ev = parse_all(p.as_mut(), text);
    let pats: Vec<Option<&str>> = ev.iter().map(|e| e.patient.as_deref()).collect();
    assert_eq!(pats, [None, None, Some("p9")]);
}

/// `purpose` is a canonical field csv and jsonl map like the others, and the canonical
/// format keeps it.
#[test]
fn purpose_is_mapped_and_kept() {
    let mut p = parser(
        "name = \"x\"\ntype = \"file\"\nformat = \"jsonl\"\n[fields]\nts = \"t\"\nuser = \"u\"\naction = \"a\"\npurpose = \"why.code\"\n",
    );
    let ev = parse_all(
        p.as_mut(),
        r#"{"t":"2024-05-14T09:49:00Z","u":"u1","a":"view","why":{"code":"BTG"}}"#,
    );
    assert_eq!(ev[0].purpose.as_deref(), Some("BTG"));
    let mut p = parser("name = \"x\"\ntype = \"file\"\nformat = \"canonical\"\n");
    let ev = parse_all(
        p.as_mut(),
        r#"{"ts":"2024-05-14T09:49:00Z","user":"u1","action":"view","patient":"p1","purpose":"ETREAT"}"#,
    );
    assert_eq!(ev[0].purpose.as_deref(), Some("ETREAT"));
}
