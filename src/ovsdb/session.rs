//! One connection's protocol state, sans-IO: bytes in ([`Session::handle_input`]), time in
//! ([`Session::handle_timeout`]); bytes out ([`Session::poll_transmit`]) and events out
//! ([`Session::poll_event`]). On a new connection it asks for the schema (for its version)
//! and monitors [`MONITORED`](super::replica::MONITORED); it answers the server's echoes and
//! probes an idle server with its own.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::jsonrpc::{Decoder, Message};
use super::replica::{monitor_requests, Replica};
use super::transact;
use super::Error;

/// What the session reports.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// The replica holds the monitor's initial contents (once per session).
    Ready,
    /// The replica changed (after [`Event::Ready`]).
    Changed,
    /// The answer to [`Session::transact`] `id`: the operations' results or why it failed.
    TransactDone { id: u64, result: Result<Vec<Value>, String> },
    /// The lock of [`Session::new`] was granted (true) or taken by another client (false).
    Lock(bool),
}

enum Pending {
    Lock,
    Schema,
    Monitor,
    Transact,
    Echo,
}

/// The idle time after which the server is probed, and how long it has to answer.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(5);

const MONITOR_ID: &str = "xdpswitch";

/// One OVSDB client session.
pub struct Session {
    db: String,
    decoder: Decoder,
    out: Vec<u8>,
    next_id: u64,
    pending: HashMap<u64, Pending>,
    events: VecDeque<Event>,
    replica: Replica,
    ready: bool,
    schema_version: Option<String>,
    last_rx: Instant,
    echo_sent: Option<Instant>,
    lock: Option<String>,
    locked: bool,
}

impl Session {
    /// A session with database `db` on a fresh connection, opened at `now`: the lock
    /// request (when `lock` names one: `ovs-vswitchd` takes `ovs_vswitchd`, so two daemons
    /// never configure one database), the schema and monitor requests are queued already.
    pub fn new(db: &str, lock: Option<&str>, now: Instant) -> Session {
        let mut s = Session {
            db: db.to_string(),
            decoder: Decoder::new(),
            out: Vec::new(),
            next_id: 1,
            pending: HashMap::new(),
            events: VecDeque::new(),
            replica: Replica::new(),
            ready: false,
            schema_version: None,
            last_rx: now,
            echo_sent: None,
            lock: lock.map(String::from),
            locked: false,
        };
        if let Some(l) = lock {
            s.request("lock", vec![json!(l)], Pending::Lock);
        }
        s.request("get_schema", vec![json!(db)], Pending::Schema);
        s.request("monitor", vec![json!(db), json!(MONITOR_ID), monitor_requests()], Pending::Monitor);
        s
    }

    fn request(&mut self, method: &str, params: Vec<Value>, kind: Pending) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        Message::Request { id: json!(id), method: method.into(), params }.encode(&mut self.out);
        self.pending.insert(id, kind);
        id
    }

    /// The tables as the server last described them.
    pub fn replica(&self) -> &Replica {
        &self.replica
    }

    /// Whether this session holds its lock (false when it asked for none).
    pub fn has_lock(&self) -> bool {
        self.locked
    }

    /// Whether the monitor's initial contents have arrived.
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// The schema's version (`Open_vSwitch.db_version` as OVS writes it), once known.
    pub fn schema_version(&self) -> Option<&str> {
        self.schema_version.as_deref()
    }

    /// Sends a transaction of `ops`; its answer comes as [`Event::TransactDone`] with the
    /// returned id.
    pub fn transact(&mut self, ops: Vec<Value>) -> u64 {
        let params = transact::params(&self.db, ops);
        self.request("transact", params, Pending::Transact)
    }

    /// Bytes received at `now`. An error means the connection is unusable (bad JSON, a
    /// message we cannot make sense of, a failed monitor): drop it and start a new session.
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) -> Result<(), Error> {
        self.last_rx = now;
        self.echo_sent = None;
        self.decoder.push(bytes);
        while let Some(msg) = self.decoder.next_message()? {
            self.handle_message(msg)?;
        }
        Ok(())
    }

    fn handle_message(&mut self, msg: Message) -> Result<(), Error> {
        match msg {
            Message::Request { id, method, params } if method == "echo" => {
                Message::Response { id, result: Value::Array(params), error: Value::Null }
                    .encode(&mut self.out);
            }
            Message::Request { id, method, .. } => {
                Message::Response {
                    id,
                    result: Value::Null,
                    error: json!(format!("unknown method {method}")),
                }
                .encode(&mut self.out);
            }
            Message::Notification { method, params } if method == "update" => {
                let Some(updates) = params.get(1) else {
                    return Err(Error::Protocol("update without table-updates".into()));
                };
                if self.replica.apply(updates)? && self.ready {
                    self.events.push_back(Event::Changed);
                }
            }
            Message::Notification { method, params } if method == "locked" || method == "stolen" => {
                let ours =
                    self.lock.as_deref().is_some_and(|l| params.first().and_then(Value::as_str) == Some(l));
                let now_locked = method == "locked";
                if ours && self.locked != now_locked {
                    self.locked = now_locked;
                    self.events.push_back(Event::Lock(now_locked));
                }
            }
            Message::Notification { .. } => {}
            Message::Response { id, result, error } => {
                let Some(kind) = id.as_u64().and_then(|n| self.pending.remove(&n).map(|k| (n, k))) else {
                    // Not ours (the server's answer to a stale echo id, say): ignore.
                    return Ok(());
                };
                let (n, kind) = kind;
                let failed = (!error.is_null()).then(|| error_text(&error));
                match kind {
                    Pending::Lock => {
                        if let Some(e) = failed {
                            return Err(Error::Server(format!("lock: {e}")));
                        }
                        self.locked = result.get("locked").and_then(Value::as_bool) == Some(true);
                        self.events.push_back(Event::Lock(self.locked));
                    }
                    Pending::Schema => {
                        if let Some(e) = failed {
                            return Err(Error::Server(format!("get_schema {}: {e}", self.db)));
                        }
                        self.schema_version = result.get("version").and_then(Value::as_str).map(String::from);
                    }
                    Pending::Monitor => {
                        if let Some(e) = failed {
                            return Err(Error::Server(format!("monitor {}: {e}", self.db)));
                        }
                        self.replica.apply(&result)?;
                        self.ready = true;
                        self.events.push_back(Event::Ready);
                    }
                    Pending::Transact => {
                        let result = match failed {
                            Some(e) => Err(e),
                            None => match transact::result_error(&result) {
                                Some(e) => Err(e),
                                None => Ok(result.as_array().cloned().unwrap_or_default()),
                            },
                        };
                        self.events.push_back(Event::TransactDone { id: n, result });
                    }
                    Pending::Echo => {}
                }
            }
        }
        Ok(())
    }

    /// Time passed: probes a server silent for [`PROBE_INTERVAL`], and fails the session
    /// when it stays silent as long again.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), Error> {
        match self.echo_sent {
            Some(at) if now.duration_since(at) >= PROBE_INTERVAL => {
                Err(Error::Timeout(now.duration_since(self.last_rx)))
            }
            Some(_) => Ok(()),
            None if now.duration_since(self.last_rx) >= PROBE_INTERVAL => {
                self.request("echo", vec![], Pending::Echo);
                self.echo_sent = Some(now);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// When [`Session::handle_timeout`] next has something to do.
    pub fn poll_timeout(&self) -> Instant {
        match self.echo_sent {
            Some(at) => at + PROBE_INTERVAL,
            None => self.last_rx + PROBE_INTERVAL,
        }
    }

    /// Moves the bytes to send into `out`; false when there are none.
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) -> bool {
        if self.out.is_empty() {
            return false;
        }
        out.append(&mut self.out);
        true
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
}

/// An RFC 7047 error value (`{"error": "...", "details": "..."}` or a string) as text.
fn error_text(e: &Value) -> String {
    match e {
        Value::String(s) => s.clone(),
        _ => match (e.get("error").and_then(Value::as_str), e.get("details").and_then(Value::as_str)) {
            (Some(a), Some(b)) => format!("{a}: {b}"),
            (Some(a), None) => a.to_string(),
            _ => e.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ovsdb::datum::Uuid;

    fn sent(s: &mut Session) -> Vec<Message> {
        let mut out = Vec::new();
        s.poll_transmit(&mut out);
        let mut d = Decoder::new();
        d.push(&out);
        std::iter::from_fn(|| d.next_message().unwrap()).collect()
    }

    fn feed(s: &mut Session, now: Instant, text: &str) {
        s.handle_input(now, text.as_bytes()).unwrap();
    }

    #[test]
    fn monitors_then_follows_updates() {
        let t0 = Instant::now();
        let mut s = Session::new("Open_vSwitch", None, t0);
        let reqs = sent(&mut s);
        assert_eq!(reqs.len(), 2);
        let Message::Request { method, params, .. } = &reqs[1] else { panic!("{reqs:?}") };
        assert_eq!(
            (method.as_str(), &params[0], &params[1]),
            ("monitor", &json!("Open_vSwitch"), &json!("xdpswitch"))
        );
        assert!(params[2]["Interface"]["columns"].as_array().unwrap().contains(&json!("ofport_request")));
        // Answers in ovsdb-server's shapes (3.1), split at an odd place.
        let schema =
            r#"{"id":1,"result":{"name":"Open_vSwitch","version":"8.3.1","tables":{}},"error":null}"#;
        let initial = r#"{"id":2,"result":{"Open_vSwitch":{"7a3c3f8e-57f3-4b4e-9d5d-3e2f3c1d0a11":{"new":{"bridges":["set",[]],"next_cfg":0,"cur_cfg":0,"other_config":["map",[]]}}}},"error":null}"#;
        let both = format!("{schema}{initial}");
        feed(&mut s, t0, &both[..37]);
        assert_eq!(s.poll_event(), None);
        feed(&mut s, t0, &both[37..]);
        assert_eq!(s.schema_version(), Some("8.3.1"));
        assert_eq!(s.poll_event(), Some(Event::Ready));
        assert!(s.is_ready());
        feed(
            &mut s,
            t0,
            r#"{"id":null,"method":"update","params":["xdpswitch",{"Open_vSwitch":{"7a3c3f8e-57f3-4b4e-9d5d-3e2f3c1d0a11":{"old":{"next_cfg":0},"new":{"bridges":["set",[]],"next_cfg":1,"cur_cfg":0,"other_config":["map",[]]}}}}]}"#,
        );
        assert_eq!(s.poll_event(), Some(Event::Changed));
        let ovs = Uuid::parse("7a3c3f8e-57f3-4b4e-9d5d-3e2f3c1d0a11").unwrap();
        assert_eq!(s.replica().row("Open_vSwitch", ovs).unwrap()["next_cfg"].as_int(), Some(1));
    }

    /// Bytes `ovsdb-server` 3.1 sent (captured; also the fuzz seeds): the monitor reply after
    /// `add-br br0 -- add-port br0 eth1 -- set port eth1 tag=5 -- set-controller ...`, then
    /// the update for `add-port br0 g1 (gre) -- set port eth1 trunks=1,2 -- del-controller`.
    #[test]
    fn follows_captured_ovsdb_server_messages() {
        let t0 = Instant::now();
        let mut s = Session::new("Open_vSwitch", None, t0);
        sent(&mut s);
        feed(&mut s, t0, r#"{"id":1,"result":{"name":"Open_vSwitch","version":"8.3.1"},"error":null}"#);
        s.handle_input(t0, include_bytes!("../../fuzz/seeds/ovsdb/monitor-reply.json")).unwrap();
        assert_eq!(s.poll_event(), Some(Event::Ready));
        let r = s.replica();
        fn name(r: &Replica, t: &str) -> Vec<String> {
            let mut v: Vec<String> =
                r.table(t).filter_map(|(_, row)| row.get("name")?.as_str().map(String::from)).collect();
            v.sort();
            v
        }
        assert_eq!(name(r, "Interface"), ["br0", "eth1"]);
        assert_eq!(r.table("Controller").count(), 1);
        let eth1 = r.table("Port").find(|(_, p)| p["name"].as_str() == Some("eth1")).unwrap().1;
        assert_eq!(eth1["tag"].as_int(), Some(5));
        s.handle_input(t0, include_bytes!("../../fuzz/seeds/ovsdb/update.json")).unwrap();
        assert_eq!(s.poll_event(), Some(Event::Changed));
        let r = s.replica();
        assert_eq!(name(r, "Interface"), ["br0", "eth1", "g1"]);
        assert_eq!(r.table("Controller").count(), 0);
        let g1 = r.table("Interface").find(|(_, i)| i["name"].as_str() == Some("g1")).unwrap().1;
        assert_eq!(
            (g1["type"].as_str(), g1["options"].get_str("remote_ip")),
            (Some("gre"), Some("192.0.2.2"))
        );
        let eth1 = r.table("Port").find(|(_, p)| p["name"].as_str() == Some("eth1")).unwrap().1;
        assert_eq!(eth1["trunks"].atoms().len(), 2);
    }

    #[test]
    fn answers_echo_and_reports_transactions() {
        let t0 = Instant::now();
        let mut s = Session::new("Open_vSwitch", None, t0);
        sent(&mut s);
        feed(&mut s, t0, r#"{"id":"echo","method":"echo","params":[]}"#);
        assert_eq!(
            sent(&mut s),
            [Message::Response { id: json!("echo"), result: json!([]), error: Value::Null }]
        );
        let id = s.transact(vec![transact::comment("hi")]);
        let Message::Request { method, params, .. } = &sent(&mut s)[0] else { panic!() };
        assert_eq!((method.as_str(), params.len()), ("transact", 2));
        feed(&mut s, t0, &format!(r#"{{"id":{id},"result":[{{}}],"error":null}}"#));
        assert_eq!(s.poll_event(), Some(Event::TransactDone { id, result: Ok(vec![json!({})]) }));
        let id = s.transact(vec![]);
        feed(
            &mut s,
            t0,
            &format!(
                r#"{{"id":{id},"result":[{{"count":1}},{{"error":"referential integrity violation","details":"x"}}],"error":null}}"#
            ),
        );
        assert_eq!(
            s.poll_event(),
            Some(Event::TransactDone { id, result: Err("referential integrity violation: x".into()) })
        );
        // A response to nothing of ours is ignored.
        feed(&mut s, t0, r#"{"id":999,"result":[],"error":null}"#);
        assert_eq!(s.poll_event(), None);
    }

    #[test]
    fn a_failed_monitor_or_garbage_fails_the_session() {
        let t0 = Instant::now();
        let mut s = Session::new("nope", None, t0);
        let e = s.handle_input(
            t0,
            br#"{"id":2,"result":null,"error":{"error":"unknown database","details":"nope"}}"#,
        );
        assert!(matches!(e, Err(Error::Server(ref m)) if m.contains("unknown database")), "{e:?}");
        let mut s = Session::new("Open_vSwitch", None, t0);
        assert!(s.handle_input(t0, b"]").is_err());
    }

    #[test]
    fn takes_the_lock_and_notices_when_it_is_stolen() {
        let t0 = Instant::now();
        let mut s = Session::new("Open_vSwitch", Some("ovs_vswitchd"), t0);
        let reqs = sent(&mut s);
        let Message::Request { method, params, .. } = &reqs[0] else { panic!() };
        assert_eq!((method.as_str(), &params[..]), ("lock", &[json!("ovs_vswitchd")][..]));
        feed(&mut s, t0, r#"{"id":1,"result":{"locked":false},"error":null}"#);
        assert_eq!((s.poll_event(), s.has_lock()), (Some(Event::Lock(false)), false));
        feed(&mut s, t0, r#"{"id":null,"method":"locked","params":["ovs_vswitchd"]}"#);
        assert_eq!((s.poll_event(), s.has_lock()), (Some(Event::Lock(true)), true));
        feed(&mut s, t0, r#"{"id":null,"method":"stolen","params":["other"]}"#);
        assert_eq!(s.poll_event(), None);
        feed(&mut s, t0, r#"{"id":null,"method":"stolen","params":["ovs_vswitchd"]}"#);
        assert_eq!((s.poll_event(), s.has_lock()), (Some(Event::Lock(false)), false));
    }

    #[test]
    fn probes_a_silent_server() {
        let t0 = Instant::now();
        let mut s = Session::new("Open_vSwitch", None, t0);
        sent(&mut s);
        s.handle_timeout(t0 + Duration::from_secs(1)).unwrap();
        assert!(sent(&mut s).is_empty());
        assert_eq!(s.poll_timeout(), t0 + PROBE_INTERVAL);
        s.handle_timeout(t0 + PROBE_INTERVAL).unwrap();
        let msgs = sent(&mut s);
        assert!(matches!(&msgs[..], [Message::Request { method, .. }] if method == "echo"), "{msgs:?}");
        // Any answer resets the probe.
        feed(&mut s, t0 + Duration::from_secs(6), r#"{"id":"echo","method":"echo","params":[]}"#);
        s.handle_timeout(t0 + Duration::from_secs(7)).unwrap();
        s.handle_timeout(t0 + Duration::from_secs(11)).unwrap();
        assert!(s.handle_timeout(t0 + Duration::from_secs(16)).is_err());
    }
}
