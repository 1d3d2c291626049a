#!/usr/bin/env python3
"""PyTorch peer numbers for d2l-rs's conv benchmarks, one JSON line per case and pass.

Same protocol, cases and names as
``cargo run --release -p d2l-tensor --example bench_conv`` (read its header):
warm-up >= 3 steps and >= 1 s, one calibration step, 5 repetitions of
n = ceil(1 s / t_step) steps; median throughput; wall clock.
``_fwd``: ``F.conv2d`` under inference_mode; ``_bwd``: ``aten.convolution_backward`` with
output mask (input, weight, no bias) -- the two kernels autograd runs, 2x the forward FLOPs.

    /work/shared/bench/wait_idle.sh && .venv/bin/python scripts/bench_torch_conv.py --threads 2
"""
from bench_protocol import emit, measure, parse_args


CASES = [
    ("lenet_c1", [256, 1, 28, 28], [6, 1, 5, 5], 2, 1, "W1", True),
    ("lenet_c2", [256, 6, 14, 14], [16, 6, 5, 5], 0, 1, "W1", True),
    ("resnet_64_24", [32, 64, 24, 24], [64, 64, 3, 3], 1, 1, "W3", True),
    ("resnet_128_12", [32, 128, 12, 12], [128, 128, 3, 3], 1, 1, "W3", True),
    ("resnet_256_6", [32, 256, 6, 6], [256, 256, 3, 3], 1, 1, "W3", True),
    ("resnet_512_3", [32, 512, 3, 3], [512, 512, 3, 3], 1, 1, "W3", True),
    ("conv1x1_64to128_24", [32, 64, 24, 24], [128, 64, 1, 1], 0, 1, "W3", True),
    ("conv2d_64x64_3x3", [32, 64, 28, 28], [64, 64, 3, 3], 1, 1, "W5", False),
]


def main():
    a, only = parse_args()
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(a.threads)
    g = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        for case, xs, ws, pad, stride, wl, bwd in CASES:
            x = torch.randn(*xs, generator=g)
            w = torch.randn(*ws, generator=g)
            y = F.conv2d(x, w, None, stride, pad)
            gy = torch.randn(*y.shape, generator=g)
            flops = 2.0 * y.numel() * ws[1] * ws[2] * ws[3]
            passes = [(case if wl == "W5" else f"{case}_fwd", flops)]
            if bwd:
                passes.append((f"{case}_bwd", 2 * flops))
            for name, work in passes:
                if only and name not in only and case not in only:
                    continue
                if name.endswith("_bwd"):
                    def step():
                        torch.ops.aten.convolution_backward(
                            gy, x, w, [ws[0]], [stride] * 2, [pad] * 2, [1, 1], False, [0, 0], 1,
                            [True, True, False])
                else:
                    def step():
                        F.conv2d(x, w, None, stride, pad)
                emit(torch.get_num_threads(), wl, name, "gflops", "GFLOP/s", 1e9,
                     measure(step, work), input=xs, weight=ws, padding=pad, stride=stride,
                     mkldnn=torch.backends.mkldnn.is_available())


if __name__ == "__main__":
    main()
