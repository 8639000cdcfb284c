//! `xdpswitch pktgen redirect --dev IN --to OUT`: kernel XDP_REDIRECT from one interface to
//! another (the program in `bpf/redirect.c`), the ceiling the benchmark harness compares the
//! switches with. Redirecting into a veth needs an XDP program on the veth's peer (the sink
//! attaches one). The program is attached through a bpf_link and detached on exit.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use aya::maps::DevMap;
use aya::programs::{Xdp, XdpMode};

static REDIRECT_OBJ: &[u8] = aya::include_bytes_aligned!("../../bpf/redirect.o");

/// Arguments of `pktgen redirect`.
#[derive(Debug, clap::Args)]
pub struct RedirectArgs {
    /// Interface whose received frames are redirected.
    #[arg(long)]
    pub dev: String,
    /// Interface they are sent out of.
    #[arg(long)]
    pub to: String,
    /// Stop after this many seconds (default: until Ctrl-C).
    #[arg(long)]
    pub duration: Option<u64>,
}

fn ifindex(name: &str) -> anyhow::Result<u32> {
    let path = format!("/sys/class/net/{name}/ifindex");
    let s = std::fs::read_to_string(&path).map_err(|_| anyhow::anyhow!("interface {name:?} does not exist"))?;
    s.trim().parse().with_context(|| format!("reading {path}"))
}

/// Attaches the redirect program until the duration ends or a signal arrives.
pub fn run(args: &RedirectArgs) -> anyhow::Result<()> {
    let out = ifindex(&args.to).context("--to")?;
    let dev_index = ifindex(&args.dev).context("--dev")?;
    if out == dev_index {
        bail!("--to: must differ from --dev");
    }
    let mut ebpf = aya::Ebpf::load(REDIRECT_OBJ).context("loading bpf/redirect.o")?;
    let prog: &mut Xdp = ebpf
        .program_mut("xdp_redirect_port")
        .context("bpf/redirect.o has no xdp_redirect_port program")?
        .try_into()?;
    prog.load().context("loading the redirect program (verifier)")?;
    let mode = match prog.attach_to_if_index(dev_index, XdpMode::Driver) {
        Ok(_) => "native",
        Err(_) => {
            prog.attach_to_if_index(dev_index, XdpMode::Skb).with_context(|| format!("attaching XDP to {}", args.dev))?;
            "generic"
        }
    };
    let mut ports: DevMap<_> = DevMap::try_from(ebpf.map_mut("out_port").context("no out_port map")?)?;
    ports.set(0, out, None, 0).context("setting the output port")?;
    eprintln!("pktgen redirect: {} -> {} (XDP {mode} mode); Ctrl-C stops", args.dev, args.to);
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let end = args.duration.map(|d| Instant::now() + Duration::from_secs(d));
    while !stop.load(Relaxed) && end.is_none_or(|e| Instant::now() < e) {
        std::thread::sleep(Duration::from_millis(50));
    }
    // Dropping `ebpf` detaches the program (its link goes with it).
    Ok(())
}
