//! OpenFlow meters with one drop band, enforced by the poll threads (`DpAction::Meter`).
//!
//! **Algorithm.** Each meter is a token bucket written as GCRA (virtual scheduling): one
//! 64-bit "theoretical arrival time" (TAT) per meter. A packet costs `T` (its share of the
//! rate, in ticks of 1/16 ns); it conforms when `max(TAT, now) + T <= now + τ`, where `τ`
//! is the bucket depth (the burst) in time, and then `TAT = max(TAT, now) + T`. An idle meter
//! has `TAT <= now`: a full bucket. This is exactly a token bucket of depth `τ` filled at the
//! rate, but its whole state is one word, so poll threads share it with a compare-and-swap
//! loop and no lock.
//!
//! **Why a shared atomic is fine here.** Only packets of metered flows touch a meter; the
//! cache line with the TAT bounces between cores only when two cores meter the same flow at
//! the same time, and a meter that enforces a rate must be shared anyway (per-core buckets
//! would let `n_pmds` times the rate through). Counters stay per core (single writer), summed
//! on read.
//!
//! **Units.** `Kbps` meters count Ethernet frame bits (no FCS) at 1000 bits per kbit; `Pktps`
//! meters count packets. `burst` is in kbits or packets; 0 means "the switch picks": 100 ms at
//! the rate. The depth is never less than one largest frame (so a small burst does not make a
//! meter drop every large packet, whatever the rate).
//!
//! **Publication.** The control thread owns [`MeterTable`]. The set of meters is an immutable
//! map published through an `ArcSwap` (adding or removing a meter swaps it); changing an
//! existing meter's rate rewrites its parameters in place (atomics), keeping its bucket and
//! counters. A poll thread loads the map at most once per batch, and only when a packet of
//! the batch reaches a meter action. A meter id without a configuration passes every packet.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::netdev::{Counter, CHUNK_SIZE, FRAME_HEADROOM};

/// Largest meter id OpenFlow allows (`OFPM_MAX`); the ids above it are virtual meters.
pub const METER_MAX: u32 = 0xffff_0000;
/// Ticks of the meter clock per nanosecond (fixed point: 1/16 ns; u64 ticks last 36 years).
const TICKS_PER_NS: u64 = 16;
/// Fractional bits of the per-byte cost.
const FRAC: u32 = 16;
/// The largest frame a poll thread handles, in bytes: the least bucket depth.
const MAX_FRAME: u64 = (CHUNK_SIZE - FRAME_HEADROOM) as u64;

/// What a meter's rate counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum MeterUnit {
    /// Kilobits per second (`OFPMF_KBPS`); burst in kilobits.
    Kbps,
    /// Packets per second (`OFPMF_PKTPS`); burst in packets.
    Pktps,
}

/// A meter's one drop band: packets beyond `rate` (with a bucket of `burst`) are dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct MeterConfig {
    /// In kbit/s or packets/s (see `unit`); must not be 0.
    pub rate: u32,
    /// Bucket depth in kbits or packets; 0 = 100 ms at the rate.
    pub burst: u32,
    pub unit: MeterUnit,
}

/// A meter's counters since it was added (summed over poll threads).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct MeterStats {
    /// Packets that reached the meter.
    pub packets_in: u64,
    pub bytes_in: u64,
    /// Packets the drop band dropped.
    pub band_drops_packets: u64,
    pub band_drops_bytes: u64,
}

/// Why a meter configuration was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MeterError {
    #[error("meter id {0} is out of range (1..=0xffff0000)")]
    BadId(u32),
    #[error("meter rate must not be 0")]
    ZeroRate,
}

/// The per-packet parameters derived from a [`MeterConfig`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Params {
    /// Ticks every packet costs (Pktps).
    per_packet: u64,
    /// Ticks per byte, with [`FRAC`] fractional bits (Kbps).
    per_byte: u64,
    /// Bucket depth in ticks.
    depth: u64,
}

impl Params {
    fn of(cfg: &MeterConfig) -> Params {
        let rate = u128::from(cfg.rate.max(1));
        let tick_s = 1_000_000_000u128 * u128::from(TICKS_PER_NS);
        let sat = |v: u128| u64::try_from(v).unwrap_or(u64::MAX);
        match cfg.unit {
            MeterUnit::Kbps => {
                // One bit lasts tick_s / (rate * 1000) ticks.
                let per_byte = sat(((8 * tick_s) << FRAC) / (rate * 1000));
                let bits = if cfg.burst == 0 { rate * 100 } else { u128::from(cfg.burst) * 1000 };
                let bits = bits.max(u128::from(MAX_FRAME) * 8);
                Params { per_packet: 0, per_byte, depth: sat(bits * tick_s / (rate * 1000)) }
            }
            MeterUnit::Pktps => {
                let per_packet = sat(tick_s / rate);
                let pkts = if cfg.burst == 0 { (rate / 10).max(1) } else { u128::from(cfg.burst) };
                Params { per_packet, per_byte: 0, depth: sat(pkts * tick_s / rate) }
            }
        }
    }
}

/// Counters of one meter for one poll thread.
#[derive(Default, Debug)]
#[repr(align(64))]
struct CoreSlot {
    packets_in: Counter,
    bytes_in: Counter,
    drop_packets: Counter,
    drop_bytes: Counter,
}

/// One meter: its bucket, parameters and per-core counters. Shared by every poll thread.
#[derive(Debug)]
pub struct Meter {
    /// Theoretical arrival time, in ticks since the datapath started.
    tat: AtomicU64,
    per_packet: AtomicU64,
    per_byte: AtomicU64,
    depth: AtomicU64,
    slots: Box<[CoreSlot]>,
}

impl Meter {
    fn new(cfg: &MeterConfig, n_cores: usize) -> Meter {
        let m = Meter {
            tat: AtomicU64::new(0),
            per_packet: AtomicU64::new(0),
            per_byte: AtomicU64::new(0),
            depth: AtomicU64::new(0),
            slots: (0..n_cores.max(1)).map(|_| CoreSlot::default()).collect(),
        };
        m.set_params(Params::of(cfg));
        m
    }

    fn set_params(&self, p: Params) {
        self.per_packet.store(p.per_packet, Relaxed);
        self.per_byte.store(p.per_byte, Relaxed);
        self.depth.store(p.depth, Relaxed);
    }

    /// Runs one packet of `bytes` through the meter at `now_ns` (the datapath clock), on behalf
    /// of poll thread `core` (its counters; only that thread may pass this `core`). Returns
    /// `true` when the packet conforms, `false` when the drop band drops it.
    #[inline]
    pub fn admit(&self, core: usize, now_ns: u64, bytes: usize) -> bool {
        let slot = &self.slots[core.min(self.slots.len() - 1)];
        slot.packets_in.add(1);
        slot.bytes_in.add(bytes as u64);
        let now = now_ns.saturating_mul(TICKS_PER_NS);
        let cost = self
            .per_packet
            .load(Relaxed)
            .saturating_add((bytes as u64).saturating_mul(self.per_byte.load(Relaxed)) >> FRAC);
        let limit = now.saturating_add(self.depth.load(Relaxed));
        let mut tat = self.tat.load(Relaxed);
        loop {
            let next = tat.max(now).saturating_add(cost);
            if next > limit {
                slot.drop_packets.add(1);
                slot.drop_bytes.add(bytes as u64);
                return false;
            }
            // Relaxed is enough: the TAT orders nothing but itself.
            match self.tat.compare_exchange_weak(tat, next, Relaxed, Relaxed) {
                Ok(_) => return true,
                Err(seen) => tat = seen,
            }
        }
    }

    /// Counters summed over poll threads.
    pub fn stats(&self) -> MeterStats {
        let mut s = MeterStats::default();
        for c in self.slots.iter() {
            s.packets_in += c.packets_in.get();
            s.bytes_in += c.bytes_in.get();
            s.band_drops_packets += c.drop_packets.get();
            s.band_drops_bytes += c.drop_bytes.get();
        }
        s
    }
}

/// The meters as the poll threads see them: id → meter, immutable once published.
pub type MeterMap = hashbrown::HashMap<u32, Arc<Meter>>;

/// What a poll thread holds: the published map.
pub type MeterReader = Arc<ArcSwap<MeterMap>>;

/// The meters, owned by the control thread.
pub struct MeterTable {
    published: MeterReader,
    configs: hashbrown::HashMap<u32, (MeterConfig, Arc<Meter>)>,
    n_cores: usize,
}

impl MeterTable {
    /// An empty table for `n_cores` poll threads.
    pub fn new(n_cores: usize) -> MeterTable {
        MeterTable {
            published: Arc::new(ArcSwap::from_pointee(MeterMap::new())),
            configs: hashbrown::HashMap::new(),
            n_cores,
        }
    }

    /// The handle poll threads read through.
    pub fn reader(&self) -> MeterReader {
        self.published.clone()
    }

    /// Adds meter `id`, or changes its band (keeping its bucket and counters).
    pub fn set(&mut self, id: u32, cfg: MeterConfig) -> Result<(), MeterError> {
        if id == 0 || id > METER_MAX {
            return Err(MeterError::BadId(id));
        }
        if cfg.rate == 0 {
            return Err(MeterError::ZeroRate);
        }
        if let Some((old, meter)) = self.configs.get_mut(&id) {
            meter.set_params(Params::of(&cfg));
            *old = cfg;
            return Ok(());
        }
        self.configs.insert(id, (cfg, Arc::new(Meter::new(&cfg, self.n_cores))));
        self.publish();
        Ok(())
    }

    /// Removes meter `id`; `false` if there was none. Packets metered by it pass from then on.
    pub fn remove(&mut self, id: u32) -> bool {
        let had = self.configs.remove(&id).is_some();
        if had {
            self.publish();
        }
        had
    }

    /// The configuration of meter `id`.
    pub fn config(&self, id: u32) -> Option<MeterConfig> {
        self.configs.get(&id).map(|(c, _)| *c)
    }

    /// The counters of meter `id`.
    pub fn stats(&self, id: u32) -> Option<MeterStats> {
        self.configs.get(&id).map(|(_, m)| m.stats())
    }

    /// Every meter id, ascending.
    pub fn ids(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.configs.keys().copied().collect();
        v.sort_unstable();
        v
    }

    fn publish(&self) {
        let map: MeterMap = self.configs.iter().map(|(id, (_, m))| (*id, m.clone())).collect();
        self.published.store(Arc::new(map));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    const S: u64 = 1_000_000_000;

    fn meter(rate: u32, burst: u32, unit: MeterUnit) -> Meter {
        Meter::new(&MeterConfig { rate, burst, unit }, 2)
    }

    /// Offers `n` packets of `bytes` evenly over `[start, start + dur)`; returns how many pass.
    fn offer(m: &Meter, start: u64, dur: u64, n: u64, bytes: usize) -> u64 {
        (0..n).filter(|i| m.admit((*i % 2) as usize, start + dur * i / n, bytes)).count() as u64
    }

    #[test]
    fn pktps_burst_then_rate() {
        let m = meter(1000, 10, MeterUnit::Pktps);
        // A full bucket lets exactly `burst` packets through at one instant.
        assert_eq!(offer(&m, 0, 0, 50, 64), 10);
        // Then the rate: 2 s of 5000 pkt/s offered -> 2000 pass, within a packet or two.
        let passed = offer(&m, 0, 2 * S, 10_000, 64);
        assert!((1999..=2001).contains(&passed), "{passed}");
        let st = m.stats();
        assert_eq!(st.packets_in, 10_050);
        assert_eq!(st.band_drops_packets, 10_050 - 10 - passed);
        assert_eq!(st.bytes_in, 10_050 * 64);
        assert_eq!(st.band_drops_bytes, st.band_drops_packets * 64);
    }

    #[test]
    fn under_rate_passes_everything() {
        let m = meter(1000, 1, MeterUnit::Pktps);
        // 999 pkt/s, evenly spaced: each packet finds a token.
        assert_eq!(offer(&m, 0, S, 999, 1500), 999);
        assert_eq!(m.stats().band_drops_packets, 0);
    }

    #[test]
    fn kbps_counts_bits() {
        // 8 Mbit/s = 1 MB/s; 1000-byte packets => 1000 pkt/s; burst 80 kbit = 10 packets.
        let m = meter(8000, 80, MeterUnit::Kbps);
        assert_eq!(offer(&m, 0, 0, 100, 1000), 10);
        let passed = offer(&m, 10 * MS, S, 5000, 1000);
        // 10 ms of refill (10 packets) + 1 s at the rate (1000), within rounding.
        assert!((1008..=1012).contains(&passed), "{passed}");
        // Twice the bytes per packet: half the packets.
        let m = meter(8000, 80, MeterUnit::Kbps);
        let passed = offer(&m, 0, S, 5000, 2000);
        assert!((504..=506).contains(&passed), "{passed}");
    }

    #[test]
    fn default_and_minimum_depth() {
        // burst 0: 100 ms at the rate => 100 packets at 1000 pkt/s.
        let m = meter(1000, 0, MeterUnit::Pktps);
        assert_eq!(offer(&m, 0, 0, 1000, 64), 100);
        // A burst smaller than one frame still lets a full-size frame through an idle meter.
        let m = meter(1000, 1, MeterUnit::Kbps);
        assert!(m.admit(0, 0, 1500));
        assert!(!m.admit(0, 0, 1500));
        assert!(m.admit(0, 20 * S, 1500));
    }

    #[test]
    fn idle_meter_refills_but_not_beyond_burst() {
        let m = meter(100, 5, MeterUnit::Pktps);
        assert_eq!(offer(&m, 0, 0, 20, 64), 5);
        // After an hour idle the bucket holds `burst`, not an hour of tokens.
        assert_eq!(offer(&m, 3600 * S, 0, 20, 64), 5);
    }

    #[test]
    fn threads_share_one_bucket() {
        let m = Arc::new(meter(1000, 100, MeterUnit::Pktps));
        let passed: u64 = std::thread::scope(|s| {
            let hs: Vec<_> = (0..2)
                .map(|core| {
                    let m = m.clone();
                    s.spawn(move || (0..10_000).filter(|_| m.admit(core, 0, 64)).count() as u64)
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum()
        });
        // Same instant on both threads: exactly the bucket, however the CAS races go.
        assert_eq!(passed, 100);
        assert_eq!(m.stats().packets_in, 20_000);
    }

    #[test]
    fn table_add_modify_remove() {
        let mut t = MeterTable::new(1);
        let r = t.reader();
        let cfg = MeterConfig { rate: 10, burst: 1, unit: MeterUnit::Pktps };
        assert_eq!(t.set(0, cfg), Err(MeterError::BadId(0)));
        assert_eq!(t.set(METER_MAX + 1, cfg), Err(MeterError::BadId(METER_MAX + 1)));
        assert_eq!(t.set(1, MeterConfig { rate: 0, ..cfg }), Err(MeterError::ZeroRate));
        t.set(7, cfg).unwrap();
        let m = r.load().get(&7).cloned().expect("published");
        assert!(m.admit(0, 0, 64));
        assert!(!m.admit(0, 0, 64));
        // Modify in place: same meter object, new rate, counters kept.
        t.set(7, MeterConfig { rate: 1000, burst: 50, ..cfg }).unwrap();
        assert!(Arc::ptr_eq(&m, r.load().get(&7).unwrap()));
        assert_eq!(t.config(7).unwrap().rate, 1000);
        assert_eq!(offer(&m, S, 0, 100, 64), 50);
        assert_eq!(t.stats(7).unwrap().packets_in, 102);
        assert_eq!(t.ids(), vec![7]);
        assert!(t.remove(7));
        assert!(!t.remove(7));
        assert!(r.load().get(&7).is_none());
        assert_eq!(t.stats(7), None);
    }
}
