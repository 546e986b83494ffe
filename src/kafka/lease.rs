//! Partition leases: which engine holds which partitions, written to the state folder
//! the engines of one group share anyway.
//!
//! Why: the consumer group is supposed to give every partition to a live member, but the
//! broker's group coordinator decides that, and it can get it wrong. tansu 0.6, for one,
//! keeps answering with the previous assignment after a member's session expires, so the
//! dead member's partitions stay with nobody. A partition that nobody reads is the worst
//! failure phiwatch can have: its users' snooping goes unseen and nothing looks broken.
//!
//! So each engine writes a small lease file every second naming the partitions it holds.
//! A partition that no live lease names (a lease is live while it is fresh) is *unowned*;
//! `phiwatch_engine_partitions_unowned` shows how many. Once one has been unowned for
//! `[kafka] orphan_rejoin_secs`, the live engine whose lease sorts first leaves the group
//! and joins it again, which makes any coordinator compute a fresh assignment from the
//! members that are actually there. With a healthy broker this never fires: a rebalance
//! completes well within the default 60 s.

use crate::metrics;
use anyhow::{anyhow, Context, Result};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tracing::warn;

/// How long a lease counts as live after it was written: several missed writes, so a
/// slow snapshot does not make partitions look abandoned.
pub const LEASE_TTL: Duration = Duration::from_secs(10);

/// Lease files of engines gone for this long are removed by whoever reads them.
const FORGET_AFTER: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Lease {
    pub engine: String,
    pub partitions: Vec<i32>,
    /// Unix time in milliseconds when it was written.
    pub written_ms: u64,
}

/// Unix time now, in milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// This engine's lease file, in `dir` (`[state] dir`/engine/leases).
pub struct Leases {
    dir: PathBuf,
    me: String,
}

impl Leases {
    /// `me` names this engine uniquely: host, process and start time.
    pub fn new(dir: &Path, me: String) -> Result<Leases> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the lease folder {}", dir.display()))?;
        Ok(Leases {
            dir: dir.to_path_buf(),
            me,
        })
    }

    pub fn me(&self) -> &str {
        &self.me
    }

    fn path(&self, engine: &str) -> PathBuf {
        self.dir.join(format!("{engine}.json"))
    }

    /// Says which partitions this engine holds now.
    pub fn write(&self, partitions: Vec<i32>) -> Result<()> {
        let lease = Lease {
            engine: self.me.clone(),
            partitions,
            written_ms: now_ms(),
        };
        crate::durable::write_json(&self.path(&self.me), &lease)
            .with_context(|| format!("cannot write the lease {}", self.path(&self.me).display()))
    }

    /// Removes this engine's lease (a clean stop: its partitions were handed over).
    pub fn remove(&self) {
        let _ = std::fs::remove_file(self.path(&self.me));
    }

    /// The leases written within `LEASE_TTL`; long-dead ones are deleted on the way.
    pub fn live(&self) -> Vec<Lease> {
        let now = now_ms();
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut live = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            match crate::durable::read_json::<Lease>(&path) {
                Ok(Some(l)) => {
                    let age = Duration::from_millis(now.saturating_sub(l.written_ms));
                    if age <= LEASE_TTL {
                        live.push(l);
                    } else if age > FORGET_AFTER {
                        let _ = std::fs::remove_file(&path);
                    }
                }
                Ok(None) => {}
                // Being replaced right now, or damaged: not evidence of a live owner.
                Err(e) => {
                    warn!(path = %path.display(), error = %e, "unreadable lease file ignored")
                }
            }
        }
        live.sort_by(|a, b| a.engine.cmp(&b.engine));
        live
    }
}

/// Tracks how long each partition has been unowned and decides when to rejoin.
pub struct OrphanWatch {
    after: Duration,
    unowned_since: BTreeMap<i32, Instant>,
    last_rejoin: Option<Instant>,
}

/// What the watch saw on one look.
#[derive(Debug, PartialEq)]
pub struct Look {
    /// Partitions no live lease names.
    pub unowned: Vec<i32>,
    /// Set when this engine should rejoin the group now: the partitions that have been
    /// unowned for longer than the limit.
    pub rejoin_for: Option<Vec<i32>>,
}

impl OrphanWatch {
    /// `after` zero turns rejoining off (the gauge still counts).
    pub fn new(after: Duration) -> OrphanWatch {
        OrphanWatch {
            after,
            unowned_since: BTreeMap::new(),
            last_rejoin: None,
        }
    }

    /// `partitions` is the topic's partition count; `live` the live leases (this engine's
    /// included); `me` this engine's lease name.
    pub fn look(&mut self, partitions: i32, live: &[Lease], me: &str, now: Instant) -> Look {
        let owned: BTreeSet<i32> = live
            .iter()
            .flat_map(|l| l.partitions.iter().copied())
            .collect();
        let unowned: Vec<i32> = (0..partitions).filter(|p| !owned.contains(p)).collect();
        self.unowned_since.retain(|p, _| unowned.contains(p));
        for p in &unowned {
            self.unowned_since.entry(*p).or_insert(now);
        }
        let overdue: Vec<i32> = self
            .unowned_since
            .iter()
            .filter(|(_, since)| now.duration_since(**since) >= self.after)
            .map(|(p, _)| *p)
            .collect();
        // One engine acts, the first live one by name, so the others do not pile on.
        let first = live.first().is_some_and(|l| l.engine == me);
        let cooled = self
            .last_rejoin
            .is_none_or(|t| now.duration_since(t) >= self.after);
        let rejoin_for =
            (!self.after.is_zero() && !overdue.is_empty() && first && cooled).then(|| {
                self.last_rejoin = Some(now);
                // The clock restarts: the rejoin gets its full grace to take effect.
                self.unowned_since.clear();
                overdue
            });
        Look {
            unowned,
            rejoin_for,
        }
    }
}

/// This engine's lease and the watch for partitions nobody holds.
pub struct Owners {
    leases: Leases,
    watch: OrphanWatch,
    partitions: Option<i32>,
    last_write: Option<Instant>,
    last_look: Instant,
}

impl Owners {
    const WRITE_EVERY: Duration = Duration::from_secs(1);
    const LOOK_EVERY: Duration = Duration::from_secs(5);

    pub fn new(cfg: &crate::config::Config, dir: &Path) -> Result<Owners> {
        let me = format!(
            "{}-{}-{}",
            crate::uid::hostname(),
            std::process::id(),
            now_ms()
        );
        Ok(Owners {
            leases: Leases::new(&dir.join("leases"), me)?,
            watch: OrphanWatch::new(Duration::from_secs(cfg.kafka.orphan_rejoin_secs)),
            partitions: None,
            last_write: None,
            last_look: Instant::now(),
        })
    }

    /// Renews the lease every second; every few seconds, looks for unowned partitions and
    /// rejoins the group when this engine is the one to act.
    pub fn tick<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        topic: &str,
    ) -> Result<()> {
        if self
            .last_write
            .is_some_and(|t| t.elapsed() < Self::WRITE_EVERY)
        {
            return Ok(());
        }
        self.last_write = Some(Instant::now());
        let held = match consumer.assignment() {
            Ok(tpl) => tpl.elements().iter().map(|e| e.partition()).collect(),
            Err(e) => {
                warn!(error = %e, "cannot read this engine's assignment; lease not renewed");
                return Ok(());
            }
        };
        if let Err(e) = self.leases.write(held) {
            warn!(error = %format!("{e:#}"), "lease not renewed; other engines may count these partitions as unowned");
        }
        if self.last_look.elapsed() < Self::LOOK_EVERY {
            return Ok(());
        }
        self.last_look = Instant::now();
        // The partition count, from the broker; the last known one while it does not answer.
        match consumer.fetch_metadata(Some(topic), Duration::from_secs(1)) {
            Ok(md) => {
                if let Some(t) = md.topics().iter().find(|t| t.name() == topic) {
                    if !t.partitions().is_empty() {
                        self.partitions = Some(t.partitions().len() as i32);
                    }
                }
            }
            Err(e) => {
                warn!(error = %e, "cannot fetch the topic's metadata; keeping the last partition count")
            }
        }
        let Some(partitions) = self.partitions else {
            return Ok(());
        };
        let look = self.watch.look(
            partitions,
            &self.leases.live(),
            self.leases.me(),
            Instant::now(),
        );
        metrics::get()
            .partitions_unowned
            .set(look.unowned.len() as i64);
        if let Some(orphans) = look.rejoin_for {
            warn!(partitions = ?orphans, "partitions have had no live engine for orphan_rejoin_secs; leaving and rejoining the consumer group to force a fresh assignment");
            metrics::get().group_rejoins.inc();
            consumer.unsubscribe();
            consumer
                .subscribe(&[topic])
                .map_err(|e| anyhow!("cannot subscribe to {topic} again: {e}"))?;
        }
        Ok(())
    }

    /// Leaving for good: the lease goes, so the partitions look free at once.
    pub fn remove(&self) {
        self.leases.remove();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(engine: &str, partitions: &[i32]) -> Lease {
        Lease {
            engine: engine.into(),
            partitions: partitions.to_vec(),
            written_ms: now_ms(),
        }
    }

    #[test]
    fn a_partition_unowned_past_the_limit_makes_the_first_engine_rejoin() {
        let mut w = OrphanWatch::new(Duration::from_secs(60));
        let t0 = Instant::now();
        let live = [lease("a", &[0, 1]), lease("b", &[])];
        let look = w.look(3, &live, "a", t0);
        assert_eq!(look.unowned, vec![2]);
        assert_eq!(look.rejoin_for, None, "not yet: within the grace");
        assert_eq!(
            w.look(3, &live, "a", t0 + Duration::from_secs(59))
                .rejoin_for,
            None
        );
        let look = w.look(3, &live, "a", t0 + Duration::from_secs(61));
        assert_eq!(look.rejoin_for, Some(vec![2]));
        // After a rejoin the partition gets a full grace again, counted from the next look.
        assert_eq!(
            w.look(3, &live, "a", t0 + Duration::from_secs(90))
                .rejoin_for,
            None
        );
        assert_eq!(
            w.look(3, &live, "a", t0 + Duration::from_secs(125))
                .rejoin_for,
            None
        );
        assert_eq!(
            w.look(3, &live, "a", t0 + Duration::from_secs(151))
                .rejoin_for,
            Some(vec![2])
        );
    }

    #[test]
    fn only_the_first_live_engine_rejoins() {
        let mut w = OrphanWatch::new(Duration::from_secs(1));
        let t0 = Instant::now();
        let live = [lease("a", &[0]), lease("b", &[1])];
        w.look(3, &live, "b", t0);
        let look = w.look(3, &live, "b", t0 + Duration::from_secs(5));
        assert_eq!(look.unowned, vec![2]);
        assert_eq!(look.rejoin_for, None);
    }

    #[test]
    fn a_partition_owned_again_resets_its_clock() {
        let mut w = OrphanWatch::new(Duration::from_secs(10));
        let t0 = Instant::now();
        w.look(2, &[lease("a", &[0])], "a", t0);
        let back = [lease("a", &[0]), lease("b", &[1])];
        assert!(w
            .look(2, &back, "a", t0 + Duration::from_secs(5))
            .unowned
            .is_empty());
        let look = w.look(2, &[lease("a", &[0])], "a", t0 + Duration::from_secs(12));
        assert_eq!((look.unowned, look.rejoin_for), (vec![1], None));
    }

    #[test]
    fn zero_turns_rejoining_off_but_still_counts() {
        let mut w = OrphanWatch::new(Duration::ZERO);
        let look = w.look(2, &[lease("a", &[])], "a", Instant::now());
        assert_eq!((look.unowned, look.rejoin_for), (vec![0, 1], None));
    }

    #[test]
    fn stale_and_unreadable_leases_are_not_live() {
        let dir = tempfile::tempdir().unwrap();
        let a = Leases::new(dir.path(), "a".into()).unwrap();
        a.write(vec![0, 1]).unwrap();
        let stale = Lease {
            engine: "old".into(),
            partitions: vec![2],
            written_ms: now_ms() - 60_000,
        };
        crate::durable::write_json(&dir.path().join("old.json"), &stale).unwrap();
        std::fs::write(dir.path().join("torn.json"), b"{\"engine\":").unwrap();
        let live = a.live();
        assert_eq!(live.len(), 1);
        assert_eq!(live[0].engine, "a");
        assert_eq!(live[0].partitions, vec![0, 1]);
        a.remove();
        assert!(a.live().is_empty());
    }
}
