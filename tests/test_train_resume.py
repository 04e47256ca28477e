"""Damaged checkpoints and failed checkpoint writes (issue 19 items 9, 12, 14;
sr_models/training/resume.py, checkpoints.py, trainer.py): one line naming the file, never a
traceback, and a resume that is no longer exact is refused unless --allow_inexact_resume."""

import errno
import json
import logging
from pathlib import Path

import pytest
import torch
# The in-process run helpers of the trainer's tests (fixtures: images, make_trainer).
from test_train_trainer import images, make_trainer, run_in_process, tiny_args  # noqa: F401

from sr_models.training import checkpoints
from sr_models.training.errors import RunFailed, UsageError


@pytest.fixture
def run(images, tmp_path, make_trainer) -> Path:  # noqa: F811
    """A finished 2-step run with EMA, checkpoints at steps 1 and 2."""
    return run_in_process(make_trainer, images, tmp_path / "out", "--use_ema")


def resume(images, run, make_trainer, *extra, checkpoint="checkpoint-1"):  # noqa: F811
    return make_trainer(tiny_args(images, run, "--use_ema", "--resume_from_checkpoint", str(run / checkpoint), *extra))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize("damage", ["truncated", "replaced"])
def test_a_damaged_rng_state_refuses_the_resume_unless_allowed(images, run, make_trainer, caplog, damage):  # noqa: F811
    """Issue 19: Accelerate skipped the damaged file with an INFO line, the run silently not exact."""
    rng = run / "checkpoint-1" / "random_states_0.pkl"
    if damage == "truncated":
        truncate(rng)
    else:
        torch.save({"step": 1, "random_state": "not a state"}, rng)
    with pytest.raises(UsageError, match="random_states_0.pkl is damaged .*pass --allow_inexact_resume"):
        resume(images, run, make_trainer)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="train"):
        resumed = resume(images, run, make_trainer, "--allow_inexact_resume")
    assert resumed.state.step == 1
    lines = [r.getMessage() for r in caplog.records if "random-number states" in r.getMessage()]
    assert len(lines) == 1 and "no longer exact" in lines[0] and "\n" not in lines[0]


@pytest.mark.parametrize("name", ["model.safetensors", "ema.safetensors"])
def test_a_truncated_weights_file_is_one_line(images, run, make_trainer, name):  # noqa: F811
    truncate(run / "checkpoint-1" / name)
    with pytest.raises(UsageError, match=f"cannot resume from .*checkpoint-1: (its )?{name} is damaged") as err:
        resume(images, run, make_trainer)
    assert "\n" not in str(err.value)


def test_an_optimizer_pickle_that_is_not_tensors_only_is_refused_by_name(images, run, make_trainer):  # noqa: F811
    torch.save({"state": Path("a class the restricted unpickler refuses")}, run / "checkpoint-1" / "optimizer.bin")
    with pytest.raises(UsageError, match="optimizer.bin refused: not a tensor-only file") as err:
        resume(images, run, make_trainer)
    assert "\n" not in str(err.value) and "Weights only load failed" not in str(err.value)


@pytest.mark.parametrize("edit, message", [
    ({"step": "abc"}, "'step' must be a whole number >= 0, got 'abc'"),
    ({"step": -100}, "'step' must be a whole number >= 0, got -100"),
    ({"surprise": 1}, "unknown keys 'surprise'"),
    ({"elapsed": -1.0}, "'elapsed' must be seconds >= 0"),
    ({"loaders": [{"epoch": "x"}]}, "'epoch' must be a whole number"),
    ({"skipped_steps": 5}, "'skipped_steps' 5 is more than 'step' 1"),
])
def test_an_implausible_training_state_is_refused_in_one_line(run, edit, message):
    folder = run / "checkpoint-1"
    state = json.loads((folder / checkpoints.STATE_FILE).read_text())
    (folder / checkpoints.STATE_FILE).write_text(json.dumps({**state, **edit}))
    with pytest.raises(UsageError, match="training_state.json is damaged") as err:
        checkpoints.read_state(folder)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_checkpoint_step_of_10_to_the_12_warns(images, run, make_trainer, caplog):  # noqa: F811
    """A folder copied by hand as checkpoint-1000000000000: 'latest' picks it, nothing is trained."""
    huge = run / f"checkpoint-{10**12}"
    (run / "checkpoint-2").rename(huge)
    state = json.loads((huge / checkpoints.STATE_FILE).read_text())
    (huge / checkpoints.STATE_FILE).write_text(json.dumps({**state, "step": 10**12}))
    with caplog.at_level(logging.WARNING, logger="train"):
        resumed = resume(images, run, make_trainer, checkpoint=huge.name)
    assert resumed.state.step == 10**12
    assert f"is at step {10**12}, at or past --max_train_steps 2: no step is trained" in caplog.text


def test_a_full_disk_while_checkpointing_stops_in_one_line_and_leaves_no_partial_folder(
        images, tmp_path, make_trainer, monkeypatch):  # noqa: F811
    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoints, "save_file", full_disk)  # writes ema.safetensors
    out = tmp_path / "out"
    with pytest.raises(RunFailed, match="no space left on the device of .* while saving checkpoint-1") as err:
        run_in_process(make_trainer, images, out, "--use_ema")
    assert "\n" not in str(err.value) and "--resume_from_checkpoint latest" in str(err.value)
    assert not list(out.glob(".tmp-*")) and not list(out.glob("checkpoint-*"))
