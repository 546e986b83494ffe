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
//!
//! Which participant is the user: the requestor, and when several are (IHE XDS and PDQ
//! messages list the requesting system as Source and then the Human Requestor), the
//! first one without a system role (110150/110152/110153). Which objects are patients:
//! role 1 on a person, or a person object without a role whose
//! `ParticipantObjectIDTypeCode` is an RFC 3881 patient id (1 MRN, 2 Patient Number).
//! Every DICOM event id 110100-110114 is mapped or ignored, and the event type codes
//! 110120-110142 decide login/logout/break-glass or an ignored kind, also under an event
//! id phiwatch does not know (see [`dicom::type_kind`]).

use super::dicom::{self, EventKind, MediaClass, TypeKind};
use super::syslog;
use super::time::parse_ts;
use super::{ident, prepare, quote_label, reason, Parser, Reject};
use crate::event::{Action, Event, Outcome};
use chrono_tz::Tz;
use quick_xml::escape::EscapeError;
use quick_xml::events::BytesStart;
use quick_xml::events::Event as Xml;
use quick_xml::Reader;
use std::borrow::Cow;

mod scan;

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
        let mut event = to_event(&msg, &header, self.tz)?;
        event.source.clone_from(&self.source);
        Ok(Some(event))
    }
}

/// A coded value in either style. Like every value of a [`Message`], borrowed from the
/// line unless it had entities in it.
#[derive(Debug, Default, Clone, PartialEq)]
struct Coded<'a> {
    code: Option<Cow<'a, str>>,
    text: Option<Cow<'a, str>>,
    /// `codeSystemName` (both styles use it; the RFC 3881 `codeSystem` OID is not read).
    system: Option<Cow<'a, str>>,
}

impl Coded<'_> {
    fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }
    fn text(&self) -> Option<&str> {
        self.text.as_deref()
    }
    fn system(&self) -> Option<&str> {
        self.system.as_deref()
    }
}

#[derive(Debug, Default, PartialEq)]
struct Participant<'a> {
    user_id: Option<Cow<'a, str>>,
    requestor: bool,
    access_point: Option<Cow<'a, str>>,
    /// A `RoleIDCode` names a system role (see [`is_system_role`]): all the roles are
    /// read for, and a list of them was an allocation per participant.
    system_role: bool,
    media: Option<Coded<'a>>,
}

#[derive(Debug, Default, PartialEq)]
struct Object<'a> {
    id: Option<Cow<'a, str>>,
    type_code: Option<Cow<'a, str>>,
    role: Option<Cow<'a, str>>,
    /// `ParticipantObjectIDTypeCode`, in either coded-value style.
    id_type: Option<Coded<'a>>,
}

/// What phiwatch reads of an `AuditMessage`, borrowing from the line.
#[derive(Debug, Default, PartialEq)]
struct Message<'a> {
    action_code: Option<Cow<'a, str>>,
    date_time: Option<Cow<'a, str>>,
    outcome: Option<Cow<'a, str>>,
    event_id: Option<Coded<'a>>,
    event_types: Vec<Coded<'a>>,
    /// `EventIdentification/PurposeOfUse` (IHE XUA), in order.
    purposes: Vec<Coded<'a>>,
    participants: Vec<Participant<'a>>,
    objects: Vec<Object<'a>>,
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

/// Reads the message with [`scan::read_plain`] when it can, else with quick-xml.
///
/// Nearly every message a sender writes is plain XML (a declaration, elements, quoted
/// attributes): `read_plain` reads those in one pass over the bytes, where quick-xml's
/// event reader and attribute iterator were most of the 41,000 instructions an ATNA line
/// cost. Anything else, and every message that would be rejected, is read again by
/// [`read_with_quick_xml`], so its outcome and its error are quick-xml's.
fn read_message(xml: &str) -> Result<Message<'_>, Reject> {
    match scan::read_plain(xml) {
        Some(msg) => Ok(msg),
        None => read_with_quick_xml(xml),
    }
}

fn read_with_quick_xml(xml: &str) -> Result<Message<'_>, Reject> {
    let mut reader = Reader::from_str(xml);
    reader.config_mut().check_end_names = true;
    let mut msg = Message::default();
    // On the stack, not in a Vec: one allocation fewer per line.
    let mut stack = [Ctx::Other; MAX_DEPTH];
    let mut depth = 0usize;
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
                    element(
                        &mut msg,
                        depth.checked_sub(1).map_or(Ctx::Other, |top| stack[top]),
                        e.local_name().as_ref(),
                        QuickAttrs { xml, e },
                    )?
                };
                if is_empty {
                    if ctx == Ctx::Root {
                        break;
                    }
                } else {
                    if depth >= MAX_DEPTH {
                        return Err(bad_xml(
                            "elements nested deeper than an AuditMessage can be",
                        ));
                    }
                    stack[depth] = ctx;
                    depth += 1;
                }
            }
            Xml::End(_) => {
                let closed = depth.checked_sub(1).map(|top| stack[top]);
                depth = depth.saturating_sub(1);
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

/// The attributes of a start tag, as [`element`] reads them: each one's local name and
/// unescaped value, in document order. Read by quick-xml ([`QuickAttrs`]) or by the plain
/// reader ([`scan::PlainAttrs`]), which must agree on every tag the plain reader accepts.
trait Attrs<'a> {
    fn each(&self, f: impl FnMut(&[u8], Cow<'a, str>)) -> Result<(), Reject>;
}

/// A quick-xml start tag of the message `xml`.
struct QuickAttrs<'a, 'e> {
    xml: &'a str,
    e: &'e BytesStart<'e>,
}

impl<'a> Attrs<'a> for QuickAttrs<'a, '_> {
    fn each(&self, f: impl FnMut(&[u8], Cow<'a, str>)) -> Result<(), Reject> {
        for_attrs(self.xml, self.e, f)
    }
}

/// Records what an element inside the root, of local name `name`, contributes and says
/// what context its children are in.
fn element<'a>(
    msg: &mut Message<'a>,
    parent: Ctx,
    name: &[u8],
    attrs: impl Attrs<'a>,
) -> Result<Ctx, Reject> {
    let ctx = match (parent, name) {
        (Ctx::Root, b"EventIdentification") => {
            attrs.each(|k, v| match k {
                b"EventActionCode" => msg.action_code = Some(v),
                b"EventDateTime" => msg.date_time = Some(v),
                b"EventOutcomeIndicator" => msg.outcome = Some(v),
                _ => {}
            })?;
            Ctx::EventIdentification
        }
        (Ctx::EventIdentification, b"EventID") => {
            msg.event_id = Some(coded(&attrs)?);
            Ctx::Other
        }
        (Ctx::EventIdentification, b"EventTypeCode") => {
            msg.event_types.push(coded(&attrs)?);
            Ctx::Other
        }
        (Ctx::EventIdentification, b"PurposeOfUse") => {
            msg.purposes.push(coded(&attrs)?);
            Ctx::Other
        }
        (Ctx::Root, b"ActiveParticipant") => {
            let mut p = Participant::default();
            attrs.each(|k, v| match k {
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
            let c = coded(&attrs)?;
            if let (Some(p), Some(code)) = (msg.participants.last_mut(), c.code) {
                p.system_role |= is_system_role(&code);
            }
            Ctx::Other
        }
        (Ctx::Participant, b"MediaIdentifier") => Ctx::MediaIdentifier,
        (Ctx::Participant | Ctx::MediaIdentifier, b"MediaType") => {
            let c = coded(&attrs)?;
            if let Some(p) = msg.participants.last_mut() {
                p.media = Some(c);
            }
            Ctx::Other
        }
        (Ctx::Root, b"ParticipantObjectIdentification") => {
            let mut o = Object::default();
            attrs.each(|k, v| match k {
                b"ParticipantObjectID" => o.id = Some(v),
                b"ParticipantObjectTypeCode" => o.type_code = Some(v),
                b"ParticipantObjectTypeCodeRole" => o.role = Some(v),
                _ => {}
            })?;
            msg.objects.push(o);
            Ctx::Object
        }
        (Ctx::Object, b"ParticipantObjectIDTypeCode") => {
            let c = coded(&attrs)?;
            if let Some(o) = msg.objects.last_mut() {
                o.id_type = Some(c);
            }
            Ctx::Other
        }
        _ => Ctx::Other,
    };
    Ok(ctx)
}

/// Calls `f` with each attribute's local name and unescaped value. Duplicate attributes
/// are not an error (all are passed on; later ones win). A value without entities is
/// borrowed from `xml`, the message the reader reads (see [`within`]): only the few
/// values phiwatch keeps would otherwise each cost an allocation, and ATNA messages carry
/// dozens of attributes. Being a piece of a `&str`, a value is UTF-8 already, so only its
/// entities are read (quick-xml's `unescape_value` would check its bytes again first).
///
/// A bare `&` is kept as written: senders routinely put HL7 CX ids such as
/// `MRN^^^&1.2.3&ISO` into `ParticipantObjectID` without escaping them. An undefined
/// entity is still an error, and its name stays out of the detail since it comes from
/// an attribute value, which may be a patient id.
fn for_attrs<'a>(
    xml: &'a str,
    e: &BytesStart,
    mut f: impl FnMut(&[u8], Cow<'a, str>),
) -> Result<(), Reject> {
    for attr in e.attributes().with_checks(false) {
        let attr = attr.map_err(|err| bad_xml(format!("malformed attribute: {err}")))?;
        let value = match within(xml, &attr.value) {
            Some(raw) => unescape_value(raw)?,
            None => match attr.unescape_value() {
                Ok(v) => Cow::Owned(v.into_owned()),
                Err(err) => escape_error(err, &attr.value)?,
            },
        };
        f(attr.key.local_name().as_ref(), value);
    }
    Ok(())
}

/// An attribute value as written between its quotes, with its entities read (see
/// [`for_attrs`] for what a bare `&` and an undefined entity do).
fn unescape_value(raw: &str) -> Result<Cow<'_, str>, Reject> {
    match quick_xml::escape::unescape(raw) {
        Ok(Cow::Borrowed(_)) => Ok(Cow::Borrowed(raw)),
        Ok(Cow::Owned(v)) => Ok(Cow::Owned(v)),
        Err(err) => escape_error(quick_xml::Error::from(err), raw.as_bytes()),
    }
}

/// What a value whose entities could not be read (`err`) becomes: itself, for a bare `&`;
/// else the line is rejected.
fn escape_error<'a>(err: quick_xml::Error, raw: &[u8]) -> Result<Cow<'a, str>, Reject> {
    match err {
        quick_xml::Error::Escape(EscapeError::UnterminatedEntity(_)) => {
            Ok(Cow::Owned(String::from_utf8_lossy(raw).into_owned()))
        }
        _ => Err(bad_xml(
            "an attribute value uses an undefined entity or a bad character reference",
        )),
    }
}

/// `part`, bytes the XML reader handed out, as the piece of `xml` they are: the reader's
/// attributes borrow from the event they belong to, not from the text the event was read
/// from, although, reading from a `&str`, they point into it. `None` if `part` is not a
/// piece of `xml` on character boundaries (it always is: a value sits between quotes).
fn within<'a>(xml: &'a str, part: &[u8]) -> Option<&'a str> {
    let start = (part.as_ptr() as usize).wrapping_sub(xml.as_ptr() as usize);
    let end = start.checked_add(part.len())?;
    xml.get(start..end).filter(|s| s.as_ptr() == part.as_ptr())
}

fn coded<'a>(attrs: &impl Attrs<'a>) -> Result<Coded<'a>, Reject> {
    let mut c = Coded::default();
    let mut display = None;
    attrs.each(|k, v| match k {
        b"csd-code" => c.code = Some(v),
        b"code" if c.code.is_none() => c.code = Some(v),
        b"originalText" => c.text = Some(v),
        b"codeSystemName" => c.system = Some(v),
        b"displayName" => display = Some(v),
        _ => {}
    })?;
    if c.text.is_none() {
        c.text = display;
    }
    Ok(c)
}

fn to_event(msg: &Message, header: &syslog::Header, tz: Tz) -> Result<Event, Reject> {
    let ts = match msg.date_time.as_deref().and_then(|s| parse_ts(s, tz)) {
        Some(ts) => ts,
        None => header.ts(tz).ok_or_else(|| match msg.date_time {
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

    // The action first: an ignored kind of event (an application start has no person
    // as requestor) is counted as ignored, not as a message without a user.
    let media = msg
        .participants
        .iter()
        .filter_map(|p| p.media.as_ref())
        .find_map(|m| dicom::media_class(m.code(), m.text()));
    let action = action(msg, media)?;

    // IHE transactions (XDS ITI-18/41/43, PDQ ITI-47) mark two participants as
    // requestor: the system (role 110153 Source, with its endpoint as UserID) and the
    // Human Requestor (the XUA user, with no DCM role). The person is the user.
    let requestors = || msg.participants.iter().filter(|p| p.requestor);
    let requestor = requestors()
        .find(|p| !p.system_role)
        .or_else(|| requestors().next());
    let openemr = requestor
        .and_then(|p| p.user_id.as_deref())
        .is_some_and(|u| {
            let u = u.trim().as_bytes();
            u.len() >= 8 && u[u.len() - 8..].eq_ignore_ascii_case(b"|openemr")
        });
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

    // Several patients in one message (an export or a transfer of several patients'
    // studies, a merge): the first patient object in document order is `patient`, and
    // the number of distinct patients goes into `records`, the canonical field for how
    // many patients' records one event touched. The other ids are not kept: the
    // canonical event has no field for them.
    let mut patients: Vec<String> = Vec::new();
    for o in msg.objects.iter().filter(|o| is_patient(o)) {
        // HL7 CX: the id is the first component.
        let id =
            o.id.as_deref()
                .and_then(|id| ident(fhir_token_value(id.split('^').next().unwrap_or(""))))
                .filter(|id| !is_placeholder(id));
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
    event.purpose = purpose(msg);
    event.outcome = match msg.outcome.as_deref().map(str::trim) {
        None | Some("0") | Some("") => Outcome::Success,
        Some(_) => Outcome::Failure,
    };
    if let Some(MediaClass::Media(m)) = media {
        event.media = Some(m);
    }
    Ok(event)
}

/// Why the access happened: the `PurposeOfUse` codes IHE XUA adds to the event (Swiss
/// EPR: `NORM`, `EMER`), a break-the-glass code (`BTG`, `ETREAT`) before the others, as
/// for FHIR; else the first.
fn purpose(msg: &Message) -> Option<String> {
    let codes: Vec<&str> = msg
        .purposes
        .iter()
        .filter_map(|c| c.code().map(str::trim))
        .filter(|c| !c.is_empty())
        .collect();
    codes
        .iter()
        .find(|c| c.eq_ignore_ascii_case("BTG") || c.eq_ignore_ascii_case("ETREAT"))
        .or(codes.first())
        .map(|c| c.to_string())
}

/// The value of a FHIR token `system|value`, which IHE MHD (ITI-67) audit records of
/// some senders carry instead of HL7 CX (`urn:oid:1.1.1.99.1|215503a0-…`, in eHealth
/// Suisse's published syslog example); anything else as it is. Only a URI before the bar
/// counts, so an id that merely contains a bar stays whole.
fn fhir_token_value(id: &str) -> &str {
    match id.split_once('|') {
        Some((system, value))
            if ["urn:", "http://", "https://"]
                .iter()
                .any(|p| system.trim_start().starts_with(p))
                && !value.trim().is_empty() =>
        {
            value
        }
        _ => id,
    }
}

/// A patient id that says there is none: dcm4chee-arc writes `<none>` as the
/// `ParticipantObjectID` of a patient it could not identify (its conformance statement:
/// "Patient ID or <none> if unknown"). Kept as an id, every such message would become
/// one made-up patient.
fn is_placeholder(id: &str) -> bool {
    id.eq_ignore_ascii_case("<none>")
}

/// A patient participant object: role 1 (Patient) on a person (type 1) or an object
/// without a type; or, when the role is left out, a person or untyped object whose id
/// type is an RFC 3881 patient id (1 Medical Record Number, 2 Patient Number), read from
/// `csd-code` or the legacy `code`, or from the code meaning.
fn is_patient(o: &Object) -> bool {
    let person = o.type_code.is_none() || code_is(&o.type_code, "1");
    if !person {
        return false;
    }
    if o.role.as_deref().is_some_and(|r| !r.trim().is_empty()) {
        return code_is(&o.role, "1");
    }
    let Some(t) = &o.id_type else {
        return false;
    };
    let rfc3881 = t.system().is_none_or(|s| {
        let s = s.trim();
        s.eq_ignore_ascii_case("RFC-3881") || s.eq_ignore_ascii_case("RFC3881")
    });
    let by_code = rfc3881 && matches!(t.code().map(str::trim), Some("1" | "2"));
    let by_text = t.text().map(str::trim).is_some_and(|x| {
        x.eq_ignore_ascii_case("Patient Number") || x.eq_ignore_ascii_case("Medical Record Number")
    });
    by_code || by_text
}

/// DCM roles of systems rather than people: 110150 Application, 110152 Destination,
/// 110153 Source. (110151 Application Launcher is the person who started it.)
fn is_system_role(code: &str) -> bool {
    matches!(code.trim(), "110150" | "110152" | "110153")
}

fn code_is(v: &Option<Cow<str>>, want: &str) -> bool {
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
    // The event type codes 110120-110142 that the message carries, in order.
    let types = || {
        msg.event_types
            .iter()
            .filter_map(|t| dicom::type_kind(t.code(), t.text()))
    };
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
            if types().any(|t| t == TypeKind::Logout) {
                Action::Logout
            } else {
                Action::Login
            }
        }
        EventKind::SecurityAlert if types().any(|t| t == TypeKind::EmergencyOverride) => {
            Action::BreakGlass
        }
        EventKind::SecurityAlert => {
            return Err(Reject::ignored(
                crate::parse::ignored::SECURITY_ALERT,
                "a security alert other than an emergency override",
            ))
        }
        // An event id phiwatch does not know, qualified by a DCM event type (or an event
        // type written as the event id, which some senders do): the type decides.
        // Break-glass wins, then login/logout; the types of application, network and
        // security events are ignored, not unknown.
        EventKind::Other => {
            let mut kinds = dicom::type_kind(id.code(), id.text())
                .into_iter()
                .chain(types());
            let has = |want: TypeKind| kinds.clone().any(|k| k == want);
            if has(TypeKind::EmergencyOverride) {
                return Ok(Action::BreakGlass);
            } else if has(TypeKind::Logout) {
                return Ok(Action::Logout);
            } else if has(TypeKind::Login) {
                return Ok(Action::Login);
            } else if let Some(TypeKind::Ignored(kind)) = kinds.next() {
                return Err(Reject::ignored(
                    kind,
                    "the event type is not a person's access to patient data",
                ));
            }
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

    /// The outcome of a message with this EventID code, action code and type codes:
    /// the action, or the ignored label, or the rejection reason.
    fn outcome(id: &str, act: &str, types: &[&str]) -> String {
        let types: String = types
            .iter()
            .map(|t| format!(r#"<EventTypeCode csd-code="{t}" codeSystemName="DCM"/>"#))
            .collect();
        let ev = format!(r#"<EventID csd-code="{id}" codeSystemName="DCM"/>{types}"#);
        match parse(&xml(&ev, act, PATIENT)) {
            Ok(Some(e)) => e.action.as_str().to_string(),
            Ok(None) => "skipped".into(),
            Err(r) if r.ignored => format!("ignored:{}", r.reason),
            Err(r) => format!("rejected:{}", r.reason),
        }
    }

    #[test]
    fn every_dicom_event_id() {
        let cases = [
            ("110100", "E", "ignored:application_activity"),
            ("110101", "R", "ignored:audit_log_used"),
            ("110102", "R", "view"),
            ("110103", "R", "view"),
            ("110104", "C", "create"),
            ("110105", "D", "delete"),
            ("110106", "R", "export"),
            ("110107", "C", "create"),
            ("110108", "E", "ignored:network_entry"),
            ("110109", "U", "update"),
            ("110110", "R", "view"),
            ("110111", "R", "view"),
            ("110112", "E", "search"),
            ("110113", "E", "ignored:security_alert"),
            ("110114", "E", "login"),
        ];
        for (id, act, want) in cases {
            assert_eq!(outcome(id, act, &[]), want, "{id}");
        }
    }

    #[test]
    fn every_event_type_code() {
        // Each type with its own event id (PS3.15 A.5.3), and the same type under an
        // event id phiwatch does not know: never unknown_action.
        let cases = [
            ("110100", "110120", "ignored:application_activity"),
            ("110100", "110121", "ignored:application_activity"),
            ("110114", "110122", "login"),
            ("110114", "110123", "logout"),
            ("110108", "110124", "ignored:network_entry"),
            ("110108", "110125", "ignored:network_entry"),
            ("110113", "110126", "ignored:security_alert"),
            ("110113", "110127", "break_glass"),
            ("110113", "110128", "ignored:security_alert"),
            ("110113", "110129", "ignored:security_alert"),
        ];
        for (id, ty, want) in cases {
            assert_eq!(outcome(id, "E", &[ty]), want, "{id} {ty}");
            assert_eq!(outcome("999999", "E", &[ty]), want, "unknown id, {ty}");
            // Some senders write the type code as the event id.
            assert_eq!(outcome(ty, "E", &[]), want, "{ty} as EventID");
        }
        // 110113 + 110127 is break-glass whatever else is listed and in which order.
        assert_eq!(outcome("110113", "E", &["110129", "110127"]), "break_glass");
        assert_eq!(
            outcome("110113", "E", &["110138"]),
            "ignored:security_alert"
        );
        assert_eq!(outcome("110114", "E", &["110123", "ITI-40"]), "logout");
        // A non-DCM type code does not rescue an unknown event id.
        assert_eq!(
            outcome("999999", "E", &["ITI-47"]),
            "rejected:unknown_action"
        );
    }

    #[test]
    fn both_coded_value_spellings() {
        // DICOM 2008+: csd-code / codeSystemName / originalText.
        let dicom = r#"<EventIdentification EventActionCode="E" EventDateTime="2024-05-14T09:49:00Z"><EventID csd-code="110113" codeSystemName="DCM" originalText="Security Alert"/><EventTypeCode csd-code="110127" codeSystemName="DCM" originalText="Emergency Override Started"/></EventIdentification><ActiveParticipant UserID="dr.k" UserIsRequestor="true"><RoleIDCode csd-code="110153" codeSystemName="DCM" originalText="Source Role ID"/></ActiveParticipant><ParticipantObjectIdentification ParticipantObjectID="P9" ParticipantObjectTypeCode="1"><ParticipantObjectIDTypeCode csd-code="2" codeSystemName="RFC-3881" originalText="Patient Number"/></ParticipantObjectIdentification>"#;
        // RFC 3881: code / codeSystem / codeSystemName / displayName.
        let legacy = r#"<EventIdentification EventActionCode="E" EventDateTime="2024-05-14T09:49:00Z"><EventID code="110113" codeSystem="1.2.840.10008.2.16.4" codeSystemName="DCM" displayName="Security Alert"/><EventTypeCode code="110127" codeSystem="1.2.840.10008.2.16.4" codeSystemName="DCM" displayName="Emergency Override Started"/></EventIdentification><ActiveParticipant UserID="dr.k" UserIsRequestor="true"><RoleIDCode code="110153" codeSystemName="DCM" displayName="Source Role ID"/></ActiveParticipant><ParticipantObjectIdentification ParticipantObjectID="P9" ParticipantObjectTypeCode="1"><ParticipantObjectIDTypeCode code="2" codeSystemName="RFC-3881" displayName="Patient Number"/></ParticipantObjectIdentification>"#;
        // Texts only (placeholder codes), in each spelling.
        let texts = legacy
            .replace(r#"code="110113""#, r#"code="eventIDcode""#)
            .replace(r#"code="110127""#, r#"code="typeCode""#)
            .replace(r#"code="2""#, r#"code="x""#);
        let texts_dicom = dicom
            .replace(r#"csd-code="110113""#, r#"csd-code="x""#)
            .replace(r#"csd-code="110127""#, r#"csd-code="x""#)
            .replace(r#"csd-code="2""#, r#"csd-code="x""#);
        for body in [dicom.to_string(), legacy.to_string(), texts, texts_dicom] {
            let e = parse(&format!("<AuditMessage>{body}</AuditMessage>"))
                .unwrap()
                .unwrap();
            assert_eq!(e.action, Action::BreakGlass, "{body}");
            assert_eq!(e.user, "dr.k");
            assert_eq!(
                e.patient.as_deref(),
                Some("P9"),
                "no role: the id type code says patient; {body}"
            );
        }
    }

    #[test]
    fn patient_objects() {
        let obj = |attrs: &str, id_type: &str| {
            format!(
                r#"<ParticipantObjectIdentification ParticipantObjectID="X1" {attrs}>{id_type}</ParticipantObjectIdentification>"#
            )
        };
        let pn_dicom = r#"<ParticipantObjectIDTypeCode csd-code="2" codeSystemName="RFC-3881" originalText="Patient Number"/>"#;
        let mrn_legacy =
            r#"<ParticipantObjectIDTypeCode code="1" displayName="Medical Record Number"/>"#;
        let study = r#"<ParticipantObjectIDTypeCode csd-code="110180" codeSystemName="DCM" originalText="Study Instance UID"/>"#;
        let other_system =
            r#"<ParticipantObjectIDTypeCode code="2" codeSystemName="urn:site:codes"/>"#;
        let cases = [
            (
                obj(
                    r#"ParticipantObjectTypeCode="1" ParticipantObjectTypeCodeRole="1""#,
                    "",
                ),
                true,
            ),
            (obj(r#"ParticipantObjectTypeCodeRole="1""#, ""), true),
            (
                obj(
                    r#"ParticipantObjectTypeCode="1" ParticipantObjectTypeCodeRole="1""#,
                    study,
                ),
                true,
            ),
            (obj(r#"ParticipantObjectTypeCode="1""#, pn_dicom), true),
            (obj("", mrn_legacy), true),
            (obj(r#"ParticipantObjectTypeCode="1""#, other_system), false),
            (obj(r#"ParticipantObjectTypeCode="2""#, pn_dicom), false),
            (
                obj(
                    r#"ParticipantObjectTypeCode="2" ParticipantObjectTypeCodeRole="1""#,
                    "",
                ),
                false,
            ),
            (
                obj(
                    r#"ParticipantObjectTypeCode="1" ParticipantObjectTypeCodeRole="6""#,
                    pn_dicom,
                ),
                false,
            ),
            (
                obj(
                    r#"ParticipantObjectTypeCode="2" ParticipantObjectTypeCodeRole="3""#,
                    study,
                ),
                false,
            ),
            (obj(r#"ParticipantObjectTypeCode="1""#, ""), false),
        ];
        for (o, want) in cases {
            let e = parse(&xml(READ, "R", &o)).unwrap().unwrap();
            assert_eq!(e.patient.is_some(), want, "{o}");
        }
    }

    #[test]
    fn purpose_of_use_is_the_purpose() {
        let with = |purposes: &str| {
            parse(&xml(&format!("{READ}{purposes}"), "R", PATIENT))
                .unwrap()
                .unwrap()
                .purpose
        };
        assert_eq!(
            with(
                r#"<PurposeOfUse csd-code="NORM" codeSystemName="2.16.756.5.30.1.127.3.10.5" originalText="Normal"/>"#
            ),
            Some("NORM".into())
        );
        assert_eq!(
            with(
                r#"<PurposeOfUse code="TREAT"/><PurposeOfUse code="BTG" displayName="Break the glass"/>"#
            ),
            Some("BTG".into()),
            "break-the-glass first"
        );
        assert_eq!(with(""), None);
    }

    #[test]
    fn none_placeholder_is_no_patient() {
        let obj = |id: &str| {
            format!(
                r#"<ParticipantObjectIdentification ParticipantObjectID="{id}" ParticipantObjectTypeCode="1" ParticipantObjectTypeCodeRole="1"><ParticipantObjectIDTypeCode csd-code="2" codeSystemName="RFC-3881" originalText="Patient Number"/></ParticipantObjectIdentification>"#
            )
        };
        let e = parse(&xml(READ, "R", &obj("&lt;none&gt;")))
            .unwrap()
            .unwrap();
        assert_eq!(e.patient, None);
        assert_eq!(e.records, 1);
        let e = parse(&xml(READ, "R", &obj("urn:oid:1.1.1.99.1|2155-03a0")))
            .unwrap()
            .unwrap();
        assert_eq!(
            e.patient.as_deref(),
            Some("2155-03a0"),
            "FHIR token: the value"
        );
        let e = parse(&xml(READ, "R", &obj("A|B"))).unwrap().unwrap();
        assert_eq!(e.purpose, None);
        assert_eq!(
            e.patient.as_deref(),
            Some("A|B"),
            "no URI before the bar: kept"
        );
        let two = format!("{}{}", obj("&lt;NONE&gt;"), obj("P7"));
        let e = parse(&xml(READ, "R", &two)).unwrap().unwrap();
        assert_eq!(e.patient.as_deref(), Some("P7"));
        assert_eq!(e.records, 1);
    }

    #[test]
    fn several_patients_keep_the_first_and_count_them() {
        let p = |id: &str| {
            format!(
                r#"<ParticipantObjectIdentification ParticipantObjectID="{id}^^^&amp;1.2&amp;ISO" ParticipantObjectTypeCode="1" ParticipantObjectTypeCodeRole="1"><ParticipantObjectIDTypeCode csd-code="2" codeSystemName="RFC-3881" originalText="Patient Number"/></ParticipantObjectIdentification>"#
            )
        };
        let study = r#"<ParticipantObjectIdentification ParticipantObjectID="1.2.3.4" ParticipantObjectTypeCode="2" ParticipantObjectTypeCodeRole="3"/>"#;
        let body = format!(
            "{study}{}{}{}{}",
            p("MRN2"),
            p("MRN1"),
            p("MRN2"),
            p("MRN3")
        );
        let ev = r#"<EventID csd-code="110106" codeSystemName="DCM" originalText="Export"/>"#;
        let e = parse(&xml(ev, "R", &body)).unwrap().unwrap();
        assert_eq!(
            e.patient.as_deref(),
            Some("MRN2"),
            "the first in document order"
        );
        assert_eq!(e.records, 3, "distinct patients; the study is not one");
        let e = parse(&xml(READ, "R", "")).unwrap().unwrap();
        assert_eq!((e.patient, e.records), (None, 1));
    }

    #[test]
    fn event_date_time_without_seconds() {
        for (dt, want) in [
            ("2024-05-14T09:49Z", "2024-05-14T09:49:00.000Z"),
            ("2024-05-14T09:49+02:00", "2024-05-14T07:49:00.000Z"),
        ] {
            let line = xml(READ, "R", PATIENT).replace("2024-05-14T09:49:00.123-04:00", dt);
            let e = parse(&line).unwrap().unwrap();
            assert_eq!(crate::event::fmt_ts(&e.ts), want, "{dt}");
        }
    }

    #[test]
    fn headers_in_front_of_the_message() {
        let msg = xml(READ, "R", PATIENT);
        let n = msg.len() + 60;
        for line in [
            format!("<13>May 14 09:49:00 host app: {msg}"),
            format!("<85>Oct 11 22:14:15 ehr01 atna[77]: {msg}"),
            format!("May 14 09:49:00 ehr01 EHR: {msg}"),
            format!("<85>1 2024-05-14T13:49:00Z ehr01 EHR 42 IHE+RFC-3881 - \u{feff}{msg}"),
            // RFC 6587 counts that disagree with the frame by a lost BOM or so.
            format!(
                "{} <85>1 2024-05-14T13:49:00Z ehr01 EHR 42 IHE+RFC-3881 - {msg}",
                n - 3
            ),
            format!(
                "{} <85>1 2024-05-14T13:49:00Z ehr01 EHR 42 IHE+RFC-3881 - {msg}",
                n + 3
            ),
        ] {
            let e = parse(&line).unwrap().unwrap();
            assert_eq!(
                (e.user.as_str(), e.action),
                ("jsmith", Action::View),
                "{line}"
            );
            assert_eq!(e.patient.as_deref(), Some("MRN1"));
        }
        // A count cannot make a cut frame whole: the XML decides.
        let cut = &msg[..msg.len() - 20];
        let line = format!("{n} <85>1 2024-05-14T13:49:00Z ehr01 EHR 42 IHE+RFC-3881 - {cut}");
        assert_eq!(parse(&line).unwrap_err().reason, reason::BAD_XML);
    }

    #[test]
    fn the_human_requestor_is_the_user() {
        // IHE ITI-18 shape: the Document Consumer (Source, requestor) comes first, the
        // Human Requestor second.
        let line = r#"<AuditMessage><EventIdentification EventActionCode="E" EventDateTime="2024-05-14T09:49:00Z"><EventID code="110112" codeSystemName="DCM" displayName="Query"/><EventTypeCode code="ITI-18" codeSystemName="IHE Transactions" displayName="Registry Stored Query"/></EventIdentification><ActiveParticipant UserID="http://consumer.example/ws" AlternativeUserID="4711" UserIsRequestor="true" NetworkAccessPointID="10.0.0.8"><RoleIDCode code="110153" codeSystemName="DCM" displayName="Source Role ID"/></ActiveParticipant><ActiveParticipant UserID="7601000000001" UserIsRequestor="true"><RoleIDCode code="HCP" codeSystemName="2.16.756.5.30.1.127.3.10.6" displayName="Healthcare professional"/></ActiveParticipant><ActiveParticipant UserID="http://registry.example/ws" UserIsRequestor="false"><RoleIDCode code="110152" codeSystemName="DCM" displayName="Destination Role ID"/></ActiveParticipant></AuditMessage>"#;
        let e = parse(line).unwrap().unwrap();
        assert_eq!(e.user, "7601000000001");
        assert_eq!(
            e.host, None,
            "the person's participant names no access point"
        );
        // Without a Human Requestor the system is the user, as before.
        let system_only = line.replace(
            r#"UserID="7601000000001" UserIsRequestor="true""#,
            r#"UserID="7601000000001" UserIsRequestor="false""#,
        );
        let e = parse(&system_only).unwrap().unwrap();
        assert_eq!(e.user, "http://consumer.example/ws");
        assert_eq!(e.host.as_deref(), Some("10.0.0.8"));
    }

    #[test]
    fn ignored_events_need_no_user() {
        // An application start names the application, not a requestor.
        let line = r#"<AuditMessage><EventIdentification EventActionCode="E" EventDateTime="2024-05-14T09:49:00Z"><EventID csd-code="110100" codeSystemName="DCM" originalText="Application Activity"/><EventTypeCode csd-code="110120" codeSystemName="DCM" originalText="Application Start"/></EventIdentification><ActiveParticipant UserID="ehr-app" UserIsRequestor="false"><RoleIDCode csd-code="110150" codeSystemName="DCM" originalText="Application"/></ActiveParticipant></AuditMessage>"#;
        let r = parse(line).unwrap_err();
        assert!(r.ignored, "{r}");
        assert_eq!(r.reason, crate::parse::ignored::APPLICATION_ACTIVITY);
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

    #[test]
    fn values_borrow_from_the_line() {
        let xml = r#"<AuditMessage><EventIdentification EventActionCode="R" EventDateTime="2024-01-01T00:00:00Z"><EventID csd-code="110110" originalText="a &amp; b"/></EventIdentification></AuditMessage>"#;
        let msg = read_message(xml).unwrap();
        assert!(matches!(msg.action_code, Some(Cow::Borrowed("R"))));
        let id = msg.event_id.unwrap();
        assert!(matches!(id.code, Some(Cow::Borrowed("110110"))));
        assert!(matches!(id.text, Some(Cow::Owned(ref t)) if t == "a & b"));
        // Only a piece of the message is one.
        assert_eq!(within("abc", b"x"), None);
        assert_eq!(within("abc", &"abc".as_bytes()[1..]), Some("bc"));
        assert_eq!(
            within("aé", &"aé".as_bytes()[..2]),
            None,
            "not on a boundary"
        );
    }
}
