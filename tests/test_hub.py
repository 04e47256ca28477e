"""Hub integration: save / load round trips, strict loading, config.json checks, offline
cache, and the layering (a model class loads no evaluation or card code)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from sr_models import ESPCN, HAT, WeightsMismatchError, load_model, upscale_tensor


@pytest.mark.parametrize("cls,preset", [(HAT, "hat-tiny"), (ESPCN, "espcn-tiny")])
def test_save_pretrained_round_trip(tmp_path, cls, preset):
    model = cls.from_preset(preset, upscale=2)
    assert model.pretrained is False
    model.save_pretrained(tmp_path)
    assert {"model.safetensors", "config.json"} <= {p.name for p in tmp_path.iterdir()}
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["architecture"] == cls.__name__ and config["upscale"] == 2

    loaded = load_model(tmp_path)
    assert type(loaded) is cls and not loaded.training and loaded.pretrained is True
    assert loaded.config == model.config
    for (k, v), (k2, v2) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)  # stored and read back bit for bit: exact
    x = torch.rand(1, 3, 9, 9)
    model.eval()
    with torch.no_grad():
        # the same weights through the same kernels on the same machine: equal up to rounding
        torch.testing.assert_close(upscale_tensor(model, x), upscale_tensor(loaded, x), rtol=0, atol=1e-6)


def test_config_reads_like_official_option_files(tmp_path):
    HAT.from_preset("hat-s").save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    for key, value in dict(upscale=4, window_size=16, compress_ratio=24, squeeze_factor=24, embed_dim=144,
                           depths=[6] * 6, num_heads=[6] * 6, mlp_ratio=2, upsampler="pixelshuffle",
                           resi_connection="1conv", img_range=1.0, overlap_ratio=0.5, conv_scale=0.01).items():
        assert config[key] == value, key
    # the official state dict is what is saved, index buffers included
    assert "relative_position_index_OCA" in load_file(tmp_path / "model.safetensors")


def test_strict_load_names_missing_and_unexpected_keys(tmp_path):
    model = ESPCN.from_preset("espcn-tiny")
    model.save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    weights["extra.weight"] = weights.pop("body.0.weight")
    save_file(weights, tmp_path / "model.safetensors")
    with pytest.raises(WeightsMismatchError) as err:
        ESPCN.from_pretrained(tmp_path)
    assert "body.0.weight" in str(err.value) and "extra.weight" in str(err.value)


def test_weights_of_another_size_are_a_weights_mismatch(tmp_path):
    ESPCN.from_preset("espcn-tiny").save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "channels": [16, 8]}))
    with pytest.raises(WeightsMismatchError, match="size mismatch"):
        load_model(tmp_path)


def test_wrong_architecture_is_refused_from_the_config(tmp_path):
    ESPCN.from_preset("espcn-tiny").save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="holds the settings of ESPCN, not HAT"):
        HAT.from_pretrained(tmp_path)


BAD_CONFIGS = {
    "a list": ("[4, 3]", "must hold a JSON object"),
    "null": ("null", "not null"),
    "a string": ('"ESPCN"', "not a string"),
    "invalid JSON": ('{"architecture": "ESPCN",', "is not valid JSON"),
    "no architecture": ('{"upscale": 4}', "names no architecture"),
    "a numeric architecture": ('{"architecture": 3}', "names no architecture"),
    "an unknown architecture": ('{"architecture": "SRGAN"}', "unknown architecture 'SRGAN'"),
    # each a one-line error naming the file, not a RecursionError or a bare int-conversion ValueError
    "nested 100k deep": ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    "a 5000-digit integer": ('{"architecture": "ESPCN", "upscale": ' + "9" * 5000 + "}", "cannot be read"),
    "over a megabyte": ('{"architecture": "ESPCN", "notes": "' + "x" * 1_000_000 + '"}', "over the 1,000,000 bytes"),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_a_bad_config_json_is_a_clear_error_naming_the_file(tmp_path, case):
    ESPCN.from_preset("espcn-tiny").save_pretrained(tmp_path)
    text, message = BAD_CONFIGS[case]
    (tmp_path / "config.json").write_text(text)
    for loader, load in [("load_model", load_model), ("from_pretrained", ESPCN.from_pretrained)]:
        if loader == "from_pretrained" and case == "an unknown architecture":
            message = "holds the settings of SRGAN, not ESPCN"
        with pytest.raises(ValueError, match=message) as err:
            load(tmp_path)
        assert "config.json" in str(err.value) and str(tmp_path) in str(err.value)


@pytest.mark.parametrize("cls,preset,field,value", [
    (ESPCN, "espcn-tiny", "upscale", 4.0),
    (HAT, "hat-tiny", "upscale", 4.0),
    (ESPCN, "espcn-tiny", "activation", "swish"),
    (ESPCN, "espcn-tiny", "channels", None),
])
def test_a_bad_config_field_is_a_config_error_not_a_weights_mismatch(tmp_path, cls, preset, field, value):
    cls.from_preset(preset).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, field: value}))
    with pytest.raises(ValueError, match=f"config.json does not describe a valid {cls.__name__}") as err:
        load_model(tmp_path)
    assert str(tmp_path) in str(err.value) and not isinstance(err.value, WeightsMismatchError)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_weights_that_are_not_finite_are_refused_naming_the_file(tmp_path, bad):
    """They gave an all-black image with exit 0 (issue 19, item 8)."""
    ESPCN.from_preset("espcn-tiny").save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    weights["body.2.weight"][0, 0, 0, 0] = bad
    save_file(weights, tmp_path / "model.safetensors")
    for load in (load_model, ESPCN.from_pretrained):
        with pytest.raises(ValueError, match="holds NaN or infinite weights .*body.2.weight") as err:
            load(tmp_path)
        assert str(tmp_path / "model.safetensors") in str(err.value)


def test_a_broken_card_never_blocks_the_weights(tmp_path, caplog):
    """model_card.json and comparison.png only feed the card: unreadable, they are left out
    with a warning naming them, and the weights load (issue 19, item 14)."""
    model = ESPCN.from_preset("espcn-tiny")
    model.save_pretrained(tmp_path / "a", comparison_image=Image.new("RGB", (8, 8)))
    model.save_pretrained(tmp_path / "b", comparison_image=Image.new("RGB", (8, 8)))
    (tmp_path / "a" / "model_card.json").write_text("{not json")
    (tmp_path / "a" / "comparison.png").write_bytes(b"\x89PNG not really")
    (tmp_path / "b" / "model_card.json").write_text("[1, 2]")
    png = (tmp_path / "b" / "comparison.png").read_bytes()
    (tmp_path / "b" / "comparison.png").write_bytes(png[: len(png) // 2])
    for folder in (tmp_path / "a", tmp_path / "b"):
        caplog.clear()
        loaded = load_model(folder)
        assert loaded.card_info is None and loaded.comparison_image is None
        assert torch.equal(loaded.body[0].weight, model.body[0].weight)
        assert f"ignoring {folder / 'model_card.json'}" in caplog.text
        assert f"ignoring {folder / 'comparison.png'}" in caplog.text


def test_weights_that_are_not_safetensors_are_a_clear_error(tmp_path):
    ESPCN.from_preset("espcn-tiny").save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load_model(tmp_path)


def test_hub_metadata_is_on_the_classes():
    card = HAT.from_preset("hat-tiny").generate_model_card()
    assert card.data.library_name == "sr-models"
    assert card.data.pipeline_tag == "image-to-image"
    assert {"hat", "super-resolution"} <= set(card.data.tags)
    assert "espcn" in ESPCN.from_preset("espcn-tiny").generate_model_card().data.tags


def test_the_model_classes_import_no_card_pipeline_or_evaluation_code():
    """Layers point down: models -> hub base -> constants. Cards (jinja2), the image
    pipeline and the evaluation code load only when used (a new process: a clean slate)."""
    code = ("import sys, sr_models.espcn, sr_models.hat; "
            "print(' '.join(m for m in ('jinja2', 'sr_models.cards', 'sr_models.pipeline', 'sr_models.evaluation') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def _fake_cache(cache, repo_id, folder, revision="0" * 40):
    """A Hub cache entry as huggingface_hub lays it out: refs/main -> snapshots/<rev>/."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True)
    for file in folder.iterdir():
        (snapshot / file.name).write_bytes(file.read_bytes())
    return revision


def test_repo_id_loads_offline_from_the_local_cache(tmp_path):
    model = HAT.from_preset("hat-tiny", upscale=2)
    model.save_pretrained(tmp_path / "folder")
    _fake_cache(tmp_path / "cache", "someone/hat-tiny", tmp_path / "folder")
    expected = model.conv_first.weight.sum().item()
    # HF_HUB_OFFLINE and the cache path are read when huggingface_hub is imported: new process.
    code = (
        "from sr_models import load_model; m = load_model('someone/hat-tiny'); "
        "print(type(m).__name__, m.scale, m.pretrained, m.conv_first.weight.sum().item())"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "cache")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    name, scale, pretrained, total = out.stdout.split()
    assert (name, scale, pretrained) == ("HAT", "2", "True") and float(total) == pytest.approx(expected, abs=1e-5)

    missing = subprocess.run([sys.executable, "-c", "from sr_models import load_model; load_model('someone/other')"],
                             env=env, capture_output=True, text=True)
    last = missing.stderr.strip().splitlines()[-1]
    assert missing.returncode != 0 and "HubUnavailableError: 'someone/other' (config.json) is not in the local" in last
    assert "HF_HUB_OFFLINE=1" in last and "local model folder" in last


# --------------------------------------------------------------------------- saving never loses a model


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def good_folder(tmp_path):
    """A saved model inside a training run's output folder (checkpoints and metrics beside it)."""
    folder = tmp_path / "out"
    ESPCN.from_preset("espcn-tiny").save_pretrained(folder, comparison_image=Image.new("RGB", (8, 8)))
    (folder / "checkpoint-5").mkdir()
    (folder / "checkpoint-5" / "state.json").write_text("{}")
    (folder / "metrics.json").write_text("{}")
    return folder


def test_a_save_that_fails_writing_the_weights_leaves_the_old_folder_as_it_was(good_folder, monkeypatch):
    """The disk filled up while the weights were written: config.json and README.md were
    already gone and the folder no longer loaded (issue 19, item 4)."""
    import errno

    import safetensors.torch

    def disk_full(model, filename, *args, **kwargs):
        Path(filename).write_bytes(b"\0" * 100)  # part of the file, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    before = _files(good_folder)
    monkeypatch.setattr(safetensors.torch, "save_model", disk_full)
    with pytest.raises(OSError, match="No space left"):
        ESPCN.from_preset("espcn-tiny", channels=[4, 4]).save_pretrained(good_folder)
    assert _files(good_folder) == before
    assert sorted(p.name for p in good_folder.parent.iterdir()) == ["out"]  # no temporary folder left
    assert load_model(good_folder).config["channels"] == [8, 8]


def test_a_failure_while_moving_the_new_files_in_puts_the_old_ones_back(good_folder, monkeypatch):
    before = _files(good_folder)
    real_replace, calls = os.replace, []

    def replace(src, dst):
        calls.append(src)
        if ".tmp-" in str(src) and len([c for c in calls if ".tmp-" in str(c)]) == 2:
            raise OSError("simulated failure on the second new file")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="simulated"):
        ESPCN.from_preset("espcn-tiny", channels=[4, 4]).save_pretrained(good_folder)
    monkeypatch.undo()
    assert _files(good_folder) == before
    assert sorted(p.name for p in good_folder.parent.iterdir()) == ["out"]


def test_saving_over_a_folder_replaces_the_model_files_only(good_folder):
    """Checkpoints and metrics beside the model stay; a picture the new model does not have
    goes (it would be loaded back as the new model's)."""
    new = ESPCN.from_preset("espcn-tiny", channels=[4, 4])
    new.save_pretrained(good_folder)
    names = {p.name for p in good_folder.iterdir()}
    assert names == {"config.json", "model.safetensors", "README.md", "model_card.json", "checkpoint-5",
                     "metrics.json"}
    assert load_model(good_folder).config["channels"] == [4, 4]
    assert sorted(p.name for p in good_folder.parent.iterdir()) == ["out"]


def test_saving_to_a_file_is_a_clear_error(tmp_path):
    (tmp_path / "model").write_text("a file")
    with pytest.raises(NotADirectoryError, match="exists and is not a folder"):
        ESPCN.from_preset("espcn-tiny").save_pretrained(tmp_path / "model")
