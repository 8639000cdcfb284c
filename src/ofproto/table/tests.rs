//! Tests of table.

use super::*;
use proptest::prelude::*;

fn ports() -> PortNames {
    [("a", 1), ("b", 2), ("c", 3)].into_iter().collect()
}
const T0: Duration = Duration::from_secs(100);

fn add(p: &mut Pipeline, line: &str) -> Changes {
    p.apply(FlowMod::add(parse_flow(line, &ports()).unwrap()), T0).unwrap()
}

fn sel(cmd: FlowModCommand, line: &str) -> FlowMod {
    let (spec, out_port) = super::super::syntax::parse_flow_selector(line, &ports()).unwrap();
    FlowMod { out_port, ..FlowMod::new(cmd, spec) }
}

fn key(in_port: u32, dl_type: u16, src0: u8, tp_dst: u16) -> FlowKey {
    let mut k = FlowKey { in_port, dl_type, tp_dst, ..Default::default() };
    k.nw_src[0] = src0;
    k
}

#[test]
fn flow_mods() {
    let mut p = Pipeline::new();
    let n = p
        .add_flows_from_str(
            "# comment\n\npriority=10,in_port=1 actions=output:2\npriority=5,actions=drop\n\
             table=1,cookie=0x11,ip,actions=3\n",
            &ports(),
            T0,
        )
        .unwrap();
    assert_eq!((n, p.n_rules()), (3, 3));
    // Replacing add: new id, counters carried over (1.3), old rule reported as replaced.
    let first = p.table(0).lookup(&key(1, 0, 0, 0)).0.unwrap().id;
    p.credit(first, 3, 180, T0 + Duration::from_millis(5));
    let c = add(&mut p, "priority=10,in_port=1 actions=output:3");
    assert_eq!((c.removed.len(), c.replaced.len()), (0, 1));
    assert_eq!((c.replaced[0].id, c.replaced[0].n_packets), (first, 3));
    assert_eq!(p.rule(c.added[0]).unwrap().n_packets, 3);
    assert_eq!(p.n_rules(), 3);
    // ... unless reset_counts.
    let c = add(&mut p, "reset_counts,priority=10,in_port=1 actions=output:3");
    assert_eq!(p.rule(c.added[0]).unwrap().n_packets, 0);
    // Modify (non-strict, catch-all selects everything in table 0).
    let c = p.apply(sel(FlowModCommand::Modify, "table=0,actions=output:1"), T0).unwrap();
    assert_eq!(c.modified.len(), 2);
    // Delete with out_port and cookie filters.
    let c = p.apply(sel(FlowModCommand::Delete, "out_port=3"), T0).unwrap();
    assert_eq!(c.removed.len(), 1);
    assert_eq!(c.removed[0].table, 1);
    assert!(p.apply(sel(FlowModCommand::Delete, "cookie=0x1/0xff"), T0).unwrap().is_empty());
    // Strict delete needs the exact match and priority.
    assert!(p.apply(sel(FlowModCommand::DeleteStrict, "in_port=1"), T0).unwrap().is_empty());
    let c = p.apply(sel(FlowModCommand::DeleteStrict, "priority=10,in_port=1"), T0).unwrap();
    assert_eq!(c.removed.len(), 1);
    assert_eq!(p.n_rules(), 1);
    // Errors: all or nothing.
    let e = p.add_flows_from_str("actions=1\n\nip,nw_dst=1.2.3.999,actions=1\n", &ports(), T0).unwrap_err();
    assert_eq!(e.to_string(), r#"3: nw_dst: "1.2.3.999" is not an IPv4 address or prefix"#);
    assert_eq!(p.n_rules(), 1);
    let e = p.add_flows_from_str("actions=1\nactions=write_actions(group:1)\n", &ports(), T0).unwrap_err();
    assert_eq!(e.to_string(), "2: actions: OFPBAC_BAD_OUT_GROUP: no group 1");
    let e = p.add_flows_from_str("actions=meter:1,output:1\n", &ports(), T0).unwrap_err();
    assert_eq!(e.to_string(), "1: actions: OFPMMFC_UNKNOWN_METER: no meter 1");
    assert_eq!(p.n_rules(), 1);
    let mut bad = FlowMod::add(parse_flow("table=3,actions=1", &ports()).unwrap());
    bad.spec.goto_table = Some(2);
    assert_eq!(p.apply(bad.clone(), T0), Err(Error::BadGoto { table: 3, goto: 2 }));
    bad.spec.table = TABLE_ALL;
    assert_eq!(p.apply(bad, T0), Err(Error::BadTable { table: TABLE_ALL }));
}

#[test]
fn dump_prints_flags_and_instructions() {
    let mut p = Pipeline::new();
    let c = add(
        &mut p,
        "table=4,send_flow_rem,no_byte_counts,ip,actions=meter:1,write_actions(output:2),goto_table:5",
    );
    let line = p.rule(c.added[0]).unwrap().dump_line(T0);
    assert_eq!(
        line,
        "cookie=0x0, duration=0.000s, table=4, n_packets=0, n_bytes=0, send_flow_rem, no_byte_counts, ip \
         actions=meter:1,write_actions(output:2),goto_table:5"
    );
    assert_eq!(parse_flow(&line, &ports()).unwrap(), p.rule(c.added[0]).unwrap().spec());
}

#[test]
fn dump_and_expire() {
    let mut p = Pipeline::new();
    add(&mut p, "priority=10,in_port=1 actions=output:2");
    add(&mut p, "table=2,idle_timeout=5,hard_timeout=60,tcp,tp_dst=80,actions=drop");
    add(&mut p, "table=3,actions=");
    let id = p.table(0).lookup(&key(1, 0, 0, 0)).0.unwrap().id;
    p.credit(id, 3, 180, T0 + Duration::from_secs(1));
    let d = p.dump(&ports(), T0 + Duration::from_millis(1234));
    assert_eq!(
        d,
        vec![
            "cookie=0x0, duration=1.234s, table=0, n_packets=3, n_bytes=180, priority=10,in_port=1 actions=output:2",
            "cookie=0x0, duration=1.234s, table=2, n_packets=0, n_bytes=0, idle_timeout=5, hard_timeout=60, \
             tcp,tp_dst=80 actions=drop",
            "cookie=0x0, duration=1.234s, table=3, n_packets=0, n_bytes=0, actions=drop",
        ]
    );
    // Dump lines parse back to the same rules.
    for (line, r) in d.iter().zip([p.rule(id).unwrap().spec()]) {
        assert_eq!(parse_flow(line, &ports()).unwrap(), r);
    }
    assert!(p.expire(T0 + Duration::from_secs(4)).is_empty());
    let gone = p.expire(T0 + Duration::from_secs(5));
    assert_eq!((gone.len(), gone[0].0.table, gone[0].1), (1, 2, RemovedReason::IdleTimeout));
    assert!(p.expire(T0 + Duration::from_secs(1000)).is_empty());
    assert_eq!(p.n_rules(), 2);
}

#[test]
fn expiry_sees_timed_rules_through_replace_and_delete() {
    let mut p = Pipeline::new();
    add(&mut p, "priority=1,in_port=1,actions=output:2");
    assert_eq!(p.table(0).timed, 0);
    // A timed rule replaced by an untimed one with the same match: nothing left to expire.
    add(&mut p, "hard_timeout=5,priority=2,in_port=2,actions=output:1");
    assert_eq!(p.table(0).timed, 1);
    add(&mut p, "priority=2,in_port=2,actions=output:3");
    assert_eq!(p.table(0).timed, 0);
    assert!(p.expire(T0 + Duration::from_secs(10)).is_empty());
    // ... and the other way round: the replacement expires.
    add(&mut p, "hard_timeout=5,priority=2,in_port=2,actions=output:1");
    add(&mut p, "idle_timeout=3,priority=3,in_port=3,actions=drop");
    assert_eq!(p.table(0).timed, 2);
    let gone = p.expire(T0 + Duration::from_secs(5));
    assert_eq!(gone.iter().map(|(r, _)| r.priority).collect::<Vec<_>>(), vec![2, 3]);
    assert_eq!((p.table(0).timed, p.n_rules()), (0, 1));
    // A delete of a timed rule takes it out of the count.
    add(&mut p, "idle_timeout=3,priority=3,in_port=3,actions=drop");
    p.apply(sel(FlowModCommand::Delete, "in_port=3"), T0).unwrap();
    assert_eq!((p.table(0).timed, p.n_rules()), (0, 1));
}

#[test]
fn scales_to_100k_rules() {
    let mut p = Pipeline::new();
    let mut text = String::new();
    for i in 0..100_000u32 {
        text += &format!(
            "priority={},tcp,nw_src=10.{}.{}.1,nw_dst=10.0.0.2,tp_src={},tp_dst=80,actions=output:2\n",
            i % 7,
            (i >> 8) & 0xff,
            i & 0xff,
            i % 50_000
        );
    }
    text += "priority=0,actions=drop\n";
    assert_eq!(p.add_flows_from_str(&text, &ports(), T0).unwrap(), 100_001);
    assert_eq!(p.table(0).n_subtables(), 2);
    let mut k = key(1, 0x0800, 10, 80);
    k.nw_proto = 6;
    k.nw_src[..4].copy_from_slice(&[10, 1, 2, 1]);
    k.nw_dst[..4].copy_from_slice(&[10, 0, 0, 2]);
    k.tp_src = 258;
    for _ in 0..10_000 {
        let (r, _) = p.table(0).lookup(&k);
        assert_eq!(r.unwrap().priority, (258 % 7) as u16);
    }
    let c = p.apply(sel(FlowModCommand::Delete, "tcp"), T0).unwrap();
    assert_eq!((c.removed.len(), p.n_rules()), (100_000, 1));
}

/// A random rule from a small field space, so rules overlap.
fn arb_rule() -> impl Strategy<Value = FlowSpec> {
    (
        prop::option::of(0u32..3),
        prop::option::of(prop::sample::select(vec![0x0800u16, 0x0806])),
        (0u8..4, prop::sample::select(vec![0u8, 0xff, 0xfe, 0xfc])),
        (0u16..4, prop::sample::select(vec![0u16, 0xffff, 0xfffe])),
        0u16..4,
        0u32..4,
    )
        .prop_map(|(in_port, dl_type, (src, src_m), (tp, tp_m), priority, out)| {
            let mut k = FlowKey::default();
            let mut m = FlowMask::catchall();
            if let Some(p) = in_port {
                k.in_port = p;
                m.0.in_port = !0;
            }
            if let Some(t) = dl_type {
                k.dl_type = t;
                m.0.dl_type = !0;
            }
            k.nw_src[0] = src;
            m.0.nw_src[0] = src_m;
            k.tp_dst = tp;
            m.0.tp_dst = tp_m;
            FlowSpec {
                priority,
                matches: Match::new(k, m),
                actions: vec![OfAction::Output(out)],
                ..FlowSpec::default()
            }
        })
}

pub(crate) fn arb_key() -> impl Strategy<Value = FlowKey> {
    (0u32..4, prop::sample::select(vec![0x0800u16, 0x0806, 0x86dd]), 0u8..8, 0u16..8)
        .prop_map(|(a, b, c, d)| key(a, b, c, d))
}

fn naive(t: &FlowTable, k: &FlowKey) -> Option<RuleId> {
    t.rules()
        .filter(|r| r.matches.matches(k))
        .max_by(|a, b| a.priority.cmp(&b.priority).then(b.id.cmp(&a.id)))
        .map(|r| r.id)
}

/// `q` with the bits of `p` under `mask`.
pub(crate) fn agree(p: &FlowKey, q: &FlowKey, mask: &FlowMask) -> FlowKey {
    let mut out = *q;
    for ((o, a), m) in out.words_mut().iter_mut().zip(p.words()).zip(mask.0.words()) {
        *o = (*o & !m) | (a & m);
    }
    out
}

#[derive(Debug, Clone)]
enum Op {
    Add(FlowSpec),
    DeleteNth(usize),
    DeleteWithin(FlowSpec),
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => arb_rule().prop_map(Op::Add),
        2 => any::<usize>().prop_map(Op::DeleteNth),
        1 => arb_rule().prop_map(Op::DeleteWithin),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
    #[test]
    fn classifier_matches_linear_scan(ops in prop::collection::vec(arb_op(), 0..60),
                                      pkts in prop::collection::vec((arb_key(), arb_key()), 1..40)) {
        let mut p = Pipeline::new();
        for (i, op) in ops.into_iter().enumerate() {
            match op {
                Op::Add(s) => { p.apply(FlowMod::add(s), T0).unwrap(); }
                Op::DeleteNth(n) => {
                    let mut ids: Vec<RuleId> = p.table(0).rules().map(|r| r.id).collect();
                    ids.sort();
                    if !ids.is_empty() {
                        let r = p.rule(ids[n % ids.len()]).unwrap().spec();
                        let fm = FlowMod::new(FlowModCommand::DeleteStrict, r);
                        prop_assert_eq!(p.apply(fm, T0).unwrap().removed.len(), 1);
                    }
                }
                Op::DeleteWithin(s) if i % 3 == 0 => {
                    let fm = FlowMod::new(FlowModCommand::Delete, s);
                    p.apply(fm, T0).unwrap();
                }
                Op::DeleteWithin(_) => {}
            }
            for (k, q) in &pkts {
                let t = p.table(0);
                let (r, mask) = t.lookup(k);
                prop_assert_eq!(r.map(|r| r.id), naive(t, k));
                // Soundness of the examined mask.
                let q = agree(k, q, &mask);
                prop_assert_eq!(t.lookup(&q).0.map(|r| r.id), r.map(|r| r.id));
                prop_assert_eq!(naive(t, &q), r.map(|r| r.id));
            }
        }
    }
}

#[test]
fn a_full_table_refuses_new_rules_and_changes_nothing() {
    let mut p = Pipeline::with_max_flows(2);
    add(&mut p, "priority=10,in_port=1 actions=output:2");
    add(&mut p, "priority=10,in_port=2 actions=output:1");
    let before = p.dump(&ports(), T0);
    let e = p.apply(FlowMod::add(parse_flow("priority=10,in_port=3 actions=drop", &ports()).unwrap()), T0);
    let code = e.unwrap_err().code();
    assert_eq!(code, ErrorCode::OFPFMFC_TABLE_FULL);
    assert_eq!(code.v13(), (5, 1));
    // OpenFlow 1.0 has one code for it: OFPFMFC_ALL_TABLES_FULL (type 3, code 0).
    assert_eq!(code.wire(crate::ofp::OFP10_VERSION), (3, 0));
    assert_eq!((p.n_rules(), p.table_full_count()), (2, 1));
    assert_eq!(p.dump(&ports(), T0), before);
    // Replacing a rule (same match and priority) is not a new rule: allowed when full.
    let c = add(&mut p, "priority=10,in_port=1 actions=output:3");
    assert_eq!((c.added.len(), c.replaced.len(), p.n_rules()), (1, 1, 2));
    // The limit is per table: table 1 still takes rules.
    add(&mut p, "table=1,priority=10,in_port=3 actions=drop");
    assert_eq!(p.n_rules(), 3);
    // A modify that would add a missing rule (OpenFlow 1.0) is refused the same way.
    let mut fm = sel(FlowModCommand::Modify, "table=0,priority=7,in_port=3 actions=drop");
    fm.add_if_missing = true;
    assert_eq!(p.apply(fm, T0).unwrap_err().code(), ErrorCode::OFPFMFC_TABLE_FULL);
    assert_eq!(p.table_full_count(), 2);
    // Room again after a delete.
    p.apply(sel(FlowModCommand::DeleteStrict, "priority=10,in_port=2"), T0).unwrap();
    add(&mut p, "priority=10,in_port=3 actions=drop");
    assert_eq!((p.table(0).len(), p.table_full_count()), (2, 2));
}

#[test]
fn a_flows_file_beyond_the_limit_names_the_line() {
    let mut p = Pipeline::with_max_flows(1);
    let e = p.add_flows_from_str("in_port=1 actions=2\n\nin_port=2 actions=1\n", &ports(), T0).unwrap_err();
    assert_eq!(e.line, 3);
    assert!(e.to_string().contains("OFPFMFC_TABLE_FULL"), "{e}");
    assert_eq!(p.max_flows(), 1);
}
