//! The client's copy of the monitored tables, kept current by the monitor's initial reply
//! and `update` notifications (RFC 7047 §4.1.6: `<table-updates>`, monitor version 1, where
//! a row's `new` holds every monitored column).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::datum::{Datum, Uuid};
use super::Error;

/// The tables and columns `xdpswitch` follows, as `ovs-vswitchd` does (a subset).
pub const MONITORED: &[(&str, &[&str])] = &[
    (
        "Open_vSwitch",
        &[
            "bridges",
            "manager_options",
            "ssl",
            "other_config",
            "external_ids",
            "next_cfg",
            "cur_cfg",
            "ovs_version",
            "db_version",
            "datapath_types",
            "iface_types",
        ],
    ),
    (
        "Bridge",
        &[
            "name",
            "datapath_type",
            "datapath_id",
            "ports",
            "controller",
            "fail_mode",
            "other_config",
            "external_ids",
        ],
    ),
    ("Port", &["name", "interfaces", "tag", "trunks", "vlan_mode", "other_config", "external_ids"]),
    (
        "Interface",
        &[
            "name",
            "type",
            "options",
            "ofport",
            "ofport_request",
            "error",
            "admin_state",
            "link_state",
            "mtu",
            "mac_in_use",
            "statistics",
            "external_ids",
        ],
    ),
    ("Controller", &["target", "is_connected", "role", "other_config"]),
    ("Manager", &["target", "is_connected"]),
    ("SSL", &["private_key", "certificate", "ca_cert", "bootstrap_ca_cert"]),
];

/// The `<monitor-requests>` object for [`MONITORED`].
pub fn monitor_requests() -> Value {
    let mut o = serde_json::Map::new();
    for (table, cols) in MONITORED {
        o.insert(table.to_string(), json!({ "columns": cols }));
    }
    Value::Object(o)
}

/// One row: its columns by name (only the monitored ones).
pub type Row = BTreeMap<String, Datum>;

/// A copy of the monitored tables.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Replica {
    pub tables: BTreeMap<String, BTreeMap<Uuid, Row>>,
}

impl Replica {
    pub fn new() -> Replica {
        Replica::default()
    }

    /// The rows of `table`.
    pub fn table(&self, table: &str) -> impl Iterator<Item = (&Uuid, &Row)> {
        self.tables.get(table).into_iter().flat_map(|t| t.iter())
    }

    /// One row.
    pub fn row(&self, table: &str, uuid: Uuid) -> Option<&Row> {
        self.tables.get(table)?.get(&uuid)
    }

    /// Applies a `<table-updates>` object (the monitor reply or an `update`'s second
    /// parameter). The update is checked whole before anything changes, so a malformed one
    /// leaves the replica as it was. Returns whether anything changed.
    pub fn apply(&mut self, updates: &Value) -> Result<bool, Error> {
        let Value::Object(tables) = updates else {
            return Err(Error::Protocol("table-updates must be an object".into()));
        };
        let mut parsed = Vec::new();
        for (table, rows) in tables {
            let Value::Object(rows) = rows else {
                return Err(Error::Protocol(format!("{table}: table-update must be an object")));
            };
            for (uuid, update) in rows {
                let u = Uuid::parse(uuid)
                    .ok_or_else(|| Error::Protocol(format!("{table}: bad row uuid {uuid:?}")))?;
                let new = match update.get("new") {
                    None => None,
                    Some(Value::Object(cols)) => {
                        let mut row = Row::new();
                        for (c, v) in cols {
                            let d = Datum::from_json(v)
                                .map_err(|e| Error::Protocol(format!("{table} {uuid} {c}: {e}")))?;
                            row.insert(c.clone(), d);
                        }
                        Some(row)
                    }
                    Some(_) => return Err(Error::Protocol(format!("{table} {uuid}: new must be an object"))),
                };
                parsed.push((table.clone(), u, new));
            }
        }
        let mut changed = false;
        for (table, uuid, new) in parsed {
            let t = self.tables.entry(table).or_default();
            match new {
                Some(row) => {
                    if t.get(&uuid) != Some(&row) {
                        t.insert(uuid, row);
                        changed = true;
                    }
                }
                None => changed |= t.remove(&uuid).is_some(),
            }
        }
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BR: &str = "5b1b2d2e-8f37-4f0c-9d3d-7c1e0f0a0b01";

    #[test]
    fn initial_insert_modify_delete() {
        let mut r = Replica::new();
        let initial: Value = serde_json::from_str(&format!(
            r#"{{"Bridge":{{"{BR}":{{"new":{{"name":"br0","ports":["set",[]],"datapath_type":"netdev"}}}}}},
               "Open_vSwitch":{{"0e4c2d10-1111-2222-3333-444455556666":{{"new":{{"next_cfg":1,"cur_cfg":0}}}}}}}}"#
        ))
        .unwrap();
        assert!(r.apply(&initial).unwrap());
        let br = Uuid::parse(BR).unwrap();
        assert_eq!(r.row("Bridge", br).unwrap()["name"].as_str(), Some("br0"));
        assert!(!r.apply(&initial).unwrap(), "the same rows again change nothing");
        // modify: old has the changed columns, new the whole row.
        let modify: Value = serde_json::from_str(&format!(
            r#"{{"Bridge":{{"{BR}":{{"old":{{"datapath_type":"netdev"}},"new":{{"name":"br0","ports":["set",[]],"datapath_type":""}}}}}}}}"#
        ))
        .unwrap();
        assert!(r.apply(&modify).unwrap());
        assert_eq!(r.row("Bridge", br).unwrap()["datapath_type"].as_str(), Some(""));
        let delete: Value =
            serde_json::from_str(&format!(r#"{{"Bridge":{{"{BR}":{{"old":{{"name":"br0"}}}}}}}}"#)).unwrap();
        assert!(r.apply(&delete).unwrap());
        assert!(r.row("Bridge", br).is_none());
        assert_eq!(r.table("Open_vSwitch").count(), 1);
    }

    #[test]
    fn a_malformed_update_changes_nothing() {
        let mut r = Replica::new();
        let bad: Value = serde_json::from_str(&format!(
            r#"{{"Bridge":{{"{BR}":{{"new":{{"name":"br0"}}}},"not-a-uuid":{{"new":{{}}}}}}}}"#
        ))
        .unwrap();
        assert!(r.apply(&bad).is_err());
        assert_eq!(r, Replica::new());
        assert!(r.apply(&json!([1])).is_err());
        assert!(r.apply(&json!({"Bridge": 1})).is_err());
        assert!(r.apply(&json!({"Bridge": {BR: {"new": {"ports": ["set", 1]}}}})).is_err());
    }

    #[test]
    fn monitor_request_names_every_table() {
        let m = monitor_requests();
        for (t, cols) in MONITORED {
            assert_eq!(m[t]["columns"].as_array().unwrap().len(), cols.len());
        }
    }
}
