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
        conns.reconfigure(self.cfg.fail_mode, self.cfg.has_controllers, Instant::now());
        self.model = model;
        // The limit is the new configuration's, the flows the old bridge's.
        self.model.pipeline.set_max_flows(self.cfg.max_flows);
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
        self.conns.reconfigure(cfg.fail_mode, cfg.has_controllers, Instant::now());
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datapath::dpif::{DatapathConfig, DpPort};
    use crate::netdev::mem::MemPort;
    use crate::netdev::Port;
    use crate::ofp::{Body, Message};
    use crate::ofproto::bridge::PortMap;
    use crate::ofproto::connmgr::{ConnId, ConnSink, ConnType, FailMode};
    use crate::ofproto::meter::{Band, BandKind, MeterMod, MeterModCommand};
    use crate::ofproto::rule::PortNames;
    use crate::ofproto::table::Pipeline;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Log(Arc<Mutex<Vec<Message>>>);

    impl ConnSink for Log {
        fn reply(&self, msgs: Vec<Message>) {
            self.0.lock().unwrap().extend(msgs);
        }
        fn send_async(&self, msg: Message) -> bool {
            self.0.lock().unwrap().push(msg);
            true
        }
    }

    /// A datapath over in-memory ports `names` (datapath numbers 1, 2, ...) and a bridge
    /// over it numbering them the same, with `flows`.
    fn switch(names: &[&str], flows: &str) -> (Datapath, Bridge) {
        let ports: Vec<DpPort> = names
            .iter()
            .enumerate()
            .map(|(i, n)| DpPort {
                no: DpPortNo(i as u32 + 1),
                port: Arc::new(MemPort::new(n, 1)) as Arc<dyn Port>,
            })
            .collect();
        let mut dp = Datapath::start(&DatapathConfig::default(), ports).unwrap();
        let pn: PortNames = names.iter().enumerate().map(|(i, n)| (*n, i as u32 + 1)).collect();
        let mut pipeline = Pipeline::new();
        pipeline.add_flows_from_str(flows, &pn, Duration::ZERO).unwrap();
        let map = PortMap::new((1..=names.len() as u32).map(|i| (i, DpPortNo(i))).collect());
        let cfg = BridgeConfig { fail_mode: FailMode::Secure, ..BridgeConfig::default() };
        let b = Bridge::new("br0", 0, cfg, pipeline, pn, map, &mut dp);
        (dp, b)
    }

    #[test]
    fn a_rebuild_keeps_flows_meters_and_connections_and_tells_of_the_ports() {
        let (mut dp, mut old) = switch(&["p1", "p2"], "priority=5,in_port=1,actions=output:2");
        let mm = MeterMod {
            command: MeterModCommand::Add,
            flags: 0,
            meter_id: 7,
            bands: vec![Band { kind: BandKind::Drop, rate: 1000, burst_size: 0 }],
        };
        old.model.meter_mod(mm, old.now()).unwrap();
        old.sync_meters(&mut dp);
        let log = Log::default();
        old.conns.connect(
            ConnId(42),
            ConnType::Primary,
            crate::ofp::OFP13_VERSION,
            "c".into(),
            Box::new(log.clone()),
        );
        let state = old.take_state(&mut dp);
        assert_eq!(state.n_flows(), 1);
        assert_eq!(old.model.pipeline.table_stats().iter().map(|t| t.active).sum::<u32>(), 0, "taken out");
        dp.shutdown();
        drop((old, dp));

        // The new switch has a third port and none of the old flows of its own.
        let (mut dp, mut new) = switch(&["p1", "p2", "p3"], "");
        new.restore_state(&mut dp, state);
        let dump = new.model.pipeline.dump(&new.ports, new.now());
        assert_eq!(dump.len(), 1, "{dump:?}");
        assert!(dump[0].contains("in_port=p1") || dump[0].contains("in_port=1"), "{dump:?}");
        assert_eq!(dp.meter_ids(), vec![7], "the meter is in the new datapath");
        assert!(new.conn_role(ConnId(42)).is_some(), "the controller connection goes on");
        // The controller hears of the new port.
        let sent = log.0.lock().unwrap().clone();
        let added: Vec<u32> = sent
            .iter()
            .filter_map(|m| match &m.body {
                Body::PortStatus(ps) if ps.reason == crate::ofp::port::OFPPR_ADD => Some(ps.desc.port_no),
                _ => None,
            })
            .collect();
        assert_eq!(added, vec![3], "{sent:?}");
        dp.shutdown();
    }

    #[test]
    fn reconfigure_changes_settings_and_keeps_the_tables() {
        let (mut dp, mut b) = switch(&["p1", "p2"], "priority=5,in_port=1,actions=output:2");
        let cfg = BridgeConfig {
            fail_mode: FailMode::Standalone,
            has_controllers: true,
            mac_aging: Duration::from_secs(42),
            packet_in_rate: 3,
            datapath_id: Some(0xabc),
            ..BridgeConfig::default()
        };
        b.reconfigure(&dp, &cfg);
        assert_eq!(b.datapath_id(), 0xabc);
        assert_eq!(b.mac_aging(), Duration::from_secs(42));
        assert_eq!(b.cfg.fail_mode, FailMode::Standalone);
        assert_eq!(b.model.pipeline.dump(&b.ports, b.now()).len(), 1);
        // Back to the default datapath_id: from the LOCAL port, or kept without one.
        b.reconfigure(&dp, &BridgeConfig::default());
        assert_eq!(b.datapath_id(), 0xabc, "no LOCAL port here: the id in use stays");
        let log = Log::default();
        b.conns.connect(ConnId(1), ConnType::Service, crate::ofp::OFP13_VERSION, "x".into(), Box::new(log));
        b.clear_connections();
        assert!(b.conn_role(ConnId(1)).is_none());
        let st = b.port_status(&dp);
        assert_eq!(
            st.iter().map(|p| (p.name.as_str(), p.ofport)).collect::<Vec<_>>(),
            [("p1", 1), ("p2", 2)]
        );
        dp.shutdown();
    }
}
