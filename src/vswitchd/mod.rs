//! Running as the `ovs-vswitchd` of a stock `ovsdb-server` (`xdpswitch run --ovsdb DB`).
//!
//! Two halves meet here:
//! - the database side (`crate::ovsdb`: the RFC 7047 client, the replica of the tables we
//!   follow, and the mapping of those rows to a [`Config`]), which decides what the switch
//!   should be and writes back what it is;
//! - the switch side ([`SwitchControl`]), which brings a running switch to a [`Config`]
//!   (live where it can, rebuilding the datapath where the set of ports changes) and reports
//!   what it did and how it is doing.
//!
//! The database side never touches ports or threads; the switch side never parses JSON.

pub mod db;
pub mod model;

use crate::config::Config;
use crate::netdev::PortStats;

pub mod live;
pub use live::LiveSwitch;

/// The switch as the database side drives it.
pub trait SwitchControl {
    /// Brings the switch to `cfg`. Never fails as a whole: a port that cannot be opened, a
    /// bridge that cannot be built, a controller target that cannot be used are reported in
    /// the result and everything else keeps working.
    fn apply(&mut self, cfg: &Config) -> ApplyReport;

    /// How every bridge, port and controller is doing now (for the write-back of
    /// `Interface.{admin_state,link_state,mtu,mac_in_use,statistics}` and
    /// `Controller.{is_connected,role}`).
    fn status(&mut self) -> SwitchStatus;
}

/// What [`SwitchControl::apply`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// One per port of the configuration, in no particular order.
    pub ports: Vec<PortResult>,
    /// One per bridge of the configuration.
    pub bridges: Vec<BridgeResult>,
}

/// One port after [`SwitchControl::apply`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortResult {
    pub bridge: String,
    pub name: String,
    /// Its OpenFlow number when it is in the switch; `None` when it could not be added.
    pub ofport: Option<u32>,
    /// Why it is not in the switch (as OVS fills `Interface.error`), or `None`.
    pub error: Option<String>,
}

/// One bridge after [`SwitchControl::apply`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BridgeResult {
    pub name: String,
    /// The datapath ID in use (`Bridge.datapath_id` is written back as 16 hex digits).
    pub datapath_id: u64,
    /// Why the bridge is not running, or `None`.
    pub error: Option<String>,
}

/// Everything [`SwitchControl::status`] reports.
#[derive(Clone, Debug, Default)]
pub struct SwitchStatus {
    pub ports: Vec<PortStatus>,
    pub controllers: Vec<ControllerStatus>,
}

/// One port's state.
#[derive(Clone, Debug)]
pub struct PortStatus {
    pub bridge: String,
    pub name: String,
    pub ofport: u32,
    pub admin_up: bool,
    pub link_up: bool,
    pub mtu: u32,
    pub mac: [u8; 6],
    pub stats: PortStats,
}

/// One controller connection of a bridge (active targets, and passive ones with a client).
#[derive(Clone, Debug)]
pub struct ControllerStatus {
    pub bridge: String,
    /// The target as configured, e.g. `tcp:127.0.0.1:6653`.
    pub target: String,
    pub connected: bool,
    /// `master`, `slave` or `other` (OVS's `Controller.role`).
    pub role: String,
}

/// The switch side for `xdpswitch run --ovsdb`: a running switch with no bridges yet, built
/// from the command line's options, whose management sockets (`<rundir>/<bridge>.mgmt`)
/// go in `rundir`.
pub fn live_switch(
    opts: &crate::run::RunOptions,
    rundir: &std::path::Path,
) -> anyhow::Result<Box<dyn SwitchControl>> {
    Ok(Box::new(LiveSwitch::new(rundir, opts.clone())?))
}
