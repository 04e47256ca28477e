"""Hub integration shared by every model: the mixin base, strict loading, real cards.

Hub metadata (library name, pipeline tag, tags, repo url) is said once here; each
architecture adds its own tags on its class statement. There is no class-level licence:
a card states the licence of its weights (``CardInfo``), which depends on the training
data, not the licence of this code.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from huggingface_hub import PyTorchModelHubMixin, hf_hub_download
from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError
from safetensors import SafetensorError
from safetensors.torch import load_model as load_safetensors_into
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

if TYPE_CHECKING:  # the card renderer (jinja2, evaluation facts) is imported only to save a card
    from huggingface_hub import ModelCard

    from .cards import CardInfo

from .constants import (ARCHITECTURE_KEY, BASE_TAGS, CARD_FILE, CARD_INFO_FILE, COMPARISON_IMAGE_FILE, CONFIG_FILE,
                        LIBRARY_NAME, PIPELINE_TAG, PROJECT_URL, WEIGHTS_FILE)

logger = logging.getLogger(__name__)

#: What ``from_pretrained`` passes on to ``hf_hub_download`` for each file of a repo.
_DOWNLOAD_ARGS = ("revision", "cache_dir", "force_download", "local_files_only", "token")


class WeightsMismatchError(RuntimeError):
    """Saved weights do not fit the architecture their config.json describes."""


class SRModelMixin(
    nn.Module,
    PyTorchModelHubMixin,
    library_name=LIBRARY_NAME,
    pipeline_tag=PIPELINE_TAG,
    tags=BASE_TAGS,
    repo_url=PROJECT_URL,
):
    """Base of every sr_models architecture.

    Subclasses set ``scale`` (int) and ``pad_multiple`` (inputs are padded to it) and take
    only JSON-able constructor arguments, which the mixin writes to config.json.
    ``card_info`` (evaluations, training facts, licence) and ``comparison_image`` are
    what the model card shows; they are saved beside the weights and loaded back.
    """

    scale: int
    pad_multiple: int
    #: Named configurations of the architecture, set by each module below its class.
    presets: dict[str, dict] = {}
    #: Whether ``set_gradient_checkpointing`` exists (the tiny ESPCN does not need it).
    supports_gradient_checkpointing: bool = False
    card_info: CardInfo | None = None
    comparison_image: Image.Image | None = None
    #: False for a fresh model (random weights, e.g. from a preset); True once trained
    #: weights are loaded (``from_pretrained``, bundled weights, an official checkpoint).
    pretrained: bool = False

    @classmethod
    def from_preset(cls, name: str, upscale: int = 4, **overrides):
        """A fresh model from a named configuration, e.g. ``HAT.from_preset("hat-s", upscale=2)``."""
        if name not in cls.presets:
            raise ValueError(f"unknown {cls.__name__} preset {name!r}; choose from {sorted(cls.presets)}")
        return cls(**{**cls.presets[name], "upscale": upscale, **overrides})

    def bicubic_skip(self, lr: torch.Tensor) -> torch.Tensor:
        """Bicubic upscale of the input, for models with ``global_residual`` (VDSR's global
        skip: the network then only learns what bicubic misses, which trains much faster)."""
        return F.interpolate(lr, scale_factor=self.scale, mode="bicubic", align_corners=False)

    @property
    def config(self) -> dict:
        """The constructor arguments (JSON-able), as written to config.json."""
        return dict(self._hub_mixin_config or {})

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def generate_model_card(self, *args, **kwargs) -> ModelCard:
        """The real card (the mixin's default is a generic template)."""
        from .cards import render_model_card

        image = COMPARISON_IMAGE_FILE if self.comparison_image is not None else None
        return render_model_card(self, self.card_info, comparison_image=image)

    def save_pretrained(self, save_directory, *, config=None, card_info: CardInfo | None = None,
                        comparison_image: Image.Image | None = None, **kwargs):
        """Weights (model.safetensors), config.json, and the model card (README.md, with
        model_card.json and comparison.png). ``card_info`` / ``comparison_image`` replace
        the model's own. With ``push_to_hub=True`` the same folder is what is pushed."""
        if card_info is not None:
            self.card_info = card_info
        if comparison_image is not None:
            self.comparison_image = comparison_image
        from .cards import CardInfo

        config = dict(config if config is not None else self.config)
        config[ARCHITECTURE_KEY] = type(self).__name__
        folder = Path(save_directory)
        folder.mkdir(parents=True, exist_ok=True)
        if self.comparison_image is not None:
            self.comparison_image.save(folder / COMPARISON_IMAGE_FILE)
        (folder / CARD_INFO_FILE).write_text((self.card_info or CardInfo()).to_json())
        # The mixin writes the weights and config.json first, then README.md from
        # generate_model_card (the real card) unless one exists: an old one is removed so
        # the card is this model's, and a card that cannot be rendered never costs the weights.
        (folder / CARD_FILE).unlink(missing_ok=True)
        return super().save_pretrained(folder, config=config, **kwargs)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        """Weights from a ``save_pretrained`` folder or a Hub repo id, loaded strictly.

        Its config.json must be a JSON object that names this class (``ESPCN`` loads only
        what config.json says is an ESPCN); its fields are validated by the constructor
        before any weights are read. Raises ValueError for a bad config.json, and
        WeightsMismatchError when the weights do not fit the configured model.
        """
        config_file = _optional_file(str(pretrained_model_name_or_path), CONFIG_FILE, kwargs)
        if config_file is not None:
            found = architecture_of(read_config(config_file), config_file)
            if found != cls.__name__:
                raise ValueError(f"{config_file} holds the settings of {found}, not {cls.__name__}: "
                                 f"load it with {found}.from_pretrained or sr_models.load_model")
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    @classmethod
    def _from_pretrained(cls, *, model_id: str, map_location: str = "cpu", strict: bool = True, **kwargs):
        # Replaces the mixin's loader, which builds and loads in one step (so a bad config
        # looked like a weights mismatch), loads with strict=False (a wrong architecture
        # loaded silently) and prints a progress line.
        download = {name: kwargs.pop(name, None) for name in _DOWNLOAD_ARGS}
        try:
            model = cls(**kwargs)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{model_id}/{CONFIG_FILE} does not describe a valid {cls.__name__}: {err}") from err
        weights = _optional_file(model_id, WEIGHTS_FILE, download)
        if weights is None:
            raise FileNotFoundError(f"{model_id} has no {WEIGHTS_FILE}")
        try:
            load_safetensors_into(model, weights, strict=strict, device=map_location)
        except SafetensorError as err:
            raise ValueError(f"{weights} is not a readable safetensors file: {err}") from err
        except RuntimeError as err:
            raise WeightsMismatchError(f"weights in {model_id!r} do not fit {cls.__name__}: {err}") from err
        model.pretrained = True
        model._load_card(model_id, download)
        return model.eval()

    def _load_card(self, model_id: str, download: dict) -> None:
        """The card's facts and picture saved beside the weights, when there are some."""
        info = _optional_file(model_id, CARD_INFO_FILE, download)
        if info is not None:
            from .cards import CardInfo

            self.card_info = CardInfo.from_json(info.read_text())
        image = _optional_file(model_id, COMPARISON_IMAGE_FILE, download)
        if image is not None:
            with Image.open(image) as img:
                self.comparison_image = img.convert("RGB")


def _optional_file(model_id: str, filename: str, kwargs: dict) -> Path | None:
    """A file beside the weights (folder or Hub repo), or None if the repo has none."""
    if Path(model_id).is_dir():
        path = Path(model_id) / filename
        return path if path.is_file() else None
    try:
        return Path(hf_hub_download(model_id, filename, **{k: kwargs.get(k) for k in _DOWNLOAD_ARGS}))
    except (EntryNotFoundError, LocalEntryNotFoundError):
        return None


_JSON_KINDS = {list: "a list", str: "a string", type(None): "null", bool: "a boolean", int: "a number",
               float: "a number"}


def read_config(config_file: str | Path) -> dict:
    """The settings in a config.json, checked to be a JSON object (ValueError naming the
    file otherwise); each architecture validates the fields themselves."""
    try:
        config = json.loads(Path(config_file).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{config_file} is not valid JSON: {err}") from err
    if not isinstance(config, dict):
        raise ValueError(f"{config_file} must hold a JSON object of model settings ({{...}}), not "
                         f"{_JSON_KINDS.get(type(config), type(config).__name__)}: {json.dumps(config)[:60]}")
    return config


def architecture_of(config: dict, where: str | Path) -> str:
    """The class name a config.json names, with a clear error when it names none."""
    name = config.get(ARCHITECTURE_KEY)
    if not name or not isinstance(name, str):
        raise ValueError(f"{where} names no architecture ({ARCHITECTURE_KEY!r}: {name!r}); "
                         "was it saved by sr_models?")
    return name
