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
//! Over TLS the connection's rustls session lives here too, beside the socket: queued bytes
//! are plaintext, handed to the session and written out as TLS records by whoever flushes
//! (the control thread or the task), and the task reads through it ([`Output::receive_with`]).
//! Everything above this file is the same for TCP and TLS.
//!
//! Replies are never dropped. An asynchronous message is dropped (and the caller told) when
//! the backlog is over [`ASYNC_BACKLOG`] bytes, so a controller that stops reading never
//! stalls the control thread, let alone forwarding.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::UnixStream;
use std::sync::{Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::ofp::{self, Message};

/// Backlog bytes beyond which asynchronous messages are dropped.
pub const ASYNC_BACKLOG: usize = 1 << 20;

/// The socket under a connection: TCP (`tcp:`, `ptcp:`, `ssl:`, `pssl:`) or a unix stream
/// (`punix:`, the bridge's management socket).
#[derive(Debug)]
pub enum Sock {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Sock {
    fn shutdown(&self) -> io::Result<()> {
        match self {
            Sock::Tcp(s) => s.shutdown(Shutdown::Both),
            Sock::Unix(s) => s.shutdown(Shutdown::Both),
        }
    }
}

impl Write for &Sock {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sock::Tcp(s) => (&*s).write(buf),
            Sock::Unix(s) => (&*s).write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl From<TcpStream> for Sock {
    fn from(s: TcpStream) -> Sock {
        Sock::Tcp(s)
    }
}

impl From<UnixStream> for Sock {
    fn from(s: UnixStream) -> Sock {
        Sock::Unix(s)
    }
}

/// The shared write side of one connection.
#[derive(Debug)]
pub struct Output {
    state: Mutex<State>,
    /// Whether the connection runs over TLS (reads then go through the session).
    tls: bool,
    /// Tells the connection's task that the backlog grew or the connection should close.
    wake: Notify,
}

#[derive(Debug)]
struct State {
    /// The socket (non-blocking), a second handle on the task's.
    sock: Sock,
    /// The TLS session, for a TLS connection.
    tls: Option<Box<rustls::Connection>>,
    /// Bytes queued and not yet written (over TLS: not yet handed to the session), oldest
    /// first.
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

/// What [`Output::receive_with`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Received {
    /// Bytes were read (over TLS: perhaps only handshake records, no plaintext).
    Data,
    /// Nothing to read now.
    WouldBlock,
    /// The peer closed the connection.
    Eof,
    /// Reading from the socket failed; the reason.
    Failed(String),
    /// The TLS handshake failed (a bad certificate, most often) or the peer sent a bad
    /// record; the reason.
    TlsFailed(String),
}

impl Output {
    /// Shares `sock`, which must be non-blocking (plain TCP or a unix stream).
    pub fn new(sock: impl Into<Sock>) -> Output {
        Output::with_session(sock.into(), None)
    }

    /// Shares `sock` (non-blocking) for a TLS connection run by `session`, which may still
    /// be before its handshake: bytes queued meanwhile wait in the session.
    pub fn new_tls(sock: TcpStream, session: rustls::Connection) -> Output {
        Output::with_session(Sock::Tcp(sock), Some(Box::new(session)))
    }

    fn with_session(sock: Sock, tls: Option<Box<rustls::Connection>>) -> Output {
        Output {
            tls: tls.is_some(),
            state: Mutex::new(State {
                sock,
                tls,
                backlog: Vec::new(),
                closing: false,
                dead: false,
                encode_failures: 0,
            }),
            wake: Notify::new(),
        }
    }

    /// Reads what the socket has with `read` (the task passes its runtime's `try_read`) and
    /// hands the OpenFlow bytes to `deliver`: straight from the socket over TCP (without the
    /// lock), decrypted by the session over TLS, which also answers the handshake.
    pub fn receive_with(
        &self,
        buf: &mut [u8],
        mut read: impl FnMut(&mut [u8]) -> io::Result<usize>,
        mut deliver: impl FnMut(&[u8]),
    ) -> Received {
        if !self.tls {
            return match read(buf) {
                Ok(0) => Received::Eof,
                Ok(n) => {
                    deliver(&buf[..n]);
                    Received::Data
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Received::WouldBlock,
                Err(e) => Received::Failed(e.to_string()),
            };
        }
        let mut st = self.lock();
        let r = st.receive_tls(buf, &mut read, &mut deliver);
        // Handshake messages, alerts, key updates: out now, or by the task when writable.
        if st.write_with(|sock, b| (&*sock).write(b)) != Flushed::Done {
            drop(st);
            self.wake.notify_one();
        }
        r
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

    /// Whether bytes wait for the socket (over TLS, not for the handshake to go on).
    pub fn has_backlog(&self) -> bool {
        let st = self.lock();
        if st.dead {
            return false;
        }
        match st.tls.as_deref() {
            None => !st.backlog.is_empty(),
            Some(tls) => tls.wants_write() || (!st.backlog.is_empty() && !tls.is_handshaking()),
        }
    }

    /// Whether the connection should end now: closed (and drained) or dead.
    pub fn is_finished(&self) -> bool {
        let st = self.lock();
        let drained = st.backlog.is_empty() && !st.tls.as_deref().is_some_and(|t| t.wants_write());
        st.dead || (st.closing && drained)
    }

    /// Marks the connection dead and shuts the socket down (the task is ending): later
    /// messages are dropped, and the peer sees the close even while the control thread
    /// still holds this handle.
    pub fn shut_down(&self) {
        let mut st = self.lock();
        if !st.dead {
            let st = &mut *st;
            if let Some(tls) = st.tls.as_deref_mut() {
                // Best effort: a TLS peer then sees a clean close.
                tls.send_close_notify();
                let _ = tls.write_tls(&mut &st.sock);
            }
        }
        st.dead = true;
        st.backlog = Vec::new();
        let _ = st.sock.shutdown();
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

    /// Writes what is queued: over TCP the backlog itself; over TLS the session's records
    /// first, then more plaintext into the session. One place handles what the socket says.
    fn write_with(&mut self, mut write: impl FnMut(&mut Sock, &[u8]) -> io::Result<usize>) -> Flushed {
        let mut done = 0;
        let result = loop {
            if self.dead {
                break Flushed::Closed;
            }
            // Bytes for the wire: the session's records, or the backlog on a plain socket.
            let wire = match self.tls.as_deref_mut() {
                Some(tls) if tls.wants_write() => {
                    tls.write_tls(&mut WriteFn { sock: &mut self.sock, write: &mut write }).map(|n| (n, 0))
                }
                Some(tls) => {
                    if done == self.backlog.len() {
                        break Flushed::Done;
                    }
                    match tls.writer().write(&self.backlog[done..]) {
                        // The session's buffer is full and it has nothing to send: its
                        // handshake is still under way.
                        Ok(0) => break Flushed::Blocked,
                        Ok(n) => done += n,
                        Err(e) => {
                            tracing::debug!("OpenFlow connection write: {e}");
                            self.dead = true;
                        }
                    }
                    continue;
                }
                None if done == self.backlog.len() => break Flushed::Done,
                None => write(&mut self.sock, &self.backlog[done..]).map(|n| (n, n)),
            };
            match wire {
                Ok((0, _)) => self.dead = true,
                Ok((_, consumed)) => done += consumed,
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

    /// One read from the socket through the TLS session: decrypted bytes go to `deliver`.
    fn receive_tls(
        &mut self,
        buf: &mut [u8],
        read: &mut dyn FnMut(&mut [u8]) -> io::Result<usize>,
        deliver: &mut dyn FnMut(&[u8]),
    ) -> Received {
        let Some(tls) = self.tls.as_deref_mut().filter(|_| !self.dead) else { return Received::Eof };
        let mut eof = false;
        match tls.read_tls(&mut ReadFn(read)) {
            Ok(0) => eof = true,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Received::WouldBlock,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Received::WouldBlock,
            Err(e) => return Received::Failed(e.to_string()),
        }
        let processed = tls.process_new_packets();
        // What was decrypted before any error still counts.
        loop {
            match tls.reader().read(buf) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => deliver(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    eof = true;
                    break;
                }
            }
        }
        match processed {
            Err(e) if tls.is_handshaking() => Received::TlsFailed(format!("TLS handshake failed: {e}")),
            Err(e) => Received::TlsFailed(format!("TLS: {e}")),
            Ok(_) if eof => Received::Eof,
            Ok(_) => Received::Data,
        }
    }
}

/// `io::Read` over a closure (the task's `try_read`), for rustls.
struct ReadFn<'a>(&'a mut dyn FnMut(&mut [u8]) -> io::Result<usize>);

impl io::Read for ReadFn<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (self.0)(buf)
    }
}

/// `io::Write` over the socket and a write function, for rustls.
struct WriteFn<'a, F> {
    sock: &'a mut Sock,
    write: &'a mut F,
}

impl<F: FnMut(&mut Sock, &[u8]) -> io::Result<usize>> io::Write for WriteFn<'_, F> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (self.write)(self.sock, buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
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

    #[test]
    fn over_tls_a_full_socket_keeps_replies_drops_async_and_drains_in_order() {
        use crate::agent::tls::{test_pki::Ca, TlsConfig};
        let ca = Ca::new("output-unit");
        let (ours, peer) = pair();
        let task_handle = ours.try_clone().unwrap();
        let client = TlsConfig::load(&ca.party("switch")).unwrap().client([127, 0, 0, 1].into()).unwrap();
        let server = TlsConfig::load(&ca.party("controller")).unwrap().server_config();
        let out = Output::new_tls(ours, client);
        // The peer: handshake, then (once told how many) read the messages.
        let (handshaken_tx, handshaken) = std::sync::mpsc::channel();
        let (count_tx, count) = std::sync::mpsc::channel::<usize>();
        let reader = std::thread::spawn(move || {
            let mut conn = rustls::ServerConnection::new(server).unwrap();
            let mut sock = peer;
            while conn.is_handshaking() {
                conn.complete_io(&mut sock).expect("handshake");
            }
            handshaken_tx.send(()).unwrap();
            let n = count.recv().unwrap();
            let mut tls = rustls::StreamOwned::new(conn, sock);
            let (mut buf, mut got) = (Vec::new(), Vec::new());
            let mut chunk = [0u8; 16384];
            while got.len() < n {
                match ofp::decode(&buf).unwrap() {
                    Decoded::Message { msg, len } => {
                        buf.drain(..len);
                        got.push(msg.xid.0);
                    }
                    Decoded::NeedMore(_) => {
                        let k = tls.read(&mut chunk).unwrap();
                        assert!(k > 0, "peer closed after {} messages", got.len());
                        buf.extend_from_slice(&chunk[..k]);
                    }
                }
            }
            got
        });
        // Drive our side of the handshake as the connection's task does.
        out.send_messages(&[barrier_reply(1)]);
        let mut buf = vec![0u8; 16384];
        let mut delivered = 0;
        while handshaken.try_recv().is_err() {
            let r = out.receive_with(&mut buf, |b| (&task_handle).read(b), |b| delivered += b.len());
            assert!(matches!(r, Received::Data | Received::WouldBlock), "{r:?}");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(delivered, 0, "no OpenFlow bytes from the peer");
        // The peer does not read: fill the socket, rustls' buffer, then the backlog past its bound.
        let mut xid = 1;
        while out.lock().backlog.len() <= ASYNC_BACKLOG {
            xid += 1;
            out.send_messages(&[barrier_reply(xid)]);
        }
        assert!(out.has_backlog());
        assert!(!out.send_async(&barrier_reply(u32::MAX)), "async message over the bound is dropped");
        out.send_messages(&[barrier_reply(xid + 1)]);
        count_tx.send(xid as usize + 1).unwrap();
        let mut rounds = 0;
        while out.flush_with(|b| (&task_handle).write(b)) == Flushed::Blocked {
            rounds += 1;
            assert!(rounds < 100_000, "backlog never drained");
            std::thread::sleep(Duration::from_micros(100));
        }
        assert!(!out.has_backlog());
        assert_eq!(reader.join().unwrap(), (1..=xid + 1).collect::<Vec<_>>());
    }
}
