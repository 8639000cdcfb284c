//! Poll-mode threads: one per core, each owning a [`Umem`], the queues it serves, an
//! exact-match cache and its counters.
//!
//! One round: receive a batch from each queue → extract keys → EMC → megaflow classifier →
//! execute actions into per-port transmit batches → (misses: copy to an upcall) → run the
//! execute requests the slow path sent back (and packet-outs) → transmit every pending batch
//! → let each queue reclaim completions and refill. A batch from a port set to `no_recv` is
//! dropped before lookup (counted in the port's `rx_dropped`); the flag is read once per
//! batch. `Userspace` actions copy the packet onto the packet-in queue (its own bounded
//! queue: full => drop and count); `Meter` actions use the shared lock-free meters.
//!
//! The ingress port is per packet (`PktMeta`): a batch from an underlay port is first
//! decapsulated (each GRE packet gets its tunnel port and tunnel metadata), and outputs to a
//! patch port come back as new batches from the peer port after the batch that made them
//! (`settle`), at most [`MAX_RECIRC_DEPTH`] deep. Outputs to tunnel ports are encapsulated
//! after the batch too, with the tunnel map loaded once.
//!
//! A thread spins while there is work and, after a run of empty rounds, sleeps in `poll()` on
//! its sockets (and on an eventfd the control thread writes when it queues an execute
//! request), so a 2-core machine keeps a core for the kernel (busy-polling every core starved
//! veth NAPI here).
//!
//! Hot-path rules: no allocation (batches and per-port vectors are sized at start), no locks,
//! no logging; counters are single-writer.

use std::sync::atomic::{fence, AtomicBool, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use crossbeam_channel::{Receiver, Sender, TrySendError};

use super::classifier::SubtableRanking;
use super::dpif::MAX_PACKET_LEN;
use super::emc::ExactMatchCache;
use super::execute::{execute, OutputSink};
use super::extract::{extract, DropReason};
use super::flow::FlowKey;
use super::megaflow::{Megaflow, MegaflowReader};
use super::meter::{MeterMap, MeterReader};
use super::normal::{Normal, NormalDecision, NormalDrop, NormalPorts};
use super::tunnel::{
    classify_underlay, EncapError, TunnelMeta, TunnelPending, Tunnels, UnderlayDrop, UnderlayPacket,
    UnderlayVerdict,
};
use super::upcall::{Execute, PacketIn, Upcall, UpcallKind};
use crate::netdev::{wait_readable, Counter, DpPortNo, Frame, Queue, QueueStats, Umem, Waker, Wakeup};

/// Frames taken from one queue in one go.
pub const BATCH: usize = crate::netdev::RX_BATCH;
/// How long a poll thread keeps polling after its last work before it sleeps in `poll()`.
/// By time, not by rounds: a round over AF_XDP rings is a few memory reads, a round over a
/// TAP port (the LOCAL port) is a `read()` system call, and 2000 of those spun away a third
/// of a core on an idle switch.
const SPIN_TIME: Duration = Duration::from_micros(100);
/// How long a sleeping poll thread waits before it looks at its queues again anyway.
const SLEEP_MS: i32 = 5;

/// Counters of one poll thread. Written only by that thread; read by anyone.
#[derive(Default, Debug)]
#[repr(align(64))]
pub struct PmdStats {
    pub iterations: Counter,
    pub rx_packets: Counter,
    pub rx_bytes: Counter,
    pub emc_hits: Counter,
    pub megaflow_hits: Counter,
    /// Classifier subtables probed for the megaflow hits (avg per hit = this / hits).
    pub subtables_probed: Counter,
    pub misses: Counter,
    pub upcalls: Counter,
    /// Misses whose upcall found the queue full: dropped.
    pub upcall_dropped: Counter,
    /// Packets run from the slow path's execute requests (and packet-outs).
    pub executed: Counter,
    /// Packet copies queued for the controller (`Userspace` actions).
    pub userspace: Counter,
    /// `Userspace` copies dropped because the packet-in queue was full.
    pub userspace_dropped: Counter,
    /// Packets dropped by a meter's band.
    pub meter_dropped: Counter,
    /// Packets received on a port set to `no_recv`: dropped before lookup.
    pub no_recv_dropped: Counter,
    /// NORMAL: frames the ingress port's VLAN configuration refused (dropped).
    pub normal_vlan_dropped: Counter,
    /// NORMAL: frames with a multicast source address (forwarded, not learned).
    pub normal_src_multicast: Counter,
    /// Outputs to a port this thread has no transmit queue on: dropped.
    pub tx_no_port: Counter,
    /// Packets dropped while executing actions (TTL expired, no free frame for a copy).
    pub action_dropped: Counter,
    /// Packets whose actions had no output.
    pub no_output: Counter,
    /// Malformed frames, by reason (see [`DropReason`]).
    pub malformed: [Counter; DropReason::COUNT],
    /// Packets encapsulated and handed to their underlay port.
    pub tunnel_encap: Counter,
    /// Packets decapsulated from an underlay port (then looked up on their tunnel port).
    pub tunnel_decap: Counter,
    /// Packets for a tunnel without an outer header yet: copied to the slow path.
    pub tunnel_no_header: Counter,
    /// Packets for a tunnel without a header, dropped because the pending queue was full.
    pub tunnel_pending_dropped: Counter,
    /// Packets whose outer IP packet would exceed the underlay's MTU (or a frame): dropped.
    pub tunnel_mtu_dropped: Counter,
    /// GRE with unsupported flags, version or routing, or a payload other than Ethernet.
    pub tunnel_bad_gre: Counter,
    /// GRE packets with a wrong outer IP or GRE checksum.
    pub tunnel_bad_csum: Counter,
    /// Underlay frames with outer or inner headers cut short.
    pub tunnel_truncated: Counter,
    /// GRE packets for us with no tunnel port for their remote and key.
    pub tunnel_no_port: Counter,
    /// Underlay frames (ARP, ICMP echo to us) copied to the slow path.
    pub underlay_to_slow_path: Counter,
    /// Underlay frames not for us (or for the slow path, with its queue full): dropped.
    pub underlay_dropped: Counter,
    /// Packets run again after an output to a patch port.
    pub recirculated: Counter,
    /// Packets dropped for crossing patch ports more than [`MAX_RECIRC_DEPTH`] times.
    pub recirc_loop_dropped: Counter,
    pub busy_ns: Counter,
    pub idle_ns: Counter,
    pub sleeps: Counter,
}

/// A plain copy of [`PmdStats`], for operators.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct PmdStatsSnapshot {
    pub pmd: usize,
    pub iterations: u64,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub emc_hits: u64,
    pub megaflow_hits: u64,
    pub subtables_probed: u64,
    pub misses: u64,
    pub upcalls: u64,
    pub upcall_dropped: u64,
    pub executed: u64,
    pub userspace: u64,
    pub userspace_dropped: u64,
    pub meter_dropped: u64,
    pub no_recv_dropped: u64,
    pub normal_vlan_dropped: u64,
    pub normal_src_multicast: u64,
    pub tx_no_port: u64,
    pub action_dropped: u64,
    pub no_output: u64,
    pub malformed: Vec<(&'static str, u64)>,
    pub tunnel_encap: u64,
    pub tunnel_decap: u64,
    pub tunnel_no_header: u64,
    pub tunnel_pending_dropped: u64,
    pub tunnel_mtu_dropped: u64,
    pub tunnel_bad_gre: u64,
    pub tunnel_bad_csum: u64,
    pub tunnel_truncated: u64,
    pub tunnel_no_port: u64,
    pub underlay_to_slow_path: u64,
    pub underlay_dropped: u64,
    pub recirculated: u64,
    pub recirc_loop_dropped: u64,
    pub busy_ns: u64,
    pub idle_ns: u64,
    pub sleeps: u64,
}

impl PmdStats {
    pub fn snapshot(&self, pmd: usize) -> PmdStatsSnapshot {
        PmdStatsSnapshot {
            pmd,
            iterations: self.iterations.get(),
            rx_packets: self.rx_packets.get(),
            rx_bytes: self.rx_bytes.get(),
            emc_hits: self.emc_hits.get(),
            megaflow_hits: self.megaflow_hits.get(),
            subtables_probed: self.subtables_probed.get(),
            misses: self.misses.get(),
            upcalls: self.upcalls.get(),
            upcall_dropped: self.upcall_dropped.get(),
            executed: self.executed.get(),
            userspace: self.userspace.get(),
            userspace_dropped: self.userspace_dropped.get(),
            meter_dropped: self.meter_dropped.get(),
            no_recv_dropped: self.no_recv_dropped.get(),
            normal_vlan_dropped: self.normal_vlan_dropped.get(),
            normal_src_multicast: self.normal_src_multicast.get(),
            tx_no_port: self.tx_no_port.get(),
            action_dropped: self.action_dropped.get(),
            no_output: self.no_output.get(),
            malformed: DropReason::ALL
                .iter()
                .map(|r| (r.name(), self.malformed[*r as usize].get()))
                .collect(),
            tunnel_encap: self.tunnel_encap.get(),
            tunnel_decap: self.tunnel_decap.get(),
            tunnel_no_header: self.tunnel_no_header.get(),
            tunnel_pending_dropped: self.tunnel_pending_dropped.get(),
            tunnel_mtu_dropped: self.tunnel_mtu_dropped.get(),
            tunnel_bad_gre: self.tunnel_bad_gre.get(),
            tunnel_bad_csum: self.tunnel_bad_csum.get(),
            tunnel_truncated: self.tunnel_truncated.get(),
            tunnel_no_port: self.tunnel_no_port.get(),
            underlay_to_slow_path: self.underlay_to_slow_path.get(),
            underlay_dropped: self.underlay_dropped.get(),
            recirculated: self.recirculated.get(),
            recirc_loop_dropped: self.recirc_loop_dropped.get(),
            busy_ns: self.busy_ns.get(),
            idle_ns: self.idle_ns.get(),
            sleeps: self.sleeps.get(),
        }
    }
}

impl PmdStatsSnapshot {
    /// The tunnel, underlay and patch counters as `pmd-stats` text: three lines, each
    /// indented by two spaces and ending in a newline.
    pub fn tunnel_text(&self) -> String {
        format!(
            "  tunnels:            encap {}, decap {}, no header (to slow path) {}, pending dropped {}, \
             mtu dropped {}\n  tunnel drops:       bad gre {}, bad checksum {}, truncated {}, no port {}\n  \
             underlay:           to slow path {}, dropped {}; patch: recirculated {}, loop dropped {}\n",
            self.tunnel_encap,
            self.tunnel_decap,
            self.tunnel_no_header,
            self.tunnel_pending_dropped,
            self.tunnel_mtu_dropped,
            self.tunnel_bad_gre,
            self.tunnel_bad_csum,
            self.tunnel_truncated,
            self.tunnel_no_port,
            self.underlay_to_slow_path,
            self.underlay_dropped,
            self.recirculated,
            self.recirc_loop_dropped,
        )
    }

    /// `self - base`, counter by counter (for `pmd-stats-clear` baselines).
    pub fn since(&self, base: &PmdStatsSnapshot) -> PmdStatsSnapshot {
        let d = |a: u64, b: u64| a.wrapping_sub(b);
        PmdStatsSnapshot {
            pmd: self.pmd,
            iterations: d(self.iterations, base.iterations),
            rx_packets: d(self.rx_packets, base.rx_packets),
            rx_bytes: d(self.rx_bytes, base.rx_bytes),
            emc_hits: d(self.emc_hits, base.emc_hits),
            megaflow_hits: d(self.megaflow_hits, base.megaflow_hits),
            subtables_probed: d(self.subtables_probed, base.subtables_probed),
            misses: d(self.misses, base.misses),
            upcalls: d(self.upcalls, base.upcalls),
            upcall_dropped: d(self.upcall_dropped, base.upcall_dropped),
            executed: d(self.executed, base.executed),
            userspace: d(self.userspace, base.userspace),
            userspace_dropped: d(self.userspace_dropped, base.userspace_dropped),
            meter_dropped: d(self.meter_dropped, base.meter_dropped),
            no_recv_dropped: d(self.no_recv_dropped, base.no_recv_dropped),
            normal_vlan_dropped: d(self.normal_vlan_dropped, base.normal_vlan_dropped),
            normal_src_multicast: d(self.normal_src_multicast, base.normal_src_multicast),
            tx_no_port: d(self.tx_no_port, base.tx_no_port),
            action_dropped: d(self.action_dropped, base.action_dropped),
            no_output: d(self.no_output, base.no_output),
            malformed: self
                .malformed
                .iter()
                .map(|(n, a)| (*n, d(*a, base.malformed.iter().find(|(m, _)| m == n).map_or(0, |(_, b)| *b))))
                .collect(),
            tunnel_encap: d(self.tunnel_encap, base.tunnel_encap),
            tunnel_decap: d(self.tunnel_decap, base.tunnel_decap),
            tunnel_no_header: d(self.tunnel_no_header, base.tunnel_no_header),
            tunnel_pending_dropped: d(self.tunnel_pending_dropped, base.tunnel_pending_dropped),
            tunnel_mtu_dropped: d(self.tunnel_mtu_dropped, base.tunnel_mtu_dropped),
            tunnel_bad_gre: d(self.tunnel_bad_gre, base.tunnel_bad_gre),
            tunnel_bad_csum: d(self.tunnel_bad_csum, base.tunnel_bad_csum),
            tunnel_truncated: d(self.tunnel_truncated, base.tunnel_truncated),
            tunnel_no_port: d(self.tunnel_no_port, base.tunnel_no_port),
            underlay_to_slow_path: d(self.underlay_to_slow_path, base.underlay_to_slow_path),
            underlay_dropped: d(self.underlay_dropped, base.underlay_dropped),
            recirculated: d(self.recirculated, base.recirculated),
            recirc_loop_dropped: d(self.recirc_loop_dropped, base.recirc_loop_dropped),
            busy_ns: d(self.busy_ns, base.busy_ns),
            idle_ns: d(self.idle_ns, base.idle_ns),
            sleeps: d(self.sleeps, base.sleeps),
        }
    }
}

/// Settings of a port the control thread may change while poll threads run.
#[derive(Debug, Default)]
pub(crate) struct PortControl {
    /// OpenFlow `OFPPC_NO_RECV`: drop everything received on the port before lookup.
    pub no_recv: AtomicBool,
}

/// What a port is to the fast path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum PortRole {
    /// No such port.
    #[default]
    None,
    /// A port with a device (AF_XDP, TAP, in-memory) in a bridge.
    Netdev,
    /// A patch port: output to it runs the packet again from `peer`.
    Patch { peer: DpPortNo },
    /// A GRE tunnel port: entry `idx` of the tunnel map.
    Tunnel { idx: u16 },
    /// An underlay port (no bridge): entry `idx` of the tunnel map's underlays.
    Underlay { idx: u16 },
}

/// A port's role and bridge, indexed by [`DpPortNo::table_index`].
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PortEntry {
    pub role: PortRole,
    pub bridge: u16,
}

/// How many times one packet may cross patch ports (OVS allows a similar depth).
pub const MAX_RECIRC_DEPTH: u8 = 8;

/// Per-packet metadata that does not live in the frame: where the packet entered (a port,
/// the tunnel port it was decapsulated for, or a patch port's peer), its tunnel metadata, and
/// how many patch ports it crossed.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PktMeta {
    pub in_port: DpPortNo,
    pub tun: TunnelMeta,
    pub depth: u8,
}

/// One queue a poll thread serves.
pub(crate) struct PmdQueue {
    pub port_no: DpPortNo,
    pub qid: u32,
    pub queue: Box<dyn Queue>,
    pub control: Arc<PortControl>,
}

/// Everything a poll thread owns. Built by the control thread, then moved into the thread.
pub(crate) struct Pmd {
    pub id: usize,
    pub umem: Umem,
    pub queues: Vec<PmdQueue>,
    /// For each port slot, the queue (index into `queues`) this thread transmits on.
    pub tx_queue_of: Vec<Option<usize>>,
    /// Port number → port slot + 1 (0: no such port).
    pub slot_of: Vec<u16>,
    /// Port number → role and bridge.
    pub port_table: Arc<[PortEntry]>,
    pub emc: Option<ExactMatchCache>,
    pub reader: MegaflowReader,
    /// This thread's order of classifier subtables, by its own hits.
    pub ranking: SubtableRanking,
    pub stats: Arc<PmdStats>,
    /// Per port slot: frames for that port dropped here because this thread has no transmit
    /// queue on it (written only by this thread; added into the port's `tx_dropped`).
    pub port_tx_dropped: Arc<[Counter]>,
    /// Per port slot: packets and bytes of patch and tunnel ports (which have no queues of
    /// their own to count them), written only by this thread.
    pub virt_stats: Arc<[QueueStats]>,
    pub upcall_tx: Sender<Upcall>,
    pub packet_in_tx: Sender<PacketIn>,
    /// Packet-in buffers the slow path handed back, for reuse.
    pub recycle_rx: Receiver<Vec<u8>>,
    pub meters: MeterReader,
    /// NORMAL of each bridge: the shared MAC table, flood ports and learning queue.
    pub normals: Vec<Arc<Normal>>,
    /// The tunnels and underlays (headers change at run time).
    pub tunnels: Arc<Tunnels>,
    pub tunnel_pending_tx: Sender<TunnelPending>,
    pub underlay_tx: Sender<UnderlayPacket>,
    /// The next outer IPv4 ID this thread writes.
    pub ip_id: u16,
    pub exec_rx: Receiver<Execute>,
    /// Set while this thread sleeps in `poll()`: whoever queues an execute then wakes it.
    pub sleeping: Arc<AtomicBool>,
    pub waker: Arc<Waker>,
    pub stop: Arc<AtomicBool>,
    pub epoch: Instant,
}

/// Where executed packets go: the per-port transmit batches of this thread, the patch and
/// tunnel lists, the packet-in queue, and the meters. Built per batch; the per-packet fields
/// (`in_port`, `bridge`, `tun`, `depth`) are set before each packet runs.
struct Outputs<'a> {
    slot_of: &'a [u16],
    port_table: &'a [PortEntry],
    pending: &'a mut [Vec<Frame>],
    unroutable: &'a mut Vec<Frame>,
    virt_stats: &'a [QueueStats],
    /// Frames output to patch ports, with their metadata for the next round.
    recirc: &'a mut Vec<(Frame, PktMeta)>,
    /// Frames to encapsulate: (frame, tunnel index, key).
    encap: &'a mut Vec<(Frame, u16, u32)>,
    core: usize,
    /// Ingress port of the packet being executed (`None`: from the controller).
    in_port: Option<DpPortNo>,
    bridge: u16,
    tun: TunnelMeta,
    depth: u8,
    now_ns: u64,
    stats: &'a PmdStats,
    packet_in_tx: &'a Sender<PacketIn>,
    recycle: &'a Receiver<Vec<u8>>,
    meters: &'a ArcSwap<MeterMap>,
    /// The meter map, loaded at the batch's first meter action.
    meter_map: Option<arc_swap::Guard<Arc<MeterMap>>>,
    normals: &'a [Arc<Normal>],
    /// NORMAL's port configuration of the last bridge that ran NORMAL in this batch.
    normal_ports: Option<(u16, arc_swap::Guard<Arc<NormalPorts>>)>,
}

impl Outputs<'_> {
    /// Bridge `bridge`'s NORMAL and its port configuration (loaded once per batch and bridge).
    #[inline]
    fn normal_of(&mut self, bridge: u16) -> Option<(&Normal, &NormalPorts)> {
        let normal = self.normals.get(usize::from(bridge))?;
        if self.normal_ports.as_ref().is_none_or(|(b, _)| *b != bridge) {
            self.normal_ports = Some((bridge, normal.ports()));
        }
        self.normal_ports.as_ref().map(|(_, p)| (normal.as_ref(), &***p))
    }

    #[inline]
    fn role(&self, port: DpPortNo) -> PortRole {
        role_of(self.port_table, port)
    }
}

impl OutputSink for Outputs<'_> {
    #[inline]
    fn output(&mut self, port: DpPortNo, frame: Frame) {
        match self.slot_of.get(port.table_index()) {
            Some(&s) if s != 0 => match self.role(port) {
                PortRole::Netdev | PortRole::Underlay { .. } | PortRole::None => {
                    self.pending[s as usize - 1].push(frame)
                }
                PortRole::Patch { peer } => {
                    let vs = &self.virt_stats[s as usize - 1];
                    vs.tx_packets.add(1);
                    vs.tx_bytes.add(frame.len() as u64);
                    // Tunnel metadata does not cross a patch (as in OVS).
                    let meta = PktMeta { in_port: peer, tun: TunnelMeta::default(), depth: self.depth + 1 };
                    self.recirc.push((frame, meta));
                }
                PortRole::Tunnel { idx } => self.encap.push((frame, idx, 0)),
            },
            _ => self.unroutable.push(frame),
        }
    }

    fn userspace(&mut self, id: u32, packet: &[u8]) -> bool {
        let queued = offer(self.packet_in_tx, || {
            let mut buf = self.recycle.try_recv().unwrap_or_default();
            buf.clear();
            buf.extend_from_slice(packet);
            PacketIn {
                id,
                pmd: self.core,
                in_port: self.in_port,
                bridge: self.bridge,
                tunnel: self.tun,
                packet: buf,
            }
        });
        if queued {
            self.stats.userspace.add(1);
        } else {
            self.stats.userspace_dropped.add(1);
        }
        queued
    }

    #[inline]
    fn normal(&mut self, packet: &[u8], d: &mut NormalDecision) {
        let now_s = (self.now_ns / 1_000_000_000) as u32;
        let in_port = self.in_port;
        let Some((normal, ports)) = self.normal_of(self.bridge) else { return };
        normal.decide(ports, packet, in_port, now_s, d);
        if d.drop == Some(NormalDrop::Vlan) {
            self.stats.normal_vlan_dropped.add(1);
        }
        if d.src_multicast {
            self.stats.normal_src_multicast.add(1);
        }
    }

    #[inline]
    fn tunnel(&mut self, port: DpPortNo, key: u32, frame: Frame) {
        match self.role(port) {
            PortRole::Tunnel { idx } => self.encap.push((frame, idx, key)),
            _ => self.unroutable.push(frame),
        }
    }

    #[inline]
    fn meter(&mut self, id: u32, len: usize) -> bool {
        let map = self.meter_map.get_or_insert_with(|| self.meters.load());
        match map.get(&id) {
            Some(m) => m.admit(self.core, self.now_ns, len),
            None => true,
        }
    }
}

/// Per-thread scratch state that lives across rounds (allocated once).
struct Scratch {
    /// Frames to look up, with their metadata in `meta` (same index).
    batch: Vec<Frame>,
    meta: [PktMeta; BATCH],
    /// A second batch vector (to filter `batch` without allocating).
    spare: Vec<Frame>,
    /// Frames of the batch whose key extracted, in order, with their keys and hashes.
    valid: Vec<Frame>,
    keys: [FlowKey; BATCH],
    hashes: [u32; BATCH],
    from_classifier: [bool; BATCH],
    to_cache: Vec<(usize, Arc<Megaflow>)>,
    pending: Vec<Vec<Frame>>,
    unroutable: Vec<Frame>,
    /// Output to patch ports, waiting for the next round; and the round being run.
    recirc: Vec<(Frame, PktMeta)>,
    recirc_work: Vec<(Frame, PktMeta)>,
    encap: Vec<(Frame, u16, u32)>,
    fds: Vec<std::os::fd::RawFd>,
    must_nap: bool,
}

impl Pmd {
    /// The poll loop; returns when `stop` is set, after handing every frame back.
    pub(crate) fn run(mut self) {
        let n_ports = self.tx_queue_of.len();
        // Room for a few rounds of fan-out so the vectors never grow on the hot path.
        let per_port = BATCH * (self.queues.len() + 1) * 4;
        // A frame is in at most one of these lists: the pool's size bounds them.
        let frames = self.umem.n_chunks() as usize;
        let mut s = Scratch {
            batch: Vec::with_capacity(BATCH),
            meta: [PktMeta::default(); BATCH],
            spare: Vec::with_capacity(BATCH),
            valid: Vec::with_capacity(BATCH),
            keys: [FlowKey::default(); BATCH],
            hashes: [0; BATCH],
            from_classifier: [false; BATCH],
            to_cache: Vec::with_capacity(BATCH),
            pending: (0..n_ports).map(|_| Vec::with_capacity(per_port)).collect(),
            unroutable: Vec::with_capacity(per_port),
            recirc: Vec::with_capacity(frames),
            recirc_work: Vec::with_capacity(frames),
            encap: Vec::with_capacity(frames),
            fds: Vec::new(),
            must_nap: false,
        };
        for q in &self.queues {
            match q.queue.wakeup() {
                Wakeup::Fd(fd) => s.fds.push(fd),
                Wakeup::Nap => s.must_nap = true,
            }
        }
        if !s.fds.is_empty() {
            s.fds.push(self.waker.fd());
        }
        let mut last = Instant::now();
        let mut idle_since = last;
        while !self.stop.load(Relaxed) {
            let mut work = 0;
            for qi in 0..self.queues.len() {
                let n = self.queues[qi].queue.recv(&mut self.umem, &mut s.batch, BATCH);
                if n > 0 {
                    work += n;
                    if self.queues[qi].control.no_recv.load(Relaxed) {
                        self.drop_batch(qi, &mut s);
                    } else {
                        self.receive(qi, &mut s);
                        self.settle(&mut s);
                    }
                }
            }
            work += self.run_executes(&mut s);
            self.settle(&mut s);
            self.flush(&mut s);
            for q in &mut self.queues {
                q.queue.maintain(&mut self.umem);
            }
            self.stats.iterations.add(1);
            let now = Instant::now();
            let dt = now.duration_since(last).as_nanos() as u64;
            last = now;
            if work > 0 {
                self.stats.busy_ns.add(dt);
                idle_since = now;
            } else {
                self.stats.idle_ns.add(dt);
                if now.duration_since(idle_since) >= SPIN_TIME {
                    self.sleep(&s);
                    let now = Instant::now();
                    self.stats.idle_ns.add(now.duration_since(last).as_nanos() as u64);
                    last = now;
                    idle_since = now;
                }
            }
        }
        self.shutdown(&mut s);
    }

    fn sleep(&self, s: &Scratch) {
        self.stats.sleeps.add(1);
        if s.must_nap || s.fds.is_empty() {
            std::thread::sleep(Duration::from_micros(200));
        } else {
            // Announce the sleep, then look at the execute queue once more: a sender either
            // sees the flag (and wakes us) or its request is seen here (fences on both sides).
            self.sleeping.store(true, SeqCst);
            fence(SeqCst);
            if self.exec_rx.is_empty() {
                // An error here (EBADF) would be a bug in port teardown order; nap, don't spin.
                if wait_readable(&s.fds, SLEEP_MS).is_err() {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            self.sleeping.store(false, Relaxed);
            self.waker.reset();
        }
    }

    /// Drops a received batch of a `no_recv` port, counting it in the port's `rx_dropped`.
    fn drop_batch(&mut self, qi: usize, s: &mut Scratch) {
        let n = s.batch.len() as u64;
        self.stats.no_recv_dropped.add(n);
        self.queues[qi].queue.stats().rx_dropped.add(n);
        for f in s.batch.drain(..) {
            self.umem.free(f);
        }
    }

    /// A batch received on queue `qi` (in `s.batch`): counted, decapsulated when the port is
    /// an underlay, then looked up and run.
    fn receive(&mut self, qi: usize, s: &mut Scratch) {
        let port = self.queues[qi].port_no;
        self.stats.rx_packets.add(s.batch.len() as u64);
        let mut rx_bytes = 0u64;
        for f in &s.batch {
            rx_bytes += f.len() as u64;
        }
        self.stats.rx_bytes.add(rx_bytes);
        if let PortRole::Underlay { idx } = role_of(&self.port_table, port) {
            self.decap_batch(usize::from(idx), s);
        } else {
            s.meta[..s.batch.len()].fill(PktMeta { in_port: port, ..PktMeta::default() });
        }
        if !s.batch.is_empty() {
            self.process(s);
        }
    }

    /// Keeps, stripped of their outer headers, the frames of `s.batch` that are GRE for one of
    /// our tunnels (with their tunnel port and metadata in `s.meta`); copies ARP and pings to
    /// the slow path; drops and counts the rest.
    fn decap_batch(&mut self, underlay: usize, s: &mut Scratch) {
        let map = self.tunnels.load();
        std::mem::swap(&mut s.batch, &mut s.spare);
        let Some(u) = map.underlays.get(underlay).copied() else {
            self.stats.underlay_dropped.add(s.spare.len() as u64);
            for f in s.spare.drain(..) {
                self.umem.free(f);
            }
            return;
        };
        let st: &PmdStats = &self.stats;
        for mut f in s.spare.drain(..) {
            match classify_underlay(&map, &u, self.umem.data(&f)) {
                UnderlayVerdict::Decap { port, meta, strip, inner_len } => {
                    let ok =
                        self.umem.with_buf(&mut f, |b| b.pull_head(strip).and_then(|_| b.set_len(inner_len)));
                    if ok.is_err() {
                        st.tunnel_truncated.add(1);
                        self.umem.free(f);
                        continue;
                    }
                    st.tunnel_decap.add(1);
                    if let Some(vs) = self.virt_stats.get(slot_index(&self.slot_of, port)) {
                        vs.rx_packets.add(1);
                        vs.rx_bytes.add(inner_len as u64);
                    }
                    s.meta[s.batch.len()] = PktMeta { in_port: port, tun: meta, depth: 0 };
                    s.batch.push(f);
                }
                UnderlayVerdict::SlowPath => {
                    let sent = offer(&self.underlay_tx, || UnderlayPacket {
                        port: u.port,
                        packet: self.umem.data(&f).to_vec(),
                    });
                    if sent {
                        st.underlay_to_slow_path.add(1);
                    } else {
                        st.underlay_dropped.add(1);
                    }
                    self.umem.free(f);
                }
                UnderlayVerdict::Drop(why) => {
                    match why {
                        UnderlayDrop::NotForUs => &st.underlay_dropped,
                        UnderlayDrop::BadGre => &st.tunnel_bad_gre,
                        UnderlayDrop::BadCsum => &st.tunnel_bad_csum,
                        UnderlayDrop::Truncated => &st.tunnel_truncated,
                        UnderlayDrop::NoPort => &st.tunnel_no_port,
                    }
                    .add(1);
                    self.umem.free(f);
                }
            }
        }
    }

    /// Runs what the last batch left over, until nothing is left: encapsulates the frames
    /// output to tunnels, and runs the frames output to patch ports again as new batches
    /// (from the peer port), at most [`MAX_RECIRC_DEPTH`] deep. Returns how many ran again.
    fn settle(&mut self, s: &mut Scratch) -> usize {
        let mut n = 0;
        loop {
            self.encap_all(s);
            if s.recirc.is_empty() {
                return n;
            }
            std::mem::swap(&mut s.recirc, &mut s.recirc_work);
            while !s.recirc_work.is_empty() {
                let take = s.recirc_work.len().min(BATCH);
                for (f, m) in s.recirc_work.drain(..take) {
                    if m.depth > MAX_RECIRC_DEPTH {
                        self.stats.recirc_loop_dropped.add(1);
                        self.umem.free(f);
                        continue;
                    }
                    if let Some(vs) = self.virt_stats.get(slot_index(&self.slot_of, m.in_port)) {
                        vs.rx_packets.add(1);
                        vs.rx_bytes.add(f.len() as u64);
                    }
                    s.meta[s.batch.len()] = m;
                    s.batch.push(f);
                }
                if s.batch.is_empty() {
                    continue;
                }
                n += s.batch.len();
                self.stats.recirculated.add(s.batch.len() as u64);
                self.process(s);
                self.encap_all(s);
            }
        }
    }

    /// Encapsulates the frames output to tunnel ports and queues them on their underlay
    /// port; a tunnel without a header yet sends a copy to the slow path instead.
    fn encap_all(&mut self, s: &mut Scratch) {
        if s.encap.is_empty() {
            return;
        }
        let map = self.tunnels.load();
        let st: &PmdStats = &self.stats;
        for (mut f, idx, key) in s.encap.drain(..) {
            let Some(t) = map.tunnels.get(usize::from(idx)) else {
                s.unroutable.push(f);
                continue;
            };
            let Some(tpl) = t.template.as_deref() else {
                let queued = offer(&self.tunnel_pending_tx, || TunnelPending {
                    port: t.port,
                    key,
                    packet: self.umem.data(&f).to_vec(),
                });
                if queued {
                    st.tunnel_no_header.add(1);
                } else {
                    st.tunnel_pending_dropped.add(1);
                }
                self.umem.free(f);
                continue;
            };
            let id = self.ip_id;
            let seq = t.next_seq();
            let inner_len = f.len() as u64;
            match self.umem.with_buf(&mut f, |b| tpl.encap(b, key, seq, id, MAX_PACKET_LEN)) {
                Ok(()) => {
                    self.ip_id = id.wrapping_add(1);
                    st.tunnel_encap.add(1);
                    if let Some(vs) = self.virt_stats.get(slot_index(&self.slot_of, t.port)) {
                        vs.tx_packets.add(1);
                        vs.tx_bytes.add(inner_len);
                    }
                    match s.pending.get_mut(slot_index(&self.slot_of, tpl.underlay)) {
                        Some(batch) => batch.push(f),
                        None => s.unroutable.push(f),
                    }
                }
                Err(EncapError::TooBig) => {
                    st.tunnel_mtu_dropped.add(1);
                    self.umem.free(f);
                }
            }
        }
    }

    /// Classifies and forwards the frames in `s.batch` (metadata in `s.meta`): keys for the
    /// whole batch, then the EMC and the classifier over the whole batch, then actions packet
    /// by packet.
    fn process(&mut self, s: &mut Scratch) {
        let core = self.id;
        let now_ns = self.epoch.elapsed().as_nanos() as u64;
        let now_ms = now_ns / 1_000_000;
        let Pmd {
            umem,
            emc,
            reader,
            ranking,
            stats,
            slot_of,
            port_table,
            virt_stats,
            upcall_tx,
            packet_in_tx,
            recycle_rx,
            meters,
            normals,
            ..
        } = self;
        let stats: &PmdStats = stats;
        let Scratch {
            batch,
            meta,
            valid,
            keys,
            hashes,
            from_classifier,
            to_cache,
            pending,
            unroutable,
            recirc,
            encap,
            ..
        } = s;
        let mut n = 0;
        for (i, frame) in batch.drain(..).enumerate() {
            let m = meta[i];
            match extract(umem.data(&frame), m.in_port.0, &mut keys[n]) {
                Ok(()) => {
                    let k = &mut keys[n];
                    k.tun_id = m.tun.tun_id;
                    k.tun_src = m.tun.tun_src;
                    k.tun_dst = m.tun.tun_dst;
                    meta[n] = m;
                    valid.push(frame);
                    n += 1;
                }
                Err(reason) => {
                    stats.malformed[reason as usize].add(1);
                    umem.free(frame);
                }
            }
        }
        if n == 0 {
            return;
        }
        // Hash in a second pass: reading a key back as words right after extraction wrote it
        // field by field stalls on store forwarding (17% of a poll thread's time).
        for (h, k) in hashes[..n].iter_mut().zip(&keys[..n]) {
            *h = k.hash();
        }
        let (keys, hashes, meta) = (&keys[..n], &hashes[..n], &meta[..n]);
        let bridge_of = |p: DpPortNo| port_table.get(p.table_index()).map_or(0, |e| e.bridge);
        let mut out = Outputs {
            slot_of,
            port_table,
            pending,
            unroutable,
            virt_stats,
            recirc,
            encap,
            core,
            in_port: None,
            bridge: 0,
            tun: TunnelMeta::default(),
            depth: 0,
            now_ns,
            stats,
            packet_in_tx,
            recycle: recycle_rx,
            meters: meters.as_ref(),
            meter_map: None,
            normals,
            normal_ports: None,
        };
        reader.with(|cls| {
            let mut found: [Option<&Arc<Megaflow>>; BATCH] = [None; BATCH];
            let found = &mut found[..n];
            let emc_hits = match emc.as_ref() {
                Some(e) => e.lookup_batch(keys, hashes, found),
                None => 0,
            };
            stats.emc_hits.add(emc_hits as u64);
            if emc_hits < n {
                for (c, f) in from_classifier.iter_mut().zip(found.iter()) {
                    *c = f.is_none();
                }
                let r = cls.lookup_batch(keys, found, ranking);
                stats.megaflow_hits.add(r.hits as u64);
                stats.subtables_probed.add(r.subtables_probed as u64);
            } else {
                from_classifier[..n].fill(false);
            }
            // NORMAL reads two MAC table slots per packet: load them all first, so that the
            // batch's cache misses overlap rather than stall one packet at a time.
            let mut warm = 0u32;
            for ((mf, key), m) in found.iter().zip(keys.iter()).zip(meta.iter()) {
                if mf.is_some_and(|mf| mf.uses_normal) {
                    if let Some((normal, ports)) = out.normal_of(bridge_of(m.in_port)) {
                        warm ^= normal.warm(ports, key, m.in_port);
                    }
                }
            }
            std::hint::black_box(warm);
            for (i, frame) in valid.drain(..).enumerate() {
                let len = frame.len() as u64;
                let Some(mf) = found[i] else {
                    stats.misses.add(1);
                    let up = Upcall {
                        kind: UpcallKind::Miss,
                        pmd: core,
                        key: keys[i],
                        packet: umem.data(&frame).to_vec(),
                    };
                    umem.free(frame);
                    match upcall_tx.try_send(up) {
                        Ok(()) => stats.upcalls.add(1),
                        Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                            stats.upcall_dropped.add(1)
                        }
                    }
                    continue;
                };
                if from_classifier[i] && emc.as_ref().is_some_and(|e| e.should_insert()) {
                    to_cache.push((i, Arc::clone(mf)));
                }
                let m = meta[i];
                out.in_port = Some(m.in_port);
                out.bridge = bridge_of(m.in_port);
                out.tun = m.tun;
                out.depth = m.depth;
                forward(mf, frame, len, core, now_ms, umem, &mut out, stats);
            }
        });
        // The EMC lends its entries to `found` during the lookup: fill it afterwards.
        if let Some(e) = emc.as_mut() {
            for (i, mf) in to_cache.drain(..) {
                e.insert(&keys[i], hashes[i], mf);
            }
        }
    }

    /// Runs packets the slow path sent back. Returns how many.
    fn run_executes(&mut self, s: &mut Scratch) -> usize {
        if self.exec_rx.is_empty() {
            return 0;
        }
        let now_ns = self.epoch.elapsed().as_nanos() as u64;
        let mut out = Outputs {
            slot_of: &self.slot_of,
            port_table: &self.port_table,
            pending: &mut s.pending,
            unroutable: &mut s.unroutable,
            virt_stats: &self.virt_stats,
            recirc: &mut s.recirc,
            encap: &mut s.encap,
            core: self.id,
            in_port: None,
            bridge: 0,
            tun: TunnelMeta::default(),
            depth: 0,
            now_ns,
            stats: &self.stats,
            packet_in_tx: &self.packet_in_tx,
            recycle: &self.recycle_rx,
            meters: &self.meters,
            meter_map: None,
            normals: &self.normals,
            normal_ports: None,
        };
        let mut n = 0;
        while n < BATCH {
            let Ok(ex) = self.exec_rx.try_recv() else { break };
            n += 1;
            self.stats.executed.add(1);
            let Some(frame) = self.umem.frame_from(&ex.packet) else {
                self.stats.action_dropped.add(1);
                continue;
            };
            out.in_port = ex.in_port;
            out.bridge = ex.bridge;
            let outcome = execute(&ex.actions, frame, &mut self.umem, &mut out);
            count_outcome(&self.stats, outcome);
        }
        n
    }

    /// Transmits every pending batch.
    fn flush(&mut self, s: &mut Scratch) {
        for (slot, frames) in s.pending.iter_mut().enumerate() {
            if frames.is_empty() {
                continue;
            }
            match self.tx_queue_of[slot] {
                Some(qi) => {
                    self.queues[qi].queue.send(&mut self.umem, frames);
                }
                None => {
                    self.stats.tx_no_port.add(frames.len() as u64);
                    self.port_tx_dropped[slot].add(frames.len() as u64);
                    for f in frames.drain(..) {
                        self.umem.free(f);
                    }
                }
            }
        }
        if !s.unroutable.is_empty() {
            self.stats.tx_no_port.add(s.unroutable.len() as u64);
            for f in s.unroutable.drain(..) {
                self.umem.free(f);
            }
        }
    }

    fn shutdown(&mut self, s: &mut Scratch) {
        for frames in s.pending.iter_mut() {
            for f in frames.drain(..) {
                self.umem.free(f);
            }
        }
        for (f, _) in s.recirc.drain(..).chain(s.recirc_work.drain(..)) {
            self.umem.free(f);
        }
        for (f, _, _) in s.encap.drain(..) {
            self.umem.free(f);
        }
        for q in &mut self.queues {
            q.queue.release(&mut self.umem);
        }
        // Queues (sockets) go before the Umem they are bound to.
        self.queues.clear();
    }
}

/// What port `no` is to a poll thread (`None` for a number no port has).
#[inline]
fn role_of(port_table: &[PortEntry], no: DpPortNo) -> PortRole {
    port_table.get(no.table_index()).map_or(PortRole::None, |e| e.role)
}

/// Offers what `make` builds to the bounded queue `tx`; `false` (and nothing built: the
/// queue is checked first, so a flood toward a full queue costs no copy) when it is full.
#[inline]
fn offer<T>(tx: &Sender<T>, make: impl FnOnce() -> T) -> bool {
    !tx.is_full() && tx.try_send(make()).is_ok()
}

/// The slot of port `no` (`usize::MAX` for none: `get` on a slot table then finds nothing).
#[inline]
fn slot_index(slot_of: &[u16], no: DpPortNo) -> usize {
    match slot_of.get(no.table_index()) {
        Some(&s) if s != 0 => s as usize - 1,
        _ => usize::MAX,
    }
}

#[allow(clippy::too_many_arguments)]
#[inline]
fn forward(
    mf: &Megaflow,
    frame: Frame,
    len: u64,
    core: usize,
    now_ms: u64,
    umem: &mut Umem,
    out: &mut Outputs<'_>,
    stats: &PmdStats,
) {
    mf.record(core, 1, len, now_ms);
    let outcome = execute(&mf.actions, frame, umem, out);
    count_outcome(stats, outcome);
}

#[inline]
fn count_outcome(stats: &PmdStats, outcome: super::execute::ExecResult) {
    use super::execute::ExecDrop;
    if outcome.copy_failed > 0 {
        stats.action_dropped.add(outcome.copy_failed as u64);
    }
    match outcome.dropped {
        None => {}
        Some(ExecDrop::NoOutput) => stats.no_output.add(1),
        Some(ExecDrop::Meter) => stats.meter_dropped.add(1),
        Some(_) => stats.action_dropped.add(1),
    }
}
