//! The `condition` expression of a rule, as in Sigma: selection names combined with
//! `and`, `or`, `not`, parentheses, and `1 of name*` / `all of name*` / `1 of them`.
//! Parsing is separate from evaluation so `check` can report a bad condition with its
//! position before anything runs.

use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    /// A selection by name.
    Sel(String),
    Not(Box<Cond>),
    And(Vec<Cond>),
    Or(Vec<Cond>),
    /// `1 of pattern` (any) or `all of pattern`; the pattern may end in `*`; `them` = all.
    Of {
        all: bool,
        pattern: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct CondError {
    pub at: usize,
    pub message: String,
}

impl fmt::Display for CondError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at character {}: {}", self.at + 1, self.message)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    And,
    Or,
    Not,
    LParen,
    RParen,
    One,
    All,
    Of,
}

fn lex(s: &str) -> Result<Vec<(usize, Tok)>, CondError> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i] as char;
        if c.is_whitespace() {
            i += 1;
        } else if c == '(' {
            out.push((i, Tok::LParen));
            i += 1;
        } else if c == ')' {
            out.push((i, Tok::RParen));
            i += 1;
        } else if c.is_ascii_alphanumeric() || c == '_' || c == '*' || c == '-' || c == '.' {
            let start = i;
            while i < b.len() {
                let c = b[i] as char;
                if c.is_ascii_alphanumeric() || c == '_' || c == '*' || c == '-' || c == '.' {
                    i += 1;
                } else {
                    break;
                }
            }
            let word = &s[start..i];
            let tok = match word.to_ascii_lowercase().as_str() {
                "and" => Tok::And,
                "or" => Tok::Or,
                "not" => Tok::Not,
                "1" | "any" => Tok::One,
                "all" => Tok::All,
                "of" => Tok::Of,
                _ => Tok::Ident(word.to_string()),
            };
            out.push((start, tok));
        } else {
            return Err(CondError {
                at: i,
                message: format!("unexpected character {c:?}"),
            });
        }
    }
    Ok(out)
}

struct P {
    toks: Vec<(usize, Tok)>,
    pos: usize,
    len: usize,
}

impl P {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.1)
    }
    fn at(&self) -> usize {
        self.toks.get(self.pos).map_or(self.len, |t| t.0)
    }
    fn err<T>(&self, m: impl Into<String>) -> Result<T, CondError> {
        Err(CondError {
            at: self.at(),
            message: m.into(),
        })
    }
    fn or(&mut self) -> Result<Cond, CondError> {
        let mut v = vec![self.and()?];
        while self.peek() == Some(&Tok::Or) {
            self.pos += 1;
            v.push(self.and()?);
        }
        Ok(if v.len() == 1 {
            v.pop().unwrap()
        } else {
            Cond::Or(v)
        })
    }
    fn and(&mut self) -> Result<Cond, CondError> {
        let mut v = vec![self.unary()?];
        while self.peek() == Some(&Tok::And) {
            self.pos += 1;
            v.push(self.unary()?);
        }
        Ok(if v.len() == 1 {
            v.pop().unwrap()
        } else {
            Cond::And(v)
        })
    }
    fn unary(&mut self) -> Result<Cond, CondError> {
        match self.peek().cloned() {
            Some(Tok::Not) => {
                self.pos += 1;
                Ok(Cond::Not(Box::new(self.unary()?)))
            }
            Some(Tok::LParen) => {
                self.pos += 1;
                let c = self.or()?;
                if self.peek() != Some(&Tok::RParen) {
                    return self.err("expected `)`");
                }
                self.pos += 1;
                Ok(c)
            }
            Some(Tok::One) | Some(Tok::All) => {
                let all = self.peek() == Some(&Tok::All);
                self.pos += 1;
                if self.peek() != Some(&Tok::Of) {
                    return self.err("expected `of` after `1`/`all`");
                }
                self.pos += 1;
                match self.peek().cloned() {
                    Some(Tok::Ident(p)) => {
                        self.pos += 1;
                        Ok(Cond::Of { all, pattern: p })
                    }
                    _ => self.err("expected a selection name or pattern after `of`"),
                }
            }
            Some(Tok::Ident(name)) => {
                self.pos += 1;
                Ok(Cond::Sel(name))
            }
            Some(t) => self.err(format!("unexpected {t:?}")),
            None => self.err("the condition ends too early"),
        }
    }
}

pub fn parse(s: &str) -> Result<Cond, CondError> {
    let toks = lex(s)?;
    let mut p = P {
        toks,
        pos: 0,
        len: s.len(),
    };
    let c = p.or()?;
    if p.pos != p.toks.len() {
        return p.err("unexpected text after the end of the condition");
    }
    Ok(c)
}

/// Does `name` match an `of` pattern (`them`, `sel*`, or a plain name)?
pub fn pattern_matches(pattern: &str, name: &str) -> bool {
    if pattern == "them" {
        return true;
    }
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

impl Cond {
    /// Every selection name the condition refers to directly.
    pub fn names(&self, out: &mut Vec<String>) {
        match self {
            Cond::Sel(n) => out.push(n.clone()),
            Cond::Not(c) => c.names(out),
            Cond::And(v) | Cond::Or(v) => v.iter().for_each(|c| c.names(out)),
            Cond::Of { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence() {
        let c = parse("a and not b or c").unwrap();
        assert_eq!(
            c,
            Cond::Or(vec![
                Cond::And(vec![
                    Cond::Sel("a".into()),
                    Cond::Not(Box::new(Cond::Sel("b".into())))
                ]),
                Cond::Sel("c".into())
            ])
        );
        assert!(matches!(
            parse("1 of sel*").unwrap(),
            Cond::Of { all: false, .. }
        ));
        assert!(parse("a and (b").is_err());
        assert!(parse("a b").is_err());
        assert!(parse("").is_err());
    }
}
