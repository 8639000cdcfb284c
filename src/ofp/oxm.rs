//! OXM TLVs and `ofp_match` (OpenFlow 1.3.5 §7.2.3).
//!
//! A match is a `Vec<Oxm>`. Basic-class fields (`OFPXMC_OPENFLOW_BASIC`, in_port …
//! ipv6_exthdr) are typed by [`OxmField`]; decode checks each one's length and that value and
//! mask have no bits outside the field's width (`OFPBMC_BAD_VALUE` / `OFPBMC_BAD_MASK`), and
//! rejects a field given twice (`OFPBMC_DUP_FIELD`). Masks are accepted on every field, as Open
//! vSwitch does; whether a table supports one is the table's business (TABLE_FEATURES), as are
//! prerequisites. TLVs of other classes (NXM, experimenter) pass through as raw payloads.

use super::error::{EncodeError, Reason};
use super::nx::{NXM_1_CLASS, NXM_NX_TUN_IPV4_DST, NXM_NX_TUN_IPV4_SRC};
use super::wire::{pad8, Put, Reader};

/// `OFPXMC_OPENFLOW_BASIC`: the class of the standard match fields.
pub const OFPXMC_OPENFLOW_BASIC: u16 = 0x8000;
/// `OFPMT_OXM`: the only `ofp_match.type` OpenFlow 1.3 defines in use.
pub const OFPMT_OXM: u16 = 1;
/// `OFPVID_PRESENT`: bit set in `vlan_vid` values for "a VLAN tag is present".
pub const OFPVID_PRESENT: u16 = 0x1000;

macro_rules! oxm_fields {
    ($( $(#[$doc:meta])* $name:ident = $num:literal, $len:literal, $bits:expr; )*
     @nxm $( $(#[$ndoc:meta])* $nname:ident = $nclass:path, $nnum:path, $nlen:literal; )*) => {
        /// A match field: the basic-class fields by name (`OFPXMT_OFB_*`), anything else by its
        /// raw class and field number.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum OxmField {
            $( $(#[$doc])* $name, )*
            $( $(#[$ndoc])* $nname, )*
            /// A TLV outside the basic class (and not one of the Nicira fields above). Its [`Oxm::value`] is the whole raw payload (for
            /// the experimenter class, starting with the experimenter id) and `has_mask` keeps
            /// the header bit, so it re-encodes unchanged.
            Other {
                /// `oxm_class`.
                class: u16,
                /// `oxm_field` (7 bits).
                field: u8,
                /// `oxm_hasmask`.
                has_mask: bool,
            },
        }

        impl OxmField {
            /// The basic-class field with `OFPXMT_OFB_*` number `n`.
            pub fn from_basic(n: u8) -> Option<OxmField> {
                match n {
                    $( $num => Some(OxmField::$name), )*
                    _ => None,
                }
            }

            /// The typed field of another class (a Nicira field the switch knows), if any.
            pub fn from_nxm(class: u16, n: u8) -> Option<OxmField> {
                $( if class == $nclass && n == $nnum { return Some(OxmField::$nname); } )*
                None
            }

            /// `(oxm_class, oxm_field)` on the wire.
            pub fn class_field(self) -> (u16, u8) {
                match self {
                    $( OxmField::$name => (OFPXMC_OPENFLOW_BASIC, $num), )*
                    $( OxmField::$nname => ($nclass, $nnum), )*
                    OxmField::Other { class, field, .. } => (class, field),
                }
            }

            /// Length in bytes of the value (without mask); `None` for untyped fields.
            pub fn value_len(self) -> Option<usize> {
                match self {
                    $( OxmField::$name => Some($len), )*
                    $( OxmField::$nname => Some($nlen), )*
                    OxmField::Other { .. } => None,
                }
            }

            /// Significant bits when narrower than the value's bytes (`vlan_vid`: 13 bits).
            fn width_bits(self) -> Option<u32> {
                match self {
                    $( OxmField::$name => $bits, )*
                    $( OxmField::$nname => { let _ = $nlen; None } )*
                    OxmField::Other { .. } => None,
                }
            }
        }
    };
}

oxm_fields! {
    /// `OFPXMT_OFB_IN_PORT`: switch input port (u32).
    InPort = 0, 4, None;
    /// `OFPXMT_OFB_IN_PHY_PORT`: physical input port (u32).
    InPhyPort = 1, 4, None;
    /// `OFPXMT_OFB_METADATA`: metadata passed between tables (u64).
    Metadata = 2, 8, None;
    /// `OFPXMT_OFB_ETH_DST`: Ethernet destination address.
    EthDst = 3, 6, None;
    /// `OFPXMT_OFB_ETH_SRC`: Ethernet source address.
    EthSrc = 4, 6, None;
    /// `OFPXMT_OFB_ETH_TYPE`: Ethernet frame type.
    EthType = 5, 2, None;
    /// `OFPXMT_OFB_VLAN_VID`: VLAN id, with `OFPVID_PRESENT` (13 bits).
    VlanVid = 6, 2, Some(13);
    /// `OFPXMT_OFB_VLAN_PCP`: VLAN priority (3 bits).
    VlanPcp = 7, 1, Some(3);
    /// `OFPXMT_OFB_IP_DSCP`: IP DSCP (6 bits).
    IpDscp = 8, 1, Some(6);
    /// `OFPXMT_OFB_IP_ECN`: IP ECN (2 bits).
    IpEcn = 9, 1, Some(2);
    /// `OFPXMT_OFB_IP_PROTO`: IP protocol.
    IpProto = 10, 1, None;
    /// `OFPXMT_OFB_IPV4_SRC`: IPv4 source address.
    Ipv4Src = 11, 4, None;
    /// `OFPXMT_OFB_IPV4_DST`: IPv4 destination address.
    Ipv4Dst = 12, 4, None;
    /// `OFPXMT_OFB_TCP_SRC`: TCP source port.
    TcpSrc = 13, 2, None;
    /// `OFPXMT_OFB_TCP_DST`: TCP destination port.
    TcpDst = 14, 2, None;
    /// `OFPXMT_OFB_UDP_SRC`: UDP source port.
    UdpSrc = 15, 2, None;
    /// `OFPXMT_OFB_UDP_DST`: UDP destination port.
    UdpDst = 16, 2, None;
    /// `OFPXMT_OFB_SCTP_SRC`: SCTP source port.
    SctpSrc = 17, 2, None;
    /// `OFPXMT_OFB_SCTP_DST`: SCTP destination port.
    SctpDst = 18, 2, None;
    /// `OFPXMT_OFB_ICMPV4_TYPE`: ICMP type.
    Icmpv4Type = 19, 1, None;
    /// `OFPXMT_OFB_ICMPV4_CODE`: ICMP code.
    Icmpv4Code = 20, 1, None;
    /// `OFPXMT_OFB_ARP_OP`: ARP opcode.
    ArpOp = 21, 2, None;
    /// `OFPXMT_OFB_ARP_SPA`: ARP source IPv4 address.
    ArpSpa = 22, 4, None;
    /// `OFPXMT_OFB_ARP_TPA`: ARP target IPv4 address.
    ArpTpa = 23, 4, None;
    /// `OFPXMT_OFB_ARP_SHA`: ARP source hardware address.
    ArpSha = 24, 6, None;
    /// `OFPXMT_OFB_ARP_THA`: ARP target hardware address.
    ArpTha = 25, 6, None;
    /// `OFPXMT_OFB_IPV6_SRC`: IPv6 source address.
    Ipv6Src = 26, 16, None;
    /// `OFPXMT_OFB_IPV6_DST`: IPv6 destination address.
    Ipv6Dst = 27, 16, None;
    /// `OFPXMT_OFB_IPV6_FLABEL`: IPv6 flow label (20 bits).
    Ipv6Flabel = 28, 4, Some(20);
    /// `OFPXMT_OFB_ICMPV6_TYPE`: ICMPv6 type.
    Icmpv6Type = 29, 1, None;
    /// `OFPXMT_OFB_ICMPV6_CODE`: ICMPv6 code.
    Icmpv6Code = 30, 1, None;
    /// `OFPXMT_OFB_IPV6_ND_TARGET`: target address for neighbour discovery.
    Ipv6NdTarget = 31, 16, None;
    /// `OFPXMT_OFB_IPV6_ND_SLL`: source link-layer address for ND.
    Ipv6NdSll = 32, 6, None;
    /// `OFPXMT_OFB_IPV6_ND_TLL`: target link-layer address for ND.
    Ipv6NdTll = 33, 6, None;
    /// `OFPXMT_OFB_MPLS_LABEL`: MPLS label (20 bits).
    MplsLabel = 34, 4, Some(20);
    /// `OFPXMT_OFB_MPLS_TC`: MPLS traffic class (3 bits).
    MplsTc = 35, 1, Some(3);
    /// `OFPXMT_OFP_MPLS_BOS`: MPLS bottom-of-stack bit (1 bit).
    MplsBos = 36, 1, Some(1);
    /// `OFPXMT_OFB_PBB_ISID`: PBB I-SID (24 bits).
    PbbIsid = 37, 3, None;
    /// `OFPXMT_OFB_TUNNEL_ID`: logical port metadata (u64).
    TunnelId = 38, 8, None;
    /// `OFPXMT_OFB_IPV6_EXTHDR`: IPv6 extension header pseudo-field (9 bits).
    Ipv6Exthdr = 39, 2, Some(9);
    @nxm
    /// `NXM_NX_TUN_IPV4_SRC`: outer IPv4 source of the tunnel the packet came in on.
    TunIpv4Src = NXM_1_CLASS, NXM_NX_TUN_IPV4_SRC, 4;
    /// `NXM_NX_TUN_IPV4_DST`: outer IPv4 destination of the tunnel the packet came in on.
    TunIpv4Dst = NXM_1_CLASS, NXM_NX_TUN_IPV4_DST, 4;
}

/// One OXM TLV: a field, its value and an optional mask (1 bits = compared).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Oxm {
    /// Which field.
    pub field: OxmField,
    /// The value, big-endian, exactly [`OxmField::value_len`] bytes for basic fields.
    pub value: Vec<u8>,
    /// The mask, same length as the value; `None` for an exact match.
    pub mask: Option<Vec<u8>>,
}

impl Oxm {
    /// An exact match on `field` with big-endian `value`, taking the low bytes of `value`
    /// that fit the field (so `Oxm::exact(OxmField::EthType, 0x0800)` works). Other-class
    /// fields get an empty value.
    pub fn exact(field: OxmField, value: u128) -> Oxm {
        Oxm { field, value: low_bytes(value, field.value_len().unwrap_or(0)), mask: None }
    }

    /// A masked match, as [`Oxm::exact`] for both value and mask.
    pub fn masked(field: OxmField, value: u128, mask: u128) -> Oxm {
        let n = field.value_len().unwrap_or(0);
        Oxm { field, value: low_bytes(value, n), mask: Some(low_bytes(mask, n)) }
    }

    /// An exact match on raw bytes (addresses).
    pub fn bytes(field: OxmField, value: &[u8]) -> Oxm {
        Oxm { field, value: value.to_vec(), mask: None }
    }

    /// Bytes this TLV takes on the wire, header included.
    pub fn wire_len(&self) -> usize {
        4 + self.value.len() + self.mask.as_ref().map_or(0, Vec::len)
    }

    /// Appends the TLV to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let (class, field) = self.field.class_field();
        let has_mask = match self.field {
            OxmField::Other { has_mask, .. } => {
                if self.mask.is_some() {
                    return Err(EncodeError::Invalid { what: "mask on a non-basic OXM" });
                }
                has_mask
            }
            basic => {
                let n = basic.value_len().unwrap_or(0);
                if self.value.len() != n || self.mask.as_ref().is_some_and(|m| m.len() != n) {
                    return Err(EncodeError::Invalid { what: "OXM value or mask length" });
                }
                self.mask.is_some()
            }
        };
        let len = u8::try_from(self.wire_len() - 4).map_err(|_| EncodeError::TooLong)?;
        out.put_u16(class);
        out.put_u8((field << 1) | u8::from(has_mask));
        out.put_u8(len);
        out.extend_from_slice(&self.value);
        if let Some(m) = &self.mask {
            out.extend_from_slice(m);
        }
        Ok(())
    }

    /// Reads one TLV, reporting problems as match errors (`OFPET_BAD_MATCH`).
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Oxm, Reason> {
        let class = r.u16().map_err(|_| Reason::BadMatchLen)?;
        let fh = r.u8().map_err(|_| Reason::BadMatchLen)?;
        let len = usize::from(r.u8().map_err(|_| Reason::BadMatchLen)?);
        let payload = r.bytes(len).map_err(|_| Reason::BadMatchLen)?;
        let (field_no, has_mask) = (fh >> 1, fh & 1 == 1);
        let field = if class == OFPXMC_OPENFLOW_BASIC {
            OxmField::from_basic(field_no).ok_or(Reason::BadField { class, field: field_no })?
        } else if let Some(f) = OxmField::from_nxm(class, field_no) {
            f
        } else {
            let field = OxmField::Other { class, field: field_no, has_mask };
            return Ok(Oxm { field, value: payload.to_vec(), mask: None });
        };
        let n = field.value_len().unwrap_or(0);
        if len != if has_mask { 2 * n } else { n } {
            return Err(Reason::BadMatchLen);
        }
        let (value, mask) = payload.split_at(n);
        if outside_width(field, value) {
            return Err(Reason::BadValue);
        }
        if has_mask && outside_width(field, mask) {
            return Err(Reason::BadMask);
        }
        Ok(Oxm { field, value: value.to_vec(), mask: has_mask.then(|| mask.to_vec()) })
    }
}

/// The low `n` bytes of `v`, big-endian.
fn low_bytes(v: u128, n: usize) -> Vec<u8> {
    let all = v.to_be_bytes();
    all[all.len().saturating_sub(n)..].to_vec()
}

/// Whether `bytes` has bits set above the field's significant width.
fn outside_width(field: OxmField, bytes: &[u8]) -> bool {
    let Some(bits) = field.width_bits() else { return false };
    let v = bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    v >> bits != 0
}

/// Decodes an `ofp_match` (header, OXMs, padding to 8) from `r`.
pub(crate) fn decode_match(r: &mut Reader<'_>) -> Result<Vec<Oxm>, Reason> {
    let type_ = r.u16().map_err(|_| Reason::BadMatchLen)?;
    let length = usize::from(r.u16().map_err(|_| Reason::BadMatchLen)?);
    if type_ != OFPMT_OXM {
        return Err(Reason::BadMatchType { type_ });
    }
    if length < 4 {
        return Err(Reason::BadMatchLen);
    }
    let body = r.bytes(length - 4).map_err(|_| Reason::BadMatchLen)?;
    r.skip(pad8(length) - length).map_err(|_| Reason::BadMatchLen)?;
    let mut fields = Reader::new(body, Reason::BadMatchLen);
    let mut out: Vec<Oxm> = Vec::new();
    while fields.remaining() > 0 {
        let oxm = Oxm::decode(&mut fields)?;
        let typed = !matches!(oxm.field, OxmField::Other { .. });
        if typed && out.iter().any(|o| o.field == oxm.field) {
            return Err(Reason::DupField);
        }
        out.push(oxm);
    }
    Ok(out)
}

/// Appends an `ofp_match` of type `OFPMT_OXM` holding `oxms`, padded to 8 bytes.
pub(crate) fn encode_match(oxms: &[Oxm], out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let start = out.len();
    out.put_u16(OFPMT_OXM);
    out.put_u16(0);
    for oxm in oxms {
        oxm.encode(out)?;
    }
    out.patch_len(start + 2, start)?;
    out.pad8(start);
    Ok(())
}
