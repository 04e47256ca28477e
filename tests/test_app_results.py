"""What the app's slider can show and how it picks (sr_models/app_results.py, app_ui.py's
controls), and the examples (app_examples.py): no model runs here."""

from pathlib import Path

import gradio as gr
import pytest
from PIL import Image

from sr_models.app_examples import example_images, example_rows
from sr_models.app_results import DEGRADED, INPUT, ORIGINAL, RunFiles, download_stem, show_pair, slider_choices
from sr_models.app_ui import controls_for

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def results(tmp_path) -> list[tuple[str, str]]:
    """A run's results as the hidden gallery holds them: (file, label), in the order made."""
    files = []
    for name, label in (("input", INPUT), ("bicubic", "Bicubic"), ("espcn", "ESPCN"), ("hat", "HAT")):
        (tmp_path / f"{name}.png").write_bytes(b"png")
        files.append((str(tmp_path / f"{name}.png"), label))
    return files


def _names(update) -> tuple[str, str]:
    return tuple(Path(path).stem for path in update["value"])


def test_the_dropdowns_offer_the_input_every_method_and_in_benchmark_mode_the_original():
    assert slider_choices("Upscale", "Clean downscale") == [INPUT, "Bicubic", "ESPCN", "HAT"]
    assert slider_choices("Benchmark", "Real photo") == [DEGRADED, "Bicubic", "ESPCN", "HAT", ORIGINAL]


def test_the_slider_shows_the_chosen_pair_and_names_each_side(results):
    update = show_pair(results, "ESPCN", "HAT")
    assert _names(update) == ("espcn", "hat") and update["label"] == "left: ESPCN | right: HAT"


def test_the_same_method_on_both_sides_is_the_same_image_twice(results):
    update = show_pair(results, "HAT", "HAT")
    assert _names(update) == ("hat", "hat") and update["label"] == "left: HAT | right: HAT"


def test_a_method_still_running_is_stood_in_for_by_the_latest_other_result(results):
    update = show_pair(results[:2], "Bicubic", "HAT")  # ESPCN and HAT still running
    assert _names(update) == ("bicubic", "input")
    assert update["label"] == f"left: Bicubic | right: {INPUT} (HAT not ready)"
    update = show_pair(results[:3], "Bicubic", "HAT")
    assert update["label"] == "left: Bicubic | right: ESPCN (HAT not ready)"


def test_no_results_leave_the_slider_as_it_is():
    assert show_pair(None, "Bicubic", "HAT") == gr.skip()


def test_results_swept_from_the_cache_leave_the_slider_and_say_why(results):
    Path(results[3][0]).unlink()
    with pytest.warns(UserWarning, match="removed.*press Run"):
        assert show_pair(results, "Bicubic", "HAT") == gr.skip()


def test_changing_the_mode_keeps_the_sides_the_new_mode_offers():
    left, right, strength = controls_for("Benchmark", "Clean downscale", "ESPCN", "HAT")
    assert [value for _, value in left.choices] == slider_choices("Benchmark", "Clean downscale")
    assert (left.value, right.value) == ("ESPCN", "HAT") and strength.visible is False
    left, right, _ = controls_for("Upscale", "Clean downscale", ORIGINAL, DEGRADED)
    assert (left.value, right.value) == ("Bicubic", "HAT")  # the defaults replace what Upscale lacks


def test_the_denoise_strength_shows_for_real_photos_only():
    assert controls_for("Upscale", "Real photo", "Bicubic", "HAT")[2].visible is True
    assert controls_for("Upscale", "Clean downscale", "Bicubic", "HAT")[2].visible is False


def test_download_names_keep_the_upload_name_in_safe_characters():
    assert download_stem("/tmp/gradio/abc/My photo (1).JPG") == "My_photo_1"
    assert download_stem("/tmp/x/__.png") == "upload"
    assert download_stem("/tmp/x/" + "é" * 3 + ".png") == "upload"
    assert len(download_stem("/tmp/" + "a" * 300 + ".png")) == 60


def test_run_files_name_results_by_upload_method_and_scale(tmp_path):
    files = RunFiles(tmp_path, "photo", 4)
    files.add_view(INPUT, Image.new("RGB", (8, 8)), "input_nearest_x4")
    files.add_result("HAT", Image.new("RGB", (8, 8)))
    files.add_result("HAT (hat-real)", Image.new("CMYK", (8, 8)))
    assert [Path(p).name for p in files.downloads] == ["photo_hat_x4.png", "photo_hat-hat-real_x4.tif"]
    assert [(Path(p).name, label) for p, label in files.gallery()] == [
        ("photo_input_nearest_x4.png", INPUT), ("photo_hat_x4.png", "HAT"), ("photo_hat-hat-real_x4.png", "HAT (hat-real)")]


def test_examples_come_from_the_package_first_then_the_checkout(tmp_path):
    package, checkout = tmp_path / "package", tmp_path / "checkout"
    for folder in (package, checkout):
        folder.mkdir()
        Image.new("RGB", (8, 8)).save(folder / f"{folder.name}.png")
    assert example_images([package, checkout]) == [str(package / "package.png")]
    assert example_images([tmp_path / "missing", checkout]) == [str(checkout / "checkout.png")]
    # in this source checkout the examples are the root folder's
    assert str(ROOT / "examples" / "astronaut.png") in example_images()


def test_each_example_sets_its_input_kind_and_mode():
    rows = {Path(path).name: (kind, mode) for path, kind, mode in example_rows(example_images())}
    assert rows == {"astronaut_face_lr.png": ("Clean downscale", "Upscale"),
                    "astronaut_photo.jpg": ("Real photo", "Upscale"),
                    "astronaut.png": ("Clean downscale", "Benchmark"),  # as examples/LICENSE.md says
                    "astronaut_shuttles.png": ("Clean downscale", "Benchmark")}
    assert Image.open(ROOT / "examples" / "astronaut_photo.jpg").format == "JPEG"
    assert Image.open(ROOT / "examples" / "astronaut_shuttles.png").size == (256, 256)
    assert "astronaut_shuttles.png" in (ROOT / "examples" / "LICENSE.md").read_text()
