//! [`AfXdpPort`]: a network interface driven through AF_XDP, and [`AfXdpQueue`]: one socket.

use std::sync::{Arc, Mutex};

use super::offload::SwitchProgram;
use super::socket::{SocketParams, XskSocket};
use super::sys::{self, XdpDesc};
use super::xdp::XdpProgram;
use super::{AfXdpConfig, BindMode};
use crate::netdev::{Error, Frame, Port, PortStats, Queue, QueueStats, Umem, Wakeup};

/// How often (in `maintain` calls) a queue refreshes the kernel's `XDP_STATISTICS`.
const STATS_EVERY: u32 = 1024;
/// The fill ring is topped up only when at least this many slots are free (amortizes the
/// index store), or when it runs low.
const FILL_BATCH: u32 = 32;
/// `EBUSY` retries (10 ms apart) when binding a queue that was just closed: 2 s, since the
/// kernel's deferred release waits for a busy system's workqueue (0.5 s was seen to be too
/// short while two builds and traffic loaded both cores).
const BUSY_RETRIES: u32 = 200;

/// A network interface whose receive queues are steered to AF_XDP sockets.
///
/// Opening attaches the XDP program; dropping the port detaches it (the interface then works
/// as before). The program hangs on a bpf_link fd, so a process that dies without running
/// destructors (Ctrl-C with no handler, SIGKILL, panic=abort) detaches it too: the kernel
/// closes the fd (tested). Queues may outlive the port, but receive nothing once it is gone.
///
/// Frame budget: size each poll thread's [`Umem`] with [`chunks_needed`](super::chunks_needed)
/// for the queues it serves; a starved fill ring shows up as `xdp_rx_fill_ring_empty`.
pub struct AfXdpPort {
    name: String,
    ifindex: u32,
    n_queues: u32,
    mac: [u8; 6],
    cfg: AfXdpConfig,
    steer: Steering,
    /// Whether sockets ended up zero-copy; known once the first queue is bound.
    zerocopy: Mutex<Option<bool>>,
    queues: Mutex<Vec<Arc<QueueStats>>>,
}

/// Which XDP program steers the port's queues to their sockets.
enum Steering {
    /// Its own `xsk_redirect` program (no offload).
    Own(Box<Mutex<XdpProgram>>),
    /// The datapath's shared `xdp_switch` program (offload).
    Shared(Arc<SwitchProgram>),
}

impl std::fmt::Debug for AfXdpPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AfXdpPort").field("name", &self.name).field("ifindex", &self.ifindex).finish()
    }
}

fn sys_err<'a>(name: &'a str, op: &'static str) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Sys { name: name.to_string(), op, source }
}

/// Number of receive queues of `name`, from `/sys/class/net/NAME/queues/rx-*`.
fn count_rx_queues(name: &str) -> std::io::Result<u32> {
    let dir = std::fs::read_dir(format!("/sys/class/net/{name}/queues"))?;
    let n = dir.filter_map(Result::ok).filter(|e| e.file_name().to_string_lossy().starts_with("rx-")).count();
    Ok(n.max(1) as u32)
}

fn read_mac(name: &str) -> [u8; 6] {
    let mut mac = [0u8; 6];
    if let Ok(s) = std::fs::read_to_string(format!("/sys/class/net/{name}/address")) {
        for (m, part) in mac.iter_mut().zip(s.trim().split(':')) {
            *m = u8::from_str_radix(part, 16).unwrap_or(0);
        }
    }
    mac
}

fn check_ring_sizes(name: &str, cfg: &AfXdpConfig) -> Result<(), Error> {
    for (what, n) in
        [("rx", cfg.rx_size), ("tx", cfg.tx_size), ("fill", cfg.fill_size), ("completion", cfg.comp_size)]
    {
        if !n.is_power_of_two() {
            return Err(Error::Sys {
                name: name.to_string(),
                op: what,
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "ring size must be a power of two",
                ),
            });
        }
    }
    Ok(())
}

impl AfXdpPort {
    /// Opens interface `ifname`: counts its queues and attaches the XDP program (native mode
    /// first unless `cfg` says otherwise). No socket exists until [`Port::open_queue`].
    pub fn open(ifname: &str, cfg: &AfXdpConfig) -> Result<AfXdpPort, Error> {
        Self::open_with(ifname, cfg, None)
    }

    /// Like [`open`](Self::open), but steered by `shared` (the datapath's offload program,
    /// attached here) instead of a program of its own.
    pub fn open_with(
        ifname: &str,
        cfg: &AfXdpConfig,
        shared: Option<&Arc<SwitchProgram>>,
    ) -> Result<AfXdpPort, Error> {
        let ifindex =
            sys::if_nametoindex(ifname).ok_or_else(|| Error::NoSuchInterface { name: ifname.to_string() })?;
        check_ring_sizes(ifname, cfg)?;
        let (steer, max_queues) = match shared {
            None => {
                let prog = XdpProgram::attach(ifname, ifindex, cfg.xdp_mode)?;
                let max = prog.max_queues();
                (Steering::Own(Box::new(Mutex::new(prog))), max)
            }
            Some(p) => {
                p.attach(ifname, ifindex, cfg.xdp_mode)?;
                (Steering::Shared(Arc::clone(p)), super::offload::QUEUES_PER_PORT)
            }
        };
        let n_queues = count_rx_queues(ifname).map_err(sys_err(ifname, "count queues"))?.min(max_queues);
        Ok(AfXdpPort {
            name: ifname.to_string(),
            ifindex,
            n_queues,
            mac: read_mac(ifname),
            cfg: cfg.clone(),
            steer,
            zerocopy: Mutex::new(None),
            queues: Mutex::new(Vec::new()),
        })
    }

    /// The interface index.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The configuration the port was opened with.
    pub fn config(&self) -> &AfXdpConfig {
        &self.cfg
    }

    fn open_socket(&self, qid: u32, umem: &mut Umem) -> Result<XskSocket, Error> {
        let mut p = SocketParams {
            ifindex: self.ifindex,
            qid,
            rx_size: self.cfg.rx_size,
            tx_size: self.cfg.tx_size,
            fill_size: self.cfg.fill_size,
            comp_size: self.cfg.comp_size,
            zerocopy: self.cfg.bind_mode != BindMode::Copy,
        };
        // Once one socket of this port fell back to copy mode, don't ask for zero-copy again.
        if *self.zerocopy.lock().unwrap_or_else(|e| e.into_inner()) == Some(false)
            && self.cfg.bind_mode == BindMode::Auto
        {
            p.zerocopy = false;
        }
        match open_retrying_busy(&p, umem) {
            Ok(s) => Ok(s),
            Err(e)
                if p.zerocopy
                    && self.cfg.bind_mode == BindMode::Auto
                    && matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EINVAL)) =>
            {
                tracing::debug!(port = %self.name, qid, error = %e, "zero-copy bind refused, using copy mode");
                p.zerocopy = false;
                open_retrying_busy(&p, umem).map_err(sys_err(&self.name, "AF_XDP socket"))
            }
            Err(e) => Err(sys_err(&self.name, "AF_XDP socket")(e)),
        }
    }
}

impl Port for AfXdpPort {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "afxdp"
    }
    fn n_queues(&self) -> u32 {
        self.n_queues
    }

    fn open_queue(&self, qid: u32, umem: &mut Umem) -> Result<Box<dyn Queue>, Error> {
        if qid >= self.n_queues {
            return Err(Error::NoSuchQueue { name: self.name.clone(), qid, n_queues: self.n_queues });
        }
        if umem.n_free() == 0 {
            return Err(Error::UmemExhausted { needed: self.cfg.fill_size as usize, available: 0 });
        }
        let mut sock = self.open_socket(qid, umem)?;
        if let Some(budget) = self.cfg.tx_skb_budget {
            match sock.set_tx_skb_budget(budget) {
                Ok(set) => tracing::debug!(port = %self.name, qid, budget, set, "XDP_MAX_TX_SKB_BUDGET"),
                Err(e) => tracing::warn!(port = %self.name, qid, error = %e, "XDP_MAX_TX_SKB_BUDGET"),
            }
        }
        *self.zerocopy.lock().unwrap_or_else(|e| e.into_inner()) = Some(sock.is_zerocopy());
        // Steer the queue to the socket (only now that it is bound), then give the kernel
        // frames to receive into. In this order a failed map update loses no frames.
        match &self.steer {
            Steering::Own(prog) => {
                prog.lock().unwrap_or_else(|e| e.into_inner()).set_socket(qid, sock.fd()).map_err(|e| {
                    Error::Xdp { name: self.name.clone(), reason: format!("xsks_map[{qid}]: {e}") }
                })?
            }
            Steering::Shared(prog) => prog.set_socket(self.ifindex, qid, sock.fd())?,
        }
        refill(&mut sock, umem, 0);
        let stats = Arc::new(QueueStats::default());
        self.queues.lock().unwrap_or_else(|e| e.into_inner()).push(stats.clone());
        tracing::info!(port = %self.name, qid, zerocopy = sock.is_zerocopy(), shared = !sock.registered, "AF_XDP queue open");
        Ok(Box::new(AfXdpQueue { sock, stats, qid, ticks: 0, umem_id: umem.area().0.as_ptr() as usize }))
    }

    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn stats(&self) -> PortStats {
        let mut s = PortStats::default();
        for q in self.queues.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            s.accumulate(q);
        }
        s
    }

    fn describe(&self) -> String {
        let mode = match &self.steer {
            Steering::Own(p) => p.lock().unwrap_or_else(|e| e.into_inner()).attached().as_str(),
            Steering::Shared(p) => p.attached(self.ifindex).map_or("detached", |a| a.as_str()),
        };
        let copy = match *self.zerocopy.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(true) => "zero-copy",
            Some(false) => "copy",
            None => "not bound",
        };
        let q = if self.n_queues == 1 { "queue" } else { "queues" };
        format!("{mode}, {copy}, {} {q}", self.n_queues)
    }
    fn chunks_per_queue(&self) -> u32 {
        super::chunks_needed(1, self.config())
    }
    fn link(&self) -> crate::netdev::LinkState {
        // The interface can vanish under us (veth peer deleted): report it down then.
        crate::netdev::link::link_state(&self.name).unwrap_or(crate::netdev::LinkState {
            admin_up: false,
            live: false,
            mtu: 0,
            speed_kbps: 0,
        })
    }
    fn set_admin_up(&self, up: bool) -> Result<(), Error> {
        crate::netdev::link::set_admin_up(&self.name, up).map_err(sys_err(&self.name, "set admin state"))
    }
    fn offload_ifindex(&self) -> Option<u32> {
        matches!(self.steer, Steering::Shared(_)).then_some(self.ifindex)
    }
}

impl Drop for AfXdpPort {
    fn drop(&mut self) {
        if let Steering::Shared(p) = &self.steer {
            p.detach(self.ifindex);
        }
    }
}

/// Opens a socket; `EBUSY` is retried for a while, because the kernel releases a closed
/// socket's hold on its queue in deferred work (reopening a queue right after closing it).
fn open_retrying_busy(p: &SocketParams, umem: &mut Umem) -> std::io::Result<XskSocket> {
    let mut tries = 0;
    loop {
        match XskSocket::open(p, umem) {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < BUSY_RETRIES => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            r => return r,
        }
    }
}

/// Tops up the fill ring from the free list when at least `min_free` slots are free.
fn refill(sock: &mut XskSocket, umem: &mut Umem, min_free: u32) {
    let free = sock.fill.free(sock.fill.size());
    if free == 0 || free < min_free {
        return;
    }
    let n = sock.fill.reserve(free.min(umem.n_free() as u32));
    let mut i = 0;
    while i < n {
        match umem.alloc_chunk() {
            Some(addr) => sock.fill.write(i, addr),
            None => break,
        }
        i += 1;
    }
    sock.fill.submit(i);
}

/// One AF_XDP socket: a receive queue of the port and a transmit path, owned by one poll
/// thread together with the [`Umem`] it was opened with.
pub struct AfXdpQueue {
    sock: XskSocket,
    stats: Arc<QueueStats>,
    qid: u32,
    ticks: u32,
    /// Address of the `Umem` area this socket's rings refer to: every call must pass that
    /// same `Umem`, or descriptors would name chunks of another pool (checked, cheaply).
    umem_id: usize,
}

impl AfXdpQueue {
    /// The queue id this socket is bound to.
    pub fn qid(&self) -> u32 {
        self.qid
    }

    #[inline]
    fn check_umem(&self, umem: &Umem) {
        assert_eq!(umem.area().0.as_ptr() as usize, self.umem_id, "AF_XDP queue used with another Umem");
    }

    fn drain_completions(&mut self, umem: &mut Umem) {
        let n = self.sock.comp.peek(self.sock.comp.size());
        for i in 0..n {
            umem.free_addr(self.sock.comp.read(i));
        }
        self.sock.comp.release(n);
        if n > 0 {
            self.stats.tx_completed.add(u64::from(n));
        }
    }

    fn kick_tx(&mut self) {
        if let Err(e) = sys::kick_tx(self.sock.fd()) {
            match e.raw_os_error() {
                Some(libc::EAGAIN | libc::EBUSY | libc::ENOBUFS | libc::ENETDOWN) => {}
                _ => tracing::debug!(qid = self.qid, error = %e, "TX kick failed"),
            }
        }
    }

    fn refresh_stats(&self) {
        if let Ok(s) = self.sock.statistics() {
            let q = &self.stats;
            q.xdp_rx_dropped.set(s.rx_dropped);
            q.xdp_rx_invalid_descs.set(s.rx_invalid_descs);
            q.xdp_tx_invalid_descs.set(s.tx_invalid_descs);
            q.xdp_rx_ring_full.set(s.rx_ring_full);
            q.xdp_rx_fill_ring_empty.set(s.rx_fill_ring_empty_descs);
            q.xdp_tx_ring_empty.set(s.tx_ring_empty_descs);
        }
    }
}

impl Queue for AfXdpQueue {
    fn recv(&mut self, umem: &mut Umem, batch: &mut Vec<Frame>, max: usize) -> usize {
        self.check_umem(umem);
        let n = self.sock.rx.peek(max.min(u32::MAX as usize) as u32);
        if n == 0 {
            return 0;
        }
        let mut bytes = 0u64;
        for i in 0..n {
            let d = self.sock.rx.read(i);
            bytes += d.len as u64;
            batch.push(Frame::from_desc(d.addr, d.len));
        }
        self.sock.rx.release(n);
        self.stats.rx_packets.add(n as u64);
        self.stats.rx_bytes.add(bytes);
        refill(&mut self.sock, umem, FILL_BATCH);
        n as usize
    }

    fn send(&mut self, umem: &mut Umem, frames: &mut Vec<Frame>) -> usize {
        self.check_umem(umem);
        if frames.is_empty() {
            return 0;
        }
        let want = frames.len().min(u32::MAX as usize) as u32;
        if self.sock.tx.free(want) < want {
            // The kernel may be stalled on a full completion ring: drain it and kick.
            self.drain_completions(umem);
            self.kick_tx();
        }
        let room = self.sock.tx.reserve(want);
        let (mut n, mut bytes, mut dropped) = (0u32, 0u64, 0u64);
        for f in frames.drain(..) {
            // The kernel skips an invalid descriptor without ever completing it, which would
            // leak the chunk: an empty frame is dropped here instead.
            if n == room || f.is_empty() {
                umem.free(f);
                dropped += 1;
                continue;
            }
            bytes += f.len() as u64;
            // The frame's ownership moves to the TX ring (and comes back via completion).
            self.sock.tx.write(n, XdpDesc { addr: f.addr(), len: f.len() as u32, options: 0 });
            n += 1;
        }
        self.sock.tx.submit(n);
        self.stats.tx_packets.add(n as u64);
        self.stats.tx_bytes.add(bytes);
        if dropped > 0 {
            self.stats.tx_dropped.add(dropped);
        }
        if n > 0 && self.sock.tx.needs_wakeup() {
            self.kick_tx();
        }
        n as usize
    }

    fn maintain(&mut self, umem: &mut Umem) {
        self.check_umem(umem);
        self.drain_completions(umem);
        // Copy mode sends at most the skb budget per kick: kick again while TX has work.
        if self.sock.tx.needs_wakeup() && self.sock.tx.pending() > 0 {
            self.kick_tx();
        }
        refill(&mut self.sock, umem, FILL_BATCH);
        if self.sock.fill.needs_wakeup() && self.sock.rx.available(1) == 0 {
            let _ = sys::kick_rx(self.sock.fd());
        }
        self.ticks = self.ticks.wrapping_add(1);
        if self.ticks.is_multiple_of(STATS_EVERY) {
            self.refresh_stats();
        }
    }

    fn wakeup(&self) -> Wakeup {
        Wakeup::Fd(self.sock.fd())
    }

    fn release(&mut self, umem: &mut Umem) {
        self.check_umem(umem);
        self.drain_completions(umem);
        let n = self.sock.rx.peek(self.sock.rx.size());
        for i in 0..n {
            umem.free_addr(self.sock.rx.read(i).addr);
        }
        self.sock.rx.release(n);
        self.refresh_stats();
        // If this socket registered the Umem, `umem.registered_by` dies with it and the next
        // socket registers the area again (a second kernel UMEM over the same pages is fine).
    }

    fn stats(&self) -> &Arc<QueueStats> {
        &self.stats
    }
}
