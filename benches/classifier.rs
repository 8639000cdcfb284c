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

use criterion::{criterion_group, Criterion, Throughput};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use xdpswitch::datapath::actions::DpAction;
use xdpswitch::datapath::classifier::SubtableRanking;
use xdpswitch::datapath::emc::{EmcConfig, ExactMatchCache};
use xdpswitch::datapath::flow::{FlowKey, FlowMask};
use xdpswitch::datapath::megaflow::{Megaflow, MegaflowReader, MegaflowTable};
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
        let mf = t.insert(k, masks[i], &[DpAction::Output(DpPortNo(2))], 0).unwrap();
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

/// Everything the three workloads need, built once.
struct Setup {
    emc_pkts: Vec<FlowKey>,
    emc_reader: MegaflowReader,
    emc: ExactMatchCache,
    _emc_table: MegaflowTable,
    pkts: Vec<FlowKey>,
    reader: MegaflowReader,
    _table: MegaflowTable,
    ranking: SubtableRanking,
    mixed_emc: ExactMatchCache,
    to_insert: Vec<(usize, Arc<Megaflow>)>,
    off: usize,
    hits: u64,
    probed: u64,
}

impl Setup {
    fn new() -> Setup {
        let mut rng = StdRng::seed_from_u64(7);
        let (emc_table, flows) = build_table(1024, &mut rng);
        let mut emc = ExactMatchCache::new(EmcConfig { entries: 8192, insert_inv_prob: 1 });
        let pkts: Vec<FlowKey> = (0..4096).map(|i| packet_for(&flows[i % flows.len()], &mut rng)).collect();
        for (i, p) in pkts.iter().enumerate() {
            emc.insert(p, p.hash(), Arc::clone(&flows[i % flows.len()]));
        }
        // Only keys that stayed cached (2-way conflicts evict a few).
        let emc_pkts: Vec<FlowKey> = pkts.into_iter().filter(|p| emc.lookup(p, p.hash()).is_some()).collect();

        let (table, flows) = build_table(10_000, &mut rng);
        let pkts: Vec<FlowKey> =
            (0..1 << 16).map(|_| packet_for(&flows[rng.gen_range(0..flows.len())], &mut rng)).collect();
        Setup {
            emc_pkts,
            emc_reader: emc_table.reader(),
            emc,
            _emc_table: emc_table,
            pkts,
            reader: table.reader(),
            _table: table,
            ranking: SubtableRanking::default(),
            mixed_emc: ExactMatchCache::new(EmcConfig::default()),
            to_insert: Vec::with_capacity(BATCH),
            off: 0,
            hits: 0,
            probed: 0,
        }
    }

    /// (a) A batch of EMC hits.
    fn emc_hit(&mut self) -> usize {
        let mut batch = [FlowKey::default(); BATCH];
        batch.copy_from_slice(&self.emc_pkts[self.off..self.off + BATCH]);
        let keys = &batch;
        self.off = (self.off + BATCH) % (self.emc_pkts.len() - BATCH);
        let emc = &self.emc;
        self.emc_reader.with(|_v| {
            let mut hashes = [0u32; BATCH];
            for (h, k) in hashes.iter_mut().zip(keys) {
                *h = k.hash();
            }
            let mut out = [None; BATCH];
            let n = emc.lookup_batch(keys, &hashes, &mut out);
            black_box(&out);
            n
        })
    }

    /// (b) A batch through the classifier alone.
    fn classifier(&mut self) {
        // Keys come fresh from extraction into a per-batch array (hot in L1) in a poll thread.
        let mut batch = [FlowKey::default(); BATCH];
        batch.copy_from_slice(&self.pkts[self.off..self.off + BATCH]);
        let keys = &batch;
        self.off = (self.off + BATCH) % (self.pkts.len() - BATCH);
        let (ranking, hits, probed) = (&mut self.ranking, &mut self.hits, &mut self.probed);
        self.reader.with(|v| {
            let mut out = [None; BATCH];
            let res = v.lookup_batch(keys, &mut out, ranking);
            *hits += res.hits as u64;
            *probed += res.subtables_probed as u64;
            black_box(&out);
        })
    }

    /// Only the copy of a batch's keys that (b) and (c) start with (subtract it).
    fn copy_only(&mut self) {
        let mut batch = [FlowKey::default(); BATCH];
        batch.copy_from_slice(&self.pkts[self.off..self.off + BATCH]);
        self.off = (self.off + BATCH) % (self.pkts.len() - BATCH);
        black_box(&batch);
    }

    /// (c) A batch through EMC, then classifier, then probabilistic EMC insertion.
    fn mixed(&mut self) {
        let mut batch = [FlowKey::default(); BATCH];
        batch.copy_from_slice(&self.pkts[self.off..self.off + BATCH]);
        let keys = &batch;
        self.off = (self.off + BATCH) % (self.pkts.len() - BATCH);
        let mut hashes = [0u32; BATCH];
        for (h, k) in hashes.iter_mut().zip(keys) {
            *h = k.hash();
        }
        let (emc, ranking, to_insert) = (&mut self.mixed_emc, &mut self.ranking, &mut self.to_insert);
        self.reader.with(|v| {
            let mut out = [None; BATCH];
            emc.lookup_batch(keys, &hashes, &mut out);
            let mut from_cls = [false; BATCH];
            for (f, o) in from_cls.iter_mut().zip(&out) {
                *f = o.is_none();
            }
            v.lookup_batch(keys, &mut out, ranking);
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
    }
}

fn bench(c: &mut Criterion) {
    let mut s = Setup::new();
    let mut g = c.benchmark_group("emc_hit");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("batch32", |b| b.iter(|| s.emc_hit()));
    g.finish();

    s.off = 0;
    let mut g = c.benchmark_group("megaflow_10k_8masks_emc_off");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("batch32", |b| b.iter(|| s.classifier()));
    g.finish();
    eprintln!("avg subtables per hit: {:.2}", s.probed as f64 / s.hits.max(1) as f64);

    let mut g = c.benchmark_group("megaflow_10k_8masks_emc_on");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("batch32", |b| b.iter(|| s.mixed()));
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2))
        .sample_size(20)
}

criterion_group! { name = benches; config = config(); targets = bench }

/// `CLS_LOOP=emc|cls|mixed|copy|setup CLS_BATCHES=n` runs one workload for n batches outside criterion
/// (for `perf stat -e cycles:u`: cycles per packet don't depend on the machine's load).
fn main() {
    if let Ok(w) = std::env::var("CLS_LOOP") {
        let n: u64 = std::env::var("CLS_BATCHES").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
        let mut s = Setup::new();
        let t0 = std::time::Instant::now();
        for _ in 0..n {
            match w.as_str() {
                "emc" => {
                    black_box(s.emc_hit());
                }
                "cls" => s.classifier(),
                "mixed" => s.mixed(),
                "copy" => s.copy_only(),
                "setup" => break,
                _ => panic!("CLS_LOOP: emc, cls, mixed, copy or setup"),
            }
        }
        let dt = t0.elapsed();
        eprintln!(
            "{w}: {n} batches of {BATCH} in {dt:?}: {:.1} ns/pkt",
            dt.as_nanos() as f64 / (n * BATCH as u64) as f64
        );
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
