"""Inference for any input: PIL modes, padding, blended tiling, device and precision.

``upscale(model, image)`` is the entry point for images; ``upscale_tensor(model, lr)``
for tensors. Both leave the numbers to the model: padding only extends the borders, and
tiles are blended so that, for a model with a finite receptive field (ESPCN), the
tiled output equals the untiled one up to float rounding (~1e-6). What each PIL mode
becomes is in :mod:`sr_models.image_io`.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from torch import nn

from .image_io import (DEFAULT_MAX_PIXELS, ImageInputError, check_image_size, join_image, load_image,
                       split_image, warn_if_animated)
from .tile_pool import in_callers_modes, map_in_order, single_threaded_pool
from .validation import is_int

logger = logging.getLogger(__name__)

#: Share of the free memory that ``tile="auto"`` plans a forward pass to use. Each model
#: estimates the peak of its tensors (``model.bytes_per_pixel``); the process needs more:
#: allocator slack, kernel workspaces and the pipeline's own full-size images (HAT-S x4 on
#: the CPU: ~1.1x the estimate in resident memory; docs/upscaling.md#auto-tiling).
AUTO_TILE_MEMORY_FRACTION = 0.5


def __getattr__(name: str):
    # A removed name is refused with where its meaning went (one width-based guess for every
    # model could not follow what each architecture holds).
    if name == "BYTES_PER_PIXEL_PER_CHANNEL":
        raise AttributeError("sr_models.pipeline.BYTES_PER_PIXEL_PER_CHANNEL is gone: each model states its own "
                             "peak memory per LR pixel, model.bytes_per_pixel")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
#: Device types a model can run on here ("meta" holds no data; others are not tested).
DEVICE_TYPES = ("cpu", "cuda", "mps")
ProgressCallback = Callable[[int, int], None]

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


def input_channels(model: nn.Module) -> int:
    """Channels the model takes: its config's ``in_chans`` (3, RGB, for every preset)."""
    config = getattr(model, "config", None)  # plain nn.Modules (test doubles) have none
    return config.get("in_chans", 3) if isinstance(config, dict) else 3


def check_input(model: nn.Module, lr: torch.Tensor) -> None:
    """The one input check of :func:`upscale_tensor`, whatever the model: a float
    (B, C, H, W) or (C, H, W) tensor with the model's channels, not empty, finite."""
    if not isinstance(lr, torch.Tensor):
        raise TypeError(f"expected a torch tensor, got {type(lr).__name__}")
    if lr.ndim not in (3, 4):
        raise ValueError(f"expected a (B, C, H, W) or (C, H, W) tensor, got shape {tuple(lr.shape)}")
    if not lr.is_floating_point():
        raise ValueError(f"expected a float tensor with values in [0, 1], got dtype {lr.dtype}; "
                         "convert 8-bit images with lr.float() / 255")
    channels = input_channels(model)
    if lr.shape[-3] != channels:
        raise ValueError(f"expected {channels} channels (dimension -3), got {lr.shape[-3]} in shape {tuple(lr.shape)}")
    h, w = lr.shape[-2:]
    if h == 0 or w == 0:
        raise ValueError(f"empty input of size {h}x{w}")
    if not torch.isfinite(lr).all():
        raise ValueError("the input holds NaN or infinite values")


class NonFiniteOutputError(ValueError):
    """The model turned a finite input into NaN or infinity (broken weights or config, or a
    float16 overflow): an error, never an all-black image."""


def model_name(model: nn.Module) -> str:
    """The model for messages: its class and where its weights came from, when known."""
    source = getattr(model, "name_or_path", None)
    return f"{type(model).__name__} ({source})" if source else f"the {type(model).__name__} model"


def check_output(model: nn.Module, out: torch.Tensor) -> None:
    if not torch.isfinite(out).all():
        hint = f" ({out.dtype} overflowed? try float32)" if out.dtype in (torch.float16, torch.bfloat16) else ""
        raise NonFiniteOutputError(f"{model_name(model)} gave NaN or infinite values for this input{hint}: "
                                   "its weights or configuration are broken")


def upscale_tensor(model: nn.Module, lr: torch.Tensor) -> torch.Tensor:
    """Super-resolve float (B, C, H, W) or (C, H, W) in [0, 1] of any H, W; returns
    (B, C, sH, sW) or (C, sH, sW). The input is checked (:func:`check_input`), and so is
    the output: NaN or infinity is a NonFiniteOutputError naming the model.

    Pads to ``model.pad_multiple``, runs the model as it is (device, dtype, grad mode are
    the caller's), crops the padding away. Values are not clamped.
    """
    check_input(model, lr)
    if lr.ndim == 3:
        return upscale_tensor(model, lr.unsqueeze(0))[0]
    h, w = lr.shape[-2:]
    out = model(pad_to_multiple(lr, model.pad_multiple))[..., : model.scale * h, : model.scale * w]
    check_output(model, out)
    return out


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


def tile_geometry(model: nn.Module, tile: int, overlap: int) -> tuple[int, int]:
    """``tile`` rounded down and ``overlap`` up to multiples of ``model.pad_multiple`` (so the
    attention windows stay aligned: see _tile_starts), checked: overlap < tile."""
    multiple = model.pad_multiple
    if isinstance(tile, bool) or not isinstance(tile, int) or tile < multiple:
        raise ValueError(f"tile={tile!r} is invalid: expected 'auto', None or an integer >= {multiple}")
    if isinstance(overlap, bool) or not isinstance(overlap, int) or overlap < 0:
        raise ValueError(f"tile_overlap={overlap!r} is invalid: expected an integer >= 0")
    rounded_tile, rounded_overlap = tile // multiple * multiple, -(-overlap // multiple) * multiple
    if rounded_overlap >= rounded_tile:
        raise ValueError(f"tile_overlap={overlap} must be smaller than tile={tile} (rounded to multiples of "
                         f"{multiple}: {rounded_overlap} and {rounded_tile})")
    return rounded_tile, rounded_overlap


def default_tile_overlap(model: nn.Module) -> int:
    """Overlap (LR pixels) between tiles: the model's ``tile_overlap`` (ESPCN: twice its
    receptive radius, which makes tiling exact; HAT: two windows, >= 45 dB against untiled)."""
    return model.tile_overlap


def _tile_margin(model: nn.Module, overlap: int) -> int:
    """LR pixels at a tile's inner edge left out of the blend: the model's receptive radius
    (only exact pixels are blended), or a quarter of the overlap for a model without one."""
    radius = model.receptive_radius
    return min(overlap // 4 if radius is None else radius, overlap // 2)


def upscale_tiled(model: nn.Module, lr: torch.Tensor, tile: int, overlap: int,
                  progress: ProgressCallback | None = None, workers: int = 1) -> torch.Tensor:
    """``upscale_tensor`` over overlapping tiles of ``tile`` LR pixels, blended.

    ``tile`` is rounded down and ``overlap`` up to multiples of ``model.pad_multiple``.
    Peak memory follows the tile: one tile is on the model's device at a time (on the
    CPU, ``workers`` tiles at once, each on one thread: :mod:`sr_models.tile_pool`); the
    full-size output is accumulated on the CPU, in the tiles' order whatever the workers.
    Returns (B, C, sH, sW) float32 on CPU.
    """
    check_tile_workers(workers)
    b, c, h, w = lr.shape
    s = model.scale
    tile, overlap = tile_geometry(model, tile, overlap)
    margin = _tile_margin(model, overlap)
    stride = tile - overlap
    boxes = [(y, min(tile, h - y), x, min(tile, w - x))
             for y in _tile_starts(h, tile, stride) for x in _tile_starts(w, tile, stride)]
    device = next(model.parameters()).device

    def run(box: tuple[int, int, int, int]) -> torch.Tensor:
        y, th, x, tw = box
        return upscale_tensor(model, lr[..., y:y + th, x:x + tw].to(device)).float().cpu()

    out = torch.zeros(b, c, s * h, s * w)
    weight = torch.zeros(1, 1, s * h, s * w)
    for done, ((y, th, x, tw), patch) in enumerate(zip(boxes, _tile_outputs(run, boxes, workers, device)), 1):
        wy = _blend_ramp(th, overlap, margin, y > 0, y + th < h).repeat_interleave(s)
        wx = _blend_ramp(tw, overlap, margin, x > 0, x + tw < w).repeat_interleave(s)
        tile_weight = wy[:, None] * wx[None, :]
        out[..., s * y:s * (y + th), s * x:s * (x + tw)] += patch * tile_weight
        weight[..., s * y:s * (y + th), s * x:s * (x + tw)] += tile_weight
        if progress is not None:
            progress(done, len(boxes))
    return out.div_(weight)  # in place: the output is the largest tensor here


def _tile_outputs(run, boxes: list, workers: int, device: torch.device):
    """Each tile's output in order: one after the other, or ``workers`` at once on the CPU."""
    if workers == 1 or device.type != "cpu" or len(boxes) == 1:
        return map(run, boxes)
    return map_in_order(single_threaded_pool(workers), in_callers_modes(run), boxes, ahead=workers)


def check_tile_workers(workers: int) -> None:
    """``tile_workers`` as :func:`upscale` takes it: an integer >= 1."""
    if not is_int(workers) or workers < 1:
        raise ValueError(f"tile_workers={workers!r} is invalid: expected an integer >= 1")


# --------------------------------------------------------------------------- devices


def resolve_device(device: str | torch.device | None) -> torch.device:
    """The given device, checked to exist, or the best available one: cuda > mps > cpu."""
    if device is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if _mps_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device={device!r} is invalid: expected cpu, cuda, cuda:N or mps") from err
    if device.type not in DEVICE_TYPES:
        raise ValueError(f"device {str(device)!r} cannot run a model here: expected cpu, cuda, cuda:N or mps")
    if device.type == "cuda" and not torch.cuda.is_available():
        why = "this torch is a CPU-only build" if torch.version.cuda is None else "no CUDA GPU is visible"
        raise ValueError(f"device {str(device)!r} is not available: {why}")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"device {str(device)!r} is not available: {torch.cuda.device_count()} CUDA GPU(s) visible")
    if device.type == "mps" and not _mps_available():
        raise ValueError("device 'mps' is not available on this machine")
    return device


def _mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


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
    """A tile side whose forward pass fits the free memory.

    Args:
        model: the model; its ``bytes_per_pixel`` (peak of a float32 forward per LR pixel)
            and ``pad_multiple`` are read.
        height, width: the LR image.
        device: where the model runs (its free memory is asked now).

    Returns:
        None when the whole image fits in AUTO_TILE_MEMORY_FRACTION of the free memory, else
        the largest tile side (LR pixels, a multiple of ``pad_multiple``, at least four of
        them) that does.
    """
    budget = free_memory_bytes(device) * AUTO_TILE_MEMORY_FRACTION
    if height * width * model.bytes_per_pixel <= budget:
        return None
    side = int(math.sqrt(budget / model.bytes_per_pixel))
    multiple = model.pad_multiple
    return max(multiple * 4, side // multiple * multiple)


# --------------------------------------------------------------------------- images


def check_tiling(model: nn.Module, tile: int | str | None, tile_overlap: int | None) -> int:
    """Check ``tile`` and ``tile_overlap`` (as :func:`upscale` takes them) before any work;
    returns the overlap to use."""
    if tile is None and tile_overlap is None:
        return 0  # no tiles: nothing to overlap, and no tiling fact of the model is read
    overlap = default_tile_overlap(model) if tile_overlap is None else tile_overlap
    if tile is None or tile == "auto":
        if isinstance(overlap, bool) or not isinstance(overlap, int) or overlap < 0:
            raise ValueError(f"tile_overlap={overlap!r} is invalid: expected an integer >= 0")
    else:
        tile_geometry(model, tile, overlap)
    return overlap


def _open(image: Image.Image | str | os.PathLike, max_pixels: int) -> tuple[Image.Image, str]:
    """(the image upright, checked; its name for messages)."""
    if isinstance(image, (str, os.PathLike)):
        return load_image(image, max_pixels), str(image)
    if not isinstance(image, Image.Image):
        raise ImageInputError(f"expected a PIL image or a path, got {type(image).__name__}")
    check_image_size(image, max_pixels)
    warn_if_animated(image)
    return ImageOps.exif_transpose(image), "image"


def upscale(
    model: nn.Module,
    image: Image.Image | str | os.PathLike,
    *,
    tile: int | str | None = None,
    tile_overlap: int | None = None,
    tile_workers: int = 1,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    progress: ProgressCallback | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Image.Image:
    """Super-resolve a PIL image (or an image file) with ``model``.

    Any PIL mode: RGB, RGBA / LA (alpha upscaled with bicubic), L (grey in, grey out),
    P (via RGB / RGBA), CMYK (returned as CMYK), 16-bit greyscale (full precision,
    returned as I;16), float (F, returned as F in its own range), 1-bit (returned as L);
    the table is in :mod:`sr_models.image_io`. EXIF orientation is honoured; an animated
    image gives its first frame, with a logged warning. The output is exactly
    (scale·w, scale·h).

    ``tile``: None (whole image), an LR tile side, or "auto" (tiles only when the image
    does not fit the device's free memory); tiles overlap by ``tile_overlap`` LR pixels
    (default: the model's receptive field for ESPCN, two windows for HAT) and are blended.
    ``tile_workers``: on the CPU, how many tiles run at once, each on one thread (faster
    than one tile on all threads where its small operations leave cores idle; memory
    grows with it): at most the torch threads, as a rule.
    ``device``: default cuda > mps > cpu; the model is moved there and set to eval mode.
    ``dtype``: "float32" (default), "bfloat16" or "float16" autocast.
    ``progress(done, total)`` is called after each tile.
    """
    overlap = check_tiling(model, tile, tile_overlap)
    check_tile_workers(tile_workers)
    device = resolve_device(device)  # before the model is touched: a bad device leaves it where it was
    image, name = _open(image, max_pixels)
    parts = split_image(image, name)
    model.to(device).eval()
    lr = torch.from_numpy(parts.rgb).permute(2, 0, 1).unsqueeze(0)  # (1, 3, H, W)
    h, w = lr.shape[-2:]
    if tile == "auto":
        tile = auto_tile(model, h, w, device)
        # room for the overlap on both sides plus some new pixels in every tile
        tile = None if tile is None else max(tile, 2 * overlap + 2 * model.pad_multiple)
    with torch.inference_mode(), autocast_context(device, dtype):
        if tile is None or (h <= tile and w <= tile):
            sr = upscale_tensor(model, lr.to(device)).float().cpu()
            if progress is not None:
                progress(1, 1)
        else:
            sr = upscale_tiled(model, lr, tile, overlap, progress, tile_workers)
    return join_image(sr[0].numpy(), parts)  # scaled in place: no full-size float copies
