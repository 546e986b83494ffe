//! Maps keyed by name for the engine's state, looked up with one hash when the key is
//! nearly always there already.
//!
//! With the standard map, "get it, or insert it when missing" without copying the key
//! for every event takes two lookups (`contains_key`, then `get_mut`): the borrow of the
//! first cannot be returned on one branch and replaced on the other. Users and their
//! detector states are found that way for every event and detector, and the second
//! lookup (hashing the name again and comparing it) was a few per cent of the engine's
//! time. hashbrown's `entry_ref` takes the name borrowed and copies it only on insert.
//!
//! Snapshots hold these as JSON maps, exactly as they held the standard map.

use rustc_hash::FxBuildHasher;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde::ser::{Serialize, Serializer};
use std::fmt;
use std::marker::PhantomData;

/// A map from names to `V`, hashed as `FxHashMap` hashes.
pub type Keyed<V> = hashbrown::HashMap<String, V, FxBuildHasher>;

/// The value under `key`, inserted as `V::default()` first when missing; the key is
/// copied only then.
pub fn get_or_default<'m, V: Default>(map: &'m mut Keyed<V>, key: &str) -> &'m mut V {
    map.entry_ref(key).or_default()
}

/// For `#[serde(with = "keyed")]`: written and read as a JSON map.
pub fn serialize<V: Serialize, S: Serializer>(map: &Keyed<V>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(map.iter())
}

/// See [`serialize`].
pub fn deserialize<'de, V: Deserialize<'de>, D: Deserializer<'de>>(
    d: D,
) -> Result<Keyed<V>, D::Error> {
    struct MapVisitor<V>(PhantomData<V>);
    impl<'de, V: Deserialize<'de>> Visitor<'de> for MapVisitor<V> {
        type Value = Keyed<V>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a map")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Keyed<V>, A::Error> {
            let mut m = Keyed::with_capacity_and_hasher(
                a.size_hint().unwrap_or(0).min(4096),
                FxBuildHasher,
            );
            while let Some((k, v)) = a.next_entry::<String, V>()? {
                m.insert(k, v);
            }
            Ok(m)
        }
    }
    d.deserialize_map(MapVisitor(PhantomData))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, Default, PartialEq, Debug)]
    struct S {
        #[serde(with = "super")]
        m: Keyed<u32>,
    }

    #[test]
    fn reads_back_what_it_writes_as_a_map() {
        let mut s = S::default();
        *get_or_default(&mut s.m, "a") += 2;
        *get_or_default(&mut s.m, "a") += 1;
        *get_or_default(&mut s.m, "b") += 5;
        assert_eq!(s.m.len(), 2);
        let json = serde_json::to_string(&s).unwrap();
        let std: std::collections::HashMap<String, std::collections::HashMap<String, u32>> =
            serde_json::from_str(&json).unwrap();
        assert_eq!(std["m"]["a"], 3);
        assert_eq!(serde_json::from_str::<S>(&json).unwrap(), s);
    }
}
