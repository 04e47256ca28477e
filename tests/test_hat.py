"""HAT against the official implementation: layouts, reference outputs, behaviour."""

import pytest
import torch

from conftest import load_reference, official_layouts
from sr_models import HAT, upscale_tensor
from sr_models.hat import PRESETS
from sr_models.hat_attention import shifted_window_mask

LAYOUTS = official_layouts()


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_state_dict_layout_matches_official(name):
    entry = LAYOUTS[name]
    # Shapes and order need no storage: build the big presets on the meta device, once each.
    with torch.device("meta"):
        model = HAT(**entry["config"])
    layout = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    assert layout == [(k, v) for k, v in entry["state_dict"].items()]
    assert sum(p.numel() for p in model.parameters()) == entry["parameters"]


@pytest.mark.parametrize("preset,official", [("hat-s", "HAT-S"), ("hat", "HAT"), ("hat-l", "HAT-L")])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_official_presets_equal_official_configs(preset, official, scale):
    config = LAYOUTS[f"{official}_SRx{scale}"]["config"]
    preset_config = {**PRESETS[preset], "upscale": scale}
    assert {k: preset_config[k] for k in config if k not in ("img_size", "in_chans")} == {
        k: v for k, v in config.items() if k not in ("img_size", "in_chans")
    }


def test_small_preset_fits_a_cpu_budget():
    assert HAT.from_preset("hat-small").num_parameters <= 2_000_000


@pytest.mark.parametrize("attn_impl", ["sdpa", "math"])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_reference_vectors(scale, attn_impl):
    ref = load_reference(scale)
    model = HAT(**ref["config"], attn_impl=attn_impl).eval()
    model.load_state_dict(ref["weights"], strict=True)
    with torch.no_grad():
        for lr, expected in zip(ref["inputs"], ref["outputs"]):
            out = upscale_tensor(model, lr)
            assert out.shape == expected.shape
            assert (out - expected).abs().max().item() <= 1e-4


def test_index_buffers_equal_official_ones():
    ref = load_reference(4)
    model = HAT(**ref["config"])
    for name in ("relative_position_index_SA", "relative_position_index_OCA"):
        assert torch.equal(getattr(model, name), ref["weights"][name])
    assert (model.relative_position_index_OCA < 0).any(), "upstream's index relies on wrap-around"


def test_shift_mask_is_cached_per_size():
    model = HAT.from_preset("hat-tiny").eval()
    x = torch.rand(1, 3, 16, 24)
    with torch.no_grad():
        model(x)
        first = model._shift_mask(16, 24, x.device)
        model(x)
    assert model._shift_mask(16, 24, x.device) is first
    assert len(model._shift_masks) == 1
    assert torch.equal(first, shifted_window_mask(16, 24, 8, 4))


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_forward_shapes_at_odd_sizes(preset):
    model = HAT.from_preset(preset, upscale=3).eval()
    with torch.no_grad():
        out = upscale_tensor(model, torch.rand(1, 3, 13, 7))
    assert out.shape == (1, 3, 39, 21)
    assert torch.isfinite(out).all()


def test_unpadded_input_is_rejected_with_advice():
    model = HAT.from_preset("hat-tiny")
    with pytest.raises(ValueError, match="multiple of window_size=8.*upscale_tensor"):
        model(torch.rand(1, 3, 12, 16))


def test_gradient_checkpointing_gives_the_same_gradients():
    torch.manual_seed(1)
    model = HAT.from_preset("hat-tiny", drop_path_rate=0.1).train()
    x, y = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 64, 64)

    def grads(enabled: bool):
        model.zero_grad()
        model.set_gradient_checkpointing(enabled)
        torch.manual_seed(2)  # same DropPath draws in both runs
        torch.nn.functional.l1_loss(model(x), y).backward()
        return {n: p.grad.clone() for n, p in model.named_parameters()}

    plain, checkpointed = grads(False), grads(True)
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], rtol=1e-5, atol=1e-7, msg=name)


def test_gradient_checkpointing_really_recomputes():
    """Each block's forward starts twice per step when checkpointing (again in backward);
    a pre-hook, since recomputation may stop before the block's end."""
    model = HAT.from_preset("hat-tiny", gradient_checkpointing=True).train()
    block = model.layers[0].residual_group.blocks[0]
    calls = []
    block.register_forward_pre_hook(lambda *_: calls.append(1))
    model(torch.rand(1, 3, 8, 8)).mean().backward()
    assert len(calls) == 2
    calls.clear()
    model.set_gradient_checkpointing(False)
    model(torch.rand(1, 3, 8, 8)).mean().backward()
    assert len(calls) == 1


@pytest.mark.parametrize("attn_impl", ["sdpa", "math"])
def test_one_training_step_is_finite_and_changes_weights(attn_impl):
    model = HAT.from_preset("hat-tiny", upscale=2, attn_impl=attn_impl).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    before = model.conv_first.weight.detach().clone()
    loss = torch.nn.functional.l1_loss(model(torch.rand(2, 3, 16, 16)), torch.rand(2, 3, 32, 32))
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert not torch.equal(before, model.conv_first.weight)


def test_set_attn_impl_switches_the_whole_model_and_keeps_outputs():
    ref = load_reference(2)
    model = HAT(**ref["config"]).eval()
    model.load_state_dict(ref["weights"])
    with torch.no_grad():
        sdpa = upscale_tensor(model, ref["inputs"][1])
        model.set_attn_impl("math")
        math_out = upscale_tensor(model, ref["inputs"][1])
    # the path is chosen in one place, the model; no block keeps a choice of its own
    assert [m for m in model.modules() if hasattr(m, "attn_impl")] == [model] and model.attn_impl == "math"
    assert (sdpa - math_out).abs().max() < 1e-5
    with pytest.raises(ValueError, match="attn_impl='flash'"):
        model.set_attn_impl("flash")


@pytest.mark.parametrize("bad,match", [
    (dict(upscale=5), "upscale=5"),
    (dict(window_size=7), "window_size=7"),
    (dict(num_heads=[5, 5], depths=[2, 2], embed_dim=24), "num_heads"),
    (dict(depths=[2, 2], num_heads=[2]), "num_heads"),
    (dict(upsampler="nearest+conv"), "upsampler"),
    (dict(attn_impl="flash"), "attn_impl"),
    (dict(ape=True), "ape=True"),
])
def test_bad_config_values_are_named(bad, match):
    config = {**PRESETS["hat-tiny"], **bad}
    with pytest.raises(ValueError, match=match):
        HAT(**config)
