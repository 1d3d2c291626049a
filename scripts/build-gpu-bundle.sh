#!/usr/bin/env bash
# Builds what scripts/gpu-check.sh runs on the GPU machine (which has no Rust toolchain)
# into gpu-bundle/ and gpu-bundle.tar.xz: the release `d2l` (with the `cuda` feature) and
# the GPU test binaries. Carry gpu-bundle.tar.xz to the GPU machine (the device tool's
# `carry`), where scripts/gpu-check.sh unpacks it.
#
# The GPU machine's C library may be older than this one's, so the binaries are linked
# against glibc $GLIBC (default 2.28) with cargo-zigbuild when it and zig are installed:
#   cargo install cargo-zigbuild && python3 -m pip install ziglang
# (zig may also come from `pip install --target DIR ziglang` with PYTHONPATH=DIR).
# Without them it links against this machine's glibc and says so.
set -euo pipefail
cd "$(dirname "$0")/.."
GLIBC=${GLIBC:-2.28}
TRIPLE=x86_64-unknown-linux-gnu
OUT=gpu-bundle
rm -rf "$OUT"
mkdir -p "$OUT/tests"

if cargo zigbuild --help > /dev/null 2>&1 && { command -v zig > /dev/null || python3 -c 'import ziglang' 2> /dev/null; }; then
    BUILD=(cargo zigbuild --target "$TRIPLE.$GLIBC")
    BIN_DIR=target/$TRIPLE/release
    echo "linking against glibc $GLIBC (cargo-zigbuild)"
else
    BUILD=(cargo build)
    BIN_DIR=target/release
    echo "warning: cargo-zigbuild or zig not found: linking against this machine's $(ldd --version | head -1)"
fi

"${BUILD[@]}" --release -p d2l-cli --features cuda
cp "$BIN_DIR/d2l" "$OUT/d2l"

# The GPU test binaries (test profile), found through cargo's JSON messages.
"${BUILD[@]}" --features d2l-tensor/cuda -p d2l-tensor --test cuda_parity \
    -p d2l-nn --test cuda_nn -p d2l-models --test cuda_models --message-format=json \
    | python3 -c '
import json, sys, shutil
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        shutil.copy(m["executable"], "'"$OUT"'/tests/" + m["target"]["name"])
        print("test binary:", m["target"]["name"])
'
ls -l "$OUT" "$OUT/tests"
echo "newest glibc symbol needed: $(objdump -T "$OUT/d2l" | grep -o 'GLIBC_[0-9.]*' | sort -t. -k2,2n -k3,3n -u | tail -1)"
# The device tool carries at most 64 MiB with the working tree; the binaries are ~130 MB
# and about 23 MB compressed. gpu-check.sh unpacks the archive when the folder is absent.
tar -cJf "$OUT.tar.xz" "$OUT"
ls -l "$OUT.tar.xz"
