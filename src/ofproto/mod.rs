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
pub use group::{Bucket, Group, GroupMod, GroupModCommand, GroupTable, GroupType};
pub use meter::{Band, BandKind, Meter, MeterMod, MeterModCommand, MeterTable};
pub use table::{Checks, RemovedReason, TableStats};
pub use xlate::{
    translate, translate_packet_out, translate_with, PacketInContexts, PacketInCtx, PacketInReason, TableMiss,
    Translation, XPort, XlateCtx, XlateError,
};

use std::time::Duration;

use crate::ofp::ErrorCode;

/// The whole OpenFlow switch model an agent drives: flow tables, groups and meters, kept
/// consistent with each other (a rule may only name groups and meters that exist; deleting
/// a group or meter deletes the rules that use it).
#[derive(Debug, Default)]
pub struct Model {
    /// The flow tables.
    pub pipeline: Pipeline,
    /// The group table.
    pub groups: GroupTable,
    /// The meter table.
    pub meters: MeterTable,
}

impl Model {
    /// Empty tables.
    pub fn new() -> Model {
        Model::default()
    }

    /// Applies a flow-mod from a controller: outputs must name one of `ports` (OpenFlow
    /// numbers) or a reserved port, groups and meters must exist, set-fields must be
    /// consistent with the match. All or nothing.
    pub fn flow_mod(&mut self, fm: FlowMod, ports: &[u32], now: Duration) -> Result<Changes, Error> {
        let checks =
            Checks { ports: Some(ports), groups: Some(&self.groups), meters: Some(&self.meters), consistency: true };
        self.pipeline.apply_checked(fm, &checks, now)
    }

    /// Applies a group-mod; returns the rules removed because their group went (reason
    /// [`RemovedReason::GroupDelete`]).
    pub fn group_mod(
        &mut self,
        gm: GroupMod,
        ports: &[u32],
        now: Duration,
    ) -> Result<Vec<(Rule, RemovedReason)>, Error> {
        let checks = Checks { ports: Some(ports), ..Checks::default() };
        let deleted = self.groups.apply(gm, &checks, now)?;
        let mut removed = Vec::new();
        for g in deleted {
            removed.extend(self.pipeline.remove_group_users(g).into_iter().map(|r| (r, RemovedReason::GroupDelete)));
        }
        Ok(removed)
    }

    /// Applies a meter-mod; returns the rules removed because their meter went (reason
    /// [`RemovedReason::MeterDelete`]).
    pub fn meter_mod(&mut self, mm: MeterMod, now: Duration) -> Result<Vec<(Rule, RemovedReason)>, Error> {
        let deleted = self.meters.apply(mm, now)?;
        let mut removed = Vec::new();
        for m in deleted {
            removed.extend(self.pipeline.remove_meter_users(m).into_iter().map(|r| (r, RemovedReason::MeterDelete)));
        }
        Ok(removed)
    }

    /// Removes the rules whose timeouts passed at `now`.
    pub fn expire(&mut self, now: Duration) -> Vec<(Rule, RemovedReason)> {
        self.pipeline.expire(now)
    }

    /// Credits a translation's rules, tables, groups and meters with `packets`/`bytes`.
    pub fn credit(&mut self, t: &Translation, packets: u64, bytes: u64, now: Duration) {
        for r in &t.rules {
            self.pipeline.credit(*r, packets, bytes, now);
        }
        self.pipeline.credit_lookups(&t.lookups, packets);
        for (g, b) in &t.groups {
            self.groups.credit(*g, *b, packets, bytes);
        }
        for m in &t.meters {
            self.meters.credit(*m, packets, bytes, (0, 0));
        }
    }
}

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
