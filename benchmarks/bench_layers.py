"""Benchmark: the pretrained ODE-Net's layers one by one on a batch of 256 beats, in float32 and bfloat16, in torch's
plain (N, C, L) layout and in channels-last: what lower precision would buy on this CPU, and what stops it.

Shapes are the ODE-Net's: the stem's convolutions (4 -> 64 channels, kernel 3, on 187 samples; 64 -> 64, kernel 4,
stride 2, on 185 and 92), the ODE block's (64 -> 64, kernel 3, on 46), and a group norm (32 groups) with its ReLU at
each length. Each figure is the mean of 40 calls after 5 to warm up, one torch thread, freed memory kept
(ecglib.allocator). Channels-last runs as a 2-D operation of height 1, the layout oneDNN's fast kernels take.

    python benchmarks/bench_layers.py [--out runs/bench-layers]

Prints a markdown table and writes OUT/results.md.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

BATCH = 256
CONVOLUTIONS = (  # name, (in channels, length), (out channels, kernel), stride, padding
    ("stem 1: 4 -> 64, k 3", (4, 187), (64, 3), 1, 0),
    ("stem 2: 64 -> 64, k 4, stride 2", (64, 185), (64, 4), 2, 1),
    ("stem 3: 64 -> 64, k 4, stride 2", (64, 92), (64, 4), 2, 1),
    ("ODE block: 64 -> 64, k 3", (64, 46), (64, 3), 1, 1),
)


def mean_ms(function, *args, repeat: int = 40, **kwargs) -> float:
    """Milliseconds per call of function(*args, **kwargs), the mean of ``repeat`` after 5 to warm up."""
    for _ in range(5):
        function(*args, **kwargs)
    start = time.perf_counter()
    for _ in range(repeat):
        function(*args, **kwargs)
    return (time.perf_counter() - start) / repeat * 1e3


def _norm_relu(x, gamma, beta):
    import torch.nn.functional as F

    return F.group_norm(x, 32, gamma, beta).relu_()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bench-layers"))
    args = parser.parse_args(argv)

    import torch
    import torch.nn.functional as F

    from ecglib.allocator import keep_freed_memory
    from ecglib.inference import machine_description

    keep_freed_memory()
    torch.set_num_threads(1)
    last = torch.channels_last
    lines = [f"Batch of {BATCH} beats, one torch thread; {machine_description()}. Milliseconds per call.", "",
             "| layer | float32 (N, C, L) | bfloat16 (N, C, L) | float32 channels-last | bfloat16 channels-last |",
             "|---|---:|---:|---:|---:|"]
    with torch.no_grad():
        for name, (c, length), (out, k), stride, pad in CONVOLUTIONS:
            x, w = torch.rand(BATCH, c, length), torch.randn(out, c, k)
            xb, wb = x.bfloat16(), w.bfloat16()
            x2, w2 = x.unsqueeze(2).contiguous(memory_format=last), w.unsqueeze(2).contiguous(memory_format=last)
            x2b, w2b = x2.bfloat16(), w2.bfloat16()
            times = [mean_ms(F.conv1d, x, w, stride=stride, padding=pad),
                     mean_ms(F.conv1d, xb, wb, stride=stride, padding=pad),
                     mean_ms(F.conv2d, x2, w2, stride=(1, stride), padding=(0, pad)),
                     mean_ms(F.conv2d, x2b, w2b, stride=(1, stride), padding=(0, pad))]
            lines.append(f"| convolution, {name}, length {length} | " + " | ".join(f"{t:.2f}" for t in times)
                         + " |")
        gamma, beta = torch.rand(64) + 0.5, torch.randn(64)
        for length in (185, 92, 46):
            x = torch.randn(BATCH, 64, length)
            x2 = x.unsqueeze(2).contiguous(memory_format=last)
            xb, x2b, gb, bb = x.bfloat16(), x2.bfloat16(), gamma.bfloat16(), beta.bfloat16()
            times = [mean_ms(_norm_relu, x, gamma, beta), mean_ms(_norm_relu, xb, gb, bb),
                     mean_ms(_norm_relu, x2, gamma, beta), mean_ms(_norm_relu, x2b, gb, bb)]
            lines.append(f"| group norm and ReLU, 64 channels, length {length} | "
                         + " | ".join(f"{t:.2f}" for t in times) + " |")
    text = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
