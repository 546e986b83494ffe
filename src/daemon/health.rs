//! `/metrics`, `/healthz` and `/readyz` on `[metrics] listen`, from a thread of its own.
//!
//! Health is the daemon loop's own progress: the loop ticks [`Health`] every turn, so a
//! wedged loop turns `/healthz` red even while the listener thread still answers.

use crate::metrics::{get, now_secs};
use anyhow::{Context, Result};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What `/healthz` and `/readyz` answer from.
#[derive(Debug, Default)]
pub struct Health {
    /// Unix ms of the engine loop's last turn.
    pub tick_ms: AtomicI64,
    pub ready: AtomicBool,
}

impl Health {
    pub fn tick(&self) {
        self.tick_ms
            .store((now_secs() * 1000.0) as i64, Ordering::Relaxed);
    }

    /// Healthy while the engine loop turned in the last 30 seconds.
    pub fn healthy(&self) -> bool {
        let last = self.tick_ms.load(Ordering::Relaxed);
        (now_secs() * 1000.0) as i64 - last < 30_000
    }
}

/// The health of a daemon (`run`, `agent`, `engine`), served with the metrics when the
/// config sets `[metrics] listen`. Ticked once, so `/healthz` is green from the start.
pub fn start(listen: Option<&str>) -> Result<Arc<Health>> {
    let health = Arc::new(Health::default());
    health.tick();
    if let Some(addr) = listen {
        let at = serve(addr, Arc::clone(&health))?;
        tracing::info!(listen = %at, "metrics listening on /metrics, /healthz, /readyz");
    }
    Ok(health)
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `addr` from a thread of its own.
pub fn serve(addr: &str, health: Arc<Health>) -> Result<std::net::SocketAddr> {
    let listener = TcpListener::bind(addr).with_context(|| {
        format!("cannot listen on {addr} for metrics; set [metrics] listen to a free address")
    })?;
    let local = listener.local_addr()?;
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = answer(stream, &health);
            }
        })?;
    Ok(local)
}

fn answer(mut s: TcpStream, health: &Health) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut buf = [0u8; 2048];
    let mut got = Vec::new();
    while !got.windows(4).any(|w| w == b"\r\n\r\n") && got.len() < 16 * 1024 {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    let req = String::from_utf8_lossy(&got);
    let path = req.split_whitespace().nth(1).unwrap_or("/");
    let (status, ctype, body) = match path.split('?').next().unwrap_or("/") {
        "/metrics" => ("200 OK", "text/plain; version=0.0.4", get().render()),
        "/healthz" if health.healthy() => ("200 OK", "text/plain", "ok\n".to_string()),
        "/healthz" => (
            "503 Service Unavailable",
            "text/plain",
            "engine loop stalled\n".to_string(),
        ),
        "/readyz" if health.ready.load(Ordering::Relaxed) => {
            ("200 OK", "text/plain", "ready\n".to_string())
        }
        "/readyz" => (
            "503 Service Unavailable",
            "text/plain",
            "starting\n".to_string(),
        ),
        _ => (
            "404 Not Found",
            "text/plain",
            "try /metrics, /healthz or /readyz\n".to_string(),
        ),
    };
    write!(
        s,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    s.flush()
}
