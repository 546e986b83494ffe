//! Syslog sink against a real rsyslogd (TCP octet counting and UDP), reconnects against
//! small local listeners, and TLS (with a client certificate) against an in-process rustls
//! server using a CA made at test time. Only 127.0.0.1 is used.
//!
//! rsyslogd must be installed (`apt-get install -y rsyslog`); set PHIWATCH_SKIP_RSYSLOG=1
//! to skip the rsyslog test where it cannot be.

use crate::support::alert::{parse_cef, sample_n, send_samples, KEY};
use crate::support::rsyslog::Rsyslog;
use crate::support::{config, free_tcp_port, wait_for};
use phiwatch::alert::Alert;
use phiwatch::config::{AlertFormat, Config};
use phiwatch::format::{self, syslog_severity};
use phiwatch::pseudonym::{pseudonymise, PatientPolicy, PseudonymKey};
use phiwatch::sink;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::time::Duration;

const HOST: &str = "phiwatch-test";

fn write_key(dir: &Path) -> PathBuf {
    let p = dir.join("pseudonym.key");
    std::fs::write(&p, KEY).unwrap();
    p
}

/// `pri|app|procid|msgid|host|msg` as the rsyslog template writes it.
struct Received {
    pri: u16,
    app: String,
    procid: String,
    msgid: String,
    host: String,
    msg: String,
}

fn split_received(line: &str) -> Received {
    let p: Vec<&str> = line.splitn(6, '|').collect();
    assert_eq!(p.len(), 6, "{line}");
    Received {
        pri: p[0].parse().unwrap(),
        app: p[1].into(),
        procid: p[2].into(),
        msgid: p[3].into(),
        host: p[4].into(),
        msg: p[5].into(),
    }
}

#[test]
fn cef_alerts_arrive_intact_in_rsyslog_over_tcp_and_udp() {
    let Some(rs) = Rsyslog::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let key_file = write_key(dir.path());
    let cfg = config(
        dir.path(),
        &format!(
            r#"
[[sinks]]
name = "tcp"
type = "syslog"
address = "127.0.0.1:{}"
protocol = "tcp"
format = "cef"
hostname = "{HOST}"
pseudonym_key_file = "{}"

[[sinks]]
name = "udp"
type = "syslog"
address = "127.0.0.1:{}"
protocol = "udp"
format = "cef"
hostname = "{HOST}"
pseudonym_key_file = "{}"
"#,
            rs.tcp_port,
            key_file.display(),
            rs.udp_port,
            key_file.display()
        ),
    );
    let set = sink::build(&cfg).unwrap();
    let mut alerts: Vec<Alert> = (0..6).map(sample_n).collect();
    // One larger alert: 5 KB of reasons in one message.
    alerts[5]
        .reasons
        .push(format!("long | reason = {}", "x\\y ".repeat(1200)));
    for a in &alerts {
        set.send(a);
    }
    set.flush(Duration::from_secs(20)).unwrap();
    let stats = set.stats();
    set.close().unwrap();
    for s in &stats {
        let snap = s.stats.snapshot();
        // UDP cannot know a datagram arrived: its alerts are unconfirmed, never "sent".
        let want = if s.name == "udp" {
            (0, 6, 0)
        } else {
            (6, 0, 0)
        };
        assert_eq!(
            (snap.sent, snap.unconfirmed, snap.errors),
            want,
            "{}: {snap:?}",
            s.name
        );
    }

    let key = PseudonymKey::new(KEY);
    let policy = PatientPolicy::Pseudonymised(key.clone());
    let p1 = pseudonymise(&key, "MRN00012345");
    for file in ["tcp.log", "udp.log"] {
        wait_for(file, Duration::from_secs(15), || {
            rs.lines(file)
                .iter()
                .filter(|l| l.contains("CEF:0|"))
                .count()
                >= 6
        });
        let got: Vec<Received> = rs
            .lines(file)
            .iter()
            .filter(|l| l.contains("CEF:0|"))
            .map(|l| split_received(l))
            .collect();
        assert_eq!(got.len(), 6, "{file}");
        for a in &alerts {
            let want = format::render(a, AlertFormat::Cef, &policy);
            let r = got
                .iter()
                .find(|r| parse_cef(&r.msg).get("externalId") == Some(a.id.as_str()))
                .unwrap_or_else(|| panic!("{file}: alert {} missing", a.id));
            assert_eq!(r.msg, want, "{file}: message changed on the way");
            assert_eq!(r.pri, 10 * 8 + u16::from(syslog_severity(a.severity)));
            assert_eq!(r.app, "phiwatch");
            assert_eq!(r.procid, std::process::id().to_string());
            assert_eq!(r.msgid, a.detector);
            assert_eq!(r.host, HOST);
            let cef = parse_cef(&r.msg);
            assert_eq!(cef.get("suser"), Some(a.user.as_str()));
            assert_eq!(cef.get("cnt"), Some(a.events.to_string().as_str()));
            assert_eq!(cef.get("cn1"), Some(a.score.to_string().as_str()));
            // Reasons past CEF's 4,000 characters for cs* are cut, with the marker.
            let reasons = PatientPolicy::apply(&policy, a).reasons.join("; ");
            let reasons = phiwatch::format::cef::fit(&reasons, phiwatch::format::cef::MAX_CUSTOM);
            assert_eq!(cef.get("cs2"), Some(reasons.as_ref()));
            assert!(cef.get("duser").unwrap().starts_with(&p1));
            assert!(!r.msg.to_lowercase().contains("mrn"), "patient id leaked");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Reconnects

/// Reads one octet-counted frame; None at a clean end of stream.
fn read_frame(r: &mut impl BufRead) -> Option<String> {
    let mut len = Vec::new();
    if r.read_until(b' ', &mut len).ok()? == 0 {
        return None;
    }
    let n: usize = std::str::from_utf8(&len[..len.len() - 1])
        .unwrap()
        .parse()
        .expect("octet count");
    let mut buf = vec![0; n];
    r.read_exact(&mut buf).ok()?;
    Some(String::from_utf8(buf).unwrap())
}

fn alert_id_of(frame: &str) -> String {
    let cef = &frame[frame.find("CEF:0|").expect("CEF in frame")..];
    parse_cef(cef).get("externalId").unwrap().to_string()
}

fn tcp_sink_config(dir: &Path, port: u16) -> Config {
    config(
        dir,
        &format!(
            "[[sinks]]\ntype = \"syslog\"\naddress = \"127.0.0.1:{port}\"\nprotocol = \"tcp\"\n\
             format = \"cef\"\npatient_ids = \"omitted\"\n"
        ),
    )
}

#[test]
fn tcp_reconnects_when_the_receiver_drops_the_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (closed_tx, closed_rx) = mpsc::channel();
    let server = std::thread::spawn(move || {
        let mut frames = Vec::new();
        // First connection: read one alert, then hang up.
        let (c1, _) = listener.accept().unwrap();
        frames.push(read_frame(&mut BufReader::new(&c1)).unwrap());
        drop(c1);
        closed_tx.send(()).unwrap();
        // Second connection: the rest.
        let (c2, _) = listener.accept().unwrap();
        c2.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut r = BufReader::new(c2);
        while frames.len() < 5 {
            frames.push(read_frame(&mut r).expect("frame on the new connection"));
        }
        frames
    });
    let dir = tempfile::tempdir().unwrap();
    let set = sink::build(&tcp_sink_config(dir.path(), port)).unwrap();
    set.send(&sample_n(0));
    closed_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    std::thread::sleep(Duration::from_millis(100)); // let the FIN arrive
    send_samples(&set, 1..5);
    let frames = server.join().unwrap();
    let ids: Vec<String> = frames.iter().map(|f| alert_id_of(f)).collect();
    let want: Vec<String> = (0..5).map(|n| sample_n(n).id).collect();
    assert_eq!(ids, want, "no alert lost or reordered");
    let stats = set.stats()[0].stats.clone();
    set.close().unwrap();
    assert_eq!(stats.snapshot().sent, 5);
}

#[test]
fn tcp_keeps_the_alert_until_the_receiver_comes_up() {
    let port = free_tcp_port();
    let dir = tempfile::tempdir().unwrap();
    let set = sink::build(&tcp_sink_config(dir.path(), port)).unwrap();
    let stats = set.stats()[0].stats.clone();
    set.send(&sample_n(0));
    set.send(&sample_n(1));
    wait_for("a failed attempt", Duration::from_secs(10), || {
        stats.snapshot().errors >= 1
    });
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let (c, _) = listener.accept().unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut r = BufReader::new(c);
    let ids: Vec<String> = (0..2)
        .map(|_| alert_id_of(&read_frame(&mut r).unwrap()))
        .collect();
    assert_eq!(ids, [sample_n(0).id, sample_n(1).id]);
    set.close().unwrap();
    let s = stats.snapshot();
    assert_eq!(s.sent, 2);
    assert!(s.retries >= 1 && s.failed == 0, "{s:?}");
}

// ---------------------------------------------------------------------------------------
// TLS

struct Pki {
    ca_pem: String,
    server_chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    server_key: rustls::pki_types::PrivateKeyDer<'static>,
    client_cert_pem: String,
    client_key_pem: String,
}

fn make_pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "phiwatch test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate().unwrap();
    let server_cert =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&server_key, &issuer)
            .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let client_cert = CertificateParams::new(vec!["phiwatch-client".to_string()])
        .unwrap()
        .signed_by(&client_key, &issuer)
        .unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        server_chain: vec![server_cert.der().clone()],
        server_key: rustls::pki_types::PrivateKeyDer::Pkcs8(server_key.serialize_der().into()),
        client_cert_pem: client_cert.pem(),
        client_key_pem: client_key.serialize_pem(),
    }
}

/// A rustls syslog receiver that requires a client certificate from the CA; returns the
/// frames of the first connection that completes a handshake.
fn tls_server(pki: &Pki, want: usize) -> (u16, std::thread::JoinHandle<Vec<String>>) {
    use rustls::pki_types::pem::PemObject;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from_pem_slice(pki.ca_pem.as_bytes()).unwrap())
        .unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(pki.server_chain.clone(), pki.server_key.clone_key())
            .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || loop {
        let (sock, _) = listener.accept().unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let conn = rustls::ServerConnection::new(config.clone()).unwrap();
        let mut r = BufReader::new(rustls::StreamOwned::new(conn, sock));
        let mut frames = Vec::new();
        while frames.len() < want {
            match read_frame(&mut r) {
                Some(f) => frames.push(f),
                None => break,
            }
        }
        if frames.len() == want {
            return frames;
        }
    });
    (port, handle)
}

#[test]
fn tls_with_ca_file_and_client_certificate() {
    let pki = make_pki();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), &pki.ca_pem).unwrap();
    std::fs::write(dir.path().join("client.pem"), &pki.client_cert_pem).unwrap();
    std::fs::write(dir.path().join("client.key"), &pki.client_key_pem).unwrap();
    let key_file = write_key(dir.path());
    let (port, server) = tls_server(&pki, 3);
    let cfg = config(
        dir.path(),
        &format!(
            r#"
[[sinks]]
type = "syslog"
address = "127.0.0.1:{port}"
protocol = "tls"
format = "cef"
hostname = "{HOST}"
tls_server_name = "localhost"
ca_file = "ca.pem"
cert_file = "client.pem"
key_file = "client.key"
pseudonym_key_file = "{}"
"#,
            key_file.display()
        ),
    );
    let set = sink::build(&cfg).unwrap();
    send_samples(&set, 0..3);
    let frames = server.join().unwrap();
    set.close().unwrap();
    let policy = PatientPolicy::Pseudonymised(PseudonymKey::new(KEY));
    for (n, f) in frames.iter().enumerate() {
        let a = sample_n(n);
        let head = format!("<{}>1 ", 80 + u16::from(syslog_severity(a.severity)));
        assert!(f.starts_with(&head), "{f}");
        let fields: Vec<&str> = f.splitn(8, ' ').collect();
        assert_eq!(
            fields[2..7],
            [
                HOST,
                "phiwatch",
                &std::process::id().to_string(),
                "same-surname",
                "-"
            ]
        );
        assert_eq!(fields[7], format::render(&a, AlertFormat::Cef, &policy));
    }
}

#[test]
fn tls_refuses_a_server_from_another_ca() {
    let pki = make_pki();
    let other = make_pki();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("other-ca.pem"), &other.ca_pem).unwrap();
    let (port, _server) = tls_server(&pki, 1);
    let cfg = config(
        dir.path(),
        &format!(
            "[[sinks]]\ntype = \"syslog\"\naddress = \"127.0.0.1:{port}\"\nprotocol = \"tls\"\n\
             tls_server_name = \"localhost\"\nca_file = \"other-ca.pem\"\npatient_ids = \"omitted\"\n\
             close_timeout_secs = 1\n"
        ),
    );
    let set = sink::build(&cfg).unwrap();
    let stats = set.stats()[0].stats.clone();
    set.send(&sample_n(0));
    wait_for("a failed handshake", Duration::from_secs(10), || {
        stats.snapshot().errors >= 1
    });
    assert!(set.close().is_err(), "the alert was not delivered");
    let s = stats.snapshot();
    assert_eq!((s.sent, s.failed), (0, 1), "{s:?}");
}
