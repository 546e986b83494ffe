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
use super::symbols::{Sym, Symbols};
use anyhow::{bail, Result};
use chrono::NaiveDate;
use std::path::Path;

/// One patient, borrowed from the directory.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Patient<'a> {
    /// As spelled in the directory.
    pub patient_id: &'a str,
    pub family_key: Option<&'a str>,
    pub birth_date: Option<NaiveDate>,
    pub address_key: Option<&'a str>,
    pub street_key: Option<&'a str>,
    pub postcode_key: Option<&'a str>,
    pub deceased_date: Option<NaiveDate>,
    pub vip: bool,
    /// Comparison key of the staff account of a patient who is also on staff.
    pub employee_user_key: Option<&'a str>,
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
        let id = self.ids.get(patient_key)?;
        let p = &self.rows[id.index()];
        let v = |s: Option<Sym>| s.map(|s| self.values.resolve(s));
        Some(Patient {
            patient_id: self.ids.resolve(id),
            family_key: v(p.family),
            birth_date: p.birth_date,
            address_key: v(p.address),
            street_key: v(p.street),
            postcode_key: v(p.postcode),
            deceased_date: p.deceased_date,
            vip: p.vip,
            employee_user_key: v(p.employee),
        })
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
        assert_eq!(p.patient_id, "MRN1");
        assert_eq!(p.family_key, Some(key("O'Neil").as_str()));
        assert_eq!(
            p.address_key,
            Some(address::fold("14 Elm Street Apt 4").as_str())
        );
        assert_eq!(p.street_key, Some("elm st"));
        assert_eq!(p.postcode_key, Some("01101"));
        assert_eq!(p.employee_user_key, Some("jsmith"));
        assert!(p.vip);
        assert_eq!(p.birth_date, NaiveDate::from_ymd_opt(1980, 2, 3));
        let p2 = d.get("mrn2").unwrap();
        assert_eq!(p2.deceased_date, NaiveDate::from_ymd_opt(2024, 5, 1));
        assert!(!p2.vip && p2.family_key.is_none() && p2.address_key.is_none());
        assert!(d.get("mrn3").is_none());
    }
}
