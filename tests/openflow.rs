//! End to end over OpenFlow: `ovs-ofctl` against the switch's passive listener, in OpenFlow
//! 1.0 and 1.3, with hosts in namespaces confirming what the flows say. The same tests run
//! against Open vSwitch 3.1 in userspace mode with `XS_DUT=ovs` (the reference).
//!
//! Assertions are about behaviour both switches share: fields present, counters, actions as
//! ovs-ofctl prints them, errors by OpenFlow type and code, and traffic.

mod support;

use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::dut::{skip_unless_tools, Dut, DutOptions, Kind, Of};
use support::*;

const BOTH: [Of; 2] = [Of::V10, Of::V13];

/// Root and ovs-ofctl, or a printed reason to skip.
fn skip() -> bool {
    skip_unless_root() || skip_unless_tools(Kind::from_env())
}

/// `n` hosts with static neighbour entries between every pair, and a switch over them.
fn setup(n: usize) -> (Vec<Host>, Dut) {
    let h = hosts(n, 1);
    for i in 0..n {
        for j in i + 1..n {
            neighbours(&h[i], &h[j]).unwrap();
        }
    }
    let ports: Vec<&str> = h.iter().map(|x| x.sw_if.as_str()).collect();
    let dut = Dut::start(&ports, &DutOptions::default());
    (h, dut)
}

/// The lines of port `n` in `show`/`dump-ports-desc` output (from ` n(` to the next port).
fn port_block(text: &str, n: u32) -> String {
    let head = format!(" {n}(");
    let mut out = String::new();
    let mut inside = false;
    for l in text.lines() {
        if l.starts_with(' ') && !l.starts_with("  ") && l.contains("): addr:") {
            inside = l.starts_with(&head);
        }
        if inside {
            out.push_str(l);
            out.push('\n');
        }
    }
    assert!(!out.is_empty(), "no port {n} in {text}");
    out
}

/// UDP datagrams `from` → `to` on `dport` that arrive (of `count` sent).
fn udp_delivered(from: &Host, to: &Host, dport: u16, count: usize) -> usize {
    let rx = udp_receiver(to, dport, count, 1.5);
    udp_send(from, to.addr(), dport, 40000 + dport % 1000, count, 32);
    receiver_lines(rx).len()
}

/// The value of the first `key=N` (or `key:N`) in ovs-ofctl output; `key` may hold spaces
/// (`rx pkts`).
fn num(text: &str, key: &str) -> u64 {
    let found = text.match_indices(key).find_map(|(i, _)| {
        let before = text[..i].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            return None;
        }
        let rest = text[i + key.len()..].strip_prefix(['=', ':'])?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    });
    found.unwrap_or_else(|| panic!("no {key} in {text:?}"))
}

/// The flow line containing every needle.
fn flow<'a>(flows: &'a [String], needles: &[&str]) -> &'a str {
    flows
        .iter()
        .find(|l| needles.iter().all(|n| l.contains(n)))
        .unwrap_or_else(|| panic!("no flow with {needles:?} in {flows:#?}"))
}

const PORT_TO_PORT: &str = "priority=10,in_port=1,actions=output:2\npriority=10,in_port=2,actions=output:1\n";

#[test]
fn show_describes_switch_tables_and_ports() {
    if skip() {
        return;
    }
    let (h, dut) = setup(2);
    for of in BOTH {
        let show = dut.ofctl(of, "show", &[]);
        assert!(show.contains("dpid:") && show.contains("n_tables:"), "{of:?}: {show}");
        assert!(show.contains(&format!(" 1({}): addr:", h[0].sw_if)), "{of:?}: {show}");
        assert!(show.contains(&format!(" 2({}): addr:", h[1].sw_if)), "{of:?}: {show}");
        assert!(show.contains(&format!(" LOCAL({}): addr:", dut.bridge)), "{of:?}: {show}");
        assert!(num(&show, "n_tables") >= 1, "{show}");

        let desc = dut.ofctl(of, "dump-desc", &[]);
        for f in ["Manufacturer:", "Hardware:", "Software:", "Serial Num:", "DP Description:"] {
            assert!(desc.contains(f), "{of:?}: {f} missing in {desc}");
        }

        let ports = dut.ofctl(of, "dump-ports-desc", &[]);
        for (i, x) in h.iter().enumerate() {
            assert!(ports.contains(&format!(" {}({}): addr:", i + 1, x.sw_if)), "{of:?}: {ports}");
        }
        assert!(ports.contains(&format!("LOCAL({})", dut.bridge)), "{of:?}: {ports}");
        // Port 1's MAC is the root-side veth's.
        let mac = std::fs::read_to_string(format!("/sys/class/net/{}/address", h[0].sw_if)).unwrap();
        assert!(ports.contains(mac.trim()), "{of:?}: {ports}");

        let stats = dut.ofctl(of, "dump-ports", &[]);
        assert!(
            stats.contains("port  1: rx pkts=") && stats.contains("port  2: rx pkts="),
            "{of:?}: {stats}"
        );
        let one = dut.ofctl(of, "dump-ports", &["2"]);
        assert!(one.contains("port  2:") && !one.contains("port  1:"), "{of:?}: {one}");

        let tables = dut.ofctl(of, "dump-tables", &[]);
        assert!(tables.contains("table 0") || tables.contains("  0:"), "{of:?}: {tables}");
        assert!(tables.contains("active=0"), "{of:?}: {tables}");
    }
    let features = dut.ofctl(Of::V13, "dump-table-features", &[]);
    assert!(features.contains("table 0") && features.contains("max_entries="), "{features}");
    // Table 0 has the required properties: what it matches and which instructions it takes.
    assert!(features.contains("instructions") && features.contains("apply_actions"), "{features}");
}

#[test]
fn flows_forward_drop_and_count() {
    if skip() {
        return;
    }
    let (h, dut) = setup(2);
    for of in BOTH {
        dut.ofctl(of, "del-flows", &[]);
        assert!(!pings(&h[0], &h[1]), "{of:?}: no flows, yet traffic passed");

        dut.add_flows(of, &format!("priority=20,udp,tp_dst=9,actions=drop\n{PORT_TO_PORT}"));
        let before = dut.ofctl(of, "dump-ports", &["1"]);
        let rx_before = num(&before, "rx pkts");
        assert!(eventually_pings(&h[0], &h[1], 10), "{of:?}: in_port flows don't forward");
        assert_eq!(udp_delivered(&h[0], &h[1], 9, 4), 0, "{of:?}: drop rule let traffic through");
        assert_eq!(udp_delivered(&h[0], &h[1], 10, 3), 3, "{of:?}");

        // Counters may be credited a little after the traffic (OVS: every ~0.5 s).
        let flows = eventually(15, "flow counters", || {
            let flows = dut.flows(of, &[]);
            let n = |needles: &[&str]| num(flow(&flows, needles), "n_packets");
            (n(&["tp_dst=9"]) >= 4 && n(&["in_port=1"]) >= 2 + 3 && n(&["in_port=2"]) >= 2).then_some(flows)
        });
        assert_eq!(flows.len(), 3, "{flows:#?}");
        let drop = flow(&flows, &["tp_dst=9"]);
        assert_eq!(num(drop, "n_packets"), 4, "{drop}");
        assert!(num(drop, "n_bytes") >= 4 * (14 + 20 + 8 + 32), "{drop}");
        assert!(drop.contains("priority=20") && drop.contains("actions=drop"), "{drop}");
        let fwd = flow(&flows, &["in_port=1", "actions=output:2"]);
        assert!(fwd.contains("priority=10") && fwd.contains("table=0") && fwd.contains("duration="), "{fwd}");
        flow(&flows, &["in_port=2", "actions=output:1"]);

        let agg = dut.ofctl(of, "dump-aggregate", &[]);
        assert_eq!(num(&agg, "flow_count"), 3, "{agg}");
        assert!(num(&agg, "packet_count") >= 4 + 5 + 2, "{agg}");
        let agg = dut.ofctl(of, "dump-aggregate", &["udp"]);
        assert_eq!(num(&agg, "flow_count"), 1, "{agg}");

        eventually(15, "port 1 rx counter", || {
            let after = dut.ofctl(of, "dump-ports", &["1"]);
            (num(&after, "rx pkts") >= rx_before + 4 + 3 + 2).then_some(())
        });
        let tables = dut.ofctl(of, "dump-tables", &[]);
        assert!(tables.contains("active=3"), "{of:?}: {tables}");
    }
}

#[test]
fn add_flows_mod_flows_and_del_flows() {
    if skip() {
        return;
    }
    let (h, dut) = setup(3);
    for of in BOTH {
        dut.ofctl(of, "del-flows", &[]);
        dut.add_flows(
            of,
            "cookie=0x11,priority=10,in_port=1,actions=output:2\n\
             cookie=0x12,priority=10,in_port=2,actions=output:1\n\
             cookie=0x21,priority=30,udp,in_port=1,tp_dst=5000,actions=output:3\n\
             cookie=0x22,priority=31,udp,in_port=1,tp_dst=5000,actions=drop\n\
             cookie=0x31,priority=5,ip,nw_dst=198.18.0.3,actions=output:3\n",
        );
        let flows = dut.flows(of, &[]);
        assert_eq!(flows.len(), 5, "{flows:#?}");
        let f = flow(&flows, &["cookie=0x21"]);
        assert!(f.contains("priority=30") && f.contains("udp") && f.contains("tp_dst=5000"), "{f}");
        assert!(f.contains("in_port=1") && f.contains("actions=output:3"), "{f}");
        assert_eq!(udp_delivered(&h[0], &h[2], 5000, 2), 0, "{of:?}: priority 31 drops");

        // mod-flows (not strict) changes the actions of every matching rule and keeps counters.
        dut.ofctl(of, "mod-flows", &["udp,tp_dst=5000,actions=output:3"]);
        let flows = dut.flows(of, &["udp"]);
        assert_eq!(flows.len(), 2, "{flows:#?}");
        assert!(flows.iter().all(|l| l.contains("actions=output:3")), "{flows:#?}");
        eventually(15, "the dropped packets' count", || {
            (num(flow(&dut.flows(of, &["udp"]), &["priority=31"]), "n_packets") == 2).then_some(())
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while udp_delivered(&h[0], &h[2], 5000, 2) != 2 {
            assert!(Instant::now() < deadline, "{of:?}: mod-flows did not take effect");
        }

        // mod-flows --strict touches only the exact match and priority.
        dut.ofctl(of, "mod-flows", &["--strict", "priority=31,udp,in_port=1,tp_dst=5000,actions=drop"]);
        let flows = dut.flows(of, &["udp"]);
        assert!(flow(&flows, &["priority=31"]).contains("actions=drop"), "{flows:#?}");
        assert!(flow(&flows, &["priority=30"]).contains("actions=output:3"), "{flows:#?}");

        // del-flows --strict: only the rule with that exact match and priority.
        dut.ofctl(of, "del-flows", &["--strict", "priority=31,udp,in_port=1,tp_dst=5000"]);
        let flows = dut.flows(of, &[]);
        assert_eq!(flows.len(), 4, "{flows:#?}");
        assert!(!flows.iter().any(|l| l.contains("priority=31")), "{flows:#?}");

        // del-flows with out_port: only rules that output to that port.
        dut.ofctl(of, "del-flows", &["out_port=3"]);
        let flows = dut.flows(of, &[]);
        assert_eq!(flows.len(), 2, "{flows:#?}");
        assert!(flows.iter().all(|l| !l.contains("output:3")), "{flows:#?}");

        // Non-strict del-flows removes every rule the match covers.
        dut.add_flows(of, "cookie=0x41,priority=40,in_port=1,udp,actions=drop\n");
        dut.ofctl(of, "del-flows", &["in_port=1"]);
        let flows = dut.flows(of, &[]);
        assert_eq!(flows.len(), 1, "{flows:#?}");
        assert!(flows[0].contains("cookie=0x12"), "{flows:#?}");

        if of == Of::V13 {
            // cookie/mask (OpenFlow 1.1+): delete and dump by cookie bits.
            dut.add_flows(
                of,
                "cookie=0x110,priority=50,udp,tp_dst=1,actions=drop\n\
                 cookie=0x120,priority=50,udp,tp_dst=2,actions=drop\n\
                 cookie=0x210,priority=50,udp,tp_dst=3,actions=drop\n",
            );
            let picked = dut.flows(of, &["cookie=0x100/0xf00"]);
            assert_eq!(picked.len(), 2, "{picked:#?}\n{}", dut.ofctl(of, "dump-flows", &[]));
            // 0x110, 0x210 and the older 0x12 have 0x010 under the mask; 0x120 does not.
            dut.ofctl(of, "del-flows", &["cookie=0x010/0x0f0"]);
            let flows = dut.flows(of, &[]);
            assert_eq!(flows.len(), 1, "{flows:#?}");
            assert!(flows[0].contains("cookie=0x120,"), "{flows:#?}");
        }
    }
}

#[test]
fn mod_port_down_up_and_no_flood() {
    if skip() {
        return;
    }
    let (h, dut) = setup(3);
    for of in BOTH {
        dut.ofctl(of, "del-flows", &[]);
        dut.add_flows(of, PORT_TO_PORT);
        assert!(eventually_pings(&h[0], &h[1], 10), "{of:?}");
        dut.ofctl(of, "mod-port", &["2", "down"]);
        let desc = port_block(&dut.ofctl(of, "dump-ports-desc", &[]), 2);
        assert!(desc.contains("PORT_DOWN"), "{of:?}: {desc}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while pings(&h[0], &h[1]) {
            assert!(Instant::now() < deadline, "{of:?}: a port that is down still forwards");
        }
        dut.ofctl(of, "mod-port", &["2", "up"]);
        let desc = port_block(&dut.ofctl(of, "dump-ports-desc", &[]), 2);
        assert!(!desc.contains("PORT_DOWN"), "{of:?}: {desc}");
        assert!(eventually_pings(&h[0], &h[1], 10), "{of:?}: port up again does not forward");
    }

    // FLOOD skips the ingress port and ports marked no-flood (an OpenFlow 1.0 port flag).
    let of = Of::V10;
    dut.ofctl(of, "del-flows", &[]);
    dut.add_flows(of, "priority=10,in_port=1,actions=FLOOD\n");
    let deadline = Instant::now() + Duration::from_secs(10);
    while udp_delivered(&h[0], &h[1], 6001, 1) + udp_delivered(&h[0], &h[2], 6001, 1) != 2 {
        assert!(Instant::now() < deadline, "FLOOD does not reach ports 2 and 3");
    }
    dut.ofctl(of, "mod-port", &["3", "no-flood"]);
    let desc = port_block(&dut.ofctl(of, "dump-ports-desc", &[]), 3);
    assert!(desc.contains("NO_FLOOD"), "{desc}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while udp_delivered(&h[0], &h[2], 6002, 1) != 0 {
        assert!(Instant::now() < deadline, "FLOOD still reaches a no-flood port");
    }
    assert_eq!(udp_delivered(&h[0], &h[1], 6002, 2), 2);
    dut.ofctl(of, "mod-port", &["3", "flood"]);
    let desc = port_block(&dut.ofctl(of, "dump-ports-desc", &[]), 3);
    assert!(!desc.contains("NO_FLOOD"), "{desc}");
}

#[test]
fn groups_of_each_type() {
    if skip() {
        return;
    }
    let (h, dut) = setup(3);
    let of = Of::V13;
    dut.ofctl(of, "add-group", &["group_id=1,type=all,bucket=output:2,bucket=output:3"]);
    dut.ofctl(
        of,
        "add-group",
        &["group_id=2,type=select,bucket=weight:100,output:2,bucket=weight:100,output:3"],
    );
    dut.ofctl(of, "add-group", &["group_id=3,type=indirect,bucket=output:3"]);
    dut.ofctl(
        of,
        "add-group",
        &["group_id=4,type=ff,bucket=watch_port:2,output:2,bucket=watch_port:3,output:3"],
    );
    let groups = dut.ofctl(of, "dump-groups", &[]);
    for (id, ty) in [(1, "all"), (2, "select"), (3, "indirect"), (4, "ff")] {
        let line = groups
            .lines()
            .find(|l| l.contains(&format!("group_id={id},")))
            .unwrap_or_else(|| panic!("no group {id} in {groups}"));
        assert!(line.contains(&format!("type={ty}")), "{line}");
        assert!(line.contains("bucket="), "{line}");
    }
    assert!(groups.contains("watch_port:2"), "{groups}");

    dut.add_flows(
        of,
        "priority=10,udp,in_port=1,tp_dst=7001,actions=group:1\n\
         priority=10,udp,in_port=1,tp_dst=7002,actions=group:2\n\
         priority=10,udp,in_port=1,tp_dst=7003,actions=group:3\n\
         priority=10,udp,in_port=1,tp_dst=7004,actions=group:4\n",
    );
    // all: a copy to each bucket.
    assert_eq!(udp_delivered(&h[0], &h[1], 7001, 2), 2);
    assert_eq!(udp_delivered(&h[0], &h[2], 7001, 2), 2);
    // select: each packet goes to exactly one bucket. Which one is the switch's hash, so
    // count at the group's buckets, not at hosts that may drop a packet addressed to the other.
    udp_send(&h[0], "198.18.0.2", 7002, 41002, 2, 32);
    udp_send(&h[0], "198.18.0.3", 7002, 41002, 2, 32);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let buckets = loop {
        let stats = dut.ofctl(of, "dump-group-stats", &["group_id=2"]);
        let line = stats.lines().find(|l| l.contains("group_id=2")).unwrap_or_default().to_string();
        let counts: Vec<u64> = line
            .split("bucket")
            .skip(1)
            .filter_map(|b| b.split("packet_count=").nth(1))
            .filter_map(|v| v.split(',').next()?.parse().ok())
            .collect();
        if counts.iter().sum::<u64>() >= 4 || std::time::Instant::now() > deadline {
            break counts;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!((buckets.len(), buckets.iter().sum::<u64>()), (2, 4), "select bucket counters: {buckets:?}");
    // indirect: its one bucket.
    assert_eq!(udp_delivered(&h[0], &h[2], 7003, 2), 2);
    // fast failover: the first live bucket; port 2 down moves traffic to port 3.
    assert_eq!(udp_delivered(&h[0], &h[1], 7004, 2), 2);
    assert_eq!(udp_delivered(&h[0], &h[2], 7004, 2), 0);
    dut.ofctl(of, "mod-port", &["2", "down"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while udp_delivered(&h[0], &h[2], 7004, 2) != 2 {
        assert!(Instant::now() < deadline, "ff group did not fail over to port 3");
    }
    dut.ofctl(of, "mod-port", &["2", "up"]);

    let stats = dut.ofctl(of, "dump-group-stats", &[]);
    let line = stats.lines().find(|l| l.contains("group_id=1,")).unwrap_or_else(|| panic!("{stats}"));
    assert!(num(line, "packet_count") >= 4, "{line}");

    dut.ofctl(of, "del-groups", &["group_id=3"]);
    let groups = dut.ofctl(of, "dump-groups", &[]);
    assert!(!groups.contains("group_id=3,") && groups.contains("group_id=4,"), "{groups}");
    // Deleting a group deletes the flows that use it.
    let flows = dut.flows(of, &[]);
    assert!(!flows.iter().any(|l| l.contains("group:3")), "{flows:#?}");
}

#[test]
fn meters_limit_rate() {
    if skip() {
        return;
    }
    let (h, dut) = setup(2);
    let of = Of::V13;
    dut.ofctl(of, "add-meter", &["meter=1,pktps,band=type=drop,rate=1"]);
    dut.ofctl(of, "add-meter", &["meter=2,kbps,burst,band=type=drop,rate=1000,burst_size=100"]);
    let meters = dut.ofctl(of, "dump-meters", &[]);
    let m1 = &meters[meters.find("meter=1").unwrap_or_else(|| panic!("{meters}"))..];
    let m1 = &m1[..m1.find("meter=2").unwrap_or(m1.len())];
    assert!(m1.contains("pktps") && m1.contains("type=drop") && m1.contains("rate=1"), "{meters}");
    assert!(meters.contains("meter=2") && meters.contains("kbps"), "{meters}");

    dut.add_flows(of, "priority=10,udp,in_port=1,tp_dst=7100,actions=meter:1,output:2\n");
    let flows = dut.flows(of, &[]);
    assert!(flows[0].contains("meter:1"), "{flows:#?}");
    // 50 datagrams at once through a 1 packet/s meter: most are dropped, not all pass.
    let got = udp_delivered(&h[0], &h[1], 7100, 50);
    assert!(got < 50, "the meter let all 50 through");
    let stats = dut.ofctl(of, "meter-stats", &["meter=1"]);
    assert!(stats.contains("meter:1") || stats.contains("meter=1"), "{stats}");
    assert!(num(&stats, "packet_in_count") >= 50, "{stats}");

    dut.ofctl(of, "del-meter", &["meter=2"]);
    let meters = dut.ofctl(of, "dump-meters", &[]);
    assert!(meters.contains("meter=1") && !meters.contains("meter=2"), "{meters}");
}

#[test]
fn packet_out_reaches_the_host() {
    if skip() {
        return;
    }
    let (h, dut) = setup(2);
    for (i, of) in BOTH.into_iter().enumerate() {
        let dport = 7300 + i as u16;
        let frame = xdpswitch::packet::build::udp4(&xdpswitch::packet::build::Udp4Spec {
            src_mac: mac_bytes(&h[0].mac),
            dst_mac: mac_bytes(&h[1].mac),
            src_ip: [198, 18, 0, 1],
            dst_ip: [198, 18, 0, 2],
            sport: 40300,
            dport,
            payload_len: 20,
            ..Default::default()
        });
        let rx = udp_receiver(&h[1], dport, 2, 3.0);
        let spec = format!("in_port=controller packet={} actions=output:2", hex(&frame));
        dut.ofctl(of, "packet-out", &[&spec]);
        dut.ofctl(of, "packet-out", &[&spec]);
        assert_eq!(receiver_lines(rx), vec!["198.18.0.1 40300 20"; 2], "{of:?}");
    }
}

/// `ovs-ofctl monitor`, its output lines gathered by a thread.
struct Monitor {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Monitor {
    fn start(dut: &Dut, of: Of) -> Monitor {
        // ovs-ofctl prints what it monitors on stderr; gather both streams.
        let mut child = Command::new("ovs-ofctl")
            .args(["-O", of.flag(), "monitor", &dut.target, "65535"])
            .env("OVS_RUNDIR", std::env::temp_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ovs-ofctl monitor");
        let (tx, lines) = std::sync::mpsc::channel();
        let out: Box<dyn Read + Send> = Box::new(child.stdout.take().unwrap());
        let err: Box<dyn Read + Send> = Box::new(child.stderr.take().unwrap());
        for stream in [out, err] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for l in std::io::BufReader::new(stream).lines().map_while(Result::ok) {
                    if tx.send(l).is_err() {
                        break;
                    }
                }
            });
        }
        Monitor { child, lines, seen: Vec::new() }
    }

    /// Calls `poke` until a message has every needle, for up to 15 s; returns that message
    /// (ovs-ofctl prints a message's details on the lines after its first).
    fn wait_for(&mut self, needles: &[&str], mut poke: impl FnMut()) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            poke();
            let until = Instant::now() + Duration::from_millis(700);
            while let Ok(l) = self.lines.recv_timeout(until.saturating_duration_since(Instant::now())) {
                self.seen.push(l);
            }
            let mut messages: Vec<String> = Vec::new();
            for l in &self.seen {
                match messages.last_mut() {
                    Some(m) if l.starts_with([' ', '\t']) || !l.contains(" (") => {
                        m.push('\n');
                        m.push_str(l);
                    }
                    _ => messages.push(l.clone()),
                }
            }
            if let Some(i) = messages.iter().position(|m| needles.iter().all(|x| m.contains(x))) {
                let found = messages[i].clone();
                // Later waits look only at what comes after.
                let skip: usize = messages[..=i].iter().map(|m| m.lines().count()).sum();
                self.seen.drain(..skip);
                return found;
            }
            assert!(Instant::now() < deadline, "monitor never showed {needles:?}: {:#?}", self.seen);
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn monitor_shows_packet_in_flow_removed_and_port_status() {
    if skip() {
        return;
    }
    let (h, dut) = setup(2);
    for (i, of) in BOTH.into_iter().enumerate() {
        dut.ofctl(of, "del-flows", &[]);
        let dport = 7400 + i as u16;
        dut.add_flows(of, &format!("priority=10,udp,in_port=1,tp_dst={dport},actions=CONTROLLER:65535\n"));
        let mut mon = Monitor::start(&dut, of);
        let pin = mon.wait_for(&["PACKET_IN", &format!("tp_dst={dport}")], || {
            udp_send(&h[0], h[1].addr(), dport, 40400, 1, 16)
        });
        assert!(pin.contains("in_port=1"), "{of:?}: {pin}");

        // A rule with a hard timeout and the send-flow-removed flag.
        dut.add_flows(
            of,
            "cookie=0x77,priority=20,udp,tp_dst=7499,hard_timeout=1,send_flow_rem,actions=drop\n",
        );
        let removed = mon.wait_for(&["FLOW_REMOVED"], || {});
        assert!(removed.contains("reason=hard") && removed.contains("cookie:0x77"), "{of:?}: {removed}");
        assert!(dut.flows(of, &["udp,tp_dst=7499"]).is_empty(), "{of:?}");

        dut.ofctl(of, "mod-port", &["2", "down"]);
        let status = mon.wait_for(&["PORT_STATUS", &h[1].sw_if], || {});
        assert!(status.contains("PORT_DOWN"), "{of:?}: {status}");
        dut.ofctl(of, "mod-port", &["2", "up"]);
    }
}

/// A raw OpenFlow 1.3 client: hand-built messages, so the switch's answers to malformed input
/// can be checked without a codec in between.
struct RawConn {
    s: TcpStream,
    version: u8,
}

const OFPT_ERROR: u8 = 1;
const OFPT_ECHO_REQUEST: u8 = 2;
const OFPT_ECHO_REPLY: u8 = 3;
const OFPT_FLOW_MOD: u8 = 14;
/// Barrier message types by version: OpenFlow 1.0 numbers them 18/19, 1.3 20/21.
fn barrier_types(version: u8) -> (u8, u8) {
    if version == 1 {
        (18, 19)
    } else {
        (20, 21)
    }
}

impl RawConn {
    /// Connects and says HELLO with wire version `version` (1: OpenFlow 1.0, 4: 1.3).
    fn connect(addr: std::net::SocketAddr, version: u8) -> RawConn {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut c = RawConn { s, version };
        c.send(0, 1, &[]);
        let (ty, _, _) = c.recv();
        assert_eq!(ty, 0, "expected HELLO first");
        c
    }

    fn send(&mut self, ty: u8, xid: u32, body: &[u8]) {
        let mut m = vec![self.version, ty];
        m.extend_from_slice(&((8 + body.len()) as u16).to_be_bytes());
        m.extend_from_slice(&xid.to_be_bytes());
        m.extend_from_slice(body);
        self.s.write_all(&m).expect("send");
    }

    /// The next message: (type, xid, body).
    fn recv(&mut self) -> (u8, u32, Vec<u8>) {
        let mut h = [0u8; 8];
        self.s.read_exact(&mut h).expect("reading a header (connection closed?)");
        let len = u16::from_be_bytes([h[2], h[3]]) as usize;
        assert!(len >= 8, "bad length {len}");
        let mut body = vec![0u8; len - 8];
        self.s.read_exact(&mut body).expect("reading a body");
        (h[1], u32::from_be_bytes([h[4], h[5], h[6], h[7]]), body)
    }

    /// Skips asynchronous messages until the reply with `xid`.
    fn reply(&mut self, xid: u32) -> (u8, Vec<u8>) {
        loop {
            let (ty, x, body) = self.recv();
            if x == xid && ty != OFPT_ECHO_REQUEST {
                return (ty, body);
            }
            if ty == OFPT_ECHO_REQUEST {
                self.send(OFPT_ECHO_REPLY, x, &body);
            }
        }
    }

    /// Sends a flow-mod; returns the error (type, code) it caused, or None when the barrier
    /// after it came back first.
    fn flow_mod(&mut self, xid: u32, body: &[u8]) -> Option<(u16, u16)> {
        let (barrier_request, barrier_reply) = barrier_types(self.version);
        self.send(OFPT_FLOW_MOD, xid, body);
        self.send(barrier_request, xid + 1, &[]);
        loop {
            let (ty, x, b) = self.recv();
            if ty == OFPT_ERROR && x == xid {
                assert!(b.len() >= 4 + 8, "error without the offending header: {b:?}");
                // The error carries the start of the offending message.
                assert_eq!(&b[4..6], &[self.version, OFPT_FLOW_MOD], "{b:?}");
                return Some((u16::from_be_bytes([b[0], b[1]]), u16::from_be_bytes([b[2], b[3]])));
            }
            if ty == barrier_reply && x == xid + 1 {
                return None;
            }
            if ty == OFPT_ECHO_REQUEST {
                self.send(OFPT_ECHO_REPLY, x, &b);
            }
        }
    }

    /// An echo round trip, with an xid no earlier request used.
    fn echo_works(&mut self, xid: u32) -> bool {
        let xid = xid + 1000;
        self.send(OFPT_ECHO_REQUEST, xid, b"ping");
        let (ty, body) = self.reply(xid);
        ty == OFPT_ECHO_REPLY && body == b"ping"
    }
}

/// An OpenFlow 1.3 flow-mod body (after the header): ADD into `table`, priority 100,
/// no buffer, with the given OXM fields and instructions.
fn flow_mod_13(table: u8, oxms: &[u8], instructions: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&[0; 16]); // cookie, cookie_mask
    b.extend_from_slice(&[table, 0]); // table_id, command ADD
    b.extend_from_slice(&[0, 0, 0, 0]); // idle, hard timeouts
    b.extend_from_slice(&100u16.to_be_bytes()); // priority
    b.extend_from_slice(&0xffff_ffffu32.to_be_bytes()); // buffer_id: none
    b.extend_from_slice(&0xffff_ffffu32.to_be_bytes()); // out_port: any
    b.extend_from_slice(&0xffff_ffffu32.to_be_bytes()); // out_group: any
    b.extend_from_slice(&[0, 0, 0, 0]); // flags, pad
    let mlen = 4 + oxms.len();
    b.extend_from_slice(&1u16.to_be_bytes()); // OFPMT_OXM
    b.extend_from_slice(&(mlen as u16).to_be_bytes());
    b.extend_from_slice(oxms);
    b.resize(b.len() + (8 - mlen % 8) % 8, 0);
    b.extend_from_slice(instructions);
    b
}

/// OXM TLV of the OpenFlow basic class.
fn oxm(field: u8, value: &[u8]) -> Vec<u8> {
    let mut v = vec![0x80, 0x00, field << 1, value.len() as u8];
    v.extend_from_slice(value);
    v
}

/// APPLY_ACTIONS with one OUTPUT action to `port`.
fn apply_output(port: u32) -> Vec<u8> {
    let mut v = vec![0, 4, 0, 24, 0, 0, 0, 0]; // OFPIT_APPLY_ACTIONS, len 24
    v.extend_from_slice(&[0, 0, 0, 16]); // OFPAT_OUTPUT, len 16
    v.extend_from_slice(&port.to_be_bytes());
    v.extend_from_slice(&[0xff, 0xe5, 0, 0, 0, 0, 0, 0]); // max_len NO_BUFFER, pad
    v
}

/// GOTO_TABLE `table`.
fn goto(table: u8) -> Vec<u8> {
    vec![0, 1, 0, 8, table, 0, 0, 0]
}

#[test]
fn bad_flow_mods_get_errors_and_the_connection_stays_up() {
    if skip() {
        return;
    }
    let (_h, dut) = setup(2);
    let mut c = RawConn::connect(dut.listen, 4);

    // Sanity: a good flow-mod is accepted (the barrier reply comes, no error).
    assert_eq!(c.flow_mod(10, &flow_mod_13(0, &oxm(0, &1u32.to_be_bytes()), &apply_output(2))), None);

    // tcp_dst without ip_proto=6 (and eth_type): OFPET_BAD_MATCH / OFPBMC_BAD_PREREQ.
    let e = c.flow_mod(20, &flow_mod_13(0, &oxm(14, &80u16.to_be_bytes()), &apply_output(2)));
    assert_eq!(e, Some((4, 9)), "missing prerequisite");
    assert!(c.echo_works(21));

    // goto_table to an earlier table: OFPET_BAD_INSTRUCTION / OFPBIC_BAD_TABLE_ID.
    let e = c.flow_mod(30, &flow_mod_13(1, &[], &goto(0)));
    assert_eq!(e, Some((3, 2)), "goto to an earlier table");
    assert!(c.echo_works(31));

    // Output to a port that can never exist (above OFPP_MAX, not a reserved port):
    // OFPET_BAD_ACTION / OFPBAC_BAD_OUT_PORT.
    let e = c.flow_mod(40, &flow_mod_13(0, &[], &apply_output(0xffff_fff0)));
    assert_eq!(e, Some((2, 4)), "output to an invalid port");
    assert!(c.echo_works(41));

    // An OXM field the basic class does not define (field 127): OFPET_BAD_MATCH /
    // OFPBMC_BAD_FIELD.
    let e = c.flow_mod(50, &flow_mod_13(0, &oxm(127, &[0, 0, 0, 1]), &apply_output(2)));
    assert_eq!(e, Some((4, 6)), "unknown OXM field");
    assert!(c.echo_works(51));

    // None of the bad ones was installed; the good one was.
    let flows = dut.flows(Of::V13, &[]);
    assert_eq!(flows.len(), 1, "{flows:#?}");
    assert!(flows[0].contains("in_port=1") && flows[0].contains("actions=output:2"), "{flows:#?}");
}

#[test]
fn goto_table_pipeline() {
    if skip() {
        return;
    }
    let (h, dut) = setup(2);
    let of = Of::V13;
    dut.add_flows(
        of,
        "table=0,priority=10,in_port=1,actions=goto_table:1\n\
         table=0,priority=10,in_port=2,actions=output:1\n\
         table=1,priority=5,udp,tp_dst=9,actions=drop\n\
         table=1,priority=1,actions=output:2\n",
    );
    assert!(eventually_pings(&h[0], &h[1], 10), "table 0 -> table 1 -> output:2 does not forward");
    assert_eq!(udp_delivered(&h[0], &h[1], 9, 3), 0, "table 1's drop rule let traffic through");
    assert_eq!(udp_delivered(&h[0], &h[1], 10, 2), 2);
    let t1 = eventually(15, "table 1 counters", || {
        let t1 = dut.flows(of, &["table=1"]);
        let n = |needle: &str| num(flow(&t1, &[needle]), "n_packets");
        (t1.len() == 2 && n("tp_dst=9") >= 3 && n("priority=1 ") >= 2 + 2).then_some(t1)
    });
    assert!(t1.iter().all(|l| l.contains("table=1")), "{t1:#?}");
    let t0 = dut.flows(of, &["table=0"]);
    assert_eq!(t0.len(), 2, "{t0:#?}");
    assert!(flow(&t0, &["in_port=1"]).contains("goto_table:1"), "{t0:#?}");
}

#[test]
fn of_versions_limit_what_clients_may_speak() {
    if skip() {
        return;
    }
    let h = hosts(2, 1);
    let ports: Vec<&str> = h.iter().map(|x| x.sw_if.as_str()).collect();
    let dut = Dut::start(&ports, &DutOptions { of_versions: "1.3", ..DutOptions::default() });
    assert!(dut.ofctl(Of::V13, "show", &[]).contains("OFPT_FEATURES_REPLY (OF1.3)"));
    dut.ofctl_err(Of::V10, "show", &[]);

    // A client that speaks only 1.0 gets OFPET_HELLO_FAILED (type 0) after the hello.
    let mut s = TcpStream::connect_timeout(&dut.listen, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&[1, 0, 0, 8, 0, 0, 0, 1]).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    let deadline = Instant::now() + Duration::from_secs(10);
    let error = loop {
        // Messages so far: [(version, type, body)].
        let mut msgs = Vec::new();
        let mut at = 0;
        while got.len() >= at + 8 {
            let len = u16::from_be_bytes([got[at + 2], got[at + 3]]) as usize;
            if len < 8 || got.len() < at + len {
                break;
            }
            msgs.push((got[at], got[at + 1], got[at + 8..at + len].to_vec()));
            at += len;
        }
        if let Some((_, _, body)) = msgs.iter().find(|m| m.1 == 1) {
            break body.clone();
        }
        assert!(Instant::now() < deadline, "no HELLO_FAILED error: {msgs:?}");
        match s.read(&mut buf) {
            Ok(0) => panic!("connection closed without an error: {msgs:?}"),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("reading: {e}"),
        }
    };
    assert_eq!(&error[..4], &[0, 0, 0, 0], "OFPET_HELLO_FAILED / OFPHFC_INCOMPATIBLE: {error:?}");
}

/// A short run of `benches/flowsetup.py` against this DUT: every part produces numbers, every
/// rule it sends gets installed, and it leaves nothing behind. Rates are not judged here.
#[test]
fn flowsetup_benchmark_quick_run() {
    if skip() {
        return;
    }
    let kind = match Kind::from_env() {
        Kind::Xdpswitch => "xdpswitch",
        Kind::Ovs => "ovs",
    };
    let out = std::env::temp_dir().join(format!("xs-flowsetup-{}", tag('q')));
    let root = env!("CARGO_MANIFEST_DIR");
    let st = Command::new("python3")
        .arg(format!("{root}/benches/flowsetup.py"))
        .args(["--quick", "--ovs-ports", "system", "--dut", kind, "--out"])
        .arg(&out)
        .env("XDPSWITCH_BIN", bin())
        .status()
        .expect("python3");
    assert!(st.success());
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).expect("results.json"))
            .unwrap();
    let _ = std::fs::remove_dir_all(&out);
    let r = &json["results"][kind];
    assert_eq!(r["errors"].as_array().map(Vec::len), Some(0), "{r:#}");
    assert_eq!(r["add_flows"][0]["installed"], 5000, "{r:#}");
    assert_eq!(r["flow_mods"][0]["installed"], 5000, "{r:#}");
    assert_eq!(r["flow_mods"][0]["errors"], 0, "{r:#}");
    let churn = r["churn"].as_array().expect("churn rows");
    assert_eq!(churn.len(), 4, "{r:#}");
    assert!(churn.iter().all(|row| row["received"].as_u64() > Some(0)), "{r:#}");
    assert!(
        churn.iter().filter(|row| row["churn"] != 0).all(|row| row["churn_sent"].as_u64() > Some(0)),
        "{r:#}"
    );
    let ns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&ns.stdout).contains("xb-"), "namespaces left behind");
}

/// An OpenFlow 1.0 flow-mod body: ADD, priority 100, matching `in_port` (everything else
/// wildcarded), with the given actions.
fn flow_mod_10(in_port: u16, actions: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&(0x003f_ffffu32 & !1).to_be_bytes()); // wildcards: all but in_port
    b.extend_from_slice(&in_port.to_be_bytes());
    b.resize(40, 0); // the rest of ofp_match
    b.extend_from_slice(&[0; 8]); // cookie
    b.extend_from_slice(&[0, 0, 0, 0, 0, 0]); // command ADD, idle, hard timeouts
    b.extend_from_slice(&100u16.to_be_bytes()); // priority
    b.extend_from_slice(&0xffff_ffffu32.to_be_bytes()); // buffer_id: none
    b.extend_from_slice(&0xffffu16.to_be_bytes()); // out_port: none
    b.extend_from_slice(&[0, 0]); // flags
    b.extend_from_slice(actions);
    b
}

/// An OpenFlow 1.0 OUTPUT action.
fn output_10(port: u16) -> Vec<u8> {
    let mut v = vec![0, 0, 0, 8];
    v.extend_from_slice(&port.to_be_bytes());
    v.extend_from_slice(&[0xff, 0xff]);
    v
}

#[test]
fn bad_openflow10_flow_mods_get_errors() {
    if skip() {
        return;
    }
    let (_h, dut) = setup(2);
    let mut c = RawConn::connect(dut.listen, 1);
    assert_eq!(c.flow_mod(10, &flow_mod_10(1, &output_10(2))), None, "a good 1.0 flow-mod");

    // Output to a port number above OFPP_MAX that no reserved port uses:
    // OFPET_BAD_ACTION / OFPBAC_BAD_OUT_PORT.
    assert_eq!(c.flow_mod(20, &flow_mod_10(1, &output_10(0xfff0))), Some((2, 4)));
    assert!(c.echo_works(21));

    // An action type 1.0 does not define: OFPET_BAD_ACTION / OFPBAC_BAD_TYPE.
    assert_eq!(c.flow_mod(30, &flow_mod_10(2, &[0x0f, 0xff, 0, 8, 0, 0, 0, 0])), Some((2, 0)));
    assert!(c.echo_works(31));

    // An action whose length runs past the message: OFPET_BAD_ACTION / OFPBAC_BAD_LEN.
    assert_eq!(c.flow_mod(40, &flow_mod_10(2, &[0, 0, 0, 16, 0, 2, 0xff, 0xff])), Some((2, 1)));
    assert!(c.echo_works(41));

    let flows = dut.flows(Of::V10, &[]);
    assert_eq!(flows.len(), 1, "{flows:#?}");
    assert!(flows[0].contains("in_port=1") && flows[0].contains("actions=output:2"), "{flows:#?}");
}

/// A standalone bridge without a controller is a learning switch, as in Open vSwitch: a
/// visible `priority=0,actions=NORMAL` rule, hosts reach each other, the rule counts, and a
/// rule of higher priority still wins over NORMAL.
#[test]
fn standalone_without_a_controller_is_a_learning_switch() {
    if skip() {
        return;
    }
    let h = hosts(3, 1);
    let ports: Vec<&str> = h.iter().map(|x| x.sw_if.as_str()).collect();
    let dut = Dut::start(&ports, &DutOptions { fail_mode: "standalone", ..DutOptions::default() });
    let flows = dut.flows(Of::V13, &[]);
    let normal = flow(&flows, &["priority=0", "actions=NORMAL"]).to_string();
    assert!(!normal.contains("in_port"), "{normal}");
    assert!(eventually_pings(&h[0], &h[1], 10), "h0 → h1 through NORMAL");
    assert!(eventually_pings(&h[2], &h[1], 10), "h2 → h1 through NORMAL");
    eventually(15, "the NORMAL rule's counters", || {
        let flows = dut.flows(Of::V13, &[]);
        (num(flow(&flows, &["priority=0", "actions=NORMAL"]), "n_packets") >= 8).then_some(())
    });
    // A rule above NORMAL: h0's traffic is dropped, the others still switch.
    dut.ofctl(Of::V13, "add-flow", &["priority=10,in_port=1,actions=drop"]);
    eventually(15, "in_port=1 dropped", || (!pings(&h[0], &h[1])).then_some(()));
    assert!(eventually_pings(&h[2], &h[1], 10));
}
