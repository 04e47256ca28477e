"""Training pairs: one aligned (LR, HR) patch pair from one decoded image, under the
run's degradation (``--degradation``, ``--degradation_config``).

``bicubic`` (the default) is the evaluation protocol: HR cropped to a multiple of the
scale, LR by ``sr_models.protocol.degrade`` (PIL bicubic). The crop is drawn on the LR grid
and the LR patch is cut from a degraded region wide enough to contain the bicubic kernel,
so every LR patch equals the same crop of ``degrade(whole image)`` exactly, as in the usual
SR pipelines that degrade first and crop aligned pairs.

``realistic``: the HR patch is cropped at the same position, and its LR is
``sr_models.protocol.degrade_realistic(hr_patch, scale, config, seed=SEED,
index=SAMPLE)`` (Real-ESRGAN's blur, resize, noise and JPEG; the config is a preset name or
a JSON file of ``DegradationConfig`` fields). ``SAMPLE`` is :func:`sample_index`: the
sample's place in the run, made of the loader's exact-resume position (epoch, process,
position in the stream), so a resumed run degrades every sample as the uninterrupted run
would have, and each epoch sees new degradations of the same image.

Either way the same random flip / transpose (the 8 symmetries of the square) is then
applied to both patches.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from PIL import Image

from sr_models.degradations import OWNER
from sr_models.protocol import (BICUBIC_LR, DEFAULT_PRESET, KINDS, Degradation, crop_to_multiple, degradation_of,
                                degrade, degrade_realistic)
from sr_models.training.public import public_source
from sr_models.validation import invalid

#: The values of --degradation (sr_models.protocol.KINDS), the default one, and the preset of
#: --degradation realistic without --degradation_config.
DEGRADATIONS = KINDS
BICUBIC = BICUBIC_LR
DEFAULT_DEGRADATION_PRESET = DEFAULT_PRESET
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


def load_degradation(kind: str, config: str | None = None) -> Degradation:
    """The degradation of ``--degradation KIND --degradation_config PRESET_OR_JSON_FILE``.

    Args:
        kind: one of DEGRADATIONS.
        config: with "realistic", a preset or a JSON file of DegradationConfig fields
            (:func:`sr_models.protocol.degradation_of`); None: DEFAULT_DEGRADATION_PRESET.

    Returns:
        The Degradation, a JSON file named as published (``public_source``).

    Raises:
        ValueError: one line, for an unknown kind, preset, file or field, or a config that
            leaves no image to learn from.
    """
    if kind not in DEGRADATIONS:
        raise ValueError(f"unknown degradation {kind!r}; choose from {', '.join(DEGRADATIONS)}")
    if kind == BICUBIC.kind:
        if config is not None:
            raise ValueError("only used with --degradation realistic (bicubic has no settings)")
        return BICUBIC
    degradation = degradation_of(config or DEFAULT_DEGRADATION_PRESET)
    if not degradation.realistic:
        raise ValueError(f"{config!r} is not a realistic degradation: leave --degradation_config out for bicubic")
    try:
        _check_plausible(degradation)
    except ValueError as err:
        raise ValueError(f"{config}: {err}") from err
    if degradation.config_file is None:
        return degradation
    return replace(degradation, config_file=public_source(degradation.config_file))


def _check_plausible(degradation: Degradation) -> None:
    """Refuse a config whose ranges are valid but leave no image to learn from."""
    for name in ("first", "second"):
        sigma = getattr(degradation.config, name).noise_sigma
        if sigma[1] > MAX_NOISE_SIGMA:
            raise invalid(OWNER, f"{name}.noise_sigma", list(sigma),
                          f"noise over {MAX_NOISE_SIGMA:g} levels leaves nothing of the image")


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
    if degradation.realistic:
        lr = np.asarray(degrade_realistic(hr_patch, scale, degradation, seed=seed, index=index))
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
