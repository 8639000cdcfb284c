//! agent — OpenFlow connections to controllers, a thin tokio shell around [`ofp::Channel`](crate::ofp::Channel).
//!
//! **Owns:** the sockets: one task per active controller target (`tcp:IP:PORT` or
//! `ssl:IP:PORT`: connect, serve, reconnect with exponential backoff), one per passive
//! listener (`ptcp:PORT[:IP]`, `pssl:PORT[:IP]`), and one per connection. TLS ([`tls`]) is
//! a session inside the connection's [`Output`]; the connection code is the same for both.
//! **Calls:** `ofp` (the sans-IO [`Channel`] does the protocol: hello/version negotiation,
//! echo, the inactivity probe, framing and decode errors) and `ofproto` (types of the [`AgentEvent`]s it sends the bridge). **Threads:** one thread
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
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use crossbeam_channel::Sender;
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::watch;

use crate::ofp::channel::{Channel, ChannelConfig, ChannelEvent};
use crate::ofp::{Message, OFP10_VERSION, OFP13_VERSION};
use crate::ofproto::connmgr::{AgentEvent, ConnId, ConnSink, ConnType};

mod output;
pub mod tls;
pub use output::{Flushed, Output, Received, Sock, ASYNC_BACKLOG};
pub use tls::{TlsConfig, TlsFiles};

/// OpenFlow's IANA port.
pub const DEFAULT_PORT: u16 = 6653;

/// Where to connect or listen, as `ovs-vsctl set-controller` spells it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `tcp:IP[:PORT]`: connect out to a controller.
    Active(SocketAddr),
    /// `ptcp:[PORT][:IP]`: listen (loopback when no IP is given).
    Passive(SocketAddr),
    /// `ssl:IP[:PORT]`: connect out to a controller over TLS.
    Ssl(SocketAddr),
    /// `pssl:[PORT][:IP]`: listen for TLS clients (loopback when no IP is given).
    PSsl(SocketAddr),
    /// `punix:PATH`: listen on a unix socket (a bridge's management socket,
    /// `<rundir>/<bridge>.mgmt`, as `ovs-ofctl` finds it); the file is removed on stop.
    PUnix(PathBuf),
}

impl Target {
    /// Whether the switch connects out (`tcp:`, `ssl:`), as opposed to listening.
    pub fn is_active(&self) -> bool {
        matches!(self, Target::Active(_) | Target::Ssl(_))
    }

    /// Whether the connections run over TLS (`ssl:`, `pssl:`).
    pub fn is_tls(&self) -> bool {
        matches!(self, Target::Ssl(_) | Target::PSsl(_))
    }

    /// The address connected to or listened on (`None` for a unix socket).
    pub fn addr(&self) -> Option<SocketAddr> {
        match *self {
            Target::Active(a) | Target::Passive(a) | Target::Ssl(a) | Target::PSsl(a) => Some(a),
            Target::PUnix(_) => None,
        }
    }
}

impl std::fmt::Display for Target {
    /// As OVS spells it: `tcp:IP:PORT`, `ptcp:PORT:IP`, `ssl:IP:PORT`, `pssl:PORT:IP`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let a = match self {
            Target::PUnix(path) => return write!(f, "punix:{}", path.display()),
            Target::Active(a) | Target::Passive(a) | Target::Ssl(a) | Target::PSsl(a) => *a,
        };
        let ip = match a.ip() {
            IpAddr::V6(ip) => format!("[{ip}]"),
            IpAddr::V4(ip) => ip.to_string(),
        };
        match self {
            Target::Active(_) => write!(f, "tcp:{ip}:{}", a.port()),
            Target::Ssl(_) => write!(f, "ssl:{ip}:{}", a.port()),
            Target::Passive(_) => write!(f, "ptcp:{}:{ip}", a.port()),
            Target::PSsl(_) => write!(f, "pssl:{}:{ip}", a.port()),
            Target::PUnix(_) => Ok(()),
        }
    }
}

impl std::str::FromStr for Target {
    type Err = anyhow::Error;

    /// Parses `tcp:IP[:PORT]`, `ssl:IP[:PORT]`, `ptcp:[PORT][:IP]`, `pssl:[PORT][:IP]`
    /// (IPv6 in brackets) or `punix:PATH`.
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
        let (kind, rest) = s.split_once(':').unwrap_or((s, ""));
        match kind {
            "tcp" | "ssl" => {
                let (h, p) = split_host_port(rest);
                if h.is_empty() {
                    bail!("{s:?}: {kind}: needs an IP address ({kind}:IP[:PORT])");
                }
                let addr = SocketAddr::new(ip(h)?, port(p)?);
                Ok(if kind == "tcp" { Target::Active(addr) } else { Target::Ssl(addr) })
            }
            "ptcp" | "pssl" => {
                let (p, h) = rest.split_once(':').unwrap_or((rest, ""));
                let ip = if h.is_empty() { IpAddr::V4(Ipv4Addr::LOCALHOST) } else { ip(h)? };
                let addr = SocketAddr::new(ip, port(p)?);
                Ok(if kind == "ptcp" { Target::Passive(addr) } else { Target::PSsl(addr) })
            }
            "punix" if rest.is_empty() => bail!("{s:?}: punix: needs a socket path (punix:PATH)"),
            "punix" => Ok(Target::PUnix(PathBuf::from(rest))),
            _ => bail!(
                "{s:?}: expected tcp:IP[:PORT], ssl:IP[:PORT], ptcp:[PORT][:IP], pssl:[PORT][:IP] or punix:PATH"
            ),
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
    /// Key, certificate and CA for `ssl:` and `pssl:` targets (required by them).
    pub tls: Option<Arc<TlsConfig>>,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            targets: Vec::new(),
            versions: vec![OFP10_VERSION, OFP13_VERSION],
            probe_interval: Duration::from_secs(5),
            max_backoff: Duration::from_secs(8),
            tls: None,
        }
    }
}

/// A running agent; dropping it closes every connection and stops the thread.
pub struct Agent {
    stop: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Where the listeners actually listen (port 0 resolved).
    pub listening: Vec<SocketAddr>,
    /// Per target (in configuration order), its connections now.
    slots: Arc<[TargetSlot]>,
    targets: Vec<Target>,
    /// The unix sockets it listens on: removed when it stops.
    unix_paths: Vec<PathBuf>,
}

/// Connection ids are unique in the process, so that a bridge whose agent is replaced never
/// mistakes a new connection for an old one.
static NEXT_CONN_ID: AtomicU64 = AtomicU64::new(1);

/// One target's connections, as the agent's tasks see them (two atomics per target).
#[derive(Debug, Default)]
struct TargetSlot {
    /// The id of the target's newest connection that is open (0: none).
    conn: AtomicU64,
    /// How many connections of the target are open (active targets: 0 or 1).
    open: AtomicU64,
}

impl TargetSlot {
    fn opened(&self, id: ConnId) {
        self.conn.store(id.0, Relaxed);
        self.open.fetch_add(1, Relaxed);
    }
    fn closed(&self, id: ConnId) {
        let _ = self.conn.compare_exchange(id.0, 0, Relaxed, Relaxed);
        self.open.fetch_sub(1, Relaxed);
    }
}

/// Ends a connection's accounting in its target's slot, however its task ends (a stopped
/// agent aborts its tasks).
struct SlotGuard(Arc<[TargetSlot]>, usize, ConnId);

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.0[self.1].closed(self.2);
    }
}

/// One target's state, as [`Agent::target_states`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetState {
    pub target: Target,
    /// Its newest open connection (the bridge knows whether it finished negotiation, and
    /// its role); `None` when it has none.
    pub conn: Option<ConnId>,
    /// Open connections (active targets: 0 or 1; listeners: their clients).
    pub open: u64,
}

impl Agent {
    /// Binds the listeners (errors name the target) and starts the agent thread; events go
    /// to the bridge on `events`.
    pub fn start(cfg: AgentConfig, events: Sender<AgentEvent>) -> anyhow::Result<Agent> {
        let rt =
            tokio::runtime::Builder::new_current_thread().enable_all().build().context("tokio runtime")?;
        if let Some(t) = cfg.targets.iter().find(|t| t.is_tls()).filter(|_| cfg.tls.is_none()) {
            bail!("{t}: TLS needs a key, a certificate and a CA (--private-key, --certificate, --ca-cert)");
        }
        let mut listeners = Vec::new();
        let mut unix_paths = Vec::new();
        for t in cfg.targets.iter().filter(|t| !t.is_active()) {
            let tls = if t.is_tls() { cfg.tls.clone() } else { None };
            let l = match (t, t.addr()) {
                (Target::PUnix(path), _) => {
                    let l = bind_unix(path).with_context(|| format!("--listen {t}"))?;
                    unix_paths.push(path.clone());
                    StdListener::Unix(l)
                }
                (_, Some(addr)) => StdListener::Tcp(
                    std::net::TcpListener::bind(addr).with_context(|| format!("--listen {t}"))?,
                ),
                (_, None) => bail!("--listen {t}: no address"),
            };
            listeners.push((l, tls));
        }
        let listening = listeners
            .iter()
            .filter_map(|(l, _)| match l {
                StdListener::Tcp(l) => l.local_addr().ok(),
                StdListener::Unix(_) => None,
            })
            .collect();
        let log = Arc::new(LogLimit::default());
        let (stop, stop_rx) = watch::channel(false);
        let slots: Arc<[TargetSlot]> = cfg.targets.iter().map(|_| TargetSlot::default()).collect();
        let targets = cfg.targets.clone();
        let slots2 = slots.clone();
        let thread = std::thread::Builder::new()
            .name("of-agent".into())
            .spawn(move || {
                rt.block_on(async move {
                    let mut tasks = tokio::task::JoinSet::new();
                    let ctx = Ctx { cfg: cfg.clone(), events, log, slots: slots2 };
                    let passive = cfg.targets.iter().enumerate().filter(|(_, t)| !t.is_active());
                    for ((l, tls), (slot, _)) in listeners.into_iter().zip(passive) {
                        let l = match l.into_tokio() {
                            Ok(l) => l,
                            Err(e) => {
                                tracing::error!("listener: {e}");
                                continue;
                            }
                        };
                        tasks.spawn(listen(l, tls, slot, ctx.clone(), stop_rx.clone()));
                    }
                    for (slot, t) in cfg.targets.iter().enumerate().filter(|(_, t)| t.is_active()) {
                        tasks.spawn(connect_loop(t.clone(), slot, ctx.clone(), stop_rx.clone()));
                    }
                    let mut stop_rx = stop_rx;
                    stopped(&mut stop_rx).await;
                    tasks.shutdown().await;
                });
            })
            .context("spawning the agent thread")?;
        Ok(Agent { stop, thread: Some(thread), listening, slots, targets, unix_paths })
    }

    /// Every target's connections now (cheap: two atomic loads per target).
    pub fn target_states(&self) -> Vec<TargetState> {
        self.targets
            .iter()
            .zip(self.slots.iter())
            .map(|(t, s)| {
                let conn = s.conn.load(Relaxed);
                TargetState {
                    target: t.clone(),
                    conn: (conn != 0).then_some(ConnId(conn)),
                    open: s.open.load(Relaxed),
                }
            })
            .collect()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        for p in &self.unix_paths {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Binds a unix socket at `path`, replacing a stale socket file (left by a crashed run) but
/// refusing one that still answers.
fn bind_unix(path: &Path) -> anyhow::Result<std::os::unix::net::UnixListener> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            bail!("{} is in use", path.display());
        }
        std::fs::remove_file(path).with_context(|| format!("removing the stale {}", path.display()))?;
    }
    let l = std::os::unix::net::UnixListener::bind(path)?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// A listening socket before the agent's runtime takes it.
enum StdListener {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener),
}

impl StdListener {
    fn into_tokio(self) -> std::io::Result<Listener> {
        Ok(match self {
            StdListener::Tcp(l) => {
                l.set_nonblocking(true)?;
                Listener::Tcp(TcpListener::from_std(l)?)
            }
            StdListener::Unix(l) => Listener::Unix(UnixListener::from_std(l)?),
        })
    }
}

/// A passive target's listening socket.
enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Listener {
    /// The next client and its name for the logs.
    async fn accept(&self) -> std::io::Result<(Stream, String)> {
        match self {
            Listener::Tcp(l) => l.accept().await.map(|(s, peer)| (Stream::Tcp(s), peer.to_string())),
            Listener::Unix(l) => l.accept().await.map(|(s, _)| (Stream::Unix(s), "unix".to_string())),
        }
    }
}

/// One connection's socket, as the connection's task reads it.
enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    /// This socket for the task, and a second handle on it for the control thread's writes.
    fn split(self) -> std::io::Result<(Stream, Sock)> {
        match self {
            Stream::Tcp(s) => {
                let _ = s.set_nodelay(true);
                let s = s.into_std()?;
                let writer = s.try_clone()?;
                Ok((Stream::Tcp(TcpStream::from_std(s)?), Sock::Tcp(writer)))
            }
            Stream::Unix(s) => {
                let s = s.into_std()?;
                let writer = s.try_clone()?;
                Ok((Stream::Unix(UnixStream::from_std(s)?), Sock::Unix(writer)))
            }
        }
    }
    async fn readable(&self) -> std::io::Result<()> {
        match self {
            Stream::Tcp(s) => s.readable().await,
            Stream::Unix(s) => s.readable().await,
        }
    }
    async fn writable(&self) -> std::io::Result<()> {
        match self {
            Stream::Tcp(s) => s.writable().await,
            Stream::Unix(s) => s.writable().await,
        }
    }
    fn try_read(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.try_read(buf),
            Stream::Unix(s) => s.try_read(buf),
        }
    }
    fn try_write(&self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.try_write(buf),
            Stream::Unix(s) => s.try_write(buf),
        }
    }
}

/// What every task of one agent shares.
#[derive(Clone)]
struct Ctx {
    cfg: AgentConfig,
    events: Sender<AgentEvent>,
    /// Limits the warnings about failed TLS handshakes.
    log: Arc<LogLimit>,
    /// Per target, its open connections.
    slots: Arc<[TargetSlot]>,
}

impl Ctx {
    /// A new connection of target `slot`, counted in its slot until the guard drops.
    fn next_id(&self, slot: usize) -> (ConnId, SlotGuard) {
        let id = ConnId(NEXT_CONN_ID.fetch_add(1, Relaxed));
        self.slots[slot].opened(id);
        (id, SlotGuard(self.slots.clone(), slot, id))
    }
}

/// How often a kind of warning may be logged (a peer retrying with a bad certificate would
/// otherwise fill the log).
const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// One warning per [`LOG_INTERVAL`]; the ones in between are counted and the count is told
/// with the next.
#[derive(Debug, Default)]
struct LogLimit {
    state: std::sync::Mutex<(Option<Instant>, u64)>,
}

impl LogLimit {
    /// `Some(suppressed since the last one)` when a warning may be logged at `now`.
    fn allow(&self, now: Instant) -> Option<u64> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match st.0 {
            Some(last) if now.duration_since(last) < LOG_INTERVAL => {
                st.1 += 1;
                None
            }
            _ => {
                let suppressed = std::mem::take(&mut st.1);
                st.0 = Some(now);
                Some(suppressed)
            }
        }
    }
}

async fn listen(
    l: Listener,
    tls: Option<Arc<TlsConfig>>,
    slot: usize,
    ctx: Ctx,
    mut stop: watch::Receiver<bool>,
) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            r = l.accept() => match r {
                Ok((s, peer)) => {
                    let (id, guard) = ctx.next_id(slot);
                    tracing::debug!(%peer, id = id.0, tls = tls.is_some(), "OpenFlow connection accepted");
                    let session = match tls.as_deref().map(TlsConfig::server).transpose() {
                        Ok(session) => session,
                        Err(e) => {
                            tracing::warn!(%peer, "TLS session: {e}");
                            continue;
                        }
                    };
                    let ctx = ctx.clone();
                    conns.spawn(async move {
                        let _guard = guard;
                        serve(s, session, id, ConnType::Service, ctx).await
                    });
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

async fn connect_loop(target: Target, slot: usize, ctx: Ctx, mut stop: watch::Receiver<bool>) {
    let Some(addr) = target.addr() else { return };
    let tls = if target.is_tls() { ctx.cfg.tls.clone() } else { None };
    let mut backoff = Duration::from_secs(1);
    loop {
        let attempt = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr));
        let connected_at = Instant::now();
        tokio::select! {
            r = attempt => match r {
                Ok(Ok(s)) => {
                    let (id, _guard) = ctx.next_id(slot);
                    tracing::info!(controller = %target, "connected to controller");
                    let session = match tls.as_deref().map(|t| t.client(addr.ip())).transpose() {
                        Ok(session) => session,
                        Err(e) => {
                            tracing::warn!(controller = %target, "TLS session: {e}");
                            return;
                        }
                    };
                    let mut stop2 = stop.clone();
                    tokio::select! {
                        _ = serve(Stream::Tcp(s), session, id, ConnType::Primary, ctx.clone()) => {}
                        _ = stopped(&mut stop2) => return,
                    }
                    tracing::warn!(controller = %target, "controller connection closed");
                    // A connection that lasted resets the backoff, as OVS's rconn does.
                    if connected_at.elapsed() > ctx.cfg.max_backoff {
                        backoff = Duration::from_secs(1);
                    }
                }
                Ok(Err(e)) => tracing::debug!(controller = %target, "connect: {e}"),
                Err(_) => tracing::debug!(controller = %target, "connect: timed out"),
            },
            _ = stopped(&mut stop) => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stopped(&mut stop) => return,
        }
        backoff = (backoff * 2).min(ctx.cfg.max_backoff);
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

/// Serves one connection until it closes, over TCP or a unix socket, or over TLS when
/// `session` is given.
async fn serve(stream: Stream, session: Option<rustls::Connection>, id: ConnId, kind: ConnType, ctx: Ctx) {
    let Ctx { cfg, events, log, .. } = ctx;
    let peer = match &stream {
        Stream::Tcp(s) => s.peer_addr().map(|a| a.to_string()).unwrap_or_default(),
        Stream::Unix(_) => "unix".to_string(),
    };
    // A second handle on the socket for the control thread's writes.
    let (stream, writer) = match stream.split() {
        Ok(pair) => pair,
        Err(e) => {
            tracing::warn!(%peer, "OpenFlow connection: {e}");
            return;
        }
    };
    let out = Arc::new(match (session, writer) {
        (Some(session), Sock::Tcp(w)) => Output::new_tls(w, session),
        (_, w) => Output::new(w),
    });
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
                let now = Instant::now();
                match out.receive_with(&mut buf, |b| stream.try_read(b), |b| ch.handle_input(now, b)) {
                    Received::Data | Received::WouldBlock => {}
                    Received::Eof => break,
                    Received::TlsFailed(e) => {
                        // A peer with a bad certificate retries: say it, but not every time.
                        if let Some(n) = log.allow(now) {
                            let also = if n > 0 { format!(" ({n} more since the last report)") } else { String::new() };
                            tracing::warn!(id = id.0, %peer, "OpenFlow connection: {e}{also}");
                        }
                        break;
                    }
                    Received::Failed(e) => {
                        tracing::debug!(id = id.0, %peer, "OpenFlow connection: {e}");
                        break;
                    }
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
async fn drain(stream: &Stream, out: &Output) {
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
    use std::net::TcpStream;

    /// Reads one whole OpenFlow message from a blocking socket (or TLS stream over one).
    fn read_msg(s: &mut impl Read) -> Message {
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

    fn send(s: &mut impl Write, version: u8, xid: u32, body: Body) {
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

    #[test]
    fn tls_targets_parse_as_ovs_spells_them_and_print_back() {
        let a = |s: &str| s.parse::<Target>().unwrap();
        assert_eq!(a("ssl:192.0.2.10:6653"), Target::Ssl("192.0.2.10:6653".parse().unwrap()));
        assert_eq!(a("ssl:192.0.2.10"), Target::Ssl("192.0.2.10:6653".parse().unwrap()));
        assert_eq!(a("ssl:[2001:db8::1]:6633"), Target::Ssl("[2001:db8::1]:6633".parse().unwrap()));
        assert_eq!(a("pssl:6634"), Target::PSsl("127.0.0.1:6634".parse().unwrap()));
        assert_eq!(a("pssl:"), Target::PSsl("127.0.0.1:6653".parse().unwrap()));
        assert_eq!(a("pssl:6634:0.0.0.0"), Target::PSsl("0.0.0.0:6634".parse().unwrap()));
        assert_eq!(a("pssl::::1"), Target::PSsl("[::1]:6653".parse().unwrap()));
        for bad in ["ssl:", "ssl:host:1", "pssl:70000", "pssl:1:nohost", "ssl", "tls:1.2.3.4"] {
            let e = bad.parse::<Target>().unwrap_err().to_string();
            assert!(e.contains(bad), "{bad}: {e}");
        }
        for (t, active, tls) in
            [("tcp:1.2.3.4:5", true, false), ("ssl:1.2.3.4:5", true, true), ("ptcp:5:1.2.3.4", false, false)]
                .into_iter()
                .chain([("pssl:5:1.2.3.4", false, true), ("ssl:[::1]:5", true, true)])
        {
            assert_eq!((a(t).is_active(), a(t).is_tls()), (active, tls), "{t}");
            assert_eq!(a(t).to_string(), t);
            assert_eq!(a(&a(t).to_string()), a(t));
        }
    }

    #[test]
    fn punix_targets_parse_and_print() {
        let t: Target = "punix:/var/run/openvswitch/br0.mgmt".parse().unwrap();
        assert_eq!(t, Target::PUnix(PathBuf::from("/var/run/openvswitch/br0.mgmt")));
        assert_eq!(t.to_string(), "punix:/var/run/openvswitch/br0.mgmt");
        assert!(!t.is_active() && !t.is_tls() && t.addr().is_none());
        let e = "punix:".parse::<Target>().unwrap_err().to_string();
        assert!(e.contains("needs a socket path"), "{e}");
    }

    #[test]
    fn a_punix_listener_serves_a_client_reports_it_and_removes_its_file() {
        let dir = std::env::temp_dir().join(format!("xs-punix-{}", std::process::id()));
        let path = dir.join("br0.mgmt");
        let (tx, rx) = crossbeam_channel::bounded(16);
        // A controller nobody listens on (the port was free a moment ago).
        let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let targets = vec![Target::Active(gone), Target::PUnix(path.clone())];
        let agent = Agent::start(AgentConfig { targets, ..AgentConfig::default() }, tx).unwrap();
        // A second agent on the same live socket is refused.
        let (tx2, _rx2) = crossbeam_channel::bounded(1);
        let cfg2 = AgentConfig { targets: vec![Target::PUnix(path.clone())], ..AgentConfig::default() };
        assert!(Agent::start(cfg2, tx2).is_err());
        let mut c = std::os::unix::net::UnixStream::connect(&path).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        send(&mut c, OFP13_VERSION, 1, Body::Hello(Hello::with_versions(&[OFP13_VERSION])));
        assert!(matches!(read_msg(&mut c).body, Body::Hello(_)));
        let (id, sink) = match rx.recv_timeout(Duration::from_secs(10)).unwrap() {
            AgentEvent::Connected { id, kind, sink, .. } => {
                assert_eq!(kind, ConnType::Service);
                (id, sink)
            }
            _ => panic!("expected Connected"),
        };
        send(&mut c, OFP13_VERSION, 9, Body::BarrierRequest);
        assert!(matches!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), AgentEvent::Message { .. }));
        sink.reply(vec![Message { version: OFP13_VERSION, xid: Xid(9), body: Body::BarrierReply }]);
        assert_eq!(read_msg(&mut c).body, Body::BarrierReply);
        // The controller is not connected (nobody listens); the unix client is.
        let st = agent.target_states();
        assert_eq!((st[0].open, st[0].conn), (0, None));
        assert_eq!((st[1].open, st[1].conn), (1, Some(id)));
        drop(c);
        match rx.recv_timeout(Duration::from_secs(10)).unwrap() {
            AgentEvent::Disconnected { id: got } => assert_eq!(got, id),
            _ => panic!("expected Disconnected"),
        }
        // The slot is released as the connection's task ends, just after it said so.
        let deadline = Instant::now() + Duration::from_secs(10);
        while agent.target_states()[1].open != 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(
            agent.target_states()[1],
            TargetState { target: Target::PUnix(path.clone()), conn: None, open: 0 }
        );
        drop(agent);
        assert!(!path.exists(), "the socket file stays after the agent stopped");
        let _ = std::fs::remove_dir(&dir);
    }

    #[test]
    fn tls_warnings_are_limited_and_count_what_they_left_out() {
        let l = LogLimit::default();
        let t0 = Instant::now();
        assert_eq!(l.allow(t0), Some(0));
        assert_eq!(l.allow(t0 + Duration::from_secs(1)), None);
        assert_eq!(l.allow(t0 + Duration::from_secs(9)), None);
        assert_eq!(l.allow(t0 + LOG_INTERVAL), Some(2));
        assert_eq!(l.allow(t0 + LOG_INTERVAL), None);
    }

    #[test]
    fn a_tls_target_without_key_and_certificates_is_refused_at_start() {
        let (tx, _rx) = crossbeam_channel::bounded(1);
        let cfg = AgentConfig { targets: vec!["pssl:0".parse().unwrap()], ..AgentConfig::default() };
        let e = Agent::start(cfg, tx).err().expect("refused").to_string();
        assert_eq!(
            e,
            "pssl:0:127.0.0.1: TLS needs a key, a certificate and a CA (--private-key, --certificate, --ca-cert)"
        );
    }

    /// A blocking TLS client of `addr` with `files`.
    fn tls_client(
        addr: SocketAddr,
        files: &TlsFiles,
    ) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
        let cfg = TlsConfig::load(files).unwrap();
        let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
        let conn = rustls::ClientConnection::new(cfg.client_config(), name).unwrap();
        let sock = TcpStream::connect(addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        rustls::StreamOwned::new(conn, sock)
    }

    #[test]
    fn a_pssl_listener_serves_clients_of_its_ca_and_refuses_others() {
        let ca = tls::test_pki::Ca::new("pssl-unit");
        let switch = ca.party("switch");
        let (tx, rx) = crossbeam_channel::bounded(16);
        let cfg = AgentConfig {
            targets: vec!["pssl:0".parse().unwrap()],
            tls: Some(TlsConfig::load(&switch).unwrap()),
            ..AgentConfig::default()
        };
        let agent = Agent::start(cfg, tx).unwrap();
        let addr = agent.listening[0];
        assert!(addr.ip().is_loopback());
        let timeout = Duration::from_secs(10);

        // A client whose certificate another CA signed (it trusts ours, so it is the switch
        // that refuses): no HELLO, no connection reaches the bridge.
        let rogue_ca = tls::test_pki::Ca::new("pssl-rogue");
        let rogue = TlsFiles { ca_cert: switch.ca_cert.clone(), ..rogue_ca.party("rogue") };
        let mut c = tls_client(addr, &rogue);
        send(&mut c, OFP13_VERSION, 1, Body::Hello(Hello::default()));
        let mut byte = [0u8; 1];
        assert!(
            !matches!(c.read(&mut byte), Ok(n) if n > 0),
            "the switch must not talk to a client of another CA"
        );
        assert!(rx.recv_timeout(Duration::from_millis(300)).is_err(), "nothing reached the bridge");

        // A client of our CA, after that: served as over TCP.
        let mut c = tls_client(addr, &ca.party("ofctl"));
        send(&mut c, OFP13_VERSION, 1, Body::Hello(Hello::with_versions(&[OFP13_VERSION])));
        assert!(matches!(read_msg(&mut c).body, Body::Hello(_)));
        let (id, sink) = match rx.recv_timeout(timeout).unwrap() {
            AgentEvent::Connected { id, kind, version, sink, .. } => {
                assert_eq!((kind, version), (ConnType::Service, OFP13_VERSION));
                (id, sink)
            }
            _ => panic!("expected Connected"),
        };
        send(&mut c, OFP13_VERSION, 7, Body::EchoRequest(b"tls".to_vec()));
        assert_eq!(read_msg(&mut c).body, Body::EchoReply(b"tls".to_vec()));
        send(&mut c, OFP13_VERSION, 8, Body::BarrierRequest);
        match rx.recv_timeout(timeout).unwrap() {
            AgentEvent::Message { id: got, msg } => assert_eq!((got, msg.body), (id, Body::BarrierRequest)),
            _ => panic!("expected the barrier"),
        }
        // The control thread's replies go through the TLS session too, large ones included.
        let big = Body::EchoRequest(vec![0x5a; 60_000]);
        sink.reply(vec![Message { version: OFP13_VERSION, xid: Xid(8), body: Body::BarrierReply }]);
        assert!(sink.send_async(Message { version: OFP13_VERSION, xid: Xid(9), body: big.clone() }));
        assert_eq!(read_msg(&mut c).body, Body::BarrierReply);
        let m = read_msg(&mut c);
        assert_eq!((m.xid, m.body), (Xid(9), big));
        drop(c);
        match rx.recv_timeout(timeout).unwrap() {
            AgentEvent::Disconnected { id: got } => assert_eq!(got, id),
            _ => panic!("expected Disconnected"),
        }
    }

    #[test]
    fn a_peer_that_never_finishes_the_handshake_is_dropped_after_the_probe_interval() {
        let ca = tls::test_pki::Ca::new("stall-unit");
        let (tx, rx) = crossbeam_channel::bounded(16);
        let cfg = AgentConfig {
            targets: vec!["pssl:0".parse().unwrap()],
            tls: Some(TlsConfig::load(&ca.party("switch")).unwrap()),
            probe_interval: Duration::from_millis(300),
            ..AgentConfig::default()
        };
        let agent = Agent::start(cfg, tx).unwrap();
        let mut c = TcpStream::connect(agent.listening[0]).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let t0 = Instant::now();
        let mut rest = Vec::new();
        // Nothing from us, so nothing from the switch either (it waits for a ClientHello)
        // but, at the end, a TLS alert record (close_notify); then it closes.
        c.read_to_end(&mut rest).expect("closed");
        assert!(rest.is_empty() || rest.starts_with(&[21, 3]), "only an alert: {rest:?}");
        assert!(t0.elapsed() < Duration::from_secs(5), "closed after {:?}", t0.elapsed());
        assert!(rx.try_recv().is_err(), "nothing reached the bridge");
    }

    /// Accepts one TLS connection as a controller with `files`; `None` when the handshake
    /// fails.
    fn tls_accept(
        l: &std::net::TcpListener,
        files: &TlsFiles,
    ) -> Option<rustls::StreamOwned<rustls::ServerConnection, TcpStream>> {
        let cfg = TlsConfig::load(files).unwrap();
        let (sock, _) = l.accept().unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut conn = rustls::ServerConnection::new(cfg.server_config()).unwrap();
        let mut sock = sock;
        while conn.is_handshaking() {
            if conn.complete_io(&mut sock).is_err() {
                return None;
            }
        }
        Some(rustls::StreamOwned::new(conn, sock))
    }

    #[test]
    fn an_ssl_controller_is_served_and_one_of_another_ca_is_retried() {
        let ca = tls::test_pki::Ca::new("ssl-unit");
        let controller = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = controller.local_addr().unwrap();
        let ctrl_files = ca.party("controller");

        // The switch trusts another CA: it refuses the controller, and tries again.
        let other_ca = tls::test_pki::Ca::new("ssl-other");
        let (tx, rx) = crossbeam_channel::bounded(16);
        let cfg = AgentConfig {
            targets: vec![Target::Ssl(addr)],
            tls: Some(
                TlsConfig::load(&TlsFiles { ca_cert: other_ca.party("x").ca_cert, ..ca.party("sw1") })
                    .unwrap(),
            ),
            max_backoff: Duration::from_secs(1),
            ..AgentConfig::default()
        };
        let agent = Agent::start(cfg, tx).unwrap();
        for attempt in 0..2 {
            if let Some(mut s) = tls_accept(&controller, &ctrl_files) {
                let mut b = [0u8; 1];
                assert!(!matches!(s.read(&mut b), Ok(n) if n > 0), "attempt {attempt}: the switch talked");
            }
        }
        assert!(rx.try_recv().is_err(), "no connection reached the bridge");
        drop(agent);

        let (tx, rx) = crossbeam_channel::bounded(16);
        let cfg = AgentConfig {
            targets: vec![format!("ssl:{addr}").parse().unwrap()],
            tls: Some(TlsConfig::load(&ca.party("switch")).unwrap()),
            ..AgentConfig::default()
        };
        let _agent = Agent::start(cfg, tx).unwrap();
        let mut s = tls_accept(&controller, &ctrl_files).expect("handshake");
        assert!(matches!(read_msg(&mut s).body, Body::Hello(_)));
        send(&mut s, OFP10_VERSION, 1, Body::Hello(Hello::default()));
        match rx.recv_timeout(Duration::from_secs(10)).unwrap() {
            AgentEvent::Connected { kind, version, .. } => {
                assert_eq!((kind, version), (ConnType::Primary, OFP10_VERSION))
            }
            _ => panic!("expected Connected"),
        }
        send(&mut s, OFP10_VERSION, 5, Body::EchoRequest(vec![1, 2, 3]));
        let m = read_msg(&mut s);
        assert_eq!((m.xid, m.body), (Xid(5), Body::EchoReply(vec![1, 2, 3])));
    }
}
