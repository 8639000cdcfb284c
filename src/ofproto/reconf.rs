//! Reconfiguring a running bridge, and carrying a bridge's OpenFlow state over a rebuild of
//! the datapath (`crate::vswitchd::live`).
//!
//! Live changes (fail mode, controllers, MAC aging, packet-in rate, datapath_id) are applied
//! on the control thread by [`Bridge::reconfigure`]. A rebuild takes every surviving
//! bridge's [`BridgeState`] out of the old switch ([`Bridge::take_state`]) and puts it into
//! the new one ([`Bridge::restore_state`]): flow tables with their counters and timeouts,
//! groups, meters, and the controller connections, which stay open across the rebuild.

use std::time::{Duration, Instant};

use super::bridge::{Bridge, BridgeConfig};
use super::connmgr::{ConnId, ConnMgr, ConnType, Role};
use super::Model;
use crate::datapath::dpif::{Datapath, PortInfo};
use crate::netdev::{DpPortNo, PortStats};
use crate::ofp;

/// What a controller programmed into a bridge, and its connections: everything that must
/// survive a rebuild of the datapath under it.
pub struct BridgeState {
    model: Model,
    /// The bridge's clock origin: rule durations and timeouts go on from it.
    started: Instant,
    conns: ConnMgr,
    /// The port descriptions before the rebuild, for `OFPT_PORT_STATUS` about ports gone.
    ports: Vec<ofp::Port>,
}

impl BridgeState {
    /// How many flows it holds (all tables).
    pub fn n_flows(&self) -> usize {
        self.model.pipeline.table_stats().iter().map(|t| t.active as usize).sum()
    }

    /// Forgets the connections (their agent was replaced while no switch ran).
    pub fn clear_connections(&mut self) {
        self.conns.clear(Instant::now());
    }
}

/// One port of a bridge as [`Bridge::port_status`] reports it.
#[derive(Clone, Debug)]
pub struct BridgePortStatus {
    pub name: String,
    pub ofport: u32,
    pub info: PortInfo,
    pub stats: PortStats,
}

impl Bridge {
    /// Takes the bridge's OpenFlow state out (after crediting the megaflows' counters to the
    /// rules), leaving it empty: the bridge is about to be dropped with its datapath.
    pub fn take_state(&mut self, dp: &mut Datapath) -> BridgeState {
        self.revalidate(dp);
        let ports = self.port_descs(dp);
        let now = Instant::now();
        let empty = ConnMgr::new(self.cfg.fail_mode, false, self.cfg.fail_open_after, now);
        BridgeState {
            model: std::mem::take(&mut self.model),
            started: self.started,
            conns: std::mem::replace(&mut self.conns, empty),
            ports,
        }
    }

    /// Puts `state` (taken from this bridge in the switch before a rebuild) into this new
    /// bridge: its tables, groups and meters replace what `new` loaded, its connections go
    /// on, and they hear about the ports that came and went.
    pub fn restore_state(&mut self, dp: &mut Datapath, state: BridgeState) {
        let BridgeState { model, started, mut conns, ports } = state;
        conns.reconfigure(self.cfg.fail_mode, self.cfg.has_controllers);
        self.model = model;
        self.started = started;
        self.conns = conns;
        self.sync_meters(dp);
        self.dirty = true;
        let now_descs = self.port_descs(dp);
        for old in &ports {
            if !now_descs.iter().any(|p| p.name == old.name && p.port_no == old.port_no) {
                self.broadcast_port_status(old.clone(), ofp::port::OFPPR_DELETE);
            }
        }
        for new in now_descs {
            if !ports.iter().any(|p| p.name == new.name && p.port_no == new.port_no) {
                self.broadcast_port_status(new, ofp::port::OFPPR_ADD);
            }
        }
    }

    /// Applies the parts of `cfg` that change without a rebuild: fail mode, whether
    /// controllers are configured, MAC aging, the packet-in rate and the datapath_id.
    pub fn reconfigure(&mut self, dp: &Datapath, cfg: &BridgeConfig) {
        self.conns.reconfigure(cfg.fail_mode, cfg.has_controllers);
        if cfg.packet_in_rate != self.cfg.packet_in_rate {
            self.pin_bucket = super::openflow::TokenBucket::new(cfg.packet_in_rate, Instant::now());
        }
        if cfg.datapath_id != self.cfg.datapath_id {
            self.datapath_id = cfg.datapath_id.unwrap_or_else(|| default_datapath_id(self, dp));
        }
        self.cfg.fail_mode = cfg.fail_mode;
        self.cfg.has_controllers = cfg.has_controllers;
        self.cfg.mac_aging = cfg.mac_aging;
        self.cfg.packet_in_rate = cfg.packet_in_rate;
        self.cfg.datapath_id = cfg.datapath_id;
        // The fail-open state may change with the mode: re-translate on the next timers.
        self.last_timers = None;
        self.dirty = true;
    }

    /// Forgets every connection (their agent was replaced).
    pub fn clear_connections(&mut self) {
        if self.conns.clear(Instant::now()) > 0 {
            self.dirty = true;
        }
    }

    /// The MAC aging time in effect.
    pub fn mac_aging(&self) -> Duration {
        self.cfg.mac_aging
    }

    /// The role of connection `id`, and whether it is a controller (primary) connection;
    /// `None` when there is no such connection (yet or any more).
    pub fn conn_role(&self, id: ConnId) -> Option<(ConnType, Role)> {
        self.conns.get(id).map(|c| (c.kind, c.role))
    }

    /// Name, OpenFlow number, state and counters of every port (LOCAL included).
    pub fn port_status(&self, dp: &Datapath) -> Vec<BridgePortStatus> {
        let stats = dp.port_stats();
        self.map
            .iter()
            .filter_map(|(of, no)| {
                let info = dp.port_info(no)?;
                let st = stats.iter().find(|s| s.0 == no).map(|s| s.4.clone()).unwrap_or_default();
                Some(BridgePortStatus { name: info.name.clone(), ofport: of, info, stats: st })
            })
            .collect()
    }
}

/// The datapath_id OVS derives from the bridge's LOCAL port's MAC address.
fn default_datapath_id(b: &Bridge, dp: &Datapath) -> u64 {
    let local = b.map.to_dp(DpPortNo::LOCAL.0);
    local.and_then(|p| dp.port_info(p)).map_or(b.datapath_id, |i| {
        let m = i.hw_addr;
        u64::from_be_bytes([0, 0, m[0], m[1], m[2], m[3], m[4], m[5]])
    })
}
