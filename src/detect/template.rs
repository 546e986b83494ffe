//! Summary and reason templates: plain sentences with `{name}` placeholders that the
//! engine fills from what it knows about the finding. A reason whose placeholder has no
//! value is left out, so a template can state a fact only when the fact is known.

use anyhow::{bail, Result};

/// Names a template may use.
pub const NAMES: &[&str] = &[
    "user",
    "role",
    "department",
    "action",
    "patients",
    "patient_word",
    "events",
    "care",
    "days_since_death",
    "days_since_termination",
    "records",
    "value",
    "usual",
    "peer_usual",
    "threshold",
    "period",
    "hours",
    "window",
    "minutes",
    "media",
    "bytes",
    "phi",
    "exporter",
];

/// Checks that every placeholder is known and braces balance.
pub fn check(t: &str) -> Result<()> {
    let mut rest = t;
    while let Some(i) = rest.find('{') {
        let Some(j) = rest[i..].find('}') else {
            bail!("a `{{` is never closed");
        };
        let name = &rest[i + 1..i + j];
        if !NAMES.contains(&name) {
            bail!(
                "unknown placeholder {{{name}}}; known: {}",
                NAMES.join(", ")
            );
        }
        rest = &rest[i + j + 1..];
    }
    Ok(())
}

/// Fills placeholders; None when a placeholder has no value.
pub fn render(t: &str, lookup: impl Fn(&str) -> Option<String>) -> Option<String> {
    let mut out = String::with_capacity(t.len() + 32);
    let mut rest = t;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let j = rest[i..].find('}')?;
        let name = &rest[i + 1..i + j];
        out.push_str(&lookup(name)?);
        rest = &rest[i + j + 1..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_and_drops() {
        let f = |n: &str| (n == "user").then(|| "u1".to_string());
        assert_eq!(render("{user} did it", f).as_deref(), Some("u1 did it"));
        assert_eq!(render("{user} in {department}", f), None);
        assert!(check("{nope}").is_err());
        assert!(check("{user} {care}").is_ok());
    }
}
