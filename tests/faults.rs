//! End to end: faults around the switch while traffic runs — the controller going away and
//! coming back (secure and standalone), a flood of packet-outs, `kill -9` and restart, and
//! SIGTERM. Hosts are namespaces; the controller is a raw OpenFlow client
//! (`support::ofraw`) that the switch connects out to; traffic is numbered UDP datagrams
//! (`support::SeqStream`), so "nothing lost" is counted, not guessed.
//!
//! Durations scale with `XS_FAULT_SECS` (default 2: the whole file takes about 80 s);
//! `benches/faults.sh` runs the same tests with minutes-long outages and floods. Each test
//! prints what it measured (`faults: ...` lines, shown with `--nocapture`): the numbers in
//! `docs/reliability.md` come from there.
//!
//! Run as root: `cargo test --test faults -- --test-threads=1`.

mod support;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use support::dut::skip_unless_tools;
use support::dut::Kind;
use support::ofraw::{controller_listener, flow_mod, in_port, OfRaw, Recv};
use support::*;
use xdpswitch::ofp::flow::OFPFC_ADD;
use xdpswitch::ofp::multipart::FlowStats;
use xdpswitch::ofp::port::{OFPP_CONTROLLER, OFP_NO_BUFFER};
use xdpswitch::ofp::{Action, Body, Message, OFP13_VERSION};

/// The fault scale in seconds (`XS_FAULT_SECS`, default 2): how long the controller stays
/// away, how long floods and streams last.
fn fault_secs() -> f64 {
    std::env::var("XS_FAULT_SECS").ok().and_then(|v| v.parse().ok()).filter(|v: &f64| *v > 0.0).unwrap_or(2.0)
}

/// Packet-outs in the flood test (`XS_FAULT_PACKET_OUTS`, default 200 000).
fn packet_out_count() -> u64 {
    std::env::var("XS_FAULT_PACKET_OUTS").ok().and_then(|v| v.parse().ok()).unwrap_or(200_000)
}

/// Rate of the numbered streams, datagrams per second.
const PPS: u32 = 1000;

fn skip() -> bool {
    // These tests drive xdpswitch's own process and counters; `XS_DUT=ovs` does not apply.
    skip_unless_root() || skip_unless_tools(Kind::Xdpswitch)
}

/// Installs `in_port=a → b` and back, at priority 10, and waits for the barrier.
fn program_pair(c: &mut OfRaw, a: u32, b: u32) {
    c.send(flow_mod(OFPFC_ADD, 10, in_port(a), Some(b)));
    c.send(flow_mod(OFPFC_ADD, 10, in_port(b), Some(a)));
    let before = c.barrier();
    assert!(before.iter().all(|m| !matches!(m.body, Body::Error(_))), "flow-mods refused: {before:?}");
}

/// The packet count of the priority-10 flow matching `in_port=p`, if there is one.
fn packets_of(flows: &[FlowStats], p: u32) -> Option<u64> {
    flows.iter().find(|f| f.priority == 10 && f.match_ == in_port(p)).map(|f| f.packet_count)
}

/// Reads (and answers echoes on) `c` for `d`, panicking if the switch closes it.
fn keep_alive(c: &mut OfRaw, d: Duration) {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if let Recv::Closed = c.recv(Duration::from_millis(100)) {
            panic!("the switch closed the controller connection");
        }
    }
}

/// A controller connection kept alive (echo requests answered) by a thread of its own while
/// the test waits on something else; [`Background::back`] returns it.
struct Background {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<OfRaw>,
}

impl Background {
    fn new(mut c: OfRaw) -> Background {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
                keep_alive(&mut c, Duration::from_millis(100));
            }
            c
        });
        Background { stop, thread }
    }

    /// The connection back; panics if the switch closed it meanwhile.
    fn back(self) -> OfRaw {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().expect("the switch closed the controller connection")
    }
}

/// Finishes `stream` while `c` stays alive.
fn finish_alive(stream: SeqStream, c: OfRaw) -> (SeqCount, OfRaw) {
    let bg = Background::new(c);
    let n = stream.finish();
    (n, bg.back())
}

/// Plays a controller that refuses the switch for `d` by accepting each connection and
/// closing it at once (the switch sees a connection that ends before HELLO, as a crashing
/// controller would give it). Returns when each attempt came.
fn accept_and_close(l: &TcpListener, d: Duration) -> Vec<Instant> {
    l.set_nonblocking(true).unwrap();
    let end = Instant::now() + d;
    let mut at = Vec::new();
    while Instant::now() < end {
        match l.accept() {
            Ok((s, _)) => {
                at.push(Instant::now());
                drop(s);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
    at
}

/// Gaps between `first` and each attempt, in seconds.
fn gaps(first: Instant, attempts: &[Instant]) -> Vec<f64> {
    let mut prev = first;
    attempts
        .iter()
        .map(|&t| {
            let g = t.duration_since(prev).as_secs_f64();
            prev = t;
            g
        })
        .collect()
}

/// Whether UDP datagrams from `from` to `to` get through now: `n` sent, how many arrived.
fn crosses(from: &Host, to: &Host, port: u16, n: usize) -> usize {
    let rx = udp_receiver(to, port, n, 1.0);
    udp_send(from, to.addr(), port, 0, n, 8);
    receiver_lines(rx).len()
}

// ---------------------------------------------------------------------------------------
// 1. Controller loss and return, secure.

/// The controller programs ports 1 ↔ 2 and a numbered stream runs from host 0 to host 1.
/// The controller then closes its connection, refuses the switch's attempts for a while
/// (each one accepted and closed at once, so they can be timed), stops listening
/// altogether, and comes back. Asserted: every datagram sent arrived; the switch reconnected
/// by itself (a new connection, HELLO, features); its flows are still there and their counter
/// kept growing while the controller was gone; the reconnection attempts came with the
/// documented backoff (1 s, doubling, capped at `--max-backoff`).
#[test]
fn secure_controller_loss_and_return_loses_nothing() {
    if skip() {
        return;
    }
    let f = fault_secs();
    let h = mesh(2);
    let (l, target) = controller_listener();
    let addr = l.local_addr().unwrap();
    let max_backoff = 2u64;
    let _sw = SwitchProc::start(
        &ports(&h),
        "",
        &["--controller", &target, "--fail-mode", "secure", "--max-backoff", &max_backoff.to_string()],
    );
    let mut c = OfRaw::accept(&l, &[OFP13_VERSION], 30);
    program_pair(&mut c, 1, 2);
    let features = c.request(Body::FeaturesRequest);
    let Body::FeaturesReply(before_features) = features.body else { panic!("{features:?}") };

    // Attempts are timed for 6 s (1 + 2 + 2 + ... with a 2 s cap), then refused by the
    // kernel for `f` seconds, then the controller is back; the stream outlasts all of it.
    let refuse_timed = Duration::from_secs(6);
    let gone = refuse_timed + Duration::from_secs_f64(f);
    let stream_secs = 2.0 + gone.as_secs_f64() + 2.0 * max_backoff as f64 + 3.0;
    let stream = SeqStream::start(&h[0], &h[1], 7000, PPS, stream_secs);
    keep_alive(&mut c, Duration::from_secs(2));
    let p_before = packets_of(&c.flow_stats(), 1).expect("the flow from port 1");

    // Cut: the controller closes its end.
    drop(c);
    let cut = Instant::now();
    let attempts = accept_and_close(&l, refuse_timed);
    drop(l);
    std::thread::sleep(Duration::from_secs_f64(f));
    let l = TcpListener::bind(addr).expect("the controller's port again");
    let mut c = OfRaw::accept(&l, &[OFP13_VERSION], 30);
    let back = cut.elapsed();
    let features = c.request(Body::FeaturesRequest);
    let Body::FeaturesReply(after_features) = features.body else { panic!("{features:?}") };
    assert_eq!(after_features.datapath_id, before_features.datapath_id, "a different switch came back");
    let flows = c.flow_stats();
    let p_after = packets_of(&flows, 1).expect("the flow from port 1 after the reconnection");
    assert!(packets_of(&flows, 2).is_some(), "the flow from port 2 is gone: {flows:#?}");
    assert_eq!(flows.len(), 2, "{flows:#?}");
    let (n, _c) = finish_alive(stream, c);
    let g = gaps(cut, &attempts);
    eprintln!(
        "faults: secure controller loss: {n:?}; flow packets {p_before} before the cut, {p_after} after; \
         attempts after the cut at gaps {g:.2?} s (max_backoff {max_backoff}); controller back after {:.1} s",
        back.as_secs_f64()
    );
    assert_eq!((n.received, n.unique), (n.sent, n.sent), "datagrams lost or duplicated: {n:?}");
    assert!(p_after >= p_before + (gone.as_secs_f64() as u64) * u64::from(PPS) / 2, "{p_before} → {p_after}");
    // The backoff: 1 s, then doubling, never above max_backoff; spaced non-decreasingly
    // (250 ms of scheduling slack).
    assert!(attempts.len() >= 2, "the switch tried to reconnect {} times in 6 s", attempts.len());
    for (i, w) in g.iter().enumerate() {
        assert!(*w >= 0.75 && *w <= max_backoff as f64 + 0.75, "gap {i} is {w:.2} s: {g:.2?}");
        if i > 0 {
            assert!(*w + 0.25 >= g[i - 1], "gaps shrink: {g:.2?}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// 2. Controller loss and return, standalone.

/// `--fail-mode standalone` with a 1 s inactivity probe (fail-open after three probes): the
/// controller programs ports 1 ↔ 2 only; traffic between hosts 1 and 2 (ports 2 and 3) has
/// no rule and is dropped. The controller goes away: the stream 0 → 1 loses nothing, and
/// after about 3 s the fallback learning switch carries 1 → 2. The controller comes back:
/// the fallback is gone at once (1 → 2 dropped again), the flows are still there.
#[test]
fn standalone_falls_back_to_learning_and_back() {
    if skip() {
        return;
    }
    let f = fault_secs();
    let h = mesh(3);
    let (l, target) = controller_listener();
    let addr = l.local_addr().unwrap();
    let _sw = SwitchProc::start(
        &ports(&h),
        "",
        &[
            "--controller",
            &target,
            "--fail-mode",
            "standalone",
            "--inactivity-probe",
            "1",
            "--max-backoff",
            "1",
        ],
    );
    let mut c = OfRaw::accept(&l, &[OFP13_VERSION], 30);
    program_pair(&mut c, 1, 2);
    // The switch probes a silent controller after 1 s here and gives up on it after 2: the
    // connection is kept alive by a thread of its own during the slow steps.
    let bg = Background::new(c);
    assert_eq!(crosses(&h[1], &h[2], 7100, 5), 0, "no rule covers port 2 → 3, yet it forwarded");
    let gone_secs = 4.0 + f;
    let stream = SeqStream::start(&h[0], &h[1], 7001, PPS, 1.0 + gone_secs + 3.0);
    std::thread::sleep(Duration::from_secs(1));
    let mut c = bg.back();
    let p_before = packets_of(&c.flow_stats(), 1).expect("the flow from port 1");
    drop(c);
    drop(l);
    let cut = Instant::now();
    // Fail-open: the learning switch takes traffic no rule covers.
    eventually(15, "the fallback learning switch", || (crosses(&h[1], &h[2], 7101, 5) == 5).then_some(()));
    let open_after = cut.elapsed();
    let remaining = Duration::from_secs_f64(gone_secs).saturating_sub(cut.elapsed());
    std::thread::sleep(remaining);
    assert_eq!(
        crosses(&h[1], &h[2], 7102, 20),
        20,
        "the fallback stopped while the controller was still gone"
    );

    let l = TcpListener::bind(addr).expect("the controller's port again");
    let mut c = OfRaw::accept(&l, &[OFP13_VERSION], 30);
    let back = cut.elapsed();
    // The controller's first barrier: fail-open is over (ended when it connected).
    assert!(c.barrier().is_empty());
    let bg = Background::new(c);
    let closed_again = crosses(&h[1], &h[2], 7103, 20);
    let mut c = bg.back();
    let flows = c.flow_stats();
    let p_after = packets_of(&flows, 1).expect("the flow from port 1 after the reconnection");
    assert_eq!(flows.len(), 2, "{flows:#?}");
    let (n, _c) = finish_alive(stream, c);
    eprintln!(
        "faults: standalone controller loss: {n:?}; fail-open after {:.1} s; controller back after {:.1} s; \
         after it 1→2 got {closed_again} of 20; flow packets {p_before} → {p_after}",
        open_after.as_secs_f64(),
        back.as_secs_f64()
    );
    assert_eq!(closed_again, 0, "the fallback learning switch still forwards after the controller came back");
    assert_eq!((n.received, n.unique), (n.sent, n.sent), "datagrams lost or duplicated: {n:?}");
    // While failed open every packet went through NORMAL (OVS's fail-open flow sits above
    // every rule), so the rule counted only before and after.
    assert!(p_after >= p_before, "{p_before} → {p_after}");
}

// ---------------------------------------------------------------------------------------
// 3. Packet-out flood.

/// A frame for `dst` from a made-up source, EtherType 0x88b5 (local experimental: no stack
/// answers it), 60 bytes.
fn experimental_frame(dst: &str) -> Vec<u8> {
    let mut f = mac_bytes(dst).to_vec();
    f.extend_from_slice(&[0x02, 0, 0, 0, 0xf0, 0x01, 0x88, 0xb5]);
    f.resize(60, 0x5a);
    f
}

/// Python in `host`: an AF_PACKET socket for EtherType 0x88b5 on eth0 that reads nothing
/// until told (a line on stdin), then prints the kernel's count of frames that reached it
/// (`PACKET_STATISTICS`: delivered + dropped for lack of room, so a slow reader loses no
/// count).
fn ethertype_counter(host: &Host) -> std::process::Child {
    let code = "import socket,struct,sys\n\
                s=socket.socket(socket.AF_PACKET,socket.SOCK_RAW,socket.htons(0x88b5))\n\
                s.bind(('eth0',0x88b5))\n\
                print('ready',flush=True)\n\
                sys.stdin.readline()\n\
                p,d=struct.unpack('II',s.getsockopt(263,6,8))\n\
                print('frames',p,d,flush=True)\n";
    let mut child = host
        .command("python3")
        .args(["-c", code])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 counter");
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    child.stdout = Some(out.into_inner());
    child
}

/// Tells an [`ethertype_counter`] to report; returns the frames it saw.
fn ethertype_count(mut child: std::process::Child) -> u64 {
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("frames "))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("the counter said {text:?}"))
}

/// A port's counters from `dump-ports --json`.
fn port_stats(sw: &SwitchProc, name: &str) -> serde_json::Value {
    let ports = sw.ctl_json(&["dump-ports"]);
    ports.as_array().unwrap().iter().find(|p| p["name"] == name).map(|p| p["stats"].clone()).unwrap()
}

/// An interface's kernel counter (`/sys/class/net/IF/statistics/NAME`) in `host`'s namespace
/// or, with `None`, the root one.
fn if_counter(host: Option<&Host>, ifname: &str, name: &str) -> u64 {
    let path = format!("/sys/class/net/{ifname}/statistics/{name}");
    let text = match host {
        Some(h) => h.exec(&["cat", &path]).unwrap(),
        None => std::fs::read_to_string(&path).unwrap(),
    };
    text.trim().parse().unwrap()
}

/// The controller sends packet-outs to port 1 as fast as the socket takes them while a
/// numbered stream runs from port 2 to port 3. Asserted: the stream loses nothing; the
/// connection stays up (an echo is answered right after the flood) and refuses nothing;
/// every packet-out is accounted for by the switch: sent = transmitted on port 1 + its tx
/// drops + the execute queue's drops (`slow_path.execute_dropped`) + frames it could not
/// allocate (`action_dropped`); and what port 1 transmitted reached the host (counted by the
/// kernel for a packet socket) except what the kernel's veth counted as dropped.
#[test]
fn packet_out_flood_keeps_forwarding_and_counts_every_packet() {
    if skip() {
        return;
    }
    let f = fault_secs();
    let h = mesh(3);
    let (l, target) = controller_listener();
    let sw = SwitchProc::start(
        &ports(&h),
        "priority=10,in_port=2,actions=output:3\npriority=10,in_port=3,actions=output:2\n",
        &["--controller", &target],
    );
    let mut c = OfRaw::accept(&l, &[OFP13_VERSION], 30);
    let counter = ethertype_counter(&h[0]);
    // The stream first, so its first datagram's upcall (executed like a packet-out) is over
    // before the counters are read.
    let stream = SeqStream::start(&h[1], &h[2], 7002, PPS, 2.0 * f + 2.0);
    std::thread::sleep(Duration::from_millis(500));
    let st0 = (port_stats(&sw, &h[0].sw_if), sw.ctl_json(&["pmd-stats"]));
    let k0 = (if_counter(None, &h[0].sw_if, "tx_dropped"), if_counter(Some(&h[0]), "eth0", "rx_dropped"));
    let n = packet_out_count();
    // Packet-outs in batches of 500 messages per write.
    let po = c.bytes(
        0,
        Body::PacketOut(xdpswitch::ofp::PacketOut {
            buffer_id: OFP_NO_BUFFER,
            in_port: OFPP_CONTROLLER,
            actions: vec![Action::Output { port: 1, max_len: 0 }],
            data: experimental_frame(&h[0].mac),
        }),
    );
    let mut batch = Vec::with_capacity(po.len() * 500);
    let t0 = Instant::now();
    let mut sent = 0u64;
    while sent < n {
        batch.clear();
        let k = (n - sent).min(500);
        for i in 0..k {
            let mut m = po.clone();
            m[4..8].copy_from_slice(&((sent + i) as u32 | 0x8000_0000).to_be_bytes());
            batch.extend_from_slice(&m);
        }
        c.send_raw(&batch);
        sent += k;
    }
    let flood_secs = t0.elapsed().as_secs_f64();
    // The connection is up and answers right after the flood; the barrier is answered after
    // every packet-out before it was executed or dropped.
    assert!(c.echo_works(), "no echo reply after the flood");
    let errors: Vec<Message> = c.barrier().into_iter().filter(|m| matches!(m.body, Body::Error(_))).collect();
    assert!(errors.is_empty(), "packet-outs refused: {:?}", &errors[..errors.len().min(3)]);
    let (count, _c) = finish_alive(stream, c);
    // Let the last transmissions complete, then read every counter.
    std::thread::sleep(Duration::from_millis(500));
    let received = ethertype_count(counter);
    let (p1, pmd) = (port_stats(&sw, &h[0].sw_if), sw.ctl_json(&["pmd-stats"]));
    let k1 = (if_counter(None, &h[0].sw_if, "tx_dropped"), if_counter(Some(&h[0]), "eth0", "rx_dropped"));
    let d = |a: &serde_json::Value, b: &serde_json::Value, k: &str| {
        b[k].as_u64().unwrap() - a[k].as_u64().unwrap()
    };
    let tx = d(&st0.0, &p1, "tx_packets");
    let tx_dropped = d(&st0.0, &p1, "tx_dropped");
    let exec_dropped = d(&st0.1["slow_path"], &pmd["slow_path"], "execute_dropped");
    let executed = pmd_sum(&pmd, "executed") - pmd_sum(&st0.1, "executed");
    let no_frame = pmd_sum(&pmd, "action_dropped") - pmd_sum(&st0.1, "action_dropped");
    let kernel_dropped = (k1.0 - k0.0) + (k1.1 - k0.1);
    eprintln!(
        "faults: packet-out flood: {n} sent in {flood_secs:.2} s ({:.0}/s); executed {executed}, execute queue \
         full {exec_dropped}, no frame {no_frame}; port 1 tx {tx}, tx dropped {tx_dropped}; host got {received}, \
         veth dropped {kernel_dropped}; stream {count:?}",
        n as f64 / flood_secs
    );
    assert_eq!(
        (count.received, count.unique),
        (count.sent, count.sent),
        "the stream lost datagrams: {count:?}"
    );
    // Only packet-outs go to port 1. (`executed` also counts the stream's upcalls, which the
    // poll thread runs the same way, so it is not compared exactly; a dropped upcall would
    // have lost a datagram of the stream, checked above.)
    assert_eq!(
        tx + tx_dropped + no_frame + exec_dropped,
        n,
        "packet-outs neither sent nor counted as dropped (executed {executed})"
    );
    assert!(executed >= tx + tx_dropped + no_frame, "more sent than executed");
    assert_eq!(received + kernel_dropped, tx, "frames port 1 sent neither arrived nor were counted by veth");
}

// ---------------------------------------------------------------------------------------
// 4 and 5. kill -9 and SIGTERM, then a restart.

/// What a stopped switch must not leave behind: an XDP program on its ports (polled: the
/// kernel releases a dead process's links as it reaps its files) and its LOCAL tap. Returns
/// how long the ports took to be free.
fn assert_nothing_left(ports: &[&str], bridge: &str) -> Duration {
    let t = Instant::now();
    eventually(5, "the XDP programs to go", || ports.iter().all(|p| !has_xdp(p)).then_some(()));
    let freed = t.elapsed();
    for p in ports {
        let shown = sh_ok(&["ip", "-d", "link", "show", "dev", p]);
        assert!(!shown.contains("prog/xdp") && !shown.contains(" xdp"), "{p}: {shown}");
    }
    eventually(5, "the LOCAL tap to go", || {
        (!std::path::Path::new(&format!("/sys/class/net/{bridge}")).exists()).then_some(())
    });
    freed
}

/// Starts the switch with `args`, waits for it to connect to the controller at `l`, checks it
/// comes with empty tables (nothing survives a restart but what the controller puts back),
/// and re-programs ports 1 ↔ 2. Returns the switch and the new controller connection.
fn restart_and_reprogram(args: &SwitchArgs, l: &TcpListener) -> (SwitchProc, OfRaw) {
    let sw = SwitchProc::spawn(args);
    let mut c = OfRaw::accept(l, &[OFP13_VERSION], 30);
    assert!(c.flow_stats().is_empty(), "flows survived a restart without a flow file");
    program_pair(&mut c, 1, 2);
    (sw, c)
}

/// A short stream from host 0 to host 1 that must arrive whole (`c` kept alive meanwhile).
fn stream_whole(h: &[Host], port: u16, c: OfRaw) -> (SeqCount, OfRaw) {
    let (n, c) = finish_alive(SeqStream::start(&h[0], &h[1], port, PPS, 1.0), c);
    assert_eq!((n.received, n.unique), (n.sent, n.sent), "traffic after the restart: {n:?}");
    (n, c)
}

fn restart_args(h: &[Host], target: &str, log_dir: &std::path::Path) -> SwitchArgs {
    let mut args = SwitchArgs::new(&ports(h), "", &["--controller", target, "--max-backoff", "1"]);
    args.log = "info";
    args.log_dir = Some(log_dir.to_path_buf());
    args
}

/// A fresh directory for logs, removed on drop (kept when the test fails).
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let d = std::env::temp_dir().join(format!("xs-{}", tag('l')));
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("the switch's logs are kept in {}", self.0.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `kill -9` under traffic: no XDP program is left on the ports, the LOCAL tap is gone, the
/// controller's connection closes; the same command line starts the switch again (the stale
/// control socket is replaced), the controller sees a new connection with empty tables,
/// re-programs it, and traffic flows whole again.
#[test]
fn kill9_under_traffic_then_restart() {
    if skip() {
        return;
    }
    let f = fault_secs();
    let h = mesh(2);
    let (l, target) = controller_listener();
    let logs = TempDir::new();
    let args = restart_args(&h, &target, &logs.0);
    let mut sw = SwitchProc::spawn(&args);
    let mut c = OfRaw::accept(&l, &[OFP13_VERSION], 30);
    program_pair(&mut c, 1, 2);
    // The stream outlasts the kill and the restart: what it loses is the downtime.
    let stream = SeqStream::start(&h[0], &h[1], 7003, PPS, 2.0 * f + 3.0);
    keep_alive(&mut c, Duration::from_secs_f64(f));
    sw.kill9();
    let killed = Instant::now();
    let freed = assert_nothing_left(&ports(&h), &args.bridge);
    assert!(c.wait_closed(5), "the controller's connection outlived the switch");
    let stale_ctl = args.ctl.exists();

    let (sw2, c) = restart_and_reprogram(&args, &l);
    let down = killed.elapsed();
    let (across, c) = finish_alive(stream, c);
    let (after, _c) = stream_whole(&h, 7004, c);
    eprintln!(
        "faults: kill -9: ports free after {:.3} s, stale ctl socket left: {stale_ctl}; restarted and \
         re-programmed {:.2} s after the kill; stream across it {across:?} (lost {}); after the restart {after:?}",
        freed.as_secs_f64(),
        down.as_secs_f64(),
        across.sent - across.unique
    );
    // Lost: only what was sent while no switch forwarded (plus a little slack).
    let bound = (down.as_secs_f64() + 0.5) * f64::from(PPS);
    assert!(((across.sent - across.unique) as f64) < bound, "lost more than the downtime: {across:?}");
    assert_eq!(across.received, across.unique, "duplicates: {across:?}");
    drop(sw2); // SIGTERM; its drop asserts exit 0 and no XDP left.
}

/// SIGTERM under traffic: exit status 0 within a few seconds, the log says it stopped, no
/// XDP program left, the control socket removed, the LOCAL tap gone, the controller's
/// connection closed; then a second start on the same ports works and forwards.
#[test]
fn sigterm_drains_cleanly_then_restart() {
    if skip() {
        return;
    }
    let f = fault_secs();
    let h = mesh(2);
    let (l, target) = controller_listener();
    let logs = TempDir::new();
    let args = restart_args(&h, &target, &logs.0);
    let mut sw = SwitchProc::spawn(&args);
    let mut c = OfRaw::accept(&l, &[OFP13_VERSION], 30);
    program_pair(&mut c, 1, 2);
    let stream = SeqStream::start(&h[0], &h[1], 7005, PPS, 2.0 * f + 3.0);
    keep_alive(&mut c, Duration::from_secs_f64(f));
    let t = Instant::now();
    let status = sw.stop();
    let took = t.elapsed();
    assert!(status.success(), "exit status {status} after SIGTERM");
    let log = std::fs::read_to_string(args.log_file(0).unwrap()).unwrap();
    assert!(log.contains("stopped by signal"), "the log does not say it stopped:\n{log}");
    assert!(!args.ctl.exists(), "the control socket {} is left behind", args.ctl.display());
    let freed = assert_nothing_left(&ports(&h), &args.bridge);
    assert!(c.wait_closed(5), "the controller's connection outlived the switch");

    let (sw2, c) = restart_and_reprogram(&args, &l);
    let down = t.elapsed();
    let (across, c) = finish_alive(stream, c);
    let (after, _c) = stream_whole(&h, 7006, c);
    eprintln!(
        "faults: SIGTERM: exited 0 after {:.3} s, ports free {:.3} s later; restarted and re-programmed {:.2} s \
         after the signal; stream across it {across:?} (lost {}); after the restart {after:?}",
        took.as_secs_f64(),
        freed.as_secs_f64(),
        down.as_secs_f64(),
        across.sent - across.unique
    );
    let bound = (down.as_secs_f64() + 0.5) * f64::from(PPS);
    assert!(((across.sent - across.unique) as f64) < bound, "lost more than the downtime: {across:?}");
    drop(sw2);
}
