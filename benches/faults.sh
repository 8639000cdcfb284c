#!/usr/bin/env bash
# The long versions of tests/faults.rs: the same end-to-end fault tests (controller loss and
# return in secure and standalone mode, a packet-out flood, kill -9 and SIGTERM with a restart)
# with minutes-long outages and streams, and a bigger flood. Each test prints what it measured
# ("faults: ..." lines); the output is also kept in the log file named at the end.
# Usage: sudo benches/faults.sh [SECONDS] [PACKET_OUTS] [TEST-NAME-FILTER]
#   SECONDS      the fault scale (XS_FAULT_SECS): how long the controller stays away, how long
#                streams and traffic before a kill last (default 120)
#   PACKET_OUTS  packet-outs in the flood (XS_FAULT_PACKET_OUTS, default 2000000)
#   --release builds are used; XS_OFFLOAD=off runs every switch without the XDP fast path.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then echo "faults.sh: needs root (namespaces, XDP): sudo benches/faults.sh" >&2; exit 1; fi
secs=${1:-120}
pos=${2:-2000000}
filter=${3:-}
mkdir -p results
log=results/faults-$(date -u +%Y%m%dT%H%M%SZ).log
echo "faults.sh: XS_FAULT_SECS=$secs XS_FAULT_PACKET_OUTS=$pos; output in $log" >&2
XS_FAULT_SECS=$secs XS_FAULT_PACKET_OUTS=$pos \
  cargo test --release --test faults -- --test-threads=1 --nocapture $filter 2>&1 | tee "$log"
echo "== measured" >&2
grep -o 'faults: .*' "$log" || true
