//! `format = "atna-syslog"` through the public API: DICOM and RFC 3881 (OpenEMR) coded
//! values, RFC 5424 with structured data, BSD headers, octet counting, BOMs.

use crate::support::parse::*;
use phiwatch::event::{Action, Media, Outcome};

const SOURCE: &str = r#"
name = "atna"
type = "file"
paths = ["atna/*.log"]
format = "atna-syslog"
"#;

#[test]
fn good_fixture_maps_every_field() {
    let mut p = parser(SOURCE);
    assert!(!p.wants_header());
    let ev = parse_all(p.as_mut(), &fixture("atna/good.log"));
    assert_eq!(ev.len(), 13);
    for e in &ev {
        assert_eq!(e.source, "atna");
    }

    // 1. DICOM-style Patient Record read (formats.md 2.2) behind an RFC 5424 header.
    let e = &ev[0];
    assert_eq!(ts(e), "2024-05-14T13:49:00.123Z", "EventDateTime, -04:00");
    assert_eq!(e.user, "jsmith");
    assert_eq!(e.action, Action::View);
    assert_eq!(
        e.patient.as_deref(),
        Some("MRN00012345"),
        "first CX component"
    );
    assert_eq!(e.host.as_deref(), Some("10.20.4.57"));
    assert_eq!(e.records, 1);
    assert_eq!(e.outcome, Outcome::Success);

    // 2. Export to USB (formats.md 2.3 plus a second patient and a study object),
    //    octet-counted, BOM before the XML.
    let e = &ev[1];
    assert_eq!(e.action, Action::Export);
    assert_eq!(e.records, 2, "two patients; the study object is not one");
    assert_eq!(e.media, Some(Media::Removable));
    assert_eq!(e.host.as_deref(), Some("WS-4N-12"));

    // 3-5. OpenEMR: user from the role-6 object, no host (it is the server's address).
    let e = &ev[2];
    assert_eq!((e.user.as_str(), e.action), ("jsmith", Action::View));
    assert_eq!(e.patient.as_deref(), Some("12345"));
    assert_eq!(e.host, None);
    assert_eq!(ts(e), "2024-05-14T13:49:00.000Z");
    assert_eq!(
        ev[3].action,
        Action::View,
        "OpenEMR chart open is Patient Record + E"
    );
    assert_eq!(ev[4].action, Action::Login);
    assert_eq!(ev[4].outcome, Outcome::Failure);
    assert_eq!(ev[4].patient, None);

    // 6. Query with structured data holding escaped quotes and ].
    let e = &ev[5];
    assert_eq!(e.action, Action::Search);
    assert_eq!(e.user, "mlee");
    assert_eq!(e.patient.as_deref(), Some("MRN00034567"));
    assert_eq!(e.records, 1, "the query object is not a patient");

    // 7. BSD header; upper-case id kept as written, trimmed.
    let e = &ev[6];
    assert_eq!(e.action, Action::Update);
    assert_eq!(e.user, "MBERG");
    assert_eq!(ts(e), "2024-05-14T09:00:05.250Z");

    // 8-10. Login, failed logout, break-glass.
    assert_eq!(ev[7].action, Action::Login);
    assert_eq!(ev[8].action, Action::Logout);
    assert_eq!(ev[8].outcome, Outcome::Failure);
    assert_eq!(ev[9].action, Action::BreakGlass);
    assert_eq!(ev[9].patient.as_deref(), Some("MRN00099999"));

    // 11. Bare namespaced XML, MediaType directly under ActiveParticipant, "1" as true.
    let e = &ev[10];
    assert_eq!(e.action, Action::Export);
    assert_eq!(e.user, "rad-tech-2");
    assert_eq!(e.media, Some(Media::Removable));
    assert_eq!(e.outcome, Outcome::Failure);
    assert_eq!(e.patient.as_deref(), Some("P-7"));

    // 12. Export to paper is a print.
    assert_eq!(ev[11].action, Action::Print);
    assert_eq!(ev[11].media, None);

    // 13. No EventDateTime: the RFC 5424 timestamp.
    assert_eq!(ts(&ev[12]), "2024-05-14T13:49:00.123Z");
}

#[test]
fn malformed_lines_get_their_reason() {
    let mut p = parser(SOURCE);
    check_expectations(
        p.as_mut(),
        &fixture("atna/bad.log"),
        &fixture("atna/bad.expect"),
    );
    check_line_too_long(p.as_mut());
}

#[test]
fn large_messages_are_fine() {
    // Real messages reach 32 KiB and more: many participant objects.
    let obj = r#"<ParticipantObjectIdentification ParticipantObjectID="2.25.1" ParticipantObjectTypeCode="2" ParticipantObjectTypeCodeRole="4"><ParticipantObjectDetail type="x" value="eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eA=="/></ParticipantObjectIdentification>"#;
    let line = format!(
        r#"<85>1 2024-05-14T13:49:00Z h a - IHE+RFC-3881 - <AuditMessage><EventIdentification EventActionCode="R" EventDateTime="2024-05-14T13:49:00Z"><EventID csd-code="110103"/></EventIdentification><ActiveParticipant UserID="u1" UserIsRequestor="true"/>{}<ParticipantObjectIdentification ParticipantObjectID="P1" ParticipantObjectTypeCode="1" ParticipantObjectTypeCodeRole="1"/></AuditMessage>"#,
        obj.repeat(400)
    );
    assert!(line.len() > 64 * 1024);
    let e = parser(SOURCE).parse(&line).unwrap().unwrap();
    assert_eq!(e.action, Action::View);
    assert_eq!(e.patient.as_deref(), Some("P1"));
}

#[test]
fn damaged_lines_never_panic() {
    let mut p = parser(SOURCE);
    let good = fixture("atna/good.log");
    survive_damage(p.as_mut(), &lines(&good), 150);
}
