#!/usr/bin/env python3
"""NORMAL (MAC learning) benchmark: generator namespace -> DUT -> sink namespace, over veth.

The topology, DUT start/stop and cleanup are p2p.py's. Each NORMAL DUT first learns the
1 000 destination MACs on its sink port: the sink namespace sends a burst from those 1 000
source MACs (`pktgen send --src-macs 1000 --count`). Then the generator sends frames from
1 000 source MACs to those 1 000 destination MACs (`--macs 1000`), so the DUT forwards known
unicast, and learns (or refreshes) the 1 000 sources on the generator port.

DUTs, one after another in the same run (the same traffic and pre-learning for every one):

  xdpswitch          `xdpswitch run`, in_port=1,actions=output:2 (the static-rule reference)
  xdpswitch-normal   `xdpswitch run`, actions=NORMAL (known unicast runs in its XDP program)
  xdpswitch-user-normal  the same with `--offload off` (every packet through user space)
  ovs-afxdp          Open vSwitch userspace datapath, afxdp ports, the same static rule
  ovs-afxdp-normal   the same OVS, actions=NORMAL
  bare, xdp-redirect ceilings, as in p2p.py

Reported per DUT: Mpps median and spread over --reps, the ratio to the static rule of the same
switch, and to OVS NORMAL; the MAC table size after pre-learning and after the runs
(`xdpswitch ctl fdb-show`, `ovs-appctl fdb/show`).

Learning flood (NORMAL DUTs, --flood-secs > 0): the generator sends a fresh random source MAC
per frame at full rate (`--random-src-mac`) to the 1 000 learned destinations; the learned /
evicted counters (`xdpswitch ctl fdb-stats`, `ovs-appctl fdb/stats-show`) are sampled every
half second and give MACs learned per second. Meanwhile a second, established flow runs the
other way at a fixed rate (sink namespace -> generator namespace, AF_XDP sender, XDP sink in
the generator namespace): its delivered rate shows what the flood costs other traffic.

Everything created (namespaces, OVS daemons and their persistent taps, XDP programs) is
removed at the end, also on Ctrl-C.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import p2p  # noqa: E402  (the topology, DUTs and helpers)
from p2p import XS, sh  # noqa: E402

ALL_DUTS = ["xdpswitch", "xdpswitch-normal", "xdpswitch-user-normal", "ovs-afxdp", "ovs-afxdp-normal", "bare", "xdp-redirect"]
GEN_BASE = "02:10:00:00:00:00"   # generator-side MACs (learned on port 1)
SINK_BASE = "02:20:00:00:00:00"  # sink-side MACs (learned on port 2 by the pre-learning burst)


class NormalDut(p2p.Dut):
    """p2p's DUTs, plus the NORMAL variants and their MAC table readers."""

    def __init__(self, name, topo, tmp):
        super().__init__(name, topo, tmp)
        self.base = name.replace("-normal", "")
        self.normal = name.endswith("-normal")
        self.ctl = os.path.join(tmp, "xs.ctl")

    def start(self):
        if self.base.startswith("xdpswitch") and self.normal:
            flows = os.path.join(self.tmp, "flows-normal.txt")
            with open(flows, "w") as f:
                f.write("priority=0,actions=NORMAL\n")
            extra = os.environ.get("XS_RUN_ARGS", "").split()
            if self.base == "xdpswitch-user":
                extra = ["--offload", "off", *extra]
            self.spawn([XS, "run", "--port", self.t.d0, "--port", self.t.d1, "--flows", flows,
                        "--ctl", self.ctl, "--log", "warn", *extra])
            time.sleep(1.0)
        elif self.base == "ovs-afxdp":
            self.start_ovs(True)
            if self.normal:
                of = ["ovs-ofctl", "-O", "OpenFlow13"]
                sh(*of, "del-flows", "xbbr0", env=self.ovs_env)
                sh(*of, "add-flow", "xbbr0", "priority=0,actions=NORMAL", env=self.ovs_env)
            time.sleep(1.0)
        else:
            super().start()

    def xs_ctl(self, *args):
        return sh(XS, "ctl", "--ctl", self.ctl, *args)

    def appctl(self, *args):
        return sh("ovs-appctl", *args, env=self.ovs_env)

    def fdb_entries(self):
        """Entries in the MAC table, or None for a DUT without one."""
        if not self.normal:
            return None
        if self.base.startswith("xdpswitch"):
            out = self.xs_ctl("fdb-show")
        else:
            out = self.appctl("fdb/show", "xbbr0")
        return sum(1 for line in out.splitlines()[1:] if line.strip())

    def fdb_has(self, mac):
        out = self.xs_ctl("fdb-show") if self.base.startswith("xdpswitch") else self.appctl("fdb/show", "xbbr0")
        return mac in out.lower()

    def port1_rx(self):
        """Frames the switch took in on port 1 (the generator's), or None: OVS's afxdp rx
        counter adds the kernel's device counters (frames its rings dropped included)."""
        if self.base != "xdpswitch":
            return None
        ports = json.loads(self.xs_ctl("--json", "dump-ports"))
        return next(p["stats"]["rx_packets"] for p in ports if p["port"] == 1)

    def main_pid(self):
        """The switch process (xdpswitch run, or ovs-vswitchd)."""
        if self.base.startswith("xdpswitch"):
            return self.procs[0].pid if self.procs else None
        try:
            return int(open(f"{self.ovs_dir}/ovs-vswitchd.pid").read().strip())
        except (OSError, ValueError, TypeError):
            return None

    def fdb_counters(self):
        """{'entries', 'learned', 'evicted', ...} from fdb-stats; learned is None when the
        switch has no such counter (then the entries alone are sampled)."""
        if self.base.startswith("xdpswitch"):
            try:
                j = json.loads(self.xs_ctl("--json", "fdb-stats"))
                return {k: j.get(k) for k in ("entries", "learned", "evicted", "expired", "moved", "learn_dropped")}
            except (RuntimeError, ValueError):
                return {"entries": self.fdb_entries(), "learned": None, "evicted": None}
        out = self.appctl("fdb/stats-show", "xbbr0")

        def field(label):
            m = re.search(label + r"[^:]*:\s*(\d+)", out)
            return int(m.group(1)) if m else None
        return {"entries": field(r"Current/maximum MAC entries in the table"),
                "learned": field(r"Total number of learned MAC entries"),
                "evicted": field(r"Total number of evicted MAC entries"),
                "expired": field(r"Total number of expired MAC entries"),
                "moved": field(r"Total number of port moved MAC entries")}


def thread_ticks(pid):
    """{thread name without its number: CPU ticks (user + system)} of process `pid`."""
    ticks = {}
    if pid is None:
        return ticks
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = open(f"/proc/{pid}/task/{tid}/stat").read()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")].split("/id:")[0].rstrip("0123456789-")
        fields = stat[stat.rindex(")") + 2:].split()
        ticks[name] = ticks.get(name, 0) + int(fields[11]) + int(fields[12])
    return ticks


def cpu_shares(before, after, seconds):
    """Each thread group's share of one CPU between two `thread_ticks`, busiest first."""
    hz = os.sysconf("SC_CLK_TCK")
    shares = {k: (after[k] - before.get(k, 0)) / hz / seconds for k in after}
    return {k: round(v, 2) for k, v in sorted(shares.items(), key=lambda kv: -kv[1]) if v >= 0.02}


def ns_xs(ns, *args):
    return ["ip", "netns", "exec", ns, XS, "--log", "warn", "pktgen", *args]


def prelearn(topo, macs):
    """The sink side sends `macs` frames from each of its `macs` source MACs (paced, so a
    learning queue is never the limit), towards the generator side's first MAC."""
    sh(*ns_xs(topo.sink_ns, "send", "--dev", "eth0", "--count", str(3 * macs), "--rate", "100k",
              "--src-macs", str(macs), "--src-mac", SINK_BASE, "--dst-mac", GEN_BASE, "--json",
              "--src-ip", "198.18.0.2", "--dst-ip", "198.18.0.1"))
    time.sleep(0.5)


def measure(topo, size, macs, secs):
    """One run of 1 000 (`macs`) source MACs to `macs` learned destination MACs."""
    gen_args = ns_xs(topo.gen_ns, "send", "--dev", "eth0", "--size", str(size - 4), "--json", "--src-ip",
                     "198.18.0.1", "--dst-ip", "198.18.0.2", "--macs", str(macs), "--src-mac", GEN_BASE,
                     "--dst-mac", SINK_BASE)
    # Warm-up, not measured, the same for every DUT (xdpswitch moves busy megaflows into its
    # XDP program at the next revalidation, within 0.5 s).
    sh(*gen_args, "--duration", "1")
    time.sleep(0.6)
    sink = subprocess.Popen(ns_xs(topo.sink_ns, "sink", "--dev", "eth0", "--duration", str(secs + 2), "--json"),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        time.sleep(0.8)
        gen = sh(*gen_args, "--duration", str(secs))
        out, _ = sink.communicate(timeout=secs + 30)
    finally:
        if sink.poll() is None:
            sink.kill()
    return p2p.rates(gen, out, secs)


def flood(topo, dut, macs, secs, established_rate):
    """Random source MACs at full rate from the generator side for `secs`, the fdb counters
    sampled every 0.5 s; an established flow the other way at `established_rate`."""
    procs = []
    samples = []
    stop = threading.Event()

    def sample():
        t0 = time.monotonic()
        while not stop.is_set():
            try:
                samples.append((time.monotonic() - t0, dut.fdb_counters()))
            except RuntimeError as e:
                print(f"normal: fdb-stats: {e}", file=sys.stderr)
            stop.wait(0.5)
    try:
        # The established flow: sink ns (a learned MAC) -> generator ns (the generator's
        # first MAC, learned in the measured runs), counted by an XDP sink in the generator ns.
        back_sink = subprocess.Popen(ns_xs(topo.gen_ns, "sink", "--dev", "eth0", "--duration", str(secs + 4),
                                           "--json"),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True)
        procs.append(back_sink)
        time.sleep(0.8)
        back = subprocess.Popen(ns_xs(topo.sink_ns, "send", "--mode", "afxdp", "--dev", "eth0", "--duration",
                                      str(secs + 1), "--rate", str(established_rate), "--json",
                                      "--src-mac", SINK_BASE, "--dst-mac", GEN_BASE,
                                      "--src-ip", "198.18.0.2", "--dst-ip", "198.18.0.1"),
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        procs.append(back)
        time.sleep(0.5)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        time.sleep(0.6)
        rx0, t0, cpu0 = dut.port1_rx(), time.monotonic(), thread_ticks(dut.main_pid())
        gen = sh(*ns_xs(topo.gen_ns, "send", "--dev", "eth0", "--duration", str(secs), "--json",
                        "--random-src-mac", "--src-ip", "198.18.0.1", "--dst-ip", "198.18.0.2",
                        "--dst-mac", SINK_BASE, "--dst-macs", str(macs)))
        rx1, t1, cpu1 = dut.port1_rx(), time.monotonic(), thread_ticks(dut.main_pid())
        time.sleep(1.0)
        stop.set()
        sampler.join(5)
        b_out, b_err = back.communicate(timeout=secs + 30)
        bs_out, _ = back_sink.communicate(timeout=secs + 30)
    finally:
        stop.set()
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    g = json.loads(gen)
    res = {"flood_sent": g["packets"], "flood_pps": g["pps"], "seconds": g["seconds"], "samples": samples,
           "dut_rx_pps": None if rx0 is None else (rx1 - rx0) / max(t1 - t0, 1e-3),
           "threads_cpu": cpu_shares(cpu0, cpu1, max(t1 - t0, 1e-3))}
    try:
        b, bs = json.loads(b_out), json.loads(bs_out)
        res.update(est_sent=b["packets"], est_received=bs.get("packets", 0), est_seconds=b["seconds"])
    except ValueError:
        print(f"normal: established flow: {b_err.strip()}", file=sys.stderr)
    res["gen0_still_known"] = dut.fdb_has(GEN_BASE)
    # Learning rate: the learned counter (or, without one, the entries) over the flood.
    key = "learned" if samples and samples[0][1].get("learned") is not None else "entries"
    pts = [(t, c.get(key) or 0) for t, c in samples]
    res["rate_key"] = key
    if len(pts) >= 2:
        rates = [(b - a) / (tb - ta) for (ta, a), (tb, b) in zip(pts, pts[1:]) if tb > ta]
        res["learn_per_s_peak"] = max(rates)
        busy = [r for r in rates if r > 0]
        res["learn_per_s_median"] = statistics.median(busy) if busy else 0.0
        res["learned_total"] = pts[-1][1] - pts[0][1]
        res["span_s"] = pts[-1][0] - pts[0][0]
    last = samples[-1][1] if samples else {}
    res["entries_after"] = last.get("entries")
    res["learn_dropped"] = (last.get("learn_dropped") or 0) - (samples[0][1].get("learn_dropped") or 0) \
        if samples and last.get("learn_dropped") is not None else None
    res["evicted_total"] = (last.get("evicted") or 0) - (samples[0][1].get("evicted") or 0) if samples else None
    return res


def report(results, fdb, floods, duts, out_dir, meta):
    lines = [f"# NORMAL benchmark, {meta['date']}", "",
             f"Machine: {meta['machine']}. Command: `{meta['command']}`.",
             f"{meta['size']}-byte frames, {meta['macs']} source MACs -> {meta['macs']} learned destination MACs; "
             f"each cell: median of {meta['reps']} runs of {meta['duration']} s (spread min..max)"
             f"{', DUTs interleaved run by run' if meta.get('interleave') else ''}.", "",
             "| DUT | Mpps | spread | loss | vs its static rule | vs ovs-afxdp-normal | FDB after pre-learning | FDB after runs |",
             "|---|---|---|---|---|---|---|---|"]
    med = {d: statistics.median([r["pps"] for r in runs]) for d, runs in results.items() if runs}
    for d in duts:
        runs = results.get(d)
        if not runs:
            lines.append(f"| {d} | n/a | | | | | | |")
            continue
        pps = [r["pps"] for r in runs]
        m = med[d]
        static = d.replace("-normal", "")
        vs_static = f"{m / med[static]:.2f}x" if d.endswith("-normal") and med.get(static) else ""
        if vs_static and meta.get("interleave") and len(results[static]) == len(runs):
            # Interleaved runs pair up (same round, seconds apart): the median of the ratios.
            paired = statistics.median(r["pps"] / s["pps"] for r, s in zip(runs, results[static]) if s["pps"])
            vs_static += f" (paired {paired:.2f}x)"
        vs_ovs = f"{m / med['ovs-afxdp-normal']:.2f}x" if med.get("ovs-afxdp-normal") else "n/a"
        before, after = fdb.get(d, (None, None))
        lines.append(f"| {d} | {m / 1e6:.3f} | {min(pps) / 1e6:.3f}..{max(pps) / 1e6:.3f} | "
                     f"{statistics.median([r['loss'] for r in runs]) * 100:.1f}% | {vs_static} | {vs_ovs} | "
                     f"{'' if before is None else before} | {'' if after is None else after} |")
    if floods:
        lines += ["", f"Learning flood: random source MACs at full rate for {meta['flood_secs']} s "
                      f"(counters sampled every 0.5 s); established flow the other way at {meta['est_rate']} pps.", "",
                  "| DUT | flood offered Mpps | DUT took in Mpps | learned/s median | learned/s peak | learned | "
                  "evicted | learn events dropped | FDB after | established flow delivered | its MAC still learned |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for d, f in floods.items():
            est = (f"{f['est_received']}/{f['est_sent']} ({f['est_received'] / max(f['est_sent'], 1) * 100:.0f}%)"
                   if "est_sent" in f else "n/a")
            note = "" if f.get("rate_key") == "learned" else " (entries)"
            dropped = f.get("learn_dropped")
            took = "n/a" if f["dut_rx_pps"] is None else f"{f['dut_rx_pps'] / 1e6:.3f}"
            lines.append(f"| {d} | {f['flood_pps'] / 1e6:.2f} | {took} | "
                         f"{f.get('learn_per_s_median', 0):,.0f}{note} | "
                         f"{f.get('learn_per_s_peak', 0):,.0f} | {f.get('learned_total', 'n/a')} | "
                         f"{f.get('evicted_total', 'n/a')} | {'n/a' if dropped is None else dropped} | "
                         f"{f.get('entries_after', 'n/a')} | {est} | "
                         f"{'yes' if f.get('gen0_still_known') else 'no'} |")
        lines += ["", "The switch's threads during the flood (share of one CPU, threads of a name summed):", ""]
        for d, f in floods.items():
            shares = ", ".join(f"{k} {v:.2f}" for k, v in f.get("threads_cpu", {}).items())
            lines.append(f"- {d}: {shares or 'n/a'}")
    return p2p.write_results(out_dir, "\n".join(lines) + "\n",
                             {"meta": meta, "results": results, "fdb": fdb, "floods": floods})


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duts", default="xdpswitch,xdpswitch-normal,ovs-afxdp,ovs-afxdp-normal")
    ap.add_argument("--size", type=int, default=64, help="frame size with FCS (RFC 2544)")
    ap.add_argument("--macs", type=int, default=1000)
    p2p.add_run_args(ap, 3, 3, "smoke run: xdpswitch DUTs, 2 s, 1 rep, 2 s flood")
    ap.add_argument("--flood-secs", type=int, default=4, help="learning flood length (0: none)")
    ap.add_argument("--established-rate", type=int, default=50000, help="pps of the flow during the flood")
    ap.add_argument("--interleave", action="store_true",
                    help="one run per DUT per round, --reps rounds (for a shared, noisy machine)")
    ap.add_argument("--replot", metavar="DIR", help="only rewrite the table from DIR/results.json")
    a = ap.parse_args()
    if a.replot:
        saved = json.load(open(os.path.join(a.replot, "results.json")))
        print(report(saved["results"], saved["fdb"], saved["floods"], list(saved["results"]), a.replot,
                     saved["meta"]))
        return
    if a.quick:
        a.duts, a.duration, a.reps, a.flood_secs = "xdpswitch,xdpswitch-normal", 2, 1, 2
    duts = p2p.select_duts("normal", a.duts, ALL_DUTS)
    stamp, out_dir = p2p.run_stamp_and_dir("normal", a.out)
    meta = p2p.run_meta("normal", stamp, a, interleave=a.interleave, size=a.size, macs=a.macs,
                        flood_secs=a.flood_secs, est_rate=a.established_rate)
    topo, tmp = p2p.begin_run()
    results, fdb, floods = {}, {}, {}
    dut = None
    try:
        topo.up()
        # Interleaved: every round starts each DUT afresh for one run, so a change in the
        # machine's load (it is shared) spreads over all DUTs instead of landing on one.
        rounds, per_round = (a.reps, 1) if a.interleave else (1, a.reps)
        for rnd in range(rounds):
            for d in duts:
                dut = NormalDut(d, topo, tmp)
                try:
                    dut.start()
                except Exception as e:  # a DUT that can't start is reported, the others still run
                    print(f"normal: {d}: {e}", file=sys.stderr)
                    dut.stop()
                    dut = None
                    continue
                runs = results.setdefault(d, [])
                for rep in range(per_round):
                    try:
                        prelearn(topo, a.macs)  # OVS and xdpswitch age at 300 s: once would do
                        if rnd == 0 and rep == 0:
                            fdb[d] = (dut.fdb_entries(), None)
                        runs.append(measure(topo, a.size, a.macs, a.duration))
                    except Exception as e:
                        print(f"normal: {d}: {e}", file=sys.stderr)
                fdb[d] = (fdb.get(d, (None, None))[0], dut.fdb_entries())
                if runs:
                    print(f"normal: round {rnd + 1} {d:>17}: {runs[-1]['pps'] / 1e6:6.3f} Mpps, "
                          f"FDB {fdb[d][0]} -> {fdb[d][1]}", flush=True)
                if dut.normal and a.flood_secs > 0 and rnd == 0:
                    try:
                        floods[d] = flood(topo, dut, a.macs, a.flood_secs, a.established_rate)
                        f = floods[d]
                        print(f"normal: {d:>17}: flood {f['flood_pps'] / 1e6:.2f} Mpps offered, "
                              f"{f['dut_rx_pps'] or 0:,.0f} pps taken in, learned/s median "
                              f"{f.get('learn_per_s_median', 0):,.0f} ({f.get('rate_key')}), "
                              f"FDB {f.get('entries_after')}", flush=True)
                    except Exception as e:
                        print(f"normal: {d} flood: {e}", file=sys.stderr)
                dut.stop()
                dut = None
    finally:
        p2p.end_run(dut, topo, tmp)
    print(report(results, fdb, floods, duts, out_dir, meta))
    print(f"normal: results in {out_dir}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # the finally blocks have removed everything by now
        sys.exit("normal: interrupted")
