//! Byte searches eight bytes at a time, for the readers' hot loops (the FHIR JSON cursor's
//! string ends, the ATNA reader's attribute values): a word of the line is tested for
//! several byte values at once instead of byte by byte.
//!
//! Each test marks a matching byte by its top bit. A mark can be wrong only above a true
//! match (a borrow runs upwards from it), so the lowest mark of any OR of tests is the
//! first byte that matches one of them: [`first`].

const ONES: u64 = u64::from_le_bytes([1; 8]);
const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);

/// The bytes of `word` equal to `byte`.
#[inline(always)]
pub(crate) fn equal(word: u64, byte: u8) -> u64 {
    let x = word ^ (ONES * u64::from(byte));
    x.wrapping_sub(ONES) & !x & HIGHS
}

/// The bytes of `word` below `n` (`n` at most 0x80).
#[inline(always)]
pub(crate) fn below(word: u64, n: u8) -> u64 {
    word.wrapping_sub(ONES * u64::from(n)) & !word & HIGHS
}

/// The index of the first marked byte of a non-zero set of marks.
#[inline(always)]
pub(crate) fn first(marks: u64) -> usize {
    (marks.trailing_zeros() / 8) as usize
}

/// Eight bytes of `b` from `i` as a word, when there are eight.
#[inline(always)]
pub(crate) fn word(b: &[u8], i: usize) -> Option<u64> {
    let chunk: [u8; 8] = b.get(i..i + 8)?.try_into().ok()?;
    Some(u64::from_le_bytes(chunk))
}
