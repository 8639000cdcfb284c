//! TLS end to end: `ovs-ofctl` 3.1 (OpenSSL) against the switch's `pssl:` listener, and the
//! switch connecting out over `ssl:` to a controller (rustls, in this test) — both with mutual
//! authentication against a CA, certificates made with the `openssl` command as `ovs-pki`
//! would. Peers whose certificates another CA signed are refused, and the switch keeps
//! serving (and, as a client, retrying).
//!
//! Needs root (namespaces, XDP), ovs-ofctl and openssl; skips with a reason otherwise.

mod support;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::dut::{free_port, skip_unless_tools, Dut, DutOptions, Kind, Of};
use support::ofraw::OfRaw;
use support::*;
use xdpswitch::agent::{TlsConfig, TlsFiles};
use xdpswitch::ofp::flow::OFPFC_ADD;
use xdpswitch::ofp::port::{OFPP_ANY, OFP_NO_BUFFER};
use xdpswitch::ofp::{Action, Body, FlowMod, Instruction, Oxm, OxmField, OFP13_VERSION};

fn skip() -> bool {
    if skip_unless_root() || skip_unless_tools(Kind::Xdpswitch) {
        return true;
    }
    if !which("openssl") {
        eprintln!("skipped: openssl is not installed");
        return true;
    }
    false
}

/// A directory of keys and certificates made with `openssl`; removed on drop.
struct Pki {
    dir: PathBuf,
}

/// A certificate authority: its certificate and key files.
struct Ca {
    cert: PathBuf,
    key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).stdin(Stdio::null()).output().unwrap();
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

impl Pki {
    fn new() -> Pki {
        let dir = std::env::temp_dir().join(format!("xs-{}-pki", tag('t')));
        std::fs::create_dir_all(&dir).unwrap();
        Pki { dir }
    }

    /// A self-signed CA (RSA 2048, as ovs-pki makes).
    fn ca(&self, name: &str) -> Ca {
        let (cert, key) = (format!("{name}-cacert.pem"), format!("{name}-cakey.pem"));
        let subj = format!("/CN={name} test CA");
        openssl(
            &self.dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &cert,
                "-days",
                "2",
                "-subj",
                &subj,
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        Ca { cert: self.dir.join(cert), key: self.dir.join(key) }
    }

    /// A key and a certificate for `name` signed by `ca` (naming a host that is not the
    /// address connected to: names are not checked), with `ca` as the trusted CA.
    fn party(&self, ca: &Ca, name: &str) -> TlsFiles {
        let (key, csr, cert, ext) = (
            format!("{name}-privkey.pem"),
            format!("{name}.csr"),
            format!("{name}-cert.pem"),
            format!("{name}.ext"),
        );
        std::fs::write(
            self.dir.join(&ext),
            format!(
                "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=DNS:{name}.invalid\n"
            ),
        )
        .unwrap();
        let subj = format!("/CN={name}");
        openssl(
            &self.dir,
            &["req", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &csr, "-subj", &subj],
        );
        let (ca_cert, ca_key) = (ca.cert.display().to_string(), ca.key.display().to_string());
        let serial = format!("{}", 1000 + SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &ca_cert,
                "-CAkey",
                &ca_key,
                "-set_serial",
                &serial,
                "-days",
                "2",
                "-out",
                &cert,
                "-extfile",
                &ext,
            ],
        );
        TlsFiles {
            private_key: self.dir.join(key),
            certificate: self.dir.join(cert),
            ca_cert: ca.cert.clone(),
        }
    }
}

static SERIAL: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The switch's command-line options for `files`.
fn tls_args(files: &TlsFiles) -> Vec<String> {
    let p = |p: &Path| p.display().to_string();
    vec![
        "--private-key".into(),
        p(&files.private_key),
        "--certificate".into(),
        p(&files.certificate),
        "--ca-cert".into(),
        p(&files.ca_cert),
    ]
}

/// `ovs-ofctl -O OpenFlow13 --private-key .. --certificate .. --ca-cert .. CMD TARGET ARGS`.
fn ofctl_ssl(target: &str, files: &TlsFiles, cmd: &str, args: &[&str]) -> Output {
    Command::new("ovs-ofctl")
        .args(["-O", Of::V13.flag(), "--timeout=10"])
        .args(tls_args(files))
        .args([cmd, target])
        .args(args)
        .env("OVS_RUNDIR", std::env::temp_dir())
        .stdin(Stdio::null())
        .output()
        .expect("running ovs-ofctl")
}

fn ofctl_ssl_ok(target: &str, files: &TlsFiles, cmd: &str, args: &[&str]) -> String {
    let out = ofctl_ssl(target, files, cmd, args);
    assert!(
        out.status.success(),
        "ovs-ofctl {cmd} {target} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn ovs_ofctl_over_pssl_manages_flows_and_other_cas_are_refused() {
    if skip() {
        return;
    }
    let pki = Pki::new();
    let ca = pki.ca("ca");
    let switch = pki.party(&ca, "switch");
    let ofctl = pki.party(&ca, "ofctl");
    let rogue = pki.ca("rogue");
    let h = hosts(2, 1);
    neighbours(&h[0], &h[1]).unwrap();
    let port = free_port();
    let mut extra = vec!["--listen".to_string(), format!("pssl:{port}")];
    extra.extend(tls_args(&switch));
    let opts = DutOptions { extra_args: extra, ..DutOptions::default() };
    let dut = Dut::start_kind(Kind::Xdpswitch, &[&h[0].sw_if, &h[1].sw_if], &opts);
    let target = format!("ssl:127.0.0.1:{port}");

    // Flows added and read back over TLS; the plain listener sees the same table, and
    // traffic follows it.
    ofctl_ssl_ok(&target, &ofctl, "add-flow", &["in_port=1,actions=output:2"]);
    ofctl_ssl_ok(&target, &ofctl, "add-flow", &["in_port=2,actions=output:1"]);
    let dump = ofctl_ssl_ok(&target, &ofctl, "dump-flows", &[]);
    assert!(
        dump.contains("in_port=1 actions=output:2") && dump.contains("in_port=2 actions=output:1"),
        "{dump}"
    );
    assert_eq!(dut.flows(Of::V13, &[]).len(), 2);
    assert!(eventually_pings(&h[0], &h[1], 10), "traffic by the flows added over TLS");

    // A client whose certificate another CA signed (it trusts ours): the switch refuses it.
    let intruder = TlsFiles { ca_cert: ca.cert.clone(), ..pki.party(&rogue, "intruder") };
    let out = ofctl_ssl(&target, &intruder, "add-flow", &["priority=9,actions=drop"]);
    assert!(!out.status.success(), "a client of another CA was served");
    // A client that trusts only another CA refuses the switch.
    let wary = TlsFiles { ca_cert: rogue.cert.clone(), ..ofctl.clone() };
    assert!(!ofctl_ssl(&target, &wary, "dump-flows", &[]).status.success());
    // Plain OpenFlow to the TLS port gets nowhere.
    let plain = Command::new("ovs-ofctl")
        .args(["-O", Of::V13.flag(), "--timeout=5", "dump-flows", &format!("tcp:127.0.0.1:{port}")])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!plain.status.success(), "plain TCP on the pssl port was served");

    // Still serving, over TLS and TCP, with nothing the refused ones sent.
    let dump = ofctl_ssl_ok(&target, &ofctl, "dump-flows", &[]);
    assert!(!dump.contains("priority=9"), "{dump}");
    assert_eq!(dut.flows(Of::V13, &[]).len(), 2);
    assert!(eventually_pings(&h[0], &h[1], 10));
}

/// Waits (up to `secs`) for the switch to connect to `l` and runs the TLS handshake as the
/// controller with `files`: the stream, or `None` when the handshake failed.
fn accept_tls(
    l: &TcpListener,
    files: &TlsFiles,
    secs: u64,
) -> Option<rustls::StreamOwned<rustls::ServerConnection, std::net::TcpStream>> {
    let cfg = TlsConfig::load(files).expect("the controller's files");
    l.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut sock = loop {
        match l.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline, "the switch did not connect");
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("accept: {e}"),
        }
    };
    sock.set_nonblocking(false).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut conn = rustls::ServerConnection::new(cfg.server_config()).unwrap();
    while conn.is_handshaking() {
        if conn.complete_io(&mut sock).is_err() {
            return None;
        }
    }
    Some(rustls::StreamOwned::new(conn, sock))
}

#[test]
fn an_ssl_controller_manages_the_switch_and_one_of_another_ca_is_retried() {
    if skip() {
        return;
    }
    let pki = Pki::new();
    let ca = pki.ca("ca");
    let switch = pki.party(&ca, "switch");
    let controller = pki.party(&ca, "controller");
    let rogue = pki.ca("rogue");
    let impostor = TlsFiles { ca_cert: ca.cert.clone(), ..pki.party(&rogue, "impostor") };
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let h = hosts(2, 1);
    neighbours(&h[0], &h[1]).unwrap();
    let mut extra = vec!["--controller".to_string(), format!("ssl:{addr}")];
    extra.extend(tls_args(&switch));
    let opts = DutOptions { extra_args: extra, ..DutOptions::default() };
    let dut = Dut::start_kind(Kind::Xdpswitch, &[&h[0].sw_if, &h[1].sw_if], &opts);

    // An impostor (certificate from another CA) is refused, twice: the switch retries.
    for attempt in 0..2 {
        if let Some(mut s) = accept_tls(&l, &impostor, 20) {
            let mut b = [0u8; 1];
            let r = std::io::Read::read(&mut s, &mut b);
            assert!(!matches!(r, Ok(n) if n > 0), "attempt {attempt}: the switch talked to an impostor");
        }
        assert!(dut.ofctl(Of::V13, "show", &[]).contains(" 1("), "the switch keeps serving");
    }

    // The real controller: features, a flow-mod and a barrier over TLS.
    let s = accept_tls(&l, &controller, 30).expect("TLS handshake with the switch");
    let mut c = OfRaw::over(Box::new(s), &[OFP13_VERSION]);
    assert_eq!(c.version, OFP13_VERSION);
    match c.request(Body::FeaturesRequest).body {
        Body::FeaturesReply(f) => assert_ne!(f.datapath_id, 0),
        other => panic!("expected a features reply, got {other:?}"),
    }
    for (from, to) in [(1u32, 2u32), (2, 1)] {
        c.send(Body::FlowMod(FlowMod {
            command: OFPFC_ADD,
            priority: 100,
            buffer_id: OFP_NO_BUFFER,
            out_port: OFPP_ANY,
            out_group: 0xffff_ffff,
            match_: vec![Oxm::exact(OxmField::InPort, u128::from(from))],
            instructions: vec![Instruction::ApplyActions(vec![Action::Output { port: to, max_len: 0xffff }])],
            ..FlowMod::default()
        }));
    }
    assert!(c.barrier().is_empty(), "no error for the flow-mods");
    let flows = dut.flows(Of::V13, &[]);
    assert!(flows.iter().any(|f| f.contains("priority=100,in_port=1 actions=output:2")), "{flows:?}");
    assert!(eventually_pings(&h[0], &h[1], 10), "traffic by the controller's flows");
    assert!(c.echo_works());
}

/// Runs `xdpswitch ARGS` expecting it to fail at once; returns its stderr.
fn xdpswitch_fails(args: &[&str]) -> String {
    let out = Command::new(bin()).args(args).stdin(Stdio::null()).output().expect("running xdpswitch");
    assert!(!out.status.success(), "xdpswitch {args:?} should have failed");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bad_or_missing_tls_files_are_one_line_errors_naming_the_option() {
    if !which("openssl") {
        eprintln!("skipped: openssl is not installed");
        return;
    }
    let pki = Pki::new();
    let ca = pki.ca("ca");
    let sw = pki.party(&ca, "switch");
    let s = |p: &Path| p.display().to_string();
    let (key, cert, cacert) = (s(&sw.private_key), s(&sw.certificate), s(&ca.cert));
    let run = |k: &str, c: &str, a: &str| {
        let args = [
            "run",
            "--port",
            "xs-none0",
            "--listen",
            "pssl:0",
            "--private-key",
            k,
            "--certificate",
            c,
            "--ca-cert",
            a,
        ];
        xdpswitch_fails(&args)
    };
    let one_line = |e: &str, start: &str| {
        assert!(e.starts_with(&format!("xdpswitch: error: {start}")), "{e}");
        assert_eq!(e.trim_end().lines().count(), 1, "{e}");
    };
    one_line(&run("/nonexistent/k.pem", &cert, &cacert), "--private-key /nonexistent/k.pem: ");
    one_line(&run(&cert, &cert, &cacert), &format!("--private-key {cert}: no PEM private key"));
    one_line(&run(&key, &key, &cacert), &format!("--certificate {key}: no PEM certificate"));
    one_line(&run(&key, &cert, "/nonexistent/ca.pem"), "--ca-cert /nonexistent/ca.pem: ");
    let other = pki.party(&ca, "other");
    one_line(&run(&s(&other.private_key), &cert, &cacert), "--private-key ");
    // pssl: without the files.
    let e = xdpswitch_fails(&["run", "--port", "xs-none0", "--listen", "pssl:0"]);
    one_line(&e, "pssl:0:127.0.0.1: TLS needs --private-key, --certificate and --ca-cert");
    // Only some of the three: clap refuses.
    let e = xdpswitch_fails(&["run", "--port", "xs-none0", "--private-key", &key]);
    assert!(e.contains("--certificate") && e.contains("--ca-cert"), "{e}");

    // The configuration file's [ssl] table, named as the file spells it.
    let cfg = pki.dir.join("sw.toml");
    std::fs::write(
        &cfg,
        format!(
            "[ssl]\nprivate_key = {:?}\ncertificate = {cert:?}\nca_cert = {cacert:?}\n\
             [[bridge]]\nname = \"xsnone\"\nports = [\"xs-none0\"]\nlisten = \"pssl:0\"\n",
            "/nonexistent/k.pem"
        ),
    )
    .unwrap();
    let e = xdpswitch_fails(&["run", "--config", cfg.to_str().unwrap()]);
    one_line(&e, "ssl.private_key /nonexistent/k.pem: ");
    std::fs::write(
        &cfg,
        "[[bridge]]\nname = \"xsnone\"\nports = [\"xs-none0\"]\ncontroller = \"ssl:127.0.0.1\"\n",
    )
    .unwrap();
    let e = xdpswitch_fails(&["run", "--config", cfg.to_str().unwrap()]);
    one_line(&e, "bridge xsnone: ssl:127.0.0.1:6653: TLS needs an [ssl] table");
}

/// A minimal OpenFlow 1.3 controller on Python's `ssl` (OpenSSL) that requires a client
/// certificate: per connection it prints `refused` when the handshake fails, else does
/// HELLO and FEATURES_REQUEST and prints `features DPID TLSVERSION`.
const PY_CONTROLLER: &str = r#"
import socket, ssl, struct, sys
key, cert, ca = sys.argv[1:4]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
ctx.load_verify_locations(ca)
ctx.verify_mode = ssl.CERT_REQUIRED
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(('127.0.0.1', 0))
ls.listen(4)
print('listening', ls.getsockname()[1], flush=True)
def recvn(t, n):
    b = b''
    while len(b) < n:
        d = t.recv(n - len(b))
        if not d:
            raise EOFError
        b += d
    return b
def recv_msg(t):
    v, ty, ln, xid = struct.unpack('!BBHI', recvn(t, 8))
    return ty, xid, recvn(t, ln - 8)
while True:
    s, _ = ls.accept()
    s.settimeout(10)
    try:
        t = ctx.wrap_socket(s, server_side=True)
    except (ssl.SSLError, OSError) as e:
        print('refused', type(e).__name__, flush=True)
        continue
    t.sendall(struct.pack('!BBHI', 4, 0, 8, 1))
    t.sendall(struct.pack('!BBHI', 4, 5, 8, 2))
    while True:
        ty, xid, body = recv_msg(t)
        if ty == 2:
            t.sendall(struct.pack('!BBHI', 4, 3, 8 + len(body), xid) + body)
        if ty == 6:
            print('features', hex(struct.unpack('!Q', body[:8])[0]), t.version(), flush=True)
            break
    try:
        while True:
            recv_msg(t)
    except Exception:
        pass
"#;

#[test]
fn the_switch_connects_over_ssl_to_an_openssl_controller() {
    if skip() {
        return;
    }
    use std::io::BufRead;
    let pki = Pki::new();
    let ca = pki.ca("ca");
    let (switch, controller) = (pki.party(&ca, "switch"), pki.party(&ca, "controller"));
    let s = |p: &Path| p.display().to_string();
    let mut py = Command::new("python3")
        .args(["-c", PY_CONTROLLER])
        .args([s(&controller.private_key), s(&controller.certificate), s(&controller.ca_cert)])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let (tx, lines) = std::sync::mpsc::channel();
    let out = py.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let next = || lines.recv_timeout(Duration::from_secs(30)).expect("a line from the controller");
    let listening = next();
    let port = listening.strip_prefix("listening ").expect("listening PORT").to_string();
    let h = hosts(2, 1);
    let mut extra = vec!["--controller".to_string(), format!("ssl:127.0.0.1:{port}")];
    extra.extend(tls_args(&switch));
    let opts = DutOptions { extra_args: extra, ..DutOptions::default() };
    let dut = Dut::start_kind(Kind::Xdpswitch, &[&h[0].sw_if, &h[1].sw_if], &opts);
    let line = next();
    let _ = py.kill();
    let _ = py.wait();
    eprintln!("controller: {line}");
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields.first(), Some(&"features"), "{line}");
    assert_ne!(fields[1], "0x0", "a datapath id");
    assert!(fields[2].starts_with("TLSv1."), "{line}");
    drop(dut);
}
