//! A real rsyslogd for tests: TCP and UDP inputs on free loopback ports, each writing
//! the header fields and the message untouched to its own file. Shared by the syslog sink
//! tests and the end-to-end run tests.

use super::{free_tcp_port, free_udp_port, wait_for};
use std::net::{TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Rsyslog {
    child: Child,
    pub dir: tempfile::TempDir,
    pub tcp_port: u16,
    pub udp_port: u16,
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn find_rsyslogd() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|d| d.join("rsyslogd"))
        .find(|p| p.is_file())
}

impl Rsyslog {
    /// Starts rsyslogd with imtcp and imudp on free loopback ports, each writing the
    /// header fields and the message untouched to its own file.
    pub fn start() -> Option<Rsyslog> {
        if std::env::var("PHIWATCH_SKIP_RSYSLOG").as_deref() == Ok("1") {
            eprintln!("PHIWATCH_SKIP_RSYSLOG=1: skipping the rsyslog test");
            return None;
        }
        let bin = find_rsyslogd().unwrap_or_else(|| {
            panic!(
                "rsyslogd is not installed: install it with `apt-get install -y rsyslog` \
                 (or set PHIWATCH_SKIP_RSYSLOG=1 to skip this test)"
            )
        });
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let (tcp_port, udp_port) = (free_tcp_port(), free_udp_port());
        let conf = format!(
            r#"
global(workDirectory="{d}" maxMessageSize="64k" parser.escapeControlCharactersOnReceive="off")
module(load="imtcp")
module(load="imudp")
template(name="raw" type="string" string="%pri%|%app-name%|%procid%|%msgid%|%hostname%|%msg%\n")
ruleset(name="tcp") {{ action(type="omfile" file="{d}/tcp.log" template="raw") }}
ruleset(name="udp") {{ action(type="omfile" file="{d}/udp.log" template="raw") }}
input(type="imtcp" address="127.0.0.1" port="{tcp_port}" ruleset="tcp")
input(type="imudp" address="127.0.0.1" port="{udp_port}" ruleset="udp")
"#
        );
        let conf_path = dir.path().join("rsyslog.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new(bin)
            .arg("-n")
            .arg("-f")
            .arg(&conf_path)
            .arg("-i")
            .arg(dir.path().join("pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start rsyslogd");
        let r = Rsyslog {
            child,
            dir,
            tcp_port,
            udp_port,
        };
        wait_for("rsyslogd to listen on TCP", Duration::from_secs(15), || {
            TcpStream::connect(("127.0.0.1", tcp_port)).is_ok()
        });
        // UDP has no handshake: send probes until one is written.
        let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
        wait_for("rsyslogd to receive UDP", Duration::from_secs(15), || {
            let _ = probe.send_to(b"<13>1 - probe - - - - probe", ("127.0.0.1", udp_port));
            std::thread::sleep(Duration::from_millis(50));
            r.lines("udp.log").iter().any(|l| l.ends_with("|probe"))
        });
        Some(r)
    }

    pub fn lines(&self, file: &str) -> Vec<String> {
        super::lines(&self.dir.path().join(file))
    }
}
