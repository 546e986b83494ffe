//! `cef`: ArcSight Common Event Format, version 0.
//!
//! ```text
//! CEF:0|phiwatch|phiwatch|<version>|<detector>|<summary>|<severity 0-10>|<extension>
//! ```
//!
//! Escaping (CEF implementation guide, as the logstash CEF codec applies it):
//! - header fields: `\` -> `\\`, `|` -> `\|`; CR, LF and other control characters become
//!   a space (they are not allowed in the header);
//! - extension values: `\` -> `\\`, `=` -> `\=`, LF -> `\n`, CR -> `\r`, other control
//!   characters become a space; `|` is left alone. Keys are fixed alphanumeric names.
//!
//! Extension keys, in this order:
//!
//! | key | value |
//! |---|---|
//! | `rt` | alert `ts`, epoch ms |
//! | `start`, `end` | `first_seen`, `last_seen`, epoch ms |
//! | `suser` | the staff account |
//! | `duser` | the patients, comma-joined (absent when there are none or they are omitted) |
//! | `act` | the detector |
//! | `cnt` | number of evidence events |
//! | `msg` | the summary |
//! | `externalId` | the alert id |
//! | `cs1Label=detector cs1` | the detector |
//! | `cs2Label=reasons cs2` | the reasons, joined with `; ` |
//! | `cs3Label=patients cs3` | the patients, comma-joined (absent like `duser`) |
//! | `cs4Label=follows cs4` | a follow-up's `follows`: the id of the alert its finding raised at once (absent otherwise) |
//! | `cn1Label=score cn1` | the score, 0-100 |
//! | `cs5Label=case cs5`, `cn2Label=caseAlerts cn2`, `cn3Label=risk cn3` | the user's case id, alerts in it so far, and the user's risk (absent when unset) |
//!
//! Lengths: ArcSight's CEF guide caps each field (in characters, before escaping):
//! `suser`, `duser`, `msg` 1,023, `act` 63, `cs1`-`cs6` 4,000, the header's Name 512 and
//! Device Event Class ID 1,023. A longer value is cut to fit and ends with a marker saying
//! so: lists (the patients) keep whole ids and end with `,+N more`, text ends with
//! `...[cut]`; the whole alert is always in the `json` format of a file sink.

use super::{epoch_ms, severity_0_10, PRODUCT, VENDOR, VERSION};
use crate::alert::Alert;
use std::fmt::Write;

pub fn render(alert: &Alert) -> String {
    let mut s = String::with_capacity(512);
    s.push_str("CEF:0|");
    for field in [
        VENDOR,
        PRODUCT,
        VERSION,
        &fit(&alert.detector, MAX_CLASS_ID),
        &fit(&alert.summary, MAX_NAME),
    ] {
        push_header(&mut s, field);
        s.push('|');
    }
    let _ = write!(s, "{}|", severity_0_10(alert.severity));

    let duser = fit_list(&alert.patients, MAX_STRING);
    let patients = fit_list(&alert.patients, MAX_CUSTOM);
    let reasons = alert.reasons.join("; ");
    let reasons = fit(&reasons, MAX_CUSTOM);
    let mut ext = Ext(&mut s, true);
    ext.num("rt", epoch_ms(&alert.ts));
    ext.num("start", epoch_ms(&alert.first_seen));
    ext.num("end", epoch_ms(&alert.last_seen));
    ext.str("suser", &fit(&alert.user, MAX_STRING));
    if !patients.is_empty() {
        ext.str("duser", &duser);
    }
    ext.str("act", &fit(&alert.detector, MAX_ACT));
    ext.num("cnt", alert.events as i64);
    ext.str("msg", &fit(&alert.summary, MAX_STRING));
    ext.str("externalId", &alert.id);
    ext.str("cs1Label", "detector");
    ext.str("cs1", &fit(&alert.detector, MAX_CUSTOM));
    ext.str("cs2Label", "reasons");
    ext.str("cs2", &reasons);
    if !patients.is_empty() {
        ext.str("cs3Label", "patients");
        ext.str("cs3", &patients);
    }
    if let Some(first) = &alert.follows {
        ext.str("cs4Label", "follows");
        ext.str("cs4", first);
    }
    if let Some(case) = &alert.case {
        ext.str("cs5Label", "case");
        ext.str("cs5", case);
    }
    if let Some(n) = alert.case_alerts {
        ext.str("cn2Label", "caseAlerts");
        ext.num("cn2", i64::from(n));
    }
    if let Some(r) = alert.risk {
        ext.str("cn3Label", "risk");
        ext.num("cn3", i64::from(r));
    }
    ext.str("cn1Label", "score");
    ext.num("cn1", i64::from(alert.score));
    s
}

/// Field limits of the ArcSight CEF guide, in characters.
pub const MAX_STRING: usize = 1023;
pub const MAX_ACT: usize = 63;
pub const MAX_CUSTOM: usize = 4000;
pub const MAX_NAME: usize = 512;
pub const MAX_CLASS_ID: usize = 1023;
/// What ends a value cut to fit.
pub const CUT: &str = "...[cut]";

/// `value`, cut to `max` characters with [`CUT`] at its end when longer.
pub fn fit(value: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if value.chars().count() <= max {
        return value.into();
    }
    let keep = max.saturating_sub(CUT.chars().count());
    let mut out: String = value.chars().take(keep).collect();
    out.push_str(CUT);
    out.into()
}

/// The items comma-joined, within `max` characters: whole items only, then `+N more`.
pub fn fit_list(items: &[String], max: usize) -> String {
    let all = items.join(",");
    if all.chars().count() <= max {
        return all;
    }
    let mut out = String::new();
    for (i, item) in items.iter().enumerate() {
        let more = format!("+{} more", items.len() - i);
        let sep = usize::from(!out.is_empty());
        // Room for this item and, after it, the marker for the rest (if any).
        let rest = if i + 1 < items.len() {
            format!(",+{} more", items.len() - i - 1).chars().count()
        } else {
            0
        };
        if out.chars().count() + sep + item.chars().count() + rest > max {
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(&more);
            return out;
        }
        if sep == 1 {
            out.push(',');
        }
        out.push_str(item);
    }
    out
}

struct Ext<'a>(&'a mut String, bool);

impl Ext<'_> {
    fn key(&mut self, k: &str) {
        if !self.1 {
            self.0.push(' ');
        }
        self.1 = false;
        self.0.push_str(k);
        self.0.push('=');
    }

    fn num(&mut self, k: &str, v: i64) {
        self.key(k);
        let _ = write!(self.0, "{v}");
    }

    fn str(&mut self, k: &str, v: &str) {
        self.key(k);
        push_ext_value(self.0, v);
    }
}

/// Appends a header field, escaped.
pub fn push_header(out: &mut String, field: &str) {
    for c in field.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '|' => out.push_str("\\|"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
}

/// Appends an extension value, escaped.
pub fn push_ext_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '=' => out.push_str("\\="),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
}

/// A header field, escaped.
pub fn escape_header(field: &str) -> String {
    let mut s = String::with_capacity(field.len());
    push_header(&mut s, field);
    s
}

/// An extension value, escaped.
pub fn escape_ext_value(value: &str) -> String {
    let mut s = String::with_capacity(value.len());
    push_ext_value(&mut s, value);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_fit_arcsight_limits_with_a_marker() {
        // 150 pseudonymised patient ids of 23 characters: about 3,600 characters joined.
        let ids: Vec<String> = (0..150).map(|i| format!("ps-{i:020}")).collect();
        let d = fit_list(&ids, MAX_STRING);
        assert!(d.chars().count() <= MAX_STRING, "{}", d.len());
        assert!(d.ends_with(" more"), "{d}");
        let kept = d.split(',').filter(|p| p.starts_with("ps-")).count();
        assert_eq!(
            d.rsplit('+').next().unwrap(),
            format!("{} more", 150 - kept)
        );
        assert!(ids[..kept].iter().all(|i| d.contains(i.as_str())));
        assert_eq!(fit_list(&ids[..3], MAX_STRING), ids[..3].join(","));
        let long = "x".repeat(2000);
        let f = fit(&long, MAX_STRING);
        assert_eq!(f.chars().count(), MAX_STRING);
        assert!(f.ends_with(CUT));
        assert_eq!(fit("short", MAX_ACT), "short");
        // Characters, not bytes.
        assert_eq!(fit(&"é".repeat(1023), MAX_STRING).chars().count(), 1023);
    }

    #[test]
    fn escapes() {
        assert_eq!(escape_header(r"a|b\c=d"), r"a\|b\\c=d");
        assert_eq!(escape_header("a\r\nb"), "a  b");
        assert_eq!(escape_ext_value("a=b|c\\d\ne\rf"), r"a\=b|c\\d\ne\rf");
    }
}
