"""How large an app request may be (sr_models/app_limits.py): padded sizes, the limits'
messages, and Benchmark scoring in bounded memory."""

import json
import math
import subprocess
import sys
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from sr_models import app_limits
from sr_models.app_limits import check_upload_size, choose_tile, needs_tiling, padded_size

ROOT = Path(__file__).resolve().parent.parent
#: Strip scores equal whole-image ones up to float summation order.
ROUNDING = 1e-12


def test_padded_size_rounds_each_side_up_to_the_window():
    assert padded_size((65000, 1), 8) == (65000, 8)
    assert padded_size((256, 256), 8) == (256, 256)
    assert padded_size((1025, 1023), 8) == (1032, 1024)
    assert padded_size((7, 3), 1) == (7, 3)


def test_tiling_follows_the_padded_size():
    """The issue's 65000x1 PNG ran untiled (65,000 pixels) but padded to 520,000."""
    assert needs_tiling((65000, 1), 8) and not needs_tiling((65000, 1), 1)
    assert not needs_tiling((256, 256), 8) and needs_tiling((257, 256), 8)


def _tile_pixels(size, tile, overlap, multiple=8):
    """Padded pixels the pipeline's tiles cover (sr_models.pipeline's tile origins, counted here)."""
    total = 1
    for length in size:
        starts = [0]
        while starts[-1] + tile < length:
            starts.append(starts[-1] + tile - overlap)
        total *= sum(-(-min(tile, length - start) // multiple) * multiple for start in starts)
    return total


@pytest.mark.parametrize("size", [(512, 512), (1024, 1024), (300, 700), (65000, 1), (257, 256)])
def test_chosen_tiles_cover_the_fewest_pixels_each_within_the_tile_limit(size):
    tile = choose_tile(size, 8, 16)
    assert tile % 8 == 0 and tile * tile <= app_limits.MAX_TILE_PIXELS
    best = min(_tile_pixels(size, t, 16) for t in range(24, math.isqrt(app_limits.MAX_TILE_PIXELS) + 1, 8))
    assert _tile_pixels(size, tile, 16) == best <= _tile_pixels(size, app_limits.TILE_SIZE, 16)


def test_a_512_pixel_input_gets_nine_tiles_of_184_not_twenty_five_of_128():
    """The issue's 512x512 upload: 25 HAT passes over 1.27x the image before, 9 over 1.13x now."""
    assert choose_tile((512, 512), 8, 16) == 184
    assert _tile_pixels((512, 512), 184, 16) / 512**2 == pytest.approx(1.129, abs=1e-3)
    assert _tile_pixels((512, 512), 128, 16) / 512**2 == pytest.approx(1.266, abs=1e-3)


def test_a_tile_reaches_past_its_overlap_whatever_the_limit(monkeypatch):
    monkeypatch.setattr(app_limits, "MAX_TILE_PIXELS", 100)
    assert choose_tile((20, 2), 8, 16) == 24


@pytest.mark.parametrize("size,benchmark,accepted", [
    ((1024, 1024), False, True), ((1025, 1024), False, False),
    ((1, 131_072), False, True), ((1, 131_073), False, False),  # padded to 8 x ...
    ((2048, 2048), True, True), ((2049, 2048), True, False), ((4096, 4096), True, False),
    ((44, 44), True, True), ((43, 5000), True, False)])
def test_upload_limits_per_mode(size, benchmark, accepted):
    if accepted:
        check_upload_size(size, benchmark, scale=4, multiple=8)
    else:
        with pytest.raises(gr.Error):
            check_upload_size(size, benchmark, scale=4, multiple=8)


def test_limit_messages_give_the_numbers_not_rounded_megapixels():
    """The issue's "16.8 MP over 16.8 MP": both sides in pixels and WxH."""
    with pytest.raises(gr.Error) as err:
        check_upload_size((1025, 1024), False, scale=4, multiple=8)
    assert err.value.message == (
        "The upload is 1025x1024 (1,049,600 pixels); padded to multiples of 8 (the attention window) that is "
        "1032x1024 (1,056,768 pixels), over the limit of 1,048,576 pixels (1024x1024). Downscale it first.")
    with pytest.raises(gr.Error, match="at least 44px per side; this one is 43x5000"):
        check_upload_size((43, 5000), True, scale=4, multiple=8)


def _pair(height: int, width: int, seed: int = 0) -> tuple[Image.Image, Image.Image]:
    """(sr, hr): an RGB image and a noisy copy of it."""
    rng = np.random.default_rng(seed)
    hr = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    sr = np.clip(hr.astype(np.int16) + rng.integers(-20, 21, hr.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(sr), Image.fromarray(hr)


#: Scores a side x side pair in a fresh process and prints the growth of its peak RSS (MiB).
SCORE_IN_CHILD = """
import json, sys
import numpy as np
from PIL import Image
from benchmarks.peak_rss import peak_rss_mib, reset_peak, rss_mib
from sr_models.metric_registry import score_pair

side = int(sys.argv[1])
rng = np.random.default_rng(0)
sr, hr = (Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)) for _ in range(2))
base = rss_mib()
reset_peak()
score_pair(sr, hr, 4)
print(json.dumps({"growth_mib": peak_rss_mib() - base}))
"""
#: Peak RSS growth allowed for scoring the largest Benchmark original (2048x2048) with every
#: registry metric, as the app does: ~285 MiB in strips of metrics.STRIP_PIXELS; whole-image
#: scoring took ~600 bytes per pixel (2.5 GB), with 2**20-value strips ~790 MiB.
SCORE_GROWTH_LIMIT_MIB = 400


def test_scoring_a_large_image_stays_within_a_strips_memory():
    result = subprocess.run([sys.executable, "-c", SCORE_IN_CHILD, "2048"], capture_output=True, text=True,
                            timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    growth = json.loads(result.stdout.strip().splitlines()[-1])["growth_mib"]
    assert growth < SCORE_GROWTH_LIMIT_MIB, f"scoring grew the peak RSS by {growth:.0f} MiB"
