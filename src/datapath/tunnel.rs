//! GRE tunnel ports in the fast path: encapsulation from a per-port header template, and
//! decapsulation of what underlay ports receive.
//!
//! The tunnels' configuration is fixed when the datapath starts; what changes is each
//! tunnel's outer header (the next hop's MAC comes from ARP, resolved by the slow path), which
//! the control thread publishes with [`Tunnels::set_header`]. That builds a byte
//! [`Template`] (Ethernet + IPv4 with DF set + GRE) once; a poll thread loads the whole
//! [`TunnelMap`] once per batch (an `ArcSwap`, as meters do), and per packet writes only the
//! IP total length, ID and checksum, the GRE key (when `out_key` is `flow`), the sequence
//! number (when `seq`) and the GRE checksum (when `csum`).
//!
//! Decapsulation ([`classify_underlay`]) matches the outer headers exactly: Ethernet to the
//! underlay's MAC, IPv4 to its address (no fragments, header checksum right), protocol 47,
//! GRE version 0 without routing, protocol 0x6558, checksum right when present; then finds
//! the tunnel port by (outer source, key): exact keys (`Fixed`, `None`) before `Flow`, as OVS
//! does. ARP and ICMP echo requests to the underlay's address go to the slow path; the rest
//! is dropped with a reason. Nothing here allocates or panics on any input.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::netdev::DpPortNo;
use crate::packet::ethernet::{self, ether_type};
use crate::packet::{be16, checksum, gre, icmp, ip_proto, ipv4, put16, Buf};

/// A GRE key setting (OVS `options:key`, `in_key`, `out_key`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub enum KeyMode {
    /// No key: sent without one; only keyless packets are received.
    #[default]
    None,
    /// This key, always.
    Fixed(u32),
    /// Sent: the key the flow chose (`tun_id`); received: any key (and keyless packets).
    Flow,
}

/// One GRE tunnel port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunnelConfig {
    pub remote_ip: Ipv4Addr,
    /// Must be an underlay's IP.
    pub local_ip: Ipv4Addr,
    pub in_key: KeyMode,
    pub out_key: KeyMode,
    /// Send the GRE checksum (C bit); received checksums are always verified.
    pub csum: bool,
    /// Send a sequence number (S bit).
    pub seq: bool,
    /// Outer TTL (OVS default 64).
    pub ttl: u8,
    /// Outer TOS.
    pub tos: u8,
}

impl TunnelConfig {
    /// A tunnel from `local_ip` to `remote_ip` whose rules choose the key (`key=flow` both
    /// ways), with Open vSwitch's other defaults: no checksum, no sequence, TTL 64, TOS 0.
    pub fn flow_keyed(local_ip: Ipv4Addr, remote_ip: Ipv4Addr) -> TunnelConfig {
        TunnelConfig {
            remote_ip,
            local_ip,
            in_key: KeyMode::Flow,
            out_key: KeyMode::Flow,
            csum: false,
            seq: false,
            ttl: 64,
            tos: 0,
        }
    }
}

/// Where a tunnel's packets go right now: built by the slow path from ARP, published to the
/// poll threads; the datapath builds the byte template from it once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TunnelHeader {
    /// The underlay port to send on.
    pub underlay: DpPortNo,
    /// The underlay port's MAC.
    pub eth_src: [u8; 6],
    /// The next hop's MAC (from ARP).
    pub eth_dst: [u8; 6],
    /// The underlay's IP MTU: inner frames that would make a bigger outer IP packet are
    /// dropped and counted.
    pub mtu: u16,
}

/// A netdev port that belongs to no bridge and carries tunnels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnderlayPort {
    pub port: DpPortNo,
    pub ip: Ipv4Addr,
    pub mac: [u8; 6],
}

/// A packet the fast path could not encapsulate because its tunnel has no header yet.
#[derive(Debug)]
pub struct TunnelPending {
    pub port: DpPortNo,
    pub key: u32,
    pub packet: Vec<u8>,
}

/// A frame an underlay port received that is for the slow path (ARP, ICMP echo to us).
#[derive(Debug)]
pub struct UnderlayPacket {
    pub port: DpPortNo,
    pub packet: Vec<u8>,
}

/// The tunnel metadata of a packet (all zero when it did not come from a tunnel). Addresses
/// are `u32::from(Ipv4Addr)`, as in `FlowKey::tun_src`/`tun_dst`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TunnelMeta {
    pub tun_id: u64,
    pub tun_src: u32,
    pub tun_dst: u32,
}

const ETH_LEN: usize = ethernet::HEADER_LEN;
const IP_AT: usize = ETH_LEN;
const GRE_AT: usize = ETH_LEN + ipv4::HEADER_LEN;
/// Longest outer header: Ethernet, IPv4 without options, GRE with checksum, key and sequence.
pub const MAX_OUTER_LEN: usize = GRE_AT + gre::MAX_HEADER_LEN;

/// The outer headers of one tunnel, ready to copy in front of a packet.
#[derive(Clone, Debug)]
pub struct Template {
    bytes: [u8; MAX_OUTER_LEN],
    len: usize,
    /// Sum of the IPv4 header with total length, ID and checksum zero.
    ip_sum: u32,
    /// Where the per-packet key goes (only with `out_key` = `flow`).
    key_at: Option<usize>,
    seq_at: Option<usize>,
    csum: bool,
    mtu: u16,
    /// The underlay port to send on.
    pub underlay: DpPortNo,
}

/// Why a packet was not encapsulated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncapError {
    /// The outer IP packet would exceed the underlay's MTU, or the frame a chunk.
    TooBig,
}

impl Template {
    /// The outer headers `cfg` and `hdr` make.
    pub fn new(cfg: &TunnelConfig, hdr: &TunnelHeader) -> Template {
        let mut bytes = [0u8; MAX_OUTER_LEN];
        bytes[0..6].copy_from_slice(&hdr.eth_dst);
        bytes[6..12].copy_from_slice(&hdr.eth_src);
        put16(&mut bytes, ethernet::ETHERTYPE_OFFSET, ether_type::IPV4);
        {
            let mut ip = ipv4::Packet::new_unchecked(&mut bytes[IP_AT..GRE_AT]);
            ip.set_version_header_len(ipv4::HEADER_LEN);
            ip.set_tos(cfg.tos);
            ip.set_flags_frag(ipv4::DF);
            ip.set_ttl(cfg.ttl);
            ip.set_protocol(gre::IP_PROTO);
            ip.set_src(cfg.local_ip.octets());
            ip.set_dst(cfg.remote_ip.octets());
        }
        let ip_sum = checksum::sum(&bytes[IP_AT..GRE_AT]);
        let key = match cfg.out_key {
            KeyMode::None => None,
            KeyMode::Fixed(k) => Some(k),
            KeyMode::Flow => Some(0),
        };
        let repr =
            gre::Repr { protocol: gre::proto::TEB, checksum: cfg.csum, key, seq: cfg.seq.then_some(0) };
        repr.emit(&mut bytes[GRE_AT..]);
        let after_csum = GRE_AT + gre::BASE_LEN + if cfg.csum { 4 } else { 0 };
        let after_key = after_csum + if key.is_some() { 4 } else { 0 };
        Template {
            bytes,
            len: GRE_AT + repr.header_len(),
            ip_sum,
            key_at: (cfg.out_key == KeyMode::Flow).then_some(after_csum),
            seq_at: cfg.seq.then_some(after_key),
            csum: cfg.csum,
            mtu: hdr.mtu,
            underlay: hdr.underlay,
        }
    }

    /// Bytes of outer header.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a template has at least Ethernet, IPv4 and a GRE base header.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Pushes the outer headers in front of the packet in `b`, with `key` (used when the
    /// port's `out_key` is `flow`), sequence number `seq` (when it sends one) and IP ID `id`.
    /// `max_frame` bounds the whole frame (a chunk's room).
    #[inline]
    pub fn encap(
        &self,
        b: &mut Buf<'_>,
        key: u32,
        seq: u32,
        id: u16,
        max_frame: usize,
    ) -> Result<(), EncapError> {
        let inner = b.len();
        let total = inner + self.len - ETH_LEN;
        if total > usize::from(self.mtu) || inner + self.len > max_frame || total > usize::from(u16::MAX) {
            return Err(EncapError::TooBig);
        }
        b.push_head(self.len).map_err(|_| EncapError::TooBig)?;
        let d = b.data_mut();
        d[..self.len].copy_from_slice(&self.bytes[..self.len]);
        put16(d, IP_AT + 2, total as u16);
        put16(d, IP_AT + 4, id);
        let sum = checksum::add(self.ip_sum, total as u32 + u32::from(id));
        put16(d, IP_AT + ipv4::CHECKSUM_OFFSET, !checksum::fold(sum));
        if let Some(at) = self.key_at {
            d[at..at + 4].copy_from_slice(&key.to_be_bytes());
        }
        if let Some(at) = self.seq_at {
            d[at..at + 4].copy_from_slice(&seq.to_be_bytes());
        }
        if self.csum {
            let c = checksum::checksum(&d[GRE_AT..]);
            put16(d, GRE_AT + gre::BASE_LEN, c);
        }
        Ok(())
    }
}

/// One tunnel port as the poll threads see it.
#[derive(Clone, Debug)]
pub struct TunnelEntry {
    pub port: DpPortNo,
    pub cfg: TunnelConfig,
    /// The outer header; `None` until the slow path has resolved the next hop.
    pub template: Option<Arc<Template>>,
    /// The next GRE sequence number (shared by the poll threads; touched only with `seq`).
    pub seq: Arc<AtomicU32>,
}

impl TunnelEntry {
    /// The next sequence number, when the port sends them (0 otherwise).
    #[inline]
    pub fn next_seq(&self) -> u32 {
        if self.cfg.seq {
            self.seq.fetch_add(1, Relaxed)
        } else {
            0
        }
    }
}

/// Every tunnel and underlay of the datapath: published as a whole.
#[derive(Clone, Debug, Default)]
pub struct TunnelMap {
    pub tunnels: Vec<TunnelEntry>,
    pub underlays: Vec<UnderlayPort>,
    /// (remote IP << 32 | local IP, tunnel index), sorted: a binary search finds the
    /// tunnels a packet from remote to local may be for (cheaper than hashing per packet).
    by_endpoints: Vec<(u64, u32)>,
}

impl TunnelMap {
    /// A map of `tunnels` over `underlays` (no headers yet).
    pub fn new(tunnels: Vec<(DpPortNo, TunnelConfig)>, underlays: Vec<UnderlayPort>) -> TunnelMap {
        let tunnels: Vec<TunnelEntry> = tunnels
            .into_iter()
            .map(|(port, cfg)| TunnelEntry { port, cfg, template: None, seq: Arc::default() })
            .collect();
        let mut by_endpoints: Vec<(u64, u32)> = tunnels
            .iter()
            .enumerate()
            .map(|(i, t)| (endpoints(t.cfg.remote_ip.into(), t.cfg.local_ip.into()), i as u32))
            .collect();
        by_endpoints.sort_unstable();
        TunnelMap { tunnels, underlays, by_endpoints }
    }

    /// The index of tunnel port `port`.
    pub fn index_of(&self, port: DpPortNo) -> Option<usize> {
        self.tunnels.iter().position(|t| t.port == port)
    }

    /// The tunnel that receives a packet from `src` to `dst` with GRE key `key`.
    #[inline]
    pub fn find(&self, src: u32, dst: u32, key: Option<u32>) -> Option<&TunnelEntry> {
        let e = endpoints(src, dst);
        let from = self.by_endpoints.partition_point(|&(k, _)| k < e);
        let mut flow = None;
        for &(k, i) in &self.by_endpoints[from..] {
            if k != e {
                break;
            }
            let t = &self.tunnels[i as usize];
            match (t.cfg.in_key, key) {
                (KeyMode::Fixed(k), Some(got)) if k == got => return Some(t),
                (KeyMode::None, None) => return Some(t),
                (KeyMode::Flow, _) if flow.is_none() => flow = Some(t),
                _ => {}
            }
        }
        flow
    }
}

#[inline]
fn endpoints(remote: u32, local: u32) -> u64 {
    (u64::from(remote) << 32) | u64::from(local)
}

/// The control thread's side: the published map, and header changes.
pub struct Tunnels {
    map: ArcSwap<TunnelMap>,
}

impl Tunnels {
    pub fn new(map: TunnelMap) -> Tunnels {
        Tunnels { map: ArcSwap::from_pointee(map) }
    }

    /// The current map (a poll thread loads it once per batch).
    #[inline]
    pub fn load(&self) -> arc_swap::Guard<Arc<TunnelMap>> {
        self.map.load()
    }

    /// The shared map itself, for poll threads.
    pub fn shared(&self) -> &ArcSwap<TunnelMap> {
        &self.map
    }

    /// Publishes tunnel `port`'s outer header (`None`: no route to the remote now; its
    /// packets go to the slow path). `false` if `port` is no tunnel.
    pub fn set_header(&self, port: DpPortNo, header: Option<TunnelHeader>) -> bool {
        let cur = self.map.load_full();
        let Some(i) = cur.index_of(port) else { return false };
        let mut next = (*cur).clone();
        let t = &mut next.tunnels[i];
        t.template = header.map(|h| Arc::new(Template::new(&t.cfg, &h)));
        self.map.store(Arc::new(next));
        true
    }
}

/// Why a frame an underlay port received was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnderlayDrop {
    /// Not GRE, ARP or ICMP echo for this underlay (another address or MAC, a fragment, ...).
    NotForUs,
    /// GRE with flags, version or routing we don't support, or a payload other than Ethernet.
    BadGre,
    /// A wrong outer IPv4 header checksum or GRE checksum.
    BadCsum,
    /// Outer or inner headers cut short.
    Truncated,
    /// No tunnel port for that remote address and key.
    NoPort,
}

/// What to do with a frame an underlay port received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnderlayVerdict {
    /// GRE for tunnel `port`: strip `strip` bytes in front, keep `inner_len` bytes (an
    /// Ethernet frame, at least its header), look up with `meta`.
    Decap {
        port: DpPortNo,
        meta: TunnelMeta,
        strip: usize,
        inner_len: usize,
    },
    /// ARP or an ICMP echo request to us: a copy to the slow path.
    SlowPath,
    Drop(UnderlayDrop),
}

/// Decides what `frame`, received on underlay `u`, is (see the module docs).
#[inline]
pub fn classify_underlay(map: &TunnelMap, u: &UnderlayPort, frame: &[u8]) -> UnderlayVerdict {
    use UnderlayVerdict::{Drop, SlowPath};
    if frame.len() < ETH_LEN {
        return Drop(UnderlayDrop::Truncated);
    }
    match be16(frame, ethernet::ETHERTYPE_OFFSET) {
        ether_type::ARP => return SlowPath,
        ether_type::IPV4 => {}
        _ => return Drop(UnderlayDrop::NotForUs),
    }
    if frame[..6] != u.mac {
        return Drop(UnderlayDrop::NotForUs);
    }
    let Ok(ip) = ipv4::Packet::new_checked(&frame[ETH_LEN..]) else {
        return Drop(UnderlayDrop::Truncated);
    };
    if ip.dst() != u.ip.octets() || ip.is_fragment() {
        return Drop(UnderlayDrop::NotForUs);
    }
    if !ip.verify_checksum() {
        return Drop(UnderlayDrop::BadCsum);
    }
    match ip.protocol() {
        gre::IP_PROTO => {}
        ip_proto::ICMP => {
            let p = ip.payload();
            return if p.len() >= icmp::HEADER_LEN && p[0] == icmp::v4::ECHO_REQUEST {
                SlowPath
            } else {
                Drop(UnderlayDrop::NotForUs)
            };
        }
        _ => return Drop(UnderlayDrop::NotForUs),
    }
    let g = match gre::Packet::new_checked(ip.payload()) {
        Ok(g) => g,
        Err(gre::GreError::Truncated) => return Drop(UnderlayDrop::Truncated),
        Err(gre::GreError::Unsupported) => return Drop(UnderlayDrop::BadGre),
    };
    if g.protocol() != gre::proto::TEB {
        return Drop(UnderlayDrop::BadGre);
    }
    if !g.verify_checksum() {
        return Drop(UnderlayDrop::BadCsum);
    }
    let inner_len = g.payload().len();
    if inner_len < ETH_LEN {
        return Drop(UnderlayDrop::Truncated);
    }
    let (src, dst) = (u32::from_be_bytes(ip.src()), u32::from_be_bytes(ip.dst()));
    let key = g.key();
    let Some(t) = map.find(src, dst, key) else {
        return Drop(UnderlayDrop::NoPort);
    };
    UnderlayVerdict::Decap {
        port: t.port,
        meta: TunnelMeta { tun_id: u64::from(key.unwrap_or(0)), tun_src: src, tun_dst: dst },
        strip: ETH_LEN + ip.header_len() + g.header_len(),
        inner_len,
    }
}

#[cfg(test)]
mod tests;
