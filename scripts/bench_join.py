"""Joins two files of benchmark JSON lines (d2l-rs's `d2l bench --json` and PyTorch's
`torch_bench.py`) on workload + name + metric and prints a Markdown table of both values,
the ratio d2l-rs / PyTorch and, where present, the GPU peak memory of each side.

    python3 scripts/bench_join.py OURS.jsonl THEIRS.jsonl
"""
import json
import sys


def load(path):
    out = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            r = json.loads(line)
            out[(r.get("workload"), r.get("name"), r.get("metric"))] = r
    return out


def main():
    ours, theirs = load(sys.argv[1]), load(sys.argv[2])
    print("| workload | name | metric | d2l-rs | PyTorch | ratio | GPU peak MB (ours / theirs) |")
    print("|---|---|---|---:|---:|---:|---|")
    for key in sorted(set(ours) | set(theirs), key=lambda k: tuple(str(x) for x in k)):
        a, b = ours.get(key), theirs.get(key)
        va = a["value"] if a else None
        vb = b["value"] if b else None
        ratio = f"{va / vb:.2f}" if va and vb else "—"
        pa = a.get("gpu_peak_mb") if a else None
        pb = b.get("gpu_peak_mb") if b else None
        fmt = lambda v: "—" if v is None else f"{v:.1f}"
        print(f"| {key[0]} | {key[1]} | {key[2]} | {fmt(va)} | {fmt(vb)} | {ratio} | {fmt(pa)} / {fmt(pb)} |")


if __name__ == "__main__":
    main()
