"""Single weights files: read safely, recognised by their keys, loaded strictly.

What every architecture's state-dict loader shares (:mod:`sr_models.architectures` says
which architecture reads which file): :func:`read_state_dict` (``weights_only`` ``.pth``
or ``.safetensors``; ``params_ema`` / ``params`` unwrapped, ``module.`` stripped),
:class:`KeyCondition` (how an architecture recognises its state dict, after spandrel's
conditions of the same name) and :func:`load_strictly` (every key and shape checked,
finite weights). Anything wrong is a :class:`CheckpointError` saying what was found.
"""

from __future__ import annotations

import inspect
import logging
import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from .hub import check_finite_weights

#: Suffixes of the single weights files load_model reads (BasicSR .pth, safetensors).
STATE_DICT_SUFFIXES = (".pth", ".pt", ".safetensors")
_KEY_PREFIX = "module."  # what DataParallel / DistributedDataParallel put before every key


class CheckpointError(ValueError):
    """A weights file (or state dict) that cannot be read, recognised or matched."""


def read_state_dict(source: str | os.PathLike | Mapping,
                    error: type[CheckpointError] = CheckpointError) -> dict[str, torch.Tensor]:
    """The named tensors of a weights file or of a state dict already in memory.

    Args:
        source: a ``.pth`` / ``.pt`` (read with ``weights_only``: a pickle that would run code
            is refused) or ``.safetensors`` path, or a mapping.
        error: the CheckpointError subclass raised (an architecture's own, e.g. HAT's).

    Returns:
        The tensors, unwrapped from ``params_ema`` / ``params`` (BasicSR) and stripped of
        ``module.``.

    Raises:
        CheckpointError: unreadable file, not a dict, keys that are not strings, values
            that are not tensors.
    """
    state = source if isinstance(source, Mapping) else _load_file(Path(source), error)
    if not isinstance(state, Mapping):
        raise error(f"the checkpoint holds a {type(state).__name__}, not a dict of tensors (a state dict)")
    for wrapper in ("params_ema", "params"):
        if isinstance(state.get(wrapper), Mapping):
            state = state[wrapper]
            break
    not_named = [k for k in state if not isinstance(k, str)]
    if not_named:
        raise error(f"the state dict has keys that are not strings: {not_named[:5]}")
    state = {k.removeprefix(_KEY_PREFIX): v for k, v in state.items()}
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise error(f"checkpoint entries are not tensors: {bad[:5]}")
    return state


def _load_file(path: Path, error: type[CheckpointError]) -> object:
    if not path.is_file():
        raise error(f"no such checkpoint file: {path}")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError) as err:
            raise error(f"cannot read {path} as safetensors: {err}") from err
    try:
        # weights_only: tensors and plain containers only; a pickle that would run code
        # (or build arbitrary objects) is refused before anything executes.
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise error(f"{path} cannot be read as plain weights: it is not a PyTorch weights file, or it "
                    "holds pickled objects beyond tensors; refusing to unpickle it") from err
    except Exception as err:  # zip / format errors from torch.load
        raise error(f"cannot read {path} as a PyTorch checkpoint: {err}") from err


class KeyCondition:
    """A test on the keys of a state dict, readable in messages: every one of some keys
    (or conditions) present, any one of them, or every key matching a pattern.
    ``condition(state)`` is True or False; ``condition.missing(state)`` says why not."""

    def __init__(self, kind: str, parts: tuple):
        self.kind = kind
        self.parts = parts

    @staticmethod
    def has_all(*parts: str | KeyCondition) -> KeyCondition:
        return KeyCondition("all", parts)

    @staticmethod
    def has_any(*parts: str | KeyCondition) -> KeyCondition:
        return KeyCondition("any", parts)

    @staticmethod
    def only(pattern: str) -> KeyCondition:
        """Every key matches ``pattern`` (a regular expression, matched in full)."""
        return KeyCondition("only", (re.compile(pattern),))

    def __call__(self, state: Mapping[str, object]) -> bool:
        return not self.missing(state)

    def missing(self, state: Mapping[str, object]) -> list[str]:
        """What ``state`` lacks to meet the condition, in words; empty when it is met."""
        if self.kind == "only":
            strays = [k for k in state if not self.parts[0].fullmatch(k)]
            return [f"keys other than {self.parts[0].pattern!r}: {strays[:3]}"] if strays else []
        lacking = [_missing(part, state) for part in self.parts]
        if self.kind == "all":
            return [text for texts in lacking for text in texts]
        return [] if any(not texts for texts in lacking) else [f"any of {[str(p) for p in self.parts]}"]

    def __str__(self) -> str:
        if self.kind == "only":
            return f"only keys matching {self.parts[0].pattern!r}"
        return f"{self.kind} of ({', '.join(map(str, self.parts))})"


def _missing(part: str | KeyCondition, state: Mapping[str, object]) -> list[str]:
    if isinstance(part, KeyCondition):
        return part.missing(state)
    return [] if part in state else [part]


def log_assumed(logger: logging.Logger, model_cls: type, notes: Mapping[str, str], given: Mapping,
                weights: str) -> None:
    """Log each constructor argument that ``weights`` do not record and the caller did not
    give: what is used instead, and why that is right.

    Args:
        logger: the converter's logger.
        model_cls: the architecture (its defaults are what is used).
        notes: argument -> why its default is right.
        given: the arguments the caller gave (those are not logged).
        weights: what the weights are, for the message ("official", "bare ESPCN").
    """
    defaults = inspect.signature(model_cls).parameters
    for field, reason in notes.items():
        if field not in given:
            logger.warning("%s is not stored in %s weights: using %r (%s)", field, weights,
                           defaults[field].default, reason)


def load_strictly(model: nn.Module, state: Mapping[str, torch.Tensor], where: str, config: dict,
                  error: type[CheckpointError] = CheckpointError) -> nn.Module:
    """Load ``state`` into ``model`` after checking every key and shape; refuse weights that
    are not finite.

    Args:
        model: the model the configuration inferred from ``state`` describes.
        state: its weights.
        where: the file (or "the state dict"), for messages and ``model.name_or_path``.
        config: the inferred configuration, for messages.
        error: the CheckpointError subclass raised.

    Returns:
        The model in eval mode, marked ``pretrained``.
    """
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    mismatched = [f"{k}: checkpoint {found[k]} vs model {expected[k]}"
                  for k in expected if k in found and found[k] != expected[k]]
    if missing or unexpected or mismatched:
        raise error(f"{where} does not match the inferred {type(model).__name__} config {config}: missing "
                    f"{missing[:10]}, unexpected {unexpected[:10]}, shape mismatches {mismatched[:10]}")
    model.load_state_dict(state, strict=True)
    try:
        check_finite_weights(model, where)
    except ValueError as err:
        raise error(str(err)) from err
    model.pretrained = True
    model.name_or_path = where
    return model.eval()
