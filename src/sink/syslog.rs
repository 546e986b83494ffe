//! `syslog`: RFC 5424 messages over UDP, TCP or TLS.
//!
//! ```text
//! <PRI>1 TIMESTAMP HOSTNAME phiwatch PROCID MSGID - MSG
//! ```
//!
//! - PRI = facility × 8 + severity: facility `authpriv` (10) unless `facility` says
//!   otherwise; severity from the alert's (low 5 notice, medium 4 warning, high 3 err,
//!   critical 2 crit).
//! - TIMESTAMP is the time of sending (UTC, ms); the alert's own times are in MSG.
//! - MSGID is the detector, cut to 32 printable US-ASCII characters (others become `_`).
//! - No structured data (`-`); MSG is the rendered alert in the sink's `format` (usually
//!   `cef` or `leef`), without a BOM, which CEF/LEEF parsers do not expect.
//!
//! Transports (`protocol`):
//! - `udp` (RFC 5426): one datagram per alert. Delivery: at most once; nothing tells a
//!   sender that a datagram was lost, so these alerts are counted as `unconfirmed`
//!   (`phiwatch_sink_unconfirmed_total`), never as `sent`, and the sink warns at start. Keep alerts under the receiver's limit (rsyslog:
//!   8 KiB by default, `$MaxMessageSize`).
//! - `tcp` (default) (RFC 6587 octet counting): `LEN SP MSG`, LEN in bytes.
//! - `tls` (RFC 5425): the same framing inside TLS 1.2/1.3 (rustls); the server is
//!   verified against `ca_file`, or the system's CA store without it; `cert_file` and
//!   `key_file` (PEM) give a client certificate for mutual TLS.
//!
//! Delivery over `tcp`/`tls`: at least once up to the receiver's socket. A connection is
//! opened on first use; before each write the sink checks that the receiver has not
//! closed it. When a write fails the connection is dropped and the same alert retried on
//! a new connection with exponential backoff (capped at 30 s) without losing it. Syslog
//! has no acknowledgements, so an alert written just before the receiver crashes can
//! still be lost; use `file` or `webhook` next to it where that matters.
//!
//! | key | default | |
//! |---|---|---|
//! | `address` | required | `host:port`; port defaults to 514 (udp, tcp) or 6514 (tls) |
//! | `protocol` | `tcp` | `udp`, `tcp` or `tls` |
//! | `facility` | `authpriv` | a name (`auth`, `authpriv`, `local0`..`local7`, ...) or 0-23 |
//! | `hostname` | this host's name | HOSTNAME field |
//! | `app_name` | `phiwatch` | APP-NAME field |
//! | `ca_file`, `cert_file`, `key_file` | | TLS, PEM files |
//! | `tls_server_name` | host of `address` | name checked in the server's certificate |
//! | `connect_timeout_secs` | 5 | |
//! | `write_timeout_secs` | 10 | |
//!
//! Patient ids default to `pseudonymised`.

use super::PatientIds;
use super::{Permanent, Sink, SinkKind, Target};
use crate::alert::{Alert, Severity};
use crate::format::{syslog_severity, Formatter};
use anyhow::{anyhow, bail, Context, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use serde::Deserialize;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Largest UDP payload over IPv4.
pub const MAX_UDP: usize = 65_507;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Udp,
    Tcp,
    Tls,
}

impl Protocol {
    pub fn default_port(self) -> u16 {
        match self {
            Protocol::Udp | Protocol::Tcp => 514,
            Protocol::Tls => 6514,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsFiles {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub server_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogConfig {
    /// `host:port`, port always present.
    pub address: String,
    pub protocol: Protocol,
    /// 0-23.
    pub facility: u8,
    pub hostname: String,
    pub app_name: String,
    pub tls: TlsFiles,
    pub connect_timeout: Duration,
    pub write_timeout: Duration,
}

impl SyslogConfig {
    /// A config with the defaults; `address` gets the protocol's default port if it has none.
    pub fn new(address: &str, protocol: Protocol) -> SyslogConfig {
        SyslogConfig {
            address: with_port(address, protocol.default_port()),
            protocol,
            facility: 10,
            hostname: local_hostname(),
            app_name: "phiwatch".into(),
            tls: TlsFiles::default(),
            connect_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(10),
        }
    }

    /// The host part of `address` (without brackets for IPv6).
    pub fn host(&self) -> &str {
        let host = self
            .address
            .rsplit_once(':')
            .map_or(self.address.as_str(), |(h, _)| h);
        host.trim_start_matches('[').trim_end_matches(']')
    }
}

/// The keys of a `syslog` sink, as written (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct SyslogSinkConfig {
    pub address: Option<String>,
    pub protocol: Option<String>,
    pub facility: Option<String>,
    pub hostname: Option<String>,
    pub app_name: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub tls_server_name: Option<String>,
    pub connect_timeout_secs: u64,
    pub write_timeout_secs: u64,
}

impl Default for SyslogSinkConfig {
    fn default() -> Self {
        SyslogSinkConfig {
            address: None,
            protocol: None,
            facility: None,
            hostname: None,
            app_name: None,
            ca_file: None,
            cert_file: None,
            key_file: None,
            tls_server_name: None,
            connect_timeout_secs: 5,
            write_timeout_secs: 10,
        }
    }
}

impl SinkKind for SyslogSinkConfig {
    const TYPE: &'static str = "syslog";
    const PATIENT_IDS: PatientIds = PatientIds::Pseudonymised;

    fn target(&self, ctx: &super::Context) -> Result<Box<dyn Target>> {
        let at = ctx.at;
        let protocol = match self
            .protocol
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("tcp") => Protocol::Tcp,
            Some("udp") => Protocol::Udp,
            Some("tls") => Protocol::Tls,
            Some(p) => {
                bail!("{at}: protocol = {p:?} is not known; use \"udp\", \"tcp\" or \"tls\"")
            }
        };
        let Some(address) = self.address.as_deref().filter(|a| !a.trim().is_empty()) else {
            bail!("{at}: a syslog sink needs `address`, e.g. address = \"siem.example:6514\"");
        };
        let mut c = SyslogConfig::new(address.trim(), protocol);
        if let Some(f) = &self.facility {
            c.facility = parse_facility(f).with_context(|| {
                format!("{at}: facility = {f:?} is not known; use a name such as \"authpriv\" or \"local4\", or 0-23")
            })?;
        }
        if let Some(h) = &self.hostname {
            c.hostname = header_field(h, 255);
        }
        if let Some(a) = &self.app_name {
            c.app_name = header_field(a, 48);
        }
        c.tls = TlsFiles {
            ca_file: self.ca_file.as_deref().map(|p| ctx.path(p)),
            cert_file: self.cert_file.as_deref().map(|p| ctx.path(p)),
            key_file: self.key_file.as_deref().map(|p| ctx.path(p)),
            server_name: self.tls_server_name.clone(),
        };
        if protocol != Protocol::Tls && c.tls != TlsFiles::default() {
            bail!("{at}: ca_file, cert_file, key_file and tls_server_name need protocol = \"tls\"");
        }
        if c.tls.cert_file.is_some() != c.tls.key_file.is_some() {
            bail!("{at}: a client certificate needs both `cert_file` and `key_file`");
        }
        c.connect_timeout = Duration::from_secs(self.connect_timeout_secs.max(1));
        c.write_timeout = Duration::from_secs(self.write_timeout_secs.max(1));
        Ok(Box::new(c))
    }
}

impl Target for SyslogConfig {
    /// Reads the TLS files now, so a wrong path fails at start.
    fn open(&self, _: &Formatter) -> Result<Box<dyn Sink>> {
        Ok(Box::new(SyslogSink::new(self.clone())?))
    }
}

fn with_port(address: &str, default: u16) -> String {
    if address.parse::<SocketAddr>().is_ok() {
        return address.to_string();
    }
    if let Some((_, port)) = address.rsplit_once(':') {
        if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && !address.ends_with(']') {
            let colons = address.matches(':').count();
            if colons == 1 || address.starts_with('[') {
                return address.to_string();
            }
        }
    }
    if address.contains(':') && !address.starts_with('[') {
        format!("[{address}]:{default}")
    } else {
        format!("{address}:{default}")
    }
}

/// Facility by name or number.
pub fn parse_facility(s: &str) -> Option<u8> {
    const NAMES: [&str; 24] = [
        "kern",
        "user",
        "mail",
        "daemon",
        "auth",
        "syslog",
        "lpr",
        "news",
        "uucp",
        "cron",
        "authpriv",
        "ftp",
        "ntp",
        "security",
        "console",
        "solaris-cron",
        "local0",
        "local1",
        "local2",
        "local3",
        "local4",
        "local5",
        "local6",
        "local7",
    ];
    let s = s.trim().to_ascii_lowercase();
    if let Ok(n) = s.parse::<u8>() {
        return (n < 24).then_some(n);
    }
    NAMES.iter().position(|n| *n == s).map(|i| i as u8)
}

/// This host's name, as a syslog HOSTNAME.
pub fn local_hostname() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    header_field(raw.trim(), 255)
}

/// A header field: printable US-ASCII (33-126) only, others as `_`, at most `max`
/// characters; `-` (NILVALUE) when empty.
pub fn header_field(s: &str, max: usize) -> String {
    let out: String = s
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .take(max)
        .collect();
    if out.is_empty() {
        "-".into()
    } else {
        out
    }
}

/// One RFC 5424 message, without any transport framing.
pub fn format_message(
    cfg: &SyslogConfig,
    procid: &str,
    severity: Severity,
    detector: &str,
    msg: &str,
) -> String {
    let pri = u16::from(cfg.facility) * 8 + u16::from(syslog_severity(severity));
    let ts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    format!(
        "<{pri}>1 {ts} {} {} {procid} {} - {msg}",
        cfg.hostname,
        cfg.app_name,
        header_field(detector, 32)
    )
}

enum Conn {
    Udp(UdpSocket, SocketAddr),
    Tcp(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

pub struct SyslogSink {
    cfg: SyslogConfig,
    tls: Option<Arc<ClientConfig>>,
    conn: Option<Conn>,
    procid: String,
    buf: Vec<u8>,
}

impl SyslogSink {
    /// Reads the TLS files now (so a wrong path fails at start); connects on first send.
    pub fn new(cfg: SyslogConfig) -> Result<SyslogSink> {
        if cfg.protocol == Protocol::Udp {
            tracing::warn!(address = %cfg.address, "syslog over UDP cannot confirm delivery: a lost datagram is lost silently; alerts sent this way are counted in phiwatch_sink_unconfirmed_total, not as sent; use protocol = \"tcp\" or \"tls\" for alerts that must arrive");
        }
        let tls = match cfg.protocol {
            Protocol::Tls => Some(Arc::new(tls_client_config(&cfg.tls)?)),
            _ => None,
        };
        if cfg.protocol == Protocol::Tls {
            server_name(&cfg)?;
        }
        Ok(SyslogSink {
            cfg,
            tls,
            conn: None,
            procid: std::process::id().to_string(),
            buf: Vec::with_capacity(1024),
        })
    }

    pub fn config(&self) -> &SyslogConfig {
        &self.cfg
    }

    fn resolve(&self) -> Result<Vec<SocketAddr>> {
        let addrs: Vec<SocketAddr> = self
            .cfg
            .address
            .to_socket_addrs()
            .with_context(|| format!("cannot resolve syslog address {}", self.cfg.address))?
            .collect();
        if addrs.is_empty() {
            bail!("syslog address {} resolves to nothing", self.cfg.address);
        }
        Ok(addrs)
    }

    fn connect_tcp(&self) -> Result<TcpStream> {
        let mut last = None;
        for addr in self.resolve()? {
            match TcpStream::connect_timeout(&addr, self.cfg.connect_timeout) {
                Ok(s) => {
                    s.set_write_timeout(Some(self.cfg.write_timeout))?;
                    s.set_read_timeout(Some(self.cfg.connect_timeout))?;
                    let _ = s.set_nodelay(true);
                    return Ok(s);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(anyhow!(
            "cannot connect to syslog receiver {} ({}): {}",
            self.cfg.address,
            proto_name(self.cfg.protocol),
            last.map_or_else(|| "no address".to_string(), |e| e.to_string())
        ))
    }

    fn connect(&mut self) -> Result<Conn> {
        Ok(match self.cfg.protocol {
            Protocol::Udp => {
                let addr = self.resolve()?[0];
                let bind: SocketAddr = if addr.is_ipv4() {
                    "0.0.0.0:0".parse().expect("literal")
                } else {
                    "[::]:0".parse().expect("literal")
                };
                let sock = UdpSocket::bind(bind).context("cannot open a UDP socket")?;
                Conn::Udp(sock, addr)
            }
            Protocol::Tcp => Conn::Tcp(self.connect_tcp()?),
            Protocol::Tls => {
                let mut sock = self.connect_tcp()?;
                let config = self.tls.clone().expect("tls config for tls");
                let mut conn = ClientConnection::new(config, server_name(&self.cfg)?)
                    .context("cannot start a TLS session")?;
                while conn.is_handshaking() {
                    conn.complete_io(&mut sock).with_context(|| {
                        format!(
                            "TLS handshake with syslog receiver {} failed; check `ca_file` (the CA \
                             that signed the receiver's certificate), `tls_server_name`, and \
                             `cert_file`/`key_file` if the receiver wants a client certificate",
                            self.cfg.address
                        )
                    })?;
                }
                Conn::Tls(Box::new(StreamOwned::new(conn, sock)))
            }
        })
    }

    fn write_frame(&mut self, msg: &str) -> Result<()> {
        if let Some(conn) = &mut self.conn {
            let closed = match conn {
                Conn::Udp(..) => false,
                Conn::Tcp(s) => tcp_peer_closed(s),
                Conn::Tls(s) => tls_peer_closed(s),
            };
            if closed {
                tracing::info!(address = %self.cfg.address, "syslog receiver closed the connection; reconnecting");
                self.conn = None;
            }
        }
        if self.conn.is_none() {
            self.conn = Some(self.connect()?);
        }
        self.buf.clear();
        if self.cfg.protocol != Protocol::Udp {
            self.buf
                .extend_from_slice(format!("{} ", msg.len()).as_bytes());
        }
        self.buf.extend_from_slice(msg.as_bytes());
        let result = match self.conn.as_mut().expect("connected") {
            Conn::Udp(sock, addr) => {
                if self.buf.len() > MAX_UDP {
                    return Err(Permanent(format!(
                        "alert of {} bytes is too large for one UDP datagram; use protocol = \"tcp\"",
                        self.buf.len()
                    ))
                    .into());
                }
                sock.send_to(&self.buf, *addr).map(|_| ())
            }
            Conn::Tcp(s) => s.write_all(&self.buf).and_then(|_| s.flush()),
            Conn::Tls(s) => s.write_all(&self.buf).and_then(|_| s.flush()),
        };
        if let Err(e) = result {
            self.conn = None;
            return Err(e).with_context(|| {
                format!(
                    "cannot send to syslog receiver {} ({})",
                    self.cfg.address,
                    proto_name(self.cfg.protocol)
                )
            });
        }
        Ok(())
    }
}

fn proto_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Udp => "udp",
        Protocol::Tcp => "tcp",
        Protocol::Tls => "tls",
    }
}

impl Sink for SyslogSink {
    fn send(&mut self, line: &str) -> Result<()> {
        let msg = format_message(&self.cfg, &self.procid, Severity::Low, "-", line);
        self.write_frame(&msg)
    }

    fn confirms_delivery(&self) -> bool {
        self.cfg.protocol != Protocol::Udp
    }

    fn send_alert(&mut self, alert: &Alert, line: &str) -> Result<()> {
        let msg = format_message(
            &self.cfg,
            &self.procid,
            alert.severity,
            &alert.detector,
            line,
        );
        self.write_frame(&msg)
    }

    fn flush(&mut self) -> Result<()> {
        match &mut self.conn {
            Some(Conn::Tcp(s)) => s.flush()?,
            Some(Conn::Tls(s)) => s.flush()?,
            _ => {}
        }
        Ok(())
    }
}

impl Drop for SyslogSink {
    fn drop(&mut self) {
        if let Some(Conn::Tls(s)) = &mut self.conn {
            s.conn.send_close_notify();
            let _ = s.flush();
        }
    }
}

/// Reads whatever the receiver sent without blocking: true when it closed the connection.
fn tcp_peer_closed(s: &mut TcpStream) -> bool {
    if s.set_nonblocking(true).is_err() {
        return true;
    }
    let mut buf = [0u8; 512];
    let closed = loop {
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(_) => continue, // a syslog receiver has nothing to say; discard
            Err(e) if e.kind() == ErrorKind::WouldBlock => break false,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => break true,
        }
    };
    closed || s.set_nonblocking(false).is_err()
}

/// Like [`tcp_peer_closed`], through TLS (processes tickets, alerts, close_notify).
fn tls_peer_closed(s: &mut StreamOwned<ClientConnection, TcpStream>) -> bool {
    if s.sock.set_nonblocking(true).is_err() {
        return true;
    }
    let closed = loop {
        match s.conn.read_tls(&mut s.sock) {
            Ok(0) => break true,
            Ok(_) => match s.conn.process_new_packets() {
                Err(_) => break true,
                Ok(st) => {
                    if st.peer_has_closed() {
                        break true;
                    }
                    let n = st.plaintext_bytes_to_read();
                    if n > 0 {
                        let mut sink = vec![0u8; n];
                        let _ = s.conn.reader().read(&mut sink);
                    }
                }
            },
            Err(e) if e.kind() == ErrorKind::WouldBlock => break false,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => break true,
        }
    };
    closed || s.sock.set_nonblocking(false).is_err()
}

fn server_name(cfg: &SyslogConfig) -> Result<ServerName<'static>> {
    let name = cfg
        .tls
        .server_name
        .clone()
        .unwrap_or_else(|| cfg.host().to_string());
    ServerName::try_from(name.clone()).map_err(|_| {
        anyhow!("{name:?} is not a valid TLS server name; set `tls_server_name` to the name in the receiver's certificate")
    })
}

/// The rustls client config of a `tls` sink (ring provider, TLS 1.2 and 1.3).
pub fn tls_client_config(files: &TlsFiles) -> Result<ClientConfig> {
    let mut roots = RootCertStore::empty();
    match &files.ca_file {
        Some(ca) => {
            let certs = read_certs(ca, "ca_file")?;
            for c in certs {
                roots.add(c).with_context(|| {
                    format!(
                        "ca_file {}: a certificate in it is not usable as a CA",
                        ca.display()
                    )
                })?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::warn!(error = %e, "reading the system CA store");
            }
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                bail!("no CA certificates found in the system store; set `ca_file` to the CA that signed the syslog receiver's certificate");
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS setup")?
        .with_root_certificates(roots);
    Ok(match (&files.cert_file, &files.key_file) {
        (Some(cert), Some(key)) => {
            let chain = read_certs(cert, "cert_file")?;
            let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                anyhow!(
                    "key_file {}: no usable PEM private key ({e}); give the key of cert_file in PEM (PKCS#8, PKCS#1 or SEC1)",
                    key.display()
                )
            })?;
            builder
                .with_client_auth_cert(chain, key_der)
                .context("cert_file and key_file do not make a usable client certificate")?
        }
        _ => builder.with_no_client_auth(),
    })
}

fn read_certs(path: &std::path::Path, key: &str) -> Result<Vec<CertificateDer<'static>>> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read {key} {}; fix the path", path.display()))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| anyhow!("{key} {}: not valid PEM ({e})", path.display()))?;
    if certs.is_empty() {
        bail!(
            "{key} {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        );
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_and_hosts() {
        assert_eq!(with_port("siem.example", 6514), "siem.example:6514");
        assert_eq!(with_port("siem.example:1514", 6514), "siem.example:1514");
        assert_eq!(with_port("::1", 514), "[::1]:514");
        assert_eq!(with_port("[::1]:601", 514), "[::1]:601");
        let c = SyslogConfig::new("[::1]:601", Protocol::Tcp);
        assert_eq!(c.host(), "::1");
        assert_eq!(parse_facility("authpriv"), Some(10));
        assert_eq!(parse_facility("local4"), Some(20));
        assert_eq!(parse_facility("24"), None);
        assert_eq!(header_field("snoop family é", 32), "snoop_family__");
        assert_eq!(header_field(&"x".repeat(40), 32).len(), 32);
    }
}
