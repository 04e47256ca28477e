"""Super-resolution metrics: the one implementation of the evaluation protocol.

Protocol (docs/protocol.md), which is the convention of the
SR literature behind published tables (EDSR, SwinIR, HAT, BasicSR's
``calculate_psnr``/``calculate_ssim`` with ``test_y_channel=True``; e.g. bicubic x4
on Set5 = 28.42 dB / 0.8104):

1. Both images are rounded to uint8 first. Float inputs in [0, 1] are clamped,
   multiplied by 255 and rounded, exactly as an image saved to PNG would be, so a
   number measured during training equals the one measured on the saved files.
2. RGB images are reduced to the luma channel of ITU-R BT.601,
   ``Y = 16 + 65.481 R + 128.553 G + 24.966 B`` with R, G, B = uint8 / 255, i.e. Y in
   [16, 235] on the 0..255 scale. Y is computed in float64 and *not* re-rounded
   (the BasicSR convention; MATLAB's ``rgb2ycbcr`` on uint8 would round it).
   Single-channel inputs are taken as luma already.
3. ``crop_border`` pixels (the scale, by convention) are removed on every side.
4. PSNR uses a data range of 255; identical images give ``inf``.
5. SSIM is Wang et al. (2004) as implemented for SR papers: 11x11 Gaussian window
   with sigma 1.5, evaluated on the "valid" region only (no padding, so the map is
   10 pixels smaller in each dimension), C1 = (0.01*255)^2, C2 = (0.03*255)^2,
   population (not sample) statistics, and the score is the mean of the map.
6. Over a data set, report the mean of the per-image values.

With ``y_channel=False`` on RGB inputs PSNR uses the MSE over all pixels and
channels, and SSIM is computed per channel and averaged.

There is deliberately one implementation: the batched float64 torch functions
(``psnr_batch``/``ssim_batch``, usable on the GPU during validation) and the scalar
functions (``psnr``/``ssim``, for PIL images, uint8 arrays and tensors) share the same
private core, so they cannot drift apart.

The degradation (``degrade``) and the bicubic baseline (``bicubic_upscale``) use PIL's
antialiased ``Image.BICUBIC``, which is within 0.01 dB of MATLAB's ``imresize`` for
this purpose. ``bicubic_upscale`` is the project's one bicubic upscaler: it takes every
PIL mode that ``upscale()`` takes and returns the mode ``upscale()`` returns. Known answers on ``skimage.data.astronaut()`` (see
tests/test_metrics.py): bicubic PSNR-Y 31.71 / 28.68 / 26.84 dB at x2 / x3 / x4.
"""

from __future__ import annotations

import logging
import numbers
from typing import Union

import numpy as np
import torch
from PIL import Image

from .image_io import float_range, normalise_mode

logger = logging.getLogger(__name__)

__all__ = [
    "SSIM_WINDOW_SIZE",
    "SSIM_SIGMA",
    "rgb_to_y",
    "to_uint8_array",
    "psnr",
    "ssim",
    "psnr_batch",
    "ssim_batch",
    "crop_to_multiple",
    "degrade",
    "bicubic_upscale",
]

SSIM_WINDOW_SIZE = 11
SSIM_SIGMA = 1.5
_DATA_RANGE = 255.0
_C1 = (0.01 * _DATA_RANGE) ** 2
_C2 = (0.03 * _DATA_RANGE) ** 2
# ITU-R BT.601 luma weights for R, G, B in [0, 1], giving Y on the 0..255 scale.
_Y_OFFSET = 16.0
_Y_WEIGHTS = (65.481, 128.553, 24.966)
# PIL modes whose pixels the protocol defines; others (P, RGBA, I;16, ...) must be
# converted explicitly by the caller so that nothing is dropped silently.
_PIL_MODES = ("RGB", "L")

ImageLike = Union[Image.Image, np.ndarray, torch.Tensor]


# --------------------------------------------------------------------------- helpers


def _check_int(value, name: str, lowest: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < lowest:
        raise ValueError(f"{name} must be >= {lowest}, got {value}")
    return int(value)


def _check_crop_border(crop_border) -> int:
    return _check_int(crop_border, "crop_border", 0)


def _check_scale(scale) -> int:
    return _check_int(scale, "scale", 1)


def _compute_dtype(device: torch.device) -> torch.dtype:
    # float64 so the batched GPU numbers equal the scalar CPU ones to ~1e-12.
    # MPS has no float64; there float32 is the best available (agreement ~1e-4).
    return torch.float32 if device.type == "mps" else torch.float64


def _quantize(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Float image in [0, 1] -> float tensor holding the uint8 values 0..255."""
    return torch.round(x.to(dtype).clamp(0.0, 1.0) * _DATA_RANGE)


def _pil_to_array(img: Image.Image) -> np.ndarray:
    if img.mode not in _PIL_MODES:
        raise ValueError(
            f"unsupported PIL image mode {img.mode!r}; convert it first, "
            f"e.g. img.convert('RGB') (supported: {', '.join(_PIL_MODES)})"
        )
    return np.asarray(img, dtype=np.uint8)


def to_uint8_array(img: ImageLike) -> np.ndarray:
    """Return ``img`` as a uint8 array of shape (H, W, 3) or (H, W), per the protocol.

    Accepts a PIL image (mode RGB or L), a uint8 array (H, W, 3), (H, W, 1) or (H, W),
    or a float torch tensor in [0, 1] of shape (3, H, W), (1, 3, H, W), (1, H, W) or
    (1, 1, H, W). Float tensors are clamped to [0, 1], scaled by 255 and rounded.
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


def _values_from_uint8(arr: np.ndarray) -> torch.Tensor:
    """uint8 (H, W[, 3]) array -> float64 tensor (1, C, H, W) holding 0..255."""
    # astype copies into a fresh writable array (PIL's np.asarray is read-only).
    t = torch.from_numpy(arr.astype(np.float64))
    if t.ndim == 2:
        t = t.unsqueeze(-1)
    return t.permute(2, 0, 1).unsqueeze(0)


def rgb_to_y(img: Union[torch.Tensor, np.ndarray]) -> Union[torch.Tensor, np.ndarray]:
    """ITU-R BT.601 luma, ``Y = 16 + 65.481 R + 128.553 G + 24.966 B``, R, G, B in [0, 1].

    ``img`` is either a torch tensor (..., 3, H, W) or a numpy array (..., H, W, 3)
    with values in [0, 1] (a uint8 array is divided by 255 first). Returns Y on the
    0..255 scale ([16, 235] for inputs in range), without channel dimension, in
    float64 for numpy and uint8 inputs, else in the tensor's float dtype.
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


# --------------------------------------------------------------- the one implementation


def _prepare(a: torch.Tensor, b: torch.Tensor, crop_border: int, y_channel: bool, min_size: int, what: str):
    """uint8-valued float tensors (B, C, H, W) -> channels to compare, cropped."""
    if a.shape != b.shape:
        raise ValueError(
            f"sr and hr must have the same size: sr is {_describe(a.shape)}, hr is {_describe(b.shape)}"
        )
    _, c, h, w = a.shape
    if c not in (1, 3):
        raise ValueError(f"images must have 1 or 3 channels, got {c}")
    hc, wc = h - 2 * crop_border, w - 2 * crop_border
    if hc < min_size or wc < min_size:
        need = f"the {min_size}x{min_size} Gaussian window needs" if min_size > 1 else "it needs"
        raise ValueError(
            f"image of {h}x{w} (HxW) is too small for {what} with crop_border={crop_border}: "
            f"{max(hc, 0)}x{max(wc, 0)} remain after cropping, {need} at least {min_size}x{min_size}"
        )
    if y_channel and c == 3:
        # Y from the uint8 values / 255, in float64; keep a channel dim of 1.
        a = rgb_to_y(a / _DATA_RANGE).unsqueeze(1)
        b = rgb_to_y(b / _DATA_RANGE).unsqueeze(1)
    if crop_border:
        a = a[..., crop_border : h - crop_border, crop_border : w - crop_border]
        b = b[..., crop_border : h - crop_border, crop_border : w - crop_border]
    return a, b


def _describe(shape) -> str:
    _, c, h, w = shape
    return f"{h}x{w}x{c} (HxWxC)"


def _psnr_core(a: torch.Tensor, b: torch.Tensor, crop_border: int, y_channel: bool) -> torch.Tensor:
    a, b = _prepare(a, b, crop_border, y_channel, 1, "PSNR")
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


def _ssim_core(a: torch.Tensor, b: torch.Tensor, crop_border: int, y_channel: bool) -> torch.Tensor:
    a, b = _prepare(a, b, crop_border, y_channel, SSIM_WINDOW_SIZE, "SSIM")
    n, c, h, w = a.shape
    g = _gaussian_1d(a.dtype, a.device)
    # Filter the five moments of every channel in one go: (N*C*5, 1, H, W).
    stack = torch.stack([a, b, a * a, b * b, a * b], dim=2).reshape(n * c * 5, 1, h, w)
    # Separable Gaussian, no padding -> the "valid" region of the 2D 11x11 window.
    out = torch.nn.functional.conv2d(stack, g.view(1, 1, -1, 1))
    out = torch.nn.functional.conv2d(out, g.view(1, 1, 1, -1))
    out = out.reshape(n, c, 5, h - SSIM_WINDOW_SIZE + 1, w - SSIM_WINDOW_SIZE + 1)
    mu_a, mu_b, e_aa, e_bb, e_ab = out.unbind(dim=2)
    mu_aa, mu_bb, mu_ab = mu_a * mu_a, mu_b * mu_b, mu_a * mu_b
    var_a, var_b, cov_ab = e_aa - mu_aa, e_bb - mu_bb, e_ab - mu_ab
    ssim_map = ((2 * mu_ab + _C1) * (2 * cov_ab + _C2)) / ((mu_aa + mu_bb + _C1) * (var_a + var_b + _C2))
    # Mean of the map per channel, then over channels (only >1 for y_channel=False).
    return ssim_map.mean(dim=(2, 3)).mean(dim=1)


# ----------------------------------------------------------------------- public API


def _check_batch(sr: torch.Tensor, hr: torch.Tensor) -> None:
    for name, t in (("sr", sr), ("hr", hr)):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise TypeError(f"{name} must be a float torch tensor in [0, 1]")
        if t.ndim != 4:
            raise ValueError(f"{name} must have shape (B, C, H, W), got {tuple(t.shape)}")
    if sr.device != hr.device:
        raise ValueError(f"sr and hr are on different devices: {sr.device} and {hr.device}")


def _batched(core, sr: torch.Tensor, hr: torch.Tensor, crop_border: int, y_channel: bool) -> torch.Tensor:
    """Check a pair of batches, round both to uint8 levels, and apply a metric core."""
    crop_border = _check_crop_border(crop_border)
    _check_batch(sr, hr)
    dtype = _compute_dtype(sr.device)
    return core(_quantize(sr, dtype), _quantize(hr, dtype), crop_border, y_channel)


@torch.no_grad()
def psnr_batch(sr: torch.Tensor, hr: torch.Tensor, crop_border: int, y_channel: bool = True) -> torch.Tensor:
    """Per-image PSNR (dB) of float batches (B, 3, H, W) in [0, 1]; returns shape (B,).

    Applies the same uint8 rounding as :func:`psnr`, and computes in float64 on the
    inputs' device (float32 on MPS).
    """
    return _batched(_psnr_core, sr, hr, crop_border, y_channel)


@torch.no_grad()
def ssim_batch(sr: torch.Tensor, hr: torch.Tensor, crop_border: int, y_channel: bool = True) -> torch.Tensor:
    """Per-image SSIM of float batches (B, 3, H, W) in [0, 1]; returns shape (B,).

    Applies the same uint8 rounding as :func:`ssim`, and computes in float64 on the
    inputs' device (float32 on MPS).
    """
    return _batched(_ssim_core, sr, hr, crop_border, y_channel)


def _pair(sr: ImageLike, hr: ImageLike):
    return _values_from_uint8(to_uint8_array(sr)), _values_from_uint8(to_uint8_array(hr))


def psnr(sr: ImageLike, hr: ImageLike, crop_border: int, y_channel: bool = True) -> float:
    """PSNR in dB of one image pair, per the protocol (module docstring).

    ``sr``/``hr``: PIL images (RGB or L), uint8 arrays (H, W, 3) or (H, W), or float
    torch tensors (3, H, W) or (1, 3, H, W) in [0, 1]; they may be of different types.
    Returns ``inf`` for identical images.
    """
    crop_border = _check_crop_border(crop_border)
    return float(_psnr_core(*_pair(sr, hr), crop_border, y_channel)[0])


def ssim(sr: ImageLike, hr: ImageLike, crop_border: int, y_channel: bool = True) -> float:
    """SSIM of one image pair, per the protocol (module docstring); inputs as for :func:`psnr`."""
    crop_border = _check_crop_border(crop_border)
    return float(_ssim_core(*_pair(sr, hr), crop_border, y_channel)[0])


# ------------------------------------------------------------------ degradation


def crop_to_multiple(img, scale: int):
    """Crop ``img`` (top-left origin) so height and width are multiples of ``scale``.

    Works on PIL images, numpy arrays (H, W, ...) and torch tensors (..., H, W). This is
    how the HR image matching a degraded LR image is obtained for evaluation.
    """
    scale = _check_scale(scale)
    if isinstance(img, Image.Image):
        w, h = img.size
    elif isinstance(img, np.ndarray):
        h, w = img.shape[:2]
    elif isinstance(img, torch.Tensor):
        h, w = img.shape[-2:]
    else:
        raise TypeError(f"unsupported image type {type(img).__name__}")
    h2, w2 = h - h % scale, w - w % scale
    if h2 == 0 or w2 == 0:
        raise ValueError(f"image of {h}x{w} (HxW) is smaller than the scale {scale}")
    if (h2, w2) == (h, w):
        return img
    logger.debug("cropping %dx%d to %dx%d (multiple of %d)", h, w, h2, w2, scale)
    if isinstance(img, Image.Image):
        return img.crop((0, 0, w2, h2))
    if isinstance(img, np.ndarray):
        return img[:h2, :w2]
    return img[..., :h2, :w2]


def _check_pil(img, name: str) -> None:
    if not isinstance(img, Image.Image):
        raise TypeError(f"{name} must be a PIL image, got {type(img).__name__}")
    if img.mode not in _PIL_MODES:
        # PIL would silently resize P/1 images with NEAREST; refuse instead.
        raise ValueError(f"unsupported PIL image mode {img.mode!r} for {name}; convert it, e.g. .convert('RGB')")


def degrade(hr: Image.Image, scale: int) -> Image.Image:
    """LR image of the protocol: HR cropped to a multiple of ``scale``, PIL bicubic down."""
    scale = _check_scale(scale)
    _check_pil(hr, "hr")
    hr = crop_to_multiple(hr, scale)
    w, h = hr.size
    # PIL's BICUBIC is antialiased when downscaling (support grows with the scale),
    # like MATLAB imresize, which the published numbers use.
    return hr.resize((w // scale, h // scale), Image.BICUBIC)


def bicubic_upscale(lr: Image.Image, scale: int) -> Image.Image:
    """Bicubic baseline: ``lr`` upscaled by ``scale`` with PIL ``Image.BICUBIC``.

    RGB and L images are resized as they are (the protocol). Other modes first become
    what :func:`sr_models.upscale` makes of them (:mod:`sr_models.image_io`): P -> RGB or
    RGBA, 1 -> L, 16-bit -> I;16, ...; a float image stays F, clamped to its range.
    """
    scale = _check_scale(scale)
    if not isinstance(lr, Image.Image):
        raise TypeError(f"lr must be a PIL image, got {type(lr).__name__}")
    lr = normalise_mode(lr, "lr")
    w, h = lr.size
    out = lr.resize((w * scale, h * scale), Image.BICUBIC)
    if out.mode == "F":  # cubic overshoot, as upscale() clamps it
        out = Image.fromarray(np.clip(np.asarray(out), 0.0, float_range(lr, "lr")))
    return out
