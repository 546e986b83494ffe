//! A JSON tree that borrows from the line it was read from, for the FHIR parser.
//!
//! `serde_json::Value` was most of a FHIR replay's time: every object became a
//! `BTreeMap` with an owned `String` per key and per value, so a 1 KB AuditEvent cost a
//! hundred allocations and as many tree inserts before phiwatch read the five elements it
//! needs. This tree keeps what the liberal, per-element lookups of the parser need (any
//! element may have any type; a wrong type costs that element, not the line) and drops
//! the rest of the cost: strings without escapes borrow from the line, and objects are a
//! small vector searched linearly (AuditEvent objects have a handful of keys, fewer than a
//! tree or hash map pays off for).
//!
//! Its accessors mirror `serde_json::Value`'s (`v["a"]["b"]`, `as_str`, `as_array`,
//! `is_null`), and a key given twice in one object means its last value, as with
//! `Value`, so the parser reads a line exactly as it did before.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;

/// One JSON value, borrowing unescaped strings from the input.
#[derive(Debug, Clone, PartialEq)]
pub enum Json<'a> {
    Null,
    Bool(bool),
    /// Kept as serde_json reads it, so a numeric identifier prints as before.
    Number(serde_json::Number),
    String(Cow<'a, str>),
    Array(Vec<Json<'a>>),
    Object(Vec<(Cow<'a, str>, Json<'a>)>),
}

static NULL: Json<'static> = Json::Null;

impl<'a> Json<'a> {
    /// Parses one JSON text; the tree borrows from `s`.
    pub fn parse(s: &'a str) -> serde_json::Result<Json<'a>> {
        serde_json::from_str(s)
    }

    /// The member `key` of an object (its last value if the key repeats).
    pub fn get(&self, key: &str) -> Option<&Json<'a>> {
        match self {
            Json::Object(members) => members.iter().rev().find(|(k, _)| k == key).map(|m| &m.1),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&Vec<Json<'a>>> {
        match self {
            Json::Array(a) => Some(a),
            _ => None,
        }
    }

    pub fn is_array(&self) -> bool {
        matches!(self, Json::Array(_))
    }

    pub fn is_object(&self) -> bool {
        matches!(self, Json::Object(_))
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Json::Null)
    }
}

impl<'a> std::ops::Index<&str> for Json<'a> {
    type Output = Json<'a>;

    /// `Null` when this is not an object or has no such key, as `Value` does.
    fn index(&self, key: &str) -> &Json<'a> {
        self.get(key).unwrap_or(&NULL)
    }
}

impl<'a> std::ops::Index<usize> for Json<'a> {
    type Output = Json<'a>;

    /// `Null` when this is not an array or is shorter, as `Value` does.
    fn index(&self, i: usize) -> &Json<'a> {
        match self {
            Json::Array(a) => a.get(i).unwrap_or(&NULL),
            _ => &NULL,
        }
    }
}

impl<'de> Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Json<'de>, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

/// A member name that borrows when the input has no escapes in it (compared unescaped).
/// (The typed FHIR reader has its own cursor, which unescapes keys the same way.)
pub(crate) struct Key<'de>(pub(crate) Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Key<'de>, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s)))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Json<'de>, D::Error> {
        Json::deserialize(d)
    }
    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Json<'de>, E> {
        Ok(Json::Bool(b))
    }
    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Json<'de>, E> {
        Ok(Json::Number(n.into()))
    }
    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Json<'de>, E> {
        Ok(Json::Number(n.into()))
    }
    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Json<'de>, E> {
        // Non-finite numbers cannot come out of JSON text; `Value` maps them to Null too.
        Ok(serde_json::Number::from_f64(n).map_or(Json::Null, Json::Number))
    }
    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Borrowed(s)))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Owned(s.to_owned())))
    }
    fn visit_string<E: de::Error>(self, s: String) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Owned(s)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(16));
        while let Some(v) = seq.next_element()? {
            items.push(v);
        }
        Ok(Json::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json<'de>, A::Error> {
        let mut members = Vec::with_capacity(map.size_hint().unwrap_or(0).min(16));
        while let Some((k, v)) = map.next_entry::<Key<'de>, Json<'de>>()? {
            members.push((k.0, v));
        }
        Ok(Json::Object(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// Every lookup the FHIR parser makes answers as `serde_json::Value` does.
    #[test]
    fn reads_like_value() {
        let text = r#"{"a":{"b":[1,"x",true,null,{"c":"d\"e"}]},"n":12345678901234,"f":1.5,"a2":1,"a2":2}"#;
        let j = Json::parse(text).unwrap();
        let v: Value = serde_json::from_str(text).unwrap();
        assert_eq!(j["a"]["b"][1].as_str(), v["a"]["b"][1].as_str());
        assert_eq!(j["a"]["b"][4]["c"].as_str(), Some("d\"e"));
        assert!(matches!(&j["a"]["b"][4]["c"], Json::String(Cow::Owned(_))));
        assert!(matches!(&j["a"]["b"][1], Json::String(Cow::Borrowed(_))));
        assert!(j["a"]["b"][3].is_null() && j["zz"].is_null() && j["a"][0].is_null());
        for k in ["n", "f"] {
            let Json::Number(n) = &j[k] else { panic!() };
            assert_eq!(n.to_string(), v[k].to_string());
        }
        assert_eq!(
            j["a2"],
            Json::Number(2.into()),
            "the last of a repeated key wins"
        );
        assert!(j["a"]["b"].is_array() && j.is_object());
    }

    #[test]
    fn rejects_what_value_rejects() {
        for bad in ["{", "{\"a\":}", "[1,]", "nul", "\"\\x\""] {
            assert!(Json::parse(bad).is_err(), "{bad}");
        }
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert!(
            Json::parse(&deep).is_err(),
            "recursion limit, not a stack overflow"
        );
    }
}
