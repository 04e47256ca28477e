"""Denoise strength: blending the clean and real-photo weights (sr_models.denoise), in
load_model, on the command line (upscale --denoise), and the curve benchmark's core."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from benchmarks import denoise_curve, outputs
from sr_models import ESPCN, HAT, load_model, upscale
from sr_models.bundled import BUNDLED, REAL_PHOTO_MODELS, bundled_folder, denoisable_names
from sr_models.cli import main
from sr_models.denoise import blend, clean_partner, load_denoised
from sr_models.evaluation import evaluate, find_images

ATOL = 1e-6


def _pair(cls=ESPCN, preset="espcn-tiny"):
    """Two models of one configuration with different random weights."""
    torch.manual_seed(1)
    clean = cls.from_preset(preset).eval()
    torch.manual_seed(2)
    return clean, cls.from_preset(preset).eval()


@torch.no_grad()
@pytest.mark.parametrize("cls, preset", [(ESPCN, "espcn-tiny"), (HAT, "hat-tiny")])
def test_the_ends_are_the_parents_and_the_middle_is_the_mean(cls, preset):
    clean, real = _pair(cls, preset)
    before = {k: v.clone() for k, v in clean.state_dict().items()}, {k: v.clone() for k, v in real.state_dict().items()}
    x = torch.rand(1, 3, 16, 16)
    assert torch.equal(blend(clean, real, 0.0)(x), clean(x))
    assert torch.equal(blend(clean, real, 1)(x), real(x))
    middle = blend(clean, real, 0.5).state_dict()
    for key, value in middle.items():
        expected = (before[0][key] + before[1][key]) / 2 if value.is_floating_point() else before[1][key]
        torch.testing.assert_close(value, expected, atol=ATOL, rtol=0)
    out = blend(clean, real, 0.25)(x)
    assert not torch.allclose(out, clean(x)) and not torch.allclose(out, real(x))
    for model, state in zip((clean, real), before):  # the parents are untouched
        assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


def test_the_blend_is_a_new_model_without_the_parents_card():
    clean, real = _pair()
    real.name_or_path, clean.name_or_path = "real-dir", "clean-dir"
    real.card_info = object()
    model = blend(clean, real, 0.3)
    assert model is not real and model.card_info is None
    assert model.name_or_path == "clean-dir + real-dir at denoise 0.3"
    assert model.config == real.config and not model.training
    assert all(p.data_ptr() != q.data_ptr() for p, q in zip(model.parameters(), real.parameters()))


def test_hat_blend_does_not_reuse_the_cached_attention_bias():
    clean, real = _pair(HAT, "hat-tiny")
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        real(x)  # fills real's bias cache, which the copy carries
        torch.testing.assert_close(blend(clean, real, 0.0)(x), clean(x), atol=ATOL, rtol=0)


@pytest.mark.parametrize("strength", [-0.01, 1.01, math.nan, math.inf, True, "0.5", None])
def test_a_strength_outside_0_1_is_refused(strength):
    with pytest.raises(ValueError, match=r"strength=.* expected a number in \[0, 1\]"):
        blend(*_pair(), strength)


def test_different_configs_or_classes_are_refused():
    clean = ESPCN.from_preset("espcn-tiny")
    with pytest.raises(ValueError, match=r"ESPCN .* ESPCN .*config differs in 'upscale' \(4 vs 2\)"):
        blend(clean, ESPCN.from_preset("espcn-tiny", upscale=2), 0.5)
    with pytest.raises(ValueError, match=r"ESPCN .* with HAT .*different architectures"):
        blend(clean, HAT.from_preset("hat-tiny"), 0.5)


def test_different_index_tables_are_refused():
    clean, real = _pair(HAT, "hat-tiny")
    real.relative_position_index_SA.add_(1)
    with pytest.raises(ValueError, match="relative_position_index_SA"):
        blend(clean, real, 0.5)


# --------------------------------------------------------------------------- the bundled pair


@pytest.mark.parametrize("name", REAL_PHOTO_MODELS)
def test_each_real_photo_model_names_the_clean_weights_it_was_fine_tuned_from(name):
    partner = clean_partner(name)
    facts = json.loads((bundled_folder(name) / "training_facts.json").read_text())
    assert Path(facts["pretrained_from"]).name == BUNDLED[partner].folder
    assert BUNDLED[partner].clean_partner is None


def test_clean_models_have_no_partner():
    assert denoisable_names() == REAL_PHOTO_MODELS
    with pytest.raises(ValueError, match="one of espcn-real, hat-real"):
        clean_partner("hat-faces")


@torch.no_grad()
def test_load_model_with_denoise_blends_the_bundled_pair():
    x = torch.rand(1, 3, 16, 16)
    clean, real = load_model("espcn-faces"), load_model("espcn-real")
    torch.testing.assert_close(load_model("espcn-real", denoise=0)(x), clean(x), atol=ATOL, rtol=0)
    torch.testing.assert_close(load_model("espcn-real", denoise=1.0)(x), real(x), atol=ATOL, rtol=0)
    middle = load_model("espcn-real", denoise=0.5)
    assert not middle.training and middle.pretrained
    torch.testing.assert_close(middle(x), blend(clean, real, 0.5)(x), atol=ATOL, rtol=0)


def test_load_model_denoise_is_refused_for_other_models():
    with pytest.raises(ValueError, match=r"real-photo weights only \(espcn-real, hat-real\), not to 'hat-faces'"):
        load_model("hat-faces", denoise=0.5)
    with pytest.raises(ValueError, match="strength"):
        load_model("espcn-real", denoise=2)


@torch.no_grad()
def test_the_overrides_of_bundled_weights_apply_to_both_ends(monkeypatch):
    x = torch.rand(1, 3, 16, 16)
    monkeypatch.setenv(BUNDLED["espcn-real"].env_var, str(bundled_folder("espcn-faces")))
    torch.testing.assert_close(load_denoised("espcn-real", 1)(x), load_model("espcn-faces")(x), atol=ATOL, rtol=0)


# --------------------------------------------------------------------------- the command line


@pytest.fixture
def small_image(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(folder / "a.png")
    return folder / "a.png"


@pytest.mark.parametrize("name", ["espcn-real", "hat-real"])
def test_upscale_with_denoise_writes_the_blend(small_image, tmp_path, name):
    out = tmp_path / "out"
    assert main(["-q", "upscale", str(small_image), "-o", str(out), "--model", name, "--denoise", "0.5"]) == 0
    written = np.asarray(Image.open(out / "a_x4.png"))  # the name as without --denoise
    expected = np.asarray(upscale(load_model(name, denoise=0.5), small_image))
    assert np.abs(written.astype(int) - expected.astype(int)).max() <= 1


def test_upscale_denoise_with_a_clean_model_is_a_usage_error(small_image, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["-q", "upscale", str(small_image), "-o", str(out), "--model", "hat-faces", "--denoise", "0.5"]) == 2
    assert "--denoise applies to the bundled real-photo models (espcn-real, hat-real)" in capsys.readouterr().err
    assert main(["-q", "upscale", str(small_image), "-o", str(out), "--denoise", "0.5"]) == 2  # hat-faces by default
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("value", ["1.5", "-0.1", "nan", "half"])
def test_upscale_denoise_out_of_range_is_refused_by_the_parser(small_image, tmp_path, value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["upscale", str(small_image), "-o", str(tmp_path / "out"), "--model", "hat-real", "--denoise", value])
    assert exit_info.value.code == 2
    assert f"expected a number in [0, 1], got '{value}'" in capsys.readouterr().err


# --------------------------------------------------------------------------- the curve benchmark


@pytest.fixture
def held_out(tmp_path):
    """Two tiny held-out sets of random 32x32 images."""
    sets = []
    for name, count in (("one", 2), ("two", 1)):
        folder = tmp_path / name
        folder.mkdir()
        for i in range(count):
            pixels = np.random.default_rng(i).integers(0, 256, (32, 32, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{i}.png")
        sets.append((name, folder))
    return sets


def test_the_curve_scores_every_strength_under_both_lr(held_out, tmp_path):
    clean, real = _pair()
    result = denoise_curve.curve({"espcn": (clean, real)}, held_out, strengths=(0.0, 0.5, 1.0), hr_size=32)
    assert list(result["tables"]) == ["one", "one_moderate", "two", "two_moderate"]
    for key, table in result["tables"].items():
        assert len(table["curves"]["espcn"]["psnr"]) == 3 and table["images"] == (2 if key.startswith("one") else 1)
    # the ends score as the parents do, by the library's scorer
    alone = evaluate({"clean": clean, "real": real}, find_images(held_out[0][1]), hr_size=32, degradation="moderate")
    curve = result["tables"]["one_moderate"]["curves"]["espcn"]
    assert curve["psnr"][0] == pytest.approx(alone.methods["clean"].summary["psnr"], abs=1e-6)
    assert curve["ssim"][-1] == pytest.approx(alone.methods["real"].summary["ssim"], abs=1e-6)
    text = denoise_curve.table_text(result)
    assert "one_moderate: 2 images" in text and "espcn@0.5" not in text and "s=0.5" in text
    denoise_curve.plot(result, tmp_path / "curve.png")
    assert Image.open(tmp_path / "curve.png").size[0] > 0


def test_the_curve_script_defaults(tmp_path):
    args = denoise_curve.parse_args([])
    assert args.model == REAL_PHOTO_MODELS and [name for name, _ in args.hr] == ["celeba", "studio"]
    assert Path(args.out).parent == outputs.RUNS and Path(args.out).name.startswith("denoise-")
    assert all(not folder.is_absolute() for _, folder in args.hr)  # the report names no local path
    assert not Path(args.out).exists()
    args = denoise_curve.parse_args(["--model", "hat-real", "--hr", f"x={tmp_path}", "--out", str(tmp_path / "o")])
    assert args.model == ["hat-real"] and args.hr == [("x", tmp_path)] and args.out == str(tmp_path / "o")
