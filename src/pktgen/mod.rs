//! pktgen — benchmark traffic generator, sink and XDP forwarding reference
//! (`xdpswitch pktgen send|sink|redirect`).
//!
//! Owns: the XDP live-frames generator ([`live`]: `bpf/pktgen.c` run with `BPF_PROG_RUN`,
//! one pinned thread per core), the AF_XDP generator ([`afxdp`]: `--mode afxdp`, frames
//! written into a UMEM and sent through AF_XDP sockets), their frame templates
//! ([`template`]), the XDP sink ([`sink`]: `bpf/sink.c`, attached through a bpf_link), and the
//! kernel-only forwarding reference [`redirect`] (XDP_REDIRECT between two ports). Calls:
//! `netdev` (AF_XDP ports and UMEMs, for [`afxdp`]); nothing else in the crate.
//! Threads: `send` runs one thread per core plus a reporting thread; `sink` one thread.
//! `unsafe`: only in [`bpf`] (raw BPF_PROG_RUN, affinity and interface ioctls).
//!
//! Sending live frames into a veth needs an XDP program on the peer (the receiving end), e.g. a
//! `pktgen sink` there: without one the veth drops every XDP-transmitted frame, silently
//! (no counter moves). veth hands a frame sent from CPU `c` to the peer's queue
//! `c % queues`, drained by that CPU's softirq: with `--cores N`, create the pair with
//! `numtxqueues N numrxqueues N` on both ends, or cores share one 256-frame ring that
//! overflows (`ethtool -S` shows `xdp_xmit_errors`).
//!
//! ```text
//! xdpswitch pktgen sink --dev veth1 --duration 10                    # on the peer first
//! xdpswitch pktgen send --dev veth0 --size 64 --flows 1000 --duration 10
//! xdpswitch pktgen send --mode afxdp --dev veth0 --size 64 --duration 10   # AF_XDP TX
//! xdpswitch pktgen send --dev veth0 --macs 1000 --src-mac 02:10:00:00:00:00 \
//!     --dst-mac 02:20:00:00:00:00 --duration 10         # 1 000 MAC pairs (a switch's FDB)
//! xdpswitch pktgen send --dev veth0 --random-src-mac --duration 5   # a MAC learning flood
//! ```

pub mod afxdp;
pub mod bpf;
pub mod live;
pub mod redirect;
pub mod sink;
pub mod template;

use std::net::IpAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

pub use live::SendReport;
pub use sink::{Sink, SinkOptions, SinkReport};
pub use template::{GreOuter, MacAddr, MacCursor, MacPlan, Proto};

/// Errors of pktgen; each prints as one line.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The interface does not exist (in this network namespace).
    #[error("interface {0:?} does not exist")]
    NoSuchInterface(String),
    /// A bad option value.
    #[error("{0}")]
    Invalid(String),
    /// A mode this build or kernel does not support; the message suggests the other.
    #[error("{0}")]
    Unsupported(String),
    /// Loading or attaching a BPF program, or reading its maps.
    #[error("{0}")]
    Bpf(String),
    /// Opening the AF_XDP port or one of its queues (`--mode afxdp`).
    #[error(transparent)]
    Port(#[from] crate::netdev::Error),
    /// A system call failed.
    #[error("{op}: {source}")]
    Sys {
        /// What was attempted.
        op: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// How `send` produces frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// XDP live frames: BPF_PROG_RUN with BPF_F_TEST_XDP_LIVE_FRAMES (Linux >= 5.18).
    Live,
    /// AF_XDP socket TX, one socket (device queue) per core; copy mode on veth, where the
    /// kernel builds one skb per frame (~0.7 Mpps per core into a veth).
    Afxdp,
}

/// Options of `pktgen send`.
#[derive(Clone, Debug, clap::Args)]
pub struct SendArgs {
    /// Interface to send out of.
    #[arg(long)]
    pub dev: String,
    /// Frame size in bytes, without FCS (60 ..= MTU + 18).
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Distinct flows (source port, then source address, vary).
    #[arg(long, default_value_t = 1)]
    pub flows: u32,
    /// Seconds to run (default 10 unless --count is given).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Frames to send in total (exact).
    #[arg(long)]
    pub count: Option<u64>,
    /// Rate limit in frames per second, e.g. 2Mpps, 500k, 100000.
    #[arg(long, value_parser = parse_rate)]
    pub rate: Option<f64>,
    /// Sending cores (one pinned thread each).
    #[arg(long, default_value_t = 1)]
    pub cores: usize,
    /// Transport protocol.
    #[arg(long, value_enum, default_value_t = Proto::Udp)]
    pub proto: Proto,
    /// IPv6 instead of IPv4.
    #[arg(long)]
    pub ipv6: bool,
    /// IMIX: 64/594/1518-byte frames in a 7:4:1 mix (instead of --size); sizes below the
    /// headers' minimum (IPv6, TCP, --stamp) are raised to it.
    #[arg(long)]
    pub imix: bool,
    /// Write a sequence number and timestamp into each payload (for `sink --latency`).
    #[arg(long)]
    pub stamp: bool,
    /// Print one JSON object at the end (progress lines go to stderr).
    #[arg(long)]
    pub json: bool,
    /// Source MAC (default: the interface's).
    #[arg(long)]
    pub src_mac: Option<MacAddr>,
    /// Destination MAC (default 02:00:00:00:00:02).
    #[arg(long)]
    pub dst_mac: Option<MacAddr>,
    /// Vary the source MAC over N addresses: frame i has --src-mac + i % N (added in the
    /// low 32 bits), e.g. to make a switch learn N addresses.
    #[arg(long, conflicts_with = "macs")]
    pub src_macs: Option<u32>,
    /// Vary the destination MAC over N addresses: frame i has --dst-mac + i % N.
    #[arg(long, conflicts_with = "macs")]
    pub dst_macs: Option<u32>,
    /// --src-macs N and --dst-macs N together: frame i goes from --src-mac + i % N to
    /// --dst-mac + i % N.
    #[arg(long)]
    pub macs: Option<u32>,
    /// A fresh random source MAC per frame (unicast, locally administered): a learning
    /// flood.
    #[arg(long, conflicts_with_all = ["src_macs", "macs"])]
    pub random_src_mac: bool,
    /// Base source address (default 10.0.0.1 or fd00::1).
    #[arg(long)]
    pub src_ip: Option<IpAddr>,
    /// Destination address (default 10.0.0.2 or fd00::2).
    #[arg(long)]
    pub dst_ip: Option<IpAddr>,
    /// Base source port.
    #[arg(long, default_value_t = 1024)]
    pub src_port: u16,
    /// Destination port.
    #[arg(long, default_value_t = 9)]
    pub dst_port: u16,
    /// Generator mode.
    #[arg(long, value_enum, default_value_t = Mode::Live)]
    pub mode: Mode,
    /// Frames in flight per BPF_PROG_RUN batch (1..=256; live mode only).
    #[arg(long, default_value_t = 64)]
    pub batch: u32,
    /// Wrap every frame in GRE (IPv4, protocol 0x6558) to this outer destination address, a
    /// tunnel endpoint: `--size` is then the inner frame's size, and each frame on the wire
    /// is 38 bytes longer (42 with --gre-key).
    #[arg(long, requires = "gre_src")]
    pub gre_dst: Option<std::net::Ipv4Addr>,
    /// Outer source address of GRE frames (the remote tunnel end the receiver expects).
    #[arg(long, requires = "gre_dst")]
    pub gre_src: Option<std::net::Ipv4Addr>,
    /// GRE key (none by default).
    #[arg(long, requires = "gre_dst", value_parser = parse_u32)]
    pub gre_key: Option<u32>,
    /// Outer destination MAC of GRE frames (default 02:00:00:00:00:02).
    #[arg(long, requires = "gre_dst")]
    pub gre_dst_mac: Option<MacAddr>,
    /// Outer source MAC of GRE frames (default: the interface's).
    #[arg(long, requires = "gre_dst")]
    pub gre_src_mac: Option<MacAddr>,
}

/// Parses a number, decimal or `0x` hexadecimal.
pub fn parse_u32(s: &str) -> Result<u32, String> {
    let t = s.trim();
    let r = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16),
        None => t.parse(),
    };
    r.map_err(|_| format!("bad number {s:?} (decimal or 0x hexadecimal, 32 bits)"))
}

/// Options of `pktgen sink`.
#[derive(Clone, Debug, clap::Args)]
pub struct SinkArgs {
    /// Interface to receive on.
    #[arg(long)]
    pub dev: String,
    /// Seconds to run (default: until Ctrl-C).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Pass frames to the kernel stack instead of dropping them.
    #[arg(long)]
    pub pass: bool,
    /// Print one JSON object at the end (progress lines go to stderr).
    #[arg(long)]
    pub json: bool,
    /// Measure latency of frames stamped by `send --stamp`.
    #[arg(long)]
    pub latency: bool,
    /// Run the device's receive (NAPI) in kernel threads while the sink runs, so it can use
    /// another core than the sender's softirq (faster, but a veth ring may then overflow:
    /// counts stop being exact). Needs /sys of the device's namespace (`ip netns exec`).
    #[arg(long)]
    pub threaded: bool,
}

/// Options of `pktgen redirect`.
#[derive(Clone, Debug, clap::Args)]
pub struct RedirectArgs {
    /// Interface to receive on.
    #[arg(long)]
    pub dev: String,
    /// Interface to redirect every frame to.
    #[arg(long)]
    pub to: String,
    /// Seconds to run (default: until Ctrl-C / SIGTERM).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Print one JSON object at the end (progress lines go to stderr).
    #[arg(long)]
    pub json: bool,
}

/// Loads the XDP program `name` of `ebpf` (read from the object file `obj`, named in errors)
/// into the kernel, ready to attach or run.
fn load_xdp<'a>(ebpf: &'a mut aya::Ebpf, obj: &str, name: &str) -> Result<&'a mut aya::programs::Xdp, Error> {
    crate::netdev::afxdp::xdp::load_xdp(ebpf, name).map_err(|e| Error::Bpf(format!("{obj}: {e}")))
}

/// `xdpswitch pktgen ...` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum PktgenCmd {
    /// Generate traffic out of an interface (XDP live frames, or AF_XDP with --mode afxdp).
    Send(SendArgs),
    /// Count (and drop) traffic arriving on an interface with an XDP program.
    Sink(SinkArgs),
    /// Forward everything from one interface to another with XDP_REDIRECT (the kernel-only
    /// reference for benchmarks).
    Redirect(RedirectArgs),
}

/// Runs the generator `args.mode` names until `--duration`, `--count` or `stop`; prints a
/// progress line per second (to stderr with `--json`).
pub fn send(args: &SendArgs, stop: &AtomicBool) -> Result<SendReport, Error> {
    match args.mode {
        Mode::Live => live::send(args, stop),
        Mode::Afxdp => afxdp::send(args, stop),
    }
}

/// Parses a rate: `2Mpps`, `2M`, `500k`, `1.5g`, `100000`.
pub fn parse_rate(s: &str) -> Result<f64, String> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix("pps").unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1e3),
        Some('m') => (&t[..t.len() - 1], 1e6),
        Some('g') => (&t[..t.len() - 1], 1e9),
        _ => (t, 1.0),
    };
    match num.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v * mult),
        _ => Err(format!("bad rate {s:?} (examples: 2Mpps, 500k, 100000)")),
    }
}

/// Runs a pktgen subcommand; Ctrl-C / SIGTERM stop it cleanly (the summary still prints).
pub fn run(cmd: PktgenCmd) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let ids = [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM]
        .map(|sig| signal_hook::flag::register(sig, Arc::clone(&stop)));
    let result = match cmd {
        PktgenCmd::Send(args) => send(&args, &stop).map(|r| print_send(&r, args.json)),
        PktgenCmd::Sink(args) => sink::run(&args, &stop).map(|r| print_sink(&r, args.json)),
        PktgenCmd::Redirect(args) => redirect::run(&args, &stop).map(|r| print_redirect(&r, args.json)),
    };
    for id in ids.into_iter().flatten() {
        signal_hook::low_level::unregister(id);
    }
    Ok(result?)
}

/// `println!` that ignores a closed stdout (`pktgen send | head -1` must not panic).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}
pub(crate) use out;

fn print_send(r: &SendReport, json: bool) {
    if json {
        out!("{}", serde_json::to_string(r).unwrap_or_default());
        return;
    }
    out!(
        "sent {} frames, {} bytes in {:.2}s: {:.3} Mpps, {:.3} Gbit/s ({} core{}, {} flow{}; \
         {:.2} CPU s, {:.3} Mpps per CPU s)",
        r.packets,
        r.bytes,
        r.seconds,
        r.pps / 1e6,
        r.gbps,
        r.cores,
        if r.cores == 1 { "" } else { "s" },
        r.flows,
        if r.flows == 1 { "" } else { "s" },
        r.cpu_seconds,
        r.pps_per_cpu / 1e6,
    );
}

fn print_redirect(r: &redirect::RedirectReport, json: bool) {
    if json {
        out!("{}", serde_json::to_string(r).unwrap_or_default());
        return;
    }
    out!(
        "redirected {} frames, {} bytes from {} to {} in {:.2}s: {:.3} Mpps",
        r.packets,
        r.bytes,
        r.dev,
        r.to,
        r.seconds,
        r.pps / 1e6
    );
}

fn print_sink(r: &SinkReport, json: bool) {
    if json {
        out!("{}", serde_json::to_string(r).unwrap_or_default());
        return;
    }
    out!(
        "received {} frames, {} bytes in {:.2}s: avg {:.3} Mpps, peak {:.3} Mpps, ~{} flows",
        r.packets,
        r.bytes,
        r.seconds,
        r.pps / 1e6,
        r.peak_pps / 1e6,
        r.flows
    );
    if let Some(l) = &r.latency {
        out!(
            "latency over {} frames: min {} ns, avg {} ns, p50 {} ns, p99 {} ns, max {} ns",
            l.count,
            l.min_ns,
            l.avg_ns,
            l.p50_ns,
            l.p99_ns,
            l.max_ns
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        assert_eq!(parse_rate("2Mpps"), Ok(2e6));
        assert_eq!(parse_rate("500k"), Ok(5e5));
        assert_eq!(parse_rate("100000"), Ok(1e5));
        assert_eq!(parse_rate("1.5G"), Ok(1.5e9));
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("fast").is_err());
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_u32("100"), Ok(100));
        assert_eq!(parse_u32("0x64"), Ok(100));
        assert_eq!(parse_u32("0xffffffff"), Ok(u32::MAX));
        assert!(parse_u32("0x1ffffffff").is_err());
        assert!(parse_u32("-1").is_err());
        assert!(parse_u32("key").is_err());
    }
}
