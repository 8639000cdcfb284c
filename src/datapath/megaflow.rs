//! The shared megaflow table: one writer (the control thread), many lock-free readers (the
//! poll threads).
//!
//! **Ownership and threads.** The control thread owns the [`MegaflowTable`]; it inserts and
//! removes [`Megaflow`]s and then calls [`MegaflowTable::publish`]. Each poll thread owns one
//! [`MegaflowReader`] (from [`MegaflowTable::reader`]) and calls [`MegaflowReader::with`] once
//! per rx batch to look packets up in a [`ClassifierView`]. Megaflows are reference counted
//! (`Arc`): the table, both classifier copies and any [`ExactMatchCache`] may hold them.
//! Per-megaflow counters have one padded slot per core, written only by that core's poll
//! thread (relaxed load + store), and summed by [`Megaflow::stats`].
//!
//! **Why `left-right`.** Reads must be wait-free and cheap (one epoch bump per batch), and
//! writes come in bursts from a single thread. `left-right` keeps two copies of the
//! [`Classifier`]: readers use one while the writer replays an operation log (insert, remove,
//! clear of `Arc<Megaflow>`) onto the other, then swaps them. This avoids cloning the whole
//! table on each publish (as a copy-on-write `ArcSwap<Classifier>` would, O(n) per publish
//! with 10 000 flows) and needs no `unsafe` in this crate. Idle readers (not inside
//! [`MegaflowReader::with`]) have an even epoch and are never waited for.
//!
//! **Barrier semantics.** `left-right`'s own `publish` swaps the copies and returns while
//! readers may still be inside the copy just swapped out (it waits for them lazily, at the
//! next publish). [`MegaflowTable::publish`] therefore publishes twice: the second round waits
//! until every reader has left the stale copy, brings it up to date, and swaps again. When it
//! returns both copies hold every earlier change, so no reader can still see an older version:
//! an OpenFlow barrier reply sent after it means "in effect on every core". The wait is at
//! most the time a reader spends inside one `with` call (one rx batch).
//!
//! **Removal.** [`MegaflowTable::remove`] marks the megaflow dead at once, so exact-match
//! cache entries that still point at it stop matching; the classifier copies drop it on the
//! next publish.
//!
//! **A poll thread's batch**, EMC first, then the classifier for the rest, then actions,
//! then (outside `with`, since cached `Arc`s must be cloned) probabilistic EMC insertion:
//!
//! ```
//! use std::sync::Arc;
//! use xdpswitch::datapath::classifier::SubtableRanking;
//! use xdpswitch::datapath::emc::{EmcConfig, ExactMatchCache};
//! use xdpswitch::datapath::flow::{FlowKey, FlowMask};
//! use xdpswitch::datapath::megaflow::MegaflowTable;
//!
//! let mut table = MegaflowTable::new(1, 1024); // control thread
//! let mut mask = FlowMask::catchall();
//! mask.0.in_port = !0;
//! table.insert(FlowKey { in_port: 1, ..Default::default() }, mask, &[], 42).unwrap();
//! table.publish(); // after this, every poll thread sees the flow
//!
//! let mut reader = table.reader(); // moved to the poll thread, with:
//! let (mut emc, mut ranking) = (ExactMatchCache::new(EmcConfig::default()), SubtableRanking::default());
//! let keys = [FlowKey { in_port: 1, tp_dst: 80, ..Default::default() }; 4];
//! let hashes = keys.map(|k| k.hash());
//! let mut to_cache = Vec::new(); // preallocated in a real poll thread
//! reader.with(|cls| {
//!     let mut out = [None; 4];
//!     emc.lookup_batch(&keys, &hashes, &mut out);
//!     let missed: [bool; 4] = std::array::from_fn(|i| out[i].is_none());
//!     cls.lookup_batch(&keys, &mut out, &mut ranking);
//!     for (i, mf) in out.iter().enumerate() {
//!         match mf {
//!             Some(mf) => {
//!                 mf.record(0, 1, 64, 0); // then run mf.actions
//!                 if missed[i] && emc.should_insert() {
//!                     to_cache.push((i, Arc::clone(mf)));
//!                 }
//!             }
//!             None => {} // upcall
//!         }
//!     }
//! });
//! for (i, mf) in to_cache.drain(..) {
//!     emc.insert(&keys[i], hashes[i], mf);
//! }
//! ```
//!
//! [`ExactMatchCache`]: super::emc::ExactMatchCache

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::actions::DpAction;
use super::classifier::{Classifier, ClassifierView};
use super::flow::{FlowKey, FlowMask};
use crate::netdev::Counter;

/// Identifies a megaflow for as long as the table lives (never reused; increasing, so a
/// smaller id means an older megaflow).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MegaflowId(pub u64);

impl fmt::Display for MegaflowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "mf{}", self.0)
    }
}

/// Counters of one megaflow, summed over cores.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct FlowStats {
    /// Packets that hit the megaflow.
    pub packets: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Last time (caller's clock, ms) a packet hit the megaflow on any core; 0 = never.
    pub used_ms: u64,
}

/// One core's counters of one megaflow, on its own cache line.
#[derive(Default, Debug)]
#[repr(align(64))]
struct CoreSlot {
    packets: Counter,
    bytes: Counter,
    used_ms: Counter,
}

/// A megaflow's action list: inline up to two actions.
pub type DpActions = smallvec::SmallVec<[DpAction; 2]>;

const _: () =
    assert!(std::mem::size_of::<DpActions>() + 16 <= 64, "actions + stats pointer fit one cache line");

/// A datapath flow: packets whose key matches `key` under `mask` run `actions`.
///
/// Built only by [`MegaflowTable::insert`]; immutable afterwards except for its counters and
/// its dead flag. Laid out so that what a hit touches (dead flag, actions and counter
/// pointers) sits in the first cache line; lookups compare keys from the classifier's and
/// the exact-match cache's own copies. Up to two actions (the common `output`, or one
/// rewrite and an `output`) live inline in that line: with many megaflows, a separate
/// allocation for them cost a cache miss per packet (69% of `execute` in profiles).
#[repr(C, align(64))]
pub struct Megaflow {
    /// The actions to run on matching packets.
    pub actions: DpActions,
    stats: Box<[CoreSlot]>,
    dead: AtomicBool,
    /// The actions include `Normal` (the poll thread warms NORMAL's MAC table for it).
    pub uses_normal: bool,
    /// Never reused within a table.
    pub id: MegaflowId,
    /// Opaque to the datapath: ofproto stores its rule id here.
    pub cookie: u64,
    /// Already masked (`key == key.masked(&mask)`).
    pub key: FlowKey,
    /// Which bits of a packet's key are compared.
    pub mask: FlowMask,
}

impl fmt::Debug for Megaflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Megaflow")
            .field("id", &self.id)
            .field("key", &self.key)
            .field("mask", &self.mask)
            .field("actions", &self.actions)
            .field("cookie", &self.cookie)
            .field("dead", &self.is_dead())
            .finish()
    }
}

impl Megaflow {
    fn new(
        id: MegaflowId,
        key: FlowKey,
        mask: FlowMask,
        actions: &[DpAction],
        cookie: u64,
        max_cores: usize,
    ) -> Self {
        Megaflow {
            id,
            key: key.masked(&mask),
            mask,
            actions: actions.iter().cloned().collect(),
            uses_normal: actions.contains(&DpAction::Normal),
            cookie,
            dead: AtomicBool::new(false),
            // One slot per poll thread, and a last one for what the kernel forwarded.
            stats: (0..max_cores.max(1) + 1).map(|_| CoreSlot::default()).collect(),
        }
    }

    /// Whether the megaflow was removed from its table (exact-match cache entries check this).
    #[inline]
    pub fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Relaxed)
    }

    /// Whether `key` falls in this megaflow.
    #[inline]
    pub fn matches(&self, key: &FlowKey) -> bool {
        key.matches_masked(&self.mask, &self.key)
    }

    /// Adds a batch's packets and bytes to `core`'s slot. Only `core`'s poll thread may call
    /// this (single writer: relaxed load + store, no locked read-modify-write). A `core` not
    /// below the table's `max_cores` is folded onto a valid slot (and asserted in debug).
    #[inline]
    pub fn record(&self, core: usize, packets: u64, bytes: u64, now_ms: u64) {
        debug_assert!(core + 1 < self.stats.len(), "core {core} >= max_cores {}", self.stats.len() - 1);
        // No `%` here: a division per packet showed up in profiles. A core beyond the slots
        // (a caller bug, caught by the debug assertion) shares the last slot.
        let threads = &self.stats[..self.stats.len() - 1];
        let slot = threads.get(core).unwrap_or_else(|| &threads[threads.len() - 1]);
        slot.packets.add(packets);
        slot.bytes.add(bytes);
        slot.used_ms.set(now_ms);
    }

    /// Adds what the kernel's copy of this megaflow forwarded (the XDP offload). Only the
    /// control thread may call this (single writer of the last slot).
    pub fn record_offloaded(&self, packets: u64, bytes: u64, now_ms: u64) {
        let slot = &self.stats[self.stats.len() - 1];
        slot.packets.add(packets);
        slot.bytes.add(bytes);
        slot.used_ms.set(now_ms);
    }

    /// Counters summed over cores and the kernel; `used_ms` is the latest.
    pub fn stats(&self) -> FlowStats {
        sum_slots(&self.stats)
    }

    /// Counters of the poll threads only (what user space forwarded).
    pub fn stats_user(&self) -> FlowStats {
        sum_slots(&self.stats[..self.stats.len() - 1])
    }
}

fn sum_slots(slots: &[CoreSlot]) -> FlowStats {
    slots.iter().fold(FlowStats::default(), |acc, s| FlowStats {
        packets: acc.packets + s.packets.get(),
        bytes: acc.bytes + s.bytes.get(),
        used_ms: acc.used_ms.max(s.used_ms.get()),
    })
}

impl Megaflow {}

/// [`MegaflowTable::insert`] failed: the table holds `capacity` megaflows already.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("megaflow table full ({capacity} flows)")]
pub struct TableFull {
    /// The table's capacity.
    pub capacity: usize,
}

/// A change replayed onto each classifier copy.
pub(crate) enum Op {
    Insert(Arc<Megaflow>),
    Remove(Arc<Megaflow>),
    Clear,
}

impl left_right::Absorb<Op> for Classifier {
    fn absorb_first(&mut self, op: &mut Op, _other: &Self) {
        match op {
            Op::Insert(mf) => self.insert(Arc::clone(mf)),
            Op::Remove(mf) => {
                self.remove(mf);
            }
            Op::Clear => self.clear(),
        }
    }

    fn sync_with(&mut self, first: &Self) {
        *self = first.clone();
    }
}

/// The writer side of the megaflow table (owned by the control thread). See the module docs.
pub struct MegaflowTable {
    w: left_right::WriteHandle<Classifier, Op>,
    max_cores: usize,
    capacity: usize,
    next_id: u64,
    /// Live megaflows by id (includes changes not yet published).
    flows: BTreeMap<MegaflowId, Arc<Megaflow>>,
    /// (mask, masked key) → id, to refuse duplicates.
    by_match: HashMap<(FlowMask, FlowKey), MegaflowId>,
    /// Live megaflows per mask.
    masks: HashMap<FlowMask, usize>,
    /// Called with each megaflow as it is removed, before `remove`/`clear` return (the XDP
    /// offload takes the kernel's copy out here).
    on_remove: Option<Box<dyn FnMut(MegaflowId) + Send>>,
}

impl MegaflowTable {
    /// An empty table for poll threads numbered `0..max_cores`, holding at most `capacity`
    /// megaflows.
    pub fn new(max_cores: usize, capacity: usize) -> Self {
        let (mut w, _r) = left_right::new_from_empty::<Classifier, Op>(Classifier::new());
        // Get left-right's first-publish special case out of the way.
        w.publish();
        w.publish();
        MegaflowTable {
            w,
            max_cores: max_cores.max(1),
            capacity,
            next_id: 1,
            flows: BTreeMap::new(),
            by_match: HashMap::new(),
            masks: HashMap::new(),
            on_remove: None,
        }
    }

    /// Sets the function called with each megaflow as it is removed (see `on_remove`).
    pub fn set_remove_hook(&mut self, hook: Box<dyn FnMut(MegaflowId) + Send>) {
        self.on_remove = Some(hook);
    }

    /// A new reader for one poll thread.
    pub fn reader(&self) -> MegaflowReader {
        MegaflowReader { r: (*self.w).clone() }
    }

    /// Adds a megaflow (`key` is masked here); it becomes visible to readers at the next
    /// [`publish`](Self::publish). If the same (mask, masked key) is already present, returns
    /// the existing megaflow unchanged. Ofproto must not insert overlapping megaflows.
    pub fn insert(
        &mut self,
        key: FlowKey,
        mask: FlowMask,
        actions: &[DpAction],
        cookie: u64,
    ) -> Result<Arc<Megaflow>, TableFull> {
        let key = key.masked(&mask);
        if let Some(id) = self.by_match.get(&(mask, key)) {
            return Ok(Arc::clone(&self.flows[id]));
        }
        if self.flows.len() >= self.capacity {
            return Err(TableFull { capacity: self.capacity });
        }
        let id = MegaflowId(self.next_id);
        self.next_id += 1;
        let mf = Arc::new(Megaflow::new(id, key, mask, actions, cookie, self.max_cores));
        self.flows.insert(id, Arc::clone(&mf));
        self.by_match.insert((mask, key), id);
        *self.masks.entry(mask).or_insert(0) += 1;
        self.w.append(Op::Insert(Arc::clone(&mf)));
        Ok(mf)
    }

    /// Removes a megaflow: it is marked dead now (exact-match caches stop using it) and leaves
    /// the classifier at the next [`publish`](Self::publish). Returns false if unknown.
    pub fn remove(&mut self, id: MegaflowId) -> bool {
        let Some(mf) = self.flows.remove(&id) else { return false };
        if let Some(hook) = self.on_remove.as_mut() {
            hook(id);
        }
        mf.dead.store(true, Ordering::Release);
        self.by_match.remove(&(mf.mask, mf.key));
        if let Some(n) = self.masks.get_mut(&mf.mask) {
            *n -= 1;
            if *n == 0 {
                self.masks.remove(&mf.mask);
            }
        }
        self.w.append(Op::Remove(mf));
        true
    }

    /// Removes every megaflow (marked dead now; gone from readers at the next publish).
    pub fn clear(&mut self) {
        if let Some(hook) = self.on_remove.as_mut() {
            self.flows.keys().for_each(|id| hook(*id));
        }
        for mf in self.flows.values() {
            mf.dead.store(true, Ordering::Release);
        }
        self.flows.clear();
        self.by_match.clear();
        self.masks.clear();
        self.w.append(Op::Clear);
    }

    /// Makes every earlier insert/remove/clear visible to readers. When it returns, every
    /// reader's next lookup sees them and no reader is still inside an older version. Waits at
    /// most for readers currently inside [`MegaflowReader::with`]; idle readers don't delay it.
    /// Never call it from inside `with` (it would wait for itself forever).
    pub fn publish(&mut self) {
        // After a full publish both copies are equal and the log is empty: nothing to wait for.
        if !self.w.has_pending_operations() {
            return;
        }
        // See "Barrier semantics" in the module docs for why twice.
        self.w.publish();
        self.w.publish();
    }

    /// A live megaflow by id (including ones not yet published).
    pub fn get(&self, id: MegaflowId) -> Option<&Arc<Megaflow>> {
        self.flows.get(&id)
    }

    /// Live megaflows in id order (including ones not yet published).
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Megaflow>> {
        self.flows.values()
    }

    /// Number of live megaflows.
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    /// Whether there are no live megaflows.
    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// Number of distinct masks among live megaflows (= classifier subtables after publish).
    pub fn n_subtables(&self) -> usize {
        self.masks.len()
    }

    /// The most megaflows the table accepts.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

impl fmt::Debug for MegaflowTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MegaflowTable")
            .field("len", &self.flows.len())
            .field("n_subtables", &self.masks.len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

/// Empty classifier seen by readers whose table was dropped.
static EMPTY: Classifier = Classifier::empty();

/// One poll thread's read side of a [`MegaflowTable`]. `Send`, not `Sync`: each poll thread
/// has its own (get more with [`MegaflowTable::reader`] or [`Clone`]).
pub struct MegaflowReader {
    r: left_right::ReadHandle<Classifier>,
}

impl MegaflowReader {
    /// Runs `f` on the current published version, lock-free (wait-free entry: one epoch
    /// increment and a fence). The poll thread calls this once per rx batch and does all of
    /// the batch's lookups *and* exact-match cache lookups inside it: a concurrent
    /// [`MegaflowTable::publish`] waits until `f` returns, so keep `f` short (one batch) and
    /// never block inside it. References obtained inside `f` cannot escape it.
    ///
    /// If the table was dropped, `f` sees an empty classifier.
    #[inline]
    pub fn with<R>(&mut self, f: impl FnOnce(&ClassifierView<'_>) -> R) -> R {
        match self.r.enter() {
            Some(guard) => f(&ClassifierView::new(&guard)),
            None => f(&ClassifierView::new(&EMPTY)),
        }
    }
}

impl Clone for MegaflowReader {
    fn clone(&self) -> Self {
        MegaflowReader { r: self.r.clone() }
    }
}

impl fmt::Debug for MegaflowReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MegaflowReader")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netdev::DpPortNo;

    fn mask_port() -> FlowMask {
        let mut m = FlowMask::catchall();
        m.0.in_port = !0;
        m
    }

    fn key_port(p: u32) -> FlowKey {
        FlowKey { in_port: p, tp_dst: 80, ..Default::default() }
    }

    #[test]
    fn insert_dedup_remove_publish() {
        let mut t = MegaflowTable::new(2, 3);
        let mut r = t.reader();
        let a = t.insert(key_port(1), mask_port(), &[DpAction::Output(DpPortNo(2))], 7).unwrap();
        assert_eq!(a.key.tp_dst, 0, "key is masked");
        let again = t.insert(key_port(1), mask_port(), &[], 8).unwrap();
        assert_eq!(again.id, a.id);
        assert_eq!(t.len(), 1);
        assert!(r.with(|v| v.lookup(&key_port(1)).is_none()), "not yet published");
        t.publish();
        assert_eq!(r.with(|v| v.lookup(&key_port(1)).map(|m| m.id)), Some(a.id));
        t.insert(key_port(2), mask_port(), &[], 0).unwrap();
        t.insert(key_port(3), mask_port(), &[], 0).unwrap();
        assert_eq!(t.insert(key_port(4), mask_port(), &[], 0).unwrap_err(), TableFull { capacity: 3 });
        assert_eq!(t.n_subtables(), 1);
        assert!(t.remove(a.id));
        assert!(!t.remove(a.id));
        assert!(a.is_dead());
        assert!(t.get(a.id).is_none());
        t.publish();
        assert!(r.with(|v| v.lookup(&key_port(1)).is_none()));
        assert!(r.with(|v| v.lookup(&key_port(2)).is_some()));
        assert_eq!(r.with(|v| (v.len(), v.n_subtables())), (2, 1));
        t.clear();
        t.publish();
        assert_eq!(t.len(), 0);
        assert_eq!(t.n_subtables(), 0);
        assert!(r.with(|v| v.lookup(&key_port(2)).is_none() && v.n_subtables() == 0));
    }

    #[test]
    fn per_core_stats() {
        let mut t = MegaflowTable::new(2, 10);
        let a = t.insert(key_port(1), mask_port(), &[], 0).unwrap();
        a.record(0, 3, 300, 10);
        a.record(1, 1, 64, 5);
        a.record(0, 1, 100, 12);
        assert_eq!(a.stats(), FlowStats { packets: 5, bytes: 464, used_ms: 12 });
        assert_eq!(format!("{}", a.id), "mf1");
    }

    #[test]
    fn reader_of_dropped_table_sees_empty() {
        let mut t = MegaflowTable::new(1, 10);
        t.insert(key_port(1), mask_port(), &[], 0).unwrap();
        t.publish();
        let mut r = t.reader();
        drop(t);
        assert!(r.with(|v| v.lookup(&key_port(1)).is_none()));
    }

    /// A poll thread looks up one key (EMC in front) while the control thread keeps
    /// inserting, removing and publishing megaflows for it: once `publish` has returned, the
    /// removed megaflow must never be seen again, by the classifier or the EMC.
    #[test]
    fn removed_flow_never_seen_after_publish() {
        use crate::datapath::classifier::SubtableRanking;
        use crate::datapath::emc::{EmcConfig, ExactMatchCache};
        use std::sync::atomic::AtomicU64;

        let mut t = MegaflowTable::new(2, 100);
        let _idle_reader = t.reader(); // never enters: must not hold up publish
        let mut r = t.reader();
        let dead_published = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let k = key_port(1);
        let reader = {
            let (dead_published, stop) = (Arc::clone(&dead_published), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut emc = ExactMatchCache::new(EmcConfig { entries: 64, insert_inv_prob: 1 });
                let mut ranking = SubtableRanking::new(4);
                let (mut seen, mut lookups) = (0u64, 0u64);
                while !stop.load(Ordering::Acquire) {
                    let dead = dead_published.load(Ordering::SeqCst);
                    let found = r.with(|v| {
                        let got = emc.lookup(&k, k.hash()).map(|m| (Arc::clone(m), true)).or_else(|| {
                            let mut out = [None];
                            v.lookup_batch(&[k], &mut out, &mut ranking);
                            out[0].map(|m| (Arc::clone(m), false))
                        });
                        if let Some((mf, _)) = &got {
                            assert!(mf.id.0 > dead, "{} seen after its removal was published", mf.id);
                            mf.record(1, 1, 64, 0);
                        }
                        got
                    });
                    lookups += 1;
                    if let Some((mf, from_emc)) = found {
                        seen += 1;
                        if !from_emc {
                            emc.maybe_insert(&k, k.hash(), &mf);
                        }
                    }
                }
                (seen, lookups)
            })
        };
        let masks = [mask_port(), FlowMask::exact(), FlowMask::catchall()];
        for round in 0..3000 {
            let mf = t.insert(k, masks[round % masks.len()], &[], round as u64).unwrap();
            t.publish();
            if round % 8 == 0 {
                std::thread::yield_now();
            }
            assert!(t.remove(mf.id));
            t.publish();
            dead_published.store(mf.id.0, Ordering::SeqCst);
        }
        stop.store(true, Ordering::Release);
        let (seen, lookups) = reader.join().expect("reader saw a removed megaflow");
        assert!(lookups > 0);
        eprintln!("reader: {lookups} lookups, {seen} hits");
    }

    /// `publish` returns only once no reader is inside an older version (with a single
    /// left-right publish this test fails).
    #[test]
    fn publish_waits_for_readers_inside_old_version() {
        let mut t = MegaflowTable::new(1, 10);
        let a = t.insert(key_port(1), mask_port(), &[], 0).unwrap();
        t.publish();
        let mut r = t.reader();
        let (entered_tx, entered_rx) = std::sync::mpsc::channel();
        let left = Arc::new(AtomicBool::new(false));
        let left2 = Arc::clone(&left);
        let h = std::thread::spawn(move || {
            r.with(|v| {
                assert!(v.lookup(&key_port(1)).is_some());
                entered_tx.send(()).unwrap();
                std::thread::sleep(std::time::Duration::from_millis(50));
                left2.store(true, Ordering::SeqCst);
            });
        });
        entered_rx.recv().unwrap();
        t.remove(a.id);
        t.publish();
        assert!(left.load(Ordering::SeqCst), "publish returned while a reader was in the old version");
        h.join().unwrap();
    }

    #[test]
    fn reader_is_send() {
        fn is_send<T: Send>() {}
        is_send::<MegaflowReader>();
        is_send::<MegaflowTable>();
    }
}
