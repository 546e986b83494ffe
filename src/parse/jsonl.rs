//! One JSON object a line, in the source's own shape: `[sources.fields]` maps each
//! canonical field to a dotted path (`actor.id`, `patient.mrn`, `entity.0.id` for an
//! array element). Without a table, top-level keys named like the canonical fields.
//! Values may be strings or numbers; the action table and timestamp rules are csv's.

use super::fields::{self, Actions, Field, Record, Val};
use super::{prepare, reason, Parser, Reject};
use crate::config::SourceConfig;
use crate::event::Event;
use chrono_tz::Tz;
use serde_json::Value;

pub(crate) struct JsonlParser {
    source: String,
    tz: Tz,
    actions: Actions,
    /// Path of each canonical field, split at dots once at build time.
    paths: Vec<(Field, Path)>,
    /// Patient values that mean no patient (`no_patient`).
    no_patient: Vec<String>,
}

/// A dotted path, kept whole too: a key may itself contain dots (`"actor.id": "x"`).
struct Path {
    whole: String,
    parts: Vec<String>,
}

impl Path {
    fn new(p: &str) -> Path {
        Path {
            whole: p.to_string(),
            parts: p.split('.').map(str::to_string).collect(),
        }
    }

    fn lookup<'v>(&self, root: &'v Value) -> Option<&'v Value> {
        if let Some(v) = root.get(self.whole.as_str()) {
            return Some(v);
        }
        let mut cur = root;
        for part in &self.parts {
            cur = match cur {
                Value::Object(m) => m.get(part.as_str())?,
                Value::Array(a) => a.get(part.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(cur)
    }
}

impl JsonlParser {
    pub(crate) fn new(source: &SourceConfig, tz: Tz) -> anyhow::Result<JsonlParser> {
        let mapping = fields::mapping(&source.fields)?;
        let paths = if mapping.is_empty() {
            Field::ALL
                .iter()
                .map(|f| (*f, Path::new(f.name())))
                .collect()
        } else {
            // A path may end in `?` as a csv column may (optional); a missing path is
            // an absent field here anyway.
            mapping
                .iter()
                .map(|(f, p)| (*f, Path::new(p.strip_suffix('?').unwrap_or(p))))
                .collect()
        };
        Ok(JsonlParser {
            source: source.name.clone(),
            tz,
            actions: Actions::from_config(&source.actions)?,
            paths,
            no_patient: source.no_patient.clone(),
        })
    }
}

/// Parses a line as a JSON object, the first step jsonl and canonical share.
pub(crate) fn object(line: &str) -> Result<Value, Reject> {
    let v: Value = serde_json::from_str(line.trim())
        .map_err(|e| Reject::new(reason::BAD_JSON, format!("not valid JSON: {e}")))?;
    if !v.is_object() {
        return Err(Reject::new(
            reason::NOT_OBJECT,
            "the line is JSON but not an object",
        ));
    }
    Ok(v)
}

impl Parser for JsonlParser {
    fn parse(&mut self, line: &str) -> Result<Option<Event>, Reject> {
        let Some(line) = prepare(line)? else {
            return Ok(None);
        };
        let v = object(line)?;
        let rec = Doc {
            root: &v,
            paths: &self.paths,
        };
        fields::to_event(&rec, self.tz, &self.actions, &self.source, &self.no_patient).map(Some)
    }
}

struct Doc<'a> {
    root: &'a Value,
    paths: &'a [(Field, Path)],
}

impl Record for Doc<'_> {
    fn get(&self, field: Field) -> Option<Val<'_>> {
        let (_, path) = self.paths.iter().find(|(f, _)| *f == field)?;
        Val::from_json(path.lookup(self.root)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths() {
        let v = json!({"actor": {"id": "u1"}, "a.b": 1, "list": [{"x": 5}]});
        assert_eq!(Path::new("actor.id").lookup(&v), Some(&json!("u1")));
        assert_eq!(Path::new("a.b").lookup(&v), Some(&json!(1)));
        assert_eq!(Path::new("list.0.x").lookup(&v), Some(&json!(5)));
        assert_eq!(Path::new("list.9.x").lookup(&v), None);
        assert_eq!(Path::new("actor.id.deeper").lookup(&v), None);
    }
}
