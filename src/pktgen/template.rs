//! Frame templates for the generators.
//!
//! A [`Template`] is the frame handed to `BPF_PROG_RUN` as `data_in`, plus the partial
//! checksums `bpf/pktgen.c` needs: the program writes the varying fields (source port, low
//! 16 bits of the source address, lengths, an optional stamp) with absolute values and
//! completes the checksums from base sums computed here with those fields zeroed.
//! [`Template::render`] is a reference of what the program produces, used by tests;
//! [`Template::render_into`] (the same code, in place) is how the AF_XDP generator
//! ([`super::afxdp`]) writes every frame.

use std::net::{IpAddr, Ipv4Addr};

/// Ethernet header length.
pub const ETH_HLEN: usize = 14;
/// Smallest frame we generate (Ethernet minimum without FCS).
pub const MIN_FRAME: usize = 60;
/// Bytes of the optional stamp at the start of the L4 payload: magic, sequence, ns time.
pub const STAMP_LEN: usize = 16;
/// The stamp's magic, "xdpg" (same as bpf/pktgen.c and bpf/sink.c).
pub const STAMP_MAGIC: u32 = 0x7864_7067;
/// IMIX frame sizes (small, medium, large), in a 7:4:1 mix.
pub const IMIX_SIZES: [usize; 3] = [64, 594, 1518];
/// The IMIX cycle as bpf/pktgen.c runs it: indexes into [`IMIX_SIZES`].
pub const IMIX_CYCLE: [usize; 12] = [0, 1, 0, 1, 0, 0, 1, 0, 0, 1, 0, 2];

/// Transport protocol of generated frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// UDP datagrams (IPv4 checksum 0, IPv6 checksum filled in).
    Udp,
    /// TCP SYN segments.
    Tcp,
}

/// A MAC address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl std::str::FromStr for MacAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut mac = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut mac {
            let part = parts.next().ok_or_else(|| format!("bad MAC address {s:?}"))?;
            *byte = u8::from_str_radix(part, 16).map_err(|_| format!("bad MAC address {s:?}"))?;
        }
        if parts.next().is_some() {
            return Err(format!("bad MAC address {s:?}"));
        }
        Ok(MacAddr(mac))
    }
}

impl std::fmt::Display for MacAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
    }
}

/// What every generated frame of a run looks like, before per-frame variation.
#[derive(Clone, Debug)]
pub struct FrameSpec {
    /// Source MAC.
    pub src_mac: MacAddr,
    /// Destination MAC.
    pub dst_mac: MacAddr,
    /// Base source address; its low 16 bits grow with the flow number past the port span.
    pub src_ip: IpAddr,
    /// Destination address (same family as `src_ip`).
    pub dst_ip: IpAddr,
    /// UDP or TCP SYN.
    pub proto: Proto,
    /// Base source port; flow `f` uses `src_port + f % port_span`.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
}

impl FrameSpec {
    /// Whether frames are IPv6.
    pub fn is_ipv6(&self) -> bool {
        self.src_ip.is_ipv6()
    }

    fn l3_hlen(&self) -> usize {
        if self.is_ipv6() {
            40
        } else {
            20
        }
    }

    fn l4_hlen(&self) -> usize {
        match self.proto {
            Proto::Udp => 8,
            Proto::Tcp => 20,
        }
    }

    /// Offset of the L4 payload (where the stamp goes).
    pub fn payload_offset(&self) -> usize {
        ETH_HLEN + self.l3_hlen() + self.l4_hlen()
    }

    /// The smallest frame that holds the headers (and the stamp, if asked for).
    pub fn min_len(&self, stamp: bool) -> usize {
        (self.payload_offset() + if stamp { STAMP_LEN } else { 0 }).max(MIN_FRAME)
    }

    /// Source ports used before the source address moves on: from `src_port` to 65535.
    pub fn port_span(&self) -> u32 {
        65536 - u32::from(self.src_port)
    }

    /// Low 16 bits of the source address.
    pub fn saddr_lo(&self) -> u16 {
        match self.src_ip {
            IpAddr::V4(a) => u16::from_be_bytes([a.octets()[2], a.octets()[3]]),
            IpAddr::V6(a) => u16::from_be_bytes([a.octets()[14], a.octets()[15]]),
        }
    }

    /// How many distinct flows this spec can spread over.
    pub fn max_flows(&self) -> u64 {
        u64::from(self.port_span()) * (65536 - u64::from(self.saddr_lo()))
    }

    /// Builds the template frame of `len` bytes (no FCS) and its base checksums.
    ///
    /// `len` must be at least [`FrameSpec::min_len`] (checked by the caller).
    pub fn build(&self, len: usize) -> Template {
        let mut f = vec![0u8; len];
        f[0..6].copy_from_slice(&self.dst_mac.0);
        f[6..12].copy_from_slice(&self.src_mac.0);
        let l3 = ETH_HLEN;
        let proto_num: u8 = match self.proto {
            Proto::Udp => 17,
            Proto::Tcp => 6,
        };
        let l4 = l3 + self.l3_hlen();
        let mut ip_sum = 0;
        // Pseudo-header sum (addresses with the low 16 source bits zeroed, protocol; the
        // length word is added per frame).
        let mut pseudo = u32::from(u16::from_ne_bytes([0, proto_num]));
        match (self.src_ip, self.dst_ip) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
                f[l3] = 0x45;
                f[l3 + 6] = 0x40; // DF
                f[l3 + 8] = 64; // TTL
                f[l3 + 9] = proto_num;
                f[l3 + 12..l3 + 14].copy_from_slice(&s.octets()[..2]);
                f[l3 + 16..l3 + 20].copy_from_slice(&d.octets());
                ip_sum = sum16(&f[l3..l3 + 20]);
                pseudo += sum16(&f[l3 + 12..l3 + 20]);
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                f[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
                f[l3] = 0x60;
                f[l3 + 6] = proto_num;
                f[l3 + 7] = 64; // hop limit
                f[l3 + 8..l3 + 22].copy_from_slice(&s.octets()[..14]);
                f[l3 + 24..l3 + 40].copy_from_slice(&d.octets());
                pseudo += sum16(&f[l3 + 8..l3 + 40]);
            }
            _ => unreachable!("FrameSpec addresses of different families"),
        }
        f[l4 + 2..l4 + 4].copy_from_slice(&self.dst_port.to_be_bytes());
        if self.proto == Proto::Tcp {
            f[l4 + 4..l4 + 8].copy_from_slice(&1u32.to_be_bytes()); // seq
            f[l4 + 12] = 5 << 4; // data offset
            f[l4 + 13] = 0x02; // SYN
            f[l4 + 14..l4 + 16].copy_from_slice(&0xffffu16.to_be_bytes()); // window
        }
        let l4_sum = fold(pseudo + sum16(&f[l4..l4 + self.l4_hlen()]));
        let l4_csum = self.is_ipv6() || self.proto == Proto::Tcp;
        Template {
            frame: f,
            ip_sum: fold(ip_sum),
            l4_sum,
            l4_csum,
            outer_len: 0,
            outer_ip_sum: 0,
            spec: self.clone(),
        }
    }

    /// [`FrameSpec::build`] for an inner frame of `inner_len` bytes, wrapped in `outer`'s
    /// GRE headers: the template frame is `outer.header_len() + inner_len` bytes.
    pub fn build_gre(&self, inner_len: usize, outer: &GreOuter) -> Template {
        let inner = self.build(inner_len);
        let (mut frame, outer_ip_sum) = outer.build();
        frame.extend_from_slice(&inner.frame);
        Template { frame, outer_len: outer.header_len(), outer_ip_sum, ..inner }
    }
}

/// A template frame and the base sums `bpf/pktgen.c` completes per frame.
#[derive(Clone, Debug)]
pub struct Template {
    /// The frame passed as `data_in` (varying fields are zero).
    pub frame: Vec<u8>,
    /// One's-complement sum (native-endian 16-bit words, folded) of the IPv4 header with
    /// checksum, total length and the low source address word zeroed.
    pub ip_sum: u16,
    /// Same for the L4 checksum: pseudo-header and L4 header, varying fields zeroed.
    pub l4_sum: u16,
    /// Whether the L4 checksum is filled in (TCP, or UDP over IPv6); UDP/IPv4 leaves 0.
    pub l4_csum: bool,
    /// Bytes of outer headers before the inner frame (0, or [`GreOuter::header_len`]).
    pub outer_len: usize,
    /// One's-complement sum of the outer IPv4 header with its total length and checksum
    /// zeroed (0 without outer headers); the program adds the total length per frame.
    pub outer_ip_sum: u16,
    spec: FrameSpec,
}

/// The outer headers of GRE-encapsulated frames (`pktgen send --gre-remote`): Ethernet,
/// IPv4 (DF, TTL 64, ID 0, protocol 47) and GRE version 0 carrying transparent Ethernet
/// bridging (0x6558), with a key when `key` is set (RFC 2784 + RFC 2890). No GRE checksum
/// or sequence number, so only the outer total length and IPv4 checksum vary with the frame
/// size: `bpf/pktgen.c` writes those two.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GreOuter {
    /// Outer source MAC.
    pub src_mac: MacAddr,
    /// Outer destination MAC (the tunnel endpoint's, or its next hop's).
    pub dst_mac: MacAddr,
    /// Outer source address (the tunnel's remote end, as the receiver sees it).
    pub src_ip: Ipv4Addr,
    /// Outer destination address (the receiving tunnel endpoint).
    pub dst_ip: Ipv4Addr,
    /// The GRE key, if any.
    pub key: Option<u32>,
}

/// GRE protocol type of an Ethernet payload (transparent Ethernet bridging).
pub const GRE_PROTO_TEB: u16 = 0x6558;

impl GreOuter {
    /// Outer Ethernet + IPv4 + GRE bytes: 38, or 42 with a key.
    pub fn header_len(&self) -> usize {
        ETH_HLEN + 20 + if self.key.is_some() { 8 } else { 4 }
    }

    /// The outer headers with the IPv4 total length and checksum zeroed, and the sum the
    /// per-frame checksum starts from.
    fn build(&self) -> (Vec<u8>, u16) {
        let mut h = vec![0u8; self.header_len()];
        h[0..6].copy_from_slice(&self.dst_mac.0);
        h[6..12].copy_from_slice(&self.src_mac.0);
        h[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        let ip = &mut h[ETH_HLEN..ETH_HLEN + 20];
        ip[0] = 0x45;
        ip[6] = 0x40; // DF, as Open vSwitch sends tunnel packets
        ip[8] = 64;
        ip[9] = 47;
        ip[12..16].copy_from_slice(&self.src_ip.octets());
        ip[16..20].copy_from_slice(&self.dst_ip.octets());
        let sum = fold(sum16(ip));
        let gre = &mut h[ETH_HLEN + 20..];
        if let Some(k) = self.key {
            gre[0] = 0x20; // K
            gre[4..8].copy_from_slice(&k.to_be_bytes());
        }
        gre[2..4].copy_from_slice(&GRE_PROTO_TEB.to_be_bytes());
        (h, sum)
    }
}

impl Template {
    /// The frame `bpf/pktgen.c` sends for `flow` at length `len`, with `stamp = (seq, ns)`:
    /// a reference implementation of the program, for tests.
    pub fn render(&self, flow: u64, len: usize, stamp: Option<(u32, u64)>) -> Vec<u8> {
        let mut f = vec![0u8; len];
        self.render_into(&mut f, flow, stamp);
        f
    }

    /// Writes the frame for `flow` into `f` (its length is the frame length, at least the
    /// spec's [`FrameSpec::min_len`] plus the outer headers): the template, zero-extended or
    /// cut to `f.len()`, with the varying fields and checksums filled in. No allocation: the
    /// AF_XDP generator writes each frame straight into its UMEM chunk with this.
    pub fn render_into(&self, f: &mut [u8], flow: u64, stamp: Option<(u32, u64)>) {
        let (outer, f) = f.split_at_mut(self.outer_len);
        if self.outer_len > 0 {
            outer.copy_from_slice(&self.frame[..self.outer_len]);
            let tot_len = ((outer.len() + f.len() - ETH_HLEN) as u16).to_be_bytes();
            outer[ETH_HLEN + 2..ETH_HLEN + 4].copy_from_slice(&tot_len);
            let s = u32::from(self.outer_ip_sum) + u32::from(u16::from_ne_bytes(tot_len));
            outer[ETH_HLEN + 10..ETH_HLEN + 12].copy_from_slice(&(!fold(s)).to_ne_bytes());
        }
        let template = &self.frame[self.outer_len..];
        let spec = &self.spec;
        let len = f.len();
        let head = len.min(template.len());
        f[..head].copy_from_slice(&template[..head]);
        f[head..].fill(0);
        let span = u64::from(spec.port_span());
        let (port, ip) = ((flow % span) as u16, (flow / span) as u16);
        let l3 = ETH_HLEN;
        let l3_len = (len - ETH_HLEN) as u16;
        let l4 = l3 + spec.l3_hlen();
        let l4_len = l3_len - spec.l3_hlen() as u16;
        let saddr_lo = spec.saddr_lo().wrapping_add(ip).to_be_bytes();
        let mut l4_sum = u32::from(self.l4_sum) + u32::from(u16::from_ne_bytes(saddr_lo));
        if spec.is_ipv6() {
            f[l3 + 4..l3 + 6].copy_from_slice(&l4_len.to_be_bytes());
            f[l3 + 22..l3 + 24].copy_from_slice(&saddr_lo);
        } else {
            f[l3 + 2..l3 + 4].copy_from_slice(&l3_len.to_be_bytes());
            f[l3 + 14..l3 + 16].copy_from_slice(&saddr_lo);
            let s = u32::from(self.ip_sum)
                + u32::from(u16::from_ne_bytes(l3_len.to_be_bytes()))
                + u32::from(u16::from_ne_bytes(saddr_lo));
            f[l3 + 10..l3 + 12].copy_from_slice(&(!fold(s)).to_ne_bytes());
        }
        let sport = spec.src_port.wrapping_add(port).to_be_bytes();
        f[l4..l4 + 2].copy_from_slice(&sport);
        let len_word = u32::from(u16::from_ne_bytes(l4_len.to_be_bytes()));
        l4_sum += u32::from(u16::from_ne_bytes(sport)) + len_word;
        let check_at = match spec.proto {
            Proto::Udp => {
                f[l4 + 4..l4 + 6].copy_from_slice(&l4_len.to_be_bytes());
                l4_sum += len_word;
                l4 + 6
            }
            Proto::Tcp => l4 + 16,
        };
        if let Some((seq, ns)) = stamp {
            let p = spec.payload_offset();
            f[p..p + 4].copy_from_slice(&STAMP_MAGIC.to_be_bytes());
            f[p + 4..p + 8].copy_from_slice(&seq.to_ne_bytes());
            f[p + 8..p + 16].copy_from_slice(&ns.to_ne_bytes());
            l4_sum += sum16(&f[p..p + 16]);
        }
        if self.l4_csum {
            let mut check = !fold(l4_sum);
            if spec.proto == Proto::Udp && check == 0 {
                check = 0xffff;
            }
            f[check_at..check_at + 2].copy_from_slice(&check.to_ne_bytes());
        }
    }
}

/// How the Ethernet addresses change from frame to frame (`--src-macs`, `--dst-macs`,
/// `--macs`, `--random-src-mac`). Frame `i` of a sending thread carries the source MAC
/// `src + i % src_count` and the destination MAC `dst + i % dst_count` (the sum taken in the
/// low 32 bits of the address, which [`MacPlan::check`] makes sure never carry), or with
/// `random_src` a fresh unicast, locally administered source MAC from a xorshift64
/// generator. `bpf/pktgen.c` does exactly this; [`MacCursor`] is the same in Rust (the
/// AF_XDP generator, and the reference for tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MacPlan {
    /// First source MAC.
    pub src: MacAddr,
    /// First destination MAC.
    pub dst: MacAddr,
    /// Distinct source MACs (1: always `src`).
    pub src_count: u32,
    /// Distinct destination MACs (1: always `dst`).
    pub dst_count: u32,
    /// A random source MAC per frame (then `src_count` is 1).
    pub random_src: bool,
}

impl MacPlan {
    /// Both addresses fixed.
    pub fn fixed(src: MacAddr, dst: MacAddr) -> MacPlan {
        MacPlan { src, dst, src_count: 1, dst_count: 1, random_src: false }
    }

    /// Whether any address changes per frame.
    pub fn varies(&self) -> bool {
        self.random_src || self.src_count > 1 || self.dst_count > 1
    }

    /// Low 32 bits of the first source MAC (bytes 2..6, big-endian).
    pub fn src_lo(&self) -> u32 {
        mac_lo(self.src)
    }

    /// Low 32 bits of the first destination MAC.
    pub fn dst_lo(&self) -> u32 {
        mac_lo(self.dst)
    }

    /// Checks the counts: at least 1, random and counted source MACs not both, and no range
    /// that would carry out of the low 32 bits of its base.
    pub fn check(&self) -> Result<(), String> {
        if self.src_count == 0 || self.dst_count == 0 {
            return Err("--src-macs, --dst-macs and --macs must be at least 1".into());
        }
        if self.random_src && self.src_count > 1 {
            return Err("--random-src-mac and --src-macs/--macs exclude each other".into());
        }
        for (what, base, n) in
            [("source", self.src, self.src_count), ("destination", self.dst, self.dst_count)]
        {
            if u64::from(mac_lo(base)) + u64::from(n) - 1 > u64::from(u32::MAX) {
                return Err(format!(
                    "{n} {what} MACs from {base} would carry past the low 32 bits: use a lower base"
                ));
            }
        }
        Ok(())
    }
}

fn mac_lo(m: MacAddr) -> u32 {
    u32::from_be_bytes([m.0[2], m.0[3], m.0[4], m.0[5]])
}

/// One sending thread's position in a [`MacPlan`]: which source and destination MAC comes
/// next, and the random generator's state.
#[derive(Clone, Copy, Debug)]
pub struct MacCursor {
    src: u32,
    dst: u32,
    rng: u64,
}

impl MacCursor {
    /// A cursor at frame 0 whose random MACs follow from `seed` (0 is replaced: xorshift
    /// would stay at 0).
    pub fn new(seed: u64) -> MacCursor {
        MacCursor { src: 0, dst: 0, rng: if seed == 0 { 0x9e37_79b9_7f4a_7c15 } else { seed } }
    }

    /// Writes the next frame's addresses into the Ethernet header at the start of `f` (at
    /// least 12 bytes), where `plan` makes them vary, and moves on. No allocation.
    pub fn write_next(&mut self, plan: &MacPlan, f: &mut [u8]) {
        if plan.dst_count > 1 {
            let i = self.dst;
            self.dst = if i + 1 >= plan.dst_count { 0 } else { i + 1 };
            f[2..6].copy_from_slice(&plan.dst_lo().wrapping_add(i).to_be_bytes());
        }
        if plan.random_src {
            f[6..12].copy_from_slice(&random_mac(self.next_random()).0);
        } else if plan.src_count > 1 {
            let i = self.src;
            self.src = if i + 1 >= plan.src_count { 0 } else { i + 1 };
            f[8..12].copy_from_slice(&plan.src_lo().wrapping_add(i).to_be_bytes());
        }
    }

    /// xorshift64 (13, 7, 17): one step.
    fn next_random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }
}

/// The MAC made of the top 48 bits of `x`, made unicast (bit 0 of the first octet clear) and
/// locally administered (bit 1 set).
pub fn random_mac(x: u64) -> MacAddr {
    let b = (x >> 16).to_be_bytes();
    MacAddr([(b[2] & 0xfc) | 0x02, b[3], b[4], b[5], b[6], b[7]])
}

/// One's-complement sum of native-endian 16-bit words (unfolded); `b` has even length.
fn sum16(b: &[u8]) -> u32 {
    b.chunks_exact(2).map(|w| u32::from(u16::from_ne_bytes([w[0], w[1]]))).sum()
}

/// Folds a 32-bit one's-complement sum to 16 bits.
fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};

    fn spec(v6: bool, proto: Proto) -> FrameSpec {
        let (s, d): (IpAddr, IpAddr) = if v6 {
            ("fd00::1:fff0".parse().unwrap(), "fd00::2".parse().unwrap())
        } else {
            ("10.0.255.250".parse().unwrap(), "10.0.0.2".parse().unwrap())
        };
        FrameSpec {
            src_mac: "02:00:00:00:00:01".parse().unwrap(),
            dst_mac: "02:00:00:00:00:02".parse().unwrap(),
            src_ip: s,
            dst_ip: d,
            proto,
            src_port: 65000,
            dst_port: 9,
        }
    }

    /// Every variant, several flows (crossing the port span), sizes and stamps: the
    /// reference rendering parses and its checksums verify.
    #[test]
    fn rendered_frames_are_valid() {
        for v6 in [false, true] {
            for proto in [Proto::Udp, Proto::Tcp] {
                let spec = spec(v6, proto);
                let t = spec.build(1518);
                for len in [spec.min_len(true), 64, 100, 594, 1518] {
                    for flow in [0u64, 1, 535, 536, 3000] {
                        for stamp in [None, Some((7, 0x1234_5678_9abc_def0))] {
                            if len < spec.min_len(stamp.is_some()) {
                                continue;
                            }
                            let f = t.render(flow, len, stamp);
                            check(&f, &spec, flow, len);
                        }
                    }
                }
            }
        }
    }

    /// GRE-wrapped frames: the outer IPv4 header has the right length and a valid checksum
    /// at every size, the GRE header carries the key and 0x6558 (read back with the crate's
    /// own GRE view), and the inner frame is exactly what the plain template renders.
    #[test]
    fn gre_frames_wrap_the_inner_frame() {
        use crate::packet::{checksum, gre};
        let spec = spec(false, Proto::Udp);
        for key in [None, Some(0x64), Some(0xffff_fffe)] {
            let outer = GreOuter {
                src_mac: "02:00:00:00:01:01".parse().unwrap(),
                dst_mac: "02:00:00:00:01:02".parse().unwrap(),
                src_ip: Ipv4Addr::new(198, 19, 0, 9),
                dst_ip: Ipv4Addr::new(198, 19, 0, 1),
                key,
            };
            let olen = outer.header_len();
            assert_eq!(olen, if key.is_some() { 42 } else { 38 });
            let t = spec.build_gre(1518, &outer);
            assert_eq!((t.outer_len, t.frame.len()), (olen, olen + 1518));
            let plain = spec.build(1518);
            for inner_len in [60, 64, 594, 1518] {
                for flow in [0u64, 7, 3000] {
                    let f = t.render(flow, olen + inner_len, None);
                    assert_eq!(&f[0..6], &outer.dst_mac.0);
                    assert_eq!(&f[6..12], &outer.src_mac.0);
                    assert_eq!(&f[12..14], &[0x08, 0x00]);
                    let ip = &f[ETH_HLEN..ETH_HLEN + 20];
                    assert!(checksum::verify(ip), "outer IPv4 checksum at {inner_len}");
                    assert_eq!(u16::from_be_bytes([ip[2], ip[3]]) as usize, f.len() - ETH_HLEN);
                    assert_eq!(
                        (ip[9], &ip[12..16], &ip[16..20]),
                        (47, &[198, 19, 0, 9][..], &[198, 19, 0, 1][..])
                    );
                    let g = gre::Packet::new_checked(&f[ETH_HLEN + 20..]).expect("a GRE header we accept");
                    assert_eq!(
                        (g.protocol(), g.key(), g.has_checksum(), g.has_seq()),
                        (0x6558, key, false, false)
                    );
                    assert_eq!(g.payload(), &plain.render(flow, inner_len, None)[..]);
                    check(g.payload(), &spec, flow, inner_len);
                }
            }
        }
    }

    fn check(f: &[u8], spec: &FrameSpec, flow: u64, len: usize) {
        assert_eq!(f.len(), len);
        let p = SlicedPacket::from_ethernet(f).expect("parses");
        let span = u64::from(spec.port_span());
        let sport = spec.src_port + (flow % span) as u16;
        let (src, dst, payload) = match p.net.expect("net") {
            NetSlice::Ipv4(ip) => {
                let h = ip.header().to_header();
                assert_eq!(h.header_checksum, h.calc_header_checksum(), "ipv4 header checksum");
                assert_eq!(usize::from(h.total_len), len - ETH_HLEN);
                let src = u16::from_be_bytes([h.source[2], h.source[3]]);
                (src, h, None::<etherparse::Ipv6Header>)
            }
            NetSlice::Ipv6(ip) => {
                let h = ip.header().to_header();
                assert_eq!(usize::from(h.payload_length), len - ETH_HLEN - 40);
                let src = u16::from_be_bytes([h.source[14], h.source[15]]);
                (src, Default::default(), Some(h))
            }
            NetSlice::Arp(_) => unreachable!(),
        };
        assert_eq!(src, spec.saddr_lo() + (flow / span) as u16);
        match p.transport.expect("transport") {
            TransportSlice::Udp(u) => {
                assert_eq!(spec.proto, Proto::Udp);
                assert_eq!(u.source_port(), sport);
                let h = u.to_header();
                let want = match &payload {
                    Some(v6) => h.calc_checksum_ipv6(v6, u.payload()).unwrap(),
                    None => {
                        assert_eq!(h.checksum, 0);
                        0
                    }
                };
                assert_eq!(h.checksum, want, "udp checksum");
            }
            TransportSlice::Tcp(t) => {
                assert_eq!(spec.proto, Proto::Tcp);
                assert!(t.syn());
                assert_eq!(t.source_port(), sport);
                let h = t.to_header();
                let want = match &payload {
                    Some(v6) => h.calc_checksum_ipv6(v6, t.payload()).unwrap(),
                    None => h.calc_checksum_ipv4(&dst, t.payload()).unwrap(),
                };
                assert_eq!(h.checksum, want, "tcp checksum");
            }
            _ => panic!("unexpected transport"),
        }
    }

    fn eth(f: &[u8]) -> (MacAddr, MacAddr) {
        (MacAddr(f[6..12].try_into().unwrap()), MacAddr(f[0..6].try_into().unwrap()))
    }

    /// Counted MACs cycle independently over their ranges; the rest of the frame is untouched.
    #[test]
    fn macs_cycle_over_ranges() {
        let mut spec = spec(false, Proto::Udp);
        // The template carries the first addresses; the cursor rewrites their low 32 bits.
        spec.src_mac = "02:10:00:00:ff:fe".parse().unwrap();
        spec.dst_mac = "02:20:00:00:00:00".parse().unwrap();
        let t = spec.build(64);
        let plan = MacPlan { src_count: 3, dst_count: 1000, ..MacPlan::fixed(spec.src_mac, spec.dst_mac) };
        plan.check().unwrap();
        let mut cur = MacCursor::new(1);
        let mut f = [0u8; 64];
        let mut dsts = std::collections::HashSet::new();
        for i in 0..2000u32 {
            t.render_into(&mut f, u64::from(i % 5), None);
            cur.write_next(&plan, &mut f);
            let (src, dst) = eth(&f);
            let want_src = ["02:10:00:00:ff:fe", "02:10:00:00:ff:ff", "02:10:00:01:00:00"][(i % 3) as usize];
            assert_eq!(src, want_src.parse().unwrap(), "frame {i}");
            assert_eq!(&dst.0[..2], &[0x02, 0x20]);
            assert_eq!(u32::from_be_bytes(dst.0[2..].try_into().unwrap()), i % 1000);
            dsts.insert(dst);
            check(&f, &spec, u64::from(i % 5), 64);
        }
        assert_eq!(dsts.len(), 1000);
    }

    /// A fixed plan leaves the template's addresses; a random source is unicast, locally
    /// administered and (nearly) never repeats.
    #[test]
    fn random_source_macs() {
        let spec = spec(true, Proto::Tcp);
        let t = spec.build(100);
        let mut f = [0u8; 100];
        t.render_into(&mut f, 0, None);
        let fixed = MacPlan::fixed(spec.src_mac, spec.dst_mac);
        assert!(!fixed.varies());
        MacCursor::new(7).write_next(&fixed, &mut f);
        assert_eq!(eth(&f), (spec.src_mac, spec.dst_mac));
        let plan = MacPlan { random_src: true, ..fixed };
        assert!(plan.varies());
        let mut cur = MacCursor::new(0);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..100_000 {
            cur.write_next(&plan, &mut f);
            let (src, dst) = eth(&f);
            assert_eq!(dst, spec.dst_mac);
            assert_eq!(src.0[0] & 0x03, 0x02, "unicast, locally administered: {src}");
            seen.insert(src);
        }
        assert!(seen.len() > 99_990, "{} distinct of 100000", seen.len());
        check(&f, &spec, 0, 100);
        // Two cursors with different seeds give different sequences.
        let (mut a, mut b) = (MacCursor::new(1), MacCursor::new(2));
        let (mut fa, mut fb) = ([0u8; 12], [0u8; 12]);
        a.write_next(&plan, &mut fa);
        b.write_next(&plan, &mut fb);
        assert_ne!(fa[6..12], fb[6..12]);
    }

    #[test]
    fn mac_plan_checks() {
        let base = MacPlan::fixed("02:00:ff:ff:ff:00".parse().unwrap(), "02:00:00:00:00:01".parse().unwrap());
        assert!(MacPlan { src_count: 256, ..base }.check().is_ok());
        let e = MacPlan { src_count: 257, ..base }.check().unwrap_err();
        assert!(e.contains("carry") && e.contains("02:00:ff:ff:ff:00"), "{e}");
        assert!(MacPlan { dst_count: 0, ..base }.check().is_err());
        assert!(MacPlan { src_count: 2, random_src: true, ..base }.check().is_err());
        assert!(MacPlan { dst_count: 1000, random_src: true, ..base }.check().is_ok());
        assert_eq!(random_mac(u64::MAX), "fe:ff:ff:ff:ff:ff".parse().unwrap());
        assert_eq!(random_mac(0), "02:00:00:00:00:00".parse().unwrap());
    }

    #[test]
    fn mac_parse() {
        assert_eq!("02:00:0a:0B:ff:01".parse::<MacAddr>().unwrap().0, [2, 0, 10, 11, 255, 1]);
        assert!("02:00:0a:0B:ff".parse::<MacAddr>().is_err());
        assert!("02:00:0a:0B:ff:01:02".parse::<MacAddr>().is_err());
    }
}
