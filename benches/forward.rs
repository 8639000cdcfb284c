//! The whole fast path of one poll thread on in-memory ports, 64-byte UDP frames: receive →
//! key extraction → EMC → megaflow classifier → actions → transmit. Reports packets per
//! second (criterion "elements/s").
//!
//! - `emc_hit/1_flow`: every packet hits the exact-match cache.
//! - `classifier/10k_megaflows_8_masks_emc_off`: 10 000 megaflows spread over 8 masks, EMC
//!   off, packets cycling over all of them (OVS-DPDK's figure here is ~5 Mpps).
//! - `meter/1_flow_emc`: as `emc_hit/1_flow`, with the flow's packets passing an OpenFlow meter
//!   first (a rate so high that every packet conforms): the price of the shared token bucket.
//!
//! - `normal/1000_macs` vs `output/1000_macs`: 1 000 hosts behind port 1 talking to 1 000
//!   behind port 2 (each frame its own source and destination MAC, all learned), forwarded
//!   by `NORMAL` (a fast-path MAC table lookup and a source check per packet) or by a plain
//!   output action: the price of the L2 switch.
//!
//! - `gre/encap` and `gre/decap` vs `emc_hit/1_flow`: 64-byte frames (one flow, EMC hits)
//!   encapsulated with a key chosen by the flow into GRE on an underlay port, or GRE frames
//!   from an underlay port decapsulated and forwarded: the price of the tunnel headers.
//!
//! `cargo bench --bench forward`

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use xdpswitch::datapath::actions::DpAction;
use xdpswitch::datapath::dpif::{Datapath, DatapathConfig, DpBridge, DpLayout, DpPort};
use xdpswitch::datapath::extract::extract;
use xdpswitch::datapath::flow::{FlowKey, FlowMask};
use xdpswitch::datapath::meter::{MeterConfig, MeterUnit};
use xdpswitch::datapath::tunnel::{Template, TunnelConfig, TunnelHeader, UnderlayPort};
use xdpswitch::netdev::mem::MemPort;
use xdpswitch::netdev::virt::VirtualPort;
use xdpswitch::netdev::{DpPortNo, Port};
use xdpswitch::packet::build::{udp4, Udp4Spec};
use xdpswitch::packet::Buf;

/// How the rig's megaflows forward.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Output,
    /// Through a meter that never drops, then output.
    Metered,
    /// `NORMAL`, every address learned beforehand.
    Normal,
}

/// Frame `i`: its own destination address (and, with `macs`, its own source and destination
/// MAC).
fn frame(i: u32, macs: bool) -> Vec<u8> {
    let (src_mac, dst_mac) = if macs { host_macs(i) } else { ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]) };
    udp4(&Udp4Spec {
        src_mac,
        dst_mac,
        src_ip: [198, 18, 0, 1],
        dst_ip: [10, (i >> 16) as u8, (i >> 8) as u8, i as u8],
        sport: 1000 + (i % 7) as u16,
        dport: 2000 + (i % 5) as u16,
        payload_len: 18, // 14 + 20 + 8 + 18 = 60 bytes on the wire before the FCS: a "64-byte" frame
        ..Default::default()
    })
}

/// Host `i`'s MAC behind port 1 and its peer's behind port 2.
fn host_macs(i: u32) -> ([u8; 6], [u8; 6]) {
    let b = i.to_be_bytes();
    ([2, 1, b[0], b[1], b[2], b[3]], [2, 2, b[0], b[1], b[2], b[3]])
}

/// The eight masks: every one matches in_port, dl_type and the exact destination address (so
/// the 10 000 megaflows never overlap); they differ in which other fields they add.
fn masks() -> Vec<FlowMask> {
    (0..8u32)
        .map(|m| {
            let mut k = FlowKey { in_port: !0, dl_type: !0, ..Default::default() };
            k.nw_dst[..4].copy_from_slice(&[0xff; 4]);
            if m & 1 != 0 {
                k.nw_proto = !0;
            }
            if m & 2 != 0 {
                k.tp_dst = !0;
            }
            if m & 4 != 0 {
                k.tp_src = !0;
            }
            if m == 0 {
                k.nw_src[..4].copy_from_slice(&[0xff; 4]);
            }
            FlowMask(k)
        })
        .collect()
}

struct Rig {
    dp: Datapath,
    out: MemPort,
}

fn rig(emc_entries: usize, n_flows: u32, kind: Kind) -> Rig {
    let inp = MemPort::new("in", 1);
    let out = MemPort::new("out", 1);
    let cfg = DatapathConfig { n_pmds: 1, emc_entries, emc_insert_inv_prob: 1, ..DatapathConfig::default() };
    let ports = vec![
        DpPort { no: DpPortNo(1), port: Arc::new(inp.clone()) as Arc<dyn Port> },
        DpPort { no: DpPortNo(2), port: Arc::new(out.clone()) as Arc<dyn Port> },
    ];
    let mut dp = Datapath::start(&cfg, ports).expect("datapath");
    let mut actions = vec![DpAction::Output(DpPortNo(2))];
    if kind == Kind::Metered {
        dp.set_meter(1, MeterConfig { rate: u32::MAX, burst: 0, unit: MeterUnit::Kbps }).expect("meter");
        actions.insert(0, DpAction::Meter(1));
    }
    let macs = kind == Kind::Normal;
    if macs {
        actions = vec![DpAction::Normal];
        for i in 0..n_flows {
            let (src, dst) = host_macs(i);
            dp.fdb(0).learn(src, 0, DpPortNo(1), 0).expect("room");
            dp.fdb(0).learn(dst, 0, DpPortNo(2), 0).expect("room");
        }
    }
    let masks = masks();
    let mut templates = Vec::new();
    for i in 0..n_flows {
        let f = frame(i, macs);
        let mut key = FlowKey::default();
        extract(&f, 1, &mut key).expect("valid frame");
        let mask = masks[(i % masks.len() as u32) as usize];
        dp.megaflows().insert(key, mask, &actions, 0).expect("room");
        templates.push(f);
    }
    dp.megaflows().publish();
    inp.start_replay(templates);
    Rig { dp, out }
}

fn forwarded(p: &MemPort) -> u64 {
    p.stats().tx_packets
}

const LOCAL: std::net::Ipv4Addr = std::net::Ipv4Addr::new(192, 0, 2, 1);
const REMOTE: std::net::Ipv4Addr = std::net::Ipv4Addr::new(192, 0, 2, 2);

fn tunnel_cfg(local: std::net::Ipv4Addr, remote: std::net::Ipv4Addr) -> TunnelConfig {
    TunnelConfig::flow_keyed(local, remote)
}

/// Port 1 (`in`) and GRE port 30 in one bridge, underlay `eth1` (40) with 192.0.2.1.
/// `decap`: eth1 receives GRE (key 0x64) carrying frame 0, forwarded to port 2 (`out`);
/// otherwise port 1 receives frame 0, encapsulated with key 0x64 and sent on eth1.
fn gre_rig(decap: bool) -> Rig {
    let (inp, out, eth1) = (MemPort::new("in", 1), MemPort::new("out", 1), MemPort::new("eth1", 1));
    let cfg = DatapathConfig { n_pmds: 1, emc_insert_inv_prob: 1, ..DatapathConfig::default() };
    let ports = vec![
        DpPort { no: DpPortNo(1), port: Arc::new(inp.clone()) as Arc<dyn Port> },
        DpPort { no: DpPortNo(2), port: Arc::new(out.clone()) as Arc<dyn Port> },
        DpPort { no: DpPortNo(30), port: Arc::new(VirtualPort::gre("gre")) as Arc<dyn Port> },
        DpPort { no: DpPortNo(40), port: Arc::new(eth1.clone()) as Arc<dyn Port> },
    ];
    let layout = DpLayout {
        bridges: vec![DpBridge { mac_table_size: 1024 }],
        port_bridge: vec![(DpPortNo(1), 0), (DpPortNo(2), 0), (DpPortNo(30), 0)],
        tunnels: vec![(DpPortNo(30), tunnel_cfg(LOCAL, REMOTE))],
        underlays: vec![UnderlayPort { port: DpPortNo(40), ip: LOCAL, mac: eth1.mac() }],
        ..DpLayout::default()
    };
    let mut dp = Datapath::start_layout(&cfg, ports, layout).expect("datapath");
    let next_hop = [2, 0, 0, 0, 0, 0x22];
    let hdr = TunnelHeader { underlay: DpPortNo(40), eth_src: eth1.mac(), eth_dst: next_hop, mtu: 1500 };
    dp.set_tunnel_header(DpPortNo(30), Some(hdr)).expect("tunnel");
    let inner = frame(0, false);
    let mut key = FlowKey::default();
    extract(&inner, if decap { 30 } else { 1 }, &mut key).expect("valid frame");
    let mut mask = FlowMask(FlowKey { in_port: !0, dl_type: !0, ..Default::default() });
    if decap {
        key.tun_id = 0x64;
        mask.0.tun_id = !0;
        dp.megaflows().insert(key, mask, &[DpAction::Output(DpPortNo(2))], 0).expect("room");
        // What 192.0.2.2 sends: the same headers seen from the other end.
        let back = TunnelHeader { underlay: DpPortNo(1), eth_src: next_hop, eth_dst: eth1.mac(), mtu: 1500 };
        let tpl = Template::new(&tunnel_cfg(REMOTE, LOCAL), &back);
        let mut room = vec![0u8; 2048];
        room[256..256 + inner.len()].copy_from_slice(&inner);
        let mut b = Buf::new(&mut room, 256, inner.len());
        tpl.encap(&mut b, 0x64, 0, 1, 1792).expect("fits");
        eth1.start_replay(vec![b.data().to_vec()]);
        dp.megaflows().publish();
        Rig { dp, out }
    } else {
        let acts = [DpAction::Tunnel { port: DpPortNo(30), key: 0x64 }];
        dp.megaflows().insert(key, mask, &acts, 0).expect("room");
        dp.megaflows().publish();
        inp.start_replay(vec![inner]);
        Rig { dp, out: eth1 }
    }
}

fn run(c: &mut Criterion, group: &str, name: &str, emc_entries: usize, n_flows: u32, kind: Kind) {
    run_rig(c, group, name, rig(emc_entries, n_flows, kind), n_flows)
}

fn run_rig(c: &mut Criterion, group: &str, name: &str, mut rig: Rig, n_flows: u32) {
    // Let the caches warm up.
    let t = forwarded(&rig.out);
    while forwarded(&rig.out) < t + 2 * n_flows as u64 + 100_000 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(1));
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let start = forwarded(&rig.out);
            let t0 = Instant::now();
            // Poll gently: a tight loop here would keep pulling the poll thread's counter
            // cache lines to this core and slow it down.
            while forwarded(&rig.out) < start + iters {
                std::thread::sleep(Duration::from_micros(50));
            }
            t0.elapsed()
        })
    });
    g.finish();
    let st = &rig.dp.pmd_stats()[0];
    eprintln!(
        "{group}/{name}: emc hits {}, megaflow hits {}, misses {}, meter drops {}, megaflows {}, encap {}, decap {}",
        st.emc_hits,
        st.megaflow_hits,
        st.misses,
        st.meter_dropped,
        rig.dp.megaflows_ref().len(),
        st.tunnel_encap,
        st.tunnel_decap
    );
    rig.dp.shutdown();
}

fn benches(c: &mut Criterion) {
    run(c, "emc_hit", "1_flow", 8192, 1, Kind::Output);
    run(c, "classifier", "10k_megaflows_8_masks_emc_off", 0, 10_000, Kind::Output);
    run(c, "meter", "1_flow_emc", 8192, 1, Kind::Metered);
    run(c, "output", "1000_macs", 8192, 1000, Kind::Output);
    run(c, "normal", "1000_macs", 8192, 1000, Kind::Normal);
    run_rig(c, "gre", "encap", gre_rig(false), 1);
    run_rig(c, "gre", "decap", gre_rig(true), 1);
}

criterion_group! {
    name = forward;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = benches
}
criterion_main!(forward);
