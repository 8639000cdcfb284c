//! ofproto — the slow path (in progress)
pub mod bridge;
pub mod rule;
pub mod syntax;
