//! [`Channel`]: one OpenFlow connection as a sans-IO state machine. It frames the byte
//! stream, negotiates the version with HELLO, answers echo requests, probes an idle peer,
//! rejects what it cannot decode with the right `OFPT_ERROR`, and surfaces everything else as
//! [`ChannelEvent::Request`]. No sockets and no clock reads: the caller feeds bytes and time.
//!
//! Methods come in four kinds (as in quinn-proto):
//! - inputs: [`Channel::handle_input`], [`Channel::handle_timeout`];
//! - commands: [`Channel::send`], [`Channel::send_reply`], [`Channel::send_message`],
//!   [`Channel::send_error`];
//! - outputs, to poll after every input or command: [`Channel::poll_transmit`] (bytes for the
//!   socket), [`Channel::poll_event`], then [`Channel::poll_timeout`] (when to call
//!   `handle_timeout` next);
//! - getters: [`Channel::version`], [`Channel::is_closed`].
//!
//! Once closed, a channel ignores input and commands, but `poll_transmit` still hands out what
//! was queued before (a HELLO_FAILED error, say), so the driver should flush, then drop it.
//!
//! Inactivity probe (as Open vSwitch's rconn): after `probe_interval` with no byte received,
//! an ECHO_REQUEST goes out; after another interval still without a byte, the channel closes
//! with [`CloseReason::ProbeTimeout`]. Before HELLO negotiation, the channel waits for two
//! intervals and then closes the same way. A zero interval disables probing.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::errcode::ErrorCode;
use super::error::ERROR_DATA_LEN;
use super::header::{of13_type as t13, Header, Xid, HEADER_LEN, OFP10_VERSION};
use super::multipart::{MultipartRequest, MultipartRequestBody};
use super::{decode, encode, v10, Body, Decoded, Error, Hello, Message};

/// How a [`Channel`] behaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelConfig {
    /// The OpenFlow versions we speak (e.g. `[1, 4]`); HELLO advertises them all.
    pub versions: Vec<u8>,
    /// Idle time before an echo probe, and again before giving up. Zero: never probe.
    pub probe_interval: Duration,
    /// The most received bytes the channel holds that the application has not taken yet
    /// (a partial message, requests waiting for HELLO, events not yet polled). Beyond it the
    /// channel closes with [`CloseReason::InputOverflow`]. At least 64 KiB is sensible.
    pub max_input: usize,
}

impl Default for ChannelConfig {
    fn default() -> Self {
        ChannelConfig {
            versions: vec![OFP10_VERSION, super::OFP13_VERSION],
            probe_interval: Duration::from_secs(5),
            max_input: 1 << 20,
        }
    }
}

/// Why a channel closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// No version in common with the peer (we sent `OFPHFC_INCOMPATIBLE`).
    HelloFailed,
    /// The peer sent `OFPET_HELLO_FAILED`: it rejected our HELLO.
    PeerHelloFailed,
    /// The peer stayed silent through a probe (or never said HELLO).
    ProbeTimeout,
    /// A header with `length` < 8: the stream cannot be framed any more.
    Framing,
    /// The peer sent more than `max_input` bytes the application has not taken.
    InputOverflow,
}

/// Something the application must hear about.
///
/// Multipart requests that span several messages (`OFPMPF_REQ_MORE`) arrive one
/// `Request` per message; putting them together is the application's business.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChannelEvent {
    /// HELLO negotiation finished on `version`; requests follow.
    Ready {
        /// The negotiated OpenFlow version.
        version: u8,
    },
    /// A message from the peer for the application (anything but HELLO, echo and untyped
    /// experimenter messages, which the channel handles itself).
    Request {
        /// The message's transaction id, for [`Channel::send_reply`].
        xid: Xid,
        /// The message.
        msg: Message,
    },
    /// The channel is closed; this is the last event.
    Closed {
        /// Why.
        reason: CloseReason,
    },
}

/// Something the application sent before the version was known.
#[derive(Debug)]
enum Deferred {
    Body(Xid, Body),
    Message(Message),
    Error(Xid, ErrorCode, Vec<u8>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Our HELLO is queued; the peer's has not arrived.
    Hello,
    /// Negotiated.
    Ready(u8),
    Closed,
}

/// One OpenFlow connection's protocol state. See the module docs.
#[derive(Debug)]
pub struct Channel {
    cfg: ChannelConfig,
    state: State,
    /// Received bytes not yet framed into a whole message.
    input: Vec<u8>,
    /// Whole messages received before the peer's HELLO, raw.
    backlog: VecDeque<Vec<u8>>,
    /// Bytes in `backlog`.
    backlog_bytes: usize,
    /// Encoded messages waiting for `poll_transmit`.
    output: Vec<u8>,
    /// Events and the wire length of the request each carries.
    events: VecDeque<(ChannelEvent, usize)>,
    /// Bytes of the requests in `events`.
    event_bytes: usize,
    /// Commands issued before the version was known.
    deferred: Vec<Deferred>,
    next_xid: u32,
    last_rx: Instant,
    /// When the echo probe went out, if one is outstanding.
    probe_sent: Option<Instant>,
    /// Messages the application asked to send that had no encoding (wrong version, too long).
    encode_failures: u64,
}

impl Channel {
    /// A new connection at `now`; our HELLO (with a version bitmap) is queued for transmit.
    /// Versions in `cfg` other than 1.0 and 1.3 (which the codec speaks) are ignored.
    pub fn new(now: Instant, mut cfg: ChannelConfig) -> Channel {
        cfg.versions.retain(|&v| v == OFP10_VERSION || v == super::OFP13_VERSION);
        let mut ch = Channel {
            state: State::Hello,
            input: Vec::new(),
            backlog: VecDeque::new(),
            backlog_bytes: 0,
            output: Vec::new(),
            events: VecDeque::new(),
            event_bytes: 0,
            deferred: Vec::new(),
            next_xid: 1,
            last_rx: now,
            probe_sent: None,
            encode_failures: 0,
            cfg,
        };
        // With no versions at all there is nothing to offer: the peer's HELLO fails.
        if let Some(version) = ch.cfg.versions.iter().copied().max() {
            let hello = Body::Hello(Hello::with_versions(&ch.cfg.versions));
            let xid = ch.alloc_xid();
            ch.emit(&Message { version, xid, body: hello });
        }
        ch
    }

    /// The negotiated version, once HELLO negotiation has finished.
    pub fn version(&self) -> Option<u8> {
        match self.state {
            State::Ready(v) => Some(v),
            _ => None,
        }
    }

    /// Whether the channel has closed (a `Closed` event is or was queued).
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// How many messages given to `send*` could not be encoded (and were dropped).
    pub fn encode_failures(&self) -> u64 {
        self.encode_failures
    }

    /// Bytes received from the peer, cut anywhere.
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) {
        if self.is_closed() || bytes.is_empty() {
            return;
        }
        self.last_rx = now;
        self.probe_sent = None;
        self.input.extend_from_slice(bytes);
        let mut at = 0;
        while self.state != State::Closed {
            let Some(h) = Header::parse(&self.input[at..]) else { break };
            let len = usize::from(h.length);
            if len < HEADER_LEN {
                self.close(CloseReason::Framing);
                break;
            }
            if self.input.len() - at < len {
                break;
            }
            let raw = std::mem::take(&mut self.input);
            self.handle_message(&h, &raw[at..at + len]);
            self.input = raw;
            at += len;
        }
        if self.state == State::Closed {
            self.input = Vec::new();
            return;
        }
        self.input.drain(..at);
        if self.held_bytes() > self.cfg.max_input {
            self.close(CloseReason::InputOverflow);
        }
    }

    /// Time passed; call at [`Channel::poll_timeout`] (earlier or repeated calls are harmless).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.is_closed() {
            return;
        }
        let Some(due) = self.poll_timeout() else { return };
        if now < due {
            return;
        }
        match (self.state, self.probe_sent) {
            (State::Ready(version), None) => {
                let xid = self.alloc_xid();
                self.emit(&Message { version, xid, body: Body::EchoRequest(Vec::new()) });
                self.probe_sent = Some(now);
            }
            _ => self.close(CloseReason::ProbeTimeout),
        }
    }

    /// Sends `body` as a new request with a fresh xid, in the negotiated version (held back
    /// until negotiation if it has not finished).
    pub fn send(&mut self, body: Body) -> Xid {
        let xid = self.alloc_xid();
        self.send_reply(xid, body);
        xid
    }

    /// Sends `body` with `xid` (the request's, for a reply).
    pub fn send_reply(&mut self, xid: Xid, body: Body) {
        match self.state {
            State::Ready(version) => self.emit(&Message { version, xid, body }),
            State::Hello => self.deferred.push(Deferred::Body(xid, body)),
            State::Closed => {}
        }
    }

    /// Sends an already-built message as it is (version and xid included), e.g. one part of
    /// a split multipart reply.
    pub fn send_message(&mut self, msg: &Message) {
        match self.state {
            State::Ready(_) => self.emit(msg),
            State::Hello => self.deferred.push(Deferred::Message(msg.clone())),
            State::Closed => {}
        }
    }

    /// Sends `OFPT_ERROR` for `code` (numbered for the negotiated version) answering `xid`,
    /// with the first 64 bytes of `data` (usually the offending request).
    pub fn send_error(&mut self, xid: Xid, code: ErrorCode, data: &[u8]) {
        let data = &data[..data.len().min(ERROR_DATA_LEN)];
        match self.state {
            State::Ready(version) => self.emit_error(version, xid, code, data.to_vec()),
            State::Hello => self.deferred.push(Deferred::Error(xid, code, data.to_vec())),
            State::Closed => {}
        }
    }

    /// Appends everything queued for the peer to `out`; `true` if anything was appended.
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) -> bool {
        if self.output.is_empty() {
            return false;
        }
        out.append(&mut self.output);
        true
    }

    /// When [`Channel::handle_timeout`] should next be called; `None` when closed or when
    /// probing is off.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let interval = self.cfg.probe_interval;
        if interval.is_zero() {
            return None;
        }
        // An interval too long to add to an Instant means "never".
        match (self.state, self.probe_sent) {
            (State::Closed, _) => None,
            (State::Hello, _) => self.last_rx.checked_add(interval.saturating_mul(2)),
            (State::Ready(_), Some(sent)) => sent.checked_add(interval),
            (State::Ready(_), None) => self.last_rx.checked_add(interval),
        }
    }

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<ChannelEvent> {
        let (ev, len) = self.events.pop_front()?;
        self.event_bytes -= len;
        Some(ev)
    }

    fn alloc_xid(&mut self) -> Xid {
        let xid = Xid(self.next_xid);
        self.next_xid = self.next_xid.wrapping_add(1).max(1);
        xid
    }

    fn held_bytes(&self) -> usize {
        self.input.len() + self.backlog_bytes + self.event_bytes
    }

    fn emit(&mut self, msg: &Message) {
        if encode(msg, &mut self.output).is_err() {
            self.encode_failures += 1;
            tracing::warn!(xid = %msg.xid, version = msg.version, "cannot encode outgoing OpenFlow message");
        }
    }

    fn emit_error(&mut self, version: u8, xid: Xid, code: ErrorCode, data: Vec<u8>) {
        let (type_, code) = code.wire(version);
        self.emit(&Message { version, xid, body: Body::Error(Error { type_, code, data }) });
    }

    fn close(&mut self, reason: CloseReason) {
        if self.state == State::Closed {
            return;
        }
        self.state = State::Closed;
        self.input = Vec::new();
        self.backlog.clear();
        self.backlog_bytes = 0;
        self.deferred.clear();
        self.events.push_back((ChannelEvent::Closed { reason }, 0));
    }

    /// One whole message (`raw`, with header `h`).
    fn handle_message(&mut self, h: &Header, raw: &[u8]) {
        match self.state {
            State::Closed => {}
            State::Hello if h.type_ == t13::OFPT_HELLO => self.negotiate(h, raw),
            State::Hello => {
                if is_hello_failed(h, raw) {
                    self.close(CloseReason::PeerHelloFailed);
                    return;
                }
                self.backlog_bytes += raw.len();
                self.backlog.push_back(raw.to_vec());
            }
            State::Ready(version) => self.handle_ready(version, h, raw),
        }
    }

    /// The peer's HELLO: pick the version (OpenFlow 1.3.5 §6.3.1).
    fn negotiate(&mut self, h: &Header, raw: &[u8]) {
        // A HELLO whose elements do not parse is taken as one without a bitmap.
        let peer_bitmap = match decode(raw) {
            Ok(Decoded::Message { msg: Message { body: Body::Hello(hello), .. }, .. }) => hello.versions(),
            _ => None,
        };
        let ours = &self.cfg.versions;
        let chosen = match &peer_bitmap {
            Some(theirs) => ours.iter().copied().filter(|v| theirs.contains(v)).max(),
            None => ours.iter().copied().max().map(|high| high.min(h.version)).filter(|v| ours.contains(v)),
        };
        let Some(version) = chosen else {
            let text = format!(
                "no common OpenFlow version: we support {}, the peer {}",
                list_versions(ours),
                match &peer_bitmap {
                    Some(theirs) => list_versions(theirs),
                    None => format!("up to {:#04x}", h.version),
                }
            );
            let version = if ours.contains(&h.version) {
                h.version
            } else {
                ours.iter().copied().max().unwrap_or(h.version)
            };
            self.emit_error(version, h.xid, ErrorCode::OFPHFC_INCOMPATIBLE, text.into_bytes());
            self.close(CloseReason::HelloFailed);
            return;
        };
        self.state = State::Ready(version);
        self.events.push_back((ChannelEvent::Ready { version }, 0));
        for d in std::mem::take(&mut self.deferred) {
            match d {
                Deferred::Body(xid, body) => self.emit(&Message { version, xid, body }),
                Deferred::Message(msg) => self.emit(&msg),
                Deferred::Error(xid, code, data) => self.emit_error(version, xid, code, data),
            }
        }
        while let Some(raw) = self.backlog.pop_front() {
            self.backlog_bytes -= raw.len();
            if let Some(h) = Header::parse(&raw) {
                self.handle_message(&h, &raw);
            }
        }
    }

    fn handle_ready(&mut self, version: u8, h: &Header, raw: &[u8]) {
        if h.type_ == t13::OFPT_HELLO {
            return; // A repeated HELLO changes nothing.
        }
        if h.version != version {
            self.emit_error(version, h.xid, ErrorCode::OFPBRC_BAD_VERSION, error_data(raw));
            return;
        }
        let msg = match decode(raw) {
            Ok(Decoded::Message { msg, .. }) => msg,
            Ok(Decoded::NeedMore(_)) => return, // cannot happen: `raw` is one whole message
            Err(e) => {
                self.emit_error(version, h.xid, e.reason.code(), e.data);
                return;
            }
        };
        match msg.body {
            Body::EchoRequest(data) => {
                self.emit(&Message { version, xid: h.xid, body: Body::EchoReply(data) })
            }
            Body::EchoReply(_) => {}
            // No experimenter extension is typed, so none is understood: refuse it here.
            Body::Experimenter(_)
            | Body::V10(v10::Body::Vendor { .. })
            | Body::MultipartRequest(MultipartRequest {
                body: MultipartRequestBody::Experimenter(_), ..
            })
            | Body::V10(v10::Body::StatsRequest(v10::StatsRequest {
                body: v10::StatsRequestBody::Vendor { .. },
                ..
            })) => {
                self.emit_error(version, h.xid, ErrorCode::OFPBRC_BAD_EXPERIMENTER, error_data(raw));
            }
            _ => {
                if is_hello_failed(h, raw) {
                    self.close(CloseReason::PeerHelloFailed);
                    return;
                }
                self.event_bytes += raw.len();
                self.events.push_back((ChannelEvent::Request { xid: h.xid, msg }, raw.len()));
            }
        }
    }
}

/// The part of an offending message an error reply echoes.
fn error_data(raw: &[u8]) -> Vec<u8> {
    raw[..raw.len().min(ERROR_DATA_LEN)].to_vec()
}

/// Whether `raw` is an `OFPT_ERROR` of type `OFPET_HELLO_FAILED` (type 1, same in 1.0).
fn is_hello_failed(h: &Header, raw: &[u8]) -> bool {
    h.type_ == t13::OFPT_ERROR && raw.get(HEADER_LEN..HEADER_LEN + 2) == Some(&[0, 0])
}

fn list_versions(vs: &[u8]) -> String {
    let mut vs = vs.to_vec();
    vs.sort_unstable();
    vs.iter().map(|v| format!("{v:#04x}")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
#[path = "tests/channel.rs"]
mod tests;
