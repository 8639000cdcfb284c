#!/usr/bin/env python3
"""Port-to-port benchmark: generator namespace -> DUT -> sink namespace, over veth.

The same traffic (XDP live-frames generator in the generator namespace, XDP drop sink in the
sink namespace) goes through each device under test in turn, in one invocation:

  xdpswitch      `xdpswitch run` with a port-to-port rule (in_port=1,actions=output:2);
                 busy megaflows run in its XDP program (offload on, the default)
  xdpswitch-user the same with `--offload off`: every packet through the AF_XDP poll thread
  bare           `xdpswitch fwd`: a bare AF_XDP forwarder on the same port code, no lookup
  ovs-afxdp      Open vSwitch userspace datapath, `type=afxdp` ports, the same rule
  ovs-system     Open vSwitch userspace datapath, plain `system` ports, the same rule
  linux-bridge   the kernel's bridge
  xdp-redirect   kernel XDP_REDIRECT between the two DUT ports: the ceiling on this path

Each case (frame size x flow count) runs `--reps` times per DUT; the report gives the median
and the spread (min..max), Gbit/s, loss, and the ratio to ovs-afxdp and to the ceiling, as a
Markdown table and a PNG chart under the results folder. Everything it creates (namespaces,
bridges, OVS daemons, XDP programs) is removed at the end, also on Ctrl-C.
"""

import argparse
import datetime
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
XS = os.environ.get("XDPSWITCH_BIN") or os.path.join(ROOT, "target", "release", "xdpswitch")
ALL_DUTS = ["xdpswitch", "xdpswitch-user", "bare", "ovs-afxdp", "ovs-system", "linux-bridge", "xdp-redirect"]


def sh(*args, check=True, **kw):
    r = subprocess.run(list(args), stdin=subprocess.DEVNULL, capture_output=True, text=True, **kw)
    if check and r.returncode != 0:
        raise RuntimeError(f"`{' '.join(args)}` failed: {r.stderr.strip()}")
    return r.stdout


def quiet(*args):
    subprocess.run(list(args), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Topology:
    """gen ns (eth0) <-> d0 [DUT] d1 <-> sink ns (eth0)."""

    def __init__(self):
        t = f"{os.getpid() % 100000}"
        self.gen_ns, self.sink_ns = f"xb-{t}-gen", f"xb-{t}-sink"
        self.d0, self.d1 = f"xb{t}d0", f"xb{t}d1"
        self.created = []

    def up(self):
        for ns, dut_if, ip in ((self.gen_ns, self.d0, "198.18.0.1/24"), (self.sink_ns, self.d1, "198.18.0.2/24")):
            sh("ip", "netns", "add", ns)
            self.created.append(ns)
            sh("ip", "link", "add", dut_if, "type", "veth", "peer", "name", dut_if + "p")
            sh("ip", "link", "set", dut_if + "p", "netns", ns)
            nse = ["ip", "netns", "exec", ns]
            sh(*nse, "ip", "link", "set", dut_if + "p", "name", "eth0")
            sh(*nse, "ip", "addr", "add", ip, "dev", "eth0")
            sh(*nse, "ip", "link", "set", "eth0", "up")
            sh(*nse, "ip", "link", "set", "lo", "up")
            quiet(*nse, "ethtool", "-K", "eth0", "tx", "off", "tso", "off", "gso", "off")
            sh("ip", "link", "set", dut_if, "up")
            quiet("ethtool", "-K", dut_if, "tso", "off", "gso", "off")
        self.gen_mac = self.ns_mac(self.gen_ns)
        self.sink_mac = self.ns_mac(self.sink_ns)

    def ns_mac(self, ns):
        return sh("ip", "netns", "exec", ns, "cat", "/sys/class/net/eth0/address").strip()

    def down(self):
        for ns in self.created:
            quiet("ip", "netns", "del", ns)
        for d in (self.d0, self.d1):
            quiet("ip", "link", "del", d)


class Dut:
    """Starts and stops one device under test between the two DUT ports."""

    def __init__(self, name, topo, tmp):
        self.name, self.t, self.tmp = name, topo, tmp
        self.procs = []
        self.ovs_dir = None

    def start(self):
        getattr(self, "start_" + self.name.replace("-", "_"))()
        time.sleep(1.0)

    def start_xdpswitch(self, *more):
        flows = os.path.join(self.tmp, "flows.txt")
        with open(flows, "w") as f:
            f.write("priority=10,in_port=1,actions=output:2\npriority=10,in_port=2,actions=output:1\n")
        extra = os.environ.get("XS_RUN_ARGS", "").split()  # e.g. XS_RUN_ARGS="--pmd-cpus 0"
        self.spawn([XS, "run", "--port", self.t.d0, "--port", self.t.d1, "--flows", flows,
                    "--ctl", os.path.join(self.tmp, "xs.ctl"), "--log", "warn", *more, *extra])

    def start_xdpswitch_user(self):
        self.start_xdpswitch("--offload", "off")

    def start_bare(self):
        self.spawn([XS, "fwd", "--port", self.t.d0, "--port", self.t.d1, "--log", "warn"])

    def start_xdp_redirect(self):
        self.spawn([XS, "pktgen", "redirect", "--dev", self.t.d0, "--to", self.t.d1, "--log", "warn"])

    def start_linux_bridge(self):
        br = self.t.d0[:-2] + "br"
        sh("ip", "link", "add", br, "type", "bridge")
        sh("ip", "link", "set", br, "up")
        for d in (self.t.d0, self.t.d1):
            sh("ip", "link", "set", d, "master", br)
            # The generator transmits into d0 with XDP; veth accepts that only with GRO on (or
            # an XDP program) on the receiving side.
            quiet("ethtool", "-K", d, "gro", "on")
        self.bridge = br

    def start_ovs_daemons(self):
        """ovsdb-server and ovs-vswitchd from a private run directory (removed by stop());
        returns their environment and the ovs-vsctl command prefix."""
        d = tempfile.mkdtemp(prefix="xb-ovs-")
        self.ovs_dir = d
        env = dict(os.environ, OVS_RUNDIR=d, OVS_DBDIR=d, OVS_LOGDIR=d, OVS_SYSCONFDIR=d)
        self.ovs_env = env
        db = f"unix:{d}/db.sock"
        sh("ovsdb-tool", "create", f"{d}/conf.db", "/usr/share/openvswitch/vswitch.ovsschema", env=env)
        sh("ovsdb-server", f"{d}/conf.db", f"--remote=punix:{d}/db.sock", f"--pidfile={d}/ovsdb-server.pid",
           f"--log-file={d}/ovsdb-server.log", "-vconsole:off", "--detach", env=env)
        sh("ovs-vsctl", f"--db={db}", "--no-wait", "init", env=env)
        sh("ovs-vswitchd", db, f"--pidfile={d}/ovs-vswitchd.pid", f"--log-file={d}/ovs-vswitchd.log",
           "-vconsole:off", "--detach", env=env)
        return env, ["ovs-vsctl", f"--db={db}", "--timeout=20"]

    def wait_ovs_bridge(self, bridge):
        """add-br returns once the database has the bridge; on a busy machine ovs-vswitchd may
        not have opened the bridge's OpenFlow socket yet."""
        for _ in range(100):
            if subprocess.run(["ovs-ofctl", "show", bridge], env=self.ovs_env, capture_output=True).returncode == 0:
                return
            time.sleep(0.1)

    def start_ovs(self, afxdp):
        env, vs = self.start_ovs_daemons()
        sh(*vs, "add-br", "xbbr0", "--", "set", "bridge", "xbbr0", "datapath_type=netdev", env=env)
        for i, dev in ((1, self.t.d0), (2, self.t.d1)):
            extra = ["--", "set", "interface", dev, f"ofport_request={i}"]
            if afxdp:
                extra += ["type=afxdp"]
            else:
                quiet("ethtool", "-K", dev, "gro", "on")
            sh(*vs, "add-port", "xbbr0", dev, *extra, env=env)
        of = ["ovs-ofctl", "-O", "OpenFlow13"]
        self.wait_ovs_bridge("xbbr0")
        sh(*of, "del-flows", "xbbr0", env=env)
        sh(*of, "add-flow", "xbbr0", "priority=10,in_port=1,actions=output:2", env=env)
        sh(*of, "add-flow", "xbbr0", "priority=10,in_port=2,actions=output:1", env=env)

    def start_ovs_afxdp(self):
        self.start_ovs(True)

    def start_ovs_system(self):
        self.start_ovs(False)

    def spawn(self, argv):
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=open(os.path.join(self.tmp, self.name + ".log"), "w"))
        self.procs.append(p)
        time.sleep(0.3)
        if p.poll() is not None:
            raise RuntimeError(f"{self.name} exited at start: see {self.tmp}/{self.name}.log")

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
        self.procs = []
        if getattr(self, "bridge", None):
            quiet("ip", "link", "del", self.bridge)
            self.bridge = None
        if self.ovs_dir:
            d = self.ovs_dir
            for pid in ("ovs-vswitchd", "ovsdb-server"):
                try:
                    quiet("kill", open(f"{d}/{pid}.pid").read().strip())
                except OSError:
                    pass
            time.sleep(1.0)
            shutil.rmtree(d, ignore_errors=True)
            self.ovs_dir = None
            # OVS makes its bridge's LOCAL tap and the netdev datapath's device persistent:
            # they outlive the daemons unless removed.
            quiet("ip", "link", "del", "xbbr0")
            quiet("ip", "link", "del", "ovs-netdev")
        for dev in (self.t.d0, self.t.d1):
            quiet("ethtool", "-K", dev, "gro", "off")
            quiet("ip", "link", "set", "dev", dev, "xdp", "off")


def rates(gen_json, sink_json, secs):
    """What `pktgen send --json` and `pktgen sink --json` reported: frames sent and received,
    the bytes received, the seconds sent for, the offered and received rates, the loss."""
    sent, got = json.loads(gen_json), json.loads(sink_json)
    seconds = max(sent.get("seconds", secs), 1e-3)
    rx = got.get("packets", 0)
    return {"sent": sent["packets"], "received": rx, "rx_bytes": got.get("bytes", 0), "seconds": seconds,
            "offered_pps": sent["pps"],
            "pps": rx / seconds, "loss": max(0.0, 1 - rx / sent["packets"]) if sent["packets"] else 0.0}


def select_duts(prog, arg, known):
    """The `--duts` list: an unknown name ends the program; OVS DUTs are skipped, saying so,
    when Open vSwitch is not installed."""
    duts = [d for d in arg.split(",") if d]
    for d in duts:
        if d not in known:
            sys.exit(f"{prog}: --duts: unknown DUT {d!r} (known: {', '.join(known)})")
    if shutil.which("ovs-vswitchd") is None:
        missing = [d for d in duts if d.startswith("ovs-")]
        if missing:
            print(f"{prog}: Open vSwitch not installed: skipping {', '.join(missing)}", file=sys.stderr)
            duts = [d for d in duts if d not in missing]
    return duts


def run_stamp_and_dir(prog, out):
    """The run's time stamp and its results folder (`--out`, or results/PROG-STAMP), created."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out_dir = out or os.path.join(ROOT, "results", f"{prog}-{stamp}")
    os.makedirs(out_dir, exist_ok=True)
    return stamp, out_dir


def add_run_args(ap, duration, reps, quick_help):
    """The options every benchmark takes: --duration (seconds a run), --reps, --out (the
    results folder) and --quick (a smoke run, `quick_help` says what it shrinks)."""
    ap.add_argument("--duration", type=int, default=duration)
    ap.add_argument("--reps", type=int, default=reps)
    ap.add_argument("--out", default=None)
    ap.add_argument("--quick", action="store_true", help=quick_help)


def run_meta(prog, stamp, args, **fields):
    """The report's `meta`: the date, --duration and --reps, the benchmark's own `fields`, the
    command line (as benches/PROG.sh) and the machine."""
    return {"date": stamp, "duration": args.duration, "reps": args.reps, **fields,
            "command": " ".join([f"benches/{prog}.sh"] + sys.argv[1:]), "machine": machine()}


def begin_run(prefix="xb-"):
    """What every benchmark's main does before its DUTs: SIGTERM ends the program through
    its `finally` (see `end_run`); returns the topology (not up yet) and a scratch folder."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    return Topology(), tempfile.mkdtemp(prefix=prefix)


def end_run(dut, topo, tmp):
    """The `finally` of every benchmark's main: stops the DUT still running (None: none),
    brings the topology down and removes the scratch folder."""
    if dut:
        dut.stop()
    topo.down()
    shutil.rmtree(tmp, ignore_errors=True)


def write_results(out_dir, md, data):
    """Writes the report `md` to OUT/results.md and `data` (its "meta", "results" and the
    rest) to OUT/results.json; returns `md`."""
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(md)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(data, f, indent=1)
    return md


def machine():
    """Kernel, CPUs and CPU model, for the report."""
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    return f"{os.uname().release}, {os.cpu_count()} CPUs ({cpu}), veth"


def measure(topo, size, flows, secs, gen_extra=()):
    """One run: sink in the sink namespace, generator in the generator namespace.

    `size` is the Ethernet frame size as benchmarks count it (RFC 2544: with the 4-byte FCS),
    so the generator, which counts bytes it puts in memory, is asked for `size - 4`; a
    "1518-byte" frame then carries a full 1500-byte IP packet and fits the MTU.
    `gen_extra`: more `pktgen send` arguments (e.g. `--gre-dst ...`: then `size` is the inner
    frame's).
    """
    gen_args = ["ip", "netns", "exec", topo.gen_ns, XS, "pktgen", "send", "--dev", "eth0", "--size", str(size - 4),
                "--flows", str(flows), "--json", "--src-ip", "198.18.0.1", "--dst-ip", "198.18.0.2",
                "--src-mac", topo.gen_mac, "--dst-mac", topo.sink_mac, *gen_extra]
    # Warm-up, not measured, the same for every DUT: flows installed (and, for xdpswitch with
    # offload, moved into its XDP program at the next revalidation, within 0.5 s).
    sh(*gen_args, "--duration", "1")
    time.sleep(0.6)
    sink = subprocess.Popen(["ip", "netns", "exec", topo.sink_ns, XS, "pktgen", "sink", "--dev", "eth0",
                             "--duration", str(secs + 2), "--json"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    time.sleep(0.8)
    gen = sh(*gen_args, "--duration", str(secs))
    out, _ = sink.communicate(timeout=secs + 30)
    r = rates(gen, out, secs)
    r["gbps"] = r["pps"] * size * 8 / 1e9
    return r


def report(results, duts, out_dir, meta):
    lines = [f"# Port-to-port benchmark, {meta['date']}", "",
             f"Machine: {meta['machine']}. Command: `{meta['command']}`.",
             f"Each cell: median of {meta['reps']} runs of {meta['duration']} s (spread min..max).", "",
             "| case | DUT | Mpps | spread | Gbit/s | loss | vs ovs-afxdp | vs xdp-redirect |",
             "|---|---|---|---|---|---|---|---|"]
    for case, per in results.items():
        med = {d: statistics.median([r["pps"] for r in runs]) for d, runs in per.items() if runs}
        for d in duts:
            runs = per.get(d)
            if not runs:
                lines.append(f"| {case} | {d} | n/a | | | | | |")
                continue
            pps = [r["pps"] for r in runs]
            m = med[d]
            rel = lambda ref: f"{m / med[ref]:.2f}x" if med.get(ref) else "n/a"
            lines.append(f"| {case} | {d} | {m / 1e6:.2f} | {min(pps) / 1e6:.2f}..{max(pps) / 1e6:.2f} | "
                         f"{statistics.median([r['gbps'] for r in runs]):.2f} | "
                         f"{statistics.median([r['loss'] for r in runs]) * 100:.1f}% | {rel('ovs-afxdp')} | "
                         f"{rel('xdp-redirect')} |")
    md = write_results(out_dir, "\n".join(lines) + "\n", {"meta": meta, "results": results})
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        cases = list(results)
        fig, ax = plt.subplots(figsize=(max(7, 1.3 * len(cases)), 4.8))
        width = 0.8 / len(duts)
        for i, d in enumerate(duts):
            runs = [[r["pps"] / 1e6 for r in results[c].get(d, [])] or [0] for c in cases]
            med = [statistics.median(r) for r in runs]
            err = [[m - min(r) for m, r in zip(med, runs)], [max(r) - m for m, r in zip(med, runs)]]
            ax.bar([x + i * width for x in range(len(cases))], med, width, label=d, yerr=err, capsize=2)
        ax.set_xticks([x + width * (len(duts) - 1) / 2 for x in range(len(cases))])
        ax.set_xticklabels(cases)
        ax.set_ylabel("Mpps (median, bars: min..max)")
        ax.set_title("Port-to-port forwarding over veth, same run")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, "chart.png"), dpi=110)
    except ImportError:
        print("p2p: matplotlib not available: no chart", file=sys.stderr)
    return md


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duts", default=",".join(ALL_DUTS))
    ap.add_argument("--sizes", default="64,512,1518")
    ap.add_argument("--flows", default="1,1000,100000")
    add_run_args(ap, 5, 3, "CI smoke run: 64 B, 1 flow, 2 s, 1 rep")
    ap.add_argument("--replot", metavar="DIR", help="only redraw the table and chart from DIR/results.json")
    a = ap.parse_args()
    if a.replot:
        saved = json.load(open(os.path.join(a.replot, "results.json")))
        duts = list(dict.fromkeys(d for per in saved["results"].values() for d in per))
        print(report(saved["results"], duts, a.replot, saved["meta"]))
        return
    if a.quick:
        a.sizes, a.flows, a.duration, a.reps = "64", "1", 2, 1
    duts = select_duts("p2p", a.duts, ALL_DUTS)
    stamp, out_dir = run_stamp_and_dir("p2p", a.out)
    meta = run_meta("p2p", stamp, a)
    topo, tmp = begin_run()
    results = {}
    dut = None
    try:
        topo.up()
        for size in [int(s) for s in a.sizes.split(",")]:
            for flows in [int(f) for f in a.flows.split(",")]:
                results[f"{size}B/{flows}fl"] = {}
        for d in duts:
            dut = Dut(d, topo, tmp)
            try:
                dut.start()
            except Exception as e:  # a DUT that can't start is reported, the others still run
                print(f"p2p: {d}: {e}", file=sys.stderr)
                dut.stop()
                continue
            for size in [int(s) for s in a.sizes.split(",")]:
                for flows in [int(f) for f in a.flows.split(",")]:
                    case = f"{size}B/{flows}fl"
                    runs = []
                    for _ in range(a.reps):
                        try:
                            runs.append(measure(topo, size, flows, a.duration))
                        except Exception as e:
                            print(f"p2p: {d} {case}: {e}", file=sys.stderr)
                    results[case][d] = runs
                    if runs:
                        print(f"p2p: {case:>14} {d:>13}: {statistics.median([r['pps'] for r in runs]) / 1e6:6.2f} Mpps",
                              flush=True)
            dut.stop()
            dut = None
    finally:
        end_run(dut, topo, tmp)
    print(report(results, duts, out_dir, meta))
    print(f"p2p: results in {out_dir}")


if __name__ == "__main__":
    main()
