//! The typed record decoded with simd-json, for the lines where that is certain to give
//! what serde_json gives.
//!
//! simd-json finds a line's structure with vector instructions (AVX2 or SSE4.2, chosen
//! when the program runs; a portable path elsewhere) and writes it to a tape, a flat list
//! of nodes; [`TapeReader`] then runs the typed record's visitors over that tape, so the
//! record is read by the same code whichever parser found the structure.
//!
//! simd-json is more liberal than serde_json in places, and where it is, this reader
//! declines the line and the caller reads it with serde_json as before (so an event, a
//! rejection and its message never depend on which parser read the line):
//!
//! - any byte below 0x20: serde_json rejects control characters inside strings, and
//!   simd-json takes `[1\0]` as `[1]`;
//! - `\u` escapes of a surrogate (`\uD800`-`\uDFFF`): serde_json rejects a lone one,
//!   simd-json reads `"\ud800"` as a NUL character;
//! - nesting deeper than [`MAX_DEPTH`]: serde_json stops at 128 levels, simd-json never;
//! - any number that is not an integer (fraction or exponent): serde_json's rounding and
//!   its "number out of range" are its own;
//! - the number `-0`, a float for serde_json and an integer for simd-json
//!   ([`has_negative_zero`]); integers too large for 64 bits, which serde_json reads as
//!   floats, simd-json rejects, so they are declined too;
//! - a tape the visitors did not read to its end (trailing values).
//!
//! Everything else simd-json rejects (bad syntax, bad escapes) is also declined, and
//! serde_json then gives the rejection. Duplicate members reach the visitors in order, as
//! with serde_json, since the tape keeps every member.

use super::typed::AuditEvent;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use simd_json::{Node, StaticNode};
use std::fmt;

/// Deeper nesting is left to serde_json, whose limit (127 levels of arrays and objects)
/// gives the rejection; real AuditEvents nest about eight deep.
const MAX_DEPTH: usize = 100;

/// What the SIMD reader keeps between lines: a mutable copy of the line (simd-json
/// unescapes strings in place) and simd-json's buffers, so a line costs no allocation
/// for them once the longest line has been seen.
pub(crate) struct Scratch {
    line: Vec<u8>,
    buffers: simd_json::Buffers,
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch {
            line: Vec::new(),
            buffers: simd_json::Buffers::new(4096),
        }
    }
}

impl fmt::Debug for Scratch {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.debug_struct("Scratch").finish_non_exhaustive()
    }
}

impl Scratch {
    /// The typed record of `line`, or `None` when simd-json's reading cannot be vouched
    /// for (see the module doc) or the line is not a JSON object: the caller then reads
    /// the line with serde_json.
    pub(crate) fn decode(&mut self, line: &str) -> Option<AuditEvent<'_>> {
        let bytes = line.as_bytes();
        if has_control(bytes) || has_surrogate_escape(bytes) || has_negative_zero(bytes) {
            return None;
        }
        self.line.clear();
        self.line.extend_from_slice(bytes);
        let tape = simd_json::to_tape_with_buffers(&mut self.line, &mut self.buffers).ok()?;
        let mut reader = TapeReader {
            nodes: &tape.0,
            pos: 0,
            depth: 0,
        };
        let event = AuditEvent::read(&mut reader).ok()?;
        (reader.pos == reader.nodes.len()).then_some(event)
    }
}

/// Whether `line` has a byte below 0x20: whether its smallest byte is, a reduction the
/// compiler vectorizes (a plain `any` goes byte by byte, and cost as much as simd-json's
/// whole first stage).
fn has_control(line: &[u8]) -> bool {
    line.iter().fold(u8::MAX, |least, &b| least.min(b)) < 0x20
}

/// Whether `line` has a `\u` escape of a UTF-16 surrogate (`\uD800` to `\uDFFF`), or
/// something that looks like one (`\\uD800` is a backslash and text, and is declined
/// too, which only costs the faster path).
fn has_surrogate_escape(line: &[u8]) -> bool {
    memchr::memmem::find_iter(line, b"\\u").any(|at| {
        matches!(line.get(at + 2), Some(b'd' | b'D'))
            && matches!(
                line.get(at + 3),
                Some(b'8'..=b'9' | b'a'..=b'f' | b'A'..=b'F')
            )
    })
}

/// Whether `line` has the number `-0`: `-0` after `:`, `,` or `[` (and spaces), not
/// followed by a digit, `.` or an exponent. serde_json reads it as the float -0.0,
/// simd-json as the integer 0. (The same text inside a string is declined too, which
/// only costs the faster path; `-0` in dates and identifiers has no such prefix.)
fn has_negative_zero(line: &[u8]) -> bool {
    memchr::memmem::find_iter(line, b"-0").any(|at| {
        let before = line[..at].iter().rev().find(|&&b| b != b' ');
        matches!(before, Some(b':' | b',' | b'['))
            && !matches!(line.get(at + 2), Some(b'0'..=b'9' | b'.' | b'e' | b'E'))
    })
}

/// Why the tape was not read: the caller falls back to serde_json, so the reason is
/// never shown.
#[derive(Debug)]
pub(crate) struct Decline;

impl fmt::Display for Decline {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("left to serde_json")
    }
}

impl std::error::Error for Decline {}

impl de::Error for Decline {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Decline
    }
}

/// A serde deserializer over simd-json's tape, as serde_json's `deserialize_any` would
/// present the same JSON: strings borrowed, integers as `u64`/`i64`, `null` as unit.
struct TapeReader<'t, 'de> {
    nodes: &'t [Node<'de>],
    pos: usize,
    depth: usize,
}

impl<'de> TapeReader<'_, 'de> {
    /// Visits the container whose node was just read, and checks that the visitor read
    /// all of it (`count` nodes) before going on.
    fn container<V: Visitor<'de>>(
        &mut self,
        len: usize,
        count: usize,
        object: bool,
        visitor: V,
    ) -> Result<V::Value, Decline> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Decline);
        }
        let end = self.pos + count;
        let value = if object {
            visitor.visit_map(Members {
                reader: self,
                left: len,
            })?
        } else {
            visitor.visit_seq(Members {
                reader: self,
                left: len,
            })?
        };
        if self.pos != end {
            return Err(Decline);
        }
        self.depth -= 1;
        Ok(value)
    }
}

impl<'de> Deserializer<'de> for &mut TapeReader<'_, 'de> {
    type Error = Decline;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Decline> {
        let node = *self.nodes.get(self.pos).ok_or(Decline)?;
        self.pos += 1;
        match node {
            Node::String(s) => visitor.visit_borrowed_str(s),
            Node::Static(StaticNode::Null) => visitor.visit_unit(),
            Node::Static(StaticNode::Bool(b)) => visitor.visit_bool(b),
            Node::Static(StaticNode::I64(n)) => visitor.visit_i64(n),
            Node::Static(StaticNode::U64(n)) => visitor.visit_u64(n),
            Node::Array { len, count } => self.container(len, count, false, visitor),
            Node::Object { len, count } => self.container(len, count, true, visitor),
            // Floats, and whatever else a newer simd-json may add.
            #[allow(unreachable_patterns)]
            _ => Err(Decline),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

/// The elements of an array, or the members of an object (a key node, then its value).
struct Members<'r, 't, 'de> {
    reader: &'r mut TapeReader<'t, 'de>,
    left: usize,
}

impl<'de> SeqAccess<'de> for Members<'_, '_, 'de> {
    type Error = Decline;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Decline> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.reader).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

impl<'de> MapAccess<'de> for Members<'_, '_, 'de> {
    type Error = Decline;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Decline> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.reader).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Decline> {
        seed.deserialize(&mut *self.reader)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"{"resourceType":"AuditEvent","id":ID,"agent":[{"requestor":true}]}"#;

    fn decodes(id: &str) -> bool {
        Scratch::default().decode(&LINE.replace("ID", id)).is_some()
    }

    /// Floats are serde_json's to round (the equivalence tests find no float the two
    /// parsers read differently, so only this shows they are declined).
    #[test]
    fn declines_what_it_cannot_vouch_for() {
        for id in ["15", "-15", "\"a\"", "\"\\u00e9\"", "[1,{}]", "null"] {
            assert!(decodes(id), "{id}");
        }
        // A surrogate pair would read the same, but is declined with the lone surrogates.
        for id in [
            "1.5",
            "1e2",
            "-0",
            "[ -0]",
            "\"\\ud800\"",
            "\"\\ud83d\\ude00\"",
            "1\u{0}",
            "18446744073709551616",
        ] {
            assert!(!decodes(id), "{id}");
        }
        let deep = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
        // The line's object is one level, so `MAX_DEPTH - 1` arrays inside it are read.
        assert!(decodes(&deep(MAX_DEPTH - 1)));
        assert!(!decodes(&deep(MAX_DEPTH)));
    }

    #[test]
    fn negative_zero_is_the_number_only() {
        for yes in [":-0", ": -0}", ",-0]", "[-0,", "[  -0"] {
            assert!(has_negative_zero(yes.as_bytes()), "{yes}");
        }
        for no in [
            "\"2026-03-02\"",
            "\"a-0b\"",
            ":-01",
            ":-0.0",
            ":-0e1",
            ":-05",
            "-0",
        ] {
            assert!(!has_negative_zero(no.as_bytes()), "{no}");
        }
    }

    #[test]
    fn surrogate_escapes_are_found() {
        for yes in ["\\ud800", "\\uDFFF", "\\uDa00", "x\\\\udb00"] {
            assert!(has_surrogate_escape(yes.as_bytes()), "{yes}");
        }
        for no in [
            "\\u00e9",
            "\\ud7ff",
            "\\ue000",
            "HOSP\\\\u10693",
            "\\u",
            "\\ud",
        ] {
            assert!(!has_surrogate_escape(no.as_bytes()), "{no}");
        }
    }
}
