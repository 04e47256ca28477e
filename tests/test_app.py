"""The Gradio app (sr_models/app.py; app.py is the Space entry point): the handler
directly, then the launched app through gradio_client and a real browser."""

import concurrent.futures
import os
import struct
import subprocess
import sys
import threading
import zlib
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from PIL import Image

import torch

from sr_models import ESPCN, HAT, upscale
from sr_models.degradations import PRESETS
from sr_models.image_io import to_rgb
from sr_models.loading import BUNDLED
from sr_models.metrics import bicubic_upscale, degrade, psnr, ssim

ROOT = Path(__file__).resolve().parent.parent
#: Round-trip tolerance of a score shown with 2 (PSNR) or 4 (SSIM) decimals.
PSNR_SHOWN, SSIM_SHOWN = 0.006, 6e-5
#: 8-bit outputs recomputed here may differ from the app's by one level (float rounding).
ONE_LEVEL = 1


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory):
    """Tiny x4 models saved as folders (untrained, but loaded as weights from a folder),
    one per bundled model, each with its own random weights (so outputs tell them apart)."""
    folder = tmp_path_factory.mktemp("weights")
    for seed, name in enumerate(BUNDLED):
        torch.manual_seed(seed)
        cls, preset = (HAT, "hat-tiny") if BUNDLED[name].architecture == "HAT" else (ESPCN, "espcn-tiny")
        cls.from_preset(preset).save_pretrained(folder / name)
    # the names the tests use for the study's pair
    (folder / "espcn").symlink_to(folder / "espcn-faces")
    (folder / "hat").symlink_to(folder / "hat-faces")
    return folder


@pytest.fixture(scope="module")
def app_module(saved_models):
    """sr_models.app with the tiny models standing in for the bundled weights (via the env vars)."""
    mp = pytest.MonkeyPatch()
    for name, entry in BUNDLED.items():
        mp.setenv(entry.env_var, str(saved_models / name))
    from sr_models import app

    app.get_models.cache_clear()
    yield app
    app.get_models.cache_clear()
    mp.undo()


@pytest.fixture
def fresh_models(app_module):
    """Models reloaded from the environment the test sets, and again after it."""
    app_module.get_models.cache_clear()
    yield app_module
    app_module.get_models.cache_clear()


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "photo.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (48, 56, 3), dtype=np.uint8)).save(path)
    return str(path)


def _levels(path) -> np.ndarray:
    return np.asarray(Image.open(path), dtype=np.int32)


def _max_level_difference(a, b) -> int:
    return int(np.abs(np.asarray(a, dtype=np.int32) - np.asarray(b, dtype=np.int32)).max())


# ------------------------------------------------------------------ layout and start-up


def test_root_app_py_is_the_entry_point_of_the_packaged_app(app_module):
    import app as space_app

    assert space_app.demo is app_module.demo and space_app.main is app_module.main


def test_the_library_never_imports_the_app():
    code = ("import pkgutil, importlib, sys, sr_models\n"
            "for m in pkgutil.iter_modules(sr_models.__path__):\n"
            "    if m.name not in ('app', '__main__'):\n"
            "        importlib.import_module('sr_models.' + m.name)\n"
            "assert 'sr_models.app' not in sys.modules and 'gradio' not in sys.modules, 'app imported'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_examples_come_from_the_package_first_then_the_checkout(app_module, tmp_path):
    package, checkout = tmp_path / "package", tmp_path / "checkout"
    for folder in (package, checkout):
        folder.mkdir()
        Image.new("RGB", (8, 8)).save(folder / f"{folder.name}.png")
    assert app_module.example_images([package, checkout]) == [str(package / "package.png")]
    assert app_module.example_images([tmp_path / "missing", checkout]) == [str(checkout / "checkout.png")]
    # in this source checkout the examples are the root folder's
    assert str(ROOT / "examples" / "astronaut.png") in app_module.example_images()


def test_weights_note_names_the_sources(app_module):
    note = app_module.weights_note()
    assert all(entry.env_var in note for entry in BUNDLED.values()) and "x4" in note
    assert "(real photo)" in note and "(clean downscale)" in note


def test_examples_that_are_photos_pick_the_real_photo_weights(app_module):
    rows = dict(app_module.example_rows(app_module.example_images()))
    kinds = {Path(path).name: kind for path, kind in rows.items()}
    assert kinds["astronaut_face_lr.png"] == "Clean downscale"
    assert kinds["astronaut_photo.jpg"] == "Real photo"
    assert Image.open(ROOT / "examples" / "astronaut_photo.jpg").format == "JPEG"


def test_a_preset_in_the_env_var_stops_the_app_and_never_fills_the_slot(fresh_models, monkeypatch):
    monkeypatch.setenv("SR_HAT_MODEL", "hat-s")
    with pytest.raises(SystemExit, match="SR_HAT_MODEL=.hat-s.* preset"):
        fresh_models.check_weights()
    with pytest.raises(ValueError, match="random"):
        fresh_models.get_models()
    with pytest.raises(gr.Error, match="misconfigured.*preset"):  # launched without main(): every request says so
        fresh_models.weights_note()


def test_weights_of_the_other_architecture_stop_the_app(fresh_models, saved_models, monkeypatch):
    monkeypatch.setenv("SR_HAT_MODEL", str(saved_models / "espcn"))
    with pytest.raises(SystemExit, match="SR_HAT_MODEL=.*ESPCN.*HAT"):
        fresh_models.check_weights()


def test_models_of_different_scales_stop_the_app(fresh_models, tmp_path, monkeypatch):
    HAT.from_preset("hat-tiny", upscale=2).save_pretrained(tmp_path / "hat-x2")
    monkeypatch.setenv("SR_HAT_MODEL", str(tmp_path / "hat-x2"))
    with pytest.raises(SystemExit, match="one scale"):
        fresh_models.check_weights()


def test_python_m_sr_models_app_fails_fast_on_a_preset(tmp_path):
    env = {**os.environ, "SR_HAT_MODEL": "hat-s", "GRADIO_ANALYTICS_ENABLED": "False"}
    result = subprocess.run([sys.executable, "-m", "sr_models.app", "--host", "127.0.0.1"], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode != 0
    assert "cannot start" in result.stderr and "preset" in result.stderr


# ------------------------------------------------------------------ the handler


def test_upscale_mode_returns_both_sliders_at_the_right_size(app_module, photo):
    pair, best, table, downloads, note = app_module.compare(photo, "Upscale", "ESPCN", "HAT", False)
    pair, best = [Image.open(p) for p in pair], [Image.open(p) for p in best]
    assert [im.size for im in pair] == [(224, 192)] * 2
    assert [im.size for im in best] == [(224, 192)] * 2
    assert [row[0] for row in table["data"]] == ["Bicubic", "ESPCN", "HAT"]
    assert sorted(Path(p).name for p in downloads) == ["bicubic.png", "espcn.png", "hat.png"]
    # the slider shows what the library produces
    model = app_module.get_models()["HAT"][0]
    assert _max_level_difference(pair[1], upscale(model, Image.open(photo))) <= ONE_LEVEL


@pytest.mark.parametrize("left,right", [("Bicubic", "ESPCN"), ("HAT", "Bicubic")])
def test_any_two_methods_can_be_compared(app_module, photo, left, right):
    pair, *_ = app_module.compare(photo, "Upscale", left, right, True)
    bicubic = bicubic_upscale(Image.open(photo), 4)
    assert _max_level_difference(Image.open(pair[[left, right].index("Bicubic")]), bicubic) <= ONE_LEVEL


def test_benchmark_mode_scores_equal_the_library_metrics(app_module, photo):
    pair, best, table, downloads, note = app_module.compare(photo, "Benchmark", "ESPCN", "HAT", False)
    hr = Image.open(photo).convert("RGB")
    lr = degrade(hr, 4)
    rows = {row[0]: row for row in table["data"]}
    models = app_module.get_models()
    for method in ("ESPCN", "HAT"):
        sr = upscale(models[method][0], lr)
        assert rows[method][2] == pytest.approx(psnr(sr, hr, crop_border=4), abs=PSNR_SHOWN)
        assert rows[method][3] == pytest.approx(ssim(sr, hr, crop_border=4), abs=SSIM_SHOWN)
    assert rows["Bicubic"][2] == pytest.approx(psnr(bicubic_upscale(lr, 4), hr, crop_border=4), abs=PSNR_SHOWN)
    best_method = max(("ESPCN", "HAT"), key=lambda m: rows[m][2])
    assert Image.open(pair[0]).size == hr.size and f"Best: **{best_method}**" in note


def test_user_mistakes_raise_gr_errors(app_module, photo, tmp_path):
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


def test_real_photo_uses_the_real_photo_weights(app_module, photo):
    pair, _, _, _, note = app_module.compare(photo, "Upscale", "ESPCN", "HAT", False, "Real photo")
    real, clean = app_module.get_models("Real photo"), app_module.get_models("Clean downscale")
    lr = Image.open(photo)
    assert _max_level_difference(Image.open(pair[1]), upscale(real["HAT"][0], lr)) <= ONE_LEVEL
    assert _max_level_difference(Image.open(pair[1]), upscale(clean["HAT"][0], lr)) > 3 * ONE_LEVEL
    assert "real photo weights" in note


def test_real_photo_benchmark_degrades_with_the_realistic_preset(app_module, photo):
    _, _, table, _, note = app_module.compare(photo, "Benchmark", "ESPCN", "HAT", False, "Real photo")
    hr = Image.open(photo).convert("RGB")
    from sr_models.degradations import degrade_realistic

    lr = degrade_realistic(hr, 4, PRESETS["moderate"], seed=0, index=0)
    assert _max_level_difference(lr, degrade(hr, 4)) > 3 * ONE_LEVEL  # really another LR than the protocol's
    rows = {row[0]: row for row in table["data"]}
    sr = upscale(app_module.get_models("Real photo")["ESPCN"][0], lr)
    assert rows["ESPCN"][2] == pytest.approx(psnr(sr, hr, crop_border=4), abs=PSNR_SHOWN)
    assert rows["Bicubic"][2] == pytest.approx(psnr(bicubic_upscale(lr, 4), hr, crop_border=4), abs=PSNR_SHOWN)
    assert "'moderate', seed 0" in note


def test_an_unknown_input_kind_is_a_clear_error(app_module, photo):
    with pytest.raises(gr.Error, match="Unknown input kind 'Noisy'.*Clean downscale"):
        app_module.compare(photo, "Upscale", "ESPCN", "HAT", False, "Noisy")


def test_a_preset_in_a_real_photo_env_var_stops_the_app(fresh_models, monkeypatch):
    monkeypatch.setenv("SR_HAT_REAL_MODEL", "hat-s")
    with pytest.raises(SystemExit, match="SR_HAT_REAL_MODEL=.hat-s.* preset"):
        fresh_models.check_weights()


@pytest.mark.parametrize("size", [(1, 1), (43, 100)])
def test_benchmark_mode_refuses_a_tiny_image_with_a_message(app_module, tmp_path, size):
    tiny = tmp_path / "tiny.png"
    Image.new("RGB", size, (200, 10, 10)).save(tiny)
    with pytest.raises(gr.Error, match="at least 44px per side"):
        app_module.compare(str(tiny), "Benchmark", "ESPCN", "HAT", False)


def test_modes_the_pipeline_handles_reach_the_sliders(app_module, tmp_path):
    grey16 = tmp_path / "grey16.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 65536, (20, 24), dtype=np.uint16)).save(grey16)
    rgba = tmp_path / "rgba.png"
    Image.new("RGBA", (24, 20), (10, 200, 30, 128)).save(rgba)
    for path in (grey16, rgba):
        pair, *_ = app_module.compare(str(path), "Upscale", "ESPCN", "HAT", False)
        assert Image.open(pair[1]).size == (96, 80)


@pytest.fixture
def cmyk(tmp_path):
    """A CMYK JPEG: smooth ramps (so that bicubic scores well in benchmark mode)."""
    path = tmp_path / "cmyk.jpg"
    ramp = np.tile(np.linspace(0, 255, 48), (48, 1))
    channels = [ramp, ramp.T, np.full((48, 48), 60.0), np.full((48, 48), 20.0)]
    Image.fromarray(np.stack(channels, axis=2).astype(np.uint8), "CMYK").save(path, quality=95)
    return str(path)


@pytest.fixture
def float_tiff(tmp_path):
    """A mode F TIFF in 0-1: a smooth ramp, mean 0.5."""
    path = tmp_path / "float.tif"
    ramp = np.tile(np.linspace(0.0, 1.0, 48, dtype=np.float32), (48, 1))
    Image.fromarray(ramp, "F").save(path)
    return str(path)


def test_cmyk_upload_is_shown_as_rgb_and_downloaded_as_cmyk(app_module, cmyk):
    pair, best, table, downloads, note = app_module.compare(cmyk, "Upscale", "Bicubic", "HAT", False)
    shown = Image.open(pair[0])
    assert (shown.mode, shown.size) == ("RGB", (192, 192))
    expected = to_rgb(bicubic_upscale(Image.open(cmyk), 4))
    assert _max_level_difference(shown, expected) <= ONE_LEVEL
    tiffs = [Image.open(p) for p in downloads if p.endswith(".tif")]
    assert len(tiffs) == 3 and all(t.mode == "CMYK" and t.size == (192, 192) for t in tiffs)
    assert "CMYK" in note and "8-bit RGB" in note


def test_float_tiff_upload_is_shown_in_its_range_not_black(app_module, float_tiff):
    pair, best, table, downloads, note = app_module.compare(float_tiff, "Upscale", "Bicubic", "ESPCN", False)
    shown = _levels(pair[0])
    assert shown.shape[:2] == (192, 192)
    assert abs(shown.mean() - 127.5) < 3  # the ramp's mean, not a black image
    tiffs = [Image.open(p) for p in downloads if p.endswith(".tif")]
    assert len(tiffs) == 3 and all(t.mode == "F" for t in tiffs)
    assert 0.0 <= np.asarray(tiffs[0]).min() and np.asarray(tiffs[0]).max() <= 1.0


@pytest.mark.parametrize("upload", ["cmyk", "float_tiff"])
def test_cmyk_and_float_uploads_can_be_benchmarked(app_module, upload, request):
    _, _, table, _, note = app_module.compare(request.getfixturevalue(upload), "Benchmark", "ESPCN", "HAT", False)
    rows = {row[0]: row for row in table["data"]}
    assert rows["Bicubic"][2] > 25 and "benchmarked as 8-bit RGB" in note  # a black image scores < 10 dB


def test_animated_gif_says_that_the_first_frame_was_used(app_module, tmp_path):
    gif = tmp_path / "anim.gif"
    frames = [Image.new("RGB", (24, 20), colour) for colour in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=100)
    pair, *_, note = app_module.compare(str(gif), "Upscale", "Bicubic", "ESPCN", False)
    assert "animated (3 frames)" in note and "first frame" in note
    red = np.asarray(Image.open(pair[0]).convert("RGB"), dtype=np.int32)
    assert red[..., 0].mean() > 200 and red[..., 2].mean() < 50  # the first (red) frame


def test_a_later_request_removes_old_result_folders(app_module, photo, monkeypatch):
    first = app_module.compare(photo, "Upscale", "ESPCN", "HAT", False)[3]
    assert all(Path(p).is_file() for p in first)
    monkeypatch.setattr(app_module.RESULT_FOLDERS, "max_age_s", -1)  # every earlier folder is "old"
    second = app_module.compare(photo, "Upscale", "ESPCN", "HAT", False)[3]
    assert not Path(first[0]).parent.exists() and all(Path(p).is_file() for p in second)


def test_result_folders_are_removed_when_the_process_exits(tmp_path):
    code = "from sr_models.app import RESULT_FOLDERS; print(RESULT_FOLDERS.new())"
    env = {**os.environ, "TMPDIR": str(tmp_path), "GRADIO_ANALYTICS_ENABLED": "False"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert str(tmp_path) in result.stdout and not list(tmp_path.glob("sr-models-*"))


def _cached_files(blocks, root: Path, count: int) -> list[Path]:
    """``count`` files in Gradio's layout (a folder per content hash), registered as the app's."""
    paths = []
    for i in range(count):
        path = root / f"hash{i}" / "result.png"
        path.parent.mkdir(parents=True)
        path.write_bytes(b"png")
        paths.append(path)
    blocks.upload_file_set.update(str(p) for p in paths)
    return paths


def test_cache_sweeper_deletes_cached_files_once_old_and_keeps_examples(app_module, tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))
    with gr.Blocks() as blocks:
        example = gr.Image()
    paths = _cached_files(blocks, tmp_path, 3)
    example.keep_in_cache.add(str(paths[0]))
    sweeper = app_module.CacheSweeper(blocks, every_s=0, max_age_s=3600)
    sweeper.maybe_sweep()
    assert all(p.exists() for p in paths)  # younger than the limit
    assert sweeper.sweep(max_age_s=-1) == 2  # what the exit sweep does
    assert paths[0].exists() and not paths[1].exists() and not paths[1].parent.exists()
    assert blocks.upload_file_set == {str(paths[0])} and tmp_path.is_dir()


def test_cache_sweeper_survives_requests_adding_files_while_it_runs(app_module, tmp_path):
    """Gradio's own delete_cache sweep dies here ("Set changed size during iteration")."""
    with gr.Blocks() as blocks:
        pass
    blocks.upload_file_set.update(str(tmp_path / f"gone{i}.png") for i in range(5_000))
    stop = threading.Event()

    def add_uploads():
        # Bounded: every path added here is also swept again by the exit hook.
        for i in range(20_000):
            if stop.is_set():
                return
            blocks.upload_file_set.add(str(tmp_path / f"new{i}.png"))

    adder = threading.Thread(target=add_uploads)
    adder.start()
    try:
        app_module.CacheSweeper(blocks, every_s=0, max_age_s=-1).sweep(-1)
    finally:
        stop.set()
        adder.join()
    assert not [path for path in blocks.upload_file_set if Path(path).name.startswith("gone")]


# ------------------------------------------------------------------ the launched app


@pytest.fixture(scope="module")
def client(app_module):
    from gradio_client import Client

    app_module.demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    yield Client(app_module.demo.local_url, verbose=False)
    app_module.demo.close()


def _run(client, path, mode="Upscale", kind="Clean downscale"):
    from gradio_client import handle_file

    return client.predict(handle_file(path), mode, "ESPCN", "HAT", False, kind, api_name="/compare")


def test_client_upload_gives_two_outputs_of_the_right_size(client, photo):
    pair, best, table, downloads, note = _run(client, photo)
    assert len(pair) == 2 and all(Image.open(p).size == (224, 192) for p in pair)
    assert all(Image.open(p).format == "PNG" for p in pair + best)  # not the lossy WebP default
    assert len(downloads) == 3


def test_a_client_that_does_not_name_the_input_kind_gets_the_clean_downscale_weights(client, app_module, photo):
    """API callers written before the choice existed (benchmarks/app_soak.py, old scripts) still work."""
    from gradio_client import handle_file

    pair, *_, note = client.predict(handle_file(photo), "Upscale", "ESPCN", "HAT", False, api_name="/compare")
    clean_hat = app_module.get_models("Clean downscale")["HAT"][0]
    assert _max_level_difference(Image.open(pair[1]), upscale(clean_hat, Image.open(photo))) <= ONE_LEVEL
    assert "clean downscale weights" in note


def test_client_benchmark_metrics_equal_the_library(client, app_module, photo):
    _, _, table, _, _ = _run(client, photo, "Benchmark")
    rows = {row[0]: row for row in table["data"]}
    hr = Image.open(photo).convert("RGB")
    sr = upscale(app_module.get_models()["ESPCN"][0], degrade(hr, 4))
    assert rows["ESPCN"][2] == pytest.approx(psnr(sr, hr, crop_border=4), abs=PSNR_SHOWN)


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims width x height (no pixel data): a decompression bomb."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b""))
                     + chunk(b"IEND", b""))


def test_a_decompression_bomb_gets_a_clear_message(client, app_module, tmp_path):
    bomb = tmp_path / "bomb.png"
    _png_header_only(bomb, 30_000, 30_000)
    with pytest.raises(Exception, match="too large to open"):
        _run(client, str(bomb))
    from gradio.data_classes import ImageData

    with pytest.raises(gr.Error, match="too large to open"):
        app_module.UploadedImage(type="filepath").preprocess(ImageData(path=str(bomb), orig_name="bomb.png"))


def test_client_cmyk_and_one_pixel_benchmark(client, cmyk, tmp_path):
    pair, *_ = _run(client, cmyk)
    assert Image.open(pair[1]).size == (192, 192)
    one = tmp_path / "one.png"
    Image.new("RGB", (1, 1)).save(one)
    with pytest.raises(Exception, match="at least 44px"):
        _run(client, str(one), "Benchmark")


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


@pytest.mark.parametrize("example,kind", [("astronaut_face_lr.png", "Clean downscale"),
                                          ("astronaut_photo.jpg", "Real photo")])
def test_real_browser_shows_the_slider_with_both_images(client, app_module, tmp_path, example, kind):
    from browser import chromium_path, run_in_browser

    if chromium_path() is None:
        if os.environ.get("CI"):
            pytest.fail("CI must install Chromium (apt-get install chromium) for the browser test")
        pytest.skip("no Chromium on this machine (apt-get install chromium)")
    path = next(p for p in app_module.example_images() if p.endswith(example))
    shot = tmp_path / "app.png"
    images, text = run_in_browser(app_module.demo.local_url, path, str(shot), kind=kind)
    expected = tuple(4 * side for side in Image.open(path).size)
    assert len(images) == 2 and all((i["w"], i["h"]) == expected for i in images)
    assert images[0]["src"] != images[1]["src"]
    assert f"with the {kind.lower()} weights" in text  # the choice reached the handler
    assert shot.stat().st_size > 10_000
