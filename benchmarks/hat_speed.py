"""HAT inference speed: the fast path against upstream's step-by-step reference path.

Variants, timed side by side in one process and interleaved (every repeat runs each
variant once, in turn), so that a busy shared CPU slows them alike:

- ``math fp32``: ``attn_impl="math"``, the reference path that follows upstream step by
  step (roll, window_partition, explicit softmax, nn.Unfold, upstream's copies);
- ``sdpa fp32``: the default fast path (fused SDPA kernel, gather plans instead of
  roll/partition/unfold, cached bias, channels_last maps);
- ``sdpa bf16``: the fast path under ``torch.autocast("cpu", dtype=torch.bfloat16)``;
- ``math bf16`` (``--all``): the reference path under the same autocast;
- on CUDA (``--device cuda``) also ``sdpa fp16`` (and ``math fp16`` with ``--all``), and a
  peak-memory column (``torch.cuda.max_memory_allocated`` per call).

Reported: the median seconds per forward, the median of the per-repeat ratios to
``math fp32``, the largest absolute difference of each float32 output from ``math fp32``,
and the PSNR of each output against ``math fp32`` (peak 1, outputs clamped to [0, 1] as an
image would be). The input is a face photograph from ``../shared/data/faces`` downscaled
to the LR size when it is there, else seeded noise; the weights are HAT's own
initialisation (seeded), as no trained HAT-S weights ship with the project, or a trained
model given with ``--weights``.

    python benchmarks/hat_speed.py                       # HAT-S x4, LR 64² and 128², 5 repeats
    python benchmarks/hat_speed.py --sizes 64 --repeats 3 --all --json out.json
    python benchmarks/hat_speed.py --weights weights/hat-small-faces-x4 --sizes 64 128   # trained weights
    python benchmarks/hat_speed.py --device cuda --sizes 64 128 256 --repeats 10 --all   # on a GPU
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from contextlib import nullcontext
from pathlib import Path

import torch

from machine import describe
from sr_models import HAT

FACES = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "faces"
VARIANTS = {  # name: (attn_impl, autocast dtype or None)
    "math fp32": ("math", None),
    "sdpa fp32": ("sdpa", None),
    "sdpa bf16": ("sdpa", torch.bfloat16),
    "math bf16": ("math", torch.bfloat16),
    "sdpa fp16": ("sdpa", torch.float16),  # CUDA only: CPU autocast has no fp16 here
    "math fp16": ("math", torch.float16),
}


def lr_image(size: int) -> tuple[torch.Tensor, str]:
    """(1, 3, size, size) in [0, 1]: a face photograph if available, else seeded noise."""
    photos = sorted(FACES.glob("*.jpg")) if FACES.is_dir() else []
    if photos:
        import numpy as np
        from PIL import Image

        image = Image.open(photos[0]).convert("RGB")
        side = min(image.size)
        image = image.crop((0, 0, side, side)).resize((size, size), Image.BICUBIC)
        return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)[None], photos[0].name
    return torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0)), "seeded noise"


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = (a.clamp(0, 1) - b.clamp(0, 1)).double().pow(2).mean().item()
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def run(model: HAT, x: torch.Tensor, impl: str, dtype) -> tuple[float, torch.Tensor, float]:
    """(seconds, float32 output, peak GPU memory in MiB or nan) of one forward."""
    model.set_attn_impl(impl)
    cuda = x.device.type == "cuda"
    context = torch.autocast(x.device.type, dtype=dtype) if dtype is not None else nullcontext()
    if cuda:
        torch.cuda.synchronize(x.device)
        torch.cuda.reset_peak_memory_stats(x.device)
    with torch.inference_mode(), context:
        start = time.perf_counter()
        out = model(x)
        if cuda:
            torch.cuda.synchronize(x.device)
        seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(x.device) / 2**20 if cuda else math.nan
    return seconds, out.float(), peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="hat-s")
    parser.add_argument("--weights", default=None,
                        help="a trained model (folder, Hub id or checkpoint, as load_model takes) instead of --preset")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128], help="LR sides")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--all", action="store_true", help="also time the reference path under autocast")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, = cores)")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    device = torch.device(args.device)
    torch.manual_seed(0)
    if args.weights:
        from sr_models import load_model

        model = load_model(args.weights).eval().to(device)
        args.preset, args.scale = args.weights, model.scale
    else:
        model = HAT.from_preset(args.preset, upscale=args.scale).eval().to(device)
    names = [n for n in VARIANTS if (args.all or not n.startswith("math ") or n == "math fp32")
             and (device.type == "cuda" or "fp16" not in n)]
    print(f"# HAT inference, {args.preset} x{args.scale}, batch 1; {describe(device)}")
    print(f"# {args.repeats} interleaved repeats after one warm-up call per variant; medians")
    results = []
    for size in args.sizes:
        x, source = lr_image(size)
        x = x.to(device)
        times = {n: [] for n in names}
        outputs, peaks = {}, {}
        for n in names:  # warm-up: plans, caches, oneDNN / cuDNN primitives
            _, outputs[n], peaks[n] = run(model, x, *VARIANTS[n])
        for _ in range(args.repeats):
            for n in names:
                times[n].append(run(model, x, *VARIANTS[n])[0])
        ref = outputs["math fp32"]
        print(f"\nLR {size}x{size} ({source}) -> {tuple(ref.shape[-2:])}")
        print(f"{'variant':>10} {'median s':>9} {'min s':>7} {'x vs math fp32':>15} {'max |diff|':>11} {'PSNR dB':>8}"
              + (f" {'peak MiB':>9}" if device.type == "cuda" else ""))
        for n in names:
            ratios = [m / t for m, t in zip(times["math fp32"], times[n])]
            row = {"lr_size": size, "variant": n, "median_s": statistics.median(times[n]), "min_s": min(times[n]),
                   "speedup_vs_math_fp32": statistics.median(ratios), "times_s": times[n],
                   "max_abs_diff": (outputs[n] - ref).abs().max().item(), "psnr_db": psnr(outputs[n], ref),
                   "finite": bool(torch.isfinite(outputs[n]).all()), "peak_mib": peaks[n]}
            results.append(row)
            print(f"{n:>10} {row['median_s']:>9.3f} {row['min_s']:>7.3f} {row['speedup_vs_math_fp32']:>14.2f}x "
                  f"{row['max_abs_diff']:>11.2e} {row['psnr_db']:>8.1f}"
                  + (f" {row['peak_mib']:>9.0f}" if device.type == "cuda" else "")
                  + ("" if row["finite"] else "  NON-FINITE OUTPUT"), flush=True)
    print(f"\n# load average at the end: {os.getloadavg()[0]:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": describe(device), "results": results}, indent=2))


if __name__ == "__main__":
    main()
