//! What csv, jsonl and canonical share: the canonical field names a source maps its
//! columns or paths onto, the action table, and turning the mapped values into an event.
//!
//! Each format only has to say how to find a field's raw value ([`Val`]); the checks and
//! conversions, and so the reject reasons, are the same for all three.

use super::time::{from_epoch, parse_ts};
use super::{ident, quote_label, reason, Reject};
use crate::event::{Action, Event, Media, Outcome};
use anyhow::bail;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use std::collections::{BTreeMap, HashMap};

/// The canonical fields a `[sources.fields]` table can map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Field {
    Ts,
    User,
    Patient,
    Action,
    Host,
    Records,
    Bytes,
    Path,
    Media,
    Outcome,
    Purpose,
}

impl Field {
    pub(crate) const ALL: [Field; 11] = [
        Field::Ts,
        Field::User,
        Field::Patient,
        Field::Action,
        Field::Host,
        Field::Records,
        Field::Bytes,
        Field::Path,
        Field::Media,
        Field::Outcome,
        Field::Purpose,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Field::Ts => "ts",
            Field::User => "user",
            Field::Patient => "patient",
            Field::Action => "action",
            Field::Host => "host",
            Field::Records => "records",
            Field::Bytes => "bytes",
            Field::Path => "path",
            Field::Media => "media",
            Field::Outcome => "outcome",
            Field::Purpose => "purpose",
        }
    }

    /// The fields without which there is no event.
    pub(crate) fn required(self) -> bool {
        matches!(self, Field::Ts | Field::User | Field::Action)
    }
}

/// Reads a `[sources.fields]` table into (field, column-or-path) pairs. An unknown key is
/// a config error: a typo such as `usr` would otherwise silently drop every user.
pub(crate) fn mapping(table: &BTreeMap<String, String>) -> anyhow::Result<Vec<(Field, String)>> {
    let mut out = Vec::new();
    for (key, target) in table {
        let Some(field) = Field::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(key.trim()))
        else {
            let names: Vec<&str> = Field::ALL.iter().map(|f| f.name()).collect();
            bail!(
                "[sources.fields] has unknown field {key:?}; use one of {}",
                names.join(", ")
            );
        };
        if target.trim().is_empty() {
            bail!("[sources.fields] maps {key:?} to an empty name");
        }
        out.push((field, target.trim().to_string()));
    }
    if !out.is_empty() {
        for f in Field::ALL.into_iter().filter(|f| f.required()) {
            if !out.iter().any(|(g, _)| *g == f) {
                bail!(
                    "[sources.fields] has no `{}`; map it to the column or path that holds it",
                    f.name()
                );
            }
        }
    }
    Ok(out)
}

/// A raw field value as the line holds it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Val<'a> {
    Str(&'a str),
    Int(i64),
    UInt(u64),
    Float(f64),
    Bool(bool),
    /// A JSON object or array.
    Nested,
}

impl<'a> Val<'a> {
    pub(crate) fn from_json(v: &'a serde_json::Value) -> Option<Val<'a>> {
        use serde_json::Value;
        Some(match v {
            Value::Null => return None,
            Value::String(s) => Val::Str(s),
            Value::Bool(b) => Val::Bool(*b),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    Val::UInt(u)
                } else if let Some(i) = n.as_i64() {
                    Val::Int(i)
                } else {
                    Val::Float(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Value::Array(_) | Value::Object(_) => Val::Nested,
        })
    }

    /// The value as text when it is a string or a number (ids are often numeric).
    fn text(self) -> Option<std::borrow::Cow<'a, str>> {
        use std::borrow::Cow;
        match self {
            Val::Str(s) => Some(Cow::Borrowed(s)),
            Val::Int(i) => Some(Cow::Owned(i.to_string())),
            Val::UInt(u) => Some(Cow::Owned(u.to_string())),
            Val::Float(f) if f.is_finite() => Some(Cow::Owned(f.to_string())),
            _ => None,
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Val::Str(_) => "a string",
            Val::Int(_) | Val::UInt(_) | Val::Float(_) => "a number",
            Val::Bool(_) => "a boolean",
            Val::Nested => "an object or array",
        }
    }
}

/// Raw action values to canonical actions: the source's `[sources.actions]` table first
/// (keys compared trimmed and case-insensitively), then the canonical names themselves,
/// then a few plain-English synonyms that real exports use.
#[derive(Debug, Clone, Default)]
pub(crate) struct Actions {
    table: HashMap<String, Action>,
    synonyms: bool,
}

impl Actions {
    pub(crate) fn from_config(table: &BTreeMap<String, String>) -> anyhow::Result<Actions> {
        let mut map = HashMap::with_capacity(table.len());
        for (raw, canonical) in table {
            let Some(a) = Action::parse(canonical) else {
                bail!("[sources.actions] maps {raw:?} to unknown action {canonical:?}");
            };
            map.insert(fold(raw), a);
        }
        Ok(Actions {
            table: map,
            synonyms: true,
        })
    }

    /// Only the canonical names: the canonical format's contract.
    pub(crate) fn canonical_only() -> Actions {
        Actions::default()
    }

    pub(crate) fn resolve(&self, raw: &str) -> Result<Action, Reject> {
        let key = fold(raw);
        if key.is_empty() {
            return Err(Reject::new(
                reason::MISSING_ACTION,
                "the action field is empty",
            ));
        }
        if let Some(a) = self.table.get(&key) {
            return Ok(*a);
        }
        if let Some(a) = Action::parse(&key) {
            return Ok(a);
        }
        if self.synonyms {
            if let Some(a) = synonym(&key) {
                return Ok(a);
            }
        }
        Err(Reject::new(
            reason::UNKNOWN_ACTION,
            format!(
                "action {} is neither in [sources.actions] nor a canonical action",
                quote_label(raw)
            ),
        ))
    }
}

/// Trimmed and lower-cased, with runs of inner whitespace as one space, so that
/// `"Report  Exported "` finds `"REPORT EXPORTED"`.
fn fold(s: &str) -> String {
    if s.is_ascii() {
        return fold_ascii(s);
    }
    let mut out = String::with_capacity(s.len());
    for word in s.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(word.chars().flat_map(char::to_lowercase));
    }
    out
}

/// [`fold`] of an ASCII value (nearly every action value), a byte at a time: decoding
/// each character for `split_whitespace` and pushing it back one by one cost about 2,000
/// instructions for a 50-byte Epic metric name.
fn fold_ascii(s: &str) -> String {
    let b = s.as_bytes();
    // Words one space apart (the usual spelling) are lower-cased whole. The checks fold
    // over every byte rather than stop at the first hit, which lets them run on vectors.
    let other_space = b
        .iter()
        .fold(false, |a, &c| a | (c.wrapping_sub(b'\t') < 5));
    let double_space = b
        .windows(2)
        .fold(false, |a, w| a | ((w[0] == b' ') & (w[1] == b' ')));
    if !other_space && !double_space && b.first() != Some(&b' ') && b.last() != Some(&b' ') {
        return s.to_ascii_lowercase();
    }
    let mut out = Vec::with_capacity(s.len());
    let mut gap = false;
    for &c in b {
        // The ASCII characters `char::is_whitespace` accepts (`u8::is_ascii_whitespace`
        // leaves out the vertical tab).
        if matches!(c, b'\t'..=b'\r' | b' ') {
            gap = !out.is_empty();
        } else {
            if gap {
                out.push(b' ');
                gap = false;
            }
            out.push(c);
        }
    }
    out.make_ascii_lowercase();
    String::from_utf8(out).expect("ASCII stays ASCII")
}

fn synonym(folded: &str) -> Option<Action> {
    let k = folded.replace([' ', '-'], "_");
    if let Some(a) = Action::parse(&k) {
        return Some(a);
    }
    Some(match k.as_str() {
        "read" | "access" | "accessed" | "viewed" | "open" | "opened" | "select" | "display"
        | "displayed" | "chart_open" | "chart_access" => Action::View,
        "query" | "lookup" | "find" | "searched" | "list" => Action::Search,
        "insert" | "add" | "added" | "new" | "created" => Action::Create,
        "modify" | "modified" | "edit" | "edited" | "change" | "changed" | "updated" | "write"
        | "patch" | "amend" | "amended" => Action::Update,
        "remove" | "removed" | "deleted" | "purge" => Action::Delete,
        "download" | "downloaded" | "exported" | "extract" | "extracted" | "disclose"
        | "disclosed" => Action::Export,
        "printed" | "print_out" => Action::Print,
        "logon" | "log_on" | "log_in" | "signin" | "sign_in" | "signon" | "sign_on" => {
            Action::Login
        }
        "logoff" | "log_off" | "log_out" | "signout" | "sign_out" | "signoff" | "sign_off" => {
            Action::Logout
        }
        "btg" | "break_the_glass" | "breakglass" | "emergency_access" => Action::BreakGlass,
        _ => return None,
    })
}

/// How a format hands the field values of one line to [`to_event`].
pub(crate) trait Record {
    fn get(&self, field: Field) -> Option<Val<'_>>;
}

/// Builds the event from mapped values: ts, user and action required, the rest checked
/// when present. Empty strings count as absent, and so does a patient value listed in
/// `no_patient` (the source's placeholders for "none", such as OpenEMR's `0`).
pub(crate) fn to_event(
    rec: &dyn Record,
    tz: Tz,
    actions: &Actions,
    source: &str,
    no_patient: &[String],
) -> Result<Event, Reject> {
    let present = |f: Field| {
        rec.get(f)
            .filter(|v| !matches!(v, Val::Str(s) if s.trim().is_empty()))
    };

    let ts = match present(Field::Ts) {
        None => {
            return Err(Reject::new(
                reason::MISSING_TIMESTAMP,
                "the timestamp field is missing or empty",
            ))
        }
        Some(v) => timestamp(v, tz)?,
    };
    let user = match present(Field::User) {
        None => {
            return Err(Reject::new(
                reason::MISSING_USER,
                "the user field is missing or empty",
            ))
        }
        Some(v) => v.text().and_then(|t| ident(&t)).ok_or_else(|| {
            Reject::new(
                reason::BAD_FIELD,
                format!("the user field holds {}, not a string", v.kind()),
            )
        })?,
    };
    let action = match present(Field::Action) {
        None => {
            return Err(Reject::new(
                reason::MISSING_ACTION,
                "the action field is missing or empty",
            ))
        }
        Some(v) => {
            let t = v.text().ok_or_else(|| {
                Reject::new(
                    reason::BAD_FIELD,
                    format!("the action field holds {}, not a string", v.kind()),
                )
            })?;
            actions.resolve(&t)?
        }
    };

    let mut event = Event::new(ts, user, action);
    event.source = source.to_string();
    event.patient = id_field(present(Field::Patient), Field::Patient)?
        .filter(|p| !no_patient.iter().any(|n| n.trim().eq_ignore_ascii_case(p)));
    event.purpose = id_field(present(Field::Purpose), Field::Purpose)?;
    event.host = id_field(present(Field::Host), Field::Host)?;
    event.path = match present(Field::Path) {
        None => None,
        Some(Val::Str(s)) => Some(s.to_string()),
        Some(v) => return Err(wrong_kind(Field::Path, v)),
    };
    if let Some(n) = number(present(Field::Records), Field::Records)? {
        event.records = n;
    }
    event.bytes = number(present(Field::Bytes), Field::Bytes)?;
    event.media = match present(Field::Media) {
        None => None,
        Some(Val::Str(s)) => Some(Media::parse(s).ok_or_else(|| {
            Reject::new(
                reason::BAD_MEDIA,
                format!(
                    "media {} is not one of removable, network, cloud, local",
                    quote_label(s)
                ),
            )
        })?),
        Some(v) => return Err(wrong_kind(Field::Media, v)),
    };
    if let Some(v) = present(Field::Outcome) {
        event.outcome = outcome(v)?;
    }
    Ok(event)
}

fn wrong_kind(f: Field, v: Val) -> Reject {
    Reject::new(
        reason::BAD_FIELD,
        format!("the {} field holds {}", f.name(), v.kind()),
    )
}

fn timestamp(v: Val, tz: Tz) -> Result<DateTime<Utc>, Reject> {
    let ts = match v {
        Val::Str(s) => parse_ts(s, tz),
        Val::UInt(u) => from_epoch(u as f64),
        Val::Int(i) => from_epoch(i as f64),
        Val::Float(f) => from_epoch(f),
        Val::Bool(_) | Val::Nested => return Err(wrong_kind(Field::Ts, v)),
    };
    ts.ok_or_else(|| {
        Reject::new(
            reason::BAD_TIMESTAMP,
            "the timestamp is not RFC 3339, 'YYYY-MM-DD HH:MM:SS', 'MM/DD/YYYY HH:MM' or epoch seconds/milliseconds",
        )
    })
}

fn id_field(v: Option<Val>, f: Field) -> Result<Option<String>, Reject> {
    match v {
        None => Ok(None),
        Some(v) => match v.text() {
            Some(t) => Ok(ident(&t)),
            None => Err(wrong_kind(f, v)),
        },
    }
}

/// A non-negative integer, from a JSON number or a string of digits.
fn number(v: Option<Val>, f: Field) -> Result<Option<u64>, Reject> {
    let bad = || {
        Reject::new(
            reason::BAD_NUMBER,
            format!("{} is not a non-negative integer", f.name()),
        )
    };
    match v {
        None => Ok(None),
        Some(Val::UInt(u)) => Ok(Some(u)),
        Some(Val::Float(x)) if x >= 0.0 && x.fract() == 0.0 && x < 1.8e19 => Ok(Some(x as u64)),
        Some(Val::Str(s)) => s.trim().parse::<u64>().map(Some).map_err(|_| bad()),
        Some(_) => Err(bad()),
    }
}

/// Success and failure spellings. Numbers are read as booleans (1 success, 0 failure,
/// as OpenEMR's `success` column), except the ATNA failure codes 4, 8 and 12; a csv
/// `0` therefore means failure, unlike in ATNA XML.
fn outcome(v: Val) -> Result<Outcome, Reject> {
    let bad = || {
        Reject::new(
            reason::BAD_OUTCOME,
            "outcome is neither a success nor a failure value",
        )
    };
    match v {
        Val::Bool(true) | Val::UInt(1) | Val::Int(1) => Ok(Outcome::Success),
        Val::Bool(false) | Val::UInt(0 | 4 | 8 | 12) | Val::Int(0) => Ok(Outcome::Failure),
        Val::Str(s) => match fold(s).as_str() {
            "success" | "succeeded" | "successful" | "ok" | "true" | "yes" | "y" | "s" | "1"
            | "allowed" | "granted" | "permitted" | "pass" | "passed" => Ok(Outcome::Success),
            "failure" | "failed" | "fail" | "false" | "no" | "n" | "f" | "0" | "4" | "8" | "12"
            | "denied" | "error" | "refused" | "blocked" => Ok(Outcome::Failure),
            _ => Err(bad()),
        },
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fold_trims_lowercases_and_joins() {
        assert_eq!(fold("  Report \t Exported "), "report exported");
        assert_eq!(fold("ÉTAT  Consulté"), "état consulté");
        assert_eq!(fold("İx"), "i\u{307}x", "as char::to_lowercase");
        assert_eq!(fold(" \u{a0} "), "");
    }

    #[test]
    fn ascii_fold_is_the_general_fold() {
        let general = |s: &str| {
            s.split_whitespace()
                .map(|w| w.chars().flat_map(char::to_lowercase).collect::<String>())
                .collect::<Vec<_>>()
                .join(" ")
        };
        let all: String = (0u8..128).map(char::from).collect();
        for s in [
            all.as_str(),
            " A\x0bB\x0cC\rD\nE\tF\x1cG\x1fH ",
            "  Report \t Exported ",
            "",
            "x",
            " ",
            "A B",
            " A B",
            "A B ",
            "A  B",
            "A\tB",
            "A\x0bB",
            "REPORT EXPORTED",
        ] {
            assert_eq!(fold_ascii(s), general(s), "{s:?}");
        }
    }

    #[test]
    fn action_lookup_order() {
        let mut t = BTreeMap::new();
        t.insert("REPORT EXPORTED".to_string(), "export".to_string());
        t.insert("view".to_string(), "print".to_string());
        let a = Actions::from_config(&t).unwrap();
        assert_eq!(a.resolve("  report   exported "), Ok(Action::Export));
        // The table wins over the canonical name.
        assert_eq!(a.resolve("VIEW"), Ok(Action::Print));
        assert_eq!(a.resolve("break-glass"), Ok(Action::BreakGlass));
        assert_eq!(a.resolve("Printed"), Ok(Action::Print));
        assert_eq!(a.resolve("Log Off"), Ok(Action::Logout));
        let r = a.resolve("PEND A NOTE").unwrap_err();
        assert_eq!(r.reason, reason::UNKNOWN_ACTION);
        assert!(r.detail.contains("PEND A NOTE"));
        assert_eq!(a.resolve("  ").unwrap_err().reason, reason::MISSING_ACTION);
        assert_eq!(
            Actions::canonical_only()
                .resolve("read")
                .unwrap_err()
                .reason,
            reason::UNKNOWN_ACTION
        );
    }

    #[test]
    fn bad_tables_are_config_errors() {
        let mut t = BTreeMap::new();
        t.insert("x".to_string(), "peek".to_string());
        assert!(Actions::from_config(&t).is_err());
        let mut f = BTreeMap::new();
        f.insert("usr".to_string(), "USER_ID".to_string());
        assert!(mapping(&f).is_err());
        let mut f = BTreeMap::new();
        f.insert("user".to_string(), "USER_ID".to_string());
        let err = mapping(&f).unwrap_err().to_string();
        assert!(err.contains("`ts`"), "{err}");
    }

    #[test]
    fn numbers_and_outcomes() {
        assert_eq!(number(Some(Val::Str(" 12 ")), Field::Records), Ok(Some(12)));
        assert_eq!(number(Some(Val::Float(3.0)), Field::Records), Ok(Some(3)));
        for v in [
            Val::Str("-1"),
            Val::Str("1e3"),
            Val::Str("99999999999999999999999"),
            Val::Int(-3),
            Val::Float(1.5),
            Val::Bool(true),
        ] {
            assert_eq!(
                number(Some(v), Field::Bytes).unwrap_err().reason,
                reason::BAD_NUMBER
            );
        }
        assert_eq!(outcome(Val::Str("Denied")), Ok(Outcome::Failure));
        assert_eq!(outcome(Val::UInt(1)), Ok(Outcome::Success));
        assert_eq!(outcome(Val::Bool(false)), Ok(Outcome::Failure));
        assert_eq!(
            outcome(Val::Str("maybe")).unwrap_err().reason,
            reason::BAD_OUTCOME
        );
    }
}
