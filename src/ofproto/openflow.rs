//! OpenFlow requests, served on the bridge's control thread: each request from a connection
//! is answered (or refused with the `OFPT_ERROR` the spec names) in arrival order, and a
//! failed request changes nothing.
//!
//! Barrier: flow-table changes mark the megaflows dirty; before a barrier reply (and after
//! each batch of requests) the bridge re-translates every megaflow that could be affected and
//! publishes, and `publish` returns only when no poll thread can see the old version. So a
//! barrier reply means every earlier flow-mod is in effect on every poll thread.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::datapath::actions::DpAction;
use crate::datapath::dpif::Datapath;
use crate::datapath::extract::extract;
use crate::datapath::flow::FlowKey;
use crate::datapath::meter::{MeterConfig, MeterUnit};
use crate::datapath::normal::{NormalPorts, PortVlan};
use crate::datapath::upcall::PacketIn as DpPacketIn;
use crate::netdev::DpPortNo;
use crate::ofp::multipart::{
    table_feature_prop_type as tfp, AggregateStats, Desc, MultipartReplyBody as MpRep,
    MultipartRequestBody as MpReq, PortStats, TableFeatureProp, TableFeatures,
};
use crate::ofp::oxm::OxmField;
use crate::ofp::port::{OFPP_ANY, OFP_NO_BUFFER};
use crate::ofp::v10::{StatsReplyBody as V10Rep, StatsRequestBody as V10Req};
use crate::ofp::{self, v10, Body, ErrorCode, Message, Xid, OFP10_VERSION};

use super::connmgr::{AsyncConfig, AsyncKind};
use super::convert;
use super::group::{Bucket, GroupMod, GroupModCommand, GroupType};
use super::meter::{Band, BandKind, MeterMod, MeterModCommand};
use super::rule::{FlowMod, FlowModCommand, OfAction};
use super::table::{RemovedReason, Rule};
use super::xlate::{ofppc, translate_packet_out_learning, PacketInReason, XlateCtx};
use super::Error;

use super::bridge::{dp_meter_id, fdb_of, set_normal_ports, Bridge};
use super::connmgr::{AgentEvent, ConnId, ConnType};

/// What the switch says it is (`OFPMP_DESC`).
pub const MFR_DESC: &str = "xdpswitch project";
pub const HW_DESC: &str = "xdpswitch AF_XDP userspace datapath";
pub const SW_DESC: &str = env!("CARGO_PKG_VERSION");

/// The `OFPT_ERROR` answering `request` with `code`, echoing up to 64 bytes of it.
pub fn error_reply(request: &Message, code: ErrorCode) -> Message {
    let mut data = Vec::new();
    let _ = ofp::encode(request, &mut data);
    data.truncate(ofp::error::ERROR_DATA_LEN);
    let (type_, code) = code.wire(request.version);
    Message {
        version: request.version,
        xid: request.xid,
        body: Body::Error(ofp::Error { type_, code, data }),
    }
}

/// A reply to `request` with `body`.
pub fn reply(request: &Message, body: Body) -> Message {
    Message { version: request.version, xid: request.xid, body }
}

impl Bridge {
    /// Handles one event from the agent.
    pub fn handle_agent_event(&mut self, dp: &mut Datapath, ev: AgentEvent) {
        match ev {
            AgentEvent::Connected { id, kind, version, peer, sink } => {
                // Controllers are news; an ovs-ofctl command coming and going is not.
                if kind == ConnType::Primary {
                    tracing::info!(conn = id.0, version, %peer, "controller connected");
                } else {
                    tracing::debug!(conn = id.0, version, %peer, "OpenFlow client connected");
                }
                self.conns.connect(id, kind, version, peer, sink);
                // Table misses may now go to this controller (OpenFlow 1.0).
                self.dirty = true;
                // A controller back ends fail-open mode now, not at the next timer tick: its
                // first barrier reply then already means "forwarding by the flow tables".
                self.run_fail_mode();
            }
            AgentEvent::Disconnected { id } => {
                if let Some(c) = self.conns.disconnect(id, Instant::now()) {
                    if c.kind == ConnType::Primary {
                        tracing::warn!(conn = id.0, peer = %c.peer, "controller disconnected");
                    } else {
                        tracing::debug!(conn = id.0, peer = %c.peer, "OpenFlow client disconnected");
                    }
                }
                self.dirty = true;
            }
            AgentEvent::Message { id, msg } => {
                let replies = match self.handle_request(dp, id, &msg) {
                    Ok(r) => r,
                    Err(code) => {
                        tracing::debug!(conn = id.0, xid = msg.xid.0, error = code.name(), "request refused");
                        vec![error_reply(&msg, code)]
                    }
                };
                if !replies.is_empty() {
                    if let Some(c) = self.conns.get(id) {
                        c.reply(replies);
                    }
                }
            }
        }
    }

    /// Serves one request; `Ok` holds the replies (possibly none), `Err` the error to send.
    fn handle_request(
        &mut self,
        dp: &mut Datapath,
        id: ConnId,
        msg: &Message,
    ) -> Result<Vec<Message>, ErrorCode> {
        let Some(conn) = self.conns.get(id) else { return Ok(Vec::new()) };
        let v10 = msg.version == OFP10_VERSION;
        if is_write(&msg.body) {
            conn.check_writable()?;
        }
        let one = |body| Ok(vec![reply(msg, body)]);
        match &msg.body {
            Body::FeaturesRequest => one(self.features_reply(dp, msg.version)),
            Body::GetConfigRequest => one(Body::GetConfigReply(ofp::SwitchConfig {
                flags: conn.config_flags,
                miss_send_len: conn.miss_send_len,
            })),
            Body::SetConfig(c) => {
                if let Some(conn) = self.conns.get_mut(id) {
                    conn.config_flags = c.flags;
                    conn.miss_send_len = c.miss_send_len;
                }
                self.dirty = true;
                Ok(Vec::new())
            }
            Body::BarrierRequest => {
                self.flush_changes(dp);
                one(Body::BarrierReply)
            }
            Body::RoleRequest(r) if !v10 => {
                let (role, generation_id) = self.conns.role_request(id, r.role, r.generation_id)?;
                one(Body::RoleReply(ofp::Role { role: role.wire(), generation_id }))
            }
            Body::EchoRequest(d) => one(Body::EchoReply(d.clone())),
            Body::Hello(_) | Body::EchoReply(_) | Body::BarrierReply | Body::Error(_) => Ok(Vec::new()),
            _ => self.handle_model_request(dp, id, msg),
        }
    }
}

/// Messages that change the switch's state, which a slave may not send.
fn is_write(body: &Body) -> bool {
    matches!(
        body,
        Body::FlowMod(_)
            | Body::PacketOut(_)
            | Body::GroupMod(_)
            | Body::PortMod(_)
            | Body::TableMod(_)
            | Body::MeterMod(_)
            | Body::V10(
                ofp::v10::Body::FlowMod(_) | ofp::v10::Body::PacketOut(_) | ofp::v10::Body::PortMod(_)
            )
    )
}

/// OFPPC_* bits that the bridge keeps itself (the others are the datapath's: PORT_DOWN, NO_RECV).
const XPORT_CONFIG: u32 = ofppc::NO_FLOOD | ofppc::NO_FWD | ofppc::NO_PACKET_IN;
/// `OFPPC_NO_RECV`: the datapath drops what the port receives.
const OFPPC_NO_RECV: u32 = 1 << 2;
/// `OFPPS_LINK_DOWN`, `OFPPS_LIVE`.
const OFPPS_LINK_DOWN: u32 = 1;
const OFPPS_LIVE: u32 = 4;
/// `OFPPF_10GB_FD | OFPPF_COPPER`, what veth and tap report (OVS says the same).
const OFPPF_10GB_FD: u32 = 1 << 6;
const OFPPF_COPPER: u32 = 1 << 11;

/// The same in OpenFlow 1.0's numbering (`OFPPF_10GB_FD | OFPPF_COPPER`).
const V10_CURR: u32 = (1 << 6) | (1 << 7);

/// Tables announced to controllers (`0..254`, as Open vSwitch).
pub const N_OF_TABLES: u8 = 254;

/// OpenFlow 1.0 `OFPAT_*` action bits the switch carries out: output, set VLAN VID/PCP,
/// strip VLAN, set DL src/dst, set NW src/dst/TOS, set TP src/dst (no enqueue).
const V10_ACTIONS: u32 = (1 << 11) - 1;

/// A packet-in token bucket: `rate` per second, a second's worth of burst.
pub struct TokenBucket {
    rate: u32,
    tokens: f64,
    last: Instant,
    /// Packet-ins refused for lack of tokens.
    pub dropped: u64,
}

impl TokenBucket {
    /// Full, at `now`.
    pub fn new(rate: u32, now: Instant) -> TokenBucket {
        TokenBucket { rate, tokens: f64::from(rate), last: now, dropped: 0 }
    }

    /// Takes a token if there is one.
    pub fn take(&mut self, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * f64::from(self.rate)).min(f64::from(self.rate));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            self.dropped += 1;
            false
        }
    }
}

fn mp_reply(msg: &Message, body: MpRep) -> Result<Vec<Message>, ErrorCode> {
    ofp::split_reply(msg.xid, msg.version, body).map_err(|_| ErrorCode::OFPBRC_EPERM)
}

fn v10_reply(msg: &Message, body: V10Rep) -> Result<Vec<Message>, ErrorCode> {
    ofp::split_stats_reply(msg.xid, body).map_err(|_| ErrorCode::OFPBRC_EPERM)
}

fn duration_parts(d: Duration) -> (u32, u32) {
    (d.as_secs() as u32, d.subsec_nanos())
}

impl Bridge {
    /// `OFPT_FEATURES_REPLY` for `version`.
    fn features_reply(&self, dp: &Datapath, version: u8) -> Body {
        use crate::ofp::msg::{OFPC_FLOW_STATS, OFPC_GROUP_STATS, OFPC_PORT_STATS, OFPC_TABLE_STATS};
        let capabilities = OFPC_FLOW_STATS | OFPC_TABLE_STATS | OFPC_PORT_STATS;
        if version == OFP10_VERSION {
            let ports = self.port_descs(dp).iter().map(phy_port).collect();
            return Body::V10(v10::Body::FeaturesReply(v10::FeaturesReply {
                datapath_id: self.datapath_id,
                n_buffers: 0,
                n_tables: 1,
                capabilities,
                actions: V10_ACTIONS,
                ports,
            }));
        }
        Body::FeaturesReply(ofp::FeaturesReply {
            datapath_id: self.datapath_id,
            n_buffers: 0,
            n_tables: N_OF_TABLES,
            auxiliary_id: 0,
            capabilities: capabilities | OFPC_GROUP_STATS,
            reserved: 0,
        })
    }

    /// The OpenFlow numbers of the bridge's ports (LOCAL included).
    pub(super) fn of_ports(&self) -> Vec<u32> {
        self.xports.iter().map(|p| p.no).collect()
    }

    /// `ofp_port` of every port, LOCAL last.
    pub(super) fn port_descs(&self, dp: &Datapath) -> Vec<ofp::Port> {
        let mut v: Vec<ofp::Port> = self.xports.iter().filter_map(|x| self.port_desc(dp, x.no)).collect();
        v.sort_by_key(|p| p.port_no);
        v
    }

    fn port_desc(&self, dp: &Datapath, no: u32) -> Option<ofp::Port> {
        let x = self.xports.iter().find(|x| x.no == no)?;
        let info = dp.port_info(self.map.to_dp(no)?)?;
        let mut config = x.config & XPORT_CONFIG;
        if !info.admin_up {
            config |= ofppc::PORT_DOWN;
        }
        if info.no_recv {
            config |= OFPPC_NO_RECV;
        }
        let state = if info.live { OFPPS_LIVE } else { OFPPS_LINK_DOWN };
        let speed = if info.speed_kbps == 0 { 10_000_000 } else { info.speed_kbps };
        Some(ofp::Port {
            port_no: no,
            hw_addr: info.hw_addr,
            name: info.name,
            config,
            state,
            curr: OFPPF_10GB_FD | OFPPF_COPPER,
            advertised: 0,
            supported: 0,
            peer: 0,
            curr_speed: speed,
            max_speed: speed,
        })
    }

    /// Re-reads link and admin state of every port: liveness feeds translation (FLOOD,
    /// fast-failover groups); a change is announced with `OFPT_PORT_STATUS`.
    pub(super) fn refresh_port_state(&mut self, dp: &mut Datapath) {
        let mut changed = Vec::new();
        for i in 0..self.xports.len() {
            let no = self.xports[i].no;
            let live = self.map.to_dp(no).is_some_and(|p| dp.port_live(p));
            if self.xports[i].live != live {
                self.xports[i].live = live;
                changed.push(no);
            }
        }
        if !changed.is_empty() {
            self.dirty = true;
            self.publish_normal_ports(dp);
            for no in changed {
                self.send_port_status(dp, no, ofp::port::OFPPR_MODIFY);
            }
        }
    }

    /// Tells NORMAL which ports it floods to (live ones without `NO_FLOOD`/`NO_FWD`) and
    /// each port's VLAN configuration.
    pub(super) fn publish_normal_ports(&self, dp: &Datapath) {
        let flood = self
            .xports
            .iter()
            .filter(|x| x.live && x.config & (ofppc::NO_FLOOD | ofppc::NO_FWD | ofppc::PORT_DOWN) == 0)
            .filter_map(|x| self.map.to_dp(x.no))
            .collect();
        let vlans_dp: Vec<(DpPortNo, &PortVlan)> =
            self.vlans.iter().filter_map(|(&no, v)| Some((self.map.to_dp(no)?, v))).collect();
        let len = vlans_dp.iter().map(|(p, _)| p.table_index() + 1).max().unwrap_or(0);
        let mut vlans = vec![PortVlan::trunk_all(); len];
        for (p, v) in vlans_dp {
            vlans[p.table_index()] = v.clone();
        }
        set_normal_ports(dp, self.index, NormalPorts { flood, vlans });
    }

    fn send_port_status(&mut self, dp: &Datapath, no: u32, reason: u8) {
        let Some(desc) = self.port_desc(dp, no) else { return };
        self.broadcast_port_status(desc, reason);
    }

    /// Sends `OFPT_PORT_STATUS` about `desc` to every connection that wants it.
    pub(super) fn broadcast_port_status(&mut self, desc: ofp::Port, reason: u8) {
        self.conns.broadcast(AsyncKind::PortStatus, reason, |c| {
            let body = if c.version == OFP10_VERSION {
                Body::V10(v10::Body::PortStatus { reason, desc: phy_port(&desc) })
            } else {
                Body::PortStatus(ofp::PortStatus { reason, desc: desc.clone() })
            };
            Some(Message { version: c.version, xid: Xid(0), body })
        });
    }

    /// Requests that need the model: flow/group/meter/port mods, packet-out, statistics.
    fn handle_model_request(
        &mut self,
        dp: &mut Datapath,
        id: ConnId,
        msg: &Message,
    ) -> Result<Vec<Message>, ErrorCode> {
        let code = |e: Error| e.code();
        match &msg.body {
            Body::FlowMod(fm) => {
                let m = convert::flow_mod_from_ofp(fm).map_err(code)?;
                self.flow_mod(dp, m)
            }
            Body::V10(v10::Body::FlowMod(fm)) => {
                let m = convert::flow_mod_from_v10(fm).map_err(code)?;
                self.flow_mod(dp, m)
            }
            Body::PacketOut(po) => {
                let actions = convert::actions_from_ofp(&po.actions, true).map_err(code)?;
                self.packet_out(dp, po.buffer_id, po.in_port, &actions, &po.data)
            }
            Body::V10(v10::Body::PacketOut(po)) => {
                let actions = convert::actions_from_v10(&po.actions, true).map_err(code)?;
                self.packet_out(dp, po.buffer_id, convert::port_from_v10(po.in_port), &actions, &po.data)
            }
            Body::MultipartRequest(req) => self.multipart(dp, msg, &req.body),
            Body::V10(v10::Body::StatsRequest(req)) => self.stats_v10(dp, msg, &req.body),
            Body::GroupMod(gm) => {
                let gm = group_mod_from_ofp(gm)?;
                let now = self.now();
                let ports = self.of_ports();
                let removed = self.model.group_mod(gm, &ports, now).map_err(code)?;
                self.dirty = true;
                self.send_flow_removed(removed);
                Ok(Vec::new())
            }
            Body::MeterMod(mm) => {
                let mm = meter_mod_from_ofp(mm)?;
                let now = self.now();
                let removed = self.model.meter_mod(mm, now).map_err(code)?;
                self.sync_meters(dp);
                self.dirty = true;
                self.send_flow_removed(removed);
                Ok(Vec::new())
            }
            Body::PortMod(pm) => self.port_mod(dp, pm.port_no, pm.hw_addr, pm.config, pm.mask),
            Body::V10(v10::Body::PortMod(pm)) => {
                self.port_mod(dp, convert::port_from_v10(pm.port_no), pm.hw_addr, pm.config, pm.mask)
            }
            Body::TableMod(tm) => {
                // OpenFlow 1.3 deprecates every table config bit; any table id that exists is fine.
                if tm.table_id != ofp::flow::OFPTT_ALL && tm.table_id >= N_OF_TABLES {
                    return Err(ErrorCode::OFPTMFC_BAD_TABLE);
                }
                Ok(Vec::new())
            }
            Body::GetAsyncRequest => {
                let c = self.conns.get(id).map(|c| c.async_cfg).unwrap_or_default();
                Ok(vec![reply(
                    msg,
                    Body::GetAsyncReply(ofp::AsyncConfig {
                        packet_in_mask: c.packet_in,
                        port_status_mask: c.port_status,
                        flow_removed_mask: c.flow_removed,
                    }),
                )])
            }
            Body::SetAsync(a) => {
                if let Some(c) = self.conns.get_mut(id) {
                    c.async_cfg = AsyncConfig {
                        packet_in: a.packet_in_mask,
                        port_status: a.port_status_mask,
                        flow_removed: a.flow_removed_mask,
                    };
                }
                self.dirty = true;
                Ok(Vec::new())
            }
            Body::QueueGetConfigRequest { port } => {
                if *port != OFPP_ANY && !self.xports.iter().any(|x| x.no == *port) {
                    return Err(ErrorCode::OFPQOFC_BAD_PORT);
                }
                Ok(vec![reply(
                    msg,
                    Body::QueueGetConfigReply(ofp::QueueGetConfigReply { port: *port, queues: Vec::new() }),
                )])
            }
            Body::V10(v10::Body::QueueGetConfigRequest { port }) => {
                let p = convert::port_from_v10(*port);
                if !self.xports.iter().any(|x| x.no == p) {
                    return Err(ErrorCode::OFPQOFC_BAD_PORT);
                }
                Ok(vec![reply(
                    msg,
                    Body::V10(v10::Body::QueueGetConfigReply { port: *port, queues: Vec::new() }),
                )])
            }
            Body::Experimenter(_) | Body::V10(v10::Body::Vendor { .. }) => {
                Err(ErrorCode::OFPBRC_BAD_EXPERIMENTER)
            }
            _ => Err(ErrorCode::OFPBRC_BAD_TYPE),
        }
    }

    /// Applies a flow-mod; flow-removed for deleted rules that asked for one.
    fn flow_mod(&mut self, dp: &mut Datapath, fm: FlowMod) -> Result<Vec<Message>, ErrorCode> {
        let buffered = fm.buffer_id.is_some_and(|b| b != OFP_NO_BUFFER);
        let now = self.now();
        let ports = self.of_ports();
        if matches!(fm.command, FlowModCommand::Delete | FlowModCommand::DeleteStrict) {
            // Credit what the megaflows forwarded, so the flow-removed counters are exact.
            self.revalidate(dp);
        }
        let changes = self.model.flow_mod(fm, &ports, now).map_err(|e| e.code())?;
        if !changes.is_empty() {
            self.dirty = true;
        }
        self.send_flow_removed(changes.removed.into_iter().map(|r| (r, RemovedReason::Delete)).collect());
        if buffered {
            // No packet is ever buffered (n_buffers = 0): the flow-mod took effect, the
            // buffer id names nothing.
            return Err(ErrorCode::OFPBRC_BUFFER_UNKNOWN);
        }
        Ok(Vec::new())
    }

    /// `OFPT_FLOW_REMOVED` to whoever wants it, for rules with `OFPFF_SEND_FLOW_REM`.
    pub(super) fn send_flow_removed(&mut self, removed: Vec<(Rule, RemovedReason)>) {
        let now = self.now();
        for (rule, why) in removed {
            if rule.flags & ofp::flow::OFPFF_SEND_FLOW_REM == 0 {
                continue;
            }
            let reason = convert::removed_reason(why);
            self.conns.broadcast(AsyncKind::FlowRemoved, reason, |c| {
                let body = if c.version == OFP10_VERSION {
                    Body::V10(v10::Body::FlowRemoved(convert::flow_removed_v10(&rule, why, now)))
                } else {
                    Body::FlowRemoved(convert::flow_removed(&rule, why, now))
                };
                Some(Message { version: c.version, xid: Xid(0), body })
            });
        }
    }

    /// Rule timeouts, port state, the fail mode.
    pub(super) fn run_timers(&mut self, dp: &mut Datapath) {
        self.stats.flow_table_full = self.model.pipeline.table_full_count();
        let now = self.now();
        if self.last_timers.is_some_and(|t| now.saturating_sub(t) < Duration::from_millis(100)) {
            return;
        }
        self.last_timers = Some(now);
        let expired = self.model.expire(now);
        if !expired.is_empty() {
            self.dirty = true;
            self.send_flow_removed(expired);
        }
        if self.last_aging.is_none_or(|t| now.saturating_sub(t) >= Duration::from_secs(1)) {
            self.last_aging = Some(now);
            let now_s = (dp.now_ms() / 1000) as u32;
            fdb_of(dp, self.index).age(now_s, self.cfg.mac_aging.as_secs() as u32);
            // Link state from sysfs, once a second: a few file reads per port.
            self.refresh_port_state(dp);
        }
        self.run_fail_mode();
        self.flush_changes(dp);
    }

    /// Enters or leaves fail-open mode as the connection manager decides; the megaflows are
    /// re-translated at the next flush.
    fn run_fail_mode(&mut self) {
        if let Some(open) = self.conns.run_fail_mode(Instant::now()) {
            if open {
                tracing::warn!(bridge = %self.name, "no controller: acting as a learning switch (fail-mode standalone)");
            } else {
                tracing::info!(bridge = %self.name, "controller back: forwarding by the flow tables again");
            }
            self.dirty = true;
        }
    }

    /// Applies `OFPT_PACKET_OUT`.
    fn packet_out(
        &mut self,
        dp: &mut Datapath,
        buffer_id: u32,
        in_port: u32,
        actions: &[OfAction],
        data: &[u8],
    ) -> Result<Vec<Message>, ErrorCode> {
        if buffer_id != OFP_NO_BUFFER {
            return Err(ErrorCode::OFPBRC_BUFFER_UNKNOWN);
        }
        use super::rule::ofpp;
        let dp_in = match in_port {
            ofpp::CONTROLLER | ofpp::ANY => None,
            p => Some(self.map.to_dp(p).ok_or(ErrorCode::OFPBRC_BAD_PORT)?),
        };
        if data.len() < 14 {
            return Err(ErrorCode::OFPBRC_BAD_PACKET);
        }
        let mut key = FlowKey::default();
        if extract(data, in_port, &mut key).is_err() {
            return Err(ErrorCode::OFPBRC_BAD_PACKET);
        }
        self.flush_changes(dp);
        let ctx = XlateCtx {
            pipeline: &self.model.pipeline,
            groups: &self.model.groups,
            ports: &self.xports,
            local_port: self.has_local.then_some(DpPortNo::LOCAL.0),
            miss: super::xlate::TableMiss::Drop,
            miss_send_len: u16::MAX,
            invalid_ttl_to_controller: false,
        };
        let (mut t, learned) = translate_packet_out_learning(&ctx, &mut self.pins, &key, actions);
        self.to_dp_actions(&mut t.actions);
        self.apply_learned(&learned);
        let acts: Arc<[DpAction]> = t.actions[..].into();
        if !dp.inject_bridge(self.index, dp_in, data.to_vec(), acts) {
            self.stats.execute_dropped += 1;
        }
        Ok(Vec::new())
    }

    /// A packet the datapath sent to the controller (`DpAction::Userspace`).
    pub(super) fn handle_packet_in(&mut self, dp: &mut Datapath, p: DpPacketIn) {
        let Some(ctx) = self.pins.get(p.id).copied() else {
            dp.recycle_packet_in(p.packet);
            return;
        };
        if !self.pin_bucket.take(Instant::now()) {
            self.stats.packet_in_dropped += 1;
            dp.recycle_packet_in(p.packet);
            return;
        }
        let in_port = p.in_port.and_then(|n| self.map.to_of(n)).unwrap_or(super::rule::ofpp::CONTROLLER);
        let total_len = p.packet.len().min(u16::MAX as usize) as u16;
        let reason = ctx.reason.number();
        let mut sent = 0;
        let implicit = ctx.reason == PacketInReason::ImplicitMiss;
        self.conns.broadcast(AsyncKind::PacketIn, reason, |c| {
            // OpenFlow 1.3 has no implicit table miss to the controller: only a rule sends there.
            if implicit && c.version != OFP10_VERSION {
                return None;
            }
            let max = match ctx.reason {
                PacketInReason::Action => ctx.max_len,
                _ => c.miss_send_len,
            };
            let n = if max == u16::MAX { p.packet.len() } else { p.packet.len().min(usize::from(max)) };
            let data = p.packet[..n].to_vec();
            let body = if c.version == OFP10_VERSION {
                Body::V10(v10::Body::PacketIn(v10::PacketIn {
                    buffer_id: OFP_NO_BUFFER,
                    total_len,
                    in_port: convert::port_to_v10(in_port),
                    reason,
                    data,
                }))
            } else {
                let match_ = convert::packet_in_match(in_port, ctx.metadata, &p.tunnel);
                Body::PacketIn(ofp::PacketIn {
                    buffer_id: OFP_NO_BUFFER,
                    total_len,
                    reason,
                    table_id: ctx.table_id,
                    cookie: ctx.cookie,
                    match_,
                    data,
                })
            };
            sent += 1;
            Some(Message { version: c.version, xid: Xid(0), body })
        });
        self.stats.packet_ins += sent;
        dp.recycle_packet_in(p.packet);
    }

    fn port_mod(
        &mut self,
        dp: &mut Datapath,
        no: u32,
        hw_addr: [u8; 6],
        config: u32,
        mask: u32,
    ) -> Result<Vec<Message>, ErrorCode> {
        let Some(i) = self.xports.iter().position(|x| x.no == no) else {
            return Err(ErrorCode::OFPPMFC_BAD_PORT);
        };
        let dp_no = self.map.to_dp(no).ok_or(ErrorCode::OFPPMFC_BAD_PORT)?;
        let info = dp.port_info(dp_no).ok_or(ErrorCode::OFPPMFC_BAD_PORT)?;
        if info.hw_addr != hw_addr {
            return Err(ErrorCode::OFPPMFC_BAD_HW_ADDR);
        }
        if mask & ofppc::PORT_DOWN != 0 {
            let up = config & ofppc::PORT_DOWN == 0;
            dp.set_port_admin_up(dp_no, up).map_err(|_| ErrorCode::OFPPMFC_EPERM)?;
        }
        if mask & OFPPC_NO_RECV != 0 {
            dp.set_port_no_recv(dp_no, config & OFPPC_NO_RECV != 0).map_err(|_| ErrorCode::OFPPMFC_EPERM)?;
        }
        let m = mask & XPORT_CONFIG;
        self.xports[i].config = (self.xports[i].config & !m) | (config & m);
        self.xports[i].live = dp.port_live(dp_no);
        self.dirty = true;
        self.publish_normal_ports(dp);
        self.send_port_status(dp, no, ofp::port::OFPPR_MODIFY);
        Ok(Vec::new())
    }

    /// Pushes the model's meters to the datapath.
    pub(super) fn sync_meters(&mut self, dp: &mut Datapath) {
        let want = self.model.meters.datapath_config();
        let ns = |id: u32| dp_meter_id(self.index, id);
        for id in dp.meter_ids().into_iter().filter(|&id| id >> 24 == u32::from(self.index)) {
            if !want.iter().any(|(w, _)| ns(*w) == id) {
                dp.remove_meter(id);
            }
        }
        for (id, b) in want {
            let unit = if b.kbps { MeterUnit::Kbps } else { MeterUnit::Pktps };
            if let Err(e) = dp.set_meter(ns(id), MeterConfig { rate: b.rate, burst: b.burst, unit }) {
                tracing::warn!(meter = id, "meter not installed: {e}");
            }
        }
    }

    /// The rules a flow-stats style request selects (counters credited first).
    fn select_rules(&mut self, dp: &mut Datapath, sel: &FlowMod) -> Vec<Rule> {
        self.revalidate(dp);
        self.model.pipeline.query(sel).into_iter().cloned().collect()
    }

    fn aggregate(rules: &[Rule]) -> AggregateStats {
        let mut a = AggregateStats::default();
        for r in rules {
            a.packet_count = a.packet_count.wrapping_add(r.n_packets);
            a.byte_count = a.byte_count.wrapping_add(r.n_bytes);
            a.flow_count += 1;
        }
        a
    }

    fn port_stats(
        &self,
        dp: &Datapath,
        port: u32,
    ) -> Result<Vec<(u32, crate::netdev::PortStats)>, ErrorCode> {
        let all: Vec<_> = dp
            .port_stats()
            .into_iter()
            .filter_map(|(no, _, _, _, st)| Some((self.map.to_of(no)?, st)))
            .collect();
        if port == OFPP_ANY {
            return Ok(all);
        }
        all.into_iter().find(|(no, _)| *no == port).map(|x| vec![x]).ok_or(ErrorCode::OFPBRC_BAD_PORT)
    }

    fn desc(&self) -> Desc {
        Desc {
            mfr_desc: MFR_DESC.into(),
            hw_desc: HW_DESC.into(),
            sw_desc: SW_DESC.into(),
            serial_num: "None".into(),
            dp_desc: format!("{} (datapath xdp)", self.name),
        }
    }

    /// `OFPT_MULTIPART_REQUEST` (1.3).
    fn multipart(
        &mut self,
        dp: &mut Datapath,
        msg: &Message,
        req: &MpReq,
    ) -> Result<Vec<Message>, ErrorCode> {
        let now = self.now();
        let up = duration_parts(self.started.elapsed());
        let body = match req {
            MpReq::Desc => MpRep::Desc(self.desc()),
            MpReq::Flow(f) => {
                let sel = convert::flow_stats_request(f).map_err(|e| e.code())?;
                let rules = self.select_rules(dp, &sel);
                MpRep::Flow(rules.iter().map(|r| convert::flow_stats(r, now)).collect())
            }
            MpReq::Aggregate(f) => {
                let sel = convert::flow_stats_request(f).map_err(|e| e.code())?;
                MpRep::Aggregate(Self::aggregate(&self.select_rules(dp, &sel)))
            }
            MpReq::Table => {
                self.revalidate(dp);
                let mut t = convert::table_stats(&self.model.pipeline.table_stats());
                t.truncate(usize::from(N_OF_TABLES));
                MpRep::Table(t)
            }
            MpReq::PortStats { port_no } => MpRep::PortStats(
                self.port_stats(dp, *port_no)?
                    .into_iter()
                    .map(|(no, st)| PortStats {
                        port_no: no,
                        rx_packets: st.rx_packets,
                        tx_packets: st.tx_packets,
                        rx_bytes: st.rx_bytes,
                        tx_bytes: st.tx_bytes,
                        rx_dropped: st.rx_dropped,
                        tx_dropped: st.tx_dropped,
                        duration_sec: up.0,
                        duration_nsec: up.1,
                        ..PortStats::default()
                    })
                    .collect(),
            ),
            MpReq::PortDesc => MpRep::PortDesc(self.port_descs(dp)),
            MpReq::TableFeatures(set) => {
                if !set.is_empty() {
                    return Err(ErrorCode::OFPTFFC_EPERM);
                }
                MpRep::TableFeatures(table_features(self.model.pipeline.max_flows()))
            }
            MpReq::Queue { port_no, .. } => {
                if *port_no != OFPP_ANY && !self.xports.iter().any(|x| x.no == *port_no) {
                    return Err(ErrorCode::OFPQOFC_BAD_PORT);
                }
                MpRep::Queue(Vec::new())
            }
            MpReq::Group { group_id } => {
                self.revalidate(dp);
                let groups: Vec<_> = self
                    .model
                    .groups
                    .iter()
                    .filter(|g| *group_id == ofp::group::OFPG_ALL || g.id == *group_id)
                    .map(|g| {
                        let (ds, dn) = duration_parts(now.saturating_sub(g.created));
                        ofp::stats::GroupStats {
                            group_id: g.id,
                            ref_count: self.model.pipeline.group_ref_count(g.id),
                            packet_count: g.counts.packets,
                            byte_count: g.counts.bytes,
                            duration_sec: ds,
                            duration_nsec: dn,
                            bucket_stats: g
                                .bucket_counts
                                .iter()
                                .map(|c| ofp::stats::Counts { packet_count: c.packets, byte_count: c.bytes })
                                .collect(),
                        }
                    })
                    .collect();
                MpRep::Group(groups)
            }
            MpReq::GroupDesc => MpRep::GroupDesc(
                self.model
                    .groups
                    .iter()
                    .map(|g| ofp::stats::GroupDesc {
                        type_: g.group_type.number(),
                        group_id: g.id,
                        buckets: g.buckets.iter().map(bucket_to_ofp).collect(),
                    })
                    .collect(),
            ),
            MpReq::GroupFeatures => {
                let f = super::group::GroupTable::features();
                MpRep::GroupFeatures(ofp::stats::GroupFeatures {
                    types: f.types,
                    capabilities: f.capabilities,
                    max_groups: f.max_groups,
                    actions: f.actions,
                })
            }
            MpReq::Meter { meter_id } => {
                let mut v = Vec::new();
                for m in self.model.meters.iter() {
                    if *meter_id != ofp::meter::OFPM_ALL && m.id != *meter_id {
                        continue;
                    }
                    let st = dp.meter_stats(dp_meter_id(self.index, m.id)).unwrap_or_default();
                    let (ds, dn) = duration_parts(now.saturating_sub(m.created));
                    let lowest = m.bands.iter().enumerate().min_by_key(|(_, b)| b.rate).map(|(i, _)| i);
                    v.push(ofp::stats::MeterStats {
                        meter_id: m.id,
                        flow_count: self.model.pipeline.meter_flow_count(m.id),
                        packet_in_count: st.packets_in,
                        byte_in_count: st.bytes_in,
                        duration_sec: ds,
                        duration_nsec: dn,
                        band_stats: (0..m.bands.len())
                            .map(|i| {
                                if Some(i) == lowest {
                                    ofp::stats::Counts {
                                        packet_count: st.band_drops_packets,
                                        byte_count: st.band_drops_bytes,
                                    }
                                } else {
                                    ofp::stats::Counts::default()
                                }
                            })
                            .collect(),
                    });
                }
                MpRep::Meter(v)
            }
            MpReq::MeterConfig { meter_id } => MpRep::MeterConfig(
                self.model
                    .meters
                    .iter()
                    .filter(|m| *meter_id == ofp::meter::OFPM_ALL || m.id == *meter_id)
                    .map(|m| ofp::stats::MeterConfig {
                        flags: m.flags,
                        meter_id: m.id,
                        bands: m.bands.iter().map(band_to_ofp).collect(),
                    })
                    .collect(),
            ),
            MpReq::MeterFeatures => {
                let f = super::meter::MeterTable::features();
                MpRep::MeterFeatures(ofp::stats::MeterFeatures {
                    max_meter: f.max_meter,
                    band_types: f.band_types,
                    capabilities: f.capabilities,
                    max_bands: f.max_bands,
                    max_color: f.max_color,
                })
            }
            MpReq::Experimenter(_) => return Err(ErrorCode::OFPBRC_BAD_EXPERIMENTER),
        };
        mp_reply(msg, body)
    }

    /// `OFPT_STATS_REQUEST` (1.0).
    fn stats_v10(
        &mut self,
        dp: &mut Datapath,
        msg: &Message,
        req: &V10Req,
    ) -> Result<Vec<Message>, ErrorCode> {
        let now = self.now();
        let body = match req {
            V10Req::Desc => V10Rep::Desc(self.desc()),
            V10Req::Flow(f) => {
                let sel = convert::flow_stats_request_v10(&f.match_, f.table_id, f.out_port);
                V10Rep::Flow(
                    self.select_rules(dp, &sel).iter().map(|r| convert::flow_stats_v10(r, now)).collect(),
                )
            }
            V10Req::Aggregate(f) => {
                let sel = convert::flow_stats_request_v10(&f.match_, f.table_id, f.out_port);
                V10Rep::Aggregate(Self::aggregate(&self.select_rules(dp, &sel)))
            }
            V10Req::Table => {
                self.revalidate(dp);
                let t = self.model.pipeline.table_stats();
                let t0 = t.first().cloned().unwrap_or_default();
                V10Rep::Table(vec![v10::TableStats {
                    table_id: 0,
                    name: "classifier".into(),
                    wildcards: 0x3f_ffff,
                    max_entries: u32::try_from(self.model.pipeline.max_flows()).unwrap_or(u32::MAX),
                    active_count: t0.active,
                    lookup_count: t0.lookups,
                    matched_count: t0.matched,
                }])
            }
            V10Req::Port { port_no } => {
                let p = if *port_no == 0xffff { OFPP_ANY } else { convert::port_from_v10(*port_no) };
                V10Rep::Port(
                    self.port_stats(dp, p)?
                        .into_iter()
                        .map(|(no, st)| v10::PortStats {
                            port_no: convert::port_to_v10(no),
                            counters: [
                                st.rx_packets,
                                st.tx_packets,
                                st.rx_bytes,
                                st.tx_bytes,
                                st.rx_dropped,
                                st.tx_dropped,
                                0,
                                0,
                                0,
                                0,
                                0,
                                0,
                            ],
                        })
                        .collect(),
                )
            }
            V10Req::Queue { .. } => V10Rep::Queue(Vec::new()),
            V10Req::PortDesc => V10Rep::PortDesc(self.port_descs(dp).iter().map(phy_port).collect()),
            V10Req::Vendor { .. } => return Err(ErrorCode::OFPBRC_BAD_EXPERIMENTER),
        };
        v10_reply(msg, body)
    }
}

/// A port description in OpenFlow 1.0's layout.
fn phy_port(p: &ofp::Port) -> v10::PhyPort {
    v10::PhyPort {
        port_no: convert::port_to_v10(p.port_no),
        hw_addr: p.hw_addr,
        name: p.name.clone(),
        config: p.config,
        state: p.state & OFPPS_LINK_DOWN,
        curr: V10_CURR,
        advertised: 0,
        supported: 0,
        peer: 0,
    }
}

fn group_mod_from_ofp(gm: &ofp::GroupMod) -> Result<GroupMod, ErrorCode> {
    let command = match gm.command {
        ofp::group::OFPGC_ADD => GroupModCommand::Add,
        ofp::group::OFPGC_MODIFY => GroupModCommand::Modify,
        ofp::group::OFPGC_DELETE => GroupModCommand::Delete,
        _ => return Err(ErrorCode::OFPGMFC_BAD_COMMAND),
    };
    let group_type = if command == GroupModCommand::Delete {
        GroupType::from_number(gm.type_).unwrap_or(GroupType::All)
    } else {
        GroupType::from_number(gm.type_).map_err(|e| e.code())?
    };
    let mut buckets = Vec::new();
    for b in &gm.buckets {
        let actions = convert::actions_from_ofp(&b.actions, false).map_err(|e| e.code())?;
        buckets.push(Bucket {
            weight: b.weight,
            watch_port: b.watch_port,
            watch_group: b.watch_group,
            actions,
        });
    }
    Ok(GroupMod { command, group_type, group_id: gm.group_id, buckets })
}

fn bucket_to_ofp(b: &Bucket) -> ofp::group::Bucket {
    ofp::group::Bucket {
        weight: b.weight,
        watch_port: b.watch_port,
        watch_group: b.watch_group,
        actions: convert::actions_to_ofp(&b.actions, &super::rule::Match::catchall()),
    }
}

fn meter_mod_from_ofp(mm: &ofp::MeterMod) -> Result<MeterMod, ErrorCode> {
    let command = match mm.command {
        ofp::meter::OFPMC_ADD => MeterModCommand::Add,
        ofp::meter::OFPMC_MODIFY => MeterModCommand::Modify,
        ofp::meter::OFPMC_DELETE => MeterModCommand::Delete,
        _ => return Err(ErrorCode::OFPMMFC_BAD_COMMAND),
    };
    let bands = mm
        .bands
        .iter()
        .map(|b| match *b {
            ofp::MeterBand::Drop { rate, burst_size } => Band { kind: BandKind::Drop, rate, burst_size },
            ofp::MeterBand::DscpRemark { rate, burst_size, prec_level } => {
                Band { kind: BandKind::DscpRemark { prec_level }, rate, burst_size }
            }
            ofp::MeterBand::Experimenter { rate, burst_size, .. } => {
                Band { kind: BandKind::Other(0xffff), rate, burst_size }
            }
        })
        .collect();
    Ok(MeterMod { command, flags: mm.flags, meter_id: mm.meter_id, bands })
}

fn band_to_ofp(b: &Band) -> ofp::MeterBand {
    match b.kind {
        BandKind::DscpRemark { prec_level } => {
            ofp::MeterBand::DscpRemark { rate: b.rate, burst_size: b.burst_size, prec_level }
        }
        _ => ofp::MeterBand::Drop { rate: b.rate, burst_size: b.burst_size },
    }
}

/// The OXM fields the tables match (every OpenFlow 1.3 basic field but PBB_ISID and
/// IPV6_EXTHDR) and the ones set-field can write.
const MATCH_FIELDS: &[u8] = &[
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28,
    29, 30, 31, 32, 33, 34, 35, 36, 38,
];
const SET_FIELDS: &[u8] = &[2, 3, 4, 6, 7, 8, 9, 11, 12, 13, 14, 15, 16, 17, 18, 26, 27, 38];
/// Instruction types: goto, write-metadata, write/apply/clear actions, meter.
const INSTRUCTIONS: &[u16] = &[1, 2, 3, 4, 5, 6];
/// Action types: output, push/pop VLAN, set-queue, group, set/dec NW TTL, set-field.
const ACTIONS: &[u16] = &[0, 17, 18, 21, 22, 23, 24, 25];

fn oxm_ids(fields: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(fields.len() * 4);
    for &f in fields {
        let len = OxmField::from_basic(f).and_then(|x| x.value_len()).unwrap_or(0) as u8;
        v.extend_from_slice(&ofp::oxm::OFPXMC_OPENFLOW_BASIC.to_be_bytes());
        v.push(f << 1);
        v.push(len);
    }
    v
}

fn type_ids(types: &[u16]) -> Vec<u8> {
    types.iter().flat_map(|t| [t.to_be_bytes(), 4u16.to_be_bytes()].concat()).collect()
}

/// `OFPMP_TABLE_FEATURES`: tables `0..N_OF_TABLES`, each with every property type.
fn table_features(max_flows: usize) -> Vec<TableFeatures> {
    let matches = oxm_ids(MATCH_FIELDS);
    let sets = oxm_ids(SET_FIELDS);
    let instructions = type_ids(INSTRUCTIONS);
    let actions = type_ids(ACTIONS);
    (0..N_OF_TABLES)
        .map(|t| {
            let next: Vec<u8> = (t + 1..N_OF_TABLES).collect();
            let prop = |type_, data: &Vec<u8>| TableFeatureProp { type_, data: data.clone() };
            TableFeatures {
                table_id: t,
                name: if t == 0 { "classifier".into() } else { format!("table{t}") },
                metadata_match: u64::MAX,
                metadata_write: u64::MAX,
                config: 0,
                max_entries: u32::try_from(max_flows).unwrap_or(u32::MAX),
                properties: vec![
                    prop(tfp::OFPTFPT_INSTRUCTIONS, &instructions),
                    prop(tfp::OFPTFPT_INSTRUCTIONS_MISS, &instructions),
                    prop(tfp::OFPTFPT_NEXT_TABLES, &next),
                    prop(tfp::OFPTFPT_NEXT_TABLES_MISS, &next),
                    prop(tfp::OFPTFPT_WRITE_ACTIONS, &actions),
                    prop(tfp::OFPTFPT_WRITE_ACTIONS_MISS, &actions),
                    prop(tfp::OFPTFPT_APPLY_ACTIONS, &actions),
                    prop(tfp::OFPTFPT_APPLY_ACTIONS_MISS, &actions),
                    prop(tfp::OFPTFPT_MATCH, &matches),
                    prop(tfp::OFPTFPT_WILDCARDS, &matches),
                    prop(tfp::OFPTFPT_WRITE_SETFIELD, &sets),
                    prop(tfp::OFPTFPT_WRITE_SETFIELD_MISS, &sets),
                    prop(tfp::OFPTFPT_APPLY_SETFIELD, &sets),
                    prop(tfp::OFPTFPT_APPLY_SETFIELD_MISS, &sets),
                ],
            }
        })
        .collect()
}
