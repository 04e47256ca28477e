"""Realistic degradations: how real low-quality photos are made from clean HR images.

The study's protocol (:mod:`sr_models.protocol`) makes LR images with one PIL bicubic
downscale; models trained on it learn nothing about the blur, noise and JPEG blocks of the
photos people have. This module synthesises those, after Real-ESRGAN (Wang, Xie, Dong, Shan,
"Real-ESRGAN: Training Real-World Blind Super-Resolution with Pure Synthetic Data",
ICCVW 2021, arXiv:2107.10833), whose parameter ranges are the defaults here:

- order 1, the classical model: blur -> resize to the LR size -> noise -> JPEG;
- order 2, the "high-order" model: (blur -> random resize -> noise -> JPEG), then
  (blur -> resize -> noise), then [resize to the LR size + sinc filter, JPEG] in a random
  order. ``second_order_prob`` chooses between them per image.

Blur kernels: isotropic / anisotropic Gaussian, generalized Gaussian and plateau shapes,
or a 2-D sinc (ringing and overshoot). Resizes use area / bilinear / bicubic at random,
noise is Gaussian or Poisson (colour or grey), JPEG is a real PIL encode / decode.

This is the engine (:func:`realistic_lr`, on tensors, drawing from the generator it is
given); :func:`sr_models.protocol.degrade_realistic` makes the LR image of a PIL HR image
with a generator seeded by ``(seed, index)``, so sample ``index`` of a run is the same image
however the run is interrupted and resumed, and a benchmark with a fixed seed gives every
image one fixed LR. Runs on the CPU in a data loader; no torchvision.
"""

from __future__ import annotations

import io
import math
from dataclasses import asdict, dataclass, fields
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .validation import Rule, check_fields, invalid, is_number

#: Blur kernel shapes. "generalized" = exp(-d^beta / 2), "plateau" = 1 / (1 + d^beta),
#: d the Mahalanobis distance squared; "iso" has one sigma and no rotation.
KERNEL_TYPES = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")
RESIZE_MODES = ("area", "bilinear", "bicubic")
#: Odd kernel sides drawn for the blur and sinc filters (Real-ESRGAN: 7 ... 21).
KERNEL_SIZES = tuple(range(7, 22, 2))
#: Poisson noise counts photons at 8-bit resolution: an image with at most 256 levels
#: (Real-ESRGAN takes 2^ceil(log2(#levels)), 256 for a photo).
POISSON_LEVELS = 256.0


def _check_keys(values, cls, prefix: str) -> None:
    if not isinstance(values, dict):
        raise ValueError(f"degradation config {prefix or 'root'}: expected a JSON object, got {type(values).__name__}")
    unknown = sorted(set(values) - {f.name for f in fields(cls)})
    if unknown:
        raise ValueError(f"unknown degradation config fields {[prefix + k for k in unknown]}")


def _weights(count: int) -> Rule:
    return ((lambda v: len(v) == count and all(is_number(p) and p >= 0 for p in v) and sum(v) > 0),
            f"expected {count} non-negative weights that do not all vanish")


def _is_range(v, lo: float = 0, hi: float = math.inf) -> bool:
    return len(v) == 2 and all(is_number(x) for x in v) and lo <= v[0] <= v[1] <= hi


#: Who a bad field belongs to in its message: "degradation config: blur_sigma=(3, 1) is invalid: ...".
OWNER = "degradation config"
PROBABILITY: Rule = (lambda v: is_number(v) and 0 <= v <= 1), "expected a probability in [0, 1]"
RANGE: Rule = _is_range, "expected a (low, high) pair with 0 <= low <= high"
NUMBER_LIST: Rule = ((lambda v: isinstance(v, tuple) and all(is_number(x) for x in v)), "expected a list of numbers")
#: field -> rule of every Stage field.
STAGE_RULES: dict[str, Rule] = {
    "blur_prob": PROBABILITY,
    "kernel_probs": _weights(len(KERNEL_TYPES)),
    "blur_sigma": RANGE,
    "betag": RANGE,
    "betap": RANGE,
    "sinc_prob": PROBABILITY,
    "resize_probs": _weights(3),
    "resize_range": RANGE,
    "gaussian_noise_prob": PROBABILITY,
    "noise_sigma": RANGE,
    "poisson_scale": RANGE,
    "gray_noise_prob": PROBABILITY,
    "jpeg_quality": (partial(_is_range, lo=1, hi=100), "expected a (low, high) pair: JPEG quality must lie in 1..100"),
}
#: The Stage fields that are lists of numbers (tuples once read), checked as such before their rule.
LIST_FIELDS = tuple(name for name in STAGE_RULES if not name.endswith("_prob"))


@dataclass(frozen=True)
class Stage:
    """Parameter ranges of one degradation stage. ``(low, high)`` pairs are sampled
    uniformly, ``*_prob`` fields are probabilities, noise sigmas are in 8-bit levels.
    Defaults: the first stage of Real-ESRGAN's training options."""

    blur_prob: float = 1.0
    kernel_probs: tuple = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)  # one per KERNEL_TYPES
    blur_sigma: tuple = (0.2, 3.0)
    betag: tuple = (0.5, 4.0)
    betap: tuple = (1.0, 2.0)
    sinc_prob: float = 0.1
    resize_probs: tuple = (0.2, 0.7, 0.1)  # up, down, keep
    resize_range: tuple = (0.15, 1.5)
    gaussian_noise_prob: float = 0.5
    noise_sigma: tuple = (1.0, 30.0)
    poisson_scale: tuple = (0.05, 3.0)
    gray_noise_prob: float = 0.4
    jpeg_quality: tuple = (30, 95)

    def __post_init__(self):
        for f in fields(self):
            if isinstance(getattr(self, f.name), list):  # from JSON
                object.__setattr__(self, f.name, tuple(getattr(self, f.name)))
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        check_fields(OWNER, dict.fromkeys(LIST_FIELDS, NUMBER_LIST), {n: values[n] for n in LIST_FIELDS})
        check_fields(OWNER, STAGE_RULES, values)


#: Real-ESRGAN's second stage: milder blur (applied with probability 0.8), resize and noise.
SECOND_STAGE = Stage(blur_prob=0.8, blur_sigma=(0.2, 1.5), resize_probs=(0.3, 0.4, 0.3), resize_range=(0.3, 1.2),
                     noise_sigma=(1.0, 25.0), poisson_scale=(0.05, 2.5))


@dataclass(frozen=True)
class DegradationConfig:
    """The whole degradation: ``first`` stage (order 1 uses only its blur, noise and JPEG),
    ``second`` stage and ``final_sinc_prob`` of the order-2 model, chosen per image with
    ``second_order_prob``. JSON-serialisable (``to_dict`` / ``from_dict``; a stage given
    as a partial dict keeps the defaults of the fields it omits)."""

    second_order_prob: float = 1.0
    first: Stage = Stage()
    second: Stage = SECOND_STAGE
    final_sinc_prob: float = 0.8

    def __post_init__(self):
        check_fields(OWNER, dict.fromkeys(("second_order_prob", "final_sinc_prob"), PROBABILITY),
                     {"second_order_prob": self.second_order_prob, "final_sinc_prob": self.final_sinc_prob})
        for name in ("first", "second"):
            if not isinstance(getattr(self, name), Stage):
                raise invalid(OWNER, name, getattr(self, name), "expected a Stage")

    def to_dict(self) -> dict:
        def plain(value):
            return list(value) if isinstance(value, tuple) else value
        return {k: ({kk: plain(vv) for kk, vv in v.items()} if isinstance(v, dict) else v)
                for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict) -> DegradationConfig:
        _check_keys(values, cls, "")
        stages = {}
        for name, default in (("first", Stage()), ("second", SECOND_STAGE)):
            if name in values:
                _check_keys(values[name], Stage, f"{name}.")
                stages[name] = Stage(**{**asdict(default), **values[name]})
        return cls(**{**values, **stages})


#: Named configurations: Real-ESRGAN's training ranges, and the fixed, milder benchmark
#: of this project (order 1 only; moderate blur, noise and JPEG inside the first-order ranges).
PRESETS: dict[str, DegradationConfig] = {
    "realesrgan": DegradationConfig(),
    "moderate": DegradationConfig(second_order_prob=0.0, first=Stage(
        kernel_probs=(0.6, 0.4, 0, 0, 0, 0), blur_sigma=(0.4, 1.6), sinc_prob=0.0,
        noise_sigma=(1.0, 10.0), poisson_scale=(0.05, 1.0), jpeg_quality=(60, 90))),
}


# --------------------------------------------------------------------------- kernels


def _grid(size: int) -> np.ndarray:
    """(size, size, 2) pixel offsets from the kernel centre."""
    ax = np.arange(size, dtype=np.float64) - size // 2
    xx, yy = np.meshgrid(ax, ax)
    return np.stack([xx, yy], axis=-1)


def anisotropic_kernel(size: int, sigma_x: float, sigma_y: float, theta: float, *, shape: str = "gaussian",
                       beta: float = 1.0) -> np.ndarray:
    """A (size, size) blur kernel that sums to 1. ``shape``: "gaussian",
    "generalized" (exp(-d^beta / 2)) or "plateau" (1 / (1 + d^beta)), where d is the
    squared Mahalanobis distance for the covariance rotated by ``theta`` (radians)."""
    rotation = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    covariance = rotation @ np.diag([sigma_x ** 2, sigma_y ** 2]) @ rotation.T
    grid = _grid(size)
    d = np.einsum("...i,ij,...j->...", grid, np.linalg.inv(covariance), grid)
    if shape == "gaussian":
        kernel = np.exp(-0.5 * d)
    elif shape == "generalized":
        kernel = np.exp(-0.5 * d ** beta)
    elif shape == "plateau":
        kernel = 1.0 / (1.0 + d ** beta)
    else:
        raise ValueError(f"unknown kernel shape {shape!r}")
    return kernel / kernel.sum()


def sinc_kernel(size: int, cutoff: float) -> np.ndarray:
    """A circular low-pass (2-D sinc) kernel with angular cutoff ``cutoff`` (radians per
    pixel, pi = no filtering), normalised to sum 1: the ringing of sharpened images."""
    r = np.hypot(*np.moveaxis(_grid(size), -1, 0))
    bessel = torch.special.bessel_j1(torch.from_numpy(cutoff * r)).numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        kernel = cutoff * bessel / (2 * np.pi * r)
    kernel[size // 2, size // 2] = cutoff ** 2 / (4 * np.pi)  # the limit at r = 0
    return kernel / kernel.sum()


def random_blur_kernel(rng: np.random.Generator, stage: Stage) -> np.ndarray:
    """A kernel drawn as Real-ESRGAN does: a sinc with probability ``sinc_prob``, else one
    of KERNEL_TYPES with ``kernel_probs``, sigma in ``blur_sigma``."""
    size = int(rng.choice(KERNEL_SIZES))
    if rng.random() < stage.sinc_prob:
        return sinc_kernel(size, _sinc_cutoff(rng, size))
    probs = np.asarray(stage.kernel_probs, dtype=np.float64)
    kind = KERNEL_TYPES[int(rng.choice(len(KERNEL_TYPES), p=probs / probs.sum()))]
    low, high = stage.blur_sigma
    sigma_x = rng.uniform(low, high)
    isotropic = "aniso" not in kind
    sigma_y, theta = (sigma_x, 0.0) if isotropic else (rng.uniform(low, high), rng.uniform(-math.pi, math.pi))
    sigma_x, sigma_y = max(sigma_x, 1e-3), max(sigma_y, 1e-3)  # a zero sigma is a delta kernel
    if kind.startswith("generalized"):
        return anisotropic_kernel(size, sigma_x, sigma_y, theta, shape="generalized", beta=_beta(rng, stage.betag))
    if kind.startswith("plateau"):
        return anisotropic_kernel(size, sigma_x, sigma_y, theta, shape="plateau", beta=rng.uniform(*stage.betap))
    return anisotropic_kernel(size, sigma_x, sigma_y, theta)


def _beta(rng: np.random.Generator, betag: tuple) -> float:
    # Real-ESRGAN draws beta below and above 1 with equal probability (flat and peaked shapes).
    low, high = betag
    return rng.uniform(low, min(1.0, high)) if rng.random() < 0.5 and low < 1 else rng.uniform(max(1.0, low), high)


def _sinc_cutoff(rng: np.random.Generator, size: int) -> float:
    # Small kernels cannot represent low cutoffs (Real-ESRGAN: pi/3 below 13 px, else pi/5).
    return rng.uniform(math.pi / 3 if size < 13 else math.pi / 5, math.pi)


# --------------------------------------------------------------------------- stages


def blur(img: torch.Tensor, kernel: np.ndarray) -> torch.Tensor:
    """(1, C, H, W) image convolved per channel with ``kernel`` (reflect padding)."""
    k = torch.from_numpy(kernel).to(img.dtype)
    pad = kernel.shape[0] // 2
    channels = img.shape[1]
    padded = F.pad(img, (pad,) * 4, mode="reflect" if min(img.shape[-2:]) > pad else "replicate")
    return F.conv2d(padded, k.expand(channels, 1, *k.shape), groups=channels)


def resize(img: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """(1, C, H, W) -> (1, C, *size) with an area / bilinear / bicubic filter."""
    if mode not in RESIZE_MODES:
        raise ValueError(f"unknown resize mode {mode!r}; expected one of {RESIZE_MODES}")
    if tuple(img.shape[-2:]) == tuple(size):
        return img
    extra = {} if mode == "area" else {"align_corners": False}
    return F.interpolate(img, size=size, mode=mode, **extra)


def add_noise(img: torch.Tensor, rng: np.random.Generator, *, gaussian: bool, sigma: float = 0.0,
              poisson_scale: float = 0.0, gray: bool = False) -> torch.Tensor:
    """Gaussian noise of std ``sigma`` (8-bit levels) or Poisson noise scaled by
    ``poisson_scale``; ``gray`` draws one noise map for all channels."""
    shape = (1, 1, *img.shape[-2:]) if gray else tuple(img.shape)
    if gaussian:
        noise = rng.normal(0.0, sigma / 255.0, size=shape)
    else:
        base = img.mean(dim=1, keepdim=True) if gray else img
        levels = np.clip(np.round(base.numpy() * 255.0), 0, 255) / 255.0
        noise = (rng.poisson(levels * POISSON_LEVELS) / POISSON_LEVELS - levels) * poisson_scale
    return img + torch.from_numpy(noise).to(img.dtype)


def jpeg(img: torch.Tensor, quality: int) -> torch.Tensor:
    """A real JPEG round trip (PIL encoder and decoder) at ``quality`` of a (1, 3, H, W) image."""
    buffer = io.BytesIO()
    to_pil(img).save(buffer, format="JPEG", quality=int(quality))
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return to_tensor(decoded.convert("RGB"))


def to_tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]


def to_pil(img: torch.Tensor) -> Image.Image:
    array = (img[0].clamp(0, 1) * 255.0).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(np.ascontiguousarray(array), "RGB")


# --------------------------------------------------------------------------- the pipeline


def realistic_lr(img: torch.Tensor, lr_size: tuple[int, int], config: DegradationConfig,
                 rng: np.random.Generator) -> torch.Tensor:
    """The realistic degradation of one image, every random choice drawn from ``rng``.

    Args:
        img: the HR image, (1, 3, H, W) float in [0, 1].
        lr_size: (height, width) of the LR image.
        config: the ranges the parameters are drawn from.
        rng: the generator; the same generator state gives the same image.

    Returns:
        The LR image, (1, 3, *lr_size) float in [0, 1], JPEG-decoded where the draw compressed it last.
    """
    if rng.random() < config.second_order_prob:
        return _second_order(img, lr_size, rng, config)
    first = config.first
    img = _blur(img, rng, first)
    img = _noise(resize(img, lr_size, _mode(rng)).clamp(0, 1), rng, first)
    return jpeg(img, _quality(rng, first))


def _second_order(img: torch.Tensor, lr_size: tuple[int, int], rng, config: DegradationConfig) -> torch.Tensor:
    first, second = config.first, config.second
    img = _blur(img, rng, first)
    img = resize(img, _random_size(img.shape[-2:], rng, first), _mode(rng))
    img = jpeg(_noise(img.clamp(0, 1), rng, first), _quality(rng, first))
    img = _blur(img, rng, second)
    # The second resize is relative to the final LR size (Real-ESRGAN's second stage).
    img = _noise(resize(img, _random_size(lr_size, rng, second), _mode(rng)).clamp(0, 1), rng, second)
    quality = _quality(rng, second)
    size = int(rng.choice(KERNEL_SIZES))
    sinc = sinc_kernel(size, _sinc_cutoff(rng, size)) if rng.random() < config.final_sinc_prob else None
    resize_first, mode = rng.random() < 0.5, _mode(rng)
    # Last: resize to the LR size with an optional sinc filter, and JPEG, in a random order.
    if not resize_first:
        img = jpeg(img, quality)
    img = resize(img, lr_size, mode)
    if sinc is not None:
        img = blur(img, sinc)
    return jpeg(img.clamp(0, 1), quality) if resize_first else img.clamp(0, 1)


def _blur(img: torch.Tensor, rng: np.random.Generator, stage: Stage) -> torch.Tensor:
    return blur(img, random_blur_kernel(rng, stage)) if rng.random() < stage.blur_prob else img


def _noise(img: torch.Tensor, rng: np.random.Generator, stage: Stage) -> torch.Tensor:
    gaussian = rng.random() < stage.gaussian_noise_prob
    gray = rng.random() < stage.gray_noise_prob
    if gaussian:
        noisy = add_noise(img, rng, gaussian=True, sigma=rng.uniform(*stage.noise_sigma), gray=gray)
    else:
        noisy = add_noise(img, rng, gaussian=False, poisson_scale=rng.uniform(*stage.poisson_scale), gray=gray)
    return noisy.clamp(0, 1)


def _quality(rng: np.random.Generator, stage: Stage) -> int:
    return int(rng.integers(stage.jpeg_quality[0], stage.jpeg_quality[1] + 1))


def _random_size(size, rng, stage: Stage) -> tuple[int, int]:
    """Up / down / keep with ``resize_probs``; the factor is uniform in [1, high] or [low, 1]
    of ``resize_range``."""
    p = np.asarray(stage.resize_probs, dtype=np.float64)
    choice = int(rng.choice(3, p=p / p.sum()))
    low, high = stage.resize_range
    factor = (rng.uniform(1, high), rng.uniform(low, 1), 1.0)[choice]
    h, w = size
    return max(1, round(h * factor)), max(1, round(w * factor))


def _mode(rng: np.random.Generator) -> str:
    return RESIZE_MODES[int(rng.integers(len(RESIZE_MODES)))]


def __getattr__(name: str):
    # degrade_realistic lives in sr_models.protocol, which imports this module: it is found on
    # use, so that `from sr_models.degradations import degrade_realistic` works without a cycle.
    if name == "degrade_realistic":
        from .protocol import degrade_realistic

        return degrade_realistic
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
