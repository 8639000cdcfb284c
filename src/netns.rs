//! Test hosts in network namespaces, for the demo, the end-to-end tests and the benchmark
//! harness: a namespace with one veth whose other end stays in the root namespace for the
//! switch to take. Everything made here is removed on drop, also when a test panics.

use std::process::{Command, Output, Stdio};

use anyhow::{bail, Context};

/// Runs a command, failing with its stderr when it fails.
pub fn sh(argv: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", argv[0]))?;
    check(argv, out)
}

fn check(argv: &[&str], out: Output) -> anyhow::Result<String> {
    if !out.status.success() {
        bail!("`{}` failed: {}", argv.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether we run as root (namespaces, XDP and AF_XDP need it).
pub fn is_root() -> bool {
    // Read the effective uid from /proc: no libc call, so no `unsafe` here.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// A host: a network namespace holding `ns_if`, a veth whose peer `sw_if` is in the root
/// namespace (the switch's side).
pub struct Host {
    pub ns: String,
    pub ns_if: String,
    pub sw_if: String,
    pub ip: String,
    pub mac: String,
}

impl Host {
    /// Creates namespace `ns` with a veth (`queues` rx/tx queues on each end) and address
    /// `ip` (`a.b.c.d/len` or IPv6), both ends up, transmit offloads off inside the
    /// namespace (a userspace switch sees partial checksums and GSO super-frames otherwise),
    /// GRO on there (so the switch's XDP program may redirect frames to the host).
    pub fn create(ns: &str, sw_if: &str, ip: &str, queues: u32) -> anyhow::Result<Host> {
        if sw_if.len() > 15 {
            bail!("interface name {sw_if:?} is longer than 15 bytes");
        }
        let ns_if = "eth0".to_string();
        let tmp = format!("{}p", &sw_if[..sw_if.len().min(14)]);
        sh(&["ip", "netns", "add", ns])?;
        let mut host = Host { ns: ns.into(), ns_if, sw_if: sw_if.into(), ip: ip.into(), mac: String::new() };
        let q = queues.to_string();
        let mut add = vec!["ip", "link", "add", sw_if];
        if queues > 1 {
            add.extend(["numrxqueues", &q, "numtxqueues", &q]);
        }
        add.extend(["type", "veth", "peer", "name", &tmp]);
        if queues > 1 {
            add.extend(["numrxqueues", &q, "numtxqueues", &q]);
        }
        sh(&add)?;
        sh(&["ip", "link", "set", &tmp, "netns", ns])?;
        host.exec(&["ip", "link", "set", &tmp, "name", "eth0"])?;
        host.exec(&["ip", "link", "set", "lo", "up"])?;
        host.exec(&["ip", "addr", "add", ip, "dev", "eth0"])?;
        host.exec(&["ip", "link", "set", "eth0", "up"])?;
        sh(&["ip", "link", "set", sw_if, "up"])?;
        // Best effort: not every offload exists on every kernel. GRO stays on inside the
        // namespace: it only shapes what the host's own stack receives, and it is what lets
        // the switch's XDP program redirect frames to this veth (the kernel fast path).
        let _ = host.exec(&["ethtool", "-K", "eth0", "tx", "off", "tso", "off", "gso", "off", "gro", "on"]);
        let _ = sh(&["ethtool", "-K", sw_if, "tx", "off", "tso", "off", "gso", "off", "gro", "off"]);
        let _ = host.exec(&["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
        host.mac = host.exec(&["cat", "/sys/class/net/eth0/address"])?.trim().to_string();
        Ok(host)
    }

    /// Runs a command inside the namespace and returns its stdout.
    pub fn exec(&self, argv: &[&str]) -> anyhow::Result<String> {
        let mut full = vec!["ip", "netns", "exec", &self.ns];
        full.extend_from_slice(argv);
        sh(&full)
    }

    /// A `Command` that runs inside the namespace (for long-running processes).
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns, program]);
        c
    }

    /// The address without its prefix length.
    pub fn addr(&self) -> &str {
        self.ip.split('/').next().unwrap_or(&self.ip)
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        // Deleting the namespace deletes its veth end, and with it the pair.
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).stderr(Stdio::null()).status();
        let _ = Command::new("ip").args(["link", "del", &self.sw_if]).stderr(Stdio::null()).status();
    }
}

/// Whether `ifname` (root namespace) has an XDP program attached.
pub fn has_xdp(ifname: &str) -> bool {
    sh(&["ip", "-d", "link", "show", "dev", ifname])
        .map(|s| s.contains(" xdp") || s.contains("prog/xdp"))
        .unwrap_or(false)
}

/// Static ARP entries both ways, so traffic between hosts needs no ARP round trip.
pub fn neighbours(a: &Host, b: &Host) -> anyhow::Result<()> {
    a.exec(&["ip", "neigh", "replace", b.addr(), "lladdr", &b.mac, "dev", "eth0", "nud", "permanent"])?;
    b.exec(&["ip", "neigh", "replace", a.addr(), "lladdr", &a.mac, "dev", "eth0", "nud", "permanent"])?;
    Ok(())
}
