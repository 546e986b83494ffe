//! The typed record and the JSON tree give the same event (or the same rejection, with
//! the same message) for every line: the repository's FHIR fixtures (public examples,
//! shapes, broken lines), lines made to probe each liberal lookup, and a simulated
//! hospital's output.

use super::{read, read_tree, typed};
use crate::parse::prepare;
use chrono_tz::Tz;

/// Compares both readings of every line; returns how many the typed record decoded.
fn same_events(name: &str, text: &str) -> usize {
    let mut typed_lines = 0;
    for (n, line) in text.lines().enumerate() {
        let Ok(Some(line)) = prepare(line) else {
            continue;
        };
        let line = line.trim();
        for tz in [Tz::UTC, Tz::America__Chicago] {
            assert_eq!(
                read(line, tz),
                read_tree(line, tz),
                "{name} line {}: {line}",
                n + 1
            );
        }
        typed_lines += usize::from(typed::AuditEvent::parse(line).is_ok());
    }
    typed_lines
}

#[test]
fn fixtures_read_the_same() {
    let fixtures = [
        (
            "balp",
            include_str!("../../../tests/fixtures/public/balp.ndjson"),
        ),
        (
            "ch-atc",
            include_str!("../../../tests/fixtures/public/ch-atc.ndjson"),
        ),
        (
            "fhir-r4",
            include_str!("../../../tests/fixtures/public/fhir-r4.ndjson"),
        ),
        (
            "fhir-r5",
            include_str!("../../../tests/fixtures/public/fhir-r5.ndjson"),
        ),
        (
            "good",
            include_str!("../../../tests/fixtures/parse/fhir/good.ndjson"),
        ),
        (
            "bad",
            include_str!("../../../tests/fixtures/parse/fhir/bad.ndjson"),
        ),
        (
            "public-shapes",
            include_str!("../../../tests/fixtures/parse/fhir/public-shapes.ndjson"),
        ),
    ];
    for (name, text) in fixtures {
        let typed = same_events(name, text);
        if name != "bad" {
            assert!(typed > 0, "{name}: the typed record decoded no line");
        }
    }
}

/// Lines that probe the liberal lookups one by one: wrong types, repeated members,
/// escapes, numbers, nulls, and what must stay a JSON error.
#[test]
fn odd_shapes_read_the_same() {
    const BASE: &str = r#""resourceType":"AuditEvent","recorded":"2024-05-14T13:49:00Z""#;
    const AGENT: &str = r#""agent":[{"requestor":true,"who":{"reference":"Practitioner/p1"}}]"#;
    let read_ = r#""type":{"code":"rest"},"subtype":[{"code":"read"}]"#;
    let bodies = [
        // Repeated members: the last one counts, whatever came before.
        format!(
            r#"{BASE},{AGENT},{read_},"entity":[{{"what":{{"reference":"Patient/a"}}}}],"entity":5"#
        ),
        format!(
            r#"{BASE},{AGENT},{read_},"entity":5,"entity":[{{"what":{{"reference":"Patient/a"}}}}]"#
        ),
        format!(
            r#"{BASE},{AGENT},"type":{{"code":"rest"}},"type":{{"code":"110106"}},"action":"R""#
        ),
        format!(
            r#"{BASE},"agent":[{{"requestor":true,"who":{{"reference":"Practitioner/p1","reference":"Practitioner/p2"}}}}],{read_}"#
        ),
        format!(r#"{BASE},{AGENT},{read_},"outcome":"8","outcome":"0""#),
        format!(
            r#"{BASE},"agent":[{{"who":{{"display":"X"}},"requestor":true,"requestor":false}}],{read_}"#
        ),
        format!(
            r#"{BASE},{AGENT},"subtype":[{{"code":"read","code":"delete","coding":[{{"code":"x"}}],"coding":5}}]"#
        ),
        // Wrong types: each costs its element only.
        format!(
            r#"{BASE},"agent":[5,"x",null,{{"requestor":"TRUE ","who":{{"identifier":{{"value":1234567890123}}}}}}],{read_}"#
        ),
        format!(
            r#"{BASE},"agent":[{{"requestor":true,"who":"Practitioner/p1","altId":12.5}}],{read_}"#
        ),
        format!(
            r#"{BASE},"agent":[{{"requestor":true,"who":{{"identifier":{{"value":["u1"]}},"display":" Dr Y "}}}}],{read_}"#
        ),
        format!(r#"{BASE},"agent":{{"requestor":true}},{read_}"#),
        format!(
            r#""recorded":"2024-05-14T13:49:00Z","agent":[{{"requestor":true,"name":"N"}}],{read_}"#
        ),
        format!(r#""resourceType":7,"recorded":"2024-05-14T13:49:00Z","agent":[],{read_}"#),
        r#""resourceType":"Patient","id":"x""#.to_string(),
        format!(r#"{BASE},{AGENT},"type":"rest","subtype":{{"code":" read "}}"#),
        format!(
            r#"{BASE},{AGENT},"type":[{{"coding":[{{"code":"110110"}},7,{{"code":3}}]}},"x"],"action":"U""#
        ),
        format!(r#"{BASE},{AGENT},{read_},"outcome":4"#),
        format!(r#"{BASE},{AGENT},{read_},"outcome":true"#),
        format!(r#"{BASE},{AGENT},{read_},"outcome":[{{"code":"8"}}]"#),
        format!(r#"{BASE},{AGENT},{read_},"outcome":{{"code":"8"}}"#),
        format!(r#"{BASE},{AGENT},{read_},"outcome":{{"code":[{{"coding":[{{"code":" 4 "}}]}}]}}"#),
        format!(r#"{BASE},{AGENT},{read_},"outcome":{{"coding":[{{"code":"success"}}]}}"#),
        format!(r#"{BASE},{AGENT},{read_},"outcome":{{"code":{{}},"coding":[{{"code":"12"}}]}}"#),
        format!(r#"{BASE},{AGENT},{read_},"outcome":null"#),
        // Times: present but not a date-time, a date-only period start, nulls.
        format!(
            r#""resourceType":"AuditEvent","period":{{"start":"2024-05-14"}},"recorded":"2024-05-14T13:49:00Z",{AGENT},{read_}"#
        ),
        format!(r#""resourceType":"AuditEvent","period":"2024-05-14T13:49:00Z",{AGENT},{read_}"#),
        format!(r#""resourceType":"AuditEvent","recorded":null,{AGENT},{read_}"#),
        format!(r#""resourceType":"AuditEvent","recorded":12,{AGENT},{read_}"#),
        format!(
            r#""resourceType":"AuditEvent","occurredPeriod":{{"start":"2024-05-14T13:49:00+02:00"}},{AGENT},{read_}"#
        ),
        format!(
            r#""resourceType":"AuditEvent","occurredDateTime":"2024-05-14 13:49:00",{AGENT},{read_}"#
        ),
        // Entities: query present as null, type null, role absent, CX identifiers.
        format!(
            r#"{BASE},{AGENT},"type":{{"code":"rest"}},"action":"E","entity":[{{"query":null}}]"#
        ),
        format!(
            r#"{BASE},{AGENT},{read_},"entity":[{{"type":null,"role":{{"code":"1"}},"what":{{"identifier":{{"value":"M1^^^&1.2&ISO"}}}}}}]"#
        ),
        format!(
            r#"{BASE},{AGENT},{read_},"entity":[{{"type":{{"code":"Patient"}},"role":null,"what":{{"identifier":{{"value":42}}}}}}]"#
        ),
        format!(
            r#"{BASE},{AGENT},{read_},"entity":[{{"type":{{"code":"Patient"}},"role":5,"what":{{"reference":"Patient/q"}}}}]"#
        ),
        format!(
            r#"{BASE},{AGENT},{read_},"patient":{{"identifier":{{"value":" P5 "}}}},"entity":["x",{{"what":{{"reference":"Patient/z"}}}}]"#
        ),
        // Media, network, purpose, policy.
        format!(
            r#"{BASE},"agent":[{{"requestor":true,"who":{{"reference":"Practitioner/p1"}},"media":{{"coding":[{{"code":"110010","display":"Film"}},5]}},"networkString":"ws"}}],"type":{{"code":"110106"}},"action":"R""#
        ),
        format!(
            r#"{BASE},"agent":[{{"requestor":true,"who":{{"reference":"Practitioner/p1"}},"media":{{"code":"110030","coding":"x"}},"networkUri":" h "}}],"type":{{"code":"110106"}},"action":"R""#
        ),
        format!(
            r#"{BASE},"agent":[{{"requestor":true,"who":{{"reference":"Practitioner/p1"}},"media":{{"coding":[]}},"network":{{"address":7}},"networkUri":"u"}}],"type":{{"code":"110106"}},"action":"R""#
        ),
        format!(
            r#"{BASE},"agent":[{{"requestor":true,"type":{{"code":"UserOauthAgent"}},"policy":[null,7,"t"]}}],{read_},"purposeOfEvent":[{{"coding":[{{"code":""}}]}},{{"code":"etreat"}}]"#
        ),
        format!(
            r#"{BASE},"agent":[{{"requestor":true,"who":{{"reference":"Practitioner/p1"}},"authorization":[{{"coding":[{{"code":"HRESCH"}}]}}]}}],{read_}"#
        ),
        // Escapes in keys and values.
        format!(
            r#"{BASE},"\u0061gent":[{{"requestor":true,"who":{{"identifier":{{"value":"u\u0031\"x"}}}}}}],{read_},"entity":[{{"what":{{"reference":"Patient\/\u00e9"}}}}]"#
        ),
        // Unread elements of any shape, extensions included.
        format!(
            r#"{BASE},{AGENT},{read_},"extension":[{{"url":"x","valueCoding":{{"code":"1"}}}}],"source":{{"observer":{{"display":"\ud83d\ude00"}}}},"id":1e300"#
        ),
    ];
    let mut lines: Vec<String> = bodies.iter().map(|b| format!("{{{b}}}")).collect();
    lines.extend(
        [
            // JSON errors, in read and in unread elements: the tree's message either way.
            r#"{"resourceType":"AuditEvent","id":1e400}"#,
            r#"{"resourceType":"AuditEvent","id":"\x"}"#,
            r#"{"resourceType":"AuditEvent","id":"\ud800"}"#,
            r#"{"resourceType":"AuditEvent"} x"#,
            r#"{"resourceType":"AuditEvent",}"#,
            r#"["AuditEvent"]"#,
            r#""AuditEvent""#,
            "null",
            // Where a faster parser tried for the typed record (simd-json) is more
            // liberal than serde_json or reads differently: control characters, lone
            // surrogates, -0, integers over 64 bits, floats, trailing input, bad syntax.
            r#"{"resourceType":"AuditEvent","id":"\ud800"}"#,
            r#"{"resourceType":"AuditEvent","id":"\uDBFF","agent":[]}"#,
            r#"{"resourceType":"AuditEvent","id":"\udc00\ud800"}"#,
            "{\"resourceType\":\"AuditEvent\",\"id\":1\u{0}}",
            "{\"resourceType\":\"AuditEvent\",\"id\":\"a\u{1}b\"}",
            "{\"resourceType\":\"AuditEvent\",\"id\":\"a\tb\"}",
            "{\"resourceType\":\"AuditEvent\",\t\"id\":1}",
            r#"{"resourceType":"AuditEvent","agent":[{"requestor":true,"altId":-0}],"type":{"code":"rest"},"subtype":{"code":"read"},"recorded":"2024-05-14T13:49:00Z"}"#,
            r#"{"resourceType":"AuditEvent","agent":[{"requestor":true,"altId": -0}],"type":{"code":"rest"},"subtype":{"code":"read"},"recorded":"2024-05-14T13:49:00Z"}"#,
            r#"{"resourceType":"AuditEvent","agent":[{"requestor":true,"policy":[-0,-0.0,-00]}],"type":{"code":"rest"},"subtype":{"code":"read"},"recorded":"2024-05-14T13:49:00Z"}"#,
            r#"{"resourceType":"AuditEvent","agent":[{"requestor":true,"policy":[1, -0]}],"type":{"code":"rest"},"subtype":{"code":"read"},"recorded":"2024-05-14T13:49:00Z"}"#,
            r#"{"resourceType":"AuditEvent","agent":[{"requestor":true,"altId":18446744073709551616}],"type":{"code":"rest"},"subtype":{"code":"read"},"recorded":"2024-05-14T13:49:00Z"}"#,
            r#"{"resourceType":"AuditEvent","agent":[{"requestor":true,"altId":18446744073709551615}],"type":{"code":"rest"},"subtype":{"code":"read"},"recorded":"2024-05-14T13:49:00Z","outcome":-9223372036854775808}"#,
            r#"{"resourceType":"AuditEvent","agent":[{"requestor":true,"altId":-9223372036854775809}],"type":{"code":"rest"},"subtype":{"code":"read"},"recorded":"2024-05-14T13:49:00Z"}"#,
            r#"{"resourceType":"AuditEvent","agent":[{"requestor":true,"altId":1E2}],"type":{"code":"rest"},"subtype":{"code":"read"},"recorded":"2024-05-14T13:49:00Z","outcome":0.1}"#,
            r#"{"resourceType":"AuditEvent","agent":[{"requestor":true,"altId":"\u0000\/\b\f\n\r\t\"\\\u00e9\uffff"}],"type":{"code":"rest"},"subtype":{"code":"read"},"recorded":"2024-05-14T13:49:00Z"}"#,
            r#"{"resourceType":"AuditEvent"}{}"#,
            r#"{"resourceType":"AuditEvent"} {"#,
            r#"{"resourceType":"AuditEvent"}]"#,
            r#"{"resourceType":"AuditEvent","a":[1,],"agent":[]}"#,
            r#"{"resourceType":"AuditEvent","a":01,"agent":[]}"#,
            r#"{"resourceType":"AuditEvent","a":+1,"agent":[]}"#,
            r#"{"resourceType":"AuditEvent","a":tru,"agent":[]}"#,
            "{\"resourceType\":\"AuditEvent\",\"a\":\u{a0}1,\"agent\":[]}",
            "\u{feff}{\"resourceType\":\"AuditEvent\",\"agent\":[]}",
        ]
        .map(String::from),
    );
    let deep = |open: &str, close: &str, n: usize| {
        format!(
            r#"{{"resourceType":"AuditEvent","source":{}1{}}}"#,
            open.repeat(n),
            close.repeat(n)
        )
    };
    for n in [99, 100, 101, 126, 127, 128, 200] {
        lines.push(deep("[", "]", n));
        lines.push(deep("{\"a\":", "}", n));
    }
    let typed = same_events("odd shapes", &lines.join("\n"));
    assert!(
        typed >= bodies.len(),
        "{typed} of {} decoded typed",
        bodies.len()
    );
}

/// What the simulator writes, for two seeds.
#[test]
fn simulated_hospital_reads_the_same() {
    for seed in [1, 2] {
        let dir = tempfile::tempdir().unwrap();
        let opts = crate::simulate::SimOptions {
            seed,
            staff: crate::simulate::MIN_STAFF,
            days: 2,
            ..Default::default()
        };
        crate::simulate::simulate(&opts, dir.path()).unwrap();
        let mut typed = 0;
        for f in std::fs::read_dir(dir.path().join("fhir")).unwrap() {
            let path = f.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            typed += same_events(&path.display().to_string(), &text);
        }
        assert!(typed > 100, "seed {seed}: {typed} lines decoded typed");
    }
}

/// Every FHIR line of the files under `PHIWATCH_FHIR_EQUIVALENCE` (a folder of
/// `.ndjson`, e.g. a simulated month's `fhir/`): `cargo test --lib -- --ignored
/// every_line_of_a_month`.
#[test]
#[ignore = "reads a month of files named by PHIWATCH_FHIR_EQUIVALENCE"]
fn every_line_of_a_month_reads_the_same() {
    let dir = std::env::var("PHIWATCH_FHIR_EQUIVALENCE").expect("PHIWATCH_FHIR_EQUIVALENCE");
    let mut typed = 0;
    for f in std::fs::read_dir(dir).unwrap() {
        let path = f.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        typed += same_events(&path.display().to_string(), &text);
    }
    assert!(typed > 0);
}
/// Lines of the fixtures with one to three random edits (a character replaced, inserted
/// or removed, or a stretch repeated) from an alphabet of JSON's syntax, escapes,
/// numbers and control characters: both readings must still agree.
#[test]
fn mutated_lines_read_the_same() {
    use rand::{Rng, SeedableRng};
    const ALPHABET: &[&str] = &[
        "{",
        "}",
        "[",
        "]",
        ":",
        ",",
        "\"",
        "\\",
        "\\u",
        "d8",
        "DC",
        "00",
        "-",
        "-0",
        "0",
        "1",
        "9",
        ".",
        "e",
        "E",
        "+",
        " ",
        "\t",
        "\u{0}",
        "\u{1}",
        "\u{1f}",
        "true",
        "null",
        "1e400",
        "18446744073709551616",
        "é",
        "😀",
        "\u{a0}",
        "\"code\":",
        "\"agent\":[",
    ];
    let seeds = [
        include_str!("../../../tests/fixtures/parse/fhir/good.ndjson"),
        include_str!("../../../tests/fixtures/parse/fhir/public-shapes.ndjson"),
        include_str!("../../../tests/fixtures/public/fhir-r5.ndjson"),
    ];
    let lines: Vec<&str> = seeds
        .iter()
        .flat_map(|t| t.lines())
        .filter(|l| l.trim_start().starts_with('{'))
        .collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(16);
    let mut mutants = Vec::new();
    for _ in 0..3000 {
        let mut m: Vec<char> = lines[rng.gen_range(0..lines.len())].chars().collect();
        for _ in 0..rng.gen_range(1..=3) {
            let at = rng.gen_range(0..=m.len());
            let piece: Vec<char> = ALPHABET[rng.gen_range(0..ALPHABET.len())].chars().collect();
            match rng.gen_range(0..4) {
                0 if at < m.len() => {
                    m.splice(at..at + 1, piece);
                }
                1 => {
                    m.splice(at..at, piece);
                }
                2 if at < m.len() => {
                    m.remove(at);
                }
                _ => {
                    let end = (at + rng.gen_range(1..40)).min(m.len());
                    let stretch = m[at..end].to_vec();
                    m.splice(end..end, stretch);
                }
            }
        }
        mutants.push(m.into_iter().collect::<String>());
    }
    let typed = same_events("mutants", &mutants.join("\n"));
    // The edits must leave both kinds of line: decoded typed, and rejected.
    assert!(typed > 300, "{typed} of {} decoded typed", mutants.len());
    assert!(
        typed + 300 < mutants.len(),
        "{typed} of {} decoded typed",
        mutants.len()
    );
}
