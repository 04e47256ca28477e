"""Hub integration shared by every model: the mixin base, strict loading, real cards.

Hub metadata (library name, licence, pipeline tag, repo url) is said once here; each
architecture adds its own tags on its class statement.
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from huggingface_hub import ModelCard, PyTorchModelHubMixin, hf_hub_download
from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

if TYPE_CHECKING:  # the card renderer (jinja2, evaluation facts) is imported only to save a card
    from .cards import CardInfo

from .constants import ARCHITECTURE_KEY, BASE_TAGS, CARD_INFO_FILE, COMPARISON_IMAGE_FILE, LIBRARY_NAME, PROJECT_URL

logger = logging.getLogger(__name__)



class WeightsMismatchError(RuntimeError):
    """Saved weights do not fit the architecture their config.json describes."""


class SRModelMixin(
    nn.Module,
    PyTorchModelHubMixin,
    library_name=LIBRARY_NAME,
    license="apache-2.0",
    pipeline_tag="image-to-image",
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
        # Written before the mixin's save, which keeps an existing README.md: the real card
        # (not the mixin's template) is what lands in the folder and on the Hub.
        if self.comparison_image is not None:
            self.comparison_image.save(folder / COMPARISON_IMAGE_FILE)
        (folder / CARD_INFO_FILE).write_text((self.card_info or CardInfo()).to_json())
        self.generate_model_card().save(folder / "README.md")
        return super().save_pretrained(folder, config=config, **kwargs)

    @classmethod
    def _from_pretrained(cls, *, model_id: str, strict: bool = True, **kwargs):
        # The mixin's default is strict=False, which would load a wrong architecture
        # silently with random weights where the keys differ.
        try:
            # The mixin prints a progress line for local folders; a library should not print.
            with contextlib.redirect_stdout(io.StringIO()):
                model = super()._from_pretrained(model_id=model_id, strict=strict, **kwargs)
        except RuntimeError as err:
            raise WeightsMismatchError(f"weights in {model_id!r} do not fit {cls.__name__}: {err}") from err
        info = _optional_file(model_id, CARD_INFO_FILE, kwargs)
        if info is not None:
            from .cards import CardInfo

            model.card_info = CardInfo.from_json(info.read_text())
        image = _optional_file(model_id, COMPARISON_IMAGE_FILE, kwargs)
        if image is not None:
            with Image.open(image) as img:
                model.comparison_image = img.convert("RGB")
        return model


def _optional_file(model_id: str, filename: str, kwargs: dict) -> Path | None:
    """A file beside the weights (folder or Hub repo), or None if the repo has none."""
    if Path(model_id).is_dir():
        path = Path(model_id) / filename
        return path if path.is_file() else None
    try:
        return Path(hf_hub_download(
            model_id, filename, revision=kwargs.get("revision"), cache_dir=kwargs.get("cache_dir"),
            force_download=kwargs.get("force_download", False), token=kwargs.get("token"),
            local_files_only=kwargs.get("local_files_only", False),
        ))
    except (EntryNotFoundError, LocalEntryNotFoundError):
        return None


def architecture_of(config: dict, where: str) -> str:
    """The class name a config.json names, with a clear error when it names none."""
    name = config.get(ARCHITECTURE_KEY)
    if not name:
        raise ValueError(f"{where}: config.json has no {ARCHITECTURE_KEY!r} field; was it saved by sr_models?")
    return name
