//! The OpenFlow-level model: a [`Match`] (a [`FlowKey`] value under a [`FlowMask`]),
//! OpenFlow actions ([`OfAction`]), a parsed flow ([`FlowSpec`]) and the flow-mod
//! command ([`FlowMod`]) that an OpenFlow 1.3 `OFPT_FLOW_MOD` maps onto.

use std::collections::HashMap;
use std::fmt;

use crate::datapath::flow::{FlowKey, FlowMask, VLAN_PCP_SHIFT, VLAN_PRESENT, VLAN_VID_MASK};

/// An OpenFlow table number (0..=254; [`TABLE_ALL`] means every table in a delete).
pub type TableId = u8;
/// `OFPTT_ALL`: every table (delete and modify only).
pub const TABLE_ALL: TableId = 0xff;
/// Number of tables in a [`Pipeline`](super::table::Pipeline): tables `0..N_TABLES`.
pub const N_TABLES: usize = 255;
/// `OFP_DEFAULT_PRIORITY`.
pub const DEFAULT_PRIORITY: u16 = 32768;

/// OpenFlow 1.3 reserved port numbers (`OFPP_*`).
pub mod ofpp {
    /// Highest number of a physical/logical port.
    pub const MAX: u32 = 0xffff_ff00;
    /// The ingress port.
    pub const IN_PORT: u32 = 0xffff_fff8;
    /// Submit to the first table (packet-out only).
    pub const TABLE: u32 = 0xffff_fff9;
    /// The traditional L2 switch.
    pub const NORMAL: u32 = 0xffff_fffa;
    /// All ports but the ingress port (flooding-enabled ones).
    pub const FLOOD: u32 = 0xffff_fffb;
    /// All ports but the ingress port.
    pub const ALL: u32 = 0xffff_fffc;
    /// The controller.
    pub const CONTROLLER: u32 = 0xffff_fffd;
    /// The local (bridge) port.
    pub const LOCAL: u32 = 0xffff_fffe;
    /// No port / wildcard (e.g. "no `out_port` filter").
    pub const ANY: u32 = 0xffff_ffff;

    /// The `ovs-ofctl` name of a reserved port, if `port` is one.
    pub fn name(port: u32) -> Option<&'static str> {
        Some(match port {
            IN_PORT => "IN_PORT",
            TABLE => "TABLE",
            NORMAL => "NORMAL",
            FLOOD => "FLOOD",
            ALL => "ALL",
            CONTROLLER => "CONTROLLER",
            LOCAL => "LOCAL",
            ANY => "ANY",
            _ => return None,
        })
    }

    /// The reserved port named `name` (case-insensitive), if any.
    pub fn by_name(name: &str) -> Option<u32> {
        Some(match name.to_ascii_uppercase().as_str() {
            "IN_PORT" => IN_PORT,
            "TABLE" => TABLE,
            "NORMAL" => NORMAL,
            "FLOOD" => FLOOD,
            "ALL" => ALL,
            "CONTROLLER" => CONTROLLER,
            "LOCAL" => LOCAL,
            "ANY" | "NONE" => ANY,
            _ => return None,
        })
    }
}

/// A match: the packets whose key, under `mask`, equals `key`.
///
/// Always normalized: `key == key & mask`, so two matches that select the same packets
/// compare equal.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Match {
    key: FlowKey,
    mask: FlowMask,
}

impl Match {
    /// The match of `key` under `mask` (the key is masked here).
    pub fn new(key: FlowKey, mask: FlowMask) -> Match {
        Match { key: key.masked(&mask), mask }
    }
    /// Matches every packet.
    pub fn catchall() -> Match {
        Match::default()
    }
    /// The (masked) value.
    pub fn key(&self) -> &FlowKey {
        &self.key
    }
    /// The mask: 1 bits are compared.
    pub fn mask(&self) -> &FlowMask {
        &self.mask
    }
    /// Whether the packet with key `k` matches.
    #[inline]
    pub fn matches(&self, k: &FlowKey) -> bool {
        k.matches_masked(&self.mask, &self.key)
    }
    /// Whether every packet `self` matches is also matched by `wider` (OpenFlow's non-strict
    /// selection: `wider` is the flow-mod's match, `self` a rule's).
    pub fn is_within(&self, wider: &Match) -> bool {
        wider.mask.is_subset_of(&self.mask) && self.key.masked(&wider.mask) == wider.key
    }
}

/// One OpenFlow action, as `ovs-ofctl` writes it (see `man ovs-actions`).
///
/// `set_field` forms are folded into the equivalent `mod_*` action, so `set_field:1.2.3.4->nw_dst`
/// and `mod_nw_dst:1.2.3.4` parse to the same value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum OfAction {
    /// `output:N`: to a numbered port (never a reserved one; those have their own variants).
    Output(u32),
    /// `in_port` / `output:IN_PORT`: back out of the ingress port.
    InPort,
    /// `NORMAL`: the L2 learning switch.
    Normal,
    /// `FLOOD`: every port but the ingress port.
    Flood,
    /// `ALL`: every port but the ingress port.
    All,
    /// `CONTROLLER[:max_len]`: a packet-in carrying up to `max_len` bytes.
    Controller {
        /// Bytes of the packet to send (65535 = all).
        max_len: u16,
    },
    /// `LOCAL`: the bridge's local port.
    Local,
    /// `mod_dl_src:MAC`.
    SetEthSrc([u8; 6]),
    /// `mod_dl_dst:MAC`.
    SetEthDst([u8; 6]),
    /// `mod_nw_src:IP` (IPv4 packets only).
    SetIpv4Src([u8; 4]),
    /// `mod_nw_dst:IP` (IPv4 packets only).
    SetIpv4Dst([u8; 4]),
    /// `set_field:IP6->ipv6_src` (IPv6 packets only).
    SetIpv6Src([u8; 16]),
    /// `set_field:IP6->ipv6_dst` (IPv6 packets only).
    SetIpv6Dst([u8; 16]),
    /// `mod_nw_tos:TOS`: the DSCP bits (TOS & 0xfc); ECN is kept.
    SetNwTos(u8),
    /// `mod_nw_ttl:N`.
    SetNwTtl(u8),
    /// `dec_ttl`.
    DecTtl,
    /// `mod_tp_src:N` (TCP/UDP/SCTP only).
    SetTpSrc(u16),
    /// `mod_tp_dst:N` (TCP/UDP/SCTP only).
    SetTpDst(u16),
    /// `push_vlan:TPID`: push a tag with VID 0, PCP 0.
    PushVlan(u16),
    /// `mod_vlan_vid:N`: set the VID, pushing a tag (PCP 0) on an untagged packet.
    SetVlanVid(u16),
    /// `mod_vlan_pcp:N`: set the PCP, pushing a tag (VID 0) on an untagged packet.
    SetVlanPcp(u8),
    /// `strip_vlan` / `pop_vlan`.
    StripVlan,
    /// `set_field:V->tun_id`.
    SetTunId(u64),
    /// `set_field:V->metadata`: pipeline metadata (visible to later tables only).
    SetMetadata(u64),
    /// `group:N`: process the packet through group `N`.
    Group(u32),
    /// `set_queue:N`: the egress queue. Accepted for any queue number and recorded in the
    /// action set; this switch has one queue per port, so it does not change forwarding.
    SetQueue(u32),
    /// `resubmit([port],[table])`: look the packet up again in `table` (`None` = the
    /// current table), as if received on `in_port` (`None` = the real ingress port).
    Resubmit {
        /// Look up as if received here (`None`: the packet's own ingress port).
        in_port: Option<u32>,
        /// The table (`None`: the current one).
        table: Option<TableId>,
    },
    /// `learn(...)`: add (or refresh) a flow built from the packet's fields.
    Learn(Box<super::learn::LearnSpec>),
}

impl OfAction {
    /// Whether this action sends packets to `port` (OpenFlow's `out_port` filter).
    pub fn outputs_to(&self, port: u32) -> bool {
        match self {
            OfAction::Output(p) => *p == port,
            OfAction::InPort => port == ofpp::IN_PORT,
            OfAction::Normal => port == ofpp::NORMAL,
            OfAction::Flood => port == ofpp::FLOOD,
            OfAction::All => port == ofpp::ALL,
            OfAction::Controller { .. } => port == ofpp::CONTROLLER,
            OfAction::Local => port == ofpp::LOCAL,
            _ => false,
        }
    }

    /// Whether this is an output (to any port, reserved ones included).
    pub fn is_output(&self) -> bool {
        matches!(
            self,
            OfAction::Output(_)
                | OfAction::InPort
                | OfAction::Normal
                | OfAction::Flood
                | OfAction::All
                | OfAction::Controller { .. }
                | OfAction::Local
        )
    }
}

/// `OFPFF_*` flow-mod flags kept with a rule.
pub mod flags {
    /// Send a flow-removed message when the rule goes.
    pub const SEND_FLOW_REM: u16 = 1 << 0;
    /// Refuse an add that overlaps a rule of the same priority.
    pub const CHECK_OVERLAP: u16 = 1 << 1;
    /// Reset the counters of the rules a modify (or replacing add) touches.
    pub const RESET_COUNTS: u16 = 1 << 2;
    /// Do not keep a packet count (reported as all ones).
    pub const NO_PKT_COUNTS: u16 = 1 << 3;
    /// Do not keep a byte count (reported as all ones).
    pub const NO_BYT_COUNTS: u16 = 1 << 4;
    /// Every flag OpenFlow 1.3 defines.
    pub const ALL: u16 = 0x1f;
}

/// `OFPG_*` reserved group numbers.
pub mod ofpg {
    /// Highest group number.
    pub const MAX: u32 = 0xffff_ff00;
    /// Every group (group delete).
    pub const ALL: u32 = 0xffff_fffc;
    /// No group (wildcard in filters).
    pub const ANY: u32 = 0xffff_ffff;
}

/// One flow as written in a flows file or an `add-flow` command: where it goes, its match,
/// and its instructions. OpenFlow 1.3 executes them in this order: meter, apply-actions,
/// clear-actions, write-actions, write-metadata, goto-table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowSpec {
    /// `table=`.
    pub table: TableId,
    /// `priority=` (default 32768).
    pub priority: u16,
    /// `cookie=`.
    pub cookie: u64,
    /// `cookie=V/M`: the mask for selecting rules by cookie (modify/delete); 0 = any cookie.
    pub cookie_mask: u64,
    /// `idle_timeout=` in seconds (0 = none).
    pub idle_timeout: u16,
    /// `hard_timeout=` in seconds (0 = none).
    pub hard_timeout: u16,
    /// The match.
    pub matches: Match,
    /// The apply-actions list, in order (empty = drop).
    pub actions: Vec<OfAction>,
    /// The goto-table instruction (always to a later table).
    pub goto_table: Option<TableId>,
    /// The write-actions instruction: actions merged into the action set (one per type;
    /// a later write replaces an earlier action of the same type).
    pub write_actions: Option<Vec<OfAction>>,
    /// The clear-actions instruction: empty the action set (before write-actions).
    pub clear_actions: bool,
    /// The write-metadata instruction: `(value, mask)`.
    pub write_metadata: Option<(u64, u64)>,
    /// The meter instruction: the packet goes through meter `N` first.
    pub meter: Option<u32>,
    /// `OFPFF_*` flags ([`flags`]).
    pub flags: u16,
}

impl Default for FlowSpec {
    fn default() -> Self {
        FlowSpec {
            table: 0,
            priority: DEFAULT_PRIORITY,
            cookie: 0,
            cookie_mask: 0,
            idle_timeout: 0,
            hard_timeout: 0,
            matches: Match::catchall(),
            actions: Vec::new(),
            goto_table: None,
            write_actions: None,
            clear_actions: false,
            write_metadata: None,
            meter: None,
            flags: 0,
        }
    }
}

impl FlowSpec {
    /// Every action of the apply-actions and write-actions instructions.
    pub fn all_actions(&self) -> impl Iterator<Item = &OfAction> {
        self.actions.iter().chain(self.write_actions.iter().flatten())
    }
}

/// The flow-mod commands (`OFPFC_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowModCommand {
    /// Add a rule, replacing one with the same match and priority (counters reset).
    Add,
    /// Change the actions of every rule within the match.
    Modify,
    /// Change the actions of the rule with exactly this match and priority.
    ModifyStrict,
    /// Delete every rule within the match.
    Delete,
    /// Delete the rule with exactly this match and priority.
    DeleteStrict,
}

/// An OpenFlow flow-mod: a command applied to the rules that `spec` selects.
///
/// For modify/delete, `spec.table` may be [`TABLE_ALL`], `spec.cookie`/`spec.cookie_mask`
/// select by cookie, and `out_port` (unless [`ofpp::ANY`]) keeps only rules that output there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowMod {
    /// What to do.
    pub command: FlowModCommand,
    /// Table, priority, match, cookie, timeouts, instructions.
    pub spec: FlowSpec,
    /// Delete filter: only rules with an action that outputs to this port (1.3 ignores it
    /// for modify; the `ovs-ofctl` syntax path applies it to both).
    pub out_port: u32,
    /// Delete filter: only rules with a `group` action to this group ([`ofpg::ANY`] = all).
    pub out_group: u32,
    /// The buffered packet to run through the new rule (`None` = `OFP_NO_BUFFER`). This
    /// switch keeps no buffers: the agent answers `OFPBRC_BUFFER_UNKNOWN` for others.
    pub buffer_id: Option<u32>,
    /// OpenFlow 1.0 modify semantics: a modify that selects no rule adds `spec`.
    pub add_if_missing: bool,
}

impl FlowMod {
    /// An add of `spec`.
    pub fn add(spec: FlowSpec) -> FlowMod {
        FlowMod::new(FlowModCommand::Add, spec)
    }
    /// `command` on `spec` with no filters.
    pub fn new(command: FlowModCommand, spec: FlowSpec) -> FlowMod {
        FlowMod {
            command,
            spec,
            out_port: ofpp::ANY,
            out_group: ofpg::ANY,
            buffer_id: None,
            add_if_missing: false,
        }
    }
}

/// Port names ↔ OpenFlow port numbers, for parsing (`in_port=eth0`, `output:eth0`) and for
/// checking that outputs go to ports that exist.
#[derive(Clone, Debug, Default)]
pub struct PortNames {
    by_name: HashMap<String, u32>,
    by_number: HashMap<u32, String>,
}

impl PortNames {
    /// No ports.
    pub fn new() -> PortNames {
        PortNames::default()
    }
    /// Adds (or renames) port `number` as `name`.
    pub fn insert(&mut self, name: &str, number: u32) {
        if let Some(old) = self.by_number.insert(number, name.to_string()) {
            self.by_name.remove(&old);
        }
        if let Some(old_no) = self.by_name.insert(name.to_string(), number) {
            if old_no != number {
                self.by_number.remove(&old_no);
            }
        }
    }
    /// The number of the port named `name`.
    pub fn number(&self, name: &str) -> Option<u32> {
        self.by_name.get(name).copied()
    }
    /// The name of port `number`.
    pub fn name(&self, number: u32) -> Option<&str> {
        self.by_number.get(&number).map(String::as_str)
    }
    /// Whether port `number` exists.
    pub fn contains(&self, number: u32) -> bool {
        self.by_number.contains_key(&number)
    }
    /// All port numbers, ascending.
    pub fn numbers(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.by_number.keys().copied().collect();
        v.sort_unstable();
        v
    }
}

impl<'a> FromIterator<(&'a str, u32)> for PortNames {
    fn from_iter<I: IntoIterator<Item = (&'a str, u32)>>(iter: I) -> Self {
        let mut p = PortNames::new();
        for (name, no) in iter {
            p.insert(name, no);
        }
        p
    }
}

// ---------------------------------------------------------------------------------------
// Printing, in `ovs-ofctl dump-flows` style (field order and spelling as OVS's
// `match_format` and `ofpacts_format`); everything printed parses back with
// [`parse_flow`](super::syntax::parse_flow).

fn mac(m: &[u8; 6]) -> String {
    format!("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
}

fn ipv4(a: &[u8]) -> String {
    format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3])
}

fn push_mac(out: &mut Vec<String>, name: &str, v: &[u8; 6], m: &[u8; 6]) {
    match m {
        [0, 0, 0, 0, 0, 0] => {}
        [0xff, 0xff, 0xff, 0xff, 0xff, 0xff] => out.push(format!("{name}={}", mac(v))),
        _ => out.push(format!("{name}={}/{}", mac(v), mac(m))),
    }
}

fn push_ipv4(out: &mut Vec<String>, name: &str, v: &[u8], m: &[u8]) {
    let mask = u32::from_be_bytes([m[0], m[1], m[2], m[3]]);
    if mask == 0 {
        return;
    }
    let s = if mask == u32::MAX {
        ipv4(v)
    } else if mask.leading_ones() + mask.trailing_zeros() == 32 {
        format!("{}/{}", ipv4(v), mask.leading_ones())
    } else {
        format!("{}/{}", ipv4(v), ipv4(m))
    };
    out.push(format!("{name}={s}"));
}

fn push_ipv6(out: &mut Vec<String>, name: &str, v: &[u8; 16], m: &[u8; 16]) {
    let mask = u128::from_be_bytes(*m);
    if mask == 0 {
        return;
    }
    let a = std::net::Ipv6Addr::from(*v);
    let s = if mask == u128::MAX {
        a.to_string()
    } else if mask.leading_ones() + mask.trailing_zeros() == 128 {
        format!("{a}/{}", mask.leading_ones())
    } else {
        format!("{a}/{}", std::net::Ipv6Addr::from(*m))
    };
    out.push(format!("{name}={s}"));
}

/// `name=V` (full mask, decimal) or `name=0xV/0xM`.
fn push_int(out: &mut Vec<String>, name: &str, v: u64, m: u64, full: u64) {
    if m == 0 {
    } else if m == full {
        out.push(format!("{name}={v}"));
    } else {
        out.push(format!("{name}=0x{v:x}/0x{m:x}"));
    }
}

/// `name=0xV` or `name=0xV/0xM`.
fn push_hex(out: &mut Vec<String>, name: &str, v: u64, m: u64, full: u64) {
    if m == 0 {
    } else if m == full {
        out.push(format!("{name}=0x{v:x}"));
    } else {
        out.push(format!("{name}=0x{v:x}/0x{m:x}"));
    }
}

const TCP_FLAG_NAMES: [&str; 9] = ["fin", "syn", "rst", "psh", "ack", "urg", "ece", "cwr", "ns"];

impl Match {
    /// The match's fields in `dump-flows` order, each `name=value` (or a protocol shorthand).
    pub fn fields(&self) -> Vec<String> {
        use super::syntax::*;
        let (k, m) = (&self.key, &self.mask.0);
        let mut out = Vec::new();
        let dl = (m.dl_type == 0xffff).then_some(k.dl_type);
        let proto = (m.nw_proto == 0xff).then_some(k.nw_proto);
        let shorthand = match (dl, proto) {
            (Some(ETH_IP), Some(IPPROTO_ICMP)) => Some(("icmp", true)),
            (Some(ETH_IP), Some(IPPROTO_TCP)) => Some(("tcp", true)),
            (Some(ETH_IP), Some(IPPROTO_UDP)) => Some(("udp", true)),
            (Some(ETH_IP), Some(IPPROTO_SCTP)) => Some(("sctp", true)),
            (Some(ETH_IPV6), Some(IPPROTO_ICMPV6)) => Some(("icmp6", true)),
            (Some(ETH_IPV6), Some(IPPROTO_TCP)) => Some(("tcp6", true)),
            (Some(ETH_IPV6), Some(IPPROTO_UDP)) => Some(("udp6", true)),
            (Some(ETH_IPV6), Some(IPPROTO_SCTP)) => Some(("sctp6", true)),
            (Some(ETH_IP), _) => Some(("ip", false)),
            (Some(ETH_IPV6), _) => Some(("ipv6", false)),
            (Some(ETH_ARP), _) => Some(("arp", false)),
            (Some(ETH_RARP), _) => Some(("rarp", false)),
            _ => None,
        };
        let proto_in_shorthand = matches!(shorthand, Some((_, true)));
        if let Some((s, _)) = shorthand {
            out.push(s.to_string());
        }
        push_hex(&mut out, "tun_id", k.tun_id, m.tun_id, u64::MAX);
        push_ipv4(&mut out, "tun_src", &k.tun_src.to_be_bytes(), &m.tun_src.to_be_bytes());
        push_ipv4(&mut out, "tun_dst", &k.tun_dst.to_be_bytes(), &m.tun_dst.to_be_bytes());
        push_hex(&mut out, "metadata", k.metadata, m.metadata, u64::MAX);
        if m.in_port == u32::MAX {
            match ofpp::name(k.in_port) {
                Some(n) => out.push(format!("in_port={n}")),
                None => out.push(format!("in_port={}", k.in_port)),
            }
        } else {
            push_hex(&mut out, "in_port", k.in_port as u64, m.in_port as u64, u32::MAX as u64);
        }
        // VLAN, as OVS's format_vlan_tci.
        if m.vlan_tci != 0 {
            let (vid_m, pcp_m, cfi) =
                (m.vlan_tci & VLAN_VID_MASK, m.vlan_tci & 0xe000, m.vlan_tci & VLAN_PRESENT);
            if cfi != 0
                && k.vlan_tci & VLAN_PRESENT != 0
                && (vid_m == 0 || vid_m == VLAN_VID_MASK)
                && (pcp_m == 0 || pcp_m == 0xe000)
                && (vid_m != 0 || pcp_m != 0)
            {
                if vid_m != 0 {
                    out.push(format!("dl_vlan={}", k.vlan_tci & VLAN_VID_MASK));
                }
                if pcp_m != 0 {
                    out.push(format!("dl_vlan_pcp={}", k.vlan_tci >> VLAN_PCP_SHIFT));
                }
            } else if m.vlan_tci == 0xffff {
                out.push(format!("vlan_tci=0x{:04x}", k.vlan_tci));
            } else {
                out.push(format!("vlan_tci=0x{:04x}/0x{:04x}", k.vlan_tci, m.vlan_tci));
            }
        }
        push_mac(&mut out, "dl_src", &k.dl_src, &m.dl_src);
        push_mac(&mut out, "dl_dst", &k.dl_dst, &m.dl_dst);
        if shorthand.is_none() && m.dl_type != 0 {
            push_hex(&mut out, "dl_type", k.dl_type as u64, m.dl_type as u64, 0xffff);
            if m.dl_type == 0xffff {
                let last = out.len() - 1;
                out[last] = format!("dl_type=0x{:04x}", k.dl_type);
            }
        }
        let is_arp = matches!(dl, Some(ETH_ARP | ETH_RARP));
        if dl == Some(ETH_IPV6) {
            push_ipv6(&mut out, "ipv6_src", &k.nw_src, &m.nw_src);
            push_ipv6(&mut out, "ipv6_dst", &k.nw_dst, &m.nw_dst);
            if m.ipv6_label == 0xfffff {
                out.push(format!("ipv6_label=0x{:05x}", k.ipv6_label));
            } else if m.ipv6_label != 0 {
                out.push(format!("ipv6_label=0x{:05x}/0x{:05x}", k.ipv6_label, m.ipv6_label));
            }
        } else if is_arp {
            push_ipv4(&mut out, "arp_spa", &k.nw_src, &m.nw_src);
            push_ipv4(&mut out, "arp_tpa", &k.nw_dst, &m.nw_dst);
        } else {
            push_ipv4(&mut out, "nw_src", &k.nw_src, &m.nw_src);
            push_ipv4(&mut out, "nw_dst", &k.nw_dst, &m.nw_dst);
        }
        if is_arp {
            push_int(&mut out, "arp_op", k.nw_proto as u64, m.nw_proto as u64, 0xff);
        } else if !proto_in_shorthand {
            push_int(&mut out, "nw_proto", k.nw_proto as u64, m.nw_proto as u64, 0xff);
        }
        push_mac(&mut out, "arp_sha", &k.arp_sha, &m.arp_sha);
        push_mac(&mut out, "arp_tha", &k.arp_tha, &m.arp_tha);
        if m.nw_tos & 0xfc != 0 {
            out.push(format!("nw_tos={}", k.nw_tos & 0xfc));
        }
        if m.nw_tos & 0x03 != 0 {
            out.push(format!("nw_ecn={}", k.nw_tos & 0x03));
        }
        push_int(&mut out, "nw_ttl", k.nw_ttl as u64, m.nw_ttl as u64, 0xff);
        let icmp = matches!(
            (dl, proto),
            (Some(ETH_IP), Some(IPPROTO_ICMP)) | (Some(ETH_IPV6), Some(IPPROTO_ICMPV6))
        );
        if icmp && m.tp_src & 0xff00 == 0 && m.tp_dst & 0xff00 == 0 {
            push_int(&mut out, "icmp_type", k.tp_src as u64, m.tp_src as u64, 0xff);
            push_int(&mut out, "icmp_code", k.tp_dst as u64, m.tp_dst as u64, 0xff);
        } else {
            push_int(&mut out, "tp_src", k.tp_src as u64, m.tp_src as u64, 0xffff);
            push_int(&mut out, "tp_dst", k.tp_dst as u64, m.tp_dst as u64, 0xffff);
        }
        let tf = m.tcp_flags & 0x0fff;
        if tf == 0x0fff && k.tcp_flags == 0 {
            out.push("tcp_flags=0".to_string());
        } else if tf == 0x0fff && k.tcp_flags & !0x1ff == 0 {
            let names: Vec<&str> = TCP_FLAG_NAMES
                .iter()
                .enumerate()
                .filter(|(i, _)| k.tcp_flags & (1 << i) != 0)
                .map(|(_, n)| *n)
                .collect();
            out.push(format!("tcp_flags={}", names.join("|")));
        } else if tf == 0x0fff {
            out.push(format!("tcp_flags=0x{:03x}", k.tcp_flags));
        } else if tf != 0 && tf & !0x1ff == 0 {
            let mut s = String::from("tcp_flags=");
            for (i, n) in TCP_FLAG_NAMES.iter().enumerate() {
                if tf & (1 << i) != 0 {
                    s.push(if k.tcp_flags & (1 << i) != 0 { '+' } else { '-' });
                    s.push_str(n);
                }
            }
            out.push(s);
        } else if tf != 0 {
            out.push(format!("tcp_flags=0x{:03x}/0x{:03x}", k.tcp_flags, tf));
        }
        out
    }
}

impl fmt::Display for Match {
    /// `dump-flows` style, comma-separated (empty for the catch-all).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.fields().join(","))
    }
}

impl fmt::Display for OfAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OfAction::Output(p) => write!(f, "output:{p}"),
            OfAction::InPort => f.write_str("IN_PORT"),
            OfAction::Normal => f.write_str("NORMAL"),
            OfAction::Flood => f.write_str("FLOOD"),
            OfAction::All => f.write_str("ALL"),
            OfAction::Controller { max_len } => write!(f, "CONTROLLER:{max_len}"),
            OfAction::Local => f.write_str("LOCAL"),
            OfAction::SetEthSrc(m) => write!(f, "mod_dl_src:{}", mac(m)),
            OfAction::SetEthDst(m) => write!(f, "mod_dl_dst:{}", mac(m)),
            OfAction::SetIpv4Src(a) => write!(f, "mod_nw_src:{}", ipv4(a)),
            OfAction::SetIpv4Dst(a) => write!(f, "mod_nw_dst:{}", ipv4(a)),
            OfAction::SetIpv6Src(a) => write!(f, "set_field:{}->ipv6_src", std::net::Ipv6Addr::from(*a)),
            OfAction::SetIpv6Dst(a) => write!(f, "set_field:{}->ipv6_dst", std::net::Ipv6Addr::from(*a)),
            OfAction::SetNwTos(t) => write!(f, "mod_nw_tos:{t}"),
            OfAction::SetNwTtl(t) => write!(f, "mod_nw_ttl:{t}"),
            OfAction::DecTtl => f.write_str("dec_ttl"),
            OfAction::SetTpSrc(p) => write!(f, "mod_tp_src:{p}"),
            OfAction::SetTpDst(p) => write!(f, "mod_tp_dst:{p}"),
            OfAction::PushVlan(t) => write!(f, "push_vlan:0x{t:04x}"),
            OfAction::SetVlanVid(v) => write!(f, "mod_vlan_vid:{v}"),
            OfAction::SetVlanPcp(p) => write!(f, "mod_vlan_pcp:{p}"),
            OfAction::StripVlan => f.write_str("strip_vlan"),
            OfAction::SetTunId(v) => write!(f, "set_field:0x{v:x}->tun_id"),
            OfAction::SetMetadata(v) => write!(f, "set_field:0x{v:x}->metadata"),
            OfAction::Group(g) => write!(f, "group:{g}"),
            OfAction::SetQueue(q) => write!(f, "set_queue:{q}"),
            OfAction::Resubmit { in_port, table } => {
                f.write_str("resubmit(")?;
                if let Some(p) = in_port {
                    match ofpp::name(*p) {
                        Some(n) => f.write_str(n)?,
                        None => write!(f, "{p}")?,
                    }
                }
                f.write_str(",")?;
                if let Some(t) = table {
                    write!(f, "{t}")?;
                }
                f.write_str(")")
            }
            OfAction::Learn(l) => write!(f, "{l}"),
        }
    }
}

/// An action list plus goto-table, as after `actions=` (`drop` when there is neither).
pub fn format_actions(actions: &[OfAction], goto_table: Option<TableId>) -> String {
    let mut parts: Vec<String> = actions.iter().map(|a| a.to_string()).collect();
    if let Some(t) = goto_table {
        parts.push(format!("goto_table:{t}"));
    }
    if parts.is_empty() {
        "drop".to_string()
    } else {
        parts.join(",")
    }
}

impl FlowSpec {
    /// The instructions as after `actions=`, in `ovs-ofctl` order: `meter:N`, the
    /// apply-actions, `clear_actions`, `write_actions(...)`, `write_metadata:V/M`,
    /// `goto_table:N` (`drop` when there is nothing).
    pub fn format_instructions(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if let Some(m) = self.meter {
            parts.push(format!("meter:{m}"));
        }
        parts.extend(self.actions.iter().map(|a| a.to_string()));
        if self.clear_actions {
            parts.push("clear_actions".into());
        }
        if let Some(w) = &self.write_actions {
            let inner: Vec<String> = w.iter().map(|a| a.to_string()).collect();
            parts.push(format!("write_actions({})", inner.join(",")));
        }
        if let Some((v, m)) = self.write_metadata {
            if m == u64::MAX {
                parts.push(format!("write_metadata:0x{v:x}"));
            } else {
                parts.push(format!("write_metadata:0x{v:x}/0x{m:x}"));
            }
        }
        if let Some(t) = self.goto_table {
            parts.push(format!("goto_table:{t}"));
        }
        if parts.is_empty() {
            "drop".to_string()
        } else {
            parts.join(",")
        }
    }

    /// The match part of a `dump-flows` line: `priority=P,` (unless the default) then the
    /// match fields, e.g. `priority=10,tcp,in_port=1,tp_dst=80`.
    pub fn format_match(&self) -> String {
        let mut fields = self.matches.fields();
        if self.priority != DEFAULT_PRIORITY {
            fields.insert(0, format!("priority={}", self.priority));
        }
        fields.join(",")
    }
}

impl fmt::Display for FlowSpec {
    /// An `add-flows` line that [`parse_flow`](super::syntax::parse_flow) reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "table={}, cookie=0x{:x}", self.table, self.cookie)?;
        if self.cookie_mask != 0 {
            write!(f, "/0x{:x}", self.cookie_mask)?;
        }
        if self.idle_timeout != 0 {
            write!(f, ", idle_timeout={}", self.idle_timeout)?;
        }
        if self.hard_timeout != 0 {
            write!(f, ", hard_timeout={}", self.hard_timeout)?;
        }
        let m = self.format_match();
        if !m.is_empty() {
            write!(f, ", {m}")?;
        }
        if self.flags & flags::SEND_FLOW_REM != 0 {
            f.write_str(", send_flow_rem")?;
        }
        if self.flags & flags::CHECK_OVERLAP != 0 {
            f.write_str(", check_overlap")?;
        }
        if self.flags & flags::RESET_COUNTS != 0 {
            f.write_str(", reset_counts")?;
        }
        if self.flags & flags::NO_PKT_COUNTS != 0 {
            f.write_str(", no_packet_counts")?;
        }
        if self.flags & flags::NO_BYT_COUNTS != 0 {
            f.write_str(", no_byte_counts")?;
        }
        write!(f, " actions={}", self.format_instructions())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ofproto::syntax::parse_flow;
    use proptest::prelude::*;

    fn ports() -> PortNames {
        [("eth0", 1), ("eth1", 2), ("p3", 3)].into_iter().collect()
    }

    fn roundtrip(line: &str) -> FlowSpec {
        let spec = parse_flow(line, &ports()).unwrap_or_else(|e| panic!("{line}: {e}"));
        let printed = spec.to_string();
        let again = parse_flow(&printed, &ports()).unwrap_or_else(|e| panic!("{printed}: {e}"));
        assert_eq!(spec, again, "{line} -> {printed}");
        spec
    }

    #[test]
    fn parses_and_prints_like_ovs_ofctl() {
        let s = roundtrip(
            "priority=10,tcp,in_port=1,nw_dst=10.0.0.0/8,tp_dst=80,dl_vlan=5,actions=mod_vlan_vid:3,output:2",
        );
        assert_eq!(s.format_match(), "priority=10,tcp,in_port=1,dl_vlan=5,nw_dst=10.0.0.0/8,tp_dst=80");
        assert_eq!(format_actions(&s.actions, s.goto_table), "mod_vlan_vid:3,output:2");
        let s = roundtrip(
            "table=3,arp,arp_spa=1.2.3.4,arp_op=2,arp_sha=00:00:00:00:00:01/ff:ff:ff:ff:ff:00,dl_vlan=0xffff,\
             cookie=0x5,idle_timeout=5,dl_src=00:00:00:00:00:02,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00,\
             tun_id=0x5/0xff,metadata=0x3,actions=resubmit(,4),goto_table:5",
        );
        assert_eq!(
            s.format_match(),
            "arp,tun_id=0x5/0xff,metadata=0x3,vlan_tci=0x0000/0x1fff,dl_src=00:00:00:00:00:02,\
             dl_dst=01:00:00:00:00:00/01:00:00:00:00:00,arp_spa=1.2.3.4,arp_op=2,arp_sha=00:00:00:00:00:00/ff:ff:ff:ff:ff:00"
        );
        assert_eq!((s.table, s.cookie, s.idle_timeout, s.goto_table), (3, 5, 5, Some(5)));
        let s = roundtrip(
            "icmp,icmp_type=3,icmp_code=1,nw_tos=4,nw_ecn=1,nw_ttl=3,nw_src=1.2.3.0/255.255.255.0,dl_vlan_pcp=3,\
             actions=FLOOD,CONTROLLER:100,LOCAL,ALL,NORMAL,in_port,dec_ttl,strip_vlan,mod_vlan_pcp:3,mod_nw_tos:8,\
             mod_nw_ttl:4,mod_dl_src:00:00:00:00:00:01,mod_nw_src:1.1.1.1,CONTROLLER",
        );
        assert_eq!(
            s.format_match(),
            "icmp,dl_vlan_pcp=3,nw_src=1.2.3.0/24,nw_tos=4,nw_ecn=1,nw_ttl=3,icmp_type=3,icmp_code=1"
        );
        assert_eq!(
            format_actions(&s.actions, None),
            "FLOOD,CONTROLLER:100,LOCAL,ALL,NORMAL,IN_PORT,dec_ttl,strip_vlan,mod_vlan_pcp:3,mod_nw_tos:8,\
             mod_nw_ttl:4,mod_dl_src:00:00:00:00:00:01,mod_nw_src:1.1.1.1,CONTROLLER:65535"
        );
        let s = roundtrip("tcp6,ipv6_src=2001:db8::/32,ipv6_label=5,tp_src=0x10/0xfff0,tcp_flags=+syn-ack,vlan_tci=0x1000/0x1000,actions=mod_tp_src:3,set_field:0x5->tun_id,set_field:3->ip_dscp,output:p3");
        assert_eq!(
            s.format_match(),
            "tcp6,vlan_tci=0x1000/0x1000,ipv6_src=2001:db8::/32,ipv6_label=0x00005,tp_src=0x10/0xfff0,tcp_flags=+syn-ack"
        );
        assert_eq!(s.actions[3], OfAction::Output(3));
        assert_eq!(s.actions[2], OfAction::SetNwTos(12));
        let s = roundtrip("udp,ip_dscp=3,in_port=eth1 actions=1,2,push_vlan:0x8100,pop_vlan,set_field:10.0.0.1->nw_dst,resubmit:3,resubmit(eth0,7)");
        assert_eq!(s.format_match(), "udp,in_port=2,nw_tos=12");
        assert_eq!(s.actions.len(), 7);
        roundtrip("ip,nw_src=10.0.0.0/255.0.255.0,actions=drop");
        roundtrip("ipv6,ipv6_dst=::1/ffff::ff,actions=set_field:::2->ipv6_dst");
        roundtrip("tcp,tcp_flags=0x002/0x812,actions=");
        roundtrip("dl_type=0x88cc,actions=LOCAL");
        roundtrip("vlan_tci=0x2005/0xefff actions=drop");
        roundtrip("cookie=0x10/0xff,in_port=LOCAL,actions=drop");
        // dump-flows output parses back.
        let d = parse_flow(" cookie=0x0, duration=1.234s, table=0, n_packets=3, n_bytes=180, priority=10,in_port=1 actions=output:2", &ports()).unwrap();
        assert_eq!((d.priority, d.actions.clone()), (10, vec![OfAction::Output(2)]));
        assert_eq!(parse_flow("actions=", &ports()).unwrap().actions, vec![]);
    }

    #[test]
    fn instructions_and_flags_parse_and_print() {
        let s = roundtrip(
            "table=1,send_flow_rem,check_overlap,ip,actions=meter:3,output:2,clear_actions,\
             write_actions(set_field:10.0.0.1->nw_dst,group:7,set_queue:2,output:1),write_metadata:0x5/0xff,goto_table:4",
        );
        assert_eq!(s.meter, Some(3));
        assert_eq!(s.actions, vec![OfAction::Output(2)]);
        assert!(s.clear_actions);
        assert_eq!(
            s.write_actions,
            Some(vec![
                OfAction::SetIpv4Dst([10, 0, 0, 1]),
                OfAction::Group(7),
                OfAction::SetQueue(2),
                OfAction::Output(1)
            ])
        );
        assert_eq!((s.write_metadata, s.goto_table), (Some((5, 0xff)), Some(4)));
        assert_eq!(s.flags, flags::SEND_FLOW_REM | flags::CHECK_OVERLAP);
        assert_eq!(
            s.format_instructions(),
            "meter:3,output:2,clear_actions,write_actions(mod_nw_dst:10.0.0.1,group:7,set_queue:2,output:1),\
             write_metadata:0x5/0xff,goto_table:4"
        );
        // Order of instructions in the text does not matter; goto_table stays last.
        let t = roundtrip("actions=write_metadata:0x7,group:1,controller(max_len=64),meter:9");
        assert_eq!(t.format_instructions(), "meter:9,group:1,CONTROLLER:64,write_metadata:0x7");
        roundtrip("reset_counts,no_packet_counts,no_byte_counts,actions=write_actions()");
        let c = roundtrip("actions=output:CONTROLLER:64,output:controller,write_actions(CONTROLLER:9)");
        assert_eq!(
            c.actions,
            vec![OfAction::Controller { max_len: 64 }, OfAction::Controller { max_len: 0xffff }]
        );
        for bad in [
            "actions=write_actions(resubmit(,2))",
            "actions=meter:1,meter:2",
            "actions=clear_actions,clear_actions",
            "actions=goto_table:3,meter:1",
            "actions=group:0xffffff01",
        ] {
            assert!(parse_flow(bad, &ports()).is_err(), "{bad}");
        }
    }

    /// Match printing compared with `ovs-ofctl -O OpenFlow13 parse-flow` 3.1 output.
    #[test]
    fn prints_matches_like_ovs() {
        for (line, ovs) in [
            (
                "priority=7,ip,in_port=2,dl_src=0a:00:01:00:00:02/ff:ff:00:00:00:00,dl_vlan=0xffff,nw_src=1.2.0.0/16,\
                 nw_dst=1.2.3.4/255.0.255.0,nw_proto=89,ip_dscp=3,nw_ecn=2,nw_ttl=9,tun_id=0x7,metadata=0x9",
                "priority=7,ip,tun_id=0x7,metadata=0x9,in_port=2,vlan_tci=0x0000/0x1fff,\
                 dl_src=0a:00:00:00:00:00/ff:ff:00:00:00:00,nw_src=1.2.0.0/16,nw_dst=1.0.3.0/255.0.255.0,nw_proto=89,\
                 nw_tos=12,nw_ecn=2,nw_ttl=9",
            ),
            (
                "ipv6,ipv6_src=2001:db8::1/64,ipv6_dst=::1,ipv6_label=0x5/0xf,vlan_tci=0x1234/0xf0f0,dl_vlan_pcp=3",
                "ipv6,vlan_tci=0x7030/0xf0f0,ipv6_src=2001:db8::/64,ipv6_dst=::1,ipv6_label=0x00005/0x0000f",
            ),
            (
                "rarp,arp_spa=1.2.3.0/24,arp_tpa=1.1.1.1,arp_op=3,arp_tha=00:00:00:00:00:05",
                "rarp,arp_spa=1.2.3.0/24,arp_tpa=1.1.1.1,arp_op=3,arp_tha=00:00:00:00:00:05",
            ),
            ("icmp6,icmp_type=135,icmp_code=0,dl_type=0x86dd", "icmp6,icmp_type=135,icmp_code=0"),
            (
                "tcp,tcp_flags=0x012/0x0ff,tp_src=5,tp_dst=0x50/0xfff0",
                "tcp,tp_src=5,tp_dst=0x50/0xfff0,tcp_flags=-fin+syn-rst-psh+ack-urg-ece-cwr",
            ),
            ("dl_type=0x88cc,dl_vlan=3,dl_vlan_pcp=2", "dl_vlan=3,dl_vlan_pcp=2,dl_type=0x88cc"),
            ("tcp,tcp_flags=0x012", "tcp,tcp_flags=syn|ack"),
            ("tcp,tcp_flags=0", "tcp,tcp_flags=0"),
            ("tcp,tcp_flags=+syn+ack", "tcp,tcp_flags=+syn+ack"),
        ] {
            let spec = parse_flow(&format!("{line},actions=drop"), &ports()).unwrap();
            assert_eq!(spec.format_match(), ovs);
            assert_eq!(parse_flow(&format!("{ovs},actions=drop"), &ports()).unwrap(), spec);
        }
    }

    /// A random valid `add-flow` line: a protocol, then fields its prerequisites allow.
    fn arb_line() -> impl Strategy<Value = String> {
        let proto = prop::sample::select(vec![
            "", "ip", "ipv6", "arp", "rarp", "tcp", "udp6", "icmp", "icmp6", "sctp",
        ]);
        let nums = prop::collection::vec(any::<u32>(), 24);
        let picks = prop::collection::vec(any::<bool>(), 24);
        let acts = prop::collection::vec(
            prop::sample::select(vec![
                "output:1",
                "2",
                "in_port",
                "FLOOD",
                "ALL",
                "NORMAL",
                "LOCAL",
                "CONTROLLER:64",
                "dec_ttl",
                "mod_dl_src:0a:00:00:00:00:01",
                "mod_nw_dst:10.9.8.7",
                "mod_nw_tos:12",
                "mod_nw_ttl:9",
                "mod_tp_src:7",
                "mod_tp_dst:8",
                "push_vlan:0x88a8",
                "mod_vlan_vid:100",
                "mod_vlan_pcp:5",
                "pop_vlan",
                "set_field:fe80::1->ipv6_src",
                "set_field:0x7->tun_id",
                "set_field:9->metadata",
                "resubmit(,3)",
                "resubmit(p3,4)",
                "resubmit:2",
            ]),
            0..5,
        );
        (proto, nums, picks, acts).prop_map(|(proto, n, pick, acts)| {
            let mac = |x: u32| format!("{:02x}:00:{:02x}:00:00:{:02x}", x & 0xff, (x >> 8) & 0xff, x >> 24);
            let ip = |x: u32| std::net::Ipv4Addr::from(x).to_string();
            let mut f: Vec<String> = vec![proto.to_string()];
            let mut cand: Vec<String> = vec![
                format!("table={}", n[0] % 4),
                format!("priority={}", n[1] & 0xffff),
                format!("cookie=0x{:x}", n[2]),
                format!("idle_timeout={}", n[3] & 0xffff),
                format!("hard_timeout={}", n[4] & 0xffff),
                format!(
                    "in_port={}",
                    if n[5] % 2 == 0 { "eth1".to_string() } else { (n[5] % 9).to_string() }
                ),
                format!("dl_src={}/{}", mac(n[6]), mac(n[7])),
                format!("dl_dst={}", mac(n[8])),
                if n[9] % 3 == 0 { "dl_vlan=0xffff".into() } else { format!("dl_vlan={}", n[9] & 0xfff) },
                format!("dl_vlan_pcp={}", n[10] % 8),
                format!("vlan_tci=0x{:x}/0x{:x}", n[11] & 0xffff, n[11] >> 16),
                format!("tun_id=0x{:x}/0x{:x}", n[12], n[13]),
                format!("metadata={}", n[14]),
            ];
            let prefix = n[15] % 33;
            match proto {
                "ip" => cand.extend([
                    format!("nw_src={}/{}", ip(n[16]), prefix),
                    format!("nw_dst={}/{}", ip(n[17]), ip(n[18])),
                    format!("nw_proto={}", n[19] & 0xff),
                    format!("ip_dscp={}", n[20] % 64),
                    format!("nw_ecn={}", n[21] % 4),
                    format!("nw_ttl={}", n[22] & 0xff),
                ]),
                "ipv6" => cand.extend([
                    format!(
                        "ipv6_src={}/{}",
                        std::net::Ipv6Addr::from((n[16] as u128) << 96 | n[17] as u128),
                        n[18] % 129
                    ),
                    format!("ipv6_dst={}", std::net::Ipv6Addr::from(n[19] as u128)),
                    format!("ipv6_label=0x{:x}/0x{:x}", n[20] & 0xfffff, n[21] & 0xfffff),
                ]),
                "arp" | "rarp" => cand.extend([
                    format!("arp_spa={}/{}", ip(n[16]), prefix),
                    format!("arp_tpa={}", ip(n[17])),
                    format!("arp_op={}", n[18] & 0xff),
                    format!("arp_sha={}", mac(n[19])),
                    format!("arp_tha={}/{}", mac(n[20]), mac(n[21])),
                ]),
                "tcp" | "udp6" | "sctp" => cand.extend([
                    format!("tp_src={}", n[16] & 0xffff),
                    format!("tp_dst=0x{:x}/0x{:x}", n[17] & 0xffff, n[18] & 0xffff),
                    if proto == "tcp" {
                        format!("tcp_flags=0x{:x}/0x{:x}", n[19] & 0xfff, n[20] & 0xfff)
                    } else {
                        String::new()
                    },
                    if proto == "tcp" { "tcp_flags=+syn-ack+fin".into() } else { String::new() },
                    if proto == "tcp" { format!("tcp_flags=0x{:x}", n[21] & 0x3ff) } else { String::new() },
                ]),
                "icmp" | "icmp6" => cand
                    .extend([format!("icmp_type={}", n[16] & 0xff), format!("icmp_code={}", n[17] & 0xff)]),
                _ => cand.push(format!("dl_type=0x{:x}", n[16] & 0xffff)),
            }
            for (c, p) in cand.into_iter().zip(pick.iter().cycle()) {
                if *p && !c.is_empty() {
                    f.push(c);
                }
            }
            format!("{} actions={}", f.join(","), acts.join(","))
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]
        #[test]
        fn print_then_parse_is_identity(line in arb_line()) {
            let spec = parse_flow(&line, &ports());
            prop_assert!(spec.is_ok(), "{} -> {:?}", line, spec);
            let Ok(spec) = spec else { return Ok(()) };
            let printed = spec.to_string();
            prop_assert_eq!(parse_flow(&printed, &ports()), Ok(spec.clone()), "{} -> {}", line, printed);
        }
    }

    #[test]
    fn match_is_normalized_and_within() {
        let mut k = FlowKey { in_port: 3, tp_dst: 80, ..Default::default() };
        let mut m = FlowMask::catchall();
        m.0.in_port = !0;
        let a = Match::new(k, m);
        assert_eq!(a.key().tp_dst, 0);
        k.tp_dst = 81;
        assert_eq!(a, Match::new(k, m));
        assert!(a.matches(&k));
        assert!(a.is_within(&Match::catchall()));
        assert!(!Match::catchall().is_within(&a));
    }

    #[test]
    fn port_names_rename() {
        let mut p: PortNames = [("a", 1), ("b", 2)].into_iter().collect();
        p.insert("c", 1);
        assert_eq!(p.number("a"), None);
        assert_eq!(p.number("c"), Some(1));
        assert_eq!(p.name(1), Some("c"));
        assert_eq!(p.numbers(), vec![1, 2]);
    }
}
