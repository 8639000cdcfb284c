//! Translation: run a packet key through the OpenFlow [`Pipeline`] and produce the datapath
//! actions for it, plus the megaflow mask: every bit of the key the result depended on.
//!
//! The walk starts at table 0, follows `goto_table` and `resubmit`, and applies each rule's
//! actions in order to a working copy of the key (the packet as it is at that point), so
//! later decisions see earlier changes: `mod_vlan_vid` pushes a tag on an untagged packet and
//! rewrites the TCI of a tagged one; `strip_vlan` on an untagged packet does nothing;
//! `mod_nw_src` on a non-IPv4 packet is skipped; `output:N` with N the ingress port is
//! dropped (use `in_port`). A table miss ends that branch of the walk (OpenFlow 1.3: drop).
//!
//! **Soundness:** every key equal to the input under [`Translation::mask`] translates to the
//! same actions, rules and error. The mask is the union of the classifier masks of every
//! lookup plus the fields each action decision read (dl_type and nw_proto for L3/L4 sets,
//! vlan_tci for push-vs-set, in_port for FLOOD/ALL/`in_port`/output-to-ingress, nw_ttl for
//! `dec_ttl`).

use crate::datapath::actions::DpAction;
use crate::datapath::flow::{FlowKey, FlowMask, FRAG_LATER, VLAN_PRESENT, VLAN_VID_MASK};
use crate::netdev::DpPortNo;

use super::rule::{ofpp, OfAction, TableId};
use super::syntax::{ETH_IP, ETH_IPV6, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP};
use super::table::{Pipeline, RuleId};

/// Deepest chain of `resubmit`/`goto_table` followed (as OVS).
pub const MAX_DEPTH: usize = 64;
/// Most table lookups in one translation (bounds resubmit fan-out, as OVS).
pub const MAX_LOOKUPS: usize = 4096;

const VLAN_PCP_MASK: u16 = 0xe000;

/// Why a translation was abandoned.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum XlateError {
    /// An action this build cannot execute yet.
    #[error("{action}: unsupported in this build")]
    Unsupported {
        /// The action, as `ovs-ofctl` writes it.
        action: &'static str,
    },
    /// `resubmit`/`goto_table` nested deeper than [`MAX_DEPTH`].
    #[error("resubmit/goto_table nested deeper than {MAX_DEPTH}")]
    TooDeep,
    /// More than [`MAX_LOOKUPS`] table lookups.
    #[error("more than {MAX_LOOKUPS} table lookups")]
    TooManyLookups,
}

/// The result of translating one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Translation {
    /// Datapath actions, in order; no `Output` = drop. Empty when `error` is set.
    pub actions: Vec<DpAction>,
    /// The megaflow mask: the bits of the key this translation depended on.
    pub mask: FlowMask,
    /// Every rule hit, in order (credit their counters with the megaflow's stats).
    pub rules: Vec<RuleId>,
    /// Set when translation was abandoned; the packet should be dropped (a drop megaflow
    /// with `mask` is sound).
    pub error: Option<XlateError>,
}

/// The name of `a` when this build cannot translate it at all (it needs a later feature:
/// NORMAL, packet-in to a controller, the LOCAL port, tunnels), else `None`. Flow files with
/// such actions are refused at load time instead of dropping packets silently.
pub fn unsupported(a: &OfAction) -> Option<&'static str> {
    match a {
        OfAction::Normal => Some("NORMAL"),
        OfAction::Controller { .. } => Some("CONTROLLER"),
        OfAction::Local => Some("LOCAL"),
        OfAction::SetTunId(_) => Some("set_field:->tun_id"),
        _ => None,
    }
}

/// Translates the packet with key `key`. `ports` lists every port number of the bridge
/// (FLOOD and ALL output to each of them but the ingress port; outputs to ports not in it
/// are skipped, as OVS does).
pub fn translate(pipeline: &Pipeline, key: &FlowKey, ports: &[u32]) -> Translation {
    let mut cx = Ctx {
        pipeline,
        ports,
        key: *key,
        in_port: key.in_port,
        mask: FlowMask::catchall(),
        actions: Vec::new(),
        rules: Vec::new(),
        error: None,
        stop: false,
        lookups: 0,
    };
    cx.run_table(0, None, 0);
    let Ctx { mut actions, mask, rules, error, .. } = cx;
    if error.is_some() {
        actions.clear();
    }
    Translation { actions, mask, rules, error }
}

struct Ctx<'a> {
    pipeline: &'a Pipeline,
    ports: &'a [u32],
    /// The packet as the actions so far have made it.
    key: FlowKey,
    /// The real ingress port.
    in_port: u32,
    mask: FlowMask,
    actions: Vec<DpAction>,
    rules: Vec<RuleId>,
    error: Option<XlateError>,
    /// Set to end the whole translation (error, or `dec_ttl` killed the packet).
    stop: bool,
    lookups: usize,
}

impl Ctx<'_> {
    fn fail(&mut self, e: XlateError) {
        self.error.get_or_insert(e);
        self.stop = true;
    }

    /// Looks the packet up in `table` (as if received on `in_port`, if given) and runs the
    /// rule's instructions.
    fn run_table(&mut self, table: TableId, in_port: Option<u32>, depth: usize) {
        if self.stop {
            return;
        }
        if depth > MAX_DEPTH {
            return self.fail(XlateError::TooDeep);
        }
        self.lookups += 1;
        if self.lookups > MAX_LOOKUPS {
            return self.fail(XlateError::TooManyLookups);
        }
        let saved = self.key.in_port;
        if let Some(p) = in_port {
            self.key.in_port = p;
        }
        let (rule, m) = self.pipeline.table(table).lookup(&self.key);
        self.key.in_port = saved;
        self.mask = self.mask.union(&m);
        let Some(rule) = rule else { return };
        self.rules.push(rule.id);
        for a in &rule.actions {
            if self.stop {
                return;
            }
            self.action(a, table, depth);
        }
        if let Some(g) = rule.goto_table {
            self.run_table(g, None, depth + 1);
        }
    }

    fn examine_in_port(&mut self) {
        self.mask.0.in_port = !0;
    }

    fn is_ip_any(&mut self) -> bool {
        self.mask.0.dl_type = !0;
        matches!(self.key.dl_type, ETH_IP | ETH_IPV6)
    }

    fn is_ipv4(&mut self) -> bool {
        self.mask.0.dl_type = !0;
        self.key.dl_type == ETH_IP
    }

    fn is_ipv6(&mut self) -> bool {
        self.mask.0.dl_type = !0;
        self.key.dl_type == ETH_IPV6
    }

    /// TCP/UDP/SCTP with a transport header (not a later fragment).
    fn has_ports(&mut self) -> bool {
        if !self.is_ip_any() {
            return false;
        }
        self.mask.0.nw_proto = !0;
        self.mask.0.nw_frag |= FRAG_LATER;
        matches!(self.key.nw_proto, IPPROTO_TCP | IPPROTO_UDP | IPPROTO_SCTP)
            && self.key.nw_frag & FRAG_LATER == 0
    }

    fn is_tagged(&mut self) -> bool {
        self.mask.0.vlan_tci |= VLAN_PRESENT;
        self.key.vlan_tci & VLAN_PRESENT != 0
    }

    fn output(&mut self, port: u32) {
        if !self.ports.contains(&port) {
            return;
        }
        self.examine_in_port();
        if port != self.in_port {
            self.actions.push(DpAction::Output(DpPortNo(port)));
        }
    }

    /// Sets the VLAN TCI bits in `bits` (under `which`), pushing a tag if there is none.
    fn set_vlan(&mut self, bits: u16, which: u16) {
        if self.is_tagged() {
            // The new TCI keeps the other bits of the packet's tag.
            self.mask.0.vlan_tci |= !which & !VLAN_PRESENT;
            let tci = (self.key.vlan_tci & !which) | (bits & which) | VLAN_PRESENT;
            self.key.vlan_tci = tci;
            self.actions.push(DpAction::SetVlanTci(tci & !VLAN_PRESENT));
        } else {
            let tci = (bits & which) | VLAN_PRESENT;
            self.key.vlan_tci = tci;
            self.actions.push(DpAction::PushVlan { tpid: 0x8100, tci: tci & !VLAN_PRESENT });
        }
    }

    fn action(&mut self, a: &OfAction, table: TableId, depth: usize) {
        match *a {
            OfAction::Output(p) => self.output(p),
            OfAction::InPort => {
                self.examine_in_port();
                self.actions.push(DpAction::Output(DpPortNo(self.in_port)));
            }
            OfAction::Flood | OfAction::All => {
                self.examine_in_port();
                for &p in self.ports {
                    if p != self.in_port && p < ofpp::MAX {
                        self.actions.push(DpAction::Output(DpPortNo(p)));
                    }
                }
            }
            OfAction::Normal | OfAction::Controller { .. } | OfAction::Local | OfAction::SetTunId(_) => {
                self.fail(XlateError::Unsupported { action: unsupported(a).unwrap_or("?") })
            }
            OfAction::SetEthSrc(m) => {
                self.key.dl_src = m;
                self.actions.push(DpAction::SetEthSrc(m));
            }
            OfAction::SetEthDst(m) => {
                self.key.dl_dst = m;
                self.actions.push(DpAction::SetEthDst(m));
            }
            OfAction::SetIpv4Src(ip) => {
                if self.is_ipv4() {
                    self.key.nw_src[..4].copy_from_slice(&ip);
                    self.actions.push(DpAction::SetIpv4Src(ip));
                }
            }
            OfAction::SetIpv4Dst(ip) => {
                if self.is_ipv4() {
                    self.key.nw_dst[..4].copy_from_slice(&ip);
                    self.actions.push(DpAction::SetIpv4Dst(ip));
                }
            }
            OfAction::SetIpv6Src(ip) => {
                if self.is_ipv6() {
                    self.key.nw_src = ip;
                    self.actions.push(DpAction::SetIpv6Src(ip));
                }
            }
            OfAction::SetIpv6Dst(ip) => {
                if self.is_ipv6() {
                    self.key.nw_dst = ip;
                    self.actions.push(DpAction::SetIpv6Dst(ip));
                }
            }
            OfAction::SetNwTos(tos) => {
                if self.is_ip_any() {
                    self.key.nw_tos = (self.key.nw_tos & 0x03) | (tos & 0xfc);
                    self.actions.push(DpAction::SetIpDscp(tos >> 2));
                }
            }
            OfAction::SetNwTtl(ttl) => {
                if self.is_ip_any() {
                    self.key.nw_ttl = ttl;
                    self.actions.push(DpAction::SetIpTtl(ttl));
                }
            }
            OfAction::DecTtl => {
                if self.is_ip_any() {
                    self.mask.0.nw_ttl = !0;
                    if self.key.nw_ttl <= 1 {
                        // OVS sends such packets to the controller (invalid_ttl) and stops;
                        // we have no controller yet: the packet goes no further.
                        self.stop = true;
                    } else {
                        self.key.nw_ttl -= 1;
                        self.actions.push(DpAction::DecIpTtl);
                    }
                }
            }
            OfAction::SetTpSrc(p) => {
                if self.has_ports() {
                    self.key.tp_src = p;
                    self.actions.push(DpAction::SetTpSrc(p));
                }
            }
            OfAction::SetTpDst(p) => {
                if self.has_ports() {
                    self.key.tp_dst = p;
                    self.actions.push(DpAction::SetTpDst(p));
                }
            }
            OfAction::PushVlan(tpid) => {
                if self.is_tagged() {
                    self.fail(XlateError::Unsupported { action: "push_vlan on a tagged packet" });
                } else {
                    self.key.vlan_tci = VLAN_PRESENT;
                    self.actions.push(DpAction::PushVlan { tpid, tci: 0 });
                }
            }
            OfAction::SetVlanVid(vid) => self.set_vlan(vid, VLAN_VID_MASK),
            OfAction::SetVlanPcp(pcp) => self.set_vlan((pcp as u16) << 13, VLAN_PCP_MASK),
            OfAction::StripVlan => {
                if self.is_tagged() {
                    self.key.vlan_tci = 0;
                    self.actions.push(DpAction::PopVlan);
                }
            }
            OfAction::SetMetadata(v) => self.key.metadata = v,
            OfAction::Resubmit { in_port, table: t } => {
                let in_port = in_port.filter(|&p| p != ofpp::IN_PORT);
                self.run_table(t.unwrap_or(table), in_port, depth + 1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datapath::flow::VLAN_PCP_SHIFT;
    use crate::ofproto::rule::{FlowMod, FlowSpec, Match, PortNames};
    use proptest::prelude::*;
    use std::time::Duration;

    const PORTS: &[u32] = &[1, 2, 3];

    fn pipeline(text: &str) -> Pipeline {
        let names: PortNames = [("p1", 1), ("p2", 2), ("p3", 3), ("p9", 9)].into_iter().collect();
        let mut p = Pipeline::new();
        p.add_flows_from_str(text, &names, Duration::ZERO).unwrap();
        p
    }

    fn udp(in_port: u32, vlan_tci: u16) -> FlowKey {
        let mut k = FlowKey {
            in_port,
            dl_type: ETH_IP,
            nw_proto: IPPROTO_UDP,
            vlan_tci,
            nw_ttl: 64,
            ..Default::default()
        };
        k.nw_dst[..4].copy_from_slice(&[10, 0, 0, 2]);
        k
    }

    fn out(p: u32) -> DpAction {
        DpAction::Output(DpPortNo(p))
    }

    #[test]
    fn vlan_push_set_pop() {
        let p = pipeline("actions=mod_vlan_vid:7,output:2,strip_vlan,output:3");
        let t = translate(&p, &udp(1, 0), PORTS);
        assert_eq!(
            t.actions,
            vec![DpAction::PushVlan { tpid: 0x8100, tci: 7 }, out(2), DpAction::PopVlan, out(3)]
        );
        assert_eq!(t.mask.0.vlan_tci, VLAN_PRESENT);
        let tagged = VLAN_PRESENT | (5 << VLAN_PCP_SHIFT) | 9;
        let t = translate(&p, &udp(1, tagged), PORTS);
        assert_eq!(
            t.actions,
            vec![DpAction::SetVlanTci((5 << VLAN_PCP_SHIFT) | 7), out(2), DpAction::PopVlan, out(3)]
        );
        assert_eq!(t.mask.0.vlan_tci, VLAN_PRESENT | VLAN_PCP_MASK);
        let p = pipeline("actions=strip_vlan,output:2");
        assert_eq!(translate(&p, &udp(1, 0), PORTS).actions, vec![out(2)]);
    }

    #[test]
    fn outputs_flood_and_in_port() {
        let p = pipeline("in_port=1,actions=output:1,output:2,output:9\nin_port=2,actions=in_port,FLOOD\nin_port=3,actions=ALL");
        let t = translate(&p, &udp(1, 0), PORTS);
        assert_eq!(t.actions, vec![out(2)]);
        assert_eq!(t.mask.0.in_port, !0);
        assert_eq!(translate(&p, &udp(2, 0), PORTS).actions, vec![out(2), out(1), out(3)]);
        assert_eq!(translate(&p, &udp(3, 0), PORTS).actions, vec![out(1), out(2)]);
        // Miss = drop.
        let t = translate(&p, &udp(4, 0), PORTS);
        assert_eq!((t.actions.len(), t.rules.len(), t.error), (0, 0, None));
    }

    #[test]
    fn l3_l4_sets_check_the_packet() {
        let p = pipeline("actions=mod_nw_src:1.2.3.4,mod_tp_dst:99,mod_nw_tos:8,dec_ttl,output:2");
        let t = translate(&p, &udp(1, 0), PORTS);
        assert_eq!(
            t.actions,
            vec![
                DpAction::SetIpv4Src([1, 2, 3, 4]),
                DpAction::SetTpDst(99),
                DpAction::SetIpDscp(2),
                DpAction::DecIpTtl,
                out(2)
            ]
        );
        assert_eq!((t.mask.0.dl_type, t.mask.0.nw_proto, t.mask.0.nw_ttl), (!0, !0, !0));
        let arp = FlowKey { in_port: 1, dl_type: 0x0806, nw_proto: 1, ..Default::default() };
        assert_eq!(translate(&p, &arp, PORTS).actions, vec![out(2)]);
        let mut dying = udp(1, 0);
        dying.nw_ttl = 1;
        assert_eq!(translate(&p, &dying, PORTS).actions.len(), 3);
    }

    #[test]
    fn goto_resubmit_metadata_and_errors() {
        let p = pipeline(
            "table=0,actions=set_field:0x5->metadata,goto_table:1\n\
             table=1,metadata=0x5,actions=output:2,resubmit(,2)\n\
             table=2,actions=output:3\n",
        );
        let t = translate(&p, &udp(1, 0), PORTS);
        assert_eq!(t.actions, vec![out(2), out(3)]);
        assert_eq!(t.rules.len(), 3);
        let p = pipeline("in_port=1,actions=output:2,NORMAL\nin_port=2,actions=resubmit(,0)\nin_port=3,actions=resubmit(1)");
        let t = translate(&p, &udp(1, 0), PORTS);
        assert_eq!((t.actions.len(), t.error), (0, Some(XlateError::Unsupported { action: "NORMAL" })));
        assert_eq!(translate(&p, &udp(2, 0), PORTS).error, Some(XlateError::TooDeep));
        // resubmit(1): looked up as in_port=1, but still the real ingress port for outputs.
        assert_eq!(
            translate(&p, &udp(3, 0), PORTS).error,
            Some(XlateError::Unsupported { action: "NORMAL" })
        );
        let text: String = (0..14)
            .map(|t| format!("table={t},actions=resubmit(,{}),resubmit(,{})\n", t + 1, t + 1))
            .collect();
        let p = pipeline(&text);
        assert_eq!(translate(&p, &udp(1, 0), PORTS).error, Some(XlateError::TooManyLookups));
    }

    fn arb_action() -> impl Strategy<Value = OfAction> {
        prop_oneof![
            (1u32..5).prop_map(OfAction::Output),
            Just(OfAction::InPort),
            Just(OfAction::Flood),
            Just(OfAction::All),
            Just(OfAction::SetIpv4Src([1, 1, 1, 1])),
            Just(OfAction::SetIpv6Dst([2; 16])),
            Just(OfAction::SetNwTos(8)),
            Just(OfAction::SetNwTtl(5)),
            Just(OfAction::DecTtl),
            Just(OfAction::SetTpSrc(9)),
            Just(OfAction::SetTpDst(1)),
            Just(OfAction::PushVlan(0x8100)),
            (0u16..3).prop_map(OfAction::SetVlanVid),
            (0u8..2).prop_map(OfAction::SetVlanPcp),
            Just(OfAction::StripVlan),
            (0u64..2).prop_map(OfAction::SetMetadata),
            (prop::option::of(1u32..4), prop::option::of(0u8..3))
                .prop_map(|(in_port, table)| OfAction::Resubmit { in_port, table }),
            Just(OfAction::Normal),
        ]
    }

    fn arb_key() -> impl Strategy<Value = FlowKey> {
        (
            (1u32..5, prop::sample::select(vec![ETH_IP, ETH_IPV6, 0x0806])),
            prop::sample::select(vec![0u16, 0x1000, 0x1001, 0x3001, 0x2002]),
            prop::sample::select(vec![IPPROTO_TCP, IPPROTO_UDP, 1]),
            prop::sample::select(vec![0u8, 1, 2, 64]),
            (0u16..3, 0u64..2, 0u8..4, prop::sample::select(vec![0u8, 1, 0x11])),
        )
            .prop_map(
                |((in_port, dl_type), vlan_tci, nw_proto, nw_ttl, (tp_dst, metadata, nw_frag, nw_tos))| {
                    FlowKey {
                        in_port,
                        dl_type,
                        vlan_tci,
                        nw_proto,
                        nw_ttl,
                        tp_dst,
                        metadata,
                        nw_frag,
                        nw_tos,
                        ..Default::default()
                    }
                },
            )
    }

    fn arb_spec() -> impl Strategy<Value = FlowSpec> {
        (
            arb_key(),
            prop::collection::vec(any::<bool>(), 8),
            0u16..3,
            0u8..3,
            prop::collection::vec(arb_action(), 0..4),
            prop::option::of(1u8..3),
        )
            .prop_map(|(k, pick, priority, table, actions, goto)| {
                let mut m = FlowMask::catchall();
                let f = &mut m.0;
                if pick[0] {
                    f.in_port = !0;
                }
                if pick[1] {
                    f.dl_type = !0;
                }
                if pick[2] {
                    f.vlan_tci = if pick[7] { !0 } else { VLAN_PRESENT };
                }
                if pick[3] {
                    f.nw_proto = !0;
                }
                if pick[4] {
                    f.nw_ttl = !0;
                }
                if pick[5] {
                    f.tp_dst = !0;
                }
                if pick[6] {
                    f.metadata = !0;
                }
                if pick[7] {
                    f.nw_tos = 0x03;
                }
                FlowSpec {
                    table,
                    priority,
                    matches: Match::new(k, m),
                    actions,
                    goto_table: goto.filter(|&g| g > table),
                    ..FlowSpec::default()
                }
            })
    }

    fn agree(p: &FlowKey, q: &FlowKey, mask: &FlowMask) -> FlowKey {
        let mut out = *q;
        for ((o, a), m) in out.words_mut().iter_mut().zip(p.words()).zip(mask.0.words()) {
            *o = (*o & !m) | (a & m);
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]
        #[test]
        fn translation_mask_is_sound(specs in prop::collection::vec(arb_spec(), 0..12),
                                     pkts in prop::collection::vec((arb_key(), arb_key()), 1..20)) {
            let mut p = Pipeline::new();
            for s in specs {
                p.apply(FlowMod::add(s), Duration::ZERO).unwrap();
            }
            for (k, q) in &pkts {
                let t = translate(&p, k, PORTS);
                let q = agree(k, q, &t.mask);
                let t2 = translate(&p, &q, PORTS);
                prop_assert_eq!(&t.actions, &t2.actions, "{:?} vs {:?} under {:?}", k, q, t.mask);
                prop_assert_eq!(&t.rules, &t2.rules);
                prop_assert_eq!(&t.error, &t2.error);
            }
        }
    }
}
