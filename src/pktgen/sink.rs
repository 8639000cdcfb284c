//! The XDP sink: `bpf/sink.c` attached to a device (native mode, else generic) through a
//! bpf_link, so the program goes away with the process even if it crashes. It counts,
//! estimates distinct flows, optionally measures latency of stamped frames, and drops
//! (or passes) everything. Dropping a [`Sink`] detaches it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aya::maps::{Array, PerCpuArray};
use aya::programs::{Xdp, XdpMode};
use aya::{Ebpf, EbpfLoader};

use super::bpf;
use super::{Error, SinkArgs};

pub(super) static SINK_OBJ: &[u8] = aya::include_bytes_aligned!("../../bpf/sink.o");

const FLOW_BITS: usize = 65536;
const FLOW_WORDS: usize = FLOW_BITS / 64;
const LAT_SUB_BITS: u32 = 3;
const LAT_BUCKETS: usize = 64 << LAT_SUB_BITS;
/// Histogram buckets, then count, sum, min, max (as in bpf/sink.c `struct lat_hist`).
const LAT_WORDS: usize = LAT_BUCKETS + 4;
/// `struct capture`: len, pad, 256 bytes.
const CAPTURE_WORDS: usize = 1 + 256 / 8;

/// Options of an attached sink.
#[derive(Clone, Copy, Debug, Default)]
pub struct SinkOptions {
    /// Return XDP_PASS instead of XDP_DROP.
    pub pass: bool,
    /// Record the latency of frames stamped by `pktgen send --stamp`.
    pub latency: bool,
}

/// Packet and byte totals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Totals {
    /// Frames received.
    pub packets: u64,
    /// Frame bytes received.
    pub bytes: u64,
}

/// Latency of stamped frames, generator to sink (same host clock).
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Latency {
    /// Stamped frames measured.
    pub count: u64,
    /// Smallest, ns.
    pub min_ns: u64,
    /// Mean, ns.
    pub avg_ns: u64,
    /// 50th percentile (histogram bucket midpoint, ±6%), ns.
    pub p50_ns: u64,
    /// 99th percentile (histogram bucket midpoint, ±6%), ns.
    pub p99_ns: u64,
    /// Largest, ns.
    pub max_ns: u64,
}

/// An attached sink; detached on drop.
pub struct Sink {
    ebpf: Ebpf,
    mode: &'static str,
}

impl Sink {
    /// Loads `bpf/sink.c` and attaches it to `dev` (in the calling thread's network
    /// namespace): native XDP, or generic if the driver refuses native.
    pub fn attach(dev: &str, opts: SinkOptions) -> Result<Sink, Error> {
        let iface = bpf::interface(dev)
            .map_err(|e| Error::Sys { op: "interface lookup", source: e })?
            .ok_or_else(|| Error::NoSuchInterface(dev.to_string()))?;
        let (pass, latency) = (u32::from(opts.pass), u32::from(opts.latency));
        let mut loader = EbpfLoader::new();
        loader.override_global("cfg_pass", &pass, true);
        loader.override_global("cfg_latency", &latency, true);
        let mut ebpf = loader.load(SINK_OBJ).map_err(|e| Error::Bpf(format!("loading bpf/sink.o: {e}")))?;
        let prog = super::load_xdp(&mut ebpf, "bpf/sink.o", "sink")?;
        let mode = attach(prog, dev, iface.ifindex)?;
        Ok(Sink { ebpf, mode })
    }

    /// `native` or `generic`.
    pub fn attach_mode(&self) -> &'static str {
        self.mode
    }

    fn per_cpu<const N: usize>(&self, name: &str) -> Result<Vec<[u64; N]>, Error> {
        let map = self.ebpf.map(name).ok_or_else(|| Error::Bpf(format!("no map {name}")))?;
        let arr: PerCpuArray<_, [u64; N]> =
            PerCpuArray::try_from(map).map_err(|e| Error::Bpf(format!("{name}: {e}")))?;
        let values = arr.get(&0, 0).map_err(|e| Error::Bpf(format!("reading {name}: {e}")))?;
        Ok(values.iter().copied().collect())
    }

    /// Packets and bytes received so far.
    pub fn totals(&self) -> Result<Totals, Error> {
        let v = self.per_cpu::<2>("sink_stats")?;
        Ok(v.iter()
            .fold(Totals::default(), |t, c| Totals { packets: t.packets + c[0], bytes: t.bytes + c[1] }))
    }

    /// Estimated distinct 5-tuples seen: linear counting over a 65536-bit bitmap of
    /// hash(5-tuple) (exact in practice up to a few hundred flows, ±2% to ~100 000).
    pub fn flows(&self) -> Result<u64, Error> {
        let mut bits = [0u64; FLOW_WORDS];
        for cpu in self.per_cpu::<FLOW_WORDS>("sink_flows")? {
            for (b, c) in bits.iter_mut().zip(cpu) {
                *b |= c;
            }
        }
        let ones: u64 = bits.iter().map(|w| u64::from(w.count_ones())).sum();
        let zeros = FLOW_BITS as f64 - ones as f64;
        if zeros < 1.0 {
            return Ok(ones); // saturated: a lower bound
        }
        Ok((-(FLOW_BITS as f64) * (zeros / FLOW_BITS as f64).ln()).round() as u64)
    }

    /// Latency summary, if any stamped frame arrived (needs [`SinkOptions::latency`]).
    pub fn latency(&self) -> Result<Option<Latency>, Error> {
        let mut hist = vec![0u64; LAT_BUCKETS];
        let (mut count, mut sum, mut min, mut max) = (0u64, 0u64, u64::MAX, 0u64);
        for cpu in self.per_cpu::<LAT_WORDS>("sink_latency")? {
            for (h, c) in hist.iter_mut().zip(&cpu[..LAT_BUCKETS]) {
                *h += c;
            }
            let tail = &cpu[LAT_BUCKETS..];
            count += tail[0];
            sum += tail[1];
            if tail[2] != 0 {
                min = min.min(tail[2]);
            }
            max = max.max(tail[3]);
        }
        if count == 0 {
            return Ok(None);
        }
        Ok(Some(Latency {
            count,
            min_ns: min,
            avg_ns: sum / count,
            p50_ns: percentile(&hist, 0.50),
            p99_ns: percentile(&hist, 0.99),
            max_ns: max,
        }))
    }

    /// The first frame the sink saw (its first 60, 96, 128 or 256 bytes) and its full length.
    pub fn first_frame(&self) -> Result<Option<(Vec<u8>, usize)>, Error> {
        let map = self.ebpf.map("sink_capture").ok_or_else(|| Error::Bpf("no map sink_capture".into()))?;
        let arr: Array<_, [u64; CAPTURE_WORDS]> =
            Array::try_from(map).map_err(|e| Error::Bpf(format!("sink_capture: {e}")))?;
        let v = arr.get(&0, 0).map_err(|e| Error::Bpf(format!("reading sink_capture: {e}")))?;
        let [len, copied] = [0, 4].map(|i| {
            u32::from_ne_bytes(v[0].to_ne_bytes()[i..i + 4].try_into().unwrap_or_default()) as usize
        });
        if len == 0 {
            return Ok(None);
        }
        let bytes: Vec<u8> = v[1..].iter().flat_map(|w| w.to_ne_bytes()).take(copied.min(len)).collect();
        Ok(Some((bytes, len)))
    }
}

/// Attaches a loaded XDP program to `ifindex` through a bpf_link: native mode, else
/// generic. Returns which.
pub(super) fn attach(prog: &mut Xdp, dev: &str, ifindex: u32) -> Result<&'static str, Error> {
    match prog.attach_to_if_index(ifindex, XdpMode::Driver) {
        Ok(_) => Ok("native"),
        Err(native) => match prog.attach_to_if_index(ifindex, XdpMode::Skb) {
            Ok(_) => Ok("generic"),
            Err(generic) => {
                Err(Error::Bpf(format!("attaching XDP to {dev}: native: {native}; generic: {generic}")))
            }
        },
    }
}

/// Threaded NAPI switched on for a device through sysfs; the old setting comes back on drop.
struct ThreadedNapi {
    path: String,
    old: String,
}

impl ThreadedNapi {
    fn enable(dev: &str) -> Result<ThreadedNapi, String> {
        let base = format!("/sys/class/net/{dev}");
        // /sys must be this network namespace's (as under `ip netns exec`): check the index.
        let sys_index =
            std::fs::read_to_string(format!("{base}/ifindex")).map_err(|e| format!("{base}: {e}"))?;
        let ifindex = bpf::interface(dev).ok().flatten().map(|i| i.ifindex);
        if sys_index.trim().parse::<u32>().ok() != ifindex {
            return Err(format!("{base} belongs to another network namespace"));
        }
        let path = format!("{base}/threaded");
        let old = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?.trim().to_string();
        std::fs::write(&path, "1").map_err(|e| format!("writing 1 to {path}: {e}"))?;
        Ok(ThreadedNapi { path, old })
    }
}

impl Drop for ThreadedNapi {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.path, &self.old);
    }
}

/// Lower bound of a histogram bucket (inverse of `lat_bucket` in bpf/sink.c).
fn bucket_low(b: usize) -> u64 {
    let sub = 1usize << LAT_SUB_BITS;
    if b < sub {
        return b as u64;
    }
    let m = (b >> LAT_SUB_BITS) as u32;
    if m < LAT_SUB_BITS {
        return sub as u64; // buckets 8..24 are never used: values below 8 are exact
    }
    ((sub + (b & (sub - 1))) as u64) << (m - LAT_SUB_BITS)
}

fn percentile(hist: &[u64], q: f64) -> u64 {
    let total: u64 = hist.iter().sum();
    let target = ((total as f64) * q).ceil().max(1.0) as u64;
    let mut acc = 0;
    for (b, &n) in hist.iter().enumerate() {
        acc += n;
        if acc >= target {
            let lo = bucket_low(b);
            let hi = if b + 1 < hist.len() { bucket_low(b + 1) } else { lo };
            return lo + hi.saturating_sub(lo) / 2;
        }
    }
    0
}

/// What a sink run received.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SinkReport {
    /// Interface.
    pub dev: String,
    /// `native` or `generic` XDP.
    pub xdp_mode: &'static str,
    /// Frames received.
    pub packets: u64,
    /// Frame bytes received.
    pub bytes: u64,
    /// Wall time of the run.
    pub seconds: f64,
    /// Average frames per second over the run.
    pub pps: f64,
    /// Highest one-second rate seen.
    pub peak_pps: f64,
    /// Estimated distinct 5-tuples.
    pub flows: u64,
    /// Latency, with `--latency` and a stamping generator.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency: Option<Latency>,
}

/// Attaches a sink and reports once per second until `--duration` or `stop`, then totals.
pub fn run(args: &SinkArgs, stop: &AtomicBool) -> Result<SinkReport, Error> {
    let sink = Sink::attach(&args.dev, SinkOptions { pass: args.pass, latency: args.latency })?;
    let say = |line: String| if args.json { eprintln!("{line}") } else { super::out!("{line}") };
    let threaded = if args.threaded {
        let t = ThreadedNapi::enable(&args.dev);
        if let Err(e) = &t {
            say(format!("warning: --threaded: {e}"));
        }
        t.ok()
    } else {
        None
    };
    say(format!(
        "sink on {} ({} XDP), {}",
        args.dev,
        sink.attach_mode(),
        if args.pass { "pass" } else { "drop" }
    ));
    let start = Instant::now();
    let deadline = args.duration.map(|d| start + Duration::from_secs_f64(d));
    let mut tick = start + Duration::from_secs(1);
    let (mut last, mut last_t, mut peak) = (Totals::default(), start, 0f64);
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let now = Instant::now();
        let end = stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| now >= d);
        if now >= tick && !end {
            tick += Duration::from_secs(1);
            let t = sink.totals()?;
            let dt = (now - last_t).as_secs_f64();
            let pps = (t.packets - last.packets) as f64 / dt;
            peak = peak.max(pps);
            say(format!(
                "{:7.2}s  rx {:8.3} Mpps  {:7.3} Gbit/s  total {}",
                (now - start).as_secs_f64(),
                pps / 1e6,
                (t.bytes - last.bytes) as f64 * 8.0 / dt / 1e9,
                t.packets
            ));
            (last, last_t) = (t, now);
        }
        if end {
            break;
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let t = sink.totals()?;
    let report = SinkReport {
        dev: args.dev.clone(),
        xdp_mode: sink.attach_mode(),
        packets: t.packets,
        bytes: t.bytes,
        seconds,
        pps: t.packets as f64 / seconds,
        peak_pps: peak,
        flows: sink.flows()?,
        latency: sink.latency()?,
    };
    drop(threaded); // restore while the sink's XDP program (and so veth's NAPI) still exists
    drop(sink);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Mirror of `lat_bucket` in bpf/sink.c.
    fn lat_bucket(ns: u64) -> usize {
        if ns < 1 << LAT_SUB_BITS {
            return ns as usize;
        }
        let m = 63 - ns.leading_zeros();
        ((m << LAT_SUB_BITS) as usize) | ((ns >> (m - LAT_SUB_BITS)) as usize & ((1 << LAT_SUB_BITS) - 1))
    }

    #[test]
    fn buckets_round_trip() {
        for ns in [0u64, 1, 7, 8, 9, 15, 16, 100, 1000, 12345, 1 << 40, u64::MAX] {
            let b = lat_bucket(ns);
            assert!(b < LAT_BUCKETS);
            assert!(bucket_low(b) <= ns, "{ns}");
            if b + 1 < LAT_BUCKETS {
                assert!(bucket_low(b + 1) > ns, "{ns}");
            }
        }
    }

    #[test]
    fn percentile_picks_bucket() {
        let mut h = vec![0u64; LAT_BUCKETS];
        h[lat_bucket(1000)] = 99;
        h[lat_bucket(100_000)] = 1;
        let p50 = percentile(&h, 0.5);
        assert!((900..1100).contains(&p50), "{p50}");
        let p99 = percentile(&h, 0.99);
        assert!((900..1100).contains(&p99), "{p99}");
        assert!(percentile(&h, 1.0) > 90_000);
    }
}
