//! The syslog header in front of an ATNA message, in the shapes audit repositories
//! write to disk:
//!
//! - RFC 5424: `<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD [MSG]`, structured data `-` or
//!   one or more `[id k="v" …]` elements (values may escape `"`, `\` and `]`);
//! - RFC 3164 (BSD): `<PRI>Mmm dd hh:mm:ss HOST TAG: MSG`;
//! - OpenEMR's own framing: `<13>2024-05-14T09:49:00-04:00 HOST <?xml …`;
//! - any of these behind an RFC 5425/6587 octet count (`1187 <85>1 …`), which a
//!   receiver that writes raw TLS frames to disk keeps;
//! - a bare XML message with no header at all;
//! - the two shapes syslog daemons write to files, which drop the PRI: a BSD line
//!   (`May 14 09:49:00 host app: MSG`) and rsyslog's file format
//!   (`2024-05-14T09:49:00.123+02:00 host app[42]: MSG`).
//!
//! The octet count is not checked against the frame. A relay that drops the BOM, or a
//! writer that counts characters instead of bytes, leaves a count a few bytes off
//! while the message is intact; a frame that really lost bytes lost the end of the XML,
//! and the ATNA parser rejects a message that ends before `</AuditMessage>`. So the
//! count is skipped, and what is accepted is exactly what parses as a whole message.
//!
//! Only the message, the host and the timestamp are kept: the XML says everything else.
//! A BSD timestamp has no year, and guessing one would invent a time, so it is not used.

use super::time::parse_ts;
use super::{reason, Reject};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

#[derive(Debug, PartialEq)]
pub(crate) struct Header<'a> {
    /// The header's timestamp as written (not `-`), parsed only when asked for by
    /// [`Header::ts`]: the message's own EventDateTime nearly always wins, and parsing
    /// the header's on every line was ~700 instructions an ATNA event for nothing.
    stamp: Option<&'a str>,
    /// The message after the header, BOM removed; may be empty.
    pub msg: &'a str,
}

impl Header<'_> {
    /// The header's timestamp, when it has a usable one; read in `tz` when it has no
    /// offset.
    pub(crate) fn ts(&self, tz: Tz) -> Option<DateTime<Utc>> {
        self.stamp.and_then(|s| parse_ts(s, tz))
    }
}

fn bad(detail: &str) -> Reject {
    Reject::new(reason::BAD_SYSLOG_HEADER, detail)
}

/// Splits a line into header and message.
pub(crate) fn split(line: &str, tz: Tz) -> Result<Header<'_>, Reject> {
    let mut s = line.trim_start_matches(|c: char| c.is_whitespace() || c == '\u{feff}');

    // RFC 6587 octet counting: digits, one space, then the message.
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 4 && s.as_bytes().get(4) == Some(&b'-') {
        // rsyslog's file format: an RFC 3339 timestamp first, no PRI. Without a PRI
        // the timestamp is what makes the line syslog, so it must be one.
        let header = lenient_iso(s)?;
        if header.ts(tz).is_none() {
            return Err(bad(
                "a line without <PRI> starts with a date that is not a timestamp",
            ));
        }
        return Ok(header);
    }
    if digits > 0 {
        if digits > 10 || s.as_bytes().get(digits) != Some(&b' ') {
            return Err(bad("line starts with digits that are not an octet count"));
        }
        s = s[digits + 1..].trim_start_matches(' ');
    }

    if !s.starts_with('<') {
        // A BSD line as a syslog daemon writes it to a file, without the PRI.
        let month = s.len() > 4
            && s.as_bytes()[3] == b' '
            && MONTHS
                .iter()
                .any(|m| s.as_bytes()[..3].eq_ignore_ascii_case(m.as_bytes()));
        if month {
            return bsd(s);
        }
        return Err(bad("no <PRI> at the start of the line"));
    }
    let after_lt = &s[1..];
    let pri_len = after_lt.bytes().take_while(u8::is_ascii_digit).count();
    if pri_len == 0 {
        // `<?xml` or `<AuditMessage`: a message written without any syslog header.
        if after_lt.starts_with(['?', '!']) || after_lt.starts_with(|c: char| c.is_alphabetic()) {
            return Ok(Header {
                stamp: None,
                msg: strip_bom(s),
            });
        }
        return Err(bad("the <PRI> holds no number"));
    }
    if pri_len > 3 || after_lt.as_bytes().get(pri_len) != Some(&b'>') {
        return Err(bad("the <PRI> is not closed by >"));
    }
    let pri: u32 = after_lt[..pri_len].parse().unwrap_or(u32::MAX);
    if pri > 191 {
        return Err(bad("PRI is over 191"));
    }
    let rest = &after_lt[pri_len + 1..];

    if let Some(r5424) = rest.strip_prefix("1 ") {
        rfc5424(r5424)
    } else if rest.starts_with(|c: char| c.is_ascii_digit()) {
        lenient_iso(rest)
    } else {
        bsd(rest)
    }
}

/// Cuts the next space-separated token.
fn token(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_start_matches(' ');
    if s.is_empty() {
        return None;
    }
    Some(s.split_once(' ').unwrap_or((s, "")))
}

fn strip_bom(s: &str) -> &str {
    let s = s.trim_start_matches(' ');
    s.strip_prefix('\u{feff}').unwrap_or(s)
}

fn rfc5424(s: &str) -> Result<Header<'_>, Reject> {
    let (ts, s) = token(s).ok_or_else(|| bad("RFC 5424 header ends before the timestamp"))?;
    let stamp = (ts != "-").then_some(ts);
    let mut s = s;
    for field in ["hostname", "app-name", "procid", "msgid"] {
        let (_, rest) = token(s).ok_or_else(|| {
            bad(match field {
                "hostname" => "RFC 5424 header ends before the hostname",
                "app-name" => "RFC 5424 header ends before the app-name",
                "procid" => "RFC 5424 header ends before the procid",
                _ => "RFC 5424 header ends before the msgid",
            })
        })?;
        s = rest;
    }
    let s = s.trim_start_matches(' ');
    let rest = if let Some(r) = s.strip_prefix('-') {
        r
    } else if s.starts_with('[') {
        skip_structured_data(s)?
    } else if s.is_empty() {
        ""
    } else {
        return Err(bad("RFC 5424 structured data is neither - nor [...]"));
    };
    if !(rest.is_empty() || rest.starts_with(' ')) {
        return Err(bad("no space between structured data and message"));
    }
    Ok(Header {
        stamp,
        msg: strip_bom(rest),
    })
}

/// Skips `[…][…]…`, honouring quoted values with `\"`, `\\` and `\]` escapes.
fn skip_structured_data(s: &str) -> Result<&str, Reject> {
    let b = s.as_bytes();
    let mut i = 0;
    while b.get(i) == Some(&b'[') {
        i += 1;
        let mut quoted = false;
        loop {
            match b.get(i) {
                None => return Err(bad("structured data element is not closed by ]")),
                Some(b'\\') if quoted => i += 2,
                Some(b'"') => {
                    quoted = !quoted;
                    i += 1;
                }
                Some(b']') if !quoted => {
                    i += 1;
                    break;
                }
                Some(_) => i += 1,
            }
        }
    }
    // `i` only ever stops after an ASCII `]`, so it is a char boundary.
    Ok(&s[i.min(s.len())..])
}

/// OpenEMR's `<13>TIMESTAMP HOST MSG`, with an ISO timestamp.
fn lenient_iso(s: &str) -> Result<Header<'_>, Reject> {
    let (stamp, s) = token(s).ok_or_else(|| bad("header ends after the PRI"))?;
    Ok(Header {
        stamp: Some(stamp),
        msg: host_and_tag(s),
    })
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// RFC 3164: `Mmm dd hh:mm:ss HOST TAG: MSG`, the day space-padded.
fn bsd(s: &str) -> Result<Header<'_>, Reject> {
    let b = s.as_bytes();
    let ok = b.len() >= 15
        && MONTHS
            .iter()
            .any(|m| b[..3].eq_ignore_ascii_case(m.as_bytes()))
        && b[3] == b' '
        && (b[4] == b' ' || b[4].is_ascii_digit())
        && b[5].is_ascii_digit()
        && b[6] == b' '
        && b[7..9].iter().all(u8::is_ascii_digit)
        && b[9] == b':'
        && b[10..12].iter().all(u8::is_ascii_digit)
        && b[12] == b':'
        && b[13..15].iter().all(u8::is_ascii_digit);
    if !ok {
        return Err(bad(
            "after <PRI> comes neither '1 ', an ISO timestamp nor a BSD 'Mmm dd hh:mm:ss'",
        ));
    }
    Ok(Header {
        stamp: None,
        msg: host_and_tag(&s[15..]),
    })
}

/// After a BSD or OpenEMR timestamp: an optional host, an optional `TAG:` or
/// `TAG[pid]:`, then the message. A message starting with `<` ends the search, so XML
/// is never mistaken for a host or tag.
fn host_and_tag(s: &str) -> &str {
    let mut s = s.trim_start_matches(' ');
    for _ in 0..2 {
        if s.starts_with('<') || s.starts_with('\u{feff}') {
            break;
        }
        match token(s) {
            Some((tok, rest)) => {
                s = rest.trim_start_matches(' ');
                if tok.ends_with(':') {
                    break;
                }
            }
            None => return "",
        }
    }
    strip_bom(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::fmt_ts;

    fn h(line: &str) -> Result<(Option<String>, &str), &'static str> {
        split(line, Tz::UTC)
            .map(|h| (h.ts(Tz::UTC).map(|t| fmt_ts(&t)), h.msg))
            .map_err(|r| r.reason)
    }

    const XML: &str = "<AuditMessage/>";

    #[test]
    fn rfc5424_plain_and_with_sd() {
        let ts = Some("2024-05-14T13:49:00.123Z".to_string());
        assert_eq!(
            h(&format!(
                "<85>1 2024-05-14T13:49:00.123Z ehr01 EHR 4242 IHE+RFC-3881 - {XML}"
            )),
            Ok((ts.clone(), XML))
        );
        assert_eq!(
            h(&format!(
                r#"<85>1 2024-05-14T13:49:00.123Z ehr01 EHR - IHE+RFC-3881 [meta x="a\]b\"c" y="]"][origin ip="10.0.0.1"] {XML}"#
            )),
            Ok((ts.clone(), XML))
        );
        assert_eq!(
            h(&format!(
                "1187 <85>1 2024-05-14T13:49:00.123Z ehr01 EHR 4242 IHE+RFC-3881 - \u{feff}{XML}"
            )),
            Ok((ts.clone(), XML))
        );
        assert_eq!(h("<85>1 - - - - - -"), Ok((None, "")));
    }

    #[test]
    fn bsd_and_openemr() {
        assert_eq!(
            h(&format!("<85>May 14 09:49:00 ehr01 EHR[42]: {XML}")),
            Ok((None, XML))
        );
        assert_eq!(
            h(&format!("<85>May  4 09:49:00 ehr01 {XML}")),
            Ok((None, XML))
        );
        assert_eq!(
            h(&format!("<85>May  4 09:49:00 EHR: {XML}")),
            Ok((None, XML))
        );
        assert_eq!(
            h(&format!("<13>2024-05-14T09:49:00-04:00 emr.example {XML}")),
            Ok((Some("2024-05-14T13:49:00.000Z".into()), XML))
        );
        assert_eq!(h(&format!("\u{feff}{XML}")), Ok((None, XML)));
        assert_eq!(
            h("<?xml version=\"1.0\"?><AuditMessage/>"),
            Ok((None, "<?xml version=\"1.0\"?><AuditMessage/>"))
        );
    }

    #[test]
    fn rfc3164_shapes() {
        // RFC 3164 section 5.4's own examples, with an AuditMessage as the content.
        for line in [
            format!("<34>Oct 11 22:14:15 mymachine su: {XML}"),
            format!("<13>Feb  5 17:32:18 10.0.0.99 {XML}"),
            format!("<85>Oct 11 22:14:15 ehr01 atna[1234]: {XML}"),
            format!("<13>May 14 09:49:00 host app: {XML}"),
            format!("<13>May 14 09:49:00 host app: \u{feff}{XML}"),
            // Written to a file by a syslog daemon: no PRI.
            format!("May 14 09:49:00 ehr01 EHR[42]: {XML}"),
            format!("oct  1 22:14:15 ehr01 {XML}"),
        ] {
            assert_eq!(h(&line), Ok((None, XML)), "{line}");
        }
        // rsyslog's file format keeps the RFC 3339 timestamp.
        assert_eq!(
            h(&format!(
                "2024-05-14T09:49:00.123+02:00 ehr01 EHR[42]: {XML}"
            )),
            Ok((Some("2024-05-14T07:49:00.123Z".into()), XML))
        );
        assert_eq!(
            h(&format!("<85>2024-05-14T09:49+02:00 ehr01 EHR: {XML}")),
            Ok((Some("2024-05-14T07:49:00.000Z".into()), XML))
        );
    }

    #[test]
    fn octet_counts_off_by_a_few_bytes_are_accepted() {
        let frame = format!("<85>1 2024-05-14T13:49:00Z ehr01 EHR - IHE+RFC-3881 - {XML}");
        let exact = frame.len();
        // A lost BOM (3 bytes short), a count that still includes it, an exact count.
        for n in [exact - 3, exact + 3, exact] {
            assert_eq!(
                h(&format!("{n} {frame}")).map(|(_, m)| m),
                Ok(XML),
                "count {n}"
            );
        }
    }

    #[test]
    fn broken_headers() {
        for line in [
            "hello",
            "12345",
            "12x <85>1 -",
            "<>1 - - - - - -",
            "<999>1 - - - - - -",
            "<85",
            "<85>1 2024-05-14T13:49:00Z host",
            "<85>1 2024-05-14T13:49:00Z host app 1 ID [unclosed x=\"y\"",
            "<85>1 2024-05-14T13:49:00Z host app 1 ID [a x=\"]\"]junk",
            "<85>1 2024-05-14T13:49:00Z host app 1 ID garbage",
            "<85>Foo 14 09:49:00 host x",
            "<85>May 14",
            "May 14",
            "Mayday 14 09:49:00 host x",
            "May 14 9:49 host x",
            "2024-05-14 host x",
            "<1234567890123",
            "99999999999999999999 <85>1",
        ] {
            assert_eq!(
                h(line).map(|_| ()),
                Err(reason::BAD_SYSLOG_HEADER),
                "{line:?}"
            );
        }
    }

    #[test]
    fn multibyte_input_does_not_panic() {
        for line in [
            "<85>Mé 14 09:49:00 h x",
            "<85>1 ü ü ü ü ü [é=\"ü\"]ü",
            "<85>ééééééééééééééé",
        ] {
            let _ = split(line, Tz::UTC);
        }
    }
}
