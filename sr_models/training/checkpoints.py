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

import json
import os
import re
import shutil
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from sr_models.training.errors import UsageError

CHECKPOINT_PREFIX = "checkpoint-"
STATE_FILE = "training_state.json"
EMA_FILE = "ema.safetensors"
#: Bumped when the meaning of STATE_FILE changes.
STATE_FORMAT = 1


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
    #: How the run made its LR patches (``sr_models.training.pairs.Degradation.to_dict``); None in
    #: checkpoints written before --degradation existed (all of them bicubic).
    degradation: dict | None = None

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
    """The run state and the EMA weights (None if the run had no EMA) of a checkpoint."""
    folder = Path(folder)
    path = folder / STATE_FILE
    if not path.is_file():
        raise UsageError(f"cannot resume from {folder}: it has no {STATE_FILE} (not a checkpoint of these scripts, "
                         "or one written by a version that pickled its state, which is not loaded)")
    try:
        raw = json.loads(path.read_text())
        if raw.pop("format", None) != STATE_FORMAT:
            raise ValueError(f"unknown format (this version reads format {STATE_FORMAT})")
        known = {f.name for f in fields(RunState)}
        state = RunState(**{k: v for k, v in raw.items() if k in known})
    except (ValueError, TypeError, AttributeError) as err:
        raise UsageError(f"cannot resume from {folder}: {STATE_FILE} is damaged: {err}") from err
    ema = load_file(str(folder / EMA_FILE)) if (folder / EMA_FILE).is_file() else None
    return state, ema


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
