//! The exact-match cache (EMC): a per-poll-thread cache from a packet's full [`FlowKey`] to
//! the [`Megaflow`] it matched, in front of the megaflow classifier.
//!
//! Two-way set-associative: a key's 32-bit hash ([`FlowKey::hash`]) picks two candidate
//! slots; a slot holds the full key, its hash and an `Arc<Megaflow>`. A lookup compares the
//! hash, then the whole key, and ignores megaflows that were removed
//! ([`Megaflow::is_dead`]). Insertion is probabilistic (1 in `insert_inv_prob`, from a cheap
//! per-cache PRNG) so that short flows don't thrash the cache; the victim is an empty or dead
//! slot, else the slot whose megaflow is older.
//!
//! **Threads and ownership.** Each poll thread owns its cache; nothing in it is shared except
//! the megaflows (read-only here). Do lookups inside
//! [`MegaflowReader::with`](super::megaflow::MegaflowReader::with): that is what makes a
//! removal that was published before the batch started invisible to it.

use std::cell::Cell;
use std::sync::Arc;

use super::flow::FlowKey;
use super::megaflow::Megaflow;

/// Default number of entries (as OVS).
pub const DEFAULT_ENTRIES: usize = 8192;
/// Default inverse insertion probability: insert 1 miss in 100.
pub const DEFAULT_INSERT_INV_PROB: u32 = 100;

/// Exact-match cache settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EmcConfig {
    /// Number of entries, rounded up to a power of two (at least 2); 0 turns the cache off
    /// entirely (lookups always miss, nothing is stored).
    pub entries: usize,
    /// Insert one classifier hit in this many: 1 = always, 0 = never.
    pub insert_inv_prob: u32,
}

impl Default for EmcConfig {
    fn default() -> Self {
        EmcConfig { entries: DEFAULT_ENTRIES, insert_inv_prob: DEFAULT_INSERT_INV_PROB }
    }
}

impl EmcConfig {
    /// A configuration with the cache turned off.
    pub fn disabled() -> Self {
        EmcConfig { entries: 0, insert_inv_prob: 0 }
    }
}

/// `a == b`, branch-free and inlined (the derived `==` on word arrays calls `memcmp`).
#[inline(always)]
fn same_key(a: &FlowKey, b: &FlowKey) -> bool {
    a.words().iter().zip(b.words()).fold(0u64, |d, (x, y)| d | (x ^ y)) == 0
}

/// A full key on its own two cache lines.
#[derive(Clone, Copy, Default)]
#[repr(C, align(64))]
struct SlotKey(FlowKey);

/// One poll thread's exact-match cache. See the module docs.
///
/// Stored as parallel arrays, so a miss touches only the 4-byte hash of each candidate slot
/// (`hashes` is 32 KiB for 8192 entries), and a hit then reads the slot's two key lines and
/// its megaflow.
pub struct ExactMatchCache {
    hashes: Box<[u32]>,
    keys: Box<[SlotKey]>,
    flows: Box<[Option<Arc<Megaflow>>]>,
    /// Number of slots - 1.
    index_mask: u32,
    /// log2(number of slots): the rotation that gives the second candidate.
    index_bits: u32,
    insert_inv_prob: u32,
    rng: Cell<u64>,
}

impl std::fmt::Debug for ExactMatchCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExactMatchCache")
            .field("entries", &self.hashes.len())
            .field("insert_inv_prob", &self.insert_inv_prob)
            .finish()
    }
}

impl Default for ExactMatchCache {
    fn default() -> Self {
        ExactMatchCache::new(EmcConfig::default())
    }
}

impl ExactMatchCache {
    /// A cache with `cfg`'s size and insertion probability.
    pub fn new(cfg: EmcConfig) -> Self {
        let n = if cfg.entries == 0 { 0 } else { cfg.entries.max(2).next_power_of_two() };
        ExactMatchCache {
            hashes: vec![0; n].into_boxed_slice(),
            keys: vec![SlotKey::default(); n].into_boxed_slice(),
            flows: (0..n).map(|_| None).collect(),
            index_mask: n.saturating_sub(1) as u32,
            index_bits: n.trailing_zeros(),
            insert_inv_prob: cfg.insert_inv_prob,
            rng: Cell::new(0x853c_49e6_748f_ea9b ^ n as u64),
        }
    }

    /// A cache that is turned off.
    pub fn disabled() -> Self {
        ExactMatchCache::new(EmcConfig::disabled())
    }

    /// Whether the cache does anything.
    #[inline]
    pub fn is_enabled(&self) -> bool {
        !self.hashes.is_empty()
    }

    /// Number of entries (0 when off).
    pub fn capacity(&self) -> usize {
        self.hashes.len()
    }

    /// Changes the insertion probability (1 in `inv_prob`; 0 = never).
    pub fn set_insert_inv_prob(&mut self, inv_prob: u32) {
        self.insert_inv_prob = inv_prob;
    }

    /// The two candidate slots for `hash`.
    #[inline(always)]
    fn candidates(&self, hash: u32) -> [usize; 2] {
        [(hash & self.index_mask) as usize, (hash.rotate_right(self.index_bits) & self.index_mask) as usize]
    }

    /// The live megaflow cached for `key` (whose [`FlowKey::hash`] is `hash`), if any.
    #[inline(always)]
    pub fn lookup(&self, key: &FlowKey, hash: u32) -> Option<&Arc<Megaflow>> {
        if self.hashes.is_empty() {
            return None;
        }
        let [a, b] = self.candidates(hash);
        self.get(a, key, hash).or_else(|| self.get(b, key, hash))
    }

    /// Slot `i`'s megaflow if the slot holds `key` (hash `hash`) and the megaflow is alive.
    #[inline(always)]
    fn get(&self, i: usize, key: &FlowKey, hash: u32) -> Option<&Arc<Megaflow>> {
        if self.hashes[i] != hash {
            return None;
        }
        let mf = self.flows[i].as_ref()?;
        (same_key(&self.keys[i].0, key) && !mf.is_dead()).then_some(mf)
    }

    /// Whether slot `i` holds `key`.
    #[inline(always)]
    fn holds(&self, i: usize, key: &FlowKey, hash: u32) -> bool {
        self.hashes[i] == hash && self.flows[i].is_some() && same_key(&self.keys[i].0, key)
    }

    /// Looks up each `keys[i]` (hash `hashes[i]`) whose `out[i]` is `None` and fills in hits.
    /// Returns the number of hits. Considers `min` of the three lengths.
    #[inline]
    pub fn lookup_batch<'e>(
        &'e self,
        keys: &[FlowKey],
        hashes: &[u32],
        out: &mut [Option<&'e Arc<Megaflow>>],
    ) -> usize {
        if self.hashes.is_empty() {
            return 0;
        }
        let mut hits = 0;
        for ((key, &hash), o) in keys.iter().zip(hashes).zip(out.iter_mut()) {
            if o.is_none() {
                *o = self.lookup(key, hash);
                hits += o.is_some() as usize;
            }
        }
        hits
    }

    /// Draws from the PRNG: whether the caller should insert this classifier hit. Always
    /// false when the cache is off or the insertion probability is 0.
    #[inline]
    pub fn should_insert(&self) -> bool {
        match self.insert_inv_prob {
            0 => false,
            _ if self.hashes.is_empty() => false,
            1 => true,
            n => {
                // wyrand: one add and one multiply.
                let s = self.rng.get().wrapping_add(0xa076_1d64_78bd_642f);
                self.rng.set(s);
                let p = (s as u128) * ((s ^ 0xe703_7ed1_a0b4_28db) as u128);
                let r = ((p as u64) ^ ((p >> 64) as u64)) as u32;
                // r * n / 2^32 is uniform in 0..n.
                ((r as u64 * n as u64) >> 32) == 0
            }
        }
    }

    /// Inserts `mf` for `key` unconditionally (see [`should_insert`](Self::should_insert) and
    /// [`maybe_insert`](Self::maybe_insert)). Replaces the slot already holding `key`, else an
    /// empty or dead slot, else the candidate whose megaflow is older.
    pub fn insert(&mut self, key: &FlowKey, hash: u32, mf: Arc<Megaflow>) {
        if self.hashes.is_empty() {
            return;
        }
        let [a, b] = self.candidates(hash);
        // Free (empty or dead) sorts before any live megaflow, then older (smaller id) first.
        let age = |i: usize| match &self.flows[i] {
            Some(f) if !f.is_dead() => Some(f.id),
            _ => None,
        };
        let victim = if self.holds(a, key, hash) {
            a
        } else if self.holds(b, key, hash) || age(b) < age(a) {
            b
        } else {
            a
        };
        self.hashes[victim] = hash;
        self.keys[victim] = SlotKey(*key);
        self.flows[victim] = Some(mf);
    }

    /// Inserts with the configured probability; returns whether it did. Clones the `Arc` only
    /// when inserting.
    #[inline]
    pub fn maybe_insert(&mut self, key: &FlowKey, hash: u32, mf: &Arc<Megaflow>) -> bool {
        if !self.should_insert() || mf.is_dead() {
            return false;
        }
        self.insert(key, hash, Arc::clone(mf));
        true
    }

    /// Empties the cache (drops its references to megaflows).
    pub fn clear(&mut self) {
        self.hashes.fill(0);
        self.keys.fill(SlotKey::default());
        self.flows.fill(None);
    }

    /// Number of occupied slots whose megaflow is alive (O(entries), for stats).
    pub fn n_live(&self) -> usize {
        self.flows.iter().filter(|f| f.as_ref().is_some_and(|f| !f.is_dead())).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datapath::flow::FlowMask;
    use crate::datapath::megaflow::MegaflowTable;

    fn key(p: u32) -> FlowKey {
        FlowKey { in_port: p, dl_type: 0x800, tp_src: 7, ..Default::default() }
    }

    fn port_mask() -> FlowMask {
        let mut m = FlowMask::catchall();
        m.0.in_port = !0;
        m
    }

    #[test]
    fn hit_miss_dead_clear() {
        let mut t = MegaflowTable::new(1, 10);
        let a = t.insert(key(1), port_mask(), &[], 0).unwrap();
        let mut emc = ExactMatchCache::new(EmcConfig { entries: 16, insert_inv_prob: 1 });
        let k = key(1);
        assert!(emc.lookup(&k, k.hash()).is_none());
        assert!(emc.maybe_insert(&k, k.hash(), &a));
        assert_eq!(emc.lookup(&k, k.hash()).map(|m| m.id), Some(a.id));
        let mut k2 = k;
        k2.tp_src = 8; // same megaflow, different exact key
        assert!(emc.lookup(&k2, k2.hash()).is_none());
        let keys = [k, k2];
        let hashes = [k.hash(), k2.hash()];
        let mut out = [None; 2];
        assert_eq!(emc.lookup_batch(&keys, &hashes, &mut out), 1);
        assert!(out[0].is_some() && out[1].is_none());
        assert_eq!(emc.n_live(), 1);
        t.remove(a.id);
        assert!(emc.lookup(&k, k.hash()).is_none(), "dead megaflows never hit");
        assert_eq!(emc.n_live(), 0);
        let b = t.insert(key(1), port_mask(), &[], 0).unwrap();
        emc.insert(&k, k.hash(), Arc::clone(&b));
        assert_eq!(emc.lookup(&k, k.hash()).map(|m| m.id), Some(b.id));
        emc.clear();
        assert!(emc.lookup(&k, k.hash()).is_none());
    }

    #[test]
    fn two_way_replaces_older() {
        let mut t = MegaflowTable::new(1, 100);
        let mut emc = ExactMatchCache::new(EmcConfig { entries: 2, insert_inv_prob: 1 });
        // With 2 entries the two candidates are slots 0 and 1 (or the same slot).
        let flows: Vec<_> = (1..=3).map(|p| t.insert(key(p), port_mask(), &[], 0).unwrap()).collect();
        // Find three keys with distinct candidate pairs {0, 1}.
        let keys: Vec<FlowKey> = (0..1000u16)
            .map(|i| FlowKey { tp_dst: i, ..key(1) })
            .filter(|k| {
                let h = k.hash();
                let [a, b] = emc.candidates(h);
                a != b
            })
            .take(3)
            .collect();
        for (k, f) in keys.iter().zip(&flows) {
            emc.insert(k, k.hash(), Arc::clone(f));
        }
        // The third insert evicted the oldest megaflow (flows[0]).
        assert!(emc.lookup(&keys[0], keys[0].hash()).is_none());
        assert!(emc.lookup(&keys[1], keys[1].hash()).is_some());
        assert!(emc.lookup(&keys[2], keys[2].hash()).is_some());
    }

    #[test]
    fn insertion_probability_and_off() {
        let emc = ExactMatchCache::new(EmcConfig { entries: 64, insert_inv_prob: 100 });
        let n = (0..100_000).filter(|_| emc.should_insert()).count();
        assert!((700..1300).contains(&n), "{n} inserts in 100000 at 1/100");
        let never = ExactMatchCache::new(EmcConfig { entries: 64, insert_inv_prob: 0 });
        assert!(!(0..1000).any(|_| never.should_insert()));
        let mut off = ExactMatchCache::disabled();
        assert!(!off.is_enabled() && !off.should_insert());
        let mut t = MegaflowTable::new(1, 10);
        let a = t.insert(key(1), port_mask(), &[], 0).unwrap();
        off.insert(&key(1), key(1).hash(), a);
        assert!(off.lookup(&key(1), key(1).hash()).is_none());
        assert_eq!(ExactMatchCache::new(EmcConfig { entries: 5000, insert_inv_prob: 1 }).capacity(), 8192);
    }
}
