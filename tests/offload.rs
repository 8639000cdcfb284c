//! The hybrid fast path end to end: megaflows run inside the XDP program once busy, their
//! counters stay exact, and a rule change under traffic moves a flow between the kernel and
//! user space without losing or misdirecting a packet.

mod support;

use std::time::Duration;

use support::dut::{skip_unless_tools, Dut, DutOptions, Kind, Of};
use support::*;
use xdpswitch::netns::{neighbours, Host};

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

/// Python in `host`: receive UDP on port 9000 for `secs` and print one JSON line with the
/// number of background datagrams (payload `B...`) and of markers per phase (`M<phase>`).
fn tagged_receiver(host: &Host, secs: f64) -> std::process::Child {
    let code = format!(
        "import socket,json,time\n\
         s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
         s.setsockopt(socket.SOL_SOCKET,33,8<<20)\n\
         s.bind(('0.0.0.0',9000))\n\
         s.settimeout(0.2)\n\
         print('ready',flush=True)\n\
         b=0;m={{}};end=time.time()+{secs}\n\
         while time.time()<end:\n\
         \x20 try: d=s.recv(2048)\n\
         \x20 except socket.timeout: continue\n\
         \x20 if d[:1]==b'B': b+=1\n\
         \x20 else: k=d[1:].split(b' ')[0].decode(); m[k]=m.get(k,0)+1\n\
         print(json.dumps({{'b':b,'m':m}}),flush=True)\n"
    );
    let mut c = host.command("python3");
    c.args(["-c", &code]).stdout(std::process::Stdio::piped());
    let mut child = c.spawn().expect("receiver");
    // Wait for its socket before anything is sent.
    let out = child.stdout.as_mut().unwrap();
    let mut first = [0u8; 6];
    std::io::Read::read_exact(out, &mut first).expect("receiver ready");
    child
}

fn receiver_result(child: std::process::Child) -> serde_json::Value {
    let out = child.wait_with_output().expect("receiver");
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap_or("{}")).expect("receiver JSON")
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
    let r1 = tagged_receiver(&h[1], secs + 3.0);
    let r2 = tagged_receiver(&h[2], secs + 3.0);
    // Background traffic: 50 datagrams every 10 ms (~5000/s) for `secs`; prints the count.
    let sender = h[0]
        .command("python3")
        .args([
            "-c",
            &format!(
                "import socket,time\n\
                 s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
                 n=0;end=time.time()+{secs}\n\
                 while time.time()<end:\n\
                 \x20 for i in range(50): s.sendto(b'B%d'%n+bytes(60),('{dst}',9000)); n+=1\n\
                 \x20 time.sleep(0.01)\n\
                 print(n,flush=True)\n",
                dst = h[1].addr()
            ),
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sender");

    // Flip the rule every 0.8 s (long enough for the flow to move into the kernel between
    // flips). `ovs-ofctl` returns after the switch's barrier reply: from then on, the new
    // rule is in effect in user space and in the kernel. Markers sent right after must all
    // land where the new rule says.
    let markers = 30;
    let mut expect = Vec::new();
    for phase in 0..8 {
        std::thread::sleep(Duration::from_millis(800));
        let (rule, to) = if phase % 2 == 0 { (to_h2.as_str(), 2) } else { (to_h1, 1) };
        dut.ofctl(Of::V13, "add-flow", &[rule]);
        let payload_code = format!(
            "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
             for i in range({markers}): s.sendto(b'M{phase} '+bytes(60),('{dst}',9000))\n",
            dst = h[1].addr()
        );
        h[0].exec(&["python3", "-c", &payload_code]).expect("markers");
        expect.push((phase.to_string(), to));
    }
    let sent: u64 =
        String::from_utf8_lossy(&sender.wait_with_output().unwrap().stdout).trim().parse().unwrap();
    let (g1, g2) = (receiver_result(r1), receiver_result(r2));

    for (phase, to) in &expect {
        let (right, wrong) = if *to == 1 { (&g1, &g2) } else { (&g2, &g1) };
        assert_eq!(right["m"][phase].as_u64().unwrap_or(0), markers, "phase {phase}: {g1} {g2}");
        assert_eq!(wrong["m"][phase].as_u64().unwrap_or(0), 0, "phase {phase} misdirected: {g1} {g2}");
    }
    // Nothing lost: every background datagram reached one of the two hosts, or the switch
    // counted it dropped (it has no reason to drop any here).
    let stats = sw.ctl_json(&["pmd-stats"]);
    let counted_drops = pmd_sum(&stats, "action_dropped")
        + pmd_sum(&stats, "upcall_dropped")
        + offload_sum(&stats, "dropped")
        + pmd_sum(&stats, "tx_no_port");
    let got = g1["b"].as_u64().unwrap() + g2["b"].as_u64().unwrap();
    assert_eq!(got + counted_drops, sent, "sent {sent}, received {g1} {g2}, counted drops {counted_drops}");
    // And the flow did move: into the kernel and out of it again, more than once.
    if !offload_off() {
        let off = &stats["offload"]["flows"];
        assert!(off["installed"].as_u64().unwrap() >= 3, "{stats}");
        assert!(off["removed"].as_u64().unwrap() >= 3, "{stats}");
        assert!(offload_sum(&stats, "hit") > 0, "{stats}");
    }
}
