//! What `phiwatch check` finds in the config file and on the machine around it, each
//! finding with its line in the file where one can be known:
//!
//! - everything [`Config::read`] rejects (syntax, unknown keys and tables, types), and
//!   [`Config::problems`], `[kafka]`, every `[[sinks]]` entry and every `file` source's
//!   parser as the commands build them;
//! - the state folder exists or can be created, and is writable;
//! - the folder of every file a sink writes (and of `[dead_letter] path`) can be created;
//! - every glob of a `file` source matches a file now (a warning: files may come later).
//!
//! Nothing is left behind: writability is tried with a temporary file in the folder, or in
//! its nearest existing parent when it does not exist yet, which is removed at once.

use crate::config::{Config, Finding, SourceType};
use std::path::{Path, PathBuf};

/// The config of `path` (when it could be read) and every finding, by line.
pub fn check(path: &Path) -> (Option<Config>, Vec<Finding>) {
    let cfg = match Config::read(path) {
        Ok(cfg) => cfg,
        Err(findings) => return (None, findings),
    };
    let mut findings = config_findings(&cfg);
    findings.sort_by_key(|f| f.line);
    (Some(cfg), findings)
}

/// The findings about a config that was read.
pub fn config_findings(cfg: &Config) -> Vec<Finding> {
    let lines = &cfg.lines;
    let mut out = cfg.problems();
    for p in crate::kafka::validate(&cfg.kafka) {
        // "[kafka] brokers is empty": the line of that key if it is in the file.
        let key = p
            .strip_prefix("[kafka] ")
            .and_then(|r| r.split([' ', ',']).next())
            .map(|k| format!("kafka.{k}"))
            .unwrap_or_default();
        out.push(Finding::error(lines.first(&[key.as_str(), "kafka"]), p));
    }

    for (i, sc) in cfg.sinks.iter().enumerate() {
        let entry = format!("sinks.{i}");
        match crate::sink::SinkSpec::from_config(i, sc, cfg, false) {
            Err(e) => out.push(Finding::error(lines.get(&entry), format!("{e:#}"))),
            Ok(spec) => {
                let at = crate::sink::sink_label(i, Some(&spec.name), sc.kind.name());
                for file in spec.target.files() {
                    if let Err(why) = file_usable(&file) {
                        out.push(Finding::error(
                            lines.first(&[format!("{entry}.path"), entry.clone()]),
                            format!("{at}: {why}; fix `path` or the folder's permissions"),
                        ));
                    }
                }
            }
        }
    }

    if let Err(why) = dir_usable(&cfg.state.dir) {
        out.push(Finding::error(
            lines.first(&["state.dir", "state"]),
            format!(
                "[state] dir {} {why}; choose another `dir` or fix the folder's permissions",
                cfg.state.dir.display()
            ),
        ));
    }
    if let Some(p) = &cfg.dead_letter.path {
        if let Err(why) = file_usable(p) {
            out.push(Finding::error(
                lines.first(&["dead_letter.path", "dead_letter"]),
                format!("[dead_letter] path: {why}; choose another `path`"),
            ));
        }
    }

    if lines.get("kafka").is_some() {
        for w in crate::kafka::warnings(&cfg.kafka) {
            out.push(Finding::warning(
                lines.first(&["kafka.sasl_mechanism", "kafka"]),
                w,
            ));
        }
    }
    if cfg.sources.is_empty() {
        // `engine` reads its events from Kafka and needs no source; `run` and `agent` do.
        if lines.get("kafka").is_some() {
            out.push(Finding::warning(
                None,
                "no [[sources]]: fine for `phiwatch engine`, but `run` and `agent` \
                 refuse to start without one"
                    .to_string(),
            ));
        } else {
            out.push(Finding::error(
                None,
                crate::commands::NO_SOURCES.to_string(),
            ));
        }
    }

    let tz = cfg.timezone().unwrap_or(chrono_tz::UTC);
    for (i, s) in cfg.sources.iter().enumerate() {
        if s.kind != SourceType::File {
            continue;
        }
        let at = format!("[[sources]] #{} ({:?})", i + 1, s.name);
        // Its parser (csv columns, jsonl paths, actions), unless the source has problems
        // already, which the parser would only repeat.
        if !out
            .iter()
            .any(|f| f.message.starts_with(&format!("{at}: ")))
        {
            if let Err(e) = crate::parse::build(s, tz) {
                let msg = format!("{e:#}");
                let key = if msg.contains("[sources.fields]") {
                    "fields"
                } else if msg.contains("[sources.actions]") {
                    "actions"
                } else {
                    ""
                };
                out.push(Finding::error(
                    lines.first(&[format!("sources.{i}.{key}"), format!("sources.{i}")]),
                    format!("{at}: {msg}"),
                ));
            }
        }
        for (j, g) in s.paths.iter().enumerate() {
            let line = lines.first(&[
                format!("sources.{i}.paths.{j}"),
                format!("sources.{i}.paths"),
                format!("sources.{i}"),
            ]);
            match glob::glob(g) {
                Err(e) => out.push(Finding::error(
                    line,
                    format!("{at}: {g:?} is not a valid glob: {e}"),
                )),
                Ok(paths) => {
                    if !paths.flatten().any(|p| p.is_file()) {
                        out.push(Finding::warning(
                            line,
                            format!("{at}: no file matches {g:?} yet"),
                        ));
                    }
                }
            }
        }
    }
    out
}

/// Whether the file `path` can be written: its folder exists or can be created and is
/// writable, and the file, if it is there, can be opened for appending.
pub fn file_usable(path: &Path) -> Result<(), String> {
    if path.is_dir() {
        return Err(format!("{} is a folder, not a file", path.display()));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        dir_usable(dir).map_err(|why| format!("the folder {} {why}", dir.display()))?;
    }
    if path.exists() {
        std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| format!("cannot open {} for appending: {e}", path.display()))?;
    }
    Ok(())
}

/// Whether `dir` is a writable folder or can be created as one (creating nothing). The
/// reason reads after the folder's name: "is not writable (...)", "cannot be created: ...".
pub fn dir_usable(dir: &Path) -> Result<(), String> {
    let mut probe: PathBuf = dir.to_path_buf();
    loop {
        match std::fs::metadata(&probe) {
            Ok(m) if m.is_dir() => break,
            Ok(_) => {
                return Err(if probe == dir {
                    "is a file, not a folder".to_string()
                } else {
                    format!(
                        "cannot be created: {} is a file, not a folder",
                        probe.display()
                    )
                })
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                match probe.parent() {
                    Some(p) if !p.as_os_str().is_empty() => probe = p.to_path_buf(),
                    _ => {
                        probe = PathBuf::from(".");
                        break;
                    }
                }
            }
            Err(e) => return Err(format!("cannot be used: {}: {e}", probe.display())),
        }
    }
    tempfile::Builder::new()
        .prefix(".phiwatch-check-")
        .tempfile_in(&probe)
        .map(drop)
        .map_err(|e| {
            if probe == dir {
                format!("is not writable ({e})")
            } else {
                format!(
                    "cannot be created: {} is not writable ({e})",
                    probe.display()
                )
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Level;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let p = dir.join("phiwatch.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    /// The errors, but for "no [[sources]]", which the configs here that test other things
    /// leave out (see `a_config_without_sources_is_an_error_unless_it_is_for_an_engine`).
    fn errors(findings: &[Finding], path: &Path) -> Vec<String> {
        findings
            .iter()
            .filter(|f| f.is_error() && f.message != crate::commands::NO_SOURCES)
            .map(|f| f.render(path))
            .collect()
    }

    #[test]
    fn a_config_without_sources_is_an_error_unless_it_is_for_an_engine() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "[engine]\ntimezone = \"UTC\"\n");
        let (_, findings) = check(&p);
        assert!(
            findings
                .iter()
                .any(|f| f.is_error() && f.message == crate::commands::NO_SOURCES),
            "{findings:?}"
        );
        let p = write(dir.path(), "[kafka]\nbrokers = \"127.0.0.1:9092\"\n");
        let (_, findings) = check(&p);
        assert!(findings.iter().all(|f| !f.is_error()), "{findings:?}");
        assert!(findings
            .iter()
            .any(|f| f.message.contains("phiwatch engine")));
    }

    #[test]
    fn a_good_config_has_no_findings_and_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.ndjson"), "").unwrap();
        let p = write(
            dir.path(),
            "[[sources]]\nname = \"a\"\ntype = \"file\"\npaths = [\"*.ndjson\"]\nformat = \"canonical\"\n\
             [[sinks]]\ntype = \"file\"\npath = \"out/alerts.ndjson\"\n[state]\ndir = \"state/x\"\n",
        );
        let (cfg, findings) = check(&p);
        assert!(cfg.is_some());
        assert!(findings.is_empty(), "{findings:?}");
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["a.ndjson", "phiwatch.toml"]);
    }

    #[test]
    fn state_dir_under_a_file_is_an_error_with_its_line() {
        // Root may write in read-only folders; nobody can create a folder inside a file.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("plain"), "x").unwrap();
        let p = write(
            dir.path(),
            "[engine]\ntimezone = \"UTC\"\n\n[state]\ndir = \"plain/state\"\n",
        );
        let (_, findings) = check(&p);
        let e = errors(&findings, &p);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with(&format!("{}:5: [state] dir ", p.display())),
            "{e:?}"
        );
        assert!(e[0].contains("is a file, not a folder"), "{e:?}");
        assert!(!dir.path().join("plain").is_dir());

        let p = write(dir.path(), "[state]\ndir = \"plain\"\n");
        let e = errors(&check(&p).1, &p);
        assert!(
            e[0].contains(":2: [state] dir") && e[0].contains("is a file"),
            "{e:?}"
        );
    }

    #[test]
    fn uncreatable_sink_folder_is_an_error_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("plain"), "x").unwrap();
        let p = write(
            dir.path(),
            "[[sinks]]\ntype = \"stdout\"\n\n[[sinks]]\nname = \"archive\"\ntype = \"file\"\npath = \"plain/sub/alerts.ndjson\"\n",
        );
        let e = errors(&check(&p).1, &p);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with(&format!(
                "{}:7: [[sinks]] #2 (\"archive\", type = \"file\"): the folder ",
                p.display()
            )),
            "{e:?}"
        );
        assert!(e[0].contains("cannot be created"), "{e:?}");
    }

    #[test]
    fn unmatched_glob_is_a_warning_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "[[sources]]\nname = \"ok\"\ntype = \"file\"\npaths = [\"*.toml\"]\nformat = \"canonical\"\n\n\
             [[sources]]\nname = \"ehr\"\ntype = \"file\"\nformat = \"fhir-audit\"\npaths = [\n  \"*.toml\",\n  \"fhir/*.ndjson\",\n]\n",
        );
        let (cfg, findings) = check(&p);
        assert!(cfg.is_some());
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].level, Level::Warning);
        let shown = findings[0].render(&p);
        assert!(
            shown.starts_with(&format!(
                "{}:13: [[sources]] #2 (\"ehr\"): no file matches ",
                p.display()
            )),
            "{shown}"
        );
        assert!(shown.contains("fhir/*.ndjson"), "{shown}");
    }

    #[test]
    fn parser_problems_carry_the_line_of_their_table() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.csv"), "").unwrap();
        let p = write(
            dir.path(),
            "[[sources]]\nname = \"epic\"\ntype = \"file\"\npaths = [\"*.csv\"]\nformat = \"csv\"\n[sources.fields]\nts = \"T\"\nuser = \"U\"\naction = \"A\"\nusr = \"X\"\n",
        );
        let e = errors(&check(&p).1, &p);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with(&format!("{}:6: [[sources]] #1 (\"epic\"): ", p.display()))
                && e[0].contains("unknown field \"usr\""),
            "{e:?}"
        );
    }

    #[test]
    fn sink_and_source_problems_carry_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "[engine]\ntimezone = \"Mars/Base\"\n[[sources]]\nname = \"a\"\ntype = \"file\"\npaths = [\"x\"]\n\
             [[sinks]]\ntype = \"file\"\noverflow = \"spill\"\npath = \"a\"\n",
        );
        let e = errors(&check(&p).1, &p);
        let d = p.display();
        assert!(
            e.iter().any(|l| l.starts_with(&format!("{d}:2: "))),
            "{e:?}"
        );
        assert!(
            e.iter().any(|l| l.starts_with(&format!(
                "{d}:3: [[sources]] #1 (\"a\"): `format` is missing"
            ))),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|l| l.starts_with(&format!("{d}:7: [[sinks]] #1")) && l.contains("spill")),
            "{e:?}"
        );
    }
}
