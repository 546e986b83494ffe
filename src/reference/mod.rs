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
pub mod links;
pub mod roster;
pub mod symbols;

use crate::config::ReferenceConfig;
use anyhow::Result;
use std::path::PathBuf;
use std::time::SystemTime;

pub use care::CareIndex;
pub use directory::{Directory, Patient};
pub use links::{Links, PatientRef, UserRef};
pub use roster::{Roster, StaffMember};

/// The three reference tables, loaded together.
#[derive(Debug, Default)]
pub struct Reference {
    pub roster: Option<Roster>,
    pub directory: Option<Directory>,
    pub care: Option<CareIndex>,
    /// Modification times of the files when loaded, to notice changes.
    pub stamps: Stamps,
    /// The tables joined, for enrichment; built by [`Reference::load`].
    links: Links,
}

/// Hands memory freed by a load back to the system: the care rows as read (hundreds of
/// megabytes at a health system's scale, dropped once sorted into the index) and the room
/// tables gave back. mimalloc, the daemon's allocator, otherwise keeps the pages of a
/// thread that has ended (the loading threads) resident, and the next reload's peak is
/// the old index, those pages and the new index together. Harmless where mimalloc is not
/// the allocator (tests): its own heap is then empty.
fn release_freed_memory() {
    // SAFETY: mi_collect takes no pointers; it frees and purges what mimalloc already
    // holds as free.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

/// The reference files and their modification times.
pub type Stamps = Vec<(PathBuf, Option<SystemTime>)>;

impl Reference {
    /// Loads every configured file. An error names the file, line and column.
    ///
    /// The care file (the largest) loads on a thread of its own while the roster and the
    /// patient directory load on this one: on a health system's files that halves the
    /// wait on two cores. When several files fail, the error is the first of staff,
    /// patients, care, as when they loaded one after the other. The files' stamps are
    /// taken before reading them, so an edit made during a long load is seen as a change
    /// afterwards rather than taken for what was loaded.
    pub fn load(cfg: &ReferenceConfig) -> Result<Reference> {
        let stamps = Self::current_stamps(cfg);
        let (roster, directory, care) = std::thread::scope(|scope| {
            let care = cfg.care.as_ref().map(|p| {
                std::thread::Builder::new()
                    .name("reference-care".into())
                    .spawn_scoped(scope, move || {
                        let care = CareIndex::load(p);
                        release_freed_memory();
                        care
                    })
            });
            let roster = cfg.staff.as_ref().map(|p| Roster::load(p)).transpose();
            let directory = cfg
                .patients
                .as_ref()
                .map(|p| Directory::load(p))
                .transpose();
            let care = match care {
                None => Ok(None),
                // No thread to be had: load it here.
                Some(Err(_)) => cfg.care.as_ref().map(|p| CareIndex::load(p)).transpose(),
                Some(Ok(h)) => match h.join() {
                    Ok(r) => r.map(Some),
                    Err(_) => Err(anyhow::anyhow!("loading the care file failed unexpectedly")),
                },
            };
            (roster, directory, care)
        });
        release_freed_memory();
        let (roster, directory, care) = (roster?, directory?, care?);
        let links = Links::build(roster.as_ref(), directory.as_ref(), care.as_ref());
        Ok(Reference {
            roster,
            directory,
            care,
            stamps,
            links,
        })
    }

    /// The member of staff (if on the roster) whose folded id is `user_key`, with what
    /// the care index and the directory know of them.
    pub fn user(&self, user_key: &str) -> UserRef<'_> {
        self.links
            .user(user_key, self.roster.as_ref(), self.care.as_ref())
    }

    /// The patient whose folded id is `patient_key`, in the directory and in the care
    /// index.
    pub fn patient(&self, patient_key: &str) -> PatientRef<'_> {
        self.links
            .patient(patient_key, self.directory.as_ref(), self.care.as_ref())
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
