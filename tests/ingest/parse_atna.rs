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

/// One line of `atna/public-shapes.log` and what it must give: an action with its user
/// and patient, or the label it is ignored under.
enum Want {
    Event(Action, &'static str, Option<&'static str>),
    Ignored(&'static str),
}

#[test]
fn public_shapes_have_their_expected_outcome() {
    use Want::*;
    // In file order; tests/fixtures/parse/atna/README.md says where each shape is from.
    let want = [
        Event(Action::View, "VIEWER07", Some("PX20310")),
        Event(Action::Create, "CT_SCANNER_2", Some("PX20311")),
        Event(Action::Update, "kmueller", Some("PX20312")),
        Event(Action::Delete, "archivist2", Some("PX20313")),
        Event(Action::Search, "FINDSCU", None),
        Ignored("security_alert"),
        Event(Action::BreakGlass, "root.admin", None),
        Ignored("security_alert"),
        Ignored("application_activity"),
        Event(Action::Logout, "kmueller", None),
        Event(Action::Export, "ws-4n-12\\tnguyen", Some("MRN00077001")),
        Event(Action::Search, "iexhub", Some("MRN00077100")),
        Event(Action::Update, "drpatel", Some("4417")),
        Event(Action::Login, "lchen", None),
        Event(Action::Search, "7601000000123", Some("761337610000000001")),
    ];
    let text = fixture("atna/public-shapes.log");
    let lines = lines(&text);
    assert!(lines.len() >= 10);
    assert_eq!(lines.len(), want.len(), "one expectation per message");
    let mut p = parser(SOURCE);
    let mut events = Vec::new();
    for (i, (line, want)) in lines.iter().zip(&want).enumerate() {
        let n = i + 1;
        match (p.parse(line), want) {
            (Ok(Some(e)), Event(action, user, patient)) => {
                assert_eq!(e.action, *action, "line {n}");
                assert_eq!(e.user, *user, "line {n}");
                assert_eq!(e.patient.as_deref(), *patient, "line {n}");
                events.push(e);
            }
            (Err(r), Ignored(label)) => {
                assert!(r.ignored, "line {n}: {r} is a rejection, not ignored");
                assert_eq!(r.reason, *label, "line {n}");
            }
            (got, _) => panic!("line {n}: unexpected {got:?}"),
        }
    }

    // The details the table does not show.
    let by_user = |u: &str| events.iter().find(|e| e.user == u).unwrap();
    let e = by_user("VIEWER07");
    assert_eq!(
        ts(e),
        "2024-05-14T08:22:29.457Z",
        "octet count 3 bytes short"
    );
    assert_eq!(e.host.as_deref(), Some("10.30.1.77"));
    let e = by_user("archivist2");
    assert_eq!(
        ts(e),
        "2024-05-14T09:15:00.512Z",
        "BSD header, EventDateTime"
    );
    let e = by_user("ws-4n-12\\tnguyen");
    assert_eq!(e.media, Some(Media::Network), "MediaType 110037 URI");
    assert_eq!(e.records, 2, "two patients exported; the first is kept");
    assert_eq!(
        ts(by_user("iexhub")),
        "2024-05-14T09:49:00.000Z",
        "no seconds"
    );
    let e = by_user("drpatel");
    assert_eq!(ts(e), "2024-05-14T13:52:00.000Z", "no seconds, -04:00");
    assert_eq!(e.host, None, "OpenEMR's own address is not the user's");
    let e = by_user("7601000000123");
    assert_eq!(e.host, None, "the Human Requestor, not the Source system");
    assert_eq!(e.records, 1, "the query object is not a patient");
}
