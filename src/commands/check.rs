//! `check`: validates config, detectors, reference data and sources without running, and
//! reports every problem with where it is and how to fix it.

use crate::config::{Config, SourceType};
use crate::detect;
use crate::parse;
use crate::reference::Reference;
use std::path::Path;

#[derive(Debug, Default)]
pub struct Report {
    pub ok: Vec<String>,
    pub problems: Vec<String>,
}

/// With `connect`, also reaches the Kafka brokers and checks the topics exist.
pub fn check(path: &Path, connect: bool) -> Report {
    let mut r = Report::default();
    let cfg = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            r.problems.push(format!("{e:#}"));
            return r;
        }
    };
    let at = path.display().to_string();
    for p in cfg.validate() {
        r.problems.push(format!("{at}: {p}"));
    }
    let kafka_used = cfg
        .sinks
        .iter()
        .any(|s| s.kind == crate::config::SinkType::Kafka);
    for p in crate::kafka::validate(&cfg.kafka) {
        r.problems.push(format!("{at}: {p}"));
    }
    if connect {
        match crate::kafka::check_connection(&cfg.kafka) {
            Ok(lines) => r.ok.extend(lines),
            Err(e) => r.problems.push(format!("{e:#}")),
        }
    } else if kafka_used {
        r.ok.push("kafka: not contacted (use --connect to test the brokers and topics)".into());
    }
    for p in crate::sink::check(&cfg) {
        r.problems.push(format!("{at}: {p}"));
    }
    match detect::load(cfg.engine.detectors.as_deref()) {
        Ok(ds) => r.ok.push(format!("{} detectors compiled", ds.len())),
        Err(errs) => r.problems.extend(errs),
    }
    match Reference::load(&cfg.reference) {
        Ok(refd) => {
            let (s, p, c) = refd.rows();
            r.ok.push(format!(
                "reference data: {s} staff, {p} patients, {c} care rows"
            ));
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
    let tz = cfg.timezone().unwrap_or(chrono_tz::UTC);
    for s in &cfg.sources {
        if s.kind == SourceType::File {
            if let Err(e) = parse::build(s, tz) {
                r.problems.push(format!("{at}: source {:?}: {e:#}", s.name));
            }
            match crate::ingest::history::expand(&s.paths) {
                Ok(files) if files.is_empty() => r.ok.push(format!(
                    "source {:?}: no file matches {:?} yet",
                    s.name, s.paths
                )),
                Ok(files) => {
                    r.ok.push(format!("source {:?}: {} file(s)", s.name, files.len()))
                }
                Err(e) => r.problems.push(format!("{at}: source {:?}: {e:#}", s.name)),
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
