//! netdev — ports: where frames enter and leave the switch.
//!
//! Owns: the [`Umem`] frame pools (one per poll thread), AF_XDP sockets and their rings
//! ([`afxdp`]), the XDP program that steers frames to them, TAP devices ([`tap`], the
//! bridge's LOCAL port), link state of kernel interfaces ([`link`]), and the in-memory port
//! used by tests and benches ([`mem`]). Calls: nothing above it; `packet` only for tests.
//! Threads: a [`Port`] is shared (`Sync`) between the control thread and the poll threads;
//! each [`Queue`] is owned by exactly one poll thread and used without locks.
//! `unsafe`: only in `umem` (frame access), `afxdp` (rings, mmap, syscalls), `poll`, and the
//! `ioctl`s of `link` and `tap`.
//!
//! Lifecycle (cf. OVS `netdev-provider.h`): `open(cfg) -> Result<Port>` may fail and says why;
//! dropping a port detaches everything it attached (XDP program, sockets). A poll thread asks
//! the port for one [`Queue`] per receive queue it serves, bound to that thread's [`Umem`], so
//! a frame received on one port can be transmitted on another without a copy.

pub mod afxdp;
pub mod bare;
pub mod link;
pub mod mem;
mod poll;
pub mod tap;
mod umem;
pub mod virt;

use std::fmt;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

pub use link::LinkState;
pub use poll::{wait_readable, Waker};
pub use umem::{Frame, Umem, CHUNK_SIZE, FRAME_HEADROOM};

/// Frames a poll thread takes from one queue in one go. Large batches amortize the transmit
/// kick (`sendto`) over more frames: on copy-mode veth, 256 forwarded ~12% more than 64.
pub const RX_BATCH: usize = 256;

/// The datapath's number for a port; in a single bridge it equals the OpenFlow port number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DpPortNo(pub u32);

impl DpPortNo {
    /// The bridge's local port (OpenFlow's `OFPP_LOCAL`, the same number).
    pub const LOCAL: DpPortNo = DpPortNo(0xffff_fffe);

    /// Index of the port in a table indexed by port number: the number itself, and 0 (never
    /// a port's number) for [`DpPortNo::LOCAL`], so such tables stay as small as the highest
    /// ordinary port.
    #[inline]
    pub fn table_index(self) -> usize {
        if self == DpPortNo::LOCAL {
            0
        } else {
            self.0 as usize
        }
    }
}

impl fmt::Display for DpPortNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Errors from opening or configuring a port.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("interface {name:?} does not exist")]
    NoSuchInterface { name: String },
    #[error("interface {name:?}: {op} failed: {source}")]
    Sys {
        name: String,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("interface {name:?}: XDP program: {reason}")]
    Xdp { name: String, reason: String },
    #[error("interface {name:?} has no queue {qid} (it has {n_queues})")]
    NoSuchQueue { name: String, qid: u32, n_queues: u32 },
    #[error("out of UMEM frames ({needed} needed, {available} free)")]
    UmemExhausted { needed: usize, available: usize },
    #[error("{0}")]
    Unsupported(&'static str),
}

/// A counter with a single writer: the owner adds with a relaxed load + store (no locked
/// read-modify-write on the hot path); anyone may read it.
#[derive(Default, Debug)]
#[repr(transparent)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`. Only the counter's single owner thread may call this.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }
    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
    /// Overwrites the value (owner only); used to mirror kernel counters.
    #[inline]
    pub fn set(&self, v: u64) {
        self.0.store(v, Relaxed)
    }
}

/// Per-queue counters, written by the owning poll thread, read by `ctl dump-ports`.
#[derive(Default, Debug)]
#[repr(align(64))]
pub struct QueueStats {
    pub rx_packets: Counter,
    pub rx_bytes: Counter,
    /// Received frames dropped by the datapath before lookup (port set to `no_recv`).
    pub rx_dropped: Counter,
    /// Receive errors (a frame too large for a chunk, a failed read).
    pub rx_errors: Counter,
    pub tx_packets: Counter,
    pub tx_bytes: Counter,
    /// Transmit errors other than "no room" (a failed write).
    pub tx_errors: Counter,
    /// TX frames the kernel handed back on the completion ring (it is done with them).
    pub tx_completed: Counter,
    /// Frames we could not put on the TX ring (ring full): dropped by us.
    pub tx_dropped: Counter,
    /// Kernel `XDP_STATISTICS`, refreshed by the owner now and then.
    pub xdp_rx_dropped: Counter,
    pub xdp_rx_invalid_descs: Counter,
    pub xdp_tx_invalid_descs: Counter,
    pub xdp_rx_ring_full: Counter,
    pub xdp_rx_fill_ring_empty: Counter,
    pub xdp_tx_ring_empty: Counter,
}

/// A snapshot of a port's counters, summed over its queues.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PortStats {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    /// Dropped on receive: by the datapath (`no_recv`) plus the kernel's `xdp_rx_dropped`.
    pub rx_dropped: u64,
    pub rx_errors: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub tx_dropped: u64,
    pub tx_errors: u64,
    pub xdp_rx_dropped: u64,
    pub xdp_rx_invalid_descs: u64,
    pub xdp_tx_invalid_descs: u64,
    pub xdp_rx_ring_full: u64,
    pub xdp_rx_fill_ring_empty: u64,
    pub xdp_tx_ring_empty: u64,
}

impl PortStats {
    /// Adds one queue's counters into this snapshot.
    pub fn accumulate(&mut self, q: &QueueStats) {
        self.rx_packets += q.rx_packets.get();
        self.rx_bytes += q.rx_bytes.get();
        self.rx_dropped += q.rx_dropped.get() + q.xdp_rx_dropped.get();
        self.rx_errors += q.rx_errors.get();
        self.tx_packets += q.tx_packets.get();
        self.tx_bytes += q.tx_bytes.get();
        self.tx_dropped += q.tx_dropped.get();
        self.tx_errors += q.tx_errors.get();
        self.xdp_rx_dropped += q.xdp_rx_dropped.get();
        self.xdp_rx_invalid_descs += q.xdp_rx_invalid_descs.get();
        self.xdp_tx_invalid_descs += q.xdp_tx_invalid_descs.get();
        self.xdp_rx_ring_full += q.xdp_rx_ring_full.get();
        self.xdp_rx_fill_ring_empty += q.xdp_rx_fill_ring_empty.get();
        self.xdp_tx_ring_empty += q.xdp_tx_ring_empty.get();
    }
}

/// How a port's queue lets an idle poll thread sleep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wakeup {
    /// Sleep in `poll()` on this fd for POLLIN.
    Fd(RawFd),
    /// No fd: the poll thread must come back to it after a short nap.
    Nap,
}

/// One receive queue of a port (plus a transmit path on the same port), owned by exactly one
/// poll thread and bound to that thread's [`Umem`].
pub trait Queue: Send {
    /// Receives up to `max` frames, appending them to `batch`. Returns how many.
    fn recv(&mut self, umem: &mut Umem, batch: &mut Vec<Frame>, max: usize) -> usize;
    /// Transmits every frame in `frames` (draining it). Frames that find no room are freed
    /// back to `umem` and counted in `tx_dropped`. Returns how many were queued.
    fn send(&mut self, umem: &mut Umem, frames: &mut Vec<Frame>) -> usize;
    /// Housekeeping between batches: reclaim completed TX frames, refill the receive side,
    /// kick the kernel when it asked for a wakeup.
    fn maintain(&mut self, umem: &mut Umem);
    /// How the owner may sleep while this queue is idle.
    fn wakeup(&self) -> Wakeup;
    /// Hands every frame this queue holds back to `umem` (before the queue is dropped).
    fn release(&mut self, umem: &mut Umem);
    /// This queue's counters (shared with readers).
    fn stats(&self) -> &std::sync::Arc<QueueStats>;
}

/// A port of the switch: a network interface (AF_XDP), or an in-memory port.
pub trait Port: Send + Sync {
    /// The interface name (`veth-a`) or the in-memory port's name.
    fn name(&self) -> &str;
    /// A short type name for `dump-ports`: `afxdp`, `mem`.
    fn kind(&self) -> &'static str;
    /// How many receive queues the port has; a poll thread opens each one it serves.
    fn n_queues(&self) -> u32;
    /// Opens queue `qid` for the poll thread that owns `umem`.
    fn open_queue(&self, qid: u32, umem: &mut Umem) -> Result<Box<dyn Queue>, Error>;
    /// The port's Ethernet address.
    fn mac(&self) -> [u8; 6];
    /// Counters summed over every queue opened so far, plus kernel counters.
    fn stats(&self) -> PortStats;
    /// Describes how the port is attached (XDP mode, copy or zero-copy, ...), for operators.
    fn describe(&self) -> String {
        String::new()
    }
    /// UMEM chunks one queue of this port can hold at once (in its rings and in the hands of
    /// the poll thread), so the poll thread sizes its pool to never starve. The default fits a
    /// port without kernel rings: a batch in, a batch out, and copies for fan-out.
    fn chunks_per_queue(&self) -> u32 {
        4 * RX_BATCH as u32
    }
    /// Admin flag, carrier, MTU and speed (control thread only: may read sysfs).
    fn link(&self) -> LinkState;
    /// Whether the link is up: admin up, carrier, operationally up.
    fn is_live(&self) -> bool {
        self.link().live
    }
    /// Brings the interface up or down (OpenFlow `OFPPC_PORT_DOWN`).
    fn set_admin_up(&self, up: bool) -> Result<(), Error>;
    /// The interface index, if the port is steered by the datapath's shared offload program
    /// ([`afxdp::offload::SwitchProgram`]), so the kernel can forward its frames.
    fn offload_ifindex(&self) -> Option<u32> {
        None
    }
}
