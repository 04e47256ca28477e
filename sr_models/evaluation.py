"""The evaluation protocol applied to a folder of HR images and a set of models.

One place that turns HR images into (LR, bicubic, model outputs, scores), shared by
the CLI's ``evaluate``, the comparison benchmark and the app's benchmark mode.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from PIL import Image
from torch import nn

from .constants import PROTOCOL
from .degradations import PRESETS, DegradationConfig, degrade_realistic
from .image_io import load_image, to_rgb
from .metrics import bicubic_upscale, crop_to_multiple, degrade, psnr, ssim
from .pipeline import upscale

logger = logging.getLogger(__name__)

#: Files taken as images in folders and globs (an animated GIF gives its first frame).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif")
BICUBIC = "bicubic"


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


def prepare_hr(image: Image.Image, scale: int, hr_size: int | None = None) -> Image.Image:
    """HR as the protocol uses it: RGB, optionally centre-cropped to a square and resized
    (PIL bicubic, antialiased) to ``hr_size``, then cropped to a multiple of ``scale``.
    16-bit and float images are scaled to 8 bits by their range (not clipped)."""
    image = to_rgb(image)
    if hr_size is not None:
        side = min(image.size)
        left, top = (image.width - side) // 2, (image.height - side) // 2
        image = image.crop((left, top, left + side, top + side))
        if side != hr_size:
            image = image.resize((hr_size, hr_size), Image.BICUBIC)
    return crop_to_multiple(image, scale)


def resolve_degradation(degradation: str | DegradationConfig | None) -> tuple[str | None, DegradationConfig | None]:
    """(name, config) of an evaluation's LR: None or "bicubic" is the protocol (None, None);
    a PRESETS name gives its config; a DegradationConfig is named after the preset it
    equals, else "custom"."""
    if degradation is None or degradation == BICUBIC:
        return None, None
    if isinstance(degradation, DegradationConfig):
        return next((name for name, config in PRESETS.items() if config == degradation), "custom"), degradation
    if degradation not in PRESETS:
        raise ValueError(f"unknown degradation {degradation!r}; choose {BICUBIC!r} (the protocol) "
                         f"or one of {sorted(PRESETS)}")
    return degradation, PRESETS[degradation]


def make_lr(hr: Image.Image, scale: int, config: DegradationConfig | None = None, *, seed: int = 0,
            index: int = 0) -> Image.Image:
    """The LR input of one HR image: the protocol's PIL bicubic downscale (``config`` None),
    or the realistic degradation drawn for (``seed``, ``index``): the same LR every time."""
    if config is None:
        return degrade(hr, scale)
    return degrade_realistic(hr, scale, config, seed=seed, index=index)


def describe_lr(degradation: str | None, seed: int | None) -> str:
    """How the LR inputs of an evaluation were made, in words."""
    if degradation is None:
        return "PIL bicubic downscale (the protocol)"
    return f"realistic degradation {degradation!r}, seed {seed} (sr_models.degradations)"


def score_image(sr: Image.Image, hr: Image.Image, scale: int) -> dict[str, float]:
    """PSNR-Y and SSIM-Y of one output against its HR image under the protocol
    (border of ``scale`` pixels cropped): the one scorer of the CLI, the app and the study."""
    return {"psnr": psnr(sr, hr, crop_border=scale), "ssim": ssim(sr, hr, crop_border=scale)}


@dataclass
class MethodResult:
    name: str
    #: per image; infinite where the output equals the HR image (docs/protocol.md)
    psnr: list[float] = field(default_factory=list)
    ssim: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    @property
    def identical(self) -> int:
        """Images this method reproduced exactly (PSNR infinite, e.g. a flat image)."""
        return sum(math.isinf(p) for p in self.psnr)

    @property
    def summary(self) -> dict:
        """Means over the images. An identical image has no finite PSNR: it is counted
        apart (``identical_images``) and left out of the PSNR mean, which is None when no
        image is left; SSIM (1.0 there) and time take every image."""
        finite = [p for p in self.psnr if math.isfinite(p)]
        return {
            "psnr": statistics.fmean(finite) if finite else None,
            "ssim": statistics.fmean(self.ssim),
            "seconds_per_image": statistics.fmean(self.seconds),
            "identical_images": self.identical,
        }

    def to_json(self) -> dict:
        """The per-image values, an infinite PSNR written as null (JSON has no infinity)."""
        return {**asdict(self), "psnr": [p if math.isfinite(p) else None for p in self.psnr]}


@dataclass
class Evaluation:
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
        rows = [f"LR: {describe_lr(self.degradation, self.seed)}",
                f"{'method':<28} {'PSNR-Y (dB)':>12} {'SSIM-Y':>8} {'s / image':>10}"]
        for name, m in self.methods.items():
            s = m.summary
            psnr = "-" if s["psnr"] is None else f"{s['psnr']:.2f}"
            rows.append(f"{name:<28} {psnr:>12} {s['ssim']:>8.4f} {s['seconds_per_image']:>10.3f}")
        identical = [f"{name} {m.identical} of {len(m.psnr)}" for name, m in self.methods.items() if m.identical]
        if identical:
            rows.append(f"identical to HR (PSNR infinite, not in the PSNR mean): {', '.join(identical)}")
        return "\n".join(rows)

    def write(self, output_dir: str | Path) -> tuple[Path, Path]:
        """results.json (summary + per image) and results.csv (one row per image and method)."""
        output_dir = Path(output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        json_path, csv_path = output_dir / "results.json", output_dir / "results.csv"
        json_path.write_text(json.dumps(self.to_json(), indent=2, allow_nan=False))
        with csv_path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["image", "method", "psnr_y", "ssim_y", "seconds"])
            for name, m in self.methods.items():
                for image, p, s, t in zip(self.images, m.psnr, m.ssim, m.seconds):
                    writer.writerow([image, name, f"{p:.4f}", f"{s:.6f}", f"{t:.4f}"])
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

    ``degradation``: None (or "bicubic") is the protocol's PIL bicubic downscale; a
    PRESETS name ("moderate", "realesrgan") or a DegradationConfig gives the LR of image
    ``i`` (its position in ``hr_images``, which find_images sorts) as
    ``degrade_realistic(hr, scale, config, seed=seed, index=i)``: one fixed LR per image
    for a given seed, so the scores are reproducible. ``upscale_kwargs`` go to
    :func:`sr_models.upscale` (tile, device, dtype). Files that cannot be read are
    skipped with a warning.
    """
    for name, model in models.items():
        if model.scale != scale:
            raise ValueError(f"model {name!r} is x{model.scale}, but the evaluation is x{scale}")
    degradation_name, config = resolve_degradation(degradation)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"the seed of a degradation is an integer >= 0, got {seed!r}")
    methods = {BICUBIC: MethodResult(BICUBIC), **{name: MethodResult(name) for name in models}}
    names: list[str] = []
    for index, path in enumerate(hr_images):
        try:
            hr = prepare_hr(load_image(path), scale, hr_size)
        except ValueError as err:  # ImageInputError and too-small images
            logger.warning("skipping %s: %s", path, err)
            continue
        lr = make_lr(hr, scale, config, seed=seed, index=index)
        for name, (sr, seconds) in _run_methods(models, lr, scale, upscale_kwargs).items():
            scores = score_image(sr, hr, scale)
            methods[name].psnr.append(scores["psnr"])
            methods[name].ssim.append(scores["ssim"])
            methods[name].seconds.append(seconds)
        names.append(str(path))
        if on_image is not None:
            on_image(str(path))
    if not names:
        raise ValueError("no readable HR images to evaluate")
    return Evaluation(scale, hr_size, names, methods, degradation=degradation_name,
                      degradation_config=config.to_dict() if config else None,
                      seed=seed if config else None)


def _run_methods(models: dict[str, nn.Module], lr: Image.Image, scale: int,
                 upscale_kwargs: dict) -> dict[str, tuple[Image.Image, float]]:
    """(output, seconds) of bicubic and of every model on one LR image."""
    outputs = {}
    start = time.perf_counter()
    outputs[BICUBIC] = (bicubic_upscale(lr, scale), time.perf_counter() - start)
    for name, model in models.items():
        start = time.perf_counter()
        sr = upscale(model, lr, **upscale_kwargs)
        outputs[name] = (sr, time.perf_counter() - start)
    return outputs
