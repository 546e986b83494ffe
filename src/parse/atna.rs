//! IHE ATNA: a syslog line whose message is a DICOM PS3.15 A.5 / RFC 3881
//! `AuditMessage`.
//!
//! The XML is read as a stream of events with quick-xml and only the elements that feed
//! the canonical event are kept. Both coded-value styles are read (`csd-code` +
//! `originalText`, and RFC 3881's `code` + `displayName`), `MediaType` is found directly
//! under `ActiveParticipant` or inside `MediaIdentifier`, and element names are matched
//! without namespace prefixes. Unknown elements and participant objects are data, not
//! errors. quick-xml expands no DTD entities (an unknown entity is an error), so entity
//! bombs cost nothing; nesting is capped; a message that ends before `</AuditMessage>`
//! is rejected as truncated (UDP and tail-of-file cuts), since the objects it lost may
//! be the patients.
//!
//! OpenEMR puts its own server (`SERVER_NAME|OpenEMR`) in the requestor participant and
//! the logged-in user in a participant object with role 6 (User); see
//! `EventAuditLogger::createRfc3881Msg`. For messages with that signature the user comes
//! from the User object and the host, which is the server's own address, is left out.

use super::dicom::{self, EventKind, MediaClass};
use super::syslog;
use super::time::parse_ts;
use super::{ident, prepare, quote_label, reason, Parser, Reject};
use crate::event::{Action, Event, Outcome};
use chrono_tz::Tz;
use quick_xml::escape::EscapeError;
use quick_xml::events::BytesStart;
use quick_xml::events::Event as Xml;
use quick_xml::Reader;

pub(crate) struct AtnaParser {
    source: String,
    tz: Tz,
}

impl AtnaParser {
    pub(crate) fn new(source: String, tz: Tz) -> AtnaParser {
        AtnaParser { source, tz }
    }
}

impl Parser for AtnaParser {
    fn parse(&mut self, line: &str) -> Result<Option<Event>, Reject> {
        let Some(line) = prepare(line)? else {
            return Ok(None);
        };
        let header = syslog::split(line.trim_end_matches(['\0', ' ', '\t']), self.tz)?;
        if header.msg.trim().is_empty() {
            return Err(Reject::new(
                reason::NOT_AUDIT_MESSAGE,
                "the syslog message is empty (was a multi-line message split into lines?)",
            ));
        }
        let msg = read_message(header.msg)?;
        let mut event = to_event(&msg, header.ts, self.tz)?;
        event.source.clone_from(&self.source);
        Ok(Some(event))
    }
}

/// A coded value in either style.
#[derive(Debug, Default, Clone)]
struct Coded {
    code: Option<String>,
    text: Option<String>,
}

impl Coded {
    fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }
    fn text(&self) -> Option<&str> {
        self.text.as_deref()
    }
}

#[derive(Debug, Default)]
struct Participant {
    user_id: Option<String>,
    requestor: bool,
    access_point: Option<String>,
    roles: Vec<String>,
    media: Option<Coded>,
}

#[derive(Debug, Default)]
struct Object {
    id: Option<String>,
    type_code: Option<String>,
    role: Option<String>,
}

#[derive(Debug, Default)]
struct Message {
    action_code: Option<String>,
    date_time: Option<String>,
    outcome: Option<String>,
    event_id: Option<Coded>,
    event_types: Vec<Coded>,
    participants: Vec<Participant>,
    objects: Vec<Object>,
}

/// Where in the document the reader is; only the elements that matter get their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ctx {
    Root,
    EventIdentification,
    Participant,
    MediaIdentifier,
    Object,
    Other,
}

/// Deeper than any real AuditMessage (which nests four levels); the cap stops a line of
/// a million `<a>` from growing the context stack without bound.
const MAX_DEPTH: usize = 64;

fn bad_xml(detail: impl Into<String>) -> Reject {
    Reject::new(reason::BAD_XML, detail)
}

fn read_message(xml: &str) -> Result<Message, Reject> {
    let mut reader = Reader::from_str(xml);
    reader.config_mut().check_end_names = true;
    let mut msg = Message::default();
    let mut stack: Vec<Ctx> = Vec::new();
    let mut root_seen = false;
    loop {
        let ev = reader.read_event().map_err(|e| {
            // quick-xml errors name positions and syntax, not content... except a
            // mismatched end tag, which names the tag: tag names are not patient data.
            bad_xml(format!(
                "XML error at byte {}: {e}",
                reader.error_position()
            ))
        })?;
        match ev {
            Xml::Start(ref e) | Xml::Empty(ref e) => {
                let is_empty = matches!(ev, Xml::Empty(_));
                let ctx = if !root_seen {
                    if e.local_name().as_ref() != b"AuditMessage" {
                        return Err(Reject::new(
                            reason::NOT_AUDIT_MESSAGE,
                            "the XML root element is not AuditMessage",
                        ));
                    }
                    root_seen = true;
                    Ctx::Root
                } else {
                    element(&mut msg, stack.last().copied().unwrap_or(Ctx::Other), e)?
                };
                if is_empty {
                    if ctx == Ctx::Root {
                        break;
                    }
                } else {
                    if stack.len() >= MAX_DEPTH {
                        return Err(bad_xml(
                            "elements nested deeper than an AuditMessage can be",
                        ));
                    }
                    stack.push(ctx);
                }
            }
            Xml::End(_) => {
                let closed = stack.pop();
                if closed == Some(Ctx::Root) {
                    break;
                }
            }
            Xml::Eof => {
                return Err(if root_seen {
                    bad_xml("the message ends before </AuditMessage> (truncated?)")
                } else {
                    Reject::new(
                        reason::NOT_AUDIT_MESSAGE,
                        "the syslog message holds no AuditMessage element",
                    )
                });
            }
            Xml::Text(ref t) if !root_seen && !t.iter().all(u8::is_ascii_whitespace) => {
                return Err(Reject::new(
                    reason::NOT_AUDIT_MESSAGE,
                    "the syslog message is text, not an XML AuditMessage",
                ));
            }
            _ => {}
        }
    }
    Ok(msg)
}

/// Records what an element inside the root contributes and says what context its
/// children are in.
fn element(msg: &mut Message, parent: Ctx, e: &BytesStart) -> Result<Ctx, Reject> {
    let name = e.local_name();
    let ctx = match (parent, name.as_ref()) {
        (Ctx::Root, b"EventIdentification") => {
            for_attrs(e, |k, v| match k {
                b"EventActionCode" => msg.action_code = Some(v),
                b"EventDateTime" => msg.date_time = Some(v),
                b"EventOutcomeIndicator" => msg.outcome = Some(v),
                _ => {}
            })?;
            Ctx::EventIdentification
        }
        (Ctx::EventIdentification, b"EventID") => {
            msg.event_id = Some(coded(e)?);
            Ctx::Other
        }
        (Ctx::EventIdentification, b"EventTypeCode") => {
            msg.event_types.push(coded(e)?);
            Ctx::Other
        }
        (Ctx::Root, b"ActiveParticipant") => {
            let mut p = Participant::default();
            for_attrs(e, |k, v| match k {
                b"UserID" => p.user_id = Some(v),
                b"UserIsRequestor" => {
                    let v = v.trim();
                    p.requestor = v.eq_ignore_ascii_case("true") || v == "1";
                }
                b"NetworkAccessPointID" => p.access_point = Some(v),
                _ => {}
            })?;
            msg.participants.push(p);
            Ctx::Participant
        }
        (Ctx::Participant, b"RoleIDCode") => {
            let c = coded(e)?;
            if let (Some(p), Some(code)) = (msg.participants.last_mut(), c.code) {
                p.roles.push(code);
            }
            Ctx::Other
        }
        (Ctx::Participant, b"MediaIdentifier") => Ctx::MediaIdentifier,
        (Ctx::Participant | Ctx::MediaIdentifier, b"MediaType") => {
            let c = coded(e)?;
            if let Some(p) = msg.participants.last_mut() {
                p.media = Some(c);
            }
            Ctx::Other
        }
        (Ctx::Root, b"ParticipantObjectIdentification") => {
            let mut o = Object::default();
            for_attrs(e, |k, v| match k {
                b"ParticipantObjectID" => o.id = Some(v),
                b"ParticipantObjectTypeCode" => o.type_code = Some(v),
                b"ParticipantObjectTypeCodeRole" => o.role = Some(v),
                _ => {}
            })?;
            msg.objects.push(o);
            Ctx::Object
        }
        _ => Ctx::Other,
    };
    Ok(ctx)
}

/// Calls `f` with each attribute's local name and unescaped value. Duplicate attributes
/// are not an error (all are passed on; later ones win).
///
/// A bare `&` is kept as written: senders routinely put HL7 CX ids such as
/// `MRN^^^&1.2.3&ISO` into `ParticipantObjectID` without escaping them. An undefined
/// entity is still an error, and its name stays out of the detail since it comes from
/// an attribute value, which may be a patient id.
fn for_attrs(e: &BytesStart, mut f: impl FnMut(&[u8], String)) -> Result<(), Reject> {
    for attr in e.attributes().with_checks(false) {
        let attr = attr.map_err(|err| bad_xml(format!("malformed attribute: {err}")))?;
        let value = match attr.unescape_value() {
            Ok(v) => v.into_owned(),
            Err(quick_xml::Error::Escape(EscapeError::UnterminatedEntity(_))) => {
                String::from_utf8_lossy(&attr.value).into_owned()
            }
            Err(_) => {
                return Err(bad_xml(
                    "an attribute value uses an undefined entity or a bad character reference",
                ))
            }
        };
        f(attr.key.local_name().as_ref(), value);
    }
    Ok(())
}

fn coded(e: &BytesStart) -> Result<Coded, Reject> {
    let mut c = Coded::default();
    let mut display = None;
    for_attrs(e, |k, v| match k {
        b"csd-code" => c.code = Some(v),
        b"code" if c.code.is_none() => c.code = Some(v),
        b"originalText" => c.text = Some(v),
        b"displayName" => display = Some(v),
        _ => {}
    })?;
    if c.text.is_none() {
        c.text = display;
    }
    Ok(c)
}

fn to_event(
    msg: &Message,
    header_ts: Option<chrono::DateTime<chrono::Utc>>,
    tz: Tz,
) -> Result<Event, Reject> {
    let ts = match msg.date_time.as_deref().and_then(|s| parse_ts(s, tz)) {
        Some(ts) => ts,
        None => header_ts.ok_or_else(|| match msg.date_time {
            Some(_) => Reject::new(
                reason::BAD_TIMESTAMP,
                "EventDateTime is not a date-time and the syslog header has none",
            ),
            None => Reject::new(
                reason::MISSING_TIMESTAMP,
                "no EventDateTime and no syslog timestamp",
            ),
        })?,
    };

    let requestor = msg.participants.iter().find(|p| p.requestor);
    let openemr = requestor
        .and_then(|p| p.user_id.as_deref())
        .is_some_and(|u| u.trim().to_ascii_lowercase().ends_with("|openemr"));
    let (user, host) = if openemr {
        let user = msg
            .objects
            .iter()
            .find(|o| code_is(&o.type_code, "1") && code_is(&o.role, "6"))
            .and_then(|o| o.id.as_deref())
            .and_then(ident);
        (user, None)
    } else {
        (
            requestor.and_then(|p| p.user_id.as_deref()).and_then(ident),
            requestor
                .and_then(|p| p.access_point.as_deref())
                .and_then(ident),
        )
    };
    let user = user.ok_or_else(|| {
        Reject::new(
            reason::MISSING_USER,
            if openemr {
                "OpenEMR message without a User (role 6) participant object id"
            } else if requestor.is_some() {
                "the requestor ActiveParticipant has no UserID"
            } else {
                "no ActiveParticipant has UserIsRequestor=\"true\""
            },
        )
    })?;

    let media = msg
        .participants
        .iter()
        .filter_map(|p| p.media.as_ref())
        .find_map(|m| dicom::media_class(m.code(), m.text()));
    let action = action(msg, media)?;

    let mut patients: Vec<String> = Vec::new();
    for o in &msg.objects {
        let typed = code_is(&o.role, "1") && (o.type_code.is_none() || code_is(&o.type_code, "1"));
        if !typed {
            continue;
        }
        // HL7 CX: the id is the first component.
        let id =
            o.id.as_deref()
                .and_then(|id| ident(id.split('^').next().unwrap_or("")));
        if let Some(id) = id {
            if !patients.contains(&id) {
                patients.push(id);
            }
        }
    }

    let mut event = Event::new(ts, user, action);
    event.records = patients.len().max(1) as u64;
    event.patient = patients.into_iter().next();
    event.host = host;
    event.outcome = match msg.outcome.as_deref().map(str::trim) {
        None | Some("0") | Some("") => Outcome::Success,
        Some(_) => Outcome::Failure,
    };
    if let Some(MediaClass::Media(m)) = media {
        event.media = Some(m);
    }
    Ok(event)
}

fn code_is(v: &Option<String>, want: &str) -> bool {
    v.as_deref().map(str::trim) == Some(want)
}

fn action(msg: &Message, media: Option<MediaClass>) -> Result<Action, Reject> {
    let Some(id) = &msg.event_id else {
        return Err(Reject::new(
            reason::MISSING_ACTION,
            "EventIdentification has no EventID",
        ));
    };
    let act = msg.action_code.as_deref().unwrap_or("").trim();
    let types = || msg.event_types.iter();
    let action = match dicom::event_kind(id.code(), id.text()) {
        // OpenEMR reports opening a chart as Patient Record with action E, so E and a
        // missing action code are a view too.
        EventKind::PatientRecord
        | EventKind::InstancesAccessed
        | EventKind::InstancesTransferred
        | EventKind::ClinicalRecord => dicom::crud(act).unwrap_or(Action::View),
        EventKind::StudyDeleted => Action::Delete,
        EventKind::Ignored(kind) => {
            return Err(Reject::ignored(
                kind,
                "not a person's access to patient data",
            ))
        }
        EventKind::Export if media == Some(MediaClass::Paper) => Action::Print,
        EventKind::Export => Action::Export,
        EventKind::Import => Action::Create,
        EventKind::Query => Action::Search,
        EventKind::Login => Action::Login,
        EventKind::Logout => Action::Logout,
        EventKind::UserAuthentication => {
            if types().any(|t| dicom::is_logout(t.code(), t.text())) {
                Action::Logout
            } else {
                Action::Login
            }
        }
        EventKind::SecurityAlert
            if types().any(|t| dicom::is_emergency_override(t.code(), t.text())) =>
        {
            Action::BreakGlass
        }
        EventKind::SecurityAlert => {
            return Err(Reject::ignored(
                crate::parse::ignored::SECURITY_ALERT,
                "a security alert other than an emergency override",
            ))
        }
        EventKind::Other => {
            let label = id
                .code()
                .filter(|c| c.trim().bytes().all(|b| b.is_ascii_digit()));
            let label = label.or(id.text()).or(id.code()).unwrap_or("");
            return Err(Reject::new(
                reason::UNKNOWN_ACTION,
                format!(
                    "EventID {} is not a staff action phiwatch maps",
                    quote_label(label)
                ),
            ));
        }
    };
    Ok(action)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Option<Event>, Reject> {
        AtnaParser::new("atna".into(), Tz::UTC).parse(line)
    }

    fn xml(event_id: &str, action: &str, body: &str) -> String {
        format!(
            r#"<AuditMessage><EventIdentification EventActionCode="{action}" EventDateTime="2024-05-14T09:49:00.123-04:00" EventOutcomeIndicator="0">{event_id}</EventIdentification><ActiveParticipant UserID="jsmith" UserIsRequestor="TRUE" NetworkAccessPointID="10.20.4.57"/>{body}</AuditMessage>"#
        )
    }

    const READ: &str =
        r#"<EventID csd-code="110110" codeSystemName="DCM" originalText="Patient Record"/>"#;
    const PATIENT: &str = r#"<ParticipantObjectIdentification ParticipantObjectID="MRN1^^^&amp;1.2&amp;ISO" ParticipantObjectTypeCode="1" ParticipantObjectTypeCodeRole="1"/>"#;

    #[test]
    fn bare_read() {
        let e = parse(&xml(READ, "R", PATIENT)).unwrap().unwrap();
        assert_eq!(e.user, "jsmith");
        assert_eq!(e.action, Action::View);
        assert_eq!(e.patient.as_deref(), Some("MRN1"));
        assert_eq!(e.host.as_deref(), Some("10.20.4.57"));
        assert_eq!(crate::event::fmt_ts(&e.ts), "2024-05-14T13:49:00.123Z");
        assert_eq!(e.source, "atna");
    }

    #[test]
    fn actions() {
        let cases = [
            (READ, "C", Action::Create),
            (READ, "U", Action::Update),
            (READ, "D", Action::Delete),
            (READ, "E", Action::View),
            (
                r#"<EventID code="110106" displayName="Export"/>"#,
                "R",
                Action::Export,
            ),
            (
                r#"<EventID code="110112" displayName="Query"/>"#,
                "E",
                Action::Search,
            ),
            (
                r#"<EventID code="110114"/><EventTypeCode code="110122"/>"#,
                "E",
                Action::Login,
            ),
            (
                r#"<EventID code="110114"/><EventTypeCode csd-code="110123"/>"#,
                "E",
                Action::Logout,
            ),
            (
                r#"<EventID code="eventIDcode" displayName="Login"/>"#,
                "E",
                Action::Login,
            ),
            (
                r#"<EventID csd-code="110113"/><EventTypeCode csd-code="110127"/>"#,
                "E",
                Action::BreakGlass,
            ),
        ];
        for (id, act, want) in cases {
            let e = parse(&xml(id, act, "")).unwrap().unwrap();
            assert_eq!(e.action, want, "{id} {act}");
        }
        let r = parse(&xml(r#"<EventID csd-code="110100"/>"#, "E", "")).unwrap_err();
        assert!(r.ignored, "application activity is ignored, not broken");
        assert_eq!(r.reason, crate::parse::ignored::APPLICATION_ACTIVITY);
        let r = parse(&xml(r#"<EventID csd-code="110199"/>"#, "E", "")).unwrap_err();
        assert_eq!(r.reason, reason::UNKNOWN_ACTION);
        assert!(!r.ignored);
        assert!(r.detail.contains("110199"), "{}", r.detail);
    }

    #[test]
    fn xml_rejections() {
        let cases = [
            ("<AuditMessage><EventIdentification>", reason::BAD_XML),
            ("<AuditMessage><a></b></AuditMessage>", reason::BAD_XML),
            ("<Other/>", reason::NOT_AUDIT_MESSAGE),
            ("<85>1 - h a p m - hello world", reason::NOT_AUDIT_MESSAGE),
            ("<85>1 - h a p m -", reason::NOT_AUDIT_MESSAGE),
            (
                r#"<!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]><AuditMessage><EventIdentification EventDateTime="&b;"/></AuditMessage>"#,
                reason::BAD_XML,
            ),
            (
                r#"<AuditMessage><EventIdentification EventDateTime="2024-05-14T09:49:00Z"/><ActiveParticipant UserID="u" UserIsRequestor="true"/></AuditMessage>"#,
                reason::MISSING_ACTION,
            ),
            (
                r#"<AuditMessage><EventIdentification><EventID code="110110"/></EventIdentification><ActiveParticipant UserID="u" UserIsRequestor="true"/></AuditMessage>"#,
                reason::MISSING_TIMESTAMP,
            ),
            (
                r#"<AuditMessage><EventIdentification EventDateTime="2024-05-14T09:49:00Z"><EventID code="110110"/></EventIdentification><ActiveParticipant UserID="u" UserIsRequestor="false"/></AuditMessage>"#,
                reason::MISSING_USER,
            ),
        ];
        for (line, want) in cases {
            assert_eq!(parse(line).unwrap_err().reason, want, "{line}");
        }
    }

    #[test]
    fn bare_ampersand_in_a_cx_id_is_kept() {
        let obj = r#"<ParticipantObjectIdentification ParticipantObjectID="MRN7^^^&1.2.3&ISO" ParticipantObjectTypeCode="1" ParticipantObjectTypeCodeRole="1"/>"#;
        let e = parse(&xml(READ, "R", obj)).unwrap().unwrap();
        assert_eq!(e.patient.as_deref(), Some("MRN7"));
        let undefined = obj.replace("&1.2.3&ISO", "&secret;");
        let r = parse(&xml(READ, "R", &undefined)).unwrap_err();
        assert_eq!(r.reason, reason::BAD_XML);
        assert!(!r.detail.contains("secret"), "{}", r.detail);
    }

    #[test]
    fn deep_nesting_is_capped() {
        let line = format!("<AuditMessage>{}", "<a>".repeat(100_000));
        assert_eq!(parse(&line).unwrap_err().reason, reason::BAD_XML);
    }
}
