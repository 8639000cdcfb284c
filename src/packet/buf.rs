//! [`Buf`]: a packet at `head .. head + len` inside a larger buffer, so headers can be pushed
//! in front (VLAN tags, tunnel headers) or pulled off without moving the payload.

use super::Malformed;

/// A packet inside a buffer with headroom and tailroom.
#[derive(Debug)]
pub struct Buf<'a> {
    room: &'a mut [u8],
    head: usize,
    len: usize,
}

impl<'a> Buf<'a> {
    /// The packet is `room[head .. head + len]`.
    ///
    /// # Panics
    /// If that range does not lie inside `room` (a caller bug, never input-dependent).
    pub fn new(room: &'a mut [u8], head: usize, len: usize) -> Buf<'a> {
        assert!(head.checked_add(len).is_some_and(|end| end <= room.len()), "Buf range outside its buffer");
        Buf { room, head, len }
    }
    /// Offset of the first packet byte in the buffer.
    #[inline]
    pub fn head(&self) -> usize {
        self.head
    }
    /// Packet length.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Bytes free in front of the packet.
    #[inline]
    pub fn headroom(&self) -> usize {
        self.head
    }
    /// Bytes free after the packet.
    #[inline]
    pub fn tailroom(&self) -> usize {
        self.room.len() - self.head - self.len
    }
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.room[self.head..self.head + self.len]
    }
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.room[self.head..self.head + self.len]
    }
    /// Grows the packet by `n` bytes at the front (contents of the new bytes unspecified).
    #[inline]
    pub fn push_head(&mut self, n: usize) -> Result<(), Malformed> {
        if n > self.head {
            return Err(Malformed);
        }
        self.head -= n;
        self.len += n;
        Ok(())
    }
    /// Removes `n` bytes from the front.
    #[inline]
    pub fn pull_head(&mut self, n: usize) -> Result<(), Malformed> {
        if n > self.len {
            return Err(Malformed);
        }
        self.head += n;
        self.len -= n;
        Ok(())
    }
    /// Sets the packet length (shrinking, or growing into the tailroom).
    #[inline]
    pub fn set_len(&mut self, len: usize) -> Result<(), Malformed> {
        if self.head + len > self.room.len() {
            return Err(Malformed);
        }
        self.len = len;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_pull_bounds() {
        let mut mem = [0u8; 16];
        let mut b = Buf::new(&mut mem, 4, 8);
        assert_eq!(b.tailroom(), 4);
        assert!(b.push_head(5).is_err());
        b.push_head(4).unwrap();
        assert_eq!((b.head(), b.len()), (0, 12));
        b.pull_head(6).unwrap();
        assert!(b.pull_head(7).is_err());
        assert!(b.set_len(11).is_err());
        b.set_len(10).unwrap();
        assert_eq!(b.data().len(), 10);
    }
}
