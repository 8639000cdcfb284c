#!/usr/bin/env bash
# The NORMAL (MAC learning) benchmark: xdpswitch and Open vSwitch (afxdp ports), each with a
# static port-to-port rule and with actions=NORMAL over 1 000 learned MACs, plus a learning
# flood of random source MACs, in one run. See benches/normal.py --help.
# Usage: sudo benches/normal.sh [--quick] [--duts a,b] [--macs N] [--duration S] [--reps N]
#                               [--flood-secs S] [--established-rate PPS] [--out DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then echo "normal.sh: needs root (namespaces, XDP): sudo benches/normal.sh" >&2; exit 1; fi
cargo build --release --quiet
if ! command -v ovs-vswitchd >/dev/null; then
  echo "normal.sh: installing Open vSwitch (Debian packages) for the side-by-side runs" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openvswitch-switch >/dev/null) ||
    echo "normal.sh: could not install Open vSwitch: its rows will be skipped" >&2
fi
exec python3 benches/normal.py "$@"
