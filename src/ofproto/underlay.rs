//! The tunnel endpoint's slow path: ARP and ICMP echo on the underlay ports, the neighbor
//! table, and the outer Ethernet header ([`TunnelHeader`]) of every GRE port.
//!
//! Sans-IO: [`Underlay`] reads no clock and touches no socket. Inputs are frames an underlay
//! port received ([`Underlay::on_packet`]), packets the fast path could not encapsulate yet
//! ([`Underlay::on_pending`]) and the passing of time ([`Underlay::tick`], ~every 100 ms);
//! each appends what to do to `out`, in order: frames to send, headers to publish with
//! `Datapath::set_tunnel_header`, pending packets to inject now that their tunnel has a header.
//!
//! Routing: a tunnel's `local_ip` names its underlay; its next hop is the remote itself when
//! the remote is on the underlay's subnet, else the underlay's gateway. Each next hop is a
//! neighbor entry:
//! - *incomplete*: an ARP request went out; another every [`ARP_RETRY`], [`ARP_TRIES`] in
//!   all; packets for it wait, at most [`MAX_PENDING`] (more are dropped and counted);
//! - *reachable*: the MAC is known (from a reply, a gratuitous ARP, or a request the neighbor
//!   sent us); every tunnel through it has a header. The entry lives [`NEIGH_AGING`] (OVS's
//!   tunnel neighbor aging, 15 minutes); [`NEIGH_REFRESH`] before that, unicast requests
//!   (again up to [`ARP_TRIES`], [`ARP_RETRY`] apart) ask the neighbor to confirm. Unconfirmed
//!   at expiry, the headers are withdrawn and the entry fails;
//! - *failed*: no answer. Pending packets were dropped and counted; the next packet for it,
//!   at least [`ARP_RETRY`] later, starts over.
//!
//! The switch answers ARP requests for its underlay addresses and ICMP echo requests sent
//! to them. Malformed frames are counted and ignored; nothing here panics on input.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::datapath::tunnel::{KeyMode, TunnelConfig, TunnelHeader, TunnelPending};
use crate::netdev::DpPortNo;
use crate::packet::ethernet::{self, ether_type, format_mac};
use crate::packet::{arp, checksum, icmp, ip_proto, ipv4};

/// Time between ARP requests for a next hop that has not answered.
pub const ARP_RETRY: Duration = Duration::from_secs(1);
/// ARP requests sent before a next hop is declared failed (and before a reachable one that
/// stopped confirming expires).
pub const ARP_TRIES: u32 = 3;
/// How long a resolved neighbor stays valid without confirmation (OVS
/// `NEIGH_ENTRY_DEFAULT_IDLE_TIME_MS`: 15 minutes).
pub const NEIGH_AGING: Duration = Duration::from_secs(15 * 60);
/// How long before expiry a reachable neighbor is asked to confirm.
pub const NEIGH_REFRESH: Duration = Duration::from_secs(30);
/// Packets waiting per next hop while it is resolved.
pub const MAX_PENDING: usize = 64;
/// TTL of the ICMP echo replies.
const REPLY_TTL: u8 = 64;

/// One underlay port: an AF_XDP port on a NIC that belongs to no bridge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnderlayConfig {
    /// Its datapath port.
    pub port: DpPortNo,
    /// Its interface name.
    pub name: String,
    /// Its MAC.
    pub mac: [u8; 6],
    /// Our address on it.
    pub ip: Ipv4Addr,
    /// The subnet's prefix length.
    pub prefix_len: u8,
    /// The router for remotes off the subnet.
    pub gateway: Option<Ipv4Addr>,
    /// The IP MTU.
    pub mtu: u16,
}

/// What the caller does after an input, in the order given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UnderlayOut {
    /// Send `frame` out of underlay port `port` (ARP request/reply, ICMP echo reply).
    Send {
        /// The underlay port.
        port: DpPortNo,
        /// The whole Ethernet frame.
        frame: Vec<u8>,
    },
    /// Publish the tunnel's header (`Datapath::set_tunnel_header`); `None` withdraws it.
    Header {
        /// The tunnel port.
        tunnel: DpPortNo,
        /// Its new header.
        header: Option<TunnelHeader>,
    },
    /// A pending packet whose tunnel has a header now: inject it with `[Tunnel{port, key}]`.
    Release {
        /// The tunnel port.
        tunnel: DpPortNo,
        /// The GRE key the fast path chose.
        key: u32,
        /// The inner frame.
        packet: Vec<u8>,
    },
}

/// Counters (`tnl/neigh-show` and `pmd-stats` style readers).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct UnderlayStats {
    /// ARP requests sent (resolution, refresh, gratuitous announcements).
    pub arp_requests_sent: u64,
    /// ARP replies sent for our addresses.
    pub arp_replies_sent: u64,
    /// Neighbor entries resolved or confirmed from received ARP.
    pub arp_learned: u64,
    /// ICMP echo replies sent.
    pub echo_replies_sent: u64,
    /// Next hops that did not answer [`ARP_TRIES`] requests.
    pub resolve_failed: u64,
    /// Reachable neighbors that stopped confirming and expired.
    pub neigh_expired: u64,
    /// Packets queued for a next hop being resolved.
    pub pending_queued: u64,
    /// Pending packets handed back for sending.
    pub pending_released: u64,
    /// Pending packets dropped: queue full, resolution failed, or no such tunnel.
    pub pending_dropped: u64,
    /// Frames too short or inconsistent to parse (bad lengths, bad checksums).
    pub malformed: u64,
    /// Well-formed frames with nothing for us (other ARP, other IP traffic, unknown port).
    pub ignored: u64,
}

/// One line of `tnl/neigh-show`.
#[derive(serde::Serialize)]
struct NeighborRow {
    ip: String,
    mac: Option<String>,
    port: String,
    state: &'static str,
    expires_s: Option<u64>,
    pending: usize,
}

#[derive(Clone, Debug)]
struct Link {
    cfg: UnderlayConfig,
    mask: u32,
}

impl Link {
    fn on_link(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask == u32::from(self.cfg.ip) & self.mask
    }
}

#[derive(Clone, Debug)]
struct Tunnel {
    port: DpPortNo,
    name: String,
    cfg: TunnelConfig,
    link: usize,
    next_hop: Ipv4Addr,
    header: Option<TunnelHeader>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// `sent` requests so far; the next at `next`.
    Incomplete { sent: u32, next: Instant },
    /// Known; valid until `expires`; `probes` refresh requests sent, the next at `next_probe`.
    Reachable { mac: [u8; 6], expires: Instant, probes: u32, next_probe: Instant },
    /// No answer (since `at`).
    Failed { at: Instant },
}

#[derive(Debug)]
struct Pending {
    tunnel: DpPortNo,
    key: u32,
    packet: Vec<u8>,
}

#[derive(Debug)]
struct Neighbor {
    state: State,
    pending: VecDeque<Pending>,
}

/// The underlay slow path (see the module docs).
#[derive(Debug)]
pub struct Underlay {
    links: Vec<Link>,
    tunnels: Vec<Tunnel>,
    /// Keyed by (link index, next-hop address).
    neighbors: BTreeMap<(usize, Ipv4Addr), Neighbor>,
    stats: UnderlayStats,
    ip_id: u16,
}

fn prefix_mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    }
}

impl Underlay {
    /// Checks the configuration and routes every tunnel: its `local_ip` must be an underlay's
    /// address, and a remote off that underlay's subnet needs its gateway.
    pub fn new(
        underlays: Vec<UnderlayConfig>,
        tunnels: Vec<(DpPortNo, String, TunnelConfig)>,
    ) -> Result<Underlay, String> {
        let mut links: Vec<Link> = Vec::new();
        for u in underlays {
            let name = &u.name;
            if u.prefix_len > 32 {
                return Err(format!("underlay {name}: prefix length {} is over 32", u.prefix_len));
            }
            if u.ip.is_unspecified() || u.ip.is_broadcast() || u.ip.is_multicast() {
                return Err(format!("underlay {name}: {} is not a host address", u.ip));
            }
            if u.mac[0] & 1 != 0 || u.mac == [0; 6] {
                return Err(format!("underlay {name}: {} is not a unicast MAC", format_mac(&u.mac)));
            }
            if links.iter().any(|l| l.cfg.port == u.port || l.cfg.ip == u.ip) {
                return Err(format!("underlay {name}: its port or address is given twice"));
            }
            let link = Link { mask: prefix_mask(u.prefix_len), cfg: u };
            if let Some(g) = link.cfg.gateway {
                if !link.on_link(g) || g == link.cfg.ip {
                    return Err(format!("underlay {}: gateway {g} is not on its subnet", link.cfg.name));
                }
            }
            links.push(link);
        }
        let mut out: Vec<Tunnel> = Vec::new();
        for (port, name, cfg) in tunnels {
            if out.iter().any(|t| t.port == port) {
                return Err(format!("tunnel {name}: datapath port {} given twice", port.0));
            }
            let Some(li) = links.iter().position(|l| l.cfg.ip == cfg.local_ip) else {
                return Err(format!("tunnel {name}: local_ip {} is no underlay's address", cfg.local_ip));
            };
            let link = &links[li];
            let next_hop = if link.on_link(cfg.remote_ip) {
                cfg.remote_ip
            } else if let Some(g) = link.cfg.gateway {
                g
            } else {
                return Err(format!(
                    "tunnel {name}: remote_ip {} is off the subnet of underlay {} and it has no gateway",
                    cfg.remote_ip, link.cfg.name
                ));
            };
            if next_hop == link.cfg.ip {
                return Err(format!("tunnel {name}: remote_ip {} is our own address", cfg.remote_ip));
            }
            out.push(Tunnel { port, name, cfg, link: li, next_hop, header: None });
        }
        Ok(Underlay {
            links,
            tunnels: out,
            neighbors: BTreeMap::new(),
            stats: UnderlayStats::default(),
            ip_id: 0,
        })
    }

    /// Announces every underlay address (a gratuitous ARP each) and starts resolving every
    /// tunnel's next hop.
    pub fn start(&mut self, now: Instant, out: &mut Vec<UnderlayOut>) {
        for li in 0..self.links.len() {
            let ip = self.links[li].cfg.ip;
            self.send_request(li, ip, None, out);
        }
        let hops: Vec<(usize, Ipv4Addr)> = self.tunnels.iter().map(|t| (t.link, t.next_hop)).collect();
        for key in hops {
            if !self.neighbors.contains_key(&key) {
                self.resolve(key, now, out);
            }
        }
    }

    /// A frame underlay port `port` received for the slow path.
    pub fn on_packet(&mut self, port: DpPortNo, frame: &[u8], now: Instant, out: &mut Vec<UnderlayOut>) {
        let Some(li) = self.links.iter().position(|l| l.cfg.port == port) else {
            self.stats.ignored += 1;
            return;
        };
        let Ok(eth) = ethernet::Packet::new_checked(frame) else {
            self.stats.malformed += 1;
            return;
        };
        match eth.ethertype() {
            ether_type::ARP => self.on_arp(li, eth.payload(), now, out),
            ether_type::IPV4 => self.on_ipv4(li, eth.src(), eth.payload(), out),
            _ => self.stats.ignored += 1,
        }
    }

    /// A packet the fast path could not encapsulate: queue it until its next hop resolves
    /// (starting resolution if needed), or hand it back if the header exists by now.
    pub fn on_pending(&mut self, p: TunnelPending, now: Instant, out: &mut Vec<UnderlayOut>) {
        let Some(t) = self.tunnels.iter().find(|t| t.port == p.port) else {
            self.stats.pending_dropped += 1;
            return;
        };
        let key = (t.link, t.next_hop);
        let has_header = t.header.is_some();
        let pending = Pending { tunnel: p.port, key: p.key, packet: p.packet };
        match self.neighbors.get(&key).map(|n| n.state) {
            Some(State::Reachable { .. }) if has_header => {
                self.stats.pending_released += 1;
                out.push(UnderlayOut::Release {
                    tunnel: pending.tunnel,
                    key: pending.key,
                    packet: pending.packet,
                });
                return;
            }
            Some(State::Failed { at }) if now < at + ARP_RETRY => {
                self.stats.pending_dropped += 1;
                return;
            }
            Some(State::Incomplete { .. }) => {}
            _ => self.resolve(key, now, out),
        }
        let Some(n) = self.neighbors.get_mut(&key) else { return };
        if n.pending.len() >= MAX_PENDING {
            self.stats.pending_dropped += 1;
        } else {
            self.stats.pending_queued += 1;
            n.pending.push_back(pending);
        }
    }

    /// Retries, failures, refreshes and expiries due by `now`.
    pub fn tick(&mut self, now: Instant, out: &mut Vec<UnderlayOut>) {
        let keys: Vec<(usize, Ipv4Addr)> = self.neighbors.keys().copied().collect();
        for key in keys {
            let Some(n) = self.neighbors.get_mut(&key) else { continue };
            match n.state {
                State::Incomplete { sent, next } if now >= next => {
                    if sent < ARP_TRIES {
                        n.state = State::Incomplete { sent: sent + 1, next: now + ARP_RETRY };
                        self.send_request(key.0, key.1, None, out);
                    } else {
                        n.state = State::Failed { at: now };
                        self.stats.resolve_failed += 1;
                        self.stats.pending_dropped += n.pending.len() as u64;
                        n.pending.clear();
                        tracing::warn!(
                            underlay = %self.links[key.0].cfg.name,
                            next_hop = %key.1,
                            "tunnel next hop does not answer ARP; its packets are dropped"
                        );
                    }
                }
                State::Reachable { expires, .. } if now >= expires => {
                    n.state = State::Failed { at: now };
                    self.stats.neigh_expired += 1;
                    self.set_headers(key, None, out);
                }
                State::Reachable { mac, expires, probes, next_probe }
                    if now >= next_probe && probes < ARP_TRIES =>
                {
                    n.state =
                        State::Reachable { mac, expires, probes: probes + 1, next_probe: now + ARP_RETRY };
                    self.send_request(key.0, key.1, Some(mac), out);
                }
                _ => {}
            }
        }
    }

    /// Counters.
    pub fn stats(&self) -> UnderlayStats {
        self.stats
    }

    /// The neighbor table (`tnl/neigh-show`), as text or JSON.
    pub fn show_neighbors(&self, now: Instant, json: bool) -> String {
        let rows: Vec<NeighborRow> = self
            .neighbors
            .iter()
            .map(|((li, ip), n)| {
                let (mac, state, expires_s) = match n.state {
                    State::Reachable { mac, expires, .. } => (
                        Some(format_mac(&mac)),
                        "REACHABLE",
                        Some(expires.saturating_duration_since(now).as_secs()),
                    ),
                    State::Incomplete { .. } => (None, "INCOMPLETE", None),
                    State::Failed { .. } => (None, "FAILED", None),
                };
                let port = self.links[*li].cfg.name.clone();
                NeighborRow { ip: ip.to_string(), mac, port, state, expires_s, pending: n.pending.len() }
            })
            .collect();
        if json {
            return serde_json::to_string(&rows).unwrap_or_default();
        }
        let mut s = format!(
            "{:<16} {:<18} {:<16} {:<10} {:>8} {:>7}\n",
            "IP", "MAC", "Port", "State", "Expires", "Pending"
        );
        for r in &rows {
            let exp = r.expires_s.map_or_else(|| "-".to_string(), |e| format!("{e}s"));
            let mac = r.mac.as_deref().unwrap_or("-");
            let _ = writeln!(
                s,
                "{:<16} {mac:<18} {:<16} {:<10} {exp:>8} {:>7}",
                r.ip, r.port, r.state, r.pending
            );
        }
        s
    }

    /// The tunnel ports, their routes and headers (`tnl/ports-show`), as text or JSON.
    pub fn show_tunnels(&self, json: bool) -> String {
        let key = |k: KeyMode| match k {
            KeyMode::None => "none".to_string(),
            KeyMode::Fixed(k) => k.to_string(),
            KeyMode::Flow => "flow".to_string(),
        };
        if json {
            let v: Vec<serde_json::Value> = self
                .tunnels
                .iter()
                .map(|t| {
                    let c = &t.cfg;
                    serde_json::json!({
                        "name": t.name, "port": t.port.0, "type": "gre",
                        "remote_ip": c.remote_ip.to_string(), "local_ip": c.local_ip.to_string(),
                        "in_key": key(c.in_key), "out_key": key(c.out_key), "csum": c.csum, "seq": c.seq,
                        "ttl": c.ttl, "tos": c.tos, "underlay": self.links[t.link].cfg.name,
                        "next_hop": t.next_hop.to_string(),
                        "eth_dst": t.header.map(|h| format_mac(&h.eth_dst)),
                        "mtu": t.header.map(|h| h.mtu),
                    })
                })
                .collect();
            return serde_json::Value::Array(v).to_string();
        }
        let mut s = String::new();
        for t in &self.tunnels {
            let c = &t.cfg;
            let keys = if c.in_key == c.out_key {
                format!("key={}", key(c.in_key))
            } else {
                format!("in_key={},out_key={}", key(c.in_key), key(c.out_key))
            };
            let _ = writeln!(
                s,
                "{} (dp {}): gre remote_ip={} local_ip={} {keys} csum={} seq={} ttl={} tos={}",
                t.name, t.port.0, c.remote_ip, c.local_ip, c.csum, c.seq, c.ttl, c.tos
            );
            let route = format!("via {} on {}", t.next_hop, self.links[t.link].cfg.name);
            match t.header {
                Some(h) => {
                    let _ = writeln!(s, "  {route}: eth_dst={} mtu={}", format_mac(&h.eth_dst), h.mtu);
                }
                None => {
                    let _ = writeln!(s, "  {route}: unresolved");
                }
            }
        }
        s
    }

    // ---- internals

    /// Starts (or restarts) resolving `key`: a first broadcast request.
    fn resolve(&mut self, key: (usize, Ipv4Addr), now: Instant, out: &mut Vec<UnderlayOut>) {
        let state = State::Incomplete { sent: 1, next: now + ARP_RETRY };
        self.neighbors.entry(key).or_insert_with(|| Neighbor { state, pending: VecDeque::new() }).state =
            state;
        self.send_request(key.0, key.1, None, out);
    }

    /// An ARP request from link `li` for `target`: broadcast, or unicast to `to`.
    fn send_request(&mut self, li: usize, target: Ipv4Addr, to: Option<[u8; 6]>, out: &mut Vec<UnderlayOut>) {
        let l = &self.links[li].cfg;
        let frame =
            arp_frame(arp::OP_REQUEST, to.unwrap_or(ethernet::BROADCAST), (l.mac, l.ip), ([0; 6], target));
        self.stats.arp_requests_sent += 1;
        out.push(UnderlayOut::Send { port: l.port, frame });
    }

    /// Publishes `mac` (or withdraws, with `None`) as the next hop of every tunnel via `key`.
    fn set_headers(&mut self, key: (usize, Ipv4Addr), mac: Option<[u8; 6]>, out: &mut Vec<UnderlayOut>) {
        let l = &self.links[key.0].cfg;
        let header =
            mac.map(|eth_dst| TunnelHeader { underlay: l.port, eth_src: l.mac, eth_dst, mtu: l.mtu });
        for t in self.tunnels.iter_mut().filter(|t| (t.link, t.next_hop) == key) {
            if t.header != header {
                t.header = header;
                out.push(UnderlayOut::Header { tunnel: t.port, header });
            }
        }
    }

    /// `ip` is at `mac` (on link `li`): if it is a next hop, it is reachable now; headers
    /// change if its MAC did, then its pending packets go out in arrival order.
    fn learn(&mut self, li: usize, ip: Ipv4Addr, mac: [u8; 6], now: Instant, out: &mut Vec<UnderlayOut>) {
        let key = (li, ip);
        let Some(n) = self.neighbors.get_mut(&key) else { return };
        self.stats.arp_learned += 1;
        n.state = State::Reachable {
            mac,
            expires: now + NEIGH_AGING,
            probes: 0,
            next_probe: now + NEIGH_AGING - NEIGH_REFRESH,
        };
        let pending = std::mem::take(&mut n.pending);
        self.set_headers(key, Some(mac), out);
        self.stats.pending_released += pending.len() as u64;
        out.extend(pending.into_iter().map(|p| UnderlayOut::Release {
            tunnel: p.tunnel,
            key: p.key,
            packet: p.packet,
        }));
    }

    fn on_arp(&mut self, li: usize, payload: &[u8], now: Instant, out: &mut Vec<UnderlayOut>) {
        let Ok(a) = arp::Packet::new_checked(payload) else {
            self.stats.malformed += 1;
            return;
        };
        if !a.is_ethernet_ipv4() || !matches!(a.oper(), arp::OP_REQUEST | arp::OP_REPLY) {
            self.stats.malformed += 1;
            return;
        }
        let (l_ip, l_mac) = (self.links[li].cfg.ip, self.links[li].cfg.mac);
        let (spa, tpa, sha) = (Ipv4Addr::from(a.spa()), Ipv4Addr::from(a.tpa()), a.sha());
        let request = a.oper() == arp::OP_REQUEST;
        let for_us = tpa == l_ip;
        let gratuitous = spa == tpa;
        // Our own announcements coming back, or a host claiming our address: nothing to learn.
        if spa == l_ip || sha == l_mac || sha[0] & 1 != 0 || sha == [0; 6] {
            self.stats.ignored += 1;
            return;
        }
        let mut used = false;
        if !spa.is_unspecified()
            && (!request || gratuitous || for_us)
            && self.neighbors.contains_key(&(li, spa))
        {
            self.learn(li, spa, sha, now, out);
            used = true;
        }
        if request && for_us && !gratuitous {
            let l = &self.links[li].cfg;
            let frame = arp_frame(arp::OP_REPLY, sha, (l.mac, l.ip), (sha, spa));
            self.stats.arp_replies_sent += 1;
            out.push(UnderlayOut::Send { port: l.port, frame });
            used = true;
        }
        if !used {
            self.stats.ignored += 1;
        }
    }

    fn on_ipv4(&mut self, li: usize, eth_src: [u8; 6], payload: &[u8], out: &mut Vec<UnderlayOut>) {
        let Ok(ip) = ipv4::Packet::new_checked(payload) else {
            self.stats.malformed += 1;
            return;
        };
        if !ip.verify_checksum() {
            self.stats.malformed += 1;
            return;
        }
        let l = &self.links[li].cfg;
        if Ipv4Addr::from(ip.dst()) != l.ip || ip.protocol() != ip_proto::ICMP || ip.is_fragment() {
            self.stats.ignored += 1;
            return;
        }
        let body = ip.payload();
        let Ok(req) = icmp::Packet::new_checked(body) else {
            self.stats.malformed += 1;
            return;
        };
        if req.msg_type() != icmp::v4::ECHO_REQUEST {
            self.stats.ignored += 1;
            return;
        }
        if !checksum::verify(body) {
            self.stats.malformed += 1;
            return;
        }
        if eth_src[0] & 1 != 0 {
            self.stats.ignored += 1;
            return;
        }
        self.ip_id = self.ip_id.wrapping_add(1);
        let frame = echo_reply(l.mac, eth_src, l.ip, Ipv4Addr::from(ip.src()), ip.tos(), self.ip_id, body);
        self.stats.echo_replies_sent += 1;
        out.push(UnderlayOut::Send { port: l.port, frame });
    }
}

/// Ethernet frames shorter than this are padded (60 bytes without the FCS).
const MIN_FRAME: usize = 60;

/// An Ethernet/IPv4 ARP frame from `sender` (MAC, IP) about `target`, to `eth_dst`.
fn arp_frame(op: u16, eth_dst: [u8; 6], sender: ([u8; 6], Ipv4Addr), target: ([u8; 6], Ipv4Addr)) -> Vec<u8> {
    let mut f = vec![0u8; MIN_FRAME];
    let mut e = ethernet::Packet::new_unchecked(&mut f[..]);
    e.set_dst(eth_dst);
    e.set_src(sender.0);
    e.set_ethertype(ether_type::ARP);
    let mut a = arp::Packet::new_unchecked(&mut f[ethernet::HEADER_LEN..]);
    a.set_ethernet_ipv4();
    a.set_oper(op);
    a.set_sha(sender.0);
    a.set_spa(sender.1.octets());
    a.set_tha(target.0);
    a.set_tpa(target.1.octets());
    f
}

/// The echo reply to the ICMP echo request `request` (its ICMP header and data).
fn echo_reply(
    mac: [u8; 6],
    to_mac: [u8; 6],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    tos: u8,
    ident: u16,
    request: &[u8],
) -> Vec<u8> {
    let l3 = ethernet::HEADER_LEN;
    let l4 = l3 + ipv4::HEADER_LEN;
    let mut f = vec![0u8; (l4 + request.len()).max(MIN_FRAME)];
    let mut e = ethernet::Packet::new_unchecked(&mut f[..]);
    e.set_dst(to_mac);
    e.set_src(mac);
    e.set_ethertype(ether_type::IPV4);
    f[l4..l4 + request.len()].copy_from_slice(request);
    let mut m = icmp::Packet::new_unchecked(&mut f[l4..l4 + request.len()]);
    m.set_msg_type(icmp::v4::ECHO_REPLY);
    m.set_code(0);
    m.set_checksum(0);
    let c = checksum::checksum(&f[l4..l4 + request.len()]);
    icmp::Packet::new_unchecked(&mut f[l4..l4 + request.len()]).set_checksum(c);
    let mut ip = ipv4::Packet::new_unchecked(&mut f[l3..l4 + request.len()]);
    ip.set_version_header_len(ipv4::HEADER_LEN);
    ip.set_tos(tos);
    ip.set_total_len((ipv4::HEADER_LEN + request.len()) as u16);
    ip.set_ident(ident);
    ip.set_flags_frag(0);
    ip.set_ttl(REPLY_TTL);
    ip.set_protocol(ip_proto::ICMP);
    ip.set_src(src.octets());
    ip.set_dst(dst.octets());
    ip.fill_checksum();
    f
}

#[cfg(test)]
mod tests;
