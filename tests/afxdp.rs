//! End-to-end tests of the AF_XDP port layer over veth pairs and network namespaces.
//!
//! Topology per test: namespace A (198.18.0.1/24) ── veth ── [root ns: bare forwarder] ── veth
//! ── namespace B (198.18.0.2/24). Needs root; skipped with a notice otherwise. Everything
//! created is removed by a guard's `Drop`, even when a test panics.

use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use xdpswitch::netdev::afxdp::{self, AfXdpConfig, AfXdpPort, XdpMode};
use xdpswitch::netdev::{bare, Error, Port, Umem};
use xdpswitch::netns::{has_xdp, is_root};

macro_rules! require_root {
    () => {
        if !is_root() {
            eprintln!("skipping: AF_XDP end-to-end tests need root");
            return;
        }
    };
}

fn run(args: &[&str]) -> Output {
    Command::new(args[0]).args(&args[1..]).output().unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// Runs a command that must succeed; its stdout.
fn sh(args: &[&str]) -> String {
    xdpswitch::netns::sh(args).unwrap_or_else(|e| panic!("{e:#}"))
}

/// Two namespaces, each joined by a veth pair to the root namespace. Removed on drop.
struct Net {
    ns: [String; 2],
    root_if: [String; 2],
    ns_if: [String; 2],
}

impl Net {
    /// `tag` keeps tests of one run apart; `queues` sets numrxqueues/numtxqueues.
    fn new(tag: &str, queues: u32) -> Net {
        let pid = std::process::id();
        let net = Net {
            ns: [format!("xs-afx-{pid}-{tag}a"), format!("xs-afx-{pid}-{tag}b")],
            root_if: [format!("x{tag}{pid}ar"), format!("x{tag}{pid}br")],
            ns_if: [format!("x{tag}{pid}an"), format!("x{tag}{pid}bn")],
        };
        let q = queues.to_string();
        for i in 0..2 {
            assert!(net.root_if[i].len() <= 15);
            sh(&["ip", "netns", "add", &net.ns[i]]);
            sh(&[
                "ip",
                "link",
                "add",
                &net.root_if[i],
                "numtxqueues",
                &q,
                "numrxqueues",
                &q,
                "type",
                "veth",
                "peer",
                "name",
                &net.ns_if[i],
                "numtxqueues",
                &q,
                "numrxqueues",
                &q,
                "netns",
                &net.ns[i],
            ]);
            let addr = format!("198.18.0.{}/24", i + 1);
            let nsx = |args: &[&str]| {
                let mut v = vec!["ip", "netns", "exec", &net.ns[i]];
                v.extend_from_slice(args);
                sh(&v);
            };
            nsx(&["ip", "addr", "add", &addr, "dev", &net.ns_if[i]]);
            nsx(&["ip", "link", "set", "lo", "up"]);
            nsx(&["ip", "link", "set", &net.ns_if[i], "up"]);
            // Partial checksums from local sockets: let the stack finish them before xmit.
            // No GSO super-frames either (they would not fit a chunk in generic mode).
            nsx(&["ethtool", "-K", &net.ns_if[i], "tx", "off", "gso", "off", "tso", "off"]);
            sh(&["ip", "link", "set", &net.root_if[i], "up"]);
        }
        net
    }

    fn exec(&self, i: usize, args: &[&str]) -> Output {
        let mut v = vec!["ip", "netns", "exec", &self.ns[i]];
        v.extend_from_slice(args);
        run(&v)
    }

    /// Whether `ip -d link show` reports an XDP program on a root-side interface.
    fn xdp_attached(&self, i: usize) -> bool {
        has_xdp(&self.root_if[i])
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for i in 0..2 {
            let _ = run(&["ip", "link", "del", &self.root_if[i]]);
            let _ = run(&["ip", "netns", "del", &self.ns[i]]);
        }
    }
}

/// Runs the bare forwarder over the two root-side ends in a thread; stops it on drop.
struct Forwarder {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Result<bare::BareStats, Error>>>,
}

impl Forwarder {
    fn start(a: Arc<AfXdpPort>, b: Arc<AfXdpPort>) -> Forwarder {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || bare::forward(&*a, &*b, &s));
        Forwarder { stop, thread: Some(thread) }
    }
    fn finish(mut self) -> bare::BareStats {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().expect("forwarder panicked").expect("forwarder failed")
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn ping(net: &Net, from: usize, to: &str) {
    let out = net.exec(from, &["ping", "-c", "3", "-i", "0.2", "-W", "1", to]);
    assert!(
        out.status.success(),
        "ping {to} from ns {from} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn udp(net: &Net, from: usize, to: usize) {
    let dst = format!("198.18.0.{}", to + 1);
    let recv = format!(
        "import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind(('{dst}',9999));\
         s.settimeout(5);print(s.recv(2000).decode())"
    );
    let mut v = vec!["ip", "netns", "exec", &net.ns[to], "python3", "-c", &recv];
    let receiver = Command::new(v.remove(0)).args(&v).stdout(std::process::Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let send = format!(
        "import socket,time;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
         for _ in range(5):\n  s.sendto(b'hello-{from}-' + b'x'*1000,('{dst}',9999)); time.sleep(0.05)"
    );
    let out = net.exec(from, &["python3", "-c", &send]);
    assert!(out.status.success(), "udp send: {}", String::from_utf8_lossy(&out.stderr));
    let got = receiver.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&got.stdout);
    assert!(text.starts_with(&format!("hello-{from}-xxx")), "UDP {from}->{to} not received: {text:?}");
}

/// utime + stime of this process, in clock ticks (usually 1/100 s).
fn process_cpu_ticks() -> u64 {
    stat_ticks("/proc/self/stat")
}

/// utime + stime from a `/proc/.../stat` file, in clock ticks.
fn stat_ticks(path: &str) -> u64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    if stat.is_empty() {
        return 0;
    }
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn forward_over(tag: &str, mode: XdpMode, expect: &str) {
    let net = Net::new(tag, 1);
    let cfg = AfXdpConfig { xdp_mode: mode, ..Default::default() };
    let a = Arc::new(AfXdpPort::open(&net.root_if[0], &cfg).expect("open port A"));
    let b = Arc::new(AfXdpPort::open(&net.root_if[1], &cfg).expect("open port B"));
    assert_eq!(a.n_queues(), 1);
    assert!(net.xdp_attached(0) && net.xdp_attached(1), "program not attached");
    let fwd = Forwarder::start(a.clone(), b.clone());
    ping(&net, 0, "198.18.0.2");
    ping(&net, 1, "198.18.0.1");
    udp(&net, 0, 1);
    udp(&net, 1, 0);
    // Idle, the forwarder sleeps in poll(): it must not burn a core.
    let cpu0 = process_cpu_ticks();
    std::thread::sleep(Duration::from_secs(1));
    let idle_ticks = process_cpu_ticks() - cpu0;
    assert!(idle_ticks < 30, "idle forwarder used {idle_ticks} ticks of CPU in 1 s");
    let stats = fwd.finish();
    assert!(stats.sleeps > 0);
    assert!(a.describe().starts_with(expect), "describe: {}", a.describe());
    assert!(a.describe().contains("copy, 1 queue"), "describe: {}", a.describe());
    let (sa, sb) = (a.stats(), b.stats());
    eprintln!("{}: {stats:?}\nA: {sa:?}\nB: {sb:?}", a.describe());
    // 6 echo requests + 5 datagrams each way at least (plus ARP).
    assert!(sa.rx_packets >= 11 && sb.rx_packets >= 11, "{sa:?} {sb:?}");
    assert_eq!(sa.rx_packets, sb.tx_packets + sb.tx_dropped);
    assert_eq!(sb.rx_packets, sa.tx_packets + sa.tx_dropped);
    assert_eq!(stats.a_to_b, sa.rx_packets);
    assert!(sa.rx_bytes >= 5 * 1000);
    assert_eq!(sa.tx_dropped + sb.tx_dropped, 0);
    drop(a);
    drop(b);
    assert!(!net.xdp_attached(0) && !net.xdp_attached(1), "XDP program left attached");
    // The interfaces work normally again: no forwarder, so no path between the namespaces,
    // but the root ends must be plain veths (checked above).
}

#[test]
fn bare_forwarder_native_mode() {
    require_root!();
    forward_over("n", XdpMode::Auto, "native");
}

#[test]
fn bare_forwarder_generic_mode() {
    require_root!();
    forward_over("g", XdpMode::Generic, "generic");
}

#[test]
fn multi_queue_sockets_share_one_umem() {
    require_root!();
    let net = Net::new("m", 2);
    let cfg =
        AfXdpConfig { rx_size: 512, tx_size: 512, fill_size: 512, comp_size: 512, ..Default::default() };
    let port = AfXdpPort::open(&net.root_if[0], &cfg).expect("open");
    assert_eq!(port.n_queues(), 2);
    let mut umem = Umem::new(afxdp::chunks_needed(2, &cfg)).unwrap();
    let mut q0 = port.open_queue(0, &mut umem).expect("queue 0");
    let mut q1 = port.open_queue(1, &mut umem).expect("queue 1 (shared UMEM)");
    assert!(matches!(port.open_queue(2, &mut umem), Err(Error::NoSuchQueue { qid: 2, n_queues: 2, .. })));
    assert_eq!(port.describe(), "native, copy, 2 queues");
    // Both fill rings got frames from the one pool.
    assert_eq!(umem.n_free(), (afxdp::chunks_needed(2, &cfg) - 2 * 512) as usize);
    // Traffic from the namespace lands on either queue; frames come back to the pool.
    let _ = net.exec(0, &["ping", "-c", "2", "-i", "0.2", "-W", "1", "198.18.0.9"]);
    let mut batch = Vec::new();
    for _ in 0..10 {
        q0.maintain(&mut umem);
        q1.maintain(&mut umem);
        q0.recv(&mut umem, &mut batch, 64);
        q1.recv(&mut umem, &mut batch, 64);
    }
    assert!(!batch.is_empty(), "no ARP request reached either queue");
    // Send them back out through queue 1: no copy, same pool.
    let n = batch.len();
    assert_eq!(q1.send(&mut umem, &mut batch), n);
    std::thread::sleep(Duration::from_millis(100));
    q1.maintain(&mut umem);
    q0.release(&mut umem);
    q1.release(&mut umem);
    drop(q0);
    drop(q1);
    assert_eq!(port.stats().tx_packets, n as u64);
    drop(port);
    assert!(!net.xdp_attached(0));
}

#[test]
fn reopen_after_registering_socket_closed() {
    require_root!();
    let net = Net::new("r", 2);
    let cfg =
        AfXdpConfig { rx_size: 256, tx_size: 256, fill_size: 256, comp_size: 256, ..Default::default() };
    let port = AfXdpPort::open(&net.root_if[0], &cfg).expect("open");
    let mut umem = Umem::new(afxdp::chunks_needed(2, &cfg)).unwrap();
    let mut q0 = port.open_queue(0, &mut umem).expect("queue 0 registers");
    let mut q1 = port.open_queue(1, &mut umem).expect("queue 1 shares");
    q0.release(&mut umem);
    drop(q0); // the registering socket is gone; queue 1 still uses the kernel UMEM
    let mut q0 = port.open_queue(0, &mut umem).expect("queue 0 registers again");
    let mut q0b = None;
    // The same queue can't be bound twice while open.
    if let Ok(q) = port.open_queue(0, &mut umem) {
        q0b = Some(q);
    }
    assert!(q0b.is_none(), "queue 0 bound twice");
    q0.release(&mut umem);
    q1.release(&mut umem);
}

#[test]
fn mem_port_and_afxdp_port_share_a_pool() {
    require_root!();
    let net = Net::new("x", 1);
    let afx = Arc::new(AfXdpPort::open(&net.root_if[0], &AfXdpConfig::default()).expect("open"));
    let mem = xdpswitch::netdev::mem::MemPort::new("mem0", 1);
    mem.capture(true);
    let stop = Arc::new(AtomicBool::new(false));
    let (a2, m2, s2) = (afx.clone(), mem.clone(), stop.clone());
    let t = std::thread::spawn(move || bare::forward(&*a2, &m2, &s2));
    // Namespace → AF_XDP rx → MemPort tx (captured).
    let _ = net.exec(0, &["ping", "-c", "2", "-i", "0.2", "-W", "1", "198.18.0.2"]);
    let sent = mem.take_sent();
    assert!(sent.iter().any(|p| p.len() >= 42 && p[12..14] == [0x08, 0x06]), "no ARP request captured");
    // MemPort rx → AF_XDP tx (a frame written by memcpy into the shared pool) → namespace.
    let rx_path = format!("/sys/class/net/{}/statistics/rx_packets", net.ns_if[0]);
    let rx = |net: &Net| -> u64 {
        let out = net.exec(0, &["cat", &rx_path]);
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    let before = rx(&net);
    let mut frame = vec![0xffu8; 6];
    frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x77, 0x88, 0xb5]); // local experimental type
    frame.resize(64, 0xab);
    assert!(mem.inject(Vec::new())); // empty: dropped by the AF_XDP queue, not leaked
    for _ in 0..10 {
        assert!(mem.inject(frame.clone()));
    }
    let mut after = before;
    for _ in 0..100 {
        after = rx(&net);
        if after >= before + 10 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    let st = t.join().unwrap().unwrap();
    assert!(after >= before + 10, "namespace saw {} of 10 frames ({st:?})", after - before);
    assert_eq!(afx.stats().tx_packets, 10);
    assert_eq!(afx.stats().tx_dropped, 1);
}

#[test]
fn clear_errors() {
    require_root!();
    match AfXdpPort::open("xs-nonexist0", &AfXdpConfig::default()) {
        Err(Error::NoSuchInterface { name }) => assert_eq!(name, "xs-nonexist0"),
        other => panic!("expected NoSuchInterface, got {other:?}"),
    }
    let bad = AfXdpConfig { rx_size: 1000, ..Default::default() };
    assert!(AfXdpPort::open("lo", &bad).is_err());
    // Nothing was attached to lo by the failed open.
    assert!(!sh(&["ip", "-d", "link", "show", "dev", "lo"]).contains("prog/xdp"));
}

/// Helper for `detached_when_process_dies`: run in a child process, holds a port open.
#[test]
#[ignore = "helper run by detached_when_process_dies in a child process"]
fn helper_hold_port() {
    let Ok(ifname) = std::env::var("XS_AFX_HOLD_IF") else { return };
    let port = AfXdpPort::open(&ifname, &AfXdpConfig::default()).expect("open");
    let mut umem = Umem::new(afxdp::chunks_needed(1, &AfXdpConfig::default())).unwrap();
    let _q = port.open_queue(0, &mut umem).expect("queue");
    println!("ready");
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn detached_when_process_dies() {
    require_root!();
    let net = Net::new("k", 1);
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args(["--exact", "helper_hold_port", "--ignored", "--nocapture", "--test-threads=1"])
        .env("XS_AFX_HOLD_IF", &net.root_if[0])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    let mut ready = false;
    while std::io::BufRead::read_line(&mut out, &mut line).unwrap_or(0) > 0 {
        if line.contains("ready") {
            ready = true;
            break;
        }
        line.clear();
    }
    let attached = net.xdp_attached(0);
    child.kill().unwrap(); // SIGKILL: no destructors run
    child.wait().unwrap();
    assert!(ready, "helper did not get ready");
    assert!(attached, "helper did not attach");
    // The bpf_link fd closed with the process: the program is gone.
    std::thread::sleep(Duration::from_millis(200));
    assert!(!net.xdp_attached(0), "XDP program survived its process");
}
