//! A JSON cursor for the typed AuditEvent: it walks the line once, hands over only the
//! values the reader asks for, and checks everything it passes over.
//!
//! Why not serde_json, as before: phiwatch reads about a tenth of an AuditEvent, and
//! going through serde's visitors for every member (each key unescaped and matched, each
//! skipped value dispatched, each element's record returned by value) cost more than the
//! rest of a replay's decoding together. This cursor matches keys as bytes, finds the end
//! of a string eight bytes at a time and skips unread values without building anything.
//!
//! It accepts only what serde_json accepts, and reads it as serde_json does; anything it
//! is not sure of, it gives up on ([`Bail`]) and the line goes to the JSON tree
//! (serde_json), which accepts it with the same reading or rejects it with serde_json's
//! message. So a line's event never depends on which reader read it, and this file never
//! writes an error message. It gives up on:
//! - anything that is not JSON: a control character in a string, an unknown escape, a
//!   number serde_json would not take (checked by serde_json's own number parser), a
//!   missing comma or colon, text after the object;
//! - a `\u` escape of a surrogate (serde_json pairs them or rejects a lone one; such
//!   lines are rare enough to leave to it);
//! - nesting deeper than [`MAX_DEPTH`], below serde_json's own limit of 128.

use crate::parse::swar;
use std::borrow::Cow;

/// The line is left to the JSON tree: not JSON, or JSON this cursor does not read itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Bail;

/// Deepest nesting read here (serde_json's limit is 128: deeper lines are its to reject).
const MAX_DEPTH: u32 = 100;

/// A value that is neither a string nor a container.
#[derive(Debug)]
pub(super) enum Atom {
    Null,
    Bool(bool),
    Number(serde_json::Number),
}

/// A position in one line of JSON text.
pub(super) struct Cursor<'de> {
    text: &'de str,
    at: usize,
    depth: u32,
}

impl<'de> Cursor<'de> {
    pub(super) fn new(text: &'de str) -> Cursor<'de> {
        Cursor {
            text,
            at: 0,
            depth: 0,
        }
    }

    fn bytes(&self) -> &'de [u8] {
        self.text.as_bytes()
    }

    /// The next byte that is not JSON whitespace, not consumed.
    #[inline]
    pub(super) fn peek(&mut self) -> Option<u8> {
        let b = self.bytes();
        while let Some(&c) = b.get(self.at) {
            match c {
                b' ' | b'\n' | b'\r' | b'\t' => self.at += 1,
                _ => return Some(c),
            }
        }
        None
    }

    /// Consumes `c` (after whitespace) or gives up.
    #[inline]
    fn expect(&mut self, c: u8) -> Result<(), Bail> {
        if self.peek() == Some(c) {
            self.at += 1;
            Ok(())
        } else {
            Err(Bail)
        }
    }

    /// Only whitespace is left.
    pub(super) fn end(&mut self) -> Result<(), Bail> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(Bail),
        }
    }

    /// Consumes the `{` or `[` at the cursor.
    #[inline]
    pub(super) fn open(&mut self) -> Result<(), Bail> {
        self.at += 1;
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Bail);
        }
        Ok(())
    }

    /// Reads the value at the cursor when it is neither a string nor a container (the
    /// caller tells those by [`Cursor::peek`]).
    pub(super) fn atom(&mut self) -> Result<Atom, Bail> {
        match self.peek().ok_or(Bail)? {
            b't' => self.literal(b"true").map(|()| Atom::Bool(true)),
            b'f' => self.literal(b"false").map(|()| Atom::Bool(false)),
            b'n' => self.literal(b"null").map(|()| Atom::Null),
            b'-' | b'0'..=b'9' => self.number().map(Atom::Number),
            _ => Err(Bail),
        }
    }

    /// Passes over the next value, checking it. A string right at the cursor (most
    /// skipped values: a coding's system and display, right after their key) is passed
    /// over here, inlined; anything else by [`Cursor::skip_value`].
    #[inline(always)]
    pub(super) fn skip(&mut self) -> Result<(), Bail> {
        if self.bytes().get(self.at) == Some(&b'"') {
            return self.skip_string();
        }
        self.skip_value()
    }

    /// [`Cursor::skip`] after whitespace, or of a container or an atom.
    fn skip_value(&mut self) -> Result<(), Bail> {
        match self.peek() {
            // Most skipped values are strings (a coding's system and display): found and
            // checked without making them into anything.
            Some(b'"') => self.skip_string(),
            Some(b'{') => {
                self.open()?;
                Members::new(self).skip_rest()
            }
            Some(b'[') => {
                self.open()?;
                Elements::new(self).skip_rest()
            }
            _ => self.atom().map(drop),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), Bail> {
        if self.bytes()[self.at..].starts_with(word) {
            self.at += word.len();
            Ok(())
        } else {
            Err(Bail)
        }
    }

    /// A number, parsed by serde_json's own number parser so that what it accepts (no
    /// leading zeros, no overflow to infinity) and the value it gives (`-0` is a float)
    /// are serde_json's.
    fn number(&mut self) -> Result<serde_json::Number, Bail> {
        let b = self.bytes();
        let start = self.at;
        let mut end = start;
        while let Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') = b.get(end) {
            end += 1;
        }
        self.at = end;
        self.text[start..end].parse().map_err(|_| Bail)
    }

    /// A string at the cursor's `"`: borrowed from the line unless it has escapes.
    #[inline(always)]
    pub(super) fn string(&mut self) -> Result<Cow<'de, str>, Bail> {
        let start = self.at + 1;
        let at = special(self.bytes(), start).ok_or(Bail)?;
        if self.bytes()[at] == b'"' {
            self.at = at + 1;
            // `start` and `at` are next to ASCII quotes, so on character boundaries.
            Ok(Cow::Borrowed(&self.text[start..at]))
        } else {
            self.unescape(start, at).map(Cow::Owned)
        }
    }

    /// A string at the cursor's `"`, passed over.
    #[inline]
    fn skip_string(&mut self) -> Result<(), Bail> {
        let start = self.at + 1;
        let at = special(self.bytes(), start).ok_or(Bail)?;
        if self.bytes()[at] == b'"' {
            self.at = at + 1;
            Ok(())
        } else {
            self.unescape(start, at).map(drop)
        }
    }

    /// The rest of a string from its first escape (or control character) at `at`,
    /// unescaped.
    #[cold]
    #[inline(never)]
    fn unescape(&mut self, start: usize, mut at: usize) -> Result<String, Bail> {
        let b = self.bytes();
        let mut out = String::with_capacity(at - start + 16);
        let mut run = start;
        loop {
            out.push_str(&self.text[run..at]);
            match b[at] {
                b'"' => {
                    self.at = at + 1;
                    return Ok(out);
                }
                b'\\' => {
                    let c = match *b.get(at + 1).ok_or(Bail)? {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hex = self.text.get(at + 2..at + 6).ok_or(Bail)?;
                            if !hex.bytes().all(|h| h.is_ascii_hexdigit()) {
                                return Err(Bail);
                            }
                            let code = u32::from_str_radix(hex, 16).map_err(|_| Bail)?;
                            // A surrogate: none of serde_json's pairing is repeated here.
                            let c = char::from_u32(code).ok_or(Bail)?;
                            at += 4;
                            c
                        }
                        _ => return Err(Bail),
                    };
                    out.push(c);
                    at += 2;
                }
                _ => return Err(Bail),
            }
            run = at;
            at = special(b, at).ok_or(Bail)?;
        }
    }
}

/// The members of an object whose `{` was consumed.
pub(super) struct Members<'c, 'de> {
    cursor: &'c mut Cursor<'de>,
    first: bool,
}

impl<'c, 'de> Members<'c, 'de> {
    pub(super) fn new(cursor: &'c mut Cursor<'de>) -> Members<'c, 'de> {
        Members {
            cursor,
            first: true,
        }
    }

    /// The next member's key, its `:` consumed, or `None` after the closing `}`.
    #[inline(always)]
    pub(super) fn next_key(&mut self) -> Result<Option<Cow<'de, str>>, Bail> {
        match self.compact_key() {
            Compact::Key(key) => Ok(Some(Cow::Borrowed(key))),
            Compact::End => Ok(None),
            Compact::Other => self.spaced_key(),
        }
    }

    /// The next member as compact producers write every member: `"key":` (the first)
    /// or `,"key":` (the others) with no whitespace and no escape in the key, or the
    /// closing `}` right at the cursor. Reads it with none of the general path's
    /// whitespace loops and returns the key in registers; [`Compact::Other`] (cursor
    /// untouched) leaves anything else to [`Members::spaced_key`], which reads it as
    /// before. (A line has some seventy keys and twenty-five objects, and the general
    /// path cost about a hundred instructions a key.)
    #[inline(always)]
    fn compact_key(&mut self) -> Compact<'de> {
        let c = &mut *self.cursor;
        let b = c.bytes();
        let quote = match b.get(c.at) {
            Some(b'}') => {
                c.at += 1;
                c.depth -= 1;
                return Compact::End;
            }
            Some(b'"') if self.first => c.at,
            Some(b',') if !self.first => c.at + 1,
            _ => return Compact::Other,
        };
        if b.get(quote) != Some(&b'"') {
            return Compact::Other;
        }
        let Some(end) = special(b, quote + 1) else {
            return Compact::Other;
        };
        if b[end] != b'"' || b.get(end + 1) != Some(&b':') {
            return Compact::Other;
        }
        // `quote + 1` and `end` are next to ASCII quotes, so on character boundaries.
        let key = &c.text[quote + 1..end];
        c.at = end + 2;
        self.first = false;
        Compact::Key(key)
    }

    /// [`Members::next_key`] for any other spelling: whitespace around the comma, key
    /// or colon, escapes in the key, the closing `}`, or JSON to give up on.
    #[inline(never)]
    fn spaced_key(&mut self) -> Result<Option<Cow<'de, str>>, Bail> {
        let c = &mut *self.cursor;
        match c.peek().ok_or(Bail)? {
            b'}' => {
                c.at += 1;
                c.depth -= 1;
                return Ok(None);
            }
            b',' if !self.first => {
                c.at += 1;
                if c.peek() != Some(b'"') {
                    return Err(Bail);
                }
            }
            b'"' if self.first => {}
            _ => return Err(Bail),
        }
        self.first = false;
        let key = c.string()?;
        c.expect(b':')?;
        Ok(Some(key))
    }

    /// Where the current member's value is read from.
    pub(super) fn cursor(&mut self) -> &mut Cursor<'de> {
        self.cursor
    }

    /// Passes over the rest of the object.
    pub(super) fn skip_rest(&mut self) -> Result<(), Bail> {
        while self.next_key()?.is_some() {
            self.cursor.skip()?;
        }
        Ok(())
    }
}

/// What [`Members::compact_key`] found.
enum Compact<'de> {
    /// A key without escapes, its `:` consumed.
    Key(&'de str),
    /// The closing `}`, consumed.
    End,
    /// Anything else, for the general path.
    Other,
}

/// The elements of an array whose `[` was consumed.
pub(super) struct Elements<'c, 'de> {
    cursor: &'c mut Cursor<'de>,
    first: bool,
}

impl<'c, 'de> Elements<'c, 'de> {
    pub(super) fn new(cursor: &'c mut Cursor<'de>) -> Elements<'c, 'de> {
        Elements {
            cursor,
            first: true,
        }
    }

    /// Whether another element follows (then read it from [`Elements::cursor`]); false
    /// after the closing `]`.
    #[inline]
    pub(super) fn next(&mut self) -> Result<bool, Bail> {
        let c = &mut *self.cursor;
        match c.peek().ok_or(Bail)? {
            b']' => {
                c.at += 1;
                c.depth -= 1;
                return Ok(false);
            }
            b',' if !self.first => c.at += 1,
            _ if self.first => {}
            _ => return Err(Bail),
        }
        self.first = false;
        Ok(true)
    }

    pub(super) fn cursor(&mut self) -> &mut Cursor<'de> {
        self.cursor
    }

    /// Passes over the rest of the array.
    pub(super) fn skip_rest(&mut self) -> Result<(), Bail> {
        while self.next()? {
            self.cursor.skip()?;
        }
        Ok(())
    }
}

/// The index of the first `"`, `\` or control character at or after `from`: the bytes a
/// string's scan must stop at, sixteen bytes at a time where SSE2 is there (every
/// x86-64), then eight at a time ([`swar`]), then one by one.
#[inline(always)]
fn special(b: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    #[cfg(target_arch = "x86_64")]
    while i.checked_add(16).is_some_and(|end| end <= b.len()) {
        let marks = special16(b, i);
        if marks != 0 {
            return Some(i + marks.trailing_zeros() as usize);
        }
        i += 16;
    }
    while let Some(w) = swar::word(b, i) {
        let marks = swar::equal(w, b'"') | swar::equal(w, b'\\') | swar::below(w, 0x20);
        if marks != 0 {
            return Some(i + swar::first(marks));
        }
        i += 8;
    }
    b[i.min(b.len())..]
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .map(|p| i + p)
}

/// One bit for each of the sixteen bytes of `b` from `i` that [`special`] stops at.
/// Strings are most of a line (the codings' systems and displays are URLs and phrases),
/// and this finds their ends in about a third of the instructions of the eight-byte
/// search.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn special16(b: &[u8], i: usize) -> u32 {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };
    let chunk = &b[i..i + 16];
    // SAFETY: `chunk` is sixteen readable bytes, and the load takes any alignment; SSE2
    // is part of the x86-64 baseline, so the instructions exist on every such CPU.
    let mask = unsafe {
        let v = _mm_loadu_si128(chunk.as_ptr().cast());
        let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
        // Below 0x20 (unsigned): the byte is its own minimum with 0x1f.
        let control = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v);
        _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control))
    };
    mask as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every value read back as serde_json reads it, and every value serde_json rejects
    /// given up on.
    fn read_all(text: &str) -> Result<serde_json::Value, Bail> {
        fn read(c: &mut Cursor) -> Result<serde_json::Value, Bail> {
            use serde_json::Value as J;
            Ok(match c.peek() {
                Some(b'"') => J::String(c.string()?.into_owned()),
                Some(b'{') => {
                    c.open()?;
                    let mut map = serde_json::Map::new();
                    let mut m = Members::new(c);
                    while let Some(k) = m.next_key()? {
                        let v = read(m.cursor())?;
                        map.insert(k.into_owned(), v);
                    }
                    J::Object(map)
                }
                Some(b'[') => {
                    c.open()?;
                    let mut items = Vec::new();
                    let mut e = Elements::new(c);
                    while e.next()? {
                        items.push(read(e.cursor())?);
                    }
                    J::Array(items)
                }
                _ => match c.atom()? {
                    Atom::Null => J::Null,
                    Atom::Bool(b) => J::Bool(b),
                    Atom::Number(n) => J::Number(n),
                },
            })
        }
        let mut c = Cursor::new(text);
        let v = read(&mut c)?;
        c.end()?;
        Ok(v)
    }

    /// And skipping accepts exactly what reading accepts.
    fn skips(text: &str) -> bool {
        let mut c = Cursor::new(text);
        c.skip().is_ok() && c.end().is_ok()
    }

    #[test]
    fn reads_what_serde_json_reads() {
        let texts = [
            r#"{"a":{"b":[1,"x",true,null,{"c":"d\"e"}]},"n":12345678901234,"f":1.5,"a2":1,"a2":2}"#,
            r#" { "k" : [ ] , "o" : { } , "e" : "" } "#,
            r#"{"esc":"\\ \/ \b \f \n \r \t \u00e9 \u0000 \u20AC","raw":"é € 𝄞"}"#,
            r#"{"n":[0,-0,-1,1.25e3,1E-2,18446744073709551615,18446744073709551616,-9223372036854775809,0.5]}"#,
            r#"[1,2,3]"#,
            r#""just a string with a long run of text before the end quote""#,
            "{\"tab\":\"a\\tb\",\"ws\":\t\r\n1}",
            // Keys on both sides of the compact path: whitespace before or after the
            // comma, before the colon, escapes in a key, a key ending at an 8-byte word's
            // edge, an empty key.
            r#"{"a":1 ,"b" :2, "c":3,"d"	:4,"e\"q":5,"\u0066":6,"":7}"#,
            r#"{"abcdefg":1,"abcdefgh":2,"abcdefghi":3,"abcdefghijklmnop":{"x":[{"y":null}]}}"#,
            r#"{ "a":1}"#,
            r#"{"a":1 }"#,
            r#"{"a":{},"b":[{}],"c":{"d":{}}}"#,
            "{}",
        ];
        for t in texts {
            let want: serde_json::Value = serde_json::from_str(t).unwrap();
            assert_eq!(read_all(t), Ok(want), "{t}");
            assert!(skips(t), "{t}");
        }
    }

    #[test]
    fn gives_up_on_what_serde_json_rejects() {
        let bad = [
            "",
            "{",
            "}",
            "{\"a\":}",
            "{\"a\" 1}",
            "{\"a\":1,}",
            "[1,]",
            "[,1]",
            "[1 2]",
            "nul",
            "tru",
            "\"\\x\"",
            "\"a\u{1}b\"",
            "\"unterminated",
            "{\"a\":1}x",
            "01",
            "1.",
            ".5",
            "-",
            "1e",
            "1e400",
            "+1",
            "{\"a\":1}{",
            "{'a':1}",
            "[\"\\u12\"]",
            "{\"a\":1,,\"b\":2}",
            "{,\"a\":1}",
            // Broken around the key the compact path reads.
            "{\"a\"1}",
            "{\"a\",1}",
            "{\"a\":1,\"b\"}",
            "{\"a\":1,\"b",
            "{\"a\":1,\"b\u{1}\":2}",
            "{\"a\\x\":1}",
            "{\"a\":1,:2}",
            "{\"a\":1\"b\":2}",
            "{a:1}",
            "{}}",
            "{\"a\":{}",
            "{\"a\":{}}}",
        ];
        for t in bad {
            assert!(serde_json::from_str::<serde_json::Value>(t).is_err(), "{t}");
            assert_eq!(read_all(t), Err(Bail), "{t}");
            assert!(!skips(t), "{t}");
        }
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert_eq!(read_all(&deep), Err(Bail));
        assert!(!skips(&deep));
    }

    #[test]
    fn leaves_surrogate_escapes_to_serde_json() {
        for t in [r#""\ud834\udd1e""#, r#""\ud834""#, r#""\udd1e""#] {
            assert_eq!(read_all(t), Err(Bail), "{t}");
        }
    }

    #[test]
    fn finds_every_stop_byte_wherever_it_falls() {
        for len in 0..80 {
            for stop in [b'"', b'\\', 0x1f, 0x00] {
                let mut b = vec![b'a'; len];
                b.push(stop);
                b.extend_from_slice(b"\"\"\"");
                assert_eq!(special(&b, 0), Some(len), "len {len} stop {stop}");
                for from in 0..=len {
                    assert_eq!(special(&b, from), Some(len), "len {len} from {from}");
                }
            }
            // Bytes around the stops' values, and the stops with the top bit set, must not
            // stop a scan.
            let b = [
                0x21u8, 0x5b, 0x5d, 0x20, 0x7f, 0x80, 0xff, 0xe9, 0xa2, 0xdc, 0x9f, 0x23,
            ];
            let b: Vec<u8> = b.iter().cycle().take(len).copied().collect();
            assert_eq!(special(&b, 0), None);
        }
    }
}
