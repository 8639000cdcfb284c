//! Actions (`ofp_action_*`, OpenFlow 1.3.5 §7.2.5) and instructions (`ofp_instruction_*`,
//! §7.2.4).

use super::errcode::ErrorCode;
use super::error::{EncodeError, Reason};
use super::nx::{NxAction, NX_VENDOR_ID};
use super::oxm::{Oxm, OxmField};
use super::wire::{pad8, Put, Reader};

/// `ofp_action_type` numbers.
pub mod action_type {
    /// `OFPAT_OUTPUT`
    pub const OFPAT_OUTPUT: u16 = 0;
    /// `OFPAT_COPY_TTL_OUT`
    pub const OFPAT_COPY_TTL_OUT: u16 = 11;
    /// `OFPAT_COPY_TTL_IN`
    pub const OFPAT_COPY_TTL_IN: u16 = 12;
    /// `OFPAT_SET_MPLS_TTL`
    pub const OFPAT_SET_MPLS_TTL: u16 = 15;
    /// `OFPAT_DEC_MPLS_TTL`
    pub const OFPAT_DEC_MPLS_TTL: u16 = 16;
    /// `OFPAT_PUSH_VLAN`
    pub const OFPAT_PUSH_VLAN: u16 = 17;
    /// `OFPAT_POP_VLAN`
    pub const OFPAT_POP_VLAN: u16 = 18;
    /// `OFPAT_PUSH_MPLS`
    pub const OFPAT_PUSH_MPLS: u16 = 19;
    /// `OFPAT_POP_MPLS`
    pub const OFPAT_POP_MPLS: u16 = 20;
    /// `OFPAT_SET_QUEUE`
    pub const OFPAT_SET_QUEUE: u16 = 21;
    /// `OFPAT_GROUP`
    pub const OFPAT_GROUP: u16 = 22;
    /// `OFPAT_SET_NW_TTL`
    pub const OFPAT_SET_NW_TTL: u16 = 23;
    /// `OFPAT_DEC_NW_TTL`
    pub const OFPAT_DEC_NW_TTL: u16 = 24;
    /// `OFPAT_SET_FIELD`
    pub const OFPAT_SET_FIELD: u16 = 25;
    /// `OFPAT_PUSH_PBB`
    pub const OFPAT_PUSH_PBB: u16 = 26;
    /// `OFPAT_POP_PBB`
    pub const OFPAT_POP_PBB: u16 = 27;
    /// `OFPAT_EXPERIMENTER`
    pub const OFPAT_EXPERIMENTER: u16 = 0xffff;
}
use action_type::*;

/// `OFPCML_NO_BUFFER`: `max_len` asking for the whole packet in the packet-in.
pub const OFPCML_NO_BUFFER: u16 = 0xffff;

/// One OpenFlow 1.3 action.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// `OFPAT_OUTPUT`: send to `port`; `max_len` bytes go to the controller.
    Output {
        /// Output port (`OFPP_*` for reserved ports).
        port: u32,
        /// Bytes to send to the controller when `port` is `OFPP_CONTROLLER`.
        max_len: u16,
    },
    /// `OFPAT_COPY_TTL_OUT`
    CopyTtlOut,
    /// `OFPAT_COPY_TTL_IN`
    CopyTtlIn,
    /// `OFPAT_SET_MPLS_TTL`
    SetMplsTtl(u8),
    /// `OFPAT_DEC_MPLS_TTL`
    DecMplsTtl,
    /// `OFPAT_PUSH_VLAN` with the tag's ethertype (0x8100 or 0x88a8).
    PushVlan(u16),
    /// `OFPAT_POP_VLAN`
    PopVlan,
    /// `OFPAT_PUSH_MPLS` with the ethertype.
    PushMpls(u16),
    /// `OFPAT_POP_MPLS` with the ethertype of the payload.
    PopMpls(u16),
    /// `OFPAT_SET_QUEUE`
    SetQueue(u32),
    /// `OFPAT_GROUP`
    Group(u32),
    /// `OFPAT_SET_NW_TTL`
    SetNwTtl(u8),
    /// `OFPAT_DEC_NW_TTL`
    DecNwTtl,
    /// `OFPAT_SET_FIELD`: one OXM without mask.
    SetField(Oxm),
    /// `OFPAT_PUSH_PBB` with the ethertype.
    PushPbb(u16),
    /// `OFPAT_POP_PBB`
    PopPbb,
    /// A Nicira action (`OFPAT_EXPERIMENTER` with experimenter [`NX_VENDOR_ID`]) the switch
    /// understands: `set_tunnel`, `set_tunnel64`, `load`.
    Nicira(NxAction),
    /// `OFPAT_EXPERIMENTER`: passed through; `data` follows the experimenter id.
    Experimenter {
        /// Experimenter id.
        experimenter: u32,
        /// The rest of the action, padding included (total length stays a multiple of 8).
        data: Vec<u8>,
    },
}

impl Action {
    /// Appends the action to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = out.len();
        let (type_, body) = match self {
            Action::Output { port, max_len } => {
                out.put_u16(OFPAT_OUTPUT);
                out.put_u16(16);
                out.put_u32(*port);
                out.put_u16(*max_len);
                out.put_zeros(6);
                return Ok(());
            }
            Action::CopyTtlOut => (OFPAT_COPY_TTL_OUT, None),
            Action::CopyTtlIn => (OFPAT_COPY_TTL_IN, None),
            Action::DecMplsTtl => (OFPAT_DEC_MPLS_TTL, None),
            Action::PopVlan => (OFPAT_POP_VLAN, None),
            Action::DecNwTtl => (OFPAT_DEC_NW_TTL, None),
            Action::PopPbb => (OFPAT_POP_PBB, None),
            Action::SetMplsTtl(t) => (OFPAT_SET_MPLS_TTL, Some([*t, 0, 0, 0])),
            Action::SetNwTtl(t) => (OFPAT_SET_NW_TTL, Some([*t, 0, 0, 0])),
            Action::PushVlan(e) => (OFPAT_PUSH_VLAN, Some(ethertype(*e))),
            Action::PushMpls(e) => (OFPAT_PUSH_MPLS, Some(ethertype(*e))),
            Action::PopMpls(e) => (OFPAT_POP_MPLS, Some(ethertype(*e))),
            Action::PushPbb(e) => (OFPAT_PUSH_PBB, Some(ethertype(*e))),
            Action::SetQueue(q) => (OFPAT_SET_QUEUE, Some(q.to_be_bytes())),
            Action::Group(g) => (OFPAT_GROUP, Some(g.to_be_bytes())),
            Action::SetField(oxm) => {
                if oxm.mask.is_some() {
                    return Err(EncodeError::Invalid { what: "set-field with a mask" });
                }
                out.put_u16(OFPAT_SET_FIELD);
                out.put_u16(0);
                oxm.encode(out)?;
                out.pad8(start);
                return out.patch_len(start + 2, start);
            }
            Action::Nicira(nx) => {
                out.put_u16(OFPAT_EXPERIMENTER);
                out.put_u16(nx.wire_len() as u16);
                out.put_u32(NX_VENDOR_ID);
                nx.encode_body(out);
                return Ok(());
            }
            Action::Experimenter { experimenter, data } => {
                if !(8 + data.len()).is_multiple_of(8) {
                    return Err(EncodeError::Invalid { what: "experimenter action not 8-aligned" });
                }
                out.put_u16(OFPAT_EXPERIMENTER);
                out.put_u16(0);
                out.put_u32(*experimenter);
                out.extend_from_slice(data);
                return out.patch_len(start + 2, start);
            }
        };
        out.put_u16(type_);
        out.put_u16(8);
        out.extend_from_slice(&body.unwrap_or([0; 4]));
        Ok(())
    }

    /// Reads one action.
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Action, Reason> {
        let type_ = r.u16().map_err(|_| Reason::BadActionLen)?;
        let len = usize::from(r.u16().map_err(|_| Reason::BadActionLen)?);
        if len < 8 || !len.is_multiple_of(8) {
            return Err(Reason::BadActionLen);
        }
        let body = r.bytes(len - 4).map_err(|_| Reason::BadActionLen)?;
        let mut b = Reader::new(body, Reason::BadActionLen);
        let fixed = |want: usize| if len == want { Ok(()) } else { Err(Reason::BadActionLen) };
        let action = match type_ {
            OFPAT_OUTPUT => {
                fixed(16)?;
                Action::Output { port: b.u32()?, max_len: b.u16()? }
            }
            OFPAT_COPY_TTL_OUT => fixed(8).map(|_| Action::CopyTtlOut)?,
            OFPAT_COPY_TTL_IN => fixed(8).map(|_| Action::CopyTtlIn)?,
            OFPAT_DEC_MPLS_TTL => fixed(8).map(|_| Action::DecMplsTtl)?,
            OFPAT_POP_VLAN => fixed(8).map(|_| Action::PopVlan)?,
            OFPAT_DEC_NW_TTL => fixed(8).map(|_| Action::DecNwTtl)?,
            OFPAT_POP_PBB => fixed(8).map(|_| Action::PopPbb)?,
            OFPAT_SET_MPLS_TTL => fixed(8).and_then(|_| b.u8()).map(Action::SetMplsTtl)?,
            OFPAT_SET_NW_TTL => fixed(8).and_then(|_| b.u8()).map(Action::SetNwTtl)?,
            OFPAT_PUSH_VLAN => fixed(8).and_then(|_| b.u16()).map(Action::PushVlan)?,
            OFPAT_PUSH_MPLS => fixed(8).and_then(|_| b.u16()).map(Action::PushMpls)?,
            OFPAT_POP_MPLS => fixed(8).and_then(|_| b.u16()).map(Action::PopMpls)?,
            OFPAT_PUSH_PBB => fixed(8).and_then(|_| b.u16()).map(Action::PushPbb)?,
            OFPAT_SET_QUEUE => fixed(8).and_then(|_| b.u32()).map(Action::SetQueue)?,
            OFPAT_GROUP => fixed(8).and_then(|_| b.u32()).map(Action::Group)?,
            OFPAT_SET_FIELD => {
                let oxm = Oxm::decode(&mut b).map_err(|e| {
                    let code = match e {
                        Reason::BadField { .. } => ErrorCode::OFPBAC_BAD_SET_TYPE,
                        Reason::BadMatchLen => ErrorCode::OFPBAC_BAD_SET_LEN,
                        _ => ErrorCode::OFPBAC_BAD_SET_ARGUMENT,
                    };
                    Reason::BadSetField { code }
                })?;
                if oxm.mask.is_some() || matches!(oxm.field, OxmField::Other { has_mask: true, .. }) {
                    return Err(Reason::BadSetField { code: ErrorCode::OFPBAC_BAD_SET_ARGUMENT });
                }
                if pad8(4 + oxm.wire_len()) != len {
                    return Err(Reason::BadSetField { code: ErrorCode::OFPBAC_BAD_SET_LEN });
                }
                Action::SetField(oxm)
            }
            OFPAT_EXPERIMENTER => {
                let experimenter = b.u32()?;
                let data = b.rest();
                match NxAction::decode_body(data) {
                    Some(nx) if experimenter == NX_VENDOR_ID => Action::Nicira(nx),
                    _ => Action::Experimenter { experimenter, data: data.to_vec() },
                }
            }
            _ => return Err(Reason::BadActionType { type_ }),
        };
        // What is left is padding (a set-field's after its OXM): it must be zero.
        if matches!(action, Action::SetField(_)) {
            b.pad_rest().map_err(|_| Reason::BadSetField { code: ErrorCode::OFPBAC_BAD_SET_ARGUMENT })?;
        } else {
            b.pad_rest()?;
        }
        Ok(action)
    }
}

fn ethertype(e: u16) -> [u8; 4] {
    let [a, b] = e.to_be_bytes();
    [a, b, 0, 0]
}

/// Decodes a packed list of actions filling all of `buf`.
pub(crate) fn decode_actions(buf: &[u8]) -> Result<Vec<Action>, Reason> {
    let mut r = Reader::new(buf, Reason::BadActionLen);
    let mut out = Vec::new();
    while r.remaining() > 0 {
        out.push(Action::decode(&mut r)?);
    }
    Ok(out)
}

/// Appends `actions` to `out`.
pub(crate) fn encode_actions(actions: &[Action], out: &mut Vec<u8>) -> Result<(), EncodeError> {
    actions.iter().try_for_each(|a| a.encode(out))
}

/// `ofp_instruction_type` numbers.
pub mod instruction_type {
    /// `OFPIT_GOTO_TABLE`
    pub const OFPIT_GOTO_TABLE: u16 = 1;
    /// `OFPIT_WRITE_METADATA`
    pub const OFPIT_WRITE_METADATA: u16 = 2;
    /// `OFPIT_WRITE_ACTIONS`
    pub const OFPIT_WRITE_ACTIONS: u16 = 3;
    /// `OFPIT_APPLY_ACTIONS`
    pub const OFPIT_APPLY_ACTIONS: u16 = 4;
    /// `OFPIT_CLEAR_ACTIONS`
    pub const OFPIT_CLEAR_ACTIONS: u16 = 5;
    /// `OFPIT_METER`
    pub const OFPIT_METER: u16 = 6;
    /// `OFPIT_EXPERIMENTER`
    pub const OFPIT_EXPERIMENTER: u16 = 0xffff;
}
use instruction_type::*;

/// One OpenFlow 1.3 instruction.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Instruction {
    /// `OFPIT_GOTO_TABLE`
    GotoTable(u8),
    /// `OFPIT_WRITE_METADATA`
    WriteMetadata {
        /// Metadata value to write.
        metadata: u64,
        /// Which metadata bits to write.
        metadata_mask: u64,
    },
    /// `OFPIT_WRITE_ACTIONS`: merge into the action set.
    WriteActions(Vec<Action>),
    /// `OFPIT_APPLY_ACTIONS`: apply now.
    ApplyActions(Vec<Action>),
    /// `OFPIT_CLEAR_ACTIONS`: clear the action set.
    ClearActions,
    /// `OFPIT_METER`
    Meter(u32),
    /// `OFPIT_EXPERIMENTER`: passed through.
    Experimenter {
        /// Experimenter id.
        experimenter: u32,
        /// The rest of the instruction.
        data: Vec<u8>,
    },
}

impl Instruction {
    /// Appends the instruction to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = out.len();
        match self {
            Instruction::GotoTable(t) => {
                out.put_u16(OFPIT_GOTO_TABLE);
                out.put_u16(8);
                out.extend_from_slice(&[*t, 0, 0, 0]);
            }
            Instruction::WriteMetadata { metadata, metadata_mask } => {
                out.put_u16(OFPIT_WRITE_METADATA);
                out.put_u16(24);
                out.put_zeros(4);
                out.put_u64(*metadata);
                out.put_u64(*metadata_mask);
            }
            Instruction::WriteActions(a) | Instruction::ApplyActions(a) => {
                let t = if matches!(self, Instruction::WriteActions(_)) {
                    OFPIT_WRITE_ACTIONS
                } else {
                    OFPIT_APPLY_ACTIONS
                };
                out.put_u16(t);
                out.put_u16(0);
                out.put_zeros(4);
                encode_actions(a, out)?;
                out.patch_len(start + 2, start)?;
            }
            Instruction::ClearActions => {
                out.put_u16(OFPIT_CLEAR_ACTIONS);
                out.put_u16(8);
                out.put_zeros(4);
            }
            Instruction::Meter(m) => {
                out.put_u16(OFPIT_METER);
                out.put_u16(8);
                out.put_u32(*m);
            }
            Instruction::Experimenter { experimenter, data } => {
                out.put_u16(OFPIT_EXPERIMENTER);
                out.put_u16(0);
                out.put_u32(*experimenter);
                out.extend_from_slice(data);
                out.patch_len(start + 2, start)?;
            }
        }
        Ok(())
    }

    /// Reads one instruction.
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Instruction, Reason> {
        let type_ = r.u16().map_err(|_| Reason::BadInstructionLen)?;
        let len = usize::from(r.u16().map_err(|_| Reason::BadInstructionLen)?);
        if len < 8 {
            return Err(Reason::BadInstructionLen);
        }
        let body = r.bytes(len - 4).map_err(|_| Reason::BadInstructionLen)?;
        let mut b = Reader::new(body, Reason::BadInstructionLen);
        let fixed = |want: usize| if len == want { Ok(()) } else { Err(Reason::BadInstructionLen) };
        let ins = match type_ {
            OFPIT_GOTO_TABLE => fixed(8).and_then(|_| b.u8()).map(Instruction::GotoTable)?,
            OFPIT_WRITE_METADATA => {
                fixed(24)?;
                b.skip(4)?;
                Instruction::WriteMetadata { metadata: b.u64()?, metadata_mask: b.u64()? }
            }
            OFPIT_WRITE_ACTIONS | OFPIT_APPLY_ACTIONS => {
                b.skip(4)?;
                let actions = decode_actions(b.rest())?;
                if type_ == OFPIT_WRITE_ACTIONS {
                    Instruction::WriteActions(actions)
                } else {
                    Instruction::ApplyActions(actions)
                }
            }
            OFPIT_CLEAR_ACTIONS => fixed(8).map(|_| Instruction::ClearActions)?,
            OFPIT_METER => fixed(8).and_then(|_| b.u32()).map(Instruction::Meter)?,
            OFPIT_EXPERIMENTER => {
                Instruction::Experimenter { experimenter: b.u32()?, data: b.rest().to_vec() }
            }
            _ => return Err(Reason::BadInstructionType { type_ }),
        };
        b.pad_rest()?;
        Ok(ins)
    }
}

/// Decodes a packed list of instructions filling all of `buf`.
pub(crate) fn decode_instructions(buf: &[u8]) -> Result<Vec<Instruction>, Reason> {
    let mut r = Reader::new(buf, Reason::BadInstructionLen);
    let mut out = Vec::new();
    while r.remaining() > 0 {
        out.push(Instruction::decode(&mut r)?);
    }
    Ok(out)
}

/// Appends `instructions` to `out`.
pub(crate) fn encode_instructions(ins: &[Instruction], out: &mut Vec<u8>) -> Result<(), EncodeError> {
    ins.iter().try_for_each(|i| i.encode(out))
}
