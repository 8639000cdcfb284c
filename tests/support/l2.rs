//! Raw Ethernet for hosts that speak 802.1Q: this kernel has no 8021q module, so a host sends
//! tagged frames through an AF_PACKET socket ([`super::raw_send`]) and reads tags back from
//! PACKET_AUXDATA ([`super::capture`]). Here: building frames (Ethernet with 0, 1 or 2 tags,
//! ARP, IPv4/UDP), a send-and-capture round, a random-source flood, and reading frames back.

use std::process::Child;

use super::{capture, hex, mac_bytes, raw_send, receiver_lines, unhex, Host};

pub const ETH_ARP: u16 = 0x0806;
pub const ETH_IPV4: u16 = 0x0800;
/// IEEE 802 local experimental EtherType: hosts' stacks ignore it.
pub const ETH_EXPERIMENTAL: u16 = 0x88b5;
pub const BROADCAST: &str = "ff:ff:ff:ff:ff:ff";

/// An Ethernet frame: `tags` are VIDs (PCP 0, TPID 0x8100), outermost first; padded to 60
/// bytes.
pub fn eth(dst: &str, src: &str, tags: &[u16], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(64 + payload.len());
    f.extend_from_slice(&mac_bytes(dst));
    f.extend_from_slice(&mac_bytes(src));
    for vid in tags {
        f.extend_from_slice(&0x8100u16.to_be_bytes());
        f.extend_from_slice(&(vid & 0x0fff).to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    if f.len() < 60 {
        f.resize(60, 0);
    }
    f
}

fn ip4(ip: &str) -> [u8; 4] {
    let a: std::net::Ipv4Addr = ip.parse().expect("an IPv4 address");
    a.octets()
}

/// An ARP request from `src_mac`/`src_ip` asking for `target_ip`, broadcast.
pub fn arp_request(src_mac: &str, src_ip: &str, target_ip: &str, tags: &[u16]) -> Vec<u8> {
    let mut p = Vec::with_capacity(28);
    p.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]); // Ethernet/IPv4, request
    p.extend_from_slice(&mac_bytes(src_mac));
    p.extend_from_slice(&ip4(src_ip));
    p.extend_from_slice(&[0; 6]);
    p.extend_from_slice(&ip4(target_ip));
    eth(BROADCAST, src_mac, tags, ETH_ARP, &p)
}

/// An IPv4/UDP frame (UDP checksum 0: none).
#[allow(clippy::too_many_arguments)]
pub fn udp(
    dst_mac: &str,
    src_mac: &str,
    tags: &[u16],
    src_ip: &str,
    dst_ip: &str,
    sport: u16,
    dport: u16,
    payload: &[u8],
) -> Vec<u8> {
    let total = (20 + 8 + payload.len()) as u16;
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0];
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&ip4(src_ip));
    ip.extend_from_slice(&ip4(dst_ip));
    let sum = checksum(&ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    ip.extend_from_slice(&sport.to_be_bytes());
    ip.extend_from_slice(&dport.to_be_bytes());
    ip.extend_from_slice(&(8 + payload.len() as u16).to_be_bytes());
    ip.extend_from_slice(&[0, 0]);
    ip.extend_from_slice(payload);
    eth(dst_mac, src_mac, tags, ETH_IPV4, &ip)
}

fn checksum(b: &[u8]) -> u16 {
    let mut s: u32 = b.chunks(2).map(|c| u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0))).sum();
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// A frame as a host received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The bytes after the kernel took the outer tag off (an inner tag stays in them).
    pub bytes: Vec<u8>,
    /// The VID of the outer tag the kernel took off, if there was one.
    pub vlan: Option<u16>,
}

fn mac_str(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(":")
}

impl Frame {
    pub fn dst(&self) -> String {
        mac_str(&self.bytes[0..6])
    }
    pub fn src(&self) -> String {
        mac_str(&self.bytes[6..12])
    }
    pub fn ethertype(&self) -> u16 {
        u16::from_be_bytes([self.bytes[12], self.bytes[13]])
    }
    /// For an ARP frame: (operation, sender MAC, sender IP, target IP).
    pub fn arp(&self) -> Option<(u16, String, String, String)> {
        if self.ethertype() != ETH_ARP || self.bytes.len() < 42 {
            return None;
        }
        let a = &self.bytes[14..42];
        let ip = |b: &[u8]| std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string();
        Some((u16::from_be_bytes([a[6], a[7]]), mac_str(&a[8..14]), ip(&a[14..18]), ip(&a[24..28])))
    }
    /// For an untagged IPv4/UDP frame: the destination port.
    pub fn udp_dport(&self) -> Option<u16> {
        let b = &self.bytes;
        if self.ethertype() != ETH_IPV4 || b.len() < 14 + 20 + 8 || b[23] != 17 {
            return None;
        }
        let l4 = 14 + usize::from(b[14] & 0x0f) * 4;
        b.get(l4 + 2..l4 + 4).map(|p| u16::from_be_bytes([p[0], p[1]]))
    }
}

/// The frames a capture started with [`super::capture`] saw, once it ended.
pub fn captured(child: Child) -> Vec<Frame> {
    receiver_lines(child)
        .iter()
        .filter_map(|l| {
            let (h, tci) = l.split_once(' ')?;
            let tci: i32 = tci.trim().parse().ok()?;
            Some(Frame { bytes: unhex(h), vlan: (tci >= 0).then_some(tci as u16 & 0x0fff) })
        })
        .collect()
}

/// Captures on each of `watch` for `secs` seconds while `from` sends `frames`; returns what
/// each watched host received, in `watch` order.
pub fn send_and_watch(from: &Host, frames: &[Vec<u8>], watch: &[&Host], secs: f64) -> Vec<Vec<Frame>> {
    let caps: Vec<Child> = watch.iter().map(|h| capture(h, secs)).collect();
    let hexes: Vec<String> = frames.iter().map(|f| hex(f)).collect();
    raw_send(from, &hexes);
    caps.into_iter().map(captured).collect()
}

/// Captures on each of `watch` for `secs` seconds while `act` runs.
pub fn watch_while(watch: &[&Host], secs: f64, act: impl FnOnce()) -> Vec<Vec<Frame>> {
    let caps: Vec<Child> = watch.iter().map(|h| capture(h, secs)).collect();
    act();
    caps.into_iter().map(captured).collect()
}

/// Sends `count` frames to broadcast from `host`, each from a different random locally
/// administered unicast MAC, with the experimental EtherType (hosts' stacks ignore them).
pub fn flood_random_sources(host: &Host, count: usize) {
    let code = format!(
        "import socket,os\n\
         s=socket.socket(socket.AF_PACKET,socket.SOCK_RAW)\n\
         s.bind(('eth0',0))\n\
         tail=bytes.fromhex('88b5')+bytes(46)\n\
         for i in range({count}):\n\
         \x20 r=bytearray(os.urandom(6)); r[0]=(r[0]&0xfc)|2\n\
         \x20 s.send(b'\\xff'*6+bytes(r)+tail)\n"
    );
    host.exec(&["python3", "-c", &code]).expect("python3 flood");
}
