//! ARP (and RARP) view, Ethernet/IPv4 only (RFC 826).

use super::{arr, be16, put16, Malformed};

mod field {
    use std::ops::Range;
    pub const HTYPE: Range<usize> = 0..2;
    pub const PTYPE: Range<usize> = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Range<usize> = 6..8;
    pub const SHA: Range<usize> = 8..14;
    pub const SPA: Range<usize> = 14..18;
    pub const THA: Range<usize> = 18..24;
    pub const TPA: Range<usize> = 24..28;
}

/// Length of an Ethernet/IPv4 ARP packet.
pub const HEADER_LEN: usize = field::TPA.end;
/// `htype` for Ethernet.
pub const HTYPE_ETHERNET: u16 = 1;
/// ARP request opcode.
pub const OP_REQUEST: u16 = 1;
/// ARP reply opcode.
pub const OP_REPLY: u16 = 2;

/// A view of an ARP packet.
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
    /// Whether this is Ethernet/IPv4 ARP (the only kind whose addresses the view reads).
    #[inline]
    pub fn is_ethernet_ipv4(&self) -> bool {
        let b = self.buffer.as_ref();
        self.htype() == HTYPE_ETHERNET
            && self.ptype() == super::ethernet::ether_type::IPV4
            && b[field::HLEN] == 6
            && b[field::PLEN] == 4
    }
    /// Hardware type.
    #[inline]
    pub fn htype(&self) -> u16 {
        be16(self.buffer.as_ref(), field::HTYPE.start)
    }
    /// Protocol type.
    #[inline]
    pub fn ptype(&self) -> u16 {
        be16(self.buffer.as_ref(), field::PTYPE.start)
    }
    /// Operation.
    #[inline]
    pub fn oper(&self) -> u16 {
        be16(self.buffer.as_ref(), field::OPER.start)
    }
    /// Sender hardware address.
    #[inline]
    pub fn sha(&self) -> [u8; 6] {
        arr(self.buffer.as_ref(), field::SHA.start)
    }
    /// Sender protocol address.
    #[inline]
    pub fn spa(&self) -> [u8; 4] {
        arr(self.buffer.as_ref(), field::SPA.start)
    }
    /// Target hardware address.
    #[inline]
    pub fn tha(&self) -> [u8; 6] {
        arr(self.buffer.as_ref(), field::THA.start)
    }
    /// Target protocol address.
    #[inline]
    pub fn tpa(&self) -> [u8; 4] {
        arr(self.buffer.as_ref(), field::TPA.start)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Writes the fixed Ethernet/IPv4 header part (htype, ptype, hlen, plen).
    pub fn set_ethernet_ipv4(&mut self) {
        let b = self.buffer.as_mut();
        put16(b, field::HTYPE.start, HTYPE_ETHERNET);
        put16(b, field::PTYPE.start, super::ethernet::ether_type::IPV4);
        b[field::HLEN] = 6;
        b[field::PLEN] = 4;
    }
    /// Sets the operation.
    #[inline]
    pub fn set_oper(&mut self, op: u16) {
        put16(self.buffer.as_mut(), field::OPER.start, op);
    }
    /// Sets the sender hardware address.
    #[inline]
    pub fn set_sha(&mut self, a: [u8; 6]) {
        self.buffer.as_mut()[field::SHA].copy_from_slice(&a);
    }
    /// Sets the sender protocol address.
    #[inline]
    pub fn set_spa(&mut self, a: [u8; 4]) {
        self.buffer.as_mut()[field::SPA].copy_from_slice(&a);
    }
    /// Sets the target hardware address.
    #[inline]
    pub fn set_tha(&mut self, a: [u8; 6]) {
        self.buffer.as_mut()[field::THA].copy_from_slice(&a);
    }
    /// Sets the target protocol address.
    #[inline]
    pub fn set_tpa(&mut self, a: [u8; 4]) {
        self.buffer.as_mut()[field::TPA].copy_from_slice(&a);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let mut b = [0u8; HEADER_LEN];
        assert!(Packet::new_checked(&b[..27]).is_err());
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_ethernet_ipv4();
        p.set_oper(OP_REPLY);
        p.set_sha([1; 6]);
        p.set_spa([10, 0, 0, 1]);
        p.set_tha([2; 6]);
        p.set_tpa([10, 0, 0, 2]);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.is_ethernet_ipv4());
        assert_eq!(
            (p.oper(), p.sha(), p.spa(), p.tha(), p.tpa()),
            (2, [1; 6], [10, 0, 0, 1], [2; 6], [10, 0, 0, 2])
        );
    }
}
