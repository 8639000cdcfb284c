#!/usr/bin/env python3
"""Flow-setup benchmark: xdpswitch and Open vSwitch (userspace datapath) side by side, in one run.

Each DUT sits between a generator namespace and a sink namespace (the topology of p2p.py), with
a passive OpenFlow listener on loopback, and goes through three parts:

  1. add-flows   `ovs-ofctl add-flows` of N five-tuple rules (default 100 000) from a file:
                 wall time until ovs-ofctl returns (it ends with a barrier), rules per
                 second, and a check that dump-aggregate counts them all.
  2. flow-mods   a raw-socket OpenFlow 1.3 client blasts M flow-mod ADDs (default 50 000) and
                 one barrier: time from the first byte sent to the barrier reply.
  3. churn       forwarding 64-byte UDP (xdpswitch pktgen, as p2p.py) by an in_port rule,
                 with no churn and while a client adds and deletes unrelated rules at R
                 flow-mods/s (default 10 000): received rate and loss, at the generator's full
                 rate and at a fixed offered rate (default 1 Mpps).

DUTs: `xdpswitch` (`xdpswitch run --listen ptcp:PORT`), `ovs` (Open vSwitch 3.1,
datapath_type=netdev, afxdp ports by default, `--ovs-ports system` for plain ones). A DUT that
fails to start is reported as n/a; the others still run. Results go to
results/flowsetup-STAMP/{results.md,results.json}. Everything it creates (namespaces, OVS
daemons, XDP programs) is removed at the end, also on Ctrl-C.
"""

import argparse
import os
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import p2p  # noqa: E402  (the topology and helpers of the port-to-port benchmark)
from p2p import quiet, sh  # noqa: E402

ALL_DUTS = ["xdpswitch", "ovs"]

# OpenFlow 1.3 numbers (ONF TS-023).
OFP13 = 4
OFPT_HELLO, OFPT_ERROR, OFPT_ECHO_REQUEST, OFPT_ECHO_REPLY = 0, 1, 2, 3
OFPT_FLOW_MOD, OFPT_BARRIER_REQUEST, OFPT_BARRIER_REPLY = 14, 20, 21
OFPFC_ADD, OFPFC_DELETE_STRICT = 0, 4
OFPP_ANY = OFPG_ANY = 0xFFFFFFFF
OFP_NO_BUFFER = 0xFFFFFFFF


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------
# A small raw OpenFlow 1.3 client


def msg(ty, xid, body=b""):
    return struct.pack("!BBHI", OFP13, ty, 8 + len(body), xid) + body


def oxm(field, value):
    return struct.pack("!HBB", 0x8000, field << 1, len(value)) + value


def five_tuple(i):
    """Rule i's match values: UDP from 10.x.y.z:sport to 10.200.0.1:53, on in_port 1."""
    src = bytes([10, (i >> 16) & 0xFF, (i >> 8) & 0xFF, i & 0xFF])
    return src, 1024 + i % 60000


def flow_mod(xid, i, command=OFPFC_ADD, priority=100, out_port=2, base_ip=10):
    src, sport = five_tuple(i)
    src = bytes([base_ip]) + src[1:]
    fields = (oxm(0, struct.pack("!I", 1)) + oxm(5, struct.pack("!H", 0x0800)) + oxm(10, b"\x11")
              + oxm(11, src) + oxm(12, bytes([10, 200, 0, 1])) + oxm(15, struct.pack("!H", sport))
              + oxm(16, struct.pack("!H", 53)))
    mlen = 4 + len(fields)
    match = struct.pack("!HH", 1, mlen) + fields + b"\0" * ((8 - mlen % 8) % 8)
    action = struct.pack("!HHIH6x", 0, 16, out_port, 0xFFE5)  # OUTPUT, max_len NO_BUFFER
    inst = struct.pack("!HH4x", 4, 8 + len(action)) + action  # APPLY_ACTIONS
    fixed = struct.pack("!QQBBHHHIIIH2x", i, 0, 0, command, 0, 0, priority, OFP_NO_BUFFER, OFPP_ANY, OFPG_ANY, 0)
    return msg(OFPT_FLOW_MOD, xid, fixed + match + inst)


class OfClient:
    """OpenFlow 1.3 over TCP; a reader thread answers echoes, counts errors, signals barriers."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.s.sendall(msg(OFPT_HELLO, 1))
        self.errors = 0
        self.first_error = None
        self.barriers = {}
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.closed = False
        self.reader = threading.Thread(target=self.read_loop, daemon=True)
        self.reader.start()

    def read_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.s.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("the switch closed the connection")
            buf += chunk
        return buf

    def read_loop(self):
        self.s.settimeout(None)
        try:
            while True:
                ver, ty, length, xid = struct.unpack("!BBHI", self.read_exact(8))
                body = self.read_exact(length - 8)
                if ty == OFPT_ECHO_REQUEST:
                    self.s.sendall(struct.pack("!BBHI", ver, OFPT_ECHO_REPLY, length, xid) + body)
                elif ty == OFPT_ERROR:
                    with self.lock:
                        self.errors += 1
                        if self.first_error is None:
                            self.first_error = struct.unpack("!HH", body[:4])
                elif ty == OFPT_BARRIER_REPLY:
                    with self.cond:
                        self.barriers[xid] = time.monotonic()
                        self.cond.notify_all()
        except (OSError, ConnectionError, struct.error):
            with self.cond:
                self.closed = True
                self.cond.notify_all()

    def barrier(self, xid, timeout=600):
        """Sends a barrier and waits for its reply; returns the time the reply arrived."""
        self.s.sendall(msg(OFPT_BARRIER_REQUEST, xid))
        deadline = time.monotonic() + timeout
        with self.cond:
            while xid not in self.barriers:
                left = deadline - time.monotonic()
                if self.closed or left <= 0:
                    raise RuntimeError("no barrier reply" + (" (connection closed)" if self.closed else ""))
                self.cond.wait(left)
            return self.barriers[xid]

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


# ---------------------------------------------------------------------------------------------
# Devices under test


class Dut:
    """One switch between the topology's two DUT ports, with a passive OpenFlow listener."""

    def __init__(self, name, topo, tmp, ovs_ports):
        self.name, self.t, self.tmp, self.ovs_ports = name, topo, tmp, ovs_ports
        self.port = free_port()
        self.target = f"tcp:127.0.0.1:{self.port}"
        self.bridge = topo.d0[:-2] + "fs"
        self.proc = None
        self.ovs_dir = None

    def start(self):
        getattr(self, "start_" + self.name)()
        deadline = time.time() + 30
        while True:
            r = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "show", self.target], capture_output=True,
                               text=True, stdin=subprocess.DEVNULL, env=self.ofctl_env())
            if r.returncode == 0:
                break
            if self.proc and self.proc.poll() is not None:
                raise RuntimeError(f"exited at start: see {self.tmp}/{self.name}.log")
            if time.time() > deadline:
                raise RuntimeError(f"no OpenFlow answer on {self.target}: {r.stderr.strip()}")
            time.sleep(0.3)

    def start_xdpswitch(self):
        extra = os.environ.get("XS_RUN_ARGS", "").split()
        argv = [p2p.XS, "--log", "warn", "run", "--port", self.t.d0, "--port", self.t.d1,
                "--listen", f"ptcp:{self.port}", "--bridge", self.bridge, "--fail-mode", "secure",
                "--ctl", os.path.join(self.tmp, "xs.ctl"), *extra]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(self.tmp, "xdpswitch.log"), "w"))

    def start_ovs(self):
        d = tempfile.mkdtemp(prefix="xf-ovs-")
        self.ovs_dir = d
        env = dict(os.environ, OVS_RUNDIR=d, OVS_DBDIR=d, OVS_LOGDIR=d, OVS_SYSCONFDIR=d)
        db = f"unix:{d}/db.sock"
        sh("ovsdb-tool", "create", f"{d}/conf.db", "/usr/share/openvswitch/vswitch.ovsschema", env=env)
        sh("ovsdb-server", f"{d}/conf.db", f"--remote=punix:{d}/db.sock", f"--pidfile={d}/ovsdb-server.pid",
           f"--log-file={d}/ovsdb-server.log", "-vconsole:off", "--detach", env=env)
        sh("ovs-vsctl", f"--db={db}", "--no-wait", "init", env=env)
        sh("ovs-vswitchd", db, f"--pidfile={d}/ovs-vswitchd.pid", f"--log-file={d}/ovs-vswitchd.log",
           "-vconsole:off", "--detach", env=env)
        vs = ["ovs-vsctl", f"--db={db}", "--timeout=20"]
        sh(*vs, "add-br", self.bridge, "--", "set", "bridge", self.bridge, "datapath_type=netdev",
           "protocols=OpenFlow10,OpenFlow13", "other-config:disable-in-band=true", env=env)
        sh(*vs, "set-fail-mode", self.bridge, "secure", env=env)
        for i, dev in ((1, self.t.d0), (2, self.t.d1)):
            extra = ["--", "set", "interface", dev, f"ofport_request={i}"]
            if self.ovs_ports == "afxdp":
                extra += ["type=afxdp"]
            else:
                quiet("ethtool", "-K", dev, "gro", "on")  # the XDP generator's frames need GRO on veth
            sh(*vs, "add-port", self.bridge, dev, *extra, env=env)
        sh(*vs, "set-controller", self.bridge, f"ptcp:{self.port}:127.0.0.1", env=env)

    def ofctl_env(self):
        # ovs-ofctl opens a control socket in OVS_RUNDIR; keep it in our scratch directory.
        return dict(os.environ, OVS_RUNDIR=self.tmp)

    def ofctl(self, *args, timeout=None):
        r = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", args[0], self.target, *args[1:]], capture_output=True,
                           text=True, stdin=subprocess.DEVNULL, env=self.ofctl_env(), timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"ovs-ofctl {args[0]} failed: {r.stderr.strip()}")
        return r.stdout

    def flow_count(self):
        out = self.ofctl("dump-aggregate")
        for f in out.replace(",", " ").split():
            if f.startswith("flow_count="):
                return int(f.split("=", 1)[1])
        raise RuntimeError(f"no flow_count in {out!r}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None
        if self.ovs_dir:
            d = self.ovs_dir
            for daemon in ("ovs-vswitchd", "ovsdb-server"):
                try:
                    pid = int(open(f"{d}/{daemon}.pid").read().strip())
                except (OSError, ValueError):
                    continue
                quiet("kill", str(pid))
                for _ in range(100):
                    if not os.path.exists(f"/proc/{pid}"):
                        break
                    time.sleep(0.1)
            shutil.rmtree(d, ignore_errors=True)
            self.ovs_dir = None
            quiet("ip", "link", "del", self.bridge)  # OVS's LOCAL tap is persistent
        for dev in (self.t.d0, self.t.d1):
            quiet("ethtool", "-K", dev, "gro", "off")
            quiet("ip", "link", "set", "dev", dev, "xdp", "off")


# ---------------------------------------------------------------------------------------------
# The three parts


def part_add_flows(dut, rules, tmp):
    path = os.path.join(tmp, f"rules-{rules}.txt")
    if not os.path.exists(path):
        with open(path, "w") as f:
            for i in range(rules):
                src, sport = five_tuple(i)
                f.write(f"priority=100,udp,in_port=1,nw_src={'.'.join(map(str, src))},nw_dst=10.200.0.1,"
                        f"tp_src={sport},tp_dst=53,actions=output:2\n")
    dut.ofctl("del-flows")
    t0 = time.monotonic()
    dut.ofctl("add-flows", path, timeout=900)
    secs = time.monotonic() - t0
    installed = dut.flow_count()
    t0 = time.monotonic()
    dut.ofctl("del-flows", timeout=900)
    del_secs = time.monotonic() - t0
    return {"rules": rules, "seconds": secs, "rules_per_s": rules / secs, "installed": installed,
            "del_seconds": del_secs}


def part_flow_mods(dut, n):
    dut.ofctl("del-flows")
    c = OfClient(dut.port)
    try:
        c.barrier(1, timeout=30)  # connected and idle
        blob = b"".join(flow_mod(100 + i, i) for i in range(n))
        t0 = time.monotonic()
        c.s.sendall(blob)
        t1 = c.barrier(2)
        secs = t1 - t0
        errors, first = c.errors, c.first_error
    finally:
        c.close()
    installed = dut.flow_count()
    dut.ofctl("del-flows", timeout=900)
    return {"flow_mods": n, "seconds": secs, "flow_mods_per_s": n / secs, "installed": installed,
            "errors": errors, "first_error": first}


class Churn(threading.Thread):
    """Adds and deletes rules that no test packet matches, at `rate` flow-mods per second."""

    def __init__(self, dut, rate, secs):
        super().__init__(daemon=True)
        self.dut, self.rate, self.secs = dut, rate, secs
        self.sent, self.seconds, self.errors, self.failure = 0, 0.0, 0, None

    def run(self):
        try:
            c = OfClient(self.dut.port)
            c.barrier(1, timeout=30)
        except Exception as e:  # reported with the results
            self.failure = str(e)
            return
        tick = 0.01
        per_tick = max(1, int(self.rate * tick))
        live = []  # rules added and not yet deleted
        i, xid = 0, 10
        t0 = time.monotonic()
        try:
            while time.monotonic() - t0 < self.secs:
                batch = []
                for _ in range(per_tick):
                    if len(live) >= 1000:
                        j = live.pop(0)
                        batch.append(flow_mod(xid, j, OFPFC_DELETE_STRICT, priority=200, base_ip=11))
                    else:
                        batch.append(flow_mod(xid, i, OFPFC_ADD, priority=200, base_ip=11))
                        live.append(i)
                        i += 1
                    xid += 1
                c.s.sendall(b"".join(batch))
                self.sent += len(batch)
                next_t = t0 + (self.sent / per_tick) * tick
                delay = next_t - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            c.barrier(xid + 1, timeout=120)
            self.seconds = time.monotonic() - t0
            self.errors = c.errors
        except Exception as e:
            self.failure = str(e)
        finally:
            c.close()


def measure(topo, secs, rate):
    """One forwarding run at `rate` pps offered (0: as fast as the generator goes)."""
    sink = subprocess.Popen(["ip", "netns", "exec", topo.sink_ns, p2p.XS, "pktgen", "sink", "--dev", "eth0",
                             "--duration", str(secs + 2), "--json"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    time.sleep(0.8)
    args = ["ip", "netns", "exec", topo.gen_ns, p2p.XS, "pktgen", "send", "--dev", "eth0", "--size", "60",
            "--flows", "1", "--duration", str(secs), "--json", "--src-ip", "198.18.0.1", "--dst-ip", "198.18.0.2",
            "--src-mac", topo.gen_mac, "--dst-mac", topo.sink_mac]
    if rate:
        args += ["--rate", str(int(rate))]
    gen = sh(*args)
    out, _ = sink.communicate(timeout=secs + 30)
    return p2p.rates(gen, out, secs)


def part_churn(dut, topo, secs, churn_rate, offered):
    dut.ofctl("del-flows")
    dut.ofctl("add-flow", "priority=10,in_port=1,actions=output:2")
    dut.ofctl("add-flow", "priority=10,in_port=2,actions=output:1")
    time.sleep(0.5)
    rows = []
    for rate in (0, offered):
        for churn in (0, churn_rate):
            ch = None
            if churn:
                ch = Churn(dut, churn, secs + 1.5)
                ch.start()
                time.sleep(0.5)
            r = measure(topo, secs, rate)
            if ch:
                ch.join(timeout=secs + 180)
                r["churn_sent"] = ch.sent
                r["churn_rate"] = ch.sent / ch.seconds if ch.seconds else 0.0
                r["churn_errors"] = ch.errors
                if ch.failure:
                    r["churn_failure"] = ch.failure
            r.update({"offered": rate or "max", "churn": churn})
            rows.append(r)
            print(f"flowsetup: {dut.name:>9} churn {churn:>6}/s offered {int(rate) or 'max':>8}: "
                  f"{r['pps'] / 1e6:6.3f} Mpps rx, loss {r['loss'] * 100:5.1f}%", flush=True)
    dut.ofctl("del-flows")
    return rows


# ---------------------------------------------------------------------------------------------
# Report


def report(results, duts, out_dir, meta):
    med = lambda runs, k: statistics.median([r[k] for r in runs]) if runs else None
    lines = [f"# Flow-setup benchmark, {meta['date']}", "",
             f"Machine: {meta['machine']}. Command: `{meta['command']}`.",
             f"OVS ports: {meta['ovs_ports']}. Medians of {meta['reps']} run(s).", "",
             f"## 1. `ovs-ofctl add-flows` of {meta['rules']} five-tuple rules", "",
             "| DUT | seconds | rules/s | installed | del-flows seconds |", "|---|---|---|---|---|"]
    for d in duts:
        runs = results[d].get("add_flows") or []
        if not runs:
            lines.append(f"| {d} | n/a | | | |")
            continue
        lines.append(f"| {d} | {med(runs, 'seconds'):.2f} | {med(runs, 'rules_per_s'):,.0f} | "
                     f"{min(r['installed'] for r in runs)} | {med(runs, 'del_seconds'):.2f} |")
    lines += ["", f"## 2. {meta['flow_mods']} flow-mods from a raw OpenFlow 1.3 client, then a barrier", "",
              "| DUT | seconds to barrier reply | flow-mods/s | installed | errors |", "|---|---|---|---|---|"]
    for d in duts:
        runs = results[d].get("flow_mods") or []
        if not runs:
            lines.append(f"| {d} | n/a | | | |")
            continue
        lines.append(f"| {d} | {med(runs, 'seconds'):.2f} | {med(runs, 'flow_mods_per_s'):,.0f} | "
                     f"{min(r['installed'] for r in runs)} | {max(r['errors'] for r in runs)} |")
    lines += ["", f"## 3. Forwarding 64-byte UDP, {meta['duration']} s, with and without flow-mod churn", "",
              "| DUT | offered | churn (target) | churn achieved/s | Mpps received | loss |", "|---|---|---|---|---|---|"]
    for d in duts:
        rows = results[d].get("churn") or []
        if not rows:
            lines.append(f"| {d} | n/a | | | | |")
            continue
        for r in rows:
            offered = "max" if r["offered"] == "max" else f"{r['offered'] / 1e6:g} Mpps"
            achieved = f"{r.get('churn_rate', 0):,.0f}" if r["churn"] else "-"
            if r.get("churn_failure"):
                achieved += f" ({r['churn_failure']})"
            lines.append(f"| {d} | {offered} (sent {r['offered_pps'] / 1e6:.2f}) | {r['churn'] or '-'} | {achieved} | "
                         f"{r['pps'] / 1e6:.3f} | {r['loss'] * 100:.1f}% |")
    errors = [f"- {d}: {e}" for d in duts for e in results[d].get("errors", [])]
    if errors:
        lines += ["", "Errors:", *errors]
    return p2p.write_results(out_dir, "\n".join(lines) + "\n", {"meta": meta, "results": results})


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dut", "--duts", dest="duts", default=",".join(ALL_DUTS))
    ap.add_argument("--rules", type=int, default=100_000, help="rules for part 1")
    ap.add_argument("--flow-mods", type=int, default=50_000, help="flow-mods for part 2")
    ap.add_argument("--churn", type=int, default=10_000, help="flow-mods per second during part 3")
    ap.add_argument("--offered", type=float, default=1e6, help="the fixed offered rate of part 3 (pps)")
    p2p.add_run_args(ap, 5, 1, "smoke run: 5000 rules and flow-mods, 2 s")
    ap.add_argument("--parts", default="add-flows,flow-mods,churn")
    ap.add_argument("--ovs-ports", choices=["afxdp", "system"], default="afxdp")
    a = ap.parse_args()
    if a.quick:
        a.rules, a.flow_mods, a.duration, a.reps = 5000, 5000, 2, 1
    duts = [d for d in a.duts.split(",") if d]
    parts = [p for p in a.parts.split(",") if p]
    for d in duts:
        if d not in ALL_DUTS:
            sys.exit(f"flowsetup: --dut: unknown DUT {d!r} (known: {', '.join(ALL_DUTS)})")
    if shutil.which("ovs-ofctl") is None:
        sys.exit("flowsetup: needs ovs-ofctl (apt-get install openvswitch-switch)")
    if "ovs" in duts and shutil.which("ovs-vswitchd") is None:
        print("flowsetup: Open vSwitch not installed: skipping ovs", file=sys.stderr)
        duts.remove("ovs")
    stamp, out_dir = p2p.run_stamp_and_dir("flowsetup", a.out)
    meta = p2p.run_meta("flowsetup", stamp, a, rules=a.rules, flow_mods=a.flow_mods, churn=a.churn,
                        offered=a.offered, ovs_ports=a.ovs_ports)
    topo, tmp = p2p.begin_run("xf-")
    results = {d: {"errors": []} for d in duts}
    dut = None
    try:
        topo.up()
        for d in duts:
            dut = Dut(d, topo, tmp, a.ovs_ports)
            try:
                dut.start()
            except Exception as e:  # a DUT that can't start is reported, the others still run
                print(f"flowsetup: {d}: {e}", file=sys.stderr)
                results[d]["errors"].append(f"start: {e}")
                dut.stop()
                dut = None
                continue
            for part, fn in (("add-flows", lambda: part_add_flows(dut, a.rules, tmp)),
                             ("flow-mods", lambda: part_flow_mods(dut, a.flow_mods)),
                             ("churn", lambda: part_churn(dut, topo, a.duration, a.churn, a.offered))):
                if part not in parts:
                    continue
                key = part.replace("-", "_")
                for _ in range(1 if part == "churn" else a.reps):
                    try:
                        r = fn()
                    except Exception as e:
                        print(f"flowsetup: {d} {part}: {e}", file=sys.stderr)
                        results[d]["errors"].append(f"{part}: {e}")
                        continue
                    if part == "churn":
                        results[d][key] = r
                    else:
                        results[d].setdefault(key, []).append(r)
                        rate = r.get("rules_per_s") or r.get("flow_mods_per_s")
                        print(f"flowsetup: {d:>9} {part}: {r['seconds']:.2f} s ({rate:,.0f}/s), "
                              f"{r['installed']} installed", flush=True)
            dut.stop()
            dut = None
    finally:
        p2p.end_run(dut, topo, tmp)
    print(report(results, duts, out_dir, meta))
    print(f"flowsetup: results in {out_dir}")


if __name__ == "__main__":
    main()
