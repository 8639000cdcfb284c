//! Pieces of the GRE end-to-end tests (tests/gre.rs): bare namespaces and veth links, an Open
//! vSwitch 3.1 instance living in its own namespace (a hypervisor with userspace tunneling),
//! xdpswitch hypervisors started from a config file, tcpdump captures, and raw GRE frames.
//!
//! Everything here is removed on drop, also when a test panics.
//!
//! ## Open vSwitch userspace GRE, the recipe (verified here with OVS 3.1.0)
//! One OVS per namespace (two in one namespace clash on the `ovs-netdev` tap):
//! ```text
//! ip netns exec NS ovsdb-server DIR/conf.db --remote=punix:DIR/db.sock ... --detach
//! ip netns exec NS ovs-vswitchd unix:DIR/db.sock ... --detach      (OVS_RUNDIR=DIR etc.)
//! ovs-vsctl add-br brp -- set bridge brp datapath_type=netdev      # "br-phy"
//! ovs-vsctl add-port brp UNDERLAY_VETH                             # a system port
//! ovs-vsctl add-br bri -- set bridge bri datapath_type=netdev      # "br-int"
//! ovs-vsctl add-port bri VM_VETH -- set interface VM_VETH ofport_request=1
//! ovs-vsctl add-port bri gre0 -- set interface gre0 type=gre \
//!     options:remote_ip=REMOTE options:key=flow ofport_request=2
//! ip netns exec NS ip addr add LOCAL/24 dev brp; ip netns exec NS ip link set brp up
//! ovs-appctl ovs/route/add REMOTE/24 brp      # OVS also caches the kernel's route
//! ovs-ofctl add-flow bri in_port=1,actions=set_tunnel:0x64,output:2
//! ovs-ofctl add-flow bri in_port=2,tun_id=0x64,actions=output:1
//! ```
//! br-phy keeps its default NORMAL rule (standalone): OVS sends its own ARP request for the
//! remote out of br-phy and snoops the reply (`ovs-appctl tnl/neigh/show`). On the wire
//! (`tcpdump -e -vv`): `proto GRE (47) ... GREv0, Flags [key present], key=0x64, proto TEB
//! (0x6558)`, outer IPv4 with DF, TTL 64, ID 0, from br-phy's MAC.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{output_ok, ovs_command, sh_ok, start_ovs_daemons, stop_ovs_daemons, tag, which};

/// A network namespace with nothing in it but `lo` (up); deleted on drop, which also deletes
/// the virtual devices inside it.
pub struct Ns {
    pub name: String,
}

impl Ns {
    pub fn create(name: &str) -> Ns {
        sh_ok(&["ip", "netns", "add", name]);
        let ns = Ns { name: name.to_string() };
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        let _ = ns.try_exec(&["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
        let _ = ns.try_exec(&["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"]);
        ns
    }

    /// Runs a command in the namespace; panics with its stderr if it fails.
    pub fn exec(&self, argv: &[&str]) -> String {
        let mut full = vec!["ip", "netns", "exec", &self.name];
        full.extend_from_slice(argv);
        sh_ok(&full)
    }

    /// Runs a command in the namespace; None if it fails.
    pub fn try_exec(&self, argv: &[&str]) -> Option<String> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(argv)
            .stdin(Stdio::null())
            .output()
            .ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// A `Command` that runs in the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).stderr(Stdio::null()).status();
    }
}

/// A veth pair; each end in a namespace (or the root one with `None`), up, with transmit
/// offloads and IPv6 off. Deleted on drop (deleting one end deletes both).
pub struct Link {
    pub a: String,
    pub b: String,
    a_ns: Option<String>,
}

impl Link {
    /// The ends are made under temporary names and renamed in their namespace, so an end
    /// may take a name the root namespace already has (`eth0`).
    pub fn create(a: &str, a_ns: Option<&Ns>, b: &str, b_ns: Option<&Ns>) -> Link {
        assert!(a.len() <= 15 && b.len() <= 15, "interface names {a:?} {b:?} too long");
        let t = tag('l');
        let (ta, tb) = (format!("xl{t}a"), format!("xl{t}b"));
        sh_ok(&["ip", "link", "add", &ta, "type", "veth", "peer", "name", &tb]);
        let mut link = Link { a: ta.clone(), b: b.to_string(), a_ns: None };
        for (tmp, dev, ns) in [(&ta, a, a_ns), (&tb, b, b_ns)] {
            let mut pre: Vec<String> = Vec::new();
            if let Some(ns) = ns {
                sh_ok(&["ip", "link", "set", tmp, "netns", &ns.name]);
                pre = vec!["ip".into(), "netns".into(), "exec".into(), ns.name.clone()];
            }
            let run = |argv: &[&str]| -> (String, Vec<String>) {
                let mut full = pre.clone();
                full.extend(argv.iter().map(|s| s.to_string()));
                (full[0].clone(), full[1..].to_vec())
            };
            let (p, args) = run(&["ip", "link", "set", tmp, "name", dev]);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let mut full = vec![p.as_str()];
            full.extend(&args);
            sh_ok(&full);
            if tmp == &ta {
                link.a = a.to_string();
                link.a_ns = ns.map(|n| n.name.clone());
            }
            for argv in [
                vec!["ip", "link", "set", dev, "up"],
                vec!["ethtool", "-K", dev, "tx", "off", "tso", "off", "gso", "off", "gro", "off"],
                vec!["sysctl", "-qw", &format!("net.ipv6.conf.{dev}.disable_ipv6=1")],
            ] {
                let (p, args) = run(&argv);
                let _ = Command::new(p).args(args).stdin(Stdio::null()).output();
            }
        }
        link
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        let mut argv = vec!["ip"];
        if let Some(ns) = &self.a_ns {
            argv.extend(["-n", ns.as_str()]);
        }
        argv.extend(["link", "del", self.a.as_str()]);
        let _ = Command::new(argv[0]).args(&argv[1..]).stderr(Stdio::null()).status();
    }
}

/// The MAC of `dev` in `ns` (or the root namespace).
pub fn mac_of(ns: Option<&Ns>, dev: &str) -> String {
    let path = format!("/sys/class/net/{dev}/address");
    match ns {
        Some(ns) => ns.exec(&["cat", &path]).trim().to_string(),
        None => std::fs::read_to_string(&path).expect("reading a MAC").trim().to_string(),
    }
}

/// Whether Open vSwitch's daemons and tools are installed; prints why not.
pub fn have_ovs() -> bool {
    let ok = ["ovs-vswitchd", "ovsdb-server", "ovs-vsctl", "ovsdb-tool", "ovs-ofctl", "ovs-appctl"]
        .iter()
        .all(|p| which(p));
    if !ok {
        eprintln!("skipped: Open vSwitch is not installed (apt-get install openvswitch-switch)");
    }
    ok
}

/// ovsdb-server + ovs-vswitchd running inside namespace `ns`, from a private run directory.
/// Stopped (by their pid files) and the directory removed on drop; the taps OVS makes live
/// in the namespace and go with it.
pub struct OvsNode {
    pub ns: String,
    pub dir: PathBuf,
}

impl OvsNode {
    pub fn start(ns: &Ns) -> OvsNode {
        let dir = std::env::temp_dir().join(format!("xs-ovsg-{}", tag('o')));
        std::fs::create_dir_all(&dir).expect("OVS run directory");
        let node = OvsNode { ns: ns.name.clone(), dir };
        start_ovs_daemons(&node.dir, |argv| node.run(argv));
        node
    }

    /// Runs `argv` in the namespace with this instance's environment; panics on failure.
    pub fn run(&self, argv: &[&str]) -> String {
        output_ok(self.command(argv), argv)
    }

    fn command(&self, argv: &[&str]) -> Command {
        ovs_command(&self.dir, Some(&self.ns), argv)
    }

    pub fn vsctl(&self, args: &[&str]) -> String {
        let db = format!("--db=unix:{}/db.sock", self.dir.display());
        let mut argv = vec!["ovs-vsctl", db.as_str(), "--timeout=20"];
        argv.extend_from_slice(args);
        self.run(&argv)
    }

    /// `ovs-ofctl -O OpenFlow13 CMD BRIDGE ARGS...` once the bridge answers.
    pub fn ofctl(&self, cmd: &str, bridge: &str, args: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.command(&["ovs-ofctl", "show", bridge]).output().is_ok_and(|o| o.status.success()) {
            assert!(Instant::now() < deadline, "OVS bridge {bridge} never answered ovs-ofctl");
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut argv = vec!["ovs-ofctl", "-O", "OpenFlow13", cmd, bridge];
        argv.extend_from_slice(args);
        self.run(&argv)
    }

    pub fn appctl(&self, args: &[&str]) -> String {
        let mut argv = vec!["ovs-appctl"];
        argv.extend_from_slice(args);
        self.run(&argv)
    }

    /// The OVS side of a userspace GRE hypervisor (the recipe above): bridge `phy` holding
    /// `underlay` with `local` (`a.b.c.d/len`) on its internal port, bridge `int` with `vm`
    /// as port 1 and a GRE port `gre` to `remote` as port 2 (`key`: `flow` or a number),
    /// and `int`'s flows replaced by `flows`.
    pub fn gre_hypervisor(
        &self,
        (phy, underlay, local): (&str, &str, &str),
        (int, vm): (&str, &str),
        (gre, remote, key): (&str, &str, &str),
        flows: &[&str],
    ) {
        self.vsctl(&["add-br", phy, "--", "set", "bridge", phy, "datapath_type=netdev"]);
        self.vsctl(&["add-port", phy, underlay]);
        self.vsctl(&["add-br", int, "--", "set", "bridge", int, "datapath_type=netdev"]);
        self.vsctl(&["add-port", int, vm, "--", "set", "interface", vm, "ofport_request=1"]);
        let remote_opt = format!("options:remote_ip={remote}");
        let key_opt = format!("options:key={key}");
        self.vsctl(&[
            "add-port",
            int,
            gre,
            "--",
            "set",
            "interface",
            gre,
            "type=gre",
            &remote_opt,
            &key_opt,
            "ofport_request=2",
        ]);
        self.run(&["ip", "addr", "add", local, "dev", phy]);
        self.run(&["ip", "link", "set", phy, "up"]);
        let prefix = local.split('/').nth(1).unwrap_or("32");
        self.appctl(&["ovs/route/add", &format!("{remote}/{prefix}"), phy]);
        self.ofctl("del-flows", int, &[]);
        for f in flows {
            self.ofctl("add-flow", int, &[f]);
        }
    }
}

impl Drop for OvsNode {
    fn drop(&mut self) {
        stop_ovs_daemons(&self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A running `tcpdump -nn -e -vv -l` on `dev` in `ns`, for `secs` seconds at most.
pub struct Tcpdump {
    child: Child,
}

impl Tcpdump {
    /// Starts the capture and returns once tcpdump listens.
    pub fn start(ns: Option<&Ns>, dev: &str, secs: u32, filter: &[&str]) -> Tcpdump {
        let secs = secs.to_string();
        let mut cmd = match ns {
            Some(ns) => ns.command("timeout"),
            None => Command::new("timeout"),
        };
        cmd.args([secs.as_str(), "tcpdump", "-nn", "-e", "-vv", "-l", "-i", dev])
            .args(filter)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("starting tcpdump");
        use std::io::BufRead;
        let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        err.read_line(&mut line).unwrap();
        assert!(line.contains("listening on"), "tcpdump did not start: {line}");
        std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
        Tcpdump { child }
    }

    /// Stops the capture and returns its decoded text. (`timeout` passes the SIGINT on to
    /// tcpdump, which then flushes; `ip netns exec` runs `timeout` in its own process.)
    pub fn finish(mut self) -> String {
        std::thread::sleep(Duration::from_millis(300));
        self.interrupt();
        let mut out = String::new();
        use std::io::Read;
        let _ = self.child.stdout.take().unwrap().read_to_string(&mut out);
        let _ = self.child.wait();
        out
    }
}

impl Tcpdump {
    fn interrupt(&self) {
        let _ = Command::new("kill").args(["-INT", &self.child.id().to_string()]).status();
    }
}

impl Drop for Tcpdump {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        self.interrupt();
        std::thread::sleep(Duration::from_millis(100));
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The decoded GRE packets in tcpdump `-e -vv` text: (outer source, outer destination, the
/// GRE line) for every `A > B: GREv...` line.
pub fn gre_lines(text: &str) -> Vec<(String, String, String)> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            let (addrs, rest) = l.split_once(": GRE")?;
            let (src, dst) = addrs.split_once(" > ")?;
            Some((src.trim().to_string(), dst.trim().to_string(), format!("GRE{rest}")))
        })
        .collect()
}

/// A GRE header: flags and version word, protocol, optional key (no checksum or sequence).
pub fn gre_header(flags_version: u16, protocol: u16, key: Option<u32>) -> Vec<u8> {
    let mut h = Vec::with_capacity(8);
    h.extend_from_slice(&flags_version.to_be_bytes());
    h.extend_from_slice(&protocol.to_be_bytes());
    if let Some(k) = key {
        h.extend_from_slice(&k.to_be_bytes());
    }
    h
}

/// The K (key present) bit of the GRE flags word.
pub const GRE_KEY: u16 = 0x2000;
/// The R (routing present) bit, which RFC 2784 receivers must discard.
pub const GRE_ROUTING: u16 = 0x4000;
/// GRE protocol type of an Ethernet payload.
pub const GRE_TEB: u16 = 0x6558;

/// An Ethernet + IPv4 (protocol 47, TTL 64, DF) frame carrying `gre` (a GRE header and its
/// payload, possibly malformed on purpose) from `src_ip` to `dst_ip`.
pub fn ipv4_gre_frame(dst_mac: &str, src_mac: &str, src_ip: &str, dst_ip: &str, gre: &[u8]) -> Vec<u8> {
    let s: std::net::Ipv4Addr = src_ip.parse().unwrap();
    let d: std::net::Ipv4Addr = dst_ip.parse().unwrap();
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 47, 0, 0];
    ip[2..4].copy_from_slice(&((20 + gre.len()) as u16).to_be_bytes());
    ip.extend_from_slice(&s.octets());
    ip.extend_from_slice(&d.octets());
    let mut sum: u32 = ip.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], c[1]]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    ip.extend_from_slice(gre);
    super::l2::eth(dst_mac, src_mac, &[], super::l2::ETH_IPV4, &ip)
}
