//! ICMP (v4, RFC 792) and ICMPv6 (RFC 4443) header view, plus neighbor discovery
//! (RFC 4861) message fields. Both share type, code, checksum and a 4-byte rest-of-header.

use super::{arr, be16, put16, Malformed};

mod field {
    use std::ops::Range;
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Range<usize> = 2..4;
    pub const IDENT: Range<usize> = 4..6;
    pub const SEQ: Range<usize> = 6..8;
    pub const ND_TARGET: Range<usize> = 8..24;
}

/// Length of the header (type, code, checksum, 4 bytes of rest-of-header).
pub const HEADER_LEN: usize = field::SEQ.end;
/// Offset of the checksum field.
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM.start;
/// Length of a neighbor solicitation/advertisement before its options.
pub const ND_LEN: usize = field::ND_TARGET.end;

/// ICMPv4 types.
pub mod v4 {
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 0;
    /// Destination unreachable.
    pub const DEST_UNREACH: u8 = 3;
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 8;
    /// Time exceeded.
    pub const TIME_EXCEEDED: u8 = 11;
}

/// ICMPv6 types and ND option types.
pub mod v6 {
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 128;
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 129;
    /// Router solicitation.
    pub const ROUTER_SOLICIT: u8 = 133;
    /// Neighbor solicitation.
    pub const NEIGHBOR_SOLICIT: u8 = 135;
    /// Neighbor advertisement.
    pub const NEIGHBOR_ADVERT: u8 = 136;
    /// ND option: source link-layer address.
    pub const OPT_SOURCE_LL: u8 = 1;
    /// ND option: target link-layer address.
    pub const OPT_TARGET_LL: u8 = 2;
}

/// A view of an ICMP or ICMPv6 message.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking its length.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }
    /// Wraps a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Malformed> {
        let p = Packet::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }
    /// Makes every accessor panic-free except [`nd_target`](Self::nd_target) and
    /// [`nd_options`](Self::nd_options), which need [`ND_LEN`] bytes (see
    /// [`is_nd_sized`](Self::is_nd_sized)).
    pub fn check_len(&self) -> Result<(), Malformed> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return Err(Malformed);
        }
        Ok(())
    }
    /// Message type.
    #[inline]
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }
    /// Message code.
    #[inline]
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }
    /// Checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM.start)
    }
    /// Echo identifier.
    #[inline]
    pub fn ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::IDENT.start)
    }
    /// Echo sequence number.
    #[inline]
    pub fn seq(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SEQ.start)
    }
    /// Whether the buffer is long enough for an ND target address.
    #[inline]
    pub fn is_nd_sized(&self) -> bool {
        self.buffer.as_ref().len() >= ND_LEN
    }
    /// ND target address (needs [`is_nd_sized`](Self::is_nd_sized)).
    #[inline]
    pub fn nd_target(&self) -> [u8; 16] {
        arr(self.buffer.as_ref(), field::ND_TARGET.start)
    }
    /// ND options (needs [`is_nd_sized`](Self::is_nd_sized)).
    #[inline]
    pub fn nd_options(&self) -> &[u8] {
        &self.buffer.as_ref()[ND_LEN..]
    }
    /// Everything after the 8-byte header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the message type.
    #[inline]
    pub fn set_msg_type(&mut self, t: u8) {
        self.buffer.as_mut()[field::TYPE] = t;
    }
    /// Sets the message code.
    #[inline]
    pub fn set_code(&mut self, c: u8) {
        self.buffer.as_mut()[field::CODE] = c;
    }
    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, c: u16) {
        put16(self.buffer.as_mut(), field::CHECKSUM.start, c);
    }
    /// Sets the echo identifier.
    #[inline]
    pub fn set_ident(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::IDENT.start, v);
    }
    /// Sets the echo sequence number.
    #[inline]
    pub fn set_seq(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::SEQ.start, v);
    }
    /// Sets the ND target address (needs [`is_nd_sized`](Self::is_nd_sized)).
    #[inline]
    pub fn set_nd_target(&mut self, a: &[u8; 16]) {
        self.buffer.as_mut()[field::ND_TARGET].copy_from_slice(a);
    }
    /// Computes the checksum over the whole buffer plus `pseudo` (0 for ICMPv4, the IPv6
    /// pseudo-header sum for ICMPv6).
    pub fn fill_checksum(&mut self, pseudo: u32) {
        self.set_checksum(0);
        let c =
            !super::checksum::fold(super::checksum::add(pseudo, super::checksum::sum(self.buffer.as_ref())));
        self.set_checksum(c);
    }
    /// Everything after the 8-byte header, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// One neighbor-discovery option: `(type, data)` where data excludes the 2-byte type/length.
/// Iterates until the options end; yields `Err` once (and stops) on a zero or overlong
/// length. A tail shorter than 8 bytes is ignored.
pub fn nd_options(mut opts: &[u8]) -> impl Iterator<Item = Result<(u8, &[u8]), Malformed>> {
    std::iter::from_fn(move || {
        if opts.len() < 8 {
            return None;
        }
        let len = usize::from(opts[1]) * 8;
        if len == 0 || len > opts.len() {
            opts = &[];
            return Some(Err(Malformed));
        }
        let (this, rest) = opts.split_at(len);
        opts = rest;
        Some(Ok((this[0], &this[2..])))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::checksum;

    #[test]
    fn echo_fields_and_checksum() {
        let mut b = [0u8; 12];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_msg_type(v4::ECHO_REQUEST);
        p.set_ident(0x1234);
        p.set_seq(5);
        p.payload_mut().copy_from_slice(b"ping");
        p.fill_checksum(0);
        assert!(checksum::verify(&b));
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!((p.msg_type(), p.code(), p.ident(), p.seq()), (8, 0, 0x1234, 5));
        assert!(!p.is_nd_sized());
        assert!(Packet::new_checked(&b[..7]).is_err());
    }

    #[test]
    fn nd_option_walk() {
        let opts = [1, 1, 1, 2, 3, 4, 5, 6, 2, 1, 9, 9, 9, 9, 9, 9, 0xaa];
        let v: Vec<_> = nd_options(&opts).collect();
        assert_eq!(v, vec![Ok((1, &[1, 2, 3, 4, 5, 6][..])), Ok((2, &[9; 6][..]))]);
        let bad = [1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0];
        assert_eq!(nd_options(&bad).collect::<Vec<_>>(), vec![Err(Malformed)]);
        let long = [1, 2, 0, 0, 0, 0, 0, 0];
        assert_eq!(nd_options(&long).collect::<Vec<_>>(), vec![Err(Malformed)]);
    }
}
