//! The phiwatch program under test as a child process: the command, `replay`, signals,
//! and a guard that kills a daemon a failed assertion would otherwise leave running.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `phiwatch`, the binary cargo built for these tests.
pub fn phiwatch() -> Command {
    Command::new(env!("CARGO_BIN_EXE_phiwatch"))
}

/// `phiwatch <cmd> --config <config>` started with its standard error (the log) in `log`.
pub fn start_logged(cmd: &str, config: &Path, log: &Path) -> Proc {
    start_logged_with_env(cmd, config, log, &[])
}

/// [`start_logged`] with extra environment variables (systemd's, say).
pub fn start_logged_with_env(cmd: &str, config: &Path, log: &Path, env: &[(&str, &str)]) -> Proc {
    Proc(
        phiwatch()
            .args([cmd, "--config"])
            .arg(config)
            .envs(env.iter().copied())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap(),
    )
}

/// `phiwatch run --config <config>`, its log thrown away.
pub fn start_run_quiet(config: &Path) -> Proc {
    Proc(
        phiwatch()
            .args(["run", "--config"])
            .arg(config)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// Runs `phiwatch replay --config config --out out`, asserts it succeeded, and returns its
/// standard error (the summary).
pub fn replay(config: &Path, out: &Path) -> String {
    let o = phiwatch()
        .args(["replay", "--config"])
        .arg(config)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "replay failed: {stderr}");
    stderr
}

/// `phiwatch check [--connect] --config <config>`: its exit code and standard output.
pub fn check(config: &Path, connect: bool) -> (Option<i32>, String) {
    let mut cmd = phiwatch();
    cmd.arg("check");
    if connect {
        cmd.arg("--connect");
    }
    let o = cmd.arg("--config").arg(config).output().unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

/// Sends `signal` (`TERM`, `HUP`, ...) to a child with kill(1).
pub fn signal(child: &Child, signal: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{signal} {}", child.id());
}

/// Sends SIGTERM to a phiwatch process and waits up to `within` for a clean (zero) exit.
pub fn stop_with_sigterm(child: &mut Child, within: Duration) {
    signal(child, "TERM");
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exited with {status}");
            return;
        }
        assert!(Instant::now() < deadline, "did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A phiwatch process, killed if the test ends before stopping it (a failed assertion must
/// not leave a daemon running).
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    pub fn id(&self) -> u32 {
        self.0.id()
    }

    /// Sends `sig` (`HUP`, ...) with kill(1).
    pub fn signal(&self, sig: &str) {
        signal(&self.0, sig);
    }

    /// SIGTERM, then a clean exit within `within`.
    pub fn stop(mut self, within: Duration) {
        stop_with_sigterm(&mut self.0, within);
    }

    /// SIGKILL, and reaped.
    pub fn kill(mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}
