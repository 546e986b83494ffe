//! The patient directory: who each patient is, and the flags that make a chart sensitive
//! (VIP, deceased, a member of staff).

use super::address;
use super::csvload;
use crate::event::key;
use anyhow::{bail, Result};
use chrono::NaiveDate;
use rustc_hash::FxHashMap;
use std::path::Path;

#[derive(Debug, Clone)]
pub struct Patient {
    /// As spelled in the directory.
    pub patient_id: String,
    pub family_key: Option<String>,
    pub birth_date: Option<NaiveDate>,
    pub address_key: Option<String>,
    pub street_key: Option<String>,
    pub postcode_key: Option<String>,
    pub deceased_date: Option<NaiveDate>,
    pub vip: bool,
    /// Comparison key of the staff account of a patient who is also on staff.
    pub employee_user_key: Option<String>,
}

#[derive(Debug, Default)]
pub struct Directory {
    by_patient: FxHashMap<String, Patient>,
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

impl Directory {
    pub fn load(path: &Path) -> Result<Directory> {
        let mut by_patient = FxHashMap::default();
        let rejected = csvload::read(path, &["patient_id"], |row| {
            let address_key = row.get("address").map(address::fold);
            let p = Patient {
                patient_id: row.required("patient_id")?.to_string(),
                family_key: row.get("family_name").map(key),
                birth_date: row.date("birth_date")?,
                street_key: address_key.as_deref().map(address::street),
                address_key,
                postcode_key: row.get("postcode").map(address::postcode),
                deceased_date: row.date("deceased_date")?,
                vip: row.boolean("vip")?,
                employee_user_key: row.get("employee_user_id").map(key),
            };
            let k = key(&p.patient_id);
            if by_patient.contains_key(&k) {
                bail!(
                    "{}:{}: patient_id appears twice; keep one row per patient",
                    row.file.display(),
                    row.line
                );
            }
            by_patient.insert(k, p);
            Ok(())
        })?;
        Ok(Directory {
            by_patient,
            rejected,
        })
    }

    pub fn get(&self, patient_key: &str) -> Option<&Patient> {
        self.by_patient.get(patient_key)
    }

    pub fn len(&self) -> usize {
        self.by_patient.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_patient.is_empty()
    }
}
