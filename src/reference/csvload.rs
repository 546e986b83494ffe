//! Shared CSV reading for the reference files: header row, any column order, extra
//! columns ignored, empty cells absent. Errors name the file, line and column, and say
//! what would fix them, because these files are maintained by hand or by HR exports.

use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::HashMap;
use std::path::Path;

/// One data row with the header's column positions.
pub struct Row<'a> {
    pub file: &'a Path,
    pub line: u64,
    cols: &'a HashMap<String, usize>,
    record: &'a csv::StringRecord,
}

impl Row<'_> {
    /// The trimmed cell of `col`, or None when the column is absent or the cell is empty.
    pub fn get(&self, col: &str) -> Option<&str> {
        let i = *self.cols.get(col)?;
        let v = self.record.get(i)?.trim();
        (!v.is_empty()).then_some(v)
    }

    /// A required cell.
    pub fn required(&self, col: &str) -> Result<&str> {
        self.get(col).ok_or_else(|| {
            anyhow!(
                "{}:{}: column `{col}` is empty; every row needs it",
                self.file.display(),
                self.line
            )
        })
    }

    pub fn date(&self, col: &str) -> Result<Option<NaiveDate>> {
        match self.get(col) {
            None => Ok(None),
            Some(v) => NaiveDate::parse_from_str(v, "%Y-%m-%d")
                .map(Some)
                .map_err(|_| {
                    anyhow!(
                        "{}:{}: column `{col}` holds {v:?}, not a date; write it as YYYY-MM-DD",
                        self.file.display(),
                        self.line
                    )
                }),
        }
    }

    /// An RFC 3339 instant; a bare date is accepted as midnight UTC.
    pub fn instant(&self, col: &str) -> Result<Option<DateTime<Utc>>> {
        let Some(v) = self.get(col) else {
            return Ok(None);
        };
        if let Ok(t) = DateTime::parse_from_rfc3339(v) {
            return Ok(Some(t.with_timezone(&Utc)));
        }
        if let Ok(d) = NaiveDate::parse_from_str(v, "%Y-%m-%d") {
            return Ok(Some(d.and_hms_opt(0, 0, 0).unwrap().and_utc()));
        }
        bail!(
            "{}:{}: column `{col}` holds {v:?}, not a time; write it as RFC 3339, e.g. 2024-05-14T08:00:00Z",
            self.file.display(),
            self.line
        )
    }

    pub fn boolean(&self, col: &str) -> Result<bool> {
        match self.get(col).map(|v| v.to_ascii_lowercase()) {
            None => Ok(false),
            Some(v) => match v.as_str() {
                "true" | "yes" | "y" | "1" => Ok(true),
                "false" | "no" | "n" | "0" => Ok(false),
                _ => bail!(
                    "{}:{}: column `{col}` holds {v:?}; write true or false",
                    self.file.display(),
                    self.line
                ),
            },
        }
    }
}

/// Reads `path`, checks that the `required` columns exist in the header, and calls `f`
/// for every data row.
///
/// HR and ADT exports always hold some bad rows. A row that `f` refuses, or that is not
/// valid CSV, is set aside with its file, line and reason (returned, for the caller to
/// count and report once) and the rest is loaded. Only a file that cannot be read or whose
/// header lacks a required column is an error.
pub fn read(
    path: &Path,
    required: &[&str],
    mut f: impl FnMut(&Row) -> Result<()>,
) -> Result<Vec<String>> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot open reference file {}", path.display()))?;
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::None)
        .from_reader(std::io::BufReader::new(file));
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
                    cols: &cols,
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
