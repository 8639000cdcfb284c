//! agent — OpenFlow connections to controllers, a thin tokio shell around [`ofp::Channel`](crate::ofp::Channel).
//!
//! **Owns:** the sockets: one task per active controller target (`tcp:IP:PORT`: connect,
//! serve, reconnect with exponential backoff), one per passive listener (`ptcp:PORT[:IP]`),
//! and one per connection. **Calls:** `ofp` (the sans-IO [`Channel`] does the protocol:
//! hello/version negotiation, echo, the inactivity probe, framing and decode errors) and
//! `ofproto` (types of the [`AgentEvent`]s it sends the bridge). **Threads:** one thread
//! running a current-thread tokio runtime; the bridge's control thread also writes into the
//! sockets, through each connection's [`Output`]. It never parses a byte itself and never
//! touches ofproto state: requests go to the bridge's control thread in arrival order;
//! replies and asynchronous messages are written by the control thread itself (no hop back
//! to this thread, so a request/reply round trip wakes one thread less), and what a full
//! socket does not take is written later by the connection's task, in order. No `unsafe`.
//!
//! Back-pressure: the event channel to the bridge is bounded, so a controller blasting
//! flow-mods faster than the bridge applies them is slowed at its TCP socket. Replies are
//! never dropped; asynchronous messages (packet-ins above all) are dropped and counted when
//! the connection's unsent backlog is over [`ASYNC_BACKLOG`] bytes, so a slow controller
//! never stalls the bridge, let alone forwarding.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use crossbeam_channel::Sender;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::ofp::channel::{Channel, ChannelConfig, ChannelEvent};
use crate::ofp::{Message, OFP10_VERSION, OFP13_VERSION};
use crate::ofproto::connmgr::{AgentEvent, ConnId, ConnSink, ConnType};

mod output;
pub use output::{Flushed, Output, ASYNC_BACKLOG};

/// OpenFlow's IANA port.
pub const DEFAULT_PORT: u16 = 6653;

/// Where to connect or listen, as `ovs-vsctl set-controller` spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// `tcp:IP[:PORT]`: connect out to a controller.
    Active(SocketAddr),
    /// `ptcp:[PORT][:IP]`: listen (loopback when no IP is given).
    Passive(SocketAddr),
}

impl std::str::FromStr for Target {
    type Err = anyhow::Error;

    /// Parses `tcp:IP[:PORT]` or `ptcp:[PORT][:IP]` (IPv6 in brackets).
    fn from_str(s: &str) -> anyhow::Result<Target> {
        let ip = |t: &str| -> anyhow::Result<IpAddr> {
            t.trim_start_matches('[')
                .trim_end_matches(']')
                .parse()
                .with_context(|| format!("{s:?}: bad IP {t:?}"))
        };
        let port = |t: &str| -> anyhow::Result<u16> {
            if t.is_empty() {
                return Ok(DEFAULT_PORT);
            }
            t.parse().with_context(|| format!("{s:?}: bad port {t:?}"))
        };
        if let Some(rest) = s.strip_prefix("tcp:") {
            let (h, p) = split_host_port(rest);
            if h.is_empty() {
                bail!("{s:?}: tcp: needs an IP address (tcp:IP[:PORT])");
            }
            Ok(Target::Active(SocketAddr::new(ip(h)?, port(p)?)))
        } else if let Some(rest) = s.strip_prefix("ptcp:") {
            let (p, h) = rest.split_once(':').unwrap_or((rest, ""));
            let addr = if h.is_empty() { IpAddr::V4(Ipv4Addr::LOCALHOST) } else { ip(h)? };
            Ok(Target::Passive(SocketAddr::new(addr, port(p)?)))
        } else {
            bail!("{s:?}: expected tcp:IP[:PORT] or ptcp:[PORT][:IP]")
        }
    }
}

/// `IP:PORT` or `[IPv6]:PORT` or `IP` → (host, port text).
fn split_host_port(s: &str) -> (&str, &str) {
    if let Some(end) = s.find(']') {
        let port = s[end + 1..].strip_prefix(':').unwrap_or("");
        return (&s[..=end], port);
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, p),
        _ => (s, ""),
    }
}

/// Agent settings.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// `--controller` and `--listen` targets.
    pub targets: Vec<Target>,
    /// OpenFlow versions offered (`0x01`, `0x04`).
    pub versions: Vec<u8>,
    /// Send an echo request after this long without input; drop the connection after
    /// twice this (OVS `inactivity_probe`, default 5 s).
    pub probe_interval: Duration,
    /// Longest wait between reconnection attempts (OVS `max_backoff`, default 8 s).
    pub max_backoff: Duration,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            targets: Vec::new(),
            versions: vec![OFP10_VERSION, OFP13_VERSION],
            probe_interval: Duration::from_secs(5),
            max_backoff: Duration::from_secs(8),
        }
    }
}

/// A running agent; dropping it closes every connection and stops the thread.
pub struct Agent {
    stop: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Where the listeners actually listen (port 0 resolved).
    pub listening: Vec<SocketAddr>,
}

impl Agent {
    /// Binds the listeners (errors name the target) and starts the agent thread; events go
    /// to the bridge on `events`.
    pub fn start(cfg: AgentConfig, events: Sender<AgentEvent>) -> anyhow::Result<Agent> {
        let rt =
            tokio::runtime::Builder::new_current_thread().enable_all().build().context("tokio runtime")?;
        let mut listeners = Vec::new();
        for t in &cfg.targets {
            if let Target::Passive(addr) = t {
                let std_l =
                    std::net::TcpListener::bind(addr).with_context(|| format!("--listen ptcp:{addr}"))?;
                std_l.set_nonblocking(true)?;
                listeners.push(std_l);
            }
        }
        let listening = listeners.iter().filter_map(|l| l.local_addr().ok()).collect();
        let (stop, stop_rx) = watch::channel(false);
        let next_id = Arc::new(AtomicU64::new(1));
        let thread = std::thread::Builder::new()
            .name("of-agent".into())
            .spawn(move || {
                rt.block_on(async move {
                    let mut tasks = tokio::task::JoinSet::new();
                    for l in listeners {
                        let l = match TcpListener::from_std(l) {
                            Ok(l) => l,
                            Err(e) => {
                                tracing::error!("listener: {e}");
                                continue;
                            }
                        };
                        tasks.spawn(listen(l, cfg.clone(), events.clone(), next_id.clone(), stop_rx.clone()));
                    }
                    for t in &cfg.targets {
                        if let Target::Active(addr) = *t {
                            tasks.spawn(connect_loop(
                                addr,
                                cfg.clone(),
                                events.clone(),
                                next_id.clone(),
                                stop_rx.clone(),
                            ));
                        }
                    }
                    let mut stop_rx = stop_rx;
                    stopped(&mut stop_rx).await;
                    tasks.shutdown().await;
                });
            })
            .context("spawning the agent thread")?;
        Ok(Agent { stop, thread: Some(thread), listening })
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn listen(
    l: TcpListener,
    cfg: AgentConfig,
    events: Sender<AgentEvent>,
    next_id: Arc<AtomicU64>,
    mut stop: watch::Receiver<bool>,
) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            r = l.accept() => match r {
                Ok((s, peer)) => {
                    let id = ConnId(next_id.fetch_add(1, Relaxed));
                    tracing::debug!(%peer, id = id.0, "OpenFlow connection accepted");
                    conns.spawn(serve(s, id, ConnType::Service, cfg.clone(), events.clone()));
                }
                Err(e) => {
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = stopped(&mut stop) => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    conns.shutdown().await;
}

async fn connect_loop(
    addr: SocketAddr,
    cfg: AgentConfig,
    events: Sender<AgentEvent>,
    next_id: Arc<AtomicU64>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let attempt = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr));
        let connected_at = Instant::now();
        tokio::select! {
            r = attempt => match r {
                Ok(Ok(s)) => {
                    let id = ConnId(next_id.fetch_add(1, Relaxed));
                    tracing::info!(controller = %addr, "connected to controller");
                    let mut stop2 = stop.clone();
                    tokio::select! {
                        _ = serve(s, id, ConnType::Primary, cfg.clone(), events.clone()) => {}
                        _ = stopped(&mut stop2) => return,
                    }
                    tracing::warn!(controller = %addr, "controller connection closed");
                    // A connection that lasted resets the backoff, as OVS's rconn does.
                    if connected_at.elapsed() > cfg.max_backoff {
                        backoff = Duration::from_secs(1);
                    }
                }
                Ok(Err(e)) => tracing::debug!(controller = %addr, "connect: {e}"),
                Err(_) => tracing::debug!(controller = %addr, "connect: timed out"),
            },
            _ = stopped(&mut stop) => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stopped(&mut stop) => return,
        }
        backoff = (backoff * 2).min(cfg.max_backoff);
    }
}

/// The bridge's handle on one connection: it writes into the socket itself ([`Output`]).
struct Sink {
    out: Arc<Output>,
}

impl ConnSink for Sink {
    fn reply(&self, msgs: Vec<Message>) {
        self.out.send_messages(&msgs);
    }
    fn send_async(&self, msg: Message) -> bool {
        self.out.send_async(&msg)
    }
}

/// Serves one connection until it closes.
async fn serve(stream: TcpStream, id: ConnId, kind: ConnType, cfg: AgentConfig, events: Sender<AgentEvent>) {
    let _ = stream.set_nodelay(true);
    let peer = stream.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    // A second handle on the socket for the control thread's writes.
    let shared = match stream.into_std().and_then(|s| Ok((s.try_clone()?, s))) {
        Ok((writer, s)) => match TcpStream::from_std(s) {
            Ok(s) => (s, writer),
            Err(e) => {
                tracing::warn!(%peer, "OpenFlow connection: {e}");
                return;
            }
        },
        Err(e) => {
            tracing::warn!(%peer, "OpenFlow connection: {e}");
            return;
        }
    };
    let (stream, writer) = shared;
    let out = Arc::new(Output::new(writer));
    let ccfg = ChannelConfig {
        versions: cfg.versions.clone(),
        probe_interval: cfg.probe_interval,
        ..Default::default()
    };
    let mut ch = Channel::new(Instant::now(), ccfg);
    let mut sink = Some(Sink { out: out.clone() });
    let mut ready = false;
    let mut buf = vec![0u8; 64 * 1024];
    let mut bytes = Vec::with_capacity(64 * 1024);
    'conn: loop {
        // What the channel answered itself (errors for undecodable input, echo replies) goes
        // out before the requests that followed it reach the bridge, which may reply at once.
        bytes.clear();
        if ch.poll_transmit(&mut bytes) {
            out.send_bytes(&bytes);
        }
        while let Some(ev) = ch.poll_event() {
            match ev {
                ChannelEvent::Ready { version } => {
                    let Some(sink) = sink.take() else { continue };
                    ready = true;
                    let ev =
                        AgentEvent::Connected { id, kind, version, peer: peer.clone(), sink: Box::new(sink) };
                    if events.send(ev).is_err() {
                        break 'conn;
                    }
                }
                ChannelEvent::Request { msg, .. } => {
                    // Blocks this thread when the bridge is behind: back-pressure to the peer.
                    if events.send(AgentEvent::Message { id, msg }).is_err() {
                        break 'conn;
                    }
                }
                ChannelEvent::Closed { reason } => {
                    tracing::debug!(id = id.0, %peer, ?reason, "OpenFlow channel closed");
                    // Flush what the channel queued last (e.g. HELLO_FAILED).
                    bytes.clear();
                    ch.poll_transmit(&mut bytes);
                    out.send_bytes(&bytes);
                    drain(&stream, &out).await;
                    break 'conn;
                }
            }
        }
        bytes.clear();
        if ch.poll_transmit(&mut bytes) {
            out.send_bytes(&bytes);
        }
        if out.is_finished() {
            break;
        }
        let backlog = out.has_backlog();
        let deadline = ch.poll_timeout().map(tokio::time::Instant::from_std);
        tokio::select! {
            r = stream.readable() => {
                if r.is_err() {
                    break;
                }
                match stream.try_read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => ch.handle_input(Instant::now(), &buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => break,
                }
            },
            r = stream.writable(), if backlog => {
                if r.is_err() || out.flush_with(|b| stream.try_write(b)) == Flushed::Closed {
                    break;
                }
            },
            _ = out.notified() => {}
            _ = sleep_until(deadline) => ch.handle_timeout(Instant::now()),
        }
    }
    out.shut_down();
    if ready {
        let _ = events.send(AgentEvent::Disconnected { id });
    }
}

/// Writes the backlog out before a close (for at most a second).
async fn drain(stream: &TcpStream, out: &Output) {
    let give_up = tokio::time::sleep(Duration::from_secs(1));
    tokio::pin!(give_up);
    while out.has_backlog() {
        tokio::select! {
            r = stream.writable() => {
                if r.is_err() || out.flush_with(|b| stream.try_write(b)) == Flushed::Closed {
                    return;
                }
            }
            _ = &mut give_up => return,
        }
    }
}

/// Returns once the stop flag is set (or its sender is gone).
async fn stopped(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

async fn sleep_until(t: Option<tokio::time::Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ofp::{decode, encode, Body, Decoded, Hello, Xid};
    use std::io::{Read, Write};

    /// Reads one whole OpenFlow message from a blocking socket.
    fn read_msg(s: &mut std::net::TcpStream) -> Message {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            if let Ok(Decoded::Message { msg, .. }) = decode(&buf) {
                return msg;
            }
            let n = s.read(&mut chunk).expect("read");
            assert!(n > 0, "connection closed");
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn send(s: &mut std::net::TcpStream, version: u8, xid: u32, body: Body) {
        let mut out = Vec::new();
        encode(&Message { version, xid: Xid(xid), body }, &mut out).unwrap();
        s.write_all(&out).unwrap();
    }

    #[test]
    fn a_client_of_the_passive_port_reaches_the_bridge_and_back() {
        let (tx, rx) = crossbeam_channel::bounded(16);
        let cfg = AgentConfig { targets: vec!["ptcp:0".parse().unwrap()], ..AgentConfig::default() };
        let agent = Agent::start(cfg, tx).unwrap();
        let addr = agent.listening[0];
        assert!(addr.ip().is_loopback());
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        // Hello both ways; 1.3 is the highest version in common.
        send(&mut c, OFP13_VERSION, 1, Body::Hello(Hello::with_versions(&[OFP10_VERSION, OFP13_VERSION])));
        assert!(matches!(read_msg(&mut c).body, Body::Hello(_)));
        let timeout = Duration::from_secs(10);
        let (id, sink) = match rx.recv_timeout(timeout).unwrap() {
            AgentEvent::Connected { id, kind, version, sink, .. } => {
                assert_eq!((kind, version), (ConnType::Service, OFP13_VERSION));
                (id, sink)
            }
            _ => panic!("expected Connected"),
        };
        // Echo is the channel's business; a barrier goes to the bridge, in order.
        send(&mut c, OFP13_VERSION, 7, Body::EchoRequest(b"hi".to_vec()));
        let echo = read_msg(&mut c);
        assert_eq!((echo.xid, echo.body), (Xid(7), Body::EchoReply(b"hi".to_vec())));
        send(&mut c, OFP13_VERSION, 8, Body::BarrierRequest);
        match rx.recv_timeout(timeout).unwrap() {
            AgentEvent::Message { id: got, msg } => {
                assert_eq!((got, msg.xid, msg.body), (id, Xid(8), Body::BarrierRequest));
            }
            _ => panic!("expected the barrier"),
        }
        sink.reply(vec![Message { version: OFP13_VERSION, xid: Xid(8), body: Body::BarrierReply }]);
        assert_eq!(read_msg(&mut c).body, Body::BarrierReply);
        // Asynchronous messages go out too; closing the client reports the disconnection.
        assert!(sink.send_async(Message {
            version: OFP13_VERSION,
            xid: Xid(0),
            body: Body::EchoRequest(vec![])
        }));
        assert!(matches!(read_msg(&mut c).body, Body::EchoRequest(_)));
        drop(c);
        match rx.recv_timeout(timeout).unwrap() {
            AgentEvent::Disconnected { id: got } => assert_eq!(got, id),
            _ => panic!("expected Disconnected"),
        }
        drop(agent);
    }

    #[test]
    fn an_active_connection_reconnects_after_the_controller_closes_it() {
        let controller = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = controller.local_addr().unwrap();
        let (tx, rx) = crossbeam_channel::bounded(16);
        let cfg = AgentConfig { targets: vec![Target::Active(addr)], ..AgentConfig::default() };
        let _agent = Agent::start(cfg, tx).unwrap();
        for round in 0..2 {
            let (mut c, _) = controller.accept().unwrap();
            c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            assert!(matches!(read_msg(&mut c).body, Body::Hello(_)), "round {round}");
            send(&mut c, OFP10_VERSION, 1, Body::Hello(Hello::default()));
            match rx.recv_timeout(Duration::from_secs(10)).unwrap() {
                AgentEvent::Connected { kind, version, .. } => {
                    assert_eq!((kind, version), (ConnType::Primary, OFP10_VERSION))
                }
                _ => panic!("expected Connected"),
            }
            drop(c);
            assert!(matches!(
                rx.recv_timeout(Duration::from_secs(10)).unwrap(),
                AgentEvent::Disconnected { .. }
            ));
        }
    }

    #[test]
    fn targets_parse_as_ovs_spells_them() {
        let a = |s: &str| s.parse::<Target>().unwrap();
        assert_eq!(a("tcp:192.0.2.10:6653"), Target::Active("192.0.2.10:6653".parse().unwrap()));
        assert_eq!(a("tcp:192.0.2.10"), Target::Active("192.0.2.10:6653".parse().unwrap()));
        assert_eq!(a("tcp:[::1]:6633"), Target::Active("[::1]:6633".parse().unwrap()));
        assert_eq!(a("ptcp:6634"), Target::Passive("127.0.0.1:6634".parse().unwrap()));
        assert_eq!(a("ptcp:6634:0.0.0.0"), Target::Passive("0.0.0.0:6634".parse().unwrap()));
        assert_eq!(a("ptcp:"), Target::Passive("127.0.0.1:6653".parse().unwrap()));
        assert_eq!(a("ptcp::::1"), Target::Passive("[::1]:6653".parse().unwrap()));
        for bad in ["tcp:", "tcp:nohost:1", "ptcp:99999", "udp:1.2.3.4:5", "ptcp:1:bad"] {
            let e = bad.parse::<Target>().unwrap_err().to_string();
            assert!(e.contains(bad), "{bad}: {e}");
        }
    }
}
