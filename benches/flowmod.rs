//! Flow setup on the control thread, in memory (no sockets, no threads): what one OpenFlow
//! 1.3 flow-mod costs from bytes to an installed rule, with the five-tuple rules of
//! `benches/flowsetup.py` (UDP, `in_port=1`, `nw_src` varies, `tp_src` varies, output:2).
//!
//! - `decode`: `ofp::decode` of one flow-mod (the agent's share);
//! - `convert`: `convert::flow_mod_from_ofp` (wire structs → model);
//! - `add_100k`: decode + convert + `Model::flow_mod` of 100 000 distinct rules into an
//!   empty model (throughput in rules);
//! - `churn_at_100k`: with 100 000 rules installed, one strict delete and one add of another
//!   rule (the steady state of flow-mod churn; throughput in flow-mods).
//!
//! Run: `cargo bench --bench flowmod -- --quick`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, BatchSize, Criterion, Throughput};
use xdpswitch::ofp::{self, Action, Body, Decoded, Instruction, Message, Oxm, OxmField, Xid};
use xdpswitch::ofproto::{convert, Model};

const N: u32 = 100_000;
const PORTS: &[u32] = &[1, 2];
const OFPFC_ADD: u8 = 0;
const OFPFC_DELETE_STRICT: u8 = 4;

/// Rule `i` of the flowsetup benchmark, as wire bytes.
fn flow_mod_bytes(i: u32, command: u8) -> Vec<u8> {
    let src = 0x0a00_0000 | (i & 0x00ff_ffff);
    let sport = 1024 + i % 60_000;
    let fm = ofp::FlowMod {
        cookie: i.into(),
        cookie_mask: 0,
        table_id: 0,
        command,
        idle_timeout: 0,
        hard_timeout: 0,
        priority: 100,
        buffer_id: 0xffff_ffff,
        out_port: 0xffff_ffff,
        out_group: 0xffff_ffff,
        flags: 0,
        match_: vec![
            Oxm::exact(OxmField::InPort, 1),
            Oxm::exact(OxmField::EthType, 0x0800),
            Oxm::exact(OxmField::IpProto, 17),
            Oxm::exact(OxmField::Ipv4Src, src.into()),
            Oxm::exact(OxmField::Ipv4Dst, 0x0ac8_0001),
            Oxm::exact(OxmField::UdpSrc, sport.into()),
            Oxm::exact(OxmField::UdpDst, 53),
        ],
        instructions: vec![Instruction::ApplyActions(vec![Action::Output { port: 2, max_len: 0xffe5 }])],
    };
    let msg = Message { version: ofp::OFP13_VERSION, xid: Xid(i), body: Body::FlowMod(fm) };
    let mut out = Vec::new();
    ofp::encode(&msg, &mut out).expect("encodable flow-mod");
    out
}

/// Bytes → model: what the agent and the control thread do for one flow-mod.
fn apply(model: &mut Model, bytes: &[u8], now: Duration) {
    let Ok(Decoded::Message { msg, .. }) = ofp::decode(bytes) else { panic!("undecodable flow-mod") };
    let Body::FlowMod(fm) = &msg.body else { panic!("not a flow-mod") };
    let fm = convert::flow_mod_from_ofp(fm).expect("valid flow-mod");
    model.flow_mod(fm, PORTS, now).expect("accepted flow-mod");
}

fn benches(c: &mut Criterion) {
    let adds: Vec<Vec<u8>> = (0..N).map(|i| flow_mod_bytes(i, OFPFC_ADD)).collect();
    let now = Duration::from_secs(1);

    let mut g = c.benchmark_group("flowmod");
    g.throughput(Throughput::Elements(1));
    g.bench_function("decode", |b| b.iter(|| ofp::decode(black_box(&adds[7])).is_ok()));
    let Ok(Decoded::Message { msg, .. }) = ofp::decode(&adds[7]) else { panic!("undecodable flow-mod") };
    let Body::FlowMod(wire) = msg.body else { panic!("not a flow-mod") };
    g.bench_function("convert", |b| b.iter(|| convert::flow_mod_from_ofp(black_box(&wire)).is_ok()));

    g.throughput(Throughput::Elements(N.into()));
    g.sample_size(10);
    g.bench_function("add_100k", |b| {
        b.iter_batched(
            Model::new,
            |mut m| {
                for bytes in &adds {
                    apply(&mut m, bytes, now);
                }
                m
            },
            BatchSize::PerIteration,
        )
    });

    let mut m = Model::new();
    for bytes in &adds {
        apply(&mut m, bytes, now);
    }
    assert_eq!(m.pipeline.n_rules(), N as usize);
    // Rules N.. come and go; each iteration deletes the rule the previous one added.
    let extra: Vec<(Vec<u8>, Vec<u8>)> = (N..N + 4096)
        .map(|i| (flow_mod_bytes(i, OFPFC_ADD), flow_mod_bytes(i, OFPFC_DELETE_STRICT)))
        .collect();
    g.throughput(Throughput::Elements(2));
    g.sample_size(50);
    let mut k = 0;
    g.bench_function("churn_at_100k", |b| {
        b.iter(|| {
            let (add, del) = &extra[k % extra.len()];
            apply(&mut m, add, now);
            apply(&mut m, del, now);
            k += 1;
        })
    });
    g.finish();
}

criterion_group!(flowmod, benches);

fn main() {
    flowmod();
    Criterion::default().configure_from_args().final_summary();
}
