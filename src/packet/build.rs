//! Whole-frame builders with correct checksums, for tests, pktgen and the demo. They allocate
//! (a `Vec` per frame): keep them off the per-packet path. Frames shorter than the Ethernet
//! minimum (60 bytes without FCS) are zero-padded, as a NIC would.
//!
//! Payload bytes are a counting pattern (`i as u8`) so corruption is easy to spot.

use super::ethernet::{self, ether_type};
use super::{arp, checksum, icmp, ip_proto, ipv4, ipv6, put16, sctp, tcp, udp, vlan};

/// Ethernet minimum frame length without the FCS.
pub const MIN_FRAME_LEN: usize = 60;

const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
const IP4_A: [u8; 4] = [10, 0, 0, 1];
const IP4_B: [u8; 4] = [10, 0, 0, 2];
const IP6_A: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const IP6_B: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

/// The Ethernet part of a frame: addresses and an optional 802.1Q tag (its TCI).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EthSpec {
    /// Source MAC.
    pub src_mac: [u8; 6],
    /// Destination MAC.
    pub dst_mac: [u8; 6],
    /// 802.1Q TCI (PCP, DEI, VID), if tagged.
    pub vlan: Option<u16>,
}

impl Default for EthSpec {
    fn default() -> Self {
        EthSpec { src_mac: MAC_A, dst_mac: MAC_B, vlan: None }
    }
}

/// A UDP/IPv4 frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Udp4Spec {
    /// Source MAC.
    pub src_mac: [u8; 6],
    /// Destination MAC.
    pub dst_mac: [u8; 6],
    /// 802.1Q TCI, if tagged.
    pub vlan: Option<u16>,
    /// Source address.
    pub src_ip: [u8; 4],
    /// Destination address.
    pub dst_ip: [u8; 4],
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Bytes of payload after the UDP header.
    pub payload_len: usize,
    /// TTL.
    pub ttl: u8,
}

impl Default for Udp4Spec {
    fn default() -> Self {
        Udp4Spec {
            src_mac: MAC_A,
            dst_mac: MAC_B,
            vlan: None,
            src_ip: IP4_A,
            dst_ip: IP4_B,
            sport: 1024,
            dport: 1025,
            payload_len: 18,
            ttl: 64,
        }
    }
}

/// A TCP/IPv4 frame: the UDP spec's fields plus TCP flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tcp4Spec {
    /// Addresses, ports, payload length, TTL.
    pub ip: Udp4Spec,
    /// TCP flags (see [`tcp::flags`]).
    pub flags: u16,
}

/// An ICMPv4 echo request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Icmp4EchoSpec {
    /// Ethernet addresses and tag.
    pub eth: EthSpec,
    /// Source address.
    pub src_ip: [u8; 4],
    /// Destination address.
    pub dst_ip: [u8; 4],
    /// Echo identifier.
    pub ident: u16,
    /// Echo sequence number.
    pub seq: u16,
    /// Bytes of payload after the ICMP header.
    pub payload_len: usize,
    /// TTL.
    pub ttl: u8,
}

impl Default for Icmp4EchoSpec {
    fn default() -> Self {
        Icmp4EchoSpec {
            eth: EthSpec::default(),
            src_ip: IP4_A,
            dst_ip: IP4_B,
            ident: 1,
            seq: 1,
            payload_len: 32,
            ttl: 64,
        }
    }
}

/// A UDP/IPv6 frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Udp6Spec {
    /// Source MAC.
    pub src_mac: [u8; 6],
    /// Destination MAC.
    pub dst_mac: [u8; 6],
    /// 802.1Q TCI, if tagged.
    pub vlan: Option<u16>,
    /// Source address.
    pub src_ip: [u8; 16],
    /// Destination address.
    pub dst_ip: [u8; 16],
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Bytes of payload after the UDP header.
    pub payload_len: usize,
    /// Hop limit.
    pub hop_limit: u8,
    /// Traffic class.
    pub tclass: u8,
    /// Flow label (20 bits).
    pub flow_label: u32,
}

impl Default for Udp6Spec {
    fn default() -> Self {
        Udp6Spec {
            src_mac: MAC_A,
            dst_mac: MAC_B,
            vlan: None,
            src_ip: IP6_A,
            dst_ip: IP6_B,
            sport: 1024,
            dport: 1025,
            payload_len: 18,
            hop_limit: 64,
            tclass: 0,
            flow_label: 0,
        }
    }
}

/// A TCP/IPv6 frame: the UDP spec's fields plus TCP flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tcp6Spec {
    /// Addresses, ports, payload length, hop limit.
    pub ip: Udp6Spec,
    /// TCP flags (see [`tcp::flags`]).
    pub flags: u16,
}

/// An ICMPv6 echo request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Icmp6EchoSpec {
    /// Ethernet addresses and tag.
    pub eth: EthSpec,
    /// Source address.
    pub src_ip: [u8; 16],
    /// Destination address.
    pub dst_ip: [u8; 16],
    /// Echo identifier.
    pub ident: u16,
    /// Echo sequence number.
    pub seq: u16,
    /// Bytes of payload after the ICMPv6 header.
    pub payload_len: usize,
    /// Hop limit.
    pub hop_limit: u8,
}

impl Default for Icmp6EchoSpec {
    fn default() -> Self {
        Icmp6EchoSpec {
            eth: EthSpec::default(),
            src_ip: IP6_A,
            dst_ip: IP6_B,
            ident: 1,
            seq: 1,
            payload_len: 32,
            hop_limit: 64,
        }
    }
}

fn pattern(n: usize) -> impl Iterator<Item = u8> {
    (0..n).map(|i| i as u8)
}

/// Ethernet header (and tag) for `ethertype`.
fn eth_header(eth: &EthSpec, ethertype: u16) -> Vec<u8> {
    let mut f = vec![0u8; ethernet::HEADER_LEN + if eth.vlan.is_some() { vlan::TAG_LEN } else { 0 }];
    let mut e = ethernet::Packet::new_unchecked(&mut f[..]);
    e.set_dst(eth.dst_mac);
    e.set_src(eth.src_mac);
    match eth.vlan {
        Some(tci) => {
            e.set_ethertype(ether_type::VLAN);
            let mut v = vlan::Packet::new_unchecked(&mut f[ethernet::HEADER_LEN..]);
            v.set_tci(tci);
            v.set_ethertype(ethertype);
        }
        None => e.set_ethertype(ethertype),
    }
    f
}

fn pad(mut f: Vec<u8>) -> Vec<u8> {
    if f.len() < MIN_FRAME_LEN {
        f.resize(MIN_FRAME_LEN, 0);
    }
    f
}

/// An IPv4 frame carrying `l4` (an upper-layer header and payload, checksum field as is):
/// the IPv4 header checksum and the TCP/UDP/ICMP/SCTP checksum are computed.
pub fn ipv4(eth: &EthSpec, src: [u8; 4], dst: [u8; 4], ttl: u8, proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut f = eth_header(eth, ether_type::IPV4);
    let l3 = f.len();
    f.resize(l3 + ipv4::HEADER_LEN, 0);
    f.extend_from_slice(l4);
    let mut ip = ipv4::Packet::new_unchecked(&mut f[l3..]);
    ip.set_version_header_len(ipv4::HEADER_LEN);
    ip.set_total_len((ipv4::HEADER_LEN + l4.len()) as u16);
    ip.set_ident(0x1234);
    ip.set_flags_frag(ipv4::DF);
    ip.set_ttl(ttl);
    ip.set_protocol(proto);
    ip.set_src(src);
    ip.set_dst(dst);
    fill(&mut f, false);
    pad(f)
}

/// An IPv6 frame carrying `l4` (extension headers, if any, included: `next_header` is the
/// first); checksums are computed.
pub fn ipv6(
    eth: &EthSpec,
    src: &[u8; 16],
    dst: &[u8; 16],
    hop_limit: u8,
    next_header: u8,
    l4: &[u8],
) -> Vec<u8> {
    let mut f = eth_header(eth, ether_type::IPV6);
    let l3 = f.len();
    f.resize(l3 + ipv6::HEADER_LEN, 0);
    f.extend_from_slice(l4);
    let mut ip = ipv6::Packet::new_unchecked(&mut f[l3..]);
    ip.set_version_tc_flow(0, 0);
    ip.set_payload_len(l4.len() as u16);
    ip.set_next_header(next_header);
    ip.set_hop_limit(hop_limit);
    ip.set_src(src);
    ip.set_dst(dst);
    fill(&mut f, false);
    pad(f)
}

fn udp_l4(sport: u16, dport: u16, payload_len: usize) -> Vec<u8> {
    let mut l4 = vec![0u8; udp::HEADER_LEN];
    l4.extend(pattern(payload_len));
    let mut u = udp::Packet::new_unchecked(&mut l4[..]);
    u.set_src_port(sport);
    u.set_dst_port(dport);
    u.set_len((udp::HEADER_LEN + payload_len) as u16);
    l4
}

fn tcp_l4(sport: u16, dport: u16, flags: u16, payload_len: usize) -> Vec<u8> {
    let mut l4 = vec![0u8; tcp::HEADER_LEN];
    l4.extend(pattern(payload_len));
    let mut t = tcp::Packet::new_unchecked(&mut l4[..]);
    t.set_src_port(sport);
    t.set_dst_port(dport);
    t.set_seq(1);
    t.set_ack(if flags & tcp::flags::ACK != 0 { 1 } else { 0 });
    t.set_header_len_flags(tcp::HEADER_LEN, flags);
    t.set_window(65535);
    l4
}

fn echo_l4(ty: u8, ident: u16, seq: u16, payload_len: usize) -> Vec<u8> {
    let mut l4 = vec![0u8; icmp::HEADER_LEN];
    l4.extend(pattern(payload_len));
    let mut i = icmp::Packet::new_unchecked(&mut l4[..]);
    i.set_msg_type(ty);
    i.set_ident(ident);
    i.set_seq(seq);
    l4
}

/// A UDP/IPv4 frame.
pub fn udp4(s: &Udp4Spec) -> Vec<u8> {
    let eth = EthSpec { src_mac: s.src_mac, dst_mac: s.dst_mac, vlan: s.vlan };
    ipv4(&eth, s.src_ip, s.dst_ip, s.ttl, ip_proto::UDP, &udp_l4(s.sport, s.dport, s.payload_len))
}

/// A TCP/IPv4 frame.
pub fn tcp4(s: &Tcp4Spec) -> Vec<u8> {
    let p = &s.ip;
    let eth = EthSpec { src_mac: p.src_mac, dst_mac: p.dst_mac, vlan: p.vlan };
    ipv4(&eth, p.src_ip, p.dst_ip, p.ttl, ip_proto::TCP, &tcp_l4(p.sport, p.dport, s.flags, p.payload_len))
}

/// An ICMPv4 echo request frame.
pub fn icmp4_echo(s: &Icmp4EchoSpec) -> Vec<u8> {
    let l4 = echo_l4(icmp::v4::ECHO_REQUEST, s.ident, s.seq, s.payload_len);
    ipv4(&s.eth, s.src_ip, s.dst_ip, s.ttl, ip_proto::ICMP, &l4)
}

/// A UDP/IPv6 frame.
pub fn udp6(s: &Udp6Spec) -> Vec<u8> {
    let eth = EthSpec { src_mac: s.src_mac, dst_mac: s.dst_mac, vlan: s.vlan };
    let mut f = ipv6(
        &eth,
        &s.src_ip,
        &s.dst_ip,
        s.hop_limit,
        ip_proto::UDP,
        &udp_l4(s.sport, s.dport, s.payload_len),
    );
    set_v6_tc_flow(&mut f, s.tclass, s.flow_label);
    f
}

/// A TCP/IPv6 frame.
pub fn tcp6(s: &Tcp6Spec) -> Vec<u8> {
    let p = &s.ip;
    let eth = EthSpec { src_mac: p.src_mac, dst_mac: p.dst_mac, vlan: p.vlan };
    let l4 = tcp_l4(p.sport, p.dport, s.flags, p.payload_len);
    let mut f = ipv6(&eth, &p.src_ip, &p.dst_ip, p.hop_limit, ip_proto::TCP, &l4);
    set_v6_tc_flow(&mut f, p.tclass, p.flow_label);
    f
}

fn set_v6_tc_flow(f: &mut [u8], tc: u8, label: u32) {
    // Traffic class and flow label are not covered by any checksum.
    let l3 = l3_offset(f);
    ipv6::Packet::new_unchecked(&mut f[l3..]).set_version_tc_flow(tc, label);
}

/// An ICMPv6 echo request frame.
pub fn icmp6_echo(s: &Icmp6EchoSpec) -> Vec<u8> {
    let l4 = echo_l4(icmp::v6::ECHO_REQUEST, s.ident, s.seq, s.payload_len);
    ipv6(&s.eth, &s.src_ip, &s.dst_ip, s.hop_limit, ip_proto::ICMPV6, &l4)
}

/// An ICMPv6 neighbor solicitation for `target` with a source link-layer address option.
pub fn nd_solicit(eth: &EthSpec, src_ip: &[u8; 16], target: &[u8; 16]) -> Vec<u8> {
    let mut l4 = vec![0u8; icmp::ND_LEN];
    let mut i = icmp::Packet::new_unchecked(&mut l4[..]);
    i.set_msg_type(icmp::v6::NEIGHBOR_SOLICIT);
    i.set_nd_target(target);
    l4.extend_from_slice(&[icmp::v6::OPT_SOURCE_LL, 1]);
    l4.extend_from_slice(&eth.src_mac);
    // Solicited-node multicast address of the target.
    let mut dst = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 0];
    dst[13..].copy_from_slice(&target[13..]);
    ipv6(eth, src_ip, &dst, 255, ip_proto::ICMPV6, &l4)
}

/// An SCTP/IPv4 frame with a common header only plus `payload_len` bytes (CRC32c computed).
pub fn sctp4(
    eth: &EthSpec,
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
    payload_len: usize,
) -> Vec<u8> {
    let mut l4 = vec![0u8; sctp::HEADER_LEN];
    l4.extend(pattern(payload_len));
    let mut s = sctp::Packet::new_unchecked(&mut l4[..]);
    s.set_src_port(sport);
    s.set_dst_port(dport);
    s.set_vtag(0x0102_0304);
    ipv4(eth, src, dst, 64, ip_proto::SCTP, &l4)
}

/// A broadcast ARP request from (`src_mac`, `src_ip`) for `target_ip`.
pub fn arp_request(src_mac: [u8; 6], src_ip: [u8; 4], target_ip: [u8; 4], vlan: Option<u16>) -> Vec<u8> {
    let eth = EthSpec { src_mac, dst_mac: ethernet::BROADCAST, vlan };
    let mut f = eth_header(&eth, ether_type::ARP);
    let l3 = f.len();
    f.resize(l3 + arp::HEADER_LEN, 0);
    let mut a = arp::Packet::new_unchecked(&mut f[l3..]);
    a.set_ethernet_ipv4();
    a.set_oper(arp::OP_REQUEST);
    a.set_sha(src_mac);
    a.set_spa(src_ip);
    a.set_tpa(target_ip);
    pad(f)
}

/// Offset of L3 in a frame with at most one tag (no length checks beyond 18 bytes).
fn l3_offset(f: &[u8]) -> usize {
    if f.len() >= 18 && ethernet::is_vlan_tpid(super::be16(f, 12)) {
        18
    } else {
        14
    }
}

/// Recomputes every checksum in `frame` from scratch: the IPv4 header checksum and the
/// TCP/UDP/ICMP/ICMPv6/SCTP checksum (on unfragmented packets and first fragments, over the
/// bytes present). A UDP-over-IPv4 checksum of 0 ("none") stays 0. Frames it cannot parse
/// are left alone. Tests use it as the reference for incremental updates.
pub fn fill_checksums(frame: &mut [u8]) {
    fill(frame, true)
}

fn fill(f: &mut [u8], keep_udp4_zero: bool) {
    if f.len() < ethernet::HEADER_LEN {
        return;
    }
    let l3 = l3_offset(f);
    if f.len() < l3 {
        return;
    }
    match super::be16(f, l3 - 2) {
        ether_type::IPV4 => {
            let Ok(mut ip) = ipv4::Packet::new_checked(&mut f[l3..]) else { return };
            ip.fill_checksum();
            let (src, dst, proto, later) = (ip.src(), ip.dst(), ip.protocol(), ip.frag_offset() != 0);
            if later {
                return;
            }
            let l4 = ip.payload_mut();
            let pseudo = checksum::pseudo_v4(src, dst, proto, l4.len() as u16);
            fill_l4(l4, proto, pseudo, false, keep_udp4_zero);
        }
        ether_type::IPV6 => {
            let Ok(mut ip) = ipv6::Packet::new_checked(&mut f[l3..]) else { return };
            let (src, dst, nh) = (ip.src(), ip.dst(), ip.next_header());
            let pl = ip.payload_mut();
            let Ok(ul) = ipv6::upper_layer(pl, nh) else { return };
            if ul.later_fragment {
                return;
            }
            let l4 = &mut pl[ul.offset..];
            let pseudo = checksum::pseudo_v6(&src, &dst, ul.proto, l4.len() as u32);
            fill_l4(l4, ul.proto, pseudo, true, false);
        }
        _ => {}
    }
}

fn fill_l4(l4: &mut [u8], proto: u8, pseudo: u32, v6: bool, keep_udp_zero: bool) {
    match proto {
        ip_proto::TCP if l4.len() >= tcp::HEADER_LEN => tcp::Packet::new_unchecked(l4).fill_checksum(pseudo),
        ip_proto::UDP if l4.len() >= udp::HEADER_LEN => {
            let mut u = udp::Packet::new_unchecked(l4);
            if !(keep_udp_zero && u.checksum() == 0) {
                u.fill_checksum(pseudo);
            }
        }
        ip_proto::ICMP if !v6 && l4.len() >= icmp::HEADER_LEN => {
            icmp::Packet::new_unchecked(l4).fill_checksum(0)
        }
        ip_proto::ICMPV6 if v6 && l4.len() >= icmp::HEADER_LEN => {
            icmp::Packet::new_unchecked(l4).fill_checksum(pseudo)
        }
        ip_proto::SCTP if l4.len() >= sctp::HEADER_LEN => sctp::Packet::new_unchecked(l4).fill_checksum(),
        _ => {}
    }
}

/// Sets the IPv4 fragment word of an IPv4 frame (tests) and fixes the header checksum.
pub fn set_ipv4_frag(frame: &mut [u8], flags_frag: u16) {
    let l3 = l3_offset(frame);
    if let Ok(mut ip) = ipv4::Packet::new_checked(&mut frame[l3..]) {
        ip.set_flags_frag(flags_frag);
        ip.fill_checksum();
    }
}

/// Writes a 16-bit value into a frame at `at` (tests that corrupt fields).
pub fn poke16(frame: &mut [u8], at: usize, v: u16) {
    if at + 2 <= frame.len() {
        put16(frame, at, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l4_verifies_v4(f: &[u8]) -> bool {
        let ip = ipv4::Packet::new_checked(&f[14..]).unwrap();
        let ps = checksum::pseudo_v4(ip.src(), ip.dst(), ip.protocol(), ip.payload().len() as u16);
        ip.verify_checksum() && checksum::fold(checksum::add(ps, checksum::sum(ip.payload()))) == 0xffff
    }

    #[test]
    fn v4_frames_have_valid_checksums() {
        let f = udp4(&Udp4Spec::default());
        assert_eq!(f.len(), 60);
        assert!(l4_verifies_v4(&f));
        let f = tcp4(&Tcp4Spec { flags: tcp::flags::SYN, ..Default::default() });
        assert!(l4_verifies_v4(&f));
        assert_eq!(tcp::Packet::new_checked(&f[34..]).unwrap().flags(), tcp::flags::SYN);
        let f = icmp4_echo(&Icmp4EchoSpec::default());
        assert!(checksum::verify(ipv4::Packet::new_checked(&f[14..]).unwrap().payload()));
        let f = sctp4(&EthSpec::default(), IP4_A, IP4_B, 1, 2, 20);
        assert!(sctp::Packet::new_checked(ipv4::Packet::new_checked(&f[14..]).unwrap().payload())
            .unwrap()
            .verify_checksum());
    }

    #[test]
    fn v6_frames_have_valid_checksums() {
        for f in [
            udp6(&Udp6Spec { vlan: Some(5), ..Default::default() }),
            tcp6(&Tcp6Spec::default()),
            icmp6_echo(&Icmp6EchoSpec::default()),
            nd_solicit(&EthSpec::default(), &IP6_A, &IP6_B),
        ] {
            let l3 = l3_offset(&f);
            let ip = ipv6::Packet::new_checked(&f[l3..]).unwrap();
            let ps = checksum::pseudo_v6(&ip.src(), &ip.dst(), ip.next_header(), ip.payload().len() as u32);
            assert_eq!(checksum::fold(checksum::add(ps, checksum::sum(ip.payload()))), 0xffff);
        }
    }

    #[test]
    fn arp_and_vlan() {
        let f = arp_request(MAC_A, IP4_A, IP4_B, Some(0x2064));
        assert_eq!(f.len(), 60);
        let v = vlan::Packet::new_checked(&f[14..]).unwrap();
        assert_eq!((v.vid(), v.pcp(), v.ethertype()), (100, 1, ether_type::ARP));
        let a = arp::Packet::new_checked(&f[18..]).unwrap();
        assert!(a.is_ethernet_ipv4());
        assert_eq!((a.oper(), a.spa(), a.tpa()), (1, IP4_A, IP4_B));
    }

    #[test]
    fn fill_keeps_udp4_zero() {
        let mut f = udp4(&Udp4Spec::default());
        poke16(&mut f, 14 + 20 + 6, 0);
        fill_checksums(&mut f);
        assert_eq!(super::super::be16(&f, 40), 0);
    }
}
