//! A small crafted hospital for end-to-end tests: two weeks of routine work by a handful
//! of staff, known insiders, and known innocent look-alikes, written in several formats.

use chrono::{Duration, NaiveDate, TimeZone};
use chrono_tz::America::Chicago;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

pub const START: (i32, u32, u32) = (2024, 3, 1);

/// The crafted hospital's input files, relative to its folder; the main log first.
pub const INPUTS: [&str; 4] = [
    "events/canonical.jsonl",
    "atna/ehr.log",
    "fhir/audit.ndjson",
    "epic/access.txt",
];

/// Every alert the crafted hospital must produce: (detector, user).
pub const EXPECTED: &[(&str, &str)] = &[
    ("after-hours", "n_bob"),
    ("bulk-export", "h_gina"),
    ("coworker", "d_carol"),
    ("deceased-patient", "b_hank"),
    ("export-hoarding", "h_gina"),
    ("export-then-copy", "h_gina"),
    ("family", "n_alice"),
    ("neighbour", "r_dave"),
    // The same forty searches are also far above r_dave's busiest hour: one episode, one
    // alert, whose reasons say so.
    ("search-burst", "r_dave"),
    ("self-access", "n_alice"),
    ("terminated-account", "t_frank"),
    ("unexplained-access", "d_carol"),
    ("vip-without-care", "n_erin"),
];

struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

fn day(d: i64) -> NaiveDate {
    NaiveDate::from_ymd_opt(START.0, START.1, START.2).unwrap() + Duration::days(d)
}

/// RFC 3339 UTC of a local Chicago time.
fn at(d: i64, h: u32, m: u32, s: u32) -> String {
    let naive = day(d).and_hms_opt(h, m, s).unwrap();
    // Times skipped by the spring-forward change move an hour later, as clocks do.
    let t = Chicago
        .from_local_datetime(&naive)
        .earliest()
        .or_else(|| {
            Chicago
                .from_local_datetime(&(naive + Duration::hours(1)))
                .earliest()
        })
        .unwrap();
    t.with_timezone(&chrono::Utc)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn canonical(ts: &str, user: &str, action: &str, patient: Option<&str>, records: u64) -> String {
    let p = patient
        .map(|p| format!(",\"patient\":\"{p}\""))
        .unwrap_or_default();
    format!("{{\"ts\":\"{ts}\",\"user\":\"{user}\",\"action\":\"{action}\"{p},\"records\":{records},\"host\":\"WS-1\"}}\n")
}

/// A chart view at a local time of day `d`.
fn view(d: i64, h: u32, m: u32, user: &str, patient: &str) -> String {
    canonical(&at(d, h, m, 0), user, "view", Some(patient), 1)
}

fn fhir_read(ts: &str, user: &str, patient: &str) -> String {
    format!(
        concat!(
            r#"{{"resourceType":"AuditEvent","type":{{"system":"http://terminology.hl7.org/CodeSystem/audit-event-type","code":"rest"}},"#,
            r#""subtype":[{{"system":"http://hl7.org/fhir/restful-interaction","code":"read"}}],"action":"R","recorded":"{ts}","outcome":"0","#,
            r#""agent":[{{"who":{{"identifier":{{"value":"{user}"}}}},"requestor":true,"network":{{"address":"10.0.0.5","type":"2"}}}}],"#,
            r#""source":{{"observer":{{"reference":"Device/ehr"}}}},"#,
            r#""entity":[{{"what":{{"reference":"Patient/{patient}"}},"type":{{"code":"1"}},"role":{{"code":"1"}}}}]}}"#,
            "\n"
        ),
        ts = ts,
        user = user,
        patient = patient
    )
}

fn atna_read(ts: &str, user: &str, patient: &str) -> String {
    format!(
        concat!(
            "<85>1 {ts} ehr01.hospital.example EHR 4242 IHE+RFC-3881 - ",
            r#"<?xml version="1.0" encoding="UTF-8"?><AuditMessage><EventIdentification EventActionCode="R" EventDateTime="{ts}" EventOutcomeIndicator="0">"#,
            r#"<EventID csd-code="110110" codeSystemName="DCM" originalText="Patient Record"/></EventIdentification>"#,
            r#"<ActiveParticipant UserID="{user}" UserIsRequestor="true" NetworkAccessPointID="WS-4N-12" NetworkAccessPointTypeCode="1"/>"#,
            r#"<AuditSourceIdentification AuditSourceID="ehr01"/>"#,
            r#"<ParticipantObjectIdentification ParticipantObjectID="{patient}^^^&amp;1.2.840.99999.1&amp;ISO" ParticipantObjectTypeCode="1" ParticipantObjectTypeCodeRole="1">"#,
            r#"<ParticipantObjectIDTypeCode csd-code="2" codeSystemName="RFC-3881" originalText="Patient Number"/></ParticipantObjectIdentification></AuditMessage>"#,
            "\n"
        ),
        ts = ts,
        user = user,
        patient = patient
    )
}

/// Writes the crafted hospital into `dir` and returns the config path.
pub fn write_hospital(dir: &Path) -> PathBuf {
    let w = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    w(
        "staff.csv",
        "user_id,given_name,family_name,role,department,address,postcode,hire_date,termination_date\n\
         n_alice,Alice,Nguyen,nurse,Cardiology,12 Elm St,01101,2019-01-01,\n\
         n_bob,Bob,Smith,nurse,Cardiology,7 Oak Ave,01102,2019-01-01,\n\
         d_carol,Carol,Garcia,physician,Cardiology,3 Pine Rd,01103,2015-01-01,\n\
         n_ivy,Ivy,Smith,nurse,Cardiology,88 Cedar Ct,01105,2020-01-01,\n\
         r_dave,Dave,Lee,registration,Registration,40 Elm Street,01101,2018-01-01,\n\
         n_erin,Erin,Brown,nurse,ICU,9 Birch Ln,01104,2017-01-01,\n\
         t_frank,Frank,Wilson,technician,Radiology,5 Ash Pl,01106,2016-01-01,2024-03-09\n\
         h_gina,Gina,Taylor,him_analyst,Health Information,2 Fir Ter,01107,2016-01-01,\n\
         b_hank,Hank,Moore,billing,Billing,6 Yew Rd,01108,2016-01-01,\n",
    );
    let mut patients = String::from(
        "patient_id,given_name,family_name,birth_date,address,postcode,deceased_date,vip,employee_user_id\n\
         P001,Minh,Nguyen,1950-02-03,12 Elm Street,01101,,false,\n\
         P002,John,Smith,1961-07-08,55 Maple Dr,01109,,false,\n\
         P003,Bob,Smith,1980-01-01,7 Oak Ave,01102,,false,n_bob\n\
         P004,Famous,Person,1970-05-05,1 Hill Rd,01110,,true,\n\
         P005,Nora,Hill,1955-09-09,44 Elm St,01101,,false,\n\
         P006,Old,Timer,1930-01-01,9 Lake Rd,01111,2024-01-05,false,\n\
         P007,Alice,Nguyen,1985-04-04,12 Elm St,01101,,false,n_alice\n",
    );
    let mut care = String::from(
        "patient_id,department,user_id,start,end\n\
         P002,Cardiology,,2024-02-20T00:00:00Z,\n\
         P003,Cardiology,,2024-03-02T10:00:00Z,2024-03-05T10:00:00Z\n\
         P004,Cardiology,d_carol,2024-03-01T00:00:00Z,\n\
         P006,Cardiology,,2023-12-20T00:00:00Z,2024-01-05T00:00:00Z\n",
    );
    for i in 100..300 {
        let _ = writeln!(
            patients,
            "P{i},Pat,Doe{i},1970-01-01,{i} River Rd,02000,,false,"
        );
        let dept = if i < 150 {
            "Cardiology"
        } else if i < 200 {
            "ICU"
        } else {
            "Oncology"
        };
        let _ = writeln!(care, "P{i},{dept},,2024-02-01T00:00:00Z,");
    }
    for i in 300..340 {
        // Patients with no care anywhere: only the sweep touches them.
        let _ = writeln!(
            patients,
            "P{i},Pat,Roe{i},1970-01-01,{i} Bay Rd,02001,,false,"
        );
    }
    w("patients.csv", &patients);
    w("care.csv", &care);

    let mut rng = Lcg(42);
    let mut canon = String::new();
    for d in 0..14 {
        // Cardiology day staff: charts of Cardiology patients.
        for user in ["n_alice", "n_bob", "d_carol", "n_ivy"] {
            for _ in 0..15 {
                let p = format!("P{}", 100 + rng.next(50));
                let ts = at(
                    d,
                    8 + rng.next(8) as u32,
                    rng.next(60) as u32,
                    rng.next(60) as u32,
                );
                canon.push_str(&canonical(&ts, user, "view", Some(&p), 1));
            }
        }
        // ICU night nurse: every night 23:00-04:59.
        for _ in 0..15 {
            let p = format!("P{}", 150 + rng.next(50));
            let h = [23, 0, 1, 2, 3, 4][rng.next(6) as usize];
            let ts = at(d, h, rng.next(60) as u32, rng.next(60) as u32);
            canon.push_str(&canonical(&ts, "n_erin", "view", Some(&p), 1));
        }
        // Registration: searches and check-ins of patients under care somewhere.
        for _ in 0..20 {
            let ts = at(
                d,
                8 + rng.next(8) as u32,
                rng.next(60) as u32,
                rng.next(60) as u32,
            );
            canon.push_str(&canonical(&ts, "r_dave", "search", None, 1));
            let p = format!("P{}", 100 + rng.next(200));
            canon.push_str(&canonical(&ts, "r_dave", "view", Some(&p), 1));
        }
        // Frank works until he leaves on day 8.
        if d < 8 {
            for _ in 0..10 {
                let p = format!("P{}", 100 + rng.next(100));
                let ts = at(d, 9 + rng.next(6) as u32, rng.next(60) as u32, 0);
                canon.push_str(&canonical(&ts, "t_frank", "view", Some(&p), 1));
            }
        }
    }
    // Billing's weekly report on Mondays (days 3 and 10): innocent bulk export.
    canon.push_str(&canonical(&at(3, 9, 0, 0), "b_hank", "export", None, 300));
    canon.push_str(&canonical(&at(10, 9, 0, 0), "b_hank", "export", None, 300));
    // Innocent look-alikes: ivy (a Smith) opens John Smith, under Cardiology's care;
    // alice opens her coworker Bob while he is admitted to Cardiology; carol (the VIP's
    // physician) opens the VIP; gina (HIM) opens the deceased patient in the grace period.
    canon.push_str(&view(9, 10, 0, "n_ivy", "P002"));
    canon.push_str(&view(3, 11, 0, "n_alice", "P003"));
    canon.push_str(&view(9, 11, 0, "d_carol", "P004"));
    canon.push_str(&view(9, 12, 0, "h_gina", "P006"));

    // Insiders.
    // coworker: carol opens Bob after his discharge.
    canon.push_str(&view(10, 14, 0, "d_carol", "P003"));
    // self: alice opens her own chart.
    canon.push_str(&view(11, 13, 0, "n_alice", "P007"));
    // neighbour: dave opens a patient on his street.
    canon.push_str(&view(11, 15, 0, "r_dave", "P005"));
    // deceased: hank opens a patient dead for two months.
    canon.push_str(&view(12, 10, 0, "b_hank", "P006"));
    // after hours: day-shift bob opens six patients at 2am.
    for i in 0..6 {
        canon.push_str(&view(12, 2, 5 * i, "n_bob", &format!("P{}", 200 + i)));
    }
    // curiosity sweep: carol opens 25 patients nobody treats.
    for i in 0..25 {
        canon.push_str(&view(12, 15, i, "d_carol", &format!("P{}", 300 + i)));
    }
    // search burst: dave runs 40 searches in five minutes.
    for i in 0..40 {
        canon.push_str(&canonical(
            &at(12, 11, i / 8, (i % 8) * 7),
            "r_dave",
            "search",
            None,
            1,
        ));
    }
    // bulk export by HIM, copied to a USB stick twenty minutes later.
    canon.push_str(&canonical(&at(12, 16, 0, 0), "h_gina", "export", None, 900));
    canon.push_str(&format!(
        "{{\"ts\":\"{}\",\"user\":\"h_gina\",\"action\":\"file_write\",\"path\":\"/media/gina/USB/export.csv\",\"bytes\":5242880,\"media\":\"removable\",\"host\":\"WS-1\",\"records\":900}}\n",
        at(12, 16, 20, 0)
    ));
    // Innocent: routine USB use by a technician, no export before it.
    canon.push_str(&format!(
        "{{\"ts\":\"{}\",\"user\":\"t_frank\",\"action\":\"file_write\",\"path\":\"/media/frank/USB/scan.dcm\",\"bytes\":1048576,\"media\":\"removable\",\"host\":\"WS-7\"}}\n",
        at(5, 13, 0, 0)
    ));
    // Logs are written in time order, as EHRs write them.
    let mut lines: Vec<&str> = canon.lines().collect();
    lines.sort_by_key(|l| l[7..27].to_string());
    w("events/canonical.jsonl", &(lines.join("\n") + "\n"));

    // family, via ATNA syslog: alice opens her household member.
    let mut atna = atna_read(&at(11, 9, 30, 0), "n_alice", "P001");
    atna.push_str(&atna_read(&at(11, 9, 45, 0), "n_ivy", "P105"));
    w("atna/ehr.log", &atna);
    // VIP, via FHIR: the ICU night nurse opens the VIP, treated in Cardiology.
    let fhir = fhir_read(&at(12, 3, 0, 0), "n_erin", "P004")
        + &fhir_read(&at(12, 9, 1, 0), "n_ivy", "P110");
    w("fhir/audit.ndjson", &fhir);
    // terminated, via an Epic-like pipe-delimited export with local times.
    let epic = format!(
        "ACCESS_TIME|METRIC_NAME|WORKSTATION_ID|PAT_MRN_ID|USER_ID\n\
         {}|AN EXISTING PATIENT IS SELECTED FROM PATIENT LOOKUP|WS-9|P111|T_FRANK\n\
         {}|THE PROBLEM LIST IS VIEWED|WS-2|P112|N_IVY\n",
        day(12)
            .and_hms_opt(8, 30, 0)
            .unwrap()
            .format("%Y-%m-%d %H:%M:%S"),
        day(12)
            .and_hms_opt(8, 31, 0)
            .unwrap()
            .format("%Y-%m-%d %H:%M:%S"),
    );
    w("epic/access.txt", &epic);

    let config = r#"
[reference]
staff = "staff.csv"
patients = "patients.csv"
care = "care.csv"

[engine]
timezone = "America/Chicago"
learning_days = 7

[[sources]]
name = "canonical"
type = "file"
paths = ["events/*.jsonl"]
format = "canonical"

[[sources]]
name = "atna"
type = "file"
paths = ["atna/*.log"]
format = "atna-syslog"

[[sources]]
name = "fhir"
type = "file"
paths = ["fhir/*.ndjson"]
format = "fhir-audit"

[[sources]]
name = "epic"
type = "file"
paths = ["epic/*.txt"]
format = "csv"
delimiter = "|"
[sources.fields]
ts = "ACCESS_TIME"
user = "USER_ID"
patient = "PAT_MRN_ID"
action = "METRIC_NAME"
host = "WORKSTATION_ID"
[sources.actions]
"AN EXISTING PATIENT IS SELECTED FROM PATIENT LOOKUP" = "view"
"THE PROBLEM LIST IS VIEWED" = "view"

[[sinks]]
type = "file"
path = "alerts.ndjson"
format = "json"

[state]
dir = "state"
"#;
    w("phiwatch.toml", config);
    dir.join("phiwatch.toml")
}

/// The crafted hospital set up for `phiwatch run` tests: sources go idle after one quiet
/// second and state is snapshotted every second; `extra` is appended to the config.
pub fn write_hospital_for_run(dir: &Path, extra: &str) -> PathBuf {
    let config = write_hospital(dir);
    engine_setting(&config, "idle_source_secs = 1");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("dir = \"state\"", "dir = \"state\"\nsnapshot_secs = 1");
    std::fs::write(&config, text + extra).unwrap();
    config
}

/// Adds `line` (`key = value`) to the `[engine]` table of the crafted hospital's config.
pub fn engine_setting(config: &Path, line: &str) {
    let text = std::fs::read_to_string(config)
        .unwrap()
        .replace("learning_days = 7", &format!("learning_days = 7\n{line}"));
    std::fs::write(config, text).unwrap();
}

/// Writes `phiwatch.toml` for a hospital folder holding `staff.csv`, `patients.csv`,
/// `care.csv` and canonical event lines under `events/*.jsonl`, with alerts to
/// `alerts.ndjson`; `engine` is the body of its `[engine]` table. Returns its path.
pub fn write_canonical_config(dir: &Path, engine: &str) -> PathBuf {
    let config = format!(
        r#"
[reference]
staff = "staff.csv"
patients = "patients.csv"
care = "care.csv"

[engine]
{engine}

[[sources]]
name = "canonical"
type = "file"
paths = ["events/*.jsonl"]
format = "canonical"

[[sinks]]
type = "file"
path = "alerts.ndjson"
format = "json"

[state]
dir = "state"
"#
    );
    std::fs::write(dir.join("phiwatch.toml"), config).unwrap();
    dir.join("phiwatch.toml")
}
