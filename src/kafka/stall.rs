//! Fetch stalls: a partition this engine is assigned that stays silent while its siblings
//! are heard.
//!
//! Why: agents send a heartbeat to every partition each second while any of their sources
//! is quiet, and events are keyed by user, so in a live hospital every partition hears
//! something often. A partition that the group gave this engine but whose fetches never
//! deliver (seen with tansu 0.6 after the engine was paused past its session and took its
//! partitions back: two partitions resumed, the third never did) is as bad as one nobody
//! holds (`kafka::lease`): its users' snooping goes unseen and nothing looks broken.
//!
//! So the engine notes when each assigned partition last delivered a message. One silent
//! for [`StallWatch::AFTER`] while another was heard within [`StallWatch::OTHERS_WITHIN`]
//! is repositioned at the next offset the engine would apply (a seek restarts its
//! fetcher); one found stalled again right after is handed back through a rejoin of the
//! group, at most once per [`StallWatch::REJOIN_COOLDOWN`]. A repositioning that was not
//! needed only fetches again what was not applied yet, so a false alarm (a partition whose
//! few users are all quiet while the agents' sources are busy, so no heartbeats) costs
//! nothing but a counted, logged look; a needless rejoin costs one rebalance, hence the
//! cooldown.

use crate::metrics;
use anyhow::{anyhow, Result};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::Offset;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use tracing::warn;

/// What to do about one partition found stalled.
#[derive(Debug, PartialEq)]
pub enum Remedy {
    /// Restart its fetcher at the engine's position.
    Seek(i32),
    /// It stalled again after a seek: leave and rejoin the group.
    Rejoin(i32),
}

/// Per assigned partition: when it last delivered, and whether it was sought since.
pub struct StallWatch {
    heard: BTreeMap<i32, Instant>,
    sought: BTreeSet<i32>,
    last_look: Instant,
    last_rejoin: Option<Instant>,
}

impl Default for StallWatch {
    fn default() -> Self {
        StallWatch {
            heard: BTreeMap::new(),
            sought: BTreeSet::new(),
            last_look: Instant::now(),
            last_rejoin: None,
        }
    }
}

impl StallWatch {
    /// Silence that counts as a stall: many missed agent heartbeats.
    pub const AFTER: Duration = Duration::from_secs(20);
    /// ... provided another partition was heard this recently (someone is sending).
    pub const OTHERS_WITHIN: Duration = Duration::from_secs(3);
    /// Rejoins for a stall no more often than this; seeks in between.
    pub const REJOIN_COOLDOWN: Duration = Duration::from_secs(600);
    const LOOK_EVERY: Duration = Duration::from_secs(1);

    /// A message of partition `p` arrived.
    pub fn heard(&mut self, p: i32, now: Instant) {
        self.heard.insert(p, now);
        self.sought.remove(&p);
    }

    /// Compares the assignment with what was heard. Partitions newly assigned get a full
    /// grace from `now`; those no longer assigned are forgotten.
    pub fn look(&mut self, assigned: &[i32], now: Instant) -> Vec<Remedy> {
        self.heard.retain(|p, _| assigned.contains(p));
        self.sought.retain(|p| assigned.contains(p));
        for p in assigned {
            self.heard.entry(*p).or_insert(now);
        }
        let mut remedies = Vec::new();
        let mut rejoining = false;
        for (&p, &last) in &self.heard {
            if now.duration_since(last) < Self::AFTER {
                continue;
            }
            let others_heard = self
                .heard
                .iter()
                .any(|(&q, &t)| q != p && now.duration_since(t) < Self::OTHERS_WITHIN);
            if !others_heard {
                continue;
            }
            let cooled = self
                .last_rejoin
                .is_none_or(|t| now.duration_since(t) >= Self::REJOIN_COOLDOWN);
            remedies.push(if self.sought.contains(&p) && cooled && !rejoining {
                rejoining = true;
                Remedy::Rejoin(p)
            } else {
                Remedy::Seek(p)
            });
        }
        for r in &remedies {
            match r {
                Remedy::Seek(p) => {
                    self.sought.insert(*p);
                    self.heard.insert(*p, now);
                }
                Remedy::Rejoin(_) => {
                    // The rejoin reassigns everything; every partition starts a new grace.
                    self.sought.clear();
                    self.heard.clear();
                    self.last_rejoin = Some(now);
                }
            }
        }
        remedies
    }

    /// Once a second: looks for stalled partitions and acts. `next` gives the offset the
    /// engine applies next in a partition (loading its snapshot when not held yet).
    pub fn tick<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        topic: &str,
        mut next: impl FnMut(i32) -> Result<i64>,
    ) -> Result<()> {
        let now = Instant::now();
        if now.duration_since(self.last_look) < Self::LOOK_EVERY {
            return Ok(());
        }
        self.last_look = now;
        let assigned: Vec<i32> = match consumer.assignment() {
            Ok(tpl) => tpl.elements().iter().map(|e| e.partition()).collect(),
            Err(_) => return Ok(()),
        };
        for remedy in self.look(&assigned, now) {
            metrics::get().fetch_stalls.inc();
            match remedy {
                Remedy::Seek(p) => {
                    let at = next(p)?;
                    warn!(
                        partition = p,
                        offset = at,
                        silent_secs = Self::AFTER.as_secs(),
                        "an assigned partition delivered nothing while the others did; restarting its fetch at the engine's position"
                    );
                    if let Err(e) =
                        consumer.seek(topic, p, Offset::Offset(at), Duration::from_secs(1))
                    {
                        warn!(partition = p, error = %e, "seek failed; the next look rejoins the group");
                    }
                }
                Remedy::Rejoin(p) => {
                    warn!(
                        partition = p,
                        "an assigned partition stayed silent after its fetch was restarted; leaving and rejoining the consumer group"
                    );
                    metrics::get().group_rejoins.inc();
                    consumer.unsubscribe();
                    consumer
                        .subscribe(&[topic])
                        .map_err(|e| anyhow!("cannot subscribe to {topic} again: {e}"))?;
                    break;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn a_partition_silent_while_its_siblings_speak_is_sought_then_rejoined() {
        let mut w = StallWatch::default();
        let t0 = Instant::now();
        assert!(w.look(&[0, 1, 2], t0).is_empty(), "grace from assignment");
        for s in 1..=25 {
            w.heard(0, t0 + S * s);
            w.heard(1, t0 + S * s);
        }
        assert!(w.look(&[0, 1, 2], t0 + S * 19).is_empty());
        assert_eq!(w.look(&[0, 1, 2], t0 + S * 21), vec![Remedy::Seek(2)]);
        // A fresh grace after the seek; still silent: rejoin.
        assert!(w.look(&[0, 1, 2], t0 + S * 25).is_empty());
        for s in 26..=42 {
            w.heard(0, t0 + S * s);
        }
        assert_eq!(w.look(&[0, 1, 2], t0 + S * 42), vec![Remedy::Rejoin(2)]);
    }

    #[test]
    fn after_a_rejoin_a_partition_that_stays_quiet_is_only_sought_until_the_cooldown() {
        let mut w = StallWatch::default();
        let t0 = Instant::now();
        w.look(&[0, 1], t0);
        w.heard(0, t0 + S * 21);
        assert_eq!(w.look(&[0, 1], t0 + S * 21), vec![Remedy::Seek(1)]);
        w.heard(0, t0 + S * 42);
        assert_eq!(w.look(&[0, 1], t0 + S * 42), vec![Remedy::Rejoin(1)]);
        // Reassigned; partition 1 stays quiet while 0 speaks: seeks, no second rejoin.
        w.look(&[0, 1], t0 + S * 43);
        let mut t = 43;
        for _ in 0..10 {
            t += 21;
            w.heard(0, t0 + S * t);
            assert_eq!(w.look(&[0, 1], t0 + S * t), vec![Remedy::Seek(1)]);
        }
        let later = 42 + StallWatch::REJOIN_COOLDOWN.as_secs() as u32 + 21;
        w.heard(0, t0 + S * later);
        assert_eq!(w.look(&[0, 1], t0 + S * later), vec![Remedy::Rejoin(1)]);
    }

    #[test]
    fn silence_everywhere_is_a_quiet_hospital_not_a_stall() {
        let mut w = StallWatch::default();
        let t0 = Instant::now();
        w.look(&[0, 1], t0);
        w.heard(0, t0 + S);
        assert!(w.look(&[0, 1], t0 + S * 60).is_empty());
    }

    #[test]
    fn a_partition_heard_after_a_seek_is_healthy_again() {
        let mut w = StallWatch::default();
        let t0 = Instant::now();
        w.look(&[0, 1], t0);
        w.heard(0, t0 + S * 21);
        assert_eq!(w.look(&[0, 1], t0 + S * 21), vec![Remedy::Seek(1)]);
        w.heard(1, t0 + S * 22);
        w.heard(0, t0 + S * 50);
        assert_eq!(
            w.look(&[0, 1], t0 + S * 50),
            vec![Remedy::Seek(1)],
            "a new stall starts again with a seek"
        );
    }

    #[test]
    fn partitions_taken_away_are_forgotten_and_new_ones_get_a_grace() {
        let mut w = StallWatch::default();
        let t0 = Instant::now();
        w.look(&[0, 1], t0);
        w.heard(0, t0 + S * 30);
        assert!(w.look(&[0, 2], t0 + S * 30).is_empty());
    }
}
