"""Official checkpoint import: format handling, config inference, refusal of pickles."""

import pickle

import pytest
import torch
from safetensors.torch import save_file

from conftest import load_reference, official_layouts
from sr_models import HAT, load_model, load_official, upscale_tensor
from sr_models.__main__ import main
from sr_models.convert_hat import NOT_IN_WEIGHTS, OfficialCheckpointError, infer_config


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
    config = infer_config(state)
    for key, value in config.items():
        if key in entry["config"]:
            assert value == entry["config"][key], key
    # what the shapes cannot tell is exactly what the notes cover
    assert set(entry["config"]) - set(config) == set(NOT_IN_WEIGHTS)


def test_notes_are_logged_only_for_fields_not_given(caplog):
    weights = load_reference(2)["weights"]
    with caplog.at_level("WARNING", logger="sr_models.convert_hat"):
        load_official(weights)
    assert {r.getMessage().split()[0] for r in caplog.records} == set(NOT_IN_WEIGHTS)
    caplog.clear()
    with caplog.at_level("WARNING", logger="sr_models.convert_hat"):
        model = load_official(weights, img_range=1.0, conv_scale=0.01)
    assert [r.getMessage().split()[0] for r in caplog.records] == ["img_size"]
    assert "using 64" in caplog.records[0].getMessage()
    assert model.pretrained is True and not model.training


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


@pytest.mark.parametrize("content,match", [
    (torch.zeros(3), "holds a Tensor, not a dict of tensors"),
    ([torch.zeros(3)], "holds a list, not a dict of tensors"),
    (None, "holds a NoneType, not a dict of tensors"),
    ({1: torch.zeros(3), 2: torch.zeros(3)}, r"keys that are not strings: \[1, 2\]"),
    ({"params_ema": {0: torch.zeros(3)}}, r"keys that are not strings: \[0\]"),
    ({"params": {"conv_first.weight": {"nested": [1, 2]}}}, "entries are not tensors: .*conv_first.weight"),
    ({"params_ema": [1, 2]}, "entries are not tensors: .*params_ema"),
])
def test_a_pth_of_nonsense_is_refused_with_a_clear_message(tmp_path, content, match):
    torch.save(content, tmp_path / "odd.pth")
    with pytest.raises(OfficialCheckpointError, match=match):
        load_official(tmp_path / "odd.pth")


def test_junk_safetensors_is_refused(tmp_path):
    (tmp_path / "junk.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00not json")
    with pytest.raises(OfficialCheckpointError, match="junk.safetensors"):
        load_official(tmp_path / "junk.safetensors")


@pytest.mark.parametrize("key,shape,match", [
    ("conv_first.weight", (0, 3, 3, 3), r"conv_first\.weight has shape \(0, 3, 3, 3\)"),
    ("conv_first.weight", (24,), r"conv_first\.weight has shape \(24,\)"),
    ("layers.0.residual_group.blocks.0.mlp.fc1.weight", (0, 24), "mlp.fc1.weight"),
    ("layers.0.residual_group.blocks.0.conv_block.cab.0.weight", (0, 24, 3, 3), "cab.0.weight"),
    ("layers.0.residual_group.blocks.0.attn.relative_position_bias_table", (0, 2), "relative_position_bias_table"),
])
def test_degenerate_shapes_are_refused_without_arithmetic_errors(key, shape, match):
    weights = {**load_reference(2)["weights"], key: torch.zeros(shape)}
    with pytest.raises(OfficialCheckpointError, match=match):
        load_official(weights)


def test_shapes_that_imply_an_invalid_config_name_the_field():
    # A wider MLP than any HAT: mlp_ratio is inferred as 1000, above the bound.
    weights = dict(load_reference(2)["weights"])
    weights["layers.0.residual_group.blocks.0.mlp.fc1.weight"] = torch.zeros(24_000, 24)
    with pytest.raises(OfficialCheckpointError, match="mlp_ratio=1000"):
        load_official(weights)


def test_official_weights_that_are_not_finite_are_refused_naming_the_file(tmp_path):
    weights = dict(load_reference(2)["weights"])
    weights["conv_last.bias"] = torch.full_like(weights["conv_last.bias"], float("nan"))
    pth = _official_pth(tmp_path / "nan.pth", weights)
    with pytest.raises(OfficialCheckpointError, match=rf"^{pth} holds NaN or infinite weights .*conv_last\.bias"):
        load_official(pth)
