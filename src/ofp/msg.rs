//! The small fixed-layout messages: HELLO, ERROR, FEATURES_REPLY, switch config and role.

use super::error::{EncodeError, Reason};
use super::wire::{pad8, Put, Reader};

/// `OFPHET_VERSIONBITMAP`: hello element listing the supported versions.
pub const OFPHET_VERSIONBITMAP: u16 = 1;

/// `OFPT_HELLO`: its elements (none in OpenFlow 1.0, usually a version bitmap since 1.3.1).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Hello {
    /// The hello elements in order.
    pub elements: Vec<HelloElement>,
}

/// One `ofp_hello_elem_header` and its body.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum HelloElement {
    /// `OFPHET_VERSIONBITMAP`: bit `v % 32` of word `v / 32` is set if version `v` is
    /// supported.
    VersionBitmap(Vec<u32>),
    /// An element type this codec does not know, kept raw (without padding).
    Unknown {
        /// Element type.
        type_: u16,
        /// Element body.
        data: Vec<u8>,
    },
}

impl Hello {
    /// A hello advertising exactly `versions` in a version bitmap.
    pub fn with_versions(versions: &[u8]) -> Hello {
        let words = versions.iter().map(|&v| usize::from(v) / 32 + 1).max().unwrap_or(1);
        let mut bitmap = vec![0u32; words];
        for &v in versions {
            if let Some(w) = bitmap.get_mut(usize::from(v) / 32) {
                *w |= 1 << (v % 32);
            }
        }
        Hello { elements: vec![HelloElement::VersionBitmap(bitmap)] }
    }

    /// The versions in the first version bitmap, if there is one.
    pub fn versions(&self) -> Option<Vec<u8>> {
        self.elements.iter().find_map(|e| match e {
            HelloElement::VersionBitmap(words) => Some(
                (0..=u8::MAX)
                    .filter(|&v| words.get(usize::from(v) / 32).is_some_and(|w| w & (1 << (v % 32)) != 0))
                    .collect(),
            ),
            HelloElement::Unknown { .. } => None,
        })
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        for e in &self.elements {
            let start = out.len();
            match e {
                HelloElement::VersionBitmap(words) => {
                    out.put_u16(OFPHET_VERSIONBITMAP);
                    out.put_u16(0);
                    words.iter().for_each(|w| out.put_u32(*w));
                }
                HelloElement::Unknown { type_, data } => {
                    out.put_u16(*type_);
                    out.put_u16(0);
                    out.extend_from_slice(data);
                }
            }
            out.patch_len(start + 2, start)?;
            out.pad8(start);
        }
        Ok(())
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Hello, Reason> {
        let mut elements = Vec::new();
        while r.remaining() > 0 {
            let type_ = r.u16()?;
            let len = usize::from(r.u16()?);
            if len < 4 {
                return Err(Reason::BadLen);
            }
            let data = r.bytes(len - 4)?;
            r.skip(pad8(len) - len)?;
            elements.push(if type_ == OFPHET_VERSIONBITMAP {
                if !data.len().is_multiple_of(4) {
                    return Err(Reason::BadLen);
                }
                let mut words = Reader::new(data, Reason::BadLen);
                let mut bitmap = Vec::new();
                while words.remaining() > 0 {
                    bitmap.push(words.u32()?);
                }
                HelloElement::VersionBitmap(bitmap)
            } else {
                HelloElement::Unknown { type_, data: data.to_vec() }
            });
        }
        Ok(Hello { elements })
    }
}

/// `OFPT_ERROR`: `ofp_error_msg`. For `OFPET_EXPERIMENTER` the `code` is the `exp_type` and
/// `data` starts with the experimenter id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Error {
    /// `OFPET_*`.
    pub type_: u16,
    /// Code within the type.
    pub code: u16,
    /// Usually the first bytes of the offending request.
    pub data: Vec<u8>,
}

impl Error {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.put_u16(self.type_);
        out.put_u16(self.code);
        out.extend_from_slice(&self.data);
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Error, Reason> {
        Ok(Error { type_: r.u16()?, code: r.u16()?, data: r.rest().to_vec() })
    }
}

/// `OFPC_FLOW_STATS`: capability bit, flow statistics.
pub const OFPC_FLOW_STATS: u32 = 1 << 0;
/// `OFPC_TABLE_STATS`: capability bit, table statistics.
pub const OFPC_TABLE_STATS: u32 = 1 << 1;
/// `OFPC_PORT_STATS`: capability bit, port statistics.
pub const OFPC_PORT_STATS: u32 = 1 << 2;
/// `OFPC_GROUP_STATS`: capability bit, group statistics.
pub const OFPC_GROUP_STATS: u32 = 1 << 3;

/// `OFPT_FEATURES_REPLY` of OpenFlow 1.3 (`ofp_switch_features`; ports come via PORT_DESC).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct FeaturesReply {
    /// Datapath unique id.
    pub datapath_id: u64,
    /// Max packets buffered at once.
    pub n_buffers: u32,
    /// Number of tables.
    pub n_tables: u8,
    /// Identifies an auxiliary connection (0: main).
    pub auxiliary_id: u8,
    /// `OFPC_*` bitmap.
    pub capabilities: u32,
    /// Reserved.
    pub reserved: u32,
}

impl FeaturesReply {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.put_u64(self.datapath_id);
        out.put_u32(self.n_buffers);
        out.put_u8(self.n_tables);
        out.put_u8(self.auxiliary_id);
        out.put_zeros(2);
        out.put_u32(self.capabilities);
        out.put_u32(self.reserved);
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<FeaturesReply, Reason> {
        let datapath_id = r.u64()?;
        let n_buffers = r.u32()?;
        let n_tables = r.u8()?;
        let auxiliary_id = r.u8()?;
        r.skip(2)?;
        let f = FeaturesReply {
            datapath_id,
            n_buffers,
            n_tables,
            auxiliary_id,
            capabilities: r.u32()?,
            reserved: r.u32()?,
        };
        r.finish(Reason::BadLen)?;
        Ok(f)
    }
}

/// `OFPC_FRAG_NORMAL`: no special handling of IP fragments.
pub const OFPC_FRAG_NORMAL: u16 = 0;

/// `ofp_switch_config`: body of GET_CONFIG_REPLY and SET_CONFIG (same in 1.0 and 1.3).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SwitchConfig {
    /// `OFPC_FRAG_*` bitmap.
    pub flags: u16,
    /// Bytes of a table-miss packet to send to the controller.
    pub miss_send_len: u16,
}

impl SwitchConfig {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.put_u16(self.flags);
        out.put_u16(self.miss_send_len);
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<SwitchConfig, Reason> {
        let c = SwitchConfig { flags: r.u16()?, miss_send_len: r.u16()? };
        r.finish(Reason::BadLen)?;
        Ok(c)
    }
}

/// `OFPCR_ROLE_NOCHANGE`: don't change the current role.
pub const OFPCR_ROLE_NOCHANGE: u32 = 0;
/// `OFPCR_ROLE_EQUAL`: default role, full access.
pub const OFPCR_ROLE_EQUAL: u32 = 1;
/// `OFPCR_ROLE_MASTER`: full access, at most one master.
pub const OFPCR_ROLE_MASTER: u32 = 2;
/// `OFPCR_ROLE_SLAVE`: read-only access.
pub const OFPCR_ROLE_SLAVE: u32 = 3;

/// `ofp_role_request`: body of ROLE_REQUEST and ROLE_REPLY.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Role {
    /// `OFPCR_ROLE_*`.
    pub role: u32,
    /// Master election generation id.
    pub generation_id: u64,
}

impl Role {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.put_u32(self.role);
        out.put_zeros(4);
        out.put_u64(self.generation_id);
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Role, Reason> {
        let role = r.u32()?;
        r.skip(4)?;
        let generation_id = r.u64()?;
        r.finish(Reason::BadLen)?;
        Ok(Role { role, generation_id })
    }
}
