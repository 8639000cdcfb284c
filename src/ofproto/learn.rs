//! The Nicira `learn` action (`NXAST_LEARN`, `man ovs-actions`): when a packet runs it, a
//! new flow is built from the packet's header fields and added to a table (replacing the
//! flow with the same match and priority, so its timeouts start again).
//!
//! A [`LearnSpec`] holds the new flow's table, priority, timeouts, cookie and flags, and a
//! list of [`LearnItem`]s: a match on (bits of) a field, taken from the same or another
//! field of the packet or from an immediate; a `load` action of a value or a packet field;
//! an `output` to the port a packet field holds. [`LearnSpec::execute`] computes the
//! [`FlowMod`] and marks every packet field it read in the megaflow mask.
//!
//! Fields: those a Neutron-style learn uses ([`LearnField`]); others are refused with a
//! clear error (`OFPBAC_BAD_ARGUMENT` on the wire). `delete_learned` is refused too, and
//! `fin_idle_timeout`/`fin_hard_timeout` are kept but have no effect.

use std::fmt;

use crate::datapath::flow::{FlowKey, FlowMask, VLAN_PRESENT, VLAN_VID_MASK};
use crate::ofp::nx::{
    NxLearn, NxLearnDst, NxLearnSpec, NxLearnSrc, NX_LEARN_F_DELETE_LEARNED, NX_LEARN_F_SEND_FLOW_REM,
};

use super::rule::{
    flags, ofpp, FlowMod, FlowModCommand, FlowSpec, Match, OfAction, TableId, DEFAULT_PRIORITY,
};
use super::syntax::{parse_ipv4, parse_mac, parse_u64, ETH_IP};
use super::table::{Pipeline, RuleId};

/// A packet field a learn action may read or write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LearnField {
    /// `NXM_OF_IN_PORT`: the ingress port as a 16-bit OpenFlow 1.0 number.
    InPort,
    /// `OXM_OF_IN_PORT`: the ingress port, 32 bits.
    InPortOxm,
    /// `NXM_OF_ETH_SRC` (`OXM_OF_ETH_SRC`).
    EthSrc,
    /// `NXM_OF_ETH_DST` (`OXM_OF_ETH_DST`).
    EthDst,
    /// `NXM_OF_VLAN_TCI`: the 802.1Q TCI with bit 12 (CFI) meaning "tagged".
    VlanTci,
    /// `NXM_OF_ETH_TYPE` (`OXM_OF_ETH_TYPE`).
    EthType,
    /// `NXM_NX_TUN_ID` (`OXM_OF_TUNNEL_ID`).
    TunId,
    /// `NXM_OF_IP_SRC` (`OXM_OF_IPV4_SRC`); IPv4 packets only.
    Ipv4Src,
    /// `NXM_OF_IP_DST` (`OXM_OF_IPV4_DST`); IPv4 packets only.
    Ipv4Dst,
}

/// What the switch knows of a field: names, width and wire headers.
struct FieldInfo {
    field: LearnField,
    /// The canonical NXM name (`NXM_OF_ETH_SRC`).
    name: &'static str,
    /// The `ovs-fields` name (`eth_src`).
    short: &'static str,
    bits: u16,
    /// The NXM header OVS writes.
    nxm: u32,
    /// The OXM alias's name and header, if it has one.
    oxm: Option<(&'static str, u32)>,
}

const FIELDS: &[FieldInfo] = &[
    FieldInfo {
        field: LearnField::InPort,
        name: "NXM_OF_IN_PORT",
        short: "in_port",
        bits: 16,
        nxm: 0x0000_0002,
        oxm: None,
    },
    FieldInfo {
        field: LearnField::InPortOxm,
        name: "OXM_OF_IN_PORT",
        short: "in_port_oxm",
        bits: 32,
        nxm: 0x8000_0004,
        oxm: None,
    },
    FieldInfo {
        field: LearnField::EthDst,
        name: "NXM_OF_ETH_DST",
        short: "eth_dst",
        bits: 48,
        nxm: 0x0000_0206,
        oxm: Some(("OXM_OF_ETH_DST", 0x8000_0606)),
    },
    FieldInfo {
        field: LearnField::EthSrc,
        name: "NXM_OF_ETH_SRC",
        short: "eth_src",
        bits: 48,
        nxm: 0x0000_0406,
        oxm: Some(("OXM_OF_ETH_SRC", 0x8000_0806)),
    },
    FieldInfo {
        field: LearnField::EthType,
        name: "NXM_OF_ETH_TYPE",
        short: "eth_type",
        bits: 16,
        nxm: 0x0000_0602,
        oxm: Some(("OXM_OF_ETH_TYPE", 0x8000_0a02)),
    },
    FieldInfo {
        field: LearnField::VlanTci,
        name: "NXM_OF_VLAN_TCI",
        short: "vlan_tci",
        bits: 16,
        nxm: 0x0000_0802,
        oxm: None,
    },
    FieldInfo {
        field: LearnField::Ipv4Src,
        name: "NXM_OF_IP_SRC",
        short: "ip_src",
        bits: 32,
        nxm: 0x0000_0e04,
        oxm: Some(("OXM_OF_IPV4_SRC", 0x8000_1604)),
    },
    FieldInfo {
        field: LearnField::Ipv4Dst,
        name: "NXM_OF_IP_DST",
        short: "ip_dst",
        bits: 32,
        nxm: 0x0000_1004,
        oxm: Some(("OXM_OF_IPV4_DST", 0x8000_1804)),
    },
    FieldInfo {
        field: LearnField::TunId,
        name: "NXM_NX_TUN_ID",
        short: "tun_id",
        bits: 64,
        nxm: 0x0001_2008,
        oxm: Some(("OXM_OF_TUNNEL_ID", 0x8000_4c08)),
    },
];

/// Other spellings `ovs-ofctl` accepts for the fields.
const ALIASES: &[(&str, LearnField)] = &[
    ("dl_src", LearnField::EthSrc),
    ("dl_dst", LearnField::EthDst),
    ("dl_type", LearnField::EthType),
    ("tunnel_id", LearnField::TunId),
    ("nw_src", LearnField::Ipv4Src),
    ("nw_dst", LearnField::Ipv4Dst),
];

impl LearnField {
    fn info(self) -> &'static FieldInfo {
        // Every variant has a row.
        FIELDS.iter().find(|r| r.field == self).unwrap_or(&FIELDS[0])
    }
    /// The name `ovs-ofctl` prints in a learn action (`NXM_OF_ETH_SRC`).
    pub fn name(self) -> &'static str {
        self.info().name
    }
    /// Width in bits.
    pub fn bits(self) -> u16 {
        self.info().bits
    }
    /// The NXM header OVS writes for it on the wire.
    pub fn header(self) -> u32 {
        self.info().nxm
    }
    /// The field with NXM or OXM header `h` (`None`: not one learn supports).
    pub fn from_header(h: u32) -> Option<LearnField> {
        FIELDS.iter().find(|r| r.nxm == h || r.oxm.is_some_and(|(_, o)| o == h)).map(|r| r.field)
    }
    /// The field named `s` (NXM/OXM name or `ovs-fields` name, case-insensitive).
    pub fn from_name(s: &str) -> Option<LearnField> {
        let eq = |a: &str| a.eq_ignore_ascii_case(s);
        FIELDS
            .iter()
            .find(|r| eq(r.name) || eq(r.short) || r.oxm.is_some_and(|(n, _)| eq(n)))
            .map(|r| r.field)
            .or_else(|| ALIASES.iter().find(|a| eq(a.0)).map(|a| a.1))
    }

    /// The field's value in `k`, right-aligned.
    fn get(self, k: &FlowKey) -> u64 {
        let mac = |m: &[u8; 6]| m.iter().fold(0u64, |a, &b| a << 8 | u64::from(b));
        let ip = |a: &[u8; 16]| u64::from(u32::from_be_bytes([a[0], a[1], a[2], a[3]]));
        match self {
            LearnField::InPort => u64::from(k.in_port as u16),
            LearnField::InPortOxm => u64::from(k.in_port),
            LearnField::EthSrc => mac(&k.dl_src),
            LearnField::EthDst => mac(&k.dl_dst),
            LearnField::VlanTci => u64::from(k.vlan_tci),
            LearnField::EthType => u64::from(k.dl_type),
            LearnField::TunId => k.tun_id,
            LearnField::Ipv4Src => ip(&k.nw_src),
            LearnField::Ipv4Dst => ip(&k.nw_dst),
        }
    }

    /// Stores `v` (right-aligned) as the field's value in `k`. A 16-bit port at or above
    /// 0xff00 is a reserved port and widens to its 32-bit number.
    fn set(self, k: &mut FlowKey, v: u64) {
        let mac = |v: u64| {
            let b = v.to_be_bytes();
            [b[2], b[3], b[4], b[5], b[6], b[7]]
        };
        match self {
            LearnField::InPort => k.in_port = widen_port(v as u16),
            LearnField::InPortOxm => k.in_port = v as u32,
            LearnField::EthSrc => k.dl_src = mac(v),
            LearnField::EthDst => k.dl_dst = mac(v),
            LearnField::VlanTci => k.vlan_tci = v as u16,
            LearnField::EthType => k.dl_type = v as u16,
            LearnField::TunId => k.tun_id = v,
            LearnField::Ipv4Src => k.nw_src[..4].copy_from_slice(&(v as u32).to_be_bytes()),
            LearnField::Ipv4Dst => k.nw_dst[..4].copy_from_slice(&(v as u32).to_be_bytes()),
        }
    }

    /// Whether reading or matching it needs an IPv4 packet.
    fn needs_ipv4(self) -> bool {
        matches!(self, LearnField::Ipv4Src | LearnField::Ipv4Dst)
    }

    /// Formats a whole-field value as `ovs-ofctl` writes it.
    fn format_value(self, v: u64) -> String {
        match self {
            LearnField::EthSrc | LearnField::EthDst => {
                let b = v.to_be_bytes();
                format!("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[2], b[3], b[4], b[5], b[6], b[7])
            }
            LearnField::Ipv4Src | LearnField::Ipv4Dst => std::net::Ipv4Addr::from(v as u32).to_string(),
            LearnField::InPort | LearnField::InPortOxm => v.to_string(),
            LearnField::VlanTci | LearnField::EthType | LearnField::TunId => format!("0x{v:x}"),
        }
    }
}

/// The 32-bit OpenFlow port of a 16-bit one (reserved ports 0xff00.. map to 0xffffff00..).
fn widen_port(p: u16) -> u32 {
    if p >= 0xff00 {
        0xffff_0000 | u32::from(p)
    } else {
        u32::from(p)
    }
}

fn ones(n: u16) -> u64 {
    if n >= 64 {
        u64::MAX
    } else {
        (1u64 << n) - 1
    }
}

/// Bits `ofs..ofs + n_bits` of a field (`NXM_OF_VLAN_TCI[0..11]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SubField {
    /// The field.
    pub field: LearnField,
    /// First bit (0 = least significant).
    pub ofs: u16,
    /// Number of bits (at least 1).
    pub n_bits: u16,
}

impl SubField {
    /// The whole field.
    pub fn whole(field: LearnField) -> SubField {
        SubField { field, ofs: 0, n_bits: field.bits() }
    }
    /// A checked range of `field`.
    pub fn new(field: LearnField, ofs: u16, n_bits: u16) -> Result<SubField, String> {
        if n_bits == 0 || u32::from(ofs) + u32::from(n_bits) > u32::from(field.bits()) {
            return Err(format!(
                "bits {ofs}..{} are not within {} ({} bits)",
                u32::from(ofs) + u32::from(n_bits),
                field.name(),
                field.bits()
            ));
        }
        Ok(SubField { field, ofs, n_bits })
    }
    /// Whether it is the whole field.
    pub fn is_whole(&self) -> bool {
        self.ofs == 0 && self.n_bits == self.field.bits()
    }
    fn mask(&self) -> u64 {
        ones(self.n_bits) << self.ofs
    }
    /// The bits' value in `k`, right-aligned.
    fn read(&self, k: &FlowKey) -> u64 {
        (self.field.get(k) >> self.ofs) & ones(self.n_bits)
    }
    /// Writes `v` (right-aligned) into the bits in `k`.
    fn write(&self, k: &mut FlowKey, v: u64) {
        let old = self.field.get(k);
        self.field.set(k, (old & !self.mask()) | ((v << self.ofs) & self.mask()));
    }
    /// Sets the bits in a mask (the 16-bit in_port marks all 32 bits).
    fn mark(&self, m: &mut FlowMask) {
        match self.field {
            LearnField::InPort => m.0.in_port = !0,
            _ => self.write(&mut m.0, u64::MAX),
        }
    }

    /// Parses `NAME`, `NAME[]`, `NAME[i]` or `NAME[a..b]`; `None` when `s` names no field.
    fn parse(s: &str) -> Option<Result<SubField, String>> {
        let s = s.trim();
        let (name, range) = match s.find('[') {
            Some(i) => (&s[..i], Some(&s[i..])),
            None => (s, None),
        };
        let field = LearnField::from_name(name)?;
        let Some(r) = range else { return Some(Ok(SubField::whole(field))) };
        let Some(inner) = r.strip_prefix('[').and_then(|r| r.strip_suffix(']')) else {
            return Some(Err(format!("{s:?}: expected FIELD[], FIELD[bit] or FIELD[start..end]")));
        };
        if inner.is_empty() {
            return Some(Ok(SubField::whole(field)));
        }
        let num = |t: &str| t.trim().parse::<u16>().map_err(|_| format!("{s:?}: {t:?} is not a bit number"));
        Some((|| {
            let (a, b) = match inner.split_once("..") {
                Some((a, b)) => (num(a)?, num(b)?),
                None => {
                    let a = num(inner)?;
                    (a, a)
                }
            };
            if b < a {
                return Err(format!("{s:?}: the range is backwards"));
            }
            SubField::new(field, a, b - a + 1)
        })())
    }
}

impl fmt::Display for SubField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.field.name();
        if self.is_whole() {
            write!(f, "{name}[]")
        } else if self.n_bits == 1 {
            write!(f, "{name}[{}]", self.ofs)
        } else {
            write!(f, "{name}[{}..{}]", self.ofs, self.ofs + self.n_bits - 1)
        }
    }
}

/// Where a learn item takes its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LearnSrc {
    /// Bits of the packet (same width as the destination).
    Field(SubField),
    /// A constant (fits in the destination's width).
    Immediate(u64),
}

/// One `flow_mod_spec`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LearnItem {
    /// The new flow matches `dst` against `src`.
    Match {
        /// The bits the new flow matches.
        dst: SubField,
        /// Their value.
        src: LearnSrc,
    },
    /// The new flow loads `src` into `dst`.
    Load {
        /// The bits the action writes.
        dst: SubField,
        /// The value.
        src: LearnSrc,
    },
    /// The new flow outputs to the port in these packet bits.
    Output(SubField),
}

/// A learn action: the flow to add, as a template filled in from the packet.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LearnSpec {
    /// Table of the new flow (`table=`, default 1 as in OVS).
    pub table: TableId,
    /// `priority=` (default 32768).
    pub priority: u16,
    /// `idle_timeout=` (0 = none).
    pub idle_timeout: u16,
    /// `hard_timeout=` (0 = none).
    pub hard_timeout: u16,
    /// `fin_idle_timeout=` (kept, no effect).
    pub fin_idle_timeout: u16,
    /// `fin_hard_timeout=` (kept, no effect).
    pub fin_hard_timeout: u16,
    /// `cookie=`.
    pub cookie: u64,
    /// `send_flow_rem`: the new flow sends a flow-removed message.
    pub send_flow_rem: bool,
    /// The flow_mod_specs, in order.
    pub items: Vec<LearnItem>,
}

impl Default for LearnSpec {
    fn default() -> Self {
        LearnSpec {
            table: 1,
            priority: DEFAULT_PRIORITY,
            idle_timeout: 0,
            hard_timeout: 0,
            fin_idle_timeout: 0,
            fin_hard_timeout: 0,
            cookie: 0,
            send_flow_rem: false,
            items: Vec::new(),
        }
    }
}

/// The actions a `load` of `v` into `dst` becomes in the new flow, or why it cannot be one.
fn load_actions(dst: SubField, v: u64, out: &mut Vec<OfAction>) -> Result<(), String> {
    let mac = |v: u64| {
        let x = v.to_be_bytes();
        [x[2], x[3], x[4], x[5], x[6], x[7]]
    };
    match (dst.field, dst.ofs, dst.n_bits) {
        (LearnField::TunId, 0, 64) => out.push(OfAction::SetTunId(v)),
        (LearnField::EthSrc, 0, 48) => out.push(OfAction::SetEthSrc(mac(v))),
        (LearnField::EthDst, 0, 48) => out.push(OfAction::SetEthDst(mac(v))),
        (LearnField::Ipv4Src, 0, 32) => out.push(OfAction::SetIpv4Src((v as u32).to_be_bytes())),
        (LearnField::Ipv4Dst, 0, 32) => out.push(OfAction::SetIpv4Dst((v as u32).to_be_bytes())),
        (LearnField::VlanTci, 0, 16) => {
            let tci = v as u16;
            if tci & VLAN_PRESENT == 0 {
                out.push(OfAction::StripVlan);
            } else {
                out.push(OfAction::SetVlanVid(tci & VLAN_VID_MASK));
                out.push(OfAction::SetVlanPcp((tci >> 13) as u8));
            }
        }
        (LearnField::VlanTci, 0, 12) => out.push(OfAction::SetVlanVid(v as u16 & VLAN_VID_MASK)),
        (LearnField::VlanTci, 13, 3) => out.push(OfAction::SetVlanPcp(v as u8 & 7)),
        _ => {
            return Err(format!("load into {dst}: not supported (whole fields, or VLAN_TCI[0..11]/[13..15])"))
        }
    }
    Ok(())
}

impl LearnSpec {
    /// Checks what the parser and the wire decoder cannot: widths agree, immediates fit,
    /// loads go where an action exists, IPv4 matches follow a match on the EtherType.
    pub fn validate(&self) -> Result<(), String> {
        if usize::from(self.table) >= super::rule::N_TABLES {
            return Err(format!("table {} is not a flow table", self.table));
        }
        let mut eth_type_matched = false;
        for item in &self.items {
            let (dst, src) = match *item {
                LearnItem::Match { dst, src } => (dst, Some(src)),
                LearnItem::Load { dst, src } => {
                    load_actions(dst, 0, &mut Vec::new())?;
                    (dst, Some(src))
                }
                LearnItem::Output(src) => {
                    if src.n_bits > 32 {
                        return Err(format!("output:{src}: a port has at most 32 bits"));
                    }
                    continue;
                }
            };
            match src {
                Some(LearnSrc::Field(s)) if s.n_bits != dst.n_bits => {
                    return Err(format!("{s} has {} bits but {dst} has {}", s.n_bits, dst.n_bits));
                }
                Some(LearnSrc::Immediate(v)) if v & !ones(dst.n_bits) != 0 => {
                    return Err(format!("0x{v:x} does not fit in {dst}"));
                }
                _ => {}
            }
            if let LearnItem::Match { dst, .. } = item {
                if dst.field == LearnField::InPort && !dst.is_whole() {
                    return Err(format!("{dst}: match on the whole NXM_OF_IN_PORT[] only"));
                }
                if dst.field.needs_ipv4() && !eth_type_matched {
                    return Err(format!("{dst}: needs an earlier match on NXM_OF_ETH_TYPE[] (IPv4)"));
                }
                if dst.field == LearnField::EthType && dst.is_whole() {
                    eth_type_matched = true;
                }
            }
        }
        Ok(())
    }

    /// Builds the flow this learn adds for a packet whose header fields (as the actions so
    /// far have made them) are `key`; every field it reads is marked in `mask`. `None` when
    /// the packet cannot fill the template (an IPv4 field of a non-IPv4 packet), as then
    /// OVS would refuse the flow.
    ///
    /// The flow-mod is an add: it replaces the flow with the same match and priority, so
    /// the timeouts start again.
    pub fn execute(&self, key: &FlowKey, mask: &mut FlowMask) -> Option<FlowMod> {
        let read = |s: SubField, mask: &mut FlowMask| -> Option<u64> {
            if s.field.needs_ipv4() {
                mask.0.dl_type = !0;
                if key.dl_type != ETH_IP {
                    return None;
                }
            }
            s.mark(mask);
            Some(s.read(key))
        };
        let value = |src: LearnSrc, mask: &mut FlowMask| match src {
            LearnSrc::Immediate(v) => Some(v),
            LearnSrc::Field(s) => read(s, mask),
        };
        let (mut mk, mut mm) = (FlowKey::default(), FlowMask::catchall());
        let mut actions = Vec::new();
        for item in &self.items {
            match *item {
                LearnItem::Match { dst, src } => {
                    let v = value(src, mask)?;
                    dst.write(&mut mk, v);
                    dst.mark(&mut mm);
                }
                LearnItem::Load { dst, src } => {
                    let v = value(src, mask)?;
                    load_actions(dst, v, &mut actions).ok()?;
                }
                LearnItem::Output(src) => {
                    let raw = value(LearnSrc::Field(src), mask)?;
                    let port =
                        if src.field == LearnField::InPort { widen_port(raw as u16) } else { raw as u32 };
                    if let Some(a) = output_to(port) {
                        actions.push(a);
                    }
                }
            }
        }
        let ip_fields = mm.0.nw_src[..4] != [0; 4] || mm.0.nw_dst[..4] != [0; 4];
        if ip_fields && (mm.0.dl_type != 0xffff || mk.dl_type != ETH_IP) {
            return None;
        }
        let spec = FlowSpec {
            table: self.table,
            priority: self.priority,
            cookie: self.cookie,
            idle_timeout: self.idle_timeout,
            hard_timeout: self.hard_timeout,
            matches: Match::new(mk, mm),
            actions,
            flags: if self.send_flow_rem { flags::SEND_FLOW_REM } else { 0 },
            ..FlowSpec::default()
        };
        Some(FlowMod::new(FlowModCommand::Add, spec))
    }

    /// The wire form (`nx_action_learn`).
    pub fn to_nx(&self) -> NxLearn {
        let field = |s: SubField| (s.field.header(), s.ofs);
        let specs = self
            .items
            .iter()
            .map(|item| {
                let (src, n_bits) = match *item {
                    LearnItem::Match { dst, src } | LearnItem::Load { dst, src } => (src, dst.n_bits),
                    LearnItem::Output(s) => (LearnSrc::Field(s), s.n_bits),
                };
                let src = match src {
                    LearnSrc::Field(s) => NxLearnSrc::Field { header: field(s).0, ofs: s.ofs },
                    LearnSrc::Immediate(v) => {
                        let n = NxLearnSpec::immediate_len(n_bits);
                        let mut bytes = vec![0u8; n];
                        let be = v.to_be_bytes();
                        let k = n.min(8);
                        bytes[n - k..].copy_from_slice(&be[8 - k..]);
                        NxLearnSrc::Immediate(bytes)
                    }
                };
                let dst = match *item {
                    LearnItem::Match { dst, .. } => NxLearnDst::Match { header: field(dst).0, ofs: dst.ofs },
                    LearnItem::Load { dst, .. } => NxLearnDst::Load { header: field(dst).0, ofs: dst.ofs },
                    LearnItem::Output(_) => NxLearnDst::Output,
                };
                NxLearnSpec { n_bits, src, dst }
            })
            .collect();
        NxLearn {
            idle_timeout: self.idle_timeout,
            hard_timeout: self.hard_timeout,
            priority: self.priority,
            cookie: self.cookie,
            flags: if self.send_flow_rem { NX_LEARN_F_SEND_FLOW_REM } else { 0 },
            table_id: self.table,
            fin_idle_timeout: self.fin_idle_timeout,
            fin_hard_timeout: self.fin_hard_timeout,
            specs,
        }
    }

    /// The model of a wire learn action; the error says what is not supported (the agent
    /// answers `OFPBAC_BAD_ARGUMENT`).
    pub fn from_nx(l: &NxLearn) -> Result<LearnSpec, String> {
        if l.flags & NX_LEARN_F_DELETE_LEARNED != 0 {
            return Err("learn: delete_learned is not supported".into());
        }
        if l.flags & !NX_LEARN_F_SEND_FLOW_REM != 0 {
            return Err(format!("learn: flags 0x{:x}", l.flags));
        }
        let sub = |header: u32, ofs: u16, n_bits: u16| -> Result<SubField, String> {
            let f = LearnField::from_header(header)
                .ok_or_else(|| format!("learn: field with header 0x{header:08x} is not supported"))?;
            SubField::new(f, ofs, n_bits).map_err(|e| format!("learn: {e}"))
        };
        let mut items = Vec::with_capacity(l.specs.len());
        for s in &l.specs {
            if s.n_bits == 0 || s.n_bits > 64 {
                return Err(format!("learn: {} bits", s.n_bits));
            }
            let src = match &s.src {
                NxLearnSrc::Field { header, ofs } => LearnSrc::Field(sub(*header, *ofs, s.n_bits)?),
                NxLearnSrc::Immediate(b) => {
                    let lead = b.len().saturating_sub(8);
                    if b[..lead].iter().any(|&x| x != 0) {
                        return Err("learn: immediate wider than 64 bits".into());
                    }
                    LearnSrc::Immediate(b[lead..].iter().fold(0u64, |a, &x| a << 8 | u64::from(x)))
                }
            };
            items.push(match (s.dst, src) {
                (NxLearnDst::Match { header, ofs }, src) => {
                    LearnItem::Match { dst: sub(header, ofs, s.n_bits)?, src }
                }
                (NxLearnDst::Load { header, ofs }, src) => {
                    LearnItem::Load { dst: sub(header, ofs, s.n_bits)?, src }
                }
                (NxLearnDst::Output, LearnSrc::Field(f)) => LearnItem::Output(f),
                (NxLearnDst::Output, LearnSrc::Immediate(_)) => {
                    return Err("learn: output from an immediate".into())
                }
            });
        }
        let spec = LearnSpec {
            table: l.table_id,
            priority: l.priority,
            idle_timeout: l.idle_timeout,
            hard_timeout: l.hard_timeout,
            fin_idle_timeout: l.fin_idle_timeout,
            fin_hard_timeout: l.fin_hard_timeout,
            cookie: l.cookie,
            send_flow_rem: l.flags & NX_LEARN_F_SEND_FLOW_REM != 0,
            items,
        };
        spec.validate().map_err(|e| format!("learn: {e}"))?;
        Ok(spec)
    }

    /// Parses the inside of `learn(...)` (`ovs-ofctl` syntax).
    pub fn parse(body: &str) -> Result<LearnSpec, String> {
        let mut spec = LearnSpec::default();
        for part in body.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let num = |v: &str, max: u64| -> Result<u64, String> {
                let n = parse_u64(v).ok_or_else(|| format!("{part:?}: {v:?} is not a number"))?;
                if n > max {
                    return Err(format!("{part:?}: {v} is out of range (max {max})"));
                }
                Ok(n)
            };
            let (name, value) = match part.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim())),
                None => (part, None),
            };
            match (name, value) {
                ("table", Some(v)) => spec.table = num(v, 254)? as TableId,
                ("priority", Some(v)) => spec.priority = num(v, 0xffff)? as u16,
                ("idle_timeout", Some(v)) => spec.idle_timeout = num(v, 0xffff)? as u16,
                ("hard_timeout", Some(v)) => spec.hard_timeout = num(v, 0xffff)? as u16,
                ("fin_idle_timeout", Some(v)) => spec.fin_idle_timeout = num(v, 0xffff)? as u16,
                ("fin_hard_timeout", Some(v)) => spec.fin_hard_timeout = num(v, 0xffff)? as u16,
                ("cookie", Some(v)) => spec.cookie = num(v, u64::MAX)?,
                ("send_flow_rem", None) => spec.send_flow_rem = true,
                ("delete_learned" | "limit" | "result_dst", _) => {
                    return Err(format!("{name}: not supported"));
                }
                _ => spec.items.push(parse_item(part, name, value)?),
            }
        }
        spec.validate()?;
        Ok(spec)
    }
}

/// An immediate for `dst`: a number, or a MAC / dotted IPv4 for a whole field of that kind.
fn parse_immediate(dst: SubField, s: &str) -> Result<u64, String> {
    if let Some(n) = parse_u64(s) {
        return Ok(n);
    }
    let whole = dst.is_whole();
    match dst.field {
        LearnField::EthSrc | LearnField::EthDst if whole => {
            if let Some(m) = parse_mac(s) {
                return Ok(m.iter().fold(0u64, |a, &b| a << 8 | u64::from(b)));
            }
        }
        LearnField::Ipv4Src | LearnField::Ipv4Dst if whole => {
            if let Some(a) = parse_ipv4(s) {
                return Ok(u64::from(u32::from_be_bytes(a)));
            }
        }
        _ => {}
    }
    Err(format!("{s:?} is not a value for {dst}"))
}

fn parse_item(part: &str, name: &str, value: Option<&str>) -> Result<LearnItem, String> {
    let field = |s: &str| -> Result<SubField, String> {
        SubField::parse(s).unwrap_or_else(|| Err(format!("{s:?}: not a field learn supports")))
    };
    if let Some(rest) = part.strip_prefix("load:") {
        let (src, dst) = rest.split_once("->").ok_or_else(|| format!("{part:?}: expected load:SRC->DST"))?;
        let dst = field(dst)?;
        let src = match SubField::parse(src) {
            Some(f) => LearnSrc::Field(f?),
            None => LearnSrc::Immediate(parse_immediate(dst, src.trim())?),
        };
        return Ok(LearnItem::Load { dst, src });
    }
    if let Some(rest) = part.strip_prefix("output:") {
        return Ok(LearnItem::Output(field(rest)?));
    }
    let dst = field(name)?;
    let src = match value {
        None => LearnSrc::Field(dst),
        Some(v) => match SubField::parse(v) {
            Some(f) => LearnSrc::Field(f?),
            None => LearnSrc::Immediate(parse_immediate(dst, v)?),
        },
    };
    Ok(LearnItem::Match { dst, src })
}

/// `load:VALUE->DST` of a flow's action list (not a learn's): the actions it stands for.
pub(crate) fn load_immediate(value: &str, dst: &str) -> Result<Vec<OfAction>, String> {
    let dst =
        SubField::parse(dst).unwrap_or_else(|| Err(format!("{dst:?}: not a field that can be loaded")))?;
    let v = parse_immediate(dst, value)?;
    if v & !ones(dst.n_bits) != 0 {
        return Err(format!("0x{v:x} does not fit in {dst}"));
    }
    let mut out = Vec::new();
    load_actions(dst, v, &mut out)?;
    Ok(out)
}

/// The model action that outputs to OpenFlow port `port` (none for port 0 or `ANY`).
fn output_to(port: u32) -> Option<OfAction> {
    Some(match port {
        ofpp::IN_PORT => OfAction::InPort,
        ofpp::NORMAL => OfAction::Normal,
        ofpp::FLOOD => OfAction::Flood,
        ofpp::ALL => OfAction::All,
        ofpp::CONTROLLER => OfAction::Controller { max_len: 0xffff },
        ofpp::LOCAL => OfAction::Local,
        0 => return None,
        p if p >= ofpp::MAX => return None,
        p => OfAction::Output(p),
    })
}

impl fmt::Display for LearnItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            LearnItem::Match { dst, src: LearnSrc::Field(s) } if s == dst => write!(f, "{dst}"),
            LearnItem::Match { dst, src: LearnSrc::Field(s) } => write!(f, "{dst}={s}"),
            LearnItem::Match { dst, src: LearnSrc::Immediate(v) } if dst.is_whole() => {
                write!(f, "{}={}", dst.field.info().short, dst.field.format_value(v))
            }
            LearnItem::Match { dst, src: LearnSrc::Immediate(v) } => write!(f, "{dst}={}", hex(v)),
            LearnItem::Load { dst, src: LearnSrc::Field(s) } => write!(f, "load:{s}->{dst}"),
            LearnItem::Load { dst, src: LearnSrc::Immediate(v) } => write!(f, "load:{}->{dst}", hex(v)),
            LearnItem::Output(s) => write!(f, "output:{s}"),
        }
    }
}

/// `0` or `0x..` (OVS's `ds_put_hex`).
fn hex(v: u64) -> String {
    if v == 0 {
        "0".into()
    } else {
        format!("0x{v:x}")
    }
}

impl fmt::Display for LearnSpec {
    /// `learn(...)` as `ovs-ofctl dump-flows` prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "learn(table={}", self.table)?;
        if self.idle_timeout != 0 {
            write!(f, ",idle_timeout={}", self.idle_timeout)?;
        }
        if self.hard_timeout != 0 {
            write!(f, ",hard_timeout={}", self.hard_timeout)?;
        }
        if self.fin_idle_timeout != 0 {
            write!(f, ",fin_idle_timeout={}", self.fin_idle_timeout)?;
        }
        if self.fin_hard_timeout != 0 {
            write!(f, ",fin_hard_timeout={}", self.fin_hard_timeout)?;
        }
        if self.priority != DEFAULT_PRIORITY {
            write!(f, ",priority={}", self.priority)?;
        }
        if self.send_flow_rem {
            f.write_str(",send_flow_rem")?;
        }
        if self.cookie != 0 {
            write!(f, ",cookie=0x{:x}", self.cookie)?;
        }
        for item in &self.items {
            write!(f, ",{item}")?;
        }
        f.write_str(")")
    }
}

/// The rule a learned flow-mod would only refresh: the flow with the same table, match and
/// priority whose instructions, cookie, timeouts and flags are already `fm`'s. The bridge
/// then resets that rule's timeouts instead of re-adding it (which would reset its counters
/// and invalidate megaflows for nothing); `None` means apply `fm`.
pub fn learned_is_noop(pipeline: &Pipeline, fm: &FlowMod) -> Option<RuleId> {
    let s = &fm.spec;
    let id = pipeline.table(s.table).find_strict(&s.matches, s.priority)?;
    let r = pipeline.rule(id)?;
    let same = r.cookie == s.cookie
        && r.idle_timeout == s.idle_timeout
        && r.hard_timeout == s.hard_timeout
        && r.flags == s.flags
        && r.actions == s.actions
        && r.goto_table.is_none()
        && r.write_actions.is_none()
        && !r.clear_actions
        && r.write_metadata.is_none()
        && r.meter.is_none();
    same.then_some(id)
}

#[cfg(test)]
mod tests;
