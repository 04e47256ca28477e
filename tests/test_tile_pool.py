"""Tiles side by side on the CPU (sr_models.tile_pool): the same output as one after the
other, in the caller's precision and grad modes, with one thread per worker and nobody
else's thread count changed."""

import threading

import numpy as np
import pytest
import torch

from sr_models import ESPCN, upscale
from sr_models.pipeline import upscale_tiled
from sr_models.tile_pool import map_in_order, single_threaded_pool

# The reference HAT x4 and the seeded photos of the pipeline's tests.
from test_pipeline import _photo, hat_x4  # noqa: F401 -- hat_x4 is a fixture


def test_tiles_in_workers_give_the_tiles_one_after_the_other(hat_x4):
    lr = torch.rand(1, 3, 32, 40, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        serial = upscale_tiled(hat_x4, lr, 24, overlap=8)
        side_by_side = upscale_tiled(hat_x4, lr, 24, overlap=8, workers=2)
    torch.testing.assert_close(side_by_side, serial, rtol=0, atol=1e-5)


def test_workers_run_in_the_callers_precision(hat_x4):
    image, tiles = _photo(40, 24), {"tile": 16, "tile_overlap": 8}
    as_array = lambda im: np.asarray(im, dtype=np.float64)  # noqa: E731
    fp32 = as_array(upscale(hat_x4, image, **tiles, tile_workers=2))
    bf16_serial = as_array(upscale(hat_x4, image, **tiles, dtype="bfloat16"))
    bf16_workers = as_array(upscale(hat_x4, image, **tiles, tile_workers=2, dtype="bfloat16"))
    assert np.abs(bf16_workers - bf16_serial).max() <= 1  # the same bf16 computation (rounding aside)
    assert np.abs(bf16_workers - fp32).max() > 0  # ...and not float32's


def test_progress_follows_the_tiles_in_order_with_workers():
    calls = []
    torch.manual_seed(0)
    upscale(ESPCN(upscale=2).eval(), _photo(40, 30), tile=16, tile_workers=3,
            progress=lambda done, total: calls.append((done, total)))
    total = calls[-1][1]
    assert total > 3 and calls == [(i, total) for i in range(1, total + 1)]


def test_each_worker_has_one_thread_and_other_threads_keep_theirs():
    before = torch.get_num_threads()
    pool = single_threaded_pool(2)
    assert list(pool.map(lambda _: torch.get_num_threads(), range(4))) == [1] * 4
    assert torch.get_num_threads() == before
    seen = []
    fresh = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    fresh.start()
    fresh.join()
    assert seen == [before]  # a thread started afterwards gets the default, not 1
    assert single_threaded_pool(2) is pool  # one pool per size, for the process's life


def test_a_failing_tile_raises_in_the_caller_and_cancels_the_rest():
    started = []

    def work(i):
        started.append(i)
        if i == 1:
            raise ValueError("tile 1 is broken")
        return i

    results = map_in_order(single_threaded_pool(1), work, range(50), ahead=1)
    assert next(results) == 0
    with pytest.raises(ValueError, match="tile 1 is broken"):
        list(results)
    assert len(started) < 50
