#!/usr/bin/env python3
"""GEMM candidates on the hot shapes, alternated: every round runs each candidate once
(a fresh process each, all shapes), so the candidates see the same machine state; the
table gives per shape the median GFLOP/s of each candidate over the rounds and its median
ratio to PyTorch at the same capability, with min-max. The candidates:

  d2l-avx512 / d2l-avx2   our packed GEMM (`D2L_GEMM=d2l`, `D2L_CPU=avx512|avx2`); shapes
                          with a side of at most 16 take the direct kernels either way
  gemm-avx512             the default: the `gemm` crate (`D2L_GEMM=gemm`), split into
                          one-threaded blocks on 2+ threads, small sides direct
  base-avx512             the default of an older build, given by --base-bin (for A/B)
  gemm-avx2               the `gemm` crate built without its `x86-v4` feature (AVX2 + FMA
                          kernels only), our kernels held to AVX2 (`D2L_CPU=avx2`): what
                          an AVX2 machine runs by default; a second build of the example
                          (scripts/build_avx2.sh), given by --v3-bin
  torch-avx512 / -avx2    PyTorch (MKL) with ATEN_CPU_CAPABILITY / MKL_ENABLE_INSTRUCTIONS
  openblas-avx512 / -avx2 the system's OpenBLAS and BLIS through CBLAS (`D2L_GEMM=blas`),
  blis-avx512 / -avx2     one-threaded builds split by our threads, kernels forced with
                          OPENBLAS_CORETYPE=SkylakeX|Haswell and BLIS_ARCH_TYPE=0 (skx) |
                          3 (haswell): a build of the example with `--features blas`,
                          given by --blas-bin (Debian's libopenblas0-serial, libblis4-serial)

Usage:
    scripts/bench_gemm_ab.py --threads 1 --rounds 5 [--v3-bin PATH] [--blas-bin PATH]
        [--only a,b]

Environment: BENCH_TARGET_S (default 0.2 here), BENCH_REPS (default 1 here): each round
is one short measurement per shape; the rounds give the spread.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def run(cmd, env):
    e = dict(os.environ)
    e.setdefault("BENCH_TARGET_S", "0.2")
    e.setdefault("BENCH_REPS", "1")
    e.update(env)
    out = subprocess.run(cmd, env=e, stdout=subprocess.PIPE, text=True, check=True).stdout
    return {r["name"]: r["value"] for r in map(json.loads, filter(None, out.splitlines()))}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/release/examples/bench_gemm"))
    ap.add_argument("--v3-bin", help="bench_gemm built with gemm's x86-v4 feature off")
    ap.add_argument("--blas-bin", help="bench_gemm built with d2l-tensor's `blas` feature")
    ap.add_argument("--blas-dir", default="/usr/lib/x86_64-linux-gnu",
                    help="where the openblas-serial and blis-serial directories are")
    ap.add_argument("--base-bin", help="bench_gemm of an older build, run with its defaults")
    ap.add_argument("--python", default="/work/venv/bin/python")
    ap.add_argument("--only", default=None)
    a = ap.parse_args()
    extra = ["--threads", str(a.threads)] + (["--only", a.only] if a.only else [])
    torch = [a.python, os.path.join(HERE, "bench_torch_gemm.py")] + extra
    cands = [
        ("d2l-avx512", [a.bin] + extra, {"D2L_CPU": "avx512", "D2L_GEMM": "d2l"}),
        ("gemm-avx512", [a.bin] + extra, {"D2L_GEMM": "gemm"}),
        ("torch-avx512", torch, {"ATEN_CPU_CAPABILITY": "avx512"}),
        ("d2l-avx2", [a.bin] + extra, {"D2L_CPU": "avx2", "D2L_GEMM": "d2l"}),
        ("torch-avx2", torch, {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
                                 "ONEDNN_MAX_CPU_ISA": "AVX2"}),
    ]
    if a.v3_bin:
        cands.insert(4, ("gemm-avx2", [a.v3_bin] + extra, {"D2L_CPU": "avx2", "D2L_GEMM": "gemm"}))
    if a.base_bin:
        cands.insert(2, ("base-avx512", [a.base_bin] + extra, {}))
    if a.blas_bin:
        lib = lambda name: os.path.join(a.blas_dir, name)
        for cap, ob, bl in [("avx512", "SkylakeX", "0"), ("avx2", "Haswell", "3")]:
            cands.append((f"openblas-{cap}", [a.blas_bin] + extra,
                          {"D2L_CPU": cap, "D2L_GEMM": "blas", "OPENBLAS_CORETYPE": ob,
                           "LD_LIBRARY_PATH": lib("openblas-serial")}))
            cands.append((f"blis-{cap}", [a.blas_bin] + extra,
                          {"D2L_CPU": cap, "D2L_GEMM": "blas", "BLIS_ARCH_TYPE": bl,
                           "LD_LIBRARY_PATH": lib("blis-serial")}))
    res = {c[0]: [] for c in cands}
    loads = []
    for r in range(a.rounds):
        for name, cmd, env in cands:
            loads.append(os.getloadavg()[0])
            res[name].append(run(cmd, env))
        print(f"round {r + 1}/{a.rounds} done", file=sys.stderr)
    shapes = list(res["d2l-avx512"][0])
    if a.base_bin:
        # An older build may time fewer shapes: those rows leave its cell empty.
        for x in res["base-avx512"]:
            for sh in shapes:
                x.setdefault(sh, float("nan"))
    names = [c[0] for c in cands]
    print(f"threads {a.threads}, {a.rounds} rounds, load average "
          f"{min(loads):.1f}-{max(loads):.1f} (median {statistics.median(loads):.1f})")
    print("| shape | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for s in shapes:
        cells = []
        for n in names:
            vals = [x[s] for x in res[n]]
            cap = n.split("-")[1]
            ref = res[f"torch-{cap}"]
            cell = f"{statistics.median(vals):.0f}"
            if not n.startswith("torch"):
                ratios = [x[s] / t[s] for x, t in zip(res[n], ref)]
                cell += (f" ({statistics.median(ratios):.2f}×, "
                         f"{min(ratios):.2f}-{max(ratios):.2f})")
            cells.append(cell)
        print(f"| {s} | " + " | ".join(cells) + " |")
    json.dump(res, open(f"/tmp/bench_gemm_ab_t{a.threads}.json", "w"))


if __name__ == "__main__":
    main()
