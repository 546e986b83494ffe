//! Typed settings from one TOML table (a `[[sinks]]` entry), with errors that name the key
//! and say what to write: "`queue_size` must be a whole number of at least 0, not "big"".
//!
//! The table is read as it was parsed (`toml::Table`), so the same entry can give the keys
//! every sink takes and, separately, those of its type, each a plain serde struct. Keys a
//! struct does not take are passed over here: the strict walk (`config::strict`) has
//! reported them already, with their lines. It is shared by
//! `config` and the components whose settings it reads (`sink`), so it knows neither.

use serde::de::{self, DeserializeOwned, Deserializer, IntoDeserializer, Visitor};
use std::fmt;

/// Why a table could not be read: the key (dotted for nested ones) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableError {
    key: Option<String>,
    kind: ErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ErrorKind {
    /// "must be WANT, not GOT".
    Type {
        want: String,
        got: String,
    },
    /// A name that is none of `known`.
    Name {
        got: String,
        known: Vec<String>,
    },
    Other(String),
}

impl TableError {
    /// The key the error is about, if one.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    fn at(mut self, key: &str) -> TableError {
        if self.key.is_none() {
            self.key = Some(key.to_string());
        }
        self
    }
}

impl fmt::Display for TableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = self.key.as_deref().map(|k| format!("`{k}`"));
        match (&self.kind, key) {
            (ErrorKind::Type { want, got }, Some(k)) => write!(f, "{k} must be {want}, not {got}"),
            (ErrorKind::Type { want, got }, None) => write!(f, "expected {want}, not {got}"),
            (ErrorKind::Name { got, known }, k) => {
                let what = match k {
                    Some(k) => format!("{k} = {got:?}"),
                    None => format!("{got:?}"),
                };
                let list = known
                    .iter()
                    .map(|n| format!("{n:?}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                match nearest(got, known.iter().map(String::as_str)) {
                    Some(n) => write!(
                        f,
                        "{what} is not known; did you mean {n:?}? (one of {list})"
                    ),
                    None => write!(f, "{what} is not known; use one of {list}"),
                }
            }
            (ErrorKind::Other(m), Some(k)) => write!(f, "{k}: {m}"),
            (ErrorKind::Other(m), None) => f.write_str(m),
        }
    }
}

impl std::error::Error for TableError {}

impl de::Error for TableError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        TableError {
            key: None,
            kind: ErrorKind::Other(msg.to_string()),
        }
    }

    fn invalid_type(unexp: de::Unexpected, exp: &dyn de::Expected) -> Self {
        TableError {
            key: None,
            kind: ErrorKind::Type {
                want: plain_expected(&exp.to_string()),
                got: describe(&unexp),
            },
        }
    }

    fn invalid_value(unexp: de::Unexpected, exp: &dyn de::Expected) -> Self {
        Self::invalid_type(unexp, exp)
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        TableError {
            key: None,
            kind: ErrorKind::Name {
                got: variant.to_string(),
                known: expected.iter().map(|s| s.to_string()).collect(),
            },
        }
    }

    fn missing_field(field: &'static str) -> Self {
        TableError {
            key: Some(field.to_string()),
            kind: ErrorKind::Other("missing; this entry needs it".into()),
        }
    }
}

fn describe(u: &de::Unexpected) -> String {
    match u {
        de::Unexpected::Str(s) => format!("{s:?}"),
        de::Unexpected::Signed(n) => n.to_string(),
        de::Unexpected::Unsigned(n) => n.to_string(),
        de::Unexpected::Float(x) => x.to_string(),
        de::Unexpected::Bool(b) => b.to_string(),
        de::Unexpected::Map => "a table".into(),
        de::Unexpected::Seq => "a list".into(),
        other => other.to_string(),
    }
}

/// Reads `T` from `table`. Keys `T` does not take are passed over.
pub fn from_table<T: DeserializeOwned>(table: &toml::Table) -> Result<T, TableError> {
    T::deserialize(TableDe { path: "", table })
}

struct TableDe<'a> {
    path: &'a str,
    table: &'a toml::Table,
}

impl<'de> Deserializer<'de> for TableDe<'_> {
    type Error = TableError;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, TableError> {
        v.visit_map(MapDe {
            path: self.path.to_string(),
            iter: self.table.iter(),
            value: None,
        })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
        byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map
        struct enum identifier ignored_any
    }
}

struct MapDe<'a> {
    path: String,
    iter: toml::map::Iter<'a>,
    value: Option<(String, &'a toml::Value)>,
}

impl<'de> de::MapAccess<'de> for MapDe<'_> {
    type Error = TableError;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, TableError> {
        let Some((k, v)) = self.iter.next() else {
            return Ok(None);
        };
        let path = if self.path.is_empty() {
            k.clone()
        } else {
            format!("{}.{k}", self.path)
        };
        self.value = Some((path, v));
        seed.deserialize(k.as_str().into_deserializer()).map(Some)
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, TableError> {
        let (path, value) = self
            .value
            .take()
            .ok_or_else(|| de::Error::custom("a value without a key"))?;
        seed.deserialize(ValueDe { path: &path, value })
            .map_err(|e| e.at(&path))
    }
}

struct SeqDe<'a> {
    path: &'a str,
    iter: std::iter::Enumerate<std::slice::Iter<'a, toml::Value>>,
}

impl<'de> de::SeqAccess<'de> for SeqDe<'_> {
    type Error = TableError;

    fn next_element_seed<T: de::DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, TableError> {
        let Some((i, value)) = self.iter.next() else {
            return Ok(None);
        };
        let path = format!("{}[{i}]", self.path);
        seed.deserialize(ValueDe { path: &path, value }).map(Some)
    }
}

/// One value; errors from it are about its key.
struct ValueDe<'a> {
    path: &'a str,
    value: &'a toml::Value,
}

impl<'de> Deserializer<'de> for ValueDe<'_> {
    type Error = TableError;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, TableError> {
        let r = match self.value {
            toml::Value::String(s) => v.visit_str(s),
            toml::Value::Integer(n) => v.visit_i64(*n),
            toml::Value::Float(x) => v.visit_f64(*x),
            toml::Value::Boolean(b) => v.visit_bool(*b),
            toml::Value::Datetime(d) => v.visit_string(d.to_string()),
            toml::Value::Array(a) => v.visit_seq(SeqDe {
                path: self.path,
                iter: a.iter().enumerate(),
            }),
            toml::Value::Table(t) => v.visit_map(MapDe {
                path: self.path.to_string(),
                iter: t.iter(),
                value: None,
            }),
        };
        r.map_err(|e| e.at(self.path))
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, TableError> {
        v.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        v: V,
    ) -> Result<V::Value, TableError> {
        v.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, TableError> {
        match self.value {
            toml::Value::String(s) => v
                .visit_enum(s.as_str().into_deserializer())
                .map_err(|e: TableError| e.at(self.path)),
            other => Err(TableError {
                key: Some(self.path.to_string()),
                kind: ErrorKind::Type {
                    want: "a string in quotes".into(),
                    got: other.to_string(),
                },
            }),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
        byte_buf unit unit_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

/// The keys serde reads for `T` (a struct deriving `Deserialize`, without `flatten`): the
/// derive hands them to `deserialize_struct`, where this probe catches them.
pub fn field_names<T: DeserializeOwned>() -> &'static [&'static str] {
    struct Probe<'a>(&'a mut &'static [&'static str]);

    #[derive(Debug)]
    struct Stop;
    impl fmt::Display for Stop {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("probe")
        }
    }
    impl std::error::Error for Stop {}
    impl de::Error for Stop {
        fn custom<M: fmt::Display>(_: M) -> Self {
            Stop
        }
    }

    impl<'de> Deserializer<'de> for Probe<'_> {
        type Error = Stop;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop)
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Stop> {
            *self.0 = fields;
            Err(Stop)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map
            enum identifier ignored_any
        }
    }

    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Probe(&mut fields));
    fields
}

/// The known name nearest to `word` (edit distance, case ignored), if one is close enough
/// to be what was meant.
pub fn nearest<'a>(word: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let w = word.to_ascii_lowercase();
    known
        .into_iter()
        .filter_map(|k| {
            let kl = k.to_ascii_lowercase();
            let d = strsim::damerau_levenshtein(&w, &kl);
            let close = d <= (w.len().max(kl.len()) / 3).max(1)
                || (w.len().min(kl.len()) >= 4 && (kl.starts_with(&w) || w.starts_with(&kl)));
            close.then_some((d, k))
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// What serde expected, in words a config author knows.
pub fn plain_expected(want: &str) -> String {
    match want {
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a whole number of at least 0".into(),
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "a whole number".into(),
        "f32" | "f64" => "a number".into(),
        "a string" | "a borrowed string" | "path string" | "a character" => {
            "a string in quotes".into()
        }
        "a boolean" => "true or false".into(),
        "a sequence" => "a list such as [\"a\", \"b\"]".into(),
        "a map" => "a table such as `{ key = \"value\" }`".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::collections::BTreeMap;

    #[derive(Debug, Deserialize, Default, PartialEq)]
    #[serde(default)]
    struct S {
        size: u64,
        name: Option<String>,
        headers: BTreeMap<String, String>,
        mode: Option<Mode>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "kebab-case")]
    enum Mode {
        Fast,
        Careful,
    }

    fn read(text: &str) -> Result<S, String> {
        let t: toml::Table = toml::from_str(text).unwrap();
        from_table::<S>(&t).map_err(|e| e.to_string())
    }

    #[test]
    fn reads_and_passes_over_other_keys() {
        let s =
            read("size = 3\nname = \"a\"\nother = 1\nheaders = { A = \"b\" }\nmode = \"careful\"")
                .unwrap();
        assert_eq!(s.size, 3);
        assert_eq!(s.name.as_deref(), Some("a"));
        assert_eq!(s.headers["A"], "b");
        assert_eq!(s.mode, Some(Mode::Careful));
        assert_eq!(read("").unwrap(), S::default());
    }

    #[test]
    fn errors_name_the_key_in_plain_words() {
        assert_eq!(
            read("size = \"big\"").unwrap_err(),
            "`size` must be a whole number of at least 0, not \"big\""
        );
        assert_eq!(
            read("size = -1").unwrap_err(),
            "`size` must be a whole number of at least 0, not -1"
        );
        assert_eq!(
            read("headers = { A = 5 }").unwrap_err(),
            "`headers.A` must be a string in quotes, not 5"
        );
        assert_eq!(
            read("mode = \"fats\"").unwrap_err(),
            "`mode` = \"fats\" is not known; did you mean \"fast\"? (one of \"fast\", \"careful\")"
        );
        assert!(read("headers = \"x\"")
            .unwrap_err()
            .starts_with("`headers` must be a table"));
    }
}
