//! CEF output: escaping, severity, fields, patient policies.

use crate::support::alert::{follow_up, parse_cef, sample, FIRST_ID, KEY};
use phiwatch::alert::Severity;
use phiwatch::config::AlertFormat;
use phiwatch::format::{self, cef};
use phiwatch::pseudonym::{pseudonymise, PatientPolicy, PseudonymKey};

fn plain(a: &phiwatch::alert::Alert) -> String {
    format::render(a, AlertFormat::Cef, &PatientPolicy::Plain)
}

#[test]
fn header_escapes_pipe_and_backslash_and_drops_newlines() {
    let mut a = sample();
    a.detector = r"odd|det\ector".into();
    a.summary = "line one\r\nline two | with = sign".into();
    let line = plain(&a);
    assert!(
        line.starts_with(&format!(
            "CEF:0|phiwatch|phiwatch|{}|odd\\|det\\\\ector|line one  line two \\| with = sign|8|",
            format::VERSION
        )),
        "{line}"
    );
    let cef = parse_cef(&line);
    assert_eq!(cef.header[4], r"odd|det\ector");
    assert_eq!(cef.header[5], "line one  line two | with = sign");
    // In the extension the same summary keeps `|` as is and escapes `=`.
    assert!(
        line.contains(r"msg=line one\r\nline two | with \= sign"),
        "{line}"
    );
    assert_eq!(cef.get("msg"), Some("line one\r\nline two | with = sign"));
    assert_eq!(cef.get("act"), Some(r"odd|det\ector"));
}

#[test]
fn extension_escapes_equals_backslash_newline_but_not_pipe() {
    assert_eq!(cef::escape_ext_value(r"a=b\c|d"), r"a\=b\\c|d");
    assert_eq!(cef::escape_ext_value("x\ny\rz"), r"x\ny\rz");
    assert_eq!(cef::escape_header(r"a|b\c=d"), r"a\|b\\c=d");
    assert_eq!(cef::escape_header("a\nb\rc\td"), "a b c d");

    let line = plain(&sample());
    assert!(!line.contains('\n') && !line.ends_with(' '));
    assert!(
        line.contains(r"(score\=73)\nsecond line"),
        "reasons keep escaped = and newline: {line}"
    );
    assert!(line.contains(r"path C:\\ehr\\export"), "{line}");
    assert!(line.contains("MRN-77 | flagged"), "{line}");
}

#[test]
fn severity_mapping() {
    for (s, n) in [
        (Severity::Low, "3"),
        (Severity::Medium, "5"),
        (Severity::High, "8"),
        (Severity::Critical, "10"),
    ] {
        let mut a = sample();
        a.severity = s;
        assert_eq!(parse_cef(&plain(&a)).header[6], n, "{s}");
    }
}

#[test]
fn sample_round_trips_through_a_cef_parser() {
    let a = sample();
    let cef = parse_cef(&plain(&a));
    assert_eq!(
        cef.header,
        [
            "0",
            "phiwatch",
            "phiwatch",
            format::VERSION,
            "same-surname",
            a.summary.as_str(),
            "8"
        ]
    );
    let keys: Vec<&str> = cef.ext.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "rt",
            "start",
            "end",
            "suser",
            "duser",
            "act",
            "cnt",
            "msg",
            "externalId",
            "cs1Label",
            "cs1",
            "cs2Label",
            "cs2",
            "cs3Label",
            "cs3",
            "cn1Label",
            "cn1"
        ]
    );
    assert_eq!(cef.get("rt"), Some("1715694540123"));
    assert_eq!(cef.get("start"), Some("1715693940000"));
    assert_eq!(cef.get("end"), Some("1715694540123"));
    assert_eq!(cef.get("suser"), Some("jsmith"));
    assert_eq!(cef.get("duser"), Some("MRN00012345,mrn-77"));
    assert_eq!(cef.get("act"), Some("same-surname"));
    assert_eq!(cef.get("cnt"), Some("3"));
    assert_eq!(cef.get("msg"), Some(a.summary.as_str()));
    assert_eq!(cef.get("externalId"), Some(a.id.as_str()));
    assert_eq!(cef.get("cs1Label"), Some("detector"));
    assert_eq!(cef.get("cs1"), Some("same-surname"));
    assert_eq!(cef.get("cs2Label"), Some("reasons"));
    assert_eq!(cef.get("cs2"), Some(a.reasons.join("; ").as_str()));
    assert_eq!(cef.get("cs3Label"), Some("patients"));
    assert_eq!(cef.get("cs3"), Some("MRN00012345,mrn-77"));
    assert_eq!(cef.get("cn1Label"), Some("score"));
    assert_eq!(cef.get("cn1"), Some("73"));
}

#[test]
fn a_follow_up_carries_follows_in_cs4() {
    let cef = parse_cef(&plain(&follow_up()));
    assert_eq!(cef.get("cs4Label"), Some("follows"));
    assert_eq!(cef.get("cs4"), Some(FIRST_ID));
    assert_eq!(cef.get("externalId"), Some(follow_up().id.as_str()));
    let keys: Vec<&str> = cef.ext.iter().map(|(k, _)| k.as_str()).collect();
    let at = keys.iter().position(|k| *k == "cs4Label").unwrap();
    assert_eq!(keys[at - 1], "cs3", "{keys:?}");
    assert_eq!(keys[at + 1], "cs4");
    // Absent from any other alert (see the golden line too).
    assert_eq!(parse_cef(&plain(&sample())).get("cs4Label"), None);
}

#[test]
fn matches_the_golden_line() {
    let want = include_str!("../fixtures/format/alert.cef")
        .trim_end_matches('\n')
        .replace("{VERSION}", format::VERSION);
    assert_eq!(plain(&sample()), want);
}

#[test]
fn pseudonymised_patients_everywhere() {
    let key = PseudonymKey::new(KEY);
    let a = sample();
    let line = format::render(
        &a,
        AlertFormat::Cef,
        &PatientPolicy::Pseudonymised(key.clone()),
    );
    let p1 = pseudonymise(&key, "MRN00012345");
    let p2 = pseudonymise(&key, "mrn-77");
    let cef = parse_cef(&line);
    assert_eq!(cef.get("duser"), Some(format!("{p1},{p2}").as_str()));
    assert_eq!(cef.get("cs3"), cef.get("duser"));
    let reasons = cef.get("cs2").unwrap();
    assert!(
        reasons.contains(&format!("opened {p1} three times")),
        "{reasons}"
    );
    assert!(
        reasons.contains(&format!("patient {p2} | flagged")),
        "{reasons}"
    );
    assert!(!line.to_lowercase().contains("mrn"), "{line}");
}

#[test]
fn omitted_patients_leave_no_trace() {
    let line = format::render(&sample(), AlertFormat::Cef, &PatientPolicy::Omitted);
    let cef = parse_cef(&line);
    assert_eq!(cef.get("duser"), None);
    assert_eq!(cef.get("cs3"), None);
    assert!(!line.to_lowercase().contains("mrn"), "{line}");
    assert!(cef
        .get("cs2")
        .unwrap()
        .contains("opened [patient] three times"));
}

#[test]
fn duser_and_other_fields_stay_within_arcsight_limits() {
    // 150 pseudonymised patients, as in the issue (up to 3,383 characters before).
    let mut a = sample();
    a.patients = (0..150).map(|i| format!("MRN{i:08}")).collect();
    a.summary = "s".repeat(3000);
    let key = PseudonymKey::new(KEY);
    let line = format::render(&a, AlertFormat::Cef, &PatientPolicy::Pseudonymised(key));
    let cef = parse_cef(&line);
    let get = |k: &str| {
        cef.get(k)
            .unwrap_or_else(|| panic!("no {k}: {line}"))
            .to_string()
    };
    let duser = get("duser");
    assert!(duser.chars().count() <= 1023, "{}", duser.len());
    assert!(duser.ends_with(" more"), "{duser}");
    assert!(get("msg").chars().count() <= 1023);
    assert!(get("msg").ends_with(cef::CUT));
    assert!(get("cs3").chars().count() <= 4000);
    assert!(cef.header[5].chars().count() <= 512);
    // Below the limit nothing changes.
    let short = parse_cef(&plain(&sample()));
    assert_eq!(short.get("duser").unwrap(), sample().patients.join(","));
}
