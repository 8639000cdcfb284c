//! The hybrid fast path's user-space half: which megaflows run inside the XDP program
//! (`bpf/xdp_switch.c`, loaded by [`SwitchProgram`]) and keeping that kernel copy exact.
//!
//! - **What can go to the kernel** ([`convert`]): a megaflow whose mask selects only fields
//!   the program parses (the first four key words and the IPv4 addresses; fields it does not
//!   parse must be zero in the megaflow, as they are in every frame it claims), and whose
//!   actions are Ethernet address and VLAN rewrites followed by at most one output to an
//!   AF_XDP port that takes redirected frames, or nothing (drop). NORMAL, meters, packet-ins,
//!   tunnels and IP rewrites stay in user space.
//! - **Which** ([`Offloader::tick`], every revalidation interval): megaflows that forwarded
//!   packets in user space since the last tick, busiest first, while the flow map
//!   (`max_flows`) and the program's mask slots last; a full map or mask table is counted and
//!   logged once, and those flows stay (correct) in user space.
//! - **Consistency**: removing a megaflow from the table removes its kernel copy first, inside
//!   [`MegaflowTable::remove`](super::megaflow::MegaflowTable::remove) (the removal hook), so by
//!   the time `publish()` returns (and a barrier is answered) no new frame can hit the old
//!   copy. Frames miss into user space, which is always correct, so a flow moving between the
//!   kernel and user space loses nothing; frames in flight may be reordered at that moment.
//!   A port that stops taking redirected frames (for veth: the peer dropped its XDP program
//!   and GRO) leaves the program's devmap at the next tick, and the program then hands frames
//!   for it to user space; its kernel flows are removed.
//! - **Counters**: each kernel flow has a per-CPU counter slot; [`Offloader::fold`] adds what
//!   the kernel counted since the last fold to the megaflow's kernel slot (so `stats()`,
//!   revalidation credit to OpenFlow rules, idle timeouts and `dump-megaflows` see the sum).
//!   A removed flow is read one last time after its kernel entry is gone, and its slot is
//!   reused only after the next tick, so a frame still inside the program when it was removed
//!   does not land on the slot's next flow.
//!
//! Control thread only (the removal hook runs inside the table's writer, also the control
//! thread); nothing here is touched per packet.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytemuck::Zeroable;

use super::actions::DpAction;
use super::fdb::FdbChange;
use super::flow::{FlowKey, FlowMask, VLAN_PRESENT};
use super::megaflow::{Megaflow, MegaflowId, MegaflowTable};
use super::normal::{PortVlan, VlanMode};
use crate::netdev::afxdp::features::{XdpFeatures, XDP_ACT_NDO_XMIT};
use crate::netdev::afxdp::offload::{
    self as prog, op, SwitchProgram, XAction, XFdbKey, XFlowKey, XKey, XMask, XPortStat, XStat, XVlan,
    MASK_NEEDS_L3, OUT_NONE,
};
use crate::netdev::DpPortNo;

/// How often port readiness (`NDO_XMIT`) is re-read.
const PORT_CHECK_EVERY: Duration = Duration::from_secs(1);

/// Offload settings.
#[derive(Clone, Debug)]
pub struct OffloadConfig {
    /// The shared XDP program every AF_XDP port of the datapath was opened with.
    pub program: Arc<SwitchProgram>,
    /// Most megaflows in the kernel at once (at most [`prog::MAX_FLOWS`]).
    pub max_flows: usize,
}

/// Counters of the offload logic (the program's own are [`prog::ProgramStats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct OffloadStats {
    /// Megaflows in the kernel now.
    pub flows: usize,
    /// Capacity (`max_flows`).
    pub capacity: usize,
    /// Mask slots in use (of [`prog::MAX_MASKS`]).
    pub masks: usize,
    pub installed: u64,
    pub removed: u64,
    /// Hot megaflows left in user space because the flow map was full.
    pub table_full: u64,
    /// Hot megaflows left in user space because every mask slot was taken.
    pub masks_full: u64,
    /// Distinct megaflows found not offloadable (fields or actions the program lacks).
    pub unsupported: u64,
    /// Map updates the kernel refused.
    pub errors: u64,
    /// Ports the kernel may redirect to now.
    pub tx_ready_ports: usize,
}

/// A megaflow in kernel form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Converted {
    pub key: XKey,
    pub mask: XKey,
    pub needs_l3: bool,
    pub action: XAction,
    pub out: Option<DpPortNo>,
}

fn xkey_of(k: &FlowKey) -> XKey {
    let w = k.words();
    let mut x = XKey { words: [w[0], w[1], w[2], w[3]], nw_src: [0; 4], nw_dst: [0; 4] };
    x.nw_src.copy_from_slice(&k.nw_src[..4]);
    x.nw_dst.copy_from_slice(&k.nw_dst[..4]);
    x
}

/// `k` without the fields the program parses (what must be zero in an offloaded megaflow).
fn beyond_xkey(k: &FlowKey) -> FlowKey {
    let mut r = *k;
    r.words_mut()[..4].fill(0);
    r.nw_src[..4].fill(0);
    r.nw_dst[..4].fill(0);
    r
}

/// `m` without the L2 fields (in_port, dl_type, vlan_tci, dl_dst, dl_src).
fn beyond_l2(m: &FlowKey) -> FlowKey {
    FlowKey { in_port: 0, dl_type: 0, vlan_tci: 0, dl_dst: [0; 6], dl_src: [0; 6], ..*m }
}

/// The kernel form of a megaflow, or why it has none. `tx_ready` says whether the program may
/// redirect to a port.
pub fn convert(
    key: &FlowKey,
    mask: &FlowMask,
    actions: &[DpAction],
    tx_ready: impl Fn(DpPortNo) -> bool,
) -> Result<Converted, &'static str> {
    let key = key.masked(mask);
    if beyond_xkey(&key) != FlowKey::zeroed() {
        // Frames the program claims have zeros there (IPv6 and tunnel fields, metadata).
        return Err("matches a field the XDP program does not parse");
    }
    let needs_l3 = beyond_l2(&mask.0) != FlowKey::zeroed();
    let mut a = XAction { out_port: OUT_NONE, ..XAction::zeroed() };
    if actions == [DpAction::Normal] {
        // The program runs the L2 switch itself, on a kernel copy of the MAC table.
        a.ops = op::NORMAL;
        return Ok(Converted { key: xkey_of(&key), mask: xkey_of(&mask.0), needs_l3, action: a, out: None });
    }
    let mut out = None;
    for act in actions {
        if out.is_some() {
            return Err("an action after the output");
        }
        match *act {
            DpAction::Output(p) => {
                if !tx_ready(p) {
                    return Err("output to a port the kernel cannot redirect to");
                }
                a.out_port = p.0;
                out = Some(p);
            }
            DpAction::SetEthSrc(m) => {
                a.ops |= op::SET_ETH_SRC;
                a.eth_src = m;
            }
            DpAction::SetEthDst(m) => {
                a.ops |= op::SET_ETH_DST;
                a.eth_dst = m;
            }
            DpAction::PopVlan => {
                if a.ops & (op::POP_VLAN | op::PUSH_VLAN | op::SET_VLAN) != 0 {
                    return Err("VLAN actions in an order the program does not run");
                }
                a.ops |= op::POP_VLAN;
            }
            DpAction::PushVlan { tpid, tci } => {
                if a.ops & (op::PUSH_VLAN | op::SET_VLAN) != 0 {
                    return Err("VLAN actions in an order the program does not run");
                }
                a.ops |= op::PUSH_VLAN;
                a.vlan_tpid = tpid.to_be();
                a.vlan_tci = (tci & !VLAN_PRESENT).to_be();
            }
            DpAction::SetVlanTci(tci) => {
                // After a push it rewrites the pushed tag; otherwise the outer tag, if any.
                if a.ops & op::PUSH_VLAN == 0 {
                    a.ops |= op::SET_VLAN;
                }
                a.vlan_tci = (tci & !VLAN_PRESENT).to_be();
            }
            _ => return Err("an action the XDP program does not run"),
        }
    }
    Ok(Converted { key: xkey_of(&key), mask: xkey_of(&mask.0), needs_l3, action: a, out })
}

struct OffPort {
    no: DpPortNo,
    ifindex: u32,
    /// The bridge it is in (underlay ports are in none).
    bridge: Option<u16>,
    /// Frames it receives are looked up in the kernel (a bridge port without `no_recv`).
    rx: bool,
    /// A bridge port at all (underlay ports never are).
    in_bridge: bool,
    /// In the devmap: the kernel may redirect to it.
    tx: bool,
}

struct KFlow {
    mf: Arc<Megaflow>,
    fkey: XFlowKey,
    slot: u32,
    out: Option<DpPortNo>,
    credited: XStat,
}

struct MaskSlot {
    mask: XKey,
    refs: usize,
}

/// See the module docs.
pub struct Offloader {
    prog: Arc<SwitchProgram>,
    max_flows: usize,
    ports: Vec<OffPort>,
    features: Option<XdpFeatures>,
    masks: Vec<Option<MaskSlot>>,
    flows: HashMap<MegaflowId, KFlow>,
    free_slots: Vec<u32>,
    /// Slots of flows removed since the last tick (reused after it).
    quarantine: Vec<u32>,
    /// User-space packet count of each megaflow at the last tick.
    seen: HashMap<MegaflowId, u64>,
    rejected: HashSet<MegaflowId>,
    stats: OffloadStats,
    last_port_check: Option<Instant>,
    warned_full: bool,
    epoch: Instant,
}

impl std::fmt::Debug for Offloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Offloader").field("stats", &self.stats).finish_non_exhaustive()
    }
}

impl Offloader {
    /// Binds the ports (`(port, ifindex, its bridge)`) in the program and checks which take
    /// redirected frames. `epoch` is the datapath's clock origin (for `used` times).
    pub fn new(cfg: &OffloadConfig, ports: &[(DpPortNo, u32, Option<u16>)], epoch: Instant) -> Offloader {
        let max_flows = cfg.max_flows.min(prog::MAX_FLOWS);
        let features = match XdpFeatures::open() {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::warn!(error = %e, "XDP offload: the kernel does not report XDP features (netdev netlink family); frames are offloaded to no output port");
                None
            }
        };
        let mut o = Offloader {
            prog: Arc::clone(&cfg.program),
            max_flows,
            ports: ports
                .iter()
                .map(|&(no, ifindex, bridge)| OffPort {
                    no,
                    ifindex,
                    bridge,
                    rx: bridge.is_some(),
                    in_bridge: bridge.is_some(),
                    tx: false,
                })
                .collect(),
            features,
            masks: (0..prog::MAX_MASKS).map(|_| None).collect(),
            flows: HashMap::new(),
            free_slots: (0..max_flows as u32).rev().collect(),
            quarantine: Vec::new(),
            seen: HashMap::new(),
            rejected: HashSet::new(),
            stats: OffloadStats { capacity: max_flows, ..OffloadStats::default() },
            last_port_check: None,
            warned_full: false,
            epoch,
        };
        for i in 0..o.ports.len() {
            let p = &o.ports[i];
            if let Err(e) = o.prog.bind_port(p.ifindex, p.no.0, p.rx) {
                tracing::warn!(port = %p.no, error = %e, "XDP offload: binding the port failed");
                o.stats.errors += 1;
            }
        }
        let bridges: HashSet<u16> = o.ports.iter().filter_map(|p| p.bridge).collect();
        for b in bridges {
            o.set_vlans(b, &[]);
        }
        o.check_ports();
        o
    }

    /// NORMAL's VLAN settings of bridge `bridge`'s ports (indexed by
    /// [`DpPortNo::table_index`]; ports beyond the end trunk every VLAN), for the program.
    pub fn set_vlans(&mut self, bridge: u16, vlans: &[PortVlan]) {
        let all = PortVlan::trunk_all();
        for p in self.ports.iter().filter(|p| p.bridge == Some(bridge)) {
            let v = vlans.get(p.no.table_index()).unwrap_or(&all);
            let xv = XVlan {
                bridge1: u32::from(bridge) + 1,
                mode: match v.mode {
                    VlanMode::Access => prog::VLAN_ACCESS,
                    VlanMode::Trunk => prog::VLAN_TRUNK,
                    VlanMode::NativeTagged | VlanMode::NativeUntagged => prog::VLAN_OTHER,
                },
                tag: v.tag,
                trunks: v.trunk_bitmap(),
            };
            if let Err(e) = self.prog.set_vlan_port(p.no.0, &xv) {
                tracing::warn!(port = %p.no, error = %e, "XDP offload: port VLAN update failed");
                self.stats.errors += 1;
            }
        }
    }

    /// A mirror for bridge `bridge`'s MAC table (see [`super::fdb::FdbWriter::set_mirror`]): the program's
    /// copy changes before the table's writer returns.
    pub fn fdb_mirror(&self, bridge: u16) -> Box<dyn Fn(FdbChange) + Send> {
        let prog = Arc::clone(&self.prog);
        Box::new(move |ch| {
            let (mac, vlan, port) = match ch {
                FdbChange::Set { mac, vlan, port } => (mac, vlan, Some(port.0)),
                FdbChange::Remove { mac, vlan } => (mac, vlan, None),
            };
            let key = XFdbKey { bridge: u32::from(bridge), vlan, mac };
            if let Err(e) = prog.set_fdb(key, port) {
                tracing::warn!(error = %e, "XDP offload: MAC table mirror update failed");
            }
        })
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Re-reads which ports take redirected frames; a port that stopped leaves the devmap
    /// and its kernel flows are removed.
    fn check_ports(&mut self) {
        let first = self.last_port_check.is_none();
        self.last_port_check = Some(Instant::now());
        let mut lost = Vec::new();
        let mut changed = false;
        for p in &mut self.ports {
            if !p.in_bridge {
                continue;
            }
            let ready = match &mut self.features {
                Some(f) => f.get(p.ifindex).is_ok_and(|x| x & XDP_ACT_NDO_XMIT != 0),
                None => false,
            };
            if first && !ready {
                tracing::info!(
                    port = %p.no,
                    "XDP offload: the kernel cannot redirect frames to the port: its flows stay in user space (for veth: its peer needs an XDP program or GRO on)"
                );
            }
            if ready == p.tx {
                continue;
            }
            let r = self.prog.set_tx_port(p.no.0, ready.then_some(p.ifindex));
            match r {
                Ok(()) => {
                    tracing::info!(
                        port = %p.no,
                        "XDP offload: the kernel {} redirect frames to the port{}",
                        if ready { "may" } else { "can no longer" },
                        if ready { "" } else { " (for veth: its peer needs an XDP program or GRO on)" }
                    );
                    p.tx = ready;
                    changed = true;
                    if !ready {
                        lost.push(p.no);
                    }
                }
                Err(e) => {
                    tracing::warn!(port = %p.no, error = %e, "XDP offload: devmap update failed");
                    self.stats.errors += 1;
                }
            }
        }
        // Flows that were not offloadable may be now (or the other way round).
        if changed {
            self.rejected.clear();
        }
        if !lost.is_empty() {
            let ids: Vec<_> = self
                .flows
                .iter()
                .filter(|(_, f)| f.out.is_some_and(|o| lost.contains(&o)))
                .map(|(id, _)| *id)
                .collect();
            for id in ids {
                self.forget(id);
            }
        }
        self.stats.tx_ready_ports = self.ports.iter().filter(|p| p.tx).count();
    }

    /// Whether the kernel may redirect to `no`.
    fn tx_ready(&self, no: DpPortNo) -> bool {
        self.ports.iter().any(|p| p.no == no && p.tx)
    }

    /// `no_recv` on port `no`: its frames must all reach user space (which drops them), so the
    /// kernel stops looking them up.
    pub fn set_port_rx(&mut self, no: DpPortNo, on: bool) {
        let Some(p) = self.ports.iter_mut().find(|p| p.no == no) else { return };
        p.rx = on && p.in_bridge;
        if let Err(e) = self.prog.bind_port(p.ifindex, p.no.0, p.rx) {
            tracing::warn!(port = %no, error = %e, "XDP offload: port update failed");
            self.stats.errors += 1;
        }
    }

    /// Removes `id`'s kernel copy, if it has one (the megaflow table's removal hook).
    pub fn forget(&mut self, id: MegaflowId) {
        self.seen.remove(&id);
        self.rejected.remove(&id);
        let Some(f) = self.flows.remove(&id) else { return };
        if let Err(e) = self.prog.remove_flow(&f.fkey) {
            tracing::warn!(error = %e, "XDP offload: removing a kernel flow failed");
            self.stats.errors += 1;
        }
        // Its last packets (the entry is gone: nothing new lands on the slot but frames that
        // were inside the program at that moment).
        let now = self.now_ms();
        Self::fold_one(&self.prog, &f.mf, f.slot, &mut { f.credited }, now);
        self.quarantine.push(f.slot);
        let idx = f.fkey.mask_idx as usize;
        if let Some(m) = self.masks[idx].as_mut() {
            m.refs -= 1;
            if m.refs == 0 {
                self.masks[idx] = None;
                if self.prog.set_mask(idx as u32, None).is_err() {
                    self.stats.errors += 1;
                }
            }
        }
        self.stats.removed += 1;
        self.stats.flows = self.flows.len();
        self.stats.masks = self.masks.iter().flatten().count();
    }

    fn fold_one(prog: &SwitchProgram, mf: &Megaflow, slot: u32, credited: &mut XStat, now_ms: u64) {
        let Ok(st) = prog.flow_stats(slot) else { return };
        let dp = st.packets.saturating_sub(credited.packets);
        if dp > 0 {
            mf.record_offloaded(dp, st.bytes.saturating_sub(credited.bytes), now_ms);
            *credited = st;
        }
    }

    /// Adds what the kernel counted since the last fold to each offloaded megaflow.
    pub fn fold(&mut self) {
        let now = self.now_ms();
        for f in self.flows.values_mut() {
            Self::fold_one(&self.prog, &f.mf, f.slot, &mut f.credited, now);
        }
    }

    /// Whether megaflow `id` runs in the kernel now.
    pub fn is_offloaded(&self, id: MegaflowId) -> bool {
        self.flows.contains_key(&id)
    }

    /// What the kernel forwarded for port `no`.
    pub fn port_stats(&self, no: DpPortNo) -> XPortStat {
        self.prog.port_stats(no.0)
    }

    /// The logic's counters.
    pub fn stats(&self) -> OffloadStats {
        self.stats
    }

    /// The program's counters.
    pub fn program_stats(&self) -> prog::ProgramStats {
        self.prog.stats()
    }

    /// One revalidation interval: re-checks ports (each [`PORT_CHECK_EVERY`]), folds
    /// counters, and moves the busiest user-space megaflows into the kernel.
    pub fn tick(&mut self, table: &MegaflowTable) {
        if self.last_port_check.is_none_or(|t| t.elapsed() >= PORT_CHECK_EVERY) {
            self.check_ports();
        }
        self.fold();
        self.free_slots.append(&mut self.quarantine);
        let mut hot = Vec::new();
        for mf in table.iter() {
            let user = mf.stats_user().packets;
            let last = self.seen.insert(mf.id, user).unwrap_or(0);
            if user > last && !self.flows.contains_key(&mf.id) && !self.rejected.contains(&mf.id) {
                hot.push((user - last, Arc::clone(mf)));
            }
        }
        if self.seen.len() > table.len() {
            self.seen.retain(|id, _| table.get(*id).is_some());
        }
        hot.sort_by_key(|h| std::cmp::Reverse(h.0));
        for (_, mf) in hot {
            self.install(&mf);
        }
        self.stats.flows = self.flows.len();
        self.stats.masks = self.masks.iter().flatten().count();
    }

    fn install(&mut self, mf: &Arc<Megaflow>) {
        let c = match convert(&mf.key, &mf.mask, &mf.actions, |p| self.tx_ready(p)) {
            Ok(c) => c,
            Err(why) => {
                tracing::debug!(megaflow = %mf.id, why, "not offloadable");
                self.rejected.insert(mf.id);
                self.stats.unsupported += 1;
                return;
            }
        };
        if c.action.ops == op::NORMAL && !self.ports.iter().any(|p| p.tx) {
            // NORMAL in the kernel could forward to no port: every frame would come back.
            self.rejected.insert(mf.id);
            self.stats.unsupported += 1;
            return;
        }
        if self.flows.len() >= self.max_flows || self.free_slots.is_empty() {
            self.stats.table_full += 1;
            self.warn_full("the flow map is full");
            return;
        }
        let Some(idx) = self.mask_slot(&c) else {
            self.stats.masks_full += 1;
            self.warn_full("every mask slot is taken");
            return;
        };
        let Some(slot) = self.free_slots.pop() else { return };
        let fkey = XFlowKey { mask_idx: idx as u32, pad: 0, key: c.key };
        let action = XAction { slot, ..c.action };
        let r = self.prog.clear_flow_stats(slot).and_then(|()| self.prog.insert_flow(&fkey, &action));
        if let Err(e) = r {
            tracing::warn!(megaflow = %mf.id, error = %e, "XDP offload: inserting a kernel flow failed");
            self.stats.errors += 1;
            self.free_slots.push(slot);
            self.release_mask(idx);
            return;
        }
        self.flows
            .insert(mf.id, KFlow { mf: Arc::clone(mf), fkey, slot, out: c.out, credited: XStat::default() });
        self.stats.installed += 1;
    }

    fn warn_full(&mut self, what: &str) {
        if !self.warned_full {
            self.warned_full = true;
            tracing::warn!(
                "XDP offload: {what}; busy megaflows stay in user space (correct, slower); counted in pmd-stats"
            );
        }
    }

    /// The slot holding `c`'s mask, taking a reference (allocating and publishing a free slot
    /// first if needed); `None` if all are taken by other masks.
    fn mask_slot(&mut self, c: &Converted) -> Option<usize> {
        if let Some(i) = self.masks.iter().position(|m| m.as_ref().is_some_and(|m| m.mask == c.mask)) {
            if let Some(m) = self.masks[i].as_mut() {
                m.refs += 1;
            }
            return Some(i);
        }
        let i = self.masks.iter().position(Option::is_none)?;
        let xm = XMask { mask: c.mask, flags: if c.needs_l3 { MASK_NEEDS_L3 } else { 0 }, pad: 0 };
        if self.prog.set_mask(i as u32, Some(xm)).is_err() {
            self.stats.errors += 1;
            return None;
        }
        // The program tries slots below n_masks; raise it (never lowered: free slots below it
        // are marked unused and skipped).
        let n = self.masks.iter().rposition(Option::is_some).map_or(0, |j| j + 1).max(i + 1);
        if self.prog.set_n_masks(n as u32).is_err() {
            self.stats.errors += 1;
        }
        self.masks[i] = Some(MaskSlot { mask: c.mask, refs: 1 });
        Some(i)
    }

    fn release_mask(&mut self, idx: usize) {
        if let Some(m) = self.masks[idx].as_mut() {
            m.refs -= 1;
            if m.refs == 0 {
                self.masks[idx] = None;
                let _ = self.prog.set_mask(idx as u32, None);
            }
        }
    }
}

/// The offloader shared by the datapath and the megaflow table's removal hook.
pub type SharedOffloader = Arc<Mutex<Offloader>>;

#[cfg(test)]
mod tests {
    use super::*;

    const A: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const B: [u8; 6] = [2, 0, 0, 0, 0, 2];

    fn ready(p: DpPortNo) -> bool {
        p.0 == 2 || p.0 == 3
    }

    fn in_port_mask() -> FlowMask {
        let mut m = FlowMask::catchall();
        m.0.in_port = !0;
        m
    }

    #[test]
    fn port_to_port_converts() {
        let key = FlowKey { in_port: 1, dl_src: A, ..FlowKey::zeroed() };
        let c = convert(&key, &in_port_mask(), &[DpAction::Output(DpPortNo(2))], ready).unwrap();
        assert_eq!(c.out, Some(DpPortNo(2)));
        assert_eq!(c.action.out_port, 2);
        assert_eq!(c.action.ops, 0);
        assert!(!c.needs_l3);
        // The key is masked: dl_src is not in the mask, so not in the kernel key.
        assert_eq!(c.key.words[0], u64::from(1u32));
        assert_eq!(c.key.words[2], 0);
        assert_eq!(c.mask.words[0], 0xffff_ffff);
    }

    #[test]
    fn drop_and_rewrites_convert_in_kernel_order() {
        let key = FlowKey { in_port: 1, ..FlowKey::zeroed() };
        let c = convert(&key, &in_port_mask(), &[], ready).unwrap();
        assert_eq!((c.out, c.action.out_port), (None, OUT_NONE));
        let acts = [
            DpAction::SetEthDst(B),
            DpAction::PopVlan,
            DpAction::PushVlan { tpid: 0x8100, tci: 0x1000 | 0x2005 },
            DpAction::SetEthSrc(A),
            DpAction::Output(DpPortNo(3)),
        ];
        let c = convert(&key, &in_port_mask(), &acts, ready).unwrap();
        assert_eq!(c.action.ops, op::SET_ETH_DST | op::POP_VLAN | op::PUSH_VLAN | op::SET_ETH_SRC);
        assert_eq!((c.action.eth_src, c.action.eth_dst), (A, B));
        assert_eq!(c.action.vlan_tpid, 0x8100u16.to_be());
        assert_eq!(c.action.vlan_tci, 0x2005u16.to_be(), "the present bit is not a wire bit");
        // A set after a push rewrites the pushed tag.
        let acts = [
            DpAction::PushVlan { tpid: 0x8100, tci: 5 },
            DpAction::SetVlanTci(7),
            DpAction::Output(DpPortNo(2)),
        ];
        let c = convert(&key, &in_port_mask(), &acts, ready).unwrap();
        assert_eq!((c.action.ops, c.action.vlan_tci), (op::PUSH_VLAN, 7u16.to_be()));
    }

    #[test]
    fn what_stays_in_user_space() {
        let key = FlowKey { in_port: 1, ..FlowKey::zeroed() };
        let m = in_port_mask();
        let no = |acts: &[DpAction]| convert(&key, &m, acts, ready).is_err();
        assert!(no(&[DpAction::SetEthDst(B), DpAction::Normal]), "NORMAL runs alone in the kernel");
        assert!(no(&[DpAction::Meter(1), DpAction::Output(DpPortNo(2))]));
        assert!(no(&[DpAction::Userspace(0)]));
        assert!(no(&[DpAction::Output(DpPortNo(2)), DpAction::Output(DpPortNo(3))]), "one output only");
        assert!(no(&[DpAction::Output(DpPortNo(9))]), "a port the kernel cannot redirect to");
        assert!(no(&[DpAction::SetIpv4Dst([1, 2, 3, 4]), DpAction::Output(DpPortNo(2))]));
        assert!(no(&[
            DpAction::PushVlan { tpid: 0x8100, tci: 1 },
            DpAction::PopVlan,
            DpAction::Output(DpPortNo(2))
        ]));
        assert!(no(&[DpAction::Tunnel { port: DpPortNo(2), key: 1 }]));
        // A field the program does not parse, matched non-zero: IPv6 address, tunnel id.
        let mut m6 = m;
        m6.0.nw_src = [0xff; 16];
        let mut k6 = key;
        k6.nw_src[15] = 1;
        assert!(convert(&k6, &m6, &[DpAction::Output(DpPortNo(2))], ready).is_err());
        let mut mt = m;
        mt.0.tun_id = !0;
        let kt = FlowKey { tun_id: 5, ..key };
        assert!(convert(&kt, &mt, &[DpAction::Output(DpPortNo(2))], ready).is_err());
        // ...but matched as zero (as every frame the program claims has it) is fine, and
        // makes the mask one that ARP frames skip.
        let c = convert(&key, &mt, &[DpAction::Output(DpPortNo(2))], ready).unwrap();
        assert!(c.needs_l3);
    }

    #[test]
    fn normal_runs_in_the_kernel() {
        let key = FlowKey { in_port: 1, ..FlowKey::zeroed() };
        let c = convert(&key, &in_port_mask(), &[DpAction::Normal], ready).unwrap();
        assert_eq!((c.action.ops, c.out), (op::NORMAL, None));
    }

    #[test]
    fn l3_masks_are_flagged_and_ipv4_addresses_kept() {
        let mut m = in_port_mask();
        m.0.dl_type = !0;
        m.0.nw_dst = [0xff; 16];
        m.0.tp_dst = !0;
        let mut key = FlowKey { in_port: 1, dl_type: 0x0800, tp_dst: 80, ..FlowKey::zeroed() };
        key.nw_dst[..4].copy_from_slice(&[198, 18, 0, 2]);
        let c = convert(&key, &m, &[DpAction::Output(DpPortNo(2))], ready).unwrap();
        assert!(c.needs_l3);
        assert_eq!(c.key.nw_dst, [198, 18, 0, 2]);
        assert_eq!(c.mask.nw_dst, [0xff; 4]);
        assert_eq!(c.key.words[3] & 0xffff_0000, u64::from(80u16) << 16);
    }

    /// The XDP program itself, run with `BPF_PROG_TEST_RUN` over frames "received" on `lo`
    /// (datapath port 1; port 2 is a devmap entry, also `lo`, never sent to): what it forwards,
    /// how it rewrites, and that it never forwards a frame user space would not.
    mod program {
        use super::*;
        use crate::datapath::extract::extract;
        use crate::packet::build::{self, Icmp4EchoSpec, Tcp4Spec, Udp4Spec};
        use proptest::prelude::*;

        const XDP_DROP: u32 = 1;
        const XDP_PASS: u32 = 2;
        const XDP_REDIRECT: u32 = 4;
        const LO: u32 = 1;

        fn load() -> Option<SwitchProgram> {
            if !crate::netns::is_root() {
                eprintln!("skipped: needs root (BPF)");
                return None;
            }
            let p = SwitchProgram::load().expect("the program loads and verifies");
            p.bind_port(LO, 1, true).unwrap();
            p.set_tx_port(2, Some(LO)).unwrap();
            Some(p)
        }

        fn install(p: &SwitchProgram, c: &Converted, slot: u32) {
            let flags = if c.needs_l3 { MASK_NEEDS_L3 } else { 0 };
            p.set_mask(0, Some(XMask { mask: c.mask, flags, pad: 0 })).unwrap();
            p.set_n_masks(1).unwrap();
            p.insert_flow(&XFlowKey { mask_idx: 0, pad: 0, key: c.key }, &XAction { slot, ..c.action })
                .unwrap();
        }

        fn key_of(frame: &[u8]) -> FlowKey {
            let mut k = FlowKey::zeroed();
            extract(frame, 1, &mut k).unwrap();
            k
        }

        #[test]
        fn rewrites_like_user_space_and_misses_go_to_user_space() {
            let Some(p) = load() else { return };
            let f = build::udp4(&Udp4Spec { dport: 53, dst_mac: B, ..Default::default() });
            let mut m = FlowMask::catchall();
            (m.0.in_port, m.0.dl_type, m.0.nw_proto, m.0.tp_dst) = (!0, !0, !0, !0);
            let acts = [
                DpAction::SetEthDst(A),
                DpAction::PushVlan { tpid: 0x8100, tci: 0x1000 | 7 },
                DpAction::Output(DpPortNo(2)),
            ];
            let c = convert(&key_of(&f), &m, &acts, ready).unwrap();
            assert!(c.needs_l3);
            install(&p, &c, 3);
            p.clear_flow_stats(3).unwrap();
            let (v, out) = p.test_run(LO, &f).unwrap();
            assert_eq!(v, XDP_REDIRECT);
            let mut want = f.clone();
            want[..6].copy_from_slice(&A);
            want.splice(12..12, [0x81, 0x00, 0x00, 0x07]);
            assert_eq!(out, want);
            assert_eq!(p.flow_stats(3).unwrap(), XStat { packets: 1, bytes: f.len() as u64 });
            // Another port number: a miss, to user space (no socket here: the kernel stack).
            let other = build::udp4(&Udp4Spec { dport: 54, ..Default::default() });
            assert_eq!(p.test_run(LO, &other).unwrap(), (XDP_PASS, other.clone()));
            // The same datagram with a broken IPv4 header: user space drops it, so the kernel
            // must not forward it, although its L2 fields and even its port match.
            let mut bad = f.clone();
            bad[16..18].copy_from_slice(&10u16.to_be_bytes()); // IPv4 total length < header
            assert!(extract(&bad, 1, &mut FlowKey::zeroed()).is_err());
            assert_eq!(p.test_run(LO, &bad).unwrap().0, XDP_PASS);
            // A port that cannot take redirected frames now: the frame goes to user space
            // unchanged.
            p.set_tx_port(2, None).unwrap();
            assert_eq!(p.test_run(LO, &f).unwrap(), (XDP_PASS, f.clone()));
            assert_eq!(p.stats().no_tx.packets, 1);
            p.set_tx_port(2, Some(LO)).unwrap();
            // Pop on an untagged frame is a no-op; drop drops.
            let c =
                convert(&key_of(&f), &m, &[DpAction::PopVlan, DpAction::Output(DpPortNo(2))], ready).unwrap();
            install(&p, &c, 4);
            assert_eq!(p.test_run(LO, &f).unwrap(), (XDP_REDIRECT, f.clone()));
            let c = convert(&key_of(&f), &m, &[], ready).unwrap();
            install(&p, &c, 5);
            assert_eq!(p.test_run(LO, &f).unwrap().0, XDP_DROP);
            // A tagged frame popped.
            let t = build::udp4(&Udp4Spec { dport: 53, vlan: Some(0x2005), ..Default::default() });
            let mut mt = m;
            mt.0.vlan_tci = !0;
            let c = convert(&key_of(&t), &mt, &[DpAction::PopVlan, DpAction::Output(DpPortNo(2))], ready)
                .unwrap();
            install(&p, &c, 6);
            let (v, out) = p.test_run(LO, &t).unwrap();
            let mut untagged = t.clone();
            untagged.drain(12..16);
            assert_eq!((v, out), (XDP_REDIRECT, untagged));
        }

        #[test]
        fn normal_forwards_known_unicast_and_leaves_the_rest_to_user_space() {
            let Some(p) = load() else { return };
            let all = PortVlan::trunk_all();
            let trunk = XVlan { bridge1: 1, mode: prog::VLAN_TRUNK, tag: 0, trunks: all.trunk_bitmap() };
            p.set_vlan_port(1, &trunk).unwrap();
            p.set_vlan_port(2, &XVlan { mode: prog::VLAN_ACCESS, tag: 5, trunks: [0; 64], ..trunk }).unwrap();
            let c = convert(&FlowKey::zeroed(), &FlowMask::catchall(), &[DpAction::Normal], ready).unwrap();
            install(&p, &c, 7);
            // From A (port 1, VLAN 5 tagged) to B (learned on access port 2 in VLAN 5).
            let f =
                build::udp4(&Udp4Spec { src_mac: A, dst_mac: B, vlan: Some(0x6005), ..Default::default() });
            assert_eq!(p.test_run(LO, &f).unwrap().0, XDP_PASS, "unknown source: user space learns");
            p.set_fdb(XFdbKey { bridge: 0, vlan: 5, mac: A }, Some(1)).unwrap();
            assert_eq!(
                p.test_run(LO, &f).unwrap().0,
                XDP_PASS,
                "first frame of the second: user space refreshes"
            );
            assert_eq!(p.test_run(LO, &f).unwrap().0, XDP_PASS, "unknown destination: user space floods");
            p.set_fdb(XFdbKey { bridge: 0, vlan: 5, mac: B }, Some(2)).unwrap();
            let mut r = p.test_run(LO, &f).unwrap();
            if r.0 == XDP_PASS {
                // A second boundary passed since the refresh: one more frame to user space.
                r = p.test_run(LO, &f).unwrap();
            }
            let (v, out) = r;
            let mut untagged = f.clone();
            untagged.drain(12..16);
            assert_eq!((v, out), (XDP_REDIRECT, untagged), "to the access port: untagged");
            // Another VLAN is not the access port's: user space (which drops it).
            let g = build::udp4(&Udp4Spec { src_mac: A, dst_mac: B, vlan: Some(6), ..Default::default() });
            p.set_fdb(XFdbKey { bridge: 0, vlan: 6, mac: A }, Some(1)).unwrap();
            p.set_fdb(XFdbKey { bridge: 0, vlan: 6, mac: B }, Some(2)).unwrap();
            let _ = p.test_run(LO, &g);
            assert_eq!(p.test_run(LO, &g).unwrap().0, XDP_PASS);
            // The destination moved back to the ingress port: user space.
            p.set_fdb(XFdbKey { bridge: 0, vlan: 5, mac: B }, Some(1)).unwrap();
            assert_eq!(p.test_run(LO, &f).unwrap().0, XDP_PASS);
            // Broadcast: user space floods.
            let bc = build::udp4(&Udp4Spec {
                src_mac: A,
                dst_mac: [0xff; 6],
                vlan: Some(5),
                ..Default::default()
            });
            assert_eq!(p.test_run(LO, &bc).unwrap().0, XDP_PASS);
        }

        fn frames() -> impl Strategy<Value = Vec<u8>> {
            let base = prop_oneof![
                (any::<u16>(), any::<u16>(), proptest::option::of(any::<u16>())).prop_map(|(s, d, v)| {
                    build::udp4(&Udp4Spec { sport: s, dport: d % 4, vlan: v, ..Default::default() })
                }),
                (any::<u16>(), any::<u16>()).prop_map(|(f, d)| build::tcp4(&Tcp4Spec {
                    ip: Udp4Spec { dport: d % 4, ..Default::default() },
                    flags: f
                })),
                Just(build::icmp4_echo(&Icmp4EchoSpec::default())),
                Just(build::arp_request(A, [198, 18, 0, 1], [198, 18, 0, 2], None)),
                Just(build::udp6(&Default::default())),
            ];
            // Mutations: cut the frame, overwrite bytes (headers most often).
            (base, proptest::collection::vec((0usize..64, any::<u8>()), 0..4), 14usize..200).prop_map(
                |(mut f, pokes, cut)| {
                    for (at, b) in pokes {
                        if at < f.len() {
                            f[at] = b;
                        }
                    }
                    f.truncate(cut.max(14));
                    f
                },
            )
        }

        fn masks() -> impl Strategy<Value = FlowMask> {
            (any::<[bool; 8]>()).prop_map(|b| {
                let mut m = FlowMask::catchall();
                let w = |on: bool| if on { !0 } else { 0 };
                m.0.in_port = w(b[0]) as u32;
                m.0.dl_type = w(b[1]) as u16;
                m.0.vlan_tci = w(b[2]) as u16;
                m.0.nw_proto = w(b[3]) as u8;
                m.0.tp_dst = w(b[4]) as u16;
                m.0.nw_frag = w(b[5]) as u8;
                m.0.tcp_flags = w(b[6]) as u16;
                if b[7] {
                    m.0.nw_dst[..4].fill(0xff);
                }
                m
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]
            /// Whatever the frame (valid, cut or garbled): if the kernel forwards it, user space
            /// would have parsed it and matched it to the same megaflow.
            #[test]
            fn never_forwards_what_user_space_would_not(template in frames(), frame in frames(), mask in masks()) {
                // One program for every case (loading verifies it: slow); each case removes
                // its flow again.
                static PROG: std::sync::OnceLock<Option<SwitchProgram>> = std::sync::OnceLock::new();
                let Some(p) = PROG.get_or_init(load) else { return Ok(()) };
                let mut tk = FlowKey::zeroed();
                prop_assume!(extract(&template, 1, &mut tk).is_ok());
                let c = convert(&tk, &mask, &[DpAction::Output(DpPortNo(2))], ready).unwrap();
                install(p, &c, 9);
                let run = p.test_run(LO, &frame);
                p.remove_flow(&XFlowKey { mask_idx: 0, pad: 0, key: c.key }).unwrap();
                let Ok((v, _)) = run else { return Ok(()) };
                let mut k = FlowKey::zeroed();
                let user = extract(&frame, 1, &mut k).is_ok() && k.matches_masked(&mask, &tk.masked(&mask));
                if v == XDP_REDIRECT {
                    prop_assert!(user, "kernel forwarded a frame user space would not: {frame:02x?} key {k:?}");
                }
                if frame == template && tk.dl_type == 0x0800 {
                    prop_assert_eq!(v, XDP_REDIRECT, "a clean IPv4 frame of the flow runs in the kernel");
                }
            }
        }
    }
}
