//! Round trips for the OpenFlow 1.0 messages of [`super::v10`].

use super::multipart::Desc;
use super::nx::NxAction;
use super::v10::*;
use super::{decode, encode, Decoded, Message, Xid, OFP10_VERSION};

fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).expect("ascii"), 16).expect("hex"))
        .collect()
}

fn m10(xid: u32, body: Body) -> Message {
    Message { version: OFP10_VERSION, xid: Xid(xid), body: super::Body::V10(body) }
}

fn roundtrip(msg: &Message) -> Vec<u8> {
    let mut bytes = Vec::new();
    encode(msg, &mut bytes).expect("encode");
    match decode(&bytes) {
        Ok(Decoded::Message { msg: back, len }) => {
            assert_eq!(len, bytes.len());
            assert_eq!(&back, msg);
            let mut again = Vec::new();
            encode(&back, &mut again).expect("re-encode");
            assert_eq!(again, bytes);
        }
        other => panic!("decode gave {other:?}"),
    }
    bytes
}

fn all_actions() -> Vec<Action> {
    vec![
        Action::Output { port: 2, max_len: 0 },
        Action::SetVlanVid(10),
        Action::SetVlanPcp(3),
        Action::StripVlan,
        Action::SetDlSrc([2, 0, 0, 0, 0, 1]),
        Action::SetDlDst([2, 0, 0, 0, 0, 2]),
        Action::SetNwSrc(0x0a00_0001),
        Action::SetNwDst(0x0a00_0002),
        Action::SetNwTos(0x20),
        Action::SetTpSrc(1234),
        Action::SetTpDst(80),
        Action::Enqueue { port: 1, queue_id: 7 },
        Action::Vendor { vendor: 0x2320, data: vec![0; 8] },
        Action::Nicira(NxAction::SetTunnel(0x64)),
        Action::Nicira(NxAction::SetTunnel64(0x1_0000_0064)),
        Action::Nicira(NxAction::load_tun_id(0x65)),
    ]
}

fn sample_match() -> Match {
    Match {
        wildcards: 0,
        in_port: 1,
        dl_src: [2, 0, 0, 0, 0, 1],
        dl_dst: [2, 0, 0, 0, 0, 2],
        dl_vlan: 0xffff,
        dl_vlan_pcp: 0,
        dl_type: 0x0800,
        nw_tos: 0,
        nw_proto: 6,
        nw_src: 0x0a00_0001,
        nw_dst: 0x0a00_0002,
        tp_src: 1234,
        tp_dst: 80,
    }
}

#[test]
fn flow_mod_as_ovs_ofctl_sends_it() {
    // ovs-ofctl -O OpenFlow10 add-flow br0 in_port=1,actions=output:2
    let fm = FlowMod {
        match_: Match { wildcards: OFPFW_ALL & !1, in_port: 1, ..Match::default() },
        priority: 0x8000,
        buffer_id: 0xffff_ffff,
        out_port: 0xffff,
        actions: vec![Action::Output { port: 2, max_len: 0 }],
        ..FlowMod::default()
    };
    let bytes = roundtrip(&m10(3, Body::FlowMod(fm)));
    let want = hex("01 0e 00 50 00 00 00 03  00 3f ff fe 00 01 00 00  00 00 00 00 00 00 00 00
         00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  00 00 00 00
         00 00 00 00 00 00 00 00  00 00 80 00 ff ff ff ff  ff ff 00 00
         00 00 00 08 00 02 00 00");
    assert_eq!(bytes, want);
    let full = FlowMod {
        match_: sample_match(),
        cookie: 9,
        command: 3,
        actions: all_actions(),
        ..FlowMod::default()
    };
    roundtrip(&m10(4, Body::FlowMod(full)));
}

#[test]
fn packet_in_out_features_port_status() {
    let pi = PacketIn { buffer_id: 0xffff_ffff, total_len: 3, in_port: 1, reason: 0, data: vec![1, 2, 3] };
    let bytes = roundtrip(&m10(1, Body::PacketIn(pi)));
    assert_eq!(bytes, hex("01 0a 00 15 00 00 00 01  ff ff ff ff 00 03 00 01 00 00 01 02 03"));
    let po = PacketOut { buffer_id: 0xffff_ffff, in_port: 0xfffd, actions: all_actions(), data: vec![9; 14] };
    roundtrip(&m10(2, Body::PacketOut(po)));
    let port = |n: u16| PhyPort {
        port_no: n,
        hw_addr: [2, 0, 0, 0, 0, 9],
        name: format!("p{n}"),
        ..PhyPort::default()
    };
    let features = FeaturesReply {
        datapath_id: 1,
        n_buffers: 0,
        n_tables: 1,
        capabilities: 0xc7,
        actions: 0xfff,
        ports: vec![port(1), port(2), port(0xfffe)],
    };
    let bytes = roundtrip(&m10(3, Body::FeaturesReply(features)));
    assert_eq!(bytes.len(), 32 + 3 * 48);
    let bytes = roundtrip(&m10(4, Body::PortStatus { reason: 2, desc: port(7) }));
    assert_eq!(bytes.len(), 64);
    let fr = FlowRemoved {
        match_: sample_match(),
        cookie: 1,
        priority: 2,
        reason: 0,
        duration_sec: 3,
        duration_nsec: 4,
        idle_timeout: 5,
        packet_count: 6,
        byte_count: 7,
    };
    let bytes = roundtrip(&m10(5, Body::FlowRemoved(fr)));
    assert_eq!(bytes.len(), 88);
}

#[test]
fn stats() {
    let req = StatsRequest { flags: 0, body: StatsRequestBody::Desc };
    assert_eq!(roundtrip(&m10(1, Body::StatsRequest(req))), hex("01 10 00 0c 00 00 00 01 00 00 00 00"));
    let req = StatsRequest {
        flags: 0,
        body: StatsRequestBody::Flow(FlowStatsRequest {
            match_: Match::all(),
            table_id: 0xff,
            out_port: 0xffff,
        }),
    };
    assert_eq!(roundtrip(&m10(2, Body::StatsRequest(req))).len(), 12 + 44);
    roundtrip(&m10(
        3,
        Body::StatsRequest(StatsRequest { flags: 0, body: StatsRequestBody::Port { port_no: 0xffff } }),
    ));
    let desc = Desc {
        mfr_desc: "x".into(),
        hw_desc: "y".into(),
        sw_desc: "z".into(),
        serial_num: "1".into(),
        dp_desc: "br0".into(),
    };
    let bytes =
        roundtrip(&m10(4, Body::StatsReply(StatsReply { flags: 0, body: StatsReplyBody::Desc(desc) })));
    assert_eq!(bytes.len(), 12 + 1056);
    let fs = FlowStats {
        table_id: 0,
        match_: sample_match(),
        priority: 5,
        cookie: 6,
        packet_count: 7,
        byte_count: 8,
        actions: all_actions(),
        ..FlowStats::default()
    };
    let bytes = roundtrip(&m10(
        5,
        Body::StatsReply(StatsReply {
            flags: 1,
            body: StatsReplyBody::Flow(vec![fs.clone(), FlowStats::default(), fs]),
        }),
    ));
    assert_eq!(bytes.len(), 12 + 3 * 88 + 2 * (13 * 8 + 16 + 8 + 8 + 16 + 24 + 24));
}

#[test]
fn v10_body_needs_version_1() {
    let msg =
        Message { version: 4, xid: Xid(1), body: super::Body::V10(Body::PacketIn(PacketIn::default())) };
    assert!(encode(&msg, &mut Vec::new()).is_err());
}
