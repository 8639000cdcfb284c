//! Round trips for every message type (value → bytes → value, and hand-written bytes → value
//! → the same bytes), error mapping, and property tests that decode never panics.

use proptest::prelude::*;

use super::action::OFPCML_NO_BUFFER;
use super::error::*;
use super::flow::*;
use super::msg::*;
use super::multipart::table_feature_prop_type::*;
use super::multipart::*;
use super::oxm::OFPVID_PRESENT;
use super::port::*;
use super::*;

mod bytes_prop;
mod ovs_capture;
mod prop;
mod typed;

fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).expect("ascii"), 16).expect("hex"))
        .collect()
}

fn msg13(xid: u32, body: Body) -> Message {
    Message { version: OFP13_VERSION, xid: Xid(xid), body }
}

fn enc(msg: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    let n = encode(msg, &mut out).expect("encode");
    assert_eq!(n, out.len());
    out
}

fn dec(bytes: &[u8]) -> Message {
    match decode(bytes) {
        Ok(Decoded::Message { msg, len }) => {
            assert_eq!(len, bytes.len());
            msg
        }
        other => panic!("decode gave {other:?}"),
    }
}

/// value → bytes → value, and bytes → value → bytes.
fn roundtrip(msg: &Message) -> Vec<u8> {
    let bytes = enc(msg);
    assert_eq!(usize::from(u16::from_be_bytes([bytes[2], bytes[3]])), bytes.len());
    let back = dec(&bytes);
    assert_eq!(&back, msg);
    assert_eq!(enc(&back), bytes);
    bytes
}

/// Hand-written wire bytes decode to `msg` and `msg` encodes to exactly those bytes.
fn check_wire(hex_str: &str, msg: &Message) {
    let bytes = hex(hex_str);
    assert_eq!(&dec(&bytes), msg);
    assert_eq!(enc(msg), bytes);
    roundtrip(msg);
}

fn sample_match() -> Vec<Oxm> {
    vec![
        Oxm::exact(OxmField::InPort, 1),
        Oxm::masked(OxmField::EthDst, 0x0100_5e00_0000, 0xffff_ff80_0000),
        Oxm::exact(OxmField::EthType, 0x0800),
        Oxm::masked(OxmField::VlanVid, u128::from(OFPVID_PRESENT | 10), 0x1fff),
        Oxm::exact(OxmField::IpProto, 6),
        Oxm::masked(OxmField::Ipv4Src, 0x0a00_0000, 0xff00_0000),
        Oxm::exact(OxmField::TcpDst, 80),
        Oxm::masked(OxmField::Ipv6Src, 0x2001_0db8 << 96, u128::MAX << 64),
        Oxm::masked(OxmField::Metadata, 0x1234, 0xffff),
        Oxm::exact(OxmField::Ipv6Exthdr, 0x1ff),
        Oxm::exact(OxmField::TunIpv4Src, 0xc000_0201),
        Oxm::masked(OxmField::TunIpv4Dst, 0xc000_0200, 0xffff_ff00),
    ]
}

fn all_actions() -> Vec<Action> {
    vec![
        Action::Output { port: 2, max_len: 0 },
        Action::Output { port: OFPP_CONTROLLER, max_len: OFPCML_NO_BUFFER },
        Action::CopyTtlOut,
        Action::CopyTtlIn,
        Action::SetMplsTtl(9),
        Action::DecMplsTtl,
        Action::PushVlan(0x8100),
        Action::PopVlan,
        Action::PushMpls(0x8847),
        Action::PopMpls(0x0800),
        Action::SetQueue(3),
        Action::Group(7),
        Action::SetNwTtl(64),
        Action::DecNwTtl,
        Action::SetField(Oxm::exact(OxmField::VlanVid, u128::from(OFPVID_PRESENT | 5))),
        Action::SetField(Oxm::bytes(OxmField::EthSrc, &[2, 0, 0, 0, 0, 1])),
        Action::SetField(Oxm::bytes(OxmField::Ipv6Dst, &[0xfe; 16])),
        Action::PushPbb(0x88e7),
        Action::PopPbb,
        Action::Experimenter { experimenter: 0x2320, data: vec![0, 1, 2, 3, 4, 5, 6, 7] },
        Action::Nicira(super::nx::NxAction::SetTunnel(0x64)),
        Action::Nicira(super::nx::NxAction::SetTunnel64(0x1_0000_0064)),
        Action::Nicira(super::nx::NxAction::load_tun_id(0x65)),
    ]
}

fn all_instructions() -> Vec<Instruction> {
    vec![
        Instruction::Meter(1),
        Instruction::ApplyActions(all_actions()),
        Instruction::ClearActions,
        Instruction::WriteActions(vec![Action::Output { port: 1, max_len: 0 }, Action::Group(2)]),
        Instruction::WriteMetadata { metadata: 0xaa, metadata_mask: 0xff },
        Instruction::GotoTable(1),
        Instruction::Experimenter { experimenter: 0x2320, data: vec![1, 2, 3, 4] },
    ]
}

fn sample_port(n: u32) -> Port {
    Port {
        port_no: n,
        hw_addr: [2, 0, 0, 0, 0, n as u8],
        name: format!("veth{n}"),
        config: 0,
        state: 4,
        curr: 0x2840,
        advertised: 0,
        supported: 0,
        peer: 0,
        curr_speed: 10_000_000,
        max_speed: 0,
    }
}

#[test]
fn hello_with_version_bitmap() {
    let m = msg13(1, Body::Hello(Hello::with_versions(&[OFP10_VERSION, OFP13_VERSION])));
    check_wire("04 00 00 10 00 00 00 01  00 01 00 08 00 00 00 12", &m);
    let Body::Hello(h) = &m.body else { unreachable!() };
    assert_eq!(h.versions(), Some(vec![1, 4]));
    // A 1.0 hello has no body; a 1.5 hello still decodes so negotiation can see it.
    check_wire(
        "01 00 00 08 00 00 00 07",
        &Message { version: 1, xid: Xid(7), body: Body::Hello(Hello::default()) },
    );
    let v6 = dec(&hex("06 00 00 10 00 00 00 02  00 01 00 08 00 00 00 52"));
    let Body::Hello(h) = v6.body else { panic!("not a hello") };
    assert_eq!(h.versions(), Some(vec![1, 4, 6]));
    roundtrip(&msg13(
        3,
        Body::Hello(Hello { elements: vec![HelloElement::Unknown { type_: 9, data: vec![1] }] }),
    ));
}

#[test]
fn simple_messages() {
    check_wire(
        "04 01 00 10 00 00 00 05  00 01 00 01 04 ff 00 08",
        &msg13(
            5,
            Body::Error(Error { type_: OFPET_BAD_REQUEST, code: OFPBRC_BAD_TYPE, data: hex("04ff0008") }),
        ),
    );
    check_wire("04 02 00 0b 00 00 00 06  61 62 63", &msg13(6, Body::EchoRequest(b"abc".to_vec())));
    check_wire("04 03 00 08 00 00 00 06", &msg13(6, Body::EchoReply(vec![])));
    check_wire("04 05 00 08 00 00 00 08", &msg13(8, Body::FeaturesRequest));
    check_wire(
        "04 06 00 20 00 00 00 08  00 00 00 00 00 00 00 2a  00 00 01 00 fe 00 00 00  00 00 00 4f 00 00 00 00",
        &msg13(
            8,
            Body::FeaturesReply(FeaturesReply {
                datapath_id: 42,
                n_buffers: 256,
                n_tables: 254,
                auxiliary_id: 0,
                capabilities: 0x4f,
                reserved: 0,
            }),
        ),
    );
    check_wire("04 07 00 08 00 00 00 09", &msg13(9, Body::GetConfigRequest));
    let cfg = SwitchConfig { flags: OFPC_FRAG_NORMAL, miss_send_len: 128 };
    check_wire("04 08 00 0c 00 00 00 09  00 00 00 80", &msg13(9, Body::GetConfigReply(cfg.clone())));
    check_wire(
        "04 09 00 0c 00 00 00 0a  00 00 ff ff",
        &msg13(10, Body::SetConfig(SwitchConfig { flags: 0, miss_send_len: 0xffff })),
    );
    check_wire("04 14 00 08 00 00 00 0b", &msg13(11, Body::BarrierRequest));
    check_wire("04 15 00 08 00 00 00 0b", &msg13(11, Body::BarrierReply));
    let role = Role { role: OFPCR_ROLE_MASTER, generation_id: 3 };
    check_wire(
        "04 18 00 18 00 00 00 0c  00 00 00 02 00 00 00 00  00 00 00 00 00 00 00 03",
        &msg13(12, Body::RoleRequest(role.clone())),
    );
    check_wire(
        "04 19 00 18 00 00 00 0c  00 00 00 02 00 00 00 00  00 00 00 00 00 00 00 03",
        &msg13(12, Body::RoleReply(role)),
    );
}

#[test]
fn openflow10_shared_messages() {
    let m10 = |xid, body| Message { version: OFP10_VERSION, xid: Xid(xid), body };
    check_wire("01 12 00 08 00 00 00 01", &m10(1, Body::BarrierRequest));
    check_wire("01 13 00 08 00 00 00 01", &m10(1, Body::BarrierReply));
    check_wire("01 02 00 09 00 00 00 02  ff", &m10(2, Body::EchoRequest(vec![0xff])));
    check_wire(
        "01 09 00 0c 00 00 00 03  00 00 00 80",
        &m10(3, Body::SetConfig(SwitchConfig { flags: 0, miss_send_len: 128 })),
    );
    check_wire(
        "01 0f 00 20 00 00 00 04  00 03 00 11 22 33 44 55  00 00 00 01 00 00 00 01
         00 00 00 00 00 00 00 00",
        &m10(
            4,
            Body::V10(v10::Body::PortMod(v10::PortMod {
                port_no: 3,
                hw_addr: [0, 0x11, 0x22, 0x33, 0x44, 0x55],
                config: 1,
                mask: 1,
                advertise: 0,
            })),
        ),
    );
    let mut out = Vec::new();
    let flow_mod = m10(5, Body::FlowMod(FlowMod::default()));
    assert_eq!(encode(&flow_mod, &mut out), Err(EncodeError::NotInVersion { version: 1 }));
    assert!(out.is_empty());
}

#[test]
fn flow_mod_table_miss_as_os_ken_sends_it() {
    // simple_switch_13's table-miss entry: match all, apply output:CONTROLLER/NO_BUFFER.
    let fm = FlowMod {
        buffer_id: OFP_NO_BUFFER,
        match_: vec![],
        instructions: vec![Instruction::ApplyActions(vec![Action::Output {
            port: OFPP_CONTROLLER,
            max_len: OFPCML_NO_BUFFER,
        }])],
        ..FlowMod::default()
    };
    check_wire(
        "04 0e 00 50 00 00 00 21
         00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00
         00 00 00 00 00 00 00 00  ff ff ff ff 00 00 00 00
         00 00 00 00 00 00 00 00
         00 01 00 04 00 00 00 00
         00 04 00 18 00 00 00 00  00 00 00 10 ff ff ff fd  ff ff 00 00 00 00 00 00",
        &msg13(0x21, Body::FlowMod(fm)),
    );
}

#[test]
fn flow_mod_with_match_and_set_field() {
    let fm = FlowMod {
        cookie: 0x1122,
        cookie_mask: 0xffff,
        table_id: 0,
        command: OFPFC_ADD,
        idle_timeout: 10,
        hard_timeout: 0,
        priority: 1,
        buffer_id: OFP_NO_BUFFER,
        out_port: OFPP_ANY,
        out_group: OFPG_ANY,
        flags: OFPFF_SEND_FLOW_REM,
        match_: vec![Oxm::exact(OxmField::InPort, 1), Oxm::bytes(OxmField::EthDst, &[0, 0, 0, 0, 0, 2])],
        instructions: vec![Instruction::ApplyActions(vec![
            Action::SetField(Oxm::exact(OxmField::VlanVid, 0x1005)),
            Action::Output { port: 2, max_len: 0 },
        ])],
    };
    check_wire(
        "04 0e 00 70 00 00 00 02
         00 00 00 00 00 00 11 22  00 00 00 00 00 00 ff ff
         00 00 00 0a 00 00 00 01  ff ff ff ff ff ff ff ff
         ff ff ff ff 00 01 00 00
         00 01 00 16 80 00 00 04  00 00 00 01 80 00 06 06  00 00 00 00 00 02 00 00
         00 04 00 28 00 00 00 00
         00 19 00 10 80 00 0c 02  10 05 00 00 00 00 00 00
         00 00 00 10 00 00 00 02  00 00 00 00 00 00 00 00",
        &msg13(2, Body::FlowMod(fm)),
    );
}

#[test]
fn flow_mod_every_command_instruction_and_action() {
    for command in [OFPFC_ADD, OFPFC_MODIFY, OFPFC_MODIFY_STRICT, OFPFC_DELETE, OFPFC_DELETE_STRICT] {
        let fm = FlowMod {
            cookie: u64::MAX,
            cookie_mask: 1,
            table_id: 3,
            command,
            idle_timeout: 1,
            hard_timeout: 2,
            priority: 0x8000,
            buffer_id: 77,
            out_port: 5,
            out_group: 6,
            flags: OFPFF_CHECK_OVERLAP | OFPFF_RESET_COUNTS | OFPFF_NO_PKT_COUNTS | OFPFF_NO_BYT_COUNTS,
            match_: sample_match(),
            instructions: all_instructions(),
        };
        roundtrip(&msg13(u32::from(command), Body::FlowMod(fm)));
    }
}

#[test]
fn every_basic_oxm_field_round_trips() {
    let mut fields = Vec::new();
    for n in 0..=39u8 {
        let field = OxmField::from_basic(n).expect("basic field");
        assert_eq!(field.class_field(), (oxm::OFPXMC_OPENFLOW_BASIC, n));
        fields.push(Oxm::exact(field, 1));
    }
    assert_eq!(OxmField::from_basic(40), None);
    let pi = PacketIn { match_: fields.clone(), ..PacketIn::default() };
    roundtrip(&msg13(1, Body::PacketIn(pi)));
    let masked: Vec<Oxm> = fields.iter().map(|o| Oxm { mask: Some(o.value.clone()), ..o.clone() }).collect();
    roundtrip(&msg13(2, Body::PacketIn(PacketIn { match_: masked, ..PacketIn::default() })));
    // NXM and experimenter TLVs pass through untouched.
    let other = vec![
        Oxm {
            field: OxmField::Other { class: 0x0001, field: 0, has_mask: false },
            value: vec![0, 0, 0, 5],
            mask: None,
        },
        Oxm {
            field: OxmField::Other { class: 0xffff, field: 3, has_mask: true },
            value: vec![0, 0, 0x23, 0x20, 1, 1],
            mask: None,
        },
    ];
    roundtrip(&msg13(3, Body::PacketIn(PacketIn { match_: other, ..PacketIn::default() })));
}

#[test]
fn packet_in_and_out() {
    let pi = PacketIn {
        buffer_id: OFP_NO_BUFFER,
        total_len: 4,
        reason: OFPR_NO_MATCH,
        table_id: 0,
        cookie: 0,
        match_: vec![Oxm::exact(OxmField::InPort, 1)],
        data: vec![0xde, 0xad, 0xbe, 0xef],
    };
    check_wire(
        "04 0a 00 2e 00 00 00 00  ff ff ff ff 00 04 00 00  00 00 00 00 00 00 00 00
         00 01 00 0c 80 00 00 04  00 00 00 01 00 00 00 00  00 00 de ad be ef",
        &msg13(0, Body::PacketIn(pi)),
    );
    let po = PacketOut {
        buffer_id: OFP_NO_BUFFER,
        in_port: OFPP_CONTROLLER,
        actions: vec![Action::Output { port: OFPP_FLOOD, max_len: 0 }],
        data: vec![1, 2, 3],
    };
    check_wire(
        "04 0d 00 2b 00 00 00 09  ff ff ff ff ff ff ff fd  00 10 00 00 00 00 00 00
         00 00 00 10 ff ff ff fb  00 00 00 00 00 00 00 00  01 02 03",
        &msg13(9, Body::PacketOut(po)),
    );
    roundtrip(&msg13(
        10,
        Body::PacketOut(PacketOut { buffer_id: 5, in_port: 1, actions: all_actions(), data: vec![] }),
    ));
}

#[test]
fn flow_removed_and_port_status() {
    let fr = FlowRemoved {
        cookie: 1,
        priority: 2,
        reason: OFPRR_IDLE_TIMEOUT,
        table_id: 3,
        duration_sec: 4,
        duration_nsec: 5,
        idle_timeout: 6,
        hard_timeout: 7,
        packet_count: 8,
        byte_count: 9,
        match_: sample_match(),
    };
    roundtrip(&msg13(1, Body::FlowRemoved(fr)));
    let bytes =
        roundtrip(&msg13(2, Body::PortStatus(PortStatus { reason: OFPPR_ADD, desc: sample_port(1) })));
    assert_eq!(bytes.len(), 80);
    assert_eq!(&bytes[32..37], b"veth1");
}

fn mp_req(xid: u32, body: MultipartRequestBody) -> Message {
    msg13(xid, Body::MultipartRequest(MultipartRequest { flags: 0, body }))
}

fn mp_rep(xid: u32, body: MultipartReplyBody) -> Message {
    msg13(xid, Body::MultipartReply(MultipartReply { flags: 0, body }))
}

#[test]
fn multipart_requests() {
    check_wire("04 12 00 10 00 00 00 01  00 00 00 00 00 00 00 00", &mp_req(1, MultipartRequestBody::Desc));
    check_wire(
        "04 12 00 10 00 00 00 01  00 0d 00 00 00 00 00 00",
        &mp_req(1, MultipartRequestBody::PortDesc),
    );
    check_wire(
        "04 12 00 10 00 00 00 01  00 0c 00 00 00 00 00 00",
        &mp_req(1, MultipartRequestBody::TableFeatures(vec![])),
    );
    check_wire("04 12 00 10 00 00 00 01  00 03 00 00 00 00 00 00", &mp_req(1, MultipartRequestBody::Table));
    check_wire(
        "04 12 00 18 00 00 00 01  00 04 00 00 00 00 00 00  ff ff ff ff 00 00 00 00",
        &mp_req(1, MultipartRequestBody::PortStats { port_no: OFPP_ANY }),
    );
    let all = FlowStatsRequest {
        table_id: OFPTT_ALL,
        out_port: OFPP_ANY,
        out_group: OFPG_ANY,
        cookie: 0,
        cookie_mask: 0,
        match_: vec![],
    };
    // What `ovs-ofctl -O OpenFlow13 dump-flows` asks.
    check_wire(
        "04 12 00 38 00 00 00 02  00 01 00 00 00 00 00 00
         ff 00 00 00 ff ff ff ff  ff ff ff ff 00 00 00 00
         00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00
         00 01 00 04 00 00 00 00",
        &mp_req(2, MultipartRequestBody::Flow(all.clone())),
    );
    roundtrip(&mp_req(
        3,
        MultipartRequestBody::Aggregate(FlowStatsRequest { match_: sample_match(), ..all }),
    ));
    roundtrip(&mp_req(4, MultipartRequestBody::Group { group_id: 1 }));
    roundtrip(&msg13(
        5,
        Body::MultipartRequest(MultipartRequest {
            flags: OFPMPF_MORE,
            body: MultipartRequestBody::TableFeatures(vec![sample_table_features()]),
        }),
    ));
}

fn sample_table_features() -> TableFeatures {
    let props = [
        OFPTFPT_INSTRUCTIONS,
        OFPTFPT_NEXT_TABLES,
        OFPTFPT_WRITE_ACTIONS,
        OFPTFPT_APPLY_ACTIONS,
        OFPTFPT_MATCH,
        OFPTFPT_WILDCARDS,
        OFPTFPT_WRITE_SETFIELD,
        OFPTFPT_APPLY_SETFIELD,
    ];
    TableFeatures {
        table_id: 0,
        name: "classifier".into(),
        metadata_match: u64::MAX,
        metadata_write: u64::MAX,
        config: 0,
        max_entries: 1_000_000,
        properties: props
            .iter()
            .map(|&type_| TableFeatureProp {
                type_,
                data: if type_ == OFPTFPT_MATCH { hex("80 00 00 04 80 00 0a 02") } else { vec![] },
            })
            .chain([TableFeatureProp { type_: OFPTFPT_NEXT_TABLES_MISS, data: vec![1, 2, 3] }])
            .collect(),
    }
}

#[test]
fn multipart_replies() {
    let desc = Desc {
        mfr_desc: "xdpswitch".into(),
        hw_desc: "AF_XDP".into(),
        sw_desc: "0.1.0".into(),
        serial_num: "None".into(),
        dp_desc: "br0".into(),
    };
    let bytes = roundtrip(&mp_rep(1, MultipartReplyBody::Desc(desc)));
    assert_eq!(bytes.len(), 16 + 1056);
    let fs = FlowStats {
        table_id: 0,
        duration_sec: 1,
        duration_nsec: 2,
        priority: 3,
        idle_timeout: 4,
        hard_timeout: 5,
        flags: 6,
        cookie: 7,
        packet_count: 8,
        byte_count: 9,
        match_: sample_match(),
        instructions: all_instructions(),
    };
    roundtrip(&mp_rep(2, MultipartReplyBody::Flow(vec![fs.clone(), FlowStats::default(), fs])));
    roundtrip(&mp_rep(2, MultipartReplyBody::Flow(vec![])));
    check_wire(
        "04 13 00 28 00 00 00 03  00 02 00 00 00 00 00 00
         00 00 00 00 00 00 00 01  00 00 00 00 00 00 00 40  00 00 00 01 00 00 00 00",
        &mp_rep(
            3,
            MultipartReplyBody::Aggregate(AggregateStats { packet_count: 1, byte_count: 64, flow_count: 1 }),
        ),
    );
    let ts = TableStats { table_id: 1, active_count: 2, lookup_count: 3, matched_count: 4 };
    roundtrip(&mp_rep(4, MultipartReplyBody::Table(vec![ts.clone(), ts])));
    let ps = PortStats {
        port_no: 1,
        rx_packets: 2,
        collisions: 3,
        duration_sec: 4,
        duration_nsec: 5,
        ..PortStats::default()
    };
    let bytes = roundtrip(&mp_rep(5, MultipartReplyBody::PortStats(vec![ps.clone(), ps])));
    assert_eq!(bytes.len(), 16 + 2 * 112);
    let bytes = roundtrip(&mp_rep(6, MultipartReplyBody::PortDesc(vec![sample_port(1), sample_port(2)])));
    assert_eq!(bytes.len(), 16 + 2 * 64);
    roundtrip(&mp_rep(
        7,
        MultipartReplyBody::TableFeatures(vec![sample_table_features(), TableFeatures::default()]),
    ));
    roundtrip(&msg13(
        8,
        Body::MultipartReply(MultipartReply {
            flags: OFPMPF_MORE,
            body: MultipartReplyBody::Experimenter(Experimenter {
                experimenter: 0x2320,
                exp_type: 9,
                data: vec![9; 4],
            }),
        }),
    ));
}

#[test]
fn table_features_wire_layout() {
    let tf = TableFeatures {
        table_id: 0,
        name: "t".into(),
        metadata_match: 0,
        metadata_write: 0,
        config: 0,
        max_entries: 16,
        properties: vec![TableFeatureProp { type_: OFPTFPT_NEXT_TABLES, data: vec![1] }],
    };
    let mut name = "74".to_string();
    name.push_str(&"00".repeat(31));
    check_wire(
        &format!(
            "04 13 00 58 00 00 00 01  00 0c 00 00 00 00 00 00
             00 48 00 00 00 00 00 00  {name}
             00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 10
             00 02 00 05 01 00 00 00"
        ),
        &mp_rep(1, MultipartReplyBody::TableFeatures(vec![tf])),
    );
}

fn decode_err(hex_str: &str) -> DecodeError {
    match decode(&hex(hex_str)) {
        Err(e) => e,
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn framing() {
    let bytes = enc(&msg13(1, Body::EchoRequest(vec![1, 2, 3, 4])));
    for cut in 0..bytes.len() {
        let want = if cut < 8 { 8 - cut } else { bytes.len() - cut };
        assert_eq!(decode(&bytes[..cut]), Ok(Decoded::NeedMore(want)));
    }
    let mut two = bytes.clone();
    two.extend_from_slice(&bytes);
    assert_eq!(decode(&two), Ok(Decoded::Message { msg: dec(&bytes), len: bytes.len() }));
}

#[test]
fn errors_carry_type_code_and_data() {
    let e = decode_err("03 05 00 08 00 00 00 09");
    assert_eq!((e.error_type(), e.error_code()), (OFPET_BAD_REQUEST, OFPBRC_BAD_VERSION));
    assert_eq!((e.xid, e.skip, e.data.len()), (Xid(9), Some(8), 8));
    let reply = e.reply(OFP13_VERSION);
    assert_eq!(roundtrip(&reply)[8..12], hex("0001 0000")[..]);

    let e = decode_err("04 63 00 08 00 00 00 01");
    assert_eq!((e.error_type(), e.error_code()), (OFPET_BAD_REQUEST, OFPBRC_BAD_TYPE));
    let e = decode_err("04 00 00 04 00 00 00 01");
    assert_eq!((e.error_type(), e.error_code(), e.skip), (OFPET_BAD_REQUEST, OFPBRC_BAD_LEN, None));
    let e = decode_err("04 14 00 09 00 00 00 01 00");
    assert_eq!(e.reason, Reason::BadLen);
    let e = decode_err("04 12 00 10 00 00 00 01  00 63 00 00 00 00 00 00");
    assert_eq!((e.error_type(), e.error_code()), (OFPET_BAD_REQUEST, OFPBRC_BAD_MULTIPART));

    // The data is capped at 64 bytes of the offending message.
    let big = enc(&msg13(1, Body::FlowMod(FlowMod { match_: sample_match(), ..FlowMod::default() })));
    let mut bad = big.clone();
    bad[0] = 2;
    let Err(e) = decode(&bad) else { panic!("accepted version 2") };
    assert_eq!(e.data, bad[..ERROR_DATA_LEN]);
    assert_eq!(e.skip, Some(bad.len()));
}

/// A flow-mod with the given match TLVs (hex, without the ofp_match header) and no
/// instructions.
fn flow_mod_with_oxms(oxms: &str) -> Vec<u8> {
    let oxms = hex(oxms);
    let mut m = enc(&msg13(1, Body::FlowMod(FlowMod::default())));
    m.truncate(48);
    m.extend_from_slice(&[0, 1]);
    m.extend_from_slice(&u16::try_from(4 + oxms.len()).expect("small").to_be_bytes());
    m.extend_from_slice(&oxms);
    let pad = wire::pad8(4 + oxms.len()) - (4 + oxms.len());
    m.extend(std::iter::repeat_n(0, pad));
    let len = u16::try_from(m.len()).expect("small").to_be_bytes();
    m[2..4].copy_from_slice(&len);
    m
}

fn match_error(oxms: &str) -> (u16, u16) {
    match decode(&flow_mod_with_oxms(oxms)) {
        Err(e) => (e.error_type(), e.error_code()),
        Ok(d) => panic!("accepted {oxms}: {d:?}"),
    }
}

#[test]
fn oxm_validation() {
    assert!(decode(&flow_mod_with_oxms("80 00 0c 02 1f ff")).is_ok());
    assert_eq!(match_error("80 00 0c 02 20 00"), (OFPET_BAD_MATCH, OFPBMC_BAD_VALUE));
    assert_eq!(match_error("80 00 0d 04 10 00 3f ff"), (OFPET_BAD_MATCH, OFPBMC_BAD_MASK));
    assert_eq!(match_error("80 00 0e 01 08"), (OFPET_BAD_MATCH, OFPBMC_BAD_VALUE)); // vlan_pcp 8
    assert_eq!(match_error("80 00 00 02 00 01"), (OFPET_BAD_MATCH, OFPBMC_BAD_LEN));
    assert_eq!(match_error("80 00 01 04 00 00 00 01"), (OFPET_BAD_MATCH, OFPBMC_BAD_LEN)); // in_port with mask bit, 4 bytes
    assert_eq!(match_error("80 00 50 01 00"), (OFPET_BAD_MATCH, OFPBMC_BAD_FIELD));
    assert_eq!(match_error("80 00 0a 02 08 00 80 00 0a 02 08 00"), (OFPET_BAD_MATCH, OFPBMC_DUP_FIELD));
    assert_eq!(match_error("80 00 0a 08 08 00"), (OFPET_BAD_MATCH, OFPBMC_BAD_LEN)); // runs past the match
    assert_eq!(match_error("80 00"), (OFPET_BAD_MATCH, OFPBMC_BAD_LEN));
    let mut m = flow_mod_with_oxms("");
    m[49] = 0; // ofp_match.type = OFPMT_STANDARD
    assert_eq!(decode(&m).map_err(|e| e.reason), Err(Reason::BadMatchType { type_: 0 }));
}

#[test]
fn action_and_instruction_errors() {
    let fm = |ins: &str| {
        let mut m = flow_mod_with_oxms("");
        m.extend_from_slice(&hex(ins));
        let len = u16::try_from(m.len()).expect("small").to_be_bytes();
        m[2..4].copy_from_slice(&len);
        decode(&m).map(|_| ()).map_err(|e| (e.error_type(), e.error_code()))
    };
    assert_eq!(fm("00 01 00 08 01 00 00 00"), Ok(()));
    assert_eq!(fm("00 09 00 08 00 00 00 00"), Err((OFPET_BAD_INSTRUCTION, OFPBIC_UNKNOWN_INST)));
    assert_eq!(fm("00 01 00 10 01 00 00 00"), Err((OFPET_BAD_INSTRUCTION, OFPBIC_BAD_LEN)));
    assert_eq!(
        fm("00 04 00 10 00 00 00 00  00 63 00 08 00 00 00 00"),
        Err((OFPET_BAD_ACTION, OFPBAC_BAD_TYPE))
    );
    assert_eq!(
        fm("00 04 00 10 00 00 00 00  00 00 00 08 00 00 00 01"),
        Err((OFPET_BAD_ACTION, OFPBAC_BAD_LEN))
    );
    assert_eq!(
        fm("00 04 00 18 00 00 00 00  00 19 00 10 80 00 50 02 00 00 00 00 00 00 00 00"),
        Err((OFPET_BAD_ACTION, OFPBAC_BAD_SET_TYPE))
    );
    assert_eq!(
        fm("00 04 00 18 00 00 00 00  00 19 00 10 80 00 0c 02 20 00 00 00 00 00 00 00"),
        Err((OFPET_BAD_ACTION, OFPBAC_BAD_SET_ARGUMENT))
    );
    assert_eq!(
        fm("00 04 00 18 00 00 00 00  00 19 00 10 80 00 0c 03 10 00 00 00 00 00 00 00"),
        Err((OFPET_BAD_ACTION, OFPBAC_BAD_SET_LEN))
    );
}

#[test]
fn encode_rejects_bad_values() {
    let bad = Oxm { field: OxmField::InPort, value: vec![1], mask: None };
    let m = msg13(1, Body::PacketIn(PacketIn { match_: vec![bad], ..PacketIn::default() }));
    let mut out = vec![0xaa];
    assert!(encode(&m, &mut out).is_err());
    assert_eq!(out, [0xaa]);
    let huge = msg13(1, Body::EchoRequest(vec![0; 70_000]));
    assert_eq!(encode(&huge, &mut out), Err(EncodeError::TooLong));
}

fn valid_messages() -> Vec<Vec<u8>> {
    let fm = FlowMod { match_: sample_match(), instructions: all_instructions(), ..FlowMod::default() };
    let fs = FlowStats { match_: sample_match(), instructions: all_instructions(), ..FlowStats::default() };
    [
        msg13(1, Body::Hello(Hello::with_versions(&[1, 4]))),
        msg13(2, Body::FlowMod(fm)),
        msg13(
            3,
            Body::PacketOut(PacketOut { actions: all_actions(), data: vec![1; 20], ..PacketOut::default() }),
        ),
        msg13(
            4,
            Body::PacketIn(PacketIn { match_: sample_match(), data: vec![2; 10], ..PacketIn::default() }),
        ),
        mp_rep(5, MultipartReplyBody::Flow(vec![fs])),
        mp_rep(6, MultipartReplyBody::TableFeatures(vec![sample_table_features()])),
        mp_rep(7, MultipartReplyBody::PortDesc(vec![sample_port(1)])),
        msg13(8, Body::PortStatus(PortStatus { reason: 0, desc: sample_port(3) })),
        Message { version: OFP10_VERSION, xid: Xid(9), body: Body::V10(v10_flow_mod()) },
        Message { version: OFP10_VERSION, xid: Xid(10), body: Body::V10(v10_flow_stats()) },
    ]
    .iter()
    .map(enc)
    .collect()
}

fn v10_flow_mod() -> v10::Body {
    let actions = vec![
        v10::Action::Output { port: 1, max_len: 0 },
        v10::Action::SetDlSrc([2, 0, 0, 0, 0, 1]),
        v10::Action::Enqueue { port: 1, queue_id: 2 },
    ];
    v10::Body::FlowMod(v10::FlowMod { match_: v10::Match::all(), actions, ..v10::FlowMod::default() })
}

fn v10_flow_stats() -> v10::Body {
    let fs = v10::FlowStats { actions: vec![v10::Action::StripVlan], ..v10::FlowStats::default() };
    v10::Body::StatsReply(v10::StatsReply { flags: 0, body: v10::StatsReplyBody::Flow(vec![fs.clone(), fs]) })
}

/// Decoding must never panic, and whatever decodes must re-encode and decode to itself.
fn check_decode(bytes: &[u8]) {
    if let Ok(Decoded::Message { msg, len }) = decode(bytes) {
        assert!(len <= bytes.len());
        let again = enc(&msg);
        assert_eq!(dec(&again), msg);
    }
}

proptest! {
    #[test]
    fn decode_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        check_decode(&bytes);
    }

    #[test]
    fn decode_random_bytes_with_valid_header(
        version in prop_oneof![Just(1u8), Just(4u8)],
        type_ in 0u8..32,
        body in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut bytes = vec![version, type_];
        bytes.extend_from_slice(&u16::try_from(8 + body.len()).unwrap_or(0).to_be_bytes());
        bytes.extend_from_slice(&[0, 0, 0, 1]);
        bytes.extend_from_slice(&body);
        check_decode(&bytes);
    }

    #[test]
    fn decode_mutated_valid_messages(
        which in 0usize..10,
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cut in any::<usize>(),
    ) {
        let mut bytes = valid_messages().swap_remove(which);
        for (at, v) in flips {
            let n = bytes.len();
            bytes[at % n] = v;
        }
        check_decode(&bytes);
        let n = bytes.len();
        bytes.truncate(cut % (n + 1));
        check_decode(&bytes);
    }
}
