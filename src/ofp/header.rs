//! `ofp_header`, the 8 bytes in front of every OpenFlow message, and the message type numbers.

use std::fmt;

use super::error::Reason;
use super::wire::Reader;

/// `OFP_VERSION` of OpenFlow 1.0.
pub const OFP10_VERSION: u8 = 0x01;
/// `OFP_VERSION` of OpenFlow 1.3.
pub const OFP13_VERSION: u8 = 0x04;
/// Length of `ofp_header`.
pub const HEADER_LEN: usize = 8;

/// A transaction id: replies carry the id of the request they answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Xid(pub u32);

impl fmt::Display for Xid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// `ofp_header`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// `OFP_VERSION` of the sender.
    pub version: u8,
    /// `ofp_type`; the numbering depends on the version.
    pub type_: u8,
    /// Length of the whole message, header included.
    pub length: u16,
    /// Transaction id.
    pub xid: Xid,
}

impl Header {
    /// Reads the header from the front of `buf`, or `None` when fewer than 8 bytes are there.
    pub fn parse(buf: &[u8]) -> Option<Header> {
        let mut r = Reader::new(buf, Reason::BadLen);
        Some(Header {
            version: r.u8().ok()?,
            type_: r.u8().ok()?,
            length: r.u16().ok()?,
            xid: Xid(r.u32().ok()?),
        })
    }

    /// Appends the header to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.push(self.version);
        out.push(self.type_);
        out.extend_from_slice(&self.length.to_be_bytes());
        out.extend_from_slice(&self.xid.0.to_be_bytes());
    }
}

/// `ofp_type` numbers of OpenFlow 1.3 (`OFPT_*`).
pub mod of13_type {
    /// `OFPT_HELLO`
    pub const OFPT_HELLO: u8 = 0;
    /// `OFPT_ERROR`
    pub const OFPT_ERROR: u8 = 1;
    /// `OFPT_ECHO_REQUEST`
    pub const OFPT_ECHO_REQUEST: u8 = 2;
    /// `OFPT_ECHO_REPLY`
    pub const OFPT_ECHO_REPLY: u8 = 3;
    /// `OFPT_EXPERIMENTER`
    pub const OFPT_EXPERIMENTER: u8 = 4;
    /// `OFPT_FEATURES_REQUEST`
    pub const OFPT_FEATURES_REQUEST: u8 = 5;
    /// `OFPT_FEATURES_REPLY`
    pub const OFPT_FEATURES_REPLY: u8 = 6;
    /// `OFPT_GET_CONFIG_REQUEST`
    pub const OFPT_GET_CONFIG_REQUEST: u8 = 7;
    /// `OFPT_GET_CONFIG_REPLY`
    pub const OFPT_GET_CONFIG_REPLY: u8 = 8;
    /// `OFPT_SET_CONFIG`
    pub const OFPT_SET_CONFIG: u8 = 9;
    /// `OFPT_PACKET_IN`
    pub const OFPT_PACKET_IN: u8 = 10;
    /// `OFPT_FLOW_REMOVED`
    pub const OFPT_FLOW_REMOVED: u8 = 11;
    /// `OFPT_PORT_STATUS`
    pub const OFPT_PORT_STATUS: u8 = 12;
    /// `OFPT_PACKET_OUT`
    pub const OFPT_PACKET_OUT: u8 = 13;
    /// `OFPT_FLOW_MOD`
    pub const OFPT_FLOW_MOD: u8 = 14;
    /// `OFPT_GROUP_MOD`
    pub const OFPT_GROUP_MOD: u8 = 15;
    /// `OFPT_PORT_MOD`
    pub const OFPT_PORT_MOD: u8 = 16;
    /// `OFPT_TABLE_MOD`
    pub const OFPT_TABLE_MOD: u8 = 17;
    /// `OFPT_MULTIPART_REQUEST`
    pub const OFPT_MULTIPART_REQUEST: u8 = 18;
    /// `OFPT_MULTIPART_REPLY`
    pub const OFPT_MULTIPART_REPLY: u8 = 19;
    /// `OFPT_BARRIER_REQUEST`
    pub const OFPT_BARRIER_REQUEST: u8 = 20;
    /// `OFPT_BARRIER_REPLY`
    pub const OFPT_BARRIER_REPLY: u8 = 21;
    /// `OFPT_QUEUE_GET_CONFIG_REQUEST`
    pub const OFPT_QUEUE_GET_CONFIG_REQUEST: u8 = 22;
    /// `OFPT_QUEUE_GET_CONFIG_REPLY`
    pub const OFPT_QUEUE_GET_CONFIG_REPLY: u8 = 23;
    /// `OFPT_ROLE_REQUEST`
    pub const OFPT_ROLE_REQUEST: u8 = 24;
    /// `OFPT_ROLE_REPLY`
    pub const OFPT_ROLE_REPLY: u8 = 25;
    /// `OFPT_GET_ASYNC_REQUEST`
    pub const OFPT_GET_ASYNC_REQUEST: u8 = 26;
    /// `OFPT_GET_ASYNC_REPLY`
    pub const OFPT_GET_ASYNC_REPLY: u8 = 27;
    /// `OFPT_SET_ASYNC`
    pub const OFPT_SET_ASYNC: u8 = 28;
    /// `OFPT_METER_MOD`
    pub const OFPT_METER_MOD: u8 = 29;
}

/// `ofp_type` numbers of OpenFlow 1.0 that differ from 1.3 or that this codec types.
pub mod of10_type {
    /// `OFPT_VENDOR` (1.0's experimenter message)
    pub const OFPT_VENDOR: u8 = 4;
    /// `OFPT_BARRIER_REQUEST` in 1.0
    pub const OFPT_BARRIER_REQUEST: u8 = 18;
    /// `OFPT_BARRIER_REPLY` in 1.0
    pub const OFPT_BARRIER_REPLY: u8 = 19;
    /// `OFPT_QUEUE_GET_CONFIG_REPLY`: the highest 1.0 type.
    pub const OFPT_QUEUE_GET_CONFIG_REPLY: u8 = 21;
}
