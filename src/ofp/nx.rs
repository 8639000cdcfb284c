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

/// A Nicira vendor action, as it appears after the vendor id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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
}

impl NxAction {
    /// Bytes of the whole action on the wire (type, length, vendor id and this body).
    pub fn wire_len(&self) -> usize {
        match self {
            NxAction::SetTunnel(_) => 16,
            NxAction::SetTunnel64(_) | NxAction::RegLoad { .. } => 24,
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
            NxAction::RegLoad { .. } => None,
        }
    }

    /// Appends the body after the vendor id (subtype, padding, arguments).
    pub fn encode_body(&self, out: &mut Vec<u8>) {
        match *self {
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
            _ => return None,
        };
        Some(a)
    }
}

#[cfg(test)]
mod tests {
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

    proptest! {
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
