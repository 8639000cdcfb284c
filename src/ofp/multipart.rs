//! `OFPT_MULTIPART_REQUEST` / `OFPT_MULTIPART_REPLY` (OpenFlow 1.3.5 §7.3.5): every type the
//! spec defines is typed (the experimenter one as a raw [`Experimenter`]); an undefined type is
//! `OFPBRC_BAD_MULTIPART`. Queue, group and meter entries are in [`super::stats`]; splitting a
//! long reply into several messages is [`split_reply`].

use super::action::{decode_instructions, encode_instructions, Instruction};
use super::config::Experimenter;
use super::stats::*;

use super::error::{EncodeError, Reason};
use super::oxm::{decode_match, encode_match, Oxm};
use super::port::{Port, PORT_LEN};
pub use super::split::split_reply;
use super::wire::{pad8, Put, Reader};

/// `OFPMP_DESC`
pub const OFPMP_DESC: u16 = 0;
/// `OFPMP_FLOW`
pub const OFPMP_FLOW: u16 = 1;
/// `OFPMP_AGGREGATE`
pub const OFPMP_AGGREGATE: u16 = 2;
/// `OFPMP_TABLE`
pub const OFPMP_TABLE: u16 = 3;
/// `OFPMP_PORT_STATS`
pub const OFPMP_PORT_STATS: u16 = 4;
/// `OFPMP_QUEUE`
pub const OFPMP_QUEUE: u16 = 5;
/// `OFPMP_GROUP`
pub const OFPMP_GROUP: u16 = 6;
/// `OFPMP_GROUP_DESC`
pub const OFPMP_GROUP_DESC: u16 = 7;
/// `OFPMP_GROUP_FEATURES`
pub const OFPMP_GROUP_FEATURES: u16 = 8;
/// `OFPMP_METER`
pub const OFPMP_METER: u16 = 9;
/// `OFPMP_METER_CONFIG`
pub const OFPMP_METER_CONFIG: u16 = 10;
/// `OFPMP_METER_FEATURES`
pub const OFPMP_METER_FEATURES: u16 = 11;
/// `OFPMP_TABLE_FEATURES`
pub const OFPMP_TABLE_FEATURES: u16 = 12;
/// `OFPMP_PORT_DESC`
pub const OFPMP_PORT_DESC: u16 = 13;
/// `OFPMP_EXPERIMENTER`
pub const OFPMP_EXPERIMENTER: u16 = 0xffff;
/// `OFPMPF_REQ_MORE` / `OFPMPF_REPLY_MORE`: more parts follow.
pub const OFPMPF_MORE: u16 = 1;

/// `OFPT_MULTIPART_REQUEST`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MultipartRequest {
    /// `OFPMPF_REQ_*`.
    pub flags: u16,
    /// What is asked for.
    pub body: MultipartRequestBody,
}

/// The body of a multipart request, by `ofp_multipart_type`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MultipartRequestBody {
    /// `OFPMP_DESC`
    Desc,
    /// `OFPMP_FLOW`
    Flow(FlowStatsRequest),
    /// `OFPMP_AGGREGATE`
    Aggregate(FlowStatsRequest),
    /// `OFPMP_TABLE`
    Table,
    /// `OFPMP_PORT_STATS` for one port or `OFPP_ANY`.
    PortStats {
        /// Port number, or `OFPP_ANY`.
        port_no: u32,
    },
    /// `OFPMP_PORT_DESC`
    PortDesc,
    /// `OFPMP_TABLE_FEATURES`: empty to query, non-empty to set.
    TableFeatures(Vec<TableFeatures>),
    /// `OFPMP_QUEUE`
    Queue {
        /// Port, or `OFPP_ANY`.
        port_no: u32,
        /// Queue, or `OFPQ_ALL`.
        queue_id: u32,
    },
    /// `OFPMP_GROUP`
    Group {
        /// Group, or `OFPG_ALL`.
        group_id: u32,
    },
    /// `OFPMP_GROUP_DESC`
    GroupDesc,
    /// `OFPMP_GROUP_FEATURES`
    GroupFeatures,
    /// `OFPMP_METER`
    Meter {
        /// Meter, or `OFPM_ALL`.
        meter_id: u32,
    },
    /// `OFPMP_METER_CONFIG`
    MeterConfig {
        /// Meter, or `OFPM_ALL`.
        meter_id: u32,
    },
    /// `OFPMP_METER_FEATURES`
    MeterFeatures,
    /// `OFPMP_EXPERIMENTER`
    Experimenter(Experimenter),
}

/// `OFPT_MULTIPART_REPLY`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MultipartReply {
    /// `OFPMPF_REPLY_*`.
    pub flags: u16,
    /// The answer.
    pub body: MultipartReplyBody,
}

/// The body of a multipart reply, by `ofp_multipart_type`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MultipartReplyBody {
    /// `OFPMP_DESC`
    Desc(Desc),
    /// `OFPMP_FLOW`
    Flow(Vec<FlowStats>),
    /// `OFPMP_AGGREGATE`
    Aggregate(AggregateStats),
    /// `OFPMP_TABLE`
    Table(Vec<TableStats>),
    /// `OFPMP_PORT_STATS`
    PortStats(Vec<PortStats>),
    /// `OFPMP_PORT_DESC`
    PortDesc(Vec<Port>),
    /// `OFPMP_TABLE_FEATURES`
    TableFeatures(Vec<TableFeatures>),
    /// `OFPMP_QUEUE`
    Queue(Vec<QueueStats>),
    /// `OFPMP_GROUP`
    Group(Vec<GroupStats>),
    /// `OFPMP_GROUP_DESC`
    GroupDesc(Vec<GroupDesc>),
    /// `OFPMP_GROUP_FEATURES`
    GroupFeatures(GroupFeatures),
    /// `OFPMP_METER`
    Meter(Vec<MeterStats>),
    /// `OFPMP_METER_CONFIG`
    MeterConfig(Vec<MeterConfig>),
    /// `OFPMP_METER_FEATURES`
    MeterFeatures(MeterFeatures),
    /// `OFPMP_EXPERIMENTER`
    Experimenter(Experimenter),
}

/// `ofp_flow_stats_request` / `ofp_aggregate_stats_request` (same layout).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowStatsRequest {
    /// Table to read, or `OFPTT_ALL`.
    pub table_id: u8,
    /// Require an output action to this port (`OFPP_ANY`: don't care).
    pub out_port: u32,
    /// Require an output to this group (`OFPG_ANY`: don't care).
    pub out_group: u32,
    /// Cookie value to match.
    pub cookie: u64,
    /// Cookie bits that must match.
    pub cookie_mask: u64,
    /// Fields to match.
    pub match_: Vec<Oxm>,
}

/// `DESC_STR_LEN`
pub const DESC_STR_LEN: usize = 256;
/// `SERIAL_NUM_LEN`
pub const SERIAL_NUM_LEN: usize = 32;

/// `ofp_desc`: who made this switch.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Desc {
    /// Manufacturer description.
    pub mfr_desc: String,
    /// Hardware description.
    pub hw_desc: String,
    /// Software description.
    pub sw_desc: String,
    /// Serial number.
    pub serial_num: String,
    /// Human readable description of the datapath.
    pub dp_desc: String,
}

/// `ofp_flow_stats`: one flow entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowStats {
    /// The flow's table.
    pub table_id: u8,
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
    /// `OFPFF_*`.
    pub flags: u16,
    /// Cookie.
    pub cookie: u64,
    /// Packets matched.
    pub packet_count: u64,
    /// Bytes matched.
    pub byte_count: u64,
    /// The match.
    pub match_: Vec<Oxm>,
    /// The instructions.
    pub instructions: Vec<Instruction>,
}

/// `ofp_aggregate_stats_reply`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct AggregateStats {
    /// Packets in all matching flows.
    pub packet_count: u64,
    /// Bytes in all matching flows.
    pub byte_count: u64,
    /// Number of matching flows.
    pub flow_count: u32,
}

/// `ofp_table_stats`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TableStats {
    /// Table id.
    pub table_id: u8,
    /// Active entries.
    pub active_count: u32,
    /// Packets looked up.
    pub lookup_count: u64,
    /// Packets that hit an entry.
    pub matched_count: u64,
}

/// `ofp_port_stats`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PortStats {
    /// Port number.
    pub port_no: u32,
    /// Received packets.
    pub rx_packets: u64,
    /// Transmitted packets.
    pub tx_packets: u64,
    /// Received bytes.
    pub rx_bytes: u64,
    /// Transmitted bytes.
    pub tx_bytes: u64,
    /// Packets dropped by RX.
    pub rx_dropped: u64,
    /// Packets dropped by TX.
    pub tx_dropped: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Transmit errors.
    pub tx_errors: u64,
    /// Frame alignment errors.
    pub rx_frame_err: u64,
    /// Packets with RX overrun.
    pub rx_over_err: u64,
    /// CRC errors.
    pub rx_crc_err: u64,
    /// Collisions.
    pub collisions: u64,
    /// Time the port has been alive, seconds.
    pub duration_sec: u32,
    /// Time alive beyond `duration_sec`, nanoseconds.
    pub duration_nsec: u32,
}

/// `OFP_MAX_TABLE_NAME_LEN`
pub const OFP_MAX_TABLE_NAME_LEN: usize = 32;

/// `ofp_table_features`: one table's capabilities.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TableFeatures {
    /// Table id.
    pub table_id: u8,
    /// Name.
    pub name: String,
    /// Metadata bits the table can match.
    pub metadata_match: u64,
    /// Metadata bits the table can write.
    pub metadata_write: u64,
    /// `OFPTC_*` bitmap.
    pub config: u32,
    /// Max number of entries supported.
    pub max_entries: u32,
    /// Properties, kept generic (`OFPTFPT_*` type and body) for the agent to fill.
    pub properties: Vec<TableFeatureProp>,
}

/// `OFPTFPT_INSTRUCTIONS` … `OFPTFPT_APPLY_SETFIELD_MISS`: the table-feature property types
/// (10 and 11 are unused); ovs-ofctl wants the eight even-numbered ones up to 14 present.
pub mod table_feature_prop_type {
    /// `OFPTFPT_INSTRUCTIONS`
    pub const OFPTFPT_INSTRUCTIONS: u16 = 0;
    /// `OFPTFPT_INSTRUCTIONS_MISS`
    pub const OFPTFPT_INSTRUCTIONS_MISS: u16 = 1;
    /// `OFPTFPT_NEXT_TABLES`
    pub const OFPTFPT_NEXT_TABLES: u16 = 2;
    /// `OFPTFPT_NEXT_TABLES_MISS`
    pub const OFPTFPT_NEXT_TABLES_MISS: u16 = 3;
    /// `OFPTFPT_WRITE_ACTIONS`
    pub const OFPTFPT_WRITE_ACTIONS: u16 = 4;
    /// `OFPTFPT_WRITE_ACTIONS_MISS`
    pub const OFPTFPT_WRITE_ACTIONS_MISS: u16 = 5;
    /// `OFPTFPT_APPLY_ACTIONS`
    pub const OFPTFPT_APPLY_ACTIONS: u16 = 6;
    /// `OFPTFPT_APPLY_ACTIONS_MISS`
    pub const OFPTFPT_APPLY_ACTIONS_MISS: u16 = 7;
    /// `OFPTFPT_MATCH`
    pub const OFPTFPT_MATCH: u16 = 8;
    /// `OFPTFPT_WILDCARDS`
    pub const OFPTFPT_WILDCARDS: u16 = 10;
    /// `OFPTFPT_WRITE_SETFIELD`
    pub const OFPTFPT_WRITE_SETFIELD: u16 = 12;
    /// `OFPTFPT_WRITE_SETFIELD_MISS`
    pub const OFPTFPT_WRITE_SETFIELD_MISS: u16 = 13;
    /// `OFPTFPT_APPLY_SETFIELD`
    pub const OFPTFPT_APPLY_SETFIELD: u16 = 14;
    /// `OFPTFPT_APPLY_SETFIELD_MISS`
    pub const OFPTFPT_APPLY_SETFIELD_MISS: u16 = 15;
    /// `OFPTFPT_EXPERIMENTER`
    pub const OFPTFPT_EXPERIMENTER: u16 = 0xfffe;
    /// `OFPTFPT_EXPERIMENTER_MISS`
    pub const OFPTFPT_EXPERIMENTER_MISS: u16 = 0xffff;
}

/// One table-feature property: its type and body (without the 4-byte property header and
/// without the padding to 8 that follows it on the wire).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TableFeatureProp {
    /// `OFPTFPT_*`.
    pub type_: u16,
    /// The body: instruction/action headers, table ids or OXM headers, as the type says.
    pub data: Vec<u8>,
}

/// Fixed part of `ofp_table_features`.
const TABLE_FEATURES_LEN: usize = 64;
/// Fixed part of `ofp_flow_stats` before the match.
const FLOW_STATS_LEN: usize = 48;
/// Length of `ofp_table_stats`.
const TABLE_STATS_LEN: usize = 24;
/// Length of `ofp_port_stats`.
const PORT_STATS_LEN: usize = 112;

impl TableFeatures {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = out.len();
        out.put_u16(0);
        out.put_u8(self.table_id);
        out.put_zeros(5);
        out.put_str(&self.name, OFP_MAX_TABLE_NAME_LEN);
        out.put_u64(self.metadata_match);
        out.put_u64(self.metadata_write);
        out.put_u32(self.config);
        out.put_u32(self.max_entries);
        for p in &self.properties {
            let pstart = out.len();
            out.put_u16(p.type_);
            out.put_u16(0);
            out.extend_from_slice(&p.data);
            out.patch_len(pstart + 2, pstart)?;
            out.pad8(pstart);
        }
        out.patch_len(start, start)
    }

    fn decode(r: &mut Reader<'_>) -> Result<TableFeatures, Reason> {
        let length = usize::from(r.u16()?);
        if length < TABLE_FEATURES_LEN {
            return Err(Reason::BadLen);
        }
        let mut t = Reader::new(r.bytes(length - 2)?, Reason::BadLen);
        let table_id = t.u8()?;
        t.skip(5)?;
        let mut tf = TableFeatures {
            table_id,
            name: t.str(OFP_MAX_TABLE_NAME_LEN)?,
            metadata_match: t.u64()?,
            metadata_write: t.u64()?,
            config: t.u32()?,
            max_entries: t.u32()?,
            properties: Vec::new(),
        };
        while t.remaining() > 0 {
            let type_ = t.u16()?;
            let len = usize::from(t.u16()?);
            if len < 4 {
                return Err(Reason::BadLen);
            }
            let data = t.bytes(len - 4)?.to_vec();
            t.skip(pad8(len) - len)?;
            tf.properties.push(TableFeatureProp { type_, data });
        }
        Ok(tf)
    }
}

fn decode_list<T>(
    buf: &[u8],
    mut one: impl FnMut(&mut Reader<'_>) -> Result<T, Reason>,
) -> Result<Vec<T>, Reason> {
    let mut r = Reader::new(buf, Reason::BadLen);
    let mut out = Vec::new();
    while r.remaining() > 0 {
        out.push(one(&mut r)?);
    }
    Ok(out)
}

impl FlowStatsRequest {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.put_u8(self.table_id);
        out.put_zeros(3);
        out.put_u32(self.out_port);
        out.put_u32(self.out_group);
        out.put_zeros(4);
        out.put_u64(self.cookie);
        out.put_u64(self.cookie_mask);
        encode_match(&self.match_, out)
    }

    fn decode(r: &mut Reader<'_>) -> Result<FlowStatsRequest, Reason> {
        let table_id = r.u8()?;
        r.skip(3)?;
        let out_port = r.u32()?;
        let out_group = r.u32()?;
        r.skip(4)?;
        let req = FlowStatsRequest {
            table_id,
            out_port,
            out_group,
            cookie: r.u64()?,
            cookie_mask: r.u64()?,
            match_: decode_match(r)?,
        };
        r.finish(Reason::BadLen)?;
        Ok(req)
    }
}

impl FlowStats {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = out.len();
        out.put_u16(0);
        out.put_u8(self.table_id);
        out.put_u8(0);
        out.put_u32(self.duration_sec);
        out.put_u32(self.duration_nsec);
        out.put_u16(self.priority);
        out.put_u16(self.idle_timeout);
        out.put_u16(self.hard_timeout);
        out.put_u16(self.flags);
        out.put_zeros(4);
        out.put_u64(self.cookie);
        out.put_u64(self.packet_count);
        out.put_u64(self.byte_count);
        encode_match(&self.match_, out)?;
        encode_instructions(&self.instructions, out)?;
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
        let duration_sec = f.u32()?;
        let duration_nsec = f.u32()?;
        let priority = f.u16()?;
        let idle_timeout = f.u16()?;
        let hard_timeout = f.u16()?;
        let flags = f.u16()?;
        f.skip(4)?;
        Ok(FlowStats {
            table_id,
            duration_sec,
            duration_nsec,
            priority,
            idle_timeout,
            hard_timeout,
            flags,
            cookie: f.u64()?,
            packet_count: f.u64()?,
            byte_count: f.u64()?,
            match_: decode_match(&mut f)?,
            instructions: decode_instructions(f.rest())?,
        })
    }
}

impl PortStats {
    fn encode(&self, out: &mut Vec<u8>) {
        out.put_u32(self.port_no);
        out.put_zeros(4);
        for v in [
            self.rx_packets,
            self.tx_packets,
            self.rx_bytes,
            self.tx_bytes,
            self.rx_dropped,
            self.tx_dropped,
            self.rx_errors,
            self.tx_errors,
            self.rx_frame_err,
            self.rx_over_err,
            self.rx_crc_err,
            self.collisions,
        ] {
            out.put_u64(v);
        }
        out.put_u32(self.duration_sec);
        out.put_u32(self.duration_nsec);
    }

    fn decode(r: &mut Reader<'_>) -> Result<PortStats, Reason> {
        let port_no = r.u32()?;
        r.skip(4)?;
        Ok(PortStats {
            port_no,
            rx_packets: r.u64()?,
            tx_packets: r.u64()?,
            rx_bytes: r.u64()?,
            tx_bytes: r.u64()?,
            rx_dropped: r.u64()?,
            tx_dropped: r.u64()?,
            rx_errors: r.u64()?,
            tx_errors: r.u64()?,
            rx_frame_err: r.u64()?,
            rx_over_err: r.u64()?,
            rx_crc_err: r.u64()?,
            collisions: r.u64()?,
            duration_sec: r.u32()?,
            duration_nsec: r.u32()?,
        })
    }
}

impl Desc {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.put_str(&self.mfr_desc, DESC_STR_LEN);
        out.put_str(&self.hw_desc, DESC_STR_LEN);
        out.put_str(&self.sw_desc, DESC_STR_LEN);
        out.put_str(&self.serial_num, SERIAL_NUM_LEN);
        out.put_str(&self.dp_desc, DESC_STR_LEN);
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Desc, Reason> {
        let d = Desc {
            mfr_desc: r.str(DESC_STR_LEN)?,
            hw_desc: r.str(DESC_STR_LEN)?,
            sw_desc: r.str(DESC_STR_LEN)?,
            serial_num: r.str(SERIAL_NUM_LEN)?,
            dp_desc: r.str(DESC_STR_LEN)?,
        };
        r.finish(Reason::BadLen)?;
        Ok(d)
    }
}

impl AggregateStats {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.put_u64(self.packet_count);
        out.put_u64(self.byte_count);
        out.put_u32(self.flow_count);
        out.put_zeros(4);
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<AggregateStats, Reason> {
        let a = AggregateStats { packet_count: r.u64()?, byte_count: r.u64()?, flow_count: r.u32()? };
        r.skip(4)?;
        r.finish(Reason::BadLen)?;
        Ok(a)
    }
}

impl TableStats {
    fn encode(&self, out: &mut Vec<u8>) {
        out.put_u8(self.table_id);
        out.put_zeros(3);
        out.put_u32(self.active_count);
        out.put_u64(self.lookup_count);
        out.put_u64(self.matched_count);
    }

    fn decode(r: &mut Reader<'_>) -> Result<TableStats, Reason> {
        let table_id = r.u8()?;
        r.skip(3)?;
        Ok(TableStats { table_id, active_count: r.u32()?, lookup_count: r.u64()?, matched_count: r.u64()? })
    }
}

/// Writes the multipart header (`type`, `flags`, pad).
fn put_mp_header(out: &mut Vec<u8>, type_: u16, flags: u16) {
    out.put_u16(type_);
    out.put_u16(flags);
    out.put_zeros(4);
}

/// Reads a request body that is one `u32` and 4 bytes of padding.
fn id_and_pad(r: &mut Reader<'_>) -> Result<u32, Reason> {
    let id = r.u32()?;
    r.skip(4)?;
    Ok(id)
}

impl MultipartRequestBody {
    /// `OFPMP_*` of this body.
    pub fn type_code(&self) -> u16 {
        use MultipartRequestBody as B;
        match self {
            B::Desc => OFPMP_DESC,
            B::Flow(_) => OFPMP_FLOW,
            B::Aggregate(_) => OFPMP_AGGREGATE,
            B::Table => OFPMP_TABLE,
            B::PortStats { .. } => OFPMP_PORT_STATS,
            B::PortDesc => OFPMP_PORT_DESC,
            B::TableFeatures(_) => OFPMP_TABLE_FEATURES,
            B::Queue { .. } => OFPMP_QUEUE,
            B::Group { .. } => OFPMP_GROUP,
            B::GroupDesc => OFPMP_GROUP_DESC,
            B::GroupFeatures => OFPMP_GROUP_FEATURES,
            B::Meter { .. } => OFPMP_METER,
            B::MeterConfig { .. } => OFPMP_METER_CONFIG,
            B::MeterFeatures => OFPMP_METER_FEATURES,
            B::Experimenter(_) => OFPMP_EXPERIMENTER,
        }
    }
}

impl MultipartRequest {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        use MultipartRequestBody as B;
        put_mp_header(out, self.body.type_code(), self.flags);
        match &self.body {
            B::Desc | B::Table | B::PortDesc | B::GroupDesc | B::GroupFeatures | B::MeterFeatures => {}
            B::Flow(f) | B::Aggregate(f) => f.encode(out)?,
            B::PortStats { port_no: id }
            | B::Group { group_id: id }
            | B::Meter { meter_id: id }
            | B::MeterConfig { meter_id: id } => {
                out.put_u32(*id);
                out.put_zeros(4);
            }
            B::Queue { port_no, queue_id } => {
                out.put_u32(*port_no);
                out.put_u32(*queue_id);
            }
            B::TableFeatures(t) => t.iter().try_for_each(|t| t.encode(out))?,
            B::Experimenter(e) => e.encode(out),
        }
        Ok(())
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<MultipartRequest, Reason> {
        use MultipartRequestBody as B;
        let type_ = r.u16()?;
        let flags = r.u16()?;
        r.skip(4)?;
        let body = match type_ {
            OFPMP_DESC => B::Desc,
            OFPMP_TABLE => B::Table,
            OFPMP_PORT_DESC => B::PortDesc,
            OFPMP_GROUP_DESC => B::GroupDesc,
            OFPMP_GROUP_FEATURES => B::GroupFeatures,
            OFPMP_METER_FEATURES => B::MeterFeatures,
            OFPMP_FLOW => B::Flow(FlowStatsRequest::decode(r)?),
            OFPMP_AGGREGATE => B::Aggregate(FlowStatsRequest::decode(r)?),
            OFPMP_PORT_STATS => B::PortStats { port_no: id_and_pad(r)? },
            OFPMP_GROUP => B::Group { group_id: id_and_pad(r)? },
            OFPMP_METER => B::Meter { meter_id: id_and_pad(r)? },
            OFPMP_METER_CONFIG => B::MeterConfig { meter_id: id_and_pad(r)? },
            OFPMP_QUEUE => B::Queue { port_no: r.u32()?, queue_id: r.u32()? },
            OFPMP_TABLE_FEATURES => B::TableFeatures(decode_list(r.rest(), TableFeatures::decode)?),
            OFPMP_EXPERIMENTER => B::Experimenter(Experimenter::decode(r)?),
            _ => return Err(Reason::BadMultipart { type_ }),
        };
        r.finish(Reason::BadLen)?;
        Ok(MultipartRequest { flags, body })
    }
}

impl MultipartReplyBody {
    /// `OFPMP_*` of this body.
    pub fn type_code(&self) -> u16 {
        use MultipartReplyBody as B;
        match self {
            B::Desc(_) => OFPMP_DESC,
            B::Flow(_) => OFPMP_FLOW,
            B::Aggregate(_) => OFPMP_AGGREGATE,
            B::Table(_) => OFPMP_TABLE,
            B::PortStats(_) => OFPMP_PORT_STATS,
            B::PortDesc(_) => OFPMP_PORT_DESC,
            B::TableFeatures(_) => OFPMP_TABLE_FEATURES,
            B::Queue(_) => OFPMP_QUEUE,
            B::Group(_) => OFPMP_GROUP,
            B::GroupDesc(_) => OFPMP_GROUP_DESC,
            B::GroupFeatures(_) => OFPMP_GROUP_FEATURES,
            B::Meter(_) => OFPMP_METER,
            B::MeterConfig(_) => OFPMP_METER_CONFIG,
            B::MeterFeatures(_) => OFPMP_METER_FEATURES,
            B::Experimenter(_) => OFPMP_EXPERIMENTER,
        }
    }

    /// Appends the body (everything after the multipart header).
    pub(crate) fn encode_entries(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        use MultipartReplyBody as B;
        match self {
            B::Desc(d) => d.encode(out),
            B::Flow(f) => f.iter().try_for_each(|f| f.encode(out))?,
            B::Aggregate(a) => a.encode(out),
            B::Table(t) => t.iter().for_each(|t| t.encode(out)),
            B::PortStats(p) => p.iter().for_each(|p| p.encode(out)),
            B::PortDesc(p) => p.iter().for_each(|p| p.encode(out)),
            B::TableFeatures(t) => t.iter().try_for_each(|t| t.encode(out))?,
            B::Queue(q) => q.iter().for_each(|q| q.encode(out)),
            B::Group(g) => g.iter().try_for_each(|g| g.encode(out))?,
            B::GroupDesc(g) => g.iter().try_for_each(|g| g.encode(out))?,
            B::GroupFeatures(f) => f.encode(out),
            B::Meter(m) => m.iter().try_for_each(|m| m.encode(out))?,
            B::MeterConfig(m) => m.iter().try_for_each(|m| m.encode(out))?,
            B::MeterFeatures(f) => f.encode(out),
            B::Experimenter(e) => e.encode(out),
        }
        Ok(())
    }
}

/// Decodes fixed-size entries of `size` bytes filling the rest of `r`.
fn fixed_list<T>(
    r: &mut Reader<'_>,
    size: usize,
    one: impl FnMut(&mut Reader<'_>) -> Result<T, Reason>,
) -> Result<Vec<T>, Reason> {
    if !r.remaining().is_multiple_of(size) {
        return Err(Reason::BadLen);
    }
    decode_list(r.rest(), one)
}

impl MultipartReply {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        put_mp_header(out, self.body.type_code(), self.flags);
        self.body.encode_entries(out)
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<MultipartReply, Reason> {
        use MultipartReplyBody as B;
        let type_ = r.u16()?;
        let flags = r.u16()?;
        r.skip(4)?;
        let body = match type_ {
            OFPMP_DESC => B::Desc(Desc::decode(r)?),
            OFPMP_FLOW => B::Flow(decode_list(r.rest(), FlowStats::decode)?),
            OFPMP_AGGREGATE => B::Aggregate(AggregateStats::decode(r)?),
            OFPMP_TABLE => B::Table(fixed_list(r, TABLE_STATS_LEN, TableStats::decode)?),
            OFPMP_PORT_STATS => B::PortStats(fixed_list(r, PORT_STATS_LEN, PortStats::decode)?),
            OFPMP_PORT_DESC => B::PortDesc(fixed_list(r, PORT_LEN, Port::decode)?),
            OFPMP_TABLE_FEATURES => B::TableFeatures(decode_list(r.rest(), TableFeatures::decode)?),
            OFPMP_QUEUE => B::Queue(fixed_list(r, QUEUE_STATS_LEN, QueueStats::decode)?),
            OFPMP_GROUP => B::Group(decode_list(r.rest(), GroupStats::decode)?),
            OFPMP_GROUP_DESC => B::GroupDesc(decode_list(r.rest(), GroupDesc::decode)?),
            OFPMP_GROUP_FEATURES => B::GroupFeatures(GroupFeatures::decode(r)?),
            OFPMP_METER => B::Meter(decode_list(r.rest(), MeterStats::decode)?),
            OFPMP_METER_CONFIG => B::MeterConfig(decode_list(r.rest(), MeterConfig::decode)?),
            OFPMP_METER_FEATURES => B::MeterFeatures(MeterFeatures::decode(r)?),
            OFPMP_EXPERIMENTER => B::Experimenter(Experimenter::decode(r)?),
            _ => return Err(Reason::BadMultipart { type_ }),
        };
        r.finish(Reason::BadLen)?;
        Ok(MultipartReply { flags, body })
    }
}
