"""The architectures, as data: what the loader, the command line and the cards read.

Each :class:`Architecture` says its class, how its state dict is recognised
(``detect``, usually a :class:`~sr_models.state_dicts.KeyCondition`), how a state dict
becomes a model (``convert``: the official-checkpoint converter where there is one, else
the configuration inferred from shapes), and whether its weights run outside sr-models
(``portability``). A single weights file is loaded by detection (:func:`load_state_dict_file`),
in the order of :data:`REGISTRY`, after spandrel's ``ArchRegistry``. Adding an architecture:
docs/models.md#adding-an-architecture.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from . import convert_hat, espcn
from .espcn import ESPCN
from .hat import HAT
from .hub import SRModelMixin
from .state_dicts import CheckpointError, read_state_dict


def sr_models_only(model: SRModelMixin) -> str:
    """The portability of weights only sr-models runs."""
    return "sr-models"


@dataclass(frozen=True)
class Architecture:
    """One architecture of the library."""

    name: str  #: the class name, as config.json's "architecture" says it
    cls: type[SRModelMixin]
    #: state dict -> whether it holds this architecture (a KeyCondition says what it lacks)
    detect: Callable[[Mapping[str, torch.Tensor]], bool]
    #: (state dict, where, **config overrides) -> pretrained model in eval mode; None: its
    #: single weights files are refused (save_pretrained folders still load)
    convert: Callable[..., SRModelMixin] | None = None
    #: model -> which tools run these weights (``sr-models info``)
    portability: Callable[[SRModelMixin], str] = sr_models_only


#: Every architecture, in detection order (the most specific first).
REGISTRY: dict[str, Architecture] = {arch.name: arch for arch in (
    Architecture("HAT", HAT, detect=convert_hat.OFFICIAL_KEYS, convert=convert_hat.convert_official,
                 portability=convert_hat.portability),
    Architecture("ESPCN", ESPCN, detect=espcn.STATE_DICT_KEYS, convert=espcn.from_state_dict),
)}


def architecture_of_model(model: SRModelMixin) -> Architecture:
    """The registry entry of ``model``'s class.

    Raises:
        ValueError: for a class that is not registered.
    """
    name = type(model).__name__
    if name not in REGISTRY:
        raise ValueError(f"{name} is not a registered architecture; known: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def detect(state: Mapping[str, torch.Tensor], where: str = "the state dict") -> Architecture:
    """The architecture whose ``detect`` first accepts ``state``.

    Raises:
        CheckpointError: when none does, with what each one lacks and the first keys found.
    """
    for arch in REGISTRY.values():
        if arch.detect(state):
            return arch
    lacking = "; ".join(f"{arch.name} lacks {_lacks(arch, state)}" for arch in REGISTRY.values())
    raise CheckpointError(f"{where} holds no known architecture ({lacking}); its first keys: {sorted(state)[:6]}")


def _lacks(arch: Architecture, state: Mapping[str, torch.Tensor]) -> str:
    """What ``state`` lacks to be ``arch``, as its condition says (a plain function says nothing)."""
    missing = getattr(arch.detect, "missing", None)
    return ", ".join(missing(state)[:3]) if missing else "its detection"


def load_state_dict_file(source: str | os.PathLike | Mapping, **overrides) -> SRModelMixin:
    """A model from a single weights file (or a state dict), by detection.

    Args:
        source: a ``.pth`` / ``.pt`` / ``.safetensors`` path (an official checkpoint, or
            bare weights saved with ``torch.save(model.state_dict())`` / safetensors), or a
            state dict.
        overrides: constructor arguments the weights cannot tell (each converter logs the
            ones it assumes) or runtime options (``attn_impl``).

    Returns:
        The pretrained model, in eval mode.

    Raises:
        CheckpointError: unreadable, of no known architecture (saying what each lacks), or
            not matching the configuration its shapes imply.
    """
    where = "the state dict" if isinstance(source, Mapping) else str(source)
    state = read_state_dict(source)
    arch = detect(state, where)
    if arch.convert is None:
        raise CheckpointError(f"{where} holds {arch.name} weights, but {arch.name} has no state-dict converter: "
                              "load a save_pretrained folder of it instead")
    return arch.convert(state, where, **overrides)

