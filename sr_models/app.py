"""ESPCN vs HAT vs bicubic, side by side: the sr-models Gradio app.

Run ``sr-models app``, ``python -m sr_models.app`` (needs the ``[app]`` extra) or, in a
source checkout or a Hugging Face Space, ``python app.py``.

The user says what the input is. *Clean downscale*: the study's weights
(``sr_models.bundled.DEFAULT_MODELS``, trained on the protocol's bicubic LR). *Real photo*:
the same architectures trained on realistic degradations (``REAL_PHOTO_MODELS``: blur,
noise, JPEG), for the photos people have, blended towards the clean weights by a denoise
strength. *Upscale* super-resolves the upload; *Benchmark* treats it as the HR original,
degrades it as the chosen input kind says and scores every method against it.

The app's parts, one job each:

- :mod:`sr_models.app_ui`: the page and its events;
- :mod:`sr_models.app_run`: the handler, a generator that shows each result as it is ready;
- :mod:`sr_models.app_results`: a run's files and the slider that picks among them;
- :mod:`sr_models.app_models`: the models of each input kind, blends, precision
  (:mod:`sr_models.app_precision`);
- :mod:`sr_models.app_limits`: the size limits, tiles, scoring in strips;
- :mod:`sr_models.app_cache`: files on disk, swept by age and size;
- :mod:`sr_models.app_components`, :mod:`sr_models.app_errors`: controls that check what
  they receive, and user mistakes answered in one line;
- :mod:`sr_models.app_examples`, :mod:`sr_models.app_choices`: the examples, the vocabulary.

This module builds the app (``demo``, at import, without loading any model) and serves it.
Memory and disk stay bounded: docs/app.md, measured by ``benchmarks/app_memory.py`` and
``benchmarks/app_soak.py``.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal

import gradio as gr
from fastapi.exceptions import RequestValidationError

from .app_cache import CacheSweeper, repeat_in_background
from .app_components import AppBlocks, short_validation_error
from .app_examples import example_images
from .app_models import check_weights
from .app_run import RESULT_FOLDERS
from .app_ui import layout

__all__ = ["build_demo", "demo", "example_images", "main", "server_options"]

#: Largest upload file the server accepts (Gradio's ``max_file_size``): the largest image
#: the app takes (MAX_BENCHMARK_PIXELS) stored uncompressed as 16-bit RGBA is 33.5 MB.
MAX_UPLOAD_FILE_SIZE = "40mb"
QUEUE_MAX_SIZE = 16
#: Runs at once: each may hold a HAT forward pass (docs/app.md, "Memory").
CONCURRENCY_LIMIT = 2
#: Results and uploads in Gradio's cache are deleted once older than CACHE_MAX_AGE_S (the
#: downloads, and the slider's choices, stay available ten minutes), and the oldest first
#: while the cache holds more than CACHE_MAX_BYTES (the worst request's files, upload and
#: five PNGs of up to 16.8 MP, are ~0.3 GB), looked at every CACHE_SWEEP_EVERY_S: beyond
#: the budget the cache grows by at most what is uploaded in that time.
CACHE_SWEEP_EVERY_S, CACHE_MAX_AGE_S, CACHE_MAX_BYTES = 5, 600, 1024**3


def build_demo(cache_max_age_s: float = CACHE_MAX_AGE_S, cache_max_bytes: float = CACHE_MAX_BYTES) -> gr.Blocks:
    """The app, its cache swept in the background (:mod:`sr_models.app_cache`)."""
    with AppBlocks(title="ESPCN vs HAT super-resolution") as demo:
        layout(demo, CONCURRENCY_LIMIT)
    demo.queue(max_size=QUEUE_MAX_SIZE, default_concurrency_limit=CONCURRENCY_LIMIT)
    # On a timer, not per request: uploads arrive without requests.
    sweeper = CacheSweeper(demo, cache_max_age_s, cache_max_bytes)
    repeat_in_background(CACHE_SWEEP_EVERY_S, sweeper.sweep_due, RESULT_FOLDERS.prune)
    return demo


demo = build_demo()


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="sr-models app", description="Launch the ESPCN vs HAT Gradio app.")
    parser.add_argument("--host", default=None,
                        help="address to listen on (default: $GRADIO_SERVER_NAME or 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default: $GRADIO_SERVER_PORT or 7860)")
    parser.add_argument("--share", action="store_true", help="also serve through a public Gradio share link")
    return parser.parse_args(argv)


def server_options() -> dict:
    """The options of ``demo.launch()`` that bound what clients can send (a new dict each
    time: Gradio adds to ``app_kwargs``)."""
    return {"max_file_size": MAX_UPLOAD_FILE_SIZE,
            "app_kwargs": {"exception_handlers": {RequestValidationError: short_validation_error}}}


def started_message(local_url: str, share_url: str | None, share: bool, on_space: bool = False) -> str:
    """What the app prints once it serves: its addresses, in this command's words (Gradio's own
    hint names ``launch(share=True)``, which a user of this command does not write; a Space
    is public already)."""
    if share_url:
        return f"sr-models app: serving on {local_url} and {share_url} (a public link, up to a week)"
    if share and not on_space:
        return f"sr-models app: serving on {local_url}; the public link could not be made (see above)"
    return f"sr-models app: serving on {local_url}" + ("" if on_space else " (add --share for a public link)")


def main(argv=None) -> None:
    """Check the weights (stop with the reason if misconfigured), then serve the app."""
    args = parse_args(argv)
    # The app's own lines (a refused upload, a model run in float32): one each, at INFO.
    logging.basicConfig(format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("sr_models").setLevel(logging.INFO)
    # Docker, systemd and Spaces stop a process with SIGTERM: stop as on Ctrl-C (Gradio
    # closes the server on KeyboardInterrupt; the exit handlers then remove the app's files).
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    check_weights()
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, quiet=True,
                prevent_thread_lock=True, **server_options())
    print(started_message(demo.local_url, demo.share_url, args.share, on_space=bool(os.environ.get("SPACE_ID"))),
          flush=True)
    demo.block_thread()


if __name__ == "__main__":
    main()
