#!/usr/bin/env bash
# The long run: an hour (default) of mixed traffic (rules and NORMAL, steady flows and new
# flows) with continuous flow churn; RSS, megaflows and counters sampled every 30 s into
# results/longrun/longrun-STAMP.csv; prints the loss per flow and whether memory stayed flat.
# Usage: sudo benches/longrun.sh [--minutes N] [--every S] [--churn FLOW_MODS_PER_S]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then echo "longrun.sh: needs root (namespaces, XDP): sudo benches/longrun.sh" >&2; exit 1; fi
cargo build --release --quiet
exec python3 benches/longrun.py "$@"
