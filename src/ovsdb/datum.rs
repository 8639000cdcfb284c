//! RFC 7047 §5.1 values: atoms (integer, real, boolean, string, `["uuid",..]`,
//! `["named-uuid",..]`) and data (a bare atom is a set of one, `["set",[..]]`,
//! `["map",[[k,v],..]]`), parsed from and emitted as `serde_json` values.

use std::fmt;

use serde_json::{json, Value};

use super::Error;

/// A row's UUID (`["uuid","xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"]`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Uuid(pub u128);

impl Uuid {
    /// Parses the 36-character text form (8-4-4-4-12 hex digits).
    pub fn parse(s: &str) -> Option<Uuid> {
        let b = s.as_bytes();
        if b.len() != 36 {
            return None;
        }
        let mut n: u128 = 0;
        for (i, &c) in b.iter().enumerate() {
            if matches!(i, 8 | 13 | 18 | 23) {
                if c != b'-' {
                    return None;
                }
                continue;
            }
            let d = (c as char).to_digit(16)?;
            n = n << 4 | u128::from(d);
        }
        Some(Uuid(n))
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = format!("{:032x}", self.0);
        write!(f, "{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
    }
}

impl fmt::Debug for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// One atom.
#[derive(Clone, Debug, PartialEq, PartialOrd)]
pub enum Atom {
    Integer(i64),
    Real(f64),
    Boolean(bool),
    String(String),
    Uuid(Uuid),
    /// A row inserted earlier in the same transaction (`["named-uuid","name"]`).
    NamedUuid(String),
}

impl Atom {
    /// Parses one atom.
    pub fn from_json(v: &Value) -> Result<Atom, Error> {
        match v {
            Value::Bool(b) => Ok(Atom::Boolean(*b)),
            Value::String(s) => Ok(Atom::String(s.clone())),
            Value::Number(n) => match n.as_i64() {
                Some(i) => Ok(Atom::Integer(i)),
                None => n.as_f64().map(Atom::Real).ok_or_else(|| Error::datum(format!("number {n}"))),
            },
            Value::Array(a) => match (a.first().and_then(Value::as_str), a.get(1), a.len()) {
                (Some("uuid"), Some(Value::String(s)), 2) => {
                    Uuid::parse(s).map(Atom::Uuid).ok_or_else(|| Error::datum(format!("bad uuid {s:?}")))
                }
                (Some("named-uuid"), Some(Value::String(s)), 2) => Ok(Atom::NamedUuid(s.clone())),
                _ => Err(Error::datum(format!("not an atom: {}", short(v)))),
            },
            _ => Err(Error::datum(format!("not an atom: {}", short(v)))),
        }
    }

    /// The JSON form.
    pub fn to_json(&self) -> Value {
        match self {
            Atom::Integer(i) => json!(i),
            Atom::Real(r) => json!(r),
            Atom::Boolean(b) => json!(b),
            Atom::String(s) => json!(s),
            Atom::Uuid(u) => json!(["uuid", u.to_string()]),
            Atom::NamedUuid(n) => json!(["named-uuid", n]),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Atom::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Atom::Integer(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_uuid(&self) -> Option<Uuid> {
        match self {
            Atom::Uuid(u) => Some(*u),
            _ => None,
        }
    }
}

impl From<&str> for Atom {
    fn from(s: &str) -> Atom {
        Atom::String(s.to_string())
    }
}

impl From<String> for Atom {
    fn from(s: String) -> Atom {
        Atom::String(s)
    }
}

impl From<i64> for Atom {
    fn from(i: i64) -> Atom {
        Atom::Integer(i)
    }
}

impl From<bool> for Atom {
    fn from(b: bool) -> Atom {
        Atom::Boolean(b)
    }
}

impl From<Uuid> for Atom {
    fn from(u: Uuid) -> Atom {
        Atom::Uuid(u)
    }
}

/// A column's value: a set of atoms (an optional value is a set of zero or one, a scalar a
/// set of one) or a map.
#[derive(Clone, Debug, PartialEq)]
pub enum Datum {
    Set(Vec<Atom>),
    Map(Vec<(Atom, Atom)>),
}

/// A value for an error message, cut to 60 characters.
fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        format!("{}...", s.chars().take(60).collect::<String>())
    } else {
        s
    }
}

impl Datum {
    /// The empty set (an absent optional value).
    pub fn empty() -> Datum {
        Datum::Set(Vec::new())
    }

    /// A set of one atom.
    pub fn one(a: impl Into<Atom>) -> Datum {
        Datum::Set(vec![a.into()])
    }

    /// A map of strings to strings, or any atoms.
    pub fn map<K: Into<Atom>, V: Into<Atom>>(pairs: impl IntoIterator<Item = (K, V)>) -> Datum {
        Datum::Map(pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }

    /// Parses a datum.
    pub fn from_json(v: &Value) -> Result<Datum, Error> {
        if let Value::Array(a) = v {
            match (a.first().and_then(Value::as_str), a.get(1), a.len()) {
                (Some("set"), Some(Value::Array(items)), 2) => {
                    return items.iter().map(Atom::from_json).collect::<Result<_, _>>().map(Datum::Set)
                }
                (Some("map"), Some(Value::Array(pairs)), 2) => {
                    let mut out = Vec::with_capacity(pairs.len());
                    for p in pairs {
                        match p.as_array().map(Vec::as_slice) {
                            Some([k, v]) => out.push((Atom::from_json(k)?, Atom::from_json(v)?)),
                            _ => return Err(Error::datum(format!("map pair: {}", short(p)))),
                        }
                    }
                    return Ok(Datum::Map(out));
                }
                (Some("set" | "map"), ..) => return Err(Error::datum(format!("malformed {}", short(v)))),
                _ => {}
            }
        }
        Ok(Datum::Set(vec![Atom::from_json(v)?]))
    }

    /// The JSON form; a set of exactly one atom is written as the bare atom (as
    /// `ovsdb-server` does).
    pub fn to_json(&self) -> Value {
        match self {
            Datum::Set(s) if s.len() == 1 => s[0].to_json(),
            Datum::Set(s) => json!(["set", s.iter().map(Atom::to_json).collect::<Vec<_>>()]),
            Datum::Map(m) => {
                json!(["map", m.iter().map(|(k, v)| json!([k.to_json(), v.to_json()])).collect::<Vec<_>>()])
            }
        }
    }

    /// The atoms of a set (none for a map).
    pub fn atoms(&self) -> &[Atom] {
        match self {
            Datum::Set(s) => s,
            Datum::Map(_) => &[],
        }
    }

    /// The only atom of a set of one.
    pub fn single(&self) -> Option<&Atom> {
        match self.atoms() {
            [a] => Some(a),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        self.single().and_then(Atom::as_str)
    }

    pub fn as_int(&self) -> Option<i64> {
        self.single().and_then(Atom::as_int)
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self.single() {
            Some(Atom::Boolean(b)) => Some(*b),
            _ => None,
        }
    }

    /// The UUIDs of a set of references.
    pub fn uuids(&self) -> impl Iterator<Item = Uuid> + '_ {
        self.atoms().iter().filter_map(Atom::as_uuid)
    }

    /// The value of a string-keyed map entry.
    pub fn get(&self, key: &str) -> Option<&Atom> {
        match self {
            Datum::Map(m) => m.iter().find(|(k, _)| k.as_str() == Some(key)).map(|(_, v)| v),
            Datum::Set(_) => None,
        }
    }

    /// A string-keyed map's string value.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Atom::as_str)
    }

    /// Whether this is the same value as `other` regardless of element order (sets and maps
    /// are unordered).
    pub fn same_as(&self, other: &Datum) -> bool {
        fn norm(d: &Datum) -> Vec<String> {
            let mut v: Vec<String> = match d {
                Datum::Set(s) => s.iter().map(|a| a.to_json().to_string()).collect(),
                Datum::Map(m) => m.iter().map(|(k, v)| format!("{}={}", k.to_json(), v.to_json())).collect(),
            };
            v.sort();
            v
        }
        let empty = |d: &Datum| match d {
            Datum::Set(s) => s.is_empty(),
            Datum::Map(m) => m.is_empty(),
        };
        if empty(self) && empty(other) {
            return true;
        }
        matches!((self, other), (Datum::Set(_), Datum::Set(_)) | (Datum::Map(_), Datum::Map(_)))
            && norm(self) == norm(other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_what_ovsdb_server_sends() {
        let v: Value =
            serde_json::from_str(r#"["map",[["datapath-id","0000000000000064"],["mac-table-size","2048"]]]"#)
                .unwrap();
        let d = Datum::from_json(&v).unwrap();
        assert_eq!(d.get_str("datapath-id"), Some("0000000000000064"));
        assert_eq!(d.get_str("mac-table-size"), Some("2048"));
        assert_eq!(d.get_str("nope"), None);
        let ports: Value = serde_json::from_str(
            r#"["set",[["uuid","0c9d6a3c-7a9f-4b1e-8d3e-0123456789ab"],["uuid","ffffffff-0000-0000-0000-000000000001"]]]"#,
        )
        .unwrap();
        let d = Datum::from_json(&ports).unwrap();
        let u: Vec<String> = d.uuids().map(|u| u.to_string()).collect();
        assert_eq!(u, ["0c9d6a3c-7a9f-4b1e-8d3e-0123456789ab", "ffffffff-0000-0000-0000-000000000001"]);
        let one = Datum::from_json(&json!(["uuid", "0c9d6a3c-7a9f-4b1e-8d3e-0123456789ab"])).unwrap();
        assert_eq!(one.uuids().count(), 1);
        assert_eq!(Datum::from_json(&json!(7)).unwrap().as_int(), Some(7));
        assert_eq!(Datum::from_json(&json!(["set", []])).unwrap(), Datum::empty());
        assert_eq!(Datum::from_json(&json!(true)).unwrap().as_bool(), Some(true));
        assert_eq!(Datum::from_json(&json!(1.5)).unwrap(), Datum::Set(vec![Atom::Real(1.5)]));
    }

    #[test]
    fn refuses_malformed_values() {
        for bad in [
            json!(["uuid", "nope"]),
            json!(["set", 1]),
            json!(["map", [[1]]]),
            json!({"a": 1}),
            json!(null),
            json!(["set", [["set", []]]]),
            json!(["uuid", "0c9d6a3c-7a9f-4b1e-8d3e-0123456789ab", 1]),
        ] {
            assert!(Datum::from_json(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn emits_a_set_of_one_as_the_atom() {
        assert_eq!(Datum::one("x").to_json(), json!("x"));
        assert_eq!(Datum::empty().to_json(), json!(["set", []]));
        assert_eq!(Datum::map([("k", "v")]).to_json(), json!(["map", [["k", "v"]]]));
        assert_eq!(Datum::one(Atom::NamedUuid("row1".into())).to_json(), json!(["named-uuid", "row1"]));
    }

    #[test]
    fn sameness_ignores_order() {
        let a = Datum::map([("a", 1i64), ("b", 2)]);
        let b = Datum::map([("b", 2i64), ("a", 1)]);
        assert!(a.same_as(&b));
        assert!(!a.same_as(&Datum::map([("a", 1i64)])));
        assert!(Datum::empty().same_as(&Datum::Map(vec![])));
        assert!(!Datum::one(1i64).same_as(&Datum::one("1")));
    }

    fn atom() -> impl Strategy<Value = Atom> {
        prop_oneof![
            any::<i64>().prop_map(Atom::Integer),
            (-1e12f64..1e12).prop_filter("not an integer", |r| r.fract() != 0.0).prop_map(Atom::Real),
            any::<bool>().prop_map(Atom::Boolean),
            ".{0,12}".prop_map(Atom::String),
            any::<u128>().prop_map(|u| Atom::Uuid(Uuid(u))),
            "[a-z_][a-z0-9_]{0,8}".prop_map(Atom::NamedUuid),
        ]
    }

    fn datum() -> impl Strategy<Value = Datum> {
        prop_oneof![
            proptest::collection::vec(atom(), 0..5).prop_map(Datum::Set),
            proptest::collection::vec((atom(), atom()), 0..5).prop_map(Datum::Map),
        ]
    }

    proptest! {
        #[test]
        fn parse_of_emit_is_identity(d in datum()) {
            let text = d.to_json().to_string();
            let back = Datum::from_json(&serde_json::from_str(&text).unwrap()).unwrap();
            prop_assert_eq!(back, d);
        }

        #[test]
        fn uuid_text_round_trips(u in any::<u128>()) {
            prop_assert_eq!(Uuid::parse(&Uuid(u).to_string()), Some(Uuid(u)));
        }
    }
}
