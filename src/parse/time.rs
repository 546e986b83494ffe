//! Timestamps, the one place every format's time strings are read.
//!
//! The forms accepted are the ones EHR exports actually use:
//!
//! - ISO 8601 / RFC 3339: `2024-05-14T13:49:00.123Z`, `2024-05-14 09:49:00-04:00`,
//!   offsets with or without the colon (`-0400`) or hours only (`-04`), `T`, `t` or a space
//!   between date and time, seconds optional, any number of fraction digits (beyond
//!   nanoseconds they are dropped), `/` accepted in place of `-` in the date.
//! - The same without an offset (`2024-05-14 09:49:00`, OpenEMR and Epic Clarity exports).
//! - US style `MM/DD/YYYY HH:MM[:SS[.fff]]`, optionally with `AM`/`PM`, as Epic reports and
//!   Excel round-trips produce. Day-first dates are not guessed at: `05/14/2024` is May 14
//!   and `14/05/2024` is rejected.
//! - HL7 v2 `DTM`: `YYYYMMDDHHMM[SS[.ffff]][+/-ZZZZ]`.
//!
//! A time without an offset is local time in the source's time zone. Local times that
//! occur twice (the hour repeated when DST ends) resolve to the earlier instant: the log
//! cannot say which was meant and the earlier one is what most EHR databases stored
//! first. Local times that never occur (the hour skipped when DST starts) are read with
//! the offset in force just before the gap, which moves them forward by the gap's length
//! (`02:30` on a spring-forward night becomes `03:30` daylight time), the same rule as
//! `java.time` and PostgreSQL, so phiwatch agrees with the tools that wrote the log.
//!
//! A date alone is not a timestamp: it is rejected rather than read as midnight.

use chrono::{
    DateTime, Duration, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset,
    TimeZone, Utc,
};
use chrono_tz::Tz;

/// Reads a timestamp in any of the forms above; `tz` applies only when the string has
/// no offset. `None` when the string is not a timestamp.
pub fn parse_ts(s: &str, tz: Tz) -> Option<DateTime<Utc>> {
    let s = s.trim();
    // Longest real form is about 40 bytes; the cap keeps garbage cheap.
    if s.len() < 10 || s.len() > 64 || !s.is_ascii() {
        return None;
    }
    let b = s.as_bytes();
    let (naive, offset) = if b[2] == b'/' || b[1] == b'/' {
        (parse_us(b)?, None)
    } else if b[4] == b'-' || b[4] == b'/' {
        parse_iso(b)?
    } else {
        parse_hl7(b)?
    };
    match offset {
        Some(off) => off
            .from_local_datetime(&naive)
            .single()
            .map(|t| t.with_timezone(&Utc)),
        None => local_to_utc(naive, tz),
    }
}

/// Reads a local time in `tz`, resolving DST overlaps and gaps as the module explains.
pub fn local_to_utc(naive: NaiveDateTime, tz: Tz) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(earlier, _) => Some(earlier.with_timezone(&Utc)),
        LocalResult::None => {
            // In a gap: find the offset in force just before it. Gaps are at most a few
            // hours (a zone changing its standard offset), so step back in quarter hours.
            (1..=4 * 26).find_map(|q| {
                let probe = naive.checked_sub_signed(Duration::minutes(15 * q))?;
                let offset = tz.offset_from_local_datetime(&probe).earliest()?.fix();
                let utc = naive
                    .checked_sub_signed(Duration::seconds(i64::from(offset.local_minus_utc())))?;
                Some(Utc.from_utc_datetime(&utc))
            })
        }
    }
}

/// A byte cursor over an ASCII timestamp.
struct Cur<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cur<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    /// Between `min` and `max` decimal digits.
    fn num(&mut self, min: usize, max: usize) -> Option<u32> {
        let start = self.i;
        let mut v: u32 = 0;
        while self.i - start < max {
            match self.peek() {
                Some(d @ b'0'..=b'9') => {
                    v = v * 10 + u32::from(d - b'0');
                    self.i += 1;
                }
                _ => break,
            }
        }
        (self.i - start >= min).then_some(v)
    }

    /// Fraction digits after the separator, as nanoseconds; digits past the ninth are
    /// read and dropped.
    fn fraction(&mut self) -> Option<u32> {
        let start = self.i;
        let mut nanos: u32 = 0;
        while let Some(d @ b'0'..=b'9') = self.peek() {
            if self.i - start < 9 {
                nanos = nanos * 10 + u32::from(d - b'0');
            }
            self.i += 1;
        }
        let digits = self.i - start;
        if digits == 0 {
            return None;
        }
        Some(nanos * 10u32.pow(9usize.saturating_sub(digits) as u32))
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.i += 1;
        }
    }

    fn done(&self) -> bool {
        self.i == self.b.len()
    }
}

/// `HH:MM[:SS[.f]]` after the date.
fn time_part(c: &mut Cur) -> Option<NaiveTime> {
    let h = c.num(1, 2)?;
    if !c.eat(b':') {
        return None;
    }
    let m = c.num(2, 2)?;
    let (mut s, mut nanos) = (0, 0);
    if c.eat(b':') {
        s = c.num(2, 2)?;
        if c.eat(b'.') || c.eat(b',') {
            nanos = c.fraction()?;
        }
    }
    hms(h, m, s, nanos)
}

/// A time of day; second 60 (a leap second, which RFC 3339 allows) becomes chrono's
/// leap-second representation rather than an error.
fn hms(h: u32, m: u32, s: u32, nanos: u32) -> Option<NaiveTime> {
    if s == 60 {
        NaiveTime::from_hms_nano_opt(h, m, 59, 1_000_000_000 + nanos.min(999_999_999))
    } else {
        NaiveTime::from_hms_nano_opt(h, m, s, nanos)
    }
}

/// `Z`, `+hh:mm`, `+hhmm` or `+hh`.
fn offset_part(c: &mut Cur) -> Option<FixedOffset> {
    if c.eat(b'Z') || c.eat(b'z') {
        return FixedOffset::east_opt(0);
    }
    let sign: i32 = if c.eat(b'+') {
        1
    } else if c.eat(b'-') {
        -1
    } else {
        return None;
    };
    let h = c.num(2, 2)?;
    let m = if c.eat(b':') {
        c.num(2, 2)?
    } else {
        c.num(2, 2).unwrap_or(0)
    };
    if h > 23 || m > 59 {
        return None;
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60) as i32)
}

fn parse_iso(b: &[u8]) -> Option<(NaiveDateTime, Option<FixedOffset>)> {
    let mut c = Cur { b, i: 0 };
    let y = c.num(4, 4)?;
    let sep = c.peek()?;
    c.i += 1;
    let mo = c.num(2, 2)?;
    if !c.eat(sep) {
        return None;
    }
    let d = c.num(2, 2)?;
    let date = NaiveDate::from_ymd_opt(y as i32, mo, d)?;
    if !(c.eat(b'T') || c.eat(b't') || c.eat(b' ')) {
        return None;
    }
    let time = time_part(&mut c)?;
    c.skip_spaces();
    let offset = if c.done() {
        None
    } else {
        Some(offset_part(&mut c)?)
    };
    c.done().then_some((date.and_time(time), offset))
}

fn parse_us(b: &[u8]) -> Option<NaiveDateTime> {
    let mut c = Cur { b, i: 0 };
    let mo = c.num(1, 2)?;
    if !c.eat(b'/') {
        return None;
    }
    let d = c.num(1, 2)?;
    if !c.eat(b'/') {
        return None;
    }
    let y = c.num(4, 4)?;
    let date = NaiveDate::from_ymd_opt(y as i32, mo, d)?;
    if !c.eat(b' ') {
        return None;
    }
    c.skip_spaces();
    let time = time_part(&mut c)?;
    c.skip_spaces();
    let time = match c.b.get(c.i..).map(|r| r.to_ascii_uppercase()) {
        Some(r) if r.is_empty() => time,
        Some(r) if r == b"AM" || r == b"PM" => {
            use chrono::Timelike;
            let h = time.hour();
            if !(1..=12).contains(&h) {
                return None;
            }
            let h24 = (h % 12) + if r == b"PM" { 12 } else { 0 };
            time.with_hour(h24)?
        }
        _ => return None,
    };
    Some(date.and_time(time))
}

fn parse_hl7(b: &[u8]) -> Option<(NaiveDateTime, Option<FixedOffset>)> {
    let mut c = Cur { b, i: 0 };
    let y = c.num(4, 4)?;
    let mo = c.num(2, 2)?;
    let d = c.num(2, 2)?;
    let h = c.num(2, 2)?;
    let mi = c.num(2, 2)?;
    let (mut s, mut nanos) = (0, 0);
    if let Some(sec) = c.num(2, 2) {
        s = sec;
        if c.eat(b'.') {
            nanos = c.fraction()?;
        }
    }
    let at = NaiveDate::from_ymd_opt(y as i32, mo, d)?.and_time(hms(h, mi, s, nanos)?);
    let offset = if c.done() {
        None
    } else {
        Some(offset_part(&mut c)?)
    };
    c.done().then_some((at, offset))
}

/// An epoch number from JSON: seconds, or milliseconds when it is too large to be
/// seconds of this era (above 10^11, i.e. after the year 5138). Fractions of a second
/// are kept.
pub fn from_epoch(v: f64) -> Option<DateTime<Utc>> {
    if !v.is_finite() || v < 0.0 {
        return None;
    }
    let millis = if v >= 1e11 { v } else { v * 1000.0 };
    if millis > 1e16 {
        return None;
    }
    DateTime::from_timestamp_millis(millis.round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::fmt_ts;

    fn p(s: &str) -> Option<String> {
        parse_ts(s, "America/Chicago".parse().unwrap()).map(|t| fmt_ts(&t))
    }

    #[test]
    fn offsets_win_over_the_zone() {
        assert_eq!(
            p("2024-05-14T13:49:00.123Z").as_deref(),
            Some("2024-05-14T13:49:00.123Z")
        );
        assert_eq!(
            p("2024-05-14T09:49:00.123-04:00").as_deref(),
            Some("2024-05-14T13:49:00.123Z")
        );
        assert_eq!(
            p("2024-05-14 09:49:00-0400").as_deref(),
            Some("2024-05-14T13:49:00.000Z")
        );
        assert_eq!(
            p("2024-05-14t09:49-04").as_deref(),
            Some("2024-05-14T13:49:00.000Z")
        );
        assert_eq!(
            p("2024-05-14T13:49:00.123456789123Z").as_deref(),
            Some("2024-05-14T13:49:00.123Z")
        );
        assert_eq!(
            p("2024-05-14T13:49:00,5 Z").as_deref(),
            Some("2024-05-14T13:49:00.500Z")
        );
    }

    #[test]
    fn minutes_without_seconds() {
        // ATNA senders that format EventDateTime to the minute.
        for (s, want) in [
            ("2024-05-14T09:49Z", "2024-05-14T09:49:00.000Z"),
            ("2024-05-14T09:49+02:00", "2024-05-14T07:49:00.000Z"),
            ("2024-05-14T09:49-0400", "2024-05-14T13:49:00.000Z"),
            ("2024-05-14T09:49", "2024-05-14T14:49:00.000Z"),
        ] {
            assert_eq!(p(s).as_deref(), Some(want), "{s}");
        }
        for s in ["2024-05-14T09Z", "2024-05-14T09:4Z", "2024-05-14T09:49.5Z"] {
            assert_eq!(p(s), None, "{s}");
        }
    }

    #[test]
    fn local_times_use_the_zone() {
        // CDT is UTC-5 in May.
        assert_eq!(
            p("2024-05-14 08:49:00").as_deref(),
            Some("2024-05-14T13:49:00.000Z")
        );
        assert_eq!(
            p("2024-05-14T08:49:00.25").as_deref(),
            Some("2024-05-14T13:49:00.250Z")
        );
        assert_eq!(
            p("2024/05/14 08:49").as_deref(),
            Some("2024-05-14T13:49:00.000Z")
        );
    }

    #[test]
    fn us_dates() {
        assert_eq!(
            p("05/14/2024 08:49").as_deref(),
            Some("2024-05-14T13:49:00.000Z")
        );
        assert_eq!(
            p("5/4/2024 8:49:07 PM").as_deref(),
            Some("2024-05-05T01:49:07.000Z")
        );
        assert_eq!(
            p("5/4/2024 12:05 am").as_deref(),
            Some("2024-05-04T05:05:00.000Z")
        );
        assert_eq!(p("14/05/2024 08:49"), None);
        assert_eq!(p("5/4/2024 13:05 PM"), None);
    }

    #[test]
    fn hl7_dtm() {
        assert_eq!(
            p("20240514084900").as_deref(),
            Some("2024-05-14T13:49:00.000Z")
        );
        assert_eq!(
            p("20240514094900.12-0400").as_deref(),
            Some("2024-05-14T13:49:00.120Z")
        );
    }

    #[test]
    fn dst_overlap_takes_the_earlier_instant() {
        // 01:30 happens twice on 2024-11-03 in Chicago: first CDT (UTC-5), then CST.
        assert_eq!(
            p("2024-11-03 01:30:00").as_deref(),
            Some("2024-11-03T06:30:00.000Z")
        );
    }

    #[test]
    fn dst_gap_moves_forward() {
        // 02:30 does not exist on 2024-03-10 in Chicago; read with CST (UTC-6) it is
        // 08:30Z, which is 03:30 CDT.
        assert_eq!(
            p("2024-03-10 02:30:00").as_deref(),
            Some("2024-03-10T08:30:00.000Z")
        );
    }

    #[test]
    fn leap_second_is_accepted() {
        assert!(p("2016-12-31T23:59:60Z").is_some());
    }

    #[test]
    fn garbage_is_none() {
        for s in [
            "",
            "2024-05-14",
            "2024-13-14T00:00:00Z",
            "2024-02-30 00:00:00",
            "2024-05-14T25:00:00Z",
            "2024-05-14T10:00:00+25:00",
            "2024-05-14T10:00:00 nonsense",
            "not a time at all",
            "99999999999999999999999",
            "2024-05-14T10:00:00Zjunk",
            "0000-00-00 00:00:00",
            "2024-05-14T10:",
            "2024-05-14T10:00:0",
            "½½½½½½½½½½½½",
            "2024-05-14T10:00:00.Z",
        ] {
            assert_eq!(p(s), None, "{s:?}");
        }
    }

    #[test]
    fn epochs() {
        assert_eq!(
            from_epoch(1_715_694_540.123).map(|t| fmt_ts(&t)).as_deref(),
            Some("2024-05-14T13:49:00.123Z")
        );
        assert_eq!(
            from_epoch(1_715_694_540_123.0)
                .map(|t| fmt_ts(&t))
                .as_deref(),
            Some("2024-05-14T13:49:00.123Z")
        );
        assert_eq!(from_epoch(-1.0), None);
        assert_eq!(from_epoch(f64::NAN), None);
        assert_eq!(from_epoch(1e300), None);
    }
}
