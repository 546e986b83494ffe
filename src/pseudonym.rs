//! Patient identifiers out of the SIEM by default.
//!
//! A SIEM is usually outside the HIPAA "minimum necessary" boundary, so each sink decides
//! what it may carry about patients with a [`PatientPolicy`]:
//!
//! - `plain`: the ids as the engine wrote them (default for `file` and `stdout` sinks,
//!   which stay on the phiwatch host),
//! - `pseudonymised`: each id becomes `pt-` + the first 16 bytes, in hex, of
//!   HMAC-SHA256(key, id) where `id` is trimmed and lower-cased the way phiwatch compares
//!   ids everywhere (default for `syslog`, `kafka` and `webhook` sinks). The same id and
//!   key always give the same pseudonym, so an analyst can correlate alerts about one
//!   patient and, holding the key, re-identify a patient on request; without the key the
//!   pseudonym reveals nothing,
//! - `omitted`: no patient ids at all (`patients` is empty).
//!
//! The policy is applied to `alert.patients` and to every whole-token occurrence of one of
//! those ids in `summary` and `reasons` (the engine writes summaries without patient ids,
//! but a reason may name one). Matching is case-insensitive, like every id comparison in
//! phiwatch; an occurrence inside a longer word or number (`p1` in `p10`) is left alone.
//!
//! The key is read from the file named by the sink key `pseudonym_key_file`, else from
//! `<state.dir>/pseudonym.key`. That default file is created on first use with 32 random
//! bytes written as 64 hex characters and mode 0600. The key is the file's content with
//! surrounding whitespace trimmed (so `openssl rand -hex 32 > pseudonym.key` works); keep
//! it secret and identical on every host whose alerts must correlate. Changing the key
//! changes every pseudonym.

use crate::alert::Alert;
use aho_corasick::{AhoCorasick, MatchKind};
use anyhow::{bail, Context, Result};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::borrow::Cow;
use std::fmt;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

/// Text put in place of a patient id in `summary`/`reasons` under [`PatientPolicy::Omitted`].
pub const OMITTED_MARK: &str = "[patient]";

/// Shortest key accepted from a key file, in bytes.
pub const MIN_KEY_LEN: usize = 16;

/// The secret key of the pseudonyms. Its bytes never appear in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct PseudonymKey(Arc<[u8]>);

impl PseudonymKey {
    /// A key from raw bytes (tests, or keys held elsewhere). Files go through [`load_key`].
    pub fn new(bytes: &[u8]) -> PseudonymKey {
        PseudonymKey(Arc::from(bytes))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PseudonymKey({} bytes)", self.0.len())
    }
}

/// What a sink may carry about patients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatientPolicy {
    Plain,
    Pseudonymised(PseudonymKey),
    Omitted,
}

impl PatientPolicy {
    /// The config name: `plain`, `pseudonymised` or `omitted`.
    pub fn name(&self) -> &'static str {
        match self {
            PatientPolicy::Plain => "plain",
            PatientPolicy::Pseudonymised(_) => "pseudonymised",
            PatientPolicy::Omitted => "omitted",
        }
    }

    /// The alert as this policy lets it leave: borrowed untouched under `Plain`.
    pub fn apply<'a>(&self, alert: &'a Alert) -> Cow<'a, Alert> {
        let replace = |id: &str| -> String {
            match self {
                PatientPolicy::Plain => id.to_string(),
                PatientPolicy::Pseudonymised(key) => pseudonymise(key, id),
                PatientPolicy::Omitted => OMITTED_MARK.to_string(),
            }
        };
        if matches!(self, PatientPolicy::Plain) {
            return Cow::Borrowed(alert);
        }
        let mut out = alert.clone();
        out.patients = match self {
            PatientPolicy::Omitted => Vec::new(),
            _ => alert.patients.iter().map(|p| replace(p)).collect(),
        };
        let ids: Vec<&str> = alert
            .patients
            .iter()
            .map(|p| p.trim())
            .filter(|p| !p.is_empty())
            .collect();
        if !ids.is_empty() {
            let replacements: Vec<String> = ids.iter().map(|id| replace(id)).collect();
            let ac = AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::LeftmostLongest)
                .build(&ids)
                .expect("patient ids build a matcher");
            out.summary = replace_tokens(&ac, &replacements, &alert.summary);
            out.reasons = alert
                .reasons
                .iter()
                .map(|r| replace_tokens(&ac, &replacements, r))
                .collect();
        }
        Cow::Owned(out)
    }
}

/// Replaces whole-token matches: a match touching a letter or digit on either side is part
/// of a longer id or number and is kept.
fn replace_tokens(ac: &AhoCorasick, replacements: &[String], text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for m in ac.find_iter(text) {
        let before = text[..m.start()].chars().next_back();
        let after = text[m.end()..].chars().next();
        let glued = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric());
        if glued(before) || glued(after) {
            continue;
        }
        out.push_str(&text[last..m.start()]);
        out.push_str(&replacements[m.pattern().as_usize()]);
        last = m.end();
    }
    out.push_str(&text[last..]);
    out
}

/// `pt-` + hex of the first 16 bytes of HMAC-SHA256(key, trimmed lower-case id).
pub fn pseudonymise(key: &PseudonymKey, id: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(crate::event::key(id).as_bytes());
    let digest = mac.finalize().into_bytes();
    format!("pt-{}", hex::encode(&digest[..16]))
}

/// Reads a key file: its content with surrounding whitespace trimmed, at least
/// [`MIN_KEY_LEN`] bytes. Warns when the file is readable by group or others.
pub fn load_key(path: &Path) -> Result<PseudonymKey> {
    let raw = std::fs::read(path).with_context(|| {
        format!(
            "cannot read the pseudonym key file {}: create it (e.g. `openssl rand -hex 32 > {}` \
             then `chmod 600` it) or point `pseudonym_key_file` at an existing one",
            path.display(),
            path.display()
        )
    })?;
    let key = raw.trim_ascii();
    if key.len() < MIN_KEY_LEN {
        bail!(
            "the pseudonym key file {} holds {} bytes; it needs at least {MIN_KEY_LEN} \
             (e.g. `openssl rand -hex 32 > {}`)",
            path.display(),
            key.len(),
            path.display()
        );
    }
    warn_if_readable_by_others(path);
    Ok(PseudonymKey::new(key))
}

/// Reads the key file, creating it first (32 random bytes as hex, mode 0600, parent folders
/// as needed) when it does not exist. Used for the default `<state.dir>/pseudonym.key`.
pub fn load_or_create_key(path: &Path) -> Result<PseudonymKey> {
    if !path.exists() {
        create_key_file(path)?;
    }
    load_key(path)
}

fn create_key_file(path: &Path) -> Result<()> {
    use rand::RngCore;
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir).with_context(|| {
                format!(
                    "cannot create the folder {} for the pseudonym key; create it or set \
                     `pseudonym_key_file` in the sink",
                    dir.display()
                )
            })?;
        }
    }
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    match opts.open(path) {
        Ok(mut f) => {
            f.write_all(format!("{}\n", hex::encode(bytes)).as_bytes())
                .and_then(|_| f.sync_all())
                .with_context(|| format!("cannot write the pseudonym key {}", path.display()))?;
            tracing::info!(path = %path.display(), "created a new pseudonym key");
            Ok(())
        }
        // Another process created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e).with_context(|| {
            format!(
                "cannot create the pseudonym key {}; check the permissions of its folder or \
                 set `pseudonym_key_file` in the sink",
                path.display()
            )
        }),
    }
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode();
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    mode = format!("{:o}", mode & 0o777),
                    "the pseudonym key file is readable by others; run `chmod 600` on it"
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_only() {
        let ac = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostLongest)
            .build(["p1"])
            .unwrap();
        let r = vec!["X".to_string()];
        assert_eq!(
            replace_tokens(&ac, &r, "P1, p10 and (p1)"),
            "X, p10 and (X)"
        );
    }
}
