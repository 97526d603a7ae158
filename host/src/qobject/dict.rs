//! QEMU's QDict: one value per key, insertion order kept, iterated on the
//! wire in hash-bucket order.

use std::collections::HashMap;
use std::sync::Arc;

use super::{Value, work};

/// A JSON object with QDict semantics: one value per key, entries kept in
/// insertion order, iterated on the wire in QDict bucket order.
///
/// Every operation costs O(1) whatever the number of members (a hostile
/// peer sends a million): the slots keep insertion order, a removed member
/// leaves a hole that is swept once holes outnumber members, and past a few
/// members a hash index (SipHash with a random key, so no chosen collisions)
/// finds a key's slot.
#[derive(Debug, Clone, Default)]
pub struct Dict {
    slots: Vec<Option<(Key, Value)>>,
    live: usize,
    /// Key to slot; none while `slots` is short enough to scan (boxed, so
    /// that a small dict, and every `Value`, stays small).
    #[allow(clippy::box_collection, reason = "keeps every Value small; most dicts have no index")]
    index: Option<Box<HashMap<Key, usize>>>,
}

/// Up to this many slots a lookup scans them (cheaper than hashing).
const SCAN_SLOTS: usize = 8;

/// A member name, shared between its slot and the index.
#[derive(Debug, Clone, Eq)]
struct Key(Arc<str>);

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        work::count(1);
        self.0 == other.0
    }
}

impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        work::count(1);
        self.0.hash(state)
    }
}

impl std::borrow::Borrow<str> for Key {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// Members compare in insertion order, as two QDicts built alike would.
impl PartialEq for Dict {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

/// QEMU's `QDICT_BUCKET_MAX`.
const QDICT_BUCKETS: u32 = 512;

/// QEMU's `tdb_hash`, reduced to a bucket index.
fn qdict_bucket(key: &str) -> u32 {
    let bytes = key.as_bytes();
    let mut value = 0x238F_13AFu32.wrapping_mul(bytes.len() as u32);
    for (i, &b) in bytes.iter().enumerate() {
        value = value.wrapping_add(u32::from(b) << ((i * 5) % 24));
    }
    1_103_515_243u32.wrapping_mul(value).wrapping_add(12345) % QDICT_BUCKETS
}

impl Dict {
    pub fn new() -> Self {
        Self::default()
    }

    /// The slot holding `key`.
    fn position(&self, key: &str) -> Option<usize> {
        if self.slots.len() <= SCAN_SLOTS {
            return self.slots.iter().position(|slot| {
                slot.as_ref().is_some_and(|(k, _)| {
                    work::count(1);
                    &*k.0 == key
                })
            });
        }
        self.index.as_ref().and_then(|index| index.get(key).copied())
    }

    /// Insert or replace (in place, like `qdict_put_obj`).
    pub fn insert(&mut self, key: impl Into<String>, value: Value) {
        let key: String = key.into();
        if let Some(pos) = self.position(&key) {
            if let Some((_, slot)) = &mut self.slots[pos] {
                *slot = value;
            }
            return;
        }
        let key = Key(Arc::from(key));
        self.slots.push(Some((key.clone(), value)));
        self.live += 1;
        if self.slots.len() > SCAN_SLOTS {
            let slot = self.slots.len() - 1;
            match &mut self.index {
                Some(index) => {
                    index.insert(key, slot);
                }
                None => self.reindex(),
            }
        }
    }

    /// Builder form of [`Dict::insert`].
    pub fn with(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.insert(key, value.into());
        self
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        let pos = self.position(key)?;
        self.slots[pos].as_ref().map(|(_, v)| v)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_some()
    }

    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let pos = self.position(key)?;
        let (_, value) = self.slots[pos].take()?;
        self.live -= 1;
        if let Some(index) = &mut self.index {
            index.remove(key);
        }
        if self.slots.len() > SCAN_SLOTS && self.slots.len() > 2 * self.live {
            self.slots.retain(Option::is_some);
            self.reindex();
        }
        Some(value)
    }

    /// Rebuild the index from the slots (after a sweep, or when the slots
    /// outgrow a scan).
    fn reindex(&mut self) {
        if self.slots.len() <= SCAN_SLOTS {
            self.index = None;
            return;
        }
        let mut index = HashMap::with_capacity(self.live);
        for (pos, slot) in self.slots.iter().enumerate() {
            if let Some((k, _)) = slot {
                index.insert(k.clone(), pos);
            }
        }
        self.index = Some(Box::new(index));
    }

    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Entries in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.slots.iter().flatten().map(|(k, v)| (&*k.0, v))
    }

    /// Entries in the order QEMU's QDict iterates them: ascending hash
    /// bucket, and within a bucket the most recently inserted first. A
    /// counting sort over the 512 buckets: linear in the member count.
    pub fn iter_qdict_order(&self) -> impl Iterator<Item = (&str, &Value)> {
        let entries: Vec<(&str, &Value)> = self.iter().collect();
        let buckets: Vec<u32> = entries.iter().map(|(k, _)| qdict_bucket(k)).collect();
        let mut start = vec![0usize; QDICT_BUCKETS as usize + 1];
        for &b in &buckets {
            start[b as usize + 1] += 1;
        }
        for b in 1..start.len() {
            start[b] += start[b - 1];
        }
        let mut order = vec![0usize; entries.len()];
        for (i, &b) in buckets.iter().enumerate().rev() {
            order[start[b as usize]] = i;
            start[b as usize] += 1;
        }
        order.into_iter().map(move |i| entries[i])
    }
}

impl FromIterator<(String, Value)> for Dict {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(iter: I) -> Self {
        let mut dict = Dict::new();
        for (k, v) in iter {
            dict.insert(k, v);
        }
        dict
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dict_iterates_in_qdict_bucket_order() {
        let reply = Dict::new().with("return", Dict::new()).with("id", 1i64);
        assert_eq!(Value::Dict(reply).to_json(), r#"{"return": {}, "id": 1}"#);
        let err = Dict::new().with("error", "x").with("id", 1i64);
        assert_eq!(Value::Dict(err).to_json(), r#"{"id": 1, "error": "x"}"#);
        let cmd = Dict::new()
            .with("name", "guest-ping")
            .with("enabled", true)
            .with("success-response", true);
        assert_eq!(
            Value::Dict(cmd).to_json(),
            r#"{"enabled": true, "name": "guest-ping", "success-response": true}"#
        );
    }

    /// The dict behaves as the plain list of members it replaced (insert
    /// replaces in place, remove then insert appends), across the switch
    /// from scanning to the index and the sweeps of removed slots.
    #[test]
    fn dict_matches_a_list_of_members() {
        let mut seed = 0x5EED_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..200 {
            let keys = 1 + round % 40;
            let mut dict = Dict::new();
            let mut model: Vec<(String, Value)> = Vec::new();
            for step in 0..300 {
                let key = format!("k{}", next() % keys as u64);
                if next() % 3 == 0 {
                    let want = model.iter().position(|(k, _)| *k == key).map(|i| model.remove(i).1);
                    assert_eq!(dict.remove(&key), want);
                } else {
                    let value = Value::Int(step);
                    match model.iter_mut().find(|(k, _)| *k == key) {
                        Some(slot) => slot.1 = value.clone(),
                        None => model.push((key.clone(), value.clone())),
                    }
                    dict.insert(key.clone(), value);
                }
                assert_eq!(dict.len(), model.len());
                assert!(
                    dict.iter()
                        .map(|(k, v)| (k.to_owned(), v.clone()))
                        .eq(model.iter().cloned())
                );
                assert_eq!(dict.get(&key), model.iter().find(|(k, _)| *k == key).map(|(_, v)| v));
            }
            let mut order: Vec<(u32, usize)> = model
                .iter()
                .enumerate()
                .map(|(i, (k, _))| (qdict_bucket(k), i))
                .collect();
            order.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
            let want: Vec<&str> = order.iter().map(|&(_, i)| model[i].0.as_str()).collect();
            let got: Vec<&str> = dict.iter_qdict_order().map(|(k, _)| k).collect();
            assert_eq!(got, want);
        }
    }
}
