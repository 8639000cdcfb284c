//! ofp — the OpenFlow wire format, sans-IO. Owns message types, OXM matches, actions and
//! instructions, and their encoding; performs no I/O, keeps no state and reads no clock.
//! Calls nothing else in the crate. Any thread may use it. No `unsafe`; no input panics.
//!
//! [`decode`] takes the front of a byte stream and answers [`Decoded::NeedMore`] or one
//! [`Message`] and how many bytes it used; [`encode`] appends a message to a caller's buffer.
//! A message that cannot be decoded gives a [`DecodeError`] holding the `OFPT_ERROR` type, code
//! and data to answer with, and how many bytes to skip to carry on.
//!
//! Versions: every message type of OpenFlow 1.3 (0x04) and of OpenFlow 1.0 (0x01) is typed.
//! Messages shared by both (HELLO, ERROR, ECHO, FEATURES_REQUEST, switch config, BARRIER at its
//! own 1.0 numbers) use the same [`Body`] variants; 1.0's own layouts (40-byte match,
//! FLOW_MOD, PACKET_IN/OUT, FEATURES_REPLY with ports, PORT_STATUS, FLOW_REMOVED, PORT_MOD,
//! STATS, VENDOR, queue config) are in [`v10`] as [`Body::V10`]. HELLO decodes in any version,
//! so version negotiation can see a newer peer's bitmap. Experimenter/vendor messages, actions,
//! instructions, OXMs of other classes and multipart bodies are kept raw after their ids.
//! An undefined type is an error with the spec's code (`OFPBRC_BAD_TYPE`,
//! `OFPBRC_BAD_MULTIPART`, `OFPBMC_BAD_FIELD`, `OFPMMFC_BAD_BAND`, ...). Model semantics
//! (prerequisites, whether a port, group or meter exists, valid commands) are not checked here.
//!
//! Byte for byte: whatever [`decode`] accepts, [`encode`] writes back identically. So the
//! decoder accepts only the canonical form: padding must be zero (nonzero padding is
//! rejected with the enclosing structure's length error, e.g. `OFPBRC_BAD_LEN`,
//! `OFPBAC_BAD_LEN`, `OFPBMC_BAD_LEN`), padding to 8 must be present where the spec puts it,
//! and fixed-size strings must be UTF-8 followed only by NULs (at least one). Open vSwitch and
//! os-ken send exactly this form. `tests/bytes_prop.rs` and `fuzz/` check the property.
//!
//! [`Channel`] (in [`channel`]) is the per-connection state machine on top: framing, HELLO
//! negotiation, echo, inactivity probe and error replies.

pub mod action;
pub mod channel;
pub mod config;
pub mod errcode;
pub mod error;
pub mod flow;
pub mod group;
pub mod header;
pub mod meter;
pub mod msg;
pub mod multipart;
pub mod nx;
pub mod oxm;
pub mod port;
mod split;
pub mod stats;
pub mod v10;
mod wire;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_v10;

pub use action::{Action, Instruction};
pub use channel::{Channel, ChannelConfig, ChannelEvent, CloseReason};
pub use config::{AsyncConfig, Experimenter, PacketQueue, PortMod, QueueGetConfigReply, QueueProp, TableMod};
pub use errcode::ErrorCode;
pub use error::{DecodeError, EncodeError, Reason};
pub use flow::{FlowMod, FlowRemoved, PacketIn, PacketOut};
pub use group::{Bucket, GroupMod};
pub use header::{Header, Xid, HEADER_LEN, OFP10_VERSION, OFP13_VERSION};
pub use meter::{MeterBand, MeterMod};
pub use msg::{Error, FeaturesReply, Hello, HelloElement, Role, SwitchConfig};
pub use multipart::{MultipartReply, MultipartReplyBody, MultipartRequest, MultipartRequestBody};
pub use oxm::{Oxm, OxmField};
pub use port::{Port, PortStatus};
pub use split::{split_reply, split_stats_reply, MAX_MESSAGE_LEN};

use header::{of10_type as t10, of13_type as t13};
use wire::Reader;

/// One OpenFlow message: version, transaction id and body.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Message {
    /// `ofp_header.version`.
    pub version: u8,
    /// `ofp_header.xid`.
    pub xid: Xid,
    /// What the message says.
    pub body: Body,
}

/// The body of a message, by `ofp_type`. Variants are named after the spec's `OFPT_*`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Body {
    /// `OFPT_HELLO`
    Hello(Hello),
    /// `OFPT_ERROR`
    Error(Error),
    /// `OFPT_ECHO_REQUEST` with arbitrary data.
    EchoRequest(Vec<u8>),
    /// `OFPT_ECHO_REPLY` with the request's data.
    EchoReply(Vec<u8>),
    /// `OFPT_FEATURES_REQUEST`
    FeaturesRequest,
    /// `OFPT_FEATURES_REPLY` (1.3)
    FeaturesReply(FeaturesReply),
    /// `OFPT_GET_CONFIG_REQUEST`
    GetConfigRequest,
    /// `OFPT_GET_CONFIG_REPLY`
    GetConfigReply(SwitchConfig),
    /// `OFPT_SET_CONFIG`
    SetConfig(SwitchConfig),
    /// `OFPT_PACKET_IN` (1.3)
    PacketIn(PacketIn),
    /// `OFPT_FLOW_REMOVED` (1.3)
    FlowRemoved(FlowRemoved),
    /// `OFPT_PORT_STATUS` (1.3)
    PortStatus(PortStatus),
    /// `OFPT_PACKET_OUT` (1.3)
    PacketOut(PacketOut),
    /// `OFPT_FLOW_MOD` (1.3)
    FlowMod(FlowMod),
    /// `OFPT_MULTIPART_REQUEST` (1.3)
    MultipartRequest(MultipartRequest),
    /// `OFPT_MULTIPART_REPLY` (1.3)
    MultipartReply(MultipartReply),
    /// `OFPT_BARRIER_REQUEST`
    BarrierRequest,
    /// `OFPT_BARRIER_REPLY`
    BarrierReply,
    /// `OFPT_ROLE_REQUEST` (1.3)
    RoleRequest(Role),
    /// `OFPT_ROLE_REPLY` (1.3)
    RoleReply(Role),
    /// `OFPT_EXPERIMENTER` (1.3)
    Experimenter(Experimenter),
    /// `OFPT_GROUP_MOD` (1.3)
    GroupMod(GroupMod),
    /// `OFPT_PORT_MOD` (1.3)
    PortMod(PortMod),
    /// `OFPT_TABLE_MOD` (1.3)
    TableMod(TableMod),
    /// `OFPT_QUEUE_GET_CONFIG_REQUEST` (1.3): the port, or `OFPP_ANY`.
    QueueGetConfigRequest {
        /// Port to query.
        port: u32,
    },
    /// `OFPT_QUEUE_GET_CONFIG_REPLY` (1.3)
    QueueGetConfigReply(QueueGetConfigReply),
    /// `OFPT_GET_ASYNC_REQUEST` (1.3)
    GetAsyncRequest,
    /// `OFPT_GET_ASYNC_REPLY` (1.3)
    GetAsyncReply(AsyncConfig),
    /// `OFPT_SET_ASYNC` (1.3)
    SetAsync(AsyncConfig),
    /// `OFPT_METER_MOD` (1.3)
    MeterMod(MeterMod),
    /// An OpenFlow 1.0 message with a 1.0-only layout (version 0x01 only).
    V10(v10::Body),
}

impl Body {
    /// The `ofp_type` of this body in `version`, or `None` if the version has no such message
    /// in this codec.
    pub fn type_code(&self, version: u8) -> Option<u8> {
        let v13 = version == OFP13_VERSION;
        Some(match self {
            Body::Hello(_) => t13::OFPT_HELLO,
            Body::Error(_) => t13::OFPT_ERROR,
            Body::EchoRequest(_) => t13::OFPT_ECHO_REQUEST,
            Body::EchoReply(_) => t13::OFPT_ECHO_REPLY,
            Body::FeaturesRequest => t13::OFPT_FEATURES_REQUEST,
            Body::GetConfigRequest => t13::OFPT_GET_CONFIG_REQUEST,
            Body::GetConfigReply(_) => t13::OFPT_GET_CONFIG_REPLY,
            Body::SetConfig(_) => t13::OFPT_SET_CONFIG,
            Body::BarrierRequest if v13 => t13::OFPT_BARRIER_REQUEST,
            Body::BarrierReply if v13 => t13::OFPT_BARRIER_REPLY,
            Body::BarrierRequest if version == OFP10_VERSION => t10::OFPT_BARRIER_REQUEST,
            Body::BarrierReply if version == OFP10_VERSION => t10::OFPT_BARRIER_REPLY,
            Body::FeaturesReply(_) if v13 => t13::OFPT_FEATURES_REPLY,
            Body::PacketIn(_) if v13 => t13::OFPT_PACKET_IN,
            Body::FlowRemoved(_) if v13 => t13::OFPT_FLOW_REMOVED,
            Body::PortStatus(_) if v13 => t13::OFPT_PORT_STATUS,
            Body::PacketOut(_) if v13 => t13::OFPT_PACKET_OUT,
            Body::FlowMod(_) if v13 => t13::OFPT_FLOW_MOD,
            Body::MultipartRequest(_) if v13 => t13::OFPT_MULTIPART_REQUEST,
            Body::MultipartReply(_) if v13 => t13::OFPT_MULTIPART_REPLY,
            Body::RoleRequest(_) if v13 => t13::OFPT_ROLE_REQUEST,
            Body::RoleReply(_) if v13 => t13::OFPT_ROLE_REPLY,
            Body::Experimenter(_) if v13 => t13::OFPT_EXPERIMENTER,
            Body::GroupMod(_) if v13 => t13::OFPT_GROUP_MOD,
            Body::PortMod(_) if v13 => t13::OFPT_PORT_MOD,
            Body::TableMod(_) if v13 => t13::OFPT_TABLE_MOD,
            Body::QueueGetConfigRequest { .. } if v13 => t13::OFPT_QUEUE_GET_CONFIG_REQUEST,
            Body::QueueGetConfigReply(_) if v13 => t13::OFPT_QUEUE_GET_CONFIG_REPLY,
            Body::GetAsyncRequest if v13 => t13::OFPT_GET_ASYNC_REQUEST,
            Body::GetAsyncReply(_) if v13 => t13::OFPT_GET_ASYNC_REPLY,
            Body::SetAsync(_) if v13 => t13::OFPT_SET_ASYNC,
            Body::MeterMod(_) if v13 => t13::OFPT_METER_MOD,
            Body::V10(b) if version == OFP10_VERSION => b.type_code(),
            _ => return None,
        })
    }
}

/// What [`decode`] found at the front of the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// Not a whole message yet: at least this many more bytes are needed.
    NeedMore(usize),
    /// One message, which used the first `len` bytes of the input.
    Message {
        /// The message.
        msg: Message,
        /// Bytes consumed (`ofp_header.length`).
        len: usize,
    },
}

/// Decodes the message at the front of `buf`.
///
/// Never panics. Bytes after the first message are left alone. On error,
/// [`DecodeError::skip`] says how many bytes the bad message occupies (or `None` when its
/// length field is below 8 and the stream cannot be resynchronised).
pub fn decode(buf: &[u8]) -> Result<Decoded, DecodeError> {
    let Some(h) = Header::parse(buf) else {
        return Ok(Decoded::NeedMore(HEADER_LEN - buf.len()));
    };
    let len = usize::from(h.length);
    let fail = |reason: Reason, skip: Option<usize>| DecodeError {
        reason,
        version: h.version,
        xid: h.xid,
        skip,
        data: buf[..buf.len().min(len.max(HEADER_LEN)).min(error::ERROR_DATA_LEN)].to_vec(),
    };
    if len < HEADER_LEN {
        return Err(fail(Reason::BadLen, None));
    }
    if buf.len() < len {
        return Ok(Decoded::NeedMore(len - buf.len()));
    }
    let mut r = Reader::new(&buf[HEADER_LEN..len], Reason::BadLen);
    let body = decode_body(&h, &mut r).map_err(|reason| fail(reason, Some(len)))?;
    Ok(Decoded::Message { msg: Message { version: h.version, xid: h.xid, body }, len })
}

fn decode_body(h: &Header, r: &mut Reader<'_>) -> Result<Body, Reason> {
    let empty = |r: &Reader<'_>, b: Body| r.finish(Reason::BadLen).map(|_| b);
    // Types shared by every version (HELLO is how versions are negotiated).
    match h.type_ {
        t13::OFPT_HELLO => return Hello::decode(r).map(Body::Hello),
        t13::OFPT_ERROR if matches!(h.version, OFP10_VERSION | OFP13_VERSION) => {
            return Error::decode(r).map(Body::Error)
        }
        _ => {}
    }
    match h.version {
        OFP13_VERSION => {}
        OFP10_VERSION => {
            if let Some(body) = v10::Body::decode(h.type_, r) {
                return body.map(Body::V10);
            }
            return Ok(match h.type_ {
                t13::OFPT_ECHO_REQUEST => Body::EchoRequest(r.rest().to_vec()),
                t13::OFPT_ECHO_REPLY => Body::EchoReply(r.rest().to_vec()),
                t13::OFPT_FEATURES_REQUEST => empty(r, Body::FeaturesRequest)?,
                t13::OFPT_GET_CONFIG_REQUEST => empty(r, Body::GetConfigRequest)?,
                t13::OFPT_GET_CONFIG_REPLY => Body::GetConfigReply(SwitchConfig::decode(r)?),
                t13::OFPT_SET_CONFIG => Body::SetConfig(SwitchConfig::decode(r)?),
                t10::OFPT_BARRIER_REQUEST => empty(r, Body::BarrierRequest)?,
                t10::OFPT_BARRIER_REPLY => empty(r, Body::BarrierReply)?,
                type_ => return Err(Reason::BadType { type_ }),
            });
        }
        version => return Err(Reason::BadVersion { version }),
    }
    Ok(match h.type_ {
        t13::OFPT_ECHO_REQUEST => Body::EchoRequest(r.rest().to_vec()),
        t13::OFPT_ECHO_REPLY => Body::EchoReply(r.rest().to_vec()),
        t13::OFPT_FEATURES_REQUEST => empty(r, Body::FeaturesRequest)?,
        t13::OFPT_FEATURES_REPLY => Body::FeaturesReply(FeaturesReply::decode(r)?),
        t13::OFPT_GET_CONFIG_REQUEST => empty(r, Body::GetConfigRequest)?,
        t13::OFPT_GET_CONFIG_REPLY => Body::GetConfigReply(SwitchConfig::decode(r)?),
        t13::OFPT_SET_CONFIG => Body::SetConfig(SwitchConfig::decode(r)?),
        t13::OFPT_PACKET_IN => Body::PacketIn(PacketIn::decode(r)?),
        t13::OFPT_FLOW_REMOVED => Body::FlowRemoved(FlowRemoved::decode(r)?),
        t13::OFPT_PORT_STATUS => Body::PortStatus(PortStatus::decode(r)?),
        t13::OFPT_PACKET_OUT => Body::PacketOut(PacketOut::decode(r)?),
        t13::OFPT_FLOW_MOD => Body::FlowMod(FlowMod::decode(r)?),
        t13::OFPT_MULTIPART_REQUEST => Body::MultipartRequest(MultipartRequest::decode(r)?),
        t13::OFPT_MULTIPART_REPLY => Body::MultipartReply(MultipartReply::decode(r)?),
        t13::OFPT_BARRIER_REQUEST => empty(r, Body::BarrierRequest)?,
        t13::OFPT_BARRIER_REPLY => empty(r, Body::BarrierReply)?,
        t13::OFPT_ROLE_REQUEST => Body::RoleRequest(Role::decode(r)?),
        t13::OFPT_ROLE_REPLY => Body::RoleReply(Role::decode(r)?),
        t13::OFPT_EXPERIMENTER => Body::Experimenter(Experimenter::decode(r)?),
        t13::OFPT_GROUP_MOD => Body::GroupMod(GroupMod::decode(r)?),
        t13::OFPT_PORT_MOD => Body::PortMod(PortMod::decode(r)?),
        t13::OFPT_TABLE_MOD => Body::TableMod(TableMod::decode(r)?),
        t13::OFPT_QUEUE_GET_CONFIG_REQUEST => {
            let port = r.u32()?;
            r.skip(4)?;
            empty(r, Body::QueueGetConfigRequest { port })?
        }
        t13::OFPT_QUEUE_GET_CONFIG_REPLY => Body::QueueGetConfigReply(QueueGetConfigReply::decode(r)?),
        t13::OFPT_GET_ASYNC_REQUEST => empty(r, Body::GetAsyncRequest)?,
        t13::OFPT_GET_ASYNC_REPLY => Body::GetAsyncReply(AsyncConfig::decode(r)?),
        t13::OFPT_SET_ASYNC => Body::SetAsync(AsyncConfig::decode(r)?),
        t13::OFPT_METER_MOD => Body::MeterMod(MeterMod::decode(r)?),
        type_ => return Err(Reason::BadType { type_ }),
    })
}

/// Appends `msg` to `out` and returns the bytes written. On error `out` is left as it was.
pub fn encode(msg: &Message, out: &mut Vec<u8>) -> Result<usize, EncodeError> {
    let start = out.len();
    let res = encode_inner(msg, out);
    match res {
        Ok(()) => Ok(out.len() - start),
        Err(e) => {
            out.truncate(start);
            Err(e)
        }
    }
}

fn encode_inner(msg: &Message, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    use wire::Put;
    let start = out.len();
    let type_ = msg.body.type_code(msg.version).ok_or(EncodeError::NotInVersion { version: msg.version })?;
    Header { version: msg.version, type_, length: 0, xid: msg.xid }.emit(out);
    match &msg.body {
        Body::Hello(h) => h.encode(out)?,
        Body::Error(e) => e.encode(out),
        Body::EchoRequest(d) | Body::EchoReply(d) => out.extend_from_slice(d),
        Body::FeaturesRequest | Body::GetConfigRequest | Body::BarrierRequest | Body::BarrierReply => {}
        Body::FeaturesReply(f) => f.encode(out),
        Body::GetConfigReply(c) | Body::SetConfig(c) => c.encode(out),
        Body::PacketIn(p) => p.encode(out)?,
        Body::FlowRemoved(f) => f.encode(out)?,
        Body::PortStatus(p) => p.encode(out),
        Body::PacketOut(p) => p.encode(out)?,
        Body::FlowMod(f) => f.encode(out)?,
        Body::MultipartRequest(m) => m.encode(out)?,
        Body::MultipartReply(m) => m.encode(out)?,
        Body::RoleRequest(r) | Body::RoleReply(r) => r.encode(out),
        Body::Experimenter(e) => e.encode(out),
        Body::GroupMod(g) => g.encode(out)?,
        Body::PortMod(p) => p.encode(out),
        Body::TableMod(t) => t.encode(out),
        Body::QueueGetConfigRequest { port } => {
            out.put_u32(*port);
            out.put_zeros(4);
        }
        Body::QueueGetConfigReply(q) => q.encode(out)?,
        Body::GetAsyncRequest => {}
        Body::GetAsyncReply(c) | Body::SetAsync(c) => c.encode(out),
        Body::MeterMod(m) => m.encode(out)?,
        Body::V10(b) => b.encode(out)?,
    }
    out.patch_len(start + 2, start)
}

impl DecodeError {
    /// The `OFPT_ERROR` message answering the bad message, in the connection's `version`.
    pub fn reply(&self, version: u8) -> Message {
        let (type_, code) = self.reason.code().wire(version);
        Message { version, xid: self.xid, body: Body::Error(Error { type_, code, data: self.data.clone() }) }
    }
}
