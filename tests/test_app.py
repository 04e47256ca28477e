"""The Gradio app: handlers directly, then the launched app through gradio_client."""

import concurrent.futures

import numpy as np
import pytest
from PIL import Image

from sr_models import ESPCN, HAT, upscale
from sr_models.metrics import degrade, psnr, ssim


@pytest.fixture(scope="module")
def app_module(tmp_path_factory):
    """app.py with tiny x4 models standing in for the bundled weights (via the env vars)."""
    folder = tmp_path_factory.mktemp("weights")
    ESPCN.from_preset("espcn-tiny").save_pretrained(folder / "espcn")
    HAT.from_preset("hat-tiny").save_pretrained(folder / "hat")
    mp = pytest.MonkeyPatch()
    mp.setenv("SR_ESPCN_MODEL", str(folder / "espcn"))
    mp.setenv("SR_HAT_MODEL", str(folder / "hat"))
    import app

    app.get_models.cache_clear()
    yield app
    app.get_models.cache_clear()
    mp.undo()


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "photo.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (48, 56, 3), dtype=np.uint8)).save(path)
    return str(path)


def test_weights_note_names_the_sources(app_module):
    note = app_module.weights_note()
    assert "SR_ESPCN_MODEL" in note and "SR_HAT_MODEL" in note and "x4" in note


def test_upscale_mode_returns_both_sliders_at_the_right_size(app_module, photo):
    pair, best, table, downloads, note = app_module.compare(photo, "Upscale", "ESPCN", "HAT", False)
    pair, best = [Image.open(p) for p in pair], [Image.open(p) for p in best]
    assert [im.size for im in pair] == [(224, 192)] * 2
    assert [im.size for im in best] == [(224, 192)] * 2
    assert [row[0] for row in table["data"]] == ["Bicubic", "ESPCN", "HAT"]
    assert sorted(p.rsplit("/", 1)[-1] for p in downloads) == ["bicubic.png", "espcn.png", "hat.png"]
    # the slider shows what the library produces
    model = app_module.get_models()["HAT"][0]
    assert np.array_equal(np.asarray(pair[1]), np.asarray(upscale(model, Image.open(photo))))


@pytest.mark.parametrize("left,right", [("Bicubic", "ESPCN"), ("HAT", "Bicubic")])
def test_any_two_methods_can_be_compared(app_module, photo, left, right):
    pair, *_ = app_module.compare(photo, "Upscale", left, right, True)
    bicubic = Image.open(photo).resize((224, 192), Image.BICUBIC)
    assert np.array_equal(np.asarray(Image.open(pair[[left, right].index("Bicubic")])), np.asarray(bicubic))


def test_benchmark_mode_scores_equal_the_library_metrics(app_module, photo):
    pair, best, table, downloads, note = app_module.compare(photo, "Benchmark", "ESPCN", "HAT", False)
    hr = Image.open(photo).convert("RGB")
    lr = degrade(hr, 4)
    rows = {row[0]: row for row in table["data"]}
    models = app_module.get_models()
    for method in ("ESPCN", "HAT"):
        sr = upscale(models[method][0], lr)
        assert rows[method][2] == round(psnr(sr, hr, crop_border=4), 2)
        assert rows[method][3] == round(ssim(sr, hr, crop_border=4), 4)
    assert rows["Bicubic"][2] == round(psnr(lr.resize(hr.size, Image.BICUBIC), hr, crop_border=4), 2)
    assert Image.open(pair[0]).size == hr.size and "Best" in note


def test_user_mistakes_raise_gr_errors(app_module, photo, tmp_path):
    import gradio as gr

    with pytest.raises(gr.Error, match="Upload an image"):
        app_module.compare(None, "Upscale", "ESPCN", "HAT", False)
    with pytest.raises(gr.Error, match="two different"):
        app_module.compare(photo, "Upscale", "HAT", "HAT", False)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(gr.Error, match="not a readable image"):
        app_module.compare(str(bad), "Upscale", "ESPCN", "HAT", False)
    big = tmp_path / "big.png"
    Image.new("RGB", (1100, 1000)).save(big)
    with pytest.raises(gr.Error, match="limit"):
        app_module.compare(str(big), "Upscale", "ESPCN", "HAT", False)


def test_modes_the_pipeline_handles_reach_the_sliders(app_module, tmp_path):
    grey16 = tmp_path / "grey16.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 65536, (20, 24), dtype=np.uint16)).save(grey16)
    rgba = tmp_path / "rgba.png"
    Image.new("RGBA", (24, 20), (10, 200, 30, 128)).save(rgba)
    for path in (grey16, rgba):
        pair, *_ = app_module.compare(str(path), "Upscale", "ESPCN", "HAT", False)
        assert Image.open(pair[1]).size == (96, 80)


@pytest.fixture(scope="module")
def client(app_module):
    from gradio_client import Client

    app_module.demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    yield Client(app_module.demo.local_url, verbose=False)
    app_module.demo.close()


def _run(client, path, mode="Upscale"):
    from gradio_client import handle_file

    return client.predict(handle_file(path), mode, "ESPCN", "HAT", False, api_name="/compare")


def test_client_upload_gives_two_outputs_of_the_right_size(client, photo):
    pair, best, table, downloads, note = _run(client, photo)
    assert len(pair) == 2 and all(Image.open(p).size == (224, 192) for p in pair)
    assert all(Image.open(p).format == "PNG" for p in pair + best)  # not the lossy WebP default
    assert len(downloads) == 3


def test_client_benchmark_metrics_equal_the_library(client, app_module, photo):
    _, _, table, _, _ = _run(client, photo, "Benchmark")
    rows = {row[0]: row for row in table["data"]}
    hr = Image.open(photo).convert("RGB")
    sr = upscale(app_module.get_models()["ESPCN"][0], degrade(hr, 4))
    assert rows["ESPCN"][2] == round(psnr(sr, hr, crop_border=4), 2)


def test_eight_concurrent_requests_and_recovery_after_a_corrupt_upload(client, photo, tmp_path):
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: _run(client, photo), range(8)))
    assert all(Image.open(r[0][1]).size == (224, 192) for r in results)
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(Exception, match="not a readable image"):
        _run(client, str(corrupt))
    pair, *_ = _run(client, photo)
    assert Image.open(pair[0]).size == (224, 192)


def test_real_browser_shows_the_slider_with_both_images(client, app_module, tmp_path):
    import os

    from browser import chromium_path, run_in_browser

    if chromium_path() is None:
        if os.environ.get("CI"):
            pytest.fail("CI must install Chromium (apt-get install chromium) for the browser test")
        pytest.skip("no Chromium on this machine (apt-get install chromium)")
    example = str(app_module.EXAMPLES_DIR / "astronaut_face_lr.png")
    shot = tmp_path / "app.png"
    images = run_in_browser(app_module.demo.local_url, example, str(shot))
    assert len(images) == 2 and all((i["w"], i["h"]) == (160, 160) for i in images)
    assert images[0]["src"] != images[1]["src"]
    assert shot.stat().st_size > 10_000
