//! Random frames through the underlay classification and GRE decapsulation of
//! `datapath::tunnel`: never panics; every frame is either dropped with a reason, sent to the
//! slow path, or decapsulated to an inner Ethernet frame that lies inside the input. The
//! verdict must equal the one a separate, byte-level reading of the rules gives (below), and
//! the inner frame, stripped as the poll thread strips it, goes through the key extractor.
//! Then the input itself is encapsulated with a tunnel template and must come back out whole.
//!
//! Input: one control byte, then the frame. Control bits: 0 = rewrite the outer IPv4
//! header checksum, 1 = rewrite the GRE checksum (when the C bit is set), 2 = rewrite the
//! destination MAC to the underlay's (so mutations get past the checksums and the MAC);
//! 3-4 = the sending tunnel's source, 5-6 = its key mode, 7 = checksum and sequence number.
#![no_main]

use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use xdpswitch::datapath::extract::extract;
use xdpswitch::datapath::flow::FlowKey;
use xdpswitch::datapath::tunnel::{
    classify_underlay, KeyMode, Template, TunnelConfig, TunnelHeader, TunnelMap, TunnelMeta, UnderlayDrop,
    UnderlayPort, UnderlayVerdict,
};
use xdpswitch::netdev::{DpPortNo, CHUNK_SIZE, FRAME_HEADROOM};
use xdpswitch::packet::{checksum, gre, Buf};

const U_IP: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);
const U_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const NH_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const REMOTES: [Ipv4Addr; 4] = [
    Ipv4Addr::new(198, 19, 0, 2),
    Ipv4Addr::new(198, 19, 0, 3),
    Ipv4Addr::new(198, 19, 0, 4),
    Ipv4Addr::new(198, 19, 0, 5),
];

/// The receiving side's tunnels: (port, remote, local, in_key). Exact keys and `flow` share
/// remotes, one remote has two tunnels with the same fixed key (the first wins), one tunnel
/// ends on another local address, and REMOTES[3] has none.
fn tunnels() -> Vec<(u32, Ipv4Addr, Ipv4Addr, KeyMode)> {
    vec![
        (10, REMOTES[0], U_IP, KeyMode::Flow),
        (11, REMOTES[1], U_IP, KeyMode::Fixed(0x64)),
        (12, REMOTES[1], U_IP, KeyMode::None),
        (13, REMOTES[2], U_IP, KeyMode::Flow),
        (14, REMOTES[2], U_IP, KeyMode::Fixed(7)),
        (15, REMOTES[2], U_IP, KeyMode::Fixed(7)),
        (16, REMOTES[0], Ipv4Addr::new(198, 19, 0, 9), KeyMode::Flow),
    ]
}

fn config(remote: Ipv4Addr, local: Ipv4Addr, key: KeyMode) -> TunnelConfig {
    TunnelConfig { in_key: key, out_key: key, ..TunnelConfig::flow_keyed(local, remote) }
}

fn underlay() -> UnderlayPort {
    UnderlayPort { port: DpPortNo(20), ip: U_IP, mac: U_MAC }
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The tunnel a GRE packet from `src` to `dst` with `key` belongs to: the first with an
/// exact key (a fixed key equal to it, or no key for a keyless packet), else the first
/// `key=flow` one.
fn tunnel_for(src: u32, dst: u32, key: Option<u32>) -> Option<DpPortNo> {
    let t = tunnels();
    let ends = |r: Ipv4Addr, l: Ipv4Addr| u32::from(r) == src && u32::from(l) == dst;
    let exact = t.iter().find(|&&(_, r, l, k)| {
        ends(r, l)
            && match (k, key) {
                (KeyMode::Fixed(want), Some(got)) => want == got,
                (KeyMode::None, None) => true,
                _ => false,
            }
    });
    let flow = || t.iter().find(|&&(_, r, l, k)| ends(r, l) && k == KeyMode::Flow);
    exact.or_else(flow).map(|&(p, ..)| DpPortNo(p))
}

/// The verdict, read off the bytes: the module's rules written out again, check by check.
fn expected(f: &[u8]) -> UnderlayVerdict {
    use UnderlayDrop::*;
    use UnderlayVerdict::{Decap, Drop, SlowPath};
    if f.len() < 14 {
        return Drop(Truncated);
    }
    match be16(f, 12) {
        0x0806 => return SlowPath,
        0x0800 => {}
        _ => return Drop(NotForUs),
    }
    if f[..6] != U_MAC {
        return Drop(NotForUs);
    }
    let ip = &f[14..];
    if ip.len() < 20 || ip[0] >> 4 != 4 {
        return Drop(Truncated);
    }
    let (hl, total) = (usize::from(ip[0] & 0xf) * 4, usize::from(be16(ip, 2)));
    if hl < 20 || total < hl || total > ip.len() {
        return Drop(Truncated);
    }
    let fragment = be16(ip, 6) & 0x3fff != 0;
    if ip[16..20] != U_IP.octets() || fragment {
        return Drop(NotForUs);
    }
    if checksum::checksum(&ip[..hl]) != 0 {
        return Drop(BadCsum);
    }
    let payload = &ip[hl..total];
    match ip[9] {
        47 => {}
        1 if payload.len() >= 8 && payload[0] == 8 => return SlowPath,
        _ => return Drop(NotForUs),
    }
    if payload.len() < 4 {
        return Drop(Truncated);
    }
    let flags = be16(payload, 0);
    // Routing, strict source route, recursion bit 5, version.
    if flags & 0x4c07 != 0 {
        return Drop(BadGre);
    }
    let (c, k, s) = (flags & 0x8000 != 0, flags & 0x2000 != 0, flags & 0x1000 != 0);
    let ghl = 4 + 4 * (usize::from(c) + usize::from(k) + usize::from(s));
    if payload.len() < ghl {
        return Drop(Truncated);
    }
    if be16(payload, 2) != 0x6558 {
        return Drop(BadGre);
    }
    if c && checksum::checksum(payload) != 0 {
        return Drop(BadCsum);
    }
    let inner_len = payload.len() - ghl;
    if inner_len < 14 {
        return Drop(Truncated);
    }
    let key = k.then(|| be32(payload, if c { 8 } else { 4 }));
    let (src, dst) = (be32(ip, 12), be32(ip, 16));
    let Some(port) = tunnel_for(src, dst, key) else { return Drop(NoPort) };
    Decap {
        port,
        meta: TunnelMeta { tun_id: u64::from(key.unwrap_or(0)), tun_src: src, tun_dst: dst },
        strip: 14 + hl + ghl,
        inner_len,
    }
}

/// Rewrites the checksums the control byte asks for (when the headers are there).
fn fix_up(ctrl: u8, f: &mut [u8]) {
    if ctrl & 4 != 0 && f.len() >= 6 {
        f[..6].copy_from_slice(&U_MAC);
    }
    if f.len() < 34 {
        return;
    }
    let hl = usize::from(f[14] & 0xf) * 4;
    if hl < 20 || 14 + hl > f.len() {
        return;
    }
    if ctrl & 1 != 0 {
        f[24..26].fill(0);
        let c = checksum::checksum(&f[14..14 + hl]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
    }
    let total = usize::from(be16(f, 16));
    let end = (14 + total).min(f.len());
    let g = 14 + hl;
    if ctrl & 2 != 0 && end >= g + 8 && f[g] & 0x80 != 0 {
        f[g + 4..g + 6].fill(0);
        let c = checksum::checksum(&f[g..end]);
        f[g + 4..g + 6].copy_from_slice(&c.to_be_bytes());
    }
}

/// Strips the outer headers the way the poll thread does (in a buffer with the datapath's
/// headroom), and runs the inner frame through the key extractor.
fn decap(f: &[u8], port: DpPortNo, strip: usize, inner_len: usize) -> Vec<u8> {
    let head = FRAME_HEADROOM as usize;
    let mut room = vec![0u8; head + f.len()];
    room[head..].copy_from_slice(f);
    let mut b = Buf::new(&mut room, head, f.len());
    b.pull_head(strip).expect("strip lies inside the frame");
    b.set_len(inner_len).expect("the inner frame lies inside the frame");
    let inner = b.data().to_vec();
    let mut k = FlowKey::default();
    let _ = extract(&inner, port.0, &mut k);
    assert_eq!(k.in_port, port.0);
    inner
}

fn check(map: &TunnelMap, f: &[u8]) -> UnderlayVerdict {
    let v = classify_underlay(map, &underlay(), f);
    assert_eq!(v, expected(f), "frame {f:02x?}");
    if let UnderlayVerdict::Decap { port, strip, inner_len, .. } = v {
        assert!(inner_len >= 14 && strip.checked_add(inner_len).is_some_and(|e| e <= f.len()));
        let inner = decap(f, port, strip, inner_len);
        assert_eq!(inner, f[strip..strip + inner_len]);
        // The GRE header, read and written again, reads the same.
        let at = 14 + usize::from(f[14] & 0xf) * 4;
        let g = gre::Packet::new_checked(&f[at..strip + inner_len]).expect("a decapsulated GRE header");
        assert_eq!(at + g.header_len(), strip);
        {
            let repr = gre::Repr::parse(&g);
            let mut hdr = [0u8; gre::MAX_HEADER_LEN];
            repr.emit(&mut hdr);
            let again = gre::Packet::new_checked(&hdr[..repr.header_len()]).expect("emitted GRE header");
            assert_eq!(gre::Repr::parse(&again), repr);
        }
    }
    v
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctrl, frame)) = data.split_first() else { return };
    let cfgs = tunnels().into_iter().map(|(p, r, l, k)| (DpPortNo(p), config(r, l, k))).collect();
    let map = TunnelMap::new(cfgs, vec![underlay()]);
    check(&map, frame);
    let mut f = frame.to_vec();
    fix_up(ctrl, &mut f);
    check(&map, &f);

    // encap then decap gives the frame back, on the tunnel the rules pick.
    if frame.len() < 14 {
        return;
    }
    let key = match (ctrl >> 5) & 3 {
        0 => KeyMode::None,
        1 => KeyMode::Fixed(0x64),
        2 => KeyMode::Fixed(7),
        _ => KeyMode::Flow,
    };
    let sender = TunnelConfig {
        csum: ctrl & 0x80 != 0,
        seq: ctrl & 0x80 != 0,
        ..config(U_IP, REMOTES[usize::from((ctrl >> 3) & 3)], key)
    };
    let hdr = TunnelHeader { underlay: DpPortNo(1), eth_src: NH_MAC, eth_dst: U_MAC, mtu: 1500 };
    let tpl = Template::new(&sender, &hdr);
    let head = FRAME_HEADROOM as usize;
    let mut room = vec![0u8; CHUNK_SIZE as usize];
    let n = frame.len().min(room.len() - head);
    room[head..head + n].copy_from_slice(&frame[..n]);
    let mut b = Buf::new(&mut room, head, n);
    let flow_key = u32::from(frame[0]) << 8 | u32::from(frame[1]);
    if tpl.encap(&mut b, flow_key, 5, 1, CHUNK_SIZE as usize - head).is_err() {
        assert!(n + tpl.len() - 14 > 1500, "a {n}-byte frame fits");
        return;
    }
    let wire = b.data().to_vec();
    let sent_key = match key {
        KeyMode::None => None,
        KeyMode::Fixed(k) => Some(k),
        KeyMode::Flow => Some(flow_key),
    };
    match check(&map, &wire) {
        UnderlayVerdict::Decap { port, meta, strip, inner_len } => {
            assert_eq!(wire[strip..strip + inner_len], frame[..n]);
            assert_eq!(meta.tun_id, u64::from(sent_key.unwrap_or(0)));
            assert_eq!(Some(port), tunnel_for(meta.tun_src, meta.tun_dst, sent_key));
        }
        v => assert_eq!(
            (v, tunnel_for(u32::from(sender.local_ip), u32::from(U_IP), sent_key)),
            (UnderlayVerdict::Drop(UnderlayDrop::NoPort), None)
        ),
    }
});
