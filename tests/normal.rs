//! End to end: the NORMAL action (issue 5) — MAC learning, moves, aging, static entries, a
//! bounded table, access and trunk VLANs — with hosts in namespaces. The same tests run
//! against Open vSwitch 3.1 in userspace mode with `XS_DUT=ovs` (the reference); where a
//! check is xdpswitch's own (its extra counters, `--cores`), the test says so.
//!
//! Hosts that speak 802.1Q do it through raw sockets (`support::l2`): this kernel has no VLAN
//! devices. Waits are bounded polls, never timing assertions.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use support::dut::{skip_unless_tools, Dut, DutOptions, FdbEntry, Kind, Of};
use support::l2::{self, Frame, BROADCAST};
use support::*;

const NORMAL: &str = "priority=0,actions=NORMAL\n";

/// Root and the tools (ovs-ofctl, OVS when it is the DUT, python3 for the raw-socket hosts),
/// or a printed reason to skip.
fn skip() -> bool {
    skip_unless_root() || skip_unless_tools(Kind::from_env()) || skip_unless_af_packet()
}

/// Hosts with the given addresses (`a.b.c.d/len`), one queue each.
fn hosts_at(ips: &[&str], queues: u32) -> Vec<Host> {
    let t = tag('n');
    ips.iter()
        .enumerate()
        .map(|(i, ip)| {
            Host::create(&format!("xs-{t}-{i}"), &format!("xs{t}s{i}"), ip, queues).expect("creating a host")
        })
        .collect()
}

/// A switch over every host's port, in order (port i+1 = host i).
fn start(h: &[Host], opts: &DutOptions) -> Dut {
    let ports: Vec<&str> = h.iter().map(|x| x.sw_if.as_str()).collect();
    Dut::start(&ports, opts)
}

/// NORMAL as the only rule, and the given VLAN settings per port.
fn normal_opts(port_opts: &[&'static str]) -> DutOptions {
    DutOptions { flows: NORMAL.into(), port_opts: port_opts.to_vec(), ..DutOptions::default() }
}

/// UDP datagrams `from` → `ip` on `dport` received by `to` (of `count` sent).
fn udp_to(from: &Host, to: &Host, ip: &str, dport: u16, count: usize) -> usize {
    let rx = udp_receiver(to, dport, count, 1.5);
    udp_send(from, ip, dport, 40000 + dport % 1000, count, 32);
    receiver_lines(rx).len()
}

fn udp_delivered(from: &Host, to: &Host, dport: u16, count: usize) -> usize {
    udp_to(from, to, to.addr(), dport, count)
}

/// The table as a set of (port, VLAN, MAC).
fn fdb_set(dut: &Dut) -> BTreeSet<(u32, u16, String)> {
    dut.fdb_show().into_iter().map(|e| (e.port, e.vlan, e.mac)).collect()
}

fn entry_for(dut: &Dut, mac: &str) -> Option<FdbEntry> {
    dut.fdb_show().into_iter().find(|e| e.mac == mac)
}

/// xdpswitch's `fdb-stats --json` field, None against OVS.
fn xs_stat(dut: &Dut, field: &str) -> Option<u64> {
    dut.xdpswitch().map(|sw| {
        let v = sw.ctl_json(&["fdb-stats"]);
        v[field].as_u64().unwrap_or_else(|| panic!("no {field} in fdb-stats --json: {v}"))
    })
}

/// Frames in `got` from source MAC `src`.
fn from_src<'a>(got: &'a [Frame], src: &str) -> Vec<&'a Frame> {
    got.iter().filter(|f| f.src() == src).collect()
}

#[test]
fn three_hosts_learn_and_forward() {
    if skip() {
        return;
    }
    let h = hosts(3, 1);
    let dut = start(&h, &normal_opts(&[]));
    // No static neighbours: ARP itself goes through NORMAL's flooding.
    for (a, b) in [(0, 1), (0, 2), (1, 2)] {
        assert!(eventually_pings(&h[a], &h[b], 10), "{:?}: h{a} does not reach h{b}", dut.kind);
    }
    assert_eq!(udp_delivered(&h[0], &h[1], 7001, 5), 5);
    assert_eq!(udp_delivered(&h[2], &h[0], 7002, 5), 5);
    assert_eq!(udp_delivered(&h[1], &h[2], 7003, 5), 5);
    let want: BTreeSet<_> = h.iter().enumerate().map(|(i, x)| (i as u32 + 1, 0u16, x.mac.clone())).collect();
    let got = eventually(10, "the three hosts in fdb-show", || {
        let got = fdb_set(&dut);
        (got == want).then_some(got)
    });
    assert_eq!(got, want);
    for e in dut.fdb_show() {
        let age = e.age.expect("learned entries have an age");
        assert!(age < 60, "{e:?}");
    }
    // xdpswitch only: the same table as JSON.
    if let Some(sw) = dut.xdpswitch() {
        let v = sw.ctl_json(&["fdb-show"]);
        let rows = v.as_array().unwrap_or_else(|| panic!("fdb-show --json is not an array: {v}"));
        let json: BTreeSet<_> = rows
            .iter()
            .map(|r| {
                assert_eq!(r["static"], serde_json::Value::Bool(false), "{r}");
                assert!(r["age"].as_u64().is_some(), "{r}");
                (
                    r["port"].as_u64().unwrap() as u32,
                    r["vlan"].as_u64().unwrap() as u16,
                    r["mac"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(json, want, "{v}");
    }
    // The NORMAL rule counted what it switched (OVS credits its counters every ~0.5 s).
    let flows = eventually(10, "the NORMAL rule's counter", || {
        let flows = dut.flows(Of::V13, &[]);
        (flows.len() == 1 && n_packets(&flows[0], "actions=NORMAL") >= 15 + 12).then_some(flows)
    });
    assert_eq!(flows.len(), 1, "{flows:#?}");
}

/// Standalone with no controller: a visible `priority=0 actions=NORMAL` rule (OVS's fail-open
/// rule) makes a learning switch out of an empty flow table.
#[test]
fn standalone_without_controller_is_a_learning_switch() {
    if skip() {
        return;
    }
    let h = hosts(2, 1);
    let dut = start(&h, &DutOptions { fail_mode: "standalone", ..DutOptions::default() });
    let flows = eventually(10, "the fail-open NORMAL rule", || {
        let f = dut.flows(Of::V13, &[]);
        (!f.is_empty()).then_some(f)
    });
    assert_eq!(flows.len(), 1, "{flows:#?}");
    assert!(flows[0].contains("priority=0") && flows[0].contains("actions=NORMAL"), "{flows:#?}");
    assert!(eventually_pings(&h[0], &h[1], 10));
    let want: BTreeSet<_> = [(1, 0, h[0].mac.clone()), (2, 0, h[1].mac.clone())].into();
    eventually(10, "both hosts learned", || (fdb_set(&dut) == want).then_some(()));
}

/// Secure mode with no controller and no rules: nothing passes, nothing is learned.
#[test]
fn secure_without_rules_switches_nothing() {
    if skip() {
        return;
    }
    let h = hosts(2, 1);
    neighbours(&h[0], &h[1]).unwrap();
    let dut = start(&h, &DutOptions { fail_mode: "secure", ..DutOptions::default() });
    assert!(dut.flows(Of::V13, &[]).is_empty());
    assert!(!pings(&h[0], &h[1]));
    assert_eq!(udp_delivered(&h[0], &h[1], 7005, 3), 0);
    assert!(dut.fdb_show().is_empty(), "{:?}", dut.fdb_show());
}

/// A host's MAC shows up on another port (the VM moved): the entry moves and traffic to that
/// MAC follows it.
#[test]
fn mac_move_follows_the_host() {
    if skip() {
        return;
    }
    let mut h = hosts(3, 1);
    // The 4th host will take over h0's address and MAC.
    h.extend(hosts_at(&["198.18.0.1/24"], 1));
    neighbours(&h[0], &h[1]).unwrap();
    let dut = start(&h, &normal_opts(&[]));
    assert!(eventually_pings(&h[1], &h[0], 10));
    let mac = h[0].mac.clone();
    eventually(10, "h0 learned on port 1", || entry_for(&dut, &mac).filter(|e| e.port == 1));
    let moved_before = dut.fdb_stats().moved;

    h[0].exec(&["ip", "link", "set", "eth0", "down"]).unwrap();
    h[3].exec(&["ip", "link", "set", "eth0", "address", &mac]).unwrap();
    // One frame from the new port (a gratuitous ARP) moves the entry.
    let garp = l2::arp_request(&mac, "198.18.0.1", "198.18.0.1", &[]);
    raw_send(&h[3], &[hex(&garp)]);
    let e = eventually(10, "h0's MAC moved to port 4", || entry_for(&dut, &mac).filter(|e| e.port == 4));
    assert_eq!(e.vlan, 0);
    assert!(dut.fdb_stats().moved > moved_before, "{:?}", dut.fdb_stats());
    // Unicast to that MAC now reaches port 4, without waiting for anything else.
    assert_eq!(
        udp_to(&h[1], &h[3], "198.18.0.1", 7010, 4),
        4,
        "{:?}: traffic did not follow the move",
        dut.kind
    );
    assert!(pings_ip(&h[1], "198.18.0.1"));
    assert_eq!(entry_for(&dut, &mac).map(|e| e.port), Some(4));
}

/// Entries age out when their hosts go quiet and come back when they talk again.
/// OVS takes no aging time under 15 s, so the test uses 15 s there and 3 s on xdpswitch.
#[test]
fn quiet_hosts_age_out_and_come_back() {
    if skip() {
        return;
    }
    let h = hosts(2, 1);
    // Static neighbours and no IPv6: a quiet host sends nothing at all.
    neighbours(&h[0], &h[1]).unwrap();
    let aging = match Kind::from_env() {
        Kind::Ovs => 15,
        Kind::Xdpswitch => 3,
    };
    let dut = start(&h, &DutOptions { mac_aging: Some(aging), ..normal_opts(&[]) });
    assert!(eventually_pings(&h[0], &h[1], 10));
    let want: BTreeSet<_> = [(1, 0, h[0].mac.clone()), (2, 0, h[1].mac.clone())].into();
    eventually(10, "both hosts learned", || (fdb_set(&dut) == want).then_some(()));
    let expired_before = dut.fdb_stats().expired;
    eventually(u64::from(aging) * 3 + 15, "the quiet hosts aged out", || {
        dut.fdb_show().is_empty().then_some(())
    });
    assert!(dut.fdb_stats().expired >= expired_before + 2, "{:?}", dut.fdb_stats());
    assert!(pings(&h[0], &h[1]), "unknown destinations are flooded");
    eventually(10, "both hosts learned again", || (fdb_set(&dut) == want).then_some(()));
}

/// Access ports: the same subnet on tag 10 and tag 20 is two networks; a tagged frame from an
/// access port goes nowhere (xdpswitch also counts it), as does a frame with two tags.
#[test]
fn access_vlans_isolate() {
    if skip() {
        return;
    }
    let h = hosts(4, 1);
    let dut = start(&h, &normal_opts(&["tag=10", "tag=10", "tag=20", "tag=20"]));
    assert!(eventually_pings(&h[0], &h[1], 10), "same tag 10");
    assert!(eventually_pings(&h[2], &h[3], 10), "same tag 20");
    for (a, b) in [(0, 2), (0, 3), (1, 3), (3, 0)] {
        assert!(!pings(&h[a], &h[b]), "h{a} (tag {}) reached h{b}", if a < 2 { 10 } else { 20 });
    }
    // UDP with a static neighbour entry: no ARP, the frame itself must not cross.
    neighbours(&h[0], &h[2]).unwrap();
    assert_eq!(udp_delivered(&h[0], &h[2], 7020, 3), 0, "unicast crossed from VLAN 10 to 20");
    let want: BTreeSet<_> = [
        (1, 10, h[0].mac.clone()),
        (2, 10, h[1].mac.clone()),
        (3, 20, h[2].mac.clone()),
        (4, 20, h[3].mac.clone()),
    ]
    .into();
    eventually(10, "hosts learned in their VLANs", || (fdb_set(&dut) == want).then_some(()));

    // Tagged frames into an access port: VID 10 (its own VLAN, still not allowed), and two
    // tags. Nothing of them arrives anywhere and their sources are not learned.
    // A priority tag over a VID 10 tag: xdpswitch drops it as a two-tag frame (the spec);
    // OVS 3.1 (vlan-limit 1) takes it as a priority-tagged frame of the access VLAN and
    // switches it, inner tag and all, to h1. Both keep it out of VLAN 20.
    let ovs = dut.kind == Kind::Ovs;
    let vlan_dropped = xs_stat(&dut, "vlan_dropped");
    let (one, two, three) = ("02:00:00:0a:00:01", "02:00:00:0a:00:02", "02:00:00:0a:00:04");
    let frames = [
        l2::arp_request(one, "198.18.0.1", "198.18.0.2", &[10]),
        l2::arp_request(two, "198.18.0.1", "198.18.0.2", &[10, 20]),
        l2::arp_request(three, "198.18.0.1", "198.18.0.2", &[0, 10]),
    ];
    let got = l2::send_and_watch(&h[0], &frames, &[&h[1], &h[2], &h[3]], 1.5);
    for (i, g) in got.iter().enumerate() {
        assert!(from_src(g, one).is_empty(), "a VID 10 frame from an access port reached h{}: {g:?}", i + 1);
        assert!(from_src(g, two).is_empty(), "a two-tag frame from an access port reached h{}: {g:?}", i + 1);
        if !(ovs && i == 0) {
            assert!(
                from_src(g, three).is_empty(),
                "a priority tag over a VID 10 tag from an access port reached h{}: {g:?}",
                i + 1
            );
        }
    }
    let macs: Vec<String> = dut.fdb_show().into_iter().map(|e| e.mac).collect();
    assert!(!macs.iter().any(|m| m == one || m == two || (!ovs && m == three)), "{macs:?}");
    if let Some(before) = vlan_dropped {
        let after = xs_stat(&dut, "vlan_dropped").unwrap();
        assert!(after >= before + 3, "xdpswitch: vlan_dropped {before} -> {after}");
    }

    // A priority-tagged frame (VID 0) is the access VLAN's: it reaches h1 (untagged), not h2/h3.
    let prio = "02:00:00:0a:00:03";
    let frames = [l2::eth(BROADCAST, prio, &[0], l2::ETH_EXPERIMENTAL, b"priority-tagged")];
    let got = l2::send_and_watch(&h[0], &frames, &[&h[1], &h[2], &h[3]], 1.5);
    let to1 = from_src(&got[0], prio);
    assert_eq!(to1.len(), 1, "priority-tagged frame in VLAN 10: {:?}", got[0]);
    assert_eq!(to1[0].vlan, None, "an access port sends untagged: {:?}", to1[0]);
    assert!(from_src(&got[1], prio).is_empty() && from_src(&got[2], prio).is_empty(), "{got:?}");
}

/// Learning is per (MAC, VLAN): one MAC behind port 1 in VLAN 10 and behind port 2 in VLAN
/// 20 is two entries, neither a move, and each VLAN's traffic goes to its own.
#[test]
fn same_mac_in_two_vlans_is_two_entries() {
    if skip() {
        return;
    }
    let h = hosts_at(&["198.18.0.1/24", "198.18.0.1/24", "198.18.0.2/24", "198.18.0.2/24"], 1);
    let m = h[0].mac.clone();
    h[1].exec(&["ip", "link", "set", "eth0", "address", &m]).unwrap();
    let dut = start(&h, &normal_opts(&["tag=10", "tag=20", "tag=10", "tag=20"]));
    assert!(eventually_pings(&h[2], &h[0], 10), "VLAN 10");
    assert!(eventually_pings(&h[3], &h[1], 10), "VLAN 20");
    let want: BTreeSet<_> =
        [(1, 10, m.clone()), (2, 20, m.clone()), (3, 10, h[2].mac.clone()), (4, 20, h[3].mac.clone())].into();
    eventually(10, "the MAC learned in both VLANs", || (fdb_set(&dut) == want).then_some(()));
    assert_eq!(dut.fdb_stats().moved, 0, "{:?}", dut.fdb_stats());
    // Unicast to that MAC in VLAN 10 reaches port 1 only, in VLAN 20 port 2 only.
    let got = l2::watch_while(&[&h[1]], 1.5, || assert_eq!(udp_delivered(&h[2], &h[0], 7060, 3), 3));
    assert!(
        got[0].iter().all(|f| f.udp_dport() != Some(7060)),
        "VLAN 10 unicast reached VLAN 20: {:?}",
        got[0]
    );
    let got = l2::watch_while(&[&h[0]], 1.5, || assert_eq!(udp_delivered(&h[3], &h[1], 7061, 3), 3));
    assert!(
        got[0].iter().all(|f| f.udp_dport() != Some(7061)),
        "VLAN 20 unicast reached VLAN 10: {:?}",
        got[0]
    );
}

/// A port moved from VLAN 10 to VLAN 20 while running: its host talks to VLAN 20 at once
/// and no longer to VLAN 10.
#[test]
fn port_vlan_change_applies_live() {
    if skip() {
        return;
    }
    let h = hosts(3, 1);
    let dut = start(&h, &normal_opts(&["tag=10", "tag=10", "tag=20"]));
    assert!(eventually_pings(&h[0], &h[1], 10));
    assert!(!pings(&h[1], &h[2]));
    dut.set_port_vlan(&h[1].sw_if, "tag=20");
    assert!(eventually_pings(&h[1], &h[2], 10), "{:?}: h1 does not reach VLAN 20 after the change", dut.kind);
    assert!(!pings(&h[0], &h[1]), "h1 still reaches VLAN 10");
    eventually(10, "h1 learned in VLAN 20", || entry_for(&dut, &h[1].mac).filter(|e| e.vlan == 20));
    // Back to a trunk of every VLAN: h1 speaks untagged, VLAN 0, reaching neither access host.
    dut.set_port_vlan(&h[1].sw_if, "");
    assert!(!pings(&h[1], &h[2]) && !pings(&h[1], &h[0]));
}

/// A trunk of VLANs 10 and 20 to a raw-socket host, two access hosts with the same address in
/// VLAN 10 and 20: each tagged ARP request is answered by its own VLAN's host, tagged.
#[test]
fn trunk_carries_tagged_vlans() {
    if skip() {
        return;
    }
    let h = hosts_at(&["198.18.0.10/24", "198.18.0.10/24", "198.18.0.200/24"], 1);
    let dut = start(&h, &normal_opts(&["tag=10", "tag=20", "trunks=10,20"]));
    let (a10, a20, trunk) = (&h[0], &h[1], &h[2]);
    let me = "02:00:00:00:77:01";
    let asks = [
        l2::arp_request(me, "198.18.0.99", "198.18.0.10", &[10]),
        l2::arp_request(me, "198.18.0.99", "198.18.0.10", &[20]),
    ];
    // The first round may meet a switch still settling (OVS): retry a few rounds.
    let replies = eventually(15, "ARP replies on the trunk", || {
        let got = l2::send_and_watch(trunk, &asks, &[trunk], 1.5).remove(0);
        let replies: Vec<(Option<u16>, String)> = got
            .iter()
            .filter(|f| f.dst() == me)
            .filter_map(|f| f.arp().filter(|a| a.0 == 2 && a.2 == "198.18.0.10").map(|a| (f.vlan, a.1)))
            .collect();
        (replies.len() >= 2).then_some(replies)
    });
    let set: BTreeSet<_> = replies.into_iter().collect();
    let want: BTreeSet<_> = [(Some(10), a10.mac.clone()), (Some(20), a20.mac.clone())].into();
    assert_eq!(set, want, "each VLAN's host answers, tagged with its VID");
    // The trunk host's MAC is learned twice, once per VLAN, on port 3.
    let fdb = fdb_set(&dut);
    assert!(fdb.contains(&(3, 10, me.to_string())) && fdb.contains(&(3, 20, me.to_string())), "{fdb:?}");
    assert!(fdb.contains(&(1, 10, a10.mac.clone())) && fdb.contains(&(2, 20, a20.mac.clone())), "{fdb:?}");

    // A broadcast from an access host reaches the trunk tagged with its VLAN.
    let got = l2::watch_while(&[trunk], 2.0, || {
        let _ = a20.exec(&["ping", "-c", "1", "-W", "1", "198.18.0.77"]);
    });
    let arps: Vec<_> = from_src(&got[0], &a20.mac).into_iter().filter(|f| f.arp().is_some()).collect();
    assert!(!arps.is_empty(), "a20's ARP broadcast did not reach the trunk: {:?}", got[0]);
    assert!(arps.iter().all(|f| f.vlan == Some(20)), "{arps:?}");

    // Untagged (VLAN 0 is not trunked) and VID 30 frames from the trunk are dropped.
    let vlan_dropped = xs_stat(&dut, "vlan_dropped");
    let (u, t30) = ("02:00:00:00:77:02", "02:00:00:00:77:03");
    let frames = [
        l2::arp_request(u, "198.18.0.98", "198.18.0.10", &[]),
        l2::arp_request(t30, "198.18.0.97", "198.18.0.10", &[30]),
    ];
    let got = l2::send_and_watch(trunk, &frames, &[a10, a20], 1.5);
    for (i, g) in got.iter().enumerate() {
        assert!(from_src(g, u).is_empty(), "an untagged frame from the trunk reached a{i}: {g:?}");
        assert!(from_src(g, t30).is_empty(), "a VID 30 frame from the trunk reached a{i}: {g:?}");
    }
    let macs: Vec<String> = dut.fdb_show().into_iter().map(|e| e.mac).collect();
    assert!(!macs.iter().any(|m| m == u || m == t30), "{macs:?}");
    if let Some(before) = vlan_dropped {
        let after = xs_stat(&dut, "vlan_dropped").unwrap();
        assert!(after >= before + 2, "xdpswitch: vlan_dropped {before} -> {after}");
    }
}

/// native-untagged and native-tagged ports (native VLAN 10, every VLAN trunked): what they
/// send for the native VLAN and for another, and where their untagged frames go.
#[test]
fn native_vlan_modes_tag_on_egress() {
    if skip() {
        return;
    }
    let h = hosts_at(&["198.18.0.1/24", "198.18.0.2/24", "198.18.0.101/24", "198.18.0.102/24"], 1);
    let dut = start(
        &h,
        &normal_opts(&[
            "tag=10",
            "tag=20",
            "vlan_mode=native-untagged tag=10",
            "vlan_mode=native-tagged tag=10",
        ]),
    );
    let (v10, v20, nu, nt) = (&h[0], &h[1], &h[2], &h[3]);
    // Broadcasts from VLAN 10 and VLAN 20 access hosts, as the two native ports see them.
    let b10 = l2::eth(BROADCAST, "02:00:00:00:10:01", &[], l2::ETH_EXPERIMENTAL, b"from vlan 10");
    let b20 = l2::eth(BROADCAST, "02:00:00:00:20:01", &[], l2::ETH_EXPERIMENTAL, b"from vlan 20");
    // What each native port got of each broadcast, kept over retries (a round may meet a busy
    // switch: OVS handles each new flow in its slow path).
    let mut got: [Option<Option<u16>>; 4] = [None; 4];
    let mut rounds = 0;
    eventually(30, "broadcasts on the native ports", || {
        rounds += 1;
        let g10 = l2::send_and_watch(v10, std::slice::from_ref(&b10), &[nu, nt], 1.5);
        let g20 = l2::send_and_watch(v20, std::slice::from_ref(&b20), &[nu, nt], 1.5);
        let pick = |g: &[Frame], src: &str| from_src(g, src).first().map(|f| f.vlan);
        let seen = [
            pick(&g10[0], "02:00:00:00:10:01"),
            pick(&g10[1], "02:00:00:00:10:01"),
            pick(&g20[0], "02:00:00:00:20:01"),
            pick(&g20[1], "02:00:00:00:20:01"),
        ];
        for (g, s) in got.iter_mut().zip(seen) {
            *g = g.or(s);
        }
        eprintln!("round {rounds}: {got:?}");
        got.iter().all(Option::is_some).then_some(())
    });
    assert_eq!(got[0], Some(None), "native-untagged sends its native VLAN untagged");
    assert_eq!(got[1], Some(Some(10)), "native-tagged sends its native VLAN tagged");
    assert_eq!(got[2], Some(Some(20)), "native-untagged sends other VLANs tagged");
    assert_eq!(got[3], Some(Some(20)), "native-tagged sends other VLANs tagged");

    // Untagged frames from either native port are in VLAN 10: v10 gets them, v20 does not.
    let (s_nu, s_nt) = ("02:00:00:00:0e:01", "02:00:00:00:0e:02");
    let g = l2::send_and_watch(
        nu,
        &[l2::eth(BROADCAST, s_nu, &[], l2::ETH_EXPERIMENTAL, b"u")],
        &[v10, v20, nt],
        1.5,
    );
    assert_eq!(from_src(&g[0], s_nu).len(), 1, "{:?}", g[0]);
    assert!(from_src(&g[1], s_nu).is_empty(), "{:?}", g[1]);
    assert_eq!(from_src(&g[2], s_nu).iter().map(|f| f.vlan).collect::<Vec<_>>(), [Some(10)]);
    let g = l2::send_and_watch(
        nt,
        &[l2::eth(BROADCAST, s_nt, &[], l2::ETH_EXPERIMENTAL, b"t")],
        &[v10, v20, nu],
        1.5,
    );
    assert_eq!(from_src(&g[0], s_nt).len(), 1, "{:?}", g[0]);
    assert!(from_src(&g[1], s_nt).is_empty(), "{:?}", g[1]);
    assert_eq!(from_src(&g[2], s_nt).iter().map(|f| f.vlan).collect::<Vec<_>>(), [None]);
    // Tagged 20 from a native port is VLAN 20's.
    let s20 = "02:00:00:00:0e:03";
    let g = l2::send_and_watch(
        nu,
        &[l2::eth(BROADCAST, s20, &[20], l2::ETH_EXPERIMENTAL, b"x")],
        &[v10, v20],
        1.5,
    );
    assert!(from_src(&g[0], s20).is_empty(), "{:?}", g[0]);
    assert_eq!(from_src(&g[1], s20).iter().map(|f| f.vlan).collect::<Vec<_>>(), [None]);
    let fdb = fdb_set(&dut);
    for want in [(3, 10, s_nu), (4, 10, s_nt), (3, 20, s20)] {
        assert!(fdb.contains(&(want.0, want.1, want.2.to_string())), "{want:?} not in {fdb:?}");
    }
}

/// OVS's walk-through: a rule for one destination MAC ahead of NORMAL. Traffic to h1 goes
/// to port 3; the rest is switched normally; both rules count what they took.
#[test]
fn rule_ahead_of_normal_overrides_one_destination() {
    if skip() {
        return;
    }
    let h = hosts(3, 1);
    for (a, b) in [(0, 1), (0, 2), (1, 2)] {
        neighbours(&h[a], &h[b]).unwrap();
    }
    let flows = format!("priority=100,dl_dst={},actions=output:3\n{NORMAL}", h[1].mac);
    let dut = start(&h, &DutOptions { flows, ..DutOptions::default() });
    assert!(eventually_pings(&h[0], &h[2], 10));
    let dump = dut.ofctl(Of::V13, "dump-flows", &[]);
    let (hi0, lo0) = (n_packets(&dump, "priority=100"), n_packets(&dump, "actions=NORMAL"));

    let got = l2::watch_while(&[&h[2]], 2.0, || {
        assert_eq!(
            udp_delivered(&h[0], &h[1], 7030, 5),
            0,
            "the priority 100 rule did not take h1's traffic"
        );
    });
    let to_h1: Vec<_> =
        got[0].iter().filter(|f| f.dst() == h[1].mac && f.udp_dport() == Some(7030)).collect();
    assert_eq!(to_h1.len(), 5, "h2 should have got h1's frames: {:?}", got[0]);
    assert_eq!(udp_delivered(&h[1], &h[0], 7031, 4), 4, "NORMAL for everything else");
    assert_eq!(udp_delivered(&h[2], &h[0], 7032, 3), 3, "NORMAL for everything else");
    eventually(10, "both rules counted", || {
        let dump = dut.ofctl(Of::V13, "dump-flows", &[]);
        let (hi, lo) = (n_packets(&dump, "priority=100"), n_packets(&dump, "actions=NORMAL"));
        (hi == hi0 + 5 && lo >= lo0 + 7).then_some(())
    });
}

/// A static entry (`fdb-add`) stays put when its MAC shows up on another port, and traffic to
/// it keeps going there; `fdb-del` removes it.
#[test]
fn static_entry_is_not_moved() {
    if skip() {
        return;
    }
    let h = hosts(3, 1);
    let dut = start(&h, &normal_opts(&[]));
    let m = "02:00:00:00:5a:01";
    dut.fdb_add(&h[1].sw_if, 0, m);
    let e = eventually(5, "the static entry", || entry_for(&dut, m));
    assert_eq!((e.port, e.vlan, e.age), (2, 0, None), "{e:?}");
    assert_eq!(dut.fdb_stats().static_entries, 1);

    // The MAC as a source on port 1: learning must leave the static entry alone.
    let bcast = l2::eth(BROADCAST, m, &[], l2::ETH_EXPERIMENTAL, b"impostor");
    let got = l2::send_and_watch(&h[0], &[bcast], &[&h[1], &h[2]], 1.0);
    assert_eq!(from_src(&got[1], m).len(), 1, "the broadcast is still switched: {:?}", got[1]);
    let e = entry_for(&dut, m).expect("static entry gone");
    assert_eq!((e.port, e.age), (2, None), "{e:?}");
    // Unicast to the MAC goes to port 2 only.
    let uni = l2::udp(m, &h[2].mac, &[], "198.18.0.3", "198.18.0.2", 5000, 7040, b"to the static");
    let got = l2::send_and_watch(&h[2], &[uni], &[&h[0], &h[1]], 1.0);
    assert!(got[0].iter().all(|f| f.dst() != m), "went to port 1: {:?}", got[0]);
    assert_eq!(got[1].iter().filter(|f| f.dst() == m).count(), 1, "{:?}", got[1]);

    // xdpswitch only: fdb-add also takes a port number, and a VLAN.
    if let Some(sw) = dut.xdpswitch() {
        let n = "02:00:00:00:5a:02";
        sw.ctl(&["fdb-add", "3", "7", n]);
        let e = entry_for(&dut, n).expect("static entry by port number");
        assert_eq!((e.port, e.vlan, e.age), (3, 7, None), "{e:?}");
        assert_eq!(dut.fdb_stats().static_entries, 2);
        dut.fdb_del(7, n);
        assert!(entry_for(&dut, n).is_none());
    }
    dut.fdb_del(0, m);
    assert!(entry_for(&dut, m).is_none(), "fdb-del left the static entry: {:?}", dut.fdb_show());
    assert_eq!(dut.fdb_stats().static_entries, 0);
}

/// `fdb/flush` as OVS 3.1 does it: learned entries go, static ones stay (its flush walks the
/// aging list, which static entries are not on). OVS relearns from datapath flows that saw
/// packets since its last look (every ~0.5 s), so the hosts are quiet for a while first.
#[test]
fn fdb_flush_keeps_static_entries() {
    if skip() {
        return;
    }
    let h = hosts(2, 1);
    neighbours(&h[0], &h[1]).unwrap();
    let dut = start(&h, &normal_opts(&[]));
    let m = "02:00:00:00:5a:03";
    dut.fdb_add(&h[1].sw_if, 0, m);
    assert!(eventually_pings(&h[0], &h[1], 10));
    eventually(10, "both hosts learned", || (dut.fdb_show().len() == 3).then_some(()));
    std::thread::sleep(Duration::from_secs(2));
    dut.fdb_flush();
    let left = dut.fdb_show();
    assert_eq!(left.len(), 1, "fdb flush should leave exactly the static entry: {left:?}");
    assert_eq!((left[0].mac.as_str(), left[0].port, left[0].age), (m, 2, None), "{left:?}");
    assert_eq!(dut.fdb_stats().static_entries, 1);
}

/// Frames from 20 000 random source MACs against a table of 1000: the table stays bounded,
/// evicts, and the real hosts keep talking.
#[test]
fn random_source_flood_is_bounded() {
    if skip() {
        return;
    }
    let h = hosts(3, 1);
    let dut = start(&h, &DutOptions { mac_table_size: Some(1000), ..normal_opts(&[]) });
    assert!(eventually_pings(&h[0], &h[1], 10));
    l2::flood_random_sources(&h[2], 20_000);
    let fdb = dut.fdb_show();
    assert!(fdb.len() <= 1000, "{} entries", fdb.len());
    let st = dut.fdb_stats();
    assert_eq!(st.max, 1000, "{st:?}");
    assert!(st.entries <= 1000, "{st:?}");
    assert!(st.evicted > 0, "{st:?}");
    assert!(fdb.iter().filter(|e| e.port == 3).count() > 500, "the flood's MACs fill the table");
    // Eviction takes from the port with the most entries: the quiet real hosts keep theirs.
    for (i, x) in h[..2].iter().enumerate() {
        assert!(
            fdb.iter().any(|e| e.mac == x.mac && e.port == i as u32 + 1),
            "h{i} was evicted by the flood"
        );
    }
    assert!(pings(&h[0], &h[1]), "{:?}: hosts stop talking after the flood", dut.kind);
    assert_eq!(udp_delivered(&h[1], &h[0], 7050, 5), 5);
    let macs: BTreeSet<String> = dut.fdb_show().into_iter().map(|e| e.mac).collect();
    assert!(macs.contains(&h[0].mac) && macs.contains(&h[1].mac), "hosts not in the table after talking");
}

/// A frame with a multicast source MAC is forwarded but its source never learned (xdpswitch
/// also counts it).
#[test]
fn multicast_source_is_not_learned() {
    if skip() {
        return;
    }
    let h = hosts(2, 1);
    let dut = start(&h, &normal_opts(&[]));
    assert!(eventually_pings(&h[0], &h[1], 10));
    let before = xs_stat(&dut, "src_multicast");
    let mc = "01:00:5e:00:00:42";
    let f = l2::eth(BROADCAST, mc, &[], l2::ETH_EXPERIMENTAL, b"multicast source");
    let got = l2::send_and_watch(&h[0], &[f.clone(), f], &[&h[1]], 1.5);
    assert_eq!(
        from_src(&got[0], mc).len(),
        2,
        "frames with a multicast source are still switched: {:?}",
        got[0]
    );
    assert!(entry_for(&dut, mc).is_none(), "{:?}", dut.fdb_show());
    if let Some(before) = before {
        let after = xs_stat(&dut, "src_multicast").unwrap();
        assert!(after >= before + 2, "xdpswitch: src_multicast {before} -> {after}");
    }
}

/// xdpswitch only (`--cores 2`, two queues per veth): a MAC learned from one poll thread's
/// queue is known to the other — every flow, whatever queue it lands on, is delivered unicast.
#[test]
fn learning_is_shared_by_poll_threads() {
    if skip() || Kind::from_env() == Kind::Ovs {
        return;
    }
    let h = hosts(3, 2);
    for (a, b) in [(0, 1), (0, 2), (1, 2)] {
        neighbours(&h[a], &h[b]).unwrap();
    }
    // What is checked is the poll threads' shared MAC table: the kernel fast path stays off.
    let args = ["--cores", "2", "--offload", "off"].map(String::from).to_vec();
    let dut = start(&h, &DutOptions { extra_args: args, ..normal_opts(&[]) });
    let sw = dut.xdpswitch().expect("xdpswitch");
    // Many UDP source ports spread over both queues of each veth.
    for sport in 0..16u16 {
        udp_send(&h[0], h[1].addr(), 7100, 41000 + sport, 1, 32);
        udp_send(&h[1], h[0].addr(), 7101, 42000 + sport, 1, 32);
    }
    let want: BTreeSet<_> = [(1, 0, h[0].mac.clone()), (2, 0, h[1].mac.clone())].into();
    eventually(10, "both hosts learned", || fdb_set(&dut).is_superset(&want).then_some(()));
    // Now unicast, one datagram from each of 32 source ports: h1 gets them all, h2 none,
    // and both poll threads carried some (so each knew h1's MAC).
    let rx_per_pmd = || -> Vec<u64> {
        let stats = sw.ctl_json(&["pmd-stats"]);
        stats["pmds"].as_array().unwrap().iter().map(|p| p["rx_packets"].as_u64().unwrap_or(0)).collect()
    };
    let before = rx_per_pmd();
    let send = format!(
        "import socket\n\
         for p in range(43000,43032):\n\
         \x20 s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(('0.0.0.0',p))\n\
         \x20 s.sendto(bytes(32),('{}',7102)); s.close()\n",
        h[1].addr()
    );
    let got = l2::watch_while(&[&h[2]], 2.0, || {
        let rx = udp_receiver(&h[1], 7102, 32, 1.5);
        h[0].exec(&["python3", "-c", &send]).expect("python3 sender");
        assert_eq!(receiver_lines(rx).len(), 32, "unicast lost");
    });
    let leaked: Vec<_> = got[0].iter().filter(|f| f.dst() == h[1].mac).collect();
    assert!(leaked.is_empty(), "known unicast was flooded to h2: {leaked:?}");
    let after = rx_per_pmd();
    assert_eq!(after.len(), 2, "{after:?}");
    assert!(
        after.iter().zip(&before).all(|(a, b)| a > b),
        "the flows did not spread over both poll threads: rx {before:?} -> {after:?}"
    );
}

/// The parsers of the shared text formats (no root needed).
#[test]
fn fdb_text_formats_parse() {
    let show = " port  VLAN  MAC                Age\n    1     0  02:00:00:00:00:01    3\n    2    10  02:00:00:00:00:02  static\nLOCAL     0  AA:00:00:00:00:03    0\n";
    let rows = support::dut::parse_fdb(show, &[]);
    assert_eq!(
        rows,
        [
            FdbEntry { port: 1, vlan: 0, mac: "02:00:00:00:00:01".into(), age: Some(3) },
            FdbEntry { port: 2, vlan: 10, mac: "02:00:00:00:00:02".into(), age: None },
            FdbEntry { port: support::dut::LOCAL, vlan: 0, mac: "aa:00:00:00:00:03".into(), age: Some(0) },
        ]
    );
    let stats = "Statistics for bridge \"xdpbr0\":\n  Current/maximum MAC entries in the table: 3/8192\n  Current static MAC entries in the table : 1\n  Total number of learned MAC entries     : 4\n  Total number of expired MAC entries     : 5\n  Total number of evicted MAC entries     : 6\n  Total number of port moved MAC entries  : 7\n  Learning events dropped (queue full)    : 8\n  Frames dropped for their VLAN           : 9\n  Frames with a multicast source (not learned): 10\n";
    let st = support::dut::FdbStats::parse(stats);
    assert_eq!(
        (st.entries, st.max, st.static_entries, st.learned, st.expired, st.evicted, st.moved),
        (3, 8192, 1, 4, 5, 6, 7)
    );
    assert_eq!((st.learn_dropped, st.vlan_dropped, st.src_multicast), (Some(8), Some(9), Some(10)));
    let ovs = stats.lines().take(7).collect::<Vec<_>>().join("\n");
    assert_eq!(support::dut::FdbStats::parse(&ovs).vlan_dropped, None);
}
