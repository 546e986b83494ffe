//! Sigma-shaped rules over enriched fields: a `detection` block of named selections and a
//! `condition`. A selection is a map (every entry must hold) or a list of maps (any map
//! may hold); a list of values means any of them (`|all`: every one). Modifiers follow
//! Sigma: `contains`, `startswith`, `endswith`, `re`, `gt`, `gte`, `lt`, `lte`, `exists`,
//! `cased`. String comparison ignores case unless `|cased`.
//!
//! Compiling resolves every field name against [`Field`] once, so evaluation has no
//! string lookups, and an unknown field is an error at load time. The condition is then
//! resolved to a tree over the selections and written out as a flat program over the
//! clauses ([`super::program`]), each clause carrying answers worked out at compile time
//! ([`Fast`]): the engine runs every detector on every event.

use super::condition::{self, Cond};
use super::program::{Formula, Program, Target, NO};
use crate::enrich::{Enriched, Field, Value};
use crate::event::Action;
use anyhow::{anyhow, bail, Result};
use regex::Regex;
use serde_norway::Value as Yaml;

#[derive(Debug, Clone)]
enum Lit {
    Null,
    Bool(bool),
    Int(i64),
    Str(String),
}

#[derive(Debug, Clone)]
enum Op {
    Eq,
    Contains,
    StartsWith,
    EndsWith,
    Re(Vec<Regex>),
    Gt,
    Gte,
    Lt,
    Lte,
    Exists,
}

#[derive(Debug, Clone)]
struct Clause {
    field: Field,
    op: Op,
    values: Vec<Lit>,
    all: bool,
    cased: bool,
    /// The clause's answers worked out at compile time where the value's domain is small
    /// or the comparison is one number (see [`Fast`]), so that evaluating it is a table
    /// lookup or one comparison instead of the generic [`test`].
    fast: Fast,
}

/// Precomputed answers of one clause, each derived from [`test`] itself at compile time
/// (or, for [`Fast::Int`], the same comparison [`one_value`] makes), so they cannot
/// disagree with it. Nearly every clause of the shipped detectors reads the action or a
/// true/false fact, and the generic `test` (op, value and literal matched for every
/// listed value) was most of the matchers' time.
#[derive(Debug, Clone, Copy)]
enum Fast {
    /// For `action`, whose value is one of a few names: the answer for each action as a
    /// bit (`1 << action`).
    Action(u32),
    /// Any other field: the answers for an absent value (bit 0), `false` (bit 1) and
    /// `true` (bit 2); whole numbers compared with one literal when `int` is set; any
    /// other value goes through [`test`].
    Value { small: u8, int: Option<(Cmp, i64)> },
}

/// A whole-number comparison with a single literal.
#[derive(Debug, Clone, Copy)]
enum Cmp {
    Eq,
    Gt,
    Gte,
    Lt,
    Lte,
}

impl Cmp {
    fn holds(self, a: i64, b: i64) -> bool {
        match self {
            Cmp::Eq => a == b,
            Cmp::Gt => a > b,
            Cmp::Gte => a >= b,
            Cmp::Lt => a < b,
            Cmp::Lte => a <= b,
        }
    }
}

impl Fast {
    fn of(c: &Clause) -> Fast {
        if c.field == Field::Action {
            let answers = Action::ALL
                .iter()
                .filter(|a| test(c, Value::Str(a.as_str())))
                .fold(0u32, |m, &a| m | action_bit(a));
            return Fast::Action(answers);
        }
        let small = [Value::Null, Value::Bool(false), Value::Bool(true)]
            .iter()
            .enumerate()
            .filter(|(_, v)| test(c, **v))
            .fold(0u8, |m, (i, _)| m | 1 << i);
        let cmp = match c.op {
            Op::Eq => Some(Cmp::Eq),
            Op::Gt => Some(Cmp::Gt),
            Op::Gte => Some(Cmp::Gte),
            Op::Lt => Some(Cmp::Lt),
            Op::Lte => Some(Cmp::Lte),
            _ => None,
        };
        // One literal: `any` and `all` of one value are the same answer.
        let int = match (cmp, c.values.as_slice()) {
            (Some(cmp), [Lit::Int(b)]) => Some((cmp, *b)),
            _ => None,
        };
        Fast::Value { small, int }
    }
}

#[derive(Debug, Clone)]
struct Selection {
    name: String,
    /// Any of these groups; within a group every clause.
    groups: Vec<Vec<Clause>>,
}

/// A condition tree with selections resolved to indexes; compiled on into a [`Program`].
#[derive(Debug, Clone)]
enum Node {
    Sel(usize),
    Not(Box<Node>),
    And(Vec<Node>),
    Or(Vec<Node>),
    Any(Vec<usize>),
    All(Vec<usize>),
}

/// A compiled `detection` block.
#[derive(Debug, Clone)]
pub struct Matcher {
    selections: Vec<Selection>,
    /// The condition, once for each action, and each selection on its own (for
    /// [`Matcher::selection_matches`]), as flat programs over the clauses.
    program: Program<Clause>,
    /// Where the condition's program for each action starts, by `Action as usize`: the
    /// condition with its `action` clauses answered for that action at compile time
    /// ([`for_action`]). The engine runs every detector on every event, and most
    /// detectors select a few actions: for any other action the program is the answer
    /// `NO` itself and no clause is asked, and for the actions selected the action clauses
    /// are gone from it.
    by_action: Vec<Target>,
    /// Where each selection's program starts, by selection index.
    starts: Vec<Target>,
}

impl Matcher {
    /// Compiles a Sigma-style `detection` mapping.
    pub fn compile(detection: &Yaml) -> Result<Matcher> {
        let (selections, condition) = parse(detection)?;
        let mut program = Program::default();
        let mut by_action = vec![NO; Action::ALL.len()];
        for a in Action::ALL {
            by_action[a as usize] = program.add(for_action(condition.clone(), a));
        }
        let starts = selections
            .iter()
            .map(|s| program.add(selection_formula(s)))
            .collect();
        Ok(Matcher {
            selections,
            program,
            by_action,
            starts,
        })
    }

    /// Inlined into the engine's loop over detectors: the call itself (saving and
    /// restoring registers) was a quarter of a typical evaluation.
    #[inline]
    pub fn matches(&self, e: &Enriched) -> bool {
        let start = self.by_action[e.event.action as usize];
        self.program.run(start, |c| clause(c, e))
    }

    /// The index of a named selection, for detectors that use selections as steps.
    pub fn selection_index(&self, name: &str) -> Option<usize> {
        self.selections.iter().position(|s| s.name == name)
    }

    /// Whether one selection (by index) matches, regardless of the condition.
    /// An index out of range matches nothing.
    pub fn selection_matches(&self, i: usize, e: &Enriched) -> bool {
        self.starts
            .get(i)
            .is_some_and(|&start| self.program.run(start, |c| clause(c, e)))
    }

    /// Every field the rule reads, for explanations.
    pub fn fields(&self) -> Vec<Field> {
        let mut v: Vec<Field> = self
            .selections
            .iter()
            .flat_map(|s| s.groups.iter().flatten().map(|c| c.field))
            .collect();
        v.dedup();
        v
    }
}

/// The selections of a `detection` mapping and its condition as a formula over their
/// clauses, the selections written out in place.
fn parse(detection: &Yaml) -> Result<(Vec<Selection>, Formula<Clause>)> {
    let map = detection
        .as_mapping()
        .ok_or_else(|| anyhow!("`detection` must be a mapping of selections and a `condition`"))?;
    let mut selections = Vec::new();
    let mut cond_text = None;
    for (k, v) in map {
        let name = k
            .as_str()
            .ok_or_else(|| anyhow!("selection names must be strings"))?;
        if name == "condition" {
            cond_text = Some(match v {
                Yaml::String(s) => s.clone(),
                Yaml::Sequence(list) => {
                    // Sigma allows a list of conditions: any of them.
                    let parts: Vec<String> = list
                        .iter()
                        .map(|c| c.as_str().map(|s| format!("({s})")))
                        .collect::<Option<_>>()
                        .ok_or_else(|| anyhow!("`condition` list must hold strings"))?;
                    parts.join(" or ")
                }
                _ => bail!("`condition` must be a string"),
            });
            continue;
        }
        selections.push(compile_selection(name, v)?);
    }
    let text = cond_text.ok_or_else(|| {
        anyhow!("`detection` has no `condition`; add e.g. `condition: selection`")
    })?;
    let cond = condition::parse(&text).map_err(|e| anyhow!("condition {text:?}: {e}"))?;
    let tree = resolve(&cond, &selections)?;
    let condition = formula(&tree, &selections);
    Ok((selections, condition))
}

/// A selection as a formula: any of its groups, each every one of its clauses.
fn selection_formula(s: &Selection) -> Formula<Clause> {
    Formula::Or(
        s.groups
            .iter()
            .map(|g| Formula::And(g.iter().cloned().map(Formula::Leaf).collect()))
            .collect(),
    )
}

/// The formula that always holds (an empty `and`) or never does (an empty `or`).
fn constant(holds: bool) -> Formula<Clause> {
    if holds {
        Formula::And(Vec::new())
    } else {
        Formula::Or(Vec::new())
    }
}

/// The answer of a formula that [`for_action`] reduced to a constant.
fn constant_of(f: &Formula<Clause>) -> Option<bool> {
    match f {
        Formula::And(v) if v.is_empty() => Some(true),
        Formula::Or(v) if v.is_empty() => Some(false),
        _ => None,
    }
}

/// `f` for events of action `a`: each `action` clause replaced by its answer for `a`,
/// and the operators it settles folded away (`x and false` is false, `x or true` is
/// true, `not` of an answer its opposite, answers that settle nothing dropped). Clauses
/// read the event and change nothing, so skipping the ones whose answer can no longer
/// matter gives the same answer for every event of that action; the rest are asked in
/// the same order as before.
fn for_action(f: Formula<Clause>, a: Action) -> Formula<Clause> {
    match f {
        Formula::Leaf(c) => match c.fast {
            Fast::Action(answers) => constant(answers & action_bit(a) != 0),
            Fast::Value { .. } => Formula::Leaf(c),
        },
        Formula::Not(x) => {
            let x = for_action(*x, a);
            match constant_of(&x) {
                Some(b) => constant(!b),
                None => Formula::Not(Box::new(x)),
            }
        }
        Formula::And(v) => fold_operands(v, a, false).map_or_else(|| constant(false), Formula::And),
        Formula::Or(v) => fold_operands(v, a, true).map_or_else(|| constant(true), Formula::Or),
    }
}

/// The operands of an `and` (`settles` false) or an `or` (`settles` true) for action
/// `a`, without the answers that settle nothing; `None` when one settles the operator.
fn fold_operands(
    v: Vec<Formula<Clause>>,
    a: Action,
    settles: bool,
) -> Option<Vec<Formula<Clause>>> {
    let mut kept = Vec::with_capacity(v.len());
    for x in v {
        let x = for_action(x, a);
        match constant_of(&x) {
            Some(b) if b == settles => return None,
            Some(_) => {}
            None => kept.push(x),
        }
    }
    Some(kept)
}

/// The condition tree as a formula, its selections written out in place.
fn formula(n: &Node, sels: &[Selection]) -> Formula<Clause> {
    let sel = |i: &usize| selection_formula(&sels[*i]);
    match n {
        Node::Sel(i) => sel(i),
        Node::Not(x) => Formula::Not(Box::new(formula(x, sels))),
        Node::And(v) => Formula::And(v.iter().map(|x| formula(x, sels)).collect()),
        Node::Or(v) => Formula::Or(v.iter().map(|x| formula(x, sels)).collect()),
        Node::Any(v) => Formula::Or(v.iter().map(sel).collect()),
        Node::All(v) => Formula::And(v.iter().map(sel).collect()),
    }
}

fn resolve(c: &Cond, sels: &[Selection]) -> Result<Node> {
    Ok(match c {
        Cond::Sel(n) => Node::Sel(sels.iter().position(|s| &s.name == n).ok_or_else(|| {
            anyhow!("condition names selection {n:?}, which `detection` does not define")
        })?),
        Cond::Not(x) => Node::Not(Box::new(resolve(x, sels)?)),
        Cond::And(v) => Node::And(v.iter().map(|x| resolve(x, sels)).collect::<Result<_>>()?),
        Cond::Or(v) => Node::Or(v.iter().map(|x| resolve(x, sels)).collect::<Result<_>>()?),
        Cond::Of { all, pattern } => {
            let idx: Vec<usize> = sels
                .iter()
                .enumerate()
                .filter(|(_, s)| condition::pattern_matches(pattern, &s.name))
                .map(|(i, _)| i)
                .collect();
            if idx.is_empty() {
                bail!("`of {pattern}` matches no selection");
            }
            if *all {
                Node::All(idx)
            } else {
                Node::Any(idx)
            }
        }
    })
}

fn compile_selection(name: &str, v: &Yaml) -> Result<Selection> {
    let groups = match v {
        Yaml::Mapping(_) => vec![compile_group(name, v)?],
        Yaml::Sequence(list) if list.iter().all(|x| x.is_mapping()) => list
            .iter()
            .map(|m| compile_group(name, m))
            .collect::<Result<_>>()?,
        _ => bail!(
            "selection {name:?} must be a map of field: value (or a list of such maps); \
             keyword searches are not supported on enriched events"
        ),
    };
    Ok(Selection {
        name: name.to_string(),
        groups,
    })
}

fn compile_group(sel: &str, m: &Yaml) -> Result<Vec<Clause>> {
    let mut out = Vec::new();
    for (k, v) in m.as_mapping().expect("checked by caller") {
        let k = k
            .as_str()
            .ok_or_else(|| anyhow!("selection {sel:?}: field names must be strings"))?;
        let mut parts = k.split('|');
        let fname = parts.next().unwrap_or_default();
        let field = Field::parse(fname).ok_or_else(|| {
            anyhow!(
                "selection {sel:?}: unknown field {fname:?}; known fields: {}",
                Field::ALL
                    .iter()
                    .map(|f| f.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
        let mut op = Op::Eq;
        let mut all = false;
        let mut cased = false;
        for m in parts {
            match m {
                "contains" => op = Op::Contains,
                "startswith" => op = Op::StartsWith,
                "endswith" => op = Op::EndsWith,
                "re" => op = Op::Re(Vec::new()),
                "gt" => op = Op::Gt,
                "gte" => op = Op::Gte,
                "lt" => op = Op::Lt,
                "lte" => op = Op::Lte,
                "exists" => op = Op::Exists,
                "all" => all = true,
                "cased" => cased = true,
                other => bail!(
                    "selection {sel:?}: unknown modifier |{other}; use contains, startswith, endswith, re, gt, gte, lt, lte, exists, all or cased"
                ),
            }
        }
        let raw: Vec<&Yaml> = match v {
            Yaml::Sequence(list) => list.iter().collect(),
            other => vec![other],
        };
        let mut values = Vec::new();
        for r in raw {
            values.push(match r {
                Yaml::Null => Lit::Null,
                Yaml::Bool(b) => Lit::Bool(*b),
                Yaml::Number(n) => Lit::Int(n.as_i64().ok_or_else(|| {
                    anyhow!("selection {sel:?}: field {fname}: only whole numbers are supported")
                })?),
                Yaml::String(s) => Lit::Str(if cased { s.clone() } else { s.to_lowercase() }),
                _ => bail!("selection {sel:?}: field {fname}: values must be scalars"),
            });
        }
        if let Op::Re(rx) = &mut op {
            for v in &values {
                let Lit::Str(s) = v else {
                    bail!("selection {sel:?}: field {fname}|re needs string patterns");
                };
                let pat = if cased { s.clone() } else { format!("(?i){s}") };
                rx.push(Regex::new(&pat).map_err(|e| {
                    anyhow!("selection {sel:?}: field {fname}|re: bad pattern: {e}")
                })?);
            }
        }
        if matches!(op, Op::Gt | Op::Gte | Op::Lt | Op::Lte)
            && values.iter().any(|v| !matches!(v, Lit::Int(_)))
        {
            bail!("selection {sel:?}: field {fname}: numeric comparisons need whole numbers");
        }
        let mut c = Clause {
            field,
            op,
            values,
            all,
            cased,
            fast: Fast::Value {
                small: 0,
                int: None,
            },
        };
        c.fast = Fast::of(&c);
        out.push(c);
    }
    Ok(out)
}

/// The bit of `a` in [`Fast::Action`].
fn action_bit(a: Action) -> u32 {
    1 << a as u32
}

#[inline]
fn clause(c: &Clause, e: &Enriched) -> bool {
    match c.fast {
        Fast::Action(answers) => answers & action_bit(e.event.action) != 0,
        Fast::Value { small, int } => answer(c, small, int, e.get(c.field)),
    }
}

/// [`test`] answered from the clause's precomputed [`Fast::Value`] where it can be.
#[inline]
fn answer(c: &Clause, small: u8, int: Option<(Cmp, i64)>, v: Value) -> bool {
    match (v, int) {
        (Value::Null, _) => small & 1 != 0,
        (Value::Bool(b), _) => small >> (1 + b as u8) & 1 != 0,
        (Value::Int(a), Some((cmp, b))) => cmp.holds(a, b),
        (v, _) => test(c, v),
    }
}

/// Whether the clause holds for the value `v` of its field.
fn test(c: &Clause, v: Value) -> bool {
    if let Op::Exists = c.op {
        let want = !matches!(c.values.first(), Some(Lit::Bool(false)));
        return (v != Value::Null) == want;
    }
    if let Op::Re(rx) = &c.op {
        let Value::Str(s) = v else { return false };
        return if c.all {
            rx.iter().all(|r| r.is_match(s))
        } else {
            rx.iter().any(|r| r.is_match(s))
        };
    }
    let one = |lit: &Lit| one_value(&c.op, c.cased, v, lit);
    if c.all {
        c.values.iter().all(one)
    } else {
        c.values.iter().any(one)
    }
}

fn one_value(op: &Op, cased: bool, v: Value, lit: &Lit) -> bool {
    match (op, v, lit) {
        (Op::Eq, Value::Null, Lit::Null) => true,
        (Op::Eq, Value::Bool(a), Lit::Bool(b)) => a == *b,
        (Op::Eq, Value::Int(a), Lit::Int(b)) => a == *b,
        (Op::Eq, Value::Str(a), Lit::Str(b)) => str_eq(a, b, cased),
        (Op::Eq, Value::Int(a), Lit::Str(b)) => b.parse::<i64>().is_ok_and(|b| a == b),
        (Op::Contains, Value::Str(a), Lit::Str(b)) => fold(a, cased).contains(b.as_str()),
        (Op::StartsWith, Value::Str(a), Lit::Str(b)) => fold(a, cased).starts_with(b.as_str()),
        (Op::EndsWith, Value::Str(a), Lit::Str(b)) => fold(a, cased).ends_with(b.as_str()),
        (Op::Gt, Value::Int(a), Lit::Int(b)) => a > *b,
        (Op::Gte, Value::Int(a), Lit::Int(b)) => a >= *b,
        (Op::Lt, Value::Int(a), Lit::Int(b)) => a < *b,
        (Op::Lte, Value::Int(a), Lit::Int(b)) => a <= *b,
        _ => false,
    }
}

/// `b` is lower case already unless `cased`. An ASCII `a` is compared byte by byte
/// rather than lower-cased into a new string (the same answer, no allocation).
fn str_eq(a: &str, b: &str, cased: bool) -> bool {
    if cased {
        a == b
    } else if a.len() != b.len() {
        false
    } else if a.is_ascii() {
        a.bytes()
            .zip(b.bytes())
            .all(|(x, y)| x.to_ascii_lowercase() == y)
    } else {
        a.to_lowercase() == b
    }
}

fn fold(a: &str, cased: bool) -> std::borrow::Cow<'_, str> {
    if cased || !a.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Borrowed(a)
    } else {
        std::borrow::Cow::Owned(a.to_lowercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;
    use crate::reference::Reference;

    /// `purpose` (FHIR purposeOfEvent / authorization) is a field rules can select on,
    /// e.g. to treat a read under a break-the-glass purpose like a break-glass.
    #[test]
    fn purpose_is_selectable() {
        let yaml: Yaml = serde_norway::from_str(
            "btg:\n  purpose: [BTG, ETREAT]\ncoded:\n  purpose|exists: true\ncondition: btg and coded\n",
        )
        .unwrap();
        let m = Matcher::compile(&yaml).unwrap();
        let reference = Reference::default();
        let mut ev = Event::new("2026-03-03T16:00:00Z".parse().unwrap(), "u1", Action::View);
        let e = Enriched::new(&ev, &reference, chrono_tz::UTC);
        assert!(!m.matches(&e), "no purpose");
        ev.purpose = Some("TREAT".into());
        let e = Enriched::new(&ev, &reference, chrono_tz::UTC);
        assert!(!m.matches(&e));
        ev.purpose = Some("btg".into());
        let e = Enriched::new(&ev, &reference, chrono_tz::UTC);
        assert!(m.matches(&e), "values compare case-insensitively");
    }

    /// `action` clauses are answered from a table built at compile time; it must agree
    /// with comparing the action's name, for every modifier.
    #[test]
    fn action_clauses_answer_as_the_comparison_would() {
        let yaml: Yaml = serde_norway::from_str(
            "a:\n  action: [VIEW, export]\nb:\n  action|startswith: file_\nc:\n  action|re: '^(print|search)$'\ncondition: a or b or c\n",
        )
        .unwrap();
        let m = Matcher::compile(&yaml).unwrap();
        let reference = Reference::default();
        for a in Action::ALL {
            let ev = Event::new("2026-03-03T16:00:00Z".parse().unwrap(), "u1", a);
            let e = Enriched::new(&ev, &reference, chrono_tz::UTC);
            let name = a.as_str();
            let want =
                ["view", "export", "print", "search"].contains(&name) || name.starts_with("file_");
            assert_eq!(m.matches(&e), want, "{name}");
        }
        assert!(str_eq("View", "view", false) && !str_eq("View", "view", true));
    }

    /// The condition written out for each action answers as the whole condition does
    /// (action clauses asked), for every action, every shipped detector and an odd one,
    /// whatever the other clauses answer.
    #[test]
    fn each_actions_condition_answers_as_the_whole_condition() {
        use std::hash::{DefaultHasher, Hash, Hasher};
        fn walk(f: &Formula<Clause>, a: Action, leaf: &impl Fn(&Clause) -> bool) -> bool {
            match f {
                Formula::Leaf(c) => match c.fast {
                    Fast::Action(answers) => answers & action_bit(a) != 0,
                    Fast::Value { .. } => leaf(c),
                },
                Formula::Not(x) => !walk(x, a, leaf),
                Formula::And(v) => v.iter().all(|x| walk(x, a, leaf)),
                Formula::Or(v) => v.iter().any(|x| walk(x, a, leaf)),
            }
        }
        let odd: Yaml = serde_norway::from_str(
            "a:\n  action: view\nb:\n  rel.self: true\nc:\n  action|startswith: file_\n  media: removable\nd:\n  - action: search\n  - care.any: true\ncondition: not a and (b or c) or not (a or b) and d\n",
        )
        .unwrap();
        let mut detections = vec![odd];
        for (_, text) in crate::detect::SHIPPED {
            let spec: crate::detect::Spec = serde_norway::from_str(text).unwrap();
            detections.push(spec.detection);
        }
        for d in &detections {
            let (_, condition) = parse(d).unwrap();
            let m = Matcher::compile(d).unwrap();
            for seed in 0..64u64 {
                let leaf = |c: &Clause| {
                    let mut h = DefaultHasher::new();
                    (format!("{c:?}"), seed).hash(&mut h);
                    h.finish() & 1 == 1
                };
                for a in Action::ALL {
                    let got = m.program.run(m.by_action[a as usize], leaf);
                    assert_eq!(got, walk(&condition, a, &leaf), "{d:?} {a:?} {seed}");
                }
            }
        }
    }

    /// The precomputed answers agree with the generic comparison for every clause of the
    /// shipped detectors and of a few odd ones (empty lists, `|all`, strings, numbers as
    /// text), on values of every type.
    #[test]
    fn fast_answers_agree_with_test() {
        let odd: Yaml = serde_norway::from_str(
            "a:\n  patient.vip: []\nb:\n  patient.vip|all: []\nc:\n  records: '20'\nd:\n  records|all: [20, 21]\ne:\n  records|gte: [3, 50]\nf:\n  phi.records|exists: false\ng:\n  rel.self: [true, false]\nh:\n  care.any: null\ni:\n  bytes|lt: 0\nj:\n  user.role|startswith: him\nk:\n  records: true\ncondition: 1 of them\n",
        )
        .unwrap();
        let mut matchers = vec![Matcher::compile(&odd).unwrap()];
        for (_, text) in crate::detect::SHIPPED {
            let spec: crate::detect::Spec = serde_norway::from_str(text).unwrap();
            matchers.push(Matcher::compile(&spec.detection).unwrap());
        }
        let mut values = vec![
            Value::Null,
            Value::Bool(false),
            Value::Bool(true),
            Value::Str("him_analyst"),
            Value::Str("20"),
            Value::Str(""),
        ];
        values.extend((-3..120).map(Value::Int));
        let mut n = 0;
        for m in &matchers {
            for c in m.selections.iter().flat_map(|s| s.groups.iter().flatten()) {
                let Fast::Value { small, int } = c.fast else {
                    continue;
                };
                for &v in &values {
                    assert_eq!(answer(c, small, int, v), test(c, v), "{c:?} on {v:?}");
                    n += 1;
                }
            }
        }
        assert!(n > 1000, "{n}");
        assert!(!str_eq("Viewx", "view", false) && str_eq("ÉTÉ", "été", false));
    }
}
