//! End to end: several bridges in one `xdpswitch run --config` process, joined by patch
//! ports; hosts in namespaces on each; each bridge numbers its own ports and keeps its own
//! flows, MAC table and counters.

mod support;

use support::*;

#[test]
fn two_bridges_joined_by_a_patch() {
    if skip_unless_root() {
        return;
    }
    let h = hosts(3, 1);
    let t = tag('b');
    let (ba, bb) = (format!("xsa{t}"), format!("xsb{t}"));
    let (pa, pb) = (format!("pa{t}"), format!("pb{t}"));
    // Bridge B forwards by its own flows, in its own OpenFlow numbers: the patch is its
    // port 1 and h2's interface its port 2 (datapath numbers 4 and 5).
    let flows_b = std::env::temp_dir().join(format!("xs-{t}-b.flows"));
    std::fs::write(
        &flows_b,
        "priority=10,in_port=1,actions=output:2\npriority=10,in_port=2,actions=output:1\n",
    )
    .unwrap();
    let config = format!(
        r#"
[[bridge]]
name = "{ba}"
ports = ["{h0}", "{h1}", "{pa}:peer={pb}"]
[[bridge]]
name = "{bb}"
ports = ["{pb}:peer={pa}", "{h2}"]
fail_mode = "secure"
flows = "{flows}"
datapath_id = "0xb"
"#,
        h0 = h[0].sw_if,
        h1 = h[1].sw_if,
        h2 = h[2].sw_if,
        flows = flows_b.display()
    );
    let sw = SwitchProc::start_config(&config, &[&h[0].sw_if, &h[1].sw_if, &h[2].sw_if]);
    // Within bridge A (NORMAL), and across the patch into bridge B and back.
    assert!(eventually_pings(&h[0], &h[1], 10), "h0 does not reach h1 on bridge A");
    assert!(eventually_pings(&h[0], &h[2], 10), "h0 does not reach h2 across the patch");
    assert!(eventually_pings(&h[2], &h[1], 10), "h2 does not reach h1 across the patch");

    // Each bridge numbers its ports from 1; the patch ports show their peers.
    let ports_b = sw.ctl_bridge(&bb, &["dump-ports"]);
    assert!(ports_b.contains(&format!("port 1: {pb} (type patch, peer={pa})")), "{ports_b}");
    assert!(ports_b.contains(&format!("port 2: {} (type afxdp", h[2].sw_if)), "{ports_b}");
    assert!(!ports_b.contains(&h[0].sw_if), "{ports_b}");
    let ports_a = sw.ctl_bridge(&ba, &["dump-ports"]);
    assert!(ports_a.contains(&format!("port 3: {pa} (type patch, peer={pb})")), "{ports_a}");
    assert!(!ports_a.contains(&h[2].sw_if), "{ports_a}");

    // Per-bridge flows: A has only its NORMAL rule, B its two rules, both of which forwarded.
    let flows_a = sw.ctl_bridge(&ba, &["dump-flows"]);
    assert!(flows_a.contains("actions=NORMAL") && !flows_a.contains("in_port"), "{flows_a}");
    let dump_b = sw.ctl_bridge(&bb, &["dump-flows"]);
    assert_eq!(dump_b.lines().count(), 2, "{dump_b}");
    assert!(n_packets(&dump_b, "in_port=1") >= 4, "{dump_b}");
    assert!(n_packets(&dump_b, "in_port=2") >= 4, "{dump_b}");
    // The default bridge is the first.
    assert_eq!(sw.ctl(&["dump-flows"]).lines().count(), flows_a.lines().count());

    // Bridge A learned h2's address behind its patch port (3); B has no MAC table entries
    // (it never ran NORMAL).
    let fdb_a = sw.ctl_bridge(&ba, &["fdb-show"]);
    let h2_row = fdb_a.lines().find(|l| l.contains(&h[2].mac)).unwrap_or_default();
    assert!(h2_row.split_whitespace().next() == Some("3"), "{fdb_a}");
    assert_eq!(sw.ctl_bridge(&bb, &["fdb-show"]).lines().count(), 1);

    let list = sw.ctl(&["bridge/list"]);
    assert!(list.contains(&format!("{bb} (dpid 000000000000000b)")), "{list}");
    assert!(list.contains(&format!("1: {pb} (datapath port 4)")), "{list}");
    let e = xdpswitch::ctl::call_bridge(&sw.ctl, Some("nope"), &["dump-flows".to_string()], false).unwrap();
    assert!(!e.ok && e.body.contains("nope: no such bridge"), "{e:?}");
    let _ = std::fs::remove_file(&flows_b);
}

#[test]
fn config_errors_are_one_line() {
    let t = tag('e');
    let path = std::env::temp_dir().join(format!("xs-{t}.toml"));
    std::fs::write(&path, "[[bridge]]\nname = \"b1\"\nports = [\"p1:peer=p2\"]\n").unwrap();
    let out = std::process::Command::new(bin()).arg("run").arg("--config").arg(&path).output().unwrap();
    let _ = std::fs::remove_file(&path);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("bridge b1: port p1: peer p2: no such port"), "{err}");
}

/// A veth pair in the root namespace, deleted on drop (the underlay between two switches).
struct Wire(String);

impl Wire {
    fn new(a: &str, b: &str) -> Wire {
        xdpswitch::netns::sh(&["ip", "link", "add", a, "type", "veth", "peer", "name", b]).unwrap();
        for i in [a, b] {
            xdpswitch::netns::sh(&["ip", "link", "set", i, "up"]).unwrap();
        }
        Wire(a.to_string())
    }
}

impl Drop for Wire {
    fn drop(&mut self) {
        let _ = xdpswitch::netns::sh(&["ip", "link", "del", &self.0]);
    }
}

#[test]
fn two_switches_over_a_gre_tunnel_with_flow_keys() {
    if skip_unless_root() {
        return;
    }
    let h = hosts(2, 1);
    let t = tag('g');
    let (u1, u2) = (format!("u1{t}"), format!("u2{t}"));
    let _wire = Wire::new(&u1, &u2);
    // Each switch: the host on port 1, the tunnel to the other on port 2; the flows choose
    // the key (key=flow) and only accept key 0x64 from the tunnel.
    let flows = "priority=10,in_port=1,actions=set_tunnel:0x64,output:2\n\
                 priority=10,in_port=2,tun_id=0x64,actions=output:1\n";
    let flow_path = std::env::temp_dir().join(format!("xs-{t}.flows"));
    std::fs::write(&flow_path, flows).unwrap();
    let config = |i: usize, me: &str, peer: &str, underlay: &str| {
        format!(
            r#"
[[bridge]]
name = "xg{i}{t}"
ports = ["{host}", "gre{i}{t}:type=gre,remote_ip={peer},key=flow"]
fail_mode = "secure"
flows = "{flows}"
[[underlay]]
port = "{underlay}"
ip = "{me}/24"
"#,
            host = h[i].sw_if,
            flows = flow_path.display()
        )
    };
    let s1 = SwitchProc::start_config(&config(0, "192.0.2.1", "192.0.2.2", &u1), &[&h[0].sw_if, &u1]);
    let s2 = SwitchProc::start_config(&config(1, "192.0.2.2", "192.0.2.1", &u2), &[&h[1].sw_if, &u2]);
    assert!(eventually_pings(&h[0], &h[1], 10), "h0 does not reach h1 through the tunnel");
    assert_eq!(udp_delivered_count(&h[1], &h[0]), 3);

    // Each switch resolved the other's underlay address with ARP.
    let neigh = s1.ctl(&["tnl/neigh-show"]);
    assert!(neigh.contains("192.0.2.2") && neigh.contains("REACHABLE"), "{neigh}");
    let list = s1.ctl(&["bridge/list"]);
    assert!(list.contains(&format!("underlay {u1} (datapath port 3)")), "{list}");
    let ports = s1.ctl(&["tnl/ports-show"]);
    assert!(ports.contains("remote_ip=192.0.2.2") && ports.contains("key=flow"), "{ports}");
    let dump_ports = s2.ctl(&["dump-ports"]);
    assert!(
        dump_ports.contains("(type gre, remote_ip=192.0.2.1,local_ip=192.0.2.2,key=flow)"),
        "{dump_ports}"
    );
    // Packets from the tunnel matched tun_id=0x64 in both switches.
    for s in [&s1, &s2] {
        let dump = s.ctl(&["dump-flows"]);
        assert!(n_packets(&dump, "tun_id=0x64") >= 3, "{dump}");
        let st = s.ctl(&["pmd-stats"]);
        let line = st.lines().find(|l| l.starts_with("tunnels:")).unwrap_or_default();
        assert!(!line.contains("encap 0,") && !line.contains("decap 0,"), "{st}");
    }
    let _ = std::fs::remove_file(&flow_path);
}

/// Sends 3 UDP datagrams from `from` to `to` and counts those delivered.
fn udp_delivered_count(from: &Host, to: &Host) -> usize {
    let rx = udp_receiver(to, 7100, 3, 3.0);
    udp_send(from, to.addr(), 7100, 40100, 3, 64);
    receiver_lines(rx).len()
}
