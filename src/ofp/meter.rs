//! `OFPT_METER_MOD` and meter bands (OpenFlow 1.3.5 §7.3.4.4), shared with the meter-config
//! multipart reply. Commands and flags are kept as numbers for the model to check; a band of
//! an undefined type is a decode error (`OFPMMFC_BAD_BAND`).

use super::error::{EncodeError, Reason};
use super::wire::{Put, Reader};

/// `OFPMC_ADD`
pub const OFPMC_ADD: u16 = 0;
/// `OFPMC_MODIFY`
pub const OFPMC_MODIFY: u16 = 1;
/// `OFPMC_DELETE`
pub const OFPMC_DELETE: u16 = 2;

/// `OFPMF_KBPS`: rates in kb/s.
pub const OFPMF_KBPS: u16 = 1 << 0;
/// `OFPMF_PKTPS`: rates in packets/s.
pub const OFPMF_PKTPS: u16 = 1 << 1;
/// `OFPMF_BURST`: use the burst size.
pub const OFPMF_BURST: u16 = 1 << 2;
/// `OFPMF_STATS`: collect statistics.
pub const OFPMF_STATS: u16 = 1 << 3;

/// `OFPMBT_DROP`
pub const OFPMBT_DROP: u16 = 1;
/// `OFPMBT_DSCP_REMARK`
pub const OFPMBT_DSCP_REMARK: u16 = 2;
/// `OFPMBT_EXPERIMENTER`
pub const OFPMBT_EXPERIMENTER: u16 = 0xffff;

/// `OFPM_MAX`: the highest ordinary meter number.
pub const OFPM_MAX: u32 = 0xffff_0000;
/// `OFPM_ALL`: every meter (delete, stats).
pub const OFPM_ALL: u32 = 0xffff_ffff;

/// Length of a drop or dscp-remark band.
const BAND_LEN: usize = 16;

/// One `ofp_meter_band_*`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MeterBand {
    /// `OFPMBT_DROP`: drop packets over `rate`.
    Drop {
        /// Rate in the meter's unit.
        rate: u32,
        /// Burst size.
        burst_size: u32,
    },
    /// `OFPMBT_DSCP_REMARK`: raise the drop precedence of the DSCP field.
    DscpRemark {
        /// Rate in the meter's unit.
        rate: u32,
        /// Burst size.
        burst_size: u32,
        /// Amount to add to the drop precedence.
        prec_level: u8,
    },
    /// `OFPMBT_EXPERIMENTER`
    Experimenter {
        /// Rate in the meter's unit.
        rate: u32,
        /// Burst size.
        burst_size: u32,
        /// Experimenter id.
        experimenter: u32,
        /// Whatever follows (the band's length stays a multiple of 8).
        data: Vec<u8>,
    },
}

impl MeterBand {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = out.len();
        let (type_, rate, burst) = match self {
            MeterBand::Drop { rate, burst_size } => (OFPMBT_DROP, rate, burst_size),
            MeterBand::DscpRemark { rate, burst_size, .. } => (OFPMBT_DSCP_REMARK, rate, burst_size),
            MeterBand::Experimenter { rate, burst_size, .. } => (OFPMBT_EXPERIMENTER, rate, burst_size),
        };
        out.put_u16(type_);
        out.put_u16(0);
        out.put_u32(*rate);
        out.put_u32(*burst);
        match self {
            MeterBand::Drop { .. } => out.put_zeros(4),
            MeterBand::DscpRemark { prec_level, .. } => {
                out.put_u8(*prec_level);
                out.put_zeros(3);
            }
            MeterBand::Experimenter { experimenter, data, .. } => {
                if !data.len().is_multiple_of(8) {
                    return Err(EncodeError::Invalid { what: "experimenter band not 8-aligned" });
                }
                out.put_u32(*experimenter);
                out.extend_from_slice(data);
            }
        }
        out.patch_len(start + 2, start)
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<MeterBand, Reason> {
        let type_ = r.u16()?;
        let len = usize::from(r.u16()?);
        if len < BAND_LEN || !len.is_multiple_of(8) {
            return Err(Reason::BadLen);
        }
        let mut b = Reader::new(r.bytes(len - 4)?, Reason::BadLen);
        let rate = b.u32()?;
        let burst_size = b.u32()?;
        let fixed = || if len == BAND_LEN { Ok(()) } else { Err(Reason::BadLen) };
        let band = match type_ {
            OFPMBT_DROP => {
                fixed()?;
                MeterBand::Drop { rate, burst_size }
            }
            OFPMBT_DSCP_REMARK => {
                fixed()?;
                MeterBand::DscpRemark { rate, burst_size, prec_level: b.u8()? }
            }
            OFPMBT_EXPERIMENTER => {
                let experimenter = b.u32()?;
                MeterBand::Experimenter { rate, burst_size, experimenter, data: b.rest().to_vec() }
            }
            _ => return Err(Reason::BadMeterBand { type_ }),
        };
        b.pad_rest()?;
        Ok(band)
    }
}

/// Decodes bands filling all of `buf`.
pub(crate) fn decode_bands(buf: &[u8]) -> Result<Vec<MeterBand>, Reason> {
    let mut r = Reader::new(buf, Reason::BadLen);
    let mut out = Vec::new();
    while r.remaining() > 0 {
        out.push(MeterBand::decode(&mut r)?);
    }
    Ok(out)
}

/// Appends `bands`.
pub(crate) fn encode_bands(bands: &[MeterBand], out: &mut Vec<u8>) -> Result<(), EncodeError> {
    bands.iter().try_for_each(|b| b.encode(out))
}

/// `OFPT_METER_MOD`: add, modify or delete a meter.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct MeterMod {
    /// `OFPMC_*`.
    pub command: u16,
    /// `OFPMF_*`.
    pub flags: u16,
    /// Meter id.
    pub meter_id: u32,
    /// The bands.
    pub bands: Vec<MeterBand>,
}

impl MeterMod {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.put_u16(self.command);
        out.put_u16(self.flags);
        out.put_u32(self.meter_id);
        encode_bands(&self.bands, out)
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<MeterMod, Reason> {
        let command = r.u16()?;
        let flags = r.u16()?;
        let meter_id = r.u32()?;
        Ok(MeterMod { command, flags, meter_id, bands: decode_bands(r.rest())? })
    }
}
