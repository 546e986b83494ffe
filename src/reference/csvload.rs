//! Shared CSV reading for the reference files: header row, any column order, extra
//! columns ignored, empty cells absent. Errors name the file, line and column, and say
//! what would fix them, because these files are maintained by hand or by HR exports.
//!
//! A loader names the columns it reads once ([`read`]'s `columns`) and asks for cells by
//! their position in that list, so a row costs no header lookup by name; dates and times
//! in the one form the contract names are read without chrono's format parser (others
//! still go through it, with the same results), since a care file holds ten million of
//! each.

use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::HashMap;
use std::path::Path;

/// One data row with the positions of the loader's columns in the file.
pub struct Row<'a> {
    pub file: &'a Path,
    pub line: u64,
    /// The loader's column names, for messages.
    names: &'a [&'a str],
    /// `at[i]`: where `names[i]` is in the file, if the header has it.
    at: &'a [Option<usize>],
    record: &'a csv::StringRecord,
}

impl Row<'_> {
    /// The trimmed cell of column `col` (a position in the loader's `columns`), or None
    /// when the column is absent or the cell is empty.
    pub fn get(&self, col: usize) -> Option<&str> {
        let v = self.record.get(self.at[col]?)?.trim();
        (!v.is_empty()).then_some(v)
    }

    /// A required cell.
    pub fn required(&self, col: usize) -> Result<&str> {
        self.get(col).ok_or_else(|| {
            anyhow!(
                "{}:{}: column `{}` is empty; every row needs it",
                self.file.display(),
                self.line,
                self.names[col]
            )
        })
    }

    pub fn date(&self, col: usize) -> Result<Option<NaiveDate>> {
        match self.get(col) {
            None => Ok(None),
            Some(v) => match plain_date(v.as_bytes()) {
                Some(d) => Ok(Some(d)),
                None => NaiveDate::parse_from_str(v, "%Y-%m-%d")
                    .map(Some)
                    .map_err(|_| {
                        anyhow!(
                            "{}:{}: column `{}` holds {v:?}, not a date; write it as YYYY-MM-DD",
                            self.file.display(),
                            self.line,
                            self.names[col]
                        )
                    }),
            },
        }
    }

    /// An RFC 3339 instant as Unix seconds; a bare date is accepted as midnight UTC.
    pub fn instant(&self, col: usize) -> Result<Option<i64>> {
        let Some(v) = self.get(col) else {
            return Ok(None);
        };
        if let Some(t) = plain_instant(v.as_bytes()) {
            return Ok(Some(t));
        }
        if let Ok(t) = DateTime::parse_from_rfc3339(v) {
            return Ok(Some(t.with_timezone(&Utc).timestamp()));
        }
        if let Ok(d) = NaiveDate::parse_from_str(v, "%Y-%m-%d") {
            return Ok(Some(d.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp()));
        }
        bail!(
            "{}:{}: column `{}` holds {v:?}, not a time; write it as RFC 3339, e.g. 2024-05-14T08:00:00Z",
            self.file.display(),
            self.line,
            self.names[col]
        )
    }

    pub fn boolean(&self, col: usize) -> Result<bool> {
        let Some(v) = self.get(col) else {
            return Ok(false);
        };
        const TRUE: [&str; 4] = ["true", "yes", "y", "1"];
        const FALSE: [&str; 4] = ["false", "no", "n", "0"];
        if TRUE.iter().any(|t| v.eq_ignore_ascii_case(t)) {
            Ok(true)
        } else if FALSE.iter().any(|f| v.eq_ignore_ascii_case(f)) {
            Ok(false)
        } else {
            bail!(
                "{}:{}: column `{}` holds {:?}; write true or false",
                self.file.display(),
                self.line,
                self.names[col],
                v.to_ascii_lowercase()
            )
        }
    }
}

/// Two ASCII digits.
fn digits2(b: &[u8]) -> Option<u32> {
    match b {
        [a @ b'0'..=b'9', c @ b'0'..=b'9'] => Some(u32::from(a - b'0') * 10 + u32::from(c - b'0')),
        _ => None,
    }
}

/// `YYYY-MM-DD` exactly, as a valid date; anything else (None) is left to chrono.
fn plain_date(b: &[u8]) -> Option<NaiveDate> {
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let y = digits2(&b[0..2])? * 100 + digits2(&b[2..4])?;
    NaiveDate::from_ymd_opt(y as i32, digits2(&b[5..7])?, digits2(&b[8..10])?)
}

/// `YYYY-MM-DDTHH:MM:SSZ` exactly, as Unix seconds; anything else (fractions, offsets,
/// a leap second, a bare date) is left to chrono, which reads it the same way.
fn plain_instant(b: &[u8]) -> Option<i64> {
    if b.len() != 20 || b[10] != b'T' || b[13] != b':' || b[16] != b':' || b[19] != b'Z' {
        return None;
    }
    let d = plain_date(&b[..10])?;
    let (h, m, s) = (
        digits2(&b[11..13])?,
        digits2(&b[14..16])?,
        digits2(&b[17..19])?,
    );
    if h > 23 || m > 59 || s > 59 {
        return None;
    }
    let midnight = d.and_hms_opt(0, 0, 0)?.and_utc().timestamp();
    Some(midnight + i64::from(h * 3600 + m * 60 + s))
}

/// About how many data rows `path` holds: its size over the mean length of its first
/// lines. Loaders reserve that much up front, so tables of millions of rows are neither
/// copied as they grow nor left with up to twice the room they need.
pub fn estimate_rows(path: &Path) -> usize {
    use std::io::Read;
    let Ok(mut f) = std::fs::File::open(path) else {
        return 0;
    };
    let Ok(len) = f.metadata().map(|m| m.len()) else {
        return 0;
    };
    let mut head = vec![0u8; 64 * 1024];
    let mut got = 0;
    while got < head.len() {
        match f.read(&mut head[got..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    let lines = memchr::memchr_iter(b'\n', &head[..got]).count();
    if lines < 2 || got as u64 >= len {
        return lines;
    }
    // The header is the first line; a few percent more, for rows longer than the first.
    let per_row = got as f64 / lines as f64;
    (len as f64 / per_row * 1.05) as usize
}

/// Reads `path`, checks that the `required` columns exist in the header, and calls `f`
/// for every data row; `f` reads the cells of `columns` (every column it may read) by
/// their position in that list.
///
/// HR and ADT exports always hold some bad rows. A row that `f` refuses, or that is not
/// valid CSV, is set aside with its file, line and reason (returned, for the caller to
/// count and report once) and the rest is loaded. Only a file that cannot be read or whose
/// header lacks a required column is an error.
pub fn read(
    path: &Path,
    columns: &[&str],
    required: &[&str],
    mut f: impl FnMut(&Row) -> Result<()>,
) -> Result<Vec<String>> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot open reference file {}", path.display()))?;
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::None)
        .buffer_capacity(1 << 20)
        .from_reader(file);
    let headers = rdr
        .headers()
        .with_context(|| format!("{}:1: cannot read the header row", path.display()))?
        .clone();
    let cols: HashMap<String, usize> = headers
        .iter()
        .enumerate()
        .map(|(i, h)| {
            (
                h.trim().trim_start_matches('\u{feff}').to_ascii_lowercase(),
                i,
            )
        })
        .collect();
    let missing: Vec<&str> = required
        .iter()
        .copied()
        .filter(|c| !cols.contains_key(*c))
        .collect();
    if !missing.is_empty() {
        bail!(
            "{}:1: the header lacks column(s) {}; the header must name them (any order)",
            path.display(),
            missing.join(", ")
        );
    }
    let at: Vec<Option<usize>> = columns.iter().map(|c| cols.get(*c).copied()).collect();
    let mut record = csv::StringRecord::new();
    let mut rejected = Vec::new();
    let mut last_error_at = None;
    loop {
        match rdr.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let line = record.position().map_or(0, |p| p.line());
                if record.iter().all(|c| c.trim().is_empty()) {
                    continue;
                }
                let row = Row {
                    file: path,
                    line,
                    names: columns,
                    at: &at,
                    record: &record,
                };
                if let Err(e) = f(&row) {
                    rejected.push(format!("{e:#}"));
                }
            }
            Err(e) => {
                let at = e.position().map(|p| p.byte());
                if at.is_some() && at == last_error_at {
                    break; // the reader cannot move past it
                }
                last_error_at = at;
                let line = e.position().map_or(0, |p| p.line());
                rejected.push(format!("{}:{line}: not valid CSV: {e}", path.display()));
                if e.is_io_error() {
                    break;
                }
            }
        }
    }
    Ok(rejected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_forms_read_as_chrono_does() {
        for v in [
            "2024-05-14",
            "2024-02-29",
            "1899-12-31",
            "0001-01-01",
            "9999-12-31",
        ] {
            assert_eq!(
                plain_date(v.as_bytes()),
                NaiveDate::parse_from_str(v, "%Y-%m-%d").ok(),
                "{v}"
            );
        }
        for v in [
            "2023-02-29",
            "2024-13-01",
            "2024-00-10",
            "2024-1-10",
            "2024/01/10",
            "+2024-01-1",
        ] {
            assert_eq!(plain_date(v.as_bytes()), None, "{v}");
        }
        for v in [
            "2024-05-14T08:00:00Z",
            "1960-01-01T23:59:59Z",
            "2024-02-29T12:34:56Z",
        ] {
            let chrono = DateTime::parse_from_rfc3339(v).unwrap().timestamp();
            assert_eq!(plain_instant(v.as_bytes()), Some(chrono), "{v}");
        }
        for v in [
            "2024-05-14T24:00:00Z",
            "2024-05-14T08:00:60Z",
            "2024-05-14T08:00:00+01:00",
            "2024-05-14 08:00:00Z",
            "2024-05-14T08:00:00.5Z",
        ] {
            assert_eq!(plain_instant(v.as_bytes()), None, "{v}");
        }
    }
}
