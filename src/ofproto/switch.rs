//! The switch's control thread: one [`Datapath`] shared by every [`Bridge`] of the process.
//!
//! `Ofproto` owns the datapath and the bridges. It waits on the datapath's queues (upcalls,
//! packet-ins, NORMAL's learning events), each bridge's agent events and the operator's ctl
//! calls, routes each to the bridge it belongs to (by the bridge of the packet's datapath
//! in_port, or the ctl call's `--bridge`), lends that bridge the datapath for the call, and
//! runs every bridge's timers. One thread, so nothing here locks.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{tick, Receiver, Select};

use super::bridge::{fdb_ref_of, Bridge, BridgeStats};
use super::connmgr::AgentEvent;
use super::limits::{format_limits, Limit, LimitLog, LimitReading};
use super::underlay::{Underlay, UnderlayOut};
use crate::ctl::{Call, Response};
use crate::datapath::actions::{self, DpAction};
use crate::datapath::dpif::Datapath;
use crate::datapath::flow::format_masked;
use crate::datapath::upcall::Upcall;
use crate::netdev::DpPortNo;

/// Upcalls handled before the megaflows they produced are published together.
const UPCALL_BATCH: usize = 256;
/// OpenFlow requests handled before the megaflows are re-translated and published.
const AGENT_BATCH: usize = 1024;
/// Packet-ins and learning events handled per wake-up.
const EVENT_BATCH: usize = 256;

/// How often the tunnel endpoint's timers run (ARP retries, neighbour aging).
const UNDERLAY_TICK: Duration = Duration::from_millis(100);
/// How often the limit counters are read for the limits log.
const LIMITS_EVERY: Duration = Duration::from_secs(1);
/// At most one log line per kind of tunnel drop this often.
const TUNNEL_LOG_EVERY: Duration = Duration::from_secs(10);

/// The kinds of tunnel drops that are logged (rate-limited) when their counters grow.
const TUNNEL_DROPS: [(&str, &str); 5] = [
    ("bad_gre", "GRE packets dropped: unsupported flags, version, routing or payload, or a bad checksum"),
    ("no_port", "GRE packets dropped: no tunnel port for their remote and key"),
    ("mtu", "packets dropped: too big for the tunnel's underlay MTU"),
    ("truncated", "tunnel packets dropped: truncated outer or inner headers"),
    (
        "unresolved",
        "tunnel packets dropped: the remote's next hop does not answer ARP, or too many wait for it",
    ),
];

/// The tunnel endpoint's slow path and its log state.
struct Tunnels {
    underlay: Underlay,
    /// Bridge of each tunnel port (for releasing pending packets).
    tunnel_bridge: HashMap<DpPortNo, u16>,
    /// Per drop kind: the count last seen and when it was last logged.
    logged: [(u64, Option<Instant>); TUNNEL_DROPS.len()],
    last_tick: Instant,
    out: Vec<UnderlayOut>,
}

/// Work for the control thread from whoever runs the switch (a reconfiguration, a status
/// query): run between two events, with the whole control plane lent to it.
pub type Control = Box<dyn FnOnce(&mut Ofproto) + Send>;

/// The datapath and every bridge over it.
pub struct Ofproto {
    dp: Datapath,
    bridges: Vec<Bridge>,
    /// Datapath port -> the bridge it belongs to (underlay ports belong to none).
    port_bridge: HashMap<DpPortNo, usize>,
    tunnels: Option<Tunnels>,
    /// Reconfigurations and queries from the switch's owner (`vswitchd::live`).
    control: Option<Receiver<Control>>,
    exit: bool,
    /// What has been logged about the resource limits, and when they were last read.
    limit_log: LimitLog,
    last_limits: Option<Instant>,
}

impl Ofproto {
    /// The control plane over `dp` with `bridges` (at least one; index = position).
    pub fn new(dp: Datapath, mut bridges: Vec<Bridge>) -> Ofproto {
        assert!(!bridges.is_empty(), "a switch has at least one bridge");
        let several = bridges.len() > 1;
        let mut port_bridge = HashMap::new();
        for (i, b) in bridges.iter_mut().enumerate() {
            b.exact_in_port = several;
            for (_, p) in b.port_map().iter() {
                port_bridge.insert(p, i);
            }
        }
        Ofproto {
            dp,
            bridges,
            port_bridge,
            tunnels: None,
            control: None,
            exit: false,
            limit_log: LimitLog::new(),
            last_limits: None,
        }
    }

    /// Hands the tunnel endpoint's slow path (ARP, next hops, tunnel headers) to the control
    /// thread; it starts resolving when `run` starts.
    pub fn set_underlay(&mut self, underlay: Underlay) {
        let tunnel_bridge = self
            .dp
            .ports()
            .iter()
            .filter(|p| p.port.kind() == "gre")
            .map(|p| (p.no, self.port_bridge.get(&p.no).map_or(0, |&b| b as u16)))
            .collect();
        self.tunnels = Some(Tunnels {
            underlay,
            tunnel_bridge,
            logged: [(0, None); TUNNEL_DROPS.len()],
            last_tick: Instant::now(),
            out: Vec::new(),
        });
    }

    /// Runs the tunnel endpoint on `input` and carries out what it asks for.
    fn underlay_step(&mut self, input: impl FnOnce(&mut Underlay, Instant, &mut Vec<UnderlayOut>)) {
        let Some(t) = &mut self.tunnels else { return };
        let mut out = std::mem::take(&mut t.out);
        input(&mut t.underlay, Instant::now(), &mut out);
        for o in out.drain(..) {
            match o {
                UnderlayOut::Send { port, frame } => {
                    let acts: Arc<[DpAction]> = Arc::new([DpAction::Output(port)]);
                    // An underlay port is in no bridge: bridge 0 only names the execute context.
                    self.dp.inject_bridge(0, None, frame, acts);
                }
                UnderlayOut::Header { tunnel, header } => {
                    if let Err(e) = self.dp.set_tunnel_header(tunnel, header) {
                        tracing::warn!(port = tunnel.0, "tunnel header not published: {e}");
                    }
                }
                UnderlayOut::Release { tunnel, key, packet } => {
                    let bridge = t.tunnel_bridge.get(&tunnel).copied().unwrap_or(0);
                    let acts: Arc<[DpAction]> = Arc::new([DpAction::Tunnel { port: tunnel, key }]);
                    self.dp.inject_bridge(bridge, None, packet, acts);
                }
            }
        }
        t.out = out;
    }

    /// The tunnel timers (every 100 ms) and the rate-limited drop log.
    fn underlay_timers(&mut self) {
        let Some(t) = &mut self.tunnels else { return };
        if t.last_tick.elapsed() < UNDERLAY_TICK {
            return;
        }
        t.last_tick = Instant::now();
        self.underlay_step(|u, now, out| u.tick(now, out));
        let Some(t) = &mut self.tunnels else { return };
        let pmds = self.dp.pmd_stats();
        let sum = |f: fn(&crate::datapath::pmd::PmdStatsSnapshot) -> u64| pmds.iter().map(f).sum::<u64>();
        let ust = t.underlay.stats();
        let counts = [
            sum(|p| p.tunnel_bad_gre) + sum(|p| p.tunnel_bad_csum),
            sum(|p| p.tunnel_no_port),
            sum(|p| p.tunnel_mtu_dropped),
            sum(|p| p.tunnel_truncated),
            sum(|p| p.tunnel_pending_dropped) + ust.pending_dropped,
        ];
        let now = Instant::now();
        for (i, n) in counts.into_iter().enumerate() {
            let (seen, last) = &mut t.logged[i];
            if n > *seen && last.is_none_or(|l| now.duration_since(l) >= TUNNEL_LOG_EVERY) {
                tracing::warn!(kind = TUNNEL_DROPS[i].0, total = n, new = n - *seen, "{}", TUNNEL_DROPS[i].1);
                (*seen, *last) = (n, Some(now));
            }
        }
    }

    /// Runs every [`Control`] that arrives on `rx` on the control thread, between events.
    pub fn set_control(&mut self, rx: Receiver<Control>) {
        self.control = Some(rx);
    }

    /// Takes every bridge's OpenFlow state out, by bridge name (the switch is stopping for
    /// a rebuild and the new one puts it back).
    pub fn take_states(&mut self) -> Vec<(String, super::reconf::BridgeState)> {
        let dp = &mut self.dp;
        self.bridges.iter_mut().map(|b| (b.name.clone(), b.take_state(dp))).collect()
    }

    /// Every resource limit with its value and how often it was hit: the datapath's
    /// (megaflows, upcall and packet-in queues) once, the bridges' (flows per table, MAC
    /// entries, packet-in rate) once per bridge.
    pub fn limit_readings(&self) -> Vec<LimitReading> {
        let pmds = self.dp.pmd_stats();
        let (upcall_dropped, userspace_dropped) =
            pmds.iter().fold((0, 0), |(u, p), s| (u + s.upcall_dropped, p + s.userspace_dropped));
        let bridge = |b: &Bridge| Some(b.name.clone());
        let mut out = Vec::new();
        for l in Limit::ALL {
            match l {
                Limit::FlowsPerTable => out.extend(self.bridges.iter().map(|b| LimitReading {
                    limit: l,
                    bridge: bridge(b),
                    value: b.model.pipeline.max_flows() as u64,
                    hits: b.model.pipeline.table_full_count(),
                })),
                Limit::Megaflows => out.push(LimitReading {
                    limit: l,
                    bridge: None,
                    value: self.dp.megaflows_ref().capacity() as u64,
                    hits: self.bridges.iter().map(|b| b.stats.megaflow_table_full).sum(),
                }),
                Limit::MacEntries => out.extend(self.bridges.iter().map(|b| {
                    let fdb = fdb_ref_of(&self.dp, b.index);
                    let st = fdb.stats();
                    LimitReading {
                        limit: l,
                        bridge: bridge(b),
                        value: fdb.max_entries() as u64,
                        hits: st.evicted + st.full,
                    }
                })),
                Limit::UpcallQueue => out.push(LimitReading {
                    limit: l,
                    bridge: None,
                    value: self.dp.upcalls().capacity().unwrap_or(0) as u64,
                    hits: upcall_dropped,
                }),
                Limit::PacketInQueue => out.push(LimitReading {
                    limit: l,
                    bridge: None,
                    value: self.dp.packet_ins().capacity().unwrap_or(0) as u64,
                    hits: userspace_dropped,
                }),
                Limit::PacketInRate => out.extend(self.bridges.iter().map(|b| LimitReading {
                    limit: l,
                    bridge: bridge(b),
                    value: u64::from(b.cfg.packet_in_rate),
                    hits: b.stats.packet_in_dropped,
                })),
            }
        }
        out
    }

    /// Reads the limit counters (once a second) and logs what the limits log says is due.
    fn limits_timer(&mut self) {
        let now = Instant::now();
        if self.last_limits.is_some_and(|t| now.duration_since(t) < LIMITS_EVERY) {
            return;
        }
        self.last_limits = Some(now);
        let readings = self.limit_readings();
        for ev in self.limit_log.observe(now, &readings) {
            ev.log();
        }
    }

    /// The bridges, in configuration order.
    pub fn bridges(&self) -> &[Bridge] {
        &self.bridges
    }

    /// The shared datapath.
    pub fn datapath(&self) -> &Datapath {
        &self.dp
    }

    /// Bridge `i` with the datapath lent to it.
    pub fn bridge_mut(&mut self, i: usize) -> (&mut Bridge, &mut Datapath) {
        (&mut self.bridges[i], &mut self.dp)
    }

    /// The bridge datapath port `p` belongs to (the first one for a port of none).
    fn bridge_of(&self, p: DpPortNo) -> usize {
        self.port_bridge.get(&p).copied().unwrap_or(0)
    }

    /// Serves upcalls, packet-ins, learning events, OpenFlow requests (`agents[i]` is bridge
    /// `i`'s), operator calls and timers until `stop` is set or `exit` is called.
    pub fn run(&mut self, calls: &Receiver<Call>, agents: &[Receiver<AgentEvent>], stop: &AtomicBool) {
        let upcalls = self.dp.upcalls().clone();
        let packet_ins = self.dp.packet_ins().clone();
        let learned = self.dp.learn_events().clone();
        let interval = self.bridges.iter().map(|b| b.cfg.revalidate_interval).min().unwrap_or_default();
        let tick_every = if self.tunnels.is_some() { UNDERLAY_TICK } else { Duration::from_millis(200) };
        let ticker = tick(interval.min(tick_every));
        let underlay_rx = self.dp.underlay_packets().clone();
        let pending_rx = self.dp.tunnel_pending().clone();
        self.underlay_step(|u, now, out| u.start(now, out));
        let mut sel = Select::new();
        let i_up = sel.recv(&upcalls);
        let i_pin = sel.recv(&packet_ins);
        let i_learn = sel.recv(&learned);
        let i_calls = sel.recv(calls);
        let i_tick = sel.recv(&ticker);
        let i_agents: Vec<usize> = agents.iter().map(|a| sel.recv(a)).collect();
        // Nothing arrives on these without underlay ports; selecting on them costs nothing.
        let i_underlay = sel.recv(&underlay_rx);
        let i_pending = sel.recv(&pending_rx);
        let control = self.control.clone().unwrap_or_else(crossbeam_channel::never);
        let i_control = sel.recv(&control);
        let mut last_revalidate = Instant::now();
        while !stop.load(Relaxed) && !self.exit {
            let op = sel.select();
            let i = op.index();
            if i == i_up {
                if let Ok(up) = op.recv(&upcalls) {
                    self.handle_upcalls(up, &upcalls);
                }
            } else if i == i_pin {
                if let Ok(p) = op.recv(&packet_ins) {
                    for p in std::iter::once(p).chain(packet_ins.try_iter().take(EVENT_BATCH)) {
                        let b = usize::from(p.bridge).min(self.bridges.len() - 1);
                        self.bridges[b].handle_packet_in(&mut self.dp, p);
                    }
                }
            } else if i == i_learn {
                if let Ok(ev) = op.recv(&learned) {
                    for ev in std::iter::once(ev).chain(learned.try_iter().take(EVENT_BATCH)) {
                        let b = usize::from(ev.bridge).min(self.bridges.len() - 1);
                        self.bridges[b].learn(&mut self.dp, ev);
                    }
                }
            } else if i == i_calls {
                if let Ok(call) = op.recv(calls) {
                    let response = self.handle_call(&call);
                    let _ = call.reply.send(response);
                }
            } else if i == i_tick {
                let _ = op.recv(&ticker);
            } else if i == i_underlay {
                if let Ok(p) = op.recv(&underlay_rx) {
                    for p in std::iter::once(p).chain(underlay_rx.try_iter().take(EVENT_BATCH)) {
                        self.underlay_step(|u, now, out| u.on_packet(p.port, &p.packet, now, out));
                    }
                }
            } else if i == i_pending {
                if let Ok(p) = op.recv(&pending_rx) {
                    for p in std::iter::once(p).chain(pending_rx.try_iter().take(EVENT_BATCH)) {
                        self.underlay_step(|u, now, out| u.on_pending(p, now, out));
                    }
                }
            } else if i == i_control {
                if let Ok(f) = op.recv(&control) {
                    f(self);
                }
            } else if let Some(b) = i_agents.iter().position(|&x| x == i) {
                if let Ok(ev) = op.recv(&agents[b]) {
                    // A batch of requests, then one re-translation of the megaflows.
                    let bridge = &mut self.bridges[b];
                    bridge.handle_agent_event(&mut self.dp, ev);
                    for ev in agents[b].try_iter().take(AGENT_BATCH) {
                        bridge.handle_agent_event(&mut self.dp, ev);
                    }
                    bridge.flush_changes(&mut self.dp);
                }
            }
            for b in &mut self.bridges {
                b.run_timers(&mut self.dp);
            }
            self.underlay_timers();
            self.limits_timer();
            if last_revalidate.elapsed() >= interval {
                // Kernel counters first (folded into the megaflows), then credit and expiry.
                self.dp.offload_tick();
                for b in &mut self.bridges {
                    b.revalidate(&mut self.dp);
                }
                last_revalidate = Instant::now();
            }
        }
    }

    /// Stops the poll threads (they release their frames); the ports go with `self`.
    pub fn shutdown(&mut self) {
        self.dp.shutdown();
    }

    /// Handles `first` and whatever else is queued (up to a batch), each by the bridge of its
    /// in_port, then publishes once and sends the packets on.
    pub fn handle_upcalls(&mut self, first: Upcall, queue: &Receiver<Upcall>) {
        let mut pending = Vec::with_capacity(16);
        for up in std::iter::once(first).chain(queue.try_iter().take(UPCALL_BATCH - 1)) {
            let in_port = DpPortNo(up.key.in_port);
            let b = self.bridge_of(in_port);
            let actions = self.bridges[b].handle_upcall(&mut self.dp, &up);
            pending.push((b, up.pmd, in_port, up.packet, actions));
        }
        // Make the new megaflows visible before the packets that caused them go out, so the
        // packets that follow them take the fast path.
        self.dp.megaflows().publish();
        for (b, pmd, in_port, packet, actions) in pending {
            if !self.dp.execute(pmd, in_port, packet, actions) {
                self.bridges[b].stats.execute_dropped += 1;
            }
        }
    }

    /// One operator call: datapath-wide commands here, the others on the bridge the call
    /// names (the first by default).
    pub fn handle_call(&mut self, call: &Call) -> Response {
        match call.command.name {
            "exit" => {
                self.exit = true;
                return Response::ok("");
            }
            "bridge/list" => return Response::ok(self.list_bridges(call.json)),
            "tnl/neigh-show" | "tnl/ports-show" => {
                let Some(t) = &self.tunnels else {
                    return Response::err("no tunnels: the switch has no [[underlay]]");
                };
                return Response::ok(if call.command.name == "tnl/neigh-show" {
                    t.underlay.show_neighbors(Instant::now(), call.json)
                } else {
                    t.underlay.show_tunnels(call.json)
                });
            }
            "dpctl/dump-flows" => return Response::ok(dump_megaflows(&self.dp, call.json)),
            "limits/show" => {
                let readings = self.limit_readings();
                return Response::ok(if call.json {
                    serde_json::to_string_pretty(&readings).unwrap_or_default() + "\n"
                } else {
                    format_limits(&readings)
                });
            }
            "datapath/pmd-stats-show" => return Response::ok(pmd_stats(&self.dp, &self.bridges, call.json)),
            "datapath/pmd-stats-clear" => {
                self.dp.clear_pmd_stats();
                return Response::ok("");
            }
            "datapath/pmd-rxq-show" => {
                let mut s = String::new();
                for pmd in 0..self.dp.n_pmds() {
                    let _ = writeln!(s, "pmd thread {pmd}:");
                    for (no, q) in self.dp.pmd_queues(pmd) {
                        let _ = writeln!(s, "  port: {:<16} queue-id: {q}", port_name(&self.dp, *no));
                    }
                }
                return Response::ok(s);
            }
            _ => {}
        }
        let b = match &call.bridge {
            None => 0,
            Some(name) => match self.bridges.iter().position(|b| &b.name == name) {
                Some(b) => b,
                None => return Response::err(format!("{name}: no such bridge (see bridge/list)")),
            },
        };
        self.bridges[b].handle_call(&mut self.dp, call)
    }

    /// `bridge/list`: name, datapath_id, ports (OpenFlow number: name).
    fn list_bridges(&self, json: bool) -> String {
        if json {
            let v: Vec<_> = self
                .bridges
                .iter()
                .map(|b| {
                    let ports: Vec<_> = b
                        .port_map()
                        .iter()
                        .map(|(of, dp)| serde_json::json!({"ofport": of, "dp_port": dp.0, "name": b.ports.name(of)}))
                        .collect();
                    serde_json::json!({"name": b.name, "index": b.index, "datapath_id": format!("{:016x}", b.datapath_id), "ports": ports})
                })
                .collect();
            return serde_json::to_string_pretty(&v).unwrap_or_default() + "\n";
        }
        let mut s = String::new();
        for b in &self.bridges {
            let _ = writeln!(s, "{} (dpid {:016x})", b.name, b.datapath_id);
            let mut ports: Vec<_> = b.port_map().iter().collect();
            ports.sort();
            for (of, dp) in ports {
                let no = if of == DpPortNo::LOCAL.0 { "LOCAL".to_string() } else { of.to_string() };
                let _ = writeln!(s, "  {no}: {} (datapath port {dp})", b.ports.name(of).unwrap_or("?"));
            }
        }
        // Ports of no bridge: the underlays.
        for p in self.dp.ports().iter().filter(|p| !self.port_bridge.contains_key(&p.no)) {
            let _ = writeln!(s, "underlay {} (datapath port {})", p.port.name(), p.no);
        }
        s
    }
}

/// A datapath port's name (its interface's; underlay ports belong to no bridge).
fn port_name(dp: &Datapath, p: DpPortNo) -> String {
    dp.ports().iter().find(|x| x.no == p).map_or_else(|| "?".to_string(), |x| x.port.name().to_string())
}

/// Every bridge's slow-path counters added up.
fn sum_stats(bridges: &[Bridge]) -> BridgeStats {
    let mut t = BridgeStats::default();
    for b in bridges {
        let s = &b.stats;
        t.upcalls += s.upcalls;
        t.megaflows_installed += s.megaflows_installed;
        t.megaflow_table_full += s.megaflow_table_full;
        t.megaflows_expired += s.megaflows_expired;
        t.execute_dropped += s.execute_dropped;
        t.xlate_errors += s.xlate_errors;
        t.megaflows_revalidated += s.megaflows_revalidated;
        t.packet_ins += s.packet_ins;
        t.packet_in_dropped += s.packet_in_dropped;
        t.flow_table_full += b.model.pipeline.table_full_count();
    }
    t
}

fn dump_megaflows(dp: &Datapath, json: bool) -> String {
    dp.offload_fold();
    let now = dp.now_ms();
    let mut rows = Vec::new();
    for mf in dp.megaflows_ref().iter() {
        let offloaded = dp.is_offloaded(mf.id);
        let st = mf.stats();
        let used = if st.packets == 0 {
            "never".to_string()
        } else {
            format!("{:.3}s", now.saturating_sub(st.used_ms) as f64 / 1000.0)
        };
        rows.push((format_masked(&mf.key, &mf.mask), st, used, actions::format(&mf.actions), offloaded));
    }
    if json {
        let v: Vec<_> = rows
            .iter()
            .map(|(m, st, used, a, off)| {
                serde_json::json!({"match": m, "packets": st.packets, "bytes": st.bytes, "used": used, "actions": a, "offloaded": off})
            })
            .collect();
        return serde_json::to_string_pretty(&v).unwrap_or_default() + "\n";
    }
    let mut s = String::new();
    for (m, st, used, a, off) in rows {
        // As OVS's dpctl/dump-flows marks datapath flows in hardware: `offloaded:yes`.
        let off = match off {
            Some(true) => ", offloaded:yes",
            Some(false) => ", offloaded:no",
            None => "",
        };
        let _ = writeln!(s, "{m}, packets:{}, bytes:{}, used:{used}{off}, actions:{a}", st.packets, st.bytes);
    }
    s
}

fn pmd_stats(dp: &Datapath, bridges: &[Bridge], json: bool) -> String {
    let stats = dp.pmd_stats();
    if json {
        return serde_json::to_string_pretty(&serde_json::json!({
            "pmds": stats,
            "slow_path": sum_stats(bridges),
            "bridges": bridges.iter().map(|b| serde_json::json!({"name": b.name, "slow_path": b.stats, "fdb": fdb_ref_of(dp, b.index).stats()})).collect::<Vec<_>>(),
            "fdb_learn_dropped": dp.learn_dropped(),
            "fdb": fdb_ref_of(dp, 0).stats(),
            "offload": dp.offload_stats().map(|(o, p)| serde_json::json!({"flows": o, "program": p})),
        }))
        .unwrap_or_default()
            + "\n";
    }
    let mut s = String::new();
    for st in &stats {
        let queues: Vec<String> =
            dp.pmd_queues(st.pmd).iter().map(|(no, q)| format!("{}/{q}", port_name(dp, *no))).collect();
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
    match dp.offload_stats() {
        None => s.push_str("offload (XDP): off\n"),
        Some((o, p)) => {
            let user: u64 = stats.iter().map(|st| st.rx_packets).sum();
            let total = (p.hit.packets + p.dropped.packets + user).max(1) as f64;
            let _ = writeln!(
                s,
                "offload (XDP): kernel forwarded {} ({:.1}%), kernel dropped {}, to user space {} (missed {}, unparsed {}, output not ready {}, errors {})",
                p.hit.packets,
                100.0 * p.hit.packets as f64 / total,
                p.dropped.packets,
                user,
                p.miss.packets,
                p.unparsed.packets,
                p.no_tx.packets,
                p.error.packets
            );
            let _ = writeln!(
                s,
                "  megaflows in kernel: {} of {} (masks {}), installed {}, removed {}, left in user space: map full {}, masks full {}, not offloadable {}; ports the kernel may redirect to: {}, map errors {}",
                o.flows, o.capacity, o.masks, o.installed, o.removed, o.table_full, o.masks_full, o.unsupported, o.tx_ready_ports, o.errors
            );
        }
    }
    let sp = &sum_stats(bridges);
    let _ = writeln!(
        s,
        "slow path: upcalls {}, megaflows installed {} (now {}), expired {}, revalidated {}, table full {}, execute dropped {}, translation errors {}, packet-ins {} (rate-limited {}), flow adds refused (table full) {}",
        sp.upcalls,
        sp.megaflows_installed,
        dp.megaflows_ref().len(),
        sp.megaflows_expired,
        sp.megaflows_revalidated,
        sp.megaflow_table_full,
        sp.execute_dropped,
        sp.xlate_errors,
        sp.packet_ins,
        sp.packet_in_dropped,
        sp.flow_table_full
    );
    if dp.ports().iter().any(|p| p.port.kind() == "gre") {
        let sum = |f: fn(&crate::datapath::pmd::PmdStatsSnapshot) -> u64| stats.iter().map(f).sum::<u64>();
        let _ = writeln!(
            s,
            "tunnels: encap {}, decap {}, waiting for a header {} (dropped {}), MTU drops {}, bad GRE {}, bad checksum {}, truncated {}, no port {}; underlay to slow path {}, dropped {}",
            sum(|p| p.tunnel_encap),
            sum(|p| p.tunnel_decap),
            sum(|p| p.tunnel_no_header),
            sum(|p| p.tunnel_pending_dropped),
            sum(|p| p.tunnel_mtu_dropped),
            sum(|p| p.tunnel_bad_gre),
            sum(|p| p.tunnel_bad_csum),
            sum(|p| p.tunnel_truncated),
            sum(|p| p.tunnel_no_port),
            sum(|p| p.underlay_to_slow_path),
            sum(|p| p.underlay_dropped)
        );
    }
    if dp.ports().iter().any(|p| p.port.kind() == "patch") {
        let _ = writeln!(
            s,
            "patch ports: recirculated {}, loops cut {}",
            stats.iter().map(|p| p.recirculated).sum::<u64>(),
            stats.iter().map(|p| p.recirc_loop_dropped).sum::<u64>()
        );
    }
    for b in bridges {
        let fdb = fdb_ref_of(dp, b.index).stats();
        let label = if bridges.len() == 1 { String::new() } else { format!(" ({})", b.name) };
        let _ = writeln!(
            s,
            "NORMAL{label}: learning events dropped {}, MAC table full {}, aged out {}, evicted {}, VLAN drops {}, multicast sources {}",
            dp.learn_dropped(),
            fdb.full,
            fdb.expired,
            fdb.evicted,
            stats.iter().map(|p| p.normal_vlan_dropped).sum::<u64>(),
            stats.iter().map(|p| p.normal_src_multicast).sum::<u64>()
        );
    }
    s
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctl::{lookup, Call};
    use crate::datapath::dpif::{DatapathConfig, DpBridge, DpLayout, DpPort};
    use crate::netdev::mem::MemPort;
    use crate::netdev::virt::VirtualPort;
    use crate::netdev::Port;
    use crate::ofproto::bridge::{BridgeConfig, PortMap};
    use crate::ofproto::connmgr::FailMode;
    use crate::ofproto::rule::PortNames;
    use crate::ofproto::table::Pipeline;
    use std::sync::Arc;

    /// Bridge `name` (index `index`) with ports (name, OpenFlow number, datapath number) and
    /// `flows` in its own numbers.
    fn bridge(dp: &mut Datapath, index: u16, name: &str, ports: &[(&str, u32, u32)], flows: &str) -> Bridge {
        let names: PortNames = ports.iter().map(|&(n, of, _)| (n, of)).collect();
        let mut pipeline = Pipeline::new();
        pipeline.add_flows_from_str(flows, &names, Duration::ZERO).unwrap();
        let map = PortMap::new(ports.iter().map(|&(_, of, d)| (of, DpPortNo(d))).collect());
        let cfg = BridgeConfig { fail_mode: FailMode::Secure, ..BridgeConfig::default() };
        Bridge::new(name, index, cfg, pipeline, names, map, dp)
    }

    fn call(tx: &crossbeam_channel::Sender<Call>, bridge: Option<&str>, argv: &[&str]) -> Response {
        let (reply, rx) = crossbeam_channel::bounded(1);
        let command = lookup(argv[0]).unwrap();
        let args = argv[1..].iter().map(|s| s.to_string()).collect();
        tx.send(Call { command, args, json: false, bridge: bridge.map(str::to_string), reply }).unwrap();
        rx.recv_timeout(Duration::from_secs(10)).unwrap()
    }

    #[test]
    fn bridges_translate_in_their_own_port_numbers_across_a_patch() {
        // Bridge A: a1 (OpenFlow 1, datapath 1), patch pa (2, 2).
        // Bridge B: patch pb (OpenFlow 1, datapath 3), b1 (OpenFlow 7, datapath 4).
        let (a1, b1) = (MemPort::new("a1", 1), MemPort::new("b1", 1));
        b1.capture(true);
        let ports = vec![
            DpPort { no: DpPortNo(1), port: Arc::new(a1.clone()) as Arc<dyn Port> },
            DpPort { no: DpPortNo(2), port: Arc::new(VirtualPort::patch("pa")) },
            DpPort { no: DpPortNo(3), port: Arc::new(VirtualPort::patch("pb")) },
            DpPort { no: DpPortNo(4), port: Arc::new(b1.clone()) },
        ];
        let layout = DpLayout {
            bridges: vec![DpBridge { mac_table_size: 64 }, DpBridge { mac_table_size: 64 }],
            port_bridge: vec![(DpPortNo(1), 0), (DpPortNo(2), 0), (DpPortNo(3), 1), (DpPortNo(4), 1)],
            patches: vec![(DpPortNo(2), DpPortNo(3)), (DpPortNo(3), DpPortNo(2))],
            ..DpLayout::default()
        };
        let mut dp = Datapath::start_layout(&DatapathConfig::default(), ports, layout).unwrap();
        let a = bridge(&mut dp, 0, "A", &[("a1", 1, 1), ("pa", 2, 2)], "in_port=1,actions=output:2");
        let b = bridge(&mut dp, 1, "B", &[("pb", 1, 3), ("b1", 7, 4)], "in_port=1,actions=output:7");
        let mut of = Ofproto::new(dp, vec![a, b]);
        assert_eq!(of.bridges().iter().map(|b| b.exact_in_port).collect::<Vec<_>>(), [true, true]);
        let (tx, calls) = crossbeam_channel::bounded(4);
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let t = std::thread::spawn(move || {
            of.run(&calls, &[], &stop2);
            of.shutdown();
        });
        let frame = crate::packet::build::udp4(&crate::packet::build::Udp4Spec::default());
        for _ in 0..3 {
            assert!(a1.inject(frame.clone()));
            std::thread::sleep(Duration::from_millis(50));
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while b1.stats().tx_packets < 3 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(b1.take_sent(), vec![frame.clone(), frame.clone(), frame]);
        // Each bridge credited its own rule; the first bridge is the default.
        let dump_a = call(&tx, None, &["dump-flows"]).body;
        assert!(dump_a.contains("n_packets=3") && dump_a.contains("in_port=1 actions=output:2"), "{dump_a}");
        let dump_b = call(&tx, Some("B"), &["dump-flows"]).body;
        assert!(dump_b.contains("n_packets=3") && dump_b.contains("in_port=1 actions=output:7"), "{dump_b}");
        // Two megaflows, each matching its datapath in_port exactly.
        let mf = call(&tx, None, &["dump-megaflows"]).body;
        assert_eq!(mf.lines().count(), 2, "{mf}");
        assert!(mf.contains("in_port=1,") && mf.contains("actions:2"), "{mf}");
        assert!(mf.contains("in_port=3,") && mf.contains("actions:4"), "{mf}");
        let list = call(&tx, None, &["bridge/list"]).body;
        assert!(list.contains("  7: b1 (datapath port 4)"), "{list}");
        let e = call(&tx, Some("C"), &["dump-flows"]);
        assert!(!e.ok && e.body.contains("C: no such bridge"), "{e:?}");
        let e = call(&tx, None, &["tnl/neigh-show"]);
        assert!(!e.ok && e.body.contains("no tunnels"), "{e:?}");
        stop.store(true, Relaxed);
        t.join().unwrap();
    }

    #[test]
    fn limits_count_flows_megaflows_and_mac_entries_hit_by_real_traffic() {
        use crate::ofproto::rule::FlowMod;
        use crate::ofproto::syntax::parse_flow;
        let (a1, b1) = (MemPort::new("a1", 1), MemPort::new("b1", 1));
        let ports = vec![
            DpPort { no: DpPortNo(1), port: Arc::new(a1.clone()) as Arc<dyn Port> },
            DpPort { no: DpPortNo(2), port: Arc::new(b1.clone()) },
        ];
        let dcfg = DatapathConfig { max_megaflows: 1, mac_table_size: 2, ..DatapathConfig::default() };
        let mut dp = Datapath::start(&dcfg, ports).unwrap();
        let names: PortNames = [("a1", 1), ("b1", 2)].into_iter().collect();
        let mut pipeline = Pipeline::new();
        let flows = "priority=10,udp,tp_dst=1,actions=NORMAL\npriority=5,actions=NORMAL\n";
        pipeline.add_flows_from_str(flows, &names, Duration::ZERO).unwrap();
        let cfg = BridgeConfig { fail_mode: FailMode::Secure, max_flows: 2, ..BridgeConfig::default() };
        let map = PortMap::new(vec![(1, DpPortNo(1)), (2, DpPortNo(2))]);
        let mut br = Bridge::new("br0", 0, cfg, pipeline, names.clone(), map, &mut dp);
        // A third rule does not fit table 0 (2 rules at most) and changes nothing.
        let third = FlowMod::add(parse_flow("priority=7,tcp,actions=drop", &names).unwrap());
        let e = br.model.flow_mod(third, &[1, 2], Duration::ZERO).unwrap_err();
        assert_eq!(e.code(), crate::ofp::ErrorCode::OFPFMFC_TABLE_FULL);
        assert_eq!(br.model.pipeline.n_rules(), 2);
        let mut of = Ofproto::new(dp, vec![br]);
        let (tx, calls) = crossbeam_channel::bounded(4);
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let t = std::thread::spawn(move || {
            of.run(&calls, &[], &stop2);
            of.shutdown();
        });
        // Four source MACs into a table of two; two destination ports, two megaflows into a
        // table of one.
        for i in 0..4u8 {
            let spec = crate::packet::build::Udp4Spec {
                src_mac: [2, 0, 0, 0, 0xaa, 1 + i],
                dport: 1 + u16::from(i % 2),
                ..crate::packet::build::Udp4Spec::default()
            };
            assert!(a1.inject(crate::packet::build::udp4(&spec)));
            std::thread::sleep(Duration::from_millis(30));
        }
        let hits = |text: &str, name: &str| -> u64 {
            text.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().last())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut text = String::new();
        while Instant::now() < deadline {
            text = call(&tx, None, &["limits"]).body;
            if hits(&text, "megaflows") > 0 && hits(&text, "mac-entries") >= 2 && b1.stats().tx_packets >= 4 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(hits(&text, "flows-per-table"), 1, "{text}");
        assert!(hits(&text, "megaflows") >= 1, "{text}");
        assert_eq!(hits(&text, "mac-entries"), 2, "{text}");
        assert_eq!(hits(&text, "upcall-queue"), 0, "{text}");
        let row = text.lines().find(|l| l.starts_with("flows-per-table")).unwrap();
        assert!(row.contains("br0") && row.contains("--max-flows") && row.contains(" 2 "), "{row}");
        // Every packet was still forwarded (flooded by NORMAL: the table has room for two).
        let stats = call(&tx, None, &["pmd-stats"]).body;
        assert!(stats.contains("flow adds refused (table full) 1"), "{stats}");
        assert_eq!(b1.stats().tx_packets, 4, "{stats}");
        stop.store(true, Relaxed);
        t.join().unwrap();
    }

    #[test]
    fn meters_are_namespaced_by_bridge() {
        assert_eq!(super::super::bridge::dp_meter_id(0, 5), 5);
        assert_eq!(super::super::bridge::dp_meter_id(2, 5), (2 << 24) | 5);
    }

    #[test]
    fn port_maps_convert_both_ways() {
        let m = PortMap::new(vec![(1, DpPortNo(4)), (DpPortNo::LOCAL.0, DpPortNo(9))]).with_tunnels(vec![1]);
        assert_eq!((m.to_dp(1), m.to_of(DpPortNo(9))), (Some(DpPortNo(4)), Some(DpPortNo::LOCAL.0)));
        assert_eq!((m.to_dp(2), m.to_of(DpPortNo(1))), (None, None));
        assert!(m.is_tunnel(1) && !m.is_tunnel(DpPortNo::LOCAL.0) && !m.is_identity());
        assert!(PortMap::identity([DpPortNo(1), DpPortNo::LOCAL]).is_identity());
    }

    struct NoSink;
    impl crate::ofproto::connmgr::ConnSink for NoSink {
        fn reply(&self, _: Vec<crate::ofp::Message>) {}
        fn send_async(&self, _: crate::ofp::Message) -> bool {
            true
        }
    }

    /// Standalone and failed open: a controller that connects ends fail-open mode at once, so
    /// the first request it sends (and the barrier after it) is served by the flow tables,
    /// not by the fallback learning switch of the next timer tick.
    #[test]
    fn a_controller_back_ends_fail_open_before_its_first_request() {
        use crate::ofproto::connmgr::{AgentEvent, ConnId, ConnType};
        let p1 = MemPort::new("p1", 1);
        let ports = vec![DpPort { no: DpPortNo(1), port: Arc::new(p1) as Arc<dyn Port> }];
        let mut dp = Datapath::start(&DatapathConfig::default(), ports).unwrap();
        let names: PortNames = [("p1", 1)].into_iter().collect();
        let cfg = BridgeConfig {
            fail_mode: FailMode::Standalone,
            has_controllers: true,
            fail_open_after: Duration::ZERO,
            ..BridgeConfig::default()
        };
        let map = PortMap::new(vec![(1, DpPortNo(1))]);
        let mut b = Bridge::new("br", 0, cfg, Pipeline::new(), names, map, &mut dp);
        b.run_timers(&mut dp);
        assert!(b.conns.is_fail_open(), "no controller ever connected: standalone fails open");
        let connected = |id| AgentEvent::Connected {
            id: ConnId(id),
            kind: ConnType::Primary,
            version: crate::ofp::OFP13_VERSION,
            peer: "127.0.0.1:6653".into(),
            sink: Box::new(NoSink),
        };
        // A service connection (ovs-ofctl) does not end it.
        b.handle_agent_event(
            &mut dp,
            AgentEvent::Connected {
                id: ConnId(9),
                kind: ConnType::Service,
                version: crate::ofp::OFP13_VERSION,
                peer: "127.0.0.1:40000".into(),
                sink: Box::new(NoSink),
            },
        );
        assert!(b.conns.is_fail_open());
        b.handle_agent_event(&mut dp, connected(1));
        assert!(!b.conns.is_fail_open(), "still failed open after a controller connected");
        // Gone again: the clock (zero here) decides at the next tick.
        b.handle_agent_event(&mut dp, AgentEvent::Disconnected { id: ConnId(1) });
        b.last_timers = None;
        b.run_timers(&mut dp);
        assert!(b.conns.is_fail_open());
        dp.shutdown();
    }
}
