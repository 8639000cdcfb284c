//! Tests of the learn action: syntax, wire form, execution.

use super::*;
use crate::ofp::action::Action;
use crate::ofp::nx::NxAction;
use crate::ofp::ErrorCode;
use crate::ofproto::convert::action_from_ofp;
use crate::ofproto::rule::PortNames;
use crate::ofproto::syntax::parse_flow;
use proptest::prelude::*;

/// Neutron br-tun's learn, as `ovs-ofctl dump-flows` prints it.
const NEUTRON: &str = "learn(table=20,hard_timeout=300,priority=1,cookie=0x1234,NXM_OF_VLAN_TCI[0..11],\
NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],load:0->NXM_OF_VLAN_TCI[],load:NXM_NX_TUN_ID[]->NXM_NX_TUN_ID[],\
output:NXM_OF_IN_PORT[])";

/// The same learn action as `ovs-ofctl 3.1 -O OpenFlow13` encodes it (type, length, vendor
/// id, body).
const NEUTRON_WIRE: &str = concat!(
    "ffff00600000232000100000012c000100000000000012340000140000000000",
    "000c000008020000000008020000003000000406000000000206000028100000",
    "0000080200000840000120080000000120080000101000000002000000000000",
);

/// `learn(table=20,idle_timeout=10,fin_idle_timeout=2,send_flow_rem,NXM_OF_VLAN_TCI[0..11]=0x5,
/// eth_type=0x800,NXM_OF_IP_DST[]=NXM_OF_IP_SRC[],load:0x1234567890->NXM_NX_TUN_ID[],
/// output:NXM_OF_IN_PORT[])` from `ovs-ofctl 3.1 -O OpenFlow10`.
const IPV4_WIRE: &str = concat!(
    "ffff0060000023200010000a0000800000000000000000000001140000020000",
    "200c000500000802000020100800000006020000002000000e04000000001004",
    "0000284000000012345678900001200800001010000000020000000000000000",
);

fn unhex(h: &str) -> Vec<u8> {
    (0..h.len()).step_by(2).map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap()).collect()
}

fn wire(h: &str) -> NxLearn {
    match NxAction::decode_body(&unhex(h)[8..]) {
        Some(NxAction::Learn(l)) => *l,
        other => panic!("{other:?}"),
    }
}

fn body(s: &str) -> &str {
    &s["learn(".len()..s.len() - 1]
}

fn whole(f: LearnField) -> SubField {
    SubField::whole(f)
}

#[test]
fn neutron_learn_parses_prints_and_matches_the_wire() {
    let spec = LearnSpec::parse(body(NEUTRON)).unwrap();
    assert_eq!(spec.to_string(), NEUTRON);
    let tci12 = SubField::new(LearnField::VlanTci, 0, 12).unwrap();
    assert_eq!(
        spec.items,
        vec![
            LearnItem::Match { dst: tci12, src: LearnSrc::Field(tci12) },
            LearnItem::Match {
                dst: whole(LearnField::EthDst),
                src: LearnSrc::Field(whole(LearnField::EthSrc))
            },
            LearnItem::Load { dst: whole(LearnField::VlanTci), src: LearnSrc::Immediate(0) },
            LearnItem::Load { dst: whole(LearnField::TunId), src: LearnSrc::Field(whole(LearnField::TunId)) },
            LearnItem::Output(whole(LearnField::InPort)),
        ]
    );
    assert_eq!((spec.table, spec.priority, spec.hard_timeout, spec.cookie), (20, 1, 300, 0x1234));
    // The wire form, both ways.
    let l = wire(NEUTRON_WIRE);
    assert_eq!(LearnSpec::from_nx(&l), Ok(spec.clone()));
    assert_eq!(spec.to_nx(), l);
    // In a flow: the action list keeps its order and prints back.
    let ports: PortNames = [("p1", 1)].into_iter().collect();
    let f = parse_flow(&format!("table=10,priority=1,actions={NEUTRON},output:1"), &ports).unwrap();
    assert_eq!(f.actions, vec![OfAction::Learn(Box::new(spec)), OfAction::Output(1)]);
    assert_eq!(f.format_instructions(), format!("{NEUTRON},output:1"));
    assert_eq!(parse_flow(&f.to_string(), &ports), Ok(f));
}

#[test]
fn ipv4_learn_from_ovs_1_0() {
    let text = "learn(table=20,idle_timeout=10,fin_idle_timeout=2,send_flow_rem,\
                NXM_OF_VLAN_TCI[0..11]=0x5,eth_type=0x800,NXM_OF_IP_DST[]=NXM_OF_IP_SRC[],\
                load:0x1234567890->NXM_NX_TUN_ID[],output:NXM_OF_IN_PORT[])";
    let spec = LearnSpec::parse(body(text)).unwrap();
    assert_eq!(spec.to_string(), text);
    assert!(spec.send_flow_rem);
    let l = wire(IPV4_WIRE);
    assert_eq!(LearnSpec::from_nx(&l), Ok(spec.clone()));
    assert_eq!(spec.to_nx(), l);

    // A packet from 10.0.0.7 on port 4: match VLAN 5, IPv4, dst 10.0.0.7.
    let mut k = FlowKey { in_port: 4, dl_type: ETH_IP, tun_id: 9, ..FlowKey::default() };
    k.nw_src[..4].copy_from_slice(&[10, 0, 0, 7]);
    let mut mask = FlowMask::catchall();
    let fm = spec.execute(&k, &mut mask).unwrap();
    assert_eq!(fm.spec.format_match(), "ip,vlan_tci=0x0005/0x0fff,nw_dst=10.0.0.7");
    assert_eq!(fm.spec.actions, vec![OfAction::SetTunId(0x12_3456_7890), OfAction::Output(4)]);
    assert_eq!((fm.spec.idle_timeout, fm.spec.flags), (10, flags::SEND_FLOW_REM));
    assert_eq!((mask.0.nw_src[..4].to_vec(), mask.0.dl_type, mask.0.in_port), (vec![0xff; 4], 0xffff, !0));
    assert_eq!(mask.0.tun_id, 0, "tun_id was not read");
    // A non-IPv4 packet learns nothing, and that depended on its EtherType.
    let mut mask = FlowMask::catchall();
    let arp = FlowKey { dl_type: 0x0806, ..k };
    assert_eq!(spec.execute(&arp, &mut mask), None);
    assert_eq!(mask.0.dl_type, 0xffff);
}

#[test]
fn bad_learns_are_clear_errors() {
    let e = |s: &str| LearnSpec::parse(s).unwrap_err();
    assert!(e("NXM_NX_REG0[]").contains("not a field learn supports"), "{}", e("NXM_NX_REG0[]"));
    assert!(e("load:1->NXM_NX_TUN_ID[0..31]").starts_with("load into NXM_NX_TUN_ID[0..31]"));
    assert!(e("load:1->NXM_OF_ETH_TYPE[]").starts_with("load into"));
    assert!(e("NXM_OF_ETH_DST[]=NXM_OF_VLAN_TCI[]").contains("has 16 bits but NXM_OF_ETH_DST[] has 48"));
    assert!(e("NXM_OF_IP_DST[]").contains("needs an earlier match on NXM_OF_ETH_TYPE"));
    assert!(e("NXM_OF_VLAN_TCI[0..11]=0x1000").contains("does not fit"));
    assert!(e("NXM_OF_VLAN_TCI[3..1]").contains("backwards"));
    assert!(e("NXM_OF_VLAN_TCI[0..16]").contains("not within"));
    assert!(e("NXM_OF_IN_PORT[0..7]").contains("whole NXM_OF_IN_PORT"));
    assert!(e("delete_learned").contains("not supported"));
    assert!(e("table=255").contains("out of range"));
    assert!(e("output:NXM_NX_TUN_ID[]").contains("at most 32 bits"));
    assert!(e("eth_dst=zz").contains("not a value"));
    let ports = PortNames::new();
    let f = parse_flow("actions=write_actions(learn(table=1))", &ports).unwrap_err();
    assert_eq!(f.field, "learn");
    assert!(parse_flow("actions=learn(table=1,NXM_NX_REG0[])", &ports).unwrap_err().reason.contains("REG0"));

    // On the wire: fields and flags learn does not support are OFPBAC_BAD_ARGUMENT.
    let mut l = wire(NEUTRON_WIRE);
    l.specs[0].src = NxLearnSrc::Field { header: 0x0001_0004, ofs: 0 }; // NXM_NX_REG0
    let code = |l: &NxLearn| {
        action_from_ofp(&Action::Nicira(NxAction::Learn(Box::new(l.clone()))), false).unwrap_err().code()
    };
    assert_eq!(code(&l), ErrorCode::OFPBAC_BAD_ARGUMENT);
    let mut l = wire(NEUTRON_WIRE);
    l.flags = NX_LEARN_F_DELETE_LEARNED;
    assert_eq!(code(&l), ErrorCode::OFPBAC_BAD_ARGUMENT);
    let mut l = wire(NEUTRON_WIRE);
    l.specs[1].n_bits = 49; // beyond ETH_DST
    assert_eq!(code(&l), ErrorCode::OFPBAC_BAD_ARGUMENT);
    let mut l = wire(NEUTRON_WIRE);
    l.table_id = 255;
    assert_eq!(code(&l), ErrorCode::OFPBAC_BAD_ARGUMENT);
    let ok = action_from_ofp(&Action::Nicira(NxAction::Learn(Box::new(wire(NEUTRON_WIRE)))), false);
    assert!(matches!(ok, Ok(OfAction::Learn(_))));
}

#[test]
fn aliases_and_immediates() {
    let s = LearnSpec::parse(
        "OXM_OF_ETH_DST[]=dl_src,in_port=5,eth_src=0a:00:00:00:00:01,OXM_OF_TUNNEL_ID[0..31]=0x64,\
         load:0x3005->NXM_OF_VLAN_TCI[],load:OXM_OF_IPV4_SRC[]->NXM_OF_IP_DST[],output:OXM_OF_IN_PORT[]",
    )
    .unwrap();
    assert_eq!(s.table, 1, "OVS's default table");
    assert_eq!(
        s.to_string(),
        "learn(table=1,NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],in_port=5,eth_src=0a:00:00:00:00:01,\
         NXM_NX_TUN_ID[0..31]=0x64,load:0x3005->NXM_OF_VLAN_TCI[],load:NXM_OF_IP_SRC[]->NXM_OF_IP_DST[],\
         output:OXM_OF_IN_PORT[])"
    );
    assert_eq!(LearnSpec::parse(body(&s.to_string())), Ok(s.clone()));
    // A TCI with the CFI bit loads VID and PCP; the 32-bit in_port outputs as is.
    let k = FlowKey { in_port: ofpp::LOCAL, dl_type: ETH_IP, ..FlowKey::default() };
    let fm = s.execute(&k, &mut FlowMask::catchall()).unwrap();
    assert_eq!(
        fm.spec.actions,
        vec![OfAction::SetVlanVid(5), OfAction::SetVlanPcp(1), OfAction::SetIpv4Dst([0; 4]), OfAction::Local]
    );
    assert_eq!(fm.spec.matches.key().in_port, 5);
    assert_eq!(fm.spec.matches.mask().0.tun_id, 0xffff_ffff);
    // The OXM header of an alias decodes to the same field.
    assert_eq!(LearnField::from_header(0x8000_0806), Some(LearnField::EthSrc));
    assert_eq!(LearnField::from_header(0x0001_0004), None);
}

#[test]
fn reserved_in_port_round_trips_through_16_bits() {
    let s = LearnSpec::parse("NXM_OF_IN_PORT[],output:NXM_OF_IN_PORT[]").unwrap();
    let k = FlowKey { in_port: ofpp::LOCAL, ..FlowKey::default() };
    let fm = s.execute(&k, &mut FlowMask::catchall()).unwrap();
    assert_eq!(fm.spec.matches.key().in_port, ofpp::LOCAL);
    assert_eq!(fm.spec.matches.mask().0.in_port, !0);
    assert_eq!(fm.spec.actions, vec![OfAction::Local]);
}

/// A valid random learn: fields and ranges from a small set, widths that agree.
fn arb_spec() -> impl Strategy<Value = LearnSpec> {
    use LearnField::*;
    let plain = [InPortOxm, EthSrc, EthDst, VlanTci, EthType, TunId, Ipv4Src, Ipv4Dst];
    let sub = (prop::sample::select(plain.to_vec()), any::<u16>(), any::<u16>()).prop_map(|(f, a, b)| {
        let n = 1 + a % f.bits();
        let ofs = b % (f.bits() - n + 1);
        SubField { field: f, ofs, n_bits: n }
    });
    let loads = vec![
        whole(TunId),
        whole(EthSrc),
        whole(EthDst),
        whole(VlanTci),
        whole(Ipv4Src),
        SubField { field: VlanTci, ofs: 0, n_bits: 12 },
        SubField { field: VlanTci, ofs: 13, n_bits: 3 },
    ];
    let item = (sub, prop::sample::select(loads), 0u8..5, any::<u64>(), prop::sample::select(plain.to_vec()))
        .prop_map(|(s, l, kind, v, other)| {
            // A source of the same width in another field, where it fits.
            let moved = if other.bits() >= s.n_bits {
                SubField { field: other, ofs: 0, n_bits: s.n_bits }
            } else {
                s
            };
            match kind {
                0 => LearnItem::Match { dst: s, src: LearnSrc::Field(s) },
                1 => LearnItem::Match { dst: s, src: LearnSrc::Field(moved) },
                2 => LearnItem::Match { dst: s, src: LearnSrc::Immediate(v & ones(s.n_bits)) },
                3 => LearnItem::Load { dst: l, src: LearnSrc::Immediate(v & ones(l.n_bits)) },
                _ => LearnItem::Output(SubField { n_bits: s.n_bits.min(32), ..s }),
            }
        })
        .prop_filter(
            "IPv4 matches need an EtherType match first",
            |i| !matches!(i, LearnItem::Match { dst, .. } if dst.field.needs_ipv4()),
        );
    (0u8..255, any::<[u16; 5]>(), any::<u64>(), any::<bool>(), prop::collection::vec(item, 0..6)).prop_map(
        |(table, n, cookie, send_flow_rem, items)| LearnSpec {
            table,
            priority: n[0],
            idle_timeout: n[1],
            hard_timeout: n[2],
            fin_idle_timeout: n[3],
            fin_hard_timeout: n[4],
            cookie,
            send_flow_rem,
            items,
        },
    )
}

proptest! {
    #[test]
    fn print_parse_and_wire_are_identities(spec in arb_spec()) {
        prop_assert_eq!(spec.validate(), Ok(()));
        let text = spec.to_string();
        prop_assert_eq!(LearnSpec::parse(body(&text)), Ok(spec.clone()), "{}", text);
        prop_assert_eq!(LearnSpec::from_nx(&spec.to_nx()), Ok(spec.clone()));
        // Through the bytes too.
        let a = NxAction::Learn(Box::new(spec.to_nx()));
        let mut out = Vec::new();
        a.encode_body(&mut out);
        prop_assert_eq!(NxAction::decode_body(&out), Some(a));
    }

    /// Soundness of the mask: any packet equal to this one under the mask learns the same.
    #[test]
    fn packets_equal_under_the_mask_learn_the_same(
        spec in arb_spec(),
        a in any::<[u64; 6]>(),
        b in any::<[u64; 6]>(),
        pick in any::<[bool; 6]>(),
    ) {
        let key = |v: &[u64; 6]| {
            let mut k = FlowKey {
                in_port: v[0] as u32,
                dl_type: if v[1] & 1 == 0 { ETH_IP } else { v[1] as u16 },
                vlan_tci: v[2] as u16,
                tun_id: v[3],
                ..FlowKey::default()
            };
            k.dl_src.copy_from_slice(&v[4].to_be_bytes()[2..]);
            k.dl_dst.copy_from_slice(&v[5].to_be_bytes()[2..]);
            k.nw_src[..4].copy_from_slice(&(v[4] as u32).to_be_bytes());
            k.nw_dst[..4].copy_from_slice(&(v[5] as u32).to_be_bytes());
            k
        };
        let ka = key(&a);
        let mut mask = FlowMask::catchall();
        let la = spec.execute(&ka, &mut mask);
        // Another packet: b's fields where picked, then a's under the mask.
        let mix: [u64; 6] = std::array::from_fn(|i| if pick[i] { b[i] } else { a[i] });
        let mut other = key(&mix);
        // Force `other` to agree with `ka` on every masked bit.
        let m = mask.0;
        let blend = |x: u64, y: u64, mm: u64| (x & !mm) | (y & mm);
        other.in_port = blend(other.in_port.into(), ka.in_port.into(), m.in_port.into()) as u32;
        other.dl_type = blend(other.dl_type.into(), ka.dl_type.into(), m.dl_type.into()) as u16;
        other.vlan_tci = blend(other.vlan_tci.into(), ka.vlan_tci.into(), m.vlan_tci.into()) as u16;
        other.tun_id = blend(other.tun_id, ka.tun_id, m.tun_id);
        for i in 0..6 {
            other.dl_src[i] = blend(other.dl_src[i].into(), ka.dl_src[i].into(), m.dl_src[i].into()) as u8;
            other.dl_dst[i] = blend(other.dl_dst[i].into(), ka.dl_dst[i].into(), m.dl_dst[i].into()) as u8;
        }
        for i in 0..4 {
            other.nw_src[i] = blend(other.nw_src[i].into(), ka.nw_src[i].into(), m.nw_src[i].into()) as u8;
            other.nw_dst[i] = blend(other.nw_dst[i].into(), ka.nw_dst[i].into(), m.nw_dst[i].into()) as u8;
        }
        let lb = spec.execute(&other, &mut FlowMask::catchall());
        prop_assert_eq!(la, lb);
    }
}

/// What `ovs-ofctl 3.1 -O OpenFlow13 parse-flow` printed for these learn actions.
#[test]
fn prints_like_ovs_ofctl() {
    for (input, ovs) in [
        (
            "table=20,idle_timeout=10,fin_idle_timeout=2,fin_hard_timeout=3,send_flow_rem,\
             NXM_OF_VLAN_TCI[0..11]=0x5,eth_type=0x800,NXM_OF_IP_DST[]=NXM_OF_IP_SRC[],\
             load:0x1234567890->NXM_NX_TUN_ID[],output:NXM_OF_IN_PORT[]",
            "learn(table=20,idle_timeout=10,fin_idle_timeout=2,fin_hard_timeout=3,send_flow_rem,\
             NXM_OF_VLAN_TCI[0..11]=0x5,eth_type=0x800,NXM_OF_IP_DST[]=NXM_OF_IP_SRC[],\
             load:0x1234567890->NXM_NX_TUN_ID[],output:NXM_OF_IN_PORT[])",
        ),
        (
            "OXM_OF_ETH_DST[]=dl_src,in_port=5,eth_src=0a:00:00:00:00:01,OXM_OF_TUNNEL_ID[0..31]=0x64,\
             load:0x3005->NXM_OF_VLAN_TCI[],vlan_tci=0x1005,NXM_OF_VLAN_TCI[13..15],tun_id=0x64,\
             output:OXM_OF_IN_PORT[]",
            "learn(table=1,NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],in_port=5,eth_src=0a:00:00:00:00:01,\
             NXM_NX_TUN_ID[0..31]=0x64,load:0x3005->NXM_OF_VLAN_TCI[],vlan_tci=0x1005,\
             NXM_OF_VLAN_TCI[13..15],tun_id=0x64,output:OXM_OF_IN_PORT[])",
        ),
    ] {
        let spec = LearnSpec::parse(input).unwrap();
        assert_eq!(spec.to_string(), ovs);
        assert_eq!(LearnSpec::parse(body(ovs)), Ok(spec));
    }
}
