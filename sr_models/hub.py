"""Hub integration shared by every model: the mixin base, strict loading, real cards.

Hub metadata (library name, pipeline tag, tags, repo url) is said once here; each
architecture adds its own tags on its class statement. There is no class-level licence:
a card states the licence of its weights (``CardInfo``), which depends on the training
data, not the licence of this code.

What can go wrong is said in one line naming the file or repo: a config.json that is not
a small JSON object, a model too large to build (:func:`check_model_size`), weights that
do not fit or are not finite, a Hub that cannot be reached (one attempt, not
huggingface_hub's five retries). A save never leaves a half-written folder behind
(:meth:`SRModelMixin.save_pretrained`); a broken card file never blocks loading the weights.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from huggingface_hub import (PyTorchModelHubMixin, constants, get_hf_file_metadata, hf_hub_download, hf_hub_url,
                             try_to_load_from_cache)
from huggingface_hub.errors import (EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError,
                                   RepositoryNotFoundError, RevisionNotFoundError)
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
                        LIBRARY_NAME, MAX_CONFIG_BYTES, PIPELINE_TAG, PROJECT_URL, TRAINING_CURVE_FILE, WEIGHTS_FILE)
from .publish import NETWORK_ERRORS, Timeout, require_login, unreachable, upload_errors
from .validation import check_model_size  # noqa: F401 - sr_models.hub.check_model_size, where it was defined

logger = logging.getLogger(__name__)

#: What ``from_pretrained`` passes on to ``hf_hub_download`` for each file of a repo.
_DOWNLOAD_ARGS = ("revision", "cache_dir", "force_download", "local_files_only", "token")
#: The files ``save_pretrained`` writes; saving replaces exactly these in an existing
#: folder (a training run's checkpoints, logs and metrics beside them stay).
MODEL_FILES = (CONFIG_FILE, WEIGHTS_FILE, CARD_FILE, CARD_INFO_FILE, COMPARISON_IMAGE_FILE, TRAINING_CURVE_FILE)
#: The card's pictures: the model's attribute that holds each one, and its file.
CARD_IMAGES = {"comparison_image": COMPARISON_IMAGE_FILE, "training_curve_image": TRAINING_CURVE_FILE}
#: Seconds to wait for a connection to the Hub before calling it unreachable (reading an
#: answer may take HF_HUB_ETAG_TIMEOUT, as in huggingface_hub). A connection takes well
#: under a second (a lost SYN is resent after 1 s). huggingface_hub's first request of a
#: process (its agent registry, 3 s timeout, then cached for a day) comes before, so a
#: route that drops packets fails in about 5 s, not after 5 retries with 1-8 s waits.
HUB_CONNECT_TIMEOUT_S = 2.0


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

    Subclasses take only JSON-able constructor arguments, which the mixin writes to
    config.json, and state the facts the pipeline reads (declared below; each one tested
    for every architecture in tests/test_model_facts.py). ``card_info`` (evaluations,
    training facts, licence), ``comparison_image`` and ``training_curve_image`` are what the
    model card shows; they are saved beside the weights and loaded back.
    """

    #: The upscaling factor.
    scale: int
    #: Inputs are padded to a multiple of it (HAT: its window).
    pad_multiple: int
    #: LR pixels of context each output pixel sees on each side; None when unbounded (tiles
    #: then leave a quarter of their overlap out of the blend).
    receptive_radius: int | None
    #: Default LR overlap of neighbouring tiles.
    tile_overlap: int
    #: Peak bytes of a float32 forward pass per LR pixel (``tile="auto"`` sizes tiles by it).
    bytes_per_pixel: int
    #: Named configurations of the architecture, set by each module below its class.
    presets: dict[str, dict] = {}
    #: Whether ``set_gradient_checkpointing`` exists (the tiny ESPCN does not need it).
    supports_gradient_checkpointing: bool = False
    card_info: CardInfo | None = None
    comparison_image: Image.Image | None = None
    #: Held-out PSNR against training time (``python -m benchmarks.training_curves``).
    training_curve_image: Image.Image | None = None
    #: False for a fresh model (random weights, e.g. from a preset); True once trained
    #: weights are loaded (``from_pretrained``, bundled weights, an official checkpoint).
    pretrained: bool = False
    #: Where the weights were loaded from (folder, repo id or checkpoint file), for messages.
    name_or_path: str | None = None

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

        images = {attribute: file if getattr(self, attribute) is not None else None
                  for attribute, file in CARD_IMAGES.items()}
        return render_model_card(self, self.card_info, **images)

    def save_pretrained(self, save_directory, *, config=None, card_info: CardInfo | None = None,
                        comparison_image: Image.Image | None = None, push_to_hub: bool = False,
                        repo_id: str | None = None, **kwargs):
        """Weights (model.safetensors), config.json, and the model card (README.md, with
        model_card.json and comparison.png). ``card_info`` / ``comparison_image`` replace
        the model's own. With ``push_to_hub=True`` the folder is then pushed to ``repo_id``
        (default: the folder's name).

        Everything is written into a hidden folder beside ``save_directory`` first and
        moved in only once complete: a failed save (a full disk, a card that cannot be
        rendered) writes nothing there and leaves an existing model folder as it was, still
        loadable. In an existing folder only the model's files (MODEL_FILES) are replaced;
        other entries stay.
        """
        if card_info is not None:
            self.card_info = card_info
        if comparison_image is not None:
            self.comparison_image = comparison_image
        from .cards import CardInfo

        config = dict(config if config is not None else self.config)
        config[ARCHITECTURE_KEY] = type(self).__name__
        folder = Path(save_directory).resolve()
        with _staged(folder) as staging:
            # The card first: one that cannot be rendered (e.g. licence "other" without its
            # name) fails the save before the weights are written. The mixin then writes the
            # weights and config.json, and keeps this README.md.
            self.generate_model_card(**(kwargs.pop("model_card_kwargs", None) or {})).save(staging / CARD_FILE)
            for attribute, file in CARD_IMAGES.items():
                if getattr(self, attribute) is not None:
                    getattr(self, attribute).save(staging / file)
            (staging / CARD_INFO_FILE).write_text((self.card_info or CardInfo()).to_json())
            super().save_pretrained(staging, config=config)
        if push_to_hub:
            return self.push_to_hub(repo_id or folder.name, config=config, **kwargs)
        return None

    def push_to_hub(self, repo_id: str, **kwargs) -> str:
        """The mixin's upload (one commit of what ``save_pretrained`` writes); no login, a
        refusal of the Hub or a network failure is one PublishError line naming the repo,
        as for ``sr-models push``."""
        if kwargs.get("token") is None:
            require_login()
        with upload_errors(repo_id):
            return super().push_to_hub(repo_id, **kwargs)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        """Weights from a ``save_pretrained`` folder or a Hub repo id, loaded strictly.

        Its config.json must be a JSON object that names this class (``ESPCN`` loads only
        what config.json says is an ESPCN); its fields are validated by the constructor
        before any weights are read. Raises ValueError for a bad config.json or weights
        that are not finite, WeightsMismatchError when the weights do not fit the
        configured model, FileNotFoundError for a folder that is not a model folder, and
        HubUnavailableError when a repo is neither reachable nor in the local cache.
        """
        config_file = model_file(str(pretrained_model_name_or_path), CONFIG_FILE, kwargs, required=True)
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
        weights = model_file(model_id, WEIGHTS_FILE, download, required=True)
        try:
            load_safetensors_into(model, weights, strict=strict, device=map_location)
        except SafetensorError as err:
            raise ValueError(f"{weights} is not a readable safetensors file: {err}") from err
        except RuntimeError as err:
            raise WeightsMismatchError(f"weights in {model_id!r} do not fit {cls.__name__}: {err}") from err
        check_finite_weights(model, weights)
        model.pretrained = True
        model.name_or_path = model_id
        model._load_card(model_id, download)
        return model.eval()

    def _load_card(self, model_id: str, download: dict) -> None:
        """The card's facts and pictures saved beside the weights, when there are some. They
        are optional: one that cannot be read is left out with a warning."""
        from .cards import CardInfo
        from .image_io import load_image

        info = model_file(model_id, CARD_INFO_FILE, download, required=False)
        if info is not None:
            try:
                self.card_info = CardInfo.from_json(_read_small_text(info))
            except (ValueError, TypeError, AttributeError, RecursionError) as err:
                logger.warning("ignoring %s (the card's facts): %s", info, err)
        for attribute, file in CARD_IMAGES.items():
            image = model_file(model_id, file, download, required=False)
            if image is not None:
                try:
                    setattr(self, attribute, load_image(image).convert("RGB"))
                except ValueError as err:  # ImageInputError: not an image, truncated, too large
                    logger.warning("ignoring %s (a picture of the card): %s", image, err)


def check_finite_weights(model: nn.Module, source: str | os.PathLike) -> None:
    """Refuse weights holding NaN or infinity (they turn every image black), naming the file."""
    bad = [name for name, t in model.state_dict().items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:
        raise ValueError(f"{source} holds NaN or infinite weights ({len(bad)} tensors, the first {bad[0]}): "
                         "refusing to load them")


# --------------------------------------------------------------------------- saving


@contextmanager
def _staged(folder: Path) -> Iterator[Path]:
    """A new hidden folder beside ``folder`` to write into; when the block completes, its
    files replace the model files of ``folder`` (:func:`_swap_in`). It is removed whatever
    happens, so a failed save leaves no trace and ``folder`` untouched."""
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"cannot save a model to {folder}: it exists and is not a folder")
    folder.parent.mkdir(parents=True, exist_ok=True)
    # Beside, not inside: the same file system (so moving in is a rename), and a save
    # killed midway leaves the model folder itself clean. The name stays within NAME_MAX.
    staging = folder.parent / f".{folder.name[:200]}.tmp-{secrets.token_hex(4)}"
    staging.mkdir()
    try:
        yield staging
        _swap_in(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _swap_in(staging: Path, folder: Path) -> None:
    """Move the complete files of ``staging`` into ``folder`` in place of its model files.

    Only renames within one file system, which need no free space: the old files go to a
    hidden backup folder first, and on any failure the new ones are taken out and the old
    ones put back (if even that fails, they are left in the backup folder, never deleted).
    """
    if not folder.exists():
        staging.rename(folder)
        return
    backup = folder.parent / f".{folder.name[:200]}.old-{secrets.token_hex(4)}"
    backup.mkdir()
    old = [name for name in MODEL_FILES if (folder / name).exists()]
    new = [path.name for path in staging.iterdir()]
    moved_old, moved_new = [], []
    try:
        for name in old:
            os.replace(folder / name, backup / name)
            moved_old.append(name)
        for name in new:
            os.replace(staging / name, folder / name)
            moved_new.append(name)
    except BaseException:
        for name in moved_new:
            os.replace(folder / name, staging / name)
        for name in moved_old:
            os.replace(backup / name, folder / name)
        backup.rmdir()
        raise
    shutil.rmtree(backup)


# --------------------------------------------------------------------------- reading


#: The end of every message about a repo that can be neither downloaded nor found in the cache.
_WAY_OUT = (", and it is not in the local cache: connect once to download it (later loads work offline with "
            "HF_HUB_OFFLINE=1), or load a local model folder")


class HubUnavailableError(ConnectionError):
    """A repo's file can be neither downloaded (Hub unreachable, or offline mode) nor found
    in the local cache. An OSError: the CLI and SR_*_MODEL overrides treat it as one."""


def model_file(model_id: str, filename: str, download: dict, *, required: bool) -> Path | None:
    """``filename`` of a model folder or Hub repo (downloaded, or from the local cache).

    A missing file is None, or, when ``required``, a FileNotFoundError that says what the
    folder or repo is. A Hub that cannot be reached is one HubUnavailableError after one
    attempt (huggingface_hub itself retries a file missing from the cache five times).
    """
    if Path(model_id).is_dir():
        return _folder_file(Path(model_id), filename, required)
    download = {k: download.get(k) for k in _DOWNLOAD_ARGS}
    _check_reachable(model_id, filename, download)
    try:
        return Path(hf_hub_download(model_id, filename, **download))
    except LocalEntryNotFoundError as err:  # not cached, and offline or the Hub gave no file
        if not required:
            return None
        raise _unavailable(model_id, filename, download, err) from err
    except RepositoryNotFoundError as err:  # gated repos included
        raise FileNotFoundError(f"no model {model_id!r} on the Hugging Face Hub ({constants.ENDPOINT}), or it is "
                                "private or gated: check the name, or log in (`hf auth login`)") from err
    except RevisionNotFoundError as err:
        raise FileNotFoundError(f"the Hub repo {model_id!r} has no revision {download['revision']!r}") from err
    except EntryNotFoundError as err:  # the Hub answered: the repo has no such file
        if not required:
            return None
        raise FileNotFoundError(f"the Hub repo {model_id!r} has no {filename}: not a model saved by "
                                f"{LIBRARY_NAME}") from err


def _folder_file(folder: Path, filename: str, required: bool) -> Path | None:
    path = folder / filename
    if path.is_file():
        return path
    if not required:
        return None
    raise FileNotFoundError(not_a_model_folder(folder) if filename == CONFIG_FILE else f"{folder} has no {filename}")


def _unavailable(model_id: str, filename: str, download: dict, err: Exception) -> HubUnavailableError:
    """Why a file that is not in the cache could not be downloaded either."""
    if constants.is_offline_mode() or download["local_files_only"]:
        cache = download["cache_dir"] or constants.HF_HUB_CACHE
        return HubUnavailableError(
            f"{model_id!r} ({filename}) is not in the local Hugging Face cache ({cache}) and downloading is off "
            "(HF_HUB_OFFLINE=1 or local_files_only): unset HF_HUB_OFFLINE to download it once, or load a local "
            "model folder")
    # online: the Hub (or what answers at its address) gave no usable answer
    return HubUnavailableError(unreachable(f"to download {model_id!r}", err.__cause__ or err) + _WAY_OUT)


def _check_reachable(repo_id: str, filename: str, download: dict) -> None:
    """One request for a file that is not in the cache, without retries: the Hub's answer is
    left to hf_hub_download, a network failure is a HubUnavailableError at once. (A cached
    file needs no check: hf_hub_download falls back to it after one failed attempt.)"""
    if constants.is_offline_mode() or download["local_files_only"]:
        return
    cached = try_to_load_from_cache(repo_id, filename, cache_dir=download["cache_dir"], revision=download["revision"])
    if isinstance(cached, str) and not download["force_download"]:
        return
    try:
        get_hf_file_metadata(hf_hub_url(repo_id, filename, revision=download["revision"]), token=download["token"],
                             timeout=Timeout(constants.HF_HUB_ETAG_TIMEOUT, connect=HUB_CONNECT_TIMEOUT_S))
    except HfHubHTTPError:
        return  # the Hub answered (no such repo or file, no access): hf_hub_download says which
    except NETWORK_ERRORS as err:
        raise HubUnavailableError(unreachable(f"to download {repo_id!r}", err) + _WAY_OUT) from err


def not_a_model_folder(folder: Path) -> str:
    """Why ``folder`` cannot be loaded, with what it holds (or the model folders inside it)."""
    entries = sorted(folder.iterdir())
    models = [p.name for p in entries if (p / CONFIG_FILE).is_file()]
    if models:
        return f"{folder} is not a model folder (no {CONFIG_FILE}); the model folders in it: {', '.join(models)}"
    names = [p.name + ("/" if p.is_dir() else "") for p in entries]
    listing = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
    return f"{folder} is not a model folder: it has no {CONFIG_FILE} ({'it holds ' + listing if names else 'it is empty'})"


def _read_small_text(path: Path) -> str:
    """The text of a JSON file beside the weights, refused unread when it is larger than any
    real one (MAX_CONFIG_BYTES), as an image over the pixel limit is."""
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise ValueError(f"{path} is {size:,} bytes, over the {MAX_CONFIG_BYTES:,} bytes of any real one")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not UTF-8 text: {err}") from err


_JSON_KINDS = {list: "a list", str: "a string", type(None): "null", bool: "a boolean", int: "a number",
               float: "a number"}


def read_config(config_file: str | Path) -> dict:
    """The settings in a config.json, checked to be a small JSON object (ValueError naming
    the file otherwise); each architecture validates the fields themselves."""
    text = _read_small_text(Path(config_file))
    try:
        config = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{config_file} is not valid JSON: {err}") from err
    except RecursionError as err:
        raise ValueError(f"{config_file} is nested too deeply to be a config.json") from err
    except ValueError as err:  # an integer of more digits than Python converts (4300)
        raise ValueError(f"{config_file} holds a value that cannot be read: {err}") from err
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
