//! The AF_XDP kernel ABI (`include/uapi/linux/if_xdp.h`) and thin syscall wrappers.
//!
//! Structs are `#[repr(C)]` with a `bytemuck` POD derive (no hand-written `unsafe impl`).
//! Every wrapper returns `io::Result` with the OS error; nothing here keeps state.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;

use bytemuck::{Pod, Zeroable};

/// `AF_XDP` address family (`linux/socket.h`).
pub const AF_XDP: libc::c_int = 44;
/// `SOL_XDP` socket option level (`linux/socket.h`).
pub const SOL_XDP: libc::c_int = 283;

// Socket options (`if_xdp.h`, "XDP socket options").
pub const XDP_MMAP_OFFSETS: libc::c_int = 1;
pub const XDP_RX_RING: libc::c_int = 2;
pub const XDP_TX_RING: libc::c_int = 3;
pub const XDP_UMEM_REG: libc::c_int = 4;
pub const XDP_UMEM_FILL_RING: libc::c_int = 5;
pub const XDP_UMEM_COMPLETION_RING: libc::c_int = 6;
pub const XDP_STATISTICS: libc::c_int = 7;
/// Kernel ≥ 6.17: how many frames one copy-mode `sendto()` may turn into skbs (default 32).
pub const XDP_MAX_TX_SKB_BUDGET: libc::c_int = 9;

// `sockaddr_xdp.sxdp_flags` (`if_xdp.h`).
pub const XDP_SHARED_UMEM: u16 = 1 << 0;
pub const XDP_COPY: u16 = 1 << 1;
pub const XDP_ZEROCOPY: u16 = 1 << 2;
pub const XDP_USE_NEED_WAKEUP: u16 = 1 << 3;

/// Ring flag: the kernel wants a syscall to make progress on this ring.
pub const XDP_RING_NEED_WAKEUP: u32 = 1 << 0;

// mmap page offsets of the four rings (`if_xdp.h`, "Pgoff for mmaping the rings").
pub const XDP_PGOFF_RX_RING: libc::off_t = 0;
pub const XDP_PGOFF_TX_RING: libc::off_t = 0x8000_0000;
pub const XDP_UMEM_PGOFF_FILL_RING: libc::off_t = 0x1_0000_0000;
pub const XDP_UMEM_PGOFF_COMPLETION_RING: libc::off_t = 0x1_8000_0000;

/// `struct xdp_ring_offset`: where producer, consumer, descriptors and flags sit in a ring
/// mapping.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct XdpRingOffset {
    pub producer: u64,
    pub consumer: u64,
    pub desc: u64,
    pub flags: u64,
}

/// `struct xdp_mmap_offsets` (answer to `getsockopt(XDP_MMAP_OFFSETS)`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct XdpMmapOffsets {
    pub rx: XdpRingOffset,
    pub tx: XdpRingOffset,
    pub fr: XdpRingOffset,
    pub cr: XdpRingOffset,
}

/// `struct xdp_umem_reg` (current layout, with `tx_metadata_len`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct XdpUmemReg {
    pub addr: u64,
    pub len: u64,
    pub chunk_size: u32,
    pub headroom: u32,
    pub flags: u32,
    pub tx_metadata_len: u32,
}

/// `struct sockaddr_xdp`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct SockaddrXdp {
    pub sxdp_family: u16,
    pub sxdp_flags: u16,
    pub sxdp_ifindex: u32,
    pub sxdp_queue_id: u32,
    pub sxdp_shared_umem_fd: u32,
}

/// `struct xdp_desc`: one RX or TX ring entry.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct XdpDesc {
    pub addr: u64,
    pub len: u32,
    pub options: u32,
}

/// `struct xdp_statistics` (answer to `getsockopt(XDP_STATISTICS)`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct XdpStatistics {
    pub rx_dropped: u64,
    pub rx_invalid_descs: u64,
    pub tx_invalid_descs: u64,
    pub rx_ring_full: u64,
    pub rx_fill_ring_empty_descs: u64,
    pub tx_ring_empty_descs: u64,
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// `socket(AF_XDP, SOCK_RAW | SOCK_CLOEXEC, 0)`.
pub fn xsk_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with constant arguments; the result is checked.
    let fd = check(unsafe { libc::socket(AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: `fd` was just returned by socket() and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `setsockopt(fd, SOL_XDP, opt, &val, sizeof val)` for a POD value.
pub fn setsockopt<T: Pod>(fd: RawFd, opt: libc::c_int, val: &T) -> io::Result<()> {
    let bytes = bytemuck::bytes_of(val);
    // SAFETY: `bytes` is a live, initialized buffer of exactly the length passed.
    check(unsafe {
        libc::setsockopt(fd, SOL_XDP, opt, bytes.as_ptr().cast(), bytes.len() as libc::socklen_t)
    })?;
    Ok(())
}

/// `getsockopt(fd, SOL_XDP, opt)` into a POD value; returns the value and the length the
/// kernel wrote.
pub fn getsockopt<T: Pod>(fd: RawFd, opt: libc::c_int) -> io::Result<(T, usize)> {
    let mut val = T::zeroed();
    let bytes = bytemuck::bytes_of_mut(&mut val);
    let mut len = bytes.len() as libc::socklen_t;
    // SAFETY: `bytes` is a writable buffer of `len` bytes; the kernel writes at most `len`.
    check(unsafe { libc::getsockopt(fd, SOL_XDP, opt, bytes.as_mut_ptr().cast(), &mut len) })?;
    Ok((val, len as usize))
}

/// `bind(fd, sockaddr_xdp)`.
pub fn bind(fd: RawFd, addr: &SockaddrXdp) -> io::Result<()> {
    let bytes = bytemuck::bytes_of(addr);
    // SAFETY: `bytes` is a live `sockaddr_xdp` of the length passed.
    check(unsafe { libc::bind(fd, bytes.as_ptr().cast(), bytes.len() as libc::socklen_t) })?;
    Ok(())
}

/// `sendto(fd, NULL, 0, MSG_DONTWAIT, NULL, 0)`: the TX kick.
pub fn kick_tx(fd: RawFd) -> io::Result<()> {
    // SAFETY: a zero-length send with null buffers; the kernel reads nothing from them.
    check(unsafe { libc::sendto(fd, std::ptr::null(), 0, libc::MSG_DONTWAIT, std::ptr::null(), 0) }
        as libc::c_int)?;
    Ok(())
}

/// `recvfrom(fd, NULL, 0, MSG_DONTWAIT, NULL, NULL)`: the RX/fill wakeup.
pub fn kick_rx(fd: RawFd) -> io::Result<()> {
    // SAFETY: a zero-length receive with null buffers; the kernel writes nothing to them.
    let ret = unsafe {
        libc::recvfrom(
            fd,
            std::ptr::null_mut(),
            0,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
    check(ret as libc::c_int)?;
    Ok(())
}

/// `if_nametoindex`; `None` when there is no such interface.
pub fn if_nametoindex(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (idx != 0).then_some(idx)
}

/// Sleeps in `poll()` until one of `fds` is readable or `timeout_ms` passes; returns how many
/// are ready (0 on timeout; `EINTR` counts as a timeout).
pub fn poll_readable(fds: &[RawFd], timeout_ms: i32) -> io::Result<usize> {
    let mut pfds: Vec<libc::pollfd> =
        fds.iter().map(|&fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 }).collect();
    // SAFETY: `pfds` is a live, writable array of exactly the length passed.
    let ret = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout_ms) };
    match check(ret) {
        Ok(n) => Ok(n as usize),
        Err(e) if e.raw_os_error() == Some(libc::EINTR) => Ok(0),
        Err(e) => Err(e),
    }
}

/// A shared mapping (of a ring, or anonymous memory for tests), unmapped on drop.
#[derive(Debug)]
pub struct Mmap {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; which threads may touch which
// bytes is decided by the ring protocol on top (each ring is used by one owner thread).
unsafe impl Send for Mmap {}
// SAFETY: `&Mmap` only exposes the address and length; every access to the bytes goes
// through the ring protocol (atomics for indices, ownership hand-over for slots).
unsafe impl Sync for Mmap {}

impl Mmap {
    /// Maps `len` bytes of `fd` at page offset `offset`, shared and populated.
    pub fn map_fd(fd: &OwnedFd, len: usize, offset: libc::off_t) -> io::Result<Mmap> {
        Self::map(fd.as_raw_fd(), len, offset, libc::MAP_SHARED | libc::MAP_POPULATE)
    }

    /// Maps `len` bytes of anonymous zeroed shared memory (ring tests with no kernel).
    pub fn anonymous(len: usize) -> io::Result<Mmap> {
        Self::map(-1, len, 0, libc::MAP_SHARED | libc::MAP_ANONYMOUS)
    }

    fn map(fd: RawFd, len: usize, offset: libc::off_t, flags: libc::c_int) -> io::Result<Mmap> {
        // SAFETY: no address hint, so the kernel picks fresh pages and nothing existing is
        // replaced; the result is checked against MAP_FAILED.
        let p = unsafe {
            libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, flags, fd, offset)
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(Mmap { ptr, len })
    }

    /// Start of the mapping.
    pub fn ptr(&self) -> NonNull<u8> {
        self.ptr
    }
    /// Length of the mapping in bytes.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether the mapping is empty (never, for a successful map).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` describe a mapping made by `Mmap::map` and unmapped only here;
        // the rings built on it are dropped together with (and before use after) this value.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abi_sizes() {
        assert_eq!(std::mem::size_of::<XdpRingOffset>(), 32);
        assert_eq!(std::mem::size_of::<XdpMmapOffsets>(), 128);
        assert_eq!(std::mem::size_of::<XdpUmemReg>(), 32);
        assert_eq!(std::mem::size_of::<SockaddrXdp>(), 16);
        assert_eq!(std::mem::size_of::<XdpDesc>(), 16);
        assert_eq!(std::mem::size_of::<XdpStatistics>(), 48);
    }
}

/// `BPF_PROG_TEST_RUN` (alias `BPF_PROG_RUN`) command number.
const BPF_PROG_TEST_RUN: libc::c_long = 10;
/// `BPF_F_TEST_XDP_LIVE_FRAMES`: transmit/redirect the frames for real (kernel ≥ 5.18).
pub const BPF_F_TEST_XDP_LIVE_FRAMES: u32 = 1 << 1;

/// The `test` member of `union bpf_attr` (`/usr/include/linux/bpf.h`).
#[repr(C, align(8))]
#[derive(Default)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    /// Explicit tail padding: the kernel rejects non-zero bytes past `batch_size`.
    _pad: u32,
}

/// `struct xdp_md` as a test-run context.
#[repr(C)]
#[derive(Default)]
struct XdpMd {
    data: u32,
    data_end: u32,
    data_meta: u32,
    ingress_ifindex: u32,
    rx_queue_index: u32,
    egress_ifindex: u32,
}

/// `BPF_PROG_TEST_RUN` of XDP program `prog_fd` over `frame`, as if received on `ifindex`
/// queue 0, `repeat` times (`flags`/`batch`: live-frames mode). With `out`, the frame as the
/// program left it is copied there (not in live mode). Returns the last verdict and the
/// output length.
pub fn xdp_test_run(
    prog_fd: RawFd,
    frame: &[u8],
    ifindex: u32,
    repeat: u32,
    flags: u32,
    batch: u32,
    out: Option<&mut [u8]>,
) -> io::Result<(u32, usize)> {
    let ctx = XdpMd { data_end: frame.len() as u32, ingress_ifindex: ifindex, ..Default::default() };
    let (out_ptr, out_len) = out.map_or((0, 0), |o| (o.as_mut_ptr() as u64, o.len() as u32));
    let mut attr = TestRunAttr {
        prog_fd: prog_fd as u32,
        data_size_in: frame.len() as u32,
        data_in: frame.as_ptr() as u64,
        data_size_out: out_len,
        data_out: out_ptr,
        repeat,
        ctx_size_in: std::mem::size_of::<XdpMd>() as u32,
        ctx_in: &ctx as *const XdpMd as u64,
        flags,
        batch_size: batch,
        ..Default::default()
    };
    // SAFETY: `attr` is a valid `bpf_attr.test` of the size we pass; `data_in`/`ctx_in` point
    // to `frame` and `ctx`, `data_out` (if set) to `out` with its length, all alive for the
    // whole call; the kernel writes only `retval`, `data_size_out`, `duration` and `out`.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_TEST_RUN,
            &mut attr as *mut TestRunAttr,
            std::mem::size_of::<TestRunAttr>() as libc::c_uint,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((attr.retval, attr.data_size_out as usize))
}
