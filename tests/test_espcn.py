import pytest
import torch

from sr_models import ESPCN, upscale_tensor


@pytest.mark.parametrize("scale", [2, 3, 4, 8])
def test_default_shapes_and_layers(scale):
    model = ESPCN(upscale=scale)
    convs = [m for m in model.body if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size[0]) for c in convs] == [(64, 5), (64, 3), (32, 3), (3 * scale**2, 3)]
    assert all(isinstance(m, torch.nn.ReLU) for m in model.body if not isinstance(m, torch.nn.Conv2d))
    out = upscale_tensor(model, torch.rand(2, 3, 11, 6))
    assert out.shape == (2, 3, 11 * scale, 6 * scale)
    assert model.pad_multiple == 1 and model.scale == scale


def test_paper_variant_uses_tanh():
    model = ESPCN.from_preset("espcn-paper", upscale=3)
    assert [type(m).__name__ for m in model.body] == ["Conv2d", "Tanh", "Conv2d", "Tanh", "Conv2d"]
    assert model.receptive_radius == 2 + 1 + 1


def test_configurable_widths_and_kernels():
    model = ESPCN(upscale=2, channels=[16, 16, 16, 8], kernel_sizes=[7, 3, 3, 3, 1])
    assert model.receptive_radius == 3 + 1 + 1 + 1 + 0
    assert upscale_tensor(model, torch.rand(1, 3, 5, 5)).shape == (1, 3, 10, 10)


@pytest.mark.parametrize("bad,match", [
    (dict(upscale=5), "upscale=5"),
    (dict(channels=[64, 32], kernel_sizes=[5, 3]), "kernel_sizes"),
    (dict(kernel_sizes=[5, 4, 3, 3]), "kernel_sizes"),
    (dict(activation="gelu"), "activation='gelu'"),
    (dict(channels=[]), "channels"),
])
def test_bad_config_values_are_named(bad, match):
    with pytest.raises(ValueError, match=match):
        ESPCN(**bad)


def test_training_step_reduces_loss_on_a_fixed_batch():
    model = ESPCN.from_preset("espcn-tiny", upscale=2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    lr, hr = torch.rand(4, 3, 8, 8), torch.rand(4, 3, 16, 16)
    losses = []
    for _ in range(20):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(lr), hr)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0]
