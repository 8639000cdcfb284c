//! Datapath actions: what a megaflow does to the packets it matches.
//!
//! These are the fast path's actions, already translated from OpenFlow by ofproto: every
//! decision that depends on the packet was made at translation time (with the fields it
//! looked at added to the megaflow mask), so executing them needs no lookups.

use crate::netdev::DpPortNo;

/// One datapath action. A list of them runs in order; a list with no `Output` drops.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum DpAction {
    /// Send a copy of the packet, as it is at this point, out of a port.
    Output(DpPortNo),
    SetEthSrc([u8; 6]),
    SetEthDst([u8; 6]),
    /// IPv4 source address; the IPv4 and TCP/UDP checksums are updated.
    SetIpv4Src([u8; 4]),
    /// IPv4 destination address; the IPv4 and TCP/UDP checksums are updated.
    SetIpv4Dst([u8; 4]),
    /// IPv6 source address; the TCP/UDP/ICMPv6 checksum is updated.
    SetIpv6Src([u8; 16]),
    /// IPv6 destination address; the TCP/UDP/ICMPv6 checksum is updated.
    SetIpv6Dst([u8; 16]),
    /// DSCP (the upper 6 bits of the IPv4 TOS / IPv6 traffic class), ECN kept.
    SetIpDscp(u8),
    /// IPv4 TTL / IPv6 hop limit.
    SetIpTtl(u8),
    /// Decrement IPv4 TTL / IPv6 hop limit; a packet whose TTL would reach 0 is dropped.
    DecIpTtl,
    /// TCP/UDP/SCTP source port; the L4 checksum is updated.
    SetTpSrc(u16),
    /// TCP/UDP/SCTP destination port; the L4 checksum is updated.
    SetTpDst(u16),
    /// Push an 802.1Q (0x8100) or 802.1ad (0x88a8) tag with this TCI (VLAN_PRESENT bit ignored).
    PushVlan {
        tpid: u16,
        tci: u16,
    },
    /// Pop the outermost VLAN tag (no-op without one).
    PopVlan,
    /// Rewrite the outermost tag's TCI (no-op without a tag).
    SetVlanTci(u16),
    /// Send a copy of the packet, as it is at this point, to the slow path (OpenFlow output to
    /// CONTROLLER). The id names the slow path's packet-in context (reason, table, cookie,
    /// max_len), interned by ofproto.
    Userspace(u32),
    /// OpenFlow's `NORMAL`: the L2 learning switch, decided per packet in the fast path
    /// against the shared MAC table (see `fdb`): learn the source, send to the port the
    /// destination was learned on, or flood.
    Normal,
    /// Pass the packet through OpenFlow meter `id`: a packet over the meter's drop band is
    /// dropped here and the actions after this one do not run for it.
    Meter(u32),
    /// Encapsulate a copy of the packet, as it is at this point, with tunnel port `port`'s
    /// outer headers and GRE key `key` (the low 32 bits of `tun_id`, used when the port's `out_key` is `flow`; a port with
    /// a fixed key or none ignores it), then send it out of the tunnel's underlay port.
    Tunnel {
        port: DpPortNo,
        key: u32,
    },
}

/// `2,set(eth_dst=...)`-style text for a datapath action list (`drop` when empty), as
/// `dump-megaflows` shows it.
pub fn format(actions: &[DpAction]) -> String {
    if actions.is_empty() {
        return "drop".to_string();
    }
    let mac = crate::packet::ethernet::format_mac;
    actions
        .iter()
        .map(|a| match a {
            DpAction::Output(p) => format!("{}", p.0),
            DpAction::SetEthSrc(m) => format!("set(eth_src={})", mac(m)),
            DpAction::SetEthDst(m) => format!("set(eth_dst={})", mac(m)),
            DpAction::SetIpv4Src(a) => format!("set(ipv4_src={})", std::net::Ipv4Addr::from(*a)),
            DpAction::SetIpv4Dst(a) => format!("set(ipv4_dst={})", std::net::Ipv4Addr::from(*a)),
            DpAction::SetIpv6Src(a) => format!("set(ipv6_src={})", std::net::Ipv6Addr::from(*a)),
            DpAction::SetIpv6Dst(a) => format!("set(ipv6_dst={})", std::net::Ipv6Addr::from(*a)),
            DpAction::SetIpDscp(d) => format!("set(ip_dscp={d})"),
            DpAction::SetIpTtl(t) => format!("set(ip_ttl={t})"),
            DpAction::DecIpTtl => "dec_ttl".to_string(),
            DpAction::SetTpSrc(p) => format!("set(tp_src={p})"),
            DpAction::SetTpDst(p) => format!("set(tp_dst={p})"),
            DpAction::PushVlan { tpid, tci } => format!("push_vlan(tpid={tpid:#06x},tci={tci:#06x})"),
            DpAction::PopVlan => "pop_vlan".to_string(),
            DpAction::SetVlanTci(t) => format!("set(vlan_tci={t:#06x})"),
            DpAction::Userspace(id) => format!("userspace({id})"),
            DpAction::Meter(id) => format!("meter({id})"),
            DpAction::Normal => "normal".to_string(),
            DpAction::Tunnel { port, key } => format!("tnl_push(port={},key={key:#x})", port.0),
        })
        .collect::<Vec<_>>()
        .join(",")
}
