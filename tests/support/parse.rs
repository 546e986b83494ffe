//! For the parser tests (`ingest::parse_*`): parsers built from a source's TOML, fixtures
//! from `tests/fixtures/parse/`, line-by-line expectations, and damaged lines that must
//! never make a parser panic.

use chrono_tz::Tz;
use phiwatch::config::SourceConfig;
use phiwatch::event::{fmt_ts, Event};
use phiwatch::parse::{build, reason, Parser, MAX_LINE_BYTES};

pub fn source(toml_text: &str) -> SourceConfig {
    toml::from_str(toml_text).expect("source config parses")
}

/// A parser for a source given as the TOML of one `[[sources]]` table.
pub fn parser(toml_text: &str) -> Box<dyn Parser> {
    build(&source(toml_text), Tz::UTC).expect("parser builds")
}

/// `tests/fixtures/parse/<rel>`.
pub fn fixture(rel: &str) -> String {
    super::fixture(&format!("parse/{rel}"))
}

/// Lines as a file source hands them over: split at `\n` only, so a CRLF file's lines
/// keep their `\r`, which parsers must tolerate.
pub fn lines(text: &str) -> Vec<&str> {
    let mut v: Vec<&str> = text.split('\n').collect();
    if v.last() == Some(&"") {
        v.pop();
    }
    v
}

/// Parses every line; any rejection fails the test with its line number.
pub fn parse_all(p: &mut dyn Parser, text: &str) -> Vec<Event> {
    let mut out = Vec::new();
    for (i, line) in lines(text).into_iter().enumerate() {
        match p.parse(line) {
            Ok(Some(e)) => out.push(e),
            Ok(None) => {}
            Err(r) => panic!("line {} rejected: {r}", i + 1),
        }
    }
    out
}

pub fn ts(e: &Event) -> String {
    fmt_ts(&e.ts)
}

/// Strings from the fixtures that identify a patient; no rejection detail may hold one.
const PHI: [&str; 6] = ["MRN0", "DOE", "JANE", "ROE", "12345", "99999"];

/// Feeds `data` line by line and checks each outcome against the same line of
/// `expect`: a reject reason, `skip` (`Ok(None)`) or `ok` (an event).
pub fn check_expectations(p: &mut dyn Parser, data: &str, expect: &str) {
    let data = lines(data);
    let expect = lines(expect);
    assert_eq!(
        data.len(),
        expect.len(),
        "fixture and .expect differ in length"
    );
    for (i, (line, want)) in data.iter().zip(&expect).enumerate() {
        let got = p.parse(line);
        let got_label = match &got {
            Ok(Some(_)) => "ok",
            Ok(None) => "skip",
            Err(r) => r.reason,
        };
        assert_eq!(got_label, *want, "line {}: {got:?}", i + 1);
        if let Err(r) = got {
            assert!(
                reason::ALL.contains(&r.reason)
                    || (r.ignored && phiwatch::parse::ignored::ALL.contains(&r.reason)),
                "{} not in reason::ALL (or ignored::ALL for an ignored record)",
                r.reason
            );
            assert!(!r.detail.is_empty(), "line {}: empty detail", i + 1);
            for marker in PHI {
                assert!(
                    !r.detail.contains(marker),
                    "line {}: detail leaks {marker:?}: {}",
                    i + 1,
                    r.detail
                );
            }
        }
    }
}

/// A line over the size cap is refused before parsing.
pub fn check_line_too_long(p: &mut dyn Parser) {
    let long = "x".repeat(MAX_LINE_BYTES + 1);
    assert_eq!(p.parse(&long).unwrap_err().reason, reason::LINE_TOO_LONG);
}

/// xorshift64*: deterministic, so a failing mutation can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const NASTY: [&str; 24] = [
    "<",
    ">",
    "\"",
    "'",
    "{",
    "}",
    "[",
    "]",
    "\\",
    "&",
    "&lol;",
    "\0",
    "é",
    "\u{feff}",
    "|",
    ",",
    "\t",
    " ",
    "9999999999999999999999",
    "-",
    "]]>",
    "<!--",
    "\u{1F600}",
    "\r",
];

/// Truncations and random damage of each seed line: the parser must answer every one
/// with an event or a known rejection, never a panic.
pub fn survive_damage(p: &mut dyn Parser, seeds: &[&str], rounds: usize) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let check = |p: &mut dyn Parser, line: &str| match p.parse(line) {
        Ok(Some(e)) => assert!(
            !e.user.trim().is_empty(),
            "event without user from {line:?}"
        ),
        Ok(None) => {}
        Err(r) => assert!(
            reason::ALL.contains(&r.reason)
                || (r.ignored && phiwatch::parse::ignored::ALL.contains(&r.reason)),
            "{}",
            r.reason
        ),
    };
    for seed in seeds {
        let step = (seed.len() / 400).max(1);
        let cuts: Vec<usize> = (0..seed.len())
            .step_by(step)
            .filter(|i| seed.is_char_boundary(*i))
            .collect();
        for cut in cuts {
            check(p, &seed[..cut]);
        }
        for _ in 0..rounds {
            let mut s = seed.to_string();
            for _ in 0..1 + rng.below(4) {
                let mut at = rng.below(s.len() + 1);
                while !s.is_char_boundary(at) {
                    at -= 1;
                }
                match rng.below(3) {
                    0 => s.insert_str(at, NASTY[rng.below(NASTY.len())]),
                    1 => {
                        let mut end = (at + 1 + rng.below(40)).min(s.len());
                        while !s.is_char_boundary(end) {
                            end += 1;
                        }
                        s.replace_range(at..end, "");
                    }
                    _ => {
                        let mut end = (at + rng.below(60)).min(s.len());
                        while !s.is_char_boundary(end) {
                            end += 1;
                        }
                        let dup = s[at..end].to_string();
                        s.insert_str(at, &dup);
                    }
                }
            }
            check(p, &s);
        }
    }
}
