//! Shared pieces of the end-to-end tests: running the switch binary, sending and receiving
//! real traffic inside namespaces with small Python programs (the stock interpreter).

#![allow(dead_code)]

pub mod dut;
pub mod gre;
pub mod l2;
pub mod markers;
pub mod ofraw;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

#[allow(unused_imports)]
pub use xdpswitch::netns::{has_xdp, is_root, neighbours, Host};

/// Runs a command in the root namespace; panics with its stderr if it fails.
pub fn sh_ok(argv: &[&str]) -> String {
    xdpswitch::netns::sh(argv).unwrap_or_else(|e| panic!("{e:#}"))
}

/// Whether `a` reaches `ip` with ping (two echoes, short timeouts).
pub fn pings_ip(a: &Host, ip: &str) -> bool {
    a.exec(&["ping", "-c", "2", "-i", "0.2", "-W", "1", ip]).is_ok_and(|o| o.contains(" 2 received"))
}

/// Whether `a` reaches `b` with ping.
pub fn pings(a: &Host, b: &Host) -> bool {
    pings_ip(a, b.addr())
}

/// Polls until `a` reaches `b`, for up to `secs` (a switch may apply a change a little later;
/// the first ping also resolves ARP through the switch).
pub fn eventually_pings(a: &Host, b: &Host, secs: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if pings(a, b) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// Polls `f` (every 200 ms, up to `secs`) until it gives a value; panics naming `what` after.
pub fn eventually<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Skips (returns true) when not root, saying why.
pub fn skip_unless_root() -> bool {
    if !is_root() {
        eprintln!("skipped: needs root (network namespaces, XDP)");
        return true;
    }
    false
}

/// Whether `program` is on the PATH.
pub fn which(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Whether python3 lacks AF_PACKET sockets (the raw-frame hosts need them); prints why.
pub fn skip_unless_af_packet() -> bool {
    let python = Command::new("python3").args(["-c", "import socket; socket.AF_PACKET"]).output();
    if !python.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: needs python3 with AF_PACKET sockets");
        return true;
    }
    false
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A short unique tag for names: `<letter><pid%100000><seq>`.
pub fn tag(letter: char) -> String {
    format!("{letter}{}{}", std::process::id() % 100_000, SEQ.fetch_add(1, Ordering::Relaxed))
}

/// `n` hosts `198.18.0.{1..n}/24`, each a namespace with a veth into the root namespace.
pub fn hosts(n: usize, queues: u32) -> Vec<Host> {
    let t = tag('x');
    (0..n)
        .map(|i| {
            Host::create(
                &format!("xs-{t}-{i}"),
                &format!("xs{t}s{i}"),
                &format!("198.18.0.{}/24", i + 1),
                queues,
            )
            .expect("creating a test host")
        })
        .collect()
}

/// `n` hosts (one queue each) with static neighbour entries between every pair.
pub fn mesh(n: usize) -> Vec<Host> {
    let h = hosts(n, 1);
    for i in 0..n {
        for j in i + 1..n {
            neighbours(&h[i], &h[j]).unwrap();
        }
    }
    h
}

/// The switch-side interface names of `h`, as `--port` takes them.
pub fn ports(h: &[Host]) -> Vec<&str> {
    h.iter().map(|x| x.sw_if.as_str()).collect()
}

/// Starts Open vSwitch's daemons with everything of theirs in `dir`: a fresh database,
/// `ovsdb-server` on `dir/db.sock`, the database initialised, `ovs-vswitchd`, each daemon
/// detached with its pid and log file there. `run` runs one command wherever the caller's
/// instance lives (a namespace, an environment) and panics when it fails. Pair with
/// [`stop_ovs_daemons`].
pub fn start_ovs_daemons(dir: &std::path::Path, run: impl Fn(&[&str]) -> String) {
    let d = dir.display().to_string();
    let db = format!("unix:{d}/db.sock");
    run(&["ovsdb-tool", "create", &format!("{d}/conf.db"), "/usr/share/openvswitch/vswitch.ovsschema"]);
    run(&[
        "ovsdb-server",
        &format!("{d}/conf.db"),
        &format!("--remote=p{db}"),
        &format!("--pidfile={d}/ovsdb-server.pid"),
        &format!("--log-file={d}/ovsdb-server.log"),
        "-vconsole:off",
        "--detach",
    ]);
    run(&["ovs-vsctl", &format!("--db={db}"), "--timeout=20", "--no-wait", "init"]);
    run(&[
        "ovs-vswitchd",
        &db,
        &format!("--pidfile={d}/ovs-vswitchd.pid"),
        &format!("--log-file={d}/ovs-vswitchd.log"),
        "-vconsole:off",
        "--detach",
    ]);
}

/// A command of the Open vSwitch instance whose files are in `dir` (its `OVS_*DIR`
/// environment points there), run in namespace `ns` or, with `None`, the root one.
pub fn ovs_command(dir: &std::path::Path, ns: Option<&str>, argv: &[&str]) -> Command {
    let mut cmd = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).args(argv);
            c
        }
        None => {
            let mut c = Command::new(argv[0]);
            c.args(&argv[1..]);
            c
        }
    };
    cmd.stdin(Stdio::null());
    for k in ["OVS_RUNDIR", "OVS_DBDIR", "OVS_LOGDIR", "OVS_SYSCONFDIR"] {
        cmd.env(k, dir);
    }
    cmd
}

/// Runs `cmd` (which runs `argv`, named when it fails) and returns its stdout; panics with
/// its stderr unless it succeeds.
pub fn output_ok(mut cmd: Command, argv: &[&str]) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("running {}: {e}", argv[0]));
    assert!(out.status.success(), "`{}` failed: {}", argv.join(" "), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Stops the daemons [`start_ovs_daemons`] started in `dir`, by their pid files: SIGTERM,
/// then SIGKILL to one still running after 10 s. A daemon without a pid file is skipped.
pub fn stop_ovs_daemons(dir: &std::path::Path) {
    for daemon in ["ovs-vswitchd", "ovsdb-server"] {
        let pid = std::fs::read_to_string(dir.join(format!("{daemon}.pid")));
        let Some(pid) = pid.ok().and_then(|p| p.trim().parse::<u32>().ok()) else { continue };
        let alive = || std::path::Path::new(&format!("/proc/{pid}")).exists();
        let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if alive() {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
    }
}

/// A running `xdpswitch run`; stopped with SIGTERM on drop, after which its ports must have
/// no XDP program left.
pub struct SwitchProc {
    pub child: Option<Child>,
    pub ctl: PathBuf,
    pub ports: Vec<String>,
    _flows: Option<tempfile_path::TempPath>,
    /// Where its stderr (the log) goes, when started with [`SwitchProc::start_logged`].
    log: Option<tempfile_path::TempPath>,
}

mod tempfile_path {
    /// A file removed on drop.
    pub struct TempPath(pub std::path::PathBuf);
    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

/// `XS_OFFLOAD=off` runs every switch a test starts with `--offload off` (the suites pass
/// both ways; CI runs them with the default, on).
pub fn offload_off() -> bool {
    std::env::var("XS_OFFLOAD").is_ok_and(|v| v == "off")
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_xdpswitch")
}

/// The command line of an `xdpswitch run` that a test may start more than once (a restart
/// with the same arguments): the flow file, control socket and bridge (LOCAL tap) name stay
/// the same across starts. Each start's stderr goes to its own log file when `log_dir` is
/// set.
pub struct SwitchArgs {
    pub ports: Vec<String>,
    pub extra: Vec<String>,
    pub ctl: PathBuf,
    pub bridge: String,
    /// `--log` level.
    pub log: &'static str,
    /// Where each start's stderr goes (`<dir>/<bridge>.<n>.log`); inherited when `None`.
    pub log_dir: Option<PathBuf>,
    flows: tempfile_path::TempPath,
    starts: std::cell::Cell<u32>,
}

impl SwitchArgs {
    /// Ports, flows and extra arguments as [`SwitchProc::start`] takes them; a fresh control
    /// socket and bridge name.
    pub fn new(ports: &[&str], flows: &str, extra: &[&str]) -> SwitchArgs {
        let t = tag('s');
        let flow_path = std::env::temp_dir().join(format!("xs-{t}.flows"));
        std::fs::write(&flow_path, flows).unwrap();
        let bridge = extra
            .windows(2)
            .find(|w| w[0] == "--bridge")
            .map_or_else(|| format!("xsb{t}"), |w| w[1].to_string());
        SwitchArgs {
            ports: ports.iter().map(|s| s.to_string()).collect(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            ctl: std::env::temp_dir().join(format!("xs-{t}.ctl")),
            bridge,
            log: "warn",
            log_dir: None,
            flows: tempfile_path::TempPath(flow_path),
            starts: std::cell::Cell::new(0),
        }
    }

    /// The log file of start `n` (0 = the first), when logs go to files.
    pub fn log_file(&self, n: u32) -> Option<PathBuf> {
        self.log_dir.as_ref().map(|d| d.join(format!("{}.{n}.log", self.bridge)))
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(bin());
        cmd.args(["--log", self.log, "run"]).arg("--flows").arg(&self.flows.0).arg("--ctl").arg(&self.ctl);
        cmd.args(&self.extra);
        if !self.extra.iter().any(|a| a == "--fail-mode") {
            cmd.args(["--fail-mode", "secure"]);
        }
        if offload_off() && !self.extra.iter().any(|a| a == "--offload") {
            cmd.args(["--offload", "off"]);
        }
        if !self.extra.iter().any(|a| a == "--bridge") {
            // Its own LOCAL tap name, so switches of parallel tests don't collide on the default.
            cmd.args(["--bridge", &self.bridge]);
        }
        for p in &self.ports {
            cmd.args(["--port", p]);
        }
        cmd
    }
}

impl SwitchProc {
    /// Starts the switch over `ports` with `flows` and extra arguments; waits for its socket.
    /// It forwards by `flows` only (`--fail-mode secure`: no NORMAL rule of its own) unless
    /// `extra` names a fail mode.
    pub fn start(ports: &[&str], flows: &str, extra: &[&str]) -> SwitchProc {
        let args = SwitchArgs::new(ports, flows, extra);
        let mut sw = SwitchProc::spawn(&args);
        sw._flows = Some(args.flows);
        sw
    }

    /// As [`SwitchProc::start`], with the switch's log (stderr, `--log warn`) kept in a file
    /// that [`SwitchProc::log`] reads.
    pub fn start_logged(ports: &[&str], flows: &str, extra: &[&str]) -> SwitchProc {
        let mut args = SwitchArgs::new(ports, flows, extra);
        args.log_dir = Some(std::env::temp_dir());
        let mut sw = SwitchProc::spawn(&args);
        sw.log = args.log_file(0).map(tempfile_path::TempPath);
        sw._flows = Some(args.flows);
        sw
    }

    /// The log so far (empty unless started with [`SwitchProc::start_logged`]).
    pub fn log(&self) -> String {
        self.log.as_ref().and_then(|p| std::fs::read_to_string(&p.0).ok()).unwrap_or_default()
    }

    /// The resident set size of the switch process, in KiB (`VmRSS`).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// Starts `xdpswitch run` with `args` and waits for its control socket; panics if it
    /// exits first or does not answer within 20 s.
    pub fn spawn(args: &SwitchArgs) -> SwitchProc {
        let mut cmd = args.command();
        let n = args.starts.get();
        args.starts.set(n + 1);
        if let Some(path) = args.log_file(n) {
            let f = std::fs::File::create(&path).expect("a log file");
            cmd.stderr(f);
        }
        let child = cmd.stdin(Stdio::null()).spawn().expect("starting xdpswitch");
        let mut sw = SwitchProc {
            child: Some(child),
            ctl: args.ctl.clone(),
            // The interface names, without any `:tag=...` settings after them.
            ports: args.ports.iter().map(|s| s.split(':').next().unwrap_or(s).to_string()).collect(),
            _flows: None,
            log: None,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if sw.try_ctl(&["version"]).is_some() {
                return sw;
            }
            if let Some(st) = sw.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                sw.child = None;
                panic!("xdpswitch exited at start ({st})");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("xdpswitch did not come up");
    }

    /// The process id (while it runs).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Kills the switch with SIGKILL (no chance to clean up) and reaps it.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("running");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts `xdpswitch run --config FILE` with `config` (TOML; a `ctl = ...` line naming a
    /// fresh control socket is put in front of it), and waits for its socket. `ports` are
    /// the interfaces it takes (checked for a leftover XDP program after it stops).
    pub fn start_config(config: &str, ports: &[&str]) -> SwitchProc {
        let t = tag('c');
        let ctl = std::env::temp_dir().join(format!("xs-{t}.ctl"));
        let path = std::env::temp_dir().join(format!("xs-{t}.toml"));
        let offload = if offload_off() && !config.contains("offload =") { "offload = false\n" } else { "" };
        std::fs::write(&path, format!("ctl = {:?}\n{offload}{config}", ctl.display().to_string())).unwrap();
        let child = Command::new(bin())
            .args(["--log", "warn", "run", "--config"])
            .arg(&path)
            .stdin(Stdio::null())
            .spawn()
            .expect("starting xdpswitch");
        let mut sw = SwitchProc {
            child: Some(child),
            ctl,
            ports: ports.iter().map(|s| s.to_string()).collect(),
            _flows: Some(tempfile_path::TempPath(path)),
            log: None,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if sw.try_ctl(&["version"]).is_some() {
                return sw;
            }
            if let Some(st) = sw.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                sw.child = None;
                panic!("xdpswitch --config exited at start ({st}); config:\n{config}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("xdpswitch did not come up");
    }

    /// `xdpswitch ctl --bridge BRIDGE ARGV...` (per-bridge commands of a several-bridge
    /// switch); panics on failure.
    pub fn ctl_bridge(&self, bridge: &str, argv: &[&str]) -> String {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        let r = xdpswitch::ctl::call_bridge(&self.ctl, Some(bridge), &argv, false).expect("ctl call");
        assert!(r.ok, "ctl --bridge {bridge} {argv:?} failed: {}", r.body);
        r.body
    }

    fn try_ctl(&self, argv: &[&str]) -> Option<String> {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        xdpswitch::ctl::call(&self.ctl, &argv, false).ok().filter(|r| r.ok).map(|r| r.body)
    }

    /// Runs a ctl command and returns its text (panics on failure).
    pub fn ctl(&self, argv: &[&str]) -> String {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        let r = xdpswitch::ctl::call(&self.ctl, &argv, false).expect("ctl call");
        assert!(r.ok, "ctl {argv:?} failed: {}", r.body);
        r.body
    }

    /// Runs a ctl command with `--json` and parses the answer.
    pub fn ctl_json(&self, argv: &[&str]) -> serde_json::Value {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        let r = xdpswitch::ctl::call(&self.ctl, &argv, true).expect("ctl call");
        assert!(r.ok, "ctl {argv:?} failed: {}", r.body);
        serde_json::from_str(&r.body).expect("json answer")
    }

    /// Stops the switch with SIGTERM and returns its exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("xdpswitch did not stop on SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for SwitchProc {
    fn drop(&mut self) {
        if self.child.is_some() {
            let st = self.stop();
            if !std::thread::panicking() {
                assert!(st.success(), "xdpswitch exited with {st}");
            }
        }
        if !std::thread::panicking() {
            for p in &self.ports {
                assert!(!has_xdp(p), "{p} still has an XDP program after the switch stopped");
            }
        }
    }
}

/// Python: receive up to `count` UDP datagrams on `port` (timeout `secs`), print
/// `src_ip src_port len` per datagram. The socket buffer is 8 MiB (`SO_RCVBUFFORCE`): a
/// switch forwarding in the kernel delivers a burst faster than Python reads it.
pub fn udp_receiver(host: &Host, port: u16, count: usize, secs: f64) -> Child {
    let code = format!(
        "import socket,sys\n\
         s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
         s.setsockopt(socket.SOL_SOCKET,33,8<<20)\n\
         s.bind(('0.0.0.0',{port}))\n\
         s.settimeout({secs})\n\
         print('ready',flush=True)\n\
         n=0\n\
         try:\n\
         \x20 while n<{count}:\n\
         \x20   d,a=s.recvfrom(4096); n+=1; print(a[0],a[1],len(d),flush=True)\n\
         except socket.timeout:\n\
         \x20 pass\n"
    );
    spawn_reader(host.command("python3").args(["-c", &code]))
}

thread_local! {
    static RECEIVERS: std::cell::RefCell<Vec<(u32, std::sync::mpsc::Receiver<String>)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Waits for a receiver started with [`udp_receiver`] and returns its lines.
pub fn receiver_lines(mut child: Child) -> Vec<String> {
    let id = child.id();
    let _ = child.wait();
    let rx = RECEIVERS.with(|r| {
        let mut r = r.borrow_mut();
        let i = r.iter().position(|(pid, _)| *pid == id).expect("a receiver");
        r.remove(i).1
    });
    rx.recv().unwrap_or_default().lines().map(|s| s.to_string()).collect()
}

/// Python: send `count` UDP datagrams of `len` bytes from `sport` (0 = any) to `dst:dport`.
pub fn udp_send(host: &Host, dst: &str, dport: u16, sport: u16, count: usize, len: usize) {
    let code = format!(
        "import socket\n\
         s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
         s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
         s.bind(('0.0.0.0',{sport}))\n\
         for i in range({count}): s.sendto(bytes({len}),('{dst}',{dport}))\n"
    );
    host.exec(&["python3", "-c", &code]).expect("python3 sender");
}

/// Python in `host`: send 8-byte UDP datagrams to `dst:dport` for at most `secs`
/// seconds and at most `count` of them, from a different destination port each time when
/// `vary`, pausing `gap_ms` between them (0: as fast as possible). Send errors (a full
/// buffer) are counted, not fatal.
pub fn udp_stream(
    host: &Host,
    dst: &str,
    dport: u16,
    count: usize,
    secs: f64,
    gap_ms: u32,
    vary: bool,
) -> Child {
    let code = format!(
        "import socket,time\n\
         s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
         s.setblocking(False)\n\
         end=time.time()+{secs}\n\
         i=0\n\
         while i<{count} and time.time()<end:\n\
         \x20 d=({dport}+i%20000) if {vary} else {dport}\n\
         \x20 try: s.sendto(bytes(8),('{dst}',d))\n\
         \x20 except OSError: pass\n\
         \x20 i+=1\n\
         \x20 if {gap_ms}: time.sleep({gap_ms}/1000)\n",
        vary = if vary { "True" } else { "False" }
    );
    host.command("python3").args(["-c", &code]).stdout(Stdio::null()).spawn().expect("python3 sender")
}

/// A steady stream of numbered UDP datagrams (8-byte big-endian sequence numbers) from one
/// host to another at a fixed rate, and a receiver on the other side counting what arrives:
/// the tool of the fault tests, which assert that every datagram sent arrived.
pub struct SeqStream {
    sender: Option<Child>,
    receiver: Option<Child>,
}

/// What a [`SeqStream`] sent and what arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeqCount {
    /// Datagrams the sender's socket accepted (a blocking socket: none refused).
    pub sent: u64,
    /// Datagrams received, duplicates included.
    pub received: u64,
    /// Distinct sequence numbers received.
    pub unique: u64,
    /// Times a sequence number came below the highest one seen so far (reordering).
    pub reordered: u64,
}

impl SeqStream {
    /// Starts the receiver in `to` on UDP `port`, then the sender in `from`: `pps` datagrams
    /// a second for `secs` seconds (paced against the clock, so a late wake-up sends a short
    /// burst rather than fewer datagrams).
    pub fn start(from: &Host, to: &Host, port: u16, pps: u32, secs: f64) -> SeqStream {
        // The receiver stops 3 s after the last datagram, or `secs + 30` s after it starts.
        let rx = format!(
            "import socket,struct,time\n\
             s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
             s.setsockopt(socket.SOL_SOCKET,33,8<<20)\n\
             s.bind(('0.0.0.0',{port}))\n\
             print('ready',flush=True)\n\
             end=time.time()+{secs}+30\n\
             seen=set(); n=0; top=-1; back=0\n\
             s.settimeout(1.0)\n\
             last=None\n\
             while time.time()<end:\n\
             \x20 try:\n\
             \x20   d=s.recv(64)\n\
             \x20 except socket.timeout:\n\
             \x20   if last is not None and time.time()-last>3: break\n\
             \x20   continue\n\
             \x20 last=time.time()\n\
             \x20 if len(d)!=8: continue\n\
             \x20 q=struct.unpack('!Q',d)[0]; n+=1; seen.add(q)\n\
             \x20 if q<top: back+=1\n\
             \x20 top=max(top,q)\n\
             print('received',n,len(seen),back,flush=True)\n"
        );
        let receiver = spawn_reader(to.command("python3").args(["-c", &rx]));
        let tx = format!(
            "import socket,struct,time\n\
             s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
             t0=time.time(); n=int({pps}*{secs})\n\
             for i in range(n):\n\
             \x20 w=t0+i/{pps}-time.time()\n\
             \x20 if w>0: time.sleep(w)\n\
             \x20 s.sendto(struct.pack('!Q',i),('{dst}',{port}))\n\
             print('sent',n,flush=True)\n",
            dst = to.addr()
        );
        let sender =
            from.command("python3").args(["-c", &tx]).stdout(Stdio::piped()).spawn().expect("python3 sender");
        SeqStream { sender: Some(sender), receiver: Some(receiver) }
    }

    /// Waits for the sender to finish and the receiver to go quiet; returns the counts.
    pub fn finish(mut self) -> SeqCount {
        let sender = self.sender.take().expect("running");
        let out = sender.wait_with_output().expect("the stream's sender");
        let text = String::from_utf8_lossy(&out.stdout);
        let sent = text
            .lines()
            .find_map(|l| l.strip_prefix("sent "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("the stream's sender failed: {text}"));
        let lines = receiver_lines(self.receiver.take().expect("running"));
        let nums: Vec<u64> = lines
            .iter()
            .find_map(|l| l.strip_prefix("received "))
            .map(|l| l.split_whitespace().filter_map(|v| v.parse().ok()).collect())
            .unwrap_or_default();
        assert_eq!(nums.len(), 3, "the stream's receiver said {lines:?}");
        SeqCount { sent, received: nums[0], unique: nums[1], reordered: nums[2] }
    }
}

impl Drop for SeqStream {
    fn drop(&mut self) {
        for c in [self.sender.take(), self.receiver.take()].into_iter().flatten() {
            let mut c = c;
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Python: send raw Ethernet frames (hex strings) out of `eth0`.
pub fn raw_send(host: &Host, frames_hex: &[String]) {
    let list = frames_hex.iter().map(|h| format!("'{h}'")).collect::<Vec<_>>().join(",");
    let code = format!(
        "import socket\n\
         s=socket.socket(socket.AF_PACKET,socket.SOCK_RAW)\n\
         s.bind(('eth0',0))\n\
         for h in [{list}]: s.send(bytes.fromhex(h))\n"
    );
    host.exec(&["python3", "-c", &code]).expect("python3 raw sender");
}

/// Python: capture the frames arriving on `eth0` for `secs` seconds, with the VLAN tag the
/// kernel took off into metadata (PACKET_AUXDATA: this kernel has no 8021q module, hosts see
/// tags only that way); prints `hex tci` per frame (`tci` -1 when untagged).
pub fn capture(host: &Host, secs: f64) -> Child {
    let code = format!(
        "import socket,time,struct\n\
         s=socket.socket(socket.AF_PACKET,socket.SOCK_RAW,socket.htons(3))\n\
         s.setsockopt(263,8,1)\n\
         s.bind(('eth0',0))\n\
         s.settimeout(0.2)\n\
         print('ready',flush=True)\n\
         end=time.time()+{secs}\n\
         while time.time()<end:\n\
         \x20 try:\n\
         \x20   d,anc,fl,a=s.recvmsg(4096,1024)\n\
         \x20 except socket.timeout:\n\
         \x20   continue\n\
         \x20 if a[2]==socket.PACKET_OUTGOING: continue\n\
         \x20 tci=-1\n\
         \x20 for lvl,typ,data in anc:\n\
         \x20   if lvl==263 and typ==8:\n\
         \x20     st,ln,sn,mac,net,t,tp=struct.unpack('IIIHHHH',data[:20])\n\
         \x20     if st&16: tci=t\n\
         \x20 print(d.hex(),tci,flush=True)\n"
    );
    spawn_reader(host.command("python3").args(["-c", &code]))
}

fn spawn_reader(cmd: &mut Command) -> Child {
    let mut child = cmd.stdout(Stdio::piped()).spawn().expect("python3 reader");
    use std::io::BufRead;
    let stdout = child.stdout.take().unwrap();
    let mut reader = std::io::BufReader::new(stdout);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut reader, &mut rest);
        let _ = tx.send(rest);
    });
    RECEIVERS.with(|r| r.borrow_mut().push((child.id(), rx)));
    child
}

/// Hex of bytes.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Decodes hex to bytes.
pub fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2).map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap()).collect()
}

/// A MAC in `aa:bb:...` form as bytes.
pub fn mac_bytes(mac: &str) -> [u8; 6] {
    let mut out = [0u8; 6];
    for (o, p) in out.iter_mut().zip(mac.split(':')) {
        *o = u8::from_str_radix(p, 16).unwrap();
    }
    out
}

/// Reads `n_packets=N` of the dump-flows line containing `needle`.
pub fn n_packets(dump: &str, needle: &str) -> u64 {
    let line =
        dump.lines().find(|l| l.contains(needle)).unwrap_or_else(|| panic!("no rule {needle:?} in:\n{dump}"));
    line.split([',', ' '])
        .find_map(|f| f.trim().strip_prefix("n_packets="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no n_packets in {line:?}"))
}

/// Sums a field over every poll thread in `pmd-stats --json`.
pub fn pmd_sum(stats: &serde_json::Value, field: &str) -> u64 {
    stats["pmds"].as_array().unwrap().iter().map(|p| p[field].as_u64().unwrap_or(0)).sum()
}

/// A counter of the XDP program's (`hit`, `miss`, `unparsed`, `no_tx`, `dropped`, `error`)
/// from `pmd-stats --json`: packets; 0 when offload is off.
pub fn offload_sum(stats: &serde_json::Value, field: &str) -> u64 {
    stats["offload"]["program"][field]["packets"].as_u64().unwrap_or(0)
}
