//! datapath — the per-core fast path.
//!
//! Each poll thread ([`pmd`]) owns its [`Umem`](crate::netdev::Umem), its exact-match cache
//! ([`emc`]) and its counters; it runs rx batch → [`extract`] key → EMC → megaflow
//! [`classifier`] → [`actions`] → batched tx per port. Megaflows are shared by every poll
//! thread, read lock-free, and published by the control thread as new versions
//! ([`megaflow`]): when `MegaflowTable::publish` returns, no poll thread can use an older
//! version. Misses become [`Upcall`](upcall::Upcall)s on a bounded queue (full => drop and
//! count); the poll thread never blocks on the slow path. Copies for the controller
//! (`Userspace` actions) go on a separate bounded queue ([`upcall::PacketIn`]), and
//! OpenFlow meters ([`meter`]) are enforced in the fast path with a lock-free shared bucket.
//! One datapath holds several bridges ([`dpif::DpLayout`]): each has its own NORMAL, patch
//! ports between them re-run a packet in the same poll thread, and GRE tunnel ports
//! ([`tunnel`]) encapsulate onto, and decapsulate from, underlay ports in the fast path.
//! Calls: `netdev`, `packet`. Threads: poll threads + the control thread. No `unsafe`.

pub mod actions;
pub mod classifier;
pub mod dpif;
pub mod emc;
pub mod execute;
pub mod extract;
pub mod fdb;
pub mod flow;
pub mod megaflow;
pub mod meter;
pub mod normal;
pub mod offload;
pub mod pmd;
pub mod tunnel;
pub mod upcall;
