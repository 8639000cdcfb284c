#!/usr/bin/env bash
# The flow-setup benchmark: ovs-ofctl add-flows of 100 000 rules, flow-mods per second from a
# raw OpenFlow client, and forwarding under flow-mod churn; xdpswitch and Open vSwitch side by
# side in one run.
# Usage: sudo benches/flowsetup.sh [--quick] [--dut xdpswitch,ovs] [--rules N] [--flow-mods N]
#                                  [--churn N] [--offered PPS] [--duration S] [--reps N]
#                                  [--parts add-flows,flow-mods,churn] [--ovs-ports afxdp|system]
#                                  [--out DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then echo "flowsetup.sh: needs root (namespaces, XDP): sudo benches/flowsetup.sh" >&2; exit 1; fi
cargo build --release --quiet
if ! command -v ovs-vswitchd >/dev/null; then
  echo "flowsetup.sh: installing Open vSwitch (Debian packages): ovs-ofctl and the side-by-side runs" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openvswitch-switch >/dev/null) ||
    echo "flowsetup.sh: could not install Open vSwitch" >&2
fi
exec python3 benches/flowsetup.py "$@"
