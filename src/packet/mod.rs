//! packet — header views and builders. Does no I/O.
//!
//! One checked view per header, generic over the buffer (`T: AsRef<[u8]>` to read,
//! `AsMut<[u8]>` to write), after smoltcp's `wire`: `new_checked` on untrusted input makes
//! every accessor panic-free; `new_unchecked` is for emitting into buffers we sized, or for
//! reading after the caller checked the length itself (the flow-key extractor does).
//! [`Buf`] is a packet inside a larger buffer with room to push and pull headers in place.
//! [`checksum`] has the RFC 1071 sum and RFC 1624 incremental updates; [`build`] makes whole
//! frames with correct checksums for tests, pktgen and the demo.

pub mod arp;
mod buf;
pub mod build;
pub mod checksum;
pub mod ethernet;
pub mod gre;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
pub mod sctp;
pub mod tcp;
pub mod udp;
pub mod vlan;

pub use buf::Buf;

/// A frame too short for the headers it claims, or with a length field that lies. One unit
/// error on the hot path: drop reasons are counted by the caller, not carried here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed packet")]
pub struct Malformed;

/// IP protocol numbers (IPv4 `protocol`, IPv6 `next header`) the switch knows.
pub mod ip_proto {
    /// IPv6 hop-by-hop options extension header.
    pub const HOPOPTS: u8 = 0;
    /// ICMP (IPv4).
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// IPv6 routing extension header.
    pub const ROUTING: u8 = 43;
    /// IPv6 fragment extension header.
    pub const FRAGMENT: u8 = 44;
    /// GRE.
    pub const GRE: u8 = 47;
    /// Authentication header.
    pub const AH: u8 = 51;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
    /// IPv6 "no next header".
    pub const NONXT: u8 = 59;
    /// IPv6 destination options extension header.
    pub const DSTOPTS: u8 = 60;
    /// SCTP.
    pub const SCTP: u8 = 132;
}

/// Big-endian u16 at `b[at..at + 2]`. Panics if out of range: callers check lengths first.
#[inline(always)]
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Big-endian u32 at `b[at..at + 4]`. Panics if out of range: callers check lengths first.
#[inline(always)]
pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Writes a big-endian u16 at `b[at..at + 2]`.
#[inline(always)]
pub(crate) fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// Writes a big-endian u32 at `b[at..at + 4]`.
#[inline(always)]
pub(crate) fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

/// Copies `N` bytes at `b[at..]` into an array.
#[inline(always)]
pub(crate) fn arr<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&b[at..at + N]);
    a
}
