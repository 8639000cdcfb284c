//! Multipart reply entries for queues, groups and meters (OpenFlow 1.3.5 §7.3.5.8–§7.3.5.14).

use super::error::{EncodeError, Reason};
use super::group::{decode_buckets, encode_buckets, Bucket};
use super::meter::{decode_bands, encode_bands, MeterBand};
use super::wire::{Put, Reader};

/// `ofp_queue_stats`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct QueueStats {
    /// Port number.
    pub port_no: u32,
    /// Queue id.
    pub queue_id: u32,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Packets dropped for overrun.
    pub tx_errors: u64,
    /// Time alive, seconds.
    pub duration_sec: u32,
    /// Time alive beyond `duration_sec`, nanoseconds.
    pub duration_nsec: u32,
}

/// Length of `ofp_queue_stats`.
pub(crate) const QUEUE_STATS_LEN: usize = 40;

impl QueueStats {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.put_u32(self.port_no);
        out.put_u32(self.queue_id);
        out.put_u64(self.tx_bytes);
        out.put_u64(self.tx_packets);
        out.put_u64(self.tx_errors);
        out.put_u32(self.duration_sec);
        out.put_u32(self.duration_nsec);
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<QueueStats, Reason> {
        Ok(QueueStats {
            port_no: r.u32()?,
            queue_id: r.u32()?,
            tx_bytes: r.u64()?,
            tx_packets: r.u64()?,
            tx_errors: r.u64()?,
            duration_sec: r.u32()?,
            duration_nsec: r.u32()?,
        })
    }
}

/// Packet and byte counters of one bucket or meter band.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Counts {
    /// Packets.
    pub packet_count: u64,
    /// Bytes.
    pub byte_count: u64,
}

fn decode_counts(r: &mut Reader<'_>) -> Result<Vec<Counts>, Reason> {
    if !r.remaining().is_multiple_of(16) {
        return Err(Reason::BadLen);
    }
    let mut out = Vec::new();
    while r.remaining() > 0 {
        out.push(Counts { packet_count: r.u64()?, byte_count: r.u64()? });
    }
    Ok(out)
}

fn encode_counts(counts: &[Counts], out: &mut Vec<u8>) {
    for c in counts {
        out.put_u64(c.packet_count);
        out.put_u64(c.byte_count);
    }
}

/// Reads a `u16` length at the front of an entry and returns a reader over the rest of it.
fn entry<'a>(r: &mut Reader<'a>, min: usize) -> Result<Reader<'a>, Reason> {
    let len = usize::from(r.u16()?);
    if len < min {
        return Err(Reason::BadLen);
    }
    Ok(Reader::new(r.bytes(len - 2)?, Reason::BadLen))
}

/// `ofp_group_stats`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct GroupStats {
    /// Group id.
    pub group_id: u32,
    /// Flows and groups that forward to this group.
    pub ref_count: u32,
    /// Packets processed.
    pub packet_count: u64,
    /// Bytes processed.
    pub byte_count: u64,
    /// Time alive, seconds.
    pub duration_sec: u32,
    /// Time alive beyond `duration_sec`, nanoseconds.
    pub duration_nsec: u32,
    /// Per-bucket counters.
    pub bucket_stats: Vec<Counts>,
}

impl GroupStats {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = out.len();
        out.put_u16(0);
        out.put_zeros(2);
        out.put_u32(self.group_id);
        out.put_u32(self.ref_count);
        out.put_zeros(4);
        out.put_u64(self.packet_count);
        out.put_u64(self.byte_count);
        out.put_u32(self.duration_sec);
        out.put_u32(self.duration_nsec);
        encode_counts(&self.bucket_stats, out);
        out.patch_len(start, start)
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<GroupStats, Reason> {
        let mut g = entry(r, 40)?;
        g.skip(2)?;
        let group_id = g.u32()?;
        let ref_count = g.u32()?;
        g.skip(4)?;
        Ok(GroupStats {
            group_id,
            ref_count,
            packet_count: g.u64()?,
            byte_count: g.u64()?,
            duration_sec: g.u32()?,
            duration_nsec: g.u32()?,
            bucket_stats: decode_counts(&mut g)?,
        })
    }
}

/// `ofp_group_desc`: a group's type and buckets.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct GroupDesc {
    /// `OFPGT_*`.
    pub type_: u8,
    /// Group id.
    pub group_id: u32,
    /// The buckets.
    pub buckets: Vec<Bucket>,
}

impl GroupDesc {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = out.len();
        out.put_u16(0);
        out.put_u8(self.type_);
        out.put_u8(0);
        out.put_u32(self.group_id);
        encode_buckets(&self.buckets, out)?;
        out.patch_len(start, start)
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<GroupDesc, Reason> {
        let mut g = entry(r, 8)?;
        let type_ = g.u8()?;
        g.skip(1)?;
        let group_id = g.u32()?;
        Ok(GroupDesc { type_, group_id, buckets: decode_buckets(g.rest())? })
    }
}

/// `ofp_group_features`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct GroupFeatures {
    /// Bitmap of `1 << OFPGT_*` supported.
    pub types: u32,
    /// `OFPGFC_*` bitmap.
    pub capabilities: u32,
    /// Max groups of each type.
    pub max_groups: [u32; 4],
    /// Bitmaps of `1 << OFPAT_*` supported, per type.
    pub actions: [u32; 4],
}

impl GroupFeatures {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.put_u32(self.types);
        out.put_u32(self.capabilities);
        self.max_groups.iter().chain(&self.actions).for_each(|v| out.put_u32(*v));
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<GroupFeatures, Reason> {
        let mut f = GroupFeatures { types: r.u32()?, capabilities: r.u32()?, ..GroupFeatures::default() };
        for v in f.max_groups.iter_mut().chain(f.actions.iter_mut()) {
            *v = r.u32()?;
        }
        r.finish(Reason::BadLen)?;
        Ok(f)
    }
}

/// `ofp_meter_stats`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct MeterStats {
    /// Meter id.
    pub meter_id: u32,
    /// Flows bound to the meter.
    pub flow_count: u32,
    /// Packets in input.
    pub packet_in_count: u64,
    /// Bytes in input.
    pub byte_in_count: u64,
    /// Time alive, seconds.
    pub duration_sec: u32,
    /// Time alive beyond `duration_sec`, nanoseconds.
    pub duration_nsec: u32,
    /// Per-band counters.
    pub band_stats: Vec<Counts>,
}

impl MeterStats {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = out.len();
        out.put_u32(self.meter_id);
        out.put_u16(0);
        out.put_zeros(6);
        out.put_u32(self.flow_count);
        out.put_u64(self.packet_in_count);
        out.put_u64(self.byte_in_count);
        out.put_u32(self.duration_sec);
        out.put_u32(self.duration_nsec);
        encode_counts(&self.band_stats, out);
        out.patch_len(start + 4, start)
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<MeterStats, Reason> {
        let meter_id = r.u32()?;
        let len = usize::from(r.u16()?);
        if len < 40 {
            return Err(Reason::BadLen);
        }
        let mut m = Reader::new(r.bytes(len - 6)?, Reason::BadLen);
        m.skip(6)?;
        Ok(MeterStats {
            meter_id,
            flow_count: m.u32()?,
            packet_in_count: m.u64()?,
            byte_in_count: m.u64()?,
            duration_sec: m.u32()?,
            duration_nsec: m.u32()?,
            band_stats: decode_counts(&mut m)?,
        })
    }
}

/// `ofp_meter_config`: a meter's flags and bands.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct MeterConfig {
    /// `OFPMF_*`.
    pub flags: u16,
    /// Meter id.
    pub meter_id: u32,
    /// The bands.
    pub bands: Vec<MeterBand>,
}

impl MeterConfig {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = out.len();
        out.put_u16(0);
        out.put_u16(self.flags);
        out.put_u32(self.meter_id);
        encode_bands(&self.bands, out)?;
        out.patch_len(start, start)
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<MeterConfig, Reason> {
        let mut m = entry(r, 8)?;
        let flags = m.u16()?;
        let meter_id = m.u32()?;
        Ok(MeterConfig { flags, meter_id, bands: decode_bands(m.rest())? })
    }
}

/// `ofp_meter_features`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct MeterFeatures {
    /// Maximum number of meters.
    pub max_meter: u32,
    /// Bitmap of `1 << OFPMBT_*` supported.
    pub band_types: u32,
    /// `OFPMF_*` supported.
    pub capabilities: u32,
    /// Maximum bands per meter.
    pub max_bands: u8,
    /// Maximum color value.
    pub max_color: u8,
}

impl MeterFeatures {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.put_u32(self.max_meter);
        out.put_u32(self.band_types);
        out.put_u32(self.capabilities);
        out.put_u8(self.max_bands);
        out.put_u8(self.max_color);
        out.put_zeros(2);
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<MeterFeatures, Reason> {
        let f = MeterFeatures {
            max_meter: r.u32()?,
            band_types: r.u32()?,
            capabilities: r.u32()?,
            max_bands: r.u8()?,
            max_color: r.u8()?,
        };
        r.skip(2)?;
        r.finish(Reason::BadLen)?;
        Ok(f)
    }
}
