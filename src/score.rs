//! The scorecard: how well a replay's alerts match the simulator's labels.
//!
//! An insider counts as caught when an alert names the user (case-insensitively) with
//! `alert.ts` from one hour before the scenario starts to one day after it ends. An alert
//! is a true positive when it names an insider user inside such a window, otherwise it is
//! a false alert. Latency is `alert.ts - scenario start` of the insider's earliest
//! matching alert at or after the start (an alert in the hour before counts as 0).

use crate::alert::Alert;
use crate::event::{key, rfc3339};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// `labels.json`, as written by `phiwatch simulate`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Labels {
    #[serde(default)]
    pub metadata: Metadata,
    #[serde(default)]
    pub insiders: Vec<InsiderLabel>,
    #[serde(default)]
    pub hard_negatives: Vec<HardNegative>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Metadata {
    pub generator: String,
    pub seed: u64,
    /// Staff accounts in the roster (the denominator of alerts per 1,000 staff).
    pub staff: usize,
    pub days: u32,
    /// First day, hospital-local.
    pub start: Option<NaiveDate>,
    /// Last day, hospital-local (inclusive).
    pub end: Option<NaiveDate>,
    pub timezone: String,
    /// Days at the start with nothing injected.
    pub learning_days: u32,
    pub patients: usize,
    pub care_rows: usize,
    /// Valid event lines per source name.
    pub events: BTreeMap<String, u64>,
    /// Deliberately malformed lines, in total and per source name.
    pub malformed_lines: u64,
    pub malformed_by_source: BTreeMap<String, u64>,
}

/// One injected insider scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InsiderLabel {
    #[serde(default)]
    pub id: String,
    pub user: String,
    pub scenario: String,
    #[serde(default)]
    pub variant: String,
    #[serde(default)]
    pub role: String,
    #[serde(default)]
    pub department: String,
    /// The source its EHR events are in.
    #[serde(default)]
    pub source: String,
    /// First malicious event.
    #[serde(with = "rfc3339")]
    pub start: DateTime<Utc>,
    /// Last malicious event.
    #[serde(with = "rfc3339")]
    pub end: DateTime<Utc>,
    #[serde(default)]
    pub patients: Vec<String>,
    /// Malicious events written (EHR lines plus file events).
    #[serde(default)]
    pub events: u64,
}

/// A legitimate look-alike: activity of an innocent user that resembles a scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HardNegative {
    pub kind: String,
    pub user: String,
    #[serde(default)]
    pub events: u64,
    #[serde(with = "rfc3339")]
    pub first: DateTime<Utc>,
    #[serde(with = "rfc3339")]
    pub last: DateTime<Utc>,
    /// A few of the patients concerned (at most five).
    #[serde(default)]
    pub patients: Vec<String>,
}

impl Labels {
    pub fn load(path: &std::path::Path) -> anyhow::Result<Labels> {
        use anyhow::Context;
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not a labels file", path.display()))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScenarioResult {
    pub id: String,
    pub user: String,
    pub scenario: String,
    pub variant: String,
    pub caught: bool,
    /// Detectors with at least one alert in the window, sorted.
    pub detectors: Vec<String>,
    pub alerts: usize,
    /// Seconds from the scenario start to its first alert (0 if it came just before).
    pub latency_secs: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FamilyResult {
    pub scenario: String,
    pub insiders: usize,
    pub caught: usize,
    /// caught / insiders.
    pub recall: f64,
    /// Alerts on this family's insiders inside their windows (all true by definition).
    pub alerts: usize,
    /// Detectors that caught at least one of the family's insiders, sorted.
    pub detectors: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DetectorResult {
    pub detector: String,
    pub alerts: usize,
    pub true_alerts: usize,
    pub false_alerts: usize,
    /// true alerts / alerts.
    pub precision: Option<f64>,
    /// Insiders this detector alerted on inside their window.
    pub insiders_caught: usize,
    /// insiders_caught / insiders (what this detector alone would catch).
    pub recall: Option<f64>,
    /// Insiders caught by this detector and by no other.
    pub only_detector: usize,
    pub false_alerts_per_1000_staff_day: Option<f64>,
    /// Caught insiders per scenario family.
    pub families: BTreeMap<String, usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scorecard {
    pub insiders: usize,
    pub caught: usize,
    /// caught / insiders; `None` without insiders.
    pub recall: Option<f64>,
    pub alerts: usize,
    pub true_alerts: usize,
    pub false_alerts: usize,
    /// true alerts / alerts; `None` without alerts.
    pub precision: Option<f64>,
    pub staff: usize,
    pub days: u32,
    /// alerts / (staff / 1000) / days; `None` when staff or days are unknown.
    pub alerts_per_1000_staff_day: Option<f64>,
    pub false_alerts_per_1000_staff_day: Option<f64>,
    /// Median over caught insiders of their latency.
    pub median_latency_secs: Option<i64>,
    pub scenarios: Vec<ScenarioResult>,
    pub families: Vec<FamilyResult>,
    pub detectors: Vec<DetectorResult>,
    /// False alerts on users listed as hard negatives, by look-alike kind.
    pub false_alerts_by_hard_negative: BTreeMap<String, usize>,
}

fn window(l: &InsiderLabel) -> (DateTime<Utc>, DateTime<Utc>) {
    (l.start - Duration::hours(1), l.end + Duration::days(1))
}

fn rate(n: usize, staff: usize, days: u32) -> Option<f64> {
    (staff > 0 && days > 0).then(|| n as f64 / (staff as f64 / 1000.0) / days as f64)
}

fn median(mut v: Vec<i64>) -> Option<i64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2
    })
}

pub fn score(labels: &Labels, alerts: &[Alert]) -> Scorecard {
    let keys: Vec<String> = labels.insiders.iter().map(|l| key(&l.user)).collect();
    let mut is_true = vec![false; alerts.len()];
    let mut scenarios = Vec::with_capacity(labels.insiders.len());
    for (l, k) in labels.insiders.iter().zip(&keys) {
        let (lo, hi) = window(l);
        let mut detectors: Vec<String> = Vec::new();
        let mut n = 0;
        let mut first_after: Option<DateTime<Utc>> = None;
        let mut any = false;
        for (i, a) in alerts.iter().enumerate() {
            if key(&a.user) != *k || a.ts < lo || a.ts > hi {
                continue;
            }
            is_true[i] = true;
            any = true;
            n += 1;
            if !detectors.contains(&a.detector) {
                detectors.push(a.detector.clone());
            }
            if a.ts >= l.start && first_after.is_none_or(|f| a.ts < f) {
                first_after = Some(a.ts);
            }
        }
        detectors.sort();
        let latency = any.then(|| first_after.map_or(0, |t| (t - l.start).num_seconds()));
        scenarios.push(ScenarioResult {
            id: l.id.clone(),
            user: l.user.clone(),
            scenario: l.scenario.clone(),
            variant: l.variant.clone(),
            caught: any,
            detectors,
            alerts: n,
            latency_secs: latency,
        });
    }
    let mut families: BTreeMap<String, FamilyResult> = BTreeMap::new();
    for s in &scenarios {
        let f = families
            .entry(s.scenario.clone())
            .or_insert_with(|| FamilyResult {
                scenario: s.scenario.clone(),
                insiders: 0,
                caught: 0,
                recall: 0.0,
                alerts: 0,
                detectors: Vec::new(),
            });
        f.insiders += 1;
        f.caught += usize::from(s.caught);
        f.alerts += s.alerts;
        for d in &s.detectors {
            if !f.detectors.contains(d) {
                f.detectors.push(d.clone());
            }
        }
    }
    for f in families.values_mut() {
        f.recall = f.caught as f64 / f.insiders.max(1) as f64;
        f.detectors.sort();
    }
    let mut detectors: BTreeMap<String, DetectorResult> = BTreeMap::new();
    let mut by_hn: BTreeMap<String, usize> = BTreeMap::new();
    for (a, &t) in alerts.iter().zip(&is_true) {
        let d = detectors
            .entry(a.detector.clone())
            .or_insert_with(|| DetectorResult {
                detector: a.detector.clone(),
                alerts: 0,
                true_alerts: 0,
                false_alerts: 0,
                precision: None,
                insiders_caught: 0,
                recall: None,
                only_detector: 0,
                false_alerts_per_1000_staff_day: None,
                families: BTreeMap::new(),
            });
        d.alerts += 1;
        if t {
            d.true_alerts += 1;
        } else {
            d.false_alerts += 1;
            let u = key(&a.user);
            let mut kinds: Vec<&str> = labels
                .hard_negatives
                .iter()
                .filter(|h| {
                    key(&h.user) == u
                        && a.ts >= h.first - Duration::hours(1)
                        && a.ts <= h.last + Duration::days(1)
                })
                .map(|h| h.kind.as_str())
                .collect();
            kinds.sort_unstable();
            kinds.dedup();
            for k in kinds {
                *by_hn.entry(k.to_string()).or_default() += 1;
            }
        }
    }
    let (staff, days) = (labels.metadata.staff, labels.metadata.days);
    for s in &scenarios {
        for name in &s.detectors {
            let d = detectors
                .get_mut(name)
                .expect("a caught scenario's detector alerted");
            d.insiders_caught += 1;
            d.only_detector += usize::from(s.detectors.len() == 1);
            *d.families.entry(s.scenario.clone()).or_default() += 1;
        }
    }
    for d in detectors.values_mut() {
        d.precision = (d.alerts > 0).then(|| d.true_alerts as f64 / d.alerts as f64);
        d.recall =
            (!scenarios.is_empty()).then(|| d.insiders_caught as f64 / scenarios.len() as f64);
        d.false_alerts_per_1000_staff_day = rate(d.false_alerts, staff, days);
    }
    let caught = scenarios.iter().filter(|s| s.caught).count();
    let true_alerts = is_true.iter().filter(|&&t| t).count();
    let false_alerts = alerts.len() - true_alerts;
    Scorecard {
        insiders: scenarios.len(),
        caught,
        recall: (!scenarios.is_empty()).then(|| caught as f64 / scenarios.len() as f64),
        alerts: alerts.len(),
        true_alerts,
        false_alerts,
        precision: (!alerts.is_empty()).then(|| true_alerts as f64 / alerts.len() as f64),
        staff,
        days,
        alerts_per_1000_staff_day: rate(alerts.len(), staff, days),
        false_alerts_per_1000_staff_day: rate(false_alerts, staff, days),
        median_latency_secs: median(scenarios.iter().filter_map(|s| s.latency_secs).collect()),
        scenarios,
        families: families.into_values().collect(),
        detectors: detectors.into_values().collect(),
        false_alerts_by_hard_negative: by_hn,
    }
}

fn pct(x: Option<f64>) -> String {
    x.map_or_else(|| "n/a".into(), |v| format!("{:.1}%", v * 100.0))
}

/// `1h 05m`, `12m 30s`, `45s`.
pub fn fmt_duration(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        s if s >= 86_400 => format!("{}d {:02}h", s / 86_400, (s % 86_400) / 3600),
        s if s >= 3600 => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
        s if s >= 60 => format!("{}m {:02}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

impl fmt::Display for Scorecard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "SCORECARD")?;
        writeln!(
            f,
            "  insiders caught   {}/{} (recall {})",
            self.caught,
            self.insiders,
            pct(self.recall)
        )?;
        writeln!(
            f,
            "  alerts            {} ({} true, {} false; precision {})",
            self.alerts,
            self.true_alerts,
            self.false_alerts,
            pct(self.precision)
        )?;
        let r = |x: Option<f64>| x.map_or_else(|| "n/a".into(), |v| format!("{v:.2}"));
        writeln!(
            f,
            "  alert rate        {} per 1,000 staff per day ({} false) over {} staff, {} days",
            r(self.alerts_per_1000_staff_day),
            r(self.false_alerts_per_1000_staff_day),
            self.staff,
            self.days
        )?;
        writeln!(
            f,
            "  median latency    {}",
            self.median_latency_secs
                .map_or_else(|| "n/a".into(), fmt_duration)
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "  {:<20} {:>8} {:>7} {:>7} {:>7}  caught by",
            "scenario", "insiders", "caught", "recall", "alerts"
        )?;
        for fam in &self.families {
            writeln!(
                f,
                "  {:<20} {:>8} {:>7} {:>7} {:>7}  {}",
                fam.scenario,
                fam.insiders,
                fam.caught,
                pct(Some(fam.recall)),
                fam.alerts,
                if fam.detectors.is_empty() {
                    "-".to_string()
                } else {
                    fam.detectors.join(",")
                }
            )?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "  {:<8} {:<20} {:<10} {:<7} {:>9}  detectors",
            "id", "scenario", "user", "result", "latency"
        )?;
        for s in &self.scenarios {
            writeln!(
                f,
                "  {:<8} {:<20} {:<10} {:<7} {:>9}  {}",
                s.id,
                s.scenario,
                s.user,
                if s.caught { "caught" } else { "MISSED" },
                s.latency_secs.map_or_else(|| "-".into(), fmt_duration),
                if s.detectors.is_empty() {
                    "-".to_string()
                } else {
                    s.detectors.join(",")
                }
            )?;
        }
        if !self.detectors.is_empty() {
            writeln!(f)?;
            writeln!(
                f,
                "  {:<24} {:>7} {:>6} {:>6} {:>9} {:>8} {:>6} {:>11}",
                "detector", "alerts", "true", "false", "precision", "caught", "alone", "false/1k/d"
            )?;
            for d in &self.detectors {
                writeln!(
                    f,
                    "  {:<24} {:>7} {:>6} {:>6} {:>9} {:>8} {:>6} {:>11}",
                    d.detector,
                    d.alerts,
                    d.true_alerts,
                    d.false_alerts,
                    pct(d.precision),
                    d.insiders_caught,
                    d.only_detector,
                    r(d.false_alerts_per_1000_staff_day)
                )?;
            }
        }
        if !self.false_alerts_by_hard_negative.is_empty() {
            writeln!(f)?;
            writeln!(f, "  false alerts on look-alikes:")?;
            for (k, n) in &self.false_alerts_by_hard_negative {
                writeln!(f, "  {k:<28} {n:>6}")?;
            }
        }
        Ok(())
    }
}
