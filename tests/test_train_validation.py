"""Validation under the evaluation protocol (issue 20 item 3, issue 19 item 3;
sr_models/training/validation.py, data.decode_validation): HR prepared as `sr-models
evaluate` prepares it (256x256 by default, --validation_hr_size), so that the card's numbers
equal `sr-models evaluate` on the same folder, and memory bounded for large photos."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
# The in-process run helpers of the trainer's tests (fixtures: images, make_trainer).
from test_train_trainer import images, make_trainer, run_in_process  # noqa: F401

from sr_models import ESPCN, load_model, metric_registry, metrics
from sr_models.evaluation import evaluate, find_images
from sr_models.training import validation
from sr_models.training.data import decode_validation


def photo(w: int, h: int, seed: int) -> Image.Image:
    """A smooth colour pattern with some noise, ``w`` x ``h``."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([127 + 90 * np.sin(x / rng.uniform(4, 20) + y / rng.uniform(4, 20) + c) for c in range(3)], -1)
    return Image.fromarray((img + rng.normal(0, 4, img.shape)).clip(0, 255).astype(np.uint8))


@pytest.fixture
def val(tmp_path) -> Path:
    """Photos of several sizes and shapes: larger and smaller than 256, square and not."""
    folder = tmp_path / "val"
    folder.mkdir()
    for i, (w, h) in enumerate([(300, 200), (180, 180), (256, 256), (97, 130)]):
        photo(w, h, seed=i).save(folder / f"{i}.png")
    return folder


@pytest.mark.parametrize("hr_size", [256, 0])
def test_the_card_numbers_equal_sr_models_evaluate_on_the_same_folder(images, val, tmp_path, make_trainer,  # noqa: F811
                                                                        hr_size):
    """Issue 20: a 1024 px image gave bicubic 32.28 dB in training and 29.20 dB in evaluate."""
    out = run_in_process(make_trainer, images, tmp_path / "out", "--validation_data_dir", str(val),
                         "--max_eval_samples", "4", "--validation_hr_size", str(hr_size))
    metrics = json.loads((out / "metrics.json").read_text())
    evaluation = evaluate({"model": load_model(out)}, find_images(val), scale=4, hr_size=hr_size or None)
    result = evaluation.to_json()["summary"]
    assert metrics["images"] == 4
    assert metrics["bicubic_psnr"] == pytest.approx(result["bicubic"]["psnr"], abs=0.01)
    assert metrics["psnr"] == pytest.approx(result["model"]["psnr"], abs=0.01)
    for key in ("ssim", "ms_ssim"):  # every registry metric, under its one key
        assert metrics[key] == pytest.approx(result["model"][key], abs=1e-4)
        assert metrics[f"bicubic_{key}"] == pytest.approx(result["bicubic"][key], abs=1e-4)


def test_validation_images_are_prepared_at_256_by_default():
    """Issue 19: a 12 MP validation photo took the run to 7.6 GB; by default it is scored at 256x256."""
    big = photo(1200, 900, seed=0)
    value = {"bytes": png_bytes(big), "path": None}
    [(_, hr)], skipped = decode_validation([value], scale=4)
    assert hr.size == (256, 256) and skipped == 0
    [(_, native)], _ = decode_validation([value], scale=4, hr_size=None)
    assert native.size == (1200, 900)


def png_bytes(img: Image.Image) -> bytes:
    import io

    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_a_large_native_image_is_validated_in_tiles_with_the_same_scores(monkeypatch):
    """--validation_hr_size 0 with a photo larger than a forward pass may see: tiles of TILE LR
    pixels (ESPCN's tiles are exact, so the scores do not change)."""
    photos = [("a", photo(160, 96, seed=1)), ("b", photo(64, 64, seed=2))]
    model = ESPCN.from_preset("espcn-tiny").eval()
    whole = validation.Validator(photos, 4, torch.device("cpu")).run(model)[0]
    seen = []
    model.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape[-2] * args[0].shape[-1]))
    monkeypatch.setattr(validation, "MAX_LR_PIXELS", 16 * 16)
    monkeypatch.setattr(validation, "TILE", 16)
    monkeypatch.setattr(metrics, "STRIP_PIXELS", 64 * 64)
    tiled, grid = validation.Validator(photos, 4, torch.device("cpu")).run(model)
    assert max(seen) <= 16 * 16 and len(seen) > 2
    assert tiled["psnr"] == pytest.approx(whole["psnr"], abs=0.01)
    assert tiled["ssim"] == pytest.approx(whole["ssim"], abs=1e-4)
    assert grid.size == (4 * 160, 96 + 64)


def test_large_images_are_scored_in_strips_to_the_same_values(monkeypatch):
    """SSIM of a 12 MP image needed 6.5 GB at once: every metric works in strips of
    metrics.STRIP_PIXELS, to the same values."""
    hr = torch.from_numpy(np.array(photo(190, 170, seed=3))).permute(2, 0, 1)[None].float() / 255
    sr = (hr + 0.05 * torch.randn(hr.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    whole = metric_registry.score_batches(sr, hr, crop_border=4)
    monkeypatch.setattr(metrics, "STRIP_PIXELS", 600)  # strips of 3 rows
    strips = metric_registry.score_batches(sr, hr, crop_border=4)
    assert whole["ms_ssim"] is not None
    for key in metric_registry.KEYS:
        assert strips[key].item() == pytest.approx(whole[key].item(), abs=1e-12)


def test_the_strip_scorer_is_refused_with_its_replacement():
    with pytest.raises(AttributeError, match="sr_models.metric_registry.score_batches"):
        validation.score  # noqa: B018
