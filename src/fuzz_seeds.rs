//! Seed corpora for the fuzz targets over frames and flow text (`fuzz/seeds/{flowsyntax,
//! extract,gre_decap}/`): frames from the packet builders the unit tests use and GRE frames
//! from the tunnel's own encapsulation (the bytes `tests/gre.rs` checks against Open vSwitch),
//! and flow lines from the README, Neutron's br-tun layout (`tests/gre.rs`) and `ovs-ofctl
//! dump-flows` output. `cargo test --lib write_fuzz_seed_corpus -- --ignored` rewrites them
//! (with the OpenFlow ones, `ofp::tests::bytes_prop`). Each seed's input format is the
//! target's (see `fuzz/fuzz_targets/*.rs`).

use std::net::Ipv4Addr;
use std::path::Path;

use crate::datapath::tunnel::{KeyMode, Template, TunnelConfig, TunnelHeader};
use crate::netdev::DpPortNo;
use crate::packet::build::{
    self, EthSpec, Icmp4EchoSpec, Icmp6EchoSpec, Tcp4Spec, Tcp6Spec, Udp4Spec, Udp6Spec,
};
use crate::packet::{ip_proto, tcp, Buf};

/// Flow lines: the README's, Neutron's br-tun (with and without learn), `dump-flows`
/// output, and one of each match field and action family the parser knows.
pub(crate) const FLOW_LINES: &[&str] = &[
    "priority=10,in_port=1,actions=output:2",
    "priority=20,udp,nw_dst=10.0.0.2,tp_dst=53,actions=mod_dl_dst:02:00:00:00:00:02,output:2",
    "table=0,priority=100,ip,nw_dst=10.0.0.2,actions=output:2",
    "priority=0,actions=NORMAL",
    "table=0,priority=1,in_port=1,actions=goto_table:2",
    "table=0,priority=0,actions=drop",
    "table=2,priority=0,dl_dst=00:00:00:00:00:00/01:00:00:00:00:00,actions=goto_table:20",
    "table=2,priority=0,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00,actions=goto_table:22",
    "table=4,priority=1,tun_id=0x64,actions=mod_vlan_vid:1,goto_table:10",
    "table=10,priority=1,actions=learn(table=20,hard_timeout=300,priority=1,cookie=0x1234,\
     NXM_OF_VLAN_TCI[0..11],NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],load:0->NXM_OF_VLAN_TCI[],\
     load:NXM_NX_TUN_ID[]->NXM_NX_TUN_ID[],output:NXM_OF_IN_PORT[]),output:1",
    "table=20,priority=2,dl_vlan=1,dl_dst=fa:16:3e:00:00:01,actions=strip_vlan,set_tunnel:0x64,output:2",
    "table=22,priority=1,dl_vlan=1,actions=strip_vlan,set_tunnel:0x64,output:2,output:3",
    " cookie=0x0, duration=12.345s, table=0, n_packets=3, n_bytes=180, idle_age=2, \
     priority=10,in_port=1 actions=output:2",
    "cookie=0x1/0xff,table=3,idle_timeout=10,hard_timeout=20,send_flow_rem,check_overlap,\
     priority=7,tcp,in_port=eth0,dl_vlan=5,dl_vlan_pcp=3,nw_src=10.0.0.0/8,nw_tos=16,\
     tcp_flags=+syn-ack,tp_src=0x1000/0xf000,tp_dst=80,actions=mod_nw_src:10.1.1.1,\
     mod_tp_dst:8080,dec_ttl,set_queue:1,write_metadata:0x5/0xff,goto_table:4",
    "udp6,ipv6_src=2001:db8::/32,ipv6_dst=fd00::1,ipv6_label=0x12345,tp_dst=53,\
     actions=set_field:fd00::2->ipv6_dst,output:eth1",
    "icmp6,icmp_type=135,icmp_code=0,actions=controller:128",
    "arp,arp_op=1,arp_spa=10.0.0.1,arp_tpa=10.0.0.0/24,arp_sha=02:00:00:00:00:01,actions=flood",
    "icmp,icmp_type=8,icmp_code=0,nw_ttl=64,actions=push_vlan:0x8100,\
     set_field:4097->vlan_vid,output:p3",
    "vlan_tci=0x1005/0x1fff,dl_src=02:00:00:00:00:01/ff:ff:ff:00:00:00,actions=pop_vlan,in_port",
    "tun_id=0x64/0xffff,tun_src=192.0.2.1,tun_dst=192.0.2.0/24,metadata=0x1,\
     actions=set_tunnel64:0x1234567890,load:0x65->NXM_NX_TUN_ID[],resubmit(,3),group:1,meter:2",
    "sctp,tp_src=1,actions=mod_dl_src:02:00:00:00:00:09,mod_nw_tos:8,mod_nw_ttl:3,LOCAL,ALL",
    "dl_type=0x88cc,actions=controller(reason=no_match,max_len=64),clear_actions",
    "table=1,priority=5,out_port=2,in_port=1",
];

/// The underlay and remote of the GRE seeds (`fuzz_targets/gre_decap.rs` has the same).
const U_IP: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);
const U_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const REMOTE: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 2);

/// Frames for the extractor: every protocol the builders make, tagged and not, plus the
/// odd ones (fragments, extension headers, QinQ, 802.3 lengths, truncated).
pub(crate) fn frames() -> Vec<(&'static str, Vec<u8>)> {
    let tagged = Udp4Spec { vlan: Some(0x2005), ..Udp4Spec::default() };
    let v6 = Udp6Spec { flow_label: 0x12345, tclass: 0x28, ..Udp6Spec::default() };
    let mut fragment = build::udp4(&Udp4Spec::default());
    build::set_ipv4_frag(&mut fragment, 0x2000 | 8);
    let mut first_fragment = build::tcp4(&Tcp4Spec::default());
    build::set_ipv4_frag(&mut first_fragment, 0x2000);
    let eth = EthSpec::default();
    let ext = [ip_proto::FRAGMENT, 0, 0, 0, 0, 0, 0, 0, ip_proto::UDP, 0, 0, 0, 0, 0, 0, 1];
    let mut l4 = ext.to_vec();
    l4.extend_from_slice(&[0x30, 0x39, 0, 80, 0, 8, 0, 0]);
    let v6_ext = build::ipv6(&eth, &[1; 16], &[2; 16], 64, ip_proto::HOPOPTS, &l4);
    let mut qinq = build::udp4(&tagged);
    build::poke16(&mut qinq, 12, 0x88a8);
    qinq.splice(16..16, [0x81, 0x00, 0x00, 0x07]);
    let mut llc = build::udp4(&Udp4Spec::default());
    build::poke16(&mut llc, 12, 46);
    let target = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9];
    let syn = Tcp4Spec { flags: tcp::flags::SYN, ..Tcp4Spec::default() };
    let udp = build::udp4(&Udp4Spec::default());
    vec![
        ("udp4", udp.clone()),
        ("udp4-vlan", build::udp4(&tagged)),
        ("tcp4-syn", build::tcp4(&syn)),
        ("tcp4-vlan", build::tcp4(&Tcp4Spec { ip: tagged, flags: 0x18 })),
        ("icmp4-echo", build::icmp4_echo(&Icmp4EchoSpec::default())),
        ("sctp4", build::sctp4(&eth, [10, 0, 0, 1], [10, 0, 0, 2], 5000, 5001, 16)),
        ("udp6", build::udp6(&v6)),
        ("tcp6-vlan", build::tcp6(&Tcp6Spec { ip: Udp6Spec { vlan: Some(3), ..v6 }, flags: 2 })),
        ("icmp6-echo", build::icmp6_echo(&Icmp6EchoSpec::default())),
        (
            "nd-solicit",
            build::nd_solicit(&eth, &[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], &target),
        ),
        ("arp-request", build::arp_request([2, 0, 0, 0, 0, 1], [10, 0, 0, 1], [10, 0, 0, 2], None)),
        ("arp-vlan", build::arp_request([2, 0, 0, 0, 0, 1], [10, 0, 0, 1], [10, 0, 0, 2], Some(9))),
        ("ipv4-later-fragment", fragment),
        ("ipv4-first-fragment", first_fragment),
        ("ipv6-ext-headers", v6_ext),
        ("qinq", qinq),
        ("llc", llc),
        ("udp4-truncated", udp[..40].to_vec()),
    ]
}

/// GRE frames to the underlay from the tunnel's own templates: every key mode, with and
/// without checksum and sequence number, carrying several inner frames.
pub(crate) fn gre_frames() -> Vec<(String, Vec<u8>)> {
    let hdr = TunnelHeader { underlay: DpPortNo(1), eth_src: [2, 0, 0, 0, 0, 2], eth_dst: U_MAC, mtu: 1500 };
    let inner = [
        ("udp4", build::udp4(&Udp4Spec { vlan: Some(1), ..Udp4Spec::default() })),
        ("arp", build::arp_request([2, 0, 0, 0, 0, 7], [10, 0, 0, 7], [10, 0, 0, 8], None)),
        ("tcp6", build::tcp6(&Tcp6Spec::default())),
    ];
    let modes = [("nokey", KeyMode::None), ("key100", KeyMode::Fixed(0x64)), ("flow", KeyMode::Flow)];
    let mut out = Vec::new();
    for (i, (kname, key)) in modes.into_iter().enumerate() {
        for (csum, seq) in [(false, false), (true, true), (true, false)] {
            let cfg = TunnelConfig {
                in_key: key,
                out_key: key,
                csum,
                seq,
                ..TunnelConfig::flow_keyed(REMOTE, U_IP)
            };
            let tpl = Template::new(&cfg, &hdr);
            let (iname, f) = &inner[i];
            let mut room = vec![0u8; 2048];
            room[256..256 + f.len()].copy_from_slice(f);
            let mut b = Buf::new(&mut room, 256, f.len());
            tpl.encap(&mut b, 0x64, 1, 7, 1792).expect("a small frame fits");
            let name = format!(
                "gre-{kname}{}{}-{iname}",
                if csum { "-csum" } else { "" },
                if seq { "-seq" } else { "" }
            );
            out.push((name, b.data().to_vec()));
        }
    }
    let to_us = Icmp4EchoSpec {
        eth: EthSpec { dst_mac: U_MAC, ..EthSpec::default() },
        src_ip: REMOTE.octets(),
        dst_ip: U_IP.octets(),
        ..Icmp4EchoSpec::default()
    };
    out.push(("ping-to-underlay".into(), build::icmp4_echo(&to_us)));
    out.push((
        "arp-on-underlay".into(),
        build::arp_request([2, 0, 0, 0, 0, 2], REMOTE.octets(), U_IP.octets(), None),
    ));
    let udp_to_us =
        Udp4Spec { dst_mac: U_MAC, src_ip: REMOTE.octets(), dst_ip: U_IP.octets(), ..Udp4Spec::default() };
    out.push(("udp-to-underlay".into(), build::udp4(&udp_to_us)));
    out
}

/// `cargo test --lib write_fuzz_seed_corpus -- --ignored` refreshes these seeds.
#[test]
#[ignore]
fn write_fuzz_seed_corpus_frames_and_flows() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join(name), bytes).expect("write");
    };
    for (i, line) in FLOW_LINES.iter().enumerate() {
        write("flowsyntax", &format!("flow-{i:03}"), line.as_bytes());
    }
    // extract: the ingress port byte, then the frame.
    for (name, f) in frames() {
        write("extract", name, &[[1u8].as_slice(), &f].concat());
    }
    // gre_decap: the control byte (0: no rewriting, the frames are already right), then the frame.
    for (name, f) in gre_frames() {
        write("gre_decap", &name, &[[0u8].as_slice(), &f].concat());
    }
}

#[test]
fn seeds_are_what_their_targets_accept() {
    use crate::datapath::extract::extract;
    use crate::datapath::flow::FlowKey;
    use crate::datapath::tunnel::{classify_underlay, TunnelMap, UnderlayPort, UnderlayVerdict};
    use crate::ofproto::{parse_flow, parse_flow_selector, PortNames};

    let ports: PortNames = [("eth0", 1), ("eth1", 2), ("p3", 3)].into_iter().collect();
    // All but the selector line (no actions) are whole flows; that one is a selector.
    let refused: Vec<_> = FLOW_LINES.iter().filter_map(|l| parse_flow(l, &ports).err()).collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(parse_flow_selector(FLOW_LINES[FLOW_LINES.len() - 1], &ports).is_ok());
    let mut k = FlowKey::default();
    let bad: Vec<_> = frames().into_iter().filter(|(_, f)| extract(f, 1, &mut k).is_err()).collect();
    assert_eq!(bad.iter().map(|(n, _)| *n).collect::<Vec<_>>(), ["udp4-truncated"]);
    let u = UnderlayPort { port: DpPortNo(20), ip: U_IP, mac: U_MAC };
    let cfg = |key| TunnelConfig { in_key: key, out_key: key, ..TunnelConfig::flow_keyed(U_IP, REMOTE) };
    let map = TunnelMap::new(vec![(DpPortNo(10), cfg(KeyMode::Flow))], vec![u]);
    let decapped = gre_frames()
        .iter()
        .filter(|(_, f)| matches!(classify_underlay(&map, &u, f), UnderlayVerdict::Decap { .. }))
        .count();
    assert_eq!(decapped, 9);
}
