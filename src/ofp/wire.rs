//! Checked big-endian reading and length-patching writing, shared by every message.
//!
//! A [`Reader`] carries the [`Reason`] to report when input runs short, so each structure
//! reports the spec's error for its own kind of length problem.

use super::error::{EncodeError, Reason};

/// A cursor over untrusted bytes; every read is bounds-checked.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    short: Reason,
}

impl<'a> Reader<'a> {
    /// Reads `buf`; a read past its end fails with `short`.
    pub(crate) fn new(buf: &'a [u8], short: Reason) -> Self {
        Reader { buf, short }
    }

    /// Bytes not yet read.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// Takes the next `n` bytes.
    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], Reason> {
        if n > self.buf.len() {
            return Err(self.short.clone());
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    /// Takes everything left.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }

    /// Skips `n` bytes of padding, which must be zero (so that a decoded message re-encodes
    /// to the same bytes); nonzero padding fails with the reader's length error.
    pub(crate) fn skip(&mut self, n: usize) -> Result<(), Reason> {
        if self.bytes(n)?.iter().any(|&b| b != 0) {
            return Err(self.short.clone());
        }
        Ok(())
    }

    /// Consumes the rest as padding: it must be all zeros.
    pub(crate) fn pad_rest(&mut self) -> Result<(), Reason> {
        self.skip(self.buf.len())
    }

    /// Reads a fixed-size array.
    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], Reason> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, Reason> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, Reason> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, Reason> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, Reason> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// Reads a NUL-padded fixed-size string field (`char name[N]`).
    pub(crate) fn str(&mut self, n: usize) -> Result<String, Reason> {
        let raw = self.bytes(n)?;
        // Only the form `put_str` writes is accepted, so a decoded string re-encodes into the
        // same field: UTF-8 text, then NULs to the end, at least one.
        let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
        if end == raw.len() || raw[end..].iter().any(|&b| b != 0) {
            return Err(self.short.clone());
        }
        match std::str::from_utf8(&raw[..end]) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(self.short.clone()),
        }
    }

    /// Fails with `err` unless all input was consumed.
    pub(crate) fn finish(&self, err: Reason) -> Result<(), Reason> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(err)
        }
    }
}

/// Big-endian appends onto a `Vec<u8>`.
pub(crate) trait Put {
    fn put_u8(&mut self, v: u8);
    fn put_u16(&mut self, v: u16);
    fn put_u32(&mut self, v: u32);
    fn put_u64(&mut self, v: u64);
    fn put_zeros(&mut self, n: usize);
    /// Writes `s` NUL-padded into an `n`-byte field, truncated to leave one NUL.
    fn put_str(&mut self, s: &str, n: usize);
    /// Zero-pads so the length since `start` is a multiple of 8.
    fn pad8(&mut self, start: usize);
    /// Writes the byte count since `start` as a u16 at `at`.
    fn patch_len(&mut self, at: usize, start: usize) -> Result<(), EncodeError>;
}

impl Put for Vec<u8> {
    fn put_u8(&mut self, v: u8) {
        self.push(v);
    }
    fn put_u16(&mut self, v: u16) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn put_u32(&mut self, v: u32) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn put_u64(&mut self, v: u64) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn put_zeros(&mut self, n: usize) {
        self.resize(self.len() + n, 0);
    }
    fn put_str(&mut self, s: &str, n: usize) {
        let b = s.as_bytes();
        let mut take = b.len().min(n.saturating_sub(1));
        while !s.is_char_boundary(take) {
            take -= 1;
        }
        self.extend_from_slice(&b[..take]);
        self.put_zeros(n - take);
    }
    fn pad8(&mut self, start: usize) {
        let len = self.len() - start;
        self.put_zeros(pad8(len) - len);
    }
    fn patch_len(&mut self, at: usize, start: usize) -> Result<(), EncodeError> {
        let len = u16::try_from(self.len() - start).map_err(|_| EncodeError::TooLong)?;
        if let Some(dst) = self.get_mut(at..at + 2) {
            dst.copy_from_slice(&len.to_be_bytes());
        }
        Ok(())
    }
}

/// `n` rounded up to a multiple of 8.
pub(crate) const fn pad8(n: usize) -> usize {
    n.div_ceil(8) * 8
}
