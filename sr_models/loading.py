"""``load_model``: one entry point from a name or a path to a ready model."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

from .constants import CONFIG_FILE
from .convert_hat import load_official
from .espcn import ESPCN
from .hat import HAT
from .hub import SRModelMixin, architecture_of, model_file, read_config

logger = logging.getLogger(__name__)

ARCHITECTURES: dict[str, type[SRModelMixin]] = {"ESPCN": ESPCN, "HAT": HAT}


@dataclass(frozen=True)
class BundledWeights:
    """Weights shipped with the project (trained here on faces, x4)."""

    folder: str  #: folder under weights/
    env_var: str  #: environment variable whose repo id or folder replaces them
    architecture: str  #: the class they hold; an override must hold the same
    #: the LR they were trained for: None, the protocol's bicubic downscale ("clean
    #: downscale"); else the realistic degradation preset (sr_models.degradations) that
    #: their benchmark uses ("real photo")
    degradation: str | None = None


BUNDLED: dict[str, BundledWeights] = {
    "espcn-faces": BundledWeights("espcn-faces-x4", "SR_ESPCN_MODEL", "ESPCN"),
    "hat-faces": BundledWeights("hat-small-faces-x4", "SR_HAT_MODEL", "HAT"),
    "espcn-real": BundledWeights("espcn-real-x4", "SR_ESPCN_REAL_MODEL", "ESPCN", "moderate"),
    "hat-real": BundledWeights("hat-small-real-x4", "SR_HAT_REAL_MODEL", "HAT", "moderate"),
}
#: The models every default list compares (CLI evaluate, the app, benchmarks), in order:
#: the study's, trained on the protocol's bicubic LR.
DEFAULT_MODELS = ["espcn-faces", "hat-faces"]
#: The same architectures trained on realistic degradations, for real photos (the app's
#: "real photo" choice; docs/degradations.md).
REAL_PHOTO_MODELS = ["espcn-real", "hat-real"]
# A wheel carries weights/ inside the package; a source checkout has it at the root.
_WEIGHTS_DIRS = [Path(__file__).parent / "weights", Path(__file__).resolve().parent.parent / "weights"]
#: Single files that hold official HAT weights (BasicSR .pth, or converted .safetensors).
OFFICIAL_SUFFIXES = (".pth", ".pt", ".safetensors")


def preset_names() -> list[str]:
    return sorted(name for cls in ARCHITECTURES.values() for name in cls.presets)


def bundled_folder(name: str) -> Path:
    folder_name = BUNDLED[name].folder
    for root in _WEIGHTS_DIRS:
        if (root / folder_name / CONFIG_FILE).is_file():
            return root / folder_name
    raise FileNotFoundError(f"bundled weights {name!r} ({folder_name}) are missing from {[str(d) for d in _WEIGHTS_DIRS]}")


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


def load_model(name_or_path: str | os.PathLike, *, scale: int | None = None, revision: str | None = None,
               random_weights: bool = False, **kwargs) -> SRModelMixin:
    """A model from bundled weights, a ``save_pretrained`` folder, a Hub repo id, an
    official HAT checkpoint file, or (only with ``random_weights=True``) a preset name.

    - bundled weights (``"espcn-faces"``, ``"hat-faces"``; for real photos ``"espcn-real"``,
      ``"hat-real"``): trained x4 models shipped in ``weights/`` (a repo id in the
      model's environment variable, e.g. ``SR_HAT_MODEL``, overrides them);
    - folder / repo id (``"user/name"``, optionally at ``revision``): pretrained weights,
      loaded strictly; offline from the local cache when ``HF_HUB_OFFLINE=1``;
    - ``.pth`` / ``.safetensors`` file: an official HAT checkpoint, converted;
    - preset (``"hat-s"``, ``"espcn"``, …): a fresh model with random (untrained) weights
      at ``scale`` (default 4), for training or tests; refused unless
      ``random_weights=True``, so that an untrained model never upscales by mistake.

    ``kwargs`` override config fields. Pretrained models are returned in eval mode, with
    ``model.pretrained`` True.
    """
    name = str(name_or_path)
    for cls in ARCHITECTURES.values():
        if name in cls.presets:
            if not random_weights:
                raise ValueError(
                    f"{name!r} is a preset: a fresh model with random (untrained) weights; pass random_weights=True "
                    f"(CLI: --random-weights) to use it, or load trained weights: {', '.join(DEFAULT_MODELS)}, "
                    "a folder, a repo id")
            return cls.from_preset(name, upscale=scale or 4, **kwargs)
    model = _load_pretrained(name, revision, kwargs)
    if scale is not None and model.scale != scale:
        raise ValueError(f"{name} is a x{model.scale} model, but scale={scale} was asked for")
    return model


def _load_pretrained(name: str, revision: str | None, kwargs: dict) -> SRModelMixin:
    """Trained weights from a bundled name, a checkpoint file, a folder or a repo id."""
    path = Path(name)
    if name in BUNDLED:
        return load_bundled(name)[0]
    if path.is_file():
        if path.suffix not in OFFICIAL_SUFFIXES:
            raise ValueError(f"{path} is a file but not a checkpoint ({', '.join(OFFICIAL_SUFFIXES)})")
        return load_official(path, **kwargs)
    if path.is_dir():
        return _from_pretrained(model_file(name, CONFIG_FILE, {}, required=True), name, revision, kwargs)
    if not _is_repo_id(name) or path.suffix in OFFICIAL_SUFFIXES:
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
    if arch not in ARCHITECTURES:
        raise ValueError(f"{config_file}: unknown architecture {arch!r}; known: {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[arch].from_pretrained(name, revision=revision, **kwargs)
