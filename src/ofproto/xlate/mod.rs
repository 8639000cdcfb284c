//! Translation: run a packet key through the OpenFlow [`Pipeline`] and produce the datapath
//! actions for it, plus the megaflow mask: every bit of the key the result depended on.
//!
//! The walk starts at table 0 and runs each matching rule's instructions in the spec's order
//! (meter, apply-actions, clear-actions, write-actions, write-metadata, goto-table; OVS's
//! `resubmit` too). Actions apply to a working copy of the key (the packet as it is at that
//! point), so later decisions see earlier changes: `mod_vlan_vid` pushes a tag on an untagged
//! packet and rewrites the TCI of a tagged one; `strip_vlan` on an untagged packet does
//! nothing; `mod_nw_src` on a non-IPv4 packet is skipped; `output:N` with N the ingress port
//! is dropped (use `in_port`). When the pipeline ends, the action set runs in the order of
//! spec 5.10 (pop, push, dec TTL, set-field, set_queue, group, output; a group wins over an
//! output). A table miss sends the packet to the controller or drops it, per
//! [`XlateCtx::miss`].
//!
//! Groups: `all` runs every bucket on its own copy of the packet state, `indirect` its
//! bucket, `select` one live bucket by weight, chosen by a hash of the L2-L4 fields (which
//! go into the mask), `fast_failover` the first live bucket. Output to `CONTROLLER` becomes
//! `DpAction::Userspace(id)` with `id` naming a [`PacketInCtx`] in [`PacketInContexts`].
//!
//! **Soundness:** every key equal to the input under [`Translation::mask`] translates to the
//! same actions, rules and error. The mask is the union of the classifier masks of every
//! lookup plus the fields each decision read (dl_type and nw_proto for L3/L4 sets, vlan_tci
//! for push-vs-set, in_port for FLOOD/ALL/`in_port`/output-to-ingress and packet-in
//! permission, nw_ttl for `dec_ttl`, the L2-L4 fields for a select group's hash, tun_id for
//! an output to a tunnel port when no action set it, every field a `learn` read).
//!
//! `learn` ([`super::learn`]) computes a flow-mod from the packet as the actions so far have
//! made it; [`translate_learning`] returns those flow-mods beside the translation, for the
//! caller to apply once the pipeline is no longer borrowed.
//!
//! Ports: the key's `in_port` and every port a rule names are OpenFlow numbers; each
//! [`XPort`] maps its OpenFlow number to the datapath's, and output to a tunnel port becomes
//! `DpAction::Tunnel` with the low 32 bits of the packet's `tun_id` as the GRE key.

use std::collections::HashMap;

use crate::datapath::actions::DpAction;
use crate::datapath::flow::{FlowKey, FlowMask, FRAG_LATER, VLAN_PRESENT, VLAN_VID_MASK};
use crate::netdev::DpPortNo;

use super::group::{Bucket, GroupTable, GroupType};
use super::rule::{ofpp, FlowMod, OfAction, TableId};
use super::syntax::{ETH_IP, ETH_IPV6, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP};
use super::table::{Pipeline, Rule, RuleId};

/// Deepest chain of `resubmit`/`goto_table`/group followed (as OVS).
pub const MAX_DEPTH: usize = 64;
/// Most table lookups in one translation (bounds resubmit fan-out, as OVS).
pub const MAX_LOOKUPS: usize = 4096;

const VLAN_PCP_MASK: u16 = 0xe000;

/// `OFPPC_*` port config bits that change forwarding.
pub mod ofppc {
    /// The port is administratively down.
    pub const PORT_DOWN: u32 = 1 << 0;
    /// (OpenFlow 1.0) leave the port out of FLOOD.
    pub const NO_FLOOD: u32 = 1 << 4;
    /// Drop packets forwarded to the port.
    pub const NO_FWD: u32 = 1 << 5;
    /// No packet-ins for packets received on the port.
    pub const NO_PACKET_IN: u32 = 1 << 6;
}

/// A port as translation sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XPort {
    /// Its OpenFlow number (what rules match and name).
    pub no: u32,
    /// Its datapath number (what `DpAction::Output`/`Tunnel` name).
    pub dp: DpPortNo,
    /// `OFPPC_*` bits ([`ofppc`]).
    pub config: u32,
    /// Link up (fast-failover liveness; FLOOD skips dead ports).
    pub live: bool,
    /// A GRE tunnel port: output becomes `DpAction::Tunnel` with the packet's `tun_id`.
    pub tunnel: bool,
}

impl XPort {
    /// An up port with no config bits whose datapath number is its OpenFlow number.
    pub fn up(no: u32) -> XPort {
        XPort::new(no, DpPortNo(no), false)
    }
    /// An up port with no config bits: OpenFlow number `no`, datapath number `dp`.
    pub fn new(no: u32, dp: DpPortNo, tunnel: bool) -> XPort {
        XPort { no, dp, config: 0, live: true, tunnel }
    }
    fn is_live(&self) -> bool {
        self.live && self.config & ofppc::PORT_DOWN == 0
    }
}

/// What a table miss does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableMiss {
    /// Drop (OpenFlow 1.3 without a table-miss rule).
    Drop,
    /// Packet-in with reason `OFPR_NO_MATCH` (OpenFlow 1.0).
    Controller,
}

/// Everything translation reads besides the key.
#[derive(Clone, Copy, Debug)]
pub struct XlateCtx<'a> {
    /// The flow tables.
    pub pipeline: &'a Pipeline,
    /// The groups.
    pub groups: &'a GroupTable,
    /// The bridge's ports.
    pub ports: &'a [XPort],
    /// The OpenFlow number of the bridge's LOCAL port (`OFPP_LOCAL`; `None`: output to LOCAL
    /// drops). Output goes to the datapath number of the [`XPort`] with that number, or to the
    /// same number when `ports` has none.
    pub local_port: Option<u32>,
    /// Table-miss behaviour.
    pub miss: TableMiss,
    /// `max_len` of packet-ins for table misses and invalid TTLs (`miss_send_len`).
    pub miss_send_len: u16,
    /// Send packets whose TTL `dec_ttl` would expire to the controller
    /// (`OFPC_INVALID_TTL_TO_CONTROLLER`); otherwise they are dropped.
    pub invalid_ttl_to_controller: bool,
}

/// Why a packet goes to the controller (`OFPR_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PacketInReason {
    /// Output from a table-miss rule (priority 0, match-all).
    NoMatch,
    /// No rule at all matched and the miss goes to the controller (OpenFlow 1.0's implicit
    /// table miss): `OFPR_NO_MATCH` too, but only for connections below 1.3, which expect it.
    ImplicitMiss,
    /// An output-to-controller action.
    Action,
    /// `dec_ttl` on a packet with TTL 0 or 1.
    InvalidTtl,
}

impl PacketInReason {
    /// The `OFPR_*` number.
    pub fn number(self) -> u8 {
        match self {
            PacketInReason::NoMatch | PacketInReason::ImplicitMiss => 0,
            PacketInReason::Action => 1,
            PacketInReason::InvalidTtl => 2,
        }
    }
}

/// What the agent needs to build a packet-in besides the packet and its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PacketInCtx {
    /// Why.
    pub reason: PacketInReason,
    /// The table of the rule (or of the miss).
    pub table_id: TableId,
    /// The rule's cookie (all ones for a miss).
    pub cookie: u64,
    /// Bytes of the packet to include (`OFPCML_NO_BUFFER` 0xffff = all).
    pub max_len: u16,
    /// The pipeline metadata at that point (a function of the rules the packet hit, so
    /// contexts stay few; packet fields such as tun_id come from the packet's own key).
    pub metadata: u64,
}

/// Interned packet-in contexts: `DpAction::Userspace(id)` names one. Ids stay valid for
/// the life of the table (contexts are few: one per rule and reason at most).
#[derive(Clone, Debug, Default)]
pub struct PacketInContexts {
    ids: HashMap<PacketInCtx, u32>,
    all: Vec<PacketInCtx>,
}

impl PacketInContexts {
    /// None yet.
    pub fn new() -> PacketInContexts {
        PacketInContexts::default()
    }
    /// The id of `ctx`, allocating one the first time.
    pub fn intern(&mut self, ctx: PacketInCtx) -> u32 {
        if let Some(&id) = self.ids.get(&ctx) {
            return id;
        }
        let id = self.all.len() as u32;
        self.all.push(ctx);
        self.ids.insert(ctx, id);
        id
    }
    /// The context with id `id`.
    pub fn get(&self, id: u32) -> Option<&PacketInCtx> {
        self.all.get(id as usize)
    }
    /// How many there are.
    pub fn len(&self) -> usize {
        self.all.len()
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }
}

/// Why a translation was abandoned.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum XlateError {
    /// An action this build cannot execute yet.
    #[error("{action}: unsupported in this build")]
    Unsupported {
        /// The action, as `ovs-ofctl` writes it.
        action: &'static str,
    },
    /// `resubmit`/`goto_table`/group chains nested deeper than [`MAX_DEPTH`].
    #[error("resubmit/goto_table nested deeper than {MAX_DEPTH}")]
    TooDeep,
    /// More than [`MAX_LOOKUPS`] table lookups.
    #[error("more than {MAX_LOOKUPS} table lookups")]
    TooManyLookups,
}

/// The result of translating one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Translation {
    /// Datapath actions, in order; no `Output` = drop. Empty when `error` is set.
    pub actions: Vec<DpAction>,
    /// The megaflow mask: the bits of the key this translation depended on.
    pub mask: FlowMask,
    /// Every rule hit, in order (credit their counters with the megaflow's stats).
    pub rules: Vec<RuleId>,
    /// Every table lookup and the rule it hit (credit the table counters:
    /// [`Pipeline::credit_lookups`]).
    pub lookups: Vec<(TableId, Option<RuleId>)>,
    /// Every group the packet went through, then each bucket it took (`Some(index)`):
    /// credit with [`GroupTable::credit`].
    pub groups: Vec<(u32, Option<usize>)>,
    /// Every meter the packet went through, in order.
    pub meters: Vec<u32>,
    /// Set when translation was abandoned; the packet should be dropped (a drop megaflow
    /// with `mask` is sound).
    pub error: Option<XlateError>,
}

/// Translates `key` for the flows-file bridge: `ports` are all up, no groups, no LOCAL port,
/// table misses drop (packet-in contexts are discarded).
pub fn translate(pipeline: &Pipeline, key: &FlowKey, ports: &[u32]) -> Translation {
    translate_plain(pipeline, key, ports).0
}

/// [`translate`], and the flow-mods its `learn` actions computed.
pub fn translate_plain(pipeline: &Pipeline, key: &FlowKey, ports: &[u32]) -> (Translation, Vec<FlowMod>) {
    let xports: Vec<XPort> = ports.iter().map(|&p| XPort::up(p)).collect();
    let groups = GroupTable::new();
    let ctx = XlateCtx {
        pipeline,
        groups: &groups,
        ports: &xports,
        local_port: None,
        miss: TableMiss::Drop,
        miss_send_len: 128,
        invalid_ttl_to_controller: false,
    };
    translate_learning(&ctx, &mut PacketInContexts::new(), key)
}

/// Translates the packet with key `key` through the pipeline (the flows `learn` actions
/// compute are dropped: see [`translate_learning`]).
pub fn translate_with(ctx: &XlateCtx<'_>, pins: &mut PacketInContexts, key: &FlowKey) -> Translation {
    translate_learning(ctx, pins, key).0
}

/// Translates the packet with key `key` through the pipeline, and returns with it the
/// flow-mods its `learn` actions computed, in execution order (none when translation
/// failed). Apply them after the translation (the pipeline is borrowed during it); each is
/// an add that replaces the flow with the same match and priority, so its timeouts start
/// again. The translation's mask covers every packet field they were computed from.
pub fn translate_learning(
    ctx: &XlateCtx<'_>,
    pins: &mut PacketInContexts,
    key: &FlowKey,
) -> (Translation, Vec<FlowMod>) {
    let mut cx = Ctx::new(ctx, pins, key);
    cx.run_pipeline(0, 0);
    cx.finish_learning()
}

/// Translates an `OFPT_PACKET_OUT`: `actions` run as an apply-actions list on the packet
/// with key `key` (`key.in_port` may be `OFPP_CONTROLLER`); `output:TABLE`
/// (`OfAction::Output(ofpp::TABLE)`) runs it through the pipeline from table 0.
pub fn translate_packet_out(
    ctx: &XlateCtx<'_>,
    pins: &mut PacketInContexts,
    key: &FlowKey,
    actions: &[OfAction],
) -> Translation {
    translate_packet_out_learning(ctx, pins, key, actions).0
}

/// [`translate_packet_out`], also returning the flows its `learn` actions computed (as
/// [`translate_learning`]).
pub fn translate_packet_out_learning(
    ctx: &XlateCtx<'_>,
    pins: &mut PacketInContexts,
    key: &FlowKey,
    actions: &[OfAction],
) -> (Translation, Vec<FlowMod>) {
    let mut cx = Ctx::new(ctx, pins, key);
    cx.packet_out = true;
    let at = At { table: 0, cookie: u64::MAX, miss_rule: false };
    for a in actions {
        if cx.stop {
            break;
        }
        cx.action(a, at, 0);
    }
    cx.finish_learning()
}

/// Where an action comes from (for packet-ins and `resubmit`).
#[derive(Clone, Copy)]
struct At {
    table: TableId,
    cookie: u64,
    /// The rule is a table-miss rule (priority 0, matches everything).
    miss_rule: bool,
}

struct Ctx<'a, 'p> {
    x: &'a XlateCtx<'a>,
    pins: &'p mut PacketInContexts,
    /// The packet as the actions so far have made it.
    key: FlowKey,
    /// The real ingress port (OpenFlow number).
    in_port: u32,
    /// `tun_id` was set by an action: `key.tun_id` no longer comes from the packet.
    tun_id_set: bool,
    mask: FlowMask,
    actions: Vec<DpAction>,
    rules: Vec<RuleId>,
    lookups: Vec<(TableId, Option<RuleId>)>,
    groups: Vec<(u32, Option<usize>)>,
    meters: Vec<u32>,
    /// Flow-mods computed by `learn` actions.
    learned: Vec<FlowMod>,
    /// The action set (one action per type).
    set: Vec<OfAction>,
    error: Option<XlateError>,
    /// Fields written since the innermost group bucket began ([`dirty`] bits).
    dirty: u8,
    /// Set to end the whole translation (error, or `dec_ttl` killed the packet).
    stop: bool,
    packet_out: bool,
}

impl<'a, 'p> Ctx<'a, 'p> {
    fn new(x: &'a XlateCtx<'a>, pins: &'p mut PacketInContexts, key: &FlowKey) -> Self {
        Ctx {
            x,
            pins,
            key: *key,
            in_port: key.in_port,
            tun_id_set: false,
            mask: FlowMask::catchall(),
            actions: Vec::new(),
            rules: Vec::new(),
            lookups: Vec::new(),
            groups: Vec::new(),
            meters: Vec::new(),
            learned: Vec::new(),
            set: Vec::new(),
            error: None,
            dirty: 0,
            stop: false,
            packet_out: false,
        }
    }

    fn finish_learning(self) -> (Translation, Vec<FlowMod>) {
        let Ctx { mut actions, mask, rules, lookups, groups, meters, error, mut learned, .. } = self;
        if error.is_some() {
            actions.clear();
            learned.clear();
        }
        (Translation { actions, mask, rules, lookups, groups, meters, error }, learned)
    }

    fn fail(&mut self, e: XlateError) {
        self.error.get_or_insert(e);
        self.stop = true;
    }

    fn port(&self, no: u32) -> Option<&'a XPort> {
        self.x.ports.iter().find(|p| p.no == no)
    }

    /// Runs the pipeline from `table` with an empty action set, then executes the set.
    fn run_pipeline(&mut self, table: TableId, depth: usize) {
        let saved = std::mem::take(&mut self.set);
        let hit = self.run_table(table, None, depth);
        let set = std::mem::replace(&mut self.set, saved);
        // A miss ends the pipeline without executing the action set (spec 5.4, 5.10).
        if hit && !self.stop {
            self.execute_set(set, At { table, cookie: u64::MAX, miss_rule: false }, depth);
        }
    }

    /// Looks the packet up in `table` (as if received on `in_port`, if given) and runs the
    /// rule's instructions. Returns false when the pipeline ended in a table miss (here or
    /// after a goto).
    fn run_table(&mut self, table: TableId, in_port: Option<u32>, depth: usize) -> bool {
        if self.stop {
            return false;
        }
        if depth > MAX_DEPTH {
            self.fail(XlateError::TooDeep);
            return false;
        }
        if self.lookups.len() >= MAX_LOOKUPS {
            self.fail(XlateError::TooManyLookups);
            return false;
        }
        let saved = self.key.in_port;
        if let Some(p) = in_port {
            self.key.in_port = p;
        }
        let pipeline = self.x.pipeline;
        let (rule, m) = pipeline.table(table).lookup(&self.key);
        self.key.in_port = saved;
        self.mask = self.mask.union(&m);
        self.lookups.push((table, rule.map(|r| r.id)));
        let Some(rule) = rule else {
            if self.x.miss == TableMiss::Controller {
                let max_len = self.x.miss_send_len;
                self.packet_in(PacketInReason::ImplicitMiss, table, u64::MAX, max_len);
            }
            return false;
        };
        self.rules.push(rule.id);
        self.run_rule(rule, depth)
    }

    /// Runs a rule's instructions; false if a goto from it ended in a miss.
    fn run_rule(&mut self, rule: &'a Rule, depth: usize) -> bool {
        let at = At {
            table: rule.table,
            cookie: rule.cookie,
            miss_rule: rule.priority == 0 && *rule.matches.mask() == FlowMask::catchall(),
        };
        if let Some(m) = rule.meter {
            self.meters.push(m);
            self.actions.push(DpAction::Meter(m));
        }
        for a in &rule.actions {
            if self.stop {
                return false;
            }
            self.action(a, at, depth);
        }
        if rule.clear_actions {
            self.set.clear();
        }
        if let Some(w) = &rule.write_actions {
            for a in w {
                write_to_set(&mut self.set, a);
            }
        }
        if let Some((v, m)) = rule.write_metadata {
            self.key.metadata = (self.key.metadata & !m) | (v & m);
        }
        match rule.goto_table {
            Some(g) => self.run_table(g, None, depth + 1),
            None => true,
        }
    }

    /// Executes an action set in the order of spec 5.10.
    fn execute_set(&mut self, mut set: Vec<OfAction>, at: At, depth: usize) {
        set.sort_by_key(set_rank);
        let has_group = set.iter().any(|a| matches!(a, OfAction::Group(_)));
        for a in &set {
            if self.stop {
                return;
            }
            if has_group && a.is_output() {
                continue;
            }
            self.action(a, at, depth);
        }
    }

    fn packet_in(&mut self, reason: PacketInReason, table_id: TableId, cookie: u64, max_len: u16) {
        self.examine_in_port();
        if self.port(self.in_port).is_some_and(|p| p.config & ofppc::NO_PACKET_IN != 0) {
            return;
        }
        // The context carries the metadata: it is part of the decision.
        self.mask.0.metadata = !0;
        let ctx = PacketInCtx { reason, table_id, cookie, max_len, metadata: self.key.metadata };
        let id = self.pins.intern(ctx);
        self.actions.push(DpAction::Userspace(id));
    }

    fn examine_in_port(&mut self) {
        self.mask.0.in_port = !0;
    }

    fn is_ip_any(&mut self) -> bool {
        self.mask.0.dl_type = !0;
        matches!(self.key.dl_type, ETH_IP | ETH_IPV6)
    }

    fn is_ipv4(&mut self) -> bool {
        self.mask.0.dl_type = !0;
        self.key.dl_type == ETH_IP
    }

    fn is_ipv6(&mut self) -> bool {
        self.mask.0.dl_type = !0;
        self.key.dl_type == ETH_IPV6
    }

    /// TCP/UDP/SCTP with a transport header (not a later fragment).
    fn has_ports(&mut self) -> bool {
        if !self.is_ip_any() {
            return false;
        }
        self.mask.0.nw_proto = !0;
        self.mask.0.nw_frag |= FRAG_LATER;
        matches!(self.key.nw_proto, IPPROTO_TCP | IPPROTO_UDP | IPPROTO_SCTP)
            && self.key.nw_frag & FRAG_LATER == 0
    }

    fn is_tagged(&mut self) -> bool {
        self.mask.0.vlan_tci |= VLAN_PRESENT;
        self.key.vlan_tci & VLAN_PRESENT != 0
    }

    /// Output to OpenFlow port `port` unless it is the ingress port or refuses forwarding.
    fn output(&mut self, port: u32) {
        let Some(p) = self.port(port) else { return };
        self.examine_in_port();
        if port != self.in_port && p.config & ofppc::NO_FWD == 0 {
            self.emit_output(p);
        }
    }

    /// The datapath action that sends the packet out of `p`: a plain output, or for a
    /// tunnel port an encapsulation with the packet's `tun_id` at this point (the key's own
    /// unless an action set it, and then the mask covers it).
    fn emit_output(&mut self, p: &XPort) {
        if p.tunnel {
            if !self.tun_id_set {
                self.mask.0.tun_id = !0;
            }
            self.actions.push(DpAction::Tunnel { port: p.dp, key: self.key.tun_id as u32 });
        } else {
            self.actions.push(DpAction::Output(p.dp));
        }
    }

    /// Sets the VLAN TCI bits in `bits` (under `which`), pushing a tag if there is none.
    fn set_vlan(&mut self, bits: u16, which: u16) {
        self.dirty |= dirty::VLAN;
        if self.is_tagged() {
            // The new TCI keeps the other bits of the packet's tag.
            self.mask.0.vlan_tci |= !which & !VLAN_PRESENT;
            let tci = (self.key.vlan_tci & !which) | (bits & which) | VLAN_PRESENT;
            self.key.vlan_tci = tci;
            self.actions.push(DpAction::SetVlanTci(tci & !VLAN_PRESENT));
        } else {
            let tci = (bits & which) | VLAN_PRESENT;
            self.key.vlan_tci = tci;
            self.actions.push(DpAction::PushVlan { tpid: 0x8100, tci: tci & !VLAN_PRESENT });
        }
    }

    fn action(&mut self, a: &OfAction, at: At, depth: usize) {
        match *a {
            OfAction::Output(ofpp::TABLE) if self.packet_out => self.run_pipeline(0, depth + 1),
            OfAction::Output(p) => self.output(p),
            OfAction::InPort => {
                self.examine_in_port();
                if let Some(p) = self.port(self.in_port) {
                    if self.in_port < ofpp::MAX && p.config & ofppc::NO_FWD == 0 {
                        self.emit_output(p);
                    }
                }
            }
            OfAction::Flood | OfAction::All => {
                self.examine_in_port();
                let flood = matches!(a, OfAction::Flood);
                for p in self.x.ports {
                    let skip = p.no == self.in_port
                        || p.config & ofppc::NO_FWD != 0
                        || (flood && (!p.is_live() || p.config & ofppc::NO_FLOOD != 0));
                    if !skip {
                        self.emit_output(p);
                    }
                }
            }
            OfAction::Local => {
                if let Some(l) = self.x.local_port {
                    self.examine_in_port();
                    if l != self.in_port {
                        match self.port(l) {
                            Some(p) => self.emit_output(p),
                            None => self.actions.push(DpAction::Output(DpPortNo(l))),
                        }
                    }
                }
            }
            OfAction::Controller { max_len } => {
                let reason = if at.miss_rule { PacketInReason::NoMatch } else { PacketInReason::Action };
                self.packet_in(reason, at.table, at.cookie, max_len);
            }
            // The L2 switch runs per packet in the fast path (MAC table lookups and learning
            // there), so the megaflow depends on no address field.
            OfAction::Normal => self.actions.push(DpAction::Normal),
            OfAction::SetTunId(t) => {
                self.key.tun_id = t;
                self.tun_id_set = true;
            }
            OfAction::SetEthSrc(m) => {
                self.key.dl_src = m;
                self.dirty |= dirty::ETH_SRC;
                self.actions.push(DpAction::SetEthSrc(m));
            }
            OfAction::SetEthDst(m) => {
                self.key.dl_dst = m;
                self.dirty |= dirty::ETH_DST;
                self.actions.push(DpAction::SetEthDst(m));
            }
            OfAction::SetIpv4Src(ip) => {
                if self.is_ipv4() {
                    self.key.nw_src[..4].copy_from_slice(&ip);
                    self.dirty |= dirty::NW_ADDR;
                    self.actions.push(DpAction::SetIpv4Src(ip));
                }
            }
            OfAction::SetIpv4Dst(ip) => {
                if self.is_ipv4() {
                    self.key.nw_dst[..4].copy_from_slice(&ip);
                    self.dirty |= dirty::NW_ADDR;
                    self.actions.push(DpAction::SetIpv4Dst(ip));
                }
            }
            OfAction::SetIpv6Src(ip) => {
                if self.is_ipv6() {
                    self.key.nw_src = ip;
                    self.dirty |= dirty::NW_ADDR;
                    self.actions.push(DpAction::SetIpv6Src(ip));
                }
            }
            OfAction::SetIpv6Dst(ip) => {
                if self.is_ipv6() {
                    self.key.nw_dst = ip;
                    self.dirty |= dirty::NW_ADDR;
                    self.actions.push(DpAction::SetIpv6Dst(ip));
                }
            }
            OfAction::SetNwTos(tos) => {
                if self.is_ip_any() {
                    self.key.nw_tos = (self.key.nw_tos & 0x03) | (tos & 0xfc);
                    self.dirty |= dirty::TOS;
                    self.actions.push(DpAction::SetIpDscp(tos >> 2));
                }
            }
            OfAction::SetNwTtl(ttl) => {
                if self.is_ip_any() {
                    self.key.nw_ttl = ttl;
                    self.dirty |= dirty::TTL;
                    self.actions.push(DpAction::SetIpTtl(ttl));
                }
            }
            OfAction::DecTtl => {
                if self.is_ip_any() {
                    self.mask.0.nw_ttl = !0;
                    if self.key.nw_ttl <= 1 {
                        // The packet goes no further; the controller hears of it if it asked.
                        if self.x.invalid_ttl_to_controller {
                            let max_len = self.x.miss_send_len;
                            self.packet_in(PacketInReason::InvalidTtl, at.table, at.cookie, max_len);
                        }
                        self.stop = true;
                    } else {
                        self.key.nw_ttl -= 1;
                        self.dirty |= dirty::TTL;
                        self.actions.push(DpAction::DecIpTtl);
                    }
                }
            }
            OfAction::SetTpSrc(p) => {
                if self.has_ports() {
                    self.key.tp_src = p;
                    self.dirty |= dirty::TP_SRC;
                    self.actions.push(DpAction::SetTpSrc(p));
                }
            }
            OfAction::SetTpDst(p) => {
                if self.has_ports() {
                    self.key.tp_dst = p;
                    self.dirty |= dirty::TP_DST;
                    self.actions.push(DpAction::SetTpDst(p));
                }
            }
            OfAction::PushVlan(tpid) => {
                if self.is_tagged() {
                    self.fail(XlateError::Unsupported { action: "push_vlan on a tagged packet" });
                } else {
                    self.key.vlan_tci = VLAN_PRESENT;
                    self.dirty |= dirty::VLAN;
                    self.actions.push(DpAction::PushVlan { tpid, tci: 0 });
                }
            }
            OfAction::SetVlanVid(vid) => self.set_vlan(vid, VLAN_VID_MASK),
            OfAction::SetVlanPcp(pcp) => self.set_vlan((pcp as u16) << 13, VLAN_PCP_MASK),
            OfAction::StripVlan => {
                if self.is_tagged() {
                    self.key.vlan_tci = 0;
                    self.dirty |= dirty::VLAN;
                    self.actions.push(DpAction::PopVlan);
                }
            }
            OfAction::SetMetadata(v) => self.key.metadata = v,
            // One queue per port: the queue changes nothing here.
            OfAction::SetQueue(_) => {}
            OfAction::Group(g) => self.group(g, at, depth + 1),
            // The new flow comes from the packet as the actions so far have made it; every
            // field read goes into the mask.
            OfAction::Learn(ref l) => {
                if let Some(fm) = l.execute(&self.key, &mut self.mask) {
                    self.learned.push(fm);
                }
            }
            OfAction::Resubmit { in_port, table: t } => {
                let in_port = in_port.filter(|&p| p != ofpp::IN_PORT);
                // A resubmit that misses just returns (OVS semantics).
                self.run_table(t.unwrap_or(at.table), in_port, depth + 1);
            }
        }
    }

    fn group(&mut self, id: u32, at: At, depth: usize) {
        if depth > MAX_DEPTH {
            return self.fail(XlateError::TooDeep);
        }
        let groups = self.x.groups;
        // A group deleted since the rule was checked: drop, as for a miss.
        let Some(g) = groups.get(id) else { return };
        self.groups.push((id, None));
        let ports = self.x.ports;
        let port_live = |no: u32| ports.iter().any(|p| p.no == no && p.is_live());
        let live = |b: &Bucket| groups.bucket_live(b, &port_live, MAX_DEPTH);
        match g.group_type {
            GroupType::All => {
                for (i, b) in g.buckets.iter().enumerate() {
                    self.bucket(id, i, b, at, depth);
                }
            }
            GroupType::Indirect => {
                if let Some(b) = g.buckets.first() {
                    self.bucket(id, 0, b, at, depth);
                }
            }
            GroupType::FastFailover => {
                if let Some((i, b)) = g.buckets.iter().enumerate().find(|(_, b)| live(b)) {
                    self.bucket(id, i, b, at, depth);
                }
            }
            GroupType::Select => {
                let total: u64 = g.buckets.iter().filter(|b| live(b)).map(|b| u64::from(b.weight)).sum();
                if total == 0 {
                    return;
                }
                let mut pick = u64::from(self.select_hash()) % total;
                for (i, b) in g.buckets.iter().enumerate() {
                    if !live(b) {
                        continue;
                    }
                    let w = u64::from(b.weight);
                    if pick < w {
                        self.bucket(id, i, b, at, depth);
                        break;
                    }
                    pick -= w;
                }
            }
        }
    }

    /// Runs bucket `i` of `group` on a copy of the packet: afterwards the packet is as
    /// before (the changes the bucket made are undone in the datapath actions).
    fn bucket(&mut self, group: u32, i: usize, b: &Bucket, at: At, depth: usize) {
        self.groups.push((group, Some(i)));
        let (saved, saved_dirty) = (self.key, std::mem::take(&mut self.dirty));
        let saved_tun_id_set = self.tun_id_set;
        self.execute_set(b.actions.clone(), at, depth);
        if !self.stop {
            self.restore(&saved);
            // tun_id is metadata: no datapath action to undo, the key copy is enough.
            self.tun_id_set = saved_tun_id_set;
        }
        self.dirty |= saved_dirty;
    }

    /// Emits the datapath actions that take the packet from `self.key` back to `old`; the
    /// fields restored go into the mask (their old values came from the packet).
    fn restore(&mut self, old: &FlowKey) {
        let new = self.key;
        let d = self.dirty;
        if d & dirty::ETH_SRC != 0 {
            self.mask.0.dl_src = [0xff; 6];
            if new.dl_src != old.dl_src {
                self.actions.push(DpAction::SetEthSrc(old.dl_src));
            }
        }
        if d & dirty::ETH_DST != 0 {
            self.mask.0.dl_dst = [0xff; 6];
            if new.dl_dst != old.dl_dst {
                self.actions.push(DpAction::SetEthDst(old.dl_dst));
            }
        }
        if d & dirty::NW_ADDR != 0 {
            self.mask.0.nw_src = [0xff; 16];
            self.mask.0.nw_dst = [0xff; 16];
            if new.nw_src != old.nw_src || new.nw_dst != old.nw_dst {
                if old.dl_type == ETH_IP {
                    self.actions.push(DpAction::SetIpv4Src(old.ipv4_src()));
                    self.actions.push(DpAction::SetIpv4Dst(old.ipv4_dst()));
                } else {
                    self.actions.push(DpAction::SetIpv6Src(old.nw_src));
                    self.actions.push(DpAction::SetIpv6Dst(old.nw_dst));
                }
            }
        }
        if d & dirty::TOS != 0 {
            self.mask.0.nw_tos |= 0xfc;
            if new.nw_tos != old.nw_tos {
                self.actions.push(DpAction::SetIpDscp(old.nw_tos >> 2));
            }
        }
        if d & dirty::TTL != 0 {
            self.mask.0.nw_ttl = !0;
            if new.nw_ttl != old.nw_ttl {
                self.actions.push(DpAction::SetIpTtl(old.nw_ttl));
            }
        }
        if d & dirty::TP_SRC != 0 {
            self.mask.0.tp_src = !0;
            if new.tp_src != old.tp_src {
                self.actions.push(DpAction::SetTpSrc(old.tp_src));
            }
        }
        if d & dirty::TP_DST != 0 {
            self.mask.0.tp_dst = !0;
            if new.tp_dst != old.tp_dst {
                self.actions.push(DpAction::SetTpDst(old.tp_dst));
            }
        }
        if d & dirty::VLAN != 0 {
            self.mask.0.vlan_tci = !0;
            let (was, is) = (old.vlan_tci & VLAN_PRESENT != 0, new.vlan_tci & VLAN_PRESENT != 0);
            match (was, is) {
                (true, true) if new.vlan_tci != old.vlan_tci => {
                    self.actions.push(DpAction::SetVlanTci(old.vlan_tci & !VLAN_PRESENT))
                }
                (true, false) => {
                    self.actions.push(DpAction::PushVlan { tpid: 0x8100, tci: old.vlan_tci & !VLAN_PRESENT })
                }
                (false, true) => self.actions.push(DpAction::PopVlan),
                _ => {}
            }
        }
        self.key = *old;
    }

    /// A hash of the packet's L2-L4 fields (a select group's choice); the fields go into the
    /// mask.
    fn select_hash(&mut self) -> u32 {
        let mut m = FlowMask::catchall();
        m.0.dl_src = [0xff; 6];
        m.0.dl_dst = [0xff; 6];
        m.0.dl_type = !0;
        m.0.vlan_tci = VLAN_VID_MASK | VLAN_PRESENT;
        m.0.nw_src = [0xff; 16];
        m.0.nw_dst = [0xff; 16];
        m.0.nw_proto = !0;
        m.0.tp_src = !0;
        m.0.tp_dst = !0;
        self.mask = self.mask.union(&m);
        self.key.hash_masked(&m)
    }
}

/// Packet fields a bucket may change and must then restore.
mod dirty {
    pub const ETH_SRC: u8 = 1 << 0;
    pub const ETH_DST: u8 = 1 << 1;
    pub const NW_ADDR: u8 = 1 << 2;
    pub const TOS: u8 = 1 << 3;
    pub const TTL: u8 = 1 << 4;
    pub const TP_SRC: u8 = 1 << 5;
    pub const TP_DST: u8 = 1 << 6;
    pub const VLAN: u8 = 1 << 7;
}

/// Position in the action set's execution order (spec 5.10).
fn set_rank(a: &OfAction) -> u8 {
    match a {
        OfAction::StripVlan => 1,
        OfAction::PushVlan(_) => 2,
        OfAction::DecTtl => 3,
        OfAction::SetQueue(_) => 5,
        OfAction::Group(_) => 6,
        a if a.is_output() => 7,
        _ => 4,
    }
}

/// Adds `a` to an action set, replacing the action of the same type (all outputs are one
/// type; each set-field field is its own).
pub fn write_to_set(set: &mut Vec<OfAction>, a: &OfAction) {
    let same = |b: &OfAction| {
        (a.is_output() && b.is_output()) || std::mem::discriminant(a) == std::mem::discriminant(b)
    };
    set.retain(|b| !same(b));
    set.push(a.clone());
}

#[cfg(test)]
mod tests;
