//! Internet checksums: the RFC 1071 one's-complement sum, RFC 1624 incremental updates for
//! 16-, 32- and 128-bit field changes, pseudo-header sums, and SCTP's CRC32c.
//!
//! Sums are carried unfolded as `u32` (or `u64` inside [`sum`]) and folded once at the end
//! with [`fold`]; a checksum field holds `!fold(sum)`.

/// The one's-complement sum of `data` as big-endian 16-bit words (an odd last byte is padded
/// with a zero), not yet folded. Exact for any input up to 4 GiB.
#[inline]
pub fn sum(data: &[u8]) -> u32 {
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        acc += (w >> 48) + ((w >> 32) & 0xffff) + ((w >> 16) & 0xffff) + (w & 0xffff);
    }
    let rest = chunks.remainder();
    let mut pairs = rest.chunks_exact(2);
    for p in &mut pairs {
        acc += u64::from(u16::from_be_bytes([p[0], p[1]]));
    }
    if let [last] = pairs.remainder() {
        acc += u64::from(*last) << 8;
    }
    fold64(acc)
}

/// Folds a 64-bit accumulator to an equivalent value below 2^17 (no information is lost).
#[inline]
fn fold64(mut acc: u64) -> u32 {
    while acc >> 32 != 0 {
        acc = (acc & 0xffff_ffff) + (acc >> 32);
    }
    let mut s = (acc & 0xffff) + (acc >> 16);
    s = (s & 0xffff) + (s >> 16);
    s as u32
}

/// Adds two unfolded sums (one's-complement addition, no overflow).
#[inline]
pub fn add(a: u32, b: u32) -> u32 {
    let s = u64::from(a) + u64::from(b);
    fold64(s)
}

/// Folds a sum to 16 bits with end-around carry. A sum of data that is not all zero never
/// folds to 0 (it gives 0xffff, one's-complement "negative zero", instead).
#[inline]
pub fn fold(sum: u32) -> u16 {
    let mut s = sum;
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// The checksum field value for `data` (whose own checksum field must be zero): `!fold(sum)`.
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(data))
}

/// Whether `data`, checksum field included, sums to 0xffff (the checksum verifies).
#[inline]
pub fn verify(data: &[u8]) -> bool {
    fold(sum(data)) == 0xffff
}

/// The IPv4 pseudo-header sum (source, destination, protocol, upper-layer length).
#[inline]
pub fn pseudo_v4(src: [u8; 4], dst: [u8; 4], proto: u8, len: u16) -> u32 {
    add(add(sum(&src), sum(&dst)), u32::from(proto) + u32::from(len))
}

/// The IPv6 pseudo-header sum (RFC 8200 §8.1).
#[inline]
pub fn pseudo_v6(src: &[u8; 16], dst: &[u8; 16], next_header: u8, len: u32) -> u32 {
    let s = add(sum(src), sum(dst));
    add(s, add((len >> 16) + (len & 0xffff), u32::from(next_header)))
}

/// RFC 1624 eqn. 3: the new checksum field after a 16-bit word of the covered data changes
/// from `old` to `new`: `HC' = ~(~HC + ~m + m')`.
#[inline]
pub fn update16(csum: u16, old: u16, new: u16) -> u16 {
    let s = u32::from(!csum) + u32::from(!old) + u32::from(new);
    !fold(s)
}

/// [`update16`] for a 32-bit field (two words), e.g. an IPv4 address.
#[inline]
pub fn update32(csum: u16, old: [u8; 4], new: [u8; 4]) -> u16 {
    update_words(csum, &old, &new)
}

/// [`update16`] for a 128-bit field (eight words), e.g. an IPv6 address.
#[inline]
pub fn update128(csum: u16, old: &[u8; 16], new: &[u8; 16]) -> u16 {
    update_words(csum, old, new)
}

/// [`update16`] for a field of any even length starting at an even offset in the covered data.
#[inline]
pub fn update_words(csum: u16, old: &[u8], new: &[u8]) -> u16 {
    debug_assert!(old.len() == new.len() && old.len().is_multiple_of(2));
    let mut s = u64::from(!csum);
    for (o, n) in old.chunks_exact(2).zip(new.chunks_exact(2)) {
        s += u64::from(!u16::from_be_bytes([o[0], o[1]])) + u64::from(u16::from_be_bytes([n[0], n[1]]));
    }
    !fold(fold64(s))
}

/// CRC32c (Castagnoli, reflected polynomial 0x82f63b78), as SCTP uses (RFC 9260 App. A).
pub fn crc32c(data: &[u8]) -> u32 {
    let mut c = Crc32c::new();
    c.update(data);
    c.finish()
}

/// A CRC32c computed over several pieces.
#[derive(Clone, Copy, Debug)]
pub struct Crc32c(u32);

impl Default for Crc32c {
    fn default() -> Self {
        Crc32c::new()
    }
}

impl Crc32c {
    /// An empty CRC.
    pub const fn new() -> Crc32c {
        Crc32c(!0)
    }
    /// Feeds more bytes.
    pub fn update(&mut self, data: &[u8]) {
        let mut crc = self.0;
        for &b in data {
            crc = CRC32C_TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
        }
        self.0 = crc;
    }
    /// The CRC of everything fed so far.
    pub fn finish(&self) -> u32 {
        !self.0
    }
}

const CRC32C_TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { 0x82f6_3b78 ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive(data: &[u8]) -> u16 {
        let mut s: u32 = 0;
        for c in data.chunks(2) {
            let w = if c.len() == 2 { u16::from_be_bytes([c[0], c[1]]) } else { u16::from(c[0]) << 8 };
            s += u32::from(w);
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: 00 01 f2 03 f4 f5 f6 f7 sums to 0xddf2.
        assert_eq!(fold(sum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7])), 0xddf2);
        assert_eq!(checksum(&[]), 0xffff);
        assert_eq!(checksum(&[0xff]), !0xff00);
    }

    #[test]
    fn crc32c_known_vector() {
        // RFC 3720 B.4: 32 bytes of zeros -> 0x8a9136aa.
        assert_eq!(crc32c(&[0u8; 32]), 0x8a91_36aa);
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
    }

    proptest! {
        #[test]
        fn sum_matches_naive(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            prop_assert_eq!(checksum(&data), naive(&data));
        }

        #[test]
        fn incremental_matches_recompute(
            mut data in proptest::collection::vec(any::<u8>(), 20..64),
            at in 1usize..9, new in proptest::collection::vec(any::<u8>(), 16),
        ) {
            // Covered data includes at least one non-zero byte so both forms avoid +0.
            data[0] |= 1;
            let at = at * 2;
            let csum = checksum(&data);
            let old16 = u16::from_be_bytes([data[at], data[at + 1]]);
            let new16 = u16::from_be_bytes([new[0], new[1]]);
            let mut d16 = data.clone();
            d16[at..at + 2].copy_from_slice(&new[..2]);
            prop_assert_eq!(update16(csum, old16, new16), checksum(&d16));
            let mut d32 = data.clone();
            let old32: [u8; 4] = d32[2..6].try_into().unwrap();
            d32[2..6].copy_from_slice(&new[..4]);
            prop_assert_eq!(update32(csum, old32, new[..4].try_into().unwrap()), checksum(&d32));
            let mut d128 = data.clone();
            let old128: [u8; 16] = d128[2..18].try_into().unwrap();
            d128[2..18].copy_from_slice(&new);
            prop_assert_eq!(update128(csum, &old128, new[..].try_into().unwrap()), checksum(&d128));
        }
    }
}
