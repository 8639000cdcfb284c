//! Executing a megaflow's [`DpAction`] list on one packet.
//!
//! Actions run in order on the frame in place. `Output` sends the packet as it is at that
//! point: every output but the last sends a copy ([`Umem::clone_frame`]; with the pool empty
//! the output is skipped and counted), and the last output moves the frame itself. Actions
//! after the last output could change nothing anyone sees, so they are not run. A list
//! without outputs frees the frame. Either way every frame ends with the sink or back in the
//! pool.
//!
//! Set-field actions find their header themselves (Ethernet, at most one tag, then L3), since
//! an earlier push or pop may have moved it, and keep checksums right with RFC 1624
//! incremental updates. An action whose header the packet lacks (a port on ARP, IPv4 on
//! IPv6, an L4 field on a later fragment) does nothing. No allocation, no logging.

use super::actions::DpAction;
use super::flow::VLAN_PRESENT;
use crate::netdev::{DpPortNo, Frame, Umem};
use crate::packet::ethernet::{self, ether_type, is_vlan_tpid};
use crate::packet::{
    be16, checksum, icmp, ip_proto, ipv4, ipv6, put16, sctp, tcp, udp, vlan, Buf, Malformed,
};

/// Where [`execute`] hands frames to be sent.
pub trait OutputSink {
    /// Takes ownership of `frame`, to be sent on `port`.
    fn output(&mut self, port: DpPortNo, frame: Frame);
}

/// Collects outputs in order (tests, and callers that batch by port afterwards).
impl OutputSink for Vec<(DpPortNo, Frame)> {
    fn output(&mut self, port: DpPortNo, frame: Frame) {
        self.push((port, frame));
    }
}

/// Why the frame itself was freed instead of sent. `as usize` indexes a counter array.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ExecDrop {
    /// The action list has no `Output` (an explicit drop).
    NoOutput = 0,
    /// `DecIpTtl` on a TTL / hop limit of 0 or 1.
    TtlExpired,
    /// A header could not be pushed (no headroom).
    Malformed,
}

impl ExecDrop {
    /// Number of reasons.
    pub const COUNT: usize = 3;
    /// Every reason, in `as usize` order.
    pub const ALL: [ExecDrop; ExecDrop::COUNT] =
        [ExecDrop::NoOutput, ExecDrop::TtlExpired, ExecDrop::Malformed];
    /// A short name for counters and `ctl` output.
    pub const fn name(self) -> &'static str {
        match self {
            ExecDrop::NoOutput => "no_output",
            ExecDrop::TtlExpired => "ttl_expired",
            ExecDrop::Malformed => "malformed",
        }
    }
}

/// What [`execute`] did with a packet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[must_use]
pub struct ExecResult {
    /// Frames handed to the sink (copies and the original).
    pub sent: u32,
    /// Outputs skipped because the pool had no frame for the copy.
    pub copy_failed: u32,
    /// Set when the original frame was freed rather than sent, and why.
    pub dropped: Option<ExecDrop>,
}

/// Runs `actions` on `frame`; see the module docs. `frame` ends with `sink` or in `umem`.
pub fn execute(
    actions: &[DpAction],
    frame: Frame,
    umem: &mut Umem,
    sink: &mut impl OutputSink,
) -> ExecResult {
    let mut res = ExecResult::default();
    let mut frame = frame;
    let last = actions.iter().enumerate().rev().find_map(|(i, a)| match a {
        DpAction::Output(p) => Some((i, *p)),
        _ => None,
    });
    let Some((last, last_port)) = last else {
        umem.free(frame);
        res.dropped = Some(ExecDrop::NoOutput);
        return res;
    };
    for action in &actions[..last] {
        let drop = match action {
            DpAction::Output(port) => {
                match umem.clone_frame(&frame) {
                    Some(copy) => {
                        sink.output(*port, copy);
                        res.sent += 1;
                    }
                    None => res.copy_failed += 1,
                }
                None
            }
            DpAction::DecIpTtl => (!dec_ttl(umem.data_mut(&frame))).then_some(ExecDrop::TtlExpired),
            DpAction::PushVlan { tpid, tci } => {
                umem.with_buf(&mut frame, |b| push_vlan(b, *tpid, *tci)).err().map(|_| ExecDrop::Malformed)
            }
            DpAction::PopVlan => {
                umem.with_buf(&mut frame, pop_vlan);
                None
            }
            set => {
                set_field(umem.data_mut(&frame), set);
                None
            }
        };
        if let Some(reason) = drop {
            umem.free(frame);
            res.dropped = Some(reason);
            return res;
        }
    }
    sink.output(last_port, frame);
    res.sent += 1;
    res
}

/// Inserts a tag after the addresses (`tci`'s `VLAN_PRESENT` bit is cleared on the wire).
/// A packet too short to have addresses is left alone; `Err` when there is no headroom.
pub fn push_vlan(b: &mut Buf<'_>, tpid: u16, tci: u16) -> Result<(), Malformed> {
    if b.len() < 12 {
        return Ok(());
    }
    b.push_head(vlan::TAG_LEN)?;
    let d = b.data_mut();
    d.copy_within(vlan::TAG_LEN..vlan::TAG_LEN + 12, 0);
    put16(d, ethernet::ETHERTYPE_OFFSET, tpid);
    put16(d, ethernet::HEADER_LEN, tci & !VLAN_PRESENT);
    Ok(())
}

/// Removes the outermost tag, if there is one.
pub fn pop_vlan(b: &mut Buf<'_>) {
    let d = b.data_mut();
    if d.len() < ethernet::HEADER_LEN + vlan::HEADER_LEN || !is_vlan_tpid(be16(d, ethernet::ETHERTYPE_OFFSET))
    {
        return;
    }
    d.copy_within(0..12, vlan::TAG_LEN);
    // Cannot fail: the packet is longer than the tag (checked above).
    let _ = b.pull_head(vlan::TAG_LEN);
}

/// EtherType and offset of L3 (after at most one tag); `None` if too short for that.
#[inline]
fn locate_l3(d: &[u8]) -> Option<(u16, usize)> {
    if d.len() < ethernet::HEADER_LEN {
        return None;
    }
    let t = be16(d, ethernet::ETHERTYPE_OFFSET);
    if !is_vlan_tpid(t) {
        return Some((t, ethernet::HEADER_LEN));
    }
    if d.len() < ethernet::HEADER_LEN + vlan::HEADER_LEN {
        return None;
    }
    Some((be16(d, ethernet::HEADER_LEN + 2), ethernet::HEADER_LEN + vlan::HEADER_LEN))
}

/// The located IP header.
#[derive(Clone, Copy)]
enum Ip {
    /// IPv4 at this offset.
    V4(usize),
    /// IPv6 at this offset.
    V6(usize),
}

/// A well-formed IPv4 or IPv6 header (as its view's `check_len` accepts).
#[inline]
fn locate_ip(d: &[u8]) -> Option<Ip> {
    let (t, off) = locate_l3(d)?;
    match t {
        ether_type::IPV4 => ipv4::Packet::new_checked(&d[off..]).ok().map(|_| Ip::V4(off)),
        ether_type::IPV6 => ipv6::Packet::new_checked(&d[off..]).ok().map(|_| Ip::V6(off)),
        _ => None,
    }
}

/// Upper-layer protocol and byte range of the L4 header + payload (padding excluded);
/// `None` for later fragments, which carry no L4 header.
#[inline]
fn locate_l4(d: &[u8], ip: Ip) -> Option<(u8, usize, usize)> {
    match ip {
        Ip::V4(off) => {
            let p = ipv4::Packet::new_unchecked(&d[off..]);
            if p.frag_offset() != 0 {
                return None;
            }
            Some((p.protocol(), off + p.header_len(), off + usize::from(p.total_len())))
        }
        Ip::V6(off) => {
            let p = ipv6::Packet::new_unchecked(&d[off..]);
            let ul = ipv6::upper_layer(p.payload(), p.next_header()).ok()?;
            let start = off + ipv6::HEADER_LEN;
            (!ul.later_fragment).then_some((
                ul.proto,
                start + ul.offset,
                start + usize::from(p.payload_len()),
            ))
        }
    }
}

/// Applies `upd` to the L4 checksum of `l4` if it has one that covers the pseudo-header
/// (TCP, UDP unless its checksum is 0, ICMPv6). A UDP result of 0 is written as 0xffff.
#[inline]
fn update_pseudo_csum(l4: &mut [u8], proto: u8, v6: bool, upd: impl FnOnce(u16) -> u16) {
    let at = match proto {
        ip_proto::TCP if l4.len() >= tcp::HEADER_LEN => tcp::CHECKSUM_OFFSET,
        ip_proto::UDP if l4.len() >= udp::HEADER_LEN => udp::CHECKSUM_OFFSET,
        ip_proto::ICMPV6 if v6 && l4.len() >= icmp::HEADER_LEN => icmp::CHECKSUM_OFFSET,
        _ => return,
    };
    let old = be16(l4, at);
    if proto == ip_proto::UDP {
        if old == 0 {
            return;
        }
        let new = upd(old);
        put16(l4, at, if new == 0 { 0xffff } else { new });
    } else {
        put16(l4, at, upd(old));
    }
}

/// Runs one set-field action (not Output, DecIpTtl, PushVlan, PopVlan) on packet bytes.
fn set_field(d: &mut [u8], action: &DpAction) {
    match *action {
        DpAction::SetEthSrc(a) => {
            if let Ok(mut e) = ethernet::Packet::new_checked(d) {
                e.set_src(a);
            }
        }
        DpAction::SetEthDst(a) => {
            if let Ok(mut e) = ethernet::Packet::new_checked(d) {
                e.set_dst(a);
            }
        }
        DpAction::SetIpv4Src(a) => set_ipv4_addr(d, ipv4::SRC_OFFSET, a),
        DpAction::SetIpv4Dst(a) => set_ipv4_addr(d, ipv4::DST_OFFSET, a),
        DpAction::SetIpv6Src(a) => set_ipv6_addr(d, ipv6::SRC_OFFSET, &a),
        DpAction::SetIpv6Dst(a) => set_ipv6_addr(d, ipv6::DST_OFFSET, &a),
        DpAction::SetIpDscp(dscp) => set_dscp(d, dscp),
        DpAction::SetIpTtl(ttl) => set_ttl(d, ttl),
        DpAction::SetTpSrc(p) => set_port(d, 0, p),
        DpAction::SetTpDst(p) => set_port(d, 2, p),
        DpAction::SetVlanTci(tci) => {
            if let Some((_, off)) = locate_l3(d) {
                if off > ethernet::HEADER_LEN {
                    put16(d, ethernet::HEADER_LEN, tci & !VLAN_PRESENT);
                }
            }
        }
        DpAction::Output(_) | DpAction::DecIpTtl | DpAction::PushVlan { .. } | DpAction::PopVlan => {}
    }
}

fn set_ipv4_addr(d: &mut [u8], field: usize, new: [u8; 4]) {
    let Some(ip @ Ip::V4(off)) = locate_ip(d) else { return };
    let at = off + field;
    let old = crate::packet::arr::<4>(d, at);
    if old == new {
        return;
    }
    d[at..at + 4].copy_from_slice(&new);
    let c = off + ipv4::CHECKSUM_OFFSET;
    put16(d, c, checksum::update32(be16(d, c), old, new));
    if let Some((proto, start, end)) = locate_l4(d, ip) {
        update_pseudo_csum(&mut d[start..end], proto, false, |c| checksum::update32(c, old, new));
    }
}

fn set_ipv6_addr(d: &mut [u8], field: usize, new: &[u8; 16]) {
    let Some(ip @ Ip::V6(off)) = locate_ip(d) else { return };
    let at = off + field;
    let old = crate::packet::arr::<16>(d, at);
    if old == *new {
        return;
    }
    d[at..at + 16].copy_from_slice(new);
    if let Some((proto, start, end)) = locate_l4(d, ip) {
        update_pseudo_csum(&mut d[start..end], proto, true, |c| checksum::update128(c, &old, new));
    }
}

/// Rewrites the IPv4 header word at `word` (an even offset) with `f(old)`, fixing the
/// header checksum.
#[inline]
fn rewrite_ipv4_word(d: &mut [u8], off: usize, word: usize, f: impl FnOnce(u16) -> u16) {
    let old = be16(d, off + word);
    let new = f(old);
    put16(d, off + word, new);
    let c = off + ipv4::CHECKSUM_OFFSET;
    put16(d, c, checksum::update16(be16(d, c), old, new));
}

fn set_dscp(d: &mut [u8], dscp: u8) {
    let dscp = (dscp & 0x3f) << 2;
    match locate_ip(d) {
        // Word 0 is version/IHL, TOS.
        Some(Ip::V4(off)) => rewrite_ipv4_word(d, off, 0, |w| (w & 0xff03) | u16::from(dscp)),
        Some(Ip::V6(off)) => {
            let mut p = ipv6::Packet::new_unchecked(&mut d[off..]);
            let tc = p.traffic_class();
            p.set_traffic_class(dscp | (tc & 0x03));
        }
        None => {}
    }
}

fn set_ttl(d: &mut [u8], ttl: u8) {
    match locate_ip(d) {
        // The word at TTL_OFFSET is TTL, protocol.
        Some(Ip::V4(off)) => {
            rewrite_ipv4_word(d, off, ipv4::TTL_OFFSET, |w| (w & 0x00ff) | (u16::from(ttl) << 8))
        }
        Some(Ip::V6(off)) => d[off + ipv6::HOP_LIMIT_OFFSET] = ttl,
        None => {}
    }
}

/// Decrements the TTL / hop limit; `false` when it is ≤ 1 (the packet must be dropped).
/// Non-IP packets pass unchanged.
fn dec_ttl(d: &mut [u8]) -> bool {
    let (off, at) = match locate_ip(d) {
        Some(Ip::V4(off)) => (off, off + ipv4::TTL_OFFSET),
        Some(Ip::V6(off)) => (off, off + ipv6::HOP_LIMIT_OFFSET),
        None => return true,
    };
    let ttl = d[at];
    if ttl <= 1 {
        return false;
    }
    if at == off + ipv4::TTL_OFFSET {
        rewrite_ipv4_word(d, off, ipv4::TTL_OFFSET, |w| w - 0x0100);
    } else {
        d[at] = ttl - 1;
    }
    true
}

/// Sets the TCP/UDP/SCTP port at `field` (0 = source, 2 = destination) of the L4 header.
fn set_port(d: &mut [u8], field: usize, port: u16) {
    let Some(ip) = locate_ip(d) else { return };
    let Some((proto, start, end)) = locate_l4(d, ip) else { return };
    let l4 = &mut d[start..end];
    match proto {
        ip_proto::TCP | ip_proto::UDP => {
            if l4.len() < if proto == ip_proto::TCP { tcp::HEADER_LEN } else { udp::HEADER_LEN } {
                return;
            }
            let old = be16(l4, field);
            put16(l4, field, port);
            update_pseudo_csum(l4, proto, false, |c| checksum::update16(c, old, port));
        }
        ip_proto::SCTP => {
            if let Ok(mut s) = sctp::Packet::new_checked(l4) {
                if field == 0 {
                    s.set_src_port(port);
                } else {
                    s.set_dst_port(port);
                }
                s.fill_checksum();
            }
        }
        _ => {}
    }
}
