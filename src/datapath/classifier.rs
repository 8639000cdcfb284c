//! The megaflow classifier: tuple-space search.
//!
//! One subtable per distinct mask, each a hash table of the megaflows with that mask, keyed
//! by the masked key (hashed over only the words the mask selects). Megaflows never overlap (ofproto
//! guarantees it), so the first subtable that matches has the answer; there are no
//! priorities. A lookup probes subtables in the order of a [`SubtableRanking`] (most hits
//! first), and [`Classifier::lookup_batch`] works subtable by subtable over a whole rx batch:
//! it hashes every still-unmatched key under the subtable's mask, then probes, so the CPU
//! overlaps the independent hash computations and cache misses of a batch.
//!
//! **Threads and ownership.** A [`Classifier`] is immutable while readers use it: the
//! megaflow table ([`super::megaflow`]) keeps two copies and changes only the one no reader
//! is in. Poll threads see it through a [`ClassifierView`] inside
//! [`MegaflowReader::with`](super::megaflow::MegaflowReader::with). Each poll thread owns its
//! own [`SubtableRanking`] (hit counts and probe order): the lookup path writes nothing
//! shared.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use hashbrown::HashTable;

use super::flow::{FlowKey, FlowMask, KEY_WORDS};
use super::megaflow::Megaflow;

/// Keys handled per pass of [`Classifier::lookup_batch`] (larger batches are cut into chunks).
pub const BATCH_CHUNK: usize = 64;

/// Default number of batches between two re-sorts of a [`SubtableRanking`].
pub const DEFAULT_RESORT_INTERVAL: u32 = 1024;

/// Gives each classifier a distinct id, so a ranking notices it is used with another one.
static NEXT_CLASSIFIER_UID: AtomicU64 = AtomicU64::new(1);

/// The 64-bit hash hashbrown wants from our 32-bit one: hashbrown takes the bucket from the
/// low bits and the tag from the top 7, so both must vary.
#[inline(always)]
fn table_hash(h: u32) -> u64 {
    ((h as u64) << 32) | h as u64
}

/// One step of the subtable hash: a folded 64×64→128 multiply (as wyhash/foldhash).
#[inline(always)]
fn mix(h: u64, w: u64) -> u64 {
    let p = (h ^ w) as u128 * 0xa076_1d64_78bd_642f_u128;
    (p as u64) ^ ((p >> 64) as u64)
}

/// Hash of `key & mask` over the words `idx` (with mask values `masks`).
#[inline(always)]
fn sparse_hash(idx: &[u8], masks: &[u64], key: &FlowKey) -> u32 {
    let w = key.words();
    let mut h: u64 = 0x9e37_79b9_7f4a_7c15;
    for (&i, &m) in idx.iter().zip(masks) {
        h = mix(h, w[(i as usize) % KEY_WORDS] & m);
    }
    let h = mix(h, 0xe703_7ed1_a0b4_28db);
    (h ^ (h >> 32)) as u32
}

/// Masked key words stored in each entry, so most probes compare without touching the
/// megaflow itself (a likely cache miss). Masks with more words compare the rest against
/// the megaflow's key.
const INLINE_WORDS: usize = 6;

/// A megaflow in a subtable, with its masked words (those the mask selects) inline.
#[derive(Clone)]
struct Entry {
    words: [u64; INLINE_WORDS],
    mf: Arc<Megaflow>,
}

/// All megaflows with one mask. Its hash covers only the words the mask selects (a
/// subtable on `in_port` + `nw_dst` hashes 2 words, not 16); it is private to the subtable.
#[derive(Clone)]
struct Subtable {
    /// Stable identity (for rankings across versions).
    id: u32,
    mask: FlowMask,
    /// Number of non-zero mask words.
    n_words: usize,
    /// Their indices in the key (first `n_words`).
    idx: [u8; KEY_WORDS],
    /// Their mask values (first `n_words`).
    mask_words: [u64; KEY_WORDS],
    flows: HashTable<Entry>,
}

impl Subtable {
    fn new(id: u32, mask: FlowMask) -> Subtable {
        let mut idx = [0u8; KEY_WORDS];
        let mut mask_words = [0u64; KEY_WORDS];
        let mut n_words = 0;
        for (i, &m) in mask.0.words().iter().enumerate() {
            if m != 0 {
                idx[n_words] = i as u8;
                mask_words[n_words] = m;
                n_words += 1;
            }
        }
        Subtable { id, mask, n_words, idx, mask_words, flows: HashTable::new() }
    }

    /// Hash of `key & mask` over the selected words only.
    #[inline(always)]
    fn hash(&self, key: &FlowKey) -> u32 {
        sparse_hash(&self.idx[..self.n_words], &self.mask_words, key)
    }

    fn entry(&self, mf: Arc<Megaflow>) -> Entry {
        let mut words = [0u64; INLINE_WORDS];
        let k = mf.key.words();
        for (o, &i) in words.iter_mut().zip(&self.idx[..self.n_words]) {
            *o = k[i as usize];
        }
        Entry { words, mf }
    }

    #[inline(always)]
    fn find(&self, key: &FlowKey, hash: u32) -> Option<&Arc<Megaflow>> {
        let w = key.words();
        let n_inline = self.n_words.min(INLINE_WORDS);
        let (idx, masks) = (&self.idx[..n_inline], &self.mask_words[..n_inline]);
        self.flows
            .find(table_hash(hash), |e| {
                let mut diff = 0u64;
                for ((&i, &m), &v) in idx.iter().zip(masks).zip(&e.words) {
                    diff |= (w[(i as usize) % KEY_WORDS] & m) ^ v;
                }
                diff == 0 && (self.n_words <= INLINE_WORDS || key.matches_masked(&self.mask, &e.mf.key))
            })
            .map(|e| &e.mf)
    }
}

/// A set of non-overlapping megaflows, searched by tuple space. See the module docs.
#[derive(Clone)]
pub struct Classifier {
    subtables: Vec<Subtable>,
    /// Which classifier this is (copies made by `Clone` share it).
    uid: u64,
    /// Changes whenever the list of subtables changes (added, removed, cleared).
    layout_gen: u64,
    next_subtable_id: u32,
    len: usize,
}

impl Default for Classifier {
    fn default() -> Self {
        Classifier::new()
    }
}

impl Classifier {
    /// An empty classifier (with its own identity; clones share it).
    pub fn new() -> Self {
        Classifier { uid: NEXT_CLASSIFIER_UID.fetch_add(1, Ordering::Relaxed), ..Classifier::empty() }
    }

    /// An empty classifier usable in a `static` (identity 0).
    pub(crate) const fn empty() -> Self {
        Classifier { subtables: Vec::new(), uid: 0, layout_gen: 0, next_subtable_id: 0, len: 0 }
    }

    /// Adds a megaflow (its key must be masked, as [`Megaflow`]s are). The caller guarantees
    /// it overlaps no other megaflow; an identical (mask, key) is not checked for here.
    pub fn insert(&mut self, mf: Arc<Megaflow>) {
        let pos = match self.subtables.iter().position(|st| st.mask == mf.mask) {
            Some(pos) => pos,
            None => {
                self.subtables.push(Subtable::new(self.next_subtable_id, mf.mask));
                self.next_subtable_id = self.next_subtable_id.wrapping_add(1);
                self.layout_gen += 1;
                self.subtables.len() - 1
            }
        };
        let st = &mut self.subtables[pos];
        let h = table_hash(st.hash(&mf.key));
        let entry = st.entry(mf);
        let (idx, masks) = (&st.idx[..st.n_words], &st.mask_words);
        st.flows.insert_unique(h, entry, |e| table_hash(sparse_hash(idx, masks, &e.mf.key)));
        self.len += 1;
    }

    /// Removes the megaflow with `mf`'s id (found by its mask and key). Returns whether it
    /// was present. A subtable left empty is dropped.
    pub fn remove(&mut self, mf: &Megaflow) -> bool {
        let Some(pos) = self.subtables.iter().position(|st| st.mask == mf.mask) else { return false };
        let st = &mut self.subtables[pos];
        let found = match st.flows.find_entry(table_hash(st.hash(&mf.key)), |e| e.mf.id == mf.id) {
            Ok(entry) => {
                entry.remove();
                true
            }
            Err(_) => false,
        };
        if found {
            self.len -= 1;
            if st.flows.is_empty() {
                self.subtables.remove(pos);
                self.layout_gen += 1;
            }
        }
        found
    }

    /// Removes every megaflow.
    pub fn clear(&mut self) {
        self.subtables.clear();
        self.len = 0;
        self.layout_gen += 1;
    }

    /// Number of megaflows.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no megaflows.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of subtables (distinct masks).
    pub fn n_subtables(&self) -> usize {
        self.subtables.len()
    }

    /// Masks of the subtables, in storage order (for `dpctl`-style dumps).
    pub fn masks(&self) -> impl Iterator<Item = &FlowMask> {
        self.subtables.iter().map(|st| &st.mask)
    }

    /// Every megaflow (unordered).
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Megaflow>> {
        self.subtables.iter().flat_map(|st| st.flows.iter().map(|e| &e.mf))
    }

    /// Looks up one key, probing subtables in storage order. For the fast path prefer
    /// [`lookup_batch`](Self::lookup_batch).
    pub fn lookup(&self, key: &FlowKey) -> Option<&Arc<Megaflow>> {
        self.subtables.iter().find_map(|st| st.find(key, st.hash(key)))
    }

    /// Looks up every key whose `out` slot is `None` (slots already `Some`, e.g. exact-match
    /// cache hits, are skipped), in `ranking`'s subtable order, and updates `ranking`'s hit
    /// counts. Only `keys.len().min(out.len())` entries are considered. Allocates nothing
    /// (unless the subtable count grew since `ranking` last saw this classifier).
    pub fn lookup_batch<'a>(
        &'a self,
        keys: &[FlowKey],
        out: &mut [Option<&'a Arc<Megaflow>>],
        ranking: &mut SubtableRanking,
    ) -> BatchLookup {
        ranking.sync(self);
        let n = keys.len().min(out.len());
        let mut res = BatchLookup::default();
        for (keys, out) in keys[..n].chunks(BATCH_CHUNK).zip(out[..n].chunks_mut(BATCH_CHUNK)) {
            self.lookup_chunk(keys, out, ranking, &mut res);
        }
        ranking.batch_done();
        res
    }

    #[inline]
    fn lookup_chunk<'a>(
        &'a self,
        keys: &[FlowKey],
        out: &mut [Option<&'a Arc<Megaflow>>],
        ranking: &mut SubtableRanking,
        res: &mut BatchLookup,
    ) {
        let mut pending: u64 = 0;
        for (i, o) in out.iter().enumerate() {
            pending |= (o.is_none() as u64) << i;
        }
        res.lookups += pending.count_ones();
        let mut hashes = [0u32; BATCH_CHUNK];
        for (rank, &pos) in ranking.order.iter().enumerate() {
            if pending == 0 {
                break;
            }
            let st = &self.subtables[pos as usize];
            // Pass 1: hash every pending key under this mask (independent work, overlapped).
            let mut m = pending;
            while m != 0 {
                let i = m.trailing_zeros() as usize;
                hashes[i] = st.hash(&keys[i]);
                m &= m - 1;
            }
            // Pass 2: probe.
            let mut m = pending;
            let mut hits = 0u32;
            while m != 0 {
                let i = m.trailing_zeros() as usize;
                m &= m - 1;
                if let Some(mf) = st.find(&keys[i], hashes[i]) {
                    out[i] = Some(mf);
                    pending &= !(1u64 << i);
                    hits += 1;
                }
            }
            ranking.hits[pos as usize] += hits as u64;
            res.hits += hits;
            res.subtables_probed += hits * (rank as u32 + 1);
        }
    }
}

/// What one [`Classifier::lookup_batch`] call did, for the poll thread's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchLookup {
    /// Keys looked up (slots that were `None` on entry).
    pub lookups: u32,
    /// Keys that matched a megaflow.
    pub hits: u32,
    /// Sum over hits of the rank of the subtable that matched (1 = first probed): divided
    /// by `hits`, this is pmd-stats' "average subtables looked up per megaflow hit".
    pub subtables_probed: u32,
}

/// One poll thread's subtable order and hit counts (never shared, so the lookup path writes
/// nothing other threads read). Re-sorted, most hits first, every `resort_interval` batches
/// and whenever the classifier's set of subtables changes; hit counts are halved at each
/// re-sort so the order follows changes in traffic.
#[derive(Clone, Debug)]
pub struct SubtableRanking {
    uid: u64,
    layout_gen: u64,
    /// Subtable id per position in the classifier.
    ids: Vec<u32>,
    /// Hits per position since the last re-sort (decayed).
    hits: Vec<u64>,
    /// Positions in probe order.
    order: Vec<u32>,
    scratch: Vec<(u32, u64)>,
    batches: u32,
    resort_interval: u32,
}

impl Default for SubtableRanking {
    fn default() -> Self {
        SubtableRanking::new(DEFAULT_RESORT_INTERVAL)
    }
}

impl SubtableRanking {
    /// A ranking that re-sorts every `resort_interval` batches (at least 1).
    pub fn new(resort_interval: u32) -> Self {
        SubtableRanking {
            uid: 0,
            layout_gen: u64::MAX,
            ids: Vec::new(),
            hits: Vec::new(),
            order: Vec::new(),
            scratch: Vec::new(),
            batches: 0,
            resort_interval: resort_interval.max(1),
        }
    }

    /// Follows `cls`'s current subtables, carrying hit counts over by subtable id.
    #[inline]
    fn sync(&mut self, cls: &Classifier) {
        if self.uid == cls.uid && self.layout_gen == cls.layout_gen && self.order.len() == cls.subtables.len()
        {
            return;
        }
        self.rebuild(cls);
    }

    #[cold]
    fn rebuild(&mut self, cls: &Classifier) {
        self.scratch.clear();
        let same_cls = self.uid == cls.uid;
        for st in &cls.subtables {
            let old = if same_cls {
                self.ids.iter().position(|&id| id == st.id).map_or(0, |p| self.hits[p])
            } else {
                0
            };
            self.scratch.push((st.id, old));
        }
        self.ids.clear();
        self.hits.clear();
        for &(id, h) in &self.scratch {
            self.ids.push(id);
            self.hits.push(h);
        }
        self.uid = cls.uid;
        self.layout_gen = cls.layout_gen;
        self.resort();
    }

    #[inline]
    fn batch_done(&mut self) {
        self.batches += 1;
        if self.batches >= self.resort_interval {
            self.resort();
        }
    }

    fn resort(&mut self) {
        self.batches = 0;
        self.order.clear();
        self.order.extend(0..self.hits.len() as u32);
        let hits = &self.hits;
        // Stable: ties keep storage order.
        self.order.sort_by(|&a, &b| hits[b as usize].cmp(&hits[a as usize]));
        for h in &mut self.hits {
            *h /= 2;
        }
    }

    /// Subtable ids in the current probe order (for `pmd-stats`/debugging).
    pub fn probe_order(&self) -> impl Iterator<Item = u32> + '_ {
        self.order.iter().map(|&p| self.ids[p as usize])
    }
}

/// What a poll thread sees of the megaflow classifier during one
/// [`MegaflowReader::with`](super::megaflow::MegaflowReader::with) call. References it hands
/// out live as long as the view.
#[derive(Clone, Copy)]
pub struct ClassifierView<'a> {
    cls: &'a Classifier,
}

impl<'a> ClassifierView<'a> {
    /// A view of `cls`.
    pub fn new(cls: &'a Classifier) -> Self {
        ClassifierView { cls }
    }

    /// The classifier itself.
    pub fn classifier(&self) -> &'a Classifier {
        self.cls
    }

    /// See [`Classifier::lookup`].
    #[inline]
    pub fn lookup(&self, key: &FlowKey) -> Option<&'a Arc<Megaflow>> {
        self.cls.lookup(key)
    }

    /// See [`Classifier::lookup_batch`].
    #[inline]
    pub fn lookup_batch(
        &self,
        keys: &[FlowKey],
        out: &mut [Option<&'a Arc<Megaflow>>],
        ranking: &mut SubtableRanking,
    ) -> BatchLookup {
        self.cls.lookup_batch(keys, out, ranking)
    }

    /// Number of megaflows in this version.
    pub fn len(&self) -> usize {
        self.cls.len()
    }

    /// Whether this version has no megaflows.
    pub fn is_empty(&self) -> bool {
        self.cls.is_empty()
    }

    /// Number of subtables in this version.
    pub fn n_subtables(&self) -> usize {
        self.cls.n_subtables()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datapath::megaflow::MegaflowTable;

    fn mask(f: impl FnOnce(&mut FlowKey)) -> FlowMask {
        let mut m = FlowMask::catchall();
        f(&mut m.0);
        m
    }

    fn pkt(port: u32, tp_dst: u16) -> FlowKey {
        FlowKey { in_port: port, dl_type: 0x800, tp_dst, ..Default::default() }
    }

    #[test]
    fn tuple_space_lookup_and_ranking() {
        let mut t = MegaflowTable::new(1, 100);
        let m_port = mask(|m| m.in_port = !0);
        let m_port_tp = mask(|m| {
            m.in_port = !0;
            m.tp_dst = !0
        });
        let a = t.insert(pkt(1, 0), m_port, &[], 1).unwrap();
        let b = t.insert(pkt(2, 80), m_port_tp, &[], 2).unwrap();
        let c = t.insert(pkt(2, 443), m_port_tp, &[], 3).unwrap();
        t.publish();
        let mut r = t.reader();
        let mut ranking = SubtableRanking::new(2);
        r.with(|v| {
            assert_eq!(v.n_subtables(), 2);
            assert_eq!(v.lookup(&pkt(1, 9)).map(|m| m.id), Some(a.id));
            assert_eq!(v.lookup(&pkt(2, 443)).map(|m| m.id), Some(c.id));
            assert!(v.lookup(&pkt(2, 9)).is_none());
            let keys = [pkt(2, 80), pkt(2, 80), pkt(3, 80), pkt(1, 1), pkt(2, 443)];
            let mut out = [None; 5];
            let res = v.lookup_batch(&keys, &mut out, &mut ranking);
            let ids: Vec<_> = out.iter().map(|o| o.map(|m| m.id)).collect();
            assert_eq!(ids, vec![Some(b.id), Some(b.id), None, Some(a.id), Some(c.id)]);
            assert_eq!(res.lookups, 5);
            assert_eq!(res.hits, 4);
            // Order was storage order: m_port first (1 hit at rank 1), m_port_tp second (3 at 2).
            assert_eq!(res.subtables_probed, 1 + 3 * 2);
            // Second batch triggers a re-sort: m_port_tp now ranks first.
            let mut out = [None; 5];
            v.lookup_batch(&keys, &mut out, &mut ranking);
            let order: Vec<u32> = ranking.probe_order().collect();
            assert_eq!(order, vec![1, 0]);
            // Pre-filled slots are skipped.
            let mut out = [None, Some(&a), None, None, None];
            let res = v.lookup_batch(&keys, &mut out, &mut ranking);
            assert_eq!(res.lookups, 4);
            assert_eq!(out[1].map(|m| m.id), Some(a.id));
            assert_eq!(res.subtables_probed, 1 + 2 + 1);
        });
        // Removing the last flow of a subtable drops it; the ranking follows.
        t.remove(a.id);
        t.publish();
        r.with(|v| {
            assert_eq!(v.n_subtables(), 1);
            let keys = [pkt(1, 1), pkt(2, 80)];
            let mut out = [None; 2];
            let res = v.lookup_batch(&keys, &mut out, &mut ranking);
            assert_eq!((res.hits, res.subtables_probed), (1, 1));
            assert_eq!(ranking.probe_order().collect::<Vec<_>>(), vec![1]);
        });
    }

    #[test]
    fn batch_larger_than_chunk() {
        let mut t = MegaflowTable::new(1, 1000);
        let m = mask(|m| m.tp_dst = !0);
        for tp in 0..200u16 {
            t.insert(pkt(0, tp), m, &[], tp as u64).unwrap();
        }
        t.publish();
        let mut r = t.reader();
        let keys: Vec<FlowKey> = (0..300u16).map(|tp| pkt(5, tp)).collect();
        let mut ranking = SubtableRanking::default();
        r.with(|v| {
            let mut out = vec![None; keys.len()];
            let res = v.lookup_batch(&keys, &mut out, &mut ranking);
            assert_eq!(res.hits, 200);
            for (k, o) in keys.iter().zip(&out) {
                assert_eq!(o.map(|m| m.cookie), (k.tp_dst < 200).then_some(k.tp_dst as u64));
            }
        });
    }
}

/// The classifier (alone, and behind an exact-match cache) against a naive linear scan.
#[cfg(test)]
mod reference_tests {
    use super::*;
    use crate::datapath::emc::{EmcConfig, ExactMatchCache};
    use crate::datapath::megaflow::{MegaflowId, MegaflowTable};
    use proptest::prelude::*;

    /// An OpenFlow-like rule from a small field space (so rules overlap a lot).
    #[derive(Clone, Debug)]
    struct Rule {
        key: FlowKey,
        mask: FlowMask,
    }

    fn rule_strategy() -> impl Strategy<Value = Rule> {
        (
            proptest::option::of(1u32..=4),
            proptest::option::of(prop_oneof![Just(0x800u16), Just(0x86dd)]),
            proptest::option::of(prop_oneof![Just(6u8), Just(17)]),
            proptest::option::of(1u16..=4),
            proptest::option::of((
                prop_oneof![Just(8usize), Just(16), Just(24), Just(32)],
                0u8..2,
                0u8..2,
                0u8..2,
            )),
        )
            .prop_map(|(port, dl_type, proto, tp_dst, dst)| {
                let mut key = FlowKey::default();
                let mut mask = FlowMask::catchall();
                if let Some(p) = port {
                    key.in_port = p;
                    mask.0.in_port = !0;
                }
                if let Some(t) = dl_type {
                    key.dl_type = t;
                    mask.0.dl_type = !0;
                }
                if let Some(p) = proto {
                    key.nw_proto = p;
                    mask.0.nw_proto = !0;
                }
                if let Some(t) = tp_dst {
                    key.tp_dst = t;
                    mask.0.tp_dst = !0;
                }
                if let Some((len, a, b, c)) = dst {
                    key.nw_dst[..4].copy_from_slice(&[10, a, b, c]);
                    for byte in mask.0.nw_dst[..len / 8].iter_mut() {
                        *byte = 0xff;
                    }
                }
                Rule { key: key.masked(&mask), mask }
            })
    }

    fn packet_strategy() -> impl Strategy<Value = FlowKey> {
        (
            1u32..=4,
            prop_oneof![Just(0x800u16), Just(0x86dd)],
            prop_oneof![Just(6u8), Just(17)],
            1u16..=4,
            0u16..3,
            0u8..2,
            0u8..2,
            0u8..2,
        )
            .prop_map(|(in_port, dl_type, nw_proto, tp_dst, tp_src, a, b, c)| {
                let mut k = FlowKey { in_port, dl_type, nw_proto, tp_dst, tp_src, ..Default::default() };
                k.nw_dst[..4].copy_from_slice(&[10, a, b, c]);
                k
            })
    }

    /// The rule a priority-ordered linear scan picks, and the mask of every field it looked at.
    fn translate(rules: &[Rule], pkt: &FlowKey) -> (Option<usize>, FlowMask) {
        let mut mask = FlowMask::catchall();
        for (i, r) in rules.iter().enumerate() {
            mask = mask.union(&r.mask);
            if pkt.matches_masked(&r.mask, &r.key) {
                return (Some(i), mask);
            }
        }
        (None, mask)
    }

    fn overlaps(a: &Megaflow, key: &FlowKey, mask: &FlowMask) -> bool {
        let (ka, ma, kb, mb) = (a.key.words(), a.mask.0.words(), key.words(), mask.0.words());
        (0..ka.len()).all(|i| (ka[i] ^ kb[i]) & ma[i] & mb[i] == 0)
    }

    /// Ofproto's job: add the megaflow for `pkt` unless it overlaps one already there.
    fn install(t: &mut MegaflowTable, rules: &[Rule], pkt: &FlowKey) {
        let (rule, mask) = translate(rules, pkt);
        let key = pkt.masked(&mask);
        let clash = t.iter().any(|mf| overlaps(mf, &key, &mask) && (mf.mask != mask || mf.key != key));
        if !clash {
            t.insert(key, mask, &[], rule.map_or(u64::MAX, |r| r as u64)).unwrap();
        }
    }

    fn reference(t: &MegaflowTable, pkt: &FlowKey) -> Option<MegaflowId> {
        let hits: Vec<_> = t.iter().filter(|mf| mf.matches(pkt)).map(|mf| mf.id).collect();
        assert!(hits.len() <= 1, "overlapping megaflows {hits:?}");
        hits.first().copied()
    }

    fn check(
        t: &MegaflowTable,
        r: &mut crate::datapath::megaflow::MegaflowReader,
        rules: &[Rule],
        emc: &mut ExactMatchCache,
        ranking: &mut SubtableRanking,
        pkts: &[FlowKey],
    ) -> Result<(), TestCaseError> {
        let want: Vec<_> = pkts.iter().map(|p| reference(t, p)).collect();
        r.with(|v| {
            prop_assert_eq!(v.len(), t.len());
            prop_assert_eq!(v.n_subtables(), t.n_subtables());
            for (p, w) in pkts.iter().zip(&want) {
                let got = v.lookup(p);
                prop_assert_eq!(got.map(|m| m.id), *w, "single lookup of {:?}", p);
                if let Some(mf) = got {
                    let (rule, _) = translate(rules, p);
                    prop_assert_eq!(mf.cookie, rule.map_or(u64::MAX, |r| r as u64));
                }
            }
            for chunk in pkts.chunks(32) {
                let mut out = [None; 32];
                v.lookup_batch(chunk, &mut out, ranking);
                for (i, p) in chunk.iter().enumerate() {
                    prop_assert_eq!(out[i].map(|m| m.id), reference(t, p), "batch lookup of {:?}", p);
                }
            }
            // Twice through EMC -> classifier -> EMC insert, as a poll thread does.
            for _ in 0..2 {
                for chunk in pkts.chunks(32) {
                    let hashes: Vec<u32> = chunk.iter().map(|k| k.hash()).collect();
                    let mut out = [None; 32];
                    emc.lookup_batch(chunk, &hashes, &mut out);
                    let from_emc: Vec<bool> = out.iter().map(|o| o.is_some()).collect();
                    v.lookup_batch(chunk, &mut out[..chunk.len()], ranking);
                    let mut to_insert = Vec::new();
                    for (i, p) in chunk.iter().enumerate() {
                        prop_assert_eq!(out[i].map(|m| m.id), reference(t, p), "EMC path for {:?}", p);
                        if let Some(mf) = out[i] {
                            if !from_emc[i] {
                                to_insert.push((i, Arc::clone(mf)));
                            }
                        }
                    }
                    for (i, mf) in to_insert {
                        emc.maybe_insert(&chunk[i], hashes[i], &mf);
                    }
                }
            }
            Ok(())
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]
        #[test]
        fn classifier_matches_linear_scan(
            rules in proptest::collection::vec(rule_strategy(), 1..12),
            pkts in proptest::collection::vec(packet_strategy(), 1..80),
            probes in proptest::collection::vec(packet_strategy(), 1..80),
            removals in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
            emc_on in any::<bool>(),
        ) {
            let mut t = MegaflowTable::new(1, 10_000);
            let mut r = t.reader();
            let cfg = if emc_on { EmcConfig { entries: 64, insert_inv_prob: 1 } } else { EmcConfig::disabled() };
            let mut emc = ExactMatchCache::new(cfg);
            let mut ranking = SubtableRanking::new(3);
            for p in &pkts {
                install(&mut t, &rules, p);
            }
            t.publish();
            let all: Vec<FlowKey> = pkts.iter().chain(&probes).copied().collect();
            check(&t, &mut r, &rules, &mut emc, &mut ranking, &all)?;
            // Remove some, publish, re-check (the EMC still holds the removed ones).
            let ids: Vec<MegaflowId> = t.iter().map(|m| m.id).collect();
            for ix in &removals {
                t.remove(ids[ix.index(ids.len())]);
            }
            t.publish();
            check(&t, &mut r, &rules, &mut emc, &mut ranking, &all)?;
            // Ofproto fills the holes again (now from the probes too).
            for p in &all {
                install(&mut t, &rules, p);
            }
            t.publish();
            check(&t, &mut r, &rules, &mut emc, &mut ranking, &all)?;
        }
    }
}
