//! FHIR AuditEvent, one JSON resource a line (R4 as the contract names it, and the R5
//! shapes servers have started to send).
//!
//! The line goes through `serde_json::Value` rather than typed structs: R4 and R5 give
//! the same elements different JSON types (`type` a Coding or a CodeableConcept,
//! `outcome` a string or an object) and real servers add their own twists (a `"true"`
//! string for `requestor`, numeric identifiers). A tree lets each lookup be liberal on
//! its own, and a wrong type in one element costs that element, not the whole line.
//!
//! R5 renamed some elements; both spellings are read: `period`/`occurredPeriod`/
//! `occurredDateTime`, `type`/`category` (event type), `subtype`/`code` (interaction),
//! `network.address`/`networkString`/`networkUri`, `outcome`/`outcome.code`, and R5 adds a
//! top-level `patient`.

use super::dicom::{self, EventKind, MediaClass};
use super::time::parse_ts;
use super::{ident, prepare, quote_label, reason, Parser, Reject};
use crate::event::{Action, Event, Outcome};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::Value;

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
        let v: Value = serde_json::from_str(line.trim()).map_err(|e| {
            // serde_json's messages name a line/column and a category, never the input.
            Reject::new(reason::BAD_JSON, format!("not valid JSON: {e}"))
        })?;
        let mut event = audit_event(&v, self.tz)?;
        event.source.clone_from(&self.source);
        Ok(Some(event))
    }
}

/// Maps one AuditEvent resource onto the canonical event.
fn audit_event(v: &Value, tz: Tz) -> Result<Event, Reject> {
    let Some(obj) = v.as_object() else {
        return Err(Reject::new(
            reason::NOT_AUDIT_EVENT,
            "the line is JSON but not an object",
        ));
    };
    match obj.get("resourceType").and_then(Value::as_str) {
        Some("AuditEvent") => {}
        // Some exports drop resourceType; an `agent` list still says what this is.
        None if obj.get("agent").is_some_and(Value::is_array) => {}
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
    let agents: &[Value] = v["agent"].as_array().map_or(&[], Vec::as_slice);
    let requestor = agents.iter().find(|a| is_true(&a["requestor"]));
    let user = requestor.and_then(agent_user_id).ok_or_else(|| {
        let detail = if requestor.is_some() {
            "the requestor agent has no who.identifier.value, who.reference or altId"
        } else {
            "no agent has requestor: true"
        };
        Reject::new(reason::MISSING_USER, detail)
    })?;

    let media = agents.iter().find_map(|a| {
        let c = first_coding(&a["media"]);
        dicom::media_class(c.0, c.1)
    });
    let mut action = action(v)?;
    if action == Action::Export && media == Some(MediaClass::Paper) {
        action = Action::Print;
    }

    let mut event = Event::new(ts, user, action);
    let patients = patients(v);
    event.records = patients.len().max(1) as u64;
    event.patient = patients.into_iter().next();
    event.outcome = outcome(&v["outcome"]);
    event.host = requestor.and_then(network_address).or_else(|| {
        agents
            .iter()
            .filter(|a| codes(&a["type"]).any(|c| c == "110152"))
            .find_map(network_address)
    });
    if let Some(MediaClass::Media(m)) = media {
        event.media = Some(m);
    }
    Ok(event)
}

/// `period.start` (when it happened) before `recorded` (when it was written down). A
/// `period.start` that is only a date falls through to `recorded` rather than failing.
fn timestamp(v: &Value, tz: Tz) -> Result<DateTime<Utc>, Reject> {
    let candidates = [
        &v["period"]["start"],
        &v["occurredPeriod"]["start"],
        &v["occurredDateTime"],
        &v["recorded"],
    ];
    let mut present = false;
    for c in candidates {
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

/// `true` or, from lax producers, `"true"`.
fn is_true(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::String(s) => s.trim().eq_ignore_ascii_case("true"),
        _ => false,
    }
}

/// A string or number as an identifier.
fn scalar_id(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => ident(s),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn agent_user_id(agent: &Value) -> Option<String> {
    let who = &agent["who"];
    scalar_id(&who["identifier"]["value"])
        .or_else(|| {
            who["reference"]
                .as_str()
                .and_then(reference)
                .and_then(|(_, id)| ident(id))
        })
        .or_else(|| scalar_id(&agent["altId"]))
}

fn network_address(agent: &Value) -> Option<String> {
    [
        &agent["network"]["address"],
        &agent["networkString"],
        &agent["networkUri"],
    ]
    .into_iter()
    .find_map(|v| v.as_str().and_then(ident))
}

/// Splits a reference into resource type and id: `Patient/123`,
/// `https://ehr.example/fhir/Patient/123/_history/4`. Contained (`#x`), conditional
/// (`Patient?identifier=…`) and `urn:uuid:` references have no id to give.
fn reference(r: &str) -> Option<(&str, &str)> {
    let r = r.trim();
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

/// Every code in a Coding, a CodeableConcept, or an array of either.
fn codes(v: &Value) -> impl Iterator<Item = &str> {
    let items: &[Value] = match v {
        Value::Array(a) => a,
        Value::Object(_) => std::slice::from_ref(v),
        _ => &[],
    };
    items.iter().flat_map(|item| {
        let direct = item["code"].as_str();
        let nested = item["coding"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["code"].as_str());
        direct.into_iter().chain(nested).map(str::trim)
    })
}

/// The first (code, display) of a Coding or CodeableConcept.
fn first_coding(v: &Value) -> (Option<&str>, Option<&str>) {
    let c = if v["coding"].is_array() {
        &v["coding"][0]
    } else {
        v
    };
    (c["code"].as_str(), c["display"].as_str())
}

fn has_code(v: &Value, code: &str) -> bool {
    codes(v).any(|c| c == code)
}

/// The canonical action. Export wins over everything (a disclosure is what matters most
/// to a privacy officer), then the REST interaction in `subtype`, then the DICOM event
/// type with the C/R/U/D action code.
fn action(v: &Value) -> Result<Action, Reject> {
    let types = || codes(&v["type"]).chain(codes(&v["category"]));
    let subtypes = || codes(&v["subtype"]).chain(codes(&v["code"]));
    let kind = types()
        .map(|c| dicom::event_kind(Some(c), None))
        .find(|k| *k != EventKind::Other)
        .unwrap_or(EventKind::Other);
    let act = v["action"].as_str().map(str::trim).unwrap_or("");

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
    for c in subtypes() {
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
        || types().any(|c| c == "rest")
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

/// An entity carrying a search (`query`, or role 24 Query).
fn has_query_entity(v: &Value) -> bool {
    v["entity"].as_array().is_some_and(|es| {
        es.iter()
            .any(|e| e.get("query").is_some() || has_code(&e["role"], "24"))
    })
}

/// Patient ids, distinct, in order of importance: R5 `patient`, then entities typed
/// Person/Patient (type 1, role 1; R5 drops `type`, so role 1 alone counts when `type`
/// is absent), and only when there are none, any entity referencing `Patient/…`.
fn patients(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |id: Option<String>| {
        if let Some(id) = id {
            if !out.contains(&id) {
                out.push(id);
            }
        }
    };
    let r5 = &v["patient"];
    push(
        r5["reference"]
            .as_str()
            .and_then(reference)
            .and_then(|(_, id)| ident(id))
            .or_else(|| scalar_id(&r5["identifier"]["value"])),
    );
    let entities: &[Value] = v["entity"].as_array().map_or(&[], Vec::as_slice);
    let mut typed = false;
    for e in entities {
        let ty = &e["type"];
        let patient_typed = has_code(&e["role"], "1")
            && (ty.is_null() || has_code(ty, "1") || has_code(ty, "Patient"));
        if patient_typed {
            typed = true;
            let what = &e["what"];
            push(
                what["reference"]
                    .as_str()
                    .and_then(reference)
                    .and_then(|(_, id)| ident(id))
                    .or_else(|| scalar_id(&what["identifier"]["value"])),
            );
        }
    }
    if !typed {
        for e in entities {
            let r = e["what"]["reference"].as_str().and_then(reference);
            if let Some(("Patient", id)) = r {
                push(ident(id));
            }
        }
    }
    out
}

/// `"0"` (or 0) is success, any other code a failure; no outcome at all is success, as
/// BALP profiles leave it out for successes. R5 nests the code in `outcome.code`.
fn outcome(v: &Value) -> Outcome {
    let code = match v {
        Value::Null => return Outcome::Success,
        Value::String(s) => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Object(_) => codes(&v["code"])
            .next()
            .or_else(|| codes(v).next())
            .map(str::to_string),
        _ => None,
    };
    match code.as_deref() {
        Some("0") | None => Outcome::Success,
        Some(_) => Outcome::Failure,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Option<Event>, Reject> {
        FhirParser::new("fhir".into(), Tz::UTC).parse(line)
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
    }

    #[test]
    fn outcomes() {
        assert_eq!(outcome(&Value::Null), Outcome::Success);
        assert_eq!(outcome(&serde_json::json!("0")), Outcome::Success);
        assert_eq!(outcome(&serde_json::json!("8")), Outcome::Failure);
        assert_eq!(outcome(&serde_json::json!(4)), Outcome::Failure);
        assert_eq!(
            outcome(&serde_json::json!({"code":{"system":"x","code":"0"}})),
            Outcome::Success
        );
        assert_eq!(
            outcome(&serde_json::json!({"code":{"coding":[{"code":"12"}]}})),
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
        assert_eq!(
            err(
                r#"{"resourceType":"AuditEvent","recorded":"2024-05-14T13:49:00Z","agent":[{"requestor":false,"who":{"reference":"Practitioner/1"}}]}"#
            ),
            reason::MISSING_USER
        );
        assert_eq!(
            err(
                r#"{"resourceType":"AuditEvent","recorded":"2024-05-14T13:49:00Z","agent":[{"requestor":true,"who":{"display":"Dr X"}}]}"#
            ),
            reason::MISSING_USER
        );
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
