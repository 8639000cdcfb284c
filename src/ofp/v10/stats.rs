//! OpenFlow 1.0 `OFPT_STATS_REQUEST` / `OFPT_STATS_REPLY` (1.0.0 §5.3.5): desc, flow,
//! aggregate, table, port, queue and vendor statistics.

use super::action::{decode_actions, encode_actions, Action};
use super::Match;
use crate::ofp::error::{EncodeError, Reason};
use crate::ofp::multipart::{AggregateStats, Desc};
use crate::ofp::wire::{Put, Reader};

/// `OFPST_DESC`
pub const OFPST_DESC: u16 = 0;
/// `OFPST_FLOW`
pub const OFPST_FLOW: u16 = 1;
/// `OFPST_AGGREGATE`
pub const OFPST_AGGREGATE: u16 = 2;
/// `OFPST_TABLE`
pub const OFPST_TABLE: u16 = 3;
/// `OFPST_PORT`
pub const OFPST_PORT: u16 = 4;
/// `OFPST_QUEUE`
pub const OFPST_QUEUE: u16 = 5;
/// `OFPST_VENDOR`
pub const OFPST_VENDOR: u16 = 0xffff;
/// Port descriptions in OpenFlow 1.0: Open vSwitch's extension (`OFPST10_PORT_DESC`, the
/// number OpenFlow 1.3 later gave `OFPMP_PORT_DESC`), which `ovs-ofctl dump-ports-desc` sends.
pub const OFPST_PORT_DESC: u16 = 13;
/// `sizeof(struct ofp_phy_port)`.
const PHY_PORT_LEN: usize = 48;
/// `OFPSF_REPLY_MORE`: more replies follow.
pub const OFPSF_REPLY_MORE: u16 = 1;

/// `OFPT_STATS_REQUEST` of 1.0.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StatsRequest {
    /// Flags (none defined).
    pub flags: u16,
    /// What is asked for.
    pub body: StatsRequestBody,
}

/// Body of a 1.0 stats request.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum StatsRequestBody {
    /// `OFPST_DESC`
    Desc,
    /// `OFPST_FLOW`
    Flow(FlowStatsRequest),
    /// `OFPST_AGGREGATE`
    Aggregate(FlowStatsRequest),
    /// `OFPST_TABLE`
    Table,
    /// `OFPST_PORT` for one port or `OFPP_NONE` (0xffff).
    Port {
        /// Port number.
        port_no: u16,
    },
    /// `OFPST_QUEUE`
    Queue {
        /// Port number, or `OFPP_ALL` (0xfffc).
        port_no: u16,
        /// Queue id, or `OFPQ_ALL` (0xffffffff).
        queue_id: u32,
    },
    /// `OFPST_PORT_DESC` (an Open vSwitch extension in 1.0).
    PortDesc,
    /// `OFPST_VENDOR`, raw.
    Vendor {
        /// Vendor id.
        vendor: u32,
        /// The rest.
        data: Vec<u8>,
    },
}

/// `ofp_flow_stats_request` / `ofp_aggregate_stats_request` of 1.0.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowStatsRequest {
    /// Fields to match.
    pub match_: Match,
    /// Table, or 0xff for all.
    pub table_id: u8,
    /// Require an output to this port (0xffff: don't care).
    pub out_port: u16,
}

/// `OFPT_STATS_REPLY` of 1.0.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StatsReply {
    /// `OFPSF_REPLY_MORE` or 0.
    pub flags: u16,
    /// The answer.
    pub body: StatsReplyBody,
}

/// Body of a 1.0 stats reply.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum StatsReplyBody {
    /// `OFPST_DESC`
    Desc(Desc),
    /// `OFPST_FLOW`
    Flow(Vec<FlowStats>),
    /// `OFPST_AGGREGATE`
    Aggregate(AggregateStats),
    /// `OFPST_TABLE`
    Table(Vec<TableStats>),
    /// `OFPST_PORT`
    Port(Vec<PortStats>),
    /// `OFPST_QUEUE`
    Queue(Vec<QueueStats>),
    /// `OFPST_PORT_DESC` (an Open vSwitch extension in 1.0).
    PortDesc(Vec<super::PhyPort>),
    /// `OFPST_VENDOR`, raw.
    Vendor {
        /// Vendor id.
        vendor: u32,
        /// The rest.
        data: Vec<u8>,
    },
}

/// `ofp_flow_stats` of 1.0.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowStats {
    /// Table id.
    pub table_id: u8,
    /// The match.
    pub match_: Match,
    /// Time alive, seconds.
    pub duration_sec: u32,
    /// Time alive beyond `duration_sec`, nanoseconds.
    pub duration_nsec: u32,
    /// Priority.
    pub priority: u16,
    /// Idle timeout.
    pub idle_timeout: u16,
    /// Hard timeout.
    pub hard_timeout: u16,
    /// Cookie.
    pub cookie: u64,
    /// Packets matched.
    pub packet_count: u64,
    /// Bytes matched.
    pub byte_count: u64,
    /// Actions.
    pub actions: Vec<Action>,
}

/// `ofp_table_stats` of 1.0.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TableStats {
    /// Table id.
    pub table_id: u8,
    /// Name.
    pub name: String,
    /// `OFPFW_*` the table supports.
    pub wildcards: u32,
    /// Max entries.
    pub max_entries: u32,
    /// Active entries.
    pub active_count: u32,
    /// Packets looked up.
    pub lookup_count: u64,
    /// Packets that hit.
    pub matched_count: u64,
}

/// `ofp_port_stats` of 1.0: the 1.3 counters without the duration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PortStats {
    /// Port number.
    pub port_no: u16,
    /// `rx_packets, tx_packets, rx_bytes, tx_bytes, rx_dropped, tx_dropped, rx_errors,
    /// tx_errors, rx_frame_err, rx_over_err, rx_crc_err, collisions`, in wire order.
    pub counters: [u64; 12],
}

/// `ofp_queue_stats` of 1.0.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct QueueStats {
    /// Port number.
    pub port_no: u16,
    /// Queue id.
    pub queue_id: u32,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Packets dropped for overrun.
    pub tx_errors: u64,
}

/// Fixed part of the 1.0 `ofp_flow_stats`.
const FLOW_STATS_LEN: usize = 88;
/// `ofp_table_stats` length.
const TABLE_STATS_LEN: usize = 64;
/// `ofp_port_stats` length.
const PORT_STATS_LEN: usize = 104;
/// `ofp_queue_stats` length.
const QUEUE_STATS_LEN: usize = 32;
/// `OFP_MAX_TABLE_NAME_LEN`
const TABLE_NAME_LEN: usize = 32;

impl FlowStatsRequest {
    fn encode(&self, out: &mut Vec<u8>) {
        self.match_.encode(out);
        out.put_u8(self.table_id);
        out.put_u8(0);
        out.put_u16(self.out_port);
    }

    fn decode(r: &mut Reader<'_>) -> Result<FlowStatsRequest, Reason> {
        let match_ = Match::decode(r)?;
        let table_id = r.u8()?;
        r.skip(1)?;
        let out_port = r.u16()?;
        r.finish(Reason::BadLen)?;
        Ok(FlowStatsRequest { match_, table_id, out_port })
    }
}

impl StatsRequestBody {
    fn type_code(&self) -> u16 {
        match self {
            StatsRequestBody::Desc => OFPST_DESC,
            StatsRequestBody::Flow(_) => OFPST_FLOW,
            StatsRequestBody::Aggregate(_) => OFPST_AGGREGATE,
            StatsRequestBody::Table => OFPST_TABLE,
            StatsRequestBody::Port { .. } => OFPST_PORT,
            StatsRequestBody::Queue { .. } => OFPST_QUEUE,
            StatsRequestBody::PortDesc => OFPST_PORT_DESC,
            StatsRequestBody::Vendor { .. } => OFPST_VENDOR,
        }
    }
}

impl StatsRequest {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.put_u16(self.body.type_code());
        out.put_u16(self.flags);
        match &self.body {
            StatsRequestBody::Desc | StatsRequestBody::Table | StatsRequestBody::PortDesc => {}
            StatsRequestBody::Flow(f) | StatsRequestBody::Aggregate(f) => f.encode(out),
            StatsRequestBody::Port { port_no } => {
                out.put_u16(*port_no);
                out.put_zeros(6);
            }
            StatsRequestBody::Queue { port_no, queue_id } => {
                out.put_u16(*port_no);
                out.put_zeros(2);
                out.put_u32(*queue_id);
            }
            StatsRequestBody::Vendor { vendor, data } => {
                out.put_u32(*vendor);
                out.extend_from_slice(data);
            }
        }
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<StatsRequest, Reason> {
        let type_ = r.u16()?;
        let flags = r.u16()?;
        let body = match type_ {
            OFPST_DESC => StatsRequestBody::Desc,
            OFPST_TABLE => StatsRequestBody::Table,
            OFPST_PORT_DESC => StatsRequestBody::PortDesc,
            OFPST_FLOW => StatsRequestBody::Flow(FlowStatsRequest::decode(r)?),
            OFPST_AGGREGATE => StatsRequestBody::Aggregate(FlowStatsRequest::decode(r)?),
            OFPST_PORT => {
                let port_no = r.u16()?;
                r.skip(6)?;
                StatsRequestBody::Port { port_no }
            }
            OFPST_QUEUE => {
                let port_no = r.u16()?;
                r.skip(2)?;
                StatsRequestBody::Queue { port_no, queue_id: r.u32()? }
            }
            OFPST_VENDOR => StatsRequestBody::Vendor { vendor: r.u32()?, data: r.rest().to_vec() },
            _ => return Err(Reason::BadMultipart { type_ }),
        };
        r.finish(Reason::BadLen)?;
        Ok(StatsRequest { flags, body })
    }
}

impl StatsReplyBody {
    /// `OFPST_*` of this body.
    pub fn type_code(&self) -> u16 {
        match self {
            StatsReplyBody::Desc(_) => OFPST_DESC,
            StatsReplyBody::Flow(_) => OFPST_FLOW,
            StatsReplyBody::Aggregate(_) => OFPST_AGGREGATE,
            StatsReplyBody::Table(_) => OFPST_TABLE,
            StatsReplyBody::Port(_) => OFPST_PORT,
            StatsReplyBody::Queue(_) => OFPST_QUEUE,
            StatsReplyBody::PortDesc(_) => OFPST_PORT_DESC,
            StatsReplyBody::Vendor { .. } => OFPST_VENDOR,
        }
    }
}

impl FlowStats {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = out.len();
        out.put_u16(0);
        out.put_u8(self.table_id);
        out.put_u8(0);
        self.match_.encode(out);
        out.put_u32(self.duration_sec);
        out.put_u32(self.duration_nsec);
        out.put_u16(self.priority);
        out.put_u16(self.idle_timeout);
        out.put_u16(self.hard_timeout);
        out.put_zeros(6);
        out.put_u64(self.cookie);
        out.put_u64(self.packet_count);
        out.put_u64(self.byte_count);
        encode_actions(&self.actions, out)?;
        out.patch_len(start, start)
    }

    fn decode(r: &mut Reader<'_>) -> Result<FlowStats, Reason> {
        let length = usize::from(r.u16()?);
        if length < FLOW_STATS_LEN {
            return Err(Reason::BadLen);
        }
        let mut f = Reader::new(r.bytes(length - 2)?, Reason::BadLen);
        let table_id = f.u8()?;
        f.skip(1)?;
        let match_ = Match::decode(&mut f)?;
        let duration_sec = f.u32()?;
        let duration_nsec = f.u32()?;
        let priority = f.u16()?;
        let idle_timeout = f.u16()?;
        let hard_timeout = f.u16()?;
        f.skip(6)?;
        Ok(FlowStats {
            table_id,
            match_,
            duration_sec,
            duration_nsec,
            priority,
            idle_timeout,
            hard_timeout,
            cookie: f.u64()?,
            packet_count: f.u64()?,
            byte_count: f.u64()?,
            actions: decode_actions(f.rest())?,
        })
    }
}

/// Decodes fixed-size entries of `size` bytes filling all of `buf`.
fn fixed_list<T>(
    r: &mut Reader<'_>,
    size: usize,
    mut one: impl FnMut(&mut Reader<'_>) -> Result<T, Reason>,
) -> Result<Vec<T>, Reason> {
    if !r.remaining().is_multiple_of(size) {
        return Err(Reason::BadLen);
    }
    let mut out = Vec::new();
    while r.remaining() > 0 {
        out.push(one(r)?);
    }
    Ok(out)
}

impl StatsReply {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.put_u16(self.body.type_code());
        out.put_u16(self.flags);
        self.body.encode_entries(out)
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<StatsReply, Reason> {
        let type_ = r.u16()?;
        let flags = r.u16()?;
        let body = match type_ {
            OFPST_DESC => StatsReplyBody::Desc(Desc::decode(r)?),
            OFPST_FLOW => {
                let mut flows = Vec::new();
                while r.remaining() > 0 {
                    flows.push(FlowStats::decode(r)?);
                }
                StatsReplyBody::Flow(flows)
            }
            OFPST_AGGREGATE => StatsReplyBody::Aggregate(AggregateStats::decode(r)?),
            OFPST_TABLE => StatsReplyBody::Table(fixed_list(r, TABLE_STATS_LEN, |r| {
                let table_id = r.u8()?;
                r.skip(3)?;
                Ok(TableStats {
                    table_id,
                    name: r.str(TABLE_NAME_LEN)?,
                    wildcards: r.u32()?,
                    max_entries: r.u32()?,
                    active_count: r.u32()?,
                    lookup_count: r.u64()?,
                    matched_count: r.u64()?,
                })
            })?),
            OFPST_PORT => StatsReplyBody::Port(fixed_list(r, PORT_STATS_LEN, |r| {
                let port_no = r.u16()?;
                r.skip(6)?;
                let mut counters = [0u64; 12];
                for c in &mut counters {
                    *c = r.u64()?;
                }
                Ok(PortStats { port_no, counters })
            })?),
            OFPST_QUEUE => StatsReplyBody::Queue(fixed_list(r, QUEUE_STATS_LEN, |r| {
                let port_no = r.u16()?;
                r.skip(2)?;
                Ok(QueueStats {
                    port_no,
                    queue_id: r.u32()?,
                    tx_bytes: r.u64()?,
                    tx_packets: r.u64()?,
                    tx_errors: r.u64()?,
                })
            })?),
            OFPST_PORT_DESC => StatsReplyBody::PortDesc(fixed_list(r, PHY_PORT_LEN, super::PhyPort::decode)?),
            OFPST_VENDOR => StatsReplyBody::Vendor { vendor: r.u32()?, data: r.rest().to_vec() },
            _ => return Err(Reason::BadMultipart { type_ }),
        };
        r.finish(Reason::BadLen)?;
        Ok(StatsReply { flags, body })
    }
}

impl StatsReplyBody {
    /// Appends the entries (everything after type and flags).
    pub(crate) fn encode_entries(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        match self {
            StatsReplyBody::Desc(d) => d.encode(out),
            StatsReplyBody::Flow(flows) => flows.iter().try_for_each(|f| f.encode(out))?,
            StatsReplyBody::Aggregate(a) => a.encode(out),
            StatsReplyBody::Table(tables) => {
                for t in tables {
                    out.put_u8(t.table_id);
                    out.put_zeros(3);
                    out.put_str(&t.name, TABLE_NAME_LEN);
                    out.put_u32(t.wildcards);
                    out.put_u32(t.max_entries);
                    out.put_u32(t.active_count);
                    out.put_u64(t.lookup_count);
                    out.put_u64(t.matched_count);
                }
            }
            StatsReplyBody::Port(ports) => {
                for p in ports {
                    out.put_u16(p.port_no);
                    out.put_zeros(6);
                    p.counters.iter().for_each(|c| out.put_u64(*c));
                }
            }
            StatsReplyBody::Queue(queues) => {
                for q in queues {
                    out.put_u16(q.port_no);
                    out.put_zeros(2);
                    out.put_u32(q.queue_id);
                    out.put_u64(q.tx_bytes);
                    out.put_u64(q.tx_packets);
                    out.put_u64(q.tx_errors);
                }
            }
            StatsReplyBody::PortDesc(ports) => ports.iter().for_each(|p| p.encode(out)),
            StatsReplyBody::Vendor { vendor, data } => {
                out.put_u32(*vendor);
                out.extend_from_slice(data);
            }
        }
        Ok(())
    }
}
