//! LEEF 2.0 output: declared delimiter, values free of it, keys.

use crate::support::alert::{follow_up, parse_leef, sample, FIRST_ID, KEY};
use phiwatch::alert::Severity;
use phiwatch::config::AlertFormat;
use phiwatch::format::{self, Formatter, LeefDelimiter};
use phiwatch::pseudonym::{pseudonymise, PatientPolicy, PseudonymKey};

fn render(a: &phiwatch::alert::Alert, d: LeefDelimiter, p: &PatientPolicy) -> String {
    let mut f = Formatter::new(AlertFormat::Leef);
    f.leef_delimiter = d;
    f.render(a, p)
}

#[test]
fn caret_delimiter_is_declared_and_absent_from_values() {
    let mut a = sample();
    a.summary = "a^b\nc".into();
    a.reasons.push("x^y\tz".into());
    a.user = "j^smith".into();
    let line = render(&a, LeefDelimiter::Caret, &PatientPolicy::Plain);
    assert!(
        line.starts_with(&format!(
            "LEEF:2.0|phiwatch|phiwatch|{}|same-surname|^|devTime=",
            format::VERSION
        )),
        "{line}"
    );
    assert!(!line.contains('\n') && !line.contains('\r') && !line.contains('\t'));
    let leef = parse_leef(&line);
    assert_eq!(leef.delimiter, '^');
    for (k, v) in &leef.attrs {
        assert!(!v.contains('^'), "{k}={v}");
    }
    assert_eq!(leef.get("summary"), Some("a b c"));
    assert_eq!(leef.get("usrName"), Some("j smith"));
    assert!(leef.get("reasons").unwrap().ends_with("; x y z"));
}

#[test]
fn tab_delimiter_is_declared_as_x09() {
    let mut a = sample();
    a.summary = "tab\there".into();
    let line = render(&a, LeefDelimiter::Tab, &PatientPolicy::Plain);
    let leef = parse_leef(&line);
    assert_eq!(leef.header[5], "x09");
    assert_eq!(leef.delimiter, '\t');
    assert_eq!(leef.get("summary"), Some("tab here"));
    assert_eq!(leef.get("sev"), Some("8"));
    assert_eq!(LeefDelimiter::parse("tab"), Some(LeefDelimiter::Tab));
    assert_eq!(LeefDelimiter::parse("^"), Some(LeefDelimiter::Caret));
    assert_eq!(LeefDelimiter::parse(","), None);
}

#[test]
fn keys_and_values() {
    let a = sample();
    let leef = parse_leef(&format::render(
        &a,
        AlertFormat::Leef,
        &PatientPolicy::Plain,
    ));
    assert_eq!(leef.get("devTime"), Some("1715694540123"));
    assert_eq!(leef.get("sev"), Some("8"));
    assert_eq!(leef.get("cat"), Some("same-surname"));
    assert_eq!(leef.get("usrName"), Some("jsmith"));
    assert_eq!(leef.get("alertId"), Some(a.id.as_str()));
    assert_eq!(leef.get("score"), Some("73"));
    assert_eq!(leef.get("eventCount"), Some("3"));
    assert_eq!(leef.get("startTime"), Some("1715693940000"));
    assert_eq!(leef.get("endTime"), Some("1715694540123"));
    assert_eq!(leef.get("patients"), Some("MRN00012345,mrn-77"));
    // `=` inside a value is fine: attributes split on the first `=`.
    assert!(leef
        .get("reasons")
        .unwrap()
        .contains("(score=73) second line"));
    for (s, n) in [
        (Severity::Low, "3"),
        (Severity::Medium, "5"),
        (Severity::High, "8"),
        (Severity::Critical, "10"),
    ] {
        let mut b = a.clone();
        b.severity = s;
        let l = parse_leef(&format::render(
            &b,
            AlertFormat::Leef,
            &PatientPolicy::Plain,
        ));
        assert_eq!(l.get("sev"), Some(n));
    }
}

#[test]
fn a_follow_up_carries_follows() {
    for d in [LeefDelimiter::Caret, LeefDelimiter::Tab] {
        let leef = parse_leef(&render(&follow_up(), d, &PatientPolicy::Plain));
        assert_eq!(leef.get("follows"), Some(FIRST_ID));
        assert_eq!(leef.get("alertId"), Some(follow_up().id.as_str()));
    }
    let leef = parse_leef(&render(
        &sample(),
        LeefDelimiter::Caret,
        &PatientPolicy::Plain,
    ));
    assert_eq!(leef.get("follows"), None);
}

#[test]
fn pipe_in_header_is_replaced() {
    let mut a = sample();
    a.detector = "a|b".into();
    let leef = parse_leef(&format::render(
        &a,
        AlertFormat::Leef,
        &PatientPolicy::Plain,
    ));
    assert_eq!(leef.header[4], "a/b");
    assert_eq!(leef.get("cat"), Some("a|b"));
}

#[test]
fn patient_policies() {
    let key = PseudonymKey::new(KEY);
    let a = sample();
    let line = format::render(
        &a,
        AlertFormat::Leef,
        &PatientPolicy::Pseudonymised(key.clone()),
    );
    let leef = parse_leef(&line);
    let want = format!(
        "{},{}",
        pseudonymise(&key, "MRN00012345"),
        pseudonymise(&key, "mrn-77")
    );
    assert_eq!(leef.get("patients"), Some(want.as_str()));
    assert!(!line.to_lowercase().contains("mrn"));
    let line = format::render(&a, AlertFormat::Leef, &PatientPolicy::Omitted);
    assert_eq!(parse_leef(&line).get("patients"), None);
    assert!(!line.to_lowercase().contains("mrn"));
}
