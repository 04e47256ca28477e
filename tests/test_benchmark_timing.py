"""benchmarks.app_timing's emulated "before" path and benchmarks.metrics_speed's baseline
filter: what they swap in is what they say, and it is put back; the speed scripts of the
app's path (png_speed, tile_workers) run and print their figures."""

from __future__ import annotations

import pytest
import torch

from benchmarks import app_timing, metrics_speed
from sr_models import app_run, metrics
from sr_models.app_limits import TILE_SIZE


def test_the_conv2d_baseline_filters_as_the_librarys_filter_does():
    x = torch.rand(2, 3, 5, 40, 33, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 255
    taps = metrics._gaussian_1d(torch.float64, torch.device("cpu")).tolist()
    assert torch.allclose(metrics_speed.conv2d_filter(x, taps), metrics.gaussian_filter_valid(x, taps), atol=1e-9)


def test_before_swaps_tiles_workers_precision_and_filter_and_puts_them_back_even_on_error():
    saved = app_run.choose_tile, app_run.TILE_WORKERS, app_run.precision, metrics.gaussian_filter_valid
    with pytest.raises(RuntimeError), app_timing.as_before():
        assert app_run.choose_tile((500, 300), 16, 8) == TILE_SIZE
        assert app_run.TILE_WORKERS == 1 and app_run.precision("hat-faces").dtype is None  # float32
        assert metrics.gaussian_filter_valid is metrics_speed.conv2d_filter
        raise RuntimeError
    assert (app_run.choose_tile, app_run.TILE_WORKERS, app_run.precision, metrics.gaussian_filter_valid) == saved


def test_runs_are_interleaved_after_a_warm_up_and_before_shows_nothing_until_the_end(monkeypatch):
    calls = []

    def fake_run(path, kind, mode):
        variant = "before" if metrics.gaussian_filter_valid is metrics_speed.conv2d_filter else "now"
        calls.append(variant)
        scale = 10.0 if len(calls) <= 2 else 1.0  # the warm-up round is slow and left out
        return [scale * t for t in (1.0, 2.0, 5.0)], {"Bicubic": 0.1, "HAT": 3.0}

    monkeypatch.setattr(app_timing, "time_run", fake_run)
    result = app_timing.median_runs("x.png", "Clean downscale", "Upscale", 2, ["now", "before"])
    assert calls == ["now", "before"] * 3
    assert result["now"] == ([1.0, 2.0, 5.0], {"Bicubic": 0.1, "HAT": 3.0})
    assert result["before"][0] == [5.0, 5.0, 5.0]


def test_png_speed_and_tile_workers_print_their_figures(capsys):
    from benchmarks import png_speed, tile_workers

    png_speed.main(["--side", "40", "--repeats", "1"])
    tile_workers.main(["--model", "espcn-faces", "--size", "48", "--repeats", "1", "--workers", "2"])
    out = capsys.readouterr().out
    assert "png_writer" in out and "PIL, level 1" in out
    assert "tile_workers=2:" in out and "max difference 0 levels" in out
