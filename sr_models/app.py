"""ESPCN vs HAT vs bicubic, side by side: the sr-models Gradio app.

Run ``sr-models app``, ``python -m sr_models.app`` (needs the ``[app]`` extra) or, in a
source checkout or a Hugging Face Space, ``python app.py``.

The user says what the input is. *Clean downscale*: the study's weights
(``sr_models.loading.DEFAULT_MODELS``, trained on the protocol's bicubic LR). *Real photo*:
the same architectures trained on realistic degradations (``REAL_PHOTO_MODELS``: blur,
noise, JPEG), for the photos people have. Each bundled model's environment variable
(``SR_ESPCN_MODEL``, ``SR_HAT_MODEL``, ``SR_ESPCN_REAL_MODEL``, ``SR_HAT_REAL_MODEL``) may
name a repo id or folder of trained weights of the same architecture instead. A value that
names a preset (random weights) or another architecture stops the app at start-up with the
reason (and, if the app was launched without :func:`main`, every request shows it).

Two modes. *Upscale* super-resolves the upload. *Benchmark* treats the upload as the HR
original, degrades it as the chosen input kind says (clean: PIL bicubic x4 down, the
protocol; real photo: the seeded realistic degradation its weights' benchmark uses),
super-resolves it with every model and scores each against the original (PSNR / SSIM on Y).

Every computation is a library call; this module only turns uploads into library inputs,
results into files the browser shows, and library errors into messages.

Files never pile up: each request writes its results into a folder of its own under one
folder of this process; later requests remove such folders once older than
``RESULT_FOLDER_MAX_AGE_S`` (Gradio has copied the files into its cache by then), and
remove Gradio's copies and the uploads once older than ``CACHE_MAX_AGE_S``; everything
goes at exit. ``benchmarks/app_soak.py`` measures it over a few hundred requests.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import functools
import logging
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import gradio as gr
from PIL import Image, UnidentifiedImageError

from .evaluation import describe_lr, make_lr, prepare_hr, resolve_degradation, score_image
from .image_io import TIFF_MODES, ImageInputError, file_format, load_image, to_rgb
from .loading import BUNDLED, DEFAULT_MODELS, REAL_PHOTO_MODELS, load_bundled
from .metrics import SSIM_WINDOW_SIZE, bicubic_upscale
from .pipeline import upscale

try:  # ZeroGPU Spaces: run the heavy function on a GPU; a no-op everywhere else.
    import spaces

    gpu = spaces.GPU
except ImportError:
    def gpu(fn):
        return fn

logger = logging.getLogger(__name__)

# A wheel carries the examples inside the package; a source checkout has them at the root.
EXAMPLE_DIRS = (Path(__file__).parent / "examples", Path(__file__).resolve().parent.parent / "examples")
#: Example files that are real-looking photos: picking one also picks REAL_PHOTO.
REAL_PHOTO_EXAMPLES = {"astronaut_photo.jpg"}
BICUBIC = "Bicubic"
CLEAN_DOWNSCALE, REAL_PHOTO = "Clean downscale", "Real photo"
#: What the input is -> {slot label (the architecture): bundled model name}, in order.
INPUT_KINDS = {kind: {BUNDLED[name].architecture: name for name in names}
               for kind, names in ((CLEAN_DOWNSCALE, DEFAULT_MODELS), (REAL_PHOTO, REAL_PHOTO_MODELS))}
METHODS = (BICUBIC, *INPUT_KINDS[CLEAN_DOWNSCALE])
assert all(tuple(slots) == METHODS[1:] for slots in INPUT_KINDS.values()), "every input kind fills the same slots"
#: Upscale mode has no score to pick the best model by: show the study's winner, the
#: last slot (HAT; docs/study.md).
STRONGEST = METHODS[-1]
UPSCALE_MODE, BENCHMARK_MODE = "Upscale", "Benchmark"

#: Inputs up to this many LR pixels run in one piece; above it they are tiled automatically.
MAX_UNTILED_PIXELS = 256 * 256
#: Inputs above this many pixels are refused with a message (the model input, i.e. the LR).
MAX_INPUT_PIXELS = 1024 * 1024
#: Largest upload, in pixels: benchmark mode degrades it x4 per side to the model input.
MAX_UPLOAD_PIXELS = MAX_INPUT_PIXELS * 16
#: Largest upload file the server accepts (Gradio's ``max_file_size``).
MAX_UPLOAD_FILE_SIZE = "50mb"
#: Tile side (LR pixels) when tiling.
TILE_SIZE = 128
QUEUE_MAX_SIZE = 16
CONCURRENCY_LIMIT = 2
#: Results and uploads in Gradio's cache are deleted once older than CACHE_MAX_AGE_S (the
#: downloads stay available ten minutes), looked for at most every CACHE_SWEEP_EVERY_S.
CACHE_SWEEP_EVERY_S, CACHE_MAX_AGE_S = 30, 600
#: A request's own result folder is removed by a later request once this old: Gradio
#: copies the files into its cache as soon as the handler returns.
RESULT_FOLDER_MAX_AGE_S = 30


class UploadedImage(gr.Image):
    """gr.Image whose unreadable or oversized uploads raise gr.Error (gr.Image raises a
    bare exception, which the user sees as Gradio's generic error)."""

    is_template = True  # same front end as gr.Image

    def preprocess(self, payload):
        try:
            return super().preprocess(payload)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            raise gr.Error(f"The upload is too large to open: {err} "
                           f"The app accepts up to {MAX_UPLOAD_PIXELS / 1e6:.0f} MP.") from err
        except (UnidentifiedImageError, OSError, ValueError) as err:
            raise gr.Error(f"The upload is not a readable image ({type(err).__name__}).") from err


# ------------------------------------------------------------------ models


@functools.cache
def get_models(kind: str = CLEAN_DOWNSCALE) -> dict[str, tuple]:
    """(model, source) per slot for one input kind, loaded once per process. ValueError
    when an SR_*_MODEL override names a preset, another architecture or another scale."""
    names = INPUT_KINDS[kind]
    models = {label: load_bundled(name) for label, name in names.items()}
    scales = {label: model.scale for label, (model, _) in models.items()}
    if len(set(scales.values())) > 1:
        env_vars = " / ".join(BUNDLED[name].env_var for name in names.values())
        raise ValueError(f"the models must share one scale, got {scales}: check {env_vars}")
    return models


def _models(kind: str = CLEAN_DOWNSCALE) -> dict[str, tuple]:
    """get_models(kind), with a misconfiguration shown in the UI."""
    if kind not in INPUT_KINDS:
        raise gr.Error(f"Unknown input kind {kind!r}; choose {' or '.join(map(repr, INPUT_KINDS))}.")
    try:
        return get_models(kind)
    except (ValueError, OSError) as err:
        raise gr.Error(f"The app's weights are misconfigured: {err}") from err


def check_weights() -> None:
    """Load every model now: a misconfigured SR_*_MODEL stops the app with its reason
    (a Space must not serve wrong weights under the right label)."""
    try:
        for kind in INPUT_KINDS:
            get_models(kind)
    except (ValueError, OSError) as err:
        raise SystemExit(f"sr-models app: cannot start: {err}") from err


def weights_note() -> str:
    lines = [f"- **{label}** ({kind.lower()}): {source} (x{model.scale}, {model.num_parameters:,} parameters)"
             for kind in INPUT_KINDS for label, (model, source) in _models(kind).items()]
    return "Weights in use:\n" + "\n".join(lines)


# ------------------------------------------------------------------ files


class ResultFolders:
    """Per-request result folders under one folder of this process, removed at exit;
    folders older than ``max_age_s`` are removed whenever a new one is made."""

    def __init__(self, max_age_s: float):
        self.max_age_s = max_age_s
        self._root: Path | None = None
        self._lock = threading.Lock()

    def new(self) -> Path:
        with self._lock:
            if self._root is None:
                self._root = Path(tempfile.mkdtemp(prefix="sr-models-app-"))
                atexit.register(shutil.rmtree, self._root, True)
            self._prune()
            return Path(tempfile.mkdtemp(prefix="request-", dir=self._root))

    def _prune(self) -> None:
        cutoff = time.time() - self.max_age_s
        for folder in self._root.iterdir():
            if folder.stat().st_mtime < cutoff:
                shutil.rmtree(folder, ignore_errors=True)


RESULT_FOLDERS = ResultFolders(RESULT_FOLDER_MAX_AGE_S)


class CacheSweeper:
    """Deletes what Gradio cached for one app (results, uploads) once older than
    ``max_age_s``: at most every ``every_s``, called by the requests, and all at exit.

    This replaces ``gr.Blocks(delete_cache=...)``, whose sweep (Gradio 6.31) iterates the
    live file sets that requests add to: under steady traffic it stops for good with
    "Set changed size during iteration" and the cache grows again (seen with
    benchmarks/app_soak.py). This one iterates snapshots.
    """

    def __init__(self, blocks: gr.Blocks, every_s: float, max_age_s: float):
        self.blocks, self.every_s, self.max_age_s = blocks, every_s, max_age_s
        self._next_sweep = 0.0
        self._lock = threading.Lock()
        atexit.register(self.sweep, -1)

    def maybe_sweep(self) -> None:
        if time.monotonic() < self._next_sweep or not self._lock.acquire(blocking=False):
            return
        try:
            self._next_sweep = time.monotonic() + self.every_s
            logger.debug("removed %d cached files", self.sweep(self.max_age_s))
        finally:
            self._lock.release()

    def sweep(self, max_age_s: float) -> int:
        """Delete the cached files older than ``max_age_s`` (and their emptied folders)."""
        keep = set().union(*(getattr(block, "keep_in_cache", set()) for block in self.blocks.blocks.values()))
        cache_roots = {self.blocks.GRADIO_CACHE, os.path.realpath(self.blocks.GRADIO_CACHE)}
        cutoff, removed = time.time() - max_age_s, 0
        for files in self.blocks.temp_file_sets:
            for path in files.copy() - keep:
                with contextlib.suppress(FileNotFoundError):
                    if os.lstat(path).st_ctime >= cutoff:
                        continue
                    os.remove(path)
                    removed += 1
                files.discard(path)
                folder = os.path.dirname(path)
                if folder not in cache_roots:  # Gradio's folder per content hash
                    with contextlib.suppress(OSError):
                        os.rmdir(folder)
        return removed


def save_results(outputs: dict[str, Image.Image]) -> tuple[dict[str, str], list[str]]:
    """({method: PNG the sliders show}, [lossless download per method]) in a new folder.

    The sliders get paths rather than PIL images: Gradio copies files into its cache
    atomically. Modes PNG cannot hold (CMYK, float) are shown as 8-bit RGB and
    downloaded as TIFF in their own mode.
    """
    folder = RESULT_FOLDERS.new()
    shown, downloads = {}, []
    for method, image in outputs.items():
        stem = folder / method.lower()
        shown[method] = str(stem.with_suffix(".png"))
        if image.mode in TIFF_MODES:
            fmt, suffix = file_format(image.mode)
            image.save(stem.with_suffix(suffix), fmt)
            downloads.append(str(stem.with_suffix(suffix)))
            to_rgb(image).save(shown[method])
        else:
            image.save(shown[method])
            downloads.append(shown[method])
    return shown, downloads


# ------------------------------------------------------------------ computation


@contextlib.contextmanager
def user_errors(path: str):
    """The library's ImageInputError as a gr.Error, naming "the upload" (not a temp path)."""
    try:
        yield
    except ImageInputError as err:
        raise gr.Error(str(err).replace(str(path), "the upload")) from err


def open_upload(path: str | None) -> tuple[Image.Image, list[str]]:
    """The upload, checked, and a note if it is animated."""
    if path is None:
        raise gr.Error("Upload an image first (or pick an example).")
    with user_errors(path):
        image = load_image(path, max_pixels=MAX_UPLOAD_PIXELS)
    frames = image.info["n_frames"]  # counted by load_image: the file is not opened again
    notes = [f"The upload is animated ({frames} frames): only the first frame was used."] if frames > 1 else []
    return image, notes


def mode_note(mode: str, benchmark: bool) -> list[str]:
    """What the app made of a mode that PNG (and the browser) cannot show."""
    if mode not in TIFF_MODES:
        return []
    if benchmark:
        return [f"The upload is {mode}: it was benchmarked as 8-bit RGB."]
    return [f"The upload is {mode}: the sliders show it as 8-bit RGB; the downloads keep {mode} (TIFF)."]


@gpu
def super_resolve(lr: Image.Image, force_tiling: bool, kind: str = CLEAN_DOWNSCALE,
                  progress=gr.Progress()) -> dict[str, tuple[Image.Image, float]]:
    """Every method (the models of input ``kind``) on the LR image: {method: (output, seconds)}."""
    w, h = lr.size
    if w * h > MAX_INPUT_PIXELS:
        raise gr.Error(f"The image is {w}x{h}; the limit is {MAX_INPUT_PIXELS / 1e6:.1f} MP of model input. "
                       "Downscale it first.")
    tile = TILE_SIZE if force_tiling or w * h > MAX_UNTILED_PIXELS else None
    models = _models(kind)
    scale = models[STRONGEST][0].scale
    start = time.perf_counter()
    results = {BICUBIC: (bicubic_upscale(lr, scale), time.perf_counter() - start)}
    for method, (model, _) in models.items():
        start = time.perf_counter()
        out = upscale(model, lr, tile=tile, progress=lambda done, total, m=method: progress(
            (done, total), desc=f"{m}: tile {done}/{total}"))
        results[method] = (out, time.perf_counter() - start)
    return results


def benchmark_degradation(kind: str) -> str | None:
    """The degradation benchmark mode applies for an input kind: the one the kind's HAT
    weights were trained for (None: the protocol's bicubic downscale)."""
    return BUNDLED[INPUT_KINDS[kind][STRONGEST]].degradation


def benchmark_input(image: Image.Image, scale: int, degradation: str | None = None) -> tuple[Image.Image, Image.Image]:
    """(HR, LR): the protocol's HR and its LR under ``degradation`` (None: bicubic; a
    preset: that realistic degradation, seed 0, the first image of the evaluation's
    sequence). The size is checked first (SSIM needs a window of LR pixels)."""
    min_side = scale * SSIM_WINDOW_SIZE
    if min(image.size) < min_side:
        raise gr.Error(f"Benchmark mode needs an image of at least {min_side}px per side; "
                       f"this one is {image.width}x{image.height}.")
    hr = prepare_hr(image, scale)
    return hr, make_lr(hr, scale, resolve_degradation(degradation)[1], seed=0, index=0)


def compare(image_path: str | None, mode: str, left: str, right: str, force_tiling: bool,
            kind: str = CLEAN_DOWNSCALE, progress=gr.Progress()):
    """The app's handler: (slider left|right, slider bicubic|best, table, downloads, note)."""
    if left == right:
        raise gr.Error("Pick two different methods to compare.")
    image, notes = open_upload(image_path)
    notes += mode_note(image.mode, mode == BENCHMARK_MODE)
    scale = _models(kind)[STRONGEST][0].scale
    degradation = benchmark_degradation(kind)
    hr, lr = benchmark_input(image, scale, degradation) if mode == BENCHMARK_MODE else (None, image)
    with user_errors(image_path):
        results = super_resolve(lr, force_tiling, kind, progress)
    rows = [[method, round(seconds, 3)] for method, (_, seconds) in results.items()]
    best = STRONGEST
    if hr is not None:
        scores = {method: score_image(out, hr, scale) for method, (out, _) in results.items()}
        for row in rows:
            row += [round(scores[row[0]]["psnr"], 2), round(scores[row[0]]["ssim"], 4)]
        best = max(METHODS[1:], key=lambda method: scores[method]["psnr"])
        notes.insert(0, f"Benchmark ({kind.lower()}): the upload ({hr.width}x{hr.height}) was degraded to "
                        f"{lr.width}x{lr.height} ({describe_lr(degradation, 0 if degradation else None)}) and "
                        f"super-resolved x{scale}; scores are against the original. Best: **{best}**.")
    else:
        notes.insert(0, f"Upscaled {lr.width}x{lr.height} → {lr.width * scale}x{lr.height * scale} (x{scale}) "
                        f"with the {kind.lower()} weights.")
    headers = ["method", "seconds"] + (["PSNR-Y (dB)", "SSIM-Y"] if hr is not None else [])
    shown, downloads = save_results({method: out for method, (out, _) in results.items()})
    return ((shown[left], shown[right]), (shown[BICUBIC], shown[best]),
            {"headers": headers, "data": rows}, downloads, "\n\n".join(notes))


# ------------------------------------------------------------------ UI


def example_images(dirs=EXAMPLE_DIRS) -> list[str]:
    """The example images (PNG, JPEG) of the first of ``dirs`` that has any (package, then checkout)."""
    for folder in dirs:
        examples = sorted(str(p) for p in Path(folder).glob("*") if p.suffix in (".png", ".jpg"))
        if examples:
            return examples
    return []


def example_rows(examples: list[str]) -> list[list[str]]:
    """[image, input kind] per example: the real-looking photos come with REAL_PHOTO."""
    return [[path, REAL_PHOTO if Path(path).name in REAL_PHOTO_EXAMPLES else CLEAN_DOWNSCALE] for path in examples]


def build_demo(cache_max_age_s: float = CACHE_MAX_AGE_S) -> gr.Blocks:
    examples = example_images()
    with gr.Blocks(title="ESPCN vs HAT super-resolution") as demo:
        gr.Markdown(
            "# ESPCN vs HAT vs bicubic\n"
            "A classic CNN (ESPCN) against a modern transformer (HAT) on x4 super-resolution. "
            "Say what your image is: a **clean downscale** (the study's weights, trained on bicubic "
            "downscaling) or a **real photo** (weights trained on blur, noise and JPEG). "
            "*Upscale* super-resolves your image; *Benchmark* treats it as the original, degrades it "
            "to match the choice (bicubic x4 down, or blur, noise and JPEG) and scores every method "
            "against it (PSNR / SSIM on Y)."
        )
        with gr.Row():
            with gr.Column(scale=1):
                image = UploadedImage(type="filepath", image_mode=None, label="Image",
                                      sources=["upload", "clipboard"])
                kind = gr.Radio(list(INPUT_KINDS), value=CLEAN_DOWNSCALE, label="The input is",
                                info="picks the weights (and benchmark mode's degradation)")
                mode = gr.Radio([UPSCALE_MODE, BENCHMARK_MODE], value=UPSCALE_MODE, label="Mode")
                with gr.Row():
                    left = gr.Dropdown(list(METHODS), value=METHODS[1], label="Slider left")
                    right = gr.Dropdown(list(METHODS), value=STRONGEST, label="Slider right")
                force_tiling = gr.Checkbox(
                    False, label=f"Tile ({TILE_SIZE}px tiles; automatic above {MAX_UNTILED_PIXELS // 1000}k pixels)")
                run = gr.Button("Run", variant="primary")
                if examples:
                    gr.Examples(example_rows(examples), inputs=[image, kind],
                                label="Examples (licences: examples/LICENSE.md)")
                weights = gr.Markdown()
            with gr.Column(scale=2):
                note = gr.Markdown()
                pair = gr.ImageSlider(label="Left vs right", format="png", type="filepath")
                best = gr.ImageSlider(label="Bicubic vs the best model", format="png", type="filepath")
                table = gr.Dataframe(label="Time per method (and scores in benchmark mode)", interactive=False)
                downloads = gr.File(label="Results (PNG; TIFF for CMYK and float images)", file_count="multiple")
        # Models load in main() before the server starts, or else on the first page view;
        # never at import (importing must stay fast and offline).
        demo.load(weights_note, None, weights)
        sweeper = CacheSweeper(demo, CACHE_SWEEP_EVERY_S, cache_max_age_s)

        def run_compare(image_path, mode, left, right, force_tiling, kind, progress=gr.Progress()):
            sweeper.maybe_sweep()
            return compare(image_path, mode, left, right, force_tiling, kind, progress)

        run.click(run_compare, [image, mode, left, right, force_tiling, kind], [pair, best, table, downloads, note],
                  api_name="compare", concurrency_limit=CONCURRENCY_LIMIT)
    demo.queue(max_size=QUEUE_MAX_SIZE, default_concurrency_limit=CONCURRENCY_LIMIT)
    return demo


demo = build_demo()


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="sr-models app", description="Launch the ESPCN vs HAT Gradio app.")
    parser.add_argument("--host", default=None,
                        help="address to listen on (default: $GRADIO_SERVER_NAME or 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default: $GRADIO_SERVER_PORT or 7860)")
    parser.add_argument("--share", action="store_true", help="also serve through a public Gradio share link")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    """Check the weights (stop with the reason if misconfigured), then serve the app."""
    args = parse_args(argv)
    check_weights()
    demo.launch(server_name=args.host, server_port=args.port, share=args.share,
                max_file_size=MAX_UPLOAD_FILE_SIZE)


if __name__ == "__main__":
    main()
