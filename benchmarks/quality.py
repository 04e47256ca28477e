"""Quality tables of the study: every held-out set scored under the protocol and, when
asked, under a seeded realistic degradation, by the library's one scorer
(sr_models.evaluation). scripts.finalize scores the bundled weights with the same code."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from sr_models.evaluation import evaluate, find_images


def named_folder(value: str) -> tuple[str, Path]:
    """``NAME=DIR`` (NAME a word: letters, digits, ``_.-``) or a plain ``DIR``, named
    after its folder: the argparse type of --hr (and of scripts.finalize --held-out)."""
    name, sep, folder = value.partition("=")
    if sep and re.fullmatch(r"[\w.-]+", name):
        if not folder:
            raise argparse.ArgumentTypeError(f"expected NAME=DIR, got {value!r} (no folder)")
        return name, Path(folder)
    return Path(value).resolve().name, Path(value)


def score_sets(models: dict, sets: list[tuple[str, Path]], *, degradations: list[str | None], seed: int = 0,
               scale: int = 4, hr_size: int | None = 256, limit: int | None = None) -> list[dict]:
    """One quality table per (set, degradation), set by set: each is ``Evaluation.to_json()``
    (summary, per image, degradation, seed) with the set's ``name`` and ``hr_dir``.
    ``degradations``: None for the protocol, or PRESETS names."""
    names = [name for name, _ in sets]
    if len(set(names)) != len(names):
        raise SystemExit(f"two held-out sets share a name in {names}; name them with NAME=DIR")
    tables = []
    for name, folder in sets:
        hr_paths = find_images(folder)[:limit]
        if not hr_paths:
            raise SystemExit(f"no images in {folder}")
        for degradation in degradations:
            result = evaluate(models, hr_paths, scale=scale, hr_size=hr_size, degradation=degradation, seed=seed,
                              device="cpu")
            tables.append({"name": name, "hr_dir": str(folder), **result.to_json()})
    return tables


def table_key(table: dict) -> str:
    """A file-name-safe key of a quality table: the set's name, plus the degradation."""
    key = table["name"] if table["degradation"] is None else f"{table['name']}_{table['degradation']}"
    return re.sub(r"[^\w.-]+", "-", key)
