//! GRE header view and emitter (RFC 2784 with the key and sequence number extensions of
//! RFC 2890), as tunnel ports carry Ethernet frames over IP (protocol type 0x6558,
//! transparent Ethernet bridging).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! |C|R|K|S|s|Recur|  Flags  | Ver |         Protocol Type         |
//! |      Checksum (optional)      |       Reserved1 (optional)    |
//! |                         Key (optional)                        |
//! |                 Sequence Number (optional)                    |
//! ```
//!
//! A receiver that implements RFC 2784/2890 but not RFC 1701 must discard a packet with the
//! routing bit, the strict-source-route bit or bit 5 set, or a version other than 0
//! ([`GreError::Unsupported`]); bits 6-12 are ignored.

use super::{be16, put16};

/// Flag bits of the first 16-bit word.
pub mod flags {
    /// A checksum (and Reserved1) follows the base header.
    pub const CHECKSUM: u16 = 0x8000;
    /// RFC 1701 routing present: not supported.
    pub const ROUTING: u16 = 0x4000;
    /// A key follows (RFC 2890).
    pub const KEY: u16 = 0x2000;
    /// A sequence number follows (RFC 2890).
    pub const SEQ: u16 = 0x1000;
    /// RFC 1701 strict source route: not supported.
    pub const STRICT_ROUTE: u16 = 0x0800;
    /// Bit 5, the first of RFC 1701's recursion control: RFC 2784 says discard (bits 6-12,
    /// the rest of it and RFC 1701's flags, are ignored).
    pub const RECURSION_HIGH: u16 = 0x0400;
    /// The version field.
    pub const VERSION: u16 = 0x0007;
    /// Bits whose presence makes the packet one this implementation must discard (RFC 2784:
    /// bits 1-5 other than RFC 2890's K and S, and a version other than 0).
    pub const UNSUPPORTED: u16 = ROUTING | STRICT_ROUTE | RECURSION_HIGH | VERSION;
}

/// Protocol types carried.
pub mod proto {
    /// Transparent Ethernet bridging: an Ethernet frame follows.
    pub const TEB: u16 = 0x6558;
    pub const IPV4: u16 = 0x0800;
    pub const IPV6: u16 = 0x86dd;
}

/// IP protocol number of GRE.
pub const IP_PROTO: u8 = 47;
/// Length of the base header (flags, version, protocol type).
pub const BASE_LEN: usize = 4;
/// Longest header: base, checksum, key and sequence number.
pub const MAX_HEADER_LEN: usize = 16;

/// Why a GRE header was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GreError {
    /// Shorter than the header its flags announce.
    #[error("truncated GRE header")]
    Truncated,
    /// Routing, strict source route, bit 5, or a version other than 0.
    #[error("unsupported GRE flags or version")]
    Unsupported,
}

/// A view of a GRE header and its payload.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer after [`check`](Self::check).
    pub fn new_checked(buffer: T) -> Result<Packet<T>, GreError> {
        let p = Packet::new_unchecked(buffer);
        p.check()?;
        Ok(p)
    }

    /// Makes every accessor panic-free: the flags are ones we implement and the header they
    /// announce is present.
    pub fn check(&self) -> Result<(), GreError> {
        let b = self.buffer.as_ref();
        if b.len() < BASE_LEN {
            return Err(GreError::Truncated);
        }
        if self.flags() & flags::UNSUPPORTED != 0 {
            return Err(GreError::Unsupported);
        }
        if b.len() < self.header_len() {
            return Err(GreError::Truncated);
        }
        Ok(())
    }

    /// The first 16-bit word: flags and version.
    #[inline]
    pub fn flags(&self) -> u16 {
        be16(self.buffer.as_ref(), 0)
    }

    /// The protocol type of the payload.
    #[inline]
    pub fn protocol(&self) -> u16 {
        be16(self.buffer.as_ref(), 2)
    }

    #[inline]
    pub fn has_checksum(&self) -> bool {
        self.flags() & flags::CHECKSUM != 0
    }

    #[inline]
    pub fn has_key(&self) -> bool {
        self.flags() & flags::KEY != 0
    }

    #[inline]
    pub fn has_seq(&self) -> bool {
        self.flags() & flags::SEQ != 0
    }

    /// Base header plus the optional fields the flags announce.
    #[inline]
    pub fn header_len(&self) -> usize {
        BASE_LEN
            + 4 * (usize::from(self.has_checksum())
                + usize::from(self.has_key())
                + usize::from(self.has_seq()))
    }

    /// The checksum field, if present.
    #[inline]
    pub fn checksum(&self) -> Option<u16> {
        self.has_checksum().then(|| be16(self.buffer.as_ref(), BASE_LEN))
    }

    /// The key, if present.
    #[inline]
    pub fn key(&self) -> Option<u32> {
        let at = BASE_LEN + 4 * usize::from(self.has_checksum());
        self.has_key().then(|| be32(self.buffer.as_ref(), at))
    }

    /// The sequence number, if present.
    #[inline]
    pub fn seq(&self) -> Option<u32> {
        let at = BASE_LEN + 4 * (usize::from(self.has_checksum()) + usize::from(self.has_key()));
        self.has_seq().then(|| be32(self.buffer.as_ref(), at))
    }

    /// Whether the checksum (over header and payload) is right; true without one.
    pub fn verify_checksum(&self) -> bool {
        !self.has_checksum() || super::checksum::verify(self.buffer.as_ref())
    }

    /// Everything after the header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// A GRE header to emit: what the tunnel port's configuration and the flow's key make of it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Repr {
    pub protocol: u16,
    /// Carry a checksum (filled by [`Repr::fill_checksum`] once the payload is in place).
    pub checksum: bool,
    pub key: Option<u32>,
    pub seq: Option<u32>,
}

impl Repr {
    /// Reads a checked header.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Repr {
        Repr { protocol: p.protocol(), checksum: p.has_checksum(), key: p.key(), seq: p.seq() }
    }

    /// Bytes the header takes.
    pub fn header_len(&self) -> usize {
        BASE_LEN
            + 4 * (usize::from(self.checksum)
                + usize::from(self.key.is_some())
                + usize::from(self.seq.is_some()))
    }

    /// Writes the header at the start of `buf` (at least [`header_len`](Self::header_len)
    /// bytes; the checksum field, if any, is written as 0).
    pub fn emit(&self, buf: &mut [u8]) {
        let mut f = 0;
        if self.checksum {
            f |= flags::CHECKSUM;
        }
        if self.key.is_some() {
            f |= flags::KEY;
        }
        if self.seq.is_some() {
            f |= flags::SEQ;
        }
        put16(buf, 0, f);
        put16(buf, 2, self.protocol);
        let mut at = BASE_LEN;
        if self.checksum {
            buf[at..at + 4].fill(0);
            at += 4;
        }
        for v in [self.key, self.seq].into_iter().flatten() {
            buf[at..at + 4].copy_from_slice(&v.to_be_bytes());
            at += 4;
        }
    }

    /// Computes the checksum over `packet` (the header this emitted, then the payload), if
    /// the header has one.
    pub fn fill_checksum(&self, packet: &mut [u8]) {
        if self.checksum {
            put16(packet, BASE_LEN, 0);
            let c = super::checksum::checksum(packet);
            put16(packet, BASE_LEN, c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_it_emits() {
        let payload = [0xabu8; 19];
        for checksum in [false, true] {
            for key in [None, Some(0x64), Some(u32::MAX)] {
                for seq in [None, Some(7)] {
                    let r = Repr { protocol: proto::TEB, checksum, key, seq };
                    let mut b = vec![0u8; r.header_len() + payload.len()];
                    r.emit(&mut b);
                    b[r.header_len()..].copy_from_slice(&payload);
                    r.fill_checksum(&mut b);
                    let p = Packet::new_checked(&b[..]).unwrap();
                    assert_eq!(Repr::parse(&p), r);
                    assert_eq!(p.header_len(), r.header_len());
                    assert_eq!(p.payload(), &payload);
                    assert!(p.verify_checksum());
                    if checksum {
                        b[r.header_len()] ^= 1;
                        assert!(!Packet::new_unchecked(&b[..]).verify_checksum());
                    }
                }
            }
        }
    }

    #[test]
    fn wire_format_of_a_keyed_header() {
        // The bytes tcpdump shows for "GREv0, key=0x64, proto TEB".
        let r = Repr { protocol: proto::TEB, key: Some(0x64), ..Repr::default() };
        let mut b = [0u8; 8];
        r.emit(&mut b);
        assert_eq!(b, [0x20, 0x00, 0x65, 0x58, 0, 0, 0, 0x64]);
        assert_eq!(MAX_HEADER_LEN, Repr { checksum: true, key: Some(1), seq: Some(1), ..r }.header_len());
    }

    #[test]
    fn refuses_unsupported_and_truncated_headers() {
        assert_eq!(Packet::new_checked(&[0x00u8, 0x00, 0x65][..]).unwrap_err(), GreError::Truncated);
        for bad in [flags::ROUTING, flags::STRICT_ROUTE, 0x0400, 0x0001, 0x0005] {
            let b = [(bad >> 8) as u8, bad as u8, 0x65, 0x58, 0, 0, 0, 0];
            assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), GreError::Unsupported, "{bad:#06x}");
        }
        // Key announced, missing.
        assert_eq!(Packet::new_checked(&[0x20u8, 0, 0x65, 0x58, 0, 0][..]).unwrap_err(), GreError::Truncated);
        // Reserved flag bits 6-12 are ignored.
        let p = Packet::new_checked(&[0x03u8, 0xf8, 0x65, 0x58][..]).unwrap();
        assert_eq!((p.key(), p.payload().len()), (None, 0));
    }

    #[test]
    fn any_input_is_checked_without_panicking() {
        // Every first word over short buffers: check() decides, accessors never panic after it.
        for len in 0..=MAX_HEADER_LEN {
            for f in (0..=u16::MAX).step_by(97) {
                let mut b = vec![0x5au8; len];
                if len >= 2 {
                    put16(&mut b, 0, f);
                }
                match Packet::new_checked(&b[..]) {
                    Ok(p) => {
                        assert!(p.header_len() <= len && f & flags::UNSUPPORTED == 0);
                        assert_eq!(p.payload().len(), len - p.header_len());
                        assert_eq!(p.key().is_some(), f & flags::KEY != 0);
                        let _ = (p.seq(), p.checksum(), p.verify_checksum());
                    }
                    Err(GreError::Unsupported) => assert!(f & flags::UNSUPPORTED != 0),
                    Err(GreError::Truncated) => {
                        let announced =
                            [flags::CHECKSUM, flags::KEY, flags::SEQ].iter().filter(|&&x| f & x != 0).count();
                        assert!(len < BASE_LEN || len < BASE_LEN + 4 * announced);
                    }
                }
            }
        }
    }
}
