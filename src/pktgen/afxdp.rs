//! The AF_XDP generator (`pktgen send --mode afxdp`): frames written into a UMEM and handed
//! to the kernel through AF_XDP sockets' TX rings.
//!
//! One pinned thread per core; thread `i` owns its own [`Umem`] and an AF_XDP socket on
//! queue `i` of `--dev` (so `--cores` may not exceed the device's queues). Each round a
//! thread reclaims completed frames ([`Queue::maintain`]), takes up to [`RX_BATCH`] free
//! chunks, writes the next frames into them with [`Template::render_into`] (flow spreading,
//! IMIX sizes and checksums exactly as the live generator's program makes them: flows
//! `0, 1, .., --flows - 1` in turn, the 7:4:1 IMIX cycle) and queues them with
//! [`Queue::send`], which kicks the kernel. At most a TX ring's worth of frames is in flight,
//! so no frame ever finds the ring full.
//!
//! Sent means completed: a frame counts once the kernel has handed its descriptor back on the
//! completion ring, not when it was queued. `--count` is split over the threads and is exact
//! (each thread queues exactly its share and waits for all of it to complete); at the end of
//! a `--duration` run a thread stops queueing and waits for its frames in flight. Bytes are
//! counted assuming frames complete in the order they were queued, so with `--imix` the
//! per-second lines may be off by a few frames' sizes; the totals at the end are exact.
//! `--rate` is a token bucket on the wall clock per thread: a thread ahead of its pace sleeps
//! (no busy loop), and one that fell behind catches up on at most 50 ms of debt.
//!
//! On veth (and any driver without zero-copy support) AF_XDP transmits in copy mode: the
//! `sendto` kick builds and transmits one skb per frame (`XDP_MAX_TX_SKB_BUDGET`, set by the
//! port, lets one kick take a whole batch). Nearly all the time goes to the kernel (skb
//! build, veth, the peer's receive); the generator's own code is ~1% of it. Measured on a
//! 2-vCPU kernel 6.18 VM, 64-byte frames, one core into a veth whose peer runs `pktgen sink`:
//! ~0.7 Mpps, as the peer's receive softirq runs on the sending core; 1.1-1.4 Mpps with
//! `sink --threaded` (but then the veth ring may overflow). Unlike live frames, AF_XDP TX
//! needs no XDP program on a veth peer. `--stamp` is not supported in this mode (no safe
//! monotonic clock in ns to stamp with).
//!
//! Opening the port attaches the switch's XDP program (`bpf/xsk_redirect.c`) to `--dev` for
//! the run; it is detached when the run ends, also on Ctrl-C / SIGTERM (the port is dropped)
//! and on a crash (bpf_link). While it is attached, frames *arriving* on a queue the
//! generator has a socket on are redirected to that socket, where the generator frees them
//! unread: they never reach the kernel stack. Queues without a socket pass frames to the
//! stack as before.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::bpf;
use super::live::{self, thread_cpu_ns, Progress};
use super::template::{MacCursor, MacPlan, Template, IMIX_CYCLE};
use super::{Error, SendArgs, SendReport};
use crate::netdev::afxdp::{chunks_needed, AfXdpConfig, AfXdpPort};
use crate::netdev::{self, Frame, Port, Queue, Umem, CHUNK_SIZE, FRAME_HEADROOM, RX_BATCH};

/// Largest frame this mode sends: one UMEM chunk after its headroom.
pub const MAX_FRAME: usize = (CHUNK_SIZE - FRAME_HEADROOM) as usize;
/// How often the controlling thread checks the clock and prints progress.
const POLL: Duration = Duration::from_millis(20);
/// How long a thread waits at the end for frames in flight, after the last completion.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// Debt a paced thread that fell behind may catch up on (in a burst); the rest is forgiven.
const CATCH_UP: Duration = Duration::from_millis(50);
/// Rounds without progress (the kernel is not taking frames) before a thread naps.
const SPINS_BEFORE_NAP: u32 = 16;
/// The nap of a thread that is not making progress.
const NAP: Duration = Duration::from_micros(50);

/// The port configuration: default TX and completion rings; small receive rings, since the
/// generator receives nothing on purpose.
fn port_config() -> AfXdpConfig {
    AfXdpConfig { rx_size: 256, fill_size: 256, ..AfXdpConfig::default() }
}

/// The frame sizes a thread cycles through (one size, or the IMIX cycle), with prefix sums
/// to turn a number of frames into bytes.
struct Sizes {
    cycle: Vec<usize>,
    /// `prefix[i]` = bytes of the first `i` frames of the cycle (`cycle.len() + 1` entries).
    prefix: Vec<u64>,
}

impl Sizes {
    /// `size` for every frame, or the IMIX cycle over `imix` (small, medium, large).
    fn new(size: usize, imix: Option<[usize; 3]>) -> Sizes {
        let cycle: Vec<usize> = match imix {
            Some(sizes) => IMIX_CYCLE.iter().map(|&i| sizes[i]).collect(),
            None => vec![size],
        };
        let prefix = std::iter::once(0)
            .chain(cycle.iter().scan(0u64, |sum, &s| {
                *sum += s as u64;
                Some(*sum)
            }))
            .collect();
        Sizes { cycle, prefix }
    }

    /// Bytes of the first `frames` frames a thread sends.
    fn bytes_of_first(&self, frames: u64) -> u64 {
        let n = self.cycle.len() as u64;
        (frames / n) * self.prefix[n as usize] + self.prefix[(frames % n) as usize]
    }
}

/// What one sending thread has sent so far (completed frames and their bytes); written by
/// that thread only, read by the controlling thread.
#[derive(Default)]
struct Sent {
    packets: AtomicU64,
    bytes: AtomicU64,
}

/// Paces one thread: `rate` frames per second since `start`, in quanta of about a
/// millisecond's worth of frames (at least 1, at most [`RX_BATCH`]).
struct Pacer {
    rate: f64,
    start: Instant,
    /// Frames forgiven because the thread fell more than [`CATCH_UP`] behind.
    forgiven: u64,
    quantum: u64,
    cap: u64,
}

impl Pacer {
    fn new(rate: f64) -> Pacer {
        let quantum = (rate / 1000.0).clamp(1.0, RX_BATCH as f64) as u64;
        let cap = ((rate * CATCH_UP.as_secs_f64()) as u64).max(quantum);
        Pacer { rate, start: Instant::now(), forgiven: 0, quantum, cap }
    }

    /// Frames that may be queued now, `queued` having been queued so far.
    fn allowance(&mut self, queued: u64) -> u64 {
        let due = (self.start.elapsed().as_secs_f64() * self.rate) as u64;
        let tokens = due.saturating_sub(self.forgiven + queued);
        if tokens > self.cap {
            self.forgiven += tokens - self.cap;
            return self.cap;
        }
        tokens
    }

    /// How long to sleep until `need` frames are allowed, having `tokens` (at most [`POLL`],
    /// so a sleeping thread still notices a stop soon).
    fn wait(&self, tokens: u64, need: u64) -> Duration {
        Duration::from_secs_f64(need.saturating_sub(tokens) as f64 / self.rate).min(POLL)
    }
}

/// What every sending thread shares.
struct Shared<'a> {
    port: &'a AfXdpPort,
    cfg: &'a AfXdpConfig,
    template: &'a Template,
    /// How the Ethernet addresses vary (each thread keeps its own [`MacCursor`]).
    macs: MacPlan,
    sizes: &'a Sizes,
    flows: u64,
    /// Frames per second per thread.
    rate: Option<f64>,
    /// Set by the controlling thread once every queue is open: the clock starts.
    go: &'a AtomicBool,
    /// Queues opened so far.
    ready: &'a AtomicUsize,
    quit: &'a (dyn Fn() -> bool + Sync),
}

impl Shared<'_> {
    /// One sending thread: opens queue `qid` with a fresh [`Umem`], waits for the start, sends
    /// (at most `quota` frames) until told to quit. Returns the CPU time it spent sending.
    fn run(&self, qid: u32, quota: Option<u64>, sent: &Sent) -> Result<u64, Error> {
        let mut umem =
            Umem::new(chunks_needed(1, self.cfg)).map_err(|e| Error::Sys { op: "UMEM", source: e })?;
        let mut queue = self.port.open_queue(qid, &mut umem)?;
        self.ready.fetch_add(1, Ordering::AcqRel);
        while !self.go.load(Ordering::Acquire) {
            if (self.quit)() {
                queue.release(&mut umem);
                return Ok(0);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let cpu0 = thread_cpu_ns();
        self.pump(&mut *queue, &mut umem, quota, sent, seed(qid));
        queue.release(&mut umem);
        Ok(thread_cpu_ns().saturating_sub(cpu0))
    }

    /// Publishes `done` completed frames as this thread's progress.
    fn publish(&self, sent: &Sent, done: u64) {
        sent.packets.store(done, Ordering::Relaxed);
        sent.bytes.store(self.sizes.bytes_of_first(done), Ordering::Relaxed);
    }

    /// The sending loop, then the wait for frames in flight.
    fn pump(&self, queue: &mut dyn Queue, umem: &mut Umem, quota: Option<u64>, sent: &Sent, seed: u64) {
        let stats = Arc::clone(queue.stats());
        let done0 = stats.tx_completed.get();
        // Frames in flight (queued, not completed) never exceed the TX or completion ring.
        let ring = u64::from(self.cfg.tx_size.min(self.cfg.comp_size));
        let mut batch: Vec<Frame> = Vec::with_capacity(RX_BATCH);
        let mut received: Vec<Frame> = Vec::with_capacity(RX_BATCH);
        let mut pacer = self.rate.map(Pacer::new);
        let (mut queued, mut flow, mut slot) = (0u64, 0u64, 0usize);
        let (mut macs, vary_macs) = (MacCursor::new(seed), self.macs.varies());
        let (mut last_done, mut idle) = (0u64, 0u32);
        loop {
            queue.maintain(umem);
            recycle(queue, umem, &mut received);
            let done = stats.tx_completed.get() - done0;
            self.publish(sent, done);
            let left = quota.map_or(u64::MAX, |q| q - queued);
            if left == 0 || (self.quit)() {
                break;
            }
            let mut want = (RX_BATCH as u64).min(ring - (queued - done)).min(left);
            if let Some(p) = pacer.as_mut() {
                let tokens = p.allowance(queued);
                let need = p.quantum.min(left);
                if tokens < need {
                    // Ahead of the pace. Frames already queued were sent by the kick.
                    std::thread::sleep(p.wait(tokens, need));
                    continue;
                }
                want = want.min(tokens);
            }
            for _ in 0..want {
                let Some(mut frame) = umem.alloc() else { break };
                let len = self.sizes.cycle[slot];
                slot = if slot + 1 == self.sizes.cycle.len() { 0 } else { slot + 1 };
                let this_flow = flow;
                flow = if flow + 1 == self.flows { 0 } else { flow + 1 };
                umem.with_buf(&mut frame, |buf| {
                    // `plan` keeps sizes within a chunk, so this always fits.
                    if buf.set_len(len).is_ok() {
                        self.template.render_into(buf.data_mut(), this_flow, None);
                        if vary_macs {
                            // The varying addresses are the inner frame's (after any GRE).
                            macs.write_next(&self.macs, &mut buf.data_mut()[self.template.outer_len..]);
                        }
                    }
                });
                batch.push(frame);
            }
            let n = if batch.is_empty() { 0 } else { queue.send(umem, &mut batch) as u64 };
            queued += n;
            if n == 0 && done == last_done {
                idle += 1;
                if idle > SPINS_BEFORE_NAP {
                    std::thread::sleep(NAP);
                }
            } else {
                idle = 0;
            }
            last_done = done;
        }
        // Wait for the frames in flight (the kernel is kicked while TX has work).
        let mut until = Instant::now() + DRAIN_TIMEOUT;
        loop {
            let done = stats.tx_completed.get() - done0;
            self.publish(sent, done);
            if done >= queued {
                break;
            }
            let now = Instant::now();
            if done != last_done {
                until = now + DRAIN_TIMEOUT;
                last_done = done;
            } else if now > until {
                tracing::warn!(in_flight = queued - done, "AF_XDP TX: frames never completed");
                break;
            }
            std::thread::sleep(NAP);
            queue.maintain(umem);
            recycle(queue, umem, &mut received);
        }
    }
}

/// Frees whatever arrived on the generator's socket (see the module doc).
#[inline]
fn recycle(queue: &mut dyn Queue, umem: &mut Umem, received: &mut Vec<Frame>) {
    if queue.recv(umem, received, RX_BATCH) > 0 {
        for f in received.drain(..) {
            umem.free(f);
        }
    }
}

/// A seed for thread `qid`'s random MACs: the clock, so runs differ, mixed with the queue,
/// so threads differ.
fn seed(qid: u32) -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    (now.as_nanos() as u64) ^ u64::from(qid + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// Splits `count` frames over `n` threads.
fn quotas(count: u64, n: usize) -> Vec<u64> {
    let n = n as u64;
    (0..n).map(|i| count / n + u64::from(i < count % n)).collect()
}

/// Runs the AF_XDP generator until `--duration`, `--count` or `stop`. Prints a progress line
/// per second to stdout (stderr with `--json`).
pub fn send(args: &SendArgs, stop: &AtomicBool) -> Result<SendReport, Error> {
    let plan = live::plan(args)?;
    if args.stamp {
        return Err(Error::Unsupported("--stamp is not supported with --mode afxdp; use --mode live".into()));
    }
    let cfg = port_config();
    let port = AfXdpPort::open(&args.dev, &cfg).map_err(|e| match e {
        // The device exists (`plan` checked), but not in this /sys.
        netdev::Error::Sys { op: "count queues", .. } => Error::Unsupported(format!(
            "cannot read the queues of {} in /sys/class/net: is /sys from another network \
             namespace? Run in the device's namespace with `ip netns exec`",
            args.dev
        )),
        e => e.into(),
    })?;
    let n = plan.cpus.len();
    let queues = port.n_queues() as usize;
    if n > queues {
        return Err(Error::Invalid(format!(
            "--cores {n} but {} has {queues} queue{} (one AF_XDP socket per queue): use --cores {queues} \
             or fewer, or give the device more queues",
            args.dev,
            if queues == 1 { "" } else { "s" }
        )));
    }
    let template = plan.template();
    let sizes = Sizes::new(plan.size, plan.imix);
    let duration = match (args.duration, args.count) {
        (Some(d), _) => Some(Duration::from_secs_f64(d)),
        (None, Some(_)) => None,
        (None, None) => Some(Duration::from_secs(10)),
    };
    let quotas = args.count.map(|c| quotas(c, n));
    let sent: Vec<Sent> = (0..n).map(|_| Sent::default()).collect();
    let (halt, go, ready) = (AtomicBool::new(false), AtomicBool::new(false), AtomicUsize::new(0));
    let cpu_ns = AtomicU64::new(0);
    let failure: Mutex<Option<Error>> = Mutex::new(None);
    let quit = || halt.load(Ordering::Relaxed) || stop.load(Ordering::Relaxed);
    let shared = Shared {
        port: &port,
        cfg: &cfg,
        template: &template,
        macs: plan.macs,
        sizes: &sizes,
        flows: u64::from(args.flows),
        rate: args.rate.map(|r| r / n as f64),
        go: &go,
        ready: &ready,
        quit: &quit,
    };
    let totals = || {
        sent.iter().fold((0, 0), |(p, b), s| {
            (p + s.packets.load(Ordering::Relaxed), b + s.bytes.load(Ordering::Relaxed))
        })
    };

    let seconds = std::thread::scope(|s| {
        let workers: Vec<_> = plan
            .cpus
            .iter()
            .enumerate()
            .map(|(i, &cpu)| {
                let (shared, sent, failure, halt, cpu_ns) = (&shared, &sent[i], &failure, &halt, &cpu_ns);
                let quota = quotas.as_ref().map(|q| q[i]);
                s.spawn(move || {
                    let result = bpf::pin_to_cpu(cpu)
                        .map_err(|e| Error::Sys { op: "sched_setaffinity", source: e })
                        .and_then(|()| shared.run(i as u32, quota, sent));
                    match result {
                        Ok(ns) => {
                            cpu_ns.fetch_add(ns, Ordering::Relaxed);
                        }
                        Err(e) => {
                            failure.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
                            halt.store(true, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        // The clock starts once every socket is open (or something failed).
        while ready.load(Ordering::Acquire) < n && !workers.iter().any(|w| w.is_finished()) && !quit() {
            std::thread::sleep(Duration::from_millis(1));
        }
        let start = Instant::now();
        go.store(true, Ordering::Release);
        let deadline = duration.map(|d| start + d);
        let mut progress = Progress::new(args.json, start);
        while !workers.iter().all(|w| w.is_finished()) {
            std::thread::sleep(POLL);
            progress.tick(Some(totals()));
            if deadline.is_some_and(|d| Instant::now() >= d) {
                halt.store(true, Ordering::Relaxed);
            }
        }
        start.elapsed().as_secs_f64()
    });
    drop(port); // detaches the XDP program
    if let Some(e) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    Ok(live::report(args, &plan, "afxdp", totals(), seconds, cpu_ns.into_inner()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_sum_to_count() {
        assert_eq!(quotas(7, 2), vec![4, 3]);
        assert_eq!(quotas(20000, 1), vec![20000]);
        assert_eq!(quotas(1, 3).iter().sum::<u64>(), 1);
    }

    #[test]
    fn imix_bytes() {
        let sizes = Sizes::new(1518, Some([64, 594, 1518]));
        assert_eq!(sizes.bytes_of_first(1200), 100 * (7 * 64 + 4 * 594 + 1518));
        assert_eq!(sizes.bytes_of_first(2), 64 + 594);
        assert_eq!(sizes.bytes_of_first(0), 0);
        assert_eq!(Sizes::new(64, None).bytes_of_first(20000), 20000 * 64);
    }

    #[test]
    fn pacer_caps_debt_and_sleeps_briefly() {
        let mut p = Pacer::new(1e6);
        assert_eq!(p.quantum, 256);
        p.start -= Duration::from_secs(1);
        // 1 s behind: only 50 ms of debt remains.
        assert_eq!(p.allowance(0), 50_000);
        assert!(p.wait(0, 256) <= POLL);
        assert_eq!(Pacer::new(100.0).quantum, 1);
    }
}
