//! The database side's I/O: the connection to `ovsdb-server` (`unix:PATH` or `tcp:IP:PORT`),
//! reconnecting with backoff, and the daemon loop of `run --ovsdb`: on every change of the
//! replica, build the [`Config`](crate::config::Config) ([`model::build`]), hand it to
//! [`SwitchControl::apply`] when it differs from the one applied, and write back in one
//! transaction what `ovs-vswitchd` writes (`Interface.ofport`/`error`, `Bridge.datapath_id`,
//! `Open_vSwitch.cur_cfg` = `next_cfg`, `datapath_types`, `iface_types`, `ovs_version`,
//! `db_version`); every few seconds, the state from [`SwitchControl::status`]. Only columns
//! whose value differs are written, so our own writes coming back change nothing.
//!
//! The database going away changes nothing in the switch: the last configuration stays
//! applied until a new session's replica says otherwise. Manager connections
//! (`Manager`/`manager_options`) are served by `ovsdb-server` itself (`--remote=db:...`, as
//! Debian's `ovs-ctl` starts it), as with Open vSwitch.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::Value;

use super::model::{self, Model, OFPP_LOCAL};
use super::{ApplyReport, SwitchControl, SwitchStatus};
use crate::agent::Target;
use crate::config::Config;
use crate::ovsdb::{transact, Atom, Datum, Event, Replica, Row, Session, Uuid};

/// The database `ovs-vswitchd` uses.
pub const DB_NAME: &str = "Open_vSwitch";
/// The lock `ovs-vswitchd` takes, so that only one daemon configures a database; whoever
/// does not hold it applies and writes nothing until it does.
pub const LOCK_NAME: &str = "ovs_vswitchd";

/// The Open vSwitch release whose schema and behaviour this follows (`ovs_version`; tools
/// such as Neutron's agent read it to decide which features to use).
pub const OVS_VERSION: &str = "3.1.0";

/// Interface types written to `Open_vSwitch.iface_types`.
pub const IFACE_TYPES: &[&str] = &["afxdp", "gre", "internal", "patch", "system"];
/// Datapath types written to `Open_vSwitch.datapath_types`.
pub const DATAPATH_TYPES: &[&str] = &["netdev", "system"];

/// Where the database is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Remote {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

impl std::str::FromStr for Remote {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Remote> {
        if let Some(p) = s.strip_prefix("unix:") {
            if p.is_empty() {
                bail!("{s:?}: unix: needs a path");
            }
            return Ok(Remote::Unix(p.into()));
        }
        if let Some(a) = s.strip_prefix("tcp:") {
            let addr = match a.parse::<SocketAddr>() {
                Ok(addr) => addr,
                Err(_) => SocketAddr::new(a.parse().with_context(|| format!("{s:?}: bad address"))?, 6640),
            };
            return Ok(Remote::Tcp(addr));
        }
        bail!("{s:?}: expected unix:PATH or tcp:IP[:PORT]")
    }
}

impl std::fmt::Display for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Remote::Unix(p) => write!(f, "unix:{}", p.display()),
            Remote::Tcp(a) => write!(f, "tcp:{a}"),
        }
    }
}

enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Stream {
    fn connect(r: &Remote) -> std::io::Result<Stream> {
        let s = match r {
            Remote::Unix(p) => Stream::Unix(UnixStream::connect(p)?),
            Remote::Tcp(a) => Stream::Tcp(TcpStream::connect_timeout(a, Duration::from_secs(5))?),
        };
        let (rt, wt) = (Some(Duration::from_millis(50)), Some(Duration::from_secs(10)));
        match &s {
            Stream::Unix(u) => {
                u.set_read_timeout(rt)?;
                u.set_write_timeout(wt)?;
            }
            Stream::Tcp(t) => {
                t.set_read_timeout(rt)?;
                t.set_write_timeout(wt)?;
                t.set_nodelay(true)?;
            }
        }
        Ok(s)
    }

    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Stream::Unix(s) => s.write_all(buf),
            Stream::Tcp(s) => s.write_all(buf),
        }
    }
}

/// How [`serve`] runs.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// What the database does not hold (ctl socket, XDP mode, offload, default cores).
    pub base: Config,
    /// How long a burst of changes may go on before the configuration is applied.
    pub debounce: Duration,
    /// How often the state is written back.
    pub status_interval: Duration,
    /// The longest wait between connection attempts (from 1 s, doubling).
    pub max_backoff: Duration,
}

impl Default for ServeOptions {
    fn default() -> ServeOptions {
        ServeOptions {
            base: model::empty_config(),
            debounce: Duration::from_millis(50),
            status_interval: Duration::from_secs(5),
            max_backoff: Duration::from_secs(8),
        }
    }
}

/// What survives a lost connection.
struct Daemon<'a> {
    opts: &'a ServeOptions,
    control: &'a mut dyn SwitchControl,
    applied: Option<Config>,
    report: ApplyReport,
    warnings: Vec<String>,
}

/// Runs the database side until `stop` is set: connects to `db` (`unix:PATH` or
/// `tcp:IP[:PORT]`), keeps `control` at what the database says, writes back, reconnects
/// when the connection is lost. Fails only on a bad `db`.
pub fn serve(
    db: &str,
    opts: &ServeOptions,
    control: &mut dyn SwitchControl,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let remote: Remote = db.parse()?;
    let mut d = Daemon { opts, control, applied: None, report: ApplyReport::default(), warnings: Vec::new() };
    let mut backoff = Duration::from_secs(1);
    let mut failing = false;
    while !stop.load(Ordering::Relaxed) {
        match Stream::connect(&remote) {
            Ok(stream) => {
                tracing::info!(%remote, "connected to the database");
                failing = false;
                match d.session(stream, stop) {
                    Ok(true) => backoff = Duration::from_secs(1),
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(%remote, "database connection lost: {e:#}; the switch keeps its configuration")
                    }
                }
            }
            Err(e) if !failing => {
                tracing::warn!(%remote, "cannot connect to the database: {e}; retrying");
                failing = true;
            }
            Err(e) => tracing::debug!(%remote, "cannot connect to the database: {e}"),
        }
        let until = Instant::now() + backoff;
        while !stop.load(Ordering::Relaxed) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50));
        }
        backoff = (backoff * 2).min(opts.max_backoff);
    }
    Ok(())
}

impl Daemon<'_> {
    /// One connection, until it fails or `stop` is set; `Ok(true)` when the replica was
    /// complete at some point (the backoff then starts over).
    fn session(&mut self, mut stream: Stream, stop: &AtomicBool) -> anyhow::Result<bool> {
        let mut s = Session::new(DB_NAME, Some(LOCK_NAME), Instant::now());
        let mut out = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut dirty: Option<Instant> = None;
        let mut in_flight: Option<u64> = None;
        let mut model: Option<Model> = None;
        let mut next_status = Instant::now() + self.opts.status_interval;
        let mut was_ready = false;
        while !stop.load(Ordering::Relaxed) {
            if s.poll_transmit(&mut out) {
                stream.write_all(&out).context("writing to the database")?;
                out.clear();
            }
            match stream.read(&mut buf) {
                Ok(0) => bail!("the database closed the connection"),
                Ok(n) => s.handle_input(Instant::now(), &buf[..n])?,
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(e).context("reading from the database"),
            }
            let now = Instant::now();
            s.handle_timeout(now)?;
            while let Some(ev) = s.poll_event() {
                match ev {
                    Event::Ready | Event::Changed => {
                        was_ready = true;
                        dirty.get_or_insert(now);
                    }
                    Event::TransactDone { id, result } if Some(id) == in_flight => {
                        in_flight = None;
                        if let Err(e) = result {
                            tracing::warn!("writing back to the database: {e}; retrying");
                            dirty = Some(now + Duration::from_secs(1));
                        }
                    }
                    Event::TransactDone { result: Err(e), .. } => {
                        tracing::debug!("writing the state to the database: {e}")
                    }
                    Event::TransactDone { .. } => {}
                    Event::Lock(true) => {
                        tracing::info!("holding the database lock {LOCK_NAME}");
                        dirty.get_or_insert(now);
                    }
                    Event::Lock(false) => tracing::warn!(
                        "another ovs-vswitchd holds the database lock {LOCK_NAME}: configuring nothing until it goes away"
                    ),
                }
            }
            // Never from a replica still incomplete (the lock can come before the monitor's
            // initial contents): an empty replica would unconfigure the switch.
            let due = dirty.is_some_and(|t| now >= t + self.opts.debounce);
            if due && s.is_ready() && s.has_lock() && in_flight.is_none() {
                dirty = None;
                let m = model::build(s.replica(), &self.opts.base);
                self.log_warnings(&m);
                if self.applied.as_ref() != Some(&m.config) {
                    tracing::info!(
                        bridges = m.config.bridges.len(),
                        ports = m.config.bridges.iter().map(|b| b.ports.len()).sum::<usize>(),
                        "applying the database's configuration"
                    );
                    self.report = self.control.apply(&m.config);
                    self.applied = Some(m.config.clone());
                    // The state of new ports soon, not in a full interval.
                    next_status = next_status.min(now + Duration::from_secs(1));
                }
                let ops = writeback_ops(s.replica(), &m, &self.report, s.schema_version());
                if !ops.is_empty() {
                    in_flight = Some(s.transact(ops));
                }
                model = Some(m);
            }
            if now >= next_status && s.has_lock() {
                next_status = now + self.opts.status_interval;
                // As OVS retries on every reconfiguration: a port or bridge that could not be
                // opened (say, its interface does not exist yet) is tried again each interval.
                if self.report.ports.iter().any(|p| p.error.is_some())
                    || self.report.bridges.iter().any(|b| b.error.is_some())
                {
                    self.applied = None;
                    dirty.get_or_insert(now);
                }
                if let Some(m) = &model {
                    let st = self.control.status();
                    let ops = status_ops(s.replica(), m, &st);
                    if !ops.is_empty() {
                        s.transact(ops);
                    }
                }
            }
        }
        Ok(was_ready)
    }

    fn log_warnings(&mut self, m: &Model) {
        for w in m.warnings.iter().filter(|w| !self.warnings.contains(w)) {
            tracing::warn!("database: {w}");
        }
        for i in &m.interfaces {
            if let Some(e) = &i.error {
                let seen = self.warnings.iter().any(|w| w == e);
                if !seen {
                    tracing::warn!(bridge = %i.bridge, interface = %i.name, "{e}");
                }
            }
        }
        self.warnings = m.warnings.clone();
        self.warnings.extend(m.interfaces.iter().filter_map(|i| i.error.clone()));
    }
}

/// Adds `col = want` to `cols` when the row does not hold that value already.
fn set_if_differs<'a>(row: Option<&Row>, cols: &mut Vec<(&'a str, Datum)>, col: &'a str, want: Datum) {
    let same = row.and_then(|r| r.get(col)).map_or(want.same_as(&Datum::empty()), |have| have.same_as(&want));
    if !same {
        cols.push((col, want));
    }
}

fn opt_str(s: Option<&str>) -> Datum {
    s.map_or_else(Datum::empty, Datum::one)
}

/// The write-back after an apply: the operations that make the database say what the
/// switch did (empty when it says so already).
pub fn writeback_ops(
    replica: &Replica,
    m: &Model,
    report: &ApplyReport,
    schema_version: Option<&str>,
) -> Vec<Value> {
    let mut ops = Vec::new();
    for i in &m.interfaces {
        let (ofport, error) = if let Some(e) = &i.error {
            (-1, Some(e.clone()))
        } else if i.local {
            (i64::from(OFPP_LOCAL), None)
        } else {
            let configured = m
                .config
                .bridges
                .iter()
                .find(|b| b.name == i.bridge)
                .and_then(|b| b.ports.iter().find(|p| p.name == i.name))
                .map(|p| p.ofport);
            match report.ports.iter().find(|p| p.bridge == i.bridge && p.name == i.name) {
                Some(r) => match (r.ofport, &r.error) {
                    (Some(n), e) => (i64::from(n), e.clone()),
                    (None, e) => (-1, Some(e.clone().unwrap_or_else(|| "could not be added".into()))),
                },
                None => (configured.map_or(-1, i64::from), None),
            }
        };
        let row = replica.row("Interface", i.uuid);
        let mut cols = Vec::new();
        set_if_differs(row, &mut cols, "ofport", Datum::one(ofport));
        set_if_differs(row, &mut cols, "error", opt_str(error.as_deref()));
        if !cols.is_empty() {
            ops.push(transact::update("Interface", i.uuid, cols));
        }
    }
    for (uuid, name) in &m.bridges {
        let Some(r) = report.bridges.iter().find(|b| &b.name == name) else { continue };
        let row = replica.row("Bridge", *uuid);
        let mut cols = Vec::new();
        set_if_differs(row, &mut cols, "datapath_id", Datum::one(format!("{:016x}", r.datapath_id)));
        if !cols.is_empty() {
            ops.push(transact::update("Bridge", *uuid, cols));
        }
    }
    if let Some((uuid, row)) = replica.table("Open_vSwitch").next() {
        let mut cols = Vec::new();
        if let Some(next) = row.get("next_cfg").and_then(Datum::as_int) {
            set_if_differs(Some(row), &mut cols, "cur_cfg", Datum::one(next));
        }
        let set = |v: &[&str]| Datum::Set(v.iter().map(|&s| Atom::from(s)).collect());
        set_if_differs(Some(row), &mut cols, "datapath_types", set(DATAPATH_TYPES));
        set_if_differs(Some(row), &mut cols, "iface_types", set(IFACE_TYPES));
        set_if_differs(Some(row), &mut cols, "ovs_version", Datum::one(OVS_VERSION));
        if let Some(v) = schema_version {
            set_if_differs(Some(row), &mut cols, "db_version", Datum::one(v));
        }
        if !cols.is_empty() {
            ops.push(transact::update("Open_vSwitch", *uuid, cols));
        }
    }
    if !ops.is_empty() {
        ops.push(transact::comment("xdpswitch: configuration applied"));
    }
    ops
}

fn mac_text(m: &[u8; 6]) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// The same controller target, however it is spelled (`tcp:IP` and `tcp:IP:6653`).
fn same_target(a: &str, b: &str) -> bool {
    a == b
        || match (a.parse::<Target>(), b.parse::<Target>()) {
            (Ok(x), Ok(y)) => x == y,
            _ => false,
        }
}

/// The periodic write-back of the switch's state: interface state and counters,
/// controller connections (only what differs).
pub fn status_ops(replica: &Replica, m: &Model, st: &SwitchStatus) -> Vec<Value> {
    let mut ops = Vec::new();
    for i in m.interfaces.iter().filter(|i| i.error.is_none()) {
        let Some(p) = st.ports.iter().find(|p| p.bridge == i.bridge && p.name == i.name) else { continue };
        let row = replica.row("Interface", i.uuid);
        let updown = |b: bool| Datum::one(if b { "up" } else { "down" });
        let s = &p.stats;
        let stats = Datum::map([
            ("rx_packets", s.rx_packets as i64),
            ("rx_bytes", s.rx_bytes as i64),
            ("rx_dropped", s.rx_dropped as i64),
            ("rx_errors", s.rx_errors as i64),
            ("tx_packets", s.tx_packets as i64),
            ("tx_bytes", s.tx_bytes as i64),
            ("tx_dropped", s.tx_dropped as i64),
            ("tx_errors", s.tx_errors as i64),
        ]);
        let mut cols = Vec::new();
        set_if_differs(row, &mut cols, "admin_state", updown(p.admin_up));
        set_if_differs(row, &mut cols, "link_state", updown(p.link_up));
        set_if_differs(row, &mut cols, "mtu", Datum::one(i64::from(p.mtu)));
        set_if_differs(row, &mut cols, "mac_in_use", Datum::one(mac_text(&p.mac)));
        set_if_differs(row, &mut cols, "statistics", stats);
        if !cols.is_empty() {
            ops.push(transact::update("Interface", i.uuid, cols));
        }
    }
    for c in &m.controllers {
        let found = st.controllers.iter().find(|s| s.bridge == c.bridge && same_target(&s.target, &c.target));
        let (connected, role) = match found {
            Some(s) => (s.connected, Some(s.role.as_str()).filter(|r| !r.is_empty())),
            None => (false, None),
        };
        let row = replica.row("Controller", c.uuid);
        let mut cols = Vec::new();
        set_if_differs(row, &mut cols, "is_connected", Datum::one(connected));
        set_if_differs(row, &mut cols, "role", opt_str(if connected { role } else { None }));
        if !cols.is_empty() {
            ops.push(transact::update("Controller", c.uuid, cols));
        }
    }
    ops
}

/// The UUIDs a transaction's operations touch (for tests and logs).
pub fn touched_rows(ops: &[Value]) -> Vec<(String, Uuid)> {
    ops.iter()
        .filter_map(|op| {
            let table = op.get("table")?.as_str()?.to_string();
            let u = op.get("where")?.get(0)?.get(2)?.get(1)?.as_str()?;
            Some((table, Uuid::parse(u)?))
        })
        .collect()
}

#[cfg(test)]
#[path = "db_tests.rs"]
mod tests;
