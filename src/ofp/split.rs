//! Splitting a long multipart (1.3) or stats (1.0) reply into messages that each fit the
//! 16-bit `ofp_header.length`, with the "more" flag on all but the last (OpenFlow 1.3.5
//! §7.3.5: a reply may span several messages with the same xid).

use super::error::EncodeError;
use super::header::{Xid, HEADER_LEN, OFP10_VERSION, OFP13_VERSION};
use super::multipart::{MultipartReply, MultipartReplyBody, OFPMPF_MORE};
use super::v10::{StatsReply, StatsReplyBody, OFPSF_REPLY_MORE};
use super::{Body, Message};

/// The largest message: `ofp_header.length` is 16 bits.
pub const MAX_MESSAGE_LEN: usize = 0xffff;

/// Groups `items` greedily into runs whose encoded entries fit `room` bytes. `wrap` turns a
/// run into a body whose entries `encode` writes. Always at least one (maybe empty) run.
fn split_list<T: Clone, B>(
    items: Vec<T>,
    room: usize,
    wrap: impl Fn(Vec<T>) -> B,
    encode: impl Fn(&B, &mut Vec<u8>) -> Result<(), EncodeError>,
) -> Result<Vec<B>, EncodeError> {
    let mut runs = Vec::new();
    let mut run = Vec::new();
    let mut used = 0;
    let mut scratch = Vec::new();
    for item in items {
        scratch.clear();
        encode(&wrap(vec![item.clone()]), &mut scratch)?;
        let n = scratch.len();
        if n > room {
            return Err(EncodeError::TooLong);
        }
        if used + n > room {
            runs.push(wrap(std::mem::take(&mut run)));
            used = 0;
        }
        used += n;
        run.push(item);
    }
    if !run.is_empty() || runs.is_empty() {
        runs.push(wrap(run));
    }
    Ok(runs)
}

/// Splits an OpenFlow 1.3 multipart reply `body` into as many `OFPT_MULTIPART_REPLY`
/// messages (all with `xid`) as it takes for each to be at most 65535 bytes; all but the last
/// carry `OFPMPF_REPLY_MORE`. Bodies that are not lists give one message. Fails if `version`
/// is not 1.3 or one entry alone is too long.
pub fn split_reply(xid: Xid, version: u8, body: MultipartReplyBody) -> Result<Vec<Message>, EncodeError> {
    use MultipartReplyBody as B;
    if version != OFP13_VERSION {
        return Err(EncodeError::NotInVersion { version });
    }
    let room = MAX_MESSAGE_LEN - HEADER_LEN - 8;
    let enc = |b: &B, out: &mut Vec<u8>| b.encode_entries(out);
    let bodies = match body {
        B::Flow(v) => split_list(v, room, B::Flow, enc)?,
        B::Table(v) => split_list(v, room, B::Table, enc)?,
        B::PortStats(v) => split_list(v, room, B::PortStats, enc)?,
        B::PortDesc(v) => split_list(v, room, B::PortDesc, enc)?,
        B::TableFeatures(v) => split_list(v, room, B::TableFeatures, enc)?,
        B::Queue(v) => split_list(v, room, B::Queue, enc)?,
        B::Group(v) => split_list(v, room, B::Group, enc)?,
        B::GroupDesc(v) => split_list(v, room, B::GroupDesc, enc)?,
        B::Meter(v) => split_list(v, room, B::Meter, enc)?,
        B::MeterConfig(v) => split_list(v, room, B::MeterConfig, enc)?,
        single @ (B::Desc(_)
        | B::Aggregate(_)
        | B::GroupFeatures(_)
        | B::MeterFeatures(_)
        | B::Experimenter(_)) => {
            vec![single]
        }
    };
    let last = bodies.len() - 1;
    Ok(bodies
        .into_iter()
        .enumerate()
        .map(|(i, body)| {
            let flags = if i < last { OFPMPF_MORE } else { 0 };
            Message { version, xid, body: Body::MultipartReply(MultipartReply { flags, body }) }
        })
        .collect())
}

/// [`split_reply`] for an OpenFlow 1.0 `OFPT_STATS_REPLY` (`OFPSF_REPLY_MORE` on all but the
/// last).
pub fn split_stats_reply(xid: Xid, body: StatsReplyBody) -> Result<Vec<Message>, EncodeError> {
    use StatsReplyBody as B;
    let room = MAX_MESSAGE_LEN - HEADER_LEN - 4;
    let enc = |b: &B, out: &mut Vec<u8>| b.encode_entries(out);
    let bodies = match body {
        B::Flow(v) => split_list(v, room, B::Flow, enc)?,
        B::Table(v) => split_list(v, room, B::Table, enc)?,
        B::Port(v) => split_list(v, room, B::Port, enc)?,
        B::Queue(v) => split_list(v, room, B::Queue, enc)?,
        B::PortDesc(v) => split_list(v, room, B::PortDesc, enc)?,
        single @ (B::Desc(_) | B::Aggregate(_) | B::Vendor { .. }) => vec![single],
    };
    let last = bodies.len() - 1;
    Ok(bodies
        .into_iter()
        .enumerate()
        .map(|(i, body)| {
            let flags = if i < last { OFPSF_REPLY_MORE } else { 0 };
            let body = Body::V10(super::v10::Body::StatsReply(StatsReply { flags, body }));
            Message { version: OFP10_VERSION, xid, body }
        })
        .collect())
}
