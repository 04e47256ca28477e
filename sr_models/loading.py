"""``load_model``: one entry point from a name or a path to a ready model."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from huggingface_hub import hf_hub_download
from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

from .espcn import ESPCN
from .convert_hat import load_official
from .hat import HAT
from .hub import SRModelMixin, architecture_of

logger = logging.getLogger(__name__)

ARCHITECTURES: dict[str, type[SRModelMixin]] = {"ESPCN": ESPCN, "HAT": HAT}

#: Weights shipped with the project (trained here on faces, x4): name -> (folder under
#: weights/, environment variable whose Hub repo id or folder replaces them).
BUNDLED: dict[str, tuple[str, str]] = {
    "espcn-faces": ("espcn-faces-x4", "SR_ESPCN_MODEL"),
    "hat-faces": ("hat-small-faces-x4", "SR_HAT_MODEL"),
}
# A wheel carries weights/ inside the package; a source checkout has it at the root.
_WEIGHTS_DIRS = [Path(__file__).parent / "weights", Path(__file__).resolve().parent.parent / "weights"]
#: Single files that hold official HAT weights (BasicSR .pth, or converted .safetensors).
OFFICIAL_SUFFIXES = (".pth", ".pt", ".safetensors")


def preset_names() -> list[str]:
    return sorted(name for cls in ARCHITECTURES.values() for name in cls.presets)


def bundled_folder(name: str) -> Path:
    folder_name = BUNDLED[name][0]
    for root in _WEIGHTS_DIRS:
        if (root / folder_name / "config.json").is_file():
            return root / folder_name
    raise FileNotFoundError(f"bundled weights {name!r} ({folder_name}) are missing from {[str(d) for d in _WEIGHTS_DIRS]}")


def load_bundled(name: str) -> tuple[SRModelMixin, str]:
    """A bundled model and where its weights came from.

    If the model's environment variable (``SR_ESPCN_MODEL`` / ``SR_HAT_MODEL``) names a
    repo id or folder, that is loaded instead; when it cannot be (Hub unreachable, not
    in the cache), the bundled weights are used and a warning is logged.
    """
    folder_name, env_var = BUNDLED[name]
    override = os.environ.get(env_var)
    if override:
        try:
            return load_model(override), f"{override} (from {env_var})"
        except (OSError, ValueError) as err:
            logger.warning("%s=%s cannot be loaded (%s); using the bundled weights", env_var, override, err)
    return load_model(bundled_folder(name)), f"bundled weights/{folder_name}"


def load_model(name_or_path: str | os.PathLike, *, scale: int | None = None, revision: str | None = None,
               **kwargs) -> SRModelMixin:
    """A model from a preset name, a ``save_pretrained`` folder, a Hub repo id, or an
    official HAT checkpoint file.

    - bundled weights (``"espcn-faces"``, ``"hat-faces"``): trained x4 models shipped in
      ``weights/`` (an ``SR_ESPCN_MODEL`` / ``SR_HAT_MODEL`` repo id overrides them);
    - preset (``"hat-s"``, ``"espcn"``, …): a fresh, randomly initialised model at ``scale``
      (default 4); ``kwargs`` override config fields;
    - folder / repo id (``"user/name"``, optionally at ``revision``): pretrained weights,
      loaded strictly; offline from the local cache when ``HF_HUB_OFFLINE=1``;
    - ``.pth`` / ``.safetensors`` file: an official HAT checkpoint, converted.

    Pretrained models are returned in eval mode.
    """
    name = str(name_or_path)
    for cls in ARCHITECTURES.values():
        if name in cls.presets:
            return cls.from_preset(name, upscale=scale or 4, **kwargs)
    path = Path(name)
    if name in BUNDLED:
        model = load_bundled(name)[0]
    elif path.is_file():
        if path.suffix not in OFFICIAL_SUFFIXES:
            raise ValueError(f"{path} is a file but not a checkpoint ({', '.join(OFFICIAL_SUFFIXES)})")
        model = load_official(path, **kwargs)
    elif path.is_dir():
        config_file = path / "config.json"
        if not config_file.is_file():
            raise FileNotFoundError(f"{path} has no config.json: not a save_pretrained folder")
        model = _from_pretrained(config_file, name, revision, kwargs)
    else:
        if name.count("/") != 1 or path.suffix in OFFICIAL_SUFFIXES:
            raise ValueError(
                f"{name!r} is neither a preset ({', '.join(preset_names())}), bundled weights "
                f"({', '.join(BUNDLED)}), an existing folder or checkpoint file, nor a Hub repo id 'user/name'"
            )
        try:
            config_file = Path(hf_hub_download(name, "config.json", revision=revision))
        except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as err:
            raise OSError(f"cannot fetch {name!r} from the Hub (nor find it in the local cache): {err}") from err
        model = _from_pretrained(config_file, name, revision, kwargs)
    if scale is not None and model.scale != scale:
        raise ValueError(f"{name} is a x{model.scale} model, but scale={scale} was asked for")
    return model


def _from_pretrained(config_file: Path, name: str, revision: str | None, kwargs: dict) -> SRModelMixin:
    config = json.loads(config_file.read_text())
    arch = architecture_of(config, name)
    if arch not in ARCHITECTURES:
        raise ValueError(f"{name}: unknown architecture {arch!r}; known: {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[arch].from_pretrained(name, revision=revision, **kwargs)
