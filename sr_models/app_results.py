"""A run's results: its images on disk, what the slider can show, and the slider itself.

Each run keeps every image it made (the input enlarged, bicubic, each model, and in
Benchmark mode the original and the degraded input), each under the label the slider's
dropdowns offer. The two dropdowns re-pick among them with no model run, and a side whose
method is still running shows the latest other result until it is ready (its label says
so). The same method on both sides is the same image twice.

The results are held by a hidden ``gr.Gallery`` (label = caption) rather than ``gr.State``:
Gradio then manages their files as it does every output's, in its cache (swept by
:mod:`sr_models.app_cache`) and in its cache of examples, which keeps only files of file
components.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import gradio as gr
from PIL import Image

from .app_choices import BENCHMARK_MODE
from .app_models import method_labels
from .image_io import TIFF_MODES, file_format, to_rgb
from .png_writer import save_png

#: The model input enlarged by pixel repetition to the output size (nothing invented),
#: the same in Benchmark mode (where the input is the degraded original), and the original.
INPUT, DEGRADED, ORIGINAL = "Input (nearest neighbour)", "Degraded input (nearest neighbour)", "Original (HR)"
#: Upload names are kept in download names up to this many characters.
STEM_CHARS = 60


def slider_choices(mode: str, kind: str) -> list[str]:
    """What the dropdowns offer: the input, bicubic, every model, and in Benchmark mode the original."""
    methods = list(method_labels(kind).values())
    return [DEGRADED, *methods, ORIGINAL] if mode == BENCHMARK_MODE else [INPUT, *methods]


def download_stem(upload: str) -> str:
    """The upload's file name without suffix, reduced to characters every file system takes."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(upload).stem).strip("._")[:STEM_CHARS]
    return stem or "upload"


def _slug(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")


class RunFiles:
    """The files of one run in its own folder: ``<upload stem>_<method>_x<scale>`` for the
    results (lossless: PNG, or TIFF for CMYK and float images, shown as 8-bit RGB PNG)."""

    def __init__(self, folder: Path, stem: str, scale: int):
        self.folder, self.stem, self.scale = folder, stem, scale
        self.shown: dict[str, str] = {}  # label -> PNG the slider shows, in the order made
        self.downloads: list[str] = []

    def add_view(self, label: str, image: Image.Image, name: str) -> None:
        """An image to compare with (the input, the original): shown, not a download."""
        path = self.folder / f"{self.stem}_{name}.png"
        save_png(to_rgb(image), path)
        self.shown[label] = str(path)

    def add_result(self, label: str, image: Image.Image) -> None:
        """A method's output: shown and downloadable in its own mode."""
        fmt, suffix = file_format(image.mode)
        path = self.folder / f"{self.stem}_{_slug(label)}_x{self.scale}{suffix}"
        if image.mode in TIFF_MODES:
            image.save(path, fmt)
            shown = path.with_suffix(".png")
            save_png(to_rgb(image), shown)
        else:
            save_png(image, path)  # the sliders show it as soon as it is written
            shown = path
        self.shown[label] = str(shown)
        self.downloads.append(str(path))

    def gallery(self) -> list[tuple[str, str]]:
        """The results as the hidden gallery holds them: (file, label)."""
        return [(path, label) for label, path in self.shown.items()]


def nearest(image: Image.Image, scale: int) -> Image.Image:
    """The image enlarged ``scale`` times by pixel repetition, as 8-bit RGB."""
    image = to_rgb(image)
    return image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)


def _side(shown: dict[str, str], wanted: str, other: str | None) -> tuple[str, str]:
    """(label shown, its description): ``wanted`` when it is ready, else the latest other result."""
    if wanted in shown:
        return wanted, wanted
    stand_in = next((label for label in reversed(shown) if label != other), next(reversed(shown)))
    return stand_in, f"{stand_in} ({wanted} not ready)"


def show_pair(results: list[tuple[str, str]] | None, left: str, right: str):
    """The slider for the dropdowns' choices among a run's results, each side named."""
    if not results:
        return gr.skip()
    shown = {label: path for path, label in results}
    left_label, left_text = _side(shown, left, right if right in shown else None)
    right_label, right_text = _side(shown, right, left_label)
    if not all(os.path.isfile(shown[label]) for label in (left_label, right_label)):
        gr.Warning("These results were removed from the server (old results are swept): press Run to make them again.")
        return gr.skip()
    # an update, not a new gr.ImageSlider: that would process its images once more
    return gr.update(value=(shown[left_label], shown[right_label]), label=f"left: {left_text} | right: {right_text}")
