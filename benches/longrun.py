#!/usr/bin/env python3
"""The long run: mixed traffic and continuous flow churn for an hour (default), memory sampled.

Three hosts (namespaces a, b, c) on one xdpswitch. Rules send UDP to ports 5001/5002 (a->b,
a->c); `priority=0,actions=NORMAL` carries the rest: b->c on 5003, c->a on 5004, b->a on 5005
from source ports that cycle over 2000 values (new flows: upcalls, megaflows installed and
expiring), and pings a->b. A raw OpenFlow 1.3 client (benches/flowsetup.py's) churns rules all
along: adds and strict deletes of five-tuple rules (about 2500 live at a time) in the same table
as the forwarding rules, a barrier every 200 flow-mods, so every barrier re-translates the
megaflows.

Every 30 s (`--every`) one CSV row goes to results/longrun/longrun-STAMP.csv: elapsed seconds,
switch RSS, megaflows, rules, flow-mods sent, upcalls and upcall drops, packets received by the
poll threads, MAC addresses learned, and datagrams received per flow so far. At the end it prints the
loss per flow and whether memory is flat: the median RSS of the last third of the samples
against the median of the first third (after the first two minutes of warm-up), within
max(4 MiB, 5 %).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import flowsetup  # noqa: E402  (the raw OpenFlow client)
import p2p  # noqa: E402
from p2p import quiet, sh  # noqa: E402

FLOWS = [  # (name, from, to, dport, paced datagrams per second, vary the source port)
    ("a-b-rule", "a", "b", 5001, 500, False),
    ("a-c-rule", "a", "c", 5002, 500, False),
    ("b-c-normal", "b", "c", 5003, 500, False),
    ("c-a-normal", "c", "a", 5004, 500, False),
    ("b-a-newflows", "b", "a", 5005, 200, True),
]

TRAFFIC = r"""
import socket,sys,time,json,threading
me=sys.argv[1]; flows=json.loads(sys.argv[2]); ips=json.loads(sys.argv[3]); status=sys.argv[4]
counts={}
def recv(port,name):
    s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.setsockopt(socket.SOL_SOCKET,33,4<<20)
    s.bind(('0.0.0.0',port)); counts[name]=0
    while True:
        s.recv(2048); counts[name]+=1
sent={}
def send(name,dst,port,pps,vary):
    socks=[socket.socket(socket.AF_INET,socket.SOCK_DGRAM)]
    if vary:
        socks=[]
        for i in range(2000):
            x=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); x.bind(('0.0.0.0',20000+i)); socks.append(x)
    sent[name]=0; i=0; t=time.time()
    while True:
        socks[i%len(socks)].sendto(bytes(64),(ips[dst],port)); i+=1; sent[name]=i
        t+=1.0/pps; d=t-time.time()
        if d>0: time.sleep(d)
for name,src,dst,port,pps,vary in flows:
    if dst==me: threading.Thread(target=recv,args=(port,name),daemon=True).start()
    if src==me: threading.Thread(target=send,args=(name,dst,port,pps,vary),daemon=True).start()
while True:
    time.sleep(5)
    with open(status+'.tmp','w') as f: json.dump({'sent':sent,'recv':counts},f)
    import os; os.replace(status+'.tmp',status)
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=60)
    ap.add_argument("--every", type=float, default=30, help="seconds between samples")
    ap.add_argument("--churn", type=int, default=2000, help="flow-mods per second")
    ap.add_argument("--out", default="results/longrun")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    csv_path = os.path.join(args.out, f"longrun-{stamp}.csv")
    tmp = tempfile.mkdtemp(prefix="xs-longrun-")
    t = f"{os.getpid() % 10000}"
    hosts = {h: (f"lr{t}{h}", f"lr{t}{h}sw", f"198.19.99.{i + 1}") for i, h in enumerate("abc")}
    procs, sw = [], None
    try:
        for h, (ns, dev, ip) in hosts.items():
            sh("ip", "netns", "add", ns)
            sh("ip", "link", "add", dev, "type", "veth", "peer", "name", "eth0", "netns", ns)
            sh("ip", "link", "set", dev, "up")
            sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            # Partial checksums and offloads the userspace datapath would pass on unfinished.
            quiet("ip", "netns", "exec", ns, "ethtool", "-K", "eth0", "tx", "off", "gso", "off", "tso", "off")
            quiet("ethtool", "-K", dev, "tx", "off", "gso", "off", "tso", "off")
        port = flowsetup.free_port()
        ctl = os.path.join(tmp, "xs.ctl")
        flows = os.path.join(tmp, "flows")
        with open(flows, "w") as f:
            f.write("priority=100,udp,tp_dst=5001,actions=output:2\n"
                    "priority=100,udp,tp_dst=5002,actions=output:3\n"
                    "priority=0,actions=NORMAL\n")
        log = open(os.path.join(args.out, f"longrun-{stamp}.log"), "w")
        sw = subprocess.Popen([p2p.XS, "--log", "warn", "run", *sum((["--port", d] for _, d, _ in hosts.values()), []),
                               "--flows", flows, "--listen", f"ptcp:{port}", "--ctl", ctl, "--fail-mode", "secure",
                               "--bridge", f"lr{t}br"], stdin=subprocess.DEVNULL, stdout=log, stderr=log)

        def ctl_json(*argv):
            r = subprocess.run([p2p.XS, "ctl", "--ctl", ctl, "--json", *argv], capture_output=True, text=True)
            try:
                return json.loads(r.stdout) if r.returncode == 0 else None
            except ValueError:
                return None

        for _ in range(100):
            if subprocess.run([p2p.XS, "ctl", "--ctl", ctl, "version"], capture_output=True).returncode == 0:
                break
            time.sleep(0.2)
        time.sleep(1)
        ips = {h: ip for h, (_, _, ip) in hosts.items()}
        for h, (ns, _, _) in hosts.items():
            procs.append(subprocess.Popen(["ip", "netns", "exec", ns, "python3", "-c", TRAFFIC, h, json.dumps(FLOWS),
                                           json.dumps(ips), os.path.join(tmp, f"{h}.json")],
                                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL))
        procs.append(subprocess.Popen(["ip", "netns", "exec", hosts["a"][0], "ping", "-q", "-i", "0.5", ips["b"]],
                                      stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL))
        of = flowsetup.OfClient(port)
        xid, sent_mods, i = 100, 0, 0
        start = time.time()
        end = start + args.minutes * 60
        next_sample = start
        rows = []
        cols = ["t_s", "rss_kib", "megaflows", "rules", "flow_mods", "upcalls", "upcall_dropped", "rx_packets",
                "mac_learned"] + [f"recv_{f[0]}" for f in FLOWS]
        with open(csv_path, "w") as csv:
            csv.write(",".join(cols) + "\n")
            while time.time() < end:
                # One churn step: 200 flow-mods and a barrier, paced to --churn per second.
                step_start = time.time()
                for _ in range(100):
                    xid += 1
                    of.s.sendall(flowsetup.flow_mod(xid, i % 5000, priority=50, base_ip=11))
                    xid += 1
                    old = (i + 2500) % 5000
                    of.s.sendall(flowsetup.flow_mod(xid, old, command=flowsetup.OFPFC_DELETE_STRICT, priority=50,
                                                    base_ip=11))
                    i += 1
                sent_mods += 200
                xid += 1
                of.barrier(xid)
                time.sleep(max(0.0, 200 / args.churn - (time.time() - step_start)))
                if time.time() >= next_sample:
                    next_sample += args.every
                    st = ctl_json("pmd-stats") or {}
                    pm = st.get("pmds", [])
                    mf = ctl_json("dump-megaflows") or []
                    fl = subprocess.run([p2p.XS, "ctl", "--ctl", ctl, "dump-flows"], capture_output=True, text=True)
                    rss = 0
                    with open(f"/proc/{sw.pid}/status") as f:
                        for line in f:
                            if line.startswith("VmRSS:"):
                                rss = int(line.split()[1])
                    recv = {}
                    for h in hosts:
                        try:
                            with open(os.path.join(tmp, f"{h}.json")) as f:
                                recv.update(json.load(f)["recv"])
                        except (OSError, ValueError):
                            pass
                    fdb = (st.get("fdb") or {})
                    row = [round(time.time() - start), rss, len(mf), fl.stdout.count("actions="), sent_mods,
                           sum(p.get("upcalls", 0) for p in pm), sum(p.get("upcall_dropped", 0) for p in pm),
                           sum(p.get("rx_packets", 0) for p in pm), fdb.get("learned", 0)]
                    row += [recv.get(f[0], 0) for f in FLOWS]
                    rows.append(row)
                    csv.write(",".join(map(str, row)) + "\n")
                    csv.flush()
                    print(f"[{row[0]:>5} s] RSS {rss} KiB, megaflows {row[2]}, rules {row[3]}, "
                          f"flow-mods {sent_mods}, upcalls {row[5]} (dropped {row[6]})", flush=True)
                if sw.poll() is not None:
                    raise RuntimeError(f"xdpswitch exited ({sw.returncode}): see its log")
        elapsed = time.time() - start
        time.sleep(6)  # the traffic processes write their counts every 5 s
        final = {"sent": {}, "recv": {}}
        for h in hosts:
            try:
                with open(os.path.join(tmp, f"{h}.json")) as f:
                    d = json.load(f)
                final["sent"].update(d["sent"])
                final["recv"].update(d["recv"])
            except (OSError, ValueError):
                pass
        print(f"== longrun: {elapsed / 60:.1f} min, {sent_mods} flow-mods ({sent_mods / elapsed:.0f}/s), "
              f"OpenFlow errors {of.errors}")
        for name, *_ in FLOWS:
            s, r = final["sent"].get(name, 0), final["recv"].get(name, 0)
            print(f"  {name:<14} sent {s:>9} received {r:>9} lost {s - r} ({100 * (s - r) / max(s, 1):.3f} %)"
                  " (counted while senders run: the last few in flight count as lost)")
        warm = [r for r in rows if r[0] >= 120] or rows
        third = max(1, len(warm) // 3)
        first = statistics.median(r[1] for r in warm[:third])
        last = statistics.median(r[1] for r in warm[-third:])
        margin = max(4096, first * 0.05)
        flat = last <= first + margin
        print(f"  RSS median first third {first:.0f} KiB, last third {last:.0f} KiB (margin {margin:.0f} KiB): "
              f"memory {'FLAT' if flat else 'GROWING'}; samples in {csv_path}")
        of.close()
        return 0 if flat and sw.poll() is None else 1
    finally:
        for p in procs:
            p.kill()
        if sw and sw.poll() is None:
            sw.terminate()
            try:
                sw.wait(15)
            except subprocess.TimeoutExpired:
                sw.kill()
        for h, (ns, dev, _) in hosts.items():
            quiet("ip", "link", "del", dev)
            quiet("ip", "netns", "del", ns)


if __name__ == "__main__":
    sys.exit(main())
