//! Nicira extensions the switch understands: the NXM match fields for tunnel endpoints and
//! the vendor actions that set the tunnel id (Open vSwitch's `nicira-ext.h` numbers).
//!
//! The actions travel as `OFPAT_EXPERIMENTER` (OpenFlow 1.3) or `OFPAT_VENDOR` (1.0) with
//! vendor id [`NX_VENDOR_ID`]; both share the body after the vendor id, which [`NxAction`]
//! reads and writes. Only the canonical form is typed (exact length, zero padding), so
//! anything else stays a raw experimenter/vendor action and re-encodes byte for byte.

use super::error::Reason;
use super::wire::{Put, Reader};

/// The Nicira vendor/experimenter id.
pub const NX_VENDOR_ID: u32 = 0x0000_2320;
/// `OFPXMC_NXM_1`: the OXM/NXM class of Nicira's own fields.
pub const NXM_1_CLASS: u16 = 0x0001;
/// `NXM_NX_TUN_IPV4_SRC`'s field number in [`NXM_1_CLASS`] (4 bytes, maskable).
pub const NXM_NX_TUN_IPV4_SRC: u8 = 31;
/// `NXM_NX_TUN_IPV4_DST`'s field number in [`NXM_1_CLASS`] (4 bytes, maskable).
pub const NXM_NX_TUN_IPV4_DST: u8 = 32;
/// The NXM header of `NXM_NX_TUN_ID` (class 1, field 16, 8 bytes, no mask): the destination
/// of a `load:...->NXM_NX_TUN_ID[]`.
pub const NXM_NX_TUN_ID_HEADER: u32 = 0x0001_2008;

/// `NXAST_SET_TUNNEL`: set the low 32 bits of tun_id (the rest cleared).
pub const NXAST_SET_TUNNEL: u16 = 2;
/// `NXAST_REG_LOAD`: load an immediate into a field's bit range.
pub const NXAST_REG_LOAD: u16 = 7;
/// `NXAST_SET_TUNNEL64`: set all 64 bits of tun_id.
pub const NXAST_SET_TUNNEL64: u16 = 9;
/// `NXAST_LEARN`: add (or refresh) a flow built from the packet.
pub const NXAST_LEARN: u16 = 16;

/// `flow_mod_spec` header bits (`nicira-ext.h`): the source is an immediate value.
pub const NX_LEARN_SRC_IMMEDIATE: u16 = 1 << 13;
/// `flow_mod_spec` destination: a match field of the new flow.
pub const NX_LEARN_DST_MATCH: u16 = 0;
/// `flow_mod_spec` destination: a `load` action of the new flow.
pub const NX_LEARN_DST_LOAD: u16 = 1 << 11;
/// `flow_mod_spec` destination: an `output` action of the new flow.
pub const NX_LEARN_DST_OUTPUT: u16 = 2 << 11;
const NX_LEARN_DST_MASK: u16 = 3 << 11;
const NX_LEARN_N_BITS_MASK: u16 = 0x3ff;
/// `NX_LEARN_F_SEND_FLOW_REM`: the learned flow has `send_flow_rem`.
pub const NX_LEARN_F_SEND_FLOW_REM: u16 = 1;
/// `NX_LEARN_F_DELETE_LEARNED`: delete the learned flows with the learning one.
pub const NX_LEARN_F_DELETE_LEARNED: u16 = 2;
/// Fixed part of `nx_action_learn` (type, len, vendor included).
const NX_LEARN_FIXED_LEN: usize = 32;

/// Where a `flow_mod_spec` takes its bits from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum NxLearnSrc {
    /// Bits `ofs..ofs+n_bits` of the field with NXM/OXM header `header`.
    Field {
        /// The field's NXM (or OXM) header.
        header: u32,
        /// First bit.
        ofs: u16,
    },
    /// An immediate value: `2 * ceil(n_bits / 16)` bytes, big-endian, right-aligned.
    Immediate(Vec<u8>),
}

/// Where a `flow_mod_spec` puts its bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NxLearnDst {
    /// A match on bits of a field of the new flow.
    Match {
        /// The field's NXM (or OXM) header.
        header: u32,
        /// First bit.
        ofs: u16,
    },
    /// A `load` into bits of a field, an action of the new flow.
    Load {
        /// The field's NXM (or OXM) header.
        header: u32,
        /// First bit.
        ofs: u16,
    },
    /// An `output` to the port the source holds (the source must be a field).
    Output,
}

/// One `flow_mod_spec` of a learn action, as on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NxLearnSpec {
    /// Bits copied (1..=1023 on the wire).
    pub n_bits: u16,
    /// The source.
    pub src: NxLearnSrc,
    /// The destination.
    pub dst: NxLearnDst,
}

/// `nx_action_learn` (`NXAST_LEARN`): its fixed fields and its flow_mod_specs.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NxLearn {
    /// Idle timeout of the new flow (seconds, 0 = none).
    pub idle_timeout: u16,
    /// Hard timeout of the new flow (seconds, 0 = none).
    pub hard_timeout: u16,
    /// Priority of the new flow.
    pub priority: u16,
    /// Cookie of the new flow.
    pub cookie: u64,
    /// `NX_LEARN_F_*`.
    pub flags: u16,
    /// Table of the new flow (never 0xff).
    pub table_id: u8,
    /// Idle timeout after a TCP FIN/RST (0 = none).
    pub fin_idle_timeout: u16,
    /// Hard timeout after a TCP FIN/RST (0 = none).
    pub fin_hard_timeout: u16,
    /// The flow_mod_specs, in order.
    pub specs: Vec<NxLearnSpec>,
}

impl NxLearnSpec {
    fn wire_len(&self) -> usize {
        let src = match &self.src {
            NxLearnSrc::Field { .. } => 6,
            NxLearnSrc::Immediate(v) => v.len(),
        };
        let dst = if self.dst == NxLearnDst::Output { 0 } else { 6 };
        2 + src + dst
    }

    fn header(&self) -> u16 {
        let src = match self.src {
            NxLearnSrc::Field { .. } => 0,
            NxLearnSrc::Immediate(_) => NX_LEARN_SRC_IMMEDIATE,
        };
        let dst = match self.dst {
            NxLearnDst::Match { .. } => NX_LEARN_DST_MATCH,
            NxLearnDst::Load { .. } => NX_LEARN_DST_LOAD,
            NxLearnDst::Output => NX_LEARN_DST_OUTPUT,
        };
        src | dst | (self.n_bits & NX_LEARN_N_BITS_MASK)
    }

    /// Bytes of an immediate of `n_bits` bits on the wire.
    pub fn immediate_len(n_bits: u16) -> usize {
        2 * usize::from(n_bits).div_ceil(16)
    }
}

impl NxLearn {
    /// Bytes of the whole action (a multiple of 8).
    pub fn wire_len(&self) -> usize {
        let specs: usize = self.specs.iter().map(NxLearnSpec::wire_len).sum();
        (NX_LEARN_FIXED_LEN + specs).next_multiple_of(8)
    }

    fn encode_body(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.put_u16(NXAST_LEARN);
        out.put_u16(self.idle_timeout);
        out.put_u16(self.hard_timeout);
        out.put_u16(self.priority);
        out.put_u64(self.cookie);
        out.put_u16(self.flags);
        out.put_u8(self.table_id);
        out.put_u8(0);
        out.put_u16(self.fin_idle_timeout);
        out.put_u16(self.fin_hard_timeout);
        for s in &self.specs {
            out.put_u16(s.header());
            match &s.src {
                NxLearnSrc::Field { header, ofs } => {
                    out.put_u32(*header);
                    out.put_u16(*ofs);
                }
                NxLearnSrc::Immediate(v) => out.extend_from_slice(v),
            }
            if let NxLearnDst::Match { header, ofs } | NxLearnDst::Load { header, ofs } = s.dst {
                out.put_u32(header);
                out.put_u16(ofs);
            }
        }
        // The body follows 8 bytes of type, length and vendor id.
        let body = self.wire_len() - 8;
        out.put_zeros(body - (out.len() - start));
    }

    /// Reads the body after the vendor id; `None` unless it is well formed and canonical
    /// (zero pad byte, valid spec kinds, immediates of the right size, nothing after the
    /// specs but the zero padding up to the next multiple of 8).
    fn decode_body(data: &[u8]) -> Option<NxLearn> {
        let mut r = Reader::new(data, Reason::BadActionLen);
        (r.u16().ok()? == NXAST_LEARN).then_some(())?;
        let idle_timeout = r.u16().ok()?;
        let hard_timeout = r.u16().ok()?;
        let priority = r.u16().ok()?;
        let cookie = r.u64().ok()?;
        let flags = r.u16().ok()?;
        let table_id = r.u8().ok()?;
        (r.u8().ok()? == 0).then_some(())?;
        let fin_idle_timeout = r.u16().ok()?;
        let fin_hard_timeout = r.u16().ok()?;
        let mut specs = Vec::new();
        while r.remaining() >= 2 {
            let h = r.u16().ok()?;
            if h == 0 {
                break;
            }
            // Bit 10 and bits 14-15 are in none of the fields: a header using them would
            // re-encode without them (0x0400 as 0, the end of the specs).
            if h & !(NX_LEARN_N_BITS_MASK | NX_LEARN_SRC_IMMEDIATE | NX_LEARN_DST_MASK) != 0 {
                return None;
            }
            let n_bits = h & NX_LEARN_N_BITS_MASK;
            let imm = h & NX_LEARN_SRC_IMMEDIATE != 0;
            let src = if imm {
                NxLearnSrc::Immediate(r.bytes(NxLearnSpec::immediate_len(n_bits)).ok()?.to_vec())
            } else {
                NxLearnSrc::Field { header: r.u32().ok()?, ofs: r.u16().ok()? }
            };
            let dst = match h & NX_LEARN_DST_MASK {
                NX_LEARN_DST_MATCH => NxLearnDst::Match { header: r.u32().ok()?, ofs: r.u16().ok()? },
                NX_LEARN_DST_LOAD => NxLearnDst::Load { header: r.u32().ok()?, ofs: r.u16().ok()? },
                NX_LEARN_DST_OUTPUT if !imm => NxLearnDst::Output,
                _ => return None,
            };
            specs.push(NxLearnSpec { n_bits, src, dst });
        }
        let l = NxLearn {
            idle_timeout,
            hard_timeout,
            priority,
            cookie,
            flags,
            table_id,
            fin_idle_timeout,
            fin_hard_timeout,
            specs,
        };
        let rest = r.rest();
        (rest.iter().all(|&b| b == 0) && l.wire_len() == data.len() + 8).then_some(l)
    }
}

/// A Nicira vendor action, as it appears after the vendor id.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum NxAction {
    /// `NXAST_SET_TUNNEL` (`set_tunnel:N`, N < 2^32).
    SetTunnel(u32),
    /// `NXAST_SET_TUNNEL64` (`set_tunnel64:N`).
    SetTunnel64(u64),
    /// `NXAST_REG_LOAD`: `value` into bits `ofs_nbits >> 6` .. `+ (ofs_nbits & 63) + 1` of
    /// the field with NXM header `dst`.
    RegLoad {
        /// Offset (high 10 bits) and bit count minus one (low 6 bits).
        ofs_nbits: u16,
        /// The destination field's NXM header.
        dst: u32,
        /// The value.
        value: u64,
    },
    /// `NXAST_LEARN`.
    Learn(Box<NxLearn>),
}

impl NxAction {
    /// Bytes of the whole action on the wire (type, length, vendor id and this body).
    pub fn wire_len(&self) -> usize {
        match self {
            NxAction::SetTunnel(_) => 16,
            NxAction::SetTunnel64(_) | NxAction::RegLoad { .. } => 24,
            NxAction::Learn(l) => l.wire_len(),
        }
    }

    /// A `load:V->NXM_NX_TUN_ID[]` of the whole field.
    pub fn load_tun_id(value: u64) -> NxAction {
        NxAction::RegLoad { ofs_nbits: 63, dst: NXM_NX_TUN_ID_HEADER, value }
    }

    /// The tunnel id this action sets, when it sets the whole field.
    pub fn tun_id(&self) -> Option<u64> {
        match *self {
            NxAction::SetTunnel(v) => Some(u64::from(v)),
            NxAction::SetTunnel64(v) => Some(v),
            NxAction::RegLoad { ofs_nbits: 63, dst: NXM_NX_TUN_ID_HEADER, value } => Some(value),
            NxAction::RegLoad { .. } | NxAction::Learn(_) => None,
        }
    }

    /// Appends the body after the vendor id (subtype, padding, arguments).
    pub fn encode_body(&self, out: &mut Vec<u8>) {
        match *self {
            NxAction::Learn(ref l) => l.encode_body(out),
            NxAction::SetTunnel(v) => {
                out.put_u16(NXAST_SET_TUNNEL);
                out.put_zeros(2);
                out.put_u32(v);
            }
            NxAction::SetTunnel64(v) => {
                out.put_u16(NXAST_SET_TUNNEL64);
                out.put_zeros(6);
                out.put_u64(v);
            }
            NxAction::RegLoad { ofs_nbits, dst, value } => {
                out.put_u16(NXAST_REG_LOAD);
                out.put_u16(ofs_nbits);
                out.put_u32(dst);
                out.put_u64(value);
            }
        }
    }

    /// Reads the body after the vendor id of a Nicira action; `None` unless it is one of
    /// these in canonical form.
    pub fn decode_body(data: &[u8]) -> Option<NxAction> {
        let mut r = Reader::new(data, Reason::BadActionLen);
        let subtype = r.u16().ok()?;
        let a = match (subtype, data.len()) {
            (NXAST_SET_TUNNEL, 8) => {
                (r.u16().ok()? == 0).then_some(())?;
                NxAction::SetTunnel(r.u32().ok()?)
            }
            (NXAST_SET_TUNNEL64, 16) => {
                (r.array::<6>().ok()? == [0; 6]).then_some(())?;
                NxAction::SetTunnel64(r.u64().ok()?)
            }
            (NXAST_REG_LOAD, 16) => {
                NxAction::RegLoad { ofs_nbits: r.u16().ok()?, dst: r.u32().ok()?, value: r.u64().ok()? }
            }
            (NXAST_LEARN, _) => NxAction::Learn(Box::new(NxLearn::decode_body(data)?)),
            _ => return None,
        };
        Some(a)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bodies_as_ovs_sends_them() {
        // From `ovs-ofctl -O OpenFlow13 add-flow ... actions=load:0x64->NXM_NX_TUN_ID[]`
        // (the bytes after the vendor id).
        let load = [0x00, 0x07, 0x00, 0x3f, 0x00, 0x01, 0x20, 0x08, 0, 0, 0, 0, 0, 0, 0, 0x64];
        assert_eq!(NxAction::decode_body(&load), Some(NxAction::load_tun_id(0x64)));
        assert_eq!(NxAction::load_tun_id(0x64).tun_id(), Some(0x64));
        let set = [0x00, 0x02, 0, 0, 0, 0, 0, 0x64];
        assert_eq!(NxAction::decode_body(&set), Some(NxAction::SetTunnel(0x64)));
        let mut out = Vec::new();
        NxAction::SetTunnel(0x64).encode_body(&mut out);
        assert_eq!(out, set);
        // Nonzero padding, a wrong length, another subtype: not typed.
        assert_eq!(NxAction::decode_body(&[0x00, 0x02, 0, 1, 0, 0, 0, 0x64]), None);
        assert_eq!(NxAction::decode_body(&[0x00, 0x02, 0, 0]), None);
        assert_eq!(NxAction::decode_body(&[0x00, 0x01, 0, 0, 0, 0, 0, 0]), None);
        // A load into part of tun_id, or into another field, is no tunnel id.
        let part = NxAction::RegLoad { ofs_nbits: 31, dst: NXM_NX_TUN_ID_HEADER, value: 1 };
        assert_eq!(part.tun_id(), None);
    }

    /// The learn action Neutron's br-tun installs, as `ovs-ofctl 3.1 -O OpenFlow13 add-flow`
    /// sent it (`table=10,priority=1,actions=learn(table=20,hard_timeout=300,priority=1,
    /// cookie=0x1234,NXM_OF_VLAN_TCI[0..11],NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],
    /// load:0->NXM_OF_VLAN_TCI[],load:NXM_NX_TUN_ID[]->NXM_NX_TUN_ID[],
    /// output:NXM_OF_IN_PORT[]),output:1`), captured off the socket.
    pub(crate) const NEUTRON_LEARN_13: &str = concat!(
        "ffff00600000232000100000012c000100000000000012340000140000000000",
        "000c000008020000000008020000003000000406000000000206000028100000",
        "0000080200000840000120080000000120080000101000000002000000000000",
    );

    pub(crate) fn unhex(h: &str) -> Vec<u8> {
        (0..h.len()).step_by(2).map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap()).collect()
    }

    /// Found by the `decode` fuzz target: a spec header with only the unused bit 10 set was
    /// read as a zero-width spec, which encodes as header 0 (the end of the spec list).
    #[test]
    fn spec_headers_with_unused_bits_are_not_a_typed_learn() {
        let good = unhex(NEUTRON_LEARN_13);
        for (at, bit) in [(32usize, 0x04u8), (32, 0x40), (32, 0x80), (46, 0x04)] {
            let mut b = good.clone();
            b[at] |= bit;
            assert_eq!(NxAction::decode_body(&b[8..]), None, "byte {at} | {bit:#x}");
        }
        assert!(matches!(NxAction::decode_body(&good[8..]), Some(NxAction::Learn(_))));
    }

    #[test]
    fn learn_as_ovs_sends_it() {
        let bytes = unhex(NEUTRON_LEARN_13);
        let Some(NxAction::Learn(l)) = NxAction::decode_body(&bytes[8..]) else {
            panic!("not a typed learn")
        };
        assert_eq!(
            (l.idle_timeout, l.hard_timeout, l.priority, l.cookie, l.flags, l.table_id),
            (0, 300, 1, 0x1234, 0, 20)
        );
        let vlan = 0x0000_0802;
        assert_eq!(
            l.specs,
            vec![
                NxLearnSpec {
                    n_bits: 12,
                    src: NxLearnSrc::Field { header: vlan, ofs: 0 },
                    dst: NxLearnDst::Match { header: vlan, ofs: 0 },
                },
                NxLearnSpec {
                    n_bits: 48,
                    src: NxLearnSrc::Field { header: 0x0000_0406, ofs: 0 },
                    dst: NxLearnDst::Match { header: 0x0000_0206, ofs: 0 },
                },
                NxLearnSpec {
                    n_bits: 16,
                    src: NxLearnSrc::Immediate(vec![0, 0]),
                    dst: NxLearnDst::Load { header: vlan, ofs: 0 },
                },
                NxLearnSpec {
                    n_bits: 64,
                    src: NxLearnSrc::Field { header: NXM_NX_TUN_ID_HEADER, ofs: 0 },
                    dst: NxLearnDst::Load { header: NXM_NX_TUN_ID_HEADER, ofs: 0 },
                },
                NxLearnSpec {
                    n_bits: 16,
                    src: NxLearnSrc::Field { header: 0x0000_0002, ofs: 0 },
                    dst: NxLearnDst::Output,
                },
            ]
        );
        let a = NxAction::Learn(l);
        assert_eq!(a.wire_len(), bytes.len());
        let mut out = Vec::new();
        a.encode_body(&mut out);
        assert_eq!(out, bytes[8..]);
        // Nonzero pad byte, an output from an immediate, a truncated spec, trailing junk:
        // not typed (they stay raw experimenter actions).
        let mut bad = bytes[8..].to_vec();
        bad[19] = 1;
        assert_eq!(NxAction::decode_body(&bad), None);
        let mut bad = bytes[8..].to_vec();
        bad[24 + 14 + 14 + 10 + 14] = 0x30; // output spec header 0x1010 -> 0x3010
        assert_eq!(NxAction::decode_body(&bad), None);
        assert_eq!(NxAction::decode_body(&bytes[8..40]), None);
        let mut bad = bytes[8..].to_vec();
        *bad.last_mut().unwrap() = 1;
        assert_eq!(NxAction::decode_body(&bad), None);
    }

    fn arb_learn() -> impl Strategy<Value = NxLearn> {
        let header = prop::sample::select(vec![0x0000_0002u32, 0x0000_0802, 0x0001_2008, 0x8000_0004]);
        let spec = (1u16..=1023, any::<bool>(), 0u8..3, header.clone(), header, any::<u16>(), any::<u8>())
            .prop_map(|(n_bits, imm, dst, h1, h2, ofs, byte)| {
                let src = if imm && dst != 2 {
                    NxLearnSrc::Immediate(vec![byte; NxLearnSpec::immediate_len(n_bits)])
                } else {
                    NxLearnSrc::Field { header: h1, ofs }
                };
                let dst = match dst {
                    0 => NxLearnDst::Match { header: h2, ofs },
                    1 => NxLearnDst::Load { header: h2, ofs },
                    _ => NxLearnDst::Output,
                };
                NxLearnSpec { n_bits, src, dst }
            });
        (any::<[u16; 6]>(), any::<u64>(), 0u8..255, prop::collection::vec(spec, 0..6)).prop_map(
            |(n, cookie, table_id, specs)| NxLearn {
                idle_timeout: n[0],
                hard_timeout: n[1],
                priority: n[2],
                cookie,
                flags: n[3],
                table_id,
                fin_idle_timeout: n[4],
                fin_hard_timeout: n[5],
                specs,
            },
        )
    }

    proptest! {
        #[test]
        fn learn_encode_decode_identity(l in arb_learn()) {
            let a = NxAction::Learn(Box::new(l));
            let mut out = Vec::new();
            a.encode_body(&mut out);
            prop_assert_eq!(out.len() + 8, a.wire_len());
            prop_assert_eq!((out.len() + 8) % 8, 0);
            prop_assert_eq!(NxAction::decode_body(&out), Some(a));
        }

        #[test]
        fn random_learn_bodies_never_panic(data in prop::collection::vec(any::<u8>(), 0..96)) {
            let mut data = data;
            if data.len() >= 2 {
                data[0] = 0;
                data[1] = NXAST_LEARN as u8;
            }
            if let Some(a) = NxAction::decode_body(&data) {
                let mut out = Vec::new();
                a.encode_body(&mut out);
                prop_assert_eq!(out, data);
            }
        }

        #[test]
        fn encode_decode_identity(a in prop_oneof![
            any::<u32>().prop_map(NxAction::SetTunnel),
            any::<u64>().prop_map(NxAction::SetTunnel64),
            (any::<u16>(), any::<u32>(), any::<u64>())
                .prop_map(|(ofs_nbits, dst, value)| NxAction::RegLoad { ofs_nbits, dst, value }),
        ]) {
            let mut out = Vec::new();
            a.encode_body(&mut out);
            prop_assert_eq!(out.len() + 8, a.wire_len());
            prop_assert_eq!(NxAction::decode_body(&out), Some(a));
        }

        #[test]
        fn random_bodies_never_panic(data in prop::collection::vec(any::<u8>(), 0..32)) {
            if let Some(a) = NxAction::decode_body(&data) {
                let mut out = Vec::new();
                a.encode_body(&mut out);
                prop_assert_eq!(out, data);
            }
        }
    }
}
