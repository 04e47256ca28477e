"""train/common.py in process: argument checks, LR schedules, EMA, the finite-weights guard,
and publishing at the end of a run with the Hub mocked."""

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `train` is a folder of scripts at the project root, not installed
    sys.path.insert(0, str(ROOT))

from sr_models import ESPCN  # noqa: E402
from train import common  # noqa: E402
from train import espcn as espcn_script  # noqa: E402
from train import hat as hat_script  # noqa: E402


@pytest.mark.parametrize("script, argv, message", [
    (hat_script, ["--model", "hat-s", "--pretrained_model_name_or_path", "x.pth"], "--model cannot be combined"),
    (hat_script, ["--embed_dim", "64", "--pretrained_model_name_or_path", "x.pth"], "--embed_dim cannot be combined"),
    (espcn_script, ["--gradient_checkpointing"], "ESPCN has no gradient checkpointing"),
    (hat_script, ["--hr_patch_size", "250"], "not a multiple of --scale 4"),
    (hat_script, ["--train_data_dir", "/no/such/folder"], "no such folder"),
    (hat_script, ["--train_data_dir", ".", "--dataset_name", "user/data"], "not both"),
    (hat_script, ["--push_to_hub"], "needs --hub_model_id"),
    (hat_script, ["--lr_milestones", "10", "5"], "must be increasing"),
    (hat_script, ["--model", "hat-xl"], "invalid choice: 'hat-xl'"),
    (hat_script, ["--train_batch_size", "0"], "must be >= 1"),
    (espcn_script, ["--mixed_precision", "fp8"], "invalid choice: 'fp8'"),
    (hat_script, ["--resume_from_checkpoint", "/no/checkpoint-5"], "no such folder"),
])
def test_argument_mistakes_get_argparse_errors(script, argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        script.parse_args(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_defaults_follow_the_official_recipes():
    hat = hat_script.parse_args([])
    assert (hat.model, hat.scale, hat.hr_patch_size, hat.dataset_name) == ("hat", 4, 256, "merkol/ffhq-256")
    assert (hat.learning_rate, hat.adam_beta2, hat.loss, hat.lr_scheduler) == (2e-4, 0.99, "l1", "multistep")
    assert hat.output_dir == "outputs/hat-x4" and hat.model_overrides == {}
    small = hat_script.parse_args(["--model", "hat-small", "--scale", "2", "--depths", "2", "2", "--window_size", "8"])
    assert small.hr_patch_size == 128 and small.model_overrides == {"depths": [2, 2], "window_size": 8}
    espcn = espcn_script.parse_args(["--channels", "32", "16"])
    assert espcn.model == "espcn" and espcn.lr_scheduler == "cosine" and espcn.model_overrides == {"channels": [32, 16]}


def test_patches_must_fit_the_window():
    args = hat_script.parse_args(["--model", "hat-tiny", "--hr_patch_size", "24"])  # 6 px LR, window 8
    with pytest.raises(common.UsageError, match="multiple of the model's window"):
        common.build_model(args, hat_script.HAT)


def test_lr_schedules():
    f = common.lr_factor
    assert [f(s, schedule="constant", total=10, warmup=4) for s in range(6)] == [0, 0.25, 0.5, 0.75, 1, 1]
    cosine = [f(s, schedule="cosine", total=100, warmup=0) for s in (0, 50, 100)]
    assert cosine == pytest.approx([1.0, 0.5, 0.0])
    steps = [f(s, schedule="multistep", total=100, milestones=[50, 80], gamma=0.5) for s in (0, 49, 50, 79, 80, 99)]
    assert steps == [1, 1, 0.5, 0.5, 0.25, 0.25]
    args = hat_script.parse_args(["--max_train_steps", "100"])
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = common.build_lr_scheduler(opt, args)  # default milestones: 50 / 80 / 90 / 95 %
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert (lrs[49], lrs[50], lrs[80], lrs[90], lrs[95]) == (1.0, 0.5, 0.25, 0.125, 0.0625)


def test_losses():
    a, b = torch.zeros(1, 3, 4, 4), torch.full((1, 3, 4, 4), 0.5)
    assert common.loss_function("l1")(a, b).item() == pytest.approx(0.5)
    assert common.loss_function("l2")(a, b).item() == pytest.approx(0.25)
    assert common.loss_function("charbonnier")(a, b).item() == pytest.approx(math.sqrt(0.25 + 1e-6))


def test_ema_is_the_exponential_average_and_round_trips():
    model = torch.nn.Linear(2, 1)
    ema = common.EMA(model, decay=0.9)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)
    assert torch.allclose(ema.shadow["weight"], 0.9 * start + 0.1 * model.weight)
    other = common.EMA(torch.nn.Linear(2, 1), decay=0.5)
    other.load_state_dict(ema.state_dict())
    assert other.decay == 0.9 and torch.equal(other.shadow["weight"], ema.shadow["weight"])
    copy = torch.nn.Linear(2, 1)
    ema.copy_to(copy)
    assert torch.equal(copy.weight, ema.shadow["weight"])


def test_nan_weights_are_never_written(tmp_path):
    model = ESPCN.from_preset("espcn-tiny")
    with torch.no_grad():
        next(model.parameters())[0, 0, 0, 0] = float("nan")
    with pytest.raises(common.TrainingDiverged, match="NaN"):
        common.write_model_folder(model, tmp_path, metrics={}, facts={})
    assert not any(tmp_path.iterdir())


def test_latest_checkpoint_ignores_partial_and_foreign_folders(tmp_path):
    for name in ("checkpoint-2", "checkpoint-10", ".tmp-checkpoint-12", "checkpoint-x"):
        (tmp_path / name).mkdir()
    (tmp_path / "checkpoint-20").write_text("a file")
    assert common.find_latest_checkpoint(tmp_path).name == "checkpoint-10"
    assert common.find_latest_checkpoint(tmp_path / "missing") is None


class RecordingApi:
    """HfApi at its boundary (what sr_models.publish calls)."""

    calls: list = []

    def __init__(self, *args, **kwargs):
        pass

    def create_repo(self, repo_id, **kwargs):
        RecordingApi.calls.append(("create_repo", repo_id, kwargs))

    def create_commit(self, repo_id, operations, **kwargs):
        RecordingApi.calls.append(("create_commit", repo_id, sorted(op.path_in_repo for op in operations), kwargs))

        class Info:
            commit_url = f"https://huggingface.co/{repo_id}/commit/abc"
        return Info()


def run_in_process(tmp_path: Path, *extra: str) -> Path:
    """A whole tiny ESPCN run in this process (5 random 40 px images, 2 held out)."""
    from accelerate.state import AcceleratorState

    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(images / f"{i}.png")
    out = tmp_path / "out"
    args = espcn_script.parse_args([
        "--model", "espcn-tiny", "--train_data_dir", str(images), "--max_eval_samples", "2", "--hr_patch_size", "32",
        "--train_batch_size", "2", "--max_train_steps", "2", "--checkpointing_steps", "1", "--validation_steps", "1",
        "--dataloader_num_workers", "0", "--output_dir", str(out), *extra])
    try:
        espcn_script.main(args)
    finally:
        AcceleratorState._reset_state(True)  # the next in-process run gets a fresh Accelerator
    return out


def test_push_to_hub_publishes_the_model_files_without_checkpoints(tmp_path, monkeypatch):
    """--push_to_hub at the end of a run, with the Hub mocked at HfApi."""
    import sr_models.publish as publish

    monkeypatch.setattr(publish, "HfApi", RecordingApi)
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")
    RecordingApi.calls = []
    out = run_in_process(tmp_path, "--report_to", "none", "--push_to_hub", "--hub_model_id", "me/espcn-ffhq",
                         "--hub_private_repo")
    assert RecordingApi.calls[0] == ("create_repo", "me/espcn-ffhq",
                                     {"private": True, "exist_ok": True, "repo_type": "model"})
    _, repo, files, kwargs = RecordingApi.calls[1]
    assert files == ["README.md", "comparison.png", "config.json", "metrics.json", "model.safetensors",
                     "model_card.json", "training_facts.json"]
    assert "2 steps" in kwargs["commit_message"]
    assert (out / "checkpoint-2").is_dir()  # kept locally, not published
    card = json.loads((out / "model_card.json").read_text())
    assert card["repo_id"] == "me/espcn-ffhq" and card["evaluations"][0]["images"] == 2
    assert 'ESPCN.from_pretrained("me/espcn-ffhq")' in (out / "README.md").read_text()


def test_tensorboard_gets_the_losses_metrics_and_grid(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = run_in_process(tmp_path, "--report_to", "tensorboard")
    events = EventAccumulator(str(out / "logs" / "sr-models"))  # --tracker_project_name
    events.Reload()
    assert {"train/loss", "train/lr", "val/psnr_y", "val/bicubic_psnr_y"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("val/psnr_y")] == [1, 2]
    assert events.Tags()["images"] == ["val/lr_bicubic_sr_hr"]


def test_a_missing_tracker_package_is_a_clear_error(monkeypatch):
    import accelerate.utils

    monkeypatch.setattr(accelerate.utils, "is_wandb_available", lambda: False)
    args = espcn_script.parse_args(["--report_to", "wandb", "--train_data_dir", "."])
    with pytest.raises(common.UsageError, match="pip install wandb"):
        common.make_accelerator(args)
