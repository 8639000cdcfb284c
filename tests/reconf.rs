//! End to end: a `LiveSwitch` (the switch side of running under ovsdb-server) reconfigured
//! while it runs: ports added, a port that cannot be opened, a tag changed live, controllers
//! changed live, ports and bridges removed, everything removed. Flows a controller added
//! through the bridge's management socket survive the rebuilds.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::*;
use xdpswitch::config::Config;
use xdpswitch::run::RunOptions;
use xdpswitch::vswitchd::{ApplyReport, LiveSwitch, SwitchControl};

/// A run directory removed afterwards.
struct RunDir(PathBuf);

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run_dir(t: &str) -> RunDir {
    let d = std::env::temp_dir().join(format!("xs-reconf-{t}"));
    std::fs::create_dir_all(&d).unwrap();
    RunDir(d)
}

fn base() -> RunOptions {
    let mut o = RunOptions::default();
    if offload_off() {
        o.offload = false;
    }
    o
}

fn ofctl(argv: &[&str]) -> String {
    let out = Command::new("ovs-ofctl").args(["-O", "OpenFlow13"]).args(argv).output().expect("ovs-ofctl");
    assert!(out.status.success(), "ovs-ofctl {argv:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn mgmt(dir: &Path, bridge: &str) -> String {
    format!("unix:{}", dir.join(format!("{bridge}.mgmt")).display())
}

fn port_error<'a>(r: &'a ApplyReport, name: &str) -> Option<&'a str> {
    r.ports.iter().find(|p| p.name == name).and_then(|p| p.error.as_deref())
}

fn ofport(r: &ApplyReport, name: &str) -> Option<u32> {
    r.ports.iter().find(|p| p.name == name).and_then(|p| p.ofport)
}

fn ctl(sw: &LiveSwitch, bridge: &str, argv: &[&str]) -> String {
    let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    let r = xdpswitch::ctl::call_bridge(sw.ctl_path(), Some(bridge), &argv, false).expect("ctl call");
    assert!(r.ok, "ctl {argv:?}: {}", r.body);
    r.body
}

#[test]
fn a_running_switch_follows_its_configuration() {
    if skip_unless_root() {
        return;
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("XS_LOG").unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .try_init();
    let h = hosts(4, 1);
    let t = tag('r');
    let dir = run_dir(&t);
    let br = format!("xr{t}");
    let missing = format!("xsno{t}");
    let mut sw = LiveSwitch::new(&dir.0, base()).expect("live switch");
    assert_eq!(sw.ctl_path(), dir.0.join("xdpswitch.ctl"));
    // No configuration yet: the ctl socket answers, and says so.
    let r = xdpswitch::ctl::call(sw.ctl_path(), &["dump-flows".to_string()], false).unwrap();
    assert!(!r.ok && r.body.contains("not running"), "{r:?}");
    let cfg = |ports: &[&str], extra: &str| {
        let list: Vec<String> = ports.iter().map(|p| format!("{p:?}")).collect();
        let text = format!("[[bridge]]\nname = \"{br}\"\nports = [{}]\n{extra}", list.join(", "));
        Config::parse(&text).unwrap()
    };
    let (p0, p1, p2, p3) =
        (h[0].sw_if.as_str(), h[1].sw_if.as_str(), h[2].sw_if.as_str(), h[3].sw_if.as_str());

    // Two ports, NORMAL (a standalone bridge without controllers).
    let r = sw.apply(&cfg(&[p0, p1], ""));
    assert!(r.ports.iter().all(|p| p.error.is_none()), "{r:?}");
    assert_eq!((ofport(&r, p0), ofport(&r, p1)), (Some(1), Some(2)));
    assert!(r.bridges[0].error.is_none() && r.bridges[0].datapath_id != 0, "{r:?}");
    assert_eq!(sw.rebuilds(), 1);
    let dpid = r.bridges[0].datapath_id;
    assert!(eventually_pings(&h[0], &h[1], 10), "h0 does not reach h1");
    // The bridge's LOCAL port is configured by the operator (as br0 under OVS).
    sh_ok(&["ip", "addr", "add", "192.0.2.77/32", "dev", &br]);

    // A controller's flow through the management socket (ovs-ofctl as against OVS).
    let m = mgmt(&dir.0, &br);
    ofctl(&["add-flow", &m, "priority=100,icmp,nw_dst=198.18.0.200,actions=drop"]);
    assert!(ofctl(&["dump-flows", &m]).contains("nw_dst=198.18.0.200"));

    // A third port: a rebuild; the flow is still there, and the new port forwards.
    let r = sw.apply(&cfg(&[p0, p1, p2], ""));
    assert_eq!(ofport(&r, p2), Some(3), "{r:?}");
    assert_eq!(sw.rebuilds(), 2);
    // The LOCAL port lives on across the rebuild: same MAC, so same datapath_id, and its
    // address stays.
    assert_eq!(r.bridges[0].datapath_id, dpid, "the datapath_id changed in a rebuild");
    assert!(sh_ok(&["ip", "addr", "show", "dev", &br]).contains("192.0.2.77/32"));
    eprintln!("rebuild took {:?}", sw.last_rebuild().unwrap());
    let flows = ofctl(&["dump-flows", &m]);
    assert!(flows.contains("nw_dst=198.18.0.200"), "the controller's flow is gone: {flows}");
    assert!(eventually_pings(&h[0], &h[2], 10), "h0 does not reach the new port's h2");

    // A port after an interface that does not exist: its error, the others forward.
    let r = sw.apply(&cfg(&[p0, p1, p2, &missing], ""));
    assert_eq!(
        port_error(&r, &missing),
        Some(format!("could not open network device {missing} (No such device)").as_str()),
        "{r:?}"
    );
    assert_eq!(ofport(&r, &missing), None);
    assert!(r.ports.iter().filter(|p| p.name != missing).all(|p| p.error.is_none()), "{r:?}");
    assert!(eventually_pings(&h[1], &h[2], 10), "h1 does not reach h2 next to a missing port");
    // Applied again while it is still missing: no rebuild.
    let n = sw.rebuilds();
    let r = sw.apply(&cfg(&[p0, p1, p2, &missing], ""));
    assert!(port_error(&r, &missing).is_some());
    assert_eq!(sw.rebuilds(), n, "a port still missing rebuilt the switch");

    // A tag changed live: no rebuild, the MAC table keeps the other ports' addresses, and
    // NORMAL follows the tag (h0 on VLAN 5 alone no longer reaches h1).
    let fdb_before = ctl(&sw, &br, &["fdb-show"]);
    assert!(fdb_before.contains(&h[1].mac), "{fdb_before}");
    let n = sw.rebuilds();
    let tagged = format!("{p0}:tag=5");
    sw.apply(&cfg(&[&tagged, p1, p2, &missing], ""));
    assert_eq!(sw.rebuilds(), n, "a tag change rebuilt the switch");
    let fdb = ctl(&sw, &br, &["fdb-show"]);
    assert!(fdb.contains(&h[1].mac), "the MAC table was flushed by a tag change: {fdb}");
    assert!(!pings(&h[0], &h[1]), "h0 on VLAN 5 still reaches h1 on no VLAN");
    assert!(eventually_pings(&h[1], &h[2], 10));
    sw.apply(&cfg(&[p0, p1, p2, &missing], ""));
    assert!(eventually_pings(&h[0], &h[1], 10), "h0 untagged again does not reach h1");

    // The missing interface appears: the next apply adds it (OVS retries on every
    // reconfiguration), with the number the configuration gave it.
    sh_ok(&["ip", "link", "add", &missing, "type", "veth", "peer", "name", &format!("{missing}p")]);
    let _gone = DeleteLink(missing.clone());
    sh_ok(&["ip", "link", "set", &missing, "up"]);
    sh_ok(&["ip", "link", "set", &format!("{missing}p"), "up"]);
    let n = sw.rebuilds();
    let r = sw.apply(&cfg(&[p0, p1, p2, &missing], ""));
    assert_eq!((port_error(&r, &missing), ofport(&r, &missing)), (None, Some(4)), "{r:?}");
    assert_eq!(sw.rebuilds(), n + 1);
    assert!(ofctl(&["dump-flows", &m]).contains("nw_dst=198.18.0.200"));
    assert!(eventually_pings(&h[0], &h[2], 10));

    // Controllers changed live: the new one is connected to, no rebuild; the status says
    // it is connected once the OpenFlow hello is done, and gives each port's state.
    let ctrl = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = ctrl.local_addr().unwrap();
    let n = sw.rebuilds();
    // A listener on a port already taken: the controller and the management socket go on.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_port = busy.local_addr().unwrap().port();
    let extra = format!("controller = \"tcp:{addr}\"\nlisten = \"ptcp:{busy_port}\"\n");
    sw.apply(&cfg(&[p0, p1, p2, &missing], &extra));
    assert_eq!(sw.rebuilds(), n, "a controller change rebuilt the switch");
    assert!(ofctl(&["dump-flows", &m]).contains("nw_dst=198.18.0.200"), "no mgmt socket");
    let (mut conn, _) = ctrl.accept().expect("the switch connects to the new controller");
    conn.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    std::io::Write::write_all(&mut conn, &[4, 0, 0, 8, 0, 0, 0, 1]).unwrap(); // OFPT_HELLO, 1.3
    let target = format!("tcp:{addr}");
    let st = eventually(10, "the controller connected in the status", || {
        let st = sw.status();
        st.controllers.iter().any(|c| c.target == target && c.connected).then_some(st)
    });
    let c = st.controllers.iter().find(|c| c.target == target).unwrap();
    assert_eq!((c.bridge.as_str(), c.role.as_str()), (br.as_str(), "other"), "{st:?}");
    assert!(
        !st.controllers.iter().any(|c| c.target.starts_with("punix:")),
        "the mgmt socket is no controller"
    );
    let s0 = st.ports.iter().find(|p| p.name == p0).expect("port 1 in the status");
    assert!(
        s0.ofport == 1 && s0.admin_up && s0.link_up && s0.mtu == 1500 && s0.stats.rx_packets > 0,
        "{s0:?}"
    );
    assert_eq!(s0.mac, mac_bytes(sh_ok(&["cat", &format!("/sys/class/net/{p0}/address")]).trim()));
    assert!(st.ports.iter().any(|p| p.name == br && p.ofport == 0xffff_fffe), "LOCAL: {st:?}");
    drop(busy);
    // Controller removed: its connection closes.
    sw.apply(&cfg(&[p0, p1, p2, &missing], ""));
    assert!(sw.status().controllers.is_empty());
    let mut buf = [0u8; 64];
    let closed = loop {
        match std::io::Read::read(&mut conn, &mut buf) {
            Ok(0) => break true,
            Ok(_) => continue,
            Err(_) => break false,
        }
    };
    assert!(closed, "the removed controller's connection stays open");

    // A bridge that cannot be built (its LOCAL port's name is taken by a device that is no
    // tap): its error, and the other bridge goes on.
    let bad = Config::parse(&format!(
        "[[bridge]]\nname = \"{br}\"\nports = [\"{p0}\", \"{p1}\"]\n[[bridge]]\nname = \"lo\"\nports = [\"{p3}\"]\n"
    ))
    .unwrap();
    let r = sw.apply(&bad);
    let lo = r.bridges.iter().find(|b| b.name == "lo").unwrap();
    assert!(lo.error.as_deref().is_some_and(|e| e.contains("LOCAL port lo")), "{r:?}");
    assert!(port_error(&r, p3).is_some() && ofport(&r, p3).is_none(), "{r:?}");
    assert!(r.bridges.iter().find(|b| b.name == br).unwrap().error.is_none(), "{r:?}");
    assert!(!has_xdp(p3), "a port of a bridge that failed keeps an XDP program");
    assert!(!dir.0.join("lo.mgmt").exists(), "a bridge that failed has a management socket");
    assert!(ofctl(&["dump-flows", &m]).contains("nw_dst=198.18.0.200"));
    assert!(eventually_pings(&h[0], &h[1], 10));

    // Remove a port, and add a second bridge, then remove it.
    let br2 = format!("xq{t}");
    let two = Config::parse(&format!(
        "[[bridge]]\nname = \"{br}\"\nports = [\"{p0}\", \"{p1}\"]\n[[bridge]]\nname = \"{br2}\"\nports = [\"{p3}\"]\n"
    ))
    .unwrap();
    let r = sw.apply(&two);
    assert!(r.ports.iter().all(|p| p.error.is_none()), "{r:?}");
    assert!(!has_xdp(p2), "the removed port keeps its XDP program");
    let flows = ofctl(&["dump-flows", &m]);
    assert!(flows.contains("nw_dst=198.18.0.200"), "the controller's flow is gone: {flows}");
    assert!(Path::new(&dir.0.join(format!("{br2}.mgmt"))).exists());
    assert!(eventually_pings(&h[0], &h[1], 10));
    sw.apply(&cfg(&[p0, p1], ""));
    assert!(!dir.0.join(format!("{br2}.mgmt")).exists(), "a removed bridge's mgmt socket stays");
    assert!(!has_xdp(p3));

    // Nothing: no switch, no XDP program anywhere.
    let r = sw.apply(&Config::parse("").unwrap_or_else(|_| empty_config()));
    assert!(r.bridges.is_empty() && r.ports.is_empty());
    assert!(!sw.is_running());
    for p in [p0, p1, p2, p3, missing.as_str()] {
        assert!(!has_xdp(p), "{p} keeps an XDP program with no bridges");
    }
    assert!(!dir.0.join(format!("{br}.mgmt")).exists());
    let r = xdpswitch::ctl::call(sw.ctl_path(), &["dump-flows".to_string()], false).unwrap();
    assert!(!r.ok && r.body.contains("not running"), "{r:?}");
    drop(sw);
    assert!(!dir.0.join("xdpswitch.ctl").exists(), "the ctl socket stays after the switch went");
}

/// `xdpswitch run --listen punix:PATH`: ovs-ofctl reaches the switch on a unix socket, which
/// is gone after the switch stops.
#[test]
fn the_cli_listens_on_a_unix_socket() {
    if skip_unless_root() {
        return;
    }
    let h = hosts(2, 1);
    let t = tag('u');
    let dir = run_dir(&t);
    let path = dir.0.join("sw.mgmt");
    let listen = format!("punix:{}", path.display());
    let mut sw =
        SwitchProc::start(&[&h[0].sw_if, &h[1].sw_if], "priority=3,actions=drop\n", &["--listen", &listen]);
    let target = format!("unix:{}", path.display());
    ofctl(&["add-flow", &target, "priority=9,in_port=1,actions=output:2"]);
    let flows = ofctl(&["dump-flows", &target]);
    assert!(
        flows.contains("priority=9,in_port=1 actions=output:2") || flows.contains("in_port=1"),
        "{flows}"
    );
    assert!(flows.contains("priority=3"), "{flows}");
    assert!(sw.stop().success());
    assert!(!path.exists(), "the unix socket stays after the switch stopped");
}

/// Deletes a link on drop.
struct DeleteLink(String);

impl Drop for DeleteLink {
    fn drop(&mut self) {
        let _ = xdpswitch::netns::sh(&["ip", "link", "del", &self.0]);
    }
}

/// A configuration without bridges (the file format asks for one; the database may not).
fn empty_config() -> Config {
    let mut c = Config::parse("[[bridge]]\nname = \"unused0\"\n").unwrap();
    c.bridges.clear();
    c
}
