//! `leef`: IBM QRadar Log Event Extended Format, version 2.0.
//!
//! ```text
//! LEEF:2.0|phiwatch|phiwatch|<version>|<detector>|<delimiter>|devTime=...^sev=...^...
//! ```
//!
//! LEEF defines no escape sequences, so phiwatch declares a delimiter that alert text
//! is unlikely to hold (`^` by default; `leef_delimiter = "tab"` declares `x09`) and
//! replaces every occurrence of that delimiter, CR, LF and other control characters in a
//! value with a space. In header fields `|` becomes `/` as well.
//!
//! Keys: `devTime` (alert `ts`, 13-digit epoch ms, needs no `devTimeFormat`), `sev`
//! (1-10, see the table in [`crate::format`]), `cat` (the detector), `usrName` (the staff
//! account), then custom keys `alertId`, `follows` (a follow-up's: the id of the alert its
//! finding raised at once; absent otherwise), `score`, `severity`, `eventCount`,
//! `startTime`, `endTime` (epoch ms), `patients` (comma-joined; absent when none or
//! omitted), `summary`, `reasons` (joined with `; `).

use super::{epoch_ms, severity_0_10, PRODUCT, VENDOR, VERSION};
use crate::alert::Alert;

/// The attribute delimiter declared in the LEEF 2.0 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LeefDelimiter {
    /// `^`, declared as `^`.
    #[default]
    Caret,
    /// Horizontal tab, declared as `x09`.
    Tab,
}

impl LeefDelimiter {
    /// From the sink key `leef_delimiter`: `^`, `caret`, `tab`, `x09`, `0x09` or a tab.
    pub fn parse(s: &str) -> Option<LeefDelimiter> {
        match s {
            "^" | "caret" | "x5E" | "x5e" | "0x5E" | "0x5e" => Some(LeefDelimiter::Caret),
            "tab" | "\t" | "\\t" | "x09" | "0x09" => Some(LeefDelimiter::Tab),
            _ => None,
        }
    }

    pub fn char(self) -> char {
        match self {
            LeefDelimiter::Caret => '^',
            LeefDelimiter::Tab => '\t',
        }
    }

    /// How the header declares it.
    pub fn declared(self) -> &'static str {
        match self {
            LeefDelimiter::Caret => "^",
            LeefDelimiter::Tab => "x09",
        }
    }
}

pub fn render(alert: &Alert, delim: LeefDelimiter) -> String {
    let d = delim.char();
    let mut s = String::with_capacity(512);
    s.push_str("LEEF:2.0|");
    for field in [VENDOR, PRODUCT, VERSION, &alert.detector] {
        push_clean(&mut s, field, d, true);
        s.push('|');
    }
    s.push_str(delim.declared());
    s.push('|');

    let patients = alert.patients.join(",");
    let reasons = alert.reasons.join("; ");
    let mut first = true;
    let mut attr = |k: &str, v: &str| {
        if !first {
            s.push(d);
        }
        first = false;
        s.push_str(k);
        s.push('=');
        push_clean(&mut s, v, d, false);
    };
    attr("devTime", &epoch_ms(&alert.ts).to_string());
    attr("sev", &severity_0_10(alert.severity).to_string());
    attr("cat", &alert.detector);
    attr("usrName", &alert.user);
    attr("alertId", &alert.id);
    if let Some(first) = &alert.follows {
        attr("follows", first);
    }
    if let Some(case) = &alert.case {
        attr("case", case);
    }
    if let Some(n) = alert.case_alerts {
        attr("caseAlerts", &n.to_string());
    }
    if let Some(r) = alert.risk {
        attr("risk", &r.to_string());
    }
    attr("score", &alert.score.to_string());
    attr("severity", alert.severity.as_str());
    attr("eventCount", &alert.events.to_string());
    attr("startTime", &epoch_ms(&alert.first_seen).to_string());
    attr("endTime", &epoch_ms(&alert.last_seen).to_string());
    if !patients.is_empty() {
        attr("patients", &patients);
    }
    attr("summary", &alert.summary);
    attr("reasons", &reasons);
    s
}

fn push_clean(out: &mut String, v: &str, delim: char, header: bool) {
    for c in v.chars() {
        if c == delim || c.is_control() {
            out.push(' ');
        } else if header && c == '|' {
            out.push('/');
        } else {
            out.push(c);
        }
    }
}

/// A value as it is written in an attribute: delimiter, CR, LF and controls made spaces.
pub fn clean_value(v: &str, delim: LeefDelimiter) -> String {
    let mut s = String::with_capacity(v.len());
    push_clean(&mut s, v, delim.char(), false);
    s
}
