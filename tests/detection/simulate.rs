//! The simulator's promises: deterministic output, every innocent access explained,
//! labels that match the written logs, contract columns.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, TimeZone, Utc};
use phiwatch::event::Action;
use phiwatch::score::Labels;
use phiwatch::simulate::{simulate, simulate_with_trace, Reason, SimOptions, SimSummary, Trace};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn small(seed: u64) -> SimOptions {
    SimOptions {
        seed,
        staff: 120,
        days: 14,
        ..SimOptions::default()
    }
}

struct Sim {
    dir: tempfile::TempDir,
    summary: SimSummary,
    trace: Trace,
    labels: Labels,
}

/// One small hospital shared by the tests that only read it.
fn shared() -> &'static Sim {
    static SIM: OnceLock<Sim> = OnceLock::new();
    SIM.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let (summary, trace) = simulate_with_trace(&small(7), dir.path()).unwrap();
        let labels = Labels::load(&dir.path().join("labels.json")).unwrap();
        Sim {
            dir,
            summary,
            trace,
            labels,
        }
    })
}

fn hash_tree(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.insert(rel, hex::encode(Sha256::digest(std::fs::read(&p).unwrap())));
            }
        }
    }
    out
}

#[test]
fn same_seed_same_bytes_other_seed_differs() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let c = tempfile::tempdir().unwrap();
    simulate(&small(11), a.path()).unwrap();
    simulate(&small(11), b.path()).unwrap();
    simulate(&small(12), c.path()).unwrap();
    let (ha, hb, hc) = (
        hash_tree(a.path()),
        hash_tree(b.path()),
        hash_tree(c.path()),
    );
    assert!(ha.len() > 50, "{} files", ha.len());
    assert_eq!(ha, hb);
    assert_eq!(ha.keys().collect::<Vec<_>>(), hc.keys().collect::<Vec<_>>());
    for f in [
        "staff.csv",
        "patients.csv",
        "care.csv",
        "labels.json",
        "fhir/2026-03-05.ndjson",
    ] {
        assert_ne!(ha[f], hc[f], "{f} should differ between seeds");
    }
    // phiwatch.toml names the seed, so it differs too; the daily layout does not.
    assert!(ha.contains_key("epic/2026-03-15.csv"));
    assert!(!ha.contains_key("epic/2026-03-16.csv"));
}

fn read_csv(path: &Path) -> (Vec<String>, Vec<HashMap<String, String>>) {
    let mut r = csv::Reader::from_path(path).unwrap();
    let headers: Vec<String> = r.headers().unwrap().iter().map(str::to_string).collect();
    let rows = r
        .records()
        .map(|rec| {
            let rec = rec.unwrap();
            headers
                .iter()
                .cloned()
                .zip(rec.iter().map(str::to_string))
                .collect()
        })
        .collect();
    (headers, rows)
}

#[test]
fn reference_csvs_have_contract_columns() {
    let s = shared();
    let cols = |f: &str| read_csv(&s.dir.path().join(f)).0.join(",");
    assert_eq!(
        cols("staff.csv"),
        "user_id,given_name,family_name,role,department,address,postcode,hire_date,termination_date"
    );
    assert_eq!(
        cols("patients.csv"),
        "patient_id,given_name,family_name,birth_date,address,postcode,deceased_date,vip,employee_user_id"
    );
    assert_eq!(cols("care.csv"), "patient_id,department,user_id,start,end");
    let (_, patients) = read_csv(&s.dir.path().join("patients.csv"));
    assert_eq!(patients.len(), s.summary.patients);
    assert!(patients.iter().any(|p| p["vip"] == "true"));
    assert!(patients.iter().any(|p| !p["deceased_date"].is_empty()));
    assert!(patients.iter().any(|p| !p["employee_user_id"].is_empty()));
    // Households: about 2.5 people per address.
    let mut addresses: HashMap<(String, String), usize> = HashMap::new();
    for p in &patients {
        *addresses
            .entry((p["address"].clone(), p["postcode"].clone()))
            .or_default() += 1;
    }
    let per = patients.len() as f64 / addresses.len() as f64;
    assert!((1.8..3.0).contains(&per), "{per} patients per address");
}

/// How many written lines have each (source, user, ts in ms).
type LineCounts = BTreeMap<(String, String, i64), usize>;

/// department, user_id, start, end (None = ongoing).
type CareRow<'a> = (&'a str, &'a str, DateTime<Utc>, Option<DateTime<Utc>>);

fn parse_rfc3339(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn parse_local(s: &str) -> DateTime<Utc> {
    let n = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap();
    chrono_tz::America::Chicago
        .from_local_datetime(&n)
        .earliest()
        .unwrap()
        .with_timezone(&Utc)
}

/// (source, lower-case user, ts) of every valid line, read back from the files with
/// simple per-format extraction; and the number of lines that are not valid.
fn read_logs(root: &Path) -> (LineCounts, BTreeMap<String, u64>) {
    let mut seen: BTreeMap<(String, String, i64), usize> = BTreeMap::new();
    let mut bad: BTreeMap<String, u64> = BTreeMap::new();
    for (dir, source) in [
        ("fhir", "ehr-fhir"),
        ("atna", "ancillary-atna"),
        ("epic", "epic-access"),
        ("files", "endpoint-files"),
    ] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(root.join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            for (i, line) in text.lines().enumerate() {
                let got: Option<(String, DateTime<Utc>)> = match dir {
                    "fhir" | "files" => serde_json::from_str::<serde_json::Value>(line)
                        .ok()
                        .and_then(|v| {
                            if dir == "files" {
                                let ts = v["ts"].as_str()?;
                                DateTime::parse_from_rfc3339(ts).ok()?;
                                return Some((v["user"].as_str()?.to_string(), parse_rfc3339(ts)));
                            }
                            let ts = v["recorded"].as_str()?;
                            let agent = v["agent"]
                                .as_array()?
                                .iter()
                                .find(|a| a["requestor"] == true)?;
                            Some((
                                agent["who"]["identifier"]["value"].as_str()?.to_string(),
                                parse_rfc3339(ts),
                            ))
                        }),
                    "atna" => {
                        if line.starts_with("<85>1 ") && line.ends_with("</AuditMessage>") {
                            let ts = line.split(' ').nth(1).unwrap();
                            let u = line
                                .split("UserID=\"")
                                .nth(1)
                                .unwrap()
                                .split('"')
                                .next()
                                .unwrap();
                            assert!(line.contains(" IHE+RFC-3881 - <?xml"), "{line}");
                            Some((u.to_string(), parse_rfc3339(ts)))
                        } else {
                            None
                        }
                    }
                    _ => {
                        if i == 0 {
                            assert_eq!(line, "ACCESS_TIME|METRIC_NAME|WORKSTATION_ID|PAT_MRN_ID|USER_ID|RECORD_COUNT|ACCESS_ACTION");
                            continue;
                        }
                        let cols: Vec<&str> = line.split('|').collect();
                        let ok = cols.len() == 7
                            && !cols[4].is_empty()
                            && NaiveDateTime::parse_from_str(cols[0], "%Y-%m-%d %H:%M:%S").is_ok();
                        if ok {
                            assert_eq!(cols[4], cols[4].to_uppercase());
                        }
                        ok.then(|| (cols[4].to_string(), parse_local(cols[0])))
                    }
                };
                match got {
                    Some((u, ts)) => {
                        *seen
                            .entry((source.to_string(), u.to_lowercase(), ts.timestamp_millis()))
                            .or_default() += 1
                    }
                    None => *bad.entry(source.to_string()).or_default() += 1,
                }
            }
        }
    }
    (seen, bad)
}

#[test]
fn trace_and_labels_match_the_written_logs() {
    let s = shared();
    let (mut logs, bad) = read_logs(s.dir.path());
    let meta = &s.labels.metadata;
    assert_eq!(bad.values().sum::<u64>(), meta.malformed_lines);
    assert_eq!(bad, meta.malformed_by_source);
    assert!(
        meta.malformed_by_source.values().all(|&n| n >= 3),
        "{:?}",
        meta.malformed_by_source
    );
    assert_eq!(meta.events, s.summary.events);
    // Every traced access is one written line (Epic keeps whole seconds only).
    for a in &s.trace.accesses {
        let mut ms = a.ts.timestamp_millis();
        if a.source == "epic-access" {
            ms -= ms.rem_euclid(1000);
        }
        let k = (a.source.to_string(), a.user.to_lowercase(), ms);
        let n = logs
            .get_mut(&k)
            .unwrap_or_else(|| panic!("no written line for {a:?}"));
        *n -= 1;
        if *n == 0 {
            logs.remove(&k);
        }
    }
    assert!(
        logs.is_empty(),
        "lines not in the trace: {:?}",
        logs.iter().take(3).collect::<Vec<_>>()
    );
    let total: u64 = meta.events.values().sum();
    assert_eq!(total as usize, s.trace.accesses.len());
}

#[test]
fn every_innocent_access_is_explained() {
    check_explained(shared());
    // A second hospital, other seed and size, so the invariant is not one seed's luck.
    let dir = tempfile::tempdir().unwrap();
    let opts = SimOptions {
        seed: 3,
        staff: 90,
        days: 12,
        ..SimOptions::default()
    };
    let (summary, trace) = simulate_with_trace(&opts, dir.path()).unwrap();
    let labels = Labels::load(&dir.path().join("labels.json")).unwrap();
    check_explained(&Sim {
        dir,
        summary,
        trace,
        labels,
    });
}

fn check_explained(s: &Sim) {
    let (_, staff) = read_csv(&s.dir.path().join("staff.csv"));
    let dept: HashMap<String, String> = staff
        .iter()
        .map(|r| (r["user_id"].clone(), r["department"].clone()))
        .collect();
    let terminated: HashMap<String, NaiveDate> = staff
        .iter()
        .filter(|r| !r["termination_date"].is_empty())
        .map(|r| (r["user_id"].clone(), r["termination_date"].parse().unwrap()))
        .collect();
    let (_, care) = read_csv(&s.dir.path().join("care.csv"));
    let mut rows: HashMap<&str, Vec<CareRow>> = HashMap::new();
    for r in &care {
        let end = (!r["end"].is_empty()).then(|| parse_rfc3339(&r["end"]));
        rows.entry(r["patient_id"].as_str()).or_default().push((
            r["department"].as_str(),
            r["user_id"].as_str(),
            parse_rfc3339(&r["start"]),
            end,
        ));
    }
    let covers = |p: &str, ts: DateTime<Utc>, d: Option<&str>, u: &str| {
        rows.get(p).is_some_and(|v| {
            v.iter().any(|(rd, ru, st, en)| {
                *st <= ts && en.is_none_or(|e| ts <= e) && d.is_none_or(|d| *rd == d || *ru == u)
            })
        })
    };
    let ended_within = |p: &str, ts: DateTime<Utc>, days: i64| {
        rows.get(p).is_some_and(|v| {
            v.iter().any(|(_, _, _, en)| {
                en.is_some_and(|e| e <= ts && ts - e <= chrono::Duration::days(days))
            })
        })
    };
    let mut by_reason: BTreeMap<String, usize> = BTreeMap::new();
    let mut insider_events: BTreeMap<usize, u64> = BTreeMap::new();
    for a in &s.trace.accesses {
        let d = dept[&a.user].as_str();
        let name = format!("{:?}", a.reason)
            .split([' ', '{'])
            .next()
            .unwrap()
            .to_string();
        *by_reason.entry(name).or_default() += 1;
        let ok = match &a.reason {
            Reason::Insider { scenario, label } => {
                let l = &s.labels.insiders[*label];
                *insider_events.entry(*label).or_default() += 1;
                l.user == a.user && &l.scenario == scenario && l.start <= a.ts && a.ts <= l.end
            }
            Reason::Care => {
                !a.patients.is_empty()
                    && a.patients.iter().all(|p| covers(p, a.ts, Some(d), &a.user))
            }
            Reason::UnrecordedConsult => {
                ["Radiology", "Laboratory", "Pharmacy"].contains(&d)
                    && covers(&a.patients[0], a.ts, None, "")
                    && !covers(&a.patients[0], a.ts, Some(d), &a.user)
            }
            Reason::HimRelease => {
                d == "Health Information Management" && ended_within(&a.patients[0], a.ts, 22)
            }
            Reason::BillingFollowup => d == "Billing" && ended_within(&a.patients[0], a.ts, 31),
            Reason::BillingReport => {
                d == "Billing"
                    && a.action == Action::Export
                    && a.records >= 300
                    && a.patients.is_empty()
            }
            Reason::ReportCopy => d == "Billing" && a.action == Action::FileWrite,
            Reason::Lookup => a.action == Action::Search && a.patients.is_empty(),
            Reason::RoutineFile => a.action == Action::FileWrite,
            // Back on a patient of the same stay: the department is on a row of that
            // patient within a few days, another department covers the time.
            Reason::ConsultOutsideWindow => {
                ["Radiology", "Laboratory", "Pharmacy"].contains(&d)
                    && covers(&a.patients[0], a.ts, None, "")
                    && !covers(&a.patients[0], a.ts, Some(d), &a.user)
            }
            Reason::PeriodicExport => {
                d == "Health Information Management"
                    && matches!(a.action, Action::Export | Action::FileWrite)
                    && a.records >= 200
            }
            // Month and quarter close: at a turn of the month, by billing or records.
            Reason::PeriodEndExport => {
                let day =
                    a.ts.with_timezone(&chrono_tz::America::Chicago)
                        .date_naive()
                        .day();
                ["Billing", "Health Information Management"].contains(&d)
                    && matches!(a.action, Action::Export | Action::FileWrite)
                    && a.records >= 240
                    && (day <= 5 || day >= 24)
            }
        };
        assert!(ok, "unexplained access: {a:?}");
        if !matches!(a.reason, Reason::Insider { .. }) {
            if let Some(t) = terminated.get(&a.user) {
                assert!(
                    a.ts.with_timezone(&chrono_tz::America::Chicago)
                        .date_naive()
                        < *t,
                    "{a:?} after termination"
                );
            }
        }
    }
    // The look-alikes exist, and are a small share.
    let total = s.trace.accesses.len();
    let consults = by_reason["UnrecordedConsult"];
    assert!(consults > 0 && consults * 50 < total, "{by_reason:?}");
    for r in [
        "Care",
        "HimRelease",
        "BillingFollowup",
        "BillingReport",
        "Lookup",
        "RoutineFile",
        "ConsultOutsideWindow",
        "PeriodicExport",
        "Insider",
    ] {
        assert!(by_reason.contains_key(r), "no {r} access: {by_reason:?}");
    }
    for (i, l) in s.labels.insiders.iter().enumerate() {
        assert_eq!(
            insider_events.get(&i).copied().unwrap_or(0),
            l.events,
            "{l:?}"
        );
    }
}

#[test]
fn labels_cover_every_family_after_learning() {
    let s = shared();
    let l = &s.labels;
    assert_eq!(l.metadata.staff, 120);
    assert_eq!(l.metadata.days, 14);
    assert_eq!(l.metadata.timezone, "America/Chicago");
    assert_eq!(l.metadata.start, NaiveDate::from_ymd_opt(2026, 3, 2));
    let learn_end = chrono_tz::America::Chicago
        .with_ymd_and_hms(2026, 3, 2 + l.metadata.learning_days, 0, 0, 0)
        .unwrap()
        .with_timezone(&Utc);
    let families = [
        "family",
        "neighbour",
        "coworker",
        "vip",
        "self",
        "deceased",
        "terminated",
        "curiosity_sweep",
        "after_hours_spree",
        "search_burst",
        "bulk_export_usb",
        "slow_hoarding",
    ];
    for f in families {
        assert!(l.insiders.iter().any(|i| i.scenario == f), "no {f} insider");
    }
    let mut users: Vec<&str> = l.insiders.iter().map(|i| i.user.as_str()).collect();
    users.sort();
    users.dedup();
    assert_eq!(
        users.len(),
        l.insiders.len(),
        "one scenario per insider account"
    );
    for i in &l.insiders {
        assert!(i.start >= learn_end, "{i:?} starts in the learning period");
        assert!(i.start <= i.end && i.events > 0, "{i:?}");
    }
    // Exports to USB: a big export, then a removable-media write on the same host.
    let usb: Vec<_> = s.trace.accesses.iter().filter(|a| matches!(&a.reason, Reason::Insider { scenario, .. } if scenario == "bulk_export_usb")).collect();
    let export = usb.iter().find(|a| a.action == Action::Export).unwrap();
    let write = usb.iter().find(|a| a.action == Action::FileWrite).unwrap();
    assert!(export.records >= 120 && write.records == export.records && write.host == export.host);
    assert!(write.ts > export.ts && write.ts - export.ts <= chrono::Duration::hours(1));
    let kinds: Vec<&str> = l.hard_negatives.iter().map(|h| h.kind.as_str()).collect();
    for k in [
        "unrecorded_consult",
        "him_release",
        "billing_weekly_report",
        "night_shift",
        "routine_usb",
        "surname_match_with_care",
    ] {
        assert!(kinds.contains(&k), "no {k} hard negative: {kinds:?}");
    }
}

#[test]
fn fhir_and_atna_lines_follow_their_profiles() {
    let s = shared();
    let day = s.dir.path().join("fhir/2026-03-12.ndjson");
    let text = std::fs::read_to_string(day).unwrap();
    let mut zulu = 0;
    let mut offset = 0;
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let Some(rec) = v["recorded"].as_str() else {
            continue;
        };
        if rec.ends_with('Z') {
            zulu += 1
        } else {
            offset += 1
        }
        assert_eq!(v["resourceType"], "AuditEvent");
        let code = v["type"]["code"].as_str().unwrap();
        assert!(code == "rest" || code == "110106", "{line}");
        if code == "rest" {
            let sub = v["subtype"][0]["code"].as_str().unwrap();
            assert!(["read", "vread", "search", "create", "update"].contains(&sub));
            if sub != "search" {
                let e = &v["entity"][0];
                assert!(e["what"]["reference"]
                    .as_str()
                    .unwrap()
                    .starts_with("Patient/MRN"));
                assert_eq!(e["type"]["code"], "1");
                assert_eq!(e["role"]["code"], "1");
            }
        }
    }
    assert!(zulu > 0 && offset > 0);
    let atna = std::fs::read_to_string(s.dir.path().join("atna/2026-03-12.log")).unwrap();
    assert!(atna.contains("ParticipantObjectID=\"MRN"));
    assert!(atna.contains("^^^&amp;1.2.840.99999.1&amp;ISO\""));
    assert!(
        atna.contains("csd-code=\"110110\"")
            && atna.contains("code=\"110110\" codeSystemName=\"DCM\" displayName=")
    );
    let toml = std::fs::read_to_string(s.dir.path().join("phiwatch.toml")).unwrap();
    let cfg = phiwatch::config::Config::from_toml(&toml).unwrap();
    assert!(cfg.validate().is_empty());
    assert_eq!(cfg.sources.len(), 4);
}

/// The default month in release mode:
/// `cargo test --release --test behaviour detection::simulate -- --ignored --nocapture`.
#[test]
#[ignore]
fn default_month_size_and_time() {
    let dir = tempfile::tempdir().unwrap();
    // PHIWATCH_SIM_OUT keeps the output for a look.
    let out = std::env::var_os("PHIWATCH_SIM_OUT")
        .map_or_else(|| dir.path().to_path_buf(), PathBuf::from);
    let t = std::time::Instant::now();
    let s = simulate(&SimOptions::default(), &out).unwrap();
    println!("{s}\ngenerated in {:.2?}", t.elapsed());
    assert!(
        (400_000..=700_000).contains(&s.total_events),
        "{}",
        s.total_events
    );
}
