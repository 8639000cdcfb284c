//! Flow-table and packet messages of OpenFlow 1.3: `OFPT_FLOW_MOD`, `OFPT_FLOW_REMOVED`,
//! `OFPT_PACKET_IN`, `OFPT_PACKET_OUT` (OpenFlow 1.3.5 §7.3.4, §7.4.1, §7.4.2, §7.3.7).

use super::action::{decode_actions, decode_instructions, encode_actions, encode_instructions};
use super::action::{Action, Instruction};
use super::error::{EncodeError, Reason};
use super::oxm::{decode_match, encode_match, Oxm};
use super::wire::{Put, Reader};

/// `OFPFC_ADD`: new flow.
pub const OFPFC_ADD: u8 = 0;
/// `OFPFC_MODIFY`: modify all matching flows.
pub const OFPFC_MODIFY: u8 = 1;
/// `OFPFC_MODIFY_STRICT`: modify the flow matching exactly, priority included.
pub const OFPFC_MODIFY_STRICT: u8 = 2;
/// `OFPFC_DELETE`: delete all matching flows.
pub const OFPFC_DELETE: u8 = 3;
/// `OFPFC_DELETE_STRICT`: delete the flow matching exactly, priority included.
pub const OFPFC_DELETE_STRICT: u8 = 4;

/// `OFPFF_SEND_FLOW_REM`: send a flow-removed message when the flow expires or is deleted.
pub const OFPFF_SEND_FLOW_REM: u16 = 1 << 0;
/// `OFPFF_CHECK_OVERLAP`: check for overlapping entries first.
pub const OFPFF_CHECK_OVERLAP: u16 = 1 << 1;
/// `OFPFF_RESET_COUNTS`: reset flow packet and byte counts.
pub const OFPFF_RESET_COUNTS: u16 = 1 << 2;
/// `OFPFF_NO_PKT_COUNTS`: don't keep track of the packet count.
pub const OFPFF_NO_PKT_COUNTS: u16 = 1 << 3;
/// `OFPFF_NO_BYT_COUNTS`: don't keep track of the byte count.
pub const OFPFF_NO_BYT_COUNTS: u16 = 1 << 4;

/// `OFPTT_ALL`: wildcard table in flow-mod deletes and flow-stats requests.
pub const OFPTT_ALL: u8 = 0xff;

/// `OFPT_FLOW_MOD`: add, modify or delete flow entries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowMod {
    /// Opaque controller-issued identifier.
    pub cookie: u64,
    /// Cookie bits that must match (modify/delete).
    pub cookie_mask: u64,
    /// Table to put the flow in (or `OFPTT_ALL` for deletes).
    pub table_id: u8,
    /// `OFPFC_*`.
    pub command: u8,
    /// Idle time before discarding, in seconds (0: never).
    pub idle_timeout: u16,
    /// Max time before discarding, in seconds (0: never).
    pub hard_timeout: u16,
    /// Priority of the entry.
    pub priority: u16,
    /// Buffered packet to apply to, or `OFP_NO_BUFFER`.
    pub buffer_id: u32,
    /// For deletes: require an output action to this port (`OFPP_ANY`: don't care).
    pub out_port: u32,
    /// For deletes: require an output to this group (`OFPG_ANY`: don't care).
    pub out_group: u32,
    /// `OFPFF_*`.
    pub flags: u16,
    /// The match.
    pub match_: Vec<Oxm>,
    /// The instructions.
    pub instructions: Vec<Instruction>,
}

impl FlowMod {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.put_u64(self.cookie);
        out.put_u64(self.cookie_mask);
        out.put_u8(self.table_id);
        out.put_u8(self.command);
        out.put_u16(self.idle_timeout);
        out.put_u16(self.hard_timeout);
        out.put_u16(self.priority);
        out.put_u32(self.buffer_id);
        out.put_u32(self.out_port);
        out.put_u32(self.out_group);
        out.put_u16(self.flags);
        out.put_zeros(2);
        encode_match(&self.match_, out)?;
        encode_instructions(&self.instructions, out)
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<FlowMod, Reason> {
        let cookie = r.u64()?;
        let cookie_mask = r.u64()?;
        let table_id = r.u8()?;
        let command = r.u8()?;
        let idle_timeout = r.u16()?;
        let hard_timeout = r.u16()?;
        let priority = r.u16()?;
        let buffer_id = r.u32()?;
        let out_port = r.u32()?;
        let out_group = r.u32()?;
        let flags = r.u16()?;
        r.skip(2)?;
        let match_ = decode_match(r)?;
        let instructions = decode_instructions(r.rest())?;
        Ok(FlowMod {
            cookie,
            cookie_mask,
            table_id,
            command,
            idle_timeout,
            hard_timeout,
            priority,
            buffer_id,
            out_port,
            out_group,
            flags,
            match_,
            instructions,
        })
    }
}

/// `OFPRR_IDLE_TIMEOUT`: flow idle time exceeded idle_timeout.
pub const OFPRR_IDLE_TIMEOUT: u8 = 0;
/// `OFPRR_HARD_TIMEOUT`: time exceeded hard_timeout.
pub const OFPRR_HARD_TIMEOUT: u8 = 1;
/// `OFPRR_DELETE`: evicted by a delete flow-mod.
pub const OFPRR_DELETE: u8 = 2;
/// `OFPRR_GROUP_DELETE`: group was removed.
pub const OFPRR_GROUP_DELETE: u8 = 3;

/// `OFPT_FLOW_REMOVED`: a flow entry went away.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowRemoved {
    /// The flow's cookie.
    pub cookie: u64,
    /// The flow's priority.
    pub priority: u16,
    /// `OFPRR_*`.
    pub reason: u8,
    /// The flow's table.
    pub table_id: u8,
    /// Time the flow was alive, seconds part.
    pub duration_sec: u32,
    /// Time the flow was alive beyond `duration_sec`, in nanoseconds.
    pub duration_nsec: u32,
    /// Idle timeout from the flow-mod.
    pub idle_timeout: u16,
    /// Hard timeout from the flow-mod.
    pub hard_timeout: u16,
    /// Packets matched.
    pub packet_count: u64,
    /// Bytes matched.
    pub byte_count: u64,
    /// The flow's match.
    pub match_: Vec<Oxm>,
}

impl FlowRemoved {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.put_u64(self.cookie);
        out.put_u16(self.priority);
        out.put_u8(self.reason);
        out.put_u8(self.table_id);
        out.put_u32(self.duration_sec);
        out.put_u32(self.duration_nsec);
        out.put_u16(self.idle_timeout);
        out.put_u16(self.hard_timeout);
        out.put_u64(self.packet_count);
        out.put_u64(self.byte_count);
        encode_match(&self.match_, out)
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<FlowRemoved, Reason> {
        let fr = FlowRemoved {
            cookie: r.u64()?,
            priority: r.u16()?,
            reason: r.u8()?,
            table_id: r.u8()?,
            duration_sec: r.u32()?,
            duration_nsec: r.u32()?,
            idle_timeout: r.u16()?,
            hard_timeout: r.u16()?,
            packet_count: r.u64()?,
            byte_count: r.u64()?,
            match_: decode_match(r)?,
        };
        r.finish(Reason::BadLen)?;
        Ok(fr)
    }
}

/// `OFPR_NO_MATCH`: no matching flow (table-miss flow entry).
pub const OFPR_NO_MATCH: u8 = 0;
/// `OFPR_ACTION`: output to controller in an action.
pub const OFPR_ACTION: u8 = 1;
/// `OFPR_INVALID_TTL`: packet has an invalid TTL.
pub const OFPR_INVALID_TTL: u8 = 2;

/// `OFPT_PACKET_IN`: a packet sent to the controller.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PacketIn {
    /// Buffer id on the switch, or `OFP_NO_BUFFER`.
    pub buffer_id: u32,
    /// Full length of the frame.
    pub total_len: u16,
    /// `OFPR_*`.
    pub reason: u8,
    /// Table the packet was looked up in.
    pub table_id: u8,
    /// Cookie of the flow entry that sent the packet.
    pub cookie: u64,
    /// Pipeline fields (at least `in_port`).
    pub match_: Vec<Oxm>,
    /// The frame, or its first bytes.
    pub data: Vec<u8>,
}

impl PacketIn {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.put_u32(self.buffer_id);
        out.put_u16(self.total_len);
        out.put_u8(self.reason);
        out.put_u8(self.table_id);
        out.put_u64(self.cookie);
        encode_match(&self.match_, out)?;
        out.put_zeros(2);
        out.extend_from_slice(&self.data);
        Ok(())
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<PacketIn, Reason> {
        let buffer_id = r.u32()?;
        let total_len = r.u16()?;
        let reason = r.u8()?;
        let table_id = r.u8()?;
        let cookie = r.u64()?;
        let match_ = decode_match(r)?;
        r.skip(2)?;
        let data = r.rest().to_vec();
        Ok(PacketIn { buffer_id, total_len, reason, table_id, cookie, match_, data })
    }
}

/// `OFPT_PACKET_OUT`: send a packet (buffered on the switch, or carried in `data`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PacketOut {
    /// Buffer id on the switch, or `OFP_NO_BUFFER` when `data` holds the frame.
    pub buffer_id: u32,
    /// Input port for the actions' purposes (`OFPP_CONTROLLER` if none).
    pub in_port: u32,
    /// Actions to apply.
    pub actions: Vec<Action>,
    /// The frame when `buffer_id` is `OFP_NO_BUFFER`.
    pub data: Vec<u8>,
}

impl PacketOut {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = out.len();
        out.put_u32(self.buffer_id);
        out.put_u32(self.in_port);
        out.put_u16(0);
        out.put_zeros(6);
        let actions_start = out.len();
        encode_actions(&self.actions, out)?;
        out.patch_len(start + 8, actions_start)?;
        out.extend_from_slice(&self.data);
        Ok(())
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<PacketOut, Reason> {
        let buffer_id = r.u32()?;
        let in_port = r.u32()?;
        let actions_len = usize::from(r.u16()?);
        r.skip(6)?;
        let actions = decode_actions(r.bytes(actions_len)?)?;
        let data = r.rest().to_vec();
        Ok(PacketOut { buffer_id, in_port, actions, data })
    }
}
