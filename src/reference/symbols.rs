//! Interned strings for the reference tables: each distinct value is stored once, in one
//! arena, and rows hold a 4-byte [`Sym`] instead of a `String` of their own.
//!
//! At a health system's scale (millions of patients, ten million care rows) a `String` a
//! cell (24 bytes plus an allocation of its own) was most of the memory and most of the
//! load time; family names, departments, streets and postcodes repeat endlessly, and
//! identifiers are short. Here a value costs its bytes once plus 4 bytes of end offset,
//! and the hash table holds 4-byte indexes.

use anyhow::{bail, Result};
use hashbrown::HashTable;
use rustc_hash::FxHasher;
use std::hash::Hasher;
use std::num::NonZeroU32;

/// A value in a [`Symbols`] table. `Option<Sym>` is 4 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sym(NonZeroU32);

impl Sym {
    /// Position in the table, from 0 in the order values were first seen.
    pub fn index(self) -> usize {
        self.0.get() as usize - 1
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    index: u32,
    hash: u32,
}

/// Distinct strings, each stored once.
#[derive(Debug, Default)]
pub struct Symbols {
    text: String,
    /// `ends[i]`: where value i ends in `text` (it starts where value i-1 ends).
    ends: Vec<u32>,
    /// Indexes into `ends` with the value's 32-bit hash: growing the table and looking a
    /// value up then compare hashes first and read the arena (a cache miss on a table of
    /// millions) only for the value that matches.
    table: HashTable<Entry>,
    /// Values equal when they differ only in ASCII case (identifiers, which phiwatch
    /// compares case-insensitively); the first spelling seen is the one kept.
    fold_case: bool,
}

impl Symbols {
    /// A table whose values are compared exactly.
    pub fn new() -> Symbols {
        Symbols::default()
    }

    /// A table whose values are compared without regard to ASCII case, so an identifier
    /// as spelled in a file is found by its folded key ([`crate::event::key`]) without
    /// storing or allocating the folded copy.
    pub fn folding_case() -> Symbols {
        Symbols {
            fold_case: true,
            ..Symbols::default()
        }
    }

    /// Room for `values` more values of `bytes` bytes in all.
    pub fn reserve(&mut self, values: usize, bytes: usize) {
        self.text.reserve(bytes);
        self.ends.reserve(values);
        self.table.reserve(values, |e| wide(e.hash));
    }

    /// Gives back room reserved and not used.
    pub fn shrink_to_fit(&mut self) {
        self.text.shrink_to_fit();
        self.ends.shrink_to_fit();
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The value of `sym`.
    pub fn resolve(&self, sym: Sym) -> &str {
        value(&self.text, &self.ends, sym.index() as u32)
    }

    /// Every value, in the order of their symbols.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        (0..self.ends.len() as u32).map(|i| value(&self.text, &self.ends, i))
    }

    /// The symbol of `s`, if the table holds it.
    pub fn get(&self, s: &str) -> Option<Sym> {
        self.get_hashed(self.hashed(s))
    }

    /// `s` with its hash as this table computes it, for looking one string up in
    /// several tables of the same kind (the directory's and the care index's patient
    /// ids) while hashing it once.
    pub fn hashed<'s>(&self, s: &'s str) -> Hashed<'s> {
        Hashed {
            s,
            hash: hash(s.as_bytes(), self.fold_case),
            fold: self.fold_case,
        }
    }

    /// [`Symbols::hashed`] for a string without ASCII capitals (a folded key,
    /// [`crate::event::key`]): its hash is the same folded or not, so the scan for
    /// capitals that a folding table makes first is skipped. Enrichment looks every
    /// event's patient up by its folded key, and the scan was a third of hashing it.
    pub fn hashed_key<'s>(&self, key: &'s str) -> Hashed<'s> {
        debug_assert!(
            !key.bytes().any(|b| b.is_ascii_uppercase()),
            "{key:?} is not folded"
        );
        Hashed {
            s: key,
            hash: hash(key.as_bytes(), false),
            fold: self.fold_case,
        }
    }

    /// [`Symbols::get`] for a string hashed already (by any table; one that folds case
    /// differently hashes it again).
    pub fn get_hashed(&self, k: Hashed) -> Option<Sym> {
        let (s, h) = if k.fold == self.fold_case {
            (k.s, k.hash)
        } else {
            (k.s, hash(k.s.as_bytes(), self.fold_case))
        };
        let (text, ends, fold) = (&self.text, &self.ends, self.fold_case);
        self.table
            .find(wide(h), |e| {
                e.hash == h && same(value(text, ends, e.index), s, fold)
            })
            .map(|e| sym_of(e.index))
    }

    /// The symbol of `s` and whether it was new, adding it when it is.
    pub fn intern(&mut self, s: &str) -> Result<(Sym, bool)> {
        let h = hash(s.as_bytes(), self.fold_case);
        let Symbols {
            text,
            ends,
            table,
            fold_case,
        } = self;
        let fold = *fold_case;
        if let Some(e) = table.find(wide(h), |e| {
            e.hash == h && same(value(text, ends, e.index), s, fold)
        }) {
            return Ok((sym_of(e.index), false));
        }
        if text.len() + s.len() > u32::MAX as usize || ends.len() >= u32::MAX as usize - 1 {
            bail!("more than 4 GiB of distinct reference values; split the reference files");
        }
        text.push_str(s);
        let i = ends.len() as u32;
        ends.push(text.len() as u32);
        table.insert_unique(wide(h), Entry { index: i, hash: h }, |e| wide(e.hash));
        Ok((sym_of(i), true))
    }

    /// Memory held, in bytes (for tests and benches).
    pub fn bytes(&self) -> usize {
        self.text.capacity() + self.ends.capacity() * 4 + self.table.capacity() * 9
    }
}

/// A string with its hash, from [`Symbols::hashed`].
#[derive(Debug, Clone, Copy)]
pub struct Hashed<'s> {
    s: &'s str,
    hash: u32,
    fold: bool,
}

fn sym_of(i: u32) -> Sym {
    Sym(NonZeroU32::new(i + 1).expect("fewer than u32::MAX values"))
}

fn value<'a>(text: &'a str, ends: &[u32], i: u32) -> &'a str {
    let i = i as usize;
    let start = if i == 0 { 0 } else { ends[i - 1] as usize };
    &text[start..ends[i] as usize]
}

fn same(a: &str, b: &str, fold: bool) -> bool {
    if fold {
        eq_ignore_ascii_case(a.as_bytes(), b.as_bytes())
    } else {
        a == b
    }
}

/// `a.eq_ignore_ascii_case(b)`, eight bytes at a time. The standard one folds and
/// compares byte by byte, and every event's patient is found in a folding table by its
/// id: that comparison was most of the lookup.
fn eq_ignore_ascii_case(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (mut a, mut b) = (a, b);
    while let (Some((x, rest_a)), Some((y, rest_b))) =
        (a.split_first_chunk::<8>(), b.split_first_chunk::<8>())
    {
        let (x, y) = (u64::from_le_bytes(*x), u64::from_le_bytes(*y));
        if x != y && lower8(x) != lower8(y) {
            return false;
        }
        (a, b) = (rest_a, rest_b);
    }
    a.eq_ignore_ascii_case(b)
}

/// Eight bytes with their ASCII capitals lowered, every other byte as it was.
fn lower8(x: u64) -> u64 {
    const EACH: u64 = 0x0101_0101_0101_0101;
    // Each byte's low seven bits plus a bias sets its top bit from b'A' up, and from
    // one past b'Z' up; no sum carries into the next byte.
    let low = x & (0x7f * EACH);
    let from_a = low + (0x80 - u64::from(b'A')) * EACH;
    let past_z = low + (0x80 - u64::from(b'Z') - 1) * EACH;
    let capital = from_a & !past_z & !x & (0x80 * EACH);
    x | (capital >> 2)
}

/// A 32-bit hash as the table's 64: hashbrown picks the bucket from the low bits and
/// the tag from the top seven, so both come from the stored 32.
fn wide(h: u32) -> u64 {
    u64::from(h) | (u64::from(h) << 32)
}

/// The hash of `s` (of its lower-case form with `fold`). Written in 64-byte pieces
/// whether folded or not, since FxHasher gives different hashes for one write and for
/// the same bytes in several.
fn hash(s: &[u8], fold: bool) -> u32 {
    let mut h = FxHasher::default();
    if fold && s.iter().any(u8::is_ascii_uppercase) {
        let mut buf = [0u8; 64];
        for chunk in s.chunks(buf.len()) {
            let b = &mut buf[..chunk.len()];
            b.copy_from_slice(chunk);
            b.make_ascii_lowercase();
            h.write(b);
        }
    } else {
        for chunk in s.chunks(64) {
            h.write(chunk);
        }
    }
    let h = h.finish();
    (h ^ (h >> 32)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_stored_once() {
        let mut s = Symbols::new();
        let (a, new_a) = s.intern("elm st").unwrap();
        let (b, new_b) = s.intern("oak ave").unwrap();
        let (a2, new_a2) = s.intern("elm st").unwrap();
        assert!(new_a && new_b && !new_a2);
        assert_eq!(a, a2);
        assert_ne!(a, b);
        assert_eq!(s.resolve(b), "oak ave");
        assert_eq!(s.get("Elm St"), None, "exact table");
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn case_is_ignored_as_the_standard_comparison_ignores_it() {
        let words: Vec<Vec<u8>> = [
            &b""[..],
            b"a",
            b"MRN00012345",
            b"mrn00012345",
            b"Mrn00012346",
            b"@[`{AZaz",
            b"@[`{azAZ",
            b"\xc3\x89t\xc3\xa9",
            b"\xc3\xa9t\xc3\xa9",
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
            b"abcdefghijklmnopqrstuvwxyz0123456789",
        ]
        .iter()
        .map(|w| w.to_vec())
        .chain((0..=255u8).map(|c| vec![c; 9]))
        .chain((0..=255u8).map(|c| vec![c.to_ascii_lowercase(); 9]))
        .collect();
        for a in &words {
            for b in &words {
                assert_eq!(
                    eq_ignore_ascii_case(a, b),
                    a.eq_ignore_ascii_case(b),
                    "{a:?} {b:?}"
                );
            }
        }
    }

    /// A folded key hashed without the scan for capitals hashes as it always did, in
    /// a folding table and in an exact one, and is found by it.
    #[test]
    fn a_folded_key_hashes_alike_without_the_scan() {
        let long = "y".repeat(150);
        for fold in [true, false] {
            let mut t = if fold {
                Symbols::folding_case()
            } else {
                Symbols::new()
            };
            for key in ["", "mrn00012345", "p9", "été", long.as_str()] {
                let (sym, _) = t.intern(&key.to_ascii_uppercase()).unwrap();
                let (a, b) = (t.hashed(key), t.hashed_key(key));
                assert_eq!((a.hash, a.fold), (b.hash, b.fold), "{key:?}");
                if fold {
                    assert_eq!(t.get_hashed(b), Some(sym), "{key:?}");
                }
            }
        }
    }

    #[test]
    fn a_folding_table_finds_any_spelling_and_keeps_the_first() {
        let mut s = Symbols::folding_case();
        let (a, _) = s.intern("MRN12").unwrap();
        assert_eq!(s.get("mrn12"), Some(a));
        assert_eq!(s.intern("Mrn12").unwrap(), (a, false));
        assert_eq!(s.resolve(a), "MRN12");
        let long = "X".repeat(100);
        let (l, _) = s.intern(&long).unwrap();
        assert_eq!(s.get(&long.to_ascii_lowercase()), Some(l));
        for i in 0..10_000 {
            s.intern(&format!("P{i}")).unwrap();
        }
        assert_eq!(s.get("p9999").map(|x| s.resolve(x)), Some("P9999"));
    }
}
