"""How a run names local things in what it publishes (the model card, README.md,
training_facts.json, config.json): never by an absolute path, which tells of the machine
(user names, mount points, temporary folders), and never by the machine's own command line.

A local path is named relative to the working folder when it lies inside it, else by its
own name; a Hub id (a dataset or weights that are not a local path) is named as it is.
"""

from __future__ import annotations

import argparse
import os
import shlex
from pathlib import Path

#: Flags whose value may be a local path (the others are numbers, choices, ids or URLs).
PATH_FLAGS = ("train_data_dir", "validation_data_dir", "output_dir", "logging_dir", "resume_from_checkpoint",
              "dataset_name", "pretrained_model_name_or_path", "degradation_config")


def public_path(value: str | os.PathLike) -> str:
    """A local path as published: as given when relative and inside the working folder
    (symbolic links not followed: they are the machine's), else relative to the working
    folder if inside it, else its name."""
    path = Path(os.path.normpath(Path(value).expanduser()))
    if not path.is_absolute() and path.parts[:1] != ("..",):
        return path.as_posix()
    absolute = Path(os.path.abspath(path))
    try:
        return absolute.relative_to(Path.cwd()).as_posix() or "."
    except ValueError:
        return absolute.name or "(a local folder)"


def is_local(value: str | os.PathLike) -> bool:
    """Whether ``value`` names a local path (else it is a Hub id or a preset name)."""
    text = os.path.expanduser(os.fspath(value))
    return os.path.isabs(text) or Path(text).exists()


def public_source(value: str | os.PathLike) -> str:
    """A value that is a local path or a Hub id (or a preset name): paths as
    :func:`public_path` names them, anything else as given."""
    return public_path(value) if is_local(value) else os.fspath(value)


def _flag_words(dest: str, value) -> list[str]:
    """The words that give ``dest`` its ``value`` on the command line."""
    if isinstance(value, bool):
        # store_true flags, and --no_x for an option that is on by default (--no_ema_warmup)
        return [f"--{dest}"] if value else [f"--no_{dest}"]
    values = value if isinstance(value, (list, tuple)) else [value]
    if dest in PATH_FLAGS and value != "latest":
        values = [public_source(v) for v in values]
    return [f"--{dest}", *map(str, values)]


def public_command(parser: argparse.ArgumentParser, args: argparse.Namespace, module: str) -> str:
    """The training command as published: the script as an installed module and every flag
    whose value differs from its default, local paths named by :func:`public_path`.
    Launcher options (the accelerate config file, processes) are the machine's and left out.
    Call it on the freshly parsed ``args``, before any check fills in computed values."""
    words = ["accelerate", "launch", "-m", module]
    for dest, value in vars(args).items():
        if value != parser.get_default(dest) and value is not None:
            words += _flag_words(dest, value)
    return shlex.join(words)
