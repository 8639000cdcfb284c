//! Group, meter, port/table mods, async and queue config, experimenter, the queue/group/meter
//! multipart bodies, 1.0 stats, reply splitting, and the errors for malformed ones.

use super::super::config::*;
use super::super::group::*;
use super::super::meter::*;
use super::super::multipart::*;
use super::super::stats::*;
use super::super::*;
use super::{check_wire, decode_err, enc, mp_rep, mp_req, msg13, roundtrip, sample_port};
use crate::ofp::port::{OFPG_ANY, OFPP_ANY};

fn bucket(port: u32) -> Bucket {
    Bucket {
        weight: 1,
        watch_port: OFPP_ANY,
        watch_group: OFPG_ANY,
        actions: vec![Action::Output { port, max_len: 0 }],
    }
}

fn bands() -> Vec<MeterBand> {
    vec![
        MeterBand::Drop { rate: 1000, burst_size: 100 },
        MeterBand::DscpRemark { rate: 2000, burst_size: 200, prec_level: 2 },
        MeterBand::Experimenter { rate: 3, burst_size: 4, experimenter: 0x2320, data: vec![1; 8] },
    ]
}

#[test]
fn meter_mod_wire_layout() {
    check_wire(
        "04 1d 00 30 00 00 00 01  00 00 00 05 00 00 00 01
         00 01 00 10 00 00 03 e8  00 00 00 64 00 00 00 00
         00 02 00 10 00 00 07 d0  00 00 00 c8 02 00 00 00",
        &msg13(
            1,
            Body::MeterMod(MeterMod {
                command: OFPMC_ADD,
                flags: OFPMF_KBPS | OFPMF_BURST,
                meter_id: 1,
                bands: bands()[..2].to_vec(),
            }),
        ),
    );
    roundtrip(&msg13(
        2,
        Body::MeterMod(MeterMod { command: OFPMC_MODIFY, flags: 0, meter_id: 9, bands: bands() }),
    ));
    roundtrip(&msg13(
        3,
        Body::MeterMod(MeterMod { command: OFPMC_DELETE, meter_id: OFPM_ALL, ..MeterMod::default() }),
    ));
}

#[test]
fn group_mods_of_every_type() {
    // A select group with one weighted bucket that outputs to port 2.
    check_wire(
        "04 0f 00 30 00 00 00 0d  00 00 01 00 00 00 00 05
         00 20 00 03 ff ff ff ff  ff ff ff ff 00 00 00 00
         00 00 00 10 00 00 00 02  ff e5 00 00 00 00 00 00",
        &msg13(
            13,
            Body::GroupMod(GroupMod {
                command: OFPGC_ADD,
                type_: OFPGT_SELECT,
                group_id: 5,
                buckets: vec![Bucket {
                    weight: 3,
                    watch_port: OFPP_ANY,
                    watch_group: OFPG_ANY,
                    actions: vec![Action::Output { port: 2, max_len: 0xffe5 }],
                }],
            }),
        ),
    );
    for (type_, buckets) in [
        (OFPGT_ALL, vec![bucket(1), bucket(2), bucket(3)]),
        (OFPGT_SELECT, vec![Bucket { weight: 5, ..bucket(1) }, bucket(2)]),
        (OFPGT_INDIRECT, vec![bucket(7)]),
        (OFPGT_FF, vec![Bucket { watch_port: 1, ..bucket(1) }, Bucket { watch_group: 3, ..bucket(2) }]),
    ] {
        let gm = GroupMod { command: OFPGC_MODIFY, type_, group_id: 10, buckets };
        roundtrip(&msg13(1, Body::GroupMod(gm)));
    }
    roundtrip(&msg13(
        2,
        Body::GroupMod(GroupMod { command: OFPGC_DELETE, group_id: OFPG_ALL, ..GroupMod::default() }),
    ));
}

#[test]
fn config_messages_wire_layout() {
    check_wire(
        "04 10 00 28 00 00 00 01  00 00 00 01 00 00 00 00  00 11 22 33 44 55 00 00
         00 00 00 01 00 00 00 01  00 00 00 00 00 00 00 00",
        &msg13(
            1,
            Body::PortMod(PortMod {
                port_no: 1,
                hw_addr: [0, 0x11, 0x22, 0x33, 0x44, 0x55],
                config: 1,
                mask: 1,
                advertise: 0,
            }),
        ),
    );
    check_wire(
        "04 11 00 10 00 00 00 02  fe 00 00 00 00 00 00 03",
        &msg13(2, Body::TableMod(TableMod { table_id: 0xfe, config: 3 })),
    );
    let ac = AsyncConfig { packet_in_mask: [3, 1], port_status_mask: [7, 7], flow_removed_mask: [15, 0] };
    check_wire(
        "04 1c 00 20 00 00 00 03  00 00 00 03 00 00 00 01  00 00 00 07 00 00 00 07  00 00 00 0f 00 00 00 00",
        &msg13(3, Body::SetAsync(ac.clone())),
    );
    roundtrip(&msg13(4, Body::GetAsyncReply(ac)));
    check_wire("04 1a 00 08 00 00 00 05", &msg13(5, Body::GetAsyncRequest));
    check_wire(
        "04 16 00 10 00 00 00 06  00 00 00 01 00 00 00 00",
        &msg13(6, Body::QueueGetConfigRequest { port: 1 }),
    );
    check_wire(
        "04 17 00 30 00 00 00 07  00 00 00 01 00 00 00 00
         00 00 00 07 00 00 00 01  00 20 00 00 00 00 00 00
         00 01 00 10 00 00 00 00  01 f4 00 00 00 00 00 00",
        &msg13(
            7,
            Body::QueueGetConfigReply(QueueGetConfigReply {
                port: 1,
                queues: vec![PacketQueue {
                    queue_id: 7,
                    port: 1,
                    properties: vec![QueueProp::rate(OFPQT_MIN_RATE, 500)],
                }],
            }),
        ),
    );
    check_wire(
        "04 04 00 14 00 00 00 08  00 00 23 20 00 00 00 10  01 02 03 04",
        &msg13(
            8,
            Body::Experimenter(Experimenter { experimenter: 0x2320, exp_type: 16, data: vec![1, 2, 3, 4] }),
        ),
    );
}

#[test]
fn queue_group_meter_multipart_requests() {
    for body in [
        MultipartRequestBody::Queue { port_no: OFPP_ANY, queue_id: 0xffff_ffff },
        MultipartRequestBody::Group { group_id: OFPG_ALL },
        MultipartRequestBody::GroupDesc,
        MultipartRequestBody::GroupFeatures,
        MultipartRequestBody::Meter { meter_id: OFPM_ALL },
        MultipartRequestBody::MeterConfig { meter_id: 3 },
        MultipartRequestBody::MeterFeatures,
        MultipartRequestBody::PortStats { port_no: 2 },
        MultipartRequestBody::Experimenter(Experimenter { experimenter: 1, exp_type: 2, data: vec![3; 5] }),
    ] {
        let bytes = roundtrip(&mp_req(1, body.clone()));
        assert_eq!(u16::from_be_bytes([bytes[8], bytes[9]]), body.type_code());
    }
}

#[test]
fn queue_group_meter_multipart_replies() {
    check_wire(
        "04 13 00 48 00 00 00 01  00 06 00 00 00 00 00 00
         00 38 00 00 00 00 00 01  00 00 00 02 00 00 00 00
         00 00 00 00 00 00 00 0a  00 00 00 00 00 00 03 e8
         00 00 00 05 00 00 00 06  00 00 00 00 00 00 00 04
         00 00 00 00 00 00 01 90",
        &mp_rep(
            1,
            MultipartReplyBody::Group(vec![GroupStats {
                group_id: 1,
                ref_count: 2,
                packet_count: 10,
                byte_count: 1000,
                duration_sec: 5,
                duration_nsec: 6,
                bucket_stats: vec![Counts { packet_count: 4, byte_count: 400 }],
            }]),
        ),
    );
    check_wire(
        "04 13 00 48 00 00 00 02  00 09 00 00 00 00 00 00
         00 00 00 01 00 38 00 00  00 00 00 00 00 00 00 03
         00 00 00 00 00 00 00 0a  00 00 00 00 00 00 03 e8
         00 00 00 05 00 00 00 06  00 00 00 00 00 00 00 04
         00 00 00 00 00 00 01 90",
        &mp_rep(
            2,
            MultipartReplyBody::Meter(vec![MeterStats {
                meter_id: 1,
                flow_count: 3,
                packet_in_count: 10,
                byte_in_count: 1000,
                duration_sec: 5,
                duration_nsec: 6,
                band_stats: vec![Counts { packet_count: 4, byte_count: 400 }],
            }]),
        ),
    );
    let qs = QueueStats {
        port_no: 1,
        queue_id: 2,
        tx_bytes: 3,
        tx_packets: 4,
        tx_errors: 5,
        duration_sec: 6,
        duration_nsec: 7,
    };
    assert_eq!(roundtrip(&mp_rep(3, MultipartReplyBody::Queue(vec![qs.clone(), qs]))).len(), 16 + 80);
    let gd = GroupDesc { type_: OFPGT_SELECT, group_id: 4, buckets: vec![bucket(1), bucket(2)] };
    roundtrip(&mp_rep(4, MultipartReplyBody::GroupDesc(vec![gd, GroupDesc::default()])));
    let gf = GroupFeatures { types: 15, capabilities: 1, max_groups: [1, 2, 3, 4], actions: [5, 6, 7, 8] };
    assert_eq!(roundtrip(&mp_rep(5, MultipartReplyBody::GroupFeatures(gf))).len(), 16 + 40);
    let mc = MeterConfig { flags: OFPMF_PKTPS | OFPMF_STATS, meter_id: 2, bands: bands() };
    roundtrip(&mp_rep(6, MultipartReplyBody::MeterConfig(vec![mc, MeterConfig::default()])));
    let mf = MeterFeatures { max_meter: 100, band_types: 6, capabilities: 15, max_bands: 4, max_color: 0 };
    assert_eq!(roundtrip(&mp_rep(7, MultipartReplyBody::MeterFeatures(mf))).len(), 16 + 16);
}

#[test]
fn malformed_groups_meters_and_padding_are_refused() {
    // A meter band of type 3 does not exist.
    let e = decode_err(
        "04 1d 00 20 00 00 00 01  00 00 00 01 00 00 00 01  00 03 00 10 00 00 00 01  00 00 00 01 00 00 00 00",
    );
    assert_eq!(e.reason.code(), ErrorCode::OFPMMFC_BAD_BAND);
    // A drop band longer than 16 bytes.
    let e = decode_err(
        "04 1d 00 28 00 00 00 01  00 00 00 01 00 00 00 01  00 01 00 18 00 00 00 01  00 00 00 01 00 00 00 00
         00 00 00 00 00 00 00 00",
    );
    assert_eq!(e.reason.code(), ErrorCode::OFPBRC_BAD_LEN);
    // A bucket shorter than its header, and one that overruns the message.
    let e = decode_err(
        "04 0f 00 20 00 00 00 01  00 00 00 00 00 00 00 01  00 08 00 00 00 00 00 00  00 00 00 00 00 00 00 00",
    );
    assert_eq!(e.reason.code(), ErrorCode::OFPGMFC_BAD_BUCKET);
    let e = decode_err(
        "04 0f 00 20 00 00 00 01  00 00 00 00 00 00 00 01  00 30 00 00 00 00 00 00  00 00 00 00 00 00 00 00",
    );
    assert_eq!(e.reason.code(), ErrorCode::OFPGMFC_BAD_BUCKET);
    // Nonzero padding in a table-mod, a port-mod and an output action.
    let e = decode_err("04 11 00 10 00 00 00 02  fe 00 01 00 00 00 00 03");
    assert_eq!(e.reason.code(), ErrorCode::OFPBRC_BAD_LEN);
    let mut pm = enc(&msg13(1, Body::PortMod(PortMod::default())));
    pm[36] = 1;
    assert_eq!(decode(&pm).map(|_| ()).map_err(|e| e.reason.code()), Err(ErrorCode::OFPBRC_BAD_LEN));
    let mut go = enc(&msg13(1, Body::GroupMod(GroupMod { buckets: vec![bucket(1)], ..GroupMod::default() })));
    let last = go.len() - 1;
    go[last] = 1;
    assert_eq!(decode(&go).map(|_| ()).map_err(|e| e.reason.code()), Err(ErrorCode::OFPBAC_BAD_LEN));
    // Trailing bytes after a fixed-size request body.
    let e = decode_err("04 12 00 18 00 00 00 01  00 06 00 00 00 00 00 00  00 00 00 01 00 00 00 01");
    assert_eq!(e.reason, Reason::BadLen);
    let e =
        decode_err("04 12 00 1c 00 00 00 01  00 06 00 00 00 00 00 00  00 00 00 01 00 00 00 00 00 00 00 00");
    assert_eq!(e.reason, Reason::BadLen);
    // Queue stats not a whole number of entries.
    let e = decode_err("04 13 00 18 00 00 00 01  00 05 00 00 00 00 00 00  00 00 00 01 00 00 00 02");
    assert_eq!(e.reason, Reason::BadLen);
}

#[test]
fn strings_must_be_nul_padded_utf8() {
    let port = enc(&mp_rep(1, MultipartReplyBody::PortDesc(vec![sample_port(1)])));
    assert!(decode(&port).is_ok());
    let name_at = 16 + 16; // multipart header, then port_no, pad, hw_addr, pad
    for (at, byte) in [(name_at + 15, b'x'), (name_at + 14, b'x'), (name_at, 0xff)] {
        let mut bad = port.clone();
        bad[at] = byte;
        assert_eq!(decode(&bad).map(|_| ()).map_err(|e| e.reason), Err(Reason::BadLen), "byte {at}");
    }
}

#[test]
fn openflow10_stats_and_messages() {
    use super::super::v10::*;
    let m10 =
        |xid, body| Message { version: OFP10_VERSION, xid: Xid(xid), body: super::super::Body::V10(body) };
    for body in [
        StatsRequestBody::Desc,
        StatsRequestBody::Table,
        StatsRequestBody::Aggregate(FlowStatsRequest {
            match_: Match::all(),
            table_id: 0xff,
            out_port: 0xffff,
        }),
        StatsRequestBody::Port { port_no: 0xffff },
        StatsRequestBody::Queue { port_no: 0xfffc, queue_id: 0xffff_ffff },
        StatsRequestBody::Vendor { vendor: 0x2320, data: vec![0, 0, 0, 1] },
    ] {
        roundtrip(&m10(1, Body::StatsRequest(StatsRequest { flags: 0, body })));
    }
    let table = TableStats {
        table_id: 0,
        name: "classifier".into(),
        wildcards: OFPFW_ALL,
        max_entries: 1000,
        active_count: 2,
        lookup_count: 3,
        matched_count: 4,
    };
    let port = PortStats { port_no: 1, counters: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12] };
    let queue = QueueStats { port_no: 1, queue_id: 2, tx_bytes: 3, tx_packets: 4, tx_errors: 5 };
    for (body, len) in [
        (
            StatsReplyBody::Aggregate(crate::ofp::multipart::AggregateStats {
                packet_count: 1,
                byte_count: 2,
                flow_count: 3,
            }),
            24,
        ),
        (StatsReplyBody::Table(vec![table.clone(), table]), 128),
        (StatsReplyBody::Port(vec![port]), 104),
        (StatsReplyBody::Queue(vec![queue.clone(), queue.clone(), queue]), 96),
        (StatsReplyBody::Vendor { vendor: 0x2320, data: vec![1; 12] }, 16),
    ] {
        assert_eq!(roundtrip(&m10(2, Body::StatsReply(StatsReply { flags: 0, body }))).len(), 12 + len);
    }
    roundtrip(&m10(3, Body::QueueGetConfigRequest { port: 1 }));
    let q = PacketQueue { queue_id: 1, port: 0, properties: vec![QueueProp::rate(OFPQT_MIN_RATE, 100)] };
    let bytes = roundtrip(&m10(4, Body::QueueGetConfigReply { port: 1, queues: vec![q.clone(), q] }));
    assert_eq!(bytes.len(), 16 + 2 * 24);
    roundtrip(&m10(5, Body::Vendor { vendor: 0x2320, data: vec![0, 0, 0, 0x10] }));
    // An undefined stats type.
    let e = decode_err("01 10 00 0c 00 00 00 01  00 09 00 00");
    assert_eq!(e.reason.code().wire(OFP10_VERSION), (1, 2));
}

fn port_stats(n: u32) -> PortStats {
    PortStats { port_no: n, rx_packets: u64::from(n), ..PortStats::default() }
}

#[test]
fn long_replies_split_under_64k_with_more_flags() {
    // 1000 port-stats entries of 112 bytes: 112 000 bytes, so two messages.
    let entries: Vec<PortStats> = (0..1000).map(port_stats).collect();
    let msgs =
        split_reply(Xid(9), OFP13_VERSION, MultipartReplyBody::PortStats(entries.clone())).expect("split");
    assert_eq!(msgs.len(), 2);
    let mut back = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        let bytes = roundtrip(m);
        assert!(bytes.len() <= MAX_MESSAGE_LEN);
        assert_eq!(m.xid, Xid(9));
        let Body::MultipartReply(MultipartReply { flags, body: MultipartReplyBody::PortStats(p) }) = &m.body
        else {
            panic!("{m:?}")
        };
        assert_eq!(*flags, if i + 1 < msgs.len() { OFPMPF_MORE } else { 0 });
        back.extend(p.iter().cloned());
    }
    assert_eq!(back, entries);
    // Small and single bodies: one message without the flag; an empty list still answers.
    for body in [
        MultipartReplyBody::PortStats(entries[..3].to_vec()),
        MultipartReplyBody::Flow(vec![]),
        MultipartReplyBody::Desc(Desc::default()),
    ] {
        let msgs = split_reply(Xid(1), OFP13_VERSION, body.clone()).expect("split");
        assert_eq!(msgs, [msg13(1, Body::MultipartReply(MultipartReply { flags: 0, body }))]);
    }
    // Variable-length entries (flows with matches) pack up to the limit.
    let flow = FlowStats {
        match_: super::sample_match(),
        instructions: super::all_instructions(),
        ..FlowStats::default()
    };
    let msgs = split_reply(Xid(2), OFP13_VERSION, MultipartReplyBody::Flow(vec![flow; 2000])).expect("split");
    assert!(msgs.len() > 2);
    let total: usize = msgs
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let len = enc(m).len();
            assert!(len <= MAX_MESSAGE_LEN);
            assert!(i + 1 == msgs.len() || len > MAX_MESSAGE_LEN - 1000, "part {i} is only {len} bytes");
            match &m.body {
                Body::MultipartReply(MultipartReply { body: MultipartReplyBody::Flow(f), .. }) => f.len(),
                _ => 0,
            }
        })
        .sum();
    assert_eq!(total, 2000);
    assert!(split_reply(Xid(1), OFP10_VERSION, MultipartReplyBody::Flow(vec![])).is_err());
}

#[test]
fn long_openflow10_stats_replies_split() {
    use super::super::v10::{PortStats as P10, StatsReply, StatsReplyBody, OFPSF_REPLY_MORE};
    let entries: Vec<P10> = (0..1500).map(|n| P10 { port_no: n, counters: [u64::from(n); 12] }).collect();
    let msgs = split_stats_reply(Xid(4), StatsReplyBody::Port(entries.clone())).expect("split");
    assert_eq!(msgs.len(), 3); // 156 000 bytes
    let mut back = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        assert!(roundtrip(m).len() <= MAX_MESSAGE_LEN);
        let Body::V10(super::super::v10::Body::StatsReply(StatsReply {
            flags,
            body: StatsReplyBody::Port(p),
        })) = &m.body
        else {
            panic!("{m:?}")
        };
        assert_eq!(*flags, if i < 2 { OFPSF_REPLY_MORE } else { 0 });
        back.extend(p.iter().cloned());
    }
    assert_eq!(back, entries);
}

#[test]
fn reason_codes_map_to_the_error_table() {
    assert_eq!(Reason::BadLen.code(), ErrorCode::OFPBRC_BAD_LEN);
    assert_eq!(Reason::BadSetField { code: ErrorCode::OFPBAC_BAD_SET_LEN }.code().v13(), (2, 14));
    assert_eq!(Reason::BadMeterBand { type_: 9 }.code().v13(), (12, 8));
    // A decode error's reply is numbered for the connection's version.
    let e = decode_err("04 0e 00 10 00 00 00 05  00 00 00 00 00 00 00 00");
    let reply = e.reply(OFP10_VERSION);
    let Body::Error(err) = &reply.body else { panic!() };
    assert_eq!((reply.version, reply.xid, err.type_), (OFP10_VERSION, Xid(5), 1));
}
