//! Upcalls (fast path → slow path) and execute requests (slow path → fast path).
//!
//! A poll thread that finds no megaflow for a packet copies the packet into an [`Upcall`]
//! and offers it to the slow path on a bounded queue; when the queue is full the packet is
//! dropped and counted (`upcall_dropped`), never waited for. The slow path translates the
//! key, installs a megaflow, and sends the packet back as an [`Execute`] to the poll thread
//! it came from, so the first packet of a flow is forwarded, not lost.

use std::sync::Arc;

use super::actions::DpAction;
use super::flow::FlowKey;
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

/// A packet for a poll thread to run through datapath actions (upcalled packets, and later
/// OpenFlow packet-outs).
#[derive(Debug)]
pub struct Execute {
    pub in_port: DpPortNo,
    pub packet: Vec<u8>,
    pub actions: Arc<[DpAction]>,
}
