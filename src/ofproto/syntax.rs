//! The `ovs-ofctl` flow syntax: [`parse_flow`] reads one `add-flows` line into a
//! [`FlowSpec`]; [`FlowSpec::format_match`] and [`format_actions`](super::rule::format_actions)
//! print in `dump-flows` style (same
//! field order and spelling as `ovs-ofctl` where we can), so `parse(print(x)) == x`.
//!
//! Differences from OVS: an invalid field or a missing prerequisite is an error (OVS
//! silently drops the field); `set_field` forms are read as the matching `mod_*` action.

use std::net::Ipv6Addr;

use crate::datapath::flow::{FlowKey, FlowMask, VLAN_PCP_SHIFT, VLAN_PRESENT, VLAN_VID_MASK};

use super::learn::LearnSpec;
use super::rule::{
    flags, ofpg, ofpp, FlowMod, FlowModCommand, FlowSpec, Match, OfAction, PortNames, TableId, N_TABLES,
    TABLE_ALL,
};

/// Why one field of a flow could not be parsed: `"{field}: {reason}"`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct SyntaxError {
    /// The field (or action) at fault, as written.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

fn err<T>(field: &str, reason: impl Into<String>) -> Result<T, SyntaxError> {
    Err(SyntaxError { field: field.to_string(), reason: reason.into() })
}

pub(crate) const ETH_IP: u16 = 0x0800;
pub(crate) const ETH_ARP: u16 = 0x0806;
pub(crate) const ETH_RARP: u16 = 0x8035;
pub(crate) const ETH_IPV6: u16 = 0x86dd;
pub(crate) const IPPROTO_ICMP: u8 = 1;
pub(crate) const IPPROTO_TCP: u8 = 6;
pub(crate) const IPPROTO_UDP: u8 = 17;
pub(crate) const IPPROTO_SCTP: u8 = 132;
pub(crate) const IPPROTO_ICMPV6: u8 = 58;

const SHORTHANDS: &[(&str, u16, Option<u8>)] = &[
    ("ip", ETH_IP, None),
    ("ipv6", ETH_IPV6, None),
    ("arp", ETH_ARP, None),
    ("rarp", ETH_RARP, None),
    ("icmp", ETH_IP, Some(IPPROTO_ICMP)),
    ("icmp6", ETH_IPV6, Some(IPPROTO_ICMPV6)),
    ("tcp", ETH_IP, Some(IPPROTO_TCP)),
    ("tcp6", ETH_IPV6, Some(IPPROTO_TCP)),
    ("udp", ETH_IP, Some(IPPROTO_UDP)),
    ("udp6", ETH_IPV6, Some(IPPROTO_UDP)),
    ("sctp", ETH_IP, Some(IPPROTO_SCTP)),
    ("sctp6", ETH_IPV6, Some(IPPROTO_SCTP)),
];

const TCP_FLAG_NAMES: &[(&str, u16)] = &[
    ("fin", 0x001),
    ("syn", 0x002),
    ("rst", 0x004),
    ("psh", 0x008),
    ("ack", 0x010),
    ("urg", 0x020),
    ("ece", 0x040),
    ("cwr", 0x080),
    ("ns", 0x100),
];
const TCP_FLAGS_MASK: u16 = 0x0fff;

/// Parses one `ovs-ofctl add-flow` line. `actions=` is required and must come last.
///
/// Unknown fields, bad values, missing prerequisites (e.g. `tp_dst` without `tcp`/`udp`/
/// `sctp`) and outputs to ports not in `ports` are errors. `duration`, `n_packets`,
/// `n_bytes`, `idle_age` and `hard_age` are ignored (as OVS does), so `dump-flows` output
/// parses back.
pub fn parse_flow(line: &str, ports: &PortNames) -> Result<FlowSpec, SyntaxError> {
    let (spec, actions) = parse_flow_inner(line, ports, false)?;
    if actions.is_none() {
        return err("actions", "must be specified (use actions=drop to drop)");
    }
    Ok(spec)
}

/// Parses a flow that selects rules (for `del-flows`/`mod-flows`): like [`parse_flow`] but
/// `actions=` is optional, `cookie=V/M` selects by cookie, the table defaults to (and may be)
/// [`TABLE_ALL`] as in `ovs-ofctl del-flows`, and `out_port=` is read (returned second,
/// [`ofpp::ANY`] if absent).
pub fn parse_flow_selector(line: &str, ports: &PortNames) -> Result<(FlowSpec, u32), SyntaxError> {
    let mut out_port = ofpp::ANY;
    let mut rest = String::new();
    for tok in split_match_tokens(line).0 {
        if let Some(v) = tok.strip_prefix("out_port=") {
            out_port = parse_port("out_port", v, ports, false)?;
        } else {
            rest.push_str(tok);
            rest.push(',');
        }
    }
    if let Some(a) = split_match_tokens(line).1 {
        rest.push_str("actions=");
        rest.push_str(a);
    }
    let (spec, _) = parse_flow_inner(&rest, ports, true)?;
    Ok((spec, out_port))
}

/// Parses the argument of `ovs-ofctl add-flow` / `mod-flows` / `del-flows` (and their
/// `--strict` forms) into a [`FlowMod`]. Modify requires `actions=`; modify and delete
/// default to every table and accept `out_port=` and `cookie=V/M`.
pub fn parse_flow_mod(
    command: FlowModCommand,
    line: &str,
    ports: &PortNames,
) -> Result<FlowMod, SyntaxError> {
    match command {
        FlowModCommand::Add => Ok(FlowMod::add(parse_flow(line, ports)?)),
        FlowModCommand::Modify | FlowModCommand::ModifyStrict => {
            if split_match_tokens(line).1.is_none() {
                return err("actions", "must be specified");
            }
            let (spec, out_port) = parse_flow_selector(line, ports)?;
            Ok(FlowMod { out_port, ..FlowMod::new(command, spec) })
        }
        FlowModCommand::Delete | FlowModCommand::DeleteStrict => {
            let (spec, out_port) = parse_flow_selector(line, ports)?;
            Ok(FlowMod { out_port, ..FlowMod::new(command, spec) })
        }
    }
}

/// Splits a line into its match tokens and the text after `actions=` (if any).
fn split_match_tokens(line: &str) -> (Vec<&str>, Option<&str>) {
    let mut toks = Vec::new();
    let mut rest = line;
    loop {
        rest = rest.trim_start_matches([',', ' ', '\t', '\r', '\n']);
        if rest.is_empty() {
            return (toks, None);
        }
        if let Some(a) = rest.strip_prefix("actions=") {
            return (toks, Some(a));
        }
        let end = rest.find([',', ' ', '\t', '\r', '\n']).unwrap_or(rest.len());
        toks.push(&rest[..end]);
        rest = &rest[end..];
    }
}

/// Builder for a match: sets bits of the key and mask.
struct MatchBuilder {
    key: FlowKey,
    mask: FlowMask,
}

macro_rules! set_field {
    ($b:expr, $f:ident, $v:expr, $m:expr) => {{
        let (v, m) = ($v, $m);
        $b.key.$f = ($b.key.$f & !m) | (v & m);
        $b.mask.0.$f |= m;
    }};
}

fn set_bytes(key: &mut [u8], mask: &mut [u8], v: &[u8], m: &[u8]) {
    for i in 0..v.len().min(key.len()) {
        key[i] = (key[i] & !m[i]) | (v[i] & m[i]);
        mask[i] |= m[i];
    }
}

fn parse_flow_inner(
    line: &str,
    ports: &PortNames,
    selector: bool,
) -> Result<(FlowSpec, Option<()>), SyntaxError> {
    let (toks, actions) = split_match_tokens(line);
    let mut spec = FlowSpec::default();
    if selector {
        spec.table = TABLE_ALL;
    }
    let mut b = MatchBuilder { key: FlowKey::default(), mask: FlowMask::catchall() };
    // Fields that need prerequisites, checked once the whole match is known.
    let mut needs: Vec<(&str, Prereq)> = Vec::new();
    for tok in toks {
        let (name, value) = match tok.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (tok, None),
        };
        if let Some(&(_, dl_type, proto)) = SHORTHANDS.iter().find(|s| s.0 == name) {
            if value.is_some() {
                return err(name, "takes no value");
            }
            set_field!(b, dl_type, dl_type, 0xffff);
            if let Some(p) = proto {
                set_field!(b, nw_proto, p, 0xff);
            }
            continue;
        }
        let flag = match name {
            "send_flow_rem" => flags::SEND_FLOW_REM,
            "check_overlap" => flags::CHECK_OVERLAP,
            "reset_counts" => flags::RESET_COUNTS,
            "no_packet_counts" => flags::NO_PKT_COUNTS,
            "no_byte_counts" => flags::NO_BYT_COUNTS,
            _ => 0,
        };
        if flag != 0 && value.is_none() {
            spec.flags |= flag;
            continue;
        }
        let Some(v) = value else {
            return err(name, "unknown field (expected name=value or a protocol such as ip, tcp)");
        };
        match name {
            "table" => {
                let t = parse_uint(name, v, if selector { 255 } else { 254 })? as TableId;
                spec.table = t;
            }
            "priority" => spec.priority = parse_uint(name, v, 0xffff)? as u16,
            "cookie" => {
                let (c, m) = parse_masked(name, v, u64::MAX)?;
                spec.cookie = c;
                spec.cookie_mask = if v.contains('/') { m } else { 0 };
            }
            "idle_timeout" => spec.idle_timeout = parse_uint(name, v, 0xffff)? as u16,
            "hard_timeout" => spec.hard_timeout = parse_uint(name, v, 0xffff)? as u16,
            "duration" | "n_packets" | "n_bytes" | "idle_age" | "hard_age" => {}
            "in_port" => set_field!(b, in_port, parse_port(name, v, ports, false)?, !0u32),
            "dl_src" | "eth_src" => {
                let (v, m) = parse_mac_masked(name, v)?;
                set_bytes(&mut b.key.dl_src, &mut b.mask.0.dl_src, &v, &m);
            }
            "dl_dst" | "eth_dst" => {
                let (v, m) = parse_mac_masked(name, v)?;
                set_bytes(&mut b.key.dl_dst, &mut b.mask.0.dl_dst, &v, &m);
            }
            "dl_type" | "eth_type" => set_field!(b, dl_type, parse_uint(name, v, 0xffff)? as u16, 0xffff),
            "dl_vlan" => {
                let vid = parse_uint(name, v, 0xffff)? as u16;
                if vid == 0xffff {
                    set_field!(b, vlan_tci, 0, VLAN_PRESENT | VLAN_VID_MASK);
                } else if vid > VLAN_VID_MASK {
                    return err(name, format!("{v} is not a VLAN ID (0..4095, or 0xffff for none)"));
                } else {
                    set_field!(b, vlan_tci, vid | VLAN_PRESENT, VLAN_PRESENT | VLAN_VID_MASK);
                }
            }
            "dl_vlan_pcp" => {
                let pcp = parse_uint(name, v, 7)? as u16;
                set_field!(b, vlan_tci, (pcp << VLAN_PCP_SHIFT) | VLAN_PRESENT, 0xe000 | VLAN_PRESENT);
            }
            "vlan_tci" => {
                let (t, m) = parse_masked(name, v, 0xffff)?;
                set_field!(b, vlan_tci, t as u16, m as u16);
            }
            "nw_src" | "nw_dst" | "ip_src" | "ip_dst" | "arp_spa" | "arp_tpa" => {
                let (a, m) = parse_ipv4_masked(name, v)?;
                let dst = name.ends_with("dst") || name == "arp_tpa";
                let (k, mk) = if dst {
                    (&mut b.key.nw_dst, &mut b.mask.0.nw_dst)
                } else {
                    (&mut b.key.nw_src, &mut b.mask.0.nw_src)
                };
                set_bytes(&mut k[..4], &mut mk[..4], &a, &m);
                let p = if name.starts_with("arp") {
                    Prereq::Arp
                } else if name.starts_with("ip") {
                    Prereq::Ipv4
                } else {
                    Prereq::Ipv4OrArp
                };
                needs.push((name, p));
            }
            "nw_proto" | "ip_proto" => {
                set_field!(b, nw_proto, parse_uint(name, v, 0xff)? as u8, 0xff);
                needs.push((name, if name == "nw_proto" { Prereq::IpAnyOrArp } else { Prereq::IpAny }));
            }
            "arp_op" => {
                set_field!(b, nw_proto, parse_uint(name, v, 0xff)? as u8, 0xff);
                needs.push((name, Prereq::Arp));
            }
            "nw_tos" => {
                let t = parse_uint(name, v, 0xff)? as u8;
                if t & 0x03 != 0 {
                    return err(name, format!("{v} has ECN bits set (use nw_ecn)"));
                }
                set_field!(b, nw_tos, t, 0xfc);
                needs.push((name, Prereq::IpAny));
            }
            "ip_dscp" => {
                set_field!(b, nw_tos, (parse_uint(name, v, 63)? as u8) << 2, 0xfc);
                needs.push((name, Prereq::IpAny));
            }
            "nw_ecn" | "ip_ecn" => {
                set_field!(b, nw_tos, parse_uint(name, v, 3)? as u8, 0x03);
                needs.push((name, Prereq::IpAny));
            }
            "nw_ttl" => {
                set_field!(b, nw_ttl, parse_uint(name, v, 0xff)? as u8, 0xff);
                needs.push((name, Prereq::IpAny));
            }
            "tp_src" | "tp_dst" | "tcp_src" | "tcp_dst" | "udp_src" | "udp_dst" | "sctp_src" | "sctp_dst" => {
                let (p, m) = parse_masked(name, v, 0xffff)?;
                if name.ends_with("src") {
                    set_field!(b, tp_src, p as u16, m as u16);
                } else {
                    set_field!(b, tp_dst, p as u16, m as u16);
                }
                needs.push((name, Prereq::L4));
            }
            "icmp_type" | "icmpv6_type" => {
                set_field!(b, tp_src, parse_uint(name, v, 0xff)? as u16, 0xff);
                needs.push((name, Prereq::Icmp));
            }
            "icmp_code" | "icmpv6_code" => {
                set_field!(b, tp_dst, parse_uint(name, v, 0xff)? as u16, 0xff);
                needs.push((name, Prereq::Icmp));
            }
            "arp_sha" | "arp_tha" => {
                let (m_v, m_m) = parse_mac_masked(name, v)?;
                if name == "arp_sha" {
                    set_bytes(&mut b.key.arp_sha, &mut b.mask.0.arp_sha, &m_v, &m_m);
                } else {
                    set_bytes(&mut b.key.arp_tha, &mut b.mask.0.arp_tha, &m_v, &m_m);
                }
                needs.push((name, Prereq::Arp));
            }
            "ipv6_src" | "ipv6_dst" => {
                let (a, m) = parse_ipv6_masked(name, v)?;
                if name == "ipv6_src" {
                    set_bytes(&mut b.key.nw_src, &mut b.mask.0.nw_src, &a, &m);
                } else {
                    set_bytes(&mut b.key.nw_dst, &mut b.mask.0.nw_dst, &a, &m);
                }
                needs.push((name, Prereq::Ipv6));
            }
            "ipv6_label" => {
                let (l, m) = parse_masked(name, v, 0xfffff)?;
                set_field!(b, ipv6_label, l as u32, m as u32);
                needs.push((name, Prereq::Ipv6));
            }
            "tun_id" | "tunnel_id" => {
                let (t, m) = parse_masked(name, v, u64::MAX)?;
                set_field!(b, tun_id, t, m);
            }
            "tun_src" | "tun_dst" => {
                let (a, m) = parse_ipv4_masked(name, v)?;
                let (a, m) = (u32::from_be_bytes(a), u32::from_be_bytes(m));
                if name == "tun_src" {
                    set_field!(b, tun_src, a, m);
                } else {
                    set_field!(b, tun_dst, a, m);
                }
            }
            "metadata" => {
                let (t, m) = parse_masked(name, v, u64::MAX)?;
                set_field!(b, metadata, t, m);
            }
            "tcp_flags" => {
                let (f, m) = parse_tcp_flags(name, v)?;
                set_field!(b, tcp_flags, f, m);
                needs.push((name, Prereq::Tcp));
            }
            "out_port" => return err(name, "only allowed when deleting or modifying flows"),
            _ => return err(name, "unknown field"),
        }
    }
    let m = Match::new(b.key, b.mask);
    for (name, p) in needs {
        p.check(name, &m)?;
    }
    spec.matches = m;
    let Some(text) = actions else { return Ok((spec, None)) };
    let ins = parse_instructions(text, ports)?;
    if let Some(t) = ins.goto_table {
        if t <= spec.table && spec.table != TABLE_ALL {
            return err("goto_table", format!("table {t} is not after this flow's table {}", spec.table));
        }
    }
    spec.actions = ins.actions;
    spec.goto_table = ins.goto_table;
    spec.write_actions = ins.write_actions;
    spec.clear_actions = ins.clear_actions;
    spec.write_metadata = ins.write_metadata;
    spec.meter = ins.meter;
    Ok((spec, Some(())))
}

/// A match prerequisite (as in `man ovs-fields`).
#[derive(Clone, Copy)]
enum Prereq {
    Ipv4,
    Ipv4OrArp,
    IpAny,
    IpAnyOrArp,
    Ipv6,
    Arp,
    L4,
    Icmp,
    Tcp,
}

impl Prereq {
    fn check(self, field: &str, m: &Match) -> Result<(), SyntaxError> {
        let (k, mk) = (m.key(), m.mask().0);
        let dl = if mk.dl_type == 0xffff { Some(k.dl_type) } else { None };
        let proto = if mk.nw_proto == 0xff { Some(k.nw_proto) } else { None };
        let ip_any = matches!(dl, Some(ETH_IP | ETH_IPV6));
        let (ok, what) = match self {
            Prereq::Ipv4 => (dl == Some(ETH_IP), "ip (dl_type=0x0800)"),
            Prereq::Ipv4OrArp => (matches!(dl, Some(ETH_IP | ETH_ARP | ETH_RARP)), "ip, arp or rarp"),
            Prereq::IpAny => (ip_any, "ip or ipv6"),
            Prereq::IpAnyOrArp => (ip_any || matches!(dl, Some(ETH_ARP | ETH_RARP)), "ip, ipv6, arp or rarp"),
            Prereq::Ipv6 => (dl == Some(ETH_IPV6), "ipv6 (dl_type=0x86dd)"),
            Prereq::Arp => (matches!(dl, Some(ETH_ARP | ETH_RARP)), "arp or rarp"),
            Prereq::L4 => (
                ip_any && matches!(proto, Some(IPPROTO_TCP | IPPROTO_UDP | IPPROTO_SCTP)),
                "tcp, udp or sctp (or tcp6, udp6, sctp6)",
            ),
            Prereq::Icmp => (
                (dl == Some(ETH_IP) && proto == Some(IPPROTO_ICMP))
                    || (dl == Some(ETH_IPV6) && proto == Some(IPPROTO_ICMPV6)),
                "icmp or icmp6",
            ),
            Prereq::Tcp => (ip_any && proto == Some(IPPROTO_TCP), "tcp or tcp6"),
        };
        if ok {
            Ok(())
        } else {
            err(field, format!("missing prerequisite: requires {what}"))
        }
    }
}

// ---------------------------------------------------------------------------------------
// Values.

/// A decimal or `0x` hexadecimal number.
pub(super) fn parse_u64(s: &str) -> Option<u64> {
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok()
    } else if !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

fn parse_uint(field: &str, s: &str, max: u64) -> Result<u64, SyntaxError> {
    match parse_u64(s) {
        Some(v) if v <= max => Ok(v),
        Some(_) => err(field, format!("{s:?} is out of range (max {max})")),
        None => err(field, format!("{s:?} is not a number")),
    }
}

/// `V` (mask = `full`) or `V/M`; the value is masked.
fn parse_masked(field: &str, s: &str, full: u64) -> Result<(u64, u64), SyntaxError> {
    match s.split_once('/') {
        Some((v, m)) => {
            let m = parse_uint(field, m, full)?;
            Ok((parse_uint(field, v, full)? & m, m))
        }
        None => Ok((parse_uint(field, s, full)?, full)),
    }
}

fn parse_port(field: &str, s: &str, ports: &PortNames, check: bool) -> Result<u32, SyntaxError> {
    if let Some(n) = parse_u64(s) {
        if n > u32::MAX as u64 {
            return err(field, format!("{s:?} is not a port number"));
        }
        let n = n as u32;
        if check && n < ofpp::MAX && !ports.contains(n) {
            return err(field, format!("no port {n}"));
        }
        return Ok(n);
    }
    if let Some(n) = ports.number(s) {
        return Ok(n);
    }
    if let Some(n) = ofpp::by_name(s) {
        return Ok(n);
    }
    err(field, format!("no port named {s:?}"))
}

/// A MAC address `xx:xx:xx:xx:xx:xx`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut n = 0;
    for part in s.split(':') {
        if n == 6 || part.is_empty() || part.len() > 2 {
            return None;
        }
        out[n] = u8::from_str_radix(part, 16).ok()?;
        n += 1;
    }
    (n == 6).then_some(out)
}

fn parse_mac_masked(field: &str, s: &str) -> Result<([u8; 6], [u8; 6]), SyntaxError> {
    let (v, m) = match s.split_once('/') {
        Some((v, m)) => (v, Some(m)),
        None => (s, None),
    };
    let Some(mut v6) = parse_mac(v) else {
        return err(field, format!("{s:?} is not an Ethernet address"));
    };
    let m6 = match m {
        Some(m) => match parse_mac(m) {
            Some(m) => m,
            None => return err(field, format!("{m:?} is not an Ethernet mask")),
        },
        None => [0xff; 6],
    };
    for i in 0..6 {
        v6[i] &= m6[i];
    }
    Ok((v6, m6))
}

/// A dotted-quad IPv4 address (exactly four decimal parts).
pub fn parse_ipv4(s: &str) -> Option<[u8; 4]> {
    let mut out = [0u8; 4];
    let mut n = 0;
    for part in s.split('.') {
        if n == 4 || part.is_empty() || part.len() > 3 || !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        out[n] = part.parse().ok()?;
        n += 1;
    }
    (n == 4).then_some(out)
}

fn parse_ipv4_masked(field: &str, s: &str) -> Result<([u8; 4], [u8; 4]), SyntaxError> {
    let bad = || err(field, format!("{s:?} is not an IPv4 address or prefix"));
    let (a, m) = match s.split_once('/') {
        Some((a, m)) => (a, Some(m)),
        None => (s, None),
    };
    let Some(a) = parse_ipv4(a) else { return bad() };
    let m = match m {
        None => [0xff; 4],
        Some(m) if m.contains('.') => match parse_ipv4(m) {
            Some(m) => m,
            None => return bad(),
        },
        Some(m) => match m.parse::<u32>() {
            Ok(p) if p <= 32 => (u32::MAX.checked_shl(32 - p).unwrap_or(0)).to_be_bytes(),
            _ => return bad(),
        },
    };
    let v = u32::from_be_bytes(a) & u32::from_be_bytes(m);
    Ok((v.to_be_bytes(), m))
}

fn parse_ipv6_masked(field: &str, s: &str) -> Result<([u8; 16], [u8; 16]), SyntaxError> {
    let bad = || err(field, format!("{s:?} is not an IPv6 address or prefix"));
    let (a, m) = match s.split_once('/') {
        Some((a, m)) => (a, Some(m)),
        None => (s, None),
    };
    let Ok(a) = a.parse::<Ipv6Addr>() else { return bad() };
    let m: u128 = match m {
        None => u128::MAX,
        Some(m) if m.contains(':') => match m.parse::<Ipv6Addr>() {
            Ok(m) => m.into(),
            Err(_) => return bad(),
        },
        Some(m) => match m.parse::<u32>() {
            Ok(p) if p <= 128 => u128::MAX.checked_shl(128 - p).unwrap_or(0),
            _ => return bad(),
        },
    };
    Ok(((u128::from(a) & m).to_be_bytes(), m.to_be_bytes()))
}

/// `tcp_flags=V[/M]`, `tcp_flags=syn|ack` (exactly) or `tcp_flags=+syn-ack...` (these bits).
fn parse_tcp_flags(field: &str, s: &str) -> Result<(u16, u16), SyntaxError> {
    if !s.starts_with(['+', '-']) {
        if s.starts_with(|c: char| c.is_ascii_alphabetic()) {
            // `syn|ack`: exactly these flags.
            let mut v = 0;
            for name in s.split('|') {
                match TCP_FLAG_NAMES.iter().find(|f| f.0 == name) {
                    Some(&(_, bit)) => v |= bit,
                    None => return err(field, format!("{name:?} is not a TCP flag")),
                }
            }
            return Ok((v, TCP_FLAGS_MASK));
        }
        let (v, m) = parse_masked(field, s, TCP_FLAGS_MASK as u64)?;
        return Ok((v as u16, m as u16));
    }
    let (mut v, mut m) = (0u16, 0u16);
    let mut rest = s;
    while !rest.is_empty() {
        let set = rest.starts_with('+');
        if !set && !rest.starts_with('-') {
            return err(field, format!("{s:?}: expected +flag or -flag"));
        }
        rest = &rest[1..];
        let end = rest.find(['+', '-']).unwrap_or(rest.len());
        let name = &rest[..end];
        let Some(&(_, bit)) = TCP_FLAG_NAMES.iter().find(|f| f.0 == name) else {
            return err(field, format!("{name:?} is not a TCP flag"));
        };
        m |= bit;
        if set {
            v |= bit;
        } else {
            v &= !bit;
        }
        rest = &rest[end..];
    }
    Ok((v, m))
}

// ---------------------------------------------------------------------------------------
// Actions.

/// Splits on commas outside parentheses.
fn split_actions(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth <= 0 => {
                out.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(s[start..].trim());
    out.retain(|a| !a.is_empty());
    out
}

/// The instructions after `actions=`.
#[derive(Default)]
struct Instructions {
    actions: Vec<OfAction>,
    goto_table: Option<TableId>,
    write_actions: Option<Vec<OfAction>>,
    clear_actions: bool,
    write_metadata: Option<(u64, u64)>,
    meter: Option<u32>,
}

fn parse_instructions(text: &str, ports: &PortNames) -> Result<Instructions, SyntaxError> {
    let mut ins = Instructions::default();
    let mut plain = Vec::new();
    let parts = split_actions(text);
    for a in &parts {
        if ins.goto_table.is_some() {
            return err("goto_table", "must be the last action");
        }
        let lower = a.to_ascii_lowercase();
        let once = |present: bool, name: &str| if present { err(name, "given twice") } else { Ok(()) };
        if let Some(inner) = lower.strip_prefix("write_actions(").and_then(|x| x.strip_suffix(')')) {
            once(ins.write_actions.is_some(), "write_actions")?;
            let inner = &a[a.len() - 1 - inner.len()..a.len() - 1];
            let acts = parse_actions(inner, ports, true)?;
            ins.write_actions = Some(acts);
        } else if lower == "clear_actions" {
            once(ins.clear_actions, "clear_actions")?;
            ins.clear_actions = true;
        } else if let Some(v) = lower.strip_prefix("write_metadata:") {
            once(ins.write_metadata.is_some(), "write_metadata")?;
            let (val, mask) = parse_masked("write_metadata", v, u64::MAX)?;
            ins.write_metadata = Some((val & mask, mask));
        } else if let Some(v) = lower.strip_prefix("meter:") {
            once(ins.meter.is_some(), "meter")?;
            ins.meter = Some(parse_uint("meter", v, 0xffff_0000)? as u32);
        } else if let Some(v) = lower.strip_prefix("goto_table:") {
            ins.goto_table = Some(parse_uint("goto_table", v, (N_TABLES - 1) as u64)? as TableId);
        } else {
            plain.push(*a);
        }
    }
    ins.actions = parse_actions(&plain.join(","), ports, false)?;
    Ok(ins)
}

/// A comma-separated action list (`drop` alone = none). `in_set`: inside `write_actions(...)`,
/// where OpenFlow-only actions are allowed.
fn parse_actions(text: &str, ports: &PortNames, in_set: bool) -> Result<Vec<OfAction>, SyntaxError> {
    let parts = split_actions(text);
    let mut acts = Vec::new();
    for a in &parts {
        let lower = a.to_ascii_lowercase();
        if lower == "drop" {
            if parts.len() != 1 {
                return err("drop", "must be the only action");
            }
            continue;
        }
        let (name, arg) = match a.find([':', '(']) {
            Some(p) if a.as_bytes()[p] == b':' => (&a[..p], Some(&a[p + 1..])),
            _ => (*a, None),
        };
        let lname = name.to_ascii_lowercase();
        let need = |what: &str| -> Result<&str, SyntaxError> {
            arg.ok_or_else(|| SyntaxError { field: name.to_string(), reason: format!("needs {what}") })
        };
        let act = match lname.as_str() {
            "output" => output_action("output", need("a port")?, ports)?,
            "in_port" => OfAction::InPort,
            "normal" => OfAction::Normal,
            "flood" => OfAction::Flood,
            "all" => OfAction::All,
            "local" => OfAction::Local,
            "controller" => {
                let max_len = match arg {
                    None => 0xffff,
                    Some(s) => parse_uint(name, s.strip_prefix("max_len=").unwrap_or(s), 0xffff)? as u16,
                };
                OfAction::Controller { max_len }
            }
            "mod_dl_src" | "mod_dl_dst" => {
                let s = need("an Ethernet address")?;
                let Some(mac) = parse_mac(s) else {
                    return err(name, format!("{s:?} is not an Ethernet address"));
                };
                if lname == "mod_dl_src" {
                    OfAction::SetEthSrc(mac)
                } else {
                    OfAction::SetEthDst(mac)
                }
            }
            "mod_nw_src" | "mod_nw_dst" => {
                let s = need("an IPv4 address")?;
                let Some(ip) = parse_ipv4(s) else {
                    return err(name, format!("{s:?} is not an IPv4 address"));
                };
                if lname == "mod_nw_src" {
                    OfAction::SetIpv4Src(ip)
                } else {
                    OfAction::SetIpv4Dst(ip)
                }
            }
            "mod_nw_tos" => {
                let t = parse_uint(name, need("a TOS value")?, 0xff)? as u8;
                if t & 3 != 0 {
                    return err(name, format!("{t} has ECN bits set"));
                }
                OfAction::SetNwTos(t)
            }
            "mod_nw_ttl" => OfAction::SetNwTtl(parse_uint(name, need("a TTL")?, 0xff)? as u8),
            "dec_ttl" => OfAction::DecTtl,
            "mod_tp_src" => OfAction::SetTpSrc(parse_uint(name, need("a port")?, 0xffff)? as u16),
            "mod_tp_dst" => OfAction::SetTpDst(parse_uint(name, need("a port")?, 0xffff)? as u16),
            "push_vlan" => {
                let t = parse_uint(name, need("an EtherType")?, 0xffff)? as u16;
                if t != 0x8100 && t != 0x88a8 {
                    return err(name, format!("0x{t:04x} is not a VLAN EtherType (0x8100 or 0x88a8)"));
                }
                OfAction::PushVlan(t)
            }
            "mod_vlan_vid" => OfAction::SetVlanVid(parse_uint(name, need("a VLAN ID")?, 4095)? as u16),
            "mod_vlan_pcp" => OfAction::SetVlanPcp(parse_uint(name, need("a priority")?, 7)? as u8),
            "strip_vlan" | "pop_vlan" => OfAction::StripVlan,
            "set_field" => set_field_action(need("V->field")?)?,
            "set_tunnel" => OfAction::SetTunId(parse_uint(name, need("a tunnel id")?, u32::MAX.into())?),
            "set_tunnel64" => OfAction::SetTunId(parse_uint(name, need("a tunnel id")?, u64::MAX)?),
            "load" => {
                acts.extend(load_action(need("VALUE->FIELD[]")?)?);
                continue;
            }
            "group" => OfAction::Group(parse_uint(name, need("a group")?, ofpg::MAX as u64)? as u32),
            "set_queue" => OfAction::SetQueue(parse_uint(name, need("a queue")?, u32::MAX as u64)? as u32),
            _ if lname.starts_with("resubmit") => {
                if in_set {
                    return err(name, "not allowed in write_actions");
                }
                resubmit_action(a, ports)?
            }
            _ if lname.starts_with("learn(") && a.ends_with(')') => {
                if in_set {
                    return err("learn", "not allowed in write_actions");
                }
                let spec = LearnSpec::parse(&a["learn(".len()..a.len() - 1])
                    .map_err(|reason| SyntaxError { field: "learn".into(), reason })?;
                OfAction::Learn(Box::new(spec))
            }
            _ if lname.starts_with("controller(") && a.ends_with(')') => {
                // controller(key=value,...): only max_len is modelled; reason/id are ignored.
                let mut max_len = 0xffff;
                for kv in a["controller(".len()..a.len() - 1].split(',') {
                    if let Some(v) = kv.trim().strip_prefix("max_len=") {
                        max_len = parse_uint("controller", v, 0xffff)? as u16;
                    }
                }
                OfAction::Controller { max_len }
            }
            _ if parse_u64(a).is_some() || ports.number(a).is_some() => output_action("output", a, ports)?,
            _ => return err(name, "unknown action"),
        };
        acts.push(act);
    }
    Ok(acts)
}

fn output_action(field: &str, s: &str, ports: &PortNames) -> Result<OfAction, SyntaxError> {
    // output:CONTROLLER:max_len
    if let Some((c, len)) = s.split_once(':') {
        if c.eq_ignore_ascii_case("controller") {
            return Ok(OfAction::Controller { max_len: parse_uint(field, len, 0xffff)? as u16 });
        }
    }
    let p = parse_port(field, s, ports, true)?;
    Ok(match p {
        ofpp::IN_PORT => OfAction::InPort,
        ofpp::NORMAL => OfAction::Normal,
        ofpp::FLOOD => OfAction::Flood,
        ofpp::ALL => OfAction::All,
        ofpp::CONTROLLER => OfAction::Controller { max_len: 0xffff },
        ofpp::LOCAL => OfAction::Local,
        p if p >= ofpp::MAX => return err(field, format!("cannot output to port {s}")),
        p => OfAction::Output(p),
    })
}

/// `resubmit:PORT`, `resubmit(PORT)`, `resubmit(,T)`, `resubmit(PORT,T)`.
fn resubmit_action(a: &str, ports: &PortNames) -> Result<OfAction, SyntaxError> {
    const F: &str = "resubmit";
    let body = if let Some(p) = a.strip_prefix("resubmit:") {
        p
    } else if let Some(p) = a.strip_prefix("resubmit(").and_then(|p| p.strip_suffix(')')) {
        p
    } else {
        return err(F, format!("{a:?}: expected resubmit(port,table) or resubmit:port"));
    };
    let (p, t) = match body.split_once(',') {
        Some((p, t)) => (p.trim(), t.trim()),
        None => (body.trim(), ""),
    };
    let in_port = if p.is_empty() { None } else { Some(parse_port(F, p, ports, false)?) };
    let table = if t.is_empty() { None } else { Some(parse_uint(F, t, (N_TABLES - 1) as u64)? as TableId) };
    if in_port.is_none() && table.is_none() {
        return err(F, "needs a port or a table");
    }
    Ok(OfAction::Resubmit { in_port, table })
}

/// `load:VALUE->FIELD[...]`, folded into the equivalent actions: the whole of
/// `NXM_NX_TUN_ID`, `NXM_OF_ETH_SRC`/`DST`, `NXM_OF_IP_SRC`/`DST` or `NXM_OF_VLAN_TCI` (0 pops
/// the tag), or `NXM_OF_VLAN_TCI[0..11]` (VID) / `[13..15]` (PCP). Others are refused.
fn load_action(s: &str) -> Result<Vec<OfAction>, SyntaxError> {
    const F: &str = "load";
    let Some((v, dst)) = s.split_once("->") else {
        return err(F, format!("{s:?}: expected VALUE->FIELD[]"));
    };
    crate::ofproto::learn::load_immediate(v.trim(), dst.trim())
        .map_err(|reason| SyntaxError { field: F.into(), reason })
}

/// `set_field:VALUE->FIELD`, folded into the equivalent action.
fn set_field_action(s: &str) -> Result<OfAction, SyntaxError> {
    const F: &str = "set_field";
    let Some((v, field)) = s.split_once("->") else {
        return err(F, format!("{s:?}: expected VALUE->FIELD"));
    };
    let mac = |v: &str| {
        parse_mac(v).ok_or_else(|| SyntaxError {
            field: field.into(),
            reason: format!("{v:?} is not an Ethernet address"),
        })
    };
    let ip4 = |v: &str| {
        parse_ipv4(v).ok_or_else(|| SyntaxError {
            field: field.into(),
            reason: format!("{v:?} is not an IPv4 address"),
        })
    };
    let ip6 = |v: &str| {
        v.parse::<Ipv6Addr>()
            .map(|a| a.octets())
            .map_err(|_| SyntaxError { field: field.into(), reason: format!("{v:?} is not an IPv6 address") })
    };
    Ok(match field {
        "dl_src" | "eth_src" => OfAction::SetEthSrc(mac(v)?),
        "dl_dst" | "eth_dst" => OfAction::SetEthDst(mac(v)?),
        "nw_src" | "ip_src" => OfAction::SetIpv4Src(ip4(v)?),
        "nw_dst" | "ip_dst" => OfAction::SetIpv4Dst(ip4(v)?),
        "ipv6_src" => OfAction::SetIpv6Src(ip6(v)?),
        "ipv6_dst" => OfAction::SetIpv6Dst(ip6(v)?),
        "nw_tos" => {
            let t = parse_uint(field, v, 0xff)? as u8;
            if t & 3 != 0 {
                return err(field, format!("{v} has ECN bits set"));
            }
            OfAction::SetNwTos(t)
        }
        "ip_dscp" => OfAction::SetNwTos((parse_uint(field, v, 63)? as u8) << 2),
        "nw_ttl" => OfAction::SetNwTtl(parse_uint(field, v, 0xff)? as u8),
        "tp_src" | "tcp_src" | "udp_src" | "sctp_src" => {
            OfAction::SetTpSrc(parse_uint(field, v, 0xffff)? as u16)
        }
        "tp_dst" | "tcp_dst" | "udp_dst" | "sctp_dst" => {
            OfAction::SetTpDst(parse_uint(field, v, 0xffff)? as u16)
        }
        "vlan_vid" | "dl_vlan" => {
            OfAction::SetVlanVid((parse_uint(field, v, 0x1fff)? as u16) & VLAN_VID_MASK)
        }
        "vlan_pcp" | "dl_vlan_pcp" => OfAction::SetVlanPcp(parse_uint(field, v, 7)? as u8),
        "tun_id" | "tunnel_id" => OfAction::SetTunId(parse_uint(field, v, u64::MAX)?),
        "metadata" => OfAction::SetMetadata(parse_uint(field, v, u64::MAX)?),
        _ => return err(F, format!("cannot set field {field:?}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ports() -> PortNames {
        [("eth0", 1), ("eth1", 2), ("p3", 3)].into_iter().collect()
    }

    #[test]
    fn errors_name_the_field() {
        let e = |l: &str| parse_flow(l, &ports()).unwrap_err().to_string();
        assert_eq!(
            e("ip,nw_dst=10.0.0.300,actions=drop"),
            r#"nw_dst: "10.0.0.300" is not an IPv4 address or prefix"#
        );
        assert_eq!(e("actions=output:7"), "output: no port 7");
        assert_eq!(e("actions=7"), "output: no port 7");
        assert_eq!(
            e("nw_dst=10.0.0.1,actions=drop"),
            "nw_dst: missing prerequisite: requires ip, arp or rarp"
        );
        assert!(e("ip,tp_dst=80,actions=drop")
            .starts_with("tp_dst: missing prerequisite: requires tcp, udp or sctp"));
        assert!(e("tcp,icmp_type=1,actions=drop").starts_with("icmp_type: missing prerequisite"));
        assert!(e("ipv6_src=::1,actions=drop").starts_with("ipv6_src: missing"));
        assert!(e("in_port=1").starts_with("actions: must be specified"));
        assert!(e("in_port=9x,actions=drop").starts_with("in_port: no port named"));
        assert!(e("frob=1,actions=drop").starts_with("frob: unknown field"));
        assert!(e("actions=frob").starts_with("frob: unknown action"));
        assert!(e("table=2,actions=goto_table:1").starts_with("goto_table: table 1 is not after"));
        assert!(e("actions=goto_table:3,output:1").starts_with("goto_table: must be the last"));
        assert!(e("actions=drop,1").starts_with("drop: must be the only"));
        assert!(e("dl_vlan=4096,actions=drop").starts_with("dl_vlan:"));
        assert!(e("priority=65536,actions=drop").starts_with("priority: \"65536\" is out of range"));
        assert!(e("actions=set_field:1->frob").starts_with("set_field: cannot set field"));
        assert!(e("actions=controller(max_len=x)").starts_with("controller: \"x\" is not a number"));
        let c = parse_flow("actions=controller(reason=no_match,max_len=64)", &ports()).unwrap();
        assert_eq!(c.actions, vec![OfAction::Controller { max_len: 64 }]);
        // tp_dst before tcp is fine: prerequisites are checked on the whole match.
        assert!(parse_flow("tp_dst=80,tcp,actions=drop", &ports()).is_ok());
    }

    #[test]
    fn masks_are_normalized() {
        let s = parse_flow("tcp,tp_dst=0x1234/0xff00,actions=drop", &ports()).unwrap();
        assert_eq!(s.matches.key().tp_dst, 0x1200);
        let s = parse_flow("ip,nw_src=10.1.2.3/8,actions=drop", &ports()).unwrap();
        assert_eq!(s.matches.key().ipv4_src(), [10, 0, 0, 0]);
    }

    #[test]
    fn selector_reads_out_port() {
        let (s, out) = parse_flow_selector("cookie=0x1/0x1,out_port=2,in_port=1", &ports()).unwrap();
        assert_eq!((s.cookie, s.cookie_mask, out, s.table), (1, 1, 2, TABLE_ALL));
        assert!(parse_flow_mod(FlowModCommand::Modify, "in_port=1", &ports()).is_err());
        let fm = parse_flow_mod(FlowModCommand::DeleteStrict, "priority=5,in_port=1,out_port=3", &ports())
            .unwrap();
        assert_eq!((fm.spec.priority, fm.out_port, fm.spec.table), (5, 3, TABLE_ALL));
    }

    #[test]
    fn tunnel_fields_and_actions() {
        let s = parse_flow(
            "tun_id=0x64,tun_src=192.0.2.1,tun_dst=192.0.2.0/24,actions=set_tunnel:0x64,\
             set_tunnel64:0x1234567890,load:0x65->NXM_NX_TUN_ID[],set_field:0x66->tun_id,output:1",
            &ports(),
        )
        .unwrap();
        let (k, m) = (s.matches.key(), s.matches.mask().0);
        assert_eq!((k.tun_src, m.tun_src), (0xc000_0201, !0));
        assert_eq!((k.tun_dst, m.tun_dst), (0xc000_0200, 0xffff_ff00));
        assert_eq!(
            s.actions,
            vec![
                OfAction::SetTunId(0x64),
                OfAction::SetTunId(0x12_3456_7890),
                OfAction::SetTunId(0x65),
                OfAction::SetTunId(0x66),
                OfAction::Output(1)
            ]
        );
        assert_eq!(parse_flow(&s.to_string(), &ports()), Ok(s));
        let e = |l: &str| parse_flow(l, &ports()).unwrap_err().to_string();
        assert!(
            e("actions=set_tunnel:0x100000000").starts_with("set_tunnel: \"0x100000000\" is out of range")
        );
        assert!(e("actions=load:1->NXM_NX_REG0[]").starts_with("load: \"NXM_NX_REG0[]\": not a field"));
        assert!(e("actions=load:1->NXM_NX_TUN_ID[0..31]").starts_with("load: load into NXM_NX_TUN_ID[0..31]"));
        assert!(e("actions=load:0x10000->NXM_OF_VLAN_TCI[]").starts_with("load: 0x10000 does not fit"));
        let l = parse_flow(
            "actions=load:0->NXM_OF_VLAN_TCI[],load:0x3005->NXM_OF_VLAN_TCI[],load:7->NXM_OF_VLAN_TCI[0..11],\
             load:0x0a0000000001->NXM_OF_ETH_DST[],load:0x0a000001->NXM_OF_IP_SRC[]",
            &ports(),
        )
        .unwrap();
        assert_eq!(
            l.actions,
            vec![
                OfAction::StripVlan,
                OfAction::SetVlanVid(5),
                OfAction::SetVlanPcp(1),
                OfAction::SetVlanVid(7),
                OfAction::SetEthDst([10, 0, 0, 0, 0, 1]),
                OfAction::SetIpv4Src([10, 0, 0, 1])
            ]
        );
        assert!(e("tun_src=192.0.2,actions=drop").starts_with("tun_src:"));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]
        #[test]
        fn never_panics(s in "\\PC{0,80}") {
            let _ = parse_flow(&s, &ports());
            let _ = parse_flow_selector(&s, &ports());
        }

        #[test]
        fn never_panics_on_near_valid(s in "(ip|tcp|udp6|arp|in_port|nw_dst|tp_dst|dl_vlan|vlan_tci|tcp_flags|tun_src|tun_dst|actions|output|resubmit|set_field|set_tunnel|set_tunnel64|load|NXM_NX_TUN_ID\\[\\]|controller|goto_table|[=,:/().0-9a-fx>+-]){0,30}") {
            if let Ok(spec) = parse_flow(&s, &ports()) {
                let again = parse_flow(&spec.to_string(), &ports());
                prop_assert_eq!(Ok(spec), again);
            }
        }
    }
}
