//! One AF_XDP socket and its four rings.
//!
//! The first socket opened on a [`Umem`] registers the area (`XDP_UMEM_REG`) and is recorded
//! in `umem.registered_by`; later sockets bind with `XDP_SHARED_UMEM` naming it, each with its
//! own fill and completion rings (kernel ≥ 5.10), and inherit its copy/zero-copy and
//! need-wakeup settings.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Weak};

use super::ring::{CompletionRing, Consumer, FillRing, Producer, RxRing, TxRing};
use super::sys::{self, Mmap, SockaddrXdp, XdpDesc, XdpMmapOffsets, XdpStatistics, XdpUmemReg};
use crate::netdev::{Umem, CHUNK_SIZE};

/// What to bind to and how big the rings are.
#[derive(Clone, Copy, Debug)]
pub struct SocketParams {
    pub ifindex: u32,
    pub qid: u32,
    pub rx_size: u32,
    pub tx_size: u32,
    pub fill_size: u32,
    pub comp_size: u32,
    /// Ask for zero-copy (else copy mode). Ignored for sockets that share a UMEM.
    pub zerocopy: bool,
}

/// An AF_XDP socket bound to one (interface, queue). Rings are declared before the fd so
/// they are unmapped before the socket closes.
pub struct XskSocket {
    pub rx: RxRing,
    pub tx: TxRing,
    pub fill: FillRing,
    pub comp: CompletionRing,
    /// Whether this socket registered its UMEM (rather than sharing another's).
    pub registered: bool,
    /// Shared only with the `Umem`'s weak `registered_by`, never cloned strongly for long.
    fd: Arc<OwnedFd>,
}

const XDP_OPTIONS: libc::c_int = 8;
const XDP_OPTIONS_ZEROCOPY: u32 = 1;

impl XskSocket {
    /// Creates the socket, its rings, registers or shares `umem`, and binds. On success with
    /// a fresh registration, `umem.registered_by` is set to this socket.
    pub fn open(p: &SocketParams, umem: &mut Umem) -> io::Result<XskSocket> {
        let fd = Arc::new(sys::xsk_socket()?);
        let raw = fd.as_raw_fd();
        // Holding the Arc keeps the registering socket (and its fd number) alive until bound.
        let shared = umem.registered_by.as_ref().and_then(Weak::upgrade);
        if shared.is_none() {
            let (area, len) = umem.area();
            let reg = XdpUmemReg {
                addr: area.as_ptr() as u64,
                len: len as u64,
                chunk_size: CHUNK_SIZE,
                headroom: 0,
                flags: 0,
                tx_metadata_len: 0,
            };
            sys::setsockopt(raw, sys::XDP_UMEM_REG, &reg)?;
        }
        sys::setsockopt(raw, sys::XDP_UMEM_FILL_RING, &p.fill_size)?;
        sys::setsockopt(raw, sys::XDP_UMEM_COMPLETION_RING, &p.comp_size)?;
        sys::setsockopt(raw, sys::XDP_RX_RING, &p.rx_size)?;
        sys::setsockopt(raw, sys::XDP_TX_RING, &p.tx_size)?;
        let (off, got) = sys::getsockopt::<XdpMmapOffsets>(raw, sys::XDP_MMAP_OFFSETS)?;
        if got != std::mem::size_of::<XdpMmapOffsets>() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "old XDP_MMAP_OFFSETS layout (kernel < 5.4)",
            ));
        }
        let desc = std::mem::size_of::<XdpDesc>();
        let map = |o: u64, n: u32, entry: usize, pgoff| {
            Mmap::map_fd(&fd, o as usize + n as usize * entry, pgoff).map(Arc::new)
        };
        let rx_map = map(off.rx.desc, p.rx_size, desc, sys::XDP_PGOFF_RX_RING)?;
        let tx_map = map(off.tx.desc, p.tx_size, desc, sys::XDP_PGOFF_TX_RING)?;
        let fill_map = map(off.fr.desc, p.fill_size, 8, sys::XDP_UMEM_PGOFF_FILL_RING)?;
        let comp_map = map(off.cr.desc, p.comp_size, 8, sys::XDP_UMEM_PGOFF_COMPLETION_RING)?;
        let rx = Consumer::new(rx_map, &off.rx, p.rx_size)?;
        let tx = Producer::new(tx_map, &off.tx, p.tx_size)?;
        let fill = Producer::new(fill_map, &off.fr, p.fill_size)?;
        let comp = Consumer::new(comp_map, &off.cr, p.comp_size)?;

        let mut addr = SockaddrXdp {
            sxdp_family: sys::AF_XDP as u16,
            sxdp_flags: 0,
            sxdp_ifindex: p.ifindex,
            sxdp_queue_id: p.qid,
            sxdp_shared_umem_fd: 0,
        };
        match &shared {
            Some(owner) => {
                addr.sxdp_flags = sys::XDP_SHARED_UMEM;
                addr.sxdp_shared_umem_fd = owner.as_raw_fd() as u32;
            }
            None => {
                addr.sxdp_flags =
                    sys::XDP_USE_NEED_WAKEUP | if p.zerocopy { sys::XDP_ZEROCOPY } else { sys::XDP_COPY };
            }
        }
        sys::bind(raw, &addr)?;
        if shared.is_none() {
            umem.registered_by = Some(Arc::downgrade(&fd));
        }
        Ok(XskSocket { rx, tx, fill, comp, registered: shared.is_none(), fd })
    }

    /// The socket's fd.
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Whether the kernel bound this socket in zero-copy mode (`XDP_OPTIONS`).
    pub fn is_zerocopy(&self) -> bool {
        sys::getsockopt::<u32>(self.fd(), XDP_OPTIONS)
            .map(|(f, _)| f & XDP_OPTIONS_ZEROCOPY != 0)
            .unwrap_or(false)
    }

    /// Sets `XDP_MAX_TX_SKB_BUDGET`; `Ok(false)` when the kernel doesn't know the option.
    pub fn set_tx_skb_budget(&self, budget: u32) -> io::Result<bool> {
        match sys::setsockopt(self.fd(), sys::XDP_MAX_TX_SKB_BUDGET, &budget) {
            Ok(()) => Ok(true),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOPROTOOPT | libc::EINVAL)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The kernel's `XDP_STATISTICS` for this socket.
    pub fn statistics(&self) -> io::Result<XdpStatistics> {
        sys::getsockopt::<XdpStatistics>(self.fd(), sys::XDP_STATISTICS).map(|(s, _)| s)
    }
}
