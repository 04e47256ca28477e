"""``load_model``: one entry point from a name or a path to a ready model."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

from .architectures import REGISTRY, load_state_dict_file
from .bundled import (BUNDLED, DEFAULT_MODELS, REAL_PHOTO_MODELS, BundledWeights, bundled_folder,  # noqa: F401
                      denoisable_names)
from .constants import CONFIG_FILE
from .denoise import load_denoised
from .hub import SRModelMixin, architecture_of, model_file, read_config
from .state_dicts import STATE_DICT_SUFFIXES

logger = logging.getLogger(__name__)

# The bundled names (BUNDLED, DEFAULT_MODELS, ...) live in sr_models.bundled, without torch, so
# that the command line's help lists them at once; they are imported from here as before.
#: Architecture name -> class; the registry itself (detection, converters) is sr_models.architectures.
ARCHITECTURES: dict[str, type[SRModelMixin]] = {name: arch.cls for name, arch in REGISTRY.items()}
#: sr_models.state_dicts.STATE_DICT_SUFFIXES by its earlier name.
OFFICIAL_SUFFIXES = STATE_DICT_SUFFIXES


def preset_names() -> list[str]:
    """Every preset of every architecture, sorted."""
    return sorted(name for cls in ARCHITECTURES.values() for name in cls.presets)


def load_bundled(name: str) -> tuple[SRModelMixin, str]:
    """A bundled model and where its weights came from.

    If the model's environment variable (``SR_ESPCN_MODEL``, ``SR_HAT_MODEL``,
    ``SR_ESPCN_REAL_MODEL``, ``SR_HAT_REAL_MODEL``: ``BUNDLED[name].env_var``) names a
    repo id or folder, that is loaded instead. It must hold trained weights of the same
    architecture (ValueError otherwise: a misconfiguration is reported, never papered
    over). Only when a repo id cannot be fetched (Hub unreachable, not in the cache) are
    the bundled weights used, with a warning.
    """
    entry = BUNDLED[name]
    override = os.environ.get(entry.env_var)
    if not override or override == name:
        return load_model(bundled_folder(name)), f"bundled weights/{entry.folder}"
    source = f"{override} (from {entry.env_var})"
    if override in preset_names():
        raise ValueError(f"{entry.env_var}={override!r} is a preset: a fresh model with random (untrained) "
                         f"weights. Set it to trained {entry.architecture} weights (a folder or a Hub repo id), "
                         "or unset it to use the bundled weights")
    try:
        model = load_model(bundled_folder(override) if override in BUNDLED else override)
    except OSError as err:
        if Path(override).exists():  # a local folder that fails to load is a misconfiguration
            raise
        logger.warning("%s=%s cannot be fetched (%s); using the bundled weights", entry.env_var, override, err)
        return load_model(bundled_folder(name)), f"bundled weights/{entry.folder}"
    if type(model).__name__ != entry.architecture:
        raise ValueError(f"{entry.env_var}={override!r} holds {type(model).__name__} weights, but {entry.env_var} "
                         f"replaces the bundled {entry.architecture} weights ({name}): point it at "
                         f"{entry.architecture} weights")
    return model, source


def load_model(name_or_path: str | os.PathLike, *, denoise: float | None = None, scale: int | None = None,
               revision: str | None = None, random_weights: bool = False, **kwargs) -> SRModelMixin:
    """A model from bundled weights, a ``save_pretrained`` folder, a Hub repo id, a single
    weights file, or (only with ``random_weights=True``) a preset name.

    - bundled weights (``"espcn-faces"``, ``"hat-faces"``; for real photos ``"espcn-real"``,
      ``"hat-real"``): trained x4 models shipped in ``weights/`` (a repo id in the
      model's environment variable, e.g. ``SR_HAT_MODEL``, overrides them);
    - folder / repo id (``"user/name"``, optionally at ``revision``): pretrained weights,
      loaded strictly; offline from the local cache when ``HF_HUB_OFFLINE=1``;
    - ``.pth`` / ``.safetensors`` file: an official HAT checkpoint, or bare weights of any
      architecture whose configuration its shapes tell (an ESPCN ``state_dict()``): the
      architecture is detected from the keys (:mod:`sr_models.architectures`), the
      configuration inferred from the shapes;
    - preset (``"hat-s"``, ``"espcn"``, …): a fresh model with random (untrained) weights
      at ``scale`` (default 4), for training or tests; refused unless
      ``random_weights=True``, so that an untrained model never upscales by mistake.

    With ``denoise`` set, ``name_or_path`` must be bundled real-photo weights (``"espcn-real"``,
    ``"hat-real"``): the model is then their blend with the clean weights they were
    fine-tuned from (:mod:`sr_models.denoise`): 1 = the real-photo model as shipped, 0 = the
    clean model.

    Args:
        name_or_path: one of the above.
        denoise: the denoise strength in [0, 1], for real-photo bundled weights only.
        scale: the upscaling factor a preset is built at, or that loaded weights must have.
        revision: the Hub revision of a repo id.
        random_weights: allow a preset name (untrained weights).
        kwargs: config fields to override.

    Returns:
        The model; pretrained ones in eval mode, with ``model.pretrained`` True.
    """
    name = str(name_or_path)
    if denoise is not None:
        if name not in denoisable_names():
            raise ValueError(f"denoise={denoise!r} applies to bundled real-photo weights only "
                             f"({', '.join(denoisable_names())}), not to {name!r}")
        model = load_denoised(name, denoise)
    else:
        model = _load_named(name, revision, random_weights, scale, kwargs)
    if scale is not None and model.scale != scale:
        raise ValueError(f"{name} is a x{model.scale} model, but scale={scale} was asked for")
    return model


def _load_named(name: str, revision: str | None, random_weights: bool, scale: int | None,
                kwargs: dict) -> SRModelMixin:
    """A preset (only with ``random_weights``) or trained weights (see :func:`load_model`)."""
    for cls in ARCHITECTURES.values():
        if name in cls.presets:
            if not random_weights:
                raise ValueError(
                    f"{name!r} is a preset: a fresh model with random (untrained) weights; pass random_weights=True "
                    f"(CLI: --random-weights) to use it, or load trained weights: {', '.join(DEFAULT_MODELS)}, "
                    "a folder, a repo id")
            return cls.from_preset(name, upscale=scale or 4, **kwargs)
    return _load_pretrained(name, revision, kwargs)


def _load_pretrained(name: str, revision: str | None, kwargs: dict) -> SRModelMixin:
    """Trained weights from a bundled name, a checkpoint file, a folder or a repo id."""
    path = Path(name)
    if name in BUNDLED:
        return load_bundled(name)[0]
    if path.is_file():
        if path.suffix not in STATE_DICT_SUFFIXES:
            raise ValueError(f"{path} is a file but not a checkpoint ({', '.join(STATE_DICT_SUFFIXES)})")
        return load_state_dict_file(path, **kwargs)
    if path.is_dir():
        return _from_pretrained(model_file(name, CONFIG_FILE, {}, required=True), name, revision, kwargs)
    if not _is_repo_id(name) or path.suffix in STATE_DICT_SUFFIXES:
        # A path that does not exist is said so first (not "an invalid repo id").
        why = (f"there is no file or folder {name!r} (from {Path.cwd()}), and it is neither"
               if os.sep in name or name.startswith((".", "~")) else f"{name!r} is neither")
        raise ValueError(
            f"{why} bundled weights ({', '.join(BUNDLED)}), an existing folder or checkpoint file, "
            f"a Hub repo id 'user/name', nor a preset ({', '.join(preset_names())})"
        )
    config_file = model_file(name, CONFIG_FILE, {"revision": revision}, required=True)
    return _from_pretrained(config_file, name, revision, kwargs)


def _is_repo_id(name: str) -> bool:
    """'user/name' as the Hub allows it ("../weights" is not: '..' is refused there)."""
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return name.count("/") == 1


def _from_pretrained(config_file: Path, name: str, revision: str | None, kwargs: dict) -> SRModelMixin:
    arch = architecture_of(read_config(config_file), config_file)
    if arch not in REGISTRY:
        raise ValueError(f"{config_file}: unknown architecture {arch!r}; known: {sorted(REGISTRY)}")
    return REGISTRY[arch].cls.from_pretrained(name, revision=revision, **kwargs)
