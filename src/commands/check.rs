//! `check`: validates config, detectors, reference data and sources without running, and
//! reports every problem with where it is and how to fix it.

mod findings;

use crate::config::{Level, SourceType};
use crate::detect;
use crate::reference::Reference;
use std::path::Path;

#[derive(Debug, Default)]
pub struct Report {
    pub ok: Vec<String>,
    pub problems: Vec<String>,
    /// Worth a look, but nothing is wrong (a glob that matches no file yet).
    pub warnings: Vec<String>,
}

/// With `connect`, also reaches the Kafka brokers and checks the topics exist.
pub fn check(path: &Path, connect: bool) -> Report {
    let mut r = Report::default();
    // The config file and what it names on this machine, each finding with its line.
    let (cfg, findings) = findings::check(path);
    for f in findings {
        match f.level {
            Level::Error => r.problems.push(f.render(path)),
            Level::Warning => r.warnings.push(f.render(path)),
        }
    }
    let Some(cfg) = cfg else { return r };
    let kafka_used = cfg
        .sinks
        .iter()
        .any(|s| s.kind == crate::config::SinkType::Kafka);
    if connect {
        match crate::kafka::check_connection(&cfg.kafka) {
            Ok(lines) => r.ok.extend(lines),
            Err(e) => r.problems.push(format!("{e:#}")),
        }
    } else if kafka_used {
        r.ok.push("kafka: not contacted (use --connect to test the brokers and topics)".into());
    }
    match detect::load(
        cfg.engine.detectors.as_deref(),
        crate::engine::kinds::compile,
    ) {
        Ok(ds) => r.ok.push(format!("{} detectors compiled", ds.len())),
        Err(errs) => r.problems.extend(errs),
    }
    match Reference::load(&cfg.reference) {
        Ok(refd) => {
            let (s, p, c) = refd.rows();
            r.ok.push(format!(
                "reference data: {s} staff, {p} patients, {c} care rows"
            ));
            for (_, rows) in refd.rejected() {
                for why in rows {
                    r.warnings
                        .push(format!("row set aside, the rest loads: {why}"));
                }
            }
            for (name, present) in [
                ("staff", cfg.reference.staff.is_some()),
                ("patients", cfg.reference.patients.is_some()),
                ("care", cfg.reference.care.is_some()),
            ] {
                if !present {
                    r.ok.push(format!(
                        "[reference] {name} is not set: detectors that need it stay quiet"
                    ));
                }
            }
        }
        Err(e) => r.problems.push(format!("{e:#}")),
    }
    for s in &cfg.sources {
        if s.kind == SourceType::File {
            // Parsers, bad and unmatched globs are findings above.
            if let Ok(files) = crate::ingest::history::expand(&s.paths) {
                if !files.is_empty() {
                    r.ok.push(format!("source {:?}: {} file(s)", s.name, files.len()))
                }
            }
        }
    }
    r
}

pub fn main(config: &Path, connect: bool) -> anyhow::Result<i32> {
    let report = check(config, connect);
    for line in &report.ok {
        println!("ok: {line}");
    }
    for line in &report.warnings {
        println!("warning: {line}");
    }
    for line in &report.problems {
        println!("error: {line}");
    }
    if report.problems.is_empty() {
        println!("{}: no problems found", config.display());
        Ok(0)
    } else {
        println!("{}: {} problem(s)", config.display(), report.problems.len());
        Ok(1)
    }
}
