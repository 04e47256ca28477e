"""How large a request to the app may be, and how its large images stay in bounded memory.

The app (:mod:`sr_models.app`) serves two requests at once (``CONCURRENCY_LIMIT``) and
must fit both in a few GB (docs/app.md, "Memory": the peaks that
``benchmarks/app_memory.py`` measures). What grows with a request, and its bound:

- a model's forward pass grows with its *padded* input (each model pads to its
  ``pad_multiple``, HAT's attention window: a 65000x1 image is 65000x8 to HAT): inputs
  padded over ``MAX_UNTILED_PIXELS`` run in tiles of at most ``MAX_TILE_PIXELS``
  (:func:`choose_tile` picks the size that makes the model see the fewest pixels), and
  none padded over ``MAX_INPUT_PIXELS`` are accepted;
- the outputs grow with the model input (x4 per side, one per method): ``MAX_INPUT_PIXELS``;
- Benchmark mode's original (HR) is degraded (the realistic degradation holds ~90 bytes
  per HR pixel) and scored (the library's metrics work in strips of their own):
  ``MAX_BENCHMARK_PIXELS``.

Every size is checked from the file's header, before its pixels are decoded.
"""

from __future__ import annotations

import math

from .app_errors import refuse
from .metrics import SSIM_WINDOW_SIZE

#: Padded model inputs up to this many pixels run in one piece; above it they are tiled.
#: One forward pass of the bundled HAT at 256x256 peaks at ~0.75 GB (two at once: 1.5 GB).
MAX_UNTILED_PIXELS = 256 * 256
#: Largest tile the app chooses for an input it tiles (LR pixels, padded): a HAT pass of
#: ~0.4 GB where an untiled 256x256 one takes ~0.75 GB, because a tiled input also holds its
#: full-size outputs (~0.3 GB of them at a 1024x1024 input) and two requests may run at once.
MAX_TILE_PIXELS = 192 * 192
#: Tile side (LR pixels) when the user asks for tiles: one HAT tile pass ~0.2 GB. Inputs
#: tiled because of their size get the tiles of :func:`choose_tile` instead.
TILE_SIZE = 128
#: Tiles of one model run at once on the CPU, each on one thread (sr_models.tile_pool), at
#: most as many as torch's threads: HAT up to 1.16x faster on 2 cores. A request then holds two
#: tile passes at once: two Upscale 1024x1024 requests at once peak at ~2.0 GB (docs/app.md).
TILE_WORKERS = 2
#: Largest padded model input, in pixels: its x4 outputs are 16.8 MP each.
MAX_INPUT_PIXELS = 1024 * 1024
#: Largest upload in Benchmark mode (the original, HR), in pixels: the realistic
#: degradation of a 4.2 MP image peaks at ~0.4 GB (benchmarks/app_memory.py).
MAX_BENCHMARK_PIXELS = 2048 * 2048


def padded_size(size: tuple[int, int], multiple: int) -> tuple[int, int]:
    """(width, height) rounded up to multiples of ``multiple``, as the pipeline pads them."""
    return tuple(-(-side // multiple) * multiple for side in size)


def needs_tiling(size: tuple[int, int], multiple: int) -> bool:
    width, height = padded_size(size, multiple)
    return width * height > MAX_UNTILED_PIXELS


def _tiling(length: int, tile: int, overlap: int, multiple: int) -> tuple[int, int]:
    """(tiles, padded pixels they cover) along a side of ``length``: tiles start every
    ``tile - overlap`` pixels until one reaches the end, and the last, shorter, is padded
    to ``multiple`` (sr_models.pipeline's tiling)."""
    stride = tile - overlap
    count = 1 + max(-(-(length - tile) // stride), 0)
    last = length - (count - 1) * stride
    return count, (count - 1) * tile + -(-last // multiple) * multiple


def choose_tile(size: tuple[int, int], multiple: int, overlap: int) -> int:
    """The tile side (LR pixels, a multiple of ``multiple``) that runs an image of ``size``
    through the fewest model pixels, each tile a forward pass within MAX_TILE_PIXELS.

    A model's time grows with the pixels it sees, overlaps and padding included: for a
    512x512 input to HAT (8-pixel windows, 16 pixels of overlap) 128-pixel tiles are 25
    passes over 1.27 times the image, 184-pixel tiles 9 passes over 1.13 times. Among
    equals, the fewest passes (each has a fixed cost), then the smallest tile (the least
    memory). ``overlap`` is rounded up to ``multiple``, as the pipeline does.
    """
    overlap = -(-overlap // multiple) * multiple
    smallest = overlap + multiple  # a tile must reach past its overlap
    largest = max(math.isqrt(MAX_TILE_PIXELS) // multiple * multiple, smallest)

    def cost(tile: int) -> tuple[int, int, int]:
        (columns, width), (rows, height) = (_tiling(side, tile, overlap, multiple) for side in size)
        return width * height, columns * rows, tile

    return min(range(smallest, largest + 1, multiple), key=cost)


def _pixels(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]} ({size[0] * size[1]:,} pixels)"


def _square(pixels: int) -> str:
    side = math.isqrt(pixels)
    return f"{pixels:,} pixels ({side}x{side})"


def check_model_input(size: tuple[int, int], multiple: int, what: str = "The image") -> None:
    """gr.Error unless ``size``, padded to ``multiple``, is within MAX_INPUT_PIXELS."""
    padded = padded_size(size, multiple)
    if padded[0] * padded[1] > MAX_INPUT_PIXELS:
        raise refuse(f"{what} is {_pixels(size)}; padded to multiples of {multiple} (the attention window) "
                       f"that is {_pixels(padded)}, over the limit of {_square(MAX_INPUT_PIXELS)}. "
                       "Downscale it first.")


def check_upload_size(size: tuple[int, int], benchmark: bool, scale: int, multiple: int) -> None:
    """gr.Error unless an upload of ``size`` fits its mode: in Upscale mode it is the model
    input; in Benchmark mode it is the original, at least ``scale`` x the SSIM window per
    side, at most MAX_BENCHMARK_PIXELS, and its model input is ``size / scale``."""
    if not benchmark:
        check_model_input(size, multiple, "The upload")
        return
    width, height = size
    min_side = scale * SSIM_WINDOW_SIZE
    if min(size) < min_side:
        raise refuse(f"Benchmark mode needs an image of at least {min_side}px per side; "
                       f"this one is {width}x{height}.")
    if width * height > MAX_BENCHMARK_PIXELS:
        raise refuse(f"The upload is {_pixels(size)}; Benchmark mode takes up to "
                       f"{_square(MAX_BENCHMARK_PIXELS)}. Downscale or crop it first.")
    check_model_input((width // scale, height // scale), multiple, f"The upload reduced x{scale}")
