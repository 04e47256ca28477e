"""Scoring a folder of HR images for a set of models: the one scorer.

Turns HR images into (LR, bicubic, model outputs, scores), for the CLI's ``evaluate``, the
study and the app's benchmark mode. The pairs are made by :mod:`sr_models.protocol`, the
scores are every metric of :mod:`sr_models.metric_registry`.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import statistics
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image
from torch import nn

from . import metric_registry
from .constants import PROTOCOL
from .degradations import DegradationConfig
from .image_io import load_image
from .pipeline import upscale
from .protocol import (BICUBIC, bicubic_upscale, degradation_of, describe_lr, make_lr, make_pair, prepare_hr,
                       resolve_degradation)
from .validation import is_int

logger = logging.getLogger(__name__)

#: Files taken as images in folders and globs (an animated GIF gives its first frame).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif")
#: The public names, with those of sr_models.protocol that callers import from here (prepare_hr, make_lr, ...).
__all__ = ["BICUBIC", "IMAGE_SUFFIXES", "Evaluation", "MethodResult", "describe_lr", "evaluate", "find_images",
           "make_lr", "prepare_hr", "resolve_degradation", "run_methods", "scan_folder", "score_image"]


def scan_folder(folder: str | Path) -> tuple[list[Path], list[Path]]:
    """(image files, other files) under ``folder`` (recursive), each sorted for a stable
    order. Hidden files and folders (a name starting with "."), among them the partial
    files of an interrupted CLI run, are in neither list."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder")
    files = sorted(p for p in folder.rglob("*")
                   if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    return images, [p for p in files if p.suffix.lower() not in IMAGE_SUFFIXES]


def find_images(folder: str | Path) -> list[Path]:
    """Image files under ``folder`` (recursive, hidden files left out), sorted."""
    return scan_folder(folder)[0]


def score_image(sr: Image.Image, hr: Image.Image, scale: int) -> dict[str, float | None]:
    """Every registry metric of one output against its HR image under the protocol.

    Args:
        sr: the output.
        hr: its HR image.
        scale: the scale, also the border cropped on every side.

    Returns:
        key -> value (:func:`sr_models.metric_registry.score_pair`).
    """
    return metric_registry.score_pair(sr, hr, scale)


@dataclass
class MethodResult:
    """The per-image scores of one method (bicubic or a model), in image order."""

    name: str
    #: metric key -> per-image values: PSNR infinite where the output equals the HR image, None
    #: where the image is too small for the metric (docs/protocol.md)
    scores: dict[str, list[float | None]] = field(default_factory=lambda: {key: [] for key in metric_registry.KEYS})
    seconds: list[float] = field(default_factory=list)

    def __getattr__(self, key: str) -> list[float | None]:
        """The per-image values of a metric by its key (``result.psnr``)."""
        if key in metric_registry.KEYS:
            return self.scores[key]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {key!r}")

    def add(self, scores: dict[str, float | None], seconds: float) -> None:
        """Record one image.

        Args:
            scores: metric key -> value (:func:`score_image`).
            seconds: the time the method took.
        """
        for key, values in self.scores.items():
            values.append(scores[key])
        self.seconds.append(seconds)

    @property
    def identical(self) -> int:
        """Images this method reproduced exactly (PSNR infinite, e.g. a flat image)."""
        return sum(p is not None and math.isinf(p) for p in self.scores["psnr"])

    @property
    def summary(self) -> dict:
        """Means over the images (:func:`sr_models.metric_registry.mean`): an identical image has
        no finite PSNR and is counted apart (``identical_images``), an image too small for a
        metric has none of it; a mean is None when no image is left. Time takes every image."""
        means = {key: metric_registry.mean(values) for key, values in self.scores.items()}
        return {**means, "seconds_per_image": statistics.fmean(self.seconds),
                "identical_images": self.identical}

    def to_json(self) -> dict:
        """The per-image values, an infinite PSNR written as null (JSON has no infinity)."""
        finite = {key: [v if v is not None and math.isfinite(v) else None for v in values]
                  for key, values in self.scores.items()}
        return {"name": self.name, **finite, "seconds": self.seconds}


@dataclass
class Evaluation:
    """The scores of every method on every image, and how the LR images were made."""

    scale: int
    hr_size: int | None
    images: list[str]
    methods: dict[str, MethodResult]
    #: None: the protocol's bicubic LR; else the realistic degradation's name, its
    #: parameters and the seed its LR images were drawn with.
    degradation: str | None = None
    degradation_config: dict | None = None
    seed: int | None = None

    def to_json(self) -> dict:
        """results.json: the protocol, the LR, the summary per method and every per-image value."""
        return {
            "protocol": PROTOCOL,
            "degradation": self.degradation,
            "degradation_config": self.degradation_config,
            "seed": self.seed,
            "scale": self.scale,
            "hr_size": self.hr_size,
            "images": self.images,
            "summary": {name: m.summary for name, m in self.methods.items()},
            "per_image": {name: m.to_json() for name, m in self.methods.items()},
        }

    def table(self) -> str:
        """The summary as ``sr-models evaluate`` prints it: one row per method, one column per metric."""
        headers = [metric.header for metric in metric_registry.METRICS]
        rows = [f"LR: {describe_lr(self.degradation, self.seed)}",
                f"{'method':<28} " + " ".join(f"{h:>12}" for h in headers) + f" {'s / image':>10}"]
        for name, m in self.methods.items():
            s = m.summary
            values = " ".join(f"{metric.show(s[metric.key]):>12}" for metric in metric_registry.METRICS)
            rows.append(f"{name:<28} {values} {s['seconds_per_image']:>10.3f}")
        identical = [f"{name} {m.identical} of {len(m.seconds)}" for name, m in self.methods.items() if m.identical]
        if identical:
            rows.append(f"identical to HR (PSNR infinite, not in the PSNR mean): {', '.join(identical)}")
        return "\n".join(rows)

    def write(self, output_dir: str | Path) -> tuple[Path, Path]:
        """results.json (summary + per image) and results.csv (one row per image and method; a
        metric not measured on an image is an empty cell).

        Args:
            output_dir: the folder, made if missing.

        Returns:
            The two files' paths.
        """
        output_dir = Path(output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        json_path, csv_path = output_dir / "results.json", output_dir / "results.csv"
        json_path.write_text(json.dumps(self.to_json(), indent=2, allow_nan=False))
        with csv_path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["image", "method", *metric_registry.KEYS, "seconds"])
            for name, m in self.methods.items():
                for i, image in enumerate(self.images):
                    values = ["" if m.scores[k][i] is None else f"{m.scores[k][i]:.6f}" for k in metric_registry.KEYS]
                    writer.writerow([image, name, *values, f"{m.seconds[i]:.4f}"])
        return json_path, csv_path


def evaluate(
    models: dict[str, nn.Module],
    hr_images: Iterable[Path],
    *,
    scale: int = 4,
    hr_size: int | None = 256,
    degradation: str | DegradationConfig | None = None,
    seed: int = 0,
    on_image: Callable[[str], None] | None = None,
    **upscale_kwargs,
) -> Evaluation:
    """Degrade each HR image, run bicubic and every model, score all against the HR.

    Args:
        models: name -> model, each of ``scale``.
        hr_images: the HR files, in a fixed order (find_images sorts them).
        scale: the upscaling factor.
        hr_size: the HR side (centre square, resized); None keeps each image's size.
        degradation: how LR images are made, as :func:`sr_models.protocol.degradation_of`
            takes it: None (or "bicubic") is the protocol's PIL bicubic downscale; a preset
            ("moderate", "realesrgan") or a DegradationConfig gives the LR of image ``i`` (its
            position in ``hr_images``) drawn for (``seed``, ``i``): one fixed LR per image for
            a given seed, so the scores are reproducible.
        seed: the realistic degradation's seed.
        on_image: called with each image's path once it is scored.
        **upscale_kwargs: for :func:`sr_models.upscale` (tile, device, dtype).

    Returns:
        The Evaluation. Files that cannot be read are skipped with a warning.
    """
    for name, model in models.items():
        if model.scale != scale:
            raise ValueError(f"model {name!r} is x{model.scale}, but the evaluation is x{scale}")
    if not is_int(seed) or seed < 0:
        raise ValueError(f"the seed of a degradation is an integer >= 0, got {seed!r}")
    methods = {BICUBIC: MethodResult(BICUBIC), **{name: MethodResult(name) for name in models}}
    lr_kind = degradation_of(degradation)
    realistic, lr_name = lr_kind.realistic, lr_kind.name
    names: list[str] = []
    for index, path in enumerate(hr_images):
        try:
            hr, lr = make_pair(load_image(path), scale, hr_size, lr_kind, seed=seed, index=index)
        except ValueError as err:  # ImageInputError and too-small images
            logger.warning("skipping %s: %s", path, err)
            continue
        for name, sr, seconds in run_methods(models, lr, scale, lambda _name, _model: upscale_kwargs):
            methods[name].add(score_image(sr, hr, scale), seconds)
        names.append(str(path))
        if on_image is not None:
            on_image(str(path))
    if not names:
        raise ValueError("no readable HR images to evaluate")
    return Evaluation(scale, hr_size, names, methods, degradation=lr_name,
                      degradation_config=lr_kind.config.to_dict() if realistic else None,
                      seed=seed if realistic else None)


def run_methods(models: dict[str, nn.Module], lr: Image.Image, scale: int,
                options: Callable[[str, nn.Module], dict] | None = None) -> Iterator[tuple[str, Image.Image, float]]:
    """Bicubic, then every model in order, on one LR image: yields (name, output, seconds) as
    each is ready (the app shows each result as it comes).

    Args:
        models: name -> model.
        lr: the LR image.
        scale: bicubic's factor (the models' own).
        options: (name, model) -> keyword arguments of :func:`sr_models.upscale` for that
            model (tile, device, dtype, progress); None: the defaults.

    Yields:
        (:data:`BICUBIC` or the model's name, its output, the seconds it took).
    """
    start = time.perf_counter()
    sr = bicubic_upscale(lr, scale)
    yield BICUBIC, sr, time.perf_counter() - start
    for name, model in models.items():
        kwargs = options(name, model) if options is not None else {}
        start = time.perf_counter()
        sr = upscale(model, lr, **kwargs)
        yield name, sr, time.perf_counter() - start
