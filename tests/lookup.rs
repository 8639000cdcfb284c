//! The whole lookup — upcall and translation for the first packet, then megaflow classifier
//! and exact-match cache for the ones after — must pick the same rule as a naive linear scan
//! over the rules by priority. Random overlapping rules from a small field space, random
//! packets, in-memory ports (no root needed), each packet sent three times.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use xdpswitch::datapath::dpif::{DatapathConfig, DpPort};
use xdpswitch::datapath::extract::extract;
use xdpswitch::datapath::flow::FlowKey;
use xdpswitch::netdev::mem::MemPort;
use xdpswitch::netdev::{DpPortNo, Port};
use xdpswitch::ofproto::{parse_flow, FlowSpec, OfAction, PortNames};
use xdpswitch::packet::build::{tcp4, udp4, Tcp4Spec, Udp4Spec};
use xdpswitch::run::{RunOptions, Switch};

const N_PORTS: u32 = 5;

fn random_rule(rng: &mut StdRng) -> String {
    let mut f = vec![format!("priority={}", rng.gen_range(1..4))];
    if rng.gen_bool(0.3) {
        f.push(format!("in_port={}", rng.gen_range(1..3)));
    }
    let l4 = rng.gen_bool(0.5);
    if l4 || rng.gen_bool(0.5) {
        f.push(if l4 { ["tcp", "udp"][rng.gen_range(0..2)].to_string() } else { "ip".to_string() });
        if rng.gen_bool(0.5) {
            let prefix = [24, 31, 32][rng.gen_range(0..3)];
            f.push(format!("nw_dst=10.0.0.{}/{prefix}", rng.gen_range(0..4)));
        }
        if rng.gen_bool(0.3) {
            f.push(format!("nw_src=10.0.1.{}", rng.gen_range(0..2)));
        }
        if l4 && rng.gen_bool(0.6) {
            f.push(format!("tp_dst={}", rng.gen_range(1..4)));
        }
        if l4 && rng.gen_bool(0.3) {
            f.push(format!("tp_src={}", rng.gen_range(1..3)));
        }
    }
    if rng.gen_bool(0.2) {
        f.push(format!("dl_vlan={}", [10, 20][rng.gen_range(0..2)]));
    }
    let action = if rng.gen_bool(0.15) {
        "drop".to_string()
    } else {
        format!("output:{}", rng.gen_range(1..=N_PORTS))
    };
    format!("{},actions={action}", f.join(","))
}

fn random_packet(rng: &mut StdRng, id: u32) -> Vec<u8> {
    let ip = Udp4Spec {
        src_mac: [2, 0, 0, 0, 0, 1],
        dst_mac: [2, 0, 0, 0, 0, 2],
        vlan: [None, Some(10), Some(20)][rng.gen_range(0..3)],
        src_ip: [10, 0, 1, rng.gen_range(0..2)],
        dst_ip: [10, 0, 0, rng.gen_range(0..4)],
        sport: rng.gen_range(1..3),
        dport: rng.gen_range(1..4),
        payload_len: 8,
        ..Default::default()
    };
    let mut f = if rng.gen_bool(0.5) { udp4(&ip) } else { tcp4(&Tcp4Spec { ip, ..Default::default() }) };
    // The packet's id goes in the first 4 payload bytes, right after the L4 header.
    let at = l4_payload(&f);
    f[at..at + 4].copy_from_slice(&id.to_be_bytes());
    f
}

/// Offset of the L4 payload of an IPv4 TCP/UDP frame built above (optionally VLAN-tagged).
fn l4_payload(f: &[u8]) -> usize {
    let l3 = if f[12..14] == [0x81, 0] { 18 } else { 14 };
    l3 + 20 + if f[l3 + 9] == 6 { 20 } else { 8 }
}

fn packet_id(f: &[u8]) -> u32 {
    let at = l4_payload(f);
    u32::from_be_bytes(f[at..at + 4].try_into().unwrap())
}

/// The reference: scan the rules in priority order (ties: the earliest rule), return where the
/// packet goes (`None` for drop; output to the ingress port drops, as in OpenFlow).
fn reference(rules: &[FlowSpec], key: &FlowKey) -> Option<u32> {
    let mut best: Option<&FlowSpec> = None;
    for r in rules {
        if r.matches.matches(key) && best.is_none_or(|b| r.priority > b.priority) {
            best = Some(r);
        }
    }
    let r = best?;
    r.actions.iter().find_map(|a| match a {
        OfAction::Output(p) if *p != key.in_port => Some(*p),
        _ => None,
    })
}

#[test]
fn lookup_agrees_with_a_linear_scan() {
    let mut rng = StdRng::seed_from_u64(0x5eed_1234);
    for round in 0..10 {
        let names: PortNames =
            (1..=N_PORTS).map(|i| (["p1", "p2", "p3", "p4", "p5"][i as usize - 1], i)).collect();
        let text: Vec<String> = (0..rng.gen_range(5..40)).map(|_| random_rule(&mut rng)).collect();
        // An add with the same match and priority as an earlier rule replaces it (OpenFlow).
        let mut rules: Vec<FlowSpec> = Vec::new();
        for l in &text {
            let r = parse_flow(l, &names).expect(l);
            rules.retain(|o| !(o.priority == r.priority && o.matches == r.matches));
            rules.push(r);
        }
        let ports: Vec<MemPort> = (1..=N_PORTS).map(|i| MemPort::new(&format!("p{i}"), 1)).collect();
        for p in &ports {
            p.capture(true);
        }
        let dp_ports = ports
            .iter()
            .enumerate()
            .map(|(i, p)| DpPort { no: DpPortNo(i as u32 + 1), port: Arc::new(p.clone()) as Arc<dyn Port> })
            .collect();
        let opts = RunOptions {
            ports: (1..=N_PORTS).map(|i| format!("p{i}")).collect(),
            flow_text: Some(text.join("\n")),
            ctl_path: std::env::temp_dir().join(format!("xs-lookup-{}-{round}.ctl", std::process::id())),
            datapath: DatapathConfig { emc_insert_inv_prob: 1, ..DatapathConfig::default() },
            ..RunOptions::default()
        };
        let pipeline = xdpswitch::run::load_pipeline(&opts, &names).unwrap();
        let switch = Switch::with_ports(&opts, names, pipeline, dp_ports).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let t = std::thread::spawn(move || switch.serve(&stop2));

        let mut expected: HashMap<u32, Option<u32>> = HashMap::new();
        let mut keys: HashMap<u32, FlowKey> = HashMap::new();
        let mut frames = Vec::new();
        for id in 0..300u32 {
            let f = random_packet(&mut rng, id);
            let in_port = rng.gen_range(1..3u32);
            let mut key = FlowKey::default();
            extract(&f, in_port, &mut key).unwrap();
            expected.insert(id, reference(&rules, &key));
            keys.insert(id, key);
            frames.push((in_port, f));
        }
        let mut want_total = 0;
        for pass in 0..3 {
            for (in_port, f) in &frames {
                while !ports[*in_port as usize - 1].inject(f.clone()) {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            want_total += expected.values().filter(|v| v.is_some()).count();
            // Let the first pass's upcalls settle so later passes take the fast path.
            let deadline = Instant::now() + Duration::from_secs(10);
            while ports.iter().map(|p| p.stats().tx_packets).sum::<u64>() < want_total as u64
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            let _ = pass;
        }
        std::thread::sleep(Duration::from_millis(100));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        t.join().unwrap();

        let mut seen: HashMap<u32, Vec<u32>> = HashMap::new();
        for (i, p) in ports.iter().enumerate() {
            for f in p.take_sent() {
                seen.entry(packet_id(&f)).or_default().push(i as u32 + 1);
            }
        }
        for (id, want) in &expected {
            let got = seen.get(id).cloned().unwrap_or_default();
            let want: Vec<u32> = want.iter().flat_map(|p| [*p, *p, *p]).collect();
            assert_eq!(got, want, "round {round}, packet {id} {:?}: rules:\n{}\n", keys[id], text.join("\n"));
        }
    }
}
