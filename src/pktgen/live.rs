//! The XDP live-frames generator (the xdp-trafficgen technique).
//!
//! `bpf/pktgen.c` is loaded (not attached) and run with `BPF_PROG_RUN` +
//! `BPF_F_TEST_XDP_LIVE_FRAMES` over a [`Template`](super::template::Template): the kernel
//! runs the program once per frame and transmits what it returns `XDP_TX` for out of
//! `--dev`. One thread per core, each pinned, each making one long run; with `--rate` the
//! program paces itself (frames due later are dropped before they are built, so a paced
//! generator still spins its core). `--count` is split into per-CPU limits the program
//! enforces. What was sent is read from the program's per-CPU counters.
//!
//! `plan` (option checks), `Progress` and `report` serve the AF_XDP generator
//! ([`super::afxdp`]) too.
//!
//! Transmitting into a veth needs an XDP program on the peer (`pktgen sink` is one);
//! without it the veth drops every frame (`ndo_xdp_xmit` fails) and nothing arrives.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aya::maps::PerCpuArray;
use aya::programs::Xdp;
use aya::{Ebpf, EbpfLoader};

use super::bpf::{self, MAX_BATCH};
use super::template::{FrameSpec, GreOuter, MacAddr, MacPlan, Proto, Template, IMIX_SIZES};
use super::{Error, Mode, SendArgs};

static PKTGEN_OBJ: &[u8] = aya::include_bytes_aligned!("../../bpf/pktgen.o");

/// State words per CPU in `pg_stats` (`struct pg_state`): packets, bytes, limit, next, the
/// flow/IMIX cursors, the MAC cursors and the random MAC generator's state.
const STATE_WORDS: usize = 8;
/// Largest frame the kernel builds in live-frames mode (one page less XDP headroom, the
/// test-run page head and skb_shared_info; rounded down).
const LIVE_MAX_FRAME: usize = 3000;
/// How often the controlling thread checks the clock and the counters.
const POLL: Duration = Duration::from_millis(20);

/// What a generator run sent (live: the program's per-CPU counters; afxdp: the frames the
/// kernel completed).
#[derive(Clone, Debug, serde::Serialize)]
pub struct SendReport {
    /// Interface the frames left through.
    pub dev: String,
    /// Generator mode (`live` or `afxdp`).
    pub mode: &'static str,
    /// `udp` or `tcp`.
    pub proto: Proto,
    /// IPv6 instead of IPv4.
    pub ipv6: bool,
    /// Frame size in bytes (no FCS), or 0 for IMIX; with GRE, the inner frame's size.
    pub size: usize,
    /// Bytes of outer (GRE) headers in front of each frame: 0 without `--gre-dst`.
    pub encap: usize,
    /// Distinct flows.
    pub flows: u32,
    /// Sending threads (one per core).
    pub cores: usize,
    /// Frames sent.
    pub packets: u64,
    /// Frame bytes sent (no FCS).
    pub bytes: u64,
    /// Wall time of the run.
    pub seconds: f64,
    /// Average frames per second.
    pub pps: f64,
    /// Average Gbit/s of frame bytes.
    pub gbps: f64,
    /// CPU time the sending threads got (from /proc/thread-self/schedstat); on a busy
    /// machine it is less than `seconds * cores`.
    pub cpu_seconds: f64,
    /// Frames sent per second of sending-thread CPU time: the rate a dedicated core would
    /// reach (roughly: the receiving side's softirq work may run elsewhere).
    pub pps_per_cpu: f64,
}

/// CPU time the calling thread has had, in ns (0 if unknown).
pub(super) fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// A validated generator configuration (both modes).
pub(super) struct Plan {
    /// What the frames look like.
    pub(super) spec: FrameSpec,
    /// The template frame at `size`.
    pub(super) frame: Vec<u8>,
    /// The GRE headers every frame is wrapped in, if any.
    pub(super) outer: Option<GreOuter>,
    /// How the Ethernet addresses vary per frame.
    pub(super) macs: MacPlan,
    pub(super) ifindex: u32,
    /// Frame size on the wire (outer headers included), or the largest IMIX size.
    pub(super) size: usize,
    /// IMIX sizes on the wire (small, medium, large), each within the device's and the
    /// mode's limits.
    pub(super) imix: Option<[usize; 3]>,
    /// The CPUs to pin the sending threads to, one per `--cores`.
    pub(super) cpus: Vec<usize>,
}

/// Validates `args` against `--dev` (which must exist) and the mode's frame size limit.
pub(super) fn plan(args: &SendArgs) -> Result<Plan, Error> {
    if args.flows == 0 {
        return Err(Error::Invalid("--flows must be at least 1".into()));
    }
    if args.cores == 0 {
        return Err(Error::Invalid("--cores must be at least 1".into()));
    }
    if !(1..=MAX_BATCH).contains(&args.batch) {
        return Err(Error::Invalid(format!("--batch must be 1..={MAX_BATCH}")));
    }
    if matches!(args.rate, Some(r) if r <= 0.0) {
        return Err(Error::Invalid("--rate must be positive".into()));
    }
    let iface = bpf::interface(&args.dev)
        .map_err(|e| Error::Sys { op: "interface lookup", source: e })?
        .ok_or_else(|| Error::NoSuchInterface(args.dev.clone()))?;
    let ipv6 =
        args.ipv6 || args.src_ip.is_some_and(|a| a.is_ipv6()) || args.dst_ip.is_some_and(|a| a.is_ipv6());
    let default_ip = |n: u8| -> IpAddr {
        if ipv6 {
            format!("fd00::{n}").parse().expect("valid address")
        } else {
            IpAddr::from([10, 0, 0, n])
        }
    };
    let src_ip = args.src_ip.unwrap_or_else(|| default_ip(1));
    let dst_ip = args.dst_ip.unwrap_or_else(|| default_ip(2));
    if src_ip.is_ipv6() != ipv6 || dst_ip.is_ipv6() != ipv6 {
        return Err(Error::Invalid("--src-ip and --dst-ip must both be IPv4 or both IPv6 (--ipv6)".into()));
    }
    let spec = FrameSpec {
        src_mac: args.src_mac.unwrap_or(MacAddr(iface.mac)),
        dst_mac: args.dst_mac.unwrap_or(MacAddr([0x02, 0, 0, 0, 0, 0x02])),
        src_ip,
        dst_ip,
        proto: args.proto,
        src_port: args.src_port,
        dst_port: args.dst_port,
    };
    let macs = MacPlan {
        src: spec.src_mac,
        dst: spec.dst_mac,
        src_count: args.src_macs.or(args.macs).unwrap_or(1),
        dst_count: args.dst_macs.or(args.macs).unwrap_or(1),
        random_src: args.random_src_mac,
    };
    macs.check().map_err(Error::Invalid)?;
    let outer = args.gre_dst.map(|dst_ip| GreOuter {
        src_mac: args.gre_src_mac.unwrap_or(MacAddr(iface.mac)),
        dst_mac: args.gre_dst_mac.unwrap_or(MacAddr([0x02, 0, 0, 0, 0, 0x02])),
        src_ip: args.gre_src.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED),
        dst_ip,
        key: args.gre_key,
    });
    let encap = outer.map_or(0, |o| o.header_len());
    let min = spec.min_len(args.stamp);
    // veth (and most NICs) accept up to MTU + Ethernet header + one VLAN tag; live frames
    // must fit one page with the kernel's head- and tailroom, AF_XDP frames one UMEM chunk.
    let (mode_max, mode) = match args.mode {
        Mode::Live => (LIVE_MAX_FRAME, "live"),
        Mode::Afxdp => (super::afxdp::MAX_FRAME, "afxdp"),
    };
    // The limits hold for the frame on the wire; --size (and IMIX) count the inner frame.
    let max = (iface.mtu as usize + 18).min(mode_max) - encap;
    let (size, imix) = if args.imix {
        let sizes = IMIX_SIZES.map(|s| s.clamp(min, max) + encap);
        (sizes[2], Some(sizes))
    } else if args.size < min {
        let what = format!(
            "{}{}",
            if ipv6 { "IPv6/" } else { "IPv4/" },
            if args.proto == Proto::Tcp { "TCP" } else { "UDP" }
        );
        let stamp = if args.stamp { " with --stamp" } else { "" };
        return Err(Error::Invalid(format!(
            "--size {} is below the minimum {min} for {what}{stamp}",
            args.size
        )));
    } else if args.size > max {
        let gre = if encap > 0 { format!(", less {encap} bytes of GRE headers") } else { String::new() };
        return Err(Error::Invalid(format!(
            "--size {} is above the maximum {max} for {} (MTU {} + 18, at most {mode_max} in {mode} mode{gre})",
            args.size, args.dev, iface.mtu
        )));
    } else {
        (args.size + encap, None)
    };
    if u64::from(args.flows) > spec.max_flows() {
        return Err(Error::Invalid(format!(
            "--flows {} is more than the {} this source port/address base allows",
            args.flows,
            spec.max_flows()
        )));
    }
    let allowed = bpf::allowed_cpus().map_err(|e| Error::Sys { op: "sched_getaffinity", source: e })?;
    if args.cores > allowed.len() {
        return Err(Error::Invalid(format!(
            "--cores {} but only {} CPUs are available",
            args.cores,
            allowed.len()
        )));
    }
    let mut plan = Plan {
        spec,
        frame: Vec::new(),
        outer,
        macs,
        ifindex: iface.ifindex,
        size,
        imix,
        cpus: allowed[..args.cores].to_vec(),
    };
    plan.frame = plan.template().frame;
    Ok(plan)
}

impl Plan {
    /// The template at the largest size, GRE-wrapped when the plan says so.
    pub(super) fn template(&self) -> Template {
        match &self.outer {
            Some(o) => self.spec.build_gre(self.size - o.header_len(), o),
            None => self.spec.build(self.size),
        }
    }

    /// Bytes of outer headers per frame.
    pub(super) fn encap(&self) -> usize {
        self.outer.map_or(0, |o| o.header_len())
    }
}

fn load(args: &SendArgs, plan: &Plan) -> Result<Ebpf, Error> {
    let t = plan.template();
    let spec = &plan.spec;
    let [small, medium, large] = plan.imix.unwrap_or([plan.size; 3]).map(|s| s as u32);
    let globals: [(&str, u32); 23] = [
        ("cfg_flows", args.flows),
        ("cfg_port_span", spec.port_span()),
        ("cfg_ipv6", u32::from(spec.is_ipv6())),
        ("cfg_tcp", u32::from(spec.proto == Proto::Tcp)),
        ("cfg_sport", u32::from(spec.src_port)),
        ("cfg_saddr_lo", u32::from(spec.saddr_lo())),
        ("cfg_ip_sum", u32::from(t.ip_sum)),
        ("cfg_l4_sum", u32::from(t.l4_sum)),
        ("cfg_l4_csum", u32::from(t.l4_csum)),
        ("cfg_stamp", u32::from(args.stamp)),
        ("cfg_imix", u32::from(plan.imix.is_some())),
        ("cfg_size", plan.size as u32),
        ("cfg_imix_small", small),
        ("cfg_imix_medium", medium),
        ("cfg_imix_large", large),
        ("cfg_egress", 0),
        ("cfg_src_macs", plan.macs.src_count),
        ("cfg_dst_macs", plan.macs.dst_count),
        ("cfg_src_mac_lo", plan.macs.src_lo()),
        ("cfg_dst_mac_lo", plan.macs.dst_lo()),
        ("cfg_random_src", u32::from(plan.macs.random_src)),
        ("cfg_outer", t.outer_len as u32),
        ("cfg_outer_ip_sum", u32::from(t.outer_ip_sum)),
    ];
    // Pacing: the gap between frames on one CPU, in ns << 8.
    let gap: u64 = args.rate.map_or(0, |r| ((plan.cpus.len() as f64 * 1e9 * 256.0 / r) as u64).max(1));
    let mut loader = EbpfLoader::new();
    for (name, value) in &globals {
        loader.override_global(name, value, true);
    }
    // A CPU that falls behind (descheduled on a busy machine) may catch up on 50 ms of
    // debt, in a burst; beyond that the debt is forgiven.
    let catch_up: u64 = (50_000_000u64 << 8).max(gap * 16);
    loader.override_global("cfg_gap", &gap, true);
    loader.override_global("cfg_catch_up", &catch_up, true);
    let mut ebpf = loader.load(PKTGEN_OBJ).map_err(|e| Error::Bpf(format!("loading bpf/pktgen.o: {e}")))?;
    super::load_xdp(&mut ebpf, "bpf/pktgen.o", "pktgen")?;
    Ok(ebpf)
}

/// The generator program's per-CPU state, indexed by CPU.
fn per_cpu_state(ebpf: &Ebpf) -> Result<Vec<[u64; STATE_WORDS]>, Error> {
    let map = ebpf.map("pg_stats").ok_or_else(|| Error::Bpf("no map pg_stats".into()))?;
    let arr: PerCpuArray<_, [u64; STATE_WORDS]> =
        PerCpuArray::try_from(map).map_err(|e| Error::Bpf(e.to_string()))?;
    let values = arr.get(&0, 0).map_err(|e| Error::Bpf(format!("reading pg_stats: {e}")))?;
    Ok(values.iter().copied().collect())
}

/// Frames and bytes sent, summed over CPUs.
fn counters(ebpf: &Ebpf) -> Result<(u64, u64), Error> {
    Ok(per_cpu_state(ebpf)?.iter().fold((0, 0), |(p, b), v| (p + v[0], b + v[1])))
}

/// Splits `--count` over the sending CPUs and stores each share as that CPU's limit.
fn set_limits(ebpf: &mut Ebpf, cpus: &[usize], count: u64) -> Result<Vec<u64>, Error> {
    let n = cpus.len() as u64;
    let quotas: Vec<u64> = (0..n).map(|i| count / n + u64::from(i < count % n)).collect();
    let nr = aya::util::nr_cpus().map_err(|(what, e)| Error::Sys { op: what, source: e })?;
    let mut values = vec![[0u64; STATE_WORDS]; nr];
    for (&cpu, &q) in cpus.iter().zip(&quotas) {
        values[cpu][2] = q;
    }
    let map = ebpf.map_mut("pg_stats").ok_or_else(|| Error::Bpf("no map pg_stats".into()))?;
    let mut arr: PerCpuArray<_, [u64; STATE_WORDS]> =
        PerCpuArray::try_from(map).map_err(|e| Error::Bpf(e.to_string()))?;
    let values = values.try_into().map_err(|e| Error::Sys { op: "per-CPU values", source: e })?;
    arr.set(0, values, 0).map_err(|e| Error::Bpf(format!("writing pg_stats: {e}")))?;
    Ok(quotas)
}

/// The report of a run that sent `packets` frames, `bytes` bytes in `seconds`, its sending
/// threads having had `cpu_ns` of CPU time.
pub(super) fn report(
    args: &SendArgs,
    plan: &Plan,
    mode: &'static str,
    (packets, bytes): (u64, u64),
    seconds: f64,
    cpu_ns: u64,
) -> SendReport {
    let cpu_seconds = cpu_ns as f64 / 1e9;
    SendReport {
        dev: args.dev.clone(),
        mode,
        proto: args.proto,
        ipv6: plan.spec.is_ipv6(),
        size: if plan.imix.is_some() { 0 } else { plan.size - plan.encap() },
        encap: plan.encap(),
        flows: args.flows,
        cores: plan.cpus.len(),
        packets,
        bytes,
        seconds,
        pps: packets as f64 / seconds,
        gbps: bytes as f64 * 8.0 / seconds / 1e9,
        cpu_seconds,
        pps_per_cpu: packets as f64 / cpu_seconds.max(1e-9),
    }
}

/// Runs the live-frames generator until `--duration`, `--count` or `stop`. Prints a progress line per
/// second to stdout (stderr with `--json`).
///
/// Each sending thread makes one long `BPF_PROG_RUN` call (a call's teardown costs tens of
/// milliseconds); this thread watches the clock and the counters and ends the calls early
/// with a signal (the kernel checks for pending signals between batches).
pub fn send(args: &SendArgs, stop: &AtomicBool) -> Result<SendReport, Error> {
    let plan = plan(args)?;
    let mut ebpf = load(args, &plan)?;
    let quotas = match args.count {
        Some(count) => Some(set_limits(&mut ebpf, &plan.cpus, count)?),
        None => None,
    };
    let prog_fd = {
        let prog: &Xdp = ebpf
            .program("pktgen")
            .ok_or_else(|| Error::Bpf("no program pktgen".into()))?
            .try_into()
            .map_err(|e| Error::Bpf(format!("pktgen: {e}")))?;
        use std::os::fd::{AsFd, AsRawFd};
        prog.fd().map_err(|e| Error::Bpf(e.to_string()))?.as_fd().as_raw_fd()
    };
    let duration = match (args.duration, args.count) {
        (Some(d), _) => Some(Duration::from_secs_f64(d)),
        (None, Some(_)) => None,
        (None, None) => Some(Duration::from_secs(10)),
    };
    // The signal that interrupts a sending thread's BPF_PROG_RUN; its handler only sets a
    // flag nobody reads, but having one makes the syscall return EINTR.
    let kicked = Arc::new(AtomicBool::new(false));
    let kick_id = signal_hook::flag::register(bpf::KICK_SIGNAL, Arc::clone(&kicked))
        .map_err(|e| Error::Sys { op: "sigaction", source: e })?;
    let halt = AtomicBool::new(false);
    let cpu_ns = AtomicU64::new(0);
    let failure: Mutex<Option<Error>> = Mutex::new(None);
    let start = Instant::now();
    let deadline = duration.map(|d| start + d);
    let frame = &plan.frame;
    let paced = args.rate.is_some();
    let quit = || halt.load(Ordering::Relaxed) || stop.load(Ordering::Relaxed);
    let ebpf_ref = &ebpf;

    std::thread::scope(|s| {
        let workers: Vec<_> = plan
            .cpus
            .iter()
            .enumerate()
            .map(|(i, &cpu)| {
                let (failure, quit, halt, cpu_ns) = (&failure, &quit, &halt, &cpu_ns);
                let quota = quotas.as_ref().map(|q| q[i]);
                let tid = Arc::new(AtomicU64::new(0));
                let my_tid = Arc::clone(&tid);
                let handle = s.spawn(move || {
                    my_tid.store(bpf::current_thread() as u64, Ordering::Release);
                    let fail = |e: Error| {
                        failure.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
                        halt.store(true, Ordering::Relaxed);
                    };
                    if let Err(e) = bpf::pin_to_cpu(cpu) {
                        return fail(Error::Sys { op: "sched_setaffinity", source: e });
                    }
                    let sent =
                        || per_cpu_state(ebpf_ref).ok().and_then(|v| v.get(cpu).map(|s| s[0])).unwrap_or(0);
                    let cpu0 = thread_cpu_ns();
                    run_thread(prog_fd, frame, plan.ifindex, args.batch, quota, paced, &sent, quit, fail);
                    cpu_ns.fetch_add(thread_cpu_ns().saturating_sub(cpu0), Ordering::Relaxed);
                });
                (handle, tid)
            })
            .collect();
        let mut progress = Progress::new(args.json, start);
        loop {
            std::thread::sleep(POLL);
            let running: Vec<u64> = workers
                .iter()
                .filter(|(h, _)| !h.is_finished())
                .map(|(_, t)| t.load(Ordering::Acquire))
                .collect();
            if running.is_empty() {
                break;
            }
            let totals = counters(ebpf_ref).ok();
            progress.tick(totals);
            let count_done = matches!((args.count, totals), (Some(c), Some((p, _))) if p >= c);
            if count_done || deadline.is_some_and(|d| Instant::now() >= d) {
                halt.store(true, Ordering::Relaxed);
            }
            if quit() {
                for &tid in running.iter().filter(|&&t| t != 0) {
                    // The thread is running (not finished), so its id is live.
                    bpf::kick_thread(tid as libc::pthread_t);
                }
            }
        }
    });
    signal_hook::low_level::unregister(kick_id);
    let seconds = start.elapsed().as_secs_f64();
    if let Some(e) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    Ok(report(args, &plan, "live", counters(&ebpf)?, seconds, cpu_ns.into_inner()))
}

/// One sending thread: long `BPF_PROG_RUN` calls until its quota is sent or `quit()`.
#[allow(clippy::too_many_arguments)]
fn run_thread(
    prog_fd: i32,
    frame: &[u8],
    ifindex: u32,
    batch: u32,
    quota: Option<u64>,
    paced: bool,
    sent: &dyn Fn() -> u64,
    quit: &dyn Fn() -> bool,
    fail: impl Fn(Error),
) {
    let mut first = true;
    while !quit() {
        let repeat = match quota {
            Some(q) => {
                let left = q.saturating_sub(sent());
                if left == 0 {
                    break;
                }
                // Unpaced, the repeat count is the quota; paced, the program drops early
                // iterations, so it runs long and its per-CPU limit stops the sending.
                if paced {
                    u32::MAX
                } else {
                    left.min(u64::from(u32::MAX)) as u32
                }
            }
            None => u32::MAX,
        };
        match bpf::xdp_live_run(prog_fd, frame, ifindex, repeat, batch) {
            Ok(()) => first = false,
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => first = false,
            Err(e) => {
                let errno = e.raw_os_error();
                // 524 is the kernel's ENOTSUPP.
                if first && matches!(errno, Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) | Some(524)) {
                    fail(Error::Unsupported(format!(
                        "this kernel refused XDP live-frames mode (BPF_PROG_RUN with \
                         BPF_F_TEST_XDP_LIVE_FRAMES, Linux >= 5.18): {e}; try --mode afxdp"
                    )));
                } else {
                    fail(Error::Sys { op: "BPF_PROG_RUN", source: e });
                }
                return;
            }
        }
    }
}

/// Prints one progress line per second (to stderr with `--json`).
pub(super) struct Progress {
    to_stderr: bool,
    start: Instant,
    tick: Instant,
    last: (u64, u64),
    last_t: Instant,
}

impl Progress {
    /// Progress of a run that started at `start`.
    pub(super) fn new(to_stderr: bool, start: Instant) -> Progress {
        Progress { to_stderr, start, tick: start + Duration::from_secs(1), last: (0, 0), last_t: start }
    }

    /// Given the totals (frames, bytes) so far, prints a line if a second has passed.
    pub(super) fn tick(&mut self, totals: Option<(u64, u64)>) {
        let now = Instant::now();
        let Some((p, b)) = totals else { return };
        if now < self.tick {
            return;
        }
        self.tick += Duration::from_secs(1);
        let dt = (now - self.last_t).as_secs_f64();
        let line = format!(
            "{:7.2}s  tx {:8.3} Mpps  {:7.3} Gbit/s  total {}",
            (now - self.start).as_secs_f64(),
            (p - self.last.0) as f64 / dt / 1e6,
            (b - self.last.1) as f64 * 8.0 / dt / 1e9,
            p
        );
        if self.to_stderr {
            eprintln!("{line}");
        } else {
            super::out!("{line}");
        }
        self.last = (p, b);
        self.last_t = now;
    }
}
