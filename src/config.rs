//! `xdpswitch run --config FILE`: the TOML configuration of a switch with several bridges,
//! patch ports between them, GRE tunnel ports and the underlay ports the tunnels use.
//!
//! ```toml
//! cores = 2                          # optional: cores, ctl, xdp_mode, offload, pmd_cpus, log
//! [[bridge]]
//! name = "br-int"
//! ports = ["tap-vm1:tag=1", "patch-tun:peer=patch-int"]
//! [[bridge]]
//! name = "br-tun"
//! ports = ["patch-int:peer=patch-tun", "gre-h2:type=gre,remote_ip=192.0.2.2,key=flow"]
//! controller = "tcp:127.0.0.1:6653"           # or a list; also listen = "ptcp:6634"
//! [[underlay]]
//! port = "eth1"
//! ip = "192.0.2.1/24"                         # also gateway, mtu
//! ```
//! `ssl:IP[:PORT]` controllers and `pssl:[PORT][:IP]` listeners take the switch's key,
//! certificate and CA from an `[ssl]` table (one for the whole switch, as OVS's `set-ssl`):
//! `private_key`, `certificate`, `ca_cert`, all PEM files and all three required.
//!
//! Parsing ([`Config::parse`]) checks everything that needs no system call, and every error
//! is one line naming the bridge, the port and the option. No I/O here but reading the file.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::agent::{Target, TlsFiles};
use crate::datapath::normal::PortVlan;
use crate::datapath::tunnel::{KeyMode, TunnelConfig};
use crate::netdev::DpPortNo;
use crate::ofproto::connmgr::FailMode;

/// The highest ordinary OpenFlow port number (`OFPP_MAX`).
const OFPP_MAX: u32 = 0xffff_ff00;

/// What a port is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortKind {
    /// An interface, through an AF_XDP socket.
    Afxdp,
    /// One end of a patch between two bridges.
    Patch { peer: String },
    /// A GRE tunnel (`local_ip` resolved against the underlays).
    Gre(TunnelConfig),
    /// A tap device the switch creates (Open vSwitch's `internal` interfaces other than the
    /// bridge's own, which is its LOCAL port).
    Internal,
}

impl PortKind {
    /// The type name, as `dump-ports` prints it.
    pub fn type_name(&self) -> &'static str {
        match self {
            PortKind::Afxdp => "afxdp",
            PortKind::Patch { .. } => "patch",
            PortKind::Gre(_) => "gre",
            PortKind::Internal => "internal",
        }
    }
}

/// One port of a bridge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortConfig {
    pub name: String,
    /// Its OpenFlow number in its bridge.
    pub ofport: u32,
    pub kind: PortKind,
    /// NORMAL's VLAN configuration, when it has one.
    pub vlan: Option<PortVlan>,
}

impl PortConfig {
    /// What `dump-ports` shows after the type: the patch peer or the tunnel options.
    pub fn note(&self) -> Option<String> {
        let key = |k: KeyMode| match k {
            KeyMode::None => "none".to_string(),
            KeyMode::Fixed(n) => n.to_string(),
            KeyMode::Flow => "flow".to_string(),
        };
        match &self.kind {
            PortKind::Afxdp | PortKind::Internal => None,
            PortKind::Patch { peer } => Some(format!("peer={peer}")),
            PortKind::Gre(g) => {
                let keys = if g.in_key == g.out_key {
                    format!("key={}", key(g.in_key))
                } else {
                    format!("in_key={},out_key={}", key(g.in_key), key(g.out_key))
                };
                let mut s = format!("remote_ip={},local_ip={},{keys}", g.remote_ip, g.local_ip);
                if g.csum {
                    s.push_str(",csum=true");
                }
                if g.seq {
                    s.push_str(",seq=true");
                }
                if g.ttl != 64 {
                    s.push_str(&format!(",ttl={}", g.ttl));
                }
                if g.tos != 0 {
                    s.push_str(&format!(",tos={}", g.tos));
                }
                Some(s)
            }
        }
    }
}

/// One bridge.
#[derive(Clone, Debug, PartialEq)]
pub struct BridgeConf {
    pub name: String,
    pub ports: Vec<PortConfig>,
    /// `controller` (active) and `listen` (passive) targets.
    pub targets: Vec<Target>,
    pub fail_mode: FailMode,
    pub flows: Option<PathBuf>,
    pub datapath_id: Option<u64>,
    pub mac_aging: Option<Duration>,
    pub mac_table_size: Option<usize>,
    pub packet_in_rate: Option<u32>,
    /// Most rules per OpenFlow table (`max_flows`; default `--max-flows`).
    pub max_flows: Option<usize>,
}

/// One underlay port: an interface that belongs to no bridge and carries the tunnels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnderlayConf {
    pub port: String,
    pub ip: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Option<Ipv4Addr>,
    /// The IP MTU (default: the interface's).
    pub mtu: Option<u16>,
}

impl UnderlayConf {
    /// Whether `ip` is on this underlay's subnet.
    pub fn on_link(&self, ip: Ipv4Addr) -> bool {
        let mask = if self.prefix_len == 0 { 0 } else { u32::MAX << (32 - u32::from(self.prefix_len)) };
        u32::from(ip) & mask == u32::from(self.ip) & mask
    }
}

/// A checked configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub cores: Option<usize>,
    pub ctl: Option<PathBuf>,
    /// `auto`, `native` or `generic`.
    pub xdp_mode: Option<String>,
    /// `offload = false` keeps every packet in user space (as `--offload off`).
    pub offload: Option<bool>,
    pub pmd_cpus: Vec<usize>,
    pub log: Option<String>,
    pub bridges: Vec<BridgeConf>,
    pub underlays: Vec<UnderlayConf>,
    /// The `[ssl]` table: key, certificate and CA for TLS connections.
    pub ssl: Option<TlsFiles>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    cores: Option<usize>,
    ctl: Option<PathBuf>,
    xdp_mode: Option<String>,
    offload: Option<bool>,
    pmd_cpus: Option<Vec<usize>>,
    log: Option<String>,
    #[serde(default)]
    bridge: Vec<RawBridge>,
    #[serde(default)]
    underlay: Vec<RawUnderlay>,
    ssl: Option<RawSsl>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSsl {
    private_key: PathBuf,
    certificate: PathBuf,
    ca_cert: PathBuf,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBridge {
    name: String,
    #[serde(default)]
    ports: Vec<String>,
    controller: Option<OneOrMany>,
    listen: Option<OneOrMany>,
    fail_mode: Option<String>,
    flows: Option<PathBuf>,
    datapath_id: Option<String>,
    mac_aging: Option<u32>,
    mac_table_size: Option<usize>,
    packet_in_rate: Option<u32>,
    max_flows: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUnderlay {
    port: String,
    ip: String,
    gateway: Option<String>,
    mtu: Option<u16>,
}

/// Whether `s` can name a network interface.
pub(crate) fn valid_ifname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && !s.contains(['/', ' ', ':', ',', '='])
        && !s.chars().any(char::is_control)
}

/// A port option's value as a boolean.
pub(crate) fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "true" | "yes" | "1" => Some(true),
        "false" | "no" | "0" => Some(false),
        _ => None,
    }
}

/// A GRE key: a number (decimal or 0x hex) or `flow`.
pub(crate) fn parse_key(v: &str) -> Option<KeyMode> {
    if v == "flow" {
        return Some(KeyMode::Flow);
    }
    parse_u64(v).and_then(|n| u32::try_from(n).ok()).map(KeyMode::Fixed)
}

/// A number in decimal or `0x` hex.
fn parse_u64(v: &str) -> Option<u64> {
    match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => v.parse().ok(),
    }
}

/// `A.B.C.D/LEN`.
pub(crate) fn parse_cidr(v: &str) -> Option<(Ipv4Addr, u8)> {
    let (ip, len) = v.split_once('/')?;
    let len: u8 = len.parse().ok().filter(|&l| l <= 32)?;
    Some((ip.parse().ok()?, len))
}

/// Splits a port's option text into `key=value` pairs: options are separated by `:` or `,`,
/// and a piece without `=` continues the previous value (`trunks=6,7`).
pub fn split_port_options(opts: &str) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = Vec::new();
    for piece in opts.split([':', ',']) {
        let piece = piece.trim();
        match piece.split_once('=') {
            Some((k, v)) => out.push((k.trim().to_string(), v.trim().to_string())),
            None => match out.last_mut() {
                Some((_, v)) if !piece.is_empty() => {
                    v.push(',');
                    v.push_str(piece);
                }
                _ => return Err(format!("{piece:?}: expected OPTION=VALUE")),
            },
        }
    }
    Ok(out)
}

/// A port before its GRE local IP is resolved against the underlays.
struct RawPort {
    name: String,
    ofport: Option<u32>,
    kind: &'static str,
    peer: Option<String>,
    remote_ip: Option<Ipv4Addr>,
    local_ip: Option<Ipv4Addr>,
    in_key: KeyMode,
    out_key: KeyMode,
    csum: bool,
    seq: bool,
    ttl: u8,
    tos: u8,
    vlan: Option<PortVlan>,
}

/// Parses one entry of a bridge's `ports`; errors name the bridge, the port and the option.
fn parse_port(bridge: &str, spec: &str) -> Result<RawPort, String> {
    let (name, opts) = spec.split_once(':').unwrap_or((spec, ""));
    let name = name.trim();
    if !valid_ifname(name) {
        return Err(format!("bridge {bridge}: port {name:?}: not a valid interface name"));
    }
    let err = |opt: &str, msg: String| format!("bridge {bridge}: port {name}: {opt}: {msg}");
    let mut p = RawPort {
        name: name.to_string(),
        ofport: None,
        kind: "afxdp",
        peer: None,
        remote_ip: None,
        local_ip: None,
        in_key: KeyMode::None,
        out_key: KeyMode::None,
        csum: false,
        seq: false,
        ttl: 64,
        tos: 0,
        vlan: None,
    };
    let mut kind = None;
    let mut vlan_opts = Vec::new();
    let pairs = if opts.is_empty() {
        Vec::new()
    } else {
        split_port_options(opts).map_err(|e| format!("bridge {bridge}: port {name}: {e}"))?
    };
    let mut gre_opt = None;
    for (k, v) in &pairs {
        let bad = |what: &str| err(k, format!("{v:?} is not {what}"));
        match k.as_str() {
            "tag" | "trunks" | "vlan_mode" => vlan_opts.push(format!("{k}={v}")),
            "type" => match v.as_str() {
                "afxdp" | "system" => kind = Some("afxdp"),
                "patch" => kind = Some("patch"),
                "gre" => kind = Some("gre"),
                "internal" => kind = Some("internal"),
                _ => return Err(err(k, format!("{v:?}: expected afxdp, internal, patch or gre"))),
            },
            "peer" => p.peer = Some(v.clone()),
            "ofport" => {
                let n = parse_u64(v).filter(|&n| n >= 1 && n < u64::from(OFPP_MAX));
                p.ofport = Some(n.ok_or_else(|| bad("a port number (1 to 0xfffffeff)"))? as u32);
            }
            "remote_ip" => p.remote_ip = Some(v.parse().map_err(|_| bad("an IPv4 address"))?),
            "local_ip" => p.local_ip = Some(v.parse().map_err(|_| bad("an IPv4 address"))?),
            "key" => {
                let key = parse_key(v).ok_or_else(|| bad("a 32-bit key or flow"))?;
                (p.in_key, p.out_key) = (key, key);
            }
            "in_key" => p.in_key = parse_key(v).ok_or_else(|| bad("a 32-bit key or flow"))?,
            "out_key" => p.out_key = parse_key(v).ok_or_else(|| bad("a 32-bit key or flow"))?,
            "csum" => p.csum = parse_bool(v).ok_or_else(|| bad("true or false"))?,
            "seq" => p.seq = parse_bool(v).ok_or_else(|| bad("true or false"))?,
            "ttl" => p.ttl = v.parse().ok().filter(|&t| t > 0).ok_or_else(|| bad("a TTL (1 to 255)"))?,
            "tos" => p.tos = v.parse().map_err(|_| bad("a TOS byte (0 to 255)"))?,
            _ => return Err(err(k, "unknown option".to_string())),
        }
        if matches!(
            k.as_str(),
            "remote_ip" | "local_ip" | "key" | "in_key" | "out_key" | "csum" | "seq" | "ttl" | "tos"
        ) {
            gre_opt.get_or_insert(k.clone());
        }
    }
    // A peer alone makes a patch port.
    p.kind = kind.unwrap_or(if p.peer.is_some() { "patch" } else { "afxdp" });
    match p.kind {
        "patch" if p.peer.is_none() => return Err(err("peer", "a patch port needs its peer".into())),
        "gre" if p.remote_ip.is_none() => {
            return Err(err("remote_ip", "a GRE port needs the remote tunnel endpoint".into()))
        }
        _ => {}
    }
    if p.kind != "patch" && p.peer.is_some() {
        return Err(err("peer", format!("only for patch ports (this one is {})", p.kind)));
    }
    if let Some(o) = gre_opt.filter(|_| p.kind != "gre") {
        return Err(err(&o, format!("only for GRE ports (this one is {})", p.kind)));
    }
    if !vlan_opts.is_empty() {
        let v = PortVlan::parse_options(vlan_opts.iter().map(String::as_str))
            .map_err(|e| format!("bridge {bridge}: port {name}: {e}"))?;
        p.vlan = Some(v);
    }
    Ok(p)
}

impl Config {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Config::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses and checks a configuration text.
    pub fn parse(text: &str) -> Result<Config, String> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            let msg = e.message().replace('\n', " ");
            match line {
                Some(l) => format!("line {l}: {msg}"),
                None => msg,
            }
        })?;
        if raw.bridge.is_empty() {
            return Err("no [[bridge]]: give at least one".into());
        }
        if let Some(m) = &raw.xdp_mode {
            if !matches!(m.as_str(), "auto" | "native" | "generic") {
                return Err(format!("xdp_mode {m:?}: expected auto, native or generic"));
            }
        }
        if raw.cores.is_some_and(|c| c == 0 || c > 64) {
            return Err("cores: 1 to 64".into());
        }
        // Every interface name is used once: bridges (their LOCAL ports), ports, underlays.
        let mut names: Vec<String> = Vec::new();
        let mut claim = |name: &str, what: String| -> Result<(), String> {
            if names.iter().any(|n| n == name) {
                return Err(format!("{what}: the name {name} is used twice"));
            }
            names.push(name.to_string());
            Ok(())
        };
        let mut underlays = Vec::new();
        for u in raw.underlay {
            let what = format!("underlay {}", u.port);
            if !valid_ifname(&u.port) {
                return Err(format!("{what}: not a valid interface name"));
            }
            claim(&u.port, what.clone())?;
            let (ip, prefix_len) =
                parse_cidr(&u.ip).ok_or_else(|| format!("{what}: ip {:?}: expected A.B.C.D/LEN", u.ip))?;
            let gateway = match &u.gateway {
                None => None,
                Some(g) => {
                    Some(g.parse().map_err(|_| format!("{what}: gateway {g:?}: not an IPv4 address"))?)
                }
            };
            if u.mtu.is_some_and(|m| m < 576) {
                return Err(format!("{what}: mtu {}: at least 576", u.mtu.unwrap_or(0)));
            }
            let uc = UnderlayConf { port: u.port, ip, prefix_len, gateway, mtu: u.mtu };
            if let Some(g) = uc.gateway.filter(|&g| !uc.on_link(g)) {
                return Err(format!("{what}: gateway {g}: not on {}/{}", uc.ip, uc.prefix_len));
            }
            if underlays.iter().any(|o: &UnderlayConf| o.ip == uc.ip) {
                return Err(format!("{what}: ip {}: already another underlay's", uc.ip));
            }
            underlays.push(uc);
        }
        let mut bridges = Vec::new();
        let mut raw_ports: Vec<Vec<RawPort>> = Vec::new();
        for b in raw.bridge {
            let what = format!("bridge {}", b.name);
            if !valid_ifname(&b.name) {
                return Err(format!(
                    "bridge {:?}: not a valid interface name (its LOCAL port takes it)",
                    b.name
                ));
            }
            claim(&b.name, what.clone())?;
            let mut ports = Vec::new();
            for spec in &b.ports {
                let p = parse_port(&b.name, spec)?;
                claim(&p.name, format!("bridge {}: port {}", b.name, p.name))?;
                ports.push(p);
            }
            let mut targets = Vec::new();
            for t in b.controller.map(OneOrMany::into_vec).unwrap_or_default() {
                match t.parse::<Target>() {
                    Ok(t) if t.is_active() => targets.push(t),
                    Ok(_) => {
                        return Err(format!(
                            "{what}: controller {t:?}: expected tcp:IP[:PORT] or ssl:IP[:PORT] (listen takes ptcp: and pssl:)"
                        ))
                    }
                    Err(e) => return Err(format!("{what}: controller: {e}")),
                }
            }
            for t in b.listen.map(OneOrMany::into_vec).unwrap_or_default() {
                match t.parse::<Target>() {
                    Ok(t) if !t.is_active() => targets.push(t),
                    Ok(_) => {
                        return Err(format!(
                            "{what}: listen {t:?}: expected ptcp:[PORT][:IP], pssl:[PORT][:IP] or punix:PATH"
                        ))
                    }
                    Err(e) => return Err(format!("{what}: listen: {e}")),
                }
            }
            let fail_mode = match b.fail_mode.as_deref() {
                None | Some("standalone") => FailMode::Standalone,
                Some("secure") => FailMode::Secure,
                Some(m) => return Err(format!("{what}: fail_mode {m:?}: expected secure or standalone")),
            };
            let datapath_id = match &b.datapath_id {
                None => None,
                Some(d) => {
                    Some(parse_u64(d).ok_or_else(|| format!("{what}: datapath_id {d:?}: not a number"))?)
                }
            };
            if b.mac_aging == Some(0) {
                return Err(format!("{what}: mac_aging: at least 1 second"));
            }
            if b.mac_table_size.is_some_and(|n| n == 0 || n > 1 << 20) {
                return Err(format!("{what}: mac_table_size: 1 to 1048576"));
            }
            if b.packet_in_rate == Some(0) {
                return Err(format!("{what}: packet_in_rate: at least 1"));
            }
            if b.max_flows.is_some_and(|n| n == 0 || n > u32::MAX as usize) {
                return Err(format!("{what}: max_flows: 1 to 4294967295"));
            }
            bridges.push(BridgeConf {
                name: b.name,
                ports: Vec::new(),
                targets,
                fail_mode,
                flows: b.flows,
                datapath_id,
                mac_aging: b.mac_aging.map(|s| Duration::from_secs(s.into())),
                mac_table_size: b.mac_table_size,
                packet_in_rate: b.packet_in_rate,
                max_flows: b.max_flows,
            });
            raw_ports.push(ports);
        }
        // OpenFlow numbers: position in the list unless `ofport` says otherwise.
        for (b, ports) in bridges.iter_mut().zip(&raw_ports) {
            let mut used: Vec<u32> = ports.iter().filter_map(|p| p.ofport).collect();
            let mut next = 1;
            for p in ports {
                let ofport = match p.ofport {
                    Some(n) => n,
                    None => {
                        while used.contains(&next) {
                            next += 1;
                        }
                        used.push(next);
                        next
                    }
                };
                if b.ports.iter().any(|q: &PortConfig| q.ofport == ofport) {
                    return Err(format!(
                        "bridge {}: port {}: ofport {ofport}: already taken",
                        b.name, p.name
                    ));
                }
                let kind = match p.kind {
                    "patch" => PortKind::Patch { peer: p.peer.clone().unwrap_or_default() },
                    "gre" => {
                        let remote_ip = p.remote_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
                        let local_ip =
                            resolve_local_ip(&underlays, remote_ip, p.local_ip, "[[underlay]] port and ip")
                                .map_err(|e| format!("bridge {}: port {}: local_ip: {e}", b.name, p.name))?;
                        PortKind::Gre(TunnelConfig {
                            remote_ip,
                            local_ip,
                            in_key: p.in_key,
                            out_key: p.out_key,
                            csum: p.csum,
                            seq: p.seq,
                            ttl: p.ttl,
                            tos: p.tos,
                        })
                    }
                    "internal" => PortKind::Internal,
                    _ => PortKind::Afxdp,
                };
                b.ports.push(PortConfig { name: p.name.clone(), ofport, kind, vlan: p.vlan.clone() });
            }
        }
        check_patches(&bridges)?;
        check_tunnels(&bridges)?;
        Ok(Config {
            cores: raw.cores,
            ctl: raw.ctl,
            xdp_mode: raw.xdp_mode,
            offload: raw.offload,
            pmd_cpus: raw.pmd_cpus.unwrap_or_default(),
            log: raw.log,
            bridges,
            underlays,
            ssl: raw.ssl.map(|s| TlsFiles {
                private_key: s.private_key,
                certificate: s.certificate,
                ca_cert: s.ca_cert,
            }),
        })
    }

    /// Datapath port numbers: every bridge's ports in order from 1, then the LOCAL ports of
    /// the bridges after the first (the first bridge's is [`DpPortNo::LOCAL`]), then the
    /// underlays. Returns `(bridge ports by bridge, LOCAL by bridge, underlays)`.
    pub fn datapath_numbers(&self) -> (Vec<Vec<DpPortNo>>, Vec<DpPortNo>, Vec<DpPortNo>) {
        let mut next = 1;
        let mut take = || {
            let n = DpPortNo(next);
            next += 1;
            n
        };
        let ports: Vec<Vec<DpPortNo>> =
            self.bridges.iter().map(|b| b.ports.iter().map(|_| take()).collect()).collect();
        let locals = (0..self.bridges.len()).map(|i| if i == 0 { DpPortNo::LOCAL } else { take() }).collect();
        let underlays = self.underlays.iter().map(|_| take()).collect();
        (ports, locals, underlays)
    }

    /// The bridge index and the index in its `ports` of the port named `name`.
    pub fn find_port(&self, name: &str) -> Option<(usize, usize)> {
        self.bridges
            .iter()
            .enumerate()
            .find_map(|(i, b)| b.ports.iter().position(|p| p.name == name).map(|j| (i, j)))
    }
}

/// The underlay IP a tunnel to `remote` starts from: the one given (which must be an
/// underlay's), else the underlay whose subnet holds `remote`, else the only underlay.
/// `source` says where underlays are configured, for the errors (`[[underlay]]` here, the
/// database's `other_config` key under `run --ovsdb`).
pub(crate) fn resolve_local_ip(
    underlays: &[UnderlayConf],
    remote: Ipv4Addr,
    given: Option<Ipv4Addr>,
    source: &str,
) -> Result<Ipv4Addr, String> {
    if let Some(ip) = given {
        return if underlays.iter().any(|u| u.ip == ip) {
            Ok(ip)
        } else {
            Err(format!("{ip} is no underlay's ip ({source})"))
        };
    }
    if let Some(u) = underlays.iter().find(|u| u.on_link(remote)) {
        return Ok(u.ip);
    }
    match underlays {
        [] => Err(format!("a GRE port needs an underlay to send from ({source})")),
        [u] => Ok(u.ip),
        _ => Err(format!("no underlay subnet holds {remote}: give local_ip ({source})")),
    }
}

/// Each patch port's peer exists, is a patch port on another bridge, and points back.
fn check_patches(bridges: &[BridgeConf]) -> Result<(), String> {
    for (i, b) in bridges.iter().enumerate() {
        for p in &b.ports {
            let PortKind::Patch { peer } = &p.kind else { continue };
            let err = |msg: String| format!("bridge {}: port {}: peer {peer}: {msg}", b.name, p.name);
            let found = bridges
                .iter()
                .enumerate()
                .find_map(|(j, c)| c.ports.iter().find(|q| &q.name == peer).map(|q| (j, c, q)));
            let Some((j, c, q)) = found else { return Err(err("no such port".into())) };
            if j == i {
                return Err(err(format!("on the same bridge {}: a patch joins two bridges", b.name)));
            }
            match &q.kind {
                PortKind::Patch { peer: back } if back == &p.name => {}
                PortKind::Patch { peer: back } => {
                    return Err(err(format!("its peer is {back}, not {} (bridge {})", p.name, c.name)))
                }
                _ => return Err(err(format!("not a patch port (bridge {})", c.name))),
            }
        }
    }
    Ok(())
}

/// No two GRE ports can claim the same packets: (local, remote, in_key) differ.
fn check_tunnels(bridges: &[BridgeConf]) -> Result<(), String> {
    let mut seen: Vec<(&str, &str, Ipv4Addr, Ipv4Addr, KeyMode)> = Vec::new();
    for b in bridges {
        for p in &b.ports {
            let PortKind::Gre(g) = &p.kind else { continue };
            if let Some((ob, op, ..)) =
                seen.iter().find(|(_, _, l, r, k)| *l == g.local_ip && *r == g.remote_ip && *k == g.in_key)
            {
                return Err(format!(
                    "bridge {}: port {}: same remote_ip {}, local_ip and key as port {op} (bridge {ob})",
                    b.name, p.name, g.remote_ip
                ));
            }
            seen.push((&b.name, &p.name, g.local_ip, g.remote_ip, g.in_key));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST1: &str = r#"
cores = 2
[[bridge]]
name = "br-int"
ports = ["tap-vm1:tag=1", "tap-vm2:tag=2", "patch-tun:peer=patch-int"]
[[bridge]]
name = "br-tun"
ports = ["patch-int:peer=patch-tun", "gre-h2:type=gre,remote_ip=192.0.2.2,key=flow", "gre-h3:type=gre:remote_ip=192.0.2.3:in_key=5,out_key=0x10:csum=true:ofport=10"]
controller = "tcp:127.0.0.1:6653"
listen = ["ptcp:6634"]
fail_mode = "secure"
datapath_id = "0x64"
[[underlay]]
port = "eth1"
ip = "192.0.2.1/24"
gateway = "192.0.2.254"
"#;

    #[test]
    fn parses_the_issue_example() {
        let c = Config::parse(HOST1).unwrap();
        assert_eq!(c.cores, Some(2));
        assert_eq!(c.bridges.len(), 2);
        let int = &c.bridges[0];
        assert_eq!(int.fail_mode, FailMode::Standalone);
        assert_eq!(int.ports.iter().map(|p| p.ofport).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(int.ports[0].vlan, Some(PortVlan::parse_options(["tag=1"]).unwrap()));
        assert_eq!(int.ports[2].kind, PortKind::Patch { peer: "patch-int".into() });
        let tun = &c.bridges[1];
        assert_eq!((tun.fail_mode, tun.datapath_id, tun.targets.len()), (FailMode::Secure, Some(0x64), 2));
        let PortKind::Gre(g) = &tun.ports[1].kind else { panic!("{:?}", tun.ports[1]) };
        assert_eq!((g.remote_ip, g.local_ip), ("192.0.2.2".parse().unwrap(), "192.0.2.1".parse().unwrap()));
        assert_eq!((g.in_key, g.out_key, g.csum, g.ttl), (KeyMode::Flow, KeyMode::Flow, false, 64));
        let PortKind::Gre(g3) = &tun.ports[2].kind else { panic!() };
        assert_eq!(
            (g3.in_key, g3.out_key, g3.csum, tun.ports[2].ofport),
            (KeyMode::Fixed(5), KeyMode::Fixed(16), true, 10)
        );
        assert_eq!(
            tun.ports[2].note().unwrap(),
            "remote_ip=192.0.2.3,local_ip=192.0.2.1,in_key=5,out_key=16,csum=true"
        );
        assert_eq!(c.underlays[0].gateway, Some("192.0.2.254".parse().unwrap()));
        let (ports, locals, underlays) = c.datapath_numbers();
        assert_eq!(
            ports,
            [vec![DpPortNo(1), DpPortNo(2), DpPortNo(3)], vec![DpPortNo(4), DpPortNo(5), DpPortNo(6)]]
        );
        assert_eq!(locals, [DpPortNo::LOCAL, DpPortNo(7)]);
        assert_eq!(underlays, [DpPortNo(8)]);
        assert_eq!(c.find_port("gre-h2").map(|(b, j)| (b, c.bridges[b].ports[j].ofport)), Some((1, 2)));
    }

    #[test]
    fn port_options_split_on_colons_and_commas_with_value_lists() {
        let v = split_port_options("trunks=6,7,tag=5:vlan_mode=native-untagged").unwrap();
        let want = [("trunks", "6,7"), ("tag", "5"), ("vlan_mode", "native-untagged")];
        assert_eq!(v, want.map(|(k, v)| (k.to_string(), v.to_string())));
        assert!(split_port_options(",x").is_err());
        let c = Config::parse("[[bridge]]\nname=\"b\"\nports=[\"e1:trunks=6,7,tag=5,vlan_mode=native-untagged\", \"e2:ofport=1\"]").unwrap();
        // ofport=1 is taken by e2, so e1 gets the next free number.
        assert_eq!(c.bridges[0].ports.iter().map(|p| p.ofport).collect::<Vec<_>>(), [2, 1]);
        assert!(c.bridges[0].ports[0].vlan.is_some());
        let c = Config::parse("[[bridge]]\nname=\"b\"\nports=[\"vm-tap:type=internal:tag=3\"]").unwrap();
        assert_eq!(
            (&c.bridges[0].ports[0].kind, c.bridges[0].ports[0].kind.type_name()),
            (&PortKind::Internal, "internal")
        );
    }

    fn err(text: &str) -> String {
        Config::parse(text).unwrap_err()
    }

    #[test]
    fn errors_name_the_bridge_port_and_option() {
        let b = |ports: &str| format!("[[bridge]]\nname = \"br0\"\nports = [{ports}]\n");
        assert_eq!(err(&b("\"e1:tag=x\"")), "bridge br0: port e1: tag=x: \"x\" is not a VLAN ID (0 to 4095)");
        assert_eq!(err(&b("\"e1:colour=red\"")), "bridge br0: port e1: colour: unknown option");
        assert_eq!(
            err(&b("\"e1:type=vxlan\"")),
            "bridge br0: port e1: type: \"vxlan\": expected afxdp, internal, patch or gre"
        );
        assert_eq!(
            err(&b("\"e1:remote_ip=1.2.3.4\"")),
            "bridge br0: port e1: remote_ip: only for GRE ports (this one is afxdp)"
        );
        assert_eq!(
            err(&b("\"g:type=gre\"")),
            "bridge br0: port g: remote_ip: a GRE port needs the remote tunnel endpoint"
        );
        assert_eq!(
            err(&b("\"g:type=gre,remote_ip=1.2.3.4,key=x\"")),
            "bridge br0: port g: key: \"x\" is not a 32-bit key or flow"
        );
        assert_eq!(
            err(&b("\"g:type=gre,remote_ip=1.2.3.4\"")),
            "bridge br0: port g: local_ip: a GRE port needs an underlay to send from ([[underlay]] port and ip)"
        );
        assert_eq!(err(&b("\"e1\", \"e1\"")), "bridge br0: port e1: the name e1 is used twice");
        assert_eq!(err(&b("\"br0\"")), "bridge br0: port br0: the name br0 is used twice");
        assert_eq!(
            err(&b("\"e1:ofport=2\", \"e2:ofport=2\"")),
            "bridge br0: port e2: ofport 2: already taken"
        );
        assert_eq!(err("[[bridge]]\nname = \"b\"\ncolour = 1\n").split(':').next(), Some("line 3"));
        assert_eq!(err("cores = 2\n"), "no [[bridge]]: give at least one");
        assert_eq!(
            err("[[bridge]]\nname = \"b\"\ncontroller = \"ptcp:1\"\n"),
            "bridge b: controller \"ptcp:1\": expected tcp:IP[:PORT] or ssl:IP[:PORT] (listen takes ptcp: and pssl:)"
        );
        assert_eq!(
            err("[[bridge]]\nname = \"b\"\nfail_mode = \"open\"\n"),
            "bridge b: fail_mode \"open\": expected secure or standalone"
        );
        assert_eq!(
            err("[[bridge]]\nname = \"b\"\n[[underlay]]\nport = \"u\"\nip = \"10.0.0.1/24\"\ngateway = \"10.1.0.1\"\n"),
            "underlay u: gateway 10.1.0.1: not on 10.0.0.1/24"
        );
    }

    #[test]
    fn max_flows_per_bridge() {
        let c =
            Config::parse("[[bridge]]\nname = \"a\"\nmax_flows = 500\n[[bridge]]\nname = \"b\"\n").unwrap();
        assert_eq!((c.bridges[0].max_flows, c.bridges[1].max_flows), (Some(500), None));
        assert_eq!(err("[[bridge]]\nname = \"b\"\nmax_flows = 0\n"), "bridge b: max_flows: 1 to 4294967295");
    }

    #[test]
    fn ssl_table_and_tls_targets() {
        let text = "[ssl]\nprivate_key = \"/k.pem\"\ncertificate = \"/c.pem\"\nca_cert = \"/ca.pem\"\n\
                    [[bridge]]\nname = \"b\"\ncontroller = [\"ssl:192.0.2.1\", \"tcp:192.0.2.2:6633\"]\n\
                    listen = [\"pssl:6634\", \"ptcp:6635\"]\n";
        let c = Config::parse(text).unwrap();
        assert_eq!(
            c.ssl,
            Some(TlsFiles {
                private_key: "/k.pem".into(),
                certificate: "/c.pem".into(),
                ca_cert: "/ca.pem".into()
            })
        );
        let targets: Vec<String> = c.bridges[0].targets.iter().map(|t| t.to_string()).collect();
        assert_eq!(
            targets,
            ["ssl:192.0.2.1:6653", "tcp:192.0.2.2:6633", "pssl:6634:127.0.0.1", "ptcp:6635:127.0.0.1"]
        );
        assert_eq!(Config::parse("[[bridge]]\nname = \"b\"\n").unwrap().ssl, None);
        let e = Config::parse("[ssl]\nprivate_key = \"/k.pem\"\n[[bridge]]\nname = \"b\"\n").unwrap_err();
        assert!(e.starts_with("line 1: ") && e.contains("certificate"), "{e}");
        let e = Config::parse("[[bridge]]\nname = \"b\"\nlisten = \"ssl:1.2.3.4\"\n").unwrap_err();
        assert_eq!(
            e,
            "bridge b: listen \"ssl:1.2.3.4\": expected ptcp:[PORT][:IP], pssl:[PORT][:IP] or punix:PATH"
        );
    }

    #[test]
    fn patch_peers_are_checked() {
        let two = |a: &str, b: &str| {
            format!("[[bridge]]\nname = \"b1\"\nports = [{a}]\n[[bridge]]\nname = \"b2\"\nports = [{b}]\n")
        };
        assert!(Config::parse(&two("\"p1:peer=p2\"", "\"p2:peer=p1\"")).is_ok());
        assert_eq!(
            err(&two("\"p1:peer=px\"", "\"p2:peer=p1\"")),
            "bridge b1: port p1: peer px: no such port"
        );
        assert_eq!(
            err(&two("\"p1:peer=p2\"", "\"p2:peer=p3\", \"p3:peer=p2\"")),
            "bridge b1: port p1: peer p2: its peer is p3, not p1 (bridge b2)"
        );
        assert_eq!(
            err(&two("\"p1:peer=p2\"", "\"p2\"")),
            "bridge b1: port p1: peer p2: not a patch port (bridge b2)"
        );
        assert_eq!(
            err(&two("\"p1:peer=q1\", \"q1:peer=p1\"", "\"e\"")),
            "bridge b1: port p1: peer q1: on the same bridge b1: a patch joins two bridges"
        );
        assert_eq!(
            err(&two("\"p1:type=patch\"", "\"e\"")),
            "bridge b1: port p1: peer: a patch port needs its peer"
        );
    }

    #[test]
    fn tunnels_find_their_underlay() {
        let cfg = |ports: &str| {
            format!(
                "[[bridge]]\nname = \"b\"\nports = [{ports}]\n[[underlay]]\nport = \"u1\"\nip = \"10.0.0.1/24\"\n[[underlay]]\nport = \"u2\"\nip = \"10.9.0.1/16\"\n"
            )
        };
        let c = Config::parse(&cfg("\"g1:type=gre,remote_ip=10.9.3.3\", \"g2:type=gre,remote_ip=10.0.0.7\""))
            .unwrap();
        let local = |i: usize| match &c.bridges[0].ports[i].kind {
            PortKind::Gre(g) => g.local_ip,
            k => panic!("{k:?}"),
        };
        assert_eq!((local(0), local(1)), ("10.9.0.1".parse().unwrap(), "10.0.0.1".parse().unwrap()));
        assert_eq!(
            err(&cfg("\"g:type=gre,remote_ip=172.16.0.1\"")),
            "bridge b: port g: local_ip: no underlay subnet holds 172.16.0.1: give local_ip ([[underlay]] port and ip)"
        );
        assert_eq!(
            err(&cfg("\"g:type=gre,remote_ip=172.16.0.1,local_ip=10.0.0.2\"")),
            "bridge b: port g: local_ip: 10.0.0.2 is no underlay's ip ([[underlay]] port and ip)"
        );
        assert!(Config::parse(&cfg("\"g:type=gre,remote_ip=172.16.0.1,local_ip=10.0.0.1\"")).is_ok());
        assert_eq!(
            err(&cfg("\"g1:type=gre,remote_ip=10.0.0.7\", \"g2:type=gre,remote_ip=10.0.0.7\"")),
            "bridge b: port g2: same remote_ip 10.0.0.7, local_ip and key as port g1 (bridge b)"
        );
        assert!(Config::parse(&cfg(
            "\"g1:type=gre,remote_ip=10.0.0.7,key=1\", \"g2:type=gre,remote_ip=10.0.0.7,key=2\""
        ))
        .is_ok());
        assert_eq!(err(&cfg("\"u1\"")), "bridge b: port u1: the name u1 is used twice");
    }
}
