#!/usr/bin/env python3
"""GRE benchmark: encapsulation and decapsulation rates next to plain forwarding, xdpswitch
and Open vSwitch 3.1 (userspace GRE) side by side in one run, over veth.

p2p.py's topology: generator namespace (eth0) <-> d0 [DUT] d1 <-> sink namespace (eth0); the
XDP live-frames generator, the XDP drop sink. Rates count inner frames (64 bytes with FCS by
default; on the underlay each is 42 bytes longer: outer Ethernet, IPv4, GRE with a key).

  xdpswitch-plain   `xdpswitch run`, in_port=1,actions=output:2 (p2p.py's xdpswitch)
  xdpswitch-encap   `xdpswitch run --config`: d0 is a VM port of a bridge whose rule sends
                    everything to a GRE port (`set_tunnel:0x64,output:gre0`, key=flow); d1 is
                    the underlay port (198.19.0.1/24); the sink namespace is the remote end
                    (198.19.0.2: its kernel answers the switch's ARP before the sink attaches)
  xdpswitch-decap   the same, turned around: d0 is the underlay port, the generator sends GRE
                    frames (`pktgen send --gre-dst 198.19.0.1 --gre-key 0x64`, outer MAC the
                    underlay port's) and the rule `in_port=gre0,tun_id=0x64` sends the inner
                    frames out of d1
  ovs-plain         Open vSwitch, datapath_type=netdev, afxdp ports, in_port=1,actions=output:2
  ovs-encap         OVS userspace tunneling the way its docs set it up: br-int (d0, gre0
                    type=gre options:key=flow remote_ip=198.19.0.2) and br-phy (d1; the tunnel
                    address 198.19.0.1/24 on br-phy's internal port; ovs/route/add; OVS's own
                    ARP, resolved by a first burst before the sink attaches)
  ovs-decap         the same, turned around (GRE frames to br-phy's MAC and address)

The sink's average frame size is in the report (60 bytes for plain and decap, 102 for
encap), which shows each case carried what it should. Afxdp ports for OVS by default (its fastest userspace ports here); XS_OVS_PORTS=system for
plain system ports. Each case runs --reps times; the report gives the median and the spread,
the ratio to the same switch's plain forwarding and to OVS in the same mode, and checks the
goal: encap and decap each >= 80% of xdpswitch's plain forwarding, and ahead of OVS.
Everything it creates is removed at the end, also on Ctrl-C.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import p2p  # noqa: E402  (the topology, DUT start/stop and helpers)
from p2p import XS, quiet, sh  # noqa: E402

ALL_DUTS = ["xdpswitch-plain", "xdpswitch-encap", "xdpswitch-decap", "ovs-plain", "ovs-encap", "ovs-decap"]
LOCAL_IP, REMOTE_IP, KEY = "198.19.0.1", "198.19.0.2", "0x64"


def mode_of(dut):
    return dut.split("-", 1)[1]


class GreDut(p2p.Dut):
    """p2p's DUTs, plus the GRE ones; `underlay` is the DUT port on the tunnel side."""

    def __init__(self, name, topo, tmp):
        super().__init__(name, topo, tmp)
        self.ctl = os.path.join(tmp, "xs.ctl")
        self.underlay = None
        self.outer_dst_mac = None

    def start(self):
        {
            "xdpswitch-plain": self.start_xdpswitch_plain,
            "xdpswitch-encap": lambda: self.start_xdpswitch_gre(encap=True),
            "xdpswitch-decap": lambda: self.start_xdpswitch_gre(encap=False),
            "ovs-plain": lambda: self.start_ovs(os.environ.get("XS_OVS_PORTS", "afxdp") == "afxdp"),
            "ovs-encap": lambda: self.start_ovs_gre(encap=True),
            "ovs-decap": lambda: self.start_ovs_gre(encap=False),
        }[self.name]()
        time.sleep(1.0)

    def bridge_name(self):
        """A LOCAL tap name of this run's own (the default xdpbr0 may be another switch's)."""
        return f"xbg{os.getpid() % 100000}"

    def start_xdpswitch_plain(self):
        """p2p's xdpswitch DUT, with this run's own bridge name."""
        flows = os.path.join(self.tmp, "flows.txt")
        with open(flows, "w") as f:
            f.write("priority=10,in_port=1,actions=output:2\npriority=10,in_port=2,actions=output:1\n")
        extra = os.environ.get("XS_RUN_ARGS", "").split()
        self.spawn([XS, "run", "--port", self.t.d0, "--port", self.t.d1, "--flows", flows, "--ctl", self.ctl,
                    "--bridge", self.bridge_name(), "--log", "warn", *extra])

    # --- the tunnel's remote end: the namespace beyond the underlay port answers ARP as
    # REMOTE_IP (its kernel, until an XDP program takes the interface).
    def remote_ns(self, encap):
        return self.t.sink_ns if encap else self.t.gen_ns

    def prepare_remote(self, encap):
        ns = self.remote_ns(encap)
        quiet("ip", "netns", "exec", ns, "ip", "addr", "add", f"{REMOTE_IP}/24", "dev", "eth0")

    def unprepare_remote(self):
        for ns in (self.t.gen_ns, self.t.sink_ns):
            quiet("ip", "netns", "exec", ns, "ip", "addr", "del", f"{REMOTE_IP}/24", "dev", "eth0")

    def start_xdpswitch_gre(self, encap):
        vm, ul = (self.t.d0, self.t.d1) if encap else (self.t.d1, self.t.d0)
        self.underlay = ul
        self.prepare_remote(encap)
        flows = os.path.join(self.tmp, "gre.flows")
        with open(flows, "w") as f:
            if encap:
                f.write(f"priority=10,in_port=1,actions=set_tunnel:{KEY},output:2\n")
            else:
                f.write(f"priority=10,in_port=2,tun_id={KEY},actions=output:1\n")
        cfg = os.path.join(self.tmp, "gre.toml")
        with open(cfg, "w") as f:
            f.write(f'cores = 1\nctl = "{self.ctl}"\n\n[[bridge]]\nname = "{self.bridge_name()}"\n'
                    f'ports = ["{vm}", "gre0:type=gre,remote_ip={REMOTE_IP},key=flow"]\n'
                    f'flows = "{flows}"\nfail_mode = "secure"\n\n'
                    f'[[underlay]]\nport = "{ul}"\nip = "{LOCAL_IP}/24"\n')
        self.spawn([XS, "--log", "warn", "run", "--config", cfg])
        self.outer_dst_mac = open(f"/sys/class/net/{ul}/address").read().strip()
        if encap:
            self.resolve(lambda: sh(XS, "ctl", "--ctl", self.ctl, "tnl-neigh", check=False))

    def start_ovs_gre(self, encap):
        afxdp = os.environ.get("XS_OVS_PORTS", "afxdp") == "afxdp"
        vm, ul = (self.t.d0, self.t.d1) if encap else (self.t.d1, self.t.d0)
        self.underlay = ul
        self.prepare_remote(encap)
        env, vs = self.start_ovs_daemons()
        self.ovs_bridges = ["xbbr0", "xbbrp"]
        port_type = ["type=afxdp"] if afxdp else []
        sh(*vs, "add-br", "xbbrp", "--", "set", "bridge", "xbbrp", "datapath_type=netdev", env=env)
        sh(*vs, "add-port", "xbbrp", ul, "--", "set", "interface", ul, *port_type, env=env)
        sh(*vs, "add-br", "xbbr0", "--", "set", "bridge", "xbbr0", "datapath_type=netdev", env=env)
        sh(*vs, "add-port", "xbbr0", vm, "--", "set", "interface", vm, "ofport_request=1", *port_type, env=env)
        sh(*vs, "add-port", "xbbr0", "gre0", "--", "set", "interface", "gre0", "type=gre",
           f"options:remote_ip={REMOTE_IP}", "options:key=flow", "ofport_request=2", env=env)
        if not afxdp:
            for d in (vm, ul):
                quiet("ethtool", "-K", d, "gro", "on")
        sh("ip", "addr", "add", f"{LOCAL_IP}/24", "dev", "xbbrp")
        sh("ip", "link", "set", "xbbrp", "up")
        sh("ovs-appctl", "ovs/route/add", f"{REMOTE_IP}/24", "xbbrp", env=env)
        of = ["ovs-ofctl", "-O", "OpenFlow13"]
        self.wait_ovs_bridge("xbbr0")
        sh(*of, "del-flows", "xbbr0", env=env)
        if encap:
            sh(*of, "add-flow", "xbbr0", f"priority=10,in_port=1,actions=set_tunnel:{KEY},output:2", env=env)
        else:
            sh(*of, "add-flow", "xbbr0", f"priority=10,in_port=2,tun_id={KEY},actions=output:1", env=env)
        self.outer_dst_mac = open("/sys/class/net/xbbrp/address").read().strip()
        if encap:
            self.resolve(lambda: sh("ovs-appctl", "tnl/neigh/show", env=env, check=False))

    def resolve(self, show):
        """Encap: until the tunnel's next hop is resolved (the remote namespace's kernel still
        answers ARP), send short bursts through the VM port; an error if it never resolves."""
        mac = sh("ip", "netns", "exec", self.t.sink_ns, "cat", "/sys/class/net/eth0/address").strip()
        for _ in range(30):
            if mac in show().lower():
                return
            subprocess.run(["ip", "netns", "exec", self.t.gen_ns, XS, "pktgen", "send", "--mode", "afxdp",
                            "--dev", "eth0", "--count", "5", "--src-mac", self.t.gen_mac, "--dst-mac",
                            self.t.sink_mac, "--log", "warn"],
                           stdin=subprocess.DEVNULL, capture_output=True)
            time.sleep(0.5)
        raise RuntimeError(f"{self.name}: the tunnel's next hop {REMOTE_IP} was never resolved: {show()}")

    def gen_extra(self):
        if self.name.endswith("-decap"):
            return ["--gre-dst", LOCAL_IP, "--gre-src", REMOTE_IP, "--gre-key", KEY,
                    "--gre-dst-mac", self.outer_dst_mac]
        return []

    def stats(self):
        """The switch's own tunnel counters after the runs, for the report."""
        if self.name.startswith("xdpswitch-") and self.name != "xdpswitch-plain":
            try:
                v = json.loads(sh(XS, "ctl", "--ctl", self.ctl, "--json", "pmd-stats"))
                keys = ["tunnel_encap", "tunnel_decap", "tunnel_no_header", "tunnel_mtu_dropped",
                        "tunnel_bad_gre", "tunnel_no_port", "underlay_dropped"]
                return {k: sum(p.get(k, 0) for p in v.get("pmds", [])) for k in keys}
            except Exception as e:  # the report says so; the rates stand
                return {"error": str(e)}
        return {}

    def stop(self):
        super().stop()
        if getattr(self, "ovs_bridges", None):
            for b in self.ovs_bridges:
                quiet("ip", "link", "del", b)
            self.ovs_bridges = None
        self.unprepare_remote()


def frame_bytes(runs):
    """Average bytes per frame the sink saw (no FCS): 60 for a 64-byte inner frame, 102 with
    GRE and a key around it; shows each case carried what it should."""
    rx = sum(r["received"] for r in runs)
    return f"{sum(r.get('rx_bytes', 0) for r in runs) / rx:.0f}" if rx else "n/a"


def report(results, duts, out_dir, meta, counters):
    lines = [f"# GRE benchmark, {meta['date']}", "",
             f"Machine: {meta['machine']}. Command: `{meta['command']}`.",
             f"Each cell: median of {meta['reps']} runs of {meta['duration']} s (spread min..max); "
             f"inner frames of {meta['size']} bytes (with FCS), {meta['flows']} flow(s).", "",
             "| DUT | Mpps | spread | loss | bytes/frame at the sink | vs own plain | vs OVS same mode |",
             "|---|---|---|---|---|---|---|"]
    med = {d: statistics.median([r["pps"] for r in runs]) for d, runs in results.items() if runs}
    for d in duts:
        runs = results.get(d)
        if not runs:
            lines.append(f"| {d} | n/a | | | | | |")
            continue
        pps = [r["pps"] for r in runs]
        m = med[d]
        sysname, mode = d.split("-", 1)
        plain, ovs = med.get(f"{sysname}-plain"), med.get(f"ovs-{mode}")
        lines.append(f"| {d} | {m / 1e6:.2f} | {min(pps) / 1e6:.2f}..{max(pps) / 1e6:.2f} | "
                     f"{statistics.median([r['loss'] for r in runs]) * 100:.1f}% | "
                     f"{frame_bytes(runs)} | "
                     f"{f'{m / plain:.2f}x' if plain else 'n/a'} | "
                     f"{f'{m / ovs:.2f}x' if ovs and not d.startswith('ovs') else '-'} |")
    lines += ["", "Goal: xdpswitch encap and decap each >= 0.80 x xdpswitch-plain, and ahead of OVS.", ""]
    for mode in ("encap", "decap"):
        x, plain, ovs = med.get(f"xdpswitch-{mode}"), med.get("xdpswitch-plain"), med.get(f"ovs-{mode}")
        if x is None or plain is None:
            lines.append(f"- {mode}: not measured")
            continue
        ok_plain = x >= 0.8 * plain
        ok_ovs = ovs is None or x > ovs
        vs_ovs = f", {x / ovs:.2f}x OVS" if ovs else ", OVS not measured"
        lines.append(f"- {mode}: {x / plain:.2f}x plain{vs_ovs}: "
                     f"{'met' if ok_plain and ok_ovs else 'NOT met'}")
    if counters:
        lines += ["", "xdpswitch tunnel counters after the runs (pmd-stats):", ""]
        for d, c in counters.items():
            lines.append(f"- {d}: " + ", ".join(f"{k}={v}" for k, v in c.items()))
    return p2p.write_results(out_dir, "\n".join(lines) + "\n",
                             {"meta": meta, "results": results, "counters": counters})


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duts", default=",".join(ALL_DUTS))
    ap.add_argument("--size", type=int, default=64, help="inner frame size with FCS (default 64)")
    ap.add_argument("--flows", type=int, default=1)
    p2p.add_run_args(ap, 5, 3, "smoke run: 2 s, 1 rep")
    a = ap.parse_args()
    if a.quick:
        a.duration, a.reps = 2, 1
    duts = p2p.select_duts("gre", a.duts, ALL_DUTS)
    stamp, out_dir = p2p.run_stamp_and_dir("gre", a.out)
    meta = p2p.run_meta("gre", stamp, a, size=a.size, flows=a.flows)
    topo, tmp = p2p.begin_run()
    results, counters = {}, {}
    dut = None
    try:
        topo.up()
        for d in duts:
            dut = GreDut(d, topo, tmp)
            try:
                dut.start()
            except Exception as e:  # a DUT that can't start is reported, the others still run
                print(f"gre: {d}: {e}", file=sys.stderr)
                dut.stop()
                dut = None
                continue
            runs = []
            for _ in range(a.reps):
                try:
                    runs.append(p2p.measure(topo, a.size, a.flows, a.duration, dut.gen_extra()))
                except Exception as e:
                    print(f"gre: {d}: {e}", file=sys.stderr)
            results[d] = runs
            c = dut.stats()
            if c:
                counters[d] = c
            if runs:
                print(f"gre: {d:>16}: {statistics.median([r['pps'] for r in runs]) / 1e6:6.2f} Mpps", flush=True)
            dut.stop()
            dut = None
    finally:
        p2p.end_run(dut, topo, tmp)
    print(report(results, duts, out_dir, meta, counters))
    print(f"gre: results in {out_dir}")


if __name__ == "__main__":
    main()
