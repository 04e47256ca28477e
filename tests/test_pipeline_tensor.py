import numpy as np
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


def test_upscale_tensor_takes_an_unbatched_image():
    model = ESPCN.from_preset("espcn-tiny", upscale=2)
    x = torch.rand(3, 5, 7)
    with torch.no_grad():
        out = upscale_tensor(model, x)
    assert out.shape == (3, 10, 14)
    assert torch.allclose(out, upscale_tensor(model, x[None])[0], atol=1e-6)


@pytest.fixture(scope="module", params=["espcn-tiny", "hat-tiny"])
def any_model(request):
    cls = ESPCN if request.param.startswith("espcn") else HAT
    return cls.from_preset(request.param, upscale=2).eval()


def _nan_pixel():
    x = torch.rand(1, 3, 8, 8)
    x[0, 1, 3, 4] = float("nan")
    return x


@pytest.mark.parametrize("make_input,message", [
    (lambda: (torch.rand(1, 3, 8, 8) * 255).to(torch.uint8), r"float tensor.*uint8.*/ 255"),
    (lambda: torch.rand(1, 1, 8, 8), r"expected 3 channels.*got 1"),
    (lambda: torch.rand(1, 4, 8, 8), r"expected 3 channels.*got 4"),
    (_nan_pixel, "NaN or infinite"),
    (lambda: torch.full((1, 3, 8, 8), float("inf")), "NaN or infinite"),
    (lambda: torch.rand(1, 3, 0, 8), "empty input"),
    (lambda: torch.rand(1, 1, 3, 8, 8), r"\(B, C, H, W\) or \(C, H, W\)"),
    (lambda: torch.rand(8, 8), r"\(B, C, H, W\) or \(C, H, W\)"),
])
def test_both_models_share_one_input_check(any_model, make_input, message):
    with torch.no_grad(), pytest.raises(ValueError, match=message):
        upscale_tensor(any_model, make_input())


def test_upscale_tensor_refuses_what_is_not_a_tensor(any_model):
    with pytest.raises(TypeError, match="ndarray"):
        upscale_tensor(any_model, np.zeros((1, 3, 8, 8), np.float32))


def test_a_non_finite_output_is_an_error_naming_the_model(tmp_path):
    """Finite input, broken model: an error naming the model, never an all-black image
    (issue 19, item 8)."""
    from PIL import Image

    from sr_models import upscale
    from sr_models.pipeline import NonFiniteOutputError

    model = ESPCN.from_preset("espcn-tiny", upscale=2).eval()
    with torch.no_grad():
        model.body[-1].bias[0] = float("inf")  # as weights of 1e38 overflow to
    with pytest.raises(NonFiniteOutputError, match=r"^the ESPCN model gave NaN or infinite values for this input"):
        with torch.no_grad():
            upscale_tensor(model, torch.rand(1, 3, 8, 8))
    model.name_or_path = str(tmp_path / "broken")
    with pytest.raises(ValueError, match=rf"^ESPCN \({tmp_path / 'broken'}\) gave NaN or infinite values"):
        upscale(model, Image.new("RGB", (8, 8), "grey"), device="cpu")
    with pytest.raises(ValueError, match="gave NaN or infinite values"):  # each tile goes through the same check
        upscale(model, Image.new("RGB", (40, 40), "grey"), device="cpu", tile=16)
