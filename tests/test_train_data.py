"""Training data (sr_models/training/data.py, sr_models/training/pairs.py), in process: aligned pairs, determinism and
resume of the loader, skipped images, folders read as one split, the validation hold-out,
the split across processes, the data's licence."""

import hashlib
import io
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sr_models.metrics import degrade
from sr_models.training import data, pairs

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(autouse=True)
def _no_datasets_shutdown_sleep(monkeypatch):
    # datasets sleeps 5 s after each pass over interleaved parquet shards (an Arrow thread
    # workaround); harmless over a real epoch, but it would dominate these tiny tests.
    import datasets.config

    monkeypatch.setattr(datasets.config, "SLEEP_TIME_ON_THREADS_SHUTDOWN", 0)


def pattern(h: int, w: int, seed: int) -> Image.Image:
    """A smooth colour pattern with some noise (distinct per seed)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    channels = [127 + 100 * np.sin(x / rng.uniform(2, 9) + y / rng.uniform(2, 9) + rng.uniform(0, 6)) for _ in range(3)]
    img = np.stack(channels, axis=-1) + rng.normal(0, 8, (h, w, 3))
    return Image.fromarray(img.clip(0, 255).astype(np.uint8))


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def write_parquet_dataset(folder: Path, shards: list[list[bytes]]) -> Path:
    """A local folder laid out like merkol/ffhq-256: data/train-0000i-of-0000n.parquet, one image column."""
    from datasets import Dataset, Features
    from datasets import Image as ImageFeature

    (folder / "data").mkdir(parents=True)
    for i, rows in enumerate(shards):
        ds = Dataset.from_dict({"image": [{"bytes": b, "path": None} for b in rows]},
                               features=Features({"image": ImageFeature()}))
        ds.to_parquet(str(folder / "data" / f"train-{i:05d}-of-{len(shards):05d}.parquet"))
    (folder / "README.md").write_text(
        "---\ndataset_info:\n  features:\n  - name: image\n    dtype: image\nconfigs:\n- config_name: default\n"
        "  data_files:\n  - split: train\n    path: data/train-*\n---\n")
    return folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """7 images of different sizes, one truncated PNG and one too small for a 32 px patch."""
    root = tmp_path_factory.mktemp("images")
    for i in range(7):
        pattern(40 + 3 * i, 60 - 2 * i, seed=i).save(root / f"img{i}.png")
    (root / "truncated.png").write_bytes(png_bytes(pattern(40, 40, 99))[:60])
    pattern(20, 24, 7).save(root / "small.png")
    return root


def sources(folder, **kw):
    args = dict(dataset_name=None, dataset_config_name=None, image_column="image", train_data_dir=str(folder),
                validation_data_dir=None, max_train_samples=None, max_eval_samples=0, scale=4, seed=0,
                shuffle_buffer_size=16, rank=0, world_size=1)
    return data.prepare_sources(**{**args, **kw})


def loader(src, **kw):
    args = dict(image_column=src.description["image_column"], scale=4, hr_patch_size=32, batch_size=2, seed=0,
                rank=0, num_workers=0)
    return data.PairLoader(src.train, **{**args, **kw})


def take(iterable, n):
    it = iter(iterable)
    return [next(it) for _ in range(n)]


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_lr_patch_is_the_same_crop_of_the_whole_image_degradation(scale):
    hr = pattern(67, 53, seed=scale)
    whole_lr = np.asarray(degrade(hr, scale))
    hr_cropped = np.asarray(hr)[: 67 - 67 % scale, : 53 - 53 % scale]
    p = 8 * scale
    for seed in range(25):  # positions at the borders and inside
        lr, hr_patch = pairs.random_pair(hr, scale, p, np.random.default_rng(seed), augment=False)
        # Find the crop position from the HR patch (unique: the pattern has noise).
        matches = [(yy, xx) for yy in range(0, hr_cropped.shape[0] - p + 1, scale)
                   for xx in range(0, hr_cropped.shape[1] - p + 1, scale)
                   if np.array_equal(hr_cropped[yy : yy + p, xx : xx + p], hr_patch)]
        assert len(matches) == 1
        y, x = matches[0]
        # Exact on any CPU: PIL resamples 8-bit images in fixed point, and the region's kernel
        # weights are computed from the same (exactly representable) offsets as the whole image's.
        assert np.array_equal(lr, whole_lr[y // scale : y // scale + 8, x // scale : x // scale + 8])


def test_augmentation_applies_one_symmetry_of_the_square_to_both():
    hr = pattern(64, 64, seed=3)
    symmetries = [lambda a: a, lambda a: a[:, ::-1], lambda a: a[::-1], lambda a: a[::-1, ::-1],
                  lambda a: a.transpose(1, 0, 2), lambda a: a[:, ::-1].transpose(1, 0, 2),
                  lambda a: a[::-1].transpose(1, 0, 2), lambda a: a[::-1, ::-1].transpose(1, 0, 2)]
    used = set()
    for seed in range(100):
        lr0, hr0 = pairs.random_pair(hr, 4, 32, np.random.default_rng(seed), augment=False)
        lr1, hr1 = pairs.random_pair(hr, 4, 32, np.random.default_rng(seed))
        found = [k for k, f in enumerate(symmetries) if np.array_equal(f(lr0), lr1) and np.array_equal(f(hr0), hr1)]
        assert found, "LR and HR were not transformed alike"
        used.add(found[0])
    assert len(used) == 8


def test_batches_do_not_depend_on_threads_and_a_resumed_loader_continues_exactly(folder):
    # Exact comparisons: the same bytes through the same operations, whatever thread runs them.
    reference = take(loader(sources(folder)), 9)  # more than one epoch (7 usable images)
    threaded = take(loader(sources(folder), num_workers=3), 9)
    for a, b in zip(reference, threaded):
        assert a.ids == b.ids and (a.lr == b.lr).all() and (a.hr == b.hr).all()
    assert reference[0].lr.shape == (2, 3, 8, 8) and reference[0].hr.shape == (2, 3, 32, 32)
    assert 0.0 <= float(reference[0].lr.min()) and float(reference[0].hr.max()) <= 1.0

    first = loader(sources(folder))
    it = iter(first)
    take(it, 2)
    saved = data.LoaderState(**asdict(first.state))  # what a checkpoint stores
    resumed = take(loader(sources(folder), state=saved), 7)
    for a, b in zip(reference[2:], resumed):
        assert a.ids == b.ids and (a.lr == b.lr).all() and (a.hr == b.hr).all()


def test_corrupt_and_small_images_are_skipped_and_counted_once(folder):
    stream = loader(sources(folder))
    take(stream, 8)  # two passes over the 7 usable images
    st = stream.state
    assert st.first_pass == {"usable": 7, "corrupt": 1, "too_small": 1}
    assert st.epochs_completed >= 1


def header_says_more_rows_than_it_holds(side: int = 6000, rows: int = 64) -> bytes:
    """Issue 19: a PNG whose header says 6000x6000 with pixel data for 64 rows (a complete zlib
    stream, so PIL fills the rest with black and raises nothing)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    pixels = b"".join(b"\x00" + bytes([120]) * 3 * side for _ in range(rows))
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(pixels))
            + chunk(b"IEND", b""))


def test_training_images_are_read_by_the_librarys_reader(tmp_path, monkeypatch):
    """The training path decodes through sr_models.image_io.load_image (as `sr-models evaluate`
    does): what it refuses is skipped and counted, never trained on."""
    from sr_models.image_io import ImageInputError

    for i in range(3):
        pattern(40, 40, i).save(tmp_path / f"{i}.png")
    real = data.load_image

    def refuse_one(file, *args, **kwargs):
        if str(file).endswith("1.png"):
            raise ImageInputError(f"{file}: corrupt image data (test)")
        return real(file, *args, **kwargs)

    monkeypatch.setattr(data, "load_image", refuse_one)
    stream = loader(sources(tmp_path))
    take(stream, 2)
    assert stream.state.first_pass == {"usable": 2, "corrupt": 1, "too_small": 0}


def test_a_png_with_fewer_rows_than_its_header_says_is_not_training_data(tmp_path):
    from sr_models.image_io import ImageInputError, load_image

    (tmp_path / "truncated.png").write_bytes(header_says_more_rows_than_it_holds())
    try:
        load_image(tmp_path / "truncated.png")
    except ImageInputError:
        pass
    else:
        pytest.xfail("needs sr_models.image_io to refuse truncated pixel data (issue 19 item 10, image_io's part)")
    for i in range(2):
        pattern(40, 40, i).save(tmp_path / f"{i}.png")
    stream = loader(sources(tmp_path))
    take(stream, 2)
    assert stream.state.first_pass == {"usable": 2, "corrupt": 1, "too_small": 0}


def test_data_without_a_usable_image_is_a_clear_error(tmp_path):
    pattern(10, 10, 0).save(tmp_path / "a.png")
    (tmp_path / "b.png").write_bytes(b"not an image")
    with pytest.raises(data.DataError, match="no usable image.*1 undecodable, 1 smaller"):
        take(loader(sources(tmp_path)), 1)


def test_validation_images_are_held_out_by_content_and_processes_get_disjoint_shares(tmp_path):
    images = [png_bytes(pattern(40, 40, seed)) for seed in range(10)]
    # Shard 1 repeats the first validation image: it must be dropped from training too.
    root = write_parquet_dataset(tmp_path / "hub", [images[0:4], images[4:8], [images[0]] + images[8:10]])
    kw = dict(dataset_name=str(root), train_data_dir=None, max_eval_samples=2)
    val_ids = {"sha1:" + hashlib.sha1(b).hexdigest()[:20] for b in images[:2]}
    seen = {}
    for world_size in (1, 2, 3):  # 3 shards: by shard for 1 and 3 processes, by example for 2
        for rank in range(world_size):
            src = sources(root, **kw, rank=rank, world_size=world_size)
            assert len(src.validation) == 2 and {i for i, _ in src.validation} == val_ids
            for epoch in (0, 1):
                src.train.set_epoch(epoch)
                ids = [data.image_id(ex["image"]) for ex in src.train]
                seen[world_size, rank, epoch] = ids
    for world_size in (1, 2, 3):
        for epoch in (0, 1):
            shares = [seen[world_size, r, epoch] for r in range(world_size)]
            union = [i for share in shares for i in share]
            assert len(union) == len(set(union)) == 8, (world_size, epoch)  # disjoint, nothing lost
            assert not set(union) & val_ids


def test_max_train_samples_are_the_same_images_for_any_number_of_processes(tmp_path):
    images = [png_bytes(pattern(40, 40, seed)) for seed in range(12)]
    root = write_parquet_dataset(tmp_path / "hub", [images[:6], images[6:]])
    kw = dict(dataset_name=str(root), train_data_dir=None, max_train_samples=4)
    alone = {data.image_id(ex["image"]) for ex in sources(root, **kw).train}
    shares = [[data.image_id(ex["image"]) for ex in sources(root, **kw, rank=r, world_size=2).train] for r in (0, 1)]
    assert len(alone) == 4 and sorted(shares[0] + shares[1]) == sorted(alone)
    assert alone == {"sha1:" + hashlib.sha1(b).hexdigest()[:20] for b in images[:4]}


def test_a_column_that_does_not_exist_and_a_hold_out_of_everything(tmp_path):
    images = [png_bytes(pattern(40, 40, seed)) for seed in range(6)]
    root = write_parquet_dataset(tmp_path / "hub", [images])
    with pytest.raises(data.DataError, match="no column 'photo'"):
        sources(root, dataset_name=str(root), train_data_dir=None, image_column="photo")
    with pytest.raises(data.DataError, match="hold out all of them"):
        sources(root, dataset_name=str(root), train_data_dir=None, max_eval_samples=10)


def test_validation_images_too_small_for_the_metrics_are_skipped(tmp_path):
    values = [{"bytes": png_bytes(pattern(48, 48, 1)), "path": None},
              {"bytes": png_bytes(pattern(16, 40, 2)), "path": None},
              {"bytes": b"broken", "path": None}]
    images, skipped = data.decode_validation(values, scale=4, hr_size=None)  # native size (--validation_hr_size 0)
    assert len(images) == 1 and skipped == 2 and images[0][1].size == (48, 48)


def test_image_id_prefers_content_over_path():
    assert data.image_id({"bytes": b"abc", "path": "x.png"}).startswith("sha1:")
    assert data.image_id({"bytes": None, "path": "/data/x.png"}) == "/data/x.png"


def test_a_folder_is_one_split_whatever_the_file_and_folder_names(tmp_path):
    """Issue: imagefolder guessed splits from names; train_extra.png became the whole training
    split, and test_* / val* names failed with "Bad split"."""
    names = ["a.png", "train_extra.png", "test_1.png", "val_x.png", "validation.png", "test/b.png", "train/c.jpg"]
    for i, name in enumerate(names):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        pattern(40, 40, seed=i).save(tmp_path / name)
    (tmp_path / ".hidden.png").write_bytes(png_bytes(pattern(40, 40, 99)))  # hidden files are left out
    (tmp_path / "notes.txt").write_text("not an image")
    src = sources(tmp_path)
    read = sorted(Path(data.image_id(ex["image"])).relative_to(tmp_path).as_posix() for ex in src.train)
    assert read == sorted(names)
    assert len(take(loader(src, batch_size=7), 1)[0].ids) == 7


def test_a_folder_without_images_is_a_clear_error(tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(data.DataError, match="no image files"):
        sources(tmp_path)


def test_the_data_licence_is_the_flag_the_declared_default_or_the_dataset_card(tmp_path):
    flag = data.data_terms(license="cc-by-4.0", license_link="https://example.com/terms", dataset_name=None)
    assert (flag.license, flag.license_link, flag.source) == ("cc-by-4.0", "https://example.com/terms", "--data_license")
    default = data.data_terms(license=None, license_link=None, dataset_name=data.DEFAULT_DATASET)
    assert default == data.DEFAULT_DATASET_TERMS and default.license == "cc-by-nc-sa-4.0" and default.faces
    # A name is never read for a licence: "ffhq" in it says nothing, its card does.
    named = write_parquet_dataset(tmp_path / "my-ffhq-copy", [[png_bytes(pattern(40, 40, 0))]])
    assert data.data_terms(license=None, license_link=None, dataset_name=str(named)).license == "unknown"
    card = named / "README.md"
    card.write_text(card.read_text().replace("---\n", "---\nlicense: mit\n", 1))
    terms = data.data_terms(license=None, license_link=None, dataset_name=str(named))
    assert (terms.license, terms.source, terms.faces) == ("mit", f"the dataset card of {named}", False)
    assert data.data_terms(license=None, license_link=None, dataset_name=None).license == "unknown"
