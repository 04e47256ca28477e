"""Training on realistic degradations (issue 15): --degradation / --degradation_config
(sr_models/training/args.py), the pairs (sr_models/training/pairs.py) and the loader's exact resume (sr_models/training/data.py),
and the record of the degradation in checkpoints, training_facts.json, the card and
config.json (sr_models/training/trainer.py, sr_models/training/report.py)."""

import json
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from safetensors.torch import load_file
# The in-process run helpers of the trainer's tests (fixtures: images, make_trainer).
from test_train_trainer import images, make_trainer, run_in_process, tiny_args  # noqa: F401

from sr_models import ESPCN, HAT, load_model
from sr_models.degradations import PRESETS, degrade_realistic
from sr_models.training import data, pairs, report
from sr_models.training import espcn as espcn_script
from sr_models.training import hat as hat_script
from sr_models.training.errors import UsageError

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
REALISTIC = pairs.load_degradation("realistic", "moderate")


def photo(h: int, w: int, seed: int) -> Image.Image:
    """A smooth colour pattern with some noise (distinct per seed)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([127 + 90 * np.sin(x / rng.uniform(3, 9) + y / rng.uniform(3, 9) + c) for c in range(3)], axis=-1)
    return Image.fromarray((img + rng.normal(0, 4, img.shape)).clip(0, 255).astype(np.uint8))


def pair(img, scale, patch, seed, degradation, *, augment=True, run_seed=0, index=0):
    return pairs.random_pair(img, scale, patch, np.random.default_rng(seed), augment, degradation=degradation,
                             seed=run_seed, index=index)


# --------------------------------------------------------------------------- pairs


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_realistic_pairs_have_the_right_shapes_and_differ_from_bicubic_pairs(scale):
    img = photo(61, 58, seed=scale)
    p = 8 * scale
    for degradation in (REALISTIC, pairs.load_degradation("realistic")):  # first and second order
        for seed in range(4):
            lr, hr = pair(img, scale, p, seed, degradation, index=seed)
            lr_b, hr_b = pair(img, scale, p, seed, pairs.BICUBIC, index=seed)
            assert lr.shape == (8, 8, 3) and hr.shape == (p, p, 3) and lr.dtype == hr.dtype == np.uint8
            # The same crop and symmetry (one generator), another LR.
            assert np.array_equal(hr, hr_b)
            assert np.abs(lr.astype(float) - lr_b.astype(float)).mean() > 1.0


def test_a_realistic_lr_is_the_degradation_of_the_hr_patch_by_seed_and_index():
    img = photo(64, 64, seed=1)
    lr, hr = pair(img, 4, 32, 5, REALISTIC, augment=False, run_seed=3, index=17)
    expected = degrade_realistic(Image.fromarray(hr), 4, PRESETS["moderate"], seed=3, index=17)
    assert np.array_equal(lr, np.asarray(expected))  # the same operations on the same bytes
    again, _ = pair(img, 4, 32, 5, REALISTIC, augment=False, run_seed=3, index=17)
    assert np.array_equal(lr, again)
    for run_seed, index in ((3, 18), (4, 17)):
        other, same_hr = pair(img, 4, 32, 5, REALISTIC, augment=False, run_seed=run_seed, index=index)
        assert np.array_equal(same_hr, hr) and not np.array_equal(other, lr)


def test_the_sample_index_is_unique_in_the_run_and_a_function_of_the_position():
    positions = [(e, r, p) for e in (0, 1, 7) for r in (0, 1, 3) for p in (0, 1, 2, 2**40 - 1)]
    indices = [pairs.sample_index(*pos) for pos in positions]
    assert len(set(indices)) == len(positions) and pairs.sample_index(0, 0, 5) == 5
    with pytest.raises(ValueError, match="no sample index"):
        pairs.sample_index(0, 0, 2**40)


@pytest.fixture
def folder(tmp_path):
    for i in range(5):
        photo(40 + 4 * i, 44, seed=i).save(tmp_path / f"img{i}.png")
    return tmp_path


def loader(folder, **kw):
    src = data.prepare_sources(dataset_name=None, dataset_config_name=None, image_column="image",
                               train_data_dir=str(folder), validation_data_dir=None, max_train_samples=None,
                               max_eval_samples=0, scale=4, seed=0, shuffle_buffer_size=8, rank=0, world_size=1)
    args = dict(image_column="image", scale=4, hr_patch_size=32, batch_size=2, seed=0, rank=0, num_workers=0,
                degradation=REALISTIC)
    return data.PairLoader(src.train, **{**args, **kw})


def take(iterable, n):
    it = iter(iterable)
    return [next(it) for _ in range(n)]


def same(a, b) -> bool:
    return a.ids == b.ids and bool((a.lr == b.lr).all()) and bool((a.hr == b.hr).all())


def test_a_resumed_realistic_loader_gives_the_same_next_pairs(folder, monkeypatch):
    import datasets.config

    monkeypatch.setattr(datasets.config, "SLEEP_TIME_ON_THREADS_SHUTDOWN", 0)  # see test_train_data.py
    reference = take(loader(folder), 6)  # more than one epoch (5 images)
    assert all(same(a, b) for a, b in zip(reference, take(loader(folder, num_workers=2), 6)))
    first = loader(folder)
    take(iter(first), 2)
    saved = data.LoaderState(**json.loads(json.dumps(asdict(first.state))))  # as a checkpoint stores it
    resumed = take(loader(folder, state=saved), 4)
    assert all(same(a, b) for a, b in zip(reference[2:], resumed))
    bicubic = take(loader(folder, degradation=pairs.BICUBIC), 6)
    assert all(a.ids == b.ids and (a.hr == b.hr).all() and not (a.lr == b.lr).all()
               for a, b in zip(reference, bicubic))


# --------------------------------------------------------------------------- arguments


def test_the_flags_default_to_bicubic_and_realistic_to_the_realesrgan_preset(tmp_path):
    assert hat_script.parse_args([]).training_degradation == pairs.BICUBIC
    preset = espcn_script.parse_args(["--degradation", "realistic"]).training_degradation
    assert (preset.kind, preset.preset, preset.config) == ("realistic", "realesrgan", PRESETS["realesrgan"])
    file = tmp_path / "mild.json"
    file.write_text(json.dumps({"second_order_prob": 0, "first": {"blur_sigma": [0.2, 1.0], "jpeg_quality": [70, 95]}}))
    given = hat_script.parse_args(["--degradation", "realistic", "--degradation_config", str(file)])
    degradation = given.training_degradation
    # recorded as published: a file outside the working folder by its name, not its absolute path
    assert degradation.config_file == "mild.json" and degradation.config.first.blur_sigma == (0.2, 1.0)
    assert degradation.config.first.noise_sigma == PRESETS["realesrgan"].first.noise_sigma  # the fields not given
    assert "first order" in str(degradation) and "mild.json" in str(degradation)


@pytest.mark.parametrize("config, message", [
    ("nope", "unknown degradation 'nope': expected 'bicubic' (the protocol), a preset ('moderate', 'realesrgan') "
             "or a JSON file"),
    ("{not json", "not a readable JSON file"),
    ('["a list"]', "expected a JSON object, got list"),
    ('{"first": {"blur_sigmaa": [1, 2]}}', "unknown degradation config fields ['first.blur_sigmaa']"),
    ('{"first": {"blur_sigma": [3, 1]}}', "blur_sigma=(3, 1) is invalid: expected a (low, high) pair"),
    ('{"first": {"blur_sigma": 1.5}}', "degradation config: blur_sigma=1.5 is invalid: expected a list of numbers"),
    ('{"second": {"jpeg_quality": [10, 120]}}', "JPEG quality must lie in 1..100"),
    ('{"second_order_prob": 2}', "expected a probability in [0, 1]"),
])
def test_a_bad_degradation_config_is_a_one_line_usage_error(config, message, tmp_path, capsys):
    value = config
    if config != "nope":
        value = str(tmp_path / "config.json")
        Path(value).write_text(config)
    with pytest.raises(SystemExit) as exc:
        espcn_script.parse_args(["--degradation", "realistic", "--degradation_config", value])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert "error: --degradation_config: " in last and message in last


def test_a_degradation_config_without_realistic_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        hat_script.parse_args(["--degradation_config", "moderate"])
    assert exc.value.code == 2 and "only used with --degradation realistic" in capsys.readouterr().err


# --------------------------------------------------------------------------- the record


def test_the_degradation_is_recorded_and_the_folder_loads(images, tmp_path, make_trainer):  # noqa: F811
    out = run_in_process(make_trainer, images, tmp_path / "out", "--degradation", "realistic",
                         "--degradation_config", "moderate")
    record = {"kind": "realistic", "preset": "moderate", "config_file": None, "config": PRESETS["moderate"].to_dict()}
    assert json.loads((out / "training_facts.json").read_text())["degradation"] == record
    assert json.loads((out / "checkpoint-2" / "training_state.json").read_text())["degradation"] == record
    config = json.loads((out / "config.json").read_text())
    assert config[report.TRAINING_DEGRADATION_KEY] == record and config["architecture"] == "ESPCN"
    card = json.loads((out / "model_card.json").read_text())["training"]["degradation"]
    assert card.startswith("realistic (") and "preset 'moderate'" in card and "|" not in card
    assert card in (out / "README.md").read_text()
    model = load_model(out)
    assert isinstance(model, ESPCN) and model.pretrained and report.TRAINING_DEGRADATION_KEY not in model.config
    assert ESPCN.from_pretrained(out).config == model.config


def test_a_hat_folder_with_the_record_loads(tmp_path):
    model = HAT.from_preset("hat-tiny")
    record = REALISTIC.to_dict()
    report.write_model_folder(model, tmp_path, metrics={}, facts={"degradation": record})
    assert json.loads((tmp_path / "config.json").read_text())[report.TRAINING_DEGRADATION_KEY] == record
    loaded = load_model(tmp_path)
    assert isinstance(loaded, HAT) and loaded.config == model.config


def test_resume_keeps_the_degradation_and_reads_checkpoints_that_record_none(images, tmp_path,  # noqa: F811
                                                                               make_trainer):
    out = run_in_process(make_trainer, images, tmp_path / "out", "--degradation", "realistic",
                         "--degradation_config", "moderate")
    with pytest.raises(UsageError, match="trained with --degradation realistic \\(moderate\\), and this run asks "
                                         "for bicubic"):
        make_trainer(tiny_args(images, out, "--resume_from_checkpoint", "latest"))
    with pytest.raises(UsageError, match="other degradation settings than realistic .*preset 'realesrgan'"):
        make_trainer(tiny_args(images, out, "--resume_from_checkpoint", "latest", "--degradation", "realistic"))
    resumed = make_trainer(tiny_args(images, out, "--resume_from_checkpoint", "latest", "--degradation", "realistic",
                                     "--degradation_config", "moderate"))
    assert resumed.state.step == 2
    # A checkpoint written before --degradation existed (bicubic) resumes as bicubic only.
    old = run_in_process(make_trainer, images, tmp_path / "old")
    state_file = old / "checkpoint-1" / "training_state.json"
    state = json.loads(state_file.read_text())
    del state["degradation"]
    state_file.write_text(json.dumps(state))
    resumed = make_trainer(tiny_args(images, old, "--resume_from_checkpoint", str(old / "checkpoint-1")))
    assert resumed.state.step == 1 and resumed.state.degradation == pairs.BICUBIC.to_dict()
    with pytest.raises(UsageError, match="trained with --degradation bicubic"):
        make_trainer(tiny_args(images, old, "--resume_from_checkpoint", str(old / "checkpoint-1"),
                               "--degradation", "realistic"))


def test_a_resumed_realistic_run_ends_with_the_same_weights(images, tmp_path, make_trainer):  # noqa: F811
    realistic = ("--degradation", "realistic", "--max_eval_samples", "0", "--max_train_steps", "3")
    whole = run_in_process(make_trainer, images, tmp_path / "whole", *realistic)
    part = tmp_path / "part"
    part.mkdir()
    shutil.copytree(whole / "checkpoint-1", part / "checkpoint-1")
    run_in_process(make_trainer, images, part, *realistic, "--resume_from_checkpoint", "latest")
    a, b = load_file(whole / "model.safetensors"), load_file(part / "model.safetensors")
    assert max((a[k].double() - b[k].double()).abs().max().item() for k in a) <= 1e-6
