"""Hub integration: save / load round trips, strict loading, load_model, offline cache."""

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

from sr_models import ESPCN, HAT, WeightsMismatchError, load_model, upscale_tensor


@pytest.mark.parametrize("preset", ["hat-tiny", "espcn-tiny"])
def test_save_pretrained_round_trip(tmp_path, preset):
    model = load_model(preset, scale=2)
    model.save_pretrained(tmp_path)
    assert {"model.safetensors", "config.json"} <= {p.name for p in tmp_path.iterdir()}
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["architecture"] == type(model).__name__ and config["upscale"] == 2

    loaded = load_model(tmp_path)
    assert type(loaded) is type(model) and not loaded.training
    for (k, v), (k2, v2) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)
    x = torch.rand(1, 3, 9, 9)
    model.eval()
    with torch.no_grad():
        assert torch.equal(upscale_tensor(model, x), upscale_tensor(loaded, x))


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


def test_wrong_architecture_is_refused(tmp_path):
    ESPCN.from_preset("espcn-tiny").save_pretrained(tmp_path)
    with pytest.raises(WeightsMismatchError, match="Missing key"):
        HAT.from_pretrained(tmp_path)


def test_hub_metadata_is_on_the_classes():
    card = HAT.from_preset("hat-tiny").generate_model_card()
    assert card.data.library_name == "sr-models"
    assert card.data.pipeline_tag == "image-to-image"
    assert {"hat", "super-resolution"} <= set(card.data.tags)
    assert "espcn" in ESPCN.from_preset("espcn-tiny").generate_model_card().data.tags


def test_load_model_explains_unknown_names(tmp_path):
    with pytest.raises(ValueError, match="neither a preset"):
        load_model("no-such-preset")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(ValueError, match="not a checkpoint"):
        load_model(tmp_path / "notes.txt")
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_model(tmp_path)
    with pytest.raises(ValueError, match="x4 model"):
        load_model("hat-tiny", scale=None) and load_model(_saved(tmp_path / "m"), scale=2)


def _saved(path):
    HAT.from_preset("hat-tiny").save_pretrained(path)
    return path


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
        "print(type(m).__name__, m.scale, m.conv_first.weight.sum().item())"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "cache")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    name, scale, total = out.stdout.split()
    assert (name, scale) == ("HAT", "2") and float(total) == pytest.approx(expected, abs=1e-5)

    missing = subprocess.run([sys.executable, "-c", "from sr_models import load_model; load_model('someone/other')"],
                             env=env, capture_output=True, text=True)
    assert missing.returncode != 0 and "cannot fetch 'someone/other'" in missing.stderr


@pytest.mark.parametrize("name,arch", [("espcn-faces", "ESPCN"), ("hat-faces", "HAT")])
def test_bundled_weights_load_with_their_cards(name, arch):
    model = load_model(name)
    assert type(model).__name__ == arch and model.scale == 4 and not model.training
    assert model.card_info.faces and "non-commercial" in model.card_info.licence_note
    evaluation = model.card_info.evaluations[0]
    assert evaluation["model"]["psnr"] > evaluation["bicubic"]["psnr"] + 1.0


def test_env_var_overrides_bundled_weights_and_falls_back_offline(tmp_path):
    ESPCN.from_preset("espcn-tiny").save_pretrained(tmp_path / "mine")
    code = ("import logging; logging.basicConfig(); from sr_models.loading import load_bundled; "
            "m, source = load_bundled('espcn-faces'); print(m.num_parameters, '|', source)")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "SR_ESPCN_MODEL": str(tmp_path / "mine")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split("|")[0].strip() == str(ESPCN.from_preset("espcn-tiny").num_parameters)
    assert "SR_ESPCN_MODEL" in out.stdout
    env["SR_ESPCN_MODEL"] = "someone/not-cached"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert "bundled weights/espcn-faces-x4" in out.stdout and "cannot be loaded" in out.stderr
