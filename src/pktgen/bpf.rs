//! Raw syscall wrappers pktgen needs that aya does not offer: `BPF_PROG_RUN` in XDP
//! live-frames mode (on `netdev::afxdp::sys::xdp_test_run`), CPU pinning, and interface lookups (index, MTU, MAC) in the calling
//! thread's network namespace. All of pktgen's `unsafe` is here.

use std::ffi::CString;
use std::io;
use std::os::fd::RawFd;

/// `BPF_F_TEST_XDP_LIVE_FRAMES`: transmit/redirect the frames for real (kernel ≥ 5.18).
pub use crate::netdev::afxdp::sys::BPF_F_TEST_XDP_LIVE_FRAMES;
/// Largest `batch_size` the kernel accepts in live-frames mode (`TEST_XDP_MAX_BATCH`).
pub const MAX_BATCH: u32 = 256;

/// Runs XDP program `prog_fd` `repeat` times over copies of `frame` in live-frames mode,
/// as if received on `ifindex` queue 0 (so `XDP_TX` sends out of `ifindex`), with up to
/// `batch` frames in flight. Returns once all `repeat` frames went through the program;
/// fails with `EINTR` if a signal arrived first.
pub fn xdp_live_run(prog_fd: RawFd, frame: &[u8], ifindex: u32, repeat: u32, batch: u32) -> io::Result<()> {
    crate::netdev::afxdp::sys::xdp_test_run(
        prog_fd,
        frame,
        ifindex,
        repeat,
        BPF_F_TEST_XDP_LIVE_FRAMES,
        batch,
        None,
    )
    .map(|_| ())
}

/// Pins the calling thread to `cpu`.
pub fn pin_to_cpu(cpu: usize) -> io::Result<()> {
    // SAFETY: `cpu_set_t` is plain data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: `cpu` is below CPU_SETSIZE (checked above), so CPU_SET stays inside `set`.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t of the size passed; pid 0 is the calling thread.
    let r = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The CPUs this thread may run on.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    // SAFETY: `cpu_set_t` is plain data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a writable cpu_set_t of the size passed; pid 0 is the calling thread.
    let r = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: every index is below CPU_SETSIZE, so CPU_ISSET reads inside `set`.
    Ok((0..libc::CPU_SETSIZE as usize).filter(|&c| unsafe { libc::CPU_ISSET(c, &set) }).collect())
}

/// What pktgen needs to know about an interface.
#[derive(Clone, Debug)]
pub struct Interface {
    /// Interface index (in the calling thread's network namespace).
    pub ifindex: u32,
    /// MTU.
    pub mtu: u32,
    /// Hardware address.
    pub mac: [u8; 6],
}

/// Looks `name` up in the calling thread's network namespace (`None` if it doesn't exist).
pub fn interface(name: &str) -> io::Result<Option<Interface>> {
    let Ok(cname) = CString::new(name) else { return Ok(None) };
    if name.len() >= libc::IFNAMSIZ {
        return Ok(None);
    }
    // SAFETY: `cname` is a NUL-terminated string that outlives the call.
    let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    if ifindex == 0 {
        return Ok(None);
    }
    // SAFETY: plain socket(2) call; we own and close the returned fd.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let result = ifreq_queries(fd, name);
    // SAFETY: `fd` is the socket opened above, closed exactly once.
    unsafe { libc::close(fd) };
    let (mtu, mac) = result?;
    Ok(Some(Interface { ifindex, mtu, mac }))
}

fn ifreq_queries(fd: RawFd, name: &str) -> io::Result<(u32, [u8; 6])> {
    // SAFETY: `ifreq` is plain data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    // SAFETY: `req` is a valid ifreq naming the interface (NUL-terminated: name is shorter
    // than IFNAMSIZ and the rest is zero); SIOCGIFMTU writes `ifru_mtu` inside it.
    if unsafe { libc::ioctl(fd, libc::SIOCGIFMTU, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFMTU filled the `ifru_mtu` member of the union.
    let mtu = unsafe { req.ifr_ifru.ifru_mtu } as u32;
    // SAFETY: as above; SIOCGIFHWADDR writes `ifru_hwaddr` inside `req`.
    if unsafe { libc::ioctl(fd, libc::SIOCGIFHWADDR, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFHWADDR filled the `ifru_hwaddr` member of the union.
    let sa = unsafe { req.ifr_ifru.ifru_hwaddr };
    let mut mac = [0u8; 6];
    for (dst, src) in mac.iter_mut().zip(sa.sa_data.iter()) {
        *dst = *src as u8;
    }
    Ok((mtu, mac))
}

/// The signal [`kick_thread`] sends: it ends a running `BPF_PROG_RUN` with `EINTR`. The
/// caller installs a handler for it (the default action would end the process).
pub const KICK_SIGNAL: libc::c_int = libc::SIGUSR1;

/// The calling thread's pthread id, for [`kick_thread`].
pub fn current_thread() -> libc::pthread_t {
    // SAFETY: pthread_self has no preconditions.
    unsafe { libc::pthread_self() }
}

/// Sends [`KICK_SIGNAL`] to thread `tid` (from [`current_thread`]); the thread must not
/// have been joined yet (a finished but unjoined thread is fine: the signal is ignored).
pub fn kick_thread(tid: libc::pthread_t) {
    // SAFETY: the caller passes the id of a thread of this process that has not been
    // joined, so the id is valid; a handler for KICK_SIGNAL is installed.
    unsafe { libc::pthread_kill(tid, KICK_SIGNAL) };
}
