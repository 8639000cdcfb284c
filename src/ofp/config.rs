//! Configuration messages of OpenFlow 1.3: `OFPT_PORT_MOD`, `OFPT_TABLE_MOD`, the asynchronous
//! message filter (`OFPT_GET_ASYNC_REPLY`, `OFPT_SET_ASYNC`), queue configuration
//! (`OFPT_QUEUE_GET_CONFIG_*`) and `OFPT_EXPERIMENTER` (OpenFlow 1.3.5 §7.3.3, §7.3.6, §7.3.10,
//! §7.5.4).

use super::error::{EncodeError, Reason};
use super::wire::{Put, Reader};

/// `OFPT_PORT_MOD`: change a port's administrative bits.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PortMod {
    /// Port number.
    pub port_no: u32,
    /// The port's MAC address, as a sanity check.
    pub hw_addr: [u8; 6],
    /// `OFPPC_*` values.
    pub config: u32,
    /// Which `OFPPC_*` bits to change.
    pub mask: u32,
    /// `OFPPF_*` to advertise, or 0 to leave unchanged.
    pub advertise: u32,
}

impl PortMod {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.put_u32(self.port_no);
        out.put_zeros(4);
        out.extend_from_slice(&self.hw_addr);
        out.put_zeros(2);
        out.put_u32(self.config);
        out.put_u32(self.mask);
        out.put_u32(self.advertise);
        out.put_zeros(4);
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<PortMod, Reason> {
        let port_no = r.u32()?;
        r.skip(4)?;
        let hw_addr = r.array()?;
        r.skip(2)?;
        let m = PortMod { port_no, hw_addr, config: r.u32()?, mask: r.u32()?, advertise: r.u32()? };
        r.skip(4)?;
        r.finish(Reason::BadLen)?;
        Ok(m)
    }
}

/// `OFPT_TABLE_MOD`: table configuration (`OFPTC_*`, deprecated bits only in 1.3).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TableMod {
    /// Table id, or `OFPTT_ALL`.
    pub table_id: u8,
    /// `OFPTC_*` bitmap.
    pub config: u32,
}

impl TableMod {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.put_u8(self.table_id);
        out.put_zeros(3);
        out.put_u32(self.config);
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<TableMod, Reason> {
        let table_id = r.u8()?;
        r.skip(3)?;
        let t = TableMod { table_id, config: r.u32()? };
        r.finish(Reason::BadLen)?;
        Ok(t)
    }
}

/// `ofp_async_config`: which asynchronous messages a controller wants, by reason bit.
/// Index 0 applies in the master/equal role, index 1 in the slave role.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct AsyncConfig {
    /// `1 << OFPR_*` bits for PACKET_IN.
    pub packet_in_mask: [u32; 2],
    /// `1 << OFPPR_*` bits for PORT_STATUS.
    pub port_status_mask: [u32; 2],
    /// `1 << OFPRR_*` bits for FLOW_REMOVED.
    pub flow_removed_mask: [u32; 2],
}

impl AsyncConfig {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        for m in [self.packet_in_mask, self.port_status_mask, self.flow_removed_mask] {
            out.put_u32(m[0]);
            out.put_u32(m[1]);
        }
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<AsyncConfig, Reason> {
        let c = AsyncConfig {
            packet_in_mask: [r.u32()?, r.u32()?],
            port_status_mask: [r.u32()?, r.u32()?],
            flow_removed_mask: [r.u32()?, r.u32()?],
        };
        r.finish(Reason::BadLen)?;
        Ok(c)
    }
}

/// `OFPQT_MIN_RATE`
pub const OFPQT_MIN_RATE: u16 = 1;
/// `OFPQT_MAX_RATE`
pub const OFPQT_MAX_RATE: u16 = 2;
/// `OFPQT_EXPERIMENTER`
pub const OFPQT_EXPERIMENTER: u16 = 0xffff;

/// One queue property (`ofp_queue_prop_header` and its body). Kept generic: the body of
/// MIN_RATE/MAX_RATE is a u16 rate in 1/10 % and 6 bytes of padding.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct QueueProp {
    /// `OFPQT_*`.
    pub property: u16,
    /// Everything after the 8-byte property header.
    pub data: Vec<u8>,
}

impl QueueProp {
    /// A MIN_RATE or MAX_RATE property with `rate` in 1/10 of a percent.
    pub fn rate(property: u16, rate: u16) -> QueueProp {
        let mut data = rate.to_be_bytes().to_vec();
        data.resize(8, 0);
        QueueProp { property, data }
    }
}

/// `ofp_packet_queue`: one queue of a port and its properties. In OpenFlow 1.0 `port` is
/// absent from the wire and decodes as 0.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PacketQueue {
    /// Queue id.
    pub queue_id: u32,
    /// Port this queue is attached to (1.3 only).
    pub port: u32,
    /// Properties.
    pub properties: Vec<QueueProp>,
}

impl PacketQueue {
    /// `v10`: the 1.0 layout (8-byte header without the port).
    pub(crate) fn encode(&self, out: &mut Vec<u8>, v10: bool) -> Result<(), EncodeError> {
        let start = out.len();
        out.put_u32(self.queue_id);
        let len_at = if v10 {
            out.put_u16(0);
            out.put_zeros(2);
            start + 4
        } else {
            out.put_u32(self.port);
            out.put_u16(0);
            out.put_zeros(6);
            start + 8
        };
        for p in &self.properties {
            let pstart = out.len();
            out.put_u16(p.property);
            out.put_u16(0);
            out.put_zeros(4);
            out.extend_from_slice(&p.data);
            out.patch_len(pstart + 2, pstart)?;
        }
        out.patch_len(len_at, start)
    }

    pub(crate) fn decode(r: &mut Reader<'_>, v10: bool) -> Result<PacketQueue, Reason> {
        let queue_id = r.u32()?;
        let (port, len, head) = if v10 {
            let len = r.u16()?;
            r.skip(2)?;
            (0, len, 8)
        } else {
            let port = r.u32()?;
            let len = r.u16()?;
            r.skip(6)?;
            (port, len, 16)
        };
        let len = usize::from(len);
        if len < head {
            return Err(Reason::BadLen);
        }
        let mut q = Reader::new(r.bytes(len - head)?, Reason::BadLen);
        let mut properties = Vec::new();
        while q.remaining() > 0 {
            let property = q.u16()?;
            let plen = usize::from(q.u16()?);
            q.skip(4)?;
            if plen < 8 {
                return Err(Reason::BadLen);
            }
            properties.push(QueueProp { property, data: q.bytes(plen - 8)?.to_vec() });
        }
        Ok(PacketQueue { queue_id, port, properties })
    }
}

/// `OFPT_QUEUE_GET_CONFIG_REPLY`: a port's queues.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct QueueGetConfigReply {
    /// The port asked about.
    pub port: u32,
    /// Its queues.
    pub queues: Vec<PacketQueue>,
}

impl QueueGetConfigReply {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.put_u32(self.port);
        out.put_zeros(4);
        self.queues.iter().try_for_each(|q| q.encode(out, false))
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<QueueGetConfigReply, Reason> {
        let port = r.u32()?;
        r.skip(4)?;
        let mut queues = Vec::new();
        while r.remaining() > 0 {
            queues.push(PacketQueue::decode(r, false)?);
        }
        Ok(QueueGetConfigReply { port, queues })
    }
}

/// `OFPT_EXPERIMENTER` (1.3) / the multipart experimenter body: an extension message,
/// kept raw (Nicira's extensions from ovs-ofctl arrive this way).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Experimenter {
    /// Experimenter id (`NX_VENDOR_ID` = 0x00002320 for Nicira).
    pub experimenter: u32,
    /// Experimenter-defined type.
    pub exp_type: u32,
    /// The rest of the message.
    pub data: Vec<u8>,
}

impl Experimenter {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.put_u32(self.experimenter);
        out.put_u32(self.exp_type);
        out.extend_from_slice(&self.data);
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Experimenter, Reason> {
        Ok(Experimenter { experimenter: r.u32()?, exp_type: r.u32()?, data: r.rest().to_vec() })
    }
}
