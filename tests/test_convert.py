"""Official checkpoint import: format handling, config inference, refusal of pickles."""

import pickle

import pytest
import torch
from safetensors.torch import save_file

from conftest import load_reference, official_layouts
from sr_models import HAT, load_model, load_official, upscale_tensor
from sr_models.__main__ import main
from sr_models.convert_hat import OfficialCheckpointError, infer_config


def _official_pth(path, weights, wrapper="params_ema", prefix="module."):
    torch.save({wrapper: {prefix + k: v for k, v in weights.items()}}, path)
    return path


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_convert_round_trip_reproduces_the_official_outputs(tmp_path, scale):
    ref = load_reference(scale)
    pth = _official_pth(tmp_path / "official.pth", ref["weights"])
    assert main(["convert-hat", str(pth), str(tmp_path / "out")]) == 0
    model = HAT.from_pretrained(tmp_path / "out")
    with torch.no_grad():
        for lr, expected in zip(ref["inputs"], ref["outputs"]):
            assert (upscale_tensor(model, lr) - expected).abs().max() <= 1e-4


@pytest.mark.parametrize("name", ["HAT-S_SRx4", "HAT_SRx3", "HAT-L_SRx2"])
def test_config_is_inferred_from_shapes_for_official_layouts(name):
    entry = official_layouts()[name]
    state = {k: torch.empty(v, device="meta") for k, v in entry["state_dict"].items()}
    config, notes = infer_config(state)
    for key, value in config.items():
        if key in entry["config"]:
            assert value == entry["config"][key], key
    assert any("img_range" in n for n in notes) and any("conv_scale" in n for n in notes)


@pytest.mark.parametrize("wrapper,prefix", [("params", ""), ("params_ema", "module."), (None, "")])
def test_wrappers_and_prefixes_are_unwrapped(tmp_path, wrapper, prefix):
    ref = load_reference(2)
    weights = {prefix + k: v for k, v in ref["weights"].items()}
    state = {wrapper: weights} if wrapper else weights
    torch.save(state, tmp_path / "w.pth")
    assert load_official(tmp_path / "w.pth").scale == 2


def test_safetensors_and_load_model_paths(tmp_path):
    ref = load_reference(3)
    save_file(ref["weights"], tmp_path / "official.safetensors")
    model = load_model(tmp_path / "official.safetensors")
    assert isinstance(model, HAT) and model.scale == 3


def test_shape_mismatch_is_reported_with_the_key(tmp_path):
    weights = dict(load_reference(2)["weights"])
    weights["layers.1.conv.weight"] = torch.zeros(24, 24, 1, 1)
    with pytest.raises(OfficialCheckpointError, match=r"layers\.1\.conv\.weight"):
        load_official(weights)


def test_not_a_hat_checkpoint(tmp_path):
    torch.save({"params": {"weight": torch.zeros(1)}}, tmp_path / "x.pth")
    with pytest.raises(OfficialCheckpointError, match="conv_first.weight"):
        load_official(tmp_path / "x.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(OfficialCheckpointError, match="junk.pth cannot be read as plain weights"):
        load_official(tmp_path / "junk.pth")


class _Exploit:
    def __reduce__(self):
        import os
        return (os.system, ("touch pwned-by-pickle",))


@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_a_malicious_pickle_is_refused_without_running(tmp_path, monkeypatch, writer):
    monkeypatch.chdir(tmp_path)
    payload = {"params_ema": {"conv_first.weight": torch.zeros(1), "x": _Exploit()}}
    if writer == "pickle":
        with open("evil.pth", "wb") as f:
            pickle.dump(payload, f)
    else:
        torch.save(payload, "evil.pth")
    with pytest.raises(OfficialCheckpointError, match="refusing to unpickle"):
        load_official("evil.pth")
    assert not (tmp_path / "pwned-by-pickle").exists()
    assert main(["convert-hat", "evil.pth", "out"]) == 2
    assert not (tmp_path / "pwned-by-pickle").exists()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_cli_refuses_to_overwrite_a_non_empty_folder(tmp_path, capsys):
    pth = _official_pth(tmp_path / "o.pth", load_reference(2)["weights"])
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    assert main(["convert-hat", str(pth), str(tmp_path / "out")]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


def test_cli_info(capsys):
    assert main(["info", "hat-s"]) == 0
    out = capsys.readouterr().out
    assert "HAT" in out and "x4" in out and "9,621,183" in out
