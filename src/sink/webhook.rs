//! `webhook`: an HTTP(S) POST of each alert to `url`.
//!
//! The body is the rendered alert (`format`, `json` by default: exactly the contract alert
//! JSON), with `Content-Type: application/json` for json/ecs/ocsf and `text/plain` for
//! cef/leef.
//!
//! Delivery: at least once. A 2xx answer is success. Connection errors, timeouts, 408,
//! 429 and 5xx are retried with exponential backoff (capped at 30 s) without losing the
//! alert; any other answer (4xx, or a 3xx: redirects are not followed for a POST) is
//! logged with its status and the alert counted as `failed`, since sending it again
//! would get the same answer. Response bodies are not read into logs.
//!
//! | key | default | |
//! |---|---|---|
//! | `url` | required | `http://` or `https://` |
//! | `headers` | none | table of extra headers, e.g. `headers = { Authorization = "Bearer ..." }` |
//! | `timeout_secs` | 10 | for the whole request |
//! | `ca_file` | system CAs (webpki roots) | PEM CA certificates for an `https` url |
//! | `cert_file`, `key_file` | none | PEM client certificate and key for mutual TLS |
//!
//! Patient ids default to `pseudonymised`. The url's query string (which may hold a
//! token) is never logged.

use super::PatientIds;
use super::{Permanent, Sink, SinkKind, Target};
use crate::format::Formatter;
use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use ureq::tls::{Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig};

#[derive(Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

impl WebhookConfig {
    pub fn new(url: &str) -> WebhookConfig {
        WebhookConfig {
            url: url.to_string(),
            headers: Vec::new(),
            timeout: Duration::from_secs(10),
            ca_file: None,
            cert_file: None,
            key_file: None,
        }
    }

    /// The url for logs: without credentials (`user:password@` becomes `***@`) and
    /// without its query string or fragment, which may hold tokens.
    pub fn url_for_logs(&self) -> String {
        redact_url(&self.url)
    }

    /// `text` (an HTTP client's error) with the url's secrets taken out.
    fn redact(&self, text: &str) -> String {
        let mut out = text.replace(&self.url, &self.url_for_logs());
        if let Some(info) = userinfo(&self.url) {
            out = out.replace(info, "***");
        }
        out
    }
}

/// Debug output never shows the url's secrets nor header values (tokens).
impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &self.url_for_logs())
            .field(
                "headers",
                &self
                    .headers
                    .iter()
                    .map(|(k, _)| k.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("timeout", &self.timeout)
            .field("ca_file", &self.ca_file)
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .finish()
    }
}

/// The `user:password` part of a url's authority, if any.
fn userinfo(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    authority
        .rfind('@')
        .map(|i| &authority[..i])
        .filter(|u| !u.is_empty())
}

/// A url fit for logs: credentials replaced with `***`, query and fragment cut.
pub fn redact_url(url: &str) -> String {
    let base = url.split(['?', '#']).next().unwrap_or("");
    match userinfo(base) {
        Some(info) => base.replacen(&format!("{info}@"), "***@", 1),
        None => base.to_string(),
    }
}

/// The keys of a `webhook` sink, as written (see the module doc).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct WebhookSinkConfig {
    pub url: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub timeout_secs: u64,
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

/// Debug output never shows the url's secrets nor header values.
impl std::fmt::Debug for WebhookSinkConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSinkConfig")
            .field("url", &self.url.as_deref().map(redact_url))
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("timeout_secs", &self.timeout_secs)
            .field("ca_file", &self.ca_file)
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .finish()
    }
}

impl Default for WebhookSinkConfig {
    fn default() -> Self {
        WebhookSinkConfig {
            url: None,
            headers: BTreeMap::new(),
            timeout_secs: 10,
            ca_file: None,
            cert_file: None,
            key_file: None,
        }
    }
}

impl SinkKind for WebhookSinkConfig {
    const TYPE: &'static str = "webhook";
    const PATIENT_IDS: PatientIds = PatientIds::Pseudonymised;

    fn target(&self, ctx: &super::Context) -> Result<Box<dyn Target>> {
        let at = ctx.at;
        let Some(url) = &self.url else {
            bail!("{at}: a webhook sink needs `url`, e.g. url = \"https://siem.example/alerts\"");
        };
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            bail!("{at}: url must start with http:// or https://");
        }
        let mut c = WebhookConfig::new(url);
        c.headers = self
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        c.timeout = Duration::from_secs(self.timeout_secs.max(1));
        c.ca_file = self.ca_file.as_deref().map(|p| ctx.path(p));
        c.cert_file = self.cert_file.as_deref().map(|p| ctx.path(p));
        c.key_file = self.key_file.as_deref().map(|p| ctx.path(p));
        if c.cert_file.is_some() != c.key_file.is_some() {
            bail!("{at}: a client certificate needs both `cert_file` and `key_file`");
        }
        Ok(Box::new(c))
    }
}

impl Target for WebhookConfig {
    /// Reads the TLS files now, so a wrong path fails at start.
    fn open(&self, formatter: &Formatter) -> Result<Box<dyn Sink>> {
        Ok(Box::new(WebhookSink::new(self.clone(), formatter)?))
    }
}

pub struct WebhookSink {
    cfg: WebhookConfig,
    agent: ureq::Agent,
    content_type: &'static str,
}

impl WebhookSink {
    pub fn new(cfg: WebhookConfig, formatter: &Formatter) -> Result<WebhookSink> {
        let mut tls = TlsConfig::builder();
        if let Some(ca) = &cfg.ca_file {
            let certs: Vec<Certificate<'static>> = read_pem(ca, "ca_file")?
                .into_iter()
                .filter_map(|i| match i {
                    PemItem::Certificate(c) => Some(c),
                    _ => None,
                })
                .collect();
            if certs.is_empty() {
                bail!("ca_file {} holds no PEM certificate", ca.display());
            }
            tls = tls.root_certs(RootCerts::new_with_certs(&certs));
        }
        if let (Some(cert), Some(key)) = (&cfg.cert_file, &cfg.key_file) {
            let chain: Vec<Certificate<'static>> = read_pem(cert, "cert_file")?
                .into_iter()
                .filter_map(|i| match i {
                    PemItem::Certificate(c) => Some(c),
                    _ => None,
                })
                .collect();
            let key: PrivateKey<'static> = read_pem(key, "key_file")?
                .into_iter()
                .find_map(|i| match i {
                    PemItem::PrivateKey(k) => Some(k),
                    _ => None,
                })
                .with_context(|| format!("key_file {} holds no PEM private key", key.display()))?;
            tls = tls.client_cert(Some(ClientCert::new_with_certs(&chain, key)));
        }
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(cfg.timeout))
            .user_agent(format!("phiwatch/{}", crate::format::VERSION))
            .tls_config(tls.build())
            .build();
        Ok(WebhookSink {
            agent: ureq::Agent::new_with_config(config),
            content_type: formatter.content_type(),
            cfg,
        })
    }
}

fn read_pem(path: &std::path::Path, key: &str) -> Result<Vec<PemItem<'static>>> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read {key} {}; fix the path", path.display()))?;
    ureq::tls::parse_pem(&bytes)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| anyhow!("{key} {}: not valid PEM ({e})", path.display()))
}

impl Sink for WebhookSink {
    fn send(&mut self, line: &str) -> Result<()> {
        let mut req = self
            .agent
            .post(&self.cfg.url)
            .header("Content-Type", self.content_type);
        for (k, v) in &self.cfg.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let resp = req.send(line).map_err(|e| {
            anyhow!(
                "cannot POST to webhook {}: {}",
                self.cfg.url_for_logs(),
                self.cfg.redact(&e.to_string())
            )
        })?;
        let status = resp.status().as_u16();
        match status {
            200..=299 => Ok(()),
            408 | 429 | 500..=599 => Err(anyhow!(
                "webhook {} answered HTTP {status}",
                self.cfg.url_for_logs()
            )),
            _ => Err(Permanent(format!(
                "webhook {} answered HTTP {status}; check `url` and `headers` (a 4xx will not \
                 change by sending the same alert again)",
                self.cfg.url_for_logs()
            ))
            .into()),
        }
    }

    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod redaction_tests {
    use super::*;

    #[test]
    fn credentials_and_query_never_reach_the_logs() {
        let mut c = WebhookConfig::new("https://alice:s3cret@siem.example:8443/in?token=t0k#x");
        c.headers
            .push(("Authorization".into(), "Bearer b34rer".into()));
        assert_eq!(c.url_for_logs(), "https://***@siem.example:8443/in");
        let dbg = format!("{c:?}");
        for secret in ["alice", "s3cret", "t0k", "b34rer"] {
            assert!(!dbg.contains(secret), "{dbg}");
        }
        let e = c.redact(
            "io: https://alice:s3cret@siem.example:8443/in?token=t0k#x failed for alice:s3cret",
        );
        assert!(!e.contains("s3cret") && !e.contains("t0k"), "{e}");
        assert_eq!(redact_url("http://h/p"), "http://h/p");
        assert_eq!(redact_url("http://user@h/p"), "http://***@h/p");
        // An @ in the path is not a credential.
        assert_eq!(redact_url("http://h/a@b"), "http://h/a@b");
    }
}
