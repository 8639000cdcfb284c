//! Sleeping until a port has something to receive: a safe wrapper over `poll(2)`, and a
//! [`Waker`] (an eventfd) another thread uses to cut such a sleep short.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// An eventfd a sleeping poll thread waits on next to its ports, so the control thread can
/// wake it for work that arrives on no port (execute requests, packet-outs).
#[derive(Debug)]
pub struct Waker {
    file: File,
}

impl Waker {
    /// A non-blocking eventfd.
    pub fn new() -> io::Result<Waker> {
        // SAFETY: plain eventfd(2) call with valid flags; the result is checked before use.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor nobody else owns; `OwnedFd` closes it once.
        Ok(Waker { file: File::from(unsafe { OwnedFd::from_raw_fd(fd) }) })
    }
    /// Makes the fd readable (wakes a `wait_readable` on it).
    pub fn wake(&self) {
        // Only fails when the counter would overflow, and then it is readable anyway.
        let _ = (&self.file).write(&1u64.to_ne_bytes());
    }
    /// Makes the fd unreadable again (after waking up).
    pub fn reset(&self) {
        let mut b = [0u8; 8];
        let _ = (&self.file).read(&mut b);
    }
    /// The fd to wait on.
    pub fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waker_wakes_and_resets() {
        let w = Waker::new().unwrap();
        assert!(!wait_readable(&[w.fd()], 0).unwrap());
        w.wake();
        w.wake();
        assert!(wait_readable(&[w.fd()], 1000).unwrap());
        w.reset();
        assert!(!wait_readable(&[w.fd()], 0).unwrap());
        let w = std::sync::Arc::new(w);
        let w2 = w.clone();
        let t = std::thread::spawn(move || wait_readable(&[w2.fd()], 10_000).unwrap());
        std::thread::sleep(std::time::Duration::from_millis(20));
        w.wake();
        assert!(t.join().unwrap());
    }
}
