//! pktgen end to end: a veth pair between two fresh network namespaces, the XDP sink on one
//! end, the live-frames or AF_XDP generator on the other. Needs root (skips with a notice otherwise).
//! Every test cleans up with Drop guards: namespaces (and so the veths) are deleted, and the
//! sink's XDP program is checked to be gone once the sink is dropped.
//!
//! Benchmark (ignored by default; one core, 64-byte frames, a few seconds):
//! `PKTGEN_BENCH_CORES=2 cargo test --release --test pktgen -- --ignored --nocapture bench`

use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clap::Parser;
use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use xdpswitch::pktgen::{self, PktgenCmd, SendArgs, Sink, SinkOptions};

use xdpswitch::netns::is_root;

/// Tests run one at a time: several generators at once would make the kernel defer the
/// receiving veth's softirq work to ksoftirqd, and a veth ring that is not drained in time
/// drops frames (exact counts need the receiver to keep up).
static SERIAL: Mutex<()> = Mutex::new(());

macro_rules! require_root {
    () => {
        if !is_root() {
            eprintln!("skipping: pktgen tests need root (network namespaces, XDP)");
            return;
        }
        let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    };
}

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Two namespaces joined by a veth pair; deleted on drop.
struct Veth {
    ns: [String; 2],
    dev: [String; 2],
}

impl Veth {
    fn new() -> Veth {
        Veth::with_queues(1)
    }

    /// A pair with `queues` receive/transmit queues per end (veth maps sending CPU `c` to
    /// peer queue `c % queues`: one queue per sending core keeps every ring drained).
    fn with_queues(queues: u32) -> Veth {
        static N: AtomicU32 = AtomicU32::new(0);
        let (pid, n) = (std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        let veth = Veth {
            ns: [format!("xs-pg-{pid}-{n}-a"), format!("xs-pg-{pid}-{n}-b")],
            dev: [format!("pg{pid}x{n}a"), format!("pg{pid}x{n}b")],
        };
        assert!(veth.dev[0].len() <= 15);
        for ns in &veth.ns {
            ip(&["netns", "add", ns]);
            // No IPv6 autoconfiguration chatter: the sink must see only generated frames.
            for key in ["net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"] {
                ip(&["netns", "exec", ns, "sysctl", "-qw", key]);
            }
        }
        let q = queues.to_string();
        #[rustfmt::skip]
        ip(&[
            "link", "add", &veth.dev[0], "numtxqueues", &q, "numrxqueues", &q, "netns", &veth.ns[0],
            "type", "veth", "peer", "name", &veth.dev[1], "numtxqueues", &q, "numrxqueues", &q,
            "netns", &veth.ns[1],
        ]);
        for i in 0..2 {
            ip(&["-n", &veth.ns[i], "link", "set", &veth.dev[i], "up"]);
        }
        veth
    }

    /// Runs `f` on a thread inside namespace `i` (threads it spawns stay there too).
    fn run_in<T: Send>(&self, i: usize, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.ns[i]);
        std::thread::scope(|s| {
            s.spawn(|| {
                let ns = File::open(&path).expect("open netns");
                // SAFETY: setns(2) on a valid namespace fd; it only changes this thread's
                // network namespace (the thread is ours and ends with this closure).
                let r = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .expect("namespace thread panicked")
        })
    }

    fn sink(&self, opts: SinkOptions) -> Sink {
        self.run_in(1, || Sink::attach(&self.dev[1], opts)).expect("attach sink")
    }

    fn send(&self, args: SendArgs) -> Result<pktgen::SendReport, pktgen::Error> {
        let stop = AtomicBool::new(false);
        self.run_in(0, || pktgen::send(&args, &stop))
    }

    fn assert_no_xdp(&self) {
        self.assert_no_xdp_on(1);
    }

    /// No XDP program on end `i` (the AF_XDP generator attaches one to end 0 while it runs).
    fn assert_no_xdp_on(&self, i: usize) {
        let show = ip(&["-n", &self.ns[i], "link", "show", "dev", &self.dev[i]]);
        assert!(!show.contains("xdp"), "XDP program left attached: {show}");
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        for ns in &self.ns {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// `pktgen send` options as the CLI would parse them.
fn send_args(dev: &str, extra: &[&str]) -> SendArgs {
    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: PktgenCmd,
    }
    let mut argv = vec!["xdpswitch", "send", "--dev", dev, "--json"];
    argv.extend_from_slice(extra);
    match Cli::try_parse_from(argv).expect("parse").cmd {
        PktgenCmd::Send(a) => a,
        _ => unreachable!("parsed a send command"),
    }
}

/// Waits until the sink's count stops moving (veth delivers in softirq, nearly at once).
fn settled(sink: &Sink, want: u64) -> pktgen::sink::Totals {
    let until = Instant::now() + Duration::from_secs(2);
    loop {
        let t = sink.totals().expect("totals");
        if t.packets >= want || Instant::now() > until {
            return t;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn count_is_exact_and_flows_spread() {
    require_root!();
    let veth = Veth::new();
    let sink = veth.sink(SinkOptions::default());
    let report = veth.send(send_args(&veth.dev[0], &["--count", "100000", "--flows", "100"])).expect("send");
    assert_eq!(report.packets, 100_000);
    assert_eq!(report.bytes, 100_000 * 64);
    let t = settled(&sink, 100_000);
    assert_eq!(t.packets, 100_000, "sink count");
    assert_eq!(t.bytes, 100_000 * 64);
    let flows = sink.flows().expect("flows");
    assert!((97..=103).contains(&flows), "distinct flows ~100, got {flows}");
    drop(sink);
    veth.assert_no_xdp();
}

#[test]
fn two_cores_count_exact_on_two_queue_veth() {
    require_root!();
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        eprintln!("skipping: needs 2 CPUs");
        return;
    }
    let veth = Veth::with_queues(2);
    let sink = veth.sink(SinkOptions::default());
    let r = veth.send(send_args(&veth.dev[0], &["--count", "200001", "--cores", "2"])).expect("send");
    assert_eq!((r.packets, r.cores), (200_001, 2));
    let got = settled(&sink, 200_001).packets;
    if got != 200_001 {
        eprintln!("{}", ip(&["netns", "exec", &veth.ns[0], "ethtool", "-S", &veth.dev[0]]));
        eprintln!("{}", ip(&["-d", "-n", &veth.ns[0], "link", "show", &veth.dev[0]]));
    }
    assert_eq!(got, 200_001);
}

#[test]
fn variants_make_valid_frames() {
    require_root!();
    let veth = Veth::new();
    for (ipv6, proto) in [(false, "udp"), (false, "tcp"), (true, "udp"), (true, "tcp")] {
        let sink = veth.sink(SinkOptions { pass: false, latency: true });
        let mut extra = vec!["--count", "50", "--size", "128", "--proto", proto, "--stamp", "--flows", "7"];
        if ipv6 {
            extra.push("--ipv6");
        }
        veth.send(send_args(&veth.dev[0], &extra)).expect("send");
        assert_eq!(settled(&sink, 50).packets, 50);
        assert_eq!(sink.flows().expect("flows"), 7);
        let lat = sink.latency().expect("latency").expect("stamped frames measured");
        assert_eq!(lat.count, 50);
        assert!(lat.min_ns > 0 && lat.min_ns <= lat.p99_ns.max(lat.min_ns) && lat.max_ns >= lat.min_ns);
        let (frame, len) = sink.first_frame().expect("capture").expect("a frame");
        assert_eq!((len, frame.len()), (128, 128));
        check_frame(&frame, ipv6, proto, true);
        drop(sink);
        veth.assert_no_xdp();
    }
}

/// Checks a 128-byte generated frame: headers, lengths, checksums, the stamp if `stamped`.
fn check_frame(f: &[u8], ipv6: bool, proto: &str, stamped: bool) {
    let p = SlicedPacket::from_ethernet(f).expect("frame parses");
    let (v4, v6) = match p.net.expect("IP") {
        NetSlice::Ipv4(ip) => {
            assert!(!ipv6);
            let h = ip.header().to_header();
            assert_eq!(h.header_checksum, h.calc_header_checksum(), "IPv4 header checksum");
            assert_eq!(h.total_len, 128 - 14);
            (Some(h), None)
        }
        NetSlice::Ipv6(ip) => {
            assert!(ipv6);
            let h = ip.header().to_header();
            assert_eq!(h.payload_length, 128 - 14 - 40);
            (None, Some(h))
        }
        NetSlice::Arp(_) => panic!("ARP"),
    };
    match p.transport.expect("L4") {
        TransportSlice::Udp(u) => {
            assert_eq!(proto, "udp");
            assert_eq!(u.destination_port(), 9);
            let h = u.to_header();
            if let Some(v6) = &v6 {
                assert_eq!(h.checksum, h.calc_checksum_ipv6(v6, u.payload()).unwrap(), "UDP/IPv6 checksum");
            } else {
                assert_eq!(h.checksum, 0);
            }
            assert_eq!(&u.payload()[..4] == b"xdpg", stamped);
        }
        TransportSlice::Tcp(t) => {
            assert_eq!(proto, "tcp");
            assert!(t.syn() && !t.ack());
            let h = t.to_header();
            let want = match (&v4, &v6) {
                (Some(v4), _) => h.calc_checksum_ipv4(v4, t.payload()).unwrap(),
                (_, Some(v6)) => h.calc_checksum_ipv6(v6, t.payload()).unwrap(),
                _ => unreachable!(),
            };
            assert_eq!(h.checksum, want, "TCP checksum");
            assert_eq!(&t.payload()[..4] == b"xdpg", stamped);
        }
        _ => panic!("unexpected L4"),
    }
}

/// gen (ns a) -> dev b = `redirect` -> c ~ d = sink, with c and d a second pair in ns b.
#[test]
fn redirect_forwards_everything() {
    require_root!();
    let veth = Veth::new();
    let (c, d) = (
        format!("{}c", &veth.dev[1][..veth.dev[1].len() - 1]),
        format!("{}d", &veth.dev[1][..veth.dev[1].len() - 1]),
    );
    ip(&["-n", &veth.ns[1], "link", "add", &c, "type", "veth", "peer", "name", &d]);
    for dev in [&c, &d] {
        ip(&["-n", &veth.ns[1], "link", "set", dev, "up"]);
    }
    let sink = veth.run_in(1, || Sink::attach(&d, SinkOptions::default())).expect("sink");
    let stop = AtomicBool::new(false);
    let args =
        pktgen::RedirectArgs { dev: veth.dev[1].clone(), to: c.clone(), duration: Some(20.0), json: true };
    let report = std::thread::scope(|s| {
        let fwd = s.spawn(|| veth.run_in(1, || pktgen::redirect::run(&args, &stop)));
        std::thread::sleep(Duration::from_millis(300)); // attached by then
        let sent = veth.send(send_args(&veth.dev[0], &["--count", "50000"]));
        let got = settled(&sink, 50_000).packets;
        stop.store(true, Ordering::Relaxed);
        let report = fwd.join().expect("redirect thread").expect("redirect");
        assert_eq!(sent.expect("send").packets, 50_000);
        assert_eq!(got, 50_000, "sink behind the redirect");
        report
    });
    assert_eq!(report.packets, 50_000);
    drop(sink);
    let show = ip(&["-n", &veth.ns[1], "link", "show"]);
    assert!(!show.contains("xdp"), "XDP program left attached: {show}");
}

#[test]
fn imix_mix_and_bytes() {
    require_root!();
    let veth = Veth::new();
    let sink = veth.sink(SinkOptions::default());
    let r = veth.send(send_args(&veth.dev[0], &["--count", "1200", "--imix"])).expect("send");
    let want_bytes = 100 * (7 * 64 + 4 * 594 + 1518);
    assert_eq!((r.packets, r.bytes), (1200, want_bytes));
    let t = settled(&sink, 1200);
    assert_eq!((t.packets, t.bytes), (1200, want_bytes));
}

#[test]
fn rate_limit_paces() {
    require_root!();
    let veth = Veth::new();
    let sink = veth.sink(SinkOptions::default());
    let r = veth.send(send_args(&veth.dev[0], &["--duration", "1", "--rate", "200k"])).expect("send");
    // Generous bounds: the machine is shared, so a run may fall short, but never run far over.
    assert!(r.packets <= 220_000 && r.packets >= 50_000, "sent {} at 200k/s for 1 s", r.packets);
    assert!(r.cores == 1);
    assert_eq!(settled(&sink, r.packets).packets, r.packets);
    let first = r.packets;
    // Paced with a count: exactly the count, at about the rate (never much faster).
    let r = veth
        .send(send_args(&veth.dev[0], &["--count", "30000", "--rate", "100k", "--cores", "2"]))
        .expect("send");
    assert_eq!(r.packets, 30_000);
    assert!(r.seconds >= 0.2, "30000 frames at 100k/s took only {:.3}s", r.seconds);
    assert_eq!(settled(&sink, first + 30_000).packets, first + 30_000);
}

#[test]
fn bad_input_is_one_line_error() {
    require_root!();
    let veth = Veth::new();
    let dev = veth.dev[0].clone();
    let err =
        |extra: &[&str], dev: &str| veth.send(send_args(dev, extra)).expect_err("should fail").to_string();
    assert!(err(&[], "xs-nosuchdev").contains("does not exist"));
    assert!(err(&["--size", "59"], &dev).contains("below the minimum 60"));
    assert!(err(&["--size", "1519"], &dev).contains("above the maximum 1518"));
    assert!(err(&["--flows", "0"], &dev).contains("--flows"));
    assert!(err(&["--ipv6", "--proto", "tcp", "--size", "64"], &dev).contains("minimum 74"));
    for e in [err(&["--size", "59"], &dev), err(&[], "xs-nosuchdev")] {
        assert!(!e.contains('\n'), "one line: {e}");
    }
    let no_dev =
        veth.run_in(1, || Sink::attach("xs-nosuchdev", SinkOptions::default()).err().map(|e| e.to_string()));
    assert!(no_dev.expect("sink on a missing device fails").contains("does not exist"));
}

/// Release-build measurement: 64-byte frames into a veth with the sink on the peer, for
/// `PKTGEN_BENCH_SECS` (3) seconds from `PKTGEN_BENCH_CORES` (1) cores (the veth gets one
/// queue per core). `cargo test --release --test pktgen -- --ignored --nocapture bench`
#[test]
#[ignore]
fn bench_64b() {
    require_root!();
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.into());
    let (secs, cores, batch) =
        (env("PKTGEN_BENCH_SECS", "3"), env("PKTGEN_BENCH_CORES", "1"), env("PKTGEN_BENCH_BATCH", "64"));
    let veth = Veth::with_queues(cores.parse().expect("PKTGEN_BENCH_CORES"));
    let sink = veth.sink(SinkOptions::default());
    let args = ["--duration", &secs, "--size", "64", "--cores", &cores, "--batch", &batch];
    let r = veth.send(send_args(&veth.dev[0], &args)).expect("send");
    let t = settled(&sink, r.packets);
    println!(
        "bench: {} core(s), batch {}: sent {} in {:.2}s = {:.2} Mpps; sink counted {} = {:.2} Mpps ({} XDP); \
         senders had {:.2} CPU s = {:.2} Mpps per CPU s",
        r.cores,
        batch,
        r.packets,
        r.seconds,
        r.pps / 1e6,
        t.packets,
        t.packets as f64 / r.seconds / 1e6,
        sink.attach_mode(),
        r.cpu_seconds,
        r.pps_per_cpu / 1e6
    );
}

/// Runs `xdpswitch --log warn pktgen send --mode afxdp --dev <end 0> --json EXTRA` under
/// `ip netns exec` in namespace 0, as an operator would: an AF_XDP port reads the device's
/// queues from /sys, which only `ip netns exec` remounts for the namespace (a thread that
/// merely `setns`es still sees the root namespace's /sys). The report, or stderr on failure.
fn send_afxdp(veth: &Veth, extra: &[&str]) -> Result<serde_json::Value, String> {
    let bin = env!("CARGO_BIN_EXE_xdpswitch");
    let mut argv = vec!["netns", "exec", &veth.ns[0], bin, "--log", "warn", "pktgen", "send"];
    argv.extend_from_slice(&["--mode", "afxdp", "--dev", &veth.dev[0], "--json"]);
    argv.extend_from_slice(extra);
    let out = Command::new("ip").args(&argv).output().expect("run ip netns exec xdpswitch");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    Ok(serde_json::from_slice(&out.stdout).expect("one JSON report on stdout"))
}

/// A report's numeric field.
fn num(r: &serde_json::Value, key: &str) -> f64 {
    r[key].as_f64().unwrap_or_else(|| panic!("report has no {key}: {r}"))
}

/// `--mode afxdp`: exactly `--count` frames reach the sink, and the generator's XDP program
/// is gone from its device afterwards.
#[test]
fn afxdp_count_is_exact() {
    require_root!();
    let veth = Veth::new();
    let sink = veth.sink(SinkOptions::default());
    let r = send_afxdp(&veth, &["--count", "20000"]).expect("send");
    assert_eq!(r["mode"], "afxdp");
    assert_eq!((num(&r, "packets"), num(&r, "bytes"), num(&r, "cores")), (20_000.0, 20_000.0 * 64.0, 1.0));
    let t = settled(&sink, 20_000);
    assert_eq!((t.packets, t.bytes), (20_000, 20_000 * 64), "sink count");
    veth.assert_no_xdp_on(0);
    drop(sink);
    veth.assert_no_xdp();
}

#[test]
fn afxdp_flows_spread_and_imix() {
    require_root!();
    let veth = Veth::new();
    let sink = veth.sink(SinkOptions::default());
    let r = send_afxdp(&veth, &["--count", "10000", "--flows", "50"]).expect("send");
    assert_eq!(num(&r, "packets"), 10_000.0);
    assert_eq!(settled(&sink, 10_000).packets, 10_000);
    let flows = sink.flows().expect("flows");
    assert!((48..=52).contains(&flows), "distinct flows ~50, got {flows}");
    drop(sink);
    let sink = veth.sink(SinkOptions::default());
    let r = send_afxdp(&veth, &["--count", "1200", "--imix"]).expect("send");
    let want_bytes = 100 * (7 * 64 + 4 * 594 + 1518);
    assert_eq!((num(&r, "packets"), num(&r, "bytes"), num(&r, "size")), (1200.0, want_bytes as f64, 0.0));
    let t = settled(&sink, 1200);
    assert_eq!((t.packets, t.bytes), (1200, want_bytes));
}

#[test]
fn afxdp_variants_make_valid_frames() {
    require_root!();
    let veth = Veth::new();
    for (ipv6, proto) in [(false, "udp"), (false, "tcp"), (true, "udp"), (true, "tcp")] {
        let sink = veth.sink(SinkOptions::default());
        let mut extra = vec!["--count", "50", "--size", "128", "--proto", proto, "--flows", "7"];
        if ipv6 {
            extra.push("--ipv6");
        }
        send_afxdp(&veth, &extra).expect("send");
        assert_eq!(settled(&sink, 50).packets, 50);
        assert_eq!(sink.flows().expect("flows"), 7);
        let (frame, len) = sink.first_frame().expect("capture").expect("a frame");
        assert_eq!((len, frame.len()), (128, 128));
        check_frame(&frame, ipv6, proto, false);
    }
}

/// Paced AF_XDP sending keeps to the rate and sleeps rather than spinning.
#[test]
fn afxdp_rate_limit_paces() {
    require_root!();
    let veth = Veth::new();
    let sink = veth.sink(SinkOptions::default());
    let r = send_afxdp(&veth, &["--duration", "1", "--rate", "200k"]).expect("send");
    let sent = num(&r, "packets") as u64;
    assert!((50_000..=220_000).contains(&sent), "sent {sent} at 200k/s for 1 s");
    let cpu = num(&r, "cpu_seconds");
    assert!(cpu < 0.7, "paced sender used {cpu:.2} CPU s in 1 s");
    assert_eq!(settled(&sink, sent).packets, sent);
    let r = send_afxdp(&veth, &["--count", "30000", "--rate", "100k"]).expect("send");
    assert_eq!(num(&r, "packets"), 30_000.0);
    let secs = num(&r, "seconds");
    assert!(secs >= 0.25, "30000 frames at 100k/s took only {secs:.3}s");
    assert_eq!(settled(&sink, sent + 30_000).packets, sent + 30_000);
}

#[test]
fn afxdp_two_cores_on_two_queues() {
    require_root!();
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        eprintln!("skipping: needs 2 CPUs");
        return;
    }
    let veth = Veth::with_queues(2);
    let sink = veth.sink(SinkOptions::default());
    let r = send_afxdp(&veth, &["--count", "20001", "--cores", "2"]).expect("send");
    assert_eq!((num(&r, "packets"), num(&r, "cores")), (20_001.0, 2.0));
    assert_eq!(settled(&sink, 20_001).packets, 20_001);
}

#[test]
fn afxdp_bad_input_is_one_line_error() {
    require_root!();
    let veth = Veth::new();
    let err = |extra: &[&str]| send_afxdp(&veth, extra).expect_err("should fail");
    let cores = err(&["--cores", "2"]);
    assert!(cores.contains("--cores 2") && cores.contains("1 queue"), "{cores}");
    assert!(err(&["--size", "1519"]).contains("above the maximum 1518"));
    assert!(err(&["--stamp"]).contains("--mode live"));
    for e in [cores, err(&["--stamp"])] {
        assert!(!e.contains('\n'), "one line: {e}");
    }
    veth.assert_no_xdp_on(0);
    // The library reports a missing device the same way.
    let stop = AtomicBool::new(false);
    let mut args = send_args("xs-nosuchdev", &[]);
    args.mode = pktgen::Mode::Afxdp;
    let e = pktgen::send(&args, &stop).expect_err("missing device").to_string();
    assert!(e.contains("does not exist"), "{e}");
}

/// MAC addresses a Linux bridge in namespace 1 learned on end 1 of the pair (not its own).
fn bridge_learned(veth: &Veth) -> Vec<String> {
    let out = ip(&["netns", "exec", &veth.ns[1], "bridge", "fdb", "show", "br", "xspgbr", "dynamic"]);
    out.lines()
        .filter(|l| l.contains(&format!("dev {} ", veth.dev[1])) && !l.contains("permanent"))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// Puts end 1 into a Linux bridge (which learns every source MAC it sees); live frames need
/// GRO on the receiving veth when no XDP program is there.
fn bridge_end1(veth: &Veth) {
    let ns = &veth.ns[1];
    ip(&["-n", ns, "link", "add", "xspgbr", "type", "bridge", "ageing_time", "30000"]);
    ip(&["-n", ns, "link", "set", "xspgbr", "up"]);
    ip(&["-n", ns, "link", "set", &veth.dev[1], "master", "xspgbr"]);
    ip(&["netns", "exec", ns, "ethtool", "-K", &veth.dev[1], "gro", "on"]);
}

/// Makes the bridge forget what it learned on end 1 (leaving the bridge flushes a port's
/// entries; `bridge fdb flush` is too new for some iproute2).
fn bridge_forget(veth: &Veth) {
    ip(&["-n", &veth.ns[1], "link", "set", &veth.dev[1], "nomaster"]);
    ip(&["-n", &veth.ns[1], "link", "set", &veth.dev[1], "master", "xspgbr"]);
    assert!(bridge_learned(veth).is_empty());
}

/// `--macs N` makes a switch learn N source MACs (here the kernel's bridge), in both modes,
/// and `--random-src-mac` a fresh unicast, locally administered MAC per frame.
#[test]
fn mac_variation_is_learned_by_a_bridge() {
    require_root!();
    let veth = Veth::new();
    bridge_end1(&veth);
    let base = ["--src-mac", "02:10:00:00:ff:00", "--dst-mac", "02:20:00:00:00:00"];
    let mut extra = base.to_vec();
    extra.extend(["--count", "3000", "--macs", "1000"]);
    let r = veth.send(send_args(&veth.dev[0], &extra)).expect("send");
    assert_eq!(r.packets, 3000);
    std::thread::sleep(Duration::from_millis(200));
    let learned = bridge_learned(&veth);
    assert_eq!(learned.len(), 1000, "distinct source MACs learned");
    assert!(
        learned.iter().any(|m| m == "02:10:00:00:ff:00") && learned.iter().any(|m| m == "02:10:00:01:02:e7")
    );
    bridge_forget(&veth);

    let mut extra = base.to_vec();
    extra.extend(["--count", "5000", "--random-src-mac"]);
    veth.send(send_args(&veth.dev[0], &extra)).expect("send");
    std::thread::sleep(Duration::from_millis(200));
    let learned = bridge_learned(&veth);
    assert!(learned.len() >= 4990, "random source MACs learned: {}", learned.len());
    for mac in &learned {
        let first = u8::from_str_radix(&mac[..2], 16).expect("MAC");
        assert_eq!(first & 3, 2, "unicast, locally administered: {mac}");
    }
    bridge_forget(&veth);

    let mut extra = base.to_vec();
    extra.extend(["--count", "1000", "--src-macs", "500"]);
    let r = send_afxdp(&veth, &extra[..]).expect("send");
    assert_eq!(num(&r, "packets"), 1000.0);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(bridge_learned(&veth).len(), 500, "afxdp: distinct source MACs learned");
    veth.assert_no_xdp_on(0);

    let err = veth.send(send_args(&veth.dev[0], &["--src-mac", "02:00:ff:ff:ff:ff", "--src-macs", "2"]));
    assert!(err.expect_err("carry").to_string().contains("carry"));
}
