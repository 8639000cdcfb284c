//! A small OpenFlow client for end-to-end tests: one TCP connection, HELLO negotiation, then
//! typed messages through the crate's own codec (`xdpswitch::ofp::{encode, decode}`), plus raw
//! bytes for malformed input. It works on either side of a connection: connect to a switch's
//! passive listener ([`OfRaw::connect`]) or accept a switch that connects out to a
//! `--controller` ([`OfRaw::accept`]); over TLS, the test makes the stream and hands it to
//! [`OfRaw::over`].
//!
//! Echo requests from the switch are answered automatically unless [`OfRaw::answer_echo`] is
//! turned off (to play a dead controller). Everything else is handed to the test in order.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use xdpswitch::ofp::flow::{OFPFC_DELETE, OFPTT_ALL};
use xdpswitch::ofp::multipart::FlowStats;
use xdpswitch::ofp::port::{OFPP_ANY, OFP_NO_BUFFER};
use xdpswitch::ofp::{
    decode, encode, Action, Body, Decoded, FlowMod, Hello, Instruction, Message, MultipartReplyBody,
    MultipartRequest, MultipartRequestBody, Oxm, OxmField, Xid,
};

/// `OFPG_ANY`.
pub const OFPG_ANY: u32 = 0xffff_ffff;

/// A controller address the switch will connect to: a listener on loopback, and its
/// `tcp:IP:PORT` target.
pub fn controller_listener() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").expect("a controller port");
    let target = format!("tcp:{}", l.local_addr().unwrap());
    (l, target)
}

/// A flow-mod in table 0 of OpenFlow 1.3: `command`, `priority`, `match_`, and (for adds)
/// apply-actions output to `out`. A delete covers every table.
pub fn flow_mod(command: u8, priority: u16, match_: Vec<Oxm>, out: Option<u32>) -> Body {
    Body::FlowMod(FlowMod {
        table_id: if command == OFPFC_DELETE { OFPTT_ALL } else { 0 },
        command,
        priority,
        buffer_id: OFP_NO_BUFFER,
        out_port: OFPP_ANY,
        out_group: OFPG_ANY,
        match_,
        instructions: out
            .map(|port| vec![Instruction::ApplyActions(vec![Action::Output { port, max_len: 0xffff }])])
            .unwrap_or_default(),
        ..FlowMod::default()
    })
}

/// An exact `in_port` match.
pub fn in_port(p: u32) -> Vec<Oxm> {
    vec![Oxm::exact(OxmField::InPort, u128::from(p))]
}

/// What a receive found.
#[derive(Debug)]
pub enum Recv {
    Msg(Message),
    /// Nothing within the timeout.
    Timeout,
    /// The peer closed the connection (or reset it).
    Closed,
}

/// A byte stream an [`OfRaw`] runs over: TCP, or TLS over TCP.
pub trait Conn: Read + Write + Send {
    /// Bounds the next read, as `TcpStream::set_read_timeout`.
    fn set_read_timeout(&self, t: Option<Duration>) -> std::io::Result<()>;
}

impl Conn for TcpStream {
    fn set_read_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        TcpStream::set_read_timeout(self, t)
    }
}

impl<C, S> Conn for rustls::StreamOwned<C, TcpStream>
where
    C: std::ops::DerefMut<Target = rustls::ConnectionCommon<S>> + Send,
    S: rustls::SideData,
{
    fn set_read_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        self.sock.set_read_timeout(t)
    }
}

/// One OpenFlow connection, client side.
pub struct OfRaw {
    s: Box<dyn Conn>,
    /// The negotiated version.
    pub version: u8,
    /// Answer the peer's echo requests (default true).
    pub answer_echo: bool,
    /// Echo requests seen from the peer.
    pub echo_requests: u64,
    input: Vec<u8>,
    queued: VecDeque<Message>,
    next_xid: u32,
    closed: bool,
}

impl OfRaw {
    /// Connects to `addr` and negotiates one of `versions` (e.g. `&[4]`).
    pub fn connect(addr: SocketAddr, versions: &[u8]) -> OfRaw {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connecting to the switch");
        OfRaw::handshake(s, versions)
    }

    /// Waits (up to `secs`) for the switch to connect to `l`, then negotiates.
    pub fn accept(l: &TcpListener, versions: &[u8], secs: u64) -> OfRaw {
        l.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            match l.accept() {
                Ok((s, _)) => {
                    s.set_nonblocking(false).unwrap();
                    return OfRaw::handshake(s, versions);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    assert!(Instant::now() < deadline, "the switch did not connect to the controller");
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("accept: {e}"),
            }
        }
    }

    /// Says HELLO with a version bitmap and waits for the peer's.
    pub fn handshake(s: TcpStream, versions: &[u8]) -> OfRaw {
        s.set_nodelay(true).unwrap();
        OfRaw::over(Box::new(s), versions)
    }

    /// Says HELLO over `s` (e.g. a TLS stream) and waits for the peer's.
    pub fn over(s: Box<dyn Conn>, versions: &[u8]) -> OfRaw {
        let max = *versions.iter().max().expect("a version");
        let mut c = OfRaw {
            s,
            version: max,
            answer_echo: true,
            echo_requests: 0,
            input: Vec::new(),
            queued: VecDeque::new(),
            next_xid: 0x1000,
            closed: false,
        };
        c.send_msg(&Message { version: max, xid: Xid(1), body: Body::Hello(Hello::with_versions(versions)) });
        let deadline = Instant::now() + Duration::from_secs(10);
        let hello = loop {
            match c.read_one(deadline) {
                Recv::Msg(Message { body: Body::Hello(h), version, .. }) => break (h, version),
                Recv::Msg(m) => c.queued.push_back(m),
                other => panic!("no HELLO from the switch: {other:?}"),
            }
        };
        c.version = match hello.0.versions() {
            Some(theirs) => versions.iter().copied().filter(|v| theirs.contains(v)).max(),
            None => Some(max.min(hello.1)).filter(|v| versions.contains(v)),
        }
        .expect("no common OpenFlow version");
        c
    }

    /// A fresh transaction id.
    pub fn xid(&mut self) -> u32 {
        self.next_xid += 1;
        self.next_xid
    }

    /// Sends `body` in the negotiated version with a fresh xid; returns the xid.
    pub fn send(&mut self, body: Body) -> u32 {
        let xid = self.xid();
        self.send_xid(xid, body);
        xid
    }

    /// Sends `body` with `xid`.
    pub fn send_xid(&mut self, xid: u32, body: Body) {
        let m = Message { version: self.version, xid: Xid(xid), body };
        self.send_msg(&m);
    }

    /// Encodes and sends a whole message.
    pub fn send_msg(&mut self, m: &Message) {
        let mut out = Vec::new();
        encode(m, &mut out).expect("encoding a test message");
        self.send_raw(&out);
    }

    /// Encodes `body` without sending it (to corrupt it first).
    pub fn bytes(&self, xid: u32, body: Body) -> Vec<u8> {
        let mut out = Vec::new();
        encode(&Message { version: self.version, xid: Xid(xid), body }, &mut out).expect("encoding");
        out
    }

    /// Writes bytes as they are.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).expect("writing to the switch");
    }

    /// The next message (echo requests answered on the way, unless told not to), or a timeout,
    /// or the end of the connection.
    pub fn recv(&mut self, timeout: Duration) -> Recv {
        if let Some(m) = self.queued.pop_front() {
            return Recv::Msg(m);
        }
        let deadline = Instant::now() + timeout;
        loop {
            match self.read_one(deadline) {
                Recv::Msg(Message { body: Body::EchoRequest(d), xid, .. }) => {
                    self.echo_requests += 1;
                    if self.answer_echo {
                        self.send_xid(xid.0, Body::EchoReply(d));
                    }
                }
                r => return r,
            }
        }
    }

    /// The next message; panics on a timeout (10 s) or a closed connection.
    pub fn next(&mut self) -> Message {
        match self.recv(Duration::from_secs(10)) {
            Recv::Msg(m) => m,
            other => panic!("expected a message from the switch, got {other:?}"),
        }
    }

    /// Reads until a message with `xid` (that is not an echo request) and returns it; the
    /// messages before it (asynchronous ones) are returned too, in order.
    pub fn until_xid(&mut self, xid: u32) -> (Message, Vec<Message>) {
        let mut before = Vec::new();
        loop {
            let m = self.next();
            if m.xid.0 == xid {
                return (m, before);
            }
            before.push(m);
        }
    }

    /// Sends `body` and waits for the answer with its xid (asynchronous messages in between
    /// are dropped).
    pub fn request(&mut self, body: Body) -> Message {
        let xid = self.send(body);
        self.until_xid(xid).0
    }

    /// Sends a barrier and waits for its reply; returns every other message that came
    /// first (errors for earlier requests, asynchronous messages).
    pub fn barrier(&mut self) -> Vec<Message> {
        let xid = self.send(Body::BarrierRequest);
        let (m, before) = self.until_xid(xid);
        assert_eq!(m.body, Body::BarrierReply, "barrier answered with {m:?}");
        before
    }

    /// Every flow of every table (OpenFlow 1.3 `OFPMP_FLOW`, all parts of the reply).
    pub fn flow_stats(&mut self) -> Vec<FlowStats> {
        let req = MultipartRequestBody::Flow(xdpswitch::ofp::multipart::FlowStatsRequest {
            table_id: OFPTT_ALL,
            out_port: OFPP_ANY,
            out_group: OFPG_ANY,
            ..Default::default()
        });
        let xid = self.send(Body::MultipartRequest(MultipartRequest { flags: 0, body: req }));
        let mut flows = Vec::new();
        loop {
            let (m, _) = self.until_xid(xid);
            match m.body {
                Body::MultipartReply(r) => {
                    let MultipartReplyBody::Flow(part) = r.body else {
                        panic!("flow stats answered with {r:?}")
                    };
                    flows.extend(part);
                    if r.flags & xdpswitch::ofp::multipart::OFPMPF_MORE == 0 {
                        return flows;
                    }
                }
                other => panic!("flow stats answered with {other:?}"),
            }
        }
    }

    /// An echo round trip works.
    pub fn echo_works(&mut self) -> bool {
        let xid = self.send(Body::EchoRequest(b"still there?".to_vec()));
        loop {
            match self.recv(Duration::from_secs(10)) {
                Recv::Msg(m) if m.xid.0 == xid => return m.body == Body::EchoReply(b"still there?".to_vec()),
                Recv::Msg(_) => {}
                _ => return false,
            }
        }
    }

    /// Messages that arrive within `window` (echo requests handled as usual).
    pub fn collect(&mut self, window: Duration) -> Vec<Message> {
        let end = Instant::now() + window;
        let mut v = Vec::new();
        loop {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return v;
            }
            match self.recv(left) {
                Recv::Msg(m) => v.push(m),
                _ => return v,
            }
        }
    }

    /// Waits up to `secs` for the switch to close the connection (reading and dropping
    /// whatever it sends, answering echoes or not as set).
    pub fn wait_closed(&mut self, secs: u64) -> bool {
        let end = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < end {
            if let Recv::Closed = self.recv(Duration::from_millis(200)) {
                return true;
            }
        }
        false
    }

    /// Whether the peer closed the connection.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    fn read_one(&mut self, deadline: Instant) -> Recv {
        loop {
            match decode(&self.input) {
                Ok(Decoded::Message { msg, len }) => {
                    self.input.drain(..len);
                    return Recv::Msg(msg);
                }
                Ok(Decoded::NeedMore(_)) => {}
                Err(e) => panic!("the switch sent a message the codec refuses: {e:?}"),
            }
            if self.closed {
                return Recv::Closed;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Recv::Timeout;
            }
            self.s.set_read_timeout(Some(left.max(Duration::from_millis(1)))).unwrap();
            let mut buf = [0u8; 65536];
            match self.s.read(&mut buf) {
                Ok(0) => self.closed = true,
                Ok(n) => self.input.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Recv::Timeout
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => self.closed = true,
            }
        }
    }
}
