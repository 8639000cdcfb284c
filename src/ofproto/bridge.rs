//! The bridge: one control thread owns the OpenFlow pipeline and the datapath handle.
//!
//! It turns upcalls into megaflows (translate the key, install `(masked key, mask, actions)`,
//! publish, send the packet back to be forwarded), credits megaflow counters to the rules they
//! came from, retires idle megaflows, and answers operator calls from the ctl socket. All of
//! ofproto's state is touched only here, so its semantics need no locks.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, tick, Receiver};

use super::connmgr::{AgentEvent, AsyncKind, ConnMgr, FailMode};
use super::openflow::TokenBucket;
use super::rule::{FlowMod, FlowSpec, Match, OfAction, PortNames};
use super::syntax::parse_mac;
use super::table::Pipeline;
use super::xlate::{translate_with, PacketInContexts, TableMiss, Translation, XPort, XlateCtx};
use super::Model;
use crate::ctl::{Call, Response};
use crate::datapath::actions::{self, DpAction};
use crate::datapath::dpif::Datapath;
use crate::datapath::fdb::{FdbFull, Learned};
use crate::datapath::flow::{format_masked, FlowKey, FlowMask};
use crate::datapath::megaflow::{FlowStats, MegaflowId};
use crate::datapath::normal::{parse_vid, Learn, PortVlan, VID_MAX};
use crate::datapath::upcall::Upcall;
use crate::netdev::DpPortNo;

/// Upcalls handled before the megaflows they produced are published together.
const UPCALL_BATCH: usize = 256;
/// OpenFlow requests handled before the megaflows are re-translated and published.
const AGENT_BATCH: usize = 1024;

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
    /// Megaflows replaced because the flow tables changed under them.
    pub megaflows_revalidated: u64,
    /// Packet-ins sent (one per controller connection).
    pub packet_ins: u64,
    /// Packet-ins dropped by the rate limit.
    pub packet_in_dropped: u64,
}

/// One OpenFlow switch: its pipeline, its ports, its datapath.
pub struct Bridge {
    pub(super) name: String,
    pub(super) cfg: BridgeConfig,
    /// Flow tables, groups, meters.
    pub(super) model: Model,
    pub(super) ports: PortNames,
    /// The ports as translation sees them (OpenFlow config bits, liveness); LOCAL included.
    pub(super) xports: Vec<XPort>,
    /// Whether the bridge has its LOCAL port.
    pub(super) has_local: bool,
    /// Packet-in contexts named by `DpAction::Userspace` ids.
    pub(super) pins: PacketInContexts,
    /// Packet-in rate limiter.
    pub(super) pin_bucket: TokenBucket,
    pub(super) dp: Datapath,
    pub(super) conns: ConnMgr,
    /// The flow tables changed since the megaflows were last re-translated.
    pub(super) dirty: bool,
    /// `datapath_id` in features replies.
    pub(super) datapath_id: u64,
    installed: HashMap<MegaflowId, Installed>,
    pub(super) stats: BridgeStats,
    pub(super) started: Instant,
    exit: bool,
    /// When the last translation failure was logged (at most one line a second).
    last_xlate_warning: Option<Instant>,
    /// When the timers last ran (bridge clock).
    pub(super) last_timers: Option<Duration>,
    /// When NORMAL's MAC table was last aged.
    pub(super) last_aging: Option<Duration>,
    /// NORMAL's VLAN configuration of the ports that have one (the others trunk every VLAN).
    pub(super) vlans: HashMap<u32, PortVlan>,
    /// When a full MAC table was last logged (at most one line every 10 s).
    last_fdb_warning: Option<Instant>,
}

impl Bridge {
    /// A bridge over a running datapath with `pipeline` already loaded.
    pub fn new(name: &str, cfg: BridgeConfig, pipeline: Pipeline, ports: PortNames, dp: Datapath) -> Bridge {
        let xports: Vec<XPort> = dp.ports().iter().map(|p| XPort::up(p.no.0)).collect();
        let has_local = dp.ports().iter().any(|p| p.no == DpPortNo::LOCAL);
        let datapath_id = dp
            .port_info(DpPortNo::LOCAL)
            .map(|i| i.hw_addr)
            .or_else(|| dp.ports().first().and_then(|p| dp.port_info(p.no)).map(|i| i.hw_addr))
            .map_or(0, |m| u64::from_be_bytes([0, 0, m[0], m[1], m[2], m[3], m[4], m[5]]));
        let mut b = Bridge {
            name: name.to_string(),
            cfg: cfg.clone(),
            model: Model { pipeline, ..Model::default() },
            ports,
            xports,
            has_local,
            pins: PacketInContexts::new(),
            pin_bucket: TokenBucket::new(cfg.packet_in_rate, Instant::now()),
            dp,
            conns: ConnMgr::new(cfg.fail_mode, cfg.has_controllers, cfg.fail_open_after, Instant::now()),
            dirty: false,
            datapath_id,
            installed: HashMap::new(),
            stats: BridgeStats::default(),
            started: Instant::now(),
            exit: false,
            last_xlate_warning: None,
            last_timers: None,
            last_aging: None,
            vlans: HashMap::new(),
            last_fdb_warning: None,
        };
        b.refresh_port_state();
        b.publish_normal_ports();
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

    /// Translates `key` through the current tables (or NORMAL, while failed open).
    pub(super) fn xlate(&mut self, key: &FlowKey) -> Translation {
        if self.conns.is_fail_open() {
            // Open vSwitch's fail-open flow: NORMAL above every rule, for every packet.
            return Translation {
                actions: vec![DpAction::Normal],
                mask: FlowMask::default(),
                rules: Vec::new(),
                lookups: Vec::new(),
                groups: Vec::new(),
                meters: Vec::new(),
                error: None,
            };
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
        translate_with(&ctx, &mut self.pins, key)
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

    /// Serves upcalls, OpenFlow requests, operator calls and timers until `stop` is set or
    /// `exit` is called.
    pub fn run(&mut self, calls: &Receiver<Call>, agent: &Receiver<AgentEvent>, stop: &AtomicBool) {
        let upcalls = self.dp.upcalls().clone();
        let packet_ins = self.dp.packet_ins().clone();
        let learned = self.dp.learn_events().clone();
        let ticker = tick(self.cfg.revalidate_interval.min(Duration::from_millis(200)));
        let mut last_revalidate = Instant::now();
        while !stop.load(Relaxed) && !self.exit {
            select! {
                recv(upcalls) -> up => if let Ok(up) = up { self.handle_upcalls(up, &upcalls) },
                recv(packet_ins) -> p => if let Ok(p) = p {
                    self.handle_packet_in(p);
                    for p in packet_ins.try_iter().take(UPCALL_BATCH) {
                        self.handle_packet_in(p);
                    }
                },
                recv(learned) -> ev => if let Ok(ev) = ev {
                    for ev in std::iter::once(ev).chain(learned.try_iter().take(UPCALL_BATCH)) {
                        self.learn(ev);
                    }
                },
                recv(agent) -> ev => if let Ok(ev) = ev {
                    // A batch of requests, then one re-translation of the megaflows.
                    self.handle_agent_event(ev);
                    for ev in agent.try_iter().take(AGENT_BATCH) {
                        self.handle_agent_event(ev);
                    }
                    self.flush_changes();
                },
                recv(calls) -> call => if let Ok(call) = call {
                    let response = self.handle_call(&call);
                    let _ = call.reply.send(response);
                },
                recv(ticker) -> _ => {}
            }
            self.run_timers();
            if last_revalidate.elapsed() >= self.cfg.revalidate_interval {
                self.revalidate();
                last_revalidate = Instant::now();
            }
        }
    }

    /// Stops the poll threads (they release their frames), then the ports go with `self`.
    pub fn shutdown(&mut self) {
        self.dp.shutdown();
    }

    /// Handles `first` and whatever else is queued (up to a batch), then publishes once.
    pub fn handle_upcalls(&mut self, first: Upcall, queue: &Receiver<Upcall>) {
        let mut pending = Vec::with_capacity(16);
        let mut next = Some(first);
        let mut n = 0;
        while let Some(up) = next.take() {
            self.stats.upcalls += 1;
            let t = self.xlate(&up.key);
            if let Some(e) = &t.error {
                self.stats.xlate_errors += 1;
                if self.last_xlate_warning.is_none_or(|w| w.elapsed() >= Duration::from_secs(1)) {
                    self.last_xlate_warning = Some(Instant::now());
                    tracing::warn!(errors = self.stats.xlate_errors, "translation failed, dropping: {e}");
                }
            }
            let actions: Arc<[DpAction]> = t.actions[..].into();
            let now = self.now();
            self.model.credit(&t, 1, up.packet.len() as u64, now);
            match self.dp.megaflows().insert(up.key, t.mask, &actions, 0) {
                Ok(mf) => {
                    let installed_ms = self.dp.now_ms();
                    self.installed.entry(mf.id).or_insert_with(|| {
                        self.stats.megaflows_installed += 1;
                        Installed { key: up.key, t, credited: FlowStats::default(), installed_ms }
                    });
                }
                Err(_) => self.stats.megaflow_table_full += 1,
            }
            pending.push((up.pmd, DpPortNo(up.key.in_port), up.packet, actions));
            n += 1;
            if n < UPCALL_BATCH {
                next = queue.try_recv().ok();
            }
        }
        // Make the new megaflows visible before the packets that caused them go out, so the
        // packets that follow them take the fast path.
        self.dp.megaflows().publish();
        for (pmd, in_port, packet, actions) in pending {
            if !self.dp.execute(pmd, in_port, packet, actions) {
                self.stats.execute_dropped += 1;
            }
        }
    }

    /// After the flow tables changed: re-translates every installed megaflow from the key it
    /// was made for, replaces those whose mask, actions or rules differ, and publishes. When
    /// this returns, every poll thread forwards by the current tables.
    pub fn flush_changes(&mut self) {
        if !self.dirty {
            return;
        }
        self.dirty = false;
        // Credit what the old megaflows forwarded to the rules they came from first.
        self.revalidate();
        let mut stale = Vec::new();
        let flows: Vec<_> = self.dp.megaflows_ref().iter().cloned().collect();
        for mf in flows {
            let Some(key) = self.installed.get(&mf.id).map(|i| i.key) else { continue };
            let t = self.xlate(&key);
            let inst = &self.installed[&mf.id];
            if t.mask != mf.mask
                || t.actions[..] != mf.actions[..]
                || t.rules != inst.t.rules
                || t.groups != inst.t.groups
                || t.lookups != inst.t.lookups
            {
                stale.push((mf.id, key, t));
            }
        }
        if stale.is_empty() {
            return;
        }
        let n = stale.len();
        for (id, _, _) in &stale {
            self.dp.megaflows().remove(*id);
        }
        for (id, key, t) in stale {
            let Some(old) = self.installed.remove(&id) else { continue };
            if let Ok(mf) = self.dp.megaflows().insert(key, t.mask, &t.actions, 0) {
                self.installed.insert(
                    mf.id,
                    Installed { key, t, credited: mf.stats(), installed_ms: old.installed_ms },
                );
            }
        }
        self.dp.megaflows().publish();
        self.stats.megaflows_revalidated += n as u64;
    }

    /// Credits megaflow counters to their rules and retires megaflows idle too long.
    pub fn revalidate(&mut self) {
        let now_dp = self.dp.now_ms();
        let now = self.now();
        let max_idle = self.cfg.megaflow_max_idle.as_millis() as u64;
        let mut expired = Vec::new();
        for mf in self.dp.megaflows_ref().iter() {
            let st = mf.stats();
            let mut last_use = st.used_ms;
            if let Some(inst) = self.installed.get_mut(&mf.id) {
                let dp = st.packets.saturating_sub(inst.credited.packets);
                let db = st.bytes.saturating_sub(inst.credited.bytes);
                if dp > 0 {
                    self.model.credit(&inst.t, dp, db, now);
                    inst.credited = st;
                }
                last_use = last_use.max(inst.installed_ms);
            }
            if now_dp.saturating_sub(last_use) > max_idle {
                expired.push(mf.id);
            }
        }
        if !expired.is_empty() {
            for id in &expired {
                self.dp.megaflows().remove(*id);
                self.installed.remove(id);
            }
            self.stats.megaflows_expired += expired.len() as u64;
            self.dp.megaflows().publish();
        }
    }

    /// Sets a port's VLAN configuration for NORMAL (a trunk of every VLAN is the default).
    /// The addresses learned on the port are forgotten, as OVS does on a reconfiguration.
    pub fn set_port_vlan(&mut self, no: u32, vlan: PortVlan) {
        if vlan == PortVlan::trunk_all() {
            self.vlans.remove(&no);
        } else {
            self.vlans.insert(no, vlan);
        }
        self.dp.fdb(0).retain(|e| e.port.0 != no || e.is_static);
        self.publish_normal_ports();
    }

    /// Learns one address a poll thread saw (the table evicts fairly when full).
    fn learn(&mut self, ev: Learn) {
        let now_s = (self.dp.now_ms() / 1000) as u32;
        let evicted = self.dp.fdb(0).stats().evicted;
        let res = self.dp.fdb(0).learn(ev.mac, ev.vlan, ev.port, now_s);
        let full = matches!(res, Err(FdbFull));
        if full || (res == Ok(Learned::New) && self.dp.fdb(0).stats().evicted > evicted) {
            let now = Instant::now();
            if self.last_fdb_warning.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(10)) {
                self.last_fdb_warning = Some(now);
                let w = self.dp.fdb(0);
                tracing::warn!(
                    bridge = %self.name,
                    entries = w.len(),
                    evicted = w.stats().evicted,
                    not_learned = w.stats().full,
                    "MAC table full: evicting the oldest addresses of the port with the most (see fdb-stats)"
                );
            }
        }
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

    fn fdb_call(&mut self, call: &Call) -> Result<String, String> {
        let vlan = |s: &str| parse_vid(s).ok_or(format!("{s}: not a VLAN ID (0 to {VID_MAX})"));
        let mac = |s: &str| parse_mac(s).ok_or(format!("{s}: not a MAC address"));
        match call.command.name {
            "fdb/add" => {
                let no = self.port_arg(&call.args[0])?;
                let (v, m) = (vlan(&call.args[1])?, mac(&call.args[2])?);
                self.dp.fdb(0).add_static(m, v, DpPortNo(no)).map_err(|e| e.to_string())?;
                Ok(String::new())
            }
            "fdb/del" => {
                let (v, m) = (vlan(&call.args[0])?, mac(&call.args[1])?);
                if self.dp.fdb(0).forget(m, v) {
                    Ok(String::new())
                } else {
                    Err(format!("{} on VLAN {v}: not in the table", call.args[1]))
                }
            }
            "port/set-vlan" => {
                let no = self.port_arg(&call.args[0])?;
                let v = PortVlan::parse_options(call.args[1..].iter().map(String::as_str))?;
                self.set_port_vlan(no, v);
                Ok(String::new())
            }
            other => Err(format!("{other}: not an fdb command")),
        }
    }

    fn fdb_stats(&self, json: bool) -> String {
        let pmds = self.dp.pmd_stats();
        let vlan_dropped: u64 = pmds.iter().map(|p| p.normal_vlan_dropped).sum();
        let src_multicast: u64 = pmds.iter().map(|p| p.normal_src_multicast).sum();
        let learn_dropped = self.dp.learn_dropped();
        let w = self.dp.fdb_ref(0);
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

    fn handle_call(&mut self, call: &Call) -> Response {
        match call.command.name {
            "ofproto/dump-flows" => {
                self.revalidate();
                let now = self.now();
                let mut s = String::new();
                for line in self.model.pipeline.dump(&self.ports, now) {
                    s.push_str(&line);
                    s.push('\n');
                }
                Response::ok(s)
            }
            "dpctl/dump-flows" => Response::ok(self.dump_megaflows(call.json)),
            "datapath/pmd-stats-show" => Response::ok(self.pmd_stats(call.json)),
            "datapath/pmd-stats-clear" => {
                self.dp.clear_pmd_stats();
                Response::ok("")
            }
            "datapath/pmd-rxq-show" => {
                let mut s = String::new();
                for pmd in 0..self.dp.n_pmds() {
                    let _ = writeln!(s, "pmd thread {pmd}:");
                    for (no, q) in self.dp.pmd_queues(pmd) {
                        let _ =
                            writeln!(s, "  port: {:<16} queue-id: {q}", self.ports.name(no.0).unwrap_or("?"));
                    }
                }
                Response::ok(s)
            }
            "netdev/show" => Response::ok(self.dump_ports(call.json)),
            "fdb/show" => Response::ok(self.fdb_show(call.json)),
            "fdb/stats-show" => Response::ok(self.fdb_stats(call.json)),
            "fdb/add" | "fdb/del" | "port/set-vlan" => match self.fdb_call(call) {
                Ok(body) => Response::ok(body),
                Err(e) => Response::err(e),
            },
            "fdb/flush" => {
                // As OVS's fdb/flush: learned entries go, static ones stay (fdb-del removes them).
                let n = self.dp.fdb(0).retain(|e| e.is_static);
                Response::ok(format!("table successfully flushed ({n} entries)\n"))
            }
            "exit" => {
                self.exit = true;
                Response::ok("")
            }
            other => Response::err(format!("{other}: not served by bridge {}", self.name)),
        }
    }

    /// NORMAL's table as `ovs-appctl fdb/show` prints it: OpenFlow port number (`LOCAL`),
    /// VLAN, MAC, seconds since last seen or `static`.
    fn fdb_show(&self, json: bool) -> String {
        let now_s = (self.dp.now_ms() / 1000) as u32;
        let mut entries = self.dp.fdb_ref(0).entries();
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

    fn dump_megaflows(&self, json: bool) -> String {
        let now = self.dp.now_ms();
        let mut rows = Vec::new();
        for mf in self.dp.megaflows_ref().iter() {
            let st = mf.stats();
            let used = if st.packets == 0 {
                "never".to_string()
            } else {
                format!("{:.3}s", now.saturating_sub(st.used_ms) as f64 / 1000.0)
            };
            rows.push((format_masked(&mf.key, &mf.mask), st, used, actions::format(&mf.actions)));
        }
        if json {
            let v: Vec<_> = rows
                .iter()
                .map(|(m, st, used, a)| {
                    serde_json::json!({"match": m, "packets": st.packets, "bytes": st.bytes, "used": used, "actions": a})
                })
                .collect();
            return serde_json::to_string_pretty(&v).unwrap_or_default() + "\n";
        }
        let mut s = String::new();
        for (m, st, used, a) in rows {
            let _ = writeln!(s, "{m}, packets:{}, bytes:{}, used:{used}, actions:{a}", st.packets, st.bytes);
        }
        s
    }

    fn pmd_stats(&self, json: bool) -> String {
        let stats = self.dp.pmd_stats();
        if json {
            return serde_json::to_string_pretty(&serde_json::json!({
                "pmds": stats,
                "slow_path": self.stats,
                "fdb_learn_dropped": self.dp.learn_dropped(),
                "fdb": self.dp.fdb_ref(0).stats(),
            }))
            .unwrap_or_default()
                + "\n";
        }
        let mut s = String::new();
        for st in &stats {
            let queues: Vec<String> = self
                .dp
                .pmd_queues(st.pmd)
                .iter()
                .map(|(no, q)| format!("{}/{q}", self.ports.name(no.0).unwrap_or("?")))
                .collect();
            let rx = st.rx_packets.max(1) as f64;
            let pct = |n: u64| 100.0 * n as f64 / rx;
            let total_ns = (st.busy_ns + st.idle_ns).max(1);
            let _ = writeln!(s, "pmd thread {} (queues: {}):", st.pmd, queues.join(" "));
            let _ = writeln!(s, "  packets received:   {}", st.rx_packets);
            let _ = writeln!(s, "  emc hits:           {} ({:.1}%)", st.emc_hits, pct(st.emc_hits));
            let _ = writeln!(
                s,
                "  megaflow hits:      {} ({:.1}%, avg. subtable lookups per hit: {:.2})",
                st.megaflow_hits,
                pct(st.megaflow_hits),
                st.subtables_probed as f64 / st.megaflow_hits.max(1) as f64
            );
            let _ = writeln!(s, "  misses:             {} ({:.1}%)", st.misses, pct(st.misses));
            let _ = writeln!(s, "  upcalls:            {} (dropped: {})", st.upcalls, st.upcall_dropped);
            let _ = writeln!(s, "  executed for slow path: {}", st.executed);
            let _ = writeln!(
                s,
                "  to controller:      {} (dropped: {}), meter drops: {}, no_recv drops: {}",
                st.userspace, st.userspace_dropped, st.meter_dropped, st.no_recv_dropped
            );
            let malformed: u64 = st.malformed.iter().map(|(_, n)| n).sum();
            let _ = write!(s, "  malformed dropped:  {malformed}");
            for (name, n) in st.malformed.iter().filter(|(_, n)| *n > 0) {
                let _ = write!(s, " {name}={n}");
            }
            s.push('\n');
            let _ = writeln!(
                s,
                "  action drops:       {} (no output: {}, no tx queue: {})",
                st.action_dropped, st.no_output, st.tx_no_port
            );
            let _ = writeln!(
                s,
                "  busy:               {:.1}% of {:.3} s, sleeps: {}",
                100.0 * st.busy_ns as f64 / total_ns as f64,
                total_ns as f64 / 1e9,
                st.sleeps
            );
            if st.rx_packets > 0 {
                let ns = st.busy_ns as f64 / st.rx_packets as f64;
                let _ = writeln!(
                    s,
                    "  per packet:         {:.1} ns busy time, ~{:.0} cycles at {:.2} GHz",
                    ns,
                    ns * cpu_ghz(),
                    cpu_ghz()
                );
            }
        }
        let sp = &self.stats;
        let _ = writeln!(
            s,
            "slow path: upcalls {}, megaflows installed {} (now {}), expired {}, revalidated {}, table full {}, execute dropped {}, translation errors {}, packet-ins {} (rate-limited {})",
            sp.upcalls,
            sp.megaflows_installed,
            self.dp.megaflows_ref().len(),
            sp.megaflows_expired,
            sp.megaflows_revalidated,
            sp.megaflow_table_full,
            sp.execute_dropped,
            sp.xlate_errors,
            sp.packet_ins,
            sp.packet_in_dropped
        );
        let _ = writeln!(
            s,
            "NORMAL: learning events dropped {}, MAC table full {}, aged out {}, evicted {}, VLAN drops {}, multicast sources {}",
            self.dp.learn_dropped(),
            self.dp.fdb_ref(0).stats().full,
            self.dp.fdb_ref(0).stats().expired,
            self.dp.fdb_ref(0).stats().evicted,
            stats.iter().map(|p| p.normal_vlan_dropped).sum::<u64>(),
            stats.iter().map(|p| p.normal_src_multicast).sum::<u64>()
        );
        s
    }

    fn dump_ports(&self, json: bool) -> String {
        let ports = self.dp.port_stats();
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

/// The CPU clock in GHz, from /proc/cpuinfo (for "cycles per packet"); 1.0 when unknown.
fn cpu_ghz() -> f64 {
    static GHZ: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *GHZ.get_or_init(|| {
        std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("cpu MHz"))
                    .and_then(|l| l.split(':').nth(1))
                    .and_then(|v| v.trim().parse::<f64>().ok())
            })
            .map(|mhz| mhz / 1000.0)
            .unwrap_or(1.0)
    })
}
