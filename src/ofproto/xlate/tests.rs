//! Tests of xlate.

use super::*;
use crate::datapath::flow::VLAN_PCP_SHIFT;
use crate::ofproto::rule::{FlowMod, FlowSpec, Match, PortNames};
use proptest::prelude::*;
use std::time::Duration;

const PORTS: &[u32] = &[1, 2, 3];

fn pipeline(text: &str) -> Pipeline {
    let names: PortNames = [("p1", 1), ("p2", 2), ("p3", 3), ("p4", 4), ("p9", 9)].into_iter().collect();
    let mut p = Pipeline::new();
    // Unchecked adds: these tests set up groups and meters themselves.
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let spec = crate::ofproto::syntax::parse_flow(line, &names).unwrap();
        p.apply(FlowMod::add(spec), Duration::ZERO).unwrap();
    }
    p
}

fn udp(in_port: u32, vlan_tci: u16) -> FlowKey {
    let mut k = FlowKey {
        in_port,
        dl_type: ETH_IP,
        nw_proto: IPPROTO_UDP,
        vlan_tci,
        nw_ttl: 64,
        ..Default::default()
    };
    k.nw_dst[..4].copy_from_slice(&[10, 0, 0, 2]);
    k
}

fn out(p: u32) -> DpAction {
    DpAction::Output(DpPortNo(p))
}

#[test]
fn vlan_push_set_pop() {
    let p = pipeline("actions=mod_vlan_vid:7,output:2,strip_vlan,output:3");
    let t = translate(&p, &udp(1, 0), PORTS);
    assert_eq!(
        t.actions,
        vec![DpAction::PushVlan { tpid: 0x8100, tci: 7 }, out(2), DpAction::PopVlan, out(3)]
    );
    assert_eq!(t.mask.0.vlan_tci, VLAN_PRESENT);
    let tagged = VLAN_PRESENT | (5 << VLAN_PCP_SHIFT) | 9;
    let t = translate(&p, &udp(1, tagged), PORTS);
    assert_eq!(
        t.actions,
        vec![DpAction::SetVlanTci((5 << VLAN_PCP_SHIFT) | 7), out(2), DpAction::PopVlan, out(3)]
    );
    assert_eq!(t.mask.0.vlan_tci, VLAN_PRESENT | VLAN_PCP_MASK);
    let p = pipeline("actions=strip_vlan,output:2");
    assert_eq!(translate(&p, &udp(1, 0), PORTS).actions, vec![out(2)]);
}

#[test]
fn outputs_flood_and_in_port() {
    let p = pipeline("in_port=1,actions=output:1,output:2,output:9\nin_port=2,actions=in_port,FLOOD\nin_port=3,actions=ALL");
    let t = translate(&p, &udp(1, 0), PORTS);
    assert_eq!(t.actions, vec![out(2)]);
    assert_eq!(t.mask.0.in_port, !0);
    assert_eq!(translate(&p, &udp(2, 0), PORTS).actions, vec![out(2), out(1), out(3)]);
    assert_eq!(translate(&p, &udp(3, 0), PORTS).actions, vec![out(1), out(2)]);
    // Miss = drop.
    let t = translate(&p, &udp(4, 0), PORTS);
    assert_eq!((t.actions.len(), t.rules.len(), t.error), (0, 0, None));
}

#[test]
fn l3_l4_sets_check_the_packet() {
    let p = pipeline("actions=mod_nw_src:1.2.3.4,mod_tp_dst:99,mod_nw_tos:8,dec_ttl,output:2");
    let t = translate(&p, &udp(1, 0), PORTS);
    assert_eq!(
        t.actions,
        vec![
            DpAction::SetIpv4Src([1, 2, 3, 4]),
            DpAction::SetTpDst(99),
            DpAction::SetIpDscp(2),
            DpAction::DecIpTtl,
            out(2)
        ]
    );
    assert_eq!((t.mask.0.dl_type, t.mask.0.nw_proto, t.mask.0.nw_ttl), (!0, !0, !0));
    let arp = FlowKey { in_port: 1, dl_type: 0x0806, nw_proto: 1, ..Default::default() };
    assert_eq!(translate(&p, &arp, PORTS).actions, vec![out(2)]);
    let mut dying = udp(1, 0);
    dying.nw_ttl = 1;
    assert_eq!(translate(&p, &dying, PORTS).actions.len(), 3);
}

#[test]
fn goto_resubmit_metadata_and_errors() {
    let p = pipeline(
        "table=0,actions=set_field:0x5->metadata,goto_table:1\n\
         table=1,metadata=0x5,actions=output:2,resubmit(,2)\n\
         table=2,actions=output:3\n",
    );
    let t = translate(&p, &udp(1, 0), PORTS);
    assert_eq!(t.actions, vec![out(2), out(3)]);
    assert_eq!(t.rules.len(), 3);
    let p = pipeline(
        "in_port=1,actions=output:2,NORMAL\nin_port=2,actions=resubmit(,0)\nin_port=3,actions=resubmit(1)",
    );
    // NORMAL is decided per packet in the fast path: one datapath action, no address in the mask.
    let t = translate(&p, &udp(1, 0), PORTS);
    assert_eq!((t.actions, t.error), (vec![out(2), DpAction::Normal], None));
    assert_eq!(t.mask.0.dl_dst, [0; 6]);
    assert_eq!(translate(&p, &udp(2, 0), PORTS).error, Some(XlateError::TooDeep));
    // resubmit(1): looked up as in_port=1, but still the real ingress port for outputs.
    assert_eq!(translate(&p, &udp(3, 0), PORTS).actions, vec![out(2), DpAction::Normal]);
    let text: String =
        (0..14).map(|t| format!("table={t},actions=resubmit(,{}),resubmit(,{})\n", t + 1, t + 1)).collect();
    let p = pipeline(&text);
    assert_eq!(translate(&p, &udp(1, 0), PORTS).error, Some(XlateError::TooManyLookups));
}

fn arb_action() -> impl Strategy<Value = OfAction> {
    prop_oneof![
        (1u32..5).prop_map(OfAction::Output),
        Just(OfAction::InPort),
        Just(OfAction::Flood),
        Just(OfAction::All),
        Just(OfAction::SetIpv4Src([1, 1, 1, 1])),
        Just(OfAction::SetIpv6Dst([2; 16])),
        Just(OfAction::SetNwTos(8)),
        Just(OfAction::SetNwTtl(5)),
        Just(OfAction::DecTtl),
        Just(OfAction::SetTpSrc(9)),
        Just(OfAction::SetTpDst(1)),
        Just(OfAction::PushVlan(0x8100)),
        (0u16..3).prop_map(OfAction::SetVlanVid),
        (0u8..2).prop_map(OfAction::SetVlanPcp),
        Just(OfAction::StripVlan),
        (0u64..2).prop_map(OfAction::SetMetadata),
        (prop::option::of(1u32..4), prop::option::of(0u8..3))
            .prop_map(|(in_port, table)| OfAction::Resubmit { in_port, table }),
        Just(OfAction::Normal),
        Just(OfAction::SetTunId(5)),
        prop::sample::select(vec![
            "table=2,NXM_OF_VLAN_TCI[0..11],NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],load:NXM_NX_TUN_ID[]->NXM_NX_TUN_ID[],output:NXM_OF_IN_PORT[]",
            "table=1,priority=3,NXM_OF_IN_PORT[],eth_type=0x800,NXM_OF_IP_DST[]=NXM_OF_IP_SRC[],load:0->NXM_OF_VLAN_TCI[]",
            "NXM_OF_VLAN_TCI[13..15],output:OXM_OF_IN_PORT[]",
        ])
        .prop_map(|s| OfAction::Learn(Box::new(crate::ofproto::learn::LearnSpec::parse(s).unwrap()))),
    ]
}

/// [`translate`], keeping the learned flow-mods.
fn translate_l(p: &Pipeline, k: &FlowKey) -> (Translation, Vec<FlowMod>) {
    translate_plain(p, k, PORTS)
}

fn arb_key() -> impl Strategy<Value = FlowKey> {
    (arb_key_no_tunnel(), prop::sample::select(vec![0u64, 5, 1 << 32])).prop_map(|(mut k, tun_id)| {
        k.tun_id = tun_id;
        k
    })
}

fn arb_key_no_tunnel() -> impl Strategy<Value = FlowKey> {
    (
        (1u32..5, prop::sample::select(vec![ETH_IP, ETH_IPV6, 0x0806])),
        prop::sample::select(vec![0u16, 0x1000, 0x1001, 0x3001, 0x2002]),
        prop::sample::select(vec![IPPROTO_TCP, IPPROTO_UDP, 1]),
        prop::sample::select(vec![0u8, 1, 2, 64]),
        (0u16..3, 0u64..2, 0u8..4, prop::sample::select(vec![0u8, 1, 0x11])),
    )
        .prop_map(
            |((in_port, dl_type), vlan_tci, nw_proto, nw_ttl, (tp_dst, metadata, nw_frag, nw_tos))| FlowKey {
                in_port,
                dl_type,
                vlan_tci,
                nw_proto,
                nw_ttl,
                tp_dst,
                metadata,
                nw_frag,
                nw_tos,
                ..Default::default()
            },
        )
}

fn arb_spec() -> impl Strategy<Value = FlowSpec> {
    (
        arb_key(),
        prop::collection::vec(any::<bool>(), 8),
        0u16..3,
        0u8..3,
        prop::collection::vec(arb_action(), 0..4),
        prop::option::of(1u8..3),
    )
        .prop_map(|(k, pick, priority, table, actions, goto)| {
            let mut m = FlowMask::catchall();
            let f = &mut m.0;
            if pick[0] {
                f.in_port = !0;
            }
            if pick[1] {
                f.dl_type = !0;
            }
            if pick[2] {
                f.vlan_tci = if pick[7] { !0 } else { VLAN_PRESENT };
            }
            if pick[3] {
                f.nw_proto = !0;
            }
            if pick[4] {
                f.nw_ttl = !0;
            }
            if pick[5] {
                f.tp_dst = !0;
            }
            if pick[6] {
                f.metadata = !0;
            }
            if pick[7] {
                f.nw_tos = 0x03;
            }
            FlowSpec {
                table,
                priority,
                matches: Match::new(k, m),
                actions,
                goto_table: goto.filter(|&g| g > table),
                ..FlowSpec::default()
            }
        })
}

fn agree(p: &FlowKey, q: &FlowKey, mask: &FlowMask) -> FlowKey {
    let mut out = *q;
    for ((o, a), m) in out.words_mut().iter_mut().zip(p.words()).zip(mask.0.words()) {
        *o = (*o & !m) | (a & m);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]
    #[test]
    fn translation_mask_is_sound(specs in prop::collection::vec(arb_spec(), 0..12),
                                 pkts in prop::collection::vec((arb_key(), arb_key()), 1..20)) {
        let mut p = Pipeline::new();
        for s in specs {
            p.apply(FlowMod::add(s), Duration::ZERO).unwrap();
        }
        for (k, q) in &pkts {
            let (t, learned) = translate_l(&p, k);
            prop_assert_eq!(&t, &translate(&p, k, PORTS));
            let q = agree(k, q, &t.mask);
            let (t2, learned2) = translate_l(&p, &q);
            prop_assert_eq!(&t.actions, &t2.actions, "{:?} vs {:?} under {:?}", k, q, t.mask);
            prop_assert_eq!(&learned, &learned2);
            prop_assert_eq!(&t.rules, &t2.rules);
            prop_assert_eq!(&t.error, &t2.error);
        }
    }
}

// ---- OpenFlow 1.3 features: action set, groups, packet-ins, ports.

use crate::ofproto::group::{Bucket, GroupMod, GroupModCommand, GroupType};
use crate::ofproto::rule::ofpg;
use crate::ofproto::table::Checks;

struct World {
    p: Pipeline,
    g: GroupTable,
    ports: Vec<XPort>,
    local: Option<u32>,
    miss: TableMiss,
}

impl World {
    fn new(text: &str) -> World {
        World {
            p: pipeline(text),
            g: GroupTable::new(),
            ports: PORTS.iter().map(|&p| XPort::up(p)).collect(),
            local: None,
            miss: TableMiss::Drop,
        }
    }
    fn group(&mut self, id: u32, group_type: GroupType, buckets: Vec<Bucket>) {
        let gm = GroupMod { command: GroupModCommand::Add, group_type, group_id: id, buckets };
        self.g.apply(gm, &Checks::default(), Duration::ZERO).unwrap();
    }
    fn ctx(&self) -> XlateCtx<'_> {
        XlateCtx {
            pipeline: &self.p,
            groups: &self.g,
            ports: &self.ports,
            local_port: self.local,
            miss: self.miss,
            miss_send_len: 128,
            invalid_ttl_to_controller: true,
        }
    }
    fn run(&self, pins: &mut PacketInContexts, k: &FlowKey) -> Translation {
        translate_with(&self.ctx(), pins, k)
    }
}

#[test]
fn action_set_runs_in_spec_order() {
    let w = World::new(
        "table=0,actions=write_actions(output:3,mod_nw_dst:9.9.9.9,strip_vlan,dec_ttl),write_metadata:0x10/0xf0,goto_table:1\n\
         table=1,metadata=0x10/0xf0,actions=output:2,write_actions(output:1)\n",
    );
    let t = w.run(&mut PacketInContexts::new(), &udp(3, VLAN_PRESENT | 5));
    assert_eq!(
        t.actions,
        vec![out(2), DpAction::PopVlan, DpAction::DecIpTtl, DpAction::SetIpv4Dst([9, 9, 9, 9]), out(1)]
    );
    assert_eq!(t.lookups.len(), 2);
    // clear_actions empties the set; a group in the set wins over the output.
    let mut w = World::new(
        "table=0,actions=write_actions(output:2),goto_table:1\n\
         table=1,in_port=1,actions=clear_actions\n\
         table=1,in_port=2,actions=write_actions(group:1)\n",
    );
    w.group(1, GroupType::Indirect, vec![Bucket::new(vec![OfAction::Output(3)])]);
    assert!(w.run(&mut PacketInContexts::new(), &udp(1, 0)).actions.is_empty());
    // A miss after the goto drops: the action set is not executed.
    assert!(w.run(&mut PacketInContexts::new(), &udp(3, 0)).actions.is_empty());
    let t = w.run(&mut PacketInContexts::new(), &udp(2, 0));
    assert_eq!(t.actions, vec![out(3)]);
    assert_eq!(t.groups, vec![(1, None), (1, Some(0))]);
}

#[test]
fn groups_all_select_fast_failover() {
    let mut w = World::new(
        "in_port=1,actions=group:1,output:3\nin_port=2,actions=group:2\nin_port=3,actions=group:3",
    );
    w.group(
        1,
        GroupType::All,
        vec![
            Bucket::new(vec![OfAction::SetEthDst([1; 6]), OfAction::Output(2)]),
            Bucket::new(vec![OfAction::Output(2), OfAction::SetVlanVid(7)]),
        ],
    );
    // Each bucket works on its own copy; the packet after the group is unchanged.
    let t = w.run(&mut PacketInContexts::new(), &udp(1, 0));
    assert_eq!(
        t.actions,
        vec![
            DpAction::SetEthDst([1; 6]),
            out(2),
            DpAction::SetEthDst([0; 6]),
            DpAction::PushVlan { tpid: 0x8100, tci: 7 },
            out(2),
            DpAction::PopVlan,
            out(3)
        ]
    );
    assert_eq!(t.mask.0.dl_dst, [0xff; 6]);
    let weighted = |p: u32, weight: u16| Bucket { weight, ..Bucket::new(vec![OfAction::Output(p)]) };
    w.group(2, GroupType::Select, vec![weighted(1, 1), weighted(3, 3), weighted(2, 0)]);
    let mut seen = [0u32; 4];
    for i in 0..400u16 {
        let mut k = udp(2, 0);
        k.tp_src = i;
        let t = w.run(&mut PacketInContexts::new(), &k);
        assert_eq!(t.mask.0.tp_src, !0);
        assert_eq!(t.mask.0.nw_src, [0xff; 16]);
        match t.actions.as_slice() {
            [DpAction::Output(p)] => seen[p.0 as usize] += 1,
            [] => seen[0] += 1,
            a => panic!("{a:?}"),
        }
    }
    // Weight 0 never; weight 3 about three times weight 1; in_port 2 itself drops.
    assert_eq!(seen[2], 0);
    assert!(seen[3] > 2 * seen[1] && seen[1] > 50, "{seen:?}");
    let watch = |p: u32| Bucket { watch_port: p, ..Bucket::new(vec![OfAction::Output(p)]) };
    w.group(3, GroupType::FastFailover, vec![watch(1), watch(2)]);
    assert_eq!(w.run(&mut PacketInContexts::new(), &udp(3, 0)).actions, vec![out(1)]);
    w.ports[0].live = false;
    assert_eq!(w.run(&mut PacketInContexts::new(), &udp(3, 0)).actions, vec![out(2)]);
    w.ports[1].config = ofppc::PORT_DOWN;
    assert_eq!(w.run(&mut PacketInContexts::new(), &udp(3, 0)).actions, vec![]);
    assert_eq!(ofpg::ANY, Bucket::new(vec![]).watch_group);
}

#[test]
fn controller_local_flood_and_misses() {
    let mut w = World::new(
        "cookie=0x7,table=0,in_port=1,actions=CONTROLLER:64,LOCAL,goto_table:1\n\
         table=0,in_port=2,actions=FLOOD\n\
         table=0,in_port=3,actions=ALL,dec_ttl\n\
         table=1,priority=0,actions=controller(max_len=32)\n",
    );
    w.ports.push(XPort { config: ofppc::NO_FLOOD, ..XPort::up(4) });
    w.ports.push(XPort { live: false, ..XPort::up(5) });
    w.ports.push(XPort { config: ofppc::NO_FWD, ..XPort::up(6) });
    w.local = Some(10);
    let mut pins = PacketInContexts::new();
    let t = w.run(&mut pins, &udp(1, 0));
    assert_eq!(t.actions, vec![DpAction::Userspace(0), out(10), DpAction::Userspace(1)]);
    let c0 = *pins.get(0).unwrap();
    assert_eq!((c0.reason, c0.table_id, c0.cookie, c0.max_len), (PacketInReason::Action, 0, 7, 64));
    let c1 = *pins.get(1).unwrap();
    assert_eq!((c1.reason, c1.table_id, c1.max_len), (PacketInReason::NoMatch, 1, 32));
    // Interning: the same contexts again.
    w.run(&mut pins, &udp(1, 0));
    assert_eq!(pins.len(), 2);
    assert_eq!(w.run(&mut pins, &udp(2, 0)).actions, vec![out(1), out(3)]);
    let mut dying = udp(3, 0);
    dying.nw_ttl = 1;
    let t = w.run(&mut pins, &dying);
    assert_eq!(t.actions[..4], [out(1), out(2), out(4), out(5)]);
    assert_eq!(pins.get(2).unwrap().reason, PacketInReason::InvalidTtl);
    // Misses: drop, or packet-in (1.0) unless the port says no packet-ins.
    let miss = FlowKey { in_port: 4, ..Default::default() };
    assert!(w.run(&mut pins, &miss).actions.is_empty());
    w.miss = TableMiss::Controller;
    let t = w.run(&mut pins, &miss);
    assert_eq!(t.lookups, vec![(0, None)]);
    let id = match t.actions[..] {
        [DpAction::Userspace(id)] => id,
        ref a => panic!("{a:?}"),
    };
    assert_eq!(pins.get(id).unwrap().cookie, u64::MAX);
    assert_eq!(pins.get(id).unwrap().reason, PacketInReason::ImplicitMiss);
    assert_eq!(PacketInReason::ImplicitMiss.number(), PacketInReason::NoMatch.number());
    w.ports[3].config |= ofppc::NO_PACKET_IN;
    assert!(w.run(&mut pins, &miss).actions.is_empty());
    // No LOCAL port: output to LOCAL drops.
    w.local = None;
    assert_eq!(w.run(&mut pins, &udp(1, 0)).actions, vec![DpAction::Userspace(0), DpAction::Userspace(1)]);
}

#[test]
fn packet_out_and_meters() {
    let mut p = pipeline("in_port=1,actions=output:2");
    let mut spec = crate::ofproto::rule::FlowSpec { priority: 5, ..Default::default() };
    spec.meter = Some(4);
    spec.actions = vec![OfAction::Output(3)];
    p.apply(FlowMod::add(spec), Duration::ZERO).unwrap();
    let w = World { p, ..World::new("") };
    let mut pins = PacketInContexts::new();
    let mut k = udp(1, 0);
    let t =
        translate_packet_out(&w.ctx(), &mut pins, &k, &[OfAction::Output(3), OfAction::Output(ofpp::TABLE)]);
    assert_eq!(t.actions, vec![out(3), out(2)]);
    k.in_port = ofpp::CONTROLLER;
    let t = translate_packet_out(&w.ctx(), &mut pins, &k, &[OfAction::InPort, OfAction::Output(ofpp::TABLE)]);
    assert_eq!(t.actions, vec![DpAction::Meter(4), out(3)]);
    assert_eq!(t.meters, vec![4]);
}

fn arb_group_action() -> impl Strategy<Value = OfAction> {
    prop_oneof![
        (1u32..5).prop_map(OfAction::Output),
        Just(OfAction::SetEthDst([3; 6])),
        Just(OfAction::SetIpv4Src([1, 1, 1, 1])),
        Just(OfAction::SetTpDst(7)),
        Just(OfAction::StripVlan),
        (0u16..3).prop_map(OfAction::SetVlanVid),
        Just(OfAction::DecTtl),
        (1u32..4).prop_map(OfAction::Group),
        Just(OfAction::SetTunId(7)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
    #[test]
    fn group_translation_mask_is_sound(
        specs in prop::collection::vec(arb_spec(), 0..8),
        buckets in prop::collection::vec(
            (prop::collection::vec(arb_group_action(), 0..3), 0u16..3, prop::option::of(1u32..4)), 1..5),
        dead in 1u32..5,
        pkts in prop::collection::vec((arb_key(), arb_key()), 1..12),
    ) {
        let mut w = World::new("");
        w.ports.push(XPort::new(4, DpPortNo(40), true));
        for s in specs {
            w.p.apply(FlowMod::add(s), Duration::ZERO).unwrap();
        }
        w.p.apply(FlowMod::add(crate::ofproto::rule::FlowSpec {
            priority: 7,
            actions: vec![OfAction::Group(1), OfAction::Group(2), OfAction::Group(3)],
            ..Default::default()
        }), Duration::ZERO).unwrap();
        // Group 3: select; 2: fast failover; 1: all. Chains only go down (3 -> 2 -> 1).
        for (id, t) in [(1u32, GroupType::All), (2, GroupType::FastFailover), (3, GroupType::Select)] {
            let bs = buckets.iter().map(|(acts, weight, watch)| Bucket {
                weight: if t == GroupType::Select { *weight } else { 0 },
                watch_port: if t == GroupType::FastFailover { watch.unwrap_or(1) } else { ofpp::ANY },
                watch_group: ofpg::ANY,
                actions: acts.iter().filter(|a| !matches!(a, OfAction::Group(g) if *g >= id)).cloned().collect(),
            }).collect();
            w.group(id, t, bs);
        }
        w.ports.retain(|p| p.no != dead);
        for (k, q) in &pkts {
            let mut pins = PacketInContexts::new();
            let t = w.run(&mut pins, k);
            let q = agree(k, q, &t.mask);
            let t2 = w.run(&mut pins, &q);
            prop_assert_eq!(&t.actions, &t2.actions, "{:?} vs {:?} under {:?}", k, q, t.mask);
            prop_assert_eq!(&t.groups, &t2.groups);
            prop_assert_eq!(&t.error, &t2.error);
        }
    }
}

// ---- Datapath numbers and tunnel ports.

/// OpenFlow ports 1-3 at datapath 11-13, and tunnel port 4 at datapath 40.
fn tunnel_world(text: &str) -> World {
    let mut w = World::new(text);
    w.ports = vec![
        XPort::new(1, DpPortNo(11), false),
        XPort::new(2, DpPortNo(12), false),
        XPort::new(3, DpPortNo(13), false),
        XPort::new(4, DpPortNo(40), true),
    ];
    w
}

fn tnl(key: u32) -> DpAction {
    DpAction::Tunnel { port: DpPortNo(40), key }
}

#[test]
fn outputs_use_datapath_numbers() {
    let mut w = tunnel_world(
        "in_port=1,actions=output:2,IN_PORT\n\
         in_port=2,actions=FLOOD\n\
         in_port=3,actions=LOCAL,group:1\n",
    );
    w.ports.push(XPort::new(ofpp::LOCAL, DpPortNo(99), false));
    w.local = Some(ofpp::LOCAL);
    w.group(1, GroupType::All, vec![Bucket::new(vec![OfAction::Output(1)])]);
    let mut pins = PacketInContexts::new();
    assert_eq!(w.run(&mut pins, &udp(1, 0)).actions, vec![out(12), out(11)]);
    assert_eq!(w.run(&mut pins, &udp(2, 0)).actions, vec![out(11), out(13), tnl(0), out(99)]);
    assert_eq!(w.run(&mut pins, &udp(3, 0)).actions, vec![out(99), out(11)]);
    // Output to an OpenFlow number no port has drops.
    let mut w = tunnel_world("actions=output:2");
    w.ports.retain(|p| p.no != 2);
    assert!(w.run(&mut pins, &udp(1, 0)).actions.is_empty());
}

#[test]
fn tun_id_match_outputs_to_tunnel_with_its_key() {
    let w = tunnel_world("tun_id=0x64,actions=output:4\nactions=output:2\n");
    let mut k = udp(1, 0);
    k.tun_id = 0x64;
    let t = w.run(&mut PacketInContexts::new(), &k);
    assert_eq!(t.actions, vec![tnl(0x64)]);
    assert_eq!(t.mask.0.tun_id, !0);
    k.tun_id = 0x65;
    assert_eq!(w.run(&mut PacketInContexts::new(), &k).actions, vec![out(12)]);
    // The packet's own tun_id (no match on it) goes into the mask when a tunnel uses it.
    let w = tunnel_world("in_port=1,actions=output:4");
    k.tun_id = 0x1_0000_0007;
    let t = w.run(&mut PacketInContexts::new(), &k);
    assert_eq!(t.actions, vec![tnl(7)]);
    assert_eq!(t.mask.0.tun_id, !0);
    // An output to an ordinary port does not depend on tun_id.
    let w = tunnel_world("in_port=1,actions=output:2");
    assert_eq!(w.run(&mut PacketInContexts::new(), &k).mask.0.tun_id, 0);
}

#[test]
fn set_tunnel_then_output() {
    let w = tunnel_world(
        "in_port=1,actions=set_tunnel:0x64,output:4,output:2\n\
         in_port=2,actions=output:4,set_field:0x65->tun_id,output:4\n\
         in_port=3,actions=write_actions(set_tunnel64:0x66,output:4)\n",
    );
    let mut pins = PacketInContexts::new();
    let t = w.run(&mut pins, &udp(1, 0));
    assert_eq!(t.actions, vec![tnl(0x64), out(12)]);
    // Set before any use: the packet's own tun_id does not matter.
    assert_eq!(t.mask.0.tun_id, 0);
    let mut k = udp(2, 0);
    k.tun_id = 9;
    let t = w.run(&mut pins, &k);
    assert_eq!(t.actions, vec![tnl(9), tnl(0x65)]);
    assert_eq!(t.mask.0.tun_id, !0);
    let t = w.run(&mut pins, &udp(3, 0));
    assert_eq!(t.actions, vec![tnl(0x66)]);
    assert_eq!(t.mask.0.tun_id, 0);
}

#[test]
fn set_tunnel_in_a_bucket_stays_in_the_bucket() {
    let mut w = tunnel_world("in_port=1,actions=group:1,output:4");
    w.group(
        1,
        GroupType::All,
        vec![
            Bucket::new(vec![OfAction::SetTunId(0x70), OfAction::Output(4)]),
            Bucket::new(vec![OfAction::Output(4)]),
        ],
    );
    let mut k = udp(1, 0);
    k.tun_id = 3;
    let t = w.run(&mut PacketInContexts::new(), &k);
    assert_eq!(t.actions, vec![tnl(0x70), tnl(3), tnl(3)]);
    assert_eq!(t.mask.0.tun_id, !0);
}

#[test]
fn tunnel_in_port_and_flood_from_a_tunnel() {
    let w = tunnel_world("in_port=4,actions=FLOOD\nin_port=1,actions=IN_PORT\n");
    let mut k = udp(4, 0);
    k.tun_id = 0x64;
    let t = w.run(&mut PacketInContexts::new(), &k);
    // Never back out of the tunnel it came from.
    assert_eq!(t.actions, vec![out(11), out(12), out(13)]);
    assert_eq!(t.mask.0.tun_id, 0);
    let w = tunnel_world("in_port=4,actions=IN_PORT");
    let t = w.run(&mut PacketInContexts::new(), &k);
    assert_eq!(t.actions, vec![tnl(0x64)]);
}

/// Neutron's br-tun: a packet from the GRE tunnel (port 3, tun_id 0x64) is given local VLAN 1
/// (table 4's job, folded into table 0 here) and reaches table 10's learn, which teaches
/// table 20 to send frames for this MAC on VLAN 1 back through port 3 with key 0x64.
#[test]
fn neutron_learn_teaches_table_20() {
    let learn = "learn(table=20,hard_timeout=300,priority=1,cookie=0x1234,NXM_OF_VLAN_TCI[0..11],\
                 NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],load:0->NXM_OF_VLAN_TCI[],\
                 load:NXM_NX_TUN_ID[]->NXM_NX_TUN_ID[],output:NXM_OF_IN_PORT[])";
    let mut p = pipeline(&format!(
        "table=0,priority=1,in_port=3,tun_id=0x64,actions=mod_vlan_vid:1,resubmit(,10)\n\
         table=10,priority=1,actions={learn},output:1"
    ));
    let src = [0xfa, 0x16, 0x3e, 0x00, 0x00, 0x07];
    let key = FlowKey { in_port: 3, tun_id: 0x64, dl_src: src, dl_type: 0x0806, ..Default::default() };
    let (t, learned) = translate_l(&p, &key);
    assert_eq!(t.error, None);
    assert_eq!(t.actions, vec![DpAction::PushVlan { tpid: 0x8100, tci: 1 }, out(1)]);
    let names: PortNames = [("p3", 3)].into_iter().collect();
    let want = crate::ofproto::syntax::parse_flow(
        "table=20,priority=1,hard_timeout=300,cookie=0x1234,vlan_tci=0x0001/0x0fff,dl_dst=fa:16:3e:00:00:07,\
         actions=load:0->NXM_OF_VLAN_TCI[],load:0x64->NXM_NX_TUN_ID[],output:3",
        &names,
    )
    .unwrap();
    assert_eq!(learned, vec![FlowMod::add(want.clone())]);
    assert_eq!(
        want.to_string(),
        "table=20, cookie=0x1234, hard_timeout=300, priority=1,vlan_tci=0x0001/0x0fff,dl_dst=fa:16:3e:00:00:07 \
         actions=strip_vlan,set_field:0x64->tun_id,output:3"
    );
    // The megaflow depends on everything the learn read.
    let m = t.mask.0;
    assert_eq!((m.in_port, m.tun_id, m.dl_src), (!0, !0, [0xff; 6]));
    assert_eq!(m.vlan_tci & 0x0fff, 0x0fff);
    // Another MAC, or another key, learns another flow (and the mask says so).
    let other = FlowKey { dl_src: [2, 0, 0, 0, 0, 9], ..key };
    assert!(!other.matches_masked(&t.mask, &key.masked(&t.mask)));
    assert_ne!(translate_l(&p, &other).1, learned);

    // Applied, the flow forwards traffic to that MAC on VLAN 1 into the tunnel; learning
    // the same flow again changes nothing, so the bridge only refreshes its timeouts.
    let fm = learned[0].clone();
    assert_eq!(crate::ofproto::learn::learned_is_noop(&p, &fm), None);
    p.apply(fm.clone(), Duration::ZERO).unwrap();
    let id = crate::ofproto::learn::learned_is_noop(&p, &fm).expect("same flow");
    assert_eq!(p.rule(id).map(|r| r.table), Some(20));
    // Re-learned 100 s later: the hard timeout (300 s) starts again, the counters stay.
    p.credit(id, 5, 500, Duration::from_secs(10));
    p.refresh(id, Duration::from_secs(100));
    assert!(p.expire(Duration::from_secs(350)).is_empty());
    assert_eq!(p.rule(id).map(|r| r.n_packets), Some(5));
    assert_eq!(p.expire(Duration::from_secs(400)).len(), 1);
    p.apply(fm.clone(), Duration::from_secs(400)).unwrap();
    let id = crate::ofproto::learn::learned_is_noop(&p, &fm).expect("learned again");
    let reply = FlowKey { in_port: 1, dl_dst: src, vlan_tci: VLAN_PRESENT | 1, ..Default::default() };
    let (rule, _) = p.table(20).lookup(&reply);
    assert_eq!(rule.map(|r| r.id), Some(id));
    // A failed translation learns nothing.
    let p2 = pipeline(&format!("actions={learn},resubmit(,0)"));
    let (t, learned) = translate_l(&p2, &key);
    assert!(t.error.is_some());
    assert!(learned.is_empty());
}
