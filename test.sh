#!/usr/bin/env bash
# The test command: unit tests, benches in test mode, then the end-to-end tests in tests/
# (root: they build network namespaces and attach XDP programs).
set -euo pipefail
cd "$(dirname "$0")"
if [ "$(id -u)" != 0 ]; then
  echo "test.sh: the end-to-end tests need root (network namespaces, XDP): sudo ./test.sh" >&2
  exit 1
fi
cargo test --lib --bins --benches
# End-to-end tests share two cores with the kernel's veth work: one at a time.
cargo test --test '*' -- --test-threads=1
