"""The Gradio app (sr_models/app*.py; app.py is the Space entry point): start-up, then the
handler called directly. The launched app (gradio_client, a real browser) is in
test_app_client.py; the fixtures here serve both."""

import logging
import os
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import torch
from PIL import Image

from sr_models import ESPCN, HAT, upscale
from sr_models.bundled import BUNDLED
from sr_models.degradations import PRESETS
from sr_models.image_io import to_rgb
from sr_models.metrics import bicubic_upscale, degrade, psnr, ssim

ROOT = Path(__file__).resolve().parent.parent
#: Round-trip tolerance of a score shown with 2 (PSNR) or 4 (SSIM) decimals.
PSNR_SHOWN, SSIM_SHOWN = 0.006, 6e-5
#: 8-bit outputs recomputed here may differ from the app's by one level (float rounding).
ONE_LEVEL = 1


def clear_model_caches():
    from sr_models import app_models

    for cached in (app_models.load, app_models.blended, app_models.precision):
        cached.cache_clear()


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory):
    """Tiny x4 models saved as folders (untrained, but loaded as weights from a folder),
    one per bundled model, each with its own random weights (so outputs tell them apart)."""
    folder = tmp_path_factory.mktemp("weights")
    for seed, name in enumerate(BUNDLED):
        torch.manual_seed(seed)
        cls, preset = (HAT, "hat-tiny") if BUNDLED[name].architecture == "HAT" else (ESPCN, "espcn-tiny")
        cls.from_preset(preset).save_pretrained(folder / name)
    return folder


@pytest.fixture(scope="module")
def app_module(saved_models):
    """sr_models.app with the tiny models standing in for the bundled weights (via the env vars)."""
    mp = pytest.MonkeyPatch()
    for name, entry in BUNDLED.items():
        mp.setenv(entry.env_var, str(saved_models / name))
    from sr_models import app

    clear_model_caches()
    yield app
    clear_model_caches()
    mp.undo()


@pytest.fixture
def fresh_models(app_module):
    """Models reloaded from the environment the test sets, and again after it."""
    from sr_models import app_models

    clear_model_caches()
    yield app_models
    clear_model_caches()


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "photo.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (48, 56, 3), dtype=np.uint8)).save(path)
    return str(path)


def model(name: str):
    from sr_models.app_models import load

    return load(name)[0]


def run(path, kind="Clean downscale", mode="Upscale", strength=1.0, tiling=False) -> list[tuple]:
    """Every yield of the handler (results, table, downloads, note, status); the last is the run's result."""
    from sr_models.app_run import compare

    return list(compare(path, kind, mode, strength, tiling))


def final(path, *args, **kwargs) -> dict:
    """The run's result: {"images": {label: PNG}, "rows": {method: row}, "headers", "downloads", "note", "status"}."""
    results, table, downloads, note, status = run(path, *args, **kwargs)[-1]
    return {"images": {label: path for path, label in results}, "rows": {row[0]: row for row in table["data"]},
            "headers": table["headers"], "downloads": downloads, "note": note, "status": status}


def _max_level_difference(a, b) -> int:
    return int(np.abs(np.asarray(a, dtype=np.int32) - np.asarray(b, dtype=np.int32)).max())


def png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims width x height (no pixel data): a decompression bomb."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b""))
                     + chunk(b"IEND", b""))


# ------------------------------------------------------------------ layout and start-up


def test_root_app_py_is_the_entry_point_of_the_packaged_app(app_module):
    import app as space_app

    assert space_app.demo is app_module.demo and space_app.main is app_module.main


def test_the_library_never_imports_the_app():
    code = ("import pkgutil, importlib, sys, sr_models\n"
            "for m in pkgutil.iter_modules(sr_models.__path__):\n"
            "    if m.name != '__main__' and m.name.partition('_')[0] != 'app':  # the app and its modules\n"
            "        importlib.import_module('sr_models.' + m.name)\n"
            "assert not [n for n in sys.modules if n.startswith('sr_models.app')], 'app imported'\n"
            "assert 'gradio' not in sys.modules, 'gradio imported'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_importing_the_app_loads_no_model_and_its_folders_go_at_exit(tmp_path):
    code = ("import sr_models.app, sr_models.app_models as m\n"
            "from sr_models.app_run import RESULT_FOLDERS\n"
            "assert m.load.cache_info().currsize == 0, 'a model was loaded at import'\n"
            "print(RESULT_FOLDERS.new())\n")
    env = {**os.environ, "TMPDIR": str(tmp_path), "GRADIO_ANALYTICS_ENABLED": "False"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180, env=env)
    assert result.returncode == 0, result.stderr
    # a result folder was made, and the examples' cache folder with the app: both gone
    assert str(tmp_path) in result.stdout and not list(tmp_path.glob("sr-models-*"))


def test_weights_note_names_the_sources_and_the_precision(app_module):
    from sr_models.app_models import weights_note

    note = weights_note()
    assert all(entry.env_var in note for entry in BUNDLED.values()) and "x4" in note
    assert "(real photo)" in note and "(clean downscale)" in note and "float32" in note


def test_a_preset_in_the_env_var_stops_the_app_and_never_fills_the_slot(fresh_models, monkeypatch):
    monkeypatch.setenv("SR_HAT_MODEL", "hat-s")
    with pytest.raises(SystemExit, match="SR_HAT_MODEL=.hat-s.* preset"):
        fresh_models.check_weights()
    with pytest.raises(ValueError, match="random"):
        fresh_models.get_models("Clean downscale")
    with pytest.raises(gr.Error, match="misconfigured.*preset"):  # launched without main(): every request says so
        fresh_models.weights_note()


def test_weights_of_the_other_architecture_stop_the_app(fresh_models, saved_models, monkeypatch):
    monkeypatch.setenv("SR_HAT_MODEL", str(saved_models / "espcn-faces"))
    with pytest.raises(SystemExit, match="SR_HAT_MODEL=.*ESPCN.*HAT"):
        fresh_models.check_weights()


def test_models_of_different_scales_stop_the_app(fresh_models, tmp_path, monkeypatch):
    HAT.from_preset("hat-tiny", upscale=2).save_pretrained(tmp_path / "hat-x2")
    monkeypatch.setenv("SR_HAT_MODEL", str(tmp_path / "hat-x2"))
    with pytest.raises(SystemExit, match="one scale"):
        fresh_models.check_weights()


def test_a_preset_in_a_real_photo_env_var_stops_the_app(fresh_models, monkeypatch):
    monkeypatch.setenv("SR_HAT_REAL_MODEL", "hat-s")
    with pytest.raises(SystemExit, match="SR_HAT_REAL_MODEL=.hat-s.* preset"):
        fresh_models.check_weights()


def test_python_m_sr_models_app_fails_fast_on_a_preset(tmp_path):
    env = {**os.environ, "SR_HAT_MODEL": "hat-s", "GRADIO_ANALYTICS_ENABLED": "False"}
    result = subprocess.run([sys.executable, "-m", "sr_models.app", "--host", "127.0.0.1"], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode != 0
    assert "cannot start" in result.stderr and "preset" in result.stderr


@pytest.mark.parametrize("share_url,share,expected", [
    (None, False, "add --share for a public link"), ("https://x.gradio.live", True, "https://x.gradio.live"),
    (None, True, "could not be made")])
def test_the_start_up_message_speaks_of_the_share_flag(app_module, share_url, share, expected):
    message = app_module.started_message("http://127.0.0.1:7860/", share_url, share)
    assert expected in message and "launch(" not in message and "http://127.0.0.1:7860/" in message


def test_a_space_is_not_told_to_add_share(app_module):
    assert "--share" not in app_module.started_message("http://0.0.0.0:7860/", None, False, on_space=True)
    assert "--share" not in app_module.started_message("http://0.0.0.0:7860/", None, True, on_space=True)


# ------------------------------------------------------------------ the handler: results as they come


def test_results_arrive_bicubic_first_then_each_model_in_turn(app_module, photo, monkeypatch):
    """Each yield comes before the next model starts: ESPCN is shown while HAT has not run."""
    import sr_models.evaluation

    started = []
    monkeypatch.setattr(sr_models.evaluation, "upscale",
                        lambda model, image, **kw: started.append(type(model).__name__) or upscale(model, image, **kw))
    from sr_models.app_run import compare

    seen = []
    for results, table, downloads, note, status in compare(photo, "Clean downscale", "Upscale"):
        seen.append(([label for _, label in results], list(started), [row[0] for row in table["data"]]))
    assert seen == [
        (["Input (nearest neighbour)", "Bicubic"], [], ["Bicubic"]),
        (["Input (nearest neighbour)", "Bicubic", "ESPCN"], ["ESPCN"], ["Bicubic", "ESPCN"]),
        (["Input (nearest neighbour)", "Bicubic", "ESPCN", "HAT"], ["ESPCN", "HAT"], ["Bicubic", "ESPCN", "HAT"])]


def test_the_status_says_what_is_done_and_what_runs(app_module, photo):
    statuses = [status for *_, status in run(photo)]
    assert statuses == ["Done: Bicubic. Running: ESPCN, HAT…", "Done: Bicubic, ESPCN. Running: HAT…", "Done."]


def test_upscale_mode_gives_every_result_at_the_output_size(app_module, photo):
    result = final(photo)
    assert {label: Image.open(p).size for label, p in result["images"].items()} == {
        "Input (nearest neighbour)": (224, 192), "Bicubic": (224, 192), "ESPCN": (224, 192), "HAT": (224, 192)}
    assert list(result["rows"]) == ["Bicubic", "ESPCN", "HAT"] and result["headers"] == ["method", "seconds"]
    # the results are the library's
    assert _max_level_difference(Image.open(result["images"]["HAT"]), upscale(model("hat-faces"), photo)) <= ONE_LEVEL
    bicubic = bicubic_upscale(Image.open(photo), 4)
    assert _max_level_difference(Image.open(result["images"]["Bicubic"]), bicubic) <= ONE_LEVEL
    nearest = np.asarray(Image.open(result["images"]["Input (nearest neighbour)"]))
    assert np.array_equal(nearest[::4, ::4], np.asarray(Image.open(photo)))  # pixels repeated, nothing invented


def test_downloads_are_named_after_the_upload_and_the_method(app_module, tmp_path):
    upload = tmp_path / "My holiday (2).png"
    Image.new("RGB", (20, 16), (30, 90, 200)).save(upload)
    names = [Path(p).name for p in final(str(upload))["downloads"]]
    assert names == ["My_holiday_2_bicubic_x4.png", "My_holiday_2_espcn_x4.png", "My_holiday_2_hat_x4.png"]


def test_benchmark_mode_scores_equal_the_library_metrics_and_offers_the_original(app_module, photo):
    result = final(photo, mode="Benchmark")
    hr = Image.open(photo).convert("RGB")
    lr = degrade(hr, 4)
    for method, name in (("ESPCN", "espcn-faces"), ("HAT", "hat-faces")):
        sr = upscale(model(name), lr)
        assert result["rows"][method][2] == pytest.approx(psnr(sr, hr, crop_border=4), abs=PSNR_SHOWN)
        assert result["rows"][method][3] == pytest.approx(ssim(sr, hr, crop_border=4), abs=SSIM_SHOWN)
    assert result["rows"]["Bicubic"][2] == pytest.approx(psnr(bicubic_upscale(lr, 4), hr, crop_border=4),
                                                         abs=PSNR_SHOWN)
    best = max(("ESPCN", "HAT"), key=lambda m: result["rows"][m][2])
    assert f"Best: **{best}**" in result["status"]
    images = result["images"]
    assert list(images) == ["Original (HR)", "Degraded input (nearest neighbour)", "Bicubic", "ESPCN", "HAT"]
    assert np.array_equal(np.asarray(Image.open(images["Original (HR)"])), np.asarray(hr))
    degraded = np.asarray(Image.open(images["Degraded input (nearest neighbour)"]))
    assert degraded.shape[:2] == (48, 56) and np.array_equal(degraded[::4, ::4], np.asarray(lr))


def test_user_mistakes_are_refused_with_a_message_and_one_log_line(app_module, photo, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="sr_models.app")
    with pytest.raises(gr.Error, match="Upload an image") as err:
        run(None)
    assert err.value.print_exception is False  # no traceback in the server's log
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(gr.Error, match="not a readable image"):
        run(str(bad))
    big = tmp_path / "big.png"
    Image.new("RGB", (1100, 1000)).save(big)
    with pytest.raises(gr.Error, match="limit") as err:
        run(str(big))
    assert err.value.print_exception is False
    refusals = [record for record in caplog.records if record.getMessage().startswith("refused: ")]
    assert len(refusals) == 3 and not any(record.exc_info for record in refusals)
    assert all("\n" not in record.getMessage() for record in refusals)


def test_real_photo_uses_the_real_photo_weights(app_module, photo):
    result = final(photo, "Real photo")
    hat = Image.open(result["images"]["HAT"])
    assert _max_level_difference(hat, upscale(model("hat-real"), photo)) <= ONE_LEVEL
    assert _max_level_difference(hat, upscale(model("hat-faces"), photo)) > 3 * ONE_LEVEL
    assert "real photo weights (denoise strength 1)" in result["note"]


def test_denoise_strength_zero_gives_the_clean_weights_and_a_half_lies_between(app_module, photo):
    clean = upscale(model("hat-faces"), photo)
    zero = Image.open(final(photo, "Real photo", strength=0.0)["images"]["HAT"])
    assert _max_level_difference(zero, clean) <= ONE_LEVEL
    half = final(photo, "Real photo", strength=0.5)
    real = upscale(model("hat-real"), photo)
    between = Image.open(half["images"]["HAT"])
    assert _max_level_difference(between, clean) > 3 * ONE_LEVEL and _max_level_difference(between, real) > 3 * ONE_LEVEL
    assert "denoise strength 0.5" in half["note"]


def test_the_clean_kind_ignores_the_denoise_strength(app_module, photo):
    assert _max_level_difference(Image.open(final(photo, strength=0.0)["images"]["HAT"]),
                                 upscale(model("hat-faces"), photo)) <= ONE_LEVEL


def test_real_photo_benchmark_degrades_with_the_realistic_preset(app_module, photo):
    result = final(photo, "Real photo", "Benchmark")
    hr = Image.open(photo).convert("RGB")
    from sr_models.degradations import degrade_realistic

    lr = degrade_realistic(hr, 4, PRESETS["moderate"], seed=0, index=0)
    assert _max_level_difference(lr, degrade(hr, 4)) > 3 * ONE_LEVEL  # really another LR than the protocol's
    sr = upscale(model("espcn-real"), lr)
    assert result["rows"]["ESPCN"][2] == pytest.approx(psnr(sr, hr, crop_border=4), abs=PSNR_SHOWN)
    assert result["rows"]["Bicubic"][2] == pytest.approx(psnr(bicubic_upscale(lr, 4), hr, crop_border=4),
                                                         abs=PSNR_SHOWN)
    assert "'moderate', seed 0" in result["note"]


def test_an_unknown_input_kind_is_a_clear_error(app_module, photo):
    with pytest.raises(gr.Error, match="Unknown input kind 'Noisy'.*Clean downscale"):
        run(photo, "Noisy")


@pytest.mark.parametrize("size", [(1, 1), (43, 100)])
def test_benchmark_mode_refuses_a_tiny_image_with_a_message(app_module, tmp_path, size):
    tiny = tmp_path / "tiny.png"
    Image.new("RGB", size, (200, 10, 10)).save(tiny)
    with pytest.raises(gr.Error, match="at least 44px per side"):
        run(str(tiny), mode="Benchmark")


def test_modes_the_pipeline_handles_reach_the_slider(app_module, tmp_path):
    grey16 = tmp_path / "grey16.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 65536, (20, 24), dtype=np.uint16)).save(grey16)
    rgba = tmp_path / "rgba.png"
    Image.new("RGBA", (24, 20), (10, 200, 30, 128)).save(rgba)
    for path in (grey16, rgba):
        assert Image.open(final(str(path))["images"]["HAT"]).size == (96, 80)


def test_upscale_limit_counts_the_padded_size_and_says_its_numbers(app_module, tmp_path):
    """1x140000 is 140,000 pixels, but HAT pads it to its 8-pixel window: 1,120,000."""
    thin = tmp_path / "thin.png"
    Image.new("RGB", (1, 140_000)).save(thin)
    with pytest.raises(gr.Error) as err:
        run(str(thin))
    message = str(err.value)
    assert "1x140000 (140,000 pixels)" in message and "8x140000 (1,120,000 pixels)" in message
    assert "limit of 1,048,576 pixels (1024x1024)" in message


def test_benchmark_limit_is_checked_from_the_header_before_decoding(app_module, tmp_path):
    """A header that claims 2049x2048 (no pixel data) is refused for its size, with the numbers."""
    big = tmp_path / "big.png"
    png_header_only(big, 2049, 2048)
    with pytest.raises(gr.Error) as err:
        run(str(big), mode="Benchmark")
    message = str(err.value)
    assert "2049x2048 (4,196,352 pixels)" in message and "up to 4,194,304 pixels (2048x2048)" in message


def test_each_model_is_tiled_by_its_padded_input_with_the_cheapest_tiles(app_module, tmp_path, monkeypatch):
    """20x2 is 40 pixels to ESPCN but 24x8 = 192 to HAT (8-pixel windows)."""
    import sr_models.evaluation
    from sr_models import app_limits

    monkeypatch.setattr(app_limits, "MAX_UNTILED_PIXELS", 100)
    tiles = {}

    def recording_upscale(model, image, *, tile, **kwargs):
        tiles[type(model).__name__] = tile
        return upscale(model, image, tile=tile, **kwargs)

    monkeypatch.setattr(sr_models.evaluation, "upscale", recording_upscale)
    strip = tmp_path / "strip.png"
    Image.new("RGB", (20, 2), (90, 120, 200)).save(strip)
    result = final(str(strip))
    hat = model("hat-faces")
    assert tiles == {"ESPCN": None, "HAT": app_limits.choose_tile((20, 2), 8, hat.tile_overlap)}
    assert Image.open(result["images"]["HAT"]).size == (80, 8)


def test_forced_tiling_uses_the_fixed_tile(app_module, photo, monkeypatch):
    import sr_models.evaluation

    tiles = []
    monkeypatch.setattr(sr_models.evaluation, "upscale",
                        lambda model, image, *, tile, **kw: tiles.append(tile) or upscale(model, image, tile=tile, **kw))
    final(photo, tiling=True)
    from sr_models.app_limits import TILE_SIZE

    assert tiles == [TILE_SIZE, TILE_SIZE]


def test_an_upload_removed_by_the_disk_budget_is_a_clear_error(app_module, tmp_path):
    with pytest.raises(gr.Error, match="no longer on the server.*upload it again"):
        run(str(tmp_path / "swept.png"))


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
    result = final(cmyk)
    shown = Image.open(result["images"]["Bicubic"])
    assert (shown.mode, shown.size) == ("RGB", (192, 192))
    assert _max_level_difference(shown, to_rgb(bicubic_upscale(Image.open(cmyk), 4))) <= ONE_LEVEL
    tiffs = [Image.open(p) for p in result["downloads"]]
    assert len(tiffs) == 3 and all(t.format == "TIFF" and t.mode == "CMYK" and t.size == (192, 192) for t in tiffs)
    assert "CMYK" in result["note"] and "8-bit RGB" in result["note"]


def test_float_tiff_upload_is_shown_in_its_range_not_black(app_module, float_tiff):
    result = final(float_tiff)
    shown = np.asarray(Image.open(result["images"]["Bicubic"]), dtype=np.int32)
    assert shown.shape[:2] == (192, 192)
    assert abs(shown.mean() - 127.5) < 3  # the ramp's mean, not a black image
    tiffs = [Image.open(p) for p in result["downloads"]]
    assert len(tiffs) == 3 and all(t.mode == "F" for t in tiffs)
    assert 0.0 <= np.asarray(tiffs[0]).min() and np.asarray(tiffs[0]).max() <= 1.0


@pytest.mark.parametrize("upload", ["cmyk", "float_tiff"])
def test_cmyk_and_float_uploads_can_be_benchmarked(app_module, upload, request):
    result = final(request.getfixturevalue(upload), mode="Benchmark")
    assert result["rows"]["Bicubic"][2] > 25 and "benchmarked as 8-bit RGB" in result["note"]  # black: < 10 dB


def test_animated_gif_says_that_the_first_frame_was_used(app_module, tmp_path):
    gif = tmp_path / "anim.gif"
    frames = [Image.new("RGB", (24, 20), colour) for colour in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=100)
    result = final(str(gif))
    assert "animated (3 frames)" in result["note"] and "first frame" in result["note"]
    red = np.asarray(Image.open(result["images"]["Bicubic"]).convert("RGB"), dtype=np.int32)
    assert red[..., 0].mean() > 200 and red[..., 2].mean() < 50  # the first (red) frame


def test_a_later_request_removes_old_result_folders(app_module, photo):
    first = final(photo)["downloads"]
    assert all(Path(p).is_file() for p in first)
    an_hour_ago = time.time() - 3600
    os.utime(Path(first[0]).parent, (an_hour_ago, an_hour_ago))
    second = final(photo)["downloads"]
    assert not Path(first[0]).parent.exists() and all(Path(p).is_file() for p in second)


def test_a_run_longer_than_the_folder_age_keeps_its_folder_until_it_ends(app_module, photo, monkeypatch):
    """HAT may run for minutes after the first results are written: the background pruning
    must not remove the folder it still writes into (it did: the run then failed)."""
    from sr_models import app_run
    from sr_models.app_run import compare

    monkeypatch.setattr(app_run.RESULT_FOLDERS, "max_age_s", -1)  # every folder is "old"
    run = compare(photo, "Clean downscale", "Upscale")
    first = next(run)
    app_run.RESULT_FOLDERS.prune()  # the timer, while HAT has not run yet
    *_, last = run
    assert [label for _, label in last[0]][-1] == "HAT" and all(Path(p).is_file() for p in last[2])
    app_run.RESULT_FOLDERS.prune()  # the run has ended: its folder may go now
    assert not Path(first[2][0]).parent.exists()
