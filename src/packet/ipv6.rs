//! IPv6 header view (RFC 8200) and the extension-header walk that finds the upper layer.

use super::{arr, be16, be32, ip_proto, put16, put32, Malformed};

mod field {
    use std::ops::Range;
    pub const VER_TC_FLOW: Range<usize> = 0..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: Range<usize> = 8..24;
    pub const DST: Range<usize> = 24..40;
}

/// Length of the fixed header.
pub const HEADER_LEN: usize = field::DST.end;
/// Offset of the hop limit.
pub const HOP_LIMIT_OFFSET: usize = field::HOP_LIMIT;
/// Offset of the source address.
pub const SRC_OFFSET: usize = field::SRC.start;
/// Offset of the destination address.
pub const DST_OFFSET: usize = field::DST.start;
/// At most this many extension headers are skipped looking for the upper layer.
pub const MAX_EXT_HEADERS: usize = 8;
/// Flow label bits.
pub const FLOW_LABEL_MASK: u32 = 0x000f_ffff;

/// A view of an IPv6 header and its payload.
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
    /// Makes every accessor panic-free: a 40-byte header, version 6, and the payload length
    /// within the buffer (bytes after it are padding).
    pub fn check_len(&self) -> Result<(), Malformed> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN || self.version() != 6 || HEADER_LEN + usize::from(self.payload_len()) > len {
            return Err(Malformed);
        }
        Ok(())
    }
    /// IP version (6).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }
    /// Traffic class (DSCP << 2 | ECN).
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        (be32(self.buffer.as_ref(), field::VER_TC_FLOW.start) >> 20) as u8
    }
    /// Flow label (20 bits).
    #[inline]
    pub fn flow_label(&self) -> u32 {
        be32(self.buffer.as_ref(), field::VER_TC_FLOW.start) & FLOW_LABEL_MASK
    }
    /// Payload length (extension headers included).
    #[inline]
    pub fn payload_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH.start)
    }
    /// The first next-header value.
    #[inline]
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NXT_HDR]
    }
    /// Hop limit.
    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }
    /// Source address.
    #[inline]
    pub fn src(&self) -> [u8; 16] {
        arr(self.buffer.as_ref(), field::SRC.start)
    }
    /// Destination address.
    #[inline]
    pub fn dst(&self) -> [u8; 16] {
        arr(self.buffer.as_ref(), field::DST.start)
    }
    /// The payload (extension headers included), padding excluded.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..HEADER_LEN + usize::from(self.payload_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Writes version 6, a traffic class and a flow label.
    #[inline]
    pub fn set_version_tc_flow(&mut self, tc: u8, label: u32) {
        let w = (6 << 28) | (u32::from(tc) << 20) | (label & FLOW_LABEL_MASK);
        put32(self.buffer.as_mut(), field::VER_TC_FLOW.start, w);
    }
    /// Sets the traffic class, keeping version and flow label.
    #[inline]
    pub fn set_traffic_class(&mut self, tc: u8) {
        let w = be32(self.buffer.as_ref(), 0);
        put32(self.buffer.as_mut(), 0, (w & 0xf00f_ffff) | (u32::from(tc) << 20));
    }
    /// Sets the payload length.
    #[inline]
    pub fn set_payload_len(&mut self, len: u16) {
        put16(self.buffer.as_mut(), field::LENGTH.start, len);
    }
    /// Sets the first next-header value.
    #[inline]
    pub fn set_next_header(&mut self, nh: u8) {
        self.buffer.as_mut()[field::NXT_HDR] = nh;
    }
    /// Sets the hop limit.
    #[inline]
    pub fn set_hop_limit(&mut self, h: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = h;
    }
    /// Sets the source address.
    #[inline]
    pub fn set_src(&mut self, a: &[u8; 16]) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(a);
    }
    /// Sets the destination address.
    #[inline]
    pub fn set_dst(&mut self, a: &[u8; 16]) {
        self.buffer.as_mut()[field::DST].copy_from_slice(a);
    }
    /// The payload, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = HEADER_LEN + usize::from(self.payload_len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

/// Where the upper-layer header of an IPv6 packet is, after [`upper_layer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpperLayer {
    /// The upper-layer protocol (the last next-header value).
    pub proto: u8,
    /// Its offset in the IPv6 payload.
    pub offset: usize,
    /// A fragment header was seen.
    pub fragment: bool,
    /// ... and its offset was not 0: the upper-layer header is not in this packet.
    pub later_fragment: bool,
}

/// Skips the hop-by-hop, routing, destination-options, authentication and fragment extension
/// headers at the start of `payload` (an IPv6 payload whose first next-header is `next`).
/// `Err` when one is truncated or there are more than [`MAX_EXT_HEADERS`]. A later fragment
/// stops the walk (its `proto` is the fragment header's next header).
#[inline]
pub fn upper_layer(payload: &[u8], mut next: u8) -> Result<UpperLayer, Malformed> {
    let mut off = 0usize;
    let mut fragment = false;
    for _ in 0..=MAX_EXT_HEADERS {
        let len = match next {
            ip_proto::HOPOPTS | ip_proto::ROUTING | ip_proto::DSTOPTS => {
                let h = payload.get(off..off + 2).ok_or(Malformed)?;
                (usize::from(h[1]) + 1) * 8
            }
            ip_proto::AH => {
                let h = payload.get(off..off + 2).ok_or(Malformed)?;
                (usize::from(h[1]) + 2) * 4
            }
            ip_proto::FRAGMENT => {
                let h = payload.get(off..off + 8).ok_or(Malformed)?;
                fragment = true;
                if be16(h, 2) & 0xfff8 != 0 {
                    return Ok(UpperLayer { proto: h[0], offset: off + 8, fragment, later_fragment: true });
                }
                8
            }
            proto => return Ok(UpperLayer { proto, offset: off, fragment, later_fragment: false }),
        };
        if off + len > payload.len() {
            return Err(Malformed);
        }
        next = payload[off];
        off += len;
    }
    Err(Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields() {
        let mut b = [0u8; 48];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_version_tc_flow(0xb8, 0x12345);
        p.set_payload_len(8);
        p.set_next_header(17);
        p.set_hop_limit(64);
        p.set_src(&[1; 16]);
        p.set_dst(&[2; 16]);
        p.set_traffic_class(0x04);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!((p.traffic_class(), p.flow_label(), p.hop_limit()), (0x04, 0x12345, 64));
        assert_eq!((p.src(), p.dst(), p.payload().len()), ([1; 16], [2; 16], 8));
        assert!(Packet::new_checked(&b[..47]).is_err());
    }

    #[test]
    fn ext_header_walk() {
        // hop-by-hop (8 bytes) -> fragment (offset 0) -> UDP
        let mut pl = vec![ip_proto::FRAGMENT, 0, 0, 0, 0, 0, 0, 0];
        pl.extend_from_slice(&[ip_proto::UDP, 0, 0, 0, 0, 0, 0, 1]);
        let ul = upper_layer(&pl, ip_proto::HOPOPTS).unwrap();
        assert_eq!(ul, UpperLayer { proto: 17, offset: 16, fragment: true, later_fragment: false });
        pl[10] = 0x01; // fragment offset 32 bytes
        let ul = upper_layer(&pl, ip_proto::HOPOPTS).unwrap();
        assert!(ul.later_fragment && ul.proto == 17);
        assert!(upper_layer(&pl[..12], ip_proto::HOPOPTS).is_err());
        assert!(upper_layer(&pl[..1], ip_proto::HOPOPTS).is_err());
        // a long chain of destination options headers is refused
        let chain: Vec<u8> =
            (0..MAX_EXT_HEADERS + 1).flat_map(|_| [ip_proto::DSTOPTS, 0, 0, 0, 0, 0, 0, 0]).collect();
        assert!(upper_layer(&chain, ip_proto::DSTOPTS).is_err());
        assert_eq!(upper_layer(&[], ip_proto::TCP).unwrap().offset, 0);
    }
}
