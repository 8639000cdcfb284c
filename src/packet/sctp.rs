//! SCTP common header view (RFC 9260 §3.1): ports, verification tag, CRC32c checksum.

use super::{be16, be32, checksum, put16, put32, Malformed};

mod field {
    use std::ops::Range;
    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const VTAG: Range<usize> = 4..8;
    pub const CHECKSUM: Range<usize> = 8..12;
}

/// Length of the common header.
pub const HEADER_LEN: usize = field::CHECKSUM.end;

/// A view of an SCTP packet.
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
    /// Makes every accessor panic-free.
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
    /// Verification tag.
    #[inline]
    pub fn vtag(&self) -> u32 {
        be32(self.buffer.as_ref(), field::VTAG.start)
    }
    /// The CRC32c field (as stored: little-endian on the wire, returned as the CRC value).
    #[inline]
    pub fn checksum(&self) -> u32 {
        be32(self.buffer.as_ref(), field::CHECKSUM.start).swap_bytes()
    }
    /// Whether the CRC32c over the whole buffer verifies.
    pub fn verify_checksum(&self) -> bool {
        let b = self.buffer.as_ref();
        let mut crc = checksum::Crc32c::new();
        crc.update(&b[..field::CHECKSUM.start]);
        crc.update(&[0; 4]);
        crc.update(&b[field::CHECKSUM.end..]);
        crc.finish() == self.checksum()
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
    /// Sets the verification tag.
    #[inline]
    pub fn set_vtag(&mut self, v: u32) {
        put32(self.buffer.as_mut(), field::VTAG.start, v);
    }
    /// Recomputes the CRC32c over the whole buffer.
    pub fn fill_checksum(&mut self) {
        put32(self.buffer.as_mut(), field::CHECKSUM.start, 0);
        let c = checksum::crc32c(self.buffer.as_ref());
        put32(self.buffer.as_mut(), field::CHECKSUM.start, c.swap_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_roundtrip() {
        let mut b = [7u8; 32];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_src_port(5000);
        p.set_dst_port(6000);
        p.set_vtag(0xdead_beef);
        p.fill_checksum();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!((p.src_port(), p.dst_port(), p.vtag()), (5000, 6000, 0xdead_beef));
        let mut bad = b;
        bad[20] ^= 1;
        assert!(!Packet::new_checked(&bad[..]).unwrap().verify_checksum());
    }
}
