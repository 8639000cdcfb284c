//! End to end: hosts in network namespaces joined by `xdpswitch run` over AF_XDP ports; real
//! ICMP/UDP/TCP traffic; delivery, header rewrites, drops and counters checked.

mod support;

use std::process::Command;
use support::*;

const PORT_TO_PORT: &str = "priority=10,in_port=1,actions=output:2\npriority=10,in_port=2,actions=output:1\n";

#[test]
fn forwards_icmp_udp_and_tcp_by_rules() {
    if skip_unless_root() {
        return;
    }
    let h = hosts(2, 1);
    let sw = SwitchProc::start(&[&h[0].sw_if, &h[1].sw_if], PORT_TO_PORT, &[]);

    let ping = h[0]
        .exec(&["ping", "-c", "3", "-i", "0.2", "-W", "2", h[1].addr()])
        .expect("ping through the switch");
    assert!(ping.contains("3 received"), "{ping}");

    let rx = udp_receiver(&h[1], 7000, 5, 3.0);
    udp_send(&h[0], h[1].addr(), 7000, 40000, 5, 100);
    let lines = receiver_lines(rx);
    assert_eq!(lines.len(), 5, "{lines:?}");
    assert!(lines.iter().all(|l| l == "198.18.0.1 40000 100"), "{lines:?}");

    // TCP: a real connection with data both ways.
    let mut server = h[1]
        .command("python3")
        .args([
            "-c",
            "import socket\ns=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
             s.bind(('0.0.0.0',7001));s.listen(1);s.settimeout(5)\nc,a=s.accept();d=c.recv(100);c.sendall(d.upper());c.close()",
        ])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let reply = h[0]
        .exec(&[
            "python3",
            "-c",
            "import socket\nc=socket.create_connection(('198.18.0.2',7001),timeout=5)\nc.sendall(b'hello switch')\nprint(c.recv(100).decode())",
        ])
        .expect("tcp client");
    assert_eq!(reply.trim(), "HELLO SWITCH");
    let _ = server.wait();

    let flows = sw.ctl(&["dump-flows"]);
    assert!(n_packets(&flows, "in_port=1") >= 3 + 5 + 3, "{flows}");
    assert!(n_packets(&flows, "in_port=2") >= 3 + 3, "{flows}");
    let stats = sw.ctl_json(&["pmd-stats"]);
    // Packets the kernel fast path forwarded (XDP offload) never reach a poll thread.
    assert!(pmd_sum(&stats, "rx_packets") + offload_sum(&stats, "hit") >= 20, "{stats}");
    assert!(pmd_sum(&stats, "emc_hits") + pmd_sum(&stats, "megaflow_hits") > 0, "{stats}");
    assert!(pmd_sum(&stats, "upcalls") >= 1, "{stats}");
    let megaflows = sw.ctl(&["dump-megaflows"]);
    assert!(megaflows.contains("in_port=1") && megaflows.contains("actions:2"), "{megaflows}");
    let ports = sw.ctl_json(&["dump-ports"]);
    assert!(ports[0]["stats"]["rx_packets"].as_u64().unwrap() >= 11, "{ports}");
    assert!(ports[1]["stats"]["tx_packets"].as_u64().unwrap() >= 11, "{ports}");
}

#[test]
fn rewrites_headers_with_valid_checksums() {
    if skip_unless_root() {
        return;
    }
    let h = hosts(2, 1);
    neighbours(&h[0], &h[1]).unwrap();
    let flows = format!(
        "priority=20,udp,nw_dst=198.18.0.2,tp_dst=53,actions=mod_nw_src:198.18.0.99,mod_tp_src:4444,mod_tp_dst:5353,output:2\n\
         priority=20,udp,nw_dst=198.18.0.2,tp_dst=54,actions=mod_dl_dst:02:00:00:00:00:02,output:2\n{PORT_TO_PORT}"
    );
    let sw = SwitchProc::start(&[&h[0].sw_if, &h[1].sw_if], &flows, &[]);

    // L3/L4 rewrite: the receiving kernel checks the UDP checksum, so delivery proves the
    // incremental checksum updates are right.
    let rx = udp_receiver(&h[1], 5353, 3, 3.0);
    udp_send(&h[0], h[1].addr(), 53, 40001, 3, 64);
    let lines = receiver_lines(rx);
    assert_eq!(lines, vec!["198.18.0.99 4444 64"; 3]);

    // L2 rewrite: captured on the wire.
    let cap = capture(&h[1], 1.5);
    udp_send(&h[0], h[1].addr(), 54, 40002, 2, 32);
    let frames = receiver_lines(cap);
    let rewritten: Vec<_> = frames
        .iter()
        .map(|l| unhex(l.split(' ').next().unwrap()))
        .filter(|f| f.len() > 40 && f[36..38] == [0, 54])
        .collect();
    assert_eq!(rewritten.len(), 2, "{frames:?}");
    for f in rewritten {
        assert_eq!(f[..6], [2, 0, 0, 0, 0, 2]);
        assert_eq!(f[6..12], mac_bytes(&h[0].mac));
    }
    let dump = sw.ctl(&["dump-flows"]);
    assert_eq!(n_packets(&dump, "tp_dst=53"), 3, "{dump}");
    assert_eq!(n_packets(&dump, "tp_dst=54"), 2, "{dump}");
}

#[test]
fn drop_rule_drops_and_counts() {
    if skip_unless_root() {
        return;
    }
    let h = hosts(2, 1);
    neighbours(&h[0], &h[1]).unwrap();
    let flows = format!("priority=30,udp,tp_dst=9,actions=drop\n{PORT_TO_PORT}");
    let sw = SwitchProc::start(&[&h[0].sw_if, &h[1].sw_if], &flows, &[]);
    let rx = udp_receiver(&h[1], 9, 1, 1.5);
    udp_send(&h[0], h[1].addr(), 9, 40003, 4, 10);
    assert!(receiver_lines(rx).is_empty());
    let rx = udp_receiver(&h[1], 10, 1, 3.0);
    udp_send(&h[0], h[1].addr(), 10, 40003, 1, 10);
    assert_eq!(receiver_lines(rx).len(), 1);
    let dump = sw.ctl(&["dump-flows"]);
    assert_eq!(n_packets(&dump, "tp_dst=9"), 4, "{dump}");
    assert!(dump.contains("actions=drop"), "{dump}");
}

#[test]
fn pushes_and_pops_vlan_tags() {
    if skip_unless_root() {
        return;
    }
    // This kernel has no 8021q module, so hosts see tags through PACKET_AUXDATA and send
    // tagged frames through raw sockets.
    let h = hosts(2, 1);
    neighbours(&h[0], &h[1]).unwrap();
    let flows = "priority=10,in_port=1,actions=mod_vlan_vid:10,output:2\n\
                 priority=10,in_port=2,dl_vlan=10,actions=strip_vlan,output:1\n";
    let sw = SwitchProc::start(&[&h[0].sw_if, &h[1].sw_if], flows, &[]);

    // Untagged from host 0 leaves port 2 tagged with VLAN 10.
    let cap = capture(&h[1], 1.5);
    udp_send(&h[0], h[1].addr(), 7200, 40010, 2, 30);
    let tagged: Vec<_> = receiver_lines(cap)
        .into_iter()
        .filter(|l| unhex(l.split(' ').next().unwrap()).get(36..38) == Some(&[0x1c, 0x20][..]))
        .collect();
    assert_eq!(tagged.len(), 2, "{tagged:?}");
    for l in &tagged {
        let tci: i64 = l.split(' ').nth(1).unwrap().parse().unwrap();
        assert_eq!(tci & 0xfff, 10, "{l}");
    }

    // Tagged VLAN 10 from host 1 reaches host 0 untagged, as valid UDP.
    let rx = udp_receiver(&h[0], 7201, 2, 3.0);
    let frame = xdpswitch::packet::build::udp4(&xdpswitch::packet::build::Udp4Spec {
        src_mac: mac_bytes(&h[1].mac),
        dst_mac: mac_bytes(&h[0].mac),
        vlan: Some(10),
        src_ip: [198, 18, 0, 2],
        dst_ip: [198, 18, 0, 1],
        sport: 40011,
        dport: 7201,
        payload_len: 30,
        ..Default::default()
    });
    raw_send(&h[1], &[hex(&frame), hex(&frame)]);
    assert_eq!(receiver_lines(rx), vec!["198.18.0.2 40011 30"; 2]);
    let dump = sw.ctl(&["dump-flows"]);
    assert_eq!(n_packets(&dump, "dl_vlan=10"), 2, "{dump}");
}

#[test]
fn malformed_frames_are_dropped_and_counted() {
    if skip_unless_root() {
        return;
    }
    let h = hosts(2, 1);
    let sw = SwitchProc::start(&[&h[0].sw_if, &h[1].sw_if], PORT_TO_PORT, &[]);
    let dst = h[1].mac.replace(':', "");
    let src = h[0].mac.replace(':', "");
    let frames = vec![
        // IPv4 whose header length field (IHL=15: 60 bytes) overruns the frame.
        format!("{dst}{src}08004f000014000000004011000000000000c6120002"),
        // VLAN tag cut short.
        format!("{dst}{src}810000"),
        // IPv4 total length larger than the frame.
        format!("{dst}{src}08004500ffff000000004011000000000000c612000200000000"),
        // IPv4 / UDP with the UDP header cut short.
        format!("{dst}{src}080045000018000000004011000000000000c61200020035"),
    ];
    raw_send(&h[0], &frames);
    let ping =
        h[0].exec(&["ping", "-c", "2", "-i", "0.2", "-W", "2", h[1].addr()]).expect("still forwarding");
    assert!(ping.contains("2 received"), "{ping}");
    let stats = sw.ctl_json(&["pmd-stats"]);
    let malformed: u64 = stats["pmds"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["malformed"].as_array().unwrap().iter().map(|r| r[1].as_u64().unwrap()))
        .sum();
    assert_eq!(malformed, 4, "{stats}");
}

#[test]
fn two_rx_queues_per_port_with_two_poll_threads() {
    if skip_unless_root() {
        return;
    }
    let h = hosts(2, 2);
    neighbours(&h[0], &h[1]).unwrap();
    // What is checked is how user space spreads queues over poll threads: no kernel offload.
    let sw =
        SwitchProc::start(&[&h[0].sw_if, &h[1].sw_if], PORT_TO_PORT, &["--cores", "2", "--offload", "off"]);
    let rxq = sw.ctl(&["pmd-rxq-show"]);
    assert!(rxq.contains("pmd thread 1") && rxq.contains("queue-id: 1"), "{rxq}");
    // Many flows (source ports) spread over both transmit queues of the sender, hence over
    // both receive queues of the switch's port.
    let rx = udp_receiver(&h[1], 7100, 64, 4.0);
    for sport in 41000..41064u16 {
        udp_send(&h[0], h[1].addr(), 7100, sport, 1, 20);
    }
    let got = receiver_lines(rx);
    assert_eq!(got.len(), 64, "{got:?}");
    let stats = sw.ctl_json(&["pmd-stats"]);
    let per_pmd: Vec<u64> =
        stats["pmds"].as_array().unwrap().iter().map(|p| p["rx_packets"].as_u64().unwrap()).collect();
    assert_eq!(per_pmd.len(), 2);
    assert!(per_pmd.iter().all(|&n| n > 0), "both poll threads should have received: {per_pmd:?}");
}

#[test]
fn bad_input_gets_one_line_errors() {
    let run = |args: &[&str], flows: &str| {
        let path = std::env::temp_dir().join(format!("xs-bad-{}.flows", tag('b')));
        std::fs::write(&path, flows).unwrap();
        let mut child = Command::new(bin())
            .arg("run")
            .arg("--flows")
            .arg(&path)
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // A switch that starts after all (on lo!) must not outlive the test.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("xdpswitch run {args:?} with {flows:?} started instead of failing");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let out = child.wait_with_output().unwrap();
        let _ = std::fs::remove_file(&path);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        err
    };
    let e = run(&["--port", "xs-nonexistent0", "--port", "lo"], "");
    assert!(e.contains("xs-nonexistent0") && e.contains("does not exist"), "{e}");
    let e = run(&["--port", "lo", "--port", "lo"], "");
    assert!(e.contains("given twice"), "{e}");
    let e =
        run(&["--port", "lo"], "priority=10,in_port=1,actions=output:1\nip,nw_dst=10.0.0.300,actions=drop\n");
    assert!(e.contains(":2:") && e.contains("nw_dst"), "{e}");
    let e = run(&["--port", "lo"], "in_port=1,actions=output:7\n");
    assert!(e.contains(":1:") && e.contains('7'), "{e}");
    let e = run(&["--port", "lo"], "tp_dst=80,actions=drop\n");
    assert!(e.contains("tp_dst"), "{e}");
    let e = run(&["--port", "lo"], "# comment\n\npriority=1,tun_id=0xzz,actions=output:1\n");
    assert!(e.contains(":3:") && e.contains("tun_id"), "{e}");
}
