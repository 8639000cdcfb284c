//! The forwarding database of `NORMAL`: (MAC, VLAN) → port, read by every poll thread on
//! every NORMAL packet, written only by the control thread.
//!
//! OVS runs NORMAL in translation: a megaflow per (source, destination) MAC pair and a
//! revalidation of the whole datapath on every MAC move. Here the lookup happens in the fast
//! path (see [`super::normal`]), so one megaflow serves every MAC pair, and a MAC move is one
//! store.
//!
//! Layout: an open-addressing table of fixed capacity (linear probing, bounded probe length,
//! at most half full), each slot a small seqlock: the writer makes the sequence odd, writes key
//! and port, makes it even again; a reader that sees an odd or changed sequence treats the
//! entry as unknown, which only means one packet is flooded. Readers never wait and never
//! write, except the coarse `seen` time, refreshed at most once a second per entry, which
//! drives aging. Learning is an event queued to the control thread (see
//! [`Fdb::needs_learning`]).
//!
//! The writer bounds the table at `max_entries` (OVS: `mac-table-size`, 8192). When it is full
//! a new address evicts one from the port that holds the most dynamic entries, the oldest
//! learned there first (with a second chance for one seen this very second), as OVS evicts
//! "fairly": a flood of random source addresses on one port evicts that port's entries, not
//! the other ports' hosts. Static entries are never aged, evicted or moved by learning.
//!
//! Written by hand because no crate offers a fixed-size, allocation-free, single-writer map
//! with wait-free readers of 128-bit entries on stable Rust.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering::*};
use std::sync::Arc;

use crate::netdev::DpPortNo;

/// Slots probed from a key's home slot before giving up.
const MAX_PROBE: usize = 16;
/// Key word of an empty slot / a deleted one.
const EMPTY: u64 = 0;
const TOMBSTONE: u64 = 2;
/// Set in the key word of a static entry (never aged, evicted or moved by learning).
const STATIC: u64 = 4;
/// Candidates looked at (second chances given) per eviction before taking the oldest anyway.
const EVICT_TRIES: usize = 4;

/// One address in the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdbEntry {
    pub mac: [u8; 6],
    /// The VLAN (0 for untagged traffic on a trunk).
    pub vlan: u16,
    pub port: DpPortNo,
    /// When a poll thread last saw the address as a source (the datapath's clock, seconds).
    pub seen_s: u32,
    /// Added by the operator: never aged, evicted, or moved by learning.
    pub is_static: bool,
}

#[derive(Default)]
#[repr(align(32))]
struct Slot {
    seq: AtomicU32,
    seen: AtomicU32,
    port: AtomicU32,
    key: AtomicU64,
}

/// The table. Shared (`Arc`) by the poll threads for reading; written through [`FdbWriter`].
pub struct Fdb {
    slots: Box<[Slot]>,
    mask: usize,
}

fn key(mac: [u8; 6], vlan: u16) -> u64 {
    let m = u64::from_be_bytes([0, 0, mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]]);
    (m << 16) | (u64::from(vlan & 0xfff) << 4) | 1
}

fn unkey(k: u64) -> ([u8; 6], u16) {
    let b = (k >> 16).to_be_bytes();
    ([b[2], b[3], b[4], b[5], b[6], b[7]], ((k >> 4) & 0xfff) as u16)
}

fn home(k: u64, mask: usize) -> usize {
    // Fibonacci hashing of the key word (static bit excluded): cheap, spreads sequential MACs.
    ((k & !STATIC).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize & mask
}

fn occupied(k: u64) -> bool {
    k & 1 != 0
}

impl Fdb {
    /// A table holding up to `max_entries` addresses (its slots: twice that, rounded up to a
    /// power of two, at least 64) and its writer.
    pub fn new(max_entries: usize) -> (Arc<Fdb>, FdbWriter) {
        let max_entries = max_entries.max(1);
        let n = (max_entries * 2).max(64).next_power_of_two();
        let fdb = Arc::new(Fdb { slots: (0..n).map(|_| Slot::default()).collect(), mask: n - 1 });
        let w = FdbWriter {
            fdb: fdb.clone(),
            max_entries,
            len: 0,
            n_static: 0,
            ports: HashMap::new(),
            stats: FdbStats::default(),
            mirror: None,
        };
        (fdb, w)
    }

    /// Reads slot `i` consistently: `(key, port)`, or `None` if it is being written.
    #[inline]
    fn read(&self, i: usize) -> Option<(u64, u32)> {
        let s = &self.slots[i];
        let s1 = s.seq.load(Acquire);
        if s1 & 1 != 0 {
            return None;
        }
        let k = s.key.load(Relaxed);
        let p = s.port.load(Relaxed);
        fence(Acquire);
        (s.seq.load(Relaxed) == s1).then_some((k, p))
    }

    /// The slot holding `k` (static or not): `(index, key word, port)`.
    #[inline]
    fn find(&self, k: u64) -> Option<(usize, u64, u32)> {
        let mut i = home(k, self.mask);
        for _ in 0..MAX_PROBE {
            match self.read(i) {
                Some((kk, p)) if kk & !STATIC == k => return Some((i, kk, p)),
                Some((EMPTY, _)) => return None,
                _ => {}
            }
            i = (i + 1) & self.mask;
        }
        None
    }

    /// The port `mac` on `vlan` was learned on.
    #[inline]
    pub fn lookup(&self, mac: [u8; 6], vlan: u16) -> Option<DpPortNo> {
        self.find(key(mac, vlan)).map(|(_, _, p)| DpPortNo(p))
    }

    /// Loads the home slot of `mac` on `vlan` and returns its sequence word (meaningless): a
    /// poll thread touches a batch's slots before deciding for each packet, so their cache
    /// misses overlap. A plain load rather than a prefetch instruction, which would need
    /// `unsafe`; out-of-order execution overlaps independent loads all the same.
    #[inline]
    pub fn touch(&self, mac: [u8; 6], vlan: u16) -> u32 {
        self.slots[home(key(mac, vlan), self.mask)].seq.load(Relaxed)
    }

    /// Called by a poll thread for each source address it forwards with NORMAL: refreshes the
    /// entry's age (at most one store a second) and says whether the control thread must
    /// learn it (unknown, or known on another port: a move). A static entry is never moved.
    #[inline]
    pub fn needs_learning(&self, mac: [u8; 6], vlan: u16, in_port: DpPortNo, now_s: u32) -> bool {
        match self.find(key(mac, vlan)) {
            Some((_, kk, _)) if kk & STATIC != 0 => false,
            Some((i, _, p)) if p == in_port.0 => {
                let seen = &self.slots[i].seen;
                if seen.load(Relaxed) != now_s {
                    seen.store(now_s, Relaxed);
                }
                false
            }
            _ => true,
        }
    }
}

/// What [`FdbWriter::learn`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Learned {
    /// A new entry (after evicting another one if the table was full).
    New,
    /// The address moved here from this port.
    Moved(DpPortNo),
    /// Already known on this port: its age was refreshed.
    Refreshed,
    /// A static entry has the address: left as it is.
    Static,
}

/// The table could not take the address: no free slot within the probe distance, or full of
/// static entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("MAC table full")]
pub struct FdbFull;

/// Counters of the table's life, as OVS's `fdb/stats-show`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct FdbStats {
    /// Addresses learned (new entries).
    pub learned: u64,
    /// Entries removed by aging.
    pub expired: u64,
    /// Entries evicted to make room.
    pub evicted: u64,
    /// Entries that moved to another port.
    pub moved: u64,
    /// Addresses not learned for want of a slot.
    pub full: u64,
}

/// Per port: how many dynamic entries it holds and their keys in the order they were learned
/// (stale keys, of entries since moved or removed, are skipped when met and swept out when
/// they outnumber the live ones).
#[derive(Default)]
struct PortEntries {
    count: usize,
    order: VecDeque<u64>,
}

/// A change to the table, as a mirror sees it (see [`FdbWriter::set_mirror`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FdbChange {
    /// `mac` on `vlan` is on `port` (new, moved, refreshed or made static).
    Set { mac: [u8; 6], vlan: u16, port: DpPortNo },
    /// `mac` on `vlan` is gone (forgotten, aged, evicted, flushed).
    Remove { mac: [u8; 6], vlan: u16 },
}

/// The one writer of an [`Fdb`] (the control thread). Not `Clone`.
pub struct FdbWriter {
    fdb: Arc<Fdb>,
    max_entries: usize,
    len: usize,
    n_static: usize,
    ports: HashMap<u32, PortEntries>,
    stats: FdbStats,
    mirror: Option<Box<dyn Fn(FdbChange) + Send>>,
}

impl FdbWriter {
    /// The shared table.
    pub fn fdb(&self) -> &Arc<Fdb> {
        &self.fdb
    }

    /// Entries in the table (static ones included).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Static entries in the table.
    pub fn n_static(&self) -> usize {
        self.n_static
    }

    /// The most entries the table holds.
    pub fn max_entries(&self) -> usize {
        self.max_entries
    }

    /// The table's counters.
    pub fn stats(&self) -> FdbStats {
        self.stats
    }

    /// Calls `mirror` with every change from now on, and with every entry now (the XDP
    /// offload keeps a kernel copy of the table this way). Changes are reported as they are
    /// written, before the call that makes them returns.
    pub fn set_mirror(&mut self, mirror: Box<dyn Fn(FdbChange) + Send>) {
        for e in self.entries() {
            mirror(FdbChange::Set { mac: e.mac, vlan: e.vlan, port: e.port });
        }
        self.mirror = Some(mirror);
    }

    fn write(&self, i: usize, k: u64, port: u32, seen: u32) {
        let s = &self.fdb.slots[i];
        if let Some(m) = &self.mirror {
            let old = s.key.load(Relaxed);
            if occupied(k) {
                let (mac, vlan) = unkey(k & !STATIC);
                m(FdbChange::Set { mac, vlan, port: DpPortNo(port) });
            } else if occupied(old) {
                let (mac, vlan) = unkey(old & !STATIC);
                m(FdbChange::Remove { mac, vlan });
            }
        }
        let seq = s.seq.load(Relaxed);
        s.seq.store(seq.wrapping_add(1), Relaxed);
        fence(Release);
        s.key.store(k, Relaxed);
        s.port.store(port, Relaxed);
        s.seen.store(seen, Relaxed);
        s.seq.store(seq.wrapping_add(2), Release);
    }

    /// Where `k` is (`Ok(index)`), or the free slot it would take (`Err(Some(index))`, or
    /// `Err(None)` when there is none within the probe distance). The writer's own reads are
    /// never torn.
    fn slot_for(&self, k: u64) -> Result<usize, Option<usize>> {
        let mask = self.fdb.mask;
        let mut i = home(k, mask);
        let mut free = None;
        for _ in 0..MAX_PROBE {
            let kk = self.fdb.slots[i].key.load(Relaxed);
            if kk & !STATIC == k {
                return Ok(i);
            }
            if !occupied(kk) && free.is_none() {
                free = Some(i);
            }
            if kk == EMPTY {
                break;
            }
            i = (i + 1) & mask;
        }
        Err(free)
    }

    fn port_entries(&mut self, port: u32) -> &mut PortEntries {
        self.ports.entry(port).or_default()
    }

    /// Accounts a dynamic entry `k` newly on `port`.
    fn add_dynamic(&mut self, port: u32, k: u64) {
        let pe = self.port_entries(port);
        pe.count += 1;
        pe.order.push_back(k);
        if pe.order.len() > 2 * pe.count + 64 {
            self.sweep(port);
        }
    }

    /// Drops the stale keys from a port's learning order.
    fn sweep(&mut self, port: u32) {
        let fdb = self.fdb.clone();
        if let Some(pe) = self.ports.get_mut(&port) {
            pe.order.retain(|&k| fdb.find(k).is_some_and(|(_, kk, p)| p == port && kk & STATIC == 0));
        }
    }

    fn remove_dynamic(&mut self, port: u32) {
        if let Some(pe) = self.ports.get_mut(&port) {
            pe.count = pe.count.saturating_sub(1);
        }
    }

    /// Learns (or moves) `mac` on `vlan` to `port`, evicting an entry first if the table is
    /// full (see the module docs).
    pub fn learn(&mut self, mac: [u8; 6], vlan: u16, port: DpPortNo, now_s: u32) -> Result<Learned, FdbFull> {
        let k = key(mac, vlan);
        match self.slot_for(k) {
            Ok(i) => {
                let s = &self.fdb.slots[i];
                let (kk, old) = (s.key.load(Relaxed), s.port.load(Relaxed));
                if kk & STATIC != 0 {
                    return Ok(Learned::Static);
                }
                self.write(i, k, port.0, now_s);
                if old == port.0 {
                    return Ok(Learned::Refreshed);
                }
                self.remove_dynamic(old);
                self.add_dynamic(port.0, k);
                self.stats.moved += 1;
                Ok(Learned::Moved(DpPortNo(old)))
            }
            Err(free) => {
                if self.len >= self.max_entries && !self.evict_fairly(now_s) {
                    self.stats.full += 1;
                    return Err(FdbFull);
                }
                // Eviction may have freed a slot on this key's probe path.
                let Some(i) = free.or_else(|| self.slot_for(k).err().flatten()) else {
                    self.stats.full += 1;
                    return Err(FdbFull);
                };
                self.write(i, k, port.0, now_s);
                self.len += 1;
                self.add_dynamic(port.0, k);
                self.stats.learned += 1;
                Ok(Learned::New)
            }
        }
    }

    /// Removes one dynamic entry of the port with the most; `false` if there is none.
    fn evict_fairly(&mut self, now_s: u32) -> bool {
        let Some(port) =
            self.ports.iter().filter(|(_, pe)| pe.count > 0).max_by_key(|(_, pe)| pe.count).map(|(&p, _)| p)
        else {
            return false;
        };
        let fdb = self.fdb.clone();
        let mut tries = 0;
        loop {
            let Some(k) = self.ports.get_mut(&port).and_then(|pe| pe.order.pop_front()) else {
                // Counted entries with no order left cannot happen; recover by recounting.
                if let Some(pe) = self.ports.get_mut(&port) {
                    pe.count = 0;
                }
                return false;
            };
            let Some((i, kk, p)) = fdb.find(k) else { continue };
            if p != port || kk & STATIC != 0 {
                continue;
            }
            let seen = fdb.slots[i].seen.load(Relaxed);
            if seen >= now_s && tries < EVICT_TRIES {
                // Seen this second: a second chance, at the back of the line.
                tries += 1;
                if let Some(pe) = self.ports.get_mut(&port) {
                    pe.order.push_back(k);
                }
                continue;
            }
            self.write(i, TOMBSTONE, 0, 0);
            self.len -= 1;
            self.remove_dynamic(port);
            self.stats.evicted += 1;
            return true;
        }
    }

    /// Adds (or replaces) a static entry: `mac` on `vlan` is on `port` until removed.
    pub fn add_static(&mut self, mac: [u8; 6], vlan: u16, port: DpPortNo) -> Result<(), FdbFull> {
        let k = key(mac, vlan);
        let i = match self.slot_for(k) {
            Ok(i) => {
                let s = &self.fdb.slots[i];
                if s.key.load(Relaxed) & STATIC == 0 {
                    self.remove_dynamic(s.port.load(Relaxed));
                    self.n_static += 1;
                }
                i
            }
            Err(free) => {
                if self.len >= self.max_entries && !self.evict_fairly(u32::MAX) {
                    return Err(FdbFull);
                }
                let i = free.or_else(|| self.slot_for(k).err().flatten()).ok_or(FdbFull)?;
                self.len += 1;
                self.n_static += 1;
                i
            }
        };
        self.write(i, k | STATIC, port.0, 0);
        Ok(())
    }

    fn remove_at(&mut self, i: usize) {
        let s = &self.fdb.slots[i];
        let (kk, port) = (s.key.load(Relaxed), s.port.load(Relaxed));
        if kk & STATIC != 0 {
            self.n_static -= 1;
        } else {
            self.remove_dynamic(port);
        }
        self.write(i, TOMBSTONE, 0, 0);
        self.len -= 1;
    }

    /// Forgets one address (static or learned).
    pub fn forget(&mut self, mac: [u8; 6], vlan: u16) -> bool {
        match self.slot_for(key(mac, vlan)) {
            Ok(i) => {
                self.remove_at(i);
                true
            }
            Err(_) => false,
        }
    }

    /// Removes learned entries not seen for more than `max_age_s` seconds; returns how many.
    pub fn age(&mut self, now_s: u32, max_age_s: u32) -> usize {
        let n = self.retain(|e| e.is_static || now_s.saturating_sub(e.seen_s) <= max_age_s);
        self.stats.expired += n as u64;
        n
    }

    /// Removes every entry for which `keep` is false (port deleted, flush); returns how many.
    pub fn retain(&mut self, mut keep: impl FnMut(&FdbEntry) -> bool) -> usize {
        let mut n = 0;
        for i in 0..self.fdb.slots.len() {
            if let Some(e) = self.entry(i) {
                if !keep(&e) {
                    self.remove_at(i);
                    n += 1;
                }
            }
        }
        if n > 0 {
            let ports: Vec<u32> = self.ports.keys().copied().collect();
            for p in ports {
                self.sweep(p);
            }
            self.ports.retain(|_, pe| pe.count > 0 || !pe.order.is_empty());
        }
        n
    }

    fn entry(&self, i: usize) -> Option<FdbEntry> {
        let s = &self.fdb.slots[i];
        let k = s.key.load(Relaxed);
        if !occupied(k) {
            return None;
        }
        let (mac, vlan) = unkey(k);
        Some(FdbEntry {
            mac,
            vlan,
            port: DpPortNo(s.port.load(Relaxed)),
            seen_s: s.seen.load(Relaxed),
            is_static: k & STATIC != 0,
        })
    }

    /// Every entry, in table order.
    pub fn entries(&self) -> Vec<FdbEntry> {
        (0..self.fdb.slots.len()).filter_map(|i| self.entry(i)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn mac(n: u32) -> [u8; 6] {
        let b = n.to_be_bytes();
        [0x02, 0, b[0], b[1], b[2], b[3]]
    }

    #[test]
    fn learn_lookup_move_forget() {
        let (fdb, mut w) = Fdb::new(64);
        assert_eq!(fdb.lookup(mac(1), 0), None);
        assert!(fdb.needs_learning(mac(1), 0, DpPortNo(1), 5));
        assert_eq!(w.learn(mac(1), 0, DpPortNo(1), 5), Ok(Learned::New));
        assert_eq!(fdb.lookup(mac(1), 0), Some(DpPortNo(1)));
        assert_eq!(fdb.lookup(mac(1), 10), None, "VLANs are separate");
        assert!(!fdb.needs_learning(mac(1), 0, DpPortNo(1), 6));
        assert!(fdb.needs_learning(mac(1), 0, DpPortNo(2), 6), "a move");
        assert_eq!(w.learn(mac(1), 0, DpPortNo(2), 6), Ok(Learned::Moved(DpPortNo(1))));
        assert_eq!(w.learn(mac(1), 0, DpPortNo(2), 7), Ok(Learned::Refreshed));
        assert_eq!(fdb.lookup(mac(1), 0), Some(DpPortNo(2)));
        assert_eq!(w.len(), 1);
        assert_eq!(w.stats(), FdbStats { learned: 1, moved: 1, ..FdbStats::default() });
        assert!(w.forget(mac(1), 0));
        assert_eq!(fdb.lookup(mac(1), 0), None);
        assert!(w.is_empty());
    }

    #[test]
    fn mirror_sees_every_change() {
        use std::sync::Mutex;
        type Copy = Arc<Mutex<HashMap<([u8; 6], u16), DpPortNo>>>;
        let (_fdb, mut w) = Fdb::new(16);
        w.learn(mac(100), 0, DpPortNo(9), 1).unwrap();
        let copy: Copy = Arc::default();
        let c = copy.clone();
        w.set_mirror(Box::new(move |ch| {
            let mut m = c.lock().unwrap();
            match ch {
                FdbChange::Set { mac, vlan, port } => m.insert((mac, vlan), port),
                FdbChange::Remove { mac, vlan } => m.remove(&(mac, vlan)),
            };
        }));
        let same = |w: &FdbWriter| {
            let want: HashMap<_, _> = w.entries().iter().map(|e| ((e.mac, e.vlan), e.port)).collect();
            assert_eq!(*copy.lock().unwrap(), want);
        };
        same(&w);
        // Learning beyond the bound (evictions), moves, statics, forgetting, aging, flushing.
        for n in 0..40 {
            w.learn(mac(n), (n % 3) as u16, DpPortNo(n % 4 + 1), n).unwrap();
            same(&w);
        }
        w.learn(mac(39), 0, DpPortNo(7), 50).unwrap();
        w.add_static(mac(500), 5, DpPortNo(2)).unwrap();
        same(&w);
        w.forget(mac(500), 5);
        same(&w);
        assert!(w.age(60, 15) > 0);
        same(&w);
        w.retain(|_| false);
        same(&w);
        assert!(copy.lock().unwrap().is_empty());
    }

    #[test]
    fn bounded_ages_and_reuses_tombstones() {
        let (fdb, mut w) = Fdb::new(64);
        for n in 0..200 {
            assert!(w.learn(mac(n), 1, DpPortNo(n % 7 + 1), n).is_ok());
            assert!(w.len() <= 64);
        }
        assert_eq!(w.len(), 64);
        assert_eq!(w.stats().evicted, 200 - 64);
        for e in w.entries() {
            assert_eq!(fdb.lookup(e.mac, 1), Some(e.port));
        }
        // Entries seen at t < 170 are older than 20 s at t = 190.
        let old = w.entries().iter().filter(|e| e.seen_s < 170).count();
        assert!(old > 0);
        assert_eq!(w.age(190, 20), old);
        assert_eq!(w.stats().expired, old as u64);
        assert_eq!(w.len(), 64 - old);
        // Freed slots take new entries; the survivors are still found through tombstones.
        for n in 1000..1000 + old as u32 {
            assert_eq!(w.learn(mac(n), 1, DpPortNo(1), 190), Ok(Learned::New));
        }
        for e in w.entries() {
            assert_eq!(fdb.lookup(e.mac, e.vlan), Some(e.port));
        }
        let n = w.entries().len();
        assert_eq!(w.retain(|_| false), n);
        assert!(w.is_empty());
    }

    #[test]
    fn eviction_is_fair_between_ports() {
        // Three quiet hosts on ports 1-3, then a flood of sources on port 4: the flood evicts
        // its own entries, never the hosts'.
        let (fdb, mut w) = Fdb::new(100);
        for p in 1..=3 {
            w.learn(mac(p), 0, DpPortNo(p), 0).unwrap();
        }
        for n in 0..10_000 {
            w.learn(mac(1000 + n), 0, DpPortNo(4), 10 + n / 1000).unwrap();
        }
        assert_eq!(w.len(), 100);
        for p in 1..=3 {
            assert_eq!(fdb.lookup(mac(p), 0), Some(DpPortNo(p)), "host on port {p} evicted");
        }
        // The most recent flood addresses are the ones kept.
        assert_eq!(fdb.lookup(mac(1000 + 9_999), 0), Some(DpPortNo(4)));
        assert_eq!(fdb.lookup(mac(1000), 0), None);
        assert_eq!(w.stats().evicted, 10_000 - 97);
        // The per-port bookkeeping stays bounded.
        assert!(w.ports[&4].order.len() <= 2 * 97 + 64 + 1);
    }

    #[test]
    fn static_entries_stay_put() {
        let (fdb, mut w) = Fdb::new(4);
        w.add_static(mac(1), 5, DpPortNo(3)).unwrap();
        assert_eq!(fdb.lookup(mac(1), 5), Some(DpPortNo(3)));
        // Learning never moves it, and a poll thread does not even ask.
        assert!(!fdb.needs_learning(mac(1), 5, DpPortNo(1), 9));
        assert_eq!(w.learn(mac(1), 5, DpPortNo(1), 9), Ok(Learned::Static));
        assert_eq!(fdb.lookup(mac(1), 5), Some(DpPortNo(3)));
        // Never aged or evicted.
        for n in 10..40 {
            w.learn(mac(n), 5, DpPortNo(1), n).unwrap();
        }
        assert_eq!(w.age(1_000_000, 300), 3);
        assert_eq!(fdb.lookup(mac(1), 5), Some(DpPortNo(3)));
        assert_eq!((w.len(), w.n_static()), (1, 1));
        let e = w.entries()[0];
        assert!(e.is_static && e.vlan == 5 && e.mac == mac(1));
        // A learned entry becomes static in place; forget removes either kind.
        w.learn(mac(2), 5, DpPortNo(1), 0).unwrap();
        w.add_static(mac(2), 5, DpPortNo(2)).unwrap();
        assert_eq!((w.len(), w.n_static()), (2, 2));
        assert_eq!(fdb.lookup(mac(2), 5), Some(DpPortNo(2)));
        assert!(w.forget(mac(1), 5) && w.forget(mac(2), 5));
        assert!(w.is_empty() && w.n_static() == 0);
        // A table full of static entries refuses to learn.
        for n in 0..4 {
            w.add_static(mac(n), 0, DpPortNo(1)).unwrap();
        }
        assert_eq!(w.learn(mac(99), 0, DpPortNo(1), 0), Err(FdbFull));
        assert_eq!(w.stats().full, 1);
    }

    #[test]
    fn readers_never_see_a_torn_entry() {
        // The writer rewrites one slot with (key, port) pairs where the port is a function of
        // the key; a reader must get a matching pair or "being written", never a mix. The
        // writer goes on until both readers have checked whole entries (on a loaded machine
        // a reader thread may start only after many writes).
        let (fdb, w) = Fdb::new(64);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let whole_reads = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
        let port_of = |k: u64| (k >> 16) as u32 ^ 0x5a5a;
        let readers: Vec<_> = (0..2)
            .map(|r| {
                let (fdb, stop, whole_reads) = (fdb.clone(), stop.clone(), whole_reads.clone());
                std::thread::spawn(move || {
                    while !stop.load(Relaxed) {
                        match fdb.read(5) {
                            Some((EMPTY, 0)) | None => {}
                            Some((k, p)) => {
                                assert_eq!(p, port_of(k), "torn read");
                                whole_reads[r].fetch_add(1, Relaxed);
                            }
                        }
                    }
                })
            })
            .collect();
        let mut i = 1u32;
        while i < 200_000 || whole_reads.iter().any(|n| n.load(Relaxed) < 1000) {
            let k = key(mac(i), 1);
            w.write(5, k, port_of(k), 0);
            i = i.wrapping_add(1).max(1);
            if i.is_multiple_of(4096) {
                std::thread::yield_now();
            }
        }
        stop.store(true, Relaxed);
        for r in readers {
            r.join().expect("a reader saw a torn entry");
        }
    }
}
