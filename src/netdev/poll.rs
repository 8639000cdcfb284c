//! Sleeping until a port has something to receive: a safe wrapper over `poll(2)`.

use std::io;
use std::os::fd::RawFd;

/// Waits until one of `fds` is readable or `timeout_ms` passes. Returns whether any fd is
/// readable. `EINTR` counts as a timeout (the caller re-checks its stop flag).
pub fn wait_readable(fds: &[RawFd], timeout_ms: i32) -> io::Result<bool> {
    let mut pfds: [libc::pollfd; 64] = [libc::pollfd { fd: -1, events: 0, revents: 0 }; 64];
    let n = fds.len().min(pfds.len());
    for (p, &fd) in pfds.iter_mut().zip(&fds[..n]) {
        p.fd = fd;
        p.events = libc::POLLIN;
    }
    // SAFETY: `pfds[..n]` is a valid, initialized array of `n` pollfd structs that lives for
    // the whole call; poll only writes their `revents` fields.
    let r = unsafe { libc::poll(pfds.as_mut_ptr(), n as libc::nfds_t, timeout_ms) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted { Ok(false) } else { Err(e) };
    }
    Ok(r > 0)
}
