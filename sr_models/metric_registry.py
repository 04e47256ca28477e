"""The metrics the project reports, as data: one entry per metric, read by every consumer.

``sr-models evaluate`` (:mod:`sr_models.evaluation`), the model cards (:mod:`sr_models.cards`),
validation during training, the study (``benchmarks/``), the 🤗 evaluate module
(``evaluate_modules/sr_metrics``) and the app all take their metrics from :data:`METRICS`,
so adding one is an implementation in :mod:`sr_models.metrics` and an entry here.

``key`` is the metric's one name in every file: results.json, results.csv, compare.json,
metrics.json (``bicubic_<key>`` for the baseline), model_card.json and the model-index.
Files written before the keys were one (``psnr_y`` / ``ssim_y`` in a training run's
metrics.json) are read through :func:`current_keys`.

An image too small for a metric (MS-SSIM needs 161 pixels a side after the border crop,
SSIM 11) is not measured: its value is None, and a mean is over the images that have one
(docs/protocol.md).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

from .metrics import ImageLike, ImageTooSmall, ms_ssim_batch, psnr_batch, ssim_batch, to_uint8_batch


@dataclass(frozen=True)
class Metric:
    """One reported metric.

    ``function`` scores batches (sr, hr, crop_border, y_channel=True) -> per-image values, (B,): float
    tensors in [0, 1] or uint8 levels (:func:`sr_models.metrics.to_uint8_batch`). ``card_id``
    is the model-index ``metric.type``; ``name`` heads tables and names the model-index
    result, ``unit`` follows it in table headers; ``format`` is how a value is shown.
    """

    key: str
    function: Callable[..., torch.Tensor]
    higher_is_better: bool
    name: str
    card_id: str
    format: str
    unit: str = ""

    @property
    def header(self) -> str:
        """The table heading: "PSNR-Y (dB)", "SSIM-Y"."""
        return f"{self.name} ({self.unit})" if self.unit else self.name

    def show(self, value: float | None) -> str:
        """``value`` as tables show it; "-" when it was not measured."""
        return "-" if value is None else format(value, self.format)


METRICS: tuple[Metric, ...] = (
    Metric("psnr", psnr_batch, True, "PSNR-Y", "psnr", ".2f", unit="dB"),
    Metric("ssim", ssim_batch, True, "SSIM-Y", "ssim", ".4f"),
    Metric("ms_ssim", ms_ssim_batch, True, "MS-SSIM-Y", "ms_ssim", ".4f"),
)
BY_KEY: dict[str, Metric] = {metric.key: metric for metric in METRICS}
KEYS: tuple[str, ...] = tuple(BY_KEY)
#: The metric that ranks models where one number must decide (below bicubic, the no-regression
#: check of new bundled weights, the study's quality-against-latency plot).
PRIMARY = BY_KEY["psnr"]
#: Keys of files written before every consumer used KEYS -> their key now.
LEGACY_KEYS = {"psnr_y": "psnr", "ssim_y": "ssim"}
BASELINE_PREFIX = "bicubic_"


def score_pair(sr: ImageLike, hr: ImageLike, crop_border: int, y_channel: bool = True) -> dict[str, float | None]:
    """Every registry metric of one SR / HR pair: what the app shows for an image.

    Args:
        sr: the output (PIL image RGB or L, uint8 array, or float tensor in [0, 1]).
        hr: its reference, the same size.
        crop_border: pixels cut from every side (the scale, by the protocol).
        y_channel: on the BT.601 luma (the protocol); False: on every channel.

    Returns:
        key -> value, in METRICS order; None for a metric the image is too small for.
    """
    scores = score_batches(sr, hr, crop_border, y_channel)
    return {key: None if values is None else float(values[0]) for key, values in scores.items()}


def score_batches(sr: torch.Tensor | ImageLike, hr: torch.Tensor | ImageLike, crop_border: int,
                  y_channel: bool = True) -> dict[str, torch.Tensor | None]:
    """Every registry metric of batches, per image.

    Args:
        sr: outputs, (B, C, H, W) floats in [0, 1] or uint8 levels; or one image, anything
            :func:`sr_models.metrics.to_uint8_array` takes (converted once for every metric).
        hr: references, the same shape and device.
        crop_border: pixels cut from every side.
        y_channel: on the BT.601 luma (the protocol); False: on every channel.

    Returns:
        key -> tensor (B,), None for a metric the images are too small for.
    """
    sr, hr = (x if isinstance(x, torch.Tensor) and x.ndim == 4 else to_uint8_batch(x) for x in (sr, hr))
    scores = {}
    for metric in METRICS:
        try:
            scores[metric.key] = metric.function(sr, hr, crop_border, y_channel=y_channel)
        except ImageTooSmall:
            scores[metric.key] = None
    return scores


def mean(values: Iterable[float | None]) -> float | None:
    """The mean over images of one metric.

    Args:
        values: per-image values; an identical image's infinite PSNR and an unmeasured None
            are counted apart, not averaged.

    Returns:
        The mean of the finite values; None when no image has one.
    """
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.fmean(finite) if finite else None


def current_keys(record: dict) -> dict:
    """A record written with older metric keys, in the current ones.

    Args:
        record: e.g. a training run's metrics.json.

    Returns:
        The same values, LEGACY_KEYS renamed, bicubic ones too ("bicubic_psnr_y" ->
        "bicubic_psnr"); other keys as they are.
    """
    def renamed(key: str) -> str:
        base = key.removeprefix(BASELINE_PREFIX)
        return key.replace(base, LEGACY_KEYS[base]) if base in LEGACY_KEYS else key
    return {renamed(key): value for key, value in record.items()}


def describe(scores: dict, baseline: dict | None = None) -> str:
    """Scores in words for logs: "PSNR-Y 30.12 dB (bicubic 29.14), SSIM-Y 0.8512 (bicubic 0.8127)".

    Args:
        scores: key -> value (None: not measured).
        baseline: the bicubic scores, key -> value, if they are to be shown beside.

    Returns:
        One line, the registry's metrics in order, those absent from ``scores`` left out.
    """
    parts = []
    for metric in METRICS:
        if metric.key in scores:
            unit = f" {metric.unit}" if metric.unit and scores[metric.key] is not None else ""
            text = f"{metric.name} {metric.show(scores[metric.key])}{unit}"
            if baseline is not None:
                text += f" (bicubic {metric.show(baseline.get(metric.key))})"
            parts.append(text)
    return ", ".join(parts)
