//! Frame templates for the generators.
//!
//! A [`Template`] is the frame handed to `BPF_PROG_RUN` as `data_in`, plus the partial
//! checksums `bpf/pktgen.c` needs: the program writes the varying fields (source port, low
//! 16 bits of the source address, lengths, an optional stamp) with absolute values and
//! completes the checksums from base sums computed here with those fields zeroed.
//! [`Template::render`] is a reference of what the program produces, used by tests;
//! [`Template::render_into`] (the same code, in place) is how the AF_XDP generator
//! ([`super::afxdp`]) writes every frame.

use std::net::IpAddr;

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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
        Template { frame: f, ip_sum: fold(ip_sum), l4_sum, l4_csum, spec: self.clone() }
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
    spec: FrameSpec,
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
    /// spec's [`FrameSpec::min_len`]): the template, zero-extended or cut to `f.len()`, with
    /// the varying fields and checksums filled in. No allocation: the AF_XDP generator
    /// writes each frame straight into its UMEM chunk with this.
    pub fn render_into(&self, f: &mut [u8], flow: u64, stamp: Option<(u32, u64)>) {
        let spec = &self.spec;
        let len = f.len();
        let head = len.min(self.frame.len());
        f[..head].copy_from_slice(&self.frame[..head]);
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

    #[test]
    fn mac_parse() {
        assert_eq!("02:00:0a:0B:ff:01".parse::<MacAddr>().unwrap().0, [2, 0, 10, 11, 255, 1]);
        assert!("02:00:0a:0B:ff".parse::<MacAddr>().is_err());
        assert!("02:00:0a:0B:ff:01:02".parse::<MacAddr>().is_err());
    }
}
