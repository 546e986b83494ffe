//! `auditd`: Linux audit logs (`/var/log/audit/audit.log`), raw or ENRICHED.
//!
//! One audited syscall is several records (SYSCALL, CWD, PATH..., PROCTITLE, EOE) that
//! share the id in `msg=audit(SECONDS.MILLIS:SERIAL)` and may interleave with other
//! events' records. Records are grouped by that id; a group becomes one event at its
//! `EOE` record, or once 64 later lines have passed without one (kernels and rules that
//! emit no EOE), or at `flush`. File writes, creations, renames and deletions become
//! `file_write`, `file_move` and `file_delete`, attributed to `auid`: the login user,
//! which survives `su` and `sudo`. Every other group (daemons with auid unset, read-only
//! opens, executions, logins, configuration records) is well formed but not a staff
//! account's file change: counted as ignored (`other_audit_event`), not rejected.

use super::{reason, Parser, Reject};
use crate::config::SourceConfig;
use crate::event::{Action, Event, Media, Outcome};
use crate::uid::UidMap;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap, VecDeque};

/// Lines after which a group without EOE is complete.
const GROUP_TIMEOUT_LINES: u64 = 64;
const AUID_UNSET: &str = "4294967295";

type Fields = BTreeMap<String, String>;

#[derive(Default)]
struct Group {
    first_line: u64,
    syscall: Option<Fields>,
    cwd: Option<String>,
    paths: Vec<Fields>,
    node: Option<String>,
}

pub struct AuditdParser {
    source: String,
    media: Option<Media>,
    uids: UidMap,
    groups: HashMap<(i64, u64), Group>,
    ready: VecDeque<Result<Event, Reject>>,
    line_no: u64,
}

impl AuditdParser {
    pub fn new(source: &SourceConfig) -> AuditdParser {
        AuditdParser {
            source: source.name.clone(),
            media: source.media.as_deref().and_then(Media::parse),
            uids: UidMap::new(&source.uids),
            groups: HashMap::new(),
            ready: VecDeque::new(),
            line_no: 0,
        }
    }

    fn finish(&mut self, id: (i64, u64), g: Group) {
        let r = self.to_event(id, g).unwrap_or_else(|| {
            Err(Reject::ignored(
                crate::parse::ignored::OTHER,
                "not a staff account's file write, move or delete",
            ))
        });
        self.ready.push_back(r);
    }

    /// One group as an event; None for what is not staff file activity.
    fn to_event(&self, id: (i64, u64), g: Group) -> Option<Result<Event, Reject>> {
        let sc = g.syscall?;
        let auid = sc.get("auid").map(String::as_str).unwrap_or(AUID_UNSET);
        if auid == AUID_UNSET || auid == "-1" {
            return None;
        }
        let name = syscall_name(&sc);
        let created = g
            .paths
            .iter()
            .any(|p| p.get("nametype").is_some_and(|t| t == "CREATE"));
        let deleted = g
            .paths
            .iter()
            .any(|p| p.get("nametype").is_some_and(|t| t == "DELETE"));
        let action = match name.as_str() {
            "rename" | "renameat" | "renameat2" => Action::FileMove,
            "unlink" | "unlinkat" | "rmdir" => Action::FileDelete,
            _ if deleted => Action::FileDelete,
            "creat" | "truncate" | "ftruncate" => Action::FileWrite,
            "open" | "openat" | "openat2" if created || opens_for_write(&sc, &name) => {
                Action::FileWrite
            }
            _ if created => Action::FileWrite,
            _ => return None,
        };
        // The file: for a rename the created name, else the non-parent item.
        let item = g
            .paths
            .iter()
            .filter(|p| p.get("nametype").is_none_or(|t| t != "PARENT"))
            .find(|p| {
                action != Action::FileMove || p.get("nametype").is_some_and(|t| t == "CREATE")
            })
            .or_else(|| g.paths.last())?;
        let mut path = item.get("name").cloned().unwrap_or_default();
        if !path.starts_with('/') {
            if let Some(cwd) = &g.cwd {
                path = format!("{}/{}", cwd.trim_end_matches('/'), path);
            }
        }
        let user = match sc.get("AUID") {
            Some(n) if !n.is_empty() && n != "unset" => self.uids.name(n),
            _ => match auid.parse::<u32>() {
                Ok(u) => self.uids.user(u),
                Err(_) => return Some(Err(Reject::new(reason::BAD_FIELD, "auid is not a number"))),
            },
        };
        let ts = DateTime::<Utc>::from_timestamp_millis(id.0)?;
        let mut e = Event::new(ts, user, action);
        e.path = Some(path);
        e.media = self.media;
        e.host = g.node;
        e.source = self.source.clone();
        if sc.get("success").is_some_and(|s| s == "no") {
            e.outcome = Outcome::Failure;
        }
        Some(Ok(e))
    }
}

/// The syscall's name: the enriched `SYSCALL=` field, else the number read for the
/// record's `arch` (the numbers differ: 38 is `renameat` on aarch64 and `setitimer` on
/// x86_64). Only the file syscalls phiwatch looks at are named.
fn syscall_name(sc: &Fields) -> String {
    if let Some(n) = sc.get("SYSCALL") {
        return n.to_ascii_lowercase();
    }
    let num = sc.get("syscall").map(String::as_str).unwrap_or("");
    let arch = sc.get("arch").map(|a| a.to_ascii_lowercase());
    let named = match arch.as_deref() {
        // AUDIT_ARCH_AARCH64: the generic syscall table, which has only the *at calls.
        Some("c00000b7") => match num {
            "56" => "openat",
            "437" => "openat2",
            "45" => "truncate",
            "46" => "ftruncate",
            "38" => "renameat",
            "276" => "renameat2",
            "35" => "unlinkat",
            other => other,
        },
        // AUDIT_ARCH_I386 (also 32-bit programs on a 64-bit kernel).
        Some("40000003") => match num {
            "5" => "open",
            "8" => "creat",
            "10" => "unlink",
            "38" => "rename",
            "40" => "rmdir",
            "92" => "truncate",
            "93" => "ftruncate",
            "295" => "openat",
            "301" => "unlinkat",
            "302" => "renameat",
            "353" => "renameat2",
            "437" => "openat2",
            other => other,
        },
        // AUDIT_ARCH_X86_64, and records without an arch.
        _ => x86_64(num),
    };
    named.to_string()
}

fn x86_64(num: &str) -> &str {
    match num {
        "2" => "open",
        "257" => "openat",
        "437" => "openat2",
        "85" => "creat",
        "76" => "truncate",
        "77" => "ftruncate",
        "82" => "rename",
        "264" => "renameat",
        "316" => "renameat2",
        "87" => "unlink",
        "263" => "unlinkat",
        "84" => "rmdir",
        other => other,
    }
}

/// O_WRONLY, O_RDWR, O_CREAT or O_TRUNC in the flags argument (a1 for open, a2 for openat).
fn opens_for_write(sc: &Fields, name: &str) -> bool {
    let arg = if name == "open" { "a1" } else { "a2" };
    sc.get(arg)
        .and_then(|v| u64::from_str_radix(v, 16).ok())
        .is_some_and(|f| f & (0o1 | 0o2 | 0o100 | 0o1000) != 0)
}

/// `key=value` pairs; quoted values are text, unquoted all-hex values of even length
/// (auditd's encoding of names with spaces) are decoded for `name`, `cwd` and `exe`.
fn fields(s: &str) -> Fields {
    let mut out = Fields::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        let k0 = i;
        while i < b.len() && b[i] != b'=' && b[i] != b' ' {
            i += 1;
        }
        if i >= b.len() || b[i] != b'=' {
            continue;
        }
        let key = &s[k0..i];
        i += 1;
        let value = if i < b.len() && b[i] == b'"' {
            let v0 = i + 1;
            let end = s[v0..].find('"').map_or(b.len(), |j| v0 + j);
            i = (end + 1).min(b.len());
            s[v0..end.min(b.len())].to_string()
        } else if i < b.len() && b[i] == b'\'' {
            let v0 = i + 1;
            let end = s[v0..].find('\'').map_or(b.len(), |j| v0 + j);
            i = (end + 1).min(b.len());
            s[v0..end.min(b.len())].to_string()
        } else {
            let v0 = i;
            while i < b.len() && b[i] != b' ' {
                i += 1;
            }
            let raw = &s[v0..i];
            if matches!(key, "name" | "cwd" | "exe" | "proctitle") {
                decode_hex(raw).unwrap_or_else(|| raw.to_string())
            } else {
                raw.to_string()
            }
        };
        out.insert(key.to_string(), value);
    }
    out
}

fn decode_hex(v: &str) -> Option<String> {
    if v.len() < 2 || v.len() % 2 != 0 || !v.bytes().all(|c| c.is_ascii_hexdigit()) || v == "(null)"
    {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..v.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&v[i..i + 2], 16).ok())
        .collect();
    Some(String::from_utf8_lossy(&bytes?).replace('\0', " "))
}

/// A record's header: node, type, event id (epoch ms, serial) and the rest of the line.
type Header<'a> = (Option<&'a str>, &'a str, (i64, u64), &'a str);

/// Splits `[node=HOST ]type=TYPE msg=audit(SEC.MS:SERIAL): rest`.
fn header(line: &str) -> Option<Header<'_>> {
    let mut rest = line;
    let mut node = None;
    if let Some(r) = rest.strip_prefix("node=") {
        let sp = r.find(' ')?;
        node = Some(&r[..sp]);
        rest = r[sp + 1..].trim_start();
    }
    let r = rest.strip_prefix("type=")?;
    let sp = r.find(' ')?;
    let kind = &r[..sp];
    let r = r[sp + 1..].trim_start().strip_prefix("msg=audit(")?;
    let close = r.find(')')?;
    let (stamp, serial) = r[..close].split_once(':')?;
    let (sec, ms) = stamp.split_once('.').unwrap_or((stamp, "0"));
    let millis = sec.parse::<i64>().ok()?.checked_mul(1000)?
        + ms.get(..3).unwrap_or(ms).parse::<i64>().ok()?;
    let body = r[close + 1..].trim_start_matches(':').trim_start();
    Some((node, kind, (millis, serial.parse().ok()?), body))
}

impl Parser for AuditdParser {
    fn parse(&mut self, line: &str) -> Result<Option<Event>, Reject> {
        self.line_no += 1;
        let line = line.trim_end();
        if !line.trim().is_empty() {
            let Some((node, kind, id, body)) = header(line) else {
                return Err(Reject::new(
                    reason::BAD_FIELD,
                    "not an audit record: expected `type=... msg=audit(SECONDS.MILLIS:SERIAL): ...`",
                ));
            };
            // The ENRICHED format appends translations after a 0x1D separator.
            let (raw, enriched) = body.split_once('\u{1d}').unwrap_or((body, ""));
            let mut f = fields(raw);
            for (k, v) in fields(enriched) {
                f.insert(k, v);
            }
            let line_no = self.line_no;
            let g = self.groups.entry(id).or_insert_with(|| Group {
                first_line: line_no,
                ..Group::default()
            });
            if node.is_some() {
                g.node = node.map(str::to_string);
            }
            match kind {
                "SYSCALL" => g.syscall = Some(f),
                "CWD" => g.cwd = f.get("cwd").cloned(),
                "PATH" => g.paths.push(f),
                "EOE" => {
                    let g = self.groups.remove(&id).expect("inserted above");
                    self.finish(id, g);
                }
                _ => {}
            }
            // Groups that never got an EOE.
            let stale: Vec<(i64, u64)> = self
                .groups
                .iter()
                .filter(|(_, g)| self.line_no - g.first_line > GROUP_TIMEOUT_LINES)
                .map(|(k, _)| *k)
                .collect();
            for k in stale {
                let g = self.groups.remove(&k).expect("listed");
                self.finish(k, g);
            }
        }
        self.ready.pop_front().transpose()
    }

    fn flush(&mut self) -> Vec<Result<Event, Reject>> {
        let mut ids: Vec<(i64, u64)> = self.groups.keys().copied().collect();
        ids.sort();
        for id in ids {
            let g = self.groups.remove(&id).expect("listed");
            self.finish(id, g);
        }
        self.ready.drain(..).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_hex() {
        let (node, kind, id, _) =
            header("node=ws12 type=PATH msg=audit(1364481363.243:24287): item=0").unwrap();
        assert_eq!(
            (node, kind, id),
            (Some("ws12"), "PATH", (1364481363243, 24287))
        );
        let f = fields("item=0 name=2F746D702F6120622E747874 nametype=CREATE");
        assert_eq!(f["name"], "/tmp/a b.txt");
        assert!(header("garbage").is_none());
    }

    #[test]
    fn syscall_numbers_follow_the_arch() {
        let sc = |arch: &str, num: &str| {
            fields(&format!("arch={arch} syscall={num} success=yes auid=1000"))
        };
        assert_eq!(syscall_name(&sc("c000003e", "82")), "rename");
        assert_eq!(syscall_name(&sc("c000003e", "38")), "38", "setitimer");
        assert_eq!(syscall_name(&sc("c00000b7", "38")), "renameat");
        assert_eq!(syscall_name(&sc("c00000b7", "56")), "openat");
        assert_eq!(syscall_name(&sc("40000003", "5")), "open");
        assert_eq!(
            syscall_name(&fields("syscall=2")),
            "open",
            "no arch: x86_64"
        );

        // An aarch64 rename (renameat, 38) is a move, not the delete its DELETE item
        // would suggest; an aarch64 openat for writing without a CREATE item is a write.
        let mut p = AuditdParser::new(
            &toml::from_str(
                "name = \"a\"\ntype = \"file\"\nformat = \"auditd\"\n[uids]\n\"1000\" = \"u1\"\n",
            )
            .unwrap(),
        );
        let lines = [
            "type=SYSCALL msg=audit(1741983195.885:240): arch=c00000b7 syscall=38 success=yes exit=0 a0=ffffff9c a1=1 a2=ffffff9c a3=2 items=4 auid=1000 uid=1000",
            "type=PATH msg=audit(1741983195.885:240): item=2 name=\"/media/u/USB/a.csv\" nametype=DELETE",
            "type=PATH msg=audit(1741983195.885:240): item=3 name=\"/media/u/USB/b.csv\" nametype=CREATE",
            "type=EOE msg=audit(1741983195.885:240):",
            "type=SYSCALL msg=audit(1741983196.000:241): arch=c00000b7 syscall=56 success=yes exit=3 a0=ffffff9c a1=1 a2=241 a3=1b6 items=1 auid=1000 uid=1000",
            "type=PATH msg=audit(1741983196.000:241): item=0 name=\"/media/u/USB/b.csv\" nametype=NORMAL",
            "type=EOE msg=audit(1741983196.000:241):",
        ];
        let mut got = Vec::new();
        for l in lines {
            if let Some(e) = p.parse(l).unwrap() {
                got.push(e);
            }
        }
        got.extend(p.flush().into_iter().map(Result::unwrap));
        let kinds: Vec<(Action, Option<&str>)> =
            got.iter().map(|e| (e.action, e.path.as_deref())).collect();
        assert_eq!(
            kinds,
            [
                (Action::FileMove, Some("/media/u/USB/b.csv")),
                (Action::FileWrite, Some("/media/u/USB/b.csv"))
            ]
        );
        assert!(header("type=X msg=audit(99999999999999999999.1:2): x").is_none());
    }
}
