//! Parser throughput per format, in lines and bytes per second, on a few thousand
//! generated lines shaped like the test fixtures (BALP reads, DICOM ATNA reads behind
//! RFC 5424, an Epic pipe export, nested jsonl, canonical events).
//!
//! `cargo bench --bench parse -- --warm-up-time 1 --measurement-time 3`

/// The binary's allocator (see src/main.rs), so the figures are what `phiwatch` gets.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use chrono_tz::Tz;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use phiwatch::config::SourceConfig;
use phiwatch::parse::{build, Parser};
use std::hint::black_box;

const LINES: usize = 4000;

/// Deterministic spread of users, patients and times.
fn pick(i: usize) -> (String, String, String) {
    let user = format!("u{}", 1000 + (i * 7) % 300);
    let mrn = format!("MRN{:08}", 10_000 + (i * 7919) % 50_000);
    let secs = i * 13;
    let ts = format!(
        "2024-05-14T{:02}:{:02}:{:02}.{:03}",
        (8 + secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60,
        i % 1000
    );
    (user, mrn, ts)
}

fn fhir(i: usize) -> String {
    let (user, mrn, ts) = pick(i);
    let sub = ["read", "search-type", "vread", "update"][i % 4];
    format!(
        r#"{{"resourceType":"AuditEvent","id":"ae-{i}","type":{{"system":"http://terminology.hl7.org/CodeSystem/audit-event-type","code":"rest","display":"Restful Operation"}},"subtype":[{{"system":"http://hl7.org/fhir/restful-interaction","code":"{sub}"}}],"action":"R","recorded":"{ts}Z","outcome":"0","agent":[{{"type":{{"coding":[{{"system":"http://terminology.hl7.org/CodeSystem/v3-ParticipationType","code":"IRCP"}}]}},"who":{{"identifier":{{"system":"urn:oid:1.2.840.114350.1.13.0.1.7.2.697780","value":"{user}"}},"display":"Staff {user}"}},"altId":"HOSP\\{user}","requestor":true}},{{"type":{{"coding":[{{"system":"http://dicom.nema.org/resources/ontology/DCM","code":"110152","display":"Destination Role ID"}}]}},"who":{{"display":"WS-{w}"}},"requestor":false,"network":{{"address":"10.20.4.{w}","type":"2"}}}},{{"type":{{"coding":[{{"system":"http://dicom.nema.org/resources/ontology/DCM","code":"110153","display":"Source Role ID"}}]}},"who":{{"reference":"Device/ehr-fhir-server"}},"requestor":false,"network":{{"address":"https://ehr.hospital.example/fhir","type":"5"}}}}],"source":{{"site":"ehr.hospital.example","observer":{{"reference":"Device/ehr-fhir-server"}}}},"entity":[{{"what":{{"reference":"Patient/{mrn}"}},"type":{{"system":"http://terminology.hl7.org/CodeSystem/audit-entity-type","code":"1"}},"role":{{"system":"http://terminology.hl7.org/CodeSystem/object-role","code":"1"}}}},{{"what":{{"reference":"DiagnosticReport/dr-{i}"}},"type":{{"code":"2"}},"role":{{"code":"4"}}}}]}}"#,
        w = i % 200
    )
}

fn atna(i: usize) -> String {
    let (user, mrn, ts) = pick(i);
    let act = ["R", "R", "U", "C"][i % 4];
    format!(
        r#"<85>1 {ts}Z ehr01.hospital.example EHR 4242 IHE+RFC-3881 - <?xml version="1.0" encoding="UTF-8"?><AuditMessage><EventIdentification EventActionCode="{act}" EventDateTime="{ts}Z" EventOutcomeIndicator="0"><EventID csd-code="110110" codeSystemName="DCM" originalText="Patient Record"/></EventIdentification><ActiveParticipant UserID="{user}" AlternativeUserID="HOSP\{user}" UserName="Staff {user}" UserIsRequestor="true" NetworkAccessPointID="10.20.4.{w}" NetworkAccessPointTypeCode="2"><RoleIDCode csd-code="110153" codeSystemName="DCM" originalText="Source Role ID"/></ActiveParticipant><ActiveParticipant UserID="EHR-APP-01" UserIsRequestor="false" NetworkAccessPointID="ehr01.hospital.example" NetworkAccessPointTypeCode="1"><RoleIDCode csd-code="110150" codeSystemName="DCM" originalText="Application"/></ActiveParticipant><AuditSourceIdentification AuditEnterpriseSiteID="HOSP-MAIN" AuditSourceID="ehr01.hospital.example"><AuditSourceTypeCode code="4"/></AuditSourceIdentification><ParticipantObjectIdentification ParticipantObjectID="{mrn}^^^&amp;1.2.840.99999.1&amp;ISO" ParticipantObjectTypeCode="1" ParticipantObjectTypeCodeRole="1" ParticipantObjectDataLifeCycle="6"><ParticipantObjectIDTypeCode csd-code="2" codeSystemName="RFC-3881" originalText="Patient Number"/><ParticipantObjectName>PATIENT^{i}</ParticipantObjectName></ParticipantObjectIdentification></AuditMessage>"#,
        w = i % 200
    )
}

const EPIC_HEADER: &str = "ACCESS_TIME|METRIC_NAME|WORKSTATION_ID|METRIC_GROUP|ACCESS_ACTION|PAT_MRN_ID|PAT_FIRST_NAME|PAT_MIDDLE_NAME|PAT_LAST_NAME|ADD_LINE_1|ADD_LINE_2|CITY|ZIP|STATE|COUNTRY|DEPARTMENT_NAME|BTG_REASON|BTG_EXPLANATION|SYSTEM_LOGIN|USER_ID|EMP_LAST_NAME|EMP_FIRST_NAME|RECORD_COUNT";

fn csv(i: usize) -> String {
    let (user, mrn, ts) = pick(i);
    let metric = [
        "AN EXISTING PATIENT IS SELECTED FROM PATIENT LOOKUP",
        "PATIENT DEMOGRAPHICS FORM ACCESSED",
        "THE PROBLEM LIST IS VIEWED",
        "REPORT EXPORTED",
    ][i % 4];
    let dept = if i % 10 == 0 {
        "\"4 NORTH | MED SURG\""
    } else {
        "4 NORTH MED SURG"
    };
    format!(
        "{}|{metric}|WS-{}|Patient Lookup|View|{mrn}|PAT{i}||LAST{i}|{i} ELM ST||SPRINGFIELD|01101|MA|USA|{dept}|||{}|{user}|STAFF|{user}|{}",
        ts.replace('T', " "),
        i % 200,
        user.to_uppercase(),
        if i % 4 == 3 { "25" } else { "" }
    )
}

fn jsonl(i: usize) -> String {
    let (user, mrn, ts) = pick(i);
    format!(
        r#"{{"time":"{ts}Z","actor":{{"id":"{user}","ip":"10.0.{}.{}"}},"patient":{{"mrn":"{mrn}"}},"event":{{"type":"{}"}},"count":{}}}"#,
        i % 7,
        i % 200,
        ["chart.open", "report.download"][i % 2],
        1 + i % 3
    )
}

fn canonical(i: usize) -> String {
    let (user, mrn, ts) = pick(i);
    format!(
        r#"{{"ts":"{ts}Z","user":"{user}","action":"{}","patient":"{mrn}","host":"WS-{}","records":{}}}"#,
        ["view", "search", "update", "export"][i % 4],
        i % 200,
        1 + i % 5
    )
}

fn source(toml_text: &str) -> SourceConfig {
    toml::from_str(toml_text).expect("bench source config")
}

fn bench_format(
    c: &mut Criterion,
    name: &str,
    config: &str,
    header: Option<&str>,
    gen: fn(usize) -> String,
) {
    let lines: Vec<String> = (0..LINES).map(gen).collect();
    let bytes: u64 = lines.iter().map(|l| l.len() as u64 + 1).sum();
    let mut parser: Box<dyn Parser> = build(&source(config), Tz::UTC).expect("parser builds");
    if let Some(h) = header {
        parser.parse(h).expect("header");
    }
    for l in &lines {
        assert!(
            matches!(parser.parse(l), Ok(Some(_))),
            "{name}: generated line rejected"
        );
    }
    let mut run = |group: &str, t: Throughput| {
        let mut g = c.benchmark_group(group);
        g.throughput(t);
        g.bench_function(name, |b| {
            b.iter(|| {
                for l in &lines {
                    let _ = black_box(parser.parse(black_box(l)));
                }
            })
        });
        g.finish();
    };
    run("parse_lines", Throughput::Elements(LINES as u64));
    run("parse_bytes", Throughput::BytesDecimal(bytes));
}

fn benches(c: &mut Criterion) {
    bench_format(
        c,
        "fhir-audit",
        "name='fhir'\ntype='file'\nformat='fhir-audit'\n",
        None,
        fhir,
    );
    bench_format(
        c,
        "atna-syslog",
        "name='atna'\ntype='file'\nformat='atna-syslog'\n",
        None,
        atna,
    );
    bench_format(
        c,
        "csv",
        r#"
name = "epic"
type = "file"
format = "csv"
delimiter = "|"
timezone = "America/Chicago"
[fields]
ts = "ACCESS_TIME"
user = "USER_ID"
patient = "PAT_MRN_ID"
action = "METRIC_NAME"
host = "WORKSTATION_ID"
records = "RECORD_COUNT"
[actions]
"AN EXISTING PATIENT IS SELECTED FROM PATIENT LOOKUP" = "view"
"PATIENT DEMOGRAPHICS FORM ACCESSED" = "view"
"THE PROBLEM LIST IS VIEWED" = "view"
"REPORT EXPORTED" = "export"
"#,
        Some(EPIC_HEADER),
        csv,
    );
    bench_format(
        c,
        "jsonl",
        r#"
name = "portal"
type = "file"
format = "jsonl"
[fields]
ts = "time"
user = "actor.id"
host = "actor.ip"
patient = "patient.mrn"
action = "event.type"
records = "count"
[actions]
"chart.open" = "view"
"report.download" = "export"
"#,
        None,
        jsonl,
    );
    bench_format(
        c,
        "canonical",
        "name='agents'\ntype='file'\nformat='canonical'\n",
        None,
        canonical,
    );
}

criterion_group!(parse, benches);
criterion_main!(parse);
