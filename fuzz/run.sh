#!/usr/bin/env bash
# Runs each fuzz target for SECONDS (default 20) on stable Rust (RUSTC_BOOTSTRAP=1 lets
# cargo-fuzz pass its -Z flags). Exits non-zero if a target crashes; the crashing input lands
# in fuzz/artifacts/<target>/. Seeds are read from fuzz/seeds/<target>/ (committed, small;
# refreshed by `cargo test --lib write_fuzz_seed_corpus -- --ignored`); what libFuzzer finds
# goes to fuzz/corpus/<target>/ (git-ignored, kept between runs).
#   fuzz/run.sh [SECONDS]
set -euo pipefail
secs="${1:-20}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
status=0
for target in decode channel; do
    mkdir -p "fuzz/corpus/$target"
    echo "== fuzz target $target for ${secs}s"
    if ! cargo fuzz run "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
        -max_total_time="$secs" -max_len=4096 -print_final_stats=1; then
        echo "== fuzz target $target FAILED (see fuzz/artifacts/$target/)" >&2
        status=1
    fi
done
exit "$status"
