"""scripts/finalize.py: a finished run folder becomes a bundled weights folder whose card
states the data by source with its licences, every held-out score and the training cost."""

import json

import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard
from PIL import Image

from scripts import finalize
from sr_models import ESPCN, load_model, metric_registry
from sr_models.cards import CardInfo
from sr_models.evaluation import evaluate, find_images

TRAINING_FACES = ["celebahq_female_000001", "celebahq_male_000002", "sean_3", "alae_4", "gpen_5", "london_6",
                  "london_7"]


def _faces(folder, names, size=64):
    folder.mkdir(parents=True)
    for i, name in enumerate(names):
        pixels = np.random.default_rng(i).integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{name}.png")
    return folder


def _bicubic_espcn():
    """A tiny ESPCN that gives exactly its bicubic skip (last convolution zeroed): far above
    a random one, which the no-regression tests use as the better and the worse weights."""
    model = ESPCN.from_preset("espcn-tiny", global_residual=True)
    last = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    torch.nn.init.zeros_(last.weight)
    torch.nn.init.zeros_(last.bias)
    return model


def _run_folder(run_dir, data, model, **facts):
    """A run folder as the training scripts leave it: the model, its card, its facts."""
    info = CardInfo(
        evaluations=[{"dataset": "val", "dataset_id": None, "scale": 4, "images": 1,
                      "bicubic": {"psnr": 1.0, "ssim": 0.1}, "model": {"psnr": 2.0, "ssim": 0.2}}],
        training={"dataset": f"imagefolder {data / 'train_multiscale'}", "train_images": 14, "steps": 10,
                  "wall_time_s": 1.0, "hardware": "from the card",
                  "degradation": "bicubic (PIL bicubic downscale, the evaluation protocol)"},
        license="unknown")
    model.save_pretrained(run_dir, card_info=info)
    facts = {"steps": 12000, "wall_time_s": 5430.5, "hardware": "1 x CPU (x86_64, 2 cores)",
             "data": {"train_source": f"imagefolder {data / 'train_multiscale'}", "train_images": 14}, **facts}
    (run_dir / "training_facts.json").write_text(json.dumps(facts))
    (run_dir / "metrics.json").write_text("{}")
    return run_dir


@pytest.fixture
def run(tmp_path):
    """A run folder (tiny random ESPCN, its card and facts), the training faces (train/ and
    train_multiscale/) and two held-out sets."""
    data = tmp_path / "data"
    _faces(data / "train", TRAINING_FACES)
    _faces(data / "train_multiscale", [f"{name}_{s}" for name in TRAINING_FACES for s in (256, 320)])
    _faces(data / "val", ["celebahq_female_9"])
    _faces(data / "val_studio", ["london_a_neutral", "london_a_smiling"])
    return _run_folder(tmp_path / "runs" / "espcn-faces-v2-x4", data, ESPCN.from_preset("espcn-tiny")), data


def _finalize(run_dir, target, data, *extra):
    finalize.main(finalize.parse_args([str(run_dir), str(target), "--held-out", f"celeba={data / 'val'}",
                                       "--held-out", f"studio={data / 'val_studio'}", *extra]))


def test_a_run_becomes_a_bundled_folder_with_both_held_out_sets_and_a_realistic_benchmark(run, tmp_path):
    run_dir, data = run
    target = tmp_path / "weights" / "espcn-faces-x4"
    _finalize(run_dir, target, data, "--degradation", "moderate", "--seed", "0")
    assert {p.name for p in target.iterdir()} == {"README.md", "config.json", "model.safetensors", "model_card.json",
                                                  "metrics.json", "training_facts.json"}
    evaluations = load_model(target).card_info.evaluations
    assert [(e["dataset"], e["dataset_id"], e["degradation"], e["seed"]) for e in evaluations] == [
        ("CelebA-HQ held-out faces (1, 256x256)", "celeba-hq-faces-heldout", None, None),
        ("CelebA-HQ held-out faces (1, 256x256)", "celeba-hq-faces-heldout", "moderate", 0),
        ("London Set held-out studio faces (2, 256x256)", "london-studio-faces-heldout", None, None),
        ("London Set held-out studio faces (2, 256x256)", "london-studio-faces-heldout", "moderate", 0)]
    # the scores are the library's evaluation of the run's model
    expected = evaluate({"m": load_model(str(run_dir))}, find_images(data / "val_studio"), degradation="moderate")
    assert evaluations[3]["model"]["psnr"] == pytest.approx(expected.to_json()["summary"]["m"]["psnr"], abs=1e-9)
    assert evaluations[3]["bicubic"]["ssim"] == pytest.approx(expected.to_json()["summary"]["bicubic"]["ssim"],
                                                              abs=1e-9)
    results = ModelCard.load(target / "README.md").data.eval_results
    assert len(results) == 4 * len(metric_registry.KEYS)  # every registry metric of each (set, degradation)
    assert {r.metric_type for r in results} == {m.card_id for m in metric_registry.METRICS}


def test_the_card_states_the_licence_the_sources_and_the_training_cost(run, tmp_path):
    run_dir, data = run
    target = tmp_path / "weights" / "espcn-faces-x4"
    _finalize(run_dir, target, data)
    card = ModelCard.load(target / "README.md")
    assert card.data.license == "other" and card.data.license_name == "faces-non-commercial-research"
    assert card.data.license_link == finalize.CELEBA_TERMS
    text = card.text
    assert "**Non-commercial research use only.**" in text and "apache" not in text.lower()
    for line in ["- 2 CelebA-HQ faces (`faces/`", "- 1 CelebA-HQ faces (`faces-more/train`", "- 1 realigned celebrity",
                 "- 1 FFHQ faces", "CC BY-NC-SA 4.0", "- 2 Face Research Lab London Set", "CC BY 4.0"]:
        assert line in text, line
    assert ("CelebA-HQ held-out faces, 1 image: celebahq_female_9; London Set held-out studio faces, 2 images: "
            "london_a_neutral, london_a_smiling") in text
    info = load_model(target).card_info
    assert info.training["dataset"].startswith(  # each face counted once, not once per size
        "7 faces: 2 CelebA-HQ (faces/), 1 CelebA-HQ (faces-more), 1 celebrity portraits of ALAE (faces-more), "
        "1 FFHQ (faces-more), 2 London Set (faces-more)")
    assert "256/320/384 px" in info.training["dataset"]
    # the training cost comes from training_facts.json, the run's other facts stay
    assert (info.training["steps"], info.training["wall_time_s"]) == (12000, 5430.5)
    assert info.training["hardware"] == "1 x CPU (x86_64, 2 cores)" and info.training["train_images"] == 14
    assert "| training degradation | bicubic" in text and "1 h 31 min" in text
    assert info.repo_id == "sr-models/espcn-faces-x4"


def test_a_fine_tuned_run_names_its_base_weights_and_the_cost_of_both_runs(run, tmp_path):
    run_dir, data = run
    base = tmp_path / "weights" / "espcn-faces-x4"
    _finalize(run_dir, base, data)  # the base weights: 12,000 steps, 5,430.5 s
    facts = json.loads((run_dir / "training_facts.json").read_text())
    facts.update(steps=8000, wall_time_s=1500.0, pretrained_from=str(base))
    (run_dir / "training_facts.json").write_text(json.dumps(facts))
    target = tmp_path / "weights" / "espcn-real-x4"
    _finalize(run_dir, target, data)
    card = ModelCard.load(target / "README.md")
    assert card.data.base_model == "sr-models/espcn-faces-x4"
    assert "| fine-tuned from | sr-models/espcn-faces-x4 (12,000 steps, 1 h 31 min) |" in card.text
    assert ("| total training cost | 20,000 steps, 1 h 56 min in 2 stages: 12,000 steps (1 h 31 min), "
            "then 8,000 steps (25 min) |") in card.text
    assert "| wall-clock time | 25 min |" in card.text  # this run alone
    stages = json.loads((target / "training_facts.json").read_text())["stages"]
    assert [(s["run"], s["steps"], s["wall_time_s"]) for s in stages] == [
        ("espcn-faces-v2-x4", 12000, 5430.5), ("espcn-faces-v2-x4", 8000, 1500.0)]


def test_a_training_face_of_unknown_origin_stops_it(run, tmp_path):
    run_dir, data = run
    Image.new("RGB", (8, 8)).save(data / "train" / "scraped_1.png")
    with pytest.raises(SystemExit, match="unknown origin.*scraped_1.png"):
        _finalize(run_dir, tmp_path / "out", data)
    assert not (tmp_path / "out").exists()


def test_it_replaces_a_weights_folder_but_never_another_folder(run, tmp_path):
    run_dir, data = run
    target = tmp_path / "notes"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(SystemExit, match="not a weights folder"):
        _finalize(run_dir, target, data)
    assert (target / "keep.txt").read_text() == "mine"
    weights = tmp_path / "weights"
    _finalize(run_dir, weights, data)
    (weights / "stale.bin").write_bytes(b"old")
    _finalize(run_dir, weights, data, "--force")  # the same run does not beat itself: only with --force
    assert not (weights / "stale.bin").exists()


def test_a_stage_ships_only_if_it_beats_the_shipped_weights_on_both_held_out_sets(run, tmp_path, capsys):
    shipped_run, data = run
    target = tmp_path / "weights" / "espcn-faces-x4"
    _finalize(_run_folder(tmp_path / "runs" / "better", data, _bicubic_espcn()), target, data)
    before = (target / "model.safetensors").read_bytes()
    with pytest.raises(SystemExit, match="not replacing the shipped weights: this run does not beat them on "
                                         "celeba, studio.*--force"):
        _finalize(shipped_run, target, data)  # the random run scores far below the shipped weights
    assert (target / "model.safetensors").read_bytes() == before
    assert "celeba, LR bicubic: this run" in capsys.readouterr().out
    _finalize(shipped_run, target, data, "--force")
    assert "--force: replacing the shipped weights, which score higher on celeba, studio" in capsys.readouterr().out
    assert (target / "model.safetensors").read_bytes() != before
    _finalize(tmp_path / "runs" / "better", target, data)  # beats the (now worse) shipped weights: ships


def test_weights_trained_on_realistic_lr_are_checked_under_that_lr(run, tmp_path):
    run_dir, data = run
    target = tmp_path / "weights" / "espcn-real-x4"
    _finalize(run_dir, target, data)
    realistic = _run_folder(tmp_path / "runs" / "real", data, _bicubic_espcn(),
                            degradation={"kind": "realistic", "preset": "moderate"})
    with pytest.raises(SystemExit, match="give --degradation PRESET --seed N"):
        _finalize(realistic, target, data)
    _finalize(realistic, target, data, "--degradation", "moderate", "--seed", "0")
    assert load_model(target).card_info.evaluations[1]["degradation"] == "moderate"


def test_stages_across_sessions_add_up_in_the_facts_and_the_card(run, tmp_path):
    """Each session fine-tunes the shipped weights and ships a stage; the card and the
    facts sum the stages, and finalizing a stage again does not count it twice."""
    first, data = run  # 12,000 steps, 5,430.5 s
    target = tmp_path / "weights" / "espcn-faces-x4"
    _finalize(first, target, data)
    second = _run_folder(tmp_path / "runs" / "espcn-faces-v3s1-x4", data, _bicubic_espcn(), steps=4000,
                         wall_time_s=3600.0, pretrained_from=str(target))
    _finalize(second, target, data)
    third = _run_folder(tmp_path / "runs" / "espcn-faces-v3s2-x4", data, _bicubic_espcn(), steps=2000,
                        wall_time_s=1800.0, pretrained_from=str(target))
    _finalize(third, target, data, "--force")  # no better than stage 2 (the same weights)
    _finalize(third, target, data, "--force")  # again: still three stages
    stages = json.loads((target / "training_facts.json").read_text())["stages"]
    assert [(s["run"], s["steps"]) for s in stages] == [
        ("espcn-faces-v2-x4", 12000), ("espcn-faces-v3s1-x4", 4000), ("espcn-faces-v3s2-x4", 2000)]
    assert set(stages[1]["scores"]) == {"celeba", "studio"} and stages[1]["started_from"] == str(target)
    card = ModelCard.load(target / "README.md")
    assert card.data.base_model is None  # its own earlier version, not another model
    assert "| fine-tuned from | the previous sr-models/espcn-faces-x4 (16,000 steps, 2 h 31 min in 2 stages: " \
           "12,000 steps (1 h 31 min), then 4,000 steps (1 h 00 min)) |" in card.text
    assert ("| total training cost | 18,000 steps, 3 h 01 min in 3 stages: 12,000 steps (1 h 31 min), then "
            "4,000 steps (1 h 00 min), then 2,000 steps (30 min) |") in card.text


def test_absolute_paths_in_the_recorded_command_never_reach_the_card(tmp_path):
    """A run recorded by a script started by its absolute path (older runs did) is
    published with that path named as the training scripts name paths."""
    from scripts.finalize import public_facts

    facts = {"command": f"accelerate launch {tmp_path}/checkout/train/hat.py --output_dir {tmp_path}/runs/x --seed 1"}
    command = public_facts(facts)["command"]
    assert str(tmp_path) not in command
    assert command.endswith("--seed 1") and "hat.py" in command
    assert public_facts({"steps": 3}) == {"steps": 3}
