//! [`TapPort`]: a TAP device (`/dev/net/tun`, `IFF_TAP | IFF_NO_PI`), the bridge's LOCAL
//! port: frames the kernel sends out of the interface are received by the switch, and frames
//! the switch transmits arrive in the kernel's stack as if received on the interface.
//!
//! One queue (the device is not multi-queue). The file descriptor is non-blocking: receive
//! `read()`s one frame per call straight into a fresh UMEM frame, up to a batch, until
//! `EAGAIN`; transmit `write()`s each frame and frees it. An idle poll thread sleeps in
//! `poll()` on the descriptor ([`Wakeup::Fd`]). The device is not persistent: it disappears
//! when the port and its queue are dropped (the last descriptor closes).
//!
//! `unsafe`: the `TUNSETIFF` ioctl only; reads and writes go through `std::fs::File`.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use super::link::{self, IfReqFlags, LinkState};
use super::{Error, Frame, Port, PortStats, Queue, QueueStats, Umem, Wakeup};

/// A TAP interface created (or attached, if persistent) by name.
pub struct TapPort {
    name: String,
    file: Arc<File>,
    /// The Ethernet address in the low 48 bits.
    mac: AtomicU64,
    queues: Mutex<Vec<Arc<QueueStats>>>,
}

impl std::fmt::Debug for TapPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TapPort").field("name", &self.name).finish()
    }
}

fn sys_err<'a>(name: &'a str, op: &'static str) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| Error::Sys { name: name.to_string(), op, source }
}

fn read_mac(name: &str) -> [u8; 6] {
    let mut mac = [0u8; 6];
    if let Ok(s) = std::fs::read_to_string(format!("/sys/class/net/{name}/address")) {
        for (m, part) in mac.iter_mut().zip(s.trim().split(':')) {
            *m = u8::from_str_radix(part, 16).unwrap_or(0);
        }
    }
    mac
}

fn mac_to_u64(mac: [u8; 6]) -> u64 {
    mac.iter().fold(0, |v, b| v << 8 | u64::from(*b))
}

impl TapPort {
    /// Creates TAP interface `name` (administratively down, like any new interface; bring it
    /// up with [`Port::set_admin_up`]). Needs `CAP_NET_ADMIN`.
    pub fn open(name: &str) -> Result<TapPort, Error> {
        let flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
        let mut req = IfReqFlags::new(name, flags).map_err(sys_err(name, "TAP name"))?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open("/dev/net/tun")
            .map_err(sys_err(name, "open /dev/net/tun"))?;
        // SAFETY: TUNSETIFF reads and writes a 40-byte `struct ifreq` (name + flags); `req` is
        // one, live and writable for the whole call, and `file` is an open tun descriptor.
        if unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut req) } < 0 {
            return Err(sys_err(name, "TUNSETIFF")(io::Error::last_os_error()));
        }
        let mac = AtomicU64::new(mac_to_u64(read_mac(name)));
        Ok(TapPort { name: name.to_string(), file: Arc::new(file), mac, queues: Mutex::default() })
    }

    /// Sets the interface's Ethernet address (the kernel picks a random one at creation;
    /// a bridge usually gives its LOCAL port a stable one, its datapath id derives from it).
    pub fn set_mac(&self, mac: [u8; 6]) -> Result<(), Error> {
        link::set_hw_addr(&self.name, mac).map_err(sys_err(&self.name, "set Ethernet address"))?;
        self.mac.store(mac_to_u64(mac), Relaxed);
        Ok(())
    }
}

impl Port for TapPort {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "tap"
    }
    fn n_queues(&self) -> u32 {
        1
    }
    fn open_queue(&self, qid: u32, _umem: &mut Umem) -> Result<Box<dyn Queue>, Error> {
        if qid != 0 {
            return Err(Error::NoSuchQueue { name: self.name.clone(), qid, n_queues: 1 });
        }
        let stats = Arc::new(QueueStats::default());
        self.queues.lock().unwrap_or_else(|e| e.into_inner()).push(stats.clone());
        Ok(Box::new(TapQueue { file: self.file.clone(), stats }))
    }
    fn mac(&self) -> [u8; 6] {
        let v = self.mac.load(Relaxed).to_be_bytes();
        [v[2], v[3], v[4], v[5], v[6], v[7]]
    }
    fn stats(&self) -> PortStats {
        let mut s = PortStats::default();
        for q in self.queues.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            s.accumulate(q);
        }
        s
    }
    fn describe(&self) -> String {
        "tap".to_string()
    }
    fn link(&self) -> LinkState {
        link::link_state(&self.name).unwrap_or(LinkState {
            admin_up: false,
            live: false,
            mtu: 0,
            speed_kbps: 0,
        })
    }
    fn set_admin_up(&self, up: bool) -> Result<(), Error> {
        link::set_admin_up(&self.name, up).map_err(sys_err(&self.name, "set admin state"))
    }
}

/// The one queue of a [`TapPort`].
pub struct TapQueue {
    file: Arc<File>,
    stats: Arc<QueueStats>,
}

impl Queue for TapQueue {
    fn recv(&mut self, umem: &mut Umem, batch: &mut Vec<Frame>, max: usize) -> usize {
        let (mut n, mut bytes, mut errors) = (0, 0u64, 0u64);
        while n < max {
            let Some(mut frame) = umem.alloc() else { break };
            let room = umem.room_mut(&frame);
            let cap = room.len();
            match (&*self.file).read(room) {
                // A frame that filled the room may have been cut short: drop it.
                Ok(len) if len >= cap => {
                    errors += 1;
                    umem.free(frame);
                }
                Ok(0) => {
                    umem.free(frame);
                    break;
                }
                Ok(len) => {
                    frame.set_len(len);
                    bytes += len as u64;
                    batch.push(frame);
                    n += 1;
                }
                Err(e) => {
                    umem.free(frame);
                    if !matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) {
                        errors += 1;
                    }
                    break;
                }
            }
        }
        self.stats.rx_packets.add(n as u64);
        self.stats.rx_bytes.add(bytes);
        if errors > 0 {
            self.stats.rx_errors.add(errors);
        }
        n
    }

    fn send(&mut self, umem: &mut Umem, frames: &mut Vec<Frame>) -> usize {
        let (mut n, mut bytes, mut dropped, mut errors) = (0, 0u64, 0u64, 0u64);
        for f in frames.drain(..) {
            match (&*self.file).write(umem.data(&f)) {
                Ok(len) => {
                    n += 1;
                    bytes += len as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => dropped += 1,
                // EIO while the interface is down, EINVAL for a runt: the frame is lost.
                Err(_) => errors += 1,
            }
            umem.free(f);
        }
        self.stats.tx_packets.add(n as u64);
        self.stats.tx_bytes.add(bytes);
        if dropped > 0 {
            self.stats.tx_dropped.add(dropped);
        }
        if errors > 0 {
            self.stats.tx_errors.add(errors);
        }
        n
    }

    fn maintain(&mut self, _umem: &mut Umem) {}

    fn wakeup(&self) -> Wakeup {
        Wakeup::Fd(self.file.as_raw_fd())
    }

    fn release(&mut self, _umem: &mut Umem) {}

    fn stats(&self) -> &Arc<QueueStats> {
        &self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netdev::wait_readable;
    use crate::packet::build::{udp4, Udp4Spec};
    use std::net::UdpSocket;
    use std::time::{Duration, Instant};

    fn root() -> bool {
        if !crate::netns::is_root() {
            eprintln!("skipped: needs root");
            return false;
        }
        true
    }

    fn sh(args: &[&str]) {
        crate::netns::sh(args).unwrap();
    }

    #[test]
    fn bad_name_is_an_error() {
        assert!(matches!(TapPort::open("this-name-is-too-long"), Err(Error::Sys { .. })));
        assert!(matches!(TapPort::open(""), Err(Error::Sys { .. })));
    }

    /// Kernel → tap: the kernel ARPs for a neighbour out of the tap and we read the request.
    /// Tap → kernel: a UDP frame we write reaches a socket bound on the tap's address.
    #[test]
    fn frames_both_ways_and_gone_on_drop() {
        if !root() {
            return;
        }
        let id = std::process::id() % 200 + 20;
        let name = format!("xstap{id}");
        let (me, peer) = ([10, 213, id as u8, 1], [10, 213, id as u8, 2]);
        let port = TapPort::open(&name).unwrap();
        assert_eq!(port.n_queues(), 1);
        assert!(!port.link().admin_up);
        port.set_admin_up(true).unwrap();
        sh(&["sysctl", "-qw", &format!("net.ipv6.conf.{name}.disable_ipv6=1")]);
        sh(&["ip", "addr", "add", &format!("10.213.{id}.1/24"), "dev", &name]);
        let link = port.link();
        assert!(link.admin_up && link.live, "{link:?}");
        assert_eq!(link.mtu, 1500);
        assert_ne!(port.mac(), [0; 6]);
        assert_eq!(port.mac(), read_mac(&name));
        port.set_mac([0x02, 0x11, 0x22, 0x33, 0x44, id as u8]).unwrap();
        assert_eq!(port.mac(), [0x02, 0x11, 0x22, 0x33, 0x44, id as u8]);
        assert_eq!(read_mac(&name), port.mac());
        assert!(port.set_mac([0x01, 0, 0, 0, 0, 1]).is_err(), "a multicast address is refused");
        let mut umem = Umem::new(64).unwrap();
        let mut q = port.open_queue(0, &mut umem).unwrap();
        assert!(port.open_queue(1, &mut umem).is_err());
        let Wakeup::Fd(fd) = q.wakeup() else { panic!("a tap sleeps on its fd") };

        let sock = UdpSocket::bind((std::net::Ipv4Addr::from(me), 0)).unwrap();
        sock.send_to(b"hi", (std::net::Ipv4Addr::from(peer), 9)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut batch = Vec::new();
        let mut arp = None;
        while arp.is_none() && Instant::now() < deadline {
            wait_readable(&[fd], 100).unwrap();
            q.recv(&mut umem, &mut batch, 64);
            for f in batch.drain(..) {
                let d = umem.data(&f);
                if d.len() >= 42 && d[12..14] == [0x08, 0x06] && d[38..42] == peer {
                    arp = Some(d.to_vec());
                }
                umem.free(f);
            }
        }
        let arp = arp.expect("the kernel's ARP request for the peer came out of the tap");
        assert_eq!((&arp[0..6], &arp[6..12], &arp[28..32]), (&[0xff; 6][..], &port.mac()[..], &me[..]));
        assert!(port.stats().rx_packets >= 1);

        let rx = UdpSocket::bind((std::net::Ipv4Addr::from(me), 0)).unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let bytes = udp4(&Udp4Spec {
            src_mac: [2, 0, 0, 0, 0, 0x42],
            dst_mac: port.mac(),
            src_ip: peer,
            dst_ip: me,
            sport: 4444,
            dport: rx.local_addr().unwrap().port(),
            payload_len: 12,
            ..Default::default()
        });
        let mut out = vec![umem.frame_from(&bytes).unwrap()];
        assert_eq!(q.send(&mut umem, &mut out), 1);
        let mut buf = [0u8; 64];
        let (len, from) = rx.recv_from(&mut buf).expect("the frame we wrote reached the socket");
        assert_eq!((len, from.port()), (12, 4444));
        let st = port.stats();
        assert_eq!((st.tx_packets, st.tx_bytes, st.tx_errors), (1, bytes.len() as u64, 0));
        assert_eq!(umem.n_free(), 64);

        drop(q);
        drop(port);
        let gone = Instant::now() + Duration::from_secs(2);
        while std::path::Path::new(&format!("/sys/class/net/{name}")).exists() && Instant::now() < gone {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!std::path::Path::new(&format!("/sys/class/net/{name}")).exists(), "tap deleted on drop");
    }

    #[test]
    fn writes_to_a_down_tap_count_as_errors() {
        if !root() {
            return;
        }
        let name = format!("xstapd{}", std::process::id() % 1000);
        let port = TapPort::open(&name).unwrap();
        let mut umem = Umem::new(4).unwrap();
        let mut q = port.open_queue(0, &mut umem).unwrap();
        let mut out = vec![umem.frame_from(&udp4(&Udp4Spec::default())).unwrap()];
        assert_eq!(q.send(&mut umem, &mut out), 0);
        let st = port.stats();
        assert_eq!((st.tx_packets, st.tx_errors + st.tx_dropped), (0, 1));
        assert_eq!(umem.n_free(), 4);
        // Nothing to read from a down interface; the pool is untouched.
        assert_eq!(q.recv(&mut umem, &mut Vec::new(), 8), 0);
        assert_eq!(umem.n_free(), 4);
    }
}
