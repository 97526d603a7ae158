//! The order in which qemu-ga reports the first unexpected member.
//!
//! QEMU's input visitor copies a dict's keys (in QDict order) into a GLib
//! `GHashTable`, removes each member as it is visited, and reports the first
//! key `g_hash_table_find` meets in what is left: GLib's slot order. This is
//! GLib 2.74's table (g_str_hash over signed chars, index `hash * 11 % prime`,
//! quadratic probing, tombstones, in-place resize) reduced to what that
//! needs.

const UNUSED: u32 = 0;
const TOMBSTONE: u32 = 1;
const MIN_SHIFT: u32 = 3;
const PRIME_MOD: [u32; 32] = [
    1, 2, 3, 7, 13, 31, 61, 127, 251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071, 262139, 524287,
    1048573, 2097143, 4194301, 8388593, 16777213, 33554393, 67108859, 134217689, 268435399, 536870909, 1073741789,
    2147483647,
];

fn str_hash(key: &str) -> u32 {
    let mut h: u32 = 5381;
    for &b in key.as_bytes() {
        h = (h << 5).wrapping_add(h).wrapping_add(b as i8 as i32 as u32);
    }
    if h < 2 { 2 } else { h }
}

pub struct KeySet<'a> {
    hashes: Vec<u32>,
    keys: Vec<Option<&'a str>>,
    modulo: u32,
    mask: u32,
    nnodes: usize,
    noccupied: usize,
}

impl<'a> KeySet<'a> {
    pub fn new() -> Self {
        let mut s = KeySet {
            hashes: Vec::new(),
            keys: Vec::new(),
            modulo: 0,
            mask: 0,
            nnodes: 0,
            noccupied: 0,
        };
        s.set_shift(MIN_SHIFT);
        s.hashes = vec![UNUSED; 1 << MIN_SHIFT];
        s.keys = vec![None; 1 << MIN_SHIFT];
        s
    }

    fn set_shift(&mut self, shift: u32) {
        self.modulo = PRIME_MOD[shift as usize];
        self.mask = (1u32 << shift) - 1;
    }

    fn size(&self) -> usize {
        self.hashes.len()
    }

    fn index(&self, hash: u32) -> u32 {
        hash.wrapping_mul(11) % self.modulo
    }

    fn lookup(&self, key: &str, hash: u32) -> usize {
        let mut i = self.index(hash);
        let mut step = 0;
        let mut tombstone = None;
        loop {
            crate::qobject::work::count(1);
            let h = self.hashes[i as usize];
            if h == UNUSED {
                break;
            }
            if h == hash && self.keys[i as usize] == Some(key) {
                return i as usize;
            }
            if h == TOMBSTONE && tombstone.is_none() {
                tombstone = Some(i as usize);
            }
            step += 1;
            i = (i + step) & self.mask;
        }
        tombstone.unwrap_or(i as usize)
    }

    pub fn insert(&mut self, key: &'a str) {
        let hash = str_hash(key);
        let i = self.lookup(key, hash);
        let old = self.hashes[i];
        if old >= 2 {
            return;
        }
        self.hashes[i] = hash;
        self.keys[i] = Some(key);
        self.nnodes += 1;
        if old == UNUSED {
            self.noccupied += 1;
            self.maybe_resize();
        }
    }

    pub fn remove(&mut self, key: &str) {
        let hash = str_hash(key);
        let i = self.lookup(key, hash);
        if self.hashes[i] < 2 {
            return;
        }
        self.hashes[i] = TOMBSTONE;
        self.keys[i] = None;
        self.nnodes -= 1;
        self.maybe_resize();
    }

    /// `g_hash_table_find(h, always_true)`: the first key in slot order.
    pub fn first(&self) -> Option<&'a str> {
        (0..self.size())
            .find(|&i| self.hashes[i] >= 2)
            .and_then(|i| self.keys[i])
    }

    fn maybe_resize(&mut self) {
        let size = self.size();
        if (size > self.nnodes * 4 && size > 1 << MIN_SHIFT) || size <= self.noccupied + self.noccupied / 16 {
            self.resize();
        }
    }

    fn resize(&mut self) {
        let old_size = self.size();
        let mut n = (self.nnodes as f64 * 1.333) as u32;
        let mut shift = 0;
        while n != 0 {
            n >>= 1;
            shift += 1;
        }
        let shift = shift.max(MIN_SHIFT);
        self.set_shift(shift);
        let new_size = 1usize << shift;
        let cap = old_size.max(new_size);
        self.hashes.resize(cap, UNUSED);
        self.keys.resize(cap, None);
        let mut moved = vec![false; cap];
        for i in 0..old_size {
            let node = self.hashes[i];
            if node < 2 {
                self.hashes[i] = UNUSED;
                continue;
            }
            if moved[i] {
                continue;
            }
            self.hashes[i] = UNUSED;
            let mut hash = node;
            let mut key = self.keys[i].take();
            loop {
                let mut j = self.index(hash) as usize;
                let mut step = 0;
                while moved[j] {
                    crate::qobject::work::count(1);
                    step += 1;
                    j = (j + step) & self.mask as usize;
                }
                moved[j] = true;
                let replaced = self.hashes[j];
                self.hashes[j] = hash;
                let replaced_key = std::mem::replace(&mut self.keys[j], key);
                if replaced < 2 {
                    break;
                }
                hash = replaced;
                key = replaced_key;
            }
        }
        self.hashes.truncate(new_size);
        self.keys.truncate(new_size);
        self.noccupied = self.nnodes;
    }
}
