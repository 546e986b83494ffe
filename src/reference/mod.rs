//! Reference data: who the user is (the staff [`roster`]), who the patient is (the
//! patient [`directory`]) and why the user might be there ([`care`] relationships).
//!
//! All three files are optional: a detector that needs a missing one stays quiet and the
//! engine says so at start. Loading is all-or-nothing per file, so a reload that fails
//! keeps the previous, good data in service.

pub mod address;
pub mod care;
pub mod csvload;
pub mod directory;
pub mod roster;

use crate::config::ReferenceConfig;
use anyhow::Result;
use std::path::PathBuf;
use std::time::SystemTime;

pub use care::CareIndex;
pub use directory::{Directory, Patient};
pub use roster::{Roster, StaffMember};

/// The three reference tables, loaded together.
#[derive(Debug, Default)]
pub struct Reference {
    pub roster: Option<Roster>,
    pub directory: Option<Directory>,
    pub care: Option<CareIndex>,
    /// Modification times of the files when loaded, to notice changes.
    pub stamps: Stamps,
}

/// The reference files and their modification times.
pub type Stamps = Vec<(PathBuf, Option<SystemTime>)>;

impl Reference {
    /// Loads every configured file. An error names the file, line and column.
    pub fn load(cfg: &ReferenceConfig) -> Result<Reference> {
        let mut r = Reference::default();
        if let Some(p) = &cfg.staff {
            r.roster = Some(Roster::load(p)?);
        }
        if let Some(p) = &cfg.patients {
            r.directory = Some(Directory::load(p)?);
        }
        if let Some(p) = &cfg.care {
            r.care = Some(CareIndex::load(p)?);
        }
        r.stamps = Self::current_stamps(cfg);
        Ok(r)
    }

    /// True when any configured file changed since it was loaded.
    pub fn changed(&self, cfg: &ReferenceConfig) -> bool {
        Self::current_stamps(cfg) != self.stamps
    }

    /// The configured files with their modification times now.
    pub fn current_stamps(cfg: &ReferenceConfig) -> Vec<(PathBuf, Option<SystemTime>)> {
        [&cfg.staff, &cfg.patients, &cfg.care]
            .into_iter()
            .flatten()
            .map(|p| {
                let m = std::fs::metadata(p).and_then(|m| m.modified()).ok();
                (p.clone(), m)
            })
            .collect()
    }

    /// Rows set aside at load (file, line, reason), by table.
    pub fn rejected(&self) -> [(&'static str, &[String]); 3] {
        [
            (
                "staff",
                self.roster.as_ref().map_or(&[][..], |r| &r.rejected),
            ),
            (
                "patients",
                self.directory.as_ref().map_or(&[][..], |d| &d.rejected),
            ),
            ("care", self.care.as_ref().map_or(&[][..], |c| &c.rejected)),
        ]
    }

    /// Row counts, for logs and metrics.
    pub fn rows(&self) -> (usize, usize, usize) {
        (
            self.roster.as_ref().map_or(0, |r| r.len()),
            self.directory.as_ref().map_or(0, |d| d.len()),
            self.care.as_ref().map_or(0, |c| c.len()),
        )
    }
}
