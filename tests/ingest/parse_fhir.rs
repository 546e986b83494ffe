//! `format = "fhir-audit"` through the public API, on BALP-shaped fixtures.

use crate::support::parse::*;
use phiwatch::event::{Action, Media, Outcome};

const SOURCE: &str = r#"
name = "inpatient"
type = "file"
paths = ["fhir/*.ndjson"]
format = "fhir-audit"
timezone = "America/Chicago"
"#;

#[test]
fn good_fixture_maps_every_field() {
    let mut p = parser(SOURCE);
    assert!(!p.wants_header());
    let ev = parse_all(p.as_mut(), &fixture("fhir/good.ndjson"));
    assert_eq!(ev.len(), 11);
    for e in &ev {
        assert_eq!(e.source, "inpatient");
    }

    // 1. BALP patient read (formats.md 1.3).
    let e = &ev[0];
    assert_eq!(ts(e), "2024-05-14T13:49:00.123Z");
    assert_eq!(e.user, "E12345");
    assert_eq!(e.action, Action::View);
    assert_eq!(e.patient.as_deref(), Some("12345"));
    assert_eq!(e.records, 1);
    assert_eq!(e.host.as_deref(), Some("10.20.4.57"), "client agent 110152");
    assert_eq!(e.outcome, Outcome::Success);

    // 2. Patient search with a query entity; user from Practitioner reference.
    let e = &ev[1];
    assert_eq!(e.action, Action::Search);
    assert_eq!(e.user, "pr-778");
    assert_eq!(e.patient.as_deref(), Some("12345"));

    // 3. Export of three distinct patients (one listed twice, one absolute URL).
    let e = &ev[2];
    assert_eq!(e.action, Action::Export);
    assert_eq!(ts(e), "2024-05-15T02:03:11.502Z", "period.start wins");
    assert_eq!(e.records, 3);
    assert_eq!(e.patient.as_deref(), Some("12345"));
    assert_eq!(e.media, Some(Media::Removable));

    // 4. R5 shape.
    let e = &ev[3];
    assert_eq!(e.action, Action::Update);
    assert_eq!(ts(e), "2024-05-14T08:15:00.000Z", "occurredDateTime");
    assert_eq!(e.user, "dr.jones", "trimmed");
    assert_eq!(e.patient.as_deref(), Some("45678"));
    assert_eq!(
        e.records, 1,
        "R5 patient and the role-1 entity are the same patient"
    );
    assert_eq!(e.host.as_deref(), Some("ws-3s-07"));
    assert_eq!(e.outcome, Outcome::Success);

    // 5. CodeableConcept type, vread, Patient/ fallback with _history, "true" string.
    let e = &ev[4];
    assert_eq!(e.action, Action::View);
    assert_eq!(e.user, "123");
    assert_eq!(e.patient.as_deref(), Some("777"));
    assert_eq!(e.host.as_deref(), Some("10.9.8.7"));

    // 6. Failed delete; user from altId; no patient.
    let e = &ev[5];
    assert_eq!(e.action, Action::Delete);
    assert_eq!(e.user, "HOSP\\kdoe");
    assert_eq!(e.outcome, Outcome::Failure);
    assert_eq!(e.patient, None);

    // 7-9. Login, logout, break-glass.
    assert_eq!(ev[6].action, Action::Login);
    assert_eq!(ev[7].action, Action::Logout);
    assert_eq!(ev[8].action, Action::BreakGlass);
    assert_eq!(ev[8].patient.as_deref(), Some("99999"));

    // 10. No offset: America/Chicago (CDT, UTC-5). Numeric identifier.
    let e = &ev[9];
    assert_eq!(ts(e), "2024-05-14T13:49:00.000Z");
    assert_eq!(e.user, "4711");
    assert_eq!(e.patient.as_deref(), Some("MRN-5"), "what.identifier.value");

    // 11. Date-only period.start falls back to recorded.
    let e = &ev[10];
    assert_eq!(ts(e), "2024-05-14T18:30:00.000Z");
    assert_eq!(e.action, Action::Create);
}

#[test]
fn malformed_lines_get_their_reason() {
    let mut p = parser(SOURCE);
    check_expectations(
        p.as_mut(),
        &fixture("fhir/bad.ndjson"),
        &fixture("fhir/bad.expect"),
    );
    check_line_too_long(p.as_mut());
}

#[test]
fn damaged_lines_never_panic() {
    let mut p = parser(SOURCE);
    let good = fixture("fhir/good.ndjson");
    survive_damage(p.as_mut(), &lines(&good), 300);
}

/// Published AuditEvent shapes (FHIR R4/R5 spec examples, IHE BALP examples; see
/// tests/fixtures/parse/fhir/README.md): every person's access is read, the person being
/// the requestor even when only a display name is there; decisions are ignored.
#[test]
fn public_shapes() {
    let mut p = parser(SOURCE);
    let text = fixture("fhir/public-shapes.ndjson");
    let mut got = Vec::new();
    for line in lines(&text) {
        got.push(p.parse(line));
    }
    assert_eq!(got.len(), 11);
    let ev = |i: usize| match &got[i] {
        Ok(Some(e)) => e.clone(),
        other => panic!("line {}: {other:?}", i + 1),
    };
    let rejected = |i: usize| match &got[i] {
        Err(r) => r.clone(),
        other => panic!("line {}: {other:?}", i + 1),
    };

    // 1. R4 vread by a human requestor (identifier before reference); patient from a
    //    versioned Patient/ reference.
    let e = ev(0);
    assert_eq!(e.action, Action::View);
    assert_eq!(e.user, "95");
    assert_eq!(e.patient.as_deref(), Some("example"));
    assert_eq!(e.purpose, None);

    // 2. BALP patient read: the user agent has only who.display.
    let e = ev(1);
    assert_eq!(e.action, Action::View);
    assert_eq!(e.user, "John Smith");
    assert_eq!(e.patient.as_deref(), Some("ex-patient"));
    assert_eq!(
        e.host.as_deref(),
        Some("2001:0db8:85a3:0000:0000:8a2e:0370:7334")
    );
    assert_eq!(e.outcome, Outcome::Success);

    // 3. BALP query: the patient only in the base64 query's `patient=`.
    let e = ev(2);
    assert_eq!(e.action, Action::Search);
    assert_eq!(e.user, "John Smith");
    assert_eq!(e.patient.as_deref(), Some("ex-patient"));

    // 4. R5: category/code, outcome object (8: failure), patient element, networkString.
    let e = ev(3);
    assert_eq!(e.action, Action::View);
    assert_eq!(e.user, "jdoe");
    assert_eq!(e.outcome, Outcome::Failure);
    assert_eq!(e.patient.as_deref(), Some("example"));
    assert_eq!(e.host.as_deref(), Some("ws-4n-12"));

    // 5. R5 break-glass start: 110127, authorization ETREAT.
    let e = ev(4);
    assert_eq!(e.action, Action::BreakGlass);
    assert_eq!(e.user, "f001");
    assert_eq!(e.purpose.as_deref(), Some("ETREAT"));
    assert_eq!(e.patient.as_deref(), Some("example"));
    assert_eq!(e.host.as_deref(), Some("custodian.net"));

    // 6. R4 read under purposeOfEvent BTG: the action stays a view, the purpose says BTG;
    //    two patients: the first, both counted.
    let e = ev(5);
    assert_eq!(e.action, Action::View);
    assert_eq!(e.user, "pr-88");
    assert_eq!(e.purpose.as_deref(), Some("BTG"));
    assert_eq!(e.patient.as_deref(), Some("MRN00012345"));
    assert_eq!(e.records, 2);
    assert!(e.to_json_line().contains(r#""purpose":"BTG""#));

    // 7, 8. Consent decision (R5 spec) and BALP AuthZ-Consent: ignored, not rejected.
    for i in [6, 7] {
        let r = rejected(i);
        assert!(r.ignored, "line {}", i + 1);
        assert_eq!(r.reason, phiwatch::parse::ignored::OTHER);
    }

    // 9. Login.
    let e = ev(8);
    assert_eq!(e.action, Action::Login);
    assert_eq!(e.user, "95");
    assert_eq!(e.host.as_deref(), Some("127.0.0.1"));

    // 10. Export to DVD, no agent marked requestor: the Practitioner agent acted; CX
    //     identifiers give their first component.
    let e = ev(9);
    assert_eq!(e.action, Action::Export);
    assert_eq!(e.user, "xcda-author");
    assert_eq!(e.media, Some(Media::Removable));
    assert_eq!(e.patient.as_deref(), Some("e3cdfc81a0d24bd"));
    assert_eq!(e.records, 2);

    // 11. B2B read with no user agent (BALP ex-auditBasicReadNoUser): no person is
    //     named, only the client and the server; counted as ignored.
    let r = rejected(10);
    assert!(r.ignored);
    assert_eq!(r.reason, phiwatch::parse::ignored::NO_PERSON);
}
