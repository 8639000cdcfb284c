//! The bare forwarder: queue 0 of port A to queue 0 of port B and back, with no
//! classification — the baseline the switch is measured against ("a bare AF_XDP forwarder,
//! same port code, no classification").
//!
//! One thread, one [`Umem`] shared by both queues, so frames cross without a copy. While
//! there is traffic it polls; after [`IDLE_SPINS`] empty rounds it sleeps in `poll()` on both
//! sockets (or naps, for ports without an fd), leaving the CPU to the kernel's NAPI work.
//! No `unsafe`.
//!
//! Measured (2026-11-21, this 2-vCPU VM while other builds ran, load average 3–5; release;
//! 60-byte UDP, one flow, native XDP, copy mode; `tests/afxdp.rs` `bench_bare_forwarder`):
//! with an XDP live-frames generator and an XDP drop sink, 0.30–0.43 Mpps forwarded at
//! 0.52–0.82 Mpps per forwarder CPU-second; with an AF_XDP TX generator 0.33–0.56 Mpps.
//! `perf`: ~1% of the forwarder thread's cycles are user space; the rest is the kernel's
//! copy-mode transmit (one skb per frame) and veth work. Over in-memory ports (no kernel) the
//! same loop moves ~80 Mpps (`mem_rate`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use super::afxdp::{self, AfXdpConfig};
use super::{Error, Frame, Port, Queue, Umem, Wakeup};

/// Receive batch size.
pub const BATCH: usize = super::RX_BATCH;
/// Empty rounds before sleeping.
pub const IDLE_SPINS: u32 = 256;
/// Longest sleep, so `stop` is noticed.
pub const IDLE_SLEEP_MS: i32 = 10;

/// What a [`forward`] run did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BareStats {
    pub a_to_b: u64,
    pub b_to_a: u64,
    /// How many times the forwarder went to sleep.
    pub sleeps: u64,
    pub seconds: f64,
}

/// Forwards between queue 0 of `a` and queue 0 of `b` until `stop` is set, with a frame pool
/// sized for two AF_XDP queues of the default configuration.
pub fn forward(a: &dyn Port, b: &dyn Port, stop: &AtomicBool) -> Result<BareStats, Error> {
    forward_with(a, b, stop, afxdp::chunks_needed(2, &AfXdpConfig::default()))
}

/// [`forward`] with a pool of `n_chunks` chunks.
pub fn forward_with(
    a: &dyn Port,
    b: &dyn Port,
    stop: &AtomicBool,
    n_chunks: u32,
) -> Result<BareStats, Error> {
    let mut umem = Umem::new(n_chunks).map_err(|source| Error::Sys {
        name: a.name().to_string(),
        op: "UMEM mmap",
        source,
    })?;
    let mut qa = a.open_queue(0, &mut umem)?;
    let mut qb = match b.open_queue(0, &mut umem) {
        Ok(q) => q,
        Err(e) => {
            qa.release(&mut umem);
            return Err(e);
        }
    };
    let stats = run(&mut *qa, &mut *qb, &mut umem, stop);
    qa.release(&mut umem);
    qb.release(&mut umem);
    // Queues (sockets) go before the Umem they use.
    drop(qa);
    drop(qb);
    drop(umem);
    Ok(stats)
}

fn run(qa: &mut dyn Queue, qb: &mut dyn Queue, umem: &mut Umem, stop: &AtomicBool) -> BareStats {
    let start = Instant::now();
    let mut s = BareStats::default();
    let mut batch: Vec<Frame> = Vec::with_capacity(BATCH);
    let mut idle = 0u32;
    let fds: Vec<_> = [qa.wakeup(), qb.wakeup()]
        .into_iter()
        .filter_map(|w| match w {
            Wakeup::Fd(fd) => Some(fd),
            Wakeup::Nap => None,
        })
        .collect();
    while !stop.load(Ordering::Relaxed) {
        let n1 = qa.recv(umem, &mut batch, BATCH);
        if n1 > 0 {
            qb.send(umem, &mut batch);
        }
        let n2 = qb.recv(umem, &mut batch, BATCH);
        if n2 > 0 {
            qa.send(umem, &mut batch);
        }
        qa.maintain(umem);
        qb.maintain(umem);
        s.a_to_b += n1 as u64;
        s.b_to_a += n2 as u64;
        if n1 + n2 > 0 {
            idle = 0;
            continue;
        }
        idle += 1;
        if idle >= IDLE_SPINS {
            s.sleeps += 1;
            if fds.len() == 2 {
                let _ = afxdp::sys::poll_readable(&fds, IDLE_SLEEP_MS);
            } else {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            idle = IDLE_SPINS / 2;
        } else if idle.is_multiple_of(16) {
            std::thread::yield_now();
        }
    }
    s.seconds = start.elapsed().as_secs_f64();
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netdev::mem::MemPort;
    use std::sync::Arc;

    #[test]
    fn forwards_both_ways_between_mem_ports() {
        let a = MemPort::new("a", 1);
        let b = MemPort::new("b", 1);
        b.capture(true);
        a.capture(true);
        for i in 0..100u8 {
            assert!(a.inject(vec![i; 60]));
        }
        assert!(b.inject(vec![0xee; 42]));
        let stop = Arc::new(AtomicBool::new(false));
        let (a2, b2, stop2) = (a.clone(), b.clone(), stop.clone());
        let t = std::thread::spawn(move || forward_with(&a2, &b2, &stop2, 1024));
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        while b.stats().tx_packets < 100 && Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        stop.store(true, Ordering::Relaxed);
        let s = t.join().unwrap().unwrap();
        assert_eq!((s.a_to_b, s.b_to_a), (100, 1));
        let sent = b.take_sent();
        assert_eq!(sent.len(), 100);
        assert!(sent.iter().enumerate().all(|(i, p)| p == &vec![i as u8; 60]));
        assert_eq!(a.take_sent(), vec![vec![0xee; 42]]);
    }

    /// The forwarder's own per-packet cost, over in-memory ports (replay → count):
    /// `cargo test --release --lib bare::tests::mem_rate -- --ignored --nocapture`.
    #[test]
    #[ignore = "benchmark: run by hand in release mode"]
    fn mem_rate() {
        let a = MemPort::new("a", 1);
        let b = MemPort::new("b", 1);
        a.start_replay((0..4u8).map(|i| vec![i; 64]).collect());
        let stop = Arc::new(AtomicBool::new(false));
        let (a2, b2, stop2) = (a.clone(), b.clone(), stop.clone());
        let t = std::thread::spawn(move || forward_with(&a2, &b2, &stop2, 4096));
        std::thread::sleep(std::time::Duration::from_secs(2));
        stop.store(true, Ordering::Relaxed);
        let s = t.join().unwrap().unwrap();
        eprintln!("bare forwarder over MemPorts: {:.2} Mpps ({s:?})", s.a_to_b as f64 / s.seconds / 1e6);
        assert_eq!(b.stats().tx_packets, s.a_to_b);
    }
}
