//! `OFPT_GROUP_MOD` and group buckets (OpenFlow 1.3.5 §7.3.4.2), shared with the group-desc
//! multipart reply. Commands and types are kept as numbers: whether they are valid is the
//! model's business, so the switch can answer `OFPGMFC_BAD_COMMAND`/`BAD_TYPE` itself.

use super::action::{decode_actions, encode_actions, Action};
use super::error::{EncodeError, Reason};
use super::wire::{Put, Reader};

/// `OFPGC_ADD`
pub const OFPGC_ADD: u16 = 0;
/// `OFPGC_MODIFY`
pub const OFPGC_MODIFY: u16 = 1;
/// `OFPGC_DELETE`
pub const OFPGC_DELETE: u16 = 2;

/// `OFPGT_ALL`: all buckets are executed (multicast, flood).
pub const OFPGT_ALL: u8 = 0;
/// `OFPGT_SELECT`: one bucket is executed (multipath).
pub const OFPGT_SELECT: u8 = 1;
/// `OFPGT_INDIRECT`: the one bucket is executed.
pub const OFPGT_INDIRECT: u8 = 2;
/// `OFPGT_FF`: the first live bucket is executed (fast failover).
pub const OFPGT_FF: u8 = 3;

/// `OFPG_MAX`: the highest ordinary group number.
pub const OFPG_MAX: u32 = 0xffff_ff00;
/// `OFPG_ALL`: every group (group delete, group stats).
pub const OFPG_ALL: u32 = 0xffff_fffc;

/// Length of `ofp_bucket` before its actions.
const BUCKET_LEN: usize = 16;

/// `ofp_bucket`: actions with a weight (select) or a liveness watch (fast failover).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Bucket {
    /// Relative weight for select groups, else 0.
    pub weight: u16,
    /// Port whose liveness gates this bucket (fast failover), or `OFPP_ANY`.
    pub watch_port: u32,
    /// Group whose liveness gates this bucket (fast failover), or `OFPG_ANY`.
    pub watch_group: u32,
    /// The bucket's actions.
    pub actions: Vec<Action>,
}

impl Bucket {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = out.len();
        out.put_u16(0);
        out.put_u16(self.weight);
        out.put_u32(self.watch_port);
        out.put_u32(self.watch_group);
        out.put_zeros(4);
        encode_actions(&self.actions, out)?;
        out.patch_len(start, start)
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Bucket, Reason> {
        let len = usize::from(r.u16().map_err(|_| Reason::BadBucket)?);
        if len < BUCKET_LEN {
            return Err(Reason::BadBucket);
        }
        let mut b = Reader::new(r.bytes(len - 2).map_err(|_| Reason::BadBucket)?, Reason::BadBucket);
        let weight = b.u16()?;
        let watch_port = b.u32()?;
        let watch_group = b.u32()?;
        b.skip(4)?;
        Ok(Bucket { weight, watch_port, watch_group, actions: decode_actions(b.rest())? })
    }
}

/// Decodes buckets filling all of `buf`.
pub(crate) fn decode_buckets(buf: &[u8]) -> Result<Vec<Bucket>, Reason> {
    let mut r = Reader::new(buf, Reason::BadBucket);
    let mut out = Vec::new();
    while r.remaining() > 0 {
        out.push(Bucket::decode(&mut r)?);
    }
    Ok(out)
}

/// Appends `buckets`.
pub(crate) fn encode_buckets(buckets: &[Bucket], out: &mut Vec<u8>) -> Result<(), EncodeError> {
    buckets.iter().try_for_each(|b| b.encode(out))
}

/// `OFPT_GROUP_MOD`: add, modify or delete a group.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct GroupMod {
    /// `OFPGC_*`.
    pub command: u16,
    /// `OFPGT_*`.
    pub type_: u8,
    /// Group id.
    pub group_id: u32,
    /// The buckets.
    pub buckets: Vec<Bucket>,
}

impl GroupMod {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.put_u16(self.command);
        out.put_u8(self.type_);
        out.put_u8(0);
        out.put_u32(self.group_id);
        encode_buckets(&self.buckets, out)
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<GroupMod, Reason> {
        let command = r.u16()?;
        let type_ = r.u8()?;
        r.skip(1)?;
        let group_id = r.u32()?;
        Ok(GroupMod { command, type_, group_id, buckets: decode_buckets(r.rest())? })
    }
}
