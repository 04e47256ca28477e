"""sr_models.protocol: how evaluation pairs are made (HR, bicubic and realistic LR, the bicubic
baseline), the one resolver of "which degradation", and the old import locations."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sr_models import protocol as P
from sr_models.degradations import PRESETS, DegradationConfig

SR_MODELS = Path(P.__file__).parent


def _rand_uint8(rng, shape):
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


def _photo(w: int, h: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(_rand_uint8(np.random.default_rng(seed), (h, w, 3)))


@pytest.mark.parametrize("bad", [0, -2, 2.0, True])
def test_invalid_scale(bad):
    img = Image.new("RGB", (32, 32))
    for fn in (P.degrade, P.bicubic_upscale, P.crop_to_multiple):
        with pytest.raises((TypeError, ValueError)):
            fn(img, bad)


# --------------------------------------------------------------------------- the bicubic LR and baseline


@pytest.mark.parametrize("scale", [1, 2, 3, 4])
def test_degrade_sizes_on_odd_image(scale):
    w, h = 101, 77
    hr = Image.fromarray(_rand_uint8(np.random.default_rng(5), (h, w, 3)))
    lr = P.degrade(hr, scale)
    assert lr.size == (w // scale, h // scale) and lr.mode == "RGB"
    hr_c = P.crop_to_multiple(hr, scale)
    assert hr_c.size == (w - w % scale, h - h % scale)
    # Top-left origin: the crop keeps the first rows and columns.
    np.testing.assert_array_equal(np.asarray(hr_c), np.asarray(hr)[: hr_c.size[1], : hr_c.size[0]])
    assert P.bicubic_upscale(lr, scale).size == hr_c.size
    if scale == 1:
        np.testing.assert_array_equal(np.asarray(lr), np.asarray(hr))


def test_degrade_grayscale_and_crop_types():
    hr = Image.new("L", (33, 35), color=128)
    assert P.degrade(hr, 4).size == (8, 8)
    arr = np.zeros((35, 33, 3), np.uint8)
    assert P.crop_to_multiple(arr, 4).shape == (32, 32, 3)
    assert P.crop_to_multiple(torch.zeros(2, 3, 35, 33), 4).shape == (2, 3, 32, 32)
    with pytest.raises(ValueError, match="smaller than the scale"):
        P.degrade(Image.new("RGB", (3, 10)), 4)
    with pytest.raises(ValueError, match="mode"):
        P.degrade(Image.new("P", (16, 16)), 2)
    with pytest.raises(TypeError):
        P.degrade(arr, 2)


def test_bicubic_baseline_of_palette_and_one_bit_images_is_bicubic_not_nearest():
    rgb = Image.fromarray(_rand_uint8(np.random.default_rng(6), (12, 10, 3)))
    palette = rgb.quantize(16)
    out = P.bicubic_upscale(palette, 2)
    assert out.mode == "RGB"
    assert np.array_equal(np.asarray(out), np.asarray(palette.convert("RGB").resize((20, 24), Image.BICUBIC)))
    bits = rgb.convert("1")
    out = P.bicubic_upscale(bits, 2)
    assert out.mode == "L" and len(np.unique(np.asarray(out))) > 2  # grey edges, not 0/255 only


def test_bicubic_baseline_of_a_float_image_stays_in_its_range():
    values = np.zeros((8, 8), np.float32)
    values[:, 4:] = 1.0  # a hard edge: cubic overshoot on both sides
    out = P.bicubic_upscale(Image.fromarray(values), 4)
    assert out.mode == "F"
    arr = np.asarray(out)
    assert arr.min() == 0.0 and arr.max() == 1.0
    assert np.asarray(Image.fromarray(values).resize((32, 32), Image.BICUBIC)).max() > 1.0  # what was clamped


# --------------------------------------------------------------------------- which degradation


def test_every_way_of_naming_a_degradation_resolves_to_one(tmp_path):
    assert P.degradation_of(None) is P.degradation_of("bicubic") is P.BICUBIC_LR
    assert P.degradation_of(None).name is None and not P.degradation_of(None).realistic
    moderate = P.degradation_of("moderate")
    assert (moderate.kind, moderate.preset, moderate.config, moderate.name) == (
        "realistic", "moderate", PRESETS["moderate"], "moderate")
    assert P.degradation_of(moderate) is moderate
    # a config is named after the preset it equals, else "custom"
    assert P.degradation_of(PRESETS["realesrgan"]).name == "realesrgan"
    custom = DegradationConfig(second_order_prob=0.5)
    assert P.degradation_of(custom).name == "custom" and P.degradation_of(custom).config == custom
    # a JSON file of fields (the others keep their defaults) and a record read back
    file = tmp_path / "mild.json"
    file.write_text(json.dumps({"second_order_prob": 0, "first": {"blur_sigma": [0.2, 1.0]}}))
    from_file = P.degradation_of(str(file))
    assert from_file.config.first.blur_sigma == (0.2, 1.0) and from_file.config_file == str(file)
    assert P.degradation_of(from_file.to_dict()) == from_file
    assert P.degradation_of(moderate.to_dict()) == moderate
    assert P.degradation_of({"kind": "realistic", "preset": None, "config_file": None, "config": None}).realistic


@pytest.mark.parametrize("value, message", [
    ("jpeg", "unknown degradation 'jpeg': expected 'bicubic' (the protocol), a preset ('moderate', 'realesrgan') "
             "or a JSON file of DegradationConfig fields"),
    ({"kind": "blur"}, "unknown degradation kind 'blur'"),
])
def test_unknown_degradations_are_refused_in_one_line(value, message):
    with pytest.raises(ValueError) as err:
        P.degradation_of(value)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_bad_json_file_names_the_file(tmp_path):
    broken, bad = tmp_path / "broken.json", tmp_path / "bad.json"
    broken.write_text("{not json")
    bad.write_text('{"first": {"blur_sigma": [3, 1]}}')
    with pytest.raises(ValueError, match="broken.json: not a readable JSON file"):
        P.degradation_of(str(broken))
    with pytest.raises(ValueError, match=r"bad.json: degradation config: blur_sigma=\(3, 1\) is invalid"):
        P.degradation_of(str(bad))


def test_resolve_degradation_is_the_name_and_config_of_the_one_resolver():
    assert P.resolve_degradation(None) == (None, None)
    assert P.resolve_degradation("moderate") == ("moderate", PRESETS["moderate"])


def test_the_card_reads_the_structured_record_not_the_words():
    from sr_models.cards import CardInfo, realistic_training

    words = str(P.degradation_of("moderate"))
    trained = CardInfo(training={"degradation": words}, training_degradation=P.degradation_of("moderate").to_dict())
    assert realistic_training(trained) == words
    assert realistic_training(CardInfo(training={"degradation": words})) is None  # no record: the protocol's


# --------------------------------------------------------------------------- making LR and pairs


def test_make_lr_is_degrade_or_the_seeded_realistic_degradation():
    hr = _photo(67, 53)
    assert np.array_equal(np.asarray(P.make_lr(hr, 4)), np.asarray(P.degrade(hr, 4)))
    realistic = P.make_lr(hr, 4, "moderate", seed=3, index=2)
    assert realistic.size == (16, 13)  # HR cropped to 64x52 first, as the protocol does
    again = P.degrade_realistic(hr, 4, PRESETS["moderate"], seed=3, index=2)
    assert np.array_equal(np.asarray(realistic), np.asarray(again))
    other = P.make_lr(hr, 4, "moderate", seed=3, index=3)
    assert not np.array_equal(np.asarray(realistic), np.asarray(other))


def test_make_pair_prepares_the_hr_then_makes_its_lr():
    image = _photo(90, 70).convert("P")
    hr, lr = P.make_pair(image, 4, 48, "moderate", seed=1, index=5)
    assert hr.mode == "RGB" and hr.size == (48, 48)
    assert np.array_equal(np.asarray(hr), np.asarray(P.prepare_hr(image, 4, 48)))
    assert np.array_equal(np.asarray(lr), np.asarray(P.make_lr(hr, 4, "moderate", seed=1, index=5)))


def test_degrade_realistic_needs_a_realistic_degradation_and_an_rgb_image():
    with pytest.raises(ValueError, match="needs a realistic degradation"):
        P.degrade_realistic(_photo(16, 16), 4, "bicubic")
    with pytest.raises(ValueError, match="RGB PIL image"):
        P.degrade_realistic(_photo(16, 16).convert("L"), 4)


# --------------------------------------------------------------------------- where things live


def test_the_old_import_locations_give_the_protocol_s_objects():
    from sr_models import degradations, evaluation, metrics
    from sr_models.training import pairs

    assert metrics.degrade is P.degrade and metrics.bicubic_upscale is P.bicubic_upscale
    assert metrics.crop_to_multiple is P.crop_to_multiple
    assert degradations.degrade_realistic is P.degrade_realistic
    assert (evaluation.prepare_hr, evaluation.make_lr, evaluation.resolve_degradation, evaluation.describe_lr) == (
        P.prepare_hr, P.make_lr, P.resolve_degradation, P.describe_lr)
    assert pairs.Degradation is P.Degradation and pairs.BICUBIC is P.BICUBIC_LR
    assert pairs.DEGRADATIONS == P.KINDS


def _imports(module: str) -> set[str]:
    tree = ast.parse((SR_MODELS / f"{module}.py").read_text())
    # module level only: a name looked up on use (a re-export) is not a dependency of the module
    return {node.module.lstrip(".") for node in tree.body if isinstance(node, ast.ImportFrom) and node.level}


def test_imports_point_down():
    """The engine of the realistic degradations imports neither the metrics nor the protocol
    (which imports it), the metrics import no pair-making, the protocol no scoring."""
    assert not _imports("degradations") & {"metrics", "protocol", "evaluation"}
    assert not _imports("metrics") & {"protocol", "degradations", "evaluation"}
    assert not _imports("protocol") & {"metrics", "metric_registry", "evaluation"}
