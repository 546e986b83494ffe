//! Records from the public record (`tests/fixtures/public/`, sources and licences in its
//! PROVENANCE.md) through the real ingest path: the source's parser inside the
//! [`Decoder`] that `run` and `replay` use, with the time window opened wide (the
//! examples are from 2012-2025; the window is a separate check with its own tests).
//!
//! Each family has a `.expect` file written by reading the records, one JSON object per
//! record (for auditd, per expected event): `{"event": {...}}` with the user, patients
//! (the first is `patient`, their number is `records`), action, time and outcome, or
//! `{"ignored": "<kind>"}` for a well-formed record that is not a person's access to
//! patient data. No record may be rejected.

use crate::support::fixture;
use phiwatch::config::SourceConfig;
use phiwatch::event::{fmt_ts, Event};
use phiwatch::ingest::{Decoder, Item, Limits};
use phiwatch::source::{FileId, LineKind, TailLine};
use serde_json::Value;
use std::sync::Arc;

fn decoder(toml_text: &str) -> Decoder {
    let source: SourceConfig = toml::from_str(toml_text).expect("source config parses");
    let limits = Limits {
        max_age: chrono::Duration::days(365_000),
        max_ahead: chrono::Duration::days(365_000),
    };
    Decoder::new(&source, chrono_tz::UTC, limits).expect("decoder builds")
}

/// Every line of `tests/fixtures/public/<file>` through the decoder, then its end of
/// input; the items of each line kept apart (index = line number - 1), and what the
/// end of input released last.
fn decode(d: &mut Decoder, file: &str) -> (Vec<Vec<Item>>, Vec<Item>) {
    let text = fixture(&format!("public/{file}"));
    let path: Arc<str> = Arc::from(file);
    let mut per_line = Vec::new();
    let mut offset = 0u64;
    for line in text.split_inclusive('\n') {
        let mut out = Vec::new();
        d.decode(
            TailLine {
                path: path.clone(),
                id: FileId {
                    dev: 1,
                    ino: 1,
                    fingerprint: 0,
                },
                offset,
                end: offset + line.len() as u64,
                kind: LineKind::Data,
                text: line.trim_end_matches(['\n', '\r']).to_string(),
            },
            &mut out,
        );
        offset += line.len() as u64;
        per_line.push(out);
    }
    let mut tail = Vec::new();
    d.finish(&path, &mut tail);
    (per_line, tail)
}

fn expectations(file: &str) -> Vec<Value> {
    fixture(&format!("public/{file}"))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{file}: {e}: {l}")))
        .collect()
}

/// `e` against one `{"event": {...}}` expectation; `at` names the record.
fn check_event(e: &Event, want: &Value, at: &str) {
    let s = |k: &str| want[k].as_str().map(str::to_string);
    assert_eq!(Some(fmt_ts(&e.ts)), s("ts"), "{at}: time");
    assert_eq!(Some(e.user.clone()), s("user"), "{at}: user");
    assert_eq!(
        Some(e.action.as_str().to_string()),
        s("action"),
        "{at}: action"
    );
    if let Some(patients) = want.get("patients").and_then(Value::as_array) {
        let patients: Vec<&str> = patients.iter().filter_map(Value::as_str).collect();
        assert_eq!(
            e.patient.as_deref(),
            patients.first().copied(),
            "{at}: patient"
        );
        assert_eq!(
            e.records,
            patients.len().max(1) as u64,
            "{at}: records (distinct patients)"
        );
    }
    if let Some(o) = s("outcome") {
        assert_eq!(e.outcome.as_str(), o, "{at}: outcome");
    }
    if let Some(path) = s("path") {
        assert_eq!(e.path.as_deref(), Some(path.as_str()), "{at}: path");
    }
    // A purpose is checked where the record carries one, and its absence elsewhere.
    assert_eq!(e.purpose, s("purpose"), "{at}: purpose");
}

/// Counts of one family (a rejection fails the test where it happens).
#[derive(Debug, Default, PartialEq, Eq)]
struct Tally {
    events: usize,
    ignored: usize,
}

/// A family of one record a line: each line gives exactly one item, the one its
/// expectation names.
fn line_family(source: &str, file: &str, expect: &str) -> Tally {
    let mut d = decoder(source);
    let (per_line, tail) = decode(&mut d, file);
    let want = expectations(expect);
    assert_eq!(
        per_line.len(),
        want.len(),
        "{file}: records and expectations"
    );
    assert!(tail.is_empty(), "{file}: nothing is held back");
    let mut tally = Tally::default();
    for (i, (items, want)) in per_line.iter().zip(&want).enumerate() {
        let at = format!("{file}:{}", i + 1);
        assert_eq!(items.len(), 1, "{at}: one item per record");
        match (&items[0], want.get("event"), want.get("ignored")) {
            (Item::Event(e), Some(w), None) => {
                check_event(e, w, &at);
                tally.events += 1;
            }
            (Item::Ignored(kind), None, Some(w)) => {
                assert_eq!(Some(*kind), w.as_str(), "{at}: ignored kind");
                tally.ignored += 1;
            }
            (Item::Rejected { reject, .. }, ..) => panic!("{at}: rejected: {reject}"),
            (Item::Event(e), ..) => panic!("{at}: became an event, expected {want}: {e:?}"),
            (Item::Ignored(kind), ..) => panic!("{at}: ignored as {kind}, expected {want}"),
        }
    }
    tally
}

/// FHIR R4 specification examples (CC0), one resource a line.
#[test]
fn fhir_r4_specification_examples() {
    let t = line_family(FHIR, "fhir-r4.ndjson", "fhir-r4.expect");
    assert_eq!(
        t,
        Tally {
            events: 8,
            ignored: 1,
        }
    );
}

/// FHIR R5 specification examples (CC0), one resource a line.
#[test]
fn fhir_r5_specification_examples() {
    let t = line_family(FHIR, "fhir-r5.ndjson", "fhir-r5.expect");
    assert_eq!(
        t,
        Tally {
            events: 11,
            ignored: 2,
        }
    );
}

/// IHE Basic Audit Log Patterns examples (CC-BY-4.0), converted from their FSH source.
#[test]
fn ihe_balp_examples() {
    let t = line_family(FHIR, "balp.ndjson", "balp.expect");
    assert_eq!(
        t,
        Tally {
            events: 28,
            ignored: 18,
        }
    );
}

/// Swiss EPR audit trail (CH:ATC) examples (CC0 / MIT), converted from FHIR XML: every
/// record is typed 110106 Export and its EPR event type says what happened.
#[test]
fn ch_atc_examples() {
    let t = line_family(FHIR, "ch-atc.ndjson", "ch-atc.expect");
    assert_eq!(
        t,
        Tally {
            events: 4,
            ignored: 6,
        }
    );
}

/// ATNA messages from OpenHIM's tests (MPL-2.0): a PIX query relayed by a mediator, and
/// the two IHE wiki syslog collector examples (login with an application and a person
/// both marked requestor).
#[test]
fn openhim_atna_messages() {
    let t = line_family(ATNA, "openhim.log", "openhim.expect");
    assert_eq!(
        t,
        Tally {
            events: 3,
            ignored: 0,
        }
    );
}

/// Swiss EPR ATNA messages published by eHealth Suisse (CC0): XDS, PIX and PDQ
/// transactions of real EPR systems, and a whole RFC 5425 frame (octet count, BOM).
#[test]
fn swiss_epr_atna_messages() {
    let t = line_family(ATNA, "epr-ch.log", "epr-ch.expect");
    assert_eq!(
        t,
        Tally {
            events: 7,
            ignored: 0,
        }
    );
}

/// The sample audit messages of dcm4chee-arc's conformance statement, behind an
/// RFC 5424 header.
#[test]
fn dcm4chee_arc_conformance_messages() {
    let t = line_family(ATNA, "dcm4chee-arc.log", "dcm4chee-arc.expect");
    assert_eq!(
        t,
        Tally {
            events: 131,
            ignored: 19,
        }
    );
}

/// Linux audit records from go-libaudit's test data (Apache-2.0): real systems' event
/// groups. Only a staff account's file writes, moves and deletions become events; the
/// rest (daemons, logins, reads, executions) is counted as ignored, and nothing is
/// rejected.
#[test]
fn linux_audit_test_data() {
    let mut d = decoder(AUDITD);
    let (per_line, tail) = decode(&mut d, "auditd.log");
    let want = expectations("auditd.expect");
    let mut events = Vec::new();
    let mut ignored = 0;
    for (i, item) in per_line
        .iter()
        .enumerate()
        .flat_map(|(i, items)| items.iter().map(move |it| (i, it)))
        .chain(tail.iter().map(|it| (usize::MAX, it)))
    {
        match item {
            Item::Event(e) => events.push(e.clone()),
            Item::Ignored(kind) => {
                assert_eq!(*kind, "other_audit_event", "line {}", i.wrapping_add(1));
                ignored += 1;
            }
            Item::Rejected { reject, .. } => {
                panic!("line {}: rejected: {reject}", i.wrapping_add(1))
            }
        }
    }
    // Every other event id's group: well formed, not a staff account's file change.
    assert_eq!(ignored, IGNORED_GROUPS, "ignored groups");
    events.sort_by_key(|e| e.ts);
    let mut want: Vec<&Value> = want.iter().map(|w| &w["event"]).collect();
    want.sort_by_key(|w| w["ts"].as_str().unwrap_or("").to_string());
    assert_eq!(events.len(), want.len(), "{events:?}");
    for (e, w) in events.iter().zip(want) {
        check_event(e, w, "auditd.log");
    }
}

/// The event ids of `auditd.log` (65) less the two that become events.
const IGNORED_GROUPS: usize = 63;

const FHIR: &str = r#"
name = "fhir"
type = "file"
paths = ["*.ndjson"]
format = "fhir-audit"
"#;

const ATNA: &str = r#"
name = "pacs"
type = "file"
paths = ["*.log"]
format = "atna-syslog"
"#;

const AUDITD: &str = r#"
name = "audit"
type = "file"
paths = ["audit.log"]
format = "auditd"
[uids]
"1000" = "u1000"
"1001" = "andrew_kroh"
"1002" = "u1002"
"1005" = "u1005"
"#;
