"""How a training run ends when it cannot go on: one line on stderr, no traceback, and
nothing NaN saved.

Exit codes: 2 for a user mistake (arguments, paths, data), 1 when the run failed (training
diverged, the disk filled up, publishing failed).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

import torch


class UsageError(Exception):
    """A user mistake (arguments, paths, data): one line on stderr, exit code 2."""


class RunFailed(Exception):
    """The run could not go on or finish (no space for a checkpoint, the Hub unreachable at
    the end): one line on stderr saying what was kept, exit code 1."""


class TrainingDiverged(RunFailed):
    """The loss or the weights became NaN / inf: the run stops, and nothing NaN is saved."""


def run(main: Callable, parse: Callable) -> None:
    """A script's ``__main__``: parse the arguments, set up logging, train; user mistakes and
    failed runs end in one line on stderr."""
    args = parse()
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S",
                        level=logging.INFO)
    try:
        main(args)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except RunFailed as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)


def check_finite(*modules_or_dicts, what: str) -> None:
    """Raise TrainingDiverged if a model (or state dict) holds NaN / inf: such weights are never saved."""
    for obj in modules_or_dicts:
        if obj is None:
            continue
        tensors = obj.values() if isinstance(obj, dict) else obj.state_dict().values()
        if not all(torch.isfinite(t).all() for t in tensors if t.is_floating_point()):
            raise TrainingDiverged(f"the weights contain NaN / inf; refusing to save {what}")
