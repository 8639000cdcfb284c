//! [`SwitchProgram`]: `bpf/xdp_switch.o`, the XDP program that runs offloaded megaflows in the
//! kernel and steers everything else to the AF_XDP sockets. One instance per datapath,
//! attached to every AF_XDP port (bpf_links, so it detaches when the process ends however it
//! ends), so its maps (flows, masks, ports) are shared by all of them.
//!
//! This module knows the maps' layouts and nothing of megaflows: `datapath::offload` decides
//! what goes in. The `repr(C)` types mirror the C structs field for field.

use std::os::fd::RawFd;
use std::sync::Mutex;

use aya::maps::{Array, DevMap, HashMap, MapData, PerCpuArray, PerCpuValues, XskMap};
use aya::programs::xdp::XdpLinkId;
use aya::programs::Xdp;
use aya::Ebpf;
use bytemuck::{Pod, Zeroable};

use super::xdp::{attach_with_fallback, load_xdp, Attached};
use super::XdpMode;
use crate::netdev::Error;

static PROGRAM: &[u8] = aya::include_bytes_aligned!("../../../bpf/xdp_switch.o");

/// Masks the program tries per frame (`MAX_MASKS` in the C source).
pub const MAX_MASKS: usize = 16;
/// Capacity of the flow map and its counters (`MAX_FLOWS`).
pub const MAX_FLOWS: usize = 16384;
/// Entries of the socket map (`MAX_XSKS`): queues over all ports.
pub const MAX_XSKS: u32 = 4096;
/// Queues one port may have in the socket map.
pub const QUEUES_PER_PORT: u32 = 64;
/// Datapath port numbers the devmap and port counters cover (`MAX_PORTS`).
pub const MAX_PORTS: u32 = 256;

/// The key fields the program parses: the first four words of `FlowKey`, then the IPv4
/// source and destination (`struct xkey`).
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Pod, Zeroable)]
pub struct XKey {
    pub words: [u64; 4],
    pub nw_src: [u8; 4],
    pub nw_dst: [u8; 4],
}

/// `struct xmask`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct XMask {
    pub mask: XKey,
    pub flags: u32,
    pub pad: u32,
}

/// [`XMask::flags`]: the mask selects more than L2 fields.
pub const MASK_NEEDS_L3: u32 = 1;
/// [`XMask::flags`]: a free slot.
pub const MASK_UNUSED: u32 = 2;

/// `struct xflow_key`: a mask's index and a key under that mask.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Pod, Zeroable)]
pub struct XFlowKey {
    pub mask_idx: u32,
    pub pad: u32,
    pub key: XKey,
}

/// [`XAction::ops`] bits, applied in this order.
pub mod op {
    pub const POP_VLAN: u16 = 1;
    pub const PUSH_VLAN: u16 = 2;
    pub const SET_VLAN: u16 = 4;
    pub const SET_ETH_SRC: u16 = 8;
    pub const SET_ETH_DST: u16 = 16;
    /// NORMAL, the only op when set.
    pub const NORMAL: u16 = 32;
}
/// [`XAction::out_port`]: no output (drop).
pub const OUT_NONE: u32 = u32::MAX;

/// `struct xaction`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct XAction {
    pub slot: u32,
    pub out_port: u32,
    pub ops: u16,
    /// Network byte order.
    pub vlan_tpid: u16,
    /// Network byte order, as written on the wire.
    pub vlan_tci: u16,
    pub eth_src: [u8; 6],
    pub eth_dst: [u8; 6],
    pub pad: u16,
}

/// `struct xfdb_key`: a NORMAL MAC table key.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct XFdbKey {
    pub bridge: u32,
    pub vlan: u16,
    pub mac: [u8; 6],
}

/// `struct xfdb_val`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct XFdbVal {
    pub port: u32,
    /// Written by the program (coarse seconds); 0 from user space.
    pub seen: u32,
}

/// [`XVlan::mode`] values.
pub const VLAN_ACCESS: u16 = 0;
pub const VLAN_TRUNK: u16 = 1;
/// A mode the program leaves to user space (the native modes).
pub const VLAN_OTHER: u16 = 2;

/// `struct xvlan`: NORMAL's view of a port.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct XVlan {
    /// Bridge index + 1; 0: not a NORMAL port.
    pub bridge1: u32,
    pub mode: u16,
    pub tag: u16,
    pub trunks: [u64; 64],
}

/// `struct xport`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
struct XPort {
    dp_port: u32,
    xsk_base: u32,
    offload: u32,
    pad: u32,
}

/// `struct xconfig`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
struct XConfig {
    n_masks: u32,
    pad: u32,
}

/// Packets and bytes (`struct xstat`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable, serde::Serialize)]
pub struct XStat {
    pub packets: u64,
    pub bytes: u64,
}

/// What the kernel forwarded for one port (`struct xport_stat`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct XPortStat {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
}

// SAFETY: each type is `repr(C)`, `Copy`, without padding the compiler could leave
// uninitialised (checked by the bytemuck `Pod` derives above), so any bytes the kernel hands
// back are a valid value and the bytes we hand it are fully initialised.
unsafe impl aya::Pod for XKey {}
// SAFETY: as above.
unsafe impl aya::Pod for XMask {}
// SAFETY: as above.
unsafe impl aya::Pod for XFlowKey {}
// SAFETY: as above.
unsafe impl aya::Pod for XAction {}
// SAFETY: as above.
unsafe impl aya::Pod for XPort {}
// SAFETY: as above.
unsafe impl aya::Pod for XConfig {}
// SAFETY: as above.
unsafe impl aya::Pod for XStat {}
// SAFETY: as above.
unsafe impl aya::Pod for XPortStat {}
// SAFETY: as above.
unsafe impl aya::Pod for XFdbKey {}
// SAFETY: as above.
unsafe impl aya::Pod for XFdbVal {}
// SAFETY: as above.
unsafe impl aya::Pod for XVlan {}

/// The program's own counters (`enum` in the C source), summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ProgramStats {
    /// Frames a kernel megaflow forwarded.
    pub hit: XStat,
    /// Frames looked up without a hit (to user space).
    pub miss: XStat,
    /// Frames the parser does not claim (IPv6, malformed, ...; to user space).
    pub unparsed: XStat,
    /// Hits whose output port could not take redirected frames (to user space).
    pub no_tx: XStat,
    /// Hits that dropped (a megaflow with no output).
    pub dropped: XStat,
    /// Hits whose header push/pop failed (to user space).
    pub error: XStat,
}

struct Maps {
    xsks: XskMap<MapData>,
    ports: HashMap<MapData, u32, XPort>,
    tx_ports: DevMap<MapData>,
    config: Array<MapData, XConfig>,
    masks: Array<MapData, XMask>,
    flows: HashMap<MapData, XFlowKey, XAction>,
    flow_stats: PerCpuArray<MapData, XStat>,
    stats: PerCpuArray<MapData, XStat>,
    port_stats: PerCpuArray<MapData, XPortStat>,
    fdb: HashMap<MapData, XFdbKey, XFdbVal>,
    vlan_ports: Array<MapData, XVlan>,
    /// ifindex → (link, socket-map base, mode).
    links: std::collections::HashMap<u32, (XdpLinkId, u32, Attached)>,
    next_base: u32,
    // Declared last: dropped after the maps, and its links with it (that detaches).
    ebpf: Ebpf,
}

/// The loaded switch program and its maps. Shared (`Arc`) by the AF_XDP ports it is attached
/// to and by the datapath's offload logic; every call takes one short lock (control thread
/// and port setup only, never per packet).
pub struct SwitchProgram {
    maps: Mutex<Maps>,
    n_cpus: usize,
}

impl std::fmt::Debug for SwitchProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwitchProgram").finish_non_exhaustive()
    }
}

fn map_err(what: &str) -> impl Fn(aya::maps::MapError) -> Error + '_ {
    move |e| Error::Xdp { name: "xdp_switch".into(), reason: format!("{what}: {e}") }
}

impl SwitchProgram {
    /// Loads the program and its maps (the verifier runs here: a kernel that refuses it gives
    /// an error, and the caller falls back to plain steering).
    pub fn load() -> Result<SwitchProgram, Error> {
        let err = |reason: String| Error::Xdp { name: "xdp_switch".into(), reason };
        let mut ebpf = Ebpf::load(PROGRAM).map_err(|e| err(format!("load object: {e}")))?;
        let mut take =
            |name: &str| ebpf.take_map(name).ok_or_else(|| err(format!("no map {name} in object")));
        let xsks = XskMap::try_from(take("xsks_map")?).map_err(map_err("xsks_map"))?;
        let ports = HashMap::try_from(take("ports")?).map_err(map_err("ports"))?;
        let tx_ports = DevMap::try_from(take("tx_ports")?).map_err(map_err("tx_ports"))?;
        let config = Array::try_from(take("config")?).map_err(map_err("config"))?;
        let masks = Array::try_from(take("masks")?).map_err(map_err("masks"))?;
        let flows = HashMap::try_from(take("flows")?).map_err(map_err("flows"))?;
        let flow_stats = PerCpuArray::try_from(take("flow_stats")?).map_err(map_err("flow_stats"))?;
        let stats = PerCpuArray::try_from(take("stats")?).map_err(map_err("stats"))?;
        let port_stats = PerCpuArray::try_from(take("port_stats")?).map_err(map_err("port_stats"))?;
        let fdb = HashMap::try_from(take("fdb")?).map_err(map_err("fdb"))?;
        let vlan_ports = Array::try_from(take("vlan_ports")?).map_err(map_err("vlan_ports"))?;
        load_xdp(&mut ebpf, "xdp_switch").map_err(err)?;
        let n_cpus = aya::util::nr_cpus().map_err(|(_, e)| err(format!("possible CPUs: {e}")))?;
        let mut maps = Maps {
            xsks,
            ports,
            tx_ports,
            config,
            masks,
            flows,
            flow_stats,
            stats,
            port_stats,
            fdb,
            vlan_ports,
            links: Default::default(),
            next_base: 0,
            ebpf,
        };
        let unused = XMask { flags: MASK_UNUSED, ..XMask::zeroed() };
        for i in 0..MAX_MASKS as u32 {
            maps.masks.set(i, unused, 0).map_err(map_err("masks"))?;
        }
        Ok(SwitchProgram { maps: Mutex::new(maps), n_cpus })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Maps> {
        self.maps.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Attaches the program to interface `ifindex` (native first, as [`XdpMode`] says) and
    /// reserves its queues' range in the socket map. Frames are passed to the kernel stack
    /// until [`bind_port`](Self::bind_port).
    pub fn attach(&self, name: &str, ifindex: u32, mode: XdpMode) -> Result<Attached, Error> {
        let mut m = self.lock();
        if m.next_base + QUEUES_PER_PORT > MAX_XSKS {
            return Err(Error::Xdp {
                name: name.into(),
                reason: "too many ports for one XDP program".into(),
            });
        }
        let prog: &mut Xdp = m
            .ebpf
            .program_mut("xdp_switch")
            .and_then(|p| p.try_into().ok())
            .ok_or_else(|| Error::Xdp { name: name.into(), reason: "xdp_switch program missing".into() })?;
        let (attached, link) = attach_with_fallback(prog, name, ifindex, mode)?;
        let base = m.next_base;
        m.next_base += QUEUES_PER_PORT;
        m.links.insert(ifindex, (link, base, attached));
        Ok(attached)
    }

    /// Detaches the program from `ifindex` and forgets the port.
    pub fn detach(&self, ifindex: u32) {
        let mut m = self.lock();
        let _ = m.ports.remove(&ifindex);
        if let Some((link, ..)) = m.links.remove(&ifindex) {
            if let Some(prog) = m.ebpf.program_mut("xdp_switch").and_then(|p| <&mut Xdp>::try_from(p).ok()) {
                let _ = prog.detach(link);
            }
        }
    }

    /// Steers queue `qid` of `ifindex` to socket `fd`.
    pub fn set_socket(&self, ifindex: u32, qid: u32, fd: RawFd) -> Result<(), Error> {
        let mut m = self.lock();
        let base = m.links.get(&ifindex).map(|l| l.1).ok_or_else(|| Error::Xdp {
            name: format!("ifindex {ifindex}"),
            reason: "not attached".into(),
        })?;
        if qid >= QUEUES_PER_PORT {
            return Err(Error::Xdp {
                name: format!("ifindex {ifindex}"),
                reason: format!("queue {qid} beyond the socket map"),
            });
        }
        m.xsks.set(base + qid, fd, 0).map_err(map_err("xsks_map"))?;
        // Until the datapath binds the port, steer without lookups.
        if m.ports.get(&ifindex, 0).is_err() {
            m.ports
                .insert(ifindex, XPort { dp_port: 0, xsk_base: base, offload: 0, pad: 0 }, 0)
                .map_err(map_err("ports"))?;
        }
        Ok(())
    }

    /// Names `ifindex` datapath port `dp_port`; `offload` says whether its frames are looked up
    /// in the kernel's flows (false: all go to user space, as for a port that must not
    /// receive, or one outside every bridge).
    pub fn bind_port(&self, ifindex: u32, dp_port: u32, offload: bool) -> Result<(), Error> {
        let mut m = self.lock();
        let base = m.links.get(&ifindex).map(|l| l.1).unwrap_or(0);
        m.ports
            .insert(ifindex, XPort { dp_port, xsk_base: base, offload: u32::from(offload), pad: 0 }, 0)
            .map_err(map_err("ports"))
    }

    /// Lets (`Some(ifindex)`) or stops (`None`) the kernel redirecting frames to `dp_port`.
    pub fn set_tx_port(&self, dp_port: u32, ifindex: Option<u32>) -> Result<(), Error> {
        let mut m = self.lock();
        if dp_port >= MAX_PORTS {
            return Err(Error::Xdp {
                name: "xdp_switch".into(),
                reason: format!("port {dp_port} beyond tx_ports"),
            });
        }
        // ifindex 0 empties the slot (the kernel keeps no device there).
        m.tx_ports.set(dp_port, ifindex.unwrap_or(0), None, 0).map_err(|e| Error::Xdp {
            name: "xdp_switch".into(),
            reason: format!("tx_ports[{dp_port}]: {e}"),
        })
    }

    /// Writes mask slot `idx` (`None`: marks it free).
    pub fn set_mask(&self, idx: u32, mask: Option<XMask>) -> Result<(), Error> {
        let v = mask.unwrap_or(XMask { flags: MASK_UNUSED, ..XMask::zeroed() });
        self.lock().masks.set(idx, v, 0).map_err(map_err("masks"))
    }

    /// How many mask slots the program tries.
    pub fn set_n_masks(&self, n: u32) -> Result<(), Error> {
        self.lock().config.set(0, XConfig { n_masks: n, pad: 0 }, 0).map_err(map_err("config"))
    }

    /// Adds or replaces a kernel flow (atomic for the program: it sees the old or the new).
    pub fn insert_flow(&self, key: &XFlowKey, action: &XAction) -> Result<(), Error> {
        self.lock().flows.insert(key, action, 0).map_err(map_err("flows"))
    }

    /// Removes a kernel flow; frames that miss go to user space from now on.
    pub fn remove_flow(&self, key: &XFlowKey) -> Result<(), Error> {
        match self.lock().flows.remove(key) {
            Ok(()) | Err(aya::maps::MapError::KeyNotFound) => Ok(()),
            Err(e) => Err(map_err("flows")(e)),
        }
    }

    /// Counters of flow slot `slot`, summed over CPUs.
    pub fn flow_stats(&self, slot: u32) -> Result<XStat, Error> {
        let v = self.lock().flow_stats.get(&slot, 0).map_err(map_err("flow_stats"))?;
        Ok(v.iter().fold(XStat::default(), |a, s| XStat {
            packets: a.packets + s.packets,
            bytes: a.bytes + s.bytes,
        }))
    }

    /// Zeroes flow slot `slot` (before it is given to another flow).
    pub fn clear_flow_stats(&self, slot: u32) -> Result<(), Error> {
        let zeros = PerCpuValues::try_from(vec![XStat::default(); self.n_cpus])
            .map_err(|e| Error::Xdp { name: "xdp_switch".into(), reason: format!("flow_stats: {e}") })?;
        self.lock().flow_stats.set(slot, zeros, 0).map_err(map_err("flow_stats"))
    }

    /// What the kernel forwarded for datapath port `dp_port`, summed over CPUs.
    pub fn port_stats(&self, dp_port: u32) -> XPortStat {
        let Ok(v) = self.lock().port_stats.get(&dp_port, 0) else { return XPortStat::default() };
        v.iter().fold(XPortStat::default(), |a, s| XPortStat {
            rx_packets: a.rx_packets + s.rx_packets,
            rx_bytes: a.rx_bytes + s.rx_bytes,
            tx_packets: a.tx_packets + s.tx_packets,
            tx_bytes: a.tx_bytes + s.tx_bytes,
        })
    }

    /// The program's own counters.
    pub fn stats(&self) -> ProgramStats {
        let m = self.lock();
        let get = |i: u32| {
            m.stats.get(&i, 0).map_or(XStat::default(), |v| {
                v.iter().fold(XStat::default(), |a, s| XStat {
                    packets: a.packets + s.packets,
                    bytes: a.bytes + s.bytes,
                })
            })
        };
        ProgramStats {
            hit: get(0),
            miss: get(1),
            unparsed: get(2),
            no_tx: get(3),
            dropped: get(4),
            error: get(5),
        }
    }

    /// Sets (`Some(port)`) or removes a NORMAL MAC table entry.
    pub fn set_fdb(&self, key: XFdbKey, port: Option<u32>) -> Result<(), Error> {
        let mut m = self.lock();
        match port {
            Some(port) => m.fdb.insert(key, XFdbVal { port, seen: 0 }, 0).map_err(map_err("fdb")),
            None => match m.fdb.remove(&key) {
                Ok(()) | Err(aya::maps::MapError::KeyNotFound) => Ok(()),
                Err(e) => Err(map_err("fdb")(e)),
            },
        }
    }

    /// NORMAL's view of datapath port `dp_port`.
    pub fn set_vlan_port(&self, dp_port: u32, v: &XVlan) -> Result<(), Error> {
        if dp_port >= MAX_PORTS {
            return Err(Error::Xdp {
                name: "xdp_switch".into(),
                reason: format!("port {dp_port} beyond vlan_ports"),
            });
        }
        self.lock().vlan_ports.set(dp_port, v, 0).map_err(map_err("vlan_ports"))
    }

    /// Runs the program once over `frame` as if received on `ifindex` (which must exist)
    /// queue 0, sending nothing: the verdict (`XDP_REDIRECT` for a kernel flow's output or
    /// for the AF_XDP socket, `XDP_PASS` when no socket takes it, `XDP_DROP`) and the frame as
    /// the program left it. For tests and diagnosis.
    pub fn test_run(&self, ifindex: u32, frame: &[u8]) -> std::io::Result<(u32, Vec<u8>)> {
        use std::os::fd::{AsFd, AsRawFd};
        let m = self.lock();
        let prog = m.ebpf.program("xdp_switch").ok_or_else(|| std::io::Error::other("no program"))?;
        let fd = prog.fd().map_err(std::io::Error::other)?.as_fd().as_raw_fd();
        let mut out = vec![0u8; frame.len() + 256];
        let (verdict, n) = super::sys::xdp_test_run(fd, frame, ifindex, 1, 0, 0, Some(&mut out))?;
        out.truncate(n);
        Ok((verdict, out))
    }

    /// The mode the program runs in on `ifindex`, if attached there.
    pub fn attached(&self, ifindex: u32) -> Option<Attached> {
        self.lock().links.get(&ifindex).map(|l| l.2)
    }
}
