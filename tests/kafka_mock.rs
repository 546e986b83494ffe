//! In-process fault injection with librdkafka's mock cluster: the agent against a broker
//! that goes away mid-stream and comes back, and against one that answers produce
//! requests with errors. Either way every line reaches the topic exactly once, and a
//! read position is checkpointed only once Kafka has acknowledged everything before it.
//! (The real-broker tests with real processes are `kafka::e2e` in tests/behaviour.rs.)
//!
//! A binary of its own: the agents run inside this process, on its one metrics registry,
//! and the mock brokers accept connections on sockets a child process would inherit, so
//! no test that starts child processes runs beside them (see `support::serial`).

mod support;

use phiwatch::config::Config;
use phiwatch::daemon::signals::Flags;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use support::{topic, wait_for};

const TOPIC: &str = "phiwatch.events";
const PARTITIONS: i32 = 3;

struct Agent {
    dir: tempfile::TempDir,
    flags: Arc<Flags>,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
    written: usize,
}

impl Agent {
    fn start(bootstrap: &str) -> Agent {
        Agent::start_with(bootstrap, "")
    }

    /// `kafka` is appended to the config's `[kafka]` section.
    fn start_with(bootstrap: &str, kafka: &str) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("in")).unwrap();
        std::fs::File::create(dir.path().join("in/access.jsonl")).unwrap();
        let config = dir.path().join("phiwatch.toml");
        std::fs::write(
            &config,
            format!(
                r#"
[[sources]]
name = "ehr"
type = "file"
paths = ["in/*.jsonl"]
format = "canonical"

[state]
dir = "state"

[kafka]
brokers = "{bootstrap}"
{kafka}
"#
            ),
        )
        .unwrap();
        let cfg = Config::load(&config).unwrap();
        let flags = Arc::new(Flags {
            stop: Arc::new(AtomicBool::new(false)),
            reload: AtomicBool::new(false),
        });
        let f = Arc::clone(&flags);
        let thread = std::thread::spawn(move || phiwatch::commands::agent::run(&cfg, f));
        Agent {
            dir,
            flags,
            thread: Some(thread),
            written: 0,
        }
    }

    fn input(&self) -> PathBuf {
        self.dir.path().join("in/access.jsonl")
    }

    /// Appends `n` chart views by ten users.
    fn write(&mut self, n: usize) {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.input())
            .unwrap();
        for i in self.written..self.written + n {
            writeln!(
                f,
                r#"{{"ts":"2026-03-02T10:{:02}:{:02}Z","user":"u{}","action":"view","patient":"p{i}"}}"#,
                (i / 60) % 60,
                i % 60,
                i % 10
            )
            .unwrap();
        }
        self.written += n;
    }

    /// The offset of the input file that Kafka acknowledged, per the checkpoint.
    fn acked(&self) -> u64 {
        let path = self.dir.path().join("state/agent/positions.json");
        let Ok(text) = std::fs::read_to_string(path) else {
            return 0;
        };
        let cp: serde_json::Value = serde_json::from_str(&text).unwrap();
        cp["acked"]["ehr"]
            .as_array()
            .and_then(|a| a.first())
            .and_then(|p| p["offset"].as_u64())
            .unwrap_or(0)
    }

    fn size(&self) -> u64 {
        std::fs::metadata(self.input()).unwrap().len()
    }

    fn wait_acked_all(&self, within: Duration) {
        let deadline = Instant::now() + within;
        while self.acked() != self.size() {
            assert!(
                Instant::now() < deadline,
                "acked {} of {} bytes after {within:?}",
                self.acked(),
                self.size()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn stop(mut self) {
        self.flags.stop.store(true, Ordering::SeqCst);
        let r = self.thread.take().unwrap().join().unwrap();
        r.unwrap();
    }
}

fn cluster() -> MockCluster<'static, DefaultProducerContext> {
    let c = MockCluster::new(1).unwrap();
    c.create_topic(TOPIC, PARTITIONS, 1).unwrap();
    c
}

/// Every message on the topic: the (source offset) of each, from its provenance.
fn topic_offsets(bootstrap: &str, want: usize) -> Vec<u64> {
    topic::read_all(bootstrap, TOPIC, PARTITIONS, want)
        .iter()
        .map(|e| e["origin"]["offset"].as_u64().unwrap())
        .collect()
}

fn assert_exactly_once(offsets: &[u64], lines: usize) {
    let unique: BTreeSet<u64> = offsets.iter().copied().collect();
    assert_eq!(unique.len(), lines, "every line reached the topic");
    assert_eq!(offsets.len(), lines, "no line reached the topic twice");
}

#[test]
fn a_broker_outage_holds_the_checkpoint_and_loses_nothing() {
    let c = cluster();
    let bootstrap = c.bootstrap_servers();
    let mut agent = Agent::start(&bootstrap);
    agent.write(200);
    agent.wait_acked_all(Duration::from_secs(30));
    let before = agent.acked();

    c.broker_down(1).unwrap();
    agent.write(300);
    // Read into the spool while the broker is away ...
    let spool = agent.dir.path().join("state/agent/spool");
    wait_for(
        "the last line to reach the spool",
        Duration::from_secs(30),
        // The patient id alone: the spool holds events in the agent's encoding (compact
        // by default), where no JSON key surrounds it.
        || spool_holds(&spool, "p499"),
    );
    // ... but not acknowledged, so the checkpoint must not move.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        agent.acked(),
        before,
        "checkpointed lines Kafka never acknowledged"
    );

    c.broker_up(1).unwrap();
    agent.wait_acked_all(Duration::from_secs(60));
    agent.stop();
    assert_exactly_once(&topic_offsets(&bootstrap, 500), 500);
}

/// With the broker away and more lines than the spool holds, reading pauses at the spool's
/// limit (backpressure) and nothing is dropped: all of it arrives once the broker is back.
#[test]
fn a_full_spool_pauses_reading_and_drops_nothing() {
    let c = cluster();
    let bootstrap = c.bootstrap_servers();
    c.broker_down(1).unwrap();
    let mut agent = Agent::start_with(&bootstrap, "spool_max_bytes = 1048576");
    agent.write(100_000);
    let spool = agent.dir.path().join("state/agent/spool");
    // The spool grows to its limit and stays there.
    let mut last = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let now = dir_bytes(&spool);
        if now > 0 && now == last {
            break;
        }
        assert!(Instant::now() < deadline, "the spool never settled");
        last = now;
    }
    assert!(
        agent.size() > 4 * last,
        "the input ({} bytes) is much larger than what was spooled ({last} bytes)",
        agent.size()
    );
    // One batch may go past the limit before reading pauses.
    assert!(last < 2 << 20, "the spool holds {last} bytes, limit 1 MiB");
    assert_eq!(agent.acked(), 0);

    c.broker_up(1).unwrap();
    agent.wait_acked_all(Duration::from_secs(120));
    agent.stop();
    assert_exactly_once(&topic_offsets(&bootstrap, 100_000), 100_000);
}

#[test]
fn produce_errors_are_retried_without_duplicates() {
    let c = cluster();
    let bootstrap = c.bootstrap_servers();
    // Retriable errors on the next produce requests: the idempotent producer retries them.
    c.request_errors(
        RDKafkaApiKey::Produce,
        &[
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
        ],
    );
    let mut agent = Agent::start(&bootstrap);
    agent.write(300);
    agent.wait_acked_all(Duration::from_secs(60));
    agent.write(100);
    agent.wait_acked_all(Duration::from_secs(60));
    agent.stop();
    assert_exactly_once(&topic_offsets(&bootstrap, 400), 400);
}

/// Whether a spool segment holds `needle` (records are JSON, framed with a length and CRC).
fn spool_holds(dir: &Path, needle: &str) -> bool {
    let Ok(d) = std::fs::read_dir(dir) else {
        return false;
    };
    d.filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read(e.path()).ok())
        .any(|bytes| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
}

#[test]
fn a_second_agent_on_the_same_state_folder_is_refused() {
    let c = cluster();
    let agent = Agent::start(&c.bootstrap_servers());
    let lock = agent.dir.path().join("state/agent/agent.lock");
    wait_for(
        "the agent to take its lock",
        Duration::from_secs(10),
        || lock.exists(),
    );
    let cfg = Config::load(&agent.dir.path().join("phiwatch.toml")).unwrap();
    let flags = Arc::new(Flags {
        stop: Arc::new(AtomicBool::new(false)),
        reload: AtomicBool::new(false),
    });
    let err = phiwatch::commands::agent::run(&cfg, flags).unwrap_err();
    assert!(
        format!("{err:#}").contains("another phiwatch agent is running"),
        "{err:#}"
    );
    agent.stop();
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Records where librdkafka put each keyed message.
#[derive(Default)]
struct Placed(std::sync::Mutex<Vec<(String, i32)>>);

impl rdkafka::ClientContext for Placed {}

impl rdkafka::producer::ProducerContext for Placed {
    type DeliveryOpaque = ();

    fn delivery(&self, r: &rdkafka::producer::DeliveryResult<'_>, _: ()) {
        use rdkafka::Message;
        let m = r.as_ref().unwrap();
        let key = String::from_utf8(m.key().unwrap().to_vec()).unwrap();
        self.0.lock().unwrap().push((key, m.partition()));
    }
}

/// The batched encoding picks partitions itself: it must put every user where
/// librdkafka's default partitioner put (and, from agents on other encodings, puts) the
/// user's one-event messages, or a user's state would be split between partitions.
#[test]
fn batches_go_to_the_partition_librdkafka_gives_each_user() {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let c = MockCluster::new(1).unwrap();
    let partitions = 12;
    c.create_topic("placed", partitions, 1).unwrap();
    let producer: BaseProducer<Placed> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", c.bootstrap_servers())
        .create_with_context(Placed::default())
        .unwrap();
    let mut keys: Vec<String> = (0..300).map(|i| format!("u{i}")).collect();
    keys.extend(["jsmith", "dr.o'brien", "ßtraße", "a", "x@hospital.example"].map(String::from));
    for k in &keys {
        producer
            .send(BaseRecord::<String, str>::to("placed").key(k).payload("x"))
            .unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    let placed = producer.context().0.lock().unwrap().clone();
    assert_eq!(placed.len(), keys.len());
    for (key, p) in placed {
        assert_eq!(
            phiwatch::kafka::producer::partition_of(&key, partitions),
            p,
            "{key}"
        );
    }

    // And an agent's batches: every event sits in its user's partition.
    let c = cluster();
    let bootstrap = c.bootstrap_servers();
    let mut agent = Agent::start(&bootstrap);
    agent.write(500);
    agent.wait_acked_all(Duration::from_secs(30));
    agent.stop();
    let consumer: rdkafka::consumer::BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "placement-check")
        .create()
        .unwrap();
    use rdkafka::consumer::Consumer;
    use rdkafka::Message;
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(TOPIC, p, rdkafka::Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let (mut events, mut batches) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    while events < 500 && Instant::now() < deadline {
        let Some(m) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = m.unwrap();
        let payload = m.payload().unwrap();
        if payload.first() != Some(&phiwatch::kafka::wire::BATCH_V1) {
            continue; // a heartbeat
        }
        batches += 1;
        for e in phiwatch::kafka::wire::events(payload) {
            let e = e.unwrap();
            let key = phiwatch::event::key(&e.user);
            assert_eq!(
                phiwatch::kafka::producer::partition_of(&key, PARTITIONS),
                m.partition()
            );
            events += 1;
        }
    }
    assert_eq!(events, 500);
    assert!(
        batches < 100,
        "{batches} messages for 500 events: not batched"
    );
}
