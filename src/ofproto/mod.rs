//! ofproto — the slow path (in progress)
pub mod bridge;
