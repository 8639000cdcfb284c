//! OpenFlow meters (spec 5.7): the meter table, meter-mods, stats and features. The rates
//! are enforced by the datapath (`DpAction::Meter(id)`); this is the model plus the
//! configuration the datapath needs ([`MeterTable::datapath_config`]).
//!
//! Supported: drop bands, `KBPS` or `PKTPS`, `BURST`, `STATS`. A DSCP-remark (or
//! experimenter) band is refused with `OFPMMFC_BAD_BAND`. A meter may hold several drop
//! bands; the datapath enforces the lowest-rate one: a packet over any drop band's rate is
//! over the lowest one, and every drop band drops.

use std::collections::BTreeMap;
use std::time::Duration;

use super::Error;
use crate::ofp::ErrorCode;

/// `OFPMF_*` meter flags.
pub mod meter_flags {
    /// Rates in kb/s.
    pub const KBPS: u16 = 1 << 0;
    /// Rates in packets/s.
    pub const PKTPS: u16 = 1 << 1;
    /// `burst_size` is used.
    pub const BURST: u16 = 1 << 2;
    /// Keep statistics.
    pub const STATS: u16 = 1 << 3;
    /// Every flag.
    pub const ALL: u16 = 0xf;
}

/// `OFPM_MAX`: the highest meter id.
pub const OFPM_MAX: u32 = 0xffff_0000;
/// `OFPM_ALL`: every meter (meter delete, stats).
pub const OFPM_ALL: u32 = 0xffff_ffff;
/// Most meters.
pub const MAX_METERS: u32 = 4096;
/// Most bands per meter.
pub const MAX_BANDS: u8 = 8;
/// `OFPMBT_DROP`.
pub const OFPMBT_DROP: u16 = 1;
/// `OFPMBT_DSCP_REMARK`.
pub const OFPMBT_DSCP_REMARK: u16 = 2;

/// One band, as the wire gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BandKind {
    /// Drop packets over the rate.
    Drop,
    /// Raise the drop precedence of the DSCP (refused: `OFPMMFC_BAD_BAND`).
    DscpRemark {
        /// Precedence levels to add.
        prec_level: u8,
    },
    /// Any other band type (refused).
    Other(u16),
}

/// One meter band (`ofp_meter_band_header` and its kind).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Band {
    /// The kind.
    pub kind: BandKind,
    /// Rate, in kb/s or packets/s per the meter's flags.
    pub rate: u32,
    /// Burst, in kb or packets (used with `BURST`).
    pub burst_size: u32,
}

/// `OFPMC_*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MeterModCommand {
    /// Add a meter.
    Add,
    /// Replace a meter's flags and bands (counters kept).
    Modify,
    /// Delete a meter ([`OFPM_ALL`]: every one); the rules using it go too.
    Delete,
}

/// A meter-mod, already converted from the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeterMod {
    /// What to do.
    pub command: MeterModCommand,
    /// `OFPMF_*` ([`meter_flags`]).
    pub flags: u16,
    /// The meter.
    pub meter_id: u32,
    /// Its bands.
    pub bands: Vec<Band>,
}

/// One meter and its counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meter {
    /// The id.
    pub id: u32,
    /// `OFPMF_*`.
    pub flags: u16,
    /// Bands.
    pub bands: Vec<Band>,
    /// When it was added.
    pub created: Duration,
    /// Packets that entered the meter.
    pub packets_in: u64,
    /// Bytes that entered the meter.
    pub bytes_in: u64,
    /// Per band: (packets, bytes) the band applied to.
    pub band_counts: Vec<(u64, u64)>,
}

/// A meter's stats (`ofp_meter_stats`), with the flow count from the pipeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeterStats {
    /// The meter.
    pub meter_id: u32,
    /// Rules using it.
    pub flow_count: u32,
    /// Packets in.
    pub packet_in_count: u64,
    /// Bytes in.
    pub byte_in_count: u64,
    /// Time since it was added.
    pub duration: Duration,
    /// Per band: (packets, bytes).
    pub bands: Vec<(u64, u64)>,
}

/// `ofp_meter_features` as this switch answers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MeterFeatures {
    /// Most meters.
    pub max_meter: u32,
    /// Bitmap of `1 << OFPMBT_*`.
    pub band_types: u32,
    /// Bitmap of `OFPMF_*`.
    pub capabilities: u32,
    /// Most bands per meter.
    pub max_bands: u8,
    /// Most colours (not applicable to drop bands).
    pub max_color: u8,
}

/// What the datapath enforces for one meter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DpMeterBand {
    /// Rate, in kb/s (`kbps`) or packets/s.
    pub rate: u32,
    /// Burst in kb or packets; 0 = the datapath's default for the rate.
    pub burst: u32,
    /// Whether the rate is in kb/s.
    pub kbps: bool,
}

/// The meter table.
#[derive(Clone, Debug, Default)]
pub struct MeterTable {
    meters: BTreeMap<u32, Meter>,
}

impl MeterTable {
    /// No meters.
    pub fn new() -> MeterTable {
        MeterTable::default()
    }

    /// Meter `id`.
    pub fn get(&self, id: u32) -> Option<&Meter> {
        self.meters.get(&id)
    }

    /// Every meter, by id.
    pub fn iter(&self) -> impl Iterator<Item = &Meter> {
        self.meters.values()
    }

    /// Number of meters.
    pub fn len(&self) -> usize {
        self.meters.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.meters.is_empty()
    }

    /// What this switch supports.
    pub fn features() -> MeterFeatures {
        MeterFeatures {
            max_meter: MAX_METERS,
            band_types: 1 << OFPMBT_DROP,
            capabilities: meter_flags::ALL as u32,
            max_bands: MAX_BANDS,
            max_color: 0,
        }
    }

    /// Applies a meter-mod; returns the ids deleted (the caller removes the rules using
    /// them, [`Pipeline::remove_meter_users`](super::table::Pipeline::remove_meter_users)).
    pub fn apply(&mut self, mm: MeterMod, now: Duration) -> Result<Vec<u32>, Error> {
        let id = mm.meter_id;
        if mm.command == MeterModCommand::Delete {
            if id == OFPM_ALL {
                let ids = self.meters.keys().copied().collect();
                self.meters.clear();
                return Ok(ids);
            }
            return Ok(self.meters.remove(&id).map(|m| vec![m.id]).unwrap_or_default());
        }
        let bad = |code: ErrorCode, why: String| Err(Error::new(code, format!("meter {id}: {why}")));
        if id == 0 || id > OFPM_MAX {
            return bad(ErrorCode::OFPMMFC_INVALID_METER, "not a meter id".into());
        }
        let exists = self.meters.contains_key(&id);
        match mm.command {
            MeterModCommand::Add if exists => return bad(ErrorCode::OFPMMFC_METER_EXISTS, "exists".into()),
            MeterModCommand::Add if self.meters.len() >= MAX_METERS as usize => {
                return bad(ErrorCode::OFPMMFC_OUT_OF_METERS, format!("{MAX_METERS} meters"))
            }
            MeterModCommand::Modify if !exists => {
                return bad(ErrorCode::OFPMMFC_UNKNOWN_METER, "none".into())
            }
            _ => {}
        }
        let rate_flags = mm.flags & (meter_flags::KBPS | meter_flags::PKTPS);
        if mm.flags & !meter_flags::ALL != 0 || rate_flags == meter_flags::KBPS | meter_flags::PKTPS {
            return bad(ErrorCode::OFPMMFC_BAD_FLAGS, format!("flags 0x{:x}", mm.flags));
        }
        if mm.bands.is_empty() || mm.bands.len() > MAX_BANDS as usize {
            return bad(ErrorCode::OFPMMFC_OUT_OF_BANDS, format!("{} bands", mm.bands.len()));
        }
        for b in &mm.bands {
            if b.kind != BandKind::Drop {
                return bad(ErrorCode::OFPMMFC_BAD_BAND, format!("{:?}: only drop bands", b.kind));
            }
            if b.rate == 0 {
                return bad(ErrorCode::OFPMMFC_BAD_RATE, "rate 0".into());
            }
            if mm.flags & meter_flags::BURST != 0 && b.burst_size == 0 {
                return bad(ErrorCode::OFPMMFC_BAD_BURST, "burst 0 with OFPMF_BURST".into());
            }
        }
        let band_counts = vec![(0, 0); mm.bands.len()];
        match self.meters.get_mut(&id) {
            Some(m) => {
                m.flags = mm.flags;
                m.bands = mm.bands;
                m.band_counts = band_counts;
            }
            None => {
                let m = Meter {
                    id,
                    flags: mm.flags,
                    bands: mm.bands,
                    created: now,
                    packets_in: 0,
                    bytes_in: 0,
                    band_counts,
                };
                self.meters.insert(id, m);
            }
        }
        Ok(Vec::new())
    }

    /// Credits meter `id` with traffic that entered it, and `dropped` of it to its
    /// enforced (lowest-rate) band.
    pub fn credit(&mut self, id: u32, packets: u64, bytes: u64, dropped: (u64, u64)) {
        if let Some(m) = self.meters.get_mut(&id) {
            m.packets_in += packets;
            m.bytes_in += bytes;
            if let Some(i) = lowest_band(&m.bands) {
                m.band_counts[i].0 += dropped.0;
                m.band_counts[i].1 += dropped.1;
            }
        }
    }

    /// Stats of meter `id` (every meter for [`OFPM_ALL`]); `flow_count` gives the number of
    /// rules using a meter ([`Pipeline::meter_flow_count`](super::table::Pipeline::meter_flow_count)).
    pub fn stats(&self, id: u32, now: Duration, flow_count: impl Fn(u32) -> u32) -> Vec<MeterStats> {
        self.meters
            .values()
            .filter(|m| id == OFPM_ALL || m.id == id)
            .map(|m| MeterStats {
                meter_id: m.id,
                flow_count: flow_count(m.id),
                packet_in_count: m.packets_in,
                byte_in_count: m.bytes_in,
                duration: now.saturating_sub(m.created),
                bands: m.band_counts.clone(),
            })
            .collect()
    }

    /// What the datapath must enforce: per meter, its lowest-rate drop band.
    pub fn datapath_config(&self) -> Vec<(u32, DpMeterBand)> {
        self.meters
            .values()
            .filter_map(|m| {
                let b = m.bands[lowest_band(&m.bands)?];
                let burst = if m.flags & meter_flags::BURST != 0 { b.burst_size } else { 0 };
                Some((m.id, DpMeterBand { rate: b.rate, burst, kbps: m.flags & meter_flags::PKTPS == 0 }))
            })
            .collect()
    }
}

fn lowest_band(bands: &[Band]) -> Option<usize> {
    bands.iter().enumerate().min_by_key(|(_, b)| b.rate).map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drop_band(rate: u32, burst_size: u32) -> Band {
        Band { kind: BandKind::Drop, rate, burst_size }
    }

    fn mm(command: MeterModCommand, flags: u16, meter_id: u32, bands: Vec<Band>) -> MeterMod {
        MeterMod { command, flags, meter_id, bands }
    }

    #[test]
    fn meter_mods_stats_and_config() {
        use meter_flags::*;
        use MeterModCommand::*;
        let t0 = Duration::from_secs(10);
        let mut t = MeterTable::new();
        let code = |r: Result<Vec<u32>, Error>| r.unwrap_err().code();
        t.apply(mm(Add, KBPS | STATS, 1, vec![drop_band(1000, 0), drop_band(500, 0)]), t0).unwrap();
        t.apply(mm(Add, PKTPS | BURST, 2, vec![drop_band(100, 10)]), t0).unwrap();
        assert_eq!(
            code(t.apply(mm(Add, KBPS, 1, vec![drop_band(1, 0)]), t0)),
            ErrorCode::OFPMMFC_METER_EXISTS
        );
        assert_eq!(
            code(t.apply(mm(Modify, KBPS, 3, vec![drop_band(1, 0)]), t0)),
            ErrorCode::OFPMMFC_UNKNOWN_METER
        );
        assert_eq!(
            code(t.apply(mm(Add, KBPS, 0, vec![drop_band(1, 0)]), t0)),
            ErrorCode::OFPMMFC_INVALID_METER
        );
        assert_eq!(
            code(t.apply(mm(Add, KBPS | PKTPS, 3, vec![drop_band(1, 0)]), t0)),
            ErrorCode::OFPMMFC_BAD_FLAGS
        );
        assert_eq!(code(t.apply(mm(Add, 0x40, 3, vec![drop_band(1, 0)]), t0)), ErrorCode::OFPMMFC_BAD_FLAGS);
        assert_eq!(code(t.apply(mm(Add, KBPS, 3, vec![drop_band(0, 0)]), t0)), ErrorCode::OFPMMFC_BAD_RATE);
        assert_eq!(code(t.apply(mm(Add, BURST, 3, vec![drop_band(5, 0)]), t0)), ErrorCode::OFPMMFC_BAD_BURST);
        let remark = Band { kind: BandKind::DscpRemark { prec_level: 1 }, rate: 5, burst_size: 0 };
        assert_eq!(code(t.apply(mm(Add, KBPS, 3, vec![remark]), t0)), ErrorCode::OFPMMFC_BAD_BAND);
        assert_eq!(t.len(), 2);
        assert_eq!(
            t.datapath_config(),
            vec![
                (1, DpMeterBand { rate: 500, burst: 0, kbps: true }),
                (2, DpMeterBand { rate: 100, burst: 10, kbps: false })
            ]
        );
        t.credit(1, 10, 1000, (3, 300));
        let st = t.stats(OFPM_ALL, t0 + Duration::from_secs(2), |id| id * 10);
        assert_eq!(st.len(), 2);
        assert_eq!(
            (st[0].flow_count, st[0].packet_in_count, st[0].bands.clone()),
            (10, 10, vec![(0, 0), (3, 300)])
        );
        assert_eq!(st[0].duration, Duration::from_secs(2));
        assert_eq!(t.apply(mm(Delete, 0, 2, vec![]), t0).unwrap(), vec![2]);
        assert_eq!(t.apply(mm(Delete, 0, 2, vec![]), t0).unwrap(), Vec::<u32>::new());
        assert_eq!(t.apply(mm(Delete, 0, OFPM_ALL, vec![]), t0).unwrap(), vec![1]);
        assert!(t.is_empty());
        assert_eq!(MeterTable::features().band_types, 2);
    }
}
