//! ofproto — the slow path (in progress)
