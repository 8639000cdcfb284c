//! ofproto — the slow path: the OpenFlow switch model (tables, groups, meters) and translation.
//!
//! **Owns:** the OpenFlow [`Pipeline`] (tables `0..255` of [`Rule`]s, each a priority-aware
//! tuple-space classifier; flow-mods; per-rule counters and timeouts), the `ovs-ofctl` flow
//! syntax ([`syntax`]) and translation ([`xlate`]): packet key → datapath actions plus the
//! megaflow mask of every field the decision depended on.
//! **Threads:** one control thread owns all of it (`&mut` for changes, `&` for lookups and
//! translation); nothing here locks, spawns or blocks, and time is passed in as `now`.
//! **Calls:** `datapath` (types: [`FlowKey`](crate::datapath::flow::FlowKey),
//! [`FlowMask`](crate::datapath::flow::FlowMask), [`DpAction`](crate::datapath::actions::DpAction))
//! `packet`, and `ofp` (error codes; [`convert`] maps its messages). No `unsafe`.
//!
//! Public surface:
//! - [`Model`] (pipeline + [`GroupTable`] + [`MeterTable`], kept consistent):
//!   [`Model::flow_mod`]`(FlowMod, ports, now) -> Result<Changes, Error>` (OpenFlow 1.3 flow-mod
//!   semantics, all or nothing, every refusal an [`ErrorCode`] via [`Error::code`]),
//!   [`Model::group_mod`], [`Model::meter_mod`] (both return the rules their deletions removed),
//!   [`Model::expire`]`(now) -> Vec<(Rule, RemovedReason)>`, [`Model::credit`]`(&Translation, ..)`;
//! - [`Pipeline`]: [`Pipeline::apply`] (flows-file path, unchecked) / [`Pipeline::apply_checked`],
//!   [`Pipeline::query`] (flow stats), [`Pipeline::table_stats`], [`Pipeline::dump`],
//!   [`Pipeline::add_flows_from_str`]`(text, &PortNames, now)` (all or nothing);
//! - translation: [`translate_with`]`(&XlateCtx, &mut PacketInContexts, &FlowKey)`,
//!   [`translate_packet_out`], and [`translate`]`(&Pipeline, &FlowKey, ports)` for the
//!   flows-file bridge; `DpAction::Userspace(id)` names a [`PacketInCtx`];
//! - [`convert`]: `ofp` ↔ model for OpenFlow 1.3 and 1.0 (flow-mods, matches, actions,
//!   instructions, flow stats, flow-removed, table stats);
//! - [`switch::Ofproto`]: the control thread over one datapath and every
//!   [`bridge::Bridge`] (each with its own [`bridge::PortMap`] of OpenFlow <-> datapath
//!   numbers), routing upcalls, packet-ins, learning events, agent events and ctl calls to
//!   the bridge they belong to, and driving the tunnels' [`underlay::Underlay`];
//! - parsing one line: [`syntax::parse_flow`] (add), [`syntax::parse_flow_mod`] (any
//!   command, as `ovs-ofctl add-flow`/`mod-flows`/`del-flows` read it) and
//!   [`syntax::parse_flow_selector`].

pub mod bridge;
pub mod connmgr;
pub mod convert;
pub mod group;
pub mod learn;
pub mod limits;
pub mod meter;
pub mod openflow;
pub mod reconf;
pub mod rule;
pub mod switch;
pub mod syntax;
pub mod table;
pub mod underlay;
pub mod xlate;

pub use group::{Bucket, Group, GroupMod, GroupModCommand, GroupTable, GroupType};
pub use meter::{Band, BandKind, Meter, MeterMod, MeterModCommand, MeterTable};
pub use rule::{ofpp, FlowMod, FlowModCommand, FlowSpec, Match, OfAction, PortNames, TableId};
pub use syntax::{parse_flow, parse_flow_mod, parse_flow_selector, SyntaxError};
pub use table::{Changes, FlowFileError, FlowTable, Pipeline, Rule, RuleId};
pub use table::{Checks, RemovedReason, TableStats};
pub use xlate::{
    translate, translate_packet_out, translate_with, PacketInContexts, PacketInCtx, PacketInReason,
    TableMiss, Translation, XPort, XlateCtx, XlateError,
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
        let checks = Checks {
            ports: Some(ports),
            groups: Some(&self.groups),
            meters: Some(&self.meters),
            consistency: true,
        };
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
            removed.extend(
                self.pipeline.remove_group_users(g).into_iter().map(|r| (r, RemovedReason::GroupDelete)),
            );
        }
        Ok(removed)
    }

    /// Applies a meter-mod; returns the rules removed because their meter went (reason
    /// [`RemovedReason::MeterDelete`]).
    pub fn meter_mod(&mut self, mm: MeterMod, now: Duration) -> Result<Vec<(Rule, RemovedReason)>, Error> {
        let deleted = self.meters.apply(mm, now)?;
        let mut removed = Vec::new();
        for m in deleted {
            removed.extend(
                self.pipeline.remove_meter_users(m).into_iter().map(|r| (r, RemovedReason::MeterDelete)),
            );
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

#[cfg(test)]
mod tests {
    use super::rule::{flags, ofpg, ofpp};
    use super::*;

    const T0: Duration = Duration::from_secs(100);
    const PORTS: &[u32] = &[1, 2, 3];

    fn names() -> PortNames {
        [("p1", 1), ("p2", 2), ("p3", 3), ("p9", 9)].into_iter().collect()
    }

    fn fm(cmd: FlowModCommand, line: &str) -> FlowMod {
        let (spec, out_port) = parse_flow_selector(line, &names()).unwrap();
        let mut spec = spec;
        if cmd == FlowModCommand::Add && spec.table == rule::TABLE_ALL {
            spec.table = 0;
        }
        FlowMod { out_port, ..FlowMod::new(cmd, spec) }
    }

    fn add(m: &mut Model, line: &str) -> Result<Changes, Error> {
        m.flow_mod(fm(FlowModCommand::Add, line), PORTS, T0)
    }

    fn code<T: std::fmt::Debug>(r: Result<T, Error>) -> ErrorCode {
        r.unwrap_err().code()
    }

    fn dump(m: &Model) -> Vec<String> {
        m.pipeline.dump(&names(), T0)
    }

    #[test]
    fn flow_mod_errors_leave_state_unchanged() {
        let mut m = Model::new();
        add(&mut m, "priority=5,ip,nw_dst=10.0.0.0/8,actions=output:1").unwrap();
        let before = dump(&m);
        for (line, want) in [
            ("actions=output:9", ErrorCode::OFPBAC_BAD_OUT_PORT),
            ("actions=group:4", ErrorCode::OFPBAC_BAD_OUT_GROUP),
            ("actions=write_actions(group:4)", ErrorCode::OFPBAC_BAD_OUT_GROUP),
            ("actions=meter:1,output:1", ErrorCode::OFPMMFC_UNKNOWN_METER),
            ("actions=mod_nw_dst:1.2.3.4,output:1", ErrorCode::OFPBAC_MATCH_INCONSISTENT),
            ("ipv6,actions=mod_nw_dst:1.2.3.4", ErrorCode::OFPBAC_MATCH_INCONSISTENT),
            ("ip,actions=mod_tp_dst:80", ErrorCode::OFPBAC_MATCH_INCONSISTENT),
            ("ip,actions=write_actions(set_field:::1->ipv6_dst)", ErrorCode::OFPBAC_MATCH_INCONSISTENT),
            ("check_overlap,priority=5,ip,nw_dst=10.1.0.0/16,actions=output:2", ErrorCode::OFPFMFC_OVERLAP),
        ] {
            assert_eq!(add(&mut m, line).map(|_| ()).map_err(|e| e.code()), Err(want), "{line}");
            assert_eq!(dump(&m), before, "{line}");
        }
        let mut bad = fm(FlowModCommand::Add, "table=3,actions=drop");
        bad.spec.goto_table = Some(3);
        assert_eq!(code(m.flow_mod(bad, PORTS, T0)), ErrorCode::OFPBIC_BAD_TABLE_ID);
        let mut bad = fm(FlowModCommand::Add, "actions=drop");
        bad.spec.table = 255;
        assert_eq!(code(m.flow_mod(bad, PORTS, T0)), ErrorCode::OFPFMFC_BAD_TABLE_ID);
        let mut bad = fm(FlowModCommand::Add, "actions=drop");
        bad.spec.flags = 0x40;
        assert_eq!(code(m.flow_mod(bad, PORTS, T0)), ErrorCode::OFPFMFC_BAD_FLAGS);
        // A modify is checked against every rule it selects before any changes.
        assert_eq!(
            code(m.flow_mod(fm(FlowModCommand::Modify, "actions=mod_nw_src:1.1.1.1,output:9"), PORTS, T0)),
            ErrorCode::OFPBAC_BAD_OUT_PORT
        );
        assert_eq!(dump(&m), before);
        // Overlap only counts rules of the same priority; no overlap when a bit differs.
        add(&mut m, "check_overlap,priority=6,ip,nw_dst=10.1.0.0/16,actions=output:2").unwrap();
        add(&mut m, "check_overlap,priority=5,ip,nw_dst=11.0.0.0/8,actions=output:2").unwrap();
        add(&mut m, "ip,actions=mod_nw_dst:1.2.3.4,output:1").unwrap();
        assert_eq!(m.pipeline.n_rules(), 4);
    }

    #[test]
    fn modify_delete_semantics() {
        use FlowModCommand::*;
        let mut m = Model::new();
        add(&mut m, "cookie=0x11,priority=10,in_port=1,actions=output:2").unwrap();
        add(&mut m, "cookie=0x12,priority=20,in_port=1,tcp,actions=output:3").unwrap();
        add(&mut m, "cookie=0x21,table=1,priority=10,actions=output:3").unwrap();
        // 1.3: modify of a flow that does not exist adds nothing.
        let c = m
            .flow_mod(fm(ModifyStrict, "table=0,priority=99,in_port=1,actions=output:1"), PORTS, T0)
            .unwrap();
        assert!(c.is_empty());
        // ... 1.0: it adds.
        let mut f = fm(ModifyStrict, "table=0,priority=99,in_port=2,actions=output:1");
        f.add_if_missing = true;
        assert_eq!(m.flow_mod(f, PORTS, T0).unwrap().added.len(), 1);
        // Modify across all tables by cookie mask; keeps cookie; RESET_COUNTS zeroes.
        let id = m.pipeline.table(1).rules().next().unwrap().id;
        m.pipeline.credit(id, 4, 400, T0);
        let mut f = fm(Modify, "cookie=0x20/0xf0,actions=output:1");
        f.spec.flags = flags::RESET_COUNTS;
        let c = m.flow_mod(f, PORTS, T0).unwrap();
        assert_eq!(c.modified, vec![id]);
        let r = m.pipeline.rule(id).unwrap();
        assert_eq!((r.cookie, r.n_packets, r.actions.clone()), (0x21, 0, vec![OfAction::Output(1)]));
        // Modify ignores out_port (1.3); delete honours it.
        let c = m.flow_mod(fm(Modify, "table=0,out_port=9,in_port=1,actions=output:3"), PORTS, T0).unwrap();
        assert_eq!(c.modified.len(), 2);
        let c = m.flow_mod(fm(Delete, "out_port=1"), PORTS, T0).unwrap();
        assert_eq!(c.removed.iter().map(|r| r.cookie).collect::<Vec<_>>(), vec![0x21, 0]);
        // Strict delete needs the priority; non-strict takes every rule within the match.
        assert!(m.flow_mod(fm(DeleteStrict, "in_port=1"), PORTS, T0).unwrap().is_empty());
        let c = m.flow_mod(fm(Delete, "table=0,in_port=1"), PORTS, T0).unwrap();
        assert_eq!(c.removed.len(), 2);
        assert_eq!(m.pipeline.n_rules(), 0);
    }

    #[test]
    fn groups_and_meters_remove_their_flows() {
        let mut m = Model::new();
        let g = |id, buckets| GroupMod {
            command: GroupModCommand::Add,
            group_type: GroupType::All,
            group_id: id,
            buckets,
        };
        m.group_mod(g(1, vec![Bucket::new(vec![OfAction::Output(1)])]), PORTS, T0).unwrap();
        m.group_mod(g(2, vec![Bucket::new(vec![OfAction::Output(2)])]), PORTS, T0).unwrap();
        assert_eq!(
            code(m.group_mod(g(3, vec![Bucket::new(vec![OfAction::Output(9)])]), PORTS, T0)),
            ErrorCode::OFPBAC_BAD_OUT_PORT
        );
        let band = Band { kind: BandKind::Drop, rate: 1000, burst_size: 0 };
        let mm = MeterMod { command: MeterModCommand::Add, flags: 1, meter_id: 5, bands: vec![band] };
        m.meter_mod(mm, T0).unwrap();
        add(&mut m, "send_flow_rem,priority=1,actions=group:1").unwrap();
        add(&mut m, "priority=2,actions=write_actions(group:1)").unwrap();
        add(&mut m, "priority=3,actions=meter:5,group:2").unwrap();
        assert_eq!((m.pipeline.group_ref_count(1), m.pipeline.meter_flow_count(5)), (2, 1));
        // delete with out_group
        let mut f = fm(FlowModCommand::Delete, "priority=1");
        f.out_group = 2;
        assert_eq!(m.flow_mod(f, PORTS, T0).unwrap().removed.len(), 1);
        let del = GroupMod { command: GroupModCommand::Delete, ..g(1, vec![]) };
        let gone = m.group_mod(del, PORTS, T0).unwrap();
        assert_eq!(gone.len(), 2);
        assert!(gone.iter().all(|(_, why)| *why == RemovedReason::GroupDelete));
        assert_eq!(m.pipeline.n_rules(), 0);
        add(&mut m, "priority=3,actions=meter:5,group:2").unwrap();
        let mm =
            MeterMod { command: MeterModCommand::Delete, flags: 0, meter_id: meter::OFPM_ALL, bands: vec![] };
        let gone = m.meter_mod(mm, T0).unwrap();
        assert_eq!((gone.len(), gone[0].1), (1, RemovedReason::MeterDelete));
        let del_all = GroupMod { command: GroupModCommand::Delete, ..g(ofpg::ALL, vec![]) };
        m.group_mod(del_all, PORTS, T0).unwrap();
        assert!(m.groups.is_empty());
    }

    #[test]
    fn expiry_and_counters() {
        let mut m = Model::new();
        add(&mut m, "idle_timeout=10,hard_timeout=30,priority=1,in_port=1,actions=output:2").unwrap();
        add(&mut m, "hard_timeout=5,priority=1,in_port=2,actions=goto_table:1").unwrap();
        let key = crate::datapath::flow::FlowKey { in_port: 1, ..Default::default() };
        let t = translate(&m.pipeline, &key, PORTS);
        m.credit(&t, 2, 200, T0 + Duration::from_secs(8));
        let key2 = crate::datapath::flow::FlowKey { in_port: 2, ..Default::default() };
        let t2 = translate(&m.pipeline, &key2, PORTS);
        assert_eq!(t2.lookups.len(), 2);
        m.credit(&t2, 1, 60, T0);
        let ts = m.pipeline.table_stats();
        assert_eq!((ts[0].active, ts[0].lookups, ts[0].matched), (2, 3, 3));
        assert_eq!((ts[1].active, ts[1].lookups, ts[1].matched), (0, 1, 0));
        assert!(m.expire(T0 + Duration::from_secs(4)).is_empty());
        let gone = m.expire(T0 + Duration::from_secs(5));
        assert_eq!((gone.len(), gone[0].1), (1, RemovedReason::HardTimeout));
        // Used at +8 s: idle expiry at +18 s, not +10 s.
        assert!(m.expire(T0 + Duration::from_secs(17)).is_empty());
        let gone = m.expire(T0 + Duration::from_secs(18));
        assert_eq!((gone[0].1, gone[0].0.n_packets), (RemovedReason::IdleTimeout, 2));
        assert_eq!(ofpp::ANY, u32::MAX);
    }
}
