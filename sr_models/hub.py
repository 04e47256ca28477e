"""Hub integration shared by every model: the mixin base with strict loading.

Hub metadata (library name, licence, pipeline tag, repo url) is said once here; each
architecture adds its own tags on its class statement.
"""

from __future__ import annotations

import contextlib
import io
import logging
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

logger = logging.getLogger(__name__)

LIBRARY_NAME = "sr-models"
PROJECT_URL = "https://github.com/sr-models/sr-models"
#: Key added to config.json so that a folder or repo says which class it holds.
ARCHITECTURE_KEY = "architecture"


class WeightsMismatchError(RuntimeError):
    """Saved weights do not fit the architecture their config.json describes."""


class SRModelMixin(
    nn.Module,
    PyTorchModelHubMixin,
    library_name=LIBRARY_NAME,
    license="apache-2.0",
    pipeline_tag="image-to-image",
    tags=["super-resolution", "image-to-image", "sr-models"],
    repo_url=PROJECT_URL,
):
    """Base of every sr_models architecture.

    Subclasses set ``scale`` (int) and ``pad_multiple`` (inputs are padded to it) and take
    only JSON-able constructor arguments, which the mixin writes to config.json.
    """

    scale: int
    pad_multiple: int
    #: Named configurations of the architecture, set by each module below its class.
    presets: dict[str, dict] = {}

    @classmethod
    def from_preset(cls, name: str, upscale: int = 4, **overrides):
        """A fresh model from a named configuration, e.g. ``HAT.from_preset("hat-s", upscale=2)``."""
        if name not in cls.presets:
            raise ValueError(f"unknown {cls.__name__} preset {name!r}; choose from {sorted(cls.presets)}")
        return cls(**{**cls.presets[name], "upscale": upscale, **overrides})

    def save_pretrained(self, save_directory, *, config=None, **kwargs):
        config = dict(config if config is not None else (self._hub_mixin_config or {}))
        config[ARCHITECTURE_KEY] = type(self).__name__
        return super().save_pretrained(save_directory, config=config, **kwargs)

    @classmethod
    def _from_pretrained(cls, *, model_id: str, strict: bool = True, **kwargs):
        # The mixin's default is strict=False, which would load a wrong architecture
        # silently with random weights where the keys differ.
        try:
            # The mixin prints a progress line for local folders; a library should not print.
            with contextlib.redirect_stdout(io.StringIO()):
                return super()._from_pretrained(model_id=model_id, strict=strict, **kwargs)
        except RuntimeError as err:
            raise WeightsMismatchError(f"weights in {model_id!r} do not fit {cls.__name__}: {err}") from err

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def architecture_of(config: dict, where: str) -> str:
    """The class name a config.json names, with a clear error when it names none."""
    name = config.get(ARCHITECTURE_KEY)
    if not name:
        raise ValueError(f"{where}: config.json has no {ARCHITECTURE_KEY!r} field; was it saved by sr_models?")
    return name
