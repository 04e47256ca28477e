"""sr_models.evaluation: which files are images, the HR preparation, the scorer."""

import numpy as np
import pytest
from PIL import Image

from sr_models import ESPCN
from sr_models.degradations import PRESETS, DegradationConfig
from sr_models.evaluation import evaluate, find_images, prepare_hr, scan_folder, score_image


def _rgb(path, size=(16, 12)):
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)


def test_folders_give_images_gifs_included_and_never_hidden_or_partial_files(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / ".cache").mkdir()
    for name in ("a.png", "b.JPG", "sub/c.gif", ".hidden.png", ".cache/d.png"):
        _rgb(tmp_path / name)
    (tmp_path / ".a_x4.png.partial-0a1b2c3d").write_bytes(b"\x89PNG half")  # left by a killed CLI run
    (tmp_path / "notes.txt").write_text("text")
    images, others = scan_folder(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in images] == ["a.png", "b.JPG", "sub/c.gif"]
    assert [p.name for p in others] == ["notes.txt"]
    assert find_images(tmp_path) == images
    with pytest.raises(FileNotFoundError, match="not a folder"):
        find_images(tmp_path / "a.png")


@pytest.mark.parametrize("image", [
    Image.fromarray(np.full((8, 8), 40000, np.uint16)),  # 16-bit: PIL's convert("RGB") makes it white
    Image.fromarray(np.full((8, 8), 40000 / 65535, np.float32)),  # float 0-1: PIL's convert makes it black
])
def test_hr_images_of_high_bit_depth_are_scaled_to_8_bits_not_clipped(image):
    hr = prepare_hr(image, scale=2)
    assert hr.mode == "RGB"
    assert np.all(np.asarray(hr) == round(40000 / 65535 * 255))


def test_evaluate_scores_every_method_with_the_one_scorer(tmp_path, caplog):
    _rgb(tmp_path / "a.png", (48, 40))
    (tmp_path / "b.png").write_text("not an image")
    model = ESPCN.from_preset("espcn-tiny", upscale=2).eval()
    result = evaluate({"tiny": model}, find_images(tmp_path), scale=2, hr_size=32)
    assert result.images == [str(tmp_path / "a.png")] and "b.png" in caplog.text  # skipped with a warning
    hr = prepare_hr(Image.open(tmp_path / "a.png"), 2, 32)
    from sr_models.metrics import bicubic_upscale, degrade

    expected = score_image(bicubic_upscale(degrade(hr, 2), 2), hr, 2)
    assert result.methods["bicubic"].psnr == [pytest.approx(expected["psnr"], abs=1e-9)]
    assert result.methods["bicubic"].ssim == [pytest.approx(expected["ssim"], abs=1e-9)]
    assert set(result.methods) == {"bicubic", "tiny"}


# --------------------------------------------------------------------------- realistic LR


def _two_images(folder):
    for i, size in enumerate([(48, 40), (40, 48)]):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(
            folder / f"{i}.png")
    return find_images(folder)


def test_a_seeded_realistic_degradation_gives_the_same_scores_twice_and_another_seed_differs(tmp_path):
    images = _two_images(tmp_path)
    model = ESPCN.from_preset("espcn-tiny", upscale=2).eval()

    def scores(**kwargs):
        result = evaluate({"tiny": model}, images, scale=2, hr_size=32, degradation="moderate", **kwargs)
        return [result.methods[name].psnr for name in ("bicubic", "tiny")]

    first, again, other = scores(seed=3), scores(seed=3), scores(seed=4)
    assert first == again  # the same LR images, the same computation
    assert all(abs(a - b) > 1e-3 for a, b in zip(first[0], other[0]))
    # image i gets the LR degrade_realistic draws for (seed, index i)
    from sr_models.degradations import degrade_realistic
    from sr_models.metrics import bicubic_upscale

    hr = prepare_hr(Image.open(images[1]), 2, 32)
    lr = degrade_realistic(hr, 2, "moderate", seed=3, index=1)
    assert first[0][1] == pytest.approx(score_image(bicubic_upscale(lr, 2), hr, 2)["psnr"], abs=1e-9)


def test_the_result_records_the_degradation_and_seed_and_the_table_says_it(tmp_path):
    images = _two_images(tmp_path)
    realistic = evaluate({}, images, scale=2, hr_size=32, degradation=PRESETS["moderate"], seed=7)
    saved = realistic.to_json()
    assert (saved["degradation"], saved["seed"]) == ("moderate", 7)  # a preset's config goes by its name
    assert DegradationConfig.from_dict(saved["degradation_config"]) == PRESETS["moderate"]
    assert "realistic degradation 'moderate', seed 7" in realistic.table().splitlines()[0]
    custom = evaluate({}, images, scale=2, hr_size=32, degradation=DegradationConfig(second_order_prob=0.0))
    assert custom.to_json()["degradation"] == "custom"


def test_the_default_is_still_the_protocol(tmp_path):
    images = _two_images(tmp_path)
    default = evaluate({}, images, scale=2, hr_size=32)
    from sr_models.metrics import bicubic_upscale, degrade

    hr = prepare_hr(Image.open(images[0]), 2, 32)
    assert default.methods["bicubic"].psnr[0] == pytest.approx(
        score_image(bicubic_upscale(degrade(hr, 2), 2), hr, 2)["psnr"], abs=1e-9)
    named = evaluate({}, images, scale=2, hr_size=32, degradation="bicubic")
    assert named.methods["bicubic"].psnr == default.methods["bicubic"].psnr and named.degradation is None
    saved = default.to_json()
    assert (saved["degradation"], saved["seed"], saved["degradation_config"]) == (None, None, None)
    assert "the protocol" in default.table().splitlines()[0]
    with pytest.raises(ValueError, match="unknown degradation 'jpeg'.*'moderate'"):
        evaluate({}, images, scale=2, degradation="jpeg")
    with pytest.raises(ValueError, match="integer >= 0, got -1"):
        evaluate({}, images, scale=2, degradation="moderate", seed=-1)


def test_an_identical_image_writes_valid_json_and_is_counted_apart(tmp_path):
    """A flat image: bicubic reproduces it exactly, PSNR infinite. results.json held
    `Infinity` (not JSON) and the mean was inf (issue 19, item 11)."""
    import json

    Image.new("RGB", (32, 32), (90, 120, 30)).save(tmp_path / "flat.png")
    _rgb(tmp_path / "photo.png", (32, 32))
    model = ESPCN.from_preset("espcn-tiny", upscale=2).eval()
    result = evaluate({"tiny": model}, find_images(tmp_path), scale=2, hr_size=None)
    bicubic = result.methods["bicubic"]
    assert bicubic.psnr[0] == float("inf") and bicubic.identical == 1

    json_path, csv_path = result.write(tmp_path / "out")
    data = json.loads(json_path.read_text(), parse_constant=lambda name: pytest.fail(f"{name} in results.json"))
    assert data["per_image"]["bicubic"]["psnr"] == [None, pytest.approx(bicubic.psnr[1])]
    summary = data["summary"]["bicubic"]
    assert summary["psnr"] == pytest.approx(bicubic.psnr[1]) and summary["identical_images"] == 1
    assert summary["ssim"] == pytest.approx((1.0 + bicubic.ssim[1]) / 2)  # SSIM takes every image
    assert data["summary"]["tiny"]["identical_images"] == 0
    assert "identical to HR (PSNR infinite, not in the PSNR mean): bicubic 1 of 2" in result.table()


def test_when_every_image_is_identical_the_psnr_mean_is_null_not_infinite(tmp_path):
    import json

    Image.new("RGB", (32, 32), "grey").save(tmp_path / "flat.png")
    result = evaluate({}, find_images(tmp_path), scale=2, hr_size=None)
    assert result.methods["bicubic"].summary["psnr"] is None
    assert json.loads(result.write(tmp_path / "out")[0].read_text())["summary"]["bicubic"]["psnr"] is None
    assert result.table().splitlines()[2].split()[:2] == ["bicubic", "-"]


def test_every_registry_metric_is_scored_and_an_image_too_small_for_one_has_none(tmp_path):
    import csv
    import json

    from sr_models import metric_registry
    from sr_models.metrics import ms_ssim
    from sr_models.protocol import bicubic_upscale, degrade

    _rgb(tmp_path / "big.png", (200, 180))
    _rgb(tmp_path / "small.png", (40, 40))
    result = evaluate({}, find_images(tmp_path), scale=2, hr_size=None)
    bicubic = result.methods["bicubic"]
    assert list(bicubic.scores) == list(metric_registry.KEYS)
    hr = prepare_hr(Image.open(tmp_path / "big.png"), 2)
    assert bicubic.ms_ssim == [pytest.approx(ms_ssim(bicubic_upscale(degrade(hr, 2), 2), hr, 2), abs=1e-12), None]
    assert bicubic.summary["ms_ssim"] == pytest.approx(bicubic.ms_ssim[0])  # the mean of the images that have one
    json_path, csv_path = result.write(tmp_path / "out")
    assert json.loads(json_path.read_text())["per_image"]["bicubic"]["ms_ssim"][1] is None
    rows = list(csv.reader(csv_path.open()))
    assert rows[0] == ["image", "method", *metric_registry.KEYS, "seconds"] and rows[2][4] == ""
    assert "MS-SSIM-Y" in result.table().splitlines()[1]
