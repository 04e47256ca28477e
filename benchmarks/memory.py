"""Peak memory of inference, tiled vs untiled, as the LR image grows.

Each measurement runs in a fresh subprocess and reports that process's peak resident
set size (ru_maxrss), so numbers do not leak into each other. Example (the figures in
benchmarks/results/performance.md):

    python benchmarks/memory.py --model hat-s --sizes 128 256 512 --tile 128
    python benchmarks/memory.py --model hat-s --sizes 1024 --tile 128 --tiled-only
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def measure_one(model_name: str, size: int, tile: int | None, dtype: str | None) -> dict:
    """Run in the child: upscale a size x size random LR image once, report peak RSS."""
    import numpy as np
    import torch
    from PIL import Image

    from sr_models import load_model, upscale

    torch.manual_seed(0)
    model = load_model(model_name).eval()
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8))
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    out = upscale(model, image, tile=tile, dtype=dtype, device="cpu")
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"model": model_name, "lr_size": size, "tile": tile, "dtype": dtype or "float32",
            "seconds": round(seconds, 2), "peak_rss_mb": round(peak / 1024, 1),
            "rss_before_mb": round(baseline / 1024, 1), "output": list(out.size)}


def run_child(model: str, size: int, tile: int | None, dtype: str | None) -> dict:
    cmd = [sys.executable, __file__, "--child", "--model", model, "--sizes", str(size)]
    cmd += ["--tile", str(tile)] if tile else []
    cmd += ["--dtype", dtype] if dtype else []
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"model": model, "lr_size": size, "tile": tile, "error": proc.stderr.strip().splitlines()[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="hat-s")
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512])
    parser.add_argument("--tile", type=int, default=128, help="LR tile side for the tiled runs")
    parser.add_argument("--dtype", default=None)
    parser.add_argument("--tiled-only", action="store_true")
    parser.add_argument("--json", default=None, help="also write the rows to this file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure_one(args.model, args.sizes[0], args.tile, args.dtype)))
        return

    import torch

    print(f"# peak RSS of one upscale() call, {args.model} x4, CPU ({torch.get_num_threads()} threads)")
    print(f"{'LR size':>8} {'tile':>6} {'peak RSS (MB)':>14} {'seconds':>8}")
    rows = []
    for size in args.sizes:
        for tile in ([args.tile] if args.tiled_only else [None, args.tile]):
            row = run_child(args.model, size, tile, args.dtype)
            rows.append(row)
            shown = row.get("peak_rss_mb", row.get("error"))
            print(f"{size:>6}² {tile or '-':>6} {shown:>14} {row.get('seconds', '-'):>8}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
