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
    let ports_b = sw.ctl_on(&bb, &["dump-ports"]);
    assert!(ports_b.contains(&format!("port 1: {pb} (type patch, peer={pa})")), "{ports_b}");
    assert!(ports_b.contains(&format!("port 2: {} (type afxdp", h[2].sw_if)), "{ports_b}");
    assert!(!ports_b.contains(&h[0].sw_if), "{ports_b}");
    let ports_a = sw.ctl_on(&ba, &["dump-ports"]);
    assert!(ports_a.contains(&format!("port 3: {pa} (type patch, peer={pb})")), "{ports_a}");
    assert!(!ports_a.contains(&h[2].sw_if), "{ports_a}");

    // Per-bridge flows: A has only its NORMAL rule, B its two rules, both of which forwarded.
    let flows_a = sw.ctl_on(&ba, &["dump-flows"]);
    assert!(flows_a.contains("actions=NORMAL") && !flows_a.contains("in_port"), "{flows_a}");
    let dump_b = sw.ctl_on(&bb, &["dump-flows"]);
    assert_eq!(dump_b.lines().count(), 2, "{dump_b}");
    assert!(n_packets(&dump_b, "in_port=1") >= 4, "{dump_b}");
    assert!(n_packets(&dump_b, "in_port=2") >= 4, "{dump_b}");
    // The default bridge is the first.
    assert_eq!(sw.ctl(&["dump-flows"]).lines().count(), flows_a.lines().count());

    // Bridge A learned h2's address behind its patch port (3); B has no MAC table entries
    // (it never ran NORMAL).
    let fdb_a = sw.ctl_on(&ba, &["fdb-show"]);
    let h2_row = fdb_a.lines().find(|l| l.contains(&h[2].mac)).unwrap_or_default();
    assert!(h2_row.split_whitespace().next() == Some("3"), "{fdb_a}");
    assert_eq!(sw.ctl_on(&bb, &["fdb-show"]).lines().count(), 1);

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
