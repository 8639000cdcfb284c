//! Single-producer/single-consumer rings shared with the kernel (one side is us, the other
//! the kernel), as mapped from an AF_XDP socket.
//!
//! A ring is a power-of-two array of entries plus two free-running `u32` indices (producer,
//! consumer) and a flags word. The producer writes entries `[prod, cons + size)` and then
//! publishes them with a `Release` store of `prod`; the consumer reads `[cons, prod)` after an
//! `Acquire` load of `prod` and gives the slots back with a `Release` store of `cons`
//! (`xsk.h`: `xsk_ring_prod__reserve/submit`, `xsk_ring_cons__peek/release`). Each side caches
//! the other's index and reloads it only when the cache cannot answer.
//!
//! The role is part of the type: [`FillRing`] and [`TxRing`] are [`Producer`]s,
//! [`CompletionRing`] and [`RxRing`] are [`Consumer`]s. Slots are read and written through raw
//! pointers only (never references), and only slots the protocol gives to our side.

use std::marker::PhantomData;
use std::num::Wrapping;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use bytemuck::Pod;

use super::sys::{Mmap, XdpDesc, XdpRingOffset, XDP_RING_NEED_WAKEUP};

/// We give the kernel chunk addresses to receive into.
pub type FillRing = Producer<u64>;
/// The kernel gives back addresses of chunks it finished transmitting.
pub type CompletionRing = Consumer<u64>;
/// The kernel gives us received frames.
pub type RxRing = Consumer<XdpDesc>;
/// We give the kernel frames to transmit.
pub type TxRing = Producer<XdpDesc>;

/// The shared part of a ring: pointers into a mapping that this value keeps alive.
struct Ring<T> {
    producer: NonNull<AtomicU32>,
    consumer: NonNull<AtomicU32>,
    flags: NonNull<AtomicU32>,
    descs: NonNull<T>,
    size: u32,
    mask: u32,
    _area: Arc<Mmap>,
    _t: PhantomData<T>,
}

// SAFETY: a ring side is owned by one thread at a time; the pointers target a mapping kept
// alive by `_area`, and the only state shared with the other side is accessed atomically
// (indices) or handed over by the acquire/release protocol (entries).
unsafe impl<T: Send> Send for Ring<T> {}

impl<T: Pod> Ring<T> {
    /// Builds a ring over `area` at the offsets the kernel reported, checking that every
    /// pointer is in bounds and aligned.
    fn new(area: Arc<Mmap>, off: &XdpRingOffset, size: u32) -> std::io::Result<Ring<T>> {
        let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("ring {what}"));
        if !size.is_power_of_two() {
            return Err(bad("size not a power of two"));
        }
        let len = area.len() as u64;
        for o in [off.producer, off.consumer, off.flags] {
            if !o.is_multiple_of(4) || o + 4 > len {
                return Err(bad("index offset out of bounds"));
            }
        }
        let desc_end = off.desc + size as u64 * std::mem::size_of::<T>() as u64;
        if !off.desc.is_multiple_of(std::mem::align_of::<T>() as u64) || desc_end > len {
            return Err(bad("descriptors out of bounds"));
        }
        let base = area.ptr();
        // SAFETY: every offset was checked above to lie inside the mapping (and be aligned), so
        // the derived pointers are in bounds of one allocation and non-null.
        let at = |o: u64| unsafe { base.add(o as usize) };
        Ok(Ring {
            producer: at(off.producer).cast(),
            consumer: at(off.consumer).cast(),
            flags: at(off.flags).cast(),
            descs: at(off.desc).cast(),
            size,
            mask: size - 1,
            _area: area,
            _t: PhantomData,
        })
    }

    fn producer(&self) -> &AtomicU32 {
        // SAFETY: in bounds and aligned (checked in `new`), alive as long as `_area`; the
        // word is only ever accessed atomically, by us and by the kernel.
        unsafe { self.producer.as_ref() }
    }
    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as for `producer`.
        unsafe { self.consumer.as_ref() }
    }
    fn flags(&self) -> &AtomicU32 {
        // SAFETY: as for `producer`.
        unsafe { self.flags.as_ref() }
    }
    fn slot(&self, idx: Wrapping<u32>) -> *mut T {
        // SAFETY: `idx & mask < size`, and `size` entries fit in the mapping (checked in `new`).
        unsafe { self.descs.as_ptr().add((idx.0 & self.mask) as usize) }
    }
}

/// Our producing side of a ring ([`FillRing`], [`TxRing`]).
pub struct Producer<T> {
    ring: Ring<T>,
    /// Our producer index (next slot to write).
    prod: Wrapping<u32>,
    /// The consumer index last seen, plus `size`: the end of the writable window.
    cons_end: Wrapping<u32>,
    /// Slots handed out by `reserve` and not yet submitted.
    reserved: u32,
}

impl<T: Pod> Producer<T> {
    pub(super) fn new(area: Arc<Mmap>, off: &XdpRingOffset, size: u32) -> std::io::Result<Self> {
        let ring = Ring::new(area, off, size)?;
        let prod = Wrapping(ring.producer().load(Ordering::Relaxed));
        let cons_end = Wrapping(ring.consumer().load(Ordering::Acquire)) + Wrapping(size);
        Ok(Producer { ring, prod, cons_end, reserved: 0 })
    }

    /// Ring size in entries.
    pub fn size(&self) -> u32 {
        self.ring.size
    }

    /// Free slots, reloading the consumer index only if the cache shows fewer than `want`.
    #[inline]
    pub fn free(&mut self, want: u32) -> u32 {
        let free = (self.cons_end - self.prod).0;
        if free >= want {
            return free;
        }
        self.cons_end = Wrapping(self.ring.consumer().load(Ordering::Acquire)) + Wrapping(self.ring.size);
        (self.cons_end - self.prod).0
    }

    /// Entries published but not yet taken by the consumer (reloads the consumer index).
    pub fn pending(&mut self) -> u32 {
        self.ring.size - self.free(self.ring.size)
    }

    /// Reserves up to `n` slots; returns how many. Write them with [`Producer::write`] and
    /// publish them with [`Producer::submit`]. A new reservation replaces an unsubmitted one.
    #[inline]
    pub fn reserve(&mut self, n: u32) -> u32 {
        let got = self.free(n).min(n);
        self.reserved = got;
        got
    }

    /// Writes reserved slot `i` (`0 <= i < reserved`).
    #[inline]
    pub fn write(&mut self, i: u32, value: T) {
        assert!(i < self.reserved, "write outside the reservation");
        // SAFETY: slot `prod + i` lies in `[prod, cons_end)`, which the consumer has released
        // and will not read until we publish it, so nobody else accesses it now.
        unsafe { self.ring.slot(self.prod + Wrapping(i)).write(value) }
    }

    /// Publishes the first `n` reserved slots to the consumer.
    #[inline]
    pub fn submit(&mut self, n: u32) {
        debug_assert!(n <= self.reserved, "submit more than reserved");
        let n = n.min(self.reserved);
        self.prod += Wrapping(n);
        self.reserved = 0;
        self.ring.producer().store(self.prod.0, Ordering::Release);
    }

    /// Whether the kernel asked for a syscall to make progress (`XDP_RING_NEED_WAKEUP`).
    #[inline]
    pub fn needs_wakeup(&self) -> bool {
        self.ring.flags().load(Ordering::Relaxed) & XDP_RING_NEED_WAKEUP != 0
    }
}

/// Our consuming side of a ring ([`RxRing`], [`CompletionRing`]).
pub struct Consumer<T> {
    ring: Ring<T>,
    /// Our consumer index (next slot to read).
    cons: Wrapping<u32>,
    /// The producer index last seen: the end of the readable window.
    prod: Wrapping<u32>,
    /// Slots made visible by `peek` and not yet released.
    peeked: u32,
}

impl<T: Pod> Consumer<T> {
    pub(super) fn new(area: Arc<Mmap>, off: &XdpRingOffset, size: u32) -> std::io::Result<Self> {
        let ring = Ring::new(area, off, size)?;
        let cons = Wrapping(ring.consumer().load(Ordering::Relaxed));
        let prod = Wrapping(ring.producer().load(Ordering::Acquire));
        Ok(Consumer { ring, cons, prod, peeked: 0 })
    }

    /// Ring size in entries.
    pub fn size(&self) -> u32 {
        self.ring.size
    }

    /// Entries ready to read, reloading the producer index only if the cache shows fewer than
    /// `want`.
    #[inline]
    pub fn available(&mut self, want: u32) -> u32 {
        let avail = (self.prod - self.cons).0;
        if avail >= want {
            return avail;
        }
        self.prod = Wrapping(self.ring.producer().load(Ordering::Acquire));
        (self.prod - self.cons).0
    }

    /// Makes up to `n` entries readable; returns how many. Read them with
    /// [`Consumer::read`], give the slots back with [`Consumer::release`].
    #[inline]
    pub fn peek(&mut self, n: u32) -> u32 {
        let got = self.available(n).min(n);
        self.peeked = got;
        got
    }

    /// Reads peeked entry `i` (`0 <= i < peeked`).
    #[inline]
    pub fn read(&self, i: u32) -> T {
        assert!(i < self.peeked, "read outside the peeked window");
        // SAFETY: slot `cons + i` lies in `[cons, prod)`: the producer published it (Acquire
        // load of `prod`) and will not touch it again until we release it.
        unsafe { self.ring.slot(self.cons + Wrapping(i)).read() }
    }

    /// Gives the first `n` peeked slots back to the producer.
    #[inline]
    pub fn release(&mut self, n: u32) {
        debug_assert!(n <= self.peeked, "release more than peeked");
        let n = n.min(self.peeked);
        self.cons += Wrapping(n);
        self.peeked = 0;
        self.ring.consumer().store(self.cons.0, Ordering::Release);
    }

    /// Whether the kernel asked for a syscall to make progress (`XDP_RING_NEED_WAKEUP`).
    #[inline]
    pub fn needs_wakeup(&self) -> bool {
        self.ring.flags().load(Ordering::Relaxed) & XDP_RING_NEED_WAKEUP != 0
    }
}

/// Rings over anonymous memory with made-up offsets: test both sides with no kernel.
pub mod testing {
    use super::*;

    /// A producer and a consumer of the same ring of `size` entries.
    pub fn pair<T: Pod>(size: u32) -> (Producer<T>, Consumer<T>) {
        let off = XdpRingOffset { producer: 0, consumer: 64, flags: 128, desc: 192 };
        let len = 192 + size as usize * std::mem::size_of::<T>();
        let area = Arc::new(Mmap::anonymous(len).expect("anonymous mmap"));
        let p = Producer::new(area.clone(), &off, size).expect("producer");
        let c = Consumer::new(area, &off, size).expect("consumer");
        (p, c)
    }

    /// A TX/RX-like descriptor ring pair.
    pub fn desc_pair(size: u32) -> (TxRing, RxRing) {
        pair(size)
    }

    /// A fill/completion-like address ring pair.
    pub fn addr_pair(size: u32) -> (FillRing, CompletionRing) {
        pair(size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use std::collections::VecDeque;

    #[test]
    fn fifo_against_oracle_random() {
        for seed in 0..50u64 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let size = 1u32 << rng.gen_range(0..7);
            let (mut p, mut c) = testing::desc_pair(size);
            let mut oracle: VecDeque<XdpDesc> = VecDeque::new();
            let mut next = 0u64;
            for _ in 0..2000 {
                if rng.gen_bool(0.5) {
                    let want = rng.gen_range(0..=size + 2);
                    let got = p.reserve(want);
                    assert_eq!(got, want.min(size - oracle.len() as u32));
                    let n = rng.gen_range(0..=got);
                    for i in 0..n {
                        let d = XdpDesc { addr: next, len: next as u32, options: 0 };
                        next += 1;
                        p.write(i, d);
                        oracle.push_back(d);
                    }
                    p.submit(n);
                } else {
                    let want = rng.gen_range(0..=size + 2);
                    let got = c.peek(want);
                    assert_eq!(got, want.min(oracle.len() as u32));
                    let n = rng.gen_range(0..=got);
                    for i in 0..n {
                        assert_eq!(c.read(i), oracle[i as usize]);
                    }
                    c.release(n);
                    oracle.drain(..n as usize);
                }
                assert_eq!(p.pending(), oracle.len() as u32);
            }
        }
    }

    #[test]
    fn wraps_u32_indices() {
        let (mut p, mut c) = testing::addr_pair(4);
        for round in 0..10_000u64 {
            let n = p.reserve(3);
            assert_eq!(n, 3);
            for i in 0..n {
                p.write(i, round * 3 + i as u64);
            }
            p.submit(n);
            assert_eq!(c.peek(8), 3);
            for i in 0..3 {
                assert_eq!(c.read(i), round * 3 + i as u64);
            }
            c.release(3);
        }
        assert!(!p.needs_wakeup() && !c.needs_wakeup());
    }

    #[test]
    fn concurrent_producer_consumer_keep_order() {
        const N: u64 = 200_000;
        let (mut p, mut c) = testing::addr_pair(64);
        let producer = std::thread::spawn(move || {
            let mut next = 0u64;
            while next < N {
                let n = p.reserve(((N - next).min(17)) as u32);
                for i in 0..n {
                    p.write(i, next + i as u64);
                }
                p.submit(n);
                next += n as u64;
                if n == 0 {
                    std::thread::yield_now();
                }
            }
        });
        let mut expect = 0u64;
        while expect < N {
            let n = c.peek(13);
            for i in 0..n {
                assert_eq!(c.read(i), expect);
                expect += 1;
            }
            c.release(n);
            if n == 0 {
                std::thread::yield_now();
            }
        }
        producer.join().unwrap();
        assert_eq!(c.peek(1), 0);
    }

    #[test]
    #[should_panic(expected = "outside")]
    fn write_outside_reservation_panics() {
        let (mut p, _c) = testing::addr_pair(4);
        p.reserve(1);
        p.write(1, 0);
    }

    #[test]
    fn rejects_bad_offsets() {
        let area = Arc::new(Mmap::anonymous(4096).unwrap());
        let off = XdpRingOffset { producer: 0, consumer: 64, flags: 128, desc: 4000 };
        assert!(Producer::<XdpDesc>::new(area.clone(), &off, 16).is_err());
        let off = XdpRingOffset { producer: 2, consumer: 64, flags: 128, desc: 192 };
        assert!(Consumer::<u64>::new(area.clone(), &off, 16).is_err());
        let off = XdpRingOffset { producer: 0, consumer: 64, flags: 128, desc: 192 };
        assert!(Consumer::<u64>::new(area, &off, 12).is_err());
    }
}
