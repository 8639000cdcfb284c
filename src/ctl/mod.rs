//! ctl — the operator's control socket (the role of OVS's unixctl / `ovs-appctl`).
//!
//! A unix stream socket; one request per connection: the client writes one JSON line
//! `{"argv": [...], "json": bool}`, the server answers one JSON line `{"ok": bool, "body": "..."}`
//! and closes. Commands are named `layer/verb` (`dpctl/dump-flows`) and most have the short
//! alias the docs use (`dump-megaflows`). The server thread only parses and checks arity; the
//! handler runs on the thread that owns the state (the bridge's control thread), which
//! receives [`Call`]s on a channel and answers each one.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{bounded, Sender};
use serde::{Deserialize, Serialize};

/// Where `xdpswitch run` listens unless told otherwise.
pub const DEFAULT_PATH: &str = "/run/xdpswitch/xdpswitch.ctl";

/// A request: the command and its arguments.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Request {
    pub argv: Vec<String>,
    /// Answer in JSON instead of text, where the command supports it.
    #[serde(default)]
    pub json: bool,
    /// The bridge a per-bridge command acts on (default: the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<String>,
}

/// The answer to a request.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Response {
    pub ok: bool,
    pub body: String,
}

impl Response {
    pub fn ok(body: impl Into<String>) -> Response {
        Response { ok: true, body: body.into() }
    }
    pub fn err(body: impl Into<String>) -> Response {
        Response { ok: false, body: body.into() }
    }
}

/// A command the socket accepts.
#[derive(Clone, Copy, Debug)]
pub struct Command {
    /// `layer/verb`.
    pub name: &'static str,
    /// Short name, if any.
    pub alias: Option<&'static str>,
    pub usage: &'static str,
    pub min_args: usize,
    pub max_args: usize,
    pub help: &'static str,
}

/// Every command `xdpswitch run` serves, grouped by the layer that answers it.
pub const COMMANDS: &[Command] = &[
    Command {
        name: "ofproto/dump-flows",
        alias: Some("dump-flows"),
        usage: "",
        min_args: 0,
        max_args: 0,
        help: "OpenFlow rules with their packet and byte counters (like ovs-ofctl dump-flows)",
    },
    Command {
        name: "dpctl/dump-flows",
        alias: Some("dump-megaflows"),
        usage: "",
        min_args: 0,
        max_args: 0,
        help: "datapath megaflows: masked key, counters, last use, actions",
    },
    Command {
        name: "datapath/pmd-stats-show",
        alias: Some("pmd-stats"),
        usage: "",
        min_args: 0,
        max_args: 0,
        help: "per poll thread: packets, cache hit rates, upcalls, drops, time per packet",
    },
    Command {
        name: "limits/show",
        alias: Some("limits"),
        usage: "",
        min_args: 0,
        max_args: 0,
        help: "every resource limit (flows per table, megaflows, MAC entries, upcall and packet-in queues, packet-in rate): its value and how often it was hit",
    },
    Command {
        name: "datapath/pmd-stats-clear",
        alias: Some("pmd-stats-clear"),
        usage: "",
        min_args: 0,
        max_args: 0,
        help: "start the poll-thread counters from zero",
    },
    Command {
        name: "datapath/pmd-rxq-show",
        alias: Some("pmd-rxq-show"),
        usage: "",
        min_args: 0,
        max_args: 0,
        help: "which poll thread serves which port queue",
    },
    Command {
        name: "netdev/show",
        alias: Some("dump-ports"),
        usage: "",
        min_args: 0,
        max_args: 0,
        help: "ports with rx/tx counters and the kernel's AF_XDP drop counters",
    },
    Command {
        name: "fdb/show",
        alias: Some("fdb-show"),
        usage: "",
        min_args: 0,
        max_args: 0,
        help: "NORMAL's MAC table: port, VLAN, MAC, age (like ovs-appctl fdb/show)",
    },
    Command {
        name: "fdb/flush",
        alias: Some("fdb-flush"),
        usage: "",
        min_args: 0,
        max_args: 0,
        help: "forget every learned MAC address (static ones stay)",
    },
    Command {
        name: "fdb/add",
        alias: Some("fdb-add"),
        usage: "PORT VLAN MAC",
        min_args: 3,
        max_args: 3,
        help: "a static MAC entry (never aged, evicted or moved by learning)",
    },
    Command {
        name: "fdb/del",
        alias: Some("fdb-del"),
        usage: "VLAN MAC",
        min_args: 2,
        max_args: 2,
        help: "remove a MAC entry, static or learned",
    },
    Command {
        name: "fdb/stats-show",
        alias: Some("fdb-stats"),
        usage: "",
        min_args: 0,
        max_args: 0,
        help: "MAC table counters: entries, learned, expired, evicted, moved, VLAN drops",
    },
    Command {
        name: "port/set-vlan",
        alias: Some("set-port-vlan"),
        usage: "PORT [tag=VID] [trunks=VID,...] [vlan_mode=MODE]",
        min_args: 1,
        max_args: 4,
        help: "a port's VLAN configuration (no options: a trunk of every VLAN); its MACs are forgotten",
    },
    Command {
        name: "bridge/list",
        alias: Some("list-br"),
        usage: "",
        min_args: 0,
        max_args: 0,
        help: "the bridges: name, datapath_id, ports (OpenFlow and datapath numbers)",
    },
    Command {
        name: "tnl/neigh-show",
        alias: Some("tnl-neigh"),
        usage: "",
        min_args: 0,
        max_args: 0,
        help: "the underlay's neighbour (ARP) table: IP, MAC, state, age",
    },
    Command {
        name: "tnl/ports-show",
        alias: Some("tnl-ports"),
        usage: "",
        min_args: 0,
        max_args: 0,
        help: "GRE tunnel ports: remote, local IP, keys, next hop, underlay port",
    },
    Command { name: "list-commands", alias: None, usage: "", min_args: 0, max_args: 0, help: "this list" },
    Command { name: "version", alias: None, usage: "", min_args: 0, max_args: 0, help: "the version" },
    Command {
        name: "exit",
        alias: None,
        usage: "",
        min_args: 0,
        max_args: 0,
        help: "stop the switch cleanly",
    },
];

/// Finds a command by name or alias.
pub fn lookup(name: &str) -> Option<&'static Command> {
    COMMANDS.iter().find(|c| c.name == name || c.alias == Some(name))
}

/// The `list-commands` text.
pub fn list_commands() -> String {
    let mut s = String::from("The available commands are:\n");
    for c in COMMANDS {
        let name = match c.alias {
            Some(a) => format!("{} ({a})", c.name),
            None => c.name.to_string(),
        };
        s.push_str(&format!("  {name:<44} {}\n", c.help));
    }
    s
}

/// A checked request on its way to the state owner, with where to send the answer.
pub struct Call {
    /// The command (resolved from an alias).
    pub command: &'static Command,
    pub args: Vec<String>,
    pub json: bool,
    /// The bridge named with `--bridge` (`None`: the first).
    pub bridge: Option<String>,
    pub reply: Sender<Response>,
}

/// The listening socket; removes its path when dropped.
pub struct Server {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Listens on `path` (creating its folder; replacing a stale socket left by a crashed run,
    /// but refusing one that still answers) and forwards checked calls to `calls`.
    pub fn start(path: &Path, calls: Sender<Call>) -> std::io::Result<Server> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        if path.exists() {
            if UnixStream::connect(path).is_ok() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    format!("{} is in use by a running switch", path.display()),
                ));
            }
            std::fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path)?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new().name("ctl".into()).spawn(move || {
            while !stop2.load(Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let _ = serve_one(stream, &calls);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    Err(e) => {
                        tracing::warn!("ctl socket: accept failed: {e}");
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            }
        })?;
        Ok(Server { path: path.to_path_buf(), stop, thread: Some(thread) })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn serve_one(stream: UnixStream, calls: &Sender<Call>) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut line = String::new();
    BufReader::new(&stream).take(1 << 20).read_line(&mut line)?;
    let response = match serde_json::from_str::<Request>(&line) {
        Err(e) => Response::err(format!("bad request: {e}")),
        Ok(req) => dispatch(req, calls),
    };
    let mut out = serde_json::to_vec(&response).map_err(std::io::Error::other)?;
    out.push(b'\n');
    (&stream).write_all(&out)
}

fn dispatch(req: Request, calls: &Sender<Call>) -> Response {
    let Some((name, args)) = req.argv.split_first() else {
        return Response::err("no command given; try list-commands");
    };
    let Some(command) = lookup(name) else {
        return Response::err(format!("\"{name}\" is not a valid command; try list-commands"));
    };
    if args.len() < command.min_args || args.len() > command.max_args {
        return Response::err(format!("{}: usage: {} {}", command.name, command.name, command.usage));
    }
    match command.name {
        "list-commands" => return Response::ok(list_commands()),
        "version" => return Response::ok(format!("xdpswitch {}\n", env!("CARGO_PKG_VERSION"))),
        _ => {}
    }
    let (tx, rx) = bounded(1);
    let call = Call { command, args: args.to_vec(), json: req.json, bridge: req.bridge, reply: tx };
    if calls.send(call).is_err() {
        return Response::err("the switch is shutting down");
    }
    rx.recv_timeout(Duration::from_secs(10)).unwrap_or_else(|_| Response::err("the switch did not answer"))
}

/// Sends one request to the socket at `path` and returns the answer.
pub fn call(path: &Path, argv: &[String], json: bool) -> std::io::Result<Response> {
    call_bridge(path, None, argv, json)
}

/// Sends one request for bridge `bridge` (`None`: the first) and returns the answer.
pub fn call_bridge(
    path: &Path,
    bridge: Option<&str>,
    argv: &[String],
    json: bool,
) -> std::io::Result<Response> {
    let stream = UnixStream::connect(path).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot connect to {} ({e}): is xdpswitch running?", path.display()),
        )
    })?;
    let mut req =
        serde_json::to_vec(&Request { argv: argv.to_vec(), json, bridge: bridge.map(str::to_string) })
            .map_err(std::io::Error::other)?;
    req.push(b'\n');
    (&stream).write_all(&req)?;
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line)?;
    serde_json::from_str(&line).map_err(|e| std::io::Error::other(format!("bad answer from the switch: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_through_a_socket() {
        let dir = std::env::temp_dir().join(format!("xs-ctl-test-{}", std::process::id()));
        let path = dir.join("t.ctl");
        let (tx, rx) = crossbeam_channel::unbounded::<Call>();
        let server = Server::start(&path, tx.clone()).unwrap();
        // A second server on the same live path is refused.
        assert!(Server::start(&path, tx).is_err());
        let owner = std::thread::spawn(move || {
            let c = rx.recv().unwrap();
            assert_eq!((c.command.name, c.bridge), ("datapath/pmd-stats-show", None));
            c.reply.send(Response::ok("pmd 0\n")).unwrap();
            let c = rx.recv().unwrap();
            assert_eq!((c.command.name, c.bridge.as_deref()), ("ofproto/dump-flows", Some("br-tun")));
            c.reply.send(Response::ok("flows\n")).unwrap();
        });
        let r = call(&path, &["pmd-stats".to_string()], false).unwrap();
        assert_eq!(r, Response::ok("pmd 0\n"));
        let r = call_bridge(&path, Some("br-tun"), &["dump-flows".to_string()], false).unwrap();
        assert_eq!(r, Response::ok("flows\n"));
        owner.join().unwrap();
        let r = call(&path, &["no-such".to_string()], false).unwrap();
        assert!(!r.ok && r.body.contains("not a valid command"));
        let r = call(&path, &["dump-flows".to_string(), "x".to_string()], false).unwrap();
        assert!(!r.ok && r.body.contains("usage"));
        let r = call(&path, &["list-commands".to_string()], false).unwrap();
        assert!(r.ok && r.body.contains("dpctl/dump-flows (dump-megaflows)"));
        drop(server);
        assert!(!path.exists());
        let _ = std::fs::remove_dir(&dir);
    }
}
