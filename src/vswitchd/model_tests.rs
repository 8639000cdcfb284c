//! Tests of the database → configuration mapping, over replicas built row by row.

use super::*;
use crate::ovsdb::Atom;

/// A replica under construction, with its Open_vSwitch row.
struct Db {
    r: Replica,
    next: u128,
    ovs: Uuid,
}

type Cols<'a> = Vec<(&'a str, Datum)>;

impl Db {
    fn new() -> Db {
        let mut db = Db { r: Replica::new(), next: 1, ovs: Uuid(0) };
        db.ovs =
            db.add("Open_vSwitch", vec![("bridges", Datum::empty()), ("other_config", Datum::Map(vec![]))]);
        db
    }

    fn add(&mut self, table: &str, cols: Cols) -> Uuid {
        let u = Uuid(self.next);
        self.next += 1;
        let row = cols.into_iter().map(|(c, d)| (c.to_string(), d)).collect();
        self.r.tables.entry(table.to_string()).or_default().insert(u, row);
        u
    }

    fn set(&mut self, table: &str, u: Uuid, col: &str, d: Datum) {
        self.r.tables.get_mut(table).unwrap().get_mut(&u).unwrap().insert(col.to_string(), d);
    }

    fn iface(&mut self, name: &str, ty: &str, opts: &[(&str, &str)], mut extra: Cols) -> Uuid {
        extra.push(("name", Datum::one(name)));
        extra.push(("type", Datum::one(ty)));
        extra.push(("options", Datum::map(opts.iter().copied())));
        self.add("Interface", extra)
    }

    /// A port of one interface of the same name.
    fn port(
        &mut self,
        name: &str,
        ty: &str,
        opts: &[(&str, &str)],
        port_cols: Cols,
        iface_cols: Cols,
    ) -> Uuid {
        let i = self.iface(name, ty, opts, iface_cols);
        self.port_of(name, &[i], port_cols)
    }

    fn port_of(&mut self, name: &str, ifaces: &[Uuid], mut cols: Cols) -> Uuid {
        cols.push(("name", Datum::one(name)));
        cols.push(("interfaces", Datum::Set(ifaces.iter().map(|&u| Atom::Uuid(u)).collect())));
        self.add("Port", cols)
    }

    /// A bridge with its own internal port and `ports`, listed in Open_vSwitch.
    fn bridge(&mut self, name: &str, ports: &[Uuid], mut cols: Cols) -> Uuid {
        let local = self.port(name, "internal", &[], vec![], vec![]);
        let mut all = vec![Atom::Uuid(local)];
        all.extend(ports.iter().map(|&u| Atom::Uuid(u)));
        cols.push(("name", Datum::one(name)));
        cols.push(("ports", Datum::Set(all)));
        let b = self.add("Bridge", cols);
        let ovs = self.ovs;
        let mut bridges = self.r.row("Open_vSwitch", ovs).unwrap()["bridges"].atoms().to_vec();
        bridges.push(Atom::Uuid(b));
        self.set("Open_vSwitch", ovs, "bridges", Datum::Set(bridges));
        b
    }

    fn other_config(&mut self, kv: &[(&str, &str)]) {
        let ovs = self.ovs;
        self.set("Open_vSwitch", ovs, "other_config", Datum::map(kv.iter().copied()));
    }

    fn build(&self) -> Model {
        build(&self.r, &empty_config())
    }
}

fn ports(m: &Model, bridge: &str) -> Vec<(String, u32)> {
    let b = m.config.bridges.iter().find(|b| b.name == bridge).unwrap();
    b.ports.iter().map(|p| (p.name.clone(), p.ofport)).collect()
}

fn error_of(m: &Model, iface: &str) -> Option<String> {
    m.interface(iface).unwrap().error.clone()
}

#[test]
fn no_open_vswitch_row_is_no_bridges() {
    let m = build(&Replica::new(), &empty_config());
    assert!(m.config.bridges.is_empty() && m.interfaces.is_empty());
}

#[test]
fn bridges_ports_and_the_local_port() {
    let mut db = Db::new();
    let e1 = db.port("eth1", "", &[], vec![], vec![]);
    let e2 = db.port("eth2", "afxdp", &[], vec![], vec![]);
    let t = db.port("vm1", "internal", &[], vec![], vec![]);
    db.bridge(
        "br0",
        &[e1, e2, t],
        vec![("datapath_type", Datum::one("netdev")), ("fail_mode", Datum::one("secure"))],
    );
    let e3 = db.port("eth3", "system", &[], vec![], vec![]);
    db.bridge("br1", &[e3], vec![]);
    let m = db.build();
    assert_eq!(m.config.bridges.iter().map(|b| b.name.as_str()).collect::<Vec<_>>(), ["br0", "br1"]);
    let b0 = &m.config.bridges[0];
    assert_eq!(b0.fail_mode, FailMode::Secure);
    assert_eq!(m.config.bridges[1].fail_mode, FailMode::Standalone);
    // The bridge's own interface is not a port of the config but is written back as LOCAL.
    assert_eq!(ports(&m, "br0"), [("eth1".into(), 1), ("eth2".into(), 2), ("vm1".into(), 3)]);
    assert_eq!(b0.ports[2].kind, PortKind::Internal);
    assert_eq!((b0.ports[0].kind.clone(), b0.ports[1].kind.clone()), (PortKind::Afxdp, PortKind::Afxdp));
    let local = m.interface("br0").unwrap();
    assert!(local.local && local.error.is_none());
    assert_eq!(ports(&m, "br1"), [("eth3".into(), 1)]);
    assert_eq!(m.interfaces.len(), 6);
}

#[test]
fn unsupported_types_and_bonds_are_errors_on_their_interfaces_only() {
    let mut db = Db::new();
    let good = db.port("eth1", "", &[], vec![], vec![]);
    let vx = db.port("vx0", "vxlan", &[("remote_ip", "1.2.3.4")], vec![], vec![]);
    let a = db.iface("b1", "", &[], vec![]);
    let b = db.iface("b2", "", &[], vec![]);
    let bond = db.port_of("bond0", &[a, b], vec![]);
    let p = db.port("p0", "patch", &[], vec![], vec![]);
    db.bridge("br0", &[good, vx, bond, p], vec![]);
    let dummy = db.port("eth9", "", &[], vec![], vec![]);
    db.bridge("brd", &[dummy], vec![("datapath_type", Datum::one("dummy"))]);
    let m = db.build();
    assert_eq!(ports(&m, "br0"), [("eth1".into(), 1)]);
    assert!(error_of(&m, "vx0").unwrap().contains("type \"vxlan\" is not supported"), "{m:?}");
    assert!(error_of(&m, "b1").unwrap().contains("bonds"));
    assert!(error_of(&m, "b2").unwrap().contains("bonds"));
    assert_eq!(error_of(&m, "p0").unwrap(), "a patch interface needs options:peer");
    assert!(error_of(&m, "eth9").unwrap().contains("datapath_type \"dummy\""));
    assert_eq!(m.config.bridges.len(), 1);
}

#[test]
fn ofports_honour_requests_then_recorded_numbers_then_the_lowest_free() {
    let mut db = Db::new();
    let a = db.port("a", "", &[], vec![], vec![("ofport_request", Datum::one(5i64))]);
    let b = db.port("b", "", &[], vec![], vec![("ofport", Datum::one(1i64))]);
    let c = db.port("c", "", &[], vec![], vec![]);
    // d records 5, which a requests: d gets a new number.
    let d = db.port("d", "", &[], vec![], vec![("ofport", Datum::one(5i64))]);
    let e = db.port("e", "", &[], vec![], vec![("ofport", Datum::one(-1i64))]);
    db.bridge("br0", &[a, b, c, d, e], vec![]);
    let m = db.build();
    assert_eq!(
        ports(&m, "br0"),
        [("a".into(), 5), ("b".into(), 1), ("c".into(), 2), ("d".into(), 3), ("e".into(), 4)]
    );
}

#[test]
fn vlan_columns() {
    let mut db = Db::new();
    let access = db.port("a", "", &[], vec![("tag", Datum::one(10i64))], vec![]);
    let trunk = db.port(
        "t",
        "",
        &[],
        vec![("trunks", Datum::Set(vec![Atom::Integer(10), Atom::Integer(20)]))],
        vec![],
    );
    let native = db.port(
        "n",
        "",
        &[],
        vec![("tag", Datum::one(5i64)), ("vlan_mode", Datum::one("native-untagged"))],
        vec![],
    );
    let plain = db.port("p", "", &[], vec![("tag", Datum::empty())], vec![]);
    db.bridge("br0", &[access, trunk, native, plain], vec![]);
    let m = db.build();
    let b = &m.config.bridges[0];
    let vlan = |n: &str| b.ports.iter().find(|p| p.name == n).unwrap().vlan.clone();
    assert_eq!(vlan("a"), Some(PortVlan::new(None, Some(10), &[]).unwrap()));
    assert_eq!(vlan("t"), Some(PortVlan::new(None, None, &[10, 20]).unwrap()));
    assert_eq!(vlan("n"), Some(PortVlan::new(Some(VlanMode::NativeUntagged), Some(5), &[]).unwrap()));
    assert_eq!(vlan("p"), None);
}

#[test]
fn patches_need_a_peer_pointing_back_on_another_bridge() {
    let mut db = Db::new();
    let p1 = db.port("p1", "patch", &[("peer", "p2")], vec![], vec![]);
    let q1 = db.port("q1", "patch", &[("peer", "nowhere")], vec![], vec![]);
    db.bridge("br0", &[p1, q1], vec![]);
    let p2 = db.port("p2", "patch", &[("peer", "p1")], vec![], vec![]);
    db.bridge("br1", &[p2], vec![]);
    let m = db.build();
    assert_eq!(ports(&m, "br0"), [("p1".into(), 1)]);
    assert_eq!(m.config.bridges[1].ports[0].kind, PortKind::Patch { peer: "p1".into() });
    assert!(error_of(&m, "q1").unwrap().contains("no such patch interface"));
}

#[test]
fn gre_options_and_underlays() {
    let mut db = Db::new();
    db.other_config(&[("xdpswitch-underlays", "eth1=192.0.2.1/24@192.0.2.254; eth2=10.0.0.1/16")]);
    let g1 = db.port(
        "gre1",
        "gre",
        &[
            ("remote_ip", "192.0.2.2"),
            ("in_key", "flow"),
            ("out_key", "0x10"),
            ("csum", "true"),
            ("ttl", "9"),
            ("tos", "4"),
        ],
        vec![],
        vec![],
    );
    let g2 = db.port("gre2", "gre", &[("remote_ip", "10.0.3.3"), ("key", "7")], vec![], vec![]);
    let g3 = db.port("gre3", "gre", &[("remote_ip", "172.16.0.1")], vec![], vec![]);
    let g4 = db.port("gre4", "gre", &[("remote_ip", "flow")], vec![], vec![]);
    let g5 =
        db.port("gre5", "gre", &[("remote_ip", "10.0.3.3"), ("key", "7"), ("colour", "red")], vec![], vec![]);
    db.bridge("br-tun", &[g1, g2, g3, g4, g5], vec![]);
    let m = db.build();
    assert_eq!(m.config.underlays.len(), 2);
    assert_eq!(m.config.underlays[0].gateway, Some("192.0.2.254".parse().unwrap()));
    let b = &m.config.bridges[0];
    let PortKind::Gre(t1) = &b.ports[0].kind else { panic!("{:?}", b.ports) };
    assert_eq!(t1.local_ip, "192.0.2.1".parse::<Ipv4Addr>().unwrap());
    assert_eq!(
        (t1.in_key, t1.out_key, t1.csum, t1.ttl, t1.tos),
        (KeyMode::Flow, KeyMode::Fixed(16), true, 9, 4)
    );
    let PortKind::Gre(t2) = &b.ports[1].kind else { panic!() };
    assert_eq!((t2.local_ip, t2.in_key), ("10.0.0.1".parse().unwrap(), KeyMode::Fixed(7)));
    assert!(error_of(&m, "gre3").unwrap().contains("no underlay subnet holds 172.16.0.1"));
    assert!(error_of(&m, "gre4").unwrap().contains("only a fixed IPv4"));
    assert!(error_of(&m, "gre5").unwrap().contains("same remote_ip"), "{m:?}");
    assert!(m.warnings.iter().any(|w| w.contains("options:colour")), "{:?}", m.warnings);
}

#[test]
fn underlay_text() {
    let (u, w) = parse_underlays("eth1=192.0.2.1/24;bad;eth2=10.0.0.1/8@11.0.0.1");
    assert_eq!(u.len(), 1);
    assert_eq!(w.len(), 2);
    assert_eq!(parse_cpu_mask("0x6"), Some(vec![1, 2]));
    assert_eq!(parse_cpu_mask("f"), Some(vec![0, 1, 2, 3]));
    assert_eq!(parse_cpu_mask("xyz"), None);
}

#[test]
fn controllers_other_config_pmd_mask_and_ssl() {
    let mut db = Db::new();
    let c1 = db.add("Controller", vec![("target", Datum::one("tcp:127.0.0.1:6653"))]);
    let c2 = db.add("Controller", vec![("target", Datum::one("ptcp:6634"))]);
    let c3 = db.add("Controller", vec![("target", Datum::one("unix:/tmp/x"))]);
    let oc = Datum::map([
        ("datapath-id", "0000000000000064"),
        ("mac-aging-time", "60"),
        ("mac-table-size", "2048"),
    ]);
    db.bridge(
        "br0",
        &[],
        vec![
            ("controller", Datum::Set(vec![Atom::Uuid(c1), Atom::Uuid(c2), Atom::Uuid(c3)])),
            ("other_config", oc),
        ],
    );
    db.bridge("br1", &[], vec![("other_config", Datum::map([("datapath-id", "0x64")]))]);
    db.other_config(&[("pmd-cpu-mask", "0x3")]);
    let ssl = db.add(
        "SSL",
        vec![
            ("private_key", Datum::one("/k.pem")),
            ("certificate", Datum::one("/c.pem")),
            ("ca_cert", Datum::one("/ca.pem")),
        ],
    );
    let ovs = db.ovs;
    db.set("Open_vSwitch", ovs, "ssl", Datum::one(ssl));
    let m = db.build();
    let b = &m.config.bridges[0];
    let targets: Vec<String> = b.targets.iter().map(|t| t.to_string()).collect();
    assert_eq!(targets, ["ptcp:6634:127.0.0.1", "tcp:127.0.0.1:6653"]);
    assert_eq!(m.controllers.len(), 3);
    assert!(m.warnings.iter().any(|w| w.contains("unix:/tmp/x")), "{:?}", m.warnings);
    assert_eq!(
        (b.datapath_id, b.mac_aging, b.mac_table_size),
        (Some(0x64), Some(Duration::from_secs(60)), Some(2048))
    );
    assert_eq!(m.config.bridges[1].datapath_id, None);
    assert!(m.warnings.iter().any(|w| w.contains("datapath-id \"0x64\"")));
    assert_eq!((m.config.cores, m.config.pmd_cpus.clone()), (Some(2), vec![0, 1]));
    assert_eq!(m.config.ssl.as_ref().map(|s| s.ca_cert.display().to_string()), Some("/ca.pem".into()));
}

#[test]
fn names_are_unique_across_bridges() {
    let mut db = Db::new();
    let a = db.port("eth1", "", &[], vec![], vec![]);
    db.bridge("br0", &[a], vec![]);
    let b = db.port("eth1", "", &[], vec![], vec![]);
    let c = db.port("br0", "", &[], vec![], vec![]);
    db.bridge("br1", &[b, c], vec![]);
    let m = db.build();
    assert_eq!(ports(&m, "br0"), [("eth1".into(), 1)]);
    assert!(ports(&m, "br1").is_empty());
    let errs: Vec<_> = m.interfaces.iter().filter(|i| i.error.is_some()).map(|i| i.bridge.as_str()).collect();
    assert_eq!(errs, ["br1", "br1"]);
}

#[test]
fn the_same_replica_gives_the_same_config() {
    let mut db = Db::new();
    let a = db.port("eth1", "", &[], vec![("tag", Datum::one(3i64))], vec![]);
    db.bridge("br0", &[a], vec![]);
    assert_eq!(db.build(), db.build());
}
