//! The staff roster: who each user is, where they work, and when they may work there.

use super::address;
use super::csvload;
use crate::event::key;
use anyhow::{bail, Result};
use chrono::NaiveDate;
use rustc_hash::FxHashMap;
use std::path::Path;

#[derive(Debug, Clone)]
pub struct StaffMember {
    /// As spelled in the roster.
    pub user_id: String,
    pub family_key: Option<String>,
    pub role: Option<String>,
    pub department: Option<String>,
    /// Folded department, for comparison with care rows.
    pub department_key: Option<String>,
    pub address_key: Option<String>,
    pub street_key: Option<String>,
    pub postcode_key: Option<String>,
    pub hire_date: Option<NaiveDate>,
    /// First day the person no longer works there.
    pub termination_date: Option<NaiveDate>,
    /// [`StaffMember::peer_group`], worked out once at load: the engine asks for it on
    /// every event, and formatting it each time was a measurable share of its work.
    group: String,
}

impl StaffMember {
    /// The peer group: same role in the same department (`role/department`, folded).
    pub fn peer_group(&self) -> &str {
        &self.group
    }

    fn group_of(role: Option<&str>, department_key: Option<&str>) -> String {
        format!(
            "{}/{}",
            role.unwrap_or("-").to_ascii_lowercase(),
            department_key.unwrap_or("-")
        )
    }
}

#[derive(Debug, Default)]
pub struct Roster {
    /// In file order; a member's position is what [`Roster::index`] gives, so tables
    /// joined with the roster ([`super::links`]) are plain vectors beside it.
    members: Vec<StaffMember>,
    /// Position in `members` by folded user id.
    by_user: FxHashMap<String, u32>,
    /// Rows set aside at load, each with its file, line and reason.
    pub rejected: Vec<String>,
}

pub const COLUMNS: [&str; 9] = [
    "user_id",
    "given_name",
    "family_name",
    "role",
    "department",
    "address",
    "postcode",
    "hire_date",
    "termination_date",
];

// Positions in [`COLUMNS`], for [`csvload::Row`].
const USER_ID: usize = 0;
const FAMILY_NAME: usize = 2;
const ROLE: usize = 3;
const DEPARTMENT: usize = 4;
const ADDRESS: usize = 5;
const POSTCODE: usize = 6;
const HIRE_DATE: usize = 7;
const TERMINATION_DATE: usize = 8;

impl Roster {
    pub fn load(path: &Path) -> Result<Roster> {
        let mut by_user = FxHashMap::default();
        let mut members = Vec::new();
        let rejected = csvload::read(path, &COLUMNS, &["user_id"], |row| {
            let user_id = row.required(USER_ID)?.to_string();
            let address_key = row.get(ADDRESS).map(address::fold);
            let role = row.get(ROLE).map(str::to_string);
            let department_key = row.get(DEPARTMENT).map(key);
            let member = StaffMember {
                family_key: row.get(FAMILY_NAME).map(key),
                group: StaffMember::group_of(role.as_deref(), department_key.as_deref()),
                role,
                department: row.get(DEPARTMENT).map(str::to_string),
                department_key,
                street_key: address_key.as_deref().map(address::street),
                address_key,
                postcode_key: row.get(POSTCODE).map(address::postcode),
                hire_date: row.date(HIRE_DATE)?,
                termination_date: row.date(TERMINATION_DATE)?,
                user_id,
            };
            let k = key(&member.user_id);
            if by_user.contains_key(&k) {
                bail!(
                    "{}:{}: user_id {:?} appears twice; keep one row per account",
                    row.file.display(),
                    row.line,
                    member.user_id
                );
            }
            by_user.insert(k, members.len() as u32);
            members.push(member);
            Ok(())
        })?;
        Ok(Roster {
            members,
            by_user,
            rejected,
        })
    }

    pub fn get(&self, user_key: &str) -> Option<&StaffMember> {
        self.index(user_key).map(|i| self.member(i))
    }

    /// The position of the member whose folded id is `user_key`.
    pub fn index(&self, user_key: &str) -> Option<usize> {
        self.by_user.get(user_key).map(|&i| i as usize)
    }

    /// The member at a position [`Roster::index`] gave.
    pub fn member(&self, i: usize) -> &StaffMember {
        &self.members[i]
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Every member, in file order.
    pub fn iter(&self) -> impl Iterator<Item = &StaffMember> {
        self.members.iter()
    }
}
