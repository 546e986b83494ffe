//! Strict reading of the config file.
//!
//! The parsed document is walked against the names the typed config structs take (read
//! from their serde derive by [`field_names`], so a key added to a struct is known at
//! once): an unknown key or table anywhere is a [`Finding`] with its line and the nearest
//! known name, instead of a setting that is silently ignored (`[refrence]` would load no
//! reference data, `timezon` would run in UTC). The walk also notes the line of every key
//! ([`Lines`]), so that later findings (`validate`, `check`) can say where they are.
//!
//! Tables whose keys are free (`[sources.fields]`, `[sources.actions]`, `[sources.uids]`,
//! `[kafka.properties]`, a webhook's `headers`) are not walked; the code that reads them
//! checks their keys. A new table with fixed keys gets one line in [`Node::child`].

use super::{
    Config, DeadLetterConfig, EngineConfig, KafkaConfig, MetricsConfig, ReferenceConfig,
    SinkConfig, SourceConfig, StateConfig,
};
use crate::sink::{sink_label, SinkType};
use crate::table::{field_names, nearest, plain_expected};
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::Path;
use toml_edit::{Item, TableLike, Value};

/// How bad a finding is: errors make `check` and every command fail; warnings are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error,
    Warning,
}

/// One thing wrong (or worth a look) in the config, with its line in the file if known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub level: Level,
    /// 1-based line in the config file.
    pub line: Option<usize>,
    pub message: String,
}

impl Finding {
    pub fn error(line: Option<usize>, message: impl Into<String>) -> Finding {
        Finding {
            level: Level::Error,
            line,
            message: message.into(),
        }
    }

    pub fn warning(line: Option<usize>, message: impl Into<String>) -> Finding {
        Finding {
            level: Level::Warning,
            line,
            message: message.into(),
        }
    }

    pub fn is_error(&self) -> bool {
        self.level == Level::Error
    }

    /// `FILE:LINE: message`, or `FILE: message` where no line is known.
    pub fn render(&self, file: &Path) -> String {
        match self.line {
            Some(l) => format!("{}:{l}: {}", file.display(), self.message),
            None => format!("{}: {}", file.display(), self.message),
        }
    }
}

/// `line N: message` (no file name: see [`Finding::render`]).
impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "line {l}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// The line of every key in the config file, by dotted path with array indices from 0:
/// `engine.timezone`, `sources.1` (the entry), `sources.1.paths`, `sources.1.paths.0`,
/// `sinks.0.path`. Empty for a config not read from a file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lines(BTreeMap<String, usize>);

impl Lines {
    pub fn get(&self, path: &str) -> Option<usize> {
        self.0.get(path).copied()
    }

    /// The line of the first of `paths` found (most precise first).
    pub fn first<S: AsRef<str>>(&self, paths: &[S]) -> Option<usize> {
        paths.iter().find_map(|p| self.get(p.as_ref()))
    }

    fn set(&mut self, path: String, line: usize) {
        self.0.entry(path).or_insert(line);
    }
}

/// The tables whose keys are fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    Root,
    Reference,
    Engine,
    Source,
    Sink,
    State,
    Metrics,
    Kafka,
    DeadLetter,
    /// Free keys (a map), or a value: not walked.
    Free,
}

impl Node {
    /// The node of `key`'s value in a table of this node.
    fn child(self, key: &str) -> Node {
        match (self, key) {
            (Node::Root, "reference") => Node::Reference,
            (Node::Root, "engine") => Node::Engine,
            (Node::Root, "sources") => Node::Source,
            (Node::Root, "sinks") => Node::Sink,
            (Node::Root, "state") => Node::State,
            (Node::Root, "metrics") => Node::Metrics,
            (Node::Root, "kafka") => Node::Kafka,
            (Node::Root, "dead_letter") => Node::DeadLetter,
            _ => Node::Free,
        }
    }

    /// The keys of this node's tables; for sinks, the keys every sink takes.
    fn fields(self) -> &'static [&'static str] {
        match self {
            Node::Root => field_names::<Config>(),
            Node::Reference => field_names::<ReferenceConfig>(),
            Node::Engine => field_names::<EngineConfig>(),
            Node::Source => field_names::<SourceConfig>(),
            Node::Sink => field_names::<SinkConfig>(),
            Node::State => field_names::<StateConfig>(),
            Node::Metrics => field_names::<MetricsConfig>(),
            Node::Kafka => field_names::<KafkaConfig>(),
            Node::DeadLetter => field_names::<DeadLetterConfig>(),
            Node::Free => &[],
        }
    }

    /// Entries of this node are `[[name]]` (an array of tables).
    fn is_array(self) -> bool {
        matches!(self, Node::Source | Node::Sink)
    }
}

/// The top-level name as a header: `[engine]` or `[[sinks]]`.
fn header(name: &str) -> String {
    if Node::Root.child(name).is_array() {
        format!("[[{name}]]")
    } else {
        format!("[{name}]")
    }
}

/// What the walk of a document found: problems, the line of every key, and the span of
/// every value with the name of its key, to place serde's type errors.
#[derive(Default)]
pub(super) struct Walk {
    pub findings: Vec<Finding>,
    pub lines: Lines,
    values: Vec<(Range<usize>, String)>,
}

impl Walk {
    /// Walks the root table of `doc`; `text` is what it was parsed from.
    pub fn document(text: &str, doc: &toml_edit::ImDocument<&str>) -> Walk {
        let mut w = Walker {
            text,
            walk: Walk::default(),
            sink_kind: "",
        };
        w.table(
            Node::Root,
            Node::Root.fields(),
            doc.as_table(),
            "",
            "at the top level",
        );
        w.walk
    }

    /// The key (and where it is) whose value holds byte `pos`, e.g. "`max_users` in
    /// [engine]": the innermost one.
    pub fn key_at(&self, pos: usize) -> Option<&str> {
        self.values
            .iter()
            .filter(|(r, _)| r.start <= pos && pos < r.end.max(r.start + 1))
            .min_by_key(|(r, _)| r.end - r.start)
            .map(|(_, k)| k.as_str())
    }

    pub fn line_of(text: &str, pos: usize) -> usize {
        let pos = pos.min(text.len());
        text.as_bytes()[..pos]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1
    }
}

/// One entry of an array: its span, and its table if it is one.
type Entry<'a> = (Option<Range<usize>>, Option<&'a dyn TableLike>);

struct Walker<'a> {
    text: &'a str,
    walk: Walk,
    /// The type of the `[[sinks]]` entry being walked.
    sink_kind: &'static str,
}

impl Walker<'_> {
    fn line(&self, span: Option<Range<usize>>) -> Option<usize> {
        span.map(|s| Walk::line_of(self.text, s.start))
    }

    /// Checks every key of `t` (a table of `node` at `path`, called `label` in messages)
    /// against `known`, and walks the tables below it.
    fn table(
        &mut self,
        node: Node,
        known: &[&'static str],
        t: &dyn TableLike,
        path: &str,
        label: &str,
    ) {
        for (key, item) in t.iter() {
            let key_span = t.get_key_value(key).and_then(|(k, _)| k.span());
            let line = self.line(key_span.clone().or_else(|| item.span()));
            let kpath = if path.is_empty() {
                key.to_string()
            } else {
                format!("{path}.{key}")
            };
            if let Some(l) = line {
                self.walk.lines.set(kpath.clone(), l);
            }
            let described = if node == Node::Root {
                if item.is_table_like() || item.is_array_of_tables() {
                    header(key)
                } else {
                    format!("`{key}`")
                }
            } else {
                format!("`{key}` in {label}")
            };
            if let Some(span) = item.span() {
                self.walk.values.push((span, described));
            }
            if node != Node::Free && !known.contains(&key) {
                let message = self.unknown(node, known, key, item, label);
                self.walk.findings.push(Finding::error(line, message));
                continue;
            }
            self.item(node.child(key), item, &kpath, line);
        }
    }

    /// Walks the value of a known key: a table, or the entries of an array.
    fn item(&mut self, node: Node, item: &Item, path: &str, line: Option<usize>) {
        if let Some(t) = item.as_table_like() {
            if !node.is_array() && node != Node::Free {
                let label = format!("[{path}]");
                self.table(node, node.fields(), t, path, &label);
            }
            return;
        }
        let entries: Vec<Entry> = match item {
            Item::ArrayOfTables(a) => a
                .iter()
                .map(|t| (t.span(), Some(t as &dyn TableLike)))
                .collect(),
            Item::Value(Value::Array(a)) => a
                .iter()
                .map(|v| (v.span(), v.as_inline_table().map(|t| t as &dyn TableLike)))
                .collect(),
            _ => return,
        };
        for (i, (span, t)) in entries.into_iter().enumerate() {
            let epath = format!("{path}.{i}");
            if let Some(l) = self.line(span.clone()).or(line) {
                self.walk.lines.set(epath.clone(), l);
            }
            let Some(t) = t else { continue };
            // Where serde's errors about the entry as a whole (a missing field) point.
            let whole = span.or_else(|| span_of(t)).unwrap_or(0..0);
            match node {
                Node::Source => {
                    let name = t.get("name").and_then(Item::as_str);
                    let label = match name {
                        Some(n) => format!("[[sources]] #{} ({n:?})", i + 1),
                        None => format!("[[sources]] #{}", i + 1),
                    };
                    self.walk.values.push((whole, label.clone()));
                    self.table(Node::Source, Node::Source.fields(), t, &epath, &label);
                }
                Node::Sink => self.sink(i, t, &epath, whole),
                _ => {}
            }
        }
    }

    /// A `[[sinks]]` entry: the keys every sink takes plus those of its type.
    fn sink(&mut self, i: usize, t: &dyn TableLike, path: &str, whole: Range<usize>) {
        let kind_name = t.get("type").and_then(Item::as_str).unwrap_or("stdout");
        let label = sink_label(i, t.get("name").and_then(Item::as_str), kind_name);
        self.walk.values.push((whole, label.clone()));
        let Some(kind) = SinkType::parse(kind_name) else {
            // Reported with its line when the entry is read.
            for (key, _) in t.iter() {
                let span = t.get_key_value(key).and_then(|(k, _)| k.span());
                if let Some(l) = self.line(span) {
                    self.walk.lines.set(format!("{path}.{key}"), l);
                }
            }
            return;
        };
        self.sink_kind = kind.name();
        let known: Vec<&'static str> = Node::Sink
            .fields()
            .iter()
            .chain(kind.keys())
            .copied()
            .collect();
        self.table(Node::Sink, &known, t, path, &label);
    }

    /// The message for an unknown `key` in a table of `node` whose keys are `known`.
    fn unknown(
        &self,
        node: Node,
        known: &[&'static str],
        key: &str,
        item: &Item,
        label: &str,
    ) -> String {
        let is_table = item.is_table_like() || item.is_array_of_tables();
        let near = nearest(key, known.iter().copied());
        if node == Node::Root {
            let what = if is_table {
                let shown = if item.is_array_of_tables() {
                    format!("[[{key}]]")
                } else {
                    format!("[{key}]")
                };
                format!("unknown table `{shown}`")
            } else {
                format!("unknown key `{key}` at the top level")
            };
            if let Some(n) = near {
                return format!("{what}; did you mean `{}`?", header(n));
            }
            if !is_table {
                let homes: Vec<String> = known
                    .iter()
                    .filter(|t| {
                        let child = Node::Root.child(t);
                        child.fields().contains(&key)
                            || (child == Node::Sink
                                && SinkType::ALL.iter().any(|k| k.keys().contains(&key)))
                    })
                    .map(|t| header(t))
                    .collect();
                if !homes.is_empty() {
                    return format!(
                        "{what}; it belongs in a table: put it under {}",
                        homes.join(" or ")
                    );
                }
            }
            let tables: Vec<String> = known.iter().map(|t| header(t)).collect();
            return format!("{what}; the tables are {}", tables.join(", "));
        }
        let what = format!("unknown key `{key}` in {label}");
        let list = known
            .iter()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", ");
        if node == Node::Sink {
            let others: Vec<&str> = SinkType::ALL
                .iter()
                .filter(|k| k.keys().contains(&key))
                .map(|k| k.name())
                .collect();
            if !others.is_empty() {
                let this = self.sink_kind;
                let base = format!(
                    "{label}: `{key}` is not used by a {this} sink (it is a key of {} sinks)",
                    others.join(" and ")
                );
                return match near {
                    Some(n) => format!("{base}; did you mean `{n}`?"),
                    None => format!("{base}; remove it. The keys a {this} sink takes: {list}"),
                };
            }
        }
        match near {
            Some(n) => format!("{what}; did you mean `{n}`?"),
            None => format!("{what}; the keys it takes: {list}"),
        }
    }
}

fn span_of(t: &dyn TableLike) -> Option<Range<usize>> {
    let mut lo = usize::MAX;
    let mut hi = 0;
    for (key, item) in t.iter() {
        for s in [
            t.get_key_value(key).and_then(|(k, _)| k.span()),
            item.span(),
        ]
        .into_iter()
        .flatten()
        {
            lo = lo.min(s.start);
            hi = hi.max(s.end);
        }
    }
    (lo < hi).then_some(lo..hi)
}

/// Turns serde's "invalid type: string \"big\", expected u64" into plain words:
/// "must be a whole number of at least 0, not \"big\"", and names the nearest value for
/// "unknown variant".
pub fn plain_type_error(message: &str) -> String {
    if let Some((got, want)) = message
        .strip_prefix("unknown variant `")
        .and_then(|r| r.split_once("`, expected "))
    {
        let known: Vec<&str> = want.split('`').skip(1).step_by(2).collect();
        let list = known
            .iter()
            .map(|k| format!("{k:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        return match nearest(got, known.iter().copied()) {
            Some(n) => format!("{got:?} is not known; did you mean {n:?}? (one of {list})"),
            None => format!("{got:?} is not known; use one of {list}"),
        };
    }
    let Some(rest) = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "))
    else {
        return message.to_string();
    };
    let Some((got, want)) = rest.rsplit_once(", expected ") else {
        return message.to_string();
    };
    format!(
        "must be {}, not {}",
        plain_expected(want),
        plain_unexpected(got)
    )
}

/// serde's description of what was found (`string "big"`, `integer `-1``), shorter.
fn plain_unexpected(got: &str) -> String {
    if let Some(s) = got.strip_prefix("string ") {
        return s.to_string();
    }
    for p in ["integer ", "floating point ", "boolean "] {
        if let Some(v) = got.strip_prefix(p) {
            return v.trim_matches('`').to_string();
        }
    }
    match got {
        "map" => "a table".into(),
        "sequence" => "a list".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_come_from_serde() {
        assert!(field_names::<EngineConfig>().contains(&"timezone"));
        assert!(field_names::<StateConfig>().contains(&"snapshot_secs"));
        let top = field_names::<Config>();
        for t in [
            "reference",
            "engine",
            "sources",
            "sinks",
            "state",
            "metrics",
            "kafka",
            "dead_letter",
        ] {
            assert!(top.contains(&t), "{t} in {top:?}");
        }
        assert!(!top.contains(&"base_dir") && !top.contains(&"lines"));
        assert!(field_names::<SourceConfig>().contains(&"type"));
        assert!(field_names::<SinkConfig>().contains(&"type"));
    }

    #[test]
    fn nearest_names() {
        let k = ["reference", "engine", "sources", "sinks", "state"];
        assert_eq!(nearest("refrence", k), Some("reference"));
        assert_eq!(nearest("sink", k), Some("sinks"));
        assert_eq!(nearest("Engine", k), Some("engine"));
        assert_eq!(nearest("zzz", k), None);
        assert_eq!(
            nearest("timezon", ["timezone", "detectors"]),
            Some("timezone")
        );
        assert_eq!(nearest("dir", ["url", "headers"]), None);
    }

    #[test]
    fn plain_words_for_type_errors() {
        assert_eq!(
            plain_type_error("invalid type: string \"big\", expected u64"),
            "must be a whole number of at least 0, not \"big\""
        );
        assert_eq!(
            plain_type_error("invalid type: integer `5`, expected a string"),
            "must be a string in quotes, not 5"
        );
        assert_eq!(
            plain_type_error("missing field `name`"),
            "missing field `name`"
        );
    }
}
