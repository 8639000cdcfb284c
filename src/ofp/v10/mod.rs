//! OpenFlow 1.0 messages whose layout differs from 1.3: the 40-byte `ofp_match`, 1.0 actions,
//! FLOW_MOD, FLOW_REMOVED, PACKET_IN, PACKET_OUT, FEATURES_REPLY with `ofp_phy_port`s,
//! PORT_STATUS, and STATS (desc and flow typed; the rest raw). OpenFlow 1.0.0 §5.

mod action;
mod stats;

pub use action::Action;
pub use stats::*;

use super::config::PacketQueue;
use super::error::{EncodeError, Reason};
use super::wire::{Put, Reader};
use action::{decode_actions, encode_actions};

/// `OFPT_FEATURES_REPLY` in 1.0.
pub const OFPT_FEATURES_REPLY: u8 = 6;
/// `OFPT_PACKET_IN` in 1.0.
pub const OFPT_PACKET_IN: u8 = 10;
/// `OFPT_FLOW_REMOVED` in 1.0.
pub const OFPT_FLOW_REMOVED: u8 = 11;
/// `OFPT_PORT_STATUS` in 1.0.
pub const OFPT_PORT_STATUS: u8 = 12;
/// `OFPT_PACKET_OUT` in 1.0.
pub const OFPT_PACKET_OUT: u8 = 13;
/// `OFPT_FLOW_MOD` in 1.0.
pub const OFPT_FLOW_MOD: u8 = 14;
/// `OFPT_VENDOR` in 1.0.
pub const OFPT_VENDOR: u8 = 4;
/// `OFPT_PORT_MOD` in 1.0.
pub const OFPT_PORT_MOD: u8 = 15;
/// `OFPT_QUEUE_GET_CONFIG_REQUEST` in 1.0.
pub const OFPT_QUEUE_GET_CONFIG_REQUEST: u8 = 20;
/// `OFPT_QUEUE_GET_CONFIG_REPLY` in 1.0.
pub const OFPT_QUEUE_GET_CONFIG_REPLY: u8 = 21;
/// `OFPT_STATS_REQUEST` in 1.0.
pub const OFPT_STATS_REQUEST: u8 = 16;
/// `OFPT_STATS_REPLY` in 1.0.
pub const OFPT_STATS_REPLY: u8 = 17;

/// `OFPFW_ALL`: every field wildcarded.
pub const OFPFW_ALL: u32 = (1 << 22) - 1;

/// A 1.0 message body whose layout is its own.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Body {
    /// `OFPT_FEATURES_REPLY`
    FeaturesReply(FeaturesReply),
    /// `OFPT_PACKET_IN`
    PacketIn(PacketIn),
    /// `OFPT_FLOW_REMOVED`
    FlowRemoved(FlowRemoved),
    /// `OFPT_PORT_STATUS`
    PortStatus {
        /// `OFPPR_*`.
        reason: u8,
        /// The port.
        desc: PhyPort,
    },
    /// `OFPT_PACKET_OUT`
    PacketOut(PacketOut),
    /// `OFPT_FLOW_MOD`
    FlowMod(FlowMod),
    /// `OFPT_STATS_REQUEST`
    StatsRequest(StatsRequest),
    /// `OFPT_STATS_REPLY`
    StatsReply(StatsReply),
    /// `OFPT_VENDOR`, raw (Nicira extensions arrive this way).
    Vendor {
        /// Vendor id.
        vendor: u32,
        /// Everything after it.
        data: Vec<u8>,
    },
    /// `OFPT_PORT_MOD`
    PortMod(PortMod),
    /// `OFPT_QUEUE_GET_CONFIG_REQUEST`
    QueueGetConfigRequest {
        /// The port to query.
        port: u16,
    },
    /// `OFPT_QUEUE_GET_CONFIG_REPLY` (queues carry `port` 0: 1.0 has no such field).
    QueueGetConfigReply {
        /// The port queried.
        port: u16,
        /// Its queues.
        queues: Vec<PacketQueue>,
    },
}

/// `OFPT_PORT_MOD` of 1.0.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PortMod {
    /// Port number.
    pub port_no: u16,
    /// The port's MAC address, as a sanity check.
    pub hw_addr: [u8; 6],
    /// `OFPPC_*` values.
    pub config: u32,
    /// Which bits of `config` to change.
    pub mask: u32,
    /// Features to advertise, or 0 to leave unchanged.
    pub advertise: u32,
}

/// `ofp_match` of 1.0: fixed fields plus a wildcard bitmap (`OFPFW_*`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Match {
    /// `OFPFW_*` bits: which fields are wildcarded (and the IP prefix lengths).
    pub wildcards: u32,
    /// Input port.
    pub in_port: u16,
    /// Ethernet source.
    pub dl_src: [u8; 6],
    /// Ethernet destination.
    pub dl_dst: [u8; 6],
    /// VLAN id.
    pub dl_vlan: u16,
    /// VLAN priority.
    pub dl_vlan_pcp: u8,
    /// Ethernet frame type.
    pub dl_type: u16,
    /// IP ToS (DSCP in the upper 6 bits).
    pub nw_tos: u8,
    /// IP protocol or low 8 bits of the ARP opcode.
    pub nw_proto: u8,
    /// IP source address.
    pub nw_src: u32,
    /// IP destination address.
    pub nw_dst: u32,
    /// TCP/UDP source port or ICMP type.
    pub tp_src: u16,
    /// TCP/UDP destination port or ICMP code.
    pub tp_dst: u16,
}

impl Match {
    /// A match with every field wildcarded.
    pub fn all() -> Match {
        Match { wildcards: OFPFW_ALL, ..Match::default() }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.put_u32(self.wildcards);
        out.put_u16(self.in_port);
        out.extend_from_slice(&self.dl_src);
        out.extend_from_slice(&self.dl_dst);
        out.put_u16(self.dl_vlan);
        out.put_u8(self.dl_vlan_pcp);
        out.put_u8(0);
        out.put_u16(self.dl_type);
        out.put_u8(self.nw_tos);
        out.put_u8(self.nw_proto);
        out.put_zeros(2);
        out.put_u32(self.nw_src);
        out.put_u32(self.nw_dst);
        out.put_u16(self.tp_src);
        out.put_u16(self.tp_dst);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Match, Reason> {
        let wildcards = r.u32()?;
        let in_port = r.u16()?;
        let dl_src = r.array()?;
        let dl_dst = r.array()?;
        let dl_vlan = r.u16()?;
        let dl_vlan_pcp = r.u8()?;
        r.skip(1)?;
        let dl_type = r.u16()?;
        let nw_tos = r.u8()?;
        let nw_proto = r.u8()?;
        r.skip(2)?;
        Ok(Match {
            wildcards,
            in_port,
            dl_src,
            dl_dst,
            dl_vlan,
            dl_vlan_pcp,
            dl_type,
            nw_tos,
            nw_proto,
            nw_src: r.u32()?,
            nw_dst: r.u32()?,
            tp_src: r.u16()?,
            tp_dst: r.u16()?,
        })
    }
}

/// `ofp_phy_port` (48 bytes).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PhyPort {
    /// Port number.
    pub port_no: u16,
    /// MAC address.
    pub hw_addr: [u8; 6],
    /// Name (at most 15 bytes on the wire).
    pub name: String,
    /// `OFPPC_*`.
    pub config: u32,
    /// `OFPPS_*`.
    pub state: u32,
    /// Current features.
    pub curr: u32,
    /// Advertised features.
    pub advertised: u32,
    /// Supported features.
    pub supported: u32,
    /// Features advertised by the peer.
    pub peer: u32,
}

impl PhyPort {
    fn encode(&self, out: &mut Vec<u8>) {
        out.put_u16(self.port_no);
        out.extend_from_slice(&self.hw_addr);
        out.put_str(&self.name, 16);
        for v in [self.config, self.state, self.curr, self.advertised, self.supported, self.peer] {
            out.put_u32(v);
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<PhyPort, Reason> {
        Ok(PhyPort {
            port_no: r.u16()?,
            hw_addr: r.array()?,
            name: r.str(16)?,
            config: r.u32()?,
            state: r.u32()?,
            curr: r.u32()?,
            advertised: r.u32()?,
            supported: r.u32()?,
            peer: r.u32()?,
        })
    }
}

/// `ofp_switch_features` of 1.0.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct FeaturesReply {
    /// Datapath unique id.
    pub datapath_id: u64,
    /// Max packets buffered at once.
    pub n_buffers: u32,
    /// Number of tables.
    pub n_tables: u8,
    /// `OFPC_*`.
    pub capabilities: u32,
    /// Bitmap of supported `OFPAT_*` (1 << type).
    pub actions: u32,
    /// The ports.
    pub ports: Vec<PhyPort>,
}

/// `OFPT_PACKET_IN` of 1.0.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PacketIn {
    /// Buffer id, or `0xffffffff`.
    pub buffer_id: u32,
    /// Full length of the frame.
    pub total_len: u16,
    /// Input port.
    pub in_port: u16,
    /// `OFPR_*`.
    pub reason: u8,
    /// The frame or its first bytes.
    pub data: Vec<u8>,
}

/// `OFPT_PACKET_OUT` of 1.0.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PacketOut {
    /// Buffer id, or `0xffffffff` when `data` holds the frame.
    pub buffer_id: u32,
    /// Input port for the actions' purposes.
    pub in_port: u16,
    /// Actions.
    pub actions: Vec<Action>,
    /// The frame.
    pub data: Vec<u8>,
}

/// `OFPT_FLOW_MOD` of 1.0.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowMod {
    /// The match.
    pub match_: Match,
    /// Opaque controller-issued identifier.
    pub cookie: u64,
    /// `OFPFC_*` (same numbers as 1.3).
    pub command: u16,
    /// Idle timeout, seconds.
    pub idle_timeout: u16,
    /// Hard timeout, seconds.
    pub hard_timeout: u16,
    /// Priority.
    pub priority: u16,
    /// Buffered packet to apply to, or `0xffffffff`.
    pub buffer_id: u32,
    /// For deletes: require an output to this port (`OFPP_NONE` = 0xffff: don't care).
    pub out_port: u16,
    /// `OFPFF_*`.
    pub flags: u16,
    /// Actions.
    pub actions: Vec<Action>,
}

/// `OFPT_FLOW_REMOVED` of 1.0.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowRemoved {
    /// The flow's match.
    pub match_: Match,
    /// Cookie.
    pub cookie: u64,
    /// Priority.
    pub priority: u16,
    /// `OFPRR_*`.
    pub reason: u8,
    /// Time alive, seconds.
    pub duration_sec: u32,
    /// Time alive beyond `duration_sec`, nanoseconds.
    pub duration_nsec: u32,
    /// Idle timeout.
    pub idle_timeout: u16,
    /// Packets matched.
    pub packet_count: u64,
    /// Bytes matched.
    pub byte_count: u64,
}

impl Body {
    /// The 1.0 `ofp_type` of this body.
    pub fn type_code(&self) -> u8 {
        match self {
            Body::FeaturesReply(_) => OFPT_FEATURES_REPLY,
            Body::PacketIn(_) => OFPT_PACKET_IN,
            Body::FlowRemoved(_) => OFPT_FLOW_REMOVED,
            Body::PortStatus { .. } => OFPT_PORT_STATUS,
            Body::PacketOut(_) => OFPT_PACKET_OUT,
            Body::FlowMod(_) => OFPT_FLOW_MOD,
            Body::StatsRequest(_) => OFPT_STATS_REQUEST,
            Body::StatsReply(_) => OFPT_STATS_REPLY,
            Body::Vendor { .. } => OFPT_VENDOR,
            Body::PortMod(_) => OFPT_PORT_MOD,
            Body::QueueGetConfigRequest { .. } => OFPT_QUEUE_GET_CONFIG_REQUEST,
            Body::QueueGetConfigReply { .. } => OFPT_QUEUE_GET_CONFIG_REPLY,
        }
    }

    /// Decodes the body of a 1.0 message of type `type_`, or `None` if 1.0 has no typed
    /// layout for it here.
    pub(crate) fn decode(type_: u8, r: &mut Reader<'_>) -> Option<Result<Body, Reason>> {
        Some(match type_ {
            OFPT_FEATURES_REPLY => decode_features(r).map(Body::FeaturesReply),
            OFPT_PACKET_IN => decode_packet_in(r).map(Body::PacketIn),
            OFPT_FLOW_REMOVED => decode_flow_removed(r).map(Body::FlowRemoved),
            OFPT_PORT_STATUS => decode_port_status(r),
            OFPT_PACKET_OUT => decode_packet_out(r).map(Body::PacketOut),
            OFPT_FLOW_MOD => decode_flow_mod(r).map(Body::FlowMod),
            OFPT_STATS_REQUEST => StatsRequest::decode(r).map(Body::StatsRequest),
            OFPT_STATS_REPLY => StatsReply::decode(r).map(Body::StatsReply),
            OFPT_VENDOR => r.u32().map(|vendor| Body::Vendor { vendor, data: r.rest().to_vec() }),
            OFPT_PORT_MOD => decode_port_mod(r).map(Body::PortMod),
            OFPT_QUEUE_GET_CONFIG_REQUEST => (|| {
                let port = r.u16()?;
                r.skip(2)?;
                r.finish(Reason::BadLen)?;
                Ok(Body::QueueGetConfigRequest { port })
            })(),
            OFPT_QUEUE_GET_CONFIG_REPLY => (|| {
                let port = r.u16()?;
                r.skip(6)?;
                let mut queues = Vec::new();
                while r.remaining() > 0 {
                    queues.push(PacketQueue::decode(r, true)?);
                }
                Ok(Body::QueueGetConfigReply { port, queues })
            })(),
            _ => return None,
        })
    }

    /// Appends the body (after the header) to `out`.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        match self {
            Body::FeaturesReply(f) => {
                out.put_u64(f.datapath_id);
                out.put_u32(f.n_buffers);
                out.put_u8(f.n_tables);
                out.put_zeros(3);
                out.put_u32(f.capabilities);
                out.put_u32(f.actions);
                f.ports.iter().for_each(|p| p.encode(out));
            }
            Body::PacketIn(p) => {
                out.put_u32(p.buffer_id);
                out.put_u16(p.total_len);
                out.put_u16(p.in_port);
                out.put_u8(p.reason);
                out.put_u8(0);
                out.extend_from_slice(&p.data);
            }
            Body::FlowRemoved(f) => {
                f.match_.encode(out);
                out.put_u64(f.cookie);
                out.put_u16(f.priority);
                out.put_u8(f.reason);
                out.put_u8(0);
                out.put_u32(f.duration_sec);
                out.put_u32(f.duration_nsec);
                out.put_u16(f.idle_timeout);
                out.put_zeros(2);
                out.put_u64(f.packet_count);
                out.put_u64(f.byte_count);
            }
            Body::PortStatus { reason, desc } => {
                out.put_u8(*reason);
                out.put_zeros(7);
                desc.encode(out);
            }
            Body::PacketOut(p) => {
                let start = out.len();
                out.put_u32(p.buffer_id);
                out.put_u16(p.in_port);
                out.put_u16(0);
                let actions_start = out.len();
                encode_actions(&p.actions, out)?;
                out.patch_len(start + 6, actions_start)?;
                out.extend_from_slice(&p.data);
            }
            Body::FlowMod(f) => {
                f.match_.encode(out);
                out.put_u64(f.cookie);
                out.put_u16(f.command);
                out.put_u16(f.idle_timeout);
                out.put_u16(f.hard_timeout);
                out.put_u16(f.priority);
                out.put_u32(f.buffer_id);
                out.put_u16(f.out_port);
                out.put_u16(f.flags);
                encode_actions(&f.actions, out)?;
            }
            Body::StatsRequest(s) => s.encode(out),
            Body::StatsReply(s) => s.encode(out)?,
            Body::Vendor { vendor, data } => {
                out.put_u32(*vendor);
                out.extend_from_slice(data);
            }
            Body::PortMod(p) => {
                out.put_u16(p.port_no);
                out.extend_from_slice(&p.hw_addr);
                out.put_u32(p.config);
                out.put_u32(p.mask);
                out.put_u32(p.advertise);
                out.put_zeros(4);
            }
            Body::QueueGetConfigRequest { port } => {
                out.put_u16(*port);
                out.put_zeros(2);
            }
            Body::QueueGetConfigReply { port, queues } => {
                out.put_u16(*port);
                out.put_zeros(6);
                queues.iter().try_for_each(|q| q.encode(out, true))?;
            }
        }
        Ok(())
    }
}

/// Length of `ofp_phy_port`.
const PHY_PORT_LEN: usize = 48;

fn decode_features(r: &mut Reader<'_>) -> Result<FeaturesReply, Reason> {
    let datapath_id = r.u64()?;
    let n_buffers = r.u32()?;
    let n_tables = r.u8()?;
    r.skip(3)?;
    let capabilities = r.u32()?;
    let actions = r.u32()?;
    if !r.remaining().is_multiple_of(PHY_PORT_LEN) {
        return Err(Reason::BadLen);
    }
    let mut ports = Vec::new();
    while r.remaining() > 0 {
        ports.push(PhyPort::decode(r)?);
    }
    Ok(FeaturesReply { datapath_id, n_buffers, n_tables, capabilities, actions, ports })
}

fn decode_packet_in(r: &mut Reader<'_>) -> Result<PacketIn, Reason> {
    let buffer_id = r.u32()?;
    let total_len = r.u16()?;
    let in_port = r.u16()?;
    let reason = r.u8()?;
    r.skip(1)?;
    Ok(PacketIn { buffer_id, total_len, in_port, reason, data: r.rest().to_vec() })
}

fn decode_flow_removed(r: &mut Reader<'_>) -> Result<FlowRemoved, Reason> {
    let match_ = Match::decode(r)?;
    let cookie = r.u64()?;
    let priority = r.u16()?;
    let reason = r.u8()?;
    r.skip(1)?;
    let duration_sec = r.u32()?;
    let duration_nsec = r.u32()?;
    let idle_timeout = r.u16()?;
    r.skip(2)?;
    let f = FlowRemoved {
        match_,
        cookie,
        priority,
        reason,
        duration_sec,
        duration_nsec,
        idle_timeout,
        packet_count: r.u64()?,
        byte_count: r.u64()?,
    };
    r.finish(Reason::BadLen)?;
    Ok(f)
}

fn decode_port_status(r: &mut Reader<'_>) -> Result<Body, Reason> {
    let reason = r.u8()?;
    r.skip(7)?;
    let desc = PhyPort::decode(r)?;
    r.finish(Reason::BadLen)?;
    Ok(Body::PortStatus { reason, desc })
}

fn decode_packet_out(r: &mut Reader<'_>) -> Result<PacketOut, Reason> {
    let buffer_id = r.u32()?;
    let in_port = r.u16()?;
    let actions_len = usize::from(r.u16()?);
    let actions = decode_actions(r.bytes(actions_len)?)?;
    Ok(PacketOut { buffer_id, in_port, actions, data: r.rest().to_vec() })
}

fn decode_flow_mod(r: &mut Reader<'_>) -> Result<FlowMod, Reason> {
    Ok(FlowMod {
        match_: Match::decode(r)?,
        cookie: r.u64()?,
        command: r.u16()?,
        idle_timeout: r.u16()?,
        hard_timeout: r.u16()?,
        priority: r.u16()?,
        buffer_id: r.u32()?,
        out_port: r.u16()?,
        flags: r.u16()?,
        actions: decode_actions(r.rest())?,
    })
}

fn decode_port_mod(r: &mut Reader<'_>) -> Result<PortMod, Reason> {
    let port_no = r.u16()?;
    let hw_addr = r.array()?;
    let m = PortMod { port_no, hw_addr, config: r.u32()?, mask: r.u32()?, advertise: r.u32()? };
    r.skip(4)?;
    r.finish(Reason::BadLen)?;
    Ok(m)
}
