//! `pktgen redirect`: the kernel-only forwarding reference for benchmarks. The `redirect`
//! program of `bpf/sink.c` on `--dev` counts every frame and XDP_REDIRECTs it through a
//! devmap to `--to` (the ceiling a userspace switch on the same ports can be held to).
//! Like any XDP transmit into a veth, `--to`'s peer needs an XDP program (e.g. a sink).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aya::maps::{DevMap, PerCpuArray};
use aya::{Ebpf, EbpfLoader};

use super::sink::{attach, SINK_OBJ};
use super::{bpf, Error, RedirectArgs};

/// What a redirect run forwarded.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RedirectReport {
    /// Receiving interface.
    pub dev: String,
    /// Interface frames were redirected to.
    pub to: String,
    /// `native` or `generic` XDP on `dev`.
    pub xdp_mode: &'static str,
    /// Frames that went through the program.
    pub packets: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Wall time of the run.
    pub seconds: f64,
    /// Average frames per second.
    pub pps: f64,
}

fn totals(ebpf: &Ebpf) -> Result<(u64, u64), Error> {
    let map = ebpf.map("redirect_stats").ok_or_else(|| Error::Bpf("no map redirect_stats".into()))?;
    let arr: PerCpuArray<_, [u64; 2]> = PerCpuArray::try_from(map).map_err(|e| Error::Bpf(e.to_string()))?;
    let v = arr.get(&0, 0).map_err(|e| Error::Bpf(format!("reading redirect_stats: {e}")))?;
    Ok(v.iter().fold((0, 0), |(p, b), c| (p + c[0], b + c[1])))
}

/// Attaches the redirect program and reports once per second until `--duration` or
/// `stop`; detaches on return.
pub fn run(args: &RedirectArgs, stop: &AtomicBool) -> Result<RedirectReport, Error> {
    let lookup = |name: &str| {
        bpf::interface(name)
            .map_err(|e| Error::Sys { op: "interface lookup", source: e })?
            .ok_or_else(|| Error::NoSuchInterface(name.to_string()))
    };
    let (from, to) = (lookup(&args.dev)?, lookup(&args.to)?);
    let mut ebpf =
        EbpfLoader::new().load(SINK_OBJ).map_err(|e| Error::Bpf(format!("loading bpf/sink.o: {e}")))?;
    {
        let map = ebpf.map_mut("redirect_ports").ok_or_else(|| Error::Bpf("no map redirect_ports".into()))?;
        let mut ports: DevMap<_> = DevMap::try_from(map).map_err(|e| Error::Bpf(e.to_string()))?;
        ports.set(0, to.ifindex, None, 0).map_err(|e| Error::Bpf(format!("redirect_ports: {e}")))?;
    }
    let prog = super::load_xdp(&mut ebpf, "bpf/sink.o", "redirect")?;
    let mode = attach(prog, &args.dev, from.ifindex)?;
    let say = |line: String| if args.json { eprintln!("{line}") } else { super::out!("{line}") };
    say(format!("redirecting {} -> {} ({mode} XDP)", args.dev, args.to));
    let start = Instant::now();
    let deadline = args.duration.map(|d| start + Duration::from_secs_f64(d));
    let (mut tick, mut last, mut last_t) = (start + Duration::from_secs(1), 0u64, start);
    while !stop.load(Ordering::Relaxed) && deadline.is_none_or(|d| Instant::now() < d) {
        std::thread::sleep(Duration::from_millis(20));
        let now = Instant::now();
        if now >= tick {
            tick += Duration::from_secs(1);
            let (p, _) = totals(&ebpf)?;
            let pps = (p - last) as f64 / (now - last_t).as_secs_f64();
            say(format!("{:7.2}s  fwd {:8.3} Mpps  total {p}", (now - start).as_secs_f64(), pps / 1e6));
            (last, last_t) = (p, now);
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let (packets, bytes) = totals(&ebpf)?;
    drop(ebpf);
    Ok(RedirectReport {
        dev: args.dev.clone(),
        to: args.to.clone(),
        xdp_mode: mode,
        packets,
        bytes,
        seconds,
        pps: packets as f64 / seconds,
    })
}
