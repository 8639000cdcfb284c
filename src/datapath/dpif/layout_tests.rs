//! Several bridges, patch ports and GRE tunnels, through real poll threads over in-memory
//! ports.

use std::net::Ipv4Addr;
use std::time::Duration;

use super::*;
use crate::datapath::flow::{FlowKey, FlowMask};
use crate::datapath::pmd::MAX_RECIRC_DEPTH;
use crate::datapath::tunnel::{KeyMode, Template};
use crate::netdev::mem::MemPort;
use crate::netdev::virt::VirtualPort;
use crate::packet::build::{udp4, Udp4Spec};
use crate::packet::{gre, ipv4, Buf};

const LOCAL: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const REMOTE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const NEXT_HOP: [u8; 6] = [2, 0, 0, 0, 0, 0x22];
const VM: DpPortNo = DpPortNo(1);
const VM2: DpPortNo = DpPortNo(2);
const PATCH_INT: DpPortNo = DpPortNo(10);
const PATCH_TUN: DpPortNo = DpPortNo(20);
const GRE_PORT: DpPortNo = DpPortNo(30);
const UNDERLAY: DpPortNo = DpPortNo(40);

use super::tests::wait;

fn stat(dp: &Datapath, f: impl Fn(&PmdStatsSnapshot) -> u64) -> u64 {
    dp.pmd_stats().iter().map(f).sum()
}

fn tunnel_cfg() -> TunnelConfig {
    TunnelConfig::flow_keyed(LOCAL, REMOTE)
}

/// br-int (bridge 0): `vm` (1), patch 10; br-tun (bridge 1): patch 20, `vm2` (2), GRE 30
/// (remote 192.0.2.2, key=flow); underlay `eth1` (40) with 192.0.2.1.
struct Rig {
    dp: Datapath,
    vm: MemPort,
    vm2: MemPort,
    eth1: MemPort,
}

fn rig() -> Rig {
    let (vm, vm2, eth1) = (MemPort::new("vm", 1), MemPort::new("vm2", 1), MemPort::new("eth1", 1));
    for p in [&vm, &vm2, &eth1] {
        p.capture(true);
    }
    let ports = vec![
        DpPort { no: VM, port: Arc::new(vm.clone()) as Arc<dyn Port> },
        DpPort { no: VM2, port: Arc::new(vm2.clone()) as Arc<dyn Port> },
        DpPort { no: PATCH_INT, port: Arc::new(VirtualPort::patch("patch-tun")) as Arc<dyn Port> },
        DpPort { no: PATCH_TUN, port: Arc::new(VirtualPort::patch("patch-int")) as Arc<dyn Port> },
        DpPort { no: GRE_PORT, port: Arc::new(VirtualPort::gre("gre-h2")) as Arc<dyn Port> },
        DpPort { no: UNDERLAY, port: Arc::new(eth1.clone()) as Arc<dyn Port> },
    ];
    let layout = DpLayout {
        bridges: vec![DpBridge { mac_table_size: 64 }, DpBridge { mac_table_size: 64 }],
        port_bridge: vec![(VM, 0), (PATCH_INT, 0), (PATCH_TUN, 1), (VM2, 1), (GRE_PORT, 1)],
        patches: vec![(PATCH_INT, PATCH_TUN), (PATCH_TUN, PATCH_INT)],
        tunnels: vec![(GRE_PORT, tunnel_cfg())],
        underlays: vec![UnderlayPort { port: UNDERLAY, ip: LOCAL, mac: eth1.mac() }],
    };
    let dp = Datapath::start_layout(&DatapathConfig::default(), ports, layout).unwrap();
    Rig { dp, vm, vm2, eth1 }
}

fn flow_tun(dp: &mut Datapath, in_port: DpPortNo, tun_id: Option<u64>, actions: &[DpAction]) {
    let mut mask = FlowMask::catchall();
    mask.0.in_port = !0;
    let mut key = FlowKey { in_port: in_port.0, ..Default::default() };
    if let Some(t) = tun_id {
        mask.0.tun_id = !0;
        key.tun_id = t;
    }
    // Replaces a megaflow with the same match (insert keeps an existing one).
    let old = dp.megaflows().insert(key, mask, actions, 0).unwrap();
    if old.actions[..] != *actions {
        dp.megaflows().remove(old.id);
        dp.megaflows().insert(key, mask, actions, 0).unwrap();
    }
    dp.megaflows().publish();
}

fn flow(dp: &mut Datapath, in_port: DpPortNo, actions: &[DpAction]) {
    flow_tun(dp, in_port, None, actions)
}

/// Port `no`'s counters as `dump-ports` shows them.
fn port_stats(dp: &Datapath, no: DpPortNo) -> PortStats {
    dp.port_stats().into_iter().find(|p| p.0 == no).expect("a port").4
}

fn pkt(i: u8) -> Vec<u8> {
    udp4(&Udp4Spec { sport: 1000 + u16::from(i), payload_len: 18, ..Default::default() })
}

/// What 192.0.2.2 sends us: `inner` in GRE with `key`, to eth1's MAC.
fn from_remote(dst_mac: [u8; 6], key: Option<u32>, inner: &[u8]) -> Vec<u8> {
    let cfg = TunnelConfig {
        remote_ip: LOCAL,
        local_ip: REMOTE,
        out_key: key.map_or(KeyMode::None, KeyMode::Fixed),
        csum: true,
        ..tunnel_cfg()
    };
    let hdr = TunnelHeader { underlay: DpPortNo(1), eth_src: NEXT_HOP, eth_dst: dst_mac, mtu: 1500 };
    let tpl = Template::new(&cfg, &hdr);
    let mut room = vec![0u8; 2048];
    room[256..256 + inner.len()].copy_from_slice(inner);
    let mut b = Buf::new(&mut room, 256, inner.len());
    tpl.encap(&mut b, 0, 0, 1, 1792).unwrap();
    b.data().to_vec()
}

#[test]
fn layout_errors_name_the_problem() {
    let m = MemPort::new("m", 1);
    let ports = || {
        vec![
            DpPort { no: VM, port: Arc::new(m.clone()) as Arc<dyn Port> },
            DpPort { no: PATCH_INT, port: Arc::new(VirtualPort::patch("p")) as Arc<dyn Port> },
        ]
    };
    let cfg = DatapathConfig::default();
    let br = || vec![DpBridge { mac_table_size: 8 }];
    let try_layout = |l: DpLayout| Datapath::start_layout(&cfg, ports(), l).err().map(|e| e.to_string());
    let base = DpLayout { bridges: br(), port_bridge: vec![(VM, 0), (PATCH_INT, 0)], ..DpLayout::default() };
    assert_eq!(try_layout(base.clone()), None);
    let e = try_layout(DpLayout { port_bridge: vec![(VM, 0)], ..base.clone() }).unwrap();
    assert!(e.contains("port 10 (p) is in no bridge"), "{e}");
    let e = try_layout(DpLayout { port_bridge: vec![(VM, 0), (PATCH_INT, 3)], ..base.clone() }).unwrap();
    assert!(e.contains("bridge 3"), "{e}");
    let e = try_layout(DpLayout { patches: vec![(VM, PATCH_INT)], ..base.clone() }).unwrap();
    assert!(e.contains("patch port 1 has queues"), "{e}");
    let e = try_layout(DpLayout { patches: vec![(PATCH_INT, DpPortNo(99))], ..base.clone() }).unwrap();
    assert!(e.contains("99"), "{e}");
    let e = try_layout(DpLayout { tunnels: vec![(PATCH_INT, tunnel_cfg())], ..base.clone() }).unwrap();
    assert!(e.contains("192.0.2.1 is no underlay's"), "{e}");
    let e = try_layout(DpLayout {
        underlays: vec![UnderlayPort { port: VM, ip: LOCAL, mac: [2; 6] }],
        ..base.clone()
    })
    .unwrap();
    assert!(e.contains("underlay port 1 is also in a bridge"), "{e}");
    assert!(try_layout(DpLayout { bridges: vec![], ..base }).is_some());
}

#[test]
fn patch_ports_run_the_packet_again_from_the_peer() {
    let Rig { mut dp, vm, vm2, .. } = rig();
    flow(&mut dp, VM, &[DpAction::Output(DpPortNo(10)), DpAction::Output(VM)]);
    flow(&mut dp, PATCH_TUN, &[DpAction::SetEthDst([9; 6]), DpAction::Output(VM2)]);
    for i in 0..5 {
        assert!(vm.inject(pkt(i)));
    }
    assert!(wait(|| vm2.stats().tx_packets == 5 && vm.stats().tx_packets == 5));
    let sent = vm2.take_sent();
    for (i, f) in sent.iter().enumerate() {
        assert_eq!((&f[..6], &f[6..]), (&[9u8; 6][..], &pkt(i as u8)[6..]));
    }
    // The copy out of the ingress port was not changed by the other bridge's actions.
    assert_eq!(vm.take_sent(), (0..5).map(pkt).collect::<Vec<_>>());
    assert_eq!((stat(&dp, |s| s.recirculated), stat(&dp, |s| s.rx_packets)), (5, 5));
    let len = pkt(0).len() as u64;
    let (out, inp) = (port_stats(&dp, PATCH_INT), port_stats(&dp, PATCH_TUN));
    assert_eq!((out.tx_packets, out.tx_bytes, out.rx_packets), (5, 5 * len, 0));
    assert_eq!((inp.rx_packets, inp.rx_bytes, inp.tx_packets), (5, 5 * len, 0));
    assert_eq!(dp.bridge_of(PATCH_TUN), Some(1));
    assert_eq!(dp.bridge_of(UNDERLAY), None);
    // A miss after a patch goes up with the peer as in_port.
    assert!(vm2.inject(pkt(0)));
    let up = dp.upcalls().recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(up.key.in_port, VM2.0);
    flow(&mut dp, VM2, &[DpAction::Output(PATCH_TUN)]);
    assert!(vm2.inject(pkt(1)));
    let up = dp.upcalls().recv_timeout(Duration::from_secs(5)).expect("a miss from bridge 0's patch");
    assert_eq!(up.key.in_port, PATCH_INT.0);
}

#[test]
fn a_patch_loop_is_cut_after_eight_crossings() {
    let Rig { mut dp, vm, .. } = rig();
    flow(&mut dp, VM, &[DpAction::Output(PATCH_INT)]);
    flow(&mut dp, PATCH_TUN, &[DpAction::Output(PATCH_TUN)]);
    flow(&mut dp, PATCH_INT, &[DpAction::Output(PATCH_INT)]);
    assert!(vm.inject(pkt(1)));
    assert!(wait(|| stat(&dp, |s| s.recirc_loop_dropped) == 1));
    assert_eq!(stat(&dp, |s| s.recirculated), u64::from(MAX_RECIRC_DEPTH));
    // The thread keeps forwarding.
    flow(&mut dp, VM, &[DpAction::Output(VM)]);
    assert!(vm.inject(pkt(2)));
    assert!(wait(|| vm.stats().tx_packets == 1));
}

#[test]
fn normal_in_each_bridge_learns_into_its_own_table() {
    let Rig { mut dp, vm, vm2, .. } = rig();
    flow(&mut dp, VM, &[DpAction::Normal]);
    flow(&mut dp, PATCH_TUN, &[DpAction::Normal]);
    let mut f = pkt(0);
    f[..6].copy_from_slice(&[0xff; 6]);
    assert!(vm.inject(f.clone()));
    // Bridge 0 floods to its patch; bridge 1 floods from the peer to vm2 and the tunnel
    // (which has no header yet: the slow path gets it).
    assert!(wait(|| vm2.stats().tx_packets == 1));
    assert_eq!(vm2.take_sent(), vec![f.clone()]);
    let p = dp.tunnel_pending().recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!((p.port, p.key, &p.packet), (GRE_PORT, 0, &f));
    assert_eq!(vm.stats().tx_packets, 0);
    let mut evs: Vec<_> =
        (0..2).map(|_| dp.learn_events().recv_timeout(Duration::from_secs(5)).unwrap()).collect();
    evs.sort_by_key(|e| e.bridge);
    assert_eq!((evs[0].bridge, evs[0].port), (0, VM));
    assert_eq!((evs[1].bridge, evs[1].port), (1, PATCH_TUN));
    for e in &evs {
        dp.fdb(e.bridge).learn(e.mac, e.vlan, e.port, 0).unwrap();
    }
    assert_eq!((dp.fdb_ref(0).len(), dp.fdb_ref(1).len(), dp.n_bridges()), (1, 1, 2));
    assert_eq!(stat(&dp, |s| s.tunnel_no_header), 1);
}

#[test]
fn gre_encap_waits_for_a_header_then_sends_on_the_underlay() {
    let Rig { mut dp, vm2, eth1, .. } = rig();
    flow(&mut dp, VM2, &[DpAction::Tunnel { port: GRE_PORT, key: 0x64 }]);
    assert!(vm2.inject(pkt(1)));
    let p = dp.tunnel_pending().recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!((p.port, p.key, p.packet), (GRE_PORT, 0x64, pkt(1)));
    assert!(dp.set_tunnel_header(DpPortNo(77), None).is_err());
    let hdr = TunnelHeader { underlay: UNDERLAY, eth_src: eth1.mac(), eth_dst: NEXT_HOP, mtu: 1500 };
    dp.set_tunnel_header(GRE_PORT, Some(hdr)).unwrap();
    for i in 0..3 {
        assert!(vm2.inject(pkt(i)));
    }
    assert!(wait(|| eth1.stats().tx_packets == 3));
    let mut ids = Vec::new();
    for (i, w) in eth1.take_sent().iter().enumerate() {
        assert_eq!((&w[..6], &w[6..12]), (&NEXT_HOP[..], &eth1.mac()[..]));
        let ip = ipv4::Packet::new_checked(&w[14..]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!((ip.src(), ip.dst(), ip.protocol()), (LOCAL.octets(), REMOTE.octets(), 47));
        ids.push(ip.ident());
        let g = gre::Packet::new_checked(ip.payload()).unwrap();
        assert_eq!((g.key(), g.protocol(), g.payload()), (Some(0x64), gre::proto::TEB, &pkt(i as u8)[..]));
    }
    assert!(ids[0] != ids[1] && ids[1] != ids[2], "{ids:?}");
    assert_eq!(stat(&dp, |s| s.tunnel_encap), 3);
    let g = port_stats(&dp, GRE_PORT);
    assert_eq!((g.tx_packets, g.tx_bytes), (3, 3 * pkt(0).len() as u64));
    // Output to the tunnel port (NORMAL's flood does this) sends key 0.
    flow(&mut dp, VM2, &[DpAction::Output(GRE_PORT)]);
    assert!(vm2.inject(pkt(4)));
    assert!(wait(|| eth1.stats().tx_packets == 4));
    assert_eq!(&eth1.take_sent()[0][38..42], &[0, 0, 0, 0]);
    // Too big for the underlay's MTU once encapsulated: dropped and counted.
    let big = udp4(&Udp4Spec { payload_len: 1460, ..Default::default() });
    assert!(vm2.inject(big));
    assert!(wait(|| stat(&dp, |s| s.tunnel_mtu_dropped) == 1));
    assert_eq!(eth1.stats().tx_packets, 4);
}

#[test]
fn gre_decap_looks_up_on_the_tunnel_port_with_tunnel_metadata() {
    let Rig { mut dp, vm2, eth1, .. } = rig();
    let wire = from_remote(eth1.mac(), Some(0x64), &pkt(1));
    // No flow yet: the miss carries the tunnel port and the tunnel fields.
    assert!(eth1.inject(wire.clone()));
    let up = dp.upcalls().recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(up.key.in_port, GRE_PORT.0);
    assert_eq!((up.key.tun_id, up.key.tun_src, up.key.tun_dst), (0x64, u32::from(REMOTE), u32::from(LOCAL)));
    assert_eq!(up.packet, pkt(1));
    flow_tun(&mut dp, GRE_PORT, Some(0x64), &[DpAction::Userspace(3), DpAction::Output(VM2)]);
    assert!(eth1.inject(wire));
    assert!(wait(|| vm2.stats().tx_packets == 1));
    assert_eq!(vm2.take_sent(), vec![pkt(1)]);
    let pin = dp.packet_ins().recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!((pin.in_port, pin.bridge, pin.tunnel.tun_id), (Some(GRE_PORT), 1, 0x64));
    assert_eq!(pin.tunnel.tun_src, u32::from(REMOTE));
    // Another key misses that flow; a keyless packet too (tun_id 0).
    assert!(eth1.inject(from_remote(eth1.mac(), Some(7), &pkt(2))));
    assert_eq!(dp.upcalls().recv_timeout(Duration::from_secs(5)).unwrap().key.tun_id, 7);
    assert!(eth1.inject(from_remote(eth1.mac(), None, &pkt(3))));
    assert_eq!(dp.upcalls().recv_timeout(Duration::from_secs(5)).unwrap().key.tun_id, 0);
    assert_eq!(stat(&dp, |s| s.tunnel_decap), 4);
    let g = port_stats(&dp, GRE_PORT);
    assert_eq!((g.rx_packets, g.rx_bytes, g.tx_packets), (4, 4 * pkt(0).len() as u64, 0));
}

#[test]
fn underlay_sends_arp_up_and_drops_what_is_not_for_it() {
    let Rig { dp, eth1, .. } = rig();
    let mut arp = vec![0xff; 6];
    arp.extend_from_slice(&NEXT_HOP);
    arp.extend_from_slice(&[0x08, 0x06]);
    arp.resize(42, 0);
    assert!(eth1.inject(arp.clone()));
    let u = dp.underlay_packets().recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!((u.port, u.packet), (UNDERLAY, arp));
    let good = from_remote(eth1.mac(), Some(1), &pkt(1));
    let mut bad_version = good.clone();
    bad_version[35] = 1;
    let mut bad_csum = good.clone();
    bad_csum[60] ^= 0xff;
    assert!(eth1.inject(from_remote([2; 6], Some(1), &pkt(1)))); // not our MAC
    assert!(eth1.inject(pkt(1))); // plain UDP
    assert!(eth1.inject(bad_version));
    assert!(eth1.inject(bad_csum));
    assert!(eth1.inject(good[..40].to_vec()));
    assert!(wait(|| stat(&dp, |s| s.rx_packets) == 6));
    assert!(wait(|| stat(&dp, |s| s.underlay_dropped
        + s.tunnel_bad_gre
        + s.tunnel_bad_csum
        + s.tunnel_truncated)
        == 5));
    let st = &dp.pmd_stats()[0];
    assert_eq!(
        (
            st.underlay_to_slow_path,
            st.underlay_dropped,
            st.tunnel_bad_gre,
            st.tunnel_bad_csum,
            st.tunnel_truncated
        ),
        (1, 2, 1, 1, 1)
    );
    assert!(dp.upcalls().is_empty());
    let text = st.tunnel_text();
    assert_eq!(text.lines().count(), 3);
    assert!(text.contains("bad gre 1, bad checksum 1, truncated 1, no port 0"), "{text}");
    assert!(text.contains("underlay:           to slow path 1, dropped 2;"), "{text}");
}

/// Mutated GRE frames through a running poll thread: every one is accounted for, and what
/// reaches the port behind the tunnel is exactly the original inner frame (the GRE and IP
/// checksums catch every mutation that would change it).
#[test]
fn mutated_gre_frames_never_deliver_a_changed_frame() {
    let Rig { mut dp, vm2, eth1, .. } = rig();
    flow(&mut dp, GRE_PORT, &[DpAction::Output(VM2)]);
    let inner = pkt(3);
    let good = from_remote(eth1.mac(), Some(0x64), &inner);
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    const N: u64 = 600;
    for _ in 0..N {
        let mut w = good.clone();
        for _ in 0..1 + next() % 3 {
            let at = (next() % w.len() as u64) as usize;
            w[at] = next() as u8;
        }
        if next() % 4 == 0 {
            w.truncate((next() % w.len() as u64) as usize);
        }
        while !eth1.inject(w.clone()) {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let accounted = |s: &PmdStatsSnapshot| {
        s.tunnel_decap
            + s.underlay_to_slow_path
            + s.underlay_dropped
            + s.tunnel_bad_gre
            + s.tunnel_bad_csum
            + s.tunnel_truncated
            + s.tunnel_no_port
    };
    assert!(wait(|| stat(&dp, accounted) == N), "{:?}", dp.pmd_stats());
    let decapped = stat(&dp, |s| s.tunnel_decap);
    assert!(wait(|| vm2.stats().tx_packets == decapped));
    assert!(decapped > 0 && decapped < N, "{decapped}");
    for f in vm2.take_sent() {
        assert_eq!(f, inner);
    }
}
