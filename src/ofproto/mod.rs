//! ofproto — the slow path: OpenFlow tables and translation (first slice).
//!
//! **Owns:** the OpenFlow [`Pipeline`] (tables `0..255` of [`Rule`]s, each a priority-aware
//! tuple-space classifier; flow-mods; per-rule counters and timeouts), the `ovs-ofctl` flow
//! syntax ([`syntax`]) and translation ([`xlate`]): packet key → datapath actions plus the
//! megaflow mask of every field the decision depended on.
//! **Threads:** one control thread owns all of it (`&mut` for changes, `&` for lookups and
//! translation); nothing here locks, spawns or blocks, and time is passed in as `now`.
//! **Calls:** `datapath` (types: [`FlowKey`](crate::datapath::flow::FlowKey),
//! [`FlowMask`](crate::datapath::flow::FlowMask), [`DpAction`](crate::datapath::actions::DpAction))
//! and `packet`. No `unsafe`.
//!
//! Public surface for the bridge:
//! - [`Pipeline::new`], [`Pipeline::add_flows_from_str`]`(text, &PortNames, now) ->
//!   Result<usize, FlowFileError>` (all or nothing; error `"{line}: {field}: {reason}"`),
//! - [`Pipeline::apply`]`(FlowMod, now) -> Result<Changes, Error>` (add / modify[-strict] /
//!   delete[-strict] with cookie mask and `out_port` filter; [`Changes`] lists rules added,
//!   modified and removed so megaflows can be revalidated),
//! - [`xlate::translate`]`(&Pipeline, &FlowKey, ports) -> Translation` (actions, mask, rules hit),
//! - [`Pipeline::credit`]`(rule_id, packets, bytes, now)`, [`Pipeline::expire`]`(now)`,
//! - [`Pipeline::dump`]`(&PortNames, now) -> Vec<String>` (`ovs-ofctl dump-flows` lines),
//!   [`Pipeline::n_rules`].
//! - parsing one line: [`syntax::parse_flow`] (add), [`syntax::parse_flow_mod`] (any
//!   command, as `ovs-ofctl add-flow`/`mod-flows`/`del-flows` read it) and
//!   [`syntax::parse_flow_selector`].

pub mod bridge;
pub mod convert;
pub mod group;
pub mod meter;
pub mod rule;
pub mod syntax;
pub mod table;
pub mod xlate;

pub use rule::{ofpp, FlowMod, FlowModCommand, FlowSpec, Match, OfAction, PortNames, TableId};
pub use syntax::{parse_flow, parse_flow_mod, parse_flow_selector, SyntaxError};
pub use table::{Changes, FlowFileError, FlowTable, Pipeline, Rule, RuleId};
pub use xlate::{translate, Translation, XlateError};

use crate::ofp::ErrorCode;

/// Why a flow-mod, group-mod or meter-mod was refused. Each carries the OpenFlow error
/// ([`Error::code`]) the agent answers with; a refused mod changes nothing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The table does not exist (or is "all" where one table is needed).
    #[error("table {table}: no such table")]
    BadTable {
        /// The table asked for.
        table: TableId,
    },
    /// A goto-table instruction that does not go to a later table.
    #[error("table {table}: goto_table:{goto} must go to a later table")]
    BadGoto {
        /// The rule's table.
        table: TableId,
        /// The goto target.
        goto: TableId,
    },
    /// Anything else, with the OpenFlow error that names it.
    #[error("{}: {reason}", code.name())]
    Rejected {
        /// The OpenFlow error.
        code: ErrorCode,
        /// What was wrong, for logs.
        reason: String,
    },
}

impl Error {
    /// An error with `code` and a reason for the log.
    pub fn new(code: ErrorCode, reason: impl Into<String>) -> Error {
        Error::Rejected { code, reason: reason.into() }
    }

    /// The OpenFlow error to answer with.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::BadTable { .. } => ErrorCode::OFPFMFC_BAD_TABLE_ID,
            Error::BadGoto { .. } => ErrorCode::OFPBIC_BAD_TABLE_ID,
            Error::Rejected { code, .. } => *code,
        }
    }
}
