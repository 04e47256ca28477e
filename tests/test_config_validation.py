"""Nonsense configurations fail before any tensor exists (issue 12, item 10).

Every bad value raises a ValueError that names the field, the value and the rule, before
the model registers a single parameter or buffer: ``depths=[100000, 3, 3]`` once
allocated more than 4 GB and was then misreported as a weights mismatch.
"""

import inspect
import json

import pytest
import torch
from torch import nn

from sr_models import ESPCN, HAT
from sr_models.espcn import CONFIG_RULES as ESPCN_RULES
from sr_models.hat import CONFIG_RULES, MAX_DEPTH, MAX_EMBED_DIM, MAX_GROUPS, MAX_WINDOW_SIZE, PRESETS

TINY = PRESETS["hat-tiny"]


def _refuse_allocation(monkeypatch):
    """From now on, fail the test if a model registers a parameter or a buffer."""
    def refuse(self, name, *args, **kwargs):
        raise AssertionError(f"{type(self).__name__}.{name} was allocated before the config was validated")

    monkeypatch.setattr(nn.Module, "register_parameter", refuse)
    monkeypatch.setattr(nn.Module, "register_buffer", refuse)


@pytest.fixture
def no_allocation(monkeypatch):
    _refuse_allocation(monkeypatch)


@pytest.mark.parametrize("bad,match", [
    (dict(upscale=4.0), r"upscale=4\.0 .*integer"),
    (dict(upscale=True), "upscale=True"),
    (dict(upscale="4"), "upscale='4'"),
    (dict(in_chans=0), "in_chans=0"),
    (dict(in_chans=3.0), r"in_chans=3\.0"),
    (dict(embed_dim=0), "embed_dim=0"),
    (dict(embed_dim=10**6), "embed_dim=1000000"),
    (dict(depths=[100000, 3], num_heads=[2, 2]), r"depths=\[100000, 3\]"),
    (dict(depths=[2] * 1000, num_heads=[2] * 1000), "depths"),
    (dict(depths=[]), r"depths=\[\]"),
    (dict(depths=5), "depths=5"),
    (dict(depths="22"), "depths='22'"),
    (dict(depths=[2, True]), "depths"),
    (dict(depths=[2, 2.0]), "depths"),
    (dict(num_heads=[2, 10**5]), "num_heads"),
    (dict(num_heads=None), "num_heads=None"),
    (dict(window_size=2 * MAX_WINDOW_SIZE), "window_size"),
    (dict(window_size=8.0), r"window_size=8\.0"),
    (dict(window_size=0), "window_size=0"),
    (dict(compress_ratio=0), "compress_ratio=0"),
    (dict(squeeze_factor=-1), "squeeze_factor=-1"),
    (dict(mlp_ratio=float("inf")), "mlp_ratio=inf"),
    (dict(mlp_ratio=True), "mlp_ratio=True"),
    (dict(mlp_ratio=1e6), "mlp_ratio"),
    (dict(overlap_ratio=float("nan")), "overlap_ratio=nan"),
    (dict(conv_scale=float("nan")), "conv_scale=nan"),
    (dict(conv_scale="0.01"), "conv_scale='0.01'"),
    (dict(conv_scale=1e308), r"conv_scale=1e\+308 .*\[-100, 100\]"),  # finite, but every output infinite
    (dict(img_range=1e308), r"img_range=1e\+308"),
    (dict(drop_path_rate="0.1"), "drop_path_rate='0.1'"),
    (dict(img_range=0), "img_range=0"),
    (dict(img_size=-1), "img_size=-1"),
    (dict(patch_size=True), "patch_size=True"),
    (dict(qkv_bias="yes"), "qkv_bias='yes'"),
    (dict(patch_norm=1), "patch_norm=1"),
    (dict(global_residual="false"), "global_residual='false'"),
    (dict(gradient_checkpointing=None), "gradient_checkpointing=None"),
    (dict(resi_connection=["1conv"]), "resi_connection"),
    (dict(attn_impl=None), "attn_impl=None"),
])
def test_hat_rejects_nonsense_before_allocating(bad, match, no_allocation):
    with pytest.raises(ValueError, match=f"HAT: {match}"):
        HAT(**{**TINY, **bad})


@pytest.mark.parametrize("bad,match", [
    (dict(upscale=4.0), r"upscale=4\.0"),
    (dict(upscale=False), "upscale=False"),
    (dict(in_chans="3"), "in_chans='3'"),
    (dict(in_chans=10**4), "in_chans"),
    (dict(channels=64), "channels=64"),
    (dict(channels=[64, 10**6, 32]), "channels"),
    (dict(channels=[8] * 1000, kernel_sizes=[3] * 1001), "channels"),
    (dict(kernel_sizes=[5, 3, 3, 999]), "kernel_sizes"),
    (dict(kernel_sizes=5), "kernel_sizes=5"),
    (dict(kernel_sizes=[5.0, 3, 3, 3]), "kernel_sizes"),
    (dict(activation=["relu"]), "activation"),
    (dict(global_residual="yes"), "global_residual='yes'"),
])
def test_espcn_rejects_nonsense_before_allocating(bad, match, no_allocation):
    with pytest.raises(ValueError, match=f"ESPCN: {match}"):
        ESPCN(**bad)


def test_every_hat_argument_has_a_rule():
    assert list(CONFIG_RULES) == list(inspect.signature(HAT).parameters)


def test_every_espcn_argument_has_a_rule():
    assert list(ESPCN_RULES) == list(inspect.signature(ESPCN).parameters)


def test_a_rule_that_combines_fields_names_the_field_and_the_count(no_allocation):
    with pytest.raises(ValueError, match=r"^ESPCN: kernel_sizes=\[3, 3\] is invalid: expected 3 sizes \(one per conv"):
        ESPCN(channels=[8, 8], kernel_sizes=[3, 3])
    with pytest.raises(ValueError, match=r"^HAT: num_heads=\[5, 5\] is invalid: each must divide embed_dim=24"):
        HAT(**{**TINY, "num_heads": [5, 5]})


def test_bounds_admit_configurations_well_beyond_the_largest_official_model():
    """hat-l has 12 groups of 6 blocks, width 180, window 16; each bound leaves room (the
    size of the whole model has its own bound: tests/test_model_size.py)."""
    with torch.device("meta"):
        HAT(depths=[MAX_DEPTH, 1], num_heads=[6, 6], window_size=MAX_WINDOW_SIZE)
        HAT(depths=[6, 6], num_heads=[8, 8], embed_dim=MAX_EMBED_DIM)
        HAT(depths=[1] * MAX_GROUPS, num_heads=[6] * MAX_GROUPS, embed_dim=180)
    assert MAX_DEPTH > 6 and MAX_GROUPS > 12 and MAX_EMBED_DIM > 180 and MAX_WINDOW_SIZE > 16


@pytest.mark.parametrize("field,value,match", [
    ("upscale", 4.0, r"upscale=4\.0"),
    ("depths", [100000, 3], r"depths=\[100000, 3\]"),
])
def test_a_saved_config_with_nonsense_is_refused_by_field_not_as_a_weights_mismatch(
        tmp_path, monkeypatch, field, value, match):
    HAT.from_preset("hat-tiny").save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, field: value}))
    _refuse_allocation(monkeypatch)
    with pytest.raises(ValueError, match=match):
        HAT.from_pretrained(tmp_path)
