"""Writing the app's results: sr_models.png_writer against PIL's PNG encoder.

Encodes the same 8-bit RGB photo (``examples/astronaut.png`` resized to ``--side``, PIL
bicubic: the size of a 512x512 upload's x4 results) with PIL at compression level 1 (what
the app used before) and with :func:`sr_models.png_writer.encode_rgb`, interleaved;
prints the median milliseconds, the ratio and the file sizes, and checks that the file
reads back pixel for pixel.

    python -m benchmarks.png_speed
    python -m benchmarks.png_speed --side 4096 --repeats 3
"""

from __future__ import annotations

import argparse
import io
import statistics
from pathlib import Path

import numpy as np
from PIL import Image

from sr_models.png_writer import COMPRESS_LEVEL, encode_rgb

from .machine import describe
from .timing import interleaved, median_ratio

PHOTO = Path(__file__).resolve().parent.parent / "examples" / "astronaut.png"


def pil_png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=COMPRESS_LEVEL)
    return buffer.getvalue()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--side", type=int, default=2048, help="side of the image written (default 2048)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each, after one warm-up (default 5)")
    args = parser.parse_args(argv)
    image = Image.open(PHOTO).convert("RGB").resize((args.side, args.side), Image.Resampling.BICUBIC)
    pixels = np.asarray(image)
    writers = {"PIL, level 1": lambda: pil_png(image), "png_writer": lambda: encode_rgb(pixels)}
    files = {name: write() for name, write in writers.items()}
    with Image.open(io.BytesIO(files["png_writer"])) as back:
        assert np.array_equal(np.asarray(back), pixels), "png_writer's file does not read back exactly"
    seconds = interleaved(writers, args.repeats)
    print(describe())
    print(f"{args.side}x{args.side} RGB photo, median of {args.repeats}")
    for name in writers:
        print(f"  {name:14s} {statistics.median(seconds[name]) * 1e3:7.0f} ms  "
              f"x{median_ratio(seconds['PIL, level 1'], seconds[name]):.2f}  {len(files[name]) / 1e6:5.2f} MB")


if __name__ == "__main__":
    main()
