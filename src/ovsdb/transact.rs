//! Builders for the operations of a `transact` request (RFC 7047 §5.2).

use serde_json::{json, Value};

use super::datum::{Datum, Uuid};

/// The `where` clause selecting one row by UUID.
fn by_uuid(uuid: Uuid) -> Value {
    json!([["_uuid", "==", ["uuid", uuid.to_string()]]])
}

/// A row's columns as a JSON object.
fn row_json<'a>(cols: impl IntoIterator<Item = (&'a str, Datum)>) -> Value {
    Value::Object(cols.into_iter().map(|(c, d)| (c.to_string(), d.to_json())).collect())
}

/// `update`: sets `cols` of the row `uuid` of `table`.
pub fn update<'a>(table: &str, uuid: Uuid, cols: impl IntoIterator<Item = (&'a str, Datum)>) -> Value {
    json!({"op": "update", "table": table, "where": by_uuid(uuid), "row": row_json(cols)})
}

/// A mutator (RFC 7047 §5.1): `+=`, `-=`, `*=`, `/=`, `%=`, `insert`, `delete`.
pub fn mutate(table: &str, uuid: Uuid, mutations: &[(&str, &str, Datum)]) -> Value {
    let m: Vec<Value> = mutations.iter().map(|(c, op, d)| json!([c, op, d.to_json()])).collect();
    json!({"op": "mutate", "table": table, "where": by_uuid(uuid), "mutations": m})
}

/// `insert`, with a `uuid-name` later operations can refer to as `["named-uuid", name]`.
pub fn insert<'a>(
    table: &str,
    uuid_name: Option<&str>,
    cols: impl IntoIterator<Item = (&'a str, Datum)>,
) -> Value {
    let mut op = json!({"op": "insert", "table": table, "row": row_json(cols)});
    if let Some(n) = uuid_name {
        op["uuid-name"] = json!(n);
    }
    op
}

/// `wait` until the row `uuid` has (`==`) or lacks (`!=`) the given `cols`, for up to
/// `timeout_ms` (0: check once).
pub fn wait<'a>(
    table: &str,
    uuid: Uuid,
    cols: impl IntoIterator<Item = (&'a str, Datum)>,
    until_equal: bool,
    timeout_ms: u64,
) -> Value {
    let row = row_json(cols);
    let columns: Vec<String> = row.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
    json!({
        "op": "wait", "table": table, "where": by_uuid(uuid), "columns": columns,
        "until": if until_equal { "==" } else { "!=" }, "rows": [row], "timeout": timeout_ms
    })
}

/// `comment`: shows up in the database log.
pub fn comment(text: &str) -> Value {
    json!({"op": "comment", "comment": text})
}

/// The params of a `transact` request on database `db`.
pub fn params(db: &str, ops: Vec<Value>) -> Vec<Value> {
    let mut p = Vec::with_capacity(ops.len() + 1);
    p.push(json!(db));
    p.extend(ops);
    p
}

/// The error of a `transact` result, if any: RFC 7047 answers one result per operation and,
/// when the transaction failed, an object with an `error` (possibly after the operations).
pub fn result_error(result: &Value) -> Option<String> {
    let Some(items) = result.as_array() else { return Some(format!("not an array: {result}")) };
    items.iter().find_map(|r| {
        let e = r.get("error")?.as_str()?;
        let details = r.get("details").and_then(Value::as_str).unwrap_or("");
        Some(if details.is_empty() { e.to_string() } else { format!("{e}: {details}") })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const U: Uuid = Uuid(0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10);

    #[test]
    fn builds_the_rfc_shapes() {
        assert_eq!(
            update("Interface", U, [("ofport", Datum::one(3i64)), ("error", Datum::empty())]),
            json!({"op":"update","table":"Interface",
                   "where":[["_uuid","==",["uuid","01020304-0506-0708-090a-0b0c0d0e0f10"]]],
                   "row":{"ofport":3,"error":["set",[]]}})
        );
        assert_eq!(
            mutate("Open_vSwitch", U, &[("next_cfg", "+=", Datum::one(1i64))]),
            json!({"op":"mutate","table":"Open_vSwitch",
                   "where":[["_uuid","==",["uuid","01020304-0506-0708-090a-0b0c0d0e0f10"]]],
                   "mutations":[["next_cfg","+=",1]]})
        );
        assert_eq!(
            insert("Bridge", Some("br"), [("name", Datum::one("br0"))]),
            json!({"op":"insert","table":"Bridge","uuid-name":"br","row":{"name":"br0"}})
        );
        let w = wait("Open_vSwitch", U, [("next_cfg", Datum::one(4i64))], true, 0);
        assert_eq!(w["until"], "==");
        assert_eq!(w["columns"], json!(["next_cfg"]));
        assert_eq!(w["rows"], json!([{"next_cfg": 4}]));
        assert_eq!(comment("x"), json!({"op":"comment","comment":"x"}));
        assert_eq!(params("Open_vSwitch", vec![comment("x")])[0], "Open_vSwitch");
    }

    #[test]
    fn finds_transaction_errors() {
        assert_eq!(result_error(&json!([{"count": 1}, {}])), None);
        assert_eq!(
            result_error(&json!([{"count": 0}, {"error": "constraint violation", "details": "x"}])),
            Some("constraint violation: x".into())
        );
        assert!(result_error(&json!({"error": "x"})).is_some());
    }
}
