//! A bridge: one OpenFlow switch (pipeline, ports, connections) over the shared datapath.
//!
//! It turns upcalls into megaflows (translate the key, install `(masked key, mask, actions)`,
//! publish, send the packet back to be forwarded), credits megaflow counters to the rules they
//! came from, retires idle megaflows, and answers operator calls from the ctl socket. All of
//! ofproto's state is touched only here, so its semantics need no locks.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::connmgr::{AsyncKind, ConnMgr, FailMode};
use super::learn::learned_is_noop;
use super::openflow::TokenBucket;
use super::rule::{FlowMod, FlowSpec, Match, OfAction, PortNames};
use super::syntax::parse_mac;
use super::table::Pipeline;
use super::xlate::{translate_learning, PacketInContexts, TableMiss, Translation, XPort, XlateCtx};
use super::Model;
use crate::ctl::{Call, Response};
use crate::datapath::actions::DpAction;
use crate::datapath::dpif::Datapath;
use crate::datapath::fdb::FdbWriter;
use crate::datapath::flow::{FlowKey, FlowMask};
use crate::datapath::megaflow::{FlowStats, MegaflowId};
use crate::datapath::normal::{parse_vid, Learn, NormalPorts, PortVlan, VID_MAX};
use crate::datapath::upcall::Upcall;
use crate::netdev::DpPortNo;

/// Tunables of the slow path.
#[derive(Clone, Debug)]
pub struct BridgeConfig {
    /// A megaflow unused this long is removed (OVS: `max-idle`, 10 s).
    pub megaflow_max_idle: Duration,
    /// How often counters are credited to rules and idle megaflows retired.
    pub revalidate_interval: Duration,
    /// What to do without a controller.
    pub fail_mode: FailMode,
    /// How long the controllers must be unreachable before `standalone` acts as a learning
    /// switch (OVS: three inactivity-probe intervals).
    pub fail_open_after: Duration,
    /// Whether `--controller`s are configured (a standalone bridge without any is a learning
    /// switch from the start).
    pub has_controllers: bool,
    /// Packet-ins per second to the controllers, at most (token bucket, burst of a second's worth).
    pub packet_in_rate: u32,
    /// A MAC address NORMAL has not seen as a source for this long is forgotten (OVS: 300 s).
    pub mac_aging: Duration,
    /// `datapath_id` (default: from the LOCAL port's MAC, as OVS).
    pub datapath_id: Option<u64>,
    /// Most rules per OpenFlow table (`--max-flows`): adds beyond it are refused with
    /// `OFPFMFC_TABLE_FULL` and counted.
    pub max_flows: usize,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        BridgeConfig {
            megaflow_max_idle: Duration::from_secs(10),
            revalidate_interval: Duration::from_millis(500),
            fail_mode: FailMode::Standalone,
            fail_open_after: Duration::from_secs(15),
            has_controllers: false,
            packet_in_rate: 1000,
            mac_aging: Duration::from_secs(300),
            datapath_id: None,
            max_flows: crate::ofproto::table::DEFAULT_MAX_FLOWS,
        }
    }
}

/// What the bridge remembers about each megaflow it installed.
struct Installed {
    /// The key of the packet it was translated for: re-translated when the tables change.
    key: FlowKey,
    /// Its translation: the rules, tables, groups and meters to credit its counters to.
    t: Translation,
    /// Counters already credited to `rules`.
    credited: FlowStats,
    /// When it was installed (datapath clock, ms): a megaflow never hit ages from here.
    installed_ms: u64,
    /// The flows its `learn` actions add: applied again whenever the megaflow forwarded
    /// packets since the last look, as OVS's revalidators re-run a flow's learns.
    learned: Vec<FlowMod>,
}

/// Slow-path counters.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct BridgeStats {
    pub upcalls: u64,
    pub megaflows_installed: u64,
    pub megaflow_table_full: u64,
    pub megaflows_expired: u64,
    pub execute_dropped: u64,
    /// Upcalls whose translation failed (the packet and its megaflow drop).
    pub xlate_errors: u64,
    /// Flows added or changed by `learn` actions.
    pub learned_flows: u64,
    /// Flows `learn` actions made that the tables refused.
    pub learn_errors: u64,
    /// Megaflows replaced because the flow tables changed under them.
    pub megaflows_revalidated: u64,
    /// Packet-ins sent (one per controller connection).
    pub packet_ins: u64,
    /// Packet-ins dropped by the rate limit.
    pub packet_in_dropped: u64,
    /// Flow adds refused because their table was full (`--max-flows`).
    pub flow_table_full: u64,
}

/// A bridge's ports: OpenFlow number <-> datapath number. The legacy single-bridge CLI maps
/// every port to itself; a bridge of a config file numbers its ports 1, 2, ... (LOCAL is
/// `OFPP_LOCAL`) over whatever datapath numbers they were given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortMap {
    /// (OpenFlow number, datapath number), one per port of the bridge.
    pairs: Vec<(u32, DpPortNo)>,
    /// The OpenFlow numbers of its GRE tunnel ports.
    tunnels: Vec<u32>,
}

impl PortMap {
    /// A map from (OpenFlow number, datapath number) pairs.
    pub fn new(pairs: Vec<(u32, DpPortNo)>) -> PortMap {
        PortMap { pairs, tunnels: Vec::new() }
    }

    /// The same map, OpenFlow ports `tunnels` being GRE tunnel ports.
    pub fn with_tunnels(mut self, tunnels: Vec<u32>) -> PortMap {
        self.tunnels = tunnels;
        self
    }

    /// Whether OpenFlow port `of` is a tunnel port.
    pub fn is_tunnel(&self, of: u32) -> bool {
        self.tunnels.contains(&of)
    }

    /// Every datapath port numbered as itself (the legacy CLI's single bridge).
    pub fn identity(ports: impl IntoIterator<Item = DpPortNo>) -> PortMap {
        PortMap { pairs: ports.into_iter().map(|p| (p.0, p)).collect(), tunnels: Vec::new() }
    }

    /// The datapath number of OpenFlow port `of`.
    pub fn to_dp(&self, of: u32) -> Option<DpPortNo> {
        self.pairs.iter().find(|(o, _)| *o == of).map(|&(_, d)| d)
    }

    /// The OpenFlow number of datapath port `dp` (`None`: not this bridge's port).
    pub fn to_of(&self, dp: DpPortNo) -> Option<u32> {
        self.pairs.iter().find(|(_, d)| *d == dp).map(|&(o, _)| o)
    }

    /// Whether every port is numbered as itself.
    pub fn is_identity(&self) -> bool {
        self.pairs.iter().all(|&(o, d)| o == d.0)
    }

    /// The (OpenFlow, datapath) pairs.
    pub fn iter(&self) -> impl Iterator<Item = (u32, DpPortNo)> + '_ {
        self.pairs.iter().copied()
    }
}

/// The datapath's id for OpenFlow meter `id` of bridge `bridge`: each bridge has its own
/// meter namespace in the one datapath (bridge index in the top 8 bits).
pub fn dp_meter_id(bridge: u16, id: u32) -> u32 {
    (u32::from(bridge) << 24) | (id & 0x00ff_ffff)
}

/// NORMAL's MAC table of bridge `bridge`.
pub(super) fn fdb_of(dp: &mut Datapath, bridge: u16) -> &mut FdbWriter {
    dp.fdb(bridge)
}

/// NORMAL's MAC table of bridge `bridge`, for reading.
pub(super) fn fdb_ref_of(dp: &Datapath, bridge: u16) -> &FdbWriter {
    dp.fdb_ref(bridge)
}

/// Publishes bridge `bridge`'s flood set and VLAN configuration to NORMAL.
pub(super) fn set_normal_ports(dp: &Datapath, bridge: u16, ports: NormalPorts) {
    dp.set_normal_ports(bridge, ports);
}

/// One OpenFlow switch: its pipeline, its ports, its connections. The datapath it forwards
/// through is shared with the other bridges of the process and lent to each call.
pub struct Bridge {
    pub(super) name: String,
    /// Position in the configuration (0 = first; the legacy CLI's only bridge).
    pub(super) index: u16,
    pub(super) cfg: BridgeConfig,
    /// Flow tables, groups, meters.
    pub(super) model: Model,
    pub(super) ports: PortNames,
    /// OpenFlow <-> datapath port numbers.
    pub(super) map: PortMap,
    /// The ports as translation sees them (OpenFlow numbers, config bits, liveness); LOCAL included.
    pub(super) xports: Vec<XPort>,
    /// Whether the bridge has its LOCAL port.
    pub(super) has_local: bool,
    /// Packet-in contexts named by `DpAction::Userspace` ids.
    pub(super) pins: PacketInContexts,
    /// Packet-in rate limiter.
    pub(super) pin_bucket: TokenBucket,
    pub(super) conns: ConnMgr,
    /// The flow tables changed since the megaflows were last re-translated.
    pub(super) dirty: bool,
    /// `datapath_id` in features replies.
    pub(super) datapath_id: u64,
    installed: HashMap<MegaflowId, Installed>,
    pub(super) stats: BridgeStats,
    pub(super) started: Instant,
    /// When the last translation failure was logged (at most one line a second).
    last_xlate_warning: Option<Instant>,
    /// When the timers last ran (bridge clock).
    pub(super) last_timers: Option<Duration>,
    /// When NORMAL's MAC table was last aged.
    pub(super) last_aging: Option<Duration>,
    /// NORMAL's VLAN configuration of the ports that have one (the others trunk every VLAN).
    pub(super) vlans: HashMap<u32, PortVlan>,
    /// What `dump-ports` says about a port beyond its counters (patch peer, tunnel options).
    pub(super) port_notes: HashMap<u32, String>,
    /// Whether megaflows match in_port exactly (when other bridges share the datapath).
    pub(super) exact_in_port: bool,
}

impl Bridge {
    /// Bridge number `index` over a running datapath, with `pipeline` already loaded; `map`
    /// names its ports (`ports` their names, by OpenFlow number).
    pub fn new(
        name: &str,
        index: u16,
        cfg: BridgeConfig,
        pipeline: Pipeline,
        ports: PortNames,
        map: PortMap,
        dp: &mut Datapath,
    ) -> Bridge {
        let xports: Vec<XPort> = map.iter().map(|(of, p)| XPort::new(of, p, map.is_tunnel(of))).collect();
        let local = map.to_dp(DpPortNo::LOCAL.0);
        let datapath_id = cfg.datapath_id.unwrap_or_else(|| {
            local
                .and_then(|p| dp.port_info(p))
                .or_else(|| map.iter().next().and_then(|(_, p)| dp.port_info(p)))
                .map_or(0, |i| {
                    let m = i.hw_addr;
                    u64::from_be_bytes([0, 0, m[0], m[1], m[2], m[3], m[4], m[5]])
                })
        });
        let mut pipeline = pipeline;
        pipeline.set_max_flows(cfg.max_flows);
        let mut b = Bridge {
            name: name.to_string(),
            index,
            cfg: cfg.clone(),
            model: Model { pipeline, ..Model::default() },
            ports,
            map,
            xports,
            has_local: local.is_some(),
            pins: PacketInContexts::new(),
            pin_bucket: TokenBucket::new(cfg.packet_in_rate, Instant::now()),
            conns: ConnMgr::new(cfg.fail_mode, cfg.has_controllers, cfg.fail_open_after, Instant::now()),
            dirty: false,
            datapath_id,
            installed: HashMap::new(),
            stats: BridgeStats::default(),
            started: Instant::now(),
            last_xlate_warning: None,
            last_timers: None,
            last_aging: None,
            vlans: HashMap::new(),
            port_notes: HashMap::new(),
            exact_in_port: false,
        };
        b.refresh_port_state(dp);
        b.publish_normal_ports(dp);
        if cfg.fail_mode == FailMode::Standalone && !cfg.has_controllers {
            // As Open vSwitch does for a standalone bridge without a controller: a visible
            // table-miss rule to NORMAL, unless the flows already have a table-miss rule.
            if b.model.pipeline.table(0).find_strict(&Match::catchall(), 0).is_none() {
                let spec = FlowSpec { priority: 0, actions: vec![OfAction::Normal], ..FlowSpec::default() };
                let _ = b.model.pipeline.apply(FlowMod::add(spec), Duration::ZERO);
            }
        }
        b
    }

    /// The bridge's name (also its LOCAL port's).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its position in the configuration.
    pub fn index(&self) -> u16 {
        self.index
    }

    /// Its OpenFlow <-> datapath port numbers.
    pub fn port_map(&self) -> &PortMap {
        &self.map
    }

    /// Its `datapath_id`.
    pub fn datapath_id(&self) -> u64 {
        self.datapath_id
    }

    /// Its slow-path counters.
    pub fn stats(&self) -> &BridgeStats {
        &self.stats
    }

    /// What `dump-ports` adds about OpenFlow port `no` (a patch peer, tunnel options).
    pub fn set_port_note(&mut self, no: u32, note: String) {
        self.port_notes.insert(no, note);
    }

    /// Translates `key` (its in_port a datapath number) through the current tables (or
    /// NORMAL, while failed open); the actions name datapath ports and meters.
    /// Also returns the flows the translation's `learn` actions add (not yet applied).
    pub(super) fn xlate(&mut self, key: &FlowKey) -> (Translation, Vec<FlowMod>) {
        let (mut t, learned) = self.xlate_inner(key);
        if self.exact_in_port {
            // The megaflow table is the whole datapath's: a megaflow that ignored in_port
            // would serve the other bridges' packets too (OVS's userspace datapath always
            // matches in_port exactly, for the same reason).
            t.mask.0.in_port = !0;
        }
        (t, learned)
    }

    fn xlate_inner(&mut self, key: &FlowKey) -> (Translation, Vec<FlowMod>) {
        if self.conns.is_fail_open() {
            // Open vSwitch's fail-open flow: NORMAL above every rule, for every packet.
            let t = Translation {
                actions: vec![DpAction::Normal],
                mask: FlowMask::default(),
                rules: Vec::new(),
                lookups: Vec::new(),
                groups: Vec::new(),
                meters: Vec::new(),
                error: None,
            };
            return (t, Vec::new());
        }
        let mut of_key = *key;
        if let Some(of) = self.map.to_of(DpPortNo(key.in_port)) {
            of_key.in_port = of;
        }
        let ctx = XlateCtx {
            pipeline: &self.model.pipeline,
            groups: &self.model.groups,
            ports: &self.xports,
            local_port: self.has_local.then_some(DpPortNo::LOCAL.0),
            miss: self.table_miss(),
            miss_send_len: u16::MAX,
            invalid_ttl_to_controller: false,
        };
        let (mut t, learned) = translate_learning(&ctx, &mut self.pins, &of_key);
        self.to_dp_actions(&mut t.actions);
        (t, learned)
    }

    /// Applies the flows `learn` actions made: one identical to an existing rule only
    /// restarts that rule's timeouts (no table change); any other is added as a flow-mod
    /// (replacing a rule with the same match and priority) and marks the tables changed.
    pub(super) fn apply_learned(&mut self, learned: &[FlowMod]) {
        let now = self.now();
        let ports = self.of_ports();
        for fm in learned {
            if let Some(id) = learned_is_noop(&self.model.pipeline, fm) {
                self.model.pipeline.refresh(id, now);
                continue;
            }
            match self.model.flow_mod(fm.clone(), &ports, now) {
                Ok(changes) => {
                    if !changes.is_empty() {
                        self.dirty = true;
                        self.stats.learned_flows += 1;
                    }
                }
                Err(e) => {
                    self.stats.learn_errors += 1;
                    if self.last_xlate_warning.is_none_or(|w| w.elapsed() >= Duration::from_secs(1)) {
                        self.last_xlate_warning = Some(Instant::now());
                        tracing::warn!(bridge = %self.name, "a learn action's flow was refused: {e:?}");
                    }
                }
            }
        }
    }

    /// Turns the OpenFlow meter numbers translation wrote into the datapath's (translation
    /// already names datapath ports, through `XPort::dp`). Nothing to do for bridge 0.
    pub(super) fn to_dp_actions(&self, actions: &mut [DpAction]) {
        if self.index == 0 {
            return;
        }
        for a in actions {
            if let DpAction::Meter(id) = a {
                *id = dp_meter_id(self.index, *id);
            }
        }
    }

    /// OpenFlow 1.0 controllers get table misses as packet-ins; 1.3 ones only by a rule.
    fn table_miss(&self) -> TableMiss {
        let v10_wants = self
            .conns
            .iter()
            .any(|c| c.version == crate::ofp::OFP10_VERSION && c.wants(AsyncKind::PacketIn, 0));
        if v10_wants {
            TableMiss::Controller
        } else {
            TableMiss::Drop
        }
    }

    /// Time since the bridge started: the clock handed to the pipeline.
    pub(super) fn now(&self) -> Duration {
        self.started.elapsed()
    }

    /// Translates one upcall of this bridge, installs its megaflow (not yet published) and
    /// returns the actions to execute the packet with.
    pub fn handle_upcall(&mut self, dp: &mut Datapath, up: &Upcall) -> Arc<[DpAction]> {
        self.stats.upcalls += 1;
        let (t, learned) = self.xlate(&up.key);
        self.apply_learned(&learned);
        if let Some(e) = &t.error {
            self.stats.xlate_errors += 1;
            if self.last_xlate_warning.is_none_or(|w| w.elapsed() >= Duration::from_secs(1)) {
                self.last_xlate_warning = Some(Instant::now());
                tracing::warn!(bridge = %self.name, errors = self.stats.xlate_errors, "translation failed, dropping: {e}");
            }
        }
        let actions: Arc<[DpAction]> = t.actions[..].into();
        let now = self.now();
        self.model.credit(&t, 1, up.packet.len() as u64, now);
        match dp.megaflows().insert(up.key, t.mask, &actions, 0) {
            Ok(mf) => {
                let installed_ms = dp.now_ms();
                self.installed.entry(mf.id).or_insert_with(|| {
                    self.stats.megaflows_installed += 1;
                    Installed { key: up.key, t, credited: FlowStats::default(), installed_ms, learned }
                });
            }
            Err(_) => self.stats.megaflow_table_full += 1,
        }
        actions
    }

    /// After the flow tables changed: re-translates every installed megaflow from the key it
    /// was made for, replaces those whose mask, actions or rules differ, and publishes. When
    /// this returns, every poll thread forwards by the current tables.
    pub fn flush_changes(&mut self, dp: &mut Datapath) {
        if !self.dirty {
            return;
        }
        self.dirty = false;
        // Credit what the old megaflows forwarded to the rules they came from first.
        self.revalidate(dp);
        let mut stale = Vec::new();
        let flows: Vec<_> = dp.megaflows_ref().iter().cloned().collect();
        for mf in flows {
            let Some(key) = self.installed.get(&mf.id).map(|i| i.key) else { continue };
            let (t, learned) = self.xlate(&key);
            let inst = &self.installed[&mf.id];
            if t.mask != mf.mask
                || t.actions[..] != mf.actions[..]
                || t.rules != inst.t.rules
                || t.groups != inst.t.groups
                || t.lookups != inst.t.lookups
            {
                stale.push((mf.id, key, t, learned));
            }
        }
        if stale.is_empty() {
            return;
        }
        let n = stale.len();
        for (id, ..) in &stale {
            dp.megaflows().remove(*id);
        }
        for (id, key, t, learned) in stale {
            let Some(old) = self.installed.remove(&id) else { continue };
            if let Ok(mf) = dp.megaflows().insert(key, t.mask, &t.actions, 0) {
                self.installed.insert(
                    mf.id,
                    Installed { key, t, credited: mf.stats(), installed_ms: old.installed_ms, learned },
                );
            }
        }
        dp.megaflows().publish();
        self.stats.megaflows_revalidated += n as u64;
    }

    /// Credits megaflow counters to their rules and retires megaflows idle too long.
    pub fn revalidate(&mut self, dp: &mut Datapath) {
        dp.offload_fold();
        let now_dp = dp.now_ms();
        let now = self.now();
        let max_idle = self.cfg.megaflow_max_idle.as_millis() as u64;
        let mut expired = Vec::new();
        let mut relearn = Vec::new();
        for mf in dp.megaflows_ref().iter() {
            let st = mf.stats();
            // Another bridge's megaflow is that bridge's to credit and retire.
            let Some(inst) = self.installed.get_mut(&mf.id) else { continue };
            let dpkts = st.packets.saturating_sub(inst.credited.packets);
            let db = st.bytes.saturating_sub(inst.credited.bytes);
            if dpkts > 0 {
                self.model.credit(&inst.t, dpkts, db, now);
                inst.credited = st;
                relearn.extend(inst.learned.iter().cloned());
            }
            let last_use = st.used_ms.max(inst.installed_ms);
            if now_dp.saturating_sub(last_use) > max_idle {
                expired.push(mf.id);
            }
        }
        if !relearn.is_empty() {
            self.apply_learned(&relearn);
        }
        if !expired.is_empty() {
            for id in &expired {
                dp.megaflows().remove(*id);
                self.installed.remove(id);
            }
            self.stats.megaflows_expired += expired.len() as u64;
            dp.megaflows().publish();
        }
    }

    /// Sets a port's VLAN configuration for NORMAL (a trunk of every VLAN is the default).
    /// The addresses learned on the port are forgotten, as OVS does on a reconfiguration.
    pub fn set_port_vlan(&mut self, dp: &mut Datapath, no: u32, vlan: PortVlan) {
        if vlan == PortVlan::trunk_all() {
            self.vlans.remove(&no);
        } else {
            self.vlans.insert(no, vlan);
        }
        if let Some(port) = self.map.to_dp(no) {
            fdb_of(dp, self.index).retain(|e| e.port != port || e.is_static);
        }
        self.publish_normal_ports(dp);
    }

    /// Learns one address a poll thread saw (the table evicts fairly when full; evictions
    /// and addresses not learned are counted in its stats and logged by the limits log).
    pub fn learn(&mut self, dp: &mut Datapath, ev: Learn) {
        let now_s = (dp.now_ms() / 1000) as u32;
        let _ = fdb_of(dp, self.index).learn(ev.mac, ev.vlan, ev.port, now_s);
    }

    /// A port given by name or number.
    fn port_arg(&self, arg: &str) -> Result<u32, String> {
        if let Some(no) = self.ports.number(arg) {
            return Ok(no);
        }
        match arg.parse::<u32>() {
            Ok(no) if self.xports.iter().any(|x| x.no == no) => Ok(no),
            _ => Err(format!("{arg}: no such port")),
        }
    }

    fn fdb_call(&mut self, dp: &mut Datapath, call: &Call) -> Result<String, String> {
        let vlan = |s: &str| parse_vid(s).ok_or(format!("{s}: not a VLAN ID (0 to {VID_MAX})"));
        let mac = |s: &str| parse_mac(s).ok_or(format!("{s}: not a MAC address"));
        match call.command.name {
            "fdb/add" => {
                let no = self.port_arg(&call.args[0])?;
                let (v, m) = (vlan(&call.args[1])?, mac(&call.args[2])?);
                let port = self.map.to_dp(no).ok_or(format!("{}: no such port", call.args[0]))?;
                fdb_of(dp, self.index).add_static(m, v, port).map_err(|e| e.to_string())?;
                Ok(String::new())
            }
            "fdb/del" => {
                let (v, m) = (vlan(&call.args[0])?, mac(&call.args[1])?);
                if fdb_of(dp, self.index).forget(m, v) {
                    Ok(String::new())
                } else {
                    Err(format!("{} on VLAN {v}: not in the table", call.args[1]))
                }
            }
            "port/set-vlan" => {
                let no = self.port_arg(&call.args[0])?;
                let v = PortVlan::parse_options(call.args[1..].iter().map(String::as_str))?;
                self.set_port_vlan(dp, no, v);
                Ok(String::new())
            }
            other => Err(format!("{other}: not an fdb command")),
        }
    }

    fn fdb_stats(&self, dp: &Datapath, json: bool) -> String {
        let pmds = dp.pmd_stats();
        let vlan_dropped: u64 = pmds.iter().map(|p| p.normal_vlan_dropped).sum();
        let src_multicast: u64 = pmds.iter().map(|p| p.normal_src_multicast).sum();
        let learn_dropped = dp.learn_dropped();
        let w = fdb_ref_of(dp, self.index);
        let st = w.stats();
        if json {
            return serde_json::to_string_pretty(&serde_json::json!({
                "entries": w.len(), "max": w.max_entries(), "static": w.n_static(),
                "learned": st.learned, "expired": st.expired, "evicted": st.evicted, "moved": st.moved,
                "not_learned_full": st.full, "learn_dropped": learn_dropped,
                "vlan_dropped": vlan_dropped, "src_multicast": src_multicast,
            }))
            .unwrap_or_default()
                + "\n";
        }
        let mut s = format!("Statistics for bridge \"{}\":\n", self.name);
        for (label, v) in [
            ("Current/maximum MAC entries in the table", format!("{}/{}", w.len(), w.max_entries())),
            ("Current static MAC entries in the table ", w.n_static().to_string()),
            ("Total number of learned MAC entries     ", st.learned.to_string()),
            ("Total number of expired MAC entries     ", st.expired.to_string()),
            ("Total number of evicted MAC entries     ", st.evicted.to_string()),
            ("Total number of port moved MAC entries  ", st.moved.to_string()),
            ("Addresses not learned (no free slot)    ", st.full.to_string()),
            ("Learning events dropped (queue full)    ", learn_dropped.to_string()),
            ("Frames dropped for their VLAN           ", vlan_dropped.to_string()),
            ("Frames with a multicast source (not learned)", src_multicast.to_string()),
        ] {
            let _ = writeln!(s, "  {label}: {v}");
        }
        s
    }

    pub fn handle_call(&mut self, dp: &mut Datapath, call: &Call) -> Response {
        match call.command.name {
            "ofproto/dump-flows" => {
                self.revalidate(dp);
                let now = self.now();
                let mut s = String::new();
                for line in self.model.pipeline.dump(&self.ports, now) {
                    s.push_str(&line);
                    s.push('\n');
                }
                Response::ok(s)
            }
            "netdev/show" => Response::ok(self.dump_ports(dp, call.json)),
            "fdb/show" => Response::ok(self.fdb_show(dp, call.json)),
            "fdb/stats-show" => Response::ok(self.fdb_stats(dp, call.json)),
            "fdb/add" | "fdb/del" | "port/set-vlan" => match self.fdb_call(dp, call) {
                Ok(body) => Response::ok(body),
                Err(e) => Response::err(e),
            },
            "fdb/flush" => {
                // As OVS's fdb/flush: learned entries go, static ones stay (fdb-del removes them).
                let n = fdb_of(dp, self.index).retain(|e| e.is_static);
                Response::ok(format!("table successfully flushed ({n} entries)\n"))
            }
            other => Response::err(format!("{other}: not served by bridge {}", self.name)),
        }
    }

    /// NORMAL's table as `ovs-appctl fdb/show` prints it: OpenFlow port number (`LOCAL`),
    /// VLAN, MAC, seconds since last seen or `static`.
    fn fdb_show(&self, dp: &Datapath, json: bool) -> String {
        let now_s = (dp.now_ms() / 1000) as u32;
        // The table's ports are datapath numbers; shown as this bridge's OpenFlow numbers.
        let mut entries: Vec<_> = fdb_ref_of(dp, self.index)
            .entries()
            .into_iter()
            .filter_map(|mut e| {
                e.port = DpPortNo(self.map.to_of(e.port)?);
                Some(e)
            })
            .collect();
        entries.sort_by_key(|e| (e.port, e.vlan, e.mac));
        let port = |no: DpPortNo| if no == DpPortNo::LOCAL { "LOCAL".to_string() } else { no.0.to_string() };
        let mac = crate::packet::ethernet::format_mac;
        if json {
            let v: Vec<_> = entries
                .iter()
                .map(|e| {
                    serde_json::json!({
                        "port": if e.port == DpPortNo::LOCAL { serde_json::json!("LOCAL") } else { serde_json::json!(e.port.0) },
                        "name": self.ports.name(e.port.0),
                        "vlan": e.vlan,
                        "mac": mac(&e.mac),
                        "age": if e.is_static { None } else { Some(now_s.saturating_sub(e.seen_s)) },
                        "static": e.is_static,
                    })
                })
                .collect();
            return serde_json::to_string_pretty(&v).unwrap_or_default() + "\n";
        }
        let mut s = String::from(" port  VLAN  MAC                Age\n");
        for e in entries {
            let age = if e.is_static {
                "static".to_string()
            } else {
                format!("{:>3}", now_s.saturating_sub(e.seen_s))
            };
            let _ = writeln!(s, "{:>5}  {:>4}  {}  {age}", port(e.port), e.vlan, mac(&e.mac));
        }
        s
    }

    fn dump_ports(&self, dp: &Datapath, json: bool) -> String {
        // This bridge's ports, by OpenFlow number.
        let ports: Vec<_> = dp
            .port_stats()
            .into_iter()
            .filter_map(|(no, name, kind, desc, st)| {
                let of = self.map.to_of(no)?;
                let note = match self.port_notes.get(&of) {
                    None => desc,
                    // A patch or tunnel port has no device to describe: its options say it all.
                    Some(n) if desc.is_empty() || matches!(kind, "patch" | "gre") => n.clone(),
                    Some(n) => format!("{desc}, {n}"),
                };
                Some((DpPortNo(of), name, kind, note, st))
            })
            .collect();
        if json {
            let v: Vec<_> = ports
                .iter()
                .map(|(no, name, kind, desc, st)| {
                    let vlan = self.vlans.get(&no.0).map(PortVlan::describe);
                    serde_json::json!({"port": no.0, "name": name, "type": kind, "attach": desc, "vlan": vlan, "stats": st})
                })
                .collect();
            return serde_json::to_string_pretty(&v).unwrap_or_default() + "\n";
        }
        let mut s = String::new();
        for (no, name, kind, desc, st) in ports {
            let _ = writeln!(
                s,
                "port {no}: {name} (type {kind}{}{desc})",
                if desc.is_empty() { "" } else { ", " }
            );
            if let Some(v) = self.vlans.get(&no.0) {
                let _ = writeln!(s, "  {}", v.describe());
            }
            let _ = writeln!(s, "  rx pkts={} bytes={}", st.rx_packets, st.rx_bytes);
            let _ =
                writeln!(s, "  tx pkts={} bytes={} dropped={}", st.tx_packets, st.tx_bytes, st.tx_dropped);
            let _ = writeln!(
                s,
                "  xdp rx_dropped={} rx_invalid_descs={} rx_ring_full={} rx_fill_ring_empty={} tx_invalid_descs={} tx_ring_empty={}",
                st.xdp_rx_dropped,
                st.xdp_rx_invalid_descs,
                st.xdp_rx_ring_full,
                st.xdp_rx_fill_ring_empty,
                st.xdp_tx_invalid_descs,
                st.xdp_tx_ring_empty
            );
        }
        s
    }
}
