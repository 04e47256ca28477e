"""Image files and PIL modes: reading with checks, and the per-mode split into the
float RGB a model sees and back.

What each PIL mode becomes (``upscale()`` and ``bicubic_upscale()`` agree on it):

==================================  ===============  ===================================
input mode                          processed as     returned as
==================================  ===============  ===================================
RGB, YCbCr, LAB, HSV, RGBX          RGB              RGB
RGBA, RGBa, PA, P with transparency RGB + alpha      RGBA (alpha upscaled with bicubic)
P (no transparency)                 RGB              RGB
L, 1                                grey             L (1-bit edges become grey levels)
LA, La                              grey + alpha     LA
I;16 (any byte order), I            grey / 65535     I;16 (full 16-bit precision)
F                                   grey / range     F, in the input's range (see below)
CMYK                                RGB (PIL's)      CMYK
==================================  ===============  ===================================

A float image (mode F) has no fixed range: it is read as [0, 1] when its largest value
is at most 1, as [0, 255] when at most 255, as [0, 65535] when at most 65535, and
refused above that or when it holds NaN or infinite values. Negative values count as 0.
The output is F in the same range, clamped to it and not rounded.
"""

from __future__ import annotations

import logging
import math
import os
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

logger = logging.getLogger(__name__)

#: Largest input accepted by default, in pixels (the decompression-bomb guard): 40 MP in
#: gives 640 MP out at x4, already ~2 GB as 8-bit RGB.
DEFAULT_MAX_PIXELS = 40_000_000
#: Modes a model's output is returned in (every other mode is first turned into one).
OUTPUT_MODES = ("RGB", "RGBA", "L", "LA", "I;16", "F", "CMYK")
#: Modes that PNG cannot store: written as TIFF.
TIFF_MODES = ("F", "CMYK")
#: The value ranges a float image may have, smallest first (see the module docstring).
FLOAT_RANGES = (1.0, 255.0, 65535.0)
#: Modes whose pixels the evaluation protocol defines (colour and luma); the metrics and the
#: bicubic degradation refuse the others, which the caller converts, so nothing is dropped silently.
PROTOCOL_MODES = ("RGB", "L")
_GREY_MODES = ("L", "LA", "I;16", "F")
_SIXTEEN_BIT = 65535.0


class ImageInputError(ValueError):
    """An input that cannot be super-resolved: not an image, empty, or too large."""


class ImageParts(NamedTuple):
    """An image as a model sees it, and what is needed to turn the output back."""

    rgb: np.ndarray  # float32 (H, W, 3) in [0, 1]
    alpha: Image.Image | None  # the alpha channel, upscaled separately
    mode: str  # the mode of the returned image (one of OUTPUT_MODES)
    value_range: float  # 255 for 8-bit modes, 65535 for I;16, the detected range for F


# --------------------------------------------------------------------------- files


def open_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open an image file lazily (its header only), checked: a readable image, not empty,
    not over ``max_pixels``. Use it as a context manager to close the file."""
    try:
        image = Image.open(path)
    except FileNotFoundError as err:
        raise ImageInputError(f"{path}: no such file") from err
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError) as err:
        raise ImageInputError(f"{path}: not a readable image ({err})") from err
    check_image_size(image, max_pixels, str(path))
    return image


def load_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Read an image file, checked (:func:`open_image`) and turned upright by its EXIF
    orientation. An animated image gives its first frame, with a warning; the frame count
    of the file is kept in ``image.info["n_frames"]``."""
    image = open_image(path, max_pixels)
    frames = warn_if_animated(image, str(path))
    try:
        with _strict_decoding():
            image.load()
        check_png_complete(image, path)
    except (OSError, SyntaxError, ValueError) as err:  # truncated or corrupt pixel data
        raise ImageInputError(f"{path}: corrupt image data ({err})") from err
    upright = ImageOps.exif_transpose(image)  # a copy: single frame from here on
    upright.info["n_frames"] = frames
    return upright


@contextmanager
def _strict_decoding() -> Iterator[None]:
    """PIL keeps whatever part of a truncated file it read, silently, while the global
    ImageFile.LOAD_TRUNCATED_IMAGES is set (some libraries set it on import): off here."""
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        yield
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous


#: PNG colour type -> samples per pixel (grey, RGB, palette, grey + alpha, RGBA).
_PNG_SAMPLES = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
#: Adam7 interlacing: (first column, first row, column step, row step) of each pass.
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def check_png_complete(image: Image.Image, source) -> None:
    """A PNG whose compressed pixel data ends early (a complete zlib stream holding 64 rows
    of a 6000-row image) is decoded by PIL without an error, the missing rows left black:
    refuse it (OSError). Rows are decoded in order, so a last row that is not all zero
    proves the data complete; only otherwise (or when interlaced) the data is measured."""
    if image.format != "PNG" or getattr(image, "is_animated", False):
        return
    if not image.info.get("interlace") and np.asarray(image.crop((0, image.height - 1, image.width, image.height))).any():
        return
    data = _read_all(source)
    width, height, depth, colour, interlace = struct.unpack(">IIBBxxB", data[16:29])
    bits = depth * _PNG_SAMPLES.get(colour, 4)
    passes = _ADAM7 if interlace else ((0, 0, 1, 1),)
    sizes = [(math.ceil((width - x) / dx), math.ceil((height - y) / dy)) for x, y, dx, dy in passes]
    expected = sum(rows * (1 + math.ceil(cols * bits / 8)) for cols, rows in sizes if cols > 0 and rows > 0)
    found = _inflated_size(_idat_chunks(data), expected)
    if found < expected:
        raise OSError(f"truncated pixel data: {found:,} of the {expected:,} bytes a {width}x{height} image needs")


def _read_all(source) -> bytes:
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as f:
            return f.read()
    source.seek(0)
    return source.read()


def _idat_chunks(data: bytes) -> Iterator[bytes]:
    """The image data chunks of a PNG file (after the 8-byte signature: length, type, data, CRC)."""
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IDAT":
            yield data[pos + 8:pos + 8 + length]
        pos += 12 + length


def _inflated_size(chunks: Iterator[bytes], limit: int) -> int:
    """Bytes the zlib stream of ``chunks`` inflates to, counted up to ``limit`` in bounded steps."""
    inflater, total = zlib.decompressobj(), 0
    try:
        for chunk in chunks:
            while chunk and total < limit:
                total += len(inflater.decompress(chunk, 1 << 20))
                chunk = inflater.unconsumed_tail
    except zlib.error as err:
        raise OSError(f"corrupt compressed data ({err})") from err
    return total


def check_image_size(image: Image.Image, max_pixels: int = DEFAULT_MAX_PIXELS, name: str = "image") -> None:
    w, h = image.size
    if w == 0 or h == 0:
        raise ImageInputError(f"{name} is empty ({w}x{h})")
    if w * h > max_pixels:
        raise ImageInputError(
            f"{name} is {w}x{h} = {w * h / 1e6:.1f} MP, over the limit of {max_pixels / 1e6:.1f} MP "
            "(raise max_pixels if this is intended)"
        )


def warn_if_animated(image: Image.Image, name: str = "image") -> int:
    """The number of frames of ``image``, with a warning if it has several."""
    frames = getattr(image, "n_frames", 1)
    if frames > 1:
        logger.warning("%s is animated (%d frames); only the first frame is used", name, frames)
    return frames


def check_protocol_mode(image: Image.Image, name: str = "image") -> None:
    """Refuse an image the evaluation protocol does not define.

    Args:
        image: the image to check.
        name: how the message names it.

    Raises:
        TypeError: not a PIL image.
        ValueError: its mode is not one of PROTOCOL_MODES (PIL would, for example, resize a
            P or 1 image with NEAREST, silently).
    """
    if not isinstance(image, Image.Image):
        raise TypeError(f"{name} must be a PIL image, got {type(image).__name__}")
    if image.mode not in PROTOCOL_MODES:
        raise ValueError(f"unsupported PIL image mode {image.mode!r} for {name}; convert it first, "
                         f"e.g. .convert('RGB') (supported: {', '.join(PROTOCOL_MODES)})")


def file_format(mode: str) -> tuple[str, str]:
    """(PIL format, file suffix) that stores an image of ``mode`` without loss."""
    return ("TIFF", ".tif") if mode in TIFF_MODES else ("PNG", ".png")


# --------------------------------------------------------------------------- modes


def normalise_mode(image: Image.Image, name: str = "image") -> Image.Image:
    """``image`` in the mode it is processed in (one of OUTPUT_MODES), per the table above."""
    mode = image.mode
    if mode in OUTPUT_MODES:
        return image
    if mode == "P":
        return image.convert("RGBA" if "transparency" in image.info else "RGB")
    if mode in ("PA", "RGBa"):
        return image.convert("RGBA")
    if mode == "La":
        return image.convert("LA")
    if mode == "1":
        return image.convert("L")
    if mode.startswith("I"):  # I;16B / I;16L / I;16N byte orders, and 32-bit I
        return Image.fromarray(np.clip(np.asarray(image), 0, _SIXTEEN_BIT).astype(np.uint16))
    try:
        return image.convert("RGB")
    except ValueError as err:
        raise ImageInputError(f"{name}: PIL mode {mode!r} is not supported ({err})") from err


def float_range(image: Image.Image, name: str = "image") -> float:
    """The value range of a mode F image (module docstring), checked for NaN / infinity."""
    values = np.asarray(image)
    if not np.isfinite(values).all():
        raise ImageInputError(f"{name} is a float image with NaN or infinite values")
    peak = float(values.max(initial=0.0))
    for value_range in FLOAT_RANGES:
        if peak <= value_range:
            return value_range
    raise ImageInputError(
        f"{name} is a float image with values up to {peak:g}; expected a range of 0-1, 0-255 or 0-65535"
    )


def split_image(image: Image.Image, name: str = "image") -> ImageParts:
    """The float RGB a model sees, and how to rebuild the output (:func:`join_image`)."""
    image = normalise_mode(image, name)
    mode, alpha = image.mode, None
    if mode in ("RGBA", "LA"):
        alpha = image.getchannel("A")
        image = image.convert("RGB" if mode == "RGBA" else "L")
    if mode == "F":
        value_range = float_range(image, name)
        grey = np.clip(np.asarray(image, dtype=np.float32) / value_range, 0, 1)
    elif mode == "I;16":
        value_range = _SIXTEEN_BIT
        grey = np.asarray(image, dtype=np.float32) / value_range
    elif mode in _GREY_MODES:
        value_range = 255.0
        grey = np.asarray(image, dtype=np.float32) / value_range
    else:
        rgb = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
        return ImageParts(rgb, alpha, mode, 255.0)
    return ImageParts(np.repeat(grey[..., None], 3, axis=2), alpha, mode, value_range)


def join_image(rgb: np.ndarray, parts: ImageParts) -> Image.Image:
    """Inverse of :func:`split_image` for the float32 (3, sH, sW) output, which it consumes:
    it is scaled in place, so a 4096² output needs no float temporaries beside it."""
    np.clip(rgb, 0, 1, out=rgb)
    if parts.mode in _GREY_MODES:
        rgb = rgb.mean(axis=0, keepdims=True)  # the channels of a grey input stay (nearly) equal
    rgb *= parts.value_range
    if parts.mode == "F":
        return Image.fromarray(np.ascontiguousarray(rgb[0], dtype=np.float32))
    levels = np.rint(rgb, out=rgb).astype(np.uint16 if parts.mode == "I;16" else np.uint8)
    if parts.mode == "I;16":
        return Image.fromarray(levels[0])
    out = Image.fromarray(levels[0] if len(levels) == 1 else np.ascontiguousarray(levels.transpose(1, 2, 0)))
    if parts.alpha is not None:
        out.putalpha(parts.alpha.resize(out.size, Image.BICUBIC))
    return out.convert(parts.mode) if out.mode != parts.mode else out


def to_rgb(image: Image.Image, name: str = "image") -> Image.Image:
    """8-bit RGB of any mode, 16-bit and float images scaled by their range (PIL's own
    ``convert("RGB")`` clips them, making a 16-bit image white and a 0-1 float image black)."""
    image = normalise_mode(image, name)
    if image.mode in ("I;16", "F"):
        parts = split_image(image, name)
        levels = np.rint(parts.rgb * 255.0).astype(np.uint8)
        return Image.fromarray(levels)
    return image.convert("RGB")
