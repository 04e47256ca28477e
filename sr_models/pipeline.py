"""Inference for any input: PIL modes, padding, blended tiling, device and precision.

``upscale(model, image)`` is the entry point for images; ``upscale_tensor(model, lr)``
for tensors. Both leave the numbers to the model: padding only extends the borders, and
tiles are blended so that, for a model with a finite receptive field (ESPCN), the
tiled output equals the untiled one exactly.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import nn

logger = logging.getLogger(__name__)

#: Largest input accepted by default, in pixels (the decompression-bomb guard): 40 MP in
#: gives 640 MP out at x4, already ~2 GB as 8-bit RGB.
DEFAULT_MAX_PIXELS = 40_000_000
#: Share of the free memory that ``tile="auto"`` plans to use.
AUTO_TILE_MEMORY_FRACTION = 0.5
#: Bytes per LR pixel of a forward pass per unit of model width. benchmarks/memory.py
#: measured HAT-S (embed 144) float32 on CPU at ~43 KB per LR pixel (~300 per channel);
#: the 1.4x margin covers allocator slack.
BYTES_PER_PIXEL_PER_CHANNEL = 420

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
ProgressCallback = Callable[[int, int], None]


class ImageInputError(ValueError):
    """An input that cannot be super-resolved: not an image, empty, or too large."""


# --------------------------------------------------------------------------- tensors


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Reflect-pad (B, C, H, W) on the right and bottom up to multiples of ``multiple``.

    Reflection (as the official HAT test code does) keeps image statistics at the border.
    PyTorch's reflect needs pad < size, so tiny inputs are reflected repeatedly.
    """
    h, w = x.shape[-2:]
    pad_h, pad_w = -h % multiple, -w % multiple
    while pad_h or pad_w:
        step_h, step_w = min(pad_h, x.shape[-2] - 1), min(pad_w, x.shape[-1] - 1)
        if step_h == 0 and step_w == 0:  # a 1-pixel side cannot be reflected
            return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        x = F.pad(x, (0, step_w, 0, step_h), mode="reflect")
        pad_h, pad_w = pad_h - step_h, pad_w - step_w
    return x


def upscale_tensor(model: nn.Module, lr: torch.Tensor) -> torch.Tensor:
    """Super-resolve float (B, C, H, W) in [0, 1] of any H, W; returns (B, C, sH, sW).

    Pads to ``model.pad_multiple``, runs the model as it is (device, dtype, grad mode are
    the caller's), crops the padding away. Values are not clamped.
    """
    if lr.ndim != 4:
        raise ValueError(f"expected a (B, C, H, W) tensor, got shape {tuple(lr.shape)}")
    h, w = lr.shape[-2:]
    if h == 0 or w == 0:
        raise ValueError(f"empty input of size {h}x{w}")
    out = model(pad_to_multiple(lr, model.pad_multiple))
    return out[..., : model.scale * h, : model.scale * w]


def _tile_starts(size: int, tile: int, stride: int) -> list[int]:
    """Tile origins covering [0, size) in regular steps; the last tile may be shorter.

    Keeping every origin on the stride grid (a multiple of the window size) keeps the
    attention windows of every tile aligned with those of the untiled image; the last
    tile is padded at the image border exactly as the whole image would be.
    """
    starts = [0]
    while starts[-1] + tile < size:
        starts.append(starts[-1] + stride)
    return starts


def _blend_ramp(length: int, overlap: int, margin: int, left_inner: bool, right_inner: bool) -> torch.Tensor:
    """1-D blending weights of one tile side by side with its neighbours.

    Towards an inner edge (one shared with a neighbour) the weight is 0 for ``margin``
    pixels, where the tile lacks context, then rises linearly to 1 across the rest of
    the overlap. With overlap >= 2 * margin the neighbours' nonzero parts always meet,
    and if ``margin`` covers the model's receptive radius, only exact pixels are blended.
    """
    w = torch.ones(length)
    ramp_len = max(overlap - 2 * margin, 0)
    ramp = torch.cat([torch.zeros(margin), torch.arange(1, ramp_len + 1) / (ramp_len + 1)])
    ramp = ramp[:length]
    if left_inner:
        w[: len(ramp)] = torch.minimum(w[: len(ramp)], ramp)
    if right_inner:
        w[length - len(ramp):] = torch.minimum(w[length - len(ramp):], ramp.flip(0))
    return w


def default_tile_overlap(model: nn.Module) -> int:
    """Overlap (LR pixels) between tiles: ESPCN's receptive field makes tiling exact;
    for attention models, two windows of context (>= 45 dB against untiled for HAT)."""
    radius = getattr(model, "receptive_radius", None)
    if radius is not None:
        return 2 * radius
    return 2 * model.pad_multiple


def upscale_tiled(model: nn.Module, lr: torch.Tensor, tile: int, overlap: int,
                  progress: ProgressCallback | None = None) -> torch.Tensor:
    """``upscale_tensor`` over overlapping tiles of ``tile`` LR pixels, blended.

    ``tile`` is rounded down and ``overlap`` up to multiples of ``model.pad_multiple``.
    Peak memory follows the tile: one tile is on the model's device at a time; the
    full-size output is accumulated on the CPU. Returns (B, C, sH, sW) float32 on CPU.
    """
    b, c, h, w = lr.shape
    s = model.scale
    multiple = model.pad_multiple
    tile = tile // multiple * multiple
    overlap = -(-overlap // multiple) * multiple  # windows stay aligned: see _tile_starts
    if overlap >= tile:
        raise ValueError(f"tile_overlap={overlap} must be smaller than tile={tile} (both in multiples of {multiple})")
    radius = getattr(model, "receptive_radius", None)
    margin = min(radius if radius is not None else overlap // 4, overlap // 2)
    stride = tile - overlap
    ys, xs = _tile_starts(h, tile, stride), _tile_starts(w, tile, stride)
    device = next(model.parameters()).device
    out = torch.zeros(b, c, s * h, s * w)
    weight = torch.zeros(1, 1, s * h, s * w)
    total, done = len(ys) * len(xs), 0
    for y in ys:
        th = min(tile, h - y)
        wy = _blend_ramp(th, overlap, margin, y > 0, y + th < h).repeat_interleave(s)
        for x in xs:
            tw = min(tile, w - x)
            wx = _blend_ramp(tw, overlap, margin, x > 0, x + tw < w).repeat_interleave(s)
            patch = upscale_tensor(model, lr[..., y:y + th, x:x + tw].to(device)).float().cpu()
            tile_weight = wy[:, None] * wx[None, :]
            out[..., s * y:s * (y + th), s * x:s * (x + tw)] += patch * tile_weight
            weight[..., s * y:s * (y + th), s * x:s * (x + tw)] += tile_weight
            done += 1
            if progress is not None:
                progress(done, total)
    return out.div_(weight)  # in place: the output is the largest tensor here


# --------------------------------------------------------------------------- devices


def resolve_device(device: str | torch.device | None) -> torch.device:
    """The given device, or the best available one: cuda > mps > cpu."""
    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def autocast_context(device: torch.device, dtype: str | torch.dtype | None):
    """float32 (no autocast) by default; bf16 / fp16 autocast where the device has it."""
    if dtype is None or dtype in ("float32", torch.float32):
        return nullcontext()
    if isinstance(dtype, str):
        if dtype not in DTYPES:
            raise ValueError(f"dtype={dtype!r} is invalid: expected one of {sorted(DTYPES)}")
        dtype = DTYPES[dtype]
    if device.type == "cpu" and dtype == torch.float16:
        raise ValueError("float16 autocast is not supported for inference on the CPU; use bfloat16")
    if device.type == "cuda" and dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        raise ValueError("this GPU does not support bfloat16; use float16")
    return torch.autocast(device_type=device.type, dtype=dtype)


def free_memory_bytes(device: torch.device) -> int:
    """Memory available to a forward pass on ``device`` now."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    if device.type == "mps":
        return int(torch.mps.recommended_max_memory() - torch.mps.current_allocated_memory())
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def auto_tile(model: nn.Module, height: int, width: int, device: torch.device) -> int | None:
    """A tile side (LR pixels) whose forward pass fits the free memory, or None when the
    whole image fits. Estimate: bytes per pixel grow with the model's feature width."""
    width_channels = getattr(model, "embed_dim", None) or max(
        (m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)), default=64)
    bytes_per_pixel = BYTES_PER_PIXEL_PER_CHANNEL * width_channels
    budget = free_memory_bytes(device) * AUTO_TILE_MEMORY_FRACTION
    if height * width * bytes_per_pixel <= budget:
        return None
    side = int(math.sqrt(budget / bytes_per_pixel))
    multiple = model.pad_multiple
    return max(multiple * 4, side // multiple * multiple)


# --------------------------------------------------------------------------- images


def load_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open an image file, checked (a real image, not empty, not over ``max_pixels``)
    and turned upright by its EXIF orientation."""
    try:
        image = Image.open(path)
    except FileNotFoundError as err:
        raise ImageInputError(f"{path}: no such file") from err
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError) as err:
        raise ImageInputError(f"{path}: not a readable image ({err})") from err
    check_image_size(image, max_pixels, str(path))
    try:
        image.load()
    except (OSError, SyntaxError, ValueError) as err:  # truncated or corrupt pixel data
        raise ImageInputError(f"{path}: corrupt image data ({err})") from err
    return ImageOps.exif_transpose(image)


def check_image_size(image: Image.Image, max_pixels: int = DEFAULT_MAX_PIXELS, name: str = "image") -> None:
    w, h = image.size
    if w == 0 or h == 0:
        raise ImageInputError(f"{name} is empty ({w}x{h})")
    if w * h > max_pixels:
        raise ImageInputError(
            f"{name} is {w}x{h} = {w * h / 1e6:.1f} MP, over the limit of {max_pixels / 1e6:.1f} MP "
            "(raise max_pixels if this is intended)"
        )


def _split_image(image: Image.Image) -> tuple[np.ndarray, Image.Image | None, str, float]:
    """(colour as float32 HxWx3 in [0, 1], alpha or None, output mode, value range)."""
    mode = image.mode
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # 16-bit greyscale: full precision in, 16-bit out (mode "I" is how PIL opens some).
        grey = np.asarray(image, dtype=np.float32) / 65535.0
        return np.repeat(np.clip(grey, 0, 1)[..., None], 3, axis=2), None, "I;16", 65535.0
    alpha = None
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        alpha = image.getchannel("A")
        image = image.convert("RGB" if mode in ("RGBA", "RGBa", "PA") else "L")
    if image.mode in ("1", "L"):
        out_mode = "LA" if alpha is not None else "L"
        grey = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
        return np.repeat(grey[..., None], 3, axis=2), alpha, out_mode, 255.0
    out_mode = {"CMYK": "CMYK"}.get(mode, "RGBA" if alpha is not None else "RGB")
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return rgb, alpha, out_mode, 255.0


def _join_image(rgb: torch.Tensor, alpha: Image.Image | None, mode: str, value_range: float) -> Image.Image:
    """Inverse of :func:`_split_image` for the (3, sH, sW) float output, which it consumes:
    it is scaled in place, so a 4096² output needs no float temporaries beside it."""
    rgb = rgb.clamp_(0, 1)
    if mode in ("L", "LA", "I;16"):
        rgb = rgb.mean(dim=0, keepdim=True)  # the three channels of a grey input stay (nearly) equal
    if mode == "I;16":
        levels = rgb.mul_(value_range).round_().to(torch.int32)[0].numpy()
        return Image.fromarray(levels.astype(np.uint16))
    arr = rgb.mul_(255).round_().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
    out = Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr)
    if alpha is not None:
        out.putalpha(alpha.resize(out.size, Image.BICUBIC))
    return out.convert(mode) if out.mode != mode else out


def upscale(
    model: nn.Module,
    image: Image.Image | str | os.PathLike,
    *,
    tile: int | str | None = None,
    tile_overlap: int | None = None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    progress: ProgressCallback | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Image.Image:
    """Super-resolve a PIL image (or an image file) with ``model``.

    Any mode a user meets: RGB, RGBA / LA (alpha upscaled with bicubic), L (grey in, grey
    out), P (via RGB / RGBA), CMYK (returned as CMYK), 16-bit greyscale (processed at full
    precision, returned as I;16), 1-bit (returned as 8-bit L: the upscaled edges are
    grey). EXIF orientation is honoured. The output is exactly (scale·w, scale·h).

    ``tile``: None (whole image), an LR tile side, or "auto" (from the image size and the
    device's free memory); tiles overlap by ``tile_overlap`` LR pixels (default: the
    model's receptive field for ESPCN, two windows for HAT) and are blended.
    ``device``: default cuda > mps > cpu; the model is moved there and set to eval mode.
    ``dtype``: "float32" (default), "bfloat16" or "float16" autocast.
    ``progress(done, total)`` is called after each tile.
    """
    if isinstance(image, (str, os.PathLike)):
        image = load_image(Path(image), max_pixels)
    elif not isinstance(image, Image.Image):
        raise ImageInputError(f"expected a PIL image or a path, got {type(image).__name__}")
    else:
        check_image_size(image, max_pixels)
        image = ImageOps.exif_transpose(image)
    rgb, alpha, mode, value_range = _split_image(image)

    device = resolve_device(device)
    model.to(device).eval()
    lr = torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0)  # (1, 3, H, W)
    h, w = lr.shape[-2:]
    if tile == "auto":
        tile = auto_tile(model, h, w, device)
    elif tile is not None and (not isinstance(tile, int) or tile < model.pad_multiple):
        raise ValueError(f"tile={tile!r} is invalid: expected 'auto' or an integer >= {model.pad_multiple}")
    with torch.inference_mode():
        with autocast_context(device, dtype):
            if tile is None or (h <= tile and w <= tile):
                sr = upscale_tensor(model, lr.to(device)).float().cpu()
                if progress is not None:
                    progress(1, 1)
            else:
                overlap = default_tile_overlap(model) if tile_overlap is None else tile_overlap
                sr = upscale_tiled(model, lr, tile, overlap, progress)
        return _join_image(sr[0], alpha, mode, value_range)  # in place, hence inside inference mode
