import pytest
import torch

from sr_models import ESPCN, HAT, upscale_tensor
from sr_models.pipeline import pad_to_multiple


@pytest.mark.parametrize("h,w", [(1, 1), (2, 5), (3, 17), (9, 8), (16, 16)])
def test_pad_to_multiple_reaches_the_multiple_and_keeps_the_image(h, w):
    x = torch.rand(1, 3, h, w)
    y = pad_to_multiple(x, 8)
    assert y.shape[-2] % 8 == 0 and y.shape[-1] % 8 == 0
    assert torch.equal(y[..., :h, :w], x)


def test_reflect_padding_mirrors_the_border():
    x = torch.arange(12.0).view(1, 1, 3, 4)
    y = pad_to_multiple(x, 6)
    assert torch.equal(y[0, 0, 0, 4:], torch.tensor([2.0, 1.0]))  # reflect, not replicate


def test_upscale_tensor_crops_and_does_not_clamp():
    model = ESPCN.from_preset("espcn-tiny", upscale=2)
    with torch.no_grad():
        model.body[-1].bias.fill_(5.0)  # outputs far above 1
    out = upscale_tensor(model, torch.rand(1, 3, 5, 7))
    assert out.shape == (1, 3, 10, 14)
    assert out.max() > 1.0


def test_upscale_tensor_pads_to_the_window_for_hat():
    model = HAT.from_preset("hat-tiny", upscale=2).eval()
    with torch.no_grad():
        assert upscale_tensor(model, torch.rand(2, 3, 9, 10)).shape == (2, 3, 18, 20)


@pytest.mark.parametrize("shape", [(3, 8, 8), (1, 3, 0, 8)])
def test_upscale_tensor_rejects_bad_shapes(shape):
    with pytest.raises(ValueError):
        upscale_tensor(ESPCN.from_preset("espcn-tiny"), torch.rand(*shape))
