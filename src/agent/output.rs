//! [`Output`]: the write side of one OpenFlow connection, shared by the connection's task and
//! the bridge's control thread.
//!
//! The control thread writes its replies and asynchronous messages straight into the socket
//! (non-blocking) instead of handing them to the agent thread. A request/reply round trip
//! (`ovs-ofctl add-flows` sends every flow-mod with a barrier and waits for its reply) then
//! costs one thread wake-up less. Whatever the socket does not take at once stays in a
//! backlog, in order, and the connection's task writes it when the socket drains; the task's
//! own bytes (HELLO, echo replies, errors for undecodable input) go through the same backlog,
//! so every byte leaves in the order it was queued.
//!
//! Replies are never dropped. An asynchronous message is dropped (and the caller told) when
//! the backlog is over [`ASYNC_BACKLOG`] bytes, so a controller that stops reading never
//! stalls the control thread, let alone forwarding.

use std::io::{self, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::ofp::{self, Message};

/// Backlog bytes beyond which asynchronous messages are dropped.
pub const ASYNC_BACKLOG: usize = 1 << 20;

/// The shared write side of one connection.
#[derive(Debug)]
pub struct Output {
    state: Mutex<State>,
    /// Tells the connection's task that the backlog grew or the connection should close.
    wake: Notify,
}

#[derive(Debug)]
struct State {
    /// The socket (non-blocking), a second handle on the task's.
    sock: TcpStream,
    /// Bytes queued and not yet written, oldest first.
    backlog: Vec<u8>,
    /// Close once the backlog is written.
    closing: bool,
    /// A write failed or the task ended: drop everything from now on.
    dead: bool,
    /// Messages that failed to encode.
    encode_failures: u64,
}

/// What [`Output::flush_with`] left behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flushed {
    /// Backlog empty.
    Done,
    /// The socket is full; bytes remain.
    Blocked,
    /// The connection is dead (a write failed, or it was closed and is drained).
    Closed,
}

impl Output {
    /// Shares `sock`, which must be non-blocking.
    pub fn new(sock: TcpStream) -> Output {
        Output {
            state: Mutex::new(State {
                sock,
                backlog: Vec::new(),
                closing: false,
                dead: false,
                encode_failures: 0,
            }),
            wake: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain bytes behind: still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `msgs` and writes what the socket takes now. Never blocks, never drops.
    pub fn send_messages(&self, msgs: &[Message]) {
        let mut st = self.lock();
        if st.dead {
            return;
        }
        for m in msgs {
            st.encode(m);
        }
        self.push_locked(st);
    }

    /// Queues `msg` unless the backlog is over [`ASYNC_BACKLOG`]; `false` when dropped.
    pub fn send_async(&self, msg: &Message) -> bool {
        let mut st = self.lock();
        if st.dead || st.backlog.len() > ASYNC_BACKLOG {
            return false;
        }
        st.encode(msg);
        self.push_locked(st);
        true
    }

    /// Queues raw bytes (already encoded by the connection's [`ofp::Channel`]).
    pub fn send_bytes(&self, bytes: &[u8]) {
        let mut st = self.lock();
        if st.dead || bytes.is_empty() {
            return;
        }
        st.backlog.extend_from_slice(bytes);
        self.push_locked(st);
    }

    /// Closes the connection once what is queued has been written.
    pub fn close(&self) {
        self.lock().closing = true;
        self.wake.notify_one();
    }

    /// Tries to write the backlog; wakes the task if bytes remain or the connection ended.
    fn push_locked(&self, mut st: MutexGuard<'_, State>) {
        let r = st.write_with(|sock, b| (&*sock).write(b));
        drop(st);
        if r != Flushed::Done {
            self.wake.notify_one();
        }
    }

    /// Writes the backlog with `write` (the task passes its runtime's `try_write`, so the
    /// runtime learns when the socket is full); returns what is left.
    pub fn flush_with(&self, write: impl FnMut(&[u8]) -> io::Result<usize>) -> Flushed {
        let mut write = write;
        self.lock().write_with(|_, b| write(b))
    }

    /// Waits until [`Output`] has news for the task (more backlog, a close, a dead socket).
    pub async fn notified(&self) {
        self.wake.notified().await
    }

    /// Whether bytes wait for the socket.
    pub fn has_backlog(&self) -> bool {
        let st = self.lock();
        !st.dead && !st.backlog.is_empty()
    }

    /// Whether the connection should end now: closed (and drained) or dead.
    pub fn is_finished(&self) -> bool {
        let st = self.lock();
        st.dead || (st.closing && st.backlog.is_empty())
    }

    /// Marks the connection dead and shuts the socket down (the task is ending): later
    /// messages are dropped, and the peer sees the close even while the control thread
    /// still holds this handle.
    pub fn shut_down(&self) {
        let mut st = self.lock();
        st.dead = true;
        st.backlog = Vec::new();
        let _ = st.sock.shutdown(Shutdown::Both);
    }

    /// Messages that could not be encoded (dropped).
    pub fn encode_failures(&self) -> u64 {
        self.lock().encode_failures
    }
}

impl State {
    fn encode(&mut self, m: &Message) {
        let start = self.backlog.len();
        if ofp::encode(m, &mut self.backlog).is_err() {
            self.backlog.truncate(start);
            self.encode_failures += 1;
            tracing::warn!(xid = %m.xid, version = m.version, "cannot encode outgoing OpenFlow message");
        }
    }

    fn write_with(&mut self, mut write: impl FnMut(&mut TcpStream, &[u8]) -> io::Result<usize>) -> Flushed {
        let mut done = 0;
        let result = loop {
            if self.dead {
                break Flushed::Closed;
            }
            if done == self.backlog.len() {
                break Flushed::Done;
            }
            match write(&mut self.sock, &self.backlog[done..]) {
                Ok(0) => {
                    self.dead = true;
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Flushed::Blocked,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::debug!("OpenFlow connection write: {e}");
                    self.dead = true;
                }
            }
        };
        if self.dead {
            self.backlog = Vec::new();
        } else {
            self.backlog.drain(..done);
        }
        match result {
            Flushed::Done if self.closing => Flushed::Closed,
            r => r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ofp::{Body, Decoded, Xid, OFP13_VERSION};
    use std::io::Read;
    use std::net::TcpListener;
    use std::time::Duration;

    /// A connected loopback pair: (our non-blocking end, the peer's blocking end).
    fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let ours = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (peer, _) = l.accept().unwrap();
        ours.set_nonblocking(true).unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        (ours, peer)
    }

    fn barrier_reply(xid: u32) -> Message {
        Message { version: OFP13_VERSION, xid: Xid(xid), body: Body::BarrierReply }
    }

    /// Reads and decodes `n` messages from `peer`.
    fn read_msgs(peer: &mut TcpStream, n: usize) -> Vec<Message> {
        let (mut buf, mut got) = (Vec::new(), Vec::new());
        let mut chunk = [0u8; 4096];
        while got.len() < n {
            match ofp::decode(&buf).unwrap() {
                Decoded::Message { msg, len } => {
                    buf.drain(..len);
                    got.push(msg);
                }
                Decoded::NeedMore(_) => {
                    let k = peer.read(&mut chunk).unwrap();
                    assert!(k > 0, "peer closed after {} messages", got.len());
                    buf.extend_from_slice(&chunk[..k]);
                }
            }
        }
        got
    }

    #[test]
    fn replies_and_raw_bytes_arrive_in_queue_order() {
        let (ours, mut peer) = pair();
        let out = Output::new(ours);
        out.send_messages(&[barrier_reply(1), barrier_reply(2)]);
        let mut raw = Vec::new();
        ofp::encode(&barrier_reply(3), &mut raw).unwrap();
        out.send_bytes(&raw);
        assert!(out.send_async(&barrier_reply(4)));
        assert!(!out.has_backlog());
        let xids: Vec<u32> = read_msgs(&mut peer, 4).iter().map(|m| m.xid.0).collect();
        assert_eq!(xids, vec![1, 2, 3, 4]);
        assert_eq!(out.encode_failures(), 0);
    }

    #[test]
    fn full_socket_keeps_replies_drops_async_and_flush_drains_in_order() {
        let (ours, mut peer) = pair();
        let task_handle = ours.try_clone().unwrap();
        let out = Output::new(ours);
        // The peer does not read: fill the socket and then the backlog past its bound.
        let mut xid = 0;
        while !out.has_backlog() || out.lock().backlog.len() <= ASYNC_BACKLOG {
            xid += 1;
            out.send_messages(&[barrier_reply(xid)]);
        }
        assert!(!out.send_async(&barrier_reply(u32::MAX)), "async message over the bound is dropped");
        out.send_messages(&[barrier_reply(xid + 1)]);
        // Drain: read on a thread while flushing here, as the task does.
        let n = xid as usize + 1;
        let reader = std::thread::spawn(move || read_msgs(&mut peer, n));
        let mut rounds = 0;
        while out.flush_with(|b| (&task_handle).write(b)) == Flushed::Blocked {
            rounds += 1;
            assert!(rounds < 100_000, "backlog never drained");
            std::thread::sleep(Duration::from_micros(100));
        }
        let got = reader.join().unwrap();
        let xids: Vec<u32> = got.iter().map(|m| m.xid.0).collect();
        assert_eq!(xids, (1..=xid + 1).collect::<Vec<_>>());
    }

    #[test]
    fn close_after_drain_and_dead_socket_drops_everything() {
        let (ours, mut peer) = pair();
        let out = Output::new(ours);
        out.send_messages(&[barrier_reply(7)]);
        out.close();
        assert!(out.is_finished());
        assert_eq!(read_msgs(&mut peer, 1)[0].xid, Xid(7));
        out.shut_down();
        out.send_messages(&[barrier_reply(8)]);
        assert!(!out.send_async(&barrier_reply(9)));
        assert!(!out.has_backlog());
        let mut rest = Vec::new();
        assert_eq!(peer.read_to_end(&mut rest).unwrap(), 0, "peer sees the close and nothing more");
    }
}
