"""The app's models (sr_models/app_models.py, app_precision.py): method names and labels,
blends for the denoise strength, and the precision chosen for the CPU."""

from pathlib import Path

import pytest
import torch

from sr_models import HAT, app_models, app_precision
from sr_models.evaluation import BICUBIC
from test_app import app_module, clear_model_caches, saved_models  # noqa: F401 -- fixtures

ROOT = Path(__file__).resolve().parent.parent


def test_results_are_keyed_by_method_name_and_two_models_of_one_architecture_never_collide(monkeypatch):
    monkeypatch.setitem(app_models.INPUT_KINDS, "Clean downscale", ("espcn-faces", "hat-faces", "hat-real"))
    labels = app_models.method_labels("Clean downscale")
    assert labels == {BICUBIC: "Bicubic", "espcn-faces": "ESPCN", "hat-faces": "HAT (hat-faces)",
                      "hat-real": "HAT (hat-real)"}
    assert app_models.method_labels("Real photo") == {BICUBIC: "Bicubic", "espcn-real": "ESPCN", "hat-real": "HAT"}


def test_each_kind_benchmarks_with_the_degradation_its_models_were_trained_for(monkeypatch):
    assert app_models.kind_degradation("Clean downscale") is None
    assert app_models.kind_degradation("Real photo") == "moderate"
    monkeypatch.setitem(app_models.INPUT_KINDS, "Real photo", ("espcn-faces", "hat-real"))
    with pytest.raises(ValueError, match="different degradations"):
        app_models.kind_degradation("Real photo")


def test_a_blend_is_made_once_per_strength_and_never_reloaded_from_disk(app_module, monkeypatch):
    loads, load_bundled = [], app_models.load_bundled
    monkeypatch.setattr(app_models, "load_bundled", lambda name: loads.append(name) or load_bundled(name))
    clear_model_caches()
    first, _ = app_models.run_models("Real photo", 0.25)
    again, _ = app_models.run_models("Real photo", 0.25)
    assert first["hat-real"] is again["hat-real"] and sorted(loads) == sorted(set(loads))  # each file read once
    other, _ = app_models.run_models("Real photo", 0.75)
    assert other["hat-real"] is not first["hat-real"] and sorted(loads) == sorted(set(loads))
    clean, real = app_models.load("hat-faces")[0], app_models.load("hat-real")[0]
    key = "layers.0.residual_group.blocks.0.attn.qkv.weight"
    blended = other["hat-real"].state_dict()[key]
    assert torch.allclose(blended, 0.25 * clean.state_dict()[key] + 0.75 * real.state_dict()[key], atol=1e-6)


def test_full_strength_runs_the_real_photo_weights_themselves(app_module):
    models, notes = app_models.run_models("Real photo", 1.0)
    assert models["hat-real"] is app_models.load("hat-real")[0] and notes == []


def test_blends_kept_are_bounded():
    assert app_models.blended.cache_parameters()["maxsize"] == app_models.BLENDS_KEPT


def test_weights_that_cannot_be_blended_run_at_full_strength_with_a_note(app_module, tmp_path, monkeypatch):
    HAT.from_preset("hat-tiny", embed_dim=32).save_pretrained(tmp_path / "other-hat")
    monkeypatch.setenv("SR_HAT_REAL_MODEL", str(tmp_path / "other-hat"))
    clear_model_caches()
    try:
        models, notes = app_models.run_models("Real photo", 0.5)
        assert models["hat-real"] is app_models.load("hat-real")[0]
        assert len(notes) == 1 and "not applied to hat-real" in notes[0] and "embed_dim" in notes[0]
    finally:
        clear_model_caches()


# ------------------------------------------------------------------ precision


@pytest.fixture
def tiny_hat():
    torch.manual_seed(0)
    return HAT.from_preset("hat-tiny").eval()


PHOTO = ROOT / "examples" / "astronaut_face_lr.png"


def test_float32_where_the_cpu_has_no_native_bf16(tiny_hat, monkeypatch):
    monkeypatch.setattr(app_precision, "native_bf16", lambda: False)
    choice = app_precision.choose_precision(tiny_hat, "HAT", PHOTO)
    assert choice.dtype is None and "no native bf16" in choice.reason


def test_bf16_where_native_and_within_45_db_of_float32(tiny_hat, monkeypatch):
    monkeypatch.setattr(app_precision, "native_bf16", lambda: True)
    choice = app_precision.choose_precision(tiny_hat, "HAT", PHOTO)
    assert choice.dtype == "bfloat16" and "dB from float32" in choice.reason
    assert float(choice.reason.split("; ")[1].split(" dB")[0]) >= app_precision.MIN_BF16_PSNR


def test_float32_where_bf16_is_too_far_from_float32(tiny_hat, monkeypatch):
    monkeypatch.setattr(app_precision, "native_bf16", lambda: True)
    monkeypatch.setattr(app_precision, "MIN_BF16_PSNR", float("inf"))
    choice = app_precision.choose_precision(tiny_hat, "HAT", PHOTO)
    assert choice.dtype is None and "only" in choice.reason


def test_espcn_and_the_gpu_stay_in_float32(tiny_hat, monkeypatch):
    monkeypatch.setattr(app_precision, "native_bf16", lambda: True)
    assert app_precision.choose_precision(tiny_hat, "ESPCN", PHOTO).dtype is None
    monkeypatch.setattr(app_precision, "resolve_device", lambda device: torch.device("cuda"))
    assert app_precision.choose_precision(tiny_hat, "HAT", PHOTO).dtype is None


def test_native_bf16_falls_back_to_the_cpu_flags(monkeypatch):
    monkeypatch.setattr(torch.ops, "mkldnn", object())  # a torch without oneDNN's answer
    monkeypatch.setattr(app_precision, "_cpu_flags", lambda: {"avx2", "amx_bf16"})
    assert app_precision.native_bf16() is True
    monkeypatch.setattr(app_precision, "_cpu_flags", lambda: {"avx2"})
    assert app_precision.native_bf16() is False


def test_this_machine_runs_the_app_in_the_precision_its_cpu_is_fast_in(app_module):
    """On a CPU without native bf16 (AVX2 only: bf16 ~10x slower) the app runs HAT in float32."""
    choice = app_models.precision("hat-faces")
    assert (choice.dtype == "bfloat16") == app_precision.native_bf16()

