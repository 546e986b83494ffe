//! The three reference tables joined once per load, so that enriching an event costs one
//! lookup of its user and one of its patient.
//!
//! Each table interns its own identifiers ([`super::symbols`]): the roster its users, the
//! directory its patients and their folded addresses, the care index its patients, users
//! and departments. Enrichment used to look the event's user up in the roster and again
//! in the care index (as a user and by their department), and the patient in the
//! directory and again in the care index, hashing and comparing strings each time, then
//! compared the user's and the patient's family names and addresses as strings: about a
//! third of the engine's time. A member of staff's care symbols and home, and each
//! directory patient's care symbol, do not change until the next load, so they are worked
//! out here once, and the per-event work is two hash lookups and integer compares.

use super::care::CareIndex;
use super::directory::{Directory, Home, Patient};
use super::roster::{Roster, StaffMember};
use super::symbols::Sym;

/// What the other tables say about each roster member, and each directory patient's
/// place in the care index.
#[derive(Debug, Default)]
pub struct Links {
    /// By roster position.
    staff: Vec<StaffLinks>,
    /// By directory position: the patient's symbol in the care index.
    care_patient: Vec<Option<Sym>>,
}

/// A member of staff as the care index and the directory know them.
#[derive(Debug, Clone, Copy, Default)]
struct StaffLinks {
    care_user: Option<Sym>,
    care_department: Option<Sym>,
    home: Home,
}

/// The event's user, resolved.
#[derive(Debug, Clone, Copy, Default)]
pub struct UserRef<'a> {
    pub staff: Option<&'a StaffMember>,
    /// The user as named on care rows.
    pub care_user: Option<Sym>,
    /// The user's roster department in the care index.
    pub care_department: Option<Sym>,
    /// Family name and address as directory symbols (members of staff only).
    pub home: Home,
}

/// The event's patient, resolved.
#[derive(Debug, Clone, Copy, Default)]
pub struct PatientRef<'a> {
    pub patient: Option<Patient<'a>>,
    /// The patient in the care index.
    pub care: Option<Sym>,
}

impl Links {
    pub fn build(
        roster: Option<&Roster>,
        directory: Option<&Directory>,
        care: Option<&CareIndex>,
    ) -> Links {
        let staff = roster.map_or_else(Vec::new, |r| {
            r.iter()
                .map(|s| StaffLinks {
                    care_user: care.and_then(|c| c.user(&crate::event::key(&s.user_id))),
                    care_department: care
                        .zip(s.department_key.as_deref())
                        .and_then(|(c, d)| c.department(d)),
                    home: directory.map_or_else(Home::default, |d| {
                        d.home(
                            s.family_key.as_deref(),
                            s.address_key.as_deref(),
                            s.street_key.as_deref(),
                            s.postcode_key.as_deref(),
                        )
                    }),
                })
                .collect()
        });
        let care_patient = match (directory, care) {
            (Some(d), Some(c)) => d.ids().map(|id| c.patient(d.hashed(id))).collect(),
            _ => Vec::new(),
        };
        Links {
            staff,
            care_patient,
        }
    }

    /// The user whose folded id is `user_key`.
    pub fn user<'a>(
        &self,
        user_key: &str,
        roster: Option<&'a Roster>,
        care: Option<&CareIndex>,
    ) -> UserRef<'a> {
        let found = roster.and_then(|r| Some((r, r.index(user_key)?)));
        match found {
            Some((r, i)) => {
                let l = self.staff[i];
                UserRef {
                    staff: Some(r.member(i)),
                    care_user: l.care_user,
                    care_department: l.care_department,
                    home: l.home,
                }
            }
            // Not on the roster: no department, no home; perhaps named on care rows.
            None => UserRef {
                care_user: care.and_then(|c| c.user(user_key)),
                ..UserRef::default()
            },
        }
    }

    /// The patient whose folded id is `patient_key`.
    pub fn patient<'a>(
        &self,
        patient_key: &str,
        directory: Option<&'a Directory>,
        care: Option<&CareIndex>,
    ) -> PatientRef<'a> {
        let Some(d) = directory else {
            return PatientRef {
                patient: None,
                care: care.and_then(|c| c.patient(c.hashed(patient_key))),
            };
        };
        let hashed = d.hashed_key(patient_key);
        match d.get_hashed(hashed) {
            Some(p) => PatientRef {
                patient: Some(p),
                care: self.care_patient.get(p.index()).copied().flatten(),
            },
            // Not in the directory: perhaps in care rows all the same.
            None => PatientRef {
                patient: None,
                care: care.and_then(|c| c.patient(hashed)),
            },
        }
    }
}
