//! Ethernet II header view: destination, source, EtherType.

use super::{arr, be16, put16, Malformed};

/// EtherType values the switch knows.
pub mod ether_type {
    /// IPv4.
    pub const IPV4: u16 = 0x0800;
    /// ARP.
    pub const ARP: u16 = 0x0806;
    /// Reverse ARP (same layout as ARP).
    pub const RARP: u16 = 0x8035;
    /// 802.1Q VLAN tag.
    pub const VLAN: u16 = 0x8100;
    /// 802.1ad service VLAN tag (QinQ outer tag).
    pub const QINQ: u16 = 0x88a8;
    /// IPv6.
    pub const IPV6: u16 = 0x86dd;
    /// Values below this are 802.3 lengths, not EtherTypes.
    pub const MIN: u16 = 0x0600;
    /// `dl_type` of an 802.3 (length, not type) frame, as OVS's `FLOW_DL_TYPE_NONE`.
    pub const NONE: u16 = 0x05ff;
}

/// `02:00:00:00:00:01`: an address as OVS and the operator's tools write it.
pub fn format_mac(a: &[u8; 6]) -> String {
    a.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// Whether `t` is a VLAN tag protocol identifier (802.1Q or 802.1ad).
#[inline]
pub fn is_vlan_tpid(t: u16) -> bool {
    t == ether_type::VLAN || t == ether_type::QINQ
}

mod field {
    use std::ops::Range;
    pub const DST: Range<usize> = 0..6;
    pub const SRC: Range<usize> = 6..12;
    pub const ETHERTYPE: Range<usize> = 12..14;
    pub const PAYLOAD: usize = 14;
}

/// Length of the Ethernet header (no tags).
pub const HEADER_LEN: usize = field::PAYLOAD;
/// Offset of the EtherType (or a tag's TPID).
pub const ETHERTYPE_OFFSET: usize = field::ETHERTYPE.start;
/// The broadcast address.
pub const BROADCAST: [u8; 6] = [0xff; 6];

/// A view of an Ethernet II frame.
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
    /// Makes every accessor panic-free: the buffer holds a whole header.
    pub fn check_len(&self) -> Result<(), Malformed> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return Err(Malformed);
        }
        Ok(())
    }
    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }
    /// Destination address.
    #[inline]
    pub fn dst(&self) -> [u8; 6] {
        arr(self.buffer.as_ref(), field::DST.start)
    }
    /// Source address.
    #[inline]
    pub fn src(&self) -> [u8; 6] {
        arr(self.buffer.as_ref(), field::SRC.start)
    }
    /// EtherType (or the outer tag's TPID, or an 802.3 length below 0x600).
    #[inline]
    pub fn ethertype(&self) -> u16 {
        be16(self.buffer.as_ref(), field::ETHERTYPE.start)
    }
    /// Everything after the EtherType.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the destination address.
    #[inline]
    pub fn set_dst(&mut self, a: [u8; 6]) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&a);
    }
    /// Sets the source address.
    #[inline]
    pub fn set_src(&mut self, a: [u8; 6]) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&a);
    }
    /// Sets the EtherType.
    #[inline]
    pub fn set_ethertype(&mut self, t: u16) {
        put16(self.buffer.as_mut(), field::ETHERTYPE.start, t);
    }
    /// Everything after the EtherType, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_write() {
        let mut b = [0u8; 16];
        assert!(Packet::new_checked(&b[..13]).is_err());
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.set_dst(BROADCAST);
        p.set_src([2, 0, 0, 0, 0, 1]);
        p.set_ethertype(ether_type::IPV4);
        p.payload_mut()[0] = 0x45;
        assert_eq!(p.dst(), BROADCAST);
        assert_eq!(p.src(), [2, 0, 0, 0, 0, 1]);
        assert_eq!(p.ethertype(), 0x0800);
        assert_eq!(p.payload(), &[0x45, 0]);
        assert!(is_vlan_tpid(0x88a8) && !is_vlan_tpid(0x0800));
    }
}
