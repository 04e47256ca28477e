"""EMA warm-up (issue 20 item 1, sr_models/training/ema.py): on by default, diffusers'
decay min(decay, (1+t)/(10+t)), so that a short run publishes averaged weights close to the
trained ones instead of the random start; the update count survives a resume exactly; the
setting is in training_facts.json and the card."""

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
# The in-process run helpers of the trainer's tests (fixture: make_trainer).
from test_train_trainer import make_trainer, run_in_process, tiny_args  # noqa: F401

from sr_models.training.ema import EMA, warmup_decay


@pytest.fixture
def patterns(tmp_path) -> Path:
    """8 smooth 64 px colour patterns (2 are held out for validation): something to learn."""
    folder = tmp_path / "patterns"
    folder.mkdir()
    y, x = np.mgrid[0:64, 0:64]
    for seed in range(8):
        rng = np.random.default_rng(seed)
        img = np.stack([127 + 100 * np.sin(x / rng.uniform(3, 9) + y / rng.uniform(3, 9) + c) for c in range(3)], -1)
        Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(folder / f"{seed}.png")
    return folder


def test_the_warm_up_is_diffusers_decay():
    assert [warmup_decay(0.999, t) for t in (0, 8, 80)] == pytest.approx([0.1, 0.5, 0.9])
    assert warmup_decay(0.99, 10**6) == 0.99
    model = torch.nn.Linear(2, 1)
    ema = EMA(model, decay=0.999, warmup=True)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)  # the first update keeps 10 % of the start, not 99.9 %
    assert torch.allclose(ema.shadow["weight"], 0.1 * start + 0.9 * model.weight, atol=1e-6)
    assert ema.updates == 1 and ema.current_decay() == pytest.approx(2 / 11)


def score(trainer, state_dict) -> float:
    """Validation PSNR-Y of ``state_dict`` in the trainer's own validator."""
    trainer.eval_model.load_state_dict(state_dict)
    return trainer.validator.run(trainer.eval_model)[0]["psnr"]


def test_a_30_step_run_publishes_ema_weights_as_good_as_the_raw_ones(patterns, tmp_path, make_trainer):  # noqa: F811
    """Issue 20: with decay 0.999 and no warm-up the EMA of a 30-step run was mostly the
    random start (12 dB against bicubic's 32)."""
    args = tiny_args(patterns, tmp_path / "out", "--model", "espcn", "--use_ema", "--max_train_steps", "30",
                     "--checkpointing_steps", "1000", "--validation_steps", "1000", "--validation_hr_size", "64")
    trainer = make_trainer(args)
    start = copy.deepcopy(trainer.unwrapped.state_dict())
    trainer.fit()
    ema, raw = trainer.state.last_metrics["psnr"], score(trainer, trainer.unwrapped.state_dict())
    assert abs(ema - raw) < 0.2
    assert ema > score(trainer, start) + 2.0  # far from the random start (without warm-up: 0.04 dB above it)
    facts = json.loads((tmp_path / "out" / "training_facts.json").read_text())
    assert facts["ema_decay"] == pytest.approx(0.999) and facts["ema_warmup"] is True
    card = json.loads((tmp_path / "out" / "model_card.json").read_text())["training"]["use_ema"]
    assert card == "yes (decay 0.999, warm-up min(decay, (1+t)/(10+t)))"


def test_no_ema_warmup_is_the_fixed_decay_and_says_so(patterns, tmp_path, make_trainer, caplog):  # noqa: F811
    out = run_in_process(make_trainer, patterns, tmp_path / "out", "--use_ema", "--no_ema_warmup")
    assert json.loads((out / "training_facts.json").read_text())["ema_warmup"] is False
    assert "no warm-up" in json.loads((out / "model_card.json").read_text())["training"]["use_ema"]
    assert "100% of the published EMA weights is still the starting point" in caplog.text  # 0.999 ** 2


def test_a_resumed_run_continues_the_warm_up_exactly(patterns, tmp_path, make_trainer):  # noqa: F811
    steps = ("--use_ema", "--max_eval_samples", "0", "--max_train_steps", "3")
    whole = run_in_process(make_trainer, patterns, tmp_path / "whole", *steps)
    assert json.loads((whole / "checkpoint-1" / "training_state.json").read_text())["ema_updates"] == 1
    part = tmp_path / "part"
    part.mkdir()
    shutil.copytree(whole / "checkpoint-1", part / "checkpoint-1")
    resumed = make_trainer(tiny_args(patterns, part, *steps, "--resume_from_checkpoint", "latest"))
    assert resumed.ema.updates == 1
    resumed.fit()
    a, b = load_file(whole / "model.safetensors"), load_file(part / "model.safetensors")  # the EMA weights
    assert max((a[k].double() - b[k].double()).abs().max().item() for k in a) <= 1e-6

