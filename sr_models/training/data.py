"""Training data: streamed images in, (LR, HR) patch pairs out.

Every source goes through one path: ``datasets.load_dataset(..., streaming=True)`` with the
image column read undecoded (``Image(decode=False)``), so that this code, not the
dataset's formatter, decodes each image and can skip a corrupt one instead of ending the
stream. A Hub dataset (``--dataset_name``), a local folder laid out like a Hub dataset
(parquet shards) and a plain folder of images (``--train_data_dir``, the ``imagefolder``
builder given the list of files, so that no split is guessed from file names) are all read
this way.

Default data: ``merkol/ffhq-256`` on the Hub, the 70,000 FFHQ faces (Karras et al., NVIDIA,
CC BY-NC-SA 4.0, declared in ``DEFAULT_DATASET_TERMS``) at 256x256 (as its name says; its
card lists one ``image`` column, 70,000 rows and 7.4 GB) in 15 parquet shards and a single
``train`` split. The mirror has no
validation split, so when no ``--validation_data_dir`` is given the first
``--max_eval_samples`` images of the unshuffled stream are held out (the first rows of
shard 0) and the training stream drops every image with the same content (``image_id``),
wherever the shuffle or the split across processes puts it.

Pairs are made on the fly from each image by ``sr_models.training.pairs``: an HR patch and its LR under
the run's degradation (``bicubic``, the evaluation protocol, by default; or ``realistic``),
with the same random flip / transpose applied to both.

Images smaller than the HR patch are skipped and counted, not padded: padding would teach
the model reflections that real inputs do not have. Undecodable images are skipped and
counted too. Both are reported once, in the first pass over the data.

Determinism: the stream order depends only on the seed, the epoch and the process's share
of the data; each sample's crop and flips come from a generator seeded by
(seed, process, epoch, position in the stream), and a realistic degradation from
(seed, ``sr_models.training.pairs.sample_index(epoch, process, position)``). A run resumed from
(epoch, position) therefore sees exactly the samples the uninterrupted run would have seen,
whatever the number of decoding threads.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import logging
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from PIL import Image

from sr_models.protocol import prepare_hr
from sr_models.image_io import ImageInputError, load_image, to_rgb
from sr_models.training.errors import UsageError
from sr_models.training.public import is_local, public_path, public_source
from sr_models.training.pairs import BICUBIC, Degradation, Unusable, random_pair, sample_index

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataTerms:
    """The licence of a training set (a Hub licence id and a link to its text) and whether
    it holds faces: what the card of weights trained on it says. ``source`` says where the
    licence was read (for the log and training_facts.json)."""

    license: str = "unknown"
    license_link: str | None = None
    faces: bool = False
    #: The licence's slug when ``license`` is "other" (the Hub needs a name and a link then).
    license_name: str | None = None
    source: str = "not given"


#: FFHQ at 256x256 (70,000 images, parquet, column "image"); see the module docstring.
DEFAULT_DATASET = "merkol/ffhq-256"
#: FFHQ's terms, declared here because the mirror's card does not state them.
DEFAULT_DATASET_TERMS = DataTerms(license="cc-by-nc-sa-4.0",
                                  license_link="https://github.com/NVlabs/ffhq-dataset/blob/master/LICENSE.txt",
                                  faces=True, source=f"declared for {DEFAULT_DATASET} (FFHQ, NVIDIA)")
DEFAULT_IMAGE_COLUMN = "image"
#: Validation HR side, as ``sr-models evaluate --hr-size`` (the protocol's 256x256 faces).
DEFAULT_VALIDATION_HR_SIZE = 256
#: The model-index dataset type of local image folders (the 🤗 datasets builder that reads them).
IMAGEFOLDER = "imagefolder"
#: The first pass logs each skipped image up to this many times, then only counts them.
MAX_SKIP_WARNINGS = 20
#: Errors PIL raises for files it cannot decode (truncated, not an image, bad header, too big).
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


class DataError(UsageError):
    """A problem with the data the user pointed at: reported in one line, exit code 2."""


# --------------------------------------------------------------------------- sources


def open_image_stream(*, dataset_name: str | None = None, dataset_config_name: str | None = None,
                      data_dir: str | None = None, image_column: str = DEFAULT_IMAGE_COLUMN,
                      split: str = "train", what: str = "--dataset_name"):
    """A streaming ``IterableDataset`` with one undecoded image column.

    ``data_dir`` selects the ``imagefolder`` builder (a folder of image files); otherwise
    ``dataset_name`` is a Hub dataset id or a local folder laid out like one.
    """
    from datasets import Image as ImageFeature
    from datasets import load_dataset

    if data_dir is not None:
        # The files are listed here: given a folder, imagefolder would guess splits from file
        # and folder names (train_extra.png would become the whole training split).
        path, name, kwargs = "imagefolder", None, {"data_files": {split: image_files(data_dir, what)}}
        image_column = "image"  # the column imagefolder makes
    else:
        path, name, kwargs = dataset_name, dataset_config_name, {}
    try:
        ds = load_dataset(path, name, split=split, streaming=True, **kwargs)
    except Exception as err:  # noqa: BLE001 - datasets raises many types for "cannot open"
        where = data_dir if data_dir is not None else dataset_name
        raise DataError(f"cannot open {what} {where!r}: {type(err).__name__}: {err}") from err
    columns = list(ds.features) if ds.features is not None else None
    if columns is not None and image_column not in columns:
        raise DataError(f"{what} {dataset_name or data_dir!r} has no column {image_column!r} "
                        f"(columns: {', '.join(columns)}); pick one with --image_column")
    return ds.select_columns([image_column]).cast_column(image_column, ImageFeature(decode=False))


def image_files(folder: str | os.PathLike, what: str = "--train_data_dir") -> list[str]:
    """Every image file under ``folder`` (recursive, sorted; hidden files and folders left
    out): a folder is one split, whatever its file names."""
    from datasets.packaged_modules.imagefolder.imagefolder import ImageFolder

    root = Path(folder).resolve()
    if not root.is_dir():
        raise DataError(f"{what} {folder}: no such folder")
    files = sorted(str(p) for p in root.rglob("*") if p.is_file() and p.suffix.lower() in ImageFolder.EXTENSIONS
                   and not any(part.startswith(".") for part in p.relative_to(root).parts))
    if not files:
        raise DataError(f"{what} {folder}: no image files in it")
    return files


def data_terms(*, license: str | None, license_link: str | None, dataset_name: str | None,
               license_name: str | None = None) -> DataTerms:
    """The training data's terms: --data_license if given, else what is declared for the
    default dataset, else the dataset card's ``license`` / ``license_link``, else unknown."""
    faces = dataset_name == DEFAULT_DATASET
    if license is not None:
        return DataTerms(license, license_link, faces=faces, source="--data_license", license_name=license_name)
    if faces:
        return DEFAULT_DATASET_TERMS
    card = _dataset_card(dataset_name) if dataset_name else None
    found = card.get("license") if card else None
    if isinstance(found, list) and len(found) == 1:
        found = found[0]
    if isinstance(found, str) and found:
        return DataTerms(found, card.get("license_link"), source=f"the dataset card of {dataset_name}")
    return DataTerms()


def _dataset_card(dataset_name: str) -> dict | None:
    """The metadata of a dataset's card (README.md front matter): a local folder's, or a
    Hub dataset's (the file the streaming loader reads anyway); None if there is none."""
    from huggingface_hub import DatasetCard

    try:
        local = Path(dataset_name) / "README.md"
        card = DatasetCard.load(local) if local.is_file() else DatasetCard.load(dataset_name, repo_type="dataset")
    except Exception as err:  # noqa: BLE001 - no card, offline, or not a repo id: the licence stays unknown
        logger.warning("cannot read the dataset card of %s (%s): its licence is unknown", dataset_name, err)
        return None
    return card.data.to_dict()


def read_bytes(value: dict) -> bytes:
    """Encoded bytes of an undecoded image value ``{"bytes": ..., "path": ...}``."""
    if value.get("bytes") is not None:
        return value["bytes"]
    if value.get("path") is None:
        raise Unusable("corrupt", "neither bytes nor a path")
    from datasets.utils.file_utils import xopen  # local paths and hf:// / remote URLs alike

    try:
        with xopen(value["path"], "rb") as f:
            return f.read()
    except OSError as err:
        raise Unusable("corrupt", f"cannot read {value['path']}: {err}") from err


def image_id(value: dict) -> str:
    """What identifies an image: a hash of its bytes when the dataset stores them (parquet),
    else its path (image folders). Used for the hold-out and the ``--log_image_ids`` audit."""
    if value.get("bytes") is not None:
        return "sha1:" + hashlib.sha1(value["bytes"]).hexdigest()[:20]
    return str(value.get("path"))


class _EncodedImage(io.BytesIO):
    """Encoded image bytes that the library's reader names by the image's id in its messages."""

    def __init__(self, data: bytes, name: str):
        super().__init__(data)
        self.name = name

    def __str__(self) -> str:
        return self.name


def decode_image(data: bytes, name: str = "image") -> Image.Image:
    """Decode through the library's reader (``sr_models.image_io.load_image``: checked size,
    pixel data read to the end, EXIF orientation), as ``sr-models evaluate`` reads files;
    Unusable("corrupt") if it refuses the bytes."""
    try:
        return load_image(_EncodedImage(data, name))
    except (*DECODE_ERRORS, ImageInputError) as err:
        raise Unusable("corrupt", str(err)) from err


def decode_rgb(data: bytes, name: str = "image") -> Image.Image:
    """An 8-bit RGB image of encoded bytes (16-bit and float images scaled by their range)."""
    try:
        return to_rgb(decode_image(data, name), name)
    except ValueError as err:  # a float image with NaN / inf values
        raise Unusable("corrupt", str(err)) from err


@dataclass
class Sources:
    """This process's training stream, and the validation images (decoded, RGB)."""

    train: object  # datasets.IterableDataset
    validation: list[tuple[str, Image.Image]]
    description: dict


@dataclass
class _Validation:
    """The validation images (undecoded) and how the facts and the card name them."""

    examples: list[dict]
    source: str  # how they were chosen, for the log and the facts
    name: str | None  # the card's dataset name
    dataset_id: str | None  # the card's dataset type: a Hub id, IMAGEFOLDER, or None (a slug of the name)


def prepare_sources(*, dataset_name, dataset_config_name, image_column, train_data_dir, validation_data_dir,
                    max_train_samples, max_eval_samples, scale, seed, shuffle_buffer_size,
                    rank, world_size, validation_hr_size: int | None = DEFAULT_VALIDATION_HR_SIZE) -> Sources:
    """Open the training stream for process ``rank`` of ``world_size`` and the validation set,
    whose HR images are prepared as ``sr-models evaluate`` does (``validation_hr_size``;
    None: native size). Local paths are named relative to the working folder or by name."""
    from datasets.distributed import split_dataset_by_node

    if train_data_dir is not None:
        raw = open_image_stream(data_dir=train_data_dir, what="--train_data_dir")
        column, source, source_id = "image", f"imagefolder {public_path(train_data_dir)}", IMAGEFOLDER
    else:
        raw = open_image_stream(dataset_name=dataset_name, dataset_config_name=dataset_config_name,
                                image_column=image_column)
        column = image_column
        source = public_source(dataset_name) + (f" ({dataset_config_name})" if dataset_config_name else "")
        source_id = None if is_local(dataset_name) else dataset_name
    size = f"{validation_hr_size}x{validation_hr_size}" if validation_hr_size else "native size"
    if validation_data_dir is not None:
        val_raw = open_image_stream(data_dir=validation_data_dir, what="--validation_data_dir")
        examples = [ex["image"] for ex in itertools.islice(val_raw, max_eval_samples)]
        val = _Validation(examples, f"imagefolder {public_path(validation_data_dir)} (first {len(examples)})",
                          f"{public_path(validation_data_dir)} (local image folder, {size})", IMAGEFOLDER)
    elif max_eval_samples:
        raw, val = _hold_out(raw, column, source, source_id, max_eval_samples, size)
    else:
        val = _Validation([], "none", None, None)

    if max_train_samples is not None:
        raw = raw.take(max_train_samples)
    # Shuffle before splitting, with the same seed everywhere, so all processes agree on the
    # order of shards and each keeps a disjoint share (whole shards when their number divides
    # by the world size, else every world_size-th example). With --max_train_samples the
    # split is by example: by shard, each process would take its share of N from its own
    # shards, a different set of N images for each number of processes.
    train = raw.shuffle(seed=seed, buffer_size=shuffle_buffer_size)
    if world_size > 1:
        strategy = "examples" if max_train_samples is not None else "auto"
        train = split_dataset_by_node(train, rank=rank, world_size=world_size, strategy=strategy)
    validation, val_skipped = decode_validation(val.examples, scale, validation_hr_size)
    description = {
        "train_source": source,
        "image_column": column,
        "max_train_samples": max_train_samples,
        "validation_source": val.source,
        "validation_name": val.name,
        "validation_id": val.dataset_id,
        "validation_images": len(validation),
        "validation_skipped": val_skipped,
    }
    return Sources(train=train, validation=validation, description=description)


def _hold_out(raw, column: str, source: str, source_id: str | None, count: int, size: str):
    """(the training stream without them, the validation set): the stream's first ``count``
    images (before any shuffle), and every training image with the same content removed."""
    examples = [ex[column] for ex in raw.take(count)]
    if len(examples) < count:
        raise DataError(f"the training data has only {len(examples)} images and --max_eval_samples "
                        f"{count} would hold out all of them for validation: pass "
                        "--validation_data_dir, or a smaller --max_eval_samples")
    held_out = {image_id(v) for v in examples}
    raw = raw.filter(lambda v: image_id(v) not in held_out, input_columns=[column])
    return raw, _Validation(examples, f"held out: the first {count} images of {source}, removed from training",
                            f"{source} (first {count} images, held out, {size})", source_id)


def decode_validation(values: list[dict], scale: int, hr_size: int | None = DEFAULT_VALIDATION_HR_SIZE,
                      ) -> tuple[list[tuple[str, Image.Image]], int]:
    """Validation HR images as ``sr-models evaluate`` prepares them
    (``sr_models.protocol.prepare_hr``: centre square crop and PIL bicubic resize to
    ``hr_size``, None: native size; cropped to a multiple of ``scale``); unusable ones are
    skipped. SSIM's 11x11 window must fit after ``scale`` pixels of border are cropped on
    each side."""
    min_side = 11 + 2 * scale
    images, skipped = [], 0
    for value in values:
        ident = image_id(value)
        try:
            img = prepare_hr(decode_image(read_bytes(value), ident), scale, hr_size)
        except (Unusable, ValueError) as err:
            logger.warning("validation image %s skipped: %s", ident, err)
            skipped += 1
            continue
        if min(img.size) < min_side:
            logger.warning("validation image %s skipped: %dx%d is smaller than %d px, the least the "
                           "metrics need at x%d", ident, *img.size, min_side, scale)
            skipped += 1
            continue
        images.append((ident, img))
    return images, skipped


# --------------------------------------------------------------------------- the loader


@dataclass
class Batch:
    lr: torch.Tensor  # (B, 3, h, w) float in [0, 1]
    hr: torch.Tensor  # (B, 3, s*h, s*w)
    ids: list[str]


@dataclass
class _Result:
    epoch: int
    index: int | None  # None marks the end of an epoch
    ident: str = ""
    pair: tuple | None = None
    skip: Unusable | None = None


@dataclass
class LoaderState:
    """Where a process is in its stream, and what it has skipped (saved in checkpoints)."""

    epoch: int = 0
    index: int = 0  # raw examples of `epoch` already consumed (used or skipped)
    usable_in_epoch: int = 0
    first_pass: dict = field(default_factory=lambda: {"usable": 0, "corrupt": 0, "too_small": 0})
    epochs_completed: int = 0


class PairLoader:
    """Batches of random (LR, HR) pairs from one process's stream, forever (epoch after epoch).

    Decoding, cropping and degrading run in ``num_workers`` threads (PIL releases the GIL
    while it decodes and resizes) over an ordered look-ahead, so the order of the samples,
    and with it an exact resume, does not depend on the number of threads.
    """

    def __init__(self, dataset, *, image_column: str, scale: int, hr_patch_size: int, batch_size: int,
                 seed: int, rank: int, num_workers: int = 0, state: LoaderState | None = None,
                 id_log: str | os.PathLike | None = None, degradation: Degradation = BICUBIC):
        self.dataset = dataset
        self.image_column = image_column
        self.scale = scale
        self.hr_patch_size = hr_patch_size
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.num_workers = num_workers
        self.state = state or LoaderState()
        self.id_log = Path(id_log) if id_log is not None else None
        self.degradation = degradation
        self._warnings = 0

    # -- the raw stream, with positions

    def _raw(self) -> Iterator[tuple[int, int | None, dict | None]]:
        epoch, start = self.state.epoch, self.state.index
        while True:
            self.dataset.set_epoch(epoch)
            # islice skips the consumed part of a resumed epoch without decoding it.
            for index, example in enumerate(itertools.islice(iter(self.dataset), start, None), start):
                yield epoch, index, example[self.image_column]
            yield epoch, None, None
            epoch, start = epoch + 1, 0

    def _make(self, item) -> _Result:
        epoch, index, value = item
        if index is None:
            return _Result(epoch, None)
        ident = image_id(value)
        rng = np.random.default_rng([self.seed, self.rank, epoch, index])
        try:
            pair = random_pair(decode_rgb(read_bytes(value), ident), self.scale, self.hr_patch_size, rng,
                               degradation=self.degradation, seed=self.seed,
                               index=sample_index(epoch, self.rank, index))
        except Unusable as err:
            return _Result(epoch, index, ident, skip=err)
        return _Result(epoch, index, ident, pair=pair)

    def _results(self) -> Iterator[_Result]:
        if self.num_workers == 0:
            yield from map(self._make, self._raw())
            return
        pool = ThreadPoolExecutor(self.num_workers, thread_name_prefix="pairs")
        pending: deque = deque()
        lookahead = max(2 * self.batch_size, 4 * self.num_workers)
        try:
            for item in self._raw():
                pending.append(pool.submit(self._make, item))
                if len(pending) >= lookahead:
                    yield pending.popleft().result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    # -- bookkeeping

    def _account(self, result: _Result, log) -> bool:
        """Update the position and counters for one result; True if it is a usable pair."""
        st = self.state
        if result.index is None:  # end of an epoch
            if st.usable_in_epoch == 0:
                fp = st.first_pass
                raise DataError(
                    f"a whole pass over the training data gave no usable image (process {self.rank}: "
                    f"{fp['corrupt']} undecodable, {fp['too_small']} smaller than the {self.hr_patch_size} px "
                    "HR patch); check the data, or lower --hr_patch_size"
                )
            st.epoch, st.index, st.usable_in_epoch = result.epoch + 1, 0, 0
            st.epochs_completed += 1
            return False
        st.epoch, st.index = result.epoch, result.index + 1
        first_pass = result.epoch == 0
        if log is not None:
            log.write(f"{result.epoch}\t{result.index}\t{result.ident}\t{result.skip.reason if result.skip else 'ok'}\n")
        if result.skip is not None:
            if first_pass:
                st.first_pass[result.skip.reason] += 1
                self._warn_skip(result)
            return False
        st.usable_in_epoch += 1
        if first_pass:
            st.first_pass["usable"] += 1
        return True

    def _warn_skip(self, result: _Result) -> None:
        self._warnings += 1
        if self._warnings <= MAX_SKIP_WARNINGS:
            what = "undecodable" if result.skip.reason == "corrupt" else "too small"
            logger.warning("skipping %s image %s: %s", what, result.ident, result.skip)
        if self._warnings == MAX_SKIP_WARNINGS:
            logger.warning("further skipped images are counted, not logged")

    def __iter__(self) -> Iterator[Batch]:
        log = None
        if self.id_log is not None:
            self.id_log.parent.mkdir(parents=True, exist_ok=True)
            log = open(self.id_log, "a", encoding="utf-8")  # noqa: SIM115 - closed in finally
        try:
            lrs, hrs, ids = [], [], []
            for result in self._results():
                if not self._account(result, log):
                    continue
                lrs.append(result.pair[0])
                hrs.append(result.pair[1])
                ids.append(result.ident)
                if len(lrs) == self.batch_size:
                    if log is not None:
                        log.flush()
                    yield Batch(to_tensor(lrs), to_tensor(hrs), ids)
                    lrs, hrs, ids = [], [], []
        finally:
            if log is not None:
                log.close()


def to_tensor(arrays: list[np.ndarray]) -> torch.Tensor:
    """uint8 (h, w, 3) arrays -> float (B, 3, h, w) in [0, 1]."""
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div_(255.0)
