//! AF_XDP ports: an XDP program steers each receive queue's frames to an AF_XDP socket whose
//! rings share the poll thread's [`Umem`](super::Umem).
//!
//! Modules, one kernel concept each:
//! - [`sys`]: the `if_xdp.h` ABI (`repr(C)` + POD) and thin syscall wrappers; [`sys::Mmap`].
//! - [`ring`]: producer/consumer cursors over the mapped rings; the role is in the type
//!   ([`ring::FillRing`], [`ring::CompletionRing`], [`ring::RxRing`], [`ring::TxRing`]).
//! - [`socket`]: one AF_XDP socket, its four rings, UMEM registration or sharing, bind.
//! - [`xdp`]: loading `bpf/xsk_redirect.o` with aya, attaching it with a bpf_link (native
//!   first, then generic), the XSKMAP; dropping it detaches the program.
//! - [`port`]: [`AfXdpPort`] (`Port`) and [`AfXdpQueue`] (`Queue`).
//!
//! Threads and ownership: an [`AfXdpPort`] is shared by the control thread and the poll
//! threads (its mutable parts sit behind mutexes and are touched only when queues open). Each
//! [`AfXdpQueue`] owns one socket and is used by the one poll thread that owns the `Umem` it
//! was opened with; its counters are `Arc<QueueStats>` written only by that thread.
//! Frames move between the `Umem` free list and the rings as [`Frame`](super::Frame) values,
//! so a frame received on one port goes to another port's TX ring with no copy.
//!
//! `unsafe`: all of it is in `sys` (syscalls, mmap) and `ring` (index words and slots in the
//! shared mapping); each block names the invariant it relies on.

pub mod features;
pub mod offload;
pub mod port;
pub mod ring;
pub mod socket;
pub mod sys;
pub mod xdp;

pub use port::{AfXdpPort, AfXdpQueue};

/// Where the XDP program runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum XdpMode {
    /// Native (driver) mode, falling back to generic mode if the driver refuses.
    #[default]
    Auto,
    /// Native (driver) mode only.
    Native,
    /// Generic (skb) mode only. Turn off GSO/TSO on senders: super-frames don't fit a chunk.
    Generic,
}

/// How sockets bind: zero-copy needs driver support (veth has none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BindMode {
    /// Zero-copy, falling back to copy mode on `EOPNOTSUPP`/`EINVAL`.
    #[default]
    Auto,
    /// Zero-copy only.
    ZeroCopy,
    /// Copy mode only.
    Copy,
}

/// Configuration of an AF_XDP port. Ring sizes are entries and must be powers of two.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AfXdpConfig {
    pub xdp_mode: XdpMode,
    pub bind_mode: BindMode,
    pub rx_size: u32,
    pub tx_size: u32,
    pub fill_size: u32,
    pub comp_size: u32,
    /// Largest receive batch a poll thread asks for (sizes the frame budget).
    pub batch: u32,
    /// `XDP_MAX_TX_SKB_BUDGET` to set on each socket (kernel ≥ 6.17; ignored if refused).
    pub tx_skb_budget: Option<u32>,
}

impl Default for AfXdpConfig {
    fn default() -> Self {
        AfXdpConfig {
            xdp_mode: XdpMode::Auto,
            bind_mode: BindMode::Auto,
            rx_size: 2048,
            tx_size: 2048,
            fill_size: 2048,
            comp_size: 2048,
            batch: super::RX_BATCH as u32,
            tx_skb_budget: Some(256),
        }
    }
}

/// How many UMEM chunks a poll thread needs to serve `n_queues_served` AF_XDP queues opened
/// with `cfg` without ever starving: per queue, frames can sit in the fill ring, the RX ring,
/// the TX ring and the completion ring at once, plus two batches in the thread's hands.
pub fn chunks_needed(n_queues_served: usize, cfg: &AfXdpConfig) -> u32 {
    let per_queue = cfg.fill_size + cfg.rx_size + cfg.tx_size + cfg.comp_size + 2 * cfg.batch;
    per_queue.saturating_mul(n_queues_served as u32)
}
