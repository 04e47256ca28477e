"""How evaluation pairs are made: the HR image, its LR input and the bicubic baseline.

The evaluation protocol's rules are written once, in docs/protocol.md; this module is their
one implementation on the preparation side (:mod:`sr_models.metrics` scores, nothing more):

- :func:`prepare_hr`: RGB, optionally a centre square resized to ``hr_size``, cropped to a
  multiple of the scale (:func:`crop_to_multiple`, top-left origin);
- :func:`degrade`: the protocol's LR, a PIL bicubic downscale (antialiased, within 0.01 dB
  of MATLAB's ``imresize`` for this purpose);
- :func:`degrade_realistic`: the realistic LR of a preset, drawn for ``(seed, index)``;
- :func:`bicubic_upscale`: the bicubic baseline, the project's one bicubic upscaler;
- :func:`degradation_of`: the one answer to "which degradation": every way of naming one
  (None, "bicubic", a preset, a JSON file, a config, a training record) gives a
  :class:`Degradation`; :func:`make_lr` and :func:`make_pair` make LR images by it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .degradations import PRESETS, DegradationConfig, realistic_lr, to_pil, to_tensor
from .image_io import check_protocol_mode, float_range, normalise_mode, to_rgb
from .validation import require_int

logger = logging.getLogger(__name__)

#: The kinds of LR: the protocol's bicubic downscale, and the realistic degradations.
BICUBIC = "bicubic"
REALISTIC = "realistic"
KINDS = (BICUBIC, REALISTIC)
#: The realistic preset taken when a realistic degradation names none (Real-ESRGAN's ranges).
DEFAULT_PRESET = "realesrgan"


# --------------------------------------------------------------------------- HR and LR


def crop_to_multiple(img, scale: int):
    """Crop an image (top-left origin) so that its height and width are multiples of ``scale``.

    Args:
        img: a PIL image, a numpy array (H, W, ...) or a torch tensor (..., H, W).
        scale: the upscaling factor.

    Returns:
        The same kind of image, cropped (``img`` itself when nothing is cut): the HR image
        matching an LR image ``scale`` times smaller.
    """
    scale = require_int(scale, "scale", 1)
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


def prepare_hr(image: Image.Image, scale: int, hr_size: int | None = None) -> Image.Image:
    """The HR image as the protocol uses it.

    Args:
        image: any PIL image; 16-bit and float images are scaled to 8 bits by their range
            (not clipped).
        scale: the upscaling factor.
        hr_size: if given, the centre square of the image resized (PIL bicubic,
            antialiased) to ``hr_size`` pixels a side; None keeps the size.

    Returns:
        An RGB image cropped to a multiple of ``scale``.
    """
    image = to_rgb(image)
    if hr_size is not None:
        side = min(image.size)
        left, top = (image.width - side) // 2, (image.height - side) // 2
        image = image.crop((left, top, left + side, top + side))
        if side != hr_size:
            image = image.resize((hr_size, hr_size), Image.BICUBIC)
    return crop_to_multiple(image, scale)


def degrade(hr: Image.Image, scale: int) -> Image.Image:
    """The protocol's LR image.

    Args:
        hr: an RGB or L image.
        scale: the downscaling factor.

    Returns:
        ``hr`` cropped to a multiple of ``scale`` and downscaled by it with PIL bicubic.
    """
    scale = require_int(scale, "scale", 1)
    check_protocol_mode(hr, "hr")
    hr = crop_to_multiple(hr, scale)
    w, h = hr.size
    # PIL's BICUBIC is antialiased when downscaling (support grows with the scale),
    # like MATLAB imresize, which the published numbers use.
    return hr.resize((w // scale, h // scale), Image.BICUBIC)


def bicubic_upscale(lr: Image.Image, scale: int) -> Image.Image:
    """The bicubic baseline: ``lr`` upscaled with PIL ``Image.BICUBIC``.

    Args:
        lr: a PIL image. RGB and L images are resized as they are (the protocol); other
            modes first become what :func:`sr_models.upscale` makes of them
            (:mod:`sr_models.image_io`): P -> RGB or RGBA, 1 -> L, 16-bit -> I;16, ...
        scale: the upscaling factor.

    Returns:
        The upscaled image, in the mode ``upscale()`` returns; a float image stays F,
        clamped to its range as ``upscale()`` clamps it.
    """
    scale = require_int(scale, "scale", 1)
    if not isinstance(lr, Image.Image):
        raise TypeError(f"lr must be a PIL image, got {type(lr).__name__}")
    lr = normalise_mode(lr, "lr")
    w, h = lr.size
    out = lr.resize((w * scale, h * scale), Image.BICUBIC)
    if out.mode == "F":  # cubic overshoot
        out = Image.fromarray(np.clip(np.asarray(out), 0.0, float_range(lr, "lr")))
    return out


# --------------------------------------------------------------------------- which degradation


@dataclass(frozen=True)
class Degradation:
    """How LR images are made: ``kind`` (one of KINDS) and, for a realistic one, its config
    and where that came from (a PRESETS name or a JSON file)."""

    kind: str = BICUBIC
    config: DegradationConfig | None = None
    preset: str | None = None
    config_file: str | None = None

    @property
    def realistic(self) -> bool:
        return self.kind == REALISTIC

    @property
    def name(self) -> str | None:
        """What results call it: None for the protocol's bicubic LR, else the preset it
        equals, else "custom"."""
        if not self.realistic:
            return None
        return self.preset or next((name for name, config in PRESETS.items() if config == self.config), "custom")

    def to_dict(self) -> dict:
        """The record in training_facts.json, config.json, checkpoints and model_card.json (full config)."""
        return {"kind": self.kind, "preset": self.preset, "config_file": self.config_file,
                "config": self.config.to_dict() if self.config is not None else None}

    def same_pairs_as(self, record: dict) -> bool:
        """Whether a recorded degradation (``to_dict``) makes the same pairs as this one."""
        return record.get("kind") == self.kind and record.get("config") == self.to_dict()["config"]

    def __str__(self) -> str:
        """One readable line, for the model card and the start-up summary."""
        if not self.realistic:
            return "bicubic (PIL bicubic downscale, the evaluation protocol)"
        source = f"preset '{self.preset}'" if self.preset else f"config file {Path(self.config_file).name}"
        order = {0.0: "first order", 1.0: "second order"}.get(self.config.second_order_prob, "first / second order")
        return f"realistic (Real-ESRGAN-style blur, resize, noise and JPEG, {order}; {source})"


BICUBIC_LR = Degradation()


def degradation_of(value: str | Path | DegradationConfig | Degradation | dict | None) -> Degradation:
    """The one resolver of "which degradation".

    Args:
        value: None or "bicubic" (the protocol); a PRESETS name; the path of a JSON file of
            DegradationConfig fields (the others keep the realesrgan defaults); a
            DegradationConfig; a Degradation; or a recorded one (``Degradation.to_dict()``,
            as training_facts.json and model_card.json hold it; a record of an older
            version, without a config, keeps its kind).

    Returns:
        The Degradation.

    Raises:
        ValueError: one line, for a name that is none of these or a file or record that
            does not hold a valid config.
    """
    if isinstance(value, Degradation):
        return value
    if value is None or value == BICUBIC:
        return BICUBIC_LR
    if isinstance(value, DegradationConfig):
        return Degradation(REALISTIC, value)
    if isinstance(value, dict):
        return _from_record(value)
    if value in PRESETS:
        return Degradation(REALISTIC, PRESETS[value], preset=value)
    if not Path(value).is_file():
        raise ValueError(f"unknown degradation {str(value)!r}: expected {BICUBIC!r} (the protocol), a preset "
                         f"({', '.join(map(repr, sorted(PRESETS)))}) or a JSON file of DegradationConfig fields")
    try:
        values = json.loads(Path(value).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{value}: not a readable JSON file: {err}") from err
    try:
        return Degradation(REALISTIC, DegradationConfig.from_dict(values), config_file=str(value))
    except ValueError as err:
        raise ValueError(f"{value}: {err}") from err


def _from_record(record: dict) -> Degradation:
    kind = record.get("kind", BICUBIC)
    if kind not in KINDS:
        raise ValueError(f"unknown degradation kind {kind!r} in a record; expected one of {KINDS}")
    config = record.get("config")
    return Degradation(kind, DegradationConfig.from_dict(config) if config is not None else None,
                       preset=record.get("preset"), config_file=record.get("config_file"))


def resolve_degradation(degradation: str | DegradationConfig | None) -> tuple[str | None, DegradationConfig | None]:
    """(name, config) of a degradation, by :func:`degradation_of`: (None, None) for the
    protocol; a preset's name and config; "custom" for a config that equals no preset.

    Args:
        degradation: anything :func:`degradation_of` takes.

    Returns:
        ``(Degradation.name, Degradation.config)``.
    """
    resolved = degradation_of(degradation)
    return resolved.name, resolved.config


def describe_lr(degradation: str | None, seed: int | None) -> str:
    """How the LR inputs of an evaluation were made, in words.

    Args:
        degradation: the Degradation's ``name`` (None: the protocol).
        seed: the seed of a realistic degradation.

    Returns:
        One line, for tables and reports.
    """
    if degradation is None:
        return "PIL bicubic downscale (the protocol)"
    return f"realistic degradation {degradation!r}, seed {seed} (sr_models.degradations)"


# --------------------------------------------------------------------------- making LR


def degrade_realistic(hr: Image.Image, scale: int, config: DegradationConfig | str = DEFAULT_PRESET, *,
                      seed: int = 0, index: int = 0) -> Image.Image:
    """A realistic LR image of ``hr``: the same (config, seed, index) give the same image.

    Args:
        hr: an RGB image; cropped to a multiple of ``scale`` first, as the protocol does.
        scale: the downscaling factor.
        config: a realistic degradation, as :func:`degradation_of` takes it (a PRESETS name,
            a DegradationConfig, ...).
        seed: the seed of the run or the benchmark.
        index: the image's index (its place in the sorted HR list, or the training sample).

    Returns:
        An RGB image of exactly (W // scale, H // scale).
    """
    degradation = degradation_of(config)
    if not degradation.realistic:
        raise ValueError(f"degrade_realistic needs a realistic degradation, got {config!r}")
    if not isinstance(hr, Image.Image) or hr.mode != "RGB":
        raise ValueError("degrade_realistic expects an RGB PIL image; convert it first, e.g. .convert('RGB')")
    hr = crop_to_multiple(hr, scale)
    rng = np.random.default_rng([int(seed), int(index)])
    return to_pil(realistic_lr(to_tensor(hr), (hr.height // scale, hr.width // scale), degradation.config, rng))


def make_lr(hr: Image.Image, scale: int, degradation=None, *, seed: int = 0, index: int = 0) -> Image.Image:
    """The LR input of one HR image.

    Args:
        hr: the HR image (RGB; L too for the protocol's bicubic LR).
        scale: the downscaling factor.
        degradation: anything :func:`degradation_of` takes; None is the protocol's bicubic LR.
        seed: with a realistic degradation, the seed its LR is drawn with.
        index: with a realistic degradation, the image's index: the same LR every time.

    Returns:
        The LR image.
    """
    degradation = degradation_of(degradation)
    if degradation.realistic:
        return degrade_realistic(hr, scale, degradation, seed=seed, index=index)
    return degrade(hr, scale)


def make_pair(image: Image.Image, scale: int, hr_size: int | None = None, degradation=None, *, seed: int = 0,
              index: int = 0) -> tuple[Image.Image, Image.Image]:
    """The (HR, LR) pair of the protocol for one image: :func:`prepare_hr`, then :func:`make_lr`.

    Args:
        image: the original image, any mode.
        scale: the upscaling factor.
        hr_size: the HR side (centre square, resized), None to keep the size.
        degradation: anything :func:`degradation_of` takes.
        seed: the realistic degradation's seed.
        index: the image's index in its set.

    Returns:
        ``(hr, lr)``.
    """
    hr = prepare_hr(image, scale, hr_size)
    return hr, make_lr(hr, scale, degradation, seed=seed, index=index)

