//! Every `OFPT_ERROR` type/code pair of OpenFlow 1.3.5 (§7.4.4) as one enum, [`ErrorCode`],
//! and its numbers on the wire in each version: OpenFlow 1.0 has fewer types, numbered
//! differently, so [`ErrorCode::wire`] maps a 1.3 error onto the nearest 1.0 one (as Open
//! vSwitch's `ofp-errors` table does).

use super::header::OFP10_VERSION;

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $name:ident = ($t:expr, $c:expr) ),* $(,)?) => {
        /// An OpenFlow error: what an `OFPT_ERROR` reply says went wrong.
        /// Variants carry the spec's names, so they read as the spec does.
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $( $(#[$doc])* $name, )*
        }

        impl ErrorCode {
            /// `(type, code)` in OpenFlow 1.3.
            pub const fn v13(self) -> (u16, u16) {
                match self { $( ErrorCode::$name => ($t, $c), )* }
            }

            /// The error with OpenFlow 1.3 numbers `(type, code)`, if the spec defines it.
            pub fn from_v13(type_: u16, code: u16) -> Option<ErrorCode> {
                match (type_, code) {
                    $( ($t, $c) => Some(ErrorCode::$name), )*
                    _ => None,
                }
            }

            /// The spec's name, e.g. `OFPBMC_BAD_PREREQ`.
            pub const fn name(self) -> &'static str {
                match self { $( ErrorCode::$name => stringify!($name), )* }
            }
        }
    };
}

error_codes! {
    /// No version in common.
    OFPHFC_INCOMPATIBLE = (0, 0),
    /// Permissions error.
    OFPHFC_EPERM = (0, 1),
    OFPBRC_BAD_VERSION = (1, 0),
    OFPBRC_BAD_TYPE = (1, 1),
    OFPBRC_BAD_MULTIPART = (1, 2),
    OFPBRC_BAD_EXPERIMENTER = (1, 3),
    OFPBRC_BAD_EXP_TYPE = (1, 4),
    OFPBRC_EPERM = (1, 5),
    OFPBRC_BAD_LEN = (1, 6),
    OFPBRC_BUFFER_EMPTY = (1, 7),
    OFPBRC_BUFFER_UNKNOWN = (1, 8),
    OFPBRC_BAD_TABLE_ID = (1, 9),
    /// A slave controller sent a state-changing message.
    OFPBRC_IS_SLAVE = (1, 10),
    OFPBRC_BAD_PORT = (1, 11),
    OFPBRC_BAD_PACKET = (1, 12),
    OFPBRC_MULTIPART_BUFFER_OVERFLOW = (1, 13),
    OFPBAC_BAD_TYPE = (2, 0),
    OFPBAC_BAD_LEN = (2, 1),
    OFPBAC_BAD_EXPERIMENTER = (2, 2),
    OFPBAC_BAD_EXP_TYPE = (2, 3),
    OFPBAC_BAD_OUT_PORT = (2, 4),
    OFPBAC_BAD_ARGUMENT = (2, 5),
    OFPBAC_EPERM = (2, 6),
    OFPBAC_TOO_MANY = (2, 7),
    OFPBAC_BAD_QUEUE = (2, 8),
    OFPBAC_BAD_OUT_GROUP = (2, 9),
    OFPBAC_MATCH_INCONSISTENT = (2, 10),
    OFPBAC_UNSUPPORTED_ORDER = (2, 11),
    OFPBAC_BAD_TAG = (2, 12),
    OFPBAC_BAD_SET_TYPE = (2, 13),
    OFPBAC_BAD_SET_LEN = (2, 14),
    OFPBAC_BAD_SET_ARGUMENT = (2, 15),
    OFPBIC_UNKNOWN_INST = (3, 0),
    OFPBIC_UNSUP_INST = (3, 1),
    OFPBIC_BAD_TABLE_ID = (3, 2),
    OFPBIC_UNSUP_METADATA = (3, 3),
    OFPBIC_UNSUP_METADATA_MASK = (3, 4),
    OFPBIC_BAD_EXPERIMENTER = (3, 5),
    OFPBIC_BAD_EXP_TYPE = (3, 6),
    OFPBIC_BAD_LEN = (3, 7),
    OFPBIC_EPERM = (3, 8),
    OFPBMC_BAD_TYPE = (4, 0),
    OFPBMC_BAD_LEN = (4, 1),
    OFPBMC_BAD_TAG = (4, 2),
    OFPBMC_BAD_DL_ADDR_MASK = (4, 3),
    OFPBMC_BAD_NW_ADDR_MASK = (4, 4),
    OFPBMC_BAD_WILDCARDS = (4, 5),
    OFPBMC_BAD_FIELD = (4, 6),
    OFPBMC_BAD_VALUE = (4, 7),
    OFPBMC_BAD_MASK = (4, 8),
    OFPBMC_BAD_PREREQ = (4, 9),
    OFPBMC_DUP_FIELD = (4, 10),
    OFPBMC_EPERM = (4, 11),
    OFPFMFC_UNKNOWN = (5, 0),
    OFPFMFC_TABLE_FULL = (5, 1),
    OFPFMFC_BAD_TABLE_ID = (5, 2),
    OFPFMFC_OVERLAP = (5, 3),
    OFPFMFC_EPERM = (5, 4),
    OFPFMFC_BAD_TIMEOUT = (5, 5),
    OFPFMFC_BAD_COMMAND = (5, 6),
    OFPFMFC_BAD_FLAGS = (5, 7),
    OFPGMFC_GROUP_EXISTS = (6, 0),
    OFPGMFC_INVALID_GROUP = (6, 1),
    OFPGMFC_WEIGHT_UNSUPPORTED = (6, 2),
    OFPGMFC_OUT_OF_GROUPS = (6, 3),
    OFPGMFC_OUT_OF_BUCKETS = (6, 4),
    OFPGMFC_CHAINING_UNSUPPORTED = (6, 5),
    OFPGMFC_WATCH_UNSUPPORTED = (6, 6),
    OFPGMFC_LOOP = (6, 7),
    OFPGMFC_UNKNOWN_GROUP = (6, 8),
    OFPGMFC_CHAINED_GROUP = (6, 9),
    OFPGMFC_BAD_TYPE = (6, 10),
    OFPGMFC_BAD_COMMAND = (6, 11),
    OFPGMFC_BAD_BUCKET = (6, 12),
    OFPGMFC_BAD_WATCH = (6, 13),
    OFPGMFC_EPERM = (6, 14),
    OFPPMFC_BAD_PORT = (7, 0),
    OFPPMFC_BAD_HW_ADDR = (7, 1),
    OFPPMFC_BAD_CONFIG = (7, 2),
    OFPPMFC_BAD_ADVERTISE = (7, 3),
    OFPPMFC_EPERM = (7, 4),
    OFPTMFC_BAD_TABLE = (8, 0),
    OFPTMFC_BAD_CONFIG = (8, 1),
    OFPTMFC_EPERM = (8, 2),
    OFPQOFC_BAD_PORT = (9, 0),
    OFPQOFC_BAD_QUEUE = (9, 1),
    OFPQOFC_EPERM = (9, 2),
    OFPSCFC_BAD_FLAGS = (10, 0),
    OFPSCFC_BAD_LEN = (10, 1),
    OFPSCFC_EPERM = (10, 2),
    /// A role request with a generation id older than the last one seen.
    OFPRRFC_STALE = (11, 0),
    OFPRRFC_UNSUP = (11, 1),
    OFPRRFC_BAD_ROLE = (11, 2),
    OFPMMFC_UNKNOWN = (12, 0),
    OFPMMFC_METER_EXISTS = (12, 1),
    OFPMMFC_INVALID_METER = (12, 2),
    OFPMMFC_UNKNOWN_METER = (12, 3),
    OFPMMFC_BAD_COMMAND = (12, 4),
    OFPMMFC_BAD_FLAGS = (12, 5),
    OFPMMFC_BAD_RATE = (12, 6),
    OFPMMFC_BAD_BURST = (12, 7),
    OFPMMFC_BAD_BAND = (12, 8),
    OFPMMFC_BAD_BAND_VALUE = (12, 9),
    OFPMMFC_OUT_OF_METERS = (12, 10),
    OFPMMFC_OUT_OF_BANDS = (12, 11),
    OFPTFFC_BAD_TABLE = (13, 0),
    OFPTFFC_BAD_METADATA = (13, 1),
    OFPTFFC_BAD_TYPE = (13, 2),
    OFPTFFC_BAD_LEN = (13, 3),
    OFPTFFC_BAD_ARGUMENT = (13, 4),
    OFPTFFC_EPERM = (13, 5),
}

// OpenFlow 1.0 error types (`ofp_error_type` of 1.0.0 §5.4.4).
const V10_HELLO_FAILED: u16 = 0;
const V10_BAD_REQUEST: u16 = 1;
const V10_BAD_ACTION: u16 = 2;
const V10_FLOW_MOD_FAILED: u16 = 3;
const V10_PORT_MOD_FAILED: u16 = 4;
const V10_QUEUE_OP_FAILED: u16 = 5;

impl ErrorCode {
    /// `(type, code)` on the wire in `version`. OpenFlow 1.0 has no match, instruction, group,
    /// meter, table-mod, role or table-features errors: those map onto the closest 1.0 error
    /// (a bad match is `OFPBRC_BAD_REQUEST`-class `BAD_LEN`/`EPERM`, as OVS answers 1.0 peers).
    pub fn wire(self, version: u8) -> (u16, u16) {
        if version != OFP10_VERSION {
            return self.v13();
        }
        use ErrorCode::*;
        let (t, c) = self.v13();
        match t {
            0 => (V10_HELLO_FAILED, c),
            // BAD_REQUEST codes 0..=8 have the same meaning in 1.0; later ones did not exist.
            1 if c <= 8 => (V10_BAD_REQUEST, c),
            1 => (V10_BAD_REQUEST, OFPBRC_EPERM.v13().1),
            // BAD_ACTION codes 0..=8 are the same in 1.0 (BAD_VENDOR for BAD_EXPERIMENTER).
            2 if c <= 8 => (V10_BAD_ACTION, c),
            2 => match self {
                OFPBAC_BAD_SET_TYPE | OFPBAC_BAD_SET_LEN => (V10_BAD_ACTION, OFPBAC_BAD_TYPE.v13().1),
                _ => (V10_BAD_ACTION, OFPBAC_BAD_ARGUMENT.v13().1),
            },
            5 => match self {
                OFPFMFC_TABLE_FULL => (V10_FLOW_MOD_FAILED, 0), // ALL_TABLES_FULL
                OFPFMFC_OVERLAP => (V10_FLOW_MOD_FAILED, 1),
                OFPFMFC_EPERM => (V10_FLOW_MOD_FAILED, 2),
                OFPFMFC_BAD_TIMEOUT => (V10_FLOW_MOD_FAILED, 3), // BAD_EMERG_TIMEOUT
                OFPFMFC_BAD_COMMAND => (V10_FLOW_MOD_FAILED, 4),
                _ => (V10_FLOW_MOD_FAILED, 5), // UNSUPPORTED
            },
            7 => match self {
                OFPPMFC_BAD_PORT => (V10_PORT_MOD_FAILED, 0),
                _ => (V10_PORT_MOD_FAILED, 1), // BAD_HW_ADDR, the only other 1.0 code
            },
            9 => (V10_QUEUE_OP_FAILED, c),
            // Match errors: 1.0 has no BAD_MATCH type; OVS sends BAD_REQUEST/EPERM-like
            // codes. Instructions, groups, meters, tables, roles: not in 1.0 at all.
            _ => (V10_BAD_REQUEST, OFPBRC_EPERM.v13().1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ofp::header::OFP13_VERSION;

    #[test]
    fn numbers_round_trip_and_names_are_the_specs() {
        for (t, c) in [(0, 0), (1, 13), (4, 9), (6, 14), (12, 11), (13, 5)] {
            let e = ErrorCode::from_v13(t, c).unwrap();
            assert_eq!(e.v13(), (t, c));
        }
        assert_eq!(ErrorCode::from_v13(4, 12), None);
        assert_eq!(ErrorCode::OFPBMC_BAD_PREREQ.name(), "OFPBMC_BAD_PREREQ");
    }

    #[test]
    fn version_1_0_numbers() {
        assert_eq!(ErrorCode::OFPBRC_BAD_LEN.wire(OFP10_VERSION), (1, 6));
        assert_eq!(ErrorCode::OFPFMFC_OVERLAP.wire(OFP10_VERSION), (3, 1));
        assert_eq!(ErrorCode::OFPFMFC_OVERLAP.wire(OFP13_VERSION), (5, 3));
        assert_eq!(ErrorCode::OFPBAC_BAD_OUT_PORT.wire(OFP10_VERSION), (2, 4));
        assert_eq!(ErrorCode::OFPPMFC_BAD_PORT.wire(OFP10_VERSION), (4, 0));
    }
}
