//! Decode and encode errors. What an `OFPT_ERROR` reply says is an [`ErrorCode`] ([`Reason::code`]);
//! the numeric `OFPET_*`/`OFP*C_*` constants below are the common ones, kept for convenience.

use super::errcode::ErrorCode;
use super::header::Xid;

/// `ofp_error_type`: the switch could not negotiate a version.
pub const OFPET_HELLO_FAILED: u16 = 0;
/// `ofp_error_type`: the request was not understood.
pub const OFPET_BAD_REQUEST: u16 = 1;
/// `ofp_error_type`: error in an action description.
pub const OFPET_BAD_ACTION: u16 = 2;
/// `ofp_error_type`: error in an instruction list.
pub const OFPET_BAD_INSTRUCTION: u16 = 3;
/// `ofp_error_type`: error in a match.
pub const OFPET_BAD_MATCH: u16 = 4;
/// `ofp_error_type`: problem modifying a flow entry.
pub const OFPET_FLOW_MOD_FAILED: u16 = 5;
/// `ofp_error_type`: problem with a table-features request.
pub const OFPET_TABLE_FEATURES_FAILED: u16 = 13;
/// `ofp_error_type`: experimenter error.
pub const OFPET_EXPERIMENTER: u16 = 0xffff;

/// `OFPET_HELLO_FAILED` code: no compatible version.
pub const OFPHFC_INCOMPATIBLE: u16 = 0;
/// `OFPET_BAD_REQUEST` code: `ofp_header.version` not supported.
pub const OFPBRC_BAD_VERSION: u16 = 0;
/// `OFPET_BAD_REQUEST` code: `ofp_header.type` not supported.
pub const OFPBRC_BAD_TYPE: u16 = 1;
/// `OFPET_BAD_REQUEST` code: `ofp_multipart_request.type` not supported.
pub const OFPBRC_BAD_MULTIPART: u16 = 2;
/// `OFPET_BAD_REQUEST` code: wrong request length for type.
pub const OFPBRC_BAD_LEN: u16 = 6;
/// `OFPET_BAD_ACTION` code: unknown or unsupported action type.
pub const OFPBAC_BAD_TYPE: u16 = 0;
/// `OFPET_BAD_ACTION` code: length problem in actions.
pub const OFPBAC_BAD_LEN: u16 = 1;
/// `OFPET_BAD_ACTION` code: bad type in a set-field action.
pub const OFPBAC_BAD_SET_TYPE: u16 = 13;
/// `OFPET_BAD_ACTION` code: bad length in a set-field action.
pub const OFPBAC_BAD_SET_LEN: u16 = 14;
/// `OFPET_BAD_ACTION` code: bad argument in a set-field action.
pub const OFPBAC_BAD_SET_ARGUMENT: u16 = 15;
/// `OFPET_BAD_INSTRUCTION` code: unknown instruction.
pub const OFPBIC_UNKNOWN_INST: u16 = 0;
/// `OFPET_BAD_INSTRUCTION` code: length problem in instructions.
pub const OFPBIC_BAD_LEN: u16 = 7;
/// `OFPET_BAD_MATCH` code: unsupported match type.
pub const OFPBMC_BAD_TYPE: u16 = 0;
/// `OFPET_BAD_MATCH` code: length problem in match.
pub const OFPBMC_BAD_LEN: u16 = 1;
/// `OFPET_BAD_MATCH` code: unsupported field type in the match.
pub const OFPBMC_BAD_FIELD: u16 = 6;
/// `OFPET_BAD_MATCH` code: unsupported value in a match field.
pub const OFPBMC_BAD_VALUE: u16 = 7;
/// `OFPET_BAD_MATCH` code: unsupported mask specified in the match.
pub const OFPBMC_BAD_MASK: u16 = 8;
/// `OFPET_BAD_MATCH` code: a field type was duplicated.
pub const OFPBMC_DUP_FIELD: u16 = 10;

/// How many bytes of the offending message an `OFPT_ERROR` reply echoes (the spec asks for
/// "at least 64").
pub const ERROR_DATA_LEN: usize = 64;

/// Why a message could not be decoded. Each reason maps to the `(type, code)` of the
/// `OFPT_ERROR` the switch should answer with ([`Reason::error_type_code`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Reason {
    /// `ofp_header.version` is neither 0x01 nor 0x04 (HELLO is accepted in any version).
    #[error("unsupported version {version:#04x}")]
    BadVersion {
        /// The version byte received.
        version: u8,
    },
    /// `ofp_header.type` is unknown for this version.
    #[error("unknown message type {type_}")]
    BadType {
        /// The type byte received.
        type_: u8,
    },
    /// `ofp_header.length` or the body disagree with the message type.
    #[error("bad message length")]
    BadLen,
    /// Unknown multipart type in a request.
    #[error("unknown multipart type {type_}")]
    BadMultipart {
        /// The multipart type received.
        type_: u16,
    },
    /// `ofp_match.type` is not `OFPMT_OXM`.
    #[error("unsupported match type {type_}")]
    BadMatchType {
        /// The match type received.
        type_: u16,
    },
    /// `ofp_match.length` or an OXM TLV length is wrong.
    #[error("bad match length")]
    BadMatchLen,
    /// An OXM field number unknown in the basic class.
    #[error("unknown OXM field {class:#06x}:{field}")]
    BadField {
        /// OXM class.
        class: u16,
        /// OXM field number.
        field: u8,
    },
    /// An OXM value has bits set outside the field's width.
    #[error("OXM value outside the field's width")]
    BadValue,
    /// An OXM mask has bits set outside the field's width.
    #[error("OXM mask outside the field's width")]
    BadMask,
    /// The same OXM field appears twice in one match.
    #[error("duplicate OXM field")]
    DupField,
    /// Unknown action type.
    #[error("unknown action type {type_}")]
    BadActionType {
        /// The action type received.
        type_: u16,
    },
    /// An action's length is wrong for its type.
    #[error("bad action length")]
    BadActionLen,
    /// A set-field action whose OXM is malformed (`OFPBAC_BAD_SET_*`).
    #[error("bad set-field action ({})", code.name())]
    BadSetField {
        /// One of `OFPBAC_BAD_SET_TYPE`, `OFPBAC_BAD_SET_LEN`, `OFPBAC_BAD_SET_ARGUMENT`.
        code: ErrorCode,
    },
    /// Unknown instruction type.
    #[error("unknown instruction type {type_}")]
    BadInstructionType {
        /// The instruction type received.
        type_: u16,
    },
    /// An instruction's length is wrong for its type.
    #[error("bad instruction length")]
    BadInstructionLen,
    /// A meter band of a type the spec does not define.
    #[error("unknown meter band type {type_}")]
    BadMeterBand {
        /// The band type received.
        type_: u16,
    },
    /// A group bucket whose length is wrong.
    #[error("bad group bucket")]
    BadBucket,
}

impl Reason {
    /// The error an `OFPT_ERROR` reply should carry.
    pub fn code(&self) -> ErrorCode {
        use ErrorCode as E;
        match self {
            Reason::BadVersion { .. } => E::OFPBRC_BAD_VERSION,
            Reason::BadType { .. } => E::OFPBRC_BAD_TYPE,
            Reason::BadLen => E::OFPBRC_BAD_LEN,
            Reason::BadMultipart { .. } => E::OFPBRC_BAD_MULTIPART,
            Reason::BadMatchType { .. } => E::OFPBMC_BAD_TYPE,
            Reason::BadMatchLen => E::OFPBMC_BAD_LEN,
            Reason::BadField { .. } => E::OFPBMC_BAD_FIELD,
            Reason::BadValue => E::OFPBMC_BAD_VALUE,
            Reason::BadMask => E::OFPBMC_BAD_MASK,
            Reason::DupField => E::OFPBMC_DUP_FIELD,
            Reason::BadActionType { .. } => E::OFPBAC_BAD_TYPE,
            Reason::BadActionLen => E::OFPBAC_BAD_LEN,
            Reason::BadSetField { code } => *code,
            Reason::BadInstructionType { .. } => E::OFPBIC_UNKNOWN_INST,
            Reason::BadInstructionLen => E::OFPBIC_BAD_LEN,
            Reason::BadMeterBand { .. } => E::OFPMMFC_BAD_BAND,
            Reason::BadBucket => E::OFPGMFC_BAD_BUCKET,
        }
    }

    /// The OpenFlow 1.3 `(ofp_error_type, code)` pair an `OFPT_ERROR` reply should carry.
    pub fn error_type_code(&self) -> (u16, u16) {
        self.code().v13()
    }
}

/// A message that could not be decoded, with everything an `OFPT_ERROR` reply needs.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot decode OpenFlow message (version {version:#04x}, xid {xid}): {reason}")]
pub struct DecodeError {
    /// What was wrong.
    pub reason: Reason,
    /// `ofp_header.version` of the offending message.
    pub version: u8,
    /// `ofp_header.xid` of the offending message: the reply reuses it.
    pub xid: Xid,
    /// Bytes the offending message occupies in the stream, so the caller can skip it and
    /// carry on. `None` when framing itself is broken (`length` < 8): close the connection.
    pub skip: Option<usize>,
    /// The first [`ERROR_DATA_LEN`] bytes of the offending message.
    pub data: Vec<u8>,
}

impl DecodeError {
    /// `ofp_error_msg.type` for the reply.
    pub fn error_type(&self) -> u16 {
        self.reason.error_type_code().0
    }

    /// `ofp_error_msg.code` for the reply.
    pub fn error_code(&self) -> u16 {
        self.reason.error_type_code().1
    }
}

/// A message that cannot be written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The message body has no encoding in the requested version.
    #[error("message type not available in version {version:#04x}")]
    NotInVersion {
        /// The version asked for.
        version: u8,
    },
    /// The encoded message (or a length-prefixed part of it) exceeds 65535 bytes.
    #[error("encoded message too long")]
    TooLong,
    /// A value does not fit its wire field (for example an OXM value of the wrong length).
    #[error("invalid value: {what}")]
    Invalid {
        /// What was wrong.
        what: &'static str,
    },
}
