//! OpenFlow groups (spec 5.6): the group table, group-mods and per-group/per-bucket
//! counters. Translation of a `group` action is in [`xlate`](super::xlate).
//!
//! Errors follow spec 7.4.4 (`OFPGMFC_*`): an add of an existing id `GROUP_EXISTS`, a
//! modify of a missing one `UNKNOWN_GROUP`, an id above `OFPG_MAX` `INVALID_GROUP`, an
//! indirect group without exactly one bucket or a weight outside a select group
//! `BAD_BUCKET`, a fast-failover bucket watching nothing (or a missing group) `BAD_WATCH`,
//! a chain that comes back to the group `LOOP`, and deleting a group another group still
//! sends to `CHAINED_GROUP`. A refused group-mod changes nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use super::rule::{ofpg, ofpp, OfAction};
use super::table::{check_actions, Checks};
use super::Error;
use crate::ofp::ErrorCode;

/// `OFPGT_*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GroupType {
    /// Every bucket, each on its own copy of the packet.
    All,
    /// One bucket, chosen by a hash of the flow, weighted.
    Select,
    /// The single bucket.
    Indirect,
    /// The first live bucket.
    FastFailover,
}

impl GroupType {
    /// The `OFPGT_*` number.
    pub fn number(self) -> u8 {
        match self {
            GroupType::All => 0,
            GroupType::Select => 1,
            GroupType::Indirect => 2,
            GroupType::FastFailover => 3,
        }
    }

    /// The type with `OFPGT_*` number `n` (`OFPGMFC_BAD_TYPE` otherwise).
    pub fn from_number(n: u8) -> Result<GroupType, Error> {
        Ok(match n {
            0 => GroupType::All,
            1 => GroupType::Select,
            2 => GroupType::Indirect,
            3 => GroupType::FastFailover,
            _ => return Err(Error::new(ErrorCode::OFPGMFC_BAD_TYPE, format!("group type {n}"))),
        })
    }
}

/// One bucket of a group (`ofp_bucket`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Bucket {
    /// Relative weight (select groups only; 0 elsewhere).
    pub weight: u16,
    /// Port whose liveness decides the bucket's (fast failover; [`ofpp::ANY`] = none).
    pub watch_port: u32,
    /// Group whose liveness decides the bucket's (fast failover; [`ofpg::ANY`] = none).
    pub watch_group: u32,
    /// The bucket's action set, executed in action-set order.
    pub actions: Vec<OfAction>,
}

impl Bucket {
    /// A bucket with no weight and no watch.
    pub fn new(actions: Vec<OfAction>) -> Bucket {
        Bucket { weight: 0, watch_port: ofpp::ANY, watch_group: ofpg::ANY, actions }
    }
}

/// `OFPGC_*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupModCommand {
    /// Add a new group.
    Add,
    /// Replace an existing group's type and buckets (counters of the group kept).
    Modify,
    /// Delete a group ([`ofpg::ALL`]: every group); missing groups are not an error.
    Delete,
}

/// A group-mod, already converted from the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupMod {
    /// What to do.
    pub command: GroupModCommand,
    /// The group's type (ignored by delete).
    pub group_type: GroupType,
    /// The group.
    pub group_id: u32,
    /// The buckets (ignored by delete).
    pub buckets: Vec<Bucket>,
}

/// Packets and bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
}

/// One group of the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    /// The group id.
    pub id: u32,
    /// Its type.
    pub group_type: GroupType,
    /// Its buckets.
    pub buckets: Vec<Bucket>,
    /// When it was added.
    pub created: Duration,
    /// Packets processed by the group.
    pub counts: Counts,
    /// Per bucket, packets that went through it.
    pub bucket_counts: Vec<Counts>,
}

/// `ofp_group_features` as this switch answers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupFeatures {
    /// Bitmap of `1 << OFPGT_*` supported.
    pub types: u32,
    /// `OFPGFC_*` bitmap (select weight, select liveness, chaining, chaining checks).
    pub capabilities: u32,
    /// Most groups of each type.
    pub max_groups: [u32; 4],
    /// Bitmap of `1 << OFPAT_*` supported in buckets, per type.
    pub actions: [u32; 4],
}

/// Most groups in the table.
pub const MAX_GROUPS: usize = 65536;

/// The group table.
#[derive(Clone, Debug, Default)]
pub struct GroupTable {
    groups: BTreeMap<u32, Group>,
}

impl GroupTable {
    /// No groups.
    pub fn new() -> GroupTable {
        GroupTable::default()
    }

    /// Group `id`.
    pub fn get(&self, id: u32) -> Option<&Group> {
        self.groups.get(&id)
    }

    /// Every group, by id.
    pub fn iter(&self) -> impl Iterator<Item = &Group> {
        self.groups.values()
    }

    /// Number of groups.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// What this switch supports: every type, weights, liveness, chaining with loop checks.
    pub fn features() -> GroupFeatures {
        // OFPAT_OUTPUT, COPY_TTL_*, SET_MPLS_TTL.. are numbered as in 1.3; the ones we carry out:
        // output(0), push_vlan(17), pop_vlan(18), set_queue(21), group(22), set_nw_ttl(23),
        // dec_nw_ttl(24), set_field(25).
        let acts =
            (1 << 0) | (1 << 17) | (1 << 18) | (1 << 21) | (1 << 22) | (1 << 23) | (1 << 24) | (1 << 25);
        GroupFeatures {
            types: 0b1111,
            // OFPGFC_SELECT_WEIGHT | SELECT_LIVENESS | CHAINING | CHAINING_CHECKS
            capabilities: 0b1111,
            max_groups: [MAX_GROUPS as u32; 4],
            actions: [acts; 4],
        }
    }

    /// Applies a group-mod. `checks.ports` (if given) are the ports bucket outputs may name.
    /// Returns the ids of the groups deleted: the caller removes the rules that use them
    /// ([`Pipeline::remove_group_users`](super::table::Pipeline::remove_group_users)).
    pub fn apply(&mut self, gm: GroupMod, checks: &Checks<'_>, now: Duration) -> Result<Vec<u32>, Error> {
        let id = gm.group_id;
        if gm.command == GroupModCommand::Delete {
            if id == ofpg::ALL {
                let ids: Vec<u32> = self.groups.keys().copied().collect();
                self.groups.clear();
                return Ok(ids);
            }
            if id > ofpg::MAX {
                return Err(Error::new(ErrorCode::OFPGMFC_INVALID_GROUP, format!("group {id:#x}")));
            }
            if !self.groups.contains_key(&id) {
                return Ok(Vec::new());
            }
            if let Some(g) = self.groups.values().find(|g| g.id != id && refers_to(g, id)) {
                return Err(Error::new(
                    ErrorCode::OFPGMFC_CHAINED_GROUP,
                    format!("group {} still sends to group {id}", g.id),
                ));
            }
            self.groups.remove(&id);
            return Ok(vec![id]);
        }
        if id > ofpg::MAX {
            return Err(Error::new(ErrorCode::OFPGMFC_INVALID_GROUP, format!("group {id:#x}")));
        }
        let exists = self.groups.contains_key(&id);
        match gm.command {
            GroupModCommand::Add if exists => {
                return Err(Error::new(ErrorCode::OFPGMFC_GROUP_EXISTS, format!("group {id}")))
            }
            GroupModCommand::Add if self.groups.len() >= MAX_GROUPS => {
                return Err(Error::new(ErrorCode::OFPGMFC_OUT_OF_GROUPS, format!("{MAX_GROUPS} groups")))
            }
            GroupModCommand::Modify if !exists => {
                return Err(Error::new(ErrorCode::OFPGMFC_UNKNOWN_GROUP, format!("group {id}")))
            }
            _ => {}
        }
        self.check(&gm, checks)?;
        let bucket_counts = vec![Counts::default(); gm.buckets.len()];
        match self.groups.get_mut(&id) {
            Some(g) => {
                g.group_type = gm.group_type;
                g.buckets = gm.buckets;
                g.bucket_counts = bucket_counts;
            }
            None => {
                let g = Group {
                    id,
                    group_type: gm.group_type,
                    buckets: gm.buckets,
                    created: now,
                    counts: Counts::default(),
                    bucket_counts,
                };
                self.groups.insert(id, g);
            }
        }
        Ok(Vec::new())
    }

    fn check(&self, gm: &GroupMod, checks: &Checks<'_>) -> Result<(), Error> {
        let bad =
            |code: ErrorCode, why: String| Err(Error::new(code, format!("group {}: {why}", gm.group_id)));
        if gm.group_type == GroupType::Indirect && gm.buckets.len() != 1 {
            return bad(ErrorCode::OFPGMFC_BAD_BUCKET, "an indirect group has exactly one bucket".into());
        }
        let checks = Checks { groups: Some(self), ..*checks };
        for (i, b) in gm.buckets.iter().enumerate() {
            if gm.group_type != GroupType::Select && b.weight != 0 {
                return bad(
                    ErrorCode::OFPGMFC_BAD_BUCKET,
                    format!("bucket {i}: weight outside a select group"),
                );
            }
            if gm.group_type == GroupType::FastFailover {
                if b.watch_port == ofpp::ANY && b.watch_group == ofpg::ANY {
                    return bad(ErrorCode::OFPGMFC_BAD_WATCH, format!("bucket {i} watches nothing"));
                }
                if b.watch_group != ofpg::ANY
                    && (b.watch_group == gm.group_id || !self.groups.contains_key(&b.watch_group))
                {
                    return bad(
                        ErrorCode::OFPGMFC_BAD_WATCH,
                        format!("bucket {i}: no group {}", b.watch_group),
                    );
                }
            }
            for a in &b.actions {
                if *a == OfAction::Group(gm.group_id) {
                    return bad(ErrorCode::OFPGMFC_LOOP, "sends to itself".into());
                }
            }
            check_actions(&b.actions, None, &checks, true)?;
        }
        // A chain from one of the new buckets that comes back here is a loop.
        let mut stack: Vec<u32> = gm.buckets.iter().flat_map(|b| groups_of(&b.actions)).collect();
        let mut seen = std::collections::HashSet::new();
        while let Some(g) = stack.pop() {
            if g == gm.group_id {
                return bad(ErrorCode::OFPGMFC_LOOP, "a chained group sends back to it".into());
            }
            if seen.insert(g) {
                if let Some(grp) = self.groups.get(&g) {
                    stack.extend(grp.buckets.iter().flat_map(|b| groups_of(&b.actions)));
                }
            }
        }
        Ok(())
    }

    /// Credits group `id` (and bucket `bucket`, if given) with traffic.
    pub fn credit(&mut self, id: u32, bucket: Option<usize>, packets: u64, bytes: u64) {
        if let Some(g) = self.groups.get_mut(&id) {
            if let Some(c) = bucket.and_then(|b| g.bucket_counts.get_mut(b)) {
                c.packets += packets;
                c.bytes += bytes;
            } else {
                g.counts.packets += packets;
                g.counts.bytes += bytes;
            }
        }
    }

    /// Whether group `id` has a live bucket (fast-failover `watch_group`): a bucket is live
    /// when its watched port is live (per `port_live`) and its watched group has a live
    /// bucket; a bucket that watches nothing is live. `depth` bounds chains.
    pub fn is_live(&self, id: u32, port_live: &dyn Fn(u32) -> bool, depth: usize) -> bool {
        let Some(g) = self.groups.get(&id) else { return false };
        g.buckets.iter().any(|b| self.bucket_live(b, port_live, depth))
    }

    /// Whether bucket `b` is live (see [`GroupTable::is_live`]).
    pub fn bucket_live(&self, b: &Bucket, port_live: &dyn Fn(u32) -> bool, depth: usize) -> bool {
        if depth == 0 {
            return false;
        }
        (b.watch_port == ofpp::ANY || port_live(b.watch_port))
            && (b.watch_group == ofpg::ANY || self.is_live(b.watch_group, port_live, depth - 1))
    }
}

fn groups_of(actions: &[OfAction]) -> impl Iterator<Item = u32> + '_ {
    actions.iter().filter_map(|a| if let OfAction::Group(g) = a { Some(*g) } else { None })
}

fn refers_to(g: &Group, id: u32) -> bool {
    g.buckets.iter().any(|b| groups_of(&b.actions).any(|x| x == id) || b.watch_group == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(1);

    fn gm(command: GroupModCommand, group_type: GroupType, group_id: u32, buckets: Vec<Bucket>) -> GroupMod {
        GroupMod { command, group_type, group_id, buckets }
    }

    fn out(p: u32) -> Bucket {
        Bucket::new(vec![OfAction::Output(p)])
    }

    #[test]
    fn add_modify_delete_and_errors() {
        use GroupModCommand::*;
        let mut t = GroupTable::new();
        let ports = [1, 2, 3];
        let ck = Checks { ports: Some(&ports), ..Checks::default() };
        let code = |r: Result<Vec<u32>, Error>| r.unwrap_err().code();
        t.apply(gm(Add, GroupType::All, 1, vec![out(1), out(2)]), &ck, T).unwrap();
        assert_eq!(
            code(t.apply(gm(Add, GroupType::All, 1, vec![]), &ck, T)),
            ErrorCode::OFPGMFC_GROUP_EXISTS
        );
        assert_eq!(
            code(t.apply(gm(Modify, GroupType::All, 9, vec![]), &ck, T)),
            ErrorCode::OFPGMFC_UNKNOWN_GROUP
        );
        assert_eq!(
            code(t.apply(gm(Add, GroupType::All, ofpg::ALL, vec![]), &ck, T)),
            ErrorCode::OFPGMFC_INVALID_GROUP
        );
        assert_eq!(
            code(t.apply(gm(Add, GroupType::Indirect, 2, vec![out(1), out(2)]), &ck, T)),
            ErrorCode::OFPGMFC_BAD_BUCKET
        );
        assert_eq!(
            code(t.apply(gm(Add, GroupType::All, 2, vec![out(7)]), &ck, T)),
            ErrorCode::OFPBAC_BAD_OUT_PORT
        );
        let mut w = out(1);
        w.weight = 3;
        assert_eq!(
            code(t.apply(gm(Add, GroupType::All, 2, vec![w.clone()]), &ck, T)),
            ErrorCode::OFPGMFC_BAD_BUCKET
        );
        t.apply(gm(Add, GroupType::Select, 2, vec![w, out(2)]), &ck, T).unwrap();
        // Fast failover needs a watch; a watched group must exist.
        assert_eq!(
            code(t.apply(gm(Add, GroupType::FastFailover, 3, vec![out(1)]), &ck, T)),
            ErrorCode::OFPGMFC_BAD_WATCH
        );
        let mut ff = out(1);
        ff.watch_group = 77;
        assert_eq!(
            code(t.apply(gm(Add, GroupType::FastFailover, 3, vec![ff.clone()]), &ck, T)),
            ErrorCode::OFPGMFC_BAD_WATCH
        );
        ff.watch_group = 1;
        t.apply(gm(Add, GroupType::FastFailover, 3, vec![ff]), &ck, T).unwrap();
        // Chains: 4 -> 1 is fine; 1 -> 4 would loop; 4 -> 4 loops; a missing group is bad.
        let to = |g: u32| Bucket::new(vec![OfAction::Group(g)]);
        t.apply(gm(Add, GroupType::Indirect, 4, vec![to(1)]), &ck, T).unwrap();
        assert_eq!(
            code(t.apply(gm(Modify, GroupType::All, 1, vec![to(4)]), &ck, T)),
            ErrorCode::OFPGMFC_LOOP
        );
        assert_eq!(
            code(t.apply(gm(Modify, GroupType::All, 4, vec![to(4)]), &ck, T)),
            ErrorCode::OFPGMFC_LOOP
        );
        assert_eq!(
            code(t.apply(gm(Add, GroupType::All, 5, vec![to(50)]), &ck, T)),
            ErrorCode::OFPBAC_BAD_OUT_GROUP
        );
        // State unchanged by the failures.
        assert_eq!(t.get(1).unwrap().buckets, vec![out(1), out(2)]);
        assert_eq!(t.len(), 4);
        // Group 1 is chained from 3 (watch) and 4: not deletable alone.
        assert_eq!(
            code(t.apply(gm(Delete, GroupType::All, 1, vec![]), &ck, T)),
            ErrorCode::OFPGMFC_CHAINED_GROUP
        );
        assert_eq!(t.apply(gm(Delete, GroupType::All, 4, vec![]), &ck, T).unwrap(), vec![4]);
        assert_eq!(t.apply(gm(Delete, GroupType::All, 4, vec![]), &ck, T).unwrap(), Vec::<u32>::new());
        // Modify keeps group counters, resets bucket counters.
        t.credit(2, None, 5, 500);
        t.credit(2, Some(1), 5, 500);
        let mut w2 = out(3);
        w2.weight = 1;
        t.apply(gm(Modify, GroupType::Select, 2, vec![w2]), &ck, T).unwrap();
        let g = t.get(2).unwrap();
        assert_eq!((g.counts.packets, g.bucket_counts.len(), g.bucket_counts[0].packets), (5, 1, 0));
        let mut all = t.apply(gm(Delete, GroupType::All, ofpg::ALL, vec![]), &ck, T).unwrap();
        all.sort();
        assert_eq!(all, vec![1, 2, 3]);
        assert!(t.is_empty());
        assert!(GroupType::from_number(4).is_err());
    }

    #[test]
    fn liveness() {
        let mut t = GroupTable::new();
        let ck = Checks::default();
        let mut a = out(1);
        a.watch_port = 1;
        t.apply(gm(GroupModCommand::Add, GroupType::FastFailover, 1, vec![a]), &ck, T).unwrap();
        let mut b = out(2);
        b.watch_group = 1;
        t.apply(gm(GroupModCommand::Add, GroupType::FastFailover, 2, vec![b]), &ck, T).unwrap();
        assert!(t.is_live(2, &|p| p == 1, 8));
        assert!(!t.is_live(2, &|p| p == 2, 8));
        assert!(!t.is_live(9, &|_| true, 8));
    }
}
