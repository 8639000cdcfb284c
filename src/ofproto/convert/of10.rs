//! OpenFlow 1.0 ↔ model: the 40-byte wildcard match, 1.0 actions, flow-mods (one table, no
//! instructions), flow stats and flow-removed.

use std::time::Duration;

use crate::datapath::flow::{FlowKey, FlowMask, VLAN_PRESENT};
use crate::ofp::nx::NxAction;
use crate::ofp::{v10, ErrorCode};
use crate::ofproto::rule::{ofpp, FlowMod, FlowModCommand, FlowSpec, Match, OfAction, TABLE_ALL};
use crate::ofproto::syntax::{ETH_ARP, ETH_IP, IPPROTO_ICMP, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP};
use crate::ofproto::table::{RemovedReason, Rule};
use crate::ofproto::Error;

use super::{bad, counts, duration, output_port, removed_reason, NO_BUFFER};

/// `OFPFW_*` wildcard bits of OpenFlow 1.0.
pub mod ofpfw {
    /// Switch input port.
    pub const IN_PORT: u32 = 1 << 0;
    /// VLAN id.
    pub const DL_VLAN: u32 = 1 << 1;
    /// Ethernet source.
    pub const DL_SRC: u32 = 1 << 2;
    /// Ethernet destination.
    pub const DL_DST: u32 = 1 << 3;
    /// Ethernet frame type.
    pub const DL_TYPE: u32 = 1 << 4;
    /// IP protocol.
    pub const NW_PROTO: u32 = 1 << 5;
    /// TCP/UDP source port.
    pub const TP_SRC: u32 = 1 << 6;
    /// TCP/UDP destination port.
    pub const TP_DST: u32 = 1 << 7;
    /// Shift of the 6-bit count of wildcarded low bits of nw_src.
    pub const NW_SRC_SHIFT: u32 = 8;
    /// Shift of the 6-bit count of wildcarded low bits of nw_dst.
    pub const NW_DST_SHIFT: u32 = 14;
    /// VLAN priority.
    pub const DL_VLAN_PCP: u32 = 1 << 20;
    /// IP TOS (DSCP bits).
    pub const NW_TOS: u32 = 1 << 21;
}

/// `OFP_VLAN_NONE`: "no VLAN tag" in a 1.0 match.
pub const OFP_VLAN_NONE: u16 = 0xffff;

/// An OpenFlow 1.0 port number as a 1.3 one (reserved ports `0xfff8..` map to `0xfffffff8..`).
pub fn port_from_v10(p: u16) -> u32 {
    if p >= 0xff00 {
        0xffff_0000 | u32::from(p)
    } else {
        u32::from(p)
    }
}

/// A 1.3 port number as a 1.0 one (reserved ports keep their low 16 bits; numbers 1.0
/// cannot carry become `OFPP_NONE`).
pub fn port_to_v10(p: u32) -> u16 {
    if !(0xff00..ofpp::MAX).contains(&p) {
        p as u16
    } else {
        0xffff
    }
}

fn prefix_mask(wildcarded_bits: u32) -> u32 {
    if wildcarded_bits >= 32 {
        0
    } else {
        u32::MAX << wildcarded_bits
    }
}

/// An OpenFlow 1.0 match in the model, normalized as OVS does: fields whose
/// prerequisites are not matched are ignored.
pub fn match_from_v10(w: &v10::Match) -> Match {
    let wc = w.wildcards;
    let has = |bit: u32| wc & bit == 0;
    let mut k = FlowKey::default();
    let mut m = FlowMask::catchall();
    if has(ofpfw::IN_PORT) {
        (k.in_port, m.0.in_port) = (port_from_v10(w.in_port), u32::MAX);
    }
    if has(ofpfw::DL_SRC) {
        (k.dl_src, m.0.dl_src) = (w.dl_src, [0xff; 6]);
    }
    if has(ofpfw::DL_DST) {
        (k.dl_dst, m.0.dl_dst) = (w.dl_dst, [0xff; 6]);
    }
    let no_tag = has(ofpfw::DL_VLAN) && w.dl_vlan == OFP_VLAN_NONE;
    if has(ofpfw::DL_VLAN) {
        m.0.vlan_tci |= 0x1fff;
        if !no_tag {
            k.vlan_tci |= (w.dl_vlan & 0x0fff) | VLAN_PRESENT;
        }
    }
    if has(ofpfw::DL_VLAN_PCP) && !no_tag {
        k.vlan_tci |= (u16::from(w.dl_vlan_pcp & 7) << 13) | VLAN_PRESENT;
        m.0.vlan_tci |= 0xe000 | VLAN_PRESENT;
    }
    if has(ofpfw::DL_TYPE) {
        (k.dl_type, m.0.dl_type) = (w.dl_type, 0xffff);
        let ip = w.dl_type == ETH_IP;
        let arp = w.dl_type == ETH_ARP;
        if ip || arp {
            let sm = prefix_mask((wc >> ofpfw::NW_SRC_SHIFT) & 0x3f);
            let dm = prefix_mask((wc >> ofpfw::NW_DST_SHIFT) & 0x3f);
            k.nw_src[..4].copy_from_slice(&(w.nw_src & sm).to_be_bytes());
            m.0.nw_src[..4].copy_from_slice(&sm.to_be_bytes());
            k.nw_dst[..4].copy_from_slice(&(w.nw_dst & dm).to_be_bytes());
            m.0.nw_dst[..4].copy_from_slice(&dm.to_be_bytes());
            if has(ofpfw::NW_PROTO) {
                (k.nw_proto, m.0.nw_proto) = (w.nw_proto, 0xff);
            }
        }
        if ip && has(ofpfw::NW_TOS) {
            (k.nw_tos, m.0.nw_tos) = (w.nw_tos & 0xfc, 0xfc);
        }
        if ip && has(ofpfw::NW_PROTO) {
            let width = match w.nw_proto {
                IPPROTO_TCP | IPPROTO_UDP | IPPROTO_SCTP => Some(0xffff),
                IPPROTO_ICMP => Some(0xff),
                _ => None,
            };
            if let Some(full) = width {
                if has(ofpfw::TP_SRC) {
                    (k.tp_src, m.0.tp_src) = (w.tp_src & full, full);
                }
                if has(ofpfw::TP_DST) {
                    (k.tp_dst, m.0.tp_dst) = (w.tp_dst & full, full);
                }
            }
        }
    }
    Match::new(k, m)
}

fn wildcard_bits(mask: u32) -> u32 {
    32 - mask.leading_ones()
}

/// A model match as an OpenFlow 1.0 match; what 1.0 cannot express (IPv6, metadata,
/// tunnels, partial masks other than IPv4 prefixes) is left out (wildcarded).
pub fn match_to_v10(mat: &Match) -> v10::Match {
    let (k, mk) = (mat.key(), &mat.mask().0);
    let mut w = v10::Match::all();
    let exact = |bit: u32, w: &mut v10::Match| w.wildcards &= !bit;
    if mk.in_port == u32::MAX {
        w.in_port = port_to_v10(k.in_port);
        exact(ofpfw::IN_PORT, &mut w);
    }
    if mk.dl_src == [0xff; 6] {
        w.dl_src = k.dl_src;
        exact(ofpfw::DL_SRC, &mut w);
    }
    if mk.dl_dst == [0xff; 6] {
        w.dl_dst = k.dl_dst;
        exact(ofpfw::DL_DST, &mut w);
    }
    if mk.vlan_tci & 0x1fff == 0x1fff {
        w.dl_vlan = if k.vlan_tci & VLAN_PRESENT == 0 { OFP_VLAN_NONE } else { k.vlan_tci & 0x0fff };
        exact(ofpfw::DL_VLAN, &mut w);
    }
    if mk.vlan_tci & 0xe000 == 0xe000 {
        w.dl_vlan_pcp = (k.vlan_tci >> 13) as u8;
        exact(ofpfw::DL_VLAN_PCP, &mut w);
    }
    if mk.dl_type == 0xffff {
        w.dl_type = k.dl_type;
        exact(ofpfw::DL_TYPE, &mut w);
    }
    if matches!(k.dl_type, ETH_IP | ETH_ARP) && mk.dl_type == 0xffff {
        let sm = u32::from_be_bytes([mk.nw_src[0], mk.nw_src[1], mk.nw_src[2], mk.nw_src[3]]);
        let dm = u32::from_be_bytes([mk.nw_dst[0], mk.nw_dst[1], mk.nw_dst[2], mk.nw_dst[3]]);
        let (sb, db) = (wildcard_bits(sm), wildcard_bits(dm));
        w.nw_src = u32::from_be_bytes(k.ipv4_src()) & prefix_mask(sb);
        w.nw_dst = u32::from_be_bytes(k.ipv4_dst()) & prefix_mask(db);
        w.wildcards = (w.wildcards & !(0x3f << ofpfw::NW_SRC_SHIFT) & !(0x3f << ofpfw::NW_DST_SHIFT))
            | (sb.min(32) << ofpfw::NW_SRC_SHIFT)
            | (db.min(32) << ofpfw::NW_DST_SHIFT);
        if mk.nw_proto == 0xff {
            w.nw_proto = k.nw_proto;
            exact(ofpfw::NW_PROTO, &mut w);
        }
        if mk.nw_tos & 0xfc == 0xfc {
            w.nw_tos = k.nw_tos & 0xfc;
            exact(ofpfw::NW_TOS, &mut w);
        }
        if mk.tp_src != 0 {
            w.tp_src = k.tp_src;
            exact(ofpfw::TP_SRC, &mut w);
        }
        if mk.tp_dst != 0 {
            w.tp_dst = k.tp_dst;
            exact(ofpfw::TP_DST, &mut w);
        }
    }
    w
}

/// One OpenFlow 1.0 action in the model; `enqueue` becomes `set_queue` + `output` (as OVS).
fn action_from_v10(a: &v10::Action, packet_out: bool, out: &mut Vec<OfAction>) -> Result<(), Error> {
    let arg = |what: String| bad(ErrorCode::OFPBAC_BAD_ARGUMENT, what);
    let act = match a {
        v10::Action::Output { port, max_len } => output_port(port_from_v10(*port), *max_len, packet_out)?,
        v10::Action::SetVlanVid(v) => {
            if *v > 0x0fff {
                return arg(format!("set_vlan_vid {v}"));
            }
            OfAction::SetVlanVid(*v)
        }
        v10::Action::SetVlanPcp(p) => {
            if *p > 7 {
                return arg(format!("set_vlan_pcp {p}"));
            }
            OfAction::SetVlanPcp(*p)
        }
        v10::Action::StripVlan => OfAction::StripVlan,
        v10::Action::SetDlSrc(m) => OfAction::SetEthSrc(*m),
        v10::Action::SetDlDst(m) => OfAction::SetEthDst(*m),
        v10::Action::SetNwSrc(a) => OfAction::SetIpv4Src(a.to_be_bytes()),
        v10::Action::SetNwDst(a) => OfAction::SetIpv4Dst(a.to_be_bytes()),
        v10::Action::SetNwTos(t) => {
            if t & 3 != 0 {
                return arg(format!("set_nw_tos {t}: ECN bits set"));
            }
            OfAction::SetNwTos(*t)
        }
        v10::Action::SetTpSrc(p) => OfAction::SetTpSrc(*p),
        v10::Action::SetTpDst(p) => OfAction::SetTpDst(*p),
        v10::Action::Enqueue { port, queue_id } => {
            out.push(OfAction::SetQueue(*queue_id));
            output_port(port_from_v10(*port), 0, false)?
        }
        v10::Action::Nicira(NxAction::Learn(l)) => super::learn_from_nx(l)?,
        v10::Action::Nicira(nx) => match nx.tun_id() {
            Some(t) => OfAction::SetTunId(t),
            None => return bad(ErrorCode::OFPBAC_BAD_EXPERIMENTER, format!("vendor 0x2320: {nx:?}")),
        },
        v10::Action::Vendor { vendor, .. } => {
            return bad(ErrorCode::OFPBAC_BAD_EXPERIMENTER, format!("vendor {vendor:#x}"))
        }
    };
    out.push(act);
    Ok(())
}

/// An OpenFlow 1.0 action list in the model (`packet_out`: `output:TABLE` allowed).
pub fn actions_from_v10(list: &[v10::Action], packet_out: bool) -> Result<Vec<OfAction>, Error> {
    let mut out = Vec::with_capacity(list.len());
    for a in list {
        action_from_v10(a, packet_out, &mut out)?;
    }
    Ok(out)
}

/// A model action list as OpenFlow 1.0 actions; `set_queue` and the output after it become
/// one `enqueue`; `set_tunnel` becomes Nicira's; actions 1.0 lacks (groups, TTL, push_vlan,
/// IPv6) are left out.
pub fn actions_to_v10(list: &[OfAction]) -> Vec<v10::Action> {
    let mut out = Vec::new();
    let mut queue = None;
    for a in list {
        let port = match a {
            OfAction::Output(p) => Some(*p),
            OfAction::InPort => Some(ofpp::IN_PORT),
            OfAction::Normal => Some(ofpp::NORMAL),
            OfAction::Flood => Some(ofpp::FLOOD),
            OfAction::All => Some(ofpp::ALL),
            OfAction::Local => Some(ofpp::LOCAL),
            _ => None,
        };
        if let Some(p) = port {
            let port = port_to_v10(p);
            out.push(match queue.take() {
                Some(queue_id) => v10::Action::Enqueue { port, queue_id },
                None => v10::Action::Output { port, max_len: 0 },
            });
            continue;
        }
        out.push(match a {
            OfAction::Controller { max_len } => v10::Action::Output { port: 0xfffd, max_len: *max_len },
            OfAction::SetEthSrc(m) => v10::Action::SetDlSrc(*m),
            OfAction::SetEthDst(m) => v10::Action::SetDlDst(*m),
            OfAction::SetIpv4Src(a) => v10::Action::SetNwSrc(u32::from_be_bytes(*a)),
            OfAction::SetIpv4Dst(a) => v10::Action::SetNwDst(u32::from_be_bytes(*a)),
            OfAction::SetNwTos(t) => v10::Action::SetNwTos(*t),
            OfAction::SetTpSrc(p) => v10::Action::SetTpSrc(*p),
            OfAction::SetTpDst(p) => v10::Action::SetTpDst(*p),
            OfAction::SetVlanVid(v) => v10::Action::SetVlanVid(*v),
            OfAction::SetVlanPcp(p) => v10::Action::SetVlanPcp(*p),
            OfAction::StripVlan => v10::Action::StripVlan,
            // As OVS encodes set_tunnel in 1.0: the 32-bit form when the id fits.
            OfAction::SetTunId(t) => match u32::try_from(*t) {
                Ok(t) => v10::Action::Nicira(NxAction::SetTunnel(t)),
                Err(_) => v10::Action::Nicira(NxAction::SetTunnel64(*t)),
            },
            OfAction::SetQueue(q) => {
                queue = Some(*q);
                continue;
            }
            OfAction::Learn(l) => v10::Action::Nicira(NxAction::Learn(Box::new(l.to_nx()))),
            _ => continue,
        });
    }
    out
}

/// An OpenFlow 1.0 flow-mod in the model. 1.0 has one table: adds go to table 0, modify
/// and delete look at every table; a modify that finds nothing adds (1.0 semantics); an
/// exact match (no wildcards) gets the top priority, as 1.0 and OVS rank it.
pub fn flow_mod_from_v10(fm: &v10::FlowMod) -> Result<FlowMod, Error> {
    let command = match fm.command {
        0 => FlowModCommand::Add,
        1 => FlowModCommand::Modify,
        2 => FlowModCommand::ModifyStrict,
        3 => FlowModCommand::Delete,
        4 => FlowModCommand::DeleteStrict,
        c => return bad(ErrorCode::OFPFMFC_BAD_COMMAND, format!("command {c}")),
    };
    // OFPFF_EMERG (4): no emergency table here.
    if fm.flags & !0x3 != 0 {
        return bad(ErrorCode::OFPFMFC_BAD_FLAGS, format!("flags 0x{:x}", fm.flags));
    }
    let matches = match_from_v10(&fm.match_);
    let exact = fm.match_.wildcards & ofpfw_all() == 0;
    let spec = FlowSpec {
        table: if command == FlowModCommand::Add { 0 } else { TABLE_ALL },
        priority: if exact { u16::MAX } else { fm.priority },
        cookie: fm.cookie,
        cookie_mask: 0,
        idle_timeout: fm.idle_timeout,
        hard_timeout: fm.hard_timeout,
        matches,
        actions: actions_from_v10(&fm.actions, false)?,
        flags: fm.flags,
        ..FlowSpec::default()
    };
    let out_port = if fm.out_port == 0xffff { ofpp::ANY } else { port_from_v10(fm.out_port) };
    Ok(FlowMod {
        out_port,
        buffer_id: (fm.buffer_id != NO_BUFFER).then_some(fm.buffer_id),
        add_if_missing: matches!(command, FlowModCommand::Modify | FlowModCommand::ModifyStrict),
        ..FlowMod::new(command, spec)
    })
}

fn ofpfw_all() -> u32 {
    v10::OFPFW_ALL
}

/// A 1.0 flow-stats request (`match`, `table_id` 0xff = all, `out_port`) as a selector for
/// [`Pipeline::query`](super::table::Pipeline::query).
pub fn flow_stats_request_v10(match_: &v10::Match, table_id: u8, out_port: u16) -> FlowMod {
    let spec = FlowSpec { table: table_id, matches: match_from_v10(match_), ..FlowSpec::default() };
    let out_port = if out_port == 0xffff { ofpp::ANY } else { port_from_v10(out_port) };
    FlowMod { out_port, ..FlowMod::new(FlowModCommand::Delete, spec) }
}

/// A rule as an OpenFlow 1.0 `ofp_flow_stats` (its apply-actions; 1.0 has no instructions).
pub fn flow_stats_v10(r: &Rule, now: Duration) -> v10::FlowStats {
    let (duration_sec, duration_nsec) = duration(r, now);
    let (packet_count, byte_count) = counts(r);
    v10::FlowStats {
        table_id: r.table,
        match_: match_to_v10(&r.matches),
        duration_sec,
        duration_nsec,
        priority: r.priority,
        idle_timeout: r.idle_timeout,
        hard_timeout: r.hard_timeout,
        cookie: r.cookie,
        packet_count,
        byte_count,
        actions: actions_to_v10(&r.actions),
    }
}

/// The OpenFlow 1.0 flow-removed body (1.0 knows idle, hard and delete: group and meter
/// deletions read as delete).
pub fn flow_removed_v10(r: &Rule, why: RemovedReason, now: Duration) -> v10::FlowRemoved {
    let (duration_sec, duration_nsec) = duration(r, now);
    let (packet_count, byte_count) = counts(r);
    v10::FlowRemoved {
        match_: match_to_v10(&r.matches),
        cookie: r.cookie,
        priority: r.priority,
        reason: removed_reason(why).min(2),
        duration_sec,
        duration_nsec,
        idle_timeout: r.idle_timeout,
        packet_count,
        byte_count,
    }
}
