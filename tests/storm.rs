//! End to end: a flow-mod storm while the switch forwards. A raw OpenFlow 1.3 client
//! (`support::ofraw`) pipelines adds, modifies and strict and non-strict deletes of
//! overlapping rules at several priorities; every `XS_STORM_BATCH` flow-mods it changes the
//! rule that marker traffic follows (rotating through add-replace, a higher-priority add,
//! non-strict modify, modify-strict + delete-strict), sends a barrier, and once the barrier is
//! answered sends marker datagrams (`support::markers`). The destinations rotate over three
//! hosts that share one IP address, so a marker that went the *old* way (the rule before its
//! barrier) is told apart from one that went the way of a *later* change. A marker is
//! "received" by the switch only when a poll thread reads it, which under load can be a few
//! phases after the sender handed it to the kernel; so before the rotation comes back to the
//! host a phase's rule replaced (two phases later), the test waits until that phase's
//! markers have all arrived somewhere.
//!
//! Asserted: no marker took the rule its barrier replaced; no flow-mod was refused; the
//! switch answers OpenFlow and ctl after the storm and exits cleanly; RSS after a second,
//! identical storm is within a margin of RSS after the first (see [`rss_margin_kib`]).
//! Printed, not asserted: flow-mods per second, background loss, markers that arrived late
//! (took a later rule) or not at all.
//!
//! Env: `XS_STORM_SECS` (default 5) seconds per storm, `XS_STORM_BATCH` (500) flow-mods
//! between barriers, `XS_STORM_MARKERS` (5) markers per barrier, `XS_STORM_PPS` (2000)
//! background datagrams per second, `XS_STORM_ARGS` more switch options; `XS_STORM_OPS` (which
//! storm operations) and `XS_STORM_CHECK` (dump the marker rules after every barrier) help
//! narrow a failure. `benches/storm.sh` runs it for minutes.
//!
//! Run as root: `cargo test --release --test storm -- --test-threads=1 --nocapture`.

mod support;

use std::time::{Duration, Instant};

use support::dut::free_port;
use support::markers::{self, MarkerSender};
use support::ofraw::OfRaw;
use support::*;
use xdpswitch::netns::Host;
use xdpswitch::ofp::flow::{
    OFPFC_ADD, OFPFC_DELETE, OFPFC_DELETE_STRICT, OFPFC_MODIFY, OFPFC_MODIFY_STRICT, OFPTT_ALL,
};
use xdpswitch::ofp::port::{OFPP_ANY, OFP_NO_BUFFER};
use xdpswitch::ofp::{Action, Body, FlowMod, Instruction, Message, Oxm, OxmField, OFP13_VERSION};

/// `OFPG_ANY`.
const OFPG_ANY: u32 = 0xffff_ffff;
/// The UDP port of marker and background traffic.
const PORT: u16 = 9000;
/// Cookie of the rules markers follow; storm rules carry `STORM | group << 8 | n`.
const MARKER: u64 = 0x4d00_0000_0000_0000;
const STORM: u64 = 0x5700_0000_0000_0000;
/// Selects one group of storm rules (non-strict modify and delete).
const GROUP_MASK: u64 = 0xffff_ffff_ffff_ff00;
/// Selects every storm rule.
const STORM_MASK: u64 = 0xff00_0000_0000_0000;
/// Priorities of the marker rules: the base rule and an override above it.
const BASE: u16 = 100;
const OVERRIDE: u16 = 200;

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// xorshift64*: the storm is the same for the same seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The lab: h0 sends; h1, h2, h3 (switch ports 2, 3, 4) all answer to h1's address.
/// Fields drop in this order: the connection, the switch, then the hosts.
struct Lab {
    of: OfRaw,
    sw: SwitchProc,
    h: Vec<Host>,
}

/// Apply-actions that send to host `d` (1..=3): port d+1, rewriting the destination MAC for
/// the hosts that only borrow h1's address.
fn to_host(h: &[Host], d: usize) -> Vec<Instruction> {
    let mut acts = Vec::new();
    if d != 1 {
        acts.push(Action::SetField(Oxm::exact(OxmField::EthDst, mac_value(&h[d].mac))));
    }
    acts.push(Action::Output { port: d as u32 + 1, max_len: 0xffff });
    vec![Instruction::ApplyActions(acts)]
}

fn mac_value(mac: &str) -> u128 {
    mac_bytes(mac).iter().fold(0u128, |v, b| (v << 8) | u128::from(*b))
}

fn marker_match() -> Vec<Oxm> {
    vec![
        Oxm::exact(OxmField::InPort, 1),
        Oxm::exact(OxmField::EthType, 0x0800),
        Oxm::exact(OxmField::IpProto, 17),
        Oxm::exact(OxmField::UdpDst, u128::from(PORT)),
    ]
}

fn fm(
    command: u8,
    priority: u16,
    cookie: u64,
    cookie_mask: u64,
    match_: Vec<Oxm>,
    ins: Vec<Instruction>,
) -> Body {
    Body::FlowMod(FlowMod {
        cookie,
        cookie_mask,
        table_id: if matches!(command, OFPFC_DELETE | OFPFC_DELETE_STRICT) { OFPTT_ALL } else { 0 },
        command,
        priority,
        buffer_id: OFP_NO_BUFFER,
        out_port: OFPP_ANY,
        out_group: OFPG_ANY,
        match_,
        instructions: ins,
        ..FlowMod::default()
    })
}

/// A storm rule: either overlapping the marker traffic below the marker rules' priority, or
/// on another UDP port at any priority. Few distinct matches, so adds often replace.
fn storm_rule(rng: &mut Rng) -> (u16, Vec<Oxm>) {
    let udp = |dport: u16| {
        vec![
            Oxm::exact(OxmField::InPort, 1),
            Oxm::exact(OxmField::EthType, 0x0800),
            Oxm::exact(OxmField::IpProto, 17),
            Oxm::exact(OxmField::UdpDst, u128::from(dport)),
        ]
    };
    match rng.below(4) {
        // Marker traffic, lower priority: must never win.
        0 => (1 + rng.below(BASE as u64 - 1) as u16, udp(PORT)),
        // Wider: every UDP packet from port 1, lower priority.
        1 => (
            1 + rng.below(BASE as u64 - 1) as u16,
            vec![
                Oxm::exact(OxmField::InPort, 1),
                Oxm::exact(OxmField::EthType, 0x0800),
                Oxm::exact(OxmField::IpProto, 17),
            ],
        ),
        // Other ports, any priority (also above the marker rules).
        _ => (1 + rng.below(400) as u16, udp(20000 + rng.below(256) as u16)),
    }
}

fn storm_actions(h: &[Host], rng: &mut Rng) -> Vec<Instruction> {
    match rng.below(4) {
        0 => Vec::new(), // drop
        n => to_host(h, n as usize),
    }
}

/// One storm's results.
#[derive(Debug, Default)]
struct StormResult {
    flow_mods: u64,
    secs: f64,
    phases: usize,
    /// Markers that took the rule their barrier replaced (must be 0).
    stale: u64,
    /// Markers that took a later rule (allowed: the next change came before they were
    /// forwarded).
    later: u64,
    missing: u64,
    /// Phases some of whose markers took the replaced rule: (phase, how many).
    stale_phases: Vec<(usize, u64)>,
    markers_sent: u64,
    bg_sent: u64,
    bg_got: u64,
    errors: Vec<Message>,
}

/// The marker rules as the test believes them to be: base destination, override if any.
struct MarkerModel {
    base: usize,
    over: Option<usize>,
}
impl MarkerModel {
    fn effective(&self) -> usize {
        self.over.unwrap_or(self.base)
    }
}

/// Sends the flow-mods that make `next` the marker destination, by method `phase % 4`.
fn flip(lab: &mut Lab, m: &mut MarkerModel, phase: usize, next: usize) -> u64 {
    let (h, of) = (&lab.h, &mut lab.of);
    let mut n = 0;
    let mut send = |b: Body| {
        of.send(b);
        n += 1;
    };
    match phase % 4 {
        0 => {
            // Add replacing the base rule; drop the override.
            send(fm(OFPFC_ADD, BASE, MARKER, 0, marker_match(), to_host(h, next)));
            m.base = next;
            if m.over.take().is_some() {
                send(fm(OFPFC_DELETE_STRICT, OVERRIDE, MARKER, u64::MAX, marker_match(), Vec::new()));
            }
        }
        1 => {
            // A higher-priority add over the base rule.
            send(fm(OFPFC_ADD, OVERRIDE, MARKER, 0, marker_match(), to_host(h, next)));
            m.over = Some(next);
        }
        2 => {
            // Non-strict modify of every marker rule (selected by cookie).
            send(fm(OFPFC_MODIFY, 0, MARKER, u64::MAX, marker_match(), to_host(h, next)));
            m.base = next;
            if m.over.is_some() {
                m.over = Some(next);
            }
        }
        _ => {
            // Modify-strict of the base rule, then delete-strict of the override.
            send(fm(OFPFC_MODIFY_STRICT, BASE, MARKER, u64::MAX, marker_match(), to_host(h, next)));
            m.base = next;
            if m.over.take().is_some() {
                send(fm(OFPFC_DELETE_STRICT, OVERRIDE, MARKER, u64::MAX, marker_match(), Vec::new()));
            }
        }
    }
    n
}

/// Runs one storm: `max_phases` barriers at most, `secs` at most.
fn storm(lab: &mut Lab, seed: u64, secs: f64, max_phases: usize) -> StormResult {
    let batch: usize = env("XS_STORM_BATCH", 500);
    let n_markers: u32 = env("XS_STORM_MARKERS", 5);
    let pps: u32 = env("XS_STORM_PPS", 2000);
    // Which storm operations run (digits 0-9, see below; debugging aid).
    let ops: Vec<u8> = env("XS_STORM_OPS", "0123456789".to_string()).into_bytes();
    let check_tables = std::env::var("XS_STORM_CHECK").is_ok();
    let dst = lab.h[1].addr().to_string();
    let rx: Vec<_> = (1..=3).map(|i| markers::LiveReceiver::start(&lab.h[i], PORT, secs + 6.0)).collect();
    let rx_end = Instant::now() + Duration::from_secs_f64(secs + 6.5);
    let bg = markers::background_sender(&lab.h[0], &dst, PORT, secs + 1.0, (pps / 100).max(1));
    let mut msend = MarkerSender::start(&lab.h[0], &dst, PORT);
    let mut rng = Rng(seed | 1);
    // Start from a known marker state: base rule to h1, no override.
    lab.of.send(fm(OFPFC_DELETE_STRICT, OVERRIDE, MARKER, u64::MAX, marker_match(), Vec::new()));
    lab.of.send(fm(OFPFC_ADD, BASE, MARKER, 0, marker_match(), to_host(&lab.h, 1)));
    let mut r = StormResult { errors: lab.of.barrier(), ..StormResult::default() };
    let mut model = MarkerModel { base: 1, over: None };
    // Per phase: (destination in force, the one it replaced).
    let mut expect: Vec<(usize, usize)> = Vec::new();
    let start = Instant::now();
    let mut live: Vec<(u16, Vec<Oxm>)> = Vec::new();
    while expect.len() < max_phases && start.elapsed().as_secs_f64() < secs {
        for _ in 0..batch {
            let op = rng.below(10);
            if !ops.contains(&(op as u8 + b'0')) {
                continue;
            }
            let body = match op {
                0..=3 => {
                    let (prio, m) = storm_rule(&mut rng);
                    let cookie = STORM | (rng.below(16) << 8) | rng.below(256);
                    if live.len() < 4000 {
                        live.push((prio, m.clone()));
                    }
                    fm(OFPFC_ADD, prio, cookie, 0, m, storm_actions(&lab.h, &mut rng))
                }
                4 | 5 if !live.is_empty() => {
                    let (prio, m) = live[rng.below(live.len() as u64) as usize].clone();
                    fm(OFPFC_MODIFY_STRICT, prio, STORM, STORM_MASK, m, storm_actions(&lab.h, &mut rng))
                }
                6 => {
                    let g = STORM | (rng.below(16) << 8);
                    let m = vec![Oxm::exact(OxmField::EthType, 0x0800), Oxm::exact(OxmField::IpProto, 17)];
                    fm(OFPFC_MODIFY, 0, g, GROUP_MASK, m, storm_actions(&lab.h, &mut rng))
                }
                7 | 8 if !live.is_empty() => {
                    let i = rng.below(live.len() as u64) as usize;
                    let (prio, m) = live.swap_remove(i);
                    fm(OFPFC_DELETE_STRICT, prio, STORM, STORM_MASK, m, Vec::new())
                }
                _ => {
                    // Non-strict delete of one group on one of the other ports.
                    let g = STORM | (rng.below(16) << 8);
                    let (_, m) = storm_rule(&mut rng);
                    fm(OFPFC_DELETE, 0, g, GROUP_MASK, m, Vec::new())
                }
            };
            lab.of.send(body);
            r.flow_mods += 1;
        }
        let before = model.effective();
        let next = before % 3 + 1;
        // The destinations rotate with period 3, so phase p's rule sends to the host phase
        // p-2's rule replaced: a marker of phase p-2 still queued in the kernel on its way
        // into the switch (sent, not yet received by a poll thread) would take phase p's
        // rule and look stale. So phase p-2's markers must all be in first (or, lost, be
        // given up on after a while and counted missing at the end).
        if let Some(p) = expect.len().checked_sub(2).map(|p| p.to_string()) {
            let deadline = Instant::now() + Duration::from_secs(2);
            while rx.iter().map(|r| r.markers_now(&p)).sum::<u64>() < u64::from(n_markers)
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        r.flow_mods += flip(lab, &mut model, expect.len(), next);
        assert_eq!(model.effective(), next);
        r.errors.extend(lab.of.barrier());
        // The barrier is answered: every marker from now on must take `next`.
        msend.send(&expect.len().to_string(), n_markers);
        if check_tables {
            // Debugging aid: the marker rules as the switch has them, next to the model.
            let dump = lab.sw.ctl(&["dump-flows"]);
            let rules: Vec<&str> = dump.lines().filter(|l| l.contains("cookie=0x4d")).collect();
            eprintln!("phase {} model base {} over {:?}: {rules:?}", expect.len(), model.base, model.over);
        }
        r.markers_sent += u64::from(n_markers);
        expect.push((next, before));
    }
    r.secs = start.elapsed().as_secs_f64();
    r.phases = expect.len();
    // Clean up: every storm rule goes, so the next storm starts where this one did.
    lab.of.send(fm(OFPFC_DELETE, 0, STORM, STORM_MASK, Vec::new(), Vec::new()));
    r.errors.extend(lab.of.barrier());
    drop(msend);
    // Keep reading (answering the switch's echo requests) until the receivers are done.
    let late = lab.of.collect(rx_end.saturating_duration_since(Instant::now()));
    r.errors.extend(late.into_iter().filter(|m| matches!(m.body, Body::Error(_))));
    r.bg_sent = markers::background_sent(bg);
    let got: Vec<serde_json::Value> = rx.into_iter().map(markers::LiveReceiver::finish).collect();
    r.bg_got = got.iter().map(markers::background).sum();
    for (phase, &(now, old)) in expect.iter().enumerate() {
        let p = phase.to_string();
        let right = markers::markers(&got[now - 1], &p);
        let stale = markers::markers(&got[old - 1], &p);
        let later = markers::markers(&got[6 - now - old - 1], &p);
        r.stale += stale;
        r.later += later;
        r.missing += u64::from(n_markers).saturating_sub(right + stale + later);
        if stale > 0 {
            r.stale_phases.push((phase, stale));
        }
    }
    r
}

/// How much RSS may grow from the first storm to the second: the second replays the same
/// flow-mods into the same empty tables, so every table and map reaches the same peak and
/// nothing should grow. What may still move: the allocator keeps freed pages (glibc's
/// per-thread arenas and trim threshold) and reuses them unevenly, hash maps keep their
/// grown capacity, and kernel-side pages of the sockets are counted when touched. 4 MiB or
/// 10 % of the first figure, whichever is larger, covers that; a leak per flow-mod (tens of
/// thousands of them per storm) would exceed it.
fn rss_margin_kib(first: u64) -> u64 {
    (4 * 1024).max(first / 10)
}

#[test]
fn flow_mod_storm_under_traffic_keeps_barriers_and_memory() {
    if skip_unless_root() {
        return;
    }
    let secs: f64 = env("XS_STORM_SECS", 5.0);
    let h = hosts(4, 1);
    for i in 2..=3 {
        h[i].exec(&["ip", "addr", "add", &format!("{}/32", h[1].addr()), "dev", "eth0"]).unwrap();
    }
    neighbours(&h[0], &h[1]).unwrap();
    let port = free_port();
    let listen = format!("ptcp:{port}");
    let ports: Vec<&str> = h.iter().map(|x| x.sw_if.as_str()).collect();
    // XS_STORM_ARGS: more `xdpswitch run` options (e.g. `--emc-entries 0`), to narrow a failure.
    let more = std::env::var("XS_STORM_ARGS").unwrap_or_default();
    let mut args = vec!["--listen", listen.as_str()];
    args.extend(more.split_whitespace());
    let sw = SwitchProc::start_logged(&ports, "", &args);
    let of = OfRaw::connect(([127, 0, 0, 1], port).into(), &[OFP13_VERSION]);
    let mut lab = Lab { of, sw, h };

    let first = storm(&mut lab, 7, secs, usize::MAX);
    std::thread::sleep(Duration::from_secs(1));
    let rss1 = lab.sw.rss_kib();
    // The same flow-mods again, however long they take (the time bound only guards a hang).
    let second = storm(&mut lab, 7, secs * 2.0 + 5.0, first.phases);
    std::thread::sleep(Duration::from_secs(1));
    let rss2 = lab.sw.rss_kib();

    for (name, r) in [("first", &first), ("second", &second)] {
        let rate = r.flow_mods as f64 / r.secs.max(1e-9);
        let loss = r.bg_sent.saturating_sub(r.bg_got);
        eprintln!(
            "storm {name}: {} flow-mods in {:.2} s = {rate:.0} flow-mods/s, {} barriers; markers: {} sent, \
             {} stale, {} took a later rule, {} missing; background: {} sent, {} received, {loss} lost ({:.3} %)",
            r.flow_mods,
            r.secs,
            r.phases,
            r.markers_sent,
            r.stale,
            r.later,
            r.missing,
            r.bg_sent,
            r.bg_got,
            100.0 * loss as f64 / r.bg_sent.max(1) as f64
        );
        assert!(r.errors.is_empty(), "storm {name}: the switch refused flow-mods: {:?}", &r.errors[..1]);
    }
    let stats = lab.sw.ctl(&["pmd-stats"]);
    eprintln!("RSS after the first storm {rss1} KiB, after the second {rss2} KiB\n{stats}");
    assert!(first.phases > 0 && second.phases == first.phases);
    for (name, r) in [("first", &first), ("second", &second)] {
        assert!(
            r.stale_phases.is_empty(),
            "storm {name}: markers took the rule their barrier replaced in {} phases, (phase, markers): {:?}",
            r.stale_phases.len(),
            &r.stale_phases[..r.stale_phases.len().min(10)]
        );
    }
    assert!(
        rss2 <= rss1 + rss_margin_kib(rss1),
        "RSS grew from {rss1} KiB to {rss2} KiB over an identical storm (margin {} KiB)",
        rss_margin_kib(rss1)
    );
    // Still alive and answering on both channels; only the marker rules are left.
    assert!(lab.of.echo_works(), "OpenFlow connection lost");
    let flows = lab.sw.ctl(&["dump-flows"]);
    let left = flows.lines().filter(|l| l.contains("actions=") && !l.contains("cookie=0x4d")).count();
    assert_eq!(left, 0, "{flows}");
    assert!(lab.sw.is_running());
}
