//! The device under test for the OpenFlow end-to-end tests: `xdpswitch run` (default) or, as
//! the reference, Open vSwitch 3.1 in userspace mode (`XS_DUT=ovs`), over the same topology:
//! ports 1..N in the given order, OFPP_LOCAL a tap named after the bridge, a passive OpenFlow
//! listener on loopback for `ovs-ofctl`, optional active controllers and a fail mode.
//!
//! Everything a `Dut` starts (processes, OVS run directory, XDP programs on its ports) is
//! stopped and removed on drop, also when a test panics.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::{has_xdp, output_ok, ovs_command, start_ovs_daemons, stop_ovs_daemons, tag, which, SwitchProc};

/// Which switch runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Xdpswitch,
    Ovs,
}

impl Kind {
    /// `XS_DUT=ovs` selects Open vSwitch; anything else (or nothing) xdpswitch.
    pub fn from_env() -> Kind {
        match std::env::var("XS_DUT").as_deref() {
            Ok("ovs") => Kind::Ovs,
            _ => Kind::Xdpswitch,
        }
    }
}

/// OpenFlow protocol versions, as `ovs-ofctl -O` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Of {
    V10,
    V13,
}

impl Of {
    pub fn flag(self) -> &'static str {
        match self {
            Of::V10 => "OpenFlow10",
            Of::V13 => "OpenFlow13",
        }
    }
}

/// How to start a [`Dut`].
#[derive(Clone, Debug)]
pub struct DutOptions {
    /// Active controllers (`tcp:IP:PORT`).
    pub controllers: Vec<String>,
    /// `secure` or `standalone`.
    pub fail_mode: &'static str,
    /// `--of-versions` (xdpswitch) / bridge `protocols` (OVS), e.g. `1.0,1.3`.
    pub of_versions: &'static str,
    /// Rules loaded at start (xdpswitch `--flows`, OVS `add-flows`), ovs-ofctl syntax.
    pub flows: String,
    /// OVS only: controller inactivity probe in ms (OVS takes at least 5000).
    pub probe_ms: u32,
    /// Per-port VLAN settings, parallel to the ports (missing or empty: none, a trunk of every
    /// VLAN), in `ovs-vsctl set port` syntax separated by spaces: `"tag=10"`,
    /// `"trunks=10,20"`, `"vlan_mode=native-untagged tag=5 trunks=10"`. xdpswitch gets them
    /// as `--port NAME:tag=10:trunks=10,20`.
    pub port_opts: Vec<&'static str>,
    /// MAC aging in seconds (xdpswitch `--mac-aging`, OVS `other_config:mac-aging-time`).
    pub mac_aging: Option<u32>,
    /// MAC table size (xdpswitch `--mac-table-size`, OVS `other_config:mac-table-size`).
    pub mac_table_size: Option<u32>,
    /// xdpswitch only: more `run` arguments (`--cores 2`).
    pub extra_args: Vec<String>,
}

impl Default for DutOptions {
    fn default() -> Self {
        DutOptions {
            controllers: Vec::new(),
            fail_mode: "secure",
            of_versions: "1.0,1.3",
            flows: String::new(),
            probe_ms: 5000,
            port_opts: Vec::new(),
            mac_aging: None,
            mac_table_size: None,
            extra_args: Vec::new(),
        }
    }
}

/// A free TCP port on loopback (bound once and released; good enough for tests that run one
/// at a time).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// Whether `ovs-ofctl` (and, for OVS, the daemons) is installed; prints why not.
pub fn skip_unless_tools(kind: Kind) -> bool {
    let mut need = vec!["ovs-ofctl"];
    if kind == Kind::Ovs {
        need.extend(["ovs-vswitchd", "ovsdb-server", "ovs-vsctl", "ovsdb-tool"]);
    }
    for p in need {
        if !which(p) {
            eprintln!("skipped: {p} is not installed (apt-get install openvswitch-switch)");
            return true;
        }
    }
    false
}

/// A running switch under test.
pub struct Dut {
    pub kind: Kind,
    /// The bridge, also the name of the LOCAL port's tap.
    pub bridge: String,
    /// The interfaces of ports 1..N.
    pub ports: Vec<String>,
    /// What `ovs-ofctl` connects to: the passive listener, `tcp:127.0.0.1:PORT`.
    pub target: String,
    /// The passive OpenFlow listener (`127.0.0.1:PORT`) for raw-socket clients.
    pub listen: std::net::SocketAddr,
    sw: Option<SwitchProc>,
    ovs: Option<Ovs>,
}

impl Dut {
    /// Starts the switch selected by `XS_DUT` over `ports`.
    pub fn start(ports: &[&str], opts: &DutOptions) -> Dut {
        Dut::start_kind(Kind::from_env(), ports, opts)
    }

    pub fn start_kind(kind: Kind, ports: &[&str], opts: &DutOptions) -> Dut {
        let bridge = format!("xb{}", tag('b'));
        let port = free_port();
        let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
        let mut dut = Dut {
            kind,
            bridge: bridge.clone(),
            ports: ports.iter().map(|s| s.to_string()).collect(),
            target: format!("tcp:127.0.0.1:{port}"),
            listen: addr,
            sw: None,
            ovs: None,
        };
        match kind {
            Kind::Xdpswitch => {
                let listen = format!("ptcp:{port}");
                let mut extra = vec![
                    "--listen",
                    &listen,
                    "--bridge",
                    &bridge,
                    "--fail-mode",
                    opts.fail_mode,
                    "--of-versions",
                    opts.of_versions,
                ];
                for c in &opts.controllers {
                    extra.extend(["--controller", c]);
                }
                let aging = opts.mac_aging.map(|a| a.to_string());
                if let Some(a) = &aging {
                    extra.extend(["--mac-aging", a]);
                }
                let size = opts.mac_table_size.map(|a| a.to_string());
                if let Some(n) = &size {
                    extra.extend(["--mac-table-size", n]);
                }
                extra.extend(opts.extra_args.iter().map(String::as_str));
                // `NAME:tag=10:trunks=10,20`: the VLAN settings ride on the port argument.
                let specs: Vec<String> = ports
                    .iter()
                    .enumerate()
                    .map(|(i, p)| {
                        let o = opts.port_opts.get(i).copied().unwrap_or("");
                        std::iter::once(*p).chain(o.split_whitespace()).collect::<Vec<_>>().join(":")
                    })
                    .collect();
                let specs: Vec<&str> = specs.iter().map(String::as_str).collect();
                dut.sw = Some(SwitchProc::start(&specs, &opts.flows, &extra));
            }
            Kind::Ovs => {
                let ovs = Ovs::start(&bridge, ports, port, opts);
                dut.ovs = Some(ovs);
            }
        }
        // Up when ovs-ofctl gets an answer listing every port.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = dut.ofctl_output(Of::V13, "show", &[]);
            let text = String::from_utf8_lossy(&out.stdout);
            if out.status.success() && (1..=ports.len()).all(|i| text.contains(&format!(" {i}("))) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{kind:?} did not answer ovs-ofctl show with all ports: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        if kind == Kind::Ovs && !opts.flows.is_empty() {
            dut.add_flows(Of::V13, &opts.flows);
        }
        dut
    }

    /// Runs `ovs-ofctl -O VER CMD TARGET ARGS...` and returns the raw output.
    pub fn ofctl_output(&self, of: Of, cmd: &str, args: &[&str]) -> Output {
        Command::new("ovs-ofctl")
            .args(["-O", of.flag(), "--timeout=10", cmd, &self.target])
            .args(args)
            .env("OVS_RUNDIR", std::env::temp_dir())
            .stdin(Stdio::null())
            .output()
            .expect("running ovs-ofctl")
    }

    /// Runs an `ovs-ofctl` command that must succeed; returns its stdout.
    pub fn ofctl(&self, of: Of, cmd: &str, args: &[&str]) -> String {
        let out = self.ofctl_output(of, cmd, args);
        assert!(
            out.status.success(),
            "ovs-ofctl -O {} {cmd} {args:?} failed on {:?}: {}",
            of.flag(),
            self.kind,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs an `ovs-ofctl` command that must fail; returns its stderr.
    pub fn ofctl_err(&self, of: Of, cmd: &str, args: &[&str]) -> String {
        let out = self.ofctl_output(of, cmd, args);
        assert!(
            !out.status.success(),
            "ovs-ofctl -O {} {cmd} {args:?} should have failed on {:?}: {}",
            of.flag(),
            self.kind,
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// `ovs-ofctl add-flows` from a temporary file.
    pub fn add_flows(&self, of: Of, flows: &str) {
        let path = std::env::temp_dir().join(format!("xs-{}.flows", tag('f')));
        std::fs::write(&path, flows).expect("writing a flow file");
        let out = self.ofctl_output(of, "add-flows", &[path.to_str().unwrap()]);
        let _ = std::fs::remove_file(&path);
        assert!(out.status.success(), "add-flows failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// The flow lines of `dump-flows` (header line dropped), optionally restricted by `args`.
    pub fn flows(&self, of: Of, args: &[&str]) -> Vec<String> {
        self.ofctl(of, "dump-flows", args)
            .lines()
            .filter(|l| l.contains("actions="))
            .map(|l| l.trim().to_string())
            .collect()
    }

    /// The xdpswitch process (None for OVS), for xdpswitch-only ctl commands.
    pub fn xdpswitch(&self) -> Option<&SwitchProc> {
        self.sw.as_ref()
    }

    /// NORMAL's MAC table (`xdpswitch ctl fdb-show` / `ovs-appctl fdb/show BR`), parsed.
    pub fn fdb_show(&self) -> Vec<FdbEntry> {
        let text = match (&self.sw, &self.ovs) {
            (Some(sw), _) => sw.ctl(&["fdb-show"]),
            (_, Some(ovs)) => ovs.run(&["ovs-appctl", "fdb/show", &self.bridge]),
            _ => panic!("the switch is stopped"),
        };
        parse_fdb(&text, &self.ports)
    }

    /// Forgets every MAC table entry (`fdb-flush` / `fdb/flush BR`).
    pub fn fdb_flush(&self) {
        match (&self.sw, &self.ovs) {
            (Some(sw), _) => drop(sw.ctl(&["fdb-flush"])),
            (_, Some(ovs)) => drop(ovs.run(&["ovs-appctl", "fdb/flush", &self.bridge])),
            _ => panic!("the switch is stopped"),
        }
    }

    /// A static entry: `port` (an interface name) in `vlan` for `mac` (`fdb-add` / `fdb/add`).
    pub fn fdb_add(&self, port: &str, vlan: u16, mac: &str) {
        let vlan = vlan.to_string();
        match (&self.sw, &self.ovs) {
            (Some(sw), _) => drop(sw.ctl(&["fdb-add", port, &vlan, mac])),
            (_, Some(ovs)) => drop(ovs.run(&["ovs-appctl", "fdb/add", &self.bridge, port, &vlan, mac])),
            _ => panic!("the switch is stopped"),
        }
    }

    /// Removes the entry for `mac` in `vlan`, static or learned (`fdb-del` / `fdb/del BR`).
    pub fn fdb_del(&self, vlan: u16, mac: &str) {
        let vlan = vlan.to_string();
        match (&self.sw, &self.ovs) {
            (Some(sw), _) => drop(sw.ctl(&["fdb-del", &vlan, mac])),
            (_, Some(ovs)) => drop(ovs.run(&["ovs-appctl", "fdb/del", &self.bridge, &vlan, mac])),
            _ => panic!("the switch is stopped"),
        }
    }

    /// Reconfigures a port's VLANs live (`ovs-vsctl set port` syntax separated by spaces;
    /// empty: a trunk of every VLAN): xdpswitch `ctl set-port-vlan`, OVS `ovs-vsctl`, which
    /// waits until ovs-vswitchd applied it.
    pub fn set_port_vlan(&self, port: &str, opts: &str) {
        let opts: Vec<&str> = opts.split_whitespace().collect();
        match (&self.sw, &self.ovs) {
            (Some(sw), _) => {
                let mut argv = vec!["set-port-vlan", port];
                argv.extend(&opts);
                drop(sw.ctl(&argv));
            }
            (_, Some(ovs)) => {
                let mut argv = vec!["ovs-vsctl", "--timeout=20"];
                for col in ["tag", "trunks", "vlan_mode"] {
                    argv.extend(["--", "clear", "port", port, col]);
                }
                if !opts.is_empty() {
                    argv.extend(["--", "set", "port", port]);
                    argv.extend(&opts);
                }
                drop(ovs.run(&argv));
            }
            _ => panic!("the switch is stopped"),
        }
    }

    /// The MAC table's counters (`fdb-stats` / `fdb/stats-show BR`), parsed from the text both
    /// print.
    pub fn fdb_stats(&self) -> FdbStats {
        let text = match (&self.sw, &self.ovs) {
            (Some(sw), _) => sw.ctl(&["fdb-stats"]),
            (_, Some(ovs)) => ovs.run(&["ovs-appctl", "fdb/stats-show", &self.bridge]),
            _ => panic!("the switch is stopped"),
        };
        FdbStats::parse(&text)
    }

    /// Stops the switch now (also done on drop).
    pub fn stop(&mut self) {
        self.sw = None;
        self.ovs = None;
    }
}

impl Drop for Dut {
    fn drop(&mut self) {
        self.stop();
    }
}

/// OFPP_LOCAL as a number.
pub const LOCAL: u32 = 0xffff_fffe;

/// One row of `fdb/show`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FdbEntry {
    /// The OpenFlow port number (`LOCAL` for the bridge port).
    pub port: u32,
    pub vlan: u16,
    /// Lower case, `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    /// Seconds since last seen; None for a static entry.
    pub age: Option<u32>,
}

/// Parses OVS's `fdb/show` text. The port column is a number, `LOCAL`, or (tolerated) one of
/// `ports`' names.
pub fn parse_fdb(text: &str, ports: &[String]) -> Vec<FdbEntry> {
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() != 4 || f[0] == "port" {
            assert!(f.is_empty() || f[0] == "port", "unexpected fdb/show line {line:?} in:\n{text}");
            continue;
        }
        let port = match f[0] {
            "LOCAL" => LOCAL,
            p => p
                .parse()
                .ok()
                .or_else(|| ports.iter().position(|n| n == p).map(|i| i as u32 + 1))
                .unwrap_or_else(|| panic!("unknown port {p:?} in fdb/show line {line:?}")),
        };
        let vlan = f[1].parse().unwrap_or_else(|_| panic!("bad VLAN in fdb/show line {line:?}"));
        let age = match f[3] {
            "static" => None,
            a => Some(a.parse().unwrap_or_else(|_| panic!("bad age in fdb/show line {line:?}"))),
        };
        out.push(FdbEntry { port, vlan, mac: f[2].to_ascii_lowercase(), age });
    }
    out
}

/// The counters of `fdb/stats-show`; the last three only xdpswitch prints.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FdbStats {
    pub entries: u64,
    pub max: u64,
    pub static_entries: u64,
    pub learned: u64,
    pub expired: u64,
    pub evicted: u64,
    pub moved: u64,
    pub learn_dropped: Option<u64>,
    pub vlan_dropped: Option<u64>,
    pub src_multicast: Option<u64>,
}

impl FdbStats {
    /// Parses `label : value` lines by their labels.
    pub fn parse(text: &str) -> FdbStats {
        let mut st = FdbStats::default();
        let num = |v: &str| -> u64 { v.parse().unwrap_or_else(|_| panic!("bad number {v:?} in:\n{text}")) };
        let mut seen = 0;
        for line in text.lines() {
            let Some((label, value)) = line.rsplit_once(':') else { continue };
            let (label, value) = (label.trim(), value.trim());
            seen += 1;
            if label.starts_with("Current/maximum MAC entries") {
                let (cur, max) = value.split_once('/').unwrap_or_else(|| panic!("bad {line:?}"));
                st.entries = num(cur.trim());
                st.max = num(max.trim());
            } else if label.starts_with("Current static MAC entries") {
                st.static_entries = num(value);
            } else if label.starts_with("Total number of learned") {
                st.learned = num(value);
            } else if label.starts_with("Total number of expired") {
                st.expired = num(value);
            } else if label.starts_with("Total number of evicted") {
                st.evicted = num(value);
            } else if label.starts_with("Total number of port moved") {
                st.moved = num(value);
            } else if label.starts_with("Learning events dropped") {
                st.learn_dropped = Some(num(value));
            } else if label.starts_with("Frames dropped for their VLAN") {
                st.vlan_dropped = Some(num(value));
            } else if label.starts_with("Frames with a multicast source") {
                st.src_multicast = Some(num(value));
            } else {
                seen -= 1;
            }
        }
        assert!(seen >= 6, "not an fdb/stats-show answer:\n{text}");
        st
    }
}

/// ovsdb-server + ovs-vswitchd in a private run directory.
struct Ovs {
    dir: PathBuf,
    bridge: String,
    ports: Vec<String>,
}

impl Ovs {
    fn start(bridge: &str, ports: &[&str], listen_port: u16, opts: &DutOptions) -> Ovs {
        let dir = std::env::temp_dir().join(format!("xs-ovs-{}", tag('o')));
        std::fs::create_dir_all(&dir).expect("OVS run directory");
        // From here on, drop cleans up whatever got started.
        let ovs = Ovs {
            dir: dir.clone(),
            bridge: bridge.to_string(),
            ports: ports.iter().map(|s| s.to_string()).collect(),
        };
        start_ovs_daemons(&dir, |argv| ovs.run(argv));
        let db = format!("unix:{}/db.sock", dir.display());
        let protocols = opts
            .of_versions
            .split(',')
            .map(|v| format!("OpenFlow1{}", v.trim().trim_start_matches("1.")))
            .collect::<Vec<_>>()
            .join(",");
        let dbarg = format!("--db={db}");
        let vs = |args: &[&str]| {
            let mut argv = vec!["ovs-vsctl", dbarg.as_str(), "--timeout=20"];
            argv.extend_from_slice(args);
            ovs.run(&argv)
        };
        let protocols = format!("protocols={protocols}");
        vs(&[
            "add-br",
            bridge,
            "--",
            "set",
            "bridge",
            bridge,
            "datapath_type=netdev",
            &protocols,
            "other-config:disable-in-band=true",
        ]);
        vs(&["set-fail-mode", bridge, opts.fail_mode]);
        let afxdp = std::env::var("XS_OVS_PORTS").as_deref() == Ok("afxdp");
        for (i, p) in ports.iter().enumerate() {
            let req = format!("ofport_request={}", i + 1);
            let mut args = vec!["add-port", bridge, p, "--", "set", "interface", p, &req];
            if afxdp {
                args.push("type=afxdp");
            }
            vs(&args);
            let vlan: Vec<&str> =
                opts.port_opts.get(i).map_or(Vec::new(), |o| o.split_whitespace().collect());
            if !vlan.is_empty() {
                let mut args = vec!["set", "port", p];
                args.extend(vlan);
                vs(&args);
            }
        }
        if let Some(a) = opts.mac_aging {
            vs(&["set", "bridge", bridge, &format!("other_config:mac-aging-time={a}")]);
        }
        if let Some(n) = opts.mac_table_size {
            vs(&["set", "bridge", bridge, &format!("other_config:mac-table-size={n}")]);
        }
        // The passive listener for ovs-ofctl (OVS treats its connections as service
        // connections: they don't end fail-open mode) and the active controllers, with a short
        // probe and reconnect backoff.
        let mut args =
            vec!["set-controller".to_string(), bridge.to_string(), format!("ptcp:{listen_port}:127.0.0.1")];
        args.extend(opts.controllers.iter().cloned());
        vs(&args.iter().map(String::as_str).collect::<Vec<_>>());
        for c in &opts.controllers {
            let rec = vs(&["--bare", "--columns=_uuid", "find", "controller", &format!("target=\"{c}\"")]);
            let rec = rec.trim();
            vs(&[
                "set",
                "controller",
                rec,
                &format!("inactivity_probe={}", opts.probe_ms),
                "max_backoff=1000",
                "connection_mode=out-of-band",
            ]);
        }
        ovs
    }

    fn run(&self, argv: &[&str]) -> String {
        output_ok(ovs_command(&self.dir, None, argv), argv)
    }
}

impl Drop for Ovs {
    fn drop(&mut self) {
        stop_ovs_daemons(&self.dir);
        // The userspace datapath makes the LOCAL port and its own `ovs-netdev` device persistent
        // taps: they outlive the daemon.
        for dev in [self.bridge.as_str(), "ovs-netdev"] {
            let _ = Command::new("ip").args(["link", "del", dev]).stderr(Stdio::null()).status();
        }
        for p in &self.ports {
            if has_xdp(p) {
                let _ = Command::new("ip").args(["link", "set", "dev", p, "xdp", "off"]).status();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
