//! [`LiveSwitch`]: a running switch brought to each new [`Config`] the database side derives.
//!
//! Two kinds of change (see `docs/architecture.md`, "Reconfiguration"):
//! - **live**, on the running switch's control thread: a port's VLAN configuration, a
//!   bridge's fail mode, MAC aging, packet-in rate and datapath_id; a bridge's controllers
//!   and listeners (only that bridge's agent is restarted);
//! - **rebuild**, when the set of bridges, ports (name, number, kind), underlays, cores or
//!   datapath options changes (the datapath's port layout is fixed when it starts): the
//!   switch stops, every surviving bridge's OpenFlow state (flow tables with their counters,
//!   groups, meters, controller connections) is taken out by bridge name, the ports are
//!   released, and the new switch is built with that state put back. The agents and the ctl
//!   socket live outside the switch and go on across a rebuild, so controllers stay
//!   connected; NORMAL's MAC table and the megaflows are relearned.
//!
//! Ports are opened one by one: one that cannot be opened is reported in its
//! [`PortResult::error`] and left out, and tried again on the next [`SwitchControl::apply`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender};

use super::{
    ApplyReport, BridgeResult, ControllerStatus, PortResult, PortStatus, SwitchControl, SwitchStatus,
};
use crate::agent::{Agent, AgentConfig, Target, TlsConfig};
use crate::config::{BridgeConf, Config, PortKind};
use crate::ctl;
use crate::datapath::normal::PortVlan;
use crate::netdev::Port;
use crate::ofproto::connmgr::{AgentEvent, ConnType, Role};
use crate::ofproto::reconf::BridgeState;
use crate::ofproto::switch::{Control, Ofproto};
use crate::run::{bridge_config, DatapathSetup, Prepared, RunOptions, Switch};

/// OpenFlow events queued from a bridge's agent before the agent waits (as `run`).
const AGENT_EVENTS: usize = 4096;
/// How long a query of the control thread may take before it is given up.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);

/// The management socket of bridge `bridge` under `rundir` (`ovs-ofctl` talks to
/// `<rundir>/<bridge>.mgmt`, as to Open vSwitch's).
pub fn mgmt_path(rundir: &Path, bridge: &str) -> PathBuf {
    rundir.join(format!("{bridge}.mgmt"))
}

/// A switch that follows its configuration; see the module documentation.
pub struct LiveSwitch {
    rundir: PathBuf,
    base: RunOptions,
    /// The ctl socket (lives as long as `self`, across rebuilds).
    _ctl: ctl::Server,
    calls: Receiver<ctl::Call>,
    ctl_path: PathBuf,
    /// The configuration last applied (including what failed in it).
    cfg: Option<Config>,
    /// What failed when the running switch was built: (bridge, port) -> error, and bridges.
    failed_ports: HashMap<(String, String), String>,
    failed_bridges: HashMap<String, String>,
    /// Per bridge: its agent and the channel to its bridge (both survive rebuilds).
    links: HashMap<String, Link>,
    running: Option<Running>,
    /// Answers the ctl socket while no switch runs.
    idle: Option<Idle>,
    /// Devices kept across rebuilds, by name. Taps (LOCAL and internal ports): a tap
    /// disappears when closed, and with it its address, MAC (the datapath_id comes from
    /// LOCAL's) and IP configuration, which OVS keeps. AF_XDP ports when the offload is off:
    /// each has its own XDP program, whose loading would otherwise lengthen the gap.
    kept: HashMap<String, Kept>,
    /// The `xdp_mode` the kept AF_XDP ports were attached with.
    kept_xdp_mode: Option<String>,
    rebuilds: u64,
    last_rebuild: Option<Duration>,
}

/// A bridge's OpenFlow agent and its event channel.
struct Link {
    tx: Sender<AgentEvent>,
    rx: Receiver<AgentEvent>,
    agent: Option<Agent>,
    /// The agent's targets and TLS settings, to tell when it must be restarted.
    targets: Vec<Target>,
    ssl: Option<crate::agent::TlsFiles>,
}

/// The switch serving on its own thread.
struct Running {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<(String, BridgeState)>>,
    control: Sender<Control>,
    /// The configuration it was built from (failed ports and bridges left out).
    built: Config,
}

impl Running {
    /// Runs `f` on the control thread and returns its answer.
    fn query<T: Send + 'static>(&self, f: impl FnOnce(&mut Ofproto) -> T + Send + 'static) -> Option<T> {
        let (tx, rx) = bounded(1);
        let job: Control = Box::new(move |of| {
            let _ = tx.send(f(of));
        });
        self.control.send(job).ok()?;
        rx.recv_timeout(CONTROL_TIMEOUT).ok()
    }

    /// Stops the switch; returns every bridge's OpenFlow state once its ports are released.
    fn stop(self) -> Vec<(String, BridgeState)> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        // Wake the control thread if it is idle.
        let _ = self.control.send(Box::new(|_| {}));
        self.thread.join().unwrap_or_default()
    }
}

/// Answers ctl calls while no switch runs (no configuration yet, or an empty one), so the
/// operator gets an answer rather than a timeout.
struct Idle {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Idle {
    fn start(calls: Receiver<ctl::Call>) -> Idle {
        use std::sync::atomic::Ordering::Relaxed;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("ctl-idle".into())
            .spawn(move || {
                while !stop2.load(Relaxed) {
                    match calls.recv_timeout(Duration::from_millis(50)) {
                        Ok(call) => {
                            let r = match call.command.name {
                                "bridge/list" => ctl::Response::ok(""),
                                _ => ctl::Response::err("no bridges: the switch is not running"),
                            };
                            let _ = call.reply.send(r);
                        }
                        Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                        Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
                    }
                }
            })
            .ok();
        Idle { stop, thread }
    }
}

impl Drop for Idle {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What [`plan`] found between two configurations.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Why the datapath must be rebuilt (`None`: everything is live).
    pub rebuild: Option<String>,
    /// Ports whose VLAN configuration changes: (bridge, ofport, new configuration).
    pub vlans: Vec<(String, u32, PortVlan)>,
    /// Bridges whose fail mode, MAC aging, packet-in rate or datapath_id change.
    pub settings: Vec<String>,
}

/// What must be done to bring a switch running `old` to `new`. Agents (controllers,
/// listeners, TLS) are compared separately: they are restarted per bridge either way.
pub fn plan(old: Option<&Config>, new: &Config) -> Plan {
    let mut p = Plan::default();
    let Some(old) = old else {
        p.rebuild = Some("first configuration".into());
        return p;
    };
    p.rebuild = layout_change(old, new);
    if p.rebuild.is_some() {
        return p;
    }
    for (a, b) in old.bridges.iter().zip(&new.bridges) {
        for (pa, pb) in a.ports.iter().zip(&b.ports) {
            if pa.vlan != pb.vlan {
                p.vlans.push((
                    b.name.clone(),
                    pb.ofport,
                    pb.vlan.clone().unwrap_or_else(PortVlan::trunk_all),
                ));
            }
        }
        if a.fail_mode != b.fail_mode
            || a.mac_aging != b.mac_aging
            || a.packet_in_rate != b.packet_in_rate
            || a.datapath_id != b.datapath_id
        {
            p.settings.push(b.name.clone());
        }
    }
    p
}

/// Why going from `old` to `new` needs a new datapath, if it does.
fn layout_change(old: &Config, new: &Config) -> Option<String> {
    if old.cores != new.cores || old.pmd_cpus != new.pmd_cpus {
        return Some("cores changed".into());
    }
    if old.xdp_mode != new.xdp_mode || old.offload != new.offload {
        return Some("datapath options changed".into());
    }
    if old.underlays != new.underlays {
        return Some("underlays changed".into());
    }
    let names = |c: &Config| c.bridges.iter().map(|b| b.name.clone()).collect::<Vec<_>>();
    if names(old) != names(new) {
        return Some("bridges added, removed or reordered".into());
    }
    for (a, b) in old.bridges.iter().zip(&new.bridges) {
        let key = |b: &BridgeConf| {
            b.ports.iter().map(|p| (p.name.clone(), p.ofport, p.kind.clone())).collect::<Vec<_>>()
        };
        if key(a) != key(b) {
            return Some(format!("bridge {}: ports changed", b.name));
        }
        if a.mac_table_size != b.mac_table_size {
            return Some(format!("bridge {}: mac_table_size changed", b.name));
        }
        if a.max_flows != b.max_flows {
            return Some(format!("bridge {}: max_flows changed", b.name));
        }
    }
    None
}

/// A device kept across rebuilds.
struct Kept {
    kind: PortKind,
    /// The interface's index when it was opened (a new interface of the same name is
    /// opened anew).
    ifindex: Option<u32>,
    port: Arc<dyn Port>,
}

/// Interface `name`'s index, from sysfs.
fn ifindex(name: &str) -> Option<u32> {
    std::fs::read_to_string(Path::new("/sys/class/net").join(name).join("ifindex")).ok()?.trim().parse().ok()
}

/// OVS's wording for a device that cannot be opened.
fn open_error(name: &str, e: &anyhow::Error) -> String {
    if !Path::new("/sys/class/net").join(name).exists() {
        return format!("could not open network device {name} (No such device)");
    }
    format!("could not open network device {name} ({})", e.root_cause())
}

impl LiveSwitch {
    /// A switch with no bridges yet: its ctl socket at `base.ctl_path` unless that is the
    /// default, then `<rundir>/xdpswitch.ctl`; bridges' management sockets go in `rundir`.
    pub fn new(rundir: &Path, base: RunOptions) -> anyhow::Result<LiveSwitch> {
        use anyhow::Context;
        std::fs::create_dir_all(rundir).with_context(|| format!("--rundir {}", rundir.display()))?;
        let ctl_path = if base.ctl_path == Path::new(ctl::DEFAULT_PATH) {
            rundir.join("xdpswitch.ctl")
        } else {
            base.ctl_path.clone()
        };
        let (tx, calls) = bounded(16);
        let server =
            ctl::Server::start(&ctl_path, tx).with_context(|| format!("--ctl {}", ctl_path.display()))?;
        Ok(LiveSwitch {
            rundir: rundir.to_path_buf(),
            base,
            _ctl: server,
            idle: Some(Idle::start(calls.clone())),
            calls,
            ctl_path,
            cfg: None,
            failed_ports: HashMap::new(),
            failed_bridges: HashMap::new(),
            links: HashMap::new(),
            running: None,
            kept: HashMap::new(),
            kept_xdp_mode: None,
            rebuilds: 0,
            last_rebuild: None,
        })
    }

    /// Where the ctl socket listens.
    pub fn ctl_path(&self) -> &Path {
        &self.ctl_path
    }

    /// Where bridge `bridge`'s management socket is (whether or not it runs).
    pub fn mgmt_path(&self, bridge: &str) -> PathBuf {
        mgmt_path(&self.rundir, bridge)
    }

    /// How many times the datapath was (re)built.
    pub fn rebuilds(&self) -> u64 {
        self.rebuilds
    }

    /// How long the last rebuild stopped forwarding: from stopping the old switch to the
    /// new one serving (the offload program is loaded before, while the old one forwards).
    pub fn last_rebuild(&self) -> Option<Duration> {
        self.last_rebuild
    }

    /// Whether a switch is running (an empty configuration runs none).
    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// The targets bridge `b`'s agent serves: its controllers and listeners, and its
    /// management socket.
    fn targets_of(&self, b: &BridgeConf) -> Vec<Target> {
        let mut t = b.targets.clone();
        t.push(Target::PUnix(self.mgmt_path(&b.name)));
        t
    }

    /// Whether a port or bridge that failed last time should be tried again.
    fn should_retry(&self, cfg: &Config) -> bool {
        let bridge_retry = cfg.bridges.iter().any(|b| self.failed_bridges.contains_key(&b.name));
        let port_retry = cfg.bridges.iter().any(|b| {
            b.ports.iter().any(|p| {
                self.failed_ports.contains_key(&(b.name.clone(), p.name.clone()))
                    && (p.kind != PortKind::Afxdp || Path::new("/sys/class/net").join(&p.name).exists())
            })
        });
        bridge_retry || port_retry
    }

    /// Starts, restarts or keeps each bridge's agent for `cfg`; drops the agents of bridges
    /// gone. `clear` is told about each bridge whose old agent was dropped (its
    /// connections must be forgotten before the new agent's arrive).
    fn sync_agents(&mut self, cfg: &Config, mut clear: impl FnMut(&str)) {
        self.links.retain(|name, _| cfg.bridges.iter().any(|b| &b.name == name));
        let tls = match &cfg.ssl {
            Some(files) => {
                match TlsConfig::load_named(files, ["ssl.private_key", "ssl.certificate", "ssl.ca_cert"]) {
                    Ok(t) => Some(t),
                    Err(e) => {
                        tracing::warn!("ssl: {e:#}");
                        None
                    }
                }
            }
            None => self.base.agent.tls.clone(),
        };
        for b in &cfg.bridges {
            let targets = self.targets_of(b);
            let uses_tls = targets.iter().any(Target::is_tls);
            let link = self.links.entry(b.name.clone()).or_insert_with(|| {
                let (tx, rx) = bounded(AGENT_EVENTS);
                Link { tx, rx, agent: None, targets: Vec::new(), ssl: None }
            });
            let ssl = if uses_tls { cfg.ssl.clone() } else { None };
            if link.targets == targets && link.ssl == ssl && (link.agent.is_some() || targets.is_empty()) {
                continue;
            }
            if link.agent.take().is_some() {
                clear(&b.name);
            }
            link.targets = targets.clone();
            link.ssl = ssl;
            if targets.is_empty() {
                continue;
            }
            let acfg = AgentConfig { targets: targets.clone(), tls: tls.clone(), ..self.base.agent.clone() };
            match Agent::start(acfg, link.tx.clone()) {
                Ok(a) => link.agent = Some(a),
                Err(e) => {
                    // A listener that cannot bind (or TLS without its files) must not cost
                    // the bridge its controllers and management socket: those alone, then.
                    tracing::warn!(bridge = %b.name, "OpenFlow agent: {e:#}; going on without its listeners");
                    let fallback: Vec<Target> = targets
                        .into_iter()
                        .filter(|t| t.is_active() || matches!(t, Target::PUnix(_)))
                        .filter(|t| !t.is_tls() || tls.is_some())
                        .collect();
                    let acfg = AgentConfig { targets: fallback, tls: tls.clone(), ..self.base.agent.clone() };
                    match Agent::start(acfg, link.tx.clone()) {
                        Ok(a) => link.agent = Some(a),
                        Err(e) => tracing::warn!(bridge = %b.name, "OpenFlow agent not started: {e:#}"),
                    }
                }
            }
        }
    }

    /// Stops the running switch (if any) and builds one for `cfg`, putting the bridges'
    /// OpenFlow state back.
    fn rebuild(&mut self, cfg: &Config, why: &str) {
        let started = Instant::now();
        // The offload program is verified and loaded while the old switch still forwards
        // (it takes most of a rebuild's time, and touches no interface).
        let setup = (!cfg.bridges.is_empty()).then(|| Switch::datapath_setup(cfg, &self.base));
        // Agents too, while the old switch still serves them.
        self.restart_agents(cfg);
        let t0 = Instant::now();
        let states: HashMap<String, BridgeState> = match self.running.take() {
            Some(r) => r.stop().into_iter().collect(),
            None => HashMap::new(),
        };
        let stopped = t0.elapsed();
        self.failed_ports.clear();
        self.failed_bridges.clear();
        let Some(setup) = setup else {
            self.kept.clear();
            tracing::info!("no bridges: the switch is stopped");
            return;
        };
        let t1 = Instant::now();
        let (devices, built) = self.open_devices(cfg, &setup);
        let opened = t1.elapsed();
        if built.bridges.is_empty() {
            return;
        }
        let mut agents = Vec::new();
        for b in &built.bridges {
            match self.links.get(&b.name) {
                Some(l) => agents.push(l.rx.clone()),
                None => {
                    // sync_agents made one per bridge.
                    self.failed_bridges.insert(b.name.clone(), "no agent channel".into());
                    return;
                }
            }
        }
        let prep = Prepared {
            setup: Some(setup),
            devices,
            ctl: Some(self.calls.clone()),
            agents: Some(agents),
            states,
        };
        let sw = match Switch::from_config_with(&built, &self.base, prep) {
            Ok(sw) => sw,
            Err(e) => {
                let msg = format!("{e:#}");
                tracing::warn!("the switch could not be built: {msg}");
                for b in &built.bridges {
                    self.failed_bridges.insert(b.name.clone(), msg.clone());
                }
                return;
            }
        };
        match self.spawn(sw, built) {
            Ok(r) => self.running = Some(r),
            Err(e) => {
                for b in &cfg.bridges {
                    self.failed_bridges.insert(b.name.clone(), format!("{e:#}"));
                }
                return;
            }
        }
        self.rebuilds += 1;
        let took = t0.elapsed();
        self.last_rebuild = Some(took);
        tracing::info!(
            why,
            gap_ms = took.as_millis() as u64,
            total_ms = started.elapsed().as_millis() as u64,
            stop_ms = stopped.as_millis() as u64,
            open_ms = opened.as_millis() as u64,
            "switch (re)built"
        );
    }

    /// Serves `sw` on its own thread.
    fn spawn(&self, mut sw: Switch, built: Config) -> anyhow::Result<Running> {
        let (control, rx) = bounded::<Control>(64);
        sw.set_control(rx);
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("ofproto".into())
            .spawn(move || sw.serve_and_take(&stop2))
            .map_err(|e| anyhow::anyhow!("spawning the control thread: {e}"))?;
        Ok(Running { stop, thread, control, built })
    }

    /// Opens every device of `cfg` one by one; returns them and `cfg` without the ports
    /// and bridges that failed (recorded in `self.failed_*`), nor what depended on them.
    fn open_devices(
        &mut self,
        cfg: &Config,
        setup: &DatapathSetup,
    ) -> (HashMap<String, Arc<dyn Port>>, Config) {
        let mut devices: HashMap<String, Arc<dyn Port>> = HashMap::new();
        // Devices no longer wanted as they are go before anything is opened (the name may
        // be another kind of port now, or the interface another one of the same name).
        let own_programs = setup.program.is_none();
        if self.kept_xdp_mode != cfg.xdp_mode {
            self.kept.retain(|_, k| k.kind == PortKind::Internal);
            self.kept_xdp_mode = cfg.xdp_mode.clone();
        }
        let mut wanted: Vec<(&str, PortKind)> = Vec::new();
        for b in &cfg.bridges {
            wanted.push((&b.name, PortKind::Internal));
            for p in b.ports.iter().filter(|p| matches!(p.kind, PortKind::Internal | PortKind::Afxdp)) {
                wanted.push((&p.name, p.kind.clone()));
            }
        }
        wanted.extend(cfg.underlays.iter().map(|u| (u.port.as_str(), PortKind::Afxdp)));
        self.kept.retain(|name, k| {
            wanted.iter().any(|(n, kind)| n == name && *kind == k.kind)
                && (k.kind == PortKind::Internal || (own_programs && ifindex(name) == k.ifindex))
        });
        let kept = &mut self.kept;
        let mut open = |kind: &PortKind, name: &str| -> Option<anyhow::Result<Arc<dyn Port>>> {
            let keep = *kind == PortKind::Internal || (*kind == PortKind::Afxdp && own_programs);
            if !keep {
                return Switch::open_device(kind, name, setup);
            }
            if let Some(k) = kept.get(name) {
                return Some(Ok(k.port.clone()));
            }
            let r = Switch::open_device(kind, name, setup)?;
            if let Ok(port) = &r {
                let k = Kept { kind: kind.clone(), ifindex: ifindex(name), port: port.clone() };
                kept.insert(name.to_string(), k);
            }
            Some(r)
        };
        let mut built = cfg.clone();
        built.bridges.clear();
        for b in &cfg.bridges {
            let local = open(&PortKind::Internal, &b.name);
            match local {
                Some(Ok(p)) => {
                    devices.insert(b.name.clone(), p);
                }
                Some(Err(e)) => {
                    let msg =
                        format!("could not create the bridge's LOCAL port {} ({})", b.name, e.root_cause());
                    tracing::warn!(bridge = %b.name, "{msg}");
                    self.failed_bridges.insert(b.name.clone(), msg);
                    continue;
                }
                None => {}
            }
            let mut nb = b.clone();
            nb.ports.clear();
            for p in &b.ports {
                match open(&p.kind, &p.name) {
                    Some(Err(e)) => {
                        let msg = open_error(&p.name, &e);
                        tracing::warn!(bridge = %b.name, port = %p.name, "{msg}");
                        self.failed_ports.insert((b.name.clone(), p.name.clone()), msg);
                    }
                    Some(Ok(dev)) => {
                        devices.insert(p.name.clone(), dev);
                        nb.ports.push(p.clone());
                    }
                    None => nb.ports.push(p.clone()),
                }
            }
            built.bridges.push(nb);
        }
        built.underlays.clear();
        for u in &cfg.underlays {
            match open(&PortKind::Afxdp, &u.port) {
                Some(Ok(dev)) => {
                    devices.insert(u.port.clone(), dev);
                    built.underlays.push(u.clone());
                }
                Some(Err(e)) => tracing::warn!(underlay = %u.port, "{}", open_error(&u.port, &e)),
                None => {}
            }
        }
        // What depended on a port left out: a patch without its peer, a tunnel without its
        // underlay (a patch removed may leave its own peer alone: repeat until stable).
        loop {
            let mut gone = Vec::new();
            for b in &built.bridges {
                for p in &b.ports {
                    let why = match &p.kind {
                        PortKind::Patch { peer } if built.find_port(peer).is_none() => {
                            Some(format!("patch peer {peer} is not in the switch"))
                        }
                        PortKind::Gre(t) if !built.underlays.iter().any(|u| u.ip == t.local_ip) => {
                            Some(format!("no underlay port with local_ip {}", t.local_ip))
                        }
                        _ => None,
                    };
                    if let Some(why) = why {
                        gone.push((b.name.clone(), p.name.clone(), why));
                    }
                }
            }
            if gone.is_empty() {
                break;
            }
            for (b, p, why) in gone {
                if let Some(bc) = built.bridges.iter_mut().find(|x| x.name == b) {
                    bc.ports.retain(|x| x.name != p);
                }
                self.failed_ports.insert((b, p), why);
            }
        }
        (devices, built)
    }

    /// Brings the agents to `cfg` (see [`sync_agents`](Self::sync_agents)) while the switch
    /// (if any) runs: it drains the agents' events meanwhile (an agent blocked on a full
    /// channel could not be stopped), and forgets a restarted agent's connections before the
    /// new agent's arrive. Returns the bridges whose agent was restarted.
    fn restart_agents(&mut self, cfg: &Config) -> Vec<String> {
        let mut cleared = Vec::new();
        let control = self.running.as_ref().map(|r| r.control.clone());
        self.sync_agents(cfg, |b| {
            cleared.push(b.to_string());
            let Some(control) = &control else { return };
            let (tx, rx) = bounded(1);
            let name = b.to_string();
            let job: Control = Box::new(move |of| {
                if let Some(i) = of.bridges().iter().position(|x| x.name() == name) {
                    of.bridge_mut(i).0.clear_connections();
                }
                let _ = tx.send(());
            });
            if control.send(job).is_ok() {
                let _ = rx.recv_timeout(CONTROL_TIMEOUT);
            }
        });
        cleared
    }

    /// Applies what changes live on the running switch.
    fn apply_live(&mut self, cfg: &Config, plan: &Plan) {
        if self.running.is_none() {
            return;
        }
        let cleared = self.restart_agents(cfg);
        // Settings go to the bridges whose settings or controllers changed (a reconfigured
        // bridge re-translates its megaflows: not for nothing).
        let base = self.base.clone();
        let settings: Vec<(String, crate::ofproto::bridge::BridgeConfig)> = cfg
            .bridges
            .iter()
            .filter(|b| plan.settings.contains(&b.name) || cleared.contains(&b.name))
            .map(|b| (b.name.clone(), bridge_config(b, &base)))
            .collect();
        let vlans = plan.vlans.clone();
        let Some(running) = self.running.as_mut() else { return };
        let changed = !settings.is_empty() || !vlans.is_empty();
        let job = move |of: &mut Ofproto| {
            for (name, bcfg) in &settings {
                let Some(i) = of.bridges().iter().position(|x| x.name() == name) else { continue };
                let (b, dp) = of.bridge_mut(i);
                b.reconfigure(dp, bcfg);
            }
            for (name, ofport, vlan) in vlans {
                let Some(i) = of.bridges().iter().position(|x| x.name() == name) else { continue };
                let (b, dp) = of.bridge_mut(i);
                b.set_port_vlan(dp, ofport, vlan);
            }
        };
        if changed {
            running.query(job);
        }
        // The running switch's configuration follows (its layout is unchanged).
        let mut built = cfg.clone();
        for b in &mut built.bridges {
            b.ports.retain(|p| !self.failed_ports.contains_key(&(b.name.clone(), p.name.clone())));
        }
        running.built = built;
        if !cleared.is_empty() {
            tracing::info!(bridges = ?cleared, "OpenFlow agents restarted with new targets");
        }
    }

    /// The report for `cfg` after it was applied.
    fn report(&self, cfg: &Config) -> ApplyReport {
        let dpids: Vec<(String, u64)> = self
            .running
            .as_ref()
            .and_then(|r| {
                r.query(|of| of.bridges().iter().map(|b| (b.name().to_string(), b.datapath_id())).collect())
            })
            .unwrap_or_default();
        let mut rep = ApplyReport::default();
        for b in &cfg.bridges {
            let berr = self.failed_bridges.get(&b.name).cloned();
            let dpid = dpids.iter().find(|(n, _)| n == &b.name).map(|d| d.1);
            let berr = berr.or_else(|| dpid.is_none().then(|| "the bridge is not running".to_string()));
            rep.bridges.push(BridgeResult {
                name: b.name.clone(),
                datapath_id: dpid.unwrap_or(0),
                error: berr.clone(),
            });
            for p in &b.ports {
                let err = berr
                    .clone()
                    .or_else(|| self.failed_ports.get(&(b.name.clone(), p.name.clone())).cloned());
                rep.ports.push(PortResult {
                    bridge: b.name.clone(),
                    name: p.name.clone(),
                    ofport: err.is_none().then_some(p.ofport),
                    error: err,
                });
            }
        }
        rep
    }
}

impl SwitchControl for LiveSwitch {
    fn apply(&mut self, cfg: &Config) -> ApplyReport {
        let mut p = plan(self.cfg.as_ref(), cfg);
        if p.rebuild.is_none() && self.running.is_none() && !cfg.bridges.is_empty() {
            p.rebuild = Some("no switch running".into());
        }
        if p.rebuild.is_none() && self.should_retry(cfg) {
            p.rebuild = Some("retrying ports that failed".into());
        }
        match &p.rebuild {
            Some(why) => {
                self.idle = None;
                self.rebuild(cfg, why);
                // A bridge that could not be built takes no OpenFlow connections (its
                // management socket goes too); it is tried again on the next apply.
                let failed = &self.failed_bridges;
                self.links.retain(|name, _| !failed.contains_key(name));
                if self.running.is_none() {
                    self.idle = Some(Idle::start(self.calls.clone()));
                }
            }
            None => self.apply_live(cfg, &p),
        }
        self.cfg = Some(cfg.clone());
        self.report(cfg)
    }

    fn status(&mut self) -> SwitchStatus {
        let Some(running) = &self.running else { return SwitchStatus::default() };
        // Each bridge's agent's targets, with their newest connection.
        let targets: Vec<(String, Vec<crate::agent::TargetState>)> = running
            .built
            .bridges
            .iter()
            .map(|b| {
                let st = self.links.get(&b.name).and_then(|l| l.agent.as_ref()).map(Agent::target_states);
                (b.name.clone(), st.unwrap_or_default())
            })
            .collect();
        let answer = running.query(move |of| {
            let mut st = SwitchStatus::default();
            for b in of.bridges() {
                for p in b.port_status(of.datapath()) {
                    st.ports.push(PortStatus {
                        bridge: b.name().to_string(),
                        name: p.name,
                        ofport: p.ofport,
                        admin_up: p.info.admin_up,
                        link_up: p.info.live,
                        mtu: p.info.mtu,
                        mac: p.info.hw_addr,
                        stats: p.stats,
                    });
                }
                let Some((_, ts)) = targets.iter().find(|(n, _)| n == b.name()) else { continue };
                // The management socket is the switch's own, not a controller.
                for t in ts.iter().filter(|t| !matches!(t.target, Target::PUnix(_))) {
                    let role = t.conn.and_then(|id| b.conn_role(id));
                    // Listeners are reported only while a client is connected.
                    if !t.target.is_active() && role.is_none() {
                        continue;
                    }
                    st.controllers.push(ControllerStatus {
                        bridge: b.name().to_string(),
                        target: t.target.to_string(),
                        connected: role.is_some(),
                        role: match role {
                            Some((_, Role::Master)) => "master",
                            Some((_, Role::Slave)) => "slave",
                            Some((ConnType::Primary | ConnType::Service, Role::Equal)) | None => "other",
                        }
                        .to_string(),
                    });
                }
            }
            st
        });
        answer.unwrap_or_default()
    }
}

impl Drop for LiveSwitch {
    fn drop(&mut self) {
        self.idle = None;
        if let Some(r) = self.running.take() {
            drop(r.stop());
        }
        self.links.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> Config {
        Config::parse(text).unwrap()
    }

    const BASE: &str = r#"
[[bridge]]
name = "br0"
ports = ["eth1", "eth2:tag=10"]
controller = "tcp:127.0.0.1:6653"
"#;

    #[test]
    fn the_first_configuration_builds() {
        assert!(plan(None, &cfg(BASE)).rebuild.is_some());
    }

    #[test]
    fn the_same_configuration_changes_nothing() {
        assert_eq!(plan(Some(&cfg(BASE)), &cfg(BASE)), Plan::default());
    }

    #[test]
    fn a_tag_changes_live() {
        let new = cfg(&BASE.replace("eth2:tag=10", "eth2:tag=20").replace("\"eth1\"", "\"eth1:tag=5\""));
        let p = plan(Some(&cfg(BASE)), &new);
        assert_eq!(p.rebuild, None);
        let v20 = PortVlan::parse_options(["tag=20"]).unwrap();
        let v5 = PortVlan::parse_options(["tag=5"]).unwrap();
        assert_eq!(p.vlans, vec![("br0".to_string(), 1, v5), ("br0".to_string(), 2, v20)]);
        // A tag removed: back to a trunk of every VLAN.
        let p = plan(Some(&cfg(BASE)), &cfg(&BASE.replace("eth2:tag=10", "eth2")));
        assert_eq!(p.vlans, vec![("br0".to_string(), 2, PortVlan::trunk_all())]);
    }

    #[test]
    fn bridge_settings_and_controllers_change_live() {
        let new = cfg(&format!(
            "{}fail_mode = \"secure\"\nmac_aging = 60\npacket_in_rate = 5\ndatapath_id = \"0x2a\"\n",
            BASE.replace("tcp:127.0.0.1:6653", "tcp:127.0.0.1:6654")
        ));
        let p = plan(Some(&cfg(BASE)), &new);
        assert_eq!(p.rebuild, None);
        assert_eq!(p.settings, vec!["br0".to_string()]);
        assert!(p.vlans.is_empty());
    }

    #[test]
    fn ports_bridges_and_datapath_options_rebuild() {
        let old = cfg(BASE);
        let cases = [
            BASE.replace("\"eth1\", ", "\"eth1\", \"eth3\", "),
            BASE.replace("\"eth1\", ", ""),
            BASE.replace("\"eth1\"", "\"eth1:ofport=7\""),
            BASE.replace("\"eth1\"", "\"eth1:type=internal\""),
            format!("{BASE}[[bridge]]\nname = \"br1\"\n"),
            BASE.replace("br0", "br9"),
            format!("cores = 2\n{BASE}"),
            format!("offload = false\n{BASE}"),
            format!("{BASE}mac_table_size = 100\n"),
            format!("{BASE}[[underlay]]\nport = \"eth9\"\nip = \"192.0.2.1/24\"\n"),
        ];
        for c in cases {
            let p = plan(Some(&old), &cfg(&c));
            assert!(p.rebuild.is_some(), "{c}");
        }
    }

    #[test]
    fn a_missing_device_reads_as_ovs_says_it() {
        let e = anyhow::anyhow!("whatever the port said");
        assert_eq!(open_error("xsnosuch0", &e), "could not open network device xsnosuch0 (No such device)");
        let e = anyhow::anyhow!("XDP refused");
        assert_eq!(open_error("lo", &e), "could not open network device lo (XDP refused)");
    }
}
