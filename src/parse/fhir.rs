//! FHIR AuditEvent, one JSON resource a line (R4 as the contract names it, and the R5
//! shapes servers have started to send).
//!
//! R4 and R5 give the same elements different JSON types (`type` a Coding or a
//! CodeableConcept, `outcome` a string or an object) and real servers add their own
//! twists (a `"true"` string for `requestor`, numeric identifiers), so every lookup is
//! liberal on its own, and a wrong type in one element costs that element, not the line.
//! The mapping below is written once against [`view`]'s traits, read two ways:
//!
//! - first the [`typed`] record, decoded straight from the line by its own JSON cursor
//!   ([`scan`]): it keeps only the elements the mapping reads and checks everything else
//!   without building anything (most of a FHIR replay's decoding time was building a JSON
//!   tree for a line of which phiwatch reads a tenth, then serde_json's visitors);
//! - when the cursor gives up (the line is not JSON, not an object, or JSON it leaves to
//!   serde_json: surrogate escapes, nesting deeper than 100), the JSON tree
//!   ([`super::jsontree::Json`], serde_json), which reads it or gives the rejection and
//!   its message as before.
//!
//! Both read the same JSON the same way (the cursor accepts nothing serde_json rejects,
//! numbers go through serde_json's own parser, the last of a repeated member wins), so the
//! event does not depend on which one read the line; `equivalence` holds them to it, on
//! fixtures, a simulated month and thousands of randomly broken lines.
//!
//! R5 renamed some elements; both spellings are read: `period`/`occurredPeriod`/
//! `occurredDateTime`, `type`/`category` (event type), `subtype`/`code` (interaction),
//! `network.address`/`networkString`/`networkUri`, `outcome`/`outcome.code`, and R5 adds a
//! top-level `patient`.

mod scan;
mod typed;
mod view;

#[cfg(test)]
mod equivalence;

use super::dicom::{self, EventKind, MediaClass};
use super::jsontree::Json as Value;
use super::time::parse_ts;
use super::{ident, prepare, quote_label, reason, Parser, Reject};
use crate::event::{trim_id, Action, Event, Outcome};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use view::{AgentCodes, AgentView, EntityCodes, EntityView, Record, Scalar, TopCodes};

pub(crate) struct FhirParser {
    source: String,
    tz: Tz,
}

impl FhirParser {
    pub(crate) fn new(source: String, tz: Tz) -> FhirParser {
        FhirParser { source, tz }
    }
}

impl Parser for FhirParser {
    fn parse(&mut self, line: &str) -> Result<Option<Event>, Reject> {
        let Some(line) = prepare(line)? else {
            return Ok(None);
        };
        let mut event = read(trim_id(line), self.tz)?;
        event.source.clone_from(&self.source);
        Ok(Some(event))
    }
}

/// One trimmed line to an event: the typed record when it decodes, else the tree.
fn read(line: &str, tz: Tz) -> Result<Event, Reject> {
    match typed::AuditEvent::parse(line) {
        Ok(record) => audit_event(&record, tz),
        Err(_) => read_tree(line, tz),
    }
}

/// The line read through the JSON tree, which accepts any shape.
fn read_tree(line: &str, tz: Tz) -> Result<Event, Reject> {
    let v = Value::parse(line).map_err(|e| {
        // serde_json's messages name a line/column and a category, never the input.
        Reject::new(reason::BAD_JSON, format!("not valid JSON: {e}"))
    })?;
    if !v.is_object() {
        return Err(Reject::new(
            reason::NOT_AUDIT_EVENT,
            "the line is JSON but not an object",
        ));
    }
    audit_event(&v, tz)
}

/// Maps one AuditEvent resource onto the canonical event.
fn audit_event<R: Record>(v: &R, tz: Tz) -> Result<Event, Reject> {
    match v.resource_type() {
        Some("AuditEvent") => {}
        // Some exports drop resourceType; an `agent` list still says what this is.
        None if v.agents().is_some() => {}
        Some(other) => {
            return Err(Reject::new(
                reason::NOT_AUDIT_EVENT,
                format!("resourceType is {}, not AuditEvent", quote_label(other)),
            ))
        }
        None => {
            return Err(Reject::new(
                reason::NOT_AUDIT_EVENT,
                "no resourceType and no agent list",
            ))
        }
    }

    let ts = timestamp(v, tz)?;
    // Before the user: a decision service's record may name no person at all, and it is
    // ignored either way.
    if is_authorization_decision(v) {
        return Err(Reject::ignored(
            crate::parse::ignored::OTHER,
            "an authorization decision or consent check, not a person's access to patient data",
        ));
    }
    let agents: &[R::Agent] = v.agents().unwrap_or(&[]);
    let (actor, user) = acting_user(agents).ok_or_else(|| {
        if agents.iter().any(AgentView::requestor) {
            Reject::new(
                reason::MISSING_USER,
                "the requestor agent names no one (no who.identifier, who.reference, altId, who.display, name or policy) and no other agent names a person",
            )
        } else if agents.is_empty() {
            Reject::new(reason::MISSING_USER, "the record has no agent")
        } else {
            // Only machines and network end points, none the requestor: a system's own
            // access (business to business), well formed but no one's to watch.
            Reject::ignored(
                crate::parse::ignored::NO_PERSON,
                "no agent is the requestor and every agent is a machine or a network end point",
            )
        }
    })?;

    let media = agents.iter().find_map(|a| {
        let c = a.media();
        dicom::media_class(c.0, c.1)
    });
    let mut action = action(v)?;
    if action == Action::Export && media == Some(MediaClass::Paper) {
        action = Action::Print;
    }

    let mut event = Event::new(ts, user, action);
    let patients = patients(v);
    event.records = patients.len().max(1) as u64;
    event.patient = patients.first;
    event.outcome = outcome_of(v.outcome_code().as_deref());
    event.purpose = purpose(v, actor);
    event.host = network_address(actor).or_else(|| {
        agents
            .iter()
            .filter(|a| a.agent_codes(AgentCodes::Type).any(|c| c == "110152"))
            .find_map(network_address)
    });
    if let Some(MediaClass::Media(m)) = media {
        event.media = Some(m);
    }
    Ok(event)
}

/// `period.start` (when it happened) before `recorded` (when it was written down). A
/// `period.start` that is only a date falls through to `recorded` rather than failing.
fn timestamp<R: Record>(v: &R, tz: Tz) -> Result<DateTime<Utc>, Reject> {
    let mut present = false;
    for c in v.times() {
        present |= !c.is_null();
        if let Some(ts) = c.as_str().and_then(|s| parse_ts(s, tz)) {
            return Ok(ts);
        }
    }
    Err(if present {
        Reject::new(
            reason::BAD_TIMESTAMP,
            "period.start/recorded is not a date-time",
        )
    } else {
        Reject::new(reason::MISSING_TIMESTAMP, "no period.start and no recorded")
    })
}

/// The person who acted, and the agent that names them. In order:
/// 1. a human agent with `requestor: true` (its id: `who.identifier.value`, the id of
///    `who.reference`, `altId`; else its `who.display` or `name`: BALP user agents often
///    carry only the display name from the OAuth token, and a display that is not on the
///    roster counts downstream as an unknown user, which is better than losing the access);
/// 2. an agent referencing a Practitioner, PractitionerRole, RelatedPerson or Patient;
/// 3. any human agent with `who.identifier.value`;
/// 4. a machine requestor's id (a Device or Organization that asked on its own behalf);
/// 5. the `who.display` or `name` of a human agent that is not a network end point;
/// 6. the token id (`policy`) of a human requestor that names nothing else (IHE BALP's
///    minimal OAuth record keeps only the JWT ID: the authorization server's log says
///    whose token it was).
///
/// "Machine" means `who.reference` to a Device or Organization, or an agent typed
/// Application (DCM 110150) or authorization server.
fn acting_user<A: AgentView>(agents: &[A]) -> Option<(&A, String)> {
    let requestors = || agents.iter().filter(|a| a.requestor());
    let humans = || agents.iter().filter(|a| !is_machine(*a));
    requestors()
        .filter(|a| !is_machine(*a))
        .find_map(|a| {
            agent_user_id(a)
                .or_else(|| agent_display(a))
                .map(|u| (a, u))
        })
        .or_else(|| {
            agents.iter().find_map(|a| {
                let (ty, id) = who_reference(a)?;
                matches!(
                    ty,
                    "Practitioner" | "PractitionerRole" | "RelatedPerson" | "Patient"
                )
                .then(|| ident(id))
                .flatten()
                .map(|u| (a, u))
            })
        })
        .or_else(|| humans().find_map(|a| a.who_identifier().id().map(|u| (a, u))))
        .or_else(|| requestors().find_map(|a| agent_user_id(a).map(|u| (a, u))))
        .or_else(|| {
            humans()
                .filter(|a| {
                    !a.agent_codes(AgentCodes::Type)
                        .any(|c| c == "110152" || c == "110153")
                })
                .find_map(|a| agent_display(a).map(|u| (a, u)))
        })
        .or_else(|| {
            requestors()
                .filter(|a| !is_machine(*a))
                .find_map(|a| a.policy().find_map(Scalar::id).map(|u| (a, u)))
        })
}

fn who_reference<A: AgentView>(agent: &A) -> Option<(&str, &str)> {
    agent.who_reference().and_then(reference)
}

fn is_machine<A: AgentView>(agent: &A) -> bool {
    matches!(who_reference(agent), Some(("Device" | "Organization", _)))
        || agent
            .agent_codes(AgentCodes::Type)
            .any(|c| c == "110150" || c.eq_ignore_ascii_case("authserver"))
}

/// `who.display`, else R4 `name`.
fn agent_display<A: AgentView>(agent: &A) -> Option<String> {
    agent
        .who_display()
        .and_then(ident)
        .or_else(|| agent.name().and_then(ident))
}

/// Why the access happened: R4 `purposeOfEvent`, R5 `authorization`, then the acting
/// agent's `purposeOfUse` (R4) / `authorization` (R5). A break-the-glass code (v3-ActReason
/// `BTG` or `ETREAT`) wins over the others, since that is what detectors look for;
/// otherwise the first code.
fn purpose<R: Record>(v: &R, actor: &R::Agent) -> Option<String> {
    // Walked twice rather than collected: a list for each line showed in profiles.
    let all = || {
        v.codes(TopCodes::PurposeOfEvent)
            .chain(v.codes(TopCodes::Authorization))
            .chain(actor.agent_codes(AgentCodes::PurposeOfUse))
            .chain(actor.agent_codes(AgentCodes::Authorization))
            .filter(|c| !c.is_empty())
    };
    all()
        .find(|c| c.eq_ignore_ascii_case("BTG") || c.eq_ignore_ascii_case("ETREAT"))
        .or_else(|| all().next())
        .map(str::to_string)
}

/// An authorization decision or consent check: the record of a decision service deciding
/// whether someone may see data, not of anyone seeing it (the access itself, when it
/// happens, is audited on its own). BALP `AuthZ-Consent`/`AuthZ-Role` subtypes, a type or
/// code naming an access decision, or an `E` (execute) record about a Consent resource with
/// no REST interaction, as the FHIR R5 `example-consent-permit-authz` example.
fn is_authorization_decision<R: Record>(v: &R) -> bool {
    let all_codes = || {
        v.codes(TopCodes::Type)
            .chain(v.codes(TopCodes::Category))
            .chain(v.codes(TopCodes::Subtype))
            .chain(v.codes(TopCodes::Code))
    };
    // Compared without case, and without lower-casing a copy of every code of every line.
    let named = all_codes().any(|c| {
        c.as_bytes()
            .get(..5)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"authz"))
            || c.eq_ignore_ascii_case("access-decision")
            || c.eq_ignore_ascii_case("authorization-decision")
    });
    if named {
        return true;
    }
    let act = v.action().map(trim_id).unwrap_or("");
    let rest = all_codes().any(|c| {
        matches!(
            c,
            "read"
                | "vread"
                | "search"
                | "search-type"
                | "search-system"
                | "create"
                | "update"
                | "patch"
                | "delete"
                | "110106"
                | "110127"
        )
    });
    let consent_entity = v.entities().is_some_and(|es| {
        es.iter().any(|e| {
            matches!(e.what_reference().and_then(reference), Some(("Consent", _)))
                || e.entity_codes(EntityCodes::Type).any(|c| c == "Consent")
        })
    });
    consent_entity && !rest && (act.is_empty() || act.eq_ignore_ascii_case("E"))
}

fn agent_user_id<A: AgentView>(agent: &A) -> Option<String> {
    agent
        .who_identifier()
        .id()
        .or_else(|| {
            agent
                .who_reference()
                .and_then(reference)
                .and_then(|(_, id)| ident(id))
        })
        .or_else(|| agent.alt_id().id())
}

fn network_address<A: AgentView>(agent: &A) -> Option<String> {
    agent.network().into_iter().find_map(|v| v.and_then(ident))
}

/// Splits a reference into resource type and id: `Patient/123`,
/// `https://ehr.example/fhir/Patient/123/_history/4`. Contained (`#x`), conditional
/// (`Patient?identifier=…`) and `urn:uuid:` references have no id to give.
fn reference(r: &str) -> Option<(&str, &str)> {
    let r = trim_id(r);
    if r.starts_with('#') {
        return None;
    }
    let r = r.split(['?', '#']).next().unwrap_or("");
    let mut segs = r.rsplit('/').filter(|s| !s.is_empty());
    let mut last = segs.next()?;
    let mut prev = segs.next()?;
    if prev == "_history" {
        last = segs.next()?;
        prev = segs.next()?;
    }
    Some((prev, last))
}

/// The canonical action. Export wins over everything (a disclosure is what matters most
/// to a privacy officer), then the REST interaction in `subtype`, then the DICOM event
/// type with the C/R/U/D action code.
fn action<R: Record>(v: &R) -> Result<Action, Reject> {
    let types = || v.codes(TopCodes::Type).chain(v.codes(TopCodes::Category));
    let subtypes = || v.codes(TopCodes::Subtype).chain(v.codes(TopCodes::Code));
    let kind = types()
        .map(|c| dicom::event_kind(Some(c), None))
        .find(|k| *k != EventKind::Other)
        .unwrap_or(EventKind::Other);
    let act = v.action().map(trim_id).unwrap_or("");

    // The Swiss EPR (CH:ATC) types every record DCM 110106 Export; what happened is its
    // subtype, an EPR audit trail event type.
    if let Some(r) = subtypes().find_map(ch_atc) {
        return r;
    }

    match kind {
        EventKind::Export => return Ok(Action::Export),
        EventKind::StudyDeleted => return Ok(Action::Delete),
        EventKind::Ignored(k) => {
            return Err(Reject::ignored(k, "not a person's access to patient data"))
        }
        EventKind::SecurityAlert
            if subtypes().any(|c| dicom::is_emergency_override(Some(c), None)) =>
        {
            return Ok(Action::BreakGlass);
        }
        EventKind::UserAuthentication | EventKind::Login | EventKind::Logout => {
            let logout =
                kind == EventKind::Logout || subtypes().any(|c| dicom::is_logout(Some(c), None));
            return Ok(if logout {
                Action::Logout
            } else {
                Action::Login
            });
        }
        _ => {}
    }
    // The interaction is normally in `subtype` (R4) or `code` (R5), but R5's own
    // example-advanced-create puts it in `category` and `rest` in `code`: the
    // restful-interaction codes are looked for in both places (they share no code with
    // the DICOM event types).
    for c in subtypes().chain(types()) {
        let a = match c {
            "read" | "vread" | "history-instance" => Action::View,
            "search" | "search-type" | "search-system" | "history-type" | "history-system" => {
                Action::Search
            }
            "create" => Action::Create,
            "update" | "patch" => Action::Update,
            "delete" => Action::Delete,
            "110122" => Action::Login,
            "110123" => Action::Logout,
            _ => continue,
        };
        return Ok(a);
    }
    match kind {
        EventKind::Query => return Ok(Action::Search),
        EventKind::Import => return Ok(Action::Create),
        _ => {}
    }
    let crud_applies = !matches!(kind, EventKind::SecurityAlert | EventKind::Other)
        || types().chain(subtypes()).any(|c| c == "rest")
        || types().next().is_none();
    if crud_applies {
        if let Some(a) = dicom::crud(act) {
            return Ok(a);
        }
    }
    if act.eq_ignore_ascii_case("E") && has_query_entity(v) {
        return Ok(Action::Search);
    }
    if act.is_empty() && types().next().is_none() && subtypes().next().is_none() {
        return Err(Reject::new(
            reason::MISSING_ACTION,
            "no type, subtype or action",
        ));
    }
    if kind == EventKind::SecurityAlert {
        return Err(Reject::ignored(
            crate::parse::ignored::SECURITY_ALERT,
            "a security alert other than an emergency override",
        ));
    }
    let first_type = types().next().unwrap_or("none");
    Err(Reject::new(
        reason::UNKNOWN_ACTION,
        format!(
            "type {} with action {} is not a staff action phiwatch maps",
            quote_label(first_type),
            quote_label(act)
        ),
    ))
}

/// A CH:ATC (Swiss EPR audit trail consumption) event type, code system
/// `urn:oid:2.16.756.5.30.1.127.3.10.7`: the document events are chart accesses; reading
/// the audit trail is the audit log used; policy (access right, representative,
/// confidentiality, emergency access settings) and group notifications name no access to
/// patient data. None for any other code.
fn ch_atc(code: &str) -> Option<Result<Action, Reject>> {
    let code = trim_id(code);
    let rest = code.strip_prefix("ATC_")?;
    Some(match rest {
        "DOC_CREATE" => Ok(Action::Create),
        "DOC_READ" => Ok(Action::View),
        "DOC_UPDATE" => Ok(Action::Update),
        "DOC_DELETE" => Ok(Action::Delete),
        "DOC_SEARCH" => Ok(Action::Search),
        "LOG_READ" => Err(Reject::ignored(
            crate::parse::ignored::AUDIT_LOG_USED,
            "the patient's audit trail was read",
        )),
        _ => Err(Reject::ignored(
            crate::parse::ignored::OTHER,
            "an EPR policy or group event, not a person's access to patient data",
        )),
    })
}

/// An entity carrying a search (`query`, or role 24 Query).
fn has_query_entity<R: Record>(v: &R) -> bool {
    v.entities().is_some_and(|es| {
        es.iter()
            .any(|e| e.has_query() || e.entity_codes(EntityCodes::Role).any(|c| c == "24"))
    })
}

/// Patient ids, distinct, in order of importance: R5 `patient`, then entities typed
/// Person/Patient (type 1, role 1; R5 drops `type`, so role 1 alone counts when `type`
/// is absent), and only when there are none, any entity referencing `Patient/…`.
fn patients<R: Record>(v: &R) -> Distinct {
    let mut out = Distinct::default();
    let mut push = |id: Option<String>| {
        if let Some(id) = id {
            out.push(id);
        }
    };
    push(
        v.patient_reference()
            .and_then(reference)
            .and_then(|(_, id)| ident(id))
            .or_else(|| v.patient_identifier().id()),
    );
    let entities: &[R::Entity] = v.entities().unwrap_or(&[]);
    let mut typed = false;
    for e in entities {
        let has = |which, code| e.entity_codes(which).any(|c| c == code);
        let patient_typed = (has(EntityCodes::Role, "1")
            && (e.is_absent(EntityCodes::Type)
                || has(EntityCodes::Type, "1")
                || has(EntityCodes::Type, "Patient")))
            || (has(EntityCodes::Type, "Patient") && e.is_absent(EntityCodes::Role));
        if patient_typed {
            typed = true;
            push(
                e.what_reference()
                    .and_then(reference)
                    .and_then(|(_, id)| ident(id))
                    .or_else(|| cx_id(e.what_identifier())),
            );
        }
    }
    if !typed {
        for e in entities {
            let r = e.what_reference().and_then(reference);
            if let Some(("Patient", id)) = r {
                push(ident(id));
            }
        }
        // Last, a search's own words: `patient=` (or `subject=Patient/…`) in the base64
        // `query` of a query entity, as BALP PatientQuery records carry it.
        for e in entities {
            if let Some(q) = e.query().and_then(base64_decode) {
                for id in query_patients(&String::from_utf8_lossy(&q)) {
                    push(Some(id));
                }
            }
        }
    }
    out
}

/// Distinct ids in the order first seen. The first is kept apart, so that a record's one
/// patient (nearly every record names one) costs no list.
#[derive(Debug, Default)]
struct Distinct {
    first: Option<String>,
    rest: Vec<String>,
}

impl Distinct {
    fn push(&mut self, id: String) {
        match &self.first {
            None => self.first = Some(id),
            Some(first) if *first == id || self.rest.contains(&id) => {}
            Some(_) => self.rest.push(id),
        }
    }

    fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }
}

/// An identifier value, read as an HL7 v2 CX when it is one (`id^^^&oid&ISO`, as
/// records converted from ATNA carry it): the first component.
fn cx_id(v: Scalar) -> Option<String> {
    let id = v.id()?;
    match id.split_once('^') {
        Some((first, _)) => ident(first),
        None => Some(id),
    }
}

/// Patient ids named by a search's parameters: `patient=x`, `patient=Patient/x`,
/// `subject=Patient/x`, `patient:Patient=x`, comma-separated lists, percent-encoded.
fn query_patients(q: &str) -> Vec<String> {
    let params = q.rsplit_once('?').map_or(q, |(_, p)| p);
    let mut out = Vec::new();
    for pair in params.split('&') {
        let Some((name, value)) = pair.split_once('=') else {
            continue;
        };
        let name = name.trim();
        let base = name.split([':', '.']).next().unwrap_or("");
        let patient_param = base == "patient";
        let subject_param = base == "subject";
        if !patient_param && !subject_param {
            continue;
        }
        for item in percent_decode(value).split(',') {
            let id = match item.trim().rsplit_once('/') {
                Some((ty, id)) if ty.ends_with("Patient") => id,
                Some(_) => continue,
                None if patient_param || name.ends_with(":Patient") => item,
                None => continue,
            };
            if let Some(id) = ident(id) {
                out.push(id);
            }
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Standard or URL-safe base64, padding optional, whitespace ignored. None when the text
/// is not base64.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            b' ' | b'\n' | b'\r' | b'\t' => continue,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// `"0"` (or 0) is success, any other code a failure; no outcome at all is success, as
/// BALP profiles leave it out for successes. R5 nests the code in `outcome.code` (see
/// [`view::outcome_code`]).
fn outcome_of(code: Option<&str>) -> Outcome {
    match code {
        // R5's own example writes `success` where the code system has `0`.
        Some("0") | None => Outcome::Success,
        Some(c) if c.eq_ignore_ascii_case("success") => Outcome::Success,
        Some(_) => Outcome::Failure,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `json!` value as the parser's tree (leaked: tests only).
    fn tree(v: serde_json::Value) -> Value<'static> {
        Value::parse(Box::leak(v.to_string().into_boxed_str())).unwrap()
    }

    fn parse(line: &str) -> Result<Option<Event>, Reject> {
        FhirParser::new("fhir".into(), Tz::UTC).parse(line)
    }

    fn outcome(v: &Value) -> Outcome {
        outcome_of(view::outcome_code(v).as_deref())
    }

    fn ok(line: &str) -> Event {
        parse(line).unwrap().unwrap()
    }

    fn err(line: &str) -> &'static str {
        parse(line).unwrap_err().reason
    }

    const BASE: &str = r#""resourceType":"AuditEvent","recorded":"2024-05-14T13:49:00Z","agent":[{"requestor":true,"who":{"reference":"Practitioner/p1"}}]"#;

    #[test]
    fn references() {
        assert_eq!(reference("Patient/123"), Some(("Patient", "123")));
        assert_eq!(
            reference("https://ehr.example/fhir/Patient/123/_history/4"),
            Some(("Patient", "123"))
        );
        assert_eq!(reference("Patient/123/"), Some(("Patient", "123")));
        assert_eq!(reference("#contained"), None);
        assert_eq!(reference("Patient?identifier=x|1"), None);
        assert_eq!(reference("urn:uuid:1234"), None);
        assert_eq!(reference("123"), None);
        assert_eq!(reference(""), None);
        assert_eq!(reference("/_history/1"), None);
    }

    #[test]
    fn minimal_rest_read() {
        let e = ok(&format!(
            r#"{{{BASE},"type":{{"code":"rest"}},"subtype":[{{"code":"read"}}],"action":"R","entity":[{{"what":{{"reference":"Patient/42"}}}}]}}"#
        ));
        assert_eq!(e.user, "p1");
        assert_eq!(e.action, Action::View);
        assert_eq!(e.patient.as_deref(), Some("42"));
        assert_eq!(e.source, "fhir");
        assert_eq!(e.media, None);
    }

    #[test]
    fn action_table() {
        let cases = [
            (
                r#""type":{"code":"rest"},"subtype":[{"code":"vread"}]"#,
                Action::View,
            ),
            (
                r#""type":{"code":"rest"},"subtype":[{"code":"search-type"}]"#,
                Action::Search,
            ),
            (
                r#""type":{"code":"rest"},"subtype":[{"code":"patch"}]"#,
                Action::Update,
            ),
            (
                r#""type":{"code":"rest"},"subtype":[{"code":"delete"}]"#,
                Action::Delete,
            ),
            (r#""type":{"code":"110110"},"action":"C""#, Action::Create),
            (r#""type":{"code":"110110"},"action":"U""#, Action::Update),
            (r#""type":{"code":"110106"},"action":"R""#, Action::Export),
            (r#""type":{"code":"110112"},"action":"E""#, Action::Search),
            (
                r#""type":{"code":"110114"},"subtype":[{"code":"110122"}],"action":"E""#,
                Action::Login,
            ),
            (
                r#""type":{"code":"110114"},"subtype":[{"code":"110123"}],"action":"E""#,
                Action::Logout,
            ),
            (
                r#""type":{"code":"110113"},"subtype":[{"code":"110127"}],"action":"E""#,
                Action::BreakGlass,
            ),
            (
                r#""type":{"code":"rest"},"action":"E","entity":[{"query":"X2lkPTE="}]"#,
                Action::Search,
            ),
            (
                r#""type":{"coding":[{"code":"110110"}]},"action":"R""#,
                Action::View,
            ),
            (
                r#""category":[{"coding":[{"code":"rest"}]}],"code":{"coding":[{"code":"read"}]}"#,
                Action::View,
            ),
            // Swiss EPR (CH:ATC): type 110106 on every record, the subtype says what.
            (
                r#""type":{"code":"110106"},"subtype":[{"system":"urn:oid:2.16.756.5.30.1.127.3.10.7","code":"ATC_DOC_READ"}],"action":"R""#,
                Action::View,
            ),
            (
                r#""type":{"code":"110106"},"subtype":[{"code":"ATC_DOC_SEARCH"}],"action":"E""#,
                Action::Search,
            ),
            // R5 example-advanced-create: the interaction in `category`, `rest` in `code`.
            (
                r#""category":[{"coding":[{"code":"create"}]}],"code":{"coding":[{"code":"rest"}]},"action":"C""#,
                Action::Create,
            ),
        ];
        for (frag, want) in cases {
            let e = ok(&format!("{{{BASE},{frag}}}"));
            assert_eq!(e.action, want, "{frag}");
        }
        // Application activity is well formed and not a patient access: ignored.
        assert_eq!(
            err(&format!(
                r#"{{{BASE},"type":{{"code":"110100"}},"action":"E"}}"#
            )),
            crate::parse::ignored::APPLICATION_ACTIVITY
        );
        assert_eq!(
            err(&format!(
                r#"{{{BASE},"type":{{"code":"110199"}},"action":"E"}}"#
            )),
            reason::UNKNOWN_ACTION
        );
        assert_eq!(err(&format!("{{{BASE}}}")), reason::MISSING_ACTION);
        // CH:ATC: the patient reading the audit trail, a policy change: ignored.
        assert_eq!(
            err(&format!(
                r#"{{{BASE},"type":{{"code":"110106"}},"subtype":[{{"code":"ATC_LOG_READ"}}],"action":"C"}}"#
            )),
            crate::parse::ignored::AUDIT_LOG_USED
        );
        assert_eq!(
            err(&format!(
                r#"{{{BASE},"type":{{"code":"110106"}},"subtype":[{{"code":"ATC_POL_ENA_EMER_USE"}}],"action":"C"}}"#
            )),
            crate::parse::ignored::OTHER
        );
    }

    #[test]
    fn outcomes() {
        assert_eq!(outcome(&Value::Null), Outcome::Success);
        assert_eq!(outcome(&tree(serde_json::json!("0"))), Outcome::Success);
        assert_eq!(outcome(&tree(serde_json::json!("8"))), Outcome::Failure);
        assert_eq!(outcome(&tree(serde_json::json!(4))), Outcome::Failure);
        assert_eq!(
            outcome(&tree(serde_json::json!({"code":{"system":"x","code":"0"}}))),
            Outcome::Success
        );
        assert_eq!(
            outcome(&tree(
                serde_json::json!({"code":{"coding":[{"code":"12"}]}})
            )),
            Outcome::Failure
        );
    }

    #[test]
    fn rejections() {
        assert_eq!(err("{"), reason::BAD_JSON);
        assert_eq!(err("[1,2]"), reason::NOT_AUDIT_EVENT);
        assert_eq!(
            err(r#"{"resourceType":"Patient"}"#),
            reason::NOT_AUDIT_EVENT
        );
        assert_eq!(
            err(r#"{"resourceType":"AuditEvent","agent":[]}"#),
            reason::MISSING_TIMESTAMP
        );
        assert_eq!(
            err(r#"{"resourceType":"AuditEvent","recorded":"yesterday","agent":[]}"#),
            reason::BAD_TIMESTAMP
        );
        // Only a machine and a network end point, neither the requestor: a system's own
        // access, well formed, counted as ignored.
        let r = parse(
            r#"{"resourceType":"AuditEvent","recorded":"2024-05-14T13:49:00Z","agent":[{"requestor":false,"who":{"reference":"Device/1"}},{"requestor":false,"type":{"code":"110152"},"who":{"display":"ws-1"}}]}"#,
        )
        .unwrap_err();
        assert!(r.ignored);
        assert_eq!(r.reason, crate::parse::ignored::NO_PERSON);
        // No agent at all.
        assert_eq!(
            err(r#"{"resourceType":"AuditEvent","recorded":"2024-05-14T13:49:00Z","agent":[]}"#),
            reason::MISSING_USER
        );
        assert_eq!(
            err(
                r#"{"resourceType":"AuditEvent","recorded":"2024-05-14T13:49:00Z","agent":[{"requestor":true,"who":{"display":" "}}]}"#
            ),
            reason::MISSING_USER
        );
    }

    fn user_of(agents: &str) -> String {
        ok(&format!(
            r#"{{"resourceType":"AuditEvent","recorded":"2024-05-14T13:49:00Z","type":{{"code":"rest"}},"subtype":[{{"code":"read"}}],"agent":{agents}}}"#
        ))
        .user
    }

    #[test]
    fn acting_person() {
        // Requestor with identifier, reference, altId, display, name: in that order.
        assert_eq!(
            user_of(
                r#"[{"requestor":true,"who":{"identifier":{"value":"E1"},"reference":"Practitioner/p1","display":"Dr X"},"altId":"ad\\x"}]"#
            ),
            "E1"
        );
        assert_eq!(
            user_of(
                r#"[{"requestor":true,"who":{"reference":"Practitioner/p1","display":"Dr X"}}]"#
            ),
            "p1"
        );
        assert_eq!(
            user_of(r#"[{"requestor":true,"altId":"HOSP\\x","name":"X"}]"#),
            "HOSP\\x"
        );
        // BALP: the user agent carries only the display name from the OAuth token.
        assert_eq!(
            user_of(
                r#"[{"requestor":false,"type":{"code":"110153"},"who":{"reference":"Device/srv"}},{"requestor":true,"type":{"coding":[{"code":"IRCP"}]},"who":{"display":"John Smith"}}]"#
            ),
            "John Smith"
        );
        assert_eq!(
            user_of(r#"[{"requestor":true,"name":"Jane Roe"}]"#),
            "Jane Roe"
        );
        // A human requestor wins over a machine requestor listed first.
        assert_eq!(
            user_of(
                r#"[{"requestor":true,"who":{"reference":"Device/app"}},{"requestor":true,"who":{"display":"Dr X"}}]"#
            ),
            "Dr X"
        );
        // No requestor: a Practitioner (or PractitionerRole, RelatedPerson, Patient) agent.
        assert_eq!(
            user_of(
                r#"[{"requestor":false,"who":{"identifier":{"value":"srv-9"},"reference":"Device/d"}},{"requestor":false,"who":{"reference":"PractitionerRole/r7"}}]"#
            ),
            "r7"
        );
        assert_eq!(
            user_of(r#"[{"requestor":false,"who":{"reference":"RelatedPerson/rp1"}}]"#),
            "rp1"
        );
        // Then any human agent with an identifier.
        assert_eq!(
            user_of(
                r#"[{"requestor":false,"who":{"reference":"Device/d"}},{"requestor":false,"who":{"identifier":{"value":"u42"}}}]"#
            ),
            "u42"
        );
        // Then a machine requestor's own id (as before).
        assert_eq!(
            user_of(r#"[{"requestor":true,"who":{"reference":"Device/batch-1"}}]"#),
            "batch-1"
        );
        // Then a display, but never a network end point's.
        assert_eq!(
            user_of(
                r#"[{"requestor":false,"type":{"code":"110152"},"who":{"display":"ws-1"}},{"requestor":false,"who":{"display":"Nurse Y"}}]"#
            ),
            "Nurse Y"
        );
        // Last, the token id of a requestor that names nothing else (BALP
        // ex-auditBasicReadOServerMin).
        assert_eq!(
            user_of(
                r#"[{"requestor":true,"type":{"coding":[{"code":"UserOauthAgent"}]},"policy":["C187CC48"]},{"requestor":false,"type":{"code":"110153"},"who":{"reference":"Device/srv"}}]"#
            ),
            "C187CC48"
        );
    }

    #[test]
    fn patient_shapes() {
        let p = |entities: &str| {
            ok(&format!(
                r#"{{{BASE},"type":{{"code":"rest"}},"subtype":[{{"code":"search"}}],"entity":{entities}}}"#
            ))
        };
        // what.identifier.value of a Person/Patient entity; a CX keeps its first component.
        let e = p(
            r#"[{"type":{"code":"1"},"role":{"code":"1"},"what":{"identifier":{"value":"MRN7^^^&1.2.3&ISO"}}}]"#,
        );
        assert_eq!(e.patient.as_deref(), Some("MRN7"));
        // R5: entity typed with the resource type Patient and no role.
        let e = p(r#"[{"type":{"code":"Patient"},"what":{"reference":"Patient/p9"}}]"#);
        assert_eq!(e.patient.as_deref(), Some("p9"));
        // Several patient entities: the first is the patient, all count as records.
        let e = p(
            r#"[{"role":{"code":"1"},"what":{"reference":"Patient/a"}},{"role":{"code":"1"},"what":{"reference":"Patient/b"}}]"#,
        );
        assert_eq!(e.patient.as_deref(), Some("a"));
        assert_eq!(e.records, 2);
        // A query entity: `patient=` in the base64 query.
        // "Observation?patient=ex-patient&_count=10"
        let e = p(
            r#"[{"role":{"code":"24"},"query":"T2JzZXJ2YXRpb24/cGF0aWVudD1leC1wYXRpZW50Jl9jb3VudD0xMA=="}]"#,
        );
        assert_eq!(e.patient.as_deref(), Some("ex-patient"));
        // "Encounter?subject=Patient%2F123" (URL-safe, unpadded)
        let e =
            p(r#"[{"role":{"code":"24"},"query":"RW5jb3VudGVyP3N1YmplY3Q9UGF0aWVudCUyRjEyMw"}]"#);
        assert_eq!(e.patient.as_deref(), Some("123"));
        // A typed patient entity wins over the query.
        let e = p(
            r#"[{"role":{"code":"24"},"query":"T2JzZXJ2YXRpb24/cGF0aWVudD1leC1wYXRpZW50Jl9jb3VudD0xMA=="},{"type":{"code":"1"},"role":{"code":"1"},"what":{"reference":"Patient/x1"}}]"#,
        );
        assert_eq!(e.patient.as_deref(), Some("x1"));
        // Not base64: no patient, no failure.
        let e = p(r#"[{"role":{"code":"24"},"query":"not base64!"}]"#);
        assert_eq!(e.patient, None);
    }

    #[test]
    fn query_parameters() {
        assert_eq!(query_patients("Observation?patient=a,b&code=x"), ["a", "b"]);
        assert_eq!(query_patients("patient=Patient/p1"), ["p1"]);
        assert_eq!(
            query_patients("Observation?subject=Group/g1"),
            Vec::<String>::new()
        );
        assert_eq!(query_patients("Observation?subject:Patient=s1"), ["s1"]);
        assert_eq!(
            query_patients("Observation?subject=s1"),
            Vec::<String>::new()
        );
        assert_eq!(query_patients("patient=%41%42&x=%"), ["AB"]);
        assert_eq!(base64_decode("aGk="), Some(b"hi".to_vec()));
        assert_eq!(base64_decode("aGk"), Some(b"hi".to_vec()));
        assert_eq!(base64_decode("a*"), None);
    }

    #[test]
    fn r5_outcome_and_purpose() {
        let e = ok(&format!(
            r#"{{{BASE},"category":[{{"coding":[{{"code":"rest"}}]}}],"code":{{"coding":[{{"code":"read"}}]}},"outcome":{{"code":{{"system":"http://terminology.hl7.org/CodeSystem/audit-event-outcome","code":"4"}}}},"authorization":[{{"coding":[{{"code":"TREAT"}}]}}]}}"#
        ));
        assert_eq!(e.outcome, Outcome::Failure);
        assert_eq!(e.purpose.as_deref(), Some("TREAT"));
        assert_eq!(
            outcome(&tree(serde_json::json!({"code":{"code":"success"}}))),
            Outcome::Success
        );
        // R4 purposeOfEvent: a break-the-glass code wins over the others; the action stays
        // the interaction's.
        let e = ok(&format!(
            r#"{{{BASE},"type":{{"code":"rest"}},"subtype":[{{"code":"read"}}],"purposeOfEvent":[{{"coding":[{{"code":"TREAT"}}]}},{{"coding":[{{"code":"BTG"}}]}}]}}"#
        ));
        assert_eq!(e.action, Action::View);
        assert_eq!(e.purpose.as_deref(), Some("BTG"));
        // The acting agent's purposeOfUse when the event has none.
        let e = ok(
            r#"{"resourceType":"AuditEvent","recorded":"2024-05-14T13:49:00Z","type":{"code":"rest"},"subtype":[{"code":"read"}],"agent":[{"requestor":true,"who":{"reference":"Practitioner/p1"},"purposeOfUse":[{"coding":[{"code":"ETREAT"}]}]}]}"#,
        );
        assert_eq!(e.purpose.as_deref(), Some("ETREAT"));
        assert!(!e.to_json_line().contains("purpose\":null"));
        let plain = ok(&format!(
            r#"{{{BASE},"type":{{"code":"rest"}},"subtype":[{{"code":"read"}}]}}"#
        ));
        assert_eq!(plain.purpose, None);
        assert!(!plain.to_json_line().contains("purpose"));
    }

    #[test]
    fn authorization_decisions_are_ignored() {
        let cases = [
            // BALP AuthZ-Consent (a Security Alert subtype).
            r#""type":{"code":"110113"},"subtype":[{"code":"AuthZ-Consent"}],"action":"E""#,
            r#""type":{"code":"access-decision"},"action":"E""#,
            r#""category":[{"coding":[{"code":"Authorization-DECISION"}]}],"action":"E""#,
            r#""subtype":[{"code":"AUTHZ"}],"action":"R""#,
            // FHIR R5 example-consent-permit-authz: a Query about a Consent, no REST read.
            r#""code":{"coding":[{"code":"110112"}]},"action":"E","entity":[{"what":{"reference":"Patient/p"},"role":{"code":"1"}},{"what":{"reference":"Consent/c1"}}]"#,
        ];
        for frag in cases {
            let r = parse(&format!("{{{BASE},{frag}}}")).unwrap_err();
            assert!(r.ignored, "{frag}");
            assert_eq!(r.reason, crate::parse::ignored::OTHER, "{frag}");
        }
        // Reading a Consent resource is an access like any other.
        let e = ok(&format!(
            r#"{{{BASE},"type":{{"code":"rest"}},"subtype":[{{"code":"read"}}],"action":"R","entity":[{{"what":{{"reference":"Consent/c1"}}}}]}}"#
        ));
        assert_eq!(e.action, Action::View);
    }

    #[test]
    fn deep_nesting_does_not_panic() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(err(&deep), reason::BAD_JSON);
        let deep_obj = format!(
            r#"{{"resourceType":"AuditEvent","x":{}1{}}}"#,
            "{\"a\":".repeat(50_000),
            "}".repeat(50_000)
        );
        assert_eq!(err(&deep_obj), reason::BAD_JSON);
    }
}
