//! xdpswitch — a userspace OpenFlow switch on AF_XDP sockets.
//!
//! Layers, dependencies pointing down only (see `docs/architecture.md`):
//!
//! ```text
//! ctl (operator socket) ─┐
//! ofproto (slow path: flow tables, translation) → datapath (per-core fast path) → netdev (ports)
//! ```
//! Wire formats live apart and do no I/O: [`packet`] (header views and builders).
#![deny(unsafe_op_in_unsafe_fn)]

pub mod ctl;
pub mod datapath;
pub mod netdev;
pub mod ofproto;
pub mod packet;
pub mod pktgen;
