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
image would be). The input is a photograph (``--image``: a file, or the first image of a
folder; default the project's ``examples/astronaut.png``), centre-cropped and downscaled to
the LR size, or seeded noise (``--image noise``). The weights are HAT's own initialisation
(seeded), as no trained HAT-S weights ship with the project, or a trained model given with
``--weights``.

    python -m benchmarks.hat_speed                       # HAT-S x4, LR 64² and 128², 5 repeats
    python -m benchmarks.hat_speed --sizes 64 --repeats 3 --all --json out.json
    python -m benchmarks.hat_speed --weights hat-faces --sizes 64 128 --image faces/   # trained weights, a face
    python -m benchmarks.hat_speed --device cuda --sizes 64 128 256 --repeats 10 --all   # on a GPU
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

from benchmarks.child import PROJECT_ROOT
from benchmarks.machine import describe
from sr_models import HAT

EXAMPLE_PHOTO = PROJECT_ROOT / "examples" / "astronaut.png"
NOISE = "noise"
VARIANTS = {  # name: (attn_impl, autocast dtype or None)
    "math fp32": ("math", None),
    "sdpa fp32": ("sdpa", None),
    "sdpa bf16": ("sdpa", torch.bfloat16),
    "math bf16": ("math", torch.bfloat16),
    "sdpa fp16": ("sdpa", torch.float16),  # CUDA only: CPU autocast has no fp16 here
    "math fp16": ("math", torch.float16),
}


def photo_path(image: str) -> Path:
    """The photograph ``--image`` names: a file, or the first image (by name) of a folder."""
    from sr_models.evaluation import find_images

    path = Path(image)
    if path.is_dir():
        photos = find_images(path)
        if not photos:
            raise SystemExit(f"hat_speed: no images in {path} (--image takes a photograph, a folder or 'noise')")
        return photos[0]
    if not path.is_file():
        raise SystemExit(f"hat_speed: {path} does not exist (--image takes a photograph, a folder or 'noise')")
    return path


def lr_image(size: int, photo: Path | None) -> tuple[torch.Tensor, str]:
    """(1, 3, size, size) in [0, 1]: ``photo`` centre-cropped to a square and downscaled,
    or seeded noise when ``photo`` is None."""
    if photo is None:
        return torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0)), "seeded noise"
    import numpy as np

    from sr_models.protocol import prepare_hr
    from sr_models.pipeline import load_image

    lr = prepare_hr(load_image(photo), scale=1, hr_size=size)
    return torch.from_numpy(np.asarray(lr, dtype=np.float32) / 255).permute(2, 0, 1)[None], photo.name


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


def time_variants(model: HAT, x: torch.Tensor, names: list[str], repeats: int) -> list[dict]:
    """One row per variant: median and per-repeat times, ratio to and distance from ``math fp32``."""
    times = {n: [] for n in names}
    outputs, peaks = {}, {}
    for n in names:  # warm-up: plans, caches, oneDNN / cuDNN primitives
        _, outputs[n], peaks[n] = run(model, x, *VARIANTS[n])
    for _ in range(repeats):
        for n in names:
            times[n].append(run(model, x, *VARIANTS[n])[0])
    ref = outputs["math fp32"]
    rows = []
    for n in names:
        ratios = [m / t for m, t in zip(times["math fp32"], times[n])]
        rows.append({"lr_size": x.shape[-1], "variant": n, "median_s": statistics.median(times[n]),
                     "min_s": min(times[n]), "speedup_vs_math_fp32": statistics.median(ratios), "times_s": times[n],
                     "max_abs_diff": (outputs[n] - ref).abs().max().item(), "psnr_db": psnr(outputs[n], ref),
                     "finite": bool(torch.isfinite(outputs[n]).all()), "peak_mib": peaks[n],
                     "output_size": list(ref.shape[-2:])})
    return rows


def print_rows(rows: list[dict], source: str, cuda: bool) -> None:
    size, out = rows[0]["lr_size"], tuple(rows[0]["output_size"])
    print(f"\nLR {size}x{size} ({source}) -> {out}")
    print(f"{'variant':>10} {'median s':>9} {'min s':>7} {'x vs math fp32':>15} {'max |diff|':>11} {'PSNR dB':>8}"
          + (f" {'peak MiB':>9}" if cuda else ""))
    for row in rows:
        print(f"{row['variant']:>10} {row['median_s']:>9.3f} {row['min_s']:>7.3f} {row['speedup_vs_math_fp32']:>14.2f}x "
              f"{row['max_abs_diff']:>11.2e} {row['psnr_db']:>8.1f}"
              + (f" {row['peak_mib']:>9.0f}" if cuda else "")
              + ("" if row["finite"] else "  NON-FINITE OUTPUT"), flush=True)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="hat-s")
    parser.add_argument("--weights", default=None,
                        help="a trained model (folder, Hub id or checkpoint, as load_model takes) instead of --preset")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128], help="LR sides")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--all", action="store_true", help="also time the reference path under autocast")
    parser.add_argument("--image", default=str(EXAMPLE_PHOTO),
                        help="the input: a photograph, a folder (its first image) or 'noise' (default: %(default)s)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, = cores)")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    photo = None if args.image == NOISE else photo_path(args.image)  # a bad --image fails before any work
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
        x, source = lr_image(size, photo)
        rows = time_variants(model, x.to(device), names, args.repeats)
        print_rows(rows, source, device.type == "cuda")
        results += rows
    print(f"\n# load average at the end: {os.getloadavg()[0]:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": describe(device), "results": results}, indent=2))


if __name__ == "__main__":
    main()
