//! `/metrics`, `/healthz` and `/readyz` on `[metrics] listen`: a small HTTP/1.1 server of
//! its own threads (one per connection, bounded, with timeouts), apart from the daemon loop.
//!
//! Health is the daemon loop's own progress: the loop ticks [`Health`] every turn, so a
//! wedged loop turns `/healthz` red even while the listener thread still answers.

use crate::metrics::{get, now_secs};
use anyhow::{Context, Result};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// Most connections served at once; more are answered 503 at once and closed.
pub const MAX_CONNECTIONS: usize = 32;
/// Time a client has to send its whole request head; an idle or trickling connection is
/// closed after it (and holds only its own thread meanwhile).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Time to write an answer to a client that does not read it.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head accepted.
const MAX_REQUEST: usize = 16 * 1024;

/// Serves `/metrics`, `/healthz` and `/readyz` on `addr`: an accept thread hands each
/// connection to a thread of its own (at most [`MAX_CONNECTIONS`]), with a deadline for
/// the request and a write timeout, so idle or slow clients never hold `/healthz`.
/// HTTP/1.1, `GET` and `HEAD`, one request per connection.
pub fn serve(addr: &str, health: Arc<Health>) -> Result<std::net::SocketAddr> {
    let listener = TcpListener::bind(addr).with_context(|| {
        format!("cannot listen on {addr} for metrics; set [metrics] listen to a free address")
    })?;
    let local = listener.local_addr()?;
    let active = Arc::new(AtomicUsize::new(0));
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                if active.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
                    active.fetch_sub(1, Ordering::AcqRel);
                    let _ = busy(stream);
                    continue;
                }
                let health = Arc::clone(&health);
                let done = Arc::clone(&active);
                let spawned = std::thread::Builder::new()
                    .name("metrics-conn".into())
                    .spawn(move || {
                        let _ = answer(stream, &health);
                        done.fetch_sub(1, Ordering::AcqRel);
                    });
                if spawned.is_err() {
                    active.fetch_sub(1, Ordering::AcqRel);
                }
            }
        })?;
    Ok(local)
}

/// The answer when every connection slot is taken.
fn busy(mut s: TcpStream) -> std::io::Result<()> {
    s.set_write_timeout(Some(Duration::from_millis(200)))?;
    let body = "too many connections\n";
    write!(
        s,
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    close_gracefully(s, Duration::from_millis(100));
    Ok(())
}

/// Ends our side, then reads (and drops) what the client still sends for a moment, so
/// that closing does not reset the connection before the client read the answer.
fn close_gracefully(mut s: TcpStream, linger: Duration) {
    let _ = s.shutdown(std::net::Shutdown::Write);
    let _ = s.set_read_timeout(Some(linger));
    let mut buf = [0u8; 4096];
    let mut total = 0;
    while let Ok(n) = s.read(&mut buf) {
        total += n;
        if n == 0 || total > 64 * 1024 {
            break;
        }
    }
}

/// Reads the request head within [`REQUEST_TIMEOUT`] in all (not per read).
fn read_head(s: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    let mut buf = [0u8; 2048];
    let mut got = Vec::new();
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        if got.len() > MAX_REQUEST {
            return Ok(None);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        s.set_read_timeout(Some(left))?;
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    Ok(Some(got))
}

fn answer(mut s: TcpStream, health: &Health) -> std::io::Result<()> {
    s.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let got = match read_head(&mut s) {
        Ok(Some(got)) => got,
        Ok(None) => {
            return reply(
                &mut s,
                "431 Request Header Fields Too Large",
                "text/plain",
                "request too large\n",
                false,
            )
        }
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            ) =>
        {
            return reply(
                &mut s,
                "408 Request Timeout",
                "text/plain",
                "request timeout\n",
                false,
            )
        }
        Err(e) => return Err(e),
    };
    if got.is_empty() {
        return Ok(());
    }
    let req = String::from_utf8_lossy(&got);
    let mut words = req.split_whitespace();
    let method = words.next().unwrap_or("");
    let path = words.next().unwrap_or("/");
    let head = method == "HEAD";
    if method != "GET" && !head {
        return reply(
            &mut s,
            "405 Method Not Allowed",
            "text/plain",
            "use GET\n",
            false,
        );
    }
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
    reply(&mut s, status, ctype, &body, head)
}

fn reply(
    s: &mut TcpStream,
    status: &str,
    ctype: &str,
    body: &str,
    head: bool,
) -> std::io::Result<()> {
    write!(
        s,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    if !head {
        s.write_all(body.as_bytes())?;
    }
    s.flush()?;
    if let Ok(c) = s.try_clone() {
        close_gracefully(c, Duration::from_millis(200));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get_path(port: u16, path: &str) -> String {
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(c, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn idle_connections_do_not_hold_healthz() {
        let health = Arc::new(Health::default());
        health.tick();
        let port = serve("127.0.0.1:0", health).unwrap().port();
        // Six idle connections (the measurement), one of them half a request.
        let mut idle: Vec<TcpStream> = (0..6)
            .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
            .collect();
        idle[0].write_all(b"GET /heal").unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let t = Instant::now();
        let out = get_path(port, "/healthz");
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(out.ends_with("ok\n"), "{out}");
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        // The idle ones are closed after the request timeout, with a 408.
        let t = Instant::now();
        let mut first = String::new();
        idle[0]
            .set_read_timeout(Some(REQUEST_TIMEOUT + Duration::from_secs(5)))
            .unwrap();
        idle[0].read_to_string(&mut first).unwrap();
        assert!(first.starts_with("HTTP/1.1 408"), "{first}");
        assert!(t.elapsed() < REQUEST_TIMEOUT + Duration::from_secs(2));
    }

    #[test]
    fn connections_beyond_the_limit_get_503_and_others_are_refused_politely() {
        let health = Arc::new(Health::default());
        health.tick();
        let port = serve("127.0.0.1:0", health).unwrap().port();
        let _idle: Vec<TcpStream> = (0..MAX_CONNECTIONS)
            .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
            .collect();
        std::thread::sleep(Duration::from_millis(200));
        let out = get_path(port, "/healthz");
        assert!(out.starts_with("HTTP/1.1 503"), "{out}");
        assert!(out.contains("too many connections"), "{out}");
        drop(_idle);
        // Slots come back once the idle connections are gone.
        let mut ok = false;
        for _ in 0..50 {
            std::thread::sleep(Duration::from_millis(100));
            if get_path(port, "/healthz").starts_with("HTTP/1.1 200") {
                ok = true;
                break;
            }
        }
        assert!(ok);
        assert!(get_path(port, "/metrics").contains("phiwatch_build_info"));
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(c, "POST /healthz HTTP/1.1\r\n\r\n").unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.1 405"), "{out}");
    }
}
