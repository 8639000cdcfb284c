use super::*;
use crate::packet::build::{udp4, Udp4Spec};
use proptest::prelude::*;

const LOCAL: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const REMOTE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const U_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x11];
const NH_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x22];

fn cfg(in_key: KeyMode, out_key: KeyMode, csum: bool, seq: bool) -> TunnelConfig {
    TunnelConfig { remote_ip: REMOTE, local_ip: LOCAL, in_key, out_key, csum, seq, ttl: 64, tos: 0 }
}

fn header(mtu: u16) -> TunnelHeader {
    TunnelHeader { underlay: DpPortNo(9), eth_src: U_MAC, eth_dst: NH_MAC, mtu }
}

/// The underlay as the receiving side sees it (the sender's next hop is us).
fn receiver() -> UnderlayPort {
    UnderlayPort { port: DpPortNo(9), ip: REMOTE, mac: NH_MAC }
}

/// The map of the receiving side: tunnels back to LOCAL, one per config.
fn rx_map(tunnels: &[(u32, KeyMode)]) -> TunnelMap {
    let t = tunnels
        .iter()
        .map(|&(no, k)| {
            (DpPortNo(no), TunnelConfig { remote_ip: LOCAL, local_ip: REMOTE, ..cfg(k, k, false, false) })
        })
        .collect();
    TunnelMap::new(t, vec![receiver()])
}

fn inner() -> Vec<u8> {
    udp4(&Udp4Spec { payload_len: 18, ..Default::default() })
}

/// Encapsulates `frame` with `tpl` in a buffer with 256 bytes of headroom.
fn encap(tpl: &Template, frame: &[u8], key: u32, seq: u32, id: u16) -> Result<Vec<u8>, EncapError> {
    let mut room = vec![0u8; 2048];
    room[256..256 + frame.len()].copy_from_slice(frame);
    let mut b = Buf::new(&mut room, 256, frame.len());
    tpl.encap(&mut b, key, seq, id, 1792)?;
    Ok(b.data().to_vec())
}

#[test]
fn encap_writes_the_wire_format_ovs_sends() {
    let f = inner();
    let tpl = Template::new(&cfg(KeyMode::Flow, KeyMode::Flow, false, false), &header(1500));
    assert_eq!(tpl.len(), 14 + 20 + 8);
    let out = encap(&tpl, &f, 0x64, 0, 7).unwrap();
    assert_eq!(out.len(), f.len() + 42);
    assert_eq!((&out[..6], &out[6..12], &out[12..14]), (&NH_MAC[..], &U_MAC[..], &[0x08, 0x00][..]));
    let ip = ipv4::Packet::new_checked(&out[14..]).unwrap();
    assert_eq!(usize::from(ip.total_len()), out.len() - 14);
    assert_eq!((ip.ident(), ip.flags_frag(), ip.ttl(), ip.protocol()), (7, ipv4::DF, 64, 47));
    assert_eq!((ip.src(), ip.dst()), (LOCAL.octets(), REMOTE.octets()));
    assert!(ip.verify_checksum());
    assert_eq!(&out[34..42], &[0x20, 0x00, 0x65, 0x58, 0, 0, 0, 0x64]);
    assert_eq!(&out[42..], &f[..]);
    // The checksum is right for every length and ID, not just one.
    for (len, id) in [(60usize, 0u16), (61, 0xffff), (1400, 0x8000)] {
        let f = vec![0xa5u8; len];
        let out = encap(&tpl, &f, 1, 0, id).unwrap();
        assert!(ipv4::Packet::new_checked(&out[14..]).unwrap().verify_checksum(), "{len} {id}");
    }
}

#[test]
fn fixed_keys_checksums_and_sequence_numbers() {
    let f = inner();
    let tpl = Template::new(&cfg(KeyMode::None, KeyMode::Fixed(0xabcd), true, true), &header(1500));
    let out = encap(&tpl, &f, 0x64, 41, 1).unwrap();
    let g = gre::Packet::new_checked(&out[34..]).unwrap();
    assert_eq!((g.key(), g.seq(), g.has_checksum()), (Some(0xabcd), Some(41), true));
    assert!(g.verify_checksum());
    assert_eq!(g.payload(), &f[..]);
    // No key at all.
    let tpl = Template::new(&cfg(KeyMode::None, KeyMode::None, false, false), &header(1500));
    let out = encap(&tpl, &f, 0x64, 0, 1).unwrap();
    assert_eq!(&out[34..38], &[0, 0, 0x65, 0x58]);
    assert_eq!(&out[38..], &f[..]);
}

#[test]
fn mtu_and_headroom_limits_drop() {
    let tpl = Template::new(&cfg(KeyMode::Flow, KeyMode::Flow, false, false), &header(1500));
    // Outer IP = 20 + 8 + inner: 1472 inner bytes fit exactly, one more does not.
    assert!(encap(&tpl, &vec![0; 1472], 0, 0, 0).is_ok());
    assert_eq!(encap(&tpl, &vec![0; 1473], 0, 0, 0), Err(EncapError::TooBig));
    let big = Template::new(&cfg(KeyMode::Flow, KeyMode::Flow, false, false), &header(9000));
    assert_eq!(encap(&big, &vec![0; 1790], 0, 0, 0), Err(EncapError::TooBig));
    let mut room = vec![0u8; 100];
    let mut b = Buf::new(&mut room, 10, 60);
    assert_eq!(tpl.encap(&mut b, 0, 0, 0, 1792), Err(EncapError::TooBig));
    assert_eq!((b.head(), b.len()), (10, 60), "a refused frame is left as it was");
}

#[test]
fn decap_finds_the_port_and_strips_the_outer_headers() {
    let f = inner();
    let tpl = Template::new(&cfg(KeyMode::Flow, KeyMode::Flow, true, true), &header(1500));
    let map = rx_map(&[(5, KeyMode::Flow)]);
    let mut wire = encap(&tpl, &f, 0x64, 3, 9).unwrap();
    wire.extend_from_slice(&[0; 6]); // Ethernet padding after the IP packet is ignored
    match classify_underlay(&map, &receiver(), &wire) {
        UnderlayVerdict::Decap { port, meta, strip, inner_len } => {
            assert_eq!(port, DpPortNo(5));
            assert_eq!(meta, TunnelMeta { tun_id: 0x64, tun_src: LOCAL.into(), tun_dst: REMOTE.into() });
            assert_eq!(&wire[strip..strip + inner_len], &f[..]);
        }
        v => panic!("{v:?}"),
    }
}

#[test]
fn key_matching_prefers_exact_keys() {
    let f = inner();
    let map = rx_map(&[(5, KeyMode::Flow), (6, KeyMode::Fixed(7)), (8, KeyMode::None)]);
    let port_of = |out_key: KeyMode, key: u32| {
        let tpl = Template::new(&cfg(KeyMode::None, out_key, false, false), &header(1500));
        match classify_underlay(&map, &receiver(), &encap(&tpl, &f, key, 0, 0).unwrap()) {
            UnderlayVerdict::Decap { port, meta, .. } => Some((port.0, meta.tun_id)),
            _ => None,
        }
    };
    assert_eq!(port_of(KeyMode::Fixed(7), 0), Some((6, 7)));
    assert_eq!(port_of(KeyMode::Flow, 99), Some((5, 99)));
    assert_eq!(port_of(KeyMode::None, 0), Some((8, 0)));
    let only_fixed = rx_map(&[(6, KeyMode::Fixed(7))]);
    let tpl = Template::new(&cfg(KeyMode::None, KeyMode::Fixed(8), false, false), &header(1500));
    let wire = encap(&tpl, &f, 0, 0, 0).unwrap();
    assert_eq!(
        classify_underlay(&only_fixed, &receiver(), &wire),
        UnderlayVerdict::Drop(UnderlayDrop::NoPort)
    );
}

#[test]
fn bad_outer_headers_are_refused_with_their_reason() {
    use UnderlayDrop::*;
    let f = inner();
    let tpl = Template::new(&cfg(KeyMode::Flow, KeyMode::Flow, true, false), &header(1500));
    let map = rx_map(&[(5, KeyMode::Flow)]);
    let good = encap(&tpl, &f, 1, 0, 0).unwrap();
    let verdict = |w: &[u8]| classify_underlay(&map, &receiver(), w);
    let with = |at: usize, v: u8| {
        let mut w = good.clone();
        w[at] = v;
        w
    };
    let fix_ip = |mut w: Vec<u8>| {
        put16(&mut w, 24, 0);
        let c = checksum::checksum(&w[14..34]);
        put16(&mut w, 24, c);
        w
    };
    assert_eq!(verdict(&with(0, 0x03)), UnderlayVerdict::Drop(NotForUs), "another MAC");
    assert_eq!(verdict(&with(24, good[24] ^ 1)), UnderlayVerdict::Drop(BadCsum), "IP checksum");
    assert_eq!(verdict(&fix_ip(with(33, 3))), UnderlayVerdict::Drop(NotForUs), "another address");
    assert_eq!(verdict(&fix_ip(with(20, 0x20))), UnderlayVerdict::Drop(NotForUs), "a fragment");
    assert_eq!(verdict(&fix_ip(with(23, 17))), UnderlayVerdict::Drop(NotForUs), "UDP");
    assert_eq!(verdict(&with(35, 1)), UnderlayVerdict::Drop(BadGre), "version 1");
    assert_eq!(verdict(&with(34, 0xc0)), UnderlayVerdict::Drop(BadGre), "routing");
    assert_eq!(verdict(&with(37, 0x59)), UnderlayVerdict::Drop(BadGre), "not Ethernet");
    assert_eq!(verdict(&with(60, good[60] ^ 0xff)), UnderlayVerdict::Drop(BadCsum), "GRE checksum");
    assert_eq!(verdict(&good[..40]), UnderlayVerdict::Drop(Truncated));
    assert_eq!(verdict(&good[..10]), UnderlayVerdict::Drop(Truncated));
    // An IP packet whose GRE payload is shorter than an Ethernet header.
    let short = encap(&tpl, &[1, 2, 3], 1, 0, 0).unwrap();
    assert_eq!(verdict(&short), UnderlayVerdict::Drop(Truncated));
    // ARP (any destination) and pings to us go to the slow path; other ICMP does not.
    let mut arp = vec![0xff; 6];
    arp.extend_from_slice(&[2; 6]);
    arp.extend_from_slice(&[0x08, 0x06]);
    arp.resize(42, 0);
    assert_eq!(verdict(&arp), UnderlayVerdict::SlowPath);
    let mut ping = fix_ip(with(23, 1));
    ping[34] = 8;
    assert_eq!(verdict(&ping), UnderlayVerdict::SlowPath);
    ping[34] = 0;
    assert_eq!(verdict(&ping), UnderlayVerdict::Drop(NotForUs));
    assert!(matches!(verdict(&good), UnderlayVerdict::Decap { .. }));
}

#[test]
fn set_header_publishes_a_template() {
    let t = Tunnels::new(TunnelMap::new(
        vec![(DpPortNo(4), cfg(KeyMode::Flow, KeyMode::Flow, false, true))],
        vec![],
    ));
    assert!(t.load().tunnels[0].template.is_none());
    assert!(t.set_header(DpPortNo(4), Some(header(1400))));
    let m = t.load();
    let tpl = m.tunnels[0].template.as_ref().unwrap();
    assert_eq!((tpl.underlay, tpl.len()), (DpPortNo(9), 14 + 20 + 12));
    assert_eq!((m.tunnels[0].next_seq(), m.tunnels[0].next_seq()), (0, 1));
    assert!(t.set_header(DpPortNo(4), None));
    assert!(t.load().tunnels[0].template.is_none());
    assert!(!t.set_header(DpPortNo(5), None));
}

fn check_verdict(map: &TunnelMap, w: &[u8]) -> Result<(), TestCaseError> {
    if let UnderlayVerdict::Decap { port, strip, inner_len, meta } = classify_underlay(map, &receiver(), w) {
        // Only a frame that really is a well-formed GRE packet to us is decapsulated.
        prop_assert_eq!(port, DpPortNo(5));
        prop_assert!(strip + inner_len <= w.len() && inner_len >= 14);
        prop_assert_eq!(&w[..6], &NH_MAC[..]);
        let ip = ipv4::Packet::new_checked(&w[14..]).map_err(|_| TestCaseError::fail("bad IP"))?;
        prop_assert!(ip.verify_checksum() && !ip.is_fragment() && ip.protocol() == 47);
        prop_assert_eq!(ip.dst(), REMOTE.octets());
        let g = gre::Packet::new_checked(ip.payload()).map_err(|_| TestCaseError::fail("bad GRE"))?;
        prop_assert!(g.verify_checksum() && g.protocol() == gre::proto::TEB);
        prop_assert_eq!(meta.tun_id, u64::from(g.key().unwrap_or(0)));
        prop_assert_eq!(&w[strip..strip + inner_len], g.payload());
    }
    Ok(())
}

proptest! {
    /// Random bytes and mutated valid GRE frames: never a panic, and whatever is decapsulated
    /// is a well-formed GRE packet for us with an inner Ethernet header in bounds.
    #[test]
    fn decap_never_panics_and_passes_only_well_formed_gre(
        random in proptest::collection::vec(any::<u8>(), 0..120),
        muts in proptest::collection::vec((0usize..120, any::<u8>()), 0..6),
        cut in 0usize..200,
        csum in any::<bool>(),
        seq in any::<bool>(),
    ) {
        let map = rx_map(&[(5, KeyMode::Flow)]);
        check_verdict(&map, &random)?;
        let tpl = Template::new(&cfg(KeyMode::Flow, KeyMode::Flow, csum, seq), &header(1500));
        let mut w = encap(&tpl, &inner(), 0x64, 1, 1).unwrap();
        for (at, v) in muts {
            if let Some(b) = w.get_mut(at) {
                *b = v;
            }
        }
        check_verdict(&map, &w)?;
        w.truncate(cut);
        check_verdict(&map, &w)?;
    }
}

#[test]
fn lookup_tells_remotes_and_local_addresses_apart() {
    let mk = |remote: [u8; 4], local: [u8; 4], in_key| TunnelConfig {
        remote_ip: remote.into(),
        local_ip: local.into(),
        ..cfg(in_key, KeyMode::None, false, false)
    };
    let map = TunnelMap::new(
        vec![
            (DpPortNo(4), mk([10, 0, 0, 4], [10, 0, 0, 1], KeyMode::Flow)),
            (DpPortNo(2), mk([10, 0, 0, 2], [10, 0, 0, 1], KeyMode::Flow)),
            (DpPortNo(3), mk([10, 0, 0, 3], [10, 0, 0, 1], KeyMode::Fixed(5))),
            (DpPortNo(5), mk([10, 0, 0, 3], [10, 0, 0, 9], KeyMode::Flow)),
            (DpPortNo(6), mk([10, 0, 0, 3], [10, 0, 0, 1], KeyMode::Flow)),
        ],
        vec![],
    );
    let find =
        |src: [u8; 4], dst: [u8; 4], key| map.find(u32::from_be_bytes(src), u32::from_be_bytes(dst), key);
    let port = |t: Option<&TunnelEntry>| t.map(|t| t.port.0);
    assert_eq!(port(find([10, 0, 0, 2], [10, 0, 0, 1], Some(1))), Some(2));
    assert_eq!(port(find([10, 0, 0, 4], [10, 0, 0, 1], None)), Some(4));
    assert_eq!(port(find([10, 0, 0, 3], [10, 0, 0, 1], Some(5))), Some(3));
    assert_eq!(port(find([10, 0, 0, 3], [10, 0, 0, 1], Some(6))), Some(6));
    assert_eq!(port(find([10, 0, 0, 3], [10, 0, 0, 9], Some(5))), Some(5));
    assert_eq!(port(find([10, 0, 0, 5], [10, 0, 0, 1], None)), None);
    assert_eq!(port(find([10, 0, 0, 2], [10, 0, 0, 9], None)), None);
}

proptest! {
    /// The outer IPv4 checksum the template patches per packet (from a precomputed sum, the
    /// length and the ID) and the GRE checksum equal a full recompute, for any addresses, TOS,
    /// TTL, key, sequence number, ID and inner length; and decap gives the inner frame back.
    #[test]
    fn encap_checksums_equal_a_full_recompute(
        ends in (any::<[u8; 4]>(), any::<[u8; 4]>(), any::<u8>(), any::<u8>()),
        opts in (any::<bool>(), any::<bool>(), 0u8..3, any::<u32>(), any::<u32>(), any::<u16>()),
        inner_len in 14usize..1400,
        fill in any::<u8>(),
    ) {
        let (local, remote, tos, ttl) = ends;
        let (csum, seq, mode, key, seqno, id) = opts;
        let key_mode = [KeyMode::None, KeyMode::Fixed(key ^ 1), KeyMode::Flow][usize::from(mode)];
        let c = TunnelConfig {
            remote_ip: remote.into(), local_ip: local.into(), in_key: key_mode, out_key: key_mode,
            csum, seq, ttl, tos,
        };
        let tpl = Template::new(&c, &header(1500));
        let f: Vec<u8> = (0..inner_len).map(|i| (i as u8).wrapping_mul(fill)).collect();
        let w = encap(&tpl, &f, key, seqno, id).unwrap();
        let mut full = w.clone();
        put16(&mut full, 24, 0);
        let ip_csum = checksum::checksum(&full[14..34]);
        prop_assert_eq!(be16(&w, 24), ip_csum);
        let ip = ipv4::Packet::new_checked(&w[14..]).unwrap();
        prop_assert_eq!((ip.ident(), ip.tos(), ip.ttl(), usize::from(ip.total_len())), (id, tos, ttl, w.len() - 14));
        let g = gre::Packet::new_checked(ip.payload()).unwrap();
        if csum {
            let mut gre_bytes = ip.payload().to_vec();
            put16(&mut gre_bytes, 4, 0);
            prop_assert_eq!(g.checksum(), Some(checksum::checksum(&gre_bytes)));
        }
        let want_key = match key_mode { KeyMode::None => None, KeyMode::Fixed(k) => Some(k), KeyMode::Flow => Some(key) };
        prop_assert_eq!((g.key(), g.seq(), g.payload()), (want_key, seq.then_some(seqno), &f[..]));
        // The receiving side (its underlay at `remote`) finds the tunnel back to `local`.
        let rx = TunnelMap::new(
            vec![(DpPortNo(5), TunnelConfig { remote_ip: local.into(), local_ip: remote.into(), ..c })],
            vec![],
        );
        let u = UnderlayPort { port: DpPortNo(9), ip: remote.into(), mac: NH_MAC };
        let got = classify_underlay(&rx, &u, &w);
        prop_assert_eq!(ip.flags_frag(), ipv4::DF);
        match got {
            UnderlayVerdict::Decap { port, strip, inner_len: n, meta } => {
                prop_assert_eq!((port, &w[strip..strip + n]), (DpPortNo(5), &f[..]));
                prop_assert_eq!(meta.tun_id, u64::from(want_key.unwrap_or(0)));
            }
            v => prop_assert!(false, "{:?}", v),
        }
    }
}
