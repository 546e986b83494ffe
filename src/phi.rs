//! PHI content sampling: how much a new file looks like patient data, from its first
//! bytes only. Keyword hits (column headers such as MRN, DOB, diagnosis) are counted with
//! one Aho-Corasick pass, patterns (MRNs, SSN-like numbers, dates of birth) with regexes,
//! and the patient rows are estimated from the lines that carry a patient id,
//! extrapolated to the file's size. Only counts leave this module, never matched text.

use crate::event::PhiMarkers;
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use anyhow::{Context, Result};
use regex::bytes::Regex;
use std::io::Read;
use std::path::Path;

/// Bytes read from each file unless configured otherwise.
pub const DEFAULT_SAMPLE_BYTES: usize = 64 * 1024;
/// The most a sample may be configured to.
pub const MAX_SAMPLE_BYTES: usize = 4 * 1024 * 1024;

pub const DEFAULT_KEYWORDS: &[&str] = &[
    "mrn",
    "medical record",
    "patient id",
    "patient_id",
    "patient name",
    "dob",
    "date of birth",
    "birth_date",
    "ssn",
    "social security",
    "diagnosis",
    "icd-10",
    "icd10",
    "admit date",
    "discharge date",
    "insurance",
    "member id",
];

pub const DEFAULT_MRN_PATTERNS: &[&str] = &[r"\bMRN[-: ]?\d{5,12}\b"];

#[derive(Debug, Clone)]
pub struct Sampler {
    max_bytes: usize,
    keywords: AhoCorasick,
    mrn: Vec<Regex>,
    ssn: Regex,
    dob: Regex,
}

/// What kind of content the first block showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    Text,
    /// A PDF: scanned as bytes, since its text is often stored uncompressed.
    Pdf,
    /// A zip container (xlsx, docx): compressed, so nothing can be counted cheaply.
    Office,
    Binary,
}

impl Sampler {
    pub fn new(max_bytes: usize, keywords: &[String], mrn_patterns: &[String]) -> Result<Sampler> {
        let kw: Vec<String> = if keywords.is_empty() {
            DEFAULT_KEYWORDS.iter().map(|s| s.to_string()).collect()
        } else {
            keywords.to_vec()
        };
        let pats: Vec<String> = if mrn_patterns.is_empty() {
            DEFAULT_MRN_PATTERNS.iter().map(|s| s.to_string()).collect()
        } else {
            mrn_patterns.to_vec()
        };
        let mrn = pats
            .iter()
            .map(|p| {
                Regex::new(p).with_context(|| format!("mrn pattern {p:?} is not a valid regex"))
            })
            .collect::<Result<_>>()?;
        Ok(Sampler {
            max_bytes: max_bytes.clamp(1024, MAX_SAMPLE_BYTES),
            keywords: AhoCorasickBuilder::new()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::LeftmostLongest)
                .build(&kw)?,
            mrn,
            ssn: Regex::new(r"\b\d{3}-\d{2}-\d{4}\b").expect("valid"),
            dob: Regex::new(r"\b(?:19|20)\d{2}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])\b|\b(?:0?[1-9]|1[0-2])/(?:0?[1-9]|[12]\d|3[01])/(?:19|20)\d{2}\b").expect("valid"),
        })
    }

    pub fn with_defaults() -> Sampler {
        Sampler::new(DEFAULT_SAMPLE_BYTES, &[], &[]).expect("defaults are valid")
    }

    /// Samples a file. None when it cannot be read (gone already, no permission).
    pub fn sample(&self, path: &Path) -> Option<(Content, PhiMarkers)> {
        let mut f = std::fs::File::open(path).ok()?;
        let size = f.metadata().ok()?.len();
        let mut buf = Vec::with_capacity(self.max_bytes.min(size as usize + 1));
        f.by_ref()
            .take(self.max_bytes as u64)
            .read_to_end(&mut buf)
            .ok()?;
        Some(self.sample_bytes(&buf, size))
    }

    /// Samples the first bytes of a file of `size` bytes.
    pub fn sample_bytes(&self, buf: &[u8], size: u64) -> (Content, PhiMarkers) {
        let content = classify(buf);
        if matches!(content, Content::Office | Content::Binary) {
            return (content, PhiMarkers::default());
        }
        let keywords = self.keywords.find_iter(buf).count() as u32;
        let ssn = self.ssn.find_iter(buf).count() as u32;
        let dob = self.dob.find_iter(buf).count() as u32;
        let mut rows = 0u64;
        let mut mrn_hits = 0u32;
        // Only whole lines count as rows: the sample may end inside one.
        let whole = match buf.iter().rposition(|&b| b == b'\n') {
            Some(i) if (buf.len() as u64) < size => &buf[..=i],
            _ => buf,
        };
        for line in whole.split(|&b| b == b'\n') {
            let hits: usize = self.mrn.iter().map(|r| r.find_iter(line).count()).sum();
            if hits > 0 {
                rows += 1;
                mrn_hits += hits as u32;
            }
        }
        if (whole.len() as u64) < size && !whole.is_empty() {
            rows = (rows as f64 * size as f64 / whole.len() as f64).round() as u64;
        }
        (
            content,
            PhiMarkers {
                keywords,
                patterns: mrn_hits + ssn + dob,
                records: rows,
            },
        )
    }
}

fn classify(buf: &[u8]) -> Content {
    if buf.starts_with(b"%PDF") {
        Content::Pdf
    } else if buf.starts_with(b"PK\x03\x04") {
        Content::Office
    } else if buf[..buf.len().min(4096)].contains(&0) {
        Content::Binary
    } else {
        Content::Text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_export_counts_rows_and_markers() {
        let mut csv = String::from("MRN,Patient Name,DOB,Diagnosis\n");
        for i in 0..200 {
            csv.push_str(&format!(
                "MRN{:07},Doe {i},1970-01-{:02},I10\n",
                1_000_000 + i,
                1 + i % 28
            ));
        }
        let s = Sampler::with_defaults();
        let (c, m) = s.sample_bytes(csv.as_bytes(), csv.len() as u64);
        assert_eq!(c, Content::Text);
        assert_eq!(m.records, 200);
        assert!(m.keywords >= 4, "{m:?}");
        assert!(m.patterns >= 400, "{m:?}");
        let (_, none) = s.sample_bytes(b"meeting notes\nbudget 2026\n", 26);
        assert_eq!(none, PhiMarkers::default());
        let (c, m) = s.sample_bytes(b"\x00\x01\x02MRN1234567", 13);
        assert_eq!((c, m.records), (Content::Binary, 0));
    }

    #[test]
    fn large_files_are_extrapolated_from_whole_lines() {
        let line = "MRN1234567,x\n";
        let sample = line.repeat(100);
        let s = Sampler::with_defaults();
        let (_, m) = s.sample_bytes(sample.as_bytes(), (line.len() * 1000) as u64);
        assert_eq!(m.records, 1000);
    }
}
