//! Agent and engine as real processes, joined through a real broker (tansu): the same
//! alerts as `replay` on the same input, and every event counted exactly once in the
//! engine's state, whichever of agent, broker or engine is killed mid-stream.
//!
//! "Counted once" is read from the engine's partition snapshots after a clean stop: the
//! events applied to state, summed over partitions, equal the events `replay` read.

use crate::support::hospital::{write_hospital_for_run, INPUTS};
use crate::support::process::{replay, start_logged, Proc};
use crate::support::{sorted_lines, tansu, topic};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const PARTITIONS: i32 = 3;

struct Hospital {
    dir: tempfile::TempDir,
    config: PathBuf,
    /// replay's alerts, sorted.
    want: Vec<String>,
    /// Events replay read.
    events: u64,
}

impl Hospital {
    fn new(broker: &tansu::Broker) -> Hospital {
        broker.create_topic("phiwatch.events", PARTITIONS as u32);
        broker.create_topic("phiwatch.alerts", 1);
        // PHIWATCH_KEEP_TEST_DIR=1 leaves the directory (logs, state) for a look after a failure.
        let keep = std::env::var("PHIWATCH_KEEP_TEST_DIR").as_deref() == Ok("1");
        let dir = tempfile::Builder::new()
            .disable_cleanup(keep)
            .tempdir()
            .unwrap();
        if keep {
            eprintln!("test directory: {}", dir.path().display());
        }
        let config = write_hospital_for_run(
            dir.path(),
            // A short session: a killed engine's partitions move on after 10 s, not 45.
            &format!(
                "\n[kafka]\nbrokers = \"{}\"\nsession_timeout_secs = 10\norphan_rejoin_secs = 10\n",
                broker.address()
            ),
        );
        let out = dir.path().join("replay.ndjson");
        let stderr = replay(&config, &out);
        // "replay: 4 files, 1234 lines, 1200 events in ..."
        let events = stderr
            .lines()
            .find_map(|l| l.strip_prefix("replay: "))
            .and_then(|l| l.split(", ").nth(2))
            .and_then(|s| s.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no event count in replay's summary:\n{stderr}"));
        let want = sorted_lines(&out);
        assert!(want.len() >= 10, "the crafted hospital gives alerts");
        Hospital {
            dir,
            config,
            want,
            events,
        }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn start(&self, cmd: &str, log: &str) -> Proc {
        start_logged(cmd, &self.config, &self.path(log))
    }

    /// An engine, then an agent: (agent, engine).
    fn start_both(&self) -> (Proc, Proc) {
        let engine = self.start("engine", "engine.log");
        (self.start("agent", "agent.log"), engine)
    }

    fn logs(&self) -> String {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| {
                format!(
                    "== {}\n{}",
                    p.display(),
                    std::fs::read_to_string(p).unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Holds back the last part of the main log, to write it later.
    fn hold_back(&self) -> String {
        let log = self.path(INPUTS[0]);
        let full = std::fs::read_to_string(&log).unwrap();
        let lines: Vec<&str> = full.lines().collect();
        let cut = lines.len() / 2;
        std::fs::write(&log, lines[..cut].join("\n") + "\n").unwrap();
        lines[cut..].join("\n") + "\n"
    }

    fn release(&self, rest: &str) {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.path(INPUTS[0]))
            .unwrap();
        f.write_all(rest.as_bytes()).unwrap();
    }

    fn agent_checkpoint(&self) -> serde_json::Value {
        std::fs::read_to_string(self.path("state/agent/positions.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }

    /// Kafka acknowledged every line of every input.
    fn agent_caught_up(&self) -> bool {
        let cp = self.agent_checkpoint();
        INPUTS.iter().all(|f| {
            let path = self.path(f);
            let size = std::fs::metadata(&path).unwrap().len();
            let name = path.to_string_lossy();
            cp["acked"].as_object().is_some_and(|sources| {
                sources
                    .values()
                    .flat_map(|v| v.as_array().into_iter().flatten())
                    .any(|p| {
                        p["path"].as_str() == Some(&name) && p["offset"].as_u64() == Some(size)
                    })
            })
        })
    }

    fn snapshots(&self) -> Vec<serde_json::Value> {
        (0..PARTITIONS)
            .filter_map(|p| {
                std::fs::read_to_string(
                    self.path(&format!("state/engine/phiwatch.events-{p}.snapshot.json")),
                )
                .ok()
            })
            .map(|t| serde_json::from_str(&t).unwrap())
            .collect()
    }

    /// Events applied to engine state, summed over the partition snapshots.
    fn applied(&self) -> u64 {
        self.snapshots()
            .iter()
            .map(|s| s["engine"]["applied"].as_u64().unwrap())
            .sum()
    }

    /// The engines' snapshots hold as many events as replay read. (tansu 0.6 answers
    /// ListOffsets with a wrong high watermark, so the broker's end offsets cannot say it.)
    fn engine_caught_up(&self) -> bool {
        self.applied() >= self.events
    }

    fn wait_caught_up(&self) {
        let deadline = Instant::now() + Duration::from_secs(180);
        while !(self.agent_caught_up() && self.engine_caught_up()) {
            if Instant::now() > deadline {
                let per_partition: Vec<String> = self
                    .snapshots()
                    .iter()
                    .map(|s| {
                        format!(
                            "p{} next {} applied {}",
                            s["partition"], s["next"], s["engine"]["applied"]
                        )
                    })
                    .collect();
                panic!(
                    "not caught up after 180 s (agent: {}, engine: {} of {} events; snapshots: {}); logs:\n{}",
                    self.agent_caught_up(),
                    self.applied(),
                    self.events,
                    per_partition.join(", "),
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        // Idle sources release what they held back.
        std::thread::sleep(Duration::from_millis(2500));
    }

    /// Waits until everything went through and every alert of replay's is in the sink
    /// while agent and engine still run (the agent's heartbeats let event time pass once
    /// its sources are quiet), then [`Hospital::stop_and_check`].
    fn finish(&self, agent: Proc, engine: Proc) {
        self.wait_caught_up();
        self.wait_alerts_live();
        self.stop_and_check(agent, engine);
    }

    /// Waits, without stopping anything, until the file sink holds replay's alerts.
    fn wait_alerts_live(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while sorted_lines(&self.path("alerts.ndjson")) != self.want {
            assert!(
                Instant::now() < deadline,
                "replay's alerts not in the sink 60 s after catching up ({} of {}); logs:\n{}",
                sorted_lines(&self.path("alerts.ndjson")).len(),
                self.want.len(),
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Stops the agent, then the engine, each cleanly, and checks what they did.
    fn stop_and_check(&self, agent: Proc, engine: Proc) {
        agent.stop(Duration::from_secs(60));
        engine.stop(Duration::from_secs(60));
        self.check();
    }

    /// After a clean stop of every engine: same alerts as replay, every event once.
    fn check(&self) {
        let got = sorted_lines(&self.path("alerts.ndjson"));
        assert_eq!(
            got,
            self.want,
            "alerts differ from replay's; logs:\n{}",
            self.logs()
        );
        assert_eq!(
            self.applied(),
            self.events,
            "events applied to the engine's state"
        );
        let mut ids: Vec<String> = got
            .iter()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["id"].to_string())
            .collect();
        let n = ids.len();
        ids.dedup();
        assert_eq!(ids.len(), n, "an alert id came out twice");
    }

    /// The partitions each engine's lease says it holds, by process id.
    fn leases(&self) -> BTreeMap<u32, Vec<i64>> {
        let Ok(dir) = std::fs::read_dir(self.path("state/engine/leases")) else {
            return BTreeMap::new();
        };
        dir.filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .filter_map(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .map(|l| {
                // The lease name is host-pid-start.
                let name = l["engine"].as_str().unwrap().to_string();
                let pid = name.rsplit('-').nth(1).unwrap().parse().unwrap();
                let parts = l["partitions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p.as_i64().unwrap())
                    .collect();
                (pid, parts)
            })
            .collect()
    }

    /// Waits until every engine named holds at least one partition.
    fn wait_all_hold_partitions(&self, engines: &[&Proc]) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let leases = self.leases();
            if engines
                .iter()
                .all(|e| leases.get(&e.id()).is_some_and(|p| !p.is_empty()))
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the engines did not split the partitions: {leases:?}; logs:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until the agent has had at least one batch acknowledged.
    fn wait_agent_progress(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self
            .agent_checkpoint()
            .to_string()
            .contains("canonical.jsonl")
        {
            assert!(
                Instant::now() < deadline,
                "the agent checkpointed nothing; logs:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn agent_and_engine_through_kafka_equal_replay() {
    let Some(broker) = tansu::Broker::start() else {
        return;
    };
    let h = Hospital::new(&broker);
    let (agent, engine) = h.start_both();
    h.finish(agent, engine);
    // The engine wrote the same alerts to `alerts_topic` too (no kafka sink configured).
    let id = |v: &serde_json::Value| v["id"].as_str().unwrap().to_string();
    let mut on_kafka: Vec<String> =
        topic::read_all(&broker.address(), "phiwatch.alerts", 1, h.want.len())
            .iter()
            .map(id)
            .collect();
    on_kafka.sort();
    let mut want: Vec<String> = h
        .want
        .iter()
        .map(|l| id(&serde_json::from_str(l).unwrap()))
        .collect();
    want.sort();
    assert_eq!(on_kafka, want, "alerts on phiwatch.alerts");
}

#[test]
fn a_killed_agent_restarts_without_loss_or_duplicates() {
    let Some(broker) = tansu::Broker::start() else {
        return;
    };
    let h = Hospital::new(&broker);
    let rest = h.hold_back();
    let (agent, engine) = h.start_both();
    h.wait_agent_progress();
    agent.kill();
    h.release(&rest);
    let agent = h.start("agent", "agent2.log");
    h.finish(agent, engine);
}

/// A mixed fleet: an agent writing the JSON encoding (as every agent before the compact
/// one did) sends the first half and is killed, an agent on the one-event compact
/// encoding sends a quarter more (re-sending what the first had not checkpointed), then
/// an agent on the default batched encoding sends the rest; one engine reads them all
/// from the same partitions and gives replay's alerts, every event once.
#[test]
fn an_engine_reads_json_compact_and_batched_events_on_one_topic() {
    let Some(broker) = tansu::Broker::start() else {
        return;
    };
    let h = Hospital::new(&broker);
    let default = std::fs::read_to_string(&h.config).unwrap();
    assert!(
        !default.contains("event_encoding"),
        "batched is the default"
    );
    let with = |encoding: &str| {
        default.replacen(
            "[kafka]\n",
            &format!("[kafka]\nevent_encoding = \"{encoding}\"\n"),
            1,
        )
    };
    let rest = h.hold_back();
    let lines: Vec<&str> = rest.lines().collect();
    let (second, third) = lines.split_at(lines.len() / 2);
    std::fs::write(&h.config, with("json")).unwrap();
    let (agent, engine) = h.start_both();
    h.wait_agent_progress();
    agent.kill();
    std::fs::write(&h.config, with("compact")).unwrap();
    h.release(&(second.join("\n") + "\n"));
    let agent = h.start("agent", "agent2.log");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !h.agent_caught_up() {
        assert!(Instant::now() < deadline, "logs:\n{}", h.logs());
        std::thread::sleep(Duration::from_millis(100));
    }
    agent.kill();
    std::fs::write(&h.config, &default).unwrap();
    h.release(&(third.join("\n") + "\n"));
    let agent = h.start("agent", "agent3.log");
    h.finish(agent, engine);
}

#[test]
fn a_killed_engine_restarts_from_its_snapshots() {
    let Some(broker) = tansu::Broker::start() else {
        return;
    };
    let h = Hospital::new(&broker);
    let rest = h.hold_back();
    let (agent, engine) = h.start_both();
    h.wait_agent_progress();
    // Let the engine apply and snapshot some of it, then kill it between snapshots.
    std::thread::sleep(Duration::from_millis(1500));
    engine.kill();
    h.release(&rest);
    let engine = h.start("engine", "engine2.log");
    h.finish(agent, engine);
}

#[test]
fn a_broker_restarted_mid_stream_loses_nothing() {
    let Some(mut broker) = tansu::Broker::start_with("sqlite://tansu.db") else {
        return;
    };
    let h = Hospital::new(&broker);
    let rest = h.hold_back();
    let (agent, engine) = h.start_both();
    h.wait_agent_progress();
    broker.kill();
    // The agent keeps reading into its spool while the broker is away.
    h.release(&rest);
    std::thread::sleep(Duration::from_secs(3));
    broker.restart();
    h.finish(agent, engine);
}

#[test]
fn an_engine_paused_for_30_seconds_loses_nothing() {
    let Some(broker) = tansu::Broker::start() else {
        return;
    };
    let h = Hospital::new(&broker);
    let rest = h.hold_back();
    let (agent, engine) = h.start_both();
    h.wait_agent_progress();
    // Longer than the session timeout (10 s here): the group drops the engine, which
    // finds out when it wakes, and takes its partitions back from its snapshots.
    engine.signal("STOP");
    h.release(&rest);
    std::thread::sleep(Duration::from_secs(30));
    engine.signal("CONT");
    h.finish(agent, engine);
}

/// Both engines hold partitions when one is killed; the survivor must end up with all of
/// them. (tansu 0.6 keeps serving the old assignment after the dead member's session
/// expires; the engines' partition leases notice the orphaned partition and rejoin.)
#[test]
fn a_second_engine_takes_over_the_partitions_of_a_killed_one() {
    let Some(broker) = tansu::Broker::start() else {
        return;
    };
    let h = Hospital::new(&broker);
    let rest = h.hold_back();
    let first = h.start("engine", "engine-a.log");
    let second = h.start("engine", "engine-b.log");
    let agent = h.start("agent", "agent.log");
    h.wait_agent_progress();
    h.wait_all_hold_partitions(&[&first, &second]);
    let held = h.leases()[&first.id()].clone();
    first.kill();
    h.release(&rest);
    h.wait_caught_up();
    let survivor = h.leases()[&second.id()].clone();
    assert_eq!(
        survivor,
        (0..PARTITIONS as i64).collect::<Vec<_>>(),
        "the survivor holds every partition (the killed engine held {held:?})"
    );
    h.stop_and_check(agent, second);
}

/// Issue 14: with the broker gone, SIGTERM still ends the agent and the engine within
/// 10 s (what is not yet produced stays in the agent's spool, offsets not committed and
/// alerts not acknowledged by Kafka stay for the next start); after the broker and both
/// are back, the sink holds replay's alerts, every event was applied once, and
/// `alerts_topic` holds every alert.
#[test]
fn agent_and_engine_stop_within_10_s_with_the_broker_gone_and_lose_nothing() {
    let Some(mut broker) = tansu::Broker::start_with("sqlite://tansu.db") else {
        return;
    };
    let h = Hospital::new(&broker);
    let rest = h.hold_back();
    let (agent, engine) = h.start_both();
    h.wait_agent_progress();
    std::thread::sleep(Duration::from_millis(1500));
    broker.kill();
    // The agent reads the rest into its spool; nothing can reach Kafka.
    h.release(&rest);
    std::thread::sleep(Duration::from_secs(2));
    for (p, what) in [(agent, "agent"), (engine, "engine")] {
        let t = Instant::now();
        p.stop(Duration::from_secs(10));
        eprintln!("{what} stopped in {:?} with the broker gone", t.elapsed());
    }
    broker.restart();
    let engine = h.start("engine", "engine2.log");
    let agent = h.start("agent", "agent2.log");
    h.finish(agent, engine);
    let id = |v: &serde_json::Value| v["id"].as_str().unwrap().to_string();
    let on_kafka: std::collections::BTreeSet<String> =
        topic::read_all(&broker.address(), "phiwatch.alerts", 1, h.want.len())
            .iter()
            .map(id)
            .collect();
    let want: std::collections::BTreeSet<String> = h
        .want
        .iter()
        .map(|l| id(&serde_json::from_str(l).unwrap()))
        .collect();
    assert_eq!(on_kafka, want, "alerts on phiwatch.alerts");
}

/// Through agent -> broker -> engine, an export of 850 records and, ten minutes later, a
/// CSV of 850 patient rows copied to a watched USB folder on the same host give the chain
/// alert naming both steps within seconds of the copy.
#[test]
fn export_then_usb_copy_through_kafka_is_reported_within_seconds() {
    use crate::support::serial;
    let _inotify = serial::inotify();
    let Some(broker) = tansu::Broker::start() else {
        return;
    };
    broker.create_topic("phiwatch.events", PARTITIONS as u32);
    broker.create_topic("phiwatch.alerts", 1);
    let (dir, usb, log, config) = crate::detection::e2e_exfil::exfil_setup();
    let mut c = std::fs::OpenOptions::new()
        .append(true)
        .open(&config)
        .unwrap();
    writeln!(
        c,
        "[kafka]\nbrokers = \"{}\"\nsession_timeout_secs = 10",
        broker.address()
    )
    .unwrap();
    drop(c);
    let engine_log = dir.path().join("engine.log");
    let engine = start_logged("engine", &config, &engine_log);
    let agent = start_logged("agent", &config, &dir.path().join("agent.log"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&engine_log)
        .unwrap_or_default()
        .contains("partitions assigned")
    {
        assert!(Instant::now() < deadline, "the engine got no partitions");
        std::thread::sleep(Duration::from_millis(200));
    }

    crate::detection::e2e_exfil::export_then_usb_copy_is_reported_within_10_s(
        dir.path(),
        &usb,
        &log,
    );
    agent.stop(Duration::from_secs(30));
    engine.stop(Duration::from_secs(30));
}
