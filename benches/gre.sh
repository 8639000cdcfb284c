#!/usr/bin/env bash
# The GRE benchmark: encapsulation and decapsulation next to plain forwarding, xdpswitch and
# Open vSwitch 3.1 userspace GRE side by side in one run. See benches/gre.py --help.
# Usage: sudo benches/gre.sh [--quick] [--duts a,b] [--size 64] [--flows N] [--duration S]
#                            [--reps N] [--out DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then echo "gre.sh: needs root (namespaces, XDP): sudo benches/gre.sh" >&2; exit 1; fi
cargo build --release --quiet
if ! command -v ovs-vswitchd >/dev/null; then
  echo "gre.sh: installing Open vSwitch (Debian packages) for the side-by-side runs" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openvswitch-switch >/dev/null) ||
    echo "gre.sh: could not install Open vSwitch: its rows will be skipped" >&2
fi
exec python3 benches/gre.py "$@"
