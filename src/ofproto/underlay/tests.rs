//! Tests of the underlay slow path: frames in, frames and headers out, on a manual clock.

use super::*;
use crate::packet::build;
use proptest::prelude::*;

const ETH1: DpPortNo = DpPortNo(100);
const OUR_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const OUR_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const H2_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const H2_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
const GW_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 254);
const GW_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xfe];
const FAR_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
/// Tunnel to 192.0.2.2 (on the subnet).
const GRE_H2: DpPortNo = DpPortNo(10);
/// Tunnel to 198.51.100.7 (through the gateway).
const GRE_FAR: DpPortNo = DpPortNo(11);

fn underlay_cfg(gateway: Option<Ipv4Addr>) -> UnderlayConfig {
    UnderlayConfig {
        port: ETH1,
        name: "eth1".into(),
        mac: OUR_MAC,
        ip: OUR_IP,
        prefix_len: 24,
        gateway,
        mtu: 1500,
    }
}

fn gre(remote: Ipv4Addr) -> TunnelConfig {
    TunnelConfig::flow_keyed(OUR_IP, remote)
}

fn rig() -> Underlay {
    Underlay::new(
        vec![underlay_cfg(Some(GW_IP))],
        vec![(GRE_H2, "gre-h2".into(), gre(H2_IP)), (GRE_FAR, "gre-far".into(), gre(FAR_IP))],
    )
    .unwrap()
}

fn header(mac: [u8; 6]) -> TunnelHeader {
    TunnelHeader { underlay: ETH1, eth_src: OUR_MAC, eth_dst: mac, mtu: 1500 }
}

fn pending(port: DpPortNo, key: u32, tag: u8) -> TunnelPending {
    TunnelPending { port, key, packet: vec![tag; 60] }
}

/// An ARP frame as another host sends it.
fn arp_in(op: u16, eth_dst: [u8; 6], sha: [u8; 6], spa: Ipv4Addr, tha: [u8; 6], tpa: Ipv4Addr) -> Vec<u8> {
    let mut f = arp_frame(op, eth_dst, (sha, spa), (tha, tpa));
    // As a peer sends it: the Ethernet source is its own.
    ethernet::Packet::new_unchecked(&mut f[..]).set_src(sha);
    f
}

/// The ARP fields of a frame we sent: (eth_dst, oper, sha, spa, tha, tpa).
type ArpFields = ([u8; 6], u16, [u8; 6], Ipv4Addr, [u8; 6], Ipv4Addr);

fn parse_arp(o: &UnderlayOut) -> ArpFields {
    let UnderlayOut::Send { port, frame } = o else { panic!("not a frame: {o:?}") };
    assert_eq!(*port, ETH1);
    let e = ethernet::Packet::new_checked(&frame[..]).unwrap();
    assert_eq!((e.src(), e.ethertype()), (OUR_MAC, ether_type::ARP));
    let a = arp::Packet::new_checked(e.payload()).unwrap();
    assert!(a.is_ethernet_ipv4());
    (e.dst(), a.oper(), a.sha(), Ipv4Addr::from(a.spa()), a.tha(), Ipv4Addr::from(a.tpa()))
}

/// Asserts `o` is a broadcast request from us for `target`.
fn assert_request(o: &UnderlayOut, target: Ipv4Addr) {
    assert_eq!(parse_arp(o), (ethernet::BROADCAST, arp::OP_REQUEST, OUR_MAC, OUR_IP, [0; 6], target));
}

fn secs(t0: Instant, s: f64) -> Instant {
    t0 + Duration::from_secs_f64(s)
}

#[test]
fn answers_who_has_our_ip_only() {
    let mut u = rig();
    let (t0, mut out) = (Instant::now(), Vec::new());
    let req = arp_in(arp::OP_REQUEST, ethernet::BROADCAST, H2_MAC, H2_IP, [0; 6], OUR_IP);
    u.on_packet(ETH1, &req, t0, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(parse_arp(&out[0]), (H2_MAC, arp::OP_REPLY, OUR_MAC, OUR_IP, H2_MAC, H2_IP));
    assert_eq!(u.stats().arp_replies_sent, 1);
    // Who-has for another address, or on a port that is no underlay: nothing.
    out.clear();
    let other = arp_in(arp::OP_REQUEST, ethernet::BROADCAST, H2_MAC, H2_IP, [0; 6], GW_IP);
    u.on_packet(ETH1, &other, t0, &mut out);
    u.on_packet(DpPortNo(7), &req, t0, &mut out);
    assert!(out.is_empty());
    assert_eq!(u.stats().ignored, 2);
}

#[test]
fn start_announces_and_resolves_each_next_hop_once() {
    let mut u = Underlay::new(
        vec![underlay_cfg(Some(GW_IP))],
        vec![
            (GRE_H2, "gre-h2".into(), gre(H2_IP)),
            (GRE_FAR, "gre-far".into(), gre(FAR_IP)),
            (DpPortNo(12), "gre-far2".into(), gre(Ipv4Addr::new(203, 0, 113, 9))),
        ],
    )
    .unwrap();
    let mut out = Vec::new();
    u.start(Instant::now(), &mut out);
    assert_eq!(out.len(), 3, "{out:?}");
    // A gratuitous ARP for our address, then one request per next hop (the gateway once).
    assert_request(&out[0], OUR_IP);
    assert_request(&out[1], H2_IP);
    assert_request(&out[2], GW_IP);
}

#[test]
fn first_pending_packet_asks_for_the_next_hop() {
    let mut u = rig();
    let (t0, mut out) = (Instant::now(), Vec::new());
    u.on_pending(pending(GRE_H2, 0x64, 1), t0, &mut out);
    assert_eq!(out.len(), 1);
    assert_request(&out[0], H2_IP);
    out.clear();
    u.on_pending(pending(GRE_H2, 0x64, 2), secs(t0, 0.1), &mut out);
    assert!(out.is_empty(), "one request per resolution: {out:?}");
    assert_eq!(u.stats().pending_queued, 2);
    // A packet for no known tunnel is dropped.
    u.on_pending(pending(DpPortNo(99), 1, 3), t0, &mut out);
    assert_eq!(u.stats().pending_dropped, 1);
}

#[test]
fn retries_every_second_then_fails_and_drops_pending() {
    let mut u = rig();
    let (t0, mut out) = (Instant::now(), Vec::new());
    u.on_pending(pending(GRE_H2, 1, 1), t0, &mut out);
    u.on_pending(pending(GRE_H2, 1, 2), t0, &mut out);
    out.clear();
    u.tick(secs(t0, 0.5), &mut out);
    assert!(out.is_empty());
    u.tick(secs(t0, 1.0), &mut out);
    assert_eq!(out.len(), 1);
    assert_request(&out[0], H2_IP);
    u.tick(secs(t0, 2.0), &mut out);
    assert_eq!(out.len(), 2);
    assert_request(&out[1], H2_IP);
    out.clear();
    // Three requests unanswered: failed, the two pending packets dropped.
    u.tick(secs(t0, 3.0), &mut out);
    assert!(out.is_empty());
    let s = u.stats();
    assert_eq!((s.arp_requests_sent, s.resolve_failed, s.pending_dropped), (3, 1, 2));
    assert!(u.show_neighbors(secs(t0, 3.0), false).contains("FAILED"));
    u.tick(secs(t0, 10.0), &mut out);
    assert!(out.is_empty(), "a failed neighbor is not retried without traffic");
    // Later traffic retries: right after the failure it is dropped, a second later it asks.
    let mut u2 = rig();
    let mut o2 = Vec::new();
    u2.on_pending(pending(GRE_H2, 1, 1), t0, &mut o2);
    for s in [1.0, 2.0, 3.0] {
        u2.tick(secs(t0, s), &mut o2);
    }
    o2.clear();
    u2.on_pending(pending(GRE_H2, 1, 2), secs(t0, 3.5), &mut o2);
    assert!(o2.is_empty());
    assert_eq!(u2.stats().pending_dropped, 2);
    u.on_pending(pending(GRE_H2, 1, 3), secs(t0, 10.0), &mut out);
    assert_eq!(out.len(), 1);
    assert_request(&out[0], H2_IP);
}

#[test]
fn reply_publishes_header_then_releases_in_order() {
    let mut u = rig();
    let (t0, mut out) = (Instant::now(), Vec::new());
    for (i, key) in [(1u8, 5u32), (2, 6), (3, 7)] {
        u.on_pending(pending(GRE_H2, key, i), t0, &mut out);
    }
    out.clear();
    let reply = arp_in(arp::OP_REPLY, OUR_MAC, H2_MAC, H2_IP, OUR_MAC, OUR_IP);
    u.on_packet(ETH1, &reply, secs(t0, 0.3), &mut out);
    assert_eq!(
        out,
        vec![
            UnderlayOut::Header { tunnel: GRE_H2, header: Some(header(H2_MAC)) },
            UnderlayOut::Release { tunnel: GRE_H2, key: 5, packet: vec![1; 60] },
            UnderlayOut::Release { tunnel: GRE_H2, key: 6, packet: vec![2; 60] },
            UnderlayOut::Release { tunnel: GRE_H2, key: 7, packet: vec![3; 60] },
        ]
    );
    assert_eq!(u.stats().pending_released, 3);
    // A packet that raced the header publication goes straight back.
    out.clear();
    u.on_pending(pending(GRE_H2, 8, 4), secs(t0, 0.4), &mut out);
    assert_eq!(out, vec![UnderlayOut::Release { tunnel: GRE_H2, key: 8, packet: vec![4; 60] }]);
    // No retries once resolved.
    out.clear();
    u.tick(secs(t0, 5.0), &mut out);
    assert!(out.is_empty());
    assert!(u
        .show_tunnels(false)
        .contains("gre-h2 (dp 10): gre remote_ip=192.0.2.2 local_ip=192.0.2.1 key=flow"));
    assert!(u.show_tunnels(false).contains("via 192.0.2.2 on eth1: eth_dst=02:00:00:00:00:02 mtu=1500"));
}

#[test]
fn pending_packets_are_bounded() {
    let mut u = rig();
    let (t0, mut out) = (Instant::now(), Vec::new());
    for i in 0..MAX_PENDING + 3 {
        u.on_pending(pending(GRE_H2, i as u32, 0), t0, &mut out);
    }
    let s = u.stats();
    assert_eq!((s.pending_queued, s.pending_dropped), (MAX_PENDING as u64, 3));
    out.clear();
    u.on_packet(ETH1, &arp_in(arp::OP_REPLY, OUR_MAC, H2_MAC, H2_IP, OUR_MAC, OUR_IP), t0, &mut out);
    assert_eq!(out.len(), 1 + MAX_PENDING);
    // In order.
    assert!(matches!(out[1], UnderlayOut::Release { key: 0, .. }));
    assert!(matches!(out[MAX_PENDING], UnderlayOut::Release { key, .. } if key == MAX_PENDING as u32 - 1));
}

#[test]
fn off_subnet_remotes_go_through_the_gateway() {
    let mut u = rig();
    let (t0, mut out) = (Instant::now(), Vec::new());
    u.on_pending(pending(GRE_FAR, 9, 1), t0, &mut out);
    assert_request(&out[0], GW_IP);
    out.clear();
    // The remote itself answering is no use: it is not the next hop.
    u.on_packet(ETH1, &arp_in(arp::OP_REPLY, OUR_MAC, H2_MAC, FAR_IP, OUR_MAC, OUR_IP), t0, &mut out);
    assert!(out.is_empty());
    u.on_packet(ETH1, &arp_in(arp::OP_REPLY, OUR_MAC, GW_MAC, GW_IP, OUR_MAC, OUR_IP), t0, &mut out);
    assert_eq!(
        out,
        vec![
            UnderlayOut::Header { tunnel: GRE_FAR, header: Some(header(GW_MAC)) },
            UnderlayOut::Release { tunnel: GRE_FAR, key: 9, packet: vec![1; 60] },
        ]
    );
    // Without a gateway the tunnel cannot be routed; a local_ip that is no underlay's either.
    let e =
        Underlay::new(vec![underlay_cfg(None)], vec![(GRE_FAR, "gre-far".into(), gre(FAR_IP))]).unwrap_err();
    assert!(e.contains("gre-far") && e.contains("no gateway"), "{e}");
    let mut cfg = gre(H2_IP);
    cfg.local_ip = Ipv4Addr::new(10, 0, 0, 1);
    let e = Underlay::new(vec![underlay_cfg(None)], vec![(GRE_H2, "gre-h2".into(), cfg)]).unwrap_err();
    assert!(e.contains("local_ip 10.0.0.1"), "{e}");
    let e = Underlay::new(vec![underlay_cfg(Some(FAR_IP))], vec![]).unwrap_err();
    assert!(e.contains("gateway"), "{e}");
}

#[test]
fn gratuitous_arp_and_requests_update_the_neighbor() {
    let mut u = rig();
    let (t0, mut out) = (Instant::now(), Vec::new());
    u.start(t0, &mut out);
    out.clear();
    // A gratuitous ARP resolves a next hop being resolved.
    let garp = |mac| arp_in(arp::OP_REQUEST, ethernet::BROADCAST, mac, H2_IP, [0; 6], H2_IP);
    u.on_packet(ETH1, &garp(H2_MAC), t0, &mut out);
    assert_eq!(out, vec![UnderlayOut::Header { tunnel: GRE_H2, header: Some(header(H2_MAC)) }]);
    out.clear();
    // The same MAC again: nothing to publish.
    u.on_packet(ETH1, &garp(H2_MAC), t0, &mut out);
    assert!(out.is_empty());
    // The host moved to another NIC: a new header.
    let moved = [0x02, 0, 0, 0, 0, 0x22];
    u.on_packet(ETH1, &garp(moved), t0, &mut out);
    assert_eq!(out, vec![UnderlayOut::Header { tunnel: GRE_H2, header: Some(header(moved)) }]);
    out.clear();
    // A who-has for us from the gateway teaches us its MAC, and gets its answer.
    let req = arp_in(arp::OP_REQUEST, ethernet::BROADCAST, GW_MAC, GW_IP, [0; 6], OUR_IP);
    u.on_packet(ETH1, &req, t0, &mut out);
    assert_eq!(out[0], UnderlayOut::Header { tunnel: GRE_FAR, header: Some(header(GW_MAC)) });
    assert_eq!(parse_arp(&out[1]).1, arp::OP_REPLY);
    // Someone else claiming our address teaches nothing.
    out.clear();
    let claim = arp_in(arp::OP_REPLY, ethernet::BROADCAST, H2_MAC, OUR_IP, [0; 6], OUR_IP);
    u.on_packet(ETH1, &claim, t0, &mut out);
    assert!(out.is_empty());
}

#[test]
fn aging_refreshes_before_expiry_and_withdraws_unconfirmed() {
    let mut u = rig();
    let (t0, mut out) = (Instant::now(), Vec::new());
    u.on_pending(pending(GRE_H2, 1, 1), t0, &mut out);
    u.on_packet(ETH1, &arp_in(arp::OP_REPLY, OUR_MAC, H2_MAC, H2_IP, OUR_MAC, OUR_IP), t0, &mut out);
    out.clear();
    let aging = NEIGH_AGING.as_secs_f64();
    let refresh = aging - NEIGH_REFRESH.as_secs_f64();
    u.tick(secs(t0, refresh - 1.0), &mut out);
    assert!(out.is_empty());
    // The refresh: a unicast request to the known MAC.
    u.tick(secs(t0, refresh), &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(parse_arp(&out[0]), (H2_MAC, arp::OP_REQUEST, OUR_MAC, OUR_IP, [0; 6], H2_IP));
    out.clear();
    // Confirmed: the entry lives on with the same header (nothing published).
    let t1 = secs(t0, refresh + 0.5);
    u.on_packet(ETH1, &arp_in(arp::OP_REPLY, OUR_MAC, H2_MAC, H2_IP, OUR_MAC, OUR_IP), t1, &mut out);
    assert!(out.is_empty());
    u.tick(secs(t0, aging + 1.0), &mut out);
    assert!(out.is_empty());
    assert!(u.show_neighbors(secs(t0, aging + 1.0), false).contains("REACHABLE"));
    // Not confirmed this time: three probes a second apart, then the header is withdrawn.
    let t2 = t1 + NEIGH_AGING - NEIGH_REFRESH;
    for i in 0..3 {
        u.tick(t2 + ARP_RETRY * i, &mut out);
    }
    assert_eq!(out.len(), 3);
    out.clear();
    u.tick(t1 + NEIGH_AGING, &mut out);
    assert_eq!(out, vec![UnderlayOut::Header { tunnel: GRE_H2, header: None }]);
    assert_eq!(u.stats().neigh_expired, 1);
    // Traffic after that resolves again.
    out.clear();
    u.on_pending(pending(GRE_H2, 1, 1), t1 + NEIGH_AGING + ARP_RETRY, &mut out);
    assert_request(&out[0], H2_IP);
}

/// An echo request from h2 (its MAC and address) to us, `payload_len` bytes after the ICMP
/// header.
fn echo_from_h2(ident: u16, seq: u16, payload_len: usize, ttl: u8) -> build::Icmp4EchoSpec {
    build::Icmp4EchoSpec {
        eth: build::EthSpec { src_mac: H2_MAC, dst_mac: OUR_MAC, vlan: None },
        src_ip: H2_IP.octets(),
        dst_ip: OUR_IP.octets(),
        ident,
        seq,
        payload_len,
        ttl,
    }
}

#[test]
fn echo_requests_to_us_are_answered() {
    let mut u = rig();
    let (t0, mut out) = (Instant::now(), Vec::new());
    let spec = echo_from_h2(0x77, 3, 40, 9);
    let req = build::icmp4_echo(&spec);
    u.on_packet(ETH1, &req, t0, &mut out);
    assert_eq!(out.len(), 1);
    let UnderlayOut::Send { port, frame } = &out[0] else { panic!() };
    assert_eq!(*port, ETH1);
    let e = ethernet::Packet::new_checked(&frame[..]).unwrap();
    assert_eq!((e.dst(), e.src(), e.ethertype()), (H2_MAC, OUR_MAC, ether_type::IPV4));
    let ip = ipv4::Packet::new_checked(e.payload()).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!(
        (ip.src(), ip.dst(), ip.protocol(), ip.ttl()),
        (OUR_IP.octets(), H2_IP.octets(), ip_proto::ICMP, 64)
    );
    let m = icmp::Packet::new_checked(ip.payload()).unwrap();
    assert!(checksum::verify(ip.payload()));
    assert_eq!((m.msg_type(), m.code(), m.ident(), m.seq()), (icmp::v4::ECHO_REPLY, 0, 0x77, 3));
    let req_ip = ipv4::Packet::new_checked(&req[14..]).unwrap();
    assert_eq!(m.payload(), icmp::Packet::new_checked(req_ip.payload()).unwrap().payload());
    assert_eq!(u.stats().echo_replies_sent, 1);
    // Echo to another address, or with a broken checksum: no answer.
    out.clear();
    let other = build::icmp4_echo(&build::Icmp4EchoSpec { dst_ip: GW_IP.octets(), ..spec });
    u.on_packet(ETH1, &other, t0, &mut out);
    let mut bad = req.clone();
    bad[14 + 20 + 8] ^= 0xff;
    u.on_packet(ETH1, &bad, t0, &mut out);
    assert!(out.is_empty());
    assert_eq!((u.stats().ignored, u.stats().malformed), (1, 1));
}

#[test]
fn shows_as_text_and_json() {
    let mut u = rig();
    let (t0, mut out) = (Instant::now(), Vec::new());
    u.start(t0, &mut out);
    u.on_packet(ETH1, &arp_in(arp::OP_REPLY, OUR_MAC, H2_MAC, H2_IP, OUR_MAC, OUR_IP), t0, &mut out);
    let text = u.show_neighbors(secs(t0, 100.0), false);
    assert!(text.contains("192.0.2.2        02:00:00:00:00:02  eth1             REACHABLE"), "{text}");
    assert!(text.contains("192.0.2.254") && text.contains("INCOMPLETE"), "{text}");
    let v: serde_json::Value = serde_json::from_str(&u.show_neighbors(secs(t0, 100.0), true)).unwrap();
    assert_eq!(v[0]["ip"], "192.0.2.2");
    assert_eq!(v[0]["expires_s"], NEIGH_AGING.as_secs() - 100);
    assert_eq!(v[1]["mac"], serde_json::Value::Null);
    let v: serde_json::Value = serde_json::from_str(&u.show_tunnels(true)).unwrap();
    assert_eq!(v[0]["name"], "gre-h2");
    assert_eq!(v[0]["eth_dst"], "02:00:00:00:00:02");
    assert_eq!(v[1]["next_hop"], "192.0.2.254");
    assert_eq!(v[1]["eth_dst"], serde_json::Value::Null);
}

fn valid_frames() -> Vec<Vec<u8>> {
    let spec = echo_from_h2(1, 1, 16, 64);
    vec![
        arp_in(arp::OP_REQUEST, ethernet::BROADCAST, H2_MAC, H2_IP, [0; 6], OUR_IP),
        arp_in(arp::OP_REPLY, OUR_MAC, GW_MAC, GW_IP, OUR_MAC, OUR_IP),
        build::icmp4_echo(&spec),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]
    #[test]
    fn random_bytes_never_panic_and_are_counted(frame in prop::collection::vec(any::<u8>(), 0..120)) {
        let mut u = rig();
        let mut out = Vec::new();
        u.on_packet(ETH1, &frame, Instant::now(), &mut out);
        let s = u.stats();
        // Every frame is accounted for: malformed, ignored, or answered.
        prop_assert!(s.malformed + s.ignored + s.arp_replies_sent + s.echo_replies_sent + s.arp_learned >= 1);
    }

    #[test]
    fn damaged_valid_frames_never_panic(which in 0usize..3, cut in 0usize..100, flips in prop::collection::vec((0usize..100, any::<u8>()), 0..4)) {
        let mut f = valid_frames().swap_remove(which);
        for (at, x) in flips {
            if let Some(b) = f.get_mut(at) {
                *b ^= x;
            }
        }
        f.truncate(cut);
        let mut u = rig();
        let mut out = Vec::new();
        u.start(Instant::now(), &mut out);
        out.clear();
        u.on_packet(ETH1, &f, Instant::now(), &mut out);
        // Whatever comes out is a frame for the underlay or a header for a tunnel.
        for o in &out {
            let ok = matches!(o, UnderlayOut::Send { port, .. } if *port == ETH1) || matches!(o, UnderlayOut::Header { .. });
            prop_assert!(ok, "{:?}", o);
        }
    }
}
