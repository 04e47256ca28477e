"""The 🤗 evaluate module evaluate_modules/sr_metrics loads offline and equals sr_models.metrics,
metric by metric of sr_models.metric_registry."""

from __future__ import annotations

import io
import os
from pathlib import Path

# Read when huggingface_hub is imported: set before evaluate pulls it in.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import evaluate  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from skimage import data  # noqa: E402

from sr_models import metric_registry  # noqa: E402
from sr_models import metrics as M  # noqa: E402

MODULE_DIR = Path(__file__).resolve().parents[1] / "evaluate_modules" / "sr_metrics"


@pytest.fixture(scope="module")
def sr_metrics(tmp_path_factory):
    return evaluate.load(str(MODULE_DIR), cache_dir=str(tmp_path_factory.mktemp("evaluate_cache")))


@pytest.fixture(scope="module")
def pairs():
    """Two small (SR, HR) pairs of different sizes: bicubic x4 and x2 of astronaut crops."""
    out = []
    for scale, box in ((4, (100, 60, 164, 132)), (2, (200, 200, 250, 246))):
        hr = M.crop_to_multiple(Image.fromarray(data.astronaut()).crop(box), scale)
        out.append((M.bicubic_upscale(M.degrade(hr, scale), scale), hr))
    return out


def _expected(pairs, crop_border, y_channel=True):
    """PSNR and SSIM means from the scalar functions; MS-SSIM is None: these crops are under
    its 161 pixels a side."""
    return {
        "psnr": float(np.mean([M.psnr(s, h, crop_border, y_channel) for s, h in pairs])),
        "ssim": float(np.mean([M.ssim(s, h, crop_border, y_channel) for s, h in pairs])),
        "ms_ssim": None,
    }


def test_loads_offline_by_path(sr_metrics):
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert isinstance(sr_metrics, evaluate.EvaluationModule)
    assert sr_metrics.name == "sr_metrics"


@pytest.mark.parametrize("as_array", [False, True])
def test_compute_equals_sr_models_metrics(sr_metrics, pairs, as_array):
    conv = np.asarray if as_array else (lambda im: im)
    result = sr_metrics.compute(
        predictions=[conv(s) for s, _ in pairs], references=[conv(h) for _, h in pairs], crop_border=4
    )
    assert list(result) == list(metric_registry.KEYS)
    assert result == pytest.approx(_expected(pairs, 4), abs=1e-12)


def test_default_and_kwargs_are_forwarded(sr_metrics, pairs):
    preds, refs = [s for s, _ in pairs], [h for _, h in pairs]
    assert sr_metrics.compute(predictions=preds, references=refs) == pytest.approx(_expected(pairs, 4), abs=1e-12)
    rgb = sr_metrics.compute(predictions=preds, references=refs, crop_border=2, y_channel=False)
    assert rgb == pytest.approx(_expected(pairs, 2, y_channel=False), abs=1e-12)


def test_add_batch_with_tensors(sr_metrics, pairs):
    for s, h in pairs:
        to_t = lambda im: torch.from_numpy(np.array(im)).permute(2, 0, 1).float().div(255).unsqueeze(0)
        sr_metrics.add_batch(predictions=to_t(s), references=to_t(h))
    assert sr_metrics.compute(crop_border=4) == pytest.approx(_expected(pairs, 4), abs=1e-12)


def test_jpeg_decoded_images_are_not_reencoded(sr_metrics, pairs):
    # A PIL image decoded from JPEG bytes keeps format="JPEG"; datasets would re-save it
    # as JPEG (lossy) if the module passed PIL images through unchanged.
    sr, hr = pairs[0]
    buf = io.BytesIO()
    sr.save(buf, format="JPEG", quality=75)
    sr_jpeg = Image.open(io.BytesIO(buf.getvalue()))
    assert sr_jpeg.format == "JPEG"
    result = sr_metrics.compute(predictions=[sr_jpeg], references=[hr], crop_border=4)
    assert result["psnr"] == pytest.approx(M.psnr(np.asarray(sr_jpeg), hr, 4), abs=1e-12)


def test_errors_are_reported(sr_metrics, pairs):
    sr, hr = pairs[0]
    with pytest.raises(ValueError, match="image pair 0"):
        sr_metrics.compute(predictions=[sr], references=[hr.crop((0, 0, 40, 40))], crop_border=4)


def test_every_registry_metric_on_a_pair_large_enough_for_ms_ssim(sr_metrics):
    hr = M.crop_to_multiple(Image.fromarray(data.astronaut()).crop((100, 100, 300, 300)), 4)
    sr = M.bicubic_upscale(M.degrade(hr, 4), 4)
    result = sr_metrics.compute(predictions=[sr], references=[hr], crop_border=4)
    assert result == pytest.approx({"psnr": M.psnr(sr, hr, 4), "ssim": M.ssim(sr, hr, 4),
                                    "ms_ssim": M.ms_ssim(sr, hr, 4)}, abs=1e-12)
