"""Checkpoint folders (``OUTPUT_DIR/checkpoint-STEP``): what this trainer writes and reads
itself, found, and pruned.

Accelerate's ``save_state`` writes the model (``model.safetensors``), the optimizer
(``optimizer.bin``), each process's RNG states (``random_states_N.pkl``) and, with fp16,
the gradient scaler (``scaler.pt``); its ``load_state`` reads them back with
``torch.load(weights_only=True)``. Everything else a resumed run needs is written here as
plain data, never pickled: the run state and every process's data position in
``training_state.json``, the EMA weights in ``ema.safetensors``. The LR schedule is not
stored at all: it is a function of the step and the current arguments.

Checkpoint folders are still trusted input: the optimizer and RNG files are pickles (read
with PyTorch's restricted unpickler); resume only from checkpoints you or your runs wrote.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import shutil
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from sr_models.training.errors import UsageError

CHECKPOINT_PREFIX = "checkpoint-"
STATE_FILE = "training_state.json"
EMA_FILE = "ema.safetensors"
#: Bumped when the meaning of STATE_FILE changes.
STATE_FORMAT = 1
#: The fields of a process's data position (``sr_models.training.data.LoaderState``) and its counts.
LOADER_KEYS = {"epoch", "index", "usable_in_epoch", "first_pass", "epochs_completed"}
FIRST_PASS_KEYS = {"usable", "corrupt", "too_small"}
#: Below this much free space a failed write is taken for a full disk (a checkpoint of even
#: the tiniest model needs more).
FULL_DISK_BYTES = 2**20


@dataclass
class RunState:
    """What a resumed run needs beside the model, optimizer and RNG states (JSON-able)."""

    step: int = 0  # optimizer steps done
    images_seen: int = 0  # training patches, all processes
    elapsed: float = 0.0  # wall-clock seconds of training, over all resumed segments
    skipped_steps: int = 0  # fp16 steps the gradient scaler skipped (overflow): the schedule did not advance
    world_size: int | None = None  # processes that wrote the checkpoint
    loaders: list[dict] = field(default_factory=list)  # one data.LoaderState per process
    last_metrics: dict | None = None
    #: How the run made its LR patches (``sr_models.protocol.Degradation.to_dict``); None in
    #: checkpoints written before --degradation existed (all of them bicubic).
    degradation: dict | None = None
    #: EMA updates made (their count sets the warm-up decay); None in checkpoints written
    #: before it was recorded, whose runs updated the EMA once per step.
    ema_updates: int | None = None
    #: Every validation of the run, oldest first: {"step", "wall_time_s" (the run's clock),
    #: one value per ``sr_models.metric_registry`` key}; empty in checkpoints written before
    #: it was recorded.
    validation_history: list[dict] = field(default_factory=list)

    @property
    def schedule_step(self) -> int:
        """Optimizer updates actually applied: where the LR schedule stands."""
        return self.step - self.skipped_steps


def write_state(folder: str | os.PathLike, state: RunState, ema_weights: dict[str, torch.Tensor] | None) -> None:
    """Write the run state (JSON) and the EMA weights (safetensors) into ``folder``."""
    folder = Path(folder)
    (folder / STATE_FILE).write_text(json.dumps({"format": STATE_FORMAT, **asdict(state)}, indent=2) + "\n")
    if ema_weights is not None:
        save_file({k: v.detach().cpu().contiguous() for k, v in ema_weights.items()}, str(folder / EMA_FILE))


def read_state(folder: str | os.PathLike) -> tuple[RunState, dict[str, torch.Tensor] | None]:
    """The run state and the EMA weights (None if the run had no EMA) of a checkpoint;
    UsageError (one line naming the file) for a missing, damaged or implausible one."""
    folder = Path(folder)
    path = folder / STATE_FILE
    if not path.is_file():
        raise UsageError(f"cannot resume from {folder}: it has no {STATE_FILE} (not a checkpoint of these scripts, "
                         "or one written by a version that pickled its state, which is not loaded)")
    try:
        raw = json.loads(path.read_text())
        if not isinstance(raw, dict) or raw.pop("format", None) != STATE_FORMAT:
            raise ValueError(f"unknown format (this version reads format {STATE_FORMAT})")
        state = _checked_state(raw)
    except (ValueError, TypeError, AttributeError) as err:
        raise UsageError(f"cannot resume from {folder}: {STATE_FILE} is damaged: {err}") from err
    ema_file = folder / EMA_FILE
    try:
        ema = load_file(str(ema_file)) if ema_file.is_file() else None
    except (SafetensorError, OSError) as err:
        raise UsageError(f"cannot resume from {folder}: {EMA_FILE} is damaged ({err})") from err
    return state, ema


def _whole(name: str, value, lowest: int = 0) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
        raise ValueError(f"{name!r} must be a whole number >= {lowest}, got {value!r}")


def _checked_loader(position) -> None:
    """A process's data position (``data.LoaderState`` as a dict) must hold counts only."""
    if not isinstance(position, dict) or not set(position) <= LOADER_KEYS:
        raise ValueError(f"'loaders' holds {position!r}, not a data position")
    for key, value in position.items():
        if key == "first_pass":
            if not isinstance(value, dict) or set(value) != FIRST_PASS_KEYS:
                raise ValueError(f"'loaders' holds first_pass {value!r}")
            for count in value.values():
                _whole("first_pass", count)
        else:
            _whole(key, value)


def _checked_state(raw: dict) -> RunState:
    """A RunState from the JSON, every field of the right kind and range (a step of "abc"
    or -100 would otherwise fail somewhere in the run, far from the file)."""
    unknown = sorted(set(raw) - {f.name for f in fields(RunState)})
    if unknown:
        raise ValueError(f"unknown keys {', '.join(map(repr, unknown))}")
    state = RunState(**raw)
    for name in ("step", "images_seen", "skipped_steps"):
        _whole(name, getattr(state, name))
    if state.skipped_steps > state.step:
        raise ValueError(f"'skipped_steps' {state.skipped_steps} is more than 'step' {state.step}")
    if isinstance(state.elapsed, bool) or not isinstance(state.elapsed, (int, float)) \
            or not (math.isfinite(state.elapsed) and state.elapsed >= 0):
        raise ValueError(f"'elapsed' must be seconds >= 0, got {state.elapsed!r}")
    for name, lowest in (("world_size", 1), ("ema_updates", 0)):
        if getattr(state, name) is not None:
            _whole(name, getattr(state, name), lowest)
    if not isinstance(state.loaders, list):
        raise ValueError(f"'loaders' must be a list, got {state.loaders!r}")
    for position in state.loaders:
        _checked_loader(position)
    if not isinstance(state.validation_history, list) or not all(
            isinstance(entry, dict) for entry in state.validation_history):
        raise ValueError(f"'validation_history' must be a list of objects, got {state.validation_history!r}")
    for name in ("last_metrics", "degradation"):
        if getattr(state, name) is not None and not isinstance(getattr(state, name), dict):
            raise ValueError(f"{name!r} must be an object, got {getattr(state, name)!r}")
    return state


def describe_write_error(err: Exception, output_dir: str | os.PathLike) -> str:
    """A failed checkpoint write in words: "no space left on ..." when the disk is full.
    torch.save reports a full disk as a RuntimeError without errno ("file write failed"), so
    the free space is asked as well."""
    try:
        free = shutil.disk_usage(output_dir).free
    except OSError:
        free = None
    full = getattr(err, "errno", None) == errno.ENOSPC or (free is not None and free < FULL_DISK_BYTES)
    if full:
        space = f" ({free / 2**20:.1f} MiB free)" if free is not None else ""
        return f"no space left on the device of {output_dir}{space}"
    detail = str(err).splitlines()[0] if str(err) else ""
    return f"{type(err).__name__}: {detail}"


def checkpoint_path(output_dir: str | os.PathLike, step: int, *, partial: bool = False) -> Path:
    """Where the checkpoint of ``step`` lives; ``partial``: the name it is written under."""
    return Path(output_dir) / f"{'.tmp-' if partial else ''}{CHECKPOINT_PREFIX}{step}"


def _checkpoints(output_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """Complete checkpoint folders, oldest first (not the partial ``.tmp-`` ones, nor files)."""
    found = []
    for path in Path(output_dir).glob(CHECKPOINT_PREFIX + "*"):
        m = re.fullmatch(re.escape(CHECKPOINT_PREFIX) + r"(\d+)", path.name)
        if m and path.is_dir():
            found.append((int(m.group(1)), path))
    return sorted(found)


def find_latest_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    found = _checkpoints(output_dir)
    return found[-1][1] if found else None


def prune_checkpoints(output_dir: str | os.PathLike, keep: int) -> list[Path]:
    """Remove all but the newest ``keep`` checkpoints; returns the removed folders."""
    removed = [path for _, path in _checkpoints(output_dir)[:-keep]]
    for path in removed:
        shutil.rmtree(path)
    return removed
