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

fn is_root() -> bool {
    let out = Command::new("id").arg("-u").output().expect("id -u");
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

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

fn sh(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
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
        let out = sh(&["ip", "-d", "link", "show", "dev", &self.root_if[i]]);
        out.contains("prog/xdp")
            || out.contains(" xdp")
            || out.contains("xdpgeneric")
            || out.contains("xdpdrv")
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
    /// The forwarder thread's `/proc/self/task/<tid>/stat` path, once it runs.
    stat_path: Arc<std::sync::Mutex<Option<String>>>,
}

impl Forwarder {
    fn start(a: Arc<AfXdpPort>, b: Arc<AfXdpPort>) -> Forwarder {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let stat_path = Arc::new(std::sync::Mutex::new(None));
        let sp = stat_path.clone();
        let thread = std::thread::spawn(move || {
            let me = std::fs::read_link("/proc/thread-self").ok().map(|p| format!("{}/stat", p.display()));
            *sp.lock().unwrap() = me.map(|p| format!("/proc/{p}"));
            bare::forward(&*a, &*b, &s)
        });
        Forwarder { stop, thread: Some(thread), stat_path }
    }
    /// utime + stime of the forwarder thread, in clock ticks.
    fn cpu_ticks(&self) -> u64 {
        self.stat_path.lock().unwrap().as_deref().map(stat_ticks).unwrap_or(0)
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

/// Our XDP object, for its bench helpers (`xdp_tx_bench`, `xdp_drop_bench`).
static BENCH_OBJ: &[u8] = aya::include_bytes_aligned!("../bpf/xsk_redirect.o");

/// XDP live-frames generator: runs `xdp_tx_bench` (bpf/xsk_redirect.o) with BPF_PROG_RUN and
/// BPF_F_TEST_XDP_LIVE_FRAMES, so every frame goes out of `ifindex` by XDP_TX
/// (`ndo_xdp_xmit` into the veth peer, which has our XDP program attached natively).
fn live_generator(ifindex: u32, stop: &AtomicBool, generated: &std::sync::atomic::AtomicU64) {
    use aya::programs::{TestRun, TestRunAttrs, TestRunOptions, Xdp};
    let mut ebpf = aya::Ebpf::load(BENCH_OBJ).expect("load object");
    let prog: &mut Xdp = ebpf.program_mut("xdp_tx_bench").unwrap().try_into().unwrap();
    prog.load().expect("load xdp_tx_bench");
    let frame = udp_template(0);
    // struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex
    let mut ctx = Vec::new();
    for v in [0, frame.len() as u32, 0, ifindex, 0, 0] {
        ctx.extend_from_slice(&v.to_ne_bytes());
    }
    const REPEAT: u32 = 1 << 16;
    while !stop.load(Ordering::Relaxed) {
        let opts = TestRunOptions {
            data_in: Some(&frame),
            ctx_in: Some(&ctx),
            repeat: REPEAT,
            attrs: TestRunAttrs::new().xdp_live_frames(64),
            ..Default::default()
        };
        match prog.test_run(opts) {
            Ok(r) => {
                if std::env::var("XS_BENCH_DEBUG").is_ok() {
                    eprintln!("live run: {r:?}");
                }
                generated.fetch_add(REPEAT as u64, Ordering::Relaxed);
            }
            // A signal (e.g. a tracer attaching) interrupts a run: just run again.
            Err(e) => eprintln!("BPF_PROG_RUN live frames: {e}; retrying"),
        }
    }
}

/// A 60-byte IPv4/UDP frame to a MAC nobody owns (the sink's stack drops it early).
fn udp_template(flow: u16) -> Vec<u8> {
    let mut p = vec![0u8; 60];
    p[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
    p[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    p[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut p[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&46u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&[198, 18, 0, 1]);
    ip[16..20].copy_from_slice(&[198, 18, 0, 2]);
    let sum = (0..10).map(|i| u16::from_be_bytes([ip[2 * i], ip[2 * i + 1]]) as u32).sum::<u32>();
    let sum = (sum & 0xffff) + (sum >> 16);
    ip[10..12].copy_from_slice(&(!((sum & 0xffff) + (sum >> 16)) as u16).to_be_bytes());
    p[34..36].copy_from_slice(&(1024 + flow).to_be_bytes());
    p[36..38].copy_from_slice(&9u16.to_be_bytes());
    p[38..40].copy_from_slice(&26u16.to_be_bytes());
    p
}

fn sysfs_counter(ifname: &str, what: &str) -> u64 {
    std::fs::read_to_string(format!("/sys/class/net/{ifname}/statistics/{what}"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Veth pairs in the root namespace, removed on drop.
struct Pairs(Vec<String>);
impl Pairs {
    fn new(pairs: &[(&str, &str)]) -> Pairs {
        let mut v = Pairs(Vec::new());
        for (x, y) in pairs {
            sh(&["ip", "link", "add", x, "type", "veth", "peer", "name", y]);
            v.0.push(x.to_string());
            for i in [x, y] {
                sh(&["ip", "link", "set", i, "up"]);
            }
        }
        v
    }
}
impl Drop for Pairs {
    fn drop(&mut self) {
        for x in &self.0 {
            let _ = run(&["ip", "link", "del", x]);
        }
    }
}

/// Measures the bare forwarder: generator (AF_XDP TX on veth g) → a ═[forwarder]═ b → sink
/// (veth s, whose stack drops the frames). Run with
/// `cargo test --release --test afxdp -- --ignored bench_bare_forwarder --nocapture`
/// (`XS_BENCH_MODE=generic` for generic XDP on the forwarder's ports; `XS_BENCH_GEN=live`
/// for an XDP live-frames generator instead of AF_XDP TX, native mode only).
#[test]
#[ignore = "benchmark: run by hand in release mode"]
fn bench_bare_forwarder() {
    require_root!();
    let pid = std::process::id();
    let (g, a, b, s) = (format!("xbg{pid}"), format!("xba{pid}"), format!("xbb{pid}"), format!("xbs{pid}"));
    let _pairs = Pairs::new(&[(&g, &a), (&b, &s)]);
    let xdp_mode = match std::env::var("XS_BENCH_MODE").as_deref() {
        Ok("generic") => XdpMode::Generic,
        _ => XdpMode::Auto,
    };
    let cfg = AfXdpConfig { xdp_mode, ..Default::default() };
    let pa = Arc::new(AfXdpPort::open(&a, &cfg).unwrap());
    let pb = Arc::new(AfXdpPort::open(&b, &cfg).unwrap());
    // The generator's port: AF_XDP TX (default), or only the ifindex for live frames.
    let pg = Arc::new(AfXdpPort::open(&g, &cfg).unwrap());
    // Sink: an XDP drop program on the far end (as in design.md §3), unless XS_BENCH_SINK=stack.
    let mut sink = aya::Ebpf::load(BENCH_OBJ).expect("load object");
    if std::env::var("XS_BENCH_SINK").as_deref() != Ok("stack") {
        let drop_prog: &mut aya::programs::Xdp =
            sink.program_mut("xdp_drop_bench").unwrap().try_into().unwrap();
        drop_prog.load().expect("load xdp_drop_bench");
        drop_prog.attach(&s, aya::programs::XdpMode::Driver).expect("attach sink");
    }
    let fwd = Forwarder::start(pa.clone(), pb.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let live = std::env::var("XS_BENCH_GEN").as_deref() == Ok("live");
    let generated = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (pg2, stop2, gen2) = (pg.clone(), stop.clone(), generated.clone());
    let gen = std::thread::spawn(move || {
        if live {
            live_generator(pg2.ifindex(), &stop2, &gen2);
            return;
        }
        let mut umem = Umem::new(afxdp::chunks_needed(1, &AfXdpConfig::default())).unwrap();
        let mut q = pg2.open_queue(0, &mut umem).unwrap();
        let t = udp_template(0);
        let mut batch = Vec::with_capacity(64);
        while !stop2.load(Ordering::Relaxed) {
            q.maintain(&mut umem);
            while batch.len() < 64 {
                match umem.frame_from(&t) {
                    Some(f) => batch.push(f),
                    None => break,
                }
            }
            gen2.fetch_add(q.send(&mut umem, &mut batch) as u64, Ordering::Relaxed);
        }
        q.release(&mut umem);
    });
    std::thread::sleep(Duration::from_secs(1));
    let mut rates = Vec::new();
    for _ in 0..3 {
        let snap = || {
            (
                generated.load(Ordering::Relaxed),
                pa.stats().rx_packets,
                pb.stats().tx_packets,
                sysfs_counter(&s, "rx_packets"),
            )
        };
        let t0 = std::time::Instant::now();
        let s0 = snap();
        let c0 = fwd.cpu_ticks();
        std::thread::sleep(Duration::from_secs(5));
        let s1 = snap();
        let cpu = (fwd.cpu_ticks() - c0) as f64 / 100.0;
        let dt = t0.elapsed().as_secs_f64();
        let r = |x: u64, y: u64| (y - x) as f64 / dt / 1e6;
        let rate = (r(s0.0, s1.0), r(s0.1, s1.1), r(s0.2, s1.2), r(s0.3, s1.3));
        eprintln!(
            "Mpps: generator tx {:.3}, fwd rx(a) {:.3}, fwd tx(b) {:.3}, sink rx {:.3}; forwarder CPU \
             {:.2} s of {:.2} s = {:.3} Mpps per CPU-second",
            rate.0,
            rate.1,
            rate.2,
            rate.3,
            cpu,
            dt,
            (s1.2 - s0.2) as f64 / cpu.max(0.01) / 1e6
        );
        rates.push(rate.2);
    }
    stop.store(true, Ordering::Relaxed);
    gen.join().unwrap();
    let st = fwd.finish();
    rates.sort_by(|x, y| x.partial_cmp(y).unwrap());
    drop(sink);
    eprintln!("bare forwarder ({}): median {:.3} Mpps; {st:?}", pa.describe(), rates[1]);
    eprintln!("A: {:?}\nB: {:?}", pa.stats(), pb.stats());
}
