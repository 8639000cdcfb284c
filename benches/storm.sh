#!/usr/bin/env bash
# The long flow-mod storm: tests/storm.rs (a raw OpenFlow 1.3 client pipelining adds,
# modifies and strict/non-strict deletes of overlapping rules, a barrier and marker datagrams
# every batch, background UDP all along) run for minutes instead of seconds, with the
# switch's RSS sampled every 5 s.
# Usage: sudo benches/storm.sh [--minutes N] [--batch N] [--markers N] [--pps N] [--offload on|off]
# Prints flow-mods/s, markers that took a stale rule (must be 0), background loss, RSS
# samples; everything goes to results/storm/storm-STAMP.{log,csv}.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then echo "storm.sh: needs root (namespaces, XDP): sudo benches/storm.sh" >&2; exit 1; fi
minutes=3 batch=500 markers=5 pps=2000 offload=on
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --markers) markers=$2; shift 2 ;;
    --pps) pps=$2; shift 2 ;;
    --offload) offload=$2; shift 2 ;;
    *) echo "storm.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
stamp=$(date -u +%Y%m%d-%H%M%S)
out=results/storm
mkdir -p "$out"
log=$out/storm-$stamp.log csv=$out/storm-$stamp.csv
cargo test --release --quiet --no-run --test storm
echo "time_s,pid,rss_kib" > "$csv"
secs=$((minutes * 60))
# Each of the test's two storms runs for the whole duration (the second replays the first).
XS_STORM_SECS=$secs XS_STORM_BATCH=$batch XS_STORM_MARKERS=$markers XS_STORM_PPS=$pps \
  XS_OFFLOAD=$([ "$offload" = off ] && echo off || echo on) \
  cargo test --release --quiet --test storm -- --test-threads=1 --nocapture > "$log" 2>&1 &
test_pid=$!
start=$(date +%s)
# Sample the RSS of the xdpswitch the test started (a child of the test binary).
while kill -0 "$test_pid" 2>/dev/null; do
  for pid in $(pgrep -P "$(pgrep -P "$test_pid" -d, || echo 0)" -x xdpswitch 2>/dev/null || true) \
             $(pgrep -P "$test_pid" -x xdpswitch 2>/dev/null || true); do
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    [ -n "$rss" ] && echo "$(( $(date +%s) - start )),$pid,$rss" >> "$csv"
  done
  sleep 5
done
rc=0; wait "$test_pid" || rc=$?
echo "== storm ($minutes min per storm, batch $batch, offload $offload): exit $rc"
grep -E "^storm (first|second)|^RSS after" "$log" || true
grep -E "panicked|took the rule" "$log" | cut -c1-300 | head -5 || true
echo "RSS samples (KiB): $(cut -d, -f3 "$csv" | tail -n +2 | tr '\n' ' ')"
echo "log: $log  samples: $csv"
exit "$rc"
