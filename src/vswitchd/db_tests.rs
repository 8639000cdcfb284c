//! Tests of the write-back (what goes into the database after an apply and from status).

use std::io::{Read, Write};

use serde_json::json;

use super::*;
use crate::netdev::PortStats;
use crate::vswitchd::{BridgeResult, ControllerStatus, PortResult, PortStatus};

const OVS: &str = "00000000-0000-0000-0000-000000000001";
const BR: &str = "00000000-0000-0000-0000-000000000002";
const P_LOCAL: &str = "00000000-0000-0000-0000-000000000003";
const I_LOCAL: &str = "00000000-0000-0000-0000-000000000004";
const P1: &str = "00000000-0000-0000-0000-000000000005";
const I1: &str = "00000000-0000-0000-0000-000000000006";
const P2: &str = "00000000-0000-0000-0000-000000000007";
const I2: &str = "00000000-0000-0000-0000-000000000008";
const C1: &str = "00000000-0000-0000-0000-000000000009";

/// A database as ovsdb-server shows it after `add-br br0; add-port br0 eth1;
/// add-port br0 vx0 -- set interface vx0 type=vxlan; set-controller br0 tcp:127.0.0.1`.
fn replica() -> Replica {
    let mut r = Replica::new();
    let u = |s: &str| json!(["uuid", s]);
    r.apply(&json!({
        "Open_vSwitch": {OVS: {"new": {"bridges": u(BR), "next_cfg": 4, "cur_cfg": 3,
            "other_config": ["map", []], "datapath_types": ["set", []], "iface_types": ["set", []],
            "ovs_version": ["set", []], "db_version": ["set", []]}}},
        "Bridge": {BR: {"new": {"name": "br0", "ports": ["set", [u(P_LOCAL), u(P1), u(P2)]],
            "controller": u(C1), "datapath_type": "netdev", "fail_mode": ["set", []],
            "other_config": ["map", []], "datapath_id": ["set", []]}}},
        "Port": {
            P_LOCAL: {"new": {"name": "br0", "interfaces": u(I_LOCAL)}},
            P1: {"new": {"name": "eth1", "interfaces": u(I1), "tag": ["set", []]}},
            P2: {"new": {"name": "vx0", "interfaces": u(I2)}}},
        "Interface": {
            I_LOCAL: {"new": {"name": "br0", "type": "internal", "ofport": ["set", []], "error": ["set", []]}},
            I1: {"new": {"name": "eth1", "type": "", "ofport": ["set", []], "error": ["set", []]}},
            I2: {"new": {"name": "vx0", "type": "vxlan", "ofport": ["set", []], "error": ["set", []]}}},
        "Controller": {C1: {"new": {"target": "tcp:127.0.0.1", "is_connected": false}}}
    }))
    .unwrap();
    r
}

fn report(m: &Model) -> ApplyReport {
    ApplyReport {
        ports: m.config.bridges[0]
            .ports
            .iter()
            .map(|p| PortResult {
                bridge: "br0".into(),
                name: p.name.clone(),
                ofport: Some(p.ofport),
                error: None,
            })
            .collect(),
        bridges: vec![BridgeResult { name: "br0".into(), datapath_id: 0x64, error: None }],
    }
}

fn row_of<'a>(ops: &'a [Value], uuid: &str) -> &'a Value {
    let op = ops
        .iter()
        .find(|o| o["where"][0][2][1] == uuid)
        .unwrap_or_else(|| panic!("no op for {uuid}: {ops:?}"));
    assert_eq!(op["op"], "update");
    &op["row"]
}

/// Applies the update operations of a transaction to the replica, as the server's
/// notification would.
fn commit(r: &mut Replica, ops: &[Value]) {
    for op in ops.iter().filter(|o| o["op"] == "update") {
        let table = op["table"].as_str().unwrap();
        let uuid = Uuid::parse(op["where"][0][2][1].as_str().unwrap()).unwrap();
        let row = r.tables.get_mut(table).unwrap().get_mut(&uuid).unwrap();
        for (c, v) in op["row"].as_object().unwrap() {
            row.insert(c.clone(), Datum::from_json(v).unwrap());
        }
    }
}

#[test]
fn writes_back_what_ovs_vswitchd_writes_and_then_nothing() {
    let mut r = replica();
    let m = model::build(&r, &model::empty_config());
    let ops = writeback_ops(&r, &m, &report(&m), Some("8.3.1"));
    assert_eq!(row_of(&ops, I1), &json!({"ofport": 1}));
    assert_eq!(row_of(&ops, I_LOCAL), &json!({"ofport": 65534}));
    let vx = row_of(&ops, I2);
    assert_eq!(vx["ofport"], -1);
    assert!(vx["error"].as_str().unwrap().contains("vxlan"), "{vx}");
    assert_eq!(row_of(&ops, BR), &json!({"datapath_id": "0000000000000064"}));
    let ovs = row_of(&ops, OVS);
    assert_eq!(ovs["cur_cfg"], 4);
    assert_eq!(ovs["db_version"], "8.3.1");
    assert_eq!(ovs["ovs_version"], OVS_VERSION);
    assert_eq!(ovs["iface_types"], json!(["set", IFACE_TYPES]));
    assert_eq!(ops.last().unwrap()["op"], "comment");
    // Once the database holds it, the same model and report write nothing.
    commit(&mut r, &ops);
    let m2 = model::build(&r, &model::empty_config());
    assert_eq!(m2.config, m.config);
    assert!(writeback_ops(&r, &m2, &report(&m2), Some("8.3.1")).is_empty());
}

#[test]
fn a_port_the_switch_could_not_add_gets_its_error() {
    let r = replica();
    let m = model::build(&r, &model::empty_config());
    let mut rep = report(&m);
    rep.ports[0] = PortResult {
        bridge: "br0".into(),
        name: "eth1".into(),
        ofport: None,
        error: Some("could not open network device eth1 (No such device)".into()),
    };
    let ops = writeback_ops(&r, &m, &rep, None);
    assert_eq!(
        row_of(&ops, I1),
        &json!({"ofport": -1, "error": "could not open network device eth1 (No such device)"})
    );
    assert!(row_of(&ops, OVS).get("db_version").is_none());
}

#[test]
fn status_goes_into_interface_and_controller_rows() {
    let r = replica();
    let m = model::build(&r, &model::empty_config());
    let st = SwitchStatus {
        ports: vec![PortStatus {
            bridge: "br0".into(),
            name: "eth1".into(),
            ofport: 1,
            admin_up: true,
            link_up: false,
            mtu: 1500,
            mac: [2, 0, 0, 0, 0, 0x0a],
            stats: PortStats { rx_packets: 5, tx_bytes: 100, ..PortStats::default() },
        }],
        controllers: vec![ControllerStatus {
            bridge: "br0".into(),
            target: "tcp:127.0.0.1:6653".into(),
            connected: true,
            role: "master".into(),
        }],
    };
    let ops = status_ops(&r, &m, &st);
    let i1 = row_of(&ops, I1);
    assert_eq!(
        (&i1["admin_state"], &i1["link_state"], &i1["mtu"]),
        (&json!("up"), &json!("down"), &json!(1500))
    );
    assert_eq!(i1["mac_in_use"], "02:00:00:00:00:0a");
    let stats = Datum::from_json(&i1["statistics"]).unwrap();
    assert_eq!(stats.get("rx_packets").and_then(Atom::as_int), Some(5));
    assert_eq!(stats.get("tx_bytes").and_then(Atom::as_int), Some(100));
    assert_eq!(row_of(&ops, C1), &json!({"is_connected": true, "role": "master"}));
    assert_eq!(touched_rows(&ops).len(), 2);
}

#[test]
fn remotes() {
    assert_eq!("unix:/run/db.sock".parse::<Remote>().unwrap(), Remote::Unix("/run/db.sock".into()));
    assert_eq!(
        "tcp:127.0.0.1:6640".parse::<Remote>().unwrap(),
        Remote::Tcp("127.0.0.1:6640".parse().unwrap())
    );
    assert_eq!("tcp:127.0.0.1".parse::<Remote>().unwrap(), Remote::Tcp("127.0.0.1:6640".parse().unwrap()));
    assert!("ssl:1.2.3.4:6640".parse::<Remote>().is_err());
    assert!("unix:".parse::<Remote>().is_err());
}

/// A switch side that records the bridges of every configuration it is given.
struct Recorder(std::sync::Arc<std::sync::Mutex<Vec<Vec<String>>>>);

impl SwitchControl for Recorder {
    fn apply(&mut self, cfg: &Config) -> ApplyReport {
        self.0.lock().unwrap().push(cfg.bridges.iter().map(|b| b.name.clone()).collect());
        ApplyReport::default()
    }

    fn status(&mut self) -> SwitchStatus {
        SwitchStatus::default()
    }
}

/// A scripted server: grants the lock at once but sends the monitor's initial contents only
/// after `delay`; answers every transaction with success.
fn slow_server(listener: std::os::unix::net::UnixListener, delay: Duration) {
    use crate::ovsdb::{Decoder, Message};
    let Ok((mut c, _)) = listener.accept() else { return };
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut d = Decoder::new();
    let mut buf = [0u8; 65536];
    loop {
        let n = match c.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        d.push(&buf[..n]);
        while let Ok(Some(Message::Request { id, method, params })) = d.next_message() {
            let result = match method.as_str() {
                "lock" => json!({"locked": true}),
                "get_schema" => json!({"name": "Open_vSwitch", "version": "8.3.1"}),
                "monitor" => {
                    std::thread::sleep(delay);
                    json!({
                        "Open_vSwitch": {OVS: {"new": {"bridges": ["uuid", BR], "next_cfg": 1, "cur_cfg": 0}}},
                        "Bridge": {BR: {"new": {"name": "br0", "ports": ["set", []]}}}
                    })
                }
                "transact" => json!(vec![json!({}); params.len().saturating_sub(1)]),
                _ => Value::Null,
            };
            let mut out = Vec::new();
            Message::Response { id, result, error: Value::Null }.encode(&mut out);
            if c.write_all(&out).is_err() {
                return;
            }
        }
    }
}

#[test]
fn nothing_is_applied_before_the_replica_is_complete() {
    let path = std::env::temp_dir().join(format!("xs-dbtest-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let server = std::thread::spawn(move || slow_server(listener, Duration::from_millis(400)));
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut rec = Recorder(seen.clone());
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let seen2 = seen.clone();
    let watcher = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        while seen2.lock().unwrap().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        // A little longer, to catch a second apply.
        std::thread::sleep(Duration::from_millis(200));
        stop2.store(true, Ordering::Relaxed);
    });
    serve(&format!("unix:{}", path.display()), &ServeOptions::default(), &mut rec, &stop).unwrap();
    watcher.join().unwrap();
    let _ = server.join();
    let _ = std::fs::remove_file(&path);
    assert_eq!(*seen.lock().unwrap(), [vec!["br0".to_string()]]);
}
