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

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};

use super::actions::DpAction;
use super::classifier::SubtableRanking;
use super::emc::{EmcConfig, ExactMatchCache};
use super::megaflow::MegaflowTable;
use super::meter::{MeterConfig, MeterError, MeterStats, MeterTable};
use super::pmd::{Pmd, PmdQueue, PmdStats, PmdStatsSnapshot, PortControl};
use super::upcall::{Execute, PacketIn, Upcall};
use crate::netdev::{self, DpPortNo, Port, PortStats, Umem, RX_BATCH};

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
    /// CPUs to pin poll threads to, in order; empty = the last CPUs, one each (poll thread 0
    /// on the highest-numbered CPU), leaving CPU 0 for the kernel and the control thread.
    pub pmd_cpus: Vec<usize>,
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
            pmd_cpus: Vec::new(),
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

struct PmdHandle {
    thread: Option<JoinHandle<()>>,
    stats: Arc<PmdStats>,
    exec_tx: Sender<Execute>,
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
    /// Per port (same order as `ports`): settings the poll threads read.
    controls: Vec<Arc<PortControl>>,
    stop: Arc<AtomicBool>,
    epoch: Instant,
    baseline: Vec<PmdStatsSnapshot>,
}

impl Datapath {
    /// Opens every queue of every port, builds one UMEM per poll thread, starts the threads.
    pub fn start(cfg: &DatapathConfig, ports: Vec<DpPort>) -> Result<Datapath, Error> {
        if cfg.n_pmds == 0 {
            return Err(Error::NoPmds);
        }
        let mut max_no = 0u32;
        for (i, p) in ports.iter().enumerate() {
            if p.no.0 == 0 || p.no.0 > u16::MAX as u32 {
                return Err(Error::BadPortNo(p.no));
            }
            if ports[..i].iter().any(|q| q.no == p.no) {
                return Err(Error::DuplicatePortNo(p.no));
            }
            max_no = max_no.max(p.no.0);
        }
        let mut slot_of = vec![0u16; max_no as usize + 1];
        for (i, p) in ports.iter().enumerate() {
            slot_of[p.no.0 as usize] = i as u16 + 1;
        }
        let megaflows = MegaflowTable::new(cfg.n_pmds, cfg.max_megaflows);
        let (upcall_tx, upcall_rx) = bounded(cfg.upcall_queue.max(1));
        let (packet_in_tx, packet_in_rx) = bounded(cfg.packet_in_queue.max(1));
        let (recycle_tx, recycle_rx) = bounded(cfg.packet_in_queue.max(1));
        let meters = MeterTable::new(cfg.n_pmds);
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
                if tx.is_none() && !queues.is_empty() {
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
            let pmd = Pmd {
                id,
                umem,
                queues,
                tx_queue_of,
                slot_of: slot_of.clone(),
                emc,
                reader: megaflows.reader(),
                ranking: SubtableRanking::default(),
                stats: stats.clone(),
                upcall_tx: upcall_tx.clone(),
                packet_in_tx: packet_in_tx.clone(),
                recycle_rx: recycle_rx.clone(),
                meters: meters.reader(),
                exec_rx,
                stop: stop.clone(),
                epoch,
            };
            built.push((pmd, PmdHandle { thread: None, stats, exec_tx, queues: served }));
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
        Ok(Datapath {
            ports,
            megaflows,
            pmds,
            upcall_rx,
            packet_in_rx,
            recycle_tx,
            meters,
            controls,
            stop,
            epoch,
            baseline,
        })
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
        self.send_execute(pmd, Execute { in_port: Some(in_port), packet, actions })
    }

    /// Runs `actions` on a packet from the controller (OpenFlow packet-out). `in_port` is the
    /// packet-out's in_port when it names a datapath port, `None` for `OFPP_CONTROLLER` /
    /// `OFPP_ANY` (no ingress port: no output is skipped as "the ingress port"; the datapath
    /// never skips one anyway, translation does). Poll thread 0 runs it: queue 0 of every
    /// port is served by thread 0, so it is the one thread with a transmit path to every
    /// port. `false` when its execute queue is full (the packet is not sent).
    pub fn inject(&self, in_port: Option<DpPortNo>, packet: Vec<u8>, actions: Arc<[DpAction]>) -> bool {
        self.send_execute(0, Execute { in_port, packet, actions })
    }

    fn send_execute(&self, pmd: usize, ex: Execute) -> bool {
        let pmd = pmd.min(self.pmds.len() - 1);
        match self.pmds[pmd].exec_tx.try_send(ex) {
            Ok(()) => true,
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
    /// Counters of every port.
    pub fn port_stats(&self) -> Vec<(DpPortNo, String, &'static str, String, PortStats)> {
        self.ports
            .iter()
            .map(|p| (p.no, p.port.name().to_string(), p.port.kind(), p.port.describe(), p.port.stats()))
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

impl Drop for Datapath {
    fn drop(&mut self) {
        self.shutdown();
    }
}
