//! Output formats. Each log system writes one file per hospital-local day, in event-time
//! order, in its own real-world format:
//!
//! - `fhir/<date>.ndjson`: FHIR R4 AuditEvent, one resource a line, IHE BALP-like (type
//!   `rest` + subtype read/vread/search/create/update; exports as DCM 110106). `recorded`
//!   is mostly UTC (`Z`), sometimes local with offset, as mixed server fleets write it.
//! - `atna/<date>.log`: RFC 5424 syslog, `<85>1 ... IHE+RFC-3881 - <?xml ...>`, one
//!   DICOM/RFC 3881 `AuditMessage` a line. Radiology and pharmacy use the DICOM
//!   `csd-code` attribute style; the older laboratory system uses RFC 3881 `code` style
//!   and upper-case user ids. Patient ids are CX: `MRN^^^&1.2.840.99999.1&ISO`.
//! - `epic/<date>.csv`: an Epic-like pipe-delimited access export with a header row,
//!   local time without offset and upper-case user ids.
//! - `files/<date>.jsonl`: canonical `file_write` events from the endpoint agent.
//!
//! A few deliberately malformed lines go into each format, counted for the labels.

use super::clock;
use super::hospital::{self as hosp, DEPTS};
use super::{Access, Aux, Kind, System, World, NONE};
use anyhow::{Context, Result};
use chrono::Duration;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

/// Epic metric names used, with the canonical action each maps to (the replay config's
/// `[sources.actions]` table is generated from this) and the export's ACCESS_ACTION.
pub const EPIC_METRICS: &[(&str, &str)] = &[
    (
        "AN EXISTING PATIENT IS SELECTED FROM PATIENT LOOKUP",
        "view",
    ),
    ("PATIENT DEMOGRAPHICS FORM ACCESSED", "view"),
    ("THE PROBLEM LIST IS VIEWED", "view"),
    ("CHART REVIEW ENCOUNTERS TAB VIEWED", "view"),
    ("RESULTS REVIEW ACTIVITY ACCESSED", "view"),
    ("PEND A NOTE", "create"),
    ("PATIENT DEMOGRAPHICS UPDATED", "update"),
    ("PATIENT LOOKUP SEARCH PERFORMED", "search"),
    ("REPORT EXPORTED", "export"),
    ("REPORT PRINTED", "print"),
];

pub const EPIC_COLUMNS: &str =
    "ACCESS_TIME|METRIC_NAME|WORKSTATION_ID|PAT_MRN_ID|USER_ID|RECORD_COUNT|ACCESS_ACTION";

fn epic_metric(kind: Kind) -> (&'static str, &'static str) {
    let (i, access_action) = match kind {
        Kind::Open => (0, "View"),
        Kind::Demographics => (1, "View"),
        Kind::ProblemList => (2, "View"),
        Kind::ChartReview => (3, "View"),
        Kind::Results => (4, "View"),
        Kind::Note => (5, "Modify"),
        Kind::Update => (6, "Modify"),
        Kind::Search => (7, "Search"),
        Kind::Export | Kind::File(_) => (8, "Export"),
        Kind::Print => (9, "Print"),
    };
    (EPIC_METRICS[i].0, access_action)
}

/// What was written, for the summary and labels.
pub struct Written {
    pub events: BTreeMap<System, u64>,
    pub malformed: BTreeMap<System, u64>,
    pub files: usize,
}

const PATIENT_OID: &str = "1.2.840.99999.1";

pub fn write_all(w: &World, out: &Path, rng: &mut ChaCha8Rng) -> Result<Written> {
    for sys in System::ALL {
        let dir = out.join(sys.dir());
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        // Daily files of an earlier run with more days would otherwise be replayed too.
        for entry in std::fs::read_dir(&dir)? {
            let p = entry?.path();
            if p.extension().and_then(|e| e.to_str()) == Some(sys.ext()) {
                std::fs::remove_file(&p)?;
            }
        }
    }
    let days = w.opts.days;
    // Malformed lines: a few days per format, at a random position in that day's file.
    let per_format = (days / 5).max(3);
    let mut bad: BTreeMap<(System, u32), (usize, u32)> = BTreeMap::new();
    for sys in System::ALL {
        let mut chosen = BTreeSet::new();
        while chosen.len() < per_format.min(days) as usize {
            chosen.insert(rng.gen_range(0..days));
        }
        for (k, d) in chosen.into_iter().enumerate() {
            bad.insert((sys, d), (rng.gen_range(0..300), k as u32 % 2));
        }
    }
    let mut written = Written {
        events: System::ALL.iter().map(|&s| (s, 0)).collect(),
        malformed: System::ALL.iter().map(|&s| (s, 0)).collect(),
        files: 0,
    };
    let mut line = String::with_capacity(4096);
    let mut start_i = 0;
    for d in 0..days {
        let date = w.opts.start + Duration::days(d as i64);
        let de = clock::local_ms(date + Duration::days(1), 0);
        let end_i = start_i + w.accesses[start_i..].partition_point(|a| a.ts < de);
        let mut files: Vec<BufWriter<File>> = Vec::with_capacity(4);
        for sys in System::ALL {
            let path = out.join(sys.dir()).join(format!("{date}.{}", sys.ext()));
            let f =
                File::create(&path).with_context(|| format!("cannot write {}", path.display()))?;
            let mut f = BufWriter::with_capacity(1 << 20, f);
            if sys == System::Epic {
                writeln!(f, "{EPIC_COLUMNS}")?;
            }
            files.push(f);
            written.files += 1;
        }
        let mut seen = [0usize; 4];
        let mut last: [Option<&Access>; 4] = [None; 4];
        for a in &w.accesses[start_i..end_i] {
            let si = a.sys as usize;
            if let Some(&(at, variant)) = bad.get(&(a.sys, d)) {
                if seen[si] == at {
                    line.clear();
                    malformed(w, a, variant, rng, &mut line);
                    files[si].write_all(line.as_bytes())?;
                    *written.malformed.get_mut(&a.sys).expect("all systems") += 1;
                }
            }
            seen[si] += 1;
            last[si] = Some(a);
            line.clear();
            format_line(w, a, rng, &mut line);
            files[si].write_all(line.as_bytes())?;
            *written.events.get_mut(&a.sys).expect("all systems") += 1;
        }
        // A chosen position past the day's last line: append at the end.
        for sys in System::ALL {
            let si = sys as usize;
            // A day without a line of this system borrows one from the month to garble.
            let sample = last[si].or_else(|| w.accesses.iter().find(|a| a.sys == sys));
            if let (Some(&(at, variant)), Some(a)) = (bad.get(&(sys, d)), sample) {
                if seen[si] <= at {
                    line.clear();
                    malformed(w, a, variant, rng, &mut line);
                    files[si].write_all(line.as_bytes())?;
                    *written.malformed.get_mut(&sys).expect("all systems") += 1;
                }
            }
        }
        for mut f in files {
            f.flush()?;
        }
        start_i = end_i;
    }
    Ok(written)
}

fn format_line(w: &World, a: &Access, rng: &mut ChaCha8Rng, out: &mut String) {
    match a.sys {
        System::Fhir => fhir(w, a, rng, out),
        System::Atna => atna(w, a, rng, out),
        System::Epic => epic(w, a, out),
        System::Files => file_event(w, a, out),
    }
}

/// A broken line derived from a real one, so it looks like what a real feed garbles.
fn malformed(w: &World, a: &Access, variant: u32, rng: &mut ChaCha8Rng, out: &mut String) {
    let mut good = String::new();
    format_line(w, a, rng, &mut good);
    let good = good.trim_end();
    match (a.sys, variant) {
        // Cut off mid-line, as a crashed writer leaves it.
        (System::Fhir | System::Files | System::Atna, 0) => {
            let mut cut = good.len() * 11 / 20;
            while !good.is_char_boundary(cut) {
                cut -= 1;
            }
            out.push_str(&good[..cut]);
        }
        // An AuditEvent without its mandatory `recorded`.
        (System::Fhir, _) => {
            let s = good.find(",\"recorded\":").expect("recorded present");
            let e = s + good[s + 1..].find(",\"").expect("field after recorded") + 1;
            out.push_str(&good[..s]);
            out.push_str(&good[e..]);
        }
        (System::Atna, _) => {
            let mut ts = String::new();
            clock::fmt_utc(a.ts, &mut ts);
            let _ = write!(
                out,
                "<85>1 {ts} lis01.hospital.example LIS 2231 IHE+RFC-3881 - audit queue overflow, 17 messages dropped"
            );
        }
        (System::Files, _) => {
            out.push_str("{\"ts\":\"yesterday\",\"user\":");
            let rest = &good[good.find("\"user\":").expect("user present") + 7..];
            out.push_str(rest);
        }
        (System::Epic, 0) => {
            let rest = &good[good.find('|').expect("pipe")..];
            out.push_str("2026-02-30 25:61:00");
            out.push_str(rest);
        }
        (System::Epic, _) => {
            let mut ts = String::new();
            clock::fmt_local_plain(a.ts, &mut ts);
            let host = &w.h.hosts[a.host as usize];
            let _ = write!(out, "{ts}|PATIENT LOOKUP SEARCH PERFORMED|{host}|||");
        }
    }
    out.push('\n');
}

fn patients_of<'a>(w: &'a World, a: &Access) -> Vec<&'a str> {
    match (a.aux != NONE).then(|| &w.aux[a.aux as usize]) {
        Some(Aux::Patients(ps)) => ps
            .iter()
            .map(|&p| w.h.patients[p as usize].id.as_str())
            .collect(),
        _ if a.patient != NONE => vec![w.h.patients[a.patient as usize].id.as_str()],
        _ => Vec::new(),
    }
}

const DCM: &str = "http://dicom.nema.org/resources/ontology/DCM";
const ENTITY_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-entity-type";
const OBJECT_ROLE: &str = "http://terminology.hl7.org/CodeSystem/object-role";

fn uuid(rng: &mut ChaCha8Rng, out: &mut String) {
    let x: u128 = rng.gen();
    let h = format!("{x:032x}");
    let _ = write!(
        out,
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    );
}

fn fhir(w: &World, a: &Access, rng: &mut ChaCha8Rng, out: &mut String) {
    let st = &w.h.staff[a.user as usize];
    let host = &w.h.hosts[a.host as usize];
    out.push_str("{\"resourceType\":\"AuditEvent\",\"id\":\"");
    uuid(rng, out);
    out.push_str("\",");
    let (subtype, action) = match a.kind {
        Kind::Open | Kind::Demographics | Kind::ProblemList | Kind::Results => ("read", "R"),
        Kind::ChartReview => ("vread", "R"),
        Kind::Note => ("create", "C"),
        Kind::Update => ("update", "U"),
        Kind::Search => ("search", "E"),
        Kind::Export | Kind::Print | Kind::File(_) => ("", "R"),
    };
    if subtype.is_empty() {
        let _ = write!(
            out,
            "\"type\":{{\"system\":\"{DCM}\",\"code\":\"110106\",\"display\":\"Export\"}},"
        );
    } else {
        let _ = write!(
            out,
            "\"type\":{{\"system\":\"http://terminology.hl7.org/CodeSystem/audit-event-type\",\"code\":\"rest\",\"display\":\"Restful Operation\"}},\"subtype\":[{{\"system\":\"http://hl7.org/fhir/restful-interaction\",\"code\":\"{subtype}\",\"display\":\"{subtype}\"}}],"
        );
    }
    let _ = write!(out, "\"action\":\"{action}\",\"recorded\":\"");
    if rng.gen_bool(0.3) {
        clock::fmt_offset(a.ts, out);
    } else {
        clock::fmt_utc(a.ts, out);
    }
    let _ = write!(
        out,
        "\",\"outcome\":\"0\",\"agent\":[{{\"type\":{{\"coding\":[{{\"system\":\"http://terminology.hl7.org/CodeSystem/v3-ParticipationType\",\"code\":\"IRCP\",\"display\":\"information recipient\"}}]}},\"who\":{{\"identifier\":{{\"system\":\"urn:oid:1.2.840.99999.2\",\"value\":\"{uid}\"}},\"display\":\"{fam}, {giv}\"}},\"altId\":\"HOSP\\\\{uid}\",\"requestor\":true}},{{\"type\":{{\"coding\":[{{\"system\":\"{DCM}\",\"code\":\"110152\",\"display\":\"Destination Role ID\"}}]}},\"who\":{{\"display\":\"{host}\"}},\"requestor\":false,\"network\":{{\"address\":\"{host}\",\"type\":\"1\"}}}},{{\"type\":{{\"coding\":[{{\"system\":\"{DCM}\",\"code\":\"110153\",\"display\":\"Source Role ID\"}}]}},\"who\":{{\"reference\":\"Device/ehr-fhir\"}},\"requestor\":false,\"network\":{{\"address\":\"https://ehr.hospital.example/fhir\",\"type\":\"5\"}}}}],",
        uid = st.user_id,
        fam = st.family,
        giv = st.given,
    );
    out.push_str("\"source\":{\"site\":\"ehr.hospital.example\",\"observer\":{\"reference\":\"Device/ehr-fhir\"},\"type\":[{\"system\":\"http://terminology.hl7.org/CodeSystem/security-source-type\",\"code\":\"4\",\"display\":\"Application Server\"}]},\"entity\":[");
    let mut first = true;
    for p in patients_of(w, a) {
        if !first {
            out.push(',');
        }
        first = false;
        let _ = write!(
            out,
            "{{\"what\":{{\"reference\":\"Patient/{p}\"}},\"type\":{{\"system\":\"{ENTITY_TYPE}\",\"code\":\"1\",\"display\":\"Person\"}},\"role\":{{\"system\":\"{OBJECT_ROLE}\",\"code\":\"1\",\"display\":\"Patient\"}}}}"
        );
    }
    let data = match a.kind {
        Kind::Results => Some(("Observation", "4")),
        Kind::ProblemList => Some(("Condition", "4")),
        Kind::Note => Some(("DocumentReference", "4")),
        Kind::Export => Some(("Binary", "3")),
        _ => None,
    };
    if let Some((res, role)) = data {
        if !first {
            out.push(',');
        }
        first = false;
        let n: u32 = rng.gen_range(100_000..999_999);
        let _ = write!(
            out,
            "{{\"what\":{{\"reference\":\"{res}/{n}\"}},\"type\":{{\"system\":\"{ENTITY_TYPE}\",\"code\":\"2\"}},\"role\":{{\"system\":\"{OBJECT_ROLE}\",\"code\":\"{role}\"}}}}"
        );
    }
    if a.kind == Kind::Search {
        if !first {
            out.push(',');
        }
        let q = search_query(w, rng);
        let _ = write!(
            out,
            "{{\"type\":{{\"system\":\"{ENTITY_TYPE}\",\"code\":\"2\"}},\"role\":{{\"system\":\"{OBJECT_ROLE}\",\"code\":\"24\",\"display\":\"Query\"}},\"query\":\"{}\"}}",
            base64(q.as_bytes())
        );
    }
    out.push_str("]}\n");
}

/// A plausible patient search (name and maybe birth date).
fn search_query(w: &World, rng: &mut ChaCha8Rng) -> String {
    let p = &w.h.patients[rng.gen_range(0..w.h.patients.len())];
    if rng.gen_bool(0.5) {
        format!(
            "Patient?family={}&given={}",
            p.family.to_lowercase(),
            p.given.to_lowercase()
        )
    } else {
        format!(
            "Patient?family={}&birthdate={}",
            p.family.to_lowercase(),
            p.birth
        )
    }
}

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= c.len() {
                s.push(T[(n >> shift & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// The three ancillary systems behind the ATNA feed.
struct AtnaSystem {
    host: &'static str,
    app: &'static str,
    procid: u32,
    /// DICOM `csd-code`/`originalText` attributes, or RFC 3881 `code`/`displayName`.
    dicom_style: bool,
    upper_user: bool,
}

fn atna_system(dept: usize) -> AtnaSystem {
    match dept {
        hosp::LABORATORY => AtnaSystem {
            host: "lis01.hospital.example",
            app: "LIS",
            procid: 2231,
            dicom_style: false,
            upper_user: true,
        },
        hosp::PHARMACY => AtnaSystem {
            host: "rx01.hospital.example",
            app: "PHARMACY",
            procid: 918,
            dicom_style: true,
            upper_user: false,
        },
        _ => AtnaSystem {
            host: "pacs01.hospital.example",
            app: "RIS",
            procid: 4242,
            dicom_style: true,
            upper_user: false,
        },
    }
}

fn coded(out: &mut String, elem: &str, code: &str, system: &str, text: &str, dicom: bool) {
    if dicom {
        let _ = write!(
            out,
            "<{elem} csd-code=\"{code}\" codeSystemName=\"{system}\" originalText=\"{text}\"/>"
        );
    } else {
        let _ = write!(
            out,
            "<{elem} code=\"{code}\" codeSystemName=\"{system}\" displayName=\"{text}\"/>"
        );
    }
}

fn atna(w: &World, a: &Access, rng: &mut ChaCha8Rng, out: &mut String) {
    let st = &w.h.staff[a.user as usize];
    let sys = atna_system(st.dept);
    let host = &w.h.hosts[a.host as usize];
    out.push_str("<85>1 ");
    clock::fmt_utc(a.ts, out);
    let _ = write!(
        out,
        " {} {} {} IHE+RFC-3881 - <?xml version=\"1.0\" encoding=\"UTF-8\"?><AuditMessage><EventIdentification EventActionCode=\"",
        sys.host, sys.app, sys.procid
    );
    let (code, text, act) = match a.kind {
        Kind::Search => ("110112", "Query", "E"),
        Kind::Export | Kind::Print | Kind::File(_) => ("110106", "Export", "R"),
        Kind::Note => ("110110", "Patient Record", "C"),
        Kind::Update => ("110110", "Patient Record", "U"),
        _ => ("110110", "Patient Record", "R"),
    };
    let _ = write!(out, "{act}\" EventDateTime=\"");
    clock::fmt_offset(a.ts, out);
    out.push_str("\" EventOutcomeIndicator=\"0\">");
    coded(out, "EventID", code, "DCM", text, sys.dicom_style);
    out.push_str("</EventIdentification>");
    let uid = if sys.upper_user {
        st.user_id.to_uppercase()
    } else {
        st.user_id.clone()
    };
    let _ = write!(
        out,
        "<ActiveParticipant UserID=\"{uid}\" UserName=\"{}, {}\" UserIsRequestor=\"true\" NetworkAccessPointID=\"{host}\" NetworkAccessPointTypeCode=\"1\">",
        st.family, st.given
    );
    coded(
        out,
        "RoleIDCode",
        "110153",
        "DCM",
        "Source Role ID",
        sys.dicom_style,
    );
    let _ = write!(
        out,
        "</ActiveParticipant><ActiveParticipant UserID=\"{}-APP-01\" UserIsRequestor=\"false\" NetworkAccessPointID=\"{}\" NetworkAccessPointTypeCode=\"1\">",
        sys.app, sys.host
    );
    coded(
        out,
        "RoleIDCode",
        "110150",
        "DCM",
        "Application",
        sys.dicom_style,
    );
    let _ = write!(
        out,
        "</ActiveParticipant><AuditSourceIdentification AuditEnterpriseSiteID=\"HOSP-MAIN\" AuditSourceID=\"{}\">",
        sys.host
    );
    if sys.dicom_style {
        out.push_str("<AuditSourceTypeCode csd-code=\"4\" codeSystemName=\"DCM\" originalText=\"Application Server Process\"/>");
    } else {
        out.push_str("<AuditSourceTypeCode code=\"4\"/>");
    }
    out.push_str("</AuditSourceIdentification>");
    for p in patients_of(w, a) {
        let _ = write!(
            out,
            "<ParticipantObjectIdentification ParticipantObjectID=\"{p}^^^&amp;{PATIENT_OID}&amp;ISO\" ParticipantObjectTypeCode=\"1\" ParticipantObjectTypeCodeRole=\"1\">"
        );
        coded(
            out,
            "ParticipantObjectIDTypeCode",
            "2",
            "RFC-3881",
            "Patient Number",
            sys.dicom_style,
        );
        out.push_str("</ParticipantObjectIdentification>");
    }
    match a.kind {
        Kind::Search => {
            let q = search_query(w, rng);
            let n: u32 = rng.gen_range(10_000..99_999);
            let _ = write!(
                out,
                "<ParticipantObjectIdentification ParticipantObjectID=\"Q{n}\" ParticipantObjectTypeCode=\"2\" ParticipantObjectTypeCodeRole=\"24\">"
            );
            coded(
                out,
                "ParticipantObjectIDTypeCode",
                "ITI-21",
                "IHE Transactions",
                "Patient Demographics Query",
                sys.dicom_style,
            );
            let _ = write!(out, "<ParticipantObjectQuery>{}</ParticipantObjectQuery></ParticipantObjectIdentification>", base64(q.as_bytes()));
        }
        Kind::Results | Kind::Note if st.dept == hosp::RADIOLOGY => {
            let n: u32 = rng.gen_range(100_000..999_999);
            let _ = write!(
                out,
                "<ParticipantObjectIdentification ParticipantObjectID=\"1.2.840.99999.3.{n}\" ParticipantObjectTypeCode=\"2\" ParticipantObjectTypeCodeRole=\"3\">"
            );
            coded(
                out,
                "ParticipantObjectIDTypeCode",
                "110180",
                "DCM",
                "Study Instance UID",
                sys.dicom_style,
            );
            out.push_str("</ParticipantObjectIdentification>");
        }
        _ => {}
    }
    out.push_str("</AuditMessage>\n");
}

fn epic(w: &World, a: &Access, out: &mut String) {
    let st = &w.h.staff[a.user as usize];
    clock::fmt_local_plain(a.ts, out);
    let (metric, access_action) = epic_metric(a.kind);
    let patient = if a.patient != NONE {
        w.h.patients[a.patient as usize].id.as_str()
    } else {
        ""
    };
    let records = match a.kind {
        Kind::Search => String::new(),
        _ => a.records.to_string(),
    };
    let _ = writeln!(
        out,
        "|{metric}|{}|{patient}|{}|{records}|{access_action}",
        w.h.hosts[a.host as usize],
        st.user_id.to_uppercase()
    );
}

#[derive(Serialize)]
struct FileLine<'a> {
    ts: &'a str,
    user: &'a str,
    action: &'static str,
    path: &'a str,
    bytes: u64,
    media: &'static str,
    host: &'a str,
    records: u32,
}

fn file_event(w: &World, a: &Access, out: &mut String) {
    let (Kind::File(media), Some(Aux::File { path, bytes })) =
        (a.kind, (a.aux != NONE).then(|| &w.aux[a.aux as usize]))
    else {
        unreachable!("file events carry a media and a path");
    };
    let mut ts = String::new();
    clock::fmt_utc(a.ts, &mut ts);
    let line = FileLine {
        ts: &ts,
        user: &w.h.staff[a.user as usize].user_id,
        action: "file_write",
        path,
        bytes: *bytes,
        media: media.as_str(),
        host: &w.h.hosts[a.host as usize],
        records: a.records,
    };
    out.push_str(&serde_json::to_string(&line).expect("serialises"));
    out.push('\n');
}

/// Writes `staff.csv`, `patients.csv` and `care.csv` with the contract's columns.
pub fn write_reference(w: &World, out: &Path) -> Result<()> {
    let mut s = csv::Writer::from_path(out.join("staff.csv"))?;
    s.write_record(crate::reference::roster::COLUMNS)?;
    for st in &w.h.staff {
        s.write_record([
            st.user_id.as_str(),
            st.given,
            st.family,
            st.role.roster_name(w.opts.dialect()),
            DEPTS[st.dept].name,
            &w.h.address(st.household),
            w.h.postcode(st.household),
            &st.hire.to_string(),
            &st.termination.map(|d| d.to_string()).unwrap_or_default(),
        ])?;
    }
    s.flush()?;
    let mut p = csv::Writer::from_path(out.join("patients.csv"))?;
    p.write_record(crate::reference::directory::COLUMNS)?;
    for pt in &w.h.patients {
        p.write_record([
            pt.id.as_str(),
            pt.given,
            pt.family,
            &pt.birth.to_string(),
            &w.h.address(pt.household),
            w.h.postcode(pt.household),
            &pt.deceased
                .map(|d| clock::local_date(d).to_string())
                .unwrap_or_default(),
            if pt.vip { "true" } else { "false" },
            pt.employee
                .map(|s| w.h.staff[s as usize].user_id.as_str())
                .unwrap_or(""),
        ])?;
    }
    p.flush()?;
    let mut c = csv::Writer::from_path(out.join("care.csv"))?;
    c.write_record(["patient_id", "department", "user_id", "start", "end"])?;
    for r in &w.care.rows {
        c.write_record([
            w.h.patients[r.patient as usize].id.as_str(),
            DEPTS[r.dept].name,
            r.user
                .map(|u| w.h.staff[u as usize].user_id.as_str())
                .unwrap_or(""),
            &clock::fmt_utc_secs(r.start),
            &if r.end == super::care::ONGOING {
                String::new()
            } else {
                clock::fmt_utc_secs(r.end)
            },
        ])?;
    }
    c.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::base64;

    #[test]
    fn base64_pads() {
        assert_eq!(
            base64(b"Patient?family=smith"),
            "UGF0aWVudD9mYW1pbHk9c21pdGg="
        );
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"abc"), "YWJj");
    }
}
