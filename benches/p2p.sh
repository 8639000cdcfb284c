#!/usr/bin/env bash
# The side-by-side port-to-port benchmark: xdpswitch, a bare AF_XDP forwarder, Open vSwitch
# (afxdp and system ports), the Linux bridge and kernel XDP_REDIRECT, in one run.
# Usage: sudo benches/p2p.sh [--quick] [--duts a,b] [--sizes 64,512] [--flows 1,1000]
#                            [--duration S] [--reps N] [--out DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then echo "p2p.sh: needs root (namespaces, XDP): sudo benches/p2p.sh" >&2; exit 1; fi
cargo build --release --quiet
if ! command -v ovs-vswitchd >/dev/null; then
  echo "p2p.sh: installing Open vSwitch (Debian packages) for the side-by-side runs" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openvswitch-switch >/dev/null) ||
    echo "p2p.sh: could not install Open vSwitch: its rows will be skipped" >&2
fi
venv=target/bench-venv
if [ ! -x "$venv/bin/python3" ]; then
  python3 -m venv "$venv" && "$venv/bin/pip" install -q matplotlib ||
    echo "p2p.sh: could not install matplotlib: no chart" >&2
fi
py=python3; [ -x "$venv/bin/python3" ] && py="$venv/bin/python3"
exec "$py" benches/p2p.py "$@"
