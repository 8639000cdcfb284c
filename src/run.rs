//! `xdpswitch run`: assembles a switch from its options — ports, flow file, datapath, bridge,
//! control socket — and serves until stopped. Errors name what is wrong in one line.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::agent::{Agent, AgentConfig, Target, TlsConfig};
use crate::config::{BridgeConf, Config, PortKind, UnderlayConf};
use crate::ctl;
use crate::datapath::dpif::{Datapath, DatapathConfig, DpBridge, DpLayout, DpPort};
use crate::datapath::normal::PortVlan;
use crate::datapath::offload::OffloadConfig;
use crate::datapath::tunnel::UnderlayPort;
use crate::netdev::afxdp::offload::SwitchProgram;
use crate::netdev::afxdp::{AfXdpConfig, AfXdpPort, XdpMode};
use crate::netdev::tap::TapPort;
use crate::netdev::virt::VirtualPort;
use crate::netdev::{DpPortNo, Port};
use crate::ofproto::bridge::{Bridge, BridgeConfig, PortMap};
use crate::ofproto::connmgr::AgentEvent;
use crate::ofproto::reconf::BridgeState;
use crate::ofproto::rule::PortNames;
use crate::ofproto::switch::{Control, Ofproto};
use crate::ofproto::table::Pipeline;
use crate::ofproto::underlay::{Underlay, UnderlayConfig};

/// OpenFlow requests queued from the agent to the bridge before the agent waits (and stops
/// reading from its sockets).
const AGENT_EVENTS: usize = 4096;

/// Everything `xdpswitch run` needs to know.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Interface names, numbered 1, 2, ... in this order.
    pub ports: Vec<String>,
    /// NORMAL VLAN configuration of the ports that have one (by interface name).
    pub port_vlans: Vec<(String, PortVlan)>,
    /// A file of rules in `ovs-ofctl add-flows` syntax.
    pub flows: Option<PathBuf>,
    /// Rules given inline (one per line), after those of `flows`.
    pub flow_text: Option<String>,
    pub ctl_path: PathBuf,
    pub xdp_mode: XdpMode,
    /// Run busy megaflows in the XDP program where possible (`--offload`).
    pub offload: bool,
    /// Most megaflows in the kernel at once (`--offload-flows`).
    pub offload_flows: usize,
    pub datapath: DatapathConfig,
    pub bridge: BridgeConfig,
    /// The bridge's name, and the name of its LOCAL port (a tap device).
    pub bridge_name: String,
    /// Controllers to connect to and ports to listen on.
    pub agent: AgentConfig,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            ports: Vec::new(),
            port_vlans: Vec::new(),
            flows: None,
            flow_text: None,
            ctl_path: PathBuf::from(ctl::DEFAULT_PATH),
            xdp_mode: XdpMode::Auto,
            offload: true,
            offload_flows: 8192,
            datapath: DatapathConfig::default(),
            bridge: BridgeConfig::default(),
            bridge_name: "xdpbr0".to_string(),
            agent: AgentConfig::default(),
        }
    }
}

/// Loads the pipeline from the flow file and inline rules; errors name the file, line and field.
/// Each table holds at most `opts.bridge.max_flows` rules.
pub fn load_pipeline(opts: &RunOptions, names: &PortNames) -> anyhow::Result<Pipeline> {
    let mut pipeline = Pipeline::with_max_flows(opts.bridge.max_flows);
    if let Some(path) = &opts.flows {
        let text = std::fs::read_to_string(path).with_context(|| format!("--flows {}", path.display()))?;
        load_text(&mut pipeline, &text, names, &path.display().to_string())?;
    }
    if let Some(text) = &opts.flow_text {
        load_text(&mut pipeline, text, names, "flows")?;
    }
    Ok(pipeline)
}

fn load_text(pipeline: &mut Pipeline, text: &str, names: &PortNames, origin: &str) -> anyhow::Result<()> {
    pipeline.add_flows_from_str(text, names, Duration::ZERO).map_err(|e| anyhow::anyhow!("{origin}:{e}"))?;
    Ok(())
}

/// Checks the port list and numbers the ports 1, 2, ...
pub fn port_names(ports: &[String]) -> anyhow::Result<PortNames> {
    if ports.is_empty() {
        bail!("--port: give at least one interface");
    }
    let mut names = PortNames::new();
    for (i, p) in ports.iter().enumerate() {
        if p.is_empty() || p.len() > 15 || p.contains(['/', ' ', ':']) {
            bail!("--port {p:?}: not a valid interface name");
        }
        if ports[..i].contains(p) {
            bail!("--port {p}: given twice");
        }
        names.insert(p, i as u32 + 1);
    }
    Ok(names)
}

/// Splits a `--port` argument, `IFACE[:KEY=VALUE]...`, into the interface name and its VLAN
/// configuration (`None` without options).
pub fn parse_port_spec(spec: &str) -> anyhow::Result<(String, Option<PortVlan>)> {
    let mut parts = spec.split(':');
    let name = parts.next().unwrap_or_default().to_string();
    let opts: Vec<&str> = parts.collect();
    if opts.is_empty() {
        return Ok((name, None));
    }
    let vlan =
        PortVlan::parse_options(opts.iter().copied()).map_err(|e| anyhow::anyhow!("--port {spec}: {e}"))?;
    Ok((name, Some(vlan)))
}

/// Loads the offload program if `opts` ask for it and sets `dcfg.offload`; a kernel that
/// refuses the program leaves the switch forwarding in user space only (said once, here).
fn offload_program(opts: &RunOptions, dcfg: &mut DatapathConfig) -> Option<Arc<SwitchProgram>> {
    dcfg.offload = None;
    if !opts.offload {
        tracing::info!("XDP offload off (--offload off): every packet goes through user space");
        return None;
    }
    match SwitchProgram::load() {
        Ok(p) => {
            let p = Arc::new(p);
            dcfg.offload = Some(OffloadConfig { program: Arc::clone(&p), max_flows: opts.offload_flows });
            Some(p)
        }
        Err(e) => {
            tracing::warn!(error = %e, "XDP offload unavailable: this kernel refused the offload program; forwarding in user space only");
            None
        }
    }
}

/// A switch built and ready to serve.
pub struct Switch {
    ofproto: Ofproto,
    calls: crossbeam_channel::Receiver<ctl::Call>,
    /// Each bridge's OpenFlow requests (index = bridge).
    agent_events: Vec<crossbeam_channel::Receiver<AgentEvent>>,
    /// Keep the event channels connected when a bridge has no agent (a disconnected channel
    /// would make the control thread's select return at once, forever).
    _agent_tx: Vec<crossbeam_channel::Sender<AgentEvent>>,
    /// Dropped after the bridges stop serving: closes the OpenFlow connections.
    agents: Vec<Option<Agent>>,
    /// The underlay ports, as opened (for the tunnels' slow path).
    pub underlays: Vec<UnderlaySpec>,
    /// The ctl socket, when this switch started it (a `LiveSwitch` keeps its own).
    _server: Option<ctl::Server>,
}

/// Where a switch's ctl calls come from.
pub enum Ctl {
    /// Start a ctl socket at this path.
    Start(PathBuf),
    /// Calls from a socket the caller runs (and keeps across rebuilds).
    Calls(crossbeam_channel::Receiver<ctl::Call>),
}

/// Who runs the bridges' OpenFlow agents.
pub enum Agents {
    /// Start one per bridge with targets (dropped with the switch).
    Start,
    /// The caller runs them: each bridge's events arrive on its receiver, in bridge order.
    Given(Vec<crossbeam_channel::Receiver<AgentEvent>>),
}

/// What [`Switch::from_config_with`] is given besides the configuration.
#[derive(Default)]
pub struct Prepared {
    /// Datapath and AF_XDP settings and the offload program (default: from the configuration).
    pub setup: Option<DatapathSetup>,
    /// Devices already opened, by interface name (the others are opened as needed).
    pub devices: HashMap<String, Arc<dyn Port>>,
    /// The ctl calls of a socket the caller runs (default: start one at the configured path).
    pub ctl: Option<crossbeam_channel::Receiver<ctl::Call>>,
    /// Each bridge's agent events, in bridge order, from agents the caller runs.
    pub agents: Option<Vec<crossbeam_channel::Receiver<AgentEvent>>>,
    /// OpenFlow state to put back, by bridge name.
    pub states: HashMap<String, BridgeState>,
}

/// The datapath's settings for a configuration, and its offload program.
pub struct DatapathSetup {
    pub datapath: DatapathConfig,
    pub afxdp: AfXdpConfig,
    pub program: Option<Arc<SwitchProgram>>,
}

/// The slow-path settings of bridge `b` (defaults from `base`).
pub fn bridge_config(b: &BridgeConf, base: &RunOptions) -> BridgeConfig {
    let mut bcfg = BridgeConfig { fail_mode: b.fail_mode, datapath_id: b.datapath_id, ..base.bridge.clone() };
    if let Some(a) = b.mac_aging {
        bcfg.mac_aging = a;
    }
    if let Some(r) = b.packet_in_rate {
        bcfg.packet_in_rate = r;
    }
    if let Some(n) = b.max_flows {
        bcfg.max_flows = n;
    }
    bcfg.has_controllers = b.targets.iter().any(Target::is_active);
    bcfg
}

/// An underlay port as opened: its datapath number, configuration, MAC and IP MTU.
#[derive(Clone, Debug)]
pub struct UnderlaySpec {
    pub port: DpPortNo,
    pub conf: UnderlayConf,
    pub mac: [u8; 6],
    pub mtu: u16,
}

/// One bridge to assemble over the datapath.
pub struct BridgeSpec {
    pub name: String,
    pub cfg: BridgeConfig,
    pub pipeline: Pipeline,
    /// Port names by OpenFlow number.
    pub names: PortNames,
    pub map: PortMap,
    /// NORMAL VLAN configuration by OpenFlow number.
    pub vlans: Vec<(u32, PortVlan)>,
    /// What `dump-ports` adds about a port (patch peer, tunnel options), by OpenFlow number.
    pub notes: Vec<(u32, String)>,
    pub agent: AgentConfig,
    /// OpenFlow state from before a rebuild, put back over `pipeline`.
    pub state: Option<BridgeState>,
}

impl Switch {
    /// Validates everything, opens the ports, starts the poll threads and the ctl socket.
    pub fn build(opts: &RunOptions) -> anyhow::Result<Switch> {
        let names = port_names(&opts.ports)?;
        if opts.ports.contains(&opts.bridge_name) {
            bail!(
                "--bridge {}: also given as a --port (the bridge's LOCAL port takes its name)",
                opts.bridge_name
            );
        }
        let pipeline = load_pipeline(opts, &names)?;
        let cfg = AfXdpConfig { xdp_mode: opts.xdp_mode, ..AfXdpConfig::default() };
        let mut opts = opts.clone();
        let mut dcfg = opts.datapath.clone();
        let program = offload_program(&opts, &mut dcfg);
        opts.datapath = dcfg;
        let mut ports = Vec::new();
        for (i, name) in opts.ports.iter().enumerate() {
            let port = AfXdpPort::open_with(name, &cfg, program.as_ref())
                .with_context(|| format!("--port {name}"))?;
            ports.push(DpPort { no: DpPortNo(i as u32 + 1), port: Arc::new(port) as Arc<dyn Port> });
        }
        // The bridge's LOCAL port, as Open vSwitch makes one per bridge: a tap device with the
        // bridge's name, OpenFlow port LOCAL.
        let local =
            TapPort::open(&opts.bridge_name).with_context(|| format!("--bridge {}", opts.bridge_name))?;
        ports.push(DpPort { no: DpPortNo::LOCAL, port: Arc::new(local) as Arc<dyn Port> });
        let mut names = names;
        names.insert(&opts.bridge_name, DpPortNo::LOCAL.0);
        Self::with_ports(&opts, names, pipeline, ports)
    }

    /// Builds the switch a configuration file describes: every bridge's ports (AF_XDP, patch,
    /// GRE) and LOCAL tap, the underlay ports, one datapath over all of them. `base` gives
    /// what the file leaves out (datapath tunables, agent versions and probes, the ctl path).
    pub fn from_config(cfg: &Config, base: &RunOptions) -> anyhow::Result<Switch> {
        Self::from_config_with(cfg, base, Prepared::default())
    }

    /// The datapath settings, AF_XDP settings and offload program (loaded here) for `cfg`.
    pub fn datapath_setup(cfg: &Config, base: &RunOptions) -> DatapathSetup {
        let xdp_mode = match cfg.xdp_mode.as_deref() {
            Some("native") => XdpMode::Native,
            Some("generic") => XdpMode::Generic,
            Some(_) => XdpMode::Auto,
            None => base.xdp_mode,
        };
        let afxdp = AfXdpConfig { xdp_mode, ..AfXdpConfig::default() };
        let mut dcfg = base.datapath.clone();
        if let Some(c) = cfg.cores {
            dcfg.n_pmds = c;
        }
        if !cfg.pmd_cpus.is_empty() {
            dcfg.pmd_cpus = cfg.pmd_cpus.clone();
        }
        let mut base_offload = base.clone();
        if let Some(o) = cfg.offload {
            base_offload.offload = o;
        }
        let program = offload_program(&base_offload, &mut dcfg);
        DatapathSetup { datapath: dcfg, afxdp, program }
    }

    /// Opens the device behind a port of a configuration: an AF_XDP interface or a tap
    /// (`Internal`); `None` for ports that have no device (patch, GRE).
    pub fn open_device(
        kind: &PortKind,
        name: &str,
        setup: &DatapathSetup,
    ) -> Option<anyhow::Result<Arc<dyn Port>>> {
        match kind {
            PortKind::Afxdp => Some(
                AfXdpPort::open_with(name, &setup.afxdp, setup.program.as_ref())
                    .map(|p| Arc::new(p) as Arc<dyn Port>)
                    .map_err(anyhow::Error::from),
            ),
            PortKind::Internal => {
                Some(TapPort::open(name).map(|p| Arc::new(p) as Arc<dyn Port>).map_err(anyhow::Error::from))
            }
            PortKind::Patch { .. } | PortKind::Gre(_) => None,
        }
    }

    /// [`from_config`](Self::from_config) with what the caller prepared: devices already
    /// opened (by interface name), the datapath setup, the ctl calls and agent channels of a
    /// switch that lives on across rebuilds, and the OpenFlow state of bridges to put back.
    pub fn from_config_with(cfg: &Config, base: &RunOptions, prep: Prepared) -> anyhow::Result<Switch> {
        let Prepared { setup, mut devices, ctl, agents, mut states } = prep;
        // The file's [ssl] table, else the command line's --private-key/--certificate/--ca-cert.
        let tls = match &cfg.ssl {
            Some(files) => {
                Some(TlsConfig::load_named(files, ["ssl.private_key", "ssl.certificate", "ssl.ca_cert"])?)
            }
            None => base.agent.tls.clone(),
        };
        for b in cfg.bridges.iter().filter(|_| tls.is_none()) {
            if let Some(t) = b.targets.iter().find(|t| t.is_tls()) {
                bail!("bridge {}: {t}: TLS needs an [ssl] table (private_key, certificate, ca_cert)", b.name);
            }
        }
        let setup = match setup {
            Some(s) => s,
            None => Self::datapath_setup(cfg, base),
        };
        let mut take = |kind: &PortKind, name: &str| -> Option<anyhow::Result<Arc<dyn Port>>> {
            match devices.remove(name) {
                Some(p) => Some(Ok(p)),
                None => Self::open_device(kind, name, &setup),
            }
        };
        let (numbers, locals, underlay_nos) = cfg.datapath_numbers();
        let mut ports = Vec::new();
        let mut layout = DpLayout::default();
        let mut tunnel_ports = Vec::new();
        let mut specs = Vec::new();
        for (i, b) in cfg.bridges.iter().enumerate() {
            let bi = i as u16;
            layout
                .bridges
                .push(DpBridge { mac_table_size: b.mac_table_size.unwrap_or(base.datapath.mac_table_size) });
            let mut names = PortNames::new();
            let mut pairs = Vec::new();
            let (mut vlans, mut notes, mut tunnels) = (Vec::new(), Vec::new(), Vec::new());
            for (p, &no) in b.ports.iter().zip(&numbers[i]) {
                let port: Arc<dyn Port> = match &p.kind {
                    PortKind::Afxdp | PortKind::Internal => take(&p.kind, &p.name)
                        .context("a device port")?
                        .with_context(|| format!("bridge {}: port {}", b.name, p.name))?,
                    PortKind::Patch { peer } => {
                        let (pb, pj) = cfg.find_port(peer).context("patch peer vanished")?;
                        layout.patches.push((no, numbers[pb][pj]));
                        Arc::new(VirtualPort::patch(&p.name))
                    }
                    PortKind::Gre(t) => {
                        layout.tunnels.push((no, t.clone()));
                        tunnel_ports.push((no, p.name.clone(), t.clone()));
                        tunnels.push(p.ofport);
                        Arc::new(VirtualPort::gre(&p.name))
                    }
                };
                ports.push(DpPort { no, port });
                layout.port_bridge.push((no, bi));
                names.insert(&p.name, p.ofport);
                pairs.push((p.ofport, no));
                if let Some(v) = &p.vlan {
                    vlans.push((p.ofport, v.clone()));
                }
                if let Some(n) = p.note() {
                    notes.push((p.ofport, n));
                }
            }
            // The bridge's LOCAL port: a tap with the bridge's name, OpenFlow port LOCAL.
            let local = take(&PortKind::Internal, &b.name)
                .context("a tap")?
                .with_context(|| format!("bridge {}: LOCAL port", b.name))?;
            ports.push(DpPort { no: locals[i], port: local });
            layout.port_bridge.push((locals[i], bi));
            names.insert(&b.name, DpPortNo::LOCAL.0);
            pairs.push((DpPortNo::LOCAL.0, locals[i]));
            let mut opts = base.clone();
            opts.flows = b.flows.clone();
            opts.flow_text = None;
            if let Some(n) = b.max_flows {
                opts.bridge.max_flows = n;
            }
            let state = states.remove(&b.name);
            // A bridge whose state is put back keeps its tables: the flows file is for new ones.
            let pipeline = if state.is_some() {
                Pipeline::with_max_flows(opts.bridge.max_flows)
            } else {
                load_pipeline(&opts, &names).with_context(|| format!("bridge {}", b.name))?
            };
            specs.push(BridgeSpec {
                name: b.name.clone(),
                cfg: bridge_config(b, base),
                pipeline,
                names,
                map: PortMap::new(pairs).with_tunnels(tunnels),
                vlans,
                notes,
                agent: AgentConfig { targets: b.targets.clone(), tls: tls.clone(), ..base.agent.clone() },
                state,
            });
        }
        let mut underlays = Vec::new();
        for (u, &no) in cfg.underlays.iter().zip(&underlay_nos) {
            let port = take(&PortKind::Afxdp, &u.port)
                .context("a device port")?
                .with_context(|| format!("underlay {}", u.port))?;
            let (mac, link_mtu) = (port.mac(), port.link().mtu);
            let mtu = u.mtu.unwrap_or(u16::try_from(link_mtu).unwrap_or(1500).max(576));
            layout.underlays.push(UnderlayPort { port: no, ip: u.ip, mac });
            ports.push(DpPort { no, port });
            underlays.push(UnderlaySpec { port: no, conf: u.clone(), mac, mtu });
        }
        let dp = Datapath::start_layout(&setup.datapath, ports, layout).context("starting the datapath")?;
        let ctl = match ctl {
            Some(calls) => Ctl::Calls(calls),
            None => Ctl::Start(cfg.ctl.clone().unwrap_or_else(|| base.ctl_path.clone())),
        };
        let agents = match agents {
            Some(rx) => Agents::Given(rx),
            None => Agents::Start,
        };
        let mut sw = Self::assemble_with(dp, specs, ctl, agents)?;
        if !underlays.is_empty() || !tunnel_ports.is_empty() {
            let cfgs = underlays
                .iter()
                .map(|u| UnderlayConfig {
                    port: u.port,
                    name: u.conf.port.clone(),
                    mac: u.mac,
                    ip: u.conf.ip,
                    prefix_len: u.conf.prefix_len,
                    gateway: u.conf.gateway,
                    mtu: u.mtu,
                })
                .collect();
            let underlay = Underlay::new(cfgs, tunnel_ports).map_err(|e| anyhow::anyhow!(e))?;
            sw.ofproto.set_underlay(underlay);
        }
        sw.underlays = underlays;
        Ok(sw)
    }

    /// Builds a single-bridge switch over ports opened by the caller (in-memory ports in
    /// tests); OpenFlow numbers are the datapath numbers.
    pub fn with_ports(
        opts: &RunOptions,
        names: PortNames,
        pipeline: Pipeline,
        ports: Vec<DpPort>,
    ) -> anyhow::Result<Switch> {
        let dp = Datapath::start(&opts.datapath, ports).context("starting the datapath")?;
        let mut vlans = Vec::new();
        for (name, vlan) in &opts.port_vlans {
            let Some(no) = names.number(name) else {
                bail!("--port {name}: VLAN options for a port not given")
            };
            vlans.push((no, vlan.clone()));
        }
        let spec = BridgeSpec {
            name: opts.bridge_name.clone(),
            cfg: opts.bridge.clone(),
            pipeline,
            map: PortMap::identity(dp.ports().iter().map(|p| p.no)),
            names,
            vlans,
            notes: Vec::new(),
            agent: opts.agent.clone(),
            state: None,
        };
        Self::assemble(dp, vec![spec], &opts.ctl_path)
    }

    /// The bridges over a started datapath, one agent per bridge that has controllers or
    /// listeners, and the ctl socket.
    pub fn assemble(dp: Datapath, specs: Vec<BridgeSpec>, ctl_path: &Path) -> anyhow::Result<Switch> {
        Self::assemble_with(dp, specs, Ctl::Start(ctl_path.to_path_buf()), Agents::Start)
    }

    /// The bridges over a started datapath, with the ctl socket and the agents started here
    /// or given by the caller (who then owns them).
    pub fn assemble_with(
        mut dp: Datapath,
        specs: Vec<BridgeSpec>,
        ctl: Ctl,
        agents_mode: Agents,
    ) -> anyhow::Result<Switch> {
        let (calls, server) = match ctl {
            Ctl::Start(path) => {
                let (tx, calls) = crossbeam_channel::bounded(16);
                let server =
                    ctl::Server::start(&path, tx).with_context(|| format!("--ctl {}", path.display()))?;
                (calls, Some(server))
            }
            Ctl::Calls(calls) => (calls, None),
        };
        let mut given = match agents_mode {
            Agents::Given(rx) => Some(rx.into_iter()),
            Agents::Start => None,
        };
        let mut bridges = Vec::new();
        let (mut agents, mut agent_events, mut agent_tx) = (Vec::new(), Vec::new(), Vec::new());
        for (i, spec) in specs.into_iter().enumerate() {
            let mut bcfg = spec.cfg;
            bcfg.has_controllers = spec.agent.targets.iter().any(Target::is_active);
            let mut bridge =
                Bridge::new(&spec.name, i as u16, bcfg, spec.pipeline, spec.names, spec.map, &mut dp);
            for (no, vlan) in spec.vlans {
                bridge.set_port_vlan(&mut dp, no, vlan);
            }
            for (no, note) in spec.notes {
                bridge.set_port_note(no, note);
            }
            if let Some(state) = spec.state {
                bridge.restore_state(&mut dp, state);
            }
            bridges.push(bridge);
            if let Some(given) = &mut given {
                let events = given.next().context("an agent channel per bridge")?;
                agents.push(None);
                agent_events.push(events);
                continue;
            }
            let (events_tx, events) = crossbeam_channel::bounded(AGENT_EVENTS);
            let agent = if spec.agent.targets.is_empty() {
                None
            } else {
                Some(
                    Agent::start(spec.agent, events_tx.clone())
                        .with_context(|| format!("bridge {}", spec.name))?,
                )
            };
            agents.push(agent);
            agent_events.push(events);
            agent_tx.push(events_tx);
        }
        Ok(Switch {
            ofproto: Ofproto::new(dp, bridges),
            underlays: Vec::new(),
            calls,
            agent_events,
            _agent_tx: agent_tx,
            agents,
            _server: server,
        })
    }

    /// Where the passive OpenFlow listeners of the first bridge listen (with port 0 resolved).
    pub fn listening(&self) -> Vec<std::net::SocketAddr> {
        self.listening_on(0)
    }

    /// Where bridge `i`'s passive OpenFlow listeners listen.
    pub fn listening_on(&self, i: usize) -> Vec<std::net::SocketAddr> {
        self.agents.get(i).and_then(Option::as_ref).map(|a| a.listening.clone()).unwrap_or_default()
    }

    /// Runs every [`Control`] sent on `rx` on the control thread while serving.
    pub fn set_control(&mut self, rx: crossbeam_channel::Receiver<Control>) {
        self.ofproto.set_control(rx);
    }

    /// Serves until `stop` is set (or `ctl exit`), then takes every bridge's OpenFlow state
    /// out, by bridge name, and stops the poll threads; the ports are released on return.
    pub fn serve_and_take(mut self, stop: &AtomicBool) -> Vec<(String, BridgeState)> {
        self.ofproto.run(&self.calls, &self.agent_events, stop);
        let states = self.ofproto.take_states();
        self.agents.clear();
        self.ofproto.shutdown();
        states
    }

    /// Serves until `stop` is set (or `ctl exit`), then stops the poll threads.
    pub fn serve(mut self, stop: &AtomicBool) {
        self.ofproto.run(&self.calls, &self.agent_events, stop);
        self.agents.clear();
        self.ofproto.shutdown();
    }
}

/// `xdpswitch run`: builds the switch and serves until SIGINT/SIGTERM.
pub fn run(opts: &RunOptions) -> anyhow::Result<()> {
    serve_until_signalled(
        || Switch::build(opts),
        || {
            tracing::info!(
                ports = ?opts.ports,
                cores = opts.datapath.n_pmds,
                ctl = %opts.ctl_path.display(),
                "xdpswitch running; stop with Ctrl-C"
            )
        },
    )
}

/// `xdpswitch run --config FILE`: builds the bridges of `cfg` (defaults from `base`) and
/// serves until SIGINT/SIGTERM.
pub fn run_config(cfg: &Config, base: &RunOptions) -> anyhow::Result<()> {
    serve_until_signalled(
        || Switch::from_config(cfg, base),
        || {
            let bridges: Vec<&str> = cfg.bridges.iter().map(|b| b.name.as_str()).collect();
            tracing::info!(?bridges, underlays = cfg.underlays.len(), "xdpswitch running; stop with Ctrl-C")
        },
    )
}

/// Installs the SIGINT/SIGTERM handlers, builds the switch, says so, and serves until a signal.
fn serve_until_signalled(
    build: impl FnOnce() -> anyhow::Result<Switch>,
    announce: impl FnOnce(),
) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("installing signal handlers")?;
    }
    let switch = build()?;
    announce();
    switch.serve(&stop);
    if stop.load(Relaxed) {
        tracing::info!("stopped by signal; ports released");
    }
    Ok(())
}

/// Waits until the ctl socket at `path` answers (for tests and the demo).
pub fn wait_for_ctl(path: &Path, timeout: Duration) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if ctl::call(path, &["version".to_string()], false).is_ok_and(|r| r.ok) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}
