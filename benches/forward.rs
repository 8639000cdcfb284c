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
//! `cargo bench --bench forward`

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use xdpswitch::datapath::actions::DpAction;
use xdpswitch::datapath::dpif::{Datapath, DatapathConfig, DpPort};
use xdpswitch::datapath::extract::extract;
use xdpswitch::datapath::flow::{FlowKey, FlowMask};
use xdpswitch::datapath::meter::{MeterConfig, MeterUnit};
use xdpswitch::netdev::mem::MemPort;
use xdpswitch::netdev::{DpPortNo, Port};
use xdpswitch::packet::build::{udp4, Udp4Spec};

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

fn run(c: &mut Criterion, group: &str, name: &str, emc_entries: usize, n_flows: u32, kind: Kind) {
    let mut rig = rig(emc_entries, n_flows, kind);
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
        "{group}/{name}: emc hits {}, megaflow hits {}, misses {}, meter drops {}, megaflows {}",
        st.emc_hits,
        st.megaflow_hits,
        st.misses,
        st.meter_dropped,
        rig.dp.megaflows_ref().len()
    );
    rig.dp.shutdown();
}

fn benches(c: &mut Criterion) {
    run(c, "emc_hit", "1_flow", 8192, 1, Kind::Output);
    run(c, "classifier", "10k_megaflows_8_masks_emc_off", 0, 10_000, Kind::Output);
    run(c, "meter", "1_flow_emc", 8192, 1, Kind::Metered);
    run(c, "output", "1000_macs", 8192, 1000, Kind::Output);
    run(c, "normal", "1000_macs", 8192, 1000, Kind::Normal);
}

criterion_group! {
    name = forward;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = benches
}
criterion_main!(forward);
