"""The architecture registry: state dicts recognised by their keys, single weights files
loaded by detection (an ESPCN's bare state dict included), clear refusals, the CLI's
``convert`` (and its old name ``convert-hat``) and ``info``'s portability line."""

import dataclasses
import logging

import pytest
import torch
from safetensors.torch import save_file

import sr_models.architectures as architectures
from conftest import load_reference
from sr_models import ESPCN, HAT, CheckpointError, load_model, upscale_tensor
from sr_models.__main__ import main
from sr_models.architectures import REGISTRY, architecture_of_model, detect, load_state_dict_file
from sr_models.loading import ARCHITECTURES, OFFICIAL_SUFFIXES
from sr_models.state_dicts import STATE_DICT_SUFFIXES, KeyCondition

TINY = {"HAT": "hat-tiny", "ESPCN": "espcn-tiny"}


def _trained_like(cls, preset, **config):
    """A model whose weights are not the initialisation (so a wrong load would show)."""
    torch.manual_seed(3)
    model = cls.from_preset(preset, **config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return model


def test_every_architecture_is_registered_under_its_class_name_in_detection_order():
    assert list(REGISTRY) == ["HAT", "ESPCN"]  # the most specific first
    assert all(name == arch.cls.__name__ for name, arch in REGISTRY.items())
    assert ARCHITECTURES == {"HAT": HAT, "ESPCN": ESPCN} and OFFICIAL_SUFFIXES == STATE_DICT_SUFFIXES  # old names


@pytest.mark.parametrize("name", list(REGISTRY))
def test_each_state_dict_is_detected_as_its_own_architecture_only(name):
    cls = REGISTRY[name].cls
    for preset in cls.presets:
        with torch.device("meta"):
            state = cls.from_preset(preset).state_dict()
        assert detect(state) is REGISTRY[name], preset
        assert [other for other, arch in REGISTRY.items() if arch.detect(state)] == [name], preset


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_a_bare_espcn_state_dict_loads_as_espcn_with_the_same_outputs(tmp_path, suffix, caplog):
    model = _trained_like(ESPCN, "espcn-paper", upscale=3)
    path = tmp_path / f"espcn{suffix}"
    if suffix == ".pth":
        torch.save(model.state_dict(), path)
    else:
        save_file(model.state_dict(), path)
    lr = torch.rand(1, 3, 9, 7)
    with caplog.at_level(logging.WARNING):
        loaded = load_model(path, activation="tanh")  # the paper's network; the activation is not stored
    assert isinstance(loaded, ESPCN) and loaded.pretrained and not loaded.training
    assert loaded.config == model.config and loaded.name_or_path == str(path)
    with torch.no_grad():
        torch.testing.assert_close(upscale_tensor(loaded, lr), upscale_tensor(model, lr))
    # what the weights do not tell is said, unless given
    assert [r.getMessage().split()[0] for r in caplog.records] == ["global_residual"]


def test_an_espcn_state_dict_whose_shapes_fit_no_espcn_is_refused_saying_what_was_detected(tmp_path):
    state = ESPCN.from_preset("espcn-tiny").state_dict()
    torch.save({**state, "body.4.weight": torch.zeros(5, 8, 3, 3)}, tmp_path / "odd.pth")  # not 3 x upscale²
    with pytest.raises(CheckpointError, match=rf"^{tmp_path / 'odd.pth'} holds ESPCN weights \(by its keys\), but "
                                              "no valid ESPCN has these shapes: the last conv has 5 outputs"):
        load_model(tmp_path / "odd.pth")
    state["body.4.weight"] = torch.zeros(3 * 4, 8, 3, 3)  # x2, but the bias of the x4 model
    with pytest.raises(CheckpointError, match=r"does not match the inferred ESPCN config .*body\.4\.bias"):
        load_state_dict_file(state)
    one_conv = {"body.0.weight": torch.zeros(12, 3, 3, 3), "body.0.bias": torch.zeros(12)}  # no hidden layer
    with pytest.raises(CheckpointError, match=r"no valid ESPCN has these shapes: ESPCN: channels=\[\] is invalid"):
        load_state_dict_file(one_conv)
    with pytest.raises(CheckpointError, match=r"convs are body\.0, body\.2, .*found convs at body\.\[0, 1\]"):
        load_state_dict_file({**one_conv, "body.1.weight": torch.zeros(12, 12, 3, 3)})


@pytest.mark.parametrize("state,lacking", [
    ({"weight": torch.zeros(1)}, "HAT lacks conv_first.weight"),
    # SwinIR's keys: HAT's but for the overlapping cross-attention
    ({"conv_first.weight": torch.zeros(4, 3, 3, 3),
      "layers.0.residual_group.blocks.0.attn.relative_position_bias_table": torch.zeros(9, 2)},
     "HAT lacks layers.0.residual_group.overlap_attn.relative_position_bias_table"),
])
def test_a_state_dict_of_no_known_architecture_says_what_each_lacks(tmp_path, state, lacking):
    save_file(state, tmp_path / "other.safetensors")
    with pytest.raises(CheckpointError) as err:
        load_model(tmp_path / "other.safetensors")
    message = str(err.value)
    assert message.startswith(f"{tmp_path / 'other.safetensors'} holds no known architecture (")
    assert lacking in message and "ESPCN lacks body.0.weight" in message and "its first keys" in message


def test_an_architecture_without_a_converter_refuses_its_files_by_name(monkeypatch):
    monkeypatch.setitem(REGISTRY, "ESPCN", dataclasses.replace(REGISTRY["ESPCN"], convert=None))
    with pytest.raises(CheckpointError, match="holds ESPCN weights, but ESPCN has no state-dict converter"):
        load_state_dict_file(ESPCN.from_preset("espcn-tiny").state_dict())


@pytest.mark.parametrize("command", ["convert", "convert-hat"])
def test_convert_writes_a_folder_of_the_detected_architecture(tmp_path, command, capsys):
    official = tmp_path / "official.pth"
    torch.save({"params_ema": load_reference(2)["weights"]}, official)
    espcn = tmp_path / "espcn.pth"
    torch.save(_trained_like(ESPCN, "espcn-tiny").state_dict(), espcn)
    for source, cls in [(official, HAT), (espcn, ESPCN)]:
        out = tmp_path / f"{source.stem}-{command}"
        assert main([command, str(source), str(out)]) == 0
        assert isinstance(load_model(out), cls)
        assert f"converted {source} -> {out} ({cls.__name__} x" in capsys.readouterr().out


@pytest.mark.parametrize("arch,config,expected", [
    ("HAT", {}, "official HAT layout and forward"),
    ("HAT", {"global_residual": True}, "official HAT layout, but needs sr-models"),
    ("ESPCN", {}, "sr-models"),
])
def test_info_says_where_the_weights_run_from_the_registry(tmp_path, capsys, arch, config, expected):
    REGISTRY[arch].cls.from_preset(TINY[arch], **config).save_pretrained(tmp_path / "m")
    assert main(["info", str(tmp_path / "m")]) == 0
    assert f"format:       {expected}" in capsys.readouterr().out


def test_a_model_of_an_unregistered_class_is_named():
    class Bicubic(ESPCN):
        pass

    assert architecture_of_model(ESPCN.from_preset("espcn-tiny")) is REGISTRY["ESPCN"]
    with pytest.raises(ValueError, match="Bicubic is not a registered architecture; known: HAT, ESPCN"):
        architecture_of_model(Bicubic(channels=[4], kernel_sizes=[3, 3]))


def test_key_conditions_say_what_is_missing():
    condition = KeyCondition.has_all("a", KeyCondition.has_any("b", "c"), KeyCondition.only(r"[abc]"))
    assert condition({"a": 0, "c": 0}) and not condition({"a": 0})
    assert condition.missing({"c": 0}) == ["a"]
    assert condition.missing({"a": 0}) == ["any of ['b', 'c']"]
    assert condition.missing({"a": 0, "b": 0, "z": 0}) == ["keys other than '[abc]': ['z']"]
    assert str(condition) == "all of (a, any of (b, c), only keys matching '[abc]')"


def test_the_registry_is_what_load_model_dispatches_on(monkeypatch, tmp_path):
    """A file goes to the converter of the detected entry, with the caller's overrides."""
    calls = []
    entry = dataclasses.replace(REGISTRY["ESPCN"], convert=lambda state, where, **kw: calls.append((where, kw)))
    monkeypatch.setitem(architectures.REGISTRY, "ESPCN", entry)
    torch.save(ESPCN.from_preset("espcn-tiny").state_dict(), tmp_path / "w.pt")
    load_model(tmp_path / "w.pt", activation="tanh")
    assert calls == [(str(tmp_path / "w.pt"), {"activation": "tanh"})]


def test_a_detected_hat_file_that_cannot_be_inferred_names_the_file_and_the_key(tmp_path):
    weights = dict(load_reference(2)["weights"])
    del weights["layers.0.residual_group.blocks.0.mlp.fc1.weight"]
    save_file(weights, tmp_path / "partial.safetensors")
    with pytest.raises(CheckpointError, match=rf"^{tmp_path / 'partial.safetensors'}: cannot infer the configuration: "
                                              r"key 'layers\.0\.residual_group\.blocks\.0\.mlp\.fc1\.weight' is missing"):
        load_model(tmp_path / "partial.safetensors")
