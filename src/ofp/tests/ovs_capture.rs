//! Real client bytes: what ovs-ofctl sends, decoded and re-encoded byte for byte.

use super::super::action::{Action, Instruction};
use super::super::flow::OFPFC_DELETE;
use super::super::msg::FeaturesReply;
use super::super::multipart::table_feature_prop_type::*;
use super::super::multipart::{FlowStats, MultipartReplyBody, TableFeatureProp, TableFeatures};
use super::super::nx::NxAction;
use super::super::oxm::{Oxm, OxmField};
use super::super::port::OFPP_CONTROLLER;
use super::super::{v10, Body};
use super::{dec, enc, hex, mp_rep, msg13, sample_port};

/// Messages ovs-ofctl 3.1 (`-O OpenFlow13`) sent to a stand-in switch for add-flow (VLAN,
/// IPv4 prefix, TCP, pop_vlan, set_field, dec_ttl, goto_table; meter, push_vlan,
/// write_actions with group/set_queue, write_metadata; tun_id set_field, controller:128,
/// clear_actions), del-flows, packet-out, dump-flows, dump-aggregate, dump-ports and
/// dump-ports-desc, captured off the socket.
pub(super) const OVS_OFCTL_CAPTURE: &[&str] = &[
    "04000010000000010001000800000010",
    "04000010000000030001000800000010",
    "04000010000000050001000800000010",
    concat!(
        "040d005200000006fffffffffffffffd001000000000000000000010fffffffb",
        "0000000000000000ffffffffffff000000000001080600010800060400010000",
        "000000010a0000010000000000000a000002",
    ),
    concat!(
        "040e00480000000600000000000000000000000000000000ff03000000008000",
        "ffffffffffffffffffffffff000000000001001280000a02080680002e040a00",
        "0001000000000000",
    ),
    concat!(
        "040e007800000006000000000000000000000000000000000000000000000005",
        "ffffffffffffffffffffffff000000000001001580000a0286dd800014010680",
        "001a02001600000000040028000000000019001080004c080000000000001234",
        "00000010fffffffd00800000000000000005000800000000",
    ),
    concat!(
        "040e00a000000006000000000000000000000000000000000000000000000064",
        "ffffffffffffffffffffffff000000000001002f800000040000000180000a02",
        "080080000c02100a800017080a000000ff000000800014010680001c02005000",
        "0004003800000000001200080000000000190010800006060000000000020000",
        "0018000800000000000000100000000200000000000000000001000801000000",
    ),
    concat!(
        "040e00b800000006000000000000000500000000000000000100000000008000",
        "ffffffffffffffffffffffff000000000001002e80000a0286dd800035202001",
        "0db8000000000000000000000000ffffffff0000000000000000000000000000",
        "0006000800000001000400200000000000110008810000000019001080000c02",
        "1001000000000000000300180000000000160008000000030015000800000002",
        "0002001800000000000000000000001000000000000000ff",
    ),
    "0412001000000002000c000000000000",
    "0412001000000002000d000000000000",
    "0412001000000004000d000000000000",
    "04120018000000020004000000000000ffffffff00000000",
    concat!(
        "04120038000000020001000000000000ff000000ffffffffffffffff00000000",
        "000000000000000000000000000000000001000400000000",
    ),
    concat!(
        "04120038000000020002000000000000ff000000ffffffffffffffff00000000",
        "000000000000000000000000000000000001000400000000",
    ),
    "0414000800000007",
];

#[test]
fn ovs_ofctl_messages_decode_and_reencode_byte_for_byte() {
    let mut flow_mods = 0;
    for h in OVS_OFCTL_CAPTURE {
        let bytes = hex(h);
        let msg = dec(&bytes);
        assert_eq!(enc(&msg), bytes, "{msg:?}");
        if let Body::FlowMod(fm) = &msg.body {
            flow_mods += 1;
            assert!(!fm.instructions.is_empty() || fm.command == OFPFC_DELETE, "{fm:?}");
        }
    }
    assert_eq!(flow_mods, 4);
}

/// The same with `-O OpenFlow10`: add-flow (VLAN, IPv4 prefix, TCP; strip_vlan, mod_dl_*,
/// mod_nw_*, mod_tp_*, enqueue, normal, controller), del-flows, packet-out, show, and the
/// Nicira vendor message and vendor stats that dump-flows uses (these stay raw).
pub(super) const OVS_OFCTL_CAPTURE_OF10: &[&str] = &[
    "0100000800000001",
    "0100000800000003",
    "0100000800000005",
    "0104001400000002000023200000000c00000002",
    "0105000800000002",
    "0105000800000004",
    "0107000800000004",
    concat!("010d002800000006ffffffffffff000800000008fffb0000ffffffffffff0000", "0000000108004500",),
    concat!(
        "010e004800000006003820fe0003000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000003000000008000",
        "ffffffffffff0000",
    ),
    concat!(
        "010e0088000000060038184c0001000000000000000000000000000a00000800",
        "000600000a000000000000000000005000000000000000000000000000000064",
        "ffffffffffff0000000300080000000000050010000000000002000000000000",
        "00080008200000000009000800630000000b0010000200000000000000000003",
        "0000000800020000",
    ),
    concat!(
        "010e009000000006003820ef0000000000000000000000000000000000000806",
        "0000000000000000000000000000000000000000000000000000000000008000",
        "ffffffffffff0000000100080005000000020008030000000004001000000000",
        "000100000000000000060008010203040007000805060708000a000800070000",
        "00000008fffa000000000008fffd0040",
    ),
    "0110000c0000000200030000",
    "0110002000000004ffff0000000023200000000000000000ffff0000ff000000",
    "0112000800000003",
    "0112000800000007",
];

#[test]
fn ovs_ofctl_of10_messages_decode_and_reencode_byte_for_byte() {
    let (mut flow_mods, mut packet_outs) = (0, 0);
    for h in OVS_OFCTL_CAPTURE_OF10 {
        let bytes = hex(h);
        let msg = dec(&bytes);
        assert_eq!(enc(&msg), bytes, "{msg:?}");
        match &msg.body {
            Body::V10(v10::Body::FlowMod(_)) => flow_mods += 1,
            Body::V10(v10::Body::PacketOut(p)) => {
                packet_outs += 1;
                assert_eq!(p.actions, [v10::Action::Output { port: 0xfffb, max_len: 0 }]);
            }
            Body::V10(v10::Body::Vendor { vendor, .. }) => assert_eq!(*vendor, 0x2320, "Nicira"),
            _ => {}
        }
    }
    assert_eq!((flow_mods, packet_outs), (3, 1));
}

/// What ovs-ofctl 3.1 (`-O OpenFlow13`) sent to a stand-in switch for add-group (select with
/// weights and watch_port, ff, all with mod_vlan_vid, indirect), del-groups, add-meter (kbps
/// burst stats drop band; pktps dscp_remark band), del-meters, mod-port down,
/// queue-get-config, dump-groups, dump-group-stats, dump-group-features, dump-meters,
/// meter-stats, meter-features, queue-stats and dump-ports.
pub(super) const OVS_OFCTL_GROUPS_METERS: &[&str] = &[
    concat!(
        "040f00500000000600000100000000010020000a00000001ffffffff00000000",
        "0000001000000001000000000000000000200014ffffffffffffffff00000000",
        "00000010000000020000000000000000",
    ),
    concat!(
        "040f00500000000600000300000000020020000000000001ffffffff00000000",
        "000000100000000100000000000000000020000000000002ffffffff00000000",
        "00000010000000020000000000000000",
    ),
    concat!(
        "040f006800000006000000000000000300200000ffffffffffffffff00000000",
        "0000001000000001000000000000000000380000ffffffffffffffff00000000",
        "00110008810000000019001080000c0210050000000000000000001000000002",
        "0000000000000000",
    ),
    "040f003000000006000002000000000400200000ffffffffffffffff0000000000000010000000020000000000000000",
    "040f0010000000060002000000000004",
    "041d0020000000020000000d0000000100010010000003e80000006400000000",
    "041d002000000002000000020000000200020010000000640000000001000000",
    "041d00100000000200020000ffffffff",
    "04100028000000040000000100000000020000000001000000000001000000010000000000000000",
    "04160010000000020000000100000000",
    "04120010000000020007000000000000",
    "04120018000000060006000000000000fffffffc00000000",
    "04120010000000020008000000000000",
    "0412001800000002000a000000000000ffffffff00000000",
    "04120018000000020009000000000000ffffffff00000000",
    "0412001000000002000b000000000000",
    "04120018000000020005000000000000ffffffffffffffff",
    "04120018000000020004000000000000ffffffff00000000",
];

/// The same for `-O OpenFlow10`: mod-port up, the Nicira set-flow-format it tries first, and
/// the table, aggregate (as Nicira vendor stats), port and queue stats and queue-get-config.
pub(super) const OVS_OFCTL_OF10_STATS: &[&str] = &[
    "010f002000000004000102000000000100000000000000010000000000000000",
    "0110000c0000000200030000",
    "0104001400000002000023200000000c00000002",
    "0110002000000004ffff0000000023200000000100000000ffff0000ff000000",
    "011000140000000200040000ffff000000000000",
    "011000140000000200050000fffc0000ffffffff",
    "0114000c0000000200010000",
];

#[test]
fn ovs_ofctl_group_meter_port_queue_messages_decode_typed() {
    let mut kinds = Vec::new();
    for h in OVS_OFCTL_GROUPS_METERS.iter().chain(OVS_OFCTL_OF10_STATS) {
        let bytes = hex(h);
        let msg = dec(&bytes);
        assert_eq!(enc(&msg), bytes, "{msg:?}");
        kinds.push(match &msg.body {
            Body::GroupMod(_) => "group_mod",
            Body::MeterMod(_) => "meter_mod",
            Body::PortMod(_) | Body::V10(v10::Body::PortMod(_)) => "port_mod",
            Body::QueueGetConfigRequest { .. } | Body::V10(v10::Body::QueueGetConfigRequest { .. }) => {
                "queue_config"
            }
            Body::MultipartRequest(_) | Body::V10(v10::Body::StatsRequest(_)) => "stats",
            Body::V10(v10::Body::Vendor { vendor: 0x2320, .. }) => "nicira",
            other => panic!("unexpected {other:?}"),
        });
    }
    let count = |k| kinds.iter().filter(|&&x| x == k).count();
    assert_eq!((count("group_mod"), count("meter_mod"), count("port_mod")), (5, 3, 2));
    assert_eq!((count("queue_config"), count("stats"), count("nicira")), (2, 12, 1));
    // The select group's buckets, as ovs-ofctl wrote them.
    let Body::GroupMod(g) = dec(&hex(OVS_OFCTL_GROUPS_METERS[0])).body else { panic!() };
    let weights: Vec<_> = g.buckets.iter().map(|b| (b.weight, b.watch_port)).collect();
    assert_eq!((g.type_, g.group_id, weights), (1, 1, vec![(10, 1), (20, 0xffff_ffff)]));
}

pub(super) const FEATURES_REPLY: &str = "0406002000000000000000000000000100000000010000000000004700000000";
pub(super) const TABLE_FEATURES_REPLY: &str = concat!(
    "041300b000000000000c00000000000000a0000000000000636c617373696669",
    "657200000000000000000000000000000000000000000000ffffffffffffffff",
    "ffffffffffffffff00000000000f42400000000c000100040004000400000000",
    "0002000501000000000400080000000400060010000000040011000400120004",
    "000800108000000480000a0280000606000a00108000000480000a0280000606",
    "000c000400000000000e000880000606",
);
pub(super) const PORT_DESC_REPLY: &str = concat!(
    "0413009000000000000d00000000000000000001000000000200000000010000",
    "7665746831000000000000000000000000000000000000040000284000000000",
    "0000000000000000009896800000000000000002000000000200000000020000",
    "7665746832000000000000000000000000000000000000040000284000000000",
    "00000000000000000098968000000000",
);
pub(super) const FLOW_REPLY: &str = concat!(
    "0413014000000000000100000000000001300000000000030000000000640000",
    "00000000000000000000000000000005000000000000000a0000000000000280",
    "0001005580000004000000018000070c01005e000000ffffff80000080000d04",
    "100a1fff80000a0208008000140106800017080a000000ff00000080001c0200",
    "50800005100000000000001234000000000000ffff0000000006000800000001",
    "0004006000000000001200080000000000190010800008060200000000010000",
    "001800080000000000110008810000000019001080000c021005000000000000",
    "0000001000000002000000000000000000000010fffffffd0080000000000000",
    "0005000800000000000300180000000000160008000000030015000800000002",
    "0002001800000000000000000000001000000000000000ff0001000801000000",
);

/// Replies this codec encodes that ovs-ofctl 3.1 accepted from a stand-in switch (checked by
/// hand: `add-flow` went through on this TABLE_FEATURES + PORT_DESC, and `dump-flows`
/// printed the flow back as `priority=100,tcp,metadata=0x1234/0xffff,in_port=1,dl_vlan=10,
/// dl_dst=01:00:5e:00:00:00/ff:ff:ff:80:00:00,nw_src=10.0.0.0/8,tp_dst=80 actions=meter:1,
/// pop_vlan,set_field:02:00:00:00:00:01->eth_src,dec_ttl,push_vlan:0x8100,
/// set_field:4101->vlan_vid,output:2,CONTROLLER:128,clear_actions,
/// write_actions(group:3,set_queue:2),write_metadata:0x10/0xff,goto_table:1`). Pinned here so
/// a change to the encoder shows up.
#[test]
fn replies_ovs_ofctl_accepts() {
    let tf = TableFeatures {
        table_id: 0,
        name: "classifier".into(),
        metadata_match: u64::MAX,
        metadata_write: u64::MAX,
        config: 0,
        max_entries: 1_000_000,
        properties: [
            (OFPTFPT_INSTRUCTIONS, hex("0001 0004 0004 0004")),
            (OFPTFPT_NEXT_TABLES, vec![1]),
            (OFPTFPT_WRITE_ACTIONS, hex("0000 0004")),
            (OFPTFPT_APPLY_ACTIONS, hex("0000 0004 0011 0004 0012 0004")),
            (OFPTFPT_MATCH, hex("80000004 80000a02 80000606")),
            (OFPTFPT_WILDCARDS, hex("80000004 80000a02 80000606")),
            (OFPTFPT_WRITE_SETFIELD, vec![]),
            (OFPTFPT_APPLY_SETFIELD, hex("80000606")),
        ]
        .into_iter()
        .map(|(type_, data)| TableFeatureProp { type_, data })
        .collect(),
    };
    let fs = FlowStats {
        priority: 100,
        cookie: 5,
        packet_count: 10,
        byte_count: 640,
        duration_sec: 3,
        match_: vec![
            Oxm::exact(OxmField::InPort, 1),
            Oxm::masked(OxmField::EthDst, 0x0100_5e00_0000, 0xffff_ff80_0000),
            Oxm::masked(OxmField::VlanVid, 0x100a, 0x1fff),
            Oxm::exact(OxmField::EthType, 0x0800),
            Oxm::exact(OxmField::IpProto, 6),
            Oxm::masked(OxmField::Ipv4Src, 0x0a00_0000, 0xff00_0000),
            Oxm::exact(OxmField::TcpDst, 80),
            Oxm::masked(OxmField::Metadata, 0x1234, 0xffff),
        ],
        instructions: vec![
            Instruction::Meter(1),
            Instruction::ApplyActions(vec![
                Action::PopVlan,
                Action::SetField(Oxm::bytes(OxmField::EthSrc, &[2, 0, 0, 0, 0, 1])),
                Action::DecNwTtl,
                Action::PushVlan(0x8100),
                Action::SetField(Oxm::exact(OxmField::VlanVid, 0x1005)),
                Action::Output { port: 2, max_len: 0 },
                Action::Output { port: OFPP_CONTROLLER, max_len: 128 },
            ]),
            Instruction::ClearActions,
            Instruction::WriteActions(vec![Action::Group(3), Action::SetQueue(2)]),
            Instruction::WriteMetadata { metadata: 0x10, metadata_mask: 0xff },
            Instruction::GotoTable(1),
        ],
        ..FlowStats::default()
    };
    let features =
        FeaturesReply { datapath_id: 1, n_tables: 1, capabilities: 0x47, ..FeaturesReply::default() };
    let replies = [
        (msg13(0, Body::FeaturesReply(features)), FEATURES_REPLY),
        (mp_rep(0, MultipartReplyBody::TableFeatures(vec![tf])), TABLE_FEATURES_REPLY),
        (mp_rep(0, MultipartReplyBody::PortDesc(vec![sample_port(1), sample_port(2)])), PORT_DESC_REPLY),
        (mp_rep(0, MultipartReplyBody::Flow(vec![fs])), FLOW_REPLY),
    ];
    for (msg, golden) in replies {
        let bytes = hex(golden);
        assert_eq!(enc(&msg), bytes, "{msg:?}");
        assert_eq!(dec(&bytes), msg);
    }
}

/// ovs-ofctl 3.1 `-O OpenFlow13 add-flow` of `tun_src=192.0.2.1,actions=drop`,
/// `tun_dst=192.0.2.0/24,actions=drop`, `actions=set_tunnel:0x64` (sent as a tun_id
/// set-field in 1.3) and `actions=load:0x64->NXM_NX_TUN_ID[]` (NXAST_REG_LOAD), captured off
/// the socket.
pub(super) const OVS_OFCTL_TUNNEL_CAPTURE: &[&str] = &[
    concat!(
        "040e004000000006000000000000000000000000000000000000000000008000",
        "ffffffffffffffffffffffff000000000001000c00013e04c000020100000000",
    ),
    concat!(
        "040e004000000006000000000000000000000000000000000000000000008000",
        "ffffffffffffffffffffffff000000000001001000014108c0000200ffffff00",
    ),
    concat!(
        "040e005000000006000000000000000000000000000000000000000000008000",
        "ffffffffffffffffffffffff0000000000010004000000000004001800000000",
        "0019001080004c080000000000000064",
    ),
    concat!(
        "040e005800000006000000000000000000000000000000000000000000008000",
        "ffffffffffffffffffffffff0000000000010004000000000004002000000000",
        "ffff0018000023200007003f000120080000000000000064",
    ),
];

#[test]
fn ovs_ofctl_tunnel_fields_and_actions_decode_typed() {
    let fms: Vec<_> = OVS_OFCTL_TUNNEL_CAPTURE
        .iter()
        .map(|h| {
            let bytes = hex(h);
            let msg = dec(&bytes);
            assert_eq!(enc(&msg), bytes, "{msg:?}");
            match msg.body {
                Body::FlowMod(fm) => fm,
                b => panic!("not a flow-mod: {b:?}"),
            }
        })
        .collect();
    assert_eq!(fms[0].match_, vec![Oxm::bytes(OxmField::TunIpv4Src, &[192, 0, 2, 1])]);
    assert_eq!(
        fms[1].match_,
        vec![Oxm {
            field: OxmField::TunIpv4Dst,
            value: vec![192, 0, 2, 0],
            mask: Some(vec![255, 255, 255, 0])
        }]
    );
    assert_eq!(
        fms[2].instructions,
        vec![Instruction::ApplyActions(vec![Action::SetField(Oxm::exact(OxmField::TunnelId, 0x64))])]
    );
    assert_eq!(
        fms[3].instructions,
        vec![Instruction::ApplyActions(vec![Action::Nicira(NxAction::load_tun_id(0x64))])]
    );
}
