//! Detectors: one file each in `detectors/`, id = file name. Loading (YAML -> spec),
//! compiling (spec -> [`Detector`] with resolved fields) and evaluating (in the engine)
//! are kept apart, as in RSigma, so `check` can validate everything without running.
//! Each kind's `params` are defined and checked beside its algorithm in
//! `engine::kinds`, so that one kind is one file; compiling here hands them over.
//!
//! A detector file is Sigma-shaped: `title`, `description`, `level`, a `detection` block
//! with selections and a `condition`. Stateless detectors (`kind: rule`) fire on one
//! event. Stateful ones name a `kind` with `params`; their `detection` selects the events
//! they count. See the README for the full list of fields, kinds and parameters.

pub mod alerting;
pub mod condition;
pub mod program;
pub mod rule;
pub mod template;

use crate::alert::Severity;
use anyhow::{anyhow, bail, Context, Result};
use rule::Matcher;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// The detectors shipped in `detectors/`, built into the binary.
pub const SHIPPED: &[(&str, &str)] = &[
    (
        "self-access",
        include_str!("../../detectors/self-access.yml"),
    ),
    ("family", include_str!("../../detectors/family.yml")),
    ("neighbour", include_str!("../../detectors/neighbour.yml")),
    ("coworker", include_str!("../../detectors/coworker.yml")),
    (
        "vip-without-care",
        include_str!("../../detectors/vip-without-care.yml"),
    ),
    (
        "deceased-patient",
        include_str!("../../detectors/deceased-patient.yml"),
    ),
    (
        "terminated-account",
        include_str!("../../detectors/terminated-account.yml"),
    ),
    (
        "unexplained-access",
        include_str!("../../detectors/unexplained-access.yml"),
    ),
    (
        "patient-volume",
        include_str!("../../detectors/patient-volume.yml"),
    ),
    (
        "after-hours",
        include_str!("../../detectors/after-hours.yml"),
    ),
    (
        "search-burst",
        include_str!("../../detectors/search-burst.yml"),
    ),
    (
        "search-fishing",
        include_str!("../../detectors/search-fishing.yml"),
    ),
    (
        "search-fishing-shift",
        include_str!("../../detectors/search-fishing-shift.yml"),
    ),
    (
        "bulk-export",
        include_str!("../../detectors/bulk-export.yml"),
    ),
    (
        "export-hoarding",
        include_str!("../../detectors/export-hoarding.yml"),
    ),
    (
        "export-then-copy",
        include_str!("../../detectors/export-then-copy.yml"),
    ),
    (
        "removable-bulk-copy",
        include_str!("../../detectors/removable-bulk-copy.yml"),
    ),
];

/// A detector file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub title: String,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub author: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub references: Vec<String>,
    #[serde(default)]
    pub falsepositives: Vec<String>,
    pub level: String,
    #[serde(default = "default_score")]
    pub score: u8,
    #[serde(default = "default_kind")]
    pub kind: String,
    pub detection: serde_norway::Value,
    #[serde(default)]
    pub params: serde_norway::Value,
    pub summary: String,
    #[serde(default)]
    pub reasons: Vec<String>,
    /// Minutes of quiet after which a finding is closed and its alert written.
    #[serde(default)]
    pub gap_minutes: Option<u32>,
    /// Days after an alert during which the same detector does not alert on the same
    /// user again (one incident, one alert: a leaver's account used day after day).
    #[serde(default)]
    pub suppress_days: u32,
    /// `immediate` or `on-close`: see [`alerting`].
    #[serde(default)]
    pub alert: Option<String>,
    /// Detectors naming the same episode (the search-rate horizons) write one alert per
    /// user for evidence that overlaps: the first to fire holds it, the others add
    /// reasons to it.
    #[serde(default)]
    pub episode: Option<String>,
}

fn default_score() -> u8 {
    50
}

fn default_kind() -> String {
    "rule".into()
}

/// A detector kind compiled by the side that evaluates it (`engine::kinds`). Loading
/// here parses and checks the file and hands `kind` and `params` to that compiler, so
/// compiling and evaluating stay apart (as in RSigma) and this module knows nothing of how
/// a kind runs.
#[derive(Clone)]
pub struct CompiledKind(pub std::sync::Arc<dyn std::any::Any + Send + Sync>);

impl std::fmt::Debug for CompiledKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CompiledKind(..)")
    }
}

/// Compiles a detector's `kind` and `params` (given its compiled `detection`).
pub type KindCompiler = fn(&str, serde_norway::Value, &Matcher) -> Result<CompiledKind>;

/// A compiled detector.
#[derive(Debug, Clone)]
pub struct Detector {
    pub id: String,
    pub title: String,
    pub description: String,
    pub severity: Severity,
    pub score: u8,
    pub kind: CompiledKind,
    pub matcher: Matcher,
    pub summary: String,
    pub reasons: Vec<String>,
    pub gap_secs: i64,
    pub suppress_days: u32,
    /// The `alert` key; `None` when absent (see [`Detector::alerts_at_once`]).
    pub alert: Option<alerting::AlertWhen>,
    /// The `episode` key: detectors naming the same one share one alert per user for
    /// overlapping evidence (see `engine::findings`).
    pub episode: Option<String>,
}

impl Detector {
    /// Parses and compiles one detector file's text.
    pub fn compile(id: &str, text: &str, kinds: KindCompiler) -> Result<Detector> {
        let spec: Spec = serde_norway::from_str(text).map_err(|e| {
            let at = e
                .location()
                .map(|l| format!("line {}, column {}: ", l.line(), l.column()))
                .unwrap_or_default();
            anyhow!("{at}{e}")
        })?;
        if let Some(declared) = &spec.id {
            if declared != id {
                bail!("`id: {declared}` differs from the file name {id:?}; the file name is the id, so rename one of them");
            }
        }
        let severity = Severity::parse(&spec.level).ok_or_else(|| {
            anyhow!(
                "level {:?} is not one of low, medium, high, critical",
                spec.level
            )
        })?;
        if spec.score > 100 {
            bail!("score {} is above 100", spec.score);
        }
        let matcher = Matcher::compile(&spec.detection).context("in `detection`")?;
        let params = if spec.params.is_null() {
            serde_norway::Value::Mapping(Default::default())
        } else {
            spec.params
        };
        let kind = kinds(&spec.kind, params, &matcher)?;
        let alert = alerting::parse(spec.alert.as_deref())?;
        for t in std::iter::once(&spec.summary).chain(&spec.reasons) {
            template::check(t).with_context(|| format!("in template {t:?}"))?;
        }
        Ok(Detector {
            id: id.to_string(),
            title: spec.title,
            description: spec.description.unwrap_or_default(),
            severity,
            score: spec.score,
            kind,
            matcher,
            summary: spec.summary,
            reasons: spec.reasons,
            gap_secs: spec.gap_minutes.unwrap_or(30) as i64 * 60,
            suppress_days: spec.suppress_days,
            alert,
            episode: spec.episode.filter(|e| !e.is_empty()),
        })
    }
}

/// The detectors a config names (`[engine] detectors`, or the shipped ones), every error
/// in one message.
pub fn load_config(
    cfg: &crate::config::Config,
    kinds: KindCompiler,
) -> anyhow::Result<Vec<Detector>> {
    load(cfg.engine.detectors.as_deref(), kinds)
        .map_err(|errs| anyhow::anyhow!("detectors are not valid:\n  {}", errs.join("\n  ")))
}

/// Loads detectors from a folder (`*.yml`, `*.yaml`), or the shipped ones when `dir` is
/// None. Every file is compiled; all errors are returned together, each naming its file.
pub fn load(dir: Option<&Path>, kinds: KindCompiler) -> Result<Vec<Detector>, Vec<String>> {
    let mut sources: Vec<(String, String, String)> = Vec::new();
    match dir {
        None => {
            for (id, text) in SHIPPED {
                sources.push((
                    id.to_string(),
                    format!("detectors/{id}.yml (built in)"),
                    text.to_string(),
                ));
            }
        }
        Some(d) => {
            let entries = std::fs::read_dir(d).map_err(|e| {
                vec![format!(
                    "{}: cannot read the detectors folder: {e}; set engine.detectors to an existing folder or remove it to use the built-in detectors",
                    d.display()
                )]
            })?;
            let mut paths: Vec<_> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    matches!(
                        p.extension().and_then(|x| x.to_str()),
                        Some("yml") | Some("yaml")
                    )
                })
                .collect();
            paths.sort();
            for p in paths {
                let id = p
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or("")
                    .to_string();
                match std::fs::read_to_string(&p) {
                    Ok(t) => sources.push((id, p.display().to_string(), t)),
                    Err(e) => return Err(vec![format!("{}: {e}", p.display())]),
                }
            }
        }
    }
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (id, name, text) in sources {
        match Detector::compile(&id, &text, kinds) {
            Ok(d) => out.push(d),
            Err(e) => errors.push(format!("{name}: {e:#}")),
        }
    }
    if out.is_empty() && errors.is_empty() {
        errors.push("no detector files (*.yml) found".into());
    }
    if errors.is_empty() {
        remember(&out);
        Ok(out)
    } else {
        Err(errors)
    }
}

/// The title and description of every detector loaded last (a reload replaces them), for
/// alert formats that carry the rule's own words (ECS `rule.description`, OCSF
/// `finding_info.desc`); alerts carry only the detector's id.
static DESCRIBED: std::sync::RwLock<BTreeMap<String, (String, String)>> =
    std::sync::RwLock::new(BTreeMap::new());

fn remember(detectors: &[Detector]) {
    if let Ok(mut m) = DESCRIBED.write() {
        for d in detectors {
            m.insert(
                d.id.clone(),
                (d.title.clone(), d.description.trim().to_string()),
            );
        }
    }
}

/// A detector's `(title, description)`: of the loaded detectors, else of the shipped one
/// with that id; `None` for an unknown id.
pub fn describe(id: &str) -> Option<(String, String)> {
    if let Some(found) = DESCRIBED.read().ok().and_then(|m| m.get(id).cloned()) {
        return Some(found);
    }
    #[derive(Deserialize)]
    struct Words {
        title: String,
        #[serde(default)]
        description: Option<String>,
    }
    let (_, text) = SHIPPED.iter().find(|(i, _)| *i == id)?;
    let w: Words = serde_norway::from_str(text).ok()?;
    Some((
        w.title,
        w.description.unwrap_or_default().trim().to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_detectors_compile_and_match_the_folder() {
        let ds = load(None, crate::engine::kinds::compile).expect("shipped detectors compile");
        assert_eq!(ds.len(), SHIPPED.len());
        let mut on_disk: Vec<String> =
            std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/detectors"))
                .unwrap()
                .filter_map(|e| {
                    let p = e.unwrap().path();
                    (p.extension()? == "yml")
                        .then(|| p.file_stem().unwrap().to_string_lossy().into_owned())
                })
                .collect();
        on_disk.sort();
        let mut shipped: Vec<String> = SHIPPED.iter().map(|s| s.0.to_string()).collect();
        shipped.sort();
        assert_eq!(
            on_disk, shipped,
            "every file in detectors/ must be listed in SHIPPED"
        );
    }

    #[test]
    fn errors_name_the_problem() {
        let bad = "title: x\nlevel: high\nsummary: s\ndetection:\n  sel:\n    user.rol: nurse\n  condition: sel\n";
        let e = Detector::compile("x", bad, crate::engine::kinds::compile).unwrap_err();
        assert!(
            format!("{e:#}").contains("unknown field \"user.rol\""),
            "{e:#}"
        );
        let bad = "title: x\nlevel: urgent\nsummary: s\ndetection:\n  sel:\n    action: view\n  condition: sel\n";
        assert!(Detector::compile("x", bad, crate::engine::kinds::compile).is_err());
    }
}
