//! The hybrid fast path end to end: megaflows run inside the XDP program once busy, their
//! counters stay exact, and a rule change under traffic moves a flow between the kernel and
//! user space without losing or misdirecting a packet.

mod support;

use std::time::Duration;

use support::dut::{skip_unless_tools, Dut, DutOptions, Kind, Of};
use support::*;
use xdpswitch::netns::neighbours;

const PORT_TO_PORT: &str = "in_port=1,actions=output:2\nin_port=2,actions=output:1\n";

fn offloaded_line(sw: &SwitchProc, needle: &str) -> Option<String> {
    sw.ctl(&["dump-megaflows"])
        .lines()
        .find(|l| l.contains(needle) && l.contains("offloaded:yes"))
        .map(String::from)
}

#[test]
fn busy_static_flows_run_in_the_kernel_with_exact_counters() {
    if skip_unless_root() {
        return;
    }
    if offload_off() {
        eprintln!("skipped: XS_OFFLOAD=off");
        return;
    }
    let h = hosts(2, 1);
    neighbours(&h[0], &h[1]).unwrap();
    let sw = SwitchProc::start(&[&h[0].sw_if, &h[1].sw_if], PORT_TO_PORT, &[]);
    // A first packet makes the megaflow; traffic in user space makes it hot; the next
    // revalidation moves it into the kernel.
    let line = eventually(10, "in_port=1 offloaded", || {
        udp_send(&h[0], h[1].addr(), 7000, 40000, 20, 64);
        offloaded_line(&sw, "in_port=1")
    });
    assert!(line.contains("actions:2"), "{line}");
    let before = sw.ctl_json(&["pmd-stats"]);
    let flows_before = n_packets(&sw.ctl(&["dump-flows"]), "in_port=1");

    let rx = udp_receiver(&h[1], 7001, 1000, 5.0);
    udp_send(&h[0], h[1].addr(), 7001, 40001, 1000, 100);
    let got = receiver_lines(rx);
    assert_eq!(got.len(), 1000, "every datagram arrives");
    assert!(got.iter().all(|l| l == "198.18.0.1 40001 100"), "{:?}", &got[..3]);

    // The kernel forwarded them: its hit counter moved by at least the 1000 datagrams, the
    // poll threads saw none of them.
    let after = sw.ctl_json(&["pmd-stats"]);
    let kernel = offload_sum(&after, "hit") - offload_sum(&before, "hit");
    assert!(kernel >= 1000, "kernel forwarded {kernel}: {after}");
    let user = pmd_sum(&after, "rx_packets") - pmd_sum(&before, "rx_packets");
    assert!(user < 1000, "user space received {user} of them: {after}");
    // OpenFlow rule counters, megaflow counters and port counters include what the kernel
    // forwarded.
    let flows = sw.ctl(&["dump-flows"]);
    assert!(n_packets(&flows, "in_port=1") >= flows_before + 1000, "{flows}");
    let mf = sw.ctl_json(&["dump-megaflows"]);
    let mf1 =
        mf.as_array().unwrap().iter().find(|m| m["match"].as_str().unwrap().contains("in_port=1")).unwrap();
    assert!(mf1["packets"].as_u64().unwrap() >= 1000 + 20, "{mf1}");
    assert_eq!(mf1["offloaded"], true);
    let ports = sw.ctl_json(&["dump-ports"]);
    assert!(ports[0]["stats"]["rx_packets"].as_u64().unwrap() >= 1020, "{ports}");
    assert!(ports[1]["stats"]["tx_packets"].as_u64().unwrap() >= 1020, "{ports}");
    let text = sw.ctl(&["pmd-stats"]);
    assert!(text.contains("offload (XDP): kernel forwarded"), "{text}");
}

#[test]
fn offload_off_keeps_everything_in_user_space() {
    if skip_unless_root() {
        return;
    }
    let h = hosts(2, 1);
    neighbours(&h[0], &h[1]).unwrap();
    let sw = SwitchProc::start(&[&h[0].sw_if, &h[1].sw_if], PORT_TO_PORT, &["--offload", "off"]);
    for _ in 0..3 {
        udp_send(&h[0], h[1].addr(), 7000, 40000, 50, 64);
        std::thread::sleep(Duration::from_millis(600));
    }
    let mf = sw.ctl(&["dump-megaflows"]);
    assert!(mf.contains("in_port=1") && !mf.contains("offloaded:"), "{mf}");
    let stats = sw.ctl_json(&["pmd-stats"]);
    assert!(stats["offload"].is_null(), "{stats}");
    assert!(pmd_sum(&stats, "rx_packets") >= 150, "{stats}");
    assert!(sw.ctl(&["pmd-stats"]).contains("offload (XDP): off"));
}

#[test]
fn rule_changes_under_traffic_lose_and_misdirect_nothing() {
    if skip_unless_root() || skip_unless_tools(Kind::Xdpswitch) {
        return;
    }
    let h = hosts(3, 1);
    // h2 takes h1's address too, so the same datagrams are delivered wherever the rule sends
    // them (the rule to h2 also rewrites the destination MAC, a kernel-side rewrite).
    h[2].exec(&["ip", "addr", "add", &format!("{}/32", h[1].addr()), "dev", "eth0"]).unwrap();
    neighbours(&h[0], &h[1]).unwrap();
    let to_h1 = "priority=10,in_port=1,udp,actions=output:2";
    let to_h2 = format!("priority=10,in_port=1,udp,actions=mod_dl_dst:{},output:3", h[2].mac);
    let dut = Dut::start_kind(
        Kind::Xdpswitch,
        &[&h[0].sw_if, &h[1].sw_if, &h[2].sw_if],
        &DutOptions { flows: format!("{to_h1}\n"), ..DutOptions::default() },
    );
    let sw = dut.xdpswitch().unwrap();

    let secs = 9.0;
    let r1 = markers::receiver(&h[1], 9000, secs + 3.0);
    let r2 = markers::receiver(&h[2], 9000, secs + 3.0);
    // Background traffic: 50 datagrams every 10 ms (~5000/s) for `secs`.
    let sender = markers::background_sender(&h[0], h[1].addr(), 9000, secs, 50);

    // Flip the rule every 0.8 s (long enough for the flow to move into the kernel between
    // flips). `ovs-ofctl` returns after the switch's barrier reply: from then on, the new
    // rule is in effect in user space and in the kernel. Markers sent right after must all
    // land where the new rule says.
    let n_markers = 30;
    let mut expect = Vec::new();
    for phase in 0..8 {
        std::thread::sleep(Duration::from_millis(800));
        let (rule, to) = if phase % 2 == 0 { (to_h2.as_str(), 2) } else { (to_h1, 1) };
        dut.ofctl(Of::V13, "add-flow", &[rule]);
        markers::send_markers(&h[0], h[1].addr(), 9000, &phase.to_string(), n_markers);
        expect.push((phase.to_string(), to));
    }
    let sent = markers::background_sent(sender);
    let (g1, g2) = (markers::received(r1), markers::received(r2));

    for (phase, to) in &expect {
        let (right, wrong) = if *to == 1 { (&g1, &g2) } else { (&g2, &g1) };
        assert_eq!(markers::markers(right, phase), u64::from(n_markers), "phase {phase}: {g1} {g2}");
        assert_eq!(markers::markers(wrong, phase), 0, "phase {phase} misdirected: {g1} {g2}");
    }
    // Nothing lost: every background datagram reached one of the two hosts, or the switch
    // counted it dropped (it has no reason to drop any here).
    let stats = sw.ctl_json(&["pmd-stats"]);
    let counted_drops = pmd_sum(&stats, "action_dropped")
        + pmd_sum(&stats, "upcall_dropped")
        + offload_sum(&stats, "dropped")
        + pmd_sum(&stats, "tx_no_port");
    let got = markers::background(&g1) + markers::background(&g2);
    assert_eq!(got + counted_drops, sent, "sent {sent}, received {g1} {g2}, counted drops {counted_drops}");
    // And the flow did move: into the kernel and out of it again, more than once.
    if !offload_off() {
        let off = &stats["offload"]["flows"];
        assert!(off["installed"].as_u64().unwrap() >= 3, "{stats}");
        assert!(off["removed"].as_u64().unwrap() >= 3, "{stats}");
        assert!(offload_sum(&stats, "hit") > 0, "{stats}");
    }
}
