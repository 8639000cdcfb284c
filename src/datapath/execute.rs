//! Executing a megaflow's [`DpAction`] list on one packet.
//!
//! Actions run in order on the frame in place. `Output` sends the packet as it is at that
//! point: every output but the last sends a copy ([`Umem::clone_frame`]; with the pool empty
//! the output is skipped and counted), and the last output moves the frame itself.
//! `Userspace` hands the sink a view of the packet as it is at that point (the sink copies
//! it to the slow path) and goes on. `Meter` asks the sink; a packet over the meter's rate
//! is freed there and the actions after it do not run. Actions after the last action anyone
//! can observe (output, userspace, meter) could change nothing anyone sees, so they are not
//! run. A list without any of those frees the frame. Either way every frame ends with the
//! sink or back in the pool. `execute` never looks at the packet's ingress port: a packet
//! from the controller (no ingress port) runs like any other.
//!
//! Set-field actions find their header themselves (Ethernet, at most one tag, then L3), since
//! an earlier push or pop may have moved it, and keep checksums right with RFC 1624
//! incremental updates. An action whose header the packet lacks (a port on ARP, IPv4 on
//! IPv6, an L4 field on a later fragment) does nothing. No allocation, no logging.

use super::actions::DpAction;
use super::flow::VLAN_PRESENT;
use super::normal::NormalDecision;
use smallvec::SmallVec;

use crate::netdev::{DpPortNo, Frame, Umem};
use crate::packet::ethernet::{self, ether_type, is_vlan_tpid};
use crate::packet::{
    be16, checksum, icmp, ip_proto, ipv4, ipv6, put16, sctp, tcp, udp, vlan, Buf, Malformed,
};

/// Where [`execute`] hands frames to be sent, packets for the slow path, and meter checks.
pub trait OutputSink {
    /// Takes ownership of `frame`, to be sent on `port`.
    fn output(&mut self, port: DpPortNo, frame: Frame);
    /// `Userspace(id)`: copy `packet` (as it is now) to the slow path. Returns whether it was
    /// queued (`false`: the queue was full and the copy was dropped; the sink counts it).
    fn userspace(&mut self, id: u32, packet: &[u8]) -> bool;
    /// `Meter(id)`: whether a packet of `len` bytes conforms to meter `id` (`false`: drop it).
    fn meter(&mut self, id: u32, len: usize) -> bool;
    /// `Normal`: where the L2 switch sends `packet`, and tagged or not (no port: drop).
    fn normal(&mut self, packet: &[u8], d: &mut NormalDecision);
    /// `Tunnel`: takes ownership of `frame`, to be encapsulated for tunnel port `port` with
    /// key `key` and sent out of its underlay port.
    fn tunnel(&mut self, port: DpPortNo, key: u32, frame: Frame);
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
    /// A meter's drop band dropped it.
    Meter,
}

impl ExecDrop {
    /// Number of reasons.
    pub const COUNT: usize = 4;
    /// Every reason, in `as usize` order.
    pub const ALL: [ExecDrop; ExecDrop::COUNT] =
        [ExecDrop::NoOutput, ExecDrop::TtlExpired, ExecDrop::Malformed, ExecDrop::Meter];
    /// A short name for counters and `ctl` output.
    pub const fn name(self) -> &'static str {
        match self {
            ExecDrop::NoOutput => "no_output",
            ExecDrop::TtlExpired => "ttl_expired",
            ExecDrop::Malformed => "malformed",
            ExecDrop::Meter => "meter",
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
    /// Copies the sink queued for the slow path (`Userspace`).
    pub to_userspace: u32,
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
    let Some(end) = actions.iter().rposition(|a| {
        matches!(
            a,
            DpAction::Output(_)
                | DpAction::Userspace(_)
                | DpAction::Meter(_)
                | DpAction::Normal
                | DpAction::Tunnel { .. }
        )
    }) else {
        umem.free(frame);
        res.dropped = Some(ExecDrop::NoOutput);
        return res;
    };
    for (i, action) in actions[..=end].iter().enumerate() {
        let drop = match action {
            DpAction::Output(port) if i == end => {
                sink.output(*port, frame);
                res.sent += 1;
                return res;
            }
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
            DpAction::Tunnel { port, key } if i == end => {
                sink.tunnel(*port, *key, frame);
                res.sent += 1;
                return res;
            }
            DpAction::Tunnel { port, key } => {
                match umem.clone_frame(&frame) {
                    Some(copy) => {
                        sink.tunnel(*port, *key, copy);
                        res.sent += 1;
                    }
                    None => res.copy_failed += 1,
                }
                None
            }
            DpAction::Normal => {
                let mut d = NormalDecision::default();
                sink.normal(umem.data(&frame), &mut d);
                match normal_outputs(&d, i == end, frame, umem, sink, &mut res) {
                    Some(f) => {
                        frame = f;
                        None
                    }
                    None => {
                        if res.sent == 0 {
                            res.dropped = Some(ExecDrop::Malformed);
                        }
                        return res;
                    }
                }
            }
            DpAction::Userspace(id) => {
                if sink.userspace(*id, umem.data(&frame)) {
                    res.to_userspace += 1;
                }
                None
            }
            DpAction::Meter(id) => (!sink.meter(*id, frame.len())).then_some(ExecDrop::Meter),
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
    // The list ends with a userspace, meter or NORMAL action that sent the frame nowhere
    // (copies, if any, went out).
    umem.free(frame);
    if res.sent == 0 && res.to_userspace == 0 {
        res.dropped = Some(ExecDrop::NoOutput);
    }
    res
}

/// Sends `frame` where NORMAL decided: the copies that leave tagged carry `d.tci`, the others
/// no tag. Each form is made once (a copy converted, then copies of that), and when `last`
/// (nothing after NORMAL can see the frame) the frame itself is converted and sent last.
/// Returns the frame when it is still the caller's (not `last`, or nowhere to send it last).
fn normal_outputs(
    d: &NormalDecision,
    last: bool,
    frame: Frame,
    umem: &mut Umem,
    sink: &mut impl OutputSink,
    res: &mut ExecResult,
) -> Option<Frame> {
    let n_tagged = d.out.iter().filter(|o| o.1).count();
    let n_untagged = d.out.len() - n_tagged;
    // The form the frame is closer to goes last, so that it is usually sent unchanged.
    let order = if has_outer_tag(umem.data(&frame)) { [false, true] } else { [true, false] };
    let forms: SmallVec<[bool; 2]> =
        order.into_iter().filter(|&t| if t { n_tagged > 0 } else { n_untagged > 0 }).collect();
    let mut frame = Some(frame);
    for (k, &tagged) in forms.iter().enumerate() {
        let n_form = if tagged { n_tagged } else { n_untagged } as u32;
        let use_original = last && k + 1 == forms.len();
        let mut f = if use_original {
            frame.take()?
        } else {
            match frame.as_ref().and_then(|f| umem.clone_frame(f)) {
                Some(c) => c,
                None => {
                    res.copy_failed += n_form;
                    continue;
                }
            }
        };
        if umem.with_buf(&mut f, |b| set_tag(b, tagged, d.tci)).is_err() {
            umem.free(f);
            res.copy_failed += n_form;
            continue;
        }
        let mut ports = d.out.iter().filter(|o| o.1 == tagged).map(|o| o.0).peekable();
        while let Some(port) = ports.next() {
            if ports.peek().is_none() {
                sink.output(port, f);
                res.sent += 1;
                break;
            }
            match umem.clone_frame(&f) {
                Some(copy) => {
                    sink.output(port, copy);
                    res.sent += 1;
                }
                None => res.copy_failed += 1,
            }
        }
    }
    frame
}

/// Gives the frame an outer tag `tci` (rewriting the VID and PCP of one it has, pushing an
/// 802.1Q tag otherwise), or no outer tag.
fn set_tag(b: &mut Buf<'_>, tagged: bool, tci: u16) -> Result<(), Malformed> {
    match (tagged, has_outer_tag(b.data())) {
        (true, true) => {
            put16(b.data_mut(), ethernet::HEADER_LEN, tci & !VLAN_PRESENT);
            Ok(())
        }
        (true, false) => push_vlan(b, ether_type::VLAN, tci),
        (false, true) => {
            pop_vlan(b);
            Ok(())
        }
        (false, false) => Ok(()),
    }
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

/// Whether the frame has an outer VLAN tag (and is long enough to hold it).
#[inline]
fn has_outer_tag(d: &[u8]) -> bool {
    d.len() >= ethernet::HEADER_LEN + vlan::HEADER_LEN && is_vlan_tpid(be16(d, ethernet::ETHERTYPE_OFFSET))
}

/// Removes the outermost tag, if there is one.
pub fn pop_vlan(b: &mut Buf<'_>) {
    if !has_outer_tag(b.data()) {
        return;
    }
    let d = b.data_mut();
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
        DpAction::Output(_)
        | DpAction::DecIpTtl
        | DpAction::PushVlan { .. }
        | DpAction::PopVlan
        | DpAction::Userspace(_)
        | DpAction::Normal
        | DpAction::Tunnel { .. }
        | DpAction::Meter(_) => {}
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datapath::extract::extract;
    use crate::datapath::flow::FlowKey;
    use crate::packet::build::{
        self, EthSpec, Icmp4EchoSpec, Icmp6EchoSpec, Tcp4Spec, Tcp6Spec, Udp4Spec, Udp6Spec,
    };
    use proptest::prelude::*;

    /// Collects outputs in order; refuses userspace copies, passes every meter.
    impl OutputSink for Vec<(DpPortNo, Frame)> {
        fn output(&mut self, port: DpPortNo, frame: Frame) {
            self.push((port, frame));
        }
        fn userspace(&mut self, _id: u32, _packet: &[u8]) -> bool {
            false
        }
        fn meter(&mut self, _id: u32, _len: usize) -> bool {
            true
        }
        fn normal(&mut self, _packet: &[u8], _d: &mut NormalDecision) {}
        fn tunnel(&mut self, port: DpPortNo, _key: u32, frame: Frame) {
            self.push((port, frame));
        }
    }

    /// Records everything; meters in `closed` drop, the others pass; NORMAL picks `normal`.
    #[derive(Default)]
    struct Recorder {
        out: Vec<(DpPortNo, Vec<u8>)>,
        up: Vec<(u32, Vec<u8>)>,
        metered: Vec<(u32, usize)>,
        closed: Vec<u32>,
        frames: Vec<Frame>,
        up_room: usize,
        normal: Vec<(DpPortNo, bool)>,
        normal_tci: u16,
        tunneled: Vec<(DpPortNo, u32)>,
    }

    impl OutputSink for Recorder {
        fn output(&mut self, port: DpPortNo, frame: Frame) {
            self.out.push((port, Vec::new()));
            self.frames.push(frame);
        }
        fn userspace(&mut self, id: u32, packet: &[u8]) -> bool {
            if self.up.len() >= self.up_room {
                return false;
            }
            self.up.push((id, packet.to_vec()));
            true
        }
        fn meter(&mut self, id: u32, len: usize) -> bool {
            self.metered.push((id, len));
            !self.closed.contains(&id)
        }
        fn normal(&mut self, _packet: &[u8], d: &mut NormalDecision) {
            d.out.extend(self.normal.iter().copied());
            d.tci = self.normal_tci;
        }
        fn tunnel(&mut self, port: DpPortNo, key: u32, frame: Frame) {
            self.tunneled.push((port, key));
            self.frames.push(frame);
        }
    }

    #[test]
    fn normal_sends_to_the_ports_it_picks_copying_for_all_but_the_last() {
        let f = udp4();
        let run = |ports: &[u32], actions: &[DpAction]| {
            let mut umem = Umem::new(8).unwrap();
            let frame = umem.frame_from(&f).unwrap();
            let mut rec = Recorder {
                normal: ports.iter().map(|&p| (DpPortNo(p), false)).collect(),
                ..Default::default()
            };
            let r = execute(actions, frame, &mut umem, &mut rec);
            let outs: Vec<u32> = rec.out.iter().map(|(p, _)| p.0).collect();
            for fr in std::mem::take(&mut rec.frames) {
                assert_eq!(umem.data(&fr), &f[..]);
                umem.free(fr);
            }
            assert_eq!(umem.n_free(), 8, "no frame leaks");
            (r, outs)
        };
        let (r, outs) = run(&[2, 3, 4], &[DpAction::Normal]);
        assert_eq!((r.sent, r.dropped, outs), (3, None, vec![2, 3, 4]));
        let (r, outs) = run(&[], &[DpAction::Normal]);
        assert_eq!((r.sent, r.dropped, outs), (0, Some(ExecDrop::NoOutput), vec![]));
        let (r, outs) = run(&[2], &[DpAction::Normal, DpAction::Output(DpPortNo(9))]);
        assert_eq!((r.sent, r.dropped, outs), (2, None, vec![2, 9]));
        let (r, outs) = run(&[], &[DpAction::Output(DpPortNo(9)), DpAction::Normal]);
        assert_eq!((r.sent, r.dropped, outs), (1, None, vec![9]));
    }

    #[test]
    fn normal_tags_and_untags_each_form_once() {
        let plain = udp4();
        let mut tagged = plain.clone();
        tagged.splice(12..12, [0x81, 0x00, 0x20, 0x0a]); // PCP 1, VID 10
        let retag = |mut f: Vec<u8>, tci: u16| {
            f[14..16].copy_from_slice(&tci.to_be_bytes());
            f
        };
        let run = |input: &[u8], ports: &[(u32, bool)], tci: u16, actions: &[DpAction]| {
            let mut umem = Umem::new(8).unwrap();
            let frame = umem.frame_from(input).unwrap();
            let mut rec = Recorder {
                normal: ports.iter().map(|&(p, t)| (DpPortNo(p), t)).collect(),
                normal_tci: tci,
                ..Default::default()
            };
            let r = execute(actions, frame, &mut umem, &mut rec);
            let mut outs = Vec::new();
            for ((p, _), fr) in rec.out.iter().zip(std::mem::take(&mut rec.frames)) {
                outs.push((p.0, umem.data(&fr).to_vec()));
                umem.free(fr);
            }
            assert_eq!(umem.n_free(), 8, "no frame leaks");
            (r, outs)
        };
        // Untagged in: the tagged copies first (one conversion, then a copy), the frame itself
        // last and unchanged.
        let (r, outs) = run(&plain, &[(2, false), (3, true), (4, true)], 0x200a, &[DpAction::Normal]);
        assert_eq!(r.sent, 3);
        assert_eq!(outs, vec![(3, tagged.clone()), (4, tagged.clone()), (2, plain.clone())]);
        // Tagged in: the untagged copy pops, the trunk copy is rewritten to the decided tag.
        let (r, outs) = run(&tagged, &[(5, true), (6, false)], 0x6014, &[DpAction::Normal]);
        assert_eq!(r.sent, 2);
        assert_eq!(outs, vec![(6, plain.clone()), (5, retag(tagged.clone(), 0x6014))]);
        // With an output after NORMAL, the frame itself goes there unchanged.
        let (r, outs) = run(&plain, &[(3, true)], 10, &[DpAction::Normal, DpAction::Output(DpPortNo(9))]);
        assert_eq!(r.sent, 2);
        assert_eq!(outs, vec![(3, retag(tagged.clone(), 10)), (9, plain.clone())]);
    }

    /// Runs `actions` through a [`Recorder`] (closed meters: `closed`); checks no frame leaks.
    fn record(actions: &[DpAction], bytes: &[u8], closed: &[u32], up_room: usize) -> (ExecResult, Recorder) {
        let mut umem = Umem::new(8).unwrap();
        let frame = umem.frame_from(bytes).unwrap();
        let mut rec = Recorder { closed: closed.to_vec(), up_room, ..Default::default() };
        let r = execute(actions, frame, &mut umem, &mut rec);
        for (i, f) in std::mem::take(&mut rec.frames).into_iter().enumerate() {
            rec.out[i].1 = umem.data(&f).to_vec();
            umem.free(f);
        }
        assert_eq!(umem.n_free(), 8);
        (r, rec)
    }

    #[test]
    fn userspace_copies_the_packet_as_it_is_then_goes_on() {
        let f = udp4();
        let acts = [
            DpAction::SetEthDst([7; 6]),
            DpAction::Userspace(3),
            DpAction::SetEthDst([8; 6]),
            DpAction::Output(DpPortNo(2)),
            DpAction::Userspace(4),
        ];
        let (r, rec) = record(&acts, &f, &[], usize::MAX);
        assert_eq!(r, ExecResult { sent: 1, copy_failed: 0, to_userspace: 2, dropped: None });
        assert_eq!(rec.up.len(), 2);
        assert_eq!(rec.up[0].0, 3);
        assert_eq!(rec.up[0].1[..6], [7; 6]);
        assert_eq!(rec.up[0].1[6..], f[6..]);
        assert_eq!((rec.up[1].0, &rec.up[1].1[..6]), (4, &[8u8; 6][..]));
        assert_eq!(rec.out.len(), 1);
        assert_eq!(rec.out[0].1[..6], [8; 6]);
        // Only to the slow path: not a drop. A full queue: counted by the sink, and a drop here.
        let (r, rec) = record(&[DpAction::Userspace(1)], &f, &[], usize::MAX);
        assert_eq!((r.to_userspace, r.dropped, rec.up.len()), (1, None, 1));
        let (r, _) = record(&[DpAction::Userspace(1)], &f, &[], 0);
        assert_eq!((r.to_userspace, r.dropped), (0, Some(ExecDrop::NoOutput)));
    }

    #[test]
    fn meter_drop_stops_the_actions_after_it() {
        let f = udp4();
        let acts = [
            DpAction::Output(DpPortNo(1)),
            DpAction::Meter(9),
            DpAction::Userspace(1),
            DpAction::Output(DpPortNo(2)),
        ];
        let (r, rec) = record(&acts, &f, &[9], usize::MAX);
        assert_eq!(
            r,
            ExecResult { sent: 1, copy_failed: 0, to_userspace: 0, dropped: Some(ExecDrop::Meter) }
        );
        assert_eq!(rec.metered, vec![(9, f.len())]);
        assert_eq!(rec.out.iter().map(|o| o.0 .0).collect::<Vec<_>>(), [1]);
        assert!(rec.up.is_empty());
        // An open meter passes: everything runs.
        let (r, rec) = record(&acts, &f, &[], usize::MAX);
        assert_eq!((r.sent, r.to_userspace, r.dropped), (2, 1, None));
        assert_eq!(rec.out.iter().map(|o| o.0 .0).collect::<Vec<_>>(), [1, 2]);
        // A meter after a VLAN push sees the longer packet; a trailing meter still counts.
        let acts = [DpAction::PushVlan { tpid: 0x8100, tci: 1 }, DpAction::Meter(2)];
        let (r, rec) = record(&acts, &f, &[], usize::MAX);
        assert_eq!((r.dropped, rec.metered), (Some(ExecDrop::NoOutput), vec![(2, f.len() + 4)]));
    }

    fn run(actions: &[DpAction], bytes: &[u8]) -> (ExecResult, Vec<(DpPortNo, Vec<u8>)>) {
        let mut umem = Umem::new(8).unwrap();
        let frame = umem.frame_from(bytes).unwrap();
        let mut sink = Vec::new();
        let r = execute(actions, frame, &mut umem, &mut sink);
        let out = sink
            .into_iter()
            .map(|(p, f)| {
                let b = umem.data(&f).to_vec();
                umem.free(f);
                (p, b)
            })
            .collect();
        assert_eq!(umem.n_free(), 8);
        (r, out)
    }

    /// Runs `actions` + `Output(1)` and returns the one output frame.
    fn apply(actions: &[DpAction], bytes: &[u8]) -> Vec<u8> {
        let mut a = actions.to_vec();
        a.push(DpAction::Output(DpPortNo(1)));
        let (r, mut out) = run(&a, bytes);
        assert_eq!((r.sent, r.dropped), (1, None));
        out.pop().unwrap().1
    }

    fn key(f: &[u8]) -> FlowKey {
        let mut k = FlowKey::default();
        extract(f, 0, &mut k).unwrap();
        k
    }

    /// Checksums in `f` equal a full recompute.
    fn assert_checksums(f: &[u8]) {
        let mut g = f.to_vec();
        build::fill_checksums(&mut g);
        assert_eq!(f, &g[..], "incremental checksums differ from a full recompute");
    }

    fn udp4() -> Vec<u8> {
        build::udp4(&Udp4Spec::default())
    }

    #[test]
    fn eth_addresses() {
        let f = apply(&[DpAction::SetEthSrc([9; 6]), DpAction::SetEthDst([8; 6])], &udp4());
        let k = key(&f);
        assert_eq!((k.dl_src, k.dl_dst), ([9; 6], [8; 6]));
        assert_eq!(f[12..], udp4()[12..]);
    }

    #[test]
    fn ipv4_addresses_all_l4() {
        let frames = [
            udp4(),
            build::tcp4(&Tcp4Spec::default()),
            build::icmp4_echo(&Icmp4EchoSpec::default()),
            build::udp4(&Udp4Spec { vlan: Some(7), ..Default::default() }),
        ];
        for f in frames {
            let g =
                apply(&[DpAction::SetIpv4Src([192, 168, 1, 1]), DpAction::SetIpv4Dst([172, 16, 0, 9])], &f);
            let k = key(&g);
            assert_eq!((k.ipv4_src(), k.ipv4_dst()), ([192, 168, 1, 1], [172, 16, 0, 9]));
            assert_checksums(&g);
        }
    }

    #[test]
    fn udp4_zero_checksum_stays_zero() {
        let mut f = udp4();
        build::poke16(&mut f, 40, 0);
        let g = apply(&[DpAction::SetIpv4Src([1, 2, 3, 4]), DpAction::SetTpDst(99)], &f);
        assert_eq!(be16(&g, 40), 0);
        assert_checksums(&g);
    }

    #[test]
    fn ipv6_addresses_all_l4() {
        let frames = [
            build::udp6(&Udp6Spec::default()),
            build::tcp6(&Tcp6Spec::default()),
            build::icmp6_echo(&Icmp6EchoSpec::default()),
        ];
        for f in frames {
            let g = apply(&[DpAction::SetIpv6Src([7; 16]), DpAction::SetIpv6Dst([0xfe; 16])], &f);
            let k = key(&g);
            assert_eq!((k.nw_src, k.nw_dst), ([7; 16], [0xfe; 16]));
            assert_checksums(&g);
        }
    }

    #[test]
    fn dscp_ttl_keep_ecn() {
        let mut f = udp4();
        f[15] = 0x03; // ECN CE
        build::fill_checksums(&mut f);
        let g = apply(&[DpAction::SetIpDscp(46), DpAction::SetIpTtl(9), DpAction::DecIpTtl], &f);
        let k = key(&g);
        assert_eq!((k.nw_tos, k.nw_ttl), (46 << 2 | 3, 8));
        assert_checksums(&g);
        let f6 = build::udp6(&Udp6Spec { tclass: 0x01, ..Default::default() });
        let g = apply(&[DpAction::SetIpDscp(10), DpAction::DecIpTtl], &f6);
        let k = key(&g);
        assert_eq!((k.nw_tos, k.nw_ttl), (10 << 2 | 1, 63));
        assert_checksums(&g);
    }

    #[test]
    fn dec_ttl_drops_at_one() {
        for f in [
            build::udp4(&Udp4Spec { ttl: 1, ..Default::default() }),
            build::udp6(&Udp6Spec { hop_limit: 0, ..Default::default() }),
        ] {
            let (r, out) =
                run(&[DpAction::Output(DpPortNo(5)), DpAction::DecIpTtl, DpAction::Output(DpPortNo(1))], &f);
            assert_eq!(r, ExecResult { sent: 1, dropped: Some(ExecDrop::TtlExpired), ..Default::default() });
            assert_eq!(out.len(), 1);
            assert_eq!(out[0], (DpPortNo(5), f));
        }
        // Non-IP passes.
        let arp = build::arp_request([2; 6], [1; 4], [2; 4], None);
        assert_eq!(apply(&[DpAction::DecIpTtl], &arp), arp);
    }

    #[test]
    fn ports_tcp_udp_sctp() {
        for f in [
            udp4(),
            build::tcp4(&Tcp4Spec::default()),
            build::udp6(&Udp6Spec::default()),
            build::tcp6(&Tcp6Spec::default()),
        ] {
            let g = apply(&[DpAction::SetTpSrc(7777), DpAction::SetTpDst(8888)], &f);
            let k = key(&g);
            assert_eq!((k.tp_src, k.tp_dst), (7777, 8888));
            assert_checksums(&g);
        }
        let f = build::sctp4(&EthSpec::default(), [1; 4], [2; 4], 1, 2, 16);
        let g = apply(&[DpAction::SetTpSrc(3), DpAction::SetTpDst(4)], &f);
        assert_eq!((key(&g).tp_src, key(&g).tp_dst), (3, 4));
        assert_checksums(&g);
    }

    #[test]
    fn missing_headers_are_ignored() {
        let arp = build::arp_request([2; 6], [1; 4], [2; 4], Some(3));
        let acts = [
            DpAction::SetTpSrc(1),
            DpAction::SetIpv4Src([9; 4]),
            DpAction::SetIpv6Dst([9; 16]),
            DpAction::SetIpDscp(3),
            DpAction::SetIpTtl(3),
        ];
        assert_eq!(apply(&acts, &arp), arp);
        let v6 = build::udp6(&Udp6Spec::default());
        assert_eq!(apply(&[DpAction::SetIpv4Dst([1; 4])], &v6), v6);
        let icmp = build::icmp4_echo(&Icmp4EchoSpec::default());
        assert_eq!(apply(&[DpAction::SetTpDst(5)], &icmp), icmp);
        assert_eq!(apply(&[DpAction::PopVlan, DpAction::SetVlanTci(5)], &v6), v6);
        let tiny = [1u8, 2, 3];
        assert_eq!(apply(&acts, &tiny), tiny);
        assert_eq!(apply(&[DpAction::PushVlan { tpid: 0x8100, tci: 1 }], &tiny), tiny);
    }

    #[test]
    fn later_fragment_keeps_l4() {
        let mut f = udp4();
        build::set_ipv4_frag(&mut f, 10);
        let g = apply(&[DpAction::SetTpSrc(1), DpAction::SetIpv4Src([3; 4])], &f);
        assert_eq!(g[34..], f[34..]);
        assert!(checksum::verify(&g[14..34]));
        assert_eq!(key(&g).ipv4_src(), [3; 4]);
    }

    #[test]
    fn push_pop_round_trip() {
        let f = udp4();
        let g = apply(&[DpAction::PushVlan { tpid: 0x8100, tci: 0x3000 | 42 }], &f);
        assert_eq!(g.len(), f.len() + 4);
        let k = key(&g);
        assert_eq!((k.vlan_tci, k.dl_type, k.tp_src), (0x2000 | 42 | VLAN_PRESENT, 0x0800, 1024));
        assert_eq!(be16(&g, 14), 0x2000 | 42); // VLAN_PRESENT not on the wire
                                               // Set fields still find L3 behind the tag.
        let h = apply(&[DpAction::SetVlanTci(7), DpAction::SetIpv4Dst([4; 4]), DpAction::PopVlan], &g);
        assert_eq!(key(&h).ipv4_dst(), [4; 4]);
        assert_checksums(&h);
        assert_eq!(apply(&[DpAction::PopVlan], &g), f);
        // Double push: 802.1ad outside 802.1Q; pops undo in order.
        let acts = [DpAction::PushVlan { tpid: 0x8100, tci: 5 }, DpAction::PushVlan { tpid: 0x88a8, tci: 6 }];
        let q = apply(&acts, &f);
        let k = key(&q);
        assert_eq!((k.vlan_tci, k.dl_type), (6 | VLAN_PRESENT, 0x8100));
        assert_eq!(apply(&[DpAction::PopVlan, DpAction::PopVlan], &q), f);
    }

    #[test]
    fn outputs_copy_until_the_last() {
        let f = udp4();
        let acts = [
            DpAction::Output(DpPortNo(1)),
            DpAction::SetEthDst([7; 6]),
            DpAction::Output(DpPortNo(2)),
            DpAction::Output(DpPortNo(3)),
            DpAction::SetEthDst([8; 6]), // after the last output: not run, nobody sees it
        ];
        let mut umem = Umem::new(4).unwrap();
        let frame = umem.frame_from(&f).unwrap();
        let orig_addr = frame.addr();
        let mut sink = Vec::new();
        let r = execute(&acts, frame, &mut umem, &mut sink);
        assert_eq!(r, ExecResult { sent: 3, ..Default::default() });
        let ports: Vec<_> = sink.iter().map(|(p, _)| p.0).collect();
        assert_eq!(ports, [1, 2, 3]);
        assert_eq!(sink[2].1.addr(), orig_addr, "the last output moves the original frame");
        assert_eq!(umem.data(&sink[0].1), &f[..]);
        assert_eq!(umem.data(&sink[1].1)[..6], [7; 6]);
        assert_eq!(umem.data(&sink[2].1)[..6], [7; 6]);
        for (_, fr) in sink {
            umem.free(fr);
        }
        assert_eq!(umem.n_free(), 4);
    }

    #[test]
    fn empty_pool_skips_copies_and_no_output_frees() {
        let mut umem = Umem::new(1).unwrap();
        let frame = umem.frame_from(&udp4()).unwrap();
        let mut sink = Vec::new();
        let acts = [DpAction::Output(DpPortNo(1)), DpAction::Output(DpPortNo(2))];
        let r = execute(&acts, frame, &mut umem, &mut sink);
        assert_eq!(r, ExecResult { sent: 1, copy_failed: 1, ..Default::default() });
        assert_eq!(sink.len(), 1);
        umem.free(sink.pop().unwrap().1);
        let frame = umem.frame_from(&udp4()).unwrap();
        let r = execute(&[DpAction::SetTpSrc(1)], frame, &mut umem, &mut sink);
        assert_eq!(r.dropped, Some(ExecDrop::NoOutput));
        assert_eq!(umem.n_free(), 1);
        for (i, d) in ExecDrop::ALL.iter().enumerate() {
            assert!(ExecDrop::ALL[..i].iter().all(|e| e.name() != d.name()));
            assert_eq!(*d as usize, i);
            assert!(!d.name().is_empty());
        }
    }

    #[test]
    fn push_without_headroom_drops() {
        let f = udp4();
        let push = DpAction::PushVlan { tpid: 0x8100, tci: 1 };
        let room = crate::netdev::FRAME_HEADROOM as usize / vlan::TAG_LEN;
        let mut acts = vec![push.clone(); room];
        let g = apply(&acts, &f);
        assert_eq!(g.len(), f.len() + room * 4);
        acts.push(push);
        acts.push(DpAction::Output(DpPortNo(1)));
        let (r, out) = run(&acts, &f);
        assert_eq!((r.dropped, out.len()), (Some(ExecDrop::Malformed), 0));
    }

    fn frame_strategy() -> impl Strategy<Value = Vec<u8>> {
        (0usize..9, any::<u16>(), any::<u16>(), 0usize..64, prop::option::of(0u16..0x1000), any::<[u8; 4]>())
            .prop_map(|(which, sport, dport, payload_len, vlan, ip)| {
                let u4 = Udp4Spec { sport, dport, payload_len, vlan, src_ip: ip, ..Default::default() };
                let u6 = Udp6Spec { sport, dport, payload_len, vlan, ..Default::default() };
                let eth = EthSpec { vlan, ..Default::default() };
                match which {
                    0 => build::udp4(&u4),
                    1 => build::tcp4(&Tcp4Spec { ip: u4, flags: sport & 0xfff }),
                    2 => build::icmp4_echo(&Icmp4EchoSpec { eth, payload_len, ..Default::default() }),
                    3 => build::udp6(&u6),
                    4 => build::tcp6(&Tcp6Spec { ip: u6, flags: dport & 0xfff }),
                    5 => build::icmp6_echo(&Icmp6EchoSpec { eth, payload_len, ..Default::default() }),
                    6 => build::sctp4(&eth, ip, [1; 4], sport, dport, payload_len),
                    7 => {
                        let mut f = build::udp4(&u4);
                        let at = if vlan.is_some() { 44 } else { 40 };
                        build::poke16(&mut f, at, 0);
                        f
                    }
                    _ => build::arp_request([2; 6], ip, [3; 4], vlan),
                }
            })
    }

    fn set_action() -> impl Strategy<Value = DpAction> {
        prop_oneof![
            any::<[u8; 6]>().prop_map(DpAction::SetEthSrc),
            any::<[u8; 6]>().prop_map(DpAction::SetEthDst),
            any::<[u8; 4]>().prop_map(DpAction::SetIpv4Src),
            any::<[u8; 4]>().prop_map(DpAction::SetIpv4Dst),
            any::<[u8; 16]>().prop_map(DpAction::SetIpv6Src),
            any::<[u8; 16]>().prop_map(DpAction::SetIpv6Dst),
            any::<u8>().prop_map(DpAction::SetIpDscp),
            (2u8..=255).prop_map(DpAction::SetIpTtl),
            any::<u16>().prop_map(DpAction::SetTpSrc),
            any::<u16>().prop_map(DpAction::SetTpDst),
            any::<u16>().prop_map(DpAction::SetVlanTci),
        ]
    }

    fn any_action() -> impl Strategy<Value = DpAction> {
        prop_oneof![
            3 => set_action(),
            2 => (0u32..4).prop_map(|p| DpAction::Output(DpPortNo(p))),
            1 => Just(DpAction::DecIpTtl),
            1 => (prop_oneof![Just(0x8100u16), Just(0x88a8)], any::<u16>())
                .prop_map(|(tpid, tci)| DpAction::PushVlan { tpid, tci }),
            1 => Just(DpAction::PopVlan),
            1 => (0u32..3).prop_map(DpAction::Userspace),
            1 => (0u32..3).prop_map(DpAction::Meter),
        ]
    }

    proptest! {
        /// Incremental checksum updates equal a full recompute, and the key shows the values.
        #[test]
        fn set_fields_keep_checksums(f in frame_strategy(), acts in prop::collection::vec(set_action(), 1..6)) {
            let g = apply(&acts, &f);
            let mut full = g.clone();
            build::fill_checksums(&mut full);
            prop_assert_eq!(&g, &full);
            let k = key(&g);
            let before = key(&f);
            let is_ip = matches!(before.dl_type, 0x0800 | 0x86dd);
            let has_ports = matches!(before.nw_proto, 6 | 17 | 132) && is_ip;
            let last = |f: &dyn Fn(&DpAction) -> bool| acts.iter().rev().find(|a| f(a)).cloned();
            if let Some(DpAction::SetEthSrc(m)) = last(&|a| matches!(a, DpAction::SetEthSrc(_))) {
                prop_assert_eq!(k.dl_src, m);
            }
            if let Some(DpAction::SetEthDst(m)) = last(&|a| matches!(a, DpAction::SetEthDst(_))) {
                prop_assert_eq!(k.dl_dst, m);
            }
            if let Some(DpAction::SetTpSrc(p)) = last(&|a| matches!(a, DpAction::SetTpSrc(_))) {
                prop_assert_eq!(k.tp_src, if has_ports { p } else { before.tp_src });
            }
            if let Some(DpAction::SetTpDst(p)) = last(&|a| matches!(a, DpAction::SetTpDst(_))) {
                prop_assert_eq!(k.tp_dst, if has_ports { p } else { before.tp_dst });
            }
            if let Some(DpAction::SetIpv4Dst(a)) = last(&|a| matches!(a, DpAction::SetIpv4Dst(_))) {
                if before.dl_type == 0x0800 {
                    prop_assert_eq!(k.ipv4_dst(), a);
                }
            }
            if let Some(DpAction::SetIpv6Src(a)) = last(&|a| matches!(a, DpAction::SetIpv6Src(_))) {
                if before.dl_type == 0x86dd {
                    prop_assert_eq!(k.nw_src, a);
                }
            }
            if let Some(DpAction::SetIpTtl(t)) = last(&|a| matches!(a, DpAction::SetIpTtl(_))) {
                prop_assert_eq!(k.nw_ttl, if is_ip { t } else { 0 });
            }
            if let Some(DpAction::SetIpDscp(d)) = last(&|a| matches!(a, DpAction::SetIpDscp(_))) {
                if is_ip {
                    prop_assert_eq!(k.nw_tos, ((d & 0x3f) << 2) | (before.nw_tos & 3));
                }
            }
            if let Some(DpAction::SetVlanTci(t)) = last(&|a| matches!(a, DpAction::SetVlanTci(_))) {
                if before.vlan_tci != 0 {
                    prop_assert_eq!(k.vlan_tci, t | VLAN_PRESENT);
                }
            }
        }

        /// Any run of header changes (set-fields, TTL decrements, VLAN pushes and pops), with
        /// outputs in between: every frame sent carries the checksums a full recompute gives.
        #[test]
        fn header_changes_keep_checksums_at_every_output(
            f in frame_strategy(),
            acts in prop::collection::vec(prop_oneof![
                4 => set_action(),
                1 => Just(DpAction::DecIpTtl),
                1 => any::<u16>().prop_map(|tci| DpAction::PushVlan { tpid: 0x8100, tci }),
                1 => Just(DpAction::PopVlan),
                2 => Just(DpAction::Output(DpPortNo(1))),
            ], 1..12),
        ) {
            let mut acts = acts;
            acts.push(DpAction::Output(DpPortNo(1)));
            let (r, out) = run(&acts, &f);
            if r.dropped.is_none() {
                let n_out = acts.iter().filter(|a| matches!(a, DpAction::Output(_))).count();
                prop_assert_eq!(out.len(), n_out);
            }
            for (_, g) in &out {
                let mut full = g.clone();
                build::fill_checksums(&mut full);
                prop_assert_eq!(g, &full);
            }
        }

        /// With copies to the slow path and meters (meter 0 drops, the others pass): no frame
        /// leaks, every copy the result counts reached the sink, and nothing runs after a drop.
        #[test]
        fn userspace_and_meters_never_lose_frames(
            f in frame_strategy(), acts in prop::collection::vec(any_action(), 0..10),
        ) {
            let (r, rec) = record(&acts, &f, &[0], usize::MAX);
            prop_assert_eq!(r.to_userspace as usize, rec.up.len());
            prop_assert_eq!(r.sent as usize, rec.out.len());
            let first_closed = acts.iter().position(|a| *a == DpAction::Meter(0));
            if let Some(at) = first_closed {
                let ttl_or_push = acts[..at].iter().any(|a| matches!(a, DpAction::DecIpTtl | DpAction::PushVlan { .. }));
                if !ttl_or_push {
                    prop_assert_eq!(r.dropped, Some(ExecDrop::Meter));
                }
                let before = |f: &dyn Fn(&DpAction) -> bool| acts[..at].iter().filter(|a| f(a)).count();
                prop_assert!(rec.up.len() <= before(&|a| matches!(a, DpAction::Userspace(_))));
                prop_assert!(rec.out.len() <= before(&|a| matches!(a, DpAction::Output(_))));
            }
        }

        /// Every frame ends with the sink or back in the pool, whatever the actions.
        #[test]
        fn frames_are_never_lost(
            f in frame_strategy(), acts in prop::collection::vec(any_action(), 0..10), n_chunks in 1u32..4,
        ) {
            let mut umem = Umem::new(n_chunks).unwrap();
            let frame = umem.frame_from(&f).unwrap();
            let mut sink = Vec::new();
            let r = execute(&acts, frame, &mut umem, &mut sink);
            prop_assert_eq!(r.sent as usize, sink.len());
            let n_out = acts.iter().filter(|a| matches!(a, DpAction::Output(_))).count();
            if r.dropped.is_none() {
                prop_assert_eq!(r.sent + r.copy_failed, n_out as u32);
            }
            for (_, fr) in sink {
                // Outputs are well formed enough to extract or be refused, never panic.
                let mut k = FlowKey::default();
                let _ = extract(umem.data(&fr), 0, &mut k);
                umem.free(fr);
            }
            prop_assert_eq!(umem.n_free(), n_chunks as usize);
        }
    }
}
