//! Receivers for network sinks in tests: a raw TCP receiver (syslog) and a webhook
//! receiver answering 200, each keeping what it got as text.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The alert ids of JSON lines.
pub fn ids(lines: &[String]) -> BTreeSet<String> {
    lines
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["id"].as_str().unwrap().to_string()
        })
        .collect()
}

/// Everything received on `listener`, all connections, as text.
pub fn receive_all(listener: TcpListener) -> Arc<Mutex<String>> {
    let got = Arc::new(Mutex::new(String::new()));
    let g = got.clone();
    std::thread::spawn(move || {
        for sock in listener.incoming() {
            let Ok(mut sock) = sock else { continue };
            let g = g.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 65536];
                while let Ok(n) = sock.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    g.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
    });
    got
}

/// A webhook receiver answering 200 to every request; the bodies, as text.
pub fn webhook_receiver(listener: TcpListener) -> Arc<Mutex<String>> {
    let got = Arc::new(Mutex::new(String::new()));
    let g = got.clone();
    std::thread::spawn(move || {
        for sock in listener.incoming() {
            let Ok(sock) = sock else { continue };
            let g = g.clone();
            std::thread::spawn(move || {
                let _ = sock.set_read_timeout(Some(Duration::from_secs(30)));
                let mut r = BufReader::new(sock.try_clone().unwrap());
                let mut w = sock;
                loop {
                    let Some((_, body)) = read_request(&mut r) else {
                        return;
                    };
                    g.lock().unwrap().push_str(&String::from_utf8_lossy(&body));
                    if w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    got
}

pub fn missing(want: &BTreeSet<String>, got: &str) -> usize {
    want.iter().filter(|id| !got.contains(id.as_str())).count()
}

/// How many times each of `want` occurs in `got`, for those that occur more than once.
pub fn repeated(want: &BTreeSet<String>, got: &str) -> Vec<(String, usize)> {
    want.iter()
        .map(|id| (id.clone(), got.matches(id.as_str()).count()))
        .filter(|(_, n)| *n > 1)
        .collect()
}

/// Reads one HTTP/1.1 request with a `Content-Length` body: its head and its body, or
/// None at the end of the connection or on a read error.
pub fn read_request(r: &mut BufReader<TcpStream>) -> Option<(String, Vec<u8>)> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        match r.read_line(&mut line) {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some((head, body))
}
