//! 802.1Q / 802.1ad tag view. The view starts right after the tag's TPID (which sits where
//! the EtherType would be), so it covers the TCI and the inner EtherType.

use super::{be16, put16, Malformed};

mod field {
    use std::ops::Range;
    pub const TCI: Range<usize> = 0..2;
    pub const ETHERTYPE: Range<usize> = 2..4;
    pub const PAYLOAD: usize = 4;
}

/// Bytes a tag adds to a frame (TPID + TCI).
pub const TAG_LEN: usize = 4;
/// Length of this view's header (TCI + inner EtherType).
pub const HEADER_LEN: usize = field::PAYLOAD;
/// VLAN ID bits of the TCI.
pub const VID_MASK: u16 = 0x0fff;
/// Drop-eligible indicator bit of the TCI (the bit OVS reuses as "tag present").
pub const DEI: u16 = 0x1000;
/// Priority code point shift in the TCI.
pub const PCP_SHIFT: u16 = 13;

/// A view of a VLAN tag's TCI and inner EtherType.
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
    /// Tag control information (PCP, DEI, VID).
    #[inline]
    pub fn tci(&self) -> u16 {
        be16(self.buffer.as_ref(), field::TCI.start)
    }
    /// VLAN ID.
    #[inline]
    pub fn vid(&self) -> u16 {
        self.tci() & VID_MASK
    }
    /// Priority code point.
    #[inline]
    pub fn pcp(&self) -> u8 {
        (self.tci() >> PCP_SHIFT) as u8
    }
    /// The EtherType after the tag.
    #[inline]
    pub fn ethertype(&self) -> u16 {
        be16(self.buffer.as_ref(), field::ETHERTYPE.start)
    }
    /// Everything after the inner EtherType.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the TCI.
    #[inline]
    pub fn set_tci(&mut self, tci: u16) {
        put16(self.buffer.as_mut(), field::TCI.start, tci);
    }
    /// Sets the inner EtherType.
    #[inline]
    pub fn set_ethertype(&mut self, t: u16) {
        put16(self.buffer.as_mut(), field::ETHERTYPE.start, t);
    }
    /// Everything after the inner EtherType, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields() {
        let mut b = [0u8; 4];
        assert!(Packet::new_checked(&b[..3]).is_err());
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.set_tci(0xa00a);
        p.set_ethertype(0x0800);
        assert_eq!((p.pcp(), p.vid(), p.ethertype()), (5, 10, 0x0800));
        assert!(p.payload().is_empty());
    }
}
