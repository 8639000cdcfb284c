//! Classifier and exact-match cache lookups, in memory (no I/O).
//!
//! - `emc_hit/batch32`: a batch of 32 keys, all EMC hits (hash + 2-way probe + key compare),
//!   inside `MegaflowReader::with` as a poll thread does it.
//! - `megaflow_10k_8masks_emc_off/batch32`: 10 000 megaflows over 8 masks, EMC off, uniform
//!   traffic over all flows (so ranking cannot help), batched tuple-space search.
//! - `megaflow_10k_8masks_emc_on/batch32`: same table, EMC (8192 entries, 1/100 insertion) in
//!   front with 100 000 distinct packets: the mixed path.
//!
//! Throughput is in elements (packets) per second. Run: `cargo bench --bench classifier -- --quick`.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use xdpswitch::datapath::actions::DpAction;
use xdpswitch::datapath::classifier::SubtableRanking;
use xdpswitch::datapath::emc::{EmcConfig, ExactMatchCache};
use xdpswitch::datapath::flow::{FlowKey, FlowMask};
use xdpswitch::datapath::megaflow::{Megaflow, MegaflowTable};
use xdpswitch::netdev::DpPortNo;

const BATCH: usize = 32;

fn random_key(rng: &mut StdRng) -> FlowKey {
    let mut k = FlowKey::default();
    for w in k.words_mut() {
        *w = rng.next_u64();
    }
    k.pad0 = 0;
    k.pad1 = 0;
    k.pad2 = 0;
    k
}

/// Eight masks, each with `in_port` (so flows of different masks, which get different
/// in_ports, never overlap).
fn masks() -> Vec<FlowMask> {
    let base = || {
        let mut m = FlowMask::catchall();
        m.0.in_port = !0;
        m
    };
    let mut out = Vec::new();
    for i in 0..8 {
        let mut m = base();
        match i {
            0 => {
                m.0.dl_type = !0;
                m.0.nw_dst[..3].fill(0xff);
            }
            1 => {
                m.0.dl_type = !0;
                m.0.nw_dst[..4].fill(0xff);
            }
            2 => {
                m.0.dl_type = !0;
                m.0.nw_src[..4].fill(0xff);
                m.0.nw_dst[..4].fill(0xff);
            }
            3 => {
                m.0.dl_type = !0;
                m.0.nw_proto = !0;
                m.0.tp_dst = !0;
            }
            4 => m.0.dl_dst = [0xff; 6],
            5 => {
                m.0.dl_src = [0xff; 6];
                m.0.dl_dst = [0xff; 6];
            }
            6 => {
                m.0.dl_type = !0;
                m.0.nw_proto = !0;
                m.0.nw_dst[..4].fill(0xff);
                m.0.tp_src = !0;
                m.0.tp_dst = !0;
            }
            _ => {
                m.0.vlan_tci = !0;
                m.0.dl_dst = [0xff; 6];
            }
        }
        out.push(m);
    }
    out
}

/// A table with `n` megaflows spread evenly over the 8 masks.
fn build_table(n: usize, rng: &mut StdRng) -> (MegaflowTable, Vec<Arc<Megaflow>>) {
    let mut t = MegaflowTable::new(1, n);
    let masks = masks();
    let mut flows = Vec::with_capacity(n);
    while flows.len() < n {
        let i = flows.len() % masks.len();
        let mut k = random_key(rng);
        k.in_port = i as u32 + 1;
        let before = t.len();
        let mf = t.insert(k, masks[i], Box::new([DpAction::Output(DpPortNo(2))]), 0).unwrap();
        if t.len() > before {
            flows.push(mf);
        }
    }
    t.publish();
    (t, flows)
}

/// A packet that falls in `mf` (random elsewhere).
fn packet_for(mf: &Megaflow, rng: &mut StdRng) -> FlowKey {
    let mut k = random_key(rng);
    let (m, fk) = (*mf.mask.0.words(), *mf.key.words());
    for (i, w) in k.words_mut().iter_mut().enumerate() {
        *w = (*w & !m[i]) | fk[i];
    }
    k
}

fn bench(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(7);

    // (a) EMC hit path.
    {
        let (t, flows) = build_table(1024, &mut rng);
        let mut r = t.reader();
        let mut emc = ExactMatchCache::new(EmcConfig { entries: 8192, insert_inv_prob: 1 });
        let pkts: Vec<FlowKey> = (0..4096).map(|i| packet_for(&flows[i % flows.len()], &mut rng)).collect();
        for (i, p) in pkts.iter().enumerate() {
            emc.insert(p, p.hash(), Arc::clone(&flows[i % flows.len()]));
        }
        let hit = pkts.iter().filter(|p| emc.lookup(p, p.hash()).is_some()).count();
        let mut g = c.benchmark_group("emc_hit");
        g.throughput(Throughput::Elements(BATCH as u64));
        // Only keys that stayed cached (2-way conflicts evict a few).
        let pkts: Vec<FlowKey> = pkts.into_iter().filter(|p| emc.lookup(p, p.hash()).is_some()).collect();
        assert_eq!(pkts.len(), hit);
        let mut off = 0;
        g.bench_function("batch32", |b| {
            b.iter(|| {
                let keys = &pkts[off..off + BATCH];
                off = (off + BATCH) % (pkts.len() - BATCH);
                r.with(|_v| {
                    let mut hashes = [0u32; BATCH];
                    for (h, k) in hashes.iter_mut().zip(keys) {
                        *h = k.hash();
                    }
                    let mut out = [None; BATCH];
                    let n = emc.lookup_batch(keys, &hashes, &mut out);
                    black_box(&out);
                    n
                })
            })
        });
        g.finish();
    }

    // (b) 10 000 megaflows over 8 masks, EMC off.
    let (t, flows) = build_table(10_000, &mut rng);
    let pkts: Vec<FlowKey> =
        (0..1 << 16).map(|_| packet_for(&flows[rng.gen_range(0..flows.len())], &mut rng)).collect();
    let mut r = t.reader();
    {
        let mut ranking = SubtableRanking::default();
        let mut g = c.benchmark_group("megaflow_10k_8masks_emc_off");
        g.throughput(Throughput::Elements(BATCH as u64));
        let mut off = 0;
        let mut probed = (0u64, 0u64);
        g.bench_function("batch32", |b| {
            b.iter(|| {
                let keys = &pkts[off..off + BATCH];
                off = (off + BATCH) % (pkts.len() - BATCH);
                r.with(|v| {
                    let mut out = [None; BATCH];
                    let res = v.lookup_batch(keys, &mut out, &mut ranking);
                    debug_assert_eq!(res.hits as usize, BATCH);
                    probed.0 += res.hits as u64;
                    probed.1 += res.subtables_probed as u64;
                    black_box(&out);
                })
            })
        });
        g.finish();
        eprintln!("avg subtables per hit: {:.2}", probed.1 as f64 / probed.0.max(1) as f64);
    }

    // (c) Same table with the EMC in front (8192 entries, 1/100 insertion), 64Ki packets.
    {
        let mut ranking = SubtableRanking::default();
        let mut emc = ExactMatchCache::new(EmcConfig::default());
        let mut g = c.benchmark_group("megaflow_10k_8masks_emc_on");
        g.throughput(Throughput::Elements(BATCH as u64));
        let mut off = 0;
        let mut to_insert: Vec<(usize, Arc<Megaflow>)> = Vec::with_capacity(BATCH);
        g.bench_function("batch32", |b| {
            b.iter(|| {
                let keys = &pkts[off..off + BATCH];
                off = (off + BATCH) % (pkts.len() - BATCH);
                let mut hashes = [0u32; BATCH];
                for (h, k) in hashes.iter_mut().zip(keys) {
                    *h = k.hash();
                }
                r.with(|v| {
                    let mut out = [None; BATCH];
                    emc.lookup_batch(keys, &hashes, &mut out);
                    let mut from_cls = [false; BATCH];
                    for (f, o) in from_cls.iter_mut().zip(&out) {
                        *f = o.is_none();
                    }
                    v.lookup_batch(keys, &mut out, &mut ranking);
                    for (i, o) in out.iter().enumerate() {
                        if let (true, Some(mf)) = (from_cls[i], o) {
                            if emc.should_insert() {
                                to_insert.push((i, Arc::clone(mf)));
                            }
                        }
                    }
                    black_box(&out);
                });
                for (i, mf) in to_insert.drain(..) {
                    emc.insert(&keys[i], hashes[i], mf);
                }
            })
        });
        g.finish();
    }
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2))
        .sample_size(20)
}

criterion_group! { name = benches; config = config(); targets = bench }
criterion_main!(benches);
