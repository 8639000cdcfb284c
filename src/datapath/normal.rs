//! `NORMAL` in the fast path: the VLAN-aware learning switch every poll thread runs on a
//! packet whose actions say `NORMAL`, against the shared MAC table ([`super::fdb`]).
//!
//! Port VLAN modes are Open vSwitch's (the Port table's `vlan_mode`, `tag`, `trunks`):
//!
//! | mode            | ingress: a frame is in VLAN                          | egress            |
//! |-----------------|------------------------------------------------------|-------------------|
//! | access          | `tag` (untagged or VID 0 only; any other tag: drop)  | untagged          |
//! | trunk           | its tag's VID, 0 if untagged; not in `trunks`: drop  | tagged unless 0   |
//! | native-tagged   | its VID if trunked; untagged / VID 0: `tag`          | tagged            |
//! | native-untagged | as native-tagged                                     | untagged in `tag` |
//!
//! `trunks` empty means every VLAN. A port carries VLAN `v` if `v` is its `tag`, or it is not
//! an access port and trunks `v`. Egress tags keep the ingress frame's priority (PCP).
//!
//! The decision ([`Normal::decide`]) reads the packet itself, so the megaflow that sends a
//! packet to NORMAL needs no MAC or VLAN bits: one megaflow serves every host pair.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};
use crossbeam_channel::{Receiver, Sender};
use smallvec::SmallVec;

use super::fdb::Fdb;
use super::flow::{FlowKey, VLAN_PRESENT};
use crate::netdev::DpPortNo;
use crate::packet::be16;
use crate::packet::ethernet::is_vlan_tpid;

/// A port's VLAN mode (OVS `vlan_mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VlanMode {
    Access,
    #[default]
    Trunk,
    NativeTagged,
    NativeUntagged,
}

impl VlanMode {
    /// OVS's name for the mode.
    pub fn name(self) -> &'static str {
        match self {
            VlanMode::Access => "access",
            VlanMode::Trunk => "trunk",
            VlanMode::NativeTagged => "native-tagged",
            VlanMode::NativeUntagged => "native-untagged",
        }
    }
}

impl std::str::FromStr for VlanMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "access" => VlanMode::Access,
            "trunk" => VlanMode::Trunk,
            "native-tagged" => VlanMode::NativeTagged,
            "native-untagged" => VlanMode::NativeUntagged,
            _ => return Err(format!("{s:?}: expected access, trunk, native-tagged or native-untagged")),
        })
    }
}

/// Highest VLAN ID.
pub const VID_MAX: u16 = 4095;
const VID_MASK: u16 = 0x0fff;

/// A VLAN ID, 0 to 4095.
pub fn parse_vid(s: &str) -> Option<u16> {
    s.parse::<u16>().ok().filter(|&v| v <= VID_MAX)
}

/// A port's VLAN configuration.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct PortVlan {
    pub mode: VlanMode,
    /// The access or native VLAN (unused for trunks).
    pub tag: u16,
    /// Trunked VLANs as a bitmap; `None`: every VLAN.
    trunks: Option<Box<[u64; 64]>>,
}

impl std::fmt::Debug for PortVlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.describe())
    }
}

impl PortVlan {
    /// A trunk of every VLAN: a port without VLAN configuration.
    pub fn trunk_all() -> PortVlan {
        PortVlan::default()
    }

    /// Builds a configuration the way OVS reads the Port columns: a `tag` without a mode means
    /// access, neither means trunk; `trunks` empty means all. Errors name the column.
    pub fn new(mode: Option<VlanMode>, tag: Option<u16>, trunks: &[u16]) -> Result<PortVlan, String> {
        if let Some(t) = tag.filter(|&t| t > VID_MAX) {
            return Err(format!("tag={t}: a VLAN ID is 0 to {VID_MAX}"));
        }
        if let Some(t) = trunks.iter().find(|&&t| t > VID_MAX) {
            return Err(format!("trunks: {t}: a VLAN ID is 0 to {VID_MAX}"));
        }
        let mode = mode.unwrap_or(if tag.is_some() { VlanMode::Access } else { VlanMode::Trunk });
        match (mode, tag) {
            (VlanMode::Trunk, Some(_)) => {
                return Err("tag= on a trunk port: use vlan_mode=native-tagged or native-untagged".into())
            }
            (VlanMode::Access | VlanMode::NativeTagged | VlanMode::NativeUntagged, None) => {
                return Err(format!("vlan_mode={}: needs tag=", mode.name()))
            }
            (VlanMode::Access, Some(_)) if !trunks.is_empty() => {
                return Err("trunks= on an access port: use vlan_mode=trunk or native-*".into())
            }
            _ => {}
        }
        let trunks = (!trunks.is_empty()).then(|| {
            let mut bits = Box::new([0u64; 64]);
            for &v in trunks {
                bits[usize::from(v) / 64] |= 1 << (v % 64);
            }
            bits
        });
        Ok(PortVlan { mode, tag: tag.unwrap_or(0), trunks })
    }

    /// Parses a port's VLAN options as `--port` and `set-port-vlan` take them: `tag=VID`,
    /// `trunks=VID,VID,...`, `vlan_mode=MODE`. Errors name the option.
    pub fn parse_options<'a>(opts: impl IntoIterator<Item = &'a str>) -> Result<PortVlan, String> {
        let (mut mode, mut tag, mut trunks) = (None, None, Vec::new());
        for opt in opts {
            let (k, v) = opt.split_once('=').ok_or_else(|| format!("{opt:?}: expected KEY=VALUE"))?;
            let vid = |s: &str| {
                parse_vid(s.trim()).ok_or_else(|| format!("{k}={v}: {s:?} is not a VLAN ID (0 to {VID_MAX})"))
            };
            match k {
                "tag" => tag = Some(vid(v)?),
                "trunks" => {
                    for t in v.split(',').filter(|t| !t.trim().is_empty()) {
                        trunks.push(vid(t)?);
                    }
                }
                "vlan_mode" => mode = Some(v.parse::<VlanMode>().map_err(|e| format!("vlan_mode: {e}"))?),
                _ => return Err(format!("{k}: unknown option (expected tag, trunks or vlan_mode)")),
            }
        }
        PortVlan::new(mode, tag, &trunks)
    }

    /// Whether the port trunks `vlan` (never for an access port).
    #[inline]
    fn trunks_vlan(&self, vlan: u16) -> bool {
        self.mode != VlanMode::Access
            && self.trunks.as_ref().is_none_or(|b| b[usize::from(vlan) / 64] & (1 << (vlan % 64)) != 0)
    }

    /// The trunked VLANs as a bitmap (bit `v % 64` of word `v / 64`): none for an access
    /// port, every VLAN when no `trunks` were given.
    pub fn trunk_bitmap(&self) -> [u64; 64] {
        match (&self.trunks, self.mode) {
            (_, VlanMode::Access) => [0; 64],
            (Some(b), _) => **b,
            (None, _) => [u64::MAX; 64],
        }
    }

    /// Whether the port carries `vlan`.
    #[inline]
    pub fn includes(&self, vlan: u16) -> bool {
        (self.mode != VlanMode::Trunk && vlan == self.tag) || self.trunks_vlan(vlan)
    }

    /// The VLAN a frame received here is in, from its outer tag's VID (`None`: untagged);
    /// `None` when the port does not admit it. `double` says a second tag follows the first.
    #[inline]
    pub fn ingress_vlan(&self, vid: Option<u16>, double: bool) -> Option<u16> {
        let v = vid.unwrap_or(0);
        match self.mode {
            VlanMode::Access => (v == 0 && !double).then_some(self.tag),
            VlanMode::NativeTagged | VlanMode::NativeUntagged if v == 0 => Some(self.tag),
            _ => self.trunks_vlan(v).then_some(v),
        }
    }

    /// Whether a frame in `vlan` leaves this port tagged.
    #[inline]
    pub fn egress_tagged(&self, vlan: u16) -> bool {
        match self.mode {
            VlanMode::Access => false,
            VlanMode::Trunk => vlan != 0,
            VlanMode::NativeTagged => true,
            VlanMode::NativeUntagged => vlan != self.tag && vlan != 0,
        }
    }

    /// `vlan_mode=... tag=... trunks=...`, as an operator would write it back.
    pub fn describe(&self) -> String {
        let mut s = format!("vlan_mode={}", self.mode.name());
        if self.mode != VlanMode::Trunk {
            s += &format!(" tag={}", self.tag);
        }
        if let Some(b) = &self.trunks {
            let v: Vec<String> = (0..=VID_MAX)
                .filter(|&v| b[usize::from(v) / 64] & (1 << (v % 64)) != 0)
                .map(|v| v.to_string())
                .collect();
            s += &format!(" trunks={}", v.join(","));
        }
        s
    }
}

/// What NORMAL knows of the ports, published as a whole by the control thread.
#[derive(Clone, Debug, Default)]
pub struct NormalPorts {
    /// Ports NORMAL floods to (the control thread leaves out ports with `NO_FLOOD`, down ones).
    pub flood: Vec<DpPortNo>,
    /// VLAN configuration by [`DpPortNo::table_index`]; ports beyond the end trunk every VLAN.
    pub vlans: Vec<PortVlan>,
}

impl NormalPorts {
    #[inline]
    fn vlan(&self, port: DpPortNo) -> &PortVlan {
        static TRUNK_ALL: PortVlan = PortVlan { mode: VlanMode::Trunk, tag: 0, trunks: None };
        self.vlans.get(port.table_index()).unwrap_or(&TRUNK_ALL)
    }
}

/// Why NORMAL sent a packet nowhere (besides "the destination is on the ingress port").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NormalDrop {
    /// The ingress port does not admit the frame's VLAN (or its second tag, on access).
    Vlan,
    /// Shorter than an Ethernet header.
    Runt,
}

/// NORMAL's verdict on one packet: where it goes, and in which form.
#[derive(Debug, Default)]
pub struct NormalDecision {
    /// Output ports, each with whether the copy leaves tagged.
    pub out: SmallVec<[(DpPortNo, bool); 8]>,
    /// The tag (PCP and VID) of copies that leave tagged.
    pub tci: u16,
    /// Set when the packet was refused.
    pub drop: Option<NormalDrop>,
    /// The source address is multicast: forwarded, not learned.
    pub src_multicast: bool,
}

/// A source address a poll thread saw that the table does not have on that port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Learn {
    pub mac: [u8; 6],
    pub vlan: u16,
    pub port: DpPortNo,
    /// The bridge whose MAC table lacks it.
    pub bridge: u16,
}

/// Everything `DpAction::Normal` needs in the fast path, shared by the poll threads: the
/// table, the port configuration (published by the control thread), and the learning queue.
pub struct Normal {
    pub fdb: Arc<Fdb>,
    /// The bridge this is NORMAL of (learning events carry it).
    bridge: u16,
    ports: ArcSwap<NormalPorts>,
    learn_tx: Sender<Learn>,
    /// Learning events dropped because the queue was full (rare: counted here, not per thread).
    learn_dropped: AtomicU64,
}

impl Normal {
    /// The shared state over `fdb`, learning events queued (up to `queue`) to the receiver.
    pub fn new(fdb: Arc<Fdb>, queue: usize) -> (Arc<Normal>, Receiver<Learn>) {
        let (learn_tx, rx) = crossbeam_channel::bounded(queue.max(1));
        (Normal::for_bridge(fdb, 0, learn_tx), rx)
    }

    /// NORMAL of bridge `bridge` over `fdb`, queueing learning events to `learn_tx` (one
    /// queue may serve every bridge: the events say which).
    pub fn for_bridge(fdb: Arc<Fdb>, bridge: u16, learn_tx: Sender<Learn>) -> Arc<Normal> {
        Arc::new(Normal {
            fdb,
            bridge,
            ports: ArcSwap::from_pointee(NormalPorts::default()),
            learn_tx,
            learn_dropped: AtomicU64::new(0),
        })
    }

    /// Publishes the ports' flood and VLAN configuration.
    pub fn set_ports(&self, ports: NormalPorts) {
        self.ports.store(Arc::new(ports));
    }

    /// The published configuration (a poll thread loads it once per batch).
    #[inline]
    pub fn ports(&self) -> Guard<Arc<NormalPorts>> {
        self.ports.load()
    }

    /// Learning events dropped for a full queue.
    pub fn learn_dropped(&self) -> u64 {
        self.learn_dropped.load(Relaxed)
    }

    /// Touches the table slots [`decide`](Self::decide) will read for a packet with `key`
    /// received on `in_port` (see [`Fdb::touch`]); returns a value to feed `black_box`.
    #[inline]
    pub fn warm(&self, ports: &NormalPorts, key: &FlowKey, in_port: DpPortNo) -> u32 {
        let vid = (key.vlan_tci & VLAN_PRESENT != 0).then_some(key.vlan_tci & VID_MASK);
        let Some(vlan) = ports.vlan(in_port).ingress_vlan(vid, false) else { return 0 };
        self.fdb.touch(key.dl_src, vlan) ^ self.fdb.touch(key.dl_dst, vlan)
    }

    /// The L2 switch for one packet received on `in_port` (`None`: from the controller, not
    /// learned from, trunk of every VLAN). Finds the packet's VLAN from the ingress port's
    /// mode, queues the source address for learning if the table lacks it on `in_port`, then
    /// sends to the port the destination was learned on, or floods (every flood port carrying
    /// the VLAN but the ingress one) for multicast and unknown addresses. A destination
    /// learned on the ingress port goes nowhere.
    #[inline]
    pub fn decide(
        &self,
        ports: &NormalPorts,
        packet: &[u8],
        in_port: Option<DpPortNo>,
        now_s: u32,
        d: &mut NormalDecision,
    ) {
        if packet.len() < 14 {
            d.drop = Some(NormalDrop::Runt);
            return;
        }
        let dst: [u8; 6] = [packet[0], packet[1], packet[2], packet[3], packet[4], packet[5]];
        let src: [u8; 6] = [packet[6], packet[7], packet[8], packet[9], packet[10], packet[11]];
        let (tci, double) = if is_vlan_tpid(be16(packet, 12)) {
            if packet.len() < 18 {
                d.drop = Some(NormalDrop::Runt);
                return;
            }
            (Some(be16(packet, 14)), is_vlan_tpid(be16(packet, 16)))
        } else {
            (None, false)
        };
        let vlan = match in_port {
            Some(p) => match ports.vlan(p).ingress_vlan(tci.map(|t| t & VID_MASK), double) {
                Some(v) => v,
                None => {
                    d.drop = Some(NormalDrop::Vlan);
                    return;
                }
            },
            None => tci.map_or(0, |t| t & VID_MASK),
        };
        d.tci = (tci.unwrap_or(0) & !VID_MASK) | vlan;
        if src[0] & 1 != 0 {
            d.src_multicast = true;
        } else if let Some(inp) = in_port {
            if self.fdb.needs_learning(src, vlan, inp, now_s) {
                let ev = Learn { mac: src, vlan, port: inp, bridge: self.bridge };
                if self.learn_tx.try_send(ev).is_err() {
                    self.learn_dropped.fetch_add(1, Relaxed);
                }
            }
        }
        if dst[0] & 1 == 0 {
            if let Some(p) = self.fdb.lookup(dst, vlan) {
                let pv = ports.vlan(p);
                if Some(p) != in_port && pv.includes(vlan) {
                    d.out.push((p, pv.egress_tagged(vlan)));
                }
                return;
            }
        }
        for &p in &ports.flood {
            let pv = ports.vlan(p);
            if Some(p) != in_port && pv.includes(vlan) {
                d.out.push((p, pv.egress_tagged(vlan)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(n: u32) -> [u8; 6] {
        let b = n.to_be_bytes();
        [0x02, 0, b[0], b[1], b[2], b[3]]
    }

    fn frame(dst: [u8; 6], src: [u8; 6], tags: &[u16]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&dst);
        f.extend_from_slice(&src);
        for t in tags {
            f.extend_from_slice(&[0x81, 0x00]);
            f.extend_from_slice(&t.to_be_bytes());
        }
        f.extend_from_slice(&0x0800u16.to_be_bytes());
        f.resize(60, 0);
        f
    }

    fn pv(mode: Option<VlanMode>, tag: Option<u16>, trunks: &[u16]) -> PortVlan {
        PortVlan::new(mode, tag, trunks).unwrap()
    }

    #[test]
    fn port_vlan_config_as_ovs_reads_it() {
        assert_eq!(pv(None, Some(10), &[]).mode, VlanMode::Access);
        assert_eq!(pv(None, None, &[10, 20]).mode, VlanMode::Trunk);
        assert_eq!(pv(None, None, &[]), PortVlan::trunk_all());
        for (m, t, tr) in [
            (None, Some(4096), &[][..]),
            (None, None, &[4096][..]),
            (Some(VlanMode::Access), None, &[][..]),
            (Some(VlanMode::NativeUntagged), None, &[][..]),
            (Some(VlanMode::Trunk), Some(5), &[][..]),
            (None, Some(5), &[6][..]),
        ] {
            assert!(PortVlan::new(m, t, tr).is_err(), "{m:?} {t:?} {tr:?}");
        }
        assert_eq!(
            pv(Some(VlanMode::NativeUntagged), Some(5), &[6, 7]).describe(),
            "vlan_mode=native-untagged tag=5 trunks=6,7"
        );
        assert_eq!("native-tagged".parse(), Ok(VlanMode::NativeTagged));
        let p = PortVlan::parse_options(["vlan_mode=native-tagged", "tag=3", "trunks=4, 5,"]).unwrap();
        assert_eq!(p, pv(Some(VlanMode::NativeTagged), Some(3), &[4, 5]));
        assert_eq!(PortVlan::parse_options([]).unwrap(), PortVlan::trunk_all());
        for bad in ["tag", "tag=x", "tag=4096", "trunks=1,9999", "vlan_mode=qinq", "speed=10"] {
            let e = PortVlan::parse_options([bad]).unwrap_err();
            assert!(e.contains(bad.split('=').next().unwrap()), "{bad}: {e}");
        }
        assert!("nope".parse::<VlanMode>().is_err());
    }

    #[test]
    fn ingress_egress_by_mode() {
        let access = pv(None, Some(10), &[]);
        assert_eq!(access.ingress_vlan(None, false), Some(10));
        assert_eq!(access.ingress_vlan(Some(0), false), Some(10), "priority-tagged");
        assert_eq!(access.ingress_vlan(Some(10), false), None, "any tag is refused, even its own");
        assert_eq!(access.ingress_vlan(Some(0), true), None, "two tags");
        assert!(access.includes(10) && !access.includes(20) && !access.includes(0));
        assert!(!access.egress_tagged(10));

        let trunk = pv(None, None, &[10, 20]);
        assert_eq!(trunk.ingress_vlan(Some(20), false), Some(20));
        assert_eq!(trunk.ingress_vlan(Some(30), false), None);
        assert_eq!(trunk.ingress_vlan(None, false), None, "VLAN 0 is not trunked");
        assert!(trunk.egress_tagged(10));
        let all = PortVlan::trunk_all();
        assert_eq!(all.ingress_vlan(None, false), Some(0));
        assert_eq!(all.ingress_vlan(Some(4095), true), Some(4095));
        assert!(!all.egress_tagged(0) && all.egress_tagged(7));

        let nu = pv(Some(VlanMode::NativeUntagged), Some(5), &[6]);
        assert_eq!(nu.ingress_vlan(None, false), Some(5));
        assert_eq!(nu.ingress_vlan(Some(6), false), Some(6));
        assert_eq!(nu.ingress_vlan(Some(5), false), None, "OVS: a tagged native VID must be trunked");
        assert!(nu.includes(5) && nu.includes(6) && !nu.includes(7));
        assert!(!nu.egress_tagged(5) && nu.egress_tagged(6));
        let nt = pv(Some(VlanMode::NativeTagged), Some(5), &[]);
        assert_eq!(nt.ingress_vlan(Some(5), false), Some(5));
        assert!(nt.egress_tagged(5) && nt.egress_tagged(9));
    }

    fn setup(vlans: Vec<PortVlan>) -> (Arc<Normal>, crate::datapath::fdb::FdbWriter, Receiver<Learn>) {
        let (fdb, w) = Fdb::new(64);
        let (n, learned) = Normal::new(fdb, 16);
        let flood = (1..vlans.len() as u32).map(DpPortNo).collect();
        n.set_ports(NormalPorts { flood, vlans });
        (n, w, learned)
    }

    fn decide(n: &Normal, f: &[u8], in_port: u32) -> NormalDecision {
        let mut d = NormalDecision::default();
        n.decide(&n.ports(), f, Some(DpPortNo(in_port)), 0, &mut d);
        d
    }

    fn outs(d: &NormalDecision) -> Vec<(u32, bool)> {
        d.out.iter().map(|&(p, t)| (p.0, t)).collect()
    }

    #[test]
    fn learns_forwards_and_floods_untagged() {
        let (n, mut w, learned) = setup(vec![PortVlan::trunk_all(); 4]);
        // Unknown destination: flood, and the source is queued for learning.
        let d = decide(&n, &frame(mac(2), mac(1), &[]), 1);
        assert_eq!(outs(&d), [(2, false), (3, false)]);
        let ev = learned.try_recv().unwrap();
        assert_eq!(ev, Learn { mac: mac(1), vlan: 0, port: DpPortNo(1), bridge: 0 });
        w.learn(ev.mac, ev.vlan, ev.port, 0).unwrap();
        // The reply goes straight to port 1; its source is learned too.
        assert_eq!(outs(&decide(&n, &frame(mac(1), mac(2), &[]), 2)), [(1, false)]);
        assert!(learned.try_recv().is_ok());
        // Broadcast floods; a known source on its own port queues nothing.
        assert_eq!(outs(&decide(&n, &frame([0xff; 6], mac(1), &[]), 1)), [(2, false), (3, false)]);
        assert!(learned.try_recv().is_err());
        // A destination learned on the ingress port goes nowhere.
        assert!(decide(&n, &frame(mac(1), mac(9), &[]), 1).out.is_empty());
        // A multicast source is forwarded, flagged, never learned.
        let _ = learned.try_iter().count();
        let d = decide(&n, &frame(mac(1), [0x01, 0, 0x5e, 0, 0, 1], &[]), 2);
        assert!(d.src_multicast && outs(&d) == [(1, false)]);
        assert!(learned.try_recv().is_err());
        // A full queue drops learning events and counts them; forwarding goes on.
        for i in 100..200 {
            assert_eq!(outs(&decide(&n, &frame(mac(1), mac(i), &[]), 3)), [(1, false)]);
        }
        assert!(n.learn_dropped() > 0);
        // Runts are refused.
        assert_eq!(decide(&n, &[0u8; 10], 1).drop, Some(NormalDrop::Runt));
        assert_eq!(decide(&n, &frame(mac(1), mac(2), &[5])[..16], 1).drop, Some(NormalDrop::Runt));
    }

    #[test]
    fn vlans_isolate_tag_and_untag() {
        // Port 1: access 10; 2: access 20; 3: trunk 10,20; 4: access 10; 5: native-untagged 10.
        let vlans = vec![
            PortVlan::trunk_all(),
            pv(None, Some(10), &[]),
            pv(None, Some(20), &[]),
            pv(None, None, &[10, 20]),
            pv(None, Some(10), &[]),
            pv(Some(VlanMode::NativeUntagged), Some(10), &[20]),
        ];
        let (n, mut w, learned) = setup(vlans);
        // Broadcast from access 10: the other VLAN-10 ports, tagged only on the trunk.
        let d = decide(&n, &frame([0xff; 6], mac(1), &[]), 1);
        assert_eq!(outs(&d), [(3, true), (4, false), (5, false)]);
        assert_eq!(d.tci, 10);
        let ev = learned.try_recv().unwrap();
        assert_eq!(ev.vlan, 10);
        w.learn(ev.mac, ev.vlan, ev.port, 0).unwrap();
        // From the trunk tagged 20 (PCP 5): VLAN 20 ports; the tag keeps its priority.
        let d = decide(&n, &frame([0xff; 6], mac(7), &[(5 << 13) | 20]), 3);
        assert_eq!(outs(&d), [(2, false), (5, true)]);
        assert_eq!(d.tci, (5 << 13) | 20);
        // Unicast to mac 1 in VLAN 20 does not find it (learned in VLAN 10): flood VLAN 20.
        assert_eq!(outs(&decide(&n, &frame(mac(1), mac(7), &[20]), 3)), [(2, false), (5, true)]);
        // In VLAN 10 it does.
        assert_eq!(outs(&decide(&n, &frame(mac(1), mac(7), &[10]), 3)), [(1, false)]);
        // Refused: a tag on an access port, two tags, a VLAN the trunk does not carry, untagged
        // on a trunk without VLAN 0.
        for (f, p) in [
            (frame(mac(1), mac(8), &[10]), 1),
            (frame(mac(1), mac(8), &[0, 10]), 1),
            (frame(mac(1), mac(8), &[30]), 3),
            (frame(mac(1), mac(8), &[]), 3),
        ] {
            let d = decide(&n, &f, p);
            assert_eq!(d.drop, Some(NormalDrop::Vlan));
            assert!(d.out.is_empty());
        }
        // Priority-tagged on access: VLAN 10, PCP kept for the trunk.
        let d = decide(&n, &frame([0xff; 6], mac(9), &[3 << 13]), 4);
        assert_eq!(outs(&d), [(1, false), (3, true), (5, false)]);
        assert_eq!(d.tci, (3 << 13) | 10);
        // Untagged on native-untagged: its native VLAN 10.
        assert_eq!(outs(&decide(&n, &frame([0xff; 6], mac(9), &[]), 5)), [(1, false), (3, true), (4, false)]);
    }
}
