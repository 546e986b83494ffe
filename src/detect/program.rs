//! A `detection` condition compiled into a flat branching program: every leaf (a
//! clause) is one step naming the step to go to when it holds and when it does not, so
//! evaluating an event is a loop over a slice, with no recursion through the condition
//! tree, its selections and their groups.
//!
//! This is the short-circuit evaluation of the formula written out: an `and` goes on to
//! its next operand when one holds and gives up when one fails, an `or` the reverse, and
//! a `not` swaps the two ways out. Leaves are visited in the same order as a left-to-right
//! walk of the tree would visit them, and each at most once per evaluation, so the answer
//! is the tree's (leaves are pure). Knowing nothing of clauses, it is tested here on
//! plain truth values.

/// Where a step leads: another step (its index), or an answer.
pub type Target = u32;

/// The formula holds.
pub const YES: Target = u32::MAX;
/// The formula does not hold.
pub const NO: Target = u32::MAX - 1;

/// A boolean formula over leaves `L`, as the condition and its selections spell it.
#[derive(Debug, Clone)]
pub enum Formula<L> {
    Leaf(L),
    Not(Box<Formula<L>>),
    And(Vec<Formula<L>>),
    Or(Vec<Formula<L>>),
}

#[derive(Debug, Clone)]
struct Step<L> {
    leaf: L,
    yes: Target,
    no: Target,
}

/// Compiled formulas sharing one step table; each is entered at the [`Target`] that
/// [`Program::add`] returned for it.
#[derive(Debug, Clone)]
pub struct Program<L> {
    steps: Vec<Step<L>>,
}

impl<L> Default for Program<L> {
    fn default() -> Self {
        Program { steps: Vec::new() }
    }
}

impl<L> Program<L> {
    /// Compiles `f` and returns where to enter it.
    pub fn add(&mut self, f: Formula<L>) -> Target {
        self.emit(f, YES, NO)
    }

    /// Emits `f` so that it continues at `yes` when it holds and `no` when not; returns
    /// its entry. Operands are emitted last first, so every step only ever leads to a
    /// step emitted before it (a lower index) or to an answer: [`Program::run`] ends.
    fn emit(&mut self, f: Formula<L>, yes: Target, no: Target) -> Target {
        match f {
            Formula::Leaf(leaf) => {
                self.steps.push(Step { leaf, yes, no });
                // Fewer than u32::MAX - 1 steps: a detector has a few dozen clauses.
                (self.steps.len() - 1) as Target
            }
            Formula::Not(x) => self.emit(*x, no, yes),
            Formula::And(v) => v
                .into_iter()
                .rev()
                .fold(yes, |next, x| self.emit(x, next, no)),
            Formula::Or(v) => v
                .into_iter()
                .rev()
                .fold(no, |next, x| self.emit(x, yes, next)),
        }
    }

    /// Evaluates the formula entered at `start`, asking `holds` about each leaf reached.
    #[inline]
    pub fn run(&self, start: Target, mut holds: impl FnMut(&L) -> bool) -> bool {
        let mut at = start;
        loop {
            let Some(step) = self.steps.get(at as usize) else {
                return at == YES;
            };
            at = if holds(&step.leaf) { step.yes } else { step.no };
        }
    }

    /// The number of steps, for tests.
    #[cfg(test)]
    fn steps(&self) -> usize {
        self.steps.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(f: &Formula<usize>, vars: &[bool], seen: &mut Vec<usize>) -> bool {
        match f {
            Formula::Leaf(i) => {
                seen.push(*i);
                vars[*i]
            }
            Formula::Not(x) => !tree(x, vars, seen),
            Formula::And(v) => v.iter().all(|x| tree(x, vars, seen)),
            Formula::Or(v) => v.iter().any(|x| tree(x, vars, seen)),
        }
    }

    /// A formula from a seed: nested and/or/not over `n` variables, empty lists included.
    fn formula(seed: &mut u64, n: usize, depth: u32) -> Formula<usize> {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let r = (*seed >> 33) as usize;
        if depth == 0 || r % 5 == 0 {
            return Formula::Leaf(r / 5 % n);
        }
        let kids = |seed: &mut u64| {
            (0..r / 7 % 4)
                .map(|_| formula(seed, n, depth - 1))
                .collect()
        };
        match r % 3 {
            0 => Formula::Not(Box::new(formula(seed, n, depth - 1))),
            1 => Formula::And(kids(seed)),
            _ => Formula::Or(kids(seed)),
        }
    }

    /// Same answer as the tree walk, and the same leaves asked in the same order, for
    /// every assignment of a few thousand random formulas.
    #[test]
    fn agrees_with_the_tree_walk() {
        let mut seed = 16;
        let n = 5;
        for _ in 0..3000 {
            let f = formula(&mut seed, n, 4);
            let mut p = Program::default();
            let start = p.add(f.clone());
            for bits in 0..1u32 << n {
                let vars: Vec<bool> = (0..n).map(|i| bits >> i & 1 == 1).collect();
                let mut want_seen = Vec::new();
                let want = tree(&f, &vars, &mut want_seen);
                let mut seen = Vec::new();
                let got = p.run(start, |i| {
                    seen.push(*i);
                    vars[*i]
                });
                assert_eq!(got, want, "{f:?} on {vars:?}");
                assert_eq!(seen, want_seen, "{f:?} on {vars:?}");
            }
        }
    }

    /// Formulas sharing a table keep their own entries; empty `and`/`or` are true/false.
    #[test]
    fn several_formulas_and_empty_ones() {
        let mut p: Program<bool> = Program::default();
        let t = p.add(Formula::And(vec![]));
        let f = p.add(Formula::Or(vec![]));
        let a = p.add(Formula::Not(Box::new(Formula::Leaf(false))));
        let b = p.add(Formula::Leaf(false));
        assert!(p.run(t, |x| *x) && !p.run(f, |x| *x));
        assert!(p.run(a, |x| *x) && !p.run(b, |x| *x));
        assert_eq!(p.steps(), 2);
    }
}
