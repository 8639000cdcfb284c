//! packet — header views and builders. Does no I/O.
//!
//! One checked view per header, generic over the buffer (`T: AsRef<[u8]>` to read,
//! `AsMut<[u8]>` to write), after smoltcp's `wire`: `new_checked` on untrusted input makes
//! every accessor panic-free; `new_unchecked` is for emitting into buffers we sized.
//! [`Buf`] is a packet inside a larger buffer with room to push and pull headers in place.

mod buf;

pub use buf::Buf;

/// A frame too short for the headers it claims, or with a length field that lies. One unit
/// error on the hot path: drop reasons are counted by the caller, not carried here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed packet")]
pub struct Malformed;
