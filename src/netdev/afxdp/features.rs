//! A device's XDP features (`NETDEV_CMD_DEV_GET` of the generic netlink family `netdev`,
//! kernel ≥ 6.3): above all `NDO_XMIT`, whether frames may be redirected *to* the device now.
//! For veth that flag follows the peer: it is set while the peer runs an XDP program or has
//! GRO on, and frames redirected to a veth without it are dropped by the kernel.
//!
//! Hand-written on `libc`: two request/response exchanges with fixed-layout attributes; the
//! netlink crates would bring a framework for what is sixty lines here.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `NETDEV_XDP_ACT_*` (`include/uapi/linux/netdev.h`).
pub const XDP_ACT_BASIC: u64 = 1;
pub const XDP_ACT_REDIRECT: u64 = 2;
pub const XDP_ACT_NDO_XMIT: u64 = 4;

const NETLINK_GENERIC: libc::c_int = 16;
const GENL_ID_CTRL: u16 = 0x10;
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;
const NETDEV_CMD_DEV_GET: u8 = 1;
const NETDEV_A_DEV_IFINDEX: u16 = 1;
const NETDEV_A_DEV_XDP_FEATURES: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLA_TYPE_MASK: u16 = 0x3fff;

/// A generic netlink socket bound to the `netdev` family.
#[derive(Debug)]
pub struct XdpFeatures {
    fd: OwnedFd,
    family: u16,
    seq: u32,
}

fn attr(buf: &mut Vec<u8>, ty: u16, payload: &[u8]) {
    let len = 4 + payload.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(payload);
    buf.resize(buf.len().next_multiple_of(4), 0);
}

/// (type, payload) of each attribute in `b`; stops at the first malformed one.
fn attrs(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if b.len() < 4 {
            return None;
        }
        let len = usize::from(u16::from_ne_bytes([b[0], b[1]]));
        let ty = u16::from_ne_bytes([b[2], b[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > b.len() {
            return None;
        }
        let payload = &b[4..len];
        b = &b[len.next_multiple_of(4).min(b.len())..];
        Some((ty, payload))
    })
}

impl XdpFeatures {
    /// Opens the socket and resolves the family. Fails on kernels without it (< 6.3).
    pub fn open() -> io::Result<XdpFeatures> {
        // SAFETY: plain socket(2) call; the fd is owned right below.
        let fd =
            unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, NETLINK_GENERIC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let tv = libc::timeval { tv_sec: 1, tv_usec: 0 };
        // SAFETY: `tv` is a valid timeval for the duration of the call.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        let mut s = XdpFeatures { fd, family: 0, seq: 0 };
        let mut a = Vec::new();
        attr(&mut a, CTRL_ATTR_FAMILY_NAME, b"netdev\0");
        let reply = s.request(GENL_ID_CTRL, CTRL_CMD_GETFAMILY, &a)?;
        s.family = attrs(&reply)
            .find(|(t, p)| *t == CTRL_ATTR_FAMILY_ID && p.len() >= 2)
            .map(|(_, p)| u16::from_ne_bytes([p[0], p[1]]))
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no netdev netlink family"))?;
        Ok(s)
    }

    /// The `NETDEV_XDP_ACT_*` flags of interface `ifindex`.
    pub fn get(&mut self, ifindex: u32) -> io::Result<u64> {
        let mut a = Vec::new();
        attr(&mut a, NETDEV_A_DEV_IFINDEX, &ifindex.to_ne_bytes());
        let reply = self.request(self.family, NETDEV_CMD_DEV_GET, &a)?;
        let flags = attrs(&reply)
            .find(|(t, p)| *t == NETDEV_A_DEV_XDP_FEATURES && p.len() >= 8)
            .map(|(_, p)| u64::from_ne_bytes(p[..8].try_into().unwrap_or_default()));
        flags.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no xdp-features in reply"))
    }

    /// Sends one request and returns the attributes of its answer (after the genl header).
    fn request(&mut self, ty: u16, cmd: u8, attrs_buf: &[u8]) -> io::Result<Vec<u8>> {
        self.seq = self.seq.wrapping_add(1);
        let len = 16 + 4 + attrs_buf.len();
        let mut m = Vec::with_capacity(len);
        m.extend_from_slice(&(len as u32).to_ne_bytes());
        m.extend_from_slice(&ty.to_ne_bytes());
        m.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
        m.extend_from_slice(&self.seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(&[cmd, 1, 0, 0]);
        m.extend_from_slice(attrs_buf);
        // SAFETY: `m` is valid for `m.len()` bytes; the kernel is the default destination.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), m.as_ptr().cast(), m.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buf = vec![0u8; 8192];
        loop {
            // SAFETY: `buf` is valid for writes of `buf.len()` bytes.
            let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let b = &buf[..n as usize];
            if b.len() < 16 {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "short netlink reply"));
            }
            let mlen = (u32::from_ne_bytes(b[0..4].try_into().unwrap_or_default()) as usize).min(b.len());
            let mty = u16::from_ne_bytes([b[4], b[5]]);
            let seq = u32::from_ne_bytes(b[8..12].try_into().unwrap_or_default());
            if seq != self.seq {
                continue; // a late answer to an earlier request that timed out
            }
            if mty == NLMSG_ERROR {
                let errno = if b.len() >= 20 {
                    i32::from_ne_bytes(b[16..20].try_into().unwrap_or_default())
                } else {
                    0
                };
                return Err(io::Error::from_raw_os_error(-errno));
            }
            if mlen < 20 {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "short generic netlink reply"));
            }
            return Ok(b[20..mlen].to_vec());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attrs_roundtrip_and_malformed() {
        let mut b = Vec::new();
        attr(&mut b, 1, &7u32.to_ne_bytes());
        attr(&mut b, 2, b"netdev\0");
        let v: Vec<_> = attrs(&b).collect();
        assert_eq!(v, vec![(1, &7u32.to_ne_bytes()[..]), (2, &b"netdev\0"[..])]);
        // A length beyond the buffer ends the walk instead of reading past it.
        let mut bad = b.clone();
        bad[0] = 200;
        assert_eq!(attrs(&bad).count(), 0);
        assert_eq!(attrs(&b[..3]).count(), 0);
    }

    #[test]
    fn loopback_features() {
        // Needs a kernel with the netdev family (6.3+); this machine's is 6.18.
        let Ok(mut f) = XdpFeatures::open() else { return };
        // `lo` has no XDP driver support: no NDO_XMIT.
        let flags = f.get(1).unwrap();
        assert_eq!(flags & XDP_ACT_NDO_XMIT, 0);
        assert!(f.get(0x7fff_fff0).is_err(), "an unknown ifindex is an error");
    }
}
