//! UDP header view (RFC 768).

use super::{be16, put16, Malformed};

mod field {
    use std::ops::Range;
    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const CHECKSUM: Range<usize> = 6..8;
}

/// Length of the header.
pub const HEADER_LEN: usize = field::CHECKSUM.end;
/// Offset of the checksum field.
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM.start;

/// A view of a UDP header and payload.
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
    /// Makes every accessor panic-free: the 8-byte header is present.
    pub fn check_len(&self) -> Result<(), Malformed> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return Err(Malformed);
        }
        Ok(())
    }
    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SRC_PORT.start)
    }
    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::DST_PORT.start)
    }
    /// Length field (header + payload).
    #[inline]
    pub fn len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH.start)
    }
    /// Whether the length field is zero.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Checksum field (0 over IPv4 means "no checksum").
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM.start)
    }
    /// Everything after the header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the source port (checksum not updated).
    #[inline]
    pub fn set_src_port(&mut self, p: u16) {
        put16(self.buffer.as_mut(), field::SRC_PORT.start, p);
    }
    /// Sets the destination port (checksum not updated).
    #[inline]
    pub fn set_dst_port(&mut self, p: u16) {
        put16(self.buffer.as_mut(), field::DST_PORT.start, p);
    }
    /// Sets the length field.
    #[inline]
    pub fn set_len(&mut self, l: u16) {
        put16(self.buffer.as_mut(), field::LENGTH.start, l);
    }
    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, c: u16) {
        put16(self.buffer.as_mut(), field::CHECKSUM.start, c);
    }
    /// Computes the checksum over the whole buffer with the given pseudo-header sum
    /// (a result of 0 is sent as 0xffff).
    pub fn fill_checksum(&mut self, pseudo: u32) {
        self.set_checksum(0);
        let c =
            !super::checksum::fold(super::checksum::add(pseudo, super::checksum::sum(self.buffer.as_ref())));
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }
    /// Everything after the header, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::checksum;

    #[test]
    fn fields_and_checksum() {
        let mut b = [0u8; 12];
        assert!(Packet::new_checked(&b[..7]).is_err());
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_src_port(1234);
        p.set_dst_port(53);
        p.set_len(12);
        p.payload_mut().copy_from_slice(&[1, 2, 3, 4]);
        let ph = checksum::pseudo_v4([10, 0, 0, 1], [10, 0, 0, 2], 17, 12);
        p.fill_checksum(ph);
        assert_eq!(checksum::fold(checksum::add(ph, checksum::sum(&b))), 0xffff);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port(), p.len(), p.payload()), (1234, 53, 12, &[1, 2, 3, 4][..]));
    }
}
