//! `run --ovsdb` against a real `ovsdb-server` and `ovs-vsctl` (Debian's openvswitch
//! packages). The first tests drive the database side (`vswitchd::db::serve`) with a
//! switch side that records what it is asked; the end-to-end tests at the end run the
//! `xdpswitch` binary with real traffic between namespaces.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use support::*;
use xdpswitch::config::{Config, PortKind};
use xdpswitch::netdev::PortStats;
use xdpswitch::vswitchd::db::{serve, ServeOptions};
use xdpswitch::vswitchd::{
    ApplyReport, BridgeResult, ControllerStatus, PortResult, PortStatus, SwitchControl, SwitchStatus,
};

/// Whether the Open vSwitch database tools are installed; says so when not.
fn have_ovsdb() -> bool {
    let ok = ["ovsdb-server", "ovsdb-tool", "ovs-vsctl"].iter().all(|p| which(p));
    if !ok {
        eprintln!("skipped: needs ovsdb-server, ovsdb-tool and ovs-vsctl (apt install openvswitch-switch)");
    }
    ok
}

/// A stock `ovsdb-server` over a fresh database in a temporary directory, in the
/// foreground (killed on drop).
struct DbServer {
    dir: PathBuf,
    child: Option<Child>,
    /// More `--remote` options (e.g. `ptcp:PORT:127.0.0.1`).
    remotes: Vec<String>,
}

impl DbServer {
    fn start() -> DbServer {
        DbServer::start_with(&[])
    }

    fn start_with(remotes: &[String]) -> DbServer {
        let dir = std::env::temp_dir().join(format!("xs-ovsdb-{}", tag('d')));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("conf.db");
        let st = Command::new("ovsdb-tool")
            .arg("create")
            .arg(&db)
            .arg("/usr/share/openvswitch/vswitch.ovsschema")
            .status()
            .unwrap();
        assert!(st.success(), "ovsdb-tool create");
        let mut s = DbServer { dir, child: None, remotes: remotes.to_vec() };
        s.resume();
        s
    }

    fn sock(&self) -> PathBuf {
        self.dir.join("db.sock")
    }

    fn remote(&self) -> String {
        format!("unix:{}", self.sock().display())
    }

    /// Starts the server (again) over the same database file; waits for its socket.
    fn resume(&mut self) {
        let d = &self.dir;
        let _ = std::fs::remove_file(self.sock());
        let child = Command::new("ovsdb-server")
            .arg(d.join("conf.db"))
            .arg(format!("--remote=punix:{}", self.sock().display()))
            .arg(format!("--unixctl={}", d.join("ovsdb-server.ctl").display()))
            .arg(format!("--pidfile={}", d.join("ovsdb-server.pid").display()))
            .arg(format!("--log-file={}", d.join("ovsdb-server.log").display()))
            .args(["--no-chdir", "-vconsole:off"])
            .args(self.remotes.iter().map(|r| format!("--remote={r}")))
            .stdin(Stdio::null())
            .spawn()
            .expect("starting ovsdb-server");
        self.child = Some(child);
        eventually(10, "the ovsdb-server socket", || self.sock().exists().then_some(()));
    }

    /// Stops the server (the database file stays).
    fn pause(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn vsctl_output(&self, args: &[&str]) -> Output {
        Command::new("ovs-vsctl")
            .arg(format!("--db={}", self.remote()))
            .arg("--timeout=20")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("running ovs-vsctl")
    }

    /// Runs `ovs-vsctl` (waiting for the switch, as without `--no-wait`); panics on failure.
    fn vsctl(&self, args: &[&str]) -> String {
        let out = self.vsctl_output(args);
        assert!(out.status.success(), "ovs-vsctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for DbServer {
    fn drop(&mut self) {
        self.pause();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A switch side that records every configuration it is given. Interfaces named `bad*`
/// cannot be opened.
#[derive(Default)]
struct Recorder {
    applied: Arc<Mutex<Vec<Config>>>,
}

impl SwitchControl for Recorder {
    fn apply(&mut self, cfg: &Config) -> ApplyReport {
        self.applied.lock().unwrap().push(cfg.clone());
        let mut r = ApplyReport::default();
        for b in &cfg.bridges {
            for p in &b.ports {
                let bad = p.name.starts_with("bad");
                r.ports.push(PortResult {
                    bridge: b.name.clone(),
                    name: p.name.clone(),
                    ofport: (!bad).then_some(p.ofport),
                    error: bad.then(|| format!("could not open network device {} (No such device)", p.name)),
                });
            }
            r.bridges.push(BridgeResult {
                name: b.name.clone(),
                datapath_id: b.datapath_id.unwrap_or(0xabc),
                error: None,
            });
        }
        r
    }

    fn status(&mut self) -> SwitchStatus {
        let applied = self.applied.lock().unwrap();
        let Some(cfg) = applied.last() else { return SwitchStatus::default() };
        let mut st = SwitchStatus::default();
        for b in &cfg.bridges {
            for p in b.ports.iter().filter(|p| !p.name.starts_with("bad")) {
                st.ports.push(PortStatus {
                    bridge: b.name.clone(),
                    name: p.name.clone(),
                    ofport: p.ofport,
                    admin_up: true,
                    link_up: true,
                    mtu: 1500,
                    mac: [2, 0, 0, 0, 0, p.ofport as u8],
                    stats: PortStats { rx_packets: 7, ..PortStats::default() },
                });
            }
            for t in &b.targets {
                st.controllers.push(ControllerStatus {
                    bridge: b.name.clone(),
                    target: t.to_string(),
                    connected: true,
                    role: "master".into(),
                });
            }
        }
        st
    }
}

/// `serve` on a thread with a [`Recorder`]; stopped on drop.
struct DbSide {
    applied: Arc<Mutex<Vec<Config>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl DbSide {
    fn start(remote: &str) -> DbSide {
        let rec = Recorder::default();
        let applied = rec.applied.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let (remote, stop2) = (remote.to_string(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut rec = rec;
            let opts = ServeOptions {
                status_interval: Duration::from_millis(300),
                max_backoff: Duration::from_secs(1),
                ..ServeOptions::default()
            };
            serve(&remote, &opts, &mut rec, &stop2).unwrap();
        });
        DbSide { applied, stop, thread: Some(thread) }
    }

    fn count(&self) -> usize {
        self.applied.lock().unwrap().len()
    }

    fn last(&self) -> Config {
        self.applied.lock().unwrap().last().cloned().expect("nothing applied yet")
    }

    fn all(&self) -> Vec<Config> {
        self.applied.lock().unwrap().clone()
    }
}

impl Drop for DbSide {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn port_numbers(cfg: &Config, bridge: &str) -> Vec<(String, u32)> {
    let b = cfg.bridges.iter().find(|b| b.name == bridge).unwrap_or_else(|| panic!("no {bridge} in {cfg:?}"));
    b.ports.iter().map(|p| (p.name.clone(), p.ofport)).collect()
}

#[test]
fn ovs_vsctl_drives_the_database_side() {
    if !have_ovsdb() {
        return;
    }
    let mut db = DbServer::start();
    let side = DbSide::start(&db.remote());
    // Without --no-wait: each command returns only once cur_cfg caught up with next_cfg.
    db.vsctl(&["init"]);
    db.vsctl(&["add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=netdev"]);
    let cfg = side.last();
    assert_eq!(cfg.bridges.len(), 1);
    assert!(cfg.bridges[0].ports.is_empty(), "the LOCAL port is implicit: {cfg:?}");
    assert_eq!(db.vsctl(&["get", "interface", "br0", "ofport"]), "65534");
    assert_eq!(db.vsctl(&["get", "bridge", "br0", "datapath_id"]), "\"0000000000000abc\"");
    let ovs_row = db.vsctl(&["list", "open_vswitch"]);
    assert!(ovs_row.contains("iface_types") && ovs_row.contains("afxdp"), "{ovs_row}");
    assert!(db.vsctl(&["get", "open_vswitch", ".", "db_version"]).contains('.'));

    // Ports: numbered in order, ofport_request honoured, numbers written back.
    db.vsctl(&["add-port", "br0", "eth1"]);
    db.vsctl(&["add-port", "br0", "eth2", "--", "set", "interface", "eth2", "ofport_request=7"]);
    assert_eq!(port_numbers(&side.last(), "br0"), [("eth1".into(), 1), ("eth2".into(), 7)]);
    assert_eq!(db.vsctl(&["get", "interface", "eth1", "ofport"]), "1");
    assert_eq!(db.vsctl(&["get", "interface", "eth2", "ofport"]), "7");

    // VLAN tag, live.
    db.vsctl(&["set", "port", "eth1", "tag=10"]);
    let vlan = side.last().bridges[0].ports[0].vlan.clone();
    assert_eq!(vlan.map(|v| (v.mode.name(), v.tag)), Some(("access", 10)));

    // An unknown type: an error on that interface, the others untouched.
    let n = side.count();
    let out = db.vsctl_output(&[
        "add-port",
        "br0",
        "vx0",
        "--",
        "set",
        "interface",
        "vx0",
        "type=vxlan",
        "options:remote_ip=1.2.3.4",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("vx0"), "{out:?}");
    assert_eq!(db.vsctl(&["get", "interface", "vx0", "ofport"]), "-1");
    assert!(db.vsctl(&["get", "interface", "vx0", "error"]).contains("vxlan"));
    assert_eq!(side.count(), n, "nothing to apply for an interface that cannot be used");

    // A port the switch side cannot open gets its error.
    let _ = db.vsctl_output(&["add-port", "br0", "bad0"]);
    assert_eq!(db.vsctl(&["get", "interface", "bad0", "ofport"]), "-1");
    assert_eq!(
        db.vsctl(&["get", "interface", "bad0", "error"]),
        "\"could not open network device bad0 (No such device)\""
    );

    // A change the switch does not see (external_ids) applies nothing, and still returns.
    let n = side.count();
    db.vsctl(&["set", "bridge", "br0", "external_ids:owner=test"]);
    assert_eq!(side.count(), n);

    // Controllers, fail mode, other_config; the state comes back every interval.
    db.vsctl(&["set-controller", "br0", "tcp:127.0.0.1:6653"]);
    db.vsctl(&["set-fail-mode", "br0", "secure"]);
    db.vsctl(&["set", "bridge", "br0", "other_config:datapath-id=0000000000000064"]);
    let b = side.last().bridges[0].clone();
    assert_eq!(b.targets.iter().map(|t| t.to_string()).collect::<Vec<_>>(), ["tcp:127.0.0.1:6653"]);
    assert_eq!(b.fail_mode, xdpswitch::ofproto::connmgr::FailMode::Secure);
    assert_eq!(b.datapath_id, Some(0x64));
    assert_eq!(db.vsctl(&["get", "bridge", "br0", "datapath_id"]), "\"0000000000000064\"");
    eventually(10, "Controller.is_connected", || {
        (db.vsctl(&["--columns=is_connected", "--bare", "list", "controller"]) == "true").then_some(())
    });
    assert_eq!(db.vsctl(&["--columns=role", "--bare", "list", "controller"]), "master");
    eventually(10, "Interface statistics", || {
        (db.vsctl(&["get", "interface", "eth1", "statistics:rx_packets"]) == "7").then_some(())
    });
    assert_eq!(db.vsctl(&["get", "interface", "eth1", "link_state"]), "up");
    assert_eq!(db.vsctl(&["get", "interface", "eth2", "mac_in_use"]), "\"02:00:00:00:00:07\"");

    // del-port.
    // (bad0 stays in the configuration: the switch side may find the device later.)
    db.vsctl(&["del-port", "br0", "eth2"]);
    assert_eq!(port_numbers(&side.last(), "br0"), [("bad0".into(), 2), ("eth1".into(), 1)]);

    // The database goes away: nothing is applied meanwhile (never an empty configuration);
    // when it is back, the replica is rebuilt and numbers are kept from the database.
    let n = side.count();
    db.pause();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(side.count(), n, "applied while the database was away");
    db.resume();
    db.vsctl(&["add-port", "br0", "eth3"]);
    assert_eq!(
        port_numbers(&side.last(), "br0"),
        [("bad0".into(), 2), ("eth1".into(), 1), ("eth3".into(), 3)]
    );
    assert!(side.all().iter().skip(1).all(|c| !c.bridges.is_empty()), "an empty configuration was applied");
    assert!(matches!(side.last().bridges[0].ports[2].kind, PortKind::Afxdp));

    // A second database side waits for the first's lock (ovs_vswitchd), and once it has
    // it (the first stopped: a restarted switch) rebuilds the same configuration.
    let again = DbSide::start(&db.remote());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(again.count(), 0, "two daemons configured one database");
    let before = side.last();
    drop(side);
    eventually(10, "the restarted side's apply", || (again.count() > 0).then_some(()));
    assert_eq!(again.last(), before);

    db.vsctl(&["del-br", "br0"]);
    assert!(again.last().bridges.is_empty());
}

#[test]
fn over_tcp() {
    if !have_ovsdb() {
        return;
    }
    let port = support::dut::free_port();
    let db = DbServer::start_with(&[format!("ptcp:{port}:127.0.0.1")]);
    let side = DbSide::start(&format!("tcp:127.0.0.1:{port}"));
    db.vsctl(&["init"]);
    db.vsctl(&["add-br", "br0", "--", "add-port", "br0", "eth1"]);
    assert_eq!(port_numbers(&side.last(), "br0"), [("eth1".into(), 1)]);
    assert_eq!(db.vsctl(&["get", "interface", "eth1", "ofport"]), "1");
}

#[test]
fn patch_and_gre_ports_from_the_database() {
    if !have_ovsdb() {
        return;
    }
    let db = DbServer::start();
    let side = DbSide::start(&db.remote());
    db.vsctl(&["init"]);
    db.vsctl(&["set", "open_vswitch", ".", "other_config:xdpswitch-underlays=eth9=192.0.2.1/24"]);
    db.vsctl(&[
        "add-br",
        "br-int",
        "--",
        "add-port",
        "br-int",
        "patch-tun",
        "--",
        "set",
        "interface",
        "patch-tun",
        "type=patch",
        "options:peer=patch-int",
    ]);
    db.vsctl(&[
        "add-br",
        "br-tun",
        "--",
        "add-port",
        "br-tun",
        "patch-int",
        "--",
        "set",
        "interface",
        "patch-int",
        "type=patch",
        "options:peer=patch-tun",
        "--",
        "add-port",
        "br-tun",
        "gre-1",
        "--",
        "set",
        "interface",
        "gre-1",
        "type=gre",
        "options:remote_ip=192.0.2.2",
        "options:in_key=flow",
        "options:out_key=flow",
    ]);
    let cfg = side.last();
    assert_eq!(cfg.underlays.len(), 1);
    let tun = cfg.bridges.iter().find(|b| b.name == "br-tun").unwrap();
    let gre = tun.ports.iter().find(|p| p.name == "gre-1").unwrap();
    assert_eq!(gre.note().unwrap(), "remote_ip=192.0.2.2,local_ip=192.0.2.1,key=flow");
    let int = cfg.bridges.iter().find(|b| b.name == "br-int").unwrap();
    assert_eq!(int.ports[0].kind, PortKind::Patch { peer: "patch-int".into() });
    // Numbered by name when nothing is requested or recorded: gre-1 before patch-int.
    assert_eq!(db.vsctl(&["get", "interface", "gre-1", "ofport"]), "1");
    assert_eq!(db.vsctl(&["get", "interface", "patch-int", "ofport"]), "2");
}

// ---------------------------------------------------------------------------------------
// End to end: the xdpswitch binary as the vswitchd of a real ovsdb-server.

/// `xdpswitch run --ovsdb` in the foreground, stopped with SIGTERM on drop.
struct Vswitchd {
    child: Option<Child>,
    rundir: PathBuf,
    ctl: PathBuf,
}

impl Vswitchd {
    fn start(db: &DbServer) -> Vswitchd {
        let rundir = db.dir.join("run");
        std::fs::create_dir_all(&rundir).unwrap();
        let ctl = db.dir.join("xdpswitch.ctl");
        let mut cmd = Command::new(bin());
        cmd.args(["--log", "info", "run", "--ovsdb", &db.remote()])
            .arg("--rundir")
            .arg(&rundir)
            .arg("--ctl")
            .arg(&ctl);
        if offload_off() {
            cmd.args(["--offload", "off"]);
        }
        let child = cmd.stdin(Stdio::null()).spawn().expect("starting xdpswitch run --ovsdb");
        let v = Vswitchd { child: Some(child), rundir, ctl };
        eventually(20, "xdpswitch's ctl socket", || v.ctl.exists().then_some(()));
        v
    }

    fn mgmt(&self, bridge: &str) -> String {
        format!("unix:{}", self.rundir.join(format!("{bridge}.mgmt")).display())
    }

    fn ofctl(&self, args: &[&str]) -> String {
        let out = Command::new("ovs-ofctl").args(["-O", "OpenFlow13"]).args(args).output().unwrap();
        assert!(out.status.success(), "ovs-ofctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if c.try_wait().ok().flatten().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Vswitchd {
    fn drop(&mut self) {
        self.stop();
    }
}

fn skip_e2e() -> bool {
    skip_unless_root() || !have_ovsdb() || !which("ovs-ofctl")
}

/// A minimal OpenFlow 1.3 controller: accepts connections, says HELLO and answers echo
/// requests (enough for the switch to count it connected and keep it), so
/// `Controller.is_connected` can be checked.
fn fake_controller() -> (u16, Arc<AtomicBool>) {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = Arc::new(AtomicBool::new(false));
    let s2 = seen.clone();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { return };
            s2.store(true, Ordering::Relaxed);
            let _ = c.write_all(&[4, 0, 0, 8, 0, 0, 0, 1]);
            std::thread::spawn(move || loop {
                let mut head = [0u8; 8];
                if c.read_exact(&mut head).is_err() {
                    return;
                }
                let len = usize::from(u16::from_be_bytes([head[2], head[3]])).max(8);
                let mut body = vec![0u8; len - 8];
                if c.read_exact(&mut body).is_err() {
                    return;
                }
                if head[1] == 2 {
                    // ECHO_REQUEST -> ECHO_REPLY with the same xid and data.
                    let mut reply = head.to_vec();
                    reply[1] = 3;
                    reply.extend_from_slice(&body);
                    let _ = c.write_all(&reply);
                }
            });
        }
    });
    (port, seen)
}

fn wait_ofport(db: &DbServer, iface: &str) -> String {
    eventually(20, "an ofport", || {
        let o = db.vsctl(&["get", "interface", iface, "ofport"]);
        (o != "[]" && o != "-1").then_some(o)
    })
}

#[test]
fn e2e_xdpswitch_as_the_vswitchd_of_ovsdb_server() {
    if skip_e2e() {
        return;
    }
    let h = hosts(3, 1);
    let mut db = DbServer::start();
    db.vsctl(&["--no-wait", "init"]);
    let mut sw = Vswitchd::start(&db);
    let br = format!("xo{}", tag('b'));
    db.vsctl(&["add-br", &br, "--", "set", "bridge", &br, "datapath_type=netdev"]);
    for (i, host) in h.iter().enumerate() {
        let req = format!("ofport_request={}", i + 1);
        db.vsctl(&["add-port", &br, &host.sw_if, "--", "set", "interface", &host.sw_if, &req]);
        assert_eq!(wait_ofport(&db, &host.sw_if), (i + 1).to_string());
    }
    // Standalone with no controller: NORMAL.
    assert!(eventually_pings(&h[0], &h[1], 15), "h0 does not reach h1 through the bridge");
    let flows = sw.ofctl(&["dump-flows", &sw.mgmt(&br)]);
    assert!(flows.contains("actions=NORMAL"), "{flows}");
    assert_eq!(db.vsctl(&["get", "interface", &h[0].sw_if, "link_state"]), "up");
    eventually(15, "statistics", || {
        let n = db.vsctl(&["get", "interface", &h[0].sw_if, "statistics:rx_packets"]);
        n.parse::<u64>().is_ok_and(|n| n > 0).then_some(())
    });

    // VLAN tags, live: h0 and h1 apart, then together again.
    db.vsctl(&["set", "port", &h[0].sw_if, "tag=10"]);
    db.vsctl(&["set", "port", &h[1].sw_if, "tag=20"]);
    assert!(!pings(&h[0], &h[1]), "different VLANs still reach each other");
    db.vsctl(&["set", "port", &h[1].sw_if, "tag=10"]);
    assert!(eventually_pings(&h[0], &h[1], 15), "same VLAN again but no traffic");
    db.vsctl(&["clear", "port", &h[0].sw_if, "tag", "--", "clear", "port", &h[1].sw_if, "tag"]);

    // A controller, live: the switch connects and the database says so; flows by the
    // controller's rules when secure.
    let (port, seen) = fake_controller();
    db.vsctl(&["set-controller", &br, &format!("tcp:127.0.0.1:{port}")]);
    eventually(20, "the switch connecting to the controller", || seen.load(Ordering::Relaxed).then_some(()));
    eventually(20, "Controller.is_connected", || {
        (db.vsctl(&["--columns=is_connected", "--bare", "list", "controller"]) == "true").then_some(())
    });
    db.vsctl(&["del-controller", &br]);
    assert!(eventually_pings(&h[0], &h[1], 15));

    // del-port: h2 is gone from the bridge, the others still talk.
    assert!(eventually_pings(&h[0], &h[2], 15));
    db.vsctl(&["del-port", &br, &h[2].sw_if]);
    assert!(!pings(&h[0], &h[2]), "h2 still reachable after del-port");
    assert!(eventually_pings(&h[0], &h[1], 10));

    // ovsdb-server restarts: forwarding goes on meanwhile, and changes apply after.
    db.pause();
    assert!(eventually_pings(&h[0], &h[1], 10), "forwarding stopped with the database");
    db.resume();
    db.vsctl(&["add-port", &br, &h[2].sw_if]);
    assert!(eventually_pings(&h[0], &h[2], 20), "a port added after the database restart does not work");

    // xdpswitch restarts: everything comes back from the database, numbers kept.
    sw.stop();
    let sw = Vswitchd::start(&db);
    assert!(eventually_pings(&h[0], &h[1], 20), "not rebuilt from the database");
    assert_eq!(wait_ofport(&db, &h[1].sw_if), "2");
    let ports = sw.ofctl(&["dump-ports-desc", &sw.mgmt(&br)]);
    assert!(ports.contains(&format!("1({})", h[0].sw_if)), "{ports}");

    // del-br: the ports are released.
    db.vsctl(&["del-br", &br]);
    assert!(!pings(&h[0], &h[1]), "still forwarding after del-br");
    drop(sw);
    let _ = Path::new(&db.dir);
}

#[test]
fn e2e_unknown_and_missing_interfaces_are_reported_not_fatal() {
    if skip_e2e() {
        return;
    }
    let h = hosts(2, 1);
    let db = DbServer::start();
    db.vsctl(&["--no-wait", "init"]);
    let sw = Vswitchd::start(&db);
    let br = format!("xo{}", tag('b'));
    db.vsctl(&["add-br", &br]);
    db.vsctl(&["add-port", &br, &h[0].sw_if]);
    db.vsctl(&["add-port", &br, &h[1].sw_if]);
    let _ = db.vsctl_output(&["add-port", &br, "nosuchdev0"]);
    let _ = db.vsctl_output(&["add-port", &br, "vx0", "--", "set", "interface", "vx0", "type=vxlan"]);
    assert_eq!(db.vsctl(&["get", "interface", "nosuchdev0", "ofport"]), "-1");
    assert!(db.vsctl(&["get", "interface", "nosuchdev0", "error"]).contains("nosuchdev0"));
    assert!(db.vsctl(&["get", "interface", "vx0", "error"]).contains("vxlan"));
    assert!(eventually_pings(&h[0], &h[1], 15), "the bridge's good ports do not forward");
    let flows = sw.ofctl(&["dump-flows", &sw.mgmt(&br)]);
    assert!(flows.contains("NORMAL"), "{flows}");
}
