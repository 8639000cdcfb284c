//! Resource limits: what each bound is, how often it was hit, and the log that tells the
//! operator (sans-IO: the control thread reads the counters and logs what [`LimitLog`] says).
//!
//! Every bounded resource of the switch — rules per OpenFlow table, megaflows, NORMAL's MAC
//! table, the upcall and packet-in queues, the packet-in rate — has a counter of the times it
//! was hit, kept where the hit happens (the poll threads count their own queue drops, the
//! control thread the rest). Nothing is logged where a hit happens: the control thread calls
//! [`LimitLog::observe`] about once a second with the current counters and logs the events it
//! returns: one line the first time a limit is hit, then at most one summary line per limit
//! (and bridge) every [`LOG_EVERY`] while it keeps being hit.

use std::time::{Duration, Instant};

use serde::Serialize;

/// At most one summary line per limit this often.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// A bounded resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Limit {
    /// Rules per OpenFlow table (`--max-flows`); hit = an add refused with `TABLE_FULL`.
    FlowsPerTable,
    /// Megaflows in the datapath (`--max-megaflows`); hit = a translation not installed (its
    /// packet still forwarded, the next one takes the slow path again).
    Megaflows,
    /// NORMAL's MAC table (`--mac-table-size`); hit = an entry evicted or an address not learned.
    MacEntries,
    /// Misses queued to the control thread (`--upcall-queue`); hit = a miss dropped.
    UpcallQueue,
    /// Copies for the controller queued to the control thread (`--packet-in-queue`); hit =
    /// a copy not made.
    PacketInQueue,
    /// Packet-ins per second to the controllers (`--packet-in-rate`); hit = a packet-in not sent.
    PacketInRate,
}

impl Limit {
    /// Every limit, in the order `limits` shows them.
    pub const ALL: [Limit; 6] = [
        Limit::FlowsPerTable,
        Limit::Megaflows,
        Limit::MacEntries,
        Limit::UpcallQueue,
        Limit::PacketInQueue,
        Limit::PacketInRate,
    ];

    /// The name `limits` and the log use.
    pub fn name(self) -> &'static str {
        match self {
            Limit::FlowsPerTable => "flows-per-table",
            Limit::Megaflows => "megaflows",
            Limit::MacEntries => "mac-entries",
            Limit::UpcallQueue => "upcall-queue",
            Limit::PacketInQueue => "packet-in-queue",
            Limit::PacketInRate => "packet-in-rate",
        }
    }

    /// The option that sets it.
    pub fn option(self) -> &'static str {
        match self {
            Limit::FlowsPerTable => "--max-flows",
            Limit::Megaflows => "--max-megaflows",
            Limit::MacEntries => "--mac-table-size",
            Limit::UpcallQueue => "--upcall-queue",
            Limit::PacketInQueue => "--packet-in-queue",
            Limit::PacketInRate => "--packet-in-rate",
        }
    }

    /// What a hit costs, for the log.
    pub fn consequence(self) -> &'static str {
        match self {
            Limit::FlowsPerTable => "flow adds refused with OFPFMFC_TABLE_FULL",
            Limit::Megaflows => "new flows stay in the slow path (no megaflow installed)",
            Limit::MacEntries => "MAC entries evicted or not learned (their frames are flooded)",
            Limit::UpcallQueue => "table misses dropped by the poll threads",
            Limit::PacketInQueue => "packets for the controller dropped by the poll threads",
            Limit::PacketInRate => "packet-ins dropped by the rate limit",
        }
    }
}

/// One limit as it stands: its configured value and how often it was hit so far.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LimitReading {
    pub limit: Limit,
    /// The bridge, for per-bridge limits (flows, MAC entries, packet-in rate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bridge: Option<String>,
    /// The configured bound (entries, or packets per second for the rate).
    pub value: u64,
    /// How often it was hit (a counter that only grows, unless cleared).
    pub hits: u64,
}

/// What to log about one limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LimitEvent {
    /// Hit for the first time (or again after a quiet period of at least [`LOG_EVERY`] with
    /// no new hit and no line).
    First { limit: Limit, bridge: Option<String>, value: u64, hits: u64 },
    /// Still being hit: `new` hits since the last line, `since` ago.
    Ongoing { limit: Limit, bridge: Option<String>, value: u64, new: u64, total: u64, since: Duration },
}

impl LimitEvent {
    /// Logs the event (one `warn` line naming the limit, its option, value and counts).
    pub fn log(&self) {
        match self {
            LimitEvent::First { limit, bridge, value, hits } => tracing::warn!(
                limit = limit.name(),
                bridge = bridge.as_deref().unwrap_or("-"),
                value,
                hits,
                "limit reached: {} {} hit, {} (see `xdpswitch ctl limits`)",
                limit.option(),
                value,
                limit.consequence()
            ),
            LimitEvent::Ongoing { limit, bridge, value, new, total, since } => tracing::warn!(
                limit = limit.name(),
                bridge = bridge.as_deref().unwrap_or("-"),
                value,
                new,
                total,
                "limit still reached: {} {} hit {new} more times in the last {:.0} s ({total} in all)",
                limit.option(),
                value,
                since.as_secs_f64()
            ),
        }
    }
}

/// Per (limit, bridge): the count last logged and when.
#[derive(Clone, Debug)]
struct Logged {
    limit: Limit,
    bridge: Option<String>,
    hits: u64,
    at: Instant,
}

/// Decides what to log from successive readings of the counters. See the module docs.
#[derive(Debug, Default)]
pub struct LimitLog {
    logged: Vec<Logged>,
}

impl LimitLog {
    /// A log that has said nothing yet.
    pub fn new() -> LimitLog {
        LimitLog::default()
    }

    /// Compares `readings` with what was last logged and returns the lines due at `now`: a
    /// `First` for a limit hit that was never logged, an `Ongoing` for one whose count grew
    /// and whose last line is at least [`LOG_EVERY`] old. A counter that went down (cleared)
    /// is taken as the new baseline without a line.
    pub fn observe(&mut self, now: Instant, readings: &[LimitReading]) -> Vec<LimitEvent> {
        let mut out = Vec::new();
        for r in readings {
            let pos = self.logged.iter().position(|l| l.limit == r.limit && l.bridge == r.bridge);
            match pos {
                None if r.hits > 0 => {
                    out.push(LimitEvent::First {
                        limit: r.limit,
                        bridge: r.bridge.clone(),
                        value: r.value,
                        hits: r.hits,
                    });
                    self.logged.push(Logged {
                        limit: r.limit,
                        bridge: r.bridge.clone(),
                        hits: r.hits,
                        at: now,
                    });
                }
                None => {}
                Some(i) => {
                    let l = &mut self.logged[i];
                    if r.hits < l.hits {
                        l.hits = r.hits;
                    } else if r.hits > l.hits && now.duration_since(l.at) >= LOG_EVERY {
                        out.push(LimitEvent::Ongoing {
                            limit: r.limit,
                            bridge: r.bridge.clone(),
                            value: r.value,
                            new: r.hits - l.hits,
                            total: r.hits,
                            since: now.duration_since(l.at),
                        });
                        (l.hits, l.at) = (r.hits, now);
                    }
                }
            }
        }
        out
    }
}

/// `limits` as text: one line per limit (and bridge): name, option, value, hits.
pub fn format_limits(readings: &[LimitReading]) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(s, "{:<16} {:<8} {:<19} {:>12} {:>12}", "limit", "bridge", "option", "value", "hits");
    for r in readings {
        let _ = writeln!(
            s,
            "{:<16} {:<8} {:<19} {:>12} {:>12}",
            r.limit.name(),
            r.bridge.as_deref().unwrap_or("-"),
            r.limit.option(),
            r.value,
            r.hits
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(limit: Limit, hits: u64) -> LimitReading {
        LimitReading { limit, bridge: None, value: 10, hits }
    }

    #[test]
    fn one_line_when_first_hit_then_one_summary_per_interval() {
        let mut log = LimitLog::new();
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        // Nothing hit: nothing said.
        assert!(log.observe(t0, &[reading(Limit::Megaflows, 0)]).is_empty());
        // First hit: one line with the count.
        assert_eq!(
            log.observe(t0 + s, &[reading(Limit::Megaflows, 3)]),
            [LimitEvent::First { limit: Limit::Megaflows, bridge: None, value: 10, hits: 3 }]
        );
        // Still being hit, but within 10 s of the last line: silent.
        for i in 2..11 {
            assert!(log.observe(t0 + s * i, &[reading(Limit::Megaflows, 3 + u64::from(i))]).is_empty());
        }
        // 10 s after the first line: one summary of everything since.
        assert_eq!(
            log.observe(t0 + s * 11, &[reading(Limit::Megaflows, 100)]),
            [LimitEvent::Ongoing {
                limit: Limit::Megaflows,
                bridge: None,
                value: 10,
                new: 97,
                total: 100,
                since: s * 10
            }]
        );
        // No new hits: no line, however long it stays quiet.
        assert!(log.observe(t0 + s * 60, &[reading(Limit::Megaflows, 100)]).is_empty());
        // Hit again after the quiet spell: a summary at once (its last line is old).
        let ev = log.observe(t0 + s * 61, &[reading(Limit::Megaflows, 101)]);
        assert!(matches!(ev[..], [LimitEvent::Ongoing { new: 1, total: 101, .. }]), "{ev:?}");
    }

    #[test]
    fn limits_and_bridges_are_logged_apart_and_a_cleared_counter_is_a_new_baseline() {
        let mut log = LimitLog::new();
        let t0 = Instant::now();
        let b = |name: &str, hits| LimitReading {
            limit: Limit::FlowsPerTable,
            bridge: Some(name.to_string()),
            value: 5,
            hits,
        };
        let ev = log.observe(t0, &[b("br0", 1), b("br1", 0), reading(Limit::UpcallQueue, 7)]);
        assert_eq!(ev.len(), 2);
        assert!(
            matches!(&ev[0], LimitEvent::First { limit: Limit::FlowsPerTable, bridge: Some(n), .. } if n == "br0")
        );
        assert!(matches!(ev[1], LimitEvent::First { limit: Limit::UpcallQueue, hits: 7, .. }));
        // br1's first hit is its own first line, even right after br0's.
        let ev = log.observe(t0 + Duration::from_secs(1), &[b("br0", 2), b("br1", 1)]);
        assert!(matches!(&ev[..], [LimitEvent::First { bridge: Some(n), hits: 1, .. }] if n == "br1"));
        // pmd-stats-clear: the upcall drops fall to 0; counting resumes from there.
        assert!(log.observe(t0 + Duration::from_secs(2), &[reading(Limit::UpcallQueue, 0)]).is_empty());
        let ev = log.observe(t0 + Duration::from_secs(20), &[reading(Limit::UpcallQueue, 4)]);
        assert!(matches!(ev[..], [LimitEvent::Ongoing { new: 4, total: 4, .. }]), "{ev:?}");
    }

    #[test]
    fn the_table_names_every_limit_with_its_option() {
        let rs: Vec<LimitReading> = Limit::ALL.iter().map(|&l| reading(l, 2)).collect();
        let text = format_limits(&rs);
        assert_eq!(text.lines().count(), 1 + Limit::ALL.len());
        for l in Limit::ALL {
            let line = text.lines().find(|x| x.starts_with(l.name())).unwrap();
            assert!(line.contains(l.option()) && line.trim_end().ends_with('2'), "{line}");
        }
        let json = serde_json::to_value(&rs[0]).unwrap();
        assert_eq!(json, serde_json::json!({"limit": "flows-per-table", "value": 10, "hits": 2}));
    }
}
