//! The synthetic hospital: phiwatch's labelled test data.
//!
//! No public data set of labelled insider snooping exists, so phiwatch ships a simulator
//! that writes a month of a hospital that behaves like one: reference CSVs (staff,
//! patients, care), EHR audit logs split over three systems in three real formats (FHIR
//! AuditEvent, IHE ATNA syslog, an Epic-like access export), endpoint file events, a
//! `phiwatch.toml` that replays it, and `labels.json` naming the insiders it injected and
//! the legitimate look-alikes (hard negatives) that trip naive rules.
//!
//! Output is a pure function of the options: every random draw comes from ChaCha streams
//! seeded from `seed` (one stream per stage, so changing one stage does not reshuffle
//! the others), nothing iterates a hash map, and no wall-clock time is read.
//!
//! Stages: [`hospital`] people -> [`care`] encounters -> [`insiders`] chooses accounts ->
//! [`schedule`] shifts -> [`activity`] normal accesses -> [`insiders`] injects scenarios
//! -> [`labels`] -> [`writers`].

mod activity;
mod care;
mod clock;
mod hospital;
mod insiders;
mod labels;
mod names;
mod replay_config;
mod schedule;
mod writers;

use crate::event::Action;
use anyhow::{bail, Context, Result};
use chrono::{DateTime, NaiveDate, Utc};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

pub use hospital::MIN_STAFF;

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimOptions {
    pub seed: u64,
    /// Staff accounts (default 800).
    pub staff: usize,
    /// Days simulated (default 30).
    pub days: u32,
    /// First day (hospital-local date). Fixed default so output never depends on today.
    pub start: NaiveDate,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            seed: 1,
            staff: 800,
            days: 30,
            start: NaiveDate::from_ymd_opt(2026, 3, 2).expect("valid date"),
        }
    }
}

impl SimOptions {
    /// The hospital's naming dialect for job titles in the roster, from the seed: seeds
    /// 3, 6, 9, ... use snake_case ids, 1, 4, 7, ... spelled-out titles, 2, 5, 8, ... short
    /// codes. Detectors that depend on a role's name fail on two of three seeds.
    pub fn dialect(&self) -> u8 {
        (self.seed % 3) as u8
    }

    /// Options from the command line, refused with a message when they cannot make a
    /// hospital.
    pub fn checked(seed: u64, staff: usize, days: u32) -> anyhow::Result<SimOptions> {
        if staff < MIN_STAFF {
            anyhow::bail!(
                "--staff {staff} is too small: a hospital needs at least {MIN_STAFF} staff"
            );
        }
        if days == 0 {
            anyhow::bail!("--days must be at least 1");
        }
        Ok(SimOptions {
            seed,
            staff,
            days,
            ..Default::default()
        })
    }
}

/// What was written.
#[derive(Debug, Clone, Serialize)]
pub struct SimSummary {
    pub seed: u64,
    pub staff: usize,
    pub days: u32,
    pub start: NaiveDate,
    pub patients: usize,
    pub households: usize,
    pub care_rows: usize,
    /// Valid event lines per source name (malformed lines and CSV headers excluded).
    pub events: BTreeMap<String, u64>,
    pub total_events: u64,
    pub malformed_lines: u64,
    pub insiders: usize,
    pub hard_negatives: usize,
    pub files: usize,
}

impl fmt::Display for SimSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "simulated {} staff, {} patients ({} households), {} days from {} (seed {})",
            self.staff, self.patients, self.households, self.days, self.start, self.seed
        )?;
        writeln!(f, "care rows: {}", self.care_rows)?;
        for (source, n) in &self.events {
            writeln!(f, "events {source}: {n}")?;
        }
        writeln!(
            f,
            "events total: {} (+{} malformed lines) in {} files",
            self.total_events, self.malformed_lines, self.files
        )?;
        write!(
            f,
            "insiders: {}, hard negatives: {}",
            self.insiders, self.hard_negatives
        )
    }
}

/// The log systems of the simulated hospital, one `[[sources]]` each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum System {
    /// Clinical EHR: FHIR R4 AuditEvent NDJSON.
    Fhir,
    /// Radiology, laboratory and pharmacy systems: IHE ATNA over syslog.
    Atna,
    /// Registration, HIM, billing: Epic-like pipe-delimited access export.
    Epic,
    /// Endpoint file agent: canonical JSONL file events.
    Files,
}

impl System {
    pub const ALL: [System; 4] = [System::Fhir, System::Atna, System::Epic, System::Files];

    pub fn source_name(self) -> &'static str {
        match self {
            System::Fhir => "ehr-fhir",
            System::Atna => "ancillary-atna",
            System::Epic => "epic-access",
            System::Files => "endpoint-files",
        }
    }

    pub fn format(self) -> &'static str {
        match self {
            System::Fhir => "fhir-audit",
            System::Atna => "atna-syslog",
            System::Epic => "csv",
            System::Files => "canonical",
        }
    }

    pub fn dir(self) -> &'static str {
        match self {
            System::Fhir => "fhir",
            System::Atna => "atna",
            System::Epic => "epic",
            System::Files => "files",
        }
    }

    pub fn ext(self) -> &'static str {
        match self {
            System::Fhir => "ndjson",
            System::Atna => "log",
            System::Epic => "csv",
            System::Files => "jsonl",
        }
    }
}

/// What the user did on screen; each writer maps it to its own vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Patient selected and chart opened.
    Open,
    Demographics,
    ProblemList,
    ChartReview,
    Results,
    /// A note or result entered (create).
    Note,
    Update,
    Search,
    Export,
    Print,
    /// A file written by the endpoint agent, with its media.
    File(crate::event::Media),
}

impl Kind {
    pub fn action(self) -> Action {
        match self {
            Kind::Open
            | Kind::Demographics
            | Kind::ProblemList
            | Kind::ChartReview
            | Kind::Results => Action::View,
            Kind::Note => Action::Create,
            Kind::Update => Action::Update,
            Kind::Search => Action::Search,
            Kind::Export => Action::Export,
            Kind::Print => Action::Print,
            Kind::File(_) => Action::FileWrite,
        }
    }
}

/// Why an access happened: the simulator's own ground truth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Why {
    Care,
    UnrecordedConsult,
    HimRelease,
    BillingFollowup,
    BillingReport,
    Lookup,
    RoutineFile,
    ReportCopy,
    /// A consulting department back on a patient of the same stay, outside its row.
    ConsultOutsideWindow,
    /// A fortnightly release batch (export and its copy to the share).
    PeriodicExport,
    /// A month-close or quarter-close extract (export and its copy to the share).
    PeriodEndExport,
    Insider(u16),
}

pub(crate) const NONE: u32 = u32::MAX;

/// One generated log line's content, compact (millions are kept in memory).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Access {
    pub ts: i64,
    pub user: u32,
    pub patient: u32,
    /// Index into the aux table (multi-patient exports, file paths), or NONE.
    pub aux: u32,
    pub records: u32,
    pub host: u32,
    pub kind: Kind,
    pub why: Why,
    pub sys: System,
}

#[derive(Debug, Clone)]
pub(crate) enum Aux {
    /// All patients of a multi-patient export (the first is also `Access::patient`).
    Patients(Vec<u32>),
    File {
        path: String,
        bytes: u64,
    },
}

/// Everything generated, before writing.
pub(crate) struct World {
    pub h: hospital::Hospital,
    pub care: care::Care,
    pub accesses: Vec<Access>,
    pub aux: Vec<Aux>,
    pub opts: SimOptions,
}

impl World {
    pub fn push_aux(&mut self, a: Aux) -> u32 {
        self.aux.push(a);
        (self.aux.len() - 1) as u32
    }
}

/// Why an access happened, as the test hook reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// A care row names the user's department or the user, covering the time.
    Care,
    /// Radiology, laboratory or pharmacy working on a patient in care elsewhere whose
    /// order was not written into care.
    UnrecordedConsult,
    /// HIM release of information / coding for a recently discharged patient.
    HimRelease,
    /// Billing work on a patient discharged within the last weeks (or still in).
    BillingFollowup,
    /// Billing's weekly bulk report export.
    BillingReport,
    /// A patient search that selected no patient.
    Lookup,
    /// Endpoint file activity that carries no export (e.g. a radiology image CD).
    RoutineFile,
    /// The billing report saved to the network share.
    ReportCopy,
    /// A consulting department on a patient of the same stay, outside its care row.
    ConsultOutsideWindow,
    /// A fortnightly release batch exported and saved to the records share.
    PeriodicExport,
    /// A month-close or quarter-close extract exported and saved to the finance share.
    PeriodEndExport,
    /// Malicious: part of the insider `label` (index into `labels.insiders`).
    Insider { scenario: String, label: usize },
}

/// One generated event with its ground truth (test hook).
#[derive(Debug, Clone)]
pub struct TracedAccess {
    pub ts: DateTime<Utc>,
    pub user: String,
    pub role: &'static str,
    pub department: &'static str,
    pub patients: Vec<String>,
    pub action: Action,
    pub records: u64,
    /// The `[[sources]]` name it was written to.
    pub source: &'static str,
    pub host: String,
    pub reason: Reason,
}

/// The ground truth of a simulation, for tests.
#[derive(Debug, Clone)]
pub struct Trace {
    pub accesses: Vec<TracedAccess>,
}

/// A ChaCha stream for one stage, derived from the seed and the stage's name.
fn stage_rng(seed: u64, stage: &str) -> ChaCha8Rng {
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    h.update(stage.as_bytes());
    ChaCha8Rng::from_seed(h.finalize().into())
}

/// Writes the whole simulated hospital into `out` (created if missing).
pub fn simulate(opts: &SimOptions, out: &Path) -> Result<SimSummary> {
    run(opts, out, false).map(|(s, _)| s)
}

/// As [`simulate`], and also returns every generated event with the reason it happened.
pub fn simulate_with_trace(opts: &SimOptions, out: &Path) -> Result<(SimSummary, Trace)> {
    run(opts, out, true).map(|(s, t)| (s, t.expect("trace requested")))
}

fn run(opts: &SimOptions, out: &Path, want_trace: bool) -> Result<(SimSummary, Option<Trace>)> {
    if opts.staff < MIN_STAFF {
        bail!(
            "--staff {} is too small: the hospital needs at least {MIN_STAFF} staff to have every department",
            opts.staff
        );
    }
    if opts.days < 2 {
        bail!("--days must be at least 2");
    }
    let mut h = hospital::build(
        &mut stage_rng(opts.seed, "hospital"),
        opts.staff,
        opts.start,
        opts.days,
    );
    let care = care::build(
        &mut h,
        &mut stage_rng(opts.seed, "care"),
        opts.start,
        opts.days,
    );
    let mut plan = insiders::choose(&mut h, &care, &mut stage_rng(opts.seed, "insiders"), opts);
    let shifts = schedule::build(
        &h,
        &care,
        &mut stage_rng(opts.seed, "schedule"),
        opts.start,
        opts.days,
    );
    let mut world = World {
        h,
        care,
        accesses: Vec::new(),
        aux: Vec::new(),
        opts: opts.clone(),
    };
    let insider_users: Vec<u32> = plan.scenarios.iter().map(|s| s.user).collect();
    activity::generate(
        &mut world,
        &shifts,
        &insider_users,
        &mut stage_rng(opts.seed, "activity"),
    );
    insiders::inject(
        &mut world,
        &mut plan,
        &shifts,
        &mut stage_rng(opts.seed, "inject"),
    );
    // Event-time order; ties keep generation order (sort is stable).
    world.accesses.sort_by_key(|a| a.ts);

    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    writers::write_reference(&world, out)?;
    let written = writers::write_all(&world, out, &mut stage_rng(opts.seed, "writers"))?;
    let labels = labels::build(&world, &plan, &written);
    let labels_json = serde_json::to_string_pretty(&labels)? + "\n";
    std::fs::write(out.join("labels.json"), labels_json)?;
    std::fs::write(out.join("phiwatch.toml"), replay_config::render(opts))?;

    let summary = SimSummary {
        seed: opts.seed,
        staff: opts.staff,
        days: opts.days,
        start: opts.start,
        patients: world.h.patients.len(),
        households: world.h.households.len(),
        care_rows: world.care.rows.len(),
        total_events: written.events.values().sum(),
        events: written
            .events
            .iter()
            .map(|(s, n)| (s.source_name().to_string(), *n))
            .collect(),
        malformed_lines: written.malformed.values().sum(),
        insiders: labels.insiders.len(),
        hard_negatives: labels.hard_negatives.len(),
        files: written.files,
    };
    let trace = want_trace.then(|| trace(&world, &plan, &labels));
    Ok((summary, trace))
}

fn trace(w: &World, plan: &insiders::Plan, labels: &crate::score::Labels) -> Trace {
    // Scenarios that found nobody to act on are not labelled: label indexes skip them.
    let label_of: Vec<usize> = plan
        .scenarios
        .iter()
        .scan(0usize, |n, s| {
            let at = *n;
            *n += usize::from(s.events > 0);
            Some(at)
        })
        .collect();
    let accesses = w
        .accesses
        .iter()
        .map(|a| {
            let st = &w.h.staff[a.user as usize];
            let mut patients: Vec<String> = Vec::new();
            match (a.aux != NONE).then(|| &w.aux[a.aux as usize]) {
                Some(Aux::Patients(ps)) => {
                    patients.extend(ps.iter().map(|&p| w.h.patients[p as usize].id.clone()))
                }
                _ if a.patient != NONE => {
                    patients.push(w.h.patients[a.patient as usize].id.clone())
                }
                _ => {}
            }
            let reason = match a.why {
                Why::Care => Reason::Care,
                Why::UnrecordedConsult => Reason::UnrecordedConsult,
                Why::HimRelease => Reason::HimRelease,
                Why::BillingFollowup => Reason::BillingFollowup,
                Why::BillingReport => Reason::BillingReport,
                Why::Lookup => Reason::Lookup,
                Why::RoutineFile => Reason::RoutineFile,
                Why::ReportCopy => Reason::ReportCopy,
                Why::ConsultOutsideWindow => Reason::ConsultOutsideWindow,
                Why::PeriodicExport => Reason::PeriodicExport,
                Why::PeriodEndExport => Reason::PeriodEndExport,
                Why::Insider(i) => {
                    let label = label_of[i as usize];
                    Reason::Insider {
                        scenario: labels.insiders[label].scenario.clone(),
                        label,
                    }
                }
            };
            TracedAccess {
                ts: clock::utc(a.ts),
                user: st.user_id.clone(),
                role: st.role.as_str(),
                department: hospital::DEPTS[st.dept].name,
                patients,
                action: a.kind.action(),
                records: a.records as u64,
                source: a.sys.source_name(),
                host: w.h.hosts[a.host as usize].clone(),
                reason,
            }
        })
        .collect();
    Trace { accesses }
}
