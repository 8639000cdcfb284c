//! Arbitrary frames into the flow-key extractor and the header views of `packet`: never
//! panics; extraction is deterministic and overwrites every field; a key it accepts agrees
//! with the frame's bytes, read here independently of the extractor; every checked view's
//! accessors stay in bounds.
//!
//! Input: one byte of ingress port, then the frame.
#![no_main]

use std::hint::black_box;

use libfuzzer_sys::fuzz_target;
use xdpswitch::datapath::extract::{extract, DropReason};
use xdpswitch::datapath::flow::{format_masked, FlowKey, FlowMask, FRAG_ANY, FRAG_LATER, VLAN_PRESENT};
use xdpswitch::packet::{arp, ethernet, gre, icmp, ipv4, ipv6, sctp, tcp, udp, vlan};

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn is_tpid(t: u16) -> bool {
    t == 0x8100 || t == 0x88a8
}

/// Checks the key of an accepted frame against the frame, field by field.
fn check_accepted(f: &[u8], k: &FlowKey) {
    let outer = be16(f, 12);
    let (l3_at, ty) = if is_tpid(outer) {
        assert_eq!(k.vlan_tci, be16(f, 14) | VLAN_PRESENT);
        (18, be16(f, 16))
    } else {
        assert_eq!(k.vlan_tci, 0);
        (14, outer)
    };
    let l3 = &f[l3_at..];
    let no_l3 = |k: &FlowKey| {
        assert_eq!((k.nw_proto, k.nw_tos, k.nw_ttl, k.nw_frag), (0, 0, 0, 0));
        assert_eq!((k.nw_src, k.nw_dst, k.nd_target), ([0; 16], [0; 16], [0; 16]));
        assert_eq!((k.tp_src, k.tp_dst, k.tcp_flags, k.ipv6_label), (0, 0, 0, 0));
    };
    if is_tpid(outer) && is_tpid(ty) {
        // A second tag stops parsing.
        assert_eq!(k.dl_type, ty);
        return no_l3(k);
    }
    if ty < 0x0600 {
        assert_eq!(k.dl_type, 0x05ff);
        return no_l3(k);
    }
    assert_eq!(k.dl_type, ty);
    match ty {
        0x0800 => {
            let ip = ipv4::Packet::new_checked(l3).expect("an accepted IPv4 header is well formed");
            assert_eq!(k.nw_src[..4], ip.src());
            assert_eq!(k.nw_dst[..4], ip.dst());
            assert_eq!((&k.nw_src[4..], &k.nw_dst[4..]), (&[0; 12][..], &[0; 12][..]));
            assert_eq!((k.nw_proto, k.nw_tos, k.nw_ttl), (ip.protocol(), ip.tos(), ip.ttl()));
            let frag = match (ip.is_fragment(), ip.frag_offset() != 0) {
                (false, _) => 0,
                (true, false) => FRAG_ANY,
                (true, true) => FRAG_ANY | FRAG_LATER,
            };
            assert_eq!(k.nw_frag, frag);
            assert_eq!(k.ipv6_label, 0);
            check_l4(ip.payload(), ip.protocol(), false, frag & FRAG_LATER != 0, k);
        }
        0x86dd => {
            let ip = ipv6::Packet::new_checked(l3).expect("an accepted IPv6 header is well formed");
            assert_eq!((k.nw_src, k.nw_dst), (ip.src(), ip.dst()));
            assert_eq!(
                (k.nw_tos, k.nw_ttl, k.ipv6_label),
                (ip.traffic_class(), ip.hop_limit(), ip.flow_label())
            );
            assert_eq!(k.ipv6_label & !ipv6::FLOW_LABEL_MASK, 0);
            let ul = ipv6::upper_layer(ip.payload(), ip.next_header()).expect("an accepted chain");
            assert_eq!(k.nw_proto, ul.proto);
            assert_eq!(k.nw_frag & FRAG_ANY != 0, ul.fragment);
            assert_eq!(k.nw_frag & FRAG_LATER != 0, ul.later_fragment);
            assert!(ul.offset <= ip.payload().len());
            check_l4(&ip.payload()[ul.offset..], ul.proto, true, ul.later_fragment, k);
        }
        0x0806 | 0x8035 => {
            assert_eq!((k.nw_tos, k.nw_ttl, k.nw_frag, k.tp_src, k.tp_dst, k.tcp_flags), (0, 0, 0, 0, 0, 0));
            match arp::Packet::new_checked(l3) {
                Ok(a) if a.is_ethernet_ipv4() => {
                    assert_eq!(k.nw_src[..4], a.spa());
                    assert_eq!(k.nw_dst[..4], a.tpa());
                    assert_eq!((k.arp_sha, k.arp_tha), (a.sha(), a.tha()));
                    assert_eq!(u16::from(k.nw_proto), if a.oper() <= 0xff { a.oper() } else { 0 });
                }
                _ => {
                    assert_eq!((k.nw_src, k.nw_dst, k.nw_proto), ([0; 16], [0; 16], 0));
                    assert_eq!((k.arp_sha, k.arp_tha), ([0; 6], [0; 6]));
                }
            }
        }
        _ => {
            no_l3(k);
            assert_eq!((k.arp_sha, k.arp_tha), ([0; 6], [0; 6]));
        }
    }
}

/// Ports, ICMP type/code, TCP flags and ND fields of an accepted IP packet.
fn check_l4(l4: &[u8], proto: u8, v6: bool, later: bool, k: &FlowKey) {
    let (mut src, mut dst, mut flags) = (0, 0, 0);
    let mut nd = false;
    if !later {
        match proto {
            6 | 17 | 132 => {
                (src, dst) = (be16(l4, 0), be16(l4, 2));
                if proto == 6 {
                    flags = be16(l4, 12) & tcp::FLAGS_MASK;
                }
            }
            1 if !v6 => (src, dst) = (u16::from(l4[0]), u16::from(l4[1])),
            58 if v6 => {
                (src, dst) = (u16::from(l4[0]), u16::from(l4[1]));
                nd = l4[1] == 0 && (l4[0] == 135 || l4[0] == 136);
            }
            _ => {}
        }
    }
    assert_eq!((k.tp_src, k.tp_dst, k.tcp_flags), (src, dst, flags));
    if !nd {
        assert_eq!((k.nd_target, k.arp_sha, k.arp_tha), ([0; 16], [0; 6], [0; 6]));
    } else if k.nd_target != [0; 16] {
        assert_eq!(k.nd_target[..], l4[8..24]);
    }
}

/// Every checked view at every offset of the first 80 bytes: accessors must not panic, and
/// lengths they report stay inside the buffer.
fn views(f: &[u8]) {
    for at in 0..f.len().min(80) {
        let b = &f[at..];
        if let Ok(e) = ethernet::Packet::new_checked(b) {
            black_box((e.dst(), e.src(), e.ethertype(), e.payload().len()));
        }
        if let Ok(v) = vlan::Packet::new_checked(b) {
            black_box((v.tci(), v.vid(), v.pcp(), v.ethertype(), v.payload().len()));
        }
        if let Ok(a) = arp::Packet::new_checked(b) {
            black_box((
                a.is_ethernet_ipv4(),
                a.htype(),
                a.ptype(),
                a.oper(),
                a.sha(),
                a.spa(),
                a.tha(),
                a.tpa(),
            ));
        }
        if let Ok(ip) = ipv4::Packet::new_checked(b) {
            let p = ip.payload();
            assert_eq!(p.len(), usize::from(ip.total_len()) - ip.header_len());
            black_box((ip.ident(), ip.flags_frag(), ip.more_frags(), ip.frag_offset(), ip.checksum()));
            black_box((ip.verify_checksum(), ip.src(), ip.dst(), ip.tos(), ip.ttl()));
        }
        if let Ok(ip) = ipv6::Packet::new_checked(b) {
            assert_eq!(ip.payload().len(), usize::from(ip.payload_len()));
            black_box((ip.traffic_class(), ip.flow_label(), ip.hop_limit(), ip.src(), ip.dst()));
            if let Ok(ul) = ipv6::upper_layer(ip.payload(), ip.next_header()) {
                assert!(ul.offset <= ip.payload().len());
            }
        }
        if let Ok(i) = icmp::Packet::new_checked(b) {
            black_box((i.msg_type(), i.code(), i.checksum(), i.ident(), i.seq(), i.payload().len()));
            if i.is_nd_sized() {
                black_box(i.nd_target());
                for opt in icmp::nd_options(i.nd_options()) {
                    if let Ok((_, data)) = opt {
                        assert!(data.len() + 2 <= i.nd_options().len());
                    }
                }
            }
        }
        if let Ok(t) = tcp::Packet::new_checked(b) {
            assert!(t.header_len() >= tcp::HEADER_LEN && t.header_len() <= b.len());
            black_box((t.src_port(), t.dst_port(), t.seq(), t.ack(), t.flags(), t.window()));
            black_box((t.checksum(), t.urgent(), t.payload().len()));
        }
        if let Ok(u) = udp::Packet::new_checked(b) {
            black_box((u.src_port(), u.dst_port(), u.len(), u.is_empty(), u.checksum(), u.payload().len()));
        }
        if let Ok(s) = sctp::Packet::new_checked(b) {
            black_box((s.src_port(), s.dst_port(), s.vtag(), s.checksum(), s.verify_checksum()));
        }
        if let Ok(g) = gre::Packet::new_checked(b) {
            assert!(g.header_len() <= b.len());
            black_box((g.flags(), g.protocol(), g.checksum(), g.key(), g.seq(), g.verify_checksum()));
            black_box(g.payload().len());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&port, f)) = data.split_first() else { return };
    let in_port = u32::from(port);
    let mut k = FlowKey::default();
    let r = extract(f, in_port, &mut k);
    // Deterministic, and every field overwritten: a dirty key ends up the same.
    let mut dirty = FlowKey { tp_src: 7, metadata: 9, tun_id: 3, nw_ttl: 1, ..FlowKey::default() };
    dirty.nw_src = [0xee; 16];
    assert_eq!(extract(f, in_port, &mut dirty), r);
    assert_eq!(dirty, k);
    assert_eq!(k.in_port, in_port);
    assert_eq!((k.tun_id, k.tun_src, k.tun_dst, k.metadata, k.mpls_lse), (0, 0, 0, 0, 0));
    assert_eq!((k.pad0, k.pad1, k.pad2), (0, 0, 0));
    views(f);
    if f.len() < ethernet::HEADER_LEN {
        assert_eq!(r, Err(DropReason::TooShort));
        return;
    }
    assert_eq!((k.dl_dst, k.dl_src), (f[..6].try_into().unwrap(), f[6..12].try_into().unwrap()));
    let outer = be16(f, 12);
    let inner = if is_tpid(outer) && f.len() >= 18 { be16(f, 16) } else { outer };
    match r {
        Ok(()) => {
            check_accepted(f, &k);
            assert!(k.matches_masked(&FlowMask::exact(), &k.masked(&FlowMask::exact())));
            black_box(format_masked(&k, &FlowMask::exact()));
        }
        Err(DropReason::TooShort) => panic!("a {}-byte frame is not too short", f.len()),
        Err(DropReason::BadVlan) => assert!(is_tpid(outer) && f.len() < 14 + vlan::HEADER_LEN),
        Err(DropReason::BadIpv4Header | DropReason::BadIpv4Length) => assert_eq!(inner, 0x0800),
        Err(DropReason::BadIpv6) => assert_eq!(inner, 0x86dd),
        Err(DropReason::BadL4) => assert!(inner == 0x0800 || inner == 0x86dd),
    }
});
