//! Human-readable alert printing: what `phiwatch demo` shows a privacy officer.
//! Alerts are grouped by user (the unit an investigation starts from), users with the
//! most severe findings first, each user's alerts in time order.

use crate::alert::{Alert, Severity};
use crate::event::key;
use std::collections::BTreeMap;
use std::io::{self, Write};

const RESET: &str = "\x1b[0m";
const BOLD: &str = "\x1b[1m";

fn colour(s: Severity) -> &'static str {
    match s {
        Severity::Low => "\x1b[36m",
        Severity::Medium => "\x1b[33m",
        Severity::High => "\x1b[31m",
        Severity::Critical => "\x1b[1;97;41m",
    }
}

/// Prints alerts grouped by user: a header per user, then each alert's time, severity
/// (ANSI-coloured when `color`), detector and summary, with its reasons indented.
pub fn print_alerts(alerts: &[Alert], out: &mut dyn Write, color: bool) -> io::Result<()> {
    if alerts.is_empty() {
        return writeln!(out, "No alerts.");
    }
    let mut by_user: BTreeMap<String, Vec<&Alert>> = BTreeMap::new();
    for a in alerts {
        by_user.entry(key(&a.user)).or_default().push(a);
    }
    let mut groups: Vec<(Severity, String, Vec<&Alert>)> = by_user
        .into_iter()
        .map(|(k, mut v)| {
            v.sort_by(|a, b| a.ts.cmp(&b.ts).then_with(|| a.id.cmp(&b.id)));
            let worst = v.iter().map(|a| a.severity).max().unwrap_or(Severity::Low);
            (worst, k, v)
        })
        .collect();
    groups.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then_with(|| b.2.len().cmp(&a.2.len()))
            .then_with(|| a.1.cmp(&b.1))
    });
    for (i, (worst, _, list)) in groups.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        let n = list.len();
        let plural = if n == 1 { "" } else { "s" };
        let user = &list[0].user;
        if color {
            writeln!(out, "{BOLD}{user}{RESET}  {n} alert{plural}, worst {worst}")?;
        } else {
            writeln!(out, "{user}  {n} alert{plural}, worst {worst}")?;
        }
        for a in list {
            let ts = a.ts.format("%Y-%m-%d %H:%M:%SZ");
            let sev = format!("{:<8}", a.severity.as_str().to_uppercase());
            if color {
                write!(
                    out,
                    "  {ts}  {}{}{RESET}",
                    colour(a.severity),
                    sev.trim_end()
                )?;
                write!(out, "{}", &sev[sev.trim_end().len()..])?;
            } else {
                write!(out, "  {ts}  {sev}")?;
            }
            writeln!(out, "  {:<18} {}", a.detector, a.summary)?;
            for r in &a.reasons {
                writeln!(out, "      - {r}")?;
            }
            if !a.patients.is_empty() {
                let shown: Vec<&str> = a.patients.iter().take(5).map(String::as_str).collect();
                let more = a.patients.len().saturating_sub(5);
                let tail = if more > 0 {
                    format!(" (+{more} more)")
                } else {
                    String::new()
                };
                writeln!(out, "      patients: {}{tail}", shown.join(", "))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn alert(user: &str, sev: Severity, h: u32) -> Alert {
        let ts = Utc.with_ymd_and_hms(2026, 3, 14, h, 5, 0).unwrap();
        Alert {
            id: format!("pw-{user}-{h}"),
            ts,
            detector: "family".into(),
            severity: sev,
            score: 80,
            user: user.into(),
            patients: vec!["MRN1000002".into()],
            summary: "Opened the chart of a household member.".into(),
            reasons: vec!["same address".into(), "no care relationship".into()],
            first_seen: ts,
            last_seen: ts,
            events: 2,
            follows: None,
            case: None,
            case_alerts: None,
            risk: None,
        }
    }

    #[test]
    fn groups_by_user_worst_first() {
        let alerts = vec![
            alert("u1", Severity::Low, 3),
            alert("U2", Severity::Critical, 2),
            alert("u2", Severity::Low, 1),
        ];
        let mut out = Vec::new();
        print_alerts(&alerts, &mut out, false).unwrap();
        let text = String::from_utf8(out).unwrap();
        let u2 = text
            .find("u2  2 alerts")
            .or_else(|| text.find("U2  2 alerts"))
            .unwrap();
        let u1 = text.find("u1  1 alert,").unwrap();
        assert!(u2 < u1, "{text}");
        assert!(text.contains("      - same address"));
        assert!(!text.contains('\x1b'));
        let mut out = Vec::new();
        print_alerts(&alerts, &mut out, true).unwrap();
        assert!(String::from_utf8(out)
            .unwrap()
            .contains("\x1b[1;97;41mCRITICAL\x1b[0m"));
    }
}
