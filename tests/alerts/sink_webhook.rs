//! Webhook sink against a tiny local HTTP server: retries on 5xx, gives up on 4xx.

use crate::support::alert::{sample_n, KEY};
use crate::support::config;
use crate::support::receivers::read_request;
use phiwatch::config::{AlertFormat, Config};
use phiwatch::format;
use phiwatch::pseudonym::{PatientPolicy, PseudonymKey};
use phiwatch::sink;
use std::io::{BufReader, Write};
use std::net::TcpListener;
use std::time::Duration;

struct Request {
    head: String,
    body: String,
}

/// Answers each request with the next status of `statuses` (one request per connection).
fn server(statuses: Vec<u16>) -> (u16, std::thread::JoinHandle<Vec<Request>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        let mut got = Vec::new();
        for status in statuses {
            let (sock, _) = listener.accept().unwrap();
            sock.set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut r = BufReader::new(sock.try_clone().unwrap());
            let (head, body) = read_request(&mut r).expect("a request");
            let mut w = sock;
            write!(
                w,
                "HTTP/1.1 {status} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno"
            )
            .unwrap();
            got.push(Request {
                head,
                body: String::from_utf8(body).unwrap(),
            });
        }
        got
    });
    (port, h)
}

fn webhook_config(dir: &std::path::Path, port: u16) -> Config {
    std::fs::write(dir.join("k"), KEY).unwrap();
    config(
        dir,
        &format!(
            r#"
[[sinks]]
type = "webhook"
url = "http://127.0.0.1:{port}/alerts?token=secret"
headers = {{ Authorization = "Bearer t0ken" }}
pseudonym_key_file = "k"
"#
        ),
    )
}

#[test]
fn retries_5xx_then_delivers_the_same_alert() {
    let (port, srv) = server(vec![503, 500, 200]);
    let dir = tempfile::tempdir().unwrap();
    let set = sink::build(&webhook_config(dir.path(), port)).unwrap();
    let stats = set.stats()[0].stats.clone();
    let a = sample_n(1);
    set.send(&a);
    let got = srv.join().unwrap();
    set.close().unwrap();
    let want = format::render(
        &a,
        AlertFormat::Json,
        &PatientPolicy::Pseudonymised(PseudonymKey::new(KEY)),
    );
    assert_eq!(got.len(), 3);
    for r in &got {
        assert_eq!(r.body, want);
        assert!(
            r.head.starts_with("POST /alerts?token=secret HTTP/1.1"),
            "{}",
            r.head
        );
        let h = r.head.to_ascii_lowercase();
        assert!(h.contains("content-type: application/json"), "{h}");
        assert!(h.contains("authorization: bearer t0ken"), "{h}");
    }
    let s = stats.snapshot();
    assert_eq!(
        (s.sent, s.errors, s.retries, s.failed),
        (1, 2, 2, 0),
        "{s:?}"
    );
}

#[test]
fn gives_up_on_4xx_and_goes_on() {
    let (port, srv) = server(vec![400, 200]);
    let dir = tempfile::tempdir().unwrap();
    let set = sink::build(&webhook_config(dir.path(), port)).unwrap();
    let stats = set.stats()[0].stats.clone();
    set.send(&sample_n(1));
    set.send(&sample_n(2));
    let got = srv.join().unwrap();
    set.flush(Duration::from_secs(10)).unwrap();
    set.close().unwrap();
    assert!(got[0].body.contains("pw-test-0001"));
    assert!(got[1].body.contains("pw-test-0002"));
    let s = stats.snapshot();
    assert_eq!(
        (s.sent, s.errors, s.retries, s.failed),
        (1, 1, 0, 1),
        "{s:?}"
    );
}
