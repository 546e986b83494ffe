//! What the integration tests share, in one place: the crafted hospital, the phiwatch
//! program as a child process, real brokers (tansu) and syslog servers (rsyslogd) on free
//! loopback ports, a topic reader, helpers for the tailer and the parsers, the sample
//! alert with small CEF and LEEF parsers, and the locks that keep tests apart where they
//! would share something global. Test data stays under `tests/fixtures/`.
#![allow(dead_code)]

pub mod alert;
pub mod hospital;
pub mod parse;
pub mod process;
pub mod receivers;
pub mod rsyslog;
pub mod serial;
pub mod tail;
pub mod tansu;
pub mod topic;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The repository's root: shipped detectors, deploy files, `Cargo.toml`.
pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// `tests/fixtures/<rel>`, the path.
pub fn fixture_path(rel: &str) -> PathBuf {
    Path::new(ROOT).join("tests/fixtures").join(rel)
}

/// `tests/fixtures/<rel>`, the text.
pub fn fixture(rel: &str) -> String {
    let path = fixture_path(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A loopback TCP port nobody listens on (bound, then closed again: connections to it are
/// refused until something else takes it).
pub fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits (bounded) until `f` is true, looking every 25 ms.
pub fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// `GET path` from 127.0.0.1:`port` (a daemon's `/metrics` and health endpoints): the
/// status and the body, or None while nothing answers.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.get(9..12)?.parse().ok()?;
    let body = out
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_string())
        .unwrap_or_default();
    Some((status, body))
}

/// A file's lines; none while it does not exist.
pub fn lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// A file's lines, sorted (the order alerts come out in is not what tests compare).
pub fn sorted_lines(p: &Path) -> Vec<String> {
    let mut v = lines(p);
    v.sort();
    v
}

/// A file of JSON lines, parsed; none while it does not exist.
pub fn json_lines(p: &Path) -> Vec<serde_json::Value> {
    lines(p)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A config from TOML text, its relative paths resolved against `dir`.
pub fn config(dir: &Path, toml: &str) -> phiwatch::config::Config {
    let mut cfg = phiwatch::config::Config::from_toml(toml).expect("test config parses");
    cfg.resolve(dir);
    cfg
}
