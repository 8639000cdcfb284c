//! The connection manager: which controllers are connected, in which role, and who receives
//! which asynchronous message (OpenFlow 1.3.5 §6.3.7 roles, §7.3.10 async configuration, and
//! Open vSwitch's `connmgr`/`fail-open` for the fail modes).
//!
//! Sans-IO: the agent reports connections coming and going ([`AgentEvent`]) and hands over a
//! [`ConnSink`] per connection; everything here runs on the bridge's control thread and
//! decides, never sends by itself except through the sinks.
//!
//! Two kinds of connection, as in OVS: **primary** (the switch connected out to a
//! `--controller tcp:...`) and **service** (someone connected in to `--listen ptcp:...`, e.g.
//! `ovs-ofctl`). Only primary connections count for the fail mode, and a service connection
//! receives asynchronous messages only after it asked for them with a non-zero
//! `miss_send_len` in `OFPT_SET_CONFIG` (what `ovs-ofctl monitor` does).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::ofp::msg::{OFPCR_ROLE_EQUAL, OFPCR_ROLE_MASTER, OFPCR_ROLE_NOCHANGE, OFPCR_ROLE_SLAVE};
use crate::ofp::{ErrorCode, Message, OFP10_VERSION};

/// One controller connection's identity for its lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// How a connection came to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnType {
    /// The switch connected to a configured controller.
    Primary,
    /// A client connected to the passive port.
    Service,
}

/// Where the bridge's messages to one connection go (implemented by the agent).
pub trait ConnSink: Send {
    /// Replies to requests, in order; never dropped.
    fn reply(&self, msgs: Vec<Message>);
    /// An asynchronous message (packet-in, flow-removed, port-status); `false` when the
    /// connection's queue is full and the message was dropped.
    fn send_async(&self, msg: Message) -> bool;
}

/// What the agent tells the bridge.
pub enum AgentEvent {
    /// A connection finished version negotiation.
    Connected {
        id: ConnId,
        kind: ConnType,
        version: u8,
        /// `IP:PORT` of the peer, for logs.
        peer: String,
        sink: Box<dyn ConnSink>,
    },
    /// A request from a connection, in arrival order.
    Message { id: ConnId, msg: Message },
    /// The connection is gone.
    Disconnected { id: ConnId },
}

/// `ofp_controller_role`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Equal,
    Master,
    Slave,
}

impl Role {
    /// The wire value (`OFPCR_ROLE_*`).
    pub fn wire(self) -> u32 {
        match self {
            Role::Equal => OFPCR_ROLE_EQUAL,
            Role::Master => OFPCR_ROLE_MASTER,
            Role::Slave => OFPCR_ROLE_SLAVE,
        }
    }
}

/// Asynchronous message kinds, for [`AsyncConfig`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AsyncKind {
    /// `OFPT_PACKET_IN`, by `OFPR_*` reason.
    PacketIn,
    /// `OFPT_PORT_STATUS`, by `OFPPR_*` reason.
    PortStatus,
    /// `OFPT_FLOW_REMOVED`, by `OFPRR_*` reason.
    FlowRemoved,
}

/// `OFPT_SET_ASYNC`: per kind, a reason bitmap for master/equal (`[0]`) and slave (`[1]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AsyncConfig {
    pub packet_in: [u32; 2],
    pub port_status: [u32; 2],
    pub flow_removed: [u32; 2],
}

impl Default for AsyncConfig {
    /// The spec's defaults (§6.1.1): masters and equals get packet-ins for table-miss and
    /// action, every port-status and flow-removed; slaves get port-status only.
    fn default() -> Self {
        AsyncConfig { packet_in: [0b11, 0], port_status: [0b111, 0b111], flow_removed: [0b1111, 0] }
    }
}

impl AsyncConfig {
    fn mask(&self, kind: AsyncKind, role: Role) -> u32 {
        let i = usize::from(role == Role::Slave);
        match kind {
            AsyncKind::PacketIn => self.packet_in[i],
            AsyncKind::PortStatus => self.port_status[i],
            AsyncKind::FlowRemoved => self.flow_removed[i],
        }
    }
}

/// `OFP_DEFAULT_MISS_SEND_LEN` (1.3); 1.0's is 128 too.
pub const DEFAULT_MISS_SEND_LEN: u16 = 128;

/// One connection's OpenFlow state.
pub struct OfConn {
    pub id: ConnId,
    pub kind: ConnType,
    pub version: u8,
    pub peer: String,
    pub role: Role,
    pub async_cfg: AsyncConfig,
    /// `OFPT_SET_CONFIG` flags (fragment handling; kept and echoed).
    pub config_flags: u16,
    /// Bytes of a table-miss packet to send in a packet-in.
    pub miss_send_len: u16,
    /// Async messages dropped because the connection's queue was full.
    pub async_dropped: u64,
    sink: Box<dyn ConnSink>,
}

impl OfConn {
    /// Queues replies to this connection.
    pub fn reply(&self, msgs: Vec<Message>) {
        self.sink.reply(msgs);
    }

    /// Whether this connection wants `kind` with `reason` now.
    pub fn wants(&self, kind: AsyncKind, reason: u8) -> bool {
        if self.kind == ConnType::Service && self.miss_send_len == 0 {
            return false;
        }
        if self.version == OFP10_VERSION {
            // No roles or async config in 1.0: everything goes to everyone.
            return true;
        }
        reason < 32 && self.async_cfg.mask(kind, self.role) & (1 << reason) != 0
    }

    /// May this connection change the switch's state (flow/group/meter/port/table mods,
    /// packet-out)? A slave may not (`OFPBRC_IS_SLAVE`).
    pub fn check_writable(&self) -> Result<(), ErrorCode> {
        if self.role == Role::Slave {
            Err(ErrorCode::OFPBRC_IS_SLAVE)
        } else {
            Ok(())
        }
    }
}

/// The fail modes of Open vSwitch (`ovs-vsctl set-fail-mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FailMode {
    /// Without a controller, keep the flows and forward only by them.
    #[default]
    Secure,
    /// Once the controllers have been unreachable for a while, act as a learning switch
    /// (a hidden `NORMAL` flow above every other), until one comes back.
    Standalone,
}

/// The connections of one bridge.
pub struct ConnMgr {
    conns: HashMap<ConnId, OfConn>,
    /// Highest generation id seen in a master/slave role request (§6.3.7), if any.
    generation_id: Option<u64>,
    fail_mode: FailMode,
    /// Whether any primary controller is configured.
    has_controllers: bool,
    /// Since when no primary connection has been up (`None` while one is).
    disconnected_since: Option<Instant>,
    /// How long the controllers must be gone before standalone fails open.
    fail_open_after: Duration,
    /// Whether the fail-open flow is in effect.
    fail_open: bool,
}

impl ConnMgr {
    /// A manager with no connections yet, starting its fail-mode clock at `now`.
    pub fn new(
        fail_mode: FailMode,
        has_controllers: bool,
        fail_open_after: Duration,
        now: Instant,
    ) -> ConnMgr {
        ConnMgr {
            conns: HashMap::new(),
            generation_id: None,
            fail_mode,
            has_controllers,
            disconnected_since: Some(now),
            fail_open_after,
            fail_open: false,
        }
    }

    /// Registers a connection that finished negotiation.
    pub fn connect(
        &mut self,
        id: ConnId,
        kind: ConnType,
        version: u8,
        peer: String,
        sink: Box<dyn ConnSink>,
    ) {
        if kind == ConnType::Primary {
            self.disconnected_since = None;
        }
        let miss_send_len = if kind == ConnType::Primary { DEFAULT_MISS_SEND_LEN } else { 0 };
        self.conns.insert(
            id,
            OfConn {
                id,
                kind,
                version,
                peer,
                role: Role::Equal,
                async_cfg: AsyncConfig::default(),
                config_flags: 0,
                miss_send_len,
                async_dropped: 0,
                sink,
            },
        );
    }

    /// Forgets a connection.
    pub fn disconnect(&mut self, id: ConnId, now: Instant) -> Option<OfConn> {
        let c = self.conns.remove(&id);
        if !self.conns.values().any(|c| c.kind == ConnType::Primary) && self.disconnected_since.is_none() {
            self.disconnected_since = Some(now);
        }
        c
    }

    /// A connection by id.
    pub fn get(&self, id: ConnId) -> Option<&OfConn> {
        self.conns.get(&id)
    }

    /// A connection by id, to change its settings.
    pub fn get_mut(&mut self, id: ConnId) -> Option<&mut OfConn> {
        self.conns.get_mut(&id)
    }

    /// Every connection.
    pub fn iter(&self) -> impl Iterator<Item = &OfConn> {
        self.conns.values()
    }

    /// Handles `OFPT_ROLE_REQUEST` from `id`: returns the role to report, or the error.
    pub fn role_request(
        &mut self,
        id: ConnId,
        role: u32,
        generation_id: u64,
    ) -> Result<(Role, u64), ErrorCode> {
        let new = match role {
            OFPCR_ROLE_NOCHANGE => None,
            OFPCR_ROLE_EQUAL => Some(Role::Equal),
            OFPCR_ROLE_MASTER => Some(Role::Master),
            OFPCR_ROLE_SLAVE => Some(Role::Slave),
            _ => return Err(ErrorCode::OFPRRFC_BAD_ROLE),
        };
        if matches!(new, Some(Role::Master | Role::Slave)) {
            // Stale if older than the newest seen, by wrap-around distance (§6.3.7).
            if let Some(cur) = self.generation_id {
                if (generation_id.wrapping_sub(cur) as i64) < 0 {
                    return Err(ErrorCode::OFPRRFC_STALE);
                }
            }
            self.generation_id = Some(generation_id);
        }
        if let Some(new) = new {
            if new == Role::Master {
                for c in self.conns.values_mut() {
                    if c.id != id && c.role == Role::Master {
                        c.role = Role::Slave;
                    }
                }
            }
            if let Some(c) = self.conns.get_mut(&id) {
                c.role = new;
            }
        }
        let role = self.conns.get(&id).map_or(Role::Equal, |c| c.role);
        Ok((role, self.generation_id.unwrap_or(0)))
    }

    /// Sends `build(conn)` to every connection that wants `kind`/`reason` (the builder
    /// encodes for the connection's version; `None` skips it). Returns how many got it.
    pub fn broadcast(
        &mut self,
        kind: AsyncKind,
        reason: u8,
        mut build: impl FnMut(&OfConn) -> Option<Message>,
    ) -> usize {
        let mut n = 0;
        for c in self.conns.values_mut() {
            if !c.wants(kind, reason) {
                continue;
            }
            if let Some(msg) = build(c) {
                if c.sink.send_async(msg) {
                    n += 1;
                } else {
                    c.async_dropped += 1;
                }
            }
        }
        n
    }

    /// Runs the fail-mode clock: returns `Some(true)` when standalone should start acting as
    /// a learning switch now, `Some(false)` when it should stop, `None` for no change.
    pub fn run_fail_mode(&mut self, now: Instant) -> Option<bool> {
        // Without any controller configured there is nothing to fail: the bridge forwards by
        // its flows (OVS gives a standalone bridge a visible `priority=0,actions=NORMAL` rule).
        let want = self.fail_mode == FailMode::Standalone
            && self.has_controllers
            && self
                .disconnected_since
                .is_some_and(|t| now.saturating_duration_since(t) >= self.fail_open_after);
        if want != self.fail_open {
            self.fail_open = want;
            Some(want)
        } else {
            None
        }
    }

    /// Whether the fail-open flow is in effect.
    pub fn is_fail_open(&self) -> bool {
        self.fail_open
    }

    /// A new fail mode or set of controllers, keeping the connections (a reconfiguration of
    /// a running bridge). The fail-mode clock runs on from where it was, but controllers
    /// configured where there were none get their full time to connect from `now`.
    pub fn reconfigure(&mut self, fail_mode: FailMode, has_controllers: bool, now: Instant) {
        if has_controllers && !self.has_controllers && self.disconnected_since.is_some() {
            self.disconnected_since = Some(now);
        }
        self.fail_mode = fail_mode;
        self.has_controllers = has_controllers;
    }

    /// Forgets every connection (their agent is gone and takes no more events for them):
    /// dropping them closes their sockets. Returns how many there were.
    pub fn clear(&mut self, now: Instant) -> usize {
        let n = self.conns.len();
        self.conns.clear();
        if self.disconnected_since.is_none() {
            self.disconnected_since = Some(now);
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ofp::{Body, Xid, OFP13_VERSION};
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Log(Arc<Mutex<Vec<Message>>>, usize);

    impl ConnSink for Log {
        fn reply(&self, msgs: Vec<Message>) {
            self.0.lock().unwrap().extend(msgs);
        }
        fn send_async(&self, msg: Message) -> bool {
            let mut v = self.0.lock().unwrap();
            if self.1 != 0 && v.len() >= self.1 {
                return false;
            }
            v.push(msg);
            true
        }
    }

    fn msg() -> Message {
        Message { version: OFP13_VERSION, xid: Xid(0), body: Body::BarrierReply }
    }

    fn mgr(now: Instant) -> (ConnMgr, Log, Log, Log) {
        let mut m = ConnMgr::new(FailMode::Secure, true, Duration::from_secs(15), now);
        let (a, b, s) = (Log::default(), Log::default(), Log::default());
        m.connect(ConnId(1), ConnType::Primary, OFP13_VERSION, "a".into(), Box::new(a.clone()));
        m.connect(ConnId(2), ConnType::Primary, OFP13_VERSION, "b".into(), Box::new(b.clone()));
        m.connect(ConnId(3), ConnType::Service, OFP13_VERSION, "s".into(), Box::new(s.clone()));
        (m, a, b, s)
    }

    #[test]
    fn reconfigured_modes_apply_to_the_running_clock_and_clear_forgets_everyone() {
        let t0 = Instant::now();
        let (mut m, ..) = mgr(t0);
        // Secure never fails open; made standalone, it does once the controllers are gone
        // for long enough, counting from when they went.
        assert_eq!(m.clear(t0), 3);
        assert_eq!(m.iter().count(), 0);
        assert_eq!(m.run_fail_mode(t0 + Duration::from_secs(20)), None);
        m.reconfigure(FailMode::Standalone, true, t0 + Duration::from_secs(1));
        assert_eq!(m.run_fail_mode(t0 + Duration::from_secs(20)), Some(true));
        // No controllers configured any more: nothing to fail.
        m.reconfigure(FailMode::Standalone, false, t0 + Duration::from_secs(21));
        assert_eq!(m.run_fail_mode(t0 + Duration::from_secs(21)), Some(false));
        // Controllers configured again: they get their full time from then.
        m.reconfigure(FailMode::Standalone, true, t0 + Duration::from_secs(30));
        assert_eq!(m.run_fail_mode(t0 + Duration::from_secs(40)), None);
        assert_eq!(m.run_fail_mode(t0 + Duration::from_secs(45)), Some(true));
    }

    #[test]
    fn one_master_at_a_time_and_stale_generations_refused() {
        let now = Instant::now();
        let (mut m, ..) = mgr(now);
        assert_eq!(m.role_request(ConnId(1), OFPCR_ROLE_MASTER, 5), Ok((Role::Master, 5)));
        assert_eq!(m.role_request(ConnId(2), OFPCR_ROLE_MASTER, 6), Ok((Role::Master, 6)));
        assert_eq!(m.get(ConnId(1)).unwrap().role, Role::Slave);
        assert_eq!(m.role_request(ConnId(1), OFPCR_ROLE_MASTER, 4), Err(ErrorCode::OFPRRFC_STALE));
        assert_eq!(m.get(ConnId(2)).unwrap().role, Role::Master, "a refused request changes nothing");
        // Wrap-around: 2^64-1 → 0 is newer.
        let (mut m, ..) = mgr(now);
        m.role_request(ConnId(1), OFPCR_ROLE_SLAVE, u64::MAX).unwrap();
        assert!(m.role_request(ConnId(1), OFPCR_ROLE_MASTER, 0).is_ok());
        assert_eq!(m.role_request(ConnId(1), OFPCR_ROLE_NOCHANGE, 0), Ok((Role::Master, 0)));
        assert_eq!(m.role_request(ConnId(1), 9, 0), Err(ErrorCode::OFPRRFC_BAD_ROLE));
        // Equal does not touch the generation id.
        assert_eq!(m.role_request(ConnId(2), OFPCR_ROLE_EQUAL, 77), Ok((Role::Equal, 0)));
    }

    #[test]
    fn slaves_and_quiet_service_connections_get_no_packet_ins() {
        let now = Instant::now();
        let (mut m, a, b, s) = mgr(now);
        m.role_request(ConnId(1), OFPCR_ROLE_SLAVE, 1).unwrap();
        assert!(m.get(ConnId(1)).unwrap().check_writable().is_err());
        assert_eq!(m.broadcast(AsyncKind::PacketIn, 0, |_| Some(msg())), 1);
        assert_eq!(
            (a.0.lock().unwrap().len(), b.0.lock().unwrap().len(), s.0.lock().unwrap().len()),
            (0, 1, 0)
        );
        // Port status goes to slaves too.
        assert_eq!(m.broadcast(AsyncKind::PortStatus, 2, |_| Some(msg())), 2);
        // A service connection that set a miss_send_len gets them.
        m.get_mut(ConnId(3)).unwrap().miss_send_len = 128;
        assert_eq!(m.broadcast(AsyncKind::FlowRemoved, 0, |_| Some(msg())), 2);
        assert_eq!(s.0.lock().unwrap().len(), 1);
        // Async config can turn a kind off.
        m.get_mut(ConnId(2)).unwrap().async_cfg.packet_in = [0, 0];
        assert_eq!(m.broadcast(AsyncKind::PacketIn, 1, |_| Some(msg())), 1, "only the service connection");
    }

    #[test]
    fn full_queues_drop_and_count() {
        let now = Instant::now();
        let mut m = ConnMgr::new(FailMode::Secure, true, Duration::from_secs(1), now);
        m.connect(
            ConnId(1),
            ConnType::Primary,
            OFP13_VERSION,
            "a".into(),
            Box::new(Log(Default::default(), 2)),
        );
        for _ in 0..5 {
            m.broadcast(AsyncKind::PacketIn, 0, |_| Some(msg()));
        }
        assert_eq!(m.get(ConnId(1)).unwrap().async_dropped, 3);
    }

    #[test]
    fn standalone_fails_open_after_the_controllers_are_gone_and_recovers() {
        let t0 = Instant::now();
        let mut m = ConnMgr::new(FailMode::Standalone, true, Duration::from_secs(10), t0);
        assert_eq!(m.run_fail_mode(t0 + Duration::from_secs(5)), None);
        assert_eq!(m.run_fail_mode(t0 + Duration::from_secs(10)), Some(true));
        m.connect(ConnId(1), ConnType::Primary, OFP13_VERSION, "a".into(), Box::new(Log::default()));
        assert_eq!(m.run_fail_mode(t0 + Duration::from_secs(11)), Some(false));
        m.disconnect(ConnId(1), t0 + Duration::from_secs(20));
        assert_eq!(m.run_fail_mode(t0 + Duration::from_secs(25)), None);
        assert_eq!(m.run_fail_mode(t0 + Duration::from_secs(30)), Some(true));
        // A service connection does not count.
        m.connect(ConnId(2), ConnType::Service, OFP13_VERSION, "s".into(), Box::new(Log::default()));
        assert_eq!(m.run_fail_mode(t0 + Duration::from_secs(31)), None);
        assert!(m.is_fail_open());
        // Secure never fails open, nor does a bridge without controllers to lose.
        let mut s = ConnMgr::new(FailMode::Secure, true, Duration::ZERO, t0);
        assert_eq!(s.run_fail_mode(t0 + Duration::from_secs(100)), None);
        let mut n = ConnMgr::new(FailMode::Standalone, false, Duration::ZERO, t0);
        assert_eq!(n.run_fail_mode(t0 + Duration::from_secs(100)), None);
    }
}
