"""The training scripts end to end, through `accelerate launch` in subprocesses, on the CPU:
tiny presets, 32 px HR patches, a few steps, generated images and scikit-image photos.

The scripts run as modules (`accelerate launch -m sr_models.training.hat`, `python -m sr_models.training.espcn`) from
the project root, and as files (`accelerate launch train/espcn.py`, `python train/espcn.py`),
which find `train` as an installed package."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from skimage import data as skdata

from sr_models import ESPCN, HAT, load_model

ROOT = Path(__file__).resolve().parent.parent
CPU_CONFIG = ROOT / "train" / "configs" / "cpu.yaml"
TINY = ["--hr_patch_size", "32", "--train_batch_size", "2", "--report_to", "none"]
ACCELERATE = [sys.executable, "-m", "accelerate.commands.launch", "-q"]
#: File names from which the imagefolder builder would guess splits (issue: a folder with
#: train_extra.png trained on that one image; test_* / val* names failed with "Bad split").
SPLIT_LIKE_NAMES = ("train_extra.png", "test_1.png", "val_x.png", "validation.png")


def env(tmp: Path, **extra) -> dict:
    return {**os.environ, "HF_HOME": str(tmp / "hf"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
            "OMP_NUM_THREADS": "1", **extra}


def script(name: str, *, as_file: bool = False) -> list[str]:
    """How to name a training script: the module (`-m sr_models.training.hat`, run from the project root)
    or the file (`train/hat.py`)."""
    return [str(ROOT / "train" / f"{name}.py")] if as_file else ["-m", f"sr_models.training.{name}"]


def run_command(cmd: list, tmp: Path, *, check: bool = True, timeout: int = 300, **extra_env) -> subprocess.CompletedProcess:
    cmd = list(map(str, cmd))
    proc = subprocess.run(cmd, cwd=ROOT, env=env(tmp, **extra_env), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc


def launch(name: str, args: list, tmp: Path, *, launch_args=("--config_file", CPU_CONFIG), as_file=False, **extra_env):
    """``accelerate launch [launch_args] -m sr_models.training.NAME args`` (or ``train/NAME.py``)."""
    return run_command([*ACCELERATE, *launch_args, *script(name, as_file=as_file), *args], tmp, **extra_env)


def run_script(name: str, args: list, tmp: Path, *, as_file=False, check=True) -> subprocess.CompletedProcess:
    """``python -m sr_models.training.NAME args`` (one process, without the launcher's start-up cost)."""
    return run_command([sys.executable, *script(name, as_file=as_file), *args], tmp, check=check)


def pattern(h: int, w: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([127 + 100 * np.sin(x / rng.uniform(2, 9) + y / rng.uniform(2, 9)) for _ in range(3)], axis=-1)
    return Image.fromarray((img + rng.normal(0, 6, img.shape)).clip(0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """train/: 4 real photos (scikit-image) and 4 patterns named as imagefolder would take for
    splits, one truncated PNG, one 20 px image; val/: 2 photos of 48 px."""
    root = tmp_path_factory.mktemp("images")
    train, val = root / "train", root / "val"
    train.mkdir()
    val.mkdir()
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        img = Image.fromarray(getattr(skdata, name)()).convert("RGB")
        img.resize((img.width // 5, img.height // 5), Image.BICUBIC).save(train / f"{name}.png")
    for i, name in enumerate(SPLIT_LIKE_NAMES):
        pattern(44 + 4 * i, 56 - 4 * i, seed=i).save(train / name)
    (train / "truncated.png").write_bytes((train / SPLIT_LIKE_NAMES[0]).read_bytes()[:80])
    pattern(20, 20, seed=9).save(train / "small.png")
    for name in ("astronaut", "coffee"):
        Image.fromarray(getattr(skdata, name)()).convert("RGB").resize((48, 48), Image.BICUBIC).save(val / f"{name}.png")
    return root


def hat_args(images, out, steps=6):
    return ["--model", "hat-tiny", "--train_data_dir", images / "train", "--validation_data_dir", images / "val",
            *TINY, "--max_train_steps", steps, "--checkpointing_steps", 3, "--validation_steps", 3,
            "--use_ema", "--ema_decay", "0.9", "--gradient_checkpointing", "--lr_scheduler", "cosine",
            "--lr_warmup_steps", 2, "--max_grad_norm", "1.0", "--validation_hr_size", 48, "--output_dir", out]


@pytest.fixture(scope="module")
def hat_run(images, tmp_path_factory):
    """hat-tiny, 6 steps, checkpoints at 3 and 6, EMA, gradient checkpointing, 2 decoding threads."""
    out = tmp_path_factory.mktemp("hat") / "out"
    launch("hat", hat_args(images, out) + ["--dataloader_num_workers", 2], out.parent)
    return out


def facts(out: Path) -> dict:
    return json.loads((out / "training_facts.json").read_text())


def max_diff(a: Path, b: Path) -> float:
    ta, tb = load_file(str(a)), load_file(str(b))
    assert ta.keys() == tb.keys()
    return max((ta[k].double() - tb[k].double()).abs().max().item() for k in ta)


def test_hat_trains_end_to_end_and_the_folder_loads(hat_run):
    model = load_model(hat_run)
    assert isinstance(model, HAT) and model.scale == 4 and model.window_size == 8
    with torch.inference_mode():
        assert model(torch.rand(1, 3, 16, 16)).shape == (1, 3, 64, 64)
    assert HAT.from_pretrained(hat_run).num_parameters == model.num_parameters
    f = facts(hat_run)
    assert f["steps"] == 6 and f["images_seen"] == 12 and f["effective_batch_size"] == 2
    assert f["architecture"] == "HAT" and f["preset"] == "hat-tiny" and f["gradient_checkpointing"] is True
    assert f["precision"] == "no" and f["ema_decay"] == pytest.approx(0.9) and "CPU" in f["hardware"] and f["wall_time_s"] > 0
    metrics = json.loads((hat_run / "metrics.json").read_text())
    assert metrics["step"] == 6 and metrics["weights"] == "ema" and metrics["images"] == 2
    assert 10 < metrics["bicubic_psnr"] < 40 and 0 < metrics["ssim"] <= 1
    card = (hat_run / "README.md").read_text()
    assert f"{metrics['psnr']:.2f}" in card and "optimizer steps" in card and "comparison.png" in card
    assert {p.name for p in (hat_run / "validation").iterdir()} == {"step-0000003.png", "step-0000006.png"}
    grid = Image.open(hat_run / "comparison.png")
    assert grid.size == (4 * 48, 2 * 48)  # LR | bicubic | SR | HR for the 2 validation images
    for step in (3, 6):  # the run's own state as JSON and safetensors, no pickle of ours
        names = {p.name for p in (hat_run / f"checkpoint-{step}").iterdir()}
        assert {"model.safetensors", "training_state.json", "ema.safetensors"} <= names
        assert not [n for n in names if n.startswith("custom_checkpoint")]
    # The published weights are the EMA, not the last raw weights.
    assert max_diff(hat_run / "model.safetensors", hat_run / "checkpoint-6" / "model.safetensors") > 1e-5


def test_every_image_is_used_whatever_its_name_and_bad_ones_are_skipped_and_counted(hat_run):
    d = facts(hat_run)["data"]
    assert d["skipped_undecodable"] == 1 and d["skipped_too_small"] == 1 and d["train_images"] == 8


def test_resume_from_a_checkpoint_gives_the_same_weights(images, hat_run, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    shutil.copytree(hat_run / "checkpoint-3", out / "checkpoint-3")
    # Resumed without decoding threads: the data order must not depend on them.
    run_script("hat", hat_args(images, out) + ["--resume_from_checkpoint", "latest", "--dataloader_num_workers", 0],
               tmp_path)
    assert max_diff(hat_run / "model.safetensors", out / "model.safetensors") <= 1e-6  # the EMA
    assert max_diff(hat_run / "checkpoint-6" / "model.safetensors", out / "checkpoint-6" / "model.safetensors") <= 1e-6
    f = facts(out)
    assert f["steps"] == 6 and f["images_seen"] == 12 and f["resumed_from"].endswith("checkpoint-3")
    assert json.loads((out / "metrics.json").read_text())["psnr"] == pytest.approx(
        json.loads((hat_run / "metrics.json").read_text())["psnr"], abs=1e-6)


def test_a_killed_run_resumes_from_its_last_complete_checkpoint(images, tmp_path):
    base = ["--model", "espcn-tiny", "--train_data_dir", images / "train", "--max_eval_samples", 0, *TINY,
            "--lr_scheduler", "constant", "--checkpointing_steps", 2, "--dataloader_num_workers", 0]
    killed = tmp_path / "killed"
    cmd = [sys.executable, *script("espcn"), *base, "--max_train_steps", 100_000, "--output_dir", killed]
    proc = subprocess.Popen(list(map(str, cmd)), cwd=ROOT, env=env(tmp_path), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 120
        while not any(killed.glob("checkpoint-*")) and time.time() < deadline:
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    latest = max(int(p.name.split("-")[1]) for p in killed.glob("checkpoint-*"))
    target = latest + 3
    run_script("espcn", base + ["--max_train_steps", target, "--output_dir", killed, "--resume_from_checkpoint",
                                "latest"], tmp_path)
    reference = tmp_path / "reference"
    run_script("espcn", base + ["--max_train_steps", target, "--output_dir", reference], tmp_path)
    assert facts(killed)["resumed_from"].endswith(f"checkpoint-{latest}")
    assert max_diff(killed / "model.safetensors", reference / "model.safetensors") <= 1e-6


def test_espcn_with_accumulation_bf16_overrides_and_a_checkpoint_limit(images, tmp_path):
    out = tmp_path / "out"
    # As a file: `accelerate launch train/espcn.py` runs the installed sr_models.training.
    launch("espcn", ["--model", "espcn-tiny", "--channels", 8, 4, "--train_data_dir", images / "train",
                     "--validation_data_dir", images / "val", *TINY, "--gradient_accumulation_steps", 2,
                     "--max_train_steps", 4, "--checkpointing_steps", 2, "--checkpoints_total_limit", 1,
                     "--validation_steps", 2, "--mixed_precision", "bf16", "--loss", "charbonnier",
                     "--optimizer", "adamw", "--adam_weight_decay", "0.01", "--lr_scheduler", "multistep",
                     "--lr_milestones", 2, 3, "--output_dir", out], tmp_path, as_file=True)
    model = ESPCN.from_pretrained(out)
    assert model.config["channels"] == [8, 4]
    f = facts(out)
    assert f["precision"] == "bf16" and f["effective_batch_size"] == 4 and f["images_seen"] == 16
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-4"]
    assert not list(out.glob(".tmp-*"))


def test_two_processes_train_on_disjoint_images(images, tmp_path):
    out = tmp_path / "out"
    launch("hat", ["--model", "hat-tiny", "--train_data_dir", images / "train", "--validation_data_dir",
                   images / "val", *TINY, "--max_train_steps", 6, "--checkpointing_steps", 3, "--use_ema",
                   "--validation_steps", 3, "--log_image_ids", "--output_dir", out],
           tmp_path, launch_args=["--multi_gpu", "--num_processes", "2"], ACCELERATE_USE_CPU="true")
    f = facts(out)
    assert f["processes"] == 2 and f["effective_batch_size"] == 4 and f["images_seen"] == 24
    logs = [[line.split("\t") for line in (out / "logs" / f"image_ids_rank{r}.tsv").read_text().splitlines()]
            for r in (0, 1)]
    assert all(logs)
    for epoch in {row[0] for rows in logs for row in rows}:
        shares = [{row[2] for row in rows if row[0] == epoch} for rows in logs]
        assert not shares[0] & shares[1], f"both processes read the same image in epoch {epoch}"
    first = [{row[2] for row in rows if row[0] == "0"} for rows in logs]
    assert len(first[0] | first[1]) == 10  # the whole folder, corrupt and small images included
    assert HAT.from_pretrained(out).scale == 4


def test_fine_tuning_starts_from_an_official_checkpoint(images, tmp_path):
    official = HAT.from_preset("hat-tiny", upscale=4)
    state = {f"module.{k}": v for k, v in official.state_dict().items()}  # as BasicSR saves DDP models
    torch.save({"params_ema": state}, tmp_path / "HAT_tiny_SRx4.pth")
    out = tmp_path / "out"
    run_script("hat", ["--pretrained_model_name_or_path", tmp_path / "HAT_tiny_SRx4.pth", "--train_data_dir",
                       images / "train", "--max_eval_samples", 0, *TINY, "--max_train_steps", 2,
                       "--learning_rate", "1e-6", "--output_dir", out], tmp_path)
    tuned = load_model(out)
    assert tuned.config["embed_dim"] == 24
    diffs = [(a - b).abs().max().item() for a, b in zip(official.state_dict().values(), tuned.state_dict().values())]
    assert 0 < max(diffs) < 1e-4  # two Adam steps of 1e-6 from the official weights
    f = facts(out)
    assert f["pretrained_from"].endswith("HAT_tiny_SRx4.pth") and f["preset"] is None
    assert json.loads((out / "metrics.json").read_text()) == {}


def test_streaming_a_local_dataset_laid_out_like_the_hub_mirror(tmp_path):
    from datasets import Dataset, Features
    from datasets import Image as ImageFeature

    def png(img):
        path = tmp_path / "x.png"
        img.save(path)
        return path.read_bytes()

    photos = [Image.fromarray(getattr(skdata, n)()).convert("RGB").resize((48, 48)) for n in ("astronaut", "coffee")]
    v0, v1, *rest = [png(p) for p in photos] + [png(pattern(40, 40, seed)) for seed in range(6)]
    shards = [[v0, v1, rest[0], rest[1], b"\x89PNG broken"], [rest[2], rest[3], v0, rest[4], rest[5]]]
    hub = tmp_path / "ffhq-like"
    (hub / "data").mkdir(parents=True)
    for i, rows in enumerate(shards):
        Dataset.from_dict({"image": [{"bytes": b, "path": None} for b in rows]},
                          features=Features({"image": ImageFeature()})).to_parquet(
            str(hub / "data" / f"train-{i:05d}-of-{len(shards):05d}.parquet"))
    (hub / "README.md").write_text(
        "---\nlicense: cc-by-nc-sa-4.0\ndataset_info:\n  features:\n  - name: image\n    dtype: image\n"
        "configs:\n- config_name: default\n  data_files:\n  - split: train\n    path: data/train-*\n---\n")
    out = tmp_path / "out"
    # --max_train_samples (as the study's 10-image HAT run) fixes the shard order, which also spares
    # the 5 s datasets waits after each pass over interleaved parquet shards.
    run_script("espcn", ["--model", "espcn-tiny", "--dataset_name", hub, "--max_eval_samples", 2,
                         "--max_train_samples", 7, *TINY, "--max_train_steps", 4, "--validation_steps", 100,
                         "--log_image_ids", "--output_dir", out], tmp_path)
    f = facts(out)
    assert f["data"]["validation_images"] == 2 and "held out" in f["data"]["validation_source"]
    assert f["data"]["train_images"] == 6 and f["data"]["skipped_undecodable"] == 1
    assert f["data"]["max_train_samples"] == 7
    # The licence is the dataset card's (its README), not guessed from the name.
    assert (f["data"]["license"], f["data"]["license_source"]) == ("cc-by-nc-sa-4.0", f"the dataset card of {hub}")
    assert json.loads((out / "model_card.json").read_text())["license"] == "cc-by-nc-sa-4.0"
    rows = [line.split("\t") for line in (out / "logs" / "image_ids_rank0.tsv").read_text().splitlines()]
    import hashlib

    held = {"sha1:" + hashlib.sha1(b).hexdigest()[:20] for b in (v0, v1)}
    assert rows and not held & {r[2] for r in rows}  # v0 is dropped in both shards
    assert json.loads((out / "metrics.json").read_text())["images"] == 2


def test_a_user_mistake_ends_in_one_line_without_a_traceback(images, tmp_path):
    args = ["--dataset_name", images / "train", "--image_column", "photo", "--output_dir", tmp_path / "out",
            "--report_to", "none"]
    proc = run_script("espcn", args, tmp_path, as_file=True, check=False)  # `python train/espcn.py`
    assert proc.returncode == 2
    assert "has no column 'photo'" in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ")
