//! xdpswitch — a userspace OpenFlow switch on AF_XDP sockets.
//!
//! Layers, dependencies pointing down only (see `docs/architecture.md`):
//!
//! ```text
//! ofproto (slow path: OpenFlow tables, translation, the bridge's control thread)
//!    ↓ megaflows (published RCU-style)        ↑ upcalls (bounded queue)
//! datapath (per-core fast path: key extraction, EMC, megaflow classifier, actions)
//!    ↓
//! netdev (ports: AF_XDP with the XDP program from bpf/, in-memory)
//! ```
//! Wire formats live apart and do no I/O: [`packet`] (header views and builders) and [`ofp`]
//! (the OpenFlow 1.0/1.3 codec the controller agent will use).
//! Around them: [`ctl`] (the operator's socket), [`run`] (assembling a switch from options),
//! [`pktgen`] (traffic generator and sink), [`demo`] and [`netns`] (test hosts).
#![deny(unsafe_op_in_unsafe_fn)]

pub mod agent;
pub mod config;
pub mod ctl;
pub mod datapath;
pub mod demo;
#[cfg(test)]
mod fuzz_seeds;
pub mod netdev;
pub mod netns;
pub mod ofp;
pub mod ofproto;
pub mod ovsdb;
pub mod packet;
pub mod pktgen;
pub mod run;
pub mod vswitchd;
