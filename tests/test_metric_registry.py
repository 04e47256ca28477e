"""MS-SSIM (sr_models.metrics) against answers known independently, and the metric registry
(sr_models.metric_registry): its entries, and every consumer listing the same metrics, a new
one included without a change to any of them."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter
from skimage import data

from sr_models import ESPCN, metric_registry
from sr_models import metrics as M
from sr_models.metric_registry import Metric
from sr_models.protocol import bicubic_upscale, crop_to_multiple, degrade

C1, C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
#: bicubic x4 on scikit-image's astronaut (512x512), border 4: this implementation, which
#: test_the_astronaut_value_equals_a_plain_numpy_reference confirms independently.
ASTRONAUT_X4_MS_SSIM = 0.96690


def _halve(plane: np.ndarray) -> np.ndarray:
    """tf.image.ssim_multiscale's downsampling: an odd side gets a copy of its last row or
    column, then 2x2 blocks are averaged."""
    plane = np.pad(plane, ((0, plane.shape[0] % 2), (0, plane.shape[1] % 2)), mode="edge")
    return (plane[0::2, 0::2] + plane[1::2, 0::2] + plane[0::2, 1::2] + plane[1::2, 1::2]) / 4


def _reference_ms_ssim(x: np.ndarray, y: np.ndarray) -> float:
    """MS-SSIM of two float64 planes, written in plain numpy from the definition (Wang,
    Simoncelli, Bovik 2003): contrast-structure at scales 1-4, the whole SSIM at scale 5,
    each clamped at 0 and raised to its weight; Gaussian window 11, sigma 1.5, valid region."""
    g = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5**2))
    g /= g.sum()

    def filtered(plane):
        rows = np.apply_along_axis(np.convolve, 0, plane, g, mode="valid")
        return np.apply_along_axis(np.convolve, 1, rows, g, mode="valid")

    factors = []
    for level in range(5):
        mx, my = filtered(x), filtered(y)
        vx, vy, cxy = filtered(x * x) - mx**2, filtered(y * y) - my**2, filtered(x * y) - mx * my
        cs = (2 * cxy + C2) / (vx + vy + C2)
        if level < 4:
            factors.append(max(cs.mean(), 0.0))
            x, y = _halve(x), _halve(y)
        else:
            factors.append(max(((2 * mx * my + C1) / (mx**2 + my**2 + C1) * cs).mean(), 0.0))
    return float(np.prod(np.array(factors) ** np.array(M.MS_SSIM_WEIGHTS)))


def _y_plane(img: Image.Image, border: int) -> np.ndarray:
    return M.rgb_to_y(np.asarray(img))[border:-border, border:-border]


def _pair(height: int, width: int, seed: int = 0) -> tuple[Image.Image, Image.Image]:
    """(sr, hr): a smooth random picture and a blurred copy."""
    noise = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    hr = Image.fromarray(noise).filter(ImageFilter.GaussianBlur(2))
    return hr.filter(ImageFilter.GaussianBlur(1.2)), hr


# --------------------------------------------------------------------------- MS-SSIM values


def test_identical_images_give_one():
    _, hr = _pair(170, 181)
    assert M.ms_ssim(hr, hr, 4) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("a, b", [(100, 110), (40, 200), (235, 16)])
def test_a_constant_offset_of_a_flat_image_has_its_analytic_value(a, b):
    """Flat images: no variance, so contrast-structure is C2 / C2 = 1 at every scale and
    MS-SSIM is the luminance term (2ab + C1) / (a² + b² + C1) to the last scale's weight."""
    sr, hr = (Image.new("L", (180, 170), value) for value in (a, b))
    expected = ((2 * a * b + C1) / (a * a + b * b + C1)) ** M.MS_SSIM_WEIGHTS[-1]
    assert M.ms_ssim(sr, hr, 4) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("height, width", [(176, 176), (200, 187), (169, 169), (256, 272)])
def test_equals_a_plain_numpy_reference_on_even_and_odd_sizes(height, width):
    sr, hr = _pair(height, width, seed=height)
    expected = _reference_ms_ssim(_y_plane(sr, 4), _y_plane(hr, 4))
    assert M.ms_ssim(sr, hr, 4) == pytest.approx(expected, abs=1e-10)


def test_the_astronaut_value_equals_a_plain_numpy_reference():
    hr = crop_to_multiple(Image.fromarray(data.astronaut()), 4)
    sr = bicubic_upscale(degrade(hr, 4), 4)
    value = M.ms_ssim(sr, hr, 4)
    assert value == pytest.approx(_reference_ms_ssim(_y_plane(sr, 4), _y_plane(hr, 4)), abs=1e-10)
    assert value == pytest.approx(ASTRONAUT_X4_MS_SSIM, abs=5e-5)


def test_equals_pytorch_msssim_where_every_halving_is_even():
    """pytorch-msssim (only if installed; never a dependency) pads an odd side with zeros on both
    sides where TensorFlow, and this project, repeat the last row: the two agree on sides that
    stay even through the four halvings (176 = 11 x 16)."""
    reference = pytest.importorskip("pytorch_msssim")
    sr, hr = _pair(184, 200)  # 176 x 192 after the border
    window = M._gaussian_1d(torch.float64, torch.device("cpu")).view(1, 1, 1, -1)  # its default taps are float32
    planes = [torch.from_numpy(_y_plane(img, 4).copy())[None, None] for img in (sr, hr)]
    expected = reference.ms_ssim(*planes, data_range=255, win=window).item()
    assert M.ms_ssim(sr, hr, 4) == pytest.approx(expected, abs=1e-12)


def test_images_smaller_than_five_scales_need_are_refused_by_the_function():
    sr, hr = _pair(168, 170)  # 160 rows after a border of 4
    with pytest.raises(M.ImageTooSmall, match=r"160x162 remain after cropping.*at least 161x161"):
        M.ms_ssim(sr, hr, 4)
    assert 0 < M.ms_ssim(sr, hr, 3) < 1  # 162 rows: enough
    assert issubclass(M.ImageTooSmall, ValueError)


def test_batched_equals_scalar_and_rgb_averages_the_channels():
    g = torch.Generator().manual_seed(0)
    hr = torch.rand(2, 3, 171, 180, generator=g)
    sr = (hr + 0.05 * torch.randn(hr.shape, generator=g)).clamp(0, 1)
    batch = M.ms_ssim_batch(sr, hr, 2)
    assert batch.shape == (2,) and batch.dtype == torch.float64
    for i in range(2):
        assert batch[i].item() == pytest.approx(M.ms_ssim(sr[i], hr[i], 2), abs=1e-12)
    per_channel = [M.ms_ssim(M.to_uint8_array(sr[0])[..., c], M.to_uint8_array(hr[0])[..., c], 2) for c in range(3)]
    assert M.ms_ssim(sr[0], hr[0], 2, y_channel=False) == pytest.approx(np.mean(per_channel), abs=1e-12)


def test_strips_give_the_values_of_the_whole_image(monkeypatch):
    sr, hr = _pair(203, 177)
    whole = {f.__name__: f(sr, hr, 4) for f in (M.psnr, M.ssim, M.ms_ssim)}
    monkeypatch.setattr(M, "STRIP_PIXELS", 1000)  # strips of a few rows at every scale
    for function in (M.psnr, M.ssim, M.ms_ssim):
        assert function(sr, hr, 4) == pytest.approx(whole[function.__name__], abs=1e-12)


# --------------------------------------------------------------------------- the registry


def test_the_registry_has_one_entry_per_key_each_complete():
    assert metric_registry.KEYS == ("psnr", "ssim", "ms_ssim")
    assert len({m.card_id for m in metric_registry.METRICS}) == len(metric_registry.METRICS)
    for metric in metric_registry.METRICS:
        assert metric_registry.BY_KEY[metric.key] is metric and metric.higher_is_better
        assert metric.show(0.5) == format(0.5, metric.format) and metric.show(None) == "-"
    assert metric_registry.PRIMARY.key == "psnr" and metric_registry.PRIMARY.header == "PSNR-Y (dB)"


def test_a_pair_gets_every_metric_and_none_where_it_is_too_small():
    sr, hr = _pair(180, 190)
    scores = metric_registry.score_pair(sr, hr, 4)
    assert list(scores) == list(metric_registry.KEYS)
    assert scores == pytest.approx({"psnr": M.psnr(sr, hr, 4), "ssim": M.ssim(sr, hr, 4),
                                    "ms_ssim": M.ms_ssim(sr, hr, 4)}, abs=1e-12)
    small = metric_registry.score_pair(sr.crop((0, 0, 60, 60)), hr.crop((0, 0, 60, 60)), 4)
    assert small["ms_ssim"] is None and small["ssim"] == pytest.approx(M.ssim(sr.crop((0, 0, 60, 60)),
                                                                                hr.crop((0, 0, 60, 60)), 4))


def test_means_leave_out_what_has_no_finite_value():
    assert metric_registry.mean([1.0, None, math.inf, 3.0]) == 2.0
    assert metric_registry.mean([None, math.inf]) is None


def test_files_written_with_the_old_keys_read_with_the_current_ones():
    old = {"step": 4000, "psnr_y": 31.1, "ssim_y": 0.86, "bicubic_psnr_y": 29.1, "bicubic_ssim_y": 0.81}
    assert metric_registry.current_keys(old) == {"step": 4000, "psnr": 31.1, "ssim": 0.86, "bicubic_psnr": 29.1,
                                                 "bicubic_ssim": 0.81}


def test_the_bundled_files_use_the_current_keys():
    from sr_models.loading import BUNDLED, bundled_folder

    for name in BUNDLED:
        folder = bundled_folder(name)
        metrics = json.loads((folder / "metrics.json").read_text())
        assert not set(metrics) & set(metric_registry.LEGACY_KEYS) and "psnr" in metrics
        card = json.loads((folder / "model_card.json").read_text())
        assert all(set(e["model"]) == set(metric_registry.KEYS) for e in card["evaluations"])
        assert card["training_degradation"]["kind"] in ("bicubic", "realistic")


# --------------------------------------------------------------------------- every consumer


def _mean_absolute_error(sr, hr, crop_border, y_channel=True):
    """A metric the registry does not have: the mean absolute difference of the uint8 levels."""
    a, b = (x.double() if x.dtype == torch.uint8 else (x.double().clamp(0, 1) * 255).round() for x in (sr, hr))
    c = crop_border
    return (a - b)[..., c : a.shape[-2] - c, c : a.shape[-1] - c].abs().mean(dim=(1, 2, 3))


@pytest.fixture
def with_mae(monkeypatch):
    """The registry with one more entry; no consumer is changed."""
    mae = Metric("mae", _mean_absolute_error, False, "MAE", "mae", ".3f")
    entries = (*metric_registry.METRICS, mae)
    monkeypatch.setattr(metric_registry, "METRICS", entries)
    monkeypatch.setattr(metric_registry, "BY_KEY", {m.key: m for m in entries})
    monkeypatch.setattr(metric_registry, "KEYS", tuple(m.key for m in entries))
    return mae


def _folder(tmp_path, sizes):
    folder = tmp_path / "hr"
    folder.mkdir()
    for i, size in enumerate(sizes):
        _pair(*size, seed=i)[1].save(folder / f"{i}.png")
    return folder


def test_sr_models_evaluate_lists_a_new_metric(with_mae, tmp_path):
    from sr_models.evaluation import evaluate, find_images

    result = evaluate({}, find_images(_folder(tmp_path, [(64, 64)])), scale=2, hr_size=None)
    assert list(result.to_json()["summary"]["bicubic"])[:4] == ["psnr", "ssim", "ms_ssim", "mae"]
    assert "MAE" in result.table().splitlines()[1]
    _, csv_path = result.write(tmp_path / "out")
    assert next(csv.reader(csv_path.open()))[2:6] == ["psnr", "ssim", "ms_ssim", "mae"]


def test_the_card_lists_a_new_metric_in_its_table_and_model_index(with_mae):
    from huggingface_hub import ModelCard

    from sr_models.cards import CardInfo, render_model_card

    scores = {"psnr": 30.0, "ssim": 0.8, "ms_ssim": 0.95, "mae": 3.2}
    info = CardInfo(evaluations=[{"dataset": "faces", "scale": 4, "images": 2, "bicubic": scores,
                                  "model": {**scores, "psnr": 31.0}}])
    card = render_model_card(ESPCN.from_preset("espcn-tiny"), info)
    results = ModelCard(str(card)).data.eval_results
    assert [r.metric_type for r in results] == ["psnr", "ssim", "ms_ssim", "mae"]
    assert [r.metric_name for r in results][-1] == "MAE (x4)"
    assert "bicubic PSNR-Y / SSIM-Y / MS-SSIM-Y / MAE" in str(card) and "31.00 / 0.8000 / 0.9500 / 3.200" in str(card)


def test_training_validation_and_its_card_list_a_new_metric(with_mae):
    from types import SimpleNamespace

    from sr_models.training import report
    from sr_models.training.validation import Validator

    images = [(str(i), _pair(64, 64, seed=i)[1]) for i in range(2)]
    result, _ = Validator(images, 4, torch.device("cpu")).run(ESPCN.from_preset("espcn-tiny").eval())
    assert list(result) == ["psnr", "ssim", "ms_ssim", "mae"] and result["ms_ssim"] is None  # 56 px: too small
    metrics = {"images": 2, **result, **{f"bicubic_{k}": v for k, v in result.items()}}
    args = SimpleNamespace(scale=4)
    evaluation = report.card_evaluation(args, metrics, {"validation_name": "val", "validation_id": None})
    assert set(evaluation["model"]) == set(evaluation["bicubic"]) == {"psnr", "ssim", "ms_ssim", "mae"}


def test_the_study_and_finalize_list_a_new_metric(with_mae):
    from benchmarks.report import quality_table
    from scripts.finalize import _scores

    summary = {"bicubic": {"psnr": 29.0, "ssim": 0.8, "ms_ssim": 0.9, "mae": 4.0},
               "hat": {"psnr": 31.0, "ssim": 0.85, "ms_ssim": 0.95, "mae": 3.0}}
    table = quality_table(summary)
    assert table[0] == "| method | PSNR-Y (dB) | SSIM-Y | MS-SSIM-Y | MAE | gain over bicubic (dB) |"
    assert table[3] == "| hat | 31.00 | 0.8500 | 0.9500 | 3.000 | +2.00 |"
    assert set(_scores(summary["hat"])) == {"psnr", "ssim", "ms_ssim", "mae"}


def test_the_evaluate_module_lists_a_new_metric(with_mae, tmp_path):
    import test_evaluate_module  # sets HF_HUB_OFFLINE before it imports evaluate

    module = test_evaluate_module.evaluate.load(str(test_evaluate_module.MODULE_DIR), cache_dir=str(tmp_path / "cache"))
    sr, hr = _pair(64, 64)
    assert list(module.compute(predictions=[sr], references=[hr], crop_border=4)) == ["psnr", "ssim", "ms_ssim", "mae"]
