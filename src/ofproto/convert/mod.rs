//! Conversion between the `ofp` wire types and the model, for OpenFlow 1.3 and 1.0.
//!
//! **Into the model** everything is checked and refused with the OpenFlow error the spec
//! names (via [`Error::code`]): OXM matches (spec 7.2.3: prerequisites `OFPBMC_BAD_PREREQ`,
//! a mask on a field that has none `OFPBMC_BAD_MASK`, bits beyond a field's width
//! `OFPBMC_BAD_VALUE`/`BAD_MASK`, fields we cannot match `OFPBMC_BAD_FIELD`, duplicates
//! `OFPBMC_DUP_FIELD`); value bits outside the mask are cleared (as Open vSwitch does), so
//! matches are normalized. Actions: outputs to `OFPP_ANY`/unknown reserved ports or `TABLE`
//! outside a packet-out `OFPBAC_BAD_OUT_PORT`; set-fields the datapath cannot rewrite
//! (ip_ecn, ARP, ICMP, ND, MPLS, flow label, ...) `OFPBAC_BAD_SET_TYPE`; MPLS/PBB/TTL-copy
//! actions `OFPBAC_BAD_TYPE`. OpenFlow 1.0 matches are normalized as OVS does (fields whose
//! prerequisites are wildcarded are ignored).
//!
//! **Out of the model** the conversion is total: what the other side cannot express is
//! left out (1.3 has no OXM for nw_ttl or tcp_flags, 1.0 no IPv6, groups or goto).

use std::time::Duration;

use crate::datapath::flow::{FlowKey, FlowMask, VLAN_PRESENT};
use crate::datapath::tunnel::TunnelMeta;
use crate::ofp::action::Action;
use crate::ofp::multipart::{AggregateStats, FlowStats, FlowStatsRequest, TableStats as OfpTableStats};
use crate::ofp::nx::{NxAction, NxLearn};
use crate::ofp::oxm::{Oxm, OxmField, OFPVID_PRESENT};
use crate::ofp::{ErrorCode, FlowRemoved, Instruction};

use super::learn::LearnSpec;
use super::rule::{ofpg, ofpp, FlowMod, FlowModCommand, FlowSpec, Match, OfAction};
use super::syntax::{
    ETH_ARP, ETH_IP, ETH_IPV6, ETH_RARP, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP,
};
use super::table::{RemovedReason, Rule, TableStats};
use super::Error;

const ETH_MPLS: u16 = 0x8847;
const ETH_MPLS_MCAST: u16 = 0x8848;
/// `OFP_NO_BUFFER`.
pub const NO_BUFFER: u32 = 0xffff_ffff;

fn bad<T>(code: ErrorCode, why: impl Into<String>) -> Result<T, Error> {
    Err(Error::new(code, why))
}

fn be(bytes: &[u8]) -> u128 {
    bytes.iter().fold(0u128, |acc, &b| (acc << 8) | u128::from(b))
}

fn arr<const N: usize>(v: u128) -> [u8; N] {
    let all = v.to_be_bytes();
    let mut out = [0u8; N];
    out.copy_from_slice(&all[16 - N..]);
    out
}

/// The bits a field's value can have.
fn full_mask(f: OxmField) -> u128 {
    match f {
        OxmField::VlanVid => 0x1fff,
        OxmField::VlanPcp | OxmField::MplsTc => 0x7,
        OxmField::IpDscp => 0x3f,
        OxmField::IpEcn => 0x3,
        OxmField::Ipv6Flabel | OxmField::MplsLabel => 0xf_ffff,
        OxmField::MplsBos => 0x1,
        f => {
            let n = f.value_len().unwrap_or(0);
            if n >= 16 {
                u128::MAX
            } else {
                (1u128 << (8 * n)) - 1
            }
        }
    }
}

/// Whether OpenFlow 1.3 allows a mask on the field (spec table 11).
fn maskable(f: OxmField) -> bool {
    matches!(
        f,
        OxmField::Metadata
            | OxmField::EthDst
            | OxmField::EthSrc
            | OxmField::VlanVid
            | OxmField::Ipv4Src
            | OxmField::Ipv4Dst
            | OxmField::ArpSpa
            | OxmField::ArpTpa
            | OxmField::ArpSha
            | OxmField::ArpTha
            | OxmField::Ipv6Src
            | OxmField::Ipv6Dst
            | OxmField::Ipv6Flabel
            | OxmField::PbbIsid
            | OxmField::TunnelId
            | OxmField::Ipv6Exthdr
            | OxmField::TunIpv4Src
            | OxmField::TunIpv4Dst
    )
}

/// An OXM match (OpenFlow 1.3) as a model [`Match`], checked (see the module docs).
pub fn match_from_oxms(oxms: &[Oxm]) -> Result<Match, Error> {
    let mut k = FlowKey::default();
    let mut m = FlowMask::catchall();
    let mut seen: Vec<OxmField> = Vec::new();
    let mut phy_port = None;
    for o in oxms {
        let f = o.field;
        let Some(n) = f.value_len() else {
            return bad(ErrorCode::OFPBMC_BAD_FIELD, format!("{f:?}: only OpenFlow basic fields"));
        };
        if seen.contains(&f) {
            return bad(ErrorCode::OFPBMC_DUP_FIELD, format!("{f:?} given twice"));
        }
        seen.push(f);
        if o.value.len() != n || o.mask.as_ref().is_some_and(|x| x.len() != n) {
            return bad(ErrorCode::OFPBMC_BAD_LEN, format!("{f:?}: {} bytes", o.value.len()));
        }
        if o.mask.is_some() && !maskable(f) {
            return bad(ErrorCode::OFPBMC_BAD_MASK, format!("{f:?} cannot be masked"));
        }
        let full = full_mask(f);
        let raw = be(&o.value);
        let mk = o.mask.as_deref().map_or(full, be);
        if raw & !full != 0 {
            return bad(ErrorCode::OFPBMC_BAD_VALUE, format!("{f:?}: value beyond the field"));
        }
        if mk & !full != 0 {
            return bad(ErrorCode::OFPBMC_BAD_MASK, format!("{f:?}: mask beyond the field"));
        }
        let v = raw & mk;
        match f {
            OxmField::InPort => (k.in_port, m.0.in_port) = (v as u32, mk as u32),
            OxmField::InPhyPort => phy_port = Some(v as u32),
            OxmField::Metadata => (k.metadata, m.0.metadata) = (v as u64, mk as u64),
            OxmField::EthDst => (k.dl_dst, m.0.dl_dst) = (arr(v), arr(mk)),
            OxmField::EthSrc => (k.dl_src, m.0.dl_src) = (arr(v), arr(mk)),
            OxmField::EthType => (k.dl_type, m.0.dl_type) = (v as u16, mk as u16),
            OxmField::VlanVid => {
                // OFPVID_PRESENT is OVS's VLAN_PRESENT bit, the VID bits the same: 1:1.
                k.vlan_tci |= v as u16;
                m.0.vlan_tci |= mk as u16;
            }
            OxmField::VlanPcp => {
                k.vlan_tci |= (v as u16) << 13;
                m.0.vlan_tci |= 0xe000;
            }
            OxmField::IpDscp => {
                k.nw_tos |= (v as u8) << 2;
                m.0.nw_tos |= 0xfc;
            }
            OxmField::IpEcn => {
                k.nw_tos |= v as u8;
                m.0.nw_tos |= 0x03;
            }
            OxmField::IpProto => (k.nw_proto, m.0.nw_proto) = (v as u8, 0xff),
            OxmField::Ipv4Src | OxmField::ArpSpa => {
                k.nw_src[..4].copy_from_slice(&arr::<4>(v));
                m.0.nw_src[..4].copy_from_slice(&arr::<4>(mk));
            }
            OxmField::Ipv4Dst | OxmField::ArpTpa => {
                k.nw_dst[..4].copy_from_slice(&arr::<4>(v));
                m.0.nw_dst[..4].copy_from_slice(&arr::<4>(mk));
            }
            OxmField::TcpSrc | OxmField::UdpSrc | OxmField::SctpSrc => {
                (k.tp_src, m.0.tp_src) = (v as u16, 0xffff)
            }
            OxmField::TcpDst | OxmField::UdpDst | OxmField::SctpDst => {
                (k.tp_dst, m.0.tp_dst) = (v as u16, 0xffff)
            }
            OxmField::Icmpv4Type | OxmField::Icmpv6Type => (k.tp_src, m.0.tp_src) = (v as u16, 0xff),
            OxmField::Icmpv4Code | OxmField::Icmpv6Code => (k.tp_dst, m.0.tp_dst) = (v as u16, 0xff),
            OxmField::ArpOp => {
                if v > 0xff {
                    return bad(ErrorCode::OFPBMC_BAD_VALUE, format!("arp_op {v}: at most 255"));
                }
                (k.nw_proto, m.0.nw_proto) = (v as u8, 0xff);
            }
            OxmField::ArpSha | OxmField::Ipv6NdSll => (k.arp_sha, m.0.arp_sha) = (arr(v), arr(mk)),
            OxmField::ArpTha | OxmField::Ipv6NdTll => (k.arp_tha, m.0.arp_tha) = (arr(v), arr(mk)),
            OxmField::Ipv6Src => (k.nw_src, m.0.nw_src) = (arr(v), arr(mk)),
            OxmField::Ipv6Dst => (k.nw_dst, m.0.nw_dst) = (arr(v), arr(mk)),
            OxmField::Ipv6Flabel => (k.ipv6_label, m.0.ipv6_label) = (v as u32, mk as u32),
            OxmField::Ipv6NdTarget => (k.nd_target, m.0.nd_target) = (arr(v), arr(mk)),
            OxmField::MplsLabel => {
                k.mpls_lse |= (v as u32) << 12;
                m.0.mpls_lse |= 0xf_ffff << 12;
            }
            OxmField::MplsTc => {
                k.mpls_lse |= (v as u32) << 9;
                m.0.mpls_lse |= 0x7 << 9;
            }
            OxmField::MplsBos => {
                k.mpls_lse |= (v as u32) << 8;
                m.0.mpls_lse |= 1 << 8;
            }
            OxmField::TunnelId => (k.tun_id, m.0.tun_id) = (v as u64, mk as u64),
            OxmField::TunIpv4Src => (k.tun_src, m.0.tun_src) = (v as u32, mk as u32),
            OxmField::TunIpv4Dst => (k.tun_dst, m.0.tun_dst) = (v as u32, mk as u32),
            OxmField::PbbIsid | OxmField::Ipv6Exthdr | OxmField::Other { .. } => {
                return bad(ErrorCode::OFPBMC_BAD_FIELD, format!("{f:?}: not matched by this switch"));
            }
        }
    }
    let mat = Match::new(k, m);
    for f in &seen {
        check_prereq(*f, &mat)?;
    }
    if let Some(p) = phy_port {
        // Every port is physical here: in_phy_port can only equal in_port.
        if p != mat.key().in_port {
            return bad(ErrorCode::OFPBMC_BAD_VALUE, format!("in_phy_port {p} differs from in_port"));
        }
    }
    Ok(mat)
}

/// Checks the prerequisites of field `f` against the whole match (spec 7.2.3.6).
fn check_prereq(f: OxmField, mat: &Match) -> Result<(), Error> {
    let (k, mk) = (mat.key(), mat.mask().0);
    let dl = (mk.dl_type == 0xffff).then_some(k.dl_type);
    let proto = (mk.nw_proto == 0xff).then_some(k.nw_proto);
    let ip_any = matches!(dl, Some(ETH_IP | ETH_IPV6));
    let icmp6_type = (dl == Some(ETH_IPV6) && proto == Some(IPPROTO_ICMPV6) && mk.tp_src & 0xff == 0xff)
        .then_some(k.tp_src);
    let (ok, what) = match f {
        OxmField::InPhyPort => (mk.in_port == u32::MAX, "in_port"),
        OxmField::VlanPcp => (
            mk.vlan_tci & VLAN_PRESENT != 0 && k.vlan_tci & VLAN_PRESENT != 0,
            "vlan_vid other than OFPVID_NONE",
        ),
        OxmField::IpDscp | OxmField::IpEcn | OxmField::IpProto => (ip_any, "eth_type IPv4 or IPv6"),
        OxmField::Ipv4Src | OxmField::Ipv4Dst => (dl == Some(ETH_IP), "eth_type=0x0800"),
        OxmField::TcpSrc | OxmField::TcpDst => (ip_any && proto == Some(IPPROTO_TCP), "ip_proto=6"),
        OxmField::UdpSrc | OxmField::UdpDst => (ip_any && proto == Some(IPPROTO_UDP), "ip_proto=17"),
        OxmField::SctpSrc | OxmField::SctpDst => (ip_any && proto == Some(IPPROTO_SCTP), "ip_proto=132"),
        OxmField::Icmpv4Type | OxmField::Icmpv4Code => {
            (dl == Some(ETH_IP) && proto == Some(IPPROTO_ICMP), "eth_type=0x0800,ip_proto=1")
        }
        OxmField::ArpOp | OxmField::ArpSpa | OxmField::ArpTpa | OxmField::ArpSha | OxmField::ArpTha => {
            (matches!(dl, Some(ETH_ARP | ETH_RARP)), "eth_type=0x0806")
        }
        OxmField::Ipv6Src | OxmField::Ipv6Dst | OxmField::Ipv6Flabel => {
            (dl == Some(ETH_IPV6), "eth_type=0x86dd")
        }
        OxmField::Icmpv6Type | OxmField::Icmpv6Code => {
            (dl == Some(ETH_IPV6) && proto == Some(IPPROTO_ICMPV6), "eth_type=0x86dd,ip_proto=58")
        }
        OxmField::Ipv6NdTarget => (matches!(icmp6_type, Some(135 | 136)), "icmpv6_type 135 or 136"),
        OxmField::Ipv6NdSll => (icmp6_type == Some(135), "icmpv6_type=135"),
        OxmField::Ipv6NdTll => (icmp6_type == Some(136), "icmpv6_type=136"),
        OxmField::MplsLabel | OxmField::MplsTc | OxmField::MplsBos => {
            (matches!(dl, Some(ETH_MPLS | ETH_MPLS_MCAST)), "eth_type 0x8847 or 0x8848")
        }
        _ => (true, ""),
    };
    if ok {
        Ok(())
    } else {
        bad(ErrorCode::OFPBMC_BAD_PREREQ, format!("{f:?} requires {what}"))
    }
}

fn push(out: &mut Vec<Oxm>, f: OxmField, v: u128, mk: u128) {
    let full = full_mask(f);
    let mk = mk & full;
    if mk == 0 {
        return;
    }
    if mk == full {
        out.push(Oxm::exact(f, v & full));
    } else {
        out.push(Oxm::masked(f, v & mk, mk));
    }
}

/// A model match as OXM fields (OpenFlow 1.3), in field-number order. Fields 1.3 has no
/// OXM for (nw_ttl, tcp_flags, fragments) and partial masks on fields without masks are
/// left out.
pub fn match_to_oxms(mat: &Match) -> Vec<Oxm> {
    let (k, mk) = (mat.key(), &mat.mask().0);
    let mut out = Vec::new();
    let only_full = |m: u128, full: u128| if m & full == full { full } else { 0 };
    push(&mut out, OxmField::InPort, k.in_port.into(), only_full(mk.in_port.into(), u32::MAX.into()));
    push(&mut out, OxmField::Metadata, k.metadata.into(), mk.metadata.into());
    push(&mut out, OxmField::EthDst, be(&k.dl_dst), be(&mk.dl_dst));
    push(&mut out, OxmField::EthSrc, be(&k.dl_src), be(&mk.dl_src));
    push(&mut out, OxmField::EthType, k.dl_type.into(), only_full(mk.dl_type.into(), 0xffff));
    push(&mut out, OxmField::VlanVid, u128::from(k.vlan_tci & 0x1fff), u128::from(mk.vlan_tci & 0x1fff));
    push(
        &mut out,
        OxmField::VlanPcp,
        u128::from(k.vlan_tci >> 13),
        only_full(u128::from(mk.vlan_tci >> 13), 7),
    );
    let dl = (mk.dl_type == 0xffff).then_some(k.dl_type);
    let proto = (mk.nw_proto == 0xff).then_some(k.nw_proto);
    let ip_any = matches!(dl, Some(ETH_IP | ETH_IPV6));
    if ip_any {
        push(
            &mut out,
            OxmField::IpDscp,
            u128::from(k.nw_tos >> 2),
            only_full(u128::from(mk.nw_tos >> 2), 0x3f),
        );
        push(&mut out, OxmField::IpEcn, u128::from(k.nw_tos & 3), only_full(u128::from(mk.nw_tos & 3), 3));
        push(&mut out, OxmField::IpProto, k.nw_proto.into(), only_full(mk.nw_proto.into(), 0xff));
    }
    if dl == Some(ETH_IP) {
        push(&mut out, OxmField::Ipv4Src, be(&k.nw_src[..4]), be(&mk.nw_src[..4]));
        push(&mut out, OxmField::Ipv4Dst, be(&k.nw_dst[..4]), be(&mk.nw_dst[..4]));
    }
    if ip_any {
        let ports = match proto {
            Some(IPPROTO_TCP) => Some((OxmField::TcpSrc, OxmField::TcpDst)),
            Some(IPPROTO_UDP) => Some((OxmField::UdpSrc, OxmField::UdpDst)),
            Some(IPPROTO_SCTP) => Some((OxmField::SctpSrc, OxmField::SctpDst)),
            _ => None,
        };
        if let Some((s, d)) = ports {
            push(&mut out, s, k.tp_src.into(), only_full(mk.tp_src.into(), 0xffff));
            push(&mut out, d, k.tp_dst.into(), only_full(mk.tp_dst.into(), 0xffff));
        }
    }
    let icmp = match (dl, proto) {
        (Some(ETH_IP), Some(IPPROTO_ICMP)) => Some((OxmField::Icmpv4Type, OxmField::Icmpv4Code)),
        (Some(ETH_IPV6), Some(IPPROTO_ICMPV6)) => Some((OxmField::Icmpv6Type, OxmField::Icmpv6Code)),
        _ => None,
    };
    if let Some((t, c)) = icmp {
        if t == OxmField::Icmpv4Type {
            push(&mut out, t, k.tp_src.into(), only_full(mk.tp_src.into(), 0xff));
            push(&mut out, c, k.tp_dst.into(), only_full(mk.tp_dst.into(), 0xff));
        }
    }
    if matches!(dl, Some(ETH_ARP | ETH_RARP)) {
        let op_mask = if mk.nw_proto == 0xff { 0xffff } else { 0 };
        push(&mut out, OxmField::ArpOp, k.nw_proto.into(), op_mask);
        push(&mut out, OxmField::ArpSpa, be(&k.nw_src[..4]), be(&mk.nw_src[..4]));
        push(&mut out, OxmField::ArpTpa, be(&k.nw_dst[..4]), be(&mk.nw_dst[..4]));
        push(&mut out, OxmField::ArpSha, be(&k.arp_sha), be(&mk.arp_sha));
        push(&mut out, OxmField::ArpTha, be(&k.arp_tha), be(&mk.arp_tha));
    }
    if dl == Some(ETH_IPV6) {
        push(&mut out, OxmField::Ipv6Src, be(&k.nw_src), be(&mk.nw_src));
        push(&mut out, OxmField::Ipv6Dst, be(&k.nw_dst), be(&mk.nw_dst));
        push(&mut out, OxmField::Ipv6Flabel, k.ipv6_label.into(), mk.ipv6_label.into());
        if let Some((t, c)) = icmp {
            push(&mut out, t, k.tp_src.into(), only_full(mk.tp_src.into(), 0xff));
            push(&mut out, c, k.tp_dst.into(), only_full(mk.tp_dst.into(), 0xff));
            let ty = (mk.tp_src & 0xff == 0xff).then_some(k.tp_src);
            if matches!(ty, Some(135 | 136)) {
                push(&mut out, OxmField::Ipv6NdTarget, be(&k.nd_target), be(&mk.nd_target));
            }
            if ty == Some(135) {
                push(&mut out, OxmField::Ipv6NdSll, be(&k.arp_sha), be(&mk.arp_sha));
            }
            if ty == Some(136) {
                push(&mut out, OxmField::Ipv6NdTll, be(&k.arp_tha), be(&mk.arp_tha));
            }
        }
    }
    if matches!(dl, Some(ETH_MPLS | ETH_MPLS_MCAST)) {
        let (l, lm) = (k.mpls_lse, mk.mpls_lse);
        push(&mut out, OxmField::MplsLabel, u128::from(l >> 12), only_full(u128::from(lm >> 12), 0xf_ffff));
        push(&mut out, OxmField::MplsTc, u128::from((l >> 9) & 7), only_full(u128::from((lm >> 9) & 7), 7));
        push(&mut out, OxmField::MplsBos, u128::from((l >> 8) & 1), only_full(u128::from((lm >> 8) & 1), 1));
    }
    push(&mut out, OxmField::TunnelId, k.tun_id.into(), mk.tun_id.into());
    push(&mut out, OxmField::TunIpv4Src, k.tun_src.into(), mk.tun_src.into());
    push(&mut out, OxmField::TunIpv4Dst, k.tun_dst.into(), mk.tun_dst.into());
    out
}

/// The match of an OpenFlow 1.3 packet-in: `in_port`, then the pipeline metadata and the
/// packet's tunnel fields (`tun_id`, `tun_src`, `tun_dst`) where nonzero, as OVS sends them.
pub fn packet_in_match(in_port: u32, metadata: u64, tunnel: &TunnelMeta) -> Vec<Oxm> {
    let mut out = vec![Oxm::exact(OxmField::InPort, u128::from(in_port))];
    let fields = [
        (OxmField::Metadata, u128::from(metadata)),
        (OxmField::TunnelId, u128::from(tunnel.tun_id)),
        (OxmField::TunIpv4Src, u128::from(tunnel.tun_src)),
        (OxmField::TunIpv4Dst, u128::from(tunnel.tun_dst)),
    ];
    out.extend(fields.into_iter().filter(|&(_, v)| v != 0).map(|(f, v)| Oxm::exact(f, v)));
    out
}

// ---------------------------------------------------------------------------------------
// OpenFlow 1.3 actions and instructions.

fn output_port(port: u32, max_len: u16, packet_out: bool) -> Result<OfAction, Error> {
    Ok(match port {
        ofpp::IN_PORT => OfAction::InPort,
        ofpp::TABLE if packet_out => OfAction::Output(ofpp::TABLE),
        ofpp::NORMAL => OfAction::Normal,
        ofpp::FLOOD => OfAction::Flood,
        ofpp::ALL => OfAction::All,
        ofpp::CONTROLLER => OfAction::Controller { max_len },
        ofpp::LOCAL => OfAction::Local,
        p if p == 0 || p > ofpp::MAX => {
            return bad(ErrorCode::OFPBAC_BAD_OUT_PORT, format!("output to {p:#x}"))
        }
        p => OfAction::Output(p),
    })
}

/// One OpenFlow 1.3 action in the model (`packet_out`: `output:TABLE` allowed).
pub fn action_from_ofp(a: &Action, packet_out: bool) -> Result<OfAction, Error> {
    Ok(match a {
        Action::Output { port, max_len } => output_port(*port, *max_len, packet_out)?,
        Action::PushVlan(e) => {
            if *e != 0x8100 && *e != 0x88a8 {
                return bad(ErrorCode::OFPBAC_BAD_ARGUMENT, format!("push_vlan 0x{e:04x}"));
            }
            OfAction::PushVlan(*e)
        }
        Action::PopVlan => OfAction::StripVlan,
        Action::SetQueue(q) => OfAction::SetQueue(*q),
        Action::Group(g) => {
            if *g > ofpg::MAX {
                return bad(ErrorCode::OFPBAC_BAD_OUT_GROUP, format!("group {g:#x}"));
            }
            OfAction::Group(*g)
        }
        Action::SetNwTtl(t) => OfAction::SetNwTtl(*t),
        Action::DecNwTtl => OfAction::DecTtl,
        Action::SetField(oxm) => set_field_from_oxm(oxm)?,
        // set_tunnel, set_tunnel64, load:V->NXM_NX_TUN_ID[]; other loads are not supported.
        Action::Nicira(NxAction::Learn(l)) => learn_from_nx(l)?,
        Action::Nicira(nx) => match nx.tun_id() {
            Some(t) => OfAction::SetTunId(t),
            None => return bad(ErrorCode::OFPBAC_BAD_EXPERIMENTER, format!("experimenter 0x2320: {nx:?}")),
        },
        Action::Experimenter { experimenter, .. } => {
            return bad(ErrorCode::OFPBAC_BAD_EXPERIMENTER, format!("experimenter {experimenter:#x}"))
        }
        other => return bad(ErrorCode::OFPBAC_BAD_TYPE, format!("{other:?}: not supported")),
    })
}

/// A wire `learn` in the model; fields or flags it does not support: `OFPBAC_BAD_ARGUMENT`.
pub(crate) fn learn_from_nx(l: &NxLearn) -> Result<OfAction, Error> {
    match LearnSpec::from_nx(l) {
        Ok(spec) => Ok(OfAction::Learn(Box::new(spec))),
        Err(why) => bad(ErrorCode::OFPBAC_BAD_ARGUMENT, why),
    }
}

fn set_field_from_oxm(o: &Oxm) -> Result<OfAction, Error> {
    let f = o.field;
    let n = f.value_len().unwrap_or(0);
    if o.mask.is_some() {
        return bad(ErrorCode::OFPBAC_BAD_SET_ARGUMENT, format!("set_field {f:?} with a mask"));
    }
    if matches!(f, OxmField::Other { .. }) {
        return bad(ErrorCode::OFPBAC_BAD_SET_TYPE, format!("set_field {f:?}"));
    }
    if o.value.len() != n {
        return bad(ErrorCode::OFPBAC_BAD_SET_LEN, format!("set_field {f:?}: {} bytes", o.value.len()));
    }
    let v = be(&o.value);
    let full = full_mask(f);
    if f != OxmField::VlanVid && v & !full != 0 {
        return bad(ErrorCode::OFPBAC_BAD_SET_ARGUMENT, format!("set_field {f:?}: value beyond the field"));
    }
    Ok(match f {
        OxmField::EthSrc => OfAction::SetEthSrc(arr(v)),
        OxmField::EthDst => OfAction::SetEthDst(arr(v)),
        // With or without OFPVID_PRESENT, as OVS accepts.
        OxmField::VlanVid => OfAction::SetVlanVid((v as u16) & 0x0fff),
        OxmField::VlanPcp => OfAction::SetVlanPcp(v as u8),
        OxmField::IpDscp => OfAction::SetNwTos((v as u8) << 2),
        OxmField::Ipv4Src => OfAction::SetIpv4Src(arr(v)),
        OxmField::Ipv4Dst => OfAction::SetIpv4Dst(arr(v)),
        OxmField::Ipv6Src => OfAction::SetIpv6Src(arr(v)),
        OxmField::Ipv6Dst => OfAction::SetIpv6Dst(arr(v)),
        OxmField::TcpSrc | OxmField::UdpSrc | OxmField::SctpSrc => OfAction::SetTpSrc(v as u16),
        OxmField::TcpDst | OxmField::UdpDst | OxmField::SctpDst => OfAction::SetTpDst(v as u16),
        OxmField::TunnelId => OfAction::SetTunId(v as u64),
        OxmField::Metadata => OfAction::SetMetadata(v as u64),
        _ => {
            return bad(
                ErrorCode::OFPBAC_BAD_SET_TYPE,
                format!("set_field {f:?}: the datapath cannot rewrite it"),
            )
        }
    })
}

/// An OpenFlow 1.3 action list in the model.
pub fn actions_from_ofp(list: &[Action], packet_out: bool) -> Result<Vec<OfAction>, Error> {
    list.iter().map(|a| action_from_ofp(a, packet_out)).collect()
}

/// The L4 protocol a set-field of `f` needs, if it is a port.
fn port_proto(f: OxmField) -> Option<u8> {
    match f {
        OxmField::TcpSrc | OxmField::TcpDst => Some(IPPROTO_TCP),
        OxmField::UdpSrc | OxmField::UdpDst => Some(IPPROTO_UDP),
        OxmField::SctpSrc | OxmField::SctpDst => Some(IPPROTO_SCTP),
        _ => None,
    }
}

/// Set-fields of TCP/UDP/SCTP ports must agree with the match's ip_proto (the model keeps
/// one "L4 port" action, so the protocol is checked here).
fn check_port_sets(list: &[Action], mat: &Match) -> Result<(), Error> {
    let (k, mk) = (mat.key(), mat.mask().0);
    for a in list {
        if let Action::SetField(o) = a {
            if let Some(p) = port_proto(o.field) {
                if mk.nw_proto != 0xff || k.nw_proto != p {
                    return bad(
                        ErrorCode::OFPBAC_MATCH_INCONSISTENT,
                        format!("set_field {:?} needs ip_proto={p}", o.field),
                    );
                }
            }
        }
    }
    Ok(())
}

/// OpenFlow 1.3 instructions into `spec` (which already has its match).
pub fn instructions_from_ofp(ins: &[Instruction], spec: &mut FlowSpec) -> Result<(), Error> {
    let mut seen = Vec::new();
    for i in ins {
        let kind = std::mem::discriminant(i);
        if seen.contains(&kind) {
            return bad(ErrorCode::OFPBIC_UNSUP_INST, format!("{i:?}: instruction given twice"));
        }
        seen.push(kind);
        match i {
            Instruction::GotoTable(t) => spec.goto_table = Some(*t),
            Instruction::WriteMetadata { metadata, metadata_mask } => {
                spec.write_metadata = Some((metadata & metadata_mask, *metadata_mask))
            }
            Instruction::WriteActions(list) => {
                check_port_sets(list, &spec.matches)?;
                let set = actions_from_ofp(list, false)?;
                if set.iter().any(|a| matches!(a, OfAction::Learn(_))) {
                    return bad(ErrorCode::OFPBAC_UNSUPPORTED_ORDER, "learn in write_actions");
                }
                spec.write_actions = Some(set);
            }
            Instruction::ApplyActions(list) => {
                check_port_sets(list, &spec.matches)?;
                spec.actions = actions_from_ofp(list, false)?;
            }
            Instruction::ClearActions => spec.clear_actions = true,
            Instruction::Meter(m) => spec.meter = Some(*m),
            Instruction::Experimenter { experimenter, .. } => {
                return bad(ErrorCode::OFPBIC_BAD_EXPERIMENTER, format!("experimenter {experimenter:#x}"))
            }
        }
    }
    Ok(())
}

/// An OpenFlow 1.3 flow-mod in the model (not yet checked against ports, groups, meters or
/// tables: [`Model::flow_mod`](super::Model::flow_mod) does that).
pub fn flow_mod_from_ofp(fm: &crate::ofp::FlowMod) -> Result<FlowMod, Error> {
    let command = match fm.command {
        0 => FlowModCommand::Add,
        1 => FlowModCommand::Modify,
        2 => FlowModCommand::ModifyStrict,
        3 => FlowModCommand::Delete,
        4 => FlowModCommand::DeleteStrict,
        c => return bad(ErrorCode::OFPFMFC_BAD_COMMAND, format!("command {c}")),
    };
    let mut spec = FlowSpec {
        table: fm.table_id,
        priority: fm.priority,
        cookie: fm.cookie,
        cookie_mask: if command == FlowModCommand::Add { 0 } else { fm.cookie_mask },
        idle_timeout: fm.idle_timeout,
        hard_timeout: fm.hard_timeout,
        matches: match_from_oxms(&fm.match_)?,
        flags: fm.flags,
        ..FlowSpec::default()
    };
    instructions_from_ofp(&fm.instructions, &mut spec)?;
    Ok(FlowMod {
        out_port: fm.out_port,
        out_group: fm.out_group,
        buffer_id: (fm.buffer_id != NO_BUFFER).then_some(fm.buffer_id),
        ..FlowMod::new(command, spec)
    })
}

/// A flow-stats (or aggregate) request as a selector for
/// [`Pipeline::query`](super::table::Pipeline::query).
pub fn flow_stats_request(req: &FlowStatsRequest) -> Result<FlowMod, Error> {
    let spec = FlowSpec {
        table: req.table_id,
        cookie: req.cookie,
        cookie_mask: req.cookie_mask,
        matches: match_from_oxms(&req.match_)?,
        ..FlowSpec::default()
    };
    Ok(FlowMod {
        out_port: req.out_port,
        out_group: req.out_group,
        ..FlowMod::new(FlowModCommand::Delete, spec)
    })
}

/// A model action list as OpenFlow 1.3 actions; `mat` picks the OXM of L4 port sets
/// (TCP unless the match says UDP or SCTP). `resubmit` has no 1.3 form and is left out.
pub fn actions_to_ofp(list: &[OfAction], mat: &Match) -> Vec<Action> {
    let (k, mk) = (mat.key(), mat.mask().0);
    let proto = (mk.nw_proto == 0xff).then_some(k.nw_proto);
    let (src, dst) = match proto {
        Some(IPPROTO_UDP) => (OxmField::UdpSrc, OxmField::UdpDst),
        Some(IPPROTO_SCTP) => (OxmField::SctpSrc, OxmField::SctpDst),
        _ => (OxmField::TcpSrc, OxmField::TcpDst),
    };
    let out = |port: u32| Action::Output { port, max_len: 0 };
    let set = |f: OxmField, v: u128| Action::SetField(Oxm::exact(f, v));
    list.iter()
        .filter_map(|a| {
            Some(match a {
                OfAction::Output(p) => out(*p),
                OfAction::InPort => out(ofpp::IN_PORT),
                OfAction::Normal => out(ofpp::NORMAL),
                OfAction::Flood => out(ofpp::FLOOD),
                OfAction::All => out(ofpp::ALL),
                OfAction::Local => out(ofpp::LOCAL),
                OfAction::Controller { max_len } => {
                    Action::Output { port: ofpp::CONTROLLER, max_len: *max_len }
                }
                OfAction::SetEthSrc(m) => set(OxmField::EthSrc, be(m)),
                OfAction::SetEthDst(m) => set(OxmField::EthDst, be(m)),
                OfAction::SetIpv4Src(a) => set(OxmField::Ipv4Src, be(a)),
                OfAction::SetIpv4Dst(a) => set(OxmField::Ipv4Dst, be(a)),
                OfAction::SetIpv6Src(a) => set(OxmField::Ipv6Src, be(a)),
                OfAction::SetIpv6Dst(a) => set(OxmField::Ipv6Dst, be(a)),
                OfAction::SetNwTos(t) => set(OxmField::IpDscp, u128::from(t >> 2)),
                OfAction::SetNwTtl(t) => Action::SetNwTtl(*t),
                OfAction::DecTtl => Action::DecNwTtl,
                OfAction::SetTpSrc(p) => set(src, u128::from(*p)),
                OfAction::SetTpDst(p) => set(dst, u128::from(*p)),
                OfAction::PushVlan(t) => Action::PushVlan(*t),
                OfAction::SetVlanVid(v) => set(OxmField::VlanVid, u128::from(v | OFPVID_PRESENT)),
                OfAction::SetVlanPcp(p) => set(OxmField::VlanPcp, u128::from(*p)),
                OfAction::StripVlan => Action::PopVlan,
                OfAction::SetTunId(t) => set(OxmField::TunnelId, u128::from(*t)),
                OfAction::SetMetadata(t) => set(OxmField::Metadata, u128::from(*t)),
                OfAction::Group(g) => Action::Group(*g),
                OfAction::SetQueue(q) => Action::SetQueue(*q),
                OfAction::Resubmit { .. } => return None,
                OfAction::Learn(l) => Action::Nicira(NxAction::Learn(Box::new(l.to_nx()))),
            })
        })
        .collect()
}

/// The instructions of `spec` as OpenFlow 1.3 instructions, in execution order.
pub fn instructions_to_ofp(spec: &FlowSpec) -> Vec<Instruction> {
    let mut out = Vec::new();
    if let Some(m) = spec.meter {
        out.push(Instruction::Meter(m));
    }
    if !spec.actions.is_empty() {
        out.push(Instruction::ApplyActions(actions_to_ofp(&spec.actions, &spec.matches)));
    }
    if spec.clear_actions {
        out.push(Instruction::ClearActions);
    }
    if let Some(w) = &spec.write_actions {
        out.push(Instruction::WriteActions(actions_to_ofp(w, &spec.matches)));
    }
    if let Some((metadata, metadata_mask)) = spec.write_metadata {
        out.push(Instruction::WriteMetadata { metadata, metadata_mask });
    }
    if let Some(t) = spec.goto_table {
        out.push(Instruction::GotoTable(t));
    }
    out
}

fn duration(r: &Rule, now: Duration) -> (u32, u32) {
    let d = now.saturating_sub(r.created);
    (d.as_secs().min(u32::MAX.into()) as u32, d.subsec_nanos())
}

/// Packet and byte counts as reported: all ones where the rule's flags say not counted.
fn counts(r: &Rule) -> (u64, u64) {
    use super::rule::flags::{NO_BYT_COUNTS, NO_PKT_COUNTS};
    let p = if r.flags & NO_PKT_COUNTS != 0 { u64::MAX } else { r.n_packets };
    let b = if r.flags & NO_BYT_COUNTS != 0 { u64::MAX } else { r.n_bytes };
    (p, b)
}

/// A rule as an OpenFlow 1.3 `ofp_flow_stats`.
pub fn flow_stats(r: &Rule, now: Duration) -> FlowStats {
    let (duration_sec, duration_nsec) = duration(r, now);
    let (packet_count, byte_count) = counts(r);
    FlowStats {
        table_id: r.table,
        duration_sec,
        duration_nsec,
        priority: r.priority,
        idle_timeout: r.idle_timeout,
        hard_timeout: r.hard_timeout,
        flags: r.flags,
        cookie: r.cookie,
        packet_count,
        byte_count,
        match_: match_to_oxms(&r.matches),
        instructions: instructions_to_ofp(&r.spec()),
    }
}

/// The `OFPRR_*` number of `why` in OpenFlow 1.3 (meter deletion reads as `OFPRR_DELETE`,
/// 1.3 has no code of its own for it).
pub fn removed_reason(why: RemovedReason) -> u8 {
    match why {
        RemovedReason::IdleTimeout => 0,
        RemovedReason::HardTimeout => 1,
        RemovedReason::Delete | RemovedReason::MeterDelete => 2,
        RemovedReason::GroupDelete => 3,
    }
}

/// The OpenFlow 1.3 flow-removed body for a rule removed for `why`.
pub fn flow_removed(r: &Rule, why: RemovedReason, now: Duration) -> FlowRemoved {
    let (duration_sec, duration_nsec) = duration(r, now);
    let (packet_count, byte_count) = counts(r);
    FlowRemoved {
        cookie: r.cookie,
        priority: r.priority,
        reason: removed_reason(why),
        table_id: r.table,
        duration_sec,
        duration_nsec,
        idle_timeout: r.idle_timeout,
        hard_timeout: r.hard_timeout,
        packet_count,
        byte_count,
        match_: match_to_oxms(&r.matches),
    }
}

/// The aggregate of the rules a request selected (`OFPMP_AGGREGATE`; rules that keep no
/// packet or byte count add nothing to that sum).
pub fn aggregate(rules: &[&Rule]) -> AggregateStats {
    use super::rule::flags::{NO_BYT_COUNTS, NO_PKT_COUNTS};
    let mut a = AggregateStats { flow_count: rules.len() as u32, ..AggregateStats::default() };
    for r in rules {
        if r.flags & NO_PKT_COUNTS == 0 {
            a.packet_count += r.n_packets;
        }
        if r.flags & NO_BYT_COUNTS == 0 {
            a.byte_count += r.n_bytes;
        }
    }
    a
}

/// Table counters as OpenFlow 1.3 `ofp_table_stats`.
pub fn table_stats(stats: &[TableStats]) -> Vec<OfpTableStats> {
    stats
        .iter()
        .map(|s| OfpTableStats {
            table_id: s.table_id,
            active_count: s.active,
            lookup_count: s.lookups,
            matched_count: s.matched,
        })
        .collect()
}

mod of10;
pub use of10::*;

#[cfg(test)]
mod tests;
