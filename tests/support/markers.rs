//! Traffic that tells an old rule from a new one: background datagrams (payload `B...`) run
//! all along, and after each rule change the test sends a few marker datagrams (`M<phase> `)
//! whose arrival says which rule was in force for them. Receivers count both per host, so a
//! test can check that every marker of a phase reached the host that phase's rule names and
//! none reached the host of the rule it replaced. Several hosts share one IP address (the
//! rules rewrite the destination MAC), so the same datagrams are delivered wherever they go.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Stdio};

use xdpswitch::netns::Host;

/// The receivers' Python: counts background datagrams and markers per phase, prints `ready`
/// once bound, one JSON line at the end, and with `live` also `m <phase>` per marker.
fn receiver_code(port: u16, secs: f64, live: bool) -> String {
    let echo = if live { "; print('m',k,flush=True)" } else { "" };
    format!(
        "import socket,json,time\n\
         s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
         s.setsockopt(socket.SOL_SOCKET,33,8<<20)\n\
         s.bind(('0.0.0.0',{port}))\n\
         s.settimeout(0.2)\n\
         print('ready',flush=True)\n\
         b=0;m={{}};end=time.time()+{secs}\n\
         while time.time()<end:\n\
         \x20 try: d=s.recv(2048)\n\
         \x20 except socket.timeout: continue\n\
         \x20 if d[:1]==b'B': b+=1\n\
         \x20 else: k=d[1:].split(b' ')[0].decode(); m[k]=m.get(k,0)+1{echo}\n\
         print(json.dumps({{'b':b,'m':m}}),flush=True)\n"
    )
}

/// Python in `host`: receive UDP on `port` for `secs` and print one JSON line with the number
/// of background datagrams (`b`) and of markers per phase (`m`: phase -> count).
pub fn receiver(host: &Host, port: u16, secs: f64) -> Child {
    let code = receiver_code(port, secs, false);
    let mut c = host.command("python3");
    c.args(["-c", &code]).stdout(Stdio::piped());
    let mut child = c.spawn().expect("receiver");
    // Wait for its socket before anything is sent.
    let out = child.stdout.as_mut().unwrap();
    let mut first = [0u8; 6];
    std::io::Read::read_exact(out, &mut first).expect("receiver ready");
    child
}

/// What a [`receiver`] counted: `{"b": N, "m": {"<phase>": N, ...}}`.
pub fn received(child: Child) -> serde_json::Value {
    let out = child.wait_with_output().expect("receiver");
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap_or("{}")).expect("receiver JSON")
}

/// Markers of `phase` counted by a receiver.
pub fn markers(got: &serde_json::Value, phase: &str) -> u64 {
    got["m"][phase].as_u64().unwrap_or(0)
}

/// Background datagrams counted by a receiver.
pub fn background(got: &serde_json::Value) -> u64 {
    got["b"].as_u64().unwrap_or(0)
}

/// Python in `host`: background datagrams to `dst:port`, `per_tick` of them every 10 ms, for
/// `secs`; [`background_sent`] gives how many it sent.
pub fn background_sender(host: &Host, dst: &str, port: u16, secs: f64, per_tick: u32) -> Child {
    host.command("python3")
        .args([
            "-c",
            &format!(
                "import socket,time\n\
                 s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
                 n=0;end=time.time()+{secs}\n\
                 while time.time()<end:\n\
                 \x20 for i in range({per_tick}): s.sendto(b'B%d'%n+bytes(60),('{dst}',{port})); n+=1\n\
                 \x20 time.sleep(0.01)\n\
                 print(n,flush=True)\n"
            ),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("background sender")
}

/// How many datagrams a [`background_sender`] sent (waits for it to finish).
pub fn background_sent(child: Child) -> u64 {
    String::from_utf8_lossy(&child.wait_with_output().expect("sender").stdout)
        .trim()
        .parse()
        .expect("a count")
}

/// Sends `count` markers of `phase` to `dst:port` from `host` (one short Python run).
pub fn send_markers(host: &Host, dst: &str, port: u16, phase: &str, count: u32) {
    let code = format!(
        "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
         for i in range({count}): s.sendto(b'M{phase} '+bytes(60),('{dst}',{port}))\n"
    );
    host.exec(&["python3", "-c", &code]).expect("markers");
}

/// A marker sender that stays up (for tests that send markers many times a second): each
/// [`MarkerSender::send`] writes one command and waits until the datagrams are out.
pub struct MarkerSender {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl MarkerSender {
    /// Starts the sender in `host`, aiming at `dst:port`.
    pub fn start(host: &Host, dst: &str, port: u16) -> MarkerSender {
        let code = format!(
            "import socket,sys\n\
             s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
             for line in sys.stdin:\n\
             \x20 p,n=line.split()\n\
             \x20 for i in range(int(n)): s.sendto(b'M'+p.encode()+b' '+bytes(60),('{dst}',{port}))\n\
             \x20 print('ok',flush=True)\n"
        );
        let mut child = host
            .command("python3")
            .args(["-c", &code])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("marker sender");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        MarkerSender { child, stdin, stdout }
    }

    /// Sends `count` markers of `phase` and returns once they are sent.
    pub fn send(&mut self, phase: &str, count: u32) {
        writeln!(self.stdin, "{phase} {count}").expect("marker sender input");
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("marker sender output");
        assert_eq!(line.trim(), "ok", "marker sender: {line:?}");
    }
}

impl Drop for MarkerSender {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A [`receiver`] whose markers are also counted as they arrive, so a test can wait until a
/// phase's markers are all in before it changes the rules in a way that would make a late
/// marker look like it took an old rule.
pub struct LiveReceiver {
    counts: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, u64>>>,
    reader: std::thread::JoinHandle<serde_json::Value>,
}

impl LiveReceiver {
    /// Receives on `port` in `host` for `secs` (as [`receiver`]).
    pub fn start(host: &Host, port: u16, secs: f64) -> LiveReceiver {
        let code = receiver_code(port, secs, true);
        let mut child =
            host.command("python3").args(["-c", &code]).stdout(Stdio::piped()).spawn().expect("receiver");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        out.read_line(&mut first).expect("receiver ready");
        assert_eq!(first.trim(), "ready", "receiver: {first:?}");
        let counts = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashMap::new()));
        let seen = counts.clone();
        let reader = std::thread::spawn(move || {
            let mut last = serde_json::Value::Null;
            for line in out.lines().map_while(Result::ok) {
                match line.strip_prefix("m ") {
                    Some(phase) => *seen.lock().unwrap().entry(phase.to_string()).or_insert(0) += 1,
                    None => last = serde_json::from_str(&line).expect("receiver JSON"),
                }
            }
            let _ = child.wait();
            last
        });
        LiveReceiver { counts, reader }
    }

    /// Markers of `phase` received so far.
    pub fn markers_now(&self, phase: &str) -> u64 {
        self.counts.lock().unwrap().get(phase).copied().unwrap_or(0)
    }

    /// Waits for the receiver to finish: what it counted, as [`received`] gives it.
    pub fn finish(self) -> serde_json::Value {
        self.reader.join().expect("receiver thread")
    }
}
