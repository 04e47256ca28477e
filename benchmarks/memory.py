"""Peak memory of inference, tiled vs untiled, as the LR image grows.

Each measurement runs in a fresh subprocess and reports that process's peak resident
set size (VmHWM), so numbers do not leak into each other. Peaks of identical runs
differ by up to ~150 MB (allocator arenas of the worker threads), so ``--repeats N``
reports the median (and the range) of N children per row. Example (the figures in
benchmarks/results/performance.md):

    python benchmarks/memory.py --model hat-s --sizes 128 256 512 --tile 128
    python benchmarks/memory.py --model hat-s --sizes 1024 --tile 128 --tiled-only
    python benchmarks/memory.py --model hat-s --sizes 128 --attn-impl math   # HAT's reference path
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

from peak_rss import peak_rss_mib


def measure_one(model_name: str, size: int, tile: int | None, dtype: str | None, attn_impl: str | None = None) -> dict:
    """Run in the child: upscale a size x size random LR image once, report peak RSS."""
    import numpy as np
    import torch
    from PIL import Image

    from sr_models import load_model, upscale

    torch.manual_seed(0)
    model = load_model(model_name).eval()
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


def run_child(model: str, size: int, tile: int | None, dtype: str | None, attn_impl: str | None = None) -> dict:
    cmd = [sys.executable, __file__, "--child", "--model", model, "--sizes", str(size)]
    cmd += ["--tile", str(tile or 0)]  # 0 = untiled (omitting it would give the child the default tile)
    cmd += ["--dtype", dtype] if dtype else []
    cmd += ["--attn-impl", attn_impl] if attn_impl else []
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"model": model, "lr_size": size, "tile": tile, "error": proc.stderr.strip().splitlines()[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


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

    import torch

    impl = f", attn_impl={args.attn_impl}" if args.attn_impl else ""
    print(f"# peak RSS of one upscale() call, {args.model} x4{impl}, CPU ({torch.get_num_threads()} threads, "
          f"torch {torch.__version__})")
    print(f"{'LR size':>8} {'tile':>6} {'peak RSS (MB)':>14} {'seconds':>8}"
          + (f" {'range (MB)':>15}" if args.repeats > 1 else ""))
    rows = []
    for size in args.sizes:
        for tile in ([args.tile] if args.tiled_only else [None, args.tile]):
            runs = [run_child(args.model, size, tile, args.dtype, args.attn_impl) for _ in range(args.repeats)]
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
