//! OpenFlow requests, served on the bridge's control thread: each request from a connection
//! is answered (or refused with the `OFPT_ERROR` the spec names) in arrival order, and a
//! failed request changes nothing.
//!
//! Barrier: flow-table changes mark the megaflows dirty; before a barrier reply (and after
//! each batch of requests) the bridge re-translates every megaflow that could be affected and
//! publishes, and `publish` returns only when no poll thread can see the old version. So a
//! barrier reply means every earlier flow-mod is in effect on every poll thread.

use crate::ofp::{self, Body, ErrorCode, Message, OFP10_VERSION};

use super::bridge::Bridge;
use super::connmgr::{AgentEvent, ConnId};

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
    Message { version: request.version, xid: request.xid, body: Body::Error(ofp::Error { type_, code, data }) }
}

/// A reply to `request` with `body`.
pub fn reply(request: &Message, body: Body) -> Message {
    Message { version: request.version, xid: request.xid, body }
}

impl Bridge {
    /// Handles one event from the agent.
    pub fn handle_agent_event(&mut self, ev: AgentEvent) {
        match ev {
            AgentEvent::Connected { id, kind, version, peer, sink } => {
                tracing::info!(conn = id.0, ?kind, version, %peer, "OpenFlow connection up");
                self.conns.connect(id, kind, version, peer, sink);
            }
            AgentEvent::Disconnected { id } => {
                if let Some(c) = self.conns.disconnect(id, std::time::Instant::now()) {
                    tracing::info!(conn = id.0, peer = %c.peer, "OpenFlow connection down");
                }
            }
            AgentEvent::Message { id, msg } => {
                let replies = match self.handle_request(id, &msg) {
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
    fn handle_request(&mut self, id: ConnId, msg: &Message) -> Result<Vec<Message>, ErrorCode> {
        let Some(conn) = self.conns.get(id) else { return Ok(Vec::new()) };
        let v10 = msg.version == OFP10_VERSION;
        if is_write(&msg.body) {
            conn.check_writable()?;
        }
        let one = |body| Ok(vec![reply(msg, body)]);
        match &msg.body {
            Body::FeaturesRequest => one(self.features_reply(msg.version)),
            Body::GetConfigRequest => {
                one(Body::GetConfigReply(ofp::SwitchConfig { flags: conn.config_flags, miss_send_len: conn.miss_send_len }))
            }
            Body::SetConfig(c) => {
                if let Some(conn) = self.conns.get_mut(id) {
                    conn.config_flags = c.flags;
                    conn.miss_send_len = c.miss_send_len;
                }
                Ok(Vec::new())
            }
            Body::BarrierRequest => {
                self.flush_changes();
                one(Body::BarrierReply)
            }
            Body::RoleRequest(r) if !v10 => {
                let (role, generation_id) = self.conns.role_request(id, r.role, r.generation_id)?;
                one(Body::RoleReply(ofp::Role { role: role.wire(), generation_id }))
            }
            Body::EchoRequest(d) => one(Body::EchoReply(d.clone())),
            Body::Hello(_) | Body::EchoReply(_) | Body::BarrierReply | Body::Error(_) => Ok(Vec::new()),
            _ => self.handle_model_request(id, msg),
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
            | Body::V10(ofp::v10::Body::FlowMod(_) | ofp::v10::Body::PacketOut(_) | ofp::v10::Body::PortMod(_))
    )
}

impl Bridge {
    /// `OFPT_FEATURES_REPLY` for `version`.
    fn features_reply(&self, version: u8) -> Body {
        use crate::ofp::msg::{OFPC_FLOW_STATS, OFPC_GROUP_STATS, OFPC_PORT_STATS, OFPC_TABLE_STATS};
        let capabilities = OFPC_FLOW_STATS | OFPC_TABLE_STATS | OFPC_PORT_STATS;
        if version == OFP10_VERSION {
            return Body::V10(ofp::v10::Body::FeaturesReply(ofp::v10::FeaturesReply {
                datapath_id: self.datapath_id,
                n_buffers: 0,
                n_tables: 1,
                capabilities,
                actions: V10_ACTIONS,
                ports: Vec::new(),
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

    fn handle_model_request(&mut self, _id: ConnId, msg: &Message) -> Result<Vec<Message>, ErrorCode> {
        let _ = msg;
        Err(ErrorCode::OFPBRC_BAD_TYPE)
    }
}

/// Tables announced to controllers (`0..254`, as Open vSwitch).
pub const N_OF_TABLES: u8 = 254;

/// OpenFlow 1.0 `OFPAT_*` action bits the switch carries out: output, set VLAN VID/PCP,
/// strip VLAN, set DL src/dst, set NW src/dst/TOS, set TP src/dst (no enqueue).
const V10_ACTIONS: u32 = (1 << 11) - 1;
