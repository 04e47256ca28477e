"""Peak memory of inference, tiled vs untiled, as the LR image grows.

Each measurement runs in a fresh subprocess and reports that process's peak resident
set size (VmHWM), so numbers do not leak into each other. Peaks of identical runs
differ by up to ~150 MB (allocator arenas of the worker threads), so ``--repeats N``
reports the median (and the range) of N children per row. Example (the figures in
benchmarks/results/performance.md):

    python -m benchmarks.memory --model hat-s --sizes 128 256 512 --tile 128
    python -m benchmarks.memory --model hat-s --sizes 1024 --tile 128 --tiled-only
    python -m benchmarks.memory --model hat-s --sizes 128 --attn-impl math   # HAT's reference path

A preset name measures a model with random weights (memory does not depend on them); a
folder, repo id or bundled name (``hat-faces``) measures trained weights.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from benchmarks.child import run_child
from benchmarks.machine import describe
from benchmarks.peak_rss import peak_rss_mib


def measure_one(model_name: str, size: int, tile: int | None, dtype: str | None, attn_impl: str | None = None) -> dict:
    """Run in the child: upscale a size x size random LR image once, report peak RSS."""
    import numpy as np
    import torch
    from PIL import Image

    from sr_models import load_model, upscale

    torch.manual_seed(0)
    model = load_model(model_name, random_weights=True).eval()
    if attn_impl is not None:
        model.set_attn_impl(attn_impl)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8))
    baseline = peak_rss_mib()
    start = time.perf_counter()
    out = upscale(model, image, tile=tile, dtype=dtype, device="cpu")
    seconds = time.perf_counter() - start
    peak = peak_rss_mib()
    return {"model": model_name, "lr_size": size, "tile": tile, "dtype": dtype or "float32", "attn_impl": attn_impl,
            "seconds": round(seconds, 2), "peak_rss_mb": round(peak, 1),
            "rss_before_mb": round(baseline, 1), "output": list(out.size)}


def measure_in_child(model: str, size: int, tile: int | None, dtype: str | None = None,
                     attn_impl: str | None = None) -> dict:
    """:func:`measure_one` in a fresh process (its peak is then the peak of that call alone)."""
    # The child runs in the project root: a relative folder must not change meaning there.
    argv = ["--model", str(Path(model).resolve()) if Path(model).exists() else model, "--sizes", str(size)]
    argv += ["--tile", str(tile or 0)]  # 0 = untiled (omitting it would give the child the default tile)
    argv += ["--dtype", dtype] if dtype else []
    argv += ["--attn-impl", attn_impl] if attn_impl else []
    row = run_child("benchmarks.memory", argv)
    return {**row, "model": model, "lr_size": size, "tile": tile}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="hat-s")
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512])
    parser.add_argument("--tile", type=int, default=128, help="LR tile side for the tiled runs (0: untiled)")
    parser.add_argument("--dtype", default=None)
    parser.add_argument("--tiled-only", action="store_true")
    parser.add_argument("--attn-impl", default=None, choices=["sdpa", "math"], help="HAT's path (default: sdpa)")
    parser.add_argument("--repeats", type=int, default=1, help="children per row; the median is shown")
    parser.add_argument("--json", default=None, help="also write the rows to this file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure_one(args.model, args.sizes[0], args.tile or None, args.dtype, args.attn_impl)))
        return

    impl = f", attn_impl={args.attn_impl}" if args.attn_impl else ""
    print(f"# peak RSS of one upscale() call, {args.model} x4{impl}; {describe()}")
    print(f"{'LR size':>8} {'tile':>6} {'peak RSS (MB)':>14} {'seconds':>8}"
          + (f" {'range (MB)':>15}" if args.repeats > 1 else ""))
    rows = []
    for size in args.sizes:
        for tile in ([args.tile] if args.tiled_only else [None, args.tile]):
            runs = [measure_in_child(args.model, size, tile, args.dtype, args.attn_impl)
                    for _ in range(args.repeats)]
            rows += runs
            peaks = sorted(r["peak_rss_mb"] for r in runs if "peak_rss_mb" in r)
            if not peaks:
                print(f"{size:>6}² {tile or '-':>6} {runs[0]['error']}", flush=True)
                continue
            seconds = statistics.median(r["seconds"] for r in runs if "seconds" in r)
            spread = f" {peaks[0]:>7.0f}-{peaks[-1]:<7.0f}" if args.repeats > 1 else ""
            print(f"{size:>6}² {tile or '-':>6} {statistics.median(peaks):>14.1f} {seconds:>8.1f}{spread}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
