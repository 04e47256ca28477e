"""The app's page: its controls, where the results go, and which event does what.

- **Run** calls :func:`sr_models.app_run.compare` (the API's ``/compare``), whose results
  arrive one by one into the hidden results gallery, with one progress indicator (on the
  slider).
- The slider is a view of the results: a change of the results or of either dropdown
  re-picks its two images (:func:`sr_models.app_results.show_pair`), with no model run.
- The input kind and the mode set what the dropdowns offer and whether the denoise
  strength shows; no model runs either.
- Each example sets the image, the input kind and the mode; its results are cached at its
  first click (Gradio's lazy example caching) and shown from the cache afterwards.
"""

from __future__ import annotations

import gradio as gr

from .app_cache import examples_cache
from .app_choices import CLEAN_DOWNSCALE, MODES, REAL_PHOTO, UPSCALE_MODE
from .app_components import ChoiceDropdown, ChoiceRadio, FlagCheckbox, RangeSlider, UploadedImage
from .app_examples import example_images, example_rows
from .app_limits import MAX_UNTILED_PIXELS, TILE_SIZE
from .app_models import BICUBIC_LABEL, DENOISE_STRENGTH, INPUT_KINDS, weights_note
from .app_results import show_pair, slider_choices
from .app_run import compare

INTRO = (
    "# ESPCN vs HAT vs bicubic\n"
    "A classic CNN (ESPCN) against a modern transformer (HAT) on x4 super-resolution. Say what your "
    "image is: a **clean downscale** (the study's weights, trained on bicubic downscaling) or a **real "
    "photo** (weights trained on blur, noise and JPEG). *Upscale* super-resolves your image; *Benchmark* "
    "treats it as the original, degrades it to match the choice (bicubic x4 down, or blur, noise and JPEG) "
    "and scores every method against it (PSNR, SSIM and MS-SSIM on Y). Results appear as each method finishes; the "
    "dropdowns under the slider switch between them instantly."
)
#: The slider's sides when the page opens: the study's question, what the transformer adds
#: over the baseline.
DEFAULT_PAIR = (BICUBIC_LABEL, "HAT")
#: A denoise strength is picked in steps of this size.
STRENGTH_STEP = 0.05


def _pick(value: str, choices: list[str], default: str) -> str:
    """``value`` where the choices still offer it, else ``default`` (else the last choice)."""
    if value in choices:
        return value
    return default if default in choices else choices[-1]


def controls_for(mode: str, kind: str, left: str, right: str):
    """(left, right, strength) for a mode and input kind: the dropdowns offer what such a run
    shows, keeping each side's choice where they can; the strength shows for real photos."""
    choices = slider_choices(mode, kind)
    return (ChoiceDropdown(choices=choices, value=_pick(left, choices, DEFAULT_PAIR[0])),
            ChoiceDropdown(choices=choices, value=_pick(right, choices, DEFAULT_PAIR[1])),
            RangeSlider(visible=kind == REAL_PHOTO))


def reveal():
    """Show a component hidden until there is something in it (the table: no empty one before a run)."""
    return gr.update(visible=True)


def _inputs_column():
    """The left column's controls: (image, kind, strength, mode, force_tiling, run)."""
    image = UploadedImage(type="filepath", image_mode=None, label="Image", sources=["upload", "clipboard"])
    kind = ChoiceRadio(list(INPUT_KINDS), value=CLEAN_DOWNSCALE, label="The input is",
                       info="picks the weights (and Benchmark mode's degradation)")
    strength = RangeSlider(0, 1, value=DENOISE_STRENGTH, step=STRENGTH_STEP, label="Denoise strength",
                           info="1: the real-photo weights as trained; 0: the clean weights they started from "
                                "(more detail kept, and more noise). Applies at the next Run.", visible=False)
    mode = ChoiceRadio(list(MODES), value=UPSCALE_MODE, label="Mode")
    force_tiling = FlagCheckbox(
        False, label=f"Tile ({TILE_SIZE}px tiles; automatic above {MAX_UNTILED_PIXELS // 1000}k pixels)")
    run = gr.Button("Run", variant="primary")
    return image, kind, strength, mode, force_tiling, run


def _results_column():
    """The right column: (note, status, slider, left, right, table, downloads, results)."""
    note = gr.Markdown(elem_id="note")
    status = gr.Markdown(min_height=40, elem_id="status")  # the run's one progress indicator
    slider = gr.ImageSlider(label="left | right", format="png", type="filepath", elem_id="slider")
    choices = slider_choices(UPSCALE_MODE, CLEAN_DOWNSCALE)
    with gr.Row():
        left = ChoiceDropdown(choices, value=_pick(DEFAULT_PAIR[0], choices, DEFAULT_PAIR[0]), label="Slider left")
        right = ChoiceDropdown(choices, value=_pick(DEFAULT_PAIR[1], choices, DEFAULT_PAIR[1]), label="Slider right")
    table = gr.Dataframe(label="Time per method (and scores in Benchmark mode)", interactive=False, visible=False)
    downloads = gr.File(label="Results (PNG; TIFF for CMYK and float images)", file_count="multiple",
                        interactive=False)
    results = gr.Gallery(type="filepath", format="png", visible=False)  # the run's images, for the slider
    return note, status, slider, left, right, table, downloads, results


def _examples(image, kind, mode, outputs) -> None:
    """The examples, each setting the image, input kind and mode; results cached at first click."""
    examples = example_images()
    if examples:
        with examples_cache():
            gr.Examples(example_rows(examples), inputs=[image, kind, mode], outputs=outputs, fn=compare,
                        cache_examples=True, cache_mode="lazy", label="Examples (licences: examples/LICENSE.md)")


def layout(demo: gr.Blocks, concurrency_limit: int) -> None:
    """The page's components and events, built inside ``demo``."""
    gr.Markdown(INTRO)
    with gr.Row():
        with gr.Column(scale=1) as controls:
            image, kind, strength, mode, force_tiling, run = _inputs_column()
        with gr.Column(scale=2):
            note, status, slider, left, right, table, downloads, results = _results_column()
    outputs = [results, table, downloads, note, status]
    with controls:
        _examples(image, kind, mode, outputs)
        weights = gr.Markdown()
    # Models load in main() before the server starts, or else on the first page view;
    # never at import (importing must stay fast and offline).
    demo.load(weights_note, None, weights, api_visibility="private")
    run.click(compare, [image, kind, mode, strength, force_tiling], outputs, api_name="compare",
              concurrency_limit=concurrency_limit, concurrency_id="compare", show_progress_on=[status])
    # Instant: no queue (a long queue of runs must not delay them), no progress.
    gr.on([results.change, left.change, right.change], show_pair, [results, left, right], slider, queue=False,
          show_progress="hidden", api_visibility="private")
    results.change(reveal, None, table, queue=False, show_progress="hidden", api_visibility="private")
    gr.on([mode.change, kind.change], controls_for, [mode, kind, left, right], [left, right, strength], queue=False,
          show_progress="hidden", api_visibility="private")
