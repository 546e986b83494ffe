//! For the format and sink tests: a sample alert (`tests/fixtures/format/alert.json`), a
//! small CEF parser and a small LEEF parser that follow the escaping rules of the specs,
//! independently of the code under test.

use phiwatch::alert::{Alert, Severity};

pub const KEY: &[u8] = b"test-key-0123456789abcdef";

/// The tricky sample: `|`, `\`, `=`, a newline and patient ids inside reasons.
pub fn sample() -> Alert {
    let text = include_str!("../fixtures/format/alert.json");
    serde_json::from_str(text.trim()).expect("fixture alert parses")
}

/// The id of [`sample`], which [`follow_up`] follows.
pub const FIRST_ID: &str = "pw-0123456789abcdef01234567";

/// A follow-up of [`sample`]: its finding grew after the sample was written at once.
pub fn follow_up() -> Alert {
    let mut a = sample();
    a.id = "pw-76543210fedcba9876543210".into();
    a.follows = Some(FIRST_ID.into());
    a.events = 5;
    a
}

pub fn sample_n(n: usize) -> Alert {
    let mut a = sample();
    a.id = format!("pw-test-{n:04}");
    a.severity = [
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ][n % 4];
    a.score = (n * 7 % 101) as u8;
    a.events = n as u64 + 1;
    a
}

/// Sends `sample_n(n)` for every n of `ns` to the sinks.
pub fn send_samples(set: &phiwatch::sink::SinkSet, ns: std::ops::Range<usize>) {
    for n in ns {
        set.send(&sample_n(n));
    }
}

#[derive(Debug)]
pub struct Cef {
    /// Version, vendor, product, device version, class id, name, severity: unescaped.
    pub header: Vec<String>,
    /// Extension pairs in order, values unescaped.
    pub ext: Vec<(String, String)>,
}

impl Cef {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.ext
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses one CEF line, failing loudly on anything not allowed by the escaping rules.
pub fn parse_cef(line: &str) -> Cef {
    assert!(line.starts_with("CEF:"), "not CEF: {line}");
    assert!(
        !line.contains('\n') && !line.contains('\r'),
        "raw newline in CEF"
    );
    let mut header = Vec::new();
    let mut cur = String::new();
    let mut chars = line[4..].chars();
    while header.len() < 7 {
        let c = chars.next().expect("CEF header has 7 fields");
        match c {
            '\\' => match chars.next() {
                Some('\\') => cur.push('\\'),
                Some('|') => cur.push('|'),
                other => panic!("bad escape in CEF header: \\{other:?}"),
            },
            '|' => header.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    let ext: Vec<char> = chars.collect();
    // Positions of unescaped '=': each ends a key.
    let mut eqs = Vec::new();
    let mut i = 0;
    while i < ext.len() {
        match ext[i] {
            '\\' => i += 2,
            '=' => {
                eqs.push(i);
                i += 1
            }
            _ => i += 1,
        }
    }
    let key_start = |eq: usize| {
        let mut s = eq;
        while s > 0 && ext[s - 1].is_ascii_alphanumeric() {
            s -= 1;
        }
        assert!(s == 0 || ext[s - 1] == ' ', "key not preceded by a space");
        s
    };
    let mut pairs = Vec::new();
    for (n, &eq) in eqs.iter().enumerate() {
        let ks = key_start(eq);
        let key: String = ext[ks..eq].iter().collect();
        assert!(!key.is_empty(), "empty key");
        let end = eqs
            .get(n + 1)
            .map_or(ext.len(), |&next| key_start(next) - 1);
        let raw = &ext[eq + 1..end];
        let mut v = String::new();
        let mut j = 0;
        while j < raw.len() {
            if raw[j] == '\\' {
                j += 1;
                match raw.get(j) {
                    Some('\\') => v.push('\\'),
                    Some('=') => v.push('='),
                    Some('n') => v.push('\n'),
                    Some('r') => v.push('\r'),
                    other => panic!("bad escape in CEF value: \\{other:?}"),
                }
            } else {
                v.push(raw[j]);
            }
            j += 1;
        }
        pairs.push((key, v));
    }
    Cef { header, ext: pairs }
}

#[derive(Debug)]
pub struct Leef {
    pub header: Vec<String>,
    pub delimiter: char,
    pub attrs: Vec<(String, String)>,
}

impl Leef {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses one LEEF 2.0 line: 6 header fields (the 6th declares the delimiter), then
/// `key=value` pairs split on the delimiter and the first `=`.
pub fn parse_leef(line: &str) -> Leef {
    let parts: Vec<&str> = line.splitn(7, '|').collect();
    assert_eq!(parts.len(), 7, "LEEF 2.0 has 6 header fields: {line}");
    assert_eq!(parts[0], "LEEF:2.0");
    let delimiter = match parts[5] {
        d if d.starts_with("0x") || d.starts_with('x') => {
            let hex = d.trim_start_matches("0x").trim_start_matches('x');
            char::from_u32(u32::from_str_radix(hex, 16).unwrap()).unwrap()
        }
        d if d.chars().count() == 1 => d.chars().next().unwrap(),
        d => panic!("bad LEEF delimiter {d:?}"),
    };
    let attrs = parts[6]
        .split(delimiter)
        .map(|kv| {
            let (k, v) = kv.split_once('=').expect("attribute has =");
            (k.to_string(), v.to_string())
        })
        .collect();
    Leef {
        header: parts[..6].iter().map(|s| s.to_string()).collect(),
        delimiter,
        attrs,
    }
}
