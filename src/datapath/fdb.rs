//! The forwarding database of `NORMAL`: (MAC, VLAN) → port, read by every poll thread on
//! every NORMAL packet, written only by the control thread.
//!
//! OVS runs NORMAL in translation: a megaflow per (source, destination) MAC pair and a
//! revalidation of the whole datapath on every MAC move. Here the lookup happens in the fast
//! path, so one megaflow serves every MAC pair, and a MAC move is one store.
//!
//! Layout: an open-addressing table of fixed capacity (linear probing, bounded probe length),
//! each slot a small seqlock: the writer makes the sequence odd, writes key and port, makes it
//! even again; a reader that sees an odd or changed sequence treats the entry as unknown, which
//! only means one packet is flooded. Readers never wait and never write, except the coarse
//! `seen` time, refreshed at most once a second per entry, which drives aging. Learning is an
//! event queued to the control thread (see [`Fdb::needs_learning`]).
//!
//! Written by hand because no crate offers a fixed-size, allocation-free, single-writer map
//! with wait-free readers of 128-bit entries on stable Rust.

use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering::*};
use std::sync::Arc;

use arc_swap::ArcSwap;
use crossbeam_channel::{Receiver, Sender};
use smallvec::SmallVec;

use crate::netdev::DpPortNo;
use crate::packet::be16;
use crate::packet::ethernet::is_vlan_tpid;

/// Slots probed from a key's home slot before giving up.
const MAX_PROBE: usize = 16;
/// Key word of an empty slot / a deleted one.
const EMPTY: u64 = 0;
const TOMBSTONE: u64 = 2;

/// One learned address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdbEntry {
    pub mac: [u8; 6],
    /// The VLAN (0 for untagged traffic on a port without a tag).
    pub vlan: u16,
    pub port: DpPortNo,
    /// When a poll thread last saw the address as a source (the datapath's clock, seconds).
    pub seen_s: u32,
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
    // Fibonacci hashing of the key word: cheap, spreads sequential MACs.
    (k.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize & mask
}

impl Fdb {
    /// A table of `capacity` slots (rounded up to a power of two, at least 64) and its writer.
    pub fn new(capacity: usize) -> (Arc<Fdb>, FdbWriter) {
        let n = capacity.max(64).next_power_of_two();
        let fdb = Arc::new(Fdb { slots: (0..n).map(|_| Slot::default()).collect(), mask: n - 1 });
        (fdb.clone(), FdbWriter { fdb, len: 0 })
    }

    /// Slots in the table.
    pub fn capacity(&self) -> usize {
        self.slots.len()
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

    /// Index of the slot holding `k`, if any.
    #[inline]
    fn find(&self, k: u64) -> Option<(usize, u32)> {
        let mut i = home(k, self.mask);
        for _ in 0..MAX_PROBE {
            match self.read(i) {
                Some((kk, p)) if kk == k => return Some((i, p)),
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
        self.find(key(mac, vlan)).map(|(_, p)| DpPortNo(p))
    }

    /// Called by a poll thread for each source address it forwards with NORMAL: refreshes the
    /// entry's age (at most one store a second) and says whether the control thread must
    /// learn it (unknown, or known on another port: a move).
    #[inline]
    pub fn needs_learning(&self, mac: [u8; 6], vlan: u16, in_port: DpPortNo, now_s: u32) -> bool {
        match self.find(key(mac, vlan)) {
            Some((i, p)) if p == in_port.0 => {
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

/// The one writer of an [`Fdb`] (the control thread). Not `Clone`.
pub struct FdbWriter {
    fdb: Arc<Fdb>,
    len: usize,
}

/// The table has no free slot within the probe distance of the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("MAC table full")]
pub struct FdbFull;

impl FdbWriter {
    /// The shared table.
    pub fn fdb(&self) -> &Arc<Fdb> {
        &self.fdb
    }

    /// Entries in the table.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn write(&self, i: usize, k: u64, port: u32, seen: u32) {
        let s = &self.fdb.slots[i];
        let seq = s.seq.load(Relaxed);
        s.seq.store(seq.wrapping_add(1), Relaxed);
        fence(Release);
        s.key.store(k, Relaxed);
        s.port.store(port, Relaxed);
        s.seen.store(seen, Relaxed);
        s.seq.store(seq.wrapping_add(2), Release);
    }

    /// Learns (or moves) `mac` on `vlan` to `port`. Returns the port it was on before, if any.
    pub fn learn(
        &mut self,
        mac: [u8; 6],
        vlan: u16,
        port: DpPortNo,
        now_s: u32,
    ) -> Result<Option<DpPortNo>, FdbFull> {
        let k = key(mac, vlan);
        let mask = self.fdb.mask;
        let mut i = home(k, mask);
        let mut free = None;
        for _ in 0..MAX_PROBE {
            // The writer's own reads are never torn.
            let s = &self.fdb.slots[i];
            let kk = s.key.load(Relaxed);
            if kk == k {
                let old = s.port.load(Relaxed);
                self.write(i, k, port.0, now_s);
                return Ok((old != port.0).then_some(DpPortNo(old)));
            }
            if (kk == EMPTY || kk == TOMBSTONE) && free.is_none() {
                free = Some(i);
            }
            if kk == EMPTY {
                break;
            }
            i = (i + 1) & mask;
        }
        let i = free.ok_or(FdbFull)?;
        self.write(i, k, port.0, now_s);
        self.len += 1;
        Ok(None)
    }

    fn remove_at(&mut self, i: usize) {
        self.write(i, TOMBSTONE, 0, 0);
        self.len -= 1;
    }

    /// Forgets one address.
    pub fn forget(&mut self, mac: [u8; 6], vlan: u16) -> bool {
        match self.fdb.find(key(mac, vlan)) {
            Some((i, _)) => {
                self.remove_at(i);
                true
            }
            None => false,
        }
    }

    /// Removes entries not seen for more than `max_age_s` seconds; returns how many.
    pub fn age(&mut self, now_s: u32, max_age_s: u32) -> usize {
        self.retain(|e| now_s.saturating_sub(e.seen_s) <= max_age_s)
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
        n
    }

    fn entry(&self, i: usize) -> Option<FdbEntry> {
        let s = &self.fdb.slots[i];
        let k = s.key.load(Relaxed);
        if k == EMPTY || k == TOMBSTONE {
            return None;
        }
        let (mac, vlan) = unkey(k);
        Some(FdbEntry { mac, vlan, port: DpPortNo(s.port.load(Relaxed)), seen_s: s.seen.load(Relaxed) })
    }

    /// Every entry, in table order.
    pub fn entries(&self) -> Vec<FdbEntry> {
        (0..self.fdb.slots.len()).filter_map(|i| self.entry(i)).collect()
    }
}

/// A source address a poll thread saw that the table does not have on that port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Learn {
    pub mac: [u8; 6],
    pub vlan: u16,
    pub port: DpPortNo,
}

/// Output ports NORMAL chose for one packet (no allocation up to 8).
pub type NormalPorts = SmallVec<[DpPortNo; 8]>;

/// Everything `DpAction::Normal` needs in the fast path, shared by the poll threads: the
/// table, the ports to flood to (published by the control thread), and the learning queue.
pub struct Normal {
    pub fdb: Arc<Fdb>,
    flood: ArcSwap<Vec<DpPortNo>>,
    learn_tx: Sender<Learn>,
    /// Learning events dropped because the queue was full (rare: counted here, not per thread).
    learn_dropped: AtomicU64,
}

impl Normal {
    /// The shared state over `fdb`, learning events queued (up to `queue`) to the receiver.
    pub fn new(fdb: Arc<Fdb>, queue: usize) -> (Arc<Normal>, Receiver<Learn>) {
        let (learn_tx, rx) = crossbeam_channel::bounded(queue.max(1));
        let n = Normal {
            fdb,
            flood: ArcSwap::from_pointee(Vec::new()),
            learn_tx,
            learn_dropped: AtomicU64::new(0),
        };
        (Arc::new(n), rx)
    }

    /// Sets the ports NORMAL floods to (the control thread leaves out ports with `NO_FLOOD`).
    pub fn set_flood_ports(&self, ports: Vec<DpPortNo>) {
        self.flood.store(Arc::new(ports));
    }

    /// Learning events dropped for a full queue.
    pub fn learn_dropped(&self) -> u64 {
        self.learn_dropped.load(Relaxed)
    }

    /// The L2 switch for one packet: queues the source address for learning if the table
    /// does not have it on `in_port`, then sends to the port the destination was learned on,
    /// or floods (every flood port but the ingress one) for multicast and unknown addresses.
    /// A destination learned on the ingress port goes nowhere. A packet from the controller
    /// (`in_port` `None`) is not learned from.
    #[inline]
    pub fn decide(&self, packet: &[u8], in_port: Option<DpPortNo>, now_s: u32, out: &mut NormalPorts) {
        if packet.len() < 14 {
            return;
        }
        let dst: [u8; 6] = [packet[0], packet[1], packet[2], packet[3], packet[4], packet[5]];
        let src: [u8; 6] = [packet[6], packet[7], packet[8], packet[9], packet[10], packet[11]];
        let vlan =
            if is_vlan_tpid(be16(packet, 12)) && packet.len() >= 18 { be16(packet, 14) & 0xfff } else { 0 };
        if let Some(inp) = in_port {
            if src[0] & 1 == 0 && self.fdb.needs_learning(src, vlan, inp, now_s) {
                let ev = Learn { mac: src, vlan, port: inp };
                if self.learn_tx.try_send(ev).is_err() {
                    self.learn_dropped.fetch_add(1, Relaxed);
                }
            }
        }
        if dst[0] & 1 == 0 {
            if let Some(p) = self.fdb.lookup(dst, vlan) {
                if Some(p) != in_port {
                    out.push(p);
                }
                return;
            }
        }
        for &p in self.flood.load().iter() {
            if Some(p) != in_port {
                out.push(p);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(n: u32) -> [u8; 6] {
        let b = n.to_be_bytes();
        [0x02, 0, b[0], b[1], b[2], b[3]]
    }

    #[test]
    fn learn_lookup_move_forget() {
        let (fdb, mut w) = Fdb::new(64);
        assert_eq!(fdb.lookup(mac(1), 0), None);
        assert!(fdb.needs_learning(mac(1), 0, DpPortNo(1), 5));
        assert_eq!(w.learn(mac(1), 0, DpPortNo(1), 5), Ok(None));
        assert_eq!(fdb.lookup(mac(1), 0), Some(DpPortNo(1)));
        assert_eq!(fdb.lookup(mac(1), 10), None, "VLANs are separate");
        assert!(!fdb.needs_learning(mac(1), 0, DpPortNo(1), 6));
        assert!(fdb.needs_learning(mac(1), 0, DpPortNo(2), 6), "a move");
        assert_eq!(w.learn(mac(1), 0, DpPortNo(2), 6), Ok(Some(DpPortNo(1))));
        assert_eq!(fdb.lookup(mac(1), 0), Some(DpPortNo(2)));
        assert_eq!(w.len(), 1);
        assert!(w.forget(mac(1), 0));
        assert_eq!(fdb.lookup(mac(1), 0), None);
        assert!(w.is_empty());
    }

    #[test]
    fn fills_up_reuses_tombstones_and_ages() {
        let (fdb, mut w) = Fdb::new(64);
        let mut learned = 0;
        for n in 0..200 {
            if w.learn(mac(n), 1, DpPortNo(n % 7 + 1), n).is_ok() {
                learned += 1;
            }
        }
        assert!((48..=64).contains(&learned), "{learned}");
        assert_eq!(w.len(), learned);
        for e in w.entries() {
            assert_eq!(fdb.lookup(e.mac, 1), Some(e.port));
        }
        // Entries seen at t < 100 are older than 50 s at t = 150.
        let old = w.entries().iter().filter(|e| e.seen_s < 100).count();
        assert_eq!(w.age(150, 50), old);
        assert_eq!(w.len(), learned - old);
        // Freed slots take new entries; the survivors are still found through tombstones.
        for n in 1000..1000 + old as u32 {
            let _ = w.learn(mac(n), 1, DpPortNo(1), 150);
        }
        for e in w.entries() {
            assert_eq!(fdb.lookup(e.mac, e.vlan), Some(e.port));
        }
        let n = w.entries().len();
        assert_eq!(w.retain(|_| false), n);
        assert!(w.is_empty());
    }

    #[test]
    fn normal_learns_forwards_and_floods() {
        let (fdb, mut w) = Fdb::new(64);
        let (n, learned) = Normal::new(fdb, 16);
        n.set_flood_ports(vec![DpPortNo(1), DpPortNo(2), DpPortNo(3)]);
        let frame = |dst: [u8; 6], src: [u8; 6]| {
            let mut f = vec![0u8; 60];
            f[..6].copy_from_slice(&dst);
            f[6..12].copy_from_slice(&src);
            f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
            f
        };
        let mut out = NormalPorts::new();
        // Unknown destination: flood, and the source is queued for learning.
        n.decide(&frame(mac(2), mac(1)), Some(DpPortNo(1)), 0, &mut out);
        assert_eq!(out.as_slice(), &[DpPortNo(2), DpPortNo(3)]);
        let ev = learned.try_recv().unwrap();
        assert_eq!(ev, Learn { mac: mac(1), vlan: 0, port: DpPortNo(1) });
        w.learn(ev.mac, ev.vlan, ev.port, 0).unwrap();
        // The reply goes straight to port 1; its source is learned too.
        out.clear();
        n.decide(&frame(mac(1), mac(2)), Some(DpPortNo(2)), 0, &mut out);
        assert_eq!(out.as_slice(), &[DpPortNo(1)]);
        assert!(learned.try_recv().is_ok());
        // Broadcast floods; a known source on its own port queues nothing.
        out.clear();
        n.decide(&frame([0xff; 6], mac(1)), Some(DpPortNo(1)), 0, &mut out);
        assert_eq!(out.as_slice(), &[DpPortNo(2), DpPortNo(3)]);
        assert!(learned.try_recv().is_err());
        // A destination learned on the ingress port goes nowhere.
        out.clear();
        n.decide(&frame(mac(1), mac(9)), Some(DpPortNo(1)), 0, &mut out);
        assert!(out.is_empty());
        // A tagged frame is looked up in its VLAN.
        let mut t = frame(mac(1), mac(2));
        t.splice(12..12, [0x81, 0x00, 0x00, 0x0a]);
        out.clear();
        n.decide(&t, Some(DpPortNo(2)), 0, &mut out);
        assert_eq!(out.as_slice(), &[DpPortNo(1), DpPortNo(3)], "mac 1 is unknown in VLAN 10: flood");
        // A full queue drops learning events and counts them; forwarding goes on.
        for i in 100..200 {
            out.clear();
            n.decide(&frame(mac(1), mac(i)), Some(DpPortNo(3)), 0, &mut out);
            assert_eq!(out.as_slice(), &[DpPortNo(1)]);
        }
        assert!(n.learn_dropped() > 0);
    }

    #[test]
    fn readers_never_see_a_torn_entry() {
        // The writer rewrites one slot with (key, port) pairs where the port is a function of
        // the key; a reader must get a matching pair or "being written", never a mix.
        let (fdb, w) = Fdb::new(64);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let port_of = |k: u64| (k >> 16) as u32 ^ 0x5a5a;
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (fdb, stop) = (fdb.clone(), stop.clone());
                std::thread::spawn(move || {
                    let (mut whole, mut busy) = (0u64, 0u64);
                    while !stop.load(Relaxed) {
                        match fdb.read(5) {
                            Some((EMPTY, 0)) => {}
                            Some((k, p)) => {
                                assert_eq!(p, port_of(k), "torn read");
                                whole += 1;
                            }
                            None => busy += 1,
                        }
                    }
                    (whole, busy)
                })
            })
            .collect();
        for i in 1..200_000u32 {
            let k = key(mac(i), 1);
            w.write(5, k, port_of(k), 0);
        }
        stop.store(true, Relaxed);
        for r in readers {
            let (whole, _) = r.join().unwrap();
            assert!(whole > 0);
        }
    }
}
