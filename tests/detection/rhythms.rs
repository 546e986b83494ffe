//! Horizons and rhythms: a search trawl spread over a shift alerts on the shift window
//! (no ten-minute window or hour shows it), a fast burst over every horizon is one alert,
//! and a month-close export is usual at a later turn of the month, long after the
//! day-to-day history has forgotten it, while the same export in the middle of a month
//! alerts.

use crate::support::hospital::write_canonical_config;
use crate::support::process::replay;
use chrono::{Duration, NaiveDate, TimeZone};
use chrono_tz::America::Chicago;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn at(day: NaiveDate, h: u32, m: u32) -> String {
    Chicago
        .from_local_datetime(&day.and_hms_opt(h, m, 0).unwrap())
        .earliest()
        .unwrap()
        .with_timezone(&chrono::Utc)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn line(out: &mut String, ts: &str, user: &str, action: &str, patient: Option<&str>, n: u64) {
    let p = patient
        .map(|p| format!(",\"patient\":\"{p}\""))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "{{\"ts\":\"{ts}\",\"user\":\"{user}\",\"action\":\"{action}\"{p},\"records\":{n},\"host\":\"WS-1\"}}"
    );
}

/// A small hospital: `users` (id, role, department), patients P100-P199 all under
/// Cardiology's care, and `events` (canonical lines, sorted here).
fn hospital(dir: &Path, users: &[(&str, &str, &str)], events: &str) -> PathBuf {
    let mut staff = String::from(
        "user_id,given_name,family_name,role,department,address,postcode,hire_date,termination_date\n",
    );
    for (i, (u, role, dept)) in users.iter().enumerate() {
        let _ = writeln!(
            staff,
            "{u},Given,Family{i},{role},{dept},{i} Road,0{i:04},2015-01-01,"
        );
    }
    let mut patients = String::from(
        "patient_id,given_name,family_name,birth_date,address,postcode,deceased_date,vip,employee_user_id\n",
    );
    let mut care = String::from("patient_id,department,user_id,start,end\n");
    for i in 100..200 {
        let _ = writeln!(
            patients,
            "P{i},Pat,Doe{i},1970-01-01,{i} River Rd,02000,,false,"
        );
        let _ = writeln!(care, "P{i},Cardiology,,2025-01-01T00:00:00Z,");
    }
    let mut lines: Vec<&str> = events.lines().collect();
    lines.sort_by_key(|l| l[7..27].to_string());
    std::fs::create_dir_all(dir.join("events")).unwrap();
    std::fs::write(dir.join("staff.csv"), staff).unwrap();
    std::fs::write(dir.join("patients.csv"), patients).unwrap();
    std::fs::write(dir.join("care.csv"), care).unwrap();
    std::fs::write(dir.join("events/log.jsonl"), lines.join("\n") + "\n").unwrap();
    write_canonical_config(dir, "timezone = \"America/Chicago\"\nlearning_days = 7")
}

fn alerts(config: &Path, dir: &Path) -> Vec<serde_json::Value> {
    let out = dir.join("replay.ndjson");
    replay(config, &out);
    std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn pairs(alerts: &[serde_json::Value]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = alerts
        .iter()
        .map(|a| {
            (
                a["detector"].as_str().unwrap().to_string(),
                a["user"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

/// Four cardiology nurses' fortnight from 2 March 2026: fifteen charts a day and one or
/// two patient searches a shift. Returns the users, the first day and the event lines.
fn nurses_fortnight() -> (
    Vec<(&'static str, &'static str, &'static str)>,
    NaiveDate,
    String,
) {
    let nurses = ["n_amy", "n_ben", "n_cat", "n_dan"];
    let users = nurses.iter().map(|n| (*n, "nurse", "Cardiology")).collect();
    let start = NaiveDate::from_ymd_opt(2026, 3, 2).unwrap();
    let mut ev = String::new();
    for d in 0..14 {
        let day = start + Duration::days(d);
        for (k, n) in nurses.iter().enumerate() {
            for i in 0..15u32 {
                let p = format!("P{}", 100 + (i as usize * 7 + k * 13 + d as usize) % 100);
                line(
                    &mut ev,
                    &at(day, 8 + i / 2, (i % 2) * 30 + 5),
                    n,
                    "view",
                    Some(&p),
                    1,
                );
            }
            for s in 0..(1 + (d as usize + k) % 2) as u32 {
                line(&mut ev, &at(day, 9 + 4 * s, 17), n, "search", None, 1);
            }
        }
    }
    (users, start, ev)
}

/// Nurses who look a patient up once or twice a shift; on day 12 one of them runs 36
/// searches, one every ten minutes over six hours: six an hour, no burst, but far above
/// her (and her peers') busiest shift.
#[test]
fn a_search_trawl_spread_over_a_shift_alerts_on_the_shift_window() {
    let dir = tempfile::tempdir().unwrap();
    let (users, start, mut ev) = nurses_fortnight();
    let trawl = start + Duration::days(12);
    for i in 0..36u32 {
        line(
            &mut ev,
            &at(trawl, 8 + i / 6, (i % 6) * 10 + 2),
            "n_amy",
            "search",
            None,
            1,
        );
    }
    let config = hospital(dir.path(), &users, &ev);
    let got = alerts(&config, dir.path());
    assert_eq!(
        pairs(&got),
        vec![("search-fishing-shift".to_string(), "n_amy".to_string())],
        "{got:#?}"
    );
    let reasons = got[0]["reasons"].to_string();
    assert!(reasons.contains("within 8 hours"), "{reasons}");
    assert!(reasons.contains("usual busiest 8 hours"), "{reasons}");
}

/// One episode, one alert. On day 12 Amy runs 40 searches in ten minutes: over the
/// ten-minute, the hourly and the shift thresholds at once, yet one alert, whose reasons
/// name the other horizons. On day 13 Ben runs 36 searches spread over six hours: only the
/// shift horizon sees it, and it still alerts.
#[test]
fn a_fast_search_burst_is_one_alert_and_a_slow_shift_trawl_still_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let (users, start, mut ev) = nurses_fortnight();
    let burst = start + Duration::days(12);
    for i in 0..40u32 {
        line(&mut ev, &at(burst, 10, i / 4), "n_amy", "search", None, 1);
    }
    let trawl = start + Duration::days(13);
    for i in 0..36u32 {
        line(
            &mut ev,
            &at(trawl, 8 + i / 6, (i % 6) * 10 + 2),
            "n_ben",
            "search",
            None,
            1,
        );
    }
    let config = hospital(dir.path(), &users, &ev);
    let got = alerts(&config, dir.path());
    let amy: Vec<&serde_json::Value> = got.iter().filter(|a| a["user"] == "n_amy").collect();
    assert_eq!(amy.len(), 1, "one alert for the burst: {got:#?}");
    let reasons = amy[0]["reasons"].to_string();
    for horizon in ["within 10 minutes", "within 60 minutes", "within 8 hours"] {
        assert!(reasons.contains(horizon), "{horizon}: {reasons}");
    }
    assert!(reasons.contains("also "), "{reasons}");
    let ben: Vec<&serde_json::Value> = got.iter().filter(|a| a["user"] == "n_ben").collect();
    assert_eq!(ben.len(), 1, "{got:#?}");
    assert_eq!(ben[0]["detector"], "search-fishing-shift");
    assert_eq!(got.len(), 2, "{got:#?}");
}

/// Two records analysts print a released chart or two every working day. Both ran a
/// month-close extract of 500 records on 2 February. On 31 March (a quarter's end) one
/// runs the quarter's close, 900 records: usual at a turn of the month, though 28 working
/// days of one-chart prints have pushed February out of the day-to-day history. On 18 March
/// the other exports 900 records in the middle of the month: a new pattern, alerted.
#[test]
fn a_month_close_export_is_usual_at_a_later_turn_of_the_month_only() {
    let dir = tempfile::tempdir().unwrap();
    let users = [
        ("h_max", "him_analyst", "Health Information"),
        ("h_nia", "him_analyst", "Health Information"),
    ];
    let start = NaiveDate::from_ymd_opt(2026, 1, 27).unwrap();
    let end = NaiveDate::from_ymd_opt(2026, 4, 1).unwrap();
    let mut ev = String::new();
    let mut day = start;
    let mut i = 0usize;
    while day < end {
        for u in ["h_max", "h_nia"] {
            for k in 0..(1 + i % 2) {
                let p = format!("P{}", 100 + (i * 3 + k) % 100);
                line(&mut ev, &at(day, 10 + k as u32, 0), u, "view", Some(&p), 1);
                line(&mut ev, &at(day, 10 + k as u32, 5), u, "print", Some(&p), 1);
            }
        }
        i += 1;
        day += Duration::days(1);
    }
    let feb2 = NaiveDate::from_ymd_opt(2026, 2, 2).unwrap();
    line(&mut ev, &at(feb2, 14, 0), "h_max", "export", None, 500);
    line(&mut ev, &at(feb2, 14, 30), "h_nia", "export", None, 500);
    let mar31 = NaiveDate::from_ymd_opt(2026, 3, 31).unwrap();
    line(&mut ev, &at(mar31, 14, 0), "h_max", "export", None, 900);
    let mar18 = NaiveDate::from_ymd_opt(2026, 3, 18).unwrap();
    line(&mut ev, &at(mar18, 14, 0), "h_nia", "export", None, 900);
    let config = hospital(dir.path(), &users, &ev);
    let got = alerts(&config, dir.path());
    let pairs = pairs(&got);
    assert!(
        pairs.iter().all(|(_, u)| u == "h_nia"),
        "the quarter's close is usual: {got:#?}"
    );
    assert!(
        pairs.contains(&("bulk-export".to_string(), "h_nia".to_string())),
        "a mid-month export of the same size alerts: {got:#?}"
    );
}
