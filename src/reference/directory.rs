//! The patient directory: who each patient is, and the flags that make a chart sensitive
//! (VIP, deceased, a member of staff).
//!
//! A health system's directory holds millions of patients, so a patient is a row of
//! 4-byte symbols ([`super::symbols`]) rather than a struct of `String`s: identifiers in
//! one case-folding table whose position is the row, folded names, addresses and
//! postcodes in another, each distinct value stored once. [`Directory::get`] hands out a
//! [`Patient`] of borrowed strings, which is what enrichment compares.

use super::address;
use super::csvload;
use super::symbols::{Hashed, Sym, Symbols};
use anyhow::{bail, Result};
use chrono::NaiveDate;
use std::path::Path;

/// One patient, borrowed from the directory: a row, read field by field. Enrichment
/// finds the patient of every event but most events need only a flag or two of the row,
/// so nothing is resolved from the arena until asked for.
#[derive(Debug, Clone, Copy)]
pub struct Patient<'a> {
    dir: &'a Directory,
    id: Sym,
}

/// Where a patient or a member of staff lives and their family name, as symbols of the
/// directory's folded values: comparing two is comparing integers. A value the directory
/// does not hold is `None`, as no patient can share it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Home {
    pub family: Option<Sym>,
    pub address: Option<Sym>,
    /// A member of staff's is `None` for an empty street as well: no one is a
    /// neighbour on no street.
    pub street: Option<Sym>,
    pub postcode: Option<Sym>,
}

impl<'a> Patient<'a> {
    fn row(&self) -> &'a Stored {
        &self.dir.rows[self.id.index()]
    }

    fn value(&self, s: Option<Sym>) -> Option<&'a str> {
        s.map(|s| self.dir.values.resolve(s))
    }

    /// As spelled in the directory.
    pub fn patient_id(&self) -> &'a str {
        self.dir.ids.resolve(self.id)
    }

    pub fn family_key(&self) -> Option<&'a str> {
        self.value(self.row().family)
    }

    pub fn birth_date(&self) -> Option<NaiveDate> {
        self.row().birth_date
    }

    pub fn address_key(&self) -> Option<&'a str> {
        self.value(self.row().address)
    }

    pub fn street_key(&self) -> Option<&'a str> {
        self.value(self.row().street)
    }

    pub fn postcode_key(&self) -> Option<&'a str> {
        self.value(self.row().postcode)
    }

    pub fn deceased_date(&self) -> Option<NaiveDate> {
        self.row().deceased_date
    }

    pub fn vip(&self) -> bool {
        self.row().vip
    }

    /// True when the patient is also on staff.
    pub fn is_employee(&self) -> bool {
        self.row().employee.is_some()
    }

    /// Comparison key of the staff account of a patient who is also on staff.
    pub fn employee_user_key(&self) -> Option<&'a str> {
        self.value(self.row().employee)
    }

    /// Family name and address as symbols, for comparing with a member of staff's.
    pub fn home(&self) -> Home {
        let r = self.row();
        Home {
            family: r.family,
            address: r.address,
            street: r.street,
            postcode: r.postcode,
        }
    }

    /// Position in the directory, from 0 in file order.
    pub fn index(&self) -> usize {
        self.id.index()
    }
}

/// A patient as stored: symbols in [`Directory::values`].
#[derive(Debug, Clone, Copy)]
struct Stored {
    family: Option<Sym>,
    address: Option<Sym>,
    street: Option<Sym>,
    postcode: Option<Sym>,
    employee: Option<Sym>,
    birth_date: Option<NaiveDate>,
    deceased_date: Option<NaiveDate>,
    vip: bool,
}

#[derive(Debug, Default)]
pub struct Directory {
    /// Patient ids as spelled, found by their folded key; a patient's symbol index is its
    /// row in `rows`.
    ids: Symbols,
    rows: Vec<Stored>,
    /// Folded family names, addresses, streets, postcodes and staff keys.
    values: Symbols,
    /// Rows set aside at load, each with its file, line and reason.
    pub rejected: Vec<String>,
}

pub const COLUMNS: [&str; 9] = [
    "patient_id",
    "given_name",
    "family_name",
    "birth_date",
    "address",
    "postcode",
    "deceased_date",
    "vip",
    "employee_user_id",
];

// Positions in [`COLUMNS`], for [`csvload::Row`].
const PATIENT_ID: usize = 0;
const FAMILY_NAME: usize = 2;
const BIRTH_DATE: usize = 3;
const ADDRESS: usize = 4;
const POSTCODE: usize = 5;
const DECEASED_DATE: usize = 6;
const VIP: usize = 7;
const EMPLOYEE_USER_ID: usize = 8;

/// Reused buffers for folding one row's values without allocating.
#[derive(Default)]
struct Scratch {
    folded: String,
    address: String,
    cleaned: String,
}

impl Directory {
    pub fn load(path: &Path) -> Result<Directory> {
        let mut d = Directory {
            ids: Symbols::folding_case(),
            ..Directory::default()
        };
        let rows = csvload::estimate_rows(path);
        d.rows.reserve(rows);
        d.ids.reserve(rows, rows * 12);
        let mut s = Scratch::default();
        let rejected = csvload::read(path, &COLUMNS, &["patient_id"], |row| {
            let patient_id = row.required(PATIENT_ID)?;
            let values = &mut d.values;
            let mut folded = |v: Option<&str>, s: &mut String| -> Result<Option<Sym>> {
                let Some(v) = v else { return Ok(None) };
                s.clear();
                s.push_str(v.trim());
                s.make_ascii_lowercase();
                Ok(Some(values.intern(s)?.0))
            };
            let family = folded(row.get(FAMILY_NAME), &mut s.folded)?;
            let birth_date = row.date(BIRTH_DATE)?;
            let (address, street) = match row.get(ADDRESS) {
                None => (None, None),
                Some(a) => {
                    address::fold_into(a, &mut s.cleaned, &mut s.address);
                    let street = address::street_of(&s.address);
                    (
                        Some(d.values.intern(&s.address)?.0),
                        Some(d.values.intern(street)?.0),
                    )
                }
            };
            let postcode = match row.get(POSTCODE) {
                None => None,
                Some(p) => {
                    address::postcode_into(p, &mut s.folded);
                    Some(d.values.intern(&s.folded)?.0)
                }
            };
            let deceased_date = row.date(DECEASED_DATE)?;
            let vip = row.boolean(VIP)?;
            let values = &mut d.values;
            let employee = match row.get(EMPLOYEE_USER_ID) {
                None => None,
                Some(v) => {
                    s.folded.clear();
                    s.folded.push_str(v.trim());
                    s.folded.make_ascii_lowercase();
                    Some(values.intern(&s.folded)?.0)
                }
            };
            let (_, new) = d.ids.intern(patient_id)?;
            if !new {
                bail!(
                    "{}:{}: patient_id appears twice; keep one row per patient",
                    row.file.display(),
                    row.line
                );
            }
            d.rows.push(Stored {
                family,
                address,
                street,
                postcode,
                employee,
                birth_date,
                deceased_date,
                vip,
            });
            Ok(())
        })?;
        d.rejected = rejected;
        d.rows.shrink_to_fit();
        d.ids.shrink_to_fit();
        d.values.shrink_to_fit();
        Ok(d)
    }

    /// The patient whose folded id ([`crate::event::key`]) is `patient_key`.
    pub fn get(&self, patient_key: &str) -> Option<Patient<'_>> {
        self.get_hashed(self.ids.hashed(patient_key))
    }

    /// [`Directory::get`] for an id hashed already ([`Directory::hashed`]).
    pub fn get_hashed(&self, patient_key: Hashed) -> Option<Patient<'_>> {
        let id = self.ids.get_hashed(patient_key)?;
        Some(Patient { dir: self, id })
    }

    /// A patient id with its hash, to look it up here and in the care index at the
    /// cost of one hash (both tables fold case alike).
    pub fn hashed<'s>(&self, patient_key: &'s str) -> Hashed<'s> {
        self.ids.hashed(patient_key)
    }

    /// [`Directory::hashed`] for a folded id ([`crate::event::key`]), which needs no
    /// scan for capitals ([`super::symbols::Symbols::hashed_key`]).
    pub fn hashed_key<'s>(&self, patient_key: &'s str) -> Hashed<'s> {
        self.ids.hashed_key(patient_key)
    }

    /// Patient ids as spelled, in directory order, for joining with other tables.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.ids.iter()
    }

    /// A member of staff's family name and address as this directory's symbols (each
    /// folded as the directory folds them: [`crate::event::key`], [`address::fold`],
    /// [`address::street`], [`address::postcode`]).
    pub fn home(
        &self,
        family: Option<&str>,
        address: Option<&str>,
        street: Option<&str>,
        postcode: Option<&str>,
    ) -> Home {
        let v = |s: Option<&str>| s.and_then(|s| self.values.get(s));
        Home {
            family: v(family),
            address: v(address),
            street: v(street.filter(|s| !s.is_empty())),
            postcode: v(postcode),
        }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::key;
    use std::io::Write;

    #[test]
    fn a_patient_reads_back_as_folded_and_spelled() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "{}", COLUMNS.join(",")).unwrap();
        writeln!(
            f,
            "MRN1,Ann,O'Neil,1980-02-03,14 Elm Street Apt 4,01101-1234,,TRUE,JSmith"
        )
        .unwrap();
        writeln!(f, "mrn1,Ann,Other,,,,,,").unwrap();
        writeln!(f, "MRN2,,,,,,2024-05-01,no,").unwrap();
        writeln!(f, "MRN3,,,,,,,maybe,").unwrap();
        let d = Directory::load(f.path()).unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d.rejected.len(), 2, "{:?}", d.rejected);
        assert!(d.rejected[0].contains("appears twice"));
        let p = d.get(&key("Mrn1")).unwrap();
        assert_eq!(p.patient_id(), "MRN1");
        assert_eq!(p.family_key(), Some(key("O'Neil").as_str()));
        assert_eq!(
            p.address_key(),
            Some(address::fold("14 Elm Street Apt 4").as_str())
        );
        assert_eq!(p.street_key(), Some("elm st"));
        assert_eq!(p.postcode_key(), Some("01101"));
        assert_eq!(p.employee_user_key(), Some("jsmith"));
        assert!(p.vip() && p.is_employee());
        assert_eq!(p.birth_date(), NaiveDate::from_ymd_opt(1980, 2, 3));
        let home = d.home(
            Some(&key("O'Neil")),
            Some(&address::fold("14 Elm Street Apt 4")),
            Some("elm st"),
            Some("01101"),
        );
        assert_eq!(home, p.home(), "the same home as symbols");
        assert_eq!(
            d.home(Some("nobody"), None, Some(""), None),
            Home::default()
        );
        let p2 = d.get("mrn2").unwrap();
        assert_eq!(p2.deceased_date(), NaiveDate::from_ymd_opt(2024, 5, 1));
        assert!(!p2.vip() && p2.family_key().is_none() && p2.address_key().is_none());
        assert!(d.get("mrn3").is_none());
    }
}
