"""Known answers and invariants of sr_models.metrics (the evaluation protocol)."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data
from skimage.metrics import structural_similarity

from sr_models import metrics as M

# docs/protocol.md: bicubic on skimage's astronaut, PSNR-Y (dB).
KNOWN_PSNR_Y = {2: 31.71, 3: 28.68, 4: 26.84}


@functools.lru_cache(maxsize=None)
def _astronaut_pair(scale: int):
    hr = M.crop_to_multiple(Image.fromarray(data.astronaut()), scale)
    sr = M.bicubic_upscale(M.degrade(hr, scale), scale)
    return sr, hr


def _skimage_ssim_valid(a: np.ndarray, b: np.ndarray, **kw) -> float:
    # skimage pads its map (reflect); drop the half window (5 px) on each side to get
    # the "valid" region of the protocol, then average.
    _, full = structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255, full=True, **kw
    )
    return float(full[5:-5, 5:-5].mean())


def _y(img) -> np.ndarray:
    return M.rgb_to_y(np.asarray(img))


def _rand_uint8(rng, shape):
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


# ----------------------------------------------------------------- known answers


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_astronaut_psnr_known_answer(scale):
    sr, hr = _astronaut_pair(scale)
    assert hr.size == (512 - 512 % scale,) * 2
    value = M.psnr(sr, hr, crop_border=scale)
    assert value == pytest.approx(KNOWN_PSNR_Y[scale], abs=0.02)
    # Independent plain-numpy computation of the same definition.
    a, b = _y(sr)[scale:-scale, scale:-scale], _y(hr)[scale:-scale, scale:-scale]
    ref = 10 * np.log10(255.0**2 / np.mean((a - b) ** 2))
    assert value == pytest.approx(ref, abs=1e-9)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_astronaut_ssim_matches_skimage(scale):
    sr, hr = _astronaut_pair(scale)
    a, b = _y(sr)[scale:-scale, scale:-scale], _y(hr)[scale:-scale, scale:-scale]
    assert M.ssim(sr, hr, crop_border=scale) == pytest.approx(_skimage_ssim_valid(a, b), abs=1e-4)


@pytest.mark.parametrize("shape", [(11, 11), (2, 3, 5, 20, 13), (1, 40, 300)])
def test_gaussian_filter_is_the_valid_2d_convolution(shape):
    """The shifted-sum filter equals a 2D convolution with the outer product of its taps
    over the valid region, for any leading dimensions."""
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 255
    g = M._gaussian_1d(torch.float64, torch.device("cpu"))
    planes = x.reshape(-1, 1, *shape[-2:])
    expected = torch.nn.functional.conv2d(planes, torch.outer(g, g)[None, None])
    got = M.gaussian_filter_valid(x, g.tolist())
    assert got.shape == (*shape[:-2], shape[-2] - 10, shape[-1] - 10)
    assert torch.allclose(got.reshape(expected.shape), expected, rtol=0, atol=1e-9)


def test_rgb_ssim_and_psnr_without_y_channel():
    sr, hr = _astronaut_pair(4)
    a = np.asarray(sr, dtype=np.float64)[4:-4, 4:-4]
    b = np.asarray(hr, dtype=np.float64)[4:-4, 4:-4]
    ref_ssim = _skimage_ssim_valid(a, b, channel_axis=2)
    assert M.ssim(sr, hr, 4, y_channel=False) == pytest.approx(ref_ssim, abs=1e-4)
    ref_psnr = 10 * np.log10(255.0**2 / np.mean((a - b) ** 2))
    assert M.psnr(sr, hr, 4, y_channel=False) == pytest.approx(ref_psnr, abs=1e-9)


def test_rgb_to_y():
    white, black = np.full((1, 1, 3), 255, np.uint8), np.zeros((1, 1, 3), np.uint8)
    assert M.rgb_to_y(white)[0, 0] == pytest.approx(235.0, abs=1e-9)
    assert M.rgb_to_y(black)[0, 0] == pytest.approx(16.0)
    rng = np.random.default_rng(0)
    arr = _rand_uint8(rng, (5, 6, 3))
    t = torch.from_numpy(arr).permute(2, 0, 1).double() / 255
    np.testing.assert_allclose(M.rgb_to_y(t).numpy(), M.rgb_to_y(arr), atol=1e-12)
    with pytest.raises(ValueError):
        M.rgb_to_y(np.zeros((4, 4), np.uint8))


# ------------------------------------------------------------------- input types


def test_all_input_types_agree():
    rng = np.random.default_rng(1)
    hr_arr = _rand_uint8(rng, (40, 36, 3))
    sr_arr = np.clip(hr_arr.astype(int) + rng.integers(-20, 21, hr_arr.shape), 0, 255).astype(np.uint8)

    def variants(arr):
        t = torch.from_numpy(arr).permute(2, 0, 1).float() / 255
        return [Image.fromarray(arr), arr, t, t.unsqueeze(0), t.double()]

    for fn in (M.psnr, M.ssim):
        # exact: every type becomes the same uint8 values, then runs the same float64 code
        ref = fn(sr_arr, hr_arr, 3)
        for s in variants(sr_arr):
            for h in variants(hr_arr):
                assert fn(s, h, 3) == ref, (fn.__name__, type(s), type(h))


def test_float_tensors_are_rounded_to_uint8_first():
    rng = np.random.default_rng(2)
    sr = torch.from_numpy(rng.uniform(-0.1, 1.1, (3, 32, 30)))
    hr = torch.from_numpy(rng.uniform(0, 1, (3, 32, 30))).float()
    rounded = lambda t: np.round(t.double().clamp(0, 1).numpy() * 255).astype(np.uint8).transpose(1, 2, 0)
    assert M.psnr(sr, hr, 2) == M.psnr(rounded(sr), rounded(hr), 2)
    assert M.ssim(sr, hr, 2) == M.ssim(rounded(sr), rounded(hr), 2)
    np.testing.assert_array_equal(M.to_uint8_array(sr), rounded(sr))


def test_grayscale_inputs_are_used_as_luma():
    rng = np.random.default_rng(3)
    a, b = _rand_uint8(rng, (30, 30)), _rand_uint8(rng, (30, 30))
    ref = 10 * np.log10(255.0**2 / np.mean((a[2:-2, 2:-2].astype(float) - b[2:-2, 2:-2]) ** 2))
    assert M.psnr(a, b, 2) == pytest.approx(ref, abs=1e-9)
    assert M.psnr(Image.fromarray(a), a[:, :, None].copy(), 2) == M.psnr(a, a, 2)
    assert M.ssim(a, b, 2) == pytest.approx(
        _skimage_ssim_valid(a[2:-2, 2:-2].astype(float), b[2:-2, 2:-2].astype(float)), abs=1e-4
    )


def test_rejected_inputs():
    arr = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(TypeError, match="uint8"):
        M.psnr(arr.astype(np.float32), arr, 0)
    with pytest.raises(ValueError, match="mode"):
        M.psnr(Image.new("RGBA", (16, 16)), arr, 0)
    with pytest.raises(TypeError):
        M.psnr(arr.tolist(), arr, 0)
    with pytest.raises(ValueError, match="batch"):
        M.psnr(torch.zeros(2, 3, 16, 16), torch.zeros(2, 3, 16, 16), 0)
    with pytest.raises(ValueError, match="same size"):
        M.psnr(arr, arr[:, :, 0], 0)  # RGB vs grayscale


# --------------------------------------------------------------- batch == scalar


@pytest.mark.parametrize("y_channel", [True, False])
def test_batched_equals_scalar(y_channel):
    g = torch.Generator().manual_seed(0)
    hr = torch.rand(3, 3, 41, 37, generator=g)
    sr = (hr + 0.1 * torch.randn(hr.shape, generator=g)).clamp(-0.05, 1.05)  # out of range on purpose
    sr[1] = hr[1]  # identical pair in the batch -> inf PSNR
    p = M.psnr_batch(sr, hr, 4, y_channel=y_channel)
    s = M.ssim_batch(sr, hr, 4, y_channel=y_channel)
    assert p.shape == s.shape == (3,)
    assert p.dtype == s.dtype == torch.float64
    for i in range(3):
        ps, ss = M.psnr(sr[i], hr[i], 4, y_channel), M.ssim(sr[i], hr[i], 4, y_channel)
        if i == 1:
            assert ps == float(p[i]) == float("inf")
        else:
            assert abs(ps - float(p[i])) < 1e-6
        assert abs(ss - float(s[i])) < 1e-6


def test_batched_validation():
    x = torch.rand(2, 3, 20, 20)
    with pytest.raises(ValueError, match="same size"):
        M.psnr_batch(x, torch.rand(2, 3, 20, 21), 0)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        M.ssim_batch(x[0], x[0], 0)
    with pytest.raises(TypeError):
        M.psnr_batch((x * 255).to(torch.int64), x, 0)  # uint8 levels are taken, other integers not


def test_batched_needs_no_grad():
    x = torch.rand(1, 3, 16, 16, requires_grad=True)
    assert not M.psnr_batch(x, x.detach() * 0.5, 0).requires_grad


# ------------------------------------------------------------- edge cases, errors


def test_identical_images():
    arr = _rand_uint8(np.random.default_rng(4), (24, 24, 3))
    assert M.psnr(arr, arr, 2) == float("inf")
    assert M.ssim(arr, arr, 2) == pytest.approx(1.0, abs=1e-12)


def test_size_mismatch_names_both_sizes():
    a, b = np.zeros((32, 30, 3), np.uint8), np.zeros((32, 31, 3), np.uint8)
    for fn in (M.psnr, M.ssim):
        with pytest.raises(ValueError) as err:
            fn(a, b, 0)
        assert "32x30" in str(err.value) and "32x31" in str(err.value)


def test_too_small_for_ssim_window():
    a = np.zeros((20, 21, 3), np.uint8)
    with pytest.raises(ValueError, match=r"too small.*11x11"):
        M.ssim(a, a, 5)  # 10x11 left
    assert M.ssim(a, a, 4) == pytest.approx(1.0)  # 12x13 left
    ok = np.zeros((11, 11), np.uint8)
    assert M.ssim(ok, ok, 0) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="too small"):
        M.psnr(a, a, 10)  # nothing left
    assert M.psnr(a, a, 9) == float("inf")


@pytest.mark.parametrize("bad", [-1, 1.0, True, "2"])
def test_invalid_crop_border(bad):
    a = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises((TypeError, ValueError)):
        M.psnr(a, a, bad)
    with pytest.raises((TypeError, ValueError)):
        M.ssim_batch(torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 32, 32), bad)


def test_the_protocol_names_are_still_importable_from_here():
    """crop_to_multiple, degrade and bicubic_upscale live in sr_models.protocol (tests/test_protocol.py)."""
    from sr_models import protocol

    assert (M.crop_to_multiple, M.degrade, M.bicubic_upscale) == (
        protocol.crop_to_multiple, protocol.degrade, protocol.bicubic_upscale)
    with pytest.raises(AttributeError, match="no attribute 'make_pear'"):
        M.make_pear  # noqa: B018
