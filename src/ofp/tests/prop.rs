//! Random values: any well-formed message (1.3 FlowMod / PacketIn / FlowStats, group and meter
//! mods, multipart requests and replies; 1.0 FlowMod / PacketOut / FlowRemoved) encodes,
//! decodes to itself and re-encodes to the same bytes.

use proptest::prelude::*;

use super::super::action::{Action, Instruction};
use super::super::flow::{FlowMod, PacketIn};
use super::super::group::{Bucket, GroupMod};
use super::super::meter::{MeterBand, MeterMod};
use super::super::multipart::{
    AggregateStats, FlowStats, FlowStatsRequest, MultipartReply, MultipartReplyBody, MultipartRequest,
    MultipartRequestBody, PortStats, TableStats,
};
use super::super::nx::NxAction;
use super::super::oxm::{Oxm, OxmField};
use super::super::stats::{Counts, GroupDesc, GroupStats, MeterConfig, MeterStats, QueueStats};
use super::super::{v10, Body, Message, Xid, OFP10_VERSION};
use super::{mp_rep, msg13, roundtrip};

/// A basic-class OXM whose value and mask fit the field's width.
fn oxm() -> impl Strategy<Value = Oxm> {
    (0u8..=41, any::<u128>(), any::<u128>(), any::<bool>()).prop_map(|(n, v, m, masked)| {
        let field = match n {
            40 => OxmField::TunIpv4Src,
            41 => OxmField::TunIpv4Dst,
            n => OxmField::from_basic(n).unwrap_or(OxmField::InPort),
        };
        let width = match field {
            OxmField::VlanVid => 13,
            OxmField::VlanPcp | OxmField::MplsTc => 3,
            OxmField::IpDscp => 6,
            OxmField::IpEcn => 2,
            OxmField::Ipv6Flabel | OxmField::MplsLabel => 20,
            OxmField::MplsBos => 1,
            OxmField::Ipv6Exthdr => 9,
            _ => 128,
        };
        let keep = if width == 128 { u128::MAX } else { (1u128 << width) - 1 };
        if masked {
            Oxm::masked(field, v & keep, m & keep)
        } else {
            Oxm::exact(field, v & keep)
        }
    })
}

/// A match: distinct fields, as decode requires.
fn oxms() -> impl Strategy<Value = Vec<Oxm>> {
    proptest::collection::vec(oxm(), 0..8).prop_map(|mut v| {
        let mut seen = Vec::new();
        v.retain(|o| {
            let fresh = !seen.contains(&o.field);
            seen.push(o.field);
            fresh
        });
        v
    })
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        (any::<u32>(), any::<u16>()).prop_map(|(port, max_len)| Action::Output { port, max_len }),
        Just(Action::PopVlan),
        Just(Action::DecNwTtl),
        any::<u16>().prop_map(Action::PushVlan),
        any::<u32>().prop_map(Action::SetQueue),
        any::<u32>().prop_map(Action::Group),
        any::<u8>().prop_map(Action::SetNwTtl),
        oxm().prop_map(|o| Action::SetField(Oxm { mask: None, ..o })),
        any::<u32>().prop_map(|v| Action::Nicira(NxAction::SetTunnel(v))),
        any::<u64>().prop_map(|v| Action::Nicira(NxAction::SetTunnel64(v))),
        (any::<u16>(), any::<u32>(), any::<u64>())
            .prop_map(|(ofs_nbits, dst, value)| Action::Nicira(NxAction::RegLoad { ofs_nbits, dst, value })),
        (any::<u32>(), proptest::collection::vec(any::<u8>(), 0..3))
            .prop_map(|(experimenter, d)| Action::Experimenter { experimenter, data: d.repeat(8) }),
    ]
}

fn instruction() -> impl Strategy<Value = Instruction> {
    prop_oneof![
        any::<u8>().prop_map(Instruction::GotoTable),
        (any::<u64>(), any::<u64>())
            .prop_map(|(metadata, metadata_mask)| Instruction::WriteMetadata { metadata, metadata_mask }),
        proptest::collection::vec(action(), 0..5).prop_map(Instruction::WriteActions),
        proptest::collection::vec(action(), 0..5).prop_map(Instruction::ApplyActions),
        Just(Instruction::ClearActions),
        any::<u32>().prop_map(Instruction::Meter),
    ]
}

proptest! {
    #[test]
    fn flow_mod_round_trips(
        fixed in (any::<u64>(), any::<u64>(), any::<u8>(), 0u8..5, any::<u16>(), any::<u16>(), any::<u16>()),
        ids in (any::<u32>(), any::<u32>(), any::<u32>(), any::<u16>()),
        match_ in oxms(),
        instructions in proptest::collection::vec(instruction(), 0..4),
    ) {
        let (cookie, cookie_mask, table_id, command, idle_timeout, hard_timeout, priority) = fixed;
        let (buffer_id, out_port, out_group, flags) = ids;
        let fm = FlowMod {
            cookie, cookie_mask, table_id, command, idle_timeout, hard_timeout, priority,
            buffer_id, out_port, out_group, flags, match_, instructions,
        };
        roundtrip(&msg13(1, Body::FlowMod(fm)));
    }

    #[test]
    fn packet_in_and_flow_stats_round_trip(
        match_ in oxms(),
        data in proptest::collection::vec(any::<u8>(), 0..100),
        instructions in proptest::collection::vec(instruction(), 0..4),
    ) {
        let pi = PacketIn { match_: match_.clone(), data, ..PacketIn::default() };
        roundtrip(&msg13(2, Body::PacketIn(pi)));
        let fs = FlowStats { match_, instructions, ..FlowStats::default() };
        roundtrip(&mp_rep(3, MultipartReplyBody::Flow(vec![fs.clone(), fs])));
    }
}

fn bucket() -> impl Strategy<Value = Bucket> {
    (any::<u16>(), any::<u32>(), any::<u32>(), proptest::collection::vec(action(), 0..4)).prop_map(
        |(weight, watch_port, watch_group, actions)| Bucket { weight, watch_port, watch_group, actions },
    )
}

fn band() -> impl Strategy<Value = MeterBand> {
    prop_oneof![
        (any::<u32>(), any::<u32>()).prop_map(|(rate, burst_size)| MeterBand::Drop { rate, burst_size }),
        (any::<u32>(), any::<u32>(), any::<u8>()).prop_map(|(rate, burst_size, prec_level)| {
            MeterBand::DscpRemark { rate, burst_size, prec_level }
        }),
        (any::<u32>(), any::<u32>(), any::<u32>(), proptest::collection::vec(any::<u8>(), 0..3)).prop_map(
            |(rate, burst_size, experimenter, d)| MeterBand::Experimenter {
                rate,
                burst_size,
                experimenter,
                data: d.repeat(8),
            }
        ),
    ]
}

fn counts() -> impl Strategy<Value = Vec<Counts>> {
    proptest::collection::vec(
        (any::<u64>(), any::<u64>())
            .prop_map(|(packet_count, byte_count)| Counts { packet_count, byte_count }),
        0..4,
    )
}

fn flow_stats_request() -> impl Strategy<Value = FlowStatsRequest> {
    (any::<u8>(), any::<u32>(), any::<u32>(), any::<u64>(), any::<u64>(), oxms()).prop_map(
        |(table_id, out_port, out_group, cookie, cookie_mask, match_)| FlowStatsRequest {
            table_id,
            out_port,
            out_group,
            cookie,
            cookie_mask,
            match_,
        },
    )
}

fn multipart_request() -> impl Strategy<Value = MultipartRequestBody> {
    prop_oneof![
        flow_stats_request().prop_map(MultipartRequestBody::Flow),
        flow_stats_request().prop_map(MultipartRequestBody::Aggregate),
        any::<u32>().prop_map(|port_no| MultipartRequestBody::PortStats { port_no }),
        (any::<u32>(), any::<u32>())
            .prop_map(|(port_no, queue_id)| MultipartRequestBody::Queue { port_no, queue_id }),
        any::<u32>().prop_map(|group_id| MultipartRequestBody::Group { group_id }),
        any::<u32>().prop_map(|meter_id| MultipartRequestBody::Meter { meter_id }),
        any::<u32>().prop_map(|meter_id| MultipartRequestBody::MeterConfig { meter_id }),
        Just(MultipartRequestBody::Desc),
        Just(MultipartRequestBody::Table),
        Just(MultipartRequestBody::PortDesc),
        Just(MultipartRequestBody::GroupDesc),
        Just(MultipartRequestBody::GroupFeatures),
        Just(MultipartRequestBody::MeterFeatures),
    ]
}

fn multipart_reply() -> impl Strategy<Value = MultipartReplyBody> {
    let group_stats = (any::<u32>(), any::<u32>(), any::<u64>(), any::<u64>(), any::<u32>(), counts())
        .prop_map(|(group_id, ref_count, packet_count, byte_count, duration_sec, bucket_stats)| GroupStats {
            group_id,
            ref_count,
            packet_count,
            byte_count,
            duration_sec,
            duration_nsec: 7,
            bucket_stats,
        });
    let meter_stats = (any::<u32>(), any::<u32>(), any::<u64>(), any::<u64>(), counts()).prop_map(
        |(meter_id, flow_count, packet_in_count, byte_in_count, band_stats)| MeterStats {
            meter_id,
            flow_count,
            packet_in_count,
            byte_in_count,
            duration_sec: 1,
            duration_nsec: 2,
            band_stats,
        },
    );
    let group_desc = (any::<u8>(), any::<u32>(), proptest::collection::vec(bucket(), 0..3))
        .prop_map(|(type_, group_id, buckets)| GroupDesc { type_, group_id, buckets });
    let meter_config = (any::<u16>(), any::<u32>(), proptest::collection::vec(band(), 0..3))
        .prop_map(|(flags, meter_id, bands)| MeterConfig { flags, meter_id, bands });
    let port_stats = (any::<u32>(), any::<u64>(), any::<u64>(), any::<u64>()).prop_map(
        |(port_no, rx_packets, tx_bytes, collisions)| PortStats {
            port_no,
            rx_packets,
            tx_bytes,
            collisions,
            ..PortStats::default()
        },
    );
    let queue_stats = (any::<u32>(), any::<u32>(), any::<u64>()).prop_map(|(port_no, queue_id, tx_bytes)| {
        QueueStats { port_no, queue_id, tx_bytes, ..QueueStats::default() }
    });
    let table_stats = (any::<u8>(), any::<u32>(), any::<u64>(), any::<u64>()).prop_map(
        |(table_id, active_count, lookup_count, matched_count)| TableStats {
            table_id,
            active_count,
            lookup_count,
            matched_count,
        },
    );
    prop_oneof![
        proptest::collection::vec(group_stats, 0..3).prop_map(MultipartReplyBody::Group),
        proptest::collection::vec(meter_stats, 0..3).prop_map(MultipartReplyBody::Meter),
        proptest::collection::vec(group_desc, 0..3).prop_map(MultipartReplyBody::GroupDesc),
        proptest::collection::vec(meter_config, 0..3).prop_map(MultipartReplyBody::MeterConfig),
        proptest::collection::vec(port_stats, 0..3).prop_map(MultipartReplyBody::PortStats),
        proptest::collection::vec(queue_stats, 0..3).prop_map(MultipartReplyBody::Queue),
        proptest::collection::vec(table_stats, 0..3).prop_map(MultipartReplyBody::Table),
        (any::<u64>(), any::<u64>(), any::<u32>()).prop_map(|(packet_count, byte_count, flow_count)| {
            MultipartReplyBody::Aggregate(AggregateStats { packet_count, byte_count, flow_count })
        }),
    ]
}

fn v10_match() -> impl Strategy<Value = v10::Match> {
    (
        (any::<u32>(), any::<u16>(), any::<[u8; 6]>(), any::<[u8; 6]>(), any::<u16>(), any::<u8>()),
        (any::<u16>(), any::<u8>(), any::<u8>(), any::<u32>(), any::<u32>(), any::<u16>(), any::<u16>()),
    )
        .prop_map(|((wildcards, in_port, dl_src, dl_dst, dl_vlan, dl_vlan_pcp), rest)| {
            let (dl_type, nw_tos, nw_proto, nw_src, nw_dst, tp_src, tp_dst) = rest;
            v10::Match {
                wildcards,
                in_port,
                dl_src,
                dl_dst,
                dl_vlan,
                dl_vlan_pcp,
                dl_type,
                nw_tos,
                nw_proto,
                nw_src,
                nw_dst,
                tp_src,
                tp_dst,
            }
        })
}

fn v10_action() -> impl Strategy<Value = v10::Action> {
    use v10::Action as A;
    prop_oneof![
        (any::<u16>(), any::<u16>()).prop_map(|(port, max_len)| A::Output { port, max_len }),
        any::<u16>().prop_map(A::SetVlanVid),
        any::<u8>().prop_map(A::SetVlanPcp),
        Just(A::StripVlan),
        any::<[u8; 6]>().prop_map(A::SetDlSrc),
        any::<[u8; 6]>().prop_map(A::SetDlDst),
        any::<u32>().prop_map(A::SetNwSrc),
        any::<u32>().prop_map(A::SetNwDst),
        any::<u8>().prop_map(A::SetNwTos),
        any::<u16>().prop_map(A::SetTpSrc),
        any::<u16>().prop_map(A::SetTpDst),
        (any::<u16>(), any::<u32>()).prop_map(|(port, queue_id)| A::Enqueue { port, queue_id }),
        any::<u32>().prop_map(|v| A::Nicira(NxAction::SetTunnel(v))),
        any::<u64>().prop_map(|v| A::Nicira(NxAction::SetTunnel64(v))),
        // Another vendor's action is passed through (Nicira's own id would be decoded).
        (
            any::<u32>().prop_filter("not Nicira", |v| *v != 0x2320),
            proptest::collection::vec(any::<u8>(), 0..3)
        )
            .prop_map(|(vendor, d)| A::Vendor { vendor, data: d.repeat(8) }),
    ]
}

fn v10(xid: u32, body: v10::Body) -> Message {
    Message { version: OFP10_VERSION, xid: Xid(xid), body: Body::V10(body) }
}

proptest! {
    #[test]
    fn group_and_meter_mods_round_trip(
        group in (any::<u16>(), any::<u8>(), any::<u32>(), proptest::collection::vec(bucket(), 0..4)),
        meter in (any::<u16>(), any::<u16>(), any::<u32>(), proptest::collection::vec(band(), 0..4)),
    ) {
        let (command, type_, group_id, buckets) = group;
        roundtrip(&msg13(4, Body::GroupMod(GroupMod { command, type_, group_id, buckets })));
        let (command, flags, meter_id, bands) = meter;
        roundtrip(&msg13(5, Body::MeterMod(MeterMod { command, flags, meter_id, bands })));
    }

    #[test]
    fn multipart_requests_and_replies_round_trip(
        req in multipart_request(),
        rep in multipart_reply(),
        flags in 0u16..2,
    ) {
        roundtrip(&msg13(6, Body::MultipartRequest(MultipartRequest { flags, body: req })));
        roundtrip(&msg13(7, Body::MultipartReply(MultipartReply { flags, body: rep })));
    }

    #[test]
    fn v10_flow_mod_packet_out_and_flow_removed_round_trip(
        match_ in v10_match(),
        fixed in (any::<u64>(), 0u16..5, any::<u16>(), any::<u16>(), any::<u16>(), any::<u32>(), any::<u16>(), any::<u16>()),
        actions in proptest::collection::vec(v10_action(), 0..6),
        data in proptest::collection::vec(any::<u8>(), 0..64),
        counts in (any::<u64>(), any::<u64>(), any::<u32>(), any::<u8>()),
    ) {
        let (cookie, command, idle_timeout, hard_timeout, priority, buffer_id, out_port, flags) = fixed;
        let fm = v10::FlowMod {
            match_: match_.clone(), cookie, command, idle_timeout, hard_timeout, priority,
            buffer_id, out_port, flags, actions: actions.clone(),
        };
        roundtrip(&v10(8, v10::Body::FlowMod(fm)));
        let po = v10::PacketOut { buffer_id: u32::MAX, in_port: out_port, actions, data };
        roundtrip(&v10(9, v10::Body::PacketOut(po)));
        let (packet_count, byte_count, duration_sec, reason) = counts;
        let fr = v10::FlowRemoved {
            match_, cookie, priority, reason, duration_sec, duration_nsec: 3, idle_timeout,
            packet_count, byte_count,
        };
        roundtrip(&v10(10, v10::Body::FlowRemoved(fr)));
    }
}
