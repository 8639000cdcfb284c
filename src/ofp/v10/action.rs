//! OpenFlow 1.0 actions (`ofp_action_*` of 1.0.0 §5.2.4).

use crate::ofp::error::{EncodeError, Reason};
use crate::ofp::nx::{NxAction, NX_VENDOR_ID};
use crate::ofp::wire::{Put, Reader};

/// One OpenFlow 1.0 action (`OFPAT_*` of 1.0).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// `OFPAT_OUTPUT`
    Output {
        /// Output port (`OFPP_*` of 1.0 for reserved ports).
        port: u16,
        /// Bytes to send to the controller.
        max_len: u16,
    },
    /// `OFPAT_SET_VLAN_VID`
    SetVlanVid(u16),
    /// `OFPAT_SET_VLAN_PCP`
    SetVlanPcp(u8),
    /// `OFPAT_STRIP_VLAN`
    StripVlan,
    /// `OFPAT_SET_DL_SRC`
    SetDlSrc([u8; 6]),
    /// `OFPAT_SET_DL_DST`
    SetDlDst([u8; 6]),
    /// `OFPAT_SET_NW_SRC`
    SetNwSrc(u32),
    /// `OFPAT_SET_NW_DST`
    SetNwDst(u32),
    /// `OFPAT_SET_NW_TOS`
    SetNwTos(u8),
    /// `OFPAT_SET_TP_SRC`
    SetTpSrc(u16),
    /// `OFPAT_SET_TP_DST`
    SetTpDst(u16),
    /// `OFPAT_ENQUEUE`
    Enqueue {
        /// Port the queue belongs to.
        port: u16,
        /// Queue id.
        queue_id: u32,
    },
    /// A Nicira action (`OFPAT_VENDOR` with vendor [`NX_VENDOR_ID`]) the switch understands:
    /// `set_tunnel`, `set_tunnel64`, `load`.
    Nicira(NxAction),
    /// `OFPAT_VENDOR`: passed through.
    Vendor {
        /// Vendor id.
        vendor: u32,
        /// The rest of the action.
        data: Vec<u8>,
    },
}

impl Action {
    /// Appends the action to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let short = |out: &mut Vec<u8>, t: u16, body: [u8; 4]| {
            out.put_u16(t);
            out.put_u16(8);
            out.extend_from_slice(&body);
        };
        let u16b = |v: u16| {
            let [a, b] = v.to_be_bytes();
            [a, b, 0, 0]
        };
        match self {
            Action::Output { port, max_len } => {
                let [a, b] = port.to_be_bytes();
                let [c, d] = max_len.to_be_bytes();
                short(out, 0, [a, b, c, d]);
            }
            Action::SetVlanVid(v) => short(out, 1, u16b(*v)),
            Action::SetVlanPcp(p) => short(out, 2, [*p, 0, 0, 0]),
            Action::StripVlan => short(out, 3, [0; 4]),
            Action::SetDlSrc(a) | Action::SetDlDst(a) => {
                out.put_u16(if matches!(self, Action::SetDlSrc(_)) { 4 } else { 5 });
                out.put_u16(16);
                out.extend_from_slice(a);
                out.put_zeros(6);
            }
            Action::SetNwSrc(a) => short(out, 6, a.to_be_bytes()),
            Action::SetNwDst(a) => short(out, 7, a.to_be_bytes()),
            Action::SetNwTos(t) => short(out, 8, [*t, 0, 0, 0]),
            Action::SetTpSrc(p) => short(out, 9, u16b(*p)),
            Action::SetTpDst(p) => short(out, 10, u16b(*p)),
            Action::Enqueue { port, queue_id } => {
                out.put_u16(11);
                out.put_u16(16);
                out.put_u16(*port);
                out.put_zeros(6);
                out.put_u32(*queue_id);
            }
            Action::Nicira(nx) => {
                out.put_u16(0xffff);
                out.put_u16(nx.wire_len() as u16);
                out.put_u32(NX_VENDOR_ID);
                nx.encode_body(out);
            }
            Action::Vendor { vendor, data } => {
                if !(8 + data.len()).is_multiple_of(8) {
                    return Err(EncodeError::Invalid { what: "vendor action not 8-aligned" });
                }
                let start = out.len();
                out.put_u16(0xffff);
                out.put_u16(0);
                out.put_u32(*vendor);
                out.extend_from_slice(data);
                out.patch_len(start + 2, start)?;
            }
        }
        Ok(())
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Action, Reason> {
        let type_ = r.u16().map_err(|_| Reason::BadActionLen)?;
        let len = usize::from(r.u16().map_err(|_| Reason::BadActionLen)?);
        if len < 8 || !len.is_multiple_of(8) {
            return Err(Reason::BadActionLen);
        }
        let mut b = Reader::new(r.bytes(len - 4).map_err(|_| Reason::BadActionLen)?, Reason::BadActionLen);
        let want = match type_ {
            4 | 5 | 11 => 16,
            0xffff => len,
            _ => 8,
        };
        if len != want {
            return Err(Reason::BadActionLen);
        }
        let action = match type_ {
            0 => Action::Output { port: b.u16()?, max_len: b.u16()? },
            1 => Action::SetVlanVid(b.u16()?),
            2 => Action::SetVlanPcp(b.u8()?),
            3 => Action::StripVlan,
            4 => Action::SetDlSrc(b.array()?),
            5 => Action::SetDlDst(b.array()?),
            6 => Action::SetNwSrc(b.u32()?),
            7 => Action::SetNwDst(b.u32()?),
            8 => Action::SetNwTos(b.u8()?),
            9 => Action::SetTpSrc(b.u16()?),
            10 => Action::SetTpDst(b.u16()?),
            11 => {
                let port = b.u16()?;
                b.skip(6)?;
                Action::Enqueue { port, queue_id: b.u32()? }
            }
            0xffff => {
                let vendor = b.u32()?;
                let data = b.rest();
                match NxAction::decode_body(data) {
                    Some(nx) if vendor == NX_VENDOR_ID => Action::Nicira(nx),
                    _ => Action::Vendor { vendor, data: data.to_vec() },
                }
            }
            _ => return Err(Reason::BadActionType { type_ }),
        };
        b.pad_rest()?;
        Ok(action)
    }
}

pub(crate) fn decode_actions(buf: &[u8]) -> Result<Vec<Action>, Reason> {
    let mut r = Reader::new(buf, Reason::BadActionLen);
    let mut out = Vec::new();
    while r.remaining() > 0 {
        out.push(Action::decode(&mut r)?);
    }
    Ok(out)
}

pub(crate) fn encode_actions(actions: &[Action], out: &mut Vec<u8>) -> Result<(), EncodeError> {
    actions.iter().try_for_each(|a| a.encode(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    /// `ovs-ofctl 3.1 -O OpenFlow10 add-flow ip,priority=1,actions=learn(table=20,
    /// idle_timeout=10,fin_idle_timeout=2,send_flow_rem,NXM_OF_VLAN_TCI[0..11]=0x5,
    /// eth_type=0x800,NXM_OF_IP_DST[]=NXM_OF_IP_SRC[],load:0x1234567890->NXM_NX_TUN_ID[],
    /// output:NXM_OF_IN_PORT[]),output:1`: the vendor action, captured off the socket.
    pub(crate) const LEARN_10: &str = concat!(
        "ffff0060000023200010000a0000800000000000000000000001140000020000",
        "200c000500000802000020100800000006020000002000000e04000000001004",
        "0000284000000012345678900001200800001010000000020000000000000000",
    );

    #[test]
    fn nicira_learn_as_ovs_sends_it_in_1_0() {
        use crate::ofp::nx::{NxLearnDst, NxLearnSrc};
        let bytes = hex(LEARN_10);
        let a = decode_actions(&bytes).unwrap();
        let [Action::Nicira(NxAction::Learn(l))] = &a[..] else { panic!("{a:?}") };
        assert_eq!((l.idle_timeout, l.fin_idle_timeout, l.flags, l.table_id), (10, 2, 1, 20));
        assert_eq!(l.specs.len(), 5);
        assert_eq!(l.specs[0].src, NxLearnSrc::Immediate(vec![0, 5]));
        assert_eq!(l.specs[3].src, NxLearnSrc::Immediate(vec![0, 0, 0, 0x12, 0x34, 0x56, 0x78, 0x90]));
        assert_eq!(l.specs[2].dst, NxLearnDst::Match { header: 0x0000_1004, ofs: 0 });
        let mut out = Vec::new();
        encode_actions(&a, &mut out).unwrap();
        assert_eq!(out, bytes);
    }

    #[test]
    fn nicira_tunnel_actions_as_vendor_actions() {
        // NXAST_SET_TUNNEL and NXAST_SET_TUNNEL64 (the nicira-ext.h layouts).
        let cases = [
            ("ffff0010000023200002000000000064", NxAction::SetTunnel(0x64)),
            ("ffff00180000232000090000000000000000000100000064", NxAction::SetTunnel64(0x1_0000_0064)),
        ];
        for (h, nx) in cases {
            let bytes = hex(h);
            let mut out = Vec::new();
            Action::Nicira(nx.clone()).encode(&mut out).unwrap();
            assert_eq!(out, bytes, "{nx:?}");
            assert_eq!(decode_actions(&bytes).unwrap(), vec![Action::Nicira(nx)]);
        }
        // Another vendor, or a Nicira action with nonzero padding, stays raw and re-encodes.
        for h in ["ffff0010000023210002000000000064", "ffff0010000023200002000100000064"] {
            let bytes = hex(h);
            let a = decode_actions(&bytes).unwrap();
            assert!(matches!(a[0], Action::Vendor { .. }), "{a:?}");
            let mut out = Vec::new();
            encode_actions(&a, &mut out).unwrap();
            assert_eq!(out, bytes);
        }
    }
}
