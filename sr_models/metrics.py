"""Super-resolution metrics: the one implementation of the protocol's scores.

The rules are written once, in docs/protocol.md (the convention of the SR literature behind
published tables: EDSR, SwinIR, HAT, BasicSR's ``calculate_psnr`` / ``calculate_ssim`` with
``test_y_channel=True``). In short: both images rounded to uint8 (a float tensor in [0, 1]
is clamped, scaled by 255 and rounded, as a saved PNG would be); RGB reduced to ITU-R BT.601
luma in float64, not re-rounded; ``crop_border`` pixels (the scale) cut on every side; a
data range of 255. SSIM is Wang et al. (2004) with an 11x11 Gaussian window (sigma 1.5) on
the "valid" region, population statistics; MS-SSIM is Wang, Simoncelli and Bovik (2003) on
the same window over five scales, as pytorch-msssim and ``tf.image.ssim_multiscale`` compute
it (an odd side repeats its last row or column before the 2x2 average, as TensorFlow does).

Each metric has one core, shared by the scalar functions (``psnr``, ``ssim``, ``ms_ssim``: PIL
images, uint8 arrays, tensors) and the batched ones (``*_batch``: float tensors on any device,
computed in float64, float32 on MPS), so they cannot drift apart. The cores hold the compared planes in
float64 and work on strips of at most STRIP_PIXELS, so that memory stays bounded for any
image size (SSIM of a 12 MP image at once needed 6.5 GB). An image too small for a metric
raises :class:`ImageTooSmall`. Which metrics the project reports, with their names and
formats, is :mod:`sr_models.metric_registry`; this module only scores. How the pairs are
made (``degrade``, ``bicubic_upscale``, ``crop_to_multiple``) is :mod:`sr_models.protocol`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .image_io import check_protocol_mode
from .validation import require_int

__all__ = [
    "SSIM_WINDOW_SIZE",
    "SSIM_SIGMA",
    "MS_SSIM_WEIGHTS",
    "MS_SSIM_MIN_SIDE",
    "ImageTooSmall",
    "rgb_to_y",
    "to_uint8_array",
    "to_uint8_batch",
    "psnr",
    "ssim",
    "ms_ssim",
    "psnr_batch",
    "ssim_batch",
    "ms_ssim_batch",
]

SSIM_WINDOW_SIZE = 11
SSIM_SIGMA = 1.5
#: The exponents of MS-SSIM's five scales, finest first (Wang, Simoncelli, Bovik, "Multi-scale
#: structural similarity for image quality assessment", Asilomar 2003, Table 1).
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
#: The smallest side, after the border crop, MS-SSIM is defined for: the 11x11 window must fit
#: the fifth scale, halved four times (161 -> 81 -> 41 -> 21 -> 11; pytorch-msssim's bound).
MS_SSIM_MIN_SIDE = (SSIM_WINDOW_SIZE - 1) * 2 ** (len(MS_SSIM_WEIGHTS) - 1) + 1
#: Values (images x channels x pixels) filtered at once. SSIM holds ~250 bytes per value
#: (five float64 moments, twice filtered, and the maps): ~65 MB per strip, so that the app
#: scores a 2048x2048 original with every metric within ~0.3 GB (two requests at once).
STRIP_PIXELS = 2**18
_DATA_RANGE = 255.0
_C1 = (0.01 * _DATA_RANGE) ** 2
_C2 = (0.03 * _DATA_RANGE) ** 2
# ITU-R BT.601 luma weights for R, G, B in [0, 1], giving Y on the 0..255 scale.
_Y_OFFSET = 16.0
_Y_WEIGHTS = (65.481, 128.553, 24.966)

ImageLike = Union[Image.Image, np.ndarray, torch.Tensor]


class ImageTooSmall(ValueError):
    """An image pair too small for a metric once its border is cropped."""


# --------------------------------------------------------------------------- inputs


def _compute_dtype(device: torch.device) -> torch.dtype:
    # float64 so the batched GPU numbers equal the scalar CPU ones to ~1e-12.
    # MPS has no float64; there float32 is the best available (agreement ~1e-4).
    return torch.float32 if device.type == "mps" else torch.float64


def _quantize(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Float image in [0, 1] -> float tensor holding the uint8 values 0..255."""
    return torch.round(x.to(dtype).clamp(0.0, 1.0) * _DATA_RANGE)


def _pil_to_array(img: Image.Image) -> np.ndarray:
    check_protocol_mode(img)
    return np.asarray(img, dtype=np.uint8)


def to_uint8_array(img: ImageLike) -> np.ndarray:
    """An image as the protocol reads it: its uint8 values.

    Args:
        img: a PIL image (mode RGB or L), a uint8 array (H, W, 3), (H, W, 1) or (H, W), or a
            float torch tensor in [0, 1] of shape (3, H, W), (1, 3, H, W), (1, H, W) or
            (1, 1, H, W); float tensors are clamped to [0, 1], scaled by 255 and rounded.

    Returns:
        A uint8 array (H, W, 3) or (H, W).
    """
    if isinstance(img, Image.Image):
        arr = _pil_to_array(img)
    elif isinstance(img, np.ndarray):
        if img.dtype != np.uint8:
            # A float array is ambiguous (0..1 or 0..255?); refuse rather than guess.
            raise TypeError(
                f"numpy images must be uint8, got dtype {img.dtype}; "
                "pass float images as torch tensors in [0, 1]"
            )
        arr = img
    elif isinstance(img, torch.Tensor):
        if not img.is_floating_point():
            raise TypeError(f"torch images must be float tensors in [0, 1], got dtype {img.dtype}")
        t = img.detach()
        if t.ndim == 4:
            if t.shape[0] != 1:
                raise ValueError(
                    f"expected a single image, got a batch of {t.shape[0]}; use psnr_batch/ssim_batch"
                )
            t = t[0]
        if t.ndim != 3 or t.shape[0] not in (1, 3):
            raise ValueError(
                f"torch images must have shape (3, H, W) or (1, 3, H, W), got {tuple(img.shape)}"
            )
        t = _quantize(t, _compute_dtype(t.device)).to(torch.uint8).cpu()
        arr = t.permute(1, 2, 0).numpy()
    else:
        raise TypeError(
            f"unsupported image type {type(img).__name__}; expected PIL.Image, uint8 numpy array "
            "or float torch tensor"
        )
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)):
        raise ValueError(f"images must have shape (H, W, 3) or (H, W), got {arr.shape}")
    return arr


def to_uint8_batch(img: ImageLike) -> torch.Tensor:
    """One image as a batch of one that the ``*_batch`` functions take.

    Args:
        img: anything :func:`to_uint8_array` takes.

    Returns:
        A uint8 tensor (1, C, H, W), C 1 or 3, on the CPU: what a pair is converted to once
        when several metrics score it.
    """
    arr = to_uint8_array(img)
    # a copy: PIL's np.asarray is read-only, which torch does not take
    t = torch.from_numpy(np.array(arr))
    return (t.unsqueeze(-1) if t.ndim == 2 else t).permute(2, 0, 1).unsqueeze(0)


def rgb_to_y(img: Union[torch.Tensor, np.ndarray]) -> Union[torch.Tensor, np.ndarray]:
    """ITU-R BT.601 luma, ``Y = 16 + 65.481 R + 128.553 G + 24.966 B``, R, G, B in [0, 1].

    Args:
        img: a torch tensor (..., 3, H, W) or a numpy array (..., H, W, 3) with values in
            [0, 1] (a uint8 array or tensor is divided by 255 first).

    Returns:
        Y on the 0..255 scale ([16, 235] for inputs in range), without the channel
        dimension; float64 for numpy and uint8 inputs, else in the tensor's float dtype.
    """
    wr, wg, wb = _Y_WEIGHTS
    if isinstance(img, torch.Tensor):
        if img.ndim < 3 or img.shape[-3] != 3:
            raise ValueError(f"expected a tensor of shape (..., 3, H, W), got {tuple(img.shape)}")
        x = img if img.is_floating_point() else img.to(torch.float64) / _DATA_RANGE
        return _Y_OFFSET + wr * x[..., 0, :, :] + wg * x[..., 1, :, :] + wb * x[..., 2, :, :]
    arr = np.asarray(img)
    if arr.ndim < 3 or arr.shape[-1] != 3:
        raise ValueError(f"expected an array of shape (..., H, W, 3), got {arr.shape}")
    x = arr / _DATA_RANGE if arr.dtype == np.uint8 else arr.astype(np.float64)
    return _Y_OFFSET + wr * x[..., 0] + wg * x[..., 1] + wb * x[..., 2]


# --------------------------------------------------------------------------- the cores


def _describe(shape) -> str:
    _, c, h, w = shape
    return f"{h}x{w}x{c} (HxWxC)"


class _Measure(NamedTuple):
    """A metric's core (planes -> per-image values), the smallest side it needs after the
    border crop, its name and what needs that side, for the message."""

    core: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    min_side: int
    name: str
    need: str


def _check_sizes(a: torch.Tensor, b: torch.Tensor, crop_border: int, measure: _Measure) -> None:
    if a.shape != b.shape:
        raise ValueError(f"sr and hr must have the same size: sr is {_describe(a.shape)}, hr is {_describe(b.shape)}")
    _, c, h, w = a.shape
    if c not in (1, 3):
        raise ValueError(f"images must have 1 or 3 channels, got {c}")
    hc, wc = h - 2 * crop_border, w - 2 * crop_border
    if min(hc, wc) < measure.min_side:
        side = measure.min_side
        raise ImageTooSmall(
            f"image of {h}x{w} (HxW) is too small for {measure.name} with crop_border={crop_border}: "
            f"{max(hc, 0)}x{max(wc, 0)} remain after cropping, {measure.need} at least {side}x{side}")


def _planes(x: torch.Tensor, crop_border: int, y_channel: bool, dtype: torch.dtype) -> torch.Tensor:
    """(B, C, H, W) uint8 levels or floats in [0, 1] -> what is compared: uint8 levels in
    ``dtype``, reduced to Y if asked, the border cut; made strip by strip, so that only the
    result is held at ``dtype``."""
    h, w = x.shape[-2:]
    x = x[..., crop_border : h - crop_border, crop_border : w - crop_border]
    rows = max(1, STRIP_PIXELS // (x.shape[0] * x.shape[1] * x.shape[-1]))
    return torch.cat([_levels(x[..., top : top + rows, :], y_channel, dtype) for top in range(0, x.shape[-2], rows)],
                     dim=-2)


def _levels(x: torch.Tensor, y_channel: bool, dtype: torch.dtype) -> torch.Tensor:
    values = x.to(dtype) if x.dtype == torch.uint8 else _quantize(x, dtype)
    if y_channel and values.shape[1] == 3:
        # Y from the uint8 values / 255, not re-rounded; a channel dim of 1 kept.
        return rgb_to_y(values / _DATA_RANGE).unsqueeze(1)
    return values


def _psnr_core(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    mse = (a - b).pow(2).mean(dim=(1, 2, 3))
    # mse == 0 (identical images) gives 255^2 / 0 = inf, and log10(inf) = inf: the
    # conventional answer, so no special case is needed.
    return 10.0 * torch.log10(_DATA_RANGE**2 / mse)


def _gaussian_1d(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    # Same taps as cv2.getGaussianKernel(11, 1.5), used by the reference SR code.
    half = SSIM_WINDOW_SIZE // 2
    x = torch.arange(-half, half + 1, dtype=dtype, device=device)
    g = torch.exp(-(x**2) / (2.0 * SSIM_SIGMA**2))
    return g / g.sum()


def gaussian_filter_valid(x: torch.Tensor, taps: list[float]) -> torch.Tensor:
    """The separable filter ``taps`` (columns, then rows) over the "valid" region of
    (..., h, w): no padding, so the result is (..., h - k + 1, w - k + 1).

    Written as k weighted, shifted sums per axis rather than two conv2d calls: on a CPU,
    single-channel convolutions in float64 (the protocol's precision) are 3-4x slower than
    these vectorised adds (``python -m benchmarks.metrics_speed``), and the sums agree with
    the convolutions to ~1e-13 on the 0..255 scale.
    """
    k = len(taps)
    h, w = x.shape[-2:]
    cols = x[..., 0 : h - k + 1, :] * taps[0]
    for i in range(1, k):
        cols.add_(x[..., i : i + h - k + 1, :], alpha=taps[i])
    out = cols[..., 0 : w - k + 1] * taps[0]
    for i in range(1, k):
        out.add_(cols[..., i : i + w - k + 1], alpha=taps[i])
    return out


def _ssim_maps(a: torch.Tensor, b: torch.Tensor, taps: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """The SSIM map and its contrast-structure part (cs) over the valid region of (N, C, h, w) planes."""
    # Filter the five moments of every channel in one go: (N, C, 5, h, w).
    out = gaussian_filter_valid(torch.stack([a, b, a * a, b * b, a * b], dim=2), taps)
    mu_a, mu_b, e_aa, e_bb, e_ab = out.unbind(dim=2)
    mu_aa, mu_bb, mu_ab = mu_a * mu_a, mu_b * mu_b, mu_a * mu_b
    cs = (2 * (e_ab - mu_ab) + _C2) / ((e_aa - mu_aa) + (e_bb - mu_bb) + _C2)
    return (2 * mu_ab + _C1) / (mu_aa + mu_bb + _C1) * cs, cs


def _ssim_means(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Means of the SSIM map and of cs per image and channel, (N, C) each, over strips of
    map rows; each strip reads the window's extra rows, so every map position is computed once."""
    n, c, h, w = a.shape
    map_h, map_w = h - SSIM_WINDOW_SIZE + 1, w - SSIM_WINDOW_SIZE + 1
    rows = max(1, STRIP_PIXELS // (n * c * w))
    taps = _gaussian_1d(a.dtype, a.device).tolist()
    ssim_sum = cs_sum = 0.0
    for top in range(0, map_h, rows):
        window = slice(top, min(top + rows, map_h) + SSIM_WINDOW_SIZE - 1)
        ssim_map, cs_map = _ssim_maps(a[..., window, :], b[..., window, :], taps)
        ssim_sum = ssim_sum + ssim_map.sum(dim=(-2, -1))
        cs_sum = cs_sum + cs_map.sum(dim=(-2, -1))
    return ssim_sum / (map_h * map_w), cs_sum / (map_h * map_w)


def _ssim_core(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # Mean of the map per channel, then over channels (only >1 for y_channel=False).
    return _ssim_means(a, b)[0].mean(dim=1)


def _halve(x: torch.Tensor) -> torch.Tensor:
    """2x2 average pooling; an odd side first repeats its last row or column
    (tf.image.ssim_multiscale's symmetric padding; pytorch-msssim pads zeros on both sides)."""
    pad = (0, x.shape[-1] % 2, 0, x.shape[-2] % 2)
    return F.avg_pool2d(F.pad(x, pad, mode="replicate") if any(pad) else x, 2)


def _ms_ssim_core(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    weights = torch.tensor(MS_SSIM_WEIGHTS, dtype=a.dtype, device=a.device)
    factors = []
    for level in range(len(MS_SSIM_WEIGHTS)):
        ssim_mean, cs_mean = _ssim_means(a, b)
        if level < len(MS_SSIM_WEIGHTS) - 1:
            factors.append(cs_mean.clamp(min=0))  # cs at the finer scales, as both references
            a, b = _halve(a), _halve(b)
    factors.append(ssim_mean.clamp(min=0))  # the whole SSIM at the coarsest scale
    per_channel = torch.prod(torch.stack(factors) ** weights.view(-1, 1, 1), dim=0)
    return per_channel.mean(dim=1)


_PSNR = _Measure(_psnr_core, 1, "PSNR", "it needs")
_SSIM = _Measure(_ssim_core, SSIM_WINDOW_SIZE, "SSIM",
                 f"the {SSIM_WINDOW_SIZE}x{SSIM_WINDOW_SIZE} Gaussian window needs")
_MS_SSIM = _Measure(_ms_ssim_core, MS_SSIM_MIN_SIDE, "MS-SSIM",
                    f"its {len(MS_SSIM_WEIGHTS)} scales (the {SSIM_WINDOW_SIZE}x{SSIM_WINDOW_SIZE} window on the "
                    f"image halved {len(MS_SSIM_WEIGHTS) - 1} times) need")


def _score(measure: _Measure, a: torch.Tensor, b: torch.Tensor, crop_border, y_channel: bool,
           dtype: torch.dtype) -> torch.Tensor:
    crop_border = require_int(crop_border, "crop_border", 0)
    _check_sizes(a, b, crop_border, measure)
    return measure.core(_planes(a, crop_border, y_channel, dtype), _planes(b, crop_border, y_channel, dtype))


# ----------------------------------------------------------------------- public API


def _check_batch(sr: torch.Tensor, hr: torch.Tensor) -> None:
    for name, t in (("sr", sr), ("hr", hr)):
        if not isinstance(t, torch.Tensor) or not (t.is_floating_point() or t.dtype == torch.uint8):
            raise TypeError(f"{name} must be a float torch tensor in [0, 1] (or uint8 levels)")
        if t.ndim != 4:
            raise ValueError(f"{name} must have shape (B, C, H, W), got {tuple(t.shape)}")
    if sr.device != hr.device:
        raise ValueError(f"sr and hr are on different devices: {sr.device} and {hr.device}")


def _batched(measure: _Measure, sr: torch.Tensor, hr: torch.Tensor, crop_border, y_channel: bool) -> torch.Tensor:
    _check_batch(sr, hr)
    return _score(measure, sr, hr, crop_border, y_channel, _compute_dtype(sr.device))


def _single(measure: _Measure, sr: ImageLike, hr: ImageLike, crop_border, y_channel: bool) -> float:
    return float(_score(measure, to_uint8_batch(sr), to_uint8_batch(hr), crop_border, y_channel, torch.float64)[0])


@torch.no_grad()
def psnr_batch(sr: torch.Tensor, hr: torch.Tensor, crop_border: int, y_channel: bool = True) -> torch.Tensor:
    """Per-image PSNR of float batches, rounded to uint8 as :func:`psnr` rounds them.

    Args:
        sr: the outputs, (B, C, H, W) floats in [0, 1], C 1 or 3 (or uint8 levels, as
            :func:`to_uint8_batch` gives them).
        hr: the references, the same shape, on the same device.
        crop_border: pixels cut from every side (the scale, by the protocol).
        y_channel: compare the BT.601 luma of RGB images (the protocol); False: the MSE over
            every channel.

    Returns:
        PSNR in dB, shape (B,), float64 on the inputs' device (float32 on MPS); ``inf`` for
        an identical pair.
    """
    return _batched(_PSNR, sr, hr, crop_border, y_channel)


@torch.no_grad()
def ssim_batch(sr: torch.Tensor, hr: torch.Tensor, crop_border: int, y_channel: bool = True) -> torch.Tensor:
    """Per-image SSIM of float batches; arguments as :func:`psnr_batch` (``y_channel=False``:
    SSIM per channel, averaged).

    Returns:
        Shape (B,), float64 on the inputs' device (float32 on MPS).

    Raises:
        ImageTooSmall: fewer than 11 pixels a side remain after the crop.
    """
    return _batched(_SSIM, sr, hr, crop_border, y_channel)


@torch.no_grad()
def ms_ssim_batch(sr: torch.Tensor, hr: torch.Tensor, crop_border: int, y_channel: bool = True) -> torch.Tensor:
    """Per-image MS-SSIM of float batches; arguments as :func:`psnr_batch` (``y_channel=False``:
    MS-SSIM per channel, averaged).

    Returns:
        Shape (B,), float64 on the inputs' device (float32 on MPS).

    Raises:
        ImageTooSmall: fewer than MS_SSIM_MIN_SIDE (161) pixels a side remain after the crop.
    """
    return _batched(_MS_SSIM, sr, hr, crop_border, y_channel)


def psnr(sr: ImageLike, hr: ImageLike, crop_border: int, y_channel: bool = True) -> float:
    """PSNR in dB of one image pair, per the protocol.

    Args:
        sr: the output: a PIL image (RGB or L), a uint8 array (H, W, 3) or (H, W), or a
            float tensor (3, H, W) or (1, 3, H, W) in [0, 1].
        hr: the reference, in any of these types, the same size.
        crop_border: pixels cut from every side (the scale, by the protocol).
        y_channel: compare the BT.601 luma of RGB images (the protocol); False: the MSE over
            every channel.

    Returns:
        The PSNR; ``inf`` for identical images.
    """
    return _single(_PSNR, sr, hr, crop_border, y_channel)


def ssim(sr: ImageLike, hr: ImageLike, crop_border: int, y_channel: bool = True) -> float:
    """SSIM of one image pair, per the protocol; arguments as :func:`psnr` (``y_channel=False``:
    SSIM per channel, averaged).

    Returns:
        The mean of the SSIM map (1.0 for identical images).

    Raises:
        ImageTooSmall: fewer than 11 pixels a side remain after the crop.
    """
    return _single(_SSIM, sr, hr, crop_border, y_channel)


def ms_ssim(sr: ImageLike, hr: ImageLike, crop_border: int, y_channel: bool = True) -> float:
    """MS-SSIM of one image pair, per the protocol; arguments as :func:`psnr` (``y_channel=False``:
    MS-SSIM per channel, averaged).

    Returns:
        The product over the five scales of cs (the whole SSIM at the coarsest), each clamped
        at 0 and raised to its MS_SSIM_WEIGHTS exponent (1.0 for identical images).

    Raises:
        ImageTooSmall: fewer than MS_SSIM_MIN_SIDE (161) pixels a side remain after the crop.
    """
    return _single(_MS_SSIM, sr, hr, crop_border, y_channel)


def __getattr__(name: str):
    # How pairs are made lives in sr_models.protocol; these names are found there on use,
    # so that `from sr_models.metrics import degrade` works and metrics imports no protocol code.
    if name in ("crop_to_multiple", "degrade", "bicubic_upscale"):
        from . import protocol

        return getattr(protocol, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
