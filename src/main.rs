//! The `xdpswitch` command: run a switch, talk to a running one, run the demo, generate
//! traffic. Errors print as one line (`xdpswitch: error: ...`) and exit with status 1.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use xdpswitch::agent::{AgentConfig, TlsConfig, TlsFiles};
use xdpswitch::datapath::dpif::DatapathConfig;
use xdpswitch::netdev::afxdp::XdpMode;
use xdpswitch::ofproto::bridge::BridgeConfig;
use xdpswitch::ofproto::connmgr::FailMode;
use xdpswitch::run::RunOptions;

#[derive(Parser)]
#[command(name = "xdpswitch", version, about = "A userspace OpenFlow switch on AF_XDP sockets")]
struct Cli {
    /// Log level (error, warn, info, debug, trace) or a tracing filter [default: info; warn
    /// for `demo`, whose own lines tell the story].
    #[arg(long, global = true)]
    log: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum ModeArg {
    Auto,
    Native,
    Generic,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OnOffArg {
    On,
    Off,
}

#[derive(Clone, Copy, ValueEnum)]
enum FailModeArg {
    Secure,
    Standalone,
}

#[derive(Clone, Copy, ValueEnum)]
enum OfVersionArg {
    #[value(name = "1.0")]
    V10,
    #[value(name = "1.3")]
    V13,
}

/// Where Open vSwitch keeps its sockets (`--rundir` of `run --ovsdb`).
const OVS_RUNDIR: &str = "/var/run/openvswitch";

#[derive(Subcommand)]
enum Cmd {
    /// Run a switch over network interfaces (ports are numbered 1, 2, ... in order), or the
    /// bridges of a configuration file (`--config`).
    Run {
        /// A TOML file describing several bridges, their ports (AF_XDP, patch, GRE) and the
        /// underlay ports (see the README); the other options then only give defaults.
        #[arg(long, value_name = "FILE", conflicts_with_all = ["ports", "flows", "controllers", "listen", "bridge"])]
        config: Option<PathBuf>,
        /// Run as the `ovs-vswitchd` of an Open vSwitch database: `unix:PATH` or
        /// `tcp:IP[:PORT]` of a stock `ovsdb-server`; bridges, ports and controllers then
        /// come from the database (`ovs-vsctl`), and the other options only give defaults.
        #[arg(long, value_name = "unix:PATH|tcp:IP[:PORT]",
              conflicts_with_all = ["config", "ports", "flows", "controllers", "listen", "bridge"])]
        ovsdb: Option<String>,
        /// With --ovsdb: where each bridge's management socket `<BRIDGE>.mgmt` goes (what
        /// `ovs-ofctl dump-flows BRIDGE` connects to).
        #[arg(long, value_name = "DIR", default_value = OVS_RUNDIR)]
        rundir: PathBuf,
        /// An interface to switch between (repeat for each port), with its NORMAL VLAN options
        /// as Open vSwitch's Port columns: `vm1:tag=10`, `uplink:trunks=10,20`,
        /// `eth1:vlan_mode=native-untagged:tag=5:trunks=6,7`.
        #[arg(
            long = "port",
            value_name = "IFACE[:tag=VID][:trunks=VID,..][:vlan_mode=MODE]",
            required_unless_present_any = ["config", "ovsdb"]
        )]
        ports: Vec<String>,
        /// Rules in `ovs-ofctl add-flows` syntax, one per line.
        #[arg(long, value_name = "FILE")]
        flows: Option<PathBuf>,
        /// Poll threads (one per core).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
        cores: u16,
        /// The control socket for `xdpswitch ctl`.
        #[arg(long, default_value = xdpswitch::ctl::DEFAULT_PATH)]
        ctl: PathBuf,
        /// How to attach the XDP program: native first with generic fallback (auto), or forced.
        #[arg(long, value_enum, default_value_t = ModeArg::Auto)]
        xdp_mode: ModeArg,
        /// Run busy megaflows inside the XDP program (kernel fast path) where the kernel and
        /// the ports allow it; off: every packet goes through user space.
        #[arg(long, value_enum, default_value_t = OnOffArg::On)]
        offload: OnOffArg,
        /// Most megaflows in the kernel at once (the rest stay in user space).
        #[arg(long, default_value_t = 8192, value_parser = clap::value_parser!(u32).range(1..=16384))]
        offload_flows: u32,
        /// Exact-match cache entries per poll thread (power of two); 0 disables the cache.
        #[arg(long, default_value_t = 8192)]
        emc_entries: usize,
        /// Insert into the exact-match cache one time in N (OVS: 100).
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
        emc_insert_inv_prob: u32,
        /// Upcall queue bound (misses beyond it are dropped and counted).
        #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..))]
        upcall_queue: u32,
        /// Most megaflows at once.
        #[arg(long, default_value_t = 200_000, value_parser = clap::value_parser!(u32).range(1..))]
        max_megaflows: u32,
        /// Most rules per OpenFlow table; an add beyond it is refused (OFPFMFC_TABLE_FULL,
        /// OpenFlow 1.0: ALL_TABLES_FULL) and counted.
        #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u32).range(1..))]
        max_flows: u32,
        /// Packet-in queue bound between the poll threads and the control thread (copies for
        /// the controller beyond it are dropped and counted).
        #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
        packet_in_queue: u32,
        /// Seconds an unused megaflow stays installed.
        #[arg(long, default_value_t = 10)]
        max_idle: u64,
        /// CPUs for the poll threads, in order (default: the last CPUs, leaving CPU 0 free).
        #[arg(long, value_delimiter = ',', value_name = "CPU,...")]
        pmd_cpus: Vec<usize>,
        /// Connect to an OpenFlow controller at tcp:IP[:PORT], or over TLS at ssl:IP[:PORT]
        /// (repeat for several).
        #[arg(long = "controller", value_name = "tcp|ssl:IP[:PORT]")]
        controllers: Vec<xdpswitch::agent::Target>,
        /// Accept OpenFlow connections (ovs-ofctl) at ptcp:[PORT][:IP], over TLS at
        /// pssl:[PORT][:IP] (loopback without IP), or on a unix socket at punix:PATH.
        #[arg(long = "listen", value_name = "ptcp|pssl:[PORT][:IP]|punix:PATH")]
        listen: Vec<xdpswitch::agent::Target>,
        /// The switch's private key for ssl:/pssl: connections (PEM), as OVS's option.
        #[arg(long, value_name = "FILE", requires_all = ["certificate", "ca_cert"])]
        private_key: Option<PathBuf>,
        /// The switch's certificate (PEM), signed by a CA its peers trust.
        #[arg(long, value_name = "FILE", requires_all = ["private_key", "ca_cert"])]
        certificate: Option<PathBuf>,
        /// The CA certificate(s) (PEM) that peers' certificates must chain to; both sides are
        /// verified, and, as in OVS, host names are not checked.
        #[arg(long, value_name = "FILE", requires_all = ["private_key", "certificate"])]
        ca_cert: Option<PathBuf>,
        /// Without a controller: act as a learning switch (standalone, as Open vSwitch: a
        /// bridge without controllers gets `priority=0,actions=NORMAL`), or forward by the
        /// flows only (secure).
        #[arg(long, value_enum, default_value_t = FailModeArg::Standalone)]
        fail_mode: FailModeArg,
        /// Seconds a MAC address NORMAL learned stays without being seen (OVS mac-aging-time).
        #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u32).range(1..))]
        mac_aging: u32,
        /// Most MAC addresses NORMAL remembers; beyond it the port with the most loses its
        /// oldest (OVS mac-table-size).
        #[arg(long, default_value_t = 8192, value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
        mac_table_size: u32,
        /// The bridge's name, also the name of its LOCAL port (a tap device).
        #[arg(long, default_value = "xdpbr0")]
        bridge: String,
        /// OpenFlow versions to offer.
        #[arg(long, value_delimiter = ',', default_value = "1.0,1.3", value_name = "1.0,1.3")]
        of_versions: Vec<OfVersionArg>,
        /// Seconds without a message from a controller before probing it with an echo
        /// request (and as long again before giving up on it).
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
        inactivity_probe: u64,
        /// Longest wait, in seconds, between attempts to reconnect to a controller: the wait
        /// starts at 1 s and doubles up to this (OVS max_backoff).
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..))]
        max_backoff: u64,
        /// Most packet-ins per second sent to controllers (beyond it they are dropped and
        /// counted; forwarding is never held up).
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
        packet_in_rate: u32,
    },
    /// Send a command to a running switch (`list-commands` lists them).
    Ctl {
        /// The switch's control socket.
        #[arg(long, default_value = xdpswitch::ctl::DEFAULT_PATH)]
        ctl: PathBuf,
        /// The bridge a per-bridge command acts on (default: the first).
        #[arg(long)]
        bridge: Option<String>,
        /// Answer in JSON where the command supports it.
        #[arg(long)]
        json: bool,
        /// The command and its arguments.
        #[arg(required = true, trailing_var_arg = true)]
        argv: Vec<String>,
    },
    /// Build two namespaces joined by the switch, send real traffic through it, print the rate.
    Demo {
        /// Seconds of traffic.
        #[arg(long, default_value_t = 5)]
        duration: u64,
        /// Frame size in bytes (60..=1518).
        #[arg(long, default_value_t = 64)]
        size: u32,
        /// Poll threads.
        #[arg(long, default_value_t = 1)]
        cores: u16,
    },
    /// A bare AF_XDP forwarder between two interfaces (no classification): the baseline the
    /// switch is measured against.
    Fwd {
        #[arg(long = "port", value_name = "IFACE", num_args = 1, required = true)]
        ports: Vec<String>,
        /// Stop after this many seconds (default: until Ctrl-C).
        #[arg(long)]
        duration: Option<u64>,
        #[arg(long, value_enum, default_value_t = ModeArg::Auto)]
        xdp_mode: ModeArg,
    },
    /// Traffic generator and sink for benchmarks.
    #[command(subcommand)]
    Pktgen(xdpswitch::pktgen::PktgenCmd),
}

fn mode(m: ModeArg) -> XdpMode {
    match m {
        ModeArg::Auto => XdpMode::Auto,
        ModeArg::Native => XdpMode::Native,
        ModeArg::Generic => XdpMode::Generic,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A configuration file is read first: its `log` applies unless --log is given.
    let config = match &cli.cmd {
        Cmd::Run { config: Some(path), .. } => match xdpswitch::config::Config::load(path) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("xdpswitch: error: {e}");
                return ExitCode::FAILURE;
            }
        },
        _ => None,
    };
    let level = cli
        .log
        .as_deref()
        .or(config.as_ref().and_then(|c| c.log.as_deref()))
        .unwrap_or(if matches!(cli.cmd, Cmd::Demo { .. }) { "warn" } else { "info" });
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();
    match real_main(cli.cmd, config) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xdpswitch: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main(cmd: Cmd, config: Option<xdpswitch::config::Config>) -> anyhow::Result<ExitCode> {
    match cmd {
        Cmd::Run {
            config: _,
            ovsdb,
            rundir,
            ports,
            flows,
            cores,
            ctl,
            xdp_mode,
            offload,
            offload_flows,
            emc_entries,
            emc_insert_inv_prob,
            upcall_queue,
            max_megaflows,
            max_flows,
            packet_in_queue,
            max_idle,
            pmd_cpus,
            controllers,
            listen,
            private_key,
            certificate,
            ca_cert,
            fail_mode,
            bridge,
            of_versions,
            inactivity_probe,
            max_backoff,
            packet_in_rate,
            mac_aging,
            mac_table_size,
        } => {
            if let Some(t) = controllers.iter().find(|t| !t.is_active()) {
                anyhow::bail!("--controller {t}: expected tcp: or ssl:IP[:PORT] (use --listen for {t})");
            }
            if let Some(t) = listen.iter().find(|t| t.is_active()) {
                anyhow::bail!("--listen {t}: expected ptcp: or pssl:[PORT][:IP] or punix:PATH (use --controller for {t})");
            }
            let tls = match (private_key, certificate, ca_cert) {
                (Some(private_key), Some(certificate), Some(ca_cert)) => {
                    Some(TlsConfig::load(&TlsFiles { private_key, certificate, ca_cert })?)
                }
                _ => None,
            };
            if let Some(t) = controllers.iter().chain(&listen).find(|t| t.is_tls()).filter(|_| tls.is_none())
            {
                anyhow::bail!("{t}: TLS needs --private-key, --certificate and --ca-cert");
            }
            if emc_entries != 0 && !emc_entries.is_power_of_two() {
                anyhow::bail!("--emc-entries {emc_entries}: must be 0 or a power of two");
            }
            let n_cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
            if let Some(c) = pmd_cpus.iter().find(|&&c| c >= n_cpus) {
                anyhow::bail!("--pmd-cpus {c}: this machine has CPUs 0..{}", n_cpus - 1);
            }
            let mut port_vlans = Vec::new();
            let mut names = Vec::new();
            for spec in &ports {
                let (name, vlan) = xdpswitch::run::parse_port_spec(spec)?;
                if let Some(v) = vlan {
                    port_vlans.push((name.clone(), v));
                }
                names.push(name);
            }
            let opts = RunOptions {
                ports: names,
                port_vlans,
                flows,
                flow_text: None,
                ctl_path: ctl,
                xdp_mode: mode(xdp_mode),
                offload: offload == OnOffArg::On,
                offload_flows: offload_flows as usize,
                datapath: DatapathConfig {
                    n_pmds: cores as usize,
                    emc_entries,
                    emc_insert_inv_prob,
                    upcall_queue: upcall_queue as usize,
                    packet_in_queue: packet_in_queue as usize,
                    max_megaflows: max_megaflows as usize,
                    mac_table_size: mac_table_size as usize,
                    pmd_cpus,
                    ..DatapathConfig::default()
                },
                bridge: BridgeConfig {
                    megaflow_max_idle: Duration::from_secs(max_idle),
                    fail_mode: match fail_mode {
                        FailModeArg::Secure => FailMode::Secure,
                        FailModeArg::Standalone => FailMode::Standalone,
                    },
                    packet_in_rate,
                    max_flows: max_flows as usize,
                    mac_aging: Duration::from_secs(mac_aging.into()),
                    // OVS fails open after three probe intervals without a controller.
                    fail_open_after: Duration::from_secs(inactivity_probe * 3),
                    ..BridgeConfig::default()
                },
                bridge_name: bridge,
                agent: AgentConfig {
                    targets: controllers.into_iter().chain(listen).collect(),
                    versions: of_versions
                        .iter()
                        .map(|v| match v {
                            OfVersionArg::V10 => xdpswitch::ofp::OFP10_VERSION,
                            OfVersionArg::V13 => xdpswitch::ofp::OFP13_VERSION,
                        })
                        .collect(),
                    probe_interval: Duration::from_secs(inactivity_probe),
                    max_backoff: Duration::from_secs(max_backoff),
                    tls,
                },
            };
            if let Some(db) = ovsdb {
                run_ovsdb(&db, &rundir, &opts, xdp_mode, cores)?;
                return Ok(ExitCode::SUCCESS);
            }
            match config {
                Some(cfg) => xdpswitch::run::run_config(&cfg, &opts)?,
                None => xdpswitch::run::run(&opts)?,
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Ctl { mut ctl, bridge, json, argv } => {
            // A switch run with --ovsdb keeps its ctl socket in its rundir, as ovs-vswitchd
            // keeps its ovs-appctl socket there: found without --ctl at the default rundir.
            let ovs = std::path::Path::new(OVS_RUNDIR).join("xdpswitch.ctl");
            if ctl == std::path::Path::new(xdpswitch::ctl::DEFAULT_PATH) && !ctl.exists() && ovs.exists() {
                ctl = ovs;
            }
            let r = xdpswitch::ctl::call_bridge(&ctl, bridge.as_deref(), &argv, json)?;
            if r.ok {
                print!("{}", r.body);
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("xdpswitch ctl: {}", r.body.trim_end());
                Ok(ExitCode::FAILURE)
            }
        }
        Cmd::Demo { duration, size, cores } => {
            xdpswitch::demo::run(&xdpswitch::demo::DemoOptions { duration, size, cores: cores as usize })?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Fwd { ports, duration, xdp_mode } => {
            fwd(&ports, duration, mode(xdp_mode))?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Pktgen(cmd) => {
            xdpswitch::pktgen::run(cmd)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `run --ovsdb DB`: the database side drives the switch side until SIGINT/SIGTERM.
fn run_ovsdb(
    db: &str,
    rundir: &std::path::Path,
    opts: &RunOptions,
    xdp_mode: ModeArg,
    cores: u16,
) -> anyhow::Result<()> {
    use xdpswitch::vswitchd::db::{serve, Remote, ServeOptions};
    db.parse::<Remote>()?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let mut base = xdpswitch::vswitchd::model::empty_config();
    base.cores = Some(cores as usize);
    base.ctl = Some(opts.ctl_path.clone());
    base.xdp_mode = Some(
        match xdp_mode {
            ModeArg::Auto => "auto",
            ModeArg::Native => "native",
            ModeArg::Generic => "generic",
        }
        .to_string(),
    );
    base.offload = Some(opts.offload);
    base.pmd_cpus = opts.datapath.pmd_cpus.clone();
    let mut switch = xdpswitch::vswitchd::live_switch(opts, rundir)?;
    serve(db, &ServeOptions { base, ..ServeOptions::default() }, &mut *switch, &stop)
}

fn fwd(ports: &[String], duration: Option<u64>, xdp_mode: XdpMode) -> anyhow::Result<()> {
    use anyhow::Context;
    if ports.len() != 2 {
        anyhow::bail!("--port: the forwarder takes exactly two interfaces");
    }
    let cfg = xdpswitch::netdev::afxdp::AfXdpConfig { xdp_mode, ..Default::default() };
    let a = xdpswitch::netdev::afxdp::AfXdpPort::open(&ports[0], &cfg)
        .with_context(|| format!("--port {}", ports[0]))?;
    let b = xdpswitch::netdev::afxdp::AfXdpPort::open(&ports[1], &cfg)
        .with_context(|| format!("--port {}", ports[1]))?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    if let Some(d) = duration {
        let stop = stop.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(d));
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        });
    }
    let stats = xdpswitch::netdev::bare::forward(&a, &b, &stop)?;
    println!("{stats:?}");
    Ok(())
}
