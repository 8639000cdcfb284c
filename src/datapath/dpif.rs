//! [`Datapath`]: the control thread's handle on the fast path (the role of OVS's dpif).
//!
//! It owns the ports, the shared megaflow table (the writer side) and the poll threads. Queue
//! `q` of every port is served by poll thread `q % n_pmds`, so each thread has its own socket
//! on every port with enough queues, all in the thread's one UMEM: forwarding between those
//! ports never copies. A thread that must transmit on a port it has no queue of (a port with
//! fewer queues than poll threads) drops and counts (`tx_no_port`); `start` warns about it.
//!
//! For OpenFlow it also carries: packets for the controller ([`Datapath::packet_ins`], a
//! bounded queue of its own), packet-outs ([`Datapath::inject`], run by poll thread 0, the
//! one thread that holds a transmit path to every port), meters ([`Datapath::set_meter`]),
//! and port state (`no_recv`, admin up/down, link state and description).

use std::sync::atomic::{fence, AtomicBool, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};

use super::actions::DpAction;
use super::classifier::SubtableRanking;
use super::emc::{EmcConfig, ExactMatchCache};
use super::fdb::{Fdb, FdbWriter};
use super::megaflow::{MegaflowId, MegaflowTable};
use super::meter::{MeterConfig, MeterError, MeterStats, MeterTable};
use super::normal::{Learn, Normal, NormalPorts};
use super::offload::{OffloadConfig, OffloadStats, Offloader, SharedOffloader};
use super::pmd::{Pmd, PmdQueue, PmdStats, PmdStatsSnapshot, PortControl, PortEntry, PortRole};
use super::tunnel::{
    TunnelConfig, TunnelHeader, TunnelMap, TunnelPending, Tunnels, UnderlayPacket, UnderlayPort,
};
use super::upcall::{Execute, PacketIn, Upcall};
use crate::netdev::afxdp::offload::ProgramStats;
use crate::netdev::{self, Counter, DpPortNo, Port, PortStats, QueueStats, Umem, Waker, RX_BATCH};

/// The longest packet a poll thread can hold (a UMEM chunk after its headroom).
pub const MAX_PACKET_LEN: usize = (netdev::CHUNK_SIZE - netdev::FRAME_HEADROOM) as usize;

/// Tunables of the fast path.
#[derive(Clone, Debug)]
pub struct DatapathConfig {
    /// Number of poll threads.
    pub n_pmds: usize,
    /// Exact-match cache entries per poll thread (a power of two); 0 turns the EMC off.
    pub emc_entries: usize,
    /// Insert into the EMC one time in this many (OVS: 100); 1 = always.
    pub emc_insert_inv_prob: u32,
    /// Bound of the upcall queue (misses beyond it are dropped and counted).
    pub upcall_queue: usize,
    /// Bound of each poll thread's execute queue (also carries packet-outs to thread 0).
    pub exec_queue: usize,
    /// Bound of the packet-in queue (`Userspace` copies beyond it are dropped and counted).
    pub packet_in_queue: usize,
    /// Most megaflows at once.
    pub max_megaflows: usize,
    /// Most entries in NORMAL's MAC table (OVS `mac-table-size`, 8192).
    pub mac_table_size: usize,
    /// CPUs to pin poll threads to, in order; empty = the last CPUs, one each (poll thread 0
    /// on the highest-numbered CPU), leaving CPU 0 for the kernel and the control thread.
    pub pmd_cpus: Vec<usize>,
    /// Run hot megaflows in the XDP program of the AF_XDP ports opened with it (`None`: all
    /// in user space).
    pub offload: Option<OffloadConfig>,
}

impl Default for DatapathConfig {
    fn default() -> Self {
        DatapathConfig {
            n_pmds: 1,
            emc_entries: 8192,
            emc_insert_inv_prob: 100,
            upcall_queue: 4096,
            exec_queue: 4096,
            packet_in_queue: 1024,
            max_megaflows: 200_000,
            mac_table_size: 8192,
            pmd_cpus: Vec::new(),
            offload: None,
        }
    }
}

/// Errors from building the datapath.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Netdev(#[from] netdev::Error),
    #[error("allocating a UMEM of {chunks} chunks: {source}")]
    Umem {
        chunks: u32,
        #[source]
        source: std::io::Error,
    },
    #[error("port number {0} is used twice")]
    DuplicatePortNo(DpPortNo),
    #[error("port number {0} is out of range (1..=65535)")]
    BadPortNo(DpPortNo),
    #[error("--cores must be at least 1")]
    NoPmds,
    #[error("no port number {0} in the datapath")]
    NoSuchPort(DpPortNo),
    #[error(transparent)]
    Meter(#[from] MeterError),
    #[error("datapath layout: {0}")]
    Layout(String),
    #[error("creating a poll thread's wakeup eventfd: {0}")]
    Waker(#[source] std::io::Error),
    #[error("starting poll thread {pmd}: {source}")]
    Spawn {
        pmd: usize,
        #[source]
        source: std::io::Error,
    },
}

/// A port of the datapath.
#[derive(Clone)]
pub struct DpPort {
    pub no: DpPortNo,
    pub port: Arc<dyn Port>,
}

/// What OpenFlow's port description needs to know about a port.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PortInfo {
    pub name: String,
    pub hw_addr: [u8; 6],
    pub mtu: u32,
    /// Carrier and operationally up (`OFPPS_LIVE`; otherwise `OFPPS_LINK_DOWN`).
    pub live: bool,
    /// Administratively up (otherwise `OFPPC_PORT_DOWN`).
    pub admin_up: bool,
    /// Current speed; 0 when unknown.
    pub speed_kbps: u32,
    /// `OFPPC_NO_RECV`: everything received is dropped.
    pub no_recv: bool,
}

/// One bridge of the datapath: NORMAL's MAC table and flood set are per bridge.
#[derive(Clone, Debug)]
pub struct DpBridge {
    pub mac_table_size: usize,
}

/// How the datapath's ports form bridges, patch pairs, tunnels and underlays.
#[derive(Clone, Debug, Default)]
pub struct DpLayout {
    /// Index = bridge index.
    pub bridges: Vec<DpBridge>,
    /// Every netdev, patch and tunnel port → its bridge.
    pub port_bridge: Vec<(DpPortNo, u16)>,
    /// (patch port, its peer); list each end that sends (usually both).
    pub patches: Vec<(DpPortNo, DpPortNo)>,
    pub tunnels: Vec<(DpPortNo, TunnelConfig)>,
    /// Netdev ports that belong to no bridge and carry tunnels.
    pub underlays: Vec<UnderlayPort>,
}

/// Checks `layout` against `ports` and builds the port table the poll threads use.
fn port_table(ports: &[DpPort], slot_of: &[u16], layout: &DpLayout) -> Result<Arc<[PortEntry]>, Error> {
    let bad = |m: String| Err(Error::Layout(m));
    if layout.bridges.is_empty() {
        return bad("no bridge".into());
    }
    let port = |no: DpPortNo| match slot_of.get(no.table_index()) {
        Some(&s) if s != 0 => Ok(&ports[s as usize - 1]),
        _ => Err(Error::NoSuchPort(no)),
    };
    let mut table = vec![PortEntry::default(); slot_of.len()];
    for &(no, b) in &layout.port_bridge {
        port(no)?;
        if usize::from(b) >= layout.bridges.len() {
            return bad(format!("port {no} is in bridge {b}, which does not exist"));
        }
        let e = &mut table[no.table_index()];
        if e.role != PortRole::None {
            return bad(format!("port {no} is listed twice"));
        }
        *e = PortEntry { role: PortRole::Netdev, bridge: b };
    }
    for &(no, peer) in &layout.patches {
        if port(no)?.port.n_queues() != 0 {
            return bad(format!("patch port {no} has queues (expected a virtual port)"));
        }
        port(peer)?;
        if table[no.table_index()].role != PortRole::Netdev
            || table[peer.table_index()].role == PortRole::None
        {
            return bad(format!("patch {no} -> {peer}: both ends must be in a bridge, once"));
        }
        table[no.table_index()].role = PortRole::Patch { peer };
    }
    for (i, (no, cfg)) in layout.tunnels.iter().enumerate() {
        if port(*no)?.port.n_queues() != 0 {
            return bad(format!("tunnel port {no} has queues (expected a virtual port)"));
        }
        if table[no.table_index()].role != PortRole::Netdev {
            return bad(format!("tunnel port {no} must be in a bridge, once"));
        }
        if !layout.underlays.iter().any(|u| u.ip == cfg.local_ip) {
            return bad(format!("tunnel port {no}: local IP {} is no underlay's", cfg.local_ip));
        }
        table[no.table_index()].role = PortRole::Tunnel { idx: i as u16 };
    }
    for (i, u) in layout.underlays.iter().enumerate() {
        port(u.port)?;
        let e = &mut table[u.port.table_index()];
        if e.role != PortRole::None {
            return bad(format!("underlay port {} is also in a bridge", u.port));
        }
        *e = PortEntry { role: PortRole::Underlay { idx: i as u16 }, bridge: 0 };
    }
    if let Some(p) = ports.iter().find(|p| table[p.no.table_index()].role == PortRole::None) {
        return bad(format!("port {} ({}) is in no bridge and no underlay", p.no, p.port.name()));
    }
    Ok(table.into())
}

struct PmdHandle {
    thread: Option<JoinHandle<()>>,
    stats: Arc<PmdStats>,
    exec_tx: Sender<Execute>,
    sleeping: Arc<AtomicBool>,
    waker: Arc<Waker>,
    /// Per port slot: drops for lack of a transmit queue on this thread.
    port_tx_dropped: Arc<[Counter]>,
    /// Per port slot: patch and tunnel port counters kept by this thread.
    virt_stats: Arc<[QueueStats]>,
    /// (port, queue) pairs this thread serves.
    queues: Vec<(DpPortNo, u32)>,
}

/// The fast path, seen from the control thread.
pub struct Datapath {
    ports: Vec<DpPort>,
    megaflows: MegaflowTable,
    pmds: Vec<PmdHandle>,
    upcall_rx: Receiver<Upcall>,
    packet_in_rx: Receiver<PacketIn>,
    recycle_tx: Sender<Vec<u8>>,
    meters: MeterTable,
    /// Port number → role and bridge (shared with the poll threads).
    port_table: Arc<[PortEntry]>,
    /// NORMAL per bridge: the MAC table's writer, the state the poll threads share; learning
    /// events of every bridge.
    fdbs: Vec<FdbWriter>,
    normals: Vec<Arc<Normal>>,
    learn_rx: Receiver<Learn>,
    tunnels: Arc<Tunnels>,
    tunnel_pending_rx: Receiver<TunnelPending>,
    underlay_rx: Receiver<UnderlayPacket>,
    /// Per port (same order as `ports`): settings the poll threads read.
    controls: Vec<Arc<PortControl>>,
    stop: Arc<AtomicBool>,
    epoch: Instant,
    baseline: Vec<PmdStatsSnapshot>,
    offload: Option<SharedOffloader>,
}

impl Datapath {
    /// Opens every queue of every port, builds one UMEM per poll thread, starts the threads:
    /// one bridge holding every port.
    pub fn start(cfg: &DatapathConfig, ports: Vec<DpPort>) -> Result<Datapath, Error> {
        let layout = DpLayout {
            bridges: vec![DpBridge { mac_table_size: cfg.mac_table_size }],
            port_bridge: ports.iter().map(|p| (p.no, 0)).collect(),
            ..DpLayout::default()
        };
        Datapath::start_layout(cfg, ports, layout)
    }

    /// Several bridges; `ports` holds every port with a `DpPortNo`, patch and tunnel ports as
    /// [`VirtualPort`](crate::netdev::virt::VirtualPort)s (no queues). `layout` says which
    /// bridge each port is in, the patch pairs, the tunnels and the underlay ports.
    pub fn start_layout(
        cfg: &DatapathConfig,
        ports: Vec<DpPort>,
        layout: DpLayout,
    ) -> Result<Datapath, Error> {
        if cfg.n_pmds == 0 {
            return Err(Error::NoPmds);
        }
        let mut max_no = 0u32;
        for (i, p) in ports.iter().enumerate() {
            if p.no != DpPortNo::LOCAL && (p.no.0 == 0 || p.no.0 > u16::MAX as u32) {
                return Err(Error::BadPortNo(p.no));
            }
            if ports[..i].iter().any(|q| q.no == p.no) {
                return Err(Error::DuplicatePortNo(p.no));
            }
            max_no = max_no.max(p.no.table_index() as u32);
        }
        let mut slot_of = vec![0u16; max_no as usize + 1];
        for (i, p) in ports.iter().enumerate() {
            slot_of[p.no.table_index()] = i as u16 + 1;
        }
        let port_table = port_table(&ports, &slot_of, &layout)?;
        let megaflows = MegaflowTable::new(cfg.n_pmds, cfg.max_megaflows);
        let (upcall_tx, upcall_rx) = bounded(cfg.upcall_queue.max(1));
        let (packet_in_tx, packet_in_rx) = bounded(cfg.packet_in_queue.max(1));
        let (recycle_tx, recycle_rx) = bounded(cfg.packet_in_queue.max(1));
        let (tunnel_pending_tx, tunnel_pending_rx) = bounded(cfg.upcall_queue.max(1));
        let (underlay_tx, underlay_rx) = bounded(cfg.upcall_queue.max(1));
        let meters = MeterTable::new(cfg.n_pmds);
        let (learn_tx, learn_rx) = bounded(cfg.upcall_queue.max(1));
        let mut fdbs = Vec::with_capacity(layout.bridges.len());
        let mut normals = Vec::with_capacity(layout.bridges.len());
        for (b, br) in layout.bridges.iter().enumerate() {
            let (fdb_shared, fdb) = Fdb::new(br.mac_table_size);
            let normal = Normal::for_bridge(fdb_shared, b as u16, learn_tx.clone());
            let flood = layout.port_bridge.iter().filter(|(_, pb)| usize::from(*pb) == b).map(|(p, _)| *p);
            normal.set_ports(NormalPorts { flood: flood.collect(), vlans: Vec::new() });
            fdbs.push(fdb);
            normals.push(normal);
        }
        let tunnels = Arc::new(Tunnels::new(TunnelMap::new(layout.tunnels, layout.underlays)));
        let controls: Vec<Arc<PortControl>> = ports.iter().map(|_| Arc::default()).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let epoch = Instant::now();
        let mut built = Vec::new();
        for id in 0..cfg.n_pmds {
            let mut assigned = Vec::new();
            for (slot, p) in ports.iter().enumerate() {
                for qid in (0..p.port.n_queues()).filter(|q| *q as usize % cfg.n_pmds == id) {
                    assigned.push((slot, qid));
                }
            }
            // Every queue's rings can hold frames at once, plus fan-out copies made by actions.
            let chunks = assigned
                .iter()
                .map(|&(slot, _)| ports[slot].port.chunks_per_queue())
                .fold(RX_BATCH as u32 * 4, u32::saturating_add);
            let mut umem = Umem::new(chunks).map_err(|source| Error::Umem { chunks, source })?;
            let mut queues = Vec::with_capacity(assigned.len());
            let mut tx_queue_of = vec![None; ports.len()];
            for (slot, qid) in assigned {
                let queue = ports[slot].port.open_queue(qid, &mut umem)?;
                tx_queue_of[slot].get_or_insert(queues.len());
                queues.push(PmdQueue {
                    port_no: ports[slot].no,
                    qid,
                    queue,
                    control: controls[slot].clone(),
                });
            }
            for (slot, tx) in tx_queue_of.iter().enumerate() {
                if tx.is_none() && !queues.is_empty() && ports[slot].port.n_queues() > 0 {
                    tracing::warn!(
                        pmd = id,
                        port = ports[slot].port.name(),
                        "port has fewer queues than poll threads: packets this thread sends to it are dropped (use --cores <= queues)"
                    );
                }
            }
            let (exec_tx, exec_rx) = bounded(cfg.exec_queue.max(1));
            let stats = Arc::new(PmdStats::default());
            let emc = (cfg.emc_entries > 0).then(|| {
                ExactMatchCache::new(EmcConfig {
                    entries: cfg.emc_entries,
                    insert_inv_prob: cfg.emc_insert_inv_prob,
                })
            });
            let served = queues.iter().map(|q| (q.port_no, q.qid)).collect::<Vec<_>>();
            let port_tx_dropped: Arc<[Counter]> = ports.iter().map(|_| Counter::default()).collect();
            let virt_stats: Arc<[QueueStats]> = ports.iter().map(|_| QueueStats::default()).collect();
            let sleeping = Arc::new(AtomicBool::new(false));
            let waker = Arc::new(Waker::new().map_err(Error::Waker)?);
            let pmd = Pmd {
                id,
                umem,
                queues,
                tx_queue_of,
                slot_of: slot_of.clone(),
                port_table: port_table.clone(),
                emc,
                reader: megaflows.reader(),
                ranking: SubtableRanking::default(),
                stats: stats.clone(),
                port_tx_dropped: port_tx_dropped.clone(),
                virt_stats: virt_stats.clone(),
                upcall_tx: upcall_tx.clone(),
                packet_in_tx: packet_in_tx.clone(),
                recycle_rx: recycle_rx.clone(),
                meters: meters.reader(),
                normals: normals.clone(),
                tunnels: tunnels.clone(),
                tunnel_pending_tx: tunnel_pending_tx.clone(),
                underlay_tx: underlay_tx.clone(),
                // Threads start their IDs apart, so two threads rarely send the same ID.
                ip_id: (id as u16).wrapping_mul(0x4000),
                exec_rx,
                sleeping: sleeping.clone(),
                waker: waker.clone(),
                stop: stop.clone(),
                epoch,
            };
            built.push((
                pmd,
                PmdHandle {
                    thread: None,
                    stats,
                    exec_tx,
                    sleeping,
                    waker,
                    port_tx_dropped,
                    virt_stats,
                    queues: served,
                },
            ));
        }
        let mut pmds = Vec::with_capacity(built.len());
        let n_cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        for (pmd, mut handle) in built {
            let id = pmd.id;
            let cpu = cfg.pmd_cpus.get(id).copied().unwrap_or(n_cpus - 1 - id % n_cpus);
            let thread = std::thread::Builder::new()
                .name(format!("pmd{id}"))
                .spawn(move || {
                    if !core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) {
                        tracing::warn!(pmd = id, cpu, "could not pin poll thread to its CPU");
                    }
                    pmd.run()
                })
                .map_err(|source| Error::Spawn { pmd: id, source })?;
            handle.thread = Some(thread);
            pmds.push(handle);
        }
        let baseline =
            pmds.iter().enumerate().map(|(i, _)| PmdStatsSnapshot { pmd: i, ..Default::default() }).collect();
        let mut megaflows = megaflows;
        let offload = cfg.offload.as_ref().map(|oc| {
            let off_ports: Vec<_> = ports
                .iter()
                .filter_map(|p| {
                    let role = port_table[p.no.table_index()].role;
                    let bridge = (role == PortRole::Netdev).then_some(port_table[p.no.table_index()].bridge);
                    p.port.offload_ifindex().map(|i| (p.no, i, bridge))
                })
                .collect();
            let off = Offloader::new(oc, &off_ports, epoch);
            for (b, w) in fdbs.iter_mut().enumerate() {
                w.set_mirror(off.fdb_mirror(b as u16));
            }
            let off: SharedOffloader = Arc::new(Mutex::new(off));
            let hook = Arc::clone(&off);
            megaflows.set_remove_hook(Box::new(move |id| lock_offloader(&hook).forget(id)));
            off
        });
        Ok(Datapath {
            ports,
            port_table,
            megaflows,
            pmds,
            upcall_rx,
            packet_in_rx,
            recycle_tx,
            meters,
            fdbs,
            normals,
            learn_rx,
            tunnels,
            tunnel_pending_rx,
            underlay_rx,
            controls,
            stop,
            epoch,
            baseline,
            offload,
        })
    }

    /// One revalidation interval of the XDP offload (see [`super::offload`]): port checks,
    /// kernel counters folded into megaflows, busy megaflows moved into the kernel.
    pub fn offload_tick(&mut self) {
        if let Some(o) = &self.offload {
            lock_offloader(o).tick(&self.megaflows);
        }
    }

    /// Adds what the kernel forwarded since the last call to the megaflows' counters (before
    /// they are read for OpenFlow statistics).
    pub fn offload_fold(&self) {
        if let Some(o) = &self.offload {
            lock_offloader(o).fold();
        }
    }

    /// Whether megaflow `id` runs in the kernel now (`None`: offload is off).
    pub fn is_offloaded(&self, id: MegaflowId) -> Option<bool> {
        self.offload.as_ref().map(|o| lock_offloader(o).is_offloaded(id))
    }

    /// The offload logic's and the XDP program's counters (`None`: offload is off).
    pub fn offload_stats(&self) -> Option<(OffloadStats, ProgramStats)> {
        self.offload.as_ref().map(|o| {
            let o = lock_offloader(o);
            (o.stats(), o.program_stats())
        })
    }

    /// Bridge `bridge`'s MAC table (NORMAL's), to learn into, age and show (the control
    /// thread is its one writer).
    ///
    /// # Panics
    /// If `bridge` is not a bridge index of the layout (a caller bug).
    pub fn fdb(&mut self, bridge: u16) -> &mut FdbWriter {
        &mut self.fdbs[usize::from(bridge)]
    }

    /// Bridge `bridge`'s MAC table, to read.
    ///
    /// # Panics
    /// If `bridge` is not a bridge index of the layout (a caller bug).
    pub fn fdb_ref(&self, bridge: u16) -> &FdbWriter {
        &self.fdbs[usize::from(bridge)]
    }

    /// Number of bridges.
    pub fn n_bridges(&self) -> usize {
        self.fdbs.len()
    }

    /// Source addresses the poll threads saw and a bridge's MAC table lacks (learn them with
    /// [`fdb`](Self::fdb)`(ev.bridge)`).
    pub fn learn_events(&self) -> &Receiver<Learn> {
        &self.learn_rx
    }

    /// Publishes NORMAL's view of bridge `bridge`'s ports: which it floods to (all of the
    /// bridge's ports at start) and their VLAN configuration (trunks of every VLAN at start).
    /// An unknown bridge is ignored.
    pub fn set_normal_ports(&self, bridge: u16, ports: NormalPorts) {
        if let Some(o) = &self.offload {
            lock_offloader(o).set_vlans(bridge, &ports.vlans);
        }
        if let Some(n) = self.normals.get(usize::from(bridge)) {
            n.set_ports(ports);
        }
    }

    /// Learning events the poll threads dropped for a full queue.
    pub fn learn_dropped(&self) -> u64 {
        self.normals.iter().map(|n| n.learn_dropped()).sum()
    }

    /// The bridge port `no` is in (`None` for underlay and unknown ports).
    pub fn bridge_of(&self, no: DpPortNo) -> Option<u16> {
        let e = self.port_table.get(no.table_index())?;
        (!matches!(e.role, PortRole::None | PortRole::Underlay { .. })).then_some(e.bridge)
    }

    /// Publishes tunnel port `port`'s outer header (`None`: its packets go to
    /// [`tunnel_pending`](Self::tunnel_pending) until it has one). Poll threads use it from
    /// their next batch.
    pub fn set_tunnel_header(&self, port: DpPortNo, header: Option<TunnelHeader>) -> Result<(), Error> {
        if self.tunnels.set_header(port, header) {
            Ok(())
        } else {
            Err(Error::NoSuchPort(port))
        }
    }

    /// Packets for tunnels without a header yet (bounded: beyond it they are dropped and
    /// counted in `tunnel_pending_dropped`).
    pub fn tunnel_pending(&self) -> &Receiver<TunnelPending> {
        &self.tunnel_pending_rx
    }

    /// ARP and ICMP echo requests the underlay ports received (bounded: beyond it they are
    /// dropped and counted in `underlay_dropped`).
    pub fn underlay_packets(&self) -> &Receiver<UnderlayPacket> {
        &self.underlay_rx
    }
    /// The ports, in the order given.
    pub fn ports(&self) -> &[DpPort] {
        &self.ports
    }
    /// Number of poll threads.
    pub fn n_pmds(&self) -> usize {
        self.pmds.len()
    }
    /// The (port, queue) pairs poll thread `pmd` serves.
    pub fn pmd_queues(&self, pmd: usize) -> &[(DpPortNo, u32)] {
        &self.pmds[pmd].queues
    }
    /// Milliseconds since the datapath started: the clock of megaflow `used` times.
    pub fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }
    /// The megaflow table (writer side). Changes take effect at `publish()`.
    pub fn megaflows(&mut self) -> &mut MegaflowTable {
        &mut self.megaflows
    }
    /// The megaflow table, read-only.
    pub fn megaflows_ref(&self) -> &MegaflowTable {
        &self.megaflows
    }
    /// Misses from every poll thread.
    pub fn upcalls(&self) -> &Receiver<Upcall> {
        &self.upcall_rx
    }
    /// Asks poll thread `pmd` to run `actions` on `packet`. `false` when its queue is full.
    pub fn execute(&self, pmd: usize, in_port: DpPortNo, packet: Vec<u8>, actions: Arc<[DpAction]>) -> bool {
        let bridge = self.bridge_of(in_port).unwrap_or(0);
        self.send_execute(pmd, Execute { in_port: Some(in_port), bridge, packet, actions })
    }

    /// Runs `actions` on a packet from the controller (OpenFlow packet-out). `in_port` is the
    /// packet-out's in_port when it names a datapath port, `None` for `OFPP_CONTROLLER` /
    /// `OFPP_ANY` (no ingress port: no output is skipped as "the ingress port"; the datapath
    /// never skips one anyway, translation does). Poll thread 0 runs it: queue 0 of every
    /// port is served by thread 0, so it is the one thread with a transmit path to every
    /// port. `false` when the packet is not sent: its execute queue is full, or the packet is
    /// longer than [`MAX_PACKET_LEN`] (it fits no frame) or empty.
    pub fn inject(&self, in_port: Option<DpPortNo>, packet: Vec<u8>, actions: Arc<[DpAction]>) -> bool {
        self.inject_bridge(0, in_port, packet, actions)
    }

    /// [`inject`](Self::inject) into bridge `bridge` (NORMAL uses its MAC table).
    pub fn inject_bridge(
        &self,
        bridge: u16,
        in_port: Option<DpPortNo>,
        packet: Vec<u8>,
        actions: Arc<[DpAction]>,
    ) -> bool {
        if packet.is_empty() || packet.len() > MAX_PACKET_LEN {
            return false;
        }
        self.send_execute(0, Execute { in_port, bridge, packet, actions })
    }

    fn send_execute(&self, pmd: usize, ex: Execute) -> bool {
        let h = &self.pmds[pmd.min(self.pmds.len() - 1)];
        match h.exec_tx.try_send(ex) {
            Ok(()) => {
                // Pairs with the poll thread's flag-then-check (see `Pmd::sleep`): a sleeping
                // thread would otherwise run this only at its next timeout (5 ms).
                fence(SeqCst);
                if h.sleeping.load(SeqCst) {
                    h.waker.wake();
                }
                true
            }
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => false,
        }
    }

    /// Packets for the controller (`DpAction::Userspace`), from every poll thread.
    pub fn packet_ins(&self) -> &Receiver<PacketIn> {
        &self.packet_in_rx
    }

    /// Hands a packet-in buffer back for poll threads to reuse (optional; dropped if the
    /// recycling queue is full).
    pub fn recycle_packet_in(&self, buf: Vec<u8>) {
        let _ = self.recycle_tx.try_send(buf);
    }

    /// Adds meter `id` or replaces its band (keeping its bucket and counters). Poll threads
    /// see a new meter from their next batch.
    pub fn set_meter(&mut self, id: u32, cfg: MeterConfig) -> Result<(), Error> {
        Ok(self.meters.set(id, cfg)?)
    }
    /// Removes meter `id`; `false` if there was none. Its flows' packets pass from then on.
    pub fn remove_meter(&mut self, id: u32) -> bool {
        self.meters.remove(id)
    }
    /// Counters of meter `id` since it was added.
    pub fn meter_stats(&self, id: u32) -> Option<MeterStats> {
        self.meters.stats(id)
    }
    /// The band of meter `id`.
    pub fn meter_config(&self, id: u32) -> Option<MeterConfig> {
        self.meters.config(id)
    }
    /// Every meter id, ascending.
    pub fn meter_ids(&self) -> Vec<u32> {
        self.meters.ids()
    }

    fn slot(&self, no: DpPortNo) -> Result<usize, Error> {
        self.ports.iter().position(|p| p.no == no).ok_or(Error::NoSuchPort(no))
    }
    /// Sets or clears `no_recv` on port `no`: everything it receives is dropped before lookup
    /// and counted in its `rx_dropped`. Poll threads see it from their next batch.
    pub fn set_port_no_recv(&self, no: DpPortNo, on: bool) -> Result<(), Error> {
        let slot = self.slot(no)?;
        self.controls[slot].no_recv.store(on, Relaxed);
        if let Some(o) = &self.offload {
            lock_offloader(o).set_port_rx(no, !on);
        }
        Ok(())
    }
    /// Brings port `no`'s interface up or down (OpenFlow `OFPPC_PORT_DOWN`).
    pub fn set_port_admin_up(&self, no: DpPortNo, up: bool) -> Result<(), Error> {
        let slot = self.slot(no)?;
        Ok(self.ports[slot].port.set_admin_up(up)?)
    }
    /// Whether port `no`'s link is up (false for an unknown port). Reads sysfs: control thread.
    pub fn port_live(&self, no: DpPortNo) -> bool {
        self.slot(no).is_ok_and(|s| self.ports[s].port.is_live())
    }
    /// Name, address, MTU, link and admin state, speed and `no_recv` of port `no`.
    pub fn port_info(&self, no: DpPortNo) -> Option<PortInfo> {
        let slot = self.slot(no).ok()?;
        let p = &self.ports[slot].port;
        let link = p.link();
        Some(PortInfo {
            name: p.name().to_string(),
            hw_addr: p.mac(),
            mtu: link.mtu,
            live: link.live,
            admin_up: link.admin_up,
            speed_kbps: link.speed_kbps,
            no_recv: self.controls[slot].no_recv.load(Relaxed),
        })
    }
    /// Counters of every poll thread since the last `clear_pmd_stats`.
    pub fn pmd_stats(&self) -> Vec<PmdStatsSnapshot> {
        self.pmds.iter().enumerate().map(|(i, p)| p.stats.snapshot(i).since(&self.baseline[i])).collect()
    }
    /// Starts the poll-thread counters from zero (a baseline; the counters keep running).
    pub fn clear_pmd_stats(&mut self) {
        self.baseline = self.pmds.iter().enumerate().map(|(i, p)| p.stats.snapshot(i)).collect();
    }
    /// Counters of every port. `tx_dropped` includes frames a poll thread dropped because it
    /// holds no transmit queue on the port (see the module docs).
    /// Patch and tunnel ports count what crossed them (inner packets for tunnels).
    pub fn port_stats(&self) -> Vec<(DpPortNo, String, &'static str, String, PortStats)> {
        self.ports
            .iter()
            .enumerate()
            .map(|(slot, p)| {
                let mut st = p.port.stats();
                st.tx_dropped += self.pmds.iter().map(|h| h.port_tx_dropped[slot].get()).sum::<u64>();
                for h in &self.pmds {
                    st.accumulate(&h.virt_stats[slot]);
                }
                if let Some(o) = &self.offload {
                    let k = lock_offloader(o).port_stats(p.no);
                    st.rx_packets += k.rx_packets;
                    st.rx_bytes += k.rx_bytes;
                    st.tx_packets += k.tx_packets;
                    st.tx_bytes += k.tx_bytes;
                }
                (p.no, p.port.name().to_string(), p.port.kind(), p.port.describe(), st)
            })
            .collect()
    }
    /// Stops the poll threads and waits for them (they hand their frames back first).
    pub fn shutdown(&mut self) {
        self.stop.store(true, Relaxed);
        for p in &mut self.pmds {
            if let Some(t) = p.thread.take() {
                let _ = t.join();
            }
        }
    }
}

fn lock_offloader(o: &SharedOffloader) -> std::sync::MutexGuard<'_, Offloader> {
    o.lock().unwrap_or_else(|e| e.into_inner())
}

impl Drop for Datapath {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod layout_tests;

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::datapath::flow::{FlowKey, FlowMask};
    use crate::datapath::meter::MeterUnit;
    use crate::netdev::mem::MemPort;
    use crate::packet::build::{udp4, Udp4Spec};

    /// Polls `done` for up to 5 s.
    pub(super) fn wait(mut done: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if done() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        done()
    }

    /// Ports 1 and 2 (in-memory, one queue each, capturing).
    fn rig(cfg: DatapathConfig) -> (Datapath, MemPort, MemPort) {
        rig_queues(cfg, 1, 1)
    }

    /// Ports 1 and 2 (in-memory, capturing) with `qa` and `qb` queues.
    fn rig_queues(cfg: DatapathConfig, qa: u32, qb: u32) -> (Datapath, MemPort, MemPort) {
        let (a, b) = (MemPort::new("a", qa), MemPort::new("b", qb));
        a.capture(true);
        b.capture(true);
        let ports = vec![
            DpPort { no: DpPortNo(1), port: Arc::new(a.clone()) as Arc<dyn Port> },
            DpPort { no: DpPortNo(2), port: Arc::new(b.clone()) as Arc<dyn Port> },
        ];
        (Datapath::start(&cfg, ports).unwrap(), a, b)
    }

    /// Every packet from `in_port` runs `actions`.
    fn flow(dp: &mut Datapath, in_port: u32, actions: &[DpAction]) {
        let mut mask = FlowMask::catchall();
        mask.0.in_port = !0;
        dp.megaflows().insert(FlowKey { in_port, ..Default::default() }, mask, actions, 0).unwrap();
        dp.megaflows().publish();
    }

    fn pkt(i: u8) -> Vec<u8> {
        udp4(&Udp4Spec { sport: 1000 + u16::from(i), payload_len: 8, ..Default::default() })
    }

    fn stat(dp: &Datapath, f: impl Fn(&PmdStatsSnapshot) -> u64) -> u64 {
        dp.pmd_stats().iter().map(f).sum()
    }

    #[test]
    fn userspace_copies_reach_packet_ins_with_their_port() {
        let (mut dp, a, b) = rig(DatapathConfig::default());
        let acts = [DpAction::SetEthDst([7; 6]), DpAction::Userspace(5), DpAction::Output(DpPortNo(2))];
        flow(&mut dp, 1, &acts);
        for i in 0..3 {
            assert!(a.inject(pkt(i)));
        }
        let mut got = Vec::new();
        while got.len() < 3 {
            got.push(dp.packet_ins().recv_timeout(Duration::from_secs(5)).expect("a packet-in"));
        }
        for (i, p) in got.iter().enumerate() {
            assert_eq!((p.id, p.in_port, p.pmd), (5, Some(DpPortNo(1)), 0));
            assert_eq!(p.packet[..6], [7; 6]);
            assert_eq!(p.packet[6..], pkt(i as u8)[6..]);
        }
        assert!(wait(|| b.stats().tx_packets == 3));
        assert_eq!(stat(&dp, |s| s.userspace), 3);
        // A recycled buffer comes back as a later packet-in's, with the new bytes.
        let buf = got.pop().unwrap().packet;
        let ptr = buf.as_ptr();
        dp.recycle_packet_in(buf);
        assert!(a.inject(pkt(9)));
        let p = dp.packet_ins().recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!((p.packet.as_ptr(), p.packet[6..].to_vec()), (ptr, pkt(9)[6..].to_vec()));
        assert!(dp.upcalls().is_empty());
    }

    #[test]
    fn full_packet_in_queue_drops_and_counts_but_misses_still_go_up() {
        let (mut dp, a, b) = rig(DatapathConfig { packet_in_queue: 2, ..DatapathConfig::default() });
        flow(&mut dp, 1, &[DpAction::Userspace(1)]);
        for i in 0..10 {
            assert!(a.inject(pkt(i)));
        }
        assert!(wait(|| stat(&dp, |s| s.userspace + s.userspace_dropped) == 10));
        assert_eq!((stat(&dp, |s| s.userspace), stat(&dp, |s| s.userspace_dropped)), (2, 8));
        assert_eq!(dp.packet_ins().len(), 2);
        // Port 2 has no flow: its packet is a miss, and the miss queue is not the full one.
        assert!(b.inject(pkt(1)));
        let up = dp.upcalls().recv_timeout(Duration::from_secs(5)).expect("the miss went up");
        assert_eq!(up.key.in_port, 2);
    }

    #[test]
    fn meter_enforced_in_the_fast_path() {
        let (mut dp, a, b) = rig(DatapathConfig::default());
        // 1 packet/s with a bucket of 5: a quick burst of 40 lets 5 through (plus one per
        // second the test may take: a bound, not a timing assertion).
        dp.set_meter(1, MeterConfig { rate: 1, burst: 5, unit: MeterUnit::Pktps }).unwrap();
        flow(&mut dp, 1, &[DpAction::Meter(1), DpAction::Output(DpPortNo(2))]);
        let t0 = Instant::now();
        for i in 0..40 {
            assert!(a.inject(pkt(i)));
        }
        assert!(wait(|| stat(&dp, |s| s.rx_packets) == 40
            && stat(&dp, |s| s.meter_dropped) + b.stats().tx_packets == 40));
        let passed = b.stats().tx_packets;
        let slack = t0.elapsed().as_secs() + 1;
        assert!((5..=5 + slack).contains(&passed), "{passed}");
        let st = dp.meter_stats(1).unwrap();
        assert_eq!((st.packets_in, st.band_drops_packets), (40, 40 - passed));
        assert_eq!(st.bytes_in, 40 * pkt(0).len() as u64);
        assert_eq!(stat(&dp, |s| s.meter_dropped), 40 - passed);
        assert_eq!(dp.meter_ids(), vec![1]);
        assert!(dp.set_meter(0, MeterConfig { rate: 1, burst: 0, unit: MeterUnit::Kbps }).is_err());
        // Without its meter the flow passes everything.
        assert!(dp.remove_meter(1));
        assert_eq!(dp.meter_stats(1), None);
        for i in 0..10 {
            assert!(a.inject(pkt(i)));
        }
        assert!(wait(|| b.stats().tx_packets == passed + 10));
    }

    #[test]
    fn inject_without_ingress_port_reaches_every_port() {
        let cfg = DatapathConfig { n_pmds: 2, pmd_cpus: vec![0, 0], ..DatapathConfig::default() };
        let (dp, a, b) = rig(cfg);
        let acts: Arc<[DpAction]> =
            vec![DpAction::Output(DpPortNo(1)), DpAction::Userspace(4), DpAction::Output(DpPortNo(2))].into();
        assert!(dp.inject(None, pkt(1), acts.clone()));
        assert!(wait(|| a.stats().tx_packets == 1 && b.stats().tx_packets == 1));
        assert_eq!(a.take_sent(), vec![pkt(1)]);
        assert_eq!(b.take_sent(), vec![pkt(1)]);
        let p = dp.packet_ins().recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!((p.id, p.in_port, p.pmd), (4, None, 0));
        // A packet-out naming an ingress port still goes out of that port.
        assert!(dp.inject(Some(DpPortNo(1)), pkt(2), acts));
        assert!(wait(|| a.stats().tx_packets == 2));
        assert_eq!(dp.packet_ins().recv_timeout(Duration::from_secs(5)).unwrap().in_port, Some(DpPortNo(1)));
        assert_eq!(stat(&dp, |s| s.tx_no_port), 0);
        assert_eq!(dp.pmd_stats()[0].executed, 2);
        // What fits no frame is refused at once.
        assert!(!dp.inject(None, vec![0; MAX_PACKET_LEN + 1], vec![DpAction::Output(DpPortNo(1))].into()));
        assert!(!dp.inject(None, Vec::new(), vec![DpAction::Output(DpPortNo(1))].into()));
        assert!(dp.inject(None, vec![0; MAX_PACKET_LEN], vec![DpAction::Output(DpPortNo(1))].into()));
        assert!(wait(|| a.stats().tx_packets == 3));
    }

    #[test]
    fn no_recv_drops_before_lookup_and_counts_rx_dropped() {
        let (mut dp, a, b) = rig(DatapathConfig::default());
        flow(&mut dp, 1, &[DpAction::Output(DpPortNo(2))]);
        dp.set_port_no_recv(DpPortNo(1), true).unwrap();
        assert!(dp.port_info(DpPortNo(1)).unwrap().no_recv);
        for i in 0..5 {
            assert!(a.inject(pkt(i)));
        }
        assert!(wait(|| stat(&dp, |s| s.no_recv_dropped) == 5));
        let (_, _, _, _, st) = dp.port_stats().into_iter().find(|p| p.0 == DpPortNo(1)).unwrap();
        assert_eq!((st.rx_packets, st.rx_dropped), (5, 5));
        assert_eq!(stat(&dp, |s| s.megaflow_hits + s.emc_hits + s.misses), 0);
        dp.set_port_no_recv(DpPortNo(1), false).unwrap();
        assert!(a.inject(pkt(1)));
        assert!(wait(|| b.stats().tx_packets == 1));
        assert!(!dp.port_info(DpPortNo(1)).unwrap().no_recv);
        assert!(matches!(dp.set_port_no_recv(DpPortNo(9), true), Err(Error::NoSuchPort(DpPortNo(9)))));
    }

    #[test]
    fn port_info_and_admin_state() {
        let (dp, a, _b) = rig(DatapathConfig::default());
        let info = dp.port_info(DpPortNo(1)).unwrap();
        assert_eq!(
            info,
            PortInfo {
                name: "a".into(),
                hw_addr: a.mac(),
                mtu: 1500,
                live: true,
                admin_up: true,
                speed_kbps: 0,
                no_recv: false
            }
        );
        assert!(dp.port_live(DpPortNo(1)));
        dp.set_port_admin_up(DpPortNo(1), false).unwrap();
        assert!(!dp.port_live(DpPortNo(1)));
        assert!(!dp.port_info(DpPortNo(1)).unwrap().admin_up);
        a.set_carrier(false);
        dp.set_port_admin_up(DpPortNo(1), true).unwrap();
        let info = dp.port_info(DpPortNo(1)).unwrap();
        assert!(info.admin_up && !info.live);
        assert!(!dp.port_live(DpPortNo(7)));
        assert!(dp.port_info(DpPortNo(7)).is_none());
        assert!(dp.set_port_admin_up(DpPortNo(7), true).is_err());
    }

    /// A poll thread with no transmit queue on a port drops what it must send there, and the
    /// port's `tx_dropped` shows it.
    #[test]
    fn tx_without_a_queue_counts_in_the_ports_tx_dropped() {
        let cfg = DatapathConfig { n_pmds: 2, pmd_cpus: vec![0, 0], ..DatapathConfig::default() };
        let (mut dp, a, b) = rig_queues(cfg, 2, 1);
        assert_eq!(dp.pmd_queues(1), &[(DpPortNo(1), 1)]);
        flow(&mut dp, 1, &[DpAction::Output(DpPortNo(2))]);
        for i in 0..4 {
            assert!(a.inject_to(1, pkt(i))); // served by poll thread 1: no queue of port 2
        }
        assert!(a.inject_to(0, pkt(9))); // poll thread 0: forwarded
        assert!(wait(|| b.stats().tx_packets == 1 && stat(&dp, |s| s.tx_no_port) == 4));
        let st = |no: u32| dp.port_stats().into_iter().find(|p| p.0 == DpPortNo(no)).unwrap().4;
        assert_eq!((st(2).tx_packets, st(2).tx_dropped), (1, 4));
        assert_eq!(st(1).tx_dropped, 0);
    }

    /// NORMAL over two poll threads: an address learned from a packet one thread forwarded is
    /// found by the other (no lock on the lookup); VLAN tags are pushed and popped per port.
    #[test]
    fn normal_learning_is_shared_by_poll_threads_and_tags_per_port() {
        use crate::datapath::normal::{NormalPorts, PortVlan};
        let cfg = DatapathConfig { n_pmds: 2, pmd_cpus: vec![0, 0], ..DatapathConfig::default() };
        let (mut dp, a, b) = rig_queues(cfg, 2, 2);
        assert_eq!(dp.pmd_queues(1), &[(DpPortNo(1), 1), (DpPortNo(2), 1)]);
        let access10 = PortVlan::parse_options(["tag=10"]).unwrap();
        dp.set_normal_ports(
            0,
            NormalPorts {
                flood: vec![DpPortNo(1), DpPortNo(2)],
                vlans: vec![PortVlan::trunk_all(), access10, PortVlan::trunk_all()],
            },
        );
        dp.megaflows().insert(FlowKey::default(), FlowMask::catchall(), &[DpAction::Normal], 0).unwrap();
        dp.megaflows().publish();
        let (m1, m2) = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        let frame = |dst: [u8; 6], src: [u8; 6], tag: Option<u16>| {
            let mut f = pkt(0);
            f[..6].copy_from_slice(&dst);
            f[6..12].copy_from_slice(&src);
            if let Some(t) = tag {
                f.splice(12..12, [0x81, 0x00, (t >> 8) as u8, t as u8]);
            }
            f
        };
        // Host 1 on the access port, through poll thread 0: flooded to the trunk, tagged 10.
        assert!(a.inject_to(0, frame([0xff; 6], m1, None)));
        assert!(wait(|| b.stats().tx_packets == 1));
        assert_eq!(b.take_sent(), vec![frame([0xff; 6], m1, Some(10))]);
        let ev = dp.learn_events().recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!((ev.mac, ev.vlan, ev.port), (m1, 10, DpPortNo(1)));
        dp.fdb(0).learn(ev.mac, ev.vlan, ev.port, 0).unwrap();
        // Host 2 answers on the trunk in VLAN 10, through poll thread 1: straight to port 1,
        // untagged.
        assert!(b.inject_to(1, frame(m1, m2, Some(10))));
        assert!(wait(|| a.stats().tx_packets == 1));
        assert_eq!(a.take_sent(), vec![frame(m1, m2, None)]);
        assert_eq!(dp.pmd_stats()[1].rx_packets, 1);
        // The same address in VLAN 20 is unknown, and port 1 does not carry VLAN 20; a tagged
        // frame on the access port is dropped and counted.
        assert!(b.inject_to(1, frame(m1, m2, Some(20))));
        assert!(a.inject_to(0, frame(m2, m1, Some(10))));
        assert!(wait(|| stat(&dp, |s| s.normal_vlan_dropped) == 1 && stat(&dp, |s| s.rx_packets) == 4));
        assert!(wait(|| stat(&dp, |s| s.no_output) == 2));
        assert_eq!((a.stats().tx_packets, b.stats().tx_packets), (1, 1));
    }

    /// AF_XDP ports between two namespaces: link state and speed are the kernel's, and a port
    /// taken down and up again (port-mod `OFPPC_PORT_DOWN`) forwards again; `no_recv` drops
    /// the real port's traffic and counts it.
    #[test]
    fn afxdp_ports_down_up_and_no_recv() {
        use crate::netdev::afxdp::{AfXdpConfig, AfXdpPort};
        use crate::netns::Host;
        if !crate::netns::is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let t = std::process::id() % 10_000;
        let h1 = Host::create(&format!("xsdu1-{t}"), &format!("xsdu1-{t}"), "10.217.0.1/24", 1).unwrap();
        let h2 = Host::create(&format!("xsdu2-{t}"), &format!("xsdu2-{t}"), "10.217.0.2/24", 1).unwrap();
        let cfg = AfXdpConfig::default();
        let ports = vec![
            DpPort {
                no: DpPortNo(1),
                port: Arc::new(AfXdpPort::open(&h1.sw_if, &cfg).unwrap()) as Arc<dyn Port>,
            },
            DpPort {
                no: DpPortNo(2),
                port: Arc::new(AfXdpPort::open(&h2.sw_if, &cfg).unwrap()) as Arc<dyn Port>,
            },
        ];
        let mut dp = Datapath::start(&DatapathConfig::default(), ports).unwrap();
        flow(&mut dp, 1, &[DpAction::Output(DpPortNo(2))]);
        flow(&mut dp, 2, &[DpAction::Output(DpPortNo(1))]);
        let ping = || h1.exec(&["ping", "-c", "1", "-W", "2", h2.addr()]).is_ok();
        assert!(ping(), "ping through the datapath");
        let info = dp.port_info(DpPortNo(1)).unwrap();
        assert!(info.live && info.admin_up && info.mtu == 1500, "{info:?}");
        assert_eq!(info.speed_kbps, 10_000_000, "veth reports 10 Gbit/s");

        dp.set_port_admin_up(DpPortNo(1), false).unwrap();
        let info = dp.port_info(DpPortNo(1)).unwrap();
        assert!(!info.live && !info.admin_up, "{info:?}");
        assert!(!ping());
        dp.set_port_admin_up(DpPortNo(1), true).unwrap();
        assert!(wait(|| dp.port_live(DpPortNo(1))));
        assert!(wait(ping), "forwarding again after down/up (the link may take a moment to carry traffic)");

        dp.set_port_no_recv(DpPortNo(1), true).unwrap();
        assert!(!ping());
        let st = dp.port_stats().into_iter().find(|p| p.0 == DpPortNo(1)).unwrap().4;
        assert!(st.rx_dropped >= 1, "{st:?}");
        dp.set_port_no_recv(DpPortNo(1), false).unwrap();
        assert!(ping());
        drop(dp);
    }

    /// A TAP device as the LOCAL port, next to an in-memory port: frames from the memory
    /// port reach the kernel's sockets, and the kernel's frames come out on the memory port.
    #[test]
    fn tap_port_forwards_both_ways() {
        if !crate::netns::is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let id = std::process::id() % 200 + 20;
        let name = format!("xsdptap{id}");
        let tap = Arc::new(crate::netdev::tap::TapPort::open(&name).unwrap());
        tap.set_admin_up(true).unwrap();
        crate::netns::sh(&["sysctl", "-qw", &format!("net.ipv6.conf.{name}.disable_ipv6=1")]).unwrap();
        crate::netns::sh(&["ip", "addr", "add", &format!("10.214.{id}.1/24"), "dev", &name]).unwrap();
        let mem = MemPort::new("m", 1);
        mem.capture(true);
        let ports = vec![
            DpPort { no: DpPortNo(1), port: Arc::new(mem.clone()) as Arc<dyn Port> },
            DpPort { no: DpPortNo(0xfffe), port: tap.clone() as Arc<dyn Port> },
        ];
        let mut dp = Datapath::start(&DatapathConfig::default(), ports).unwrap();
        flow(&mut dp, 1, &[DpAction::Output(DpPortNo(0xfffe))]);
        flow(&mut dp, 0xfffe, &[DpAction::Output(DpPortNo(1))]);
        let info = dp.port_info(DpPortNo(0xfffe)).unwrap();
        assert!(info.live && info.admin_up && info.name == name, "{info:?}");

        let (me, peer) = ([10, 214, id as u8, 1], [10, 214, id as u8, 2]);
        let sock = std::net::UdpSocket::bind((std::net::Ipv4Addr::from(me), 0)).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let frame = udp4(&Udp4Spec {
            src_mac: [2, 0, 0, 0, 0, 0x42],
            dst_mac: tap.mac(),
            src_ip: peer,
            dst_ip: me,
            sport: 5555,
            dport: sock.local_addr().unwrap().port(),
            payload_len: 20,
            ..Default::default()
        });
        assert!(mem.inject(frame));
        let mut buf = [0u8; 64];
        let (len, from) = sock.recv_from(&mut buf).expect("the frame reached the kernel through the tap");
        assert_eq!((len, from.port()), (20, 5555));
        // The kernel answers an unknown neighbour with an ARP request out of the tap.
        sock.send_to(b"x", (std::net::Ipv4Addr::from(peer), 9)).unwrap();
        assert!(wait(|| mem.take_sent().iter().any(|f| f[12..14] == [0x08, 0x06] && f[38..42] == peer)));
    }
}
