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
