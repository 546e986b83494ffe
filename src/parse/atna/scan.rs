//! The plain ATNA message, read without quick-xml's event reader.
//!
//! Senders write an `AuditMessage` as an XML declaration and elements with quoted
//! attributes: no comments, CDATA, DOCTYPE or processing instructions inside it. Such a
//! message is read here in one pass over its bytes, a table look-up per byte. quick-xml's
//! reader looked for each tag's end with a `memchr3` call per quote, its attribute
//! iterator walked every attribute again, and every name went through a `memchr` for a
//! namespace colon: most of the 41,000 instructions a 1.3 kB ATNA line cost.
//!
//! [`read_plain`] either reads a message exactly as quick-xml 0.37 would have read it, or
//! gives up and lets [`super::read_with_quick_xml`] read it from the start: on anything
//! it does not know, and on every error, so a rejection's reason and detail are always
//! quick-xml's. What it must agree on is in [`start_tag`] (a tag's end, its name, an
//! empty element, the attributes) and [`read_plain`] (end tags, text, the prolog). The
//! tests compare both readers on thousands of mutated messages.

use super::{element, unescape_value, Attrs, Ctx, Message, Reject, MAX_DEPTH};
use crate::parse::swar;
use std::borrow::Cow;

/// Byte classes, for the runs [`run`] skips: XML whitespace as quick-xml counts it, the
/// quotes, and the bytes that end a tag, a name or a value.
const WS: u8 = 1;
const QUOTE: u8 = 2;
const GT: u8 = 4;
const SLASH: u8 = 8;
const EQ: u8 = 16;
const AMP: u8 = 32;
const COLON: u8 = 64;

static CLASS: [u8; 256] = classes();

const fn classes() -> [u8; 256] {
    let mut t = [0u8; 256];
    t[b' ' as usize] = WS;
    t[b'\r' as usize] = WS;
    t[b'\n' as usize] = WS;
    t[b'\t' as usize] = WS;
    t[b'"' as usize] = QUOTE;
    t[b'\'' as usize] = QUOTE;
    t[b'>' as usize] = GT;
    t[b'/' as usize] = SLASH;
    t[b'=' as usize] = EQ;
    t[b'&' as usize] = AMP;
    t[b':' as usize] = COLON;
    t
}

/// The index of the first byte at or after `i` in one of the classes `stop`, or the end.
///
/// Names and keys are short, too short for `memchr`'s set-up to pay, and mostly letters.
/// Every byte [`CLASS`] classifies is below 0x40 (the tests check it). On x86-64,
/// sixteen bytes at a time: only those below 0x40 are looked up in the table. Elsewhere
/// (and for the last bytes) eight bytes that all have bit 6 or 7 set are skipped at
/// once; the next eight are looked up in the table one by one.
fn run(b: &[u8], mut i: usize, stop: u8) -> usize {
    const HI: u64 = u64::from_le_bytes([0x80; 8]);
    #[cfg(target_arch = "x86_64")]
    while i.checked_add(16).is_some_and(|end| end <= b.len()) {
        let mut low = below_0x40(b, i);
        while low != 0 {
            let j = i + low.trailing_zeros() as usize;
            if CLASS[b[j] as usize] & stop != 0 {
                return j;
            }
            low &= low - 1;
        }
        i += 16;
    }
    loop {
        while let Some(word) = b.get(i..i + 8) {
            let word = u64::from_le_bytes(word.try_into().unwrap_or([0; 8]));
            // Bit 7 of each byte of `word | word << 1` is that byte's bit 7 or bit 6.
            if (word | (word << 1)) & HI != HI {
                break;
            }
            i += 8;
        }
        let end = b.len().min(i + 8);
        while i < end {
            if CLASS[b[i] as usize] & stop != 0 {
                return i;
            }
            i += 1;
        }
        if i == b.len() {
            return i;
        }
    }
}

/// One bit for each of the sixteen bytes of `b` from `i` below 0x40: the only bytes
/// [`CLASS`] may classify.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn below_0x40(b: &[u8], i: usize) -> u32 {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_set1_epi8,
    };
    let chunk = &b[i..i + 16];
    // SAFETY: `chunk` is sixteen readable bytes, and the load takes any alignment; SSE2
    // is part of the x86-64 baseline, so the instructions exist on every such CPU.
    let mask = unsafe {
        let v = _mm_loadu_si128(chunk.as_ptr().cast());
        // Below 0x40 (unsigned): the byte is its own minimum with 0x3f.
        _mm_movemask_epi8(_mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x3f)), v))
    };
    mask as u32
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && CLASS[b[i] as usize] == WS {
        i += 1;
    }
    i
}

/// The next `<` at or after `from`, and whether all that comes before it is ASCII
/// whitespace.
fn next_markup(b: &[u8], from: usize) -> Option<(usize, bool)> {
    // Elements of a message nearly always follow one another directly.
    if b.get(from) == Some(&b'<') {
        return Some((from, true));
    }
    let lt = from + memchr::memchr(b'<', b.get(from..)?)?;
    Some((lt, b[from..lt].iter().all(u8::is_ascii_whitespace)))
}

/// Most attributes a plain tag has here (an `ActiveParticipant` has six).
const MAX_ATTRS: usize = 16;

/// One attribute as written: its key's local part, its value between the quotes, and
/// whether the value holds a `&`.
type RawAttr<'a> = (&'a [u8], &'a str, bool);

/// A start tag read: where its `>` is, its name, whether it is empty (`/>`), and how many
/// attributes it put in the caller's array.
struct Tag<'a> {
    gt: usize,
    name: &'a [u8],
    /// The name after its prefix, if any.
    local: &'a [u8],
    empty: bool,
    attrs: usize,
}

/// Reads the start tag whose name starts at `pos` (just after its `<`), its attributes
/// into `attrs`. `None` if it is not plain.
///
/// quick-xml ends a tag at the first `>` outside quotes (any quote outside quotes opens
/// one), and parses attributes only when asked. Here a tag is read in one pass, which
/// finds the same end only if no quote or `>` stands outside a value: a name or key
/// holding one gives up. The name runs to whitespace, `/>` or `>` (so it may hold a `/`); an attribute is read
/// as quick-xml's `IterState::next` reads one (a key to `=` or whitespace, optional
/// whitespace around `=`, a value in `"` or `'`).
fn start_tag<'a>(
    xml: &'a str,
    pos: usize,
    attrs: &mut [RawAttr<'a>; MAX_ATTRS],
) -> Option<Tag<'a>> {
    let b = xml.as_bytes();
    let mut i = pos;
    let mut local = pos;
    loop {
        i = run(b, i, WS | QUOTE | GT | SLASH | COLON);
        match (b.get(i), b.get(i + 1)) {
            (Some(b':'), _) => {
                if local == pos {
                    local = i + 1;
                }
                i += 1;
            }
            // A `/` not before the `>` is part of the name.
            (Some(b'/'), Some(c)) if *c != b'>' => i += 1,
            _ => break,
        }
    }
    if i == pos {
        return None;
    }
    let name = &b[pos..i];
    let local = &b[local..i];
    let mut count = 0;
    let empty = loop {
        i = skip_ws(b, i);
        match *b.get(i)? {
            b'>' => break false,
            b'/' if b.get(i + 1) == Some(&b'>') => {
                i += 1;
                break true;
            }
            _ => {}
        }
        // The key, and its local part (after the first colon, as quick-xml's
        // `QName::local_name`), in the same pass.
        let key_start = i;
        let mut local = key_start;
        loop {
            i = run(b, i, WS | QUOTE | GT | EQ | COLON);
            if b.get(i) != Some(&b':') {
                break;
            }
            if local == key_start {
                local = i + 1;
            }
            i += 1;
        }
        if i == key_start || count == MAX_ATTRS {
            return None;
        }
        let key = &b[local..i];
        i = skip_ws(b, i);
        if b.get(i) != Some(&b'=') {
            return None;
        }
        i = skip_ws(b, i + 1);
        let quote = match b.get(i) {
            Some(&q @ (b'"' | b'\'')) => q,
            _ => return None,
        };
        let value_start = i + 1;
        let (end, entity) = value_end(b, value_start, quote)?;
        i = end;
        attrs[count] = (key, xml.get(value_start..i)?, entity);
        count += 1;
        i += 1;
    };
    Some(Tag {
        gt: i,
        name,
        local,
        empty,
        attrs: count,
    })
}

/// The index of the `quote` that closes the value starting at `i`, and whether the value
/// holds a `&`. Values are most of a message's bytes, so they are searched eight bytes at
/// a time: a byte equal to the quote or `&` is a zero byte of `word ^ pattern`, and the
/// lowest zero byte is the lowest one `(v - 0x01…) & !v & 0x80…` marks.
fn value_end(b: &[u8], mut i: usize, quote: u8) -> Option<(usize, bool)> {
    let mut entity = false;
    while let Some(word) = swar::word(b, i) {
        let hits = swar::equal(word, quote) | swar::equal(word, b'&');
        if hits == 0 {
            i += 8;
            continue;
        }
        i += swar::first(hits);
        if b[i] == quote {
            return Some((i, entity));
        }
        entity = true;
        i += 1;
    }
    loop {
        match *b.get(i)? {
            c if c == quote => return Some((i, entity)),
            b'&' => entity = true,
            _ => {}
        }
        i += 1;
    }
}

/// The message `xml` if it is plain (see the module's doc) and quick-xml would read it
/// without error; else `None`.
pub(super) fn read_plain(xml: &str) -> Option<Message<'_>> {
    let b = xml.as_bytes();
    let mut pos = 0;
    // The prolog: whitespace and the XML declaration, if any.
    loop {
        let (lt, blank) = next_markup(b, pos)?;
        if !blank {
            return None;
        }
        pos = lt + 1;
        match b.get(pos)? {
            b'?' => pos = declaration_end(b, pos)?,
            b'!' | b'/' => return None,
            _ => break,
        }
    }
    let mut msg = Message::default();
    let mut attrs: [RawAttr; MAX_ATTRS] = [(&[], "", false); MAX_ATTRS];
    // The open elements' names (for the end tags) and contexts; the root's first.
    let mut names: [&[u8]; MAX_DEPTH] = [&[]; MAX_DEPTH];
    let mut stack = [Ctx::Other; MAX_DEPTH];
    let mut depth = 0usize;
    loop {
        // `pos` is just after a `<` that starts a start or end tag.
        let gt = if b[pos] == b'/' {
            // An end tag: it must close the innermost element by its exact name
            // (quick-xml also takes trailing whitespace, and reports a mismatch).
            let gt = run(b, pos + 1, WS | QUOTE | GT);
            let top = depth.checked_sub(1)?;
            if b.get(gt) != Some(&b'>') || b[pos + 1..gt] != *names[top] {
                return None;
            }
            depth = top;
            if stack[top] == Ctx::Root {
                return Some(msg);
            }
            gt
        } else {
            let tag = start_tag(xml, pos, &mut attrs)?;
            let ctx = match depth.checked_sub(1) {
                None if tag.local == b"AuditMessage" => Ctx::Root,
                None => return None,
                Some(top) => {
                    let read = PlainAttrs(&attrs[..tag.attrs]);
                    element(&mut msg, stack[top], tag.local, read).ok()?
                }
            };
            if tag.empty {
                if ctx == Ctx::Root {
                    return Some(msg);
                }
            } else {
                if depth >= MAX_DEPTH {
                    return None;
                }
                names[depth] = tag.name;
                stack[depth] = ctx;
                depth += 1;
            }
            tag.gt
        };
        // Text between elements is not read (quick-xml hands it out unchecked).
        let (lt, _) = next_markup(b, gt + 1)?;
        pos = lt + 1;
        if matches!(b.get(pos), None | Some(b'!' | b'?')) {
            return None;
        }
    }
}

/// The index after the `?>` that ends the XML declaration whose `?` is at `at`, if it is
/// one (`<?xml` and whitespace; quick-xml ends it at the first `?>`).
fn declaration_end(b: &[u8], at: usize) -> Option<usize> {
    let rest = b.get(at..)?;
    if !(rest.starts_with(b"?xml") && rest.get(4).is_some_and(|&c| CLASS[c as usize] == WS)) {
        return None;
    }
    let mut from = 5;
    loop {
        let gt = from + memchr::memchr(b'>', rest.get(from..)?)?;
        if rest[gt - 1] == b'?' {
            return Some(at + gt + 1);
        }
        from = gt + 1;
    }
}

/// The attributes [`start_tag`] read, for [`element`].
pub(super) struct PlainAttrs<'r, 'a>(&'r [RawAttr<'a>]);

impl<'a> Attrs<'a> for PlainAttrs<'_, 'a> {
    fn each(&self, mut f: impl FnMut(&[u8], Cow<'a, str>)) -> Result<(), Reject> {
        for &(key, raw, entity) in self.0 {
            let value = if entity {
                unescape_value(raw)?
            } else {
                Cow::Borrowed(raw)
            };
            f(key, value);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::read_with_quick_xml;
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Messages in the shapes senders write: the simulator's, RFC 3881's spelling,
    /// namespace prefixes, single quotes, spaces around `=`, entities, text between
    /// elements.
    const PLAIN: [&str; 6] = [
        r#"<?xml version="1.0" encoding="UTF-8"?><AuditMessage><EventIdentification EventActionCode="R" EventDateTime="2026-03-02T06:32:35.411-06:00" EventOutcomeIndicator="0"><EventID csd-code="110110" codeSystemName="DCM" originalText="Patient Record"/></EventIdentification><ActiveParticipant UserID="u10140" UserName="Barnes, Daniel" UserIsRequestor="true" NetworkAccessPointID="WS-RAD-04" NetworkAccessPointTypeCode="1"><RoleIDCode csd-code="110153" codeSystemName="DCM" originalText="Source Role ID"/></ActiveParticipant><ActiveParticipant UserID="RIS-APP-01" UserIsRequestor="false" NetworkAccessPointID="pacs01.hospital.example" NetworkAccessPointTypeCode="1"><RoleIDCode csd-code="110150" codeSystemName="DCM" originalText="Application"/></ActiveParticipant><AuditSourceIdentification AuditEnterpriseSiteID="HOSP-MAIN" AuditSourceID="pacs01.hospital.example"><AuditSourceTypeCode csd-code="4" codeSystemName="DCM" originalText="Application Server Process"/></AuditSourceIdentification><ParticipantObjectIdentification ParticipantObjectID="MRN1029580^^^&amp;1.2.840.99999.1&amp;ISO" ParticipantObjectTypeCode="1" ParticipantObjectTypeCodeRole="1"><ParticipantObjectIDTypeCode csd-code="2" codeSystemName="RFC-3881" originalText="Patient Number"/></ParticipantObjectIdentification></AuditMessage>"#,
        r#"<AuditMessage><EventIdentification EventActionCode="E" EventDateTime="2024-05-14T09:49:00Z"><EventID code="110106" codeSystem="1.2.840.10008.2.16.4" codeSystemName="DCM" displayName="Export"/><EventTypeCode code="110127" displayName="Emergency Override Started"/><PurposeOfUse code="BTG"/></EventIdentification><ActiveParticipant UserID="dr.k" UserIsRequestor="true"><RoleIDCode code="110153"/><MediaIdentifier><MediaType code="110033" displayName="DVD"/></MediaIdentifier></ActiveParticipant><ParticipantObjectIdentification ParticipantObjectID="P9" ParticipantObjectTypeCode="1"><ParticipantObjectIDTypeCode code="2" codeSystemName="RFC-3881" displayName="Patient Number"/></ParticipantObjectIdentification></AuditMessage>"#,
        "<?xml version='1.0'?>\n<a:AuditMessage xmlns:a=\"urn:x\">\n  <a:EventIdentification a:EventActionCode = 'R'\tEventDateTime=\"2024-05-14T09:49:00Z\">\n    <a:EventID csd-code='110110' originalText=\"a &amp; b's\"/>\n  </a:EventIdentification>\n  <a:ActiveParticipant UserID=\"x&gt;y\" UserIsRequestor='1'/>\n</a:AuditMessage>\n",
        r#"<AuditMessage><EventIdentification EventActionCode="R" EventDateTime="2024-05-14T09:49:00Z"><EventID csd-code="110110"/></EventIdentification>text &amp; more<ActiveParticipant UserID="u" UserIsRequestor="true" NetworkAccessPointID="h"/><ParticipantObjectIdentification ParticipantObjectID="MRN7^^^&1.2.3&ISO" ParticipantObjectTypeCode="1" ParticipantObjectTypeCodeRole="1"/></AuditMessage>trailing <junk"#,
        r#"<AuditMessage/>"#,
        r#"<AuditMessage><EventIdentification x="a>b" y='c"d'><EventID csd-code="1&#x31;0110"/></EventIdentification><Other><Deep a="1"><Deeper/></Deep></Other></AuditMessage>"#,
    ];

    #[test]
    fn plain_messages_are_read_as_quick_xml_reads_them() {
        for xml in PLAIN {
            let plain = read_plain(xml);
            assert!(plain.is_some(), "{xml}");
            assert_eq!(plain, read_with_quick_xml(xml).ok(), "{xml}");
        }
    }

    #[test]
    fn only_bytes_below_0x40_are_classified() {
        for (c, class) in CLASS.iter().enumerate().skip(0x40) {
            assert_eq!(*class, 0, "{c:#x}");
        }
        let text = b"NetworkAccessPointTypeCode=\"x\" ParticipantObjectIdentification/>\
            \x80\xff\xbe\x7f@A0123456789?;<Z[\xe9\xa2\xa0\xbc>_ \ta:b&c'd=e/f\"g";
        for stop in [
            WS | QUOTE | GT | SLASH | EQ | AMP | COLON,
            GT,
            WS | EQ,
            QUOTE,
            AMP | COLON,
            SLASH,
        ] {
            let first_from = |i: usize, end: usize| {
                (i..end)
                    .find(|&j| CLASS[text[j] as usize] & stop != 0)
                    .unwrap_or(end)
            };
            for i in 0..=text.len() {
                assert_eq!(run(text, i, stop), first_from(i, text.len()), "from {i}");
                assert_eq!(run(&text[..i], 0, stop), first_from(0, i), "up to {i}");
            }
        }
    }

    #[test]
    fn values_borrow_from_the_message() {
        let msg = read_plain(PLAIN[0]).unwrap();
        assert!(matches!(msg.action_code, Some(Cow::Borrowed("R"))));
        assert!(matches!(msg.objects[0].id, Some(Cow::Owned(_))), "entities");
        assert!(matches!(
            msg.participants[0].user_id,
            Some(Cow::Borrowed(_))
        ));
    }

    #[test]
    fn what_is_not_plain_is_left_to_quick_xml() {
        for xml in [
            "",
            "hello",
            "<Other/>",
            "<AuditMessage><!-- c --></AuditMessage>",
            "<AuditMessage><![CDATA[x]]></AuditMessage>",
            "<!DOCTYPE a><AuditMessage/>",
            "<?pi x?><AuditMessage/>",
            "<AuditMessage><?pi x?></AuditMessage>",
            "\u{feff}<AuditMessage/>",
            "<AuditMessage><a></b></AuditMessage>",
            "<AuditMessage><a></a ></AuditMessage>",
            "<AuditMessage><EventIdentification>",
            "<AuditMessage><EventIdentification EventActionCode=R/></AuditMessage>",
            "<AuditMessage><EventIdentification EventActionCode/></AuditMessage>",
            r#"<AuditMessage><EventIdentification EventActionCode="R/></AuditMessage>"#,
            r#"<AuditMessage><EventIdentification EventActionCode="&bad;"/></AuditMessage>"#,
            "</AuditMessage>",
            r#"<AuditMessage><EventIdentification a="1" ="2"/></AuditMessage>"#,
            "< AuditMessage/>",
        ] {
            assert_eq!(read_plain(xml), None, "{xml}");
        }
        let deep = format!("<AuditMessage>{}", "<a>".repeat(MAX_DEPTH + 1));
        assert_eq!(read_plain(&deep), None);
    }

    /// Bytes that change what XML means, and a few that do not.
    const MARKUP: &[u8] = b"<>/=\"'&;?! :\tax";

    /// Random edits of the plain messages: wherever the plain reader accepts one, quick-xml
    /// reads the same message from it.
    #[test]
    fn mutated_messages_agree_with_quick_xml() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(16);
        let mut accepted = 0;
        for round in 0..20_000 {
            let mut bytes = PLAIN[round % PLAIN.len()].as_bytes().to_vec();
            for _ in 0..rng.gen_range(1..=3) {
                let at = rng.gen_range(0..=bytes.len());
                let c = MARKUP[rng.gen_range(0..MARKUP.len())];
                match rng.gen_range(0..3) {
                    0 => bytes.insert(at, c),
                    1 if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    _ if at < bytes.len() => bytes[at] = c,
                    _ => {}
                }
            }
            let Ok(xml) = String::from_utf8(bytes) else {
                continue;
            };
            if let Some(plain) = read_plain(&xml) {
                accepted += 1;
                assert_eq!(Some(plain), read_with_quick_xml(&xml).ok(), "{xml}");
            }
        }
        assert!(accepted > 5_000, "only {accepted} mutations were plain");
    }
}
