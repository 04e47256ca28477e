"""How long the protocol's metrics take on one large pair: the Gaussian filter of SSIM and
MS-SSIM as shifted sums (the library's) against two single-channel conv2d calls (before).

The pair is ``examples/astronaut.png`` resized to ``--side`` (PIL bicubic) and its x4
bicubic round trip; PSNR-Y, SSIM-Y and MS-SSIM-Y are scored in float64, as ``evaluate``
and the app's Benchmark mode score. The two filters run interleaved (each repeat runs
both, in turn) in this process; medians are printed with the largest difference between
their scores.

    python -m benchmarks.metrics_speed
    python -m benchmarks.metrics_speed --side 2048 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from sr_models import metrics
from sr_models.protocol import bicubic_upscale, degrade

from .machine import describe
from .timing import interleaved, median_ratio

PHOTO = Path(__file__).resolve().parent.parent / "examples" / "astronaut.png"
SCORES = {"PSNR-Y": metrics.psnr, "SSIM-Y": metrics.ssim, "MS-SSIM-Y": metrics.ms_ssim}


def conv2d_filter(x: torch.Tensor, taps: list[float]) -> torch.Tensor:
    """The filter as it was: a column then a row conv2d over (N*C*5, 1, h, w) planes."""
    g = torch.tensor(taps, dtype=x.dtype, device=x.device)
    planes = x.reshape(-1, 1, *x.shape[-2:])
    out = F.conv2d(F.conv2d(planes, g.view(1, 1, -1, 1)), g.view(1, 1, 1, -1))
    return out.reshape(*x.shape[:-2], *out.shape[-2:])


FILTERS = {"shifted sums": metrics.gaussian_filter_valid, "conv2d": conv2d_filter}


def pair(side: int) -> tuple[Image.Image, Image.Image]:
    hr = Image.open(PHOTO).convert("RGB").resize((side, side), Image.Resampling.BICUBIC)
    return bicubic_upscale(degrade(hr, 4), 4), hr


def score_with(filter_name: str, sr, hr) -> dict[str, float]:
    """Every metric of the pair, SSIM's filter being ``FILTERS[filter_name]`` meanwhile."""
    metrics.gaussian_filter_valid = FILTERS[filter_name]
    try:
        return {name: fn(sr, hr, 4) for name, fn in SCORES.items()}
    finally:
        metrics.gaussian_filter_valid = FILTERS["shifted sums"]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--side", type=int, default=1024, help="side of the HR image")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    print(describe())
    sr, hr = pair(args.side)
    runs = {name: (lambda name=name: score_with(name, sr, hr)) for name in FILTERS}
    values = {name: run() for name, run in runs.items()}  # the warm-up
    seconds = interleaved(runs, args.repeats)
    print(f"PSNR-Y + SSIM-Y + MS-SSIM-Y of a {args.side}x{args.side} pair, float64, median of {args.repeats}:")
    for name in FILTERS:
        print(f"  {name:<13} {statistics.median(seconds[name]):6.3f} s   {values[name]}")
    print(f"  speed-up: {median_ratio(seconds['conv2d'], seconds['shifted sums']):.2f}x")
    diff = max(abs(values["shifted sums"][k] - values["conv2d"][k]) for k in SCORES)
    print(f"  largest difference between the two scores: {diff:.1e}")


if __name__ == "__main__":
    main()
