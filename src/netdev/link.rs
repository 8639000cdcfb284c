//! Link state of kernel interfaces (admin flag, carrier, MTU, speed) from sysfs, and setting
//! the admin flag (`ip link set up/down`) with `SIOCSIFFLAGS`.
//!
//! Reads go to `/sys/class/net/NAME/{flags,carrier,operstate,mtu,speed}`: cheap, no socket,
//! meant for the control thread (port-desc and port-status), never a poll thread.
//! `unsafe`: the `ioctl` calls, on a `struct ifreq` laid out here.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Link state of a port, as OpenFlow's port description needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LinkState {
    /// The administrative flag (`IFF_UP`; cleared by `OFPPC_PORT_DOWN`).
    pub admin_up: bool,
    /// Carrier present and operationally up (`OFPPS_LIVE`; its absence is `OFPPS_LINK_DOWN`).
    pub live: bool,
    pub mtu: u32,
    /// Current speed in kbit/s; 0 when unknown.
    pub speed_kbps: u32,
}

impl Default for LinkState {
    /// An always-up port without a kernel interface (in-memory ports).
    fn default() -> Self {
        LinkState { admin_up: true, live: true, mtu: 1500, speed_kbps: 0 }
    }
}

/// `IFNAMSIZ`: interface names are at most 15 bytes plus the NUL.
pub(crate) const IFNAMSIZ: usize = 16;

/// `struct ifreq` with its union seen as `short ifr_flags` (40 bytes on Linux).
#[repr(C)]
pub(crate) struct IfReqFlags {
    pub name: [u8; IFNAMSIZ],
    pub flags: libc::c_short,
    _pad: [u8; 22],
}

const _: () = assert!(std::mem::size_of::<IfReqFlags>() == 40);

impl IfReqFlags {
    /// An `ifreq` naming `name`; `InvalidInput` for a name the kernel can't hold.
    pub(crate) fn new(name: &str, flags: libc::c_short) -> io::Result<IfReqFlags> {
        if name.is_empty() || name.len() >= IFNAMSIZ || name.bytes().any(|b| b == 0 || b == b'/') {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("bad interface name {name:?}")));
        }
        let mut r = IfReqFlags { name: [0; IFNAMSIZ], flags, _pad: [0; 22] };
        r.name[..name.len()].copy_from_slice(name.as_bytes());
        Ok(r)
    }
}

fn sysfs(name: &str, attr: &str) -> io::Result<String> {
    std::fs::read_to_string(format!("/sys/class/net/{name}/{attr}")).map(|s| s.trim().to_string())
}

/// Reads the link state of interface `name`. `NotFound` when there is no such interface.
pub fn link_state(name: &str) -> io::Result<LinkState> {
    let flags = sysfs(name, "flags")?;
    let flags = u32::from_str_radix(flags.trim_start_matches("0x"), 16)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("flags {flags:?}: {e}")))?;
    let admin_up = flags & libc::IFF_UP as u32 != 0;
    // `carrier` reads fail (EINVAL) while the interface is down: no carrier then.
    let carrier = sysfs(name, "carrier").is_ok_and(|c| c == "1");
    // "unknown" is what drivers without operstate reporting (tun/tap, loopback) show when up.
    let oper_up = sysfs(name, "operstate").is_ok_and(|o| o == "up" || o == "unknown");
    let mtu = sysfs(name, "mtu").ok().and_then(|m| m.parse().ok()).unwrap_or(0);
    // Mbit/s; -1 or unreadable when unknown (virtual devices, link down).
    let speed_kbps = sysfs(name, "speed")
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .filter(|s| *s > 0)
        .map_or(0, |mbps| u32::try_from(mbps * 1000).unwrap_or(u32::MAX));
    Ok(LinkState { admin_up, live: admin_up && carrier && oper_up, mtu, speed_kbps })
}

/// Sets or clears `IFF_UP` on interface `name` (`ip link set NAME up|down`).
pub fn set_admin_up(name: &str, up: bool) -> io::Result<()> {
    let mut req = IfReqFlags::new(name, 0)?;
    // SAFETY: plain socket(2) call; the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor we own; `OwnedFd` closes it once.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: SIOCGIFFLAGS reads the NUL-terminated name and writes `ifr_flags` of a 40-byte
    // `ifreq`; `req` is one, live and writable for the whole call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let was = req.flags;
    let up_flag = libc::IFF_UP as libc::c_short;
    req.flags = if up { was | up_flag } else { was & !up_flag };
    if req.flags == was {
        return Ok(());
    }
    // SAFETY: as above; SIOCSIFFLAGS only reads the `ifreq`.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `struct ifreq` with its union seen as `struct sockaddr ifr_hwaddr`.
#[repr(C)]
struct IfReqHwAddr {
    name: [u8; IFNAMSIZ],
    family: libc::sa_family_t,
    data: [u8; 14],
    _pad: [u8; 8],
}

const _: () = assert!(std::mem::size_of::<IfReqHwAddr>() == 40);

/// Sets the Ethernet address of interface `name` (`ip link set NAME address MAC`).
pub fn set_hw_addr(name: &str, mac: [u8; 6]) -> io::Result<()> {
    let named = IfReqFlags::new(name, 0)?;
    let mut req = IfReqHwAddr { name: named.name, family: libc::ARPHRD_ETHER, data: [0; 14], _pad: [0; 8] };
    req.data[..6].copy_from_slice(&mac);
    // SAFETY: plain socket(2) call; the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor we own; `OwnedFd` closes it once.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: SIOCSIFHWADDR reads a 40-byte `ifreq` holding the name and a `sockaddr`; `req`
    // is one and lives for the whole call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFHWADDR, &req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_up_and_live() {
        let s = link_state("lo").unwrap();
        assert!(s.admin_up && s.live, "{s:?}");
        assert!(s.mtu >= 1500);
        assert_eq!(s.speed_kbps, 0);
        assert_eq!(link_state("no-such-if0").unwrap_err().kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn bad_names_are_refused() {
        for n in ["", "0123456789abcdef", "a/b", "a\0b"] {
            assert_eq!(IfReqFlags::new(n, 0).err().map(|e| e.kind()), Some(io::ErrorKind::InvalidInput));
        }
        let r = IfReqFlags::new("br0", 7).unwrap();
        assert_eq!((&r.name[..4], r.flags), (&b"br0\0"[..], 7));
        assert!(set_admin_up("", true).is_err());
    }
}
