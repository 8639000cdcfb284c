//! Tests of the conversions, both versions.

use super::*;
use crate::datapath::flow::VLAN_PRESENT;
use crate::ofp::v10;
use crate::ofproto::rule::{PortNames, TABLE_ALL};
use crate::ofproto::syntax::parse_flow;
use crate::ofproto::table::Pipeline;

fn x(f: OxmField, v: u128) -> Oxm {
    Oxm::exact(f, v)
}

fn err_of(oxms: &[Oxm]) -> ErrorCode {
    match_from_oxms(oxms).unwrap_err().code()
}

#[test]
fn oxm_matches_check_prerequisites_masks_and_values() {
    use OxmField::*;
    let ip = x(EthType, 0x0800);
    let ip6 = x(EthType, 0x86dd);
    assert_eq!(err_of(&[x(Ipv4Src, 1)]), ErrorCode::OFPBMC_BAD_PREREQ);
    assert_eq!(err_of(&[ip6.clone(), x(Ipv4Src, 1)]), ErrorCode::OFPBMC_BAD_PREREQ);
    assert_eq!(err_of(&[ip.clone(), x(TcpDst, 80)]), ErrorCode::OFPBMC_BAD_PREREQ);
    assert_eq!(err_of(&[ip.clone(), x(IpProto, 17), x(TcpDst, 80)]), ErrorCode::OFPBMC_BAD_PREREQ);
    assert_eq!(err_of(&[x(VlanPcp, 3)]), ErrorCode::OFPBMC_BAD_PREREQ);
    assert_eq!(err_of(&[x(VlanVid, 0), x(VlanPcp, 3)]), ErrorCode::OFPBMC_BAD_PREREQ);
    assert_eq!(err_of(&[x(ArpOp, 1)]), ErrorCode::OFPBMC_BAD_PREREQ);
    assert_eq!(
        err_of(&[ip6.clone(), x(IpProto, 58), x(Icmpv6Type, 128), x(Ipv6NdTarget, 1)]),
        ErrorCode::OFPBMC_BAD_PREREQ
    );
    assert_eq!(err_of(&[x(MplsLabel, 5)]), ErrorCode::OFPBMC_BAD_PREREQ);
    assert_eq!(err_of(&[x(InPhyPort, 1)]), ErrorCode::OFPBMC_BAD_PREREQ);
    assert_eq!(err_of(&[x(InPort, 2), x(InPhyPort, 1)]), ErrorCode::OFPBMC_BAD_VALUE);
    assert_eq!(err_of(&[Oxm::masked(EthType, 0x800, 0xff00)]), ErrorCode::OFPBMC_BAD_MASK);
    assert_eq!(err_of(&[ip.clone(), Oxm::masked(IpProto, 6, 0xf)]), ErrorCode::OFPBMC_BAD_MASK);
    assert_eq!(err_of(&[x(VlanVid, 0x2000)]), ErrorCode::OFPBMC_BAD_VALUE);
    assert_eq!(err_of(&[Oxm::masked(VlanVid, 0x1000, 0x2000)]), ErrorCode::OFPBMC_BAD_MASK);
    assert_eq!(err_of(&[x(EthType, 0x806), x(ArpOp, 256)]), ErrorCode::OFPBMC_BAD_VALUE);
    assert_eq!(err_of(&[x(InPort, 1), x(InPort, 2)]), ErrorCode::OFPBMC_DUP_FIELD);
    assert_eq!(err_of(&[x(PbbIsid, 1)]), ErrorCode::OFPBMC_BAD_FIELD);
    let other =
        Oxm { field: OxmField::Other { class: 1, field: 2, has_mask: false }, value: vec![], mask: None };
    assert_eq!(err_of(&[other]), ErrorCode::OFPBMC_BAD_FIELD);
    assert_eq!(err_of(&[Oxm { field: InPort, value: vec![1], mask: None }]), ErrorCode::OFPBMC_BAD_LEN);
    // VLAN: present-bit semantics map onto vlan_tci.
    let any_tag = match_from_oxms(&[Oxm::masked(VlanVid, 0x1000, 0x1000)]).unwrap();
    assert_eq!((any_tag.key().vlan_tci, any_tag.mask().0.vlan_tci), (0x1000, 0x1000));
    let none = match_from_oxms(&[x(VlanVid, 0)]).unwrap();
    assert_eq!((none.key().vlan_tci, none.mask().0.vlan_tci), (0, 0x1fff));
    let tagged = match_from_oxms(&[x(VlanVid, 0x1005), x(VlanPcp, 3)]).unwrap();
    assert_eq!((tagged.key().vlan_tci, tagged.mask().0.vlan_tci), (0x7005, 0xffff));
    // Value bits outside the mask are cleared (normalized).
    let m = match_from_oxms(&[ip.clone(), Oxm::masked(Ipv4Dst, 0x0a01_0203, 0xffff_0000)]).unwrap();
    assert_eq!(m.key().ipv4_dst(), [10, 1, 0, 0]);
    // Prerequisites don't depend on order.
    assert!(match_from_oxms(&[x(UdpDst, 53), x(IpProto, 17), ip6.clone()]).is_ok());
}

/// A match built from OXMs prints back to the same OXMs (canonical order), for every
/// field this switch matches.
#[test]
fn oxm_round_trips() {
    use OxmField::*;
    let cases: Vec<Vec<Oxm>> = vec![
        vec![
            x(InPort, 3),
            Oxm::masked(Metadata, 0x10, 0xf0),
            Oxm::masked(EthDst, 0x0100_0000_0000, 0x0100_0000_0000),
            x(EthSrc, 0x0200_0000_0001),
            x(EthType, 0x0800),
            x(VlanVid, 0x1005),
            x(VlanPcp, 3),
            x(IpDscp, 10),
            x(IpEcn, 1),
            x(IpProto, 6),
            Oxm::masked(Ipv4Src, 0x0a00_0000, 0xff00_0000),
            x(Ipv4Dst, 0x0a00_0002),
            x(TcpSrc, 1000),
            x(TcpDst, 80),
            Oxm::masked(TunnelId, 5, 0xff),
            x(TunIpv4Src, 0xc000_0201),
            Oxm::masked(TunIpv4Dst, 0xc000_0200, 0xffff_ff00),
        ],
        vec![x(EthType, 0x0800), x(IpProto, 17), x(UdpSrc, 1), x(UdpDst, 2)],
        vec![x(EthType, 0x0800), x(IpProto, 132), x(SctpSrc, 1), x(SctpDst, 2)],
        vec![x(EthType, 0x0800), x(IpProto, 1), x(Icmpv4Type, 8), x(Icmpv4Code, 0)],
        vec![
            x(EthType, 0x0806),
            x(ArpOp, 2),
            x(ArpSpa, 0x0102_0304),
            Oxm::masked(ArpTpa, 0x0a00_0000, 0xff00_0000),
            x(ArpSha, 0x0000_0000_0001),
            Oxm::masked(ArpTha, 0x0000_0000_0100, 0x0000_0000_ff00),
        ],
        vec![
            x(EthType, 0x86dd),
            x(IpProto, 58),
            Oxm::masked(Ipv6Src, 0x2001_0db8 << 96, u128::MAX << 64),
            x(Ipv6Dst, 1),
            Oxm::masked(Ipv6Flabel, 5, 0xf),
            x(Icmpv6Type, 135),
            x(Icmpv6Code, 0),
            x(Ipv6NdTarget, 7),
            x(Ipv6NdSll, 0x0a00_0000_0001),
        ],
        vec![x(EthType, 0x86dd), x(IpProto, 58), x(Icmpv6Type, 136), x(Ipv6NdTll, 0x0a00_0000_0002)],
        vec![x(EthType, 0x8847), x(MplsLabel, 0xabcde), x(MplsTc, 5), x(MplsBos, 1)],
        vec![Oxm::masked(VlanVid, 0x1000, 0x1000)],
        vec![],
    ];
    for oxms in cases {
        let m = match_from_oxms(&oxms).unwrap_or_else(|e| panic!("{oxms:?}: {e}"));
        assert_eq!(match_to_oxms(&m), oxms);
    }
}

fn names() -> PortNames {
    [("p1", 1), ("p2", 2), ("p3", 3)].into_iter().collect()
}

#[test]
fn flow_mods_and_stats_round_trip_1_3() {
    for line in [
        "table=1,cookie=0x5,priority=7,idle_timeout=10,hard_timeout=20,send_flow_rem,tcp,nw_dst=10.0.0.0/8,tp_dst=80,\
         actions=meter:2,mod_tp_dst:8080,mod_nw_src:1.2.3.4,output:2,clear_actions,\
         write_actions(group:3,set_queue:1,dec_ttl),write_metadata:0x1/0xff,goto_table:3",
        "udp6,ipv6_src=2001:db8::/32,actions=set_field:::1->ipv6_dst,mod_tp_src:9,push_vlan:0x88a8,mod_vlan_vid:4,\
         mod_vlan_pcp:3,strip_vlan,mod_nw_tos:8,mod_nw_ttl:3,CONTROLLER:64,LOCAL,IN_PORT,FLOOD,ALL,NORMAL",
        "dl_vlan=5,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00,actions=mod_dl_src:0a:00:00:00:00:01,\
         mod_dl_dst:0a:00:00:00:00:02,set_field:0x9->tun_id,set_field:0x3->metadata,output:1",
    ] {
        let spec = parse_flow(line, &names()).unwrap();
        let mut p = Pipeline::new();
        let c = p.apply(FlowMod::add(spec.clone()), Duration::ZERO).unwrap();
        let rule = p.rule(c.added[0]).unwrap();
        let fs = flow_stats(rule, Duration::from_millis(1500));
        assert_eq!((fs.duration_sec, fs.duration_nsec), (1, 500_000_000));
        // Back through an ofp flow-mod: the same spec.
        let ofm = crate::ofp::FlowMod {
            cookie: fs.cookie,
            table_id: fs.table_id,
            command: 0,
            idle_timeout: fs.idle_timeout,
            hard_timeout: fs.hard_timeout,
            priority: fs.priority,
            buffer_id: NO_BUFFER,
            out_port: ofpp::ANY,
            out_group: ofpg::ANY,
            flags: fs.flags,
            match_: fs.match_.clone(),
            instructions: fs.instructions.clone(),
            ..Default::default()
        };
        let back = flow_mod_from_ofp(&ofm).unwrap();
        assert_eq!(back.spec, spec, "{line}");
        assert_eq!(back.buffer_id, None);
        let fr = flow_removed(rule, RemovedReason::GroupDelete, Duration::ZERO);
        assert_eq!((fr.reason, fr.match_.clone(), fr.cookie), (3, fs.match_.clone(), spec.cookie));
    }
}

#[test]
fn ofp_flow_mod_errors() {
    let base = crate::ofp::FlowMod { buffer_id: NO_BUFFER, ..Default::default() };
    let code = |f: &crate::ofp::FlowMod| flow_mod_from_ofp(f).unwrap_err().code();
    assert_eq!(code(&crate::ofp::FlowMod { command: 9, ..base.clone() }), ErrorCode::OFPFMFC_BAD_COMMAND);
    let with = |a: Action| crate::ofp::FlowMod {
        instructions: vec![Instruction::ApplyActions(vec![a])],
        ..base.clone()
    };
    assert_eq!(code(&with(Action::Output { port: ofpp::TABLE, max_len: 0 })), ErrorCode::OFPBAC_BAD_OUT_PORT);
    assert_eq!(code(&with(Action::Output { port: ofpp::ANY, max_len: 0 })), ErrorCode::OFPBAC_BAD_OUT_PORT);
    assert_eq!(code(&with(Action::SetField(x(OxmField::IpEcn, 1)))), ErrorCode::OFPBAC_BAD_SET_TYPE);
    assert_eq!(code(&with(Action::SetField(x(OxmField::ArpOp, 1)))), ErrorCode::OFPBAC_BAD_SET_TYPE);
    assert_eq!(
        code(&with(Action::SetField(Oxm::masked(OxmField::EthDst, 1, 1)))),
        ErrorCode::OFPBAC_BAD_SET_ARGUMENT
    );
    assert_eq!(code(&with(Action::SetField(x(OxmField::TcpDst, 1)))), ErrorCode::OFPBAC_MATCH_INCONSISTENT);
    assert_eq!(code(&with(Action::PushVlan(0x0800))), ErrorCode::OFPBAC_BAD_ARGUMENT);
    assert_eq!(code(&with(Action::PushMpls(0x8847))), ErrorCode::OFPBAC_BAD_TYPE);
    assert_eq!(code(&with(Action::Group(ofpg::ALL))), ErrorCode::OFPBAC_BAD_OUT_GROUP);
    let dup = crate::ofp::FlowMod {
        instructions: vec![Instruction::GotoTable(1), Instruction::GotoTable(2)],
        ..base.clone()
    };
    assert_eq!(code(&dup), ErrorCode::OFPBIC_UNSUP_INST);
    let exp = crate::ofp::FlowMod {
        instructions: vec![Instruction::Experimenter { experimenter: 1, data: vec![] }],
        ..base.clone()
    };
    assert_eq!(code(&exp), ErrorCode::OFPBIC_BAD_EXPERIMENTER);
    // Packet-out may output to TABLE.
    let acts = actions_from_ofp(&[Action::Output { port: ofpp::TABLE, max_len: 0 }], true).unwrap();
    assert_eq!(acts, vec![OfAction::Output(ofpp::TABLE)]);
    // A stats request selects like a delete.
    let req = FlowStatsRequest {
        table_id: TABLE_ALL,
        out_port: 2,
        out_group: ofpg::ANY,
        cookie: 0,
        cookie_mask: 0,
        match_: vec![],
    };
    let sel = flow_stats_request(&req).unwrap();
    assert_eq!((sel.spec.table, sel.out_port), (TABLE_ALL, 2));
}

#[test]
fn openflow_1_0_round_trips() {
    let m = v10::Match {
        wildcards: ofpfw::DL_SRC | ofpfw::NW_TOS | (8 << ofpfw::NW_SRC_SHIFT) | (32 << ofpfw::NW_DST_SHIFT),
        in_port: 1,
        dl_dst: [1, 2, 3, 4, 5, 6],
        dl_vlan: 10,
        dl_vlan_pcp: 2,
        dl_type: 0x0800,
        nw_proto: 6,
        nw_src: 0x0a01_0200,
        tp_src: 1234,
        tp_dst: 80,
        ..v10::Match::default()
    };
    let fm = v10::FlowMod {
        match_: m.clone(),
        cookie: 9,
        command: 0,
        idle_timeout: 5,
        hard_timeout: 0,
        priority: 100,
        buffer_id: NO_BUFFER,
        out_port: 0xffff,
        flags: 1,
        actions: vec![
            v10::Action::SetVlanVid(3),
            v10::Action::SetNwSrc(0x0102_0304),
            v10::Action::SetTpDst(8080),
            v10::Action::Enqueue { port: 2, queue_id: 1 },
            v10::Action::Output { port: 0xfffd, max_len: 128 },
            v10::Action::Output { port: 0xfffb, max_len: 0 },
        ],
    };
    let model = flow_mod_from_v10(&fm).unwrap();
    assert_eq!(model.spec.table, 0);
    assert_eq!(
        model.spec.to_string(),
        "table=0, cookie=0x9, idle_timeout=5, priority=100,tcp,in_port=1,dl_vlan=10,dl_vlan_pcp=2,\
         dl_dst=01:02:03:04:05:06,nw_src=10.1.2.0/24,tp_src=1234,tp_dst=80, send_flow_rem \
         actions=mod_vlan_vid:3,mod_nw_src:1.2.3.4,mod_tp_dst:8080,set_queue:1,output:2,CONTROLLER:128,FLOOD"
    );
    let mut p = Pipeline::new();
    let c = p.apply(model, Duration::ZERO).unwrap();
    let r = p.rule(c.added[0]).unwrap();
    let st = flow_stats_v10(r, Duration::from_secs(3));
    assert_eq!(st.match_, m);
    assert_eq!(st.actions, fm.actions);
    assert_eq!(st.duration_sec, 3);
    let fr = flow_removed_v10(r, RemovedReason::MeterDelete, Duration::ZERO);
    assert_eq!((fr.reason, fr.match_), (2, m.clone()));
    // Normalization: transport fields without ip are ignored; exact matches go on top;
    // modify adds when nothing matches.
    let loose = v10::Match { wildcards: 0, in_port: 2, dl_type: 0x88cc, tp_src: 5, ..v10::Match::default() };
    let fm2 = v10::FlowMod { match_: loose, command: 1, actions: vec![], ..fm.clone() };
    let model = flow_mod_from_v10(&fm2).unwrap();
    assert_eq!((model.spec.priority, model.add_if_missing, model.spec.table), (u16::MAX, true, TABLE_ALL));
    assert_eq!(model.spec.matches.mask().0.tp_src, 0);
    assert_eq!(model.spec.matches.key().vlan_tci, VLAN_PRESENT);
    assert_eq!(
        flow_mod_from_v10(&v10::FlowMod { flags: 4, ..fm.clone() }).unwrap_err().code(),
        ErrorCode::OFPFMFC_BAD_FLAGS
    );
    let vendor =
        v10::FlowMod { actions: vec![v10::Action::Vendor { vendor: 1, data: vec![] }], ..fm.clone() };
    assert_eq!(flow_mod_from_v10(&vendor).unwrap_err().code(), ErrorCode::OFPBAC_BAD_EXPERIMENTER);
    assert_eq!((port_from_v10(0xfffe), port_to_v10(ofpp::LOCAL), port_to_v10(7)), (ofpp::LOCAL, 0xfffe, 7));
    assert_eq!(match_from_v10(&v10::Match::all()), Match::catchall());
    assert_eq!(match_to_v10(&Match::catchall()), v10::Match::all());
}

#[test]
fn no_counts_flags_report_all_ones() {
    let spec = parse_flow("no_packet_counts,no_byte_counts,actions=drop", &names()).unwrap();
    let mut p = Pipeline::new();
    let c = p.apply(FlowMod::add(spec), Duration::ZERO).unwrap();
    p.credit(c.added[0], 1, 60, Duration::ZERO);
    let fs = flow_stats(p.rule(c.added[0]).unwrap(), Duration::ZERO);
    assert_eq!((fs.packet_count, fs.byte_count), (u64::MAX, u64::MAX));
    let c2 = p.apply(FlowMod::add(FlowSpec { priority: 9, ..FlowSpec::default() }), Duration::ZERO).unwrap();
    p.credit(c2.added[0], 2, 100, Duration::ZERO);
    let sel = FlowMod::new(FlowModCommand::Delete, FlowSpec { table: TABLE_ALL, ..FlowSpec::default() });
    let agg = aggregate(&p.query(&sel));
    assert_eq!((agg.flow_count, agg.packet_count, agg.byte_count), (2, 2, 100));
    let ts = table_stats(&p.table_stats());
    assert_eq!((ts.len(), ts[0].active_count), (255, 2));
}

mod props {
    use super::*;
    use proptest::prelude::*;

    fn arb_oxms() -> impl Strategy<Value = Vec<Oxm>> {
        use OxmField::*;
        (
            (any::<u32>(), any::<u64>(), any::<u64>(), any::<u16>(), any::<u8>()),
            prop::collection::vec(any::<bool>(), 12),
            0usize..4,
        )
            .prop_map(move |((a, b, c, d, e), pick, proto)| {
                let mut v = Vec::new();
                // Masked fields in canonical form: a full mask is exact, none is absent.
                let canon = |o: Oxm| {
                    let mut out = Vec::new();
                    let full = full_mask(o.field);
                    push(&mut out, o.field, be(&o.value), o.mask.as_deref().map_or(full, be));
                    out
                };
                let mut maybe = |i: usize, o: Oxm| {
                    if pick[i] {
                        v.extend(canon(o))
                    }
                };
                maybe(0, x(InPort, u128::from(a % 1000 + 1)));
                maybe(1, Oxm::masked(Metadata, u128::from(b & c), u128::from(c)));
                maybe(2, x(EthDst, u128::from(b >> 16)));
                maybe(3, Oxm::masked(EthSrc, u128::from((b >> 16) & (c >> 16)), u128::from(c >> 16)));
                match proto {
                    1 => v.push(x(EthType, 0x0800)),
                    2 => v.push(x(EthType, 0x0806)),
                    3 => v.push(x(EthType, 0x86dd)),
                    _ => {}
                }
                let tagged = pick[4];
                if pick[5] {
                    v.push(x(VlanVid, if tagged { 0x1000 | u128::from(d & 0xfff) } else { 0 }));
                    if tagged && pick[6] {
                        v.push(x(VlanPcp, u128::from(e & 7)));
                    }
                }
                match proto {
                    1 => {
                        v.push(x(IpDscp, u128::from(e >> 2)));
                        v.push(x(IpProto, 6));
                        let m = u32::MAX << (a % 33).min(31);
                        v.extend(canon(Oxm::masked(Ipv4Src, u128::from(a & m), u128::from(m))));
                        if pick[7] {
                            v.push(x(TcpDst, u128::from(d)));
                        }
                    }
                    2 => {
                        v.push(x(ArpOp, u128::from(e)));
                        v.push(x(ArpTpa, u128::from(a)));
                    }
                    3 => {
                        v.push(x(IpProto, 58));
                        v.push(Oxm::masked(Ipv6Dst, u128::from(b) << 64, u128::MAX << 64));
                        v.push(x(Icmpv6Type, 135));
                        if pick[8] {
                            v.push(x(Ipv6NdTarget, u128::from(c)));
                        }
                    }
                    _ => {}
                }
                if pick[9] {
                    v.extend(canon(Oxm::masked(TunnelId, u128::from(b & c), u128::from(c))));
                }
                v
            })
    }

    fn arb_action() -> impl Strategy<Value = Action> {
        let out = |port: u32| Action::Output { port, max_len: 0 };
        prop_oneof![
            (1u32..4).prop_map(out),
            any::<u16>().prop_map(|max_len| Action::Output { port: ofpp::CONTROLLER, max_len }),
            prop::sample::select(vec![ofpp::IN_PORT, ofpp::FLOOD, ofpp::ALL, ofpp::LOCAL, ofpp::NORMAL])
                .prop_map(out),
            any::<u64>().prop_map(|m| Action::SetField(x(OxmField::EthSrc, u128::from(m >> 16)))),
            (0u16..4096).prop_map(|v| Action::SetField(x(OxmField::VlanVid, u128::from(v | 0x1000)))),
            (0u8..8).prop_map(|p| Action::SetField(x(OxmField::VlanPcp, u128::from(p)))),
            Just(Action::PopVlan),
            prop::sample::select(vec![0x8100u16, 0x88a8]).prop_map(Action::PushVlan),
            any::<u8>().prop_map(Action::SetNwTtl),
            Just(Action::DecNwTtl),
            (0u32..100).prop_map(Action::Group),
            any::<u32>().prop_map(Action::SetQueue),
            any::<u64>().prop_map(|t| Action::SetField(x(OxmField::TunnelId, u128::from(t)))),
        ]
    }

    fn arb_instructions() -> impl Strategy<Value = (u8, Vec<Instruction>)> {
        (
            0u8..250,
            prop::option::of(1u32..10),
            prop::collection::vec(arb_action(), 0..4),
            any::<bool>(),
            prop::option::of(prop::collection::vec(arb_action(), 0..3)),
            prop::option::of((any::<u64>(), any::<u64>())),
            any::<bool>(),
        )
            .prop_map(|(table, meter, apply, clear, write, md, goto)| {
                let mut v = Vec::new();
                v.extend(meter.map(Instruction::Meter));
                if !apply.is_empty() {
                    v.push(Instruction::ApplyActions(apply));
                }
                if clear {
                    v.push(Instruction::ClearActions);
                }
                v.extend(write.map(Instruction::WriteActions));
                v.extend(md.map(|(a, m)| Instruction::WriteMetadata { metadata: a & m, metadata_mask: m }));
                if goto {
                    v.push(Instruction::GotoTable(table + 1));
                }
                (table, v)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]
        /// ofp flow-mod -> model -> rule -> flow stats gives back the same match and
        /// instructions, and the flow stats read back as the same model flow.
        #[test]
        fn flow_mod_to_flow_stats_round_trip(oxms in arb_oxms(), (table, ins) in arb_instructions(),
                                             cookie in any::<u64>(), flags in 0u16..32) {
            let ofm = crate::ofp::FlowMod {
                cookie, table_id: table, command: 0, priority: 5, buffer_id: NO_BUFFER,
                out_port: ofpp::ANY, out_group: ofpg::ANY, flags, match_: oxms.clone(),
                instructions: ins.clone(), ..Default::default()
            };
            let fm = flow_mod_from_ofp(&ofm);
            prop_assert!(fm.is_ok(), "{:?}", fm);
            let Ok(fm) = fm else { return Ok(()) };
            let spec = fm.spec.clone();
            let mut p = Pipeline::new();
            let c = p.apply(fm, Duration::ZERO).unwrap();
            let fs = flow_stats(p.rule(c.added[0]).unwrap(), Duration::ZERO);
            prop_assert_eq!(&fs.match_, &oxms);
            prop_assert_eq!(&fs.instructions, &ins);
            prop_assert_eq!((fs.cookie, fs.flags, fs.table_id), (cookie, flags, table));
            let again = crate::ofp::FlowMod { match_: fs.match_, instructions: fs.instructions, ..ofm };
            prop_assert_eq!(flow_mod_from_ofp(&again).unwrap().spec, spec);
        }
    }
}

#[test]
fn tunnel_fields_and_nicira_tunnel_actions() {
    use crate::ofp::nx::{NxAction, NXM_NX_TUN_ID_HEADER};
    let m = match_from_oxms(&[x(OxmField::TunIpv4Src, 0xc000_0201), x(OxmField::TunnelId, 0x64)]).unwrap();
    assert_eq!((m.key().tun_src, m.mask().0.tun_src), (u32::from(std::net::Ipv4Addr::new(192, 0, 2, 1)), !0));
    assert_eq!(m.to_string(), "tun_id=0x64,tun_src=192.0.2.1");
    // set_tunnel, set_tunnel64 and a whole-field load all set tun_id, in both versions.
    for nx in [NxAction::SetTunnel(0x64), NxAction::SetTunnel64(0x64), NxAction::load_tun_id(0x64)] {
        assert_eq!(action_from_ofp(&Action::Nicira(nx.clone()), false).unwrap(), OfAction::SetTunId(0x64));
        assert_eq!(
            of10::actions_from_v10(&[v10::Action::Nicira(nx)], false).unwrap(),
            [OfAction::SetTunId(0x64)]
        );
    }
    // Other loads stay unsupported.
    let part = NxAction::RegLoad { ofs_nbits: 31, dst: NXM_NX_TUN_ID_HEADER, value: 1 };
    let e = action_from_ofp(&Action::Nicira(part), false).unwrap_err();
    assert_eq!(e.code(), ErrorCode::OFPBAC_BAD_EXPERIMENTER);
    // Out: a tun_id set-field in 1.3 (as OVS sends set_tunnel), Nicira's in 1.0.
    let acts = [OfAction::SetTunId(0x64), OfAction::SetTunId(1 << 40)];
    assert_eq!(
        actions_to_ofp(&acts, &Match::default()),
        vec![
            Action::SetField(Oxm::exact(OxmField::TunnelId, 0x64)),
            Action::SetField(Oxm::exact(OxmField::TunnelId, 1 << 40))
        ]
    );
    assert_eq!(
        of10::actions_to_v10(&acts),
        vec![
            v10::Action::Nicira(NxAction::SetTunnel(0x64)),
            v10::Action::Nicira(NxAction::SetTunnel64(1 << 40))
        ]
    );
    // The flows as ovs-ofctl sent them (tests of ofp have the bytes).
    let spec =
        parse_flow("tun_dst=192.0.2.0/24,actions=set_tunnel:0x64,load:0x65->NXM_NX_TUN_ID[]", &names())
            .unwrap();
    assert_eq!(
        spec.to_string(),
        "table=0, cookie=0x0, tun_dst=192.0.2.0/24 actions=set_field:0x64->tun_id,set_field:0x65->tun_id"
    );
}

#[test]
fn packet_in_match_carries_tunnel_fields() {
    use crate::datapath::tunnel::TunnelMeta;
    assert_eq!(packet_in_match(3, 0, &TunnelMeta::default()), vec![x(OxmField::InPort, 3)]);
    let t = TunnelMeta { tun_id: 0x64, tun_src: 0xc000_0202, tun_dst: 0xc000_0201 };
    let m = packet_in_match(7, 0x10, &t);
    assert_eq!(
        m,
        vec![
            x(OxmField::InPort, 7),
            x(OxmField::Metadata, 0x10),
            x(OxmField::TunnelId, 0x64),
            x(OxmField::TunIpv4Src, 0xc000_0202),
            x(OxmField::TunIpv4Dst, 0xc000_0201),
        ]
    );
    // It reads back as the packet's fields.
    let back = match_from_oxms(&m).unwrap();
    assert_eq!((back.key().tun_id, back.key().tun_src, back.key().tun_dst), (0x64, 0xc000_0202, 0xc000_0201));
}
