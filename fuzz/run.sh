#!/usr/bin/env bash
# Runs each fuzz target for SECONDS (default 20; CI passes 20, so the 6 targets take ~120 s
# plus the build) on stable Rust (RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z flags).
# Exits non-zero if a target crashes; the crashing input lands in fuzz/artifacts/<target>/.
# Seeds are read from fuzz/seeds/<target>/ (committed, small; refreshed by
# `cargo test --lib write_fuzz_seed_corpus -- --ignored`); what libFuzzer finds goes to
# fuzz/corpus/<target>/ (git-ignored, kept between runs).
#   fuzz/run.sh [SECONDS] [TARGET...]      (no TARGET: all of them)
# Targets: decode (ofp::decode), channel (ofp::Channel), flowsyntax (ovs-ofctl flow syntax),
# extract (flow-key extraction and the packet views), gre_decap (underlay classification and
# GRE decapsulation), ovsdb (the OVSDB client Session and datum round trip). See
# docs/reliability.md.
set -euo pipefail
secs="${1:-20}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(decode channel flowsyntax extract gre_decap ovsdb)
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
status=0
for target in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$target"
    echo "== fuzz target $target for ${secs}s"
    if ! cargo fuzz run "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
        -max_total_time="$secs" -max_len=4096 -print_final_stats=1; then
        echo "== fuzz target $target FAILED (see fuzz/artifacts/$target/)" >&2
        status=1
    fi
done
exit "$status"
