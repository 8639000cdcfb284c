//! The decode property over many inputs, without libFuzzer: for any bytes, `decode` does not
//! panic, and whatever it accepts re-encodes to exactly the bytes it consumed and decodes again
//! to the same message. Inputs: pseudo-random bytes, and mutations of a real message of every
//! type (so the mutations reach deep into each decoder). Also writes the fuzz seed corpus.

use super::super::config::*;
use super::super::group::*;
use super::super::meter::*;
use super::super::msg::*;
use super::super::multipart::*;
use super::super::stats::*;
use super::super::*;
use super::ovs_capture::{
    FEATURES_REPLY, FLOW_REPLY, OVS_OFCTL_CAPTURE, OVS_OFCTL_CAPTURE_OF10, OVS_OFCTL_GROUPS_METERS,
    OVS_OFCTL_OF10_STATS, OVS_OFCTL_TUNNEL_CAPTURE, PORT_DESC_REPLY, TABLE_FEATURES_REPLY,
};
use super::{
    all_actions, all_instructions, hex, mp_rep, mp_req, msg13, sample_match, sample_port,
    sample_table_features,
};

/// Neutron's br-tun learn flow (`table=10,priority=1,actions=learn(...),output:1`) with the
/// learn action exactly as ovs-ofctl 3.1 sent it.
fn neutron_learn_flow_mod() -> Message {
    let learn = super::super::nx::tests::unhex(super::super::nx::tests::NEUTRON_LEARN_13);
    let mut actions = match super::super::action::decode_actions(&learn) {
        Ok(a) => a,
        Err(e) => panic!("the captured learn action does not decode: {e:?}"),
    };
    assert!(matches!(actions[..], [Action::Nicira(super::super::nx::NxAction::Learn(_))]));
    actions.push(Action::Output { port: 1, max_len: 0 });
    let fm = FlowMod {
        table_id: 10,
        priority: 1,
        instructions: vec![Instruction::ApplyActions(actions)],
        ..FlowMod::default()
    };
    msg13(400, Body::FlowMod(fm))
}

/// One message of (nearly) every body, both versions, plus the ovs-ofctl captures (requests
/// it sent, replies it accepted).
pub(super) fn sample_messages() -> Vec<Vec<u8>> {
    let bucket = Bucket { weight: 2, watch_port: 1, watch_group: 2, actions: all_actions() };
    let bands = vec![
        MeterBand::Drop { rate: 1, burst_size: 2 },
        MeterBand::DscpRemark { rate: 3, burst_size: 4, prec_level: 1 },
        MeterBand::Experimenter { rate: 5, burst_size: 6, experimenter: 7, data: vec![8; 8] },
    ];
    let flow_stats =
        FlowStats { match_: sample_match(), instructions: all_instructions(), ..FlowStats::default() };
    let bodies13 = vec![
        Body::Hello(Hello::with_versions(&[1, 4])),
        Body::Error(Error { type_: 1, code: 6, data: vec![4, 0, 0, 8, 0, 0, 0, 1] }),
        Body::EchoRequest(vec![1, 2, 3]),
        Body::FeaturesRequest,
        Body::FeaturesReply(FeaturesReply {
            datapath_id: 1,
            n_buffers: 2,
            n_tables: 3,
            ..FeaturesReply::default()
        }),
        Body::SetConfig(SwitchConfig { flags: 0, miss_send_len: 128 }),
        Body::PacketIn(PacketIn { match_: sample_match(), data: vec![0xab; 60], ..PacketIn::default() }),
        Body::FlowRemoved(FlowRemoved { match_: sample_match(), ..FlowRemoved::default() }),
        Body::PortStatus(PortStatus { reason: 2, desc: sample_port(3) }),
        Body::PacketOut(PacketOut { actions: all_actions(), data: vec![1; 20], ..PacketOut::default() }),
        Body::FlowMod(FlowMod {
            match_: sample_match(),
            instructions: all_instructions(),
            ..FlowMod::default()
        }),
        Body::GroupMod(GroupMod {
            command: 0,
            type_: 1,
            group_id: 1,
            buckets: vec![bucket.clone(), bucket.clone()],
        }),
        Body::PortMod(PortMod { port_no: 1, hw_addr: [1; 6], config: 1, mask: 1, advertise: 0 }),
        Body::TableMod(TableMod { table_id: 1, config: 3 }),
        Body::BarrierRequest,
        Body::QueueGetConfigRequest { port: 1 },
        Body::QueueGetConfigReply(QueueGetConfigReply {
            port: 1,
            queues: vec![PacketQueue {
                queue_id: 1,
                port: 1,
                properties: vec![QueueProp::rate(OFPQT_MAX_RATE, 9)],
            }],
        }),
        Body::RoleRequest(Role { role: 2, generation_id: 9 }),
        Body::GetAsyncRequest,
        Body::SetAsync(AsyncConfig {
            packet_in_mask: [1, 2],
            port_status_mask: [3, 4],
            flow_removed_mask: [5, 6],
        }),
        Body::MeterMod(MeterMod { command: 0, flags: 1, meter_id: 1, bands: bands.clone() }),
        Body::Experimenter(Experimenter { experimenter: 0x2320, exp_type: 1, data: vec![0; 8] }),
    ];
    let mut msgs: Vec<Message> = bodies13.into_iter().enumerate().map(|(i, b)| msg13(i as u32, b)).collect();
    for body in [
        MultipartRequestBody::Desc,
        MultipartRequestBody::Flow(FlowStatsRequest {
            match_: sample_match(),
            ..FlowStatsRequest::default()
        }),
        MultipartRequestBody::PortStats { port_no: 1 },
        MultipartRequestBody::Queue { port_no: 1, queue_id: 2 },
        MultipartRequestBody::Group { group_id: 1 },
        MultipartRequestBody::MeterConfig { meter_id: 1 },
        MultipartRequestBody::TableFeatures(vec![sample_table_features()]),
        MultipartRequestBody::Experimenter(Experimenter { experimenter: 1, exp_type: 2, data: vec![3] }),
    ] {
        msgs.push(mp_req(100, body));
    }
    for body in [
        MultipartReplyBody::Desc(Desc { mfr_desc: "x".into(), dp_desc: "br0".into(), ..Desc::default() }),
        MultipartReplyBody::Flow(vec![flow_stats]),
        MultipartReplyBody::Aggregate(AggregateStats { packet_count: 1, byte_count: 2, flow_count: 3 }),
        MultipartReplyBody::Table(vec![TableStats { table_id: 1, ..TableStats::default() }]),
        MultipartReplyBody::PortStats(vec![PortStats { port_no: 1, ..PortStats::default() }]),
        MultipartReplyBody::PortDesc(vec![sample_port(1), sample_port(2)]),
        MultipartReplyBody::TableFeatures(vec![sample_table_features()]),
        MultipartReplyBody::Queue(vec![QueueStats { port_no: 1, ..QueueStats::default() }]),
        MultipartReplyBody::Group(vec![GroupStats {
            group_id: 1,
            bucket_stats: vec![Counts::default()],
            ..GroupStats::default()
        }]),
        MultipartReplyBody::GroupDesc(vec![GroupDesc { type_: 0, group_id: 1, buckets: vec![bucket] }]),
        MultipartReplyBody::GroupFeatures(GroupFeatures { types: 15, ..GroupFeatures::default() }),
        MultipartReplyBody::Meter(vec![MeterStats {
            meter_id: 1,
            band_stats: vec![Counts::default()],
            ..MeterStats::default()
        }]),
        MultipartReplyBody::MeterConfig(vec![MeterConfig { flags: 1, meter_id: 1, bands }]),
        MultipartReplyBody::MeterFeatures(MeterFeatures { max_meter: 1, ..MeterFeatures::default() }),
    ] {
        msgs.push(mp_rep(200, body));
    }
    let v10 = |body| Message { version: OFP10_VERSION, xid: Xid(300), body: Body::V10(body) };
    msgs.push(v10(v10::Body::PortMod(v10::PortMod { port_no: 1, ..v10::PortMod::default() })));
    msgs.push(v10(v10::Body::StatsRequest(v10::StatsRequest {
        flags: 0,
        body: v10::StatsRequestBody::Queue { port_no: 1, queue_id: 1 },
    })));
    let table = v10::TableStats { name: "t".into(), ..v10::TableStats::default() };
    msgs.push(v10(v10::Body::StatsReply(v10::StatsReply {
        flags: 0,
        body: v10::StatsReplyBody::Table(vec![table]),
    })));
    let q = PacketQueue { queue_id: 1, port: 0, properties: vec![QueueProp::rate(OFPQT_MIN_RATE, 1)] };
    msgs.push(v10(v10::Body::QueueGetConfigReply { port: 1, queues: vec![q] }));
    msgs.push(neutron_learn_flow_mod());
    let mut out: Vec<Vec<u8>> = msgs.iter().map(super::enc).collect();
    out.extend(
        OVS_OFCTL_CAPTURE
            .iter()
            .chain(OVS_OFCTL_CAPTURE_OF10)
            .chain(OVS_OFCTL_GROUPS_METERS)
            .chain(OVS_OFCTL_OF10_STATS)
            .chain(OVS_OFCTL_TUNNEL_CAPTURE)
            .chain(&[FEATURES_REPLY, TABLE_FEATURES_REPLY, PORT_DESC_REPLY, FLOW_REPLY])
            .map(|h| hex(h)),
    );
    out
}

/// The property itself; panics (with the input) if it does not hold.
pub(crate) fn check_decode_property(input: &[u8]) {
    let Ok(Decoded::Message { msg, len }) = decode(input) else { return };
    let mut again = Vec::new();
    encode(&msg, &mut again)
        .unwrap_or_else(|e| panic!("{msg:?} decoded but does not encode: {e}; input {input:02x?}"));
    assert_eq!(again, input[..len], "re-encoding differs for {msg:?}");
    assert_eq!(decode(&again), Ok(Decoded::Message { msg, len }));
}

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One random change to `m`: flip, set, insert or remove bytes, then maybe fix the header's
/// length so the decoder goes past framing.
fn mutate(rng: &mut Rng, m: &mut Vec<u8>) {
    for _ in 0..=rng.below(3) {
        let at = rng.below(m.len());
        match rng.below(6) {
            0 => m[at] ^= 1 << rng.below(8),
            1 => m[at] = rng.next() as u8,
            2 => m[at] = [0, 0xff, 1, 8, 0x80][rng.below(5)],
            3 => m.insert(at, rng.next() as u8),
            4 if m.len() > 8 => {
                m.remove(at);
            }
            _ => m.truncate(at.max(8)),
        }
    }
    if rng.below(4) != 0 && m.len() >= 4 {
        let len = u16::try_from(m.len()).unwrap_or(u16::MAX);
        m[2..4].copy_from_slice(&len.to_be_bytes());
    }
}

#[test]
fn every_sample_decodes_and_reencodes_exactly() {
    for s in sample_messages() {
        assert!(matches!(decode(&s), Ok(Decoded::Message { len, .. }) if len == s.len()), "{s:02x?}");
        check_decode_property(&s);
    }
}

#[test]
fn decode_property_over_random_and_mutated_inputs() {
    let samples = sample_messages();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut accepted = 0;
    for _ in 0..3000 {
        let mut m = samples[rng.below(samples.len())].clone();
        mutate(&mut rng, &mut m);
        check_decode_property(&m);
        accepted += usize::from(matches!(decode(&m), Ok(Decoded::Message { .. })));
    }
    for _ in 0..2000 {
        let len = 8 + rng.below(120);
        let mut m: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        m[0] = [1, 4, 4, 2][rng.below(4)];
        m[1] %= 32;
        m[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        check_decode_property(&m);
    }
    // The mutations must not all be rejected, or the test proves little.
    assert!(accepted > 300, "only {accepted} mutated messages decoded");
}

/// `cargo test --lib write_fuzz_seed_corpus -- --ignored` refreshes `fuzz/seeds/`.
#[test]
#[ignore]
fn write_fuzz_seed_corpus() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    for target in ["decode", "channel"] {
        std::fs::create_dir_all(root.join(target)).expect("mkdir");
    }
    let samples = sample_messages();
    for (i, s) in samples.iter().enumerate() {
        std::fs::write(root.join("decode").join(format!("sample-{i:03}")), s).expect("write");
    }
    // The channel target reads (chunk length, time step, bytes) records; a conversation of
    // HELLO then every sample, fed in 50-byte chunks.
    let mut convo = Vec::new();
    let mut stream = msg13_hello();
    samples.iter().for_each(|s| stream.extend_from_slice(s));
    for chunk in stream.chunks(50) {
        convo.push(chunk.len() as u8);
        convo.push(1);
        convo.extend_from_slice(chunk);
    }
    std::fs::write(root.join("channel").join("conversation"), convo).expect("write");
}

fn msg13_hello() -> Vec<u8> {
    super::enc(&msg13(1, Body::Hello(Hello::with_versions(&[1, 4]))))
}
