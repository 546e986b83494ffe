//! Who owns a file: a numeric uid mapped to a staff account through the source's
//! `[sources.uids]` table, else the account name from the passwd database, else `uid:N`
//! (so the event is still attributed, and the unmapped uid shows in the alert).

use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Clone, Default)]
pub struct UidMap {
    table: BTreeMap<String, String>,
    passwd: HashMap<u32, String>,
}

impl UidMap {
    /// `table` is the source's `[sources.uids]`; the passwd database is read once.
    pub fn new(table: &BTreeMap<String, String>) -> UidMap {
        UidMap {
            table: table
                .iter()
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .collect(),
            passwd: read_passwd("/etc/passwd"),
        }
    }

    pub fn user(&self, uid: u32) -> String {
        if let Some(u) = self.table.get(&uid.to_string()) {
            return u.clone();
        }
        if let Some(name) = self.passwd.get(&uid) {
            return self
                .table
                .get(name)
                .cloned()
                .unwrap_or_else(|| name.clone());
        }
        format!("uid:{uid}")
    }

    /// A name given by the system itself (auditd's enriched `AUID="jsmith"`), mapped
    /// through the table when the table names it.
    pub fn name(&self, name: &str) -> String {
        self.table
            .get(name)
            .cloned()
            .unwrap_or_else(|| name.to_string())
    }
}

fn read_passwd(path: &str) -> HashMap<u32, String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let _pw = f.next()?;
            let uid = f.next()?.parse().ok()?;
            Some((uid, name.to_string()))
        })
        .collect()
}

/// This host's name, for events an agent produces.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_first_then_passwd() {
        let mut t = BTreeMap::new();
        t.insert("1001".to_string(), "u1042".to_string());
        t.insert("root".to_string(), "it_admin".to_string());
        let m = UidMap::new(&t);
        assert_eq!(m.user(1001), "u1042");
        assert_eq!(m.user(0), "it_admin");
        assert_eq!(m.user(4_000_000), "uid:4000000");
        assert_eq!(m.name("jsmith"), "jsmith");
    }
}
