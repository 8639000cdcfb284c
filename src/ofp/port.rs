//! `ofp_port` (OpenFlow 1.3.5 §7.2.1), reserved port numbers, and `OFPT_PORT_STATUS`.

use super::error::Reason;
use super::wire::{Put, Reader};

/// `OFPP_MAX`: the highest ordinary port number.
pub const OFPP_MAX: u32 = 0xffff_ff00;
/// `OFPP_IN_PORT`: send back out the input port.
pub const OFPP_IN_PORT: u32 = 0xffff_fff8;
/// `OFPP_TABLE`: submit to the first flow table (packet-out only).
pub const OFPP_TABLE: u32 = 0xffff_fff9;
/// `OFPP_NORMAL`: the traditional L2 switch.
pub const OFPP_NORMAL: u32 = 0xffff_fffa;
/// `OFPP_FLOOD`: all ports but the input port, minus blocked ones.
pub const OFPP_FLOOD: u32 = 0xffff_fffb;
/// `OFPP_ALL`: all ports but the input port.
pub const OFPP_ALL: u32 = 0xffff_fffc;
/// `OFPP_CONTROLLER`: send to the controller.
pub const OFPP_CONTROLLER: u32 = 0xffff_fffd;
/// `OFPP_LOCAL`: the switch's local port.
pub const OFPP_LOCAL: u32 = 0xffff_fffe;
/// `OFPP_ANY`: wildcard port in requests.
pub const OFPP_ANY: u32 = 0xffff_ffff;
/// `OFPG_ANY`: wildcard group in requests.
pub const OFPG_ANY: u32 = 0xffff_ffff;
/// `OFP_NO_BUFFER`: the packet is not buffered on the switch.
pub const OFP_NO_BUFFER: u32 = 0xffff_ffff;

/// Length of `ofp_port` in OpenFlow 1.3.
pub const PORT_LEN: usize = 64;
/// `OFP_MAX_PORT_NAME_LEN`
pub const OFP_MAX_PORT_NAME_LEN: usize = 16;

/// `ofp_port`: description of a port.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Port {
    /// Port number.
    pub port_no: u32,
    /// MAC address.
    pub hw_addr: [u8; 6],
    /// Name, at most 15 bytes on the wire.
    pub name: String,
    /// `OFPPC_*` bitmap.
    pub config: u32,
    /// `OFPPS_*` bitmap.
    pub state: u32,
    /// Current features (`OFPPF_*`).
    pub curr: u32,
    /// Features advertised by the port.
    pub advertised: u32,
    /// Features supported by the port.
    pub supported: u32,
    /// Features advertised by the peer.
    pub peer: u32,
    /// Current bit rate in kbps.
    pub curr_speed: u32,
    /// Maximum bit rate in kbps.
    pub max_speed: u32,
}

impl Port {
    /// Appends the 64-byte `ofp_port`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_u32(self.port_no);
        out.put_zeros(4);
        out.extend_from_slice(&self.hw_addr);
        out.put_zeros(2);
        out.put_str(&self.name, OFP_MAX_PORT_NAME_LEN);
        for v in [
            self.config,
            self.state,
            self.curr,
            self.advertised,
            self.supported,
            self.peer,
            self.curr_speed,
            self.max_speed,
        ] {
            out.put_u32(v);
        }
    }

    /// Reads a 64-byte `ofp_port`.
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Port, Reason> {
        let port_no = r.u32()?;
        r.skip(4)?;
        let hw_addr = r.array()?;
        r.skip(2)?;
        Ok(Port {
            port_no,
            hw_addr,
            name: r.str(OFP_MAX_PORT_NAME_LEN)?,
            config: r.u32()?,
            state: r.u32()?,
            curr: r.u32()?,
            advertised: r.u32()?,
            supported: r.u32()?,
            peer: r.u32()?,
            curr_speed: r.u32()?,
            max_speed: r.u32()?,
        })
    }
}

/// `OFPPR_ADD`: a port was added.
pub const OFPPR_ADD: u8 = 0;
/// `OFPPR_DELETE`: a port was removed.
pub const OFPPR_DELETE: u8 = 1;
/// `OFPPR_MODIFY`: some attribute of a port changed.
pub const OFPPR_MODIFY: u8 = 2;

/// `OFPT_PORT_STATUS`: a port was added, removed or changed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PortStatus {
    /// `OFPPR_*`.
    pub reason: u8,
    /// The port's description.
    pub desc: Port,
}

impl PortStatus {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.put_u8(self.reason);
        out.put_zeros(7);
        self.desc.encode(out);
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<PortStatus, Reason> {
        let reason = r.u8()?;
        r.skip(7)?;
        let desc = Port::decode(r)?;
        r.finish(Reason::BadLen)?;
        Ok(PortStatus { reason, desc })
    }
}
