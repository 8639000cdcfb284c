//! [`FlowKey`]: every header field the switch can match on, in a fixed layout of 64-bit words,
//! so masking, hashing and comparing are word loops with no branches.
//!
//! Conventions (as in OVS's `struct flow`, so `ovs-ofctl` field meanings carry over):
//! - numbers are in host byte order; addresses are byte arrays in network order;
//! - `vlan_tci` has [`VLAN_PRESENT`] (0x1000, the CFI bit) set when the frame carries a tag,
//!   and is 0 when it does not; `dl_type` is then the inner EtherType;
//! - ARP: `nw_proto` = opcode (low 8 bits), `nw_src`/`nw_dst` = SPA/TPA (first 4 bytes),
//!   `arp_sha`/`arp_tha` = SHA/THA; IPv6 ND: `nd_target`, `arp_sha` = SLL, `arp_tha` = TLL;
//! - ICMP/ICMPv6: `tp_src` = type, `tp_dst` = code;
//! - IPv4 addresses live in the first 4 bytes of `nw_src`/`nw_dst`, the rest zero;
//! - fields a frame does not have are zero.

use bytemuck::{Pod, Zeroable};

/// `vlan_tci` bit meaning "a VLAN tag is present" (the 802.1Q CFI/DEI bit, as OVS uses it).
pub const VLAN_PRESENT: u16 = 0x1000;
pub const VLAN_VID_MASK: u16 = 0x0fff;
pub const VLAN_PCP_SHIFT: u16 = 13;

/// `nw_frag` bits.
pub const FRAG_ANY: u8 = 1;
pub const FRAG_LATER: u8 = 2;

/// Number of 64-bit words in a key.
pub const KEY_WORDS: usize = 16;

/// The packet fields a flow can match on. See the module docs for conventions.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, Pod, Zeroable)]
#[repr(C, align(8))]
pub struct FlowKey {
    // word 0
    pub in_port: u32,
    pub dl_type: u16,
    pub vlan_tci: u16,
    // word 1
    pub dl_dst: [u8; 6],
    pub nw_proto: u8,
    pub nw_tos: u8,
    // word 2
    pub dl_src: [u8; 6],
    pub nw_ttl: u8,
    pub nw_frag: u8,
    // word 3
    pub tp_src: u16,
    pub tp_dst: u16,
    pub tcp_flags: u16,
    pub pad0: u16,
    // words 4-5, 6-7
    pub nw_src: [u8; 16],
    pub nw_dst: [u8; 16],
    // word 8
    pub tun_id: u64,
    // word 9
    pub tun_src: u32,
    pub tun_dst: u32,
    // word 10
    pub metadata: u64,
    // word 11
    pub arp_sha: [u8; 6],
    pub pad1: u16,
    // word 12
    pub arp_tha: [u8; 6],
    pub pad2: u16,
    // words 13-14
    pub nd_target: [u8; 16],
    // word 15
    pub ipv6_label: u32,
    pub mpls_lse: u32,
}

const _: () = assert!(std::mem::size_of::<FlowKey>() == KEY_WORDS * 8);

impl std::fmt::Debug for FlowKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Only the non-zero fields, to keep test failures readable.
        let mut d = f.debug_struct("FlowKey");
        macro_rules! nz {
            ($($field:ident),*) => {$(
                if bytemuck::bytes_of(&self.$field).iter().any(|&b| b != 0) { d.field(stringify!($field), &self.$field); }
            )*};
        }
        nz!(
            in_port, dl_type, vlan_tci, dl_dst, nw_proto, nw_tos, dl_src, nw_ttl, nw_frag, tp_src, tp_dst,
            tcp_flags, nw_src, nw_dst, tun_id, tun_src, tun_dst, metadata, arp_sha, arp_tha, nd_target,
            ipv6_label, mpls_lse
        );
        d.finish()
    }
}

impl FlowKey {
    /// The key as words (for masking, hashing, comparing).
    #[inline]
    pub fn words(&self) -> &[u64; KEY_WORDS] {
        bytemuck::cast_ref(self)
    }
    #[inline]
    pub fn words_mut(&mut self) -> &mut [u64; KEY_WORDS] {
        bytemuck::cast_mut(self)
    }
    /// `self & mask`, word by word.
    #[inline]
    pub fn masked(&self, mask: &FlowMask) -> FlowKey {
        let mut out = FlowKey::zeroed();
        let (a, m) = (self.words(), mask.0.words());
        for (o, (a, m)) in out.words_mut().iter_mut().zip(a.iter().zip(m.iter())) {
            *o = a & m;
        }
        out
    }
    /// A fast hash of the whole key (for the exact-match cache).
    #[inline]
    pub fn hash(&self) -> u32 {
        hash_words(self.words())
    }
    /// A fast hash of `self & mask`; equals `self.masked(mask).hash()`.
    #[inline]
    pub fn hash_masked(&self, mask: &FlowMask) -> u32 {
        hash_words(self.masked(mask).words())
    }
    /// Whether `self & mask == other & mask` (`other` already masked).
    #[inline]
    pub fn matches_masked(&self, mask: &FlowMask, masked: &FlowKey) -> bool {
        let (a, m, b) = (self.words(), mask.0.words(), masked.words());
        let mut diff = 0u64;
        for i in 0..KEY_WORDS {
            diff |= (a[i] & m[i]) ^ b[i];
        }
        diff == 0
    }
    /// IPv4 source address (first 4 bytes of `nw_src`).
    #[inline]
    pub fn ipv4_src(&self) -> [u8; 4] {
        [self.nw_src[0], self.nw_src[1], self.nw_src[2], self.nw_src[3]]
    }
    /// IPv4 destination address (first 4 bytes of `nw_dst`).
    #[inline]
    pub fn ipv4_dst(&self) -> [u8; 4] {
        [self.nw_dst[0], self.nw_dst[1], self.nw_dst[2], self.nw_dst[3]]
    }
}

#[inline(always)]
fn mix(h: u64, w: u64) -> u64 {
    // One multiply per word (folded 128-bit product), as in wyhash/foldhash.
    let p = (h ^ w) as u128 * 0xa076_1d64_78bd_642f_u128;
    (p as u64) ^ ((p >> 64) as u64)
}

#[inline(always)]
fn finish(h: u64) -> u32 {
    let h = mix(h, 0xe703_7ed1_a0b4_28db);
    (h ^ (h >> 32)) as u32
}

/// Hash of a word array. Four independent lanes, so the multiplies overlap instead of
/// forming one 16-long dependency chain (that chain was half of a poll thread's per-packet
/// time on EMC hits).
#[inline]
pub fn hash_words(w: &[u64; KEY_WORDS]) -> u32 {
    let mut l =
        [0x9e37_79b9_7f4a_7c15_u64, 0xc2b2_ae3d_27d4_eb4f, 0x1656_67b1_9e37_79f9, 0x27d4_eb2f_1656_67c5];
    for c in w.chunks_exact(4) {
        for (lane, &x) in l.iter_mut().zip(c) {
            *lane = mix(*lane, x);
        }
    }
    finish(mix(l[0] ^ l[2].rotate_left(23), l[1] ^ l[3].rotate_left(41)))
}

/// Which bits of a [`FlowKey`] matter: a key-shaped bit mask (1 = compared).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
#[repr(transparent)]
pub struct FlowMask(pub FlowKey);

impl std::fmt::Debug for FlowMask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FlowMask({:?})", self.0)
    }
}

impl FlowMask {
    /// Matches every packet.
    pub const fn catchall() -> FlowMask {
        FlowMask(FlowKey {
            in_port: 0,
            dl_type: 0,
            vlan_tci: 0,
            dl_dst: [0; 6],
            nw_proto: 0,
            nw_tos: 0,
            dl_src: [0; 6],
            nw_ttl: 0,
            nw_frag: 0,
            tp_src: 0,
            tp_dst: 0,
            tcp_flags: 0,
            pad0: 0,
            nw_src: [0; 16],
            nw_dst: [0; 16],
            tun_id: 0,
            tun_src: 0,
            tun_dst: 0,
            metadata: 0,
            arp_sha: [0; 6],
            pad1: 0,
            arp_tha: [0; 6],
            pad2: 0,
            nd_target: [0; 16],
            ipv6_label: 0,
            mpls_lse: 0,
        })
    }
    /// Every bit of every field (padding excluded).
    pub fn exact() -> FlowMask {
        let mut m = FlowKey::zeroed();
        for w in m.words_mut() {
            *w = !0;
        }
        m.pad0 = 0;
        m.pad1 = 0;
        m.pad2 = 0;
        FlowMask(m)
    }
    /// Bitwise OR of two masks (fields examined by either).
    #[inline]
    pub fn union(&self, other: &FlowMask) -> FlowMask {
        let mut out = self.0;
        for (o, b) in out.words_mut().iter_mut().zip(other.0.words()) {
            *o |= b;
        }
        FlowMask(out)
    }
    /// Whether every bit set in `self` is also set in `other`.
    pub fn is_subset_of(&self, other: &FlowMask) -> bool {
        self.0.words().iter().zip(other.0.words()).all(|(a, b)| a & !b == 0)
    }
    /// Whether no bit is set.
    pub fn is_catchall(&self) -> bool {
        self.0.words().iter().all(|&w| w == 0)
    }
    /// Number of words with any bit set (cost of a lookup with this mask).
    pub fn n_words(&self) -> usize {
        self.0.words().iter().filter(|&&w| w != 0).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_and_hash_agree() {
        let mut k = FlowKey { in_port: 3, dl_type: 0x0800, tp_dst: 53, ..Default::default() };
        k.nw_dst[..4].copy_from_slice(&[10, 0, 0, 2]);
        let mut m = FlowMask::catchall();
        m.0.dl_type = 0xffff;
        m.0.nw_dst[..4].copy_from_slice(&[255; 4]);
        let masked = k.masked(&m);
        assert_eq!(masked.in_port, 0);
        assert_eq!(masked.ipv4_dst(), [10, 0, 0, 2]);
        assert_eq!(k.hash_masked(&m), masked.hash());
        assert!(k.matches_masked(&m, &masked));
        let mut other = k;
        other.tp_dst = 54;
        assert!(other.matches_masked(&m, &masked));
        other.nw_dst[3] = 3;
        assert!(!other.matches_masked(&m, &masked));
    }

    #[test]
    fn mask_algebra() {
        let mut a = FlowMask::catchall();
        a.0.in_port = !0;
        let mut b = FlowMask::catchall();
        b.0.tp_src = !0;
        let u = a.union(&b);
        assert!(a.is_subset_of(&u) && b.is_subset_of(&u) && !u.is_subset_of(&a));
        assert!(FlowMask::catchall().is_catchall());
        assert_eq!(u.n_words(), 2);
        assert_eq!(FlowMask::exact().0.pad0, 0);
    }
}

/// Prints the fields of `key` that `mask` selects, `ovs-ofctl`-style (`field=value[/mask]`),
/// for `dump-megaflows` and logs. A catch-all mask prints as `(any)`.
pub fn format_masked(key: &FlowKey, mask: &FlowMask) -> String {
    use std::fmt::Write;
    let m = &mask.0;
    let mut s = String::new();
    let mut put = |name: &str, v: String, full: bool, mv: String| {
        if !s.is_empty() {
            s.push(',');
        }
        if full {
            let _ = write!(s, "{name}={v}");
        } else {
            let _ = write!(s, "{name}={v}/{mv}");
        }
    };
    let mac = crate::packet::ethernet::format_mac;
    let v6 = |a: &[u8; 16]| std::net::Ipv6Addr::from(*a).to_string();
    let is_v6 = key.dl_type == 0x86dd;
    macro_rules! num {
        ($f:ident, $name:expr, $fmt:expr) => {
            if m.$f != 0 {
                let full = m.$f == !0;
                put($name, format!($fmt, key.$f), full, format!($fmt, m.$f));
            }
        };
    }
    num!(in_port, "in_port", "{}");
    if m.dl_src != [0; 6] {
        put("dl_src", mac(&key.dl_src), m.dl_src == [0xff; 6], mac(&m.dl_src));
    }
    if m.dl_dst != [0; 6] {
        put("dl_dst", mac(&key.dl_dst), m.dl_dst == [0xff; 6], mac(&m.dl_dst));
    }
    num!(dl_type, "dl_type", "{:#06x}");
    num!(vlan_tci, "vlan_tci", "{:#06x}");
    if m.nw_src != [0; 16] {
        if is_v6 {
            put("ipv6_src", v6(&key.nw_src), m.nw_src == [0xff; 16], v6(&m.nw_src));
        } else {
            let (k, mm) = (key.ipv4_src(), mask.0.ipv4_src());
            put(
                "nw_src",
                std::net::Ipv4Addr::from(k).to_string(),
                mm == [255; 4],
                std::net::Ipv4Addr::from(mm).to_string(),
            );
        }
    }
    if m.nw_dst != [0; 16] {
        if is_v6 {
            put("ipv6_dst", v6(&key.nw_dst), m.nw_dst == [0xff; 16], v6(&m.nw_dst));
        } else {
            let (k, mm) = (key.ipv4_dst(), mask.0.ipv4_dst());
            put(
                "nw_dst",
                std::net::Ipv4Addr::from(k).to_string(),
                mm == [255; 4],
                std::net::Ipv4Addr::from(mm).to_string(),
            );
        }
    }
    num!(nw_proto, "nw_proto", "{}");
    num!(nw_tos, "nw_tos", "{}");
    num!(nw_ttl, "nw_ttl", "{}");
    num!(nw_frag, "nw_frag", "{}");
    num!(tp_src, "tp_src", "{}");
    num!(tp_dst, "tp_dst", "{}");
    num!(tcp_flags, "tcp_flags", "{:#05x}");
    num!(tun_id, "tun_id", "{:#x}");
    num!(metadata, "metadata", "{:#x}");
    if m.arp_sha != [0; 6] {
        put("arp_sha", mac(&key.arp_sha), m.arp_sha == [0xff; 6], mac(&m.arp_sha));
    }
    if m.arp_tha != [0; 6] {
        put("arp_tha", mac(&key.arp_tha), m.arp_tha == [0xff; 6], mac(&m.arp_tha));
    }
    if m.nd_target != [0; 16] {
        put("nd_target", v6(&key.nd_target), m.nd_target == [0xff; 16], v6(&m.nd_target));
    }
    num!(ipv6_label, "ipv6_label", "{:#x}");
    num!(mpls_lse, "mpls_lse", "{:#x}");
    if s.is_empty() {
        s.push_str("(any)");
    }
    s
}

#[cfg(test)]
mod format_tests {
    use super::*;

    #[test]
    fn prints_selected_fields() {
        let mut k = FlowKey { in_port: 1, dl_type: 0x0800, tp_dst: 53, nw_proto: 17, ..Default::default() };
        k.nw_dst[..4].copy_from_slice(&[10, 0, 0, 2]);
        let mut m = FlowMask::catchall();
        assert_eq!(format_masked(&k, &m), "(any)");
        m.0.in_port = !0;
        m.0.dl_type = !0;
        m.0.nw_dst[..3].copy_from_slice(&[255; 3]);
        m.0.nw_proto = !0;
        assert_eq!(
            format_masked(&k, &m),
            "in_port=1,dl_type=0x0800,nw_dst=10.0.0.2/255.255.255.0,nw_proto=17"
        );
    }
}
