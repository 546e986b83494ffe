//! Detector kinds: what a detector does with the events its `detection` selects. Each
//! kind is one file here holding its `params`, what it remembers per user, and its
//! algorithm, so reading or changing one kind means reading one file, and a new kind is
//! a new file plus one line in the registry at the end of this one.
//!
//! Reading the detector file, the `detection` matcher and the templates stay in
//! `detect` (loading and compiling), apart from evaluation here, as in RSigma; `detect`
//! hands a kind its `params` block only, through [`Kind::compile`].
//!
//! Dispatch is an enum generated from the registry rather than trait objects, so that
//! per-user state stays plain serde structs in snapshots and evaluation is a `match`.

pub mod after_hours;
pub mod baseline;
pub mod burst;
mod common;
pub mod rule;
pub mod sequence;

use super::findings::Context;
use super::keyed::Keyed;
use super::stats::DayValues;
use super::users::UserState;
use crate::detect::rule::Matcher;
use crate::detect::{CompiledKind, Detector};
use crate::enrich::Enriched;
use anyhow::{bail, Result};
use rustc_hash::FxHashMap;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt::Debug;

/// One kind of detector. Implemented once per file in this folder.
pub trait DetectorKind: Sized {
    /// What detector files write in `kind:`.
    const NAME: &'static str;
    /// What the kind remembers per user and detector between events (`()`: nothing).
    /// Snapshots hold it under the detector's id without saying which kind wrote it, so
    /// it must load from any kind's stored state: give the struct `serde(default)` and
    /// keep field names across releases.
    type User: Default + Debug + Serialize + DeserializeOwned;

    /// Checks and keeps the detector's `params` (a mapping, empty when absent). Errors
    /// here reach `check` and startup with the file's name in front.
    fn compile(params: serde_norway::Value, matcher: &Matcher) -> Result<Self>;

    /// Judges one event the detector's `detection` matched. `Some` is evidence for a
    /// finding (see [`Context`]); `None` means the event changed only state.
    fn evaluate(&self, cx: Cx<'_>) -> Option<Context>;

    /// Rough bytes of one user's state, for the state size in metrics and the replay
    /// summary.
    fn approx_bytes(_user: &Self::User) -> usize {
        96
    }
}

/// What a kind sees when judging one event. Tables shared across users (`peers`,
/// `hosts`) are fields of the engine's `State`, where snapshots have always kept them; a
/// kind that needs a new one adds it there and here.
pub struct Cx<'a> {
    /// The detector's id: the key of its state in [`UserState::detectors`].
    pub id: &'a str,
    pub e: &'a Enriched<'a>,
    /// The detector's compiled `detection`, for kinds that test single selections.
    pub matcher: &'a Matcher,
    /// The learning period is over; until then kinds only learn.
    pub learned: bool,
    /// The event's user: working-hour habits and every detector's state
    /// ([`UserState::state`]).
    pub user: &'a mut UserState,
    /// The user's peer group (role and department), when the user is on the roster.
    pub peer_group: Option<&'a str>,
    /// Peer groups' daily values, by "detector\u{1f}group" (baseline).
    pub peers: &'a mut Keyed<DayValues>,
    /// First steps by workstation, by "detector\u{1f}host" (sequence).
    pub hosts: &'a mut FxHashMap<String, sequence::Step>,
}

/// Lets [`UserState::state`] find a kind's own state among a user's detector states.
/// Implemented by the registry for each kind listed there.
pub trait Registered: DetectorKind {
    fn get(slot: &mut Slot) -> Option<&mut Self::User>;
    fn put(user: Self::User) -> Slot;
}

/// The kind `K`'s state in `slot`. State loaded from a snapshot is read now that its
/// kind is known; state of another kind (the detector changed kind in a reload) or that
/// cannot be read starts empty, as for a user never seen.
pub(crate) fn claim<K: Registered>(slot: &mut Slot) -> &mut K::User {
    if K::get(slot).is_none() {
        let user = match slot {
            Slot::Stored(v) => K::User::deserialize(&*v).unwrap_or_default(),
            _ => K::User::default(),
        };
        *slot = K::put(user);
    }
    K::get(slot).expect("just put")
}

/// State loaded from a snapshot does not say which kind wrote it, so it is kept as
/// read until [`claim`]ed.
impl<'de> Deserialize<'de> for Slot {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Slot, D::Error> {
        serde_json::Value::deserialize(d).map(Slot::Stored)
    }
}

/// "a, b or c", for naming the choices in an error.
fn one_of(names: &[&str]) -> String {
    match names.split_last() {
        Some((last, [])) => last.to_string(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// Generates, from one list, everything that has to name every kind: the [`Kind`] enum
/// a compiled detector holds, the [`Slot`] enum of per-user states, and the `match`es
/// over them.
macro_rules! registry {
    ($($variant:ident => $kind:ty,)+) => {
        /// A detector's kind with its compiled `params`.
        #[derive(Debug, Clone)]
        pub enum Kind {
            $($variant($kind),)+
        }

        /// One user's state for one detector.
        #[derive(Debug, Clone)]
        pub enum Slot {
            /// Read from a snapshot, not yet claimed by its detector's kind.
            Stored(serde_json::Value),
            $($variant(<$kind as DetectorKind>::User),)+
        }

        impl Kind {
            /// Names detector files may write in `kind:`.
            pub const NAMES: &[&str] = &[$(<$kind as DetectorKind>::NAME,)+];

            /// The kind named `name` with its `params`.
            pub fn compile(name: &str, params: serde_norway::Value, matcher: &Matcher) -> Result<Kind> {
                $(if name == <$kind as DetectorKind>::NAME {
                    return Ok(Kind::$variant(<$kind as DetectorKind>::compile(params, matcher)?));
                })+
                bail!("kind {name:?} is not known; use {}", one_of(Kind::NAMES))
            }

            pub fn evaluate(&self, cx: Cx<'_>) -> Option<Context> {
                match self {
                    $(Kind::$variant(k) => k.evaluate(cx),)+
                }
            }

            /// Reads stored state into this kind's state now, rather than at the user's
            /// next event.
            pub fn adopt(&self, slot: &mut Slot) {
                match self {
                    $(Kind::$variant(_) => {
                        claim::<$kind>(slot);
                    })+
                }
            }
        }

        impl Slot {
            pub fn approx_bytes(&self) -> usize {
                match self {
                    Slot::Stored(_) => 96,
                    $(Slot::$variant(u) => <$kind as DetectorKind>::approx_bytes(u),)+
                }
            }
        }

        /// As the kind's own state, so snapshots keep the shape each kind gives it.
        impl Serialize for Slot {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                match self {
                    Slot::Stored(v) => v.serialize(s),
                    $(Slot::$variant(u) => u.serialize(s),)+
                }
            }
        }

        $(impl Registered for $kind {
            fn get(slot: &mut Slot) -> Option<&mut Self::User> {
                match slot {
                    Slot::$variant(u) => Some(u),
                    _ => None,
                }
            }

            fn put(user: Self::User) -> Slot {
                Slot::$variant(user)
            }
        })+
    };
}

// The registry: one line per kind, in the order `check` lists them.
registry! {
    Rule => rule::Rule,
    Baseline => baseline::Baseline,
    AfterHours => after_hours::AfterHours,
    Burst => burst::Burst,
    Sequence => sequence::Sequence,
}

/// The compiler `detect` hands each detector's `kind` and `params` to.
pub fn compile(name: &str, params: serde_norway::Value, matcher: &Matcher) -> Result<CompiledKind> {
    Ok(CompiledKind(std::sync::Arc::new(Kind::compile(
        name, params, matcher,
    )?)))
}

/// A loaded detector's kind.
pub fn of(d: &Detector) -> &Kind {
    d.kind
        .0
        .downcast_ref::<Kind>()
        .expect("detectors are compiled with engine::kinds::compile")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Snapshots written before the kinds had their own files hold one shape for every
    /// kind's state; each kind must pick its part out of it, keep it under the same
    /// names, and read back what it writes.
    #[test]
    fn each_kind_reads_state_of_older_snapshots() {
        let legacy = json!({
            "day": "2026-03-05",
            "patients": {"p1": "P1"},
            "value": 3,
            "events": 4,
            "first_ms": 1000,
            "history": [["2026-03-04", 2]],
            "fired": "2026-03-05",
            "window": [5, 6],
            "set": [],
            "step": {"ms": 7, "records": 8, "user": "u", "action": "export", "patients": [["p2", "P2"]]}
        });
        let daily = json!({
            "day": "2026-03-05",
            "patients": {"p1": "P1"},
            "value": 3,
            "events": 4,
            "first_ms": 1000,
            "history": [["2026-03-04", 2]],
            "fired": "2026-03-05"
        });
        let mut burst = daily.clone();
        burst["window"] = json!([5, 6]);
        let night = json!({
            "day": "2026-03-05",
            "patients": {"p1": "P1"},
            "events": 4,
            "first_ms": 1000,
            "fired": "2026-03-05"
        });
        let step = json!({"step": legacy["step"].clone()});

        fn check<K: Registered>(legacy: &serde_json::Value, want: &serde_json::Value) {
            let mut slot: Slot = serde_json::from_value(legacy.clone()).unwrap();
            claim::<K>(&mut slot);
            let written = serde_json::to_value(&slot).unwrap();
            assert_eq!(&written, want, "{}", K::NAME);
            let mut again: Slot = serde_json::from_value(written).unwrap();
            claim::<K>(&mut again);
            assert_eq!(&serde_json::to_value(&again).unwrap(), want, "{}", K::NAME);
        }
        check::<baseline::Baseline>(&legacy, &daily);
        check::<burst::Burst>(&legacy, &burst);
        check::<after_hours::AfterHours>(&legacy, &night);
        check::<sequence::Sequence>(&legacy, &step);
    }

    #[test]
    fn unknown_kinds_name_the_known_ones() {
        let m = Matcher::compile(
            &serde_norway::from_str("sel:\n  action: view\ncondition: sel\n").unwrap(),
        )
        .unwrap();
        let e = Kind::compile("rules", serde_norway::Value::Null, &m).unwrap_err();
        assert_eq!(
            e.to_string(),
            "kind \"rules\" is not known; use rule, baseline, after_hours, burst or sequence"
        );
    }
}
