//! Time helpers. Every instant inside the simulator is UTC epoch milliseconds (`i64`):
//! compact to store and sort, and free of the ambiguity of local times. Local (hospital)
//! time only appears when deciding shifts and when a format writes local timestamps.

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, Offset, TimeZone,
    Timelike, Utc, Weekday,
};
use chrono_tz::Tz;
use std::fmt::Write as _;

/// The hospital's time zone: what shifts, "night" and the Epic export's local times mean.
pub const TZ: Tz = chrono_tz::America::Chicago;
pub const TZ_NAME: &str = "America/Chicago";

pub const SECOND: i64 = 1_000;
pub const MINUTE: i64 = 60 * SECOND;
pub const HOUR: i64 = 60 * MINUTE;
pub const DAY: i64 = 24 * HOUR;

/// The instant of a local wall-clock time `secs` seconds after local midnight of `date`
/// (may exceed one day). A time skipped by the spring-forward gap is moved one hour on.
pub fn local_ms(date: NaiveDate, secs: i64) -> i64 {
    let naive = date.and_hms_opt(0, 0, 0).expect("midnight exists") + Duration::seconds(secs);
    naive_local_ms(naive)
}

fn naive_local_ms(naive: NaiveDateTime) -> i64 {
    match TZ.from_local_datetime(&naive) {
        LocalResult::Single(t) => t.timestamp_millis(),
        LocalResult::Ambiguous(a, _) => a.timestamp_millis(),
        LocalResult::None => naive_local_ms(naive + Duration::hours(1)),
    }
}

pub fn utc(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().expect("in range")
}

pub fn local(ms: i64) -> DateTime<Tz> {
    utc(ms).with_timezone(&TZ)
}

/// The hospital-local calendar date of an instant (daily log files split on it).
pub fn local_date(ms: i64) -> NaiveDate {
    local(ms).date_naive()
}

pub fn local_hour(ms: i64) -> u32 {
    local(ms).hour()
}

pub fn is_weekend(date: NaiveDate) -> bool {
    matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}

/// `2026-03-12T14:03:11.123Z`
pub fn fmt_utc(ms: i64, out: &mut String) {
    let t = utc(ms).naive_utc();
    push_naive(&t, out, 'T');
    let _ = write!(out, ".{:03}Z", t.and_utc().timestamp_subsec_millis());
}

/// `2026-03-12T14:03:11Z` (seconds precision, for care rows).
pub fn fmt_utc_secs(ms: i64) -> String {
    let mut s = String::with_capacity(20);
    push_naive(&utc(ms).naive_utc(), &mut s, 'T');
    s.push('Z');
    s
}

/// `2026-03-12T08:03:11.123-06:00`: hospital-local time with its offset.
pub fn fmt_offset(ms: i64, out: &mut String) {
    let t = local(ms);
    push_naive(&t.naive_local(), out, 'T');
    let off = t.offset().fix().local_minus_utc();
    let sign = if off < 0 { '-' } else { '+' };
    let off = off.abs();
    let _ = write!(
        out,
        ".{:03}{}{:02}:{:02}",
        t.timestamp_subsec_millis(),
        sign,
        off / 3600,
        (off % 3600) / 60
    );
}

/// `2026-03-12 08:03:11`: hospital-local time without offset, as the Epic export writes it.
pub fn fmt_local_plain(ms: i64, out: &mut String) {
    push_naive(&local(ms).naive_local(), out, ' ');
}

fn push_naive(t: &NaiveDateTime, out: &mut String, sep: char) {
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}{}{:02}:{:02}:{:02}",
        t.year(),
        t.month(),
        t.day(),
        sep,
        t.hour(),
        t.minute(),
        t.second()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spring_forward_gap_moves_on() {
        // 2026-03-08 02:30 does not exist in Chicago.
        let d = NaiveDate::from_ymd_opt(2026, 3, 8).unwrap();
        let ms = local_ms(d, 2 * 3600 + 1800);
        let mut s = String::new();
        fmt_offset(ms, &mut s);
        assert_eq!(s, "2026-03-08T03:30:00.000-05:00");
        let mut p = String::new();
        fmt_local_plain(local_ms(d, 3600), &mut p);
        assert_eq!(p, "2026-03-08 01:00:00");
    }

    #[test]
    fn formats() {
        let d = NaiveDate::from_ymd_opt(2026, 3, 2).unwrap();
        let ms = local_ms(d, 9 * 3600) + 123;
        let mut s = String::new();
        fmt_utc(ms, &mut s);
        assert_eq!(s, "2026-03-02T15:00:00.123Z");
        assert_eq!(local_date(ms), d);
        assert_eq!(local_hour(ms), 9);
        assert_eq!(fmt_utc_secs(ms), "2026-03-02T15:00:00Z");
    }
}
