//! The PHI sampler on the kinds of files that leave hospitals: a CSV export, a PDF with
//! text, an XLSX (compressed: recognised, not counted), a binary image, and a large file
//! sampled from its start only.

use phiwatch::phi::{Content, Sampler};
use std::io::Write;

#[test]
fn csv_pdf_xlsx_and_binary() {
    let dir = tempfile::tempdir().unwrap();
    let s = Sampler::with_defaults();

    let csv = dir.path().join("export.csv");
    let mut f = std::fs::File::create(&csv).unwrap();
    writeln!(f, "MRN,Patient Name,DOB,Diagnosis,SSN").unwrap();
    for i in 0..200 {
        writeln!(
            f,
            "MRN{:07},Doe {i},03/14/1961,E11.9,123-45-{:04}",
            2_000_000 + i,
            i
        )
        .unwrap();
    }
    drop(f);
    let (c, m) = s.sample(&csv).unwrap();
    assert_eq!(c, Content::Text);
    assert_eq!(m.records, 200);
    assert!(m.keywords >= 5, "{m:?}");
    assert_eq!(
        m.patterns, 600,
        "one MRN, one date of birth and one SSN per row: {m:?}"
    );

    let pdf = dir.path().join("chart.pdf");
    std::fs::write(
        &pdf,
        b"%PDF-1.4\n1 0 obj << /Type /Page >>\nBT (Patient Name: Jane Doe) Tj (MRN1234567) Tj (Date of Birth: 1970-05-05) Tj ET\n%%EOF\n",
    )
    .unwrap();
    let (c, m) = s.sample(&pdf).unwrap();
    assert_eq!(c, Content::Pdf);
    assert!(
        m.keywords >= 2 && m.patterns >= 2 && m.records == 1,
        "{m:?}"
    );

    let xlsx = dir.path().join("export.xlsx");
    std::fs::write(
        &xlsx,
        b"PK\x03\x04\x14\x00\x06\x00compressed xml follows MRN1234567",
    )
    .unwrap();
    let (c, m) = s.sample(&xlsx).unwrap();
    assert_eq!((c, m.records, m.keywords), (Content::Office, 0, 0));

    let img = dir.path().join("scan.dcm");
    std::fs::write(&img, [0u8, 1, 2, 3, 0, 77, 82, 78].repeat(1000)).unwrap();
    assert_eq!(s.sample(&img).unwrap().0, Content::Binary);

    let none = dir.path().join("memo.txt");
    std::fs::write(&none, "Budget meeting moved to Thursday.\n").unwrap();
    let (_, m) = s.sample(&none).unwrap();
    assert_eq!((m.keywords, m.patterns, m.records), (0, 0, 0));
}

#[test]
fn a_large_file_is_sampled_from_its_start_and_extrapolated() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.csv");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&big).unwrap());
    let rows = 100_000;
    for i in 0..rows {
        writeln!(f, "MRN{:07},x", 1_000_000 + i).unwrap();
    }
    drop(f);
    let s = Sampler::new(16 * 1024, &[], &[r"\bMRN\d{7}\b".to_string()]).unwrap();
    let (_, m) = s.sample(&big).unwrap();
    let err = (m.records as f64 - rows as f64).abs() / rows as f64;
    assert!(err < 0.01, "estimated {} of {rows} rows", m.records);
}
