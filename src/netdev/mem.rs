//! In-memory ports for tests and benches (the part OVS's `netdev-dummy` plays).
//!
//! Receive side, controlled by the test: packets injected with [`MemPort::inject`] (a
//! bounded queue per receive queue), or a replay of template frames handed out as fast as the
//! poll thread asks ([`MemPort::start_replay`]): each is copied into a fresh frame of the
//! poll thread's [`Umem`], cycling over the templates (several templates = several flows).
//! Transmit side: counts packets and bytes, frees the frames, and optionally keeps copies of
//! the bytes ([`MemPort::capture`], [`MemPort::take_sent`]).
//!
//! Threads: the port is shared; each [`MemQueue`] is owned by one poll thread. The inject and
//! capture queues are behind mutexes (tests only); the replay path takes no lock per batch,
//! only a relaxed load of a generation number. No `unsafe`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{Error, Frame, LinkState, Port, PortStats, Queue, QueueStats, Umem, Wakeup};

/// Injected packets waiting per receive queue, at most.
pub const INJECT_CAPACITY: usize = 4096;
/// Transmitted packets kept by a capture, at most (later ones are counted, not kept).
pub const CAPTURE_CAPACITY: usize = 65536;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Default)]
struct Shared {
    inject: Vec<Mutex<VecDeque<Vec<u8>>>>,
    /// Templates for replay; `None` = replay off. Bumping `generation` tells queues to reload.
    replay: Mutex<Option<Arc<Vec<Vec<u8>>>>>,
    generation: AtomicU64,
    capture: AtomicBool,
    sent: Mutex<Vec<Vec<u8>>>,
    queues: Mutex<Vec<Arc<QueueStats>>>,
    /// Administratively down (the inverse, so that `Default` means up).
    admin_down: AtomicBool,
    /// No carrier (set by tests to play a cable pull).
    no_carrier: AtomicBool,
}

/// An in-memory port with `n_queues` receive queues.
#[derive(Clone)]
pub struct MemPort {
    name: String,
    n_queues: u32,
    mac: [u8; 6],
    shared: Arc<Shared>,
}

impl MemPort {
    /// A port named `name` with `n_queues` (at least one) receive queues.
    pub fn new(name: &str, n_queues: u32) -> MemPort {
        let n_queues = n_queues.max(1);
        let h = name.bytes().fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32)).to_be_bytes();
        let shared =
            Shared { inject: (0..n_queues).map(|_| Mutex::default()).collect(), ..Default::default() };
        MemPort {
            name: name.to_string(),
            n_queues,
            mac: [0x02, 0, h[0], h[1], h[2], h[3]],
            shared: Arc::new(shared),
        }
    }

    /// Queues `bytes` for reception on queue 0. Returns false when that queue is full.
    pub fn inject(&self, bytes: impl Into<Vec<u8>>) -> bool {
        self.inject_to(0, bytes)
    }

    /// Queues `bytes` for reception on queue `qid` (false if full or no such queue).
    pub fn inject_to(&self, qid: u32, bytes: impl Into<Vec<u8>>) -> bool {
        let Some(q) = self.shared.inject.get(qid as usize) else { return false };
        let mut q = lock(q);
        if q.len() >= INJECT_CAPACITY {
            return false;
        }
        q.push_back(bytes.into());
        true
    }

    /// Starts replaying `templates` on every queue, cycling over them (replaces a running
    /// replay). Empty `templates` stops the replay.
    pub fn start_replay(&self, templates: Vec<Vec<u8>>) {
        *lock(&self.shared.replay) = (!templates.is_empty()).then(|| Arc::new(templates));
        self.shared.generation.fetch_add(1, Ordering::Release);
    }

    /// Stops a replay.
    pub fn stop_replay(&self) {
        self.start_replay(Vec::new());
    }

    /// Starts or stops keeping the bytes of transmitted packets.
    pub fn capture(&self, on: bool) {
        self.shared.capture.store(on, Ordering::Relaxed);
    }

    /// Plugs or pulls the virtual cable: the port is live when admin up and with carrier.
    /// (Only the reported link state changes; packets keep flowing, as tests want.)
    pub fn set_carrier(&self, on: bool) {
        self.shared.no_carrier.store(!on, Ordering::Relaxed);
    }

    /// Takes the packets captured so far (oldest first).
    pub fn take_sent(&self) -> Vec<Vec<u8>> {
        std::mem::take(&mut *lock(&self.shared.sent))
    }
}

impl Port for MemPort {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "mem"
    }
    fn n_queues(&self) -> u32 {
        self.n_queues
    }
    fn open_queue(&self, qid: u32, _umem: &mut Umem) -> Result<Box<dyn Queue>, Error> {
        if qid >= self.n_queues {
            return Err(Error::NoSuchQueue { name: self.name.clone(), qid, n_queues: self.n_queues });
        }
        let stats = Arc::new(QueueStats::default());
        lock(&self.shared.queues).push(stats.clone());
        Ok(Box::new(MemQueue {
            shared: self.shared.clone(),
            qid,
            stats,
            generation: u64::MAX,
            templates: None,
            next: 0,
        }))
    }
    fn mac(&self) -> [u8; 6] {
        self.mac
    }
    fn stats(&self) -> PortStats {
        let mut s = PortStats::default();
        for q in lock(&self.shared.queues).iter() {
            s.accumulate(q);
        }
        s
    }
    fn link(&self) -> LinkState {
        let admin_up = !self.shared.admin_down.load(Ordering::Relaxed);
        let carrier = !self.shared.no_carrier.load(Ordering::Relaxed);
        LinkState { admin_up, live: admin_up && carrier, ..LinkState::default() }
    }
    fn set_admin_up(&self, up: bool) -> Result<(), Error> {
        self.shared.admin_down.store(!up, Ordering::Relaxed);
        Ok(())
    }
    fn describe(&self) -> String {
        format!("in-memory, {} queue{}", self.n_queues, if self.n_queues == 1 { "" } else { "s" })
    }
}

/// One receive queue of a [`MemPort`] (and its transmit path).
pub struct MemQueue {
    shared: Arc<Shared>,
    qid: u32,
    stats: Arc<QueueStats>,
    generation: u64,
    templates: Option<Arc<Vec<Vec<u8>>>>,
    next: usize,
}

impl Queue for MemQueue {
    fn recv(&mut self, umem: &mut Umem, batch: &mut Vec<Frame>, max: usize) -> usize {
        let gen = self.shared.generation.load(Ordering::Acquire);
        if gen != self.generation {
            self.generation = gen;
            self.templates = lock(&self.shared.replay).clone();
            self.next = 0;
        }
        let mut n = 0;
        let mut bytes = 0;
        if let Some(t) = &self.templates {
            while n < max {
                let Some(f) = umem.frame_from(&t[self.next]) else { break };
                self.next = if self.next + 1 == t.len() { 0 } else { self.next + 1 };
                bytes += f.len() as u64;
                batch.push(f);
                n += 1;
            }
        }
        if n < max {
            let mut q = lock(&self.shared.inject[self.qid as usize]);
            while n < max {
                let Some(p) = q.front() else { break };
                let Some(f) = umem.frame_from(p) else {
                    if p.len() > (super::CHUNK_SIZE - super::FRAME_HEADROOM) as usize {
                        q.pop_front(); // can never fit: drop it
                        continue;
                    }
                    break;
                };
                q.pop_front();
                bytes += f.len() as u64;
                batch.push(f);
                n += 1;
            }
        }
        self.stats.rx_packets.add(n as u64);
        self.stats.rx_bytes.add(bytes);
        n
    }

    fn send(&mut self, umem: &mut Umem, frames: &mut Vec<Frame>) -> usize {
        let n = frames.len();
        let capture = self.shared.capture.load(Ordering::Relaxed);
        let mut sent = if capture { Some(lock(&self.shared.sent)) } else { None };
        let mut bytes = 0;
        for f in frames.drain(..) {
            bytes += f.len() as u64;
            if let Some(sent) = sent.as_mut().filter(|s| s.len() < CAPTURE_CAPACITY) {
                sent.push(umem.data(&f).to_vec());
            }
            umem.free(f);
        }
        self.stats.tx_packets.add(n as u64);
        self.stats.tx_bytes.add(bytes);
        n
    }

    fn maintain(&mut self, _umem: &mut Umem) {}

    fn wakeup(&self) -> Wakeup {
        Wakeup::Nap
    }

    fn release(&mut self, _umem: &mut Umem) {}

    fn stats(&self) -> &Arc<QueueStats> {
        &self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inject_receive_send_capture() {
        let port = MemPort::new("m0", 2);
        let mut umem = Umem::new(16).unwrap();
        let mut q0 = port.open_queue(0, &mut umem).unwrap();
        let mut q1 = port.open_queue(1, &mut umem).unwrap();
        assert!(port.open_queue(2, &mut umem).is_err());
        assert!(port.inject(vec![1, 2, 3]));
        assert!(port.inject_to(1, vec![4, 5]));
        assert!(port.inject(vec![0u8; 4000])); // too big for a chunk: dropped on receive
        assert!(port.inject(vec![6]));
        let mut batch = Vec::new();
        assert_eq!(q0.recv(&mut umem, &mut batch, 64), 2);
        assert_eq!(q1.recv(&mut umem, &mut batch, 64), 1);
        assert_eq!(umem.data(&batch[0]), &[1, 2, 3]);
        assert_eq!(umem.data(&batch[2]), &[4, 5]);
        port.capture(true);
        assert_eq!(q0.send(&mut umem, &mut batch), 3);
        assert!(batch.is_empty());
        assert_eq!(umem.n_free(), 16);
        assert_eq!(port.take_sent(), vec![vec![1, 2, 3], vec![6], vec![4, 5]]);
        let s = port.stats();
        assert_eq!((s.rx_packets, s.rx_bytes, s.tx_packets, s.tx_bytes), (3, 6, 3, 6));
        assert_eq!(q0.wakeup(), Wakeup::Nap);
    }

    #[test]
    fn link_state_follows_admin_and_carrier() {
        let port = MemPort::new("m2", 1);
        assert!(port.is_live());
        port.set_carrier(false);
        assert_eq!(port.link(), LinkState { admin_up: true, live: false, ..LinkState::default() });
        port.set_carrier(true);
        port.set_admin_up(false).unwrap();
        assert_eq!(port.link(), LinkState { admin_up: false, live: false, ..LinkState::default() });
        port.set_admin_up(true).unwrap();
        assert!(port.clone().is_live());
    }

    #[test]
    fn replay_cycles_templates_and_stops_when_pool_empty() {
        let port = MemPort::new("m1", 1);
        let mut umem = Umem::new(8).unwrap();
        let mut q = port.open_queue(0, &mut umem).unwrap();
        port.start_replay(vec![vec![1; 64], vec![2; 64], vec![3; 64]]);
        let mut batch = Vec::new();
        assert_eq!(q.recv(&mut umem, &mut batch, 5), 5);
        let firsts: Vec<u8> = batch.iter().map(|f| umem.data(f)[0]).collect();
        assert_eq!(firsts, [1, 2, 3, 1, 2]);
        assert_eq!(q.recv(&mut umem, &mut batch, 64), 3); // pool exhausted
        assert_eq!(q.send(&mut umem, &mut batch), 8);
        port.stop_replay();
        assert_eq!(q.recv(&mut umem, &mut batch, 64), 0);
        assert_eq!(port.stats().rx_packets, 8);
    }
}
