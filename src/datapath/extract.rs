//! Flow-key extraction: one pass over a received frame that fills every [`FlowKey`] field
//! (conventions in [`flow`](super::flow)), or says why the frame is dropped.
//!
//! Runs once per packet on the poll thread: no allocation, no logging, no panics on any
//! input. Each header's length is checked once, up front, before the view reads it.
//!
//! What is parsed (as OVS's `miniflow_extract`, with one VLAN slot): Ethernet II (802.3
//! length frames get `dl_type` 0x05ff), one 802.1Q/802.1ad tag (a second tag stops parsing
//! with `dl_type` = its TPID), ARP/RARP (Ethernet/IPv4), IPv4 (options skipped, fragments),
//! IPv6 (extension headers skipped, at most
//! [`MAX_EXT_HEADERS`](crate::packet::ipv6::MAX_EXT_HEADERS)), TCP, UDP, SCTP, ICMP,
//! ICMPv6 with neighbor discovery. Frames too short for a header they claim are dropped;
//! Ethernet padding after the IP length is ignored.

use bytemuck::Zeroable;

use super::flow::{FlowKey, FRAG_ANY, FRAG_LATER, VLAN_PRESENT};
use crate::packet::ethernet::{self, ether_type, is_vlan_tpid};
use crate::packet::ipv6;
use crate::packet::{arp, icmp, ip_proto, ipv4, sctp, tcp, udp, vlan};

/// Why [`extract`] refused a frame. `as usize` indexes a `[Counter; DropReason::COUNT]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// Shorter than an Ethernet header.
    TooShort = 0,
    /// A VLAN tag (TPID present) cut short.
    BadVlan,
    /// IPv4 header truncated, version not 4, IHL < 5, or options past the frame.
    BadIpv4Header,
    /// IPv4 total length below the header length or beyond the frame.
    BadIpv4Length,
    /// IPv6 header truncated, version not 6, payload length beyond the frame, or a bad or
    /// too long extension-header chain.
    BadIpv6,
    /// TCP/UDP/SCTP/ICMP header truncated (on an unfragmented packet or a first fragment).
    BadL4,
}

impl DropReason {
    /// Number of reasons (size of a counter array).
    pub const COUNT: usize = 6;
    /// Every reason, in `as usize` order.
    pub const ALL: [DropReason; DropReason::COUNT] = [
        DropReason::TooShort,
        DropReason::BadVlan,
        DropReason::BadIpv4Header,
        DropReason::BadIpv4Length,
        DropReason::BadIpv6,
        DropReason::BadL4,
    ];
    /// A short name for counters and `ctl` output.
    pub const fn name(self) -> &'static str {
        match self {
            DropReason::TooShort => "too_short",
            DropReason::BadVlan => "bad_vlan",
            DropReason::BadIpv4Header => "bad_ipv4_header",
            DropReason::BadIpv4Length => "bad_ipv4_length",
            DropReason::BadIpv6 => "bad_ipv6",
            DropReason::BadL4 => "bad_l4",
        }
    }
}

impl std::fmt::Display for DropReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Fills `key` from `frame` received on `in_port`. Every field is overwritten (fields the
/// frame lacks become zero), also when `Err` is returned.
#[inline]
pub fn extract(frame: &[u8], in_port: u32, key: &mut FlowKey) -> Result<(), DropReason> {
    *key = FlowKey::zeroed();
    key.in_port = in_port;
    if frame.len() < ethernet::HEADER_LEN {
        return Err(DropReason::TooShort);
    }
    let eth = ethernet::Packet::new_unchecked(frame);
    key.dl_dst = eth.dst();
    key.dl_src = eth.src();
    let mut dl_type = eth.ethertype();
    let mut l3 = eth.payload();

    if is_vlan_tpid(dl_type) {
        let Ok(tag) = vlan::Packet::new_checked(l3) else {
            return Err(DropReason::BadVlan);
        };
        key.vlan_tci = tag.tci() | VLAN_PRESENT;
        dl_type = tag.ethertype();
        l3 = &l3[vlan::HEADER_LEN..];
        if is_vlan_tpid(dl_type) {
            // A second tag: one VLAN slot, so stop here (as OVS does).
            key.dl_type = dl_type;
            return Ok(());
        }
    }
    if dl_type < ether_type::MIN {
        key.dl_type = ether_type::NONE;
        return Ok(());
    }
    key.dl_type = dl_type;

    match dl_type {
        ether_type::IPV4 => extract_ipv4(l3, key),
        ether_type::IPV6 => extract_ipv6(l3, key),
        ether_type::ARP | ether_type::RARP => {
            extract_arp(l3, key);
            Ok(())
        }
        _ => Ok(()),
    }
}

#[inline]
fn extract_arp(l3: &[u8], key: &mut FlowKey) {
    // Like OVS: a short or non-Ethernet/IPv4 ARP is kept, with its ARP fields zero.
    let Ok(a) = arp::Packet::new_checked(l3) else { return };
    if !a.is_ethernet_ipv4() {
        return;
    }
    let op = a.oper();
    if op <= 0xff {
        key.nw_proto = op as u8;
    }
    key.nw_src[..4].copy_from_slice(&a.spa());
    key.nw_dst[..4].copy_from_slice(&a.tpa());
    key.arp_sha = a.sha();
    key.arp_tha = a.tha();
}

#[inline]
fn extract_ipv4(l3: &[u8], key: &mut FlowKey) -> Result<(), DropReason> {
    if l3.len() < ipv4::HEADER_LEN {
        return Err(DropReason::BadIpv4Header);
    }
    let ip = ipv4::Packet::new_unchecked(l3);
    let hl = ip.header_len();
    if ip.version() != 4 || hl < ipv4::HEADER_LEN || hl > l3.len() {
        return Err(DropReason::BadIpv4Header);
    }
    let total = usize::from(ip.total_len());
    if total < hl || total > l3.len() {
        return Err(DropReason::BadIpv4Length);
    }
    key.nw_src[..4].copy_from_slice(&ip.src());
    key.nw_dst[..4].copy_from_slice(&ip.dst());
    key.nw_proto = ip.protocol();
    key.nw_tos = ip.tos();
    key.nw_ttl = ip.ttl();
    if ip.is_fragment() {
        key.nw_frag = FRAG_ANY;
        if ip.frag_offset() != 0 {
            key.nw_frag |= FRAG_LATER;
            return Ok(());
        }
    }
    extract_l4(&l3[hl..total], key.nw_proto, false, key)
}

#[inline]
fn extract_ipv6(l3: &[u8], key: &mut FlowKey) -> Result<(), DropReason> {
    let Ok(ip) = ipv6::Packet::new_checked(l3) else {
        return Err(DropReason::BadIpv6);
    };
    key.nw_src = ip.src();
    key.nw_dst = ip.dst();
    key.nw_tos = ip.traffic_class();
    key.nw_ttl = ip.hop_limit();
    key.ipv6_label = ip.flow_label();
    let payload = ip.payload();
    let Ok(ul) = ipv6::upper_layer(payload, ip.next_header()) else {
        return Err(DropReason::BadIpv6);
    };
    key.nw_proto = ul.proto;
    if ul.fragment {
        key.nw_frag = FRAG_ANY;
    }
    if ul.later_fragment {
        key.nw_frag |= FRAG_LATER;
        return Ok(());
    }
    // `upper_layer` only returns offsets within the payload.
    let l4 = payload.get(ul.offset..).unwrap_or_default();
    extract_l4(l4, ul.proto, true, key)
}

#[inline]
fn extract_l4(l4: &[u8], proto: u8, v6: bool, key: &mut FlowKey) -> Result<(), DropReason> {
    match proto {
        ip_proto::TCP => {
            if l4.len() < tcp::HEADER_LEN {
                return Err(DropReason::BadL4);
            }
            let t = tcp::Packet::new_unchecked(l4);
            key.tp_src = t.src_port();
            key.tp_dst = t.dst_port();
            key.tcp_flags = t.flags();
        }
        ip_proto::UDP => {
            let Ok(u) = udp::Packet::new_checked(l4) else { return Err(DropReason::BadL4) };
            key.tp_src = u.src_port();
            key.tp_dst = u.dst_port();
        }
        ip_proto::SCTP => {
            let Ok(s) = sctp::Packet::new_checked(l4) else { return Err(DropReason::BadL4) };
            key.tp_src = s.src_port();
            key.tp_dst = s.dst_port();
        }
        ip_proto::ICMP if !v6 => {
            let Ok(i) = icmp::Packet::new_checked(l4) else { return Err(DropReason::BadL4) };
            key.tp_src = u16::from(i.msg_type());
            key.tp_dst = u16::from(i.code());
        }
        ip_proto::ICMPV6 if v6 => {
            let Ok(i) = icmp::Packet::new_checked(l4) else { return Err(DropReason::BadL4) };
            key.tp_src = u16::from(i.msg_type());
            key.tp_dst = u16::from(i.code());
            let t = i.msg_type();
            if i.code() == 0 && (t == icmp::v6::NEIGHBOR_SOLICIT || t == icmp::v6::NEIGHBOR_ADVERT) {
                extract_nd(&i, key);
            }
        }
        _ => {}
    }
    Ok(())
}

/// Neighbor discovery target and link-layer address options. A malformed ND message is
/// not dropped; its ND fields are left zero (as OVS does).
#[inline]
fn extract_nd(i: &icmp::Packet<&[u8]>, key: &mut FlowKey) {
    if !i.is_nd_sized() {
        return;
    }
    key.nd_target = i.nd_target();
    for opt in icmp::nd_options(i.nd_options()) {
        let ok = match opt {
            Ok((icmp::v6::OPT_SOURCE_LL, ll)) if ll.len() == 6 => set_once(&mut key.arp_sha, ll),
            Ok((icmp::v6::OPT_TARGET_LL, ll)) if ll.len() == 6 => set_once(&mut key.arp_tha, ll),
            Ok(_) => true,
            Err(_) => false,
        };
        if !ok {
            key.nd_target = [0; 16];
            key.arp_sha = [0; 6];
            key.arp_tha = [0; 6];
            return;
        }
    }
}

/// Stores a link-layer address option; a second one of the same kind is malformed.
#[inline]
fn set_once(slot: &mut [u8; 6], ll: &[u8]) -> bool {
    if *slot != [0; 6] {
        return false;
    }
    slot.copy_from_slice(ll);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::build::{
        self, EthSpec, Icmp4EchoSpec, Icmp6EchoSpec, Tcp4Spec, Tcp6Spec, Udp4Spec, Udp6Spec,
    };
    use crate::packet::tcp::flags;
    use proptest::prelude::*;

    const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
    const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

    fn key_of(frame: &[u8]) -> Result<FlowKey, DropReason> {
        // Start from garbage: extract must overwrite every field.
        let mut k = FlowKey::zeroed();
        for w in k.words_mut() {
            *w = 0xa5a5_a5a5_a5a5_a5a5;
        }
        extract(frame, 7, &mut k).map(|()| k)
    }

    fn v4(a: [u8; 4]) -> [u8; 16] {
        let mut x = [0; 16];
        x[..4].copy_from_slice(&a);
        x
    }

    fn expect(dl_type: u16) -> FlowKey {
        FlowKey { in_port: 7, dl_type, dl_src: MAC_A, dl_dst: MAC_B, ..FlowKey::zeroed() }
    }

    #[test]
    fn udp4_full_key() {
        let f = build::udp4(&Udp4Spec { sport: 5000, dport: 53, ttl: 9, ..Default::default() });
        let k = key_of(&f).unwrap();
        let mut e = expect(0x0800);
        e.nw_src = v4([10, 0, 0, 1]);
        e.nw_dst = v4([10, 0, 0, 2]);
        (e.nw_proto, e.nw_ttl, e.tp_src, e.tp_dst) = (17, 9, 5000, 53);
        assert_eq!(k, e);
    }

    #[test]
    fn tcp4_flags_and_vlan() {
        let spec = Udp4Spec { vlan: Some(0xe00a), sport: 80, dport: 81, ..Default::default() };
        let f = build::tcp4(&Tcp4Spec { ip: spec, flags: flags::SYN | flags::ACK | 0x100 });
        let k = key_of(&f).unwrap();
        assert_eq!(k.vlan_tci, 0xe00a | VLAN_PRESENT);
        assert_eq!((k.dl_type, k.nw_proto, k.tp_src, k.tp_dst, k.tcp_flags), (0x0800, 6, 80, 81, 0x112));
    }

    #[test]
    fn icmp4_and_sctp() {
        let f = build::icmp4_echo(&Icmp4EchoSpec::default());
        let k = key_of(&f).unwrap();
        assert_eq!((k.nw_proto, k.tp_src, k.tp_dst), (1, 8, 0));
        let f = build::sctp4(&EthSpec::default(), [1, 1, 1, 1], [2, 2, 2, 2], 7, 9, 4);
        let k = key_of(&f).unwrap();
        assert_eq!((k.nw_proto, k.tp_src, k.tp_dst, k.ipv4_src()), (132, 7, 9, [1, 1, 1, 1]));
    }

    #[test]
    fn ipv4_options_and_padding() {
        // IHL 6 (4 bytes of options): rebuild a UDP frame with an options word inserted.
        let f = build::udp4(&Udp4Spec { payload_len: 0, ..Default::default() });
        let mut g = f[..34].to_vec();
        g.extend_from_slice(&[1, 1, 1, 0]); // NOP NOP NOP EOL
        g.extend_from_slice(&f[34..42]);
        g.extend_from_slice(&[0; 10]); // padding
        g[14] = 0x46;
        build::poke16(&mut g, 16, 32);
        let k = key_of(&g).unwrap();
        assert_eq!((k.tp_src, k.tp_dst), (1024, 1025));
        // IHL says options past the frame.
        g[14] = 0x4f;
        assert_eq!(key_of(&g[..50]), Err(DropReason::BadIpv4Header));
    }

    #[test]
    fn ipv4_fragments() {
        let mut f = build::udp4(&Udp4Spec::default());
        build::set_ipv4_frag(&mut f, crate::packet::ipv4::MF);
        let k = key_of(&f).unwrap();
        assert_eq!((k.nw_frag, k.tp_src), (FRAG_ANY, 1024));
        build::set_ipv4_frag(&mut f, 100);
        let k = key_of(&f).unwrap();
        assert_eq!((k.nw_frag, k.tp_src, k.tp_dst, k.nw_proto), (FRAG_ANY | FRAG_LATER, 0, 0, 17));
        // A later fragment needs no L4 header at all.
        build::poke16(&mut f, 16, 20);
        assert!(key_of(&f[..34]).is_ok());
        // A first fragment does.
        build::set_ipv4_frag(&mut f, crate::packet::ipv4::MF);
        assert_eq!(key_of(&f[..38]), Err(DropReason::BadL4));
    }

    #[test]
    fn ipv6_udp_tcp_icmp() {
        let s = Udp6Spec { tclass: 0xb8, flow_label: 0xabcde, hop_limit: 3, ..Default::default() };
        let k = key_of(&build::udp6(&s)).unwrap();
        let mut e = expect(0x86dd);
        (e.nw_src, e.nw_dst) = (s.src_ip, s.dst_ip);
        (e.nw_proto, e.nw_tos, e.nw_ttl, e.ipv6_label, e.tp_src, e.tp_dst) =
            (17, 0xb8, 3, 0xabcde, 1024, 1025);
        assert_eq!(k, e);
        let k = key_of(&build::tcp6(&Tcp6Spec { flags: flags::FIN, ..Default::default() })).unwrap();
        assert_eq!((k.nw_proto, k.tcp_flags), (6, flags::FIN));
        let k = key_of(&build::icmp6_echo(&Icmp6EchoSpec::default())).unwrap();
        assert_eq!((k.nw_proto, k.tp_src, k.tp_dst), (58, 128, 0));
    }

    fn v6_with_ext(ext: &[u8], first: u8) -> Vec<u8> {
        let eth = EthSpec::default();
        let mut l4 = ext.to_vec();
        l4.extend_from_slice(&[0x30, 0x39, 0, 80, 0, 8, 0, 0]); // UDP 12345 -> 80
        build::ipv6(&eth, &[1; 16], &[2; 16], 64, first, &l4)
    }

    #[test]
    fn padding_after_ip_length_is_ignored() {
        let mut f = build::udp6(&Udp6Spec::default());
        let want = key_of(&f).unwrap();
        f.extend_from_slice(&[0xee; 20]);
        assert_eq!(key_of(&f).unwrap(), want);
        let mut g = build::tcp4(&Tcp4Spec {
            ip: Udp4Spec { vlan: Some(4), payload_len: 0, ..Default::default() },
            flags: 0,
        });
        assert_eq!(g.len(), 60); // 58 bytes of headers, padded
        let want = key_of(&g).unwrap();
        g.extend_from_slice(&[0xee; 20]);
        assert_eq!(key_of(&g).unwrap(), want);
        assert_eq!(want.tp_src, 1024);
    }

    #[test]
    fn ipv6_extension_headers() {
        // hop-by-hop -> destination options (16 bytes) -> UDP
        let mut ext = vec![60, 0, 0, 0, 0, 0, 0, 0];
        ext.extend_from_slice(&[17, 1]);
        ext.extend_from_slice(&[0; 14]);
        let k = key_of(&v6_with_ext(&ext, 0)).unwrap();
        assert_eq!((k.nw_proto, k.tp_src, k.tp_dst, k.nw_frag), (17, 12345, 80, 0));
        // first fragment -> UDP
        let k = key_of(&v6_with_ext(&[17, 0, 0, 1, 0, 0, 0, 9], 44)).unwrap();
        assert_eq!((k.nw_proto, k.tp_src, k.nw_frag), (17, 12345, FRAG_ANY));
        // later fragment: no L4
        let k = key_of(&v6_with_ext(&[17, 0, 0, 0x10, 0, 0, 0, 9], 44)).unwrap();
        assert_eq!((k.nw_proto, k.tp_src, k.nw_frag), (17, 0, FRAG_ANY | FRAG_LATER));
        // too many extension headers
        let chain: Vec<u8> = (0..9).flat_map(|_| [60, 0, 0, 0, 0, 0, 0, 0]).collect();
        assert_eq!(key_of(&v6_with_ext(&chain, 60)), Err(DropReason::BadIpv6));
        // extension header running past the payload
        assert_eq!(key_of(&v6_with_ext(&[17, 4, 0, 0, 0, 0, 0, 0], 0)), Err(DropReason::BadIpv6));
    }

    #[test]
    fn neighbor_discovery() {
        let target = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9];
        let f = build::nd_solicit(&EthSpec::default(), &[1; 16], &target);
        let k = key_of(&f).unwrap();
        assert_eq!((k.tp_src, k.tp_dst, k.nd_target, k.arp_sha, k.arp_tha), (135, 0, target, MAC_A, [0; 6]));
        // A zero-length option: ND fields cleared, frame kept.
        let mut g = f.clone();
        g[14 + 40 + 25] = 0;
        let k = key_of(&g).unwrap();
        assert_eq!((k.tp_src, k.nd_target, k.arp_sha), (135, [0; 16], [0; 6]));
        // Target link-layer option in an advertisement.
        let mut l4 = vec![136, 0, 0, 0, 0x60, 0, 0, 0];
        l4.extend_from_slice(&target);
        l4.extend_from_slice(&[2, 1, 9, 8, 7, 6, 5, 4]);
        let f = build::ipv6(&EthSpec::default(), &[1; 16], &[2; 16], 255, 58, &l4);
        let k = key_of(&f).unwrap();
        assert_eq!((k.tp_src, k.nd_target, k.arp_tha, k.arp_sha), (136, target, [9, 8, 7, 6, 5, 4], [0; 6]));
    }

    #[test]
    fn arp() {
        let f = build::arp_request(MAC_A, [10, 0, 0, 1], [10, 0, 0, 2], None);
        let k = key_of(&f).unwrap();
        let mut e = expect(0x0806);
        e.dl_dst = [0xff; 6];
        e.nw_proto = 1;
        e.nw_src = v4([10, 0, 0, 1]);
        e.nw_dst = v4([10, 0, 0, 2]);
        e.arp_sha = MAC_A;
        assert_eq!(k, e);
        // Truncated ARP: kept, ARP fields zero.
        let k = key_of(&f[..30]).unwrap();
        assert_eq!((k.dl_type, k.nw_proto, k.arp_sha), (0x0806, 0, [0; 6]));
    }

    #[test]
    fn llc_qinq_and_unknown() {
        let mut f = build::udp4(&Udp4Spec::default());
        build::poke16(&mut f, 12, 46); // 802.3 length
        let k = key_of(&f).unwrap();
        let e = expect(0x05ff);
        assert_eq!(k, e);
        // QinQ: outer 802.1ad, inner 802.1Q -> stop with dl_type 0x8100.
        let mut q = f[..12].to_vec();
        q.extend_from_slice(&[0x88, 0xa8, 0x00, 0x05, 0x81, 0x00, 0x00, 0x07, 0x08, 0x00]);
        q.extend_from_slice(&f[14..]);
        let k = key_of(&q).unwrap();
        assert_eq!((k.dl_type, k.vlan_tci, k.nw_proto), (0x8100, 5 | VLAN_PRESENT, 0));
        build::poke16(&mut f, 12, 0x88b5);
        assert_eq!(key_of(&f).unwrap(), expect(0x88b5));
    }

    #[test]
    fn every_drop_reason() {
        let udp = build::udp4(&Udp4Spec { payload_len: 40, ..Default::default() });
        assert_eq!(key_of(&udp[..13]), Err(DropReason::TooShort));
        let tagged = build::udp4(&Udp4Spec { vlan: Some(1), ..Default::default() });
        assert_eq!(key_of(&tagged[..17]), Err(DropReason::BadVlan));
        assert_eq!(key_of(&udp[..33]), Err(DropReason::BadIpv4Header));
        let mut bad = udp.clone();
        bad[14] = 0x44; // IHL 4
        assert_eq!(key_of(&bad), Err(DropReason::BadIpv4Header));
        bad[14] = 0x65; // version 6 in an IPv4 EtherType
        assert_eq!(key_of(&bad), Err(DropReason::BadIpv4Header));
        let mut bad = udp.clone();
        build::poke16(&mut bad, 16, 19); // total length < header length
        assert_eq!(key_of(&bad), Err(DropReason::BadIpv4Length));
        assert_eq!(key_of(&udp[..udp.len() - 1]), Err(DropReason::BadIpv4Length));
        let v6 = build::udp6(&Udp6Spec::default());
        assert_eq!(key_of(&v6[..53]), Err(DropReason::BadIpv6));
        assert_eq!(key_of(&v6[..14 + 40 + 7]), Err(DropReason::BadIpv6));
        let mut bad = udp.clone();
        build::poke16(&mut bad, 16, 27); // IP says only 7 bytes of UDP
        assert_eq!(key_of(&bad), Err(DropReason::BadL4));
        let mut bad6 = v6.clone();
        build::poke16(&mut bad6, 18, 7);
        assert_eq!(key_of(&bad6), Err(DropReason::BadL4));
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
            assert!(!r.name().is_empty());
        }
    }

    fn valid_frames() -> Vec<Vec<u8>> {
        let target = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9];
        vec![
            build::udp4(&Udp4Spec { vlan: Some(3), ..Default::default() }),
            build::tcp4(&Tcp4Spec::default()),
            build::icmp4_echo(&Icmp4EchoSpec::default()),
            build::udp6(&Udp6Spec::default()),
            build::tcp6(&Tcp6Spec::default()),
            build::icmp6_echo(&Icmp6EchoSpec::default()),
            build::nd_solicit(&EthSpec::default(), &[1; 16], &target),
            build::arp_request(MAC_A, [1, 2, 3, 4], [5, 6, 7, 8], Some(9)),
            v6_with_ext(&[17, 0, 0, 1, 0, 0, 0, 9], 44),
        ]
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut k = FlowKey::zeroed();
            let _ = extract(&data, 1, &mut k);
        }

        #[test]
        fn truncated_and_mutated_frames_never_panic(
            which in 0usize..9, cut in 0usize..200, flips in proptest::collection::vec((0usize..200, any::<u8>()), 0..4),
        ) {
            let mut f = valid_frames()[which].clone();
            for (at, v) in flips {
                if at < f.len() {
                    f[at] = v;
                }
            }
            let cut = cut.min(f.len());
            let mut k = FlowKey::zeroed();
            let r = extract(&f[..cut], 1, &mut k);
            prop_assert_eq!(k.in_port, 1);
            let mut again = FlowKey { tp_src: 99, ..Default::default() };
            prop_assert_eq!(extract(&f[..cut], 1, &mut again), r);
            prop_assert_eq!(again, k);
        }
    }

    #[test]
    fn valid_frames_all_extract() {
        for f in valid_frames() {
            assert!(key_of(&f).is_ok(), "{f:02x?}");
        }
    }
}
