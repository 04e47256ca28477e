"""The launched app (in this process, tiny models): through gradio_client as an API caller
sees it, then in a real browser (headless Chromium through Playwright, tests/browser.py)."""

import concurrent.futures
import os
import threading
from pathlib import Path

import gradio as gr
import pytest
from PIL import Image

from sr_models import upscale
from sr_models.metrics import degrade, psnr
from test_app import ONE_LEVEL, PSNR_SHOWN, _max_level_difference, app_module, model, png_header_only  # noqa: F401
from test_app import cmyk, photo, saved_models  # noqa: F401 -- fixtures
from conftest import gradio_client_scratch

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def client(app_module, tmp_path_factory):
    from gradio_client import Client

    app_module.demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True,
                           **app_module.server_options())
    with gradio_client_scratch(tmp_path_factory.mktemp("gradio-client")):
        yield Client(app_module.demo.local_url, verbose=False)
    app_module.demo.close()


def _run(client, path, mode="Upscale", kind="Clean downscale", strength=1.0):
    """(images {label: file}, table, downloads, note, status) of one /compare call."""
    from gradio_client import handle_file

    results, table, downloads, note, status = client.predict(handle_file(path), kind, mode, strength, False,
                                                             api_name="/compare")
    return {item["caption"]: item["image"] for item in results}, table, downloads, note, status


def test_client_gets_every_result_as_png_at_the_right_size(client, photo):
    images, table, downloads, note, status = _run(client, photo)
    assert list(images) == ["Input (nearest neighbour)", "Bicubic", "ESPCN", "HAT"]
    assert all(Image.open(p).size == (224, 192) and Image.open(p).format == "PNG" for p in images.values())
    assert [Path(p).name for p in downloads] == ["photo_bicubic_x4.png", "photo_espcn_x4.png", "photo_hat_x4.png"]
    assert status == "Done."


def test_client_benchmark_metrics_equal_the_library(client, photo):
    _, table, _, _, _ = _run(client, photo, "Benchmark")
    rows = {row[0]: row for row in table["data"]}
    hr = Image.open(photo).convert("RGB")
    sr = upscale(model("espcn-faces"), degrade(hr, 4))
    assert rows["ESPCN"][2] == pytest.approx(psnr(sr, hr, crop_border=4), abs=PSNR_SHOWN)


def test_a_decompression_bomb_gets_a_clear_message(client, app_module, tmp_path):
    bomb = tmp_path / "bomb.png"
    png_header_only(bomb, 30_000, 30_000)
    with pytest.raises(Exception, match="too large to open"):
        _run(client, str(bomb))
    from gradio.data_classes import ImageData

    from sr_models.app_components import UploadedImage

    with pytest.raises(gr.Error, match="too large to open"):
        UploadedImage(type="filepath").preprocess(ImageData(path=str(bomb), orig_name="bomb.png"))


def test_client_cmyk_and_one_pixel_benchmark(client, cmyk, tmp_path):
    images, *_ = _run(client, cmyk)
    assert Image.open(images["HAT"]).size == (192, 192)
    one = tmp_path / "one.png"
    Image.new("RGB", (1, 1)).save(one)
    with pytest.raises(Exception, match="at least 44px"):
        _run(client, str(one), "Benchmark")


def test_eight_concurrent_requests_and_recovery_after_a_corrupt_upload(client, photo, tmp_path):
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: _run(client, photo), range(8)))
    assert all(Image.open(r[0]["HAT"]).size == (224, 192) for r in results)
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(Exception, match="not a readable image"):
        _run(client, str(corrupt))
    images, *_ = _run(client, photo)
    assert Image.open(images["Bicubic"]).size == (224, 192)


#: An API value of a megabyte: error messages must not repeat it.
MEGABYTE_VALUE = "x" * 1_000_000
#: Longest error message an API call may get back.
SHORT_MESSAGE = 500


@pytest.mark.parametrize("position,value,label", [
    (1, None, "The input is"), (1, ["Real photo"], "The input is"), (2, MEGABYTE_VALUE, "Mode"),
    (3, MEGABYTE_VALUE, "Denoise strength"), (3, 1.5, "Denoise strength"), (3, True, "Denoise strength"),
    (4, [1], "Tile"), (4, MEGABYTE_VALUE, "Tile")])
def test_api_values_outside_the_controls_get_a_short_clear_message(client, photo, position, value, label):
    from gradio_client import handle_file

    args = [handle_file(photo), "Clean downscale", "Upscale", 1.0, False]
    args[position] = value
    with pytest.raises(Exception) as err:
        client.predict(*args, api_name="/compare")
    message = str(err.value)
    assert message.startswith(label) and len(message) < SHORT_MESSAGE


def _raw_api_call(client, data):
    """POST /gradio_api/call/compare as a plain HTTP client would: (status, the answer's text)."""
    import httpx

    url = f"{client.src.rstrip('/')}/gradio_api/call/compare"
    posted = httpx.post(url, json={"data": data}, timeout=60)
    if posted.status_code != 200:
        return posted.status_code, posted.text
    return 200, httpx.get(f"{url}/{posted.json()['event_id']}", timeout=60).text


def test_an_api_call_with_missing_inputs_is_told_which(client):
    status, answer = _raw_api_call(client, [None, MEGABYTE_VALUE])
    assert status == 200 and "sent 2 of the 5 inputs" in answer and "Denoise strength" in answer
    assert len(answer) < SHORT_MESSAGE  # the values received are not repeated


def test_a_malformed_api_request_is_not_echoed_back(client):
    status, answer = _raw_api_call(client, MEGABYTE_VALUE)  # data must be a list
    assert status == 422 and "valid list" in answer and len(answer) < SHORT_MESSAGE


def test_only_the_run_is_an_api_endpoint(client):
    assert list(client.view_api(print_info=False, return_format="dict")["named_endpoints"]) == ["/compare"]


# ------------------------------------------------------------------ a real browser


@pytest.fixture
def browser_app(client, app_module):
    """(AppPage on the launched app, model runs so far): each upscale call counted by model."""
    from browser import chromium_path, open_app

    if chromium_path() is None:
        if os.environ.get("CI"):
            pytest.fail("CI must install Chromium (apt-get install chromium) for the browser test")
        pytest.skip("no Chromium on this machine (apt-get install chromium)")
    with open_app(app_module.demo.local_url) as app:
        yield app


@pytest.fixture
def model_runs(monkeypatch):
    """The models run, by class name, in order; HAT waits until the test sets ``release``."""
    import sr_models.evaluation

    runs, release = [], threading.Event()

    def counting(model, image, **kwargs):
        runs.append(type(model).__name__)
        if type(model).__name__ == "HAT":
            assert release.wait(60), "the test never released HAT"
        return upscale(model, image, **kwargs)

    monkeypatch.setattr(sr_models.evaluation, "upscale", counting)
    return runs, release


def test_browser_results_arrive_in_order_and_the_dropdowns_swap_without_a_run(browser_app, model_runs, app_module):
    app, (runs, release) = browser_app, model_runs
    example = next(p for p in app_module.example_images() if p.endswith("astronaut_face_lr.png"))
    app.upload(example)
    app.run()
    # HAT is held back: ESPCN is on the page first, standing in for HAT on the right
    app.wait_for_slider("left: Bicubic | right: ESPCN (HAT not ready)")
    assert runs == ["ESPCN", "HAT"] and "Running: HAT" in app.text("#status")
    release.set()
    app.wait_for_slider("left: Bicubic | right: HAT")
    images = app.slider_images()
    assert len(images) == 2 and all((i["w"], i["h"]) == (160, 160) for i in images)
    assert images[0]["src"] != images[1]["src"]
    assert app.options("Slider left") == ["Input (nearest neighbour)", "Bicubic", "ESPCN", "HAT"]
    # each swap shows other images at once, and no model runs again
    seen = {tuple(i["src"] for i in images)}
    for side, choice, label in [("Slider left", "Input (nearest neighbour)",
                                 "left: Input (nearest neighbour) | right: HAT"),
                                ("Slider right", "ESPCN", "left: Input (nearest neighbour) | right: ESPCN"),
                                ("Slider left", "ESPCN", "left: ESPCN | right: ESPCN")]:
        app.pick(side, choice)
        app.wait_for_slider(label)
        seen.add(tuple(i["src"] for i in app.slider_images()))
    assert len(seen) == 4 and runs == ["ESPCN", "HAT"]
    same = app.slider_images()
    assert same[0]["src"] == same[1]["src"] and "Error" not in app.text()  # one method twice: one image twice


def test_browser_benchmark_offers_the_original_and_the_degraded_input(browser_app, model_runs, app_module):
    app, (runs, release) = browser_app, model_runs
    release.set()
    example = next(p for p in app_module.example_images() if p.endswith("astronaut_shuttles.png"))
    app.upload(example)
    app.check("Benchmark")
    assert app.options("Slider right") == ["Degraded input (nearest neighbour)", "Bicubic", "ESPCN", "HAT",
                                           "Original (HR)"]
    app.run()
    app.wait_for_slider("left: Bicubic | right: HAT")
    app.pick("Slider left", "Original (HR)")
    app.pick("Slider right", "Degraded input (nearest neighbour)")
    app.wait_for_slider("left: Original (HR) | right: Degraded input (nearest neighbour)")
    assert all((i["w"], i["h"]) == (256, 256) for i in app.slider_images())
    assert "PSNR-Y" in app.text() and runs == ["ESPCN", "HAT"]


def test_browser_denoise_strength_shows_for_real_photos_and_reaches_the_models(browser_app, model_runs,
                                                                              app_module, tmp_path):
    app, (runs, release) = browser_app, model_runs
    release.set()
    app.wait_until_shown("Denoise strength", False)
    example = next(p for p in app_module.example_images() if p.endswith("astronaut_photo.jpg"))
    app.upload(example)
    app.check("Real photo")
    app.wait_until_shown("Denoise strength")
    app.set_number("Denoise strength", 0.3)
    app.run()
    app.wait_for_slider("left: Bicubic | right: HAT")
    assert "real photo weights (denoise strength 0.3)" in app.text("#note")
    shot = tmp_path / "app.png"
    app.screenshot(str(shot))
    assert shot.stat().st_size > 10_000


def test_browser_examples_set_kind_and_mode_and_run_once(browser_app, model_runs):
    """The first click on an example runs it and caches its results; a later click shows them from the cache."""
    from sr_models.app_examples import example_images, example_rows

    app, (runs, release) = browser_app, model_runs
    release.set()
    names = [Path(path).name for path, *_ in example_rows(example_images())]
    benchmark, photo_row = names.index("astronaut.png"), names.index("astronaut_photo.jpg")
    app.click_example(benchmark)
    app.wait_for_text("PSNR-Y (dB)")
    app.wait_for_slider("left: Bicubic | right: HAT")
    assert app.checked("Benchmark") and app.checked("Clean downscale") and runs == ["ESPCN", "HAT"]
    app.click_example(photo_row)
    app.wait_for_text("PSNR-Y (dB)", shown=False)
    app.wait_for_slider("left: Bicubic | right: HAT")
    assert app.checked("Upscale") and app.checked("Real photo") and runs == ["ESPCN", "HAT"] * 2
    app.click_example(benchmark)
    app.wait_for_text("PSNR-Y (dB)")
    app.wait_for_slider("left: Bicubic | right: HAT")
    assert app.checked("Benchmark") and app.checked("Clean downscale")
    assert runs == ["ESPCN", "HAT"] * 2  # the second click on the benchmark example ran nothing
