//! The frame pool of one poll thread: a memory area cut into fixed-size chunks, shared by
//! every AF_XDP socket (and in-memory queue) that thread serves.
//!
//! Ownership is a type: a [`Frame`] names one chunk and is neither `Copy` nor `Clone`, so at
//! any time exactly one place holds it — the free list, a fill ring, a receive batch, a
//! transmit ring, a completion ring. The kernel writes only into chunks we have handed it
//! (fill ring) and reads only chunks on a TX ring, so while we hold a `Frame` its chunk is
//! ours alone and may be seen as `&mut [u8]`. No reference to the whole area is ever made.

use std::io;
use std::ptr::NonNull;

use crate::packet::Buf;

/// Size of one chunk. A power of two: the chunk of an address is `addr & !(CHUNK_SIZE - 1)`.
pub const CHUNK_SIZE: u32 = 2048;
/// Where packet data starts in a fresh chunk: room to push headers (VLAN, tunnels) in place.
/// Equals the kernel's `XDP_PACKET_HEADROOM`, which is where received frames land.
pub const FRAME_HEADROOM: u32 = 256;

/// One UMEM chunk holding one packet at `addr .. addr + len` (addresses are offsets into the
/// UMEM). Exactly one holder at a time: free list → fill ring → rx batch → (another port's)
/// tx ring → completion ring → free list.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame {
    addr: u64,
    len: u32,
}

impl Frame {
    /// Makes a frame from a descriptor the kernel (or a queue) handed back to us.
    /// Only `netdev` creates frames: whoever calls this asserts it now owns the chunk.
    pub(crate) fn from_desc(addr: u64, len: u32) -> Frame {
        Frame { addr, len }
    }
    /// The descriptor address (offset of the first packet byte in the UMEM).
    #[inline]
    pub fn addr(&self) -> u64 {
        self.addr
    }
    /// The packet length in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.len as usize
    }
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Sets the packet length (after a queue wrote the bytes into the frame's room).
    /// Only `netdev` calls this; `len` must fit the chunk after the frame's start.
    pub(crate) fn set_len(&mut self, len: usize) {
        assert!(self.headroom() + len <= CHUNK_SIZE as usize, "frame length beyond its chunk");
        self.len = len as u32;
    }
    /// Offset of the chunk this frame lives in.
    #[inline]
    pub fn chunk(&self) -> u64 {
        self.addr & !(CHUNK_SIZE as u64 - 1)
    }
    /// Offset of the packet within its chunk (its headroom).
    #[inline]
    pub fn headroom(&self) -> usize {
        (self.addr - self.chunk()) as usize
    }
}

/// A frame pool: `n_chunks` chunks of [`CHUNK_SIZE`] bytes in one anonymous mapping, and the
/// free list. Owned by one poll thread; not shared.
pub struct Umem {
    area: NonNull<u8>,
    size: usize,
    free: Vec<u64>,
    n_chunks: u32,
    /// The AF_XDP socket that registered this area with the kernel, if any; later sockets
    /// share it (`XDP_SHARED_UMEM`). Set and used only by `afxdp`. A weak reference: once
    /// that socket is closed, the next socket registers the area again (never a stale fd).
    pub(crate) registered_by: Option<std::sync::Weak<std::os::fd::OwnedFd>>,
}

// SAFETY: `Umem` owns its mapping exclusively (no aliases escape except through `Frame`
// ownership), so moving it to another thread moves that exclusive ownership with it.
unsafe impl Send for Umem {}

impl Umem {
    /// Maps `n_chunks` chunks of anonymous, zeroed memory, all on the free list.
    pub fn new(n_chunks: u32) -> io::Result<Umem> {
        if n_chunks == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "UMEM needs at least one chunk"));
        }
        let size = n_chunks as usize * CHUNK_SIZE as usize;
        // SAFETY: an anonymous private mapping with no address hint; the arguments are valid
        // and the result is checked against MAP_FAILED.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let area = NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        let free = (0..n_chunks as u64).rev().map(|i| i * CHUNK_SIZE as u64).collect();
        Ok(Umem { area, size, free, n_chunks, registered_by: None })
    }

    /// Total number of chunks.
    pub fn n_chunks(&self) -> u32 {
        self.n_chunks
    }
    /// Chunks on the free list.
    pub fn n_free(&self) -> usize {
        self.free.len()
    }
    /// Start and size of the area, to register it with the kernel.
    pub(crate) fn area(&self) -> (NonNull<u8>, usize) {
        (self.area, self.size)
    }

    /// Takes a chunk off the free list, as an empty frame with [`FRAME_HEADROOM`] in front.
    #[inline]
    pub fn alloc(&mut self) -> Option<Frame> {
        self.free.pop().map(|chunk| Frame { addr: chunk + FRAME_HEADROOM as u64, len: 0 })
    }
    /// Takes a chunk off the free list for the kernel's fill ring: returns its chunk address.
    #[inline]
    pub(crate) fn alloc_chunk(&mut self) -> Option<u64> {
        self.free.pop()
    }
    /// Returns a chunk address (as handed back by the kernel's completion ring) to the pool.
    #[inline]
    pub(crate) fn free_addr(&mut self, addr: u64) {
        debug_assert!(self.free.len() < self.n_chunks as usize, "double free of UMEM chunk");
        self.free.push(addr & !(CHUNK_SIZE as u64 - 1));
    }
    /// Returns a frame's chunk to the free list.
    #[inline]
    pub fn free(&mut self, frame: Frame) {
        self.free_addr(frame.addr);
    }

    /// The whole chunk of `frame`, mutable.
    #[inline]
    fn chunk_mut(&mut self, frame: &Frame) -> &mut [u8] {
        let chunk = frame.chunk() as usize;
        assert!(chunk + CHUNK_SIZE as usize <= self.size, "frame outside its UMEM");
        // SAFETY: `Frame` ownership: the holder of `frame` is the only one who may touch this
        // chunk (it is on no kernel ring), the range lies inside our mapping (checked above),
        // and `&mut self` keeps any other slice of this UMEM from being alive at the same time.
        unsafe { std::slice::from_raw_parts_mut(self.area.as_ptr().add(chunk), CHUNK_SIZE as usize) }
    }

    /// The packet bytes of `frame`.
    #[inline]
    pub fn data(&mut self, frame: &Frame) -> &[u8] {
        let (off, len) = (frame.headroom(), frame.len());
        &self.chunk_mut(frame)[off..off + len]
    }
    /// The packet bytes of `frame`, writable.
    #[inline]
    pub fn data_mut(&mut self, frame: &Frame) -> &mut [u8] {
        let (off, len) = (frame.headroom(), frame.len());
        &mut self.chunk_mut(frame)[off..off + len]
    }

    /// The room from the frame's first byte to the end of its chunk, writable (a queue reads
    /// a packet into it, then sets the length with `Frame::set_len`).
    #[inline]
    pub(crate) fn room_mut(&mut self, frame: &Frame) -> &mut [u8] {
        let off = frame.headroom();
        &mut self.chunk_mut(frame)[off..]
    }

    /// Lends the frame as a [`Buf`] (bytes plus room around them to push or pull headers, or
    /// to grow); whatever `f` leaves as the packet becomes the frame.
    #[inline]
    pub fn with_buf<R>(&mut self, frame: &mut Frame, f: impl FnOnce(&mut Buf<'_>) -> R) -> R {
        let chunk_addr = frame.chunk();
        let (off, len) = (frame.headroom(), frame.len());
        let mut buf = Buf::new(self.chunk_mut(frame), off, len);
        let r = f(&mut buf);
        frame.addr = chunk_addr + buf.head() as u64;
        frame.len = buf.len() as u32;
        r
    }

    /// Writes `bytes` into a fresh frame (at [`FRAME_HEADROOM`]). `None` when the pool is
    /// empty or `bytes` does not fit a chunk.
    pub fn frame_from(&mut self, bytes: &[u8]) -> Option<Frame> {
        if bytes.len() > (CHUNK_SIZE - FRAME_HEADROOM) as usize {
            return None;
        }
        let mut f = self.alloc()?;
        f.len = bytes.len() as u32;
        self.data_mut(&f).copy_from_slice(bytes);
        Some(f)
    }

    /// Copies `frame` into a fresh frame with the same headroom. `None` when the pool is empty.
    pub fn clone_frame(&mut self, frame: &Frame) -> Option<Frame> {
        let mut copy = self.alloc()?;
        copy.addr = copy.chunk() + frame.headroom() as u64;
        copy.len = frame.len;
        let (src_off, len) = (frame.headroom(), frame.len());
        let src_chunk = frame.chunk() as usize;
        let dst_chunk = copy.chunk() as usize;
        assert!(src_chunk + CHUNK_SIZE as usize <= self.size && dst_chunk + CHUNK_SIZE as usize <= self.size);
        // SAFETY: both chunks are inside the mapping (checked above) and distinct (`copy` was
        // just taken off the free list while `frame` is held by the caller); we own both, so
        // copying between them races with nobody.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.area.as_ptr().add(src_chunk + src_off),
                self.area.as_ptr().add(dst_chunk + src_off),
                len,
            );
        }
        Some(copy)
    }
}

impl Drop for Umem {
    fn drop(&mut self) {
        // SAFETY: `area`/`size` came from our successful mmap and are unmapped once. Sockets
        // that registered the area are closed before their `Umem` is dropped (poll threads drop
        // queues first); the kernel keeps its own page references in any case.
        unsafe {
            libc::munmap(self.area.as_ptr().cast(), self.size);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alloc_free_roundtrip() {
        let mut u = Umem::new(4).unwrap();
        let frames: Vec<_> = (0..4).map(|_| u.alloc().unwrap()).collect();
        assert!(u.alloc().is_none());
        let chunks: std::collections::HashSet<_> = frames.iter().map(|f| f.chunk()).collect();
        assert_eq!(chunks.len(), 4);
        for f in frames {
            assert_eq!(f.headroom(), FRAME_HEADROOM as usize);
            u.free(f);
        }
        assert_eq!(u.n_free(), 4);
    }

    #[test]
    fn frame_from_clone_and_buf() {
        let mut u = Umem::new(4).unwrap();
        let mut f = u.frame_from(&[1, 2, 3, 4]).unwrap();
        let c = u.clone_frame(&f).unwrap();
        assert_eq!(u.data(&c), &[1, 2, 3, 4]);
        u.with_buf(&mut f, |b| {
            b.push_head(2).unwrap();
            b.data_mut()[..2].copy_from_slice(&[9, 9]);
        });
        assert_eq!(u.data(&f), &[9, 9, 1, 2, 3, 4]);
        assert_eq!(f.headroom(), FRAME_HEADROOM as usize - 2);
        assert_eq!(u.data(&c), &[1, 2, 3, 4]);
        assert!(u.frame_from(&vec![0u8; CHUNK_SIZE as usize]).is_none());
    }
}
