#!/usr/bin/env bash
# The GPU checks of the CUDA device, in one go, on the GPU machine (which has no Rust
# toolchain): the parity suite, the zoo's first steps on both devices, LeNet on the GPU,
# and the W1–W5 benchmarks of d2l-rs and of PyTorch in the same call.
#
#   scripts/build-gpu-bundle.sh            # here, on a machine with the toolchain
#   scripts/gpu-check.sh OUT [BUNDLE]      # there; BUNDLE defaults to gpu-bundle/
#
# Everything it prints goes to OUT/gpu-check.log as well; each step's log and JSON lines
# are in OUT. Each step has its own time limit so the whole run stays inside 10 minutes;
# a failing step is reported and the next one still runs. The exit status is the number
# of failed steps.
set -u
OUT=${1:?usage: scripts/gpu-check.sh OUT_DIR [BUNDLE_DIR]}
BUNDLE=${2:-gpu-bundle}
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu-check.log") 2>&1
if [ ! -d "$BUNDLE" ] && [ -f "$BUNDLE.tar.xz" ]; then
    echo "unpacking $BUNDLE.tar.xz"
    tar -xJf "$BUNDLE.tar.xz"
fi
if [ ! -x "$BUNDLE/d2l" ]; then
    echo "no $BUNDLE/d2l: build it with scripts/build-gpu-bundle.sh and carry $BUNDLE.tar.xz"
    exit 1
fi
FAILED=0
START=$(date +%s)

step() { # step NAME LIMIT_S COMMAND...
    local name=$1 limit=$2; shift 2
    echo "=== $name (limit ${limit}s, at $(( $(date +%s) - START ))s): $*"
    local t0=$(date +%s)
    timeout --kill-after=10 "$limit" "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    tail -n 40 "$OUT/$name.log"
    echo "=== $name: exit $rc after $(( $(date +%s) - t0 ))s"
    if [ $rc -ne 0 ]; then FAILED=$((FAILED + 1)); fi
}

echo "=== machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | head -5
ldd --version 2>&1 | head -1
need=$(for f in "$BUNDLE"/d2l "$BUNDLE"/tests/*; do
    objdump -T "$f" 2>/dev/null | grep -o 'GLIBC_[0-9.]*'; done | sort -t. -k2,2n -k3,3n -u | tail -1)
echo "newest glibc symbol the binaries need: ${need:-unknown}"
ls -l "$BUNDLE" "$BUNDLE/tests" 2>&1 | head -20
for lib in libcuda.so.1 libnvrtc.so.13 libnvrtc.so.12 libcublas.so.13 libcublas.so.12; do
    printf '%s: ' "$lib"; (ldconfig -p | grep -m1 "$lib" || echo "not in ldconfig") | tr -s ' '
done
# pip's CUDA libraries (PyTorch's) are not on the loader path: add them.
PYLIBS=$(python3 -c 'import nvidia, os; p = nvidia.__path__[0]; print(":".join(os.path.join(p, d, "lib") for d in sorted(os.listdir(p)) if os.path.isdir(os.path.join(p, d, "lib"))))' 2>/dev/null || true)
if [ -n "$PYLIBS" ]; then export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$PYLIBS"; fi
echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"

DATA=${D2L_DATA_DIR:-}
if [ -z "$DATA" ] && [ -d ../shared/data ]; then DATA=../shared/data; fi
DATA_ARGS=(); if [ -n "$DATA" ]; then DATA_ARGS=(--data-dir "$DATA"); fi

step devices 30 "$BUNDLE/d2l" devices
step parity 90 "$BUNDLE/tests/cuda_parity" --nocapture --test-threads=1
for t in cuda_nn cuda_models; do  # layers, losses, optimisers; the zoo's first steps
    if [ -x "$BUNDLE/tests/$t" ]; then step "$t" 60 "$BUNDLE/tests/$t" --nocapture --test-threads=1; fi
done
step lenet 120 "$BUNDLE/d2l" train lenet --device cuda "${DATA_ARGS[@]}" --out "$OUT/lenet-run"
step bench_d2l 100 "$BUNDLE/d2l" bench --device cuda --json
grep -h '^{' "$OUT/bench_d2l.log" > "$OUT/bench_d2l.jsonl" || true
if [ -f ../shared/bench/torch_bench.py ]; then
    step bench_torch 100 python3 ../shared/bench/torch_bench.py --device cuda
    grep -h '^{' "$OUT/bench_torch.log" > "$OUT/bench_torch.jsonl" || true
    echo "=== table (d2l-rs / PyTorch, same GPU, this call)"
    python3 scripts/bench_join.py "$OUT/bench_d2l.jsonl" "$OUT/bench_torch.jsonl" | tee "$OUT/bench_table.md"
fi
echo "=== done in $(( $(date +%s) - START ))s, $FAILED failed step(s); logs in $OUT"
exit $FAILED
