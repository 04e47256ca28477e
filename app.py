"""ESPCN vs HAT vs bicubic, side by side: the sr-models Gradio app (a Hugging Face Space as is).

Run ``python app.py``. Weights: the repo ids (or folders) in ``SR_ESPCN_MODEL`` /
``SR_HAT_MODEL``; when unset or unreachable, the weights bundled in ``weights/``.

Two modes. *Upscale* super-resolves the upload. *Benchmark* treats the upload as the HR
original, degrades it with the project's protocol (PIL bicubic x4 down), super-resolves
it with every model and scores each against the original (PSNR / SSIM on Y).
"""

from __future__ import annotations

import functools
import logging
import tempfile
import time
from pathlib import Path

import gradio as gr
from PIL import Image, UnidentifiedImageError

from sr_models import ImageInputError, upscale
from sr_models.evaluation import prepare_hr
from sr_models.loading import load_bundled
from sr_models.metrics import degrade, psnr, ssim
from sr_models.pipeline import load_image

try:  # ZeroGPU Spaces: run the heavy function on a GPU; a no-op everywhere else.
    import spaces

    gpu = spaces.GPU
except ImportError:
    def gpu(fn):
        return fn

logger = logging.getLogger(__name__)

EXAMPLES_DIR = Path(__file__).parent / "examples"
BICUBIC, ESPCN_NAME, HAT_NAME = "Bicubic", "ESPCN", "HAT"
METHODS = (BICUBIC, ESPCN_NAME, HAT_NAME)
BUNDLED_NAMES = {ESPCN_NAME: "espcn-faces", HAT_NAME: "hat-faces"}
UPSCALE_MODE, BENCHMARK_MODE = "Upscale", "Benchmark"

#: Inputs up to this many LR pixels run in one piece; above it they are tiled automatically.
MAX_UNTILED_PIXELS = 256 * 256
#: Inputs above this many pixels are refused with a message (the model input, i.e. the LR).
MAX_INPUT_PIXELS = 1024 * 1024
#: Tile side (LR pixels) when tiling.
TILE_SIZE = 128
QUEUE_MAX_SIZE = 16
CONCURRENCY_LIMIT = 2


class UploadedImage(gr.Image):
    """gr.Image whose unreadable uploads raise gr.Error (gr.Image raises a bare exception)."""

    is_template = True  # same front end as gr.Image

    def preprocess(self, payload):
        try:
            return super().preprocess(payload)
        except (UnidentifiedImageError, OSError, ValueError) as err:
            raise gr.Error(f"The upload is not a readable image ({type(err).__name__}).") from err


@functools.cache
def get_models() -> dict[str, tuple]:
    """(model, source) per method, loaded once per process."""
    return {method: load_bundled(name) for method, name in BUNDLED_NAMES.items()}


def weights_note() -> str:
    lines = [f"- **{method}**: {source} (x{model.scale}, {model.num_parameters:,} parameters)"
             for method, (model, source) in get_models().items()]
    return "Weights in use:\n" + "\n".join(lines)


def _open_upload(path: str | None) -> Image.Image:
    if path is None:
        raise gr.Error("Upload an image first (or pick an example).")
    try:
        return load_image(path, max_pixels=MAX_INPUT_PIXELS * 16)
    except ImageInputError as err:
        raise gr.Error(str(err).replace(str(path), "the upload")) from err


def bicubic(image: Image.Image, scale: int) -> Image.Image:
    """PIL bicubic, the protocol's baseline, for any upload mode (palette and 1-bit images
    would be resized with nearest neighbour otherwise)."""
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif image.mode == "1":
        image = image.convert("L")
    return image.resize((image.width * scale, image.height * scale), Image.BICUBIC)


@gpu
def super_resolve(lr: Image.Image, force_tiling: bool, progress=gr.Progress()) -> dict[str, tuple[Image.Image, float]]:
    """Every method on the LR image: {method: (output, seconds)}."""
    w, h = lr.size
    if w * h > MAX_INPUT_PIXELS:
        raise gr.Error(f"The image is {w}x{h}; the limit is {MAX_INPUT_PIXELS / 1e6:.1f} MP of model input. "
                       "Downscale it first.")
    tile = TILE_SIZE if force_tiling or w * h > MAX_UNTILED_PIXELS else None
    models = get_models()
    scale = models[HAT_NAME][0].scale
    results = {}
    start = time.perf_counter()
    results[BICUBIC] = (bicubic(lr, scale), time.perf_counter() - start)
    for method in (ESPCN_NAME, HAT_NAME):
        model = models[method][0]
        start = time.perf_counter()
        out = upscale(model, lr, tile=tile, progress=lambda done, total, m=method: progress(
            (done, total), desc=f"{m}: tile {done}/{total}"))
        results[method] = (out, time.perf_counter() - start)
    return results


def _save_results(outputs: dict[str, Image.Image]) -> dict[str, str]:
    """PNG file of each result in a folder of this request only (never a shared path).

    The sliders get these paths rather than PIL images: Gradio caches a PIL output under
    its content hash with a plain write, so two concurrent requests with the same result
    could serve each other a half-written file; files are copied into the cache atomically.
    """
    folder = Path(tempfile.mkdtemp(prefix="sr-models-"))
    paths = {}
    for method, image in outputs.items():
        paths[method] = str(folder / f"{method.lower()}.png")
        image.save(paths[method])
    return paths


def compare(image_path: str | None, mode: str, left: str, right: str, force_tiling: bool,
            progress=gr.Progress()):
    """The app's handler: (slider left|right, slider bicubic|best, table rows, downloads, note)."""
    if left == right:
        raise gr.Error("Pick two different methods to compare.")
    image = _open_upload(image_path)
    scale = get_models()[HAT_NAME][0].scale
    hr = None
    if mode == BENCHMARK_MODE:
        hr = prepare_hr(image, scale)
        if min(hr.size) < scale * 11:
            raise gr.Error(f"Benchmark mode needs an image of at least {scale * 11}px per side.")
        lr = degrade(hr, scale)
    else:
        lr = image
    results = super_resolve(lr, force_tiling, progress)
    outputs = {method: out for method, (out, _) in results.items()}
    rows = []
    for method, (out, seconds) in results.items():
        row = [method, round(seconds, 3)]
        if hr is not None:
            row += [round(psnr(out, hr, crop_border=scale), 2), round(ssim(out, hr, crop_border=scale), 4)]
        rows.append(row)
    if hr is not None:
        best = max((ESPCN_NAME, HAT_NAME), key=lambda m: psnr(outputs[m], hr, crop_border=scale))
        note = (f"Benchmark: the upload ({hr.width}x{hr.height}) was degraded to {lr.width}x{lr.height} "
                f"and super-resolved x{scale}; scores are against the original. Best: **{best}**.")
    else:
        best = HAT_NAME
        note = f"Upscaled {lr.width}x{lr.height} → {lr.width * scale}x{lr.height * scale} (x{scale})."
    headers = ["method", "seconds"] + (["PSNR-Y (dB)", "SSIM-Y"] if hr is not None else [])
    files = _save_results(outputs)
    return ((files[left], files[right]), (files[BICUBIC], files[best]),
            {"headers": headers, "data": rows}, list(files.values()), note)


def build_demo() -> gr.Blocks:
    examples = sorted(str(p) for p in EXAMPLES_DIR.glob("*.png"))
    with gr.Blocks(title="ESPCN vs HAT super-resolution") as demo:
        gr.Markdown(
            "# ESPCN vs HAT vs bicubic\n"
            "A classic CNN (ESPCN) against a modern transformer (HAT) on x4 super-resolution. "
            "*Upscale* super-resolves your image; *Benchmark* treats it as the original, degrades it "
            "(bicubic x4 down) and scores every method against it (PSNR / SSIM on Y)."
        )
        with gr.Row():
            with gr.Column(scale=1):
                image = UploadedImage(type="filepath", image_mode=None, label="Image",
                                      sources=["upload", "clipboard"])
                mode = gr.Radio([UPSCALE_MODE, BENCHMARK_MODE], value=UPSCALE_MODE, label="Mode")
                with gr.Row():
                    left = gr.Dropdown(list(METHODS), value=ESPCN_NAME, label="Slider left")
                    right = gr.Dropdown(list(METHODS), value=HAT_NAME, label="Slider right")
                force_tiling = gr.Checkbox(
                    False, label=f"Tile ({TILE_SIZE}px tiles; automatic above {MAX_UNTILED_PIXELS // 1000}k pixels)")
                run = gr.Button("Run", variant="primary")
                if examples:
                    gr.Examples(examples, inputs=image, label="Examples (public domain)")
                weights = gr.Markdown()
            with gr.Column(scale=2):
                note = gr.Markdown()
                pair = gr.ImageSlider(label="Left vs right", format="png", type="filepath")
                best = gr.ImageSlider(label="Bicubic vs the best model", format="png", type="filepath")
                table = gr.Dataframe(label="Time per method (and scores in benchmark mode)", interactive=False)
                downloads = gr.File(label="Results (PNG)", file_count="multiple")
        # Models load on the first page view, not at import (a Space must start fast and
        # must not download at import time).
        demo.load(weights_note, None, weights)
        run.click(compare, [image, mode, left, right, force_tiling], [pair, best, table, downloads, note],
                  concurrency_limit=CONCURRENCY_LIMIT)
    demo.queue(max_size=QUEUE_MAX_SIZE, default_concurrency_limit=CONCURRENCY_LIMIT)
    return demo


demo = build_demo()

if __name__ == "__main__":
    demo.launch()
