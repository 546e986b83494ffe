//! The scorer's arithmetic on hand-made labels and alerts.

use chrono::{DateTime, Duration, TimeZone, Utc};
use phiwatch::alert::{Alert, Severity};
use phiwatch::score::{score, HardNegative, InsiderLabel, Labels, Metadata};

fn t(day: u32, h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, day, h, m, 0).unwrap()
}

fn insider(
    id: &str,
    user: &str,
    scenario: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> InsiderLabel {
    InsiderLabel {
        id: id.into(),
        user: user.into(),
        scenario: scenario.into(),
        variant: String::new(),
        role: String::new(),
        department: String::new(),
        source: String::new(),
        start,
        end,
        patients: vec![],
        events: 1,
    }
}

fn alert(user: &str, detector: &str, ts: DateTime<Utc>) -> Alert {
    Alert {
        id: format!("{user}-{detector}-{}", ts.timestamp()),
        ts,
        detector: detector.into(),
        severity: Severity::High,
        score: 70,
        user: user.into(),
        patients: vec![],
        summary: "s".into(),
        reasons: vec![],
        first_seen: ts,
        last_seen: ts,
        events: 1,
        follows: None,
        case: None,
        case_alerts: None,
        risk: None,
    }
}

fn labels() -> Labels {
    Labels {
        metadata: Metadata {
            staff: 500,
            days: 10,
            ..Metadata::default()
        },
        insiders: vec![
            // A: 12:00 to 14:00 on the 12th: window 11:00 on the 12th .. 14:00 on the 13th.
            insider("ins-01", "u1", "family", t(12, 12, 0), t(12, 14, 0)),
            insider("ins-02", "u2", "vip", t(15, 3, 0), t(15, 3, 30)),
            insider("ins-03", "u3", "vip", t(16, 9, 0), t(16, 9, 0)),
            insider("ins-04", "u4", "self", t(17, 9, 0), t(17, 10, 0)),
        ],
        hard_negatives: vec![HardNegative {
            kind: "night_shift".into(),
            user: "n1".into(),
            events: 10,
            first: t(12, 2, 0),
            last: t(18, 4, 0),
            patients: vec![],
        }],
    }
}

#[test]
fn window_edges_are_inclusive_minus_one_hour_plus_one_day() {
    let l = labels();
    let edge_before = t(12, 11, 0); // exactly start - 1h
    let edge_after = t(13, 14, 0); // exactly end + 1d
    for (ts, caught) in [
        (edge_before, true),
        (edge_before - Duration::seconds(1), false),
        (edge_after, true),
        (edge_after + Duration::seconds(1), false),
    ] {
        let card = score(&l, &[alert("U1", "family", ts)]);
        assert_eq!(card.scenarios[0].caught, caught, "alert at {ts}");
        assert_eq!(card.true_alerts, usize::from(caught));
        assert_eq!(card.false_alerts, usize::from(!caught));
    }
    // Before the start, the latency is 0; after it, the distance to the start.
    let card = score(&l, &[alert("u1", "family", edge_before)]);
    assert_eq!(card.scenarios[0].latency_secs, Some(0));
    let card = score(&l, &[alert("u1", "family", edge_after)]);
    assert_eq!(card.scenarios[0].latency_secs, Some(26 * 3600));
}

#[test]
fn precision_recall_rate_and_median_latency() {
    let l = labels();
    let alerts = vec![
        alert("u1", "family", t(12, 12, 10)),    // true, latency 10 min
        alert("u1", "sweep", t(12, 13, 0)),      // true (second alert, same insider)
        alert("u2", "vip", t(15, 3, 30)),        // true, latency 30 min
        alert("u3", "vip", t(16, 10, 0)),        // true, latency 60 min
        alert("u4", "self", t(20, 9, 0)),        // false: too late for u4
        alert("n1", "after_hours", t(14, 3, 0)), // false, on a hard negative
        alert("x9", "after_hours", t(14, 3, 0)), // false
        alert("u1", "family", t(25, 0, 0)),      // false: u1 outside its window
    ];
    let card = score(&l, &alerts);
    assert_eq!(card.insiders, 4);
    assert_eq!(card.caught, 3);
    assert_eq!(card.recall, Some(0.75));
    assert_eq!(card.alerts, 8);
    assert_eq!(card.true_alerts, 4);
    assert_eq!(card.false_alerts, 4);
    assert_eq!(card.precision, Some(0.5));
    // 8 alerts / (500 / 1000 staff) / 10 days = 1.6; false: 4 -> 0.8.
    assert!((card.alerts_per_1000_staff_day.unwrap() - 1.6).abs() < 1e-9);
    assert!((card.false_alerts_per_1000_staff_day.unwrap() - 0.8).abs() < 1e-9);
    // Latencies 10, 30, 60 minutes: median 30 minutes.
    assert_eq!(card.median_latency_secs, Some(1800));
    assert_eq!(
        card.scenarios[0].detectors,
        vec!["family".to_string(), "sweep".to_string()]
    );
    assert_eq!(card.scenarios[0].alerts, 2);
    assert!(!card.scenarios[3].caught);
    let vip = card.families.iter().find(|f| f.scenario == "vip").unwrap();
    assert_eq!((vip.insiders, vip.caught), (2, 2));
    let after = card
        .detectors
        .iter()
        .find(|d| d.detector == "after_hours")
        .unwrap();
    assert_eq!(
        (after.alerts, after.true_alerts, after.false_alerts),
        (2, 0, 2)
    );
    let family = card
        .detectors
        .iter()
        .find(|d| d.detector == "family")
        .unwrap();
    assert_eq!((family.true_alerts, family.false_alerts), (1, 1));
    assert_eq!(
        card.false_alerts_by_hard_negative.get("night_shift"),
        Some(&1)
    );
    let text = card.to_string();
    assert!(text.contains("3/4 (recall 75.0%)"), "{text}");
    assert!(text.contains("precision 50.0%"), "{text}");
    assert!(text.contains("MISSED"), "{text}");
    let json = serde_json::to_value(&card).unwrap();
    assert_eq!(json["caught"], 3);
}

#[test]
fn even_median_and_empty_inputs() {
    let mut l = labels();
    l.insiders.truncate(2);
    let alerts = vec![
        alert("u1", "family", t(12, 12, 10)),
        alert("u2", "vip", t(15, 3, 20)),
    ];
    let card = score(&l, &alerts);
    // 10 and 20 minutes: the median of an even count is the mean of the middle two.
    assert_eq!(card.median_latency_secs, Some(900));
    let none = score(&Labels::default(), &[]);
    assert_eq!(
        (none.recall, none.precision, none.alerts_per_1000_staff_day),
        (None, None, None)
    );
    assert_eq!(none.median_latency_secs, None);
    let nothing_caught = score(&l, &[]);
    assert_eq!(nothing_caught.recall, Some(0.0));
    assert_eq!(nothing_caught.precision, None);
    assert!(nothing_caught.to_string().contains("n/a"));
}

#[test]
fn labels_round_trip_through_json() {
    let l = labels();
    let text = serde_json::to_string(&l).unwrap();
    assert!(text.contains("\"start\":\"2026-03-12T12:00:00.000Z\""));
    let back: Labels = serde_json::from_str(&text).unwrap();
    assert_eq!(back, l);
    // Minimal hand-written labels parse: only user, scenario, start, end are needed.
    let min: Labels = serde_json::from_str(
        r#"{"insiders":[{"user":"u1","scenario":"self","start":"2026-03-12T12:00:00Z","end":"2026-03-12T12:05:00-05:00"}]}"#,
    )
    .unwrap();
    assert_eq!(min.insiders[0].end, t(12, 17, 5));
}
