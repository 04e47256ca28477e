"""The app's handler: one upload through every method, each result shown as it is ready.

:func:`compare` is a generator: once bicubic is ready and again after each model, it yields
the run's results (the hidden gallery the slider picks from), the table of times (and
scores in Benchmark mode), the downloads, a note on what was done and a status line (what
is done, what still runs): bicubic and ESPCN are on the page in about a second, HAT when
it is done. The methods run through the library's
:func:`sr_models.evaluation.run_methods`, as ``sr-models evaluate`` runs them; Benchmark
mode makes its pair with the library's protocol and scores with the library's metrics.
"""

from __future__ import annotations

import math
import os

import gradio as gr
import torch
from PIL import Image

from .app_cache import ResultFolders
from .app_choices import BENCHMARK_MODE, REAL_PHOTO
from .app_errors import refuse, user_errors
from .app_limits import TILE_SIZE, TILE_WORKERS, check_upload_size, choose_tile, needs_tiling
from .app_models import (DENOISE_STRENGTH, kind_degradation, kind_models, method_labels, pad_multiple, precision,
                         run_models)
from .app_results import DEGRADED, INPUT, ORIGINAL, RunFiles, download_stem, nearest
from .evaluation import BICUBIC, run_methods
from .image_io import TIFF_MODES, load_image, open_image
from .metric_registry import METRICS, PRIMARY, score_pair
from .protocol import describe_lr, make_pair

try:  # ZeroGPU Spaces: run the heavy function on a GPU; a no-op everywhere else.
    import spaces

    gpu = spaces.GPU
except ImportError:
    def gpu(fn):
        return fn

#: A request's own result folder is removed once this old and its run has ended: Gradio
#: copies the files into its cache as soon as the handler yields them.
RESULT_FOLDER_MAX_AGE_S = 30
RESULT_FOLDERS = ResultFolders(RESULT_FOLDER_MAX_AGE_S)


def open_upload(path: str | None, benchmark: bool, scale: int, multiple: int) -> tuple[Image.Image, list[str]]:
    """The upload, its size checked for the mode before its pixels are decoded
    (:func:`check_upload_size`), and notes on what the app made of it (an animation, a mode
    that PNG and the browser cannot show)."""
    if path is None:
        raise refuse("Upload an image first (or pick an example).")
    if not os.path.isfile(path):
        raise refuse("The upload is no longer on the server (the app removes old files to bound its disk use): "
                     "upload it again.")
    with user_errors(path):
        # The app's limits (with their messages) replace the library's pixel limit.
        with open_image(path, max_pixels=math.inf) as header:
            check_upload_size(header.size, benchmark, scale, multiple)
        image = load_image(path, max_pixels=math.inf)
    frames = image.info["n_frames"]  # counted by load_image: the file is not opened again
    notes = [f"The upload is animated ({frames} frames): only the first frame was used."] if frames > 1 else []
    if image.mode in TIFF_MODES:
        notes.append(f"The upload is {image.mode}: it was benchmarked as 8-bit RGB." if benchmark else
                     f"The upload is {image.mode}: the slider shows it as 8-bit RGB; the downloads keep "
                     f"{image.mode} (TIFF).")
    return image, notes


def benchmark_input(image: Image.Image, scale: int, degradation: str | None) -> tuple[Image.Image, Image.Image]:
    """(HR, LR): the protocol's HR and its LR under ``degradation`` (None: bicubic; a
    preset: that realistic degradation, seed 0, the first image of the evaluation's
    sequence). Its size was checked by :func:`check_upload_size`."""
    return make_pair(image, scale, degradation=degradation, seed=0, index=0)


def upscale_options(lr_size: tuple[int, int], force_tiling: bool, labels: dict[str, str], progress):
    """(name, model) -> the library's upscale options for that model, asked for as it starts:
    tiles where its padded input is over MAX_UNTILED_PIXELS (or when asked), TILE_WORKERS of
    them at once, its precision, the progress bar (its name, then each tile)."""
    workers = min(TILE_WORKERS, torch.get_num_threads())

    def options(name, model) -> dict:
        tile = None
        if force_tiling:
            tile = TILE_SIZE
        elif needs_tiling(lr_size, model.pad_multiple):
            tile = choose_tile(lr_size, model.pad_multiple, model.tile_overlap)
        progress(0, desc=f"{labels[name]}: running")

        def report(done: int, total: int) -> None:
            progress((done, total), desc=f"{labels[name]}: tile {done}/{total}")

        return {"tile": tile, "tile_workers": workers, "dtype": precision(name).dtype, "progress": report}
    return options


def _shown(metric, value: float | None) -> float | None:
    """A score as the table shows it: a number rounded as the metric's format says (so the
    column sorts as numbers), None where the image is too small for the metric."""
    return None if value is None else float(metric.show(value))


def _table(rows: list[list], benchmark: bool) -> dict:
    headers = ["method", "seconds"] + ([metric.header for metric in METRICS] if benchmark else [])
    return {"headers": headers, "data": rows}


def _what_was_done(kind: str, strength: float, lr: Image.Image, hr: Image.Image | None, scale: int) -> str:
    """The note's first line: what the upload became."""
    weights = f"the {kind.lower()} weights" + (f" (denoise strength {strength:g})" if kind == REAL_PHOTO else "")
    if hr is None:
        return (f"Upscaled {lr.width}x{lr.height} → {lr.width * scale}x{lr.height * scale} (x{scale}) "
                f"with {weights}.")
    degradation = kind_degradation(kind)
    return (f"Benchmark ({kind.lower()}): the upload ({hr.width}x{hr.height}) was degraded to {lr.width}x{lr.height} "
            f"({describe_lr(degradation, 0 if degradation else None)}) and super-resolved x{scale} with {weights}; "
            "scores are against the original.")


def _progress(labels: dict[str, str], done: list[str], scores: dict[str, dict]) -> str:
    """Which methods are done and which still run; the best model by PSNR once all are scored."""
    waiting = [label for name, label in labels.items() if name not in done]
    if waiting:
        return f"Done: {', '.join(labels[name] for name in done)}. Running: {', '.join(waiting)}…"
    if not scores:
        return "Done."
    best = max((name for name in scores if name != BICUBIC), key=lambda name: scores[name][PRIMARY.key])
    return f"Done. Best: **{labels[best]}**."


def _add_views(files: RunFiles, lr: Image.Image, hr: Image.Image | None) -> None:
    """What the results are compared with: the original (Benchmark mode) and the model input."""
    if hr is not None:
        files.add_view(ORIGINAL, hr, "original")
    kind = "degraded" if hr is not None else "input"
    files.add_view(DEGRADED if hr is not None else INPUT, nearest(lr, files.scale), f"{kind}_nearest_x{files.scale}")


@gpu
def compare(image_path: str | None, kind: str, mode: str, strength: float = DENOISE_STRENGTH,
            force_tiling: bool = False, progress=gr.Progress()):
    """Yields (results, table, downloads, note, status) once bicubic is ready, then after each model."""
    models, notes = run_models(kind, strength)
    labels, scale, benchmark = method_labels(kind), next(iter(models.values())).scale, mode == BENCHMARK_MODE
    image, upload_notes = open_upload(image_path, benchmark, scale, pad_multiple(kind_models(kind)))
    hr, lr = benchmark_input(image, scale, kind_degradation(kind)) if benchmark else (None, image)
    note = "\n\n".join([_what_was_done(kind, strength, lr, hr, scale), *upload_notes, *notes])
    options = upscale_options(lr.size, force_tiling, labels, progress)
    done, rows, scores = [], [], {}
    with RESULT_FOLDERS.held() as folder, user_errors(image_path):
        files = RunFiles(folder, download_stem(image_path), scale)
        _add_views(files, lr, hr)
        for name, sr, seconds in run_methods(models, lr, scale, options):
            files.add_result(labels[name], sr)
            done.append(name)
            rows.append([labels[name], round(seconds, 3)])
            if benchmark:
                scores[name] = score_pair(sr, hr, scale)
                rows[-1] += [_shown(metric, scores[name][metric.key]) for metric in METRICS]
            del sr  # an output may be 16.8 MP: only its file is kept while the next method runs
            yield files.gallery(), _table(rows, benchmark), list(files.downloads), note, _progress(labels, done, scores)
