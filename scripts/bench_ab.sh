#!/usr/bin/env bash
# Alternating comparison of d2l-rs and PyTorch on one workload of
# ../shared/bench/WORKLOADS.md: A B A B ... (A = `d2l bench`, B = torch_bench.py), each
# side a fresh process, the same thread count (the protocol's 2), and the median ratio
# d2l-rs / PyTorch over the pairs with its spread (min–max and the interquartile range).
#
# Usage:
#   scripts/bench_ab.sh W1                       # 5 pairs, d2l-rs first in every pair
#   scripts/bench_ab.sh W3 --pairs 7 --swap      # odd pairs d2l-rs first, even PyTorch first
#   D2L_CPU=avx2 scripts/bench_ab.sh W1          # both sides held to AVX2 (see below)
#
# Options: --pairs N (default 5, at least 5 for the README's tables), --swap (alternate
# which side opens a pair), --out DIR (keep every JSON line and the summary there).
#
# Environment:
#   D2L_BIN      the d2l binary (default target/release/d2l)
#   PYTHON       Python with torch (default /work/venv/bin/python, else .venv/bin/python)
#   TORCH_BENCH  torch_bench.py (default ../shared/bench/torch_bench.py)
#   D2L_CPU      avx2 | avx512 | scalar: d2l-rs's kernels run that path; for avx2 the
#                PyTorch side gets ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2
#                ONEDNN_MAX_CPU_ISA=AVX2 (scalar: ATEN_CPU_CAPABILITY=default
#                ONEDNN_MAX_CPU_ISA=SSE41), unless those are set already. oneDNN (PyTorch's
#                convolutions) ignores the first two: without its own variable it keeps
#                its AVX-512 kernels (ONEDNN_VERBOSE=1 prints the ISA it uses).
#                On an AVX-512 machine, D2L_CPU=avx2 alone also moves the products
#                from the gemm crate to our own GEMM (the crate's kernels cannot be
#                lowered at run time); what an AVX2 machine runs is the build of
#                scripts/build_avx2.sh with D2L_CPU=avx2 D2L_GEMM=gemm:
#                  D2L_BIN=$(scripts/build_avx2.sh | sed -n 1p) D2L_CPU=avx2 \
#                    D2L_GEMM=gemm scripts/bench_ab.sh W1
#   BENCH_REPS, BENCH_TARGET_S   passed to both sides (the protocol's 5 and 1.0 s).
#
# The 1-minute load average is read before every run and printed with the summary: on a
# shared machine, say under what load a table was taken.
set -euo pipefail
cd "$(dirname "$0")/.."

work="" pairs=5 swap=0 out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --pairs) pairs="$2"; shift 2 ;;
    --swap) swap=1; shift ;;
    --out) out="$2"; shift 2 ;;
    -h|--help) sed -n '2,32p' "$0"; exit 0 ;;
    W[1-5]|w[1-5]) work="${1^^}"; shift ;;
    *) echo "bench_ab.sh: unknown argument '$1' (expected W1..W5, --pairs N, --swap, --out DIR)" >&2; exit 2 ;;
  esac
done
[ -n "$work" ] || { echo "bench_ab.sh: name one workload, W1..W5" >&2; exit 2; }
[ "$pairs" -ge 1 ] 2>/dev/null || { echo "bench_ab.sh: --pairs needs a positive integer" >&2; exit 2; }

d2l="${D2L_BIN:-target/release/d2l}"
py="${PYTHON:-}"
if [ -z "$py" ]; then
  if [ -x /work/venv/bin/python ]; then py=/work/venv/bin/python; else py=.venv/bin/python; fi
fi
tb="${TORCH_BENCH:-../shared/bench/torch_bench.py}"
[ -x "$d2l" ] || { echo "bench_ab.sh: no d2l binary at $d2l (cargo build --release)" >&2; exit 2; }
[ -f "$tb" ] || { echo "bench_ab.sh: no torch_bench.py at $tb (set TORCH_BENCH)" >&2; exit 2; }
"$py" -c 'import torch' 2>/dev/null || { echo "bench_ab.sh: $py cannot import torch (set PYTHON)" >&2; exit 2; }

case "${D2L_CPU:-}" in
  avx2) export ATEN_CPU_CAPABILITY="${ATEN_CPU_CAPABILITY:-avx2}" MKL_ENABLE_INSTRUCTIONS="${MKL_ENABLE_INSTRUCTIONS:-AVX2}" ONEDNN_MAX_CPU_ISA="${ONEDNN_MAX_CPU_ISA:-AVX2}" ;;
  scalar) export ATEN_CPU_CAPABILITY="${ATEN_CPU_CAPABILITY:-default}" ONEDNN_MAX_CPU_ISA="${ONEDNN_MAX_CPU_ISA:-SSE41}" ;;
  ""|avx512|native) ;;
  *) echo "bench_ab.sh: D2L_CPU must be avx2, avx512 or scalar, got '$D2L_CPU'" >&2; exit 2 ;;
esac

tmp="${out:-$(mktemp -d)}"
mkdir -p "$tmp"
: > "$tmp/d2l.jsonl"; : > "$tmp/torch.jsonl"; : > "$tmp/load.txt"

run_d2l() {
  local i="$1" l; l=$(cut -d' ' -f1 /proc/loadavg); echo "d2l $i $l" >> "$tmp/load.txt"
  RAYON_NUM_THREADS=2 "$d2l" bench "$work" --json --threads 2 2>>"$tmp/stderr.txt" \
    | grep '^{' | sed "s/^{/{\"pair\": $i, \"load\": $l, /" >> "$tmp/d2l.jsonl"
}
run_torch() {
  local i="$1" l; l=$(cut -d' ' -f1 /proc/loadavg); echo "torch $i $l" >> "$tmp/load.txt"
  "$py" "$tb" --only "$work" 2>>"$tmp/stderr.txt" \
    | grep '^{' | sed "s/^{/{\"pair\": $i, \"load\": $l, /" >> "$tmp/torch.jsonl"
}

for i in $(seq 1 "$pairs"); do
  if [ "$swap" = 1 ] && [ $((i % 2)) = 0 ]; then
    echo "pair $i/$pairs: PyTorch, then d2l-rs" >&2; run_torch "$i"; run_d2l "$i"
  else
    echo "pair $i/$pairs: d2l-rs, then PyTorch" >&2; run_d2l "$i"; run_torch "$i"
  fi
done

"$py" - "$tmp" "$work" "$pairs" "${D2L_CPU:-native}" <<'EOF'
import json, statistics, sys
tmp, work, pairs, cap = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]

def load(path):
    recs = {}
    for line in open(path):
        r = json.loads(line)
        if "value" in r:
            recs.setdefault((r["workload"], r["name"], r["metric"]), {})[r["pair"]] = r
    return recs

ours, theirs = load(f"{tmp}/d2l.jsonl"), load(f"{tmp}/torch.jsonl")
loads = [float(l.split()[2]) for l in open(f"{tmp}/load.txt")]

def quartiles(xs):
    xs = sorted(xs)
    if len(xs) < 4:
        return xs[0], xs[-1]
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return q[0], q[2]

rows = []
print(f"# {work}, {pairs} pairs, capability {cap}, 2 threads; load average "
      f"{min(loads):.2f}-{max(loads):.2f} (median {statistics.median(loads):.2f})")
print("| workload | metric | d2l-rs (median) | PyTorch (median) | ratio median | "
      "ratio min-max | ratio IQR | pairs |")
print("|---|---|---|---|---|---|---|---|")
for key in sorted(ours):
    if key not in theirs:
        continue
    both = sorted(set(ours[key]) & set(theirs[key]))
    ratios = [ours[key][p]["value"] / theirs[key][p]["value"] for p in both]
    if not ratios:
        continue
    a = statistics.median(ours[key][p]["value"] for p in both)
    b = statistics.median(theirs[key][p]["value"] for p in both)
    q1, q3 = quartiles(ratios)
    unit = ours[key][both[0]].get("unit", "")
    print(f"| {key[0]} {key[1]} | {key[2]} | {a:,.1f} {unit} | {b:,.1f} {unit} | "
          f"**{statistics.median(ratios):.2f}** | {min(ratios):.2f}-{max(ratios):.2f} | "
          f"{q1:.2f}-{q3:.2f} | {len(ratios)} |")
    rss = [ours[key][p].get("peak_rss_mb") for p in both]
    trss = [theirs[key][p].get("peak_rss_mb") for p in both]
    rows.append({"workload": key[0], "name": key[1], "metric": key[2], "capability": cap,
                 "ratios": ratios, "median_ratio": statistics.median(ratios),
                 "d2l_median": a, "torch_median": b, "loads": loads,
                 "d2l_cpu": ours[key][both[0]].get("cpu"),
                 "d2l_gemm": ours[key][both[0]].get("gemm"),
                 "peak_rss_mb": [max((x for x in rss if x), default=None),
                                 max((x for x in trss if x), default=None)]})
with open(f"{tmp}/summary.json", "w") as f:
    json.dump(rows, f, indent=1)
print(f"(all JSON lines and summary.json in {tmp})")
EOF
