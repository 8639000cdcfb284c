//! The replica of the Open vSwitch database → the switch's [`Config`], as `ovs-vswitchd`
//! reads it, plus what goes back: every interface's row, its OpenFlow number or why it is
//! not in the switch.
//!
//! - Bridges (`Open_vSwitch.bridges`, by name): `datapath_type` empty, `system` or `netdev`
//!   all run on our datapath; `fail_mode`; `other_config:datapath-id` (16 hex digits),
//!   `mac-aging-time`, `mac-table-size`; controllers from `Controller.target`.
//! - Ports: `tag`, `trunks`, `vlan_mode`; a port with several interfaces (a bond) is not
//!   supported. The interface named as its bridge is the bridge's LOCAL port (65534).
//! - Interfaces: type empty, `system`, `afxdp` → AF_XDP; `internal` → a tap; `patch` with
//!   `options:peer`; `gre` with `options:remote_ip,local_ip,key,in_key,out_key,csum,ttl,tos`.
//!   Anything else is an error on that interface only.
//! - OpenFlow numbers as OVS assigns them: `ofport_request`, else the `ofport` the database
//!   already records (numbers survive restarts), else the lowest free number.
//! - `Open_vSwitch.other_config:pmd-cpu-mask` → poll-thread CPUs; the `SSL` row → TLS files.
//! - GRE underlays, which OVS keeps outside the database (kernel routes), come from
//!   `Open_vSwitch.other_config:xdpswitch-underlays`: `IFACE=IP/LEN[@GATEWAY]`, `;`-separated,
//!   e.g. `eth1=192.0.2.1/24@192.0.2.254`.

use std::collections::{BTreeMap, HashSet};
use std::net::Ipv4Addr;
use std::time::Duration;

use crate::agent::{Target, TlsFiles};
use crate::config::{
    parse_bool, parse_cidr, parse_key, resolve_local_ip, valid_ifname, BridgeConf, Config, PortConfig,
    PortKind, UnderlayConf,
};
use crate::datapath::normal::{PortVlan, VlanMode};
use crate::datapath::tunnel::{KeyMode, TunnelConfig};
use crate::ofproto::connmgr::FailMode;
use crate::ovsdb::{Datum, Replica, Row, Uuid};

/// The OpenFlow number OVS reports for a bridge's LOCAL port.
pub const OFPP_LOCAL: u32 = 65534;
/// The highest `ofport_request` the schema allows.
const OFPORT_REQUEST_MAX: i64 = 65279;

/// One interface of a bridge, as it goes back into its row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IfaceRef {
    pub uuid: Uuid,
    pub bridge: String,
    pub name: String,
    /// The bridge's own interface (its LOCAL port).
    pub local: bool,
    /// Why it is not in the configuration (then its `ofport` is -1), or `None`.
    pub error: Option<String>,
}

/// One controller row of a bridge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControllerRef {
    pub uuid: Uuid,
    pub bridge: String,
    /// The target as written in the row.
    pub target: String,
}

/// What the database asks for.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    pub config: Config,
    /// Every interface of every bridge, whether or not it made it into `config`.
    pub interfaces: Vec<IfaceRef>,
    pub bridges: Vec<(Uuid, String)>,
    pub controllers: Vec<ControllerRef>,
    /// Problems that belong to no interface (a bad controller target, a bad `other_config`
    /// value, an unusable underlay): logged.
    pub warnings: Vec<String>,
}

impl Model {
    /// The interface row named `name`.
    pub fn interface(&self, name: &str) -> Option<&IfaceRef> {
        self.interfaces.iter().find(|i| i.name == name)
    }
}

fn col<'a>(row: &'a Row, c: &str) -> Option<&'a Datum> {
    row.get(c)
}

fn col_str<'a>(row: &'a Row, c: &str) -> &'a str {
    col(row, c).and_then(Datum::as_str).unwrap_or("")
}

fn map_str<'a>(row: &'a Row, c: &str, key: &str) -> Option<&'a str> {
    col(row, c).and_then(|d| d.get_str(key))
}

/// `IFACE=IP/LEN[@GATEWAY]` entries, `;`-separated.
pub fn parse_underlays(text: &str) -> (Vec<UnderlayConf>, Vec<String>) {
    let (mut out, mut warnings) = (Vec::<UnderlayConf>::new(), Vec::new());
    for item in text.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        let parsed = (|| {
            let (port, rest) = item.split_once('=')?;
            let (cidr, gw) = match rest.split_once('@') {
                Some((c, g)) => (c, Some(g.trim().parse::<Ipv4Addr>().ok()?)),
                None => (rest, None),
            };
            let (ip, prefix_len) = parse_cidr(cidr.trim())?;
            let u = UnderlayConf { port: port.trim().to_string(), ip, prefix_len, gateway: gw, mtu: None };
            (valid_ifname(&u.port) && u.gateway.is_none_or(|g| u.on_link(g))).then_some(u)
        })();
        match parsed {
            Some(u) if out.iter().any(|o| o.port == u.port || o.ip == u.ip) => {
                warnings.push(format!("xdpswitch-underlays: {item:?}: port or IP given twice"))
            }
            Some(u) => out.push(u),
            None => warnings.push(format!(
                "xdpswitch-underlays: {item:?}: expected IFACE=IP/LEN[@GATEWAY] (gateway on the subnet)"
            )),
        }
    }
    (out, warnings)
}

/// `pmd-cpu-mask` (hex, with or without `0x`) → the CPUs it names.
pub fn parse_cpu_mask(s: &str) -> Option<Vec<usize>> {
    let h = s.trim().trim_start_matches("0x").trim_start_matches("0X");
    if h.is_empty() || h.len() > 32 {
        return None;
    }
    let m = u128::from_str_radix(h, 16).ok()?;
    Some((0..128).filter(|i| m >> i & 1 == 1).collect())
}

/// An interface's kind from its `type` and `options`, or why it cannot be.
fn iface_kind(row: &Row, underlays: &[UnderlayConf], warnings: &mut Vec<String>) -> Result<PortKind, String> {
    let name = col_str(row, "name");
    let ty = col_str(row, "type");
    let opts: Vec<(String, String)> = match col(row, "options") {
        Some(Datum::Map(m)) => {
            m.iter().filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_str()?.to_string()))).collect()
        }
        _ => Vec::new(),
    };
    let opt = |k: &str| opts.iter().find(|(o, _)| o == k).map(|(_, v)| v.as_str());
    let mut unknown = |known: &[&str]| {
        for (k, _) in &opts {
            if !known.contains(&k.as_str()) {
                warnings.push(format!("interface {name}: options:{k} is not supported (ignored)"));
            }
        }
    };
    match ty {
        "" | "system" | "afxdp" | "afxdp-nonpmd" => {
            unknown(&["n_rxq", "xdp-mode", "use-need-wakeup"]);
            Ok(PortKind::Afxdp)
        }
        "internal" => {
            unknown(&[]);
            Ok(PortKind::Internal)
        }
        "patch" => {
            unknown(&["peer"]);
            match opt("peer") {
                Some(p) if valid_ifname(p) => Ok(PortKind::Patch { peer: p.to_string() }),
                Some(p) => Err(format!("options:peer {p:?} is not an interface name")),
                None => Err("a patch interface needs options:peer".into()),
            }
        }
        "gre" => {
            unknown(&["remote_ip", "local_ip", "key", "in_key", "out_key", "csum", "seq", "ttl", "tos"]);
            let ip = |k: &str| -> Result<Option<Ipv4Addr>, String> {
                opt(k)
                    .map(|v| {
                        v.parse()
                            .map_err(|_| format!("options:{k} {v:?}: only a fixed IPv4 address is supported"))
                    })
                    .transpose()
            };
            let remote_ip = ip("remote_ip")?.ok_or("a GRE interface needs options:remote_ip")?;
            let local_ip = resolve_local_ip(
                underlays,
                remote_ip,
                ip("local_ip")?,
                "Open_vSwitch other_config:xdpswitch-underlays",
            )?;
            let key = |k: &str, dflt: KeyMode| -> Result<KeyMode, String> {
                opt(k).map_or(Ok(dflt), |v| {
                    parse_key(v).ok_or(format!("options:{k} {v:?}: a 32-bit key or flow"))
                })
            };
            let both = key("key", KeyMode::None)?;
            let boolean = |k: &str| -> Result<bool, String> {
                opt(k).map_or(Ok(false), |v| parse_bool(v).ok_or(format!("options:{k} {v:?}: true or false")))
            };
            let ttl = match opt("ttl") {
                None => 64,
                Some(v) => v.parse().ok().filter(|&t| t > 0).ok_or(format!("options:ttl {v:?}: 1 to 255"))?,
            };
            let tos = match opt("tos") {
                None => 0,
                Some(v) => v
                    .parse()
                    .map_err(|_| format!("options:tos {v:?}: 0 to 255 (inherit is not supported)"))?,
            };
            Ok(PortKind::Gre(TunnelConfig {
                remote_ip,
                local_ip,
                in_key: key("in_key", both)?,
                out_key: key("out_key", both)?,
                csum: boolean("csum")?,
                seq: boolean("seq")?,
                ttl,
                tos,
            }))
        }
        other => Err(format!(
            "could not add network device {name}: type {other:?} is not supported \
             (xdpswitch supports system, afxdp, internal, patch and gre)"
        )),
    }
}

/// The VLAN configuration of a Port row, `None` when it has none.
fn port_vlan(row: &Row) -> Result<Option<PortVlan>, String> {
    let tag = match col(row, "tag").and_then(Datum::as_int) {
        Some(t) => Some(u16::try_from(t).map_err(|_| format!("tag {t}: a VLAN ID is 0 to 4095"))?),
        None => None,
    };
    let mut trunks = Vec::new();
    for a in col(row, "trunks").map(Datum::atoms).unwrap_or_default() {
        let t = a
            .as_int()
            .and_then(|t| u16::try_from(t).ok())
            .ok_or(format!("trunks: {a:?} is not a VLAN ID"))?;
        trunks.push(t);
    }
    let mode = match col(row, "vlan_mode").and_then(Datum::as_str) {
        Some(m) => Some(m.parse::<VlanMode>().map_err(|e| format!("vlan_mode: {e}"))?),
        None => None,
    };
    if tag.is_none() && trunks.is_empty() && mode.is_none() {
        return Ok(None);
    }
    PortVlan::new(mode, tag, &trunks).map(Some)
}

/// A port of a bridge before numbering.
struct Candidate {
    port: PortConfig,
    iface: usize,
    request: Option<u32>,
    recorded: Option<u32>,
}

/// A configuration with no bridges and every switch-wide option at its default: the `base`
/// of [`build`] when the command line gives nothing.
pub fn empty_config() -> Config {
    Config {
        cores: None,
        ctl: None,
        xdp_mode: None,
        offload: None,
        pmd_cpus: Vec::new(),
        log: None,
        bridges: Vec::new(),
        underlays: Vec::new(),
        ssl: None,
    }
}

/// Builds the model. `base` gives what the database does not hold (`ctl`, `xdp_mode`,
/// `offload`, `log`, default `cores`); its bridges, underlays and ssl are replaced.
pub fn build(replica: &Replica, base: &Config) -> Model {
    let mut config = Config { bridges: Vec::new(), underlays: Vec::new(), ssl: None, ..base.clone() };
    let mut m = Model {
        config: Config { bridges: Vec::new(), ..config.clone() },
        interfaces: Vec::new(),
        bridges: Vec::new(),
        controllers: Vec::new(),
        warnings: Vec::new(),
    };
    let Some((_, ovs)) = replica.table("Open_vSwitch").next() else {
        m.config = config;
        return m;
    };
    // The switch as a whole.
    if let Some(mask) = map_str(ovs, "other_config", "pmd-cpu-mask") {
        match parse_cpu_mask(mask) {
            Some(cpus) if !cpus.is_empty() => {
                config.cores = Some(cpus.len());
                config.pmd_cpus = cpus;
            }
            _ => m.warnings.push(format!("other_config:pmd-cpu-mask {mask:?}: not a hex CPU mask")),
        }
    }
    if let Some(text) = map_str(ovs, "other_config", "xdpswitch-underlays") {
        let (u, w) = parse_underlays(text);
        config.underlays = u;
        m.warnings.extend(w);
    }
    if let Some(ssl) = col(ovs, "ssl").and_then(|d| d.uuids().next()).and_then(|u| replica.row("SSL", u)) {
        let f = |c: &str| Some(col_str(ssl, c)).filter(|s| !s.is_empty()).map(Into::into);
        match (f("private_key"), f("certificate"), f("ca_cert")) {
            (Some(private_key), Some(certificate), Some(ca_cert)) => {
                config.ssl = Some(TlsFiles { private_key, certificate, ca_cert })
            }
            _ => m.warnings.push("SSL: private_key, certificate and ca_cert are all needed".into()),
        }
    }
    // Bridges, by name so the order is stable.
    let mut bridge_rows: Vec<(Uuid, &Row)> = col(ovs, "bridges")
        .map(|d| d.uuids().filter_map(|u| replica.row("Bridge", u).map(|r| (u, r))).collect())
        .unwrap_or_default();
    bridge_rows.sort_by(|a, b| col_str(a.1, "name").cmp(col_str(b.1, "name")));
    let mut claimed: HashSet<String> =
        bridge_rows.iter().map(|(_, r)| col_str(r, "name").to_string()).collect();
    let mut candidates: Vec<Vec<Candidate>> = Vec::new();
    for (buuid, brow) in bridge_rows {
        let bname = col_str(brow, "name").to_string();
        m.bridges.push((buuid, bname.clone()));
        let mut bridge_error = None;
        if !valid_ifname(&bname) {
            bridge_error =
                Some(format!("bridge {bname:?}: not a valid interface name (its LOCAL port takes it)"));
        }
        let dpt = col_str(brow, "datapath_type");
        if !matches!(dpt, "" | "system" | "netdev") {
            bridge_error =
                Some(format!("bridge {bname}: datapath_type {dpt:?} is not supported (netdev or system)"));
        }
        let mut bc = BridgeConf {
            name: bname.clone(),
            ports: Vec::new(),
            targets: Vec::new(),
            fail_mode: match col_str(brow, "fail_mode") {
                "secure" => FailMode::Secure,
                _ => FailMode::Standalone,
            },
            flows: None,
            datapath_id: None,
            mac_aging: None,
            mac_table_size: None,
            packet_in_rate: None,
            max_flows: None,
        };
        if let Some(d) = map_str(brow, "other_config", "datapath-id") {
            match u64::from_str_radix(d, 16).ok().filter(|_| d.len() == 16) {
                Some(n) => bc.datapath_id = Some(n),
                None => {
                    m.warnings.push(format!("bridge {bname}: other_config:datapath-id {d:?}: 16 hex digits"))
                }
            }
        }
        if let Some(v) = map_str(brow, "other_config", "mac-aging-time") {
            match v.parse::<u64>().ok().filter(|&s| s > 0) {
                Some(s) => bc.mac_aging = Some(Duration::from_secs(s)),
                None => {
                    m.warnings.push(format!("bridge {bname}: other_config:mac-aging-time {v:?}: seconds"))
                }
            }
        }
        if let Some(v) = map_str(brow, "other_config", "mac-table-size") {
            match v.parse::<usize>().ok().filter(|&n| n > 0 && n <= 1 << 20) {
                Some(n) => bc.mac_table_size = Some(n),
                None => m
                    .warnings
                    .push(format!("bridge {bname}: other_config:mac-table-size {v:?}: 1 to 1048576")),
            }
        }
        let mut ctrls: Vec<(Uuid, &Row)> = col(brow, "controller")
            .map(|d| d.uuids().filter_map(|u| replica.row("Controller", u).map(|r| (u, r))).collect())
            .unwrap_or_default();
        ctrls.sort_by(|a, b| col_str(a.1, "target").cmp(col_str(b.1, "target")));
        for (cu, crow) in ctrls {
            let target = col_str(crow, "target").to_string();
            m.controllers.push(ControllerRef { uuid: cu, bridge: bname.clone(), target: target.clone() });
            match target.parse::<Target>() {
                Ok(t) => bc.targets.push(t),
                Err(e) => {
                    m.warnings.push(format!("bridge {bname}: controller {target:?} is not supported: {e:#}"))
                }
            }
        }
        // Ports, by name.
        let mut port_rows: Vec<&Row> = col(brow, "ports")
            .map(|d| d.uuids().filter_map(|u| replica.row("Port", u)).collect())
            .unwrap_or_default();
        port_rows.sort_by(|a, b| col_str(a, "name").cmp(col_str(b, "name")));
        let mut cands = Vec::new();
        for prow in port_rows {
            let ifaces: Vec<(Uuid, &Row)> = col(prow, "interfaces")
                .map(|d| d.uuids().filter_map(|u| replica.row("Interface", u).map(|r| (u, r))).collect())
                .unwrap_or_default();
            let bond = ifaces.len() > 1;
            let vlan = port_vlan(prow);
            for (iu, irow) in ifaces {
                let iname = col_str(irow, "name").to_string();
                let local = iname == bname;
                let mut r =
                    IfaceRef { uuid: iu, bridge: bname.clone(), name: iname.clone(), local, error: None };
                let error = if let Some(e) = &bridge_error {
                    Some(e.clone())
                } else if bond {
                    Some(format!(
                        "port {}: bonds (several interfaces in a port) are not supported",
                        col_str(prow, "name")
                    ))
                } else if local {
                    None
                } else if !valid_ifname(&iname) {
                    Some(format!("{iname:?} is not a valid interface name"))
                } else if !claimed.insert(iname.clone()) {
                    Some(format!("the name {iname} is already in use (another bridge or interface)"))
                } else {
                    match (iface_kind(irow, &config.underlays, &mut m.warnings), &vlan) {
                        (Err(e), _) => Some(e),
                        (_, Err(e)) => Some(format!("port {}: {e}", col_str(prow, "name"))),
                        (Ok(kind), Ok(vlan)) => {
                            let int = |c: &str| col(irow, c).and_then(Datum::as_int);
                            cands.push(Candidate {
                                port: PortConfig { name: iname.clone(), ofport: 0, kind, vlan: vlan.clone() },
                                iface: m.interfaces.len(),
                                request: int("ofport_request")
                                    .filter(|&n| (1..=OFPORT_REQUEST_MAX).contains(&n))
                                    .map(|n| n as u32),
                                recorded: int("ofport")
                                    .filter(|&n| (1..=OFPORT_REQUEST_MAX).contains(&n))
                                    .map(|n| n as u32),
                            });
                            None
                        }
                    }
                };
                r.error = error;
                m.interfaces.push(r);
            }
        }
        match bridge_error {
            Some(e) => m.warnings.push(e),
            None => {
                config.bridges.push(bc);
                candidates.push(cands);
            }
        }
    }
    // Drop the ports whose checks need every bridge: patch peers and tunnel identities.
    check_cross_bridge(&mut candidates, &mut m.interfaces);
    for (bc, cands) in config.bridges.iter_mut().zip(candidates) {
        bc.ports = number_ports(cands);
    }
    m.config = config;
    m
}

/// Patch peers (on another bridge, a patch pointing back) and GRE identities (local,
/// remote, in_key) unique; failing ports get an error and leave, until nothing changes.
fn check_cross_bridge(bridges: &mut [Vec<Candidate>], ifaces: &mut [IfaceRef]) {
    loop {
        let mut fail: BTreeMap<usize, String> = BTreeMap::new();
        let all: Vec<(usize, &Candidate)> =
            bridges.iter().enumerate().flat_map(|(i, b)| b.iter().map(move |c| (i, c))).collect();
        let mut seen_gre = Vec::new();
        for &(bi, c) in &all {
            match &c.port.kind {
                PortKind::Patch { peer } => {
                    let back = all.iter().find(|(_, o)| &o.port.name == peer);
                    let e = match back {
                        None => Some(format!("patch peer {peer}: no such patch interface")),
                        Some((bj, _)) if *bj == bi => Some(format!("patch peer {peer}: on the same bridge")),
                        Some((_, o)) => match &o.port.kind {
                            PortKind::Patch { peer: b } if b == &c.port.name => None,
                            _ => Some(format!("patch peer {peer}: not a patch interface pointing back")),
                        },
                    };
                    if let Some(e) = e {
                        fail.insert(c.iface, e);
                    }
                }
                PortKind::Gre(g) => {
                    let id = (g.local_ip, g.remote_ip, g.in_key);
                    if let Some(other) =
                        seen_gre.iter().find(|(i, _)| *i == id).map(|(_, n): &(_, String)| n.clone())
                    {
                        fail.insert(c.iface, format!("same remote_ip, local_ip and key as {other}"));
                    } else {
                        seen_gre.push((id, c.port.name.clone()));
                    }
                }
                _ => {}
            }
        }
        if fail.is_empty() {
            return;
        }
        for (i, e) in fail {
            ifaces[i].error = Some(e);
        }
        for b in bridges.iter_mut() {
            b.retain(|c| ifaces[c.iface].error.is_none());
        }
    }
}

/// OpenFlow numbers: requests first, then the numbers the database recorded, then the
/// lowest free.
fn number_ports(mut cands: Vec<Candidate>) -> Vec<PortConfig> {
    let mut used = HashSet::new();
    for c in cands.iter_mut() {
        if let Some(n) = c.request.filter(|n| !used.contains(n)) {
            c.port.ofport = n;
            used.insert(n);
        }
    }
    for c in cands.iter_mut().filter(|c| c.port.ofport == 0) {
        if let Some(n) = c.recorded.filter(|n| !used.contains(n)) {
            c.port.ofport = n;
            used.insert(n);
        }
    }
    let mut next = 1;
    for c in cands.iter_mut().filter(|c| c.port.ofport == 0) {
        while used.contains(&next) {
            next += 1;
        }
        c.port.ofport = next;
        used.insert(next);
    }
    cands.into_iter().map(|c| c.port).collect()
}

#[cfg(test)]
#[path = "model_tests.rs"]
mod tests;
