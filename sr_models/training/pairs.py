"""Training pairs: one aligned (LR, HR) patch pair from one decoded image, under the
run's degradation (``--degradation``, ``--degradation_config``).

``bicubic`` (the default) is the evaluation protocol: HR cropped to a multiple of the
scale, LR by ``sr_models.metrics.degrade`` (PIL bicubic). The crop is drawn on the LR grid
and the LR patch is cut from a degraded region wide enough to contain the bicubic kernel,
so every LR patch equals the same crop of ``degrade(whole image)`` exactly, as in the usual
SR pipelines that degrade first and crop aligned pairs.

``realistic``: the HR patch is cropped at the same position, and its LR is
``sr_models.degradations.degrade_realistic(hr_patch, scale, config, seed=SEED,
index=SAMPLE)`` (Real-ESRGAN's blur, resize, noise and JPEG; the config is a preset name or
a JSON file of ``DegradationConfig`` fields). ``SAMPLE`` is :func:`sample_index`: the
sample's place in the run, made of the loader's exact-resume position (epoch, process,
position in the stream), so a resumed run degrades every sample as the uninterrupted run
would have, and each epoch sees new degradations of the same image.

Either way the same random flip / transpose (the 8 symmetries of the square) is then
applied to both patches.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from sr_models.degradations import PRESETS, DegradationConfig, degrade_realistic
from sr_models.metrics import crop_to_multiple, degrade
from sr_models.training.public import public_source

DEGRADATIONS = ("bicubic", "realistic")
DEFAULT_DEGRADATION_PRESET = "realesrgan"
#: PIL's bicubic kernel reaches 2 output pixels to each side when it downscales; one more
#: for the rounding of the window bounds. A region this many LR pixels wider than the patch
#: degrades to exactly the pixels the whole image would give.
KERNEL_MARGIN = 3
#: A sample's global index packs (epoch, process, position): 2^40 examples per epoch and
#: process, 2^16 processes, any number of epochs (numpy seeds take integers of any size).
POSITION_BITS = 40
RANK_BITS = 16
#: Noise sigmas are in 8-bit levels: a larger one only draws noise (and 1e308 overflows).
MAX_NOISE_SIGMA = 255.0


class Unusable(Exception):
    """Why one image cannot give a training pair (it is skipped and counted)."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True)
class Degradation:
    """How a run makes LR patches: ``kind`` (one of DEGRADATIONS) and, for "realistic",
    the config and where it came from (a PRESETS name or a JSON file)."""

    kind: str = "bicubic"
    config: DegradationConfig | None = None
    preset: str | None = None
    config_file: str | None = None

    def to_dict(self) -> dict:
        """The record in training_facts.json, config.json and checkpoints (full config)."""
        return {"kind": self.kind, "preset": self.preset, "config_file": self.config_file,
                "config": self.config.to_dict() if self.config is not None else None}

    def same_pairs_as(self, record: dict) -> bool:
        """Whether a recorded degradation (``to_dict``) makes the same pairs as this one."""
        return record.get("kind") == self.kind and record.get("config") == self.to_dict()["config"]

    def __str__(self) -> str:
        """One readable line, for the model card and the start-up summary."""
        if self.kind == "bicubic":
            return "bicubic (PIL bicubic downscale, the evaluation protocol)"
        source = f"preset '{self.preset}'" if self.preset else f"config file {Path(self.config_file).name}"
        order = {0.0: "first order", 1.0: "second order"}.get(self.config.second_order_prob, "first / second order")
        return f"realistic (Real-ESRGAN-style blur, resize, noise and JPEG, {order}; {source})"


BICUBIC = Degradation()


def load_degradation(kind: str, config: str | None = None) -> Degradation:
    """The degradation of ``--degradation KIND --degradation_config PRESET_OR_JSON_FILE``;
    ValueError with a one-line message for an unknown kind, preset, file or field."""
    if kind not in DEGRADATIONS:
        raise ValueError(f"unknown degradation {kind!r}; choose from {', '.join(DEGRADATIONS)}")
    if kind == "bicubic":
        if config is not None:
            raise ValueError("only used with --degradation realistic (bicubic has no settings)")
        return BICUBIC
    config = config or DEFAULT_DEGRADATION_PRESET
    if config in PRESETS:
        return Degradation(kind, PRESETS[config], preset=config)
    path = Path(config)
    if not path.is_file():
        raise ValueError(f"{config!r} is neither a degradation preset ({', '.join(sorted(PRESETS))}) "
                         "nor a JSON file")
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{config}: not a readable JSON file: {err}") from err
    try:
        return Degradation(kind, _plausible(DegradationConfig.from_dict(values)), config_file=public_source(config))
    except ValueError as err:
        raise ValueError(f"{config}: {err}") from err


def _plausible(config: DegradationConfig) -> DegradationConfig:
    """``config``, refused when a range is valid but leaves no image to learn from."""
    for name in ("first", "second"):
        sigma = getattr(config, name).noise_sigma
        if sigma[1] > MAX_NOISE_SIGMA:
            raise ValueError(f"degradation config {name}.noise_sigma={list(sigma)}: noise over {MAX_NOISE_SIGMA:g} "
                             "levels leaves nothing of the image")
    return config


def sample_index(epoch: int, rank: int, position: int) -> int:
    """The global index of the example at ``position`` of ``epoch`` in process ``rank``'s
    stream: unique in the run, and a function of the loader's resume position only."""
    if not (0 <= position < 2**POSITION_BITS and 0 <= rank < 2**RANK_BITS and epoch >= 0):
        raise ValueError(f"no sample index for epoch {epoch}, process {rank}, position {position}")
    return (epoch << (POSITION_BITS + RANK_BITS)) | (rank << POSITION_BITS) | position


def random_pair(hr: Image.Image, scale: int, hr_patch_size: int, rng: np.random.Generator, augment: bool = True,
                *, degradation: Degradation = BICUBIC, seed: int = 0, index: int = 0):
    """An aligned (LR, HR) patch pair from one RGB image, as uint8 arrays (h, w, 3).

    The position and the symmetry come from ``rng`` (position first); a realistic LR comes
    from ``(seed, index)``; see the module docstring. ``augment`` applies the symmetry.
    """
    hr = crop_to_multiple(hr, scale)
    lp = hr_patch_size // scale
    lw, lh = hr.width // scale, hr.height // scale
    if lw < lp or lh < lp:
        raise Unusable("too_small", f"{hr.width}x{hr.height} is smaller than the {hr_patch_size} px patch")
    x, y = int(rng.integers(0, lw - lp + 1)), int(rng.integers(0, lh - lp + 1))
    hr_patch = hr.crop((x * scale, y * scale, (x + lp) * scale, (y + lp) * scale))
    if degradation.kind == "realistic":
        lr = np.asarray(degrade_realistic(hr_patch, scale, degradation.config, seed=seed, index=index))
    else:
        lr = _bicubic_patch(hr, scale, x, y, lp)
    hr_arr = np.asarray(hr_patch)
    if augment:
        lr, hr_arr = _symmetry(lr, hr_arr, rng)
    return np.ascontiguousarray(lr), np.ascontiguousarray(hr_arr)


def _bicubic_patch(hr: Image.Image, scale: int, x: int, y: int, lp: int) -> np.ndarray:
    """The (lp, lp) crop at LR (x, y) of ``degrade(hr)``, degrading only the region around it."""
    lw, lh = hr.width // scale, hr.height // scale
    # The region to degrade, in LR pixels, clipped to the image like the whole-image resize.
    x0, y0 = max(0, x - KERNEL_MARGIN), max(0, y - KERNEL_MARGIN)
    x1, y1 = min(lw, x + lp + KERNEL_MARGIN), min(lh, y + lp + KERNEL_MARGIN)
    lr_region = degrade(hr.crop((x0 * scale, y0 * scale, x1 * scale, y1 * scale)), scale)
    return np.asarray(lr_region)[y - y0 : y - y0 + lp, x - x0 : x - x0 + lp]


def _symmetry(lr: np.ndarray, hr: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One of the 8 symmetries of the square, the same for both (BasicSR's hflip / vflip / rot90)."""
    if rng.random() < 0.5:
        lr, hr = lr[:, ::-1], hr[:, ::-1]
    if rng.random() < 0.5:
        lr, hr = lr[::-1], hr[::-1]
    if rng.random() < 0.5:
        lr, hr = lr.transpose(1, 0, 2), hr.transpose(1, 0, 2)
    return lr, hr
