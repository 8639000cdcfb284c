//! End to end: every resource limit hit by real traffic or a real OpenFlow client, with small
//! bounds. Each test checks that the switch keeps forwarding, that `xdpswitch ctl limits
//! --json` shows the limit's value and its hits, and that the log has exactly one
//! "limit reached" line for it (later hits are summarised at most every 10 s).
//!
//! Run as root: `cargo test --release --test limits -- --test-threads=1`.

mod support;

use std::time::Duration;

use support::dut::{free_port, skip_unless_tools, Kind};
use support::ofraw::OfRaw;
use support::*;
use xdpswitch::netns::Host;
use xdpswitch::ofp::{Body, SwitchConfig, OFP13_VERSION};

/// Hits of `limit` (summed over bridges) and its value, from `limits --json`.
fn limit(sw: &SwitchProc, limit: &str) -> (u64, u64) {
    let v = sw.ctl_json(&["limits"]);
    let rows: Vec<&serde_json::Value> =
        v.as_array().expect("a list").iter().filter(|r| r["limit"] == limit).collect();
    assert!(!rows.is_empty(), "no {limit} in {v}");
    (rows.iter().map(|r| r["hits"].as_u64().unwrap()).sum(), rows[0]["value"].as_u64().unwrap())
}

/// Waits (up to 5 s: the control thread reads the counters once a second) for the log line
/// of `option` being reached, and checks it is there exactly once.
fn logged_once(sw: &SwitchProc, option: &str) -> String {
    let needle = format!("limit reached: {option} ");
    let line = eventually(5, &needle, || sw.log().lines().find(|l| l.contains(&needle)).map(String::from));
    let n = sw.log().lines().filter(|l| l.contains(&needle)).count();
    assert_eq!(n, 1, "one line when first hit:\n{}", sw.log());
    line
}

/// Python in `host`: `count` datagrams to `dst:dport`, each from a fresh socket (a new
/// source port each time), `gap_ms` apart (0: as fast as possible).
fn udp_from_many_ports(host: &Host, dst: &str, dport: u16, count: usize, gap_ms: u32) {
    let code = format!(
        "import socket,time\n\
         for i in range({count}):\n\
         \x20 s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
         \x20 s.sendto(bytes(32),('{dst}',{dport})); s.close()\n\
         \x20 if {gap_ms}: time.sleep({gap_ms}/1000)\n"
    );
    host.exec(&["python3", "-c", &code]).expect("python3 sender");
}

/// Two hosts with neighbour entries.
fn pair() -> Vec<Host> {
    let h = hosts(2, 1);
    neighbours(&h[0], &h[1]).unwrap();
    h
}

/// How many of `count` datagrams of one flow from h0 reach h1: the first alone (its miss
/// installs the megaflow), the rest 300 ms later.
fn forwards(h: &[Host], dport: u16, count: usize) -> usize {
    let rx = udp_receiver(&h[1], dport, count, 3.0);
    udp_send(&h[0], h[1].addr(), dport, 41000, 1, 64);
    std::thread::sleep(Duration::from_millis(300));
    udp_send(&h[0], h[1].addr(), dport, 41000, count - 1, 64);
    receiver_lines(rx).len()
}

const PORT_TO_PORT: &str = "in_port=1,actions=output:2\nin_port=2,actions=output:1\n";

#[test]
fn max_flows_refuses_adds_with_table_full_and_keeps_forwarding() {
    if skip_unless_root() || skip_unless_tools(Kind::Xdpswitch) {
        return;
    }
    let h = pair();
    let port = free_port();
    let listen = format!("ptcp:{port}");
    let sw = SwitchProc::start_logged(
        &[&h[0].sw_if, &h[1].sw_if],
        PORT_TO_PORT,
        &["--listen", &listen, "--max-flows", "3"],
    );
    let target = format!("tcp:127.0.0.1:{port}");
    let ofctl = |of: &str, flow: &str| {
        std::process::Command::new("ovs-ofctl").args(["-O", of, "add-flow", &target, flow]).output().unwrap()
    };
    // One more fits; the next does not, in either version, with that version's code.
    assert!(ofctl("OpenFlow13", "priority=5,udp,tp_dst=1,actions=drop").status.success());
    let out = ofctl("OpenFlow13", "priority=5,udp,tp_dst=2,actions=drop");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("OFPFMFC_TABLE_FULL"), "{err}");
    let out = ofctl("OpenFlow10", "priority=5,udp,tp_dst=3,actions=drop");
    let err = String::from_utf8_lossy(&out.stderr);
    // ovs-ofctl names OpenFlow 1.0's (3, 0), OFPFMFC_ALL_TABLES_FULL, as 1.3's TABLE_FULL; the
    // numbers on the wire are checked by the unit tests of the table and of ofp::errcode.
    assert!(!out.status.success() && err.contains("OFPFMFC_TABLE_FULL") && err.contains("01 0e"), "{err}");
    // Nothing else changed: three rules, the refused ones absent; another table takes rules;
    // replacing a rule in the full table is allowed.
    let flows = sw.ctl(&["dump-flows"]);
    assert_eq!(flows.lines().filter(|l| l.contains("actions=")).count(), 3, "{flows}");
    assert!(!flows.contains("tp_dst=2") && !flows.contains("tp_dst=3"), "{flows}");
    assert!(ofctl("OpenFlow13", "table=1,priority=5,udp,actions=drop").status.success());
    assert!(ofctl("OpenFlow13", "priority=5,udp,tp_dst=1,actions=output:2").status.success());
    assert_eq!(forwards(&h, 7000, 50), 50, "forwarding with a full table");
    assert_eq!(limit(&sw, "flows-per-table"), (2, 3));
    let line = logged_once(&sw, "--max-flows");
    assert!(line.contains("--max-flows 3 hit") && line.contains("OFPFMFC_TABLE_FULL"), "{line}");
    assert!(sw.ctl(&["pmd-stats"]).contains("flow adds refused (table full) 2"));
}

#[test]
fn max_megaflows_keeps_forwarding_through_the_slow_path() {
    if skip_unless_root() {
        return;
    }
    let h = pair();
    // A rule on the source port puts it in every megaflow's mask: one megaflow per source
    // port. Offload off: the kernel's copies are bounded separately.
    let flows = "priority=20,udp,tp_src=1,actions=drop\npriority=10,in_port=1,actions=output:2\n\
                 priority=10,in_port=2,actions=output:1\n";
    let sw = SwitchProc::start_logged(
        &[&h[0].sw_if, &h[1].sw_if],
        flows,
        &["--max-megaflows", "8", "--offload", "off"],
    );
    let rx = udp_receiver(&h[1], 7000, 200, 5.0);
    udp_from_many_ports(&h[0], h[1].addr(), 7000, 200, 1);
    assert_eq!(receiver_lines(rx).len(), 200, "every datagram forwarded, installed or not");
    let n = sw.ctl(&["dump-megaflows"]).lines().count();
    assert!(n <= 8, "{n} megaflows");
    let (hits, value) = limit(&sw, "megaflows");
    assert_eq!(value, 8);
    assert!(hits >= 150, "{hits} hits");
    let line = logged_once(&sw, "--max-megaflows");
    assert!(line.contains("slow path"), "{line}");
}

#[test]
fn mac_table_size_evicts_and_keeps_forwarding() {
    if skip_unless_root() || skip_unless_af_packet() {
        return;
    }
    let h = pair();
    let sw = SwitchProc::start_logged(
        &[&h[0].sw_if, &h[1].sw_if],
        "",
        &["--fail-mode", "standalone", "--mac-table-size", "16"],
    );
    l2::flood_random_sources(&h[0], 300);
    let (hits, value) = eventually(5, "MAC evictions", || {
        let (hits, value) = limit(&sw, "mac-entries");
        (hits >= 250).then_some((hits, value))
    });
    assert_eq!(value, 16);
    assert!(hits <= 300, "{hits}");
    assert!(eventually_pings(&h[0], &h[1], 10), "NORMAL forwards with a full MAC table");
    let n = sw.ctl_json(&["fdb-stats"]);
    eprintln!("fdb stats: {n}");
    logged_once(&sw, "--mac-table-size");
}

#[test]
fn upcall_queue_drops_misses_counts_them_and_recovers() {
    if skip_unless_root() {
        return;
    }
    let h = pair();
    let flows = "priority=20,udp,tp_src=1,actions=drop\npriority=10,in_port=1,actions=output:2\n\
                 priority=10,in_port=2,actions=output:1\n";
    let sw = SwitchProc::start_logged(
        &[&h[0].sw_if, &h[1].sw_if],
        flows,
        &["--upcall-queue", "1", "--offload", "off"],
    );
    // A burst of new flows, each a miss: a queue of one overflows.
    udp_from_many_ports(&h[0], h[1].addr(), 7000, 2000, 0);
    let (hits, value) = eventually(5, "upcall drops", || {
        let (hits, value) = limit(&sw, "upcall-queue");
        (hits > 0).then_some((hits, value))
    });
    assert_eq!(value, 1);
    let stats = sw.ctl_json(&["pmd-stats"]);
    assert_eq!(pmd_sum(&stats, "upcall_dropped"), hits, "{stats}");
    // Still forwarding: one flow, paced, goes through.
    assert_eq!(forwards(&h, 7001, 20), 20);
    logged_once(&sw, "--upcall-queue");
}

/// A switch sending every UDP datagram from h0 to h1 and to the controller (a raw client that
/// asked for packet-ins), with `extra` options; sends `n` datagrams in a burst and returns
/// (datagrams received by h1, packet-ins received, the switch).
fn packet_ins_under_a_flood(h: &[Host], extra: &[&str], n: usize) -> (usize, usize, SwitchProc) {
    let port = free_port();
    let listen = format!("ptcp:{port}");
    let flows = "priority=10,in_port=1,udp,actions=output:2,CONTROLLER:64\n\
                 priority=10,in_port=2,actions=output:1\n";
    let mut args = vec!["--listen", listen.as_str(), "--offload", "off"];
    args.extend(extra);
    let sw = SwitchProc::start_logged(&[&h[0].sw_if, &h[1].sw_if], flows, &args);
    let mut c = OfRaw::connect(([127, 0, 0, 1], port).into(), &[OFP13_VERSION]);
    // A service connection gets packet-ins once it sets a miss_send_len.
    c.send(Body::SetConfig(SwitchConfig { flags: 0, miss_send_len: 128 }));
    c.barrier();
    let rx = udp_receiver(&h[1], 7000, n, 5.0);
    udp_send(&h[0], h[1].addr(), 7000, 40000, n, 64);
    let got = receiver_lines(rx).len();
    let pins =
        c.collect(Duration::from_secs(2)).iter().filter(|m| matches!(m.body, Body::PacketIn(_))).count();
    (got, pins, sw)
}

#[test]
fn packet_in_queue_drops_copies_not_forwarding() {
    if skip_unless_root() {
        return;
    }
    let h = pair();
    let (got, pins, sw) =
        packet_ins_under_a_flood(&h, &["--packet-in-queue", "2", "--packet-in-rate", "100000"], 3000);
    assert_eq!(got, 3000, "forwarding never waits for the controller");
    let (hits, value) = limit(&sw, "packet-in-queue");
    eprintln!("packet-ins {pins}, queue drops {hits}");
    assert_eq!(value, 2);
    assert!(hits > 0 && pins > 0, "{hits} drops, {pins} packet-ins");
    assert_eq!(pins as u64 + hits, 3000, "each copy either sent or counted dropped");
    logged_once(&sw, "--packet-in-queue");
}

#[test]
fn packet_in_rate_drops_packet_ins_not_forwarding() {
    if skip_unless_root() {
        return;
    }
    let h = pair();
    let (got, pins, sw) =
        packet_ins_under_a_flood(&h, &["--packet-in-queue", "4096", "--packet-in-rate", "20"], 3000);
    assert_eq!(got, 3000, "forwarding never waits for the controller");
    let (rate_hits, rate) = limit(&sw, "packet-in-rate");
    let (queue_hits, _) = limit(&sw, "packet-in-queue");
    eprintln!("packet-ins {pins}, rate drops {rate_hits}, queue drops {queue_hits}");
    assert_eq!(rate, 20);
    // A burst of a second's worth (20) passes, then a few as tokens come back.
    assert!((20..100).contains(&pins), "{pins} packet-ins");
    assert_eq!(pins as u64 + rate_hits + queue_hits, 3000, "each copy either sent or counted dropped");
    logged_once(&sw, "--packet-in-rate");
}
