//! Random values: any well-formed FlowMod / PacketIn / FlowStats encodes, decodes to itself and
//! re-encodes to the same bytes.

use proptest::prelude::*;

use super::super::action::{Action, Instruction};
use super::super::flow::{FlowMod, PacketIn};
use super::super::multipart::{FlowStats, MultipartReplyBody};
use super::super::nx::NxAction;
use super::super::oxm::{Oxm, OxmField};
use super::super::Body;
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
