"""Tiles one after the other on every thread, or side by side, each on one thread.

Upscales the same photo with the bundled weights through :func:`sr_models.upscale` in
tiles, with ``tile_workers`` 1 (one tile at a time, torch's intra-op threads inside it)
and each value of ``--workers`` (that many tiles at once, one thread each:
:mod:`sr_models.tile_pool`), interleaved (every repeat runs each setting once, in turn), in
the precision the app would choose on this machine (bf16 autocast for HAT where the CPU
has native bf16). Prints the median seconds and the median of the per-repeat ratios to
``tile_workers=1``, and the largest difference of each output from it (8-bit levels).
The default case is the app's: a 512x512 upload, 184-px tiles (``choose_tile``'s for it).

    python -m benchmarks.tile_workers
    python -m benchmarks.tile_workers --model espcn-faces --repeats 5 --workers 2 4
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np
from PIL import Image

from sr_models import load_model, upscale
from sr_models.app_limits import choose_tile
from sr_models.app_precision import BF16_ARCHITECTURES, native_bf16

from .machine import describe
from .timing import interleaved, median_ratio

ROOT = Path(__file__).resolve().parent.parent


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--model", default="hat-faces", help="a model name or folder, as load_model takes it")
    parser.add_argument("--size", type=int, default=512, help="side of the LR image (the photo, resized)")
    parser.add_argument("--workers", type=int, nargs="+", default=[2], help="tile_workers values to time beside 1")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per setting, after one warm-up")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    model = load_model(args.model)
    dtype = "bfloat16" if type(model).__name__ in BF16_ARCHITECTURES and native_bf16() else None
    photo = Image.open(ROOT / "examples" / "astronaut.png").convert("RGB").resize((args.size, args.size),
                                                                               Image.Resampling.BICUBIC)
    tile = choose_tile(photo.size, model.pad_multiple, model.tile_overlap)
    settings = {f"tile_workers={w}": w for w in [1, *args.workers]}
    run = {name: (lambda w=w: upscale(model, photo, tile=tile, tile_workers=w, dtype=dtype))
           for name, w in settings.items()}
    outputs = {name: np.asarray(call(), dtype=np.int16) for name, call in run.items()}  # the warm-up
    seconds = interleaved(run, args.repeats)
    print(describe())
    print(f"{args.model}, LR {args.size}x{args.size} in {tile}-px tiles, {dtype or 'float32'}, "
          f"median of {args.repeats}")
    base = next(iter(settings))
    for name in settings:
        diff = int(np.abs(outputs[name] - outputs[base]).max())
        print(f"  {name}: {statistics.median(seconds[name]):6.2f} s  x{median_ratio(seconds[base], seconds[name]):.2f}  "
              f"max difference {diff} levels")


if __name__ == "__main__":
    main()
