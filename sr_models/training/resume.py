"""Resuming a run (``--resume_from_checkpoint``): which checkpoint, whether it fits this run
(EMA, degradation, random-number states, step), and loading it into the model, optimizer,
RNGs and EMA. Every reason not to resume is one line naming the checkpoint and the file.

Accelerate's ``load_state`` skips random-number states it cannot read with an INFO line
(which the trainer does not show): the run goes on, no longer exact. They are checked here
first, and a damaged one refuses the resume unless ``--allow_inexact_resume``.
"""

from __future__ import annotations

import logging
import pickle
import random
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError

from sr_models.training import checkpoints, pairs
from sr_models.training.errors import UsageError

logger = logging.getLogger("train")

#: The pickles Accelerate's ``save_state`` writes beside the random-number states.
PICKLED_FILES = ("optimizer.bin", "scaler.pt")
#: Errors that reading a damaged or foreign checkpoint file raises.
LOAD_ERRORS = (OSError, RuntimeError, KeyError, ValueError, EOFError, pickle.UnpicklingError, SafetensorError)


def find_checkpoint(args) -> Path | None:
    """The folder ``--resume_from_checkpoint`` names ('latest': the newest in --output_dir), or None."""
    arg = args.resume_from_checkpoint
    if arg == "latest":
        path = checkpoints.find_latest_checkpoint(args.output_dir)
        if path is None:
            logger.info("no checkpoint in %s: starting a new run", args.output_dir)
        return path
    return Path(arg) if arg else None


def resume(args, accelerator, ema) -> tuple[checkpoints.RunState, str | None]:
    """The run state of ``--resume_from_checkpoint`` (model, optimizer, RNG and EMA loaded
    in place), or a fresh one."""
    path = find_checkpoint(args)
    if path is None:
        return checkpoints.RunState(), None
    state, ema_weights = checkpoints.read_state(path)
    check_same_degradation(path, state, args.training_degradation)
    if (ema_weights is None) != (ema is None):
        raise UsageError(f"cannot resume from {path}: it was written {'with' if ema_weights else 'without'} "
                         f"--use_ema, and this run is {'without' if ema_weights else 'with'} it")
    check_step(path, state, args.max_train_steps)
    check_rng_states(path, accelerator, allow_inexact=args.allow_inexact_resume)
    try:
        accelerator.load_state(str(path))
    except LOAD_ERRORS as err:
        raise UsageError(f"cannot resume from {path}: {_load_problem(path, err)}") from err
    if ema is not None:
        try:
            ema.load(ema_weights, state.step if state.ema_updates is None else state.ema_updates)
        except ValueError as err:
            raise UsageError(f"cannot resume from {path}: {err} (a checkpoint resumes with the same model "
                             "and --scale)") from err
    return state, str(path)


def _load_problem(path: Path, err: Exception) -> str:
    """What went wrong in ``load_state``, in one line."""
    if isinstance(err, SafetensorError):
        return f"its model.safetensors is damaged ({err})"
    if isinstance(err, pickle.UnpicklingError):
        name = next((n for n in PICKLED_FILES if (path / n).is_file() and not _loads(path / n)), "a pickle in it")
        return f"{name} refused: not a tensor-only file (checkpoint pickles are read with weights_only=True)"
    first_line = str(err).splitlines()[0] if str(err) else type(err).__name__
    return f"{first_line} (a checkpoint resumes with the same model and --scale)"


def _loads(file: Path) -> bool:
    """Whether Accelerate's restricted loader reads ``file`` (asked only after a failure)."""
    from accelerate.utils import load

    try:
        load(file, map_location="cpu")
    except LOAD_ERRORS:
        return False
    return True


def check_same_degradation(path: Path, state: checkpoints.RunState, wanted: pairs.Degradation) -> None:
    """A run resumes with the degradation it was trained with (older checkpoints, which
    record none, were all trained with bicubic pairs)."""
    recorded = state.degradation or pairs.BICUBIC.to_dict()
    if wanted.same_pairs_as(recorded):
        return
    if recorded.get("kind") == wanted.kind:  # e.g. a preset whose ranges changed since
        raise UsageError(f"cannot resume from {path}: it was trained with other degradation settings than "
                         f"{wanted}; they are under 'degradation' in its {checkpoints.STATE_FILE}: save its "
                         "'config' as a JSON file and pass it with --degradation_config")
    where = recorded.get("preset") or recorded.get("config_file")
    raise UsageError(f"cannot resume from {path}: it was trained with --degradation {recorded.get('kind')}"
                     f"{f' ({where})' if where else ''}, and this run asks for {wanted}; resume with the "
                     "same --degradation and --degradation_config, or start a new --output_dir")


def check_step(path: Path, state: checkpoints.RunState, max_train_steps: int) -> None:
    """Warn when the checkpoint leaves nothing to train, or its name and its state disagree
    (a folder copied or renamed by hand: 'latest' picks the largest number in the names)."""
    named = path.name.removeprefix(checkpoints.CHECKPOINT_PREFIX)
    if named.isdigit() and int(named) != state.step:
        logger.warning("%s holds the state of step %d, not %s (%s)", path, state.step, named, checkpoints.STATE_FILE)
    if state.step >= max_train_steps:
        logger.warning("%s is at step %d, at or past --max_train_steps %d: no step is trained, the model folder is "
                       "written from the checkpoint", path, state.step, max_train_steps)


def rng_state_problem(file: Path) -> str | None:
    """Why the random-number states in ``file`` (Accelerate's ``random_states_N.pkl``)
    cannot be restored, or None. Each state is tried on a throwaway generator."""
    from accelerate.utils import load

    try:
        states = load(file)
        random.Random().setstate(states["random_state"])
        np.random.RandomState().set_state(states["numpy_random_seed"])
        torch.Generator().set_state(states["torch_manual_seed"])
        if torch.cuda.is_available() and len(states["torch_cuda_manual_seed"]) != torch.cuda.device_count():
            raise ValueError("CUDA generator states for another number of GPUs")
    except FileNotFoundError:
        return f"{file.name} is missing"
    except (*LOAD_ERRORS, TypeError, IndexError) as err:
        detail = str(err).splitlines()[0] if str(err) else type(err).__name__
        return f"{file.name} is damaged ({type(err).__name__}: {detail})"
    return None


def check_rng_states(path: Path, accelerator, *, allow_inexact: bool) -> None:
    """Refuse (or, with ``allow_inexact``, warn in one line) when any process's RNG states
    cannot be restored; all processes decide together."""
    from accelerate.utils import gather_object
    from accelerate.utils.constants import RNG_STATE_NAME

    own = rng_state_problem(path / f"{RNG_STATE_NAME}_{accelerator.process_index}.pkl")
    problems = [p for p in gather_object([own]) if p]
    if not problems:
        return
    if not allow_inexact:
        raise UsageError(f"cannot resume from {path} exactly: {'; '.join(problems)}; pass --allow_inexact_resume "
                         "to resume anyway with fresh random-number states")
    if accelerator.is_main_process:
        logger.warning("resuming from %s with fresh random-number states (%s): the run is no longer exact "
                       "(--allow_inexact_resume)", path, "; ".join(problems))
