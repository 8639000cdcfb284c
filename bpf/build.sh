#!/bin/sh
# Builds every bpf/*.c into the committed bpf/*.o (so building xdpswitch needs no clang).
# `bpf/build.sh --check` rebuilds into a temporary folder and fails if a committed object
# differs from what its source compiles to (CI runs this).
set -eu
cd "$(dirname "$0")"
CLANG=${CLANG:-clang}
STRIP=${STRIP:-llvm-strip}
out=.
check=0
if [ "${1:-}" = "--check" ]; then check=1; out=$(mktemp -d); fi
for c in *.c; do
  o="$out/${c%.c}.o"
  "$CLANG" -O2 -g -target bpf -mcpu=v3 -I"/usr/include/$(uname -m)-linux-gnu" \
    -fdebug-prefix-map="$PWD"=. -fno-ident -c "$c" -o "$o"
  # Keep BTF (aya needs it for maps), drop DWARF line info: smaller, and path-independent.
  "$STRIP" -g "$o"
  if [ $check = 1 ] && ! cmp -s "$o" "${c%.c}.o"; then
    echo "bpf/${c%.c}.o does not match bpf/$c: run bpf/build.sh and commit the object" >&2
    exit 1
  fi
done
[ $check = 1 ] && rm -rf "$out"
exit 0
