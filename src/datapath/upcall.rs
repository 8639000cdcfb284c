//! Upcalls (fast path → slow path) and execute requests (slow path → fast path).
//!
//! A poll thread that finds no megaflow for a packet copies the packet into an [`Upcall`]
//! and offers it to the slow path on a bounded queue; when the queue is full the packet is
//! dropped and counted (`upcall_dropped`), never waited for. The slow path translates the
//! key, installs a megaflow, and sends the packet back as an [`Execute`] to the poll thread
//! it came from, so the first packet of a flow is forwarded, not lost.
//!
//! Packets for the controller (`DpAction::Userspace`) are [`PacketIn`]s on a queue of their
//! own, so a flood toward the controller never crowds out misses (which install flows); a
//! full packet-in queue also drops and counts (`userspace_dropped`). Packet-outs from the
//! controller are [`Execute`]s with no ingress port.

use std::sync::Arc;

use super::actions::DpAction;
use super::flow::FlowKey;
use super::tunnel::TunnelMeta;
use crate::netdev::DpPortNo;

/// Why a packet went to the slow path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpcallKind {
    /// No megaflow matched.
    Miss,
}

/// A packet the fast path could not handle.
#[derive(Debug)]
pub struct Upcall {
    pub kind: UpcallKind,
    /// The poll thread it came from (execute requests go back there).
    pub pmd: usize,
    pub key: FlowKey,
    pub packet: Vec<u8>,
}

/// A copy of a packet for the controller, made by a `DpAction::Userspace(id)`: the packet as
/// it was at that point of the action list.
#[derive(Debug)]
pub struct PacketIn {
    /// The action's id: the slow path's packet-in context (reason, table, cookie, max_len).
    pub id: u32,
    /// The poll thread that made it.
    pub pmd: usize,
    /// The port the packet came in on; `None` for a packet the controller sent (packet-out).
    pub in_port: Option<DpPortNo>,
    /// The bridge the packet was in when copied (the ingress port's, or the packet-out's).
    pub bridge: u16,
    /// The packet's tunnel metadata (zero unless it came from a tunnel).
    pub tunnel: TunnelMeta,
    /// The packet bytes. Hand the buffer back with `Datapath::recycle_packet_in` once done,
    /// and poll threads reuse it instead of allocating.
    pub packet: Vec<u8>,
}

/// A packet for a poll thread to run through datapath actions (upcalled packets, and
/// OpenFlow packet-outs).
#[derive(Debug)]
pub struct Execute {
    /// `None`: the packet has no ingress port (it came from the controller).
    pub in_port: Option<DpPortNo>,
    /// The bridge the packet runs in (NORMAL uses that bridge's MAC table).
    pub bridge: u16,
    pub packet: Vec<u8>,
    pub actions: Arc<[DpAction]>,
}
