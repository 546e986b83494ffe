//! A real Kafka broker for tests: tansu 0.6.0 on free loopback ports, its own storage,
//! topics created explicitly (tansu creates none by itself). Killed when dropped.

use super::{free_tcp_port, wait_for};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

pub struct Broker {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    storage: String,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // PHIWATCH_KEEP_TEST_DIR=1 leaves the broker's folder (tansu.log, storage) behind.
        if std::env::var("PHIWATCH_KEEP_TEST_DIR").as_deref() == Ok("1") {
            let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
            eprintln!("broker folder kept: {}", dir.keep().display());
        }
    }
}

pub fn find_tansu() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    std::env::split_paths(&path)
        .chain([home.join(".cargo/bin")])
        .map(|d| d.join("tansu"))
        .find(|p| p.is_file())
}

impl Broker {
    /// Starts a broker with in-memory storage, or None when Kafka tests are skipped.
    pub fn start() -> Option<Broker> {
        Broker::start_with("memory://tansu/")
    }

    /// `storage` is a tansu storage URL; `sqlite://tansu.db` is relative to the broker's dir.
    pub fn start_with(storage: &str) -> Option<Broker> {
        if std::env::var("PHIWATCH_SKIP_KAFKA").as_deref() == Ok("1") {
            eprintln!("PHIWATCH_SKIP_KAFKA=1: skipping the Kafka test");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = free_tcp_port();
        let b = Broker {
            child: spawn(dir.path(), port, storage)?,
            port,
            dir,
            storage: storage.to_string(),
        };
        b.wait_up();
        Some(b)
    }

    fn wait_up(&self) {
        let port = self.port;
        wait_for(
            &format!("tansu to listen on {port}"),
            Duration::from_secs(30),
            || TcpStream::connect(("127.0.0.1", port)).is_ok(),
        );
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn create_topic(&self, name: &str, partitions: u32) {
        let o = Command::new(find_tansu().unwrap())
            .args([
                "topic",
                "create",
                name,
                "--partitions",
                &partitions.to_string(),
                "--broker",
            ])
            .arg(format!("tcp://127.0.0.1:{}", self.port))
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "tansu topic create {name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    /// Kills the broker (SIGKILL); `restart` brings it back.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Kills the broker (if still up) and starts it again on the same port and storage.
    pub fn restart(&mut self) {
        self.kill();
        std::thread::sleep(Duration::from_millis(500));
        self.child = spawn(self.dir.path(), self.port, &self.storage).unwrap();
        self.wait_up();
    }
}

fn log(dir: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("tansu.log"))
        .unwrap()
}

fn spawn(dir: &Path, port: u16, storage: &str) -> Option<Child> {
    let bin = find_tansu().unwrap_or_else(|| {
        panic!(
            "tansu is not installed: `cargo install tansu --version 0.6.0 --features dynostore,libsql --locked` \
             (about 9 minutes; .ci/run does it), or set PHIWATCH_SKIP_KAFKA=1"
        )
    });
    let url = format!("tcp://127.0.0.1:{port}");
    Some(
        Command::new(bin)
            .current_dir(dir)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                storage,
            ])
            .env(
                "PROMETHEUS_LISTENER_URL",
                format!("tcp://127.0.0.1:{}", free_tcp_port()),
            )
            // tansu logs to stdout (RUST_LOG picks the level); appended across restarts.
            .stdout(log(dir))
            .stderr(log(dir))
            .spawn()
            .unwrap(),
    )
}
