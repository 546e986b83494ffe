//! Delimited text with a header row: Epic Clarity and Purview-style access-log exports
//! (`|` or tab), Cerner and TouchWorks reports, any hand-made csv.
//!
//! Rows are split here rather than by the `csv` crate's reader: the file source hands
//! over one line at a time, and building a reader per line costs more than splitting
//! it. The rules are the csv crate's: a field that starts with `"` is quoted until the
//! next lone `"`, `""` inside it is one quote, and text between a closing quote and the
//! next delimiter is kept. A quote inside an unquoted field is literal. A quoted field
//! still open at the end of the line is an error (`bad_quoting`): the row had a line
//! break inside a field and its other half will arrive as the next line.

use super::fields::{self, Actions, Field, Record, Val};
use super::{prepare, reason, Parser, Reject};
use crate::config::{delimiter_byte, SourceConfig};
use crate::event::Event;
use anyhow::bail;
use chrono_tz::Tz;
use std::borrow::Cow;

pub(crate) struct CsvParser {
    source: String,
    tz: Tz,
    delimiter: u8,
    actions: Actions,
    /// Configured (field, column name) pairs; empty means "columns named like the fields".
    wanted: Vec<(Field, String)>,
    /// Patient values that mean no patient (`no_patient`).
    no_patient: Vec<String>,
    header: Option<Header>,
}

/// What the header line told us.
struct Header {
    /// The header line as read, so a repeated header (concatenated files) is skipped.
    line: String,
    columns: usize,
    /// Column index of each canonical field, when the file has it.
    index: [Option<usize>; Field::ALL.len()],
    /// Set when a configured column is missing: every row is rejected with it.
    missing: Option<Reject>,
}

impl CsvParser {
    pub(crate) fn new(source: &SourceConfig, tz: Tz) -> anyhow::Result<CsvParser> {
        let delimiter = match source.delimiter.as_deref() {
            None => b',',
            Some(d) => match delimiter_byte(d) {
                Some(b) if b != b'"' && b != b'\n' && b != b'\r' => b,
                _ => bail!(
                    "delimiter {d:?} must be one character other than a quote (\"\\t\" for tab)"
                ),
            },
        };
        Ok(CsvParser {
            source: source.name.clone(),
            tz,
            delimiter,
            actions: Actions::from_config(&source.actions)?,
            wanted: fields::mapping(&source.fields)?,
            no_patient: source.no_patient.clone(),
            header: None,
        })
    }

    fn read_header(&self, line: &str) -> Header {
        let names = split(line, self.delimiter).unwrap_or_else(|_| {
            // An unbalanced quote in a header: read the names as plain text.
            line.split(self.delimiter as char)
                .map(Cow::Borrowed)
                .collect()
        });
        // `"A|B"`: whichever of the columns the header has (see `config::presets`).
        let find = |name: &str| {
            name.split('|').find_map(|name| {
                names
                    .iter()
                    .position(|n| n.trim().eq_ignore_ascii_case(name.trim()))
            })
        };
        let mut index = [None; Field::ALL.len()];
        let mut missing = Vec::new();
        if self.wanted.is_empty() {
            for f in Field::ALL {
                index[f as usize] = find(f.name());
                if f.required() && index[f as usize].is_none() {
                    missing.push(f.name().to_string());
                }
            }
        } else {
            for (f, column) in &self.wanted {
                // `"NAME?"`: an optional column; a file without it gives no such field.
                let (column, optional) = match column.strip_suffix('?') {
                    Some(c) => (c, true),
                    None => (column.as_str(), false),
                };
                index[*f as usize] = find(column);
                if index[*f as usize].is_none() && !optional {
                    missing.push(column.to_string());
                }
            }
        }
        let missing = (!missing.is_empty()).then(|| {
            Reject::new(
                reason::MISSING_COLUMN,
                format!(
                    "the header has no column {}; check [sources.fields] and the delimiter",
                    missing
                        .iter()
                        .map(|m| format!("{m:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        });
        Header {
            line: line.to_string(),
            columns: names.len(),
            index,
            missing,
        }
    }
}

impl Parser for CsvParser {
    fn parse(&mut self, line: &str) -> Result<Option<Event>, Reject> {
        let Some(line) = prepare(line)? else {
            return Ok(None);
        };
        let Some(header) = &self.header else {
            let header = self.read_header(line);
            let err = header.missing.clone();
            self.header = Some(header);
            return match err {
                Some(e) => Err(e),
                None => Ok(None),
            };
        };
        if let Some(e) = &header.missing {
            return Err(e.clone());
        }
        if line == header.line {
            return Ok(None);
        }
        let cells = split(line, self.delimiter)?;
        if cells.len() != header.columns {
            return Err(Reject::new(
                reason::COLUMN_COUNT,
                format!(
                    "row has {} columns, the header has {}",
                    cells.len(),
                    header.columns
                ),
            ));
        }
        let row = Row {
            cells: &cells,
            index: &header.index,
        };
        fields::to_event(&row, self.tz, &self.actions, &self.source, &self.no_patient).map(Some)
    }

    fn wants_header(&self) -> bool {
        true
    }
}

struct Row<'a> {
    cells: &'a [Cow<'a, str>],
    index: &'a [Option<usize>; Field::ALL.len()],
}

impl Record for Row<'_> {
    fn get(&self, field: Field) -> Option<Val<'_>> {
        let i = self.index[field as usize]?;
        self.cells.get(i).map(|c| Val::Str(c))
    }
}

/// Splits one line into fields (see the module notes for the quoting rules).
pub(crate) fn split(line: &str, delimiter: u8) -> Result<Vec<Cow<'_, str>>, Reject> {
    let b = line.as_bytes();
    let mut out = Vec::with_capacity(16);
    let mut i = 0;
    loop {
        if b.get(i) == Some(&b'"') {
            let mut value = String::new();
            let mut start = i + 1;
            let mut j = start;
            loop {
                match b.get(j) {
                    None => {
                        return Err(Reject::new(
                            reason::BAD_QUOTING,
                            "a quoted field is not closed before the end of the line",
                        ))
                    }
                    Some(b'"') if b.get(j + 1) == Some(&b'"') => {
                        value.push_str(&line[start..=j]);
                        j += 2;
                        start = j;
                    }
                    Some(b'"') => {
                        value.push_str(&line[start..j]);
                        j += 1;
                        break;
                    }
                    Some(_) => j += 1,
                }
            }
            // Text after the closing quote, up to the delimiter, is kept.
            let end = memchr(delimiter, &b[j..]).map_or(b.len(), |k| j + k);
            value.push_str(&line[j..end]);
            out.push(Cow::Owned(value));
            i = end;
        } else {
            let end = memchr(delimiter, &b[i..]).map_or(b.len(), |k| i + k);
            out.push(Cow::Borrowed(&line[i..end]));
            i = end;
        }
        if i >= b.len() {
            return Ok(out);
        }
        i += 1; // the delimiter
    }
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&c| c == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells(line: &str, d: u8) -> Vec<String> {
        split(line, d)
            .unwrap()
            .into_iter()
            .map(Cow::into_owned)
            .collect()
    }

    /// The csv crate's reading of the same line, as the reference.
    fn reference(line: &str, d: u8) -> Vec<String> {
        let mut r = csv::ReaderBuilder::new()
            .has_headers(false)
            .delimiter(d)
            .flexible(true)
            .from_reader(line.as_bytes());
        r.records()
            .next()
            .map(|rec| rec.unwrap().iter().map(str::to_string).collect())
            .unwrap_or_default()
    }

    #[test]
    fn agrees_with_the_csv_crate() {
        for line in [
            "a,b,c",
            "a,,c,",
            ",",
            "\"a,b\",c",
            "\"say \"\"hi\"\"\",x",
            "\"\"",
            "\"\",\"\"",
            "ab\"c,d",
            "\"a\"b,c",
            "é,ü,\"ñ,ø\"",
            "  \"x\"  ,y",
            "\"a\"\"\"",
        ] {
            assert_eq!(cells(line, b','), reference(line, b','), "{line:?}");
        }
        for line in ["a|b|c", "\"x|y\"|z", "|", "a\tb"] {
            assert_eq!(cells(line, b'|'), reference(line, b'|'), "{line:?}");
        }
        assert_eq!(cells("\ta\t", b'\t'), vec!["", "a", ""]);
    }

    #[test]
    fn unclosed_quote() {
        for line in ["\"abc", "a,\"b", "\"a\"\"", "x,\""] {
            assert_eq!(
                split(line, b',').unwrap_err().reason,
                reason::BAD_QUOTING,
                "{line:?}"
            );
        }
    }
}
