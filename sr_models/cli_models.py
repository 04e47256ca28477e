"""The models a command runs: the names its help texts list, loading with the run options
checked, and a model's part of an output name. The library (torch) is imported inside the
functions only (see sr_models.cli)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path


#: ``upscale``'s model: the study's HAT, ahead of ESPCN on every benchmark (docs/study.md).
DEFAULT_UPSCALE_MODEL = "hat-faces"


def help_names() -> dict[str, str]:
    """The placeholders of help texts and their text, read from sr_models.bundled (the one
    list of bundled weights, without torch), so that a help text never goes stale."""
    from . import bundled

    return {"{bundled}": ", ".join(bundled.BUNDLED), "{default_models}": ", ".join(bundled.DEFAULT_MODELS)}


def load_models(names: list[str], args: argparse.Namespace, scale: int | None = None) -> dict:
    """{name: model} for ``names``, then the device, precision and tiling checked once,
    before any image (usage errors: exit 2)."""
    from .loading import load_model

    models = {name: load_model(name, scale=scale, random_weights=args.random_weights) for name in names}
    check_run_options(args, models.values())
    return models


def check_run_options(args: argparse.Namespace, models) -> None:
    from .pipeline import autocast_context, check_tiling, resolve_device

    autocast_context(resolve_device(args.device), args.dtype)
    for model in models:
        check_tiling(model, args.tile, args.tile_overlap)


def model_tag(name: str) -> str:
    """A model's part of an output name: a bundled name or preset as it is, a folder or a
    checkpoint file by its own name (``weights/hat-small-faces-x4/`` -> ``hat-small-faces-x4``),
    a repo id by its name (``you/hat-x4`` -> ``hat-x4``); characters other than letters,
    digits, ``.``, ``_`` and ``-`` become ``-``."""
    path = Path(name)
    if path.exists():
        path = path.resolve()  # "." and ".." have a name once resolved
        tag = path.stem if path.is_file() else path.name
    else:
        tag = path.name
    return re.sub(r"[^\w.-]+", "-", tag)
