"""Realistic degradations: each stage does what it says, the pipeline is deterministic
from (seed, index), and the LR size is exact."""

import io
import json
from dataclasses import fields

import numpy as np
import pytest
import torch
from PIL import Image

from sr_models.degradations import (
    KERNEL_SIZES, PRESETS, STAGE_RULES, DegradationConfig, Stage, add_noise, anisotropic_kernel, blur, degrade_realistic, jpeg,
    random_blur_kernel, resize, sinc_kernel, to_pil, to_tensor,
)


def _photo(w: int, h: int, seed: int = 0) -> Image.Image:
    """A smooth colour pattern with some texture (JPEG and blur have something to do)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(w, h)
    base = np.stack([np.sin(6 * xx + 1), np.cos(5 * yy), np.sin(4 * (xx + yy))], -1) * 0.35 + 0.5
    texture = rng.normal(0, 0.05, (h, w, 3))
    return Image.fromarray((np.clip(base + texture, 0, 1) * 255).round().astype(np.uint8), "RGB")


@pytest.mark.parametrize("shape,beta", [("gaussian", 1.0), ("generalized", 0.6), ("generalized", 3.0),
                                        ("plateau", 1.5)])
def test_blur_kernels_sum_to_one_and_peak_at_the_centre(shape, beta):
    kernel = anisotropic_kernel(15, 2.0, 0.8, 0.7, shape=shape, beta=beta)
    assert kernel.shape == (15, 15)
    assert kernel.sum() == pytest.approx(1.0, abs=1e-9)
    assert kernel.argmax() == 7 * 15 + 7
    np.testing.assert_allclose(kernel, kernel[::-1, ::-1], atol=1e-12)  # point symmetric


def test_isotropic_gaussian_has_the_requested_sigma():
    kernel = anisotropic_kernel(21, 2.0, 2.0, 0.0)
    offsets = np.arange(21) - 10
    variance = (kernel.sum(axis=0) * offsets ** 2).sum()
    assert variance == pytest.approx(4.0, rel=0.02)  # truncation at +-10 px trims a little
    np.testing.assert_allclose(kernel, kernel.T, atol=1e-12)


def test_sinc_kernel_sums_to_one_and_a_full_cutoff_is_nearly_a_delta():
    for size in (7, 13, 21):
        assert sinc_kernel(size, np.pi / 3).sum() == pytest.approx(1.0, abs=1e-9)
    delta = sinc_kernel(11, np.pi)
    assert delta[5, 5] > 0.7  # cutoff pi passes everything: most weight at the centre


def test_random_kernels_are_normalised_with_odd_sizes():
    stage = Stage(sinc_prob=0.3)
    for index in range(60):
        kernel = random_blur_kernel(np.random.default_rng([3, index]), stage)
        assert kernel.shape[0] in KERNEL_SIZES and kernel.shape[0] == kernel.shape[1]
        assert kernel.sum() == pytest.approx(1.0, abs=1e-6)
        assert np.isfinite(kernel).all()


def test_blur_with_a_delta_kernel_is_the_identity():
    img = to_tensor(_photo(20, 16))
    delta = np.zeros((7, 7))
    delta[3, 3] = 1.0
    torch.testing.assert_close(blur(img, delta), img, atol=1e-6, rtol=0)


@pytest.mark.parametrize("gray", [False, True])
def test_gaussian_noise_has_the_requested_sigma(gray):
    img = torch.full((1, 3, 256, 256), 0.5)
    noisy = add_noise(img, np.random.default_rng(0), gaussian=True, sigma=10.0, gray=gray)
    noise = (noisy - img) * 255
    assert noise.std().item() == pytest.approx(10.0, rel=0.03)
    assert abs(noise.mean().item()) < 0.2
    same_in_all_channels = torch.allclose(noise[:, 0], noise[:, 1]) and torch.allclose(noise[:, 1], noise[:, 2])
    assert same_in_all_channels == gray


def test_poisson_noise_grows_with_the_signal():
    dark, bright = torch.full((1, 3, 128, 128), 0.1), torch.full((1, 3, 128, 128), 0.8)
    std = [((add_noise(x, np.random.default_rng(1), gaussian=False, poisson_scale=1.0) - x).std().item())
           for x in (dark, bright)]
    # Poisson: variance = level / 256 (8-bit photon counts), so std ratio = sqrt(0.8 / 0.1).
    assert std[0] == pytest.approx(np.sqrt(0.1 / 256), rel=0.05)
    assert std[1] / std[0] == pytest.approx(np.sqrt(8), rel=0.05)


def test_jpeg_stage_is_a_real_jpeg_round_trip():
    image = _photo(64, 48)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=40)
    expected = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"), dtype=np.int16)
    got = np.asarray(to_pil(jpeg(to_tensor(image), 40)), dtype=np.int16)
    assert np.abs(got - expected).max() <= 1  # the same decoder; tolerance for IDCT variants across CPUs
    assert np.abs(got - np.asarray(image, dtype=np.int16)).mean() > 1.0  # and it did change the image


def test_resize_gives_the_exact_size():
    img = to_tensor(_photo(50, 30))
    for mode in ("area", "bilinear", "bicubic"):
        assert resize(img, (11, 17), mode).shape == (1, 3, 11, 17)
    with pytest.raises(ValueError, match="unknown resize mode"):
        resize(img, (5, 5), "lanczos")


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_lr_size_is_exact(scale, preset):
    for w, h in [(96, 72), (101, 67)]:
        lr = degrade_realistic(_photo(w, h), scale, preset, seed=0, index=scale)
        assert lr.size == (w // scale, h // scale) and lr.mode == "RGB"


def test_deterministic_from_seed_and_index():
    image = _photo(64, 64)
    a = np.asarray(degrade_realistic(image, 4, seed=7, index=3))
    b = np.asarray(degrade_realistic(image, 4, seed=7, index=3))
    np.testing.assert_array_equal(a, b)  # same process, same operations: exactly equal
    others = [np.asarray(degrade_realistic(image, 4, seed=s, index=i)) for s, i in [(7, 4), (8, 3)]]
    assert all(np.abs(a.astype(int) - o).mean() > 0.5 for o in others)


def test_realistic_lr_differs_from_the_bicubic_protocol():
    hr = _photo(128, 128)
    bicubic = np.asarray(hr.resize((32, 32), Image.BICUBIC), dtype=np.float64)
    lr = np.asarray(degrade_realistic(hr, 4, "moderate", seed=0, index=0), dtype=np.float64)
    assert 0.5 < np.abs(lr - bicubic).mean() < 40  # degraded, yet the same picture


def test_every_stage_field_has_a_rule_and_lists_are_checked_as_lists():
    assert list(STAGE_RULES) == [f.name for f in fields(Stage)]
    # the one message of sr_models.validation (FIELD_ERROR), as HAT's and ESPCN's fields say it
    with pytest.raises(ValueError, match=r"^degradation config: blur_sigma=1\.5 is invalid: expected a list of numbers$"):
        Stage(blur_sigma=1.5)
    with pytest.raises(ValueError, match=r"^degradation config: blur_sigma=\(3, 1\) is invalid: expected a \(low, high\)"):
        Stage(blur_sigma=[3, 1])
    with pytest.raises(ValueError, match=r"^degradation config: sinc_prob=2 is invalid: expected a probability in \[0, 1\]$"):
        Stage(sinc_prob=2)
    with pytest.raises(ValueError, match=r"^degradation config: final_sinc_prob=-1 is invalid: expected a probability"):
        DegradationConfig(final_sinc_prob=-1)


def test_config_round_trips_through_json_and_validates():
    config = PRESETS["moderate"]
    again = DegradationConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config
    partial = DegradationConfig.from_dict({"second_order_prob": 0.5, "second": {"noise_sigma": [2, 3]}})
    assert partial.second.noise_sigma == (2, 3) and partial.second.blur_prob == 0.8  # other defaults kept
    for bad in [{"final_sinc_prob": 1.5}, {"first": {"blur_sigma": [3, 1]}}, {"second": {"jpeg_quality": [0, 90]}},
                {"first": {"kernel_probs": [1, 0]}}, {"first": {"noise_sigma": [1, float("nan")]}}, {"first": [1]},
                {"first": {"blur_sigma": 2.0}}, {"second": {"kernel_probs": "iso"}}]:
        with pytest.raises(ValueError, match="degradation config"):
            DegradationConfig.from_dict(bad)
    for unknown in [{"blur": 1}, {"second": {"sigma": 1}}]:
        with pytest.raises(ValueError, match="unknown degradation config fields"):
            DegradationConfig.from_dict(unknown)
    with pytest.raises(ValueError, match="unknown degradation 'heavy': expected 'bicubic' .*a preset"):
        degrade_realistic(_photo(16, 16), 4, "heavy")
    with pytest.raises(ValueError, match="needs a realistic degradation"):
        degrade_realistic(_photo(16, 16), 4, "bicubic")
    with pytest.raises(ValueError, match="RGB PIL image"):
        degrade_realistic(_photo(16, 16).convert("L"), 4)
