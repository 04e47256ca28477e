"""sr_models/training/trainer.py, sr_models/training/checkpoints.py and sr_models/training/report.py in process: LR schedules, EMA,
the finite-weights guard, checkpoint files (JSON + safetensors, no pickles of our own),
resume with a longer schedule, the card's data licence, and publishing with the Hub mocked."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from sr_models import ESPCN
from sr_models.training import checkpoints, report, trainer
from sr_models.training.ema import EMA
from sr_models.training import espcn as espcn_script
from sr_models.training import hat as hat_script
from sr_models.training.errors import TrainingDiverged, UsageError


@pytest.fixture
def images(tmp_path) -> Path:
    """5 random 40 px images (2 are held out for validation in the runs below)."""
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


def tiny_args(images: Path, out: Path, *extra: str):
    return espcn_script.parse_args([
        "--model", "espcn-tiny", "--train_data_dir", str(images), "--max_eval_samples", "2", "--hr_patch_size", "32",
        "--train_batch_size", "2", "--max_train_steps", "2", "--checkpointing_steps", "1", "--validation_steps", "1",
        "--dataloader_num_workers", "0", "--report_to", "none", "--validation_hr_size", "32", "--output_dir", str(out),
        *extra])


@pytest.fixture
def make_trainer():
    """``make_trainer(args)``: a Trainer in this process, each with a fresh Accelerator."""
    from accelerate.state import AcceleratorState

    def make(args):
        AcceleratorState._reset_state(True)
        return trainer.Trainer(args, ESPCN)

    yield make
    AcceleratorState._reset_state(True)


def run_in_process(make_trainer, images: Path, out: Path, *extra: str) -> Path:
    """A whole tiny ESPCN run (2 steps, a checkpoint and a validation at each)."""
    make_trainer(tiny_args(images, out, *extra)).fit()
    return out


# --------------------------------------------------------------------------- pieces


def test_patches_must_fit_the_window():
    args = hat_script.parse_args(["--model", "hat-tiny", "--hr_patch_size", "24"])  # 6 px LR, window 8
    with pytest.raises(UsageError, match="multiple of the model's window"):
        trainer.build_model(args, hat_script.HAT)


def test_lr_schedules():
    f = trainer.lr_factor
    assert [f(s, schedule="constant", total=10, warmup=4) for s in range(6)] == pytest.approx([0, 0.25, 0.5, 0.75, 1, 1])
    cosine = [f(s, schedule="cosine", total=100, warmup=0) for s in (0, 50, 100)]
    assert cosine == pytest.approx([1.0, 0.5, 0.0])
    steps = [f(s, schedule="multistep", total=100, milestones=[50, 80], gamma=0.5) for s in (0, 49, 50, 79, 80, 99)]
    assert steps == pytest.approx([1, 1, 0.5, 0.5, 0.25, 0.25])
    args = hat_script.parse_args(["--max_train_steps", "100"])
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = trainer.build_lr_scheduler(opt, args)  # default milestones: 50 / 80 / 90 / 95 %
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    expected = (2e-4, 1e-4, 5e-5, 2.5e-5, 1.25e-5)  # --learning_rate 2e-4 (the recipe), halved at each milestone
    assert (lrs[49], lrs[50], lrs[80], lrs[90], lrs[95]) == pytest.approx(expected, rel=1e-12)


def test_a_schedule_started_later_is_the_same_function_of_the_step():
    args = espcn_script.parse_args(["--max_train_steps", "10", "--lr_warmup_steps", "2"])  # cosine (the recipe)
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=123.0)  # a resumed optimizer's stale LR
    opt.param_groups[0]["initial_lr"] = 123.0
    trainer.build_lr_scheduler(opt, args, start_step=6)
    expected = args.learning_rate * trainer.lr_factor(6, schedule="cosine", total=10, warmup=2)
    assert opt.param_groups[0]["lr"] == pytest.approx(expected, rel=1e-12) and expected > 0


def test_losses():
    a, b = torch.zeros(1, 3, 4, 4), torch.full((1, 3, 4, 4), 0.5)
    assert trainer.loss_function("l1")(a, b).item() == pytest.approx(0.5)
    assert trainer.loss_function("l2")(a, b).item() == pytest.approx(0.25)
    assert trainer.loss_function("charbonnier")(a, b).item() == pytest.approx(math.sqrt(0.25 + 1e-6))


def test_ema_is_the_exponential_average_and_loads_a_checkpoints_weights():
    model = torch.nn.Linear(2, 1)
    ema = EMA(model, decay=0.9, warmup=False)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)
    assert torch.allclose(ema.shadow["weight"], 0.9 * start + 0.1 * model.weight, atol=1e-6)
    other = EMA(torch.nn.Linear(2, 1), decay=0.5, warmup=True)
    other.load(ema.shadow, updates=7)
    assert torch.equal(other.shadow["weight"], ema.shadow["weight"]) and other.updates == 7  # a copy: exact
    copy = torch.nn.Linear(2, 1)
    ema.copy_to(copy)
    assert torch.equal(copy.weight, ema.shadow["weight"])
    with pytest.raises(ValueError, match="another model"):
        other.load({"weight": ema.shadow["weight"]}, updates=0)


def test_nan_weights_are_never_written(tmp_path):
    model = ESPCN.from_preset("espcn-tiny")
    with torch.no_grad():
        next(model.parameters())[0, 0, 0, 0] = float("nan")
    with pytest.raises(TrainingDiverged, match="NaN"):
        report.write_model_folder(model, tmp_path, metrics={}, facts={})
    assert not any(tmp_path.iterdir())


def test_latest_checkpoint_ignores_partial_and_foreign_folders(tmp_path):
    for name in ("checkpoint-2", "checkpoint-10", ".tmp-checkpoint-12", "checkpoint-x"):
        (tmp_path / name).mkdir()
    (tmp_path / "checkpoint-20").write_text("a file")
    assert checkpoints.find_latest_checkpoint(tmp_path).name == "checkpoint-10"
    assert checkpoints.find_latest_checkpoint(tmp_path / "missing") is None
    assert [p.name for p in checkpoints.prune_checkpoints(tmp_path, keep=1)] == ["checkpoint-2"]
    assert (tmp_path / "checkpoint-10").is_dir() and (tmp_path / ".tmp-checkpoint-12").is_dir()


def test_run_state_round_trips_as_json_and_safetensors(tmp_path):
    state = checkpoints.RunState(step=7, images_seen=28, elapsed=1.5, skipped_steps=1, world_size=2,
                                 loaders=[{"epoch": 1, "index": 3}], last_metrics={"psnr": 30.25})
    ema = {"weight": torch.arange(6.0).reshape(2, 3), "index": torch.arange(4)}
    checkpoints.write_state(tmp_path, state, ema)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ema.safetensors", "training_state.json"]
    read, read_ema = checkpoints.read_state(tmp_path)
    assert read == state and read.schedule_step == 6
    assert read_ema.keys() == ema.keys() and all(torch.equal(read_ema[k], ema[k]) for k in ema)


def test_a_checkpoint_without_our_state_or_with_a_damaged_one_is_refused(tmp_path):
    (tmp_path / "custom_checkpoint_0.pkl").write_bytes(b"a pickle is never loaded")
    with pytest.raises(UsageError, match="no training_state.json"):
        checkpoints.read_state(tmp_path)
    (tmp_path / "training_state.json").write_text("{not json")
    with pytest.raises(UsageError, match="damaged"):
        checkpoints.read_state(tmp_path)


def test_a_missing_tracker_package_is_a_clear_error(monkeypatch):
    import accelerate.utils

    monkeypatch.setattr(accelerate.utils, "is_wandb_available", lambda: False)
    args = espcn_script.parse_args(["--report_to", "wandb", "--train_data_dir", "."])
    with pytest.raises(UsageError, match="pip install wandb"):
        trainer.make_accelerator(args)


# --------------------------------------------------------------------------- whole runs


def test_weights_of_another_architecture_are_a_usage_error(images, tmp_path, make_trainer):
    hat_script.HAT.from_preset("hat-tiny").save_pretrained(tmp_path / "hat")
    args = espcn_script.parse_args(["--pretrained_model_name_or_path", str(tmp_path / "hat"), "--train_data_dir",
                                    str(images), "--report_to", "none", "--output_dir", str(tmp_path / "out")])
    with pytest.raises(UsageError, match="holds a HAT, but this script trains ESPCN"):
        make_trainer(args)


def test_a_nan_loss_stops_the_run_and_nothing_nan_is_saved(images, tmp_path, make_trainer):
    out = tmp_path / "out"
    with pytest.raises(TrainingDiverged, match="the loss is nan"):
        run_in_process(make_trainer, images, out, "--max_eval_samples", "0", "--max_train_steps", "5",
                       "--learning_rate", "1e30")
    assert not (out / "model.safetensors").exists()
    for ckpt in out.glob("checkpoint-*"):
        assert all(torch.isfinite(t).all() for t in load_file(ckpt / "model.safetensors").values())


def test_checkpoints_hold_no_pickle_of_ours_and_resume_reads_the_json_and_safetensors(images, tmp_path, make_trainer):
    out = run_in_process(make_trainer, images, tmp_path / "out", "--use_ema")
    ckpt = out / "checkpoint-1"
    names = {p.name for p in ckpt.iterdir()}
    assert {"training_state.json", "ema.safetensors", "model.safetensors"} <= names
    assert not [n for n in names if n.startswith("custom_checkpoint")]
    # Edit the files: the resumed run must take what they say.
    state = json.loads((ckpt / "training_state.json").read_text())
    state["images_seen"] = 1234
    (ckpt / "training_state.json").write_text(json.dumps(state))
    ema = {k: torch.full_like(v, 0.25) if v.is_floating_point() else v for k, v in load_file(ckpt / "ema.safetensors").items()}
    save_file(ema, ckpt / "ema.safetensors")
    resumed = make_trainer(tiny_args(images, out, "--use_ema", "--resume_from_checkpoint", str(ckpt)))
    assert resumed.resumed_from == str(ckpt) and resumed.state.step == 1 and resumed.state.images_seen == 1234
    assert all(torch.equal(resumed.ema.shadow[k], v) for k, v in ema.items())


def test_resuming_with_more_steps_follows_the_new_schedule(images, tmp_path, make_trainer):
    """Issue: a run resumed with a larger --max_train_steps made its first step at LR 0, the
    end of the old cosine schedule."""
    out = run_in_process(make_trainer, images, tmp_path / "out", "--max_eval_samples", "0")  # cosine over 2 steps
    longer = make_trainer(tiny_args(images, out, "--max_eval_samples", "0", "--max_train_steps", "4",
                                    "--resume_from_checkpoint", "latest"))
    used, step = [], longer._optimizer_step

    def recording_step(batches):
        loss, lr = step(batches)
        used.append(lr)
        return loss, lr

    longer._optimizer_step = recording_step
    longer.fit()
    lr = longer.args.learning_rate
    expected = [lr * trainer.lr_factor(s, schedule="cosine", total=4) for s in (2, 3)]
    assert used == pytest.approx(expected, rel=1e-9) and used[0] > 0.4 * lr
    assert json.loads((out / "training_facts.json").read_text())["steps"] == 4


def test_the_card_carries_the_data_licence_given_and_says_unknown_otherwise(images, tmp_path, make_trainer):
    given = run_in_process(make_trainer, images, tmp_path / "given", "--data_license", "cc-by-4.0",
                           "--data_license_link", "https://example.com/terms")
    card = json.loads((given / "model_card.json").read_text())
    assert (card["license"], card["license_link"]) == ("cc-by-4.0", "https://example.com/terms")
    assert "license: cc-by-4.0" in (given / "README.md").read_text()
    facts = json.loads((given / "training_facts.json").read_text())["data"]
    assert (facts["license"], facts["license_source"]) == ("cc-by-4.0", "--data_license")
    unknown = run_in_process(make_trainer, images, tmp_path / "unknown")
    card = json.loads((unknown / "model_card.json").read_text())
    assert card["license"] == "unknown" and "was not given" in card["licence_note"]


def test_a_run_under_licence_other_names_and_links_it_on_the_card(images, tmp_path, make_trainer):
    """'other' needs a name and a link on the Hub: the run ends with a card that has both
    (it used to fail when the card was rendered, after the whole run)."""
    out = run_in_process(make_trainer, images, tmp_path / "other", "--data_license", "other",
                         "--data_license_name", "faces-research-only", "--data_license_link", "https://example.com/t")
    front_matter = (out / "README.md").read_text().split("---")[1]
    assert "license: other" in front_matter and "license_name: faces-research-only" in front_matter
    assert "license_link: https://example.com/t" in front_matter
    assert "Apache" not in json.loads((out / "model_card.json").read_text())["licence_note"]


def test_push_to_hub_publishes_the_model_files_without_checkpoints(images, tmp_path, make_trainer, recording_api):
    """--push_to_hub at the end of a run, with the Hub mocked at HfApi."""
    out = run_in_process(make_trainer, images, tmp_path / "out", "--push_to_hub", "--hub_model_id", "me/espcn-ffhq",
                         "--hub_private_repo")
    assert recording_api.calls[0] == ("create_repo", "me/espcn-ffhq",
                                      {"private": True, "exist_ok": True, "repo_type": "model"})
    _, repo, files, kwargs = recording_api.calls[1]
    assert files == ["README.md", "comparison.png", "config.json", "metrics.json", "model.safetensors",
                     "model_card.json", "training_facts.json"]
    assert "2 steps" in kwargs["commit_message"]
    assert (out / "checkpoint-2").is_dir()  # kept locally, not published
    card = json.loads((out / "model_card.json").read_text())
    assert card["repo_id"] == "me/espcn-ffhq" and card["evaluations"][0]["images"] == 2
    assert 'ESPCN.from_pretrained("me/espcn-ffhq")' in (out / "README.md").read_text()


def test_tensorboard_gets_the_losses_metrics_and_grid(images, tmp_path, make_trainer):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = run_in_process(make_trainer, images, tmp_path / "out", "--report_to", "tensorboard")
    events = EventAccumulator(str(out / "logs" / "sr-models"))  # --tracker_project_name
    events.Reload()
    assert {"train/loss", "train/lr", "val/psnr", "val/bicubic_psnr", "val/ssim"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("val/psnr")] == [1, 2]
    assert events.Tags()["images"] == ["val/lr_bicubic_sr_hr"]
