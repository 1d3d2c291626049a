#!/usr/bin/env bash
# Build what an AVX2 machine (no AVX-512) runs, on any x86 machine, for measurement.
#
# Our kernels follow `D2L_CPU=avx2` at run time, but the `gemm` crate (the default f32
# GEMM) picks its kernels itself: on an AVX-512 processor it always takes its AVX-512
# ones, so with `D2L_CPU=avx2` alone the products fall back to our own GEMM, slower on
# the hot shapes than the crate's AVX2 kernels an AVX2 machine gets (docs/PERFORMANCE.md).
# This script builds a copy of the working tree with the crate's `x86-v4` feature off
# (only its AVX2 + FMA kernels compiled in); run that build with
#   D2L_CPU=avx2 D2L_GEMM=gemm
# and both our kernels and the crate's are the ones an AVX2 machine runs.
#
# Usage: scripts/build_avx2.sh [DIR]      (default ${TMPDIR:-/tmp}/d2l-avx2)
# Prints the paths of the built `d2l` and `bench_gemm`; the tree is copied to DIR/src,
# the build kept in DIR/target (later runs rebuild only what changed).
#
# Example, the alternating comparison on the AVX2 path:
#   D2L_BIN=$(scripts/build_avx2.sh | sed -n 1p) D2L_CPU=avx2 D2L_GEMM=gemm scripts/bench_ab.sh W1
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-${TMPDIR:-/tmp}/d2l-avx2}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
rm -rf "$dir/src"
mkdir -p "$dir/src"
# The tracked files as they are in the working tree (uncommitted edits included).
git ls-files -z | xargs -0 cp -p --parents -t "$dir/src"
grep -q '^gemm = .*"x86-v4"' "$dir/src/Cargo.toml" || {
  echo "build_avx2.sh: Cargo.toml's gemm line has no \"x86-v4\" feature to turn off" >&2
  exit 1
}
sed -i '/^gemm = /s/, *"x86-v4"//' "$dir/src/Cargo.toml"
(cd "$dir/src" && CARGO_TARGET_DIR="$dir/target" cargo build --release --locked -q \
  -p d2l-cli -p d2l-tensor --bin d2l --example bench_gemm >&2)
echo "$dir/target/release/d2l"
echo "$dir/target/release/examples/bench_gemm"
