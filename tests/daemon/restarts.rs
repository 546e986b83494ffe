//! Nothing lost or doubled across restarts of `run`: SIGKILL at random moments (also
//! before the first periodic snapshot) while the log is rotated by rename and by
//! copytruncate and the file sink rotates every few alerts; SIGTERM in the middle of a
//! finding; copytruncate while stopped. Each compares with `replay`'s alerts.

use crate::support::hospital::write_hospital_for_run;
use crate::support::process::{replay, start_logged, Proc};
use crate::support::receivers::{ids, missing, repeated, webhook_receiver};
use crate::support::sorted_lines;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const LOG: &str = "events/canonical.jsonl";

/// The crafted hospital for `run`, its file sink rotating every couple of alerts (1,000
/// files kept, so the test sees every alert written).
///
/// Sources count as idle after 10 quiet seconds, not 1: this test appends a month of 2024
/// history live, and pauses (waiting up to 5 s for a snapshot before a rotation, a
/// restart on a loaded machine) would otherwise let the engine conclude the log is quiet
/// and move its clock to the wall clock, closing findings in the middle of the history
/// (correct for a live log, whose events carry the current time; a different, equally
/// valid, split of this history's findings than replay's). Idle release is tested in
/// `daemon::live_time`.
fn hospital(dir: &Path) -> PathBuf {
    hospital_with_file_sink(dir, "max_bytes = 1500\nmax_files = 1000\nfsync_secs = 0")
}

/// The same, its file sink writing the dated, gzipped archive (`rotate = "daily"`) and
/// rotating by size every couple of alerts within the day.
fn hospital_archive(dir: &Path) -> PathBuf {
    hospital_with_file_sink(dir, "rotate = \"daily\"\nmax_bytes = 1500\nfsync_secs = 0")
}

/// The crafted hospital for `run`, its sources idle after 10 quiet seconds (see
/// [`hospital`]) and `settings` added to its file sink.
fn hospital_with_file_sink(dir: &Path, settings: &str) -> PathBuf {
    let config = write_hospital_for_run(dir, "");
    let sink = "path = \"alerts.ndjson\"\nformat = \"json\"";
    let text = replaced(
        &replaced(
            &std::fs::read_to_string(&config).unwrap(),
            "idle_source_secs = 1",
            "idle_source_secs = 10",
        ),
        sink,
        &format!("{sink}\n{settings}"),
    );
    std::fs::write(&config, text).unwrap();
    config
}

/// `text` with `from` replaced by `to`; `from` must be there.
fn replaced(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "the config holds {from:?}");
    text.replacen(from, to, 1)
}

/// Replay's alerts for the hospital in `dir` as it is now.
fn replay_lines(config: &Path) -> Vec<String> {
    let out = config.with_file_name("replay.ndjson");
    replay(config, &out);
    let want = sorted_lines(&out);
    std::fs::remove_file(out).unwrap();
    want
}

/// Every alert line in the file sink's files (`alerts.ndjson` and its rotations, gzipped
/// archives decompressed; checksums and half-written files skipped), sorted.
fn sink_lines(dir: &Path) -> Vec<String> {
    use std::io::Read;
    let mut all = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if !name.starts_with("alerts.ndjson") || name.ends_with(".sha256") || name.ends_with(".tmp")
        {
            continue;
        }
        if name.ends_with(".gz") {
            let mut text = String::new();
            flate2::read::GzDecoder::new(std::fs::File::open(&p).unwrap())
                .read_to_string(&mut text)
                .unwrap();
            all.extend(text.lines().map(str::to_string));
        } else {
            all.extend(sorted_lines(&p));
        }
    }
    all.sort();
    all
}

fn start(config: &Path, n: &mut u32) -> Proc {
    *n += 1;
    start_logged(
        "run",
        config,
        &config.with_file_name(format!("run-{n}.log")),
    )
}

fn logs(dir: &Path) -> String {
    let mut out = String::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.file_name().unwrap().to_string_lossy().starts_with("run-") {
            out += &format!("--- {}\n", p.display());
            out += &std::fs::read_to_string(&p).unwrap_or_default();
        }
    }
    out
}

/// Waits while `run` runs until the sink's files hold exactly `want`.
fn wait_for_alerts(dir: &Path, want: &[String], what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = sink_lines(dir);
        if got == want {
            return;
        }
        if Instant::now() > deadline {
            if let Ok(to) = std::env::var("PHIWATCH_RESTART_KEEP") {
                let _ = std::process::Command::new("cp")
                    .arg("-r")
                    .arg(dir)
                    .arg(to)
                    .status();
            }
            let mut dupes = got.clone();
            dupes.dedup();
            panic!(
                "{what}: the sink holds {} alerts ({} repeated), replay {}; missing: {:?}\nextra: {:?}\nlogs:\n{}",
                got.len(),
                got.len() - dupes.len(),
                want.len(),
                want.iter().filter(|w| !got.contains(w)).collect::<Vec<_>>(),
                got.iter().filter(|g| !want.contains(g)).collect::<Vec<_>>(),
                logs(dir)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// True when `run`'s snapshot names the inode of `path`.
fn snapshot_names(dir: &Path, path: &Path) -> bool {
    snapshot_offset(dir, path).is_some()
}

/// True when `run`'s snapshot was written after `t`.
fn snapshot_since(dir: &Path, t: std::time::SystemTime) -> bool {
    std::fs::metadata(dir.join("state/run.snapshot.json"))
        .and_then(|m| m.modified())
        .is_ok_and(|m| m > t)
}

/// The offset `run`'s snapshot holds for the inode of `path`.
fn snapshot_offset(dir: &Path, path: &Path) -> Option<u64> {
    let meta = std::fs::metadata(path).ok()?;
    let text = std::fs::read_to_string(dir.join("state/run.snapshot.json")).ok()?;
    let snap = serde_json::from_str::<serde_json::Value>(&text).ok()?;
    let positions = snap["positions"].as_object()?;
    positions
        .values()
        .flat_map(|v| v.as_array().into_iter().flatten())
        .find(|p| p["id"]["ino"].as_u64() == Some(meta.ino()))
        .and_then(|p| p["offset"].as_u64())
}

fn append(path: &Path, lines: &[&str]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    let mut text = lines.join("\n");
    text.push('\n');
    f.write_all(text.as_bytes()).unwrap();
}

/// Numbered rotation: `log.N` -> `log.N+1`, ..., `log.1` -> `log.2`.
fn shift(log: &Path) {
    let numbered = |i: u32| PathBuf::from(format!("{}.{i}", log.display()));
    let mut top = 1;
    while numbered(top).exists() {
        top += 1;
    }
    for i in (1..top).rev() {
        std::fs::rename(numbered(i), numbered(i + 1)).unwrap();
    }
}

fn rename_rotation(log: &Path) {
    shift(log);
    std::fs::rename(log, format!("{}.1", log.display())).unwrap();
}

fn copytruncate(log: &Path) {
    shift(log);
    std::fs::copy(log, format!("{}.1", log.display())).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(log)
        .unwrap()
        .set_len(0)
        .unwrap();
}

/// SIGKILL at random moments (from a few milliseconds after a start on, so also before
/// the first periodic snapshot) while the log is written in random chunks and rotated by
/// rename (while running and while stopped) and by copytruncate (while stopped), the
/// file sink rotating every couple of alerts: the union of the sink's files is replay's
/// alerts, none missing, none twice. Beside it a webhook whose receiver is down until the
/// trial's second kill gets every alert, at least once (repeats counted and bounded by
/// the kills). Seeded: trial `t` uses seed `t`.
///
/// A file can be found again after a restart only if a snapshot named it: `run` writes
/// one at once when a source first names a file, so the test rotates a file only once
/// the snapshot names it (a file created and rotated away while `run` is down is outside
/// what any restart can know). At most one rotation per stop.
#[test]
fn sigkill_at_random_moments_with_rotations_loses_and_repeats_no_alert() {
    kill_trials(hospital, 20);
}

/// The same guarantee with the dated archive: rotations rename, gzip and checksum the
/// file while `run` is killed at random moments.
#[test]
fn sigkill_with_the_daily_gzipped_archive_loses_and_repeats_no_alert() {
    kill_trials(hospital_archive, 6);
}

fn kill_trials(hospital: fn(&Path) -> PathBuf, default_trials: u64) {
    let trials: u64 = std::env::var("PHIWATCH_RESTART_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_trials);
    let pristine = tempfile::tempdir().unwrap();
    let config = hospital(pristine.path());
    let want = replay_lines(&config);
    assert!(want.len() >= 10);
    let full = std::fs::read_to_string(pristine.path().join(LOG)).unwrap();
    let all: Vec<&str> = full.lines().collect();
    let started = Instant::now();
    let mut kills = 0;
    let mut rotations = (0, 0);
    let mut hook_repeats = 0;
    // PHIWATCH_RESTART_FIRST=n: start at trial n (to look at one trial again).
    let first: u64 = std::env::var("PHIWATCH_RESTART_FIRST")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    for trial in first..trials {
        let mut rng = ChaCha8Rng::seed_from_u64(trial);
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        eprintln!("trial {trial} in {}", dir.display());
        let config = hospital(dir);
        // A webhook whose receiver is down until the trial's second kill.
        let hook_port = crate::support::free_tcp_port();
        let mut text = std::fs::read_to_string(&config).unwrap();
        text += &format!(
            "\n[[sinks]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{hook_port}/alerts\"\nformat = \"json\"\n"
        );
        std::fs::write(&config, text).unwrap();
        let mut hook = None;
        let mut kills_here = 0;
        let log = dir.join(LOG);
        let mut next = rng.gen_range(0..all.len() / 4);
        std::fs::write(&log, "").unwrap();
        append(&log, &all[..next]);
        let mut n = 0;
        let mut run = Some(start(&config, &mut n));
        // A file rotated away before `run` first looked at it is unknown to it.
        crate::support::wait_for("the start snapshot", Duration::from_secs(20), || {
            snapshot_names(dir, &log)
        });
        let mut rotated_while_stopped = false;
        let mut since = std::time::SystemTime::UNIX_EPOCH;
        while next < all.len() {
            match rng.gen_range(0..10) {
                0..=5 => {
                    let k = rng.gen_range(1..80).min(all.len() - next);
                    append(&log, &all[next..next + k]);
                    next += k;
                }
                6 | 7 => {
                    let empty = std::fs::metadata(&log).map_or(true, |m| m.len() == 0);
                    if empty {
                        // Nothing to rotate (and a source names a file once it has lines).
                    } else if run.is_some() {
                        // Only a file this run's snapshot names (at once, normally): the
                        // previous run's snapshot does not count, as the run may not have
                        // looked at the files yet.
                        let known = || snapshot_since(dir, since) && snapshot_names(dir, &log);
                        let named = Instant::now() + Duration::from_secs(5);
                        while !known() && Instant::now() < named {
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        if known() {
                            rename_rotation(&log);
                            std::fs::File::create(&log).unwrap();
                            rotations.0 += 1;
                        }
                    } else if !rotated_while_stopped && snapshot_names(dir, &log) {
                        rotated_while_stopped = true;
                        // A checkpoint at offset 0 says nothing of the content: a copy
                        // cannot be linked to it (see the README).
                        let copy = snapshot_offset(dir, &log).is_some_and(|o| o > 0);
                        if !copy || rng.gen_bool(0.5) {
                            rename_rotation(&log);
                            rotations.0 += 1;
                        } else {
                            copytruncate(&log);
                            rotations.1 += 1;
                        }
                    }
                }
                _ => match run.take() {
                    Some(p) => {
                        std::thread::sleep(Duration::from_millis(rng.gen_range(0..400)));
                        p.kill();
                        kills += 1;
                        kills_here += 1;
                        if kills_here == 2 {
                            hook = Some(webhook_receiver(
                                std::net::TcpListener::bind(("127.0.0.1", hook_port)).unwrap(),
                            ));
                        }
                    }
                    None => {
                        rotated_while_stopped = false;
                        since = std::time::SystemTime::now();
                        run = Some(start(&config, &mut n));
                    }
                },
            }
            std::thread::sleep(Duration::from_millis(rng.gen_range(0..60)));
        }
        let run = run.unwrap_or_else(|| start(&config, &mut n));
        wait_for_alerts(dir, &want, &format!("trial {trial}"));
        let hook = hook.unwrap_or_else(|| {
            webhook_receiver(std::net::TcpListener::bind(("127.0.0.1", hook_port)).unwrap())
        });
        let want_ids = ids(&want);
        crate::support::wait_for(
            &format!("trial {trial}: every alert at the webhook"),
            Duration::from_secs(60),
            || missing(&want_ids, &hook.lock().unwrap()) == 0,
        );
        run.kill();
        assert_eq!(sink_lines(dir), want, "trial {trial}: after the last kill");
        // At least once: an alert the receiver took just before a kill, whose
        // acknowledgement the sink's queue had not recorded yet, is sent again (the id lets
        // the receiver drop it). At most one in flight per kill.
        let again = repeated(&want_ids, &hook.lock().unwrap());
        assert!(
            again.len() <= kills_here,
            "trial {trial}: {} alerts repeated at the webhook after {kills_here} kills: {again:?}",
            again.len()
        );
        hook_repeats += again.len();
    }
    eprintln!(
        "{trials} trials, {kills} kills, {} rename and {} copytruncate rotations, {hook_repeats} alerts repeated at the webhook, {:.1} s",
        rotations.0,
        rotations.1,
        started.elapsed().as_secs_f64()
    );
}

/// SIGTERM in the middle of a finding (Carol's curiosity sweep, 12 of its 25 charts
/// read) and a restart give exactly replay's alerts: the stop snapshots the open finding
/// and the reorder buffer instead of closing them, so the finding is not split in two.
#[test]
fn sigterm_in_the_middle_of_a_finding_then_restart_gives_replays_alerts() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let config = hospital(dir);
    let want = replay_lines(&config);
    let log = dir.join(LOG);
    let full = std::fs::read_to_string(&log).unwrap();
    let all: Vec<&str> = full.lines().collect();
    let cut = all
        .iter()
        .position(|l| l.contains("\"d_carol\"") && l.contains("\"P312\""))
        .expect("the sweep")
        + 1;
    // Sources never idle in the first run: nothing closes by the wall clock, only by
    // event time, so the sweep is open at the stop.
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        replaced(&text, "idle_source_secs = 10", "idle_source_secs = 3600"),
    )
    .unwrap();
    std::fs::write(&log, all[..cut].join("\n") + "\n").unwrap();
    let mut n = 0;
    let run = start(&config, &mut n);
    crate::support::wait_for("the first part read", Duration::from_secs(30), || {
        let size = std::fs::metadata(&log).unwrap().len();
        std::fs::read_to_string(dir.join("state/run.snapshot.json"))
            .is_ok_and(|t| t.contains(&format!("\"offset\":{size}")))
    });
    run.stop(Duration::from_secs(30));
    let snapshot = std::fs::read_to_string(dir.join("state/run.snapshot.json")).unwrap();
    assert!(
        snapshot.contains("P312"),
        "the open sweep (or its buffered events) is in the snapshot"
    );
    std::fs::write(&config, text).unwrap();
    append(&log, &all[cut..]);
    let run = start(&config, &mut n);
    wait_for_alerts(dir, &want, "after SIGTERM and restart");
    run.stop(Duration::from_secs(30));
    assert_eq!(sink_lines(dir), want);
}

/// Copytruncate while `run` is stopped: the lines written after the last snapshot are in
/// the copy (`canonical.jsonl.1`), and are read from it before the truncated file.
#[test]
fn copytruncate_while_stopped_recovers_the_lines_after_the_snapshot_from_the_copy() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let config = hospital(dir);
    let want = replay_lines(&config);
    let log = dir.join(LOG);
    let full = std::fs::read_to_string(&log).unwrap();
    let all: Vec<&str> = full.lines().collect();
    let (a, b) = (all.len() / 3, all.len() * 2 / 3);
    std::fs::write(&log, all[..a].join("\n") + "\n").unwrap();
    let mut n = 0;
    let run = start(&config, &mut n);
    crate::support::wait_for("the first part read", Duration::from_secs(30), || {
        let size = std::fs::metadata(&log).unwrap().len();
        std::fs::read_to_string(dir.join("state/run.snapshot.json"))
            .is_ok_and(|t| t.contains(&format!("\"offset\":{size}")))
    });
    run.kill();
    // Written after the last snapshot, then copied away and truncated while stopped.
    append(&log, &all[a..b]);
    copytruncate(&log);
    append(&log, &all[b..]);
    let run = start(&config, &mut n);
    wait_for_alerts(dir, &want, "after copytruncate while stopped");
    run.kill();
    let log_text = logs(dir);
    assert!(
        log_text.contains("reading the rest of its copy first"),
        "{log_text}"
    );
}
